//! Live health per (provider instance, model), and the circuit breaker that routing follows.
//!
//! Every attempt fallback makes is recorded: consecutive failures, the error class of the last
//! failure, the last success, and moving averages of the time to first content and of the
//! total time. After [`HealthConfig::failure_threshold`] consecutive failures of the kinds that
//! mean "this provider is down" (connection failures, timeouts, 5xx, Cloudflare challenges,
//! protocol breakage) the entry **opens** for a cooldown that doubles on every reopening, from
//! [`HealthConfig::cooldown`] up to [`HealthConfig::max_cooldown`]. A 429 with `Retry-After`
//! opens it until then at once. Once the cooldown is over the entry is **half-open**: exactly
//! one request may probe it; a success closes it, a down-kind failure opens it again.
//!
//! Errors caused by the request or the caller (a 400/422, invalid input, unsupported
//! parameters, missing credentials, an unsupported model) neither count nor reset the count.
//!
//! Routing ([`crate::resolve`]) keeps the priority order among closed entries and half-open
//! entries whose probe is free (so a recovered provider gets its place back: the first request
//! that reaches it is the probe; concurrent ones skip it at no cost and go on to the next
//! candidate), and puts open entries (and half-open ones being probed) last, only when nothing
//! else serves the model. A provider the caller named is always tried (its health only informs).
//!
//! Cost: one short mutex section when a request is routed and one per attempt outcome; nothing
//! per chunk. Times use tokio's clock, so tests can pause and advance it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use llmux_core::Error;
use serde::Serialize;
use tokio::time::Instant;

/// Most models tracked per provider (model ids come from callers: the map must stay bounded).
const MAX_MODELS_PER_PROVIDER: usize = 256;
/// Weight of the newest sample in the moving averages.
const EWMA_WEIGHT: f64 = 0.2;

/// Circuit-breaker settings (`[health]` in the CLI's configuration file).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthConfig {
    /// Track health and let it order routing. Default on.
    pub enabled: bool,
    /// Consecutive down-kind failures that open an entry. Default 3.
    pub failure_threshold: u32,
    /// How long an entry stays open the first time. Default 30 s.
    pub cooldown: Duration,
    /// Longest cooldown (it doubles on every reopening up to this). Default 10 min.
    pub max_cooldown: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_threshold: 3,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
        }
    }
}

/// Breaker state of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests go through.
    Closed,
    /// Cooldown over: one probe request may go through.
    HalfOpen,
    /// Skipped by routing (unless nothing else serves the model) until the cooldown ends.
    Open,
}

impl BreakerState {
    /// `closed`, `half_open` or `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }
}

/// What an attempt's error says about the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The provider looks down: counts towards opening.
    Down,
    /// Rate limited until this long from now: opens at once.
    OpenFor(Duration),
    /// Caused by the request or the caller: says nothing about the provider.
    Neutral,
}

fn verdict(e: &Error) -> Verdict {
    match e {
        Error::RateLimited {
            retry_after: Some(d),
            ..
        } => Verdict::OpenFor(*d),
        Error::HttpStatus { status, .. } | Error::UpstreamApi { status, .. }
            if *status >= 500 || *status == 408 =>
        {
            Verdict::Down
        }
        Error::Connect { .. }
        | Error::Timeout { .. }
        | Error::Cloudflare { .. }
        | Error::Protocol { .. }
        | Error::Upstream { .. }
        | Error::ModelLoading { .. }
        | Error::RateLimited { .. } => Verdict::Down,
        _ => Verdict::Neutral,
    }
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    last_error: Option<&'static str>,
    last_message: Option<String>,
    last_failure: Option<SystemTime>,
    last_success: Option<SystemTime>,
    ttft: Option<f64>,
    total: Option<f64>,
    /// Open until then (half-open after it).
    open_until: Option<Instant>,
    /// Opened because of a 429.
    rate_limited: bool,
    /// Times opened in a row (the cooldown doubles each time).
    opens: u32,
    probing: bool,
    attempts: u64,
    successes: u64,
}

