//! Runs matrix cells through the facade and checks every rule of a cell; process resource
//! probes (file descriptors, RSS, tasks).

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmux::core::http::{HttpConfig, Proxy};
use llmux::{ChatRequest, Chunk, Client, Error, ProviderConfig, Registration};
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::{FakeServer, closed_port};
use tokio::sync::Semaphore;

use crate::capture::Capture;
use crate::matrix::{BACKUP, BACKUP_ANSWER, Cell, Expect, MAX_BODY, secrets, timeouts};
use crate::{drain, providers_of, text_of};

/// How the facade picks the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The request names the target: its own error surfaces unchanged.
    Explicit,
    /// Routed by model, with a healthy fallback instance after the target.
    Routed,
}

/// Slack over the total timeout for a call to end.
pub const END_SLACK: Duration = Duration::from_millis(1200);
/// How long a connection may take to close after the client is dropped.
pub const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// The registrations of `kind` and openai-compat (the fallback's kind).
pub fn registrations(kind: &str) -> Vec<&'static Registration> {
    llmux_testkit::chat::registrations(&[kind, "openai-compat"])
}

/// The HTTP settings of every matrix client.
pub fn http_config() -> HttpConfig {
    HttpConfig {
        proxy: Proxy::Direct,
        timeouts: timeouts(),
        max_body: MAX_BODY,
        ..HttpConfig::default()
    }
}

/// Starts the fallback fake serving `model`.
pub async fn start_backup(model: &str) -> FakeServer {
    FakeOpenAi::new()
        .models([model])
        .reply(BACKUP_ANSWER)
        .chunks(2)
        .api_key(secrets::BACKUP_KEY)
        .start()
        .await
}

/// The fallback instance's configuration.
pub fn backup_config(server: &FakeServer, model: &str) -> ProviderConfig {
    let mut cfg = ProviderConfig::default()
        .with_base_url(server.url("/v1"))
        .with_api_key(secrets::BACKUP_KEY);
    cfg.models = vec![model.to_owned()];
    cfg.enabled = Some(true);
    cfg
}

/// A client with the cell's target at `origin` and, when `backup` is given, the fallback
/// instance after it.
pub fn client(cell: &Cell, origin: &str, backup: Option<&FakeServer>) -> Client {
    let t = &cell.target;
    let mut cfg = (t.config)(origin);
    cfg.enabled = Some(true);
    let mut b = Client::builder()
        .ignore_env()
        .registrations(registrations(t.kind))
        .http_config(http_config())
        .max_retries(0);
    b = if t.name == t.kind {
        b.provider(t.kind, cfg)
    } else {
        b.instance(t.name, t.kind, cfg)
    };
    if let Some(server) = backup {
        b = b
            .instance(BACKUP, "openai-compat", backup_config(server, t.model))
            .priority([t.name, BACKUP]);
    }
    b.build().expect("client")
}

/// A cell's fakes, started and armed.
pub struct Armed {
    /// The target's fake, the cell's fault injected on its step.
    pub server: FakeServer,
    /// The healthy fallback (routed mode only).
    pub backup: Option<FakeServer>,
    /// Where the target is: its fake, or a closed port for a cell without step.
    pub origin: String,
}

/// Starts the cell's target fake with the cell's fault on its step for the next `times`
/// requests, and in routed mode the fallback.
pub async fn arm(cell: &Cell, mode: Mode, times: usize) -> Armed {
    let t = &cell.target;
    let server = (t.start)().await;
    let backup = match mode {
        Mode::Routed => Some(start_backup(t.model).await),
        Mode::Explicit => None,
    };
    let origin = match cell.step {
        Some(step) => {
            server.inject_times(step.route, cell.fault.fault(&step), times);
            server.url("")
        }
        None => format!("http://127.0.0.1:{}", closed_port()),
    };
    Armed {
        server,
        backup,
        origin,
    }
}

/// The request of a cell.
pub fn request(cell: &Cell, mode: Mode) -> ChatRequest {
    let req =
        ChatRequest::user(cell.target.model, "Say hello, please.").with_stream(cell.target.stream);
    match mode {
        Mode::Explicit => req.with_provider(cell.target.name),
        Mode::Routed => req,
    }
}

/// Records every chunk's and the error's rendering for the secret search.
pub fn record(capture: &Capture, chunks: &[Chunk], error: Option<&Error>) {
    for c in chunks {
        capture.record(format!("{c:?}"));
    }
    if let Some(e) = error {
        capture.record(format!("{e}"));
        capture.record(format!("{e:?}"));
    }
}

