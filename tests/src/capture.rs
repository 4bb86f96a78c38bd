//! Captures everything the test binary logs while a [`Recording`] is alive (a global `tracing`
//! subscriber at TRACE writing to memory) plus any other text a test records, so it can be
//! searched for secrets.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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

/// How many [`Recording`]s are alive: the global subscriber takes events only while one is.
static RECORDINGS: AtomicUsize = AtomicUsize::new(0);

/// While alive, every event the process logs (at any level) is written to the global capture.
/// Tests that do not record (the soak, measuring memory) log nothing to memory.
#[must_use = "logs are recorded only while the guard is alive"]
pub struct Recording(());

impl Drop for Recording {
    fn drop(&mut self) {
        RECORDINGS.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Capture {
    /// The process-wide capture, recording the process's logs until the returned guard drops;
    /// the first call installs the global TRACE subscriber.
    pub fn global() -> (Capture, Recording) {
        let capture = GLOBAL
            .get_or_init(|| {
                let capture = Capture::default();
                let logs = capture.logs.clone();
                let layer = tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || Writer(logs.clone()))
                    .with_filter(tracing_subscriber::filter::filter_fn(|_| {
                        RECORDINGS.load(Ordering::SeqCst) > 0
                    }));
                let _ = tracing_subscriber::registry().with(layer).try_init();
                capture
            })
            .clone();
        RECORDINGS.fetch_add(1, Ordering::SeqCst);
        (capture, Recording(()))
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
