//! Incremental WHATWG Server-Sent Events decoder.
//!
//! Follows the HTML "event stream interpretation" rules: lines end with CRLF, LF or CR; a leading
//! BOM is ignored; `:` lines are comments; `field: value` loses one leading space of the value; a
//! line without a colon is a field with an empty value; `data` lines accumulate; a blank line
//! dispatches the event (nothing is dispatched when no `data` was seen). Bytes are decoded as UTF-8
//! (lossily) only once a whole line is assembled, so chunks may split multi-byte characters.
//!
//! ```
//! use llmux_core::decode::sse::SseDecoder;
//! let mut d = SseDecoder::new();
//! d.push(b"event: delta\ndata: hel").unwrap();
//! d.push(b"lo\r\n\r\n").unwrap();
//! let ev = d.next_event().unwrap();
//! assert_eq!((ev.event.as_deref(), ev.data.as_str()), (Some("delta"), "hello"));
//! ```

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{DEFAULT_MAX_SIZE, excerpt};
use crate::error::{Error, Result};

/// One dispatched server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type (`event:` field); `None` means the default type `message`.
    pub event: Option<String>,
    /// The data: the `data:` lines joined with `"\n"`.
    pub data: String,
    /// The last event ID at dispatch time (it persists across events, as the spec says);
    /// `None` when never set or set to the empty string.
    pub id: Option<String>,
    /// The `retry:` value (milliseconds) given within this event's lines, if any.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// The event type, with the default `message` filled in.
    pub fn event_type(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }
}

/// Incremental SSE decoder: [`push`](SseDecoder::push) bytes, then drain
/// [`next_event`](SseDecoder::next_event) (or [`try_next_event`](SseDecoder::try_next_event)).
///
/// Pushed bytes are buffered once; lines are parsed lazily when events are taken, so pushing a
/// large body at once costs no more memory than the body itself.
#[derive(Debug, Clone)]
pub struct SseDecoder {
    /// Buffered input; `buf[pos..]` is not parsed yet.
    buf: Vec<u8>,
    /// Start of the unparsed input.
    pos: usize,
    /// `buf[pos..scanned]` is known to hold no line terminator.
    scanned: usize,
    /// Length of the unterminated line at the end of `buf`, when known.
    tail_len: Option<usize>,
    /// A line ended with a CR at the end of the buffer: a LF right after it belongs to it.
    pending_cr: bool,
    /// A limit error raised by [`SseDecoder::next_event`], reported by the next `push`.
    error: Option<Error>,
    builder: EventBuilder,
    max_line_len: usize,
}

