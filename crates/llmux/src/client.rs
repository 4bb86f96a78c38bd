//! [`Client`]: provider instances, configuration and the entry points `chat` / `complete`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use llmux_core::http::{HttpClient, HttpConfig, Proxy};
use llmux_core::{
    ChatRequest, ChatResponse, ChatStream, Context, Cookies, Downloaded, Error, Provider,
    ProviderConfig, ProviderInfo, Registration, Result, Timeouts,
};
use serde::Serialize;
use tokio::time::Instant;

use crate::fallback;
use crate::health::{AttemptObserver, Health, HealthConfig, ModelHealth};
use crate::resolve;

/// Cookies supplied at call time, per provider (see [`ClientBuilder::cookie_source`]).
///
/// Called before each attempt on a provider when the request carries no cookies of its own;
/// `Ok(Some(jar))` hands `jar` to that provider with the request, `Ok(None)` adds nothing, and an
/// error (e.g. [`Error::MissingAuth`] naming an expired cookie) fails that attempt, so routing
/// falls back to the next provider.
pub type CookieSource = Arc<dyn Fn(&ProviderInfo) -> Result<Option<Cookies>> + Send + Sync>;

/// A built provider with its configured `enabled` and `tool_emulation`.
type Built = (Arc<dyn Provider>, Option<bool>, Option<bool>);

/// One provider instance known to a [`Client`].
#[derive(Clone)]
pub(crate) struct Entry {
    pub provider: Arc<dyn Provider>,
    /// Used by automatic routing (configuration, else the provider's `working` flag).
    pub enabled: bool,
    /// Position in the priority order.
    pub rank: usize,
    /// `tool_emulation` from this provider's configuration.
    pub tool_emulation: Option<bool>,
}

impl Entry {
    pub fn info(&self) -> &ProviderInfo {
        self.provider.info()
    }
}

/// Provider listing entry: static metadata plus whether automatic routing uses it.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderListing {
    /// Metadata.
    #[serde(flatten)]
    pub info: ProviderInfo,
    /// Used by automatic routing.
    pub enabled: bool,
}

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Text chat.
    Chat,
    /// Image generation.
    Image,
}

/// Model listing entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelListing {
    /// Model id.
    pub id: String,
    /// Provider serving it.
    pub provider: String,
    /// Chat or image model.
    pub kind: ModelKind,
    /// Accepts images.
    pub vision: bool,
    /// Accepts audio.
    pub audio: bool,
    /// The provider is used by automatic routing.
    pub enabled: bool,
}

pub(crate) struct Inner {
    pub entries: Vec<Entry>,
    pub http: HttpClient,
    pub timeouts: Timeouts,
    pub shuffle: bool,
    pub max_retries: u32,
    /// Emulate tools / structured output where a request does not say (see [`crate::emulation`]).
    pub tool_emulation: bool,
    pub aliases: BTreeMap<String, String>,
    /// Routing results that needed discovery (see [`resolve::RouteCache`]).
    pub routes: resolve::RouteCache,
    /// Per-provider cookies looked up at call time.
    pub cookie_source: Option<CookieSource>,
    /// Live health and circuit breakers (see [`crate::health`]).
    pub health: Arc<Health>,
}

