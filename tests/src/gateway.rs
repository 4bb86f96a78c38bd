//! The gateway side of the matrix: a gateway per cell in front of the cell's client, one HTTP
//! request, and the checks of what an OpenAI client sees (statuses, error bodies, SSE error
//! events followed by `[DONE]`).

use std::time::{Duration, Instant};

use llmux::{Client, TimeoutPhase};
use llmux_server::{Gateway, ServerConfig};
use llmux_testkit::FakeServer;
use llmux_testkit::client::{self, ClientResponse};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::capture::Capture;
use crate::matrix::{BACKUP, BACKUP_ANSWER, Cell, Expect, Kind, secrets, timeouts};
use crate::runner::{self, CLOSE_WAIT, END_SLACK, Mode};

/// A running gateway.
pub struct Gw {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Gw {
    /// Serves `client` with `config` (bound to a free loopback port).
    pub async fn start(client: Client, config: ServerConfig) -> Gw {
        let config = ServerConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            ..config
        };
        let bound = Gateway::new(client, config).bind().await.expect("bind");
        let url = format!("http://{}", bound.local_addr());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(bound.serve(async {
            let _ = rx.await;
        }));
        Gw {
            url,
            stop: Some(tx),
            task,
        }
    }

    /// `url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Shuts down and waits (bounded) for `serve` to return.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match tokio::time::timeout(Duration::from_secs(10), &mut self.task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            other => Err(format!("gateway did not stop cleanly: {other:?}")),
        }
    }
}

/// The gateway configuration of the matrix (with the gateway key).
pub fn config() -> ServerConfig {
    ServerConfig {
        api_key: Some(secrets::GATEWAY_KEY.into()),
        ..ServerConfig::default()
    }
}

/// The `Authorization` header carrying the gateway key.
pub fn auth() -> (&'static str, String) {
    ("authorization", format!("Bearer {}", secrets::GATEWAY_KEY))
}

/// The `data:` payloads of an SSE body, in order.
pub fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.trim_start_matches('\n').strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// What a client read from one chat completion request.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// A 200 JSON completion with this content.
    Completion {
        /// `choices[0].message.content`.
        content: String,
        /// The `provider` field.
        provider: String,
    },
    /// A 200 stream: its content, then an error event (if any); `done` when `[DONE]` ended it.
    Stream {
        /// Concatenated `delta.content`.
        content: String,
        /// Providers named by the chunks.
        providers: Vec<String>,
        /// `error` of an error event.
        error: Option<Value>,
        /// The stream ended with `data: [DONE]` (and nothing after it).
        done: bool,
    },
    /// An error status with an OpenAI error body.
    Error {
        /// Status code.
        status: u16,
        /// The `error` object.
        error: Value,
        /// `Retry-After` header.
        retry_after: Option<String>,
    },
}

/// Checks that `error` is a well-formed OpenAI error object.
pub fn well_formed_error(error: &Value) -> Result<(), String> {
    let ok = error["message"].as_str().is_some_and(|m| !m.is_empty())
        && error["type"].as_str().is_some_and(|t| !t.is_empty())
        && error["code"].as_str().is_some_and(|c| !c.is_empty())
        && error.get("param").is_some();
    if ok {
        Ok(())
    } else {
        Err(format!("malformed error object {error}"))
    }
}

/// Reads a chat completion response into what the client saw; anything malformed is an error.
pub async fn read(resp: ClientResponse) -> Result<(Seen, String), String> {
    let status = resp.status.as_u16();
    let ct = resp.header("content-type").unwrap_or_default().to_owned();
    let retry_after = resp.header("retry-after").map(str::to_owned);
    let body = resp
        .text()
        .await
        .map_err(|e| format!("reading the body: {e}"))?;
    if status != 200 {
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| format!("error body is not JSON ({e}): {body:?}"))?;
        let error = v
            .get("error")
            .cloned()
            .ok_or_else(|| format!("no `error` in {v}"))?;
        well_formed_error(&error)?;
        return Ok((
            Seen::Error {
                status,
                error,
                retry_after,
            },
            body,
        ));
    }
    if ct.starts_with("application/json") {
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| format!("completion is not JSON ({e}): {body:?}"))?;
        let content = v["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| format!("no content in {v}"))?
            .to_owned();
        let provider = v["provider"].as_str().unwrap_or_default().to_owned();
        return Ok((Seen::Completion { content, provider }, body));
    }
    if !ct.starts_with("text/event-stream") {
        return Err(format!("200 with content type {ct:?}: {body:?}"));
    }
    let evs = events(&body);
    let mut content = String::new();
    let mut providers: Vec<String> = Vec::new();
    let mut error = None;
    let mut done = false;
    for (i, e) in evs.iter().enumerate() {
        if done {
            return Err(format!("event after [DONE]: {e}"));
        }
        if e == "[DONE]" {
            done = true;
            continue;
        }
        if error.is_some() {
            return Err(format!("event after the error event: {e}"));
        }
        let v: Value =
            serde_json::from_str(e).map_err(|err| format!("event {i} is not JSON ({err}): {e}"))?;
        if let Some(err) = v.get("error") {
            well_formed_error(err)?;
            error = Some(err.clone());
            continue;
        }
        if let Some(p) = v["provider"].as_str()
            && providers.last().is_none_or(|last| last != p)
        {
            providers.push(p.to_owned());
        }
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            content.push_str(c);
        }
    }
    Ok((
        Seen::Stream {
            content,
            providers,
            error,
            done,
        },
        body,
    ))
}

