//! Anthropic's streaming events, written as server-sent events (`event: <type>\ndata: <json>`).
//!
//! Order, as the API sends it: `message_start` (the message with empty `content`, `stop_reason:
//! null` and the input usage), `ping`, then per content block `content_block_start` (with its
//! `index`), `content_block_delta`s (`text_delta`, `thinking_delta` then one `signature_delta`,
//! `input_json_delta`), `content_block_stop`; then `message_delta` (`delta.stop_reason`,
//! `delta.stop_sequence`, `usage.output_tokens`) and `message_stop`. A failure after the start
//! is an `error` event, and no `message_delta` / `message_stop` follow it: a client never sees a
//! cut answer as complete.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::answer::{MessageOut, OutBlock, SIGNATURE, StopReason, Usage, tool_use_id};
use crate::error::ErrorBody;

/// One streaming event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event<'a> {
    /// The message, without content.
    MessageStart {
        /// The message.
        message: &'a MessageOut,
    },
    /// Keep-alive.
    Ping,
    /// A block begins.
    ContentBlockStart {
        /// Its position in `content`.
        index: usize,
        /// The block with empty text / input.
        content_block: &'a OutBlock,
    },
    /// A piece of the block.
    ContentBlockDelta {
        /// The block.
        index: usize,
        /// The piece.
        delta: Delta<'a>,
    },
    /// The block is complete.
    ContentBlockStop {
        /// The block.
        index: usize,
    },
    /// Top-level changes at the end.
    MessageDelta {
        /// Stop reason and sequence.
        delta: MessageDelta,
        /// Final counts.
        usage: DeltaUsage,
    },
    /// The message is complete.
    MessageStop,
}

/// A piece of a content block.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta<'a> {
    /// Text.
    TextDelta {
        /// The text.
        text: &'a str,
    },
    /// Reasoning.
    ThinkingDelta {
        /// The reasoning text.
        thinking: &'a str,
    },
    /// The thinking block's signature, just before its `content_block_stop`.
    SignatureDelta {
        /// The signature.
        signature: &'a str,
    },
    /// A piece of a tool call's input JSON.
    InputJsonDelta {
        /// The JSON text piece.
        partial_json: &'a str,
    },
}

/// `message_delta.delta`.
#[derive(Debug, Clone, Serialize)]
pub struct MessageDelta {
    /// Why the model stopped.
    pub stop_reason: StopReason,
    /// The stop sequence generated, if any.
    pub stop_sequence: Option<String>,
}

/// `message_delta.usage`: cumulative output tokens, and the input count once the upstream
/// reported it.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaUsage {
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens (the upstream's, replacing the estimate of `message_start`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
}

/// Appends `event: <name>\ndata: <json>\n\n`.
pub fn put(out: &mut Vec<u8>, name: &str, data: &impl Serialize) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // serialising plain data into memory cannot fail
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

fn put_event(out: &mut Vec<u8>, e: &Event<'_>) {
    let name = match e {
        Event::MessageStart { .. } => "message_start",
        Event::Ping => "ping",
        Event::ContentBlockStart { .. } => "content_block_start",
        Event::ContentBlockDelta { .. } => "content_block_delta",
        Event::ContentBlockStop { .. } => "content_block_stop",
        Event::MessageDelta { .. } => "message_delta",
        Event::MessageStop => "message_stop",
    };
    put(out, name, e);
}

/// The block open now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text,
    Thinking,
    /// A tool call, by its llmux index.
    Tool(u32),
}

/// Turns an answer's pieces into events, keeping block indices and open blocks straight.
#[derive(Debug)]
pub struct EventWriter {
    open: Open,
    /// Blocks started so far (the next block's index).
    blocks: usize,
    /// llmux tool-call indices already given a block (a call's later pieces must follow it).
    calls: Vec<u32>,
    started: bool,
}

impl Default for EventWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl EventWriter {
    /// A writer before `message_start`.
    pub fn new() -> Self {
        Self {
            open: Open::None,
            blocks: 0,
            calls: Vec::new(),
            started: false,
        }
    }

    /// True once `message_start` was written.
    pub fn started(&self) -> bool {
        self.started
    }

