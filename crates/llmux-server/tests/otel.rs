//! OpenTelemetry export (feature `otel`): a request span and its attempt span, with the time
//! to first token, reach a minimal OTLP/HTTP receiver.

use std::time::Duration;

use llmux::{Client, ProviderConfig};
use llmux_server::{Gateway, ServerConfig};
use llmux_testkit::openai::FakeOpenAi;
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn request_and_attempt_spans_are_exported() {
    let receiver = llmux_testkit::otlp::start().await;
    let (layer, guard) =
        llmux_server::otel::layer(&receiver.url(llmux_testkit::otlp::TRACES), "llmux-test")
            .expect("exporter");
    // a current-thread runtime: the gateway's tasks run on this thread, under this subscriber
    let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let upstream = FakeOpenAi::new().models(["m"]).reply("hello").start().await;
    let regs = llmux_testkit::chat::registrations(&["openai-compat"]);
    let client = Client::builder()
        .ignore_env()
        .registrations(regs)
        .provider(
            "openai-compat",
            ProviderConfig::default().with_base_url(upstream.url("/v1")),
        )
        .build()
        .expect("client");
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        ..ServerConfig::default()
    };
    let bound = Gateway::new(client, config).bind().await.expect("bind");
    let url = format!("http://{}/v1/chat/completions", bound.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));
    let body = json!({"model": "openai-compat:m", "messages": [{"role": "user", "content": "hi"}]});
    let resp = llmux_testkit::client::post_json(&url, &[("x-request-id", "otel-1")], &body)
        .await
        .expect("chat");
    assert_eq!(resp.status, 200);
    let _ = resp.text().await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), served).await;
    // flushes (blocking, off this thread: the receiver runs on it)
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .expect("flushed");

    let spans = llmux_testkit::otlp::spans(&receiver);
    let request = spans
        .iter()
        .find(|s| s.name == "request" && s.attributes.get("request_id") == Some(&json!("otel-1")))
        .unwrap_or_else(|| panic!("a request span in {spans:#?}"));
    assert_eq!(request.attributes["route"], "/v1/chat/completions");
    assert_eq!(request.attributes["status"], 200);
    assert!(
        request.attributes["ttft_ms"].as_f64().is_some(),
        "{request:?}"
    );
    let attempt = spans
        .iter()
        .find(|s| s.name == "attempt")
        .unwrap_or_else(|| panic!("an attempt span in {spans:#?}"));
    assert_eq!(
        attempt.parent_span_id, request.span_id,
        "a child of the request"
    );
    assert_eq!(attempt.trace_id, request.trace_id);
    assert_eq!(attempt.attributes["provider"], "openai-compat");
    assert_eq!(attempt.attributes["model"], "m");
    assert!(
        attempt.attributes["ttft_ms"].as_f64().is_some(),
        "{attempt:?}"
    );
}
