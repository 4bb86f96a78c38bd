//! From chat chunks to output items and the Responses stream's typed events.

use serde::Serialize;
use serde_json::Value;

use super::new_id;
use super::object::{
    IncompleteDetails, OutputContent, OutputItem, ResponseError, ResponseObject, ResponseUsage,
    SummaryPart,
};

/// One stream event (the `type` tag and its payload).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum StreamEvent {
    /// The response exists (`status` `in_progress`).
    #[serde(rename = "response.created")]
    Created {
        /// Snapshot.
        response: ResponseObject,
    },
    /// The response is being generated.
    #[serde(rename = "response.in_progress")]
    InProgress {
        /// Snapshot.
        response: ResponseObject,
    },
    /// A new output item.
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        /// Its index in `output`.
        output_index: usize,
        /// The item as it starts.
        item: OutputItem,
    },
    /// A new part of a message.
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded {
        /// The message.
        item_id: String,
        /// Its index in `output`.
        output_index: usize,
        /// The part's index in `content`.
        content_index: usize,
        /// The part as it starts.
        part: OutputContent,
    },
    /// Text of a message part.
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        /// The message.
        item_id: String,
        /// Its index in `output`.
        output_index: usize,
        /// The part's index.
        content_index: usize,
        /// The new text.
        delta: String,
        /// Always empty.
        logprobs: Vec<Value>,
    },
    /// A message part's whole text.
    #[serde(rename = "response.output_text.done")]
    OutputTextDone {
        /// The message.
        item_id: String,
        /// Its index in `output`.
        output_index: usize,
        /// The part's index.
        content_index: usize,
        /// The text.
        text: String,
        /// Always empty.
        logprobs: Vec<Value>,
    },
    /// A message part is complete.
    #[serde(rename = "response.content_part.done")]
    ContentPartDone {
        /// The message.
        item_id: String,
        /// Its index in `output`.
        output_index: usize,
        /// The part's index.
        content_index: usize,
        /// The whole part.
        part: OutputContent,
    },
    /// Refusal text of a message part.
    #[serde(rename = "response.refusal.delta")]
    RefusalDelta {
        /// The message.
        item_id: String,
        /// Its index in `output`.
        output_index: usize,
        /// The part's index.
        content_index: usize,
        /// The new text.
        delta: String,
    },
    /// A refusal part's whole text.
    #[serde(rename = "response.refusal.done")]
    RefusalDone {
        /// The message.
        item_id: String,
        /// Its index in `output`.
        output_index: usize,
        /// The part's index.
        content_index: usize,
        /// The text.
        refusal: String,
    },
    /// Arguments of a function call.
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        /// The call item.
        item_id: String,
        /// Its index in `output`.
        output_index: usize,
        /// The new arguments text.
        delta: String,
    },
    /// A function call's whole arguments.
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        /// The call item.
        item_id: String,
        /// Its index in `output`.
        output_index: usize,
        /// The function.
        name: String,
        /// The arguments.
        arguments: String,
    },
    /// A new summary part of a reasoning item.
    #[serde(rename = "response.reasoning_summary_part.added")]
    ReasoningSummaryPartAdded {
        /// The reasoning item.
        item_id: String,
        /// Its index in `output`.
        output_index: usize,
        /// The part's index in `summary`.
        summary_index: usize,
        /// The part as it starts.
        part: SummaryPart,
    },
    /// Reasoning text.
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryTextDelta {
        /// The reasoning item.
        item_id: String,
        /// Its index in `output`.
        output_index: usize,
        /// The part's index.
        summary_index: usize,
        /// The new text.
        delta: String,
    },
    /// A summary part's whole text.
    #[serde(rename = "response.reasoning_summary_text.done")]
    ReasoningSummaryTextDone {
        /// The reasoning item.
        item_id: String,
        /// Its index in `output`.
        output_index: usize,
        /// The part's index.
        summary_index: usize,
        /// The text.
        text: String,
    },
    /// A summary part is complete.
    #[serde(rename = "response.reasoning_summary_part.done")]
    ReasoningSummaryPartDone {
        /// The reasoning item.
        item_id: String,
        /// Its index in `output`.
        output_index: usize,
        /// The part's index.
        summary_index: usize,
        /// The whole part.
        part: SummaryPart,
    },
    /// An output item is complete.
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        /// Its index in `output`.
        output_index: usize,
        /// The whole item.
        item: OutputItem,
    },
    /// The response is complete.
    #[serde(rename = "response.completed")]
    Completed {
        /// The final response.
        response: ResponseObject,
    },
    /// The response ended early (token limit, content filter).
    #[serde(rename = "response.incomplete")]
    Incomplete {
        /// The final response.
        response: ResponseObject,
    },
    /// The response failed after the stream began.
    #[serde(rename = "response.failed")]
    Failed {
        /// The response, `status` `failed`, with its `error`.
        response: ResponseObject,
    },
}

