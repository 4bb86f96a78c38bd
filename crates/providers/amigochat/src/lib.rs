//! llmux provider `amigochat` (g4f `AmigoChat`): the backend of the AmigoChat web app, an
//! OpenAI-shaped API where every model is addressed by a `model` string plus a `personaId` taken
//! from a fixed table ([`CHAT_MODELS`], [`IMAGE_MODELS`]).
//!
//! - Chat models: `POST {base}/v1/chat/completions` with `chatId`, `personaId`, the sampling
//!   parameters (defaults `frequency_penalty 0`, `max_tokens 4000`, `presence_penalty 0`,
//!   `temperature 0.5`, `top_p 0.95`, overridden by the request) and `stream`; OpenAI SSE chunks
//!   (or one JSON completion) become text, finish reason and usage chunks.
//! - Image models: `POST {base}/v1/images/generations` with `prompt`, `model`, `personaId`; the
//!   URLs come back as one [`Chunk::Images`] with the prompt as alt text.
//! - Anonymous: `authorization: Bearer` (no token) and a random `x-device-uuid`.
//! - Up to [`MAX_ATTEMPTS`] attempts, each with a fresh device UUID and chat id, but only while
//!   nothing has been emitted yet.
//!
//! The upstream is marked not working in g4f, so [`ProviderInfo::working`] is false: automatic
//! routing skips this provider unless it is enabled in its configuration, but naming it
//! (`ChatRequest.provider = Some("amigochat")`, or `amigochat:<model>`) always works. The origin
//! is `LLMUX_AMIGOCHAT_BASE_URL` (default [`DEFAULT_BASE_URL`]; a trailing `/v1` is accepted), so
//! a compatible self-hosted server can stand in.
//!
//! # Where llmux differs from g4f
//!
//! - **No retry after output.** g4f retries even after text was yielded, so the retried stream
//!   repeats everything; llmux retries only before the first content chunk and otherwise returns
//!   the error.
//! - **Retry-After is honoured.** A rate limit with `Retry-After` up to 10 s is waited out before
//!   the next attempt; a longer one (or one past the call's deadline) ends the retries at once so
//!   the caller can fall back. Invalid input and an exhausted total timeout are not retried.
//! - **Non-streaming works.** With `stream: false` the JSON completion is parsed (g4f reads only
//!   `data: ` lines and yields nothing).
//! - **Broken streams are errors.** Malformed SSE JSON, an `error` object inside the stream and a
//!   stream cut before `[DONE]` (without a finish reason) are reported instead of ignored; the
//!   finish reason and usage are passed on when sent.
//! - **Image prompt.** [`ChatRequest::prompt`] is used when set (g4f ignores it and sends the last
//!   message, e.g. `"Generate a image: …"`); otherwise the text of the last message. An image
//!   response without any image is a protocol error instead of silent empty output.
//! - **Media.** Attachments are sent OpenAI-style (`image_url` / `input_audio` parts on the last
//!   user message) instead of being dropped.
//! - **Aliases.** As in g4f, `gpt-4o` maps to `gpt-4o-2024-11-20` (so the `gpt-4o` /
//!   `summarizer` entry cannot be selected) and `claude-3.5-sonnet` to
//!   `claude-3-5-sonnet-20241022`.
//!
//! ```
//! use llmux_core::{Provider, ProviderConfig};
//! use llmux_provider_amigochat::{AmigoChat, persona_id};
//!
//! let p = AmigoChat::new(ProviderConfig::named("amigochat"));
//! assert_eq!(p.info().g4f_name, "AmigoChat");
//! assert!(!p.info().working);
//! assert_eq!(persona_id("gpt-4o-mini"), Some("amigo"));
//! assert_eq!(persona_id("flux/dev"), Some("flux-dev"));
//! ```
//!
//! Through the facade (the provider must be named, since it is not working by default):
//!
//! ```no_run
//! # async fn demo() -> llmux::Result<()> {
//! use llmux::{ChatRequest, Client, Message};
//! let client = Client::from_env()?;
//! let req = ChatRequest::new("gpt-4o-mini", vec![Message::user("Say hi")]).with_provider("amigochat");
//! let answer = client.complete(req).await?;
//! println!("{}", answer.text);
//! # Ok(()) }
//! ```
//!
//! The same against a fake AmigoChat upstream on 127.0.0.1 (from `llmux-testkit`, which checks
//! the headers and persona ids the real service checks); this one runs as a doctest:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> llmux::Result<()> {
//! use llmux::{ChatRequest, Client, Message, ProviderConfig, Proxy};
//! use llmux_testkit::amigochat::FakeAmigoChat;
//!
//! let upstream = FakeAmigoChat::new().reply("Hi there!").start().await;
//! let client = Client::builder()
//!     .ignore_env()
//!     .proxy(Proxy::Direct) // the fake is on loopback
//!     .provider("amigochat", ProviderConfig::default().with_base_url(upstream.url("")))
//!     .build()?;
//! let req = ChatRequest::new("gpt-4o-mini", vec![Message::user("Say hi")]).with_provider("amigochat");
//! let answer = client.complete(req).await?;
//! assert_eq!((answer.provider.as_str(), answer.text.as_str()), ("amigochat", "Hi there!"));
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use llmux_core::error::{Action, MAX_INLINE_RETRY_WAIT};
use llmux_core::futures_util::{Stream, StreamExt};
use llmux_core::http::{RequestBuilder, Response};
use llmux_core::provider::Origin;
use llmux_core::{
    Capabilities, ChatRequest, ChatStream, Chunk, Context, Error, Message, Provider,
    ProviderConfig, ProviderInfo, Registration, Result, TimeoutPhase, random,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

/// Provider name.
pub const NAME: &str = "amigochat";
/// g4f class name (accepted as an alias of [`NAME`]).
pub const G4F_NAME: &str = "AmigoChat";
/// Default API origin (`LLMUX_AMIGOCHAT_BASE_URL` overrides it).
pub const DEFAULT_BASE_URL: &str = "https://api.amigochat.io";
/// The web app's URL (sent as `origin`, and the provider's home page).
pub const SITE_URL: &str = "https://amigochat.io/chat/";
/// The `referer` header value (the double slash is what the web app sends).
pub const REFERER: &str = "https://amigochat.io/chat//";
/// Model used when none is asked for.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// Attempts per call (each with a fresh device UUID), as in g4f.
pub const MAX_ATTEMPTS: u32 = 3;
/// The `user-agent` header value.
pub const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36";

/// Chat models and their `personaId`, in g4f's order.
pub const CHAT_MODELS: &[(&str, &str)] = &[
    ("gpt-4o-2024-11-20", "gpt"),
    ("gpt-4o", "summarizer"),
    ("gpt-4o-mini", "amigo"),
    ("o1-preview-", "openai-o-one"),
    ("o1-preview-2024-09-12-", "orion"),
    ("o1-mini-", "openai-o-one-mini"),
    (
        "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo",
        "llama-three-point-one",
    ),
    (
        "meta-llama/Llama-3.2-90B-Vision-Instruct-Turbo",
        "llama-3-2",
    ),
    (
        "codellama/CodeLlama-34b-Instruct-hf",
        "codellama-CodeLlama-34b-Instruct-hf",
    ),
    ("gemini-1.5-pro", "gemini-1-5-pro"),
    ("gemini-1.5-flash", "gemini-1.5-flash"),
    ("claude-3-5-sonnet-20240620", "claude"),
    (
        "claude-3-5-sonnet-20241022",
        "clude-claude-3-5-sonnet-20241022",
    ),
    ("claude-3-5-haiku-latest", "3-5-haiku"),
    ("Qwen/Qwen2.5-72B-Instruct-Turbo", "qwen-2-5"),
    ("google/gemma-2b-it", "google-gemma-2b-it"),
    ("google/gemma-7b", "google-gemma-7b"),
    ("Gryphe/MythoMax-L2-13b", "Gryphe-MythoMax-L2-13b"),
    (
        "mistralai/Mistral-7B-Instruct-v0.3",
        "mistralai-Mistral-7B-Instruct-v0.1",
    ),
    ("mistralai/mistral-tiny", "mistralai-mistral-tiny"),
    ("mistralai/mistral-nemo", "mistralai-mistral-nemo"),
    (
        "deepseek-ai/deepseek-llm-67b-chat",
        "deepseek-ai-deepseek-llm-67b-chat",
    ),
    ("databricks/dbrx-instruct", "databricks-dbrx-instruct"),
    (
        "NousResearch/Nous-Hermes-2-Mixtral-8x7B-DPO",
        "NousResearch-Nous-Hermes-2-Mixtral-8x7B-DPO",
    ),
    ("x-ai/grok-beta", "x-ai-grok-beta"),
    (
        "anthracite-org/magnum-v4-72b",
        "anthracite-org-magnum-v4-72b",
    ),
    ("cohere/command-r-plus", "cohere-command-r-plus"),
    ("ai21/jamba-1-5-mini", "ai21-jamba-1-5-mini"),
    ("zero-one-ai/Yi-34B", "zero-one-ai-Yi-34B"),
];

/// Image models and their `personaId`, in g4f's order.
pub const IMAGE_MODELS: &[(&str, &str)] = &[
    ("flux-pro/v1.1", "flux-1-1-pro"),
    ("flux-realism", "flux-realism"),
    ("flux-pro", "flux-pro"),
    ("flux-pro/v1.1-ultra", "flux-pro-v1.1-ultra"),
    ("flux-pro/v1.1-ultra-raw", "flux-pro-v1.1-ultra-raw"),
    ("flux/dev", "flux-dev"),
    ("dall-e-3", "dalle-three"),
    ("recraft-v3", "recraft"),
];

/// Model aliases (alias → model id), as in g4f (where `claude-3.5-sonnet` appears twice and the
/// second entry wins).
pub const MODEL_ALIASES: &[(&str, &str)] = &[
    ("gpt-4o", "gpt-4o-2024-11-20"),
    ("gpt-4o-mini", "gpt-4o-mini"),
    (
        "llama-3.1-405b",
        "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo",
    ),
    (
        "llama-3.2-90b",
        "meta-llama/Llama-3.2-90B-Vision-Instruct-Turbo",
    ),
    ("codellama-34b", "codellama/CodeLlama-34b-Instruct-hf"),
    ("gemini-flash", "gemini-1.5-flash"),
    ("claude-3.5-sonnet", "claude-3-5-sonnet-20241022"),
    ("claude-3.5-haiku", "claude-3-5-haiku-latest"),
    ("qwen-2.5-72b", "Qwen/Qwen2.5-72B-Instruct-Turbo"),
    ("gemma-2b", "google/gemma-2b-it"),
    ("mythomax-13b", "Gryphe/MythoMax-L2-13b"),
    ("mixtral-7b", "mistralai/Mistral-7B-Instruct-v0.3"),
    ("mistral-nemo", "mistralai/mistral-nemo"),
    ("deepseek-chat", "deepseek-ai/deepseek-llm-67b-chat"),
    ("dbrx-instruct", "databricks/dbrx-instruct"),
    (
        "mixtral-8x7b-dpo",
        "NousResearch/Nous-Hermes-2-Mixtral-8x7B-DPO",
    ),
    ("grok-beta", "x-ai/grok-beta"),
    ("magnum-72b", "anthracite-org/magnum-v4-72b"),
    ("command-r-plus", "cohere/command-r-plus"),
    ("jamba-mini", "ai21/jamba-1-5-mini"),
    ("flux-dev", "flux/dev"),
];

/// Headers of every request besides `content-type` and `x-device-uuid` (g4f's exact set).
const HEADERS: &[(&str, &str)] = &[
    ("accept", "*/*"),
    ("accept-language", "en-US,en;q=0.9"),
    ("authorization", "Bearer"),
    ("cache-control", "no-cache"),
    ("origin", SITE_URL),
    ("pragma", "no-cache"),
    ("priority", "u=1, i"),
    ("referer", REFERER),
    (
        "sec-ch-ua",
        "\"Chromium\";v=\"129\", \"Not=A?Brand\";v=\"8\"",
    ),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", "\"Linux\""),
    ("user-agent", USER_AGENT),
    ("x-device-language", "en-US"),
    ("x-device-platform", "web"),
    ("x-device-version", "1.0.45"),
];

