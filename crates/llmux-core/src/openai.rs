//! OpenAI chat-completions wire format, shared by every provider that speaks it (openai-compat,
//! AmigoChat, the Hugging Face router): request bodies, SSE chunk parsing, non-stream responses,
//! image generation responses and model lists.

use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value, json};

use crate::chunk::{Chunk, FinishReason, Image, MediaData, Reasoning, Usage};
use crate::decode::sse::sse_events;
use crate::error::{Error, Result};
use crate::http::Response;
use crate::media;
use crate::request::{ChatRequest, Content, ContentPart, ImageUrl, InputAudio, Role};

/// The `messages` array: the request's messages, with [`ChatRequest::media`] attached to the
/// last user message as `image_url` / `input_audio` parts (data URIs).
pub fn messages_json(req: &ChatRequest) -> Result<Vec<Value>> {
    let mut messages = req.messages.clone();
    if !req.media.is_empty() {
        let idx = messages
            .iter()
            .rposition(|m| m.role == Role::User)
            .ok_or_else(|| {
                Error::invalid("media attached but there is no user message to carry it")
            })?;
        let msg = &mut messages[idx];
        let mut parts = match std::mem::take(&mut msg.content) {
            Content::Text(t) => vec![ContentPart::Text { text: t }],
            Content::Parts(p) => p,
        };
        for m in &req.media {
            let (kind, mime) = media::classify_media(m)?;
            match kind {
                media::MediaKind::Audio => parts.push(ContentPart::InputAudio {
                    input_audio: InputAudio {
                        data: media::b64_encode(&m.data),
                        format: media::extension_for_mime(&mime).unwrap_or("wav").to_owned(),
                    },
                }),
                _ => parts.push(ContentPart::ImageUrl {
                    image_url: ImageUrl {
                        url: media::to_data_uri(&mime, &m.data),
                    },
                }),
            }
        }
        msg.content = Content::Parts(parts);
    }
    messages
        .iter()
        .map(|m| {
            serde_json::to_value(m)
                .map_err(|e| Error::invalid(format!("cannot encode message: {e}")))
        })
        .collect()
}

/// The chat-completions body: model, messages, stream (+ `stream_options.include_usage`),
/// sampling parameters that are set, then [`ChatRequest::extra`] (which may override any key).
pub fn chat_body(req: &ChatRequest, model: &str) -> Result<Value> {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages_json(req)?));
    body.insert("stream".into(), json!(req.stream));
    if req.stream {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let opt = |b: &mut Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            b.insert(k.into(), v);
        }
    };
    opt(&mut body, "temperature", req.temperature.map(|v| json!(v)));
    opt(&mut body, "top_p", req.top_p.map(|v| json!(v)));
    opt(&mut body, "max_tokens", req.max_tokens.map(|v| json!(v)));
    opt(
        &mut body,
        "presence_penalty",
        req.presence_penalty.map(|v| json!(v)),
    );
    opt(
        &mut body,
        "frequency_penalty",
        req.frequency_penalty.map(|v| json!(v)),
    );
    opt(&mut body, "seed", req.seed.map(|v| json!(v)));
    if !req.stop.is_empty() {
        body.insert("stop".into(), json!(req.stop));
    }
    for (k, v) in &req.extra {
        body.insert(k.clone(), v.clone());
    }
    Ok(Value::Object(body))
}

fn usage_of(v: &Value) -> Option<Usage> {
    let u = v.get("usage")?;
    if u.is_null() {
        return None;
    }
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (p, c) = (n("prompt_tokens"), n("completion_tokens"));
    Some(Usage {
        prompt_tokens: p,
        completion_tokens: c,
        total_tokens: u
            .get("total_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(p.saturating_add(c)),
    })
}

fn error_of(provider: &str, v: &Value) -> Option<Error> {
    let e = v.get("error")?;
    if e.is_null() {
        return None;
    }
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            e.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string())
        });
    Some(Error::Upstream {
        provider: provider.to_owned(),
        message,
    })
}

