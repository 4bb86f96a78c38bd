//! The [`Provider`] trait, its metadata, and the `inventory`-backed registry.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::chunk::ChatStream;
use crate::config::{ProviderConfig, Timeouts};
use crate::embedding::{EmbeddingRequest, EmbeddingResponse};
use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::request::ChatRequest;

/// A boxed, `Send` future (keeps [`Provider`] object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One upstream origin a provider talks to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// Key (`base`, `hub`, …); env var `LLMUX_<NAME>_<KEY>_URL`.
    pub key: String,
    /// Default URL.
    pub default: String,
}

/// Static metadata of a provider instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProviderInfo {
    /// llmux name (`openai-compat`, `microsoft-phi-4`, …).
    pub name: String,
    /// g4f class name, accepted as an alias (`Microsoft_Phi_4`).
    pub g4f_name: String,
    /// Display label.
    pub label: String,
    /// Home page.
    pub url: String,
    /// Advertised as usable: automatic routing skips providers that are not.
    pub working: bool,
    /// Needs credentials.
    pub needs_auth: bool,
    /// Streams token deltas.
    pub supports_stream: bool,
    /// Honours system messages.
    pub supports_system_message: bool,
    /// Uses earlier messages.
    pub supports_message_history: bool,
    /// Model used when none is asked for.
    pub default_model: String,
    /// Default model for image input.
    pub default_vision_model: Option<String>,
    /// Default model for image generation.
    pub default_image_model: Option<String>,
    /// Known models (discovery may add more).
    pub models: Vec<String>,
    /// Alias → model id.
    pub model_aliases: BTreeMap<String, String>,
    /// Models that generate images.
    pub image_models: Vec<String>,
    /// Models that accept images.
    pub vision_models: Vec<String>,
    /// Models that accept audio.
    pub audio_models: Vec<String>,
    /// Upstream origins (each overridable by configuration / environment).
    pub origins: Vec<Origin>,
    /// What the provider honours beyond plain chat.
    pub capabilities: Capabilities,
}

/// What a provider honours beyond plain chat. Routing uses it so that a request field is
/// either honoured or refused, never dropped silently (see the facade's `capability` module).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Speaks OpenAI's chat-completions wire format: every request field, modelled or not
    /// (`logprobs`, `modalities`, `metadata`, …), reaches the upstream verbatim, and so do
    /// every response field back.
    pub openai_wire: bool,
    /// Native function calling (`tools`, `tool_choice`, `parallel_tool_calls`, tool messages).
    pub tools: bool,
    /// Native structured output (`response_format` `json_object` / `json_schema`).
    pub structured_output: bool,
    /// Sampling fields the upstream takes (`temperature`, `top_p`, `max_tokens`, `stop`,
    /// `seed`, `presence_penalty`, `frequency_penalty`, `user`); the others are ignored and named
    /// in the gateway's `x-llmux-ignored-params`. Unused when `openai_wire` is set.
    pub params: &'static [&'static str],
    /// Keys of [`ChatRequest::extra`] the provider understands (image `width`, …). Unused when
    /// `openai_wire` is set (everything is forwarded).
    pub options: &'static [&'static str],
    /// Answers embeddings requests ([`Provider::embed`]).
    pub embeddings: bool,
}

impl Capabilities {
    /// An upstream that speaks OpenAI's wire format with native tools and structured output.
    pub const OPENAI: Capabilities = Capabilities {
        openai_wire: true,
        tools: true,
        structured_output: true,
        params: &[],
        options: &[],
        embeddings: false,
    };

    /// A provider without tools or structured output that takes these sampling fields and
    /// `extra` options.
    pub const fn plain(
        params: &'static [&'static str],
        options: &'static [&'static str],
    ) -> Capabilities {
        Capabilities {
            openai_wire: false,
            tools: false,
            structured_output: false,
            params,
            options,
            embeddings: false,
        }
    }

    /// The same capabilities with [`Capabilities::embeddings`] on.
    pub const fn with_embeddings(mut self) -> Capabilities {
        self.embeddings = true;
        self
    }
}

