//! `POST /v1/embeddings`: OpenAI's embeddings API over [`llmux::Client::embed`] (routing by
//! model to providers that answer embeddings, fallback), with the wire model of
//! `llmux_openai::embeddings`.

use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use llmux::{EmbeddingInput, EmbeddingRequest};
use llmux_openai::embeddings::{
    EmbeddingsAnswer, EmbeddingsRequest, EncodingFormat, into_embedding_request,
};

use crate::body::{self, Body};
use crate::error::{ApiError, from_llmux};
use crate::log::Access;
use crate::routes::{State, read_body, set_overhead};
use crate::wire;

/// Parses and converts a body, as the handler does.
pub(crate) fn parse(raw: &[u8]) -> Result<(EmbeddingRequest, EncodingFormat), ApiError> {
    let wire = wire::parse::<EmbeddingsRequest>(raw)?;
    into_embedding_request(wire).map_err(|e| {
        let api = ApiError::bad_request(e.code, e.message);
        match e.param {
            Some(p) => api.with_param(p),
            None => api,
        }
    })
}

/// Input tokens when the upstream reports none: about 4 bytes of text per token, or the
/// token arrays' lengths.
fn estimate(input: &EmbeddingInput) -> u64 {
    match input {
        EmbeddingInput::Text(t) => t.iter().map(|s| s.len().div_ceil(4) as u64).sum(),
        EmbeddingInput::Tokens(t) => t.iter().map(|a| a.len() as u64).sum(),
    }
}

/// `POST /v1/embeddings`.
pub(crate) async fn embeddings<B>(
    state: &State,
    req: Request<B>,
    access: &mut Access,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let before_body = access.start.elapsed();
    let raw = match read_body(req, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return with_overhead(body::error(&e), before_body),
    };
    let parse_start = Instant::now();
    let parsed = parse(&raw);
    drop(raw);
    let overhead = before_body + parse_start.elapsed();
    let (mut ereq, format) = match parsed {
        Ok(x) => x,
        Err(e) => return with_overhead(body::error(&e), overhead),
    };
    state.default_provider_for(&mut ereq.provider, &ereq.model);
    access.model.clone_from(&ereq.model);
    if let Err(e) = state.admit(&access.caller, &mut ereq.provider, &ereq.model) {
        return with_overhead(body::error(&e), overhead);
    }
    let tokens = estimate(&ereq.input);
    let resp = match state.client.embed(ereq).await {
        Ok(r) => r,
        Err(e) => {
            let api = from_llmux(&e);
            access.error_code = Some(api.code);
            return with_overhead(body::error(&api), overhead);
        }
    };
    access.first_token();
    access.model.clone_from(&resp.model);
    access.provider.clone_from(&resp.provider);
    let build_start = Instant::now();
    let answer = EmbeddingsAnswer::new(&resp, format, tokens);
    let out = body::json(StatusCode::OK, &answer);
    with_overhead(out, overhead + build_start.elapsed())
}

fn with_overhead(mut r: Response<Body>, d: std::time::Duration) -> Response<Body> {
    set_overhead(&mut r, d);
    r
}
