//! The SSE and JSON-lines decoders under arbitrary chunking.

use bytes::Bytes;
use llmux_core::decode::jsonl::{LineDecoder, json_lines, parse_json_line};
use llmux_core::decode::sse::{SseDecoder, SseEvent, sse_events};
use llmux_core::futures_util::{StreamExt, stream};

use super::{block_on, chunks, hash_str};
use crate::Target;
use crate::engine::{bucket, fnv};

/// `SseDecoder` and `sse_events`.
pub const SSE: Target = Target {
    name: "sse",
    about: "SSE decoder: whole vs arbitrary chunking vs byte-by-byte, undrained pushes, small bounds, the sse_events stream",
    run: sse,
    seeds: sse_seeds,
    dictionary: &[
        b"data:",
        b"data: ",
        b"event:",
        b"id:",
        b"id: ",
        b"retry:",
        b"retry: 1500",
        b":",
        b"\n\n",
        b"\r\n",
        b"\r\n\r\n",
        b"\r",
        b"\xef\xbb\xbf",
        b"[DONE]",
        b"{\"choices\":[{\"delta\":{\"content\":\"x\"}}]}",
        b"\0",
    ],
};

fn sse_seeds() -> Vec<Vec<u8>> {
    [
        &b"data: hello\n\n"[..],
        b"event: delta\ndata: a\ndata:  b\n\n: comment\ndata\n\n",
        b"data: one\r\n\r\ndata: two\r\rdata: three\n\n",
        "\u{feff}id: 7\nretry: 1500\ndata: \u{1F600}\u{e9}\n\nid\ndata: z\n\nid: a\0b\ndata: w\n\n".as_bytes(),
        b"data:{\"token\":{\"id\":1,\"text\":\"Hi\",\"special\":false},\"generated_text\":null}\n\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

/// Decodes chunks, draining after each push. Returns the events and whether a push failed.
fn decode(chunks: &[&[u8]], mut d: SseDecoder) -> (Vec<SseEvent>, bool) {
    let mut out = Vec::new();
    for c in chunks {
        if d.push(c).is_err() {
            return (out, true);
        }
        loop {
            match d.try_next_event() {
                Ok(Some(e)) => out.push(e),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    while let Some(e) = d.finish() {
        out.push(e);
    }
    (out, false)
}

fn sse(data: &[u8]) -> u64 {
    let (whole, failed) = decode(&[data], SseDecoder::new());
    assert!(
        !failed,
        "default bounds cannot be exceeded by a 64 KiB input"
    );
    let pieces = chunks(data);
    let (split, _) = decode(&pieces, SseDecoder::new());
    assert_eq!(split, whole, "chunking changed the events");
    if data.len() <= 4096 {
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(decode(&bytes, SseDecoder::new()).0, whole, "byte by byte");
    }
    // Push everything before taking any event.
    let mut d = SseDecoder::new();
    for c in &pieces {
        d.push(c).expect("push");
    }
    let undrained: Vec<SseEvent> = std::iter::from_fn(|| d.finish()).collect();
    assert_eq!(undrained, whole, "undrained");
    // The stream wrapper.
    let body = stream::iter(
        pieces
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let streamed: Vec<SseEvent> = block_on(sse_events(body).map(|e| e.expect("event")).collect());
    assert_eq!(streamed, whole, "sse_events");
    // Output is proportional to the input: data and types come from distinct input bytes.
    let produced: usize = whole
        .iter()
        .map(|e| e.data.len() + e.event.as_ref().map_or(0, String::len))
        .sum();
    // (Invalid UTF-8 bytes become U+FFFD: 3 bytes for 1.)
    assert!(
        produced <= 3 * data.len(),
        "{produced} bytes of events from {} bytes",
        data.len()
    );
    for e in &whole {
        assert!(
            e.id.as_ref()
                .is_none_or(|id| id.len() <= 3 * data.len() && !id.contains('\0'))
        );
    }
    // Tight bounds (on raw bytes; U+FFFD may triple them): errors are allowed, oversized
    // output is not.
    let (small, _) = decode(
        &pieces,
        SseDecoder::new()
            .with_max_line_len(48)
            .with_max_event_size(96),
    );
    for e in &small {
        assert!(
            e.data.len() <= 3 * 96,
            "event of {} bytes over a bound of 96",
            e.data.len()
        );
        assert!(e.event.as_ref().is_none_or(|t| t.len() <= 3 * 48));
    }
    let kinds: Vec<u64> = whole
        .iter()
        .take(8)
        .map(|e| hash_str(e.event_type()))
        .collect();
    fnv(&[
        bucket(whole.len()),
        bucket(small.len()),
        whole.iter().filter(|e| e.id.is_some()).count().min(3) as u64,
        whole.iter().filter(|e| e.retry.is_some()).count().min(3) as u64,
        fnv(&kinds),
    ])
}

/// `LineDecoder`, `parse_json_line` and `json_lines`.
pub const JSONL: Target = Target {
    name: "jsonl",
    about: "JSON-lines decoder: line splitting under arbitrary chunking, NUL padding, json_lines stream",
    run: jsonl,
    seeds: jsonl_seeds,
    dictionary: &[
        b"\n",
        b"\r\n",
        b"\0\0\0\0",
        b"{\"type\":\"stream\",\"token\":\"Hi\"}",
        b"{\"type\":\"finalAnswer\",\"text\":\"x\"}",
        b"{",
        b"}",
        b"\"",
        b"\\u0000",
        b"    ",
        b"[",
        b"]",
        b"null",
    ],
};

fn jsonl_seeds() -> Vec<Vec<u8>> {
    [
        &b"{\"a\":1}\r\n\n  \n{\"b\":\"\xc3\xa9\"}\n\0\0{\"c\":3}\0\0\r\nlast"[..],
        b"{\"token\":{\"id\":1,\"text\":\"Hi\"}}\n{\"generated_text\":\"Hi\"}\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

fn split_lines(chunks: &[&[u8]], mut d: LineDecoder) -> (Vec<Bytes>, bool) {
    let mut out = Vec::new();
    for c in chunks {
        if d.push(c).is_err() {
            return (out, true);
        }
        while let Some(l) = d.next_line() {
            out.push(l);
        }
    }
    while let Some(l) = d.finish() {
        out.push(l);
    }
    (out, false)
}

fn jsonl(data: &[u8]) -> u64 {
    let (whole, failed) = split_lines(&[data], LineDecoder::new());
    assert!(!failed);
    let pieces = chunks(data);
    let (split, _) = split_lines(&pieces, LineDecoder::new());
    assert_eq!(split, whole, "chunking changed the lines");
    let total: usize = whole.iter().map(Bytes::len).sum();
    assert!(total <= data.len());
    for l in &whole {
        assert!(!l.contains(&b'\n'), "a line holds a newline");
    }
    let mut values = Vec::new();
    let mut first_error = false;
    for l in &whole {
        match parse_json_line(l, "p") {
            Ok(Some(v)) => values.push(v),
            Ok(None) => {}
            Err(_) => {
                first_error = true;
                break;
            }
        }
    }
    let body = stream::iter(
        pieces
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let streamed: Vec<_> = block_on(json_lines(body, "p").collect::<Vec<_>>());
    let ok: Vec<_> = streamed
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .cloned()
        .collect();
    assert_eq!(ok, values, "json_lines disagrees with parse_json_line");
    assert_eq!(streamed.iter().any(Result::is_err), first_error);
    let (small, _) = split_lines(&pieces, LineDecoder::new().with_max_line_len(16));
    assert!(small.iter().all(|l| l.len() <= 16));
    fnv(&[
        bucket(whole.len()),
        bucket(values.len()),
        u64::from(first_error),
        bucket(small.len()),
    ])
}
