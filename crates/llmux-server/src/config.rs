//! [`ServerConfig`]: what the gateway listens on and what it accepts.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use llmux_core::Secret;

use crate::keys::KeyConfig;
use crate::redis_client::RedisConfig;

/// Default listen address: `127.0.0.1:1337` (g4f's port, loopback only).
pub const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 1337);

/// Default request body limit: 32 MiB (room for a few base64 images).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Settings of a [`Gateway`](crate::Gateway).
///
/// `Debug` never shows the API key. Build it with struct-update syntax:
///
/// ```
/// use llmux_server::ServerConfig;
/// let config = ServerConfig {
///     api_key: Some("gateway-secret".into()),
///     ..ServerConfig::default()
/// };
/// assert!(!format!("{config:?}").contains("gateway-secret"));
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    /// Listen address (default `127.0.0.1:1337`). Any address is allowed; a non-loopback one
    /// exposes the gateway (and the providers' credentials behind it) to the network, so set
    /// [`ServerConfig::api_key`] then.
    pub bind: SocketAddr,
    /// Gateway key clients must send (`Authorization: Bearer`, `x-api-key` or `g4f-api-key`).
    /// `None` = no authentication. The key is never forwarded to a provider.
    pub api_key: Option<Secret>,
    /// Largest accepted request body, in bytes (default 32 MiB); larger bodies get a 413.
    pub max_body_bytes: usize,
    /// Accept `http(s)://` URLs in `image_url` parts and pass them on to the provider (the
    /// gateway itself never fetches them). Default `false`: only `data:` URIs are accepted.
    pub allow_remote_media: bool,
    /// Answer CORS preflights and send `access-control-allow-origin: *` (default `true`).
    pub cors: bool,
    /// Longest time a client may take to send the request head (default 10 s). The body has
    /// its own fixed limit of 60 s.
    pub header_read_timeout: Duration,
    /// Provider used when a request names none (neither `provider` nor a `provider:model`
    /// prefix). `None` = automatic routing by model.
    pub default_provider: Option<String>,
    /// How long [`BoundGateway::serve`](crate::BoundGateway::serve) lets open requests and
    /// streams finish after the shutdown signal before cutting them (default 30 s).
    pub shutdown_grace: Duration,
    /// Serve the web chat page at `/` and `/chat` (default `true`). The page's files never
    /// need the gateway key; the page asks for it and sends it on its API calls.
    pub ui: bool,
    /// Most responses `/v1/responses` keeps in memory for `GET /v1/responses/{id}` and
    /// `previous_response_id` (default 1000; the least recently used go first). `0` turns
    /// storage off: responses are not kept and their ids answer 404.
    pub responses_store_size: usize,
    /// How long a stored response is kept (default 1 hour).
    pub responses_store_ttl: Duration,
    /// Where `POST /v1/upload_cookies` stores browser cookie files (`None`: uploads are
    /// refused with 404). The CLI passes its cookies directory.
    pub cookies_dir: Option<std::path::PathBuf>,
    /// Count requests, attempts, tokens and breaker states, and serve them at `GET /metrics`
    /// (default `true`).
    pub metrics: bool,
    /// Serve `GET /metrics` without the gateway key (default `false`: it needs the key when one
    /// is set).
    pub metrics_public: bool,
    /// Gateway keys with their own models, providers, limits and usage (in addition to
    /// [`ServerConfig::api_key`], which acts as an unlimited admin key named `default`). When
    /// both are empty the gateway needs no key.
    pub keys: Vec<KeyConfig>,
    /// Share rate limits, usage, the Responses store and the response cache with other
    /// replicas through Redis (`None`: all state is in this process).
    pub redis: Option<RedisConfig>,
    /// Rules of the response cache of `POST /v1/chat/completions` (see the `cache` module):
    /// models cached without asking, TTL and size. `None` (the default) = no rules: only
    /// requests sending `x-llmux-cache: use` are cached, with the default TTL (1 h) and size
    /// (64 MiB).
    pub cache: Option<crate::cache::CacheConfig>,
}

/// Default of [`ServerConfig::responses_store_size`].
pub const DEFAULT_RESPONSES_STORE_SIZE: usize = 1000;
/// Default of [`ServerConfig::responses_store_ttl`].
pub const DEFAULT_RESPONSES_STORE_TTL: Duration = Duration::from_secs(3600);

impl ServerConfig {
    /// The response store this configuration asks for (`None` when off): in Redis when
    /// `redis` is given, else in memory.
    pub(crate) fn responses_store(
        &self,
        redis: Option<&crate::redis_client::RedisClient>,
    ) -> Option<std::sync::Arc<dyn crate::responses::store::ResponseStore>> {
        let size = std::num::NonZeroUsize::new(self.responses_store_size)?;
        if self.responses_store_ttl.is_zero() {
            return None;
        }
        if let Some(client) = redis {
            return Some(std::sync::Arc::new(
                crate::responses::store::RedisStore::new(client.clone(), self.responses_store_ttl),
            ));
        }
        Some(std::sync::Arc::new(
            crate::responses::store::MemoryStore::new(size, self.responses_store_ttl),
        ))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: DEFAULT_BIND,
            api_key: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allow_remote_media: false,
            cors: true,
            header_read_timeout: Duration::from_secs(10),
            default_provider: None,
            shutdown_grace: Duration::from_secs(30),
            ui: true,
            responses_store_size: DEFAULT_RESPONSES_STORE_SIZE,
            responses_store_ttl: DEFAULT_RESPONSES_STORE_TTL,
            cookies_dir: None,
            metrics: true,
            metrics_public: false,
            keys: Vec::new(),
            redis: None,
            cache: None,
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("allow_remote_media", &self.allow_remote_media)
            .field("cors", &self.cors)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("default_provider", &self.default_provider)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("ui", &self.ui)
            .field("responses_store_size", &self.responses_store_size)
            .field("responses_store_ttl", &self.responses_store_ttl)
            .field("cookies_dir", &self.cookies_dir)
            .field("metrics", &self.metrics)
            .field("metrics_public", &self.metrics_public)
            .field("keys", &self.keys)
            .field("redis", &self.redis)
            .field("cache", &self.cache)
            .finish()
    }
}
