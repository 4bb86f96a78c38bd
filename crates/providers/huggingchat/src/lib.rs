//! llmux provider `huggingchat` (g4f `HuggingChat`): logged-in access to
//! [HuggingChat](https://huggingface.co/chat) and any other deployment of Hugging Face's
//! [chat-ui](https://github.com/huggingface/chat-ui), with the browser session cookie `hf-chat`.
//!
//! * **Auth**: cookies (at least `hf-chat`) from the request, the configuration or
//!   `LLMUX_HUGGINGCHAT_COOKIES="hf-chat=…"`. Missing cookies, a 401/403 or a redirect to the
//!   login page give [`Error::MissingAuth`] saying which cookie to copy and from where; once the
//!   provider has talked to the server, a [`Chunk::LoginRequired`] precedes that error. No browser
//!   is ever launched.
//! * **Models**: discovered once per instance (the inline `models:[…]` literal of the chat page,
//!   or the v2 JSON route `GET /api/v2/models`), with g4f's static list as the fallback. Aliases
//!   such as `llama-3.3-70b`, `deepseek-r1` or `flux-dev` work. Image models (`FLUX.1-dev`,
//!   `FLUX.1-schnell`) run through HuggingChat's image-generation tool inside a conversation with
//!   the default text model.
//! * **Conversations**: one chat-ui conversation per model. The first turn creates it
//!   (`POST /conversation`), reads the id of its latest message (`__data.json`, decoded with
//!   [`devalue`], or `GET /api/v2/conversations/<id>`) and sends the whole history as one prompt;
//!   later turns reuse it and send only the new user message. The state is a
//!   [`Chunk::Conversation`] holding [`ConversationState`], handed back by the caller.
//! * **Answers**: JSON lines (`application/jsonl`) → text, reasoning, title, web-search sources,
//!   generated images ([`Image::needs_auth`](llmux_core::Image::needs_auth): fetch them with
//!   [`Provider::download`], which adds the cookies), finish. Media (`ChatRequest::media`, image
//!   parts) are uploaded as base64 `files`.
//!
//! # Configuration
//!
//! | setting | meaning |
//! |---|---|
//! | base origin (`LLMUX_HUGGINGCHAT_BASE_URL`) | URL of the chat-ui app, default `https://huggingface.co/chat`. A URL without a path (`http://localhost:3000`) is probed: chat-ui at `/chat` when that page exists, else at the root. |
//! | cookies (`LLMUX_HUGGINGCHAT_COOKIES`) | `hf-chat=…` (all given cookies are sent) |
//! | option `api` | `"v1"` (chat page + `__data.json`), `"v2"` (`/api/v2/…` JSON routes) or `"auto"` (default: v1 when the page has the `models:[…],oldModels:` literal, else v2 when `/api/v2/models` answers) |
//! | `default_model` | text model for empty requests and for image-tool conversations |
//!
//! ```
//! use llmux_core::{Cookies, Provider, ProviderConfig};
//! use llmux_provider_huggingchat::HuggingChat;
//!
//! let p = HuggingChat::new(
//!     ProviderConfig::named("huggingchat")
//!         .with_cookies(Cookies::parse("hf-chat=0b7e3f2a-…"))
//!         .with_option("api", "auto".into()),
//! );
//! assert!(p.info().working && p.info().needs_auth);
//! assert_eq!(
//!     p.info().alias_target("llama-3.3-70b"),
//!     Some("meta-llama/Llama-3.3-70B-Instruct")
//! );
//! ```
//!
//! # Where llmux differs from g4f
//!
//! * `qwen-2.5-72b` maps to `Qwen/Qwen2.5-72B-Instruct` (g4f maps it to the Coder 32B model by
//!   mistake). The aliases g4f's table keeps "for other providers" (`gemma-2-27b`, `qvq-72b`,
//!   `sd-3.5`, …) are left out: HuggingChat does not serve them.
//! * A `{"type":"status","status":"error"}` line is an [`Error::Upstream`] (g4f ignores it and
//!   ends silently); a stream that ends before `finalAnswer` is a protocol error instead of a
//!   silently truncated answer; lines that are not JSON are skipped (as in g4f).
//! * Uploaded files carry their detected MIME type as the part `Content-Type` (chat-ui uses it as
//!   the file type; g4f sends `application/octet-stream`) and a real file name (g4f sends
//!   `base64;None` for unnamed media).
//! * The conversation state is returned on every turn (with the refreshed message id), as in
//!   newer g4f. A conversation deleted upstream is replaced by a new one (with the whole
//!   history) instead of failing.
//! * A failed model discovery is retried after a short backoff (30 s, core's `ModelCache`)
//!   instead of keeping the fallback list for good as g4f does, and the
//!   default text model follows the server's list when the server does not serve g4f's default.
//! * `__data.json` answers that redirect to the login page, and create-conversation answers that
//!   are HTML instead of JSON, are reported as expired cookies.
//! * Final answers without a `webSearch` sources update use `finalAnswer.webSources`.

