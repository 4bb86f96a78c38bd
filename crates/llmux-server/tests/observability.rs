//! Request ids, `/metrics`, `/ready` and live health on `/v1/providers`, over raw HTTP
//! against two fake OpenAI upstreams.

use std::time::Duration;

use llmux::{Client, HealthConfig, ProviderConfig, Timeouts};
use llmux_server::{Gateway, ServerConfig};
use llmux_testkit::client::{self, ClientResponse};
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::{FakeServer, Fault, Method};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const KEY: &str = "gw-key";

struct Gw {
    url: String,
    _stop: oneshot::Sender<()>,
}

async fn fake(reply: &str) -> FakeServer {
    FakeOpenAi::new()
        .models(["shared-model"])
        .reply(reply)
        .chunks(2)
        .start()
        .await
}

fn client(alpha: &FakeServer, beta: &FakeServer) -> Client {
    let regs = llmux_testkit::chat::registrations(&["openai-compat"]);
    Client::builder()
        .ignore_env()
        .registrations(regs)
        .timeouts(Timeouts {
            connect: Duration::from_secs(2),
            first_byte: Duration::from_secs(2),
            idle: Duration::from_secs(2),
            total: Duration::from_secs(5),
        })
        .max_retries(0)
        .health(HealthConfig {
            failure_threshold: 2,
            cooldown: Duration::from_secs(60),
            ..HealthConfig::default()
        })
        .instance(
            "alpha",
            "openai-compat",
            ProviderConfig::default().with_base_url(alpha.url("/v1")),
        )
        .instance(
            "beta",
            "openai-compat",
            ProviderConfig::default().with_base_url(beta.url("/v1")),
        )
        .priority(["alpha", "beta"])
        .build()
        .expect("client")
}

async fn serve(client: Client, metrics_public: bool) -> Gw {
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        api_key: Some(KEY.into()),
        metrics_public,
        ..ServerConfig::default()
    };
    let bound = Gateway::new(client, config).bind().await.expect("bind");
    let url = format!("http://{}", bound.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(bound.serve(async {
        let _ = rx.await;
    }));
    Gw { url, _stop: tx }
}

const AUTH: (&str, &str) = ("authorization", "Bearer gw-key");

async fn get(gw: &Gw, path: &str, headers: &[(&str, &str)]) -> ClientResponse {
    client::send(Method::GET, &format!("{}{path}", gw.url), headers, "")
        .await
        .expect("response")
}

async fn chat(gw: &Gw, stream: bool, headers: &[(&str, &str)]) -> ClientResponse {
    let body = json!({"model": "shared-model", "stream": stream,
        "messages": [{"role": "user", "content": "hi"}]});
    let mut h = vec![AUTH];
    h.extend_from_slice(headers);
    client::post_json(&format!("{}/v1/chat/completions", gw.url), &h, &body)
        .await
        .expect("response")
}

/// The value of the sample `name{labels}` (labels as they appear, in order).
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn request_ids_round_trip_and_are_generated() {
    let (alpha, beta) = (fake("alpha").await, fake("beta").await);
    let gw = serve(client(&alpha, &beta), false).await;
    let resp = chat(&gw, false, &[("x-request-id", "my-trace-42")]).await;
    assert_eq!(resp.header("x-request-id"), Some("my-trace-42"));
    let _ = resp.text().await;
    let resp = chat(&gw, true, &[]).await;
    let id = resp.header("x-request-id").expect("generated").to_owned();
    assert!(id.starts_with("req_"), "{id}");
    let _ = resp.text().await;
    // on errors too: a streamed request that fails before output, and a bad key
    alpha.inject("/v1/chat/completions", Fault::status(500));
    beta.inject("/v1/chat/completions", Fault::status(500));
    let resp = chat(&gw, true, &[("x-request-id", "failing-1")]).await;
    assert_eq!(resp.status, 502);
    assert_eq!(resp.header("x-request-id"), Some("failing-1"));
    let resp = get(&gw, "/v1/models", &[("x-request-id", "no-key")]).await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.header("x-request-id"), Some("no-key"));
    // an id that is not a sane token is replaced
    let resp = get(&gw, "/health", &[("x-request-id", "has space")]).await;
    assert!(
        resp.header("x-request-id")
            .is_some_and(|v| v.starts_with("req_"))
    );
}

