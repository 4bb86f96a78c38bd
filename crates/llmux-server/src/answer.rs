//! Bookkeeping of one chat answer, shared by the streaming and non-streaming paths.

use std::time::{SystemTime, UNIX_EPOCH};

use llmux::{Chunk, Conversation, FinishReason, Reasoning, Usage};

use crate::render;

/// Something the client sees: content text (markdown for media) or reasoning text.
pub(crate) enum Piece {
    Content(String),
    Reasoning(String),
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
    pub prompt_chars: usize,
    pub completion_chars: usize,
    /// Set when the provider/model changed since the caller last looked.
    pub names_changed: bool,
}

impl Answer {
    pub fn new(model: String, prompt_chars: usize) -> Self {
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
            prompt_chars,
            completion_chars: 0,
            names_changed: true,
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
                if p.provider != self.provider || (!p.model.is_empty() && p.model != self.model) {
                    self.provider = p.provider;
                    if !p.model.is_empty() {
                        self.model = p.model;
                    }
                    self.names_changed = true;
                }
                Piece::Nothing
            }
            _ => Piece::Nothing,
        };
        match &piece {
            Piece::Content(t) | Piece::Reasoning(t) => self.completion_chars += t.len(),
            Piece::Nothing => {}
        }
        piece
    }

    /// The finish reason (`stop` when the provider gave none).
    pub fn finish_reason(&self) -> &str {
        self.finish.as_ref().map_or("stop", FinishReason::as_str)
    }

    /// Upstream usage, else an estimate (4 bytes of text per token).
    pub fn usage(&self) -> Usage {
        self.usage.clone().unwrap_or_else(|| {
            let p = self.prompt_chars.div_ceil(4) as u64;
            let c = self.completion_chars.div_ceil(4) as u64;
            Usage {
                prompt_tokens: p,
                completion_tokens: c,
                total_tokens: p + c,
            }
        })
    }
}
