//! Answers in OpenAI's shape, borrowed for writing: the `chat.completion` object and the
//! `chat.completion.chunk` events of a stream. The `extra` maps carry the fields llmux does not
//! model (and llmux's own `provider` / `conversation`) at their level.

use llmux_core::{ToolCall, Usage};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

/// An empty map, for answers without extras.
pub static NO_EXTRA: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// A whole `chat.completion`.
#[derive(Debug, Serialize)]
pub struct ChatCompletion<'a> {
    /// `chatcmpl-…`.
    pub id: &'a str,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model that answered.
    pub model: &'a str,
    /// The one choice.
    pub choices: [Choice<'a>; 1],
    /// Token usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<&'a Usage>,
    /// Other response-level fields.
    #[serde(flatten)]
    pub extra: &'a Map<String, Value>,
}

/// The choice of a `chat.completion`.
#[derive(Debug, Serialize)]
pub struct Choice<'a> {
    /// Always 0.
    pub index: u32,
    /// The answer.
    pub message: AnswerMessage<'a>,
    /// Log probabilities (`null` unless asked for).
    pub logprobs: &'a Value,
    /// Why the model stopped.
    pub finish_reason: &'a str,
    /// Other choice-level fields.
    #[serde(flatten)]
    pub extra: &'a Map<String, Value>,
}

/// The assistant message of a `chat.completion`.
#[derive(Debug, Serialize)]
pub struct AnswerMessage<'a> {
    /// Always `assistant`.
    pub role: &'static str,
    /// The text; `null` when the model only called tools.
    pub content: Option<&'a str>,
    /// Reasoning text (llmux's and DeepSeek's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    /// The tool calls.
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "calls")]
    pub tool_calls: &'a [ToolCall],
    /// Other message-level fields (`refusal`, `annotations`, …).
    #[serde(flatten)]
    pub extra: &'a Map<String, Value>,
}

fn calls<S: Serializer>(calls: &&[ToolCall], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(calls.iter().map(WireCall))
}

/// A complete call in OpenAI's shape: `{"id","type":"function","function":{"name","arguments"}}`.
struct WireCall<'a>(&'a ToolCall);

impl Serialize for WireCall<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3 + self.0.extra.len()))?;
        m.serialize_entry("id", &self.0.id)?;
        m.serialize_entry("type", "function")?;
        m.serialize_entry(
            "function",
            &FunctionPiece {
                name: Some(&self.0.name),
                arguments: &self.0.arguments,
            },
        )?;
        for (k, v) in &self.0.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// One `chat.completion.chunk` event.
#[derive(Debug, Serialize)]
pub struct ChatCompletionChunk<'a> {
    /// The stream's id (the same on every chunk).
    pub id: &'a str,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model that answers.
    pub model: &'a str,
    /// Zero choices (the usage chunk) or one.
    pub choices: &'a [ChunkChoice<'a>],
    /// Token usage (the last chunk, when the client asked for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<&'a Usage>,
    /// Other response-level fields.
    #[serde(flatten)]
    pub extra: &'a Map<String, Value>,
}

/// The fields of a chunk before `choices` (`id`, `object`, `created`, `model` and the
/// response-level `extra`), as JSON without the closing brace: a writer that caches them appends
/// `,"choices":[…]` (and `,"usage":…`) and `}` per event, which writes the same object as
/// [`ChatCompletionChunk`] without serialising the same strings again for every event.
pub fn chunk_head(id: &str, created: u64, model: &str, extra: &Map<String, Value>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Head<'a> {
        id: &'a str,
        object: &'static str,
        created: u64,
        model: &'a str,
        #[serde(flatten)]
        extra: &'a Map<String, Value>,
    }
    let head = Head {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        extra,
    };
    // serialising strings and JSON values into memory cannot fail
    let mut out = serde_json::to_vec(&head).unwrap_or_else(|_| b"{}".to_vec());
    out.pop();
    out
}

/// The text field of a plain delta (see [`write_text_choices`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextDelta {
    /// `content`.
    Content,
    /// `reasoning_content`.
    Reasoning,
}

/// Writes the `choices` of the most common chunk, one piece of text and nothing else:
/// `[{"index":0,"delta":{"content":"…"},"logprobs":null,"finish_reason":null}]` (or
/// `reasoning_content`). The same bytes as serialising a [`ChunkChoice`] with only that text
/// (no role, tool calls, extras, log probabilities or finish reason), written directly; the
/// text is escaped by `serde_json`.
pub fn write_text_choices<W: std::io::Write>(
    mut w: W,
    field: TextDelta,
    text: &str,
) -> std::io::Result<()> {
    w.write_all(match field {
        TextDelta::Content => b"[{\"index\":0,\"delta\":{\"content\":",
        TextDelta::Reasoning => b"[{\"index\":0,\"delta\":{\"reasoning_content\":",
    })?;
    serde_json::to_writer(&mut w, text)?;
    w.write_all(b"},\"logprobs\":null,\"finish_reason\":null}]")
}

/// The choice of a chunk.
#[derive(Debug, Serialize)]
pub struct ChunkChoice<'a> {
    /// Always 0.
    pub index: u32,
    /// What is new.
    pub delta: Delta<'a>,
    /// Log probabilities of this piece (`null` unless asked for).
    pub logprobs: &'a Value,
    /// Set on the last chunk with a choice.
    pub finish_reason: Option<&'a str>,
    /// Other choice-level fields.
    #[serde(flatten)]
    pub extra: &'a Map<String, Value>,
}

