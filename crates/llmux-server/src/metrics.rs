//! `GET /metrics`: the gateway's metrics in the OpenMetrics text format (which Prometheus
//! scrapes), through the `prometheus-client` crate.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `llmux_http_requests_total` | `route`, `status` | requests answered |
//! | `llmux_attempts_total` | `provider`, `model`, `outcome` | provider attempts: `ok`, an error code (`timeout`, `connect`, …), or `skipped` (half-open, another request probing) |
//! | `llmux_fallbacks_total` | `provider` | attempts that failed over to the next candidate (or a retry) |
//! | `llmux_errors_total` | `code` | error responses (and stream error events) by `error.code` |
//! | `llmux_time_to_first_token_seconds` | `provider` | histogram: attempt start to first content |
//! | `llmux_attempt_duration_seconds` | `provider` | histogram: attempt start to the end of the answer |
//! | `llmux_tokens_total` | `provider`, `model`, `direction` (`in`/`out`) | tokens (upstream's usage, else the estimate) |
//! | `llmux_open_streams` | | streamed answers in flight |
//! | `llmux_breaker_state` | `provider`, `model` | 0 closed, 1 half-open, 2 open (set at scrape time) |
//! | `llmux_key_requests_total` | `key`, `provider`, `model` | model requests per gateway key (its `name`) |
//! | `llmux_key_errors_total` | `key`, `provider`, `model` | those that failed |
//! | `llmux_key_tokens_total` | `key`, `provider`, `model`, `direction` | their tokens |
//! | `llmux_cache_requests_total` | `result` (`hit`/`miss`) | chat requests that used the response cache |
//!
//! Cost: a handful of counter updates per request and per attempt (a read lock on a label map
//! and an atomic add each); nothing per chunk.

use std::sync::Arc;
use std::time::Duration;

use llmux::{AttemptObserver, BreakerState, Outcome};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `Content-Type` of the exposition.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    provider: String,
    model: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: String,
    model: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    provider: String,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key: String,
    provider: String,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyTokenLabels {
    key: String,
    provider: String,
    model: String,
    direction: &'static str,
}

/// The counters of one (key, provider, model), looked up without allocating.
#[derive(Clone)]
struct KeyCounters {
    requests: Counter,
    errors: Counter,
    tokens_in: Counter,
    tokens_out: Counter,
}

type Histograms = Family<ProviderLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

