//! Request types of `POST /v1/messages`, as Anthropic's API reference and official SDKs define
//! them. Fields llmux does not act on are either named as ignored (`cache_control`,
//! `citations`, a tool's `eager_input_streaming`, `service_tier`) or refused: every struct here
//! denies unknown fields, so a field a client sends is never dropped silently.

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The body of `POST /v1/messages` (and, without `max_tokens`, of `/v1/messages/count_tokens`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesRequest {
    /// Model id (any id, alias or `provider:model` llmux routes).
    pub model: String,
    /// Required by Anthropic on `/v1/messages` (checked there; `count_tokens` has none).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// The conversation.
    pub messages: Vec<InputMessage>,
    /// The system prompt: a string or text blocks.
    #[serde(default)]
    pub system: Option<System>,
    /// Custom stop sequences.
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Top-k sampling (forwarded as `top_k` to upstreams that take it, named as ignored
    /// elsewhere).
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Stream server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Client tools.
    #[serde(default)]
    pub tools: Option<Vec<ToolDef>>,
    /// How the model may use tools.
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    /// Extended thinking.
    #[serde(default)]
    pub thinking: Option<Thinking>,
    /// Request metadata (`user_id`).
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// Effort and structured output.
    #[serde(default)]
    pub output_config: Option<OutputConfig>,
    /// Accepted and ignored: llmux has no prompt cache.
    #[serde(default)]
    pub cache_control: Option<Value>,
    /// Accepted and ignored: llmux has no service tiers.
    #[serde(default)]
    pub service_tier: Option<String>,
}

/// `system`: a string or a list of text blocks.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum System {
    /// Plain text.
    Text(String),
    /// Text blocks (joined with blank lines).
    Blocks(Vec<TextBlock>),
}

/// A text block of `system` or a message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBlock {
    /// Always `text`.
    #[serde(rename = "type")]
    pub kind: TextType,
    /// The text.
    pub text: String,
    /// Accepted and ignored.
    #[serde(default)]
    pub cache_control: Option<Value>,
    /// Accepted and ignored (citations of documents llmux does not take).
    #[serde(default)]
    pub citations: Option<Value>,
}

/// The only block type of [`TextBlock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextType {
    /// `text`.
    Text,
}

/// Who wrote a message: Anthropic has only these two roles (`system` is a top-level field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The human (and tool results).
    User,
    /// The model.
    Assistant,
}

/// One input message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputMessage {
    /// `user` or `assistant`.
    pub role: Role,
    /// A string or content blocks.
    pub content: InputContent,
}

/// Message content: a string (one text block) or blocks.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum InputContent {
    /// Shorthand for one text block.
    Text(String),
    /// Content blocks.
    Blocks(Vec<InputBlock>),
}

/// A content block of an input message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
        /// Accepted and ignored.
        #[serde(default)]
        cache_control: Option<Value>,
        /// Accepted and ignored.
        #[serde(default)]
        citations: Option<Value>,
    },
    /// An image (base64 or URL).
    Image {
        /// Where the image is.
        source: ImageSource,
        /// Accepted and ignored.
        #[serde(default)]
        cache_control: Option<Value>,
    },
    /// A tool call the model made (in an assistant turn).
    ToolUse {
        /// The call id (`toolu_…`).
        id: String,
        /// The tool.
        name: String,
        /// The arguments object.
        input: Value,
        /// Accepted and ignored.
        #[serde(default)]
        cache_control: Option<Value>,
    },
    /// The result of a tool call (in a user turn).
    ToolResult {
        /// The call it answers.
        tool_use_id: String,
        /// A string or text blocks.
        #[serde(default)]
        content: Option<ToolResultContent>,
        /// The tool failed.
        #[serde(default)]
        is_error: Option<bool>,
        /// Accepted and ignored.
        #[serde(default)]
        cache_control: Option<Value>,
    },
    /// Earlier thinking of the model, passed back: accepted and not sent upstream (upstreams
    /// take no reasoning input).
    Thinking {
        /// The thinking text.
        thinking: String,
        /// Its signature.
        signature: String,
    },
    /// Earlier redacted thinking: accepted and not sent upstream.
    RedactedThinking {
        /// Opaque data.
        data: String,
    },
}

