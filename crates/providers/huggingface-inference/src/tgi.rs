//! Response decoding: text-generation-inference (TGI) SSE streams and non-streaming answers
//! (`[{"generated_text": ..., "details": ...}]` JSON or media bytes).
//!
//! Requests ask for `parameters.details`, so TGI reports why generation stopped and how many
//! tokens it used: `details` of the non-streaming answer (`finish_reason`, `generated_tokens`,
//! `prefill`) and of the last stream event (`finish_reason`, `generated_tokens`,
//! `input_length`). They become the finish reason and a [`Chunk::Usage`].

use llmux_core::bytes::Bytes;
use llmux_core::decode::jsonl;
use llmux_core::futures_util::{Stream, StreamExt};
use llmux_core::{Chunk, Error, FinishReason, Image, MediaData, Result, Usage, media};
use serde_json::Value;

/// What TGI's `details` say: the finish reason (`length` → [`FinishReason::Length`],
/// `eos_token` and `stop_sequence` → [`FinishReason::Stop`]; other values are not mapped) and,
/// when `generated_tokens` is given, the usage. The prompt tokens are `input_length` (streams),
/// else the length of a non-empty `prefill` list, else `prompt_tokens` (TGI's
/// `x-prompt-tokens` header), else 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Details {
    pub(crate) finish: Option<FinishReason>,
    pub(crate) usage: Option<Usage>,
}

impl Details {
    /// Reads a `details` object (`None` when it is absent or not an object).
    pub(crate) fn read(details: Option<&Value>, prompt_tokens: Option<u64>) -> Option<Self> {
        let d = details.filter(|d| d.is_object())?;
        let finish = match d.get("finish_reason").and_then(Value::as_str) {
            Some("length") => Some(FinishReason::Length),
            Some("eos_token" | "stop_sequence") => Some(FinishReason::Stop),
            _ => None,
        };
        let prefill = d
            .get("prefill")
            .and_then(Value::as_array)
            .map(Vec::len)
            .filter(|n| *n > 0)
            .map(|n| n as u64);
        let prompt = d
            .get("input_length")
            .and_then(Value::as_u64)
            .or(prefill)
            .or(prompt_tokens)
            .unwrap_or(0);
        let usage = d
            .get("generated_tokens")
            .and_then(Value::as_u64)
            .map(|completion| Usage::new(prompt, completion));
        Some(Self { finish, usage })
    }

    /// The usage chunk (if any), then the finish chunk (if any).
    fn chunks(self) -> impl Iterator<Item = Chunk> {
        self.usage
            .map(Chunk::Usage)
            .into_iter()
            .chain(self.finish.map(Chunk::Finish))
    }
}

/// Folds TGI events into chunks (one state machine per stream).
#[derive(Debug)]
pub(crate) struct TgiState {
    provider: String,
    /// The next non-special token is the first one (its leading whitespace is stripped).
    first: bool,
    /// A special (end) token was seen: the finish reason is `stop`, else `length`.
    special_seen: bool,
    /// A `data:` event was seen.
    saw_event: bool,
    /// The first non-empty line that was not a `data:` event (for the error of an eventless body).
    first_other: Option<String>,
    /// The `details` of the last event, when TGI sent them.
    details: Option<Details>,
}

impl TgiState {
    pub(crate) fn new(provider: &str, do_continue: bool) -> Self {
        Self {
            provider: provider.to_owned(),
            first: !do_continue,
            special_seen: false,
            saw_event: false,
            first_other: None,
            details: None,
        }
    }

