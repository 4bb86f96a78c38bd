//! `llmux-mock`: serves one of the llmux-testkit fakes on a loopback port
//! until killed, printing `listening on http://127.0.0.1:PORT`.
//!
//! One subcommand per fake: `llmux-mock openai --port 8080 --model m1 --reply hi`.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::{FakeServer, Router};

#[derive(Parser, Debug)]
#[command(
    name = "llmux-mock",
    version,
    about = "Fake LLM upstreams on 127.0.0.1 for tests and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A fake OpenAI-compatible API (/v1/models, /v1/chat/completions, /v1/images/generations).
    Openai(OpenAiArgs),
}

/// Where to listen (shared by every fake).
#[derive(Args, Debug)]
struct Listen {
    /// Loopback address to bind; anything else is refused.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind (0 picks a free one).
    #[arg(long, short, default_value_t = 0)]
    port: u16,
}

#[derive(Args, Debug)]
struct OpenAiArgs {
    #[command(flatten)]
    listen: Listen,
    /// A served model id (repeatable; default: fake-model).
    #[arg(long = "model", short, value_name = "MODEL")]
    models: Vec<String>,
    /// Reply text.
    #[arg(long)]
    reply: Option<String>,
    /// Reply `echo: <last user message>` instead of a fixed text.
    #[arg(long, conflicts_with = "reply")]
    echo: bool,
    /// Number of stream chunks.
    #[arg(long, default_value_t = 3)]
    chunks: usize,
    /// Delay between stream chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Reasoning text streamed as reasoning_content before the reply.
    #[arg(long)]
    reasoning: Option<String>,
    /// Require `Authorization: Bearer KEY`.
    #[arg(long, env = "LLMUX_MOCK_API_KEY")]
    api_key: Option<String>,
    /// Route prefix.
    #[arg(long, default_value = "/v1")]
    prefix: String,
}

impl OpenAiArgs {
    fn router(self) -> Router {
        let mut fake = FakeOpenAi::new()
            .prefix(&self.prefix)
            .chunks(self.chunks)
            .chunk_delay(Duration::from_millis(self.chunk_delay_ms));
        if !self.models.is_empty() {
            fake = fake.models(self.models);
        }
        if let Some(r) = self.reply {
            fake = fake.reply(r);
        }
        if self.echo {
            fake = fake.echo();
        }
        if let Some(r) = self.reasoning {
            fake = fake.reasoning(r);
        }
        if let Some(k) = self.api_key {
            fake = fake.api_key(k);
        }
        fake.router()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (listen, router) = match cli.command {
        Command::Openai(args) => {
            let addr = (args.listen.host, args.listen.port);
            (addr, args.router())
        }
    };
    let server = match FakeServer::try_start_at(router, SocketAddr::from(listen)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("llmux-mock: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", server.url(""));
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
