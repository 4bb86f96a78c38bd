//! One access-log line per request (target `llmux_server::access`, level info), request ids,
//! and the per-request metrics. Never logs headers, bodies or query strings, so no secret can
//! reach the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method};

use crate::answer::Answer;
use crate::keys::Caller;
use crate::limits::Grant;
use crate::metrics::Metrics;
use crate::usage::{Record, Usage};

/// Request and response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest client-supplied request id kept (longer ones are replaced by a generated id).
const MAX_REQUEST_ID: usize = 128;

/// Generates request ids: a per-process random prefix and a counter (unique, no lock).
pub(crate) struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        Self {
            prefix: llmux_core::random::random_alnum(12),
            next: AtomicU64::new(1),
        }
    }

    /// The client's `x-request-id` when it is a sane token (visible ASCII, at most 128 bytes),
    /// else a new one.
    pub fn for_request(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(v) = headers.get(REQUEST_ID_HEADER) {
            let b = v.as_bytes();
            if !b.is_empty() && b.len() <= MAX_REQUEST_ID && b.iter().all(u8::is_ascii_graphic) {
                return v.clone();
            }
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("req_{}{n:08x}", self.prefix);
        // alphanumerics and `_` only: always a valid header value
        HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("req_unknown"))
    }
}

/// What the access line says about one request.
#[derive(Clone)]
pub(crate) struct Access {
    pub method: Method,
    pub path: &'static str,
    pub start: Instant,
    pub request_id: HeaderValue,
    /// The model the client asked for.
    pub asked: String,
    /// The model and provider that answered (or were tried last).
    pub model: String,
    pub provider: String,
    /// Providers tried.
    pub attempts: u32,
    pub ttft: Option<Duration>,
    pub overhead: Option<Duration>,
    /// Prompt and completion tokens.
    pub tokens: Option<(u64, u64)>,
    pub error_code: Option<&'static str>,
    pub metrics: Option<Arc<Metrics>>,
    /// The gateway key of the request.
    pub caller: Caller,
    /// Its limits' grant: holds the concurrency slot until every copy of this is dropped.
    pub grant: Option<Arc<Grant>>,
    /// Where the key's usage is counted.
    pub usage: Option<Arc<Usage>>,
    /// A route that calls a model (its requests count in the key's usage).
    pub model_route: bool,
    /// What the response cache did (`None`: not asked).
    pub cache: Option<crate::cache::Status>,
}

impl Access {
    pub fn new(
        method: Method,
        path: &'static str,
        start: Instant,
        request_id: HeaderValue,
    ) -> Self {
        Self {
            method,
            path,
            start,
            request_id,
            asked: String::new(),
            model: String::new(),
            provider: String::new(),
            attempts: 0,
            ttft: None,
            overhead: None,
            tokens: None,
            error_code: None,
            metrics: None,
            caller: None,
            grant: None,
            usage: None,
            model_route: false,
            cache: None,
        }
    }

    /// The request id as text.
    pub fn id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    /// Records the time to the first token (once).
    pub fn first_token(&mut self) {
        if self.ttft.is_none() {
            self.ttft = Some(self.start.elapsed());
        }
    }

    /// Takes the provider, model, attempts and (once it produced something) the tokens of
    /// `answer`.
    pub fn take_answer(&mut self, answer: &Answer) {
        self.model.clone_from(&answer.model);
        self.provider.clone_from(&answer.provider);
        self.attempts = answer.attempts;
        if self.ttft.is_some() {
            let u = answer.usage();
            self.tokens = Some((u.prompt_tokens, u.completion_tokens));
        }
    }

    /// Writes the access line and counts the request (and the key's tokens and usage).
    pub fn log(&self, status: u16, outcome: &'static str) {
        if let Some(m) = &self.metrics {
            m.request(self.path, status, self.error_code);
            if let Some((i, o)) = self.spent() {
                m.tokens(&self.provider, &self.model, i, o);
            }
        }
        self.count_key_usage(status);
        let span = tracing::Span::current();
        span.record("route", self.path);
        span.record("status", i64::from(status));
        if let Some(t) = self.ttft {
            span.record("ttft_ms", ms(t));
        }
        tracing::info!(
            target: "llmux_server::access",
            request_id = self.id(),
            method = %self.method,
            route = self.path,
            model_asked = self.asked.as_str(),
            provider = self.provider.as_str(),
            model = self.model.as_str(),
            attempts = self.attempts,
            status,
            ttft_ms = self.ttft.map(ms),
            duration_ms = ms(self.start.elapsed()),
            prompt_tokens = self.tokens.map(|t| t.0),
            completion_tokens = self.tokens.map(|t| t.1),
            overhead_ms = self.overhead.map(ms),
            error = self.error_code,
            cache = self.cache.map(crate::cache::Status::as_str),
            outcome,
            "request"
        );
    }
}

impl Access {
    /// The tokens an upstream spent on this request (none for a cache hit, which replays an
    /// earlier answer's usage).
    fn spent(&self) -> Option<(u64, u64)> {
        self.tokens
            .filter(|_| self.cache != Some(crate::cache::Status::Hit))
    }

    /// Charges the tokens to the key's limits and counts its usage (model requests only).
    fn count_key_usage(&self, status: u16) {
        if let (Some(g), Some((i, o))) = (&self.grant, self.spent()) {
            g.record_tokens(i.saturating_add(o));
        }
        let Some(key) = &self.caller else {
            return;
        };
        if !self.model_route {
            return;
        }
        let record = Record {
            key: &key.config.name,
            model: &self.model,
            provider: &self.provider,
            error: status >= 400,
            tokens: self.spent(),
        };
        if let Some(u) = &self.usage {
            u.record(&record);
        }
        if let Some(m) = &self.metrics {
            m.key_usage(&record);
        }
    }
}

/// Milliseconds with microsecond precision.
pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_or_generated() {
        let ids = RequestIds::new();
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(ids.for_request(&h), "abc-123");
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("has space"));
        let a = ids.for_request(&h);
        assert!(a.to_str().expect("ascii").starts_with("req_"));
        assert_ne!(a, ids.for_request(&HeaderMap::new()), "unique");
    }
}
