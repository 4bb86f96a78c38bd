//! Shared harness of the CLI's process tests: run the built `llmux` binary with an isolated
//! environment, or start `llmux serve` and learn its address.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use llmux_testkit::{FakeServer, closed_port};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_llmux");
/// Upper bound of any one process run.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("llmux-cli-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Environment that points every compiled-in provider at a closed port, so nothing leaves the
/// machine, with an isolated HOME (no user configuration).
pub fn base_env(home: &Path) -> BTreeMap<String, String> {
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let mut env = BTreeMap::new();
    let client = llmux::Client::builder()
        .ignore_env()
        .build()
        .expect("client");
    for p in client.providers() {
        let prefix = llmux::ProviderConfig::env_prefix(&p.info.name);
        env.insert(format!("{prefix}_BASE_URL"), closed.clone());
        for o in &p.info.origins {
            env.insert(
                format!("{prefix}_{}_URL", o.key.to_ascii_uppercase()),
                closed.clone(),
            );
        }
    }
    for reg in llmux::core::registrations().expect("registrations") {
        let prefix = llmux::ProviderConfig::env_prefix(reg.name);
        for key in reg.extra_origin_keys() {
            env.insert(
                format!("{prefix}_{}_URL", key.to_ascii_uppercase()),
                closed.clone(),
            );
        }
    }
    env.insert("HOME".into(), home.display().to_string());
    env.insert(
        "XDG_CONFIG_HOME".into(),
        home.join(".config").display().to_string(),
    );
    env.insert("NO_COLOR".into(), "1".into());
    env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    env
}

/// One process run: how it ended and what it printed.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// When the first stdout bytes arrived and when the process ended (from spawn).
    pub first_stdout: Option<Duration>,
    pub ended: Duration,
}

/// A prepared `llmux` invocation.
pub struct Llmux {
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub dir: PathBuf,
    pub stdin: Option<String>,
}

impl Llmux {
    pub fn new(dir: &Path, args: &[&str]) -> Self {
        Self {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env: base_env(dir),
            dir: dir.to_owned(),
            stdin: None,
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.into(), v.into());
        self
    }

    pub fn without(mut self, k: &str) -> Self {
        self.env.remove(k);
        self
    }

    pub fn stdin(mut self, s: &str) -> Self {
        self.stdin = Some(s.into());
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args)
            .env_clear()
            .envs(&self.env)
            .current_dir(&self.dir)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs to completion (killed after [`RUN_TIMEOUT`]).
    pub fn run_blocking(self) -> Output {
        let start = Instant::now();
        let mut child = self.command().spawn().expect("spawn llmux");
        if let (Some(input), Some(mut stdin)) = (self.stdin.clone(), child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = stdin.write_all(input.as_bytes());
            });
        }
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let out_thread = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut first = None;
            let mut chunk = [0u8; 4096];
            loop {
                match out.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        first.get_or_insert_with(|| start.elapsed());
                        buf.extend_from_slice(&chunk[..n]);
                    }
                }
            }
            (buf, first)
        });
        let err_thread = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        });
        let code = wait_with_timeout(&mut child, RUN_TIMEOUT);
        let ended = start.elapsed();
        let (stdout, first_stdout) = out_thread.join().expect("stdout reader");
        let stderr = err_thread.join().expect("stderr reader");
        Output {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            first_stdout,
            ended,
        }
    }

    /// Runs on a blocking thread, so the in-process fake keeps serving.
    pub async fn run(self) -> Output {
        tokio::task::spawn_blocking(move || self.run_blocking())
            .await
            .expect("runner thread")
    }
}

/// Waits for the child, killing it (and failing the test) after `timeout`.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("llmux did not exit within {timeout:?}");
            }
        }
    }
}

pub fn fake_url(server: &FakeServer) -> String {
    server.url("/v1")
}

pub fn chat_bodies(server: &FakeServer) -> Vec<Value> {
    server
        .requests_to("/v1/chat/completions")
        .iter()
        .map(|r| r.json().expect("json body"))
        .collect()
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}

/// A running `llmux serve`, killed on drop.
pub struct Served {
    pub child: Child,
    pub addr: String,
    pub stderr: mpsc::Receiver<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_serve(cmd: Llmux) -> Served {
    let mut child = cmd.command().spawn().expect("spawn llmux serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(a) = line.strip_prefix("llmux gateway listening on ") {
                    break a.to_owned();
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("llmux serve did not report its address");
            }
        }
    };
    Served {
        child,
        addr,
        stderr: rx,
    }
}
