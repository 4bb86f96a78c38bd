//! The response body type: a full buffer, or a live SSE stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body::{Frame, SizeHint};

use crate::error::ApiError;
use crate::sse::SseBody;

/// Body of every gateway response.
pub(crate) enum Body {
    /// A complete body (sent with `content-length`).
    Full(Option<Bytes>),
    /// A chat completion stream; dropping it drops the provider stream.
    Sse(Box<SseBody>),
    /// Any other live stream of frames (the Responses API's events).
    Stream(Pin<Box<dyn futures_util::Stream<Item = Bytes> + Send>>),
    /// An Anthropic Messages event stream; dropping it drops the provider stream.
    Messages(Box<crate::messages::MessagesSse>),
}

impl Body {
    /// True for live streams (their access line is written when they end).
    pub fn is_stream(&self) -> bool {
        !matches!(self, Body::Full(_))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Sse(s) => s.poll_frame(cx),
            Body::Stream(s) => futures_util::Stream::poll_next(s.as_mut(), cx)
                .map(|b| b.map(|b| Ok(Frame::data(b)))),
            Body::Messages(s) => s.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Sse(_) | Body::Stream(_) | Body::Messages(_) => SizeHint::default(),
        }
    }
}

pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response from already serialised bytes.
pub(crate) fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::Full(Some(Bytes::from(body))));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    r
}

/// A JSON response from a serialisable value.
pub(crate) fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(v) => json_bytes(status, v),
        Err(e) => error(&ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "serialization",
            format!("cannot encode the response: {e}"),
        )),
    }
}

/// The `error.code` of an error response (a response extension, for the access log and metrics).
#[derive(Clone, Copy)]
pub(crate) struct ErrorCode(pub &'static str);

/// The error response of `e` (with `Retry-After` when known).
pub(crate) fn error(e: &ApiError) -> Response<Body> {
    let mut r = json_bytes(e.status, e.to_json());
    mark_error(&mut r, e);
    r
}

/// Tags an error response with its code (for the access log and metrics) and `Retry-After`.
pub(crate) fn mark_error(r: &mut Response<Body>, e: &ApiError) {
    r.extensions_mut().insert(ErrorCode(e.code));
    if let Some(d) = e.retry_after {
        // whole seconds, rounded up so clients never retry too early
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(RETRY_AFTER, v);
        }
    }
}
