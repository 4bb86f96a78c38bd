//! Reading an OpenAI-shaped upstream's answer: `chat.completion` bodies and
//! `chat.completion.chunk` SSE events into [`Chunk`]s.
//!
//! One borrowing serde parser for both shapes: the fields llmux models become typed chunks,
//! every other non-null field becomes a [`Chunk::Extra`] of its scope (response, choice,
//! message), so nothing the upstream says is lost. Dialects of servers in the wild are read as
//! OpenAI means them: content given as a list of text parts, `reasoning` / `reasoning_content`,
//! completions-style `choices[0].text`, tool-call pieces that repeat their id and name, and the
//! legacy `function_call`.

use std::borrow::Cow;
use std::fmt;

use futures_util::{Stream, StreamExt};
use llmux_core::decode::sse::sse_events;
use llmux_core::http::Response;
use llmux_core::{
    Chunk, Error, Extra, ExtraScope, FinishReason, Reasoning, Result, ToolCallDelta, Usage,
};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Response-level keys llmux writes itself (never passed through as extras).
const OWN_RESPONSE_KEYS: &[&str] = &[
    "id",
    "object",
    "created",
    "model",
    "provider",
    "conversation",
];

/// Turns one upstream answer into chunks; keeps what must be remembered between stream events
/// (the response-level extras already passed on, the tool calls already announced).
#[derive(Debug)]
pub struct Reader {
    provider: String,
    response_extra: Map<String, Value>,
    /// Tool-call indices whose id / name were passed on.
    ids: Vec<u32>,
    names: Vec<u32>,
    finished: bool,
}

