//! `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`: OpenAI's Responses API over
//! the chat machinery. The request becomes a [`llmux::ChatRequest`]
//! ([`llmux_openai::responses::into_chat_request`]); the chat chunks become output items and,
//! for streams, the typed events ([`llmux_openai::responses::Builder`]).

pub mod store;

use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use llmux::{ChatStream, Chunk, FinishReason};
use llmux_openai::responses::{
    Builder, CreateResponse, ResponseUsage, Sequenced, into_chat_request, new_id, output_messages,
};
use serde_json::Value;

use crate::answer::{Answer, Piece, estimate_prompt_tokens};
use crate::body::{self, Body};
use crate::error::{ApiError, from_llmux};
use crate::log::Access;
use crate::routes::{
    NO, NO_CACHE, SSE, State, USAGE_HEADER, X_ACCEL_BUFFERING, error_with_overhead, read_body,
    set_ignored, set_overhead,
};
use crate::wire;
use store::{ResponseStore, StoredResponse};

/// What the handler keeps to store the response when it ends.
struct Keep {
    store: Arc<dyn ResponseStore>,
    messages: Vec<llmux::Message>,
}

/// 404 for an unknown or expired response id (OpenAI's shape).
fn not_found(id: &str, param: Option<&str>) -> ApiError {
    let e = ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        if param.is_some() {
            "previous_response_not_found"
        } else {
            "not_found"
        },
        format!(
            "No response with id '{id}' found: it is unknown, expired, was not stored (`store: false`), or this gateway's response store is off."
        ),
    );
    match param {
        Some(p) => e.with_param(p),
        None => e,
    }
}

fn store_error(e: &store::StoreError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "store_unavailable",
        e.to_string(),
    )
}

/// Parses the body and resolves `previous_response_id`.
async fn parse(
    state: &State,
    raw: &[u8],
) -> Result<
    (
        llmux_openai::responses::Converted,
        Option<llmux::Conversation>,
    ),
    ApiError,
> {
    let wire = wire::parse::<CreateResponse>(raw)?;
    let mut previous = Vec::new();
    let mut conversation_state = None;
    if let Some(id) = wire.previous_response_id.as_deref() {
        let found = match &state.responses {
            Some(s) => s.get(id).await.map_err(|e| store_error(&e))?,
            None => None,
        };
        let found = found.ok_or_else(|| not_found(id, Some("previous_response_id")))?;
        previous = found.messages;
        conversation_state = found.state;
    }
    let converted = into_chat_request(wire, previous, state.config.allow_remote_media)
        .map_err(wire::from_wire_error)?;
    Ok((converted, conversation_state))
}

/// `POST /v1/responses`.
pub(crate) async fn create<B>(state: &State, req: Request<B>, access: &mut Access) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let before_body = access.start.elapsed();
    let raw = match read_body(req, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error_with_overhead(&e, before_body),
    };
    let parse_start = Instant::now();
    let parsed = parse(state, &raw).await;
    drop(raw);
    let (converted, conversation_state) = match parsed {
        Ok(x) => x,
        Err(e) => return error_with_overhead(&e, before_body + parse_start.elapsed()),
    };
    let mut creq = converted.request;
    if creq.conversation.is_none() {
        creq.conversation = conversation_state;
    }
    access.model.clone_from(&creq.model);
    if let Err(e) = state.default_provider(&access.caller, &mut creq) {
        return error_with_overhead(&e, before_body + parse_start.elapsed());
    }
    let answer = Answer::new(creq.model.clone(), estimate_prompt_tokens(&creq));
    let mut response = converted.response;
    response.id = new_id("resp");
    let keep = state
        .responses
        .clone()
        .filter(|_| response.store)
        .map(|store| Keep {
            store,
            messages: converted.conversation,
        });
    // with storage off the response says it was not stored
    response.store = keep.is_some();
    let builder = Builder::new(response, converted.stream);
    let overhead = before_body + parse_start.elapsed();
    let stream = state.client.chat(creq);
    let mut run = Run {
        stream,
        answer,
        builder,
        keep,
        access: access.clone(),
    };
    if converted.stream {
        return run.stream(access, overhead).await;
    }
    let resp = run.complete(overhead).await;
    *access = run.access.clone();
    resp
}

