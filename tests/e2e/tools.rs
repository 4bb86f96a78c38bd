//! Tool calling, structured output and unknown fields end to end (issue #12): through the facade
//! and the gateway, against the OpenAI fake with scripted upstream answers and an in-process
//! provider without native tools.

use std::sync::Arc;
use std::time::Duration;

use llmux::core::Context;
use llmux::{
    Accumulator, Capabilities, ChatRequest, ChatStream, Chunk, Client, Error, FinishReason,
    Message, Provider, ProviderConfig, ProviderInfo, Tool, ToolCall,
};
use llmux_e2e::gateway::{Gw, events};
use llmux_e2e::{drain, short_timeouts};
use llmux_server::ServerConfig;
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::{FakeServer, Fault, Reply};
use serde_json::{Value, json};

const CHAT: &str = "/v1/chat/completions";

/// An upstream answer with two parallel calls whose pieces interleave, OpenAI-shaped, with the
/// fields llmux does not model (`system_fingerprint`, `refusal: null`, `logprobs: null`).
fn two_calls_sse() -> Vec<String> {
    let ev = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1,
                   "model": "fake-model", "system_fingerprint": "fp_up",
                   "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        )
    };
    let call = |i: u32, id: &str, name: &str| json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]});
    let args =
        |i: u32, a: &str| json!({"tool_calls": [{"index": i, "function": {"arguments": a}}]});
    vec![
        ev(
            json!({"role": "assistant", "content": null, "refusal": null}),
            Value::Null,
        ),
        ev(call(0, "call_a", "get_weather"), Value::Null),
        ev(args(0, "{\"city\":"), Value::Null),
        ev(call(1, "call_b", "get_time"), Value::Null),
        ev(args(1, "{\"tz\":\"CET\"}"), Value::Null),
        ev(args(0, "\"Paris\"}"), Value::Null),
        ev(json!({}), json!("tool_calls")),
        "data: [DONE]\n\n".to_owned(),
    ]
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}
    ])
}

