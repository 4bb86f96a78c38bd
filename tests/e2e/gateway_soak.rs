//! Soak: thousands of mixed streaming and non-streaming requests through the gateway (loopback
//! only, bounded in count and time), with random upstream faults on both providers and random
//! client disconnects. Every answer must be complete or a well-formed error; afterwards no
//! upstream connection is open, memory is back near its level after warm-up, and no task or
//! file descriptor is left behind.
//!
//! `LLMUX_SOAK_SEED=<n>` replays a run (the seed is printed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use llmux::core::http::{HttpConfig, Proxy};
use llmux::{Client, ProviderConfig, Timeouts};
use llmux_e2e::gateway::{self, Gw, Seen};
use llmux_e2e::matrix::secrets;
use llmux_e2e::runner::{self, open_fds, rss_kib, settle};
use llmux_testkit::client;
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::{FakeServer, Fault};
use serde_json::json;

const MODEL: &str = "soak-model";
const ALPHA: &str = "Alpha says: grüße aus dem Soak-Test — a longer answer, streamed in many pieces to leave room for disconnects.";
const BETA: &str = "Beta says: bonjour — the fallback's complete answer, also streamed in pieces.";
const REQUESTS: usize = 2_000;
const WARMUP: usize = 200;
const CONCURRENCY: usize = 32;
const CHAT: &str = "/v1/chat/completions";

/// A small deterministic PRNG (xorshift64*), shared by the workers.
struct Rng(AtomicU64);

impl Rng {
    fn next(&self) -> u64 {
        let mut x = self.0.load(Ordering::Relaxed);
        loop {
            let mut y = x;
            y ^= y >> 12;
            y ^= y << 25;
            y ^= y >> 27;
            match self
                .0
                .compare_exchange_weak(x, y, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return y.wrapping_mul(0x2545_F491_4F6C_DD1D),
                Err(actual) => x = actual,
            }
        }
    }

    /// True with probability `pct` %.
    fn chance(&self, pct: u64) -> bool {
        self.next() % 100 < pct
    }

    fn below(&self, n: u64) -> u64 {
        self.next() % n
    }
}

fn alpha_fault(rng: &Rng) -> Option<Fault> {
    if !rng.chance(35) {
        return None;
    }
    Some(match rng.below(13) {
        0 => Fault::status(500),
        1 => Fault::status(429),
        2 => Fault::ResetBeforeHeaders,
        3 => Fault::CloudflareChallenge,
        4 => Fault::Malformed("data: {\"choices\": [\n\n".into()),
        5 => Fault::StallAfterHeaders,
        6 => Fault::DisconnectAfter { chunks: 3 },
        7 => Fault::StallAfter { chunks: 4 },
        8 => Fault::TruncatedUtf8,
        9 => Fault::Oversized { bytes: 1_200_000 },
        10 => Fault::HtmlError { code: 503 },
        11 => Fault::WrongContentType("text/html".into()),
        _ if rng.chance(10) => Fault::SlowDrip {
            interval: Duration::from_millis(50),
        },
        _ => Fault::status(502),
    })
}

fn beta_fault(rng: &Rng) -> Option<Fault> {
    if !rng.chance(8) {
        return None;
    }
    Some(match rng.below(3) {
        0 => Fault::status(502),
        1 => Fault::ResetBeforeHeaders,
        _ => Fault::DisconnectAfter { chunks: 2 },
    })
}

async fn upstream(reply: &str, key: &str) -> FakeServer {
    FakeOpenAi::new()
        .models([MODEL])
        .reply(reply)
        .chunks(12)
        .chunk_delay(Duration::from_millis(1))
        .api_key(key)
        .start()
        .await
}

fn instance(server: &FakeServer, key: &str) -> ProviderConfig {
    let mut cfg = ProviderConfig::default()
        .with_base_url(server.url("/v1"))
        .with_api_key(key);
    cfg.models = vec![MODEL.into()];
    cfg
}