/// The llmux client: picks providers by name or model, streams chunks, falls back.
///
/// Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field(
                "providers",
                &self
                    .inner
                    .entries
                    .iter()
                    .map(|e| &e.info().name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client with every compiled-in provider, configured from the environment.
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    /// Answers `request` as a stream of chunks, falling back across providers before the first
    /// content chunk (never after it).
    pub fn chat(&self, request: ChatRequest) -> ChatStream {
        fallback::chat(self.clone(), request)
    }

    /// Answers `request` and accumulates the whole response.
    pub async fn complete(&self, request: ChatRequest) -> Result<ChatResponse> {
        llmux_core::collect(self.chat(request)).await
    }

    /// Embeds texts (or token arrays) with the first provider serving `request.model` that
    /// answers embeddings, falling back to the next one on failure.
    ///
    /// Against a fake OpenAI-compatible upstream on 127.0.0.1 (from `llmux-testkit`):
    ///
    /// ```
    /// # #[cfg(feature = "openai-compat")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use llmux::{Client, EmbeddingRequest, ProviderConfig, Proxy};
    /// use llmux_testkit::openai::FakeOpenAi;
    ///
    /// let upstream = FakeOpenAi::new().models(["text-embedding-3-small"]).start().await;
    /// let client = Client::builder()
    ///     .ignore_env()
    ///     .proxy(Proxy::Direct)
    ///     .provider("openai-compat", ProviderConfig::default().with_base_url(upstream.url("/v1")))
    ///     .build()?;
    /// let req = EmbeddingRequest::new("openai-compat:text-embedding-3-small", ["hello", "world"]);
    /// let answer = client.embed(req).await?;
    /// assert_eq!(answer.provider, "openai-compat");
    /// assert_eq!(answer.embeddings.len(), 2);
    /// # Ok(()) }
    /// # #[cfg(not(feature = "openai-compat"))]
    /// # fn main() {}
    /// ```
    pub async fn embed(
        &self,
        request: llmux_core::EmbeddingRequest,
    ) -> Result<llmux_core::EmbeddingResponse> {
        crate::embed::embed(self, request).await
    }

    /// Provider instances, in priority order.
    pub fn providers(&self) -> Vec<ProviderListing> {
        self.inner
            .entries
            .iter()
            .map(|e| ProviderListing {
                info: e.info().clone(),
                enabled: e.enabled,
            })
            .collect()
    }

    /// A provider instance by llmux name or g4f name (case-insensitive).
    pub fn provider(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.find(name).map(|e| e.provider.clone())
    }

    pub(crate) fn find(&self, name: &str) -> Option<&Entry> {
        self.inner.entries.iter().find(|e| {
            e.info().name.eq_ignore_ascii_case(name) || e.info().g4f_name.eq_ignore_ascii_case(name)
        })
    }

    /// A context for one call with these timeouts and deadline.
    pub(crate) fn context(&self, timeouts: Timeouts, deadline: Instant) -> Context {
        Context::new(
            self.inner
                .http
                .with_timeouts(timeouts)
                .with_deadline(deadline),
        )
    }

    /// A context for one chat call: its timeouts, deadline and (optional) proxy.
    pub(crate) fn call_context(
        &self,
        timeouts: Timeouts,
        deadline: Instant,
        proxy: Option<&llmux_core::Secret>,
    ) -> Context {
        let ctx = self.context(timeouts, deadline);
        match proxy {
            Some(p) => Context::new(ctx.http.with_proxy(Proxy::Url(p.clone()))),
            None => ctx,
        }
    }

    /// Live health of every (provider, model) tried so far, sorted by provider and model.
    pub fn health(&self) -> Vec<ModelHealth> {
        self.inner.health.snapshot()
    }

    /// Opens the circuit breaker of `(provider, model)` for `open_for`, as if this client had
    /// seen it fail (an entry already open longer stays so). Gateways use it to share breaker
    /// state between replicas; nothing happens when the breaker is disabled.
    pub fn open_breaker(
        &self,
        provider: &str,
        model: &str,
        open_for: Duration,
        rate_limited: bool,
    ) {
        self.inner
            .health
            .open_for(provider, model, open_for, rate_limited);
    }

    /// The circuit-breaker settings.
    pub fn health_config(&self) -> HealthConfig {
        self.inner.health.config
    }

    /// Sends every attempt outcome to `observer` (metrics). Only one can be set; `false` when
    /// one already was.
    pub fn observe(&self, observer: Arc<dyn AttemptObserver>) -> bool {
        self.inner.health.observer.set(observer).is_ok()
    }

    /// The client's default timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.inner.timeouts
    }

    /// Models of every provider (discovered where the provider can, else its static list).
    /// Discovery failures fall back to the static list.
    pub async fn models(&self) -> Vec<ModelListing> {
        let mut out = Vec::new();
        for (entry, discovered) in self.discover_all(false).await {
            let discovered = discovered.unwrap_or_default();
            let info = entry.info();
            let mut ids = info.all_models();
            for m in discovered {
                if !ids.contains(&m) {
                    ids.push(m);
                }
            }
            for id in ids {
                out.push(ModelListing {
                    kind: if info.image_models.contains(&id) {
                        ModelKind::Image
                    } else {
                        ModelKind::Chat
                    },
                    vision: info.vision_models.contains(&id),
                    audio: info.audio_models.contains(&id),
                    provider: info.name.clone(),
                    enabled: entry.enabled,
                    id,
                });
            }
        }
        out
    }

    /// Models of one provider.
    pub async fn provider_models(&self, name: &str) -> Result<Vec<String>> {
        let entry = self
            .find(name)
            .ok_or_else(|| resolve::provider_not_found(self, name))?;
        let ctx = self.discovery_context();
        let mut ids = entry.info().all_models();
        for m in entry.provider.models(&ctx).await? {
            if !ids.contains(&m) {
                ids.push(m);
            }
        }
        Ok(ids)
    }

    pub(crate) fn discovery_context(&self) -> Context {
        let t = Timeouts {
            total: self.inner.timeouts.total.min(Duration::from_secs(20)),
            first_byte: self.inner.timeouts.first_byte.min(Duration::from_secs(15)),
            ..self.inner.timeouts
        };
        self.context(t, Instant::now() + t.total)
    }

    /// Runs model discovery concurrently on every provider (or only the enabled ones): each
    /// entry's models, or the error its discovery ended with (and no models).
    pub(crate) async fn discover_all(
        &self,
        enabled_only: bool,
    ) -> Vec<(Entry, std::result::Result<Vec<String>, Error>)> {
        let ctx = self.discovery_context();
        let entries = self
            .inner
            .entries
            .iter()
            .filter(|e| e.enabled || !enabled_only);
        let futures = entries.map(|e| {
            let ctx = ctx.clone();
            let e = e.clone();
            async move {
                let found = e.provider.models(&ctx).await;
                if let Err(err) = &found {
                    tracing::debug!(provider = %e.info().name, error = %err, "model discovery failed");
                }
                (e, found)
            }
        });
        futures_util::future::join_all(futures).await
    }

    /// Downloads a generated media URL through the provider that produced it (with its
    /// credentials, e.g. HuggingChat's cookies).
    pub async fn download(&self, provider: &str, url: &str) -> Result<Downloaded> {
        let entry = self
            .find(provider)
            .ok_or_else(|| resolve::provider_not_found(self, provider))?;
        let t = self.inner.timeouts;
        let ctx = self.context(t, Instant::now() + t.total);
        entry.provider.download(url, &ctx).await
    }
}

