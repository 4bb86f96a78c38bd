//! llmux provider `huggingface-inference` (g4f `HuggingFaceInference`): the serverless Hugging
//! Face Inference API, with raw text-generation prompts built from per-model chat templates
//! (TGI style), text-to-image models returning image bytes, and FLUX models through the Together
//! route of the Hugging Face router.
//!
//! A Hugging Face token is optional: `api_key` on the request, [`ProviderConfig::api_key`], or
//! `LLMUX_HUGGINGFACE_INFERENCE_API_KEY`. It is sent as `Authorization: Bearer …` on every request
//! of a call (Together route, model data, inference).
//!
//! # How a call works
//!
//! 1. The model is resolved: empty → [`models::DEFAULT_MODEL`], aliases (the shared
//!    [`llmux_hf::ALIASES`] and [`models::OWN_ALIASES`]) → their target, anything else is used
//!    unchanged.
//! 2. FLUX.1 models ([`models::TOGETHER_MODELS`]) are first sent to
//!    `POST {router}/together/v1/images/generations`; a 404 there falls through to step 3.
//! 3. The model's Hub data `GET {hub}/api/models/<id>` is fetched once per model and kept for the
//!    lifetime of the provider instance (successes only; concurrent calls share one fetch).
//! 4. By `pipeline_tag`: `text-generation` / `image-text-to-text` → `POST {base}/models/<id>` with
//!    `{"inputs", "parameters", "stream"}`, the prompt built by the model's chat template
//!    ([`template::Template`]); `text-to-image` → the same route with `{"inputs", "parameters":
//!    {"seed", …}}`, answered with image bytes, yielded as one [`Chunk::Images`] holding the bytes
//!    ([`save_images`] writes them to disk); anything else → [`Error::ModelNotSupported`].
//! 5. Streams are TGI SSE (`data:{"token":{"text":…,"special":…}}`): special tokens are dropped,
//!    the first token loses its leading whitespace, and the finish reason is `stop` when a special
//!    token was seen, else `length`. Non-streaming answers are `[{"generated_text": …}]`.
//!
//! # Embeddings
//!
//! [`Provider::embed`] runs the `feature-extraction` task: `POST {base}/models/<id>`, or in
//! router mode `POST {router}/hf-inference/models/<id>/pipeline/feature-extraction`; token
//! vectors are mean-pooled, and normalised unless the request's `extra.normalize` is `false`
//! (see the `embed` module).
//!
//! # Errors
//!
//! 404 → [`Error::ModelNotSupported`]; 503 "model is loading" (`estimated_time`) →
//! [`Error::ModelLoading`] with the estimate; other statuses follow the generic rules (401 →
//! [`Error::MissingAuth`], 429 → [`Error::RateLimited`], …); an `error` event in a stream →
//! [`Error::Upstream`].
//!
//! # Options
//!
//! Read from the request's `extra` first, then from [`ProviderConfig::options`]:
//!
//! | key | meaning |
//! |---|---|
//! | `wait_for_model` | `true`: when the model is loading, wait for the estimated time and retry, as long as the call's deadline allows |
//! | `mode` | `"inference"` (default) or `"router"`: chat through the router's OpenAI-compatible `POST {router}/v1/chat/completions` instead |
//! | `tgi` | `true`: the `base` origin is a self-hosted text-generation-inference server; inference goes to `POST {base}` (TGI's compatible route) instead of `{base}/models/<id>` |
//! | `template` | force a chat template (`generic`, `mistral`, `chatml`, `deepseek`, `llama3`, `custom:<end token>`) and skip the Hub lookup (the model is then treated as a text-generation model) |
//! | `action` | `"continue"`: continue the last assistant message (no assistant header, no end token) |
//! | `width`, `height`, `aspect_ratio` | image size; `aspect_ratio` `1:1` (1024×1024), `16:9` (832×480), `9:16` (480×832) fills in a missing width/height |
//! | `extra_data` (or `extra_body`) | an object merged into `parameters` (router mode: into the body) |
//!
//! Origins: `base` (`LLMUX_HUGGINGFACE_INFERENCE_BASE_URL`, default
//! `https://api-inference.huggingface.co`), `hub` (`LLMUX_HUGGINGFACE_INFERENCE_HUB_URL`, default
//! `https://huggingface.co`), `router` (`LLMUX_HUGGINGFACE_INFERENCE_ROUTER_URL`, default
//! `https://router.huggingface.co`).
//!
//! # Where llmux differs from g4f
//!
//! * Non-streaming text generation works: g4f (since 2025-03-23) tries to save every
//!   non-streaming answer as a media file and fails with "Unsupported media type:
//!   application/json"; llmux yields the `generated_text`.
//! * A streaming request answered with JSON (models that cannot stream) is read as a
//!   non-streaming answer instead of producing nothing.
//! * A loading model is a typed [`Error::ModelLoading`] carrying the estimate, with an opt-in
//!   wait-and-retry; g4f raises a plain status error.
//! * DeepSeek template in continue mode: g4f cuts 13 characters off the prompt, leaving a broken
//!   `<｜end▁` behind; llmux removes the whole end-of-sentence token.
//! * Mistral template: an assistant message without a preceding message gets an empty
//!   instruction (g4f wraps around to the last message).
//! * Message contents that are lists of parts are flattened to their text (g4f would interpolate
//!   a Python list representation).
//! * Model discovery (the `models()` listing) runs only when models are listed, not on every
//!   first chat call (g4f runs it inside `get_model` and throws the result away), and it is
//!   bounded by the client's timeouts; the list has no duplicates.
//! * `top_p` (when strictly between 0 and 1) and `stop` of the request are sent as TGI
//!   parameters (g4f ignores them); a temperature of 0 (or less) is sent as `null` (greedy
//!   decoding), because TGI refuses it with a 422.
//! * Images attached to the request are not sent in inference mode, as in g4f (the vision
//!   models receive the text of the conversation); router mode sends them as `image_url` parts.
//! * Text generation asks TGI for `parameters.details: true` (g4f does not), and maps what it
//!   reports: the finish reason (`length` → `length`; `eos_token` and `stop_sequence` →
//!   `stop`) and a [`Chunk::Usage`] (`generated_tokens`; prompt tokens from the stream's
//!   `input_length`, else a non-empty `prefill`, else the `x-prompt-tokens` header). So an
//!   answer cut by `max_tokens` reports `length` also when not streamed, and a stream ended by a
//!   stop sequence reports `stop`. Without `details` in the answer, the finish reason of a stream
//!   is still guessed from its special end token (g4f's rule), and a whole answer reports none.
//! * The model-data cache lives as long as the provider instance (g4f: the process).
//! * Router mode and the `tgi` / `template` options do not exist in g4f.
//!
//! ```
//! use llmux_core::{Provider, ProviderConfig};
//! use llmux_provider_huggingface_inference::HuggingFaceInference;
//!
//! let p = HuggingFaceInference::new(
//!     ProviderConfig::named("huggingface-inference")
//!         .with_base_url("http://127.0.0.1:8080")
//!         .with_option("wait_for_model", serde_json::json!(true)),
//! );
//! assert_eq!(p.info().g4f_name, "HuggingFaceInference");
//! assert_eq!(
//!     p.info().model_aliases.get("flux-schnell").map(String::as_str),
//!     Some("black-forest-labs/FLUX.1-schnell")
//! );
//! ```

