//! The translations against transcripts of the real Messages API (from Anthropic's API
//! reference and streaming guide): request bodies as the official SDKs send them, and answers,
//! events and errors as the API writes them. Answers are compared by event order, event names
//! and field names (ids and token counts differ by nature).

use llmux_anthropic::answer::{self, Collector, MessageOut, StopReason, Usage};
use llmux_anthropic::stream::EventWriter;
use llmux_anthropic::{ErrorBody, MessagesRequest, convert, error_type, into_chat_request};
use llmux_core::{Content, ContentPart, FinishReason, Role, ToolChoice};
use serde_json::{Value, json};

/// A tool-use round trip as the SDK sends it (API reference, "Tool use": the second request).
const TOOL_ROUND_TRIP: &str = r#"{
  "model": "claude-opus-4-6",
  "max_tokens": 1024,
  "system": [{"type": "text", "text": "You are a weather bot.", "cache_control": {"type": "ephemeral"}}],
  "tools": [{
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {"type": "object",
      "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}},
      "required": ["location"]}
  }],
  "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
  "messages": [
    {"role": "user", "content": "What's the weather like in San Francisco?"},
    {"role": "assistant", "content": [
      {"type": "text", "text": "I'll check."},
      {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
       "input": {"location": "San Francisco, CA", "unit": "celsius"}}
    ]},
    {"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
      {"type": "text", "text": "And tomorrow?"}
    ]}
  ],
  "metadata": {"user_id": "user-123"},
  "stop_sequences": ["\n\nHuman:"],
  "temperature": 0.5,
  "top_p": 0.9,
  "top_k": 40
}"#;

/// A streamed text answer (streaming guide, "Basic streaming request").
const TEXT_STREAM: &str = r#"event: message_start
data: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-opus-4-6", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}

event: content_block_start
data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 0}

event: message_delta
data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}

event: message_stop
data: {"type": "message_stop"}
"#;

/// A streamed answer with thinking and a tool call (streaming guide, "Streaming request with
/// tool use" and "with extended thinking"), trimmed to one delta per block.
const THINKING_TOOL_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-opus-4-6","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"I need the weather."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Okay, let's check"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San Francisco, CA\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}
"#;

/// A non-streamed tool-use answer (API reference, "Tool use").
const TOOL_ANSWER: &str = r#"{
  "id": "msg_01Aq9w938a90dw8q",
  "type": "message",
  "role": "assistant",
  "model": "claude-opus-4-6",
  "content": [
    {"type": "text", "text": "I'll check."},
    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
     "input": {"location": "San Francisco, CA", "unit": "celsius"}}
  ],
  "stop_reason": "tool_use",
  "stop_sequence": null,
  "usage": {"input_tokens": 12, "output_tokens": 6}
}"#;

/// An error (API reference, "Errors").
const ERROR: &str = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;

/// `(event name, data)` of an SSE text, pings left out (the API may send them anywhere).
fn events(sse: &str) -> Vec<(String, Value)> {
    sse.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .expect("event line");
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("data line");
            (
                name.to_owned(),
                serde_json::from_str(data).expect("data is JSON"),
            )
        })
        .filter(|(n, _)| n != "ping")
        .collect()
}

/// The shape of a value: objects by their keys (recursively), `type` and `index` by value,
/// other leaves by kind (strings, numbers, null).
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let s = if k == "type" || k == "index" || k == "stop_reason" {
                        v.clone()
                    } else {
                        shape(v)
                    };
                    (k.clone(), s)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        other => other.clone(),
    }
}

fn assert_same_events(ours: &str, theirs: &str) {
    let (ours, theirs) = (events(ours), events(theirs));
    let names = |e: &[(String, Value)]| e.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs), "event order");
    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        assert_eq!(a["type"], json!(name), "the data's type is the event name");
        assert_eq!(shape(a), shape(b), "fields of {name}");
    }
}