#[derive(Default)]
struct Tally {
    complete: AtomicUsize,
    fallback: AtomicUsize,
    error_status: AtomicUsize,
    error_event: AtomicUsize,
    disconnected: AtomicUsize,
}

/// One request; `Err` when the gateway answered something that is neither a complete answer
/// nor a well-formed error.
async fn one(
    gw: &Gw,
    rng: &Rng,
    alpha: &FakeServer,
    beta: &FakeServer,
    tally: &Tally,
) -> Result<(), String> {
    if let Some(f) = alpha_fault(rng) {
        alpha.inject(CHAT, f);
    }
    if let Some(f) = beta_fault(rng) {
        beta.inject(CHAT, f);
    }
    let stream = rng.chance(50);
    let body = json!({"model": MODEL, "stream": stream,
        "messages": [{"role": "user", "content": format!("request {}", rng.next())}]});
    let (k, v) = gateway::auth();
    let url = gw.url(CHAT);
    let request = async {
        let resp = client::post_json(&url, &[(k, v.as_str())], &body)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        gateway::read(resp).await
    };
    if rng.chance(12) {
        // the client goes away at a random point: before the head, or mid-answer
        let cut = Duration::from_millis(rng.below(40));
        if let Ok(done) = tokio::time::timeout(cut, request).await {
            done?;
        }
        tally.disconnected.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let (seen, raw) = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .map_err(|_| "no answer within 10 s".to_owned())??;
    let answer = |c: &str| c == ALPHA || c == BETA;
    let prefix = |c: &str| ALPHA.starts_with(c) || BETA.starts_with(c);
    match &seen {
        Seen::Completion { content, .. } if answer(content) => {
            tally.complete.fetch_add(1, Ordering::Relaxed);
            if content == BETA {
                tally.fallback.fetch_add(1, Ordering::Relaxed);
            }
        }
        Seen::Stream {
            content,
            error: None,
            done: true,
            ..
        } if answer(content) => {
            tally.complete.fetch_add(1, Ordering::Relaxed);
            if content == BETA {
                tally.fallback.fetch_add(1, Ordering::Relaxed);
            }
        }
        Seen::Stream {
            content,
            error: Some(_),
            done: true,
            ..
        } if !content.is_empty() && prefix(content) => {
            tally.error_event.fetch_add(1, Ordering::Relaxed);
        }
        Seen::Error { status, .. } if *status >= 400 => {
            tally.error_status.fetch_add(1, Ordering::Relaxed);
        }
        other => {
            return Err(format!(
                "neither complete nor a well-formed error: {other:?}\n{raw}"
            ));
        }
    }
    Ok(())
}

async fn run(
    gw: &Arc<Gw>,
    rng: &Arc<Rng>,
    alpha: &Arc<FakeServer>,
    beta: &Arc<FakeServer>,
    tally: &Arc<Tally>,
    n: usize,
) -> Vec<String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (gw, rng, alpha, beta, tally, next) = (
            gw.clone(),
            rng.clone(),
            alpha.clone(),
            beta.clone(),
            tally.clone(),
            next.clone(),
        );
        workers.spawn(async move {
            let mut errors = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                if let Err(e) = one(&gw, &rng, &alpha, &beta, &tally).await {
                    errors.push(e);
                }
            }
            errors
        });
    }
    let mut errors = Vec::new();
    while let Some(r) = workers.join_next().await {
        errors.extend(r.expect("worker"));
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_soak_with_faults_and_disconnects() {
    let _alone = llmux_e2e::alone().await;
    let seed = std::env::var("LLMUX_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("soak seed {seed} (LLMUX_SOAK_SEED={seed} replays it)");
    let fds_before = open_fds();
    let tasks_before = runner::alive_tasks();

    let alpha = Arc::new(upstream(ALPHA, secrets::OPENAI_KEY).await);
    let beta = Arc::new(upstream(BETA, secrets::BACKUP_KEY).await);
    let client = Client::builder()
        .ignore_env()
        .registrations(llmux_e2e::runner::registrations("openai-compat"))
        .http_config(HttpConfig {
            proxy: Proxy::Direct,
            timeouts: Timeouts {
                connect: Duration::from_millis(500),
                first_byte: Duration::from_millis(700),
                idle: Duration::from_millis(300),
                total: Duration::from_secs(2),
            },
            max_body: 1024 * 1024,
            // idle pooled connections close quickly, so a leaked one shows
            pool_idle_timeout: Duration::from_millis(300),
            ..HttpConfig::default()
        })
        .instance(
            "alpha",
            "openai-compat",
            instance(&alpha, secrets::OPENAI_KEY),
        )
        .instance(
            "beta",
            "openai-compat",
            instance(&beta, secrets::BACKUP_KEY),
        )
        .priority(["alpha", "beta"])
        // the soak counts fallbacks from injected faults: no breaker skipping `alpha` in between
        .health(llmux::HealthConfig {
            enabled: false,
            ..llmux::HealthConfig::default()
        })
        .build()
        .expect("client");
    let gw = Arc::new(Gw::start(client, gateway::config()).await);
    let rng = Arc::new(Rng(AtomicU64::new(seed)));
    let tally = Arc::new(Tally::default());

    let started = Instant::now();
    let warm = run(&gw, &rng, &alpha, &beta, &tally, WARMUP).await;
    assert!(warm.is_empty(), "warm-up: {warm:#?}");
    alpha.clear_faults();
    beta.clear_faults();
    alpha.clear_requests();
    beta.clear_requests();
    settle(0, Duration::from_secs(5), || {
        alpha.open_connections() + beta.open_connections()
    })
    .await;
    let rss_before = rss_kib();

    // two halves: a leak grows memory in both; the allocator's high-water mark only in the first
    let mut errors = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..2 {
        errors.extend(
            tokio::time::timeout(
                Duration::from_secs(60),
                run(&gw, &rng, &alpha, &beta, &tally, REQUESTS / 2),
            )
            .await
            .expect("the soak ends in time"),
        );
        // the fakes' request records are test bookkeeping, not gateway memory
        alpha.clear_requests();
        beta.clear_requests();
        rss.push(rss_kib());
    }
    let took = started.elapsed();
    let t = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    eprintln!(
        "soak: {} requests in {took:?}: {} complete ({} by fallback), {} error statuses, {} error events, {} client disconnects",
        WARMUP + REQUESTS,
        t(&tally.complete),
        t(&tally.fallback),
        t(&tally.error_status),
        t(&tally.error_event),
        t(&tally.disconnected)
    );
    assert!(
        errors.is_empty(),
        "{} bad answers:\n{}",
        errors.len(),
        errors.join("\n---\n")
    );
    assert!(
        t(&tally.fallback) > 0
            && t(&tally.error_status) + t(&tally.error_event) > 0
            && t(&tally.disconnected) > 0
    );

    // no upstream connection left open while the gateway is still up (idle ones expire)
    alpha.clear_faults();
    beta.clear_faults();
    let open = settle(0, Duration::from_secs(5), || {
        alpha.open_connections() + beta.open_connections()
    })
    .await;
    assert_eq!(open, 0, "upstream connections still open after the soak");
    let (rss_half, rss_after) = (rss[0], rss[1]);
    eprintln!(
        "rss: {rss_before} KiB after warm-up, {rss_half} KiB half-way, {rss_after} KiB at the end"
    );
    assert!(
        rss_after < rss_before + 32 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(
        rss_after < rss_half + 10 * 1024,
        "memory kept growing in the second half: {rss_half} KiB → {rss_after} KiB"
    );

    Arc::into_inner(gw)
        .expect("workers are done")
        .stop()
        .await
        .expect("stops");
    drop((alpha, beta));
    runner::nothing_left_behind("the soak", tasks_before, fds_before).await;
}