mod embed;
pub mod models;
pub mod template;
mod tgi;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use llmux_core::futures_util::StreamExt;
use llmux_core::http::{RequestBuilder, Response, StatusRules, status_error};
use llmux_core::provider::Origin;
use llmux_core::{
    BoxFuture, Capabilities, ChatRequest, ChatStream, Chunk, Context, EmbeddingRequest,
    EmbeddingResponse, Error, Image, MediaData, ModelCache, Provider, ProviderConfig, ProviderInfo,
    Registration, Result, Secret, media, prompt,
};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use template::Template;

/// Provider name.
pub const NAME: &str = "huggingface-inference";
/// g4f class name.
pub const G4F_NAME: &str = "HuggingFaceInference";
/// Default inference API origin (`base`).
pub const DEFAULT_BASE_URL: &str = "https://api-inference.huggingface.co";
/// Default Hub API origin (`hub`).
pub const DEFAULT_HUB_URL: &str = llmux_hf::HUB_URL;
/// Default router origin (`router`).
pub const DEFAULT_ROUTER_URL: &str = "https://router.huggingface.co";
/// `max_new_tokens` when the request sets no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Option keys read from the request's `extra` and the configuration's `options`.
pub mod options {
    /// `true`: wait for a loading model and retry within the call's deadline.
    pub const WAIT_FOR_MODEL: &str = "wait_for_model";
    /// `"inference"` (default) or `"router"`.
    pub const MODE: &str = "mode";
    /// `true`: `base` is a self-hosted TGI server (inference goes to `POST {base}`).
    pub const TGI: &str = "tgi";
    /// A forced chat template name (skips the Hub lookup).
    pub const TEMPLATE: &str = "template";
    /// `"continue"` continues the last assistant message.
    pub const ACTION: &str = "action";
    /// Image width.
    pub const WIDTH: &str = "width";
    /// Image height.
    pub const HEIGHT: &str = "height";
    /// Image aspect ratio (`1:1`, `16:9`, `9:16`).
    pub const ASPECT_RATIO: &str = "aspect_ratio";
    /// Object merged into the generation parameters.
    pub const EXTRA_DATA: &str = "extra_data";
    /// Later g4f name of [`EXTRA_DATA`].
    pub const EXTRA_BODY: &str = "extra_body";

