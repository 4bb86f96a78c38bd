//! Shared helpers of the workspace-level end-to-end tests.

pub mod capture;
pub mod matrix;
pub mod runner;

use std::time::Duration;

use futures_util::StreamExt;
use llmux::{ChatStream, Chunk, Error, Timeouts};

/// Short timeouts so failure tests end quickly.
pub fn short_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(2),
        idle: Duration::from_millis(500),
        total: Duration::from_secs(5),
    }
}

/// Drains a stream into its chunks and the error that ended it, if any.
pub async fn drain(mut stream: ChatStream) -> (Vec<Chunk>, Option<Error>) {
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(c) => chunks.push(c),
            Err(e) => return (chunks, Some(e)),
        }
    }
    (chunks, None)
}

/// The text chunks of a chunk list, concatenated.
pub fn text_of(chunks: &[Chunk]) -> String {
    chunks
        .iter()
        .filter_map(|c| match c {
            Chunk::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// The providers announced by `Chunk::Provider`, in order.
pub fn providers_of(chunks: &[Chunk]) -> Vec<String> {
    chunks
        .iter()
        .filter_map(|c| match c {
            Chunk::Provider(p) => Some(p.provider.clone()),
            _ => None,
        })
        .collect()
}