impl Reader {
    /// A reader for `provider`'s answer.
    pub fn new(provider: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            response_extra: Map::new(),
            ids: Vec::new(),
            names: Vec::new(),
            finished: false,
        }
    }

    /// True once a finish reason was read.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The chunks of one SSE `data` payload (a `chat.completion.chunk`), appended to `out`.
    ///
    /// The common shape (see [`Common`]) is read by a fast path that builds no extras; any other
    /// event, and any event the fast path cannot read, goes through the full parser, so the
    /// chunks are the same either way.
    pub fn event(&mut self, data: &str, out: &mut Vec<Chunk>) -> Result<()> {
        if let Some(common) = self.common(data) {
            self.emit_common(common, out);
            return Ok(());
        }
        self.event_full(data, out)
    }

    /// [`Reader::event`] through the full parser only.
    fn event_full(&mut self, data: &str, out: &mut Vec<Chunk>) -> Result<()> {
        let doc: Doc<'_> = serde_json::from_str(data).map_err(|e| {
            Error::protocol(&self.provider, format!("malformed SSE JSON: {e}"), data)
        })?;
        self.emit(doc, out)
    }

    /// `data` read as a [`Common`] event, or `None` when it is not one.
    fn common<'a>(&self, data: &'a str) -> Option<Common<'a>> {
        let mut de = serde_json::Deserializer::from_str(data);
        let common = CommonSeed {
            response_extra: &self.response_extra,
        }
        .deserialize(&mut de)
        .ok()?;
        de.end().ok()?;
        Some(common)
    }

    /// The chunks of a [`Common`] event: what [`Reader::emit`] makes of the same event.
    fn emit_common(&mut self, c: Common<'_>, out: &mut Vec<Chunk>) {
        if let Some(choice) = c.choice {
            if let Some(MapOnly(d)) = choice.delta {
                let reasoning = nonempty(d.reasoning_content.map(|s| s.0))
                    .or_else(|| nonempty(d.reasoning.map(|s| s.0)));
                if let Some(r) = reasoning {
                    out.push(Chunk::Reasoning(Reasoning::token(r)));
                }
                if let Some(t) = nonempty(d.content.map(|s| s.0)) {
                    out.push(Chunk::Text(t));
                }
            }
            let finish = choice.finish_reason.as_ref().map(|s| &*s.0);
            if let Some(f) = finish.and_then(FinishReason::parse) {
                self.finished = true;
                out.push(Chunk::Finish(f));
            }
        }
        if let Some(u) = c.usage {
            out.push(Chunk::Usage(u));
        }
    }

    /// The chunks of a whole `chat.completion` body, appended to `out`.
    pub fn completion(&mut self, body: &[u8], out: &mut Vec<Chunk>) -> Result<()> {
        let doc: Doc<'_> = serde_json::from_slice(body).map_err(|e| {
            Error::protocol(
                &self.provider,
                format!("invalid JSON: {e}"),
                &String::from_utf8_lossy(body),
            )
        })?;
        if doc.error.is_none() && doc.choice.is_none() {
            return Err(Error::protocol(
                &self.provider,
                "completion without choices",
                &String::from_utf8_lossy(body),
            ));
        }
        self.emit(doc, out)
    }

    fn emit(&mut self, doc: Doc<'_>, out: &mut Vec<Chunk>) -> Result<()> {
        if let Some(e) = doc.error {
            return Err(upstream_error(&self.provider, &e));
        }
        if !doc.extra.is_empty() && doc.extra != self.response_extra {
            self.response_extra.clone_from(&doc.extra);
            out.push(extra(ExtraScope::Response, doc.extra));
        }
        if let Some(choice) = doc.choice {
            self.choice(choice, out);
        }
        if let Some(u) = doc.usage {
            out.push(Chunk::Usage(u));
        }
        Ok(())
    }

    fn choice(&mut self, c: ChoiceIn<'_>, out: &mut Vec<Chunk>) {
        if !c.extra.is_empty() {
            out.push(extra(ExtraScope::Choice, c.extra));
        }
        match c.delta.or(c.message) {
            Some(m) => self.message(m, out),
            None => {
                if let Some(t) = nonempty(c.text) {
                    out.push(Chunk::Text(t));
                }
            }
        }
        if let Some(f) = c.finish_reason.as_deref().and_then(FinishReason::parse) {
            self.finished = true;
            out.push(Chunk::Finish(f));
        }
    }

    fn message(&mut self, m: MsgIn<'_>, out: &mut Vec<Chunk>) {
        if !m.extra.is_empty() {
            out.push(extra(ExtraScope::Message, m.extra));
        }
        if let Some(r) = nonempty(m.reasoning_content).or_else(|| nonempty(m.reasoning)) {
            out.push(Chunk::Reasoning(Reasoning::token(r)));
        }
        if let Some(t) = nonempty(m.content) {
            out.push(Chunk::Text(t));
        }
        let legacy = m.tool_calls.is_empty().then_some(m.function_call).flatten();
        let calls = m.tool_calls.into_iter().enumerate().map(|(k, c)| {
            let index = c.index.unwrap_or(u32::try_from(k).unwrap_or(u32::MAX));
            let (name, arguments) = c
                .function
                .map(|f| (f.name, f.arguments))
                .unwrap_or_default();
            ToolPiece {
                index,
                id: c.id,
                name,
                arguments,
                extra: c.extra,
            }
        });
        let legacy = legacy.map(|f| ToolPiece {
            index: 0,
            id: None,
            name: f.name,
            arguments: f.arguments,
            extra: Map::new(),
        });
        for piece in calls.chain(legacy) {
            self.tool_piece(piece, out);
        }
    }

    /// One tool-call piece in OpenAI's shape: each call's id and name are passed on once (on
    /// its first piece), however often a server repeats them.
    fn tool_piece(&mut self, p: ToolPiece<'_>, out: &mut Vec<Chunk>) {
        let ToolPiece {
            index,
            id,
            name,
            arguments,
            extra,
        } = p;
        let once = |seen: &mut Vec<u32>, v: Option<Cow<'_, str>>| {
            let v = nonempty(v).filter(|_| !seen.contains(&index));
            if v.is_some() {
                seen.push(index);
            }
            v
        };
        let piece = ToolCallDelta {
            index,
            id: once(&mut self.ids, id),
            name: once(&mut self.names, name),
            arguments: arguments.map(Cow::into_owned).unwrap_or_default(),
            extra,
        };
        if piece.id.is_some()
            || piece.name.is_some()
            || !piece.arguments.is_empty()
            || !piece.extra.is_empty()
        {
            out.push(Chunk::ToolCall(piece));
        }
    }
}

/// One tool-call piece as an upstream sent it.
struct ToolPiece<'a> {
    index: u32,
    id: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    arguments: Option<Cow<'a, str>>,
    extra: Map<String, Value>,
}

fn extra(scope: ExtraScope, fields: Map<String, Value>) -> Chunk {
    Chunk::Extra(Extra { scope, fields })
}

fn nonempty(s: Option<Cow<'_, str>>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(Cow::into_owned)
}

/// An `error` object (or string) inside a response body.
pub(crate) fn upstream_error(provider: &str, e: &Value) -> Error {
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            e.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string())
        });
    Error::Upstream {
        provider: provider.to_owned(),
        message,
    }
}

/// The chunks of one SSE `data` payload, as a fresh [`Reader`] reads it.
pub fn stream_chunks_from_str(provider: &str, data: &str, out: &mut Vec<Chunk>) -> Result<()> {
    Reader::new(provider).event(data, out)
}

/// The chunks of one `chat.completion` body, as a fresh [`Reader`] reads it.
pub fn completion_chunks_from_slice(provider: &str, body: &[u8]) -> Result<Vec<Chunk>> {
    let mut out = Vec::with_capacity(4);
    Reader::new(provider).completion(body, &mut out)?;
    Ok(out)
}

