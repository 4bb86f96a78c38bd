//! A [`MessagesRequest`] as an llmux [`ChatRequest`].
//!
//! | Anthropic | llmux |
//! |---|---|
//! | `system` (string or text blocks) | a leading system message (blocks joined with blank lines) |
//! | `text` / `image` blocks | text / `image_url` parts (`base64` → a `data:` URI; `url` kept, where the caller allows remote media) |
//! | assistant `tool_use` blocks | the assistant message's `tool_calls` (`input` as JSON text) |
//! | user `tool_result` blocks | [`Role::Tool`] messages with `tool_call_id`, before the turn's other blocks; `is_error: true` prefixes the text with `[tool error] ` |
//! | `thinking` / `redacted_thinking` blocks | not sent (no upstream takes reasoning input) |
//! | `tools` (client tools) | [`Tool`]s (`input_schema` → `parameters`, `strict`) |
//! | `tool_choice` `auto` / `any` / `tool` / `none` | `auto` / `required` / the function / `none`; `disable_parallel_tool_use` → `parallel_tool_calls: false` |
//! | `max_tokens`, `stop_sequences`, `temperature`, `top_p` | the same fields |
//! | `top_k` | `extra.top_k` (forwarded to OpenAI-shaped upstreams, named as ignored by others) |
//! | `thinking` `enabled` | `extra.reasoning_effort`: `low` below 4096 budget tokens, `medium` below 16384, else `high`; `adaptive` → `medium` |
//! | `output_config.effort` | `extra.reasoning_effort` (`xhigh` and `max` as `high`) |
//! | `output_config.format` (`json_schema`) | a strict `json_schema` `response_format` named `output` |
//! | `metadata.user_id` | `user` |
//! | `cache_control`, `citations`, `service_tier`, `eager_input_streaming` | ignored (no prompt cache, no documents, no tiers) |
//!
//! `temperature`, `top_p` and `top_k` are accepted although recent SDKs send them only through
//! `extra_body`.
//!
//! Refused with a 400 naming the field: server tools (`web_search_…`, `bash_…`, `code_execution_…`,
//! …), tool fields llmux cannot run (`allowed_callers`, `defer_loading`, …), images inside
//! `tool_result`, block types other than the above (`document`, `search_result`, …), unknown
//! fields anywhere.

use crate::wire::{
    Effort, ImageSource, InputBlock, InputContent, InputMessage, MessagesRequest, OutputConfig,
    OutputFormat, Role, System, Thinking, ToolChoice, ToolDef, ToolResultContent,
};
use llmux_core::{
    ChatRequest, Content, ContentPart, ImageUrl, Message, ResponseFormat, Role as CoreRole, Tool,
    ToolCall, ToolChoice as CoreChoice,
};

/// A request field that cannot be honoured: a 400 `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// What is wrong and what to do.
    pub message: String,
    /// The field (`messages[1].content[0]`).
    pub param: Option<String>,
}

impl WireError {
    fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: Some(param.into()),
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.param {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

type Result<T> = std::result::Result<T, WireError>;

/// What the gateway needs besides the [`ChatRequest`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Answer as server-sent events.
    pub stream: bool,
    /// `thinking` is on and shown: reasoning becomes `thinking` blocks (otherwise reasoning
    /// output is not shown, as Anthropic shows none without `thinking`).
    pub thinking: bool,
}

/// The `reasoning_effort` for a thinking budget.
pub fn reasoning_effort(budget_tokens: u32) -> &'static str {
    match budget_tokens {
        0..4096 => "low",
        4096..16384 => "medium",
        _ => "high",
    }
}

/// Converts a `/v1/messages` body. `allow_remote_media`: keep `url` image sources (else
/// refused, as the chat route refuses remote image URLs). `max_tokens` is required here.
pub fn into_chat_request(
    wire: MessagesRequest,
    allow_remote_media: bool,
) -> Result<(ChatRequest, Options)> {
    if wire.max_tokens.is_none() {
        return Err(WireError::new(
            "max_tokens",
            "`max_tokens` is required (the largest number of tokens to generate)",
        ));
    }
    convert(wire, allow_remote_media)
}