/// The status and `error.code` the gateway documents for a provider error of this kind.
pub fn status_and_code(kind: Kind) -> (u16, &'static str) {
    match kind {
        Kind::Connect => (502, "connect"),
        Kind::Status(400) => (400, "upstream_status"),
        Kind::Status(_) => (502, "upstream_status"),
        // relayed as the upstream said it (the fake's faults: code = the status as text)
        Kind::UpstreamApi(s) => (s, ""),
        Kind::MissingAuth => (401, "upstream_auth_required"),
        Kind::RateLimited(_) => (429, "rate_limited"),
        Kind::Cloudflare => (502, "cloudflare"),
        Kind::Protocol => (502, "protocol"),
        Kind::Timeout(_) => (504, "timeout"),
        Kind::TooLarge => (502, "body_too_large"),
        Kind::ModelNotSupported => (404, "model_not_supported"),
        Kind::Upstream => (502, "upstream_error"),
    }
}

fn phase_text(kind: Kind) -> Option<String> {
    match kind {
        Kind::Timeout(p) => Some(match p {
            TimeoutPhase::Idle => "idle".to_owned(),
            other => other.to_string(),
        }),
        _ => None,
    }
}

/// Checks an error object against the expected kind for `provider`.
fn check_error(error: &Value, kind: Kind, provider: &str) -> Result<(), String> {
    if let Kind::UpstreamApi(s) = kind {
        let code = error["code"].as_str().and_then(|c| c.parse::<u16>().ok());
        return if code == Some(s) && error["type"] == "fake_fault" {
            Ok(())
        } else {
            Err(format!(
                "expected the upstream's own error for {s}: {error}"
            ))
        };
    }
    let (_, code) = status_and_code(kind);
    if error["code"] != code {
        return Err(format!(
            "error code {}, expected {code}: {error}",
            error["code"]
        ));
    }
    let message = error["message"].as_str().unwrap_or_default();
    if !message.contains(provider) {
        return Err(format!(
            "error message does not name `{provider}`: {message}"
        ));
    }
    if let Some(p) = phase_text(kind)
        && !message.contains(&p)
    {
        return Err(format!("timeout message does not say `{p}`: {message}"));
    }
    Ok(())
}

/// The login prompt HuggingChat yields before a cookie error renders as content.
fn is_login_prompt(text: &str) -> bool {
    text.to_ascii_lowercase().contains("login") || text.to_ascii_lowercase().contains("log in")
}