/// One answer being turned into a response.
struct Run {
    stream: ChatStream,
    answer: Answer,
    builder: Builder,
    keep: Option<Keep>,
    access: Access,
}

impl Run {
    /// Feeds one chunk to the builder.
    fn feed(&mut self, chunk: Chunk) {
        match self.answer.take(chunk) {
            Piece::Content(t) => {
                self.access.first_token();
                self.builder.text(&t);
            }
            Piece::Reasoning(t) => {
                self.access.first_token();
                self.builder.reasoning(&t);
            }
            Piece::Tool(d) => {
                self.access.first_token();
                self.builder
                    .tool(d.index, d.id.as_deref(), d.name.as_deref(), &d.arguments);
            }
            Piece::ExtraOnly | Piece::Nothing => {}
        }
    }

    /// Ends the response and stores it. A store failure is logged and the answer still goes
    /// out, saying `store: false` (its id will not be found).
    async fn finish(&mut self) {
        let a = &self.answer;
        let r = &mut self.builder.response;
        r.model.clone_from(&a.model);
        r.extra
            .insert("provider".into(), Value::String(a.provider.clone()));
        if let Some(refusal) = a.extra.message.get("refusal").and_then(Value::as_str) {
            self.builder.refusal(refusal);
        }
        let incomplete = match &self.answer.finish {
            Some(FinishReason::Length) => Some("max_output_tokens"),
            Some(FinishReason::ContentFilter) => Some("content_filter"),
            _ => None,
        };
        let usage = ResponseUsage::from(&self.answer.usage());
        self.builder.finish(incomplete, Some(usage));
        self.access.model.clone_from(&self.answer.model);
        self.access.provider.clone_from(&self.answer.provider);
        let Some(keep) = self.keep.take() else {
            return;
        };
        let mut messages = keep.messages;
        messages.extend(output_messages(&self.builder.response.output));
        let stored = StoredResponse {
            response: self.builder.response.clone(),
            messages,
            state: self.answer.conversation.clone(),
        };
        if let Err(e) = keep.store.put(stored).await {
            tracing::warn!(error = %e, "could not store a response");
            self.builder.response.store = false;
        }
    }

    /// The non-streaming answer: the whole response object.
    async fn complete(&mut self, overhead: std::time::Duration) -> Response<Body> {
        while let Some(item) = self.stream.next().await {
            match item {
                Ok(chunk) => self.feed(chunk),
                Err(e) => return self.error(&e, overhead),
            }
        }
        let build_start = Instant::now();
        self.finish().await;
        let mut resp = body::json(StatusCode::OK, &self.builder.response);
        set_ignored(&mut resp, &self.answer);
        if self.answer.upstream_usage().is_none() {
            resp.headers_mut()
                .insert(USAGE_HEADER, HeaderValue::from_static("estimated"));
        }
        set_overhead(&mut resp, overhead + build_start.elapsed());
        resp
    }

    fn error(&mut self, e: &llmux::Error, overhead: std::time::Duration) -> Response<Body> {
        self.access.model.clone_from(&self.answer.model);
        self.access.provider.clone_from(&self.answer.provider);
        let api = from_llmux(e);
        self.access.error_code = Some(api.code);
        error_with_overhead(&api, overhead)
    }