/// As [`into_chat_request`], without requiring `max_tokens` (for `count_tokens`).
pub fn convert(wire: MessagesRequest, allow_remote_media: bool) -> Result<(ChatRequest, Options)> {
    let mut messages = Vec::with_capacity(wire.messages.len() + 1);
    if let Some(system) = wire.system {
        let text = match system {
            System::Text(t) => t,
            System::Blocks(b) => b
                .into_iter()
                .map(|b| b.text)
                .collect::<Vec<_>>()
                .join("\n\n"),
        };
        messages.push(Message::system(text));
    }
    if wire.messages.is_empty() {
        return Err(WireError::new(
            "messages",
            "`messages` is empty: send at least one user message",
        ));
    }
    for (i, m) in wire.messages.into_iter().enumerate() {
        message(m, i, allow_remote_media, &mut messages)?;
    }
    let mut req = ChatRequest::new(wire.model, messages);
    let stream = wire.stream.unwrap_or(false);
    req.stream = stream;
    req.max_tokens = wire.max_tokens;
    req.temperature = wire.temperature;
    req.top_p = wire.top_p;
    req.stop = wire.stop_sequences.unwrap_or_default();
    req.user = wire.metadata.and_then(|m| m.user_id);
    if let Some(k) = wire.top_k {
        req.extra.insert("top_k".into(), k.into());
    }
    let thinking = match wire.thinking {
        None | Some(Thinking::Disabled {}) => None,
        Some(Thinking::Enabled {
            budget_tokens,
            display,
        }) => Some((reasoning_effort(budget_tokens), display)),
        Some(Thinking::Adaptive { display }) => Some(("medium", display)),
    };
    if let Some(cfg) = wire.output_config {
        output_config(cfg, &mut req);
    }
    let shown = match &thinking {
        Some((effort, display)) => {
            req.extra
                .insert("reasoning_effort".into(), (*effort).into());
            display.as_deref() != Some("omitted")
        }
        None => false,
    };
    for (i, t) in wire.tools.unwrap_or_default().into_iter().enumerate() {
        req.tools.push(tool(t, i)?);
    }
    if let Some(choice) = wire.tool_choice {
        let (choice, no_parallel) = match choice {
            ToolChoice::Auto {
                disable_parallel_tool_use,
            } => (CoreChoice::Auto, disable_parallel_tool_use),
            ToolChoice::Any {
                disable_parallel_tool_use,
            } => (CoreChoice::Required, disable_parallel_tool_use),
            ToolChoice::Tool {
                name,
                disable_parallel_tool_use,
            } => (CoreChoice::Function(name), disable_parallel_tool_use),
            ToolChoice::None {} => (CoreChoice::None, None),
        };
        req.tool_choice = Some(choice);
        if no_parallel == Some(true) {
            req.parallel_tool_calls = Some(false);
        }
    }
    Ok((
        req,
        Options {
            stream,
            thinking: shown,
        },
    ))
}

/// `output_config`: `effort` → `reasoning_effort`, `format` → a strict JSON-schema
/// `response_format` named `output`.
fn output_config(cfg: OutputConfig, req: &mut ChatRequest) {
    if let Some(effort) = cfg.effort {
        let e = match effort {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High | Effort::Xhigh | Effort::Max => "high",
        };
        req.extra.insert("reasoning_effort".into(), e.into());
    }
    if let Some(OutputFormat::JsonSchema { schema }) = cfg.format {
        req.response_format = Some(ResponseFormat::JsonSchema {
            name: "output".into(),
            description: None,
            schema: Some(schema),
            strict: Some(true),
        });
    }
}

/// A client tool, or the refusal of a server tool / unsupported tool field.
fn tool(t: ToolDef, i: usize) -> Result<Tool> {
    let at = format!("tools[{i}]");
    if let Some(kind) = t.kind.as_deref().filter(|k| *k != "custom") {
        return Err(WireError::new(
            format!("{at}.type"),
            format!(
                "server tool `{kind}` is not supported: llmux runs client tools only (give \
                 `name`, `description` and `input_schema`, and run the tool yourself)"
            ),
        ));
    }
    if let Some(field) = t.other.keys().next() {
        return Err(WireError::new(
            format!("{at}.{field}"),
            format!("`{field}` is not supported on tools by this gateway; remove it"),
        ));
    }
    let Some(schema) = t.input_schema else {
        return Err(WireError::new(
            format!("{at}.input_schema"),
            "`input_schema` is required for client tools",
        ));
    };
    if !schema.is_object() {
        return Err(WireError::new(
            format!("{at}.input_schema"),
            "`input_schema` must be a JSON Schema object",
        ));
    }
    Ok(Tool {
        name: t.name,
        description: t.description,
        parameters: Some(schema),
        strict: t.strict,
    })
}

