//! What a provider streams back: typed [`Chunk`]s.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::request::Conversation;

/// The stream every provider returns.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<Chunk, Error>> + Send>>;

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// Token limit reached.
    Length,
    /// Content filter.
    ContentFilter,
    /// The model called tools.
    ToolCalls,
    /// Anything else the upstream said.
    #[serde(untagged)]
    Other(String),
}

impl FinishReason {
    /// Parses an upstream value; `None` for empty strings (non-compliant servers send `""`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" => return None,
            "stop" | "eos_token" | "stop_sequence" | "end_turn" => FinishReason::Stop,
            "length" | "max_tokens" => FinishReason::Length,
            "content_filter" => FinishReason::ContentFilter,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            other => FinishReason::Other(other.to_owned()),
        })
    }

    /// The OpenAI string.
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::Other(s) => s,
        }
    }
}

/// Token counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Details the upstream reported beside the counts (`prompt_tokens_details`,
    /// `completion_tokens_details`, …), passed on verbatim.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Usage {
    /// Counts with `total = prompt + completion` and no details.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            details: serde_json::Map::new(),
        }
    }
}

/// A piece of a tool call as it streams: the first piece of a call carries its `id` and
/// `name`, later pieces only argument text. Pieces of parallel calls are told apart by `index`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call of this turn (0-based, in the order the calls started).
    pub index: u32,
    /// The call id (on the first piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function name (on the first piece).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A fragment of the JSON arguments text.
    #[serde(default)]
    pub arguments: String,
    /// Fields of the call object llmux does not model, passed on verbatim.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Where in an OpenAI-shaped answer [`Extra`] fields belong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraScope {
    /// The response object (`system_fingerprint`, `service_tier`, …): they hold for the rest
    /// of the answer.
    Response,
    /// The choice (`logprobs`, …): they go with the next piece of output.
    Choice,
    /// The message or delta (`refusal`, `annotations`, `audio`, …): they go with the next
    /// piece of output.
    Message,
}

/// Fields of the upstream's answer that llmux does not model, passed on verbatim to clients of
/// the same wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    /// Where they belong.
    pub scope: ExtraScope,
    /// The fields.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl Extra {
    /// True when a message-scope field carries output the user sees (a `refusal` text, audio):
    /// a non-empty value that is not `null`.
    pub fn is_output(&self) -> bool {
        use serde_json::Value;
        self.scope == ExtraScope::Message
            && self.fields.values().any(|v| match v {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => true,
            })
    }
}

/// Reasoning ("thinking") output: a token of the reasoning text and/or a status line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reasoning {
    /// A piece of reasoning text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A status such as "Thinking…" or "Done".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A label for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl Reasoning {
    /// A reasoning text token.
    pub fn token(t: impl Into<String>) -> Self {
        Self {
            token: Some(t.into()),
            ..Self::default()
        }
    }
    /// A reasoning status.
    pub fn status(s: impl Into<String>) -> Self {
        Self {
            status: Some(s.into()),
            ..Self::default()
        }
    }
}

/// Where a generated image or audio lives.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaData {
    /// A URL (may need the provider's cookies: see [`Image::needs_auth`]).
    Url(String),
    /// Inline bytes with their MIME type.
    Bytes {
        /// MIME type (`image/png`, `audio/mpeg`, …).
        mime: String,
        /// The bytes (serialised as base64).
        #[serde(with = "crate::media::base64_bytes")]
        data: Bytes,
    },
}

impl std::fmt::Debug for MediaData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaData::Url(u) => f.debug_tuple("Url").field(u).finish(),
            MediaData::Bytes { mime, data } => f
                .debug_struct("Bytes")
                .field("mime", mime)
                .field("len", &data.len())
                .finish(),
        }
    }
}

/// One generated image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The image.
    pub data: MediaData,
    /// Alt text (usually the prompt).
    #[serde(default)]
    pub alt: String,
    /// True when fetching the URL needs the provider's credentials (cookies).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_auth: bool,
}

/// A web source the answer is based on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// URL (tracking `utm_source` suffix removed).
    pub url: String,
    /// Title, when known.
    #[serde(default)]
    pub title: String,
}

/// Which provider and model are answering (emitted once per attempt by the facade).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfoChunk {
    /// Provider name.
    pub provider: String,
    /// Display label.
    pub label: String,
    /// Home page.
    pub url: String,
    /// Model asked of the provider.
    pub model: String,
    /// Request fields this provider ignores (it has no such setting), as g4f ignores them; the
    /// gateway names them in `x-llmux-ignored-params`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_params: Vec<String>,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Chunk {
    /// A text delta.
    Text(String),
    /// Reasoning output.
    Reasoning(Reasoning),
    /// Generated images.
    Images(Vec<Image>),
    /// Generated audio.
    Audio(MediaData),
    /// Web sources.
    Sources(Vec<Source>),
    /// Conversation title.
    Title(String),
    /// The model stopped.
    Finish(FinishReason),
    /// Token usage.
    Usage(Usage),
    /// State to hand back next turn.
    Conversation(Conversation),
    /// Which provider/model is answering.
    Provider(ProviderInfoChunk),
    /// The user must log in (label and URL).
    LoginRequired {
        /// What to log in to.
        label: String,
        /// Where.
        url: String,
    },
    /// A piece of a tool call, streamed as it arrives.
    ToolCall(ToolCallDelta),
    /// Upstream fields llmux does not model.
    Extra(Extra),
}

impl Chunk {
    /// Shorthand for a text chunk.
    pub fn text(s: impl Into<String>) -> Self {
        Chunk::Text(s.into())
    }

    /// True for output the user sees (text, reasoning text, images, audio). Once such a chunk has
    /// been passed on, falling back to another provider would duplicate output.
    pub fn is_content(&self) -> bool {
        match self {
            Chunk::Text(t) => !t.is_empty(),
            Chunk::Reasoning(r) => r.token.as_deref().is_some_and(|t| !t.is_empty()),
            Chunk::Images(i) => !i.is_empty(),
            Chunk::Audio(_) | Chunk::ToolCall(_) => true,
            Chunk::Extra(e) => e.is_output(),
            _ => false,
        }
    }
}

/// Removes a `utm_source=…` tracking suffix (`?utm_source=` or `&utm_source=`) as g4f does.
pub fn clean_source_url(url: &str) -> String {
    for sep in ["?utm_source=", "&utm_source="] {
        if let Some(i) = url.find(sep) {
            return url[..i].to_owned();
        }
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reason_parsing() {
        assert_eq!(FinishReason::parse(""), None);
        assert_eq!(FinishReason::parse("stop"), Some(FinishReason::Stop));
        assert_eq!(
            FinishReason::parse("weird"),
            Some(FinishReason::Other("weird".into()))
        );
    }

    #[test]
    fn content_classification() {
        assert!(Chunk::text("a").is_content());
        assert!(!Chunk::text("").is_content());
        assert!(Chunk::Reasoning(Reasoning::token("hm")).is_content());
        assert!(!Chunk::Reasoning(Reasoning::status("Thinking")).is_content());
        assert!(!Chunk::Title("t".into()).is_content());
    }

    #[test]
    fn utm_is_removed() {
        assert_eq!(
            clean_source_url("https://a.b/c?utm_source=x"),
            "https://a.b/c"
        );
        assert_eq!(
            clean_source_url("https://a.b/c?q=1&utm_source=x"),
            "https://a.b/c?q=1"
        );
    }
}
