//! # llmux-cli
//!
//! The `llmux` command line over every provider compiled into the [`llmux`] facade:
//!
//! - `llmux serve` — the OpenAI-compatible gateway ([`llmux_server`]) on `127.0.0.1:1337`;
//! - `llmux chat` — streams an answer (or runs an interactive session);
//! - `llmux image` — generates images and saves them;
//! - `llmux embed -m MODEL TEXT...` — embeddings, one JSON line per input
//!   (`{"index","input","model","provider","embedding"}`);
//! - `llmux models`, `llmux providers` — listings; `llmux providers --check` asks every
//!   provider live which ones answer right now;
//! - `llmux config` — the effective configuration, secrets masked.
//!
//! Configuration comes from flags, then `LLMUX_*` environment variables, then a TOML file
//! ([`config`]). Exit codes are documented in [`exit`].
//!
//! The binary's `main` is [`main`]; everything can also be driven from code:
//!
//! ```
//! // lists the compiled-in providers as JSON on stdout (no network); 0 is success
//! let code = llmux_cli::run_from(["llmux", "providers", "--json"]);
//! assert_eq!(code, 0);
//! // a usage error, with clap's message on stderr
//! assert_eq!(llmux_cli::run_from(["llmux", "no-such-command"]), llmux_cli::exit::USAGE);
//! ```

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use llmux::Client;

pub mod config;
pub mod exit;

mod chat;
mod check;
mod commands;
mod cookies;
mod embed;
mod keys;
mod log_format;
mod markdown;
mod media;
mod repl;
mod serve;
mod term;
mod tools;

use config::{Overrides, Settings};
use exit::CliError;

/// The `llmux` command line.
#[derive(Parser, Debug)]
#[command(
    name = "llmux",
    version,
    about = "One command line and OpenAI-compatible gateway over many LLM chat providers",
    after_help = "Exit codes: 0 ok, 1 other failure, 2 usage/config, 3 no such provider/model, 4 authentication, 5 upstream/timeout, 130 interrupted."
)]
struct Cli {
    /// Configuration file [default: $LLMUX_CONFIG, else ~/.config/llmux/config.toml].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Proxy for upstream requests: http://, socks5://, socks5h://, `direct` or `env`.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "LLMUX_PROXY",
        hide_env_values = true
    )]
    proxy: Option<String>,
    /// Browser cookie files for providers (.har, .json exports, cookies.txt), re-read on change
    /// [default: ~/.config/llmux/cookies].
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "LLMUX_COOKIES_DIR",
        hide_env_values = true
    )]
    cookies_dir: Option<PathBuf>,
    /// More output: -v shows the provider, every failed attempt and token usage; -vv debug logs.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the OpenAI-compatible gateway (default 127.0.0.1:1337).
    Serve(serve::ServeArgs),
    /// Ask a question (streams the answer), or chat interactively without a prompt.
    Chat(chat::ChatArgs),
    /// Generate images and save them.
    Image(commands::ImageArgs),
    /// Embed texts: one JSON line per input (`llmux embed -m MODEL TEXT...`).
    Embed(embed::EmbedArgs),
    /// List models.
    Models(commands::ModelsArgs),
    /// List providers; `--check` asks each one live which work right now.
    Providers(check::ProvidersArgs),
    /// Show the effective configuration (secrets masked).
    Config(JsonFlag),
    /// Browser cookies for providers: import files, list what each provider gets.
    Cookies(cookies::CookiesArgs),
    /// Gateway keys: hash one for `[[keys]]`, or make a new one.
    Keys(keys::KeysArgs),
}

/// `--json` alone.
#[derive(Args, Debug)]
struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Parses seconds (`30`, `2.5`) into a positive duration.
pub(crate) fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if v <= 0.0 {
        return Err("must be greater than 0".into());
    }
    Duration::try_from_secs_f64(v).map_err(|_| format!("`{s}` is not a valid number of seconds"))
}

/// What every command gets: the configuration, the compiled-in providers and the terminal.
pub(crate) struct App {
    pub settings: Settings,
    pub regs: Vec<(&'static str, Vec<&'static str>)>,
    pub overrides: Overrides,
    pub verbose: u8,
    pub tty: term::Tty,
    /// The cookies directory (`--cookies-dir`, `LLMUX_COOKIES_DIR`, else the default).
    pub cookies_dir: Option<PathBuf>,
}

/// Reads the process environment.
pub(crate) fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

impl App {
    /// A client with the whole configuration applied.
    pub fn client(&self) -> Result<Client, CliError> {
        let builder = self
            .settings
            .client_builder(&self.regs, &env_var, &self.overrides)
            .map_err(CliError::usage)?;
        let builder = match &self.cookies_dir {
            Some(dir) => {
                let configured = self
                    .settings
                    .provider_configs(&self.regs, &env_var, &self.overrides)
                    .into_iter()
                    .chain(
                        self.settings
                            .instance_configs(&self.regs, &env_var)
                            .into_iter()
                            .map(|(n, _, c)| (n, c)),
                    )
                    .filter(|(_, c)| c.cookies.as_ref().is_some_and(|j| !j.is_empty()))
                    .map(|(n, _)| n)
                    .collect();
                // a look at the directory at most once a second, not per request (uploads through
                // the gateway are seen at once)
                let dir = std::sync::Arc::new(
                    llmux_cookies::CookieDir::new(dir).recheck_every(Duration::from_secs(1)),
                );
                builder.cookie_source(cookies::source(dir, configured))
            }
            None => builder,
        };
        builder.build().map_err(CliError::from)
    }
}

