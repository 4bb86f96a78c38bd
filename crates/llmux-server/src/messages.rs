//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API over
//! [`llmux::Client::chat`] (routing, capability checks and fallback are the facade's), with the
//! wire model of `llmux-anthropic`. Errors on these routes are in Anthropic's shape.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use llmux::{ChatStream, Chunk, Error};
use llmux_anthropic::answer::{self, Collector, MessageOut, StopReason, Usage};
use llmux_anthropic::stream::EventWriter;
use llmux_anthropic::{MessagesRequest, Options, WireError, convert};
use serde_json::Value;

use crate::answer::{Answer, Piece};
use crate::body::{self, Body};
use crate::error::{ApiError, anthropic, anthropic_from_llmux};
use crate::log::Access;
use crate::routes::{IGNORED_PARAMS_HEADER, State, finish_headers, read_body, set_overhead};
use crate::wire;

/// Flush a frame once this many bytes are buffered.
const FLUSH_AT: usize = 16 * 1024;

/// An Anthropic-shaped error response (with `Retry-After` when known).
pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    let (status, body) = anthropic(e);
    let mut r = body::json_bytes(status, body.to_json());
    body::mark_error(&mut r, e);
    r
}

fn error_with_overhead(e: &ApiError, overhead: Duration) -> Response<Body> {
    let mut r = error_response(e);
    set_overhead(&mut r, overhead);
    r
}

fn wire_error(e: WireError) -> ApiError {
    let api = ApiError::bad_request("invalid_request", e.message);
    match e.param {
        Some(p) => api.with_param(p),
        None => api,
    }
}

/// Parses and converts a body; `count`: the `count_tokens` route (no `max_tokens` needed).
pub(crate) fn parse(
    raw: &[u8],
    allow_remote_media: bool,
    count: bool,
) -> Result<(llmux::ChatRequest, Options), ApiError> {
    let wire = wire::parse::<MessagesRequest>(raw)?;
    let converted = if count {
        convert::convert(wire, allow_remote_media)
    } else {
        convert::into_chat_request(wire, allow_remote_media)
    };
    converted.map_err(wire_error)
}

/// Reads and parses the body, timing it: the request, the options, the overhead so far.
async fn read<B>(
    state: &State,
    req: Request<B>,
    access: &Access,
    count: bool,
) -> Result<(llmux::ChatRequest, Options, Duration), Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let before_body = access.start.elapsed();
    let raw = read_body(req, state.config.max_body_bytes)
        .await
        .map_err(|e| error_with_overhead(&e, before_body))?;
    let parse_start = Instant::now();
    let parsed = parse(&raw, state.config.allow_remote_media, count);
    let overhead = before_body + parse_start.elapsed();
    parsed
        .map(|(r, o)| (r, o, overhead))
        .map_err(|e| error_with_overhead(&e, overhead))
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": n}`, estimated as the chat route
/// estimates prompts (about 4 bytes of text per token, plus 3 per message and 3 for the reply).
pub(crate) async fn count_tokens<B>(
    state: &State,
    req: Request<B>,
    access: &mut Access,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (creq, _, overhead) = match read(state, req, access, true).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    access.model.clone_from(&creq.model);
    let n = crate::answer::estimate_prompt_tokens(&creq);
    let mut resp = body::json(StatusCode::OK, &serde_json::json!({ "input_tokens": n }));
    set_overhead(&mut resp, overhead);
    resp
}

fn llmux_error(
    e: &Error,
    answer: &Answer,
    access: &mut Access,
    overhead: Duration,
) -> Response<Body> {
    access.model.clone_from(&answer.model);
    access.provider.clone_from(&answer.provider);
    let api = crate::error::from_llmux(e);
    access.error_code = Some(api.code);
    error_with_overhead(&api, overhead)
}

