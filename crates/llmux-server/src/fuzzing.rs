//! Entry points for the `llmux-fuzz` harness and property tests: the gateway's request parsing
//! and its whole request handling, driven in process without a socket. Not a stable API.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::config::ServerConfig;
use crate::routes::{State, handle};
use crate::wire::{self, ImageRequest};

/// Parses a `POST /v1/chat/completions` body and converts it, as the handler does. The error is
/// the OpenAI-shaped error body.
pub fn parse_chat(body: &[u8], allow_remote_media: bool) -> Result<llmux::ChatRequest, Vec<u8>> {
    wire::chat_request(body, allow_remote_media)
        .map(|(req, _)| req)
        .map_err(|e| e.to_json())
}

/// Parses a `POST /v1/images/generations` body and converts it, as the handler does.
pub fn parse_images(body: &[u8]) -> Result<llmux::ChatRequest, Vec<u8>> {
    wire::parse::<ImageRequest>(body)
        .and_then(ImageRequest::into_request)
        .map(|(req, _)| req)
        .map_err(|e| e.to_json())
}

/// Parses a `POST /v1/responses` body and translates it (without a stored previous
/// conversation), as the handler does; the response object is returned with the request.
pub fn parse_responses(
    body: &[u8],
    allow_remote_media: bool,
) -> Result<(llmux::ChatRequest, llmux_openai::responses::ResponseObject), Vec<u8>> {
    wire::parse::<llmux_openai::responses::CreateResponse>(body)
        .and_then(|w| {
            llmux_openai::responses::into_chat_request(w, Vec::new(), allow_remote_media)
                .map_err(wire::from_wire_error)
        })
        .map(|c| (c.request, c.response))
        .map_err(|e| e.to_json())
}

/// Parses a `POST /v1/messages` body and converts it, as the handler does. The error is the
/// Anthropic-shaped error body.
pub fn parse_messages(
    body: &[u8],
    allow_remote_media: bool,
) -> Result<llmux::ChatRequest, Vec<u8>> {
    crate::messages::parse(body, allow_remote_media, false)
        .map(|(req, _)| req)
        .map_err(|e| crate::error::anthropic(&e).1.to_json())
}

/// Parses a `POST /v1/embeddings` body and converts it, as the handler does. The error is the
/// OpenAI-shaped error body.
pub fn parse_embeddings(body: &[u8]) -> Result<llmux::EmbeddingRequest, Vec<u8>> {
    crate::embeddings::parse(body)
        .map(|(req, _)| req)
        .map_err(|e| e.to_json())
}

/// A gateway whose handler can be called directly.
pub struct Handler {
    state: Arc<State>,
}

impl Handler {
    /// A handler answering with `client`.
    pub fn new(client: llmux::Client, config: ServerConfig) -> Self {
        Self {
            state: Arc::new(State::new(client, config)),
        }
    }

    /// Handles one request and reads the whole response body (an unfinished stream is cut after
    /// `body_timeout`; the body is then what arrived).
    pub async fn respond(
        &self,
        req: Request<Full<Bytes>>,
        body_timeout: Duration,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let resp = handle(Arc::clone(&self.state), req).await;
        let (parts, mut body) = resp.into_parts();
        let mut out = Vec::new();
        let read = async {
            while let Some(frame) = body.frame().await {
                if let Ok(Ok(data)) = frame.map(http_body::Frame::into_data) {
                    out.extend_from_slice(&data);
                }
            }
        };
        let _ = tokio::time::timeout(body_timeout, read).await;
        (parts.status, parts.headers, Bytes::from(out))
    }
}