pub mod devalue;
mod updates;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use llmux_core::futures_util::{Stream, StreamExt};
use llmux_core::http::{Multipart, Response, StatusRules};
use llmux_core::provider::Origin;
use llmux_core::{
    BoxFuture, Capabilities, ChatRequest, ChatStream, Chunk, Context, Conversation, Cookies,
    Downloaded, Error, Media, ModelCache, Provider, ProviderConfig, ProviderInfo, Registration,
    Result, media, prompt,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::updates::{Step, Updates};

/// Provider name.
pub const NAME: &str = "huggingchat";
/// g4f class name (accepted as an alias).
pub const G4F_NAME: &str = "HuggingChat";
/// Default chat-ui app URL.
pub const DEFAULT_BASE_URL: &str = "https://huggingface.co/chat";
/// Name of the session cookie chat-ui needs.
pub const AUTH_COOKIE: &str = "hf-chat";
/// HuggingChat's image-generation tool id.
pub const IMAGE_TOOL_ID: &str = "000000000000000000000001";
/// Default text model.
pub const DEFAULT_MODEL: &str = "Qwen/Qwen2.5-72B-Instruct";
/// Default model when images are attached and no model is named.
pub const DEFAULT_VISION_MODEL: &str = "meta-llama/Llama-3.2-11B-Vision-Instruct";
/// Image models (served through the image-generation tool).
pub const IMAGE_MODELS: &[&str] = &[
    "black-forest-labs/FLUX.1-dev",
    "black-forest-labs/FLUX.1-schnell",
];
/// Text models used when discovery fails (g4f's fallback list, in order).
pub const FALLBACK_TEXT_MODELS: &[&str] = &[
    "Qwen/Qwen2.5-72B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct",
    "CohereForAI/c4ai-command-r-plus-08-2024",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
    "Qwen/QwQ-32B",
    "nvidia/Llama-3.1-Nemotron-70B-Instruct-HF",
    "Qwen/Qwen2.5-Coder-32B-Instruct",
    "meta-llama/Llama-3.2-11B-Vision-Instruct",
    "mistralai/Mistral-Nemo-Instruct-2407",
    "microsoft/Phi-3.5-mini-instruct",
];
/// Model aliases (alias → model id).
pub const MODEL_ALIASES: &[(&str, &str)] = &[
    ("qwen-2.5-72b", "Qwen/Qwen2.5-72B-Instruct"),
    ("llama-3", "meta-llama/Llama-3.3-70B-Instruct"),
    ("llama-3.3-70b", "meta-llama/Llama-3.3-70B-Instruct"),
    ("command-r-plus", "CohereForAI/c4ai-command-r-plus-08-2024"),
    ("deepseek-r1", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"),
    ("qwq-32b", "Qwen/QwQ-32B"),
    ("nemotron-70b", "nvidia/Llama-3.1-Nemotron-70B-Instruct-HF"),
    ("qwen-2.5-coder-32b", "Qwen/Qwen2.5-Coder-32B-Instruct"),
    ("llama-3.2-11b", "meta-llama/Llama-3.2-11B-Vision-Instruct"),
    ("mistral-nemo", "mistralai/Mistral-Nemo-Instruct-2407"),
    ("phi-3.5-mini", "microsoft/Phi-3.5-mini-instruct"),
    ("flux", "black-forest-labs/FLUX.1-dev"),
    ("flux-dev", "black-forest-labs/FLUX.1-dev"),
    ("flux-schnell", "black-forest-labs/FLUX.1-schnell"),
];

/// Largest HTML page / JSON document read from chat-ui.
const MAX_DOCUMENT: usize = 16 * 1024 * 1024;

/// One model's chat-ui conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConversation {
    /// chat-ui conversation id (a 24-hex-digit ObjectId on HuggingChat).
    #[serde(rename = "conversationId")]
    pub conversation_id: String,
    /// Id of the latest message when the state was produced (refreshed every turn).
    #[serde(rename = "messageId", default)]
    pub message_id: String,
}

/// The provider's conversation state (g4f's `Conversation`): model id → its conversation.
///
/// Serialised as `{"models": {"<model>": {"conversationId": "…", "messageId": "…"}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationState {
    /// One conversation per model.
    #[serde(default)]
    pub models: BTreeMap<String, ModelConversation>,
}

impl ConversationState {
    /// Reads handed-back state; anything unreadable is an empty state (as in g4f).
    pub fn from_conversation(c: Option<&Conversation>) -> Self {
        c.and_then(|c| serde_json::from_value(c.0.clone()).ok())
            .unwrap_or_default()
    }

