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
            let body = resp.bytes().await?;
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

/// The typed fast path of [`stream_chunks_from_str`] and [`completion_chunks_from_slice`]: reads
/// `choices[0]` (`delta`, `message`, `text`, `finish_reason`), `usage` and `error` of a
/// chat-completions object, borrowing unescaped strings and skipping every other field unparsed.
/// It accepts only the usual shapes and gives up (`None`) on anything else (an `error` object,
/// `delta: null`, a first choice that is no object, a token count that is no unsigned
/// integer…), so that the `Value` path decides those cases exactly as before.
mod fast {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{
        self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
    };

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
        run(serde_json::Deserializer::from_slice(json))
    }

    /// [`parse`] of text known to be UTF-8 (not validated again).
    pub(super) fn parse_str(json: &str) -> Option<Doc<'_>> {
        run(serde_json::Deserializer::from_str(json))
    }

    fn run<'de, R: serde_json::de::Read<'de>>(
        mut de: serde_json::Deserializer<R>,
    ) -> Option<Doc<'de>> {
        let doc = (&mut de).deserialize_map(DocVisitor).ok()?;
        de.end().ok()?;
        Some(doc)
    }

    /// Gives up on this document (the message is never shown).
    fn give_up<E: de::Error>() -> E {
        E::custom("unusual shape")
    }

    #[derive(Clone, Copy)]
    enum Key {
        Choices,
        Usage,
        Error,
        Delta,
        Message,
        Text,
        FinishReason,
        Content,
        ReasoningContent,
        Reasoning,
        PromptTokens,
        CompletionTokens,
        TotalTokens,
        Other,
    }

    struct KeyVisitor;

    impl Visitor<'_> for KeyVisitor {
        type Value = Key;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a key")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
            Ok(match v {
                "choices" => Key::Choices,
                "usage" => Key::Usage,
                "error" => Key::Error,
                "delta" => Key::Delta,
                "message" => Key::Message,
                "text" => Key::Text,
                "finish_reason" => Key::FinishReason,
                "content" => Key::Content,
                "reasoning_content" => Key::ReasoningContent,
                "reasoning" => Key::Reasoning,
                "prompt_tokens" => Key::PromptTokens,
                "completion_tokens" => Key::CompletionTokens,
                "total_tokens" => Key::TotalTokens,
                _ => Key::Other,
            })
        }
    }

    impl<'de> de::Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
            d.deserialize_identifier(KeyVisitor)
        }
    }

    /// A string or null, borrowed when unescaped.
    struct OptStr;

    impl<'de> DeserializeSeed<'de> for OptStr {
        type Value = Option<Cow<'de, str>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_option(self)
        }
    }

    impl<'de> Visitor<'de> for OptStr {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
    }

    /// An unsigned integer or null (`None`).
    struct OptU64;

    impl<'de> DeserializeSeed<'de> for OptU64 {
        type Value = Option<u64>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_option(self)
        }
    }

    impl<'de> Visitor<'de> for OptU64 {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an unsigned integer or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_u64(self)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
    }

    /// The top-level object.
    struct DocVisitor;

    impl<'de> Visitor<'de> for DocVisitor {
        type Value = Doc<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
            let mut doc = Doc::default();
            // a repeated key overwrites the earlier one, as in a `Value` map
            while let Some(key) = map.next_key::<Key>()? {
                match key {
                    Key::Choices => doc.choice = map.next_value_seed(Choices)?,
                    Key::Usage => doc.usage = map.next_value_seed(OptUsage)?,
                    Key::Error => {
                        // `null` is usual; an error object takes the `Value` path
                        if map.next_value::<Option<IgnoredAny>>()?.is_some() {
                            return Err(give_up());
                        }
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(doc)
        }
    }

    /// `choices`: null, or an array whose first element (if any) is an object.
    struct Choices;

    impl<'de> DeserializeSeed<'de> for Choices {
        type Value = Option<Choice<'de>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_option(self)
        }
    }

    impl<'de> Visitor<'de> for Choices {
        type Value = Option<Choice<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element_seed(ChoiceSeed)?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }

    struct ChoiceSeed;

    impl<'de> DeserializeSeed<'de> for ChoiceSeed {
        type Value = Choice<'de>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for ChoiceSeed {
        type Value = Choice<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a choice object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Choice<'de>, A::Error> {
            let mut c = Choice::default();
            while let Some(key) = map.next_key::<Key>()? {
                match key {
                    Key::Delta => c.delta = Some(map.next_value_seed(MsgSeed)?),
                    Key::Message => c.message = Some(map.next_value_seed(MsgSeed)?),
                    Key::Text => c.text = map.next_value_seed(OptStr)?,
                    Key::FinishReason => c.finish_reason = map.next_value_seed(OptStr)?,
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(c)
        }
    }

    /// `delta` / `message`: an object (`null` or any other type gives up).
    struct MsgSeed;

    impl<'de> DeserializeSeed<'de> for MsgSeed {
        type Value = Msg<'de>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for MsgSeed {
        type Value = Msg<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a message object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Msg<'de>, A::Error> {
            let mut m = Msg::default();
            while let Some(key) = map.next_key::<Key>()? {
                match key {
                    Key::Content => m.content = map.next_value_seed(OptStr)?,
                    Key::ReasoningContent => m.reasoning_content = map.next_value_seed(OptStr)?,
                    Key::Reasoning => m.reasoning = map.next_value_seed(OptStr)?,
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(m)
        }
    }

    /// `usage`: null, or an object of unsigned integer (or null) counts.
    struct OptUsage;

    impl<'de> DeserializeSeed<'de> for OptUsage {
        type Value = Option<Usage>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_option(self)
        }
    }

    impl<'de> Visitor<'de> for OptUsage {
        type Value = Option<Usage>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a usage object or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut p, mut c, mut t) = (None, None, None);
            while let Some(key) = map.next_key::<Key>()? {
                match key {
                    Key::PromptTokens => p = map.next_value_seed(OptU64)?,
                    Key::CompletionTokens => c = map.next_value_seed(OptU64)?,
                    Key::TotalTokens => t = map.next_value_seed(OptU64)?,
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            let (p, c) = (p.unwrap_or(0), c.unwrap_or(0));
            Ok(Some(Usage {
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
