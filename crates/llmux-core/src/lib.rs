//! Core of [llmux](https://github.com/llmux/llmux): the [`Provider`] trait, request / chunk /
//! error types, the `inventory` registry, and the helpers every provider shares (HTTP client,
//! stream decoders, prompt and media helpers).
//!
//! A provider is mostly translation: it turns a [`ChatRequest`] into upstream HTTP calls made
//! through [`http::HttpClient`] and the upstream's bytes into [`Chunk`]s.
//!
//! ```
//! use std::sync::Arc;
//! use llmux_core::{ChatRequest, ChatStream, Chunk, Context, Provider, ProviderConfig, ProviderInfo};
//!
//! struct Echo { info: ProviderInfo }
//!
//! impl Provider for Echo {
//!     fn info(&self) -> &ProviderInfo { &self.info }
//!     fn chat(&self, request: ChatRequest, _ctx: Context) -> ChatStream {
//!         Box::pin(async_stream::try_stream! {
//!             yield Chunk::text(llmux_core::prompt::last_user_message(&request.messages));
//!         })
//!     }
//! }
//!
//! inventory::submit! {
//!     llmux_core::Registration {
//!         name: "echo",
//!         g4f_name: "Echo",
//!         origins: &[("base", "https://echo.example.com")],
//!         build: |_cfg: ProviderConfig| Arc::new(Echo { info: ProviderInfo { name: "echo".into(), ..Default::default() } }),
//!     }
//! }
//!
//! // the registry builds the provider from its configuration, as the facade does
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> llmux_core::Result<()> {
//! let reg = llmux_core::registrations()?.into_iter().find(|r| r.name == "echo");
//! let reg = reg.ok_or_else(|| llmux_core::Error::invalid("echo is not registered"))?;
//! let echo = (reg.build)(ProviderConfig::named("echo"));
//! let ctx = Context::new(llmux_core::http::HttpClient::new(Default::default())?);
//! let answer = llmux_core::collect(echo.chat(ChatRequest::user("any", "Hello!"), ctx)).await?;
//! assert_eq!(answer.text, "Hello!");
//! # Ok(()) }
//! ```

pub mod chunk;
pub mod config;
pub mod decode;
pub mod embedding;
pub mod error;
pub mod http;
pub mod media;
pub mod prompt;
pub mod provider;
pub mod random;
pub mod request;
pub mod response;
pub mod secret;

pub use chunk::{
    ChatStream, Chunk, Extra, ExtraScope, FinishReason, Image, MediaData, ProviderInfoChunk,
    Reasoning, Source, ToolCallDelta, Usage,
};
pub use config::{ProviderConfig, Timeouts};
pub use embedding::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse};
pub use error::{Action, ApiErrorDetail, Attempt, Error, Result, TimeoutPhase};
pub use provider::{
    BoxFuture, Capabilities, Context, Downloaded, ModelCache, Origin, Provider, ProviderInfo,
    Registration, registrations,
};
pub use request::{
    ChatRequest, Content, ContentPart, Conversation, ImageUrl, InputAudio, Media, Message,
    ResponseFormat, Role, Tool, ToolCall, ToolChoice,
};
pub use response::{Accumulator, ChatResponse, ExtraFields, ToolCallAssembler, collect};
pub use secret::{Cookies, Secret};

/// Re-exported so provider crates use the same versions.
pub use async_stream;
pub use bytes;
pub use futures_util;
pub use inventory;
pub use serde_json;