    /// The chunk of one body line: only `data:` lines count; an `error` event is an error.
    pub(crate) fn line(&mut self, line: &[u8]) -> Result<Option<Chunk>> {
        let Some(data) = line.strip_prefix(b"data:") else {
            if self.first_other.is_none() && !line.trim_ascii().is_empty() {
                self.first_other = Some(String::from_utf8_lossy(line).into_owned());
            }
            return Ok(None);
        };
        self.saw_event = true;
        let text = String::from_utf8_lossy(data);
        let event: Value = serde_json::from_str(text.trim()).map_err(|e| {
            Error::protocol(&self.provider, format!("malformed TGI event: {e}"), &text)
        })?;
        if let Some(err) = event.get("error").filter(|e| !e.is_null()) {
            let message = err
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| err.to_string());
            return Err(Error::Upstream {
                provider: self.provider.clone(),
                message,
            });
        }
        if let Some(details) = Details::read(event.get("details"), None) {
            self.details = Some(details);
        }
        let Some(token) = event.get("token") else {
            return Ok(None);
        };
        if token
            .get("special")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            self.special_seen = true;
            return Ok(None);
        }
        let mut piece = token
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if self.first {
            piece = piece.trim_start();
            self.first = false;
        }
        Ok((!piece.is_empty()).then(|| Chunk::text(piece)))
    }

    /// The finish reason once the body ended; a body without a single `data:` event (an HTML
    /// page, a proxy's answer) is a protocol error, not an empty answer.
    pub(crate) fn end(&self) -> Result<FinishReason> {
        if !self.saw_event {
            return Err(Error::protocol(
                &self.provider,
                "the text-generation stream has no `data:` events",
                self.first_other.as_deref().unwrap_or_default(),
            ));
        }
        Ok(self.finish())
    }

    /// The finish reason once the body ended: the one of the `details` when TGI sent them,
    /// else `stop` when a special (end) token was seen, else `length`.
    pub(crate) fn finish(&self) -> FinishReason {
        if let Some(reason) = self.details.as_ref().and_then(|d| d.finish.clone()) {
            return reason;
        }
        if self.special_seen {
            FinishReason::Stop
        } else {
            FinishReason::Length
        }
    }

    /// The usage of the `details`, when TGI sent them.
    pub(crate) fn usage(&self) -> Option<Usage> {
        self.details.as_ref().and_then(|d| d.usage.clone())
    }
}

/// Chunks of a TGI SSE body, then the usage (when reported) and the finish reason.
pub(crate) fn stream_chunks<S>(
    provider: String,
    body: S,
    do_continue: bool,
) -> impl Stream<Item = Result<Chunk>> + Send
where
    S: Stream<Item = Result<Bytes>> + Send,
{
    llmux_core::async_stream::try_stream! {
        let mut state = TgiState::new(&provider, do_continue);
        let mut lines = std::pin::pin!(jsonl::lines(body));
        while let Some(line) = lines.next().await {
            let line = line.map_err(|e| e.with_provider(&provider))?;
            if let Some(chunk) = state.line(&line)? {
                yield chunk;
            }
        }
        let finish = state.end()?;
        if let Some(usage) = state.usage() {
            yield Chunk::Usage(usage);
        }
        yield Chunk::Finish(finish);
    }
}

