//! The `response` object and its output items, as OpenAI's Responses API writes them.

use llmux_core::{Message, Role, ToolCall, Usage};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A `response` object (`{"id":"resp_…","object":"response","status",…,"output":[…]}`).
///
/// The request settings are echoed as OpenAI does; `extra` holds llmux's additions (`provider`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseObject {
    /// `resp_…`.
    pub id: String,
    /// Always `response`.
    pub object: String,
    /// Unix seconds.
    pub created_at: u64,
    /// `in_progress`, `completed`, `incomplete` or `failed`.
    pub status: String,
    /// Why it failed (`status` = `failed`).
    pub error: Option<ResponseError>,
    /// Why it is incomplete (`status` = `incomplete`).
    pub incomplete_details: Option<IncompleteDetails>,
    /// The request's `instructions`.
    pub instructions: Option<String>,
    /// The request's `max_output_tokens`.
    pub max_output_tokens: Option<u32>,
    /// The model that answered.
    pub model: String,
    /// The output items.
    pub output: Vec<OutputItem>,
    /// The request's `parallel_tool_calls` (default `true`).
    pub parallel_tool_calls: bool,
    /// The request's `previous_response_id`.
    pub previous_response_id: Option<String>,
    /// The request's `reasoning` settings.
    pub reasoning: ReasoningSettings,
    /// Whether the response is kept for `GET` and `previous_response_id`.
    pub store: bool,
    /// The request's `temperature`.
    pub temperature: Option<f64>,
    /// The request's `text` settings.
    pub text: TextSettings,
    /// The request's `tool_choice` (default `auto`).
    pub tool_choice: Value,
    /// The request's `tools`.
    pub tools: Vec<Value>,
    /// The request's `top_p`.
    pub top_p: Option<f64>,
    /// Always `disabled` (llmux never drops input).
    pub truncation: String,
    /// Token counts (set when the response ends).
    pub usage: Option<ResponseUsage>,
    /// The request's `user`.
    pub user: Option<String>,
    /// The request's `metadata`.
    pub metadata: Map<String, Value>,
    /// Unix seconds of the completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    /// llmux's additions (`provider`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `error` of a failed response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseError {
    /// `server_error`, `rate_limit_exceeded`, …
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// The `incomplete_details` of an incomplete response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncompleteDetails {
    /// `max_output_tokens` or `content_filter`.
    pub reason: String,
}

/// The echoed `reasoning` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasoningSettings {
    /// `minimal`, `low`, `medium`, `high`, …
    pub effort: Option<String>,
    /// `auto`, `concise` or `detailed`.
    pub summary: Option<String>,
}

/// The echoed `text` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextSettings {
    /// `{"type":"text"}`, `{"type":"json_object"}` or `{"type":"json_schema",…}`.
    pub format: Value,
    /// `low`, `medium` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
}

impl Default for TextSettings {
    fn default() -> Self {
        Self {
            format: serde_json::json!({"type": "text"}),
            verbosity: None,
        }
    }
}

/// One output item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// An assistant message (`msg_…`).
    Message {
        /// `msg_…`.
        id: String,
        /// `in_progress`, `completed` or `incomplete`.
        status: String,
        /// Always `assistant`.
        role: String,
        /// Its parts.
        content: Vec<OutputContent>,
    },
    /// The model's reasoning, as summary text (`rs_…`).
    Reasoning {
        /// `rs_…`.
        id: String,
        /// The reasoning text.
        summary: Vec<SummaryPart>,
    },
    /// A function call (`fc_…`) the client runs and answers with a `function_call_output`.
    FunctionCall {
        /// `fc_…`.
        id: String,
        /// The id the output item names.
        call_id: String,
        /// The function.
        name: String,
        /// JSON arguments, as the model wrote them.
        arguments: String,
        /// `in_progress`, `completed` or `incomplete`.
        status: String,
    },
}

impl OutputItem {
    /// The item's id.
    pub fn id(&self) -> &str {
        match self {
            OutputItem::Message { id, .. }
            | OutputItem::Reasoning { id, .. }
            | OutputItem::FunctionCall { id, .. } => id,
        }
    }

    /// Sets `status` (reasoning items have none).
    pub fn set_status(&mut self, to: &str) {
        if let OutputItem::Message { status, .. } | OutputItem::FunctionCall { status, .. } = self {
            to.clone_into(status);
        }
    }
}

/// A part of an output message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputContent {
    /// Text.
    OutputText {
        /// The text.
        text: String,
        /// Citations (always empty).
        annotations: Vec<Value>,
        /// Token log probabilities (always empty).
        #[serde(default)]
        logprobs: Vec<Value>,
    },
    /// The model refused.
    Refusal {
        /// Why.
        refusal: String,
    },
}

impl OutputContent {
    /// An empty text part.
    pub fn text(text: impl Into<String>) -> Self {
        OutputContent::OutputText {
            text: text.into(),
            annotations: Vec::new(),
            logprobs: Vec::new(),
        }
    }
}

/// A `summary_text` part of a reasoning item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryPart {
    /// Always `summary_text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub text: String,
}

impl SummaryPart {
    /// A `summary_text` part.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            kind: "summary_text".into(),
            text: text.into(),
        }
    }
}

/// `usage` of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Of which cached.
    pub input_tokens_details: InputTokensDetails,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Of which reasoning.
    pub output_tokens_details: OutputTokensDetails,
    /// Their sum.
    pub total_tokens: u64,
}

/// `input_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    /// Tokens served from the prompt cache.
    pub cached_tokens: u64,
}

/// `output_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    /// Tokens spent reasoning.
    pub reasoning_tokens: u64,
}

impl From<&Usage> for ResponseUsage {
    fn from(u: &Usage) -> Self {
        let detail = |outer: &str, inner: &str| {
            u.details
                .get(outer)
                .and_then(|d| d.get(inner))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        Self {
            input_tokens: u.prompt_tokens,
            input_tokens_details: InputTokensDetails {
                cached_tokens: detail("prompt_tokens_details", "cached_tokens"),
            },
            output_tokens: u.completion_tokens,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: detail("completion_tokens_details", "reasoning_tokens"),
            },
            total_tokens: u.total_tokens,
        }
    }
}

/// The output as chat messages, for a follow-up's history: one assistant message with the text
/// and the function calls (reasoning is not replayed, as chat upstreams take none).
pub fn output_messages(output: &[OutputItem]) -> Vec<Message> {
    let mut text = String::new();
    let mut refusal = None;
    let mut calls = Vec::new();
    for item in output {
        match item {
            OutputItem::Message { content, .. } => {
                for part in content {
                    match part {
                        OutputContent::OutputText { text: t, .. } => text.push_str(t),
                        OutputContent::Refusal { refusal: r } => refusal = Some(r.clone()),
                    }
                }
            }
            OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
                ..
            } => calls.push(ToolCall {
                id: call_id.clone(),
                name: name.clone(),
                arguments: arguments.clone(),
                ..ToolCall::default()
            }),
            OutputItem::Reasoning { .. } => {}
        }
    }
    if text.is_empty() && calls.is_empty() && refusal.is_none() {
        return Vec::new();
    }
    let mut m = Message::new(Role::Assistant, text);
    if m.text().is_empty() && !calls.is_empty() {
        m.content = None;
    }
    m.tool_calls = calls;
    if let Some(r) = refusal {
        m.extra.insert("refusal".into(), Value::String(r));
    }
    vec![m]
}