    /// The state as a chunk payload.
    pub fn to_conversation(&self) -> Conversation {
        Conversation(serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

/// Which generation of chat-ui routes to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// The chat page's inline models and `__data.json` (chat-ui until mid-2025).
    V1,
    /// `/api/v2/models` and `/api/v2/conversations/<id>`.
    V2,
}

/// The `huggingchat` provider.
pub struct HuggingChat {
    inner: Arc<Inner>,
}

struct Inner {
    info: ProviderInfo,
    config: ProviderConfig,
    /// Configured base URL (no trailing `/`).
    base: String,
    /// `None` = auto.
    api_choice: Option<Api>,
    /// The chat-ui app URL, once known.
    app: OnceCell<String>,
    /// The page fetched by the mount probe, reused by discovery.
    page: Mutex<Option<String>>,
    models: ModelCache,
    /// Multimodal models found by discovery.
    vision: Mutex<Vec<String>>,
    /// Route generation found by discovery (auto mode).
    detected: Mutex<Option<Api>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// `scheme://host[:port]` of a URL (lower-cased).
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!("{scheme}://{host}").to_ascii_lowercase()
}

/// True when the URL has a path beyond `/`.
fn has_path(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split_once('/')
        .is_some_and(|(_, path)| !path.trim_matches('/').is_empty())
}

fn looks_like_html(body: &str) -> bool {
    let t = body.trim_start().get(..15).unwrap_or(body.trim_start());
    t.to_ascii_lowercase().starts_with("<!doctype") || t.to_ascii_lowercase().starts_with("<html")
}

impl HuggingChat {
    /// An instance for this configuration.
    pub fn new(config: ProviderConfig) -> Self {
        let name = if config.name.is_empty() {
            NAME.to_owned()
        } else {
            config.name.clone()
        };
        let base = config.origin("base", DEFAULT_BASE_URL);
        let api_choice = match config
            .option_str("api")
            .map(|s| s.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("v1") => Some(Api::V1),
            Some("v2") => Some(Api::V2),
            Some("auto") | None => None,
            Some(other) => {
                tracing::warn!(provider = %name, api = other, "unknown `api` option (use v1, v2 or auto); detecting");
                None
            }
        };
        let mut models = strings(FALLBACK_TEXT_MODELS);
        for m in &config.models {
            if !models.contains(m) {
                models.push(m.clone());
            }
        }
        let info = ProviderInfo {
            g4f_name: if name == NAME {
                G4F_NAME.into()
            } else {
                String::new()
            },
            label: "HuggingChat".into(),
            url: base.clone(),
            working: true,
            needs_auth: true,
            supports_stream: true,
            supports_system_message: false,
            supports_message_history: true,
            default_model: config
                .default_model
                .clone()
                .unwrap_or_else(|| DEFAULT_MODEL.into()),
            default_vision_model: Some(DEFAULT_VISION_MODEL.into()),
            default_image_model: IMAGE_MODELS.first().map(|m| (*m).to_owned()),
            models,
            model_aliases: MODEL_ALIASES
                .iter()
                .map(|(a, t)| ((*a).to_owned(), (*t).to_owned()))
                .collect(),
            image_models: strings(IMAGE_MODELS),
            vision_models: vec![DEFAULT_VISION_MODEL.into()],
            audio_models: Vec::new(),
            capabilities: Capabilities::plain(&[], &[]),
            origins: Origin::list(ORIGINS),
            name,
        };
        Self {
            inner: Arc::new(Inner {
                info,
                config,
                base,
                api_choice,
                app: OnceCell::new(),
                page: Mutex::new(None),
                models: ModelCache::new(),
                vision: Mutex::new(Vec::new()),
                detected: Mutex::new(None),
            }),
        }
    }
}

/// A discovered model: id and whether it accepts images.
type Found = Vec<(String, bool)>;

impl Inner {
    fn name(&self) -> &str {
        &self.info.name
    }

    /// Configuration cookies merged with the request's (the request wins).
    fn jar(&self, req_cookies: Option<&Cookies>) -> Cookies {
        let mut jar = self.config.cookies.clone().unwrap_or_default();
        if let Some(c) = req_cookies {
            jar.merge(c);
        }
        jar
    }

    fn login_url(&self) -> String {
        self.app.get().cloned().unwrap_or_else(|| self.base.clone())
    }

    fn cookie_howto(&self) -> String {
        let login = self.login_url();
        let host = origin_of(&login);
        format!(
            "log in at {login} in your browser, open the developer tools (F12) → Application/Storage → Cookies → {host}, copy the value of the `{AUTH_COOKIE}` cookie and set LLMUX_{}_COOKIES=\"{AUTH_COOKIE}=<value>\" (or pass it as ProviderConfig/ChatRequest cookies)",
            ProviderConfig::env_prefix(self.name()).trim_start_matches("LLMUX_")
        )
    }

    /// No `hf-chat` cookie at all.
    fn missing_cookie(&self) -> Error {
        Error::MissingAuth {
            provider: self.name().to_owned(),
            help: format!(
                "HuggingChat needs the `{AUTH_COOKIE}` session cookie: {}",
                self.cookie_howto()
            ),
            login_url: Some(self.login_url()),
        }
    }

    /// The server refused the cookies.
    fn refused(&self, what: &str) -> Error {
        Error::MissingAuth {
            provider: self.name().to_owned(),
            help: format!(
                "the server refused the `{AUTH_COOKIE}` cookie ({what}); it has expired or was logged out: {}",
                self.cookie_howto()
            ),
            login_url: Some(self.login_url()),
        }
    }

    /// Turns a non-2xx response into the typed error (401/403 → expired cookies).
    async fn status_error(&self, resp: Response) -> Error {
        let status = resp.status().as_u16();
        if !matches!(status, 401 | 403) {
            return resp.into_error(StatusRules::Generic).await;
        }
        let ct = resp.content_type().map(str::to_owned);
        let body = match resp.bytes().await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => return e,
        };
        let generic = llmux_core::http::status_error(
            self.name(),
            status,
            ct.as_deref(),
            &body,
            None,
            StatusRules::Generic,
        );
        if matches!(generic, Error::Cloudflare { .. }) {
            return generic;
        }
        match upstream_message(&body) {
            Some(m) => self.refused(&format!("HTTP {status}: {m}")),
            None => self.refused(&format!("HTTP {status}")),
        }
    }

    async fn checked(&self, resp: Response) -> Result<Response> {
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.status_error(resp).await)
        }
    }

    /// The chat-ui app URL: the configured base, or for a bare origin `<origin>/chat` when that
    /// page exists and the origin itself otherwise.
    async fn app(&self, ctx: &Context) -> Result<String> {
        self.app
            .get_or_try_init(|| async {
                if has_path(&self.base) {
                    return Ok(self.base.clone());
                }
                let probe = format!("{}/chat", self.base);
                let resp = ctx
                    .http
                    .get(&probe)
                    .provider(self.name())
                    .cookies(&self.jar(None))
                    .max_body(MAX_DOCUMENT)
                    .send()
                    .await?;
                if resp.status().as_u16() == 404 {
                    return Ok(self.base.clone());
                }
                if resp.status().is_success() {
                    if let Ok(page) = resp.text().await {
                        *lock(&self.page) = Some(page);
                    }
                }
                Ok(probe)
            })
            .await
            .cloned()
    }

    fn api(&self) -> Api {
        self.api_choice.or(*lock(&self.detected)).unwrap_or(Api::V1)
    }

    /// The chat page (reusing the one fetched by the mount probe).
    async fn page(&self, ctx: &Context, app: &str) -> Result<String> {
        if let Some(page) = lock(&self.page).take() {
            return Ok(page);
        }
        let resp = ctx
            .http
            .get(app)
            .provider(self.name())
            .cookies(&self.jar(None))
            .max_body(MAX_DOCUMENT)
            .send()
            .await?;
        self.checked(resp).await?.text().await
    }

    fn page_models(&self, html: &str) -> Result<devalue::InlineModels> {
        devalue::inline_models(html).map_err(|e| {
            Error::protocol(
                self.name(),
                format!("cannot read the chat page's models: {e}"),
                "",
            )
        })
    }

    /// Models from `GET /api/v2/models` (`{"json": [...]}`).
    async fn v2_models(&self, ctx: &Context, app: &str) -> Result<Found> {
        let resp = ctx
            .http
            .get(format!("{app}/api/v2/models"))
            .provider(self.name())
            .cookies(&self.jar(None))
            .max_body(MAX_DOCUMENT)
            .send()
            .await?;
        let v: Value = self.checked(resp).await?.json().await?;
        let list = v
            .get("json")
            .unwrap_or(&v)
            .as_array()
            .filter(|l| l.iter().all(|m| m.get("id").is_some_and(Value::is_string)))
            .ok_or_else(|| {
                Error::protocol(
                    self.name(),
                    "`/api/v2/models` is not a model list",
                    &v.to_string(),
                )
            })?;
        Ok(models_of(list))
    }

    /// Discovered text model ids (cached on success).
    async fn discover(&self, ctx: &Context) -> Result<Vec<String>> {
        self.models
            .get_or_fetch(|| async {
                let app = self.app(ctx).await?;
                let found = match self.api_choice {
                    Some(Api::V1) => {
                        models_of(&self.page_models(&self.page(ctx, &app).await?)?.models)
                    }
                    Some(Api::V2) => self.v2_models(ctx, &app).await?,
                    None => self.detect(ctx, &app).await?,
                };
                *lock(&self.vision) = found
                    .iter()
                    .filter(|(_, mm)| *mm)
                    .map(|(id, _)| id.clone())
                    .collect();
                Ok(found.into_iter().map(|(id, _)| id).collect())
            })
            .await
    }

    /// Auto mode: the chat page's `models:[…],oldModels:` literal means v1; otherwise
    /// `/api/v2/models` answering means v2; otherwise any models list in the page means v1.
    async fn detect(&self, ctx: &Context, app: &str) -> Result<Found> {
        let page = self.page(ctx, app).await;
        let inline = match &page {
            Ok(html) => self.page_models(html),
            Err(e) => Err(e.clone()),
        };
        if let Some(found) = inline.as_ref().ok().filter(|f| f.exact) {
            *lock(&self.detected) = Some(Api::V1);
            return Ok(models_of(&found.models));
        }
        match self.v2_models(ctx, app).await {
            Ok(found) => {
                *lock(&self.detected) = Some(Api::V2);
                Ok(found)
            }
            Err(e) => match inline {
                Ok(found) => {
                    *lock(&self.detected) = Some(Api::V1);
                    Ok(models_of(&found.models))
                }
                Err(_) => Err(e),
            },
        }
    }

    /// Text models known for this call: discovered (else the fallback list) plus configured ones;
    /// `true` when they were discovered.
    async fn text_models(&self, ctx: &Context) -> (Vec<String>, bool) {
        let (mut list, discovered) = match self.discover(ctx).await {
            Ok(list) => (list, true),
            Err(e) => {
                tracing::debug!(provider = %self.name(), error = %e, "model discovery failed; using the fallback list");
                (strings(FALLBACK_TEXT_MODELS), false)
            }
        };
        for m in &self.config.models {
            if !list.contains(m) {
                list.push(m.clone());
            }
        }
        (list, discovered)
    }

    /// The default text model: configured, else g4f's default unless the server lists other
    /// models only, then the server's first model.
    fn default_text_model(&self, text: &[String], discovered: bool) -> String {
        if let Some(m) = &self.config.default_model {
            return m.clone();
        }
        match text.first() {
            Some(first) if discovered && !text.iter().any(|m| m == DEFAULT_MODEL) => first.clone(),
            _ => DEFAULT_MODEL.to_owned(),
        }
    }

    fn default_vision_model(&self, text: &[String], discovered: bool) -> String {
        if !discovered || text.iter().any(|m| m == DEFAULT_VISION_MODEL) {
            return DEFAULT_VISION_MODEL.to_owned();
        }
        lock(&self.vision)
            .first()
            .cloned()
            .unwrap_or_else(|| DEFAULT_VISION_MODEL.to_owned())
    }

    /// `POST /conversation` → conversation id.
    async fn create_conversation(
        &self,
        ctx: &Context,
        app: &str,
        jar: &Cookies,
        model: &str,
    ) -> Result<String> {
        let resp = ctx
            .http
            .post(format!("{app}/conversation"))
            .provider(self.name())
            .cookies(jar)
            .header("origin", &origin_of(app))
            .header("referer", app)
            .json(&json!({ "model": model }))
            .send()
            .await?;
        if resp.status().as_u16() == 400 {
            return Err(match self.status_error(resp).await {
                Error::HttpStatus {
                    provider,
                    status,
                    message,
                } => Error::HttpStatus {
                    provider,
                    status,
                    message: format!("{message}: Model: {model}"),
                },
                other => other,
            });
        }
        let text = self.checked(resp).await?.text().await?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        match parsed
            .as_ref()
            .and_then(|v| v.get("conversationId"))
            .and_then(Value::as_str)
        {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ if parsed.is_none() && looks_like_html(&text) => {
                Err(self.refused("creating a conversation answered with an HTML page"))
            }
            _ => Err(Error::protocol(
                self.name(),
                "create-conversation answer has no `conversationId`",
                &text,
            )),
        }
    }

    /// The id of the conversation's latest message; `None` when the conversation is gone.
    async fn latest_message(
        &self,
        ctx: &Context,
        app: &str,
        jar: &Cookies,
        conversation: &str,
    ) -> Result<Option<String>> {
        let cid = updates::path_segment(conversation);
        match self.api() {
            Api::V1 => {
                let url =
                    format!("{app}/conversation/{cid}/__data.json?x-sveltekit-invalidated=11");
                let resp = ctx
                    .http
                    .get(url)
                    .provider(self.name())
                    .cookies(jar)
                    .max_body(MAX_DOCUMENT)
                    .send()
                    .await?;
                if resp.status().as_u16() == 404 {
                    return Ok(None);
                }
                let text = self.checked(resp).await?.text().await?;
                self.message_id_from_data(&text)
            }
            Api::V2 => {
                let resp = ctx
                    .http
                    .get(format!("{app}/api/v2/conversations/{cid}"))
                    .provider(self.name())
                    .cookies(jar)
                    .max_body(MAX_DOCUMENT)
                    .send()
                    .await?;
                if resp.status().as_u16() == 404 {
                    return Ok(None);
                }
                let v: Value = self.checked(resp).await?.json().await?;
                let id = v
                    .get("json")
                    .unwrap_or(&v)
                    .get("messages")
                    .and_then(Value::as_array)
                    .and_then(|m| m.last())
                    .and_then(|m| m.get("id"))
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| {
                        Error::protocol(
                            self.name(),
                            "conversation has no message with an `id`",
                            &v.to_string(),
                        )
                    })?;
                Ok(Some(id.to_owned()))
            }
        }
    }

    /// Reads the latest message id out of a `__data.json` body (SvelteKit's data stream).
    fn message_id_from_data(&self, body: &str) -> Result<Option<String>> {
        let doc = body
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .find(|v| {
                v.get("nodes").is_some()
                    || v.get("type").and_then(Value::as_str) == Some("redirect")
            })
            .ok_or_else(|| {
                Error::protocol(self.name(), "no SvelteKit data in __data.json", body)
            })?;
        if doc.get("type").and_then(Value::as_str) == Some("redirect") {
            let location = doc
                .get("location")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if location.contains("login") {
                return Err(self.refused("the conversation page redirects to the login page"));
            }
            return Err(Error::protocol(
                self.name(),
                "__data.json redirects",
                location,
            ));
        }
        let nodes = doc.get("nodes").and_then(Value::as_array).ok_or_else(|| {
            Error::protocol(self.name(), "`nodes` of __data.json is not a list", body)
        })?;
        if let Some(last) = nodes
            .last()
            .filter(|n| n.get("type").and_then(Value::as_str) == Some("error"))
        {
            let status = last.get("status").and_then(Value::as_u64).unwrap_or(500);
            let message = last
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| last.to_string());
            let message = llmux_core::error::snippet(&message, 300);
            return match status {
                401 | 403 => Err(self.refused(&message)),
                404 => Ok(None),
                s @ 400..=599 => Err(Error::HttpStatus {
                    provider: self.name().to_owned(),
                    status: s as u16,
                    message,
                }),
                _ => Err(Error::Upstream {
                    provider: self.name().to_owned(),
                    message,
                }),
            };
        }
        let mut last_err = String::from("no page data with `messages`");
        for node in nodes.iter().rev() {
            let Some(data) = node.get("data").filter(|d| d.is_array()) else {
                continue;
            };
            match last_message_id(data) {
                Ok(id) => return Ok(Some(id)),
                Err(e) => last_err = e.to_string(),
            }
        }
        Err(Error::protocol(
            self.name(),
            format!("failed to extract the message id from __data.json: {last_err}"),
            body,
        ))
    }

    /// Downloads a generated file, with the configured cookies when it is on the server's origin.
    async fn download(&self, url: &str, ctx: &Context) -> Result<Downloaded> {
        let mut rb = ctx.http.get(url).provider(self.name());
        let own = origin_of(url) == origin_of(&self.base)
            || self
                .app
                .get()
                .is_some_and(|a| origin_of(a) == origin_of(url));
        if own {
            rb = rb.cookies(&self.jar(None));
        }
        let resp = self.checked(rb.send().await?).await?;
        let mime = resp
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        let data = resp.bytes().await?;
        Ok(Downloaded { mime, data })
    }
}