/// Builds a [`Client`].
///
/// ```
/// use llmux::{Client, ProviderConfig};
/// let client = Client::builder()
///     .provider("openai-compat", ProviderConfig::default().with_base_url("http://127.0.0.1:11434/v1"))
///     .build()
///     .expect("client");
/// assert!(client.provider("openai-compat").is_some());
/// ```
#[derive(Default)]
pub struct ClientBuilder {
    configs: BTreeMap<String, ProviderConfig>,
    instances: Vec<(String, String, ProviderConfig)>,
    explicit: Vec<Arc<dyn Provider>>,
    registrations: Option<Vec<&'static Registration>>,
    ignore_env: bool,
    http: HttpConfig,
    shuffle: bool,
    priority: Vec<String>,
    max_retries: Option<u32>,
    tool_emulation: bool,
    aliases: BTreeMap<String, String>,
    cookie_source: Option<CookieSource>,
    health: HealthConfig,
}

impl ClientBuilder {
    /// Looks up each provider's cookies at call time (a cookies directory that changes while
    /// the client runs): the source's cookies go with the request to that provider only, and
    /// only when the request has none; providers merge them over their configured cookies.
    pub fn cookie_source(mut self, source: CookieSource) -> Self {
        self.cookie_source = Some(source);
        self
    }

    /// Configures a compiled-in provider (merged over its environment configuration).
    pub fn provider(mut self, name: &str, config: ProviderConfig) -> Self {
        self.configs
            .entry(name.to_owned())
            .or_default()
            .merge(&config);
        self
    }

    /// Adds a named instance of provider `kind` (e.g. a second OpenAI-compatible server called
    /// `ollama`). Its environment prefix is `LLMUX_<NAME>_`.
    pub fn instance(mut self, name: &str, kind: &str, config: ProviderConfig) -> Self {
        self.instances
            .push((name.to_owned(), kind.to_owned(), config));
        self
    }

