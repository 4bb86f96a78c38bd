//! `POST /v1/messages` over raw HTTP: against the testkit's fake OpenAI upstream (through the
//! openai-compat provider) and a scripted tool-calling provider.

use std::sync::{Arc, Mutex};

use futures_util::stream;
use llmux::core::Context;
use llmux::{
    Capabilities, ChatRequest, ChatStream, Chunk, Client, FinishReason, Provider, ProviderInfo,
    Role, ToolCallDelta, Usage,
};
use llmux_server::ServerConfig;
use llmux_testkit::Fault;
use llmux_testkit::client::{self, ClientResponse};
use llmux_testkit::openai::FakeOpenAi;
use serde_json::{Value, json};

mod common;

use common::{Gw, openai_client, start};

/// A gateway over `client`, needing `api_key` when given.
async fn serve(client: Client, api_key: Option<&str>) -> Gw {
    let config = ServerConfig {
        api_key: api_key.map(Into::into),
        ..common::config()
    };
    common::serve(client, config).await
}

const ANTHROPIC: [(&str, &str); 2] = [
    ("anthropic-version", "2023-06-01"),
    ("anthropic-beta", "fine-grained-tool-streaming-2025-05-14"),
];

/// `POST path` with Anthropic's headers.
async fn post(gw: &Gw, path: &str, body: &Value) -> ClientResponse {
    gw.post(path, &ANTHROPIC, body).await
}

fn hello(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 100, "stream": stream,
           "messages": [{"role": "user", "content": "hi there"}]})
}

/// `(event name, data)` of an SSE body; every event's data `type` is its name.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: "));
            let data = e.lines().find_map(|l| l.strip_prefix("data: "));
            let (Some(name), Some(data)) = (name, data) else {
                panic!("not an event: {e:?}");
            };
            let v: Value = serde_json::from_str(data).expect("data is JSON");
            assert_eq!(v["type"], name, "{e}");
            (name.to_owned(), v)
        })
        .collect()
}

fn names(ev: &[(String, Value)]) -> Vec<&str> {
    ev.iter().map(|(n, _)| n.as_str()).collect()
}

async fn anthropic_error(resp: ClientResponse) -> (u16, Value) {
    let status = resp.status.as_u16();
    let v = resp.json().await.expect("error json");
    assert_eq!(v["type"], "error", "{v}");
    (status, v["error"].clone())
}