/// The MIME type of a `Content-Type` value, lower-cased, without parameters.
pub(crate) fn mime_of(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A media chunk when the body is an image or audio file (by `Content-Type`, else by magic
/// bytes unless the body is declared as JSON or text).
pub(crate) fn media_chunk(mime: &str, data: &Bytes, alt: &str) -> Option<Chunk> {
    let sniffed = || {
        if mime.contains("json") || mime.starts_with("text/") {
            None
        } else {
            media::sniff_image(data).map(str::to_owned)
        }
    };
    if mime.starts_with("audio/") {
        return Some(Chunk::Audio(MediaData::Bytes {
            mime: mime.to_owned(),
            data: data.clone(),
        }));
    }
    let mime = if mime.starts_with("image/") {
        mime.to_owned()
    } else {
        sniffed()?
    };
    Some(Chunk::Images(vec![Image {
        data: MediaData::Bytes {
            mime,
            data: data.clone(),
        },
        alt: alt.to_owned(),
        needs_auth: false,
    }]))
}

/// The chunks of a non-streaming answer: media bytes, or the `generated_text` of
/// `[{"generated_text": ..., "details": ...}]` with surrounding whitespace removed, then the
/// usage and finish reason of its `details` (see [`Details`]; `prompt_tokens` is TGI's
/// `x-prompt-tokens` header).
pub(crate) fn complete_chunks(
    provider: &str,
    content_type: Option<&str>,
    prompt_tokens: Option<u64>,
    data: &Bytes,
    alt: &str,
) -> Result<Vec<Chunk>> {
    let mime = mime_of(content_type);
    if let Some(chunk) = media_chunk(&mime, data, alt) {
        return Ok(vec![chunk]);
    }
    let text = String::from_utf8_lossy(data);
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        Error::protocol(
            provider,
            format!("expected JSON or media, got {mime:?}: {e}"),
            &text,
        )
    })?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Err(Error::Upstream {
            provider: provider.to_owned(),
            message: err
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| err.to_string()),
        });
    }
    let answer = v.get(0).unwrap_or(&v);
    let generated = answer
        .get("generated_text")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::protocol(provider, "answer without `generated_text`", &text))?;
    let mut chunks = vec![Chunk::text(generated.trim())];
    if let Some(details) = Details::read(answer.get("details"), prompt_tokens) {
        chunks.extend(details.chunks());
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str], do_continue: bool) -> Result<Vec<Chunk>> {
        let mut s = TgiState::new("p", do_continue);
        let mut out = Vec::new();
        for l in lines {
            if let Some(c) = s.line(l.as_bytes())? {
                out.push(c);
            }
        }
        out.push(Chunk::Finish(s.finish()));
        Ok(out)
    }

    #[test]
    fn transcript_a_stream() {
        let lines = [
            r#"data:{"index":1,"token":{"id":9707,"text":" Hello","logprob":-0.2,"special":false},"generated_text":null,"details":null}"#,
            "",
            r#"data:{"index":2,"token":{"id":0,"text":"!","logprob":-0.1,"special":false},"generated_text":null,"details":null}"#,
            "",
            r#"data:{"index":3,"token":{"id":151645,"text":"<|im_end|>","logprob":0.0,"special":true},"generated_text":"Hello!","details":null}"#,
        ];
        assert_eq!(
            run(&lines, false).expect("ok"),
            vec![
                Chunk::text("Hello"),
                Chunk::text("!"),
                Chunk::Finish(FinishReason::Stop)
            ]
        );
        assert_eq!(
            run(&lines[..3], false).expect("ok"),
            vec![
                Chunk::text("Hello"),
                Chunk::text("!"),
                Chunk::Finish(FinishReason::Length)
            ]
        );
        // Continue mode keeps the leading space.
        assert_eq!(
            run(&lines[..1], true).expect("ok")[0],
            Chunk::text(" Hello")
        );
    }

    #[test]
    fn first_flag_is_cleared_by_a_blank_first_token() {
        let lines = [
            r#"data: {"token":{"text":"  ","special":false}}"#,
            r#"comment or id line"#,
            r#"data:{"token":{"text":" world","special":false}}"#,
        ];
        assert_eq!(
            run(&lines, false).expect("ok"),
            vec![Chunk::text(" world"), Chunk::Finish(FinishReason::Length)]
        );
    }

    #[test]
    fn errors() {
        let e = run(
            &[r#"data:{"error":"Input validation error","error_type":"validation"}"#],
            false,
        );
        assert!(
            matches!(&e, Err(Error::Upstream { message, .. }) if message == "Input validation error"),
            "{e:?}"
        );
        let e = run(&["data:{not json"], false);
        assert!(matches!(e, Err(Error::Protocol { .. })), "{e:?}");
    }

    /// Regression (fault matrix): a 200 HTML page answering a streaming request was read as an
    /// empty stream, and the caller only learnt that no provider produced a response.
    #[test]
    fn a_body_without_events_is_a_protocol_error() {
        let mut s = TgiState::new("p", false);
        for l in ["<!DOCTYPE html><html>", "<body>It works!</body></html>", ""] {
            assert_eq!(s.line(l.as_bytes()).expect("skipped"), None);
        }
        let e = s.end().expect_err("no events");
        assert!(
            matches!(&e, Error::Protocol { snippet, .. } if snippet.starts_with("<!DOCTYPE html>")),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("p: protocol error"), "{e}");
        let mut s = TgiState::new("p", false);
        s.line(br#"data:{"token":{"text":"hi","special":false}}"#)
            .expect("event");
        assert_eq!(s.end().expect("events"), FinishReason::Length);
    }

    fn usage(prompt: u64, completion: u64) -> Chunk {
        Chunk::Usage(Usage::new(prompt, completion))
    }

    /// TGI's `Details` (non-streaming, `parameters.details: true`).
    #[test]
    fn non_stream_details() {
        let cut = Bytes::from_static(br#"[{"generated_text":" Hello","details":{"finish_reason":"length","generated_tokens":1,"seed":null,"prefill":[],"tokens":[{"id":9707,"text":" Hello","logprob":-0.2,"special":false}]}}]"#);
        let c = complete_chunks("p", Some("application/json"), Some(12), &cut, "").expect("ok");
        assert_eq!(
            c,
            [
                Chunk::text("Hello"),
                usage(12, 1),
                Chunk::Finish(FinishReason::Length)
            ]
        );
        for (reason, prefill) in [
            ("eos_token", "[]"),
            (
                "stop_sequence",
                r#"[{"id":1,"text":"<s>","logprob":null},{"id":2,"text":"Hi","logprob":-1.0}]"#,
            ),
        ] {
            let body = format!(
                r#"[{{"generated_text":"Hi###","details":{{"finish_reason":"{reason}","generated_tokens":3,"seed":5,"prefill":{prefill},"tokens":[]}}}}]"#
            );
            let c = complete_chunks("p", Some("application/json"), None, &Bytes::from(body), "")
                .expect("ok");
            let prompt = if reason == "eos_token" { 0 } else { 2 };
            assert_eq!(
                c[1..],
                [usage(prompt, 3), Chunk::Finish(FinishReason::Stop)],
                "{reason}"
            );
        }
        // unknown reasons are not guessed; a details object without counts gives no usage
        let odd = Bytes::from_static(
            br#"[{"generated_text":"x","details":{"finish_reason":"tool_call"}}]"#,
        );
        assert_eq!(
            complete_chunks("p", Some("application/json"), None, &odd, "").expect("ok"),
            [Chunk::text("x")]
        );
        let junk = Bytes::from_static(br#"[{"generated_text":"x","details":{"finish_reason":5,"generated_tokens":-1,"prefill":"no"}}]"#);
        assert_eq!(
            complete_chunks("p", Some("application/json"), None, &junk, "").expect("ok"),
            [Chunk::text("x")]
        );
    }

    /// TGI's `StreamDetails` on the last event (`parameters.details: true`).
    #[test]
    fn stream_details() {
        let cut = [
            r#"data:{"index":1,"token":{"id":9707,"text":" Hello","logprob":-0.2,"special":false},"generated_text":null,"details":null}"#,
            r#"data:{"index":2,"token":{"id":0,"text":"!","logprob":-0.1,"special":false},"generated_text":"Hello!","details":{"finish_reason":"length","generated_tokens":2,"seed":null,"input_length":9}}"#,
        ];
        let mut s = TgiState::new("p", false);
        for l in cut {
            s.line(l.as_bytes()).expect("event");
        }
        assert_eq!(
            (s.finish(), s.usage()),
            (FinishReason::Length, Some(Usage::new(9, 2)))
        );
        // a stop sequence ends without a special token: still `stop`
        let stop = r#"data:{"index":1,"token":{"id":7,"text":"END","logprob":-0.2,"special":false},"generated_text":"END","details":{"finish_reason":"stop_sequence","generated_tokens":1,"seed":null,"input_length":4}}"#;
        let mut s = TgiState::new("p", false);
        s.line(stop.as_bytes()).expect("event");
        assert_eq!(s.finish(), FinishReason::Stop);
    }

    #[test]
    fn non_stream_answers() {
        let body = Bytes::from_static(br#"[{"generated_text":"  Hello there \n"}]"#);
        let c = complete_chunks("p", Some("application/json"), None, &body, "x").expect("text");
        assert_eq!(c, [Chunk::text("Hello there")]);
        let jpeg = Bytes::from_static(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]);
        let c = complete_chunks("p", Some("image/jpeg"), None, &jpeg, "a cat").expect("image");
        assert_eq!(
            c,
            [Chunk::Images(vec![Image {
                data: MediaData::Bytes {
                    mime: "image/jpeg".into(),
                    data: jpeg.clone()
                },
                alt: "a cat".into(),
                needs_auth: false,
            }])]
        );
        let c = complete_chunks("p", Some("application/octet-stream"), None, &jpeg, "a")
            .expect("sniffed");
        assert!(matches!(c[..], [Chunk::Images(_)]));
        let e = complete_chunks(
            "p",
            Some("application/json"),
            None,
            &Bytes::from_static(br#"{"error":"boom"}"#),
            "",
        );
        assert!(matches!(e, Err(Error::Upstream { .. })));
        let e = complete_chunks(
            "p",
            Some("text/html"),
            None,
            &Bytes::from_static(b"<html>"),
            "",
        );
        assert!(matches!(e, Err(Error::Protocol { .. })));
    }
}
