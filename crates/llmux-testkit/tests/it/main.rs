//! Integration tests of llmux-testkit (one binary, several modules, to keep
//! link time low).

#![allow(missing_docs, clippy::unwrap_used)]

#[cfg(feature = "cli")]
mod cli;
mod faults;
mod openai;
mod server;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short timeout for things that must happen promptly.
pub const SHORT: Duration = Duration::from_secs(3);

/// Writes `raw` to a new connection and reads until EOF, error or `SHORT`.
/// Returns the bytes read and whether the read ended cleanly (EOF) rather than
/// with an error (e.g. reset).
pub async fn raw_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may already have closed the connection; ignore write errors.
    let _ = s.write_all(raw).await;
    let mut out = Vec::new();
    let res = tokio::time::timeout(SHORT, s.read_to_end(&mut out)).await;
    let clean = matches!(res, Ok(Ok(_)));
    assert!(res.is_ok(), "raw_exchange timed out");
    (out, clean)
}

/// The `data:` payloads of an SSE body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            f.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}