    /// True once a tool call started.
    pub fn had_tool_calls(&self) -> bool {
        !self.calls.is_empty()
    }

    /// `message_start` and a `ping`.
    pub fn start(&mut self, out: &mut Vec<u8>, message: &MessageOut) {
        self.started = true;
        put_event(out, &Event::MessageStart { message });
        put_event(out, &Event::Ping);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open == Open::None {
            return;
        }
        let index = self.blocks - 1;
        if self.open == Open::Thinking {
            let delta = Delta::SignatureDelta {
                signature: SIGNATURE,
            };
            put_event(out, &Event::ContentBlockDelta { index, delta });
        }
        put_event(out, &Event::ContentBlockStop { index });
        self.open = Open::None;
    }

    fn open(&mut self, out: &mut Vec<u8>, kind: Open, block: &OutBlock) -> usize {
        self.close(out);
        let index = self.blocks;
        self.blocks += 1;
        self.open = kind;
        put_event(
            out,
            &Event::ContentBlockStart {
                index,
                content_block: block,
            },
        );
        index
    }

    /// A text piece.
    pub fn text(&mut self, out: &mut Vec<u8>, text: &str) {
        let index = if self.open == Open::Text {
            self.blocks - 1
        } else {
            let empty = OutBlock::Text {
                text: String::new(),
            };
            self.open(out, Open::Text, &empty)
        };
        let delta = Delta::TextDelta { text };
        put_event(out, &Event::ContentBlockDelta { index, delta });
    }

    /// A reasoning piece.
    pub fn thinking(&mut self, out: &mut Vec<u8>, thinking: &str) {
        let index = if self.open == Open::Thinking {
            self.blocks - 1
        } else {
            let empty = OutBlock::Thinking {
                thinking: String::new(),
                signature: String::new(),
            };
            self.open(out, Open::Thinking, &empty)
        };
        let delta = Delta::ThinkingDelta { thinking };
        put_event(out, &Event::ContentBlockDelta { index, delta });
    }

    /// A piece of tool call `call` (llmux index): the first piece opens a `tool_use` block
    /// (with `id`, else a new `toolu_` id, and `name`). Pieces of a call whose block was
    /// already closed (interleaved parallel calls) cannot be written in Anthropic's sequential
    /// blocks: that is an error.
    pub fn tool(
        &mut self,
        out: &mut Vec<u8>,
        call: u32,
        id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
    ) -> Result<(), String> {
        let index = if self.open == Open::Tool(call) {
            self.blocks - 1
        } else if self.calls.contains(&call) {
            return Err(format!(
                "the upstream interleaved the arguments of parallel tool calls (call {call} \
                 continued after the next call began), which Anthropic's sequential content \
                 blocks cannot carry; retry without streaming"
            ));
        } else {
            self.calls.push(call);
            let block = OutBlock::ToolUse {
                id: id
                    .filter(|i| !i.is_empty())
                    .map_or_else(tool_use_id, str::to_owned),
                name: name.unwrap_or_default().to_owned(),
                input: Value::Object(Map::new()),
            };
            self.open(out, Open::Tool(call), &block)
        };
        if !arguments.is_empty() {
            let delta = Delta::InputJsonDelta {
                partial_json: arguments,
            };
            put_event(out, &Event::ContentBlockDelta { index, delta });
        }
        Ok(())
    }

    /// Closes the open block, then `message_delta` and `message_stop`.
    pub fn finish(
        &mut self,
        out: &mut Vec<u8>,
        stop_reason: StopReason,
        stop_sequence: Option<String>,
        usage: &Usage,
        upstream_input: bool,
    ) {
        self.close(out);
        put_event(
            out,
            &Event::MessageDelta {
                delta: MessageDelta {
                    stop_reason,
                    stop_sequence,
                },
                usage: DeltaUsage {
                    output_tokens: usage.output_tokens,
                    input_tokens: upstream_input.then_some(usage.input_tokens),
                },
            },
        );
        put_event(out, &Event::MessageStop);
    }

    /// An `error` event (the stream ends after it, with no `message_stop`).
    pub fn error(&mut self, out: &mut Vec<u8>, error: &ErrorBody) {
        put(out, "error", error);
    }
}