/// The event being assembled (the spec's buffers).
#[derive(Debug, Clone)]
struct EventBuilder {
    /// No line has been parsed yet (a BOM may still be stripped).
    at_start: bool,
    /// The data buffer.
    data: Vec<u8>,
    /// The event type buffer.
    event_type: Option<String>,
    /// The last event ID buffer.
    last_id: Option<String>,
    /// `retry` seen in the current event's lines.
    retry: Option<u64>,
    /// Last `retry` value seen on the stream.
    reconnection_time: Option<u64>,
    max_event_size: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the default bounds ([`DEFAULT_MAX_SIZE`] for a line and for an event's data).
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            tail_len: None,
            pending_cr: false,
            error: None,
            builder: EventBuilder {
                at_start: true,
                data: Vec::new(),
                event_type: None,
                last_id: None,
                retry: None,
                reconnection_time: None,
                max_event_size: DEFAULT_MAX_SIZE,
            },
            max_line_len: DEFAULT_MAX_SIZE,
        }
    }

    /// Sets the longest accepted line, in bytes (without its terminator).
    pub fn with_max_line_len(mut self, max: usize) -> Self {
        self.max_line_len = max;
        self
    }

    /// Sets the largest accepted data of one event, in bytes.
    pub fn with_max_event_size(mut self, max: usize) -> Self {
        self.builder.max_event_size = max;
        self
    }

    /// The last `retry:` value (milliseconds) seen on the stream, even in an event never dispatched.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.builder.reconnection_time
    }

    /// Feeds bytes, split anywhere. Complete events become available from
    /// [`next_event`](SseDecoder::next_event).
    ///
    /// Fails with a protocol error ("SSE event too large") when the unterminated last line exceeds
    /// its bound, or when [`next_event`](SseDecoder::next_event) hit a bound since the last push;
    /// the decoder's buffered input and partial event are then discarded.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        if let Some(err) = self.error.take() {
            return Err(err);
        }
        if chunk.is_empty() {
            return Ok(());
        }
        // Bound the line still unterminated after this chunk. It is only worth locating when all
        // unparsed input together exceeds the bound; from then on its length is kept up to date.
        let unparsed = self
            .buf
            .len()
            .saturating_sub(self.pos)
            .saturating_add(chunk.len());
        if unparsed <= self.max_line_len {
            self.tail_len = None;
        } else {
            let tail = match super::rfind2(chunk, b'\n', b'\r') {
                Some(i) => chunk.len() - i - 1,
                None => {
                    let before = match self.tail_len {
                        Some(t) => t,
                        None => {
                            let rest = self.buf.get(self.pos..).unwrap_or_default();
                            rest.len() - super::rfind2(rest, b'\n', b'\r').map_or(0, |i| i + 1)
                        }
                    };
                    before.saturating_add(chunk.len())
                }
            };
            self.tail_len = Some(tail);
            if tail > self.max_line_len {
                let start = chunk.len().saturating_sub(tail);
                let err = too_large(chunk.get(start..).unwrap_or(chunk));
                self.reset();
                return Err(err);
            }
        }
        // Compact when the parsed prefix is at least as large as what remains (amortised O(1)).
        let pos = self.pos.min(self.buf.len());
        if pos > 0 && pos >= self.buf.len() - pos {
            self.buf.copy_within(pos.., 0);
            self.buf.truncate(self.buf.len() - pos);
            self.scanned = self.scanned.saturating_sub(pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// Takes the next complete event, if any. A bound exceeded while parsing is reported by the next
    /// [`push`](SseDecoder::push); use [`try_next_event`](SseDecoder::try_next_event) to get it here.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        match self.try_next_event() {
            Ok(event) => event,
            Err(err) => {
                self.error = Some(err);
                None
            }
        }
    }

    /// Takes the next complete event, if any, or the protocol error of a line or an event exceeding
    /// its bound (the buffered input and partial event are then discarded).
    pub fn try_next_event(&mut self) -> Result<Option<SseEvent>> {
        let result = self.parse_next();
        if result.is_err() {
            self.reset();
        }
        result
    }

    fn parse_next(&mut self) -> Result<Option<SseEvent>> {
        loop {
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            if self.pending_cr {
                match rest.first() {
                    None => return Ok(None),
                    Some(&b) => {
                        self.pending_cr = false;
                        if b == b'\n' {
                            self.pos += 1;
                            self.scanned = self.scanned.max(self.pos);
                            continue;
                        }
                    }
                }
            }
            let skip = self.scanned.saturating_sub(self.pos);
            let Some(i) = rest.get(skip..).and_then(find_eol).map(|i| i + skip) else {
                self.scanned = self.buf.len();
                return Ok(None);
            };
            let (line, terminator) = rest.split_at(i);
            if line.len() > self.max_line_len {
                return Err(too_large(line));
            }
            let consumed = match terminator {
                [b'\r', b'\n', ..] => i + 2,
                [b'\r'] => {
                    self.pending_cr = true;
                    i + 1
                }
                _ => i + 1,
            };
            let event = self.builder.process_line(line)?;
            self.pos += consumed;
            self.scanned = self.pos;
            if event.is_some() {
                return Ok(event);
            }
        }
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.scanned = 0;
        self.tail_len = None;
        self.pending_cr = false;
        self.builder.reset_event();
    }

    /// Ends the stream: returns the complete events still buffered, one per call, then `None`.
    ///
    /// As the spec requires, an event not terminated by a blank line (and an incomplete last line)
    /// is **discarded**: `finish` never produces an event [`next_event`](SseDecoder::next_event)
    /// would not; it exists for symmetry with [`crate::decode::jsonl::LineDecoder::finish`].
    pub fn finish(&mut self) -> Option<SseEvent> {
        let event = self.next_event();
        if event.is_none() {
            self.reset();
        }
        event
    }
}