/// The message of a chat-ui error body (`{"message": …}` or `{"error": …}`), or its plain text;
/// `None` for HTML pages and empty bodies.
fn upstream_message(body: &str) -> Option<String> {
    let text = body.trim();
    if text.is_empty() || looks_like_html(text) {
        return None;
    }
    let message = match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            let picked = v.get("message").or_else(|| v.get("error")).unwrap_or(&v);
            let picked = picked.get("message").unwrap_or(picked);
            match picked {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }
        }
        Err(_) => text.to_owned(),
    };
    Some(llmux_core::error::snippet(
        &llmux_core::http::strip_html(&message),
        300,
    ))
}

/// `(id, multimodal)` of each model object.
fn models_of(list: &[Value]) -> Found {
    list.iter()
        .filter_map(|m| {
            let id = m.get("id")?.as_str()?.to_owned();
            let mm = m
                .get("multimodal")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Some((id, mm))
        })
        .collect()
}

/// g4f's walk: `D[0].messages` → list of indices → last message object → its `id`.
fn last_message_id(data: &Value) -> devalue::Result<String> {
    let flat = devalue::Flat::new(data)?;
    let messages = flat.array(flat.field(0, "messages")?)?;
    let last = messages
        .last()
        .ok_or_else(|| devalue::DevalueError::new("the conversation has no messages"))?;
    let msg = devalue::Flat::index(last)?;
    match flat.hydrate(flat.field(msg, "id")?)? {
        Value::String(s) if !s.is_empty() => Ok(s),
        other => Err(devalue::DevalueError::new(format!(
            "message id is not a string: {other}"
        ))),
    }
}