/// `POST /v1/messages`.
pub(crate) async fn messages<B>(
    state: &State,
    req: Request<B>,
    access: &mut Access,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut creq, opts, overhead) = match read(state, req, access, false).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    access.model.clone_from(&creq.model);
    if let Err(e) = state.default_provider(&access.caller, &mut creq) {
        return error_response(&e);
    }
    let turn = Turn {
        answer: Answer::new(
            creq.model.clone(),
            crate::answer::estimate_prompt_tokens(&creq),
        ),
        stops: creq.stop.clone(),
        thinking: opts.thinking,
        refusal: false,
    };
    let stream = state.client.chat(creq);
    if opts.stream {
        streamed(stream, turn, access, overhead).await
    } else {
        whole(stream, turn, access, overhead).await
    }
}

/// One answer's bookkeeping on this route.
struct Turn {
    answer: Answer,
    stops: Vec<String>,
    /// Show reasoning as `thinking` blocks.
    thinking: bool,
    /// The upstream refused (OpenAI's `refusal`).
    refusal: bool,
}

/// What one chunk means on this route.
enum Step {
    Text(String),
    Thinking(String),
    Tool(llmux::ToolCallDelta),
    Nothing,
}

impl Turn {
    /// Records `chunk`. Tool pieces keep the upstream's ids (a `toolu_` id is made up only where
    /// it gave none); an OpenAI `refusal` becomes text, with stop reason `refusal`.
    fn step(&mut self, chunk: Chunk) -> Step {
        if let Chunk::ToolCall(d) = chunk {
            self.answer.completion_chars += d.arguments.len();
            return Step::Tool(d);
        }
        match self.answer.take(chunk) {
            Piece::Content(t) => Step::Text(t),
            Piece::Reasoning(t) if self.thinking => Step::Thinking(t),
            Piece::ExtraOnly => match self.answer.extra.message.remove("refusal") {
                Some(Value::String(t)) if !t.is_empty() => {
                    self.refusal = true;
                    Step::Text(t)
                }
                _ => Step::Nothing,
            },
            Piece::Reasoning(_) | Piece::Tool(_) | Piece::Nothing => Step::Nothing,
        }
    }

    fn stop(&self, had_tools: bool) -> (StopReason, Option<String>) {
        if self.refusal {
            return (StopReason::Refusal, None);
        }
        let upstream = self
            .answer
            .extra
            .choice
            .get("stop_reason")
            .and_then(Value::as_str);
        answer::stop_reason(
            self.answer.finish.as_ref(),
            had_tools,
            upstream,
            &self.stops,
        )
    }

    fn usage(&self) -> Usage {
        Usage::from_core(&self.answer.usage())
    }
}

/// The whole `message` object.
async fn whole(
    mut stream: ChatStream,
    mut turn: Turn,
    access: &mut Access,
    overhead: Duration,
) -> Response<Body> {
    let mut blocks = Collector::default();
    while let Some(item) = stream.next().await {
        let chunk = match item {
            Ok(c) => c,
            Err(e) => return llmux_error(&e, &turn.answer, access, overhead),
        };
        match turn.step(chunk) {
            Step::Text(t) => blocks.text(&t),
            Step::Thinking(t) => blocks.thinking(&t),
            Step::Tool(d) => {
                blocks.tool(d.index, d.id.as_deref(), d.name.as_deref(), &d.arguments);
            }
            Step::Nothing => continue,
        }
        access.first_token();
    }
    drop(stream);
    let build_start = Instant::now();
    let (stop_reason, stop_sequence) = turn.stop(blocks.had_tool_calls());
    let content = match blocks.finish() {
        Ok(c) => c,
        Err(message) => {
            let e = Error::Protocol {
                provider: turn.answer.provider.clone(),
                message,
                snippet: String::new(),
            };
            return llmux_error(&e, &turn.answer, access, overhead);
        }
    };
    let a = &turn.answer;
    let mut msg = MessageOut::new(answer::message_id(), a.model.clone(), turn.usage());
    msg.content = content;
    msg.stop_reason = Some(stop_reason);
    msg.stop_sequence = stop_sequence;
    let mut resp = body::json(StatusCode::OK, &msg);
    finish_headers(&mut resp, a);
    access.model.clone_from(&a.model);
    access.provider.clone_from(&a.provider);
    set_overhead(&mut resp, overhead + build_start.elapsed());
    resp
}

