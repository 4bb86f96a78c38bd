//! llmux provider `flowgpt` (g4f `FlowGpt`): FlowGPT's anonymous chat backend, with signed
//! requests and a newline-delimited JSON event stream.
//!
//! - `POST {base}/v3/chat-anonymous` with the last message as `question`, the earlier non-system
//!   messages as `history` (after a fixed assistant greeting), the system messages joined as
//!   `system` (default [`DEFAULT_SYSTEM_PROMPT`]), `temperature` (default 0.7) and FlowGPT's
//!   constant fields.
//! - Signed headers: `x-timestamp` (Unix seconds), `x-nonce` (32 hex characters), `x-signature`
//!   = lower-case hex MD5 of `"<timestamp>-<nonce>-Bearer null"`, and a fresh
//!   `x-flow-device-id` (`f-` + 19 characters from `[a-z0-9]`). The clock and randomness come
//!   from a [`Signer`]; the registered instance uses [`SystemSigner`], tests and replays inject
//!   their own with [`FlowGpt::with_signer`].
//! - Response: JSON lines; `{"event":"text","data":"…"}` is a text delta, other events and
//!   objects without `event` are ignored, and a line that is not JSON is a protocol error (with a
//!   snippet of the line).
//!
//! The upstream is marked not working in g4f, so [`ProviderInfo::working`] is false: automatic
//! routing skips this provider unless it is enabled in its configuration, but naming it
//! (`ChatRequest.provider = Some("flowgpt")`) always works. The origin is
//! `LLMUX_FLOWGPT_BASE_URL` (default [`DEFAULT_BASE_URL`]). Stateless: the whole history is sent
//! every time; no retries (the facade decides about those).
//!
//! # Where llmux differs from g4f
//!
//! - A request without messages, or with media attachments (which FlowGPT cannot receive), is
//!   [`Error::InvalidInput`] instead of a crash or silently dropped attachments.
//! - The system prompt is built from the text of the system messages (g4f joins the raw
//!   `content` values and fails on multi-part content).
//! - A `text` event whose `data` is not a string is passed on as its JSON text.
//!
//! ```
//! use llmux_core::{Provider, ProviderConfig};
//! use llmux_provider_flowgpt::{FlowGpt, signature};
//!
//! let p = FlowGpt::new(ProviderConfig::named("flowgpt"));
//! assert!(!p.info().working);
//! assert_eq!(p.info().resolve_model("gemini", None).ok().as_deref(), Some("google-gemini"));
//! assert_eq!(
//!     signature("1714000000", "9f86d081884c7d659a2feaa0c55ad015"),
//!     "8665df1a193a76960370763fb6ec50f9"
//! );
//! ```
//!
//! Replaying a request with fixed signing inputs:
//!
//! ```
//! use std::sync::Arc;
//! use llmux_core::ProviderConfig;
//! use llmux_provider_flowgpt::{FixedSigner, FlowGpt, SignedHeaders};
//!
//! let signer = FixedSigner {
//!     unix_time: 1_714_000_000,
//!     nonce: "9f86d081884c7d659a2feaa0c55ad015".into(),
//!     device_id: "f-k3j9x0q2m8v7b1n5c4z".into(),
//! };
//! assert_eq!(SignedHeaders::generate(&signer).signature, "8665df1a193a76960370763fb6ec50f9");
//! let _provider = FlowGpt::with_signer(ProviderConfig::named("flowgpt"), Arc::new(signer));
//! ```

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use llmux_core::decode::jsonl::json_lines;
use llmux_core::futures_util::{Stream, StreamExt};
use llmux_core::provider::Origin;
use llmux_core::{
    Capabilities, ChatRequest, ChatStream, Chunk, Content, Context, Error, Message, Provider,
    ProviderConfig, ProviderInfo, Registration, Result, Role, prompt, random,
};
use md5::{Digest, Md5};
use serde::Serialize;
use serde_json::{Value, json};

