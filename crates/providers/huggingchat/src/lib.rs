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

mod answer;
mod auth;
mod conversation;
pub mod devalue;
mod discovery;
mod updates;

use std::sync::{Arc, Mutex, PoisonError};

use llmux_core::futures_util::StreamExt;
use llmux_core::provider::Origin;
use llmux_core::{
    BoxFuture, Capabilities, ChatRequest, ChatStream, Chunk, Context, Downloaded, Error,
    ModelCache, Provider, ProviderConfig, ProviderInfo, Registration, Result,
};
use tokio::sync::OnceCell;

use crate::discovery::Api;

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
pub const DEFAULT_MODEL: &str = llmux_hf::DEFAULT_MODEL;
/// Default model when images are attached and no model is named.
pub const DEFAULT_VISION_MODEL: &str = llmux_hf::DEFAULT_VISION_MODEL;
/// Image models (served through the image-generation tool).
pub const IMAGE_MODELS: &[&str] = llmux_hf::IMAGE_MODELS;
/// Text models used when discovery fails (g4f's fallback list, in order).
pub const FALLBACK_TEXT_MODELS: &[&str] = llmux_hf::TEXT_MODELS;
/// HuggingChat's own model aliases, added to the shared Hub aliases ([`llmux_hf::ALIASES`]).
pub const OWN_ALIASES: &[(&str, &str)] = &[("qwen-2.5-72b", "Qwen/Qwen2.5-72B-Instruct")];

/// Largest HTML page / JSON document read from chat-ui.
const MAX_DOCUMENT: usize = 16 * 1024 * 1024;

pub use crate::conversation::{ConversationState, ModelConversation};

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
            model_aliases: llmux_hf::aliases(OWN_ALIASES),
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

impl Inner {
    fn name(&self) -> &str {
        &self.info.name
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
            let mut body = std::pin::pin!(answer::answer(inner, req, ctx, jar));
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
    fn aliases_are_the_shared_ones_and_the_fixed_qwen() {
        let p = HuggingChat::new(ProviderConfig::named(NAME));
        let aliases = &p.info().model_aliases;
        assert_eq!(aliases.len(), llmux_hf::ALIASES.len() + 1);
        assert_eq!(aliases["qwen-2.5-72b"], "Qwen/Qwen2.5-72B-Instruct");
        assert_eq!(
            aliases["llama-3.3-70b"],
            "meta-llama/Llama-3.3-70B-Instruct"
        );
        assert!(!aliases.contains_key("gemma-2-27b"));
    }
}
