//! The one error type of llmux, and the one place that decides what to do about an error.

use std::fmt;
use std::time::Duration;

/// Result alias used throughout llmux.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which phase of a call a timeout hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutPhase {
    /// Opening the TCP/TLS connection (or proxy tunnel).
    Connect,
    /// Waiting for the response headers after the request was sent.
    FirstByte,
    /// Silence between two body chunks of a streaming response.
    Idle,
    /// The whole call took longer than its total budget.
    Total,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::FirstByte => "first byte",
            TimeoutPhase::Idle => "idle (no data between chunks)",
            TimeoutPhase::Total => "total",
        })
    }
}

/// The `type`, `code` and `param` of an OpenAI-shaped upstream error ([`Error::UpstreamApi`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiErrorDetail {
    /// The error `type`.
    pub kind: Option<String>,
    /// The error `code`.
    pub code: Option<String>,
    /// The request field it names.
    pub param: Option<String>,
}

/// One provider attempt recorded by fallback.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Provider name.
    pub provider: String,
    /// Model asked of that provider.
    pub model: String,
    /// What went wrong.
    pub error: Box<Error>,
}

/// Everything that can go wrong in llmux. Messages say what to do; none contains a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The provider does not serve this model.
    #[error(
        "model `{model}` is not supported by {provider}{}",
        list_hint("valid models", valid)
    )]
    ModelNotSupported {
        /// Provider name.
        provider: String,
        /// Requested model.
        model: String,
        /// Some of the models it does serve.
        valid: Vec<String>,
    },
    /// No provider of that name is compiled in or configured.
    #[error(
        "provider `{name}` not found{}",
        list_hint("did you mean", suggestions)
    )]
    ProviderNotFound {
        /// Requested name.
        name: String,
        /// Close matches.
        suggestions: Vec<String>,
    },
    /// No working provider serves the model.
    #[error(
        "no provider serves model `{model}`{}",
        list_hint("close matches", suggestions)
    )]
    NoProviderForModel {
        /// Requested model.
        model: String,
        /// Close matches among known models.
        suggestions: Vec<String>,
    },
    /// Credentials are missing, expired or refused.
    #[error("{provider}: authentication required: {help}")]
    MissingAuth {
        /// Provider name.
        provider: String,
        /// What to supply and where to get it.
        help: String,
        /// Where to log in, when known.
        login_url: Option<String>,
    },
    /// The upstream rate-limited us (HTTP 429/402 or a quota message).
    #[error("{provider}: rate limited: {message}{}", retry_hint(retry_after))]
    RateLimited {
        /// Provider name.
        provider: String,
        /// Upstream's message.
        message: String,
        /// How long the upstream asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The model is still loading on the upstream (Hugging Face 503 with `estimated_time`).
    #[error("{provider}: model `{model}` is loading{}", eta_hint(estimated))]
    ModelLoading {
        /// Provider name.
        provider: String,
        /// The model.
        model: String,
        /// Upstream's estimate of the remaining load time.
        estimated: Option<Duration>,
    },
    /// A non-success HTTP status.
    #[error("{provider}: HTTP {status}: {message}")]
    HttpStatus {
        /// Provider name.
        provider: String,
        /// Status code.
        status: u16,
        /// A short, cleaned message (upstream error text, or "HTML content").
        message: String,
    },
    /// The upstream refused the request with an OpenAI-shaped error body
    /// (`{"error":{"message","type","code","param"}}`), kept as it said it so that a gateway can
    /// relay it unchanged (`context_length_exceeded` on `messages`, …).
    #[error("{provider}: HTTP {status}: {message}")]
    UpstreamApi {
        /// Provider name.
        provider: String,
        /// Status code.
        status: u16,
        /// The upstream's message (credentials it echoed are scrubbed).
        message: String,
        /// The upstream's `type`, `code` and `param`.
        detail: Box<ApiErrorDetail>,
    },
    /// A Cloudflare (or similar bot-protection) challenge page.
    #[error(
        "{provider}: blocked by a Cloudflare challenge (HTTP {status}); try again later, use a proxy, or supply browser cookies"
    )]
    Cloudflare {
        /// Provider name.
        provider: String,
        /// Status code.
        status: u16,
    },
    /// A timeout.
    #[error("{provider}: {phase} timeout after {:.1}s", after.as_secs_f64())]
    Timeout {
        /// Provider name (empty when not known).
        provider: String,
        /// Which phase.
        phase: TimeoutPhase,
        /// The limit that was hit.
        after: Duration,
    },
    /// Could not connect, or the connection broke.
    #[error("{provider}: connection failed: {message}")]
    Connect {
        /// Provider name.
        provider: String,
        /// What happened (no URL credentials).
        message: String,
    },
    /// The upstream sent data that does not follow its protocol.
    #[error("{provider}: protocol error: {message}{}", snippet_hint(snippet))]
    Protocol {
        /// Provider name.
        provider: String,
        /// What was wrong.
        message: String,
        /// A short excerpt of the offending data.
        snippet: String,
    },
    /// The upstream answered with an error message inside a successful response.
    #[error("{provider}: {message}")]
    Upstream {
        /// Provider name.
        provider: String,
        /// Cleaned upstream message.
        message: String,
    },
    /// A response body exceeded its size limit.
    #[error("{provider}: response body larger than {limit} bytes")]
    BodyTooLarge {
        /// Provider name.
        provider: String,
        /// The limit.
        limit: usize,
    },
    /// The caller's input is wrong (bad media, bad model string, bad parameter).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The request carries a field the chosen provider cannot honour, and dropping it would
    /// change the answer.
    #[error("{provider} cannot honour `{param}`: {help}")]
    Unsupported {
        /// Provider name (or `every provider serving <model>`).
        provider: String,
        /// The request field (`tools`, `response_format`, `logprobs`, …).
        param: String,
        /// What to do instead.
        help: String,
    },
    /// Every candidate provider failed.
    #[error("all providers failed:{}", attempts_list(attempts))]
    AllFailed {
        /// Every attempt, in order.
        attempts: Vec<Attempt>,
    },
    /// Every candidate provider finished without producing any content.
    #[error("no provider produced a response (tried: {})", tried.join(", "))]
    NoResponse {
        /// Providers that were tried.
        tried: Vec<String>,
    },
    /// Local I/O failed (reading a media file, saving an image).
    #[error("i/o error: {0}")]
    Io(String),
}