    /// Every key above (removed from router-mode bodies).
    pub const ALL: &[&str] = &[
        WAIT_FOR_MODEL,
        MODE,
        TGI,
        TEMPLATE,
        ACTION,
        WIDTH,
        HEIGHT,
        ASPECT_RATIO,
        EXTRA_DATA,
        EXTRA_BODY,
    ];
}

/// Which upstream route a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The (serverless) Inference API with raw prompts (g4f's behaviour).
    #[default]
    Inference,
    /// The router's OpenAI-compatible chat-completions route.
    Router,
}

/// Longest single wait for a loading model before asking again.
const MAX_LOADING_PAUSE: Duration = Duration::from_secs(30);
/// Wait for a loading model that gave no estimate.
const DEFAULT_LOADING_PAUSE: Duration = Duration::from_secs(1);
/// Bytes of an error body read to recognise a loading model.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

type DataCell = Arc<OnceCell<Arc<Value>>>;

/// The `huggingface-inference` provider.
pub struct HuggingFaceInference {
    inner: Arc<Inner>,
}

struct Inner {
    info: ProviderInfo,
    config: ProviderConfig,
    models: ModelCache,
    /// Hub model data per model id (successes only), one fetch per model.
    model_data: Mutex<HashMap<String, DataCell>>,
}

/// Per-call settings taken from the request and the configuration.
struct Call {
    name: String,
    model: String,
    key: Option<Secret>,
    mode: Mode,
    wait_for_model: bool,
    do_continue: bool,
    template: Option<Template>,
    extra_data: Map<String, Value>,
    image_extra: Map<String, Value>,
}

impl HuggingFaceInference {
    /// An instance for this configuration.
    pub fn new(config: ProviderConfig) -> Self {
        let name = if config.name.is_empty() {
            NAME.to_owned()
        } else {
            config.name.clone()
        };
        let mut text_models = models::owned(models::TEXT_MODELS);
        for m in &config.models {
            if !text_models.contains(m) {
                text_models.push(m.clone());
            }
        }
        let info = ProviderInfo {
            name,
            g4f_name: G4F_NAME.into(),
            label: "Hugging Face Inference".into(),
            url: llmux_hf::HUB_URL.into(),
            working: true,
            needs_auth: false,
            supports_stream: true,
            supports_system_message: true,
            supports_message_history: true,
            default_model: config
                .default_model
                .clone()
                .unwrap_or_else(|| models::DEFAULT_MODEL.into()),
            default_vision_model: Some(models::DEFAULT_VISION_MODEL.into()),
            default_image_model: Some(models::DEFAULT_IMAGE_MODEL.into()),
            models: text_models,
            model_aliases: models::aliases(),
            image_models: models::owned(models::IMAGE_MODELS),
            vision_models: models::owned(models::VISION_MODELS),
            audio_models: Vec::new(),
            capabilities: Capabilities::plain(
                &["temperature", "top_p", "max_tokens", "stop", "seed"],
                options::ALL,
            )
            .with_embeddings(),
            origins: Origin::list(ORIGINS),
        };
        Self {
            inner: Arc::new(Inner {
                info,
                config,
                models: ModelCache::new(),
                model_data: Mutex::new(HashMap::new()),
            }),
        }
    }
}

/// Saves the images of an [`Chunk::Images`] that carry bytes under `dir` (created if needed),
/// named `<unix seconds>_<safe prompt>_<hash>.<ext>` (see [`media::generated_file_name`]); an
/// existing file is never overwritten. Images given as URLs are skipped. Returns the paths.
pub async fn save_images(images: &[Image], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for img in images {
        if let MediaData::Bytes { mime, data } = &img.data {
            paths.push(media::save_media(dir, &img.alt, mime, data).await?);
        }
    }
    Ok(paths)
}

