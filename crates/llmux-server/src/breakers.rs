//! Breaker state shared by replicas through Redis: every [`SYNC_EVERY`], each replica writes
//! the circuit breakers it has open (until when, on the wall clock) into one Redis hash and
//! opens locally those another replica wrote, so that one replica's failures spare the
//! others. Replicas' clocks should agree (NTP); one round trip per interval, none per request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmux::BreakerState;

use crate::redis_client::RedisClient;

/// How often replicas exchange breaker states.
pub(crate) const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Separates provider and model in a field name.
const SEP: char = '\u{1f}';

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// This replica's open breakers: (field, "until_ms:rate_limited").
fn local_open(client: &llmux::Client, now: u64) -> Vec<(String, String)> {
    client
        .health()
        .into_iter()
        .filter(|h| h.state == BreakerState::Open)
        .filter_map(|h| {
            let left = h.retry_in_secs.filter(|s| *s > 0.0)?;
            let until = now + (left * 1000.0) as u64;
            Some((
                format!("{}{SEP}{}", h.provider, h.model),
                format!("{until}:{}", u8::from(h.rate_limited)),
            ))
        })
        .collect()
}

/// Applies the shared hash: opens what others opened; returns the fields that have expired.
fn apply(client: &llmux::Client, shared: &[(String, String)], now: u64) -> Vec<String> {
    let mut stale = Vec::new();
    for (field, value) in shared {
        let (Some((provider, model)), Some((until, rl))) =
            (field.split_once(SEP), value.split_once(':'))
        else {
            stale.push(field.clone());
            continue;
        };
        let Ok(until) = until.parse::<u64>() else {
            stale.push(field.clone());
            continue;
        };
        if until <= now {
            stale.push(field.clone());
            continue;
        }
        client.open_breaker(
            provider,
            model,
            Duration::from_millis(until - now),
            rl == "1",
        );
    }
    stale
}

/// One exchange.
pub(crate) async fn sync_once(client: &llmux::Client, redis: &RedisClient) {
    let now = now_ms();
    let mine = local_open(client, now);
    match redis.exchange_breakers(&mine).await {
        Ok(shared) => {
            let stale = apply(client, &shared, now);
            if !stale.is_empty() {
                redis.spawn_forget_breakers(stale);
            }
        }
        Err(e) => tracing::debug!(error = %e, "breaker states not shared this time"),
    }
}

/// Exchanges breaker states every [`SYNC_EVERY`] until dropped.
pub(crate) async fn share(client: llmux::Client, redis: RedisClient) {
    let mut tick = tokio::time::interval(SYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sync_once(&client, &redis).await;
    }
}
