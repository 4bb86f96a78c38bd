//! Errors in OpenAI's shape, and the one mapping from [`llmux::Error`] to HTTP statuses.

use std::time::Duration;

use http::StatusCode;
use llmux::Error;
use llmux_openai::error::{ErrorBody, ErrorObject};

/// An error answer: `{"error":{"message","type","param","code"}}` with an HTTP status.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub retry_after: Option<Duration>,
    /// The upstream's own `type` and `code`, relayed in place of llmux's.
    pub upstream: Option<Box<(Option<String>, Option<String>)>>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            upstream: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Writes the JSON envelope (no trailing newline) into `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let (kind, code) = match self.upstream.as_deref() {
            Some((k, c)) => (k.as_deref().unwrap_or(self.kind), c.as_deref()),
            None => (self.kind, Some(self.code)),
        };
        let env = ErrorBody {
            error: ErrorObject {
                message: &self.message,
                kind,
                param: self.param.as_deref(),
                code,
            },
        };
        // serialising plain strings into a Vec cannot fail
        let _ = serde_json::to_writer(out, &env);
    }

    /// The JSON envelope as bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.message.len() + 96);
        self.write_json(&mut out);
        out
    }
}

/// How an SDK user should see upstream failures (every [`llmux::Error`] variant, in one place).
///
/// | llmux error | status | why |
/// |---|---|---|
/// | `InvalidInput` | 400 | the request is wrong |
/// | `ProviderNotFound`, `NoProviderForModel`, `ModelNotSupported` | 404 | `openai.NotFoundError` |
/// | `MissingAuth` | 401 `upstream_auth_required` | the *provider* needs credentials (configure them, or send `api_key` in the body); the gateway's own key errors use codes `missing_api_key` / `invalid_api_key` |
/// | `RateLimited` | 429 + `Retry-After` | passed through |
/// | `ModelLoading` | 503 + `Retry-After` | temporary |
/// | `Timeout` | 504 | upstream too slow |
/// | `HttpStatus` 400/422 | 400 | the upstream refused the request's parameters |
/// | other upstream failures | 502 | message names the provider(s) |
/// | `AllFailed` | 429 if every attempt was rate limited, 504 if every attempt timed out, else 502 (message lists every provider tried) |
/// | `Io` | 500 | local failure |
pub(crate) fn from_llmux(e: &Error) -> ApiError {
    const BAD_GATEWAY: (StatusCode, &str) = (StatusCode::BAD_GATEWAY, "upstream_error");
    let (status, kind) = match e {
        Error::InvalidInput(_) | Error::Unsupported { .. } => {
            (StatusCode::BAD_REQUEST, "invalid_request_error")
        }
        Error::ProviderNotFound { .. }
        | Error::NoProviderForModel { .. }
        | Error::ModelNotSupported { .. } => (StatusCode::NOT_FOUND, "invalid_request_error"),
        Error::MissingAuth { .. } => (StatusCode::UNAUTHORIZED, "authentication_error"),
        Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
        Error::ModelLoading { .. } => (StatusCode::SERVICE_UNAVAILABLE, "server_error"),
        Error::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout_error"),
        Error::HttpStatus {
            status: 400 | 422, ..
        }
        | Error::UpstreamApi {
            status: 400 | 422, ..
        } => (StatusCode::BAD_REQUEST, "invalid_request_error"),
        Error::AllFailed { attempts } if !attempts.is_empty() => {
            if attempts
                .iter()
                .all(|a| matches!(*a.error, Error::RateLimited { .. }))
            {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error")
            } else if attempts
                .iter()
                .all(|a| matches!(*a.error, Error::Timeout { .. }))
            {
                (StatusCode::GATEWAY_TIMEOUT, "timeout_error")
            } else {
                BAD_GATEWAY
            }
        }
        Error::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        _ => BAD_GATEWAY,
    };
    let code = match e {
        Error::MissingAuth { .. } => "upstream_auth_required",
        other => other.code(),
    };
    let param = match e {
        Error::ProviderNotFound { .. } => Some("provider".to_owned()),
        Error::NoProviderForModel { .. } | Error::ModelNotSupported { .. } => {
            Some("model".to_owned())
        }
        Error::Unsupported { param, .. } => Some(param.clone()),
        _ => None,
    };
    if let Error::UpstreamApi {
        status: up,
        message,
        detail,
        ..
    } = e
    {
        // an OpenAI-shaped upstream error keeps its meaning: status, type, code, param, message
        let status = StatusCode::from_u16(*up)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(status);
        return ApiError {
            status,
            kind,
            code: e.code(),
            message: message.clone(),
            param: detail.param.clone(),
            retry_after: None,
            upstream: Some(Box::new((detail.kind.clone(), detail.code.clone()))),
        };
    }
    let retry_after = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => e.retry_after(),
        _ => None,
    };
    ApiError {
        status,
        kind,
        code,
        message: e.to_string(),
        param,
        retry_after,
        upstream: None,
    }
}

/// `e` in Anthropic's shape, for the Messages routes: the type and status follow from the
/// status of the OpenAI-shaped error ([`llmux_anthropic::error_type`]); a wrong gateway key is
/// 401 `authentication_error`, as Anthropic answers a bad `x-api-key`.
pub(crate) fn anthropic(e: &ApiError) -> (StatusCode, llmux_anthropic::ErrorBody) {
    let (kind, status) = if e.kind == "authentication_error" {
        ("authentication_error", 401)
    } else {
        llmux_anthropic::error_type(e.status.as_u16())
    };
    let message = match &e.param {
        Some(p) if !e.message.contains(p.as_str()) => format!("{p}: {}", e.message),
        _ => e.message.clone(),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, llmux_anthropic::ErrorBody::new(kind, message))
}

/// [`from_llmux`], in Anthropic's shape.
pub(crate) fn anthropic_from_llmux(e: &Error) -> (StatusCode, llmux_anthropic::ErrorBody) {
    anthropic(&from_llmux(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux::{Attempt, TimeoutPhase};

    fn timeout(p: &str) -> Error {
        Error::Timeout {
            provider: p.into(),
            phase: TimeoutPhase::FirstByte,
            after: Duration::from_secs(1),
        }
    }

    #[test]
    fn anthropic_shapes() {
        let (s, b) = anthropic_from_llmux(&Error::invalid("bad"));
        assert_eq!(
            (s.as_u16(), b.error.kind.as_str()),
            (400, "invalid_request_error")
        );
        let loading = Error::ModelLoading {
            provider: "p".into(),
            model: "m".into(),
            estimated: None,
        };
        assert_eq!(
            anthropic_from_llmux(&loading).1.error.kind,
            "overloaded_error"
        );
        assert_eq!(anthropic_from_llmux(&loading).0.as_u16(), 529);
        let wrong_key = ApiError::new(
            StatusCode::FORBIDDEN,
            "authentication_error",
            "invalid_api_key",
            "x",
        );
        assert_eq!(anthropic(&wrong_key).0, StatusCode::UNAUTHORIZED);
        let field = ApiError::bad_request("invalid_type", "wrong").with_param("max_tokens");
        assert_eq!(anthropic(&field).1.error.message, "max_tokens: wrong");
    }

    #[test]
    fn statuses() {
        assert_eq!(from_llmux(&Error::invalid("x")).status, 400);
        let rl = Error::RateLimited {
            provider: "p".into(),
            message: "slow".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        let a = from_llmux(&rl);
        assert_eq!(
            (a.status.as_u16(), a.retry_after),
            (429, Some(Duration::from_secs(7)))
        );
        assert_eq!(from_llmux(&timeout("p")).status, 504);
        let all = Error::AllFailed {
            attempts: vec![
                Attempt {
                    provider: "a".into(),
                    model: "m".into(),
                    error: Box::new(timeout("a")),
                },
                Attempt {
                    provider: "b".into(),
                    model: "m".into(),
                    error: Box::new(Error::invalid("y")),
                },
            ],
        };
        let a = from_llmux(&all);
        assert_eq!(a.status, 502);
        assert!(
            a.message.contains("a (m)") && a.message.contains("b (m)"),
            "{}",
            a.message
        );
        let json = String::from_utf8(a.to_json()).expect("utf8");
        assert!(
            json.starts_with(r#"{"error":{"message":"all providers failed"#),
            "{json}"
        );
    }
}