/// Provider name.
pub const NAME: &str = "flowgpt";
/// g4f class name (accepted as an alias of [`NAME`]).
pub const G4F_NAME: &str = "FlowGpt";
/// Default API origin (`LLMUX_FLOWGPT_BASE_URL` overrides it).
pub const DEFAULT_BASE_URL: &str = "https://prod-backend-k8s.flowgpt.com";
/// Path of the chat endpoint under the origin.
pub const CHAT_PATH: &str = "/v3/chat-anonymous";
/// The web app's URL.
pub const SITE_URL: &str = "https://flowgpt.com/chat";
/// Model used when none is asked for.
pub const DEFAULT_MODEL: &str = "gpt-3.5-turbo";
/// The `Authorization` value, which is also the last part of the signed string.
pub const AUTH: &str = "Bearer null";
/// The assistant greeting every `history` starts with.
pub const GREETING: &str = "Hello, how can I help you today?";
/// The system prompt sent when the request has none.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are helpful assistant. Follow the user's instructions carefully.";
/// The `User-Agent` header value.
pub const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0";

/// Models, in g4f's order.
pub const MODELS: &[&str] = &[
    "gpt-3.5-turbo",
    "gpt-3.5-long",
    "gpt-4-turbo",
    "google-gemini",
    "claude-instant",
    "claude-v1",
    "claude-v2",
    "llama2-13b",
    "mythalion-13b",
    "pygmalion-13b",
    "chronos-hermes-13b",
    "Mixtral-8x7B",
    "Dolphin-2.6-8x7B",
];

/// Model aliases (alias → model id).
pub const MODEL_ALIASES: &[(&str, &str)] =
    &[("gemini", "google-gemini"), ("gemini-pro", "google-gemini")];

/// Headers of every request besides the signed ones and `content-type` (g4f's set; names are
/// sent lower-case).
const HEADERS: &[(&str, &str)] = &[
    ("user-agent", USER_AGENT),
    ("accept", "*/*"),
    ("accept-language", "en-US;q=0.7,en;q=0.3"),
    ("accept-encoding", "gzip, deflate, br"),
    ("referer", "https://flowgpt.com/"),
    ("authorization", AUTH),
    ("origin", "https://flowgpt.com"),
    ("connection", "keep-alive"),
    ("sec-fetch-dest", "empty"),
    ("sec-fetch-mode", "cors"),
    ("sec-fetch-site", "same-site"),
    ("te", "trailers"),
];

/// The clock and randomness behind the signed headers.
///
/// The registered provider uses [`SystemSigner`]; implement this (or use [`FixedSigner`]) to make
/// the signature reproducible.
pub trait Signer: Send + Sync {
    /// The current Unix time in whole seconds.
    fn unix_time(&self) -> u64;
    /// A fresh nonce: 32 lower-case hex characters.
    fn nonce(&self) -> String;
    /// A fresh device id: `f-` followed by 19 characters from `[a-z0-9]`.
    fn device_id(&self) -> String;
}

/// The real clock and the thread-local random generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemSigner;

impl Signer for SystemSigner {
    fn unix_time(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn nonce(&self) -> String {
        random::random_hex(32)
    }

    fn device_id(&self) -> String {
        format!("f-{}", random::random_string(19))
    }
}

/// Fixed signing inputs (replaying recorded transcripts, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedSigner {
    /// The Unix time to sign with.
    pub unix_time: u64,
    /// The nonce.
    pub nonce: String,
    /// The device id.
    pub device_id: String,
}

impl Signer for FixedSigner {
    fn unix_time(&self) -> u64 {
        self.unix_time
    }

    fn nonce(&self) -> String {
        self.nonce.clone()
    }

    fn device_id(&self) -> String {
        self.device_id.clone()
    }
}