/// A model id as a URL path: each `/`-separated segment percent-encoded; empty, `.` and `..`
/// segments are refused.
fn model_path(model: &str) -> Result<String> {
    let mut out = String::with_capacity(model.len());
    for (i, seg) in model.split('/').enumerate() {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(Error::invalid(format!(
                "model id {:?} is not a Hugging Face repository id (`org/name`)",
                llmux_core::error::snippet(model, 80)
            )));
        }
        if i > 0 {
            out.push('/');
        }
        for b in seg.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Ok(out)
}

/// g4f's `use_aspect_ratio`: `width`, `height` and `extra_data` without nulls, with the default
/// size of a known aspect ratio filled in where missing.
fn image_extra(
    width: Option<&Value>,
    height: Option<&Value>,
    extra_data: &Map<String, Value>,
    aspect_ratio: Option<&str>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in [(options::WIDTH, width), (options::HEIGHT, height)] {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    for (k, v) in extra_data.iter().filter(|(_, v)| !v.is_null()) {
        out.insert(k.clone(), v.clone());
    }
    let size = match aspect_ratio {
        Some("1:1") => Some((1024, 1024)),
        Some("16:9") => Some((832, 480)),
        Some("9:16") => Some((480, 832)),
        _ => None,
    };
    if let Some((w, h)) = size {
        out.entry(options::WIDTH).or_insert(json!(w));
        out.entry(options::HEIGHT).or_insert(json!(h));
    }
    out
}

/// Recognises HF's "model is loading" answer: `Some(estimate)` for a JSON body with
/// `estimated_time` or an `error` mentioning loading.
fn loading_estimate(body: &str) -> Option<Option<Duration>> {
    let v: Value = serde_json::from_str(body.trim()).ok()?;
    let estimated = v
        .get("estimated_time")
        .and_then(Value::as_f64)
        .and_then(|s| Duration::try_from_secs_f64(s).ok());
    let loading = v
        .get("error")
        .and_then(Value::as_str)
        .is_some_and(|e| e.contains("loading"));
    (estimated.is_some() || loading).then_some(estimated)
}

impl Inner {
    fn option<'a>(&'a self, req: &'a ChatRequest, key: &str) -> Option<&'a Value> {
        req.extra
            .get(key)
            .or_else(|| self.config.options.get(key))
            .filter(|v| !v.is_null())
    }

    fn bool_option(&self, req: &ChatRequest, key: &str) -> Result<bool> {
        match self.option(req, key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Error::invalid(format!(
                "{}: option `{key}` must be true or false",
                self.info.name
            ))),
        }
    }

    fn str_option<'a>(&'a self, req: &'a ChatRequest, key: &str) -> Result<Option<&'a str>> {
        match self.option(req, key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::invalid(format!(
                "{}: option `{key}` must be a string",
                self.info.name
            ))),
        }
    }

    /// g4f's `get_model` without validation: empty → default, alias → target, else unchanged.
    fn resolve_model(&self, requested: &str) -> String {
        let requested = requested.trim();
        if requested.is_empty() {
            return self.info.default_model.clone();
        }
        self.info
            .alias_target(requested)
            .unwrap_or(requested)
            .to_owned()
    }

    fn call(&self, req: &ChatRequest) -> Result<Call> {
        let name = self.info.name.clone();
        let mode = match self.str_option(req, options::MODE)? {
            None | Some("inference") => Mode::Inference,
            Some("router") => Mode::Router,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "{name}: unknown mode {other:?}; use \"inference\" or \"router\""
                )));
            }
        };
        let template = match self.str_option(req, options::TEMPLATE)? {
            None => None,
            Some(t) => Some(Template::from_name(t).ok_or_else(|| {
                Error::invalid(format!(
                    "{name}: unknown template {t:?}; use generic, mistral, chatml, deepseek, llama3 or custom:<end token>"
                ))
            })?),
        };
        let extra_data = match self
            .option(req, options::EXTRA_DATA)
            .or_else(|| self.option(req, options::EXTRA_BODY))
        {
            None => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(_) => {
                return Err(Error::invalid(format!(
                    "{name}: option `extra_data` must be an object"
                )));
            }
        };
        let image_extra = image_extra(
            self.option(req, options::WIDTH),
            self.option(req, options::HEIGHT),
            &extra_data,
            self.str_option(req, options::ASPECT_RATIO)?,
        );
        let key = req
            .api_key
            .as_ref()
            .or(self.config.api_key.as_ref())
            .filter(|k| !k.is_empty())
            .cloned();
        Ok(Call {
            model: self.resolve_model(&req.model),
            key,
            mode,
            wait_for_model: self.bool_option(req, options::WAIT_FOR_MODEL)?,
            do_continue: self.str_option(req, options::ACTION)? == Some("continue"),
            template,
            extra_data,
            image_extra,
            name,
        })
    }

    /// Session headers of every request of a call (g4f: `Accept-Encoding`, bearer token).
    fn prepare(&self, rb: RequestBuilder, call: &Call) -> RequestBuilder {
        let rb = rb
            .provider(&call.name)
            .header("accept-encoding", "gzip, deflate");
        match &call.key {
            Some(k) => rb.bearer(k),
            None => rb,
        }
    }

    fn not_supported(&self, model: &str) -> Error {
        Error::ModelNotSupported {
            provider: self.info.name.clone(),
            model: model.to_owned(),
            valid: Vec::new(),
        }
    }

    /// Passes 2xx through; 404 → model not supported; 503 "loading" → [`Error::ModelLoading`];
    /// anything else by the generic status rules.
    async fn check(&self, resp: Response, call: &Call) -> Result<Response> {
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        if status == 404 {
            return Err(self.not_supported(&call.model));
        }
        if status != 503 {
            return Err(resp.into_error(StatusRules::Generic).await);
        }
        let ct = resp.content_type().map(str::to_owned);
        let retry = resp.retry_after();
        let mut body = Vec::new();
        let mut stream = resp.into_stream();
        while let Some(piece) = stream.next().await {
            body.extend_from_slice(&piece?);
            if body.len() >= ERROR_BODY_LIMIT {
                body.truncate(ERROR_BODY_LIMIT);
                break;
            }
        }
        let mut body = String::from_utf8_lossy(&body).into_owned();
        if let Some(estimated) = loading_estimate(&body) {
            return Err(Error::ModelLoading {
                provider: call.name.clone(),
                model: call.model.clone(),
                estimated,
            });
        }
        if let Some(k) = call.key.as_ref().filter(|k| k.expose().len() >= 4) {
            body = body.replace(k.expose(), "***");
        }
        Err(status_error(
            &call.name,
            status,
            ct.as_deref(),
            &body,
            retry,
            StatusRules::Generic,
        ))
    }

    /// POSTs `body` to `url`; with `wait_for_model`, a loading model is waited for (the upstream's
    /// estimate, at most 30 s at a time) and asked again while the call's deadline allows.
    async fn post(&self, ctx: &Context, url: &str, body: &Value, call: &Call) -> Result<Response> {
        loop {
            let rb = self.prepare(ctx.http.post(url), call).json(body);
            let resp = rb.send().await?;
            match self.check(resp, call).await {
                Err(Error::ModelLoading {
                    provider,
                    model,
                    estimated,
                }) => {
                    let pause = estimated
                        .unwrap_or(DEFAULT_LOADING_PAUSE)
                        .clamp(Duration::from_millis(50), MAX_LOADING_PAUSE);
                    if !call.wait_for_model || Instant::now() + pause >= ctx.http.deadline() {
                        return Err(Error::ModelLoading {
                            provider,
                            model,
                            estimated,
                        });
                    }
                    tokio::time::sleep(pause).await;
                }
                other => return other,
            }
        }
    }

    /// The Hub data of `model`, fetched once per model id (errors are not cached).
    async fn model_data(&self, ctx: &Context, call: &Call) -> Result<Arc<Value>> {
        let cell = {
            let mut map = self
                .model_data
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            map.entry(call.model.clone()).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            let url = format!(
                "{}/api/models/{}",
                self.config.origin("hub", DEFAULT_HUB_URL),
                model_path(&call.model)?
            );
            let resp = self.prepare(ctx.http.get(url), call).send().await?;
            let resp = match resp.status().as_u16() {
                404 => return Err(self.not_supported(&call.model)),
                _ => resp.error_for_status().await?,
            };
            let v: Value = resp.json().await?;
            Ok(Arc::new(v))
        })
        .await
        .cloned()
    }

    /// One Hub listing; `None` when it answers a non-2xx status or something that is not JSON.
    async fn listing(&self, ctx: &Context, path: &str) -> Result<Option<Value>> {
        let url = format!("{}{path}", self.config.origin("hub", DEFAULT_HUB_URL));
        let resp = ctx
            .http
            .get(url)
            .provider(&self.info.name)
            .header("accept-encoding", "gzip, deflate")
            .send()
            .await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        Ok(resp.json::<Value>().await.ok())
    }

    async fn discover(&self, ctx: &Context) -> Result<Vec<String>> {
        self.models
            .get_or_fetch(|| async {
                let text = self.listing(ctx, models::TEXT_LISTING).await?;
                let image = self.listing(ctx, models::IMAGE_LISTING).await?;
                let mut all = models::merge_discovered(text.as_ref(), image.as_ref());
                for m in &self.config.models {
                    if !all.contains(m) {
                        all.push(m.clone());
                    }
                }
                Ok(all)
            })
            .await
    }

    fn inference_url(&self, req: &ChatRequest, call: &Call) -> Result<String> {
        let base = self.config.origin("base", DEFAULT_BASE_URL);
        if self.bool_option(req, options::TGI)? {
            Ok(base)
        } else {
            Ok(format!("{base}/models/{}", model_path(&call.model)?))
        }
    }

    /// The Together route: `Some(images)` on success, `None` on 404 (fall through).
    async fn together(
        &self,
        ctx: &Context,
        req: &ChatRequest,
        call: &Call,
    ) -> Result<Option<Chunk>> {
        let prompt = prompt::image_prompt(&req.messages, req.prompt.as_deref());
        let mut body = Map::new();
        body.insert("response_format".into(), json!("url"));
        body.insert("prompt".into(), json!(prompt));
        body.insert("model".into(), json!(call.model));
        body.extend(call.image_extra.clone());
        let url = format!(
            "{}{}",
            self.config.origin("router", DEFAULT_ROUTER_URL),
            models::TOGETHER_PATH
        );
        let rb = self.prepare(ctx.http.post(url), call).json(&body);
        let resp = rb.send().await?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        let v: Value = resp.error_for_status().await?.json().await?;
        llmux_openai::images::image_chunk(&call.name, &v, &prompt).map(Some)
    }

    /// The text-generation payload (g4f parameter rules: `temperature` null when unset, the gpt2
    /// token rule, `seed` only when given).
    fn text_payload(
        req: &ChatRequest,
        call: &Call,
        template: &Template,
        model_type: Option<&str>,
    ) -> Value {
        let inputs = template.inputs(&req.messages, call.do_continue);
        let max_tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        let mut params = Map::new();
        params.insert("return_full_text".into(), json!(false));
        params.insert("max_new_tokens".into(), json!(max_tokens));
        // TGI refuses a temperature that is not strictly positive (422); 0 means greedy, which
        // is TGI's default without a temperature.
        let temperature = req.temperature.filter(|t| *t > 0.0);
        params.insert("temperature".into(), json!(temperature));
        // TGI then reports the finish reason and token counts (`details`)
        params.insert("details".into(), json!(true));
        // TGI accepts top_p only strictly between 0 and 1 (1 is its default).
        if let Some(p) = req.top_p.filter(|p| *p > 0.0 && *p < 1.0) {
            params.insert("top_p".into(), json!(p));
        }
        if !req.stop.is_empty() {
            params.insert("stop".into(), json!(req.stop));
        }
        params.extend(call.extra_data.clone());
        if model_type == Some("gpt2") && max_tokens >= 1024 {
            params.insert("max_new_tokens".into(), json!(512));
        }
        if let Some(seed) = req.seed {
            params.insert("seed".into(), json!(seed));
        }
        json!({"inputs": inputs, "parameters": params, "stream": req.stream})
    }

    /// The text-to-image payload: the image prompt, a seed (random in `[0, 2^32]` when not given)
    /// and the image size options.
    fn image_payload(req: &ChatRequest, call: &Call, prompt: &str) -> Value {
        let seed = req
            .seed
            .unwrap_or_else(|| rand::random_range(0..=(1i64 << 32)));
        let mut params = Map::new();
        params.insert("seed".into(), json!(seed));
        params.extend(call.image_extra.clone());
        json!({"inputs": prompt, "parameters": params})
    }

    /// The router body: OpenAI chat-completions, without this provider's own options,
    /// `extra_data` merged in.
    fn router_body(req: &ChatRequest, call: &Call) -> Result<Value> {
        let mut body = llmux_openai::chat_body(req, &call.model)?;
        for k in options::ALL {
            body.extra.remove(*k);
        }
        body.extra.extend(call.extra_data.clone());
        serde_json::to_value(body)
            .map_err(|e| Error::invalid(format!("{NAME}: cannot encode the request: {e}")))
    }
}

