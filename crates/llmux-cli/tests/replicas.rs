//! Two `llmux serve` replicas behind a real nginx (the `deploy/` configuration) sharing a real
//! `redis-server`: key limits, stored responses, the response cache and usage are shared; with
//! Redis stopped the documented behaviour holds, and everything recovers once it is back.
//!
//! Needs the Debian packages `redis-server` and `nginx` (`.ci/run` installs them).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Llmux, Served, start_serve, temp_dir, write};
use llmux_testkit::FakeServer;
use llmux_testkit::client::{self, ClientResponse};
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::procs::{Nginx, RedisServer};
use serde_json::{Value, json};

const ALICE: &str = "sk-alice-replica-test";
const ADMIN: &str = "sk-admin-replica-test";

fn config(fail_open: bool) -> String {
    format!(
        "[[keys]]\nname = \"alice\"\nkey = \"{ALICE}\"\nrpm = 10\n\n\
         [[keys]]\nname = \"admin\"\nkey = \"{ADMIN}\"\nadmin = true\n\n\
         [redis]\ntimeout = 0.3\nlimits_fail_open = {fail_open}\n"
    )
}

/// A replica of the gateway on a free port, sharing `redis`.
fn replica(dir: &Path, name: &str, fail_open: bool, fake: &FakeServer, redis: &str) -> Served {
    let file = format!("{name}.toml");
    write(&dir.join(&file), &config(fail_open));
    let upstream = fake.url("/v1");
    start_serve(Llmux::new(
        dir,
        &[
            "--config",
            &file,
            "serve",
            "--port",
            "0",
            "--upstream",
            &upstream,
            "--redis",
            redis,
        ],
    ))
}

fn port_of(s: &Served) -> u16 {
    s.addr
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("port in the listening address")
}

fn base(s: &Served) -> String {
    format!("http://127.0.0.1:{}", port_of(s))
}

fn nginx_conf() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx/llmux.conf")
}

async fn post(url: &str, key: &str, body: &Value, extra: &[(&str, &str)]) -> ClientResponse {
    let auth = format!("Bearer {key}");
    let mut h = vec![("authorization", auth.as_str())];
    h.extend_from_slice(extra);
    client::post_json(url, &h, body).await.expect("response")
}

async fn get(url: &str, key: &str) -> ClientResponse {
    let auth = format!("Bearer {key}");
    client::send(
        http::Method::GET,
        url,
        &[("authorization", &auth)],
        bytes::Bytes::new(),
    )
    .await
    .expect("response")
}

fn hi(text: &str) -> Value {
    json!({"model": "fake-model", "messages": [{"role": "user", "content": text}]})
}

fn chat_calls(fake: &FakeServer) -> usize {
    fake.requests_to("/v1/chat/completions").len()
}