fn list_hint(label: &str, items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        let shown: Vec<&str> = items.iter().take(12).map(String::as_str).collect();
        let more = if items.len() > 12 { ", …" } else { "" };
        format!(" ({label}: {}{more})", shown.join(", "))
    }
}

fn retry_hint(d: &Option<Duration>) -> String {
    d.map(|d| format!(" (retry after {}s)", d.as_secs()))
        .unwrap_or_default()
}

fn eta_hint(d: &Option<Duration>) -> String {
    d.map(|d| format!(", estimated {:.0}s; retry later", d.as_secs_f64()))
        .unwrap_or_else(|| "; retry later".into())
}

fn snippet_hint(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (near: {s:?})")
    }
}

fn attempts_list(attempts: &[Attempt]) -> String {
    let mut out = String::new();
    for a in attempts {
        out.push_str(&format!("\n  {} ({}): {}", a.provider, a.model, a.error));
    }
    out
}

/// What the caller should do about an error: the one classification used by retries and fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Try the same provider again after this delay.
    RetryAfter(Duration),
    /// Try the next candidate provider.
    Fallback,
    /// Stop: the input is wrong or nothing else can help.
    GiveUp,
}

/// Longest `Retry-After` llmux waits for on its own before falling back instead.
pub const MAX_INLINE_RETRY_WAIT: Duration = Duration::from_secs(10);

impl Error {
    /// Classifies the error (retry after a delay, fall back, or give up).
    pub fn action(&self) -> Action {
        match self {
            Error::InvalidInput(_)
            | Error::Unsupported { .. }
            | Error::ProviderNotFound { .. }
            | Error::NoProviderForModel { .. }
            | Error::AllFailed { .. }
            | Error::NoResponse { .. }
            | Error::Io(_) => Action::GiveUp,
            Error::RateLimited {
                retry_after: Some(d),
                ..
            } if *d <= MAX_INLINE_RETRY_WAIT => Action::RetryAfter(*d),
            Error::ModelLoading {
                estimated: Some(d), ..
            } if *d <= MAX_INLINE_RETRY_WAIT => Action::RetryAfter(*d),
            Error::Connect { .. } => Action::RetryAfter(Duration::from_millis(200)),
            _ => Action::Fallback,
        }
    }