fn text_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Chunks of one `chat.completion.chunk` object (tolerant: missing choices, `finish_reason: ""`,
/// `reasoning` or `reasoning_content`). An `error` object becomes [`Error::Upstream`].
pub fn stream_chunks(provider: &str, v: &Value) -> Result<Vec<Chunk>> {
    if let Some(e) = error_of(provider, v) {
        return Err(e);
    }
    let mut out = Vec::new();
    if let Some(choice) = v.get("choices").and_then(|c| c.get(0)) {
        let delta = choice.get("delta").or_else(|| choice.get("message"));
        if let Some(d) = delta {
            if let Some(r) =
                text_of(d.get("reasoning_content")).or_else(|| text_of(d.get("reasoning")))
            {
                out.push(Chunk::Reasoning(Reasoning::token(r)));
            }
            if let Some(t) = text_of(d.get("content")) {
                out.push(Chunk::text(t));
            }
        } else if let Some(t) = text_of(choice.get("text")) {
            // completions-style chunk (`choices[0].text`), which g4f's AmigoChat also reads
            out.push(Chunk::text(t));
        }
        if let Some(f) = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .and_then(FinishReason::parse)
        {
            out.push(Chunk::Finish(f));
        }
    }
    if let Some(u) = usage_of(v) {
        out.push(Chunk::Usage(u));
    }
    Ok(out)
}

/// [`stream_chunks`] of one SSE `data` payload, appended to `out` (which is not cleared).
///
/// Equivalent to parsing `data` into a [`Value`] and calling [`stream_chunks`], but the usual
/// shapes are read by a typed, borrowing parser that skips the fields it does not need (no
/// `Value` tree, no allocation besides the text itself); anything unusual takes the `Value`
/// path. Invalid JSON is a protocol error ("malformed SSE JSON").
pub fn stream_chunks_from_str(provider: &str, data: &str, out: &mut Vec<Chunk>) -> Result<()> {
    if let Some(doc) = fast::parse_str(data) {
        if let Some(choice) = doc.choice {
            match choice.delta.or(choice.message) {
                Some(d) => d.push_into(out),
                None => {
                    if let Some(t) = fast::text(choice.text) {
                        out.push(Chunk::Text(t));
                    }
                }
            }
            if let Some(f) = choice
                .finish_reason
                .as_deref()
                .and_then(FinishReason::parse)
            {
                out.push(Chunk::Finish(f));
            }
        }
        if let Some(u) = doc.usage {
            out.push(Chunk::Usage(u));
        }
        return Ok(());
    }
    let v: Value = serde_json::from_str(data)
        .map_err(|e| Error::protocol(provider, format!("malformed SSE JSON: {e}"), data))?;
    out.extend(stream_chunks(provider, &v)?);
    Ok(())
}

/// [`completion_chunks`] of a whole response body: the typed fast path of
/// [`stream_chunks_from_str`], else the `Value` path. Invalid JSON is a protocol error
/// ("invalid JSON", as [`Response::json`] reports it).
pub fn completion_chunks_from_slice(provider: &str, body: &[u8]) -> Result<Vec<Chunk>> {
    if let Some(fast::Doc {
        choice: Some(choice),
        usage,
    }) = fast::parse(body)
    {
        let mut out = Vec::with_capacity(3);
        if let Some(m) = choice.message {
            m.push_into(&mut out);
        }
        if let Some(f) = choice
            .finish_reason
            .as_deref()
            .and_then(FinishReason::parse)
        {
            out.push(Chunk::Finish(f));
        }
        if let Some(u) = usage {
            out.push(Chunk::Usage(u));
        }
        return Ok(out);
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        Error::protocol(
            provider,
            format!("invalid JSON: {e}"),
            &String::from_utf8_lossy(body),
        )
    })?;
    completion_chunks(provider, &v)
}

/// Chunks of a non-streaming `chat.completion` response.
pub fn completion_chunks(provider: &str, v: &Value) -> Result<Vec<Chunk>> {
    if let Some(e) = error_of(provider, v) {
        return Err(e);
    }
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| Error::protocol(provider, "completion without choices", &v.to_string()))?;
    let mut out = Vec::new();
    if let Some(m) = choice.get("message") {
        if let Some(r) = text_of(m.get("reasoning_content")).or_else(|| text_of(m.get("reasoning")))
        {
            out.push(Chunk::Reasoning(Reasoning::token(r)));
        }
        if let Some(t) = text_of(m.get("content")) {
            out.push(Chunk::text(t));
        }
    }
    if let Some(f) = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .and_then(FinishReason::parse)
    {
        out.push(Chunk::Finish(f));
    }
    if let Some(u) = usage_of(v) {
        out.push(Chunk::Usage(u));
    }
    Ok(out)
}

/// Turns a chat-completions response into chunks: SSE when the server streams
/// (`text/event-stream`), else one JSON completion. A stream that ends without `[DONE]` and
/// without a finish reason is an error (the connection died mid-answer).
pub fn response_chunks(
    provider: String,
    resp: Response,
) -> impl Stream<Item = Result<Chunk>> + Send {
    async_stream::try_stream! {
        let is_sse = resp.content_type().is_some_and(|c| c.starts_with("text/event-stream"));
        if !is_sse {
            let body = Box::pin(resp.bytes()).await?;
            for c in completion_chunks_from_slice(&provider, &body)? {
                yield c;
            }
            return;
        }
        let mut events = std::pin::pin!(sse_events(resp.into_stream()));
        let mut finished = false;
        let mut chunks = Vec::new();
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| e.with_provider(&provider))?;
            let data = ev.data.trim();
            if data == "[DONE]" {
                return;
            }
            if data.is_empty() {
                continue;
            }
            stream_chunks_from_str(&provider, data, &mut chunks)?;
            for c in chunks.drain(..) {
                finished |= matches!(c, Chunk::Finish(_));
                yield c;
            }
        }
        if !finished {
            Err(Error::protocol(&provider, "stream ended before [DONE]", ""))?;
        }
    }
}

