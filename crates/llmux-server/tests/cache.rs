//! The response cache of `POST /v1/chat/completions` over raw HTTP: against the testkit's fake
//! OpenAI upstream (whose recorded requests show when the upstream was asked) and a provider
//! that hands out conversation state.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Gw, T, builder, concat, config, json_events, serve};
use futures_util::stream;
use llmux::core::Context;
use llmux::{ChatRequest, ChatStream, Chunk, Client, Conversation, Provider, ProviderInfo};
use llmux_server::{CacheConfig, ServerConfig};
use llmux_testkit::client::ClientResponse;
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::{FakeServer, Fault};
use serde_json::{Value, json};

const CHAT: &str = "/v1/chat/completions";
const USE: (&str, &str) = ("x-llmux-cache", "use");
const REPLY: &str = "Hello from the fake upstream!";

async fn start(fake: FakeOpenAi, config: ServerConfig) -> (FakeServer, Gw) {
    let fake = fake.start().await;
    let gw = serve(builder(&fake).build().expect("client"), config).await;
    (fake, gw)
}

async fn ask(gw: &Gw, headers: &[(&str, &str)], body: &Value) -> ClientResponse {
    gw.post(CHAT, headers, body).await
}

fn question(text: &str, stream: bool) -> Value {
    json!({"model": "fake-model", "stream": stream, "messages": [{"role": "user", "content": text}]})
}

/// Chat requests the fake upstream received.
fn upstream_calls(fake: &FakeServer) -> usize {
    fake.requests_to(CHAT).len()
}

fn cache_header(resp: &ClientResponse) -> Option<String> {
    resp.header("x-llmux-cache").map(str::to_owned)
}

/// The content of a non-streamed answer.
async fn content(resp: ClientResponse) -> String {
    assert_eq!(resp.status, 200);
    let v = resp.json().await.expect("json");
    assert_eq!(v["object"], "chat.completion");
    v["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned()
}

/// The chunks of a streamed answer (after checking it is SSE ending with `[DONE]`).
async fn sse_chunks(resp: ClientResponse) -> Vec<Value> {
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream")),
        "{:?}",
        resp.header("content-type")
    );
    let body = resp.text().await.expect("body");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    json_events(&body)
}

fn finish_reason(chunks: &[Value]) -> Option<String> {
    chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_owned))
}

async fn metrics(gw: &Gw) -> String {
    gw.get("/metrics", &[]).await.text().await.expect("text")
}

