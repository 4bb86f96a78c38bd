//! Responses: bounded, decompressed bodies read under idle and total timeouts.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::status::{StatusRules, parse_retry_after, status_error};
use crate::error::{Error, Result, TimeoutPhase};

/// Content-Encoding decoder fed chunk by chunk.
enum Decoder {
    Identity,
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    Deflate(Box<flate2::write::ZlibDecoder<Vec<u8>>>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Vec<u8>>>),
}

impl Decoder {
    fn for_encoding(encoding: Option<&str>) -> Result<Self, String> {
        match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Decoder::Identity),
            Some("gzip") | Some("x-gzip") => Ok(Decoder::Gzip(Box::new(
                flate2::write::GzDecoder::new(Vec::new()),
            ))),
            Some("deflate") => Ok(Decoder::Deflate(Box::new(flate2::write::ZlibDecoder::new(
                Vec::new(),
            )))),
            Some("br") => Ok(Decoder::Brotli(Box::new(
                brotli_decompressor::DecompressorWriter::new(Vec::new(), 8192),
            ))),
            Some(other) => Err(format!("unsupported content-encoding `{other}`")),
        }
    }

    fn decode(&mut self, chunk: Bytes) -> std::io::Result<Bytes> {
        fn drain(v: &mut Vec<u8>) -> Bytes {
            Bytes::from(std::mem::take(v))
        }
        match self {
            Decoder::Identity => Ok(chunk),
            Decoder::Gzip(d) => {
                d.write_all(&chunk)?;
                d.flush()?;
                Ok(drain(d.get_mut()))
            }
            Decoder::Deflate(d) => {
                d.write_all(&chunk)?;
                d.flush()?;
                Ok(drain(d.get_mut()))
            }
            Decoder::Brotli(d) => {
                d.write_all(&chunk)?;
                d.flush()?;
                Ok(drain(d.get_mut()))
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<Bytes> {
        match self {
            Decoder::Identity => Ok(Bytes::new()),
            Decoder::Gzip(d) => {
                d.try_finish()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
            Decoder::Deflate(d) => {
                d.try_finish()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
            Decoder::Brotli(d) => {
                d.close()?;
                Ok(Bytes::from(std::mem::take(d.get_mut())))
            }
        }
    }
}

/// Limits applied while reading a body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    pub idle: Duration,
    pub deadline: Instant,
    pub total: Duration,
    pub max_body: usize,
}

/// An HTTP response whose body has not been read yet.
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: BodyStream,
    secrets: Vec<crate::secret::Secret>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("content_type", &self.content_type())
            .finish()
    }
}

impl Response {
    pub(crate) fn new(
        resp: http::Response<Incoming>,
        provider: String,
        limits: ReadLimits,
        secrets: Vec<crate::secret::Secret>,
    ) -> Result<Self> {
        let (parts, body) = resp.into_parts();
        let encoding = parts
            .headers
            .get(http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let decoder = Decoder::for_encoding(encoding).map_err(|m| Error::Protocol {
            provider: provider.clone(),
            message: m,
            snippet: String::new(),
        })?;
        Ok(Self {
            status: parts.status,
            headers: parts.headers,
            body: BodyStream {
                inner: Some(body),
                decoder,
                provider,
                limits,
                read: 0,
                sleep: None,
                armed: false,
                finished: false,
            },
            secrets,
        })
    }

    /// Status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// One header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Content-Type`.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// The `Retry-After` delay, when given in seconds.
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after").and_then(parse_retry_after)
    }

    /// Provider name errors are reported under.
    pub fn provider(&self) -> &str {
        &self.body.provider
    }

    /// Returns `self` for 2xx; otherwise reads (a bounded part of) the body and turns it into a
    /// typed error with the generic rules.
    pub async fn error_for_status(self) -> Result<Self> {
        self.error_for_status_with(StatusRules::Generic).await
    }

    /// Like [`Response::error_for_status`] with a chosen rule set.
    pub async fn error_for_status_with(self, rules: StatusRules) -> Result<Self> {
        if self.status.is_success() {
            return Ok(self);
        }
        Err(self.into_error(rules).await)
    }

    /// Reads (at most 64 KiB of) the body and builds the status error for this response.
    pub async fn into_error(mut self, rules: StatusRules) -> Error {
        let status = self.status.as_u16();
        let ct = self.content_type().map(str::to_owned);
        let retry = self.retry_after();
        self.body.limits.max_body = self.body.limits.max_body.min(64 * 1024);
        let mut body = match self.body.read_all_lenient().await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => return e,
        };
        // upstreams echo credentials back ("Incorrect API key provided: sk-…"): scrub them
        for s in self.secrets.iter().filter(|s| s.expose().len() >= 4) {
            body = body.replace(s.expose(), "***");
        }
        status_error(
            &self.body.provider,
            status,
            ct.as_deref(),
            &body,
            retry,
            rules,
        )
    }

    /// The whole body (bounded, decompressed).
    pub async fn bytes(mut self) -> Result<Bytes> {
        self.body.read_all().await
    }

    /// The whole body as UTF-8 text (invalid sequences replaced).
    pub async fn text(self) -> Result<String> {
        let b = self.bytes().await?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// The whole body parsed as JSON; failures are protocol errors with a snippet.
    pub async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        let provider = self.body.provider.clone();
        let b = self.bytes().await?;
        serde_json::from_slice(&b).map_err(|e| {
            Error::protocol(
                &provider,
                format!("invalid JSON: {e}"),
                &String::from_utf8_lossy(&b),
            )
        })
    }

    /// The body as a stream of decompressed chunks.
    pub fn into_stream(self) -> BodyStream {
        self.body
    }
}