impl EventBuilder {
    /// Interprets one line; returns the event a blank line dispatches.
    fn process_line(&mut self, mut line: &[u8]) -> Result<Option<SseEvent>> {
        if self.at_start {
            self.at_start = false;
            if let Some(rest) = line.strip_prefix(b"\xEF\xBB\xBF") {
                line = rest;
            }
        }
        let (name, value) = match line {
            [] => return Ok(self.dispatch()),
            [b':', ..] => return Ok(None),
            _ => match line.iter().position(|&b| b == b':') {
                Some(i) => {
                    let (name, rest) = line.split_at(i);
                    let value = rest.get(1..).unwrap_or_default();
                    (name, value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &[][..]),
            },
        };
        match name {
            b"data" => {
                let new_len = self
                    .data
                    .len()
                    .saturating_add(value.len())
                    .saturating_add(1);
                if new_len > self.max_event_size {
                    return Err(too_large(&self.data));
                }
                self.data.reserve(value.len() + 1);
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => self.event_type = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                self.last_id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // All ASCII digits, so valid UTF-8; only overflow can fail.
                if let Some(ms) = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    self.retry = Some(ms);
                    self.reconnection_time = Some(ms);
                }
            }
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let retry = self.retry.take();
        let event_type = self.event_type.take();
        if self.data.is_empty() {
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the data buffer always ends with the "\n" of its last line
        let data = match String::from_utf8(data) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Some(SseEvent {
            event: event_type.filter(|t| !t.is_empty()),
            data,
            id: self.last_id.clone().filter(|id| !id.is_empty()),
            retry,
        })
    }

    fn reset_event(&mut self) {
        self.data.clear();
        self.event_type = None;
        self.retry = None;
    }
}

fn too_large(data: &[u8]) -> Error {
    Error::protocol("", "SSE event too large", &excerpt(data))
}

/// Position of the first CR or LF in `hay`.
fn find_eol(hay: &[u8]) -> Option<usize> {
    super::find2(hay, b'\n', b'\r')
}

/// Decodes a byte stream into server-sent events. The stream ends after the first error (a body
/// error is passed through; an oversized event yields a protocol error). An incomplete event at the
/// end of the body is discarded (see [`SseDecoder::finish`]).
pub fn sse_events<S>(body: S) -> impl Stream<Item = Result<SseEvent>> + Send
where
    S: Stream<Item = Result<Bytes>> + Send,
{
    async_stream::try_stream! {
        let mut body = std::pin::pin!(body);
        let mut decoder = SseDecoder::new();
        while let Some(chunk) = body.next().await {
            decoder.push(&chunk?)?;
            while let Some(event) = decoder.try_next_event()? {
                yield event;
            }
        }
        decoder.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(event: Option<&str>, data: &str, id: Option<&str>, retry: Option<u64>) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
            id: id.map(str::to_owned),
            retry,
        }
    }

    fn decode_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c).expect("push");
            while let Some(e) = d.next_event() {
                out.push(e);
            }
        }
        while let Some(e) = d.finish() {
            out.push(e);
        }
        out
    }

    /// Pushes every chunk before taking any event.
    fn decode_undrained(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        for c in chunks {
            d.push(c).expect("push");
        }
        std::iter::from_fn(|| d.finish()).collect()
    }

    /// Decodes `input` whole, then split at every single point, then byte by byte; all must agree.
    fn check_all_splits(input: &[u8], expected: &[SseEvent]) {
        assert_eq!(decode_chunks(&[input]), expected, "whole input");
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(decode_chunks(&[a, b]), expected, "split at {i}");
            assert_eq!(
                decode_undrained(&[a, b]),
                expected,
                "undrained split at {i}"
            );
            for j in i..=input.len() {
                let (b1, c) = b.split_at(j - i);
                assert_eq!(decode_chunks(&[a, b1, c]), expected, "split at {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_chunks(&bytes), expected, "byte by byte");
    }

    #[test]
    fn basic_events_all_splits() {
        let input = b"data: hello\n\nevent: delta\ndata: a\ndata:  b\n\n: comment\ndata\n\n";
        check_all_splits(
            input,
            &[
                ev(None, "hello", None, None),
                ev(Some("delta"), "a\n b", None, None),
                ev(None, "", None, None),
            ],
        );
    }

    #[test]
    fn crlf_and_cr_all_splits() {
        let input = b"data: one\r\n\r\ndata: two\r\rdata: three\n\ndata:x\r\ndata:y\r\n\r\n";
        check_all_splits(
            input,
            &[
                ev(None, "one", None, None),
                ev(None, "two", None, None),
                ev(None, "three", None, None),
                ev(None, "x\ny", None, None),
            ],
        );
        // CR-only stream.
        check_all_splits(
            b"event: e\rdata: a\r\rdata: b\r\r",
            &[ev(Some("e"), "a", None, None), ev(None, "b", None, None)],
        );
    }

    #[test]
    fn id_retry_bom_all_splits() {
        let input = "\u{feff}id: 7\nretry: 1500\ndata: 😀é\n\nretry: 12a\ndata: next\n\nid\ndata: z\n\nid: a\0b\ndata: w\n\n";
        check_all_splits(
            input.as_bytes(),
            &[
                ev(None, "😀é", Some("7"), Some(1500)),
                ev(None, "next", Some("7"), None),
                ev(None, "z", None, None),
                ev(None, "w", None, None),
            ],
        );
    }

    #[test]
    fn openai_style_stream() {
        let input = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n";
        check_all_splits(
            input,
            &[
                ev(
                    None,
                    "{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}",
                    None,
                    None,
                ),
                ev(None, "[DONE]", None, None),
            ],
        );
    }

    #[test]
    fn field_parsing_details() {
        // No space after the colon; two spaces keep one; unknown fields ignored; colon in value.
        let out = decode_chunks(&[b"data:a\ndata:  b\nfoo: bar\ndata: c:d\nevent:\n\n"]);
        assert_eq!(out, [ev(None, "a\n b\nc:d", None, None)]);
        // A blank line with no data resets the event type.
        let out = decode_chunks(&[b"event: x\n\ndata: y\n\n"]);
        assert_eq!(out, [ev(None, "y", None, None)]);
        // Empty data line then blank: event with empty data; "data:" twice → "\n".
        let out = decode_chunks(&[b"data:\ndata:\n\n"]);
        assert_eq!(out, [ev(None, "\n", None, None)]);
        // BOM only at the very start; a second BOM makes an unknown field.
        let out = decode_chunks(&["\u{feff}\u{feff}data: a\n\ndata: b\n\n".as_bytes()]);
        assert_eq!(out, [ev(None, "b", None, None)]);
        // Retry overflow is ignored; reconnection time remembered even without dispatch.
        let mut d = SseDecoder::new();
        d.push(b"retry: 99999999999999999999999\n\nretry: 5\n\n")
            .expect("push");
        assert_eq!(d.next_event(), None);
        assert_eq!(d.reconnection_time(), Some(5));
        // Event type default.
        assert_eq!(ev(None, "", None, None).event_type(), "message");
    }

    #[test]
    fn incomplete_event_discarded_at_eof() {
        assert_eq!(
            decode_chunks(&[b"data: a\n\ndata: b\n"]),
            [ev(None, "a", None, None)]
        );
        assert_eq!(decode_chunks(&[b"data: a"]), []);
        let mut d = SseDecoder::new();
        d.push(b"data: x\n\ndata: y").expect("push");
        assert_eq!(d.finish(), Some(ev(None, "x", None, None)));
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let out = decode_chunks(&[b"data: a\xffb\xf0\x9f\n\n"]);
        assert_eq!(out, [ev(None, "a\u{fffd}b\u{fffd}", None, None)]);
    }

    #[test]
    fn bounds() {
        let mut d = SseDecoder::new().with_max_line_len(10);
        assert!(d.push(b"data: 0123").is_ok());
        let err = d.push(b"456789").expect_err("line too long");
        assert!(err.to_string().contains("SSE event too large"), "{err}");
        // A complete line too long is reported when parsed...
        let mut d = SseDecoder::new().with_max_line_len(10);
        assert!(d.push(b"data: 0123456789\n").is_ok());
        assert!(d.try_next_event().is_err());
        // ...or, through next_event, by the next push.
        let mut d = SseDecoder::new().with_max_event_size(8);
        assert!(d.push(b"data: 0123\ndata: 4567\n\n").is_ok());
        assert_eq!(d.next_event(), None);
        assert!(d.push(b"").is_err());
        // Undrained short events beyond the bound are fine, even when a chunk splits a line...
        let mut e = SseDecoder::new().with_max_line_len(16);
        for _ in 0..10 {
            e.push(b"data: abc").expect("short line start");
            e.push(b"def\n\n").expect("short line end");
        }
        assert_eq!(std::iter::from_fn(|| e.next_event()).count(), 10);
        // ...but a long unterminated line is caught while pushing, however it is split.
        let mut e = SseDecoder::new().with_max_line_len(16);
        e.push(b"data: 1\n\ndata: 2\n\ndata: 3\n\ndata:")
            .expect("fits");
        let pushes: Vec<bool> = (0..8).map(|_| e.push(b"xxx").is_ok()).collect();
        assert_eq!(pushes, [true, true, true, false, true, true, true, true]);
        // After an error the decoder is usable again from a clean state.
        assert!(d.push(b"data: ok\n\n").is_ok());
        assert_eq!(d.next_event(), Some(ev(None, "ok", None, None)));
    }

    #[tokio::test]
    async fn stream_adapter() {
        let chunks: Vec<Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"data: a\n")),
            Ok(Bytes::from_static(b"\ndata: b\n\n")),
            Err(Error::protocol("p", "boom", "")),
            Ok(Bytes::from_static(b"data: c\n\n")),
        ];
        let out: Vec<Result<SseEvent>> = sse_events(futures_util::stream::iter(chunks))
            .collect()
            .await;
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].as_ref().expect("a").data, "a");
        assert_eq!(out[1].as_ref().expect("b").data, "b");
        assert!(out[2].is_err());
    }

    #[derive(Debug, Clone)]
    struct GenEvent {
        event: Option<String>,
        data_lines: Vec<String>,
        id: Option<String>,
        comment: bool,
    }

    fn gen_event() -> impl Strategy<Value = GenEvent> {
        let text = "[a-z é😀:\u{feff} ]{0,12}";
        (
            proptest::option::of("[a-z]{1,6}"),
            proptest::collection::vec(text, 1..4),
            proptest::option::of("[0-9a-z]{1,4}"),
            any::<bool>(),
        )
            .prop_map(|(event, data_lines, id, comment)| GenEvent {
                event,
                data_lines,
                id,
                comment,
            })
    }

    fn render(events: &[GenEvent], eol: &str) -> (Vec<u8>, Vec<SseEvent>) {
        let mut out = String::new();
        let mut expected = Vec::new();
        let mut last_id: Option<String> = None;
        for e in events {
            if e.comment {
                out.push_str(&format!(": note{eol}"));
            }
            if let Some(t) = &e.event {
                out.push_str(&format!("event: {t}{eol}"));
            }
            if let Some(id) = &e.id {
                out.push_str(&format!("id: {id}{eol}"));
                last_id = Some(id.clone());
            }
            for line in &e.data_lines {
                out.push_str(&format!("data: {line}{eol}"));
            }
            out.push_str(eol);
            expected.push(SseEvent {
                event: e.event.clone(),
                data: e.data_lines.join("\n"),
                id: last_id.clone(),
                retry: None,
            });
        }
        (out.into_bytes(), expected)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn any_chunking_gives_same_events(
            events in proptest::collection::vec(gen_event(), 0..6),
            eol in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let (input, expected) = render(&events, eol);
            let whole = decode_chunks(&[&input]);
            prop_assert_eq!(&whole, &expected);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for p in points {
                chunks.push(&input[prev..p]);
                prev = p;
            }
            chunks.push(&input[prev..]);
            prop_assert_eq!(&decode_chunks(&chunks), &expected);
            prop_assert_eq!(decode_undrained(&chunks), expected);
        }

        #[test]
        fn never_panics(
            data in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), Just(0u8), any::<u8>()],
                0..300,
            ),
            cut in any::<prop::sample::Index>(),
        ) {
            let (a, b) = data.split_at(cut.index(data.len() + 1));
            let mut d = SseDecoder::new().with_max_line_len(64).with_max_event_size(128);
            let _ = d.push(a);
            let _ = d.push(b);
            while d.next_event().is_some() {}
            let _ = d.finish();
        }
    }
}
