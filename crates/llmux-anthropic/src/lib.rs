//! The Anthropic Messages API wire model of [llmux](https://github.com/llmux/llmux): request
//! types ([`wire`]), their translation into an llmux [`llmux_core::ChatRequest`]
//! ([`convert`]), the answer ([`answer`]), the streaming events ([`stream`]) and errors
//! ([`error`]), shaped as Anthropic's API and official SDKs define them. The gateway
//! (`llmux serve`) uses it for `POST /v1/messages`.
//!
//! ```
//! use llmux_anthropic::{answer, convert, stream, wire};
//!
//! let body = r#"{"model": "claude-sonnet-4-5", "max_tokens": 256,
//!     "system": "Be brief.",
//!     "messages": [{"role": "user", "content": "Hello"}]}"#;
//! let req: wire::MessagesRequest = serde_json::from_str(body).unwrap();
//! let (chat, opts) = convert::into_chat_request(req, false).unwrap();
//! assert_eq!(chat.messages.len(), 2); // the system prompt, then the user turn
//! assert_eq!(chat.max_tokens, Some(256));
//! assert!(!opts.stream);
//!
//! // streaming the answer "Hi!" as Anthropic's events
//! let mut out = Vec::new();
//! let mut w = stream::EventWriter::new();
//! let usage = answer::Usage { input_tokens: 9, ..Default::default() };
//! w.start(&mut out, &answer::MessageOut::new(answer::message_id(), "claude-sonnet-4-5".into(), usage.clone()));
//! w.text(&mut out, "Hi!");
//! w.finish(&mut out, answer::StopReason::EndTurn, None, &answer::Usage { output_tokens: 2, ..usage }, false);
//! let sse = String::from_utf8(out).unwrap();
//! let names: Vec<&str> = sse.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
//! assert_eq!(names, ["message_start", "ping", "content_block_start", "content_block_delta",
//!     "content_block_stop", "message_delta", "message_stop"]);
//! ```

pub mod answer;
pub mod convert;
pub mod error;
pub mod stream;
pub mod wire;

pub use convert::{Options, WireError, into_chat_request};
pub use error::{ErrorBody, error_type};
pub use wire::MessagesRequest;