/// A response body as a stream of chunks, under idle and total timeouts and a size limit.
pub struct BodyStream {
    inner: Option<Incoming>,
    decoder: Decoder,
    provider: String,
    limits: ReadLimits,
    read: usize,
    /// Idle/total timer, allocated once and re-armed after each frame.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// True while `sleep` is set for the current wait.
    armed: bool,
    finished: bool,
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("read", &self.read)
            .finish()
    }
}

impl BodyStream {
    async fn read_all(&mut self) -> Result<Bytes> {
        let mut out = BytesMut::new();
        while let Some(chunk) = self.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }

    /// Reads the body, stopping silently at the size limit (used for error bodies).
    async fn read_all_lenient(&mut self) -> Result<Bytes> {
        let mut out = BytesMut::new();
        while let Some(chunk) = self.next().await {
            match chunk {
                Ok(c) => out.extend_from_slice(&c),
                Err(Error::BodyTooLarge { .. }) => break,
                Err(Error::Connect { .. } | Error::Protocol { .. }) if !out.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out.freeze())
    }

    fn timeout_error(&self, now: Instant) -> Error {
        let (phase, after) = if now >= self.limits.deadline {
            (TimeoutPhase::Total, self.limits.total)
        } else {
            (TimeoutPhase::Idle, self.limits.idle)
        };
        Error::Timeout {
            provider: self.provider.clone(),
            phase,
            after,
        }
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Bytes>>> {
        self.finished = true;
        self.inner = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            let Some(body) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.armed = false;
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    let data = match this.decoder.decode(data) {
                        Ok(d) => d,
                        Err(e) => {
                            let err = Error::Protocol {
                                provider: this.provider.clone(),
                                message: format!("cannot decode compressed body: {e}"),
                                snippet: String::new(),
                            };
                            return this.fail(err);
                        }
                    };
                    this.read = this.read.saturating_add(data.len());
                    if this.read > this.limits.max_body {
                        let err = Error::BodyTooLarge {
                            provider: this.provider.clone(),
                            limit: this.limits.max_body,
                        };
                        return this.fail(err);
                    }
                    if data.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Poll::Ready(Some(Err(e))) => {
                    let err = Error::Connect {
                        provider: this.provider.clone(),
                        message: format!("response body interrupted: {}", super::describe(&e)),
                    };
                    return this.fail(err);
                }
                Poll::Ready(None) => {
                    this.finished = true;
                    this.inner = None;
                    return match this.decoder.finish() {
                        Ok(rest) if rest.is_empty() => Poll::Ready(None),
                        Ok(rest) => Poll::Ready(Some(Ok(rest))),
                        Err(e) => Poll::Ready(Some(Err(Error::Protocol {
                            provider: this.provider.clone(),
                            message: format!("truncated compressed body: {e}"),
                            snippet: String::new(),
                        }))),
                    };
                }
                Poll::Pending => {
                    if !this.armed {
                        let wake = (Instant::now() + this.limits.idle).min(this.limits.deadline);
                        match this.sleep.as_mut() {
                            Some(s) => s.as_mut().reset(wake),
                            None => this.sleep = Some(Box::pin(tokio::time::sleep_until(wake))),
                        }
                        this.armed = true;
                    }
                    if this
                        .sleep
                        .as_mut()
                        .is_some_and(|s| s.as_mut().poll(cx).is_ready())
                    {
                        let err = this.timeout_error(Instant::now());
                        return this.fail(err);
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_round_trip() {
        let text = b"hello hello hello compressed world".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).expect("write");
        let compressed = gz.finish().expect("finish");
        let mut d = Decoder::for_encoding(Some("gzip")).expect("gzip");
        let mut out = Vec::new();
        for piece in compressed.chunks(7) {
            out.extend_from_slice(&d.decode(Bytes::copy_from_slice(piece)).expect("decode"));
        }
        out.extend_from_slice(&d.finish().expect("finish"));
        assert_eq!(out, text);
        assert!(Decoder::for_encoding(Some("zstd")).is_err());
    }
}
