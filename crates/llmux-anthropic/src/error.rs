//! Errors in Anthropic's shape: `{"type":"error","error":{"type","message"},"request_id"}`.

use serde::{Deserialize, Serialize};

/// The error envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The error.
    pub error: ErrorObject,
    /// A request id (`req_…`).
    #[serde(default)]
    pub request_id: Option<String>,
}

/// `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// `invalid_request_error`, `authentication_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong and what to do.
    pub message: String,
}

impl ErrorBody {
    /// An error of `kind` with a new request id.
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Self {
            kind: "error".into(),
            error: ErrorObject {
                kind: kind.to_owned(),
                message: message.into(),
            },
            request_id: Some(format!("req_{}", llmux_core::random::random_alnum(24))),
        }
    }

    /// The JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // plain strings into memory: cannot fail
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Anthropic's error type and HTTP status for a gateway status (derived from the status the
/// OpenAI-shaped routes use for the same failure).
///
/// | gateway status | Anthropic |
/// |---|---|
/// | 400, 405, 408, 422, other 4xx | 400-range as given, `invalid_request_error` |
/// | 401 | 401 `authentication_error` |
/// | 403 | 403 `permission_error` |
/// | 404 | 404 `not_found_error` |
/// | 413 | 413 `request_too_large` |
/// | 429 | 429 `rate_limit_error` |
/// | 503 (model loading, overloaded) | 529 `overloaded_error` |
/// | 504 | 504 `timeout_error` |
/// | 500, 502, other 5xx | as given, `api_error` |
pub fn error_type(status: u16) -> (&'static str, u16) {
    match status {
        401 => ("authentication_error", 401),
        403 => ("permission_error", 403),
        404 => ("not_found_error", 404),
        413 => ("request_too_large", 413),
        429 => ("rate_limit_error", 429),
        503 | 529 => ("overloaded_error", 529),
        504 => ("timeout_error", 504),
        s if s >= 500 => ("api_error", s),
        s => ("invalid_request_error", s),
    }
}
