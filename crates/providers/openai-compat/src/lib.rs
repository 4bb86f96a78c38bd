//! llmux provider for any OpenAI-compatible server: Ollama, llama.cpp's server, vLLM, LM Studio,
//! and hosted APIs.
//!
//! Provider name `openai-compat`. Configure it with `LLMUX_OPENAI_COMPAT_BASE_URL` (including the
//! `/v1` part, as OpenAI SDKs do) and `LLMUX_OPENAI_COMPAT_API_KEY`, or through
//! [`llmux_core::ProviderConfig`]. Several servers at once are named instances of this provider
//! (`ClientBuilder::instance("ollama", "openai-compat", config)`, env prefix `LLMUX_OLLAMA_`).
//!
//! - Chat: `POST {base}/chat/completions`, streaming (SSE: content, `reasoning_content`, usage,
//!   finish reason; tolerant of `finish_reason: ""`) or not.
//! - Embeddings: `POST {base}/embeddings`, passed through (`dimensions`, `user`, token-array
//!   input and unknown fields forwarded; vectors asked for as floats).
//! - Models: `GET {base}/models`, cached per instance (successes only).
//! - Images: `POST {base}/images/generations` for models listed in the `image_models` option, or
//!   when the request carries `extra.image_generation = true`.
//!
//! The provider counts as working (used by automatic routing) once a base URL or an API key is
//! configured; before that it can still be named explicitly.
//!
//! ```
//! use llmux_core::ProviderConfig;
//! let p = llmux_provider_openai_compat::OpenAiCompat::new(
//!     ProviderConfig::named("openai-compat").with_base_url("http://127.0.0.1:11434/v1"),
//! );
//! use llmux_core::Provider;
//! assert!(p.info().working);
//! ```

use std::sync::Arc;

use llmux_core::http::StatusRules;
use llmux_core::provider::Origin;
use llmux_core::{
    BoxFuture, Capabilities, ChatRequest, ChatStream, Context, EmbeddingRequest, EmbeddingResponse,
    Error, ModelCache, Provider, ProviderConfig, ProviderInfo, Registration, Result, prompt,
};
use llmux_openai::images;
use serde_json::{Value, json};

/// Provider name.
pub const NAME: &str = "openai-compat";
/// Default origin (OpenAI's API).
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Request `extra` key that asks for image generation.
pub const IMAGE_GENERATION: &str = "image_generation";
/// The `User-Agent` sent unless the `user_agent` option sets another: self-hosted servers see
/// who is calling (not a browser).
pub const USER_AGENT: &str = concat!("llmux/", env!("CARGO_PKG_VERSION"));

/// The OpenAI-compatible provider (one instance per server).
pub struct OpenAiCompat {
    inner: Arc<Inner>,
}

struct Inner {
    info: ProviderInfo,
    config: ProviderConfig,
    models: ModelCache,
    /// `{base}/chat/completions` (the configuration does not change after construction).
    chat_url: String,
    /// The `User-Agent` header.
    user_agent: String,
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl OpenAiCompat {
    /// An instance for this configuration.
    pub fn new(config: ProviderConfig) -> Self {
        let name = if config.name.is_empty() {
            NAME.to_owned()
        } else {
            config.name.clone()
        };
        let configured = config.origins.contains_key("base") || config.api_key.is_some();
        let image_models = string_list(config.options.get("image_models"));
        let info = ProviderInfo {
            g4f_name: if name == NAME {
                "Custom".into()
            } else {
                String::new()
            },
            label: if name == NAME {
                "OpenAI-compatible server".into()
            } else {
                format!("{name} (OpenAI-compatible)")
            },
            url: config.origin("base", DEFAULT_BASE_URL),
            working: configured,
            needs_auth: false,
            supports_stream: true,
            supports_system_message: true,
            supports_message_history: true,
            default_model: config.default_model.clone().unwrap_or_default(),
            models: config.models.clone(),
            default_image_model: image_models.first().cloned(),
            image_models,
            vision_models: string_list(config.options.get("vision_models")),
            capabilities: Capabilities::OPENAI.with_embeddings(),
            origins: Origin::list(ORIGINS),
            name,
            ..ProviderInfo::default()
        };
        let chat_url = format!(
            "{}/chat/completions",
            config.origin("base", DEFAULT_BASE_URL)
        );
        let user_agent = config
            .options
            .get("user_agent")
            .and_then(Value::as_str)
            .unwrap_or(USER_AGENT)
            .to_owned();
        Self {
            inner: Arc::new(Inner {
                info,
                config,
                models: ModelCache::new(),
                chat_url,
                user_agent,
            }),
        }
    }
}

impl Inner {
    fn base(&self) -> String {
        self.config.origin("base", DEFAULT_BASE_URL)
    }

    fn key<'a>(&'a self, req: &'a ChatRequest) -> Option<&'a llmux_core::Secret> {
        req.api_key
            .as_ref()
            .or(self.config.api_key.as_ref())
            .filter(|k| !k.is_empty())
    }

    async fn discover(&self, ctx: &Context) -> Result<Vec<String>> {
        self.models
            .get_or_fetch(|| async {
                let mut rb = ctx
                    .http
                    .get(format!("{}/models", self.base()))
                    .provider(&self.info.name)
                    .header("user-agent", &self.user_agent);
                if let Some(k) = self.config.api_key.as_ref().filter(|k| !k.is_empty()) {
                    rb = rb.bearer(k);
                }
                let v: Value = rb.send().await?.error_for_status().await?.json().await?;
                Ok(images::model_ids(&v))
            })
            .await
    }