/// The `personaId` of a model id (chat table first, then image table), as g4f's `get_personaId`.
pub fn persona_id(model: &str) -> Option<&'static str> {
    CHAT_MODELS
        .iter()
        .chain(IMAGE_MODELS)
        .find(|(m, _)| *m == model)
        .map(|(_, p)| *p)
}

/// True for the models answered by the image-generation endpoint.
pub fn is_image_model(model: &str) -> bool {
    IMAGE_MODELS.iter().any(|(m, _)| *m == model)
}

/// The AmigoChat provider.
pub struct AmigoChat {
    inner: Arc<Inner>,
}

struct Inner {
    info: ProviderInfo,
    config: ProviderConfig,
}

impl AmigoChat {
    /// An instance for this configuration (origin `base`, optional default model).
    pub fn new(config: ProviderConfig) -> Self {
        let name = if config.name.is_empty() {
            NAME.to_owned()
        } else {
            config.name.clone()
        };
        let owned = |list: &[(&str, &str)]| -> Vec<String> {
            list.iter().map(|(m, _)| (*m).to_owned()).collect()
        };
        let mut models = owned(CHAT_MODELS);
        models.extend(owned(IMAGE_MODELS));
        let info = ProviderInfo {
            name,
            g4f_name: G4F_NAME.into(),
            label: "AmigoChat".into(),
            url: SITE_URL.into(),
            working: false,
            needs_auth: false,
            supports_stream: true,
            supports_system_message: true,
            supports_message_history: true,
            default_model: config
                .default_model
                .clone()
                .unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            models,
            model_aliases: MODEL_ALIASES
                .iter()
                .map(|(a, m)| ((*a).to_owned(), (*m).to_owned()))
                .collect(),
            image_models: owned(IMAGE_MODELS),
            capabilities: Capabilities::plain(
                &[
                    "temperature",
                    "top_p",
                    "max_tokens",
                    "presence_penalty",
                    "frequency_penalty",
                ],
                &[],
            ),
            origins: Origin::list(ORIGINS),
            ..ProviderInfo::default()
        };
        Self {
            inner: Arc::new(Inner { info, config }),
        }
    }
}

