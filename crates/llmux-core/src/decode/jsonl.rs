//! Newline-delimited lines and JSON lines.
//!
//! Lines end with `\n`; a trailing `\r` is stripped. Chunks may split lines anywhere; the lines are
//! handed out as zero-copy [`Bytes`] slices of the buffered input.
//!
//! ```
//! use llmux_core::decode::jsonl::LineDecoder;
//! let mut d = LineDecoder::new();
//! d.push(b"{\"a\":1}\r\n{\"b\"").unwrap();
//! d.push(b":2}").unwrap();
//! assert_eq!(&d.next_line().unwrap()[..], b"{\"a\":1}");
//! assert_eq!(d.next_line(), None);
//! assert_eq!(&d.finish().unwrap()[..], b"{\"b\":2}");
//! ```

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::{DEFAULT_MAX_SIZE, excerpt};
use crate::error::{Error, Result};

/// Incremental line splitter with a bounded line length.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    /// Bytes after the last `\n` seen (the incomplete line).
    buf: BytesMut,
    /// Complete lines not yet taken.
    lines: VecDeque<Bytes>,
    max_line_len: usize,
}

impl Default for LineDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl LineDecoder {
    /// A decoder accepting lines up to [`DEFAULT_MAX_SIZE`] bytes.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::new(),
            lines: VecDeque::new(),
            max_line_len: DEFAULT_MAX_SIZE,
        }
    }

    /// Sets the longest accepted line, in bytes (without its terminator).
    pub fn with_max_line_len(mut self, max: usize) -> Self {
        self.max_line_len = max;
        self
    }

    /// Feeds bytes, split anywhere. Fails with a protocol error ("line too long") when a line
    /// exceeds the bound; the incomplete line is then discarded.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        let mut scan_from = self.buf.len();
        self.buf.extend_from_slice(chunk);
        while let Some(i) = self
            .buf
            .get(scan_from..)
            .and_then(|rest| super::find2(rest, b'\n', b'\n'))
        {
            let line = self.buf.split_to(scan_from + i + 1).freeze();
            let line = strip_eol(line);
            if line.len() > self.max_line_len {
                self.buf.clear();
                return Err(too_long(&line));
            }
            self.lines.push_back(line);
            scan_from = 0;
        }
        // A "\r" at the very end may still be followed by "\n": it does not count.
        let pending = match self.buf.last() {
            Some(b'\r') => self.buf.len() - 1,
            _ => self.buf.len(),
        };
        if pending > self.max_line_len {
            let err = too_long(&self.buf);
            self.buf.clear();
            return Err(err);
        }
        Ok(())
    }

    /// Takes the next complete line (without `\n` and a trailing `\r`).
    pub fn next_line(&mut self) -> Option<Bytes> {
        self.lines.pop_front()
    }

    /// Ends the input: the final unterminated line, when non-empty, becomes the last line. Returns
    /// the next line not yet taken (so it can be called in a loop until `None`).
    pub fn finish(&mut self) -> Option<Bytes> {
        if !self.buf.is_empty() {
            let tail = strip_cr(self.buf.split().freeze());
            if !tail.is_empty() && tail.len() <= self.max_line_len {
                self.lines.push_back(tail);
            }
        }
        self.lines.pop_front()
    }
}

/// Removes the `\n` (and a `\r` before it) ending `line`.
fn strip_eol(line: Bytes) -> Bytes {
    let end = line.len().saturating_sub(1);
    strip_cr(line.slice(..end))
}

fn strip_cr(line: Bytes) -> Bytes {
    match line.last() {
        Some(b'\r') => line.slice(..line.len() - 1),
        _ => line,
    }
}

fn too_long(line: &[u8]) -> Error {
    Error::protocol("", "line too long", &excerpt(line))
}

/// Splits a byte stream into lines (without terminators), including empty lines and the last,
/// unterminated one. The stream ends after the first error.
pub fn lines<S>(body: S) -> impl Stream<Item = Result<Bytes>> + Send
where
    S: Stream<Item = Result<Bytes>> + Send,
{
    async_stream::try_stream! {
        let mut body = std::pin::pin!(body);
        let mut decoder = LineDecoder::new();
        while let Some(chunk) = body.next().await {
            decoder.push(&chunk?)?;
            while let Some(line) = decoder.next_line() {
                yield line;
            }
        }
        while let Some(line) = decoder.finish() {
            yield line;
        }
    }
}

/// Parses one JSON line. Returns `Ok(None)` for lines that are empty or hold only whitespace and
/// NUL bytes (HuggingChat pads its stream with NULs); NULs and whitespace around the JSON are
/// ignored. Invalid JSON is a protocol error ("malformed JSON line") naming `provider`.
pub fn parse_json_line(line: &[u8], provider: &str) -> Result<Option<serde_json::Value>> {
    let pad = |b: &u8| *b == 0 || b.is_ascii_whitespace();
    let start = line.iter().position(|b| !pad(b));
    let end = line.iter().rposition(|b| !pad(b));
    let (Some(start), Some(end)) = (start, end) else {
        return Ok(None);
    };
    let trimmed = line.get(start..=end).unwrap_or_default();
    serde_json::from_slice(trimmed)
        .map(Some)
        .map_err(|_| Error::protocol(provider, "malformed JSON line", &excerpt(trimmed)))
}