/// Checks the error/text rules shared by the facade and the gateway: `text` is what reached the
/// caller before `error`.
pub fn check_target_outcome(cell: &Cell, text: &str, error: Option<&Error>) -> Result<(), String> {
    let t = &cell.target;
    match (cell.expect, error) {
        (Expect::Answer, None) => {
            if text != t.answer {
                return Err(format!("answer {text:?}, expected {:?}", t.answer));
            }
        }
        (Expect::Answer, Some(e)) => {
            return Err(format!("expected the answer, got error {e} ({e:?})"));
        }
        (Expect::Fails(kind), None) => {
            return Err(format!("expected {kind:?}, got an answer {text:?}"));
        }
        (Expect::Fails(kind), Some(e)) => {
            if !kind.matches(e) {
                return Err(format!("expected {kind:?}, got {e:?}"));
            }
            let msg = e.to_string();
            if !msg.contains(t.name) {
                return Err(format!("message does not name `{}`: {msg}", t.name));
            }
            if !t.answer.starts_with(text) {
                return Err(format!(
                    "text before the error {text:?} is not a prefix of {:?}",
                    t.answer
                ));
            }
            match cell.content_before_error {
                Some(true) if text.is_empty() => {
                    return Err(format!("expected content before the error {e}"));
                }
                Some(false) if !text.is_empty() => {
                    return Err(format!("unexpected content {text:?} before the error {e}"));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The text `provider` produced (between its `Chunk::Provider` and the next one).
pub fn target_text(chunks: &[Chunk], provider: &str) -> String {
    let mut current = String::new();
    let mut out = String::new();
    for c in chunks {
        match c {
            Chunk::Provider(p) => current = p.provider.clone(),
            Chunk::Text(t) if current == provider => out.push_str(t),
            _ => {}
        }
    }
    out
}

/// What one facade run of a cell took.
#[derive(Debug, Clone, Copy)]
pub struct Ran {
    /// Wall time of the call.
    pub elapsed: Duration,
}

fn verbose() -> bool {
    std::env::var_os("LLMUX_MATRIX_VERBOSE").is_some()
}

/// Runs one cell through the facade and checks it.
pub async fn run_facade_cell(cell: &Cell, mode: Mode, capture: &Capture) -> Result<Ran, String> {
    let t = &cell.target;
    let Armed {
        server,
        backup,
        origin,
    } = arm(cell, mode, 64).await;
    let client = client(cell, &origin, backup.as_ref());
    let limit = timeouts().total + END_SLACK;
    let started = Instant::now();
    let drained = tokio::time::timeout(
        limit + Duration::from_secs(5),
        drain(client.chat(request(cell, mode))),
    )
    .await;
    let elapsed = started.elapsed();
    let (chunks, error) = drained.map_err(|_| {
        format!(
            "the call did not end within {:?}",
            limit + Duration::from_secs(5)
        )
    })?;
    record(capture, &chunks, error.as_ref());
    if elapsed > limit {
        return Err(format!(
            "the call took {elapsed:?} (limit {limit:?}); error {error:?}"
        ));
    }
    let text = text_of(&chunks);
    let providers = providers_of(&chunks);
    let target_text = target_text(&chunks, t.name);
    if verbose() {
        eprintln!(
            "{} [{mode:?}] {elapsed:.2?} text={text:?} error={}",
            cell.id(),
            error
                .as_ref()
                .map_or("-".to_owned(), |e| e.to_string().replace('\n', " | "))
        );
    }
    let backup_calls = backup
        .as_ref()
        .map_or(0, |b| b.requests_to("/v1/chat/completions").len());

    match mode {
        Mode::Explicit => {
            check_target_outcome(cell, &text, error.as_ref())?;
            if providers != [t.name] {
                return Err(format!("providers {providers:?}"));
            }
        }
        Mode::Routed => match cell.expect {
            Expect::Fails(kind)
                if kind.falls_back()
                    && cell.content_before_error != Some(true)
                    && target_text.is_empty() =>
            {
                // failed before any content: the fallback answers, the target's failure is invisible
                if let Some(e) = &error {
                    return Err(format!("expected fallback to `{BACKUP}`, got {e:?}"));
                }
                if text != BACKUP_ANSWER || providers != [t.name, BACKUP] {
                    return Err(format!("fallback answer {text:?} from {providers:?}"));
                }
                if backup_calls != 1 {
                    return Err(format!("the fallback got {backup_calls} requests"));
                }
            }
            Expect::Fails(kind) if !kind.falls_back() && target_text.is_empty() => {
                // the total budget is spent: nothing else is tried
                let Some(Error::AllFailed { attempts }) = &error else {
                    return Err(format!("expected AllFailed after {kind:?}, got {error:?}"));
                };
                if attempts.len() != 1 || !kind.matches(&attempts[0].error) {
                    return Err(format!("attempts {attempts:?}"));
                }
                if backup_calls != 0 || !text.is_empty() {
                    return Err(format!(
                        "after a total timeout: fallback calls {backup_calls}, text {text:?}"
                    ));
                }
            }
            _ => {
                // the answer, or a failure after content: never a second provider
                check_target_outcome(cell, &text, error.as_ref())?;
                if backup_calls != 0 || providers != [t.name] {
                    return Err(format!(
                        "fallback after content: {backup_calls} calls, providers {providers:?}"
                    ));
                }
            }
        },
    }

    drop(client);
    for (what, s) in
        std::iter::once(("target", &server)).chain(backup.iter().map(|b| ("fallback", b)))
    {
        if !s.wait_for_open_connections(0, CLOSE_WAIT).await {
            return Err(format!(
                "{} {what} connection(s) still open after the client was dropped",
                s.open_connections()
            ));
        }
    }
    Ok(Ran { elapsed })
}

/// One failed cell run.
#[derive(Debug, Clone)]
pub struct Failure {
    /// `target/step/fault`.
    pub cell: String,
    /// Mode.
    pub mode: Mode,
    /// What went wrong.
    pub message: String,
}

/// Where a matrix run sends its requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `Client::chat` of the facade.
    Facade,
    /// An OpenAI-compatible HTTP request to a gateway in front of the facade.
    Gateway,
}

/// Runs every cell in both modes, `concurrency` at a time; returns the failures and the
/// slowest run.
pub async fn run_matrix(
    via: Via,
    cells: &[Cell],
    concurrency: usize,
    capture: &Capture,
) -> (Vec<Failure>, Duration) {
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut set = tokio::task::JoinSet::new();
    for cell in cells {
        for mode in [Mode::Explicit, Mode::Routed] {
            let cell = cell.clone();
            let sem = sem.clone();
            let capture = capture.clone();
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let r = match via {
                    Via::Facade => run_facade_cell(&cell, mode, &capture)
                        .await
                        .map(|r| r.elapsed),
                    Via::Gateway => crate::gateway::run_cell(&cell, mode, &capture).await,
                };
                (cell.id(), mode, r)
            });
        }
    }
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((_, _, Ok(elapsed))) => slowest = slowest.max(elapsed),
            Ok((cell, mode, Err(message))) => failures.push(Failure {
                cell,
                mode,
                message,
            }),
            Err(e) => failures.push(Failure {
                cell: "?".into(),
                mode: Mode::Explicit,
                message: format!("task panicked: {e}"),
            }),
        }
    }
    failures.sort_by(|a, b| a.cell.cmp(&b.cell));
    (failures, slowest)
}

