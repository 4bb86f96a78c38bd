//! The exact-match response cache of `POST /v1/chat/completions`.
//!
//! A request opts in with `x-llmux-cache: use` (or a [`CacheConfig::enabled_models`] rule names
//! its model; `x-llmux-cache: skip` opts out of a rule). Its key ([`cache_key`]) is a SHA-256
//! over the canonical JSON of the request's semantic fields, so the same question asked with
//! `stream` on or off, by another `user`, or with the fields in another order finds the same
//! entry. An entry is the answer's [`Chunk`]s (consecutive text coalesced), stored only when
//! the answer ended normally; a hit replays them through the same rendering as a live answer,
//! so a hit streams when the request streams, whichever way the entry was filled.
//!
//! Never stored: errors, answers cut short (client gone, upstream failed mid-stream), answers
//! with provider conversation state or a login prompt, empty answers, and the answers of
//! requests carrying their own credentials (`api_key`, cookies) or conversation state.
//!
//! Where entries live is a [`CacheStore`]: [`MemoryCache`] (bounded by bytes, per-entry TTL)
//! by default. A store that fails (a shared store being down) costs a warning and the cache
//! for that request, never the request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue};
use llmux::{ChatRequest, ChatStream, Chunk, Reasoning};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// Request header opting in (`use`) or out (`skip`); response header saying `hit` or `miss`.
pub const CACHE_HEADER: &str = "x-llmux-cache";
/// Prefix of every cache key; the version changes whenever the key or the entry format does.
pub const KEY_PREFIX: &str = "llmux:cache:v1:";
/// Default of [`CacheConfig::max_bytes`]: 64 MiB.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Default of [`CacheConfig::ttl`]: 1 hour.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(3600);
/// Longest wait for one store operation before the request goes on without the cache.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of the response cache ([`ServerConfig::cache`](crate::ServerConfig::cache)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Models whose requests are cached without asking (the model as the request names it,
    /// exactly; `"*"` = every model). A request still opts out with `x-llmux-cache: skip`.
    pub enabled_models: Vec<String>,
    /// How long an entry is kept (default 1 hour). Zero turns the cache off.
    pub ttl: Duration,
    /// Most bytes all entries take together (default 64 MiB; the least used go first, an
    /// answer larger than this is not stored). Zero turns the cache off.
    pub max_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled_models: Vec::new(),
            ttl: DEFAULT_CACHE_TTL,
            max_bytes: DEFAULT_CACHE_MAX_BYTES,
        }
    }
}

/// Why the cache store could not answer. The message must not contain secrets (it is logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheError(pub String);

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "response cache: {}", self.0)
    }
}

impl std::error::Error for CacheError {}

/// The future of a cache store operation.
pub type CacheFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CacheError>> + Send + 'a>>;

/// A keeper of cache entries by key. Asynchronous so that a shared store (Redis) can implement
/// it; the gateway bounds every call by a timeout of its own.
pub trait CacheStore: Send + Sync {
    /// The entry under `key`, or `None` when unknown or expired.
    fn get<'a>(&'a self, key: &'a str) -> CacheFuture<'a, Option<Bytes>>;
    /// Keeps `value` under `key` for `ttl` (replacing an older entry). A value the store has
    /// no room for may be dropped silently.
    fn put<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> CacheFuture<'a, ()>;
}

/// One entry of [`MemoryCache`].
#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Duration,
}

