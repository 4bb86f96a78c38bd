//! The OpenAI **Responses API** wire model (`POST /v1/responses`), translated to and from
//! llmux's chat model:
//!
//! - [`CreateResponse`] is the request body; [`into_chat_request`] turns it (plus the
//!   conversation of a `previous_response_id`) into a [`llmux_core::ChatRequest`], refusing
//!   every field it cannot honour with a [`WireError`] that names it;
//! - [`ResponseObject`] / [`OutputItem`] are the answer (`{"object":"response",…}`);
//! - [`Builder`] turns the chunks of a chat answer into output items and, for streams, the typed
//!   event sequence ([`StreamEvent`], each with its `sequence_number`).
//!
//! ```
//! use llmux_openai::responses::{Builder, CreateResponse, into_chat_request};
//! let wire: CreateResponse =
//!     serde_json::from_str(r#"{"model":"m","input":"Hi","instructions":"Be brief"}"#).unwrap();
//! let conv = into_chat_request(wire, Vec::new(), false).unwrap();
//! assert_eq!(conv.request.messages.len(), 2); // the instructions, then the input
//! let mut b = Builder::new(conv.response, true);
//! b.start();
//! b.text("Hello");
//! b.finish(None, None);
//! let kinds: Vec<_> = b.take_events().iter().map(|e| e.event.kind()).collect();
//! assert_eq!(kinds.first(), Some(&"response.created"));
//! assert_eq!(kinds.last(), Some(&"response.completed"));
//! ```

mod builder;
mod object;
mod request;

pub use builder::{Builder, Sequenced, StreamEvent};
pub use object::{
    IncompleteDetails, InputTokensDetails, OutputContent, OutputItem, OutputTokensDetails,
    ReasoningSettings, ResponseError, ResponseObject, ResponseUsage, SummaryPart, TextSettings,
    output_messages,
};
pub use request::{
    Converted, CreateResponse, Input, ReasoningConfig, TextConfig, into_chat_request,
};

use crate::convert::WireError;

/// A fresh id with OpenAI's prefix (`resp`, `msg`, `fc`, `rs`): `resp_` and 48 alphanumerics.
pub fn new_id(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + 49);
    id.push_str(prefix);
    id.push('_');
    id.push_str(&llmux_core::random::random_alnum(48));
    id
}

fn err(code: &'static str, param: impl Into<String>, message: impl Into<String>) -> WireError {
    WireError::new(code, param, message)
}

#[cfg(test)]
mod tests;
