//! [`Fault`]: failures a [`FakeServer`](crate::FakeServer) can inject into
//! the next requests of a route (see [`FakeServer::inject`](crate::FakeServer::inject)).

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use serde_json::json;

use crate::reply::{BodyPlan, Chunk, Reply, ResponseBody, Tail, build, stream_body};
use crate::server::Kill;

/// Size of the filler chunks of [`Fault::Oversized`].
const OVERSIZED_CHUNK: usize = 64 * 1024;

/// A failure injected into one exchange.
///
/// "The real reply" below is what the route's handler would have answered;
/// faults that replace the reply outright do not call the handler at all.
/// The request is always recorded, whatever the fault.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Close the TCP connection right after accept, before reading anything
    /// and without a response — the closest a live listener gets to
    /// "connection refused" (for a real refusal, connect to
    /// [`closed_port()`](crate::closed_port)). The path is not known at accept
    /// time, so this fires on the next *new* connection when a `Refuse` is at
    /// the front of any fault queue; if the matching request instead arrives
    /// on an already open keep-alive connection, that connection is closed
    /// without a response (like [`Fault::ResetBeforeHeaders`]).
    Refuse,
    /// Read the request, then close the connection before any response byte.
    ResetBeforeHeaders,
    /// Answer this status instead of the real reply, with an optional
    /// `Retry-After` header (e.g. `"2"` or an HTTP date), this body and
    /// `Content-Type`. See [`Fault::status`] and [`Fault::rate_limited`].
    Status {
        /// HTTP status code.
        code: u16,
        /// `Retry-After` header value, if any.
        retry_after: Option<String>,
        /// Response body.
        body: Bytes,
        /// `Content-Type` header value.
        content_type: String,
    },
    /// Wait this long before sending the real reply's headers.
    Delay(Duration),
    /// Send the real reply's status and headers, then nothing: the body never
    /// starts and the connection stays open (until the server is dropped).
    StallAfterHeaders,
    /// Send the headers and the first `chunks` chunks of the real body (a full
    /// body counts as one chunk), then go silent forever with the connection open.
    StallAfter {
        /// Chunks sent before stalling.
        chunks: usize,
    },
    /// Send the headers and the first `chunks` chunks of the real body, then
    /// abort the connection: the client sees an incomplete chunked body.
    /// With fewer chunks than that, the whole body is sent but never terminated.
    DisconnectAfter {
        /// Chunks sent before disconnecting.
        chunks: usize,
    },
    /// Send the real body one byte at a time, waiting `interval` before each
    /// byte (never faster).
    SlowDrip {
        /// Pause before every byte.
        interval: Duration,
    },
    /// Answer 200 with the real reply's headers but this raw body instead of
    /// the real body (e.g. broken JSON or a bogus SSE frame).
    Malformed(Bytes),
    /// Answer 200 with the real reply's headers and body cut in the middle of
    /// a multi-byte UTF-8 sequence (the first one in the second half of the
    /// body, else the first one at all). A body with no multi-byte character
    /// gets a dangling `0xE2 0x82` (two thirds of `€`) appended instead.
    TruncatedUtf8,
    /// Answer 200 with the real reply's headers and a body of exactly `bytes`
    /// filler bytes (`x`, no newline), streamed in 64 KiB chunks.
    Oversized {
        /// Total body size.
        bytes: usize,
    },
    /// Send the real reply with its `Content-Type` replaced by this one.
    WrongContentType(String),
    /// Answer 403 `text/html` with a Cloudflare "Just a moment..." challenge
    /// page (`<title>Just a moment...</title>`) and `server: cloudflare`,
    /// `cf-mitigated: challenge` headers.
    CloudflareChallenge,
    /// Answer status `code` with an HTML error page starting `<!DOCTYPE html>`
    /// (as a proxy or load balancer would), instead of a JSON error.
    HtmlError {
        /// HTTP status code.
        code: u16,
    },
    /// Answer this reply instead of the real one (for provider-specific errors).
    Reply(Reply),
}

impl Fault {
    /// [`Fault::Status`] with a small JSON error body and no `Retry-After`.
    pub fn status(code: u16) -> Fault {
        Fault::Status {
            code,
            retry_after: None,
            body: Bytes::from(
                json!({"error": {"message": format!("injected fault: status {code}"), "type": "fake_fault", "code": code}})
                    .to_string(),
            ),
            content_type: "application/json".to_owned(),
        }
    }

    /// A 429 [`Fault::Status`] with `Retry-After: retry_after`.
    pub fn rate_limited(retry_after: &str) -> Fault {
        match Fault::status(429) {
            Fault::Status {
                code,
                body,
                content_type,
                ..
            } => Fault::Status {
                code,
                retry_after: Some(retry_after.to_owned()),
                body,
                content_type,
            },
            other => other,
        }
    }
}

