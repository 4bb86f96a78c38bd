//! Helpers for tests of llmux providers and clients against the fakes (feature `chat`): drain a
//! chat stream, read its text and providers, pick registrations by name.

use llmux_core::futures_util::StreamExt;
use llmux_core::{ChatStream, Chunk, Error, Registration};

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

/// The text chunks of a chunk list, in order.
pub fn texts(chunks: &[Chunk]) -> Vec<&str> {
    chunks
        .iter()
        .filter_map(|c| match c {
            Chunk::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// The text chunks of a chunk list, concatenated.
pub fn text_of(chunks: &[Chunk]) -> String {
    texts(chunks).concat()
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

/// The registrations linked into this binary whose name is one of `names`.
pub fn registrations(names: &[&str]) -> Vec<&'static Registration> {
    llmux_core::registrations()
        .expect("registrations")
        .into_iter()
        .filter(|r| names.contains(&r.name))
        .collect()
}