/// The `data` part of the send request, in chat-ui's field order.
#[derive(Serialize)]
struct SendData<'a> {
    inputs: &'a str,
    id: &'a str,
    is_retry: bool,
    is_continue: bool,
    web_search: bool,
    tools: Vec<&'a str>,
}

/// A file name for an upload: the original one, else `file.<ext>`.
fn upload_name(m: &Media, mime: &str) -> String {
    m.file_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| match media::extension_for_mime(mime) {
            Some(ext) => format!("file.{ext}"),
            None => "file".to_owned(),
        })
}

impl Provider for HuggingChat {
    fn info(&self) -> &ProviderInfo {
        &self.inner.info
    }

    fn models<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let (mut all, _) = self.inner.text_models(ctx).await;
            for m in IMAGE_MODELS {
                if !all.iter().any(|x| x == m) {
                    all.push((*m).to_owned());
                }
            }
            Ok(all)
        })
    }

    fn chat(&self, req: ChatRequest, ctx: Context) -> ChatStream {
        let inner = self.inner.clone();
        let jar = inner.jar(req.cookies.as_ref());
        if jar
            .get(AUTH_COOKIE)
            .is_none_or(|v| v.expose().trim().is_empty())
        {
            let err = inner.missing_cookie();
            return Box::pin(llmux_core::futures_util::stream::once(
                async move { Err(err) },
            ));
        }
        Box::pin(llmux_core::async_stream::try_stream! {
            let mut body = std::pin::pin!(answer(inner, req, ctx, jar));
            while let Some(item) = body.next().await {
                match item {
                    Ok(chunk) => yield chunk,
                    Err(e) => {
                        if let Error::MissingAuth { login_url: Some(url), .. } = &e {
                            yield Chunk::LoginRequired { label: G4F_NAME.into(), url: url.clone() };
                        }
                        Err(e)?;
                    }
                }
            }
        })
    }

    fn download<'a>(&'a self, url: &'a str, ctx: &'a Context) -> BoxFuture<'a, Result<Downloaded>> {
        Box::pin(self.inner.download(url, ctx))
    }
}