impl StreamEvent {
    /// The event's `type` (also its SSE `event:` name).
    pub fn kind(&self) -> &'static str {
        match self {
            StreamEvent::Created { .. } => "response.created",
            StreamEvent::InProgress { .. } => "response.in_progress",
            StreamEvent::OutputItemAdded { .. } => "response.output_item.added",
            StreamEvent::ContentPartAdded { .. } => "response.content_part.added",
            StreamEvent::OutputTextDelta { .. } => "response.output_text.delta",
            StreamEvent::OutputTextDone { .. } => "response.output_text.done",
            StreamEvent::ContentPartDone { .. } => "response.content_part.done",
            StreamEvent::RefusalDelta { .. } => "response.refusal.delta",
            StreamEvent::RefusalDone { .. } => "response.refusal.done",
            StreamEvent::FunctionCallArgumentsDelta { .. } => {
                "response.function_call_arguments.delta"
            }
            StreamEvent::FunctionCallArgumentsDone { .. } => {
                "response.function_call_arguments.done"
            }
            StreamEvent::ReasoningSummaryPartAdded { .. } => {
                "response.reasoning_summary_part.added"
            }
            StreamEvent::ReasoningSummaryTextDelta { .. } => {
                "response.reasoning_summary_text.delta"
            }
            StreamEvent::ReasoningSummaryTextDone { .. } => "response.reasoning_summary_text.done",
            StreamEvent::ReasoningSummaryPartDone { .. } => "response.reasoning_summary_part.done",
            StreamEvent::OutputItemDone { .. } => "response.output_item.done",
            StreamEvent::Completed { .. } => "response.completed",
            StreamEvent::Incomplete { .. } => "response.incomplete",
            StreamEvent::Failed { .. } => "response.failed",
        }
    }
}

/// An event with its `sequence_number` (0, 1, 2, … within one stream).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sequenced {
    /// The event.
    #[serde(flatten)]
    pub event: StreamEvent,
    /// Its position in the stream.
    pub sequence_number: u64,
}

/// Builds a response from the pieces of a chat answer: text, reasoning and tool-call deltas
/// open and fill output items; [`Builder::finish`] or [`Builder::fail`] ends it. With `emit`,
/// every step also queues its stream events ([`Builder::take_events`]).
#[derive(Debug)]
pub struct Builder {
    /// The response so far.
    pub response: ResponseObject,
    /// Output indices of the items still open, in the order they opened.
    open: Vec<usize>,
    /// Tool-call index of the chat answer → output index.
    calls: Vec<(u32, usize)>,
    seq: u64,
    events: Vec<Sequenced>,
    emit: bool,
}

impl Builder {
    /// A builder filling `response` (its `output` is expected empty).
    pub fn new(response: ResponseObject, emit: bool) -> Self {
        Self {
            response,
            open: Vec::new(),
            calls: Vec::new(),
            seq: 0,
            events: Vec::new(),
            emit,
        }
    }

    /// The queued events, in order.
    pub fn take_events(&mut self) -> Vec<Sequenced> {
        std::mem::take(&mut self.events)
    }

    fn push(&mut self, event: impl FnOnce(&Self) -> StreamEvent) {
        if self.emit {
            let event = event(self);
            self.events.push(Sequenced {
                event,
                sequence_number: self.seq,
            });
            self.seq += 1;
        }
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self) {
        self.push(|b| StreamEvent::Created {
            response: b.response.clone(),
        });
        self.push(|b| StreamEvent::InProgress {
            response: b.response.clone(),
        });
    }

    fn last_open(&self) -> Option<&OutputItem> {
        self.open.last().and_then(|i| self.response.output.get(*i))
    }

    /// Opens an item, closing the open ones unless `keep_calls` and they are function calls.
    fn open_item(&mut self, item: OutputItem, keep_calls: bool) -> usize {
        if keep_calls {
            let others: Vec<usize> = self
                .open
                .iter()
                .copied()
                .filter(|i| {
                    !matches!(
                        self.response.output.get(*i),
                        Some(OutputItem::FunctionCall { .. })
                    )
                })
                .collect();
            for i in others {
                self.close(i);
            }
        } else {
            self.close_all();
        }
        let index = self.response.output.len();
        self.response.output.push(item);
        self.open.push(index);
        self.push(|b| StreamEvent::OutputItemAdded {
            output_index: index,
            item: b.response.output[index].clone(),
        });
        index
    }

