//! Per-key limits: requests per minute, tokens per minute, requests in flight.
//!
//! In one process the request rate is a `governor` GCRA limiter (a burst of `rpm`, then one
//! request every `60 s / rpm`), tokens a one-minute window (tokens are known only after the
//! answer, which GCRA cannot charge), and concurrency a semaphore. With Redis
//! ([`crate::RedisConfig`]) every check is one atomic Lua script shared by all replicas:
//! one-minute windows for requests and tokens, and concurrency as leases that expire by
//! themselves if a replica dies mid-request.
//!
//! A request is refused when its key is at a limit (tokens: when the window's tokens have
//! reached `tpm`); the refusal is a 429 with `Retry-After` and OpenAI's `x-ratelimit-*` headers,
//! which successful answers of limited keys carry too.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::keys::{Entry, KeyConfig};
use crate::redis_client::{LimitCheck, RedisClient};

/// Length of a token (and, in Redis, request) window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

type Gcra = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// What the `x-ratelimit-*` headers say.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RateInfo {
    /// `(limit, remaining, reset)` for requests.
    pub requests: Option<(u64, u64, Duration)>,
    /// `(limit, remaining, reset)` for tokens.
    pub tokens: Option<(u64, u64, Duration)>,
}

/// OpenAI's `x-ratelimit-*` header names: (limit, remaining, reset) for requests, for tokens.
const HEADERS: [[HeaderName; 3]; 2] = [
    [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ],
    [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ],
];

impl RateInfo {
    /// Writes OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers.
    pub fn write(&self, h: &mut HeaderMap) {
        for (names, v) in HEADERS.iter().zip([self.requests, self.tokens]) {
            let Some((limit, remaining, reset)) = v else {
                continue;
            };
            let [l, r, t] = names.clone();
            h.insert(l, HeaderValue::from(limit));
            h.insert(r, HeaderValue::from(remaining));
            if let Ok(v) = HeaderValue::try_from(reset_text(reset)) {
                h.insert(t, v);
            }
        }
    }
}

/// A duration as OpenAI writes it in `x-ratelimit-reset-*`: `20ms`, `6s`, `1m30s`.
pub(crate) fn reset_text(d: Duration) -> String {
    let mut out = String::with_capacity(12);
    let ms = d.as_millis();
    if ms < 1000 {
        push_int(&mut out, ms);
        out.push_str("ms");
        return out;
    }
    let (m, rest) = (ms / 60_000, ms % 60_000);
    if m > 0 {
        push_int(&mut out, m);
        out.push('m');
    }
    push_int(&mut out, rest / 1000);
    let frac = rest % 1000;
    if frac > 0 {
        // three digits, trailing zeros dropped: 500 -> ".5", 25 -> ".025"
        let digits = [frac / 100, frac / 10 % 10, frac % 10];
        let keep = if frac % 100 == 0 {
            1
        } else if frac % 10 == 0 {
            2
        } else {
            3
        };
        out.push('.');
        for d in &digits[..keep] {
            out.push(char::from(b'0' + *d as u8));
        }
    }
    out.push('s');
    out
}

/// Appends the decimal digits of `n` (no allocation beyond `out`).
fn push_int(out: &mut String, n: u128) {
    let mut buf = [0u8; 40];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(buf[i..].iter().map(|b| char::from(*b)));
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Requests,
    Tokens,
    Concurrency,
}

/// A refused request: the 429 and its headers.
pub(crate) struct Refused {
    pub error: ApiError,
    pub info: RateInfo,
}

fn refused(key: &KeyConfig, which: Limit, retry: Duration, info: RateInfo) -> Box<Refused> {
    let (kind, what) = match which {
        Limit::Requests => (
            "requests",
            format!("{} requests per minute", key.rpm.unwrap_or(0)),
        ),
        Limit::Tokens => (
            "tokens",
            format!("{} tokens per minute", key.tpm.unwrap_or(0)),
        ),
        Limit::Concurrency => (
            "requests",
            format!("{} requests at once", key.concurrency.unwrap_or(0)),
        ),
    };
    let secs = retry.as_secs_f64().ceil().max(1.0);
    let mut error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        kind,
        "rate_limit_exceeded",
        format!(
            "rate limit of the gateway key `{}` reached ({what}): try again in {secs} s",
            key.name
        ),
    );
    error.retry_after = Some(Duration::from_secs_f64(secs));
    Box::new(Refused { error, info })
}

/// A granted request: holds its concurrency slot until dropped, and counts its tokens.
pub(crate) struct Grant {
    pub info: RateInfo,
    slot: Slot,
    tokens: TokenSink,
}

