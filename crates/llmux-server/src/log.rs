//! One access-log line per request (target `llmux_server::access`, level info). Never logs
//! headers, bodies or query strings, so no secret can reach the log.

use std::time::{Duration, Instant};

use http::Method;

/// What the access line says about one request.
#[derive(Clone)]
pub(crate) struct Access {
    pub method: Method,
    pub path: &'static str,
    pub start: Instant,
    pub model: String,
    pub provider: String,
    pub ttft: Option<Duration>,
    pub error_code: Option<&'static str>,
}

impl Access {
    pub fn new(method: Method, path: &'static str, start: Instant) -> Self {
        Self {
            method,
            path,
            start,
            model: String::new(),
            provider: String::new(),
            ttft: None,
            error_code: None,
        }
    }

    /// Records the time to the first token (once).
    pub fn first_token(&mut self) {
        if self.ttft.is_none() {
            self.ttft = Some(self.start.elapsed());
        }
    }

    /// Writes the access line.
    pub fn log(&self, status: u16, outcome: &'static str) {
        tracing::info!(
            target: "llmux_server::access",
            method = %self.method,
            path = self.path,
            model = self.model.as_str(),
            provider = self.provider.as_str(),
            status,
            latency_ms = ms(self.start.elapsed()),
            ttft_ms = self.ttft.map(ms),
            error = self.error_code,
            outcome,
            "request"
        );
    }
}

/// Milliseconds with microsecond precision.
pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}