/// The image chunk of an `images/generations` response (`url` or `b64_json` entries).
pub fn image_chunk(provider: &str, v: &Value, alt: &str) -> Result<Chunk> {
    if let Some(e) = error_of(provider, v) {
        return Err(e);
    }
    let data = v.get("data").and_then(Value::as_array).ok_or_else(|| {
        Error::protocol(provider, "image response without `data`", &v.to_string())
    })?;
    let mut images = Vec::new();
    for item in data {
        let media = if let Some(u) = item.get("url").and_then(Value::as_str) {
            MediaData::Url(u.to_owned())
        } else if let Some(b) = item.get("b64_json").and_then(Value::as_str) {
            let bytes = media::b64_decode(b)?;
            let mime = media::sniff_image(&bytes).unwrap_or("image/png").to_owned();
            MediaData::Bytes {
                mime,
                data: bytes.into(),
            }
        } else {
            continue;
        };
        let alt = item
            .get("revised_prompt")
            .and_then(Value::as_str)
            .unwrap_or(alt)
            .to_owned();
        images.push(Image {
            data: media,
            alt,
            needs_auth: false,
        });
    }
    if images.is_empty() {
        return Err(Error::protocol(
            provider,
            "image response without images",
            &v.to_string(),
        ));
    }
    Ok(Chunk::Images(images))
}

