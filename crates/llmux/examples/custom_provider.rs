//! A complete custom provider, registered on a client builder:
//! `cargo run -p llmux --example custom_provider`.
//!
//! `TokenStream` speaks a made-up upstream protocol: `POST {base}/generate` with
//! `{"model", "prompt", "temperature"}`, answered by JSON lines `{"token": "..."}`, then
//! `{"done": true, "reason": "stop"}` (or `{"error": "..."}`). With `LLMUX_EXAMPLE_UPSTREAM` set
//! to such a server's base URL it talks to that; otherwise a fake speaking the protocol is started
//! on 127.0.0.1 with `llmux-testkit`.

use std::error::Error as StdError;
use std::io::Write;
use std::sync::Arc;

use futures_util::StreamExt;
use llmux::core::Context;
use llmux::core::decode::jsonl::json_lines;
use llmux::core::prompt::format_prompt;
use llmux::{
    Capabilities, ChatRequest, ChatStream, Chunk, Client, Error, FinishReason, Provider,
    ProviderInfo, Proxy,
};
use llmux_testkit::{FakeServer, Reply, Router};
use serde_json::{Value, json};

/// A provider for the `token-stream` protocol at one base URL.
pub struct TokenStream {
    info: ProviderInfo,
    base_url: String,
}

impl TokenStream {
    /// A provider talking to `base_url`.
    pub fn new(base_url: &str) -> Self {
        let info = ProviderInfo {
            name: "token-stream".into(),
            label: "Token Stream".into(),
            url: base_url.into(),
            working: true,
            supports_stream: true,
            supports_system_message: true,
            supports_message_history: true,
            default_model: "ts-small".into(),
            models: vec!["ts-small".into(), "ts-large".into()],
            // no native tools or structured output; `temperature` is honoured, other sampling
            // fields are reported as ignored
            capabilities: Capabilities::plain(&["temperature"], &[]),
            ..ProviderInfo::default()
        };
        let base_url = base_url.trim_end_matches('/').to_owned();
        Self { info, base_url }
    }
}

impl Provider for TokenStream {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn chat(&self, request: ChatRequest, ctx: Context) -> ChatStream {
        let name = self.info.name.clone();
        let url = format!("{}/generate", self.base_url);
        let model = self.info.resolve_model(&request.model, None);
        Box::pin(llmux::core::async_stream::try_stream! {
            let model = model?;
            let body = json!({
                "model": model,
                // the whole history as one prompt ("User: ...\nAssistant:")
                "prompt": format_prompt(&request.messages, true, false, true),
                "temperature": request.temperature,
            });
            // ctx.http carries this call's timeouts, proxy and deadline; `error_for_status` turns
            // 4xx/5xx into typed errors the facade can retry or fall back on
            let resp = ctx.http.post(url).provider(&name).json(&body).send().await?;
            let resp = resp.error_for_status().await?;
            let mut lines = std::pin::pin!(json_lines(resp.into_stream(), &name));
            while let Some(line) = lines.next().await {
                let line = line?;
                if let Some(token) = line["token"].as_str() {
                    yield Chunk::text(token);
                } else if let Some(message) = line["error"].as_str() {
                    Err(Error::Upstream { provider: name.clone(), message: message.to_owned() })?;
                } else if line["done"] == true {
                    let reason = line["reason"].as_str().and_then(FinishReason::parse);
                    yield Chunk::Finish(reason.unwrap_or(FinishReason::Stop));
                    return;
                }
            }
            Err(Error::protocol(&name, "the stream ended without a `done` line", ""))?;
        })
    }
}

/// A fake `token-stream` upstream: echoes the last prompt line back, word by word.
async fn fake_upstream() -> FakeServer {
    let router = Router::new().post("/generate", |req| async move {
        let body = req.json().unwrap_or(Value::Null);
        let prompt = body["prompt"].as_str().unwrap_or_default().to_owned();
        let said = prompt.lines().rev().find_map(|l| l.strip_prefix("User: "));
        let answer = format!("You said: {}", said.unwrap_or("nothing"));
        let mut lines: Vec<Value> = answer
            .split_inclusive(' ')
            .map(|word| json!({ "token": word }))
            .collect();
        lines.push(json!({ "done": true, "reason": "stop" }));
        Reply::jsonl(lines)
    });
    FakeServer::start(router).await
}

/// Registers a `TokenStream` at `upstream` (a fake when `None`) and answers one chat with it.
pub async fn run(upstream: Option<String>, out: &mut dyn Write) -> Result<(), Box<dyn StdError>> {
    // the fake (if any) lives until the end of this function
    let (base_url, fake) = match upstream {
        Some(url) => (url, None),
        None => {
            let server = fake_upstream().await;
            (server.url(""), Some(server))
        }
    };
    let proxy = if fake.is_some() {
        Proxy::Direct // the fake is on loopback: no HTTP(S)_PROXY
    } else {
        Proxy::FromEnv
    };
    let client = Client::builder()
        .ignore_env()
        .proxy(proxy)
        .registrations(Vec::new()) // no compiled-in providers: only ours
        .with_provider(Arc::new(TokenStream::new(&base_url)))
        .build()?;
    let request = ChatRequest::user("ts-small", "Hello, custom provider!").with_temperature(0.2);
    let answer = client.complete(request).await?;
    writeln!(
        out,
        "{} ({}): {}",
        answer.provider, answer.model, answer.text
    )?;
    writeln!(out, "finish reason: {:?}", answer.finish_reason)?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn StdError>> {
    run(
        std::env::var("LLMUX_EXAMPLE_UPSTREAM").ok(),
        &mut std::io::stdout(),
    )
    .await
}