enum Slot {
    None,
    Local(#[allow(dead_code)] OwnedSemaphorePermit),
    Redis {
        client: RedisClient,
        key: String,
        lease: String,
    },
}

enum TokenSink {
    None,
    Local(Arc<Mutex<Window>>),
    Redis { client: RedisClient, name: String },
}

impl Grant {
    fn unlimited() -> Self {
        Self {
            info: RateInfo::default(),
            slot: Slot::None,
            tokens: TokenSink::None,
        }
    }

    /// Counts the tokens the request used (prompt + completion) against the key's `tpm`.
    pub fn record_tokens(&self, n: u64) {
        match &self.tokens {
            TokenSink::None => {}
            TokenSink::Local(w) => {
                if let Ok(mut w) = w.lock() {
                    w.roll(Instant::now());
                    w.used = w.used.saturating_add(n);
                }
            }
            TokenSink::Redis { client, name } => client.spawn_add_tokens(name, n),
        }
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Slot::Redis { client, key, lease } = &self.slot {
            client.spawn_release(key, lease);
        }
    }
}

/// A one-minute token window.
struct Window {
    start: Instant,
    used: u64,
}

impl Window {
    fn roll(&mut self, now: Instant) {
        if now.duration_since(self.start) >= WINDOW {
            self.start = now;
            self.used = 0;
        }
    }

    fn reset_in(&self, now: Instant) -> Duration {
        WINDOW.saturating_sub(now.duration_since(self.start))
    }
}

/// One key's in-process limiters.
struct Local {
    rpm: Option<Gcra>,
    tokens: Option<Arc<Mutex<Window>>>,
    slots: Option<Arc<Semaphore>>,
}

impl Local {
    fn new(k: &KeyConfig) -> Self {
        Self {
            rpm: k
                .rpm
                .and_then(NonZeroU32::new)
                .map(|n| RateLimiter::direct(Quota::per_minute(n)).with_middleware()),
            tokens: k.tpm.map(|_| {
                Arc::new(Mutex::new(Window {
                    start: Instant::now(),
                    used: 0,
                }))
            }),
            slots: k.concurrency.map(|n| Arc::new(Semaphore::new(n as usize))),
        }
    }

    fn acquire(&self, k: &KeyConfig) -> Result<Grant, Box<Refused>> {
        let mut info = RateInfo::default();
        let now = Instant::now();
        if let (Some(w), Some(tpm)) = (&self.tokens, k.tpm) {
            let mut w = w.lock().map_err(|_| poisoned())?;
            w.roll(now);
            info.tokens = Some((tpm, tpm.saturating_sub(w.used), w.reset_in(now)));
            if w.used >= tpm {
                return Err(refused(k, Limit::Tokens, w.reset_in(now), info));
            }
        }
        let slot = match &self.slots {
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => Slot::Local(p),
                Err(_) => return Err(refused(k, Limit::Concurrency, Duration::from_secs(1), info)),
            },
            None => Slot::None,
        };
        if let (Some(g), Some(rpm)) = (&self.rpm, k.rpm) {
            let rpm = u64::from(rpm);
            let per = WINDOW / rpm.max(1) as u32;
            match g.check() {
                Ok(snap) => {
                    let left = u64::from(snap.remaining_burst_capacity());
                    info.requests = Some((rpm, left, per * (rpm - left.min(rpm)) as u32));
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    info.requests = Some((rpm, 0, per * rpm as u32));
                    return Err(refused(k, Limit::Requests, wait, info));
                }
            }
        }
        let tokens = self
            .tokens
            .clone()
            .map_or(TokenSink::None, TokenSink::Local);
        Ok(Grant { info, slot, tokens })
    }
}

fn poisoned() -> Box<Refused> {
    Box::new(Refused {
        error: ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            "a rate limiter's lock is poisoned; restart the gateway",
        ),
        info: RateInfo::default(),
    })
}

/// The limits of every key, in process or in Redis.
pub(crate) struct Limits {
    local: HashMap<String, Local>,
    redis: Option<RedisClient>,
    fail_open: bool,
}

impl Limits {
    /// Limiters for `keys` (only those with limits); shared through `redis` when given.
    pub fn new(keys: &[Arc<Entry>], redis: Option<RedisClient>, fail_open: bool) -> Self {
        let local = keys
            .iter()
            .filter(|e| e.config.limited())
            .map(|e| (e.config.name.clone(), Local::new(&e.config)))
            .collect();
        Self {
            local,
            redis,
            fail_open,
        }
    }

