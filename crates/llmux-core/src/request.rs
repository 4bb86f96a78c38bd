//! What a caller asks for: [`ChatRequest`] with its messages, media and options.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::media;
use crate::secret::{Cookies, Secret};

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The human.
    User,
    /// The model.
    Assistant,
    /// A tool result (kept as context; most providers flatten it).
    Tool,
}

impl Role {
    /// Lower-case name (`user`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// An image URL part (`{"url": ..., "detail": ...}`), OpenAI shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// `https://…` or `data:image/…;base64,…`.
    pub url: String,
    /// OpenAI's `detail` (`low`, `high`, `auto`), passed on where the upstream has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ImageUrl {
    /// An image part for `url` without a `detail` hint.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            detail: None,
        }
    }
}

/// An audio input part, OpenAI shape: base64 `data` and a `format` such as `wav` or `mp3`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputAudio {
    /// Base64 audio bytes (a data URI is accepted too).
    pub data: String,
    /// File format (`wav`, `mp3`, …).
    pub format: String,
}

/// One part of a multi-part message content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    ImageUrl {
        /// Where the image is.
        image_url: ImageUrl,
    },
    /// Audio.
    InputAudio {
        /// The audio.
        input_audio: InputAudio,
    },
}

/// Message content: plain text or a list of parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Text, image and audio parts.
    Parts(Vec<ContentPart>),
}

impl Default for Content {
    fn default() -> Self {
        Content::Text(String::new())
    }
}

impl Content {
    /// Flattens to text the way g4f's `to_string` does: text parts concatenated, others dropped.
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }
}

impl From<String> for Content {
    fn from(s: String) -> Self {
        Content::Text(s)
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Self {
        Content::Text(s.to_owned())
    }
}

/// One chat message.
///
/// `content` is `None` where the wire says `null` (an assistant turn that only called tools).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said (`None`: the wire's `null`).
    #[serde(default)]
    pub content: Option<Content>,
    /// The tool calls of an assistant turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a [`Role::Tool`] message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The participant's name (OpenAI's `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fields llmux does not model (`refusal`, `audio`, …), passed on verbatim to upstreams that
    /// speak the same wire format.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Message {
    /// A message with any role.
    pub fn new(role: Role, content: impl Into<Content>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
            extra: serde_json::Map::new(),
        }
    }
    /// An assistant turn that called tools (content `null`).
    pub fn tool_calls(calls: Vec<ToolCall>) -> Self {
        Self {
            content: None,
            tool_calls: calls,
            ..Self::new(Role::Assistant, "")
        }
    }
    /// The result of the tool call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<Content>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            ..Self::new(Role::Tool, content)
        }
    }
    /// A system message.
    pub fn system(content: impl Into<Content>) -> Self {
        Self::new(Role::System, content)
    }
    /// A user message.
    pub fn user(content: impl Into<Content>) -> Self {
        Self::new(Role::User, content)
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<Content>) -> Self {
        Self::new(Role::Assistant, content)
    }
    /// The content flattened to text (empty for `null`).
    pub fn text(&self) -> String {
        self.content.as_ref().map(Content::text).unwrap_or_default()
    }
}

/// One complete tool call of an assistant turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call id (the tool result names it in `tool_call_id`).
    pub id: String,
    /// The function called.
    pub name: String,
    /// The arguments: a JSON document as text, exactly as the model wrote it.
    pub arguments: String,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Function name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
    /// Ask for arguments that follow the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

impl Tool {
    /// A function tool with a JSON-schema `parameters` object.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: serde_json::Value,
    ) -> Self {
        Self {
            name: name.into(),
            description: Some(description.into()),
            parameters: Some(parameters),
            strict: None,
        }
    }
}

/// Which tools the model may or must call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// Call no tool.
    None,
    /// The model decides.
    Auto,
    /// Call at least one tool.
    Required,
    /// Call this function.
    Function(String),
}

/// The shape of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON that follows a schema.
    JsonSchema {
        /// Schema name.
        name: String,
        /// What the schema is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// The JSON Schema.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<serde_json::Value>,
        /// Follow the schema exactly.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

/// A media attachment: bytes, a file name and a MIME type.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// The bytes (serialised as base64).
    #[serde(with = "crate::media::base64_bytes")]
    pub data: Bytes,
    /// File name, when known (used for MIME detection and uploads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// MIME type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("bytes", &self.data.len())
            .field("file_name", &self.file_name)
            .field("mime", &self.mime)
            .finish()
    }
}

