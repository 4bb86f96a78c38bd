//! The OpenAI chat-completions wire model of [llmux](https://github.com/llmux/llmux), used in
//! both directions:
//!
//! - the gateway (`llmux-server`) parses requests with [`wire::ChatCompletionRequest`], turns
//!   them into [`llmux_core::ChatRequest`]s with [`convert::into_chat_request`], and writes
//!   answers with the borrowed types of [`answer`];
//! - every provider of an OpenAI-shaped upstream (`openai-compat`, AmigoChat, the Hugging Face
//!   router) builds its body with [`convert::chat_body`] and reads the answer with [`read`].
//!
//! Nothing is dropped on the way: fields llmux does not model travel in `extra` maps (request,
//! message) and [`llmux_core::Chunk::Extra`] chunks (response, choice, message), so an
//! OpenAI-to-OpenAI relay is lossless.
//!
//! ```
//! use llmux_core::{ChatRequest, Message, Tool};
//! let req = ChatRequest::new("gpt-4o-mini", vec![Message::user("Weather in Paris?")])
//!     .with_tool(Tool::function(
//!         "get_weather",
//!         "Current weather of a city",
//!         serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
//!     ));
//! let body = llmux_openai::convert::chat_body(&req, "gpt-4o-mini").unwrap();
//! let json = serde_json::to_value(&body).unwrap();
//! assert_eq!(json["tools"][0]["function"]["name"], "get_weather");
//! assert_eq!(json["tools"][0]["type"], "function");
//! ```

pub mod answer;
pub mod convert;
pub mod embeddings;
pub mod error;
pub mod images;
pub mod read;
pub mod responses;
pub mod wire;

pub use convert::{WireError, chat_body, into_chat_request};
pub use read::response_chunks;
