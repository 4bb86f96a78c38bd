//! Live health and the circuit breaker through the facade, against two fake upstreams.

use std::time::{Duration, Instant};

use llmux::{BreakerState, ChatRequest, Client, HealthConfig, ProviderConfig, Timeouts};
use llmux_e2e::{drain, providers_of, text_of};
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::{FakeServer, Fault};

const CHAT: &str = "/v1/chat/completions";
const COOLDOWN: Duration = Duration::from_millis(600);

async fn fake(reply: &str) -> FakeServer {
    FakeOpenAi::new()
        .models(["shared-model"])
        .reply(reply)
        .chunks(2)
        .start()
        .await
}

fn client(alpha: &FakeServer, beta: &FakeServer) -> Client {
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_millis(300),
        idle: Duration::from_millis(500),
        total: Duration::from_secs(5),
    };
    Client::builder()
        .ignore_env()
        .registrations(llmux::core::registrations().expect("registry"))
        .timeouts(timeouts)
        .max_retries(0)
        .health(HealthConfig {
            failure_threshold: 3,
            cooldown: COOLDOWN,
            max_cooldown: COOLDOWN * 4,
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

fn alpha_state(client: &Client) -> Option<BreakerState> {
    client
        .health()
        .into_iter()
        .find(|h| h.provider == "alpha" && h.model == "shared-model")
        .map(|h| h.state)
}

/// Sends one request and returns the providers announced, the text, and the time taken.
async fn ask(client: &Client) -> (Vec<String>, String, Duration) {
    let t = Instant::now();
    let (chunks, err) = drain(client.chat(ChatRequest::user("shared-model", "hi"))).await;
    assert!(err.is_none(), "{err:?}");
    (providers_of(&chunks), text_of(&chunks), t.elapsed())
}

#[tokio::test]
async fn a_dead_provider_is_opened_skipped_probed_and_closed() {
    let _shared = llmux_e2e::shared().await;
    let (alpha, beta) = (fake("alpha here").await, fake("beta here").await);
    let client = client(&alpha, &beta);
    // alpha hangs before its headers: every request pays its first-byte timeout
    alpha.inject_times(CHAT, Fault::Delay(Duration::from_secs(30)), 1000);
    for i in 0..3 {
        let (providers, text, took) = ask(&client).await;
        assert_eq!(providers, ["alpha", "beta"], "request {i}");
        assert_eq!(text, "beta here");
        assert!(
            took >= Duration::from_millis(300),
            "request {i} waited for alpha"
        );
    }
    assert_eq!(alpha_state(&client), Some(BreakerState::Open));
    let h = client.health();
    let a = h
        .iter()
        .find(|h| h.provider == "alpha")
        .expect("alpha tracked");
    assert_eq!((a.consecutive_failures, a.last_error), (3, Some("timeout")));
    assert_eq!(a.status(), "down");

    // open: the next request goes straight to beta and spends nothing on alpha
    let (providers, _, took) = ask(&client).await;
    assert_eq!(providers, ["beta"]);
    assert!(took < Duration::from_millis(250), "took {took:?}");
    assert_eq!(
        alpha.requests_to(CHAT).len(),
        3,
        "alpha was not asked again"
    );

    // after the cooldown one request probes alpha; it answers now, so it closes
    alpha.clear_faults();
    tokio::time::sleep(COOLDOWN).await;
    assert_eq!(alpha_state(&client), Some(BreakerState::HalfOpen));
    let (providers, text, _) = ask(&client).await;
    assert_eq!(
        (providers, text.as_str()),
        (vec!["alpha".to_owned()], "alpha here")
    );
    assert_eq!(alpha_state(&client), Some(BreakerState::Closed));
    assert_eq!(client.health()[0].consecutive_failures, 0);
}

#[tokio::test]
async fn a_failed_probe_reopens_for_longer() {
    let _shared = llmux_e2e::shared().await;
    let (alpha, beta) = (fake("alpha here").await, fake("beta here").await);
    let client = client(&alpha, &beta);
    alpha.inject_times(CHAT, Fault::status(502), 1000);
    for _ in 0..3 {
        ask(&client).await;
    }
    assert_eq!(alpha_state(&client), Some(BreakerState::Open));
    tokio::time::sleep(COOLDOWN).await;
    let (providers, _, _) = ask(&client).await;
    assert_eq!(providers, ["alpha", "beta"], "the probe fails over to beta");
    assert_eq!(alpha_state(&client), Some(BreakerState::Open));
    tokio::time::sleep(COOLDOWN).await;
    assert_eq!(
        alpha_state(&client),
        Some(BreakerState::Open),
        "the second cooldown is twice the first"
    );
    tokio::time::sleep(COOLDOWN).await;
    assert_eq!(alpha_state(&client), Some(BreakerState::HalfOpen));
}

#[tokio::test]
async fn a_429_with_retry_after_opens_until_then() {
    let _shared = llmux_e2e::shared().await;
    let (alpha, beta) = (fake("alpha here").await, fake("beta here").await);
    let client = client(&alpha, &beta);
    alpha.inject(CHAT, Fault::rate_limited("1"));
    let (providers, _, _) = ask(&client).await;
    assert_eq!(providers, ["alpha", "beta"]);
    assert_eq!(
        alpha_state(&client),
        Some(BreakerState::Open),
        "one 429 opens it"
    );
    assert_eq!(client.health()[0].status(), "rate_limited");
    let (providers, _, _) = ask(&client).await;
    assert_eq!(providers, ["beta"]);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let (providers, _, _) = ask(&client).await;
    assert_eq!(providers, ["alpha"], "tried again once Retry-After passed");
}

#[tokio::test]
async fn request_errors_never_open_it() {
    let _shared = llmux_e2e::shared().await;
    let (alpha, beta) = (fake("alpha here").await, fake("beta here").await);
    let client = client(&alpha, &beta);
    alpha.inject_times(CHAT, Fault::status(400), 5);
    for _ in 0..5 {
        // a 400 falls back, but says nothing about alpha's health
        let (providers, _, _) = ask(&client).await;
        assert_eq!(providers, ["alpha", "beta"]);
    }
    assert_eq!(alpha_state(&client), Some(BreakerState::Closed));
    let h = client.health();
    assert_eq!(
        (h[0].consecutive_failures, h[0].last_error),
        (0, Some("upstream_status"))
    );
    let (providers, _, _) = ask(&client).await;
    assert_eq!(providers, ["alpha"]);
}

#[tokio::test]
async fn exactly_one_probe_goes_through_while_half_open() {
    let _shared = llmux_e2e::shared().await;
    let (alpha, beta) = (fake("alpha here").await, fake("beta here").await);
    let client = client(&alpha, &beta);
    alpha.inject_times(CHAT, Fault::status(500), 3);
    for _ in 0..3 {
        ask(&client).await;
    }
    assert_eq!(alpha_state(&client), Some(BreakerState::Open));
    tokio::time::sleep(COOLDOWN).await;
    alpha.clear_requests();
    // the probe is slow, so the other requests arrive while it is under way
    alpha.inject(CHAT, Fault::Delay(Duration::from_millis(200)));
    let runs = (0..8).map(|_| ask(&client));
    let results = futures_util::future::join_all(runs).await;
    assert_eq!(alpha.requests_to(CHAT).len(), 1, "exactly one probe");
    let on_alpha = results.iter().filter(|(_, t, _)| t == "alpha here").count();
    assert_eq!(on_alpha, 1);
    assert!(results.iter().all(|(_, t, _)| !t.is_empty()));
    assert_eq!(alpha_state(&client), Some(BreakerState::Closed));
}

#[tokio::test]
async fn a_named_provider_is_always_tried() {
    let _shared = llmux_e2e::shared().await;
    let (alpha, beta) = (fake("alpha here").await, fake("beta here").await);
    let client = client(&alpha, &beta);
    alpha.inject_times(CHAT, Fault::status(500), 3);
    for _ in 0..3 {
        ask(&client).await;
    }
    assert_eq!(alpha_state(&client), Some(BreakerState::Open));
    let (chunks, err) = drain(client.chat(ChatRequest::user("alpha:shared-model", "hi"))).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text_of(&chunks), "alpha here");
    assert_eq!(
        alpha_state(&client),
        Some(BreakerState::Closed),
        "its success closes it"
    );
}

#[tokio::test]
async fn a_breaker_opened_by_another_replica_is_skipped_then_probed() {
    let _shared = llmux_e2e::shared().await;
    let (alpha, beta) = (fake("alpha here").await, fake("beta here").await);
    let client = client(&alpha, &beta);
    client.open_breaker("alpha", "shared-model", COOLDOWN, false);
    assert_eq!(alpha_state(&client), Some(BreakerState::Open));
    let (providers, text, _) = ask(&client).await;
    assert_eq!(
        (providers, text.as_str()),
        (vec!["beta".to_owned()], "beta here")
    );
    assert!(
        alpha.requests_to(CHAT).is_empty(),
        "the open provider was not called"
    );
    // a shorter report does not shorten it; after the cooldown alpha is probed and closes
    client.open_breaker("alpha", "shared-model", Duration::from_millis(1), false);
    assert_eq!(alpha_state(&client), Some(BreakerState::Open));
    tokio::time::sleep(COOLDOWN + Duration::from_millis(50)).await;
    let (providers, text, _) = ask(&client).await;
    assert_eq!(
        (providers, text.as_str()),
        (vec!["alpha".to_owned()], "alpha here")
    );
    assert_eq!(alpha_state(&client), Some(BreakerState::Closed));
}