/// The conversation flow of one turn.
fn answer(
    inner: Arc<Inner>,
    req: ChatRequest,
    ctx: Context,
    jar: Cookies,
) -> impl Stream<Item = Result<Chunk>> + Send {
    llmux_core::async_stream::try_stream! {
        let name = inner.name().to_owned();
        let files = req.all_media()?;
        let app = inner.app(&ctx).await?;
        let (text_models, discovered) = inner.text_models(&ctx).await;
        let model = if req.model.trim().is_empty() {
            if files.is_empty() {
                inner.default_text_model(&text_models, discovered)
            } else {
                inner.default_vision_model(&text_models, discovered)
            }
        } else {
            let mut known = text_models.clone();
            known.extend(strings(IMAGE_MODELS));
            inner.info.resolve_model(req.model.trim(), Some(&known))?
        };
        let is_image = IMAGE_MODELS.contains(&model.as_str());

        let mut state = ConversationState::from_conversation(req.conversation.as_ref());
        let mut known_turn = None;
        if let Some(existing) = state.models.get(&model).cloned() {
            match inner.latest_message(&ctx, &app, &jar, &existing.conversation_id).await? {
                Some(message_id) => known_turn = Some(ModelConversation { message_id, ..existing }),
                None => {
                    tracing::debug!(provider = %name, "conversation is gone upstream; starting a new one");
                }
            }
        }
        let (conv, inputs) = match known_turn {
            Some(conv) => (conv, prompt::last_user_message(&req.messages)),
            None => {
                let create_with = if is_image {
                    inner.default_text_model(&text_models, discovered)
                } else {
                    model.clone()
                };
                let conversation_id = inner.create_conversation(&ctx, &app, &jar, &create_with).await?;
                let message_id = inner
                    .latest_message(&ctx, &app, &jar, &conversation_id)
                    .await?
                    .ok_or_else(|| Error::protocol(&name, "cannot read the messages of the conversation just created (check the `api` option: v1 or v2)", &conversation_id))?;
                (
                    ModelConversation { conversation_id, message_id },
                    prompt::format_prompt(&req.messages, false, false, true),
                )
            }
        };
        state.models.insert(model.clone(), conv.clone());
        yield Chunk::Conversation(state.to_conversation());

        if inputs.trim().is_empty() {
            Err(Error::invalid("nothing to send: the conversation must end with a non-empty user message"))?;
        }
        let data = SendData {
            inputs: &inputs,
            id: &conv.message_id,
            is_retry: false,
            is_continue: false,
            web_search: req.web_search,
            tools: if is_image { vec![IMAGE_TOOL_ID] } else { Vec::new() },
        };
        let data = serde_json::to_string(&data)
            .map_err(|e| Error::invalid(format!("cannot encode the message: {e}")))?;
        let mut form = Multipart::new().text("data", data);
        for m in &files {
            let mime = m.detect_mime().unwrap_or_else(|| "application/octet-stream".to_owned());
            let file_name = format!("base64;{}", upload_name(m, &mime));
            form = form.file("files", file_name, mime, media::b64_encode(&m.data));
        }
        let cid = updates::path_segment(&conv.conversation_id);
        let url = format!("{app}/conversation/{cid}");
        let resp = ctx
            .http
            .post(&url)
            .provider(&name)
            .cookies(&jar)
            .header("accept", "*/*")
            .header("origin", &origin_of(&app))
            .header("referer", &url)
            .multipart(form)
            .send()
            .await?;
        let resp = inner.checked(resp).await?;

        let alt = prompt::image_prompt(&req.messages, req.prompt.as_deref());
        let mut updates = Updates::new(&name, format!("{url}/output/"), alt);
        let mut lines = std::pin::pin!(llmux_core::decode::jsonl::lines(resp.into_stream()));
        let mut finished = false;
        while let Some(line) = lines.next().await {
            let line = line.map_err(|e| e.with_provider(&name))?;
            let value = match llmux_core::decode::jsonl::parse_json_line(&line, &name) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(provider = %name, error = %e, "skipping a line that is not JSON");
                    continue;
                }
            };
            match updates.step(&value)? {
                Step::Emit(chunks) => {
                    for c in chunks {
                        yield c;
                    }
                }
                Step::Finish(chunks) => {
                    for c in chunks {
                        yield c;
                    }
                    finished = true;
                    break;
                }
            }
        }
        if !finished {
            Err(Error::protocol(&name, "the answer stream ended before `finalAnswer` (the answer may be incomplete)", ""))?;
        }
    }
}

