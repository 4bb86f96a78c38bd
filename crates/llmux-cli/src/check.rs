//! `llmux providers --check`: which providers answer right now.
//!
//! Sends a tiny prompt to every enabled provider (or, with `-m MODEL`, to every provider that
//! serves MODEL) concurrently, each with a short total timeout, and prints one row per
//! provider: ok or the error class, time to first token, total time and a short error.
//! Exit 0 when at least one works, 5 when none does.

use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use llmux::{ChatRequest, Client, Error};
use serde::Serialize;

use crate::exit::{self, CliError};
use crate::{App, term};

/// The prompt sent to every provider.
const PROMPT: &str = "Reply with the single word OK.";
/// Default time a provider gets, in seconds.
const DEFAULT_TIMEOUT: &str = "20";

/// Flags of `llmux providers`.
#[derive(Args, Debug)]
pub(crate) struct ProvidersArgs {
    /// Print JSON (with --check: one object per provider and line).
    #[arg(long)]
    pub json: bool,
    /// Send a tiny prompt to each provider and report which ones answer right now.
    #[arg(long)]
    pub check: bool,
    /// With --check: only the providers serving this model (asked for it).
    #[arg(short, long, value_name = "MODEL", requires = "check")]
    model: Option<String>,
    /// With --check: seconds each provider gets.
    #[arg(long, value_name = "SECS", default_value = DEFAULT_TIMEOUT, value_parser = crate::parse_secs, requires = "check")]
    timeout: Duration,
}

/// One provider's result.
#[derive(Debug, Serialize)]
struct Row {
    provider: String,
    model: String,
    ok: bool,
    /// `ok`, or the error code (`timeout`, `connect`, `missing_auth`, …).
    status: &'static str,
    ttft_ms: Option<f64>,
    total_ms: f64,
    error: Option<String>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// The providers to check, each with the model to ask for (empty: its default).
async fn targets(client: &Client, model: Option<&str>) -> Vec<(String, String)> {
    let providers = client.providers();
    let Some(model) = model else {
        return providers
            .iter()
            .filter(|p| p.enabled)
            .map(|p| (p.info.name.clone(), p.info.default_model.clone()))
            .collect();
    };
    let mut out: Vec<(String, String)> = providers
        .iter()
        .filter(|p| p.info.serves(model, &[]))
        .map(|p| (p.info.name.clone(), model.to_owned()))
        .collect();
    if out.is_empty() {
        // only discovery knows: ask every provider for its models (bounded by its timeouts)
        for m in client.models().await.into_iter().filter(|m| m.id == model) {
            if !out.iter().any(|(p, _)| *p == m.provider) {
                out.push((m.provider, model.to_owned()));
            }
        }
    }
    out
}

/// Asks one provider, explicitly (so its breaker and `working` flag do not skip it).
async fn probe(client: &Client, provider: String, model: String, timeout: Duration) -> Row {
    let mut req = ChatRequest::user(model.clone(), PROMPT);
    req.provider = Some(provider.clone());
    req.max_tokens = Some(16);
    req.timeout = Some(timeout);
    let start = Instant::now();
    let mut ttft = None;
    let mut stream = client.chat(req);
    // the request's own total timeout bounds this; the outer one is a safety net
    let run = async {
        while let Some(item) = stream.next().await {
            match item {
                Ok(c) if c.is_content() => {
                    ttft.get_or_insert_with(|| start.elapsed());
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    let result = match tokio::time::timeout(timeout + Duration::from_secs(1), run).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            provider: provider.clone(),
            phase: llmux::TimeoutPhase::Total,
            after: timeout,
        }),
    };
    let result = match result {
        Ok(()) if ttft.is_none() => Err(Error::NoResponse {
            tried: vec![provider.clone()],
        }),
        r => r,
    };
    Row {
        ok: result.is_ok(),
        status: result.as_ref().err().map_or("ok", Error::code),
        error: result
            .err()
            .map(|e| llmux::core::error::snippet(&e.to_string(), 100)),
        provider,
        model,
        ttft_ms: ttft.map(ms),
        total_ms: ms(start.elapsed()),
    }
}

fn print_table(rows: &[Row]) {
    let fmt_ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.provider.clone(),
                if r.model.is_empty() {
                    "(default)".into()
                } else {
                    r.model.clone()
                },
                r.status.to_owned(),
                fmt_ms(r.ttft_ms),
                fmt_ms(Some(r.total_ms)),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        term::table(
            &["PROVIDER", "MODEL", "STATUS", "TTFT", "TOTAL", "ERROR"],
            &body
        )
    );
}

/// Runs `llmux providers --check`.
pub(crate) async fn run(app: &App, args: ProvidersArgs) -> Result<u8, CliError> {
    let client = app.client()?;
    let list = targets(&client, args.model.as_deref()).await;
    if list.is_empty() {
        let what = args
            .model
            .as_deref()
            .map_or("is enabled".to_owned(), |m| format!("serves `{m}`"));
        return Err(CliError::new(
            exit::NOT_FOUND,
            format!("no provider {what}; see `llmux providers`"),
        ));
    }
    let total = list.len();
    let progress = term::Spinner::start(app.tty.stderr, &format!("checking {total} providers…"));
    let mut pending: FuturesUnordered<_> = list
        .into_iter()
        .map(|(p, m)| probe(&client, p, m, args.timeout))
        .collect();
    let mut rows = Vec::with_capacity(total);
    while let Some(row) = pending.next().await {
        rows.push(row);
        progress.set_label(&format!("checking providers… {}/{total} done", rows.len()));
    }
    let mut progress = progress;
    progress.stop().await;
    rows.sort_by(|a, b| (!a.ok, &a.provider).cmp(&(!b.ok, &b.provider)));
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
    } else {
        print_table(&rows);
    }
    Ok(if rows.iter().any(|r| r.ok) {
        exit::OK
    } else {
        exit::UPSTREAM
    })
}
