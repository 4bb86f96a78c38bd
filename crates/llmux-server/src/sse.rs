//! The streaming response body: provider chunks → `chat.completion.chunk` SSE events.
//!
//! The body owns the provider stream: when hyper drops the body (client gone, shutdown), the
//! provider stream and its upstream connection are dropped with it.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use http_body::Frame;
use llmux::{ChatStream, Chunk, ToolCallDelta};
use llmux_openai::answer::{
    ChunkChoice, Delta, FunctionPiece, TextDelta, ToolCallPiece, chunk_head, write_text_choices,
};
use serde::Serialize;
use serde_json::Value;

use crate::answer::{Answer, Piece};
use crate::error::{ApiError, from_llmux};
use crate::log::Access;

/// Flush a frame once this many bytes are buffered, even if more chunks are ready.
const FLUSH_AT: usize = 16 * 1024;
/// Most scheduler yields per frame (see [`SseBody::poll_frame`]).
const MAX_YIELDS: u8 = 16;
/// Most yields in a row that bring no new chunk before the frame is flushed.
const MAX_FUTILE_YIELDS: u8 = 2;
/// Initial buffer capacity (split frames share it until it is used up; it grows as needed, and
/// what is left stays with an open stream, so it is kept small).
const BUF_CAPACITY: usize = 512;

/// Appends `,"key":<value>` (serialising into memory cannot fail).
fn put_field<T: Serialize + ?Sized>(buf: &mut BytesMut, key: &[u8], value: &T) {
    buf.extend_from_slice(key);
    let _ = serde_json::to_writer(buf.writer(), value);
}

/// SSE body of one streamed chat completion.
pub(crate) struct SseBody {
    stream: ChatStream,
    first: Option<Chunk>,
    answer: Answer,
    include_usage: bool,
    /// `data: {"id":…,"object":…,"created":…,"model":…,"provider":…` and the upstream's
    /// response-level extras (no closing brace), rebuilt when they change.
    head: Vec<u8>,
    /// The [`Answer::head_generation`] `head` was built for.
    head_for: Option<u32>,
    role_sent: bool,
    buf: BytesMut,
    done: bool,
    /// Scheduler yields since the last frame, and how many of them in a row brought nothing.
    yields: u8,
    futile: u8,
    /// `buf.len()` at the last yield.
    len_at_yield: usize,
    access: Access,
    /// The request's span, entered while polling (log lines of the stream carry its id).
    span: tracing::Span,
}

impl SseBody {
    pub fn new(
        stream: ChatStream,
        first: Option<Chunk>,
        answer: Answer,
        include_usage: bool,
        access: Access,
    ) -> Self {
        if let Some(m) = &access.metrics {
            m.stream(1);
        }
        Self {
            stream,
            first,
            answer,
            include_usage,
            head: Vec::new(),
            head_for: None,
            role_sent: false,
            buf: BytesMut::with_capacity(BUF_CAPACITY),
            done: false,
            yields: 0,
            futile: 0,
            len_at_yield: 0,
            access,
            span: tracing::Span::current(),
        }
    }

    /// Rebuilds [`SseBody::head`] when the provider, the model or the response extras changed.
    fn refresh_head(&mut self) {
        let a = &self.answer;
        if self.head_for == Some(a.head_generation) {
            return;
        }
        let mut top = a.extra.response.clone();
        top.insert("provider".into(), Value::String(a.provider.clone()));
        self.head.clear();
        self.head.extend_from_slice(b"data: ");
        self.head
            .extend_from_slice(&chunk_head(&a.id, a.created, &a.model, &top));
        self.head_for = Some(a.head_generation);
    }