/// Keeps the OpenTelemetry exporter alive (and flushes it when dropped).
#[cfg(feature = "otel")]
type TelemetryGuard = Option<llmux_server::otel::OtelGuard>;
#[cfg(not(feature = "otel"))]
type TelemetryGuard = ();

/// The OTLP/HTTP traces endpoint from `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces` (the OpenTelemetry conventions).
#[cfg(feature = "otel")]
fn otlp_endpoint() -> Option<String> {
    if let Some(e) = env_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").filter(|e| !e.is_empty()) {
        return Some(e);
    }
    env_var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .filter(|e| !e.is_empty())
        .map(|e| format!("{}/v1/traces", e.trim_end_matches('/')))
}

/// Logging: `LLMUX_LOG` (an `EnvFilter`) over a default by verbosity; `serve` logs llmux's own
/// targets at info (the access log) and dependencies at warn, as `json` lines when asked, and
/// (feature `otel`) exports its spans when an OTLP endpoint is configured.
fn init_logging(verbose: u8, serve: Option<serve::LogFormat>) -> TelemetryGuard {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::prelude::*;
    let default = match (verbose, serve.is_some()) {
        (0 | 1, false) => "warn",
        (0 | 1, true) => "warn,llmux=info,llmux_server=info,llmux_cli=info",
        (2, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("LLMUX_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_timer(log_format::Timestamp)
        .with_writer(std::io::stderr);
    let fmt = if serve == Some(serve::LogFormat::Json) {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        fmt.with_target(false)
            .fmt_fields(log_format::Fields)
            .boxed()
    };
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    #[cfg(feature = "otel")]
    {
        let mut guard = None;
        let otel = match otlp_endpoint().filter(|_| serve.is_some()) {
            Some(endpoint) => match llmux_server::otel::layer(&endpoint, "llmux") {
                Ok((layer, g)) => {
                    guard = Some(g);
                    Some(layer)
                }
                Err(e) => {
                    eprintln!("llmux: warning: no OpenTelemetry export: {e}");
                    None
                }
            },
            None => None,
        };
        let _ = registry.with(otel).try_init();
        guard
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = registry.try_init();
    }
}

async fn dispatch(cli: Cli) -> Result<u8, CliError> {
    let regs: Vec<(&'static str, Vec<&'static str>)> = llmux::core::registrations()?
        .into_iter()
        .map(|r| (r.name, r.extra_origin_keys()))
        .collect();
    let known: Vec<&str> = regs.iter().map(|(n, _)| *n).collect();
    let settings = Settings::load(cli.config.as_deref(), &env_var, &known)?;
    let mut app = App {
        settings,
        regs,
        overrides: Overrides {
            upstream: None,
            proxy: cli.proxy,
            tool_emulation: false,
        },
        verbose: cli.verbose,
        tty: term::Tty::detect(),
        cookies_dir: cookies::resolve_dir(cli.cookies_dir),
    };
    app.settings
        .proxy(&app.overrides)
        .map_err(|m| CliError::usage(format!("--proxy: {m}")))?;
    match cli.command {
        Command::Serve(args) => {
            app.overrides.upstream = args.upstream.clone();
            app.overrides.tool_emulation = args.tool_emulation;
            serve::run(&app, args).await
        }
        Command::Chat(args) => chat::run(&app, args).await,
        Command::Image(args) => commands::image(&app, args).await,
        Command::Embed(args) => embed::run(&app, args).await,
        Command::Models(args) => commands::models(&app, args).await,
        Command::Providers(a) if a.check => check::run(&app, a).await,
        Command::Providers(a) => commands::providers(&app, a.json),
        Command::Config(a) => commands::show_config(&app, a.json),
        Command::Cookies(args) => cookies::run(&app, args),
        Command::Keys(args) => keys::run(args),
    }
}

/// Runs the command line given as `args` (the first item is the program name) and returns the
/// exit code; errors are printed to stderr.
pub fn run_from<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    let verbose = cli.verbose;
    let serving = match &cli.command {
        Command::Serve(a) => Some(a.log_format),
        _ => None,
    };
    // lives to the end: flushes the span exporter after the runtime is gone
    let _telemetry = init_logging(verbose, serving);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("llmux")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            CliError::new(
                exit::FAILURE,
                format!("cannot start the async runtime: {e}"),
            )
            .print(false);
            return exit::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // a pending stdin read must not keep the process alive
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) => {
            e.print(verbose > 0);
            e.code
        }
    }
}

/// The binary's entry point: runs the process arguments.
pub fn main() -> ExitCode {
    ExitCode::from(run_from(std::env::args_os()))
}
