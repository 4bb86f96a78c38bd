//! Gateway keys: matching, expiry, model and provider lists, per-key limits (429 with
//! `Retry-After` and `x-ratelimit-*`), and usage in `/v1/usage` and `/metrics`.

mod common;

use std::time::{Duration, SystemTime};

use common::{Gw, builder, config, error_of, hi, serve};
use llmux_server::{KeyConfig, KeySecret, ServerConfig, hash_key};
use llmux_testkit::FakeServer;
use llmux_testkit::openai::FakeOpenAi;
use serde_json::json;

fn key(name: &str, secret: &str) -> KeyConfig {
    KeyConfig::new(name, KeySecret::Plain(secret.into()))
}

fn bearer(k: &str) -> [(&'static str, String); 1] {
    [("authorization", format!("Bearer {k}"))]
}

async fn gateway(fake: FakeOpenAi, keys: Vec<KeyConfig>) -> (FakeServer, Gw) {
    let fake = fake.start().await;
    let cfg = ServerConfig { keys, ..config() };
    let gw = serve(builder(&fake).build().expect("client"), cfg).await;
    (fake, gw)
}

async fn chat(gw: &Gw, k: &str, body: &serde_json::Value) -> llmux_testkit::client::ClientResponse {
    let h = bearer(k);
    gw.post("/v1/chat/completions", &[(h[0].0, h[0].1.as_str())], body)
        .await
}

fn chat_calls(fake: &FakeServer) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .count()
}

#[tokio::test]
async fn unknown_expired_and_missing_keys_get_401() {
    let expired = KeyConfig {
        expires: Some(SystemTime::now() - Duration::from_secs(5)),
        ..key("old", "sk-old")
    };
    let hashed = KeyConfig::new(
        "hashed",
        KeySecret::from_hex(&hash_key("sk-hashed")).expect("hex"),
    );
    let (_fake, gw) = gateway(FakeOpenAi::new().model("m"), vec![expired, hashed]).await;
    for (k, code) in [
        ("sk-nope", "invalid_api_key"),
        ("sk-old", "expired_api_key"),
    ] {
        let (status, err) = error_of(chat(&gw, k, &hi("m", false)).await).await;
        assert_eq!((status, err["code"].as_str()), (401, Some(code)), "{k}");
        assert!(!err["message"].as_str().unwrap_or_default().contains(k));
    }
    let (status, err) = error_of(gw.post("/v1/chat/completions", &[], &hi("m", false)).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (401, Some("missing_api_key"))
    );
    assert_eq!(chat(&gw, "sk-hashed", &hi("m", false)).await.status, 200);
}

