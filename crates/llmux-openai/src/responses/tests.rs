//! The translation against transcripts in the real API's shapes (`transcripts/*.sse`: event
//! order, event and object field names), and the request translation's honour-or-refuse rule.

use llmux_core::{Content, ContentPart, ResponseFormat, Role, ToolChoice, Usage};
use serde_json::{Value, json};

use super::*;

/// `(event line, data)` of each SSE event; the event line must equal `data.type`.
fn events(sse: &str) -> Vec<Value> {
    sse.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut lines = block.lines();
            let event = lines.next().and_then(|l| l.strip_prefix("event: "));
            let data = lines.next().and_then(|l| l.strip_prefix("data: "));
            let v: Value = serde_json::from_str(data.expect("data line")).expect("JSON");
            assert_eq!(event, v["type"].as_str(), "event name = type");
            v
        })
        .collect()
}

fn ours(b: &mut Builder) -> Vec<Value> {
    let frame: String = b
        .take_events()
        .iter()
        .map(|e| {
            format!(
                "event: {}\ndata: {}\n\n",
                e.event.kind(),
                serde_json::to_string(e).expect("serialises")
            )
        })
        .collect();
    events(&frame)
}

/// Same fields at every level (arrays: element by element); `completed_at` is ours only when
/// the transcript predates it. Values of ids and timestamps may differ, kinds may not.
fn same_shape(path: &str, real: &Value, mine: &Value) {
    match (real, mine) {
        (Value::Object(r), Value::Object(m)) => {
            let rk: Vec<_> = r.keys().collect();
            let mk: Vec<_> = m
                .keys()
                .filter(|k| *k != "completed_at" && *k != "provider")
                .collect();
            assert_eq!(rk, mk, "fields at {path}");
            for (k, v) in r {
                same_shape(&format!("{path}.{k}"), v, &m[k]);
            }
        }
        (Value::Array(r), Value::Array(m)) => {
            assert_eq!(r.len(), m.len(), "length at {path}");
            for (i, (a, b)) in r.iter().zip(m).enumerate() {
                same_shape(&format!("{path}[{i}]"), a, b);
            }
        }
        (Value::String(_), Value::String(_)) | (Value::Bool(_), Value::Bool(_)) => {}
        (Value::Number(_), Value::Number(_)) | (Value::Null, Value::Null) => {}
        _ => panic!("{path}: {real} vs {mine}"),
    }
}

fn check(transcript: &str, mine: &[Value]) {
    let real = events(transcript);
    let kinds = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|e| e["type"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(kinds(&real), kinds(mine), "event order");
    for (i, (r, m)) in real.iter().zip(mine).enumerate() {
        assert_eq!(m["sequence_number"], json!(i), "sequence numbers count up");
        same_shape(r["type"].as_str().unwrap_or(""), r, m);
    }
}

fn convert(body: Value) -> Converted {
    let wire: CreateResponse = serde_json::from_value(body).expect("parses");
    into_chat_request(wire, Vec::new(), false).expect("converts")
}

fn builder(body: Value) -> Builder {
    let mut c = convert(body);
    c.response.id = new_id("resp");
    Builder::new(c.response, true)
}

fn usage() -> Option<ResponseUsage> {
    Some(ResponseUsage::from(&Usage::new(36, 87)))
}

#[test]
fn text_stream_matches_the_transcript() {
    let mut b =
        builder(json!({"model": "gpt-4.1", "input": "Hi", "temperature": 1.0, "top_p": 1.0}));
    b.start();
    b.text("Hi");
    b.text(" there!");
    b.finish(None, usage());
    let mine = ours(&mut b);
    check(include_str!("transcripts/text.sse"), &mine);
    let done = &mine[mine.len() - 1]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hi there!");
    assert_eq!(done["usage"]["total_tokens"], 123);
    assert!(done["id"].as_str().is_some_and(|i| i.starts_with("resp_")));
    assert!(
        done["output"][0]["id"]
            .as_str()
            .is_some_and(|i| i.starts_with("msg_"))
    );
}

#[test]
fn function_call_stream_matches_the_transcript() {
    let mut b = builder(json!({
        "model": "gpt-4.1",
        "input": "Weather in Paris?",
        "temperature": 1.0,
        "top_p": 1.0,
        "tools": [{"type": "function", "name": "get_weather", "description": "Get current temperature for a given location.", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}, "strict": true}]
    }));
    b.start();
    b.tool(0, Some("call_12345xyz"), Some("get_weather"), "");
    b.tool(0, None, None, "{\"location\":");
    b.tool(0, None, None, "\"Paris, France\"}");
    b.finish(None, usage());
    let mine = ours(&mut b);
    check(include_str!("transcripts/function_call.sse"), &mine);
    let item = &mine[mine.len() - 1]["response"]["output"][0];
    assert_eq!(item["call_id"], "call_12345xyz");
    assert_eq!(item["arguments"], "{\"location\":\"Paris, France\"}");
    assert!(item["id"].as_str().is_some_and(|i| i.starts_with("fc_")));
}