/// The event stream. Headers wait for the first output, so failures before it get real
/// statuses (in Anthropic's shape).
async fn streamed(
    mut stream: ChatStream,
    mut turn: Turn,
    access: &mut Access,
    overhead: Duration,
) -> Response<Body> {
    let first = loop {
        match stream.next().await {
            Some(Ok(chunk)) => match turn.step(chunk) {
                Step::Nothing => {}
                step => break Some(step),
            },
            Some(Err(e)) => return llmux_error(&e, &turn.answer, access, overhead),
            None => break None,
        }
    };
    let ignored = turn.answer.ignored_header();
    let mut sse = MessagesSse {
        stream,
        turn,
        writer: EventWriter::new(),
        buf: Vec::with_capacity(1024),
        done: false,
        access: access.clone(),
    };
    sse.begin(first);
    let mut resp = Response::new(Body::Messages(Box::new(sse)));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(v) = ignored {
        h.insert(IGNORED_PARAMS_HEADER, v);
    }
    set_overhead(&mut resp, overhead);
    resp
}

/// The SSE body of one streamed message. Dropping it drops the provider stream.
pub(crate) struct MessagesSse {
    stream: ChatStream,
    turn: Turn,
    writer: EventWriter,
    buf: Vec<u8>,
    done: bool,
    access: Access,
}

impl MessagesSse {
    /// `message_start`, then the first piece (if any).
    fn begin(&mut self, first: Option<Step>) {
        let a = &self.turn.answer;
        let usage = Usage {
            input_tokens: a.prompt_estimate,
            ..Usage::default()
        };
        let start = MessageOut::new(answer::message_id(), a.model.clone(), usage);
        self.writer.start(&mut self.buf, &start);
        match first {
            Some(step) => self.write(step),
            None => self.end(),
        }
    }

    fn write(&mut self, step: Step) {
        let buf = &mut self.buf;
        match step {
            Step::Text(t) => self.writer.text(buf, &t),
            Step::Thinking(t) => self.writer.thinking(buf, &t),
            Step::Tool(d) => {
                let written = self.writer.tool(
                    buf,
                    d.index,
                    d.id.as_deref(),
                    d.name.as_deref(),
                    &d.arguments,
                );
                if let Err(message) = written {
                    let e = Error::Protocol {
                        provider: self.turn.answer.provider.clone(),
                        message,
                        snippet: String::new(),
                    };
                    return self.fail(&e);
                }
            }
            Step::Nothing => return,
        }
        self.access.first_token();
    }

    fn end(&mut self) {
        let (reason, seq) = self.turn.stop(self.writer.had_tool_calls());
        let usage = self.turn.usage();
        let upstream = self.turn.answer.upstream_usage().is_some();
        self.writer
            .finish(&mut self.buf, reason, seq, &usage, upstream);
        self.close("ok");
    }

    /// A typed `error` event; the stream ends without `message_stop`.
    fn fail(&mut self, e: &Error) {
        let (_, body) = anthropic_from_llmux(e);
        tracing::debug!(error = %e, "messages stream failed after it started");
        self.access.error_code = Some(crate::error::from_llmux(e).code);
        self.writer.error(&mut self.buf, &body);
        self.close("error");
    }

    fn close(&mut self, outcome: &'static str) {
        if self.done {
            return;
        }
        self.done = true;
        self.access.model.clone_from(&self.turn.answer.model);
        self.access.provider.clone_from(&self.turn.answer.provider);
        self.access.log(200, outcome);
    }

    /// Next frame: every event that is ready.
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        while !self.done && self.buf.len() < FLUSH_AT {
            match self.stream.poll_next_unpin(cx) {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(chunk))) => {
                    let step = self.turn.step(chunk);
                    self.write(step);
                }
                Poll::Ready(Some(Err(e))) => self.fail(&e),
                Poll::Ready(None) => self.end(),
            }
        }
        if self.buf.is_empty() {
            return if self.done {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        }
        let data = Bytes::from(std::mem::take(&mut self.buf));
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl Drop for MessagesSse {
    fn drop(&mut self) {
        if !self.done {
            self.access.model.clone_from(&self.turn.answer.model);
            self.access.provider.clone_from(&self.turn.answer.provider);
            self.access.log(200, "client_closed");
        }
    }
}
