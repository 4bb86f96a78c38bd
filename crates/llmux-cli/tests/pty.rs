//! The interactive chat and Markdown rendering through a pseudo-terminal (rexpect): history
//! recall with the up arrow, `/model` switching, Ctrl-C stopping an answer while the session
//! goes on, Markdown on a TTY and raw text when piped.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use llmux_testkit::FakeServer;
use llmux_testkit::openai::FakeOpenAi;
use rexpect::session::PtySession;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_llmux");
/// Longest wait for any one expected output.
const EXPECT_MS: u64 = 15_000;

fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("llmux-pty-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `llmux ARGS` with an isolated home and the openai-compat provider on `server`.
fn command(dir: &Path, server: &FakeServer, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("TERM", "xterm")
        .env("LLMUX_OPENAI_COMPAT_BASE_URL", server.url("/v1"))
        .current_dir(dir);
    cmd
}

fn spawn(cmd: Command) -> PtySession {
    rexpect::session::spawn_command(cmd, Some(EXPECT_MS)).expect("spawn llmux in a pty")
}

/// Waits for the line editor's prompt (keys typed before it would reach a cooked terminal).
fn prompt(p: &mut PtySession) {
    p.exp_string("\x1b[K> ").expect("the prompt");
}

fn bodies(server: &FakeServer) -> Vec<Value> {
    server
        .requests_to("/v1/chat/completions")
        .iter()
        .map(|r| r.json().expect("json body"))
        .collect()
}

/// Runs blocking PTY work off the runtime that serves the fake.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("pty thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_recall_and_model_switching() {
    let server = FakeOpenAi::new()
        .models(["fake-model", "other-model"])
        .echo()
        .start()
        .await;
    let dir = temp_dir("history");
    let cmd = command(&dir, &server, &["chat", "-m", "openai-compat:fake-model"]);
    blocking(move || {
        let mut p = spawn(cmd);
        p.exp_string("llmux chat with openai-compat:fake-model")
            .expect("banner");
        p.send_line("first question").expect("send");
        p.exp_string("echo: first question").expect("first answer");
        prompt(&mut p);
        p.send_line("/model openai-compat:other-model")
            .expect("send");
        p.exp_string("(model: openai-compat:other-model)")
            .expect("switched");
        // up twice: past the /model line to the question
        for _ in 0..2 {
            p.send("\x1b[A").expect("up");
            p.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(100));
        }
        p.send("\r").expect("enter");
        p.flush().expect("flush");
        p.exp_string("echo: first question")
            .expect("recalled answer");
        p.send_control('d').expect("ctrl-d");
        p.exp_eof().expect("exits on Ctrl-D");
    })
    .await;
    let b = bodies(&server);
    assert_eq!(b.len(), 2, "{b:?}");
    assert_eq!(b[0]["model"], "fake-model");
    assert_eq!(b[1]["model"], "other-model");
    let msgs = b[1]["messages"].as_array().expect("messages");
    assert_eq!(msgs.last().expect("last")["content"], "first question");
    assert_eq!(msgs.len(), 3, "the first turn is kept: {msgs:?}");
    let history =
        std::fs::read_to_string(dir.join("data/llmux/history.txt")).expect("history file");
    assert!(history.contains("first question"), "{history}");
    assert!(
        history.contains("/model openai-compat:other-model"),
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_answer_and_the_session_goes_on() {
    let server = std::sync::Arc::new(
        FakeOpenAi::new()
            .reply("alpha beta gamma delta")
            .chunks(4)
            .chunk_delay(Duration::from_millis(800))
            .start()
            .await,
    );
    let dir = temp_dir("ctrl-c");
    let cmd = command(&dir, &server, &["chat", "-m", "openai-compat:fake-model"]);
    let srv = std::sync::Arc::clone(&server);
    blocking(move || {
        let mut p = spawn(cmd);
        p.exp_string("llmux chat with").expect("banner");
        prompt(&mut p);
        p.send_line("slow one").expect("send");
        p.exp_string("alpha").expect("first chunk");
        p.send_control('c').expect("ctrl-c");
        p.exp_string("(cancelled)").expect("cancelled");
        prompt(&mut p);
        // the upstream request is dropped
        let deadline = Instant::now() + Duration::from_secs(5);
        while srv.open_connections() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            srv.open_connections(),
            0,
            "the upstream request was not cancelled"
        );
        // the session goes on
        p.send_line("/help").expect("send");
        p.exp_string("/model NAME").expect("help");
        prompt(&mut p);
        p.send_line("second").expect("send");
        p.exp_string("delta").expect("whole second answer");
        prompt(&mut p);
        p.send_control('d').expect("ctrl-d");
        p.exp_eof().expect("exit");
    })
    .await;
    assert_eq!(bodies(&server).len(), 2);
}

const MARKDOWN: &str =
    "# Heading\n\nSome **bold** text.\n\n- item one\n- item two\n\n```rust\nfn main() {}\n```\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_on_a_terminal_raw_when_piped() {
    let server = FakeOpenAi::new().reply(MARKDOWN).start().await;
    let dir = temp_dir("markdown");
    let cmd = command(
        &dir,
        &server,
        &["chat", "-m", "openai-compat:fake-model", "q"],
    );
    let shown = blocking(move || {
        let mut p = spawn(cmd);
        p.exp_eof().expect("one answer, then exit")
    })
    .await;
    // streamed raw first, then erased and rendered
    let (raw, rendered) = shown.split_once("\x1b[J").expect("the raw text is erased");
    assert!(
        raw.contains("# Heading") && raw.contains("- item one"),
        "{raw:?}"
    );
    assert!(
        raw.ends_with("\x1b[10A\r"),
        "moves up over the raw rows: {raw:?}"
    );
    assert!(rendered.contains("\x1b[1m\x1b[4mHeading"), "{rendered:?}");
    assert!(rendered.contains("\x1b[1mbold\x1b[0m"), "{rendered:?}");
    // (the session reads bytes as Latin-1: `•` arrives as three characters)
    assert!(rendered.contains(" item one"), "{rendered:?}");
    for raw_syntax in ["- item", "**", "```", "# "] {
        assert!(!rendered.contains(raw_syntax), "{raw_syntax}: {rendered:?}");
    }
    assert!(rendered.contains("\x1b[35mfn\x1b[0m"), "{rendered:?}");

    let out = command(
        &dir,
        &server,
        &["chat", "-m", "openai-compat:fake-model", "q"],
    )
    .output()
    .expect("piped run");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), MARKDOWN);
}