fn expected_calls() -> Vec<ToolCall> {
    vec![
        ToolCall::new("call_a", "get_weather", r#"{"city":"Paris"}"#),
        ToolCall::new("call_b", "get_time", r#"{"tz":"CET"}"#),
    ]
}

fn openai_client(fake: &FakeServer) -> Client {
    Client::builder()
        .ignore_env()
        .registrations(llmux_e2e::runner::registrations("openai-compat"))
        .provider(
            "openai-compat",
            ProviderConfig::default().with_base_url(fake.url("/v1")),
        )
        .timeouts(short_timeouts())
        .build()
        .expect("client")
}

fn tool_request() -> ChatRequest {
    let tools: Vec<Tool> = serde_json::from_value::<Vec<Value>>(weather_tools())
        .expect("tools")
        .into_iter()
        .map(|t| serde_json::from_value(t["function"].clone()).expect("tool"))
        .collect();
    let mut req = ChatRequest::user("fake-model", "Weather and time in Paris?");
    req.tools = tools;
    req
}

/// Tool-call pieces split at every byte boundary of the upstream body assemble into the same
/// two calls, and the upstream received the tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_deltas_split_at_every_byte_boundary() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new().start().await;
    let client = openai_client(&fake);
    let body: String = two_calls_sse().concat();
    for cut in 1..body.len() {
        let (a, b) = body.as_bytes().split_at(cut);
        let reply = Reply::chunked("text/event-stream", [a.to_vec(), b.to_vec()]);
        fake.inject(CHAT, Fault::Reply(reply));
        let (chunks, err) = drain(client.chat(tool_request())).await;
        assert!(err.is_none(), "cut at {cut}: {err:?}");
        let mut acc = Accumulator::new();
        for c in &chunks {
            acc.push(c);
        }
        let r = acc.finish();
        assert_eq!(r.tool_calls, expected_calls(), "cut at {cut}");
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(r.extra.response["system_fingerprint"], "fp_up");
    }
    let sent = fake.requests_to(CHAT);
    let up = sent[0].json().expect("json");
    assert_eq!(up["tools"], weather_tools());
}

/// The gateway streams OpenAI's exact tool-call shape: the first piece of a call carries
/// index, id, type and name; later pieces only arguments; finish reason `tool_calls`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_streams_openai_tool_call_shape() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new().start().await;
    let gw = Gw::start(openai_client(&fake), ServerConfig::default()).await;
    fake.inject(
        CHAT,
        Fault::Reply(Reply::chunked("text/event-stream", two_calls_sse())),
    );
    let body = json!({"model": "fake-model", "stream": true, "tools": weather_tools(),
        "parallel_tool_calls": true, "tool_choice": "auto",
        "messages": [{"role": "user", "content": "Weather and time?"}]});
    let resp = llmux_testkit::client::post_json(&gw.url(CHAT), &[], &body)
        .await
        .expect("response");
    assert_eq!(resp.status, 200);
    let text = resp.text().await.expect("body");
    let evs: Vec<Value> = events(&text)
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).expect("json"))
        .collect();
    let pieces: Vec<&Value> = evs
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(
        pieces[0],
        &json!({"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}})
    );
    assert_eq!(
        pieces[1],
        &json!({"index": 0, "function": {"arguments": "{\"city\":"}})
    );
    assert_eq!(pieces[2]["id"], "call_b");
    assert_eq!(pieces.len(), 5, "{text}");
    assert_eq!(evs[0]["choices"][0]["delta"]["role"], "assistant");
    let last = evs.last().expect("last");
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
    assert!(
        evs.iter().all(|e| e["system_fingerprint"] == "fp_up"),
        "{text}"
    );
    assert!(evs.iter().all(|e| e.get("usage").is_none()));
    let up = fake.requests_to(CHAT)[0].json().expect("json");
    assert_eq!(
        (
            up["tools"].clone(),
            up["tool_choice"].clone(),
            up["parallel_tool_calls"].clone()
        ),
        (weather_tools(), json!("auto"), json!(true))
    );
    gw.stop().await.expect("stops");
}

/// Non-stream: `message.tool_calls` with `content: null`, then the second turn of the agent loop
/// reaches the upstream with the assistant's calls and the tool results intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_non_stream_tool_round_trip() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new().start().await;
    let gw = Gw::start(openai_client(&fake), ServerConfig::default()).await;
    let upstream = json!({"id": "x", "object": "chat.completion", "created": 1, "model": "fake-model",
        "system_fingerprint": "fp_up", "service_tier": "default",
        "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": null, "refusal": null, "annotations": [],
                "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13, "completion_tokens_details": {"reasoning_tokens": 0}}});
    fake.inject(CHAT, Fault::Reply(Reply::json(200, &upstream)));
    let ask = json!({"model": "fake-model", "tools": weather_tools(), "user": "u-1",
        "metadata": {"team": "a"}, "reasoning_effort": "low",
        "messages": [{"role": "user", "content": "Weather?"}]});
    let resp = llmux_testkit::client::post_json(&gw.url(CHAT), &[], &ask)
        .await
        .expect("response");
    assert_eq!(resp.status, 200);
    let v = resp.json().await.expect("json");
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], Value::Null);
    assert_eq!(
        msg["tool_calls"],
        upstream["choices"][0]["message"]["tool_calls"]
    );
    assert_eq!(msg["annotations"], json!([]));
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["system_fingerprint"], "fp_up");
    assert_eq!(v["service_tier"], "default");
    assert_eq!(v["usage"], upstream["usage"]);
    let up = fake.requests_to(CHAT)[0].json().expect("json");
    assert_eq!(up["metadata"], json!({"team": "a"}));
    assert_eq!(
        (up["reasoning_effort"].clone(), up["user"].clone()),
        (json!("low"), json!("u-1"))
    );

    let turn2 = json!({"model": "fake-model", "tools": weather_tools(), "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": msg["tool_calls"].clone()},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}]});
    let resp = llmux_testkit::client::post_json(&gw.url(CHAT), &[], &turn2)
        .await
        .expect("response");
    assert_eq!(resp.status, 200);
    let up = fake.requests_to(CHAT)[1].json().expect("json");
    assert_eq!(
        up["messages"], turn2["messages"],
        "history relayed verbatim"
    );
    gw.stop().await.expect("stops");
}