    /// Adds an already built provider (tests, custom providers).
    pub fn with_provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.explicit.push(provider);
        self
    }

    /// Uses exactly these registrations instead of every linked provider (`&[]` for none).
    pub fn registrations(mut self, regs: Vec<&'static Registration>) -> Self {
        self.registrations = Some(regs);
        self
    }

    /// Does not read `LLMUX_*` environment variables.
    pub fn ignore_env(mut self) -> Self {
        self.ignore_env = true;
        self
    }

    /// Default proxy.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.http.proxy = proxy;
        self
    }

    /// Default timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.http.timeouts = timeouts;
        self
    }

    /// Full HTTP settings.
    pub fn http_config(mut self, config: HttpConfig) -> Self {
        self.http = config;
        self
    }

    /// Shuffles candidates of equal priority for every call, as g4f does.
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = on;
        self
    }

    /// Providers tried first, in this order; the rest follow by name.
    pub fn priority<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.priority = names.into_iter().map(Into::into).collect();
        self
    }

    /// Emulates `tools` and `response_format` on providers without them for requests that do not
    /// say (`ChatRequest::tool_emulation`) and providers whose configuration does not either
    /// (option `tool_emulation`). Off by default; see the `emulation` module docs.
    pub fn tool_emulation(mut self, on: bool) -> Self {
        self.tool_emulation = on;
        self
    }

    /// Retries on one provider for retryable errors (connection failures, short Retry-After),
    /// before any content. Default 1.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// Circuit-breaker settings (see [`HealthConfig`]; on by default).
    pub fn health(mut self, config: HealthConfig) -> Self {
        self.health = config;
        self
    }

    /// Consecutive down-kind failures that open a provider's breaker (default 3).
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.health.failure_threshold = n;
        self
    }

    /// First cooldown of an opened breaker, doubling up to `max` on every reopening
    /// (defaults 30 s and 10 min).
    pub fn cooldown(mut self, first: Duration, max: Duration) -> Self {
        self.health.cooldown = first;
        self.health.max_cooldown = max;
        self
    }

    /// An extra model alias (`alias` → `model` or `provider:model`).
    pub fn alias(mut self, alias: impl Into<String>, target: impl Into<String>) -> Self {
        self.aliases.insert(alias.into(), target.into());
        self
    }

    fn env_config(&self, name: &str, extra: &[&str]) -> ProviderConfig {
        if self.ignore_env {
            ProviderConfig::named(name)
        } else {
            ProviderConfig::from_lookup(name, extra, |k| std::env::var(k).ok())
        }
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client> {
        let regs = match &self.registrations {
            Some(r) => r.clone(),
            None => llmux_core::registrations()?,
        };
        // (provider, `enabled` from configuration, `tool_emulation` from configuration)
        let mut providers: Vec<Built> = Vec::new();
        let emulation = |cfg: &ProviderConfig| {
            cfg.options
                .get("tool_emulation")
                .and_then(serde_json::Value::as_bool)
        };
        for reg in &regs {
            let mut cfg = self.env_config(reg.name, &reg.extra_origin_keys());
            if let Some(c) = self.configs.get(reg.name) {
                cfg.merge(c);
            }
            cfg.name = reg.name.to_owned();
            let (enabled, emu) = (cfg.enabled, emulation(&cfg));
            providers.push(((reg.build)(cfg), enabled, emu));
        }
        for (name, kind, config) in &self.instances {
            let reg = regs.iter().find(|r| r.name == kind).ok_or_else(|| {
                Error::invalid(format!(
                    "instance `{name}`: provider kind `{kind}` is not compiled in"
                ))
            })?;
            let mut cfg = self.env_config(name, &reg.extra_origin_keys());
            cfg.merge(config);
            cfg.name = name.clone();
            let (enabled, emu) = (cfg.enabled, emulation(&cfg));
            providers.push(((reg.build)(cfg), enabled, emu));
        }
        for p in &self.explicit {
            providers.push((p.clone(), None, None));
        }
        for (name, _) in self
            .configs
            .iter()
            .filter(|(n, _)| !regs.iter().any(|r| r.name == *n))
        {
            tracing::warn!(provider = %name, "configuration for a provider that is not compiled in");
        }

        // names must be unique
        let mut seen = std::collections::BTreeSet::new();
        for (p, _, _) in &providers {
            if !seen.insert(p.info().name.to_ascii_lowercase()) {
                return Err(Error::invalid(format!(
                    "two providers are named `{}`; give instances distinct names",
                    p.info().name
                )));
            }
        }

        let mut entries: Vec<Entry> = providers
            .into_iter()
            .map(|(provider, enabled, tool_emulation)| Entry {
                enabled: enabled.unwrap_or(provider.info().working),
                rank: usize::MAX,
                tool_emulation,
                provider,
            })
            .collect();
        entries.sort_by(|a, b| a.info().name.cmp(&b.info().name));
        for e in &mut entries {
            e.rank = self
                .priority
                .iter()
                .position(|p| p.eq_ignore_ascii_case(&e.info().name))
                .unwrap_or(usize::MAX);
        }
        entries.sort_by_key(|e| e.rank);

        let http = HttpClient::new(self.http.clone())?;
        Ok(Client {
            inner: Arc::new(Inner {
                entries,
                http,
                timeouts: self.http.timeouts,
                shuffle: self.shuffle,
                max_retries: self.max_retries.unwrap_or(1),
                tool_emulation: self.tool_emulation,
                aliases: self.aliases,
                routes: resolve::RouteCache::default(),
                cookie_source: self.cookie_source,
                health: Arc::new(Health::new(self.health)),
            }),
        })
    }
}
