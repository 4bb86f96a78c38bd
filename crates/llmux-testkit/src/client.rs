//! A tiny HTTP/1.1 client for testing the fakes themselves (plain `http://`
//! only, one fresh connection per request, every wait bounded by a timeout).
//!
//! Tests of real llmux code should use llmux's own client; this one exists so
//! the fakes in this crate can be tested without depending on llmux-core.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Timeout for each step (connect, response head, each chunk, whole body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the test client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port/...`.
    #[error("invalid url: {0}")]
    Url(String),
    /// Connecting or socket I/O failed (e.g. connection refused).
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// HTTP-level failure, e.g. the connection closed before a response or
    /// in the middle of the body.
    #[error("http error: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (bad header name or value).
    #[error("bad request: {0}")]
    Build(#[from] http::Error),
    /// The body is not valid JSON.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
    /// A step did not finish in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

async fn timed<T, E: Into<ClientError>>(
    d: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(d, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(ClientError::Timeout(d)),
    }
}

/// A response whose body is read on demand. Dropping it closes the connection.
#[derive(Debug)]
pub struct ClientResponse {
    /// Response status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    body: Incoming,
    conn: JoinHandle<()>,
}

impl Drop for ClientResponse {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl ClientResponse {
    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next body data chunk as it arrives (`None` at the end).
    pub async fn chunk(&mut self, timeout: Duration) -> Result<Option<Bytes>, ClientError> {
        loop {
            match timed(timeout, async { self.body.frame().await.transpose() }).await? {
                None => return Ok(None),
                Some(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The whole remaining body (within [`DEFAULT_TIMEOUT`]).
    pub async fn bytes(mut self) -> Result<Bytes, ClientError> {
        let mut out = BytesMut::new();
        let deadline = tokio::time::Instant::now() + DEFAULT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.chunk(left).await {
                Ok(Some(b)) => out.extend_from_slice(&b),
                Ok(None) => return Ok(out.freeze()),
                Err(ClientError::Timeout(_)) => return Err(ClientError::Timeout(DEFAULT_TIMEOUT)),
                Err(e) => return Err(e),
            }
        }
    }

    /// The whole body as (lossy) UTF-8.
    pub async fn text(self) -> Result<String, ClientError> {
        Ok(String::from_utf8_lossy(&self.bytes().await?).into_owned())
    }

    /// The whole body as JSON.
    pub async fn json(self) -> Result<Value, ClientError> {
        Ok(serde_json::from_slice(&self.bytes().await?)?)
    }
}

/// Sends one request over a fresh connection and returns once the response
/// head arrived.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<ClientResponse, ClientError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ClientError::Url(url.to_owned()))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let stream = timed(DEFAULT_TIMEOUT, TcpStream::connect(authority)).await?;
    let (mut sender, conn) = timed(
        DEFAULT_TIMEOUT,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into()))?;
    let resp = match timed(DEFAULT_TIMEOUT, sender.send_request(req)).await {
        Ok(r) => r,
        Err(e) => {
            conn.abort();
            return Err(e);
        }
    };
    let (parts, body) = resp.into_parts();
    Ok(ClientResponse {
        status: parts.status,
        headers: parts.headers,
        body,
        conn,
    })
}

/// `GET url`.
pub async fn get(url: &str) -> Result<ClientResponse, ClientError> {
    send(Method::GET, url, &[], Bytes::new()).await
}

/// `POST url` with a JSON body and extra headers.
pub async fn post_json(
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Result<ClientResponse, ClientError> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send(Method::POST, url, &all, body.to_string()).await
}