/// The HTML page of [`Fault::CloudflareChallenge`].
pub const CLOUDFLARE_CHALLENGE_HTML: &str = "<!DOCTYPE html><html lang=\"en-US\"><head>\
<title>Just a moment...</title><meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\">\
</head><body><div class=\"main-wrapper\" role=\"main\"><div class=\"main-content\">\
<noscript><div class=\"h2\"><span id=\"challenge-error-text\">Enable JavaScript and cookies to continue</span></div></noscript>\
</div></div><script>(function(){window._cf_chl_opt={cvId: '3',cType: 'managed'};}());</script></body></html>";

/// The HTML error page of [`Fault::HtmlError`].
pub fn html_error_page(code: u16) -> String {
    let reason = StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\
<body><center><h1>{code} {reason}</h1></center><hr><center>nginx</center></body></html>\n"
    )
}

/// Cuts `body` inside a multi-byte UTF-8 sequence (see [`Fault::TruncatedUtf8`]).
fn truncate_utf8(body: &[u8]) -> Bytes {
    let is_lead = |b: &u8| *b >= 0xC0;
    let half = body.len() / 2;
    let cut = body[half..]
        .iter()
        .position(is_lead)
        .map(|i| i + half)
        .or_else(|| body.iter().position(is_lead));
    match cut {
        Some(i) => Bytes::copy_from_slice(&body[..=i]),
        None => {
            let mut out = BytesMut::from(body);
            out.extend_from_slice(&[0xE2, 0x82]);
            out.freeze()
        }
    }
}

/// Answers a request that drew `fault`; `real` yields the real reply.
pub(crate) async fn apply<F>(fault: Fault, real: F, kill: Kill) -> Response<ResponseBody>
where
    F: Future<Output = Reply>,
{
    match fault {
        Fault::Refuse | Fault::ResetBeforeHeaders => {
            kill.fire();
            std::future::pending().await
        }
        Fault::Status {
            code,
            retry_after,
            body,
            content_type,
        } => {
            let mut reply = Reply::bytes(code, &content_type, body);
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                reply.headers.insert(RETRY_AFTER, v);
            }
            reply.into_response()
        }
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            real.await.into_response()
        }
        Fault::StallAfterHeaders => streamed(real.await, |_| Vec::new(), Tail::Stall),
        Fault::StallAfter { chunks } => streamed(real.await, |b| first(b, chunks), Tail::Stall),
        Fault::DisconnectAfter { chunks } => {
            streamed(real.await, |b| first(b, chunks), Tail::Abort(kill))
        }
        Fault::SlowDrip { interval } => streamed(
            real.await,
            |b| {
                b.to_bytes()
                    .iter()
                    .map(|byte| Chunk::delayed(interval, Bytes::copy_from_slice(&[*byte])))
                    .collect()
            },
            Tail::End,
        ),
        Fault::Malformed(raw) => real.await.status(200).body(raw).into_response(),
        Fault::TruncatedUtf8 => {
            let reply = real.await;
            let body = truncate_utf8(&reply.body.to_bytes());
            reply.status(200).body(body).into_response()
        }
        Fault::Oversized { bytes } => {
            let reply = real.await.status(200);
            let filler = Bytes::from(vec![b'x'; OVERSIZED_CHUNK.min(bytes)]);
            let mut chunks = Vec::new();
            let mut left = bytes;
            while left > 0 {
                let n = left.min(OVERSIZED_CHUNK);
                chunks.push(Chunk::new(filler.slice(..n)));
                left -= n;
            }
            build(reply.status, reply.headers, stream_body(chunks, Tail::End))
        }
        Fault::WrongContentType(ct) => {
            let mut reply = real.await;
            match HeaderValue::from_str(&ct) {
                Ok(v) => {
                    reply.headers.insert(CONTENT_TYPE, v);
                }
                Err(_) => {
                    reply.headers.remove(CONTENT_TYPE);
                }
            }
            reply.into_response()
        }
        Fault::CloudflareChallenge => Reply::html(403, CLOUDFLARE_CHALLENGE_HTML)
            .header("server", "cloudflare")
            .header("cf-mitigated", "challenge")
            .header("cf-ray", "8f0000000000fake-AMS")
            .into_response(),
        Fault::HtmlError { code } => Reply::html(code, html_error_page(code)).into_response(),
        Fault::Reply(reply) => reply.into_response(),
    }
}

fn first(body: BodyPlan, n: usize) -> Vec<Chunk> {
    body.into_chunks().into_iter().take(n).collect()
}

/// The real reply's status and headers with a re-planned, streamed body.
fn streamed(
    reply: Reply,
    plan: impl FnOnce(BodyPlan) -> Vec<Chunk>,
    tail: Tail,
) -> Response<ResponseBody> {
    let chunks = plan(reply.body);
    build(reply.status, reply.headers, stream_body(chunks, tail))
}