/// Expires each entry after its own TTL (reset when it is replaced).
struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The in-process store: at most `max_bytes` of keys and entries together (the least
/// recently and frequently used go first), each kept for the TTL it was stored with.
pub struct MemoryCache {
    max_bytes: u64,
    cache: moka::sync::Cache<String, Entry>,
}

impl MemoryCache {
    /// A cache of at most `max_bytes` of keys and entries.
    pub fn new(max_bytes: u64) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, v: &Entry| {
                u32::try_from(k.len().saturating_add(v.value.len())).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build();
        Self { max_bytes, cache }
    }

    /// Bytes of keys and entries held now (after pending evictions ran).
    pub fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_MAX_BYTES)
    }
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("entries", &self.cache.entry_count())
            .field("bytes", &self.cache.weighted_size())
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl CacheStore for MemoryCache {
    fn get<'a>(&'a self, key: &'a str) -> CacheFuture<'a, Option<Bytes>> {
        let found = self.cache.get(key).map(|e| e.value);
        Box::pin(async move { Ok(found) })
    }

    fn put<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> CacheFuture<'a, ()> {
        let size = (key.len() as u64).saturating_add(value.len() as u64);
        if size <= self.max_bytes && size <= u64::from(u32::MAX) && !ttl.is_zero() {
            self.cache.insert(key.to_owned(), Entry { value, ttl });
        }
        Box::pin(async move { Ok(()) })
    }
}

/// The semantic fields of a request, as the key hashes them.
#[derive(Serialize)]
struct KeyFields<'a> {
    model: &'a str,
    provider: Option<&'a str>,
    messages: &'a [llmux::Message],
    media: &'a [llmux::Media],
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<u32>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    stop: &'a [String],
    seed: Option<i64>,
    tools: &'a [llmux::Tool],
    tool_choice: Option<&'a llmux::ToolChoice>,
    parallel_tool_calls: Option<bool>,
    response_format: Option<&'a llmux::ResponseFormat>,
    tool_emulation: Option<bool>,
    prompt: Option<&'a str>,
    web_search: bool,
    conversation: Option<&'a llmux::Conversation>,
    /// Every other field (`logit_bias`, `max_completion_tokens`, `reasoning_effort`, …)
    /// except `stream_options`, which only shapes the rendering.
    extra: std::collections::BTreeMap<&'a str, &'a Value>,
}

/// Extra fields that change how an answer is delivered, not what it says.
const DELIVERY_EXTRAS: &[&str] = &["stream_options"];

/// The cache key of `req`: [`KEY_PREFIX`] and the hex SHA-256 of the canonical JSON (object
/// keys sorted, no whitespace) of its semantic fields: model, provider, messages (with media),
/// tools, `tool_choice`, `parallel_tool_calls`, `response_format`, the sampling fields, unknown
/// fields, `tool_emulation`, `prompt`, `web_search` and `conversation`. Not part of it: `stream`,
/// `stream_options`, `user`, credentials, the proxy and timeouts. `None` when a field cannot be
/// encoded.
pub fn cache_key(req: &ChatRequest) -> Option<String> {
    let fields = KeyFields {
        model: &req.model,
        provider: req.provider.as_deref(),
        messages: &req.messages,
        media: &req.media,
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: req.max_tokens,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        stop: &req.stop,
        seed: req.seed,
        tools: &req.tools,
        tool_choice: req.tool_choice.as_ref(),
        parallel_tool_calls: req.parallel_tool_calls,
        response_format: req.response_format.as_ref(),
        tool_emulation: req.tool_emulation,
        prompt: req.prompt.as_deref(),
        web_search: req.web_search,
        conversation: req.conversation.as_ref(),
        extra: req
            .extra
            .iter()
            .filter(|(k, _)| !DELIVERY_EXTRAS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v))
            .collect(),
    };
    let value = serde_json::to_value(&fields).ok()?;
    let mut hasher = Sha256::new();
    canonical(&value, &mut HashWriter(&mut hasher)).ok()?;
    let digest = hasher.finalize();
    let mut key = String::with_capacity(KEY_PREFIX.len() + 64);
    key.push_str(KEY_PREFIX);
    for b in digest.iter() {
        use std::fmt::Write;
        let _ = write!(key, "{b:02x}");
    }
    Some(key)
}