fn image_part(source: ImageSource, at: &str, allow_remote: bool) -> Result<ContentPart> {
    let url = match source {
        ImageSource::Base64 { media_type, data } => {
            if !media_type.starts_with("image/") {
                return Err(WireError::new(
                    format!("{at}.source.media_type"),
                    format!("`{media_type}` is not an image type"),
                ));
            }
            format!("data:{media_type};base64,{data}")
        }
        ImageSource::Url { url } => {
            if !allow_remote {
                return Err(WireError::new(
                    format!("{at}.source.url"),
                    "remote image URLs are not accepted by this gateway (it does not fetch \
                     them); send the image as a `base64` source",
                ));
            }
            url
        }
    };
    Ok(ContentPart::ImageUrl {
        image_url: ImageUrl::new(url),
    })
}

/// The text of a `tool_result`'s content (text blocks only).
fn tool_result_text(content: Option<ToolResultContent>, at: &str) -> Result<String> {
    Ok(match content {
        None => String::new(),
        Some(ToolResultContent::Text(t)) => t,
        Some(ToolResultContent::Blocks(blocks)) => {
            let mut out = Vec::new();
            for (j, b) in blocks.into_iter().enumerate() {
                match b {
                    InputBlock::Text { text, .. } => out.push(text),
                    _ => {
                        return Err(WireError::new(
                            format!("{at}.content[{j}]"),
                            "only text blocks are supported inside `tool_result` (upstream tool \
                             messages take text)",
                        ));
                    }
                }
            }
            out.join("\n")
        }
    })
}

/// Appends the llmux messages of input message `i`.
fn message(m: InputMessage, i: usize, allow_remote: bool, out: &mut Vec<Message>) -> Result<()> {
    let at = format!("messages[{i}].content");
    let blocks = match m.content {
        InputContent::Text(t) => {
            out.push(Message::new(role(m.role), t));
            return Ok(());
        }
        InputContent::Blocks(b) => b,
    };
    let mut parts: Vec<ContentPart> = Vec::new();
    let mut calls: Vec<ToolCall> = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let at = format!("{at}[{j}]");
        match (m.role, block) {
            (_, InputBlock::Text { text, .. }) => parts.push(ContentPart::Text { text }),
            (Role::User, InputBlock::Image { source, .. }) => {
                parts.push(image_part(source, &at, allow_remote)?);
            }
            (
                Role::Assistant,
                InputBlock::ToolUse {
                    id, name, input, ..
                },
            ) => {
                calls.push(ToolCall::new(id, name, input.to_string()));
            }
            (
                Role::User,
                InputBlock::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                    ..
                },
            ) => {
                let mut text = tool_result_text(content, &at)?;
                if is_error == Some(true) {
                    text.insert_str(0, "[tool error] ");
                }
                out.push(Message::tool_result(tool_use_id, text));
            }
            (
                Role::Assistant,
                InputBlock::Thinking { .. } | InputBlock::RedactedThinking { .. },
            ) => {}
            (role, block) => {
                return Err(WireError::new(
                    at,
                    format!(
                        "a `{}` block cannot appear in a{} `{}` message",
                        block_type(&block),
                        if role == Role::User { "" } else { "n" },
                        if role == Role::User {
                            "user"
                        } else {
                            "assistant"
                        }
                    ),
                ));
            }
        }
    }
    if parts.is_empty() && calls.is_empty() {
        return Ok(());
    }
    let content = match <[ContentPart; 1]>::try_from(parts) {
        Ok([ContentPart::Text { text }]) => Some(Content::Text(text)),
        Ok([part]) => Some(Content::Parts(vec![part])),
        Err(parts) if parts.is_empty() => None,
        Err(parts) => Some(Content::Parts(parts)),
    };
    let mut msg = Message::new(role(m.role), "");
    msg.content = content;
    msg.tool_calls = calls;
    out.push(msg);
    Ok(())
}

fn role(r: Role) -> CoreRole {
    match r {
        Role::User => CoreRole::User,
        Role::Assistant => CoreRole::Assistant,
    }
}

fn block_type(b: &InputBlock) -> &'static str {
    match b {
        InputBlock::Text { .. } => "text",
        InputBlock::Image { .. } => "image",
        InputBlock::ToolUse { .. } => "tool_use",
        InputBlock::ToolResult { .. } => "tool_result",
        InputBlock::Thinking { .. } => "thinking",
        InputBlock::RedactedThinking { .. } => "redacted_thinking",
    }
}
