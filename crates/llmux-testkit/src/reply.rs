//! [`Reply`]: what a route answers (status, headers and a body plan), plus
//! wire-format writers for SSE and JSON Lines.

use std::convert::Infallible;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use serde_json::Value;

/// The body type the fake servers send.
pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// One piece of a streamed body: wait `delay`, then write `data` to the socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Pause before this chunk is written.
    pub delay: Duration,
    /// The bytes of this chunk.
    pub data: Bytes,
}

impl Chunk {
    /// A chunk written without delay.
    pub fn new(data: impl Into<Bytes>) -> Self {
        Chunk {
            delay: Duration::ZERO,
            data: data.into(),
        }
    }

    /// A chunk written after `delay`.
    pub fn delayed(delay: Duration, data: impl Into<Bytes>) -> Self {
        Chunk {
            delay,
            data: data.into(),
        }
    }
}

/// How a [`Reply`] body is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyPlan {
    /// The whole body at once, with a `Content-Length`.
    Full(Bytes),
    /// A `Transfer-Encoding: chunked` body written chunk by chunk, each after
    /// its own delay. Every chunk is handed to the socket on its own, so a
    /// client sees early chunks before later (delayed) ones are produced.
    Chunks(Vec<Chunk>),
}

impl BodyPlan {
    /// The body as a list of chunks (a full body is one chunk).
    pub fn into_chunks(self) -> Vec<Chunk> {
        match self {
            BodyPlan::Full(b) if b.is_empty() => Vec::new(),
            BodyPlan::Full(b) => vec![Chunk::new(b)],
            BodyPlan::Chunks(c) => c,
        }
    }

    /// All body bytes concatenated (delays dropped).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            BodyPlan::Full(b) => b.clone(),
            BodyPlan::Chunks(c) => {
                let mut out = BytesMut::new();
                for chunk in c {
                    out.extend_from_slice(&chunk.data);
                }
                out.freeze()
            }
        }
    }
}

/// A scripted HTTP response: status, headers and a [`BodyPlan`].
///
/// ```
/// use llmux_testkit::{Reply, SseEvent};
/// use std::time::Duration;
/// let r = Reply::sse(["hello", "world", "[DONE]"]).chunk_delay(Duration::from_millis(10));
/// assert_eq!(r.status.as_u16(), 200);
/// let r = Reply::json(201, &serde_json::json!({"ok": true})).header("x-trace", "1");
/// assert_eq!(r.headers["x-trace"], "1");
/// # let _ = SseEvent::data("x");
/// ```
#[derive(Clone, Debug)]
pub struct Reply {
    /// Response status.
    pub status: StatusCode,
    /// Response headers (`Content-Length` / `Transfer-Encoding` are set by the server).
    pub headers: HeaderMap,
    /// How the body is written.
    pub body: BodyPlan,
}

impl Default for Reply {
    fn default() -> Self {
        Reply::new(200)
    }
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl Reply {
    /// An empty reply with this status (invalid codes become 500).
    pub fn new(status: u16) -> Self {
        Reply {
            status: status_code(status),
            headers: HeaderMap::new(),
            body: BodyPlan::Full(Bytes::new()),
        }
    }

    /// A reply with a full body and a `Content-Type`.
    pub fn bytes(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Reply::new(status)
            .header(CONTENT_TYPE.as_str(), content_type)
            .body(body)
    }

    /// `application/json` reply.
    pub fn json(status: u16, value: &Value) -> Self {
        Reply::bytes(status, "application/json", value.to_string())
    }

    /// `text/plain; charset=utf-8` reply.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Reply::bytes(status, "text/plain; charset=utf-8", text.into())
    }

    /// `text/html; charset=utf-8` reply.
    pub fn html(status: u16, html: impl Into<String>) -> Self {
        Reply::bytes(status, "text/html; charset=utf-8", html.into())
    }

