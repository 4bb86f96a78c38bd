//! llmux provider `microsoft-phi-4` (g4f `Microsoft_Phi_4`): Microsoft's Phi-4-multimodal on the
//! Hugging Face ZeroGPU Space [`microsoft/phi-4-multimodal`](https://huggingface.co/spaces/microsoft/phi-4-multimodal),
//! spoken to through its Gradio queue API (the shared client in [`llmux_gradio`]).
//!
//! Accepts text, images and audio: [`llmux_core::ChatRequest::media`] plus the `image_url` /
//! `input_audio` parts (data URIs) of the trailing user messages. Audio is recognised by its file
//! name (`.wav`, `.mp3`, `.flac`, `.opus`, `.ogg`, `.m4a`) or an `audio/…` MIME type (data URIs),
//! images by their magic bytes (PNG, JPEG, GIF, WebP); anything else is an
//! [`llmux_core::Error::InvalidInput`] raised before any request is sent.
//!
//! One call: ZeroGPU credentials (the token and session UUID embedded in the Space's Hub page, a
//! JWT from `/api/spaces/<space>/jwt` when cookies are given; an API key is used as the token and
//! skips discovery) → the Space's Gradio version (`GET /config`, once per Space: a failure is
//! returned again for 30 s before the next attempt) → upload of the files (`/gradio_api/upload`,
//! skipped for text-only prompts) → `run/predict` (fn 10, add the message to the chat box) →
//! `queue/join` (fn 11, run the model) → the `queue/data` event stream, whose text is streamed as
//! it is generated.
//!
//! Gradio 5 and Gradio 6 Spaces both work: the `queue/join` chat messages are built in the
//! dialect of the Space's version (Gradio 6: `content` is a list of `text` / `file` blocks;
//! Gradio 5: a string or `{"file": …}`), and replies are read in either shape.
//!
//! Configuration: the Space API origin `LLMUX_MICROSOFT_PHI_4_BASE_URL` (origin key `base`,
//! default `https://microsoft-phi-4-multimodal.hf.space`), the Hub origin for the token
//! `LLMUX_MICROSOFT_PHI_4_HUB_URL` (key `hub`, default `https://huggingface.co`), the option
//! `space` (`owner/name` on the Hub, default `microsoft/phi-4-multimodal`) for a duplicated Space,
//! `LLMUX_MICROSOFT_PHI_4_API_KEY` (a ZeroGPU token) and `LLMUX_MICROSOFT_PHI_4_COOKIES`
//! (huggingface.co cookies).
//!
//! Conversation state ([`llmux_core::Chunk::Conversation`]):
//! `{"session_hash", "zerogpu_token", "zerogpu_uuid"}`. Handed back, the next turn reuses the
//! session (the Space keeps the history) and sends only the new user message(s).
//!
//! # Where llmux differs from g4f
//!
//! - **Text-only prompts work.** g4f crashes building the `queue/join` body when no media is given
//!   (after `run/predict` was already sent); llmux skips the upload and sends `"files": []` and an
//!   empty file list as the second input.
//! - **Real streaming.** g4f only yields the final message; llmux applies the
//!   `process_generating` diffs as Gradio's client does and yields each text delta, then only what
//!   the `process_completed` message adds (no repeated text), then a `stop` finish reason.
//! - **No silent endings.** A stream that ends (or is closed) without `process_completed` is an
//!   [`llmux_core::Error::Protocol`]; `unexpected_error` messages are errors; a non-2xx
//!   `queue/data` answer is a status error (g4f ignores all three and returns nothing).
//! - **Clean error text.** Space errors lose their HTML (quota messages carry `<a>` links);
//!   ZeroGPU quota messages are [`llmux_core::Error::RateLimited`], other Space errors
//!   [`llmux_core::Error::Upstream`].
//! - **Media.** Image and audio parts of the trailing user messages are used too (g4f only reads
//!   its `media` argument); any `audio/…` MIME type is accepted (g4f only `audio/<word>`); an
//!   unnamed file gets a name such as `image.png`; the checks run before any request.
//! - **Models.** `phi-4-multimodal` (the default) and its alias `phi-4` are both accepted and
//!   marked as vision and audio models (the reference lists only `phi-4`, so its own default
//!   fails `get_model`). The model argument still selects nothing: there is one Space.
//! - A conversation without a `session_hash` starts a new session with the whole history as the
//!   prompt (g4f would send only the last message to a fresh session). A non-2xx JWT answer is
//!   ignored (the page token is kept) instead of failing on its JSON, and an unreachable Hub page
//!   only means no ZeroGPU credentials (the Space still answers anonymous calls).
//!
//! ```
//! use llmux_core::{Provider, ProviderConfig};
//! use llmux_provider_microsoft_phi_4::MicrosoftPhi4;
//!
//! let p = MicrosoftPhi4::new(
//!     ProviderConfig::named("microsoft-phi-4")
//!         .with_base_url("https://me-phi-4-multimodal.hf.space")
//!         .with_option("space", llmux_core::serde_json::json!("me/phi-4-multimodal")),
//! );
//! assert_eq!(p.info().name, "microsoft-phi-4");
//! assert_eq!(p.info().resolve_model("phi-4", None).unwrap(), "phi-4-multimodal");
//! ```

