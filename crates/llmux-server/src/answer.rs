//! Bookkeeping of one chat answer, shared by the streaming and non-streaming paths.

use std::time::{SystemTime, UNIX_EPOCH};

use llmux::{
    ChatRequest, Chunk, Conversation, ExtraFields, ExtraScope, FinishReason, Reasoning, ToolCall,
    ToolCallAssembler, ToolCallDelta, Usage,
};
use serde_json::{Map, Value};

use crate::render;

/// Something the client sees: content text (markdown for media), reasoning text, or a piece of
/// a tool call in OpenAI's shape (id and name on the call's first piece only).
pub(crate) enum Piece {
    Content(String),
    Reasoning(String),
    Tool(ToolCallDelta),
    /// Output that lives only in extras (a `refusal` text): an event of its own.
    ExtraOnly,
    Nothing,
}

/// State of one answer.
pub(crate) struct Answer {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub provider: String,
    pub finish: Option<FinishReason>,
    pub usage: Option<Usage>,
    pub conversation: Option<Conversation>,
    /// Request fields the answering provider ignores.
    pub ignored: Vec<String>,
    /// Changes whenever the provider, the model or the response-level extras change (so a
    /// writer knows when its cached chunk head is stale).
    pub head_generation: u32,
    /// Upstream fields llmux does not model: response-level ones hold for the whole answer;
    /// choice and message ones wait for the next event (stream) or accumulate (non-stream).
    pub extra: ExtraFields,
    /// Estimated prompt tokens (used only when the upstream reports no usage).
    pub prompt_estimate: u64,
    pub completion_chars: usize,
    /// The deepest scope of the choice / message extras waiting for the next event (0 none,
    /// 1 choice, 2 message): an upstream event's extras come choice first, then message, so a
    /// new extra of the same or an outer scope starts the next upstream event.
    pending_scope: u8,
    /// Providers tried (one `Chunk::Provider` each).
    pub attempts: u32,
    /// Tool-call indices already announced, and the calls so far (non-stream).
    announced: Vec<u32>,
    pub tools: ToolCallAssembler,
}

fn scope_rank(scope: ExtraScope) -> u8 {
    match scope {
        ExtraScope::Response => 0,
        ExtraScope::Choice => 1,
        ExtraScope::Message => 2,
    }
}

/// A sane prompt estimate: about 4 bytes of text per token, plus OpenAI's framing of 3 tokens
/// per message and 3 for the reply.
pub(crate) fn estimate_prompt_tokens(req: &ChatRequest) -> u64 {
    let mut bytes = 0usize;
    for m in &req.messages {
        bytes += m.text().len();
        bytes += m
            .tool_calls
            .iter()
            .map(|c| c.name.len() + c.arguments.len())
            .sum::<usize>();
    }
    for t in &req.tools {
        bytes += t.name.len() + t.description.as_ref().map_or(0, String::len);
        bytes += t.parameters.as_ref().map_or(0, |p| p.to_string().len());
    }
    bytes.div_ceil(4) as u64 + 3 * req.messages.len() as u64 + 3
}

impl Answer {
    pub fn new(model: String, prompt_estimate: u64) -> Self {
        let mut id = String::with_capacity(33);
        id.push_str("chatcmpl-");
        id.push_str(&llmux_core::random::random_alnum(24));
        Self {
            id,
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            model,
            provider: String::new(),
            finish: None,
            usage: None,
            conversation: None,
            ignored: Vec::new(),
            head_generation: 0,
            extra: ExtraFields::default(),
            prompt_estimate,
            completion_chars: 0,
            pending_scope: 0,
            attempts: 0,
            announced: Vec::new(),
            tools: ToolCallAssembler::default(),
        }
    }

    /// True for chunks that produce output (used to decide when a stream has started).
    pub fn is_visible(chunk: &Chunk) -> bool {
        match chunk {
            Chunk::Sources(s) => !s.is_empty(),
            Chunk::LoginRequired { .. } => true,
            other => other.is_content(),
        }
    }

