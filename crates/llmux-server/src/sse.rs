//! The streaming response body: provider chunks → `chat.completion.chunk` SSE events.
//!
//! The body owns the provider stream: when hyper drops the body (client gone, shutdown), the
//! provider stream and its upstream connection are dropped with it.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use http_body::Frame;
use llmux::{ChatStream, Chunk};

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

/// SSE body of one streamed chat completion.
pub(crate) struct SseBody {
    stream: ChatStream,
    first: Option<Chunk>,
    answer: Answer,
    include_usage: bool,
    /// `data: {"id":…,"object":…,"created":…,"model":…,"provider":…` (no closing brace).
    head: Vec<u8>,
    role_sent: bool,
    buf: BytesMut,
    done: bool,
    /// Scheduler yields since the last frame, and how many of them in a row brought nothing.
    yields: u8,
    futile: u8,
    /// `buf.len()` at the last yield.
    len_at_yield: usize,
    access: Access,
}

impl SseBody {
    pub fn new(
        stream: ChatStream,
        first: Option<Chunk>,
        answer: Answer,
        include_usage: bool,
        access: Access,
    ) -> Self {
        Self {
            stream,
            first,
            answer,
            include_usage,
            head: Vec::new(),
            role_sent: false,
            buf: BytesMut::with_capacity(BUF_CAPACITY),
            done: false,
            yields: 0,
            futile: 0,
            len_at_yield: 0,
            access,
        }
    }

    fn head(&mut self) -> &[u8] {
        if self.answer.names_changed || self.head.is_empty() {
            self.answer.names_changed = false;
            let a = &self.answer;
            let h = &mut self.head;
            h.clear();
            h.extend_from_slice(b"data: {\"id\":\"");
            h.extend_from_slice(a.id.as_bytes());
            h.extend_from_slice(b"\",\"object\":\"chat.completion.chunk\",\"created\":");
            h.extend_from_slice(a.created.to_string().as_bytes());
            h.extend_from_slice(b",\"model\":");
            let _ = serde_json::to_writer(&mut *h, &a.model);
            h.extend_from_slice(b",\"provider\":");
            let _ = serde_json::to_writer(&mut *h, &a.provider);
        }
        &self.head
    }

    fn write_head(&mut self, extra: usize) {
        let head_len = self.head().len();
        self.buf.reserve(head_len + extra + 96);
        let Self { head, buf, .. } = self;
        buf.extend_from_slice(head);
    }

    fn write_delta(&mut self, field: &[u8], text: &str) {
        self.write_head(text.len() + field.len());
        self.buf
            .extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":{");
        if !self.role_sent {
            self.role_sent = true;
            self.buf.extend_from_slice(b"\"role\":\"assistant\",");
        }
        self.buf.extend_from_slice(field);
        let _ = serde_json::to_writer((&mut self.buf).writer(), text);
        self.buf
            .extend_from_slice(b"},\"finish_reason\":null}]}\n\n");
    }

    fn write_final(&mut self) {
        let usage = self.answer.usage();
        self.write_head(64);
        self.buf
            .extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":{");
        if !self.role_sent {
            self.role_sent = true;
            self.buf
                .extend_from_slice(b"\"role\":\"assistant\",\"content\":\"\"");
        }
        self.buf.extend_from_slice(b"},\"finish_reason\":");
        let _ = serde_json::to_writer((&mut self.buf).writer(), self.answer.finish_reason());
        self.buf.extend_from_slice(b"}]");
        if !self.include_usage {
            self.buf.extend_from_slice(b",\"usage\":");
            let _ = serde_json::to_writer((&mut self.buf).writer(), &usage);
        }
        if let Some(c) = &self.answer.conversation {
            self.buf.extend_from_slice(b",\"conversation\":");
            let _ = serde_json::to_writer((&mut self.buf).writer(), c);
        }
        self.buf.extend_from_slice(b"}\n\n");
        if self.include_usage {
            // OpenAI's shape when `stream_options.include_usage` is set: a last chunk with
            // empty `choices` carrying the usage
            self.write_head(128);
            self.buf.extend_from_slice(b",\"choices\":[],\"usage\":");
            let _ = serde_json::to_writer((&mut self.buf).writer(), &usage);
            self.buf.extend_from_slice(b"}\n\n");
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

    /// Handles one chunk.
    fn on_chunk(&mut self, chunk: Chunk) {
        match self.answer.take(chunk) {
            Piece::Content(t) => {
                self.access.first_token();
                self.write_delta(b"\"content\":", &t);
            }
            Piece::Reasoning(t) => {
                self.access.first_token();
                self.write_delta(b"\"reasoning_content\":", &t);
            }
            Piece::Nothing => {}
        }
    }

    fn finish(&mut self, outcome: &'static str) {
        self.done = true;
        self.access.model.clone_from(&self.answer.model);
        self.access.provider.clone_from(&self.answer.provider);
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
    /// When the provider has nothing more right now but output is buffered, the body yields to
    /// the scheduler once before handing the frame over: chunks the upstream connection reads
    /// in the meantime join the same frame, so a burst of upstream chunks costs one write to
    /// the client instead of one per chunk (at the price of one scheduler pass of latency).
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        while !self.done && self.buf.len() < FLUSH_AT {
            let next = match self.first.take() {
                Some(c) => Some(Ok(c)),
                None => match self.stream.poll_next_unpin(cx) {
                    Poll::Ready(n) => n,
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

impl Drop for SseBody {
    fn drop(&mut self) {
        if !self.done {
            self.access.model.clone_from(&self.answer.model);
            self.access.provider.clone_from(&self.answer.provider);
            self.access.log(200, "client_closed");
        }
    }
}