use std::sync::Arc;

use llmux_core::futures_util::StreamExt;
use llmux_core::media::{audio_mime, extension_for_mime, sniff_image};
use llmux_core::provider::Origin;
use llmux_core::serde_json::{Value, json};
use llmux_core::{
    Capabilities, ChatRequest, ChatStream, Chunk, Context, Conversation, Error, FinishReason,
    Media, Provider, ProviderConfig, ProviderInfo, Registration, Result, Secret, prompt,
};
use llmux_gradio::{
    self as gradio, Call, ConfigCache, QueueEvent, ReplyText, Space, UploadFile, ZeroGpu,
};

/// Provider name.
pub const NAME: &str = "microsoft-phi-4";
/// g4f class name.
pub const G4F_NAME: &str = "Microsoft_Phi_4";
/// Default Space API origin.
pub const DEFAULT_BASE_URL: &str = "https://microsoft-phi-4-multimodal.hf.space";
/// Default Hub origin (Space page and ZeroGPU JWT).
pub const DEFAULT_HUB_URL: &str = llmux_hf::HUB_URL;
/// Default Space id on the Hub.
pub const DEFAULT_SPACE: &str = "microsoft/phi-4-multimodal";
/// Default (and only) model.
pub const DEFAULT_MODEL: &str = "phi-4-multimodal";
/// Alias of [`DEFAULT_MODEL`].
pub const ALIAS: &str = "phi-4";

/// Gradio function adding the user message to the chat box (`run/predict`).
const ADD_MESSAGE_FN: u32 = 10;
/// Gradio function running the model (`queue/join`).
const BOT_FN: u32 = 11;
/// Trigger id of both calls.
const TRIGGER_ID: u32 = 8;

/// The `microsoft-phi-4` provider.
pub struct MicrosoftPhi4 {
    inner: Arc<Inner>,
}

struct Inner {
    info: ProviderInfo,
    config: ProviderConfig,
    /// The Space's Gradio version (its message dialect), read once from `GET /config`.
    spaces: ConfigCache,
}