/// Checks what the client saw against the cell.
pub fn check(cell: &Cell, mode: Mode, seen: &Seen, backup_calls: usize) -> Result<(), String> {
    let t = &cell.target;
    let answer_ok = |content: &str, provider_ok: bool| -> Result<(), String> {
        if content == t.answer && provider_ok {
            Ok(())
        } else {
            Err(format!("expected the answer, saw {seen:?}"))
        }
    };
    let fallback = mode == Mode::Routed
        && matches!(cell.expect, Expect::Fails(k) if k.falls_back())
        && cell.content_before_error != Some(true);
    match (cell.expect, seen) {
        (Expect::Answer, Seen::Completion { content, provider }) => {
            answer_ok(content, provider == t.name)?
        }
        (
            Expect::Answer,
            Seen::Stream {
                content,
                providers,
                error: None,
                done: true,
            },
        ) => answer_ok(content, providers == &[t.name])?,
        (Expect::Fails(_), Seen::Completion { content, provider }) if fallback => {
            if content != BACKUP_ANSWER || provider != BACKUP {
                return Err(format!("expected the fallback's answer, saw {seen:?}"));
            }
        }
        (
            Expect::Fails(_),
            Seen::Stream {
                content,
                providers,
                error,
                done,
            },
        ) if fallback && content == BACKUP_ANSWER => {
            if error.is_some() || !done || providers.last().map(String::as_str) != Some(BACKUP) {
                return Err(format!("expected the fallback's stream, saw {seen:?}"));
            }
        }
        (
            Expect::Fails(kind),
            Seen::Error {
                status,
                error,
                retry_after,
            },
        ) => {
            let (want_status, _) = status_and_code(kind);
            if mode == Mode::Routed && !kind.falls_back() {
                // the budget is spent: every attempt (one) timed out
                if *status != 504 || error["code"] != "all_providers_failed" {
                    return Err(format!("expected 504 all_providers_failed, saw {seen:?}"));
                }
            } else if fallback {
                return Err(format!("expected a fallback, saw {seen:?}"));
            } else {
                if *status != want_status {
                    return Err(format!("status {status}, expected {want_status}: {error}"));
                }
                check_error(error, kind, t.name)?;
                if let Kind::RateLimited(Some(secs)) = kind
                    && retry_after.as_deref() != Some(secs.to_string().as_str())
                {
                    return Err(format!("Retry-After {retry_after:?}, expected {secs}"));
                }
            }
            if cell.content_before_error == Some(true) {
                return Err(format!(
                    "content was expected before the error, saw {seen:?}"
                ));
            }
        }
        (
            Expect::Fails(kind),
            Seen::Stream {
                content,
                error: Some(error),
                done: true,
                ..
            },
        ) => {
            // the failure came after output had begun: an error event, then [DONE]
            let login = kind == Kind::MissingAuth && is_login_prompt(content);
            if !login && (content.is_empty() || !t.answer.starts_with(content.as_str())) {
                return Err(format!(
                    "error event after {content:?}, not a prefix of the answer"
                ));
            }
            if cell.content_before_error == Some(false) && !login {
                return Err(format!("unexpected content before the error: {seen:?}"));
            }
            check_error(error, kind, t.name)?;
        }
        _ => return Err(format!("unexpected outcome {seen:?}")),
    }
    let fell_back = matches!(seen, Seen::Completion { provider, .. } if provider == BACKUP)
        || matches!(seen, Seen::Stream { content, .. } if content == BACKUP_ANSWER);
    if backup_calls != usize::from(fell_back) {
        return Err(format!(
            "the fallback got {backup_calls} requests (fell back: {fell_back})"
        ));
    }
    Ok(())
}

/// The chat request body of a cell.
pub fn body(cell: &Cell, mode: Mode) -> Value {
    let mut body = json!({
        "model": cell.target.model,
        "stream": cell.target.stream,
        "messages": [{"role": "user", "content": "Say hello, please."}],
    });
    if mode == Mode::Explicit {
        body["provider"] = json!(cell.target.name);
    }
    body
}

/// Fails when the gateway key shows up in any request a fake received.
pub fn gateway_key_absent(server: &FakeServer) -> Result<(), String> {
    for r in server.requests() {
        let in_headers = r
            .headers
            .iter()
            .any(|(_, v)| String::from_utf8_lossy(v.as_bytes()).contains(secrets::GATEWAY_KEY));
        let in_query = r
            .query
            .as_deref()
            .is_some_and(|q| q.contains(secrets::GATEWAY_KEY));
        if in_headers || in_query || r.body_text().contains(secrets::GATEWAY_KEY) {
            return Err(format!(
                "the gateway key reached the upstream: {} {}",
                r.method, r.path
            ));
        }
    }
    Ok(())
}

/// Runs one cell through a gateway and checks it.
pub async fn run_cell(cell: &Cell, mode: Mode, capture: &Capture) -> Result<Duration, String> {
    let runner::Armed {
        server,
        backup,
        origin,
    } = runner::arm(cell, mode, 64).await;
    let gw = Gw::start(runner::client(cell, &origin, backup.as_ref()), config()).await;
    let (k, v) = auth();
    let started = Instant::now();
    let resp = client::post_json(
        &gw.url("/v1/chat/completions"),
        &[(k, v.as_str())],
        &body(cell, mode),
    )
    .await
    .map_err(|e| format!("request failed: {e}"))?;
    let (seen, _raw) = read(resp).await?;
    let elapsed = started.elapsed();
    // error messages and content go into the secret search; the rest of the body is the
    // caller's own conversation state (which may carry the credential the caller sent)
    match &seen {
        Seen::Error { error, .. }
        | Seen::Stream {
            error: Some(error), ..
        } => capture.record(error.to_string()),
        _ => {}
    }
    if let Seen::Completion { content, .. } | Seen::Stream { content, .. } = &seen {
        capture.record(content.clone());
    }
    let limit = timeouts().total + END_SLACK;
    if elapsed > limit {
        return Err(format!(
            "the answer took {elapsed:?} (limit {limit:?}): {seen:?}"
        ));
    }
    let backup_calls = backup
        .as_ref()
        .map_or(0, |b| b.requests_to("/v1/chat/completions").len());
    check(cell, mode, &seen, backup_calls)?;
    gw.stop().await?;
    for s in std::iter::once(&server).chain(backup.iter()) {
        gateway_key_absent(s)?;
        if !s.wait_for_open_connections(0, CLOSE_WAIT).await {
            return Err(format!(
                "{} upstream connection(s) still open after the gateway stopped",
                s.open_connections()
            ));
        }
    }
    Ok(elapsed)
}
