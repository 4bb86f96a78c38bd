//! `llmux-mock`: serves one of the llmux-testkit fakes on a loopback port
//! until killed, printing `listening on http://127.0.0.1:PORT`.
//!
//! One subcommand per fake: `llmux-mock openai --port 8080 --model m1 --reply hi`.
//!
//! With `--record`, `GET /__mock/requests` answers what the fake has received so far (for
//! tests driving the fake from another process, e.g. the gateway's browser tests):
//! `{"open_connections": n, "requests": [{"method", "path", "body"}]}` (`body` parsed as JSON
//! when it is JSON, else lossy text).

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use llmux_testkit::openai::{FakeOpenAi, openai_error};
use llmux_testkit::{FakeServer, Reply, Router};
use serde_json::{Value, json};

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
    /// A fake AmigoChat API (/v1/chat/completions with persona ids, /v1/images/generations).
    Amigochat(AmigoChatArgs),
    /// A fake FlowGPT API (/v3/chat-anonymous, signed requests, JSON-lines replies).
    Flowgpt(FlowGptArgs),
    /// A fake Hugging Face Hub + Inference API + router (TGI SSE, image bytes, loading 503s).
    HfInference(HfInferenceArgs),
    /// A fake HuggingChat / chat-ui (page models, conversations, __data.json, JSONL answers, /api/v2).
    Huggingchat(HuggingChatArgs),
    /// A fake Gradio 5 or 6 chat Space on ZeroGPU + its Hub routes (config, upload, run/predict, queue/join, queue/data SSE).
    Gradio(GradioArgs),
    // @mock-commands (cargo xtask new-provider inserts subcommands above this marker)
}

#[derive(Args, Debug)]
struct GradioArgs {
    #[command(flatten)]
    listen: Listen,
    /// Fixed reply text (default: `echo: <prompt> | files: <n> ...`).
    #[arg(long)]
    reply: Option<String>,
    /// Delay before process_starts and each process_generating message, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Heartbeat interval, in milliseconds (0 disables).
    #[arg(long, default_value_t = 15_000)]
    heartbeat_ms: u64,
    /// Space id (`owner/name`) served on the Hub routes.
    #[arg(long, default_value = llmux_testkit::gradio::DEFAULT_SPACE)]
    space: String,
    /// Fail every queued event with this `output.error` text.
    #[arg(long)]
    fail_with: Option<String>,
    /// Fail every queued event with a ZeroGPU quota message.
    #[arg(long, conflicts_with = "fail_with")]
    quota: bool,
    /// Close the stream after generating, without process_completed.
    #[arg(long)]
    no_completion: bool,
    /// The Gradio major version to behave as (5 or 6; 6 puts message content in typed blocks).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(5..=6))]
    gradio_version: u8,
}

impl GradioArgs {
    fn router(self) -> Router {
        use llmux_testkit::gradio::{Ending, FakeGradio, Version};
        let version = if self.gradio_version >= 6 {
            Version::Gradio6
        } else {
            Version::Gradio5
        };
        let mut fake = FakeGradio::new()
            .version(version)
            .space(&self.space)
            .chunk_delay(Duration::from_millis(self.chunk_delay_ms))
            .heartbeat_interval(Duration::from_millis(self.heartbeat_ms));
        if let Some(r) = &self.reply {
            fake = fake.reply(r);
        }
        if let Some(e) = &self.fail_with {
            fake = fake.fail_with(e);
        }
        if self.quota {
            fake = fake.quota_exceeded();
        }
        if self.no_completion {
            fake = fake.ending(Ending::CloseWithoutCompletion);
        }
        fake.router()
    }
}

#[derive(Args, Debug)]
struct AmigoChatArgs {
    #[command(flatten)]
    listen: Listen,
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
    /// An image URL returned by /v1/images/generations (repeatable).
    #[arg(long = "image-url", value_name = "URL")]
    image_urls: Vec<String>,
    /// Do not fail the balance-limited and broken models as the upstream did.
    #[arg(long)]
    no_upstream_limits: bool,
}

impl AmigoChatArgs {
    fn router(self) -> Router {
        let mut fake = llmux_testkit::amigochat::FakeAmigoChat::new()
            .chunks(self.chunks)
            .chunk_delay(Duration::from_millis(self.chunk_delay_ms))
            .image_urls(self.image_urls)
            .upstream_limits(!self.no_upstream_limits);
        if let Some(r) = self.reply {
            fake = fake.reply(r);
        }
        if self.echo {
            fake = fake.echo();
        }
        fake.router()
    }
}

