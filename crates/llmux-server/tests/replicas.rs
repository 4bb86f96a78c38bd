//! Two gateways in this process sharing a real `redis-server`: circuit-breaker states travel
//! between replicas, so a provider one replica found down is skipped by the other without a
//! failed attempt of its own. (Limits, stored responses and the cache across replicas behind
//! nginx: `llmux-cli/tests/replicas.rs`.)

mod common;

use std::time::{Duration, Instant};

use common::{Gw, hi, serve};
use llmux::{Client, HealthConfig, ProviderConfig};
use llmux_server::{RedisConfig, ServerConfig};
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::procs::RedisServer;
use llmux_testkit::{FakeServer, Fault};

const CHAT: &str = "/v1/chat/completions";

fn client(alpha: &FakeServer, beta: &FakeServer) -> Client {
    Client::builder()
        .ignore_env()
        .registrations(llmux::core::registrations().expect("registry"))
        .max_retries(0)
        .health(HealthConfig {
            failure_threshold: 1,
            cooldown: Duration::from_secs(30),
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

async fn replica(alpha: &FakeServer, beta: &FakeServer, redis: &RedisServer) -> Gw {
    let cfg = ServerConfig {
        redis: Some(RedisConfig::new(&redis.url()).expect("url")),
        ..common::config()
    };
    serve(client(alpha, beta), cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_one_replica_opened_spares_the_other() {
    let redis = RedisServer::start().expect("redis-server (Debian package redis-server)");
    let alpha = FakeOpenAi::new().model("m").reply("alpha").start().await;
    let beta = FakeOpenAi::new().model("m").reply("beta").start().await;
    alpha.inject_times(CHAT, Fault::status(500), 100);
    let a = replica(&alpha, &beta, &redis).await;
    let b = replica(&alpha, &beta, &redis).await;

    let resp = a.post(CHAT, &[], &hi("m", false)).await;
    assert_eq!(resp.status, 200, "A fell back to beta");
    assert_eq!(
        alpha.requests_to(CHAT).len(),
        1,
        "A tried alpha once and opened it"
    );

    // within a few exchanges B learns that alpha is open and goes straight to beta
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = b
            .get("/v1/providers/alpha", &[])
            .await
            .json()
            .await
            .expect("json");
        let open = v["health"]["models"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["state"] == "open"));
        if open {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never saw alpha's breaker: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = b.post(CHAT, &[], &hi("m", false)).await;
    assert_eq!(resp.status, 200);
    let text = resp.json().await.expect("json");
    assert_eq!(text["choices"][0]["message"]["content"], "beta");
    assert_eq!(
        alpha.requests_to(CHAT).len(),
        1,
        "B did not try alpha itself"
    );
}