fn start(w: &mut EventWriter, out: &mut Vec<u8>, input: u64) -> Usage {
    let usage = Usage {
        input_tokens: input,
        output_tokens: 1,
        cache_read_input_tokens: None,
    };
    let msg = MessageOut::new(
        answer::message_id(),
        "claude-opus-4-6".into(),
        usage.clone(),
    );
    w.start(out, &msg);
    usage
}

#[test]
fn tool_round_trip_request_becomes_a_chat_request() {
    let wire: MessagesRequest = serde_json::from_str(TOOL_ROUND_TRIP).expect("SDK body");
    let (req, opts) = into_chat_request(wire, false).expect("converted");
    assert!(!opts.stream && !opts.thinking);
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::User
        ]
    );
    assert_eq!(req.messages[0].text(), "You are a weather bot.");
    let call = &req.messages[2].tool_calls[0];
    assert_eq!(call.id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call.name, "get_weather");
    let args: Value = serde_json::from_str(&call.arguments).expect("arguments JSON");
    assert_eq!(
        args,
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    assert_eq!(req.messages[2].text(), "I'll check.");
    assert_eq!(
        req.messages[3].tool_call_id.as_deref(),
        Some("toolu_01A09q90qw90lq917835lq9")
    );
    assert_eq!(req.messages[3].text(), "15 degrees");
    assert_eq!(req.messages[4].text(), "And tomorrow?");
    assert_eq!(req.tools[0].name, "get_weather");
    assert_eq!(
        req.tools[0].parameters.as_ref().map(|p| &p["required"]),
        Some(&json!(["location"]))
    );
    assert_eq!(req.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(req.max_tokens, Some(1024));
    assert_eq!(req.stop, ["\n\nHuman:"]);
    assert_eq!((req.temperature, req.top_p), (Some(0.5), Some(0.9)));
    assert_eq!(req.user.as_deref(), Some("user-123"));
    assert_eq!(req.extra.get("top_k"), Some(&json!(40)));
}

#[test]
fn images_thinking_and_choices() {
    let body = json!({
        "model": "m", "max_tokens": 2048, "stream": true,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tool_choice": {"type": "tool", "name": "f"},
        "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "text", "text": "What is this?"}
        ]}, {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hm", "signature": "sig"},
            {"type": "text", "text": "A picture."}
        ]}]
    });
    let wire: MessagesRequest = serde_json::from_value(body.clone()).expect("wire");
    let err = into_chat_request(wire, false).expect_err("remote image refused");
    assert_eq!(
        err.param.as_deref(),
        Some("messages[0].content[1].source.url")
    );
    let wire: MessagesRequest = serde_json::from_value(body).expect("wire");
    let (req, opts) = into_chat_request(wire, true).expect("converted");
    assert!(opts.stream && opts.thinking);
    assert_eq!(req.extra.get("reasoning_effort"), Some(&json!("low")));
    assert_eq!(req.tool_choice, Some(ToolChoice::Function("f".into())));
    let Some(Content::Parts(parts)) = &req.messages[0].content else {
        panic!("parts expected: {:?}", req.messages[0].content);
    };
    assert!(
        matches!(&parts[0], ContentPart::ImageUrl { image_url } if image_url.url == "data:image/png;base64,iVBORw0KGgo=")
    );
    assert!(
        matches!(&parts[1], ContentPart::ImageUrl { image_url } if image_url.url == "https://example.com/a.png")
    );
    assert_eq!(
        req.messages[1].text(),
        "A picture.",
        "thinking is not sent upstream"
    );
}

#[test]
fn output_config_is_effort_and_structured_output() {
    let wire: MessagesRequest = serde_json::from_value(json!({"model": "m", "max_tokens": 9,
        "messages": [{"role": "user", "content": "hi"}],
        "output_config": {"effort": "max", "format": {"type": "json_schema", "schema": {"type": "object"}}}}))
    .expect("wire");
    let (req, _) = into_chat_request(wire, false).expect("converted");
    assert_eq!(req.extra.get("reasoning_effort"), Some(&json!("high")));
    assert!(matches!(
        req.response_format,
        Some(llmux_core::ResponseFormat::JsonSchema { strict: Some(true), ref schema, .. })
            if schema.as_ref() == Some(&json!({"type": "object"}))
    ));
}