#[derive(Args, Debug)]
struct FlowGptArgs {
    #[command(flatten)]
    listen: Listen,
    /// Reply text.
    #[arg(long)]
    reply: Option<String>,
    /// Reply `echo: <question>` instead of a fixed text.
    #[arg(long, conflicts_with = "reply")]
    echo: bool,
    /// Number of `text` events.
    #[arg(long, default_value_t = 3)]
    chunks: usize,
    /// Delay between events, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Refuse timestamps further than this many seconds from the server's clock.
    #[arg(long)]
    max_clock_skew_secs: Option<u64>,
}

impl FlowGptArgs {
    fn router(self) -> Router {
        let mut fake = llmux_testkit::flowgpt::FakeFlowGpt::new()
            .chunks(self.chunks)
            .chunk_delay(Duration::from_millis(self.chunk_delay_ms));
        if let Some(r) = self.reply {
            fake = fake.reply(r);
        }
        if self.echo {
            fake = fake.echo();
        }
        if let Some(s) = self.max_clock_skew_secs {
            fake = fake.max_clock_skew(Duration::from_secs(s));
        }
        fake.router()
    }
}

/// Where to listen (shared by every fake).
#[derive(Args, Debug, Clone)]
struct Listen {
    /// Loopback address to bind; anything else is refused.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind (0 picks a free one).
    #[arg(long, short, default_value_t = 0)]
    port: u16,
    /// Serve `GET /__mock/requests`: the requests received so far and the open connections.
    #[arg(long)]
    record: bool,
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
    /// Leave out the fields real OpenAI responses carry beyond the bare shape
    /// (system_fingerprint, service_tier, refusal, annotations, logprobs: null).
    #[arg(long)]
    no_extras: bool,
    /// Answer every chat completion with a 429 rate-limit error carrying `Retry-After: SECS`.
    #[arg(long, value_name = "SECS")]
    rate_limit: Option<u64>,
}

impl OpenAiArgs {
    fn router(self) -> Router {
        let mut fake = FakeOpenAi::new()
            .prefix(&self.prefix)
            .chunks(self.chunks)
            .chunk_delay(Duration::from_millis(self.chunk_delay_ms))
            .extras(!self.no_extras);
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
        match self.rate_limit {
            None => fake.router(),
            Some(secs) => {
                let reply = openai_error(
                    429,
                    "Rate limit reached for requests",
                    "requests",
                    Some("rate_limit_exceeded"),
                )
                .header("retry-after", &secs.to_string());
                Router::new()
                    .reply(
                        http::Method::POST,
                        &format!("{}/chat/completions", self.prefix),
                        reply,
                    )
                    .merge(fake.router())
            }
        }
    }
}

/// `GET /__mock/requests` in front of `router`, reading the server started later from `cell`.
fn recording(router: Router, cell: Arc<OnceLock<FakeServer>>) -> Router {
    Router::new()
        .get("/__mock/requests", move |_| {
            let cell = cell.clone();
            async move {
                let Some(server) = cell.get() else {
                    return Reply::json(503, &json!({"error": "not started"}));
                };
                let requests: Vec<Value> = server
                    .requests()
                    .iter()
                    .filter(|r| r.path != "/__mock/requests")
                    .map(|r| {
                        let body = r.json().unwrap_or_else(|_| Value::String(r.body_text()));
                        json!({"method": r.method.as_str(), "path": r.path, "body": body})
                    })
                    .collect();
                Reply::json(
                    200,
                    &json!({
                        // this inspection request's own connection is not counted
                        "open_connections": server.open_connections().saturating_sub(1),
                        "requests": requests,
                    }),
                )
            }
        })
        .merge(router)
}