    /// A 200 chunked reply with these chunks (no delays; see [`Reply::chunk_delay`]).
    pub fn chunked<I, B>(content_type: &str, chunks: I) -> Self
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        Reply::new(200)
            .header(CONTENT_TYPE.as_str(), content_type)
            .chunks(chunks)
    }

    /// A 200 `text/event-stream` reply, one event per chunk.
    ///
    /// Items may be `&str`/`String` (plain `data:` frames, multi-line data is
    /// split into several `data:` lines), `serde_json::Value` (serialized), or
    /// a full [`SseEvent`].
    pub fn sse<I, E>(events: I) -> Self
    where
        I: IntoIterator<Item = E>,
        E: Into<SseEvent>,
    {
        Reply::chunked(
            "text/event-stream",
            events.into_iter().map(|e| e.into().to_bytes()),
        )
        .header(CACHE_CONTROL.as_str(), "no-cache")
    }

    /// A 200 `application/x-ndjson` reply, one JSON line per chunk.
    pub fn jsonl<I>(lines: I) -> Self
    where
        I: IntoIterator<Item = Value>,
    {
        Reply::chunked(
            "application/x-ndjson",
            lines.into_iter().map(|v| jsonl_line(&v)),
        )
    }

    /// Sets the status (invalid codes become 500).
    pub fn status(mut self, status: u16) -> Self {
        self.status = status_code(status);
        self
    }

    /// Sets (replaces) a header. Invalid names or values are ignored.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.headers.insert(n, v);
        }
        self
    }

    /// Replaces the body with a full body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = BodyPlan::Full(body.into());
        self
    }

    /// Replaces the body with these chunks (no delays).
    pub fn chunks<I, B>(mut self, chunks: I) -> Self
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        self.body = BodyPlan::Chunks(chunks.into_iter().map(Chunk::new).collect());
        self
    }

    /// Appends one chunk written after `delay` (a full body becomes its first chunk).
    pub fn push_chunk(mut self, delay: Duration, data: impl Into<Bytes>) -> Self {
        let mut chunks =
            std::mem::replace(&mut self.body, BodyPlan::Chunks(Vec::new())).into_chunks();
        chunks.push(Chunk::delayed(delay, data));
        self.body = BodyPlan::Chunks(chunks);
        self
    }

    /// Streams the body with `delay` between consecutive chunks (the first
    /// chunk goes out right after the headers). A full body becomes one chunk.
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        let mut chunks =
            std::mem::replace(&mut self.body, BodyPlan::Chunks(Vec::new())).into_chunks();
        for c in chunks.iter_mut().skip(1) {
            c.delay = delay;
        }
        self.body = BodyPlan::Chunks(chunks);
        self
    }

    /// The `Content-Type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
    }

    /// Converts into a hyper response, streaming chunked plans.
    pub(crate) fn into_response(self) -> Response<ResponseBody> {
        let body = match self.body {
            BodyPlan::Full(b) => Full::new(b).boxed_unsync(),
            BodyPlan::Chunks(chunks) => stream_body(chunks, Tail::End),
        };
        build(self.status, self.headers, body)
    }
}

/// What a streamed body does after its last chunk.
pub(crate) enum Tail {
    /// End the body normally.
    End,
    /// Never end, never send more (the connection stays open).
    Stall,
    /// Abort the connection (after a short pause so written chunks are flushed).
    Abort(crate::server::Kill),
}

/// Pause before aborting, so hyper flushes already-written chunks first.
const FLUSH_GRACE: Duration = Duration::from_millis(30);

/// A chunked body that writes `chunks` one by one, then does `tail`.
pub(crate) fn stream_body(chunks: Vec<Chunk>, tail: Tail) -> ResponseBody {
    let stream = async_stream::stream! {
        for chunk in chunks {
            if !chunk.delay.is_zero() {
                tokio::time::sleep(chunk.delay).await;
            }
            yield Ok::<_, Infallible>(Frame::data(chunk.data));
        }
        match tail {
            Tail::End => {}
            Tail::Stall => std::future::pending::<()>().await,
            Tail::Abort(kill) => {
                tokio::time::sleep(FLUSH_GRACE).await;
                kill.fire();
                std::future::pending::<()>().await;
            }
        }
    };
    StreamBody::new(stream).boxed_unsync()
}

/// Builds a response; a streamed body never keeps a stale `Content-Length`.
pub(crate) fn build(
    status: StatusCode,
    mut headers: HeaderMap,
    body: ResponseBody,
) -> Response<ResponseBody> {
    use hyper::body::Body as _;
    if body.size_hint().exact().is_none() {
        headers.remove(CONTENT_LENGTH);
    }
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// One Server-Sent Event with optional `event:`, `id:` and `retry:` fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field.
    pub event: Option<String>,
    /// The data; each line becomes its own `data:` line.
    pub data: String,
    /// The `id:` field.
    pub id: Option<String>,
    /// The `retry:` field, in milliseconds.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// An event carrying only `data`.
    pub fn data(data: impl Into<String>) -> Self {
        SseEvent {
            data: data.into(),
            ..SseEvent::default()
        }
    }

    /// An event carrying `value` serialized as JSON.
    pub fn json(value: &Value) -> Self {
        SseEvent::data(value.to_string())
    }

    /// Sets the `event:` field.
    pub fn event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(event.into());
        self
    }

    /// Sets the `id:` field.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the `retry:` field (milliseconds).
    pub fn retry(mut self, millis: u64) -> Self {
        self.retry = Some(millis);
        self
    }

    /// The wire form: fields, one `data:` line per data line, blank line.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = String::new();
        if let Some(e) = &self.event {
            out.push_str(&format!("event: {e}\n"));
        }
        if let Some(id) = &self.id {
            out.push_str(&format!("id: {id}\n"));
        }
        if let Some(r) = self.retry {
            out.push_str(&format!("retry: {r}\n"));
        }
        for line in self.data.split('\n') {
            out.push_str("data: ");
            out.push_str(line.strip_suffix('\r').unwrap_or(line));
            out.push('\n');
        }
        out.push('\n');
        Bytes::from(out)
    }
}

impl From<&str> for SseEvent {
    fn from(data: &str) -> Self {
        SseEvent::data(data)
    }
}

impl From<String> for SseEvent {
    fn from(data: String) -> Self {
        SseEvent::data(data)
    }
}