/// Feeds what is written into a hasher.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `v` as JSON with the keys of every object sorted (whatever map type serde_json was
/// built with), so that equal values always give equal bytes.
fn canonical(v: &Value, out: &mut impl std::io::Write) -> std::io::Result<()> {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.write_all(b"{")?;
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, k)?;
                out.write_all(b":")?;
                canonical(v, out)?;
            }
            out.write_all(b"}")
        }
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                canonical(v, out)?;
            }
            out.write_all(b"]")
        }
        scalar => Ok(serde_json::to_writer(&mut *out, scalar)?),
    }
}

/// What a request says about the cache in `x-llmux-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Directive {
    Use,
    Skip,
}

/// What a request's headers ask of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ask {
    directive: Option<Directive>,
    /// `Cache-Control: no-cache`: do not answer from the cache (but fill it).
    no_cache: bool,
    /// `Cache-Control: no-store`: neither answer from the cache nor fill it.
    no_store: bool,
}

impl Ask {
    /// Reads `x-llmux-cache` (`use` or `skip`, any case; another value is a 400 naming it) and
    /// the `no-cache` / `no-store` directives of `Cache-Control`.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut ask = Self {
            directive: directive(headers)?,
            ..Self::default()
        };
        for v in headers.get_all(http::header::CACHE_CONTROL) {
            for d in v.as_bytes().split(|b| *b == b',') {
                // a directive may carry a value (`no-cache="x"`); only its name matters here
                let name = d
                    .split(|b| *b == b'=')
                    .next()
                    .unwrap_or_default()
                    .trim_ascii();
                ask.no_cache |= name.eq_ignore_ascii_case(b"no-cache");
                ask.no_store |= name.eq_ignore_ascii_case(b"no-store");
            }
        }
        Ok(ask)
    }
}

fn directive(headers: &HeaderMap) -> Result<Option<Directive>, ApiError> {
    let Some(v) = headers.get(CACHE_HEADER) else {
        return Ok(None);
    };
    let v = v.as_bytes().trim_ascii();
    if v.eq_ignore_ascii_case(b"use") {
        Ok(Some(Directive::Use))
    } else if v.eq_ignore_ascii_case(b"skip") {
        Ok(Some(Directive::Skip))
    } else {
        Err(ApiError::bad_request(
            "invalid_header",
            format!("the `{CACHE_HEADER}` header must be `use` or `skip`"),
        )
        .with_param(CACHE_HEADER))
    }
}

/// Whether an answer came from the cache (the value of the response's `x-llmux-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Hit,
    Miss,
}

impl Status {
    /// `hit` or `miss`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Hit => "hit",
            Status::Miss => "miss",
        }
    }

    /// The response header value.
    pub fn header(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

/// The shared store of replicas: each entry under its key in Redis, expiring by its TTL
/// (Redis's own memory policy bounds the size).
struct RedisCache(crate::redis_client::RedisClient);

impl CacheStore for RedisCache {
    fn get<'a>(&'a self, key: &'a str) -> CacheFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let found = self
                .0
                .get(key)
                .await
                .map_err(|e| CacheError(e.to_string()))?;
            Ok(found.map(Bytes::from))
        })
    }

    fn put<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> CacheFuture<'a, ()> {
        Box::pin(async move {
            self.0
                .set(key, &value, ttl)
                .await
                .map_err(|e| CacheError(e.to_string()))
        })
    }
}

/// The gateway's cache: where entries live and its rules.
pub(crate) struct Cache {
    store: Arc<dyn CacheStore>,
    config: CacheConfig,
}

/// What the cache does for one request.
pub(crate) struct Plan {
    key: String,
    read: bool,
}

impl Cache {
    /// The cache `config` asks for (`None`: rules off, defaults for opted-in requests), in
    /// Redis when `redis` is given, else in memory; `None` when its TTL or size is zero.
    pub fn new(
        config: Option<&CacheConfig>,
        redis: Option<&crate::redis_client::RedisClient>,
    ) -> Option<Self> {
        let config = config.cloned().unwrap_or_default();
        if config.ttl.is_zero() || config.max_bytes == 0 {
            return None;
        }
        let store: Arc<dyn CacheStore> = match redis {
            Some(r) => Arc::new(RedisCache(r.clone())),
            None => Arc::new(MemoryCache::new(config.max_bytes)),
        };
        Some(Self { store, config })
    }