/// A provider without native tools (a scripted one that echoes the last user message).
struct Plain {
    info: ProviderInfo,
}

impl Plain {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            info: ProviderInfo {
                name: "plain".into(),
                label: "Plain".into(),
                working: true,
                default_model: "plain-model".into(),
                models: vec!["plain-model".into()],
                capabilities: Capabilities::plain(&["temperature"], &[]),
                ..ProviderInfo::default()
            },
        })
    }
}

impl Provider for Plain {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn chat(&self, req: ChatRequest, _ctx: Context) -> ChatStream {
        // answers with a tool call in the emulation's JSON form when the prompt offers tools
        let offered = req
            .messages
            .iter()
            .any(|m| m.text().contains("\"get_weather\""));
        let reply = if offered {
            r#"{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}"#.to_owned()
        } else {
            format!(
                "echo: {}",
                req.messages.last().map(Message::text).unwrap_or_default()
            )
        };
        let pieces: Vec<Result<Chunk, Error>> = reply
            .as_bytes()
            .chunks(7)
            .map(|c| Ok(Chunk::text(String::from_utf8_lossy(c).into_owned())))
            .chain([Ok(Chunk::Finish(FinishReason::Stop))])
            .collect();
        Box::pin(futures_util::stream::iter(pieces))
    }
}

fn plain_client(emulation: bool) -> Client {
    Client::builder()
        .ignore_env()
        .registrations(Vec::new())
        .with_provider(Plain::new())
        .tool_emulation(emulation)
        .build()
        .expect("client")
}

/// Tools on a provider without them: a 400 naming the provider, the field and the switch;
/// with emulation on, real tool-call chunks in OpenAI's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_on_a_plain_provider_are_refused_or_emulated() {
    let _shared = llmux_e2e::shared().await;
    let ask = |emulate: Option<bool>, stream: bool| {
        let mut b = json!({"model": "plain-model", "provider": "plain", "stream": stream,
            "tools": weather_tools(), "messages": [{"role": "user", "content": "Weather in Oslo?"}]});
        if let Some(e) = emulate {
            b["tool_emulation"] = json!(e);
        }
        b
    };
    let gw = Gw::start(plain_client(false), ServerConfig::default()).await;
    let resp = llmux_testkit::client::post_json(&gw.url(CHAT), &[], &ask(None, false))
        .await
        .expect("response");
    assert_eq!(resp.status, 400);
    let e = resp.json().await.expect("json");
    assert_eq!(e["error"]["param"], "tools");
    assert_eq!(e["error"]["code"], "unsupported_parameter");
    let m = e["error"]["message"].as_str().expect("message");
    assert!(m.contains("plain") && m.contains("tool_emulation"), "{m}");

    for stream in [false, true] {
        let resp = llmux_testkit::client::post_json(&gw.url(CHAT), &[], &ask(Some(true), stream))
            .await
            .expect("response");
        assert_eq!(resp.status, 200);
        let text = resp.text().await.expect("body");
        let (name, args, finish) = if stream {
            let evs: Vec<Value> = events(&text)
                .iter()
                .filter(|e| *e != "[DONE]")
                .map(|e| serde_json::from_str(e).expect("json"))
                .collect();
            let first = &evs[0]["choices"][0]["delta"]["tool_calls"][0];
            assert!(
                first["id"].as_str().is_some_and(|i| i.starts_with("call_")),
                "{text}"
            );
            let last = evs.last().expect("last")["choices"][0]["finish_reason"].clone();
            (
                first["function"]["name"].clone(),
                first["function"]["arguments"].clone(),
                last,
            )
        } else {
            let v: Value = serde_json::from_str(&text).expect("json");
            let call = &v["choices"][0]["message"]["tool_calls"][0];
            assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
            (
                call["function"]["name"].clone(),
                call["function"]["arguments"].clone(),
                v["choices"][0]["finish_reason"].clone(),
            )
        };
        assert_eq!(name, "get_weather", "{text}");
        assert_eq!(args, r#"{"city":"Oslo"}"#);
        assert_eq!(finish, "tool_calls");
    }
    gw.stop().await.expect("stops");
}