    /// Picks the model: requested (alias-resolved), else configured default, else the first
    /// discovered model.
    async fn model(&self, req: &ChatRequest, ctx: &Context) -> Result<String> {
        let m = self.info.resolve_model(&req.model, Some(&[]))?;
        if !m.is_empty() {
            return Ok(m);
        }
        let found = self.discover(ctx).await?;
        found.into_iter().next().ok_or_else(|| {
            Error::invalid(format!(
                "{}: no model given and the server lists none; pass a model id",
                self.info.name
            ))
        })
    }
}

impl Provider for OpenAiCompat {
    fn info(&self) -> &ProviderInfo {
        &self.inner.info
    }

    fn models<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let mut all = self.inner.info.all_models();
            for m in self.inner.discover(ctx).await? {
                if !all.contains(&m) {
                    all.push(m);
                }
            }
            Ok(all)
        })
    }

    fn chat(&self, req: ChatRequest, ctx: Context) -> ChatStream {
        let inner = self.inner.clone();
        Box::pin(answer(inner, req, ctx))
    }

    fn embed<'a>(
        &'a self,
        req: EmbeddingRequest,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<EmbeddingResponse>> {
        Box::pin(self.inner.embed(req, ctx))
    }
}

impl Inner {
    /// `POST {base}/embeddings`.
    async fn embed(&self, req: EmbeddingRequest, ctx: &Context) -> Result<EmbeddingResponse> {
        let name = &self.info.name;
        let model = self.info.resolve_model(&req.model, Some(&[]))?;
        if model.is_empty() {
            return Err(Error::invalid(format!(
                "{name}: embeddings need a model id (e.g. `text-embedding-3-small`)"
            )));
        }
        let body = llmux_openai::embeddings::embeddings_body(&req, &model);
        let mut rb = ctx
            .http
            .post(format!("{}/embeddings", self.base()))
            .provider(name)
            .header("user-agent", &self.user_agent)
            .json(&body);
        let key = req
            .api_key
            .as_ref()
            .or(self.config.api_key.as_ref())
            .filter(|k| !k.is_empty());
        if let Some(k) = key {
            rb = rb.bearer(k);
        }
        let resp = rb.send().await?;
        if !resp.status().is_success() {
            return Err(model_error(
                resp.into_error(StatusRules::Generic).await,
                &model,
            ));
        }
        let bytes = resp.bytes().await?;
        llmux_openai::embeddings::read_embeddings(name, &model, &bytes)
    }
}

fn answer(
    inner: Arc<Inner>,
    req: ChatRequest,
    ctx: Context,
) -> impl llmux_core::futures_util::Stream<Item = Result<llmux_core::Chunk>> + Send {
    llmux_core::async_stream::try_stream! {
        let name = inner.info.name.clone();
        // one-shot futures are boxed: the generator then only keeps room for the stream state
        // (it lives as long as the answer; a few KiB less per open stream)
        let model = Box::pin(inner.model(&req, &ctx)).await?;
        let wants_image = inner.info.image_models.contains(&model)
            || req.extra.get(IMAGE_GENERATION).and_then(Value::as_bool).unwrap_or(false);
        if wants_image {
            let prompt = prompt::image_prompt(&req.messages, req.prompt.as_deref());
            let mut body = json!({"model": model, "prompt": prompt, "n": 1});
            for (k, v) in req.extra.iter().filter(|(k, _)| *k != IMAGE_GENERATION) {
                body[k] = v.clone();
            }
            let mut rb = ctx.http.post(format!("{}/images/generations", inner.base())).provider(&name).header("user-agent", &inner.user_agent).json(&body);
            if let Some(k) = inner.key(&req) {
                rb = rb.bearer(k);
            }
            let v: Value = Box::pin(async { rb.send().await?.error_for_status().await?.json().await }).await?;
            yield images::image_chunk(&name, &v, &prompt)?;
            return;
        }
        // (the body is serialised at once and not kept for the life of the stream)
        let mut rb = {
            let body = llmux_openai::chat_body(&req, &model)?;
            ctx.http.post(inner.chat_url.as_str()).provider(&name).header("user-agent", &inner.user_agent).json(&body)
        };
        if req.stream {
            rb = rb.header("accept", "text/event-stream");
        }
        if let Some(k) = inner.key(&req) {
            rb = rb.bearer(k);
        }
        let resp = Box::pin(rb.send()).await?;
        if !resp.status().is_success() {
            Err(model_error(Box::pin(resp.into_error(StatusRules::OpenAi)).await, &model))?;
            return;
        }
        let mut chunks = std::pin::pin!(llmux_openai::response_chunks(name, resp));
        while let Some(c) = llmux_core::futures_util::StreamExt::next(&mut chunks).await {
            yield c?;
        }
    }
}

/// A 404 that names the model (OpenAI's `model_not_found`) means the server does not serve it.
fn model_error(e: Error, model: &str) -> Error {
    match e {
        Error::HttpStatus {
            provider,
            status: 404,
            message,
        } if message.to_ascii_lowercase().contains("model") => Error::ModelNotSupported {
            provider,
            model: model.to_owned(),
            valid: Vec::new(),
        },
        Error::UpstreamApi {
            provider,
            status: 404,
            detail,
            message,
        } if detail.code.as_deref() == Some("model_not_found")
            || message.to_ascii_lowercase().contains("model") =>
        {
            Error::ModelNotSupported {
                provider,
                model: model.to_owned(),
                valid: Vec::new(),
            }
        }
        other => other,
    }
}

/// Every upstream origin `(key, default URL)`, declared once: the registration and
/// [`ProviderInfo::origins`] both read it.
pub const ORIGINS: &[(&str, &str)] = &[("base", DEFAULT_BASE_URL)];

llmux_core::inventory::submit! {
    Registration {
        name: NAME,
        g4f_name: "Custom",
        origins: ORIGINS,
        build: |cfg| Arc::new(OpenAiCompat::new(cfg)),
    }
}