impl State {
    fn breaker(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(t) if now < t => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// The state routing sees: a half-open entry whose probe is under way counts as open.
    fn routing(&self, now: Instant) -> BreakerState {
        match self.breaker(now) {
            BreakerState::HalfOpen if self.probing => BreakerState::Open,
            s => s,
        }
    }

    fn open(&mut self, config: &HealthConfig, now: Instant) {
        let factor = 2u32.saturating_pow(self.opens.min(16));
        let cooldown = config
            .cooldown
            .saturating_mul(factor)
            .min(config.max_cooldown);
        self.opens = self.opens.saturating_add(1);
        self.open_until = Some(now + cooldown);
        self.rate_limited = false;
    }
}

fn ewma(prev: Option<f64>, sample: Duration) -> Option<f64> {
    let s = sample.as_secs_f64();
    Some(prev.map_or(s, |p| p + EWMA_WEIGHT * (s - p)))
}

/// One attempt's outcome, as reported to an [`AttemptObserver`].
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// The provider produced content after this long.
    FirstContent(Duration),
    /// The answer ended after this long in total.
    Finished(Duration),
    /// The attempt failed before any content.
    Failed(&'a Error),
    /// Skipped: its breaker is half-open and another request is probing it.
    Skipped,
}

/// Receives every attempt outcome of a [`crate::Client`] (for metrics). Called inline: keep
/// it cheap (atomics), never block.
pub trait AttemptObserver: Send + Sync + 'static {
    /// `provider` answered (or failed) `model` like this.
    fn attempt(&self, provider: &str, model: &str, outcome: Outcome<'_>);
}

/// Provider → model → state (looked up by `&str`, without allocating).
type Table = HashMap<Box<str>, HashMap<Box<str>, State>>;

/// Health of every (provider, model) a client has tried.
#[derive(Default)]
pub(crate) struct Health {
    pub config: HealthConfig,
    map: Mutex<Table>,
    pub observer: std::sync::OnceLock<Arc<dyn AttemptObserver>>,
}

impl Health {
    pub fn new(config: HealthConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<R>(&self, provider: &str, model: &str, f: impl FnOnce(&mut State) -> R) -> R {
        let mut map = self.lock();
        let models = match map.get_mut(provider) {
            Some(m) => m,
            None => map.entry(provider.into()).or_default(),
        };
        if !models.contains_key(model) && models.len() >= MAX_MODELS_PER_PROVIDER {
            let now = Instant::now();
            models.retain(|_, s| s.breaker(now) != BreakerState::Closed);
            if models.len() >= MAX_MODELS_PER_PROVIDER {
                models.clear();
            }
        }
        let state = match models.get_mut(model) {
            Some(s) => s,
            None => models.entry(model.into()).or_default(),
        };
        f(state)
    }

    /// The breaker state routing uses for each `(provider, model)`, under one lock.
    pub fn routing_states<'a>(
        &self,
        keys: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Vec<BreakerState> {
        if !self.config.enabled {
            return keys.map(|_| BreakerState::Closed).collect();
        }
        let now = Instant::now();
        let map = self.lock();
        keys.map(|(p, m)| {
            map.get(p)
                .and_then(|models| models.get(m))
                .map_or(BreakerState::Closed, |s| s.routing(now))
        })
        .collect()
    }

    /// Starts an attempt: `None` when the entry is half-open and another request holds its
    /// probe (the caller skips it), unless `force` (a provider the caller named).
    pub fn admit(self: &Arc<Self>, provider: &str, model: &str, force: bool) -> Option<Watch> {
        let mut probe = false;
        if self.config.enabled {
            let now = Instant::now();
            let admitted = self.with(provider, model, |s| {
                s.attempts += 1;
                if s.breaker(now) == BreakerState::HalfOpen && !force {
                    if s.probing {
                        return false;
                    }
                    s.probing = true;
                    probe = true;
                }
                true
            });
            if !admitted {
                self.observe(provider, model, Outcome::Skipped);
                return None;
            }
        }
        let span = tracing::info_span!(
            "attempt",
            provider,
            model,
            probe,
            ttft_ms = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        Some(Watch {
            span,
            health: self.clone(),
            provider: provider.to_owned(),
            model: model.to_owned(),
            start: Instant::now(),
            probe,
            content: false,
        })
    }

    fn observe(&self, provider: &str, model: &str, outcome: Outcome<'_>) {
        if let Some(o) = self.observer.get() {
            o.attempt(provider, model, outcome);
        }
    }

    /// Opens the breaker of `(provider, model)` for `open_for` (unless it is open longer
    /// already): how another replica's report is applied.
    pub fn open_for(&self, provider: &str, model: &str, open_for: Duration, rate_limited: bool) {
        if !self.config.enabled || open_for.is_zero() {
            return;
        }
        let until = Instant::now() + open_for;
        self.with(provider, model, |s| {
            if s.open_until.is_none_or(|t| t < until) {
                s.open_until = Some(until);
                s.rate_limited = rate_limited;
            }
        });
    }

    /// A snapshot of every tracked entry, by provider.
    pub fn snapshot(&self) -> Vec<ModelHealth> {
        let now = Instant::now();
        let map = self.lock();
        let mut out: Vec<ModelHealth> = map
            .iter()
            .flat_map(|(p, models)| {
                models
                    .iter()
                    .map(move |(m, s)| ModelHealth::from_state(p, m, s, now))
            })
            .collect();
        out.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        out
    }
}

/// One attempt under way: reports its outcome to the health table (and the observer). Dropped
/// without an outcome (the caller went away), it only gives the probe back.
pub(crate) struct Watch {
    /// The `attempt` span (exported with the gateway's `otel` feature): `provider`, `model`,
    /// `probe`, `ttft_ms`, `error`.
    span: tracing::Span,
    health: Arc<Health>,
    provider: String,
    model: String,
    start: Instant,
    probe: bool,
    content: bool,
}

impl Watch {
    /// The first content chunk arrived: the provider works.
    pub fn content(&mut self) {
        if self.content {
            return;
        }
        self.content = true;
        let ttft = self.start.elapsed();
        self.span.record("ttft_ms", ttft.as_secs_f64() * 1000.0);
        self.probe = false;
        self.health.with(&self.provider, &self.model, |s| {
            s.failures = 0;
            s.open_until = None;
            s.rate_limited = false;
            s.opens = 0;
            s.probing = false;
            s.successes += 1;
            s.last_success = Some(SystemTime::now());
            s.ttft = ewma(s.ttft, ttft);
        });
        self.health
            .observe(&self.provider, &self.model, Outcome::FirstContent(ttft));
    }

    /// The answer ended (after content).
    pub fn finished(&mut self) {
        let total = self.start.elapsed();
        self.health.with(&self.provider, &self.model, |s| {
            s.total = ewma(s.total, total);
        });
        self.health
            .observe(&self.provider, &self.model, Outcome::Finished(total));
    }

    /// The attempt failed with `e` before any content (each failed try counts, retries too).
    pub fn failed(&mut self, e: &Error) {
        let config = self.health.config;
        let now = Instant::now();
        let probe = std::mem::take(&mut self.probe);
        self.span.record("error", e.code());
        self.health.with(&self.provider, &self.model, |s| {
            s.last_error = Some(e.code());
            s.last_message = Some(llmux_core::error::snippet(&e.to_string(), 200));
            s.last_failure = Some(SystemTime::now());
            if probe {
                s.probing = false;
            }
            match verdict(e) {
                Verdict::Neutral => {}
                Verdict::OpenFor(d) => {
                    s.failures = s.failures.saturating_add(1);
                    s.open_until = Some(now + d);
                    s.rate_limited = true;
                }
                Verdict::Down => {
                    s.failures = s.failures.saturating_add(1);
                    if probe || s.failures >= config.failure_threshold.max(1) {
                        s.open(&config, now);
                    }
                }
            }
        });
        self.health
            .observe(&self.provider, &self.model, Outcome::Failed(e));
    }
}

/// The error recorded for a candidate skipped because another request is probing it.
pub(crate) fn probing(provider: &str) -> Error {
    Error::Upstream {
        provider: provider.to_owned(),
        message: "skipped: its circuit breaker is half-open and another request is probing it"
            .into(),
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.probe {
            self.health
                .with(&self.provider, &self.model, |s| s.probing = false);
        }
    }
}

/// The live health of one (provider, model), as [`crate::Client::health`] shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelHealth {
    /// Provider instance name.
    pub provider: String,
    /// Model asked of it.
    pub model: String,
    /// Breaker state.
    pub state: BreakerState,
    /// Opened by a 429 (`Retry-After`).
    pub rate_limited: bool,
    /// Down-kind failures in a row.
    pub consecutive_failures: u32,
    /// Error code (`Error::code`) of the last failure.
    pub last_error: Option<&'static str>,
    /// Its message, shortened.
    pub last_error_message: Option<String>,
    /// When the last failure happened (seconds since the Unix epoch).
    pub last_failure_at: Option<u64>,
    /// When the last success happened (seconds since the Unix epoch).
    pub last_success_at: Option<u64>,
    /// Moving average of the time to first content, in milliseconds.
    pub ttft_ms: Option<f64>,
    /// Moving average of the total time of an answer, in milliseconds.
    pub duration_ms: Option<f64>,
    /// Seconds until an open entry turns half-open.
    pub retry_in_secs: Option<f64>,
    /// Attempts started (including skipped ones).
    pub attempts: u64,
    /// Attempts that produced content.
    pub successes: u64,
}

fn epoch(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

impl ModelHealth {
    fn from_state(provider: &str, model: &str, s: &State, now: Instant) -> Self {
        let state = s.breaker(now);
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            state,
            rate_limited: s.rate_limited && state == BreakerState::Open,
            consecutive_failures: s.failures,
            last_error: s.last_error,
            last_error_message: s.last_message.clone(),
            last_failure_at: epoch(s.last_failure),
            last_success_at: epoch(s.last_success),
            ttft_ms: s.ttft.map(|v| v * 1000.0),
            duration_ms: s.total.map(|v| v * 1000.0),
            retry_in_secs: s
                .open_until
                .filter(|t| *t > now)
                .map(|t| (t - now).as_secs_f64()),
            attempts: s.attempts,
            successes: s.successes,
        }
    }

    /// A one-word status: `ok`, `degraded` (failing, or half-open), `rate_limited` or `down`.
    pub fn status(&self) -> &'static str {
        match self.state {
            BreakerState::Open if self.rate_limited => "rate_limited",
            BreakerState::Open => "down",
            BreakerState::HalfOpen => "degraded",
            BreakerState::Closed if self.consecutive_failures > 0 => "degraded",
            BreakerState::Closed => "ok",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> Error {
        Error::Connect {
            provider: "a".into(),
            message: "refused".into(),
        }
    }

    fn health(threshold: u32) -> Arc<Health> {
        Arc::new(Health::new(HealthConfig {
            failure_threshold: threshold,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(25),
            enabled: true,
        }))
    }

    fn state(h: &Health) -> BreakerState {
        h.routing_states(std::iter::once(("a", "m")))[0]
    }

    #[tokio::test(start_paused = true)]
    async fn opens_doubles_and_closes() {
        let h = health(2);
        for _ in 0..2 {
            h.admit("a", "m", false).expect("closed").failed(&down());
        }
        assert_eq!(state(&h), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(state(&h), BreakerState::HalfOpen);
        let mut probe = h.admit("a", "m", false).expect("the probe");
        assert!(h.admit("a", "m", false).is_none(), "one probe at a time");
        assert_eq!(state(&h), BreakerState::Open, "probe under way");
        probe.failed(&down());
        // reopened for twice the cooldown
        tokio::time::advance(Duration::from_secs(19)).await;
        assert_eq!(state(&h), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(state(&h), BreakerState::HalfOpen);
        let mut probe = h.admit("a", "m", false).expect("the probe");
        probe.failed(&down());
        // capped at max_cooldown
        tokio::time::advance(Duration::from_secs(25)).await;
        assert_eq!(state(&h), BreakerState::HalfOpen);
        h.admit("a", "m", false).expect("probe").content();
        assert_eq!(state(&h), BreakerState::Closed);
        let snap = &h.snapshot()[0];
        assert_eq!(snap.consecutive_failures, 0);
        assert_eq!(snap.status(), "ok");
        assert!(snap.ttft_ms.is_some() && snap.last_success_at.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_probe_is_given_back() {
        let h = health(1);
        h.admit("a", "m", false).expect("closed").failed(&down());
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(h.admit("a", "m", false).expect("the probe"));
        assert!(
            h.admit("a", "m", false).is_some(),
            "the probe is free again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn caller_errors_never_open_and_429_opens_until_retry_after() {
        let h = health(1);
        let caller = [
            Error::HttpStatus {
                provider: "a".into(),
                status: 400,
                message: "bad".into(),
            },
            Error::HttpStatus {
                provider: "a".into(),
                status: 422,
                message: "bad".into(),
            },
            Error::invalid("x"),
            Error::MissingAuth {
                provider: "a".into(),
                help: "h".into(),
                login_url: None,
            },
            Error::ModelNotSupported {
                provider: "a".into(),
                model: "m".into(),
                valid: vec![],
            },
            Error::Unsupported {
                provider: "a".into(),
                param: "tools".into(),
                help: "h".into(),
            },
        ];
        for e in &caller {
            h.admit("a", "m", false).expect("closed").failed(e);
        }
        assert_eq!(state(&h), BreakerState::Closed);
        let rl = Error::RateLimited {
            provider: "a".into(),
            message: "slow".into(),
            retry_after: Some(Duration::from_secs(120)),
        };
        h.admit("a", "m", false).expect("closed").failed(&rl);
        assert_eq!(state(&h), BreakerState::Open);
        assert_eq!(h.snapshot()[0].status(), "rate_limited");
        tokio::time::advance(Duration::from_secs(119)).await;
        assert_eq!(state(&h), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(state(&h), BreakerState::HalfOpen);
    }
}