/// Model ids of a `GET /models` response (`{"data":[{"id":..}]}` or a bare array).
pub fn model_ids(v: &Value) -> Vec<String> {
    let list = v.get("data").unwrap_or(v);
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str).or_else(|| m.as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The fast path of [`stream_chunks_from_str`] and [`completion_chunks_from_slice`]: a
/// hand-written scanner for one chat-completions object. It reads `choices[0]` (`delta`,
/// `message`, `text`, `finish_reason`), `usage` and `error`, borrows unescaped strings, and
/// checks everything else against the JSON grammar without building it. It accepts only the
/// usual shapes and gives up (`None`) on anything else (an `error` object, `delta: null`, a first
/// choice that is no object, a token count that is no unsigned integer, a lone surrogate escape,
/// a number with an exponent, nesting deeper than 64…), so that the `Value` path decides those
/// cases (and every syntax error) exactly as before.
mod fast {
    use std::borrow::Cow;

    use crate::chunk::{Chunk, Reasoning, Usage};

    /// `delta` / `message`.
    #[derive(Default)]
    pub(super) struct Msg<'a> {
        content: Option<Cow<'a, str>>,
        reasoning_content: Option<Cow<'a, str>>,
        reasoning: Option<Cow<'a, str>>,
    }

    impl Msg<'_> {
        /// Reasoning (`reasoning_content`, else `reasoning`), then content; empty texts skipped.
        pub(super) fn push_into(self, out: &mut Vec<Chunk>) {
            if let Some(r) = text(self.reasoning_content).or_else(|| text(self.reasoning)) {
                out.push(Chunk::Reasoning(Reasoning::token(r)));
            }
            if let Some(t) = text(self.content) {
                out.push(Chunk::Text(t));
            }
        }
    }

    /// A non-empty text, owned.
    pub(super) fn text(s: Option<Cow<'_, str>>) -> Option<String> {
        s.filter(|s| !s.is_empty()).map(Cow::into_owned)
    }

    /// `choices[0]`; `delta` / `message` are `Some` exactly when present.
    #[derive(Default)]
    pub(super) struct Choice<'a> {
        pub delta: Option<Msg<'a>>,
        pub message: Option<Msg<'a>>,
        pub text: Option<Cow<'a, str>>,
        pub finish_reason: Option<Cow<'a, str>>,
    }

    /// The fields read from one object.
    #[derive(Default)]
    pub(super) struct Doc<'a> {
        pub choice: Option<Choice<'a>>,
        pub usage: Option<Usage>,
    }

    /// Parses `json` (one whole JSON document), or `None` to take the `Value` path.
    pub(super) fn parse(json: &[u8]) -> Option<Doc<'_>> {
        parse_str(std::str::from_utf8(json).ok()?)
    }

    /// [`parse`] of text.
    pub(super) fn parse_str(json: &str) -> Option<Doc<'_>> {
        let mut p = Scanner { s: json, i: 0 };
        let doc = p.doc()?;
        p.ws();
        (p.i == json.len()).then_some(doc)
    }

    /// Offset of the first `"`, `\\` or control character (below 0x20) in `hay`; `None` when
    /// there is none. Eight bytes at a time (SWAR): for a match the lowest flagged byte is exact
    /// (the borrow of the "less than" test can only flag bytes above a real match).
    pub(super) fn special(hay: &[u8]) -> Option<usize> {
        const LO: u64 = 0x0101_0101_0101_0101;
        const HI: u64 = 0x8080_8080_8080_8080;
        let eq = |w: u64, b: u8| {
            let x = w ^ (LO * u64::from(b));
            x.wrapping_sub(LO) & !x & HI
        };
        let mut words = hay.chunks_exact(8);
        let mut offset = 0;
        for chunk in &mut words {
            let w = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).ok()?);
            let m = eq(w, b'"') | eq(w, b'\\') | (w.wrapping_sub(LO * 0x20) & !w & HI);
            if m != 0 {
                return Some(offset + (m.trailing_zeros() / 8) as usize);
            }
            offset += 8;
        }
        words
            .remainder()
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map(|i| offset + i)
    }

    /// Deepest nesting checked here (serde_json allows 128; deeper documents take its path).
    const MAX_DEPTH: usize = 64;
    /// Longest number checked here (longer ones take serde_json's path, which decides whether
    /// they are in range).
    const MAX_NUMBER: usize = 64;

    struct Scanner<'a> {
        s: &'a str,
        i: usize,
    }

    impl<'a> Scanner<'a> {
        fn peek(&self) -> Option<u8> {
            self.s.as_bytes().get(self.i).copied()
        }

        fn ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.i += 1;
            }
        }

        /// Skips whitespace, then consumes `c`.
        fn eat(&mut self, c: u8) -> Option<()> {
            self.ws();
            (self.peek() == Some(c)).then(|| self.i += 1)
        }

        /// Consumes `lit` (`true`, `false`, `null`).
        fn literal(&mut self, lit: &str) -> Option<()> {
            let end = self.i.checked_add(lit.len())?;
            (self.s.as_bytes().get(self.i..end)? == lit.as_bytes()).then(|| self.i = end)
        }

        /// A string at the cursor (after whitespace), borrowed unless it has escapes.
        fn string(&mut self) -> Option<Cow<'a, str>> {
            self.eat(b'"')?;
            let bytes = self.s.as_bytes();
            let start = self.i;
            self.i += special(bytes.get(start..)?)?;
            match bytes.get(self.i)? {
                b'"' => {
                    let s = self.s.get(start..self.i)?;
                    self.i += 1;
                    Some(Cow::Borrowed(s))
                }
                b'\\' => self.escaped(start),
                _ => None,
            }
        }

        /// The rest of a string with escapes (the cursor is on the first backslash).
        fn escaped(&mut self, start: usize) -> Option<Cow<'a, str>> {
            let bytes = self.s.as_bytes();
            let mut out = String::with_capacity(self.i - start + 16);
            out.push_str(self.s.get(start..self.i)?);
            loop {
                let run = self.i;
                self.i += special(bytes.get(run..)?)?;
                out.push_str(self.s.get(run..self.i)?);
                match *bytes.get(self.i)? {
                    b'"' => {
                        self.i += 1;
                        return Some(Cow::Owned(out));
                    }
                    b'\\' => {
                        let e = *bytes.get(self.i + 1)?;
                        self.i += 2;
                        out.push(match e {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => self.unicode_escape()?,
                            _ => return None,
                        });
                    }
                    _ => return None,
                }
            }
        }

        /// The character of `\uXXXX` (after `\u`), with a surrogate pair's second half; a lone
        /// surrogate gives up.
        fn unicode_escape(&mut self) -> Option<char> {
            let hi = self.hex4()?;
            if (0xD800..0xDC00).contains(&hi) {
                let bytes = self.s.as_bytes();
                if bytes.get(self.i) != Some(&b'\\') || bytes.get(self.i + 1) != Some(&b'u') {
                    return None;
                }
                self.i += 2;
                let lo = self.hex4()?;
                if !(0xDC00..0xE000).contains(&lo) {
                    return None;
                }
                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
            } else {
                char::from_u32(hi)
            }
        }

        fn hex4(&mut self) -> Option<u32> {
            let digits = self.s.get(self.i..self.i.checked_add(4)?)?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            self.i += 4;
            u32::from_str_radix(digits, 16).ok()
        }

        /// A number (the cursor is on its first byte): its text, checked against the grammar.
        fn number(&mut self) -> Option<&'a str> {
            let bytes = self.s.as_bytes();
            let start = self.i;
            let digits = |p: &mut Self| {
                let from = p.i;
                while matches!(bytes.get(p.i), Some(b'0'..=b'9')) {
                    p.i += 1;
                }
                p.i - from
            };
            if bytes.get(self.i) == Some(&b'-') {
                self.i += 1;
            }
            match bytes.get(self.i) {
                Some(b'0') => self.i += 1,
                Some(b'1'..=b'9') => {
                    digits(self);
                }
                _ => return None,
            }
            if bytes.get(self.i) == Some(&b'.') {
                self.i += 1;
                if digits(self) == 0 {
                    return None;
                }
            }
            if matches!(bytes.get(self.i), Some(b'e' | b'E')) || self.i - start > MAX_NUMBER {
                return None;
            }
            self.s.get(start..self.i)
        }

        /// Skips one value of any type, checking its syntax.
        fn skip(&mut self, depth: usize) -> Option<()> {
            if depth > MAX_DEPTH {
                return None;
            }
            self.ws();
            match self.peek()? {
                b'"' => self.string().map(drop),
                b'{' => {
                    self.i += 1;
                    if self.eat(b'}').is_some() {
                        return Some(());
                    }
                    loop {
                        self.string()?;
                        self.eat(b':')?;
                        self.skip(depth + 1)?;
                        if self.more(b'}')? {
                            continue;
                        }
                        return Some(());
                    }
                }
                b'[' => {
                    self.i += 1;
                    if self.eat(b']').is_some() {
                        return Some(());
                    }
                    loop {
                        self.skip(depth + 1)?;
                        if self.more(b']')? {
                            continue;
                        }
                        return Some(());
                    }
                }
                b't' => self.literal("true"),
                b'f' => self.literal("false"),
                b'n' => self.literal("null"),
                _ => self.number().map(drop),
            }
        }

        /// After a member or element: `,` → `Some(true)`, `close` → `Some(false)`.
        fn more(&mut self, close: u8) -> Option<bool> {
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    Some(true)
                }
                c if c == close => {
                    self.i += 1;
                    Some(false)
                }
                _ => None,
            }
        }

        /// `null` → `Some(true)` (consumed); anything else → `Some(false)` (not consumed).
        fn null(&mut self) -> Option<bool> {
            self.ws();
            if self.peek()? == b'n' {
                self.literal("null")?;
                return Some(true);
            }
            Some(false)
        }

        /// The members of an object (the cursor before its `{`), each handed to `member`
        /// with the key; `member` consumes the value.
        fn object(&mut self, mut member: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
            self.eat(b'{')?;
            if self.eat(b'}').is_some() {
                return Some(());
            }
            loop {
                let key = self.string()?;
                self.eat(b':')?;
                member(self, &key)?;
                if !self.more(b'}')? {
                    return Some(());
                }
            }
        }

        /// A string or null.
        fn opt_string(&mut self) -> Option<Option<Cow<'a, str>>> {
            if self.null()? {
                Some(None)
            } else {
                self.string().map(Some)
            }
        }

        /// An unsigned integer or null.
        fn opt_u64(&mut self) -> Option<Option<u64>> {
            if self.null()? {
                return Some(None);
            }
            self.ws();
            let n = self.number()?;
            if n.contains(['-', '.']) {
                return None;
            }
            n.parse().ok().map(Some)
        }

        fn doc(&mut self) -> Option<Doc<'a>> {
            let mut doc = Doc::default();
            // a repeated key overwrites the earlier one, as in a `Value` map
            self.object(|p, key| {
                match key {
                    "choices" => p.choices(&mut doc.choice)?,
                    "usage" => doc.usage = p.usage()?,
                    // `null` is usual; an error object takes the `Value` path
                    "error" => return p.null()?.then_some(()),
                    _ => p.skip(1)?,
                }
                Some(())
            })?;
            Some(doc)
        }

        /// `choices`: null, or an array whose first element (if any) is an object. (Filled in
        /// place: the structures are large enough for moves to show in a profile.)
        fn choices(&mut self, slot: &mut Option<Choice<'a>>) -> Option<()> {
            *slot = None;
            if self.null()? {
                return Some(());
            }
            self.eat(b'[')?;
            if self.eat(b']').is_some() {
                return Some(());
            }
            self.choice(slot.insert(Choice::default()))?;
            while self.more(b']')? {
                self.skip(2)?;
            }
            Some(())
        }

        fn choice(&mut self, c: &mut Choice<'a>) -> Option<()> {
            self.object(|p, key| {
                match key {
                    "delta" => p.msg(c.delta.insert(Msg::default()))?,
                    "message" => p.msg(c.message.insert(Msg::default()))?,
                    "text" => c.text = p.opt_string()?,
                    "finish_reason" => c.finish_reason = p.opt_string()?,
                    _ => p.skip(3)?,
                }
                Some(())
            })
        }

        /// `delta` / `message`: an object (`null` or any other type gives up).
        fn msg(&mut self, m: &mut Msg<'a>) -> Option<()> {
            self.object(|p, key| {
                match key {
                    "content" => m.content = p.opt_string()?,
                    "reasoning_content" => m.reasoning_content = p.opt_string()?,
                    "reasoning" => m.reasoning = p.opt_string()?,
                    _ => p.skip(4)?,
                }
                Some(())
            })
        }

        /// `usage`: null, or an object of unsigned integer (or null) counts.
        fn usage(&mut self) -> Option<Option<Usage>> {
            if self.null()? {
                return Some(None);
            }
            let (mut p, mut c, mut t) = (None, None, None);
            self.object(|s, key| {
                match key {
                    "prompt_tokens" => p = s.opt_u64()?,
                    "completion_tokens" => c = s.opt_u64()?,
                    "total_tokens" => t = s.opt_u64()?,
                    _ => s.skip(2)?,
                }
                Some(())
            })?;
            let (p, c) = (p.unwrap_or(0), c.unwrap_or(0));
            Some(Some(Usage {
                prompt_tokens: p,
                completion_tokens: c,
                total_tokens: t.unwrap_or(p.saturating_add(c)),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Media, Message};

    #[test]
    fn body_has_params_and_media() {
        let req = ChatRequest::new("m", vec![Message::system("s"), Message::user("look")])
            .with_temperature(0.5)
            .with_stop("END")
            .with_media(Media::from_bytes(&b"\x89PNG\r\n\x1a\n...."[..], None))
            .with_extra("user", json!("u1"));
        let b = chat_body(&req, "gpt").expect("body");
        assert_eq!(b["model"], "gpt");
        assert_eq!(b["temperature"], 0.5);
        assert_eq!(b["stop"], json!(["END"]));
        assert_eq!(b["user"], "u1");
        assert_eq!(b["stream_options"]["include_usage"], true);
        let parts = b["messages"][1]["content"].as_array().expect("parts");
        assert_eq!(parts[0], json!({"type":"text","text":"look"}));
        assert!(
            parts[1]["image_url"]["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("data:image/png;base64,"))
        );
        assert!(b.get("max_tokens").is_none());
    }

    /// The slow (`Value`) path the fast path must agree with.
    fn via_value(data: &str) -> Result<Vec<Chunk>> {
        let v: Value = serde_json::from_str(data)
            .map_err(|e| Error::protocol("p", format!("malformed SSE JSON: {e}"), data))?;
        stream_chunks("p", &v)
    }

    fn via_fast(data: &str) -> Result<Vec<Chunk>> {
        let mut out = vec![Chunk::text("kept")];
        stream_chunks_from_str("p", data, &mut out)?;
        assert_eq!(out.remove(0), Chunk::text("kept"), "out is appended to");
        Ok(out)
    }

    fn same(data: &str) {
        let (fast, slow) = (via_fast(data), via_value(data));
        assert_eq!(
            format!("{fast:?}"),
            format!("{slow:?}"),
            "fast and Value paths differ on {data}"
        );
    }

    #[test]
    fn fast_path_agrees_with_value_path() {
        for data in [
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"tok "},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":null}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":9}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":4}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":-1}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1.5}}"#,
            r#"{"choices":[],"usage":5}"#,
            r#"{"choices":[{"delta":{"content":"Hi","reasoning_content":null},"finish_reason":""}]}"#,
            r#"{"choices":[{"delta":{"reasoning":"hmm","reasoning_content":""},"finish_reason":"length"}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"a","reasoning":"b","content":"c"}}]}"#,
            r#"{"choices":[{"text":"legacy","finish_reason":null}]}"#,
            r#"{"choices":[{"delta":null,"text":"x"}]}"#,
            r#"{"choices":[{"delta":"s","text":"x"}]}"#,
            r#"{"choices":[{"message":{"content":"m"},"text":"x"}]}"#,
            r#"{"choices":[{"delta":{"content":"d"},"message":{"content":"m"}}]}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":[5,{"delta":{"content":"second"}}]}"#,
            r#"{"choices":{"0":{"delta":{"content":"obj"}}}}"#,
            r#"{"choices":null}"#,
            r#"{"choices":[{"delta":{"content":["part"]}}]}"#,
            r#"{"choices":[{"delta":{"content":"esc\"aped \u00e9\n"}}]}"#,
            r#"{"ch\u006fices":[{"delta":{"c\u006fntent":"escaped keys"}}]}"#,
            r#"{"choices":[{"delta":{"content":"first"}}],"choices":[{"delta":{"content":"last"}}]}"#,
            r#"{"choices":[{"delta":{"content":"x"}}],"choices":null}"#,
            r#"{"choices":[{"finish_reason":7}]}"#,
            r#"{"choices":[{"finish_reason":"weird"}]}"#,
            r#"{"error":{"message":"boom"}}"#,
            r#"{"error":"plain","choices":[]}"#,
            r#"{"error":null,"choices":[{"delta":{"content":"ok"}}]}"#,
            r#"{"error":false}"#,
            r#"[{"choices":[{"delta":{"content":"array"}}]}]"#,
            r#""just a string""#,
            r#"42"#,
            r#"{"choices":[{"delta":{"content":"x"}}]} trailing"#,
            r#"{"choices":[{"delta":{"content":"x"}}]"#,
            r#"{"choices":[{"delta":{"content":"\ud800"}}]}"#,
            "",
        ] {
            same(data);
        }
    }

    #[test]
    fn completion_fast_path_agrees_with_value_path() {
        for body in [
            r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":12,"total_tokens":22}}"#,
            r#"{"choices":[{"message":{"reasoning_content":"think","content":"answer"},"finish_reason":"length"}]}"#,
            r#"{"choices":[{"delta":{"content":"not read"},"text":"nor this"}]}"#,
            r#"{"choices":[]}"#,
            r#"{"choices":[{"message":null}]}"#,
            r#"{"error":{"message":"bad"}}"#,
            r#"{"usage":{"prompt_tokens":1}}"#,
            r#"not json"#,
        ] {
            let fast = completion_chunks_from_slice("p", body.as_bytes());
            let slow = serde_json::from_slice::<Value>(body.as_bytes())
                .map_err(|e| Error::protocol("p", format!("invalid JSON: {e}"), body))
                .and_then(|v| completion_chunks("p", &v));
            assert_eq!(
                format!("{fast:?}"),
                format!("{slow:?}"),
                "fast and Value paths differ on {body}"
            );
        }
    }

    /// JSON documents made of the keys the parsers look at, with every kind of value.
    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = prop_oneof![
            Just("choices"),
            Just("delta"),
            Just("message"),
            Just("text"),
            Just("content"),
            Just("reasoning"),
            Just("reasoning_content"),
            Just("finish_reason"),
            Just("usage"),
            Just("prompt_tokens"),
            Just("completion_tokens"),
            Just("total_tokens"),
            Just("error"),
            Just("index"),
            Just("x"),
        ]
        .prop_map(str::to_owned);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            prop_oneof![
                Just(""),
                Just("stop"),
                Just("length"),
                Just("tok "),
                Just("é\"\n")
            ]
            .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(5, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn fast_path_agrees_on_generated_documents(v in arb_json()) {
            let text = v.to_string();
            same(&text);
            let fast = completion_chunks_from_slice("p", text.as_bytes());
            // (the document as parsed back, not `v`: floats need not round-trip exactly)
            let reparsed: Value = serde_json::from_str(&text).expect("valid JSON");
            let slow = completion_chunks("p", &reparsed);
            proptest::prop_assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
        }
    }

    #[test]
    fn special_byte_search_matches_naive() {
        let alphabet = [
            b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xa2, 0xff, 0x00, b'x',
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..40 {
            for _ in 0..60 {
                let v: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        *alphabet.get((seed % 40) as usize).unwrap_or(&b'q')
                    })
                    .collect();
                let naive = v.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
                assert_eq!(fast::special(&v), naive, "{v:?}");
            }
        }
    }

    #[test]
    fn scanner_edge_cases_agree_with_value_path() {
        let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
        let long = "9".repeat(80);
        for data in [
            r#"{"choices":[{"delta":{"content":"\ud83d\ude00 pair"}}]}"#,
            r#"{"choices":[{"delta":{"content":"lone \udc00"}}]}"#,
            r#"{"choices":[{"delta":{"content":"\u00"}}]}"#,
            r#"{"choices":[{"delta":{"content":"bad \q escape"}}]}"#,
            "{\"choices\":[{\"delta\":{\"content\":\"raw \u{1} control\"}}]}",
            r#"{"x":1e5,"choices":[{"delta":{"content":"exp"}}]}"#,
            r#"{"x":-0.5,"y":0,"z":-0,"choices":[{"delta":{"content":"nums"}}]}"#,
            r#"{"x":01,"choices":[]}"#,
            r#"{"x":1.,"choices":[]}"#,
            r#"{"x":-,"choices":[]}"#,
            r#"{"x":tru,"choices":[]}"#,
            r#"{"x":truex,"choices":[]}"#,
            r#"{"x":[1,2,],"choices":[]}"#,
            r#"{"x":{"a":1,},"choices":[]}"#,
            r#"{"x":{"a" 1},"choices":[]}"#,
            r#"{"choices":[{"delta":{"content":"x"}},]}"#,
            r#"{,"choices":[]}"#,
            r#"{}"#,
            " \t\r\n{ \"choices\" : [ { \"delta\" : { \"content\" : \"spaced\" } , \"finish_reason\" : \"stop\" } ] , \"usage\" : { \"prompt_tokens\" : 1 , \"completion_tokens\" : 2 } } \n",
            "\u{feff}{\"choices\":[]}",
            r#"{"choices":[],"usage":{"prompt_tokens":18446744073709551616}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":null,"completion_tokens":7}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1e2}}"#,
            r#"{"choices":[{"delta":{"content":"é ü 中文 😀"}}]}"#,
        ] {
            same(data);
        }
        same(&format!(r#"{{"x":{deep},"choices":[]}}"#));
        same(&format!(r#"{{"x":{long},"choices":[]}}"#));
    }

    /// Realistic chunk documents (random texts with every kind of character, optional and null
    /// fields, unknown fields of any shape, compact or pretty) — the scanner's own ground.
    fn arb_chunk() -> impl proptest::strategy::Strategy<Value = (Value, bool)> {
        use proptest::prelude::*;
        let text = proptest::collection::vec(
            prop_oneof![
                Just('a'),
                Just(' '),
                Just('"'),
                Just('\\'),
                Just('\n'),
                Just('\u{1}'),
                Just('/'),
                Just('é'),
                Just('中'),
                Just('😀'),
                Just('\u{7f}'),
            ],
            0..12,
        )
        .prop_map(|v| v.into_iter().collect::<String>());
        let opt_text = prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            text.clone().prop_map(|t| Some(json!(t)))
        ];
        let count = prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            (0u64..1_000_000).prop_map(|n| Some(json!(n)))
        ];
        let msg = (
            opt_text.clone(),
            opt_text.clone(),
            opt_text.clone(),
            arb_json(),
        )
            .prop_map(|(c, rc, r, extra)| {
                let mut m = serde_json::Map::new();
                for (k, v) in [("content", c), ("reasoning_content", rc), ("reasoning", r)] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                m.insert("role_or_other".into(), extra);
                Value::Object(m)
            })
            .boxed();
        let choice = (
            proptest::option::of(msg.clone()),
            proptest::option::of(msg),
            opt_text.clone(),
            opt_text,
        )
            .prop_map(|(d, m, t, f)| {
                let mut c = serde_json::Map::new();
                c.insert("index".into(), json!(0));
                for (k, v) in [
                    ("delta", d),
                    ("message", m),
                    ("text", t),
                    ("finish_reason", f),
                ] {
                    if let Some(v) = v {
                        c.insert(k.into(), v);
                    }
                }
                Value::Object(c)
            });
        let usage = prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            (count.clone(), count.clone(), count).prop_map(|(p, c, t)| {
                let mut u = serde_json::Map::new();
                for (k, v) in [
                    ("prompt_tokens", p),
                    ("completion_tokens", c),
                    ("total_tokens", t),
                ] {
                    if let Some(v) = v {
                        u.insert(k.into(), v);
                    }
                }
                Some(Value::Object(u))
            })
        ];
        (
            proptest::collection::vec(choice, 0..3),
            usage,
            arb_json(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(choices, usage, extra, error_null, pretty)| {
                let mut d = serde_json::Map::new();
                d.insert("id".into(), json!("chatcmpl-x"));
                d.insert("extra".into(), extra);
                d.insert("choices".into(), Value::Array(choices));
                if let Some(u) = usage {
                    d.insert("usage".into(), u);
                }
                if error_null {
                    d.insert("error".into(), Value::Null);
                }
                (Value::Object(d), pretty)
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        #[test]
        fn scanner_agrees_on_realistic_chunks((v, pretty) in arb_chunk()) {
            let text = if pretty {
                serde_json::to_string_pretty(&v).expect("json")
            } else {
                v.to_string()
            };
            same(&text);
            let fast = completion_chunks_from_slice("p", text.as_bytes());
            let reparsed: Value = serde_json::from_str(&text).expect("valid JSON");
            let slow = completion_chunks("p", &reparsed);
            proptest::prop_assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
        }
    }

    #[test]
    fn tolerant_chunk_parsing() {
        let v = json!({"choices":[{"delta":{"content":"Hi","reasoning_content":null},"finish_reason":""}]});
        assert_eq!(stream_chunks("p", &v).ok(), Some(vec![Chunk::text("Hi")]));
        let v = json!({"choices":[{"delta":{"reasoning":"hmm"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":4}});
        let c = stream_chunks("p", &v).expect("chunks");
        assert_eq!(c[0], Chunk::Reasoning(Reasoning::token("hmm")));
        assert_eq!(c[1], Chunk::Finish(FinishReason::Length));
        assert_eq!(
            c[2],
            Chunk::Usage(Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7
            })
        );
        let v = json!({"choices":[{"text":"legacy","finish_reason":null}]});
        assert_eq!(
            stream_chunks("p", &v).ok(),
            Some(vec![Chunk::text("legacy")])
        );
        let v = json!({"choices":[], "usage": null});
        assert_eq!(stream_chunks("p", &v).ok(), Some(vec![]));
        assert!(matches!(
            stream_chunks("p", &json!({"error":{"message":"boom"}})),
            Err(Error::Upstream { .. })
        ));
    }

    #[test]
    fn models_and_images() {
        assert_eq!(
            model_ids(&json!({"data":[{"id":"a"},{"id":"b"}]})),
            vec!["a", "b"]
        );
        let c = image_chunk("p", &json!({"data":[{"url":"http://x/i.png"}]}), "cat").expect("img");
        assert_eq!(
            c,
            Chunk::Images(vec![Image {
                data: MediaData::Url("http://x/i.png".into()),
                alt: "cat".into(),
                needs_auth: false
            }])
        );
    }
}
