//! Incremental decoders for streamed response bodies.
//!
//! * [`sse`]: WHATWG Server-Sent Events (`text/event-stream`), as used by OpenAI-style APIs.
//! * [`jsonl`]: newline-delimited lines and JSON lines (HuggingChat, Hugging Face inference).
//!
//! Both accept bytes split at any point (mid-line, mid-CRLF, mid UTF-8 sequence), bound the memory a
//! malicious upstream can make them use, and never panic on any input.

pub mod jsonl;
pub mod sse;

/// Default bound of one line, and of one event's data, in bytes (16 MiB).
pub const DEFAULT_MAX_SIZE: usize = 16 * 1024 * 1024;

/// A lossily decoded excerpt of `bytes` for error snippets (at most ~160 bytes are decoded).
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let head = bytes.get(..160).unwrap_or(bytes);
    String::from_utf8_lossy(head).into_owned()
}
