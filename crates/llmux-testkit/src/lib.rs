//! Fake upstream HTTP servers on `127.0.0.1` for llmux tests and benchmarks.
//!
//! - [`FakeServer`]: an HTTP/1.1 keep-alive server on a free loopback port
//!   that answers from a [`Router`], records every request
//!   ([`RecordedRequest`]), counts connections and stops on drop.
//! - [`Router`]: method + path pattern (`{param}` segments, trailing `*`)
//!   → async handler returning a [`Reply`].
//! - [`Reply`]: status, headers and a [`BodyPlan`] — a full body or chunks
//!   really streamed one by one with delays (SSE, JSON Lines helpers).
//! - [`Fault`]: failures injected into the next N requests of a route
//!   (status codes with `Retry-After`, resets, stalls, disconnects, slow
//!   drip, malformed / truncated / oversized bodies, HTML and Cloudflare pages).
//! - [`openai::FakeOpenAi`]: a fake OpenAI-compatible upstream.
//! - Fakes of every provider's upstream: [`gradio`] (Hugging Face Space,
//!   microsoft-phi-4), [`huggingchat`] (chat-ui), [`hf_inference`] (Hub +
//!   Inference API), [`amigochat`], [`flowgpt`].
//! - [`client`]: a tiny test client, for testing the fakes themselves.
//! - [`procs`]: real helper processes on loopback for tests of several gateway replicas: a
//!   throwaway `redis-server` ([`procs::RedisServer`]) and nginx in front of the replicas with
//!   `deploy/nginx/llmux.conf` ([`procs::Nginx`]).
//!
//! - `chat` (feature `chat`, pulls in llmux-core): the helpers every provider and client test
//!   shares — `drain` a chat stream, `text_of` / `texts` / `providers_of` its chunks,
//!   `registrations` by name.
//!
//! New fakes (one module each) build a [`Router`] from [`Reply`]s, so they
//! compose with faults and with each other via [`Router::merge`]; a chat fake holds a reply
//! script (fixed text or echo, pieces, delay) and gets its `reply` / `echo` / `chunks` /
//! `chunk_delay` builder methods from it.
//!
//! ```
//! use llmux_testkit::{client, FakeServer, Fault, Reply, Router};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), client::ClientError> {
//! let router = Router::new()
//!     .get("/v1/items/{id}", |req| async move {
//!         Reply::json(200, &serde_json::json!({ "id": req.param("id") }))
//!     })
//!     .post("/v1/stream", |_| async {
//!         Reply::sse(["one", "two", "[DONE]"]).chunk_delay(Duration::from_millis(5))
//!     });
//! let server = FakeServer::start(router).await;
//!
//! // The first call is rate limited, the second succeeds.
//! server.inject("/v1/items/{id}", Fault::rate_limited("1"));
//! let first = client::get(&server.url("/v1/items/7")).await?;
//! assert_eq!(first.status, 429);
//! assert_eq!(first.header("retry-after"), Some("1"));
//! let second = client::get(&server.url("/v1/items/7")).await?;
//! assert_eq!(second.json().await?["id"], "7");
//!
//! assert_eq!(server.requests_to("/v1/items/7").len(), 2);
//! # Ok(())
//! # }
//! ```

pub mod amigochat;
#[cfg(feature = "chat")]
pub mod chat;
pub mod client;
pub mod embeddings;
mod fault;
pub mod flowgpt;
pub mod gradio;
pub mod hf_inference;
pub mod huggingchat;
pub mod openai;
pub mod otlp;
#[cfg(unix)]
pub mod procs;
mod reply;
mod server;

// @testkit-fakes (cargo xtask new-provider inserts `pub mod NAME;` lines above this marker)

pub use fault::{CLOUDFLARE_CHALLENGE_HTML, Fault, html_error_page};
pub use reply::{BodyPlan, Chunk, Reply, SseEvent, jsonl_line, sse_event, sse_frame};
pub use server::{FakeServer, Handler, PathPattern, RecordedRequest, Router, closed_port};

/// Re-exported so fakes and tests need not depend on `http` directly.
pub use http::{Method, StatusCode};