/// Every metric of one gateway.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    fallbacks: Family<ProviderLabel, Counter>,
    errors: Family<CodeLabel, Counter>,
    ttft: Histograms,
    duration: Histograms,
    tokens: Family<TokenLabels, Counter>,
    open_streams: Gauge,
    breaker: Family<ModelLabels, Gauge>,
    key_requests: Family<KeyLabels, Counter>,
    key_errors: Family<KeyLabels, Counter>,
    key_tokens: Family<KeyTokenLabels, Counter>,
    key_counters: crate::usage::Labels3<KeyCounters>,
    cache: Family<CacheLabel, Counter>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut m = Self {
            registry: Registry::with_prefix("llmux"),
            requests: Family::default(),
            attempts: Family::default(),
            fallbacks: Family::default(),
            errors: Family::default(),
            ttft: Family::new_with_constructor(latency_histogram),
            duration: Family::new_with_constructor(latency_histogram),
            tokens: Family::default(),
            open_streams: Gauge::default(),
            breaker: Family::default(),
            key_requests: Family::default(),
            key_errors: Family::default(),
            key_tokens: Family::default(),
            key_counters: crate::usage::Labels3::new(),
            cache: Family::default(),
        };
        let r = &mut m.registry;
        r.register("http_requests", "Requests answered", m.requests.clone());
        r.register(
            "attempts",
            "Provider attempts by outcome",
            m.attempts.clone(),
        );
        r.register(
            "fallbacks",
            "Attempts that failed over to the next candidate (or a retry)",
            m.fallbacks.clone(),
        );
        r.register("errors", "Error responses by code", m.errors.clone());
        r.register(
            "time_to_first_token_seconds",
            "Attempt start to first content",
            m.ttft.clone(),
        );
        r.register(
            "attempt_duration_seconds",
            "Attempt start to the end of the answer",
            m.duration.clone(),
        );
        r.register(
            "tokens",
            "Tokens in (prompt) and out (completion)",
            m.tokens.clone(),
        );
        r.register(
            "open_streams",
            "Streamed answers in flight",
            m.open_streams.clone(),
        );
        r.register(
            "breaker_state",
            "Circuit breaker: 0 closed, 1 half-open, 2 open",
            m.breaker.clone(),
        );
        r.register(
            "key_requests",
            "Model requests per gateway key",
            m.key_requests.clone(),
        );
        r.register(
            "key_errors",
            "Failed model requests per gateway key",
            m.key_errors.clone(),
        );
        r.register(
            "key_tokens",
            "Tokens per gateway key, in (prompt) and out (completion)",
            m.key_tokens.clone(),
        );
        r.register(
            "cache_requests",
            "Chat requests that used the response cache, by result",
            m.cache.clone(),
        );
        Arc::new(m)
    }

    /// One model request of a gateway key.
    pub fn key_usage(&self, r: &crate::usage::Record<'_>) {
        let c = self.key_counters.get(r.key, r.provider, r.model, || {
            let labels = KeyLabels {
                key: r.key.to_owned(),
                provider: r.provider.to_owned(),
                model: r.model.to_owned(),
            };
            // one statement each: get_or_create's guard must be gone before the next call on
            // the same family (a new label takes its write lock)
            let token_labels = |direction| KeyTokenLabels {
                key: labels.key.clone(),
                provider: labels.provider.clone(),
                model: labels.model.clone(),
                direction,
            };
            let tokens_in = self.key_tokens.get_or_create(&token_labels("in")).clone();
            let tokens_out = self.key_tokens.get_or_create(&token_labels("out")).clone();
            let requests = self.key_requests.get_or_create(&labels).clone();
            let errors = self.key_errors.get_or_create(&labels).clone();
            KeyCounters {
                requests,
                errors,
                tokens_in,
                tokens_out,
            }
        });
        c.requests.inc();
        if r.error {
            c.errors.inc();
        }
        if let Some((i, o)) = r.tokens {
            c.tokens_in.inc_by(i);
            c.tokens_out.inc_by(o);
        }
    }

    /// One request answered.
    pub fn request(&self, route: &'static str, status: u16, error: Option<&'static str>) {
        self.requests
            .get_or_create(&RouteStatus { route, status })
            .inc();
        if let Some(code) = error {
            self.errors.get_or_create(&CodeLabel { code }).inc();
        }
    }

    /// Tokens of one answer.
    pub fn tokens(&self, provider: &str, model: &str, prompt: u64, completion: u64) {
        for (direction, n) in [("in", prompt), ("out", completion)] {
            let labels = TokenLabels {
                provider: provider.to_owned(),
                model: model.to_owned(),
                direction,
            };
            self.tokens.get_or_create(&labels).inc_by(n);
        }
    }

    /// A chat request that used the response cache: a hit or a miss.
    pub fn cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache.get_or_create(&CacheLabel { result }).inc();
    }

    /// A stream opened (`+1`) or closed (`-1`).
    pub fn stream(&self, delta: i64) {
        self.open_streams.inc_by(delta);
    }

    /// The exposition, with the breaker states of `client` as they are now.
    pub fn encode(&self, client: &llmux::Client) -> String {
        self.breaker.clear();
        for h in client.health() {
            let v = match h.state {
                BreakerState::Closed => 0,
                BreakerState::HalfOpen => 1,
                BreakerState::Open => 2,
            };
            let labels = ModelLabels {
                provider: h.provider,
                model: h.model,
            };
            self.breaker.get_or_create(&labels).set(v);
        }
        let mut out = String::new();
        // writing into a String cannot fail
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn attempt_outcome(&self, provider: &str, model: &str, outcome: &'static str) {
        let labels = AttemptLabels {
            provider: provider.to_owned(),
            model: model.to_owned(),
            outcome,
        };
        self.attempts.get_or_create(&labels).inc();
    }
}

fn provider_label(provider: &str) -> ProviderLabel {
    ProviderLabel {
        provider: provider.to_owned(),
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl AttemptObserver for Metrics {
    fn attempt(&self, provider: &str, model: &str, outcome: Outcome<'_>) {
        match outcome {
            Outcome::FirstContent(d) => {
                self.attempt_outcome(provider, model, "ok");
                self.ttft
                    .get_or_create(&provider_label(provider))
                    .observe(secs(d));
            }
            Outcome::Finished(d) => {
                self.duration
                    .get_or_create(&provider_label(provider))
                    .observe(secs(d));
            }
            Outcome::Failed(e) => {
                self.attempt_outcome(provider, model, e.code());
                if e.action() != llmux::Action::GiveUp {
                    self.fallbacks
                        .get_or_create(&provider_label(provider))
                        .inc();
                }
            }
            Outcome::Skipped => self.attempt_outcome(provider, model, "skipped"),
        }
    }
}