/// What makes a stream complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A `finish_reason` (OpenAI's rule): a stream that ends, with `[DONE]` or without, before
    /// any finish reason is a truncated answer and ends in a protocol error, never in a clean
    /// stop (llama.cpp's server cuts a running stream this way when a new request interrupts it).
    FinishReason,
    /// `[DONE]` or a finish reason, for upstreams whose protocol ends streams with `[DONE]` alone
    /// (AmigoChat's completions-style chunks).
    DoneOrFinishReason,
}

/// Turns a chat-completions response into chunks: SSE when the server streams
/// (`text/event-stream`, or a body that starts with `data:` whatever its content type says),
/// else one JSON completion. Streams must end with a finish reason ([`Ending::FinishReason`]).
pub fn response_chunks(
    provider: String,
    resp: Response,
) -> impl Stream<Item = Result<Chunk>> + Send {
    response_chunks_until(provider, resp, Ending::FinishReason)
}

/// [`response_chunks`] with another rule for the end of a stream.
pub fn response_chunks_until(
    provider: String,
    resp: Response,
    ending: Ending,
) -> impl Stream<Item = Result<Chunk>> + Send {
    async_stream::try_stream! {
        let declared_sse = resp.content_type().is_some_and(|c| c.starts_with("text/event-stream"));
        let mut reader = Reader::new(provider.clone());
        let mut chunks = Vec::new();
        let body: std::pin::Pin<Box<dyn Stream<Item = Result<llmux_core::bytes::Bytes>> + Send>> = if declared_sse {
            Box::pin(resp.into_stream())
        } else {
            let body = Box::pin(resp.bytes()).await?;
            if !looks_like_sse(&body) {
                reader.completion(&body, &mut chunks)?;
                for c in chunks {
                    yield c;
                }
                return;
            }
            Box::pin(futures_util::stream::iter([Ok::<_, Error>(body)]))
        };
        let mut events = std::pin::pin!(sse_events(body));
        let mut done = false;
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| e.with_provider(&provider))?;
            done = sse_data(&mut reader, ev.data.trim(), &mut chunks)?;
            for c in chunks.drain(..) {
                yield c;
            }
            if done {
                break;
            }
        }
        complete(&reader, &provider, ending, done)?;
    }
}

/// Reads one SSE `data` payload; `true` at `[DONE]`.
fn sse_data(reader: &mut Reader, data: &str, out: &mut Vec<Chunk>) -> Result<bool> {
    if data == "[DONE]" {
        return Ok(true);
    }
    if !data.is_empty() {
        reader.event(data, out)?;
    }
    Ok(false)
}

/// Checks that a stream that ended (`done`: with `[DONE]`) is complete under `ending`.
fn complete(reader: &Reader, provider: &str, ending: Ending, done: bool) -> Result<()> {
    if reader.finished() || (done && ending == Ending::DoneOrFinishReason) {
        return Ok(());
    }
    let message = if done {
        "the stream ended with [DONE] but without a finish_reason: the answer is truncated"
    } else {
        "the stream ended before [DONE] and without a finish_reason: the answer is truncated"
    };
    Err(Error::protocol(provider, message, ""))
}

/// True when a body sent with another content type is an SSE stream (`data:` first).
fn looks_like_sse(body: &[u8]) -> bool {
    let t = body.trim_ascii_start();
    t.starts_with(b"data:") || t.starts_with(b"event:") || t.starts_with(b": ")
}

// ------------------------------------------------------------------------------------ parser

/// One `chat.completion(.chunk)` object: `choices[0]`, `usage`, `error`, and the other
/// response-level fields.
#[derive(Default)]
struct Doc<'a> {
    choice: Option<ChoiceIn<'a>>,
    usage: Option<Usage>,
    error: Option<Value>,
    extra: Map<String, Value>,
}

#[derive(Default)]
struct ChoiceIn<'a> {
    delta: Option<MsgIn<'a>>,
    message: Option<MsgIn<'a>>,
    text: Option<Cow<'a, str>>,
    finish_reason: Option<Cow<'a, str>>,
    extra: Map<String, Value>,
}

#[derive(Default)]
struct MsgIn<'a> {
    content: Option<Cow<'a, str>>,
    reasoning_content: Option<Cow<'a, str>>,
    reasoning: Option<Cow<'a, str>>,
    tool_calls: Vec<ToolCallIn<'a>>,
    function_call: Option<FunctionIn<'a>>,
    extra: Map<String, Value>,
}

#[derive(Default)]
struct ToolCallIn<'a> {
    index: Option<u32>,
    id: Option<Cow<'a, str>>,
    function: Option<FunctionIn<'a>>,
    extra: Map<String, Value>,
}