    /// Records bookkeeping chunks and turns visible ones into a [`Piece`].
    pub fn take(&mut self, chunk: Chunk) -> Piece {
        let piece = match chunk {
            Chunk::Text(t) if !t.is_empty() => Piece::Content(t),
            Chunk::Reasoning(Reasoning { token: Some(t), .. }) if !t.is_empty() => {
                Piece::Reasoning(t)
            }
            Chunk::Images(images) if !images.is_empty() => Piece::Content(render::images(&images)),
            Chunk::Audio(a) => Piece::Content(render::audio(&a)),
            Chunk::Sources(s) if !s.is_empty() => Piece::Content(render::sources(&s)),
            Chunk::LoginRequired { label, url } => Piece::Content(render::login(&label, &url)),
            Chunk::ToolCall(d) => Piece::Tool(self.tool_piece(d)),
            Chunk::Extra(e) => {
                let output = e.is_output();
                self.pending_scope = self.pending_scope.max(scope_rank(e.scope));
                if e.scope == ExtraScope::Response {
                    self.head_generation = self.head_generation.wrapping_add(1);
                }
                self.extra.merge(&e);
                if output {
                    Piece::ExtraOnly
                } else {
                    Piece::Nothing
                }
            }
            Chunk::Finish(f) => {
                self.finish = Some(f);
                Piece::Nothing
            }
            Chunk::Usage(u) => {
                self.usage = Some(u);
                Piece::Nothing
            }
            Chunk::Conversation(c) => {
                self.conversation = Some(c);
                Piece::Nothing
            }
            Chunk::Provider(p) => {
                self.head_generation = self.head_generation.wrapping_add(1);
                self.attempts += 1;
                self.provider = p.provider;
                if !p.model.is_empty() {
                    self.model = p.model;
                }
                self.ignored = p.ignored_params;
                Piece::Nothing
            }
            _ => Piece::Nothing,
        };
        match &piece {
            Piece::Content(t) | Piece::Reasoning(t) => self.completion_chars += t.len(),
            Piece::Tool(d) => self.completion_chars += d.arguments.len(),
            Piece::ExtraOnly | Piece::Nothing => {}
        }
        piece
    }

    /// True when `chunk` is an extra of the next upstream event while this one's extras still
    /// wait: the waiting ones must be written first, in an event of their own (stream only).
    pub fn starts_next_event(&self, chunk: &Chunk) -> bool {
        match chunk {
            Chunk::Extra(e) => {
                let rank = scope_rank(e.scope);
                rank > 0 && self.pending_scope >= rank
            }
            _ => false,
        }
    }

    /// True while choice or message extras wait for an event.
    pub fn has_pending_extras(&self) -> bool {
        self.pending_scope > 0
    }

    /// The waiting choice and message extras, for the event being written.
    pub fn take_pending_extras(&mut self) -> (Map<String, Value>, Map<String, Value>) {
        self.pending_scope = 0;
        (
            std::mem::take(&mut self.extra.choice),
            std::mem::take(&mut self.extra.message),
        )
    }

    /// OpenAI's shape for a piece: the first piece of a call carries its id (made up when the
    /// provider gave none) and name, later pieces neither.
    fn tool_piece(&mut self, mut d: ToolCallDelta) -> ToolCallDelta {
        if self.announced.contains(&d.index) {
            d.id = None;
            d.name = None;
        } else {
            self.announced.push(d.index);
            if d.id.as_deref().is_none_or(str::is_empty) {
                d.id = Some(format!("call_{}", llmux_core::random::random_alnum(24)));
            }
        }
        self.tools.push(&d);
        d
    }

    /// The `x-llmux-ignored-params` value: the request fields the answering provider ignores.
    pub fn ignored_header(&self) -> Option<http::HeaderValue> {
        if self.ignored.is_empty() {
            return None;
        }
        http::HeaderValue::from_str(&self.ignored.join(",")).ok()
    }

    /// True once a tool call started.
    pub fn has_tool_calls(&self) -> bool {
        !self.announced.is_empty()
    }

    /// The finish reason: the provider's, else `tool_calls` after tool calls, else `stop`.
    pub fn finish_reason(&self) -> &str {
        match &self.finish {
            Some(f) => f.as_str(),
            None if self.has_tool_calls() => "tool_calls",
            None => "stop",
        }
    }

    /// The complete tool calls (non-stream).
    pub fn tool_calls(&mut self) -> llmux::Result<Vec<ToolCall>> {
        std::mem::take(&mut self.tools).finish(&self.provider)
    }

    /// Upstream usage, or `None`: llmux does not invent usage (see [`Answer::estimated_usage`]).
    pub fn upstream_usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// An estimate for when the upstream reported none, marked `"estimated": true`.
    pub fn estimated_usage(&self) -> Usage {
        let mut u = Usage::new(
            self.prompt_estimate,
            self.completion_chars.div_ceil(4) as u64,
        );
        u.details.insert("estimated".into(), Value::Bool(true));
        u
    }

    /// The usage to report: the upstream's, else the marked estimate.
    pub fn usage(&self) -> Usage {
        self.usage.clone().unwrap_or_else(|| self.estimated_usage())
    }
}