/// The delta of a chunk.
#[derive(Debug, Default, Serialize)]
pub struct Delta<'a> {
    /// `assistant`, on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// A piece of text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    /// A piece of reasoning text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    /// Pieces of tool calls.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub tool_calls: &'a [ToolCallPiece<'a>],
    /// Other delta-level fields.
    #[serde(flatten)]
    pub extra: Option<&'a Map<String, Value>>,
}

/// A piece of a tool call: the first carries `id`, `type` and `name`, later ones only
/// argument text.
#[derive(Debug, Serialize)]
pub struct ToolCallPiece<'a> {
    /// Which call.
    pub index: u32,
    /// Call id (first piece).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// `function` (first piece).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Name and argument text.
    pub function: FunctionPiece<'a>,
    /// Fields of the call object llmux does not model.
    #[serde(flatten)]
    pub extra: Option<&'a Map<String, Value>>,
}

/// The function part of a tool-call piece.
#[derive(Debug, Serialize)]
pub struct FunctionPiece<'a> {
    /// Function name (first piece).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// A fragment of the JSON arguments.
    pub arguments: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn completion_shape() {
        let calls = [ToolCall::new("c", "f", "{}")];
        let mut extra = Map::new();
        extra.insert("system_fingerprint".into(), json!("fp"));
        let usage = Usage::new(1, 2);
        let c = ChatCompletion {
            id: "chatcmpl-1",
            object: "chat.completion",
            created: 5,
            model: "m",
            choices: [Choice {
                index: 0,
                message: AnswerMessage {
                    role: "assistant",
                    content: None,
                    reasoning_content: None,
                    tool_calls: &calls,
                    extra: &NO_EXTRA,
                },
                logprobs: &Value::Null,
                finish_reason: "tool_calls",
                extra: &NO_EXTRA,
            }],
            usage: Some(&usage),
            extra: &extra,
        };
        assert_eq!(
            serde_json::to_value(&c).expect("json"),
            json!({"id":"chatcmpl-1","object":"chat.completion","created":5,"model":"m",
                "choices":[{"index":0,"message":{"role":"assistant","content":null,
                "tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
                "logprobs":null,"finish_reason":"tool_calls"}],
                "usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3},
                "system_fingerprint":"fp"})
        );
    }

    #[test]
    fn cached_head_writes_the_same_chunk() {
        let mut extra = Map::new();
        extra.insert("provider".into(), json!("p\"q"));
        let choices: [ChunkChoice<'_>; 0] = [];
        let whole = serde_json::to_vec(&ChatCompletionChunk {
            id: "x",
            object: "chat.completion.chunk",
            created: 7,
            model: "m",
            choices: &choices,
            usage: None,
            extra: &extra,
        })
        .expect("json");
        let mut pieced = chunk_head("x", 7, "m", &extra);
        pieced.extend_from_slice(b",\"choices\":[]}");
        let (a, b): (Value, Value) = (
            serde_json::from_slice(&whole).expect("json"),
            serde_json::from_slice(&pieced).expect("json"),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn text_choices_written_directly_are_the_serialised_ones() {
        let mut texts: Vec<String> = [
            "",
            "a",
            "Hello, world",
            "\"quoted\"",
            "back\\slash",
            "line\nbreak\r\ttab",
            "\u{0}\u{1}\u{1f}\u{7f}",
            "é ü ß 日本語",
            "😀 \u{10ffff}",
            "</script>",
            "\u{2028}\u{2029}",
            "{\"json\":[1,2]}",
            "   ",
            "\u{feff}bom",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // every char up to U+0800, and a sample beyond
        texts.extend(
            (0u32..0x800)
                .chain((0x800..0x11_0000).step_by(997))
                .filter_map(|c| char::from_u32(c).map(|c| format!("x{c}y{c}"))),
        );
        for text in &texts {
            for field in [TextDelta::Content, TextDelta::Reasoning] {
                let delta = match field {
                    TextDelta::Content => Delta {
                        content: Some(text),
                        ..Delta::default()
                    },
                    TextDelta::Reasoning => Delta {
                        reasoning_content: Some(text),
                        ..Delta::default()
                    },
                };
                let choices = [ChunkChoice {
                    index: 0,
                    delta,
                    logprobs: &Value::Null,
                    finish_reason: None,
                    extra: &NO_EXTRA,
                }];
                let serialised = serde_json::to_vec(&choices).expect("json");
                let mut direct = Vec::new();
                write_text_choices(&mut direct, field, text).expect("write");
                assert_eq!(
                    String::from_utf8_lossy(&direct),
                    String::from_utf8_lossy(&serialised),
                    "{text:?}"
                );
                assert_eq!(direct, serialised);
            }
        }
    }

    #[test]
    fn chunk_shape() {
        let pieces = [ToolCallPiece {
            index: 0,
            id: Some("c"),
            kind: Some("function"),
            function: FunctionPiece {
                name: Some("f"),
                arguments: "",
            },
            extra: None,
        }];
        let choices = [ChunkChoice {
            index: 0,
            delta: Delta {
                tool_calls: &pieces,
                ..Delta::default()
            },
            logprobs: &Value::Null,
            finish_reason: None,
            extra: &NO_EXTRA,
        }];
        let c = ChatCompletionChunk {
            id: "x",
            object: "chat.completion.chunk",
            created: 1,
            model: "m",
            choices: &choices,
            usage: None,
            extra: &NO_EXTRA,
        };
        assert_eq!(
            serde_json::to_string(&c).expect("json"),
            r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":""}}]},"logprobs":null,"finish_reason":null}]}"#
        );
    }
}