impl Inner {
    /// `{origin}/v1` (an origin configured with its `/v1` is accepted as is).
    fn api_base(&self) -> String {
        let base = self.config.origin("base", DEFAULT_BASE_URL);
        if base.ends_with("/v1") {
            base
        } else {
            format!("{base}/v1")
        }
    }
}

/// The chat-completions body, in g4f's key order.
#[derive(Serialize)]
struct ChatBody {
    #[serde(rename = "chatId")]
    chat_id: String,
    frequency_penalty: Value,
    max_tokens: Value,
    messages: Vec<Message>,
    model: String,
    #[serde(rename = "personaId")]
    persona_id: &'static str,
    presence_penalty: Value,
    stream: bool,
    temperature: Value,
    top_p: Value,
}

/// The image-generation body, in g4f's key order.
#[derive(Serialize)]
struct ImageBody {
    prompt: String,
    model: String,
    #[serde(rename = "personaId")]
    persona_id: &'static str,
}

/// What one call asks for.
enum Job {
    Chat(Box<ChatBody>),
    Image(ImageBody),
}

fn number_or(value: Option<f64>, default: Value) -> Value {
    value.map_or(default, |v| json!(v))
}

/// The messages as given (keys in their usual order); media attachments become OpenAI parts of
/// the last user message.
fn messages(req: &ChatRequest) -> Result<Vec<Message>> {
    if req.media.is_empty() {
        return Ok(req.messages.clone());
    }
    serde_json::to_value(llmux_openai::convert::messages_out(req)?)
        .and_then(serde_json::from_value)
        .map_err(|e| Error::invalid(format!("{NAME}: cannot attach media: {e}")))
}

