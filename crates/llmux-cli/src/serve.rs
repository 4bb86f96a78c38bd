//! `llmux serve`: the OpenAI-compatible gateway.

use std::net::SocketAddr;

use clap::Args;
use llmux::Secret;
use llmux_server::{CacheConfig, Gateway, ServerConfig};

use crate::config::{Settings, parse_bind};
use crate::exit::{self, CliError};
use crate::{App, env_var};

#[derive(Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// Listen address HOST:PORT [default: `server.bind`, else 127.0.0.1:1337].
    #[arg(long, value_name = "HOST:PORT", env = "LLMUX_BIND")]
    bind: Option<String>,
    /// Listen port (overrides the port of --bind; 0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Key clients must send (Authorization: Bearer KEY, or g4f-api-key: KEY).
    #[arg(
        long,
        value_name = "KEY",
        env = "LLMUX_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Serve this OpenAI-compatible upstream: sets the `openai-compat` provider's base URL
    /// (which enables it for routing) and puts it first in the priority list.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Do not serve the web chat page (`/` and `/chat` answer 404).
    #[arg(long)]
    no_ui: bool,
    /// Open the web chat page in the default browser once listening.
    #[arg(long, conflicts_with = "no_ui")]
    open: bool,
    /// Emulate `tools` and `response_format` with a prompt on providers that lack them, for
    /// requests that do not set `tool_emulation` themselves.
    #[arg(long)]
    pub tool_emulation: bool,
    /// Access-log format: `human` (default) or `json` (one JSON object per line).
    #[arg(long, value_enum, default_value_t = LogFormat::Human, env = "LLMUX_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Serve `GET /metrics` without the gateway key.
    #[arg(long)]
    metrics_public: bool,
    /// Share rate limits, usage, stored responses and the response cache with other replicas
    /// through this Redis (`redis://HOST:PORT/DB`) [default: `redis.url`].
    #[arg(
        long,
        value_name = "URL",
        env = "LLMUX_REDIS_URL",
        hide_env_values = true
    )]
    redis: Option<String>,
}

/// Log line format of `llmux serve`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line, fields at the top level.
    Json,
}

/// Gateway settings given on the command line or in the environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServeFlags {
    pub bind: Option<String>,
    pub port: Option<u16>,
    pub api_key: Option<String>,
    pub no_ui: bool,
    pub metrics_public: bool,
    pub redis: Option<String>,
}

impl ServeFlags {
    /// Only what the environment says (for `llmux config`).
    pub fn from_env() -> Self {
        Self {
            bind: env_var("LLMUX_BIND").filter(|v| !v.is_empty()),
            api_key: env_var("LLMUX_API_KEY"),
            redis: env_var("LLMUX_REDIS_URL").filter(|v| !v.is_empty()),
            ..Self::default()
        }
    }
}

impl From<&ServeArgs> for ServeFlags {
    fn from(a: &ServeArgs) -> Self {
        Self {
            bind: a.bind.clone(),
            port: a.port,
            api_key: a.api_key.clone(),
            no_ui: a.no_ui,
            metrics_public: a.metrics_public,
            redis: a.redis.clone(),
        }
    }
}

/// The gateway configuration: flags (and their environment variables) over the `[server]`
/// section over the defaults.
pub(crate) fn server_config(
    settings: &Settings,
    flags: &ServeFlags,
) -> Result<ServerConfig, CliError> {
    let s = &settings.file.server;
    let d = ServerConfig::default();
    let mut bind: SocketAddr = match (&flags.bind, &s.bind) {
        (Some(b), _) => parse_bind(b).map_err(|m| CliError::usage(format!("--bind: {m}")))?,
        (None, Some(b)) => parse_bind(b).map_err(CliError::usage)?,
        (None, None) => d.bind,
    };
    if let Some(p) = flags.port {
        bind.set_port(p);
    }
    let api_key = match &flags.api_key {
        Some(k) => Some(Secret::new(k.as_str())),
        None => s.api_key.clone(),
    }
    .filter(|k| !k.is_empty());
    let default_provider = s.default_provider.clone().or(d.default_provider);
    Ok(ServerConfig {
        bind,
        api_key,
        max_body_bytes: s.max_body_bytes.unwrap_or(d.max_body_bytes),
        allow_remote_media: s.allow_remote_media.unwrap_or(d.allow_remote_media),
        cors: s.cors.unwrap_or(d.cors),
        header_read_timeout: s.header_read_timeout.unwrap_or(d.header_read_timeout),
        default_provider,
        shutdown_grace: s.shutdown_grace.unwrap_or(d.shutdown_grace),
        ui: !flags.no_ui,
        responses_store_size: s.responses_store_size.unwrap_or(d.responses_store_size),
        responses_store_ttl: s.responses_store_ttl.unwrap_or(d.responses_store_ttl),
        cookies_dir: None,
        metrics: s.metrics.unwrap_or(d.metrics),
        metrics_public: flags.metrics_public || s.metrics_public.unwrap_or(d.metrics_public),
        keys: gateway_keys(settings)?,
        redis: redis_config(settings, flags)?,
        cache: settings.file.cache.as_ref().map(|c| {
            let d = CacheConfig::default();
            CacheConfig {
                enabled_models: c.models.clone(),
                ttl: c.ttl.unwrap_or(d.ttl),
                max_bytes: c.max_bytes.unwrap_or(d.max_bytes),
            }
        }),
    })
}