#[test]
fn refusals_name_the_field() {
    let refuse = |body: Value| -> String {
        match serde_json::from_value::<MessagesRequest>(body) {
            Err(e) => format!("parse: {e}"),
            Ok(w) => into_chat_request(w, false)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        }
    };
    let user = json!([{"role": "user", "content": "hi"}]);
    assert!(refuse(json!({"model": "m", "messages": user})).contains("max_tokens"));
    let server_tool = refuse(json!({"model": "m", "max_tokens": 5, "messages": user,
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]}));
    assert!(
        server_tool.contains("tools[0].type") && server_tool.contains("web_search_20250305"),
        "{server_tool}"
    );
    let field = refuse(json!({"model": "m", "max_tokens": 5, "messages": user,
        "tools": [{"name": "f", "input_schema": {"type": "object"}, "defer_loading": true}]}));
    assert!(field.contains("tools[0].defer_loading"), "{field}");
    assert!(
        refuse(json!({"model": "m", "max_tokens": 5, "messages": user, "container": "c"}))
            .contains("unknown field `container`")
    );
    let doc = refuse(
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user",
        "content": [{"type": "document", "source": {"type": "text", "data": "x", "media_type": "text/plain"}}]}]}),
    );
    assert!(doc.contains("document"), "{doc}");
    let misplaced = refuse(
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant",
        "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}]}),
    );
    assert!(misplaced.contains("messages[0].content[0]"), "{misplaced}");
    assert!(refuse(json!({"model": "m", "max_tokens": 5, "messages": []})).contains("messages"));
    // count_tokens has no max_tokens
    let wire: MessagesRequest =
        serde_json::from_value(json!({"model": "m", "messages": user})).expect("wire");
    assert!(convert::convert(wire, false).is_ok());
}

#[test]
fn text_stream_matches_the_api() {
    let mut out = Vec::new();
    let mut w = EventWriter::new();
    let usage = start(&mut w, &mut out, 25);
    w.text(&mut out, "Hello");
    w.text(&mut out, "!");
    let (reason, seq) = answer::stop_reason(Some(&FinishReason::Stop), false, None, &[]);
    w.finish(
        &mut out,
        reason,
        seq,
        &Usage {
            output_tokens: 15,
            ..usage
        },
        false,
    );
    let ours = String::from_utf8(out).expect("utf8");
    assert!(
        ours.lines().nth(2) == Some("") && ours.contains("event: ping\n"),
        "{ours}"
    );
    assert_same_events(&ours, TEXT_STREAM);
}

