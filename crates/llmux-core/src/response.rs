//! Folding a chunk stream into one [`ChatResponse`].

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::chunk::{ChatStream, Chunk, FinishReason, Image, MediaData, Source, Usage};
use crate::error::Result;
use crate::request::Conversation;

/// A whole answer, accumulated from a stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The answer text.
    pub text: String,
    /// Reasoning text, when the model shared it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reasoning: String,
    /// Generated images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// Generated audio.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audio: Vec<MediaData>,
    /// Web sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Conversation title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Why generation stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Token usage, when the upstream reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// State to hand back next turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Conversation>,
    /// Provider that answered.
    #[serde(default)]
    pub provider: String,
    /// Model that answered.
    #[serde(default)]
    pub model: String,
    /// Login prompt (label, URL), when the provider asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_required: Option<(String, String)>,
    /// Number of content chunks received.
    #[serde(default)]
    pub chunks: u64,
}

/// Folds chunks into a [`ChatResponse`]; feed it with [`Accumulator::push`].
#[derive(Debug, Default)]
pub struct Accumulator {
    response: ChatResponse,
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &Chunk) {
        let r = &mut self.response;
        if chunk.is_content() {
            r.chunks += 1;
        }
        match chunk {
            Chunk::Text(t) => r.text.push_str(t),
            Chunk::Reasoning(x) => {
                if let Some(t) = &x.token {
                    r.reasoning.push_str(t);
                }
            }
            Chunk::Images(images) => r.images.extend(images.iter().cloned()),
            Chunk::Audio(a) => r.audio.push(a.clone()),
            Chunk::Sources(s) => {
                for src in s {
                    if !r.sources.iter().any(|x| x.url == src.url) {
                        r.sources.push(src.clone());
                    }
                }
            }
            Chunk::Title(t) => r.title = Some(t.clone()),
            Chunk::Finish(f) => r.finish_reason = Some(f.clone()),
            Chunk::Usage(u) => r.usage = Some(u.clone()),
            Chunk::Conversation(c) => r.conversation = Some(c.clone()),
            Chunk::Provider(p) => {
                r.provider = p.provider.clone();
                r.model = p.model.clone();
            }
            Chunk::LoginRequired { label, url } => {
                r.login_required = Some((label.clone(), url.clone()));
            }
        }
    }

    /// A view of what has been accumulated so far.
    pub fn current(&self) -> &ChatResponse {
        &self.response
    }

    /// The accumulated response.
    pub fn finish(self) -> ChatResponse {
        self.response
    }
}

/// Drains a stream into a [`ChatResponse`]; the first error ends it.
pub async fn collect(mut stream: ChatStream) -> Result<ChatResponse> {
    let mut acc = Accumulator::new();
    while let Some(chunk) = stream.next().await {
        acc.push(&chunk?);
    }
    Ok(acc.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{ProviderInfoChunk, Reasoning};

    #[tokio::test]
    async fn folds_everything() {
        let chunks = vec![
            Ok(Chunk::Provider(ProviderInfoChunk {
                provider: "p".into(),
                label: "P".into(),
                url: "u".into(),
                model: "m".into(),
            })),
            Ok(Chunk::Reasoning(Reasoning::token("think "))),
            Ok(Chunk::Reasoning(Reasoning::status("done"))),
            Ok(Chunk::text("Hel")),
            Ok(Chunk::text("lo")),
            Ok(Chunk::Sources(vec![Source {
                url: "https://a".into(),
                title: "A".into(),
            }])),
            Ok(Chunk::Sources(vec![Source {
                url: "https://a".into(),
                title: "A".into(),
            }])),
            Ok(Chunk::Title("T".into())),
            Ok(Chunk::Finish(FinishReason::Stop)),
        ];
        let stream: ChatStream = Box::pin(futures_util::stream::iter(chunks));
        let r = collect(stream).await.expect("ok");
        assert_eq!(r.text, "Hello");
        assert_eq!(r.reasoning, "think ");
        assert_eq!(r.sources.len(), 1);
        assert_eq!(r.title.as_deref(), Some("T"));
        assert_eq!(r.finish_reason, Some(FinishReason::Stop));
        assert_eq!((r.provider.as_str(), r.model.as_str()), ("p", "m"));
        assert_eq!(r.chunks, 3);
    }
}
