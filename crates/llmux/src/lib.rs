//! # llmux
//!
//! One Rust library over many LLM chat providers, in the spirit of gpt4free: say "answer this with
//! model X", and llmux finds a provider that serves X, speaks that provider's wire protocol,
//! streams typed [`Chunk`]s back, and falls back to the next provider when one fails before it has
//! said anything.
//!
//! Each provider is a crate behind a cargo feature of the same name (all on by default); a
//! provider linked into the binary registers itself, and [`Client`] picks it up.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use llmux::{ChatRequest, Chunk, Client, Message};
//!
//! # async fn demo() -> llmux::Result<()> {
//! // Configuration also comes from LLMUX_<PROVIDER>_BASE_URL / _API_KEY / _COOKIES.
//! let client = Client::from_env()?;
//! let mut stream = client.chat(ChatRequest::new("phi-4", vec![Message::user("Hi!")]));
//! while let Some(chunk) = stream.next().await {
//!     if let Chunk::Text(t) = chunk? {
//!         print!("{t}");
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The same against a fake OpenAI-compatible upstream on 127.0.0.1 (from `llmux-testkit`), with
//! the `openai-compat` provider pointed at it; this one runs as a doctest:
//!
//! ```
//! # #[cfg(feature = "openai-compat")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt;
//! use llmux::{ChatRequest, Chunk, Client, ProviderConfig, Proxy};
//! use llmux_testkit::openai::FakeOpenAi;
//!
//! let upstream = FakeOpenAi::new().models(["fake-model"]).reply("Hello there!").start().await;
//! let client = Client::builder()
//!     .ignore_env()
//!     .proxy(Proxy::Direct) // the fake is on loopback
//!     .provider("openai-compat", ProviderConfig::default().with_base_url(upstream.url("/v1")))
//!     .build()?;
//! let request = ChatRequest::user("fake-model", "Hi!").with_provider("openai-compat");
//! let mut stream = client.chat(request);
//! let (mut text, mut provider) = (String::new(), String::new());
//! while let Some(chunk) = stream.next().await {
//!     match chunk? {
//!         Chunk::Provider(p) => provider = p.provider,
//!         Chunk::Text(t) => text.push_str(&t),
//!         _ => {}
//!     }
//! }
//! assert_eq!((provider.as_str(), text.as_str()), ("openai-compat", "Hello there!"));
//! # Ok(()) }
//! # #[cfg(not(feature = "openai-compat"))]
//! # fn main() {}
//! ```
//!
//! Resolution order: an explicit provider (`request.provider`, llmux or g4f name) →
//! `provider:model` → a provider name used as the model → every enabled provider serving the model
//! id or alias, in priority order (optionally shuffled). Providers whose `working` flag is false
//! are skipped unless named explicitly. Live health orders the rest (see [`HealthConfig`]):
//! providers whose circuit breaker is closed first, then half-open ones (one probe request at a
//! time), then open ones only when nothing else serves the model. Credentials set on a request (`api_key`, `cookies`) go
//! only to a provider the caller named, never to one chosen by routing.

mod capability;
mod client;
mod embed;
mod emulation;
mod fallback;
mod health;
mod resolve;

pub use client::{Client, ClientBuilder, CookieSource, ModelKind, ModelListing, ProviderListing};
pub use health::{AttemptObserver, BreakerState, HealthConfig, ModelHealth, Outcome};
pub use llmux_core::http::{HttpConfig, Proxy};
pub use llmux_core::{
    Accumulator, Action, Attempt, Capabilities, ChatRequest, ChatResponse, ChatStream, Chunk,
    Content, ContentPart, Conversation, Cookies, Downloaded, EmbeddingInput, EmbeddingRequest,
    EmbeddingResponse, Error, Extra, ExtraFields, ExtraScope, FinishReason, Image, ImageUrl,
    InputAudio, Media, MediaData, Message, Provider, ProviderConfig, ProviderInfo,
    ProviderInfoChunk, Reasoning, Registration, ResponseFormat, Result, Role, Secret, Source,
    TimeoutPhase, Timeouts, Tool, ToolCall, ToolCallAssembler, ToolCallDelta, ToolChoice, Usage,
};

/// The core crate (provider trait, helpers), for provider authors.
pub use llmux_core as core;

#[cfg(feature = "amigochat")]
pub use llmux_provider_amigochat as amigochat;
#[cfg(feature = "flowgpt")]
pub use llmux_provider_flowgpt as flowgpt;
#[cfg(feature = "huggingchat")]
pub use llmux_provider_huggingchat as huggingchat;
#[cfg(feature = "huggingface-inference")]
pub use llmux_provider_huggingface_inference as huggingface_inference;
#[cfg(feature = "microsoft-phi-4")]
pub use llmux_provider_microsoft_phi_4 as microsoft_phi_4;
#[cfg(feature = "openai-compat")]
pub use llmux_provider_openai_compat as openai_compat;
// @provider-reexports (cargo xtask new-provider inserts lines above this marker)