impl Media {
    /// Media from bytes; the MIME type is detected later from the name or magic bytes.
    pub fn from_bytes(data: impl Into<Bytes>, file_name: Option<String>) -> Self {
        Self {
            data: data.into(),
            file_name,
            mime: None,
        }
    }

    /// Reads a file; the file name is kept for MIME detection.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let data = std::fs::read(path)
            .map_err(|e| Error::Io(format!("cannot read media file {}: {e}", path.display())))?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Ok(Self::from_bytes(data, file_name))
    }

    /// Parses a `data:<mime>;base64,<payload>` URI.
    pub fn from_data_uri(uri: &str, file_name: Option<String>) -> Result<Self> {
        let parsed = media::parse_data_uri(uri)?;
        Ok(Self {
            data: parsed.data,
            file_name,
            mime: parsed.mime,
        })
    }

    /// Sets the MIME type explicitly.
    pub fn with_mime(mut self, mime: impl Into<String>) -> Self {
        self.mime = Some(mime.into());
        self
    }

    /// The MIME type: explicit, else from the file name, else sniffed from magic bytes.
    pub fn detect_mime(&self) -> Option<String> {
        self.mime
            .clone()
            .or_else(|| {
                self.file_name
                    .as_deref()
                    .and_then(media::mime_from_file_name)
            })
            .or_else(|| media::sniff(&self.data).map(str::to_owned))
    }
}

/// Opaque conversation state a provider hands out and takes back on the next turn.
///
/// State often holds credentials (ZeroGPU tokens, session ids), so `Debug` shows only the keys
/// (`Conversation { keys: ["session_hash", …] }`), never the values. It serialises in full.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Conversation(pub serde_json::Value);

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            serde_json::Value::Object(map) => f
                .debug_struct("Conversation")
                .field("keys", &map.keys().collect::<Vec<_>>())
                .finish(),
            serde_json::Value::Null => f.write_str("Conversation(null)"),
            _ => f.write_str("Conversation(***)"),
        }
    }
}

impl Conversation {
    /// The state stored under `key` (the facade keys state by provider name).
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.get(key)
    }
}

fn default_true() -> bool {
    true
}

/// A chat request. Build it with [`ChatRequest::new`] and the `with_*` methods, or deserialize it.
///
/// ```
/// use llmux_core::{ChatRequest, Message};
/// let req = ChatRequest::new("gpt-4o-mini", vec![Message::user("Hi")])
///     .with_temperature(0.2)
///     .with_max_tokens(100);
/// assert!(req.stream);
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatRequest {
    /// Model id or alias; empty means the provider's default model.
    #[serde(default)]
    pub model: String,
    /// Provider name (or g4f class name) to use; `None` lets the facade choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Extra media attachments (images, audio).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<Media>,
    /// Ask the upstream to stream. Output is always a stream of chunks either way.
    #[serde(default = "default_true")]
    pub stream: bool,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Maximum new tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Random seed (OpenAI allows any 64-bit integer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Functions the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Which tools the model may or must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Allow several tool calls in one turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// The shape of the answer (JSON object, JSON schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// An end-user id for the upstream's abuse monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Emulate `tools` and `response_format` with a prompt on providers that lack them
    /// (`None`: the client's default, off unless configured). See the facade's `emulation` module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_emulation: Option<bool>,
    /// Prompt override (image generation prompt, or the text sent instead of the history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Ask the provider to search the web, where it can.
    #[serde(default)]
    pub web_search: bool,
    /// API key for this call (overrides configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    /// Cookies for this call (merged over configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookies: Option<Cookies>,
    /// Conversation state from a previous turn's [`crate::Chunk::Conversation`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Conversation>,
    /// Provider-specific options (e.g. `{"width": 1024}` for image models).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Total time budget of the call (overrides the client default).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::opt_secs"
    )]
    pub timeout: Option<Duration>,
    /// Proxy for this call: `http://[user:pass@]host:port` (CONNECT tunnel) or
    /// `socks5://` / `socks5h://` (overrides the client's proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Secret>,
    /// Longest silence allowed between two chunks (overrides the client default).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::opt_secs"
    )]
    pub idle_timeout: Option<Duration>,
}