fn answer(
    inner: Arc<Inner>,
    req: ChatRequest,
    ctx: Context,
) -> impl llmux_core::futures_util::Stream<Item = Result<Chunk>> + Send {
    llmux_core::async_stream::try_stream! {
        let call = inner.call(&req)?;
        let name = call.name.clone();

        if models::TOGETHER_MODELS.contains(&call.model.as_str()) {
            if let Some(images) = inner.together(&ctx, &req, &call).await? {
                yield images;
                return;
            }
        }

        if call.mode == Mode::Router {
            let url = format!("{}/v1/chat/completions", inner.config.origin("router", DEFAULT_ROUTER_URL));
            let resp = inner.post(&ctx, &url, &Inner::router_body(&req, &call)?, &call).await?;
            let mut chunks = std::pin::pin!(llmux_openai::response_chunks(name, resp));
            while let Some(c) = chunks.next().await {
                yield c?;
            }
            return;
        }

        let (pipeline_tag, template, model_type) = match &call.template {
            Some(t) => ("text-generation".to_owned(), t.clone(), None),
            None => {
                let data = inner.model_data(&ctx, &call).await?;
                let tag = data.get("pipeline_tag").and_then(Value::as_str).unwrap_or_default().to_owned();
                let model_type = data.pointer("/config/model_type").and_then(Value::as_str).map(str::to_owned);
                (tag, Template::select(&data), model_type)
            }
        };
        let url = inner.inference_url(&req, &call)?;
        match pipeline_tag.as_str() {
            "text-to-image" => {
                let prompt = prompt::image_prompt(&req.messages, req.prompt.as_deref());
                let payload = Inner::image_payload(&req, &call, &prompt);
                let resp = inner.post(&ctx, &url, &payload, &call).await?;
                let ct = resp.content_type().map(str::to_owned);
                let data = resp.bytes().await?;
                for c in tgi::complete_chunks(&name, ct.as_deref(), None, &data, &prompt)? {
                    yield c;
                }
            }
            "text-generation" | "image-text-to-text" => {
                let payload = Inner::text_payload(&req, &call, &template, model_type.as_deref());
                let resp = inner.post(&ctx, &url, &payload, &call).await?;
                let mime = tgi::mime_of(resp.content_type());
                let whole = !req.stream || mime.contains("json") || mime.starts_with("image/") || mime.starts_with("audio/");
                if whole {
                    let ct = resp.content_type().map(str::to_owned);
                    let prompt_tokens = resp.header("x-prompt-tokens").and_then(|v| v.trim().parse().ok());
                    let data = resp.bytes().await?;
                    for c in tgi::complete_chunks(&name, ct.as_deref(), prompt_tokens, &data, "")? {
                        yield c;
                    }
                } else {
                    let mut chunks = std::pin::pin!(tgi::stream_chunks(name, resp.into_stream(), call.do_continue));
                    while let Some(c) = chunks.next().await {
                        yield c?;
                    }
                }
            }
            _ => Err(inner.not_supported(&call.model))?,
        }
    }
}