/// The `[[keys]]` of the config file.
fn gateway_keys(settings: &Settings) -> Result<Vec<llmux_server::KeyConfig>, CliError> {
    settings
        .file
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            k.to_key_config()
                .map_err(|m| CliError::usage(format!("config file: keys[{i}]: {m}")))
        })
        .collect()
}

/// `--redis` (or `LLMUX_REDIS_URL`) over `[redis]`.
fn redis_config(
    settings: &Settings,
    flags: &ServeFlags,
) -> Result<Option<llmux_server::RedisConfig>, CliError> {
    let r = &settings.file.redis;
    let url = match (&flags.redis, &r.url) {
        (Some(u), _) => u.clone(),
        (None, Some(u)) => u.expose().to_owned(),
        (None, None) => return Ok(None),
    };
    let mut config = llmux_server::RedisConfig::new(&url)
        .map_err(|m| CliError::usage(format!("--redis: {m}")))?;
    if let Some(t) = r.timeout {
        config.timeout = t;
    }
    if let Some(open) = r.limits_fail_open {
        config.limits_fail_open = open;
    }
    Ok(Some(config))
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called (not when
/// first polled), so a signal right after startup is not lost.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    if tokio::signal::ctrl_c().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
            eprintln!("llmux: shutting down");
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            eprintln!("llmux: shutting down");
        }
    }
}

/// The page's URL for a browser on this machine (an unspecified bind address becomes loopback).
fn page_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    format!("http://{}/", SocketAddr::new(ip, addr.port()))
}

/// Opens `url` in the default browser; a failure is only reported (the gateway runs on).
fn open_page(url: &str) {
    if let Err(e) = open::that_detached(url) {
        eprintln!("llmux: could not open a browser at {url}: {e}");
    }
}

/// Runs `llmux serve` until Ctrl-C / SIGTERM.
pub(crate) async fn run(app: &App, args: ServeArgs) -> Result<u8, CliError> {
    let mut config = server_config(&app.settings, &ServeFlags::from(&args))?;
    config.cookies_dir.clone_from(&app.cookies_dir);
    let client = app.client()?;
    let requested = config.bind;
    let open = config.api_key.is_none() && !requested.ip().is_loopback();
    let ui = config.ui;
    let shutdown = shutdown_signal();
    let bound = Gateway::new(client, config)
        .bind()
        .await
        .map_err(|e| CliError::new(exit::FAILURE, format!("cannot listen on {requested}: {e}")))?;
    let addr = bound.local_addr();
    eprintln!("llmux gateway listening on http://{addr}");
    if ui {
        eprintln!("llmux: web chat page at {}", page_url(addr));
    }
    if args.open {
        open_page(&page_url(addr));
    }
    if open {
        eprintln!(
            "llmux: warning: listening on a non-loopback address without an API key; anyone who can reach it uses your providers (set --api-key or LLMUX_API_KEY)"
        );
    }
    bound
        .serve(shutdown)
        .await
        .map_err(|e| CliError::new(exit::FAILURE, format!("gateway failed: {e}")))?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::FileConfig;

    fn settings(src: &str) -> Settings {
        Settings {
            file: FileConfig::parse(src, Path::new("c.toml")).expect("valid"),
            path: None,
            looked_at: None,
        }
    }

    #[test]
    fn cache_section_maps_onto_the_server_config() {
        let flags = ServeFlags::default();
        let none = server_config(&settings(""), &flags).expect("config");
        assert_eq!(none.cache, None, "no section, no rules");
        let c = server_config(
            &settings("[cache]\nmodels = [\"*\"]\nttl = \"10m\"\n"),
            &flags,
        )
        .expect("config")
        .cache
        .expect("rules");
        assert_eq!(c.enabled_models, ["*"]);
        assert_eq!(c.ttl, Duration::from_secs(600));
        assert_eq!(c.max_bytes, llmux_server::DEFAULT_CACHE_MAX_BYTES);
        let c = server_config(&settings("[cache]\nmax_bytes = 1000\n"), &flags)
            .expect("config")
            .cache
            .expect("rules");
        assert!(c.enabled_models.is_empty());
        assert_eq!(c.ttl, llmux_server::DEFAULT_CACHE_TTL);
        assert_eq!(c.max_bytes, 1000);
    }
}
