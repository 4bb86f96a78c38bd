//! Folding a chunk stream into one [`ChatResponse`].

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use serde_json::{Map, Value};

use crate::chunk::{
    ChatStream, Chunk, Extra, ExtraScope, FinishReason, Image, MediaData, Source, ToolCallDelta,
    Usage,
};
use crate::error::{Error, Result};
use crate::request::{Conversation, ToolCall};

/// Upstream fields llmux does not model, by where they belong (see [`Extra`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtraFields {
    /// Response-level fields (`system_fingerprint`, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub response: Map<String, Value>,
    /// Choice-level fields (`logprobs`, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub choice: Map<String, Value>,
    /// Message-level fields (`refusal`, `annotations`, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub message: Map<String, Value>,
}

impl ExtraFields {
    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.response.is_empty() && self.choice.is_empty() && self.message.is_empty()
    }

    /// Merges `extra` in: response fields replace earlier values; choice and message fields
    /// that stream in pieces are joined (strings and arrays appended, objects merged), as
    /// OpenAI's SDKs assemble `refusal` text and `logprobs.content` lists.
    pub fn merge(&mut self, extra: &Extra) {
        let target = match extra.scope {
            ExtraScope::Response => {
                for (k, v) in &extra.fields {
                    self.response.insert(k.clone(), v.clone());
                }
                return;
            }
            ExtraScope::Choice => &mut self.choice,
            ExtraScope::Message => &mut self.message,
        };
        for (k, v) in &extra.fields {
            match target.get_mut(k) {
                Some(old) => join(old, v),
                None => {
                    target.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

/// Joins a streamed piece `new` onto `old`.
fn join(old: &mut Value, new: &Value) {
    match (old, new) {
        (_, Value::Null) => {}
        (Value::String(a), Value::String(b)) => a.push_str(b),
        (Value::Array(a), Value::Array(b)) => a.extend(b.iter().cloned()),
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(o) => join(o, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (old, new) => *old = new.clone(),
    }
}

/// Assembles streamed [`ToolCallDelta`]s into complete [`ToolCall`]s.
///
/// The first piece of each call (by `index`) must carry its id and name; later pieces append
/// argument text. Some servers repeat the id and name on every piece: a repeated name is not
/// appended again.
#[derive(Debug, Clone, Default)]
pub struct ToolCallAssembler {
    /// The `index` of each call in `calls`.
    indices: Vec<u32>,
    calls: Vec<ToolCall>,
}

/// Applies one piece to `calls` (whose `index` values are `indices`).
fn apply_delta(indices: &mut Vec<u32>, calls: &mut Vec<ToolCall>, d: &ToolCallDelta) {
    let pos = match indices.iter().position(|i| *i == d.index) {
        Some(p) => p,
        None => {
            // keep `index` order even when a server starts calls out of order
            let p = indices
                .iter()
                .position(|i| *i > d.index)
                .unwrap_or(indices.len());
            indices.insert(p, d.index);
            calls.insert(p, ToolCall::default());
            p
        }
    };
    let call = &mut calls[pos];
    if let Some(id) = d.id.as_deref().filter(|s| !s.is_empty()) {
        id.clone_into(&mut call.id);
    }
    if let Some(name) = d.name.as_deref().filter(|s| !s.is_empty()) {
        if call.name.is_empty() {
            name.clone_into(&mut call.name);
        } else if call.name != name {
            call.name.push_str(name);
        }
    }
    call.arguments.push_str(&d.arguments);
    for (k, v) in &d.extra {
        call.extra.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

impl ToolCallAssembler {
    /// Adds one piece.
    pub fn push(&mut self, d: &ToolCallDelta) {
        apply_delta(&mut self.indices, &mut self.calls, d);
    }

    /// True when no piece was added.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The calls so far, in `index` order.
    pub fn calls(&self) -> &[ToolCall] {
        &self.calls
    }

    /// The complete calls: each has a name; arguments that are empty become `{}`. A call
    /// without a name is a protocol error of `provider`.
    pub fn finish(self, provider: &str) -> Result<Vec<ToolCall>> {
        let mut calls = self.calls;
        for c in &mut calls {
            if c.name.is_empty() {
                return Err(Error::protocol(
                    provider,
                    "a tool call without a function name",
                    &c.arguments,
                ));
            }
            if c.arguments.trim().is_empty() {
                c.arguments = "{}".into();
            }
        }
        Ok(calls)
    }
}

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
    /// The tool calls the model made (complete, in order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Upstream fields llmux does not model.
    #[serde(default, skip_serializing_if = "ExtraFields::is_empty")]
    pub extra: ExtraFields,
}

/// Folds chunks into a [`ChatResponse`]; feed it with [`Accumulator::push`].
#[derive(Debug, Default)]
pub struct Accumulator {
    response: ChatResponse,
    tool_indices: Vec<u32>,
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
            Chunk::ToolCall(d) => apply_delta(&mut self.tool_indices, &mut r.tool_calls, d),
            Chunk::Extra(e) => r.extra.merge(e),
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
                ignored_params: Vec::new(),
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