impl ChatRequest {
    /// A streaming request for `model` (empty = default) with these messages.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            messages,
            stream: true,
            ..Self::default()
        }
    }

    /// A one-message request.
    pub fn user(model: impl Into<String>, prompt: impl Into<Content>) -> Self {
        Self::new(model, vec![Message::user(prompt)])
    }

    /// Sets the model.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }
    /// Chooses a provider by name.
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }
    /// Appends a message.
    pub fn with_message(mut self, message: Message) -> Self {
        self.messages.push(message);
        self
    }
    /// Attaches media.
    pub fn with_media(mut self, media: Media) -> Self {
        self.media.push(media);
        self
    }
    /// Sets the upstream streaming flag.
    pub fn with_stream(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }
    /// Sets the temperature.
    pub fn with_temperature(mut self, t: f64) -> Self {
        self.temperature = Some(t);
        self
    }
    /// Sets top_p.
    pub fn with_top_p(mut self, p: f64) -> Self {
        self.top_p = Some(p);
        self
    }
    /// Sets max_tokens.
    pub fn with_max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }
    /// Sets the seed.
    pub fn with_seed(mut self, seed: i64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// Offers a tool to the model.
    ///
    /// A tool loop: send the request, collect the answer; while it holds tool calls, append the
    /// assistant's calls and one result per call, and ask again.
    ///
    /// ```
    /// use llmux_core::{Accumulator, ChatRequest, Chunk, FinishReason, Message, Tool, ToolCallDelta};
    /// use serde_json::json;
    ///
    /// let mut req = ChatRequest::user("gpt-4o-mini", "Weather in Paris?").with_tool(Tool::function(
    ///     "get_weather",
    ///     "Current weather of a city",
    ///     json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    /// ));
    /// // what a provider streams back (in a program: `client.chat(req.clone())`)
    /// let streamed = [
    ///     Chunk::ToolCall(ToolCallDelta { index: 0, id: Some("call_1".into()), name: Some("get_weather".into()), arguments: "{\"city\":".into() }),
    ///     Chunk::ToolCall(ToolCallDelta { index: 0, arguments: "\"Paris\"}".into(), ..Default::default() }),
    ///     Chunk::Finish(FinishReason::ToolCalls),
    /// ];
    /// let mut acc = Accumulator::new();
    /// streamed.iter().for_each(|c| acc.push(c));
    /// let answer = acc.finish();
    /// assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
    /// let results: Vec<Message> = answer
    ///     .tool_calls
    ///     .iter()
    ///     .map(|call| Message::tool_result(&call.id, format!("sunny in {}", call.arguments)))
    ///     .collect();
    /// req.messages.push(Message::tool_calls(answer.tool_calls.clone()));
    /// req.messages.extend(results);
    /// assert_eq!(req.messages.len(), 3); // user, assistant calls, tool result: ask again
    /// ```
    pub fn with_tool(mut self, tool: Tool) -> Self {
        self.tools.push(tool);
        self
    }
    /// Sets the tool choice.
    pub fn with_tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }
    /// Sets the response format: a JSON object, or JSON that follows a schema.
    ///
    /// ```
    /// use llmux_core::{ChatRequest, ResponseFormat};
    /// use serde_json::json;
    ///
    /// let req = ChatRequest::user("gpt-4o-mini", "Name a city and its country.")
    ///     .with_response_format(ResponseFormat::JsonSchema {
    ///         name: "city".into(),
    ///         description: None,
    ///         schema: Some(json!({"type": "object",
    ///             "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    ///             "required": ["city", "country"], "additionalProperties": false})),
    ///         strict: Some(true),
    ///     });
    /// // the answer's text is the JSON (`client.chat(req)` → collect → `serde_json::from_str`)
    /// assert!(matches!(req.response_format, Some(ResponseFormat::JsonSchema { .. })));
    /// ```
    pub fn with_response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = Some(format);
        self
    }
    /// Turns tool / structured-output emulation on or off for this call.
    pub fn with_tool_emulation(mut self, on: bool) -> Self {
        self.tool_emulation = Some(on);
        self
    }
    /// Adds a stop sequence.
    pub fn with_stop(mut self, stop: impl Into<String>) -> Self {
        self.stop.push(stop.into());
        self
    }
    /// Sets the prompt override.
    pub fn with_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }
    /// Enables web search.
    pub fn with_web_search(mut self, on: bool) -> Self {
        self.web_search = on;
        self
    }
    /// Sets an API key for this call.
    pub fn with_api_key(mut self, key: impl Into<Secret>) -> Self {
        self.api_key = Some(key.into());
        self
    }
    /// Sets cookies for this call.
    pub fn with_cookies(mut self, cookies: Cookies) -> Self {
        self.cookies = Some(cookies);
        self
    }
    /// Hands back conversation state from the previous turn.
    pub fn with_conversation(mut self, conversation: Conversation) -> Self {
        self.conversation = Some(conversation);
        self
    }
    /// Sets one provider-specific option.
    pub fn with_extra(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }
    /// Routes this call through a proxy.
    pub fn with_proxy(mut self, proxy: impl Into<Secret>) -> Self {
        self.proxy = Some(proxy.into());
        self
    }
    /// Sets the total time budget.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Sets the idle timeout between chunks.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// All media of the request: image/audio parts of the trailing run of user messages (as g4f's
    /// `merge_media` does, but reading the data URIs correctly), then [`ChatRequest::media`].
    /// Remote `http(s)` image URLs are not fetched: they yield an [`Error::InvalidInput`].
    pub fn all_media(&self) -> Result<Vec<Media>> {
        let mut buffer = Vec::new();
        for msg in &self.messages {
            if msg.role != Role::User {
                buffer.clear();
                continue;
            }
            if let Some(Content::Parts(parts)) = &msg.content {
                for part in parts {
                    match part {
                        ContentPart::ImageUrl { image_url } => {
                            if !image_url.url.starts_with("data:") {
                                return Err(Error::invalid(format!(
                                    "image URL {:?} is not a data URI; download it and attach the bytes",
                                    crate::error::snippet(&image_url.url, 60)
                                )));
                            }
                            buffer.push(Media::from_data_uri(&image_url.url, None)?);
                        }
                        ContentPart::InputAudio { input_audio } => {
                            buffer.push(media::input_audio_to_media(input_audio)?);
                        }
                        ContentPart::Text { .. } => {}
                    }
                }
            }
        }
        buffer.extend(self.media.iter().cloned());
        Ok(buffer)
    }

    /// A string option from [`ChatRequest::extra`].
    pub fn extra_str(&self, key: &str) -> Option<&str> {
        self.extra.get(key).and_then(|v| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fault matrix): `Debug` of a chunk carrying Phi-4's state showed its ZeroGPU token.
    #[test]
    fn conversation_debug_hides_values() {
        let c =
            Conversation(serde_json::json!({"session_hash": "abc", "zerogpu_token": "tok-SECRET"}));
        let shown = format!("{c:?}");
        assert_eq!(
            shown,
            r#"Conversation { keys: ["session_hash", "zerogpu_token"] }"#
        );
        assert!(!format!("{:?}", crate::Chunk::Conversation(c.clone())).contains("tok-SECRET"));
        assert_eq!(
            format!("{:?}", Conversation(serde_json::json!("tok-SECRET"))),
            "Conversation(***)"
        );
        assert!(
            serde_json::to_string(&c)
                .expect("json")
                .contains("tok-SECRET"),
            "serialises in full"
        );
    }

    #[test]
    fn deserializes_openai_shapes() {
        let req: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"system","content":"s"},
            {"role":"user","content":[{"type":"text","text":"look"},
            {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}"#,
        )
        .expect("valid request");
        assert!(req.stream);
        assert_eq!(req.messages[1].text(), "look");
        let media = req.all_media().expect("media");
        assert_eq!(media.len(), 1);
        assert_eq!(media[0].mime.as_deref(), Some("image/png"));
    }

    #[test]
    fn only_trailing_user_media() {
        let png = "data:image/png;base64,iVBORw0KGgo=";
        let part = |u: &str| {
            Content::Parts(vec![ContentPart::ImageUrl {
                image_url: ImageUrl::new(u),
            }])
        };
        let req = ChatRequest::new(
            "m",
            vec![
                Message::user(part(png)),
                Message::assistant("ok"),
                Message::user("again"),
            ],
        );
        assert!(req.all_media().expect("media").is_empty());
        let bad = ChatRequest::new("m", vec![Message::user(part("https://x/y.png"))]);
        assert!(matches!(bad.all_media(), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn debug_hides_secrets() {
        let req = ChatRequest::user("m", "hi")
            .with_api_key("sk-12345")
            .with_cookies(Cookies::parse("hf-chat=cookieval"));
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("sk-12345") && !dbg.contains("cookieval"));
    }
}
