//! Live provider health for `GET /v1/providers` and `GET /ready`.

use http::StatusCode;
use llmux::{BreakerState, ModelHealth};
use serde::Serialize;

use crate::body::{self, Body};

/// The `health` object of a provider: its worst news, and every model tracked.
#[derive(Serialize)]
pub(crate) struct ProviderHealth {
    /// `ok`, `degraded`, `down`, `rate_limited`, or `unknown` (never tried).
    status: &'static str,
    /// The best breaker state among its models (`closed` when none is tracked).
    state: BreakerState,
    consecutive_failures: u32,
    last_error: Option<&'static str>,
    last_success_at: Option<u64>,
    ttft_ms: Option<f64>,
    duration_ms: Option<f64>,
    retry_in_secs: Option<f64>,
    models: Vec<ModelHealth>,
}

impl ProviderHealth {
    /// The health of `provider` out of a snapshot of every entry.
    pub fn of(provider: &str, all: &[ModelHealth]) -> Self {
        let models: Vec<ModelHealth> = all
            .iter()
            .filter(|h| h.provider == provider)
            .cloned()
            .collect();
        let state = models
            .iter()
            .map(|m| m.state)
            .min()
            .unwrap_or(BreakerState::Closed);
        let status = if models.is_empty() {
            "unknown"
        } else if state == BreakerState::Open {
            if models.iter().any(|m| m.rate_limited) {
                "rate_limited"
            } else {
                "down"
            }
        } else if models.iter().all(|m| m.status() == "ok") {
            "ok"
        } else {
            "degraded"
        };
        let latest = models.iter().max_by_key(|m| m.last_success_at);
        Self {
            status,
            state,
            consecutive_failures: models
                .iter()
                .map(|m| m.consecutive_failures)
                .max()
                .unwrap_or(0),
            last_error: models
                .iter()
                .max_by_key(|m| m.last_failure_at)
                .and_then(|m| m.last_error),
            last_success_at: latest.and_then(|m| m.last_success_at),
            ttft_ms: latest.and_then(|m| m.ttft_ms),
            duration_ms: latest.and_then(|m| m.duration_ms),
            retry_in_secs: models
                .iter()
                .filter_map(|m| m.retry_in_secs)
                .reduce(f64::min)
                .filter(|_| state == BreakerState::Open),
            models,
        }
    }
}

#[derive(Serialize)]
struct Reason<'a> {
    provider: &'a str,
    reason: String,
}

/// `GET /ready`: 200 when at least one provider automatic routing uses is not open, else 503
/// with the reasons.
pub(crate) fn ready(client: &llmux::Client) -> http::Response<Body> {
    let all = client.health();
    let mut routable = Vec::new();
    let mut reasons = Vec::new();
    let providers = client.providers();
    for p in providers.iter().filter(|p| p.enabled) {
        let h = ProviderHealth::of(&p.info.name, &all);
        if h.state == BreakerState::Open {
            let retry = h
                .retry_in_secs
                .map(|s| format!(", half-open in {s:.0}s"))
                .unwrap_or_default();
            reasons.push(Reason {
                provider: &p.info.name,
                reason: format!(
                    "circuit open after {} failures (last: {}){retry}",
                    h.consecutive_failures,
                    h.last_error.unwrap_or("unknown")
                ),
            });
        } else {
            routable.push(p.info.name.as_str());
        }
    }
    if routable.is_empty() {
        if reasons.is_empty() {
            reasons.push(Reason {
                provider: "",
                reason: "no provider is enabled for automatic routing: configure one (e.g. `--upstream URL`)".into(),
            });
        }
        let body = serde_json::json!({"status": "unavailable", "reasons": reasons});
        return body::json(StatusCode::SERVICE_UNAVAILABLE, &body);
    }
    let body = serde_json::json!({"status": "ready", "routable": routable, "open": reasons});
    body::json(StatusCode::OK, &body)
}