impl Job {
    fn new(req: &ChatRequest, model: String, persona_id: &'static str) -> Result<Self> {
        if is_image_model(&model) {
            let prompt = match &req.prompt {
                Some(p) => p.clone(),
                None => req.messages.last().map(|m| m.text()).unwrap_or_default(),
            };
            if prompt.trim().is_empty() {
                return Err(Error::invalid(format!(
                    "{NAME}: image model `{model}` needs a prompt (a last message with text, or `prompt`)"
                )));
            }
            return Ok(Job::Image(ImageBody {
                prompt,
                model,
                persona_id,
            }));
        }
        if req.messages.is_empty() {
            return Err(Error::invalid(format!(
                "{NAME}: the request has no messages"
            )));
        }
        Ok(Job::Chat(Box::new(ChatBody {
            chat_id: String::new(),
            frequency_penalty: number_or(req.frequency_penalty, json!(0)),
            max_tokens: req.max_tokens.map_or(json!(4000), |n| json!(n)),
            messages: messages(req)?,
            model,
            persona_id,
            presence_penalty: number_or(req.presence_penalty, json!(0)),
            stream: req.stream,
            temperature: number_or(req.temperature, json!(0.5)),
            top_p: number_or(req.top_p, json!(0.95)),
        })))
    }
}

/// The request with g4f's header set and this attempt's device UUID.
fn with_headers(mut rb: RequestBuilder, device_uuid: &str) -> RequestBuilder {
    for (k, v) in HEADERS {
        rb = rb.header(k, v);
    }
    rb.header("x-device-uuid", device_uuid)
}