#[derive(Args, Debug)]
struct HfInferenceArgs {
    #[command(flatten)]
    listen: Listen,
    /// A token of every text answer (repeatable; default: " Hello", "!").
    #[arg(long = "token", value_name = "TEXT")]
    tokens: Vec<String>,
    /// The special token ending each stream.
    #[arg(long, default_value = "</s>")]
    end_token: String,
    /// End streams without a special token (finish reason `length`).
    #[arg(long)]
    no_end_token: bool,
    /// Answer the first N inference requests with 503 "currently loading".
    #[arg(long, default_value_t = 0)]
    loading: usize,
    /// The `estimated_time` of loading answers, in seconds.
    #[arg(long, default_value_t = 0.1)]
    estimated_time: f64,
    /// An image URL returned by the Together route (repeatable; default: the route answers 404).
    #[arg(long = "together-url", value_name = "URL")]
    together_urls: Vec<String>,
    /// Require `Authorization: Bearer KEY`.
    #[arg(long, env = "LLMUX_MOCK_API_KEY")]
    api_key: Option<String>,
    /// Delay between stream events, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
}

impl HfInferenceArgs {
    fn router(self) -> Router {
        let mut fake = llmux_testkit::hf_inference::FakeHfInference::new()
            .loading(self.loading, self.estimated_time)
            .chunk_delay(Duration::from_millis(self.chunk_delay_ms))
            .end_token((!self.no_end_token).then_some(self.end_token.as_str()));
        if !self.tokens.is_empty() {
            fake = fake.tokens(self.tokens);
        }
        if !self.together_urls.is_empty() {
            fake = fake.together_urls(self.together_urls);
        }
        if let Some(k) = self.api_key {
            fake = fake.api_key(k);
        }
        fake.router()
    }
}

#[derive(Args, Debug)]
struct HuggingChatArgs {
    #[command(flatten)]
    listen: Listen,
    /// Route prefix (`""` serves chat-ui at the root).
    #[arg(long, default_value = "/chat")]
    prefix: String,
    /// Required `hf-chat` cookie value.
    #[arg(long, default_value = llmux_testkit::huggingchat::DEFAULT_COOKIE)]
    cookie: String,
    /// Accept requests without cookies.
    #[arg(long, conflicts_with = "cookie")]
    no_auth: bool,
    /// A served model id (repeatable; default: the fake's three models).
    #[arg(long = "model", short, value_name = "MODEL")]
    models: Vec<String>,
    /// Reply text.
    #[arg(long)]
    reply: Option<String>,
    /// Reply `echo: <inputs>` instead of a fixed text.
    #[arg(long, conflicts_with = "reply")]
    echo: bool,
    /// Number of stream tokens.
    #[arg(long, default_value_t = 3)]
    chunks: usize,
    /// Delay between answer lines, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Title sent on the first message of a conversation.
    #[arg(long)]
    title: Option<String>,
    /// Route generations to serve: v1, v2 or both.
    #[arg(long, default_value = "v1")]
    api: String,
}

impl HuggingChatArgs {
    fn router(self) -> Router {
        use llmux_testkit::huggingchat::{FakeHuggingChat, FakeModel};
        let mut fake = FakeHuggingChat::new()
            .prefix(&self.prefix)
            .cookie(self.cookie)
            .chunks(self.chunks)
            .chunk_delay(Duration::from_millis(self.chunk_delay_ms))
            .api(self.api != "v2", self.api != "v1");
        if self.no_auth {
            fake = fake.no_auth();
        }
        if !self.models.is_empty() {
            fake = fake.models(self.models.into_iter().map(FakeModel::text));
        }
        if let Some(r) = self.reply {
            fake = fake.reply(r);
        }
        if self.echo {
            fake = fake.echo();
        }
        if let Some(t) = self.title {
            fake = fake.title(t);
        }
        fake.router()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (listen, router) = match cli.command {
        Command::Openai(args) => (args.listen.clone(), args.router()),
        Command::Amigochat(args) => (args.listen.clone(), args.router()),
        Command::Flowgpt(args) => (args.listen.clone(), args.router()),
        Command::HfInference(args) => (args.listen.clone(), args.router()),
        Command::Huggingchat(args) => (args.listen.clone(), args.router()),
        Command::Gradio(args) => (args.listen.clone(), args.router()),
        // @mock-dispatch (cargo xtask new-provider inserts arms above this marker)
    };
    let cell = Arc::new(OnceLock::new());
    let router = if listen.record {
        recording(router, cell.clone())
    } else {
        router
    };
    let addr = SocketAddr::from((listen.host, listen.port));
    let server = match FakeServer::try_start_at(router, addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("llmux-mock: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", server.url(""));
    // kept for the recording route; never dropped before the process ends
    let _ = cell.set(server);
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