#[tokio::test]
async fn metrics_count_what_was_sent() {
    let (alpha, beta) = (fake("alpha").await, fake("beta").await);
    let gw = serve(client(&alpha, &beta), false).await;
    for stream in [false, true, false] {
        let _ = chat(&gw, stream, &[]).await.text().await;
    }
    alpha.inject("/v1/chat/completions", Fault::status(503));
    let _ = chat(&gw, false, &[]).await.text().await;

    let resp = get(&gw, "/metrics", &[]).await;
    assert_eq!(resp.status, 401, "behind the gateway key");
    let resp = get(&gw, "/metrics", &[AUTH]).await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text"))
    );
    let text = resp.text().await.expect("body");
    let n = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(
        n(r#"llmux_http_requests_total{route="/v1/chat/completions",status="200"}"#),
        4.0
    );
    assert_eq!(
        n(r#"llmux_http_requests_total{route="/metrics",status="401"}"#),
        1.0
    );
    assert_eq!(n(r#"llmux_errors_total{code="missing_api_key"}"#), 1.0);
    assert_eq!(
        n(r#"llmux_attempts_total{provider="alpha",model="shared-model",outcome="ok"}"#),
        3.0
    );
    assert_eq!(
        n(
            r#"llmux_attempts_total{provider="alpha",model="shared-model",outcome="upstream_status"}"#
        ),
        1.0
    );
    assert_eq!(
        n(r#"llmux_attempts_total{provider="beta",model="shared-model",outcome="ok"}"#),
        1.0
    );
    assert_eq!(n(r#"llmux_fallbacks_total{provider="alpha"}"#), 1.0);
    assert_eq!(
        n(r#"llmux_time_to_first_token_seconds_count{provider="alpha"}"#),
        3.0
    );
    assert_eq!(
        n(r#"llmux_attempt_duration_seconds_count{provider="beta"}"#),
        1.0
    );
    assert!(
        n(r#"llmux_tokens_total{provider="alpha",model="shared-model",direction="out"}"#) > 0.0
    );
    assert_eq!(n("llmux_open_streams"), 0.0);
    assert_eq!(
        n(r#"llmux_breaker_state{provider="alpha",model="shared-model"}"#),
        0.0
    );
    assert!(text.trim_end().ends_with("# EOF"));

    let public = serve(client(&alpha, &beta), true).await;
    assert_eq!(get(&public, "/metrics", &[]).await.status, 200);
}

#[tokio::test]
async fn ready_and_provider_health_follow_the_breakers() {
    let (alpha, beta) = (fake("alpha").await, fake("beta").await);
    let gw = serve(client(&alpha, &beta), false).await;
    let resp = get(&gw, "/ready", &[]).await;
    assert_eq!(resp.status, 200, "never needs the key");
    let v = resp.json().await.expect("json");
    assert_eq!(v["status"], "ready");

    let providers = |v: &Value, name: &str| {
        v["data"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["id"] == name).cloned())
            .expect("listed")
    };
    let v = get(&gw, "/v1/providers", &[AUTH])
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(providers(&v, "alpha")["health"]["status"], "unknown");

    for f in [&alpha, &beta] {
        f.inject_times("/v1/chat/completions", Fault::status(500), 2);
    }
    for _ in 0..2 {
        assert_eq!(chat(&gw, false, &[]).await.status, 502);
    }
    let resp = get(&gw, "/ready", &[]).await;
    assert_eq!(resp.status, 503);
    let v = resp.json().await.expect("json");
    assert_eq!(v["status"], "unavailable");
    let reasons = v["reasons"].as_array().expect("reasons");
    assert_eq!(reasons.len(), 2, "{v}");
    assert!(
        reasons[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("upstream_status"))
    );

    let v = get(&gw, "/v1/providers/alpha", &[AUTH])
        .await
        .json()
        .await
        .expect("json");
    let h = &v["health"];
    assert_eq!(h["status"], "down", "{h}");
    assert_eq!(h["state"], "open");
    assert_eq!(h["consecutive_failures"], 2);
    assert_eq!(h["last_error"], "upstream_status");
    assert!(h["retry_in_secs"].as_f64().is_some_and(|s| s > 50.0));
    assert_eq!(h["models"][0]["model"], "shared-model");
}