/// How long to wait before retrying after `error`, or `None` when retrying cannot help (invalid
/// input, total timeout, a `Retry-After` longer than llmux waits inline or past the deadline).
fn retry_delay(error: &Error, deadline: Instant) -> Option<Duration> {
    if error.action() == Action::GiveUp
        || matches!(
            error,
            Error::Timeout {
                phase: TimeoutPhase::Total,
                ..
            }
        )
    {
        return None;
    }
    let delay = error.retry_after().unwrap_or(Duration::ZERO);
    (delay <= MAX_INLINE_RETRY_WAIT && Instant::now() + delay < deadline).then_some(delay)
}

async fn send(inner: &Inner, job: &mut Job, device_uuid: &str, ctx: &Context) -> Result<Response> {
    let name = &inner.info.name;
    let rb = match job {
        Job::Chat(body) => {
            body.chat_id = random::uuid_v4();
            let rb = ctx
                .http
                .post(format!("{}/chat/completions", inner.api_base()))
                .provider(name);
            with_headers(rb, device_uuid).json(&**body)
        }
        Job::Image(body) => {
            let rb = ctx
                .http
                .post(format!("{}/images/generations", inner.api_base()))
                .provider(name);
            with_headers(rb, device_uuid).json(body)
        }
    };
    rb.send().await?.error_for_status().await
}