/// The whole matrix test over `via`: every cell in both modes, then nothing left behind (tasks,
/// fds) and no secret in anything `capture` holds. Panics with every failed run listed.
pub async fn run_matrix_test(via: Via, cells: &[Cell], capture: &Capture) {
    let fds_before = open_fds();
    let tasks_before = alive_tasks();
    let started = Instant::now();
    let (failures, slowest) = run_matrix(via, cells, 32, capture).await;
    eprintln!(
        "{via:?} matrix: {} cells × 2 modes in {:?} (slowest run {slowest:?})",
        cells.len(),
        started.elapsed()
    );
    if !failures.is_empty() {
        let list: Vec<String> = failures
            .iter()
            .map(|f| format!("{} [{:?}]: {}", f.cell, f.mode, f.message))
            .collect();
        panic!(
            "{} of {} runs failed:\n{}",
            failures.len(),
            cells.len() * 2,
            list.join("\n")
        );
    }
    nothing_left_behind("the matrix", tasks_before, fds_before).await;
    let leaks = capture.leaks(secrets::ALL);
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
    assert!(
        capture.log_lines() > 100,
        "the {via:?} matrix logs (the search is not vacuous)"
    );
}

/// Tasks alive on the current runtime.
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Asserts that every task `what` started has ended and every fd it opened is closed again
/// (within 5 s; 4 fds of slack).
pub async fn nothing_left_behind(what: &str, tasks_before: usize, fds_before: usize) {
    let tasks = settle(tasks_before, Duration::from_secs(5), alive_tasks).await;
    assert!(
        tasks <= tasks_before,
        "{tasks} tasks alive after {what} (before: {tasks_before})"
    );
    let fds = settle(fds_before + 4, Duration::from_secs(5), open_fds).await;
    assert!(
        fds <= fds_before + 4,
        "{fds} fds open after {what} (before: {fds_before})"
    );
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Resident set size of this process, in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits (up to `timeout`) until `probe` returns at most `limit`; returns the last value.
pub async fn settle(limit: usize, timeout: Duration, probe: impl Fn() -> usize) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let v = probe();
        if v <= limit || Instant::now() >= deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