#[tokio::test]
async fn miss_then_hit_asks_the_upstream_once() {
    let (fake, gw) = start(FakeOpenAi::new(), config()).await;
    let q = question("hi there", false);

    let first = ask(&gw, &[USE], &q).await;
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    let usage_mark = first.header("x-llmux-usage").map(str::to_owned);
    assert_eq!(content(first).await, REPLY);
    assert_eq!(upstream_calls(&fake), 1);

    let second = ask(&gw, &[USE], &q).await;
    assert_eq!(cache_header(&second).as_deref(), Some("hit"));
    assert_eq!(
        second.header("x-llmux-usage").map(str::to_owned),
        usage_mark
    );
    let v = second.json().await.expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], REPLY);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["provider"], "openai-compat");
    assert!(
        v["usage"]["total_tokens"].as_u64().is_some_and(|n| n > 0),
        "{v}"
    );
    assert_eq!(
        upstream_calls(&fake),
        1,
        "the hit did not reach the upstream"
    );

    // without opting in: no cache, no header
    let plain = ask(&gw, &[], &q).await;
    assert_eq!(cache_header(&plain), None);
    assert_eq!(content(plain).await, REPLY);
    assert_eq!(upstream_calls(&fake), 2);

    let m = metrics(&gw).await;
    assert!(
        m.contains(r#"llmux_cache_requests_total{result="hit"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"llmux_cache_requests_total{result="miss"} 1"#),
        "{m}"
    );
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn streamed_hit_replays_as_sse() {
    let (fake, gw) = start(FakeOpenAi::new().chunks(4), config()).await;
    let q = question("stream me", true);

    let first = ask(&gw, &[USE], &q).await;
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    let live = sse_chunks(first).await;
    let second = ask(&gw, &[USE], &q).await;
    assert_eq!(cache_header(&second).as_deref(), Some("hit"));
    let replay = sse_chunks(second).await;
    assert_eq!(upstream_calls(&fake), 1);

    assert_eq!(concat(&live, "content"), REPLY);
    assert_eq!(concat(&replay, "content"), concat(&live, "content"));
    assert_eq!(finish_reason(&replay), finish_reason(&live));
    assert_eq!(finish_reason(&replay).as_deref(), Some("stop"));
    for field in ["object", "model", "provider", "system_fingerprint"] {
        assert_eq!(replay[0][field], live[0][field], "{field}");
    }
    assert_eq!(replay[0]["choices"][0]["delta"]["role"], "assistant");
    assert_ne!(replay[0]["id"], live[0]["id"], "a new completion id");
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn entries_serve_the_other_mode() {
    let (fake, gw) = start(FakeOpenAi::new().reasoning("Let me think."), config()).await;

    // filled by a stream, read as JSON
    let first = ask(&gw, &[USE], &question("one", true)).await;
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    let _ = sse_chunks(first).await;
    let hit = ask(&gw, &[USE], &question("one", false)).await;
    assert_eq!(cache_header(&hit).as_deref(), Some("hit"));
    let v = hit.json().await.expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], REPLY);
    assert_eq!(
        v["choices"][0]["message"]["reasoning_content"],
        "Let me think."
    );
    assert_eq!(upstream_calls(&fake), 1);

    // filled as JSON, read as a stream
    let first = ask(&gw, &[USE], &question("two", false)).await;
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    assert_eq!(content(first).await, REPLY);
    let hit = ask(&gw, &[USE], &question("two", true)).await;
    assert_eq!(cache_header(&hit).as_deref(), Some("hit"));
    let chunks = sse_chunks(hit).await;
    assert_eq!(concat(&chunks, "content"), REPLY);
    assert_eq!(concat(&chunks, "reasoning_content"), "Let me think.");
    assert_eq!(upstream_calls(&fake), 2);
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn no_store_and_no_cache() {
    let (fake, gw) = start(FakeOpenAi::new(), config()).await;
    let q = question("directives", false);

    // no-store: neither read nor filled
    for _ in 0..2 {
        let r = ask(&gw, &[USE, ("cache-control", "no-store")], &q).await;
        assert_eq!(cache_header(&r), None);
        assert_eq!(content(r).await, REPLY);
    }
    assert_eq!(upstream_calls(&fake), 2);
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(
        cache_header(&r).as_deref(),
        Some("miss"),
        "no-store filled nothing"
    );
    let _ = content(r).await;
    assert_eq!(upstream_calls(&fake), 3);

    // no-cache: not read, but filled
    let q = question("fresh", false);
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(cache_header(&r).as_deref(), Some("miss"));
    let _ = content(r).await;
    let r = ask(&gw, &[USE, ("cache-control", "no-cache")], &q).await;
    assert_eq!(cache_header(&r).as_deref(), Some("miss"));
    let _ = content(r).await;
    assert_eq!(upstream_calls(&fake), 5, "no-cache went upstream");
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(cache_header(&r).as_deref(), Some("hit"));
    assert_eq!(content(r).await, REPLY);
    assert_eq!(upstream_calls(&fake), 5);

    // a no-cache request alone (with a model rule) refills too
    let rules = ServerConfig {
        cache: Some(CacheConfig {
            enabled_models: vec!["fake-model".into()],
            ..CacheConfig::default()
        }),
        ..config()
    };
    let (fake, gw2) = start(FakeOpenAi::new(), rules).await;
    let q = question("ruled", false);
    let r = ask(&gw2, &[("cache-control", "no-cache")], &q).await;
    assert_eq!(cache_header(&r).as_deref(), Some("miss"));
    let _ = content(r).await;
    let r = ask(&gw2, &[], &q).await;
    assert_eq!(cache_header(&r).as_deref(), Some("hit"));
    let _ = content(r).await;
    assert_eq!(upstream_calls(&fake), 1);
    gw2.stop().await.expect("stopped");
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn model_rules_and_skip() {
    let rules = ServerConfig {
        cache: Some(CacheConfig {
            enabled_models: vec!["fake-model".into()],
            ..CacheConfig::default()
        }),
        ..config()
    };
    let (fake, gw) = start(FakeOpenAi::new().model("other-model"), rules).await;
    let q = question("by rule", false);
    let r = ask(&gw, &[], &q).await;
    assert_eq!(cache_header(&r).as_deref(), Some("miss"));
    let _ = content(r).await;
    let r = ask(&gw, &[], &q).await;
    assert_eq!(cache_header(&r).as_deref(), Some("hit"));
    let _ = content(r).await;
    assert_eq!(upstream_calls(&fake), 1);

    let r = ask(&gw, &[("x-llmux-cache", "skip")], &q).await;
    assert_eq!(cache_header(&r), None);
    let _ = content(r).await;
    assert_eq!(upstream_calls(&fake), 2, "skip went upstream");

    let other =
        json!({"model": "other-model", "messages": [{"role": "user", "content": "by rule"}]});
    for _ in 0..2 {
        let r = ask(&gw, &[], &other).await;
        assert_eq!(cache_header(&r), None, "no rule for this model");
        let _ = content(r).await;
    }
    assert_eq!(upstream_calls(&fake), 4);
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn errors_are_not_cached() {
    let (fake, gw) = start(FakeOpenAi::new(), config()).await;
    let q = question("fails first", false);
    fake.inject(CHAT, Fault::status(400));
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(r.status, 400);
    assert_eq!(cache_header(&r).as_deref(), Some("miss"));
    let calls = upstream_calls(&fake);
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(
        cache_header(&r).as_deref(),
        Some("miss"),
        "the error was not stored"
    );
    assert_eq!(content(r).await, REPLY);
    assert_eq!(upstream_calls(&fake), calls + 1);
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(cache_header(&r).as_deref(), Some("hit"));
    let _ = content(r).await;

    // a stream that fails after its first output is not stored either
    let q = question("breaks midway", true);
    fake.inject(CHAT, Fault::DisconnectAfter { chunks: 2 });
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(r.status, 200);
    let body = r.text().await.expect("body");
    assert!(body.contains("\"error\""), "{body}");
    let calls = upstream_calls(&fake);
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(cache_header(&r).as_deref(), Some("miss"));
    assert_eq!(concat(&sse_chunks(r).await, "content"), REPLY);
    assert_eq!(upstream_calls(&fake), calls + 1);
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn an_aborted_stream_does_not_fill() {
    let slow = FakeOpenAi::new()
        .chunks(20)
        .chunk_delay(Duration::from_millis(50));
    let (fake, gw) = start(slow, config()).await;
    let q = question("i will leave", true);
    let mut r = ask(&gw, &[USE], &q).await;
    assert_eq!(cache_header(&r).as_deref(), Some("miss"));
    let first = r.chunk(T).await.expect("first frame");
    assert!(first.is_some());
    drop(r);
    // the gateway notices on its next write and drops the upstream call
    assert!(
        fake.wait_for_open_connections(0, T).await,
        "upstream call dropped"
    );

    let r = ask(&gw, &[USE], &question("i will leave", false)).await;
    assert_eq!(
        cache_header(&r).as_deref(),
        Some("miss"),
        "nothing was stored"
    );
    assert_eq!(content(r).await, REPLY);
    assert_eq!(upstream_calls(&fake), 2);
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn different_sampling_misses_and_user_does_not() {
    let (fake, gw) = start(FakeOpenAi::new(), config()).await;
    let mut q = question("sample", false);
    q["temperature"] = json!(0.2);
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(cache_header(&r).as_deref(), Some("miss"));
    let _ = content(r).await;

    q["temperature"] = json!(0.7);
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(
        cache_header(&r).as_deref(),
        Some("miss"),
        "another temperature"
    );
    let _ = content(r).await;
    assert_eq!(upstream_calls(&fake), 2);

    q["user"] = json!("someone-else");
    q["stream_options"] = Value::Null;
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(
        cache_header(&r).as_deref(),
        Some("hit"),
        "user is not part of the key"
    );
    let _ = content(r).await;
    q["seed"] = json!(7);
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(cache_header(&r).as_deref(), Some("miss"), "a seed");
    let _ = content(r).await;
    assert_eq!(upstream_calls(&fake), 3);
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn a_bad_header_value_is_a_400() {
    let (fake, gw) = start(FakeOpenAi::new(), config()).await;
    let r = ask(&gw, &[("x-llmux-cache", "always")], &question("hi", false)).await;
    assert_eq!(r.status, 400);
    let v = r.json().await.expect("json");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["param"], "x-llmux-cache");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("x-llmux-cache")),
        "{v}"
    );
    assert_eq!(upstream_calls(&fake), 0);
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn the_header_is_exposed_to_browsers() {
    let (_fake, gw) = start(FakeOpenAi::new(), config()).await;
    let r = ask(&gw, &[USE], &question("cors", false)).await;
    let exposed = r
        .header("access-control-expose-headers")
        .expect("expose list")
        .to_owned();
    assert!(
        exposed.split(", ").any(|h| h == "x-llmux-cache"),
        "{exposed}"
    );
    gw.stop().await.expect("stopped");
}

/// Answers every request with text and conversation state, counting its calls.
struct Stateful {
    info: ProviderInfo,
    calls: AtomicUsize,
}

impl Provider for Stateful {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn chat(&self, _req: ChatRequest, _ctx: Context) -> ChatStream {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(stream::iter(vec![
            Ok(Chunk::text(format!("answer {n}"))),
            Ok(Chunk::Conversation(Conversation(
                json!({"session": format!("private-{n}")}),
            ))),
        ]))
    }
}

#[tokio::test]
async fn answers_with_conversation_state_are_not_cached() {
    let provider = Arc::new(Stateful {
        info: ProviderInfo {
            name: "stateful".into(),
            label: "Stateful".into(),
            working: true,
            default_model: "stateful-model".into(),
            models: vec!["stateful-model".into()],
            ..ProviderInfo::default()
        },
        calls: AtomicUsize::new(0),
    });
    let client = Client::builder()
        .ignore_env()
        .registrations(Vec::new())
        .with_provider(provider.clone())
        .build()
        .expect("client");
    let gw = serve(client, config()).await;
    let q = json!({"model": "stateful-model", "messages": [{"role": "user", "content": "hi"}]});
    let mut state = Value::Null;
    for n in 1..=2 {
        let r = ask(&gw, &[USE], &q).await;
        assert_eq!(cache_header(&r).as_deref(), Some("miss"));
        let v = r.json().await.expect("json");
        assert_eq!(v["choices"][0]["message"]["content"], format!("answer {n}"));
        // the facade keys state by provider
        assert_eq!(
            v["conversation"]["stateful"]["session"],
            format!("private-{n}"),
            "{v}"
        );
        state = v["conversation"].clone();
    }
    assert_eq!(provider.calls.load(Ordering::SeqCst), 2);

    // a request carrying state is not cached at all
    let mut q = q;
    q["conversation"] = state;
    let r = ask(&gw, &[USE], &q).await;
    assert_eq!(cache_header(&r), None);
    let _ = r.json().await.expect("json");
    assert_eq!(provider.calls.load(Ordering::SeqCst), 3);
    gw.stop().await.expect("stopped");
}