impl ProviderInfo {
    /// Every model id this provider lists (models, image models, vision and audio models), deduplicated.
    pub fn all_models(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let iter = std::iter::once(&self.default_model)
            .filter(|m| !m.is_empty())
            .chain(&self.models)
            .chain(&self.image_models)
            .chain(&self.vision_models)
            .chain(&self.audio_models);
        for m in iter {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }

    /// The origin keys other than `base` (for environment lookup).
    pub fn origin_keys(&self) -> Vec<&str> {
        self.origins.iter().map(|o| o.key.as_str()).collect()
    }

    /// g4f's `get_model`: empty → default model; alias → target; else the model must be listed
    /// (in `known`, or in [`ProviderInfo::all_models`] when `known` is `None`) unless the provider
    /// lists no models at all.
    pub fn resolve_model(&self, requested: &str, known: Option<&[String]>) -> Result<String> {
        if requested.is_empty() {
            return Ok(self.default_model.clone());
        }
        if let Some(target) = self.alias_target(requested) {
            return Ok(target.to_owned());
        }
        let own;
        let known = match known {
            Some(k) => k,
            None => {
                own = self.all_models();
                &own
            }
        };
        if known.is_empty() || known.iter().any(|m| m == requested) {
            return Ok(requested.to_owned());
        }
        if let Some(m) = known.iter().find(|m| m.eq_ignore_ascii_case(requested)) {
            return Ok(m.clone());
        }
        Err(Error::ModelNotSupported {
            provider: self.name.clone(),
            model: requested.to_owned(),
            valid: known.to_vec(),
        })
    }

    /// The alias target of `name` (case-insensitive), if it is an alias.
    pub fn alias_target(&self, name: &str) -> Option<&str> {
        self.model_aliases
            .get(name)
            .map(String::as_str)
            .or_else(|| {
                self.model_aliases
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
            })
    }

    /// True when the provider lists `model` as an id or alias (case-insensitive).
    pub fn serves(&self, model: &str, discovered: &[String]) -> bool {
        // the lists of `all_models`, walked in place (routing calls this for every provider on
        // every request: no allocation)
        let mut listed = std::iter::once(&self.default_model)
            .filter(|m| !m.is_empty())
            .chain(&self.models)
            .chain(&self.image_models)
            .chain(&self.vision_models)
            .chain(&self.audio_models)
            .chain(discovered);
        self.alias_target(model).is_some() || listed.any(|m| m.eq_ignore_ascii_case(model))
    }
}

/// What a provider gets for one call: the shared HTTP client, set up with this call's timeouts
/// and deadline.
#[derive(Clone, Debug)]
pub struct Context {
    /// HTTP client for this call.
    pub http: HttpClient,
}

impl Context {
    /// A context over `http`.
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    /// The call's timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.http.timeouts()
    }
}

/// A downloaded media file.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// MIME type from the response.
    pub mime: String,
    /// The bytes.
    pub data: Bytes,
}

/// A chat provider: mostly pure translation between [`ChatRequest`] and an upstream protocol.
///
/// Object-safe; the registry stores `Arc<dyn Provider>`. Implementations build their body with
/// `async_stream::try_stream!` and return it boxed.
pub trait Provider: Send + Sync + 'static {
    /// Static metadata.
    fn info(&self) -> &ProviderInfo;

    /// Model discovery (may use the network; implementations cache). Defaults to the static list.
    fn models<'a>(&'a self, _ctx: &'a Context) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move { Ok(self.info().all_models()) })
    }

    /// Answers a chat request as a stream of chunks.
    fn chat(&self, request: ChatRequest, ctx: Context) -> ChatStream;

    /// Answers an embeddings request (providers with [`Capabilities::embeddings`] override it).
    fn embed<'a>(
        &'a self,
        _request: EmbeddingRequest,
        _ctx: &'a Context,
    ) -> BoxFuture<'a, Result<EmbeddingResponse>> {
        Box::pin(async move {
            Err(Error::Unsupported {
                provider: self.info().name.clone(),
                param: "input".into(),
                help: "this provider does not support embeddings; choose one that does \
                    (e.g. `openai-compat` or `huggingface-inference`)"
                    .into(),
            })
        })
    }

    /// Downloads a generated media URL, with this provider's credentials where the URL needs them.
    fn download<'a>(&'a self, url: &'a str, ctx: &'a Context) -> BoxFuture<'a, Result<Downloaded>> {
        Box::pin(async move {
            let name = &self.info().name;
            let resp = ctx.http.get(url).provider(name).send().await?;
            let resp = resp.error_for_status().await?;
            let mime = resp
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_owned();
            let data = resp.bytes().await?;
            Ok(Downloaded { mime, data })
        })
    }
}