    /// Whether and how `req` uses the cache, given what its headers `ask`.
    pub fn plan(&self, ask: Ask, req: &ChatRequest) -> Option<Plan> {
        let wanted = match ask.directive {
            Some(Directive::Use) => true,
            Some(Directive::Skip) => false,
            None => self
                .config
                .enabled_models
                .iter()
                .any(|m| m == "*" || *m == req.model),
        };
        if !wanted {
            return None;
        }
        // answers to a caller's own credentials or conversation are the caller's alone
        let private = req.api_key.is_some() || req.cookies.is_some() || req.conversation.is_some();
        if ask.no_store || private {
            return None;
        }
        Some(Plan {
            key: cache_key(req)?,
            read: !ask.no_cache,
        })
    }

    /// The answer to `req`: replayed from the cache on a hit, else from `client`, recorded into
    /// the cache as it passes.
    pub async fn answer(
        &self,
        plan: Plan,
        client: &llmux::Client,
        req: ChatRequest,
        metrics: Option<&Metrics>,
    ) -> (ChatStream, Status) {
        let mut fill = true;
        if plan.read {
            match bounded(self.store.get(&plan.key)).await {
                Ok(Some(bytes)) => match serde_json::from_slice::<Vec<Chunk>>(&bytes) {
                    Ok(chunks) => {
                        if let Some(m) = metrics {
                            m.cache(true);
                        }
                        let replay = futures_util::stream::iter(chunks.into_iter().map(Ok));
                        return (Box::pin(replay), Status::Hit);
                    }
                    // written by another version, say: the fill below replaces it
                    Err(e) => tracing::warn!(error = %e, "unreadable response cache entry"),
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "response cache unavailable: answering without it");
                    fill = false;
                }
            }
        }
        if let Some(m) = metrics {
            m.cache(false);
        }
        let stream = client.chat(req);
        if !fill {
            return (stream, Status::Miss);
        }
        let store = self.store.clone();
        let recorded = record(
            stream,
            store,
            plan.key,
            self.config.ttl,
            self.config.max_bytes,
        );
        (recorded, Status::Miss)
    }
}

/// A store operation within [`STORE_TIMEOUT`].
async fn bounded<T>(f: CacheFuture<'_, T>) -> Result<T, CacheError> {
    match tokio::time::timeout(STORE_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(CacheError(format!(
            "no answer within {} s",
            STORE_TIMEOUT.as_secs()
        ))),
    }
}

/// Passes `inner` on and, when it ends normally, stores its chunks under `key`. An error, or
/// the stream being dropped before its end, stores nothing. The store is written before the
/// end is passed on, so the next identical request finds the entry.
fn record(
    inner: ChatStream,
    store: Arc<dyn CacheStore>,
    key: String,
    ttl: Duration,
    max_bytes: u64,
) -> ChatStream {
    Box::pin(async_stream::stream! {
        let mut inner = inner;
        let mut rec = Recorder::new(max_bytes);
        let mut failed = false;
        while let Some(item) = inner.next().await {
            match &item {
                Ok(chunk) => rec.push(chunk),
                Err(_) => failed = true,
            }
            yield item;
        }
        drop(inner);
        if let Some(entry) = rec.finish().filter(|_| !failed) {
            if let Err(e) = bounded(store.put(&key, entry, ttl)).await {
                tracing::warn!(error = %e, "could not store the answer in the response cache");
            }
        }
    })
}

/// The chunks of an answer being recorded, text coalesced.
struct Recorder {
    chunks: Vec<Chunk>,
    bytes: u64,
    max_bytes: u64,
    /// The answer must not be stored (too large, private state, login prompt).
    refused: bool,
}

impl Recorder {
    fn new(max_bytes: u64) -> Self {
        Self {
            chunks: Vec::new(),
            bytes: 0,
            max_bytes,
            refused: false,
        }
    }