    /// The streamed answer. Headers wait for the first output, so failures before it get real
    /// statuses; a failure after it ends the stream with `response.failed`.
    async fn stream(
        mut self,
        access: &mut Access,
        overhead: std::time::Duration,
    ) -> Response<Body> {
        let first = loop {
            match self.stream.next().await {
                Some(Ok(chunk)) if Answer::is_visible(&chunk) => break Some(chunk),
                Some(Ok(chunk)) => self.feed(chunk),
                Some(Err(e)) => {
                    let resp = self.error(&e, overhead);
                    *access = self.access;
                    return resp;
                }
                None => break None,
            }
        };
        let mut head = Response::new(Body::Full(None));
        set_ignored(&mut head, &self.answer);
        let events = futures_util::stream::unfold(
            Streaming {
                run: self,
                first,
                started: false,
                done: false,
            },
            |mut st| async move {
                let bytes = st.next_events().await?;
                Some((bytes, st))
            },
        );
        let (mut parts, _) = head.into_parts();
        let h = &mut parts.headers;
        h.insert(CONTENT_TYPE, SSE);
        h.insert(CACHE_CONTROL, NO_CACHE);
        h.insert(X_ACCEL_BUFFERING, NO);
        let mut resp = Response::from_parts(parts, Body::Stream(Box::pin(events)));
        set_overhead(&mut resp, overhead);
        resp
    }
}

/// A streamed response; logs `client_closed` when dropped before its end.
struct Streaming {
    run: Run,
    first: Option<Chunk>,
    started: bool,
    done: bool,
}

impl Streaming {
    /// The next frame of events; `None` once the stream ended.
    async fn next_events(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let run = &mut self.run;
        if !self.started {
            self.started = true;
            run.builder.start();
            if let Some(c) = self.first.take() {
                run.feed(c);
            }
            return Some(encode(run.builder.take_events()));
        }
        loop {
            match run.stream.next().await {
                Some(Ok(chunk)) => {
                    run.feed(chunk);
                    let events = run.builder.take_events();
                    if !events.is_empty() {
                        return Some(encode(events));
                    }
                }
                Some(Err(e)) => {
                    let api = from_llmux(&e);
                    tracing::debug!(error = %e, "responses stream failed after it started");
                    let code = if api.status == StatusCode::TOO_MANY_REQUESTS {
                        "rate_limit_exceeded"
                    } else {
                        "server_error"
                    };
                    run.builder.response.model.clone_from(&run.answer.model);
                    run.builder.fail(code, &api.message);
                    run.access.error_code = Some(api.code);
                    self.done = true;
                    run.access.log(200, "error");
                    return Some(encode(run.builder.take_events()));
                }
                None => {
                    run.finish().await;
                    self.done = true;
                    run.access.log(200, "ok");
                    return Some(encode(run.builder.take_events()));
                }
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if !self.done {
            self.run.access.model.clone_from(&self.run.answer.model);
            self.run
                .access
                .provider
                .clone_from(&self.run.answer.provider);
            self.run.access.log(200, "client_closed");
        }
    }
}

/// `event: <type>\ndata: <json>\n\n` for each event.
fn encode(events: Vec<Sequenced>) -> Bytes {
    let mut buf = BytesMut::with_capacity(256 * events.len());
    for e in &events {
        buf.extend_from_slice(b"event: ");
        buf.extend_from_slice(e.event.kind().as_bytes());
        buf.extend_from_slice(b"\ndata: ");
        // serialising into memory cannot fail
        let _ = serde_json::to_writer((&mut buf).writer(), e);
        buf.extend_from_slice(b"\n\n");
    }
    buf.freeze()
}

/// `GET /v1/responses/{id}`.
pub(crate) async fn get(state: &State, id: &str) -> Response<Body> {
    let Some(store) = &state.responses else {
        return body::error(&not_found(id, None));
    };
    match store.get(id).await {
        Ok(Some(r)) => body::json(StatusCode::OK, &r.response),
        Ok(None) => body::error(&not_found(id, None)),
        Err(e) => body::error(&store_error(&e)),
    }
}

/// `DELETE /v1/responses/{id}`.
pub(crate) async fn delete(state: &State, id: &str) -> Response<Body> {
    let Some(store) = &state.responses else {
        return body::error(&not_found(id, None));
    };
    match store.delete(id).await {
        Ok(true) => body::json(
            StatusCode::OK,
            &serde_json::json!({"id": id, "object": "response", "deleted": true}),
        ),
        Ok(false) => body::error(&not_found(id, None)),
        Err(e) => body::error(&store_error(&e)),
    }
}