/// Decodes a byte stream of JSON lines into values, skipping blank and NUL-padded lines (see
/// [`parse_json_line`]). Errors name `provider`; the stream ends after the first error.
pub fn json_lines<S>(
    body: S,
    provider: &str,
) -> impl Stream<Item = Result<serde_json::Value>> + Send + use<S>
where
    S: Stream<Item = Result<Bytes>> + Send,
{
    let provider = provider.to_owned();
    async_stream::try_stream! {
        let mut lines = std::pin::pin!(lines(body));
        while let Some(line) = lines.next().await {
            let line = line.map_err(|e| e.with_provider(&provider))?;
            if let Some(value) = parse_json_line(&line, &provider)? {
                yield value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn split_lines(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut d = LineDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c).expect("push");
            while let Some(l) = d.next_line() {
                out.push(l.to_vec());
            }
        }
        while let Some(l) = d.finish() {
            out.push(l.to_vec());
        }
        out
    }

    #[test]
    fn every_split_point() {
        let input = b"{\"a\":1}\r\n\n  \n{\"b\":\"\xc3\xa9\"}\n\0\0{\"c\":3}\0\0\r\nlast";
        let expected: Vec<Vec<u8>> = vec![
            b"{\"a\":1}".to_vec(),
            b"".to_vec(),
            b"  ".to_vec(),
            b"{\"b\":\"\xc3\xa9\"}".to_vec(),
            b"\0\0{\"c\":3}\0\0".to_vec(),
            b"last".to_vec(),
        ];
        assert_eq!(split_lines(&[input]), expected);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(split_lines(&[a, b]), expected, "split at {i}");
            for j in i..=input.len() {
                let (b1, c) = b.split_at(j - i);
                assert_eq!(split_lines(&[a, b1, c]), expected, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn finish_behaviour() {
        assert_eq!(split_lines(&[b"a\n"]), vec![b"a".to_vec()]);
        assert_eq!(
            split_lines(&[b"a\nb\r"]),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(split_lines(&[b""]), Vec::<Vec<u8>>::new());
        // finish before draining still yields every line in order.
        let mut d = LineDecoder::new();
        d.push(b"x\ny").expect("push");
        assert_eq!(d.finish().as_deref(), Some(&b"x"[..]));
        assert_eq!(d.finish().as_deref(), Some(&b"y"[..]));
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn bounds() {
        let mut d = LineDecoder::new().with_max_line_len(4);
        assert!(d.push(b"abcd\r\n").is_ok());
        assert!(d.push(b"abcd\r").is_ok());
        assert!(d.push(b"\n").is_ok());
        assert!(d.push(b"abcde").is_err());
        let mut d = LineDecoder::new().with_max_line_len(4);
        let err = d.push(b"ok\ntoolong\n").expect_err("too long");
        assert!(err.to_string().contains("line too long"), "{err}");
        assert_eq!(d.next_line().as_deref(), Some(&b"ok"[..]));
    }

    #[test]
    fn json_line_parsing() {
        assert_eq!(parse_json_line(b"", "p").expect("ok"), None);
        assert_eq!(parse_json_line(b" \t\0\0 ", "p").expect("ok"), None);
        assert_eq!(
            parse_json_line(b"\0\0 {\"type\":\"stream\",\"token\":\"Hi\"}\0\0", "p").expect("ok"),
            Some(json!({"type":"stream","token":"Hi"}))
        );
        let err = parse_json_line(b"{not json", "HuggingChat").expect_err("bad");
        assert_eq!(
            err.to_string(),
            "HuggingChat: protocol error: malformed JSON line (near: \"{not json\")"
        );
    }

    #[tokio::test]
    async fn json_stream() {
        let chunks: Vec<Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"{\"a\":1}\n\0\0\0\0\n{\"b\"")),
            Ok(Bytes::from_static(b":2}\n\n")),
            Ok(Bytes::from_static(b"  {\"c\":3}  ")),
        ];
        let provider = String::from("P");
        let stream = json_lines(futures_util::stream::iter(chunks), &provider);
        drop(provider);
        let out: Vec<serde_json::Value> = stream.map(|r| r.expect("value")).collect().await;
        assert_eq!(out, vec![json!({"a":1}), json!({"b":2}), json!({"c":3})]);

        let chunks: Vec<Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"{\"a\":1}\n")),
            Ok(Bytes::from_static(b"oops\n{\"b\":2}\n")),
        ];
        let out: Vec<Result<serde_json::Value>> =
            json_lines(futures_util::stream::iter(chunks), "P")
                .collect()
                .await;
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[1], Err(Error::Protocol { provider, .. }) if provider == "P"));

        let chunks: Vec<Result<Bytes>> = vec![Ok(Bytes::from_static(b"a\n\nb"))];
        let out: Vec<Bytes> = lines(futures_util::stream::iter(chunks))
            .map(|r| r.expect("line"))
            .collect()
            .await;
        assert_eq!(out, vec![Bytes::from("a"), Bytes::new(), Bytes::from("b")]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn never_panics_and_chunking_is_irrelevant(
            data in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(0u8), Just(b'{'), any::<u8>()],
                0..300,
            ),
            cut in any::<prop::sample::Index>(),
        ) {
            let (a, b) = data.split_at(cut.index(data.len() + 1));
            prop_assert_eq!(split_lines(&[a, b]), split_lines(&[&data]));
            for line in split_lines(&[&data]) {
                let _ = parse_json_line(&line, "p");
            }
            let mut d = LineDecoder::new().with_max_line_len(16);
            let _ = d.push(a);
            let _ = d.push(b);
            while d.next_line().is_some() {}
            while d.finish().is_some() {}
        }
    }
}