fn answer(
    inner: Arc<Inner>,
    req: ChatRequest,
    ctx: Context,
) -> impl Stream<Item = Result<Chunk>> + Send {
    llmux_core::async_stream::try_stream! {
        let name = inner.info.name.clone();
        let model = inner.info.resolve_model(&req.model, None)?;
        let persona = persona_id(&model).ok_or_else(|| Error::ModelNotSupported {
            provider: name.clone(),
            model: model.clone(),
            valid: inner.info.all_models(),
        })?;
        let mut job = Job::new(&req, model, persona)?;
        let mut attempt = 1;
        loop {
            let device_uuid = random::uuid_v4();
            let mut emitted = false;
            let failure = match send(&inner, &mut job, &device_uuid, &ctx).await {
                Err(e) => e,
                Ok(resp) => match &job {
                    Job::Image(body) => {
                        let parsed = resp.json::<Value>().await;
                        match parsed.and_then(|v| llmux_openai::images::image_chunk(&name, &v, &body.prompt)) {
                            Ok(chunk) => {
                                yield chunk;
                                return;
                            }
                            Err(e) => e,
                        }
                    }
                    Job::Chat(_) => {
                        let mut chunks = std::pin::pin!(llmux_openai::read::response_chunks_until(name.clone(), resp, llmux_openai::read::Ending::DoneOrFinishReason));
                        loop {
                            match chunks.next().await {
                                None => return,
                                Some(Ok(chunk)) => {
                                    emitted |= chunk.is_content();
                                    yield chunk;
                                }
                                Some(Err(e)) => break e,
                            }
                        }
                    }
                },
            };
            // Retrying after output would repeat it (g4f does); only retry before the first content.
            let delay = if emitted || attempt >= MAX_ATTEMPTS {
                None
            } else {
                retry_delay(&failure, ctx.http.deadline())
            };
            let Some(delay) = delay else {
                Err(failure)?;
                return;
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            attempt += 1;
        }
    }
}

impl Provider for AmigoChat {
    fn info(&self) -> &ProviderInfo {
        &self.inner.info
    }

    fn chat(&self, request: ChatRequest, ctx: Context) -> ChatStream {
        Box::pin(answer(self.inner.clone(), request, ctx))
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
        build: |cfg| Arc::new(AmigoChat::new(cfg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_metadata() {
        assert_eq!(CHAT_MODELS.len(), 29);
        assert_eq!(IMAGE_MODELS.len(), 8);
        assert_eq!(persona_id("gpt-4o"), Some("summarizer"));
        assert_eq!(
            persona_id("mistralai/Mistral-7B-Instruct-v0.3"),
            Some("mistralai-Mistral-7B-Instruct-v0.1")
        );
        assert_eq!(persona_id("dall-e-3"), Some("dalle-three"));
        assert_eq!(persona_id("nope"), None);
        // every alias points at a listed model
        for (alias, target) in MODEL_ALIASES {
            assert!(persona_id(target).is_some(), "{alias} -> {target}");
        }
        let p = AmigoChat::new(ProviderConfig::default());
        let info = p.info();
        assert_eq!(info.name, NAME);
        assert!(!info.working && !info.needs_auth);
        assert_eq!(info.models.len(), 37);
        assert_eq!(
            info.models.first().map(String::as_str),
            Some("gpt-4o-2024-11-20")
        );
        assert_eq!(info.models.last().map(String::as_str), Some("recraft-v3"));
        assert_eq!(
            info.resolve_model("", None).ok().as_deref(),
            Some("gpt-4o-mini")
        );
        assert_eq!(
            info.resolve_model("gpt-4o", None).ok().as_deref(),
            Some("gpt-4o-2024-11-20")
        );
        assert!(matches!(
            info.resolve_model("gpt-5", None),
            Err(Error::ModelNotSupported { .. })
        ));
    }

    #[test]
    fn api_base_accepts_origin_or_v1() {
        let base = |url: &str| {
            Inner {
                info: ProviderInfo::default(),
                config: ProviderConfig::default().with_base_url(url),
            }
            .api_base()
        };
        assert_eq!(base("http://127.0.0.1:9"), "http://127.0.0.1:9/v1");
        assert_eq!(base("http://127.0.0.1:9/"), "http://127.0.0.1:9/v1");
        assert_eq!(base("http://127.0.0.1:9/v1/"), "http://127.0.0.1:9/v1");
        let default = Inner {
            info: ProviderInfo::default(),
            config: ProviderConfig::default(),
        };
        assert_eq!(default.api_base(), "https://api.amigochat.io/v1");
    }

    #[test]
    fn retry_policy() {
        let far = Instant::now() + Duration::from_secs(60);
        let status = Error::HttpStatus {
            provider: NAME.into(),
            status: 500,
            message: "x".into(),
        };
        assert_eq!(retry_delay(&status, far), Some(Duration::ZERO));
        let rl = |secs| Error::RateLimited {
            provider: NAME.into(),
            message: "slow".into(),
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(retry_delay(&rl(2), far), Some(Duration::from_secs(2)));
        assert_eq!(retry_delay(&rl(120), far), None);
        assert_eq!(
            retry_delay(&rl(2), Instant::now() + Duration::from_secs(1)),
            None
        );
        assert_eq!(retry_delay(&Error::invalid("bad"), far), None);
        let total = Error::Timeout {
            provider: NAME.into(),
            phase: TimeoutPhase::Total,
            after: Duration::from_secs(1),
        };
        assert_eq!(retry_delay(&total, far), None);
    }

    #[test]
    fn chat_body_defaults_and_overrides() {
        let req = ChatRequest::user("", "Say hi");
        let Ok(Job::Chat(mut body)) = Job::new(&req, "gpt-4o-mini".into(), "amigo") else {
            panic!("chat job expected");
        };
        body.chat_id = "c".into();
        assert_eq!(
            serde_json::to_string(&body).expect("json"),
            r#"{"chatId":"c","frequency_penalty":0,"max_tokens":4000,"messages":[{"role":"user","content":"Say hi"}],"model":"gpt-4o-mini","personaId":"amigo","presence_penalty":0,"stream":true,"temperature":0.5,"top_p":0.95}"#
        );
        let req = ChatRequest::user("", "x")
            .with_temperature(0.2)
            .with_max_tokens(10)
            .with_stream(false);
        let Ok(Job::Chat(body)) = Job::new(&req, "gpt-4o-mini".into(), "amigo") else {
            panic!("chat job expected");
        };
        assert_eq!(body.temperature, json!(0.2));
        assert_eq!(body.max_tokens, json!(10));
        assert!(!body.stream);
        let with_media = ChatRequest::user("", "what is this?").with_media(
            llmux_core::Media::from_bytes(&b"\x89PNG\r\n\x1a\n...."[..], None),
        );
        let Ok(Job::Chat(body)) = Job::new(&with_media, "gpt-4o-mini".into(), "amigo") else {
            panic!("chat job expected");
        };
        let v = serde_json::to_value(&body.messages).expect("json");
        assert_eq!(
            v[0]["content"][0],
            json!({"type": "text", "text": "what is this?"})
        );
        assert!(
            v[0]["content"][1]["image_url"]["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("data:image/png;base64,"))
        );
        let empty = ChatRequest::new("", vec![]);
        assert!(matches!(
            Job::new(&empty, "gpt-4o-mini".into(), "amigo"),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            Job::new(&empty, "flux/dev".into(), "flux-dev"),
            Err(Error::InvalidInput(_))
        ));
    }
}
