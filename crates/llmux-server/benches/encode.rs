//! The gateway without sockets: a chat request through the handler (body parsing, routing,
//! fallback, re-encoding) over an in-process provider that answers with ready chunks.
//!
//! `cargo bench -p llmux-server --bench encode` (or `cargo xtask bench`, which prints one table).
//! - `relay stream`: one streamed answer of 1,000 text chunks plus finish and usage, re-encoded
//!   as `chat.completion.chunk` SSE events (throughput in upstream chunks).
//! - `relay non-stream`: one request whose answer is collected into a `chat.completion` (the
//!   per-request overhead of the handler, without HTTP I/O).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::Full;
use llmux::{ChatRequest, ChatStream, Chunk, FinishReason, Provider, ProviderInfo, Usage};
use llmux_core::Context;
use llmux_server::ServerConfig;
use llmux_server::fuzzing::Handler;

const CHUNKS: usize = 1_000;

/// Answers with `CHUNKS` text deltas (or one, non-streamed), a finish reason and usage.
struct Ready {
    info: ProviderInfo,
}

impl Provider for Ready {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn chat(&self, request: ChatRequest, _ctx: Context) -> ChatStream {
        let n = if request.stream { CHUNKS } else { 1 };
        let text = (0..n).map(|_| Ok(Chunk::text("tok ")));
        let tail = [
            Ok(Chunk::Finish(FinishReason::Stop)),
            Ok(Chunk::Usage(Usage::new(10, n as u64))),
        ];
        Box::pin(futures_util::stream::iter(text.chain(tail)))
    }
}

fn handler() -> Handler {
    let info = ProviderInfo {
        name: "ready".into(),
        working: true,
        supports_stream: true,
        default_model: "fake-model".into(),
        models: vec!["fake-model".into()],
        ..ProviderInfo::default()
    };
    let client = llmux::Client::builder()
        .ignore_env()
        .registrations(Vec::new())
        .with_provider(Arc::new(Ready { info }))
        .build()
        .expect("a client");
    Handler::new(client, ServerConfig::default())
}

fn request(stream: bool) -> http::Request<Full<Bytes>> {
    let body = format!(
        r#"{{"model":"fake-model","stream":{stream},"messages":[{{"role":"user","content":"Say hello"}}]}}"#
    );
    http::Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

fn relay(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let h = handler();
    let mut g = c.benchmark_group("gateway handler");
    g.throughput(Throughput::Elements(CHUNKS as u64));
    g.bench_function("relay stream (upstream chunks)", |b| {
        b.iter(|| {
            let (status, _, body) = rt.block_on(h.respond(request(true), Duration::from_secs(10)));
            assert_eq!(status, 200);
            black_box(body.len())
        });
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("relay non-stream (requests)", |b| {
        b.iter(|| {
            let (status, _, body) = rt.block_on(h.respond(request(false), Duration::from_secs(10)));
            assert_eq!(status, 200);
            black_box(body.len())
        });
    });
    g.finish();
}

criterion_group!(benches, relay);
criterion_main!(benches);