/// A provider crate's registration, collected with `inventory`: the one place where a provider
/// declares its name, g4f name and origins ([`Registration::info`] hands them to its
/// [`ProviderInfo`]).
///
/// ```
/// use std::sync::Arc;
/// use llmux_core::{ChatRequest, ChatStream, Context, Provider, ProviderConfig, ProviderInfo, Registration};
///
/// struct Mine { info: ProviderInfo }
/// impl Provider for Mine {
///     fn info(&self) -> &ProviderInfo { &self.info }
///     fn chat(&self, _: ChatRequest, _: Context) -> ChatStream { Box::pin(llmux_core::futures_util::stream::empty()) }
/// }
///
/// const REGISTRATION: Registration = Registration {
///     name: "mine",
///     g4f_name: "Mine",
///     origins: &[("base", "https://api.example.com"), ("hub", "https://hub.example.com")],
///     build: |_cfg| Arc::new(Mine { info: REGISTRATION.info() }),
/// };
/// llmux_core::inventory::submit! { REGISTRATION }
///
/// let p = (REGISTRATION.build)(ProviderConfig::named("mine"));
/// assert_eq!(p.info().g4f_name, "Mine");
/// assert_eq!(p.info().origin_keys(), ["base", "hub"]);
/// assert_eq!(REGISTRATION.extra_origin_keys(), ["hub"]);
/// // the registry holds it
/// assert!(llmux_core::registrations().is_ok_and(|r| r.iter().any(|r| r.name == "mine")));
/// ```
#[derive(Debug)]
pub struct Registration {
    /// llmux name.
    pub name: &'static str,
    /// g4f class name.
    pub g4f_name: &'static str,
    /// Every upstream origin as `(key, default URL)`, `base` first; each is overridable with
    /// `LLMUX_<NAME>_<KEY>_URL`.
    pub origins: &'static [(&'static str, &'static str)],
    /// Builds an instance from its configuration.
    pub build: fn(ProviderConfig) -> Arc<dyn Provider>,
}

impl Registration {
    /// The origin keys other than `base` (for [`ProviderConfig::from_lookup`]).
    pub fn extra_origin_keys(&self) -> Vec<&'static str> {
        self.origins
            .iter()
            .map(|(key, _)| *key)
            .filter(|key| *key != "base")
            .collect()
    }

    /// Metadata with this registration's name, g4f name (also the label) and origins; every
    /// other field default. Providers fill in the rest: `ProviderInfo { models, ..reg.info() }`.
    pub fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: self.name.to_owned(),
            g4f_name: self.g4f_name.to_owned(),
            label: self.g4f_name.to_owned(),
            origins: Origin::list(self.origins),
            ..ProviderInfo::default()
        }
    }
}

impl Origin {
    /// Origins from `(key, default URL)` pairs.
    pub fn list(pairs: &[(&str, &str)]) -> Vec<Origin> {
        pairs
            .iter()
            .map(|(key, default)| Origin {
                key: (*key).to_owned(),
                default: (*default).to_owned(),
            })
            .collect()
    }
}