impl From<Value> for SseEvent {
    fn from(value: Value) -> Self {
        SseEvent::json(&value)
    }
}

impl From<&Value> for SseEvent {
    fn from(value: &Value) -> Self {
        SseEvent::json(value)
    }
}

/// A `data: ...\n\n` SSE frame (multi-line data becomes several `data:` lines).
///
/// ```
/// assert_eq!(&llmux_testkit::sse_frame("a\nb")[..], b"data: a\ndata: b\n\n");
/// ```
pub fn sse_frame(data: &str) -> Bytes {
    SseEvent::data(data).to_bytes()
}

/// An SSE frame with optional `event:` and `id:` fields.
///
/// ```
/// let f = llmux_testkit::sse_event(Some("ping"), "{}", Some("7"));
/// assert_eq!(&f[..], b"event: ping\nid: 7\ndata: {}\n\n");
/// ```
pub fn sse_event(event: Option<&str>, data: &str, id: Option<&str>) -> Bytes {
    SseEvent {
        event: event.map(str::to_owned),
        data: data.to_owned(),
        id: id.map(str::to_owned),
        retry: None,
    }
    .to_bytes()
}

/// One JSON Lines line: compact JSON plus `\n`.
///
/// ```
/// assert_eq!(&llmux_testkit::jsonl_line(&serde_json::json!({"a":1}))[..], b"{\"a\":1}\n");
/// ```
pub fn jsonl_line(value: &Value) -> Bytes {
    let mut s = value.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// The scripted answer every chat fake composes with its protocol: the text (fixed, or
/// `echo: <what the client sent>`), the number of pieces it streams in and the pause between
/// them. A fake holds one in a `script` field and gets its builder methods (`reply`, `echo`,
/// `chunks`, `chunk_delay`) from `script_builders!`; its protocol decides what a piece is
/// (an SSE delta, a JSON line, a token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Script {
    /// The fixed text; `None` echoes.
    pub(crate) text: Option<String>,
    /// How many pieces the text streams in (at least one).
    pub(crate) chunks: usize,
    /// The pause before each streamed piece.
    pub(crate) chunk_delay: Duration,
}

impl Script {
    /// Answers `text` in `chunks` pieces, without delay.
    pub(crate) fn fixed(text: impl Into<String>, chunks: usize) -> Script {
        Script {
            text: Some(text.into()),
            chunks: chunks.max(1),
            chunk_delay: Duration::ZERO,
        }
    }

    /// Answers `echo: <what the client sent>` in `chunks` pieces, without delay.
    pub(crate) fn echo(chunks: usize) -> Script {
        Script {
            text: None,
            chunks: chunks.max(1),
            chunk_delay: Duration::ZERO,
        }
    }

    /// The answer to one request: the fixed text, or `echo: ` followed by what `sent` returns
    /// (called only when echoing).
    pub(crate) fn answer(&self, sent: impl FnOnce() -> String) -> String {
        match &self.text {
            Some(text) => text.clone(),
            None => format!("echo: {}", sent()),
        }
    }

    /// `text` in this script's number of pieces ([`split`]).
    pub(crate) fn pieces(&self, text: &str) -> Vec<String> {
        split(text, self.chunks)
    }

    /// How many pieces the text streams in.
    pub(crate) fn chunks(&self) -> usize {
        self.chunks
    }

    /// The pause before each streamed piece.
    pub(crate) fn chunk_delay(&self) -> Duration {
        self.chunk_delay
    }
}

/// Splits `text` into at most `n` non-empty pieces of equal length (in chars; the last may be
/// shorter); an empty text is no piece.
pub(crate) fn split(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(n.max(1));
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// The text of an OpenAI-style message `content`: a string, or the `text` parts of a list
/// joined with spaces (anything else is no text).
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The [`content_text`] of the last `user` message of an OpenAI-style `messages` list.
pub(crate) fn last_user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(content_text)
        .unwrap_or_default()
}

/// The builder methods of a fake's [`Script`] (held in its `script` field): any of `reply`,
/// `echo`, `chunks`, `chunk_delay`, named in the call (`script_builders!(reply, echo)`).
macro_rules! script_builders {
    ($($method:ident),+ $(,)?) => {
        $($crate::reply::script_builders!(@$method);)+
    };
    (@reply) => {
        /// A fixed reply text (instead of the echo).
        pub fn reply(mut self, text: impl Into<String>) -> Self {
            self.script.text = Some(text.into());
            self
        }
    };
    (@echo) => {
        /// Replies `echo: <what the client sent>` instead of a fixed text (see the type docs).
        pub fn echo(mut self) -> Self {
            self.script.text = None;
            self
        }
    };
    (@chunks) => {
        /// Number of pieces the reply is streamed in (at least one).
        pub fn chunks(mut self, n: usize) -> Self {
            self.script.chunks = n.max(1);
            self
        }
    };
    (@chunk_delay) => {
        /// Delay before each streamed piece.
        pub fn chunk_delay(mut self, delay: std::time::Duration) -> Self {
            self.script.chunk_delay = delay;
            self
        }
    };
}
pub(crate) use script_builders;