#[test]
fn thinking_and_tool_stream_matches_the_api() {
    let mut out = Vec::new();
    let mut w = EventWriter::new();
    let usage = start(&mut w, &mut out, 472);
    w.thinking(&mut out, "I need the weather.");
    w.text(&mut out, "Okay, let's check");
    w.tool(
        &mut out,
        0,
        Some("call_abc"),
        Some("get_weather"),
        "{\"location\": ",
    )
    .expect("tool start");
    w.tool(&mut out, 0, None, None, "\"San Francisco, CA\"}")
        .expect("tool piece");
    let (reason, seq) = answer::stop_reason(None, w.had_tool_calls(), None, &[]);
    assert_eq!(reason, StopReason::ToolUse);
    w.finish(
        &mut out,
        reason,
        seq,
        &Usage {
            output_tokens: 89,
            ..usage
        },
        false,
    );
    let ours = String::from_utf8(out).expect("utf8");
    // the two argument pieces are two deltas: merge them to compare with the one-delta transcript
    let mut got = events(&ours);
    assert_eq!(
        got[9].1["delta"]["partial_json"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
            + got[10].1["delta"]["partial_json"]
                .as_str()
                .unwrap_or_default(),
        "{\"location\": \"San Francisco, CA\"}"
    );
    got.remove(10);
    let rebuilt: String = got
        .iter()
        .map(|(n, d)| format!("event: {n}\ndata: {d}\n\n"))
        .collect();
    assert_same_events(&rebuilt, THINKING_TOOL_STREAM);
    assert_eq!(
        got[8].1["content_block"]["id"], "call_abc",
        "upstream ids are kept"
    );
}

#[test]
fn interleaved_parallel_calls_are_an_error_not_a_loss() {
    let mut out = Vec::new();
    let mut w = EventWriter::new();
    start(&mut w, &mut out, 1);
    w.tool(&mut out, 0, None, Some("a"), "{").expect("first");
    w.tool(&mut out, 1, None, Some("b"), "{}").expect("second");
    let ours = String::from_utf8(out.clone()).expect("utf8");
    assert!(
        ours.contains("\"id\":\"toolu_"),
        "made-up ids are toolu_: {ours}"
    );
    assert!(w.tool(&mut out, 0, None, None, "}").is_err());
}

#[test]
fn non_streamed_answer_matches_the_api() {
    let mut c = Collector::default();
    c.text("I'll");
    c.text(" check.");
    c.tool(
        0,
        Some("toolu_01A09q90qw90lq917835lq9"),
        Some("get_weather"),
        r#"{"location": "San Francisco, CA","#,
    );
    c.tool(0, None, None, r#" "unit": "celsius"}"#);
    assert!(c.had_tool_calls());
    let mut msg = MessageOut::new(
        answer::message_id(),
        "claude-opus-4-6".into(),
        Usage {
            input_tokens: 12,
            output_tokens: 6,
            cache_read_input_tokens: None,
        },
    );
    msg.content = c.finish().expect("blocks");
    let (reason, seq) = answer::stop_reason(Some(&FinishReason::ToolCalls), true, None, &[]);
    msg.stop_reason = Some(reason);
    msg.stop_sequence = seq;
    let ours = serde_json::to_value(&msg).expect("json");
    let theirs: Value = serde_json::from_str(TOOL_ANSWER).expect("transcript");
    assert_eq!(shape(&ours), shape(&theirs));
    assert_eq!(ours["content"][1]["input"], theirs["content"][1]["input"]);
    assert!(ours["id"].as_str().is_some_and(|i| i.starts_with("msg_")));
    let mut bad = Collector::default();
    bad.tool(0, None, Some("f"), "not json");
    assert!(bad.finish().is_err());
}

#[test]
fn stop_reasons() {
    let stops = ["END".to_owned()];
    assert_eq!(
        answer::stop_reason(Some(&FinishReason::Length), false, None, &stops).0,
        StopReason::MaxTokens
    );
    assert_eq!(
        answer::stop_reason(Some(&FinishReason::Stop), false, Some("END"), &stops),
        (StopReason::StopSequence, Some("END".into()))
    );
    assert_eq!(
        answer::stop_reason(Some(&FinishReason::Stop), false, Some("other"), &stops).0,
        StopReason::EndTurn
    );
    assert_eq!(
        answer::stop_reason(Some(&FinishReason::ContentFilter), false, None, &[]).0,
        StopReason::Refusal
    );
}

#[test]
fn errors_match_the_api() {
    let ours: Value = serde_json::from_slice(
        &ErrorBody::new("invalid_request_error", "max_tokens: Field required").to_json(),
    )
    .expect("json");
    let theirs: Value = serde_json::from_str(ERROR).expect("transcript");
    assert_eq!(shape(&ours), shape(&theirs));
    let table = [
        (400, ("invalid_request_error", 400)),
        (401, ("authentication_error", 401)),
        (403, ("permission_error", 403)),
        (404, ("not_found_error", 404)),
        (413, ("request_too_large", 413)),
        (429, ("rate_limit_error", 429)),
        (500, ("api_error", 500)),
        (502, ("api_error", 502)),
        (503, ("overloaded_error", 529)),
        (504, ("timeout_error", 504)),
    ];
    for (status, want) in table {
        assert_eq!(error_type(status), want, "{status}");
    }
}