    /// A stable machine-readable code (used by the gateway's `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::ModelNotSupported { .. } => "model_not_supported",
            Error::ProviderNotFound { .. } => "provider_not_found",
            Error::NoProviderForModel { .. } => "model_not_found",
            Error::MissingAuth { .. } => "missing_auth",
            Error::RateLimited { .. } => "rate_limited",
            Error::ModelLoading { .. } => "model_loading",
            Error::HttpStatus { .. } | Error::UpstreamApi { .. } => "upstream_status",
            Error::Cloudflare { .. } => "cloudflare",
            Error::Timeout { .. } => "timeout",
            Error::Connect { .. } => "connect",
            Error::Protocol { .. } => "protocol",
            Error::Upstream { .. } => "upstream_error",
            Error::BodyTooLarge { .. } => "body_too_large",
            Error::InvalidInput(_) => "invalid_input",
            Error::Unsupported { .. } => "unsupported_parameter",
            Error::AllFailed { .. } => "all_providers_failed",
            Error::NoResponse { .. } => "no_response",
            Error::Io(_) => "io",
        }
    }

    /// The `Retry-After` the upstream asked for, looking through [`Error::AllFailed`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            Error::ModelLoading { estimated, .. } => *estimated,
            Error::AllFailed { attempts } => attempts.iter().find_map(|a| a.error.retry_after()),
            _ => None,
        }
    }

    /// Shorthand for a protocol error with a snippet of at most 120 characters of `data`.
    pub fn protocol(provider: &str, message: impl Into<String>, data: &str) -> Self {
        Error::Protocol {
            provider: provider.to_owned(),
            message: message.into(),
            snippet: snippet(data, 120),
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// Fills in the provider name of errors raised by shared helpers that did not know it.
    pub fn with_provider(mut self, name: &str) -> Self {
        match &mut self {
            Error::ModelNotSupported { provider, .. }
            | Error::MissingAuth { provider, .. }
            | Error::RateLimited { provider, .. }
            | Error::ModelLoading { provider, .. }
            | Error::HttpStatus { provider, .. }
            | Error::UpstreamApi { provider, .. }
            | Error::Cloudflare { provider, .. }
            | Error::Timeout { provider, .. }
            | Error::Connect { provider, .. }
            | Error::Protocol { provider, .. }
            | Error::Upstream { provider, .. }
            | Error::BodyTooLarge { provider, .. }
                if provider.is_empty() =>
            {
                *provider = name.to_owned();
            }
            _ => {}
        }
        self
    }
}

/// Cuts `s` to at most `max` characters (on a char boundary), adding `…` when cut.
pub fn snippet(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let rl = Error::RateLimited {
            provider: "p".into(),
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(rl.action(), Action::RetryAfter(Duration::from_secs(2)));
        let rl_long = Error::RateLimited {
            provider: "p".into(),
            message: "x".into(),
            retry_after: Some(Duration::from_secs(600)),
        };
        assert_eq!(rl_long.action(), Action::Fallback);
        assert_eq!(Error::invalid("bad").action(), Action::GiveUp);
        let http = Error::HttpStatus {
            provider: "p".into(),
            status: 500,
            message: "x".into(),
        };
        assert_eq!(http.action(), Action::Fallback);
    }

    #[test]
    fn messages_are_helpful() {
        let e = Error::AllFailed {
            attempts: vec![Attempt {
                provider: "a".into(),
                model: "m".into(),
                error: Box::new(Error::Timeout {
                    provider: "a".into(),
                    phase: TimeoutPhase::Idle,
                    after: Duration::from_secs(3),
                }),
            }],
        };
        let msg = e.to_string();
        assert!(msg.contains("a (m): a: idle"), "{msg}");
        assert_eq!(snippet("héllo wörld", 4), "héll…");
        let e = Error::protocol("", "bad json", "{{{").with_provider("x");
        assert_eq!(e.to_string(), "x: protocol error: bad json (near: \"{{{\")");
    }
}