#[tokio::test]
async fn model_and_provider_lists_are_403_before_any_upstream_call() {
    let k = KeyConfig {
        models: vec!["small-*".into()],
        providers: vec!["openai-compat".into()],
        ..key("alice", "sk-alice")
    };
    let (fake, gw) = gateway(FakeOpenAi::new().models(["small-1", "big-1"]), vec![k]).await;
    assert_eq!(
        chat(&gw, "sk-alice", &hi("small-1", false)).await.status,
        200
    );
    assert_eq!(
        chat(&gw, "sk-alice", &hi("openai-compat:small-1", false))
            .await
            .status,
        200
    );
    let (status, err) = error_of(chat(&gw, "sk-alice", &hi("big-1", true)).await).await;
    assert_eq!(
        (status, err["code"].as_str(), err["param"].as_str()),
        (403, Some("model_not_allowed"), Some("model"))
    );
    let mut other = hi("small-1", false);
    other["provider"] = json!("flowgpt");
    let (status, err) = error_of(chat(&gw, "sk-alice", &other).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (403, Some("provider_not_allowed"))
    );
    // Anthropic's shape on the Messages route
    let h = bearer("sk-alice");
    let resp = gw
        .post(
            "/v1/messages",
            &[(h[0].0, h[0].1.as_str())],
            &json!({"model": "big-1", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(resp.status, 403);
    let v = resp.json().await.expect("json");
    assert_eq!(v["type"], "error");
    assert_eq!(
        chat_calls(&fake),
        2,
        "refused requests never reach the upstream"
    );
}

#[tokio::test]
async fn requests_per_minute_admit_exactly_the_limit_with_openai_headers() {
    let k = KeyConfig {
        rpm: Some(3),
        ..key("alice", "sk-alice")
    };
    let (fake, gw) = gateway(FakeOpenAi::new().model("m"), vec![k, key("bob", "sk-bob")]).await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let resp = chat(&gw, "sk-alice", &hi("m", false)).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("x-ratelimit-limit-requests"), Some("3"));
        assert!(
            resp.header("x-ratelimit-reset-requests")
                .is_some_and(|v| v.ends_with('s'))
        );
        remaining.push(
            resp.header("x-ratelimit-remaining-requests")
                .map(str::to_owned),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"].map(|s| Some(s.to_owned())));
    let resp = chat(&gw, "sk-alice", &hi("m", true)).await;
    assert_eq!(resp.status, 429);
    let retry: u64 = resp
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(resp.header("x-ratelimit-remaining-requests"), Some("0"));
    let (_, err) = error_of(resp).await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("requests"), Some("rate_limit_exceeded"))
    );
    assert_eq!(chat_calls(&fake), 3);
    let resp = chat(&gw, "sk-bob", &hi("m", false)).await;
    assert_eq!(resp.status, 200, "another key has its own (no) limits");
    assert_eq!(resp.header("x-ratelimit-limit-requests"), None);
}

#[tokio::test]
async fn tokens_per_minute_count_what_answers_used() {
    let k = KeyConfig {
        tpm: Some(30),
        ..key("alice", "sk-alice")
    };
    let (_fake, gw) = gateway(FakeOpenAi::new().model("m").usage(10, 15), vec![k]).await;
    let first = chat(&gw, "sk-alice", &hi("m", false)).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ratelimit-remaining-tokens"), Some("30"));
    let second = chat(&gw, "sk-alice", &hi("m", true)).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-ratelimit-remaining-tokens"), Some("5"));
    second.text().await.expect("stream ends");
    let (status, err) = error_of(chat(&gw, "sk-alice", &hi("m", false)).await).await;
    assert_eq!((status, err["type"].as_str()), (429, Some("tokens")));
}

#[tokio::test]
async fn a_stream_holds_its_concurrency_slot_until_it_ends() {
    let k = KeyConfig {
        concurrency: Some(1),
        ..key("alice", "sk-alice")
    };
    let fake = FakeOpenAi::new()
        .model("m")
        .chunks(4)
        .chunk_delay(Duration::from_millis(150));
    let (_fake, gw) = gateway(fake, vec![k]).await;
    let open = chat(&gw, "sk-alice", &hi("m", true)).await;
    assert_eq!(open.status, 200);
    let (status, err) = error_of(chat(&gw, "sk-alice", &hi("m", false)).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (429, Some("rate_limit_exceeded"))
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1 requests at once")
    );
    open.text().await.expect("stream ends");
    let deadline = tokio::time::Instant::now() + common::T;
    loop {
        let resp = chat(&gw, "sk-alice", &hi("m", false)).await;
        if resp.status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn usage_per_key_is_for_admins_and_in_metrics_without_secrets() {
    let admin = KeyConfig {
        admin: true,
        ..key("ops", "sk-ops-secret")
    };
    let limited = KeyConfig {
        rpm: Some(1),
        ..key("alice", "sk-alice-secret")
    };
    let (_fake, gw) = gateway(
        FakeOpenAi::new().model("m").usage(7, 3),
        vec![admin, limited],
    )
    .await;
    assert_eq!(
        chat(&gw, "sk-alice-secret", &hi("m", false)).await.status,
        200
    );
    assert_eq!(
        chat(&gw, "sk-alice-secret", &hi("m", false)).await.status,
        429
    );
    let h = bearer("sk-alice-secret");
    for path in ["/v1/usage", "/metrics"] {
        let (status, err) = error_of(gw.get(path, &[(h[0].0, h[0].1.as_str())]).await).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (403, Some("admin_key_required")),
            "{path}"
        );
    }
    let h = bearer("sk-ops-secret");
    let resp = gw.get("/v1/usage", &[(h[0].0, h[0].1.as_str())]).await;
    assert_eq!(resp.status, 200);
    let v = resp.json().await.expect("json");
    let rows = v["data"].as_array().expect("data");
    let alice: Vec<_> = rows.iter().filter(|r| r["key"] == "alice").collect();
    let served = alice
        .iter()
        .find(|r| r["model"] == "m")
        .expect("alice's model row");
    assert_eq!(
        (
            &served["requests"],
            &served["errors"],
            &served["input_tokens"],
            &served["output_tokens"]
        ),
        (&json!(1), &json!(0), &json!(7), &json!(3))
    );
    let refused: u64 = alice
        .iter()
        .map(|r| r["errors"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(refused, 1, "the 429 counts as an error of alice: {rows:?}");
    let metrics = gw
        .get("/metrics", &[(h[0].0, h[0].1.as_str())])
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains(
            r#"llmux_key_requests_total{key="alice",provider="openai-compat",model="m"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"llmux_key_tokens_total{key="alice",provider="openai-compat",model="m",direction="in"} 7"#
    ));
    assert!(!metrics.contains("secret") && !v.to_string().contains("secret"));
}
