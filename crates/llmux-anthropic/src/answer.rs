//! The answer of `POST /v1/messages`: a `message` object with content blocks, `stop_reason` and
//! `usage`, in Anthropic's shape.

use llmux_core::{FinishReason, Usage as CoreUsage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A natural end.
    EndTurn,
    /// `max_tokens` reached.
    MaxTokens,
    /// A custom stop sequence was generated (named in `stop_sequence`).
    StopSequence,
    /// The model called tools.
    ToolUse,
    /// The upstream's content filter stopped the answer.
    Refusal,
}

/// The stop reason and sequence for llmux's finish reason.
///
/// `upstream_stop` is the matched stop string when the upstream names it (vLLM's choice field
/// `stop_reason`); OpenAI reports `stop` for both a natural end and a stop sequence, so without it
/// a stop sequence is reported as `end_turn`.
pub fn stop_reason(
    finish: Option<&FinishReason>,
    had_tool_calls: bool,
    upstream_stop: Option<&str>,
    stop_sequences: &[String],
) -> (StopReason, Option<String>) {
    match finish {
        Some(FinishReason::Length) => (StopReason::MaxTokens, None),
        Some(FinishReason::ToolCalls) => (StopReason::ToolUse, None),
        Some(FinishReason::ContentFilter) => (StopReason::Refusal, None),
        _ if had_tool_calls => (StopReason::ToolUse, None),
        _ => match upstream_stop.filter(|s| stop_sequences.iter().any(|x| x == s)) {
            Some(s) => (StopReason::StopSequence, Some(s.to_owned())),
            None => (StopReason::EndTurn, None),
        },
    }
}

/// `usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from a cache (OpenAI's `prompt_tokens_details.cached_tokens`), when
    /// the upstream reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// From llmux's counts.
    pub fn from_core(u: &CoreUsage) -> Self {
        let cached = u
            .details
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64);
        Self {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cache_read_input_tokens: cached,
        }
    }
}

/// A content block of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// Reasoning.
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// Opaque; llmux's is [`SIGNATURE`].
        signature: String,
    },
    /// A tool call.
    ToolUse {
        /// Call id (the upstream's, else `toolu_…`).
        id: String,
        /// The tool.
        name: String,
        /// The arguments object.
        input: Value,
    },
}

/// The `signature` of llmux's thinking blocks: the upstream signs nothing, and thinking passed
/// back is not sent upstream, so it only has to be a string the client hands back.
pub const SIGNATURE: &str = "llmux-unsigned";

/// The `message` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageOut {
    /// `msg_…`.
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `assistant`.
    pub role: String,
    /// The model that answered.
    pub model: String,
    /// The blocks, in order.
    pub content: Vec<OutBlock>,
    /// `null` only in `message_start`.
    pub stop_reason: Option<StopReason>,
    /// The stop sequence generated, if any.
    pub stop_sequence: Option<String>,
    /// Token counts.
    pub usage: Usage,
}

impl MessageOut {
    /// A message with no content yet (as `message_start` carries it).
    pub fn new(id: String, model: String, usage: Usage) -> Self {
        Self {
            id,
            kind: "message".into(),
            role: "assistant".into(),
            model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage,
        }
    }
}

/// A new message id: `msg_` and 24 random letters and digits.
pub fn message_id() -> String {
    format!("msg_{}", llmux_core::random::random_alnum(24))
}

/// A new tool-use id: `toolu_` and 24 random letters and digits.
pub fn tool_use_id() -> String {
    format!("toolu_{}", llmux_core::random::random_alnum(24))
}

/// The `input` object of a tool call's arguments text (`""` is `{}`).
pub fn tool_input(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("the upstream's tool arguments are not a JSON object".into()),
        Err(e) => Err(format!(
            "the upstream's tool arguments are not valid JSON: {e}"
        )),
    }
}

/// One block being collected.
#[derive(Debug)]
enum Item {
    Text(String),
    Thinking(String),
    Tool {
        call: u32,
        id: String,
        name: String,
        arguments: String,
    },
}

/// Builds the content of a non-streamed answer: consecutive text (or reasoning) pieces make one
/// block; a tool call's pieces (by llmux index, in any order) make one `tool_use` block where
/// the call began.
#[derive(Debug, Default)]
pub struct Collector {
    items: Vec<Item>,
}

impl Collector {
    /// Appends text.
    pub fn text(&mut self, t: &str) {
        match self.items.last_mut() {
            Some(Item::Text(text)) => text.push_str(t),
            _ => self.items.push(Item::Text(t.to_owned())),
        }
    }

    /// Appends reasoning.
    pub fn thinking(&mut self, t: &str) {
        match self.items.last_mut() {
            Some(Item::Thinking(text)) => text.push_str(t),
            _ => self.items.push(Item::Thinking(t.to_owned())),
        }
    }

    /// Adds a piece of tool call `call`: the first piece of a call starts its block.
    pub fn tool(&mut self, call: u32, id: Option<&str>, name: Option<&str>, arguments: &str) {
        let found = self.items.iter_mut().find_map(|i| match i {
            Item::Tool {
                call: c,
                arguments: a,
                ..
            } if *c == call => Some(a),
            _ => None,
        });
        match found {
            Some(a) => a.push_str(arguments),
            None => self.items.push(Item::Tool {
                call,
                id: id.unwrap_or_default().to_owned(),
                name: name.unwrap_or_default().to_owned(),
                arguments: arguments.to_owned(),
            }),
        }
    }

    /// True once a tool call started.
    pub fn had_tool_calls(&self) -> bool {
        self.items.iter().any(|i| matches!(i, Item::Tool { .. }))
    }

    /// The blocks; an error when a tool call's arguments are not a JSON object.
    pub fn finish(self) -> Result<Vec<OutBlock>, String> {
        self.items
            .into_iter()
            .map(|i| {
                Ok(match i {
                    Item::Text(text) => OutBlock::Text { text },
                    Item::Thinking(thinking) => OutBlock::Thinking {
                        thinking,
                        signature: SIGNATURE.into(),
                    },
                    Item::Tool {
                        id,
                        name,
                        arguments,
                        ..
                    } => OutBlock::ToolUse {
                        id: if id.is_empty() { tool_use_id() } else { id },
                        name,
                        input: tool_input(&arguments)?,
                    },
                })
            })
            .collect()
    }
}