/// Sampling fields a provider lacks are ignored out loud (`x-llmux-ignored-params`); fields
/// whose loss changes the answer are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_params_are_named_and_answer_changing_ones_refused() {
    let _shared = llmux_e2e::shared().await;
    let gw = Gw::start(plain_client(false), ServerConfig::default()).await;
    for stream in [false, true] {
        let body = json!({"model": "plain-model", "stream": stream, "temperature": 0.3, "seed": 7,
            "metadata": {"a": 1}, "messages": [{"role": "user", "content": "hi"}]});
        let resp = llmux_testkit::client::post_json(&gw.url(CHAT), &[], &body)
            .await
            .expect("response");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("x-llmux-ignored-params"), Some("seed,metadata"));
    }
    for (field, value) in [
        ("logprobs", json!(true)),
        ("n", json!(2)),
        ("modalities", json!(["text", "audio"])),
    ] {
        let mut body =
            json!({"model": "plain-model", "messages": [{"role": "user", "content": "hi"}]});
        body[field] = value;
        let resp = llmux_testkit::client::post_json(&gw.url(CHAT), &[], &body)
            .await
            .expect("response");
        assert_eq!(resp.status, 400, "{field}");
        let e = resp.json().await.expect("json");
        assert_eq!(e["error"]["param"], field);
    }
    gw.stop().await.expect("stops");
}

/// A tool-call stream cut in the middle of the arguments is an error, never a half call
/// reported as complete, and no other provider is tried after the first tool-call piece.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_tool_call_stream_is_an_error_without_fallback() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new().start().await;
    let backup = FakeOpenAi::new().reply("backup answer").start().await;
    let client = Client::builder()
        .ignore_env()
        .registrations(llmux_e2e::runner::registrations("openai-compat"))
        .provider(
            "openai-compat",
            ProviderConfig::default().with_base_url(fake.url("/v1")),
        )
        .instance(
            "backup",
            "openai-compat",
            ProviderConfig::default().with_base_url(backup.url("/v1")),
        )
        .priority(["openai-compat", "backup"])
        .timeouts(short_timeouts())
        .build()
        .expect("client");
    let cut: Vec<String> = two_calls_sse().into_iter().take(3).collect();
    fake.inject_times(
        CHAT,
        Fault::Reply(Reply::chunked("text/event-stream", cut)),
        2,
    );
    let (chunks, err) = drain(client.chat(tool_request())).await;
    assert!(
        matches!(&err, Some(Error::Protocol { message, .. }) if message.contains("truncated")),
        "{err:?}"
    );
    assert!(chunks.iter().any(|c| matches!(c, Chunk::ToolCall(_))));
    assert!(!chunks.iter().any(|c| matches!(c, Chunk::Finish(_))));
    assert!(
        backup.requests_to(CHAT).is_empty(),
        "no fallback after output"
    );

    let gw = Gw::start(client, ServerConfig::default()).await;
    let body = json!({"model": "fake-model", "stream": true, "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Weather?"}]});
    let text = llmux_testkit::client::post_json(&gw.url(CHAT), &[], &body)
        .await
        .expect("response")
        .text()
        .await
        .expect("body");
    let evs = events(&text);
    assert_eq!(evs.last().map(String::as_str), Some("[DONE]"));
    let err_ev: Value = serde_json::from_str(&evs[evs.len() - 2]).expect("error event");
    assert_eq!(err_ev["error"]["code"], "protocol", "{text}");
    assert!(!text.contains("\"finish_reason\":\"tool_calls\""), "{text}");
    assert!(backup.requests_to(CHAT).is_empty());
    gw.stop().await.expect("stops");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Structured output: forwarded to OpenAI-shaped upstreams, emulated on a plain provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_format_is_forwarded_or_emulated() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new().start().await;
    let gw = Gw::start(openai_client(&fake), ServerConfig::default()).await;
    let format = json!({"type": "json_schema", "json_schema": {"name": "w", "strict": true,
        "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}});
    let body = json!({"model": "fake-model", "response_format": format, "messages": [{"role": "user", "content": "x"}]});
    let resp = llmux_testkit::client::post_json(&gw.url(CHAT), &[], &body)
        .await
        .expect("response");
    assert_eq!(resp.status, 200);
    assert_eq!(
        fake.requests_to(CHAT)[0].json().expect("json")["response_format"],
        format
    );
    gw.stop().await.expect("stops");

    let gw = Gw::start(plain_client(true), ServerConfig::default()).await;
    let body = json!({"model": "plain-model", "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "{\"city\": \"Rome\"} please"}]});
    let resp = llmux_testkit::client::post_json(&gw.url(CHAT), &[], &body)
        .await
        .expect("response");
    assert_eq!(resp.status, 200);
    let v = resp.json().await.expect("json");
    // the plain provider echoes "echo: {...} please": the JSON is taken out of the prose
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "{\"city\": \"Rome\"}"
    );
    gw.stop().await.expect("stops");
}

