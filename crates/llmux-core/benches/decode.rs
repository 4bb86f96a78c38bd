//! Library micro-benchmarks: stream decoding (SSE against the `eventsource-stream` crate, JSON
//! lines), OpenAI chunk parsing, chunk accumulation and prompt formatting.
//!
//! `cargo bench -p llmux-core --bench decode` (or `cargo xtask bench`, which prints one table).
//! Inputs are built in: an OpenAI-style stream of 2,000 `chat.completion.chunk` events cut into
//! 1,400-byte reads (one TCP segment each), a JSON-lines stream of the same size, a 20-message
//! conversation.

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{Stream, stream};
use llmux_core::decode::jsonl::{LineDecoder, parse_json_line};
use llmux_core::decode::sse::{SseDecoder, sse_events};
use llmux_core::prompt::format_prompt;
use llmux_core::{Accumulator, Chunk, Message, Reasoning, Usage};

/// One upstream chunk as OpenAI (and the peers benchmark's fake upstream) sends it.
fn event_json(i: usize) -> String {
    format!(
        r#"{{"id":"chatcmpl-fake0123456789","object":"chat.completion.chunk","created":1795252291,"model":"fake-model","system_fingerprint":"fp_fake","choices":[{{"index":0,"delta":{{"content":"tok{i} "}},"logprobs":null,"finish_reason":null}}]}}"#
    )
}

/// An SSE body of `n` events plus `[DONE]`.
fn sse_body(n: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        out.push_str("data: ");
        out.push_str(&event_json(i));
        out.push_str("\n\n");
    }
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// A JSON-lines body of `n` lines.
fn jsonl_body(n: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&event_json(i));
        out.push('\n');
    }
    out.into_bytes()
}

/// The body as the reads a socket would deliver.
fn reads(body: &[u8], size: usize) -> Vec<Bytes> {
    body.chunks(size).map(Bytes::copy_from_slice).collect()
}

/// Drains a stream that never waits (all inputs are in memory).
fn drain<S: Stream>(s: S, mut each: impl FnMut(S::Item)) {
    let mut s = pin!(s);
    let mut cx = Context::from_waker(Waker::noop());
    while let Poll::Ready(Some(item)) = s.as_mut().poll_next(&mut cx) {
        each(item);
    }
}

const EVENTS: usize = 2_000;
const READ: usize = 1_400;

fn sse(c: &mut Criterion) {
    let body = sse_body(EVENTS);
    let pieces = reads(&body, READ);
    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("llmux SseDecoder (push + next_event)", |b| {
        b.iter(|| {
            let mut d = SseDecoder::new();
            let mut n = 0usize;
            for p in &pieces {
                d.push(p).ok();
                while let Some(ev) = d.next_event() {
                    n += ev.data.len();
                }
            }
            black_box(n)
        });
    });
    g.bench_function("llmux sse_events (stream)", |b| {
        b.iter(|| {
            let input = stream::iter(pieces.iter().cloned().map(Ok::<_, llmux_core::Error>));
            let mut n = 0usize;
            drain(sse_events(input), |ev| {
                n += ev.map(|e| e.data.len()).unwrap_or(0);
            });
            black_box(n)
        });
    });
    g.bench_function("eventsource-stream 0.2 (stream)", |b| {
        use eventsource_stream::Eventsource;
        b.iter(|| {
            let input = stream::iter(pieces.iter().cloned().map(Ok::<_, std::io::Error>));
            let mut n = 0usize;
            drain(input.eventsource(), |ev| {
                n += ev.map(|e| e.data.len()).unwrap_or(0);
            });
            black_box(n)
        });
    });
    g.finish();
}

fn jsonl(c: &mut Criterion) {
    let body = jsonl_body(EVENTS);
    let pieces = reads(&body, READ);
    let mut g = c.benchmark_group("jsonl");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("LineDecoder (lines only)", |b| {
        b.iter(|| {
            let mut d = LineDecoder::new();
            let mut n = 0usize;
            for p in &pieces {
                d.push(p).ok();
                while let Some(line) = d.next_line() {
                    n += line.len();
                }
            }
            black_box(n)
        });
    });
    g.bench_function("LineDecoder + parse_json_line (Value)", |b| {
        b.iter(|| {
            let mut d = LineDecoder::new();
            let mut n = 0usize;
            for p in &pieces {
                d.push(p).ok();
                while let Some(line) = d.next_line() {
                    if let Ok(Some(v)) = parse_json_line(&line, "bench") {
                        n += v.as_object().map_or(0, serde_json::Map::len);
                    }
                }
            }
            black_box(n)
        });
    });
    g.finish();
}

fn accumulate(c: &mut Criterion) {
    let mut chunks: Vec<Chunk> = (0..EVENTS)
        .map(|i| Chunk::text(format!("tok{i} ")))
        .collect();
    chunks.insert(0, Chunk::Reasoning(Reasoning::token("thinking")));
    chunks.push(Chunk::Usage(Usage::new(10, EVENTS as u64)));
    let mut g = c.benchmark_group("accumulate");
    g.throughput(Throughput::Elements(chunks.len() as u64));
    g.bench_function("Accumulator::push (chunks)", |b| {
        b.iter(|| {
            let mut acc = Accumulator::new();
            for c in &chunks {
                acc.push(c);
            }
            black_box(acc.finish().text.len())
        });
    });
    g.finish();
}

fn prompts(c: &mut Criterion) {
    let mut g = c.benchmark_group("prompt");
    for turns in [2usize, 20] {
        let mut messages = vec![Message::system("You are a helpful assistant.")];
        for i in 0..turns {
            messages.push(Message::user(format!("Question {i}: what is {i} + {i}?")));
            messages.push(Message::assistant(format!("It is {}.", i * 2)));
        }
        messages.push(Message::user("And now?"));
        g.throughput(Throughput::Elements(messages.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("format_prompt (messages)", messages.len()),
            &messages,
            |b, m| b.iter(|| black_box(format_prompt(m, true, false, true).len())),
        );
    }
    g.finish();
}

criterion_group!(benches, sse, jsonl, accumulate, prompts);
criterion_main!(benches);
