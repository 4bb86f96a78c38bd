//! Exit codes and the CLI's error type.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | other failure (local I/O, cannot listen, internal) |
//! | 2 | usage or configuration error (bad flags, bad config file, unreadable input file, invalid input) |
//! | 3 | no such provider, or no provider serves the model |
//! | 4 | authentication required or refused |
//! | 5 | upstream failure: HTTP error, rate limit, timeout, connection, protocol, no response |
//! | 130 | interrupted (Ctrl-C) |

use llmux::Error;

/// Success.
pub const OK: u8 = 0;
/// Other failure (local I/O, cannot listen, internal).
pub const FAILURE: u8 = 1;
/// Usage or configuration error.
pub const USAGE: u8 = 2;
/// No such provider, or no provider serves the model.
pub const NOT_FOUND: u8 = 3;
/// Authentication required or refused.
pub const AUTH: u8 = 4;
/// Upstream failure (HTTP status, rate limit, timeout, connection, protocol, no response).
pub const UPSTREAM: u8 = 5;
/// Interrupted by Ctrl-C.
pub const INTERRUPTED: u8 = 130;

/// The exit code for a library error. [`Error::AllFailed`] maps to the code its attempts agree
/// on (all auth failures → [`AUTH`], all unsupported models → [`NOT_FOUND`]), else [`UPSTREAM`].
pub fn code_for(err: &Error) -> u8 {
    match err {
        Error::ProviderNotFound { .. }
        | Error::NoProviderForModel { .. }
        | Error::ModelNotSupported { .. } => NOT_FOUND,
        Error::MissingAuth { .. } => AUTH,
        Error::HttpStatus { status, .. } if *status == 401 || *status == 403 => AUTH,
        Error::InvalidInput(_) => USAGE,
        Error::Io(_) => FAILURE,
        Error::AllFailed { attempts } => {
            let codes: Vec<u8> = attempts.iter().map(|a| code_for(&a.error)).collect();
            match codes.first() {
                Some(&first) if codes.iter().all(|&c| c == first) && first != USAGE => first,
                _ => UPSTREAM,
            }
        }
        _ => UPSTREAM,
    }
}

/// An error ready to be shown: one line of message, optional detail lines (shown with `-v`),
/// and an exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// Exit code.
    pub code: u8,
    /// One-line message.
    pub message: String,
    /// Extra lines (every provider attempt), printed with `-v`.
    pub details: Vec<String>,
}

/// One line: newlines and runs of whitespace collapse to single spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl CliError {
    /// An error with this code and message.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: one_line(&message.into()),
            details: Vec::new(),
        }
    }

    /// A usage / configuration error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(USAGE, message)
    }

    /// Prints the error to stderr: `llmux: error: …`, then the details when `verbose`.
    pub fn print(&self, verbose: bool) {
        eprintln!("llmux: error: {}", self.message);
        if verbose {
            for d in &self.details {
                eprintln!("  {d}");
            }
        } else if !self.details.is_empty() {
            eprintln!("llmux: run with -v to see every provider attempt");
        }
    }
}

impl From<Error> for CliError {
    fn from(err: Error) -> Self {
        let code = code_for(&err);
        match &err {
            Error::AllFailed { attempts } => {
                let last = attempts
                    .last()
                    .map(|a| format!("; last: {}", a.error))
                    .unwrap_or_default();
                let details = attempts
                    .iter()
                    .map(|a| one_line(&format!("{} ({}): {}", a.provider, a.model, a.error)))
                    .collect();
                Self {
                    code,
                    message: one_line(&format!("all {} providers failed{last}", attempts.len())),
                    details,
                }
            }
            _ => Self::new(code, err.to_string()),
        }
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(err: crate::config::ConfigError) -> Self {
        Self::usage(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use llmux::{Attempt, TimeoutPhase};

    use super::*;

    fn attempt(provider: &str, error: Error) -> Attempt {
        Attempt {
            provider: provider.into(),
            model: "m".into(),
            error: Box::new(error),
        }
    }

    fn auth(p: &str) -> Error {
        Error::MissingAuth {
            provider: p.into(),
            help: "set a key".into(),
            login_url: None,
        }
    }

    #[test]
    fn codes() {
        assert_eq!(code_for(&auth("a")), AUTH);
        assert_eq!(
            code_for(&Error::ProviderNotFound {
                name: "x".into(),
                suggestions: vec![]
            }),
            NOT_FOUND
        );
        assert_eq!(code_for(&Error::invalid("bad")), USAGE);
        let timeout = Error::Timeout {
            provider: "b".into(),
            phase: TimeoutPhase::Idle,
            after: Duration::from_secs(1),
        };
        assert_eq!(code_for(&timeout), UPSTREAM);
        let all_auth = Error::AllFailed {
            attempts: vec![attempt("a", auth("a")), attempt("b", auth("b"))],
        };
        assert_eq!(code_for(&all_auth), AUTH);
        let mixed = Error::AllFailed {
            attempts: vec![attempt("a", auth("a")), attempt("b", timeout)],
        };
        assert_eq!(code_for(&mixed), UPSTREAM);
    }

    #[test]
    fn all_failed_is_one_line_with_details() {
        let e = CliError::from(Error::AllFailed {
            attempts: vec![
                attempt("a", auth("a")),
                attempt(
                    "b",
                    Error::Upstream {
                        provider: "b".into(),
                        message: "line1\nline2".into(),
                    },
                ),
            ],
        });
        assert_eq!(e.message, "all 2 providers failed; last: b: line1 line2");
        assert_eq!(e.details.len(), 2);
        assert!(e.details[0].starts_with("a (m): a: authentication required"));
        assert_eq!(e.code, UPSTREAM);
    }
}