impl MicrosoftPhi4 {
    /// An instance for this configuration.
    pub fn new(config: ProviderConfig) -> Self {
        let name = if config.name.is_empty() {
            NAME.to_owned()
        } else {
            config.name.clone()
        };
        let space = config.option_str("space").unwrap_or(DEFAULT_SPACE);
        // `models` as in the reference (the alias only); the default model is listed and accepted
        // anyway (`ProviderInfo::all_models` includes it), and both names take images and audio.
        let multimodal = vec![ALIAS.to_owned(), DEFAULT_MODEL.to_owned()];
        let info = ProviderInfo {
            name,
            g4f_name: G4F_NAME.into(),
            label: "Microsoft Phi-4".into(),
            url: format!("{}/spaces/{space}", config.origin("hub", DEFAULT_HUB_URL)),
            working: true,
            needs_auth: false,
            supports_stream: true,
            supports_system_message: true,
            supports_message_history: true,
            default_model: DEFAULT_MODEL.into(),
            default_vision_model: Some(DEFAULT_MODEL.into()),
            default_image_model: None,
            models: vec![ALIAS.to_owned()],
            model_aliases: [(ALIAS.to_owned(), DEFAULT_MODEL.to_owned())].into(),
            image_models: Vec::new(),
            vision_models: multimodal.clone(),
            audio_models: multimodal,
            capabilities: Capabilities::plain(&[], &[]),
            origins: Origin::list(ORIGINS),
        };
        Self {
            inner: Arc::new(Inner {
                info,
                config,
                spaces: ConfigCache::new(),
            }),
        }
    }
}

/// What a previous turn left: the Gradio session and the ZeroGPU session UUID.
#[derive(Debug, Default)]
struct State {
    session_hash: Option<String>,
    zerogpu_uuid: Option<String>,
}

impl State {
    fn from(conversation: Option<&Conversation>) -> Self {
        let field = |k: &str| {
            conversation
                .and_then(|c| c.get(k))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Self {
            session_hash: field("session_hash"),
            zerogpu_uuid: field("zerogpu_uuid"),
        }
    }
}

/// Checks every attachment and names it, before any request: audio by file name or `audio/…`
/// MIME type, images by magic bytes.
fn uploads(media: &[Media]) -> Result<Vec<UploadFile>> {
    media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let shown = m
                .file_name
                .as_deref()
                .map_or_else(|| format!("#{}", i + 1), |n| format!("`{n}`"));
            if m.data.is_empty() {
                return Err(Error::invalid(format!("{NAME}: attachment {shown} is empty")));
            }
            let explicit_audio = m
                .mime
                .as_deref()
                .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
                .filter(|t| t.starts_with("audio/") && t.len() > "audio/".len());
            let (kind, mime) = match audio_mime(None, m.file_name.as_deref()).or(explicit_audio) {
                Some(mime) => ("audio", mime),
                None => match sniff_image(&m.data) {
                    Some(mime) => ("image", mime.to_owned()),
                    None => {
                        return Err(Error::invalid(format!(
                            "{NAME} accepts images (PNG, JPEG, GIF or WebP data) and audio (.wav, .mp3, .flac, .opus, .ogg or .m4a files, or data:audio/… URIs); attachment {shown} is neither"
                        )));
                    }
                },
            };
            let name = m.file_name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| {
                let ext = extension_for_mime(&mime).map(str::to_owned).unwrap_or_else(|| {
                    mime.rsplit('/')
                        .next()
                        .unwrap_or("bin")
                        .chars()
                        .filter(char::is_ascii_alphanumeric)
                        .collect()
                });
                format!("{kind}.{ext}")
            });
            Ok(UploadFile {
                name,
                mime,
                data: m.data.clone(),
            })
        })
        .collect()
}

impl Inner {
    fn base(&self) -> String {
        self.config.origin("base", DEFAULT_BASE_URL)
    }

    /// ZeroGPU credentials: the API key as token (uuid from the conversation, else
    /// `[object Object]`), else discovered from the Hub.
    async fn credentials(
        &self,
        req: &ChatRequest,
        ctx: &Context,
        state: &State,
    ) -> Result<ZeroGpu> {
        let key = req
            .api_key
            .as_ref()
            .or(self.config.api_key.as_ref())
            .filter(|k| !k.is_empty());
        if let Some(key) = key {
            return Ok(ZeroGpu {
                token: key.clone(),
                uuid: Some(
                    state
                        .zerogpu_uuid
                        .clone()
                        .unwrap_or_else(|| gradio::OBJECT_OBJECT.to_owned()),
                ),
            });
        }
        let mut cookies = self.config.cookies.clone().unwrap_or_default();
        if let Some(c) = &req.cookies {
            cookies.merge(c);
        }
        gradio::zerogpu_credentials(
            &ctx.http,
            &self.info.name,
            &self.config.origin("hub", DEFAULT_HUB_URL),
            self.config.option_str("space").unwrap_or(DEFAULT_SPACE),
            state.zerogpu_uuid.clone(),
            &cookies,
        )
        .await
    }
}