inventory::collect!(Registration);

/// The registrations linked into this binary, sorted by name. Duplicate names are an error.
pub fn registrations() -> Result<Vec<&'static Registration>> {
    let mut all: Vec<&'static Registration> = inventory::iter::<Registration>.into_iter().collect();
    all.sort_by_key(|r| r.name);
    for pair in all.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(Error::invalid(format!(
                "two provider crates register the name `{}`; remove one of them",
                pair[0].name
            )));
        }
    }
    Ok(all)
}

/// How long a failed discovery is remembered before the next attempt.
pub const DISCOVERY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// A per-instance cache of discovered models (see [`DiscoveryCache`]).
pub type ModelCache = DiscoveryCache<Vec<String>>;

/// A cache of one discovered value (models, a Space's Gradio version…): one fetch at a time,
/// successes kept for the process lifetime; a failure is remembered for
/// [`DISCOVERY_RETRY_AFTER`] so that routing does not hit a dead upstream on every request.
#[derive(Debug)]
pub struct DiscoveryCache<T> {
    cell: OnceCell<T>,
    failed: std::sync::Mutex<Option<(std::time::Instant, Error)>>,
}

impl<T> Default for DiscoveryCache<T> {
    fn default() -> Self {
        Self {
            cell: OnceCell::new(),
            failed: std::sync::Mutex::new(None),
        }
    }
}

impl<T: Clone> DiscoveryCache<T> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached value, or runs `fetch` (concurrent callers wait for the same fetch). A
    /// failure is returned again without fetching for [`DISCOVERY_RETRY_AFTER`].
    pub async fn get_or_fetch<F, Fut>(&self, fetch: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        if let Some(v) = self.cell.get() {
            return Ok(v.clone());
        }
        if let Some((at, e)) = self.lock_failed().as_ref() {
            if at.elapsed() < DISCOVERY_RETRY_AFTER {
                return Err(e.clone());
            }
        }
        let result = self.cell.get_or_try_init(fetch).await.cloned();
        if let Err(e) = &result {
            *self.lock_failed() = Some((std::time::Instant::now(), e.clone()));
        }
        result
    }

    fn lock_failed(&self) -> std::sync::MutexGuard<'_, Option<(std::time::Instant, Error)>> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value, if any.
    pub fn get(&self) -> Option<&T> {
        self.cell.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "p".into(),
            default_model: "d".into(),
            models: vec!["d".into(), "Big-Model".into()],
            model_aliases: [("big".to_owned(), "Big-Model".to_owned())].into(),
            ..ProviderInfo::default()
        }
    }

    #[test]
    fn resolves_like_g4f() {
        let i = info();
        assert_eq!(i.resolve_model("", None).ok().as_deref(), Some("d"));
        assert_eq!(
            i.resolve_model("BIG", None).ok().as_deref(),
            Some("Big-Model")
        );
        assert_eq!(
            i.resolve_model("big-model", None).ok().as_deref(),
            Some("Big-Model")
        );
        assert!(matches!(
            i.resolve_model("nope", None),
            Err(Error::ModelNotSupported { .. })
        ));
        let open = ProviderInfo::default();
        assert_eq!(open.resolve_model("any", None).ok().as_deref(), Some("any"));
    }

    #[tokio::test]
    async fn model_cache_fetches_once_and_remembers_errors_briefly() {
        let failing = ModelCache::new();
        let r: Result<Vec<String>> = failing
            .get_or_fetch(|| async { Err(Error::invalid("x")) })
            .await;
        assert!(r.is_err());
        let again = failing
            .get_or_fetch(|| async { Ok(vec!["m".to_owned()]) })
            .await;
        assert!(again.is_err(), "a recent failure is not retried at once");
        let cache = ModelCache::new();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        for _ in 0..3 {
            let v = cache
                .get_or_fetch(|| async {
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(vec!["m".to_owned()])
                })
                .await;
            assert_eq!(v.ok(), Some(vec!["m".to_owned()]));
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
