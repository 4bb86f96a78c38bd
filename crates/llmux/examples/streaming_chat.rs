//! Streams a chat and prints each delta as it arrives:
//! `cargo run -p llmux --example streaming_chat`.
//!
//! With `LLMUX_OPENAI_COMPAT_BASE_URL` set (and `LLMUX_OPENAI_COMPAT_API_KEY` if the server wants
//! one), it asks that OpenAI-compatible server for `LLMUX_EXAMPLE_MODEL` (default `gpt-4o-mini`).
//! Without it, a fake OpenAI-compatible upstream from `llmux-testkit` is started on 127.0.0.1
//! and streams its answer in a few delayed pieces, so the example runs offline.

use std::error::Error;
use std::io::Write;
use std::time::Duration;

use futures_util::StreamExt;
use llmux::{ChatRequest, Chunk, Client, ProviderConfig, Proxy};
use llmux_testkit::openai::FakeOpenAi;

/// Streams one answer, writing what arrives to `out`: from the server configured by
/// `LLMUX_OPENAI_COMPAT_*` when `live`, else from a fake started here.
pub async fn run(live: bool, out: &mut dyn Write) -> Result<(), Box<dyn Error>> {
    // the fake (if any) lives until the end of this function; dropping it stops the server
    let (client, model, _fake) = if live {
        // configuration from LLMUX_OPENAI_COMPAT_* (base URL, API key)
        let model = std::env::var("LLMUX_EXAMPLE_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
        (Client::from_env()?, model, None)
    } else {
        let server = FakeOpenAi::new()
            .models(["fake-model"])
            .reply("Streaming means the first words arrive before the last are written.")
            .chunks(6)
            .chunk_delay(Duration::from_millis(40))
            .start()
            .await;
        let config = ProviderConfig::default().with_base_url(server.url("/v1"));
        let client = Client::builder()
            .ignore_env()
            .proxy(Proxy::Direct) // the fake is on loopback: no HTTP(S)_PROXY
            .provider("openai-compat", config)
            .build()?;
        (client, "fake-model".to_owned(), Some(server))
    };
    let request = ChatRequest::user(model, "Explain streaming in one sentence.")
        // name the provider: routing by model alone could pick another compiled-in provider
        .with_provider("openai-compat");
    let mut stream = client.chat(request);
    let mut deltas = 0;
    let mut mid_line = false;
    while let Some(chunk) = stream.next().await {
        // text deltas go on one line as they arrive; everything else is a note on its own line
        let note = match chunk? {
            Chunk::Text(delta) => {
                deltas += 1;
                write!(out, "{delta}")?;
                out.flush()?;
                mid_line = true;
                continue;
            }
            Chunk::Provider(p) => format!("{} answers with {}", p.provider, p.model),
            Chunk::Usage(u) => format!(
                "usage: {} prompt + {} completion tokens",
                u.prompt_tokens, u.completion_tokens
            ),
            Chunk::Finish(reason) => format!("finished: {reason:?}"),
            _ => continue,
        };
        if std::mem::take(&mut mid_line) {
            writeln!(out)?;
        }
        writeln!(out, "[{note}]")?;
    }
    writeln!(out, "[{deltas} text deltas]")?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let live = std::env::var_os("LLMUX_OPENAI_COMPAT_BASE_URL").is_some();
    run(live, &mut std::io::stdout()).await
}