/// Every upstream origin `(key, default URL)`, declared once: the registration and
/// [`ProviderInfo::origins`] both read it.
pub const ORIGINS: &[(&str, &str)] = &[("base", DEFAULT_BASE_URL)];

llmux_core::inventory::submit! {
    Registration {
        name: NAME,
        g4f_name: G4F_NAME,
        origins: ORIGINS,
        build: |cfg| Arc::new(HuggingChat::new(cfg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            origin_of("https://HuggingFace.co/chat/x?y"),
            "https://huggingface.co"
        );
        assert!(has_path("https://huggingface.co/chat"));
        assert!(!has_path("http://127.0.0.1:3000"));
        assert!(!has_path("http://127.0.0.1:3000/"));
    }

    #[test]
    fn data_json_walk() {
        let p = HuggingChat::new(ProviderConfig::named(NAME));
        let body = r#"{"type":"data","nodes":[{"type":"data","data":[{"settings":1},{}],"uses":{}},{"type":"data","data":[{"messages":1,"title":5,"model":6,"preprompt":7,"rootMessageId":3,"shared":8},[2],{"id":3,"from":4,"content":7},"0b7e3f2a-5c1d-4e6f-8a9b-0c1d2e3f4a5b","system","New Chat","Qwen/Qwen2.5-72B-Instruct","",false],"uses":{"params":["id"]}}]}"#;
        assert_eq!(
            p.inner.message_id_from_data(body).expect("id").as_deref(),
            Some("0b7e3f2a-5c1d-4e6f-8a9b-0c1d2e3f4a5b")
        );
        let denied = r#"{"type":"data","nodes":[{"type":"data","data":[{}],"uses":{}},{"type":"error","error":{"message":"You don't have access to this conversation."},"status":403}]}"#;
        assert!(matches!(
            p.inner.message_id_from_data(denied),
            Err(Error::MissingAuth { .. })
        ));
        let gone = r#"{"type":"data","nodes":[null,{"type":"error","error":{"message":"Conversation not found"},"status":404}]}"#;
        assert_eq!(p.inner.message_id_from_data(gone).expect("gone"), None);
        let broken = r#"{"type":"data","nodes":[null,{"type":"error","error":{"message":"boom"},"status":500}]}"#;
        assert!(matches!(
            p.inner.message_id_from_data(broken),
            Err(Error::HttpStatus { status: 500, .. })
        ));
        let redirect = r#"{"type":"redirect","location":"/chat/login"}"#;
        assert!(matches!(
            p.inner.message_id_from_data(redirect),
            Err(Error::MissingAuth { .. })
        ));
        for bad in [
            "",
            "not json",
            r#"{"type":"data","nodes":[{"type":"data","data":[{"messages":1},[]]}]}"#,
            r#"{"type":"data","nodes":[{"type":"data","data":[{"messages":5}]}]}"#,
            r#"{"type":"data","nodes":[{"type":"data","data":[{"messages":1},[2],{"id":0}]}]}"#,
            r#"{"type":"data","nodes":"x"}"#,
        ] {
            assert!(
                matches!(
                    p.inner.message_id_from_data(bad),
                    Err(Error::Protocol { .. })
                ),
                "{bad}"
            );
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            (-3i64..6).prop_map(Value::from),
            "[a-z]{0,3}".prop_map(Value::String),
            prop_oneof![Just("messages"), Just("id"), Just("data"), Just("error")]
                .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("messages".to_owned()),
                        Just("id".to_owned()),
                        Just("type".to_owned()),
                        "[a-c]".prop_map(String::from)
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        #[test]
        fn data_json_extraction_is_total(data in json_value(), last in json_value()) {
            let p = HuggingChat::new(ProviderConfig::named(NAME));
            let body = json!({"type": "data", "nodes": [null, {"type": "data", "data": data}, last]});
            let _ = p.inner.message_id_from_data(&body.to_string());
        }
    }

    #[test]
    fn state_round_trip() {
        let v = json!({"models": {"m": {"conversationId": "c", "messageId": "x"}}});
        let s = ConversationState::from_conversation(Some(&Conversation(v.clone())));
        assert_eq!(s.to_conversation().0, v);
        assert_eq!(
            ConversationState::from_conversation(Some(&Conversation(json!({"other": 1})))),
            ConversationState::default()
        );
        assert_eq!(
            ConversationState::from_conversation(Some(&Conversation(json!("junk")))),
            ConversationState::default()
        );
    }

    #[test]
    fn send_data_field_order() {
        let d = SendData {
            inputs: "Who wrote Dune?",
            id: "0b7e",
            is_retry: false,
            is_continue: false,
            web_search: true,
            tools: vec![],
        };
        assert_eq!(
            serde_json::to_string(&d).expect("json"),
            r#"{"inputs":"Who wrote Dune?","id":"0b7e","is_retry":false,"is_continue":false,"web_search":true,"tools":[]}"#
        );
    }
}