#[derive(Default)]
struct FunctionIn<'a> {
    name: Option<Cow<'a, str>>,
    arguments: Option<Cow<'a, str>>,
}

/// A map key or string value, borrowed from the input when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A text field that servers in the wild also send as `null`, a list of `{"text": …}` parts or
/// another value (`Other`, kept as an extra).
enum TextField<'a> {
    Null,
    Str(Cow<'a, str>),
    Other(Value),
}

impl<'de> Deserialize<'de> for TextField<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a text, null, or a list of text parts")
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<TextField<'de>, E> {
                Ok(TextField::Null)
            }
            fn visit_none<E: de::Error>(self) -> std::result::Result<TextField<'de>, E> {
                Ok(TextField::Null)
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<TextField<'de>, E> {
                Ok(TextField::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<TextField<'de>, E> {
                Ok(TextField::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(
                self,
                v: String,
            ) -> std::result::Result<TextField<'de>, E> {
                Ok(TextField::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<TextField<'de>, A::Error> {
                let v = Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                let parts = v.as_array().map(|a| {
                    a.iter()
                        .map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Option<String>>()
                });
                Ok(match parts {
                    Some(Some(t)) => TextField::Str(Cow::Owned(t)),
                    _ => TextField::Other(v),
                })
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<TextField<'de>, A::Error> {
                Ok(TextField::Other(Value::deserialize(
                    de::value::MapAccessDeserializer::new(map),
                )?))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<TextField<'de>, E> {
                Ok(TextField::Other(Value::Bool(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<TextField<'de>, E> {
                Ok(TextField::Other(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<TextField<'de>, E> {
                Ok(TextField::Other(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<TextField<'de>, E> {
                Ok(TextField::Other(v.into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads a [`TextField`]: text into `slot`, anything else (not null) into `extra` as `key`.
fn text_field<'de, A: MapAccess<'de>>(
    map: &mut A,
    key: &str,
    slot: &mut Option<Cow<'de, str>>,
    extra: &mut Map<String, Value>,
) -> std::result::Result<(), A::Error> {
    match map.next_value::<TextField<'de>>()? {
        TextField::Null => {}
        TextField::Str(t) => *slot = Some(t),
        TextField::Other(v) => {
            extra.insert(key.to_owned(), v);
        }
    }
    Ok(())
}

/// Keeps a field llmux does not model, `null` included (clients tell a present `null` from an
/// absent field); only a `null` `logprobs`, which servers repeat on every chunk and the gateway
/// writes itself, is skipped.
fn keep<'de, A: MapAccess<'de>>(
    map: &mut A,
    key: Cow<'de, str>,
    extra: &mut Map<String, Value>,
) -> std::result::Result<(), A::Error> {
    let v: Value = map.next_value()?;
    if !(v.is_null() && key == "logprobs") {
        extra.insert(key.into_owned(), v);
    }
    Ok(())
}

/// Implements `Deserialize` for a parser struct through a `visit_map` body.
macro_rules! map_visitor {
    ($ty:ident, $what:literal, |$map:ident, $out:ident, $key:ident| $body:block) => {
        impl<'de> Deserialize<'de> for $ty<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut $map: A,
                    ) -> std::result::Result<$ty<'de>, A::Error> {
                        let mut $out = $ty::default();
                        while let Some(Str($key)) = $map.next_key::<Str<'de>>()? {
                            $body
                        }
                        Ok($out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

map_visitor!(Doc, "a chat completion object", |map, out, key| {
    match &*key {
        "choices" => {
            out.choice = map
                .next_value::<Option<FirstChoice<'de>>>()?
                .and_then(|c| c.0)
        }
        "usage" => out.usage = map.next_value::<Option<UsageIn>>()?.map(|u| u.0),
        "error" => out.error = map.next_value::<Option<Value>>()?,
        k if OWN_RESPONSE_KEYS.contains(&k) => {
            map.next_value::<IgnoredAny>()?;
        }
        _ => keep(&mut map, key, &mut out.extra)?,
    }
});

map_visitor!(ChoiceIn, "a choice object", |map, out, key| {
    match &*key {
        "index" => {
            map.next_value::<IgnoredAny>()?;
        }
        "delta" => out.delta = map.next_value()?,
        "message" => out.message = map.next_value()?,
        "text" => text_field(&mut map, "text", &mut out.text, &mut out.extra)?,
        "finish_reason" => {
            out.finish_reason = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0);
        }
        _ => keep(&mut map, key, &mut out.extra)?,
    }
});

map_visitor!(MsgIn, "a message object", |map, out, key| {
    match &*key {
        "role" => {
            map.next_value::<IgnoredAny>()?;
        }
        "content" => text_field(&mut map, "content", &mut out.content, &mut out.extra)?,
        "reasoning_content" => text_field(
            &mut map,
            "reasoning_content",
            &mut out.reasoning_content,
            &mut out.extra,
        )?,
        "reasoning" => text_field(&mut map, "reasoning", &mut out.reasoning, &mut out.extra)?,
        "tool_calls" => {
            out.tool_calls = map
                .next_value::<Option<Vec<ToolCallIn<'de>>>>()?
                .unwrap_or_default();
        }
        "function_call" => out.function_call = map.next_value()?,
        _ => keep(&mut map, key, &mut out.extra)?,
    }
});

map_visitor!(ToolCallIn, "a tool call object", |map, out, key| {
    match &*key {
        "index" => out.index = map.next_value()?,
        "id" => out.id = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0),
        "function" => out.function = map.next_value()?,
        "type" => {
            map.next_value::<IgnoredAny>()?;
        }
        _ => keep(&mut map, key, &mut out.extra)?,
    }
});

map_visitor!(FunctionIn, "a function object", |map, out, key| {
    match &*key {
        "name" => out.name = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0),
        "arguments" => {
            // some servers send the arguments as an object instead of JSON text
            out.arguments = match map.next_value::<TextField<'de>>()? {
                TextField::Null => None,
                TextField::Str(t) => Some(t),
                TextField::Other(v) => Some(Cow::Owned(v.to_string())),
            };
        }
        _ => {
            map.next_value::<IgnoredAny>()?;
        }
    }
});

/// `choices`: the first element (llmux asks for one choice); the others are skipped.
struct FirstChoice<'a>(Option<ChoiceIn<'a>>);

impl<'de> Deserialize<'de> for FirstChoice<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FirstChoice<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of choices")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<FirstChoice<'de>, A::Error> {
                let first = seq.next_element::<Option<ChoiceIn<'de>>>()?.flatten();
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstChoice(first))
            }
        }
        d.deserialize_seq(V)
    }
}

// --------------------------------------------------------------------------- fast path

/// The common `chat.completion.chunk`: llmux's own response keys, at most one choice whose
/// delta has only `role`, `content`, `reasoning_content` or `reasoning` as text or `null`, a
/// `finish_reason` that is a string or `null`, a `null` `logprobs`, `usage`, and response-level
/// extras that are strings and the same as the ones already passed on (OpenAI repeats
/// `system_fingerprint` and `service_tier` on every chunk). Nothing of it becomes an extra, so
/// it is read without building any.
struct Common<'a> {
    choice: Option<CommonChoice<'a>>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonChoice<'a> {
    #[serde(rename = "index")]
    _index: Option<IgnoredAny>,
    #[serde(borrow)]
    delta: Option<MapOnly<CommonDelta<'a>>>,
    #[serde(borrow)]
    finish_reason: Option<Str<'a>>,
    /// Only `null` (anything else is an extra).
    #[serde(rename = "logprobs")]
    _logprobs: Option<()>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonDelta<'a> {
    #[serde(rename = "role")]
    _role: Option<IgnoredAny>,
    #[serde(borrow)]
    content: Option<Str<'a>>,
    #[serde(borrow)]
    reasoning_content: Option<Str<'a>>,
    #[serde(borrow)]
    reasoning: Option<Str<'a>>,
}

/// A derived struct read from a JSON object only (a derived `Deserialize` also reads a struct
/// from an array of its fields, which the full parser refuses).
struct MapOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = MapOnly<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<MapOnly<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(MapOnly)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Reads a [`Common`] event; fails (so the full parser runs) on anything else. Response-level
/// fields llmux does not model pass only when they are, as a set, the extras already passed on
/// (`response_extra`): the full parser would pass nothing on for them either.
struct CommonSeed<'r> {
    response_extra: &'r Map<String, Value>,
}

impl<'de> DeserializeSeed<'de> for CommonSeed<'_> {
    type Value = Common<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Common<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CommonSeed<'_> {
    type Value = Common<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a common chat completion chunk")
    }
    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Common<'de>, A::Error> {
        let not_common = || de::Error::custom("not a common chunk");
        let known = self.response_extra;
        if known.len() > 64 {
            return Err(not_common());
        }
        let mut out = Common {
            choice: None,
            usage: None,
        };
        // which of `known` this event repeats (a key given twice fails)
        let (mut seen, mut extras) = (0u64, 0usize);
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            match &*key {
                "choices" => {
                    out.choice = map
                        .next_value::<Option<(MapOnly<CommonChoice<'de>>,)>>()?
                        .map(|c| c.0.0);
                }
                "usage" => out.usage = map.next_value::<Option<UsageIn>>()?.map(|u| u.0),
                k if OWN_RESPONSE_KEYS.contains(&k) => {
                    map.next_value::<IgnoredAny>()?;
                }
                k => {
                    let Str(v) = map.next_value::<Str<'de>>()?;
                    let (i, (_, was)) = known
                        .iter()
                        .enumerate()
                        .find(|(_, (name, _))| name.as_str() == k)
                        .ok_or_else(not_common)?;
                    let bit = 1u64 << i;
                    if was.as_str() != Some(&*v) || seen & bit != 0 {
                        return Err(not_common());
                    }
                    seen |= bit;
                    extras += 1;
                }
            }
        }
        if extras != 0 && extras != known.len() {
            return Err(not_common());
        }
        Ok(out)
    }
}