/// Lower-case hex MD5 of `"<timestamp>-<nonce>-Bearer null"`: the `x-signature` header.
pub fn signature(timestamp: &str, nonce: &str) -> String {
    let digest = Md5::digest(format!("{timestamp}-{nonce}-{AUTH}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signed headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `x-timestamp`: Unix seconds as a decimal string.
    pub timestamp: String,
    /// `x-nonce`.
    pub nonce: String,
    /// `x-signature`: see [`signature`].
    pub signature: String,
    /// `x-flow-device-id`.
    pub device_id: String,
}

impl SignedHeaders {
    /// Draws a timestamp, nonce and device id from `signer` and signs them.
    pub fn generate(signer: &dyn Signer) -> Self {
        let timestamp = signer.unix_time().to_string();
        let nonce = signer.nonce();
        Self {
            signature: signature(&timestamp, &nonce),
            device_id: signer.device_id(),
            timestamp,
            nonce,
        }
    }
}

/// The FlowGPT provider.
pub struct FlowGpt {
    inner: Arc<Inner>,
}

struct Inner {
    info: ProviderInfo,
    config: ProviderConfig,
    signer: Arc<dyn Signer>,
}

impl FlowGpt {
    /// An instance for this configuration, signing with the real clock and randomness.
    pub fn new(config: ProviderConfig) -> Self {
        Self::with_signer(config, Arc::new(SystemSigner))
    }

    /// An instance whose signed headers come from `signer`.
    pub fn with_signer(config: ProviderConfig, signer: Arc<dyn Signer>) -> Self {
        let name = if config.name.is_empty() {
            NAME.to_owned()
        } else {
            config.name.clone()
        };
        let info = ProviderInfo {
            name,
            g4f_name: G4F_NAME.into(),
            label: "FlowGpt".into(),
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
            models: MODELS.iter().map(|m| (*m).to_owned()).collect(),
            model_aliases: MODEL_ALIASES
                .iter()
                .map(|(a, m)| ((*a).to_owned(), (*m).to_owned()))
                .collect(),
            capabilities: Capabilities::plain(&["temperature"], &[]),
            origins: Origin::list(ORIGINS),
            ..ProviderInfo::default()
        };
        Self {
            inner: Arc::new(Inner {
                info,
                config,
                signer,
            }),
        }
    }
}

/// The request body, in g4f's key order.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    nsfw: bool,
    question: &'a Option<Content>,
    history: Vec<&'a Message>,
    system: String,
    temperature: Value,
    #[serde(rename = "promptId")]
    prompt_id: String,
    #[serde(rename = "documentIds")]
    document_ids: [u8; 0],
    #[serde(rename = "chatFileDocumentIds")]
    chat_file_document_ids: [u8; 0],
    #[serde(rename = "generateImage")]
    generate_image: bool,
    #[serde(rename = "generateAudio")]
    generate_audio: bool,
}

fn body<'a>(req: &'a ChatRequest, model: &'a str, greeting: &'a Message) -> Result<Body<'a>> {
    let Some((last, earlier)) = req.messages.split_last() else {
        return Err(Error::invalid(format!(
            "{NAME}: the request has no messages"
        )));
    };
    let mut system = prompt::system_prompt(&req.messages);
    if system.is_empty() {
        system = DEFAULT_SYSTEM_PROMPT.to_owned();
    }
    Ok(Body {
        model,
        nsfw: false,
        question: &last.content,
        history: std::iter::once(greeting)
            .chain(earlier.iter().filter(|m| m.role != Role::System))
            .collect(),
        system,
        temperature: req.temperature.map_or(json!(0.7), |t| json!(t)),
        prompt_id: format!("model-{model}"),
        document_ids: [],
        chat_file_document_ids: [],
        generate_image: false,
        generate_audio: false,
    })
}