    /// Writes one event: the cached head, `choices`, then `extra` fields (`usage`,
    /// `conversation`) given as raw `(key, value)` pairs.
    fn write_event(&mut self, choices: &[ChunkChoice<'_>], tail: &[(&[u8], &Value)]) {
        self.refresh_head();
        self.buf.reserve(self.head.len() + 160);
        self.buf.extend_from_slice(&self.head);
        put_field(&mut self.buf, b",\"choices\":", choices);
        for (key, value) in tail {
            put_field(&mut self.buf, key, *value);
        }
        self.buf.extend_from_slice(b"}\n\n");
    }

    /// One event with `delta` (role on the first), the waiting choice and message extras, and
    /// `finish_reason` when given.
    fn write_delta(
        &mut self,
        delta: Delta<'_>,
        finish_reason: Option<&str>,
        conversation: Option<&Value>,
    ) {
        let role = (!self.role_sent).then_some("assistant");
        self.role_sent = true;
        let (mut choice_extra, message_extra) = self.answer.take_pending_extras();
        if role.is_none()
            && finish_reason.is_none()
            && conversation.is_none()
            && choice_extra.is_empty()
            && message_extra.is_empty()
            && let Some((field, text)) = plain_text(&delta)
        {
            self.write_text_event(field, text);
            return;
        }
        let logprobs = choice_extra.remove("logprobs").unwrap_or(Value::Null);
        let delta = Delta {
            role,
            extra: Some(&message_extra).filter(|m| !m.is_empty()),
            ..delta
        };
        let choices = [ChunkChoice {
            index: 0,
            delta,
            logprobs: &logprobs,
            finish_reason,
            extra: &choice_extra,
        }];
        match conversation {
            Some(c) => self.write_event(&choices, &[(b",\"conversation\":", c)]),
            None => self.write_event(&choices, &[]),
        }
    }

    /// [`SseBody::write_event`] for a delta of one piece of text and nothing else, without
    /// serde for the structure (the same bytes).
    fn write_text_event(&mut self, field: TextDelta, text: &str) {
        self.refresh_head();
        self.buf.reserve(self.head.len() + text.len() + 96);
        self.buf.extend_from_slice(&self.head);
        self.buf.extend_from_slice(b",\"choices\":");
        // writing into memory cannot fail
        let _ = write_text_choices((&mut self.buf).writer(), field, text);
        self.buf.extend_from_slice(b"}\n\n");
    }

    fn write_tool(&mut self, d: &ToolCallDelta) {
        let pieces = [ToolCallPiece {
            index: d.index,
            id: d.id.as_deref(),
            kind: d.id.as_ref().map(|_| "function"),
            function: FunctionPiece {
                name: d.name.as_deref(),
                arguments: &d.arguments,
            },
            extra: Some(&d.extra).filter(|m| !m.is_empty()),
        }];
        self.write_delta(
            Delta {
                tool_calls: &pieces,
                ..Delta::default()
            },
            None,
            None,
        );
    }

    fn write_final(&mut self) {
        let finish = self.answer.finish_reason().to_owned();
        let content = (!self.role_sent && !self.answer.has_tool_calls()).then_some("");
        let conversation = self.answer.conversation.take().map(|c| c.0);
        self.write_delta(
            Delta {
                content,
                ..Delta::default()
            },
            Some(&finish),
            conversation.as_ref(),
        );
        if self.include_usage {
            // OpenAI's shape when `stream_options.include_usage` is set: a last chunk with
            // empty `choices` carrying the usage
            let usage = serde_json::to_value(self.answer.usage()).unwrap_or(Value::Null);
            self.write_event(&[], &[(b",\"usage\":", &usage)]);
        }
        self.buf.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn write_error(&mut self, e: &ApiError) {
        self.buf.extend_from_slice(b"data: ");
        let mut json = Vec::with_capacity(e.message.len() + 96);
        e.write_json(&mut json);
        self.buf.extend_from_slice(&json);
        self.buf.extend_from_slice(b"\n\ndata: [DONE]\n\n");
    }

    /// Whether to yield once more before flushing: while yields keep bringing chunks (up to
    /// [`MAX_YIELDS`]), and at most [`MAX_FUTILE_YIELDS`] in a row that bring nothing.
    fn should_yield(&mut self) -> bool {
        if self.buf.len() > self.len_at_yield {
            self.futile = 0;
        } else {
            self.futile += 1;
        }
        self.len_at_yield = self.buf.len();
        if self.futile >= MAX_FUTILE_YIELDS || self.yields >= MAX_YIELDS {
            return false;
        }
        self.yields += 1;
        true
    }

    /// Writes the waiting extras of an upstream event that had no output of its own.
    fn flush_extras(&mut self) {
        if self.answer.has_pending_extras() {
            self.write_delta(Delta::default(), None, None);
        }
    }

    /// Handles one chunk.
    fn on_chunk(&mut self, chunk: Chunk) {
        if self.answer.starts_next_event(&chunk) {
            self.flush_extras();
        }
        let piece = self.answer.take(chunk);
        if !matches!(piece, Piece::Nothing) {
            self.access.first_token();
        }
        match piece {
            Piece::Content(t) => {
                let delta = Delta {
                    content: Some(&t),
                    ..Delta::default()
                };
                self.write_delta(delta, None, None);
            }
            Piece::Reasoning(t) => {
                let delta = Delta {
                    reasoning_content: Some(&t),
                    ..Delta::default()
                };
                self.write_delta(delta, None, None);
            }
            Piece::Tool(d) => self.write_tool(&d),
            // written with the event's output, or on its own when the event has none
            Piece::ExtraOnly => {}
            Piece::Nothing => {}
        }
    }

    fn finish(&mut self, outcome: &'static str) {
        self.done = true;
        self.access.take_answer(&self.answer);
        self.access.log(200, outcome);
    }

    /// Next frame: every chunk that is ready, coalesced into one buffer.
    ///
    /// When the provider has nothing more right now but output is buffered, the body yields to
    /// the scheduler before handing the frame over (see [`SseBody::should_yield`]): chunks the
    /// upstream connection task decodes in the meantime join the same frame, so a burst of
    /// upstream chunks costs a few writes to the client instead of one per chunk. The price is
    /// a couple of scheduler passes of latency per frame.
    ///
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let span = self.span.clone();
        let _entered = span.enter();
        while !self.done && self.buf.len() < FLUSH_AT {
            let next = match self.first.take() {
                Some(c) => Some(Ok(c)),
                None => match self.stream.poll_next_unpin(cx) {
                    Poll::Ready(n) => n,
                    Poll::Pending
                        if self.answer.has_pending_extras() && self.answer.finish.is_none() =>
                    {
                        // the upstream event is complete: its extras are an event of their own
                        // (after the finish reason, the last event carries them)
                        self.flush_extras();
                        continue;
                    }
                    Poll::Pending if !self.buf.is_empty() && self.should_yield() => {
                        // a task woken while it runs is requeued behind the ready tasks
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Poll::Pending => break,
                },
            };
            match next {
                Some(Ok(chunk)) => self.on_chunk(chunk),
                Some(Err(e)) => {
                    let api = from_llmux(&e);
                    tracing::debug!(error = %e, "stream failed after it started");
                    self.write_error(&api);
                    self.access.error_code = Some(api.code);
                    self.finish("error");
                }
                None => {
                    self.write_final();
                    self.finish("ok");
                }
            }
        }
        if self.buf.is_empty() {
            return if self.done {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        }
        self.yields = 0;
        self.futile = 0;
        self.len_at_yield = 0;
        Poll::Ready(Some(Ok(Frame::data(self.buf.split().freeze()))))
    }
}

/// The text of a delta that is one piece of text and nothing else (role, tool calls and
/// extras unset).
fn plain_text<'a>(d: &Delta<'a>) -> Option<(TextDelta, &'a str)> {
    if d.role.is_some() || !d.tool_calls.is_empty() || d.extra.is_some() {
        return None;
    }
    match (d.content, d.reasoning_content) {
        (Some(t), None) => Some((TextDelta::Content, t)),
        (None, Some(t)) => Some((TextDelta::Reasoning, t)),
        _ => None,
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        let _entered = self.span.enter();
        if !self.done {
            self.access.take_answer(&self.answer);
            self.access.log(200, "client_closed");
        }
        if let Some(m) = &self.access.metrics {
            m.stream(-1);
        }
    }
}
