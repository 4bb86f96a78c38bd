//! # llmux-cli
//!
//! The `llmux` command line over every provider compiled into the [`llmux`] facade:
//!
//! - `llmux serve` — the OpenAI-compatible gateway ([`llmux_server`]) on `127.0.0.1:1337`;
//! - `llmux chat` — streams an answer (or runs an interactive session);
//! - `llmux image` — generates images and saves them;
//! - `llmux embed -m MODEL TEXT...` — embeddings, one JSON line per input
//!   (`{"index","input","model","provider","embedding"}`);
//! - `llmux models`, `llmux providers` — listings;
//! - `llmux config` — the effective configuration, secrets masked.
//!
//! Configuration comes from flags, then `LLMUX_*` environment variables, then a TOML file
//! ([`config`]). Exit codes are documented in [`exit`].
//!
//! The binary's `main` is [`main`]; everything can also be driven from code:
//!
//! ```no_run
//! let code = llmux_cli::run_from(["llmux", "providers", "--json"]);
//! std::process::exit(i32::from(code));
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
mod commands;
mod cookies;
mod embed;
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
    /// List providers.
    Providers(JsonFlag),
    /// Show the effective configuration (secrets masked).
    Config(JsonFlag),
    /// Browser cookies for providers: import files, list what each provider gets.
    Cookies(cookies::CookiesArgs),
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
    pub regs: Vec<(&'static str, &'static [&'static str])>,
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
                let dir = std::sync::Arc::new(llmux_cookies::CookieDir::new(dir));
                builder.cookie_source(cookies::source(dir, configured))
            }
            None => builder,
        };
        builder.build().map_err(CliError::from)
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 | 1 => "warn",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("LLMUX_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn dispatch(cli: Cli) -> Result<u8, CliError> {
    let regs: Vec<(&'static str, &'static [&'static str])> = llmux::core::registrations()?
        .into_iter()
        .map(|r| (r.name, r.extra_origins))
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
        Command::Providers(a) => commands::providers(&app, a.json),
        Command::Config(a) => commands::show_config(&app, a.json),
        Command::Cookies(args) => cookies::run(&app, args),
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
    init_logging(verbose);
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