/// An OpenAI-shaped upstream error keeps its status, type, code, param and message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_openai_errors_keep_their_meaning() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new().start().await;
    let gw = Gw::start(openai_client(&fake), ServerConfig::default()).await;
    let upstream = json!({"error": {"message": "This model's maximum context length is 8192 tokens.",
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}});
    for stream in [false, true] {
        fake.inject(CHAT, Fault::Reply(Reply::json(400, &upstream)));
        let body = json!({"model": "fake-model", "stream": stream, "messages": [{"role": "user", "content": "long"}]});
        let resp = llmux_testkit::client::post_json(&gw.url(CHAT), &[], &body)
            .await
            .expect("response");
        assert_eq!(resp.status, 400);
        let v = resp.json().await.expect("json");
        assert_eq!(v, upstream, "relayed unchanged");
    }
    gw.stop().await.expect("stops");
}

/// Dialects of OpenAI-compatible servers in the wild, through the facade and the gateway:
/// keep-alive comments while the request waits, a role-only first chunk, `logprobs: null` on
/// every choice, tool-call pieces that repeat id, type and name, a last `delta: {}`, and an SSE
/// body sent without a content type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialects_of_servers_in_the_wild() {
    let _shared = llmux_e2e::shared().await;
    let piece = |args: &str| {
        format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "logprobs": null, "finish_reason": null, "delta": {"tool_calls": [
                {"index": 0, "id": "call_x", "type": "function", "function": {"name": "get_weather", "arguments": args}}]}}]})
        )
    };
    let body = vec![
        ": ping - 2026-12-02 06:00:00\n\n".to_owned(),
        format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "logprobs": null, "delta": {"role": "assistant"}}]})
        ),
        ": ping\n\n".to_owned(),
        piece("{\"city\""),
        piece(":\"Paris\"}"),
        format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "logprobs": null, "delta": {}, "finish_reason": "tool_calls"}]})
        ),
        "data: [DONE]\n\n".to_owned(),
    ];
    let fake = FakeOpenAi::new().start().await;
    let client = openai_client(&fake);
    for content_type in ["text/event-stream", ""] {
        let mut reply = Reply::chunked("text/event-stream", body.clone());
        if content_type.is_empty() {
            reply = Reply::new(200).chunks(body.clone());
        }
        fake.inject(CHAT, Fault::Reply(reply));
        let (chunks, err) = drain(client.chat(tool_request())).await;
        assert!(err.is_none(), "{content_type:?}: {err:?}");
        let mut acc = Accumulator::new();
        chunks.iter().for_each(|c| acc.push(c));
        let r = acc.finish();
        assert_eq!(
            r.tool_calls,
            [ToolCall::new(
                "call_x",
                "get_weather",
                r#"{"city":"Paris"}"#
            )],
            "{content_type:?}: names are not concatenated"
        );
    }
    let gw = Gw::start(client, ServerConfig::default()).await;
    fake.inject(
        CHAT,
        Fault::Reply(Reply::chunked("text/event-stream", body)),
    );
    let ask = json!({"model": "fake-model", "stream": true, "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Weather?"}]});
    let text = llmux_testkit::client::post_json(&gw.url(CHAT), &[], &ask)
        .await
        .expect("response")
        .text()
        .await
        .expect("body");
    let names = text.matches("\"name\":\"get_weather\"").count();
    assert_eq!(names, 1, "the name is sent once: {text}");
    assert!(text.contains("\"finish_reason\":\"tool_calls\""), "{text}");
    gw.stop().await.expect("stops");
}
