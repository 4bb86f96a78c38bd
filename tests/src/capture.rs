//! Captures everything a test binary logs (a global `tracing` subscriber at TRACE writing to
//! memory) plus any other text the test records, so it can be searched for secrets.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Everything captured so far: log output and recorded texts.
#[derive(Clone, Default)]
pub struct Capture {
    logs: Arc<Mutex<Vec<u8>>>,
    texts: Arc<Mutex<Vec<String>>>,
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static GLOBAL: OnceLock<Capture> = OnceLock::new();

impl Capture {
    /// The process-wide capture; the first call installs the global TRACE subscriber.
    pub fn global() -> Capture {
        GLOBAL
            .get_or_init(|| {
                let capture = Capture::default();
                let logs = capture.logs.clone();
                let _ = tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::TRACE)
                    .with_ansi(false)
                    .with_writer(move || Writer(logs.clone()))
                    .try_init();
                capture
            })
            .clone()
    }

    /// Records a text (an error message, a `Debug` rendering) for the secret search.
    pub fn record(&self, text: impl Into<String>) {
        self.texts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text.into());
    }

    /// Log lines written so far.
    pub fn log_lines(&self) -> usize {
        let logs = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        logs.iter().filter(|b| **b == b'\n').count()
    }

    /// Number of recorded texts.
    pub fn texts(&self) -> usize {
        self.texts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Where any of `secrets` appears: `(secret, excerpt)` pairs (empty when none leaked).
    pub fn leaks(&self, secrets: &[&str]) -> Vec<(String, String)> {
        let logs =
            String::from_utf8_lossy(&self.logs.lock().unwrap_or_else(PoisonError::into_inner))
                .into_owned();
        let texts = self.texts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for secret in secrets {
            for hay in std::iter::once(&logs).chain(texts.iter()) {
                if let Some(i) = hay.find(secret) {
                    let start = hay[..i].char_indices().rev().nth(80).map_or(0, |(j, _)| j);
                    let end = (i + secret.len() + 80).min(hay.len());
                    let end = (end..=hay.len())
                        .find(|e| hay.is_char_boundary(*e))
                        .unwrap_or(hay.len());
                    out.push(((*secret).to_owned(), hay[start..end].to_owned()));
                    break;
                }
            }
        }
        out
    }
}
