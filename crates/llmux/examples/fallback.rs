//! Fallback across two providers: the first fails before saying anything, the client moves on
//! to the second, and the stream tells which provider answered:
//! `cargo run -p llmux --example fallback`.
//!
//! Two named instances of the `openai-compat` provider, `primary` and `backup`, are tried in that
//! order. `primary` is a fake upstream (from `llmux-testkit`, on 127.0.0.1) that answers its next
//! requests with `503 Service Unavailable`. `backup` is the OpenAI-compatible server at
//! `LLMUX_EXAMPLE_BACKUP_URL` (with `LLMUX_EXAMPLE_MODEL`, default `gpt-4o-mini`, and
//! `LLMUX_EXAMPLE_BACKUP_API_KEY` if the server wants a key) when that is set, else a second fake
//! that answers.

use std::error::Error;
use std::io::Write;

use futures_util::StreamExt;
use llmux::{ChatRequest, Chunk, Client, ProviderConfig, Proxy};
use llmux_testkit::Fault;
use llmux_testkit::openai::FakeOpenAi;

/// Asks `primary`, then `backup`, writing each attempt and the answer to `out`; returns the name
/// of the provider that answered. `backup_url` is the backup server's base URL (a fake when
/// `None`).
pub async fn run(
    backup_url: Option<String>,
    out: &mut dyn Write,
) -> Result<String, Box<dyn Error>> {
    let live = backup_url.is_some();
    let model = if live {
        std::env::var("LLMUX_EXAMPLE_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into())
    } else {
        "shared-model".to_owned()
    };
    // the fakes list the model, so that routing by model finds them
    let primary = FakeOpenAi::new()
        .models([model.as_str()])
        .reply("primary answers")
        .start()
        .await;
    // its chat requests fail for a while (however many tries the retry policy spends on it)
    primary.inject_times("/v1/chat/completions", Fault::status(503), 100);
    // the fake backup (if any) lives until the end of this function
    let (backup_url, _fake_backup) = match backup_url {
        Some(url) => (url, None),
        None => {
            let server = FakeOpenAi::new()
                .models([model.as_str()])
                .reply("backup answers")
                .start()
                .await;
            (server.url("/v1"), Some(server))
        }
    };
    let mut backup = ProviderConfig::default().with_base_url(backup_url);
    if let Ok(key) = std::env::var("LLMUX_EXAMPLE_BACKUP_API_KEY") {
        backup = backup.with_api_key(key);
    }
    // only the `openai-compat` provider kind, so that nothing else takes part in routing
    let kinds = llmux::core::registrations()?
        .into_iter()
        .filter(|r| r.name == "openai-compat")
        .collect();
    let proxy = if live {
        Proxy::FromEnv
    } else {
        Proxy::Direct // both fakes are on loopback: no HTTP(S)_PROXY
    };
    let client = Client::builder()
        .ignore_env()
        .proxy(proxy)
        .registrations(kinds)
        .instance(
            "primary",
            "openai-compat",
            ProviderConfig::default().with_base_url(primary.url("/v1")),
        )
        .instance("backup", "openai-compat", backup)
        .priority(["primary", "backup"])
        .build()?;

    // no provider named: the client routes by model, trying `primary` first
    let mut stream = client.chat(ChatRequest::user(model, "Say hello."));
    let mut answered_by = String::new();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        match chunk? {
            // one per attempt; the last one is the provider whose answer follows
            Chunk::Provider(p) => {
                writeln!(out, "trying {} ({})", p.provider, p.model)?;
                answered_by = p.provider;
            }
            Chunk::Text(delta) => text.push_str(&delta),
            _ => {}
        }
    }
    writeln!(out, "answered by {answered_by}: {text}")?;
    let failed = primary.requests_to("/v1/chat/completions").len();
    writeln!(out, "primary failed {failed} time(s) with 503")?;
    Ok(answered_by)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let backup_url = std::env::var("LLMUX_EXAMPLE_BACKUP_URL").ok();
    run(backup_url, &mut std::io::stdout()).await?;
    Ok(())
}