#[tokio::test]
async fn non_streamed_message() {
    let (fake, gw) = start(FakeOpenAi::new().reply("Hello there!").usage(7, 3)).await;
    let mut body = hello("fake-model", false);
    body["system"] =
        json!([{"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}}]);
    body["stop_sequences"] = json!(["STOP"]);
    body["metadata"] = json!({"user_id": "u-1"});
    let resp = post(&gw, "/v1/messages", &body).await;
    assert_eq!(resp.status, 200);
    let v = resp.json().await.expect("json");
    assert!(
        v["id"].as_str().is_some_and(|i| i.starts_with("msg_")),
        "{v}"
    );
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "fake-model");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello there!"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(v["usage"], json!({"input_tokens": 7, "output_tokens": 3}));
    let sent = fake.requests_to("/v1/chat/completions")[0]
        .json()
        .expect("upstream body");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be kind."})
    );
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(sent["stop"], json!(["STOP"]));
    assert_eq!(sent["user"], "u-1");
}

#[tokio::test]
async fn streamed_message_events() {
    let (_fake, gw) = start(
        FakeOpenAi::new()
            .reply("one two three")
            .chunks(3)
            .usage(5, 3),
    )
    .await;
    let resp = post(&gw, "/v1/messages", &hello("fake-model", true)).await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    let text = resp.text().await.expect("body");
    let ev = events(&text);
    let n = names(&ev);
    assert_eq!(
        n[..3],
        ["message_start", "ping", "content_block_start"],
        "{text}"
    );
    assert_eq!(
        n[n.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let start = &ev[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert!(start["usage"]["input_tokens"].is_u64());
    assert_eq!(ev[2].1["index"], 0);
    assert_eq!(
        ev[2].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let streamed: String = ev
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(streamed, "one two three");
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(delta["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn thinking_is_shown_only_when_asked() {
    let (_fake, gw) = start(FakeOpenAi::new().reply("42").reasoning("Let me think.")).await;
    let v = post(&gw, "/v1/messages", &hello("fake-model", false))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(v["content"], json!([{"type": "text", "text": "42"}]));
    let mut body = hello("fake-model", true);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    let text = post(&gw, "/v1/messages", &body)
        .await
        .text()
        .await
        .expect("body");
    let ev = events(&text);
    let blocks: Vec<&Value> = ev
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| &d["content_block"])
        .collect();
    assert_eq!(blocks[0]["type"], "thinking");
    assert_eq!(blocks[1]["type"], "text");
    let kinds: Vec<&str> = ev
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["type"].as_str())
        .collect();
    assert!(kinds.starts_with(&["thinking_delta"]), "{kinds:?}");
    let sig = kinds
        .iter()
        .position(|k| *k == "signature_delta")
        .expect("signature");
    assert_eq!(
        kinds[sig + 1],
        "text_delta",
        "signature ends the thinking block"
    );
}

#[tokio::test]
async fn errors_are_anthropic_shaped() {
    let (_fake, gw) = start(FakeOpenAi::new()).await;
    let mut no_max = hello("fake-model", false);
    no_max.as_object_mut().map(|o| o.remove("max_tokens"));
    let (status, err) = anthropic_error(post(&gw, "/v1/messages", &no_max).await).await;
    assert_eq!(
        (status, err["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_tokens")),
        "{err}"
    );
    let (status, err) =
        anthropic_error(post(&gw, "/v1/messages", &hello("no-such-model", false)).await).await;
    assert_eq!(
        (status, err["type"].as_str()),
        (404, Some("not_found_error"))
    );
    let mut server_tool = hello("fake-model", false);
    server_tool["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let (status, err) = anthropic_error(post(&gw, "/v1/messages", &server_tool).await).await;
    assert_eq!(status, 400);
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("web_search_20250305")),
        "{err}"
    );
    let (status, _) = anthropic_error(
        client::send(
            llmux_testkit::Method::POST,
            &format!("{}/v1/messages", gw.url),
            &[("content-type", "application/json")],
            b"{not json".to_vec(),
        )
        .await
        .expect("resp"),
    )
    .await;
    assert_eq!(status, 400);
    let (status, err) = anthropic_error(
        client::get(&format!("{}/v1/messages", gw.url))
            .await
            .expect("resp"),
    )
    .await;
    assert_eq!(
        (status, err["type"].as_str()),
        (405, Some("invalid_request_error"))
    );
}

#[tokio::test]
async fn the_key_is_taken_from_x_api_key_or_bearer() {
    let fake = FakeOpenAi::new().start().await;
    let gw = serve(openai_client(&fake), Some("gw-key")).await;
    let url = format!("{}/v1/messages", gw.url);
    let body = hello("fake-model", false);
    let (status, err) = anthropic_error(
        client::post_json(&url, &ANTHROPIC, &body)
            .await
            .expect("resp"),
    )
    .await;
    assert_eq!(
        (status, err["type"].as_str()),
        (401, Some("authentication_error"))
    );
    let (status, err) = anthropic_error(
        client::post_json(&url, &[("x-api-key", "wrong")], &body)
            .await
            .expect("resp"),
    )
    .await;
    assert_eq!(
        (status, err["type"].as_str()),
        (401, Some("authentication_error"))
    );
    for header in [("x-api-key", "gw-key"), ("authorization", "Bearer gw-key")] {
        let resp = client::post_json(&url, &[header, ANTHROPIC[0]], &body)
            .await
            .expect("resp");
        assert_eq!(resp.status, 200, "{header:?}");
    }
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event_not_a_completion() {
    let (fake, gw) = start(FakeOpenAi::new().reply("one two three four five").chunks(5)).await;
    fake.inject("/v1/chat/completions", Fault::DisconnectAfter { chunks: 3 });
    let resp = post(&gw, "/v1/messages", &hello("fake-model", true)).await;
    assert_eq!(resp.status, 200);
    let text = resp.text().await.expect("body");
    let ev = events(&text);
    let n = names(&ev);
    assert_eq!(n.last(), Some(&"error"), "{text}");
    assert!(
        !n.contains(&"message_stop") && !n.contains(&"message_delta"),
        "{text}"
    );
    let err = &ev[ev.len() - 1].1["error"];
    assert!(
        err["type"].as_str().is_some_and(|t| t.ends_with("_error")),
        "{err}"
    );
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("openai-compat")),
        "{err}"
    );
}

#[tokio::test]
async fn count_tokens_estimates() {
    let (_fake, gw) = start(FakeOpenAi::new()).await;
    let body =
        json!({"model": "fake-model", "messages": [{"role": "user", "content": "a".repeat(400)}]});
    let v = post(&gw, "/v1/messages/count_tokens", &body)
        .await
        .json()
        .await
        .expect("json");
    // 400 bytes / 4 + 3 for the message + 3 for the reply
    assert_eq!(v, json!({"input_tokens": 106}));
}

/// Answers every request with a `get_weather` call (in two argument pieces) and records the
/// requests it got.
struct ToolCaller {
    info: ProviderInfo,
    seen: Mutex<Vec<ChatRequest>>,
}

impl Provider for ToolCaller {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn chat(&self, req: ChatRequest, _ctx: Context) -> ChatStream {
        let answered = req.messages.iter().any(|m| m.role == Role::Tool);
        self.seen.lock().expect("lock").push(req);
        let piece = |id: Option<&str>, name: Option<&str>, args: &str| {
            Ok(Chunk::ToolCall(ToolCallDelta {
                index: 0,
                id: id.map(Into::into),
                name: name.map(Into::into),
                arguments: args.into(),
                ..ToolCallDelta::default()
            }))
        };
        let items = if answered {
            vec![
                Ok(Chunk::text("It is 15 degrees.")),
                Ok(Chunk::Finish(FinishReason::Stop)),
            ]
        } else {
            vec![
                Ok(Chunk::text("Checking.")),
                piece(Some("call_1"), Some("get_weather"), "{\"location\":"),
                piece(None, None, "\"Paris\"}"),
                Ok(Chunk::Finish(FinishReason::ToolCalls)),
                Ok(Chunk::Usage(Usage::new(20, 9))),
            ]
        };
        Box::pin(stream::iter(items))
    }
}

async fn start_tools() -> (Arc<ToolCaller>, Gw) {
    let p = Arc::new(ToolCaller {
        info: ProviderInfo {
            name: "tools".into(),
            working: true,
            default_model: "tool-model".into(),
            models: vec!["tool-model".into()],
            capabilities: Capabilities {
                tools: true,
                ..Capabilities::default()
            },
            ..ProviderInfo::default()
        },
        seen: Mutex::new(Vec::new()),
    });
    let client = Client::builder()
        .ignore_env()
        .registrations(Vec::new())
        .with_provider(p.clone())
        .build()
        .expect("client");
    (p, serve(client, None).await)
}

fn weather(stream: bool) -> Value {
    json!({"model": "tool-model", "max_tokens": 200, "stream": stream,
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema":
            {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
        "tool_choice": {"type": "any"},
        "messages": [{"role": "user", "content": "Weather in Paris?"}]})
}

#[tokio::test]
async fn tool_use_round_trip() {
    let (p, gw) = start_tools().await;
    let v = post(&gw, "/v1/messages", &weather(false))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    assert_eq!(
        v["content"][0],
        json!({"type": "text", "text": "Checking."})
    );
    assert_eq!(
        v["content"][1],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}})
    );
    assert_eq!(v["usage"], json!({"input_tokens": 20, "output_tokens": 9}));
    {
        let seen = p.seen.lock().expect("lock");
        assert_eq!(seen[0].tools[0].name, "get_weather");
        assert_eq!(seen[0].tool_choice, Some(llmux::ToolChoice::Required));
    }
    // the second turn: the assistant's tool_use and the user's tool_result
    let mut next = weather(false);
    next["messages"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": v["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "15 C"}]}]}
    ]);
    let v2 = post(&gw, "/v1/messages", &next)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        v2["content"],
        json!([{"type": "text", "text": "It is 15 degrees."}])
    );
    assert_eq!(v2["stop_reason"], "end_turn");
    let seen = p.seen.lock().expect("lock");
    let msgs = &seen[1].messages;
    assert_eq!(msgs[1].tool_calls[0].id, "call_1");
    assert_eq!(msgs[1].tool_calls[0].arguments, r#"{"location":"Paris"}"#);
    assert_eq!(msgs[2].role, Role::Tool);
    assert_eq!(msgs[2].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(msgs[2].text(), "15 C");
}

#[tokio::test]
async fn streamed_tool_use() {
    let (_p, gw) = start_tools().await;
    let text = post(&gw, "/v1/messages", &weather(true))
        .await
        .text()
        .await
        .expect("body");
    let ev = events(&text);
    let starts: Vec<&Value> = ev
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(starts[1]["index"], 1);
    assert_eq!(
        starts[1]["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}})
    );
    let json_text: String = ev
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| {
            assert_eq!(d["index"], 1);
            d["delta"]["partial_json"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(json_text, r#"{"location":"Paris"}"#);
    let delta = ev
        .iter()
        .find(|(n, _)| n == "message_delta")
        .expect("message_delta");
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        delta.1["usage"],
        json!({"output_tokens": 9, "input_tokens": 20})
    );
    assert_eq!(names(&ev).last(), Some(&"message_stop"));
}

#[tokio::test]
async fn client_tools_reach_an_openai_upstream_as_functions() {
    let (fake, gw) = start(FakeOpenAi::new()).await;
    let mut body = hello("fake-model", false);
    body["tools"] = json!([{"name": "f", "description": "d", "input_schema": {"type": "object"}}]);
    body["tool_choice"] = json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true});
    let resp = post(&gw, "/v1/messages", &body).await;
    assert_eq!(resp.status, 200);
    let sent = fake.requests_to("/v1/chat/completions")[0]
        .json()
        .expect("body");
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}])
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
    assert_eq!(sent["parallel_tool_calls"], false);
}