fn answer(
    inner: Arc<Inner>,
    req: ChatRequest,
    ctx: Context,
) -> impl llmux_core::futures_util::Stream<Item = Result<Chunk>> + Send {
    llmux_core::async_stream::try_stream! {
        let name = inner.info.name.clone();
        let files = uploads(&req.all_media()?)?;
        let state = State::from(req.conversation.as_ref());
        let prompt = match (&req.prompt, &state.session_hash) {
            (Some(p), _) => p.clone(),
            (None, None) => prompt::format_prompt(&req.messages, false, false, true),
            (None, Some(_)) => prompt::last_user_message(&req.messages),
        };
        if prompt.trim().is_empty() && files.is_empty() {
            Err(Error::invalid(format!("{name}: nothing to send (no user text and no media)")))?;
        }
        let session_hash = state.session_hash.clone().unwrap_or_else(gradio::session_hash);
        let creds = inner.credentials(&req, &ctx, &state).await?;
        yield Chunk::Conversation(Conversation(json!({
            "session_hash": session_hash,
            "zerogpu_token": creds.token.expose(),
            "zerogpu_uuid": creds.uuid,
        })));

        let base = inner.base();
        let mut space = Space::new(&name, &base)
            .referer(format!("{base}?__theme=light"))
            .join_query("__theme=light")
            .header("x-zerogpu-token", creds.token.clone());
        if let Some(uuid) = &creds.uuid {
            space = space.header("x-zerogpu-uuid", Secret::new(uuid.as_str()));
        }
        let dialect = inner.spaces.get(&ctx.http, &space).await?.dialect;
        let uploaded = if files.is_empty() {
            Vec::new()
        } else {
            space.upload(&ctx.http, &session_hash, &files).await?
        };
        let file_values: Vec<Value> = uploaded.iter().map(|f| f.to_value()).collect();
        let add_message = Call::new(
            ADD_MESSAGE_FN,
            &session_hash,
            json!([[], {"text": prompt, "files": file_values}, null]),
        )
        .trigger(TRIGGER_ID);
        space.predict(&ctx.http, &add_message).await?;
        let file_messages: Vec<Value> = uploaded
            .iter()
            .map(|f| dialect.file_message("user", f))
            .collect();
        let bot = Call::new(
            BOT_FN,
            &session_hash,
            json!([[dialect.text_message("user", &prompt)], file_messages]),
        )
        .trigger(TRIGGER_ID);
        space.join(&ctx.http, &bot).await?;

        let mut reply = ReplyText::default();
        let mut events = std::pin::pin!(space.listen(&ctx.http, &session_hash));
        while let Some(event) = events.next().await {
            match event? {
                QueueEvent::Generating(outputs) => {
                    if let Some(delta) = outputs.first().and_then(gradio::chatbot_reply).and_then(|t| reply.update(t)) {
                        yield Chunk::Text(delta);
                    }
                }
                QueueEvent::Completed(outputs) => {
                    let Some(text) = outputs.first().and_then(gradio::chatbot_reply) else {
                        Err(Error::protocol(&name, "process_completed without an assistant message", &Value::Array(outputs.clone()).to_string()))?;
                        return;
                    };
                    if let Some(delta) = reply.update(text) {
                        yield Chunk::Text(delta);
                    }
                    yield Chunk::Finish(FinishReason::Stop);
                }
                QueueEvent::Queued { .. } | QueueEvent::Started => {}
            }
        }
    }
}

impl Provider for MicrosoftPhi4 {
    fn info(&self) -> &ProviderInfo {
        &self.inner.info
    }