#[test]
fn reasoning_then_text_matches_the_transcript() {
    let mut b = builder(json!({
        "model": "o4-mini",
        "input": "2+2?",
        "temperature": 1.0,
        "top_p": 1.0,
        "reasoning": {"effort": "medium", "summary": "auto"}
    }));
    b.start();
    b.reasoning("**Answering");
    b.reasoning(" a simple question**");
    b.text("4");
    b.finish(None, usage());
    let mine = ours(&mut b);
    check(include_str!("transcripts/reasoning.sse"), &mine);
    assert!(
        mine[2]["item"]["id"]
            .as_str()
            .is_some_and(|i| i.starts_with("rs_"))
    );
}

#[test]
fn a_failure_after_the_start_is_a_failed_response_never_a_completion() {
    let mut b = builder(json!({"model": "m", "input": "hi"}));
    b.start();
    b.text("partial");
    b.fail("server_error", "upstream: connection reset");
    let mine = ours(&mut b);
    let last = &mine[mine.len() - 1];
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"]["code"], "server_error");
    assert_eq!(last["response"]["output"][0]["status"], "incomplete");
    assert!(
        mine.iter()
            .all(|e| e["type"] != "response.completed" && e["type"] != "response.output_item.done")
    );
}

#[test]
fn token_limit_makes_an_incomplete_response() {
    let mut b = builder(json!({"model": "m", "input": "hi", "max_output_tokens": 5}));
    b.start();
    b.text("cut");
    b.finish(Some("max_output_tokens"), usage());
    let mine = ours(&mut b);
    let last = &mine[mine.len() - 1];
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(last["response"]["max_output_tokens"], 5);
}

#[test]
fn refusal_is_a_refusal_part() {
    let mut b = builder(json!({"model": "m", "input": "hi"}));
    b.start();
    b.refusal("I can't help with that.");
    b.finish(None, usage());
    let mine = ours(&mut b);
    let kinds: Vec<_> = mine.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(kinds.contains(&"response.refusal.delta"));
    assert!(kinds.contains(&"response.refusal.done"));
    let out = &mine[mine.len() - 1]["response"]["output"][0]["content"][0];
    assert_eq!(
        out,
        &json!({"type": "refusal", "refusal": "I can't help with that."})
    );
}

#[test]
fn non_streaming_builders_emit_nothing() {
    let mut c = convert(json!({"model": "m", "input": "hi"}));
    c.response.id = "resp_x".into();
    let mut b = Builder::new(c.response, false);
    b.start();
    b.text("a");
    b.finish(None, None);
    assert!(b.take_events().is_empty());
    assert_eq!(b.response.output.len(), 1);
}

#[test]
fn a_function_call_round_trip_input_becomes_chat_messages() {
    // the input an SDK sends after running a tool: the user turn, the model's call, the output
    let c = convert(json!({
        "model": "gpt-4.1",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"location\":\"Paris\"}", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_1", "output": "{\"temp\":18}"},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                "content": [{"type": "output_text", "text": "18 °C.", "annotations": []}]},
            {"role": "developer", "content": "Use Celsius."}
        ],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": true}],
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}, "verbosity": "low"},
        "reasoning": {"effort": "low"},
        "max_output_tokens": 99,
        "metadata": {"k": "v"},
        "store": false
    }));
    let m = &c.request.messages;
    assert_eq!(m.len(), 6, "{m:?}");
    assert_eq!(
        (m[0].role, m[0].text().as_str()),
        (Role::System, "Be brief.")
    );
    assert!(
        matches!(&m[1].content, Some(Content::Parts(p)) if matches!(&p[1], ContentPart::ImageUrl { image_url } if image_url.detail.as_deref() == Some("low")))
    );
    assert_eq!(m[2].role, Role::Assistant);
    assert_eq!(m[2].tool_calls[0].id, "call_1");
    assert!(m[2].content.is_none());
    assert_eq!(m[3].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(m[4].text(), "18 °C.");
    assert_eq!(m[5].role, Role::System);
    assert_eq!(
        c.conversation.len(),
        5,
        "instructions are not part of the stored conversation"
    );
    let r = &c.request;
    assert_eq!(r.max_tokens, Some(99));
    assert_eq!(
        r.tool_choice,
        Some(ToolChoice::Function("get_weather".into()))
    );
    assert!(
        matches!(&r.response_format, Some(ResponseFormat::JsonSchema { name, strict: Some(true), .. }) if name == "w")
    );
    assert_eq!(r.extra["reasoning_effort"], "low");
    assert_eq!(r.extra["verbosity"], "low");
    assert!(!c.response.store);
    assert_eq!(c.response.metadata["k"], "v");
    assert_eq!(c.response.tools[0]["name"], "get_weather");
}

