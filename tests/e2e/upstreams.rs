//! Providers against fakes that behave like their current real upstreams (issue #20), through
//! the facade and the gateway: microsoft-phi-4 on a Gradio 6 Space (chat content as typed
//! blocks), huggingface-inference on TGI reporting `details` (finish reason and usage).

use llmux::{ChatRequest, Client, FinishReason, ProviderConfig, Usage};
use llmux_e2e::gateway::{self, Gw};
use llmux_e2e::runner;
use llmux_server::ServerConfig;
use llmux_testkit::client;
use llmux_testkit::gradio::FakeGradio;
use llmux_testkit::hf_inference::FakeHfInference;
use llmux_testkit::openai::TINY_PNG;
use serde_json::{Value, json};

const PHI: &str = "microsoft-phi-4";
const HF: &str = "huggingface-inference";
const QWEN: &str = "Qwen/Qwen2.5-72B-Instruct";

fn client_for(kind: &str, cfg: ProviderConfig) -> Client {
    Client::builder()
        .ignore_env()
        .registrations(runner::registrations(kind))
        .http_config(runner::http_config())
        .provider(kind, cfg)
        .build()
        .expect("client")
}

/// POSTs a chat completion to the gateway; the JSON answer, or the SSE `data:` payloads.
async fn post(gw: &Gw, body: Value) -> (u16, String) {
    let resp = client::post_json(&gw.url("/v1/chat/completions"), &[], &body)
        .await
        .expect("response");
    let status = resp.status.as_u16();
    (status, resp.text().await.expect("body"))
}

/// The concatenated `delta.content`, the last `finish_reason` and the `usage` of an SSE body
/// that ended with `[DONE]`.
fn stream_parts(body: &str) -> (String, Option<String>, Option<Value>) {
    let events = gateway::events(body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    let (mut text, mut finish, mut usage) = (String::new(), None, None);
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).expect("chunk JSON");
        assert!(v.get("error").is_none(), "{v}");
        if let Some(c) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            text.push_str(c);
        }
        if let Some(f) = v
            .pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)
        {
            finish = Some(f.to_owned());
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
    }
    (text, finish, usage)
}

#[tokio::test]
async fn phi_4_speaks_to_a_gradio_6_space_through_the_facade_and_the_gateway() {
    let _shared = llmux_e2e::shared().await;
    let space = FakeGradio::new().gradio6().start().await;
    let cfg = ProviderConfig::default()
        .with_base_url(space.url(""))
        .with_origin("hub", space.url(""));
    let c = client_for(PHI, cfg);
    let resp = c
        .complete(ChatRequest::user("phi-4", "Hello Phi").with_provider(PHI))
        .await
        .expect("facade");
    assert_eq!(resp.text, "echo: Hello Phi | files: 0");
    assert_eq!(resp.finish_reason, Some(FinishReason::Stop));

    let gw = Gw::start(c, ServerConfig::default()).await;
    let (status, body) = post(
        &gw,
        json!({"model": "phi-4", "messages": [{"role": "user", "content": "Hello Phi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "echo: Hello Phi | files: 0"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    // streamed, with an image: the file goes to the Space as a Gradio 6 file block
    let png = llmux::core::media::to_data_uri("image/png", TINY_PNG);
    let (status, body) = post(
        &gw,
        json!({"model": "phi-4", "stream": true, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": png}}
        ]}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (text, finish, _) = stream_parts(&body);
    assert_eq!(
        text,
        format!(
            "echo: What is this? | files: 1 image/png:{}",
            TINY_PNG.len()
        )
    );
    assert_eq!(finish.as_deref(), Some("stop"));
    let joins = space.requests_to("/gradio_api/queue/join");
    let last = joins.last().expect("join").json().expect("json");
    assert_eq!(
        last["data"][0],
        json!([{"role": "user", "content": [{"type": "text", "text": "What is this?"}]}])
    );
    assert_eq!(last["data"][1][0]["content"][0]["type"], "file");
    assert_eq!(
        last["data"][1][0]["content"][0]["file"]["mime_type"],
        "image/png"
    );
    // the version was read once for the three calls
    assert_eq!(space.requests_to("/config").len(), 1);
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn tgi_details_give_finish_reasons_and_usage_through_the_facade_and_the_gateway() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeHfInference::new()
        .tokens([" one", " two", " three"])
        .start()
        .await;
    let cfg = ProviderConfig::default()
        .with_base_url(fake.url(""))
        .with_origin("hub", fake.url(""))
        .with_origin("router", fake.url(""));
    let c = client_for(HF, cfg);
    let cut = c
        .complete(
            ChatRequest::user(QWEN, "count")
                .with_provider(HF)
                .with_stream(false)
                .with_max_tokens(2),
        )
        .await
        .expect("facade");
    assert_eq!(cut.text, "one two");
    assert_eq!(cut.finish_reason, Some(FinishReason::Length));
    // ChatML inputs of "count": 4 whitespace-separated words (the fake's prompt tokens)
    assert_eq!(cut.usage, Some(Usage::new(4, 2)));

    let gw = Gw::start(c, ServerConfig::default()).await;
    let ask = |stream: bool, max: u32| {
        json!({"model": QWEN, "stream": stream, "max_tokens": max,
               "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "count"}]})
    };
    let (status, body) = post(&gw, ask(false, 2)).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "one two");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6})
    );
    // streamed: the last TGI event's details (the end token counts as generated)
    let (status, body) = post(&gw, ask(true, 100)).await;
    assert_eq!(status, 200, "{body}");
    let (text, finish, usage) = stream_parts(&body);
    assert_eq!(text, "one two three");
    assert_eq!(finish.as_deref(), Some("stop"));
    let usage = usage.expect("usage chunk");
    assert_eq!(
        (
            usage["prompt_tokens"].clone(),
            usage["completion_tokens"].clone()
        ),
        (json!(4), json!(4))
    );
    let (_, body) = post(&gw, ask(true, 1)).await;
    assert_eq!(stream_parts(&body).1.as_deref(), Some("length"));
    gw.stop().await.expect("stopped");
}