/// Requests answered by one replica (from its `/metrics`).
async fn served_by(url: &str) -> u64 {
    let text = get(&format!("{url}/metrics"), ADMIN)
        .await
        .text()
        .await
        .expect("metrics");
    text.lines()
        .filter(|l| l.starts_with("llmux_http_requests_total{route=\"/v1/chat/completions\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_limits_responses_cache_and_usage() {
    let redis = RedisServer::start().expect("redis-server (Debian package redis-server)");
    let fake = FakeOpenAi::new().model("fake-model").echo().start().await;
    let dir = temp_dir("replicas");
    let a = replica(&dir, "a", true, &fake, &redis.url());
    let b = replica(&dir, "b", true, &fake, &redis.url());
    let lb = Nginx::start(&nginx_conf(), 0, &[port_of(&a), port_of(&b)])
        .expect("nginx (Debian package nginx)");
    let chat = format!("{}/v1/chat/completions", lb.url());

    // a key limited to 10 requests per minute gets exactly 10 through, across both replicas
    let mut statuses = Vec::new();
    for i in 0..14 {
        statuses.push(
            post(&chat, ALICE, &hi(&format!("n{i}")), &[])
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        chat_calls(&fake),
        10,
        "each admitted request reached the upstream once"
    );
    let (on_a, on_b) = (served_by(&base(&a)).await, served_by(&base(&b)).await);
    assert_eq!(on_a + on_b, 14);
    assert!(
        on_a > 0 && on_b > 0,
        "nginx used both replicas: {on_a} / {on_b}"
    );

    // a response stored through A is continued through B
    let created = post(
        &format!("{}/v1/responses", base(&a)),
        ADMIN,
        &json!({"model": "fake-model", "input": "remember the word kumquat"}),
        &[],
    )
    .await;
    assert_eq!(created.status, 200);
    let id = created.json().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let follow = post(
        &format!("{}/v1/responses", base(&b)),
        ADMIN,
        &json!({"model": "fake-model", "input": "what was the word?", "previous_response_id": id}),
        &[],
    )
    .await;
    assert_eq!(
        follow.status, 200,
        "previous_response_id works on the other replica"
    );
    let last = fake.requests_to("/v1/chat/completions");
    let sent = last.last().expect("call").body_text();
    assert!(
        sent.contains("kumquat") && sent.contains("what was the word?"),
        "{sent}"
    );
    assert_eq!(
        get(&format!("{}/v1/responses/{id}", base(&b)), ADMIN)
            .await
            .status,
        200
    );

    // a cache fill on A hits on B
    let calls = chat_calls(&fake);
    let cached = hi("cache me");
    let miss = post(
        &format!("{}/v1/chat/completions", base(&a)),
        ADMIN,
        &cached,
        &[("x-llmux-cache", "use")],
    )
    .await;
    assert_eq!(miss.header("x-llmux-cache"), Some("miss"));
    let filled = miss.json().await.expect("json");
    let deadline = Instant::now() + Duration::from_secs(5);
    let hit = loop {
        let r = post(
            &format!("{}/v1/chat/completions", base(&b)),
            ADMIN,
            &cached,
            &[("x-llmux-cache", "use")],
        )
        .await;
        if r.header("x-llmux-cache") == Some("hit") || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(hit.header("x-llmux-cache"), Some("hit"));
    let hit = hit.json().await.expect("json");
    assert_eq!(
        hit["choices"][0]["message"]["content"],
        filled["choices"][0]["message"]["content"]
    );
    assert_eq!(
        chat_calls(&fake),
        calls + 1,
        "the hit did not call the upstream"
    );

    // usage adds up over both replicas
    let usage = get(&format!("{}/v1/usage", base(&b)), ADMIN)
        .await
        .json()
        .await
        .expect("json");
    let alice: u64 = usage["data"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["key"] == "alice")
        .map(|r| r["requests"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(alice, 14, "{usage}");
    drop(lb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_documented_behaviour_and_recovers() {
    let mut redis = RedisServer::start().expect("redis-server (Debian package redis-server)");
    let fake = FakeOpenAi::new().model("fake-model").echo().start().await;
    let dir = temp_dir("replicas-down");
    let open = replica(&dir, "open", true, &fake, &redis.url());
    let closed = replica(&dir, "closed", false, &fake, &redis.url());
    let (open, closed) = (base(&open), base(&closed));
    let stored = post(
        &format!("{open}/v1/responses"),
        ADMIN,
        &json!({"model": "fake-model", "input": "hi"}),
        &[],
    )
    .await;
    let id = stored.json().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    redis.stop().expect("stop redis");
    let started = Instant::now();
    let r = post(&format!("{open}/v1/chat/completions"), ALICE, &hi("x"), &[]).await;
    assert_eq!(r.status, 200, "limits fail open");
    let (status, err) = error_of(
        post(
            &format!("{closed}/v1/chat/completions"),
            ALICE,
            &hi("x"),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (503, Some("rate_limiter_unavailable"))
    );
    let (status, err) = error_of(get(&format!("{open}/v1/responses/{id}"), ADMIN).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (503, Some("store_unavailable"))
    );
    let follow = json!({"model": "fake-model", "input": "more", "previous_response_id": id});
    let (status, _) =
        error_of(post(&format!("{open}/v1/responses"), ADMIN, &follow, &[]).await).await;
    assert_eq!(status, 503);
    let r = post(
        &format!("{open}/v1/chat/completions"),
        ADMIN,
        &hi("cached?"),
        &[("x-llmux-cache", "use")],
    )
    .await;
    assert_eq!(r.status, 200, "the cache is skipped");
    let (status, err) = error_of(get(&format!("{open}/v1/usage"), ADMIN).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (503, Some("usage_unavailable"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "nothing hung: {:?}",
        started.elapsed()
    );

    redis.restart().expect("restart redis");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = post(
            &format!("{closed}/v1/chat/completions"),
            ALICE,
            &hi("back?"),
            &[],
        )
        .await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "limits did not recover: {}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let again = post(
        &format!("{open}/v1/responses"),
        ADMIN,
        &json!({"model": "fake-model", "input": "again"}),
        &[],
    )
    .await;
    assert_eq!(again.status, 200);
    let id = again.json().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        get(&format!("{closed}/v1/responses/{id}"), ADMIN)
            .await
            .status,
        200,
        "the store works again"
    );
}

async fn error_of(resp: ClientResponse) -> (u16, Value) {
    let status = resp.status.as_u16();
    let v = resp.json().await.expect("error json");
    (status, v["error"].clone())
}