/// The text of one event object: `data` of a `text` event, nothing for anything else.
fn event_text(event: &Value) -> Option<String> {
    if event.get("event").and_then(Value::as_str) != Some("text") {
        return None;
    }
    match event.get("data")? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn answer(
    inner: Arc<Inner>,
    req: ChatRequest,
    ctx: Context,
) -> impl Stream<Item = Result<Chunk>> + Send {
    llmux_core::async_stream::try_stream! {
        let name = inner.info.name.clone();
        let model = inner.info.resolve_model(&req.model, None)?;
        if !req.media.is_empty() {
            Err(Error::invalid(format!("{name}: media attachments are not supported by this provider")))?;
        }
        let greeting = Message::assistant(GREETING);
        let body = body(&req, &model, &greeting)?;
        let signed = SignedHeaders::generate(inner.signer.as_ref());
        let url = format!("{}{CHAT_PATH}", inner.config.origin("base", DEFAULT_BASE_URL));
        let mut rb = ctx.http.post(url).provider(&name);
        for (k, v) in HEADERS {
            rb = rb.header(k, v);
        }
        let rb = rb
            .header("x-flow-device-id", &signed.device_id)
            .header("x-nonce", &signed.nonce)
            .header("x-signature", &signed.signature)
            .header("x-timestamp", &signed.timestamp)
            .json(&body);
        let resp = rb.send().await?.error_for_status().await?;
        let mut events = std::pin::pin!(json_lines(resp.into_stream(), &name));
        while let Some(event) = events.next().await {
            if let Some(text) = event_text(&event?) {
                yield Chunk::Text(text);
            }
        }
    }
}

impl Provider for FlowGpt {
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
        build: |cfg| Arc::new(FlowGpt::new(cfg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_vector() {
        assert_eq!(
            signature("1714000000", "0123456789abcdef0123456789abcdef"),
            "a0c05ab76a6ea75305741a311c1830d8"
        );
        assert_eq!(
            signature("1714000000", "9f86d081884c7d659a2feaa0c55ad015"),
            "8665df1a193a76960370763fb6ec50f9"
        );
    }

    #[test]
    fn system_signer_shapes() {
        let s = SignedHeaders::generate(&SystemSigner);
        assert!(s.timestamp.parse::<u64>().is_ok_and(|t| t > 1_700_000_000));
        assert_eq!(s.nonce.len(), 32);
        assert!(
            s.nonce
                .bytes()
                .all(|c| matches!(c, b'a'..=b'f' | b'0'..=b'9'))
        );
        assert_eq!(s.signature, signature(&s.timestamp, &s.nonce));
        assert_eq!(s.device_id.len(), 21);
        assert!(s.device_id.starts_with("f-"));
        assert!(
            s.device_id[2..]
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        let t = SignedHeaders::generate(&SystemSigner);
        assert_ne!(s.nonce, t.nonce);
        assert_ne!(s.device_id, t.device_id);
    }

    #[test]
    fn body_mapping() {
        let req = ChatRequest::new(
            "gemini",
            vec![
                Message::system("Answer in French."),
                Message::user("Hi"),
                Message::assistant("Bonjour !"),
                Message::user("How are you?"),
            ],
        );
        let greeting = Message::assistant(GREETING);
        let b = body(&req, "google-gemini", &greeting).expect("body");
        assert_eq!(
            serde_json::to_string(&b).expect("json"),
            r#"{"model":"google-gemini","nsfw":false,"question":"How are you?","history":[{"role":"assistant","content":"Hello, how can I help you today?"},{"role":"user","content":"Hi"},{"role":"assistant","content":"Bonjour !"}],"system":"Answer in French.","temperature":0.7,"promptId":"model-google-gemini","documentIds":[],"chatFileDocumentIds":[],"generateImage":false,"generateAudio":false}"#
        );
        let req = ChatRequest::user("", "Hi").with_temperature(0.2);
        let b = body(&req, "gpt-3.5-turbo", &greeting).expect("body");
        assert_eq!(b.system, DEFAULT_SYSTEM_PROMPT);
        assert_eq!(b.temperature, json!(0.2));
        assert_eq!(b.history.len(), 1);
        let empty = ChatRequest::new("", vec![]);
        assert!(matches!(
            body(&empty, "m", &greeting),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn events() {
        assert_eq!(
            event_text(&json!({"event":"text","data":"Hi"})).as_deref(),
            Some("Hi")
        );
        assert_eq!(event_text(&json!({"event":"text","data":""})), None);
        assert_eq!(
            event_text(&json!({"event":"text","data":7})).as_deref(),
            Some("7")
        );
        assert_eq!(event_text(&json!({"event":"done","data":"x"})), None);
        assert_eq!(event_text(&json!({"data":"x"})), None);
        assert_eq!(event_text(&json!([1, 2])), None);
    }
}