impl Provider for HuggingFaceInference {
    fn info(&self) -> &ProviderInfo {
        &self.inner.info
    }

    fn models<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(self.inner.discover(ctx))
    }

    fn chat(&self, request: ChatRequest, ctx: Context) -> ChatStream {
        Box::pin(answer(self.inner.clone(), request, ctx))
    }

    fn embed<'a>(
        &'a self,
        request: EmbeddingRequest,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<EmbeddingResponse>> {
        Box::pin(self.inner.embed(request, ctx))
    }
}

/// Every upstream origin `(key, default URL)`, declared once: the registration and
/// [`ProviderInfo::origins`] both read it.
pub const ORIGINS: &[(&str, &str)] = &[
    ("base", DEFAULT_BASE_URL),
    ("hub", DEFAULT_HUB_URL),
    ("router", DEFAULT_ROUTER_URL),
];

llmux_core::inventory::submit! {
    Registration {
        name: NAME,
        g4f_name: G4F_NAME,
        origins: ORIGINS,
        build: |cfg| Arc::new(HuggingFaceInference::new(cfg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_paths() {
        assert_eq!(
            model_path("Qwen/Qwen2.5-72B-Instruct").ok().as_deref(),
            Some("Qwen/Qwen2.5-72B-Instruct")
        );
        assert_eq!(model_path("gpt2").ok().as_deref(), Some("gpt2"));
        assert_eq!(model_path("a b/c?d").ok().as_deref(), Some("a%20b/c%3Fd"));
        for bad in ["", "a//b", "../x", "a/./b", "/a"] {
            assert!(
                matches!(model_path(bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn aspect_ratio_rules() {
        let none = Map::new();
        let m = image_extra(None, None, &none, Some("16:9"));
        assert_eq!(Value::Object(m), json!({"width": 832, "height": 480}));
        let m = image_extra(Some(&json!(640)), Some(&Value::Null), &none, Some("9:16"));
        assert_eq!(Value::Object(m), json!({"width": 640, "height": 832}));
        let extra = json!({"height": 100, "guidance_scale": 3.5, "n": null});
        let extra = extra.as_object().cloned().unwrap_or_default();
        let m = image_extra(None, None, &extra, Some("1:1"));
        assert_eq!(
            Value::Object(m),
            json!({"width": 1024, "height": 100, "guidance_scale": 3.5})
        );
        assert!(image_extra(None, None, &none, Some("4:3")).is_empty());
    }

    #[test]
    fn loading_bodies() {
        assert_eq!(
            loading_estimate(r#"{"error":"Model x is currently loading","estimated_time":20.0}"#),
            Some(Some(Duration::from_secs(20)))
        );
        assert_eq!(
            loading_estimate(r#"{"error":"Model x is currently loading"}"#),
            Some(None)
        );
        assert_eq!(loading_estimate(r#"{"error":"Service Unavailable"}"#), None);
        assert_eq!(loading_estimate("<html>"), None);
    }

    #[test]
    fn resolution() {
        let p = HuggingFaceInference::new(ProviderConfig::named(NAME));
        assert_eq!(p.inner.resolve_model(""), models::DEFAULT_MODEL);
        assert_eq!(
            p.inner.resolve_model("flux"),
            "black-forest-labs/FLUX.1-dev"
        );
        assert_eq!(
            p.inner.resolve_model("qwen-2.5-72b"),
            "Qwen/Qwen2.5-Coder-32B-Instruct"
        );
        assert_eq!(p.inner.resolve_model("any/thing"), "any/thing");
    }

    #[test]
    fn text_parameters() {
        let p = HuggingFaceInference::new(ProviderConfig::named(NAME));
        let req = ChatRequest::user("m", "Hi");
        let call = p.inner.call(&req).expect("call");
        let v = Inner::text_payload(&req, &call, &Template::ChatMl, Some("qwen2"));
        assert_eq!(
            v,
            json!({"inputs": "<|im_start|>user\nHi\n<|im_end|>\n<|im_start|>assistant\n",
                   "parameters": {"return_full_text": false, "max_new_tokens": 1024, "temperature": null, "details": true},
                   "stream": true})
        );
        // gpt2 rule beats extra_data; seed only when given.
        let req = ChatRequest::user("m", "Hi")
            .with_stream(false)
            .with_seed(5)
            .with_temperature(0.5)
            .with_extra("extra_data", json!({"max_new_tokens": 2000, "top_k": 3}));
        let call = p.inner.call(&req).expect("call");
        let v = Inner::text_payload(&req, &call, &Template::Generic, Some("gpt2"));
        assert_eq!(
            v["parameters"],
            json!({"return_full_text": false, "max_new_tokens": 512, "temperature": 0.5, "details": true, "top_k": 3, "seed": 5})
        );
        assert_eq!(v["stream"], json!(false));
        let req = ChatRequest::user("m", "Hi")
            .with_temperature(0.0)
            .with_top_p(1.0);
        let call = p.inner.call(&req).expect("call");
        let v = Inner::text_payload(&req, &call, &Template::Generic, None);
        assert_eq!(
            v["parameters"],
            json!({"return_full_text": false, "max_new_tokens": 1024, "temperature": null, "details": true})
        );
        let req = ChatRequest::user("m", "Hi")
            .with_top_p(0.9)
            .with_max_tokens(1023);
        let call = p.inner.call(&req).expect("call");
        let v = Inner::text_payload(&req, &call, &Template::Generic, Some("gpt2"));
        assert_eq!(v["parameters"]["max_new_tokens"], json!(1023));
        assert_eq!(v["parameters"]["top_p"], json!(0.9));
    }

    #[test]
    fn bad_options_are_invalid_input() {
        let p = HuggingFaceInference::new(ProviderConfig::named(NAME));
        for (k, v) in [
            ("mode", json!("fast")),
            ("wait_for_model", json!("yes")),
            ("template", json!("jinja")),
            ("extra_data", json!([1])),
        ] {
            let req = ChatRequest::user("m", "Hi").with_extra(k, v);
            assert!(
                matches!(p.inner.call(&req), Err(Error::InvalidInput(_))),
                "{k}"
            );
        }
    }
}
