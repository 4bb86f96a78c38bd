//! `llmux embed` as a process against the testkit's fake OpenAI upstream.

use std::process::{Command, Stdio};

use llmux_testkit::closed_port;
use llmux_testkit::embeddings::fake_vector;
use llmux_testkit::openai::FakeOpenAi;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_llmux");

/// Runs `llmux` with only `env` set (HOME in the target dir), in a blocking thread.
async fn llmux(args: &[&str], env: Vec<(String, String)>) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let home = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("llmux-embed-home");
    let _ = std::fs::create_dir_all(&home);
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env_clear()
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .expect("run llmux")
    })
    .await
    .expect("join")
}

#[tokio::test]
async fn one_json_line_per_input() {
    let fake = FakeOpenAi::new().start().await;
    let env = vec![("LLMUX_OPENAI_COMPAT_BASE_URL".to_owned(), fake.url("/v1"))];
    let out = llmux(
        &[
            "embed",
            "-m",
            "openai-compat:fake-model",
            "--dimensions",
            "4",
            "hello",
            "bye",
        ],
        env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[1]["index"], 1);
    assert_eq!(lines[1]["input"], "bye");
    assert_eq!(lines[0]["provider"], "openai-compat");
    let v: Vec<f32> = serde_json::from_value(lines[0]["embedding"].clone()).expect("floats");
    let want = fake_vector("hello", 4);
    assert!(
        v.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5),
        "{v:?}"
    );
    assert_eq!(
        fake.requests_to("/v1/embeddings")[0].json().expect("body")["dimensions"],
        4
    );
}

#[tokio::test]
async fn failures_exit_non_zero_with_a_message() {
    let env = vec![(
        "LLMUX_OPENAI_COMPAT_BASE_URL".to_owned(),
        format!("http://127.0.0.1:{}/v1", closed_port()),
    )];
    let out = llmux(&["embed", "-m", "openai-compat:m", "x"], env.clone()).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("openai-compat"),
        "{out:?}"
    );
    let usage = llmux(&["embed", "x"], env).await;
    assert_eq!(usage.status.code(), Some(2), "--model is required");
}