#[test]
fn a_previous_conversation_goes_first() {
    let wire: CreateResponse =
        serde_json::from_value(json!({"input": "and then?", "instructions": "new"})).expect("ok");
    let prev = vec![
        llmux_core::Message::user("first"),
        llmux_core::Message::assistant("answer"),
    ];
    let c = into_chat_request(wire, prev, false).expect("converts");
    let texts: Vec<_> = c.request.messages.iter().map(|m| m.text()).collect();
    assert_eq!(texts, ["new", "first", "answer", "and then?"]);
    assert_eq!(c.conversation.len(), 3);
}

fn refused(body: Value) -> WireError {
    let wire: CreateResponse = serde_json::from_value(body).expect("parses");
    into_chat_request(wire, Vec::new(), false).expect_err("refused")
}

#[test]
fn what_cannot_be_honoured_is_refused_with_its_param() {
    let cases = [
        (
            json!({"input": "x", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
        ),
        (
            json!({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": []}]}),
            "tools[0].type",
        ),
        (json!({"input": "x", "background": true}), "background"),
        (
            json!({"input": "x", "include": ["reasoning.encrypted_content"]}),
            "include",
        ),
        (json!({"input": "x", "truncation": "auto"}), "truncation"),
        (json!({"input": "x", "prompt": {"id": "pmpt_1"}}), "prompt"),
        (
            json!({"input": "x", "conversation": "conv_1"}),
            "conversation",
        ),
        (json!({"input": "x", "frobnicate": 1}), "frobnicate"),
        (
            json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input[0].type",
        ),
        (
            json!({"input": [{"type": "computer_call_output", "call_id": "c", "output": {}}]}),
            "input[0].type",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
            "input[0].content[0].image_url",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]}),
            "input[0].content[0].image_url",
        ),
        (
            json!({"input": [{"role": "tool", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
            "input[0].call_id",
        ),
        (
            json!({"input": [{"type": "function_call_output", "call_id": "c"}]}),
            "input[0].output",
        ),
        (
            json!({"input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}),
            "text.format.name",
        ),
        (
            json!({"input": "x", "text": {"format": {"type": "grammar"}}}),
            "text.format.type",
        ),
        (
            json!({"input": "x", "reasoning": {"effort": "low", "budget": 3}}),
            "reasoning.budget",
        ),
        (
            json!({"input": "x", "tool_choice": {"type": "function", "name": "nope"}}),
            "tool_choice",
        ),
        (
            json!({"input": "x", "tool_choice": {"type": "web_search_preview"}}),
            "tool_choice",
        ),
        (json!({"input": []}), "input"),
        (json!({"model": "m"}), "input"),
    ];
    for (body, param) in cases {
        let e = refused(body.clone());
        assert_eq!(e.param.as_deref(), Some(param), "{body}: {e:?}");
        assert!(!e.message.is_empty());
    }
}

#[test]
fn harmless_defaults_and_chat_fields_are_accepted() {
    let c = convert(json!({
        "input": "x",
        "background": false,
        "include": [],
        "truncation": "disabled",
        "stream_options": {"include_obfuscation": false},
        "service_tier": "auto",
        "prompt_cache_key": "k",
        "safety_identifier": "u1",
        "parallel_tool_calls": false,
        "provider": "echo",
        "tool_emulation": true,
        "user": "me",
        "stream": true
    }));
    let r = &c.request;
    assert_eq!(r.provider.as_deref(), Some("echo"));
    assert_eq!(r.tool_emulation, Some(true));
    assert_eq!(r.extra["prompt_cache_key"], "k");
    assert_eq!(r.extra["service_tier"], "auto");
    assert_eq!(r.parallel_tool_calls, Some(false));
    assert!(!c.response.parallel_tool_calls);
    assert_eq!(r.user.as_deref(), Some("me"));
    assert!(c.stream && r.stream);
    assert!(!r.extra.contains_key("background"));
}

#[test]
fn output_becomes_the_assistant_turn_of_a_follow_up() {
    let out = vec![
        OutputItem::Reasoning {
            id: "rs_1".into(),
            summary: vec![SummaryPart::new("thinking")],
        },
        OutputItem::Message {
            id: "msg_1".into(),
            status: "completed".into(),
            role: "assistant".into(),
            content: vec![OutputContent::text("Let me check.")],
        },
        OutputItem::FunctionCall {
            id: "fc_1".into(),
            call_id: "call_1".into(),
            name: "f".into(),
            arguments: "{}".into(),
            status: "completed".into(),
        },
    ];
    let m = output_messages(&out);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].text(), "Let me check.");
    assert_eq!(m[0].tool_calls[0].id, "call_1");
    assert!(output_messages(&[]).is_empty());
}

#[test]
fn usage_details_are_read() {
    let mut u = Usage::new(10, 20);
    u.details
        .insert("prompt_tokens_details".into(), json!({"cached_tokens": 4}));
    u.details.insert(
        "completion_tokens_details".into(),
        json!({"reasoning_tokens": 7}),
    );
    let r = ResponseUsage::from(&u);
    assert_eq!(
        serde_json::to_value(&r).expect("serialises"),
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 7}, "total_tokens": 30})
    );
}