    fn push(&mut self, chunk: &Chunk) {
        if self.refused {
            return;
        }
        let size = match chunk {
            // provider state must not reach another caller; a login prompt is not an answer
            Chunk::Conversation(_) | Chunk::LoginRequired { .. } => {
                self.refuse();
                return;
            }
            Chunk::Text(t) => t.len(),
            Chunk::Reasoning(r) => r.token.as_ref().map_or(0, String::len) + 32,
            other => serde_json::to_vec(other).map_or(0, |v| v.len()),
        };
        self.bytes = self.bytes.saturating_add(size as u64);
        if self.bytes > self.max_bytes {
            self.refuse();
            return;
        }
        match (self.chunks.last_mut(), chunk) {
            (Some(Chunk::Text(prev)), Chunk::Text(t)) => prev.push_str(t),
            (
                Some(Chunk::Reasoning(Reasoning {
                    token: Some(prev),
                    status: None,
                    label: None,
                })),
                Chunk::Reasoning(Reasoning {
                    token: Some(t),
                    status: None,
                    label: None,
                }),
            ) => prev.push_str(t),
            _ => self.chunks.push(chunk.clone()),
        }
    }

    fn refuse(&mut self) {
        self.refused = true;
        self.chunks = Vec::new();
    }

    /// The entry: the chunks as JSON, unless refused or without any output.
    fn finish(self) -> Option<Bytes> {
        if self.refused || !self.chunks.iter().any(Chunk::is_content) {
            return None;
        }
        serde_json::to_vec(&self.chunks).ok().map(Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux::{FinishReason, ProviderInfoChunk};

    fn parsed(body: &str) -> ChatRequest {
        crate::wire::chat_request(body.as_bytes(), false)
            .expect("valid request")
            .0
    }

    fn key(body: &str) -> String {
        cache_key(&parsed(body)).expect("key")
    }

    const BASE: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

    fn with(field: &str) -> String {
        format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],{field}}}"#)
    }

    #[test]
    fn same_request_same_key() {
        let k = key(BASE);
        assert!(k.starts_with(KEY_PREFIX), "{k}");
        assert_eq!(k.len(), KEY_PREFIX.len() + 64);
        assert!(k[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(k, key(BASE));
        assert_eq!(
            k,
            key(r#"{"messages":[{"content":"hi","role":"user"}],"model":"m"}"#)
        );
    }

    #[test]
    fn delivery_fields_do_not_change_the_key() {
        let k = key(BASE);
        for f in [
            r#""stream":true"#,
            r#""stream":false"#,
            r#""stream":true,"stream_options":{"include_usage":true}"#,
            r#""user":"someone""#,
        ] {
            assert_eq!(key(&with(f)), k, "{f}");
        }
    }

    #[test]
    fn every_semantic_field_changes_the_key() {
        let base = key(BASE);
        let fields = [
            r#""temperature":0.5"#,
            r#""top_p":0.9"#,
            r#""max_tokens":10"#,
            r#""max_completion_tokens":10"#,
            r#""presence_penalty":0.1"#,
            r#""frequency_penalty":0.1"#,
            r#""stop":"END""#,
            r#""seed":1"#,
            r#""logit_bias":{"50256":-100}"#,
            r#""provider":"openai-compat""#,
            r#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]"#,
            r#""parallel_tool_calls":false"#,
            r#""response_format":{"type":"json_object"}"#,
            r#""tool_emulation":true"#,
            r#""web_search":true"#,
            r#""conversation":{"id":"x"}"#,
            r#""reasoning_effort":"low""#,
        ];
        let mut seen = std::collections::HashSet::new();
        seen.insert(base.clone());
        for f in fields {
            let k = key(&with(f));
            assert!(
                seen.insert(k),
                "{f} must change the key, and differ from the others"
            );
        }
        let other_model = key(r#"{"model":"n","messages":[{"role":"user","content":"hi"}]}"#);
        let other_text = key(r#"{"model":"m","messages":[{"role":"user","content":"ho"}]}"#);
        let other_role = key(r#"{"model":"m","messages":[{"role":"system","content":"hi"}]}"#);
        let image = key(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}"#,
        );
        for k in [other_model, other_text, other_role, image] {
            assert!(seen.insert(k));
        }
        let with_tools = with(
            r#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]"#,
        );
        let mut choice: serde_json::Value = serde_json::from_str(&with_tools).expect("json");
        choice["tool_choice"] = serde_json::json!("required");
        assert_ne!(key(&choice.to_string()), key(&with_tools));
        let mut req = parsed(BASE);
        req.media
            .push(llmux::Media::from_bytes(vec![1u8, 2, 3], None));
        assert!(seen.insert(cache_key(&req).expect("key")), "media counts");
    }

    #[test]
    fn extras_are_canonical() {
        let a = key(&with(
            r#""metadata":{"a":1,"b":{"x":[1,2],"y":null}},"zeta":true"#,
        ));
        let b = key(&with(
            r#""zeta":true,"metadata":{"b":{"y":null,"x":[1,2]},"a":1}"#,
        ));
        assert_eq!(a, b);
        let c = key(&with(
            r#""metadata":{"a":1,"b":{"x":[2,1],"y":null}},"zeta":true"#,
        ));
        assert_ne!(a, c, "array order matters");
    }

    fn ask(pairs: &[(&'static str, &'static str)]) -> Ask {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        Ask::from_headers(&h).expect("valid headers")
    }

    #[test]
    fn credentials_and_state_are_not_cached() {
        let cache = Cache::new(None, None).expect("on by default");
        let plain = parsed(BASE);
        let use_it = ask(&[(CACHE_HEADER, "use")]);
        assert!(cache.plan(ask(&[]), &plain).is_none(), "opt-in");
        assert!(cache.plan(use_it, &plain).is_some());
        for f in [r#""api_key":"sk-secret""#, r#""conversation":{"id":"x"}"#] {
            let r = parsed(&with(f));
            assert!(cache.plan(use_it, &r).is_none(), "{f}");
        }
        let mut r = parsed(BASE);
        r.cookies = Some(llmux::Cookies::parse("a=1"));
        assert!(cache.plan(use_it, &r).is_none());
    }

    #[test]
    fn rules_and_cache_control() {
        let cache = Cache::new(
            Some(&CacheConfig {
                enabled_models: vec!["m".into()],
                ..CacheConfig::default()
            }),
            None,
        )
        .expect("on");
        let req = parsed(BASE);
        let other = parsed(r#"{"model":"n","messages":[{"role":"user","content":"hi"}]}"#);
        assert!(cache.plan(ask(&[]), &req).is_some_and(|p| p.read));
        assert!(cache.plan(ask(&[]), &other).is_none());
        assert!(cache.plan(ask(&[(CACHE_HEADER, "skip")]), &req).is_none());
        let no_cache = ask(&[("cache-control", "max-age=0, No-Cache")]);
        assert!(cache.plan(no_cache, &req).is_some_and(|p| !p.read));
        let no_store = ask(&[(CACHE_HEADER, "use"), ("cache-control", "no-store")]);
        assert!(cache.plan(no_store, &req).is_none());
        let split = ask(&[("cache-control", "private"), ("cache-control", "no-store")]);
        assert!(cache.plan(split, &req).is_none(), "repeated headers count");
        let star = Cache::new(
            Some(&CacheConfig {
                enabled_models: vec!["*".into()],
                ..CacheConfig::default()
            }),
            None,
        )
        .expect("on");
        assert!(star.plan(ask(&[]), &other).is_some());
        for off in [
            CacheConfig {
                max_bytes: 0,
                ..CacheConfig::default()
            },
            CacheConfig {
                ttl: Duration::ZERO,
                ..CacheConfig::default()
            },
        ] {
            assert!(Cache::new(Some(&off), None).is_none());
        }
    }

    #[test]
    fn directive_values() {
        assert_eq!(ask(&[]).directive, None);
        assert_eq!(
            ask(&[(CACHE_HEADER, "USE")]).directive,
            Some(Directive::Use)
        );
        assert_eq!(
            ask(&[(CACHE_HEADER, " skip")]).directive,
            Some(Directive::Skip)
        );
        let mut h = HeaderMap::new();
        h.insert(CACHE_HEADER, HeaderValue::from_static("yes"));
        let e = Ask::from_headers(&h).expect_err("bad");
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
        assert!(e.message.contains(CACHE_HEADER), "{}", e.message);
    }

    #[test]
    fn recorder_coalesces_and_refuses() {
        let provider = Chunk::Provider(ProviderInfoChunk {
            provider: "p".into(),
            label: "P".into(),
            url: String::new(),
            model: "m".into(),
            ignored_params: Vec::new(),
        });
        let mut r = Recorder::new(1 << 20);
        for c in [
            provider.clone(),
            Chunk::Reasoning(Reasoning::token("th")),
            Chunk::Reasoning(Reasoning::token("ink")),
            Chunk::text("Hel"),
            Chunk::text("lo"),
            Chunk::Finish(FinishReason::Stop),
        ] {
            r.push(&c);
        }
        let bytes = r.finish().expect("stored");
        let back: Vec<Chunk> = serde_json::from_slice(&bytes).expect("chunks");
        assert_eq!(
            back,
            vec![
                provider.clone(),
                Chunk::Reasoning(Reasoning::token("think")),
                Chunk::text("Hello"),
                Chunk::Finish(FinishReason::Stop),
            ]
        );

        let mut r = Recorder::new(1 << 20);
        r.push(&Chunk::text("hi"));
        r.push(&Chunk::Conversation(llmux::Conversation(
            serde_json::json!({"session": "secret"}),
        )));
        assert!(r.finish().is_none(), "conversation state");

        let mut r = Recorder::new(1 << 20);
        r.push(&Chunk::LoginRequired {
            label: "L".into(),
            url: "https://x".into(),
        });
        assert!(r.finish().is_none(), "login prompt");

        let mut r = Recorder::new(1 << 20);
        r.push(&provider);
        r.push(&Chunk::Finish(FinishReason::Stop));
        assert!(r.finish().is_none(), "no output");

        let mut r = Recorder::new(4);
        r.push(&Chunk::text("hello"));
        assert!(r.finish().is_none(), "too large");
    }

    fn block<T>(f: CacheFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(f)
            .expect("store answers")
    }

    #[test]
    fn memory_cache_bounds_bytes_and_ttl() {
        let c = MemoryCache::new(1000);
        let long = Duration::from_secs(60);
        block(c.put("a", Bytes::from_static(b"one"), long));
        assert_eq!(block(c.get("a")), Some(Bytes::from_static(b"one")));
        assert_eq!(block(c.get("b")), None);
        block(c.put("big", Bytes::from(vec![0u8; 2000]), long));
        assert_eq!(block(c.get("big")), None, "larger than the whole cache");
        for i in 0..20 {
            block(c.put(&format!("k{i}"), Bytes::from(vec![1u8; 200]), long));
        }
        assert!(c.weighted_size() <= 1000, "{}", c.weighted_size());

        let c = MemoryCache::new(1000);
        block(c.put("short", Bytes::from_static(b"x"), Duration::from_millis(30)));
        block(c.put("long", Bytes::from_static(b"y"), long));
        assert!(block(c.get("short")).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(block(c.get("short")), None, "expired");
        assert!(block(c.get("long")).is_some(), "its own ttl");
        assert!(!format!("{c:?}").is_empty());
    }

    #[test]
    fn replay_and_record_round_trip() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let store: Arc<dyn CacheStore> = Arc::new(MemoryCache::default());
            let ok: ChatStream = Box::pin(futures_util::stream::iter(vec![
                Ok(Chunk::text("a")),
                Ok(Chunk::text("b")),
            ]));
            let mut s = record(ok, store.clone(), "k".into(), DEFAULT_CACHE_TTL, 1 << 20);
            let mut n = 0;
            while let Some(c) = s.next().await {
                c.expect("ok");
                n += 1;
            }
            assert_eq!(n, 2, "passed on unchanged");
            let entry = store.get("k").await.expect("get").expect("stored");
            let chunks: Vec<Chunk> = serde_json::from_slice(&entry).expect("chunks");
            assert_eq!(chunks, vec![Chunk::text("ab")]);

            let failing: ChatStream = Box::pin(futures_util::stream::iter(vec![
                Ok(Chunk::text("a")),
                Err(llmux::Error::Upstream {
                    provider: "p".into(),
                    message: "boom".into(),
                }),
            ]));
            let mut s = record(
                failing,
                store.clone(),
                "e".into(),
                DEFAULT_CACHE_TTL,
                1 << 20,
            );
            while s.next().await.is_some() {}
            assert!(store.get("e").await.expect("get").is_none(), "errors");

            let long: ChatStream = Box::pin(futures_util::stream::iter(vec![
                Ok(Chunk::text("a")),
                Ok(Chunk::text("b")),
            ]));
            let mut s = record(long, store.clone(), "d".into(), DEFAULT_CACHE_TTL, 1 << 20);
            let _ = s.next().await;
            drop(s);
            assert!(
                store.get("d").await.expect("get").is_none(),
                "dropped early"
            );
        });
    }

    /// A store that is down: every call fails (`get` too, unless `get_works`).
    struct Down {
        get_works: bool,
        puts: std::sync::atomic::AtomicUsize,
    }

    impl CacheStore for Down {
        fn get<'a>(&'a self, _key: &'a str) -> CacheFuture<'a, Option<Bytes>> {
            let r = if self.get_works {
                Ok(None)
            } else {
                Err(CacheError("connection refused".into()))
            };
            Box::pin(async move { r })
        }

        fn put<'a>(&'a self, _key: &'a str, _v: Bytes, _ttl: Duration) -> CacheFuture<'a, ()> {
            self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Err(CacheError("connection refused".into())) })
        }
    }

    struct Fixed(llmux::ProviderInfo);

    impl llmux::Provider for Fixed {
        fn info(&self) -> &llmux::ProviderInfo {
            &self.0
        }

        fn chat(&self, _req: ChatRequest, _ctx: llmux::core::Context) -> ChatStream {
            Box::pin(futures_util::stream::iter(vec![Ok(Chunk::text("fine"))]))
        }
    }

    #[test]
    fn a_store_that_is_down_costs_only_the_cache() {
        let client = llmux::Client::builder()
            .ignore_env()
            .registrations(Vec::new())
            .with_provider(Arc::new(Fixed(llmux::ProviderInfo {
                name: "fixed".into(),
                working: true,
                default_model: "m".into(),
                models: vec!["m".into()],
                ..llmux::ProviderInfo::default()
            })))
            .build()
            .expect("client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for get_works in [false, true] {
            let down = Arc::new(Down {
                get_works,
                puts: std::sync::atomic::AtomicUsize::new(0),
            });
            let cache = Cache {
                store: down.clone(),
                config: CacheConfig::default(),
            };
            let req = parsed(BASE);
            let plan = cache
                .plan(ask(&[(CACHE_HEADER, "use")]), &req)
                .expect("plan");
            let text = rt.block_on(async {
                let (mut s, status) = cache.answer(plan, &client, req, None).await;
                assert_eq!(status, Status::Miss);
                let mut text = String::new();
                while let Some(c) = s.next().await {
                    if let Chunk::Text(t) = c.expect("the answer is served") {
                        text.push_str(&t);
                    }
                }
                text
            });
            assert_eq!(text, "fine");
            let puts = down.puts.load(std::sync::atomic::Ordering::SeqCst);
            // a failed read skips the fill; a failed fill is only a warning
            assert_eq!(puts, usize::from(get_works), "get_works = {get_works}");
        }
    }
}
