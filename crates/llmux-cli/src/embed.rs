//! `llmux embed`: embeddings of texts, one JSON line per input.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use llmux::EmbeddingRequest;
use serde::Serialize;

use crate::App;
use crate::exit::{self, CliError};

#[derive(Args, Debug)]
pub(crate) struct EmbedArgs {
    /// Embedding model: an id, alias or `provider:model` (e.g. `openai-compat:text-embedding-3-small`).
    #[arg(short, long)]
    model: String,
    /// Provider to use [default: routed by model to a provider that answers embeddings].
    #[arg(short, long)]
    provider: Option<String>,
    /// Vector size, for models that can shorten their vectors.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    dimensions: Option<u32>,
    /// Time limit in seconds [default: `timeouts.total`, 600].
    #[arg(long, value_name = "SECS", env = "LLMUX_TIMEOUT", hide_env_values = true, value_parser = crate::parse_secs)]
    timeout: Option<Duration>,
    /// The texts, one vector each; `-` reads one text per line from stdin.
    #[arg(value_name = "TEXT", required = true)]
    texts: Vec<String>,
}

/// One output line.
#[derive(Serialize)]
struct Line<'a> {
    index: usize,
    input: &'a str,
    model: &'a str,
    provider: &'a str,
    embedding: &'a [f32],
}

async fn read_texts(args: &EmbedArgs) -> Result<Vec<String>, CliError> {
    if args.texts.len() != 1 || args.texts[0] != "-" {
        return Ok(args.texts.clone());
    }
    let mut s = String::new();
    tokio::io::AsyncReadExt::read_to_string(
        &mut tokio::io::AsyncReadExt::take(tokio::io::stdin(), 16 * 1024 * 1024),
        &mut s,
    )
    .await
    .map_err(|e| CliError::usage(format!("cannot read the texts from stdin: {e}")))?;
    Ok(s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect())
}

/// Runs `llmux embed`.
pub(crate) async fn run(app: &App, args: EmbedArgs) -> Result<u8, CliError> {
    let texts = read_texts(&args).await?;
    if texts.is_empty() {
        return Err(CliError::usage("no text to embed"));
    }
    let client = app.client()?;
    let mut req = EmbeddingRequest::new(args.model.clone(), texts.iter().cloned());
    req.provider.clone_from(&args.provider);
    req.dimensions = args.dimensions;
    req.timeout = args.timeout;
    let resp = client.embed(req).await?;
    let mut out = std::io::stdout().lock();
    for (index, (input, embedding)) in texts.iter().zip(&resp.embeddings).enumerate() {
        let line = Line {
            index,
            input,
            model: &resp.model,
            provider: &resp.provider,
            embedding,
        };
        let json = serde_json::to_string(&line)
            .map_err(|e| CliError::new(exit::FAILURE, format!("cannot encode: {e}")))?;
        writeln!(out, "{json}")
            .map_err(|e| CliError::new(exit::FAILURE, format!("cannot write: {e}")))?;
    }
    Ok(exit::OK)
}
