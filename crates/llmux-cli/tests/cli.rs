//! Drives the built `llmux` binary as a process against the testkit fakes.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use llmux_testkit::openai::{FakeOpenAi, TINY_PNG};
use llmux_testkit::{Fault, closed_port};
use serde_json::{Value, json};

mod common;

use common::*;

// -------------------------------------------------------------------------------------------
// chat

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_streams_text_as_it_arrives() {
    let server = FakeOpenAi::new()
        .reply("Hello there, streaming world")
        .chunks(3)
        .chunk_delay(Duration::from_millis(400))
        .start()
        .await;
    let dir = temp_dir("stream");
    let out = Llmux::new(
        &dir,
        &[
            "chat",
            "-p",
            "openai-compat",
            "-m",
            "fake-model",
            "Hi",
            "there",
        ],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &fake_url(&server))
    .run()
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "Hello there, streaming world\n");
    let first = out.first_stdout.expect("stdout was written");
    assert!(
        out.ended.saturating_sub(first) >= Duration::from_millis(500),
        "text must be printed as it streams: first output at {first:?}, exit at {:?}",
        out.ended
    );
    let bodies = chat_bodies(&server);
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["model"], "fake-model");
    assert_eq!(bodies[0]["stream"], true);
    assert_eq!(
        bodies[0]["messages"],
        json!([{"role": "user", "content": "Hi there"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasoning_goes_to_stderr_when_not_a_terminal() {
    let server = FakeOpenAi::new()
        .reply("The answer.")
        .reasoning("Let me think about it.")
        .start()
        .await;
    let dir = temp_dir("reasoning");
    let out = Llmux::new(&dir, &["chat", "-m", "openai-compat:fake-model", "q"])
        .env("LLMUX_OPENAI_COMPAT_BASE_URL", &fake_url(&server))
        .run()
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "The answer.\n");
    assert!(
        out.stderr.contains("Let me think about it."),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_and_no_stream() {
    let server = FakeOpenAi::new()
        .reply("JSON answer")
        .reasoning("pondering")
        .usage(5, 2)
        .start()
        .await;
    let dir = temp_dir("json");
    let out = Llmux::new(
        &dir,
        &[
            "chat",
            "-p",
            "openai-compat",
            "-m",
            "fake-model",
            "--json",
            "--no-stream",
            "q",
        ],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &fake_url(&server))
    .run()
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["text"], "JSON answer");
    assert_eq!(v["reasoning"], "pondering");
    assert_eq!(v["provider"], "openai-compat");
    assert_eq!(v["model"], "fake-model");
    assert_eq!(v["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
    );
    assert_eq!(v["files"], json!([]));
    assert_eq!(chat_bodies(&server)[0]["stream"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_from_stdin_with_system_prompt() {
    let server = FakeOpenAi::new().echo().start().await;
    let dir = temp_dir("stdin");
    let url = fake_url(&server);
    let out = Llmux::new(
        &dir,
        &[
            "chat",
            "-m",
            "openai-compat:fake-model",
            "--system",
            "Be brief.",
            "-",
        ],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
    .stdin("question from stdin\n")
    .run()
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "echo: question from stdin\n");
    // piped stdin without a PROMPT argument
    let out = Llmux::new(&dir, &["chat", "-m", "openai-compat:fake-model"])
        .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
        .stdin("piped")
        .run()
        .await;
    assert_eq!(out.stdout, "echo: piped\n", "{out:?}");
    let bodies = chat_bodies(&server);
    assert_eq!(
        bodies[0]["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "question from stdin"}])
    );
    assert_eq!(
        bodies[1]["messages"],
        json!([{"role": "user", "content": "piped"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_file_round_trip() {
    let server = FakeOpenAi::new().echo().start().await;
    let dir = temp_dir("conversation");
    let conv = dir.join("conv.json");
    // state of another provider from an earlier session must survive
    write(
        &conv,
        r#"{"version":1,"messages":[],"conversation":{"huggingchat":{"conversationId":"c1"}}}"#,
    );
    let url = fake_url(&server);
    let conv_arg = conv.display().to_string();
    let out = Llmux::new(
        &dir,
        &[
            "chat",
            "-m",
            "openai-compat:fake-model",
            "--conversation",
            &conv_arg,
            "first question",
        ],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
    .run()
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "echo: first question\n");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&conv).expect("read")).expect("json");
    assert_eq!(saved["provider"], "openai-compat");
    assert_eq!(saved["model"], "fake-model");
    assert_eq!(
        saved["messages"],
        json!([{"role": "user", "content": "first question"}, {"role": "assistant", "content": "echo: first question"}])
    );
    assert_eq!(
        saved["conversation"],
        json!({"huggingchat": {"conversationId": "c1"}})
    );

    // the next run continues the chat with the stored provider and model
    let out = Llmux::new(&dir, &["chat", "--conversation", &conv_arg, "second"])
        .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
        .run()
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "echo: second\n");
    let bodies = chat_bodies(&server);
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1]["model"], "fake-model");
    assert_eq!(
        bodies[1]["messages"],
        json!([
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "echo: first question"},
            {"role": "user", "content": "second"}
        ])
    );
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&conv).expect("read")).expect("json");
    assert_eq!(saved["messages"].as_array().map(Vec::len), Some(4));

    // a broken file is a usage error and is left alone
    write(&conv, "{broken");
    let out = Llmux::new(&dir, &["chat", "--conversation", &conv_arg, "third"])
        .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
        .run()
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("conv.json"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&conv).expect("read"), "{broken");
}

// -------------------------------------------------------------------------------------------
// errors and exit codes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes() {
    let dir = temp_dir("exit-codes");
    let server = FakeOpenAi::new().api_key("sk-right").start().await;
    let url = fake_url(&server);

    // 2: usage
    let out = Llmux::new(&dir, &["chat", "--timeout", "soon", "x"])
        .run()
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = Llmux::new(&dir, &["chat", "--image", "missing.png", "x"])
        .run()
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("missing.png"), "{}", out.stderr);

    // 3: no such provider / model
    let out = Llmux::new(&dir, &["chat", "-p", "nope", "x"]).run().await;
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(
        out.stderr.lines().collect::<Vec<_>>(),
        ["llmux: error: provider `nope` not found"]
    );
    // the configured openai-compat server's discovery fails (nothing listens): it may serve any
    // model, so it is tried; the error says so
    let out = Llmux::new(&dir, &["chat", "-m", "no-such-model-anywhere", "x"])
        .run()
        .await;
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr.contains("discovery failed") && out.stderr.contains("openai-compat"),
        "{}",
        out.stderr
    );

    // 4: authentication (and the key never shows)
    let out = Llmux::new(
        &dir,
        &["chat", "-p", "openai-compat", "-m", "fake-model", "x"],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
    .env("LLMUX_OPENAI_COMPAT_API_KEY", "sk-wrong-key")
    .run()
    .await;
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(
        out.stderr
            .starts_with("llmux: error: openai-compat: authentication required"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("sk-wrong-key"), "{}", out.stderr);

    // 5: upstream status and refused connections
    server.inject("/v1/chat/completions", Fault::status(500));
    let out = Llmux::new(
        &dir,
        &["chat", "-p", "openai-compat", "-m", "fake-model", "x"],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
    .env("LLMUX_OPENAI_COMPAT_API_KEY", "sk-right")
    .run()
    .await;
    assert_eq!(out.code, Some(5), "{out:?}");
    assert!(out.stderr.contains("HTTP 500"), "{}", out.stderr);
    let out = Llmux::new(&dir, &["chat", "-p", "openai-compat", "-m", "m", "x"])
        .env(
            "LLMUX_OPENAI_COMPAT_BASE_URL",
            &format!("http://127.0.0.1:{}/v1", closed_port()),
        )
        .run()
        .await;
    assert_eq!(out.code, Some(5), "{out:?}");
    assert!(out.stderr.contains("connection failed"), "{}", out.stderr);
    assert_eq!(out.stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_from_flag_and_from_config() {
    let server = FakeOpenAi::new()
        .reply("slow reply here")
        .chunks(3)
        .chunk_delay(Duration::from_secs(5))
        .start()
        .await;
    let dir = temp_dir("idle");
    let url = fake_url(&server);
    let started = Instant::now();
    let out = Llmux::new(
        &dir,
        &[
            "chat",
            "-p",
            "openai-compat",
            "-m",
            "fake-model",
            "--idle-timeout",
            "0.5",
            "x",
        ],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
    .run()
    .await;
    assert_eq!(out.code, Some(5), "{out:?}");
    assert!(out.stderr.contains("idle"), "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    let cfg = dir.join("llmux.toml");
    write(&cfg, "[timeouts]\nidle = 0.5\n");
    let started = Instant::now();
    let out = Llmux::new(
        &dir,
        &[
            "chat",
            "--config",
            "llmux.toml",
            "-p",
            "openai-compat",
            "-m",
            "fake-model",
            "x",
        ],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
    .run()
    .await;
    assert_eq!(out.code, Some(5), "{out:?}");
    assert!(out.stderr.contains("idle"), "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // --timeout bounds the whole answer
    let out = Llmux::new(
        &dir,
        &[
            "chat",
            "-p",
            "openai-compat",
            "-m",
            "fake-model",
            "--timeout",
            "0.8",
            "x",
        ],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
    .run()
    .await;
    assert_eq!(out.code, Some(5), "{out:?}");
    assert!(out.stderr.contains("total timeout"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_with_verbose() {
    let dir = temp_dir("attempts");
    let closed = format!("http://127.0.0.1:{}/v1", closed_port());
    write(
        &dir.join("c.toml"),
        &format!(
            "priority = [\"openai-compat\", \"second\"]\n\
             [providers.openai-compat]\nbase_url = \"{closed}\"\nmodels = [\"shared-model\"]\n\
             [instances.second]\nkind = \"openai-compat\"\nbase_url = \"{closed}\"\nmodels = [\"shared-model\"]\n"
        ),
    );
    let out = Llmux::new(
        &dir,
        &["chat", "--config", "c.toml", "-m", "shared-model", "x"],
    )
    .run()
    .await;
    assert_eq!(out.code, Some(5), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines[0]
            .starts_with("llmux: error: all 2 providers failed; last: second: connection failed"),
        "{}",
        out.stderr
    );
    assert_eq!(lines[1], "llmux: run with -v to see every provider attempt");
    let out = Llmux::new(
        &dir,
        &[
            "-v",
            "chat",
            "--config",
            "c.toml",
            "-m",
            "shared-model",
            "x",
        ],
    )
    .run()
    .await;
    assert_eq!(out.code, Some(5), "{out:?}");
    let attempts: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(attempts.len(), 2, "{}", out.stderr);
    assert!(
        attempts[0].starts_with("  openai-compat (shared-model): openai-compat: connection failed"),
        "{}",
        out.stderr
    );
    assert!(
        attempts[1].starts_with("  second (shared-model): second: connection failed"),
        "{}",
        out.stderr
    );
}

// -------------------------------------------------------------------------------------------
// configuration

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_aliases_and_env_precedence() {
    let server = FakeOpenAi::new().echo().start().await;
    let dir = temp_dir("aliases");
    let closed = format!("http://127.0.0.1:{}/v1", closed_port());
    // the file points at a closed port; the environment (which wins) at the fake
    write(
        &dir.join("c.toml"),
        &format!(
            "[aliases]\nfast = \"openai-compat:fake-model\"\n[providers.openai-compat]\nbase_url = \"{closed}\"\n"
        ),
    );
    let cfg = dir.join("c.toml").display().to_string();
    let out = Llmux::new(&dir, &["chat", "-m", "fast", "hello"])
        .env("LLMUX_CONFIG", &cfg)
        .env("LLMUX_OPENAI_COMPAT_BASE_URL", &fake_url(&server))
        .run()
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "echo: hello\n");
    assert_eq!(chat_bodies(&server)[0]["model"], "fake-model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_files_are_clear_errors() {
    let dir = temp_dir("bad-config");
    write(
        &dir.join("typo.toml"),
        "[providers.openai-compat]\nbase_url = \"http://x/v1\"\napi_kee = \"k\"\n",
    );
    let out = Llmux::new(&dir, &["--config", "typo.toml", "providers"])
        .run()
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(
        out.stderr.lines().next(),
        Some(
            "llmux: error: config file typo.toml, line 3, column 1, key `providers.openai-compat.api_kee`: unknown field `api_kee`, expected one of `kind`, `base_url`, `origins`, `api_key`, `cookies`, `enabled`, `default_model`, `models`, `tool_emulation`, `options`"
        )
    );
    assert_eq!(out.stdout, "");

    write(&dir.join("type.toml"), "[timeouts]\ntotal = \"forever\"\n");
    let out = Llmux::new(&dir, &["--config", "type.toml", "config"])
        .run()
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("config file type.toml, line 2, column 9, key `timeouts.total`"),
        "{}",
        out.stderr
    );

    write(
        &dir.join("provider.toml"),
        "[providers.no-such]\nenabled = true\n",
    );
    let out = Llmux::new(&dir, &["--config", "provider.toml", "models", "--offline"])
        .run()
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("`providers.no-such`"), "{}", out.stderr);

    let out = Llmux::new(&dir, &["--config", "missing.toml", "providers"])
        .run()
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .starts_with("llmux: error: cannot read config file missing.toml"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_shows_effective_settings_with_secrets_masked() {
    let dir = temp_dir("show-config");
    write(
        &dir.join("c.toml"),
        r#"priority = ["huggingchat"]
proxy = "http://proxyuser:proxy-pass-123@127.0.0.1:3128"

[server]
bind = "127.0.0.1:8080"
api_key = "file-gateway-key-123"

[timeouts]
total = 120

[providers.openai-compat]
base_url = "http://file-host/v1"
api_key = "sk-file-secret-123"
options = { access_token = "option-secret-123", image_models = ["img"] }

[providers.huggingchat]
cookies = "hf-chat=cookie-secret-123; token=cookie-secret-456"

[instances.ollama]
kind = "openai-compat"
base_url = "http://127.0.0.1:11434/v1"
api_key = "instance-secret-123"
"#,
    );
    let out = Llmux::new(&dir, &["--config", "c.toml", "config"])
        .env("LLMUX_OPENAI_COMPAT_BASE_URL", "http://env-host/v1")
        .env("LLMUX_API_KEY", "env-gateway-key-123")
        .run()
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = &out.stdout;
    for secret in [
        "proxy-pass-123",
        "file-gateway-key-123",
        "env-gateway-key-123",
        "sk-file-secret-123",
        "option-secret-123",
        "cookie-secret-123",
        "cookie-secret-456",
        "instance-secret-123",
    ] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        assert!(
            !out.stderr.contains(secret),
            "{secret} leaked:\n{}",
            out.stderr
        );
    }
    assert!(text.contains("# config file: c.toml"), "{text}");
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let v: toml::Table = toml::from_str(&body).expect("valid TOML");
    let oc = &v["providers"]["openai-compat"];
    assert_eq!(oc["base_url"].as_str(), Some("http://env-host/v1"));
    assert_eq!(oc["api_key"].as_str(), Some("***"));
    assert_eq!(oc["options"]["access_token"].as_str(), Some("***"));
    assert_eq!(
        v["providers"]["huggingchat"]["cookies"].as_str(),
        Some("hf-chat=***; token=***")
    );
    assert_eq!(
        v["instances"]["ollama"]["kind"].as_str(),
        Some("openai-compat")
    );
    assert_eq!(v["instances"]["ollama"]["api_key"].as_str(), Some("***"));
    assert_eq!(v["server"]["bind"].as_str(), Some("127.0.0.1:8080"));
    assert_eq!(v["server"]["api_key"].as_str(), Some("***"));
    assert_eq!(v["timeouts"]["total"].as_float(), Some(120.0));
    assert_eq!(v["proxy"].as_str(), Some("http://127.0.0.1:3128"));

    let out = Llmux::new(&dir, &["--config", "c.toml", "config", "--json"])
        .without("LLMUX_OPENAI_COMPAT_BASE_URL")
        .run()
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["file"], "c.toml");
    assert_eq!(
        v["config"]["providers"]["openai-compat"]["base_url"],
        "http://file-host/v1"
    );
    assert!(!out.stdout.contains("secret-123"), "{}", out.stdout);
}

// -------------------------------------------------------------------------------------------
// listings

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_listing() {
    let server = FakeOpenAi::new()
        .models(["alpha-model", "beta-model"])
        .start()
        .await;
    let dir = temp_dir("models");
    let url = fake_url(&server);
    let out = Llmux::new(&dir, &["models", "-p", "openai-compat"])
        .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
        .run()
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("MODEL"), "{}", out.stdout);
    assert!(
        lines[1].starts_with("alpha-model  openai-compat  chat"),
        "{}",
        out.stdout
    );
    assert!(
        lines[2].starts_with("beta-model   openai-compat  chat"),
        "{}",
        out.stdout
    );

    // every provider: discovery included, failures fall back to the static lists
    let out = Llmux::new(&dir, &["models", "--json"])
        .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
        .run()
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Vec<Value> = serde_json::from_str(&out.stdout).expect("json");
    assert!(
        v.iter()
            .any(|m| m["id"] == "beta-model" && m["provider"] == "openai-compat")
    );
    let static_list = Llmux::new(&dir, &["models", "--offline", "--json"])
        .run()
        .await;
    let s: Vec<Value> = serde_json::from_str(&static_list.stdout).expect("json");
    assert!(!s.iter().any(|m| m["id"] == "beta-model"));
    assert_eq!(
        s.len() + 2,
        v.len(),
        "discovered models are added to the static ones"
    );

    // unknown provider
    let out = Llmux::new(&dir, &["models", "-p", "nope"]).run().await;
    assert_eq!(out.code, Some(3), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_listing() {
    let dir = temp_dir("providers");
    let out = Llmux::new(&dir, &["providers"])
        .env("LLMUX_OPENAI_COMPAT_API_KEY", "sk-listing")
        .run()
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("WORKING")
            && lines[0].contains("AUTH")
            && lines[0].contains("CAPABILITIES")
            && lines[0].ends_with("DEFAULT MODEL"),
        "{}",
        out.stdout
    );
    let oc = lines
        .iter()
        .find(|l| l.starts_with("openai-compat "))
        .expect("openai-compat row");
    assert!(oc.contains("optional, set"), "{oc}");
    assert!(oc.contains("stream,system,history"), "{oc}");

    let out = Llmux::new(&dir, &["providers", "--json"]).run().await;
    let v: Vec<Value> = serde_json::from_str(&out.stdout).expect("json");
    let names: Vec<&str> = v.iter().filter_map(|p| p["name"].as_str()).collect();
    let expected: Vec<&str> = llmux::core::registrations()
        .expect("registrations")
        .iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names.len(), expected.len());
    for n in expected {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let oc = v
        .iter()
        .find(|p| p["name"] == "openai-compat")
        .expect("openai-compat");
    assert_eq!(oc["credentials"], false);
    assert!(oc["enabled"].is_boolean() && oc["working"].is_boolean());
}

// -------------------------------------------------------------------------------------------
// images

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_downloads_to_output_file() {
    let server = FakeOpenAi::new().models(["img-model"]).start().await;
    let dir = temp_dir("image");
    let url = fake_url(&server);
    let out = Llmux::new(
        &dir,
        &[
            "image",
            "-p",
            "openai-compat",
            "-m",
            "img-model",
            "-o",
            "out/fox.png",
            "a",
            "red",
            "fox",
        ],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
    .run()
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "out/fox.png\n");
    assert_eq!(
        std::fs::read(dir.join("out/fox.png")).expect("image written"),
        TINY_PNG
    );
    let reqs = server.requests_to("/v1/images/generations");
    assert_eq!(reqs.len(), 1);
    let body = reqs[0].json().expect("json");
    assert_eq!(body["model"], "img-model");
    assert_eq!(body["prompt"], "a red fox");
    assert!(server.requests_to("/fake-files/{name}").len() == 1);

    // without -o: a generated name in --output-dir
    let out = Llmux::new(
        &dir,
        &[
            "image",
            "-p",
            "openai-compat",
            "-m",
            "img-model",
            "--output-dir",
            "gen",
            "a blue bird",
        ],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &url)
    .run()
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let path = out.stdout.trim();
    assert!(path.starts_with("gen/") && path.ends_with(".png"), "{path}");
    assert!(path.contains("a_blue_bird"), "{path}");
    assert_eq!(std::fs::read(dir.join(path)).expect("saved"), TINY_PNG);
}

// -------------------------------------------------------------------------------------------
// serve

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_and_shuts_down_on_sigterm() {
    let server = FakeOpenAi::new().echo().start().await;
    let dir = temp_dir("serve");
    let mut served = start_serve(Llmux::new(
        &dir,
        &["serve", "--port", "0", "--upstream", &fake_url(&server)],
    ));
    assert!(
        served.addr.starts_with("http://127.0.0.1:"),
        "{}",
        served.addr
    );
    assert!(!served.addr.ends_with(":0"), "{}", served.addr);

    let health = llmux_testkit::client::get(&format!("{}/health", served.addr))
        .await
        .expect("health");
    assert_eq!(health.status.as_u16(), 200);
    let resp = llmux_testkit::client::post_json(
        &format!("{}/v1/chat/completions", served.addr),
        &[],
        &json!({"model": "fake-model", "messages": [{"role": "user", "content": "via gateway"}]}),
    )
    .await
    .expect("chat");
    assert_eq!(resp.status.as_u16(), 200);
    let v = resp.json().await.expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: via gateway");

    let pid = served.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = tokio::task::spawn_blocking(move || {
        let code = wait_with_timeout(&mut served.child, Duration::from_secs(15));
        let rest: Vec<String> = served.stderr.try_iter().collect();
        (code, rest)
    })
    .await
    .expect("waiter");
    assert_eq!(code.0, Some(0), "stderr: {:?}", code.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_requires_the_api_key_from_the_environment() {
    let server = FakeOpenAi::new().echo().start().await;
    let dir = temp_dir("serve-key");
    let served = start_serve(
        Llmux::new(
            &dir,
            &[
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--upstream",
                &fake_url(&server),
            ],
        )
        .env("LLMUX_API_KEY", "gw-key-1"),
    );
    let url = format!("{}/v1/chat/completions", served.addr);
    let body = json!({"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]});
    let denied = llmux_testkit::client::post_json(&url, &[], &body)
        .await
        .expect("request");
    assert_eq!(denied.status.as_u16(), 401);
    let ok = llmux_testkit::client::post_json(&url, &[("authorization", "Bearer gw-key-1")], &body)
        .await
        .expect("request");
    assert_eq!(ok.status.as_u16(), 200);
    // the gateway key is not forwarded upstream
    let reqs = server.requests_to("/v1/chat/completions");
    assert_eq!(reqs.len(), 1);
    assert_ne!(reqs[0].bearer_token(), Some("gw-key-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reports_a_busy_port() {
    let dir = temp_dir("serve-busy");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = Llmux::new(&dir, &["serve", "--port", &port]).run().await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .starts_with(&format!("llmux: error: cannot listen on 127.0.0.1:{port}")),
        "{}",
        out.stderr
    );
}

// -------------------------------------------------------------------------------------------
// tools and structured output (issue #12)

/// One OpenAI streaming chunk carrying `delta`.
fn delta_chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1, "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_tools_prints_each_call_as_a_json_line() {
    use llmux_testkit::Reply;
    let server = FakeOpenAi::new().start().await;
    let events = vec![
        delta_chunk(json!({"role": "assistant", "content": null}), None).to_string(),
        delta_chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":"}}]}), None).to_string(),
        delta_chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), None).to_string(),
        delta_chunk(json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "note", "arguments": "not json"}}]}), None).to_string(),
        delta_chunk(json!({}), Some("tool_calls")).to_string(),
        "[DONE]".to_owned(),
    ];
    server.inject("/v1/chat/completions", Fault::Reply(Reply::sse(events)));
    let dir = temp_dir("tools");
    write(
        &dir.join("tools.json"),
        r#"[{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}},
            {"name":"note","parameters":{"type":"object"}}]"#,
    );
    let out = Llmux::new(
        &dir,
        &[
            "chat",
            "-m",
            "openai-compat:fake-model",
            "--tools",
            "tools.json",
            "--tool-choice",
            "required",
            "weather?",
        ],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &fake_url(&server))
    .run()
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(
        lines,
        [
            json!({"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}),
            json!({"id": "call_2", "name": "note", "arguments": "not json"}),
        ]
    );
    let body = &chat_bodies(&server)[0];
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(body["tools"][0]["function"]["strict"], true);
    assert_eq!(body["tools"][1]["function"]["name"], "note");

    // a named function as the choice
    let out = Llmux::new(
        &dir,
        &[
            "chat",
            "-m",
            "openai-compat:fake-model",
            "--tools",
            "tools.json",
            "--tool-choice",
            "note",
            "x",
        ],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &fake_url(&server))
    .run()
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        chat_bodies(&server)[1]["tool_choice"],
        json!({"type": "function", "function": {"name": "note"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_tools_file_errors_name_the_file() {
    let dir = temp_dir("tools-bad");
    write(
        &dir.join("broken.json"),
        r#"[{"type":"function","function":{"description":"no name"}}]"#,
    );
    let out = Llmux::new(&dir, &["chat", "--tools", "broken.json", "x"])
        .run()
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("broken.json"), "{}", out.stderr);
    assert!(
        out.stderr.contains("tool 1 has no function `name`"),
        "{}",
        out.stderr
    );
    let out = Llmux::new(&dir, &["chat", "--json-schema", "missing.json", "x"])
        .run()
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("missing.json"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_json_schema_asks_for_structured_output() {
    // the fake answers `json_schema` with an instance of the schema (strings: "value")
    let server = FakeOpenAi::new().start().await;
    let dir = temp_dir("schema");
    write(
        &dir.join("person.json"),
        r#"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}"#,
    );
    let out = Llmux::new(
        &dir,
        &[
            "chat",
            "-m",
            "openai-compat:fake-model",
            "--json-schema",
            "person.json",
            "--tool-emulation",
            "who?",
        ],
    )
    .env("LLMUX_OPENAI_COMPAT_BASE_URL", &fake_url(&server))
    .run()
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "{\"name\":\"value\"}\n");
    let body = &chat_bodies(&server)[0];
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["name"], "person");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(
        body["response_format"]["json_schema"]["schema"]["required"],
        json!(["name"])
    );
}

// -------------------------------------------------------------------------------------------
// cookies directory (issue #19)

const HF_COOKIES_TXT: &str = "# Netscape HTTP Cookie File\n.huggingface.co\tTRUE\t/\tTRUE\t4102444800\thf-chat\tfake-hf-chat-session\n";
const HF_EXPIRED_JSON: &str = r#"[{"domain": ".huggingface.co", "name": "hf-chat", "value": "stale-cookie-value", "expirationDate": 978307200}]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_directory_reaches_huggingchat_by_domain() {
    use llmux_testkit::huggingchat::FakeHuggingChat;
    let server = FakeHuggingChat::new().reply("Dune.").start().await;
    let dir = temp_dir("cookies-hc");
    let cookies = dir.join("cookies");
    std::fs::create_dir_all(&cookies).expect("dir");
    let run = |args: &[&str]| {
        Llmux::new(&dir, args)
            .env("LLMUX_HUGGINGCHAT_BASE_URL", &server.url("/chat"))
            .env("LLMUX_COOKIES_DIR", &cookies.display().to_string())
            .run()
    };
    // no cookies: HuggingChat asks for them
    let out = run(&["chat", "-p", "huggingchat", "q"]).await;
    assert_eq!(out.code, Some(4), "{out:?}");

    // an expired cookie: named with its file, value never shown
    write(&cookies.join("old.json"), HF_EXPIRED_JSON);
    let out = run(&["chat", "-p", "huggingchat", "q"]).await;
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(out.stderr.contains("cookie `hf-chat`"), "{}", out.stderr);
    assert!(out.stderr.contains("old.json"), "{}", out.stderr);
    assert!(out.stderr.contains("expired 2001-01-01"), "{}", out.stderr);
    assert!(!out.stderr.contains("stale-cookie-value"), "{}", out.stderr);

    // a valid cookies.txt: the fake accepts the session
    write(&cookies.join("browser.txt"), HF_COOKIES_TXT);
    let out = run(&["chat", "-p", "huggingchat", "q"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "Dune.\n");
    let sent = server
        .requests()
        .iter()
        .filter_map(|r| r.header("cookie").map(str::to_owned))
        .collect::<Vec<_>>();
    assert!(
        sent.iter()
            .any(|c| c.contains("hf-chat=fake-hf-chat-session")),
        "{sent:?}"
    );

    // `cookies list`: providers by domain, values masked, expiry shown
    let out = run(&["cookies", "list"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        !out.stdout.contains("fake-hf-chat-session"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("stale-cookie-value"), "{}", out.stdout);
    let hc: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("huggingchat "))
        .collect();
    assert_eq!(hc.len(), 2, "{}", out.stdout);
    assert!(
        hc.iter().any(|l| l.contains("hf-chat=***")
            && l.contains("2100-01-01")
            && l.contains("browser.txt")),
        "{hc:?}"
    );
    assert!(
        hc.iter()
            .any(|l| l.contains("expired 2001-01-01") && l.contains("old.json")),
        "{hc:?}"
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("microsoft-phi-4 ")),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.lines().any(|l| l.starts_with("flowgpt ")),
        "{}",
        out.stdout
    );

    // `providers` counts the directory's cookies as credentials
    let out = run(&["providers", "--json"]).await;
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    let cred = |name: &str| {
        v.as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == name))
            .map(|p| p["credentials"].clone())
    };
    assert_eq!(cred("huggingchat"), Some(json!(true)), "{v}");
    assert_eq!(cred("flowgpt"), Some(json!(false)), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_import_validates_and_copies() {
    let dir = temp_dir("cookies-import");
    let cookies = dir.join("store");
    write(&dir.join("good.txt"), HF_COOKIES_TXT);
    write(
        &dir.join("bad.txt"),
        "# Netscape\n.huggingface.co\tTRUE\t/\tTRUE\tsoon\thf-chat\tsecret-in-bad-file\n",
    );
    let env_dir = cookies.display().to_string();
    let out = Llmux::new(&dir, &["cookies", "import", "good.txt"])
        .env("LLMUX_COOKIES_DIR", &env_dir)
        .run()
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("1 cookies, 0 expired"),
        "{}",
        out.stdout
    );
    assert_eq!(
        std::fs::read_to_string(cookies.join("good.txt")).expect("copied"),
        HF_COOKIES_TXT
    );
    let out = Llmux::new(&dir, &["cookies", "import", "bad.txt"])
        .env("LLMUX_COOKIES_DIR", &env_dir)
        .run()
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("bad.txt, line 2"), "{}", out.stderr);
    assert!(!out.stderr.contains("secret-in-bad-file"), "{}", out.stderr);
    assert!(!cookies.join("bad.txt").exists());
    // the --cookies-dir flag wins; the default lives in the config dir
    let out = Llmux::new(
        &dir,
        &["--cookies-dir", "flagdir", "cookies", "import", "good.txt"],
    )
    .env("LLMUX_COOKIES_DIR", &env_dir)
    .run()
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(dir.join("flagdir/good.txt").exists());
    let out = Llmux::new(&dir, &["cookies", "import", "good.txt"])
        .run()
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        dir.join(".config/llmux/cookies/good.txt").exists(),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hf_token_file_reaches_huggingface_inference() {
    let dir = temp_dir("hf-token");
    std::fs::create_dir_all(dir.join(".cache/huggingface")).expect("dir");
    write(
        &dir.join(".cache/huggingface/token"),
        "hf_secret_from_cli_login\n",
    );
    let out = Llmux::new(&dir, &["config", "--json"]).run().await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(
        v["config"]["providers"]["huggingface-inference"]["api_key"],
        "***"
    );
    assert!(!out.stdout.contains("hf_secret_from_cli_login"));
    // a configured key wins
    let out = Llmux::new(&dir, &["config", "--json"])
        .env("HF_TOKEN", "hf_env_token")
        .run()
        .await;
    assert!(!out.stdout.contains("hf_env_token"));
}

/// `POST /v1/upload_cookies` with `files` parts `(file name, content)`.
async fn upload_cookies(
    addr: &str,
    files: &[(&str, &str)],
    key: Option<&str>,
) -> llmux_testkit::client::ClientResponse {
    let mut form = llmux::core::http::Multipart::new();
    for (name, text) in files {
        form = form.file("files", *name, "application/octet-stream", text.to_string());
    }
    let ct = form.content_type();
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", ct.as_str())];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    llmux_testkit::client::send(
        llmux_testkit::Method::POST,
        &format!("{addr}/v1/upload_cookies"),
        &headers,
        form.into_bytes(),
    )
    .await
    .expect("upload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_upload_cookies_stores_files_a_running_gateway_uses() {
    use llmux_testkit::huggingchat::FakeHuggingChat;
    let hc = FakeHuggingChat::new()
        .reply("Uploaded and used.")
        .start()
        .await;
    let dir = temp_dir("serve-upload");
    let cookies = dir.join("jar");
    // a small body limit, so the size test's body fits in the socket buffers
    write(&dir.join("gw.toml"), "[server]\nmax_body_bytes = 4096\n");
    let served = start_serve(
        Llmux::new(&dir, &["--config", "gw.toml", "serve", "--port", "0"])
            .env("LLMUX_HUGGINGCHAT_BASE_URL", &hc.url("/chat"))
            .env("LLMUX_COOKIES_DIR", &cookies.display().to_string())
            .env("LLMUX_API_KEY", "gw-key"),
    );
    let chat = || async {
        llmux_testkit::client::post_json(
            &format!("{}/v1/chat/completions", served.addr),
            &[("authorization", "Bearer gw-key")],
            &json!({"model": "huggingchat:", "provider": "huggingchat", "messages": [{"role": "user", "content": "q"}]}),
        )
        .await
        .expect("chat")
    };
    assert_eq!(chat().await.status.as_u16(), 401, "no cookies yet");

    // the gateway key is needed
    let resp = upload_cookies(&served.addr, &[("c.txt", HF_COOKIES_TXT)], None).await;
    assert_eq!(resp.status.as_u16(), 401);
    assert!(!cookies.join("c.txt").exists());

    // a broken file among good ones: nothing is stored, the error names file and line
    let bad = "# Netscape\n.huggingface.co\tTRUE\t/\n";
    let resp = upload_cookies(
        &served.addr,
        &[("good.txt", HF_COOKIES_TXT), ("bad.txt", bad)],
        Some("gw-key"),
    )
    .await;
    assert_eq!(resp.status.as_u16(), 400);
    let v = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], "invalid_cookie_file");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("bad.txt, line 2"),
        "{v}"
    );
    assert!(!cookies.join("good.txt").exists());

    // path traversal is reduced to the file name; other names are refused
    let resp = upload_cookies(
        &served.addr,
        &[("../../outside.txt", HF_COOKIES_TXT)],
        Some("gw-key"),
    )
    .await;
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(
        resp.json().await.expect("json"),
        json!([{"filename": "outside.txt"}])
    );
    assert!(cookies.join("outside.txt").exists());
    assert!(!dir.join("outside.txt").exists());
    let resp = upload_cookies(&served.addr, &[("/etc/passwd", "root:x")], Some("gw-key")).await;
    assert_eq!(resp.status.as_u16(), 400);
    assert_eq!(
        resp.json().await.expect("json")["error"]["code"],
        "invalid_file_name"
    );

    // the running gateway picked up the uploaded cookie
    let resp = chat().await;
    assert_eq!(resp.status.as_u16(), 200);
    let v = resp.json().await.expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "Uploaded and used.");

    // larger than the gateway's body limit
    let big = format!("# Netscape\n{}", "#".repeat(5000));
    let resp = upload_cookies(&served.addr, &[("big.txt", &big)], Some("gw-key")).await;
    assert_eq!(resp.status.as_u16(), 413);
    assert!(!cookies.join("big.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_check_reports_which_work_now() {
    let dir = temp_dir("check");
    let healthy = FakeOpenAi::new()
        .models(["shared-model"])
        .reply("OK")
        .start()
        .await;
    let slow = FakeOpenAi::new()
        .models(["shared-model"])
        .reply("OK")
        .start()
        .await;
    slow.inject_times(
        "/v1/chat/completions",
        Fault::Delay(Duration::from_secs(20)),
        10,
    );
    let closed = format!("http://127.0.0.1:{}/v1", closed_port());
    let section = |name: &str, url: &str| {
        format!(
            "[instances.{name}]\nkind = \"openai-compat\"\nbase_url = \"{url}\"\nmodels = [\"shared-model\"]\n"
        )
    };
    write(
        &dir.join("c.toml"),
        &format!(
            "{}{}{}",
            section("healthy", &fake_url(&healthy)),
            section("down", &closed),
            section("slow", &fake_url(&slow))
        ),
    );
    let args = [
        "providers",
        "--check",
        "--config",
        "c.toml",
        "-m",
        "shared-model",
        "--timeout",
        "1",
    ];
    let out = Llmux::new(&dir, &[&args[..], &["--json"]].concat())
        .run()
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let rows: BTreeMap<String, Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("one JSON object per line"))
        .map(|v| (v["provider"].as_str().unwrap_or_default().to_owned(), v))
        .collect();
    let healthy_row = &rows["healthy"];
    assert_eq!(healthy_row["ok"], true, "{healthy_row}");
    assert_eq!(healthy_row["status"], "ok");
    assert_eq!(healthy_row["model"], "shared-model");
    assert!(healthy_row["ttft_ms"].as_f64().is_some());
    assert_eq!(rows["down"]["ok"], false);
    assert_eq!(rows["down"]["status"], "connect");
    assert_eq!(rows["slow"]["status"], "timeout", "{}", rows["slow"]);
    assert!(rows["slow"]["total_ms"].as_f64().expect("total") < 5000.0);
    assert!(
        out.ended < Duration::from_secs(10),
        "concurrent: {:?}",
        out.ended
    );
    assert_eq!(healthy.requests_to("/v1/chat/completions").len(), 1);

    // the table, and exit 5 when nothing works
    let out = Llmux::new(&dir, &args).run().await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("PROVIDER"), "{}", out.stdout);
    assert!(
        lines[1].starts_with("healthy") && lines[1].contains(" ok "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("down") && l.contains("connect"))
    );
    drop(healthy);
    write(
        &dir.join("c.toml"),
        &format!(
            "{}{}",
            section("down", &closed),
            section("slow", &fake_url(&slow))
        ),
    );
    let out = Llmux::new(&dir, &args).run().await;
    assert_eq!(out.code, Some(5), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_json_access_lines_with_the_request_id() {
    let server = FakeOpenAi::new().echo().start().await;
    let dir = temp_dir("serve-json-log");
    let served = start_serve(Llmux::new(
        &dir,
        &[
            "serve",
            "--port",
            "0",
            "--upstream",
            &fake_url(&server),
            "--log-format",
            "json",
        ],
    ));
    let resp = llmux_testkit::client::post_json(
        &format!("{}/v1/chat/completions", served.addr),
        &[("x-request-id", "json-log-7")],
        &json!({"model": "fake-model", "messages": [{"role": "user", "content": "log me"}]}),
    )
    .await
    .expect("chat");
    assert_eq!(resp.header("x-request-id"), Some("json-log-7"));
    let _ = resp.text().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = served.stderr.recv_timeout(left).expect("an access line");
        if line.contains("json-log-7") {
            break line;
        }
    };
    let v: Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["target"], "llmux_server::access");
    assert_eq!(v["request_id"], "json-log-7");
    assert_eq!(v["route"], "/v1/chat/completions");
    assert_eq!(v["model_asked"], "fake-model");
    assert_eq!(v["provider"], "openai-compat");
    assert_eq!(v["model"], "fake-model");
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["status"], 200);
    assert!(v["ttft_ms"].as_f64().is_some() && v["duration_ms"].as_f64().is_some());
    assert!(v["completion_tokens"].as_u64().is_some_and(|n| n > 0));
    assert!(v["overhead_ms"].as_f64().is_some());
}

// -------------------------------------------------------------------------------------------
// keys

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_hash_prints_what_the_config_file_accepts() {
    let dir = temp_dir("keys-hash");
    let out = Llmux::new(&dir, &["keys", "hash", "abc"]).run().await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"
    );
    let from_stdin = Llmux::new(&dir, &["keys", "hash"])
        .stdin("abc\n")
        .run()
        .await;
    assert_eq!(from_stdin.stdout, out.stdout, "the key may come on stdin");
    let fresh = Llmux::new(&dir, &["keys", "new"]).run().await;
    let (key, hash) = (
        fresh
            .stdout
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("key    = ")),
        fresh
            .stdout
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("sha256 = ")),
    );
    let (key, hash) = (key.expect("key line"), hash.expect("hash line"));
    assert!(key.len() > 40, "{key}");
    write(
        &dir.join("keys.toml"),
        &format!(
            "[[keys]]\nname = \"ci\"\nsha256 = \"{hash}\"\nrpm = 5\nexpires = 2099-01-01T00:00:00Z\n"
        ),
    );
    let shown = Llmux::new(&dir, &["--config", "keys.toml", "config", "--json"])
        .run()
        .await;
    assert_eq!(shown.code, Some(0), "{shown:?}");
    let v: Value = serde_json::from_str(&shown.stdout).expect("json");
    assert_eq!(v["config"]["keys"][0]["name"], "ci");
    assert_eq!(v["config"]["keys"][0]["rpm"], 5);
    assert_eq!(v["config"]["keys"][0]["expires"], "2099-01-01 00:00 UTC");
    assert!(!shown.stdout.contains(hash) && !shown.stdout.contains(key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_entries_are_clear_errors() {
    let dir = temp_dir("keys-bad");
    for (name, text, expect) in [
        (
            "nokey",
            "[[keys]]\nname = \"a\"\n",
            "`keys[0]`: needs `key`",
        ),
        (
            "both",
            "[[keys]]\nname = \"a\"\nkey = \"k\"\nsha256 = \"00\"\n",
            "not both",
        ),
        (
            "hex",
            "[[keys]]\nname = \"a\"\nsha256 = \"xyz\"\n",
            "64 hex digits",
        ),
        (
            "dup",
            "[[keys]]\nname = \"a\"\nkey = \"k1\"\n[[keys]]\nname = \"a\"\nkey = \"k2\"\n",
            "`keys[1].name`",
        ),
        (
            "zero",
            "[[keys]]\nname = \"a\"\nkey = \"k\"\nrpm = 0\n",
            "at least 1",
        ),
        ("redis", "[redis]\nurl = \"http://nope\"\n", "`redis.url`"),
    ] {
        let file = format!("{name}.toml");
        write(&dir.join(&file), text);
        let out = Llmux::new(&dir, &["--config", &file, "config"]).run().await;
        assert_eq!(out.code, Some(2), "{name}: {out:?}");
        assert!(out.stderr.contains(expect), "{name}: {}", out.stderr);
        assert!(!out.stderr.contains("k1") && !out.stderr.contains("k2"));
    }
}