/// An image's source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ImageSource {
    /// Inline bytes.
    Base64 {
        /// `image/jpeg`, `image/png`, `image/gif` or `image/webp`.
        media_type: String,
        /// Base64 bytes.
        data: String,
    },
    /// A URL.
    Url {
        /// The URL.
        url: String,
    },
}

/// `tool_result.content`: a string or blocks.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    /// Plain text.
    Text(String),
    /// Text (and image) blocks.
    Blocks(Vec<InputBlock>),
}

/// A tool the model may call (unknown fields land in [`ToolDef::other`] and are refused).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolDef {
    /// `custom` (or absent) for client tools; server tools (`web_search_20250305`, `bash_…`,
    /// …) are refused.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Tool name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the input object (required for client tools).
    #[serde(default)]
    pub input_schema: Option<Value>,
    /// Ask for input that follows the schema exactly.
    #[serde(default)]
    pub strict: Option<bool>,
    /// Accepted and ignored.
    #[serde(default)]
    pub cache_control: Option<Value>,
    /// Accepted and ignored (input is always streamed as it arrives).
    #[serde(default)]
    pub eager_input_streaming: Option<bool>,
    /// Fields of server tools (`max_uses`, `allowed_domains`, …) and of features llmux does not
    /// run (`allowed_callers`, `defer_loading`, `input_examples`): refused.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `tool_choice`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToolChoice {
    /// The model decides.
    Auto {
        /// At most one tool call.
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    /// Some tool must be called.
    Any {
        /// Exactly one tool call.
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    /// This tool must be called.
    Tool {
        /// The tool.
        name: String,
        /// Exactly one tool call.
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    /// No tool may be called.
    None {},
}

/// `thinking`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Thinking {
    /// Think with this budget.
    Enabled {
        /// Token budget (Anthropic: at least 1024 and below `max_tokens`).
        budget_tokens: u32,
        /// `summarized` (default) or `omitted` (thinking text withheld).
        #[serde(default)]
        display: Option<String>,
    },
    /// Do not think.
    Disabled {},
    /// The model decides how much to think.
    Adaptive {
        /// As for `enabled`.
        #[serde(default)]
        display: Option<String>,
    },
}

/// `output_config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// `low`, `medium`, `high`, `xhigh` or `max` (sent as `reasoning_effort`; the last two as
    /// `high`).
    #[serde(default)]
    pub effort: Option<Effort>,
    /// Structured output.
    #[serde(default)]
    pub format: Option<OutputFormat>,
}

/// `output_config.effort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effort {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Extra high.
    Xhigh,
    /// Maximum.
    Max,
}

/// `output_config.format`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputFormat {
    /// JSON that follows `schema`.
    JsonSchema {
        /// The JSON Schema.
        schema: Value,
    },
}

/// `metadata`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// An opaque end-user id (sent upstream as `user`).
    #[serde(default)]
    pub user_id: Option<String>,
}

impl<'de> Deserialize<'de> for System {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_blocks(d, System::Text, System::Blocks)
    }
}

impl<'de> Deserialize<'de> for InputContent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_blocks(d, InputContent::Text, InputContent::Blocks)
    }
}

impl<'de> Deserialize<'de> for ToolResultContent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_blocks(d, ToolResultContent::Text, ToolResultContent::Blocks)
    }
}

/// A string or a list of blocks, with the blocks' own errors (an untagged enum would only say
/// that nothing matched).
fn string_or_blocks<'de, D, T, B>(
    d: D,
    text: fn(String) -> T,
    blocks: fn(Vec<B>) -> T,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    B: Deserialize<'de>,
{
    struct V<T, B> {
        text: fn(String) -> T,
        blocks: fn(Vec<B>) -> T,
    }
    impl<'de, T, B: Deserialize<'de>> Visitor<'de> for V<T, B> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or a list of content blocks")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            Ok((self.text)(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
            Ok((self.text)(v))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
            let list = Vec::<B>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
            Ok((self.blocks)(list))
        }
    }
    d.deserialize_any(V { text, blocks })
}