    fn chat(&self, request: ChatRequest, ctx: Context) -> ChatStream {
        Box::pin(answer(self.inner.clone(), request, ctx))
    }
}

/// Every upstream origin `(key, default URL)`, declared once: the registration and
/// [`ProviderInfo::origins`] both read it.
pub const ORIGINS: &[(&str, &str)] = &[("base", DEFAULT_BASE_URL), ("hub", DEFAULT_HUB_URL)];

llmux_core::inventory::submit! {
    Registration {
        name: NAME,
        g4f_name: G4F_NAME,
        origins: ORIGINS,
        build: |cfg| Arc::new(MicrosoftPhi4::new(cfg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()
    }

    #[test]
    fn media_kinds_and_names() {
        let files = uploads(&[
            Media::from_bytes(png(), None),
            Media::from_bytes(b"RIFF....WAVEfmt ".to_vec(), Some("tone.wav".into())),
            Media::from_data_uri("data:audio/mpeg;base64,SUQz", None).expect("uri"),
            Media::from_bytes(b"\xFF\xD8\xFF\xE0".to_vec(), Some("photo.png".into())),
        ])
        .expect("valid");
        let got: Vec<(&str, &str)> = files
            .iter()
            .map(|f| (f.name.as_str(), f.mime.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("image.png", "image/png"),
                ("tone.wav", "audio/wav"),
                ("audio.mp3", "audio/mpeg"),
                ("photo.png", "image/jpeg")
            ]
        );
    }

    #[test]
    fn rejects_other_media() {
        for bad in [
            Media::from_bytes(b"hello".to_vec(), Some("notes.txt".into())),
            Media::from_bytes(b"RIFF....WAVEfmt ".to_vec(), None),
            Media::from_bytes(b"\0\0\0\x18ftypmp42".to_vec(), Some("clip.mp4".into())),
            Media::from_bytes(Vec::new(), Some("x.wav".into())),
        ] {
            let err = uploads(&[bad]).expect_err("rejected");
            assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        }
    }

    #[test]
    fn metadata() {
        let p = MicrosoftPhi4::new(ProviderConfig::named(NAME));
        let i = p.info();
        assert_eq!(
            (i.g4f_name.as_str(), i.label.as_str()),
            (G4F_NAME, "Microsoft Phi-4")
        );
        assert!(i.working && i.supports_stream && !i.needs_auth);
        assert_eq!(
            i.url,
            "https://huggingface.co/spaces/microsoft/phi-4-multimodal"
        );
        assert_eq!(
            i.resolve_model("", None).ok().as_deref(),
            Some(DEFAULT_MODEL)
        );
        assert_eq!(
            i.resolve_model("phi-4", None).ok().as_deref(),
            Some(DEFAULT_MODEL)
        );
        assert_eq!(
            i.resolve_model("phi-4-multimodal", None).ok().as_deref(),
            Some(DEFAULT_MODEL)
        );
        assert!(i.resolve_model("gpt-4", None).is_err());
        assert_eq!(i.models, ["phi-4"]);
        assert_eq!(i.all_models(), ["phi-4-multimodal", "phi-4"]);
        assert!(i.vision_models.iter().any(|m| m == "phi-4"));
        assert!(i.vision_models.iter().any(|m| m == DEFAULT_MODEL));
        assert!(i.audio_models.iter().any(|m| m == DEFAULT_MODEL));
        assert_eq!(i.origin_keys(), ["base", "hub"]);
    }

    #[test]
    fn conversation_state() {
        let s = State::from(Some(&Conversation(
            json!({"session_hash": "abc", "zerogpu_uuid": "u", "zerogpu_token": "t"}),
        )));
        assert_eq!(
            (s.session_hash.as_deref(), s.zerogpu_uuid.as_deref()),
            (Some("abc"), Some("u"))
        );
        let s = State::from(Some(&Conversation(json!({"session_hash": ""}))));
        assert!(s.session_hash.is_none());
        assert!(
            State::from(Some(&Conversation(json!("junk"))))
                .session_hash
                .is_none()
        );
    }
}