/// `usage`, tolerant of missing counts (total = prompt + completion), with its other fields
/// (`prompt_tokens_details`, …) kept.
struct UsageIn(Usage);

impl<'de> Deserialize<'de> for UsageIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut all = Map::<String, Value>::deserialize(d)?;
        let mut n = |k: &str| all.remove(k).and_then(|v| v.as_u64());
        let (p, c, t) = (
            n("prompt_tokens").unwrap_or(0),
            n("completion_tokens").unwrap_or(0),
            n("total_tokens"),
        );
        Ok(UsageIn(Usage {
            prompt_tokens: p,
            completion_tokens: c,
            total_tokens: t.unwrap_or(p.saturating_add(c)),
            details: all,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux_core::Accumulator;

    fn read_all(events: &[&str]) -> Result<Vec<Chunk>> {
        let mut r = Reader::new("p");
        let mut out = Vec::new();
        for e in events {
            r.event(e, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn text_reasoning_finish_usage() {
        let out = read_all(&[
            r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi","reasoning_content":"hm"},"finish_reason":null,"logprobs":null}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"prompt_tokens_details":{"cached_tokens":0}}}"#,
        ])
        .expect("read");
        assert_eq!(out[0], Chunk::Reasoning(Reasoning::token("hm")));
        assert_eq!(out[1], Chunk::text("Hi"));
        assert_eq!(out[2], Chunk::Finish(FinishReason::Stop));
        let Chunk::Usage(u) = &out[3] else {
            panic!("usage expected: {out:?}")
        };
        assert_eq!((u.prompt_tokens, u.total_tokens), (3, 4));
        assert_eq!(u.details["prompt_tokens_details"]["cached_tokens"], 0);
        assert_eq!(out.len(), 4, "null logprobs are no extras: {out:?}");
    }

    #[test]
    fn extras_by_scope_and_response_extras_once() {
        let ev = r#"{"system_fingerprint":"fp","choices":[{"delta":{"content":"a","refusal":null,"annotations":[]},"logprobs":{"content":[{"token":"a","logprob":-0.1}]}}]}"#;
        let out = read_all(&[ev, ev]).expect("read");
        let scopes: Vec<_> = out
            .iter()
            .filter_map(|c| match c {
                Chunk::Extra(e) => Some(e.scope),
                _ => None,
            })
            .collect();
        assert_eq!(
            scopes,
            [
                ExtraScope::Response,
                ExtraScope::Choice,
                ExtraScope::Message,
                ExtraScope::Choice,
                ExtraScope::Message
            ]
        );
        let Chunk::Extra(m) = &out[2] else {
            panic!("message extra expected")
        };
        assert_eq!(m.fields["refusal"], Value::Null, "a present null is kept");
        assert!(m.fields.contains_key("annotations"));
        assert!(!m.is_output());
    }

    #[test]
    fn tool_calls_in_openai_shape_even_when_servers_repeat_names() {
        let out = read_all(&[
            r#"{"choices":[{"delta":{"content":null,"tool_calls":[{"index":0,"id":"c0","type":"function","function":{"name":"get","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c0","type":"function","function":{"name":"get","arguments":"{\"a\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"c1","function":{"name":"put","arguments":"{}"}},{"index":0,"function":{"arguments":"1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ])
        .expect("read");
        let mut acc = Accumulator::new();
        for c in &out {
            acc.push(c);
        }
        let r = acc.finish();
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(
            (
                r.tool_calls[0].name.as_str(),
                r.tool_calls[0].arguments.as_str()
            ),
            ("get", "{\"a\":1}")
        );
        assert_eq!(r.tool_calls[1].id, "c1");
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        let repeated = out
            .iter()
            .filter(|c| matches!(c, Chunk::ToolCall(d) if d.index == 0 && d.name.is_some()))
            .count();
        assert_eq!(repeated, 1, "the name is announced once: {out:?}");
    }

    #[test]
    fn completion_with_tool_calls_and_legacy_function_call() {
        let mut out = Vec::new();
        Reader::new("p")
            .completion(
                br#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"b","type":"function","function":{"name":"g","arguments":{"x":1}}}],"function_call":{"name":"f","arguments":"{}"}},"finish_reason":"tool_calls"}],"service_tier":"default"}"#,
                &mut out,
            )
            .expect("read");
        let calls: Vec<_> = out
            .iter()
            .filter_map(|c| match c {
                Chunk::ToolCall(d) => Some((d.index, d.name.clone(), d.arguments.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            calls,
            [
                (0, Some("f".into()), "{}".into()),
                (1, Some("g".into()), r#"{"x":1}"#.into())
            ]
        );
        let mut out = Vec::new();
        Reader::new("p")
            .completion(
                br#"{"choices":[{"message":{"content":null,"function_call":{"name":"f","arguments":"{}"}},"finish_reason":"function_call"}]}"#,
                &mut out,
            )
            .expect("read");
        assert!(matches!(&out[0], Chunk::ToolCall(d) if d.name.as_deref() == Some("f")));
    }

    #[test]
    fn dialects_and_errors() {
        let out = read_all(&[
            r#"{"choices":[{"text":"legacy","finish_reason":""}]}"#,
            r#"{"choices":[{"delta":{"content":[{"type":"text","text":"parts"}]}}]}"#,
            r#"{"choices":[]}"#,
            r#"{"choices":[{"delta":null}]}"#,
        ])
        .expect("read");
        assert_eq!(out, [Chunk::text("legacy"), Chunk::text("parts")]);
        assert!(matches!(
            read_all(&[r#"{"error":{"message":"boom"}}"#]),
            Err(Error::Upstream { message, .. }) if message == "boom"
        ));
        assert!(matches!(
            read_all(&["{not json"]),
            Err(Error::Protocol { .. })
        ));
        assert!(
            Reader::new("p")
                .completion(br#"{"object":"x"}"#, &mut Vec::new())
                .is_err()
        );
    }

    /// Reads `events` with the fast path and with the full parser only; both must give the
    /// same chunks, errors and state after every event. Returns how many events the fast path
    /// read.
    fn same_both_ways(events: &[&str]) -> usize {
        let (mut fast, mut full) = (Reader::new("p"), Reader::new("p"));
        let mut taken = 0;
        for e in events {
            taken += usize::from(fast.common(e).is_some());
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let ra = fast.event(e, &mut a).map_err(|e| format!("{e:?}"));
            let rb = full.event_full(e, &mut b).map_err(|e| format!("{e:?}"));
            assert_eq!(ra, rb, "result of {e}");
            assert_eq!(a, b, "chunks of {e}");
            assert_eq!(fast.finished, full.finished, "finished after {e}");
            assert_eq!(fast.response_extra, full.response_extra, "extras after {e}");
        }
        taken
    }

    #[test]
    fn fast_path_reads_the_common_shapes() {
        let head = r#""id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m""#;
        let fp = r#""service_tier":"default","system_fingerprint":"fp_1""#;
        let ev = |rest: &str| format!("{{{head},{rest}}}");
        // OpenAI's stream with its usual extras: only the first event (role + refusal, new
        // response extras) and the usage event (empty `choices`) need the full parser
        let stream = [
            ev(&format!(
                r#"{fp},"choices":[{{"index":0,"delta":{{"role":"assistant","content":"","refusal":null}},"logprobs":null,"finish_reason":null}}]"#
            )),
            ev(&format!(
                r#"{fp},"choices":[{{"index":0,"delta":{{"content":"Hel"}},"logprobs":null,"finish_reason":null}}]"#
            )),
            ev(
                r#""system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"lo \"\u00e9\n"},"finish_reason":null}],"service_tier":"default""#,
            ),
            ev(r#""choices":[{"index":0,"delta":{"reasoning_content":"r"},"finish_reason":null}]"#),
            ev(&format!(
                r#"{fp},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}]"#
            )),
            ev(&format!(
                r#"{fp},"choices":[],"usage":{{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{{"cached_tokens":0}}}}"#
            )),
        ];
        let stream: Vec<&str> = stream.iter().map(String::as_str).collect();
        assert_eq!(same_both_ways(&stream), 4);
        // no extras at all
        let plain = [
            ev(
                r#""choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]"#,
            ),
            ev(r#""choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]"#),
            ev(
                r#""choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"length"}],"usage":null"#,
            ),
            ev(r#""choices":null,"usage":{"prompt_tokens":1,"completion_tokens":1}"#),
        ];
        let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
        assert_eq!(same_both_ways(&plain), 4);
    }

    #[test]
    fn fast_and_full_paths_agree_on_a_corpus() {
        // response-level parts (before `choices`): known, extras, odd ones
        let tops = [
            "",
            r#""id":"x","object":"chat.completion.chunk","created":1,"model":"m","provider":"q","conversation":{"a":1},"#,
            r#""system_fingerprint":"fp","#,
            r#""system_fingerprint":"fp","service_tier":"default","#,
            r#""system_fingerprint":"fp2","#,
            r#""system_fingerprint":"fp","system_fingerprint":"fp","#,
            r#""system_fingerprint":null,"#,
            r#""system_fingerprint":1,"#,
            r#""sys\u0074em_fingerprint":"f\u0070","#,
            r#""logprobs":null,"#,
            r#""logprobs":"x","#,
            r#""obfuscation":"abc","#,
            r#""error":{"message":"boom"},"#,
            r#""error":"boom","#,
            r#""usage":{"prompt_tokens":2},"#,
            r#""usage":null,"#,
        ];
        let deltas = [
            r#"{}"#,
            r#"{"role":"assistant","content":""}"#,
            r#"{"content":"plain"}"#,
            r#"{"content":"esc \" \\ \n \u0001 \u00e9 \ud83d\ude00 é"}"#,
            r#"{"content":null,"reasoning_content":null}"#,
            r#"{"reasoning_content":"think"}"#,
            r#"{"reasoning":"think2"}"#,
            r#"{"reasoning":"a","reasoning_content":""}"#,
            r#"{"reasoning_content":"b","reasoning":"c","content":"d"}"#,
            r#"{"content":[{"type":"text","text":"parts"}]}"#,
            r#"{"content":5}"#,
            r#"{"content":"a","content":"b"}"#,
            r#"{"content":"a","refusal":null}"#,
            r#"{"role":{"odd":true},"content":"x"}"#,
            r#"{"tool_calls":[{"index":0,"id":"c0","type":"function","function":{"name":"f","arguments":""}}]}"#,
            r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]}"#,
            r#"{"tool_calls":null}"#,
            r#"{"function_call":{"name":"f","arguments":"{}"}}"#,
            r#"["content","x"]"#,
            r#"null"#,
        ];
        let finishes = [
            "",
            r#","finish_reason":null"#,
            r#","finish_reason":"stop""#,
            r#","finish_reason":"length""#,
            r#","finish_reason":"tool_calls""#,
            r#","finish_reason":"content_filter""#,
            r#","finish_reason":"function_call""#,
            r#","finish_reason":"""#,
            r#","finish_reason":"weird""#,
            r#","finish_reason":3"#,
            r#","logprobs":null,"finish_reason":null"#,
            r#","logprobs":{"content":[]}"#,
            r#","index":0,"text":"legacy""#,
            r#","x_choice":1"#,
        ];
        let mut events = Vec::new();
        for top in tops {
            for delta in deltas {
                for finish in finishes {
                    events.push(format!(
                        r#"{{{top}"choices":[{{"index":0,"delta":{delta}{finish}}}]}}"#
                    ));
                }
            }
        }
        for odd in [
            r#"{"choices":[]}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":null}"#,
            r#"{"choices":{}}"#,
            r#"{"choices":[[0,{"content":"x"},null,null]]}"#,
            r#"{"choices":[{"delta":["x",null,null,null]}]}"#,
            r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}"#,
            r#"{"choices":[{"delta":{"content":"a"}}]} trailing"#,
            r#"{"choices":[{"delta":{"content":"a"}}]}  "#,
            r#"{"choices":[{"delta":{"content":"a"}}]"#,
            r#"{"choices":[{"delta":{"content":"a"}}],"choices":[{"delta":{"content":"b"}}]}"#,
            r#"[]"#,
            r#""text""#,
            r#"{}"#,
            "{not json",
        ] {
            events.push(odd.to_owned());
        }
        // each event on a fresh reader and after each response-extra state (twice, so a
        // repeated event meets the extras it set), then all in a row
        let primers = [
            "",
            r#"{"system_fingerprint":"fp","choices":[]}"#,
            r#"{"system_fingerprint":"fp","service_tier":"default","choices":[]}"#,
            r#"{"system_fingerprint":{"nested":1},"choices":[]}"#,
        ];
        let mut taken = 0;
        for primer in primers {
            for e in &events {
                let seq: Vec<&str> = [primer, e.as_str(), e.as_str()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect();
                taken += same_both_ways(&seq);
            }
        }
        let all: Vec<&str> = events.iter().map(String::as_str).collect();
        taken += same_both_ways(&all);
        assert!(taken > 1000, "the fast path read {taken} events");
    }

    proptest::proptest! {
        /// The fast path and the full parser agree on any text.
        #[test]
        fn fast_and_full_agree_on_any_text(s in ".{0,120}") {
            same_both_ways(&[&s, r#"{"system_fingerprint":"fp","choices":[]}"#, &s]);
        }

        /// Any JSON text: an error or chunks, never a panic.
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = read_all(&[&s]);
            let _ = Reader::new("p").completion(s.as_bytes(), &mut Vec::new());
        }
    }
}