    /// The open message's output index, opening one (with a first `part`) when none is.
    fn message(&mut self, part: OutputContent) -> usize {
        if let Some(OutputItem::Message { .. }) = self.last_open() {
            return self.open.last().copied().unwrap_or_default();
        }
        let id = new_id("msg");
        let index = self.open_item(
            OutputItem::Message {
                id: id.clone(),
                status: "in_progress".into(),
                role: "assistant".into(),
                content: Vec::new(),
            },
            false,
        );
        self.add_part(index, part);
        index
    }

    /// Adds an (empty) part to message `index`; returns its content index.
    fn add_part(&mut self, index: usize, part: OutputContent) -> usize {
        let Some(OutputItem::Message { id, content, .. }) = self.response.output.get_mut(index)
        else {
            return 0;
        };
        content.push(part.clone());
        let (item_id, content_index) = (id.clone(), content.len() - 1);
        self.push(|_| StreamEvent::ContentPartAdded {
            item_id,
            output_index: index,
            content_index,
            part,
        });
        content_index
    }

    /// Message text.
    pub fn text(&mut self, t: &str) {
        let index = self.message(OutputContent::text(""));
        let needs_part = match self.response.output.get(index) {
            Some(OutputItem::Message { content, .. }) => {
                !matches!(content.last(), Some(OutputContent::OutputText { .. }))
            }
            _ => false,
        };
        if needs_part {
            self.add_part(index, OutputContent::text(""));
        }
        let Some(OutputItem::Message { id, content, .. }) = self.response.output.get_mut(index)
        else {
            return;
        };
        if let Some(OutputContent::OutputText { text, .. }) = content.last_mut() {
            text.push_str(t);
        }
        let (item_id, content_index) = (id.clone(), content.len().saturating_sub(1));
        self.push(|_| StreamEvent::OutputTextDelta {
            item_id,
            output_index: index,
            content_index,
            delta: t.to_owned(),
            logprobs: Vec::new(),
        });
    }

    /// A refusal (the whole text): a `refusal` part of the open message, or of a new one.
    pub fn refusal(&mut self, r: &str) {
        let empty = OutputContent::Refusal {
            refusal: String::new(),
        };
        let index = self.message(empty.clone());
        let has_part = matches!(
            self.response.output.get(index),
            Some(OutputItem::Message { content, .. })
                if matches!(content.last(), Some(OutputContent::Refusal { refusal }) if refusal.is_empty())
        );
        if !has_part {
            self.add_part(index, empty);
        }
        let Some(OutputItem::Message { id, content, .. }) = self.response.output.get_mut(index)
        else {
            return;
        };
        if let Some(OutputContent::Refusal { refusal }) = content.last_mut() {
            refusal.push_str(r);
        }
        let (item_id, content_index) = (id.clone(), content.len().saturating_sub(1));
        self.push(|_| StreamEvent::RefusalDelta {
            item_id,
            output_index: index,
            content_index,
            delta: r.to_owned(),
        });
    }

    /// Reasoning text (rendered as a reasoning item's summary).
    pub fn reasoning(&mut self, t: &str) {
        let index = match self.last_open() {
            Some(OutputItem::Reasoning { .. }) => self.open.last().copied().unwrap_or_default(),
            _ => {
                let id = new_id("rs");
                let index = self.open_item(
                    OutputItem::Reasoning {
                        id: id.clone(),
                        summary: Vec::new(),
                    },
                    false,
                );
                if let Some(OutputItem::Reasoning { summary, .. }) =
                    self.response.output.get_mut(index)
                {
                    summary.push(SummaryPart::new(""));
                }
                self.push(|_| StreamEvent::ReasoningSummaryPartAdded {
                    item_id: id,
                    output_index: index,
                    summary_index: 0,
                    part: SummaryPart::new(""),
                });
                index
            }
        };
        let Some(OutputItem::Reasoning { id, summary }) = self.response.output.get_mut(index)
        else {
            return;
        };
        if let Some(part) = summary.last_mut() {
            part.text.push_str(t);
        }
        let item_id = id.clone();
        self.push(|_| StreamEvent::ReasoningSummaryTextDelta {
            item_id,
            output_index: index,
            summary_index: 0,
            delta: t.to_owned(),
        });
    }