    /// Admits one request of `entry`, or refuses it.
    pub async fn acquire(&self, entry: &Entry) -> Result<Grant, Box<Refused>> {
        let k = &entry.config;
        if !k.limited() {
            return Ok(Grant::unlimited());
        }
        let Some(client) = &self.redis else {
            return match self.local.get(&k.name) {
                Some(l) => l.acquire(k),
                None => Ok(Grant::unlimited()),
            };
        };
        match client.check_limits(k).await {
            Ok(check) => shared_grant(client, k, check),
            Err(e) if self.fail_open => {
                tracing::warn!(key = k.name.as_str(), error = %e, "Redis limits unavailable: request let through (limits fail open)");
                Ok(Grant::unlimited())
            }
            Err(e) => {
                tracing::warn!(key = k.name.as_str(), error = %e, "Redis limits unavailable: request refused (limits fail closed)");
                Err(Box::new(Refused {
                    error: ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "server_error",
                        "rate_limiter_unavailable",
                        "the gateway cannot check this key's limits right now (its Redis is unreachable); try again shortly",
                    ),
                    info: RateInfo::default(),
                }))
            }
        }
    }
}

fn shared_grant(client: &RedisClient, k: &KeyConfig, c: LimitCheck) -> Result<Grant, Box<Refused>> {
    let mut info = RateInfo::default();
    if let Some(rpm) = k.rpm {
        let rpm = u64::from(rpm);
        info.requests = Some((rpm, rpm.saturating_sub(c.requests), c.reset));
    }
    if let Some(tpm) = k.tpm {
        info.tokens = Some((tpm, tpm.saturating_sub(c.tokens), c.reset));
    }
    if let Some(which) = c.refused {
        let retry = if which == Limit::Concurrency {
            Duration::from_secs(1)
        } else {
            c.reset
        };
        return Err(refused(k, which, retry, info));
    }
    let slot = match c.lease {
        Some((key, lease)) => Slot::Redis {
            client: client.clone(),
            key,
            lease,
        },
        None => Slot::None,
    };
    let tokens = if k.tpm.is_some() {
        TokenSink::Redis {
            client: client.clone(),
            name: k.name.clone(),
        }
    } else {
        TokenSink::None
    };
    Ok(Grant { info, slot, tokens })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeySecret;

    fn key(rpm: Option<u32>, tpm: Option<u64>, concurrency: Option<u32>) -> KeyConfig {
        KeyConfig {
            rpm,
            tpm,
            concurrency,
            ..KeyConfig::new("k", KeySecret::Plain("secret".into()))
        }
    }

    #[test]
    fn reset_text_is_openai_shaped() {
        assert_eq!(reset_text(Duration::from_millis(20)), "20ms");
        assert_eq!(reset_text(Duration::from_secs(6)), "6s");
        assert_eq!(reset_text(Duration::from_millis(1500)), "1.5s");
        assert_eq!(reset_text(Duration::from_secs(90)), "1m30s");
        assert_eq!(reset_text(Duration::from_secs(360)), "6m0s");
        assert_eq!(reset_text(Duration::from_millis(59_025)), "59.025s");
        assert_eq!(reset_text(Duration::from_millis(61_250)), "1m1.25s");
        assert_eq!(reset_text(Duration::ZERO), "0ms");
    }

    #[test]
    fn requests_per_minute_allow_the_burst_then_refuse() {
        let k = key(Some(3), None, None);
        let l = Local::new(&k);
        let remaining: Vec<u64> = (0..3)
            .map(|_| {
                l.acquire(&k)
                    .map(|g| g.info.requests.map(|r| r.1))
                    .ok()
                    .flatten()
                    .unwrap_or(99)
            })
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let r = l.acquire(&k).err().expect("4th refused");
        assert_eq!(
            (r.error.status, r.error.code),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded")
        );
        assert!(
            r.error
                .retry_after
                .is_some_and(|d| d >= Duration::from_secs(1))
        );
        let mut h = HeaderMap::new();
        r.info.write(&mut h);
        assert_eq!(h["x-ratelimit-limit-requests"], "3");
        assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    }

    #[test]
    fn tokens_are_counted_after_the_request() {
        let k = key(None, Some(100), None);
        let l = Local::new(&k);
        let g = l.acquire(&k).ok().expect("first");
        g.record_tokens(60);
        let g = l.acquire(&k).ok().expect("60 < 100");
        assert_eq!(g.info.tokens.map(|t| t.1), Some(40));
        g.record_tokens(50);
        let r = l.acquire(&k).err().expect("110 >= 100");
        assert_eq!(r.error.kind, "tokens");
        assert_eq!(r.info.tokens.map(|t| t.1), Some(0));
    }

    #[test]
    fn concurrency_slots_free_when_the_grant_drops() {
        let k = key(None, None, Some(2));
        let l = Local::new(&k);
        let a = l.acquire(&k).ok().expect("a");
        let _b = l.acquire(&k).ok().expect("b");
        assert!(l.acquire(&k).is_err(), "third at once refused");
        drop(a);
        assert!(l.acquire(&k).is_ok(), "a slot came back");
    }
}