    /// A piece of tool call `index`: the first piece opens a `function_call` item (`call_id`
    /// `id`, function `name`); later ones add to its arguments.
    pub fn tool(&mut self, index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) {
        let output_index = match self.calls.iter().find(|(c, _)| *c == index) {
            Some((_, o)) => *o,
            None => {
                let call_id = id
                    .filter(|i| !i.is_empty())
                    .map_or_else(|| new_id("call"), String::from);
                let o = self.open_item(
                    OutputItem::FunctionCall {
                        id: new_id("fc"),
                        call_id,
                        name: name.unwrap_or_default().to_owned(),
                        arguments: String::new(),
                        status: "in_progress".into(),
                    },
                    true,
                );
                self.calls.push((index, o));
                o
            }
        };
        if arguments.is_empty() {
            return;
        }
        let Some(OutputItem::FunctionCall {
            id, arguments: a, ..
        }) = self.response.output.get_mut(output_index)
        else {
            return;
        };
        a.push_str(arguments);
        let item_id = id.clone();
        self.push(|_| StreamEvent::FunctionCallArgumentsDelta {
            item_id,
            output_index,
            delta: arguments.to_owned(),
        });
    }

    fn close_all(&mut self) {
        for i in std::mem::take(&mut self.open) {
            self.close_one(i);
        }
    }

    fn close(&mut self, index: usize) {
        self.open.retain(|i| *i != index);
        self.close_one(index);
    }

    /// The `.done` events of one item, which becomes `completed`.
    fn close_one(&mut self, index: usize) {
        let Some(item) = self.response.output.get_mut(index) else {
            return;
        };
        item.set_status("completed");
        let item = item.clone();
        match &item {
            OutputItem::Message { id, content, .. } => {
                for (ci, part) in content.iter().enumerate() {
                    match part {
                        OutputContent::OutputText { text, .. } => {
                            self.push(|_| StreamEvent::OutputTextDone {
                                item_id: id.clone(),
                                output_index: index,
                                content_index: ci,
                                text: text.clone(),
                                logprobs: Vec::new(),
                            });
                        }
                        OutputContent::Refusal { refusal } => {
                            self.push(|_| StreamEvent::RefusalDone {
                                item_id: id.clone(),
                                output_index: index,
                                content_index: ci,
                                refusal: refusal.clone(),
                            });
                        }
                    }
                    self.push(|_| StreamEvent::ContentPartDone {
                        item_id: id.clone(),
                        output_index: index,
                        content_index: ci,
                        part: part.clone(),
                    });
                }
            }
            OutputItem::Reasoning { id, summary } => {
                for (si, part) in summary.iter().enumerate() {
                    self.push(|_| StreamEvent::ReasoningSummaryTextDone {
                        item_id: id.clone(),
                        output_index: index,
                        summary_index: si,
                        text: part.text.clone(),
                    });
                    self.push(|_| StreamEvent::ReasoningSummaryPartDone {
                        item_id: id.clone(),
                        output_index: index,
                        summary_index: si,
                        part: part.clone(),
                    });
                }
            }
            OutputItem::FunctionCall {
                id,
                name,
                arguments,
                ..
            } => self.push(|_| StreamEvent::FunctionCallArgumentsDone {
                item_id: id.clone(),
                output_index: index,
                name: name.clone(),
                arguments: arguments.clone(),
            }),
        }
        self.push(|_| StreamEvent::OutputItemDone {
            output_index: index,
            item,
        });
    }

    /// Ends the response: closes every item and sets `usage`. `incomplete`: the reason it
    /// stopped early (`max_output_tokens`, `content_filter`), else it is `completed`.
    pub fn finish(&mut self, incomplete: Option<&str>, usage: Option<ResponseUsage>) {
        self.close_all();
        self.response.usage = usage;
        self.response.completed_at = Some(now());
        match incomplete {
            Some(reason) => {
                self.response.status = "incomplete".into();
                self.response.incomplete_details = Some(IncompleteDetails {
                    reason: reason.to_owned(),
                });
                self.push(|b| StreamEvent::Incomplete {
                    response: b.response.clone(),
                });
            }
            None => {
                self.response.status = "completed".into();
                self.push(|b| StreamEvent::Completed {
                    response: b.response.clone(),
                });
            }
        }
    }

    /// Fails the response after it began: open items become `incomplete`, and the stream ends
    /// with `response.failed` carrying `error` (never a completion).
    pub fn fail(&mut self, code: &str, message: &str) {
        for i in std::mem::take(&mut self.open) {
            if let Some(item) = self.response.output.get_mut(i) {
                item.set_status("incomplete");
            }
        }
        self.response.status = "failed".into();
        self.response.error = Some(ResponseError {
            code: code.to_owned(),
            message: message.to_owned(),
        });
        self.push(|b| StreamEvent::Failed {
            response: b.response.clone(),
        });
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
