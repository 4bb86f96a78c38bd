//! A fake HuggingChat ([chat-ui](https://github.com/huggingface/chat-ui)) upstream: the chat
//! page with its inline `models:[…],oldModels:` literal, conversations with message trees,
//! `__data.json` in SvelteKit's flattened ("devalue") form, the later `/api/v2/…` JSON routes,
//! multipart message posts (with size limits) answered in `application/jsonl` with NUL-padded
//! tokens, web search, titles, reasoning, the image-generation tool and its output files, and
//! error lines.
//!
//! ```
//! # async fn demo() {
//! use llmux_testkit::huggingchat::FakeHuggingChat;
//! let fake = FakeHuggingChat::new().cookie("session-1").reply("Frank Herbert.");
//! let server = fake.start().await;
//! let base_url = server.url("/chat"); // http://127.0.0.1:PORT/chat
//! # let _ = base_url;
//! assert!(fake.conversations().is_empty());
//! # }
//! ```
//!
//! Routes (under the prefix, default `/chat`):
//!
//! | route | answer |
//! |---|---|
//! | `GET {p}` | HTML page; with v1 on, the inline models literal (`parameters:{…}`, `void 0`) |
//! | `POST {p}/conversation` | `{"conversationId": "<24 hex>"}`; 401 without the cookie; 400 `Invalid model` |
//! | `GET {p}/conversation/{id}/__data.json` | v1: `{"type":"data","nodes":[…]}`; error nodes 403 (no cookie) / 404 |
//! | `POST {p}/conversation/{id}` | multipart (`data` JSON + base64 `files`) → JSON lines; 413 over the upload limit |
//! | `GET {p}/conversation/{id}/output/{sha}` | the generated PNG (cookie required) |
//! | `GET {p}/api/v2/models` | v2: `{"json":[{"id","multimodal",…}]}` |
//! | `GET {p}/api/v2/conversations/{id}` | v2: `{"json":{"messages":[{"id","from","content"}],…}}` |

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::openai::TINY_PNG;
use crate::reply::{Reply, Script, script_builders};
use crate::server::{FakeServer, RecordedRequest, Router};

/// Default value of the `hf-chat` cookie the fake accepts.
pub const DEFAULT_COOKIE: &str = "fake-hf-chat-session";
/// HuggingChat's image-generation tool id.
pub const IMAGE_TOOL_ID: &str = "000000000000000000000001";
/// chat-ui's upload limit (sum of decoded files): 10 MB.
pub const DEFAULT_MAX_UPLOAD: usize = 10 * 1024 * 1024;
/// Tokens are right-padded with NULs to at least this many characters (as chat-ui does).
pub const TOKEN_PAD: usize = 16;
/// Spaces written after the `finalAnswer` line (as chat-ui does).
pub const TRAILING_SPACES: usize = 4096;

/// A model the fake serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeModel {
    /// Model id.
    pub id: String,
    /// Accepts images.
    pub multimodal: bool,
    /// Streams reasoning before its answer.
    pub reasoning: bool,
}

impl FakeModel {
    /// A plain text model.
    pub fn text(id: impl Into<String>) -> Self {
        FakeModel {
            id: id.into(),
            multimodal: false,
            reasoning: false,
        }
    }
}

/// A file received with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeUpload {
    /// File name (after `base64;`).
    pub name: String,
    /// The part's `Content-Type`.
    pub mime: String,
    /// Decoded bytes.
    pub data: Vec<u8>,
}

/// One message of a fake conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeMessage {
    /// Message id (UUID-shaped).
    pub id: String,
    /// `system`, `user` or `assistant`.
    pub from: String,
    /// Text.
    pub content: String,
    /// Ids from the root to the parent.
    pub ancestors: Vec<String>,
    /// Ids of the replies.
    pub children: Vec<String>,
    /// Files sent with a user message.
    pub files: Vec<FakeUpload>,
    /// The `data` JSON of the post that created a user message.
    pub request: Value,
}

/// One fake conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeConversation {
    /// Conversation id (24 hex digits).
    pub id: String,
    /// Model it was created with.
    pub model: String,
    /// Title.
    pub title: String,
    /// Messages in insertion order (the root system message first).
    pub messages: Vec<FakeMessage>,
}

#[derive(Debug, Default)]
struct Store {
    conversations: Vec<FakeConversation>,
    counter: u64,
    files: BTreeMap<(String, String), Vec<u8>>,
}

impl Store {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn conversation(&mut self, id: &str) -> Option<&mut FakeConversation> {
        self.conversations.iter_mut().find(|c| c.id == id)
    }
}

/// Builder, configuration and state of the fake chat-ui.
///
/// Defaults: prefix `/chat`, cookie `hf-chat=`[`DEFAULT_COOKIE`] required, models
/// `Qwen/Qwen2.5-72B-Instruct`, `meta-llama/Llama-3.2-11B-Vision-Instruct` (multimodal) and
/// `deepseek-ai/DeepSeek-R1-Distill-Qwen-32B` (reasoning), reply `"Hello from the fake
/// HuggingChat!"` in 3 tokens (in echo mode `echo: <inputs>`, the text the client sent), no title, one web source, v1 routes only, 10 MB upload limit.
///
/// Clones share the conversation store, so a test keeps one clone to inspect
/// [`FakeHuggingChat::conversations`] after starting the server with another.
#[derive(Clone, Debug)]
pub struct FakeHuggingChat {
    prefix: String,
    cookie: Option<String>,
    models: Vec<FakeModel>,
    script: Script,
    reasoning: String,
    title: Option<String>,
    sources: Vec<(String, String)>,
    error: Option<String>,
    v1: bool,
    v2: bool,
    max_upload: usize,
    store: Arc<Mutex<Store>>,
}

impl Default for FakeHuggingChat {
    fn default() -> Self {
        FakeHuggingChat {
            prefix: "/chat".into(),
            cookie: Some(DEFAULT_COOKIE.into()),
            models: vec![
                FakeModel::text("Qwen/Qwen2.5-72B-Instruct"),
                FakeModel {
                    multimodal: true,
                    ..FakeModel::text("meta-llama/Llama-3.2-11B-Vision-Instruct")
                },
                FakeModel {
                    reasoning: true,
                    ..FakeModel::text("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B")
                },
            ],
            script: Script::fixed("Hello from the fake HuggingChat!", 3),
            reasoning: "Let me think about it.".into(),
            title: None,
            sources: vec![(
                "https://en.wikipedia.org/wiki/Dune_(novel)?utm_source=chatui".into(),
                "Dune (novel) - Wikipedia".into(),
            )],
            error: None,
            v1: true,
            v2: false,
            max_upload: DEFAULT_MAX_UPLOAD,
            store: Arc::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn message_error(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({ "message": message }))
}

/// Right-pads with NULs to [`TOKEN_PAD`] characters.
fn pad(token: &str) -> String {
    let mut s = token.to_owned();
    let len = s.chars().count();
    if len < TOKEN_PAD {
        s.extend(std::iter::repeat_n('\0', TOKEN_PAD - len));
    }
    s
}

impl FakeHuggingChat {
    /// The default configuration (see the type docs).
    pub fn new() -> Self {
        FakeHuggingChat::default()
    }

    /// Route prefix (default `/chat`; `""` serves chat-ui at the root like a self-hosted instance).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// The `hf-chat` cookie value required on every authenticated route.
    pub fn cookie(mut self, value: impl Into<String>) -> Self {
        self.cookie = Some(value.into());
        self
    }

    /// Accepts requests without any cookie.
    pub fn no_auth(mut self) -> Self {
        self.cookie = None;
        self
    }

    /// Replaces the model list.
    pub fn models<I>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = FakeModel>,
    {
        self.models = models.into_iter().collect();
        self
    }

    script_builders!(reply, echo, chunks, chunk_delay);

    /// Reasoning text streamed by reasoning models.
    pub fn reasoning(mut self, text: impl Into<String>) -> Self {
        self.reasoning = text.into();
        self
    }

    /// A `title` update on the first message of each conversation.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Web-search sources `(link, title)` sent when the client asks for web search.
    pub fn sources<I, A, B>(mut self, sources: I) -> Self
    where
        I: IntoIterator<Item = (A, B)>,
        A: Into<String>,
        B: Into<String>,
    {
        self.sources = sources
            .into_iter()
            .map(|(a, b)| (a.into(), b.into()))
            .collect();
        self
    }

    /// Answers every message with `{"type":"status","status":"error","message":…}` (no answer).
    pub fn error_status(mut self, message: impl Into<String>) -> Self {
        self.error = Some(message.into());
        self
    }

    /// Which route generations exist: v1 (page literal + `__data.json`) and/or v2 (`/api/v2`).
    pub fn api(mut self, v1: bool, v2: bool) -> Self {
        self.v1 = v1;
        self.v2 = v2;
        self
    }

    /// Upload limit (sum of decoded file sizes) before answering 413.
    pub fn max_upload(mut self, bytes: usize) -> Self {
        self.max_upload = bytes;
        self
    }

    /// A snapshot of every conversation.
    pub fn conversations(&self) -> Vec<FakeConversation> {
        lock(&self.store).conversations.clone()
    }

    /// Deletes a conversation (as the user would in the web UI).
    pub fn delete_conversation(&self, id: &str) {
        lock(&self.store).conversations.retain(|c| c.id != id);
    }

    /// The routes of this fake.
    pub fn router(&self) -> Router {
        let p = self.prefix.clone();
        let page = self.clone();
        let create = self.clone();
        let data = self.clone();
        let post = self.clone();
        let output = self.clone();
        let v2_models = self.clone();
        let v2_conv = self.clone();
        let page_path = if p.is_empty() {
            "/".to_owned()
        } else {
            p.clone()
        };
        Router::new()
            .get(&page_path, move |_| {
                let s = page.clone();
                async move { s.page() }
            })
            .post(&format!("{p}/conversation"), move |req| {
                let s = create.clone();
                async move { s.create(&req) }
            })
            .get(
                &format!("{p}/conversation/{{id}}/__data.json"),
                move |req| {
                    let s = data.clone();
                    async move { s.data_json(&req) }
                },
            )
            .post(&format!("{p}/conversation/{{id}}"), move |req| {
                let s = post.clone();
                async move { s.send(&req) }
            })
            .get(
                &format!("{p}/conversation/{{id}}/output/{{sha}}"),
                move |req| {
                    let s = output.clone();
                    async move { s.output(&req) }
                },
            )
            .get(&format!("{p}/api/v2/models"), move |_| {
                let s = v2_models.clone();
                async move { s.v2_models() }
            })
            .get(&format!("{p}/api/v2/conversations/{{id}}"), move |req| {
                let s = v2_conv.clone();
                async move { s.v2_conversation(&req) }
            })
    }

    /// Starts a [`FakeServer`] serving [`FakeHuggingChat::router`].
    pub async fn start(&self) -> FakeServer {
        FakeServer::start(self.router()).await
    }

    fn authorized(&self, req: &RecordedRequest) -> bool {
        let Some(expected) = &self.cookie else {
            return true;
        };
        req.header("cookie").is_some_and(|h| {
            h.split(';').any(|pair| {
                pair.split_once('=')
                    .is_some_and(|(k, v)| k.trim() == "hf-chat" && v.trim() == expected)
            })
        })
    }

    fn model_literal(m: &FakeModel) -> String {
        let q = |s: &str| Value::String(s.to_owned()).to_string();
        format!(
            "{{id:{id},name:{id},displayName:{id},description:{desc},reasoning:{r},parameters:{{temperature:.6,stop:[\"<|im_end|>\"],max_new_tokens:2048}},preprompt:\"\",multimodal:{mm},tokenizer:void 0,unlisted:!1}}",
            id = q(&m.id),
            desc = q(&format!("{} (fake)", m.id)),
            r = if m.reasoning { "!0" } else { "!1" },
            mm = m.multimodal,
        )
    }

    fn page(&self) -> Reply {
        let data = if self.v1 {
            let models: Vec<String> = self.models.iter().map(Self::model_literal).collect();
            let active = self
                .models
                .first()
                .map(|m| Value::String(m.id.clone()).to_string())
                .unwrap_or_else(|| "\"\"".into());
            format!(
                "const data=[null,{{type:\"data\",data:{{settings:{{activeModel:{active},hideEmojiOnSidebar:!1}},models:[{}],oldModels:[],tools:[]}},uses:{{}}}}];",
                models.join(",")
            )
        } else {
            "const data=[null,{type:\"data\",data:{settings:{}},uses:{}}];".to_owned()
        };
        Reply::html(
            200,
            format!(
                "<!doctype html><html lang=\"en\"><head><title>HuggingChat</title></head><body><div id=\"app\"></div><script>__sveltekit_fake={{base:\"{}\"}};{data}</script></body></html>",
                self.prefix
            ),
        )
    }

    fn create(&self, req: &RecordedRequest) -> Reply {
        if !self.authorized(req) {
            return message_error(401, "You need to be logged in");
        }
        let Ok(body) = req.json() else {
            return message_error(400, "Invalid request");
        };
        let Some(model) = body.get("model").and_then(Value::as_str) else {
            return message_error(400, "Invalid request");
        };
        if !self.models.iter().any(|m| m.id == model) {
            return message_error(400, "Invalid model");
        }
        let mut store = lock(&self.store);
        let n = store.next();
        let id = format!(
            "{:024x}",
            0x6819_f0c2_a4b5_c6d7_e8f9_0000u128 + u128::from(n)
        );
        let root = FakeMessage {
            id: message_id(n, 0),
            from: "system".into(),
            content: String::new(),
            ancestors: Vec::new(),
            children: Vec::new(),
            files: Vec::new(),
            request: Value::Null,
        };
        store.conversations.push(FakeConversation {
            id: id.clone(),
            model: model.to_owned(),
            title: "New Chat".into(),
            messages: vec![root],
        });
        Reply::json(200, &json!({ "conversationId": id }))
    }

    fn data_json(&self, req: &RecordedRequest) -> Reply {
        let layout = json!({"type": "data", "data": [{"settings": 1}, {}], "uses": {}});
        let error_node = |status: u16, message: &str| {
            Reply::json(
                200,
                &json!({"type": "data", "nodes": [layout, {"type": "error", "error": {"message": message}, "status": status}]}),
            )
        };
        if !self.v1 {
            return message_error(404, "Not found");
        }
        if !self.authorized(req) {
            return error_node(
                403,
                "You don't have access to this conversation. If someone gave you this link, ask them to use the 'share' feature instead.",
            );
        }
        let id = req.param("id").unwrap_or_default();
        let mut store = lock(&self.store);
        let Some(conv) = store.conversation(id) else {
            return error_node(404, "Conversation not found");
        };
        let messages: Vec<Value> = conv
            .messages
            .iter()
            .map(|m| {
                json!({"id": m.id, "from": m.from, "content": m.content, "ancestors": m.ancestors,
                       "children": m.children, "createdAt": ["Date", "2025-05-01T00:00:00.000Z"]})
            })
            .collect();
        let page = json!({
            "messages": messages,
            "title": conv.title,
            "model": conv.model,
            "preprompt": "",
            "rootMessageId": conv.messages.first().map(|m| m.id.clone()),
            "shared": false,
        });
        Reply::json(
            200,
            &json!({"type": "data", "nodes": [layout, {"type": "data", "data": devalue_flatten(&page), "uses": {"params": ["id"]}}]}),
        )
    }

    fn send(&self, req: &RecordedRequest) -> Reply {
        if !self.authorized(req) {
            return message_error(401, "Unauthorized");
        }
        let ct = req.header("content-type").unwrap_or_default();
        let parts = match parse_multipart(ct, &req.body) {
            Ok(p) => p,
            Err(_) => return message_error(400, "Invalid request"),
        };
        let Some(data) = parts
            .iter()
            .find(|p| p.name == "data" && p.file_name.is_none())
        else {
            return message_error(400, "Invalid request");
        };
        let Ok(data) = serde_json::from_slice::<Value>(&data.data) else {
            return message_error(400, "Invalid request");
        };
        let inputs = data
            .get("inputs")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let parent = data.get("id").and_then(Value::as_str).unwrap_or_default();
        let flag = |k: &str| data.get(k).and_then(Value::as_bool).unwrap_or(false);
        if inputs.is_empty() && !flag("is_retry") && !flag("is_continue") {
            return message_error(400, "Invalid request: `inputs` must not be empty");
        }
        let tools: Vec<String> = data
            .get("tools")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut files = Vec::new();
        let mut total = 0usize;
        for part in parts.iter().filter(|p| p.name == "files") {
            let Some((kind, name)) = part.file_name.as_deref().and_then(|f| f.split_once(';'))
            else {
                return message_error(400, "Invalid file");
            };
            if kind != "base64" {
                return message_error(400, "Invalid file");
            }
            let text = String::from_utf8_lossy(&part.data);
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text.trim()) else {
                return message_error(400, "Invalid file");
            };
            total = total.saturating_add(bytes.len());
            files.push(FakeUpload {
                name: name.to_owned(),
                mime: part
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
                data: bytes,
            });
        }
        if total > self.max_upload {
            return message_error(
                413,
                &format!(
                    "File too large, should be <{}MB",
                    self.max_upload / 1_000_000
                ),
            );
        }

        let id = req.param("id").unwrap_or_default().to_owned();
        let mut store = lock(&self.store);
        let n = store.next();
        let Some(conv) = store.conversation(&id) else {
            return message_error(404, "Conversation not found");
        };
        let Some(parent_pos) = conv.messages.iter().position(|m| m.id == parent) else {
            return message_error(404, "Message not found");
        };
        let model = self.models.iter().find(|m| m.id == conv.model).cloned();
        let first = conv.messages.len() == 1;
        let mut ancestors = conv.messages[parent_pos].ancestors.clone();
        ancestors.push(parent.to_owned());
        let user_id = message_id(n, 1);
        let answer_id = message_id(n, 2);
        let text = self.script.answer(|| inputs.to_owned());
        conv.messages[parent_pos].children.push(user_id.clone());
        let mut answer_ancestors = ancestors.clone();
        answer_ancestors.push(user_id.clone());
        conv.messages.push(FakeMessage {
            id: user_id.clone(),
            from: "user".into(),
            content: inputs.to_owned(),
            ancestors,
            children: vec![answer_id.clone()],
            files,
            request: data.clone(),
        });

        let mut lines = vec![json!({"type": "status", "status": "started"})];
        if let Some(message) = &self.error {
            lines.push(json!({"type": "status", "status": "error", "message": message}));
            drop(store);
            return self.jsonl(lines, false);
        }
        if flag("web_search") {
            lines.push(json!({"type": "webSearch", "subtype": "update", "message": "Searching Google", "args": [inputs]}));
            let sources: Vec<Value> = self
                .sources
                .iter()
                .map(|(link, title)| {
                    let host = link.split('/').nth(2).unwrap_or_default();
                    json!({"link": link, "title": title, "hostname": host})
                })
                .collect();
            lines.push(json!({"type": "webSearch", "subtype": "sources", "message": "sources", "sources": sources}));
            lines.push(json!({"type": "webSearch", "subtype": "finished"}));
        }
        if first {
            if let Some(t) = &self.title {
                conv.title = t.clone();
                lines.push(json!({"type": "title", "title": t}));
            }
        }
        if model.as_ref().is_some_and(|m| m.reasoning) {
            lines.push(json!({"type": "reasoning", "subtype": "status", "status": "Thinking..."}));
            for piece in self.script.pieces(&self.reasoning) {
                lines.push(json!({"type": "reasoning", "subtype": "stream", "token": piece}));
            }
            lines.push(json!({"type": "reasoning", "subtype": "status", "status": "Done"}));
        }
        let mut file_shas = Vec::new();
        if tools.iter().any(|t| t == IMAGE_TOOL_ID) {
            let sha = format!("{:064x}", 0x3f5a_0c9e_u128 + u128::from(n));
            lines.push(json!({"type": "tool", "subtype": "call", "uuid": format!("tool-{n}"),
                              "call": {"name": "image_generation", "parameters": {"prompt": inputs}}}));
            lines.push(json!({"type": "tool", "subtype": "result", "uuid": format!("tool-{n}"),
                              "result": {"status": "success", "call": {"name": "image_generation"}}}));
            lines.push(
                json!({"type": "file", "name": "image.png", "sha": sha, "mime": "image/png"}),
            );
            file_shas.push(sha);
        }
        for piece in self.script.pieces(&text) {
            lines.push(json!({"type": "stream", "token": pad(&piece)}));
        }
        lines.push(json!({"type": "finalAnswer", "text": text, "interrupted": false}));
        conv.messages.push(FakeMessage {
            id: answer_id,
            from: "assistant".into(),
            content: text,
            ancestors: answer_ancestors,
            children: Vec::new(),
            files: Vec::new(),
            request: Value::Null,
        });
        for sha in file_shas {
            store.files.insert((id.clone(), sha), TINY_PNG.to_vec());
        }
        drop(store);
        self.jsonl(lines, true)
    }

    fn jsonl(&self, lines: Vec<Value>, padding: bool) -> Reply {
        let mut chunks: Vec<Bytes> = lines
            .iter()
            .map(|l| {
                let mut s = l.to_string();
                s.push('\n');
                Bytes::from(s)
            })
            .collect();
        if padding {
            chunks.push(Bytes::from(" ".repeat(TRAILING_SPACES)));
        }
        Reply::chunked("application/jsonl", chunks).chunk_delay(self.script.chunk_delay())
    }

    fn output(&self, req: &RecordedRequest) -> Reply {
        if !self.authorized(req) {
            return message_error(401, "Unauthorized");
        }
        let key = (
            req.param("id").unwrap_or_default().to_owned(),
            req.param("sha").unwrap_or_default().to_owned(),
        );
        match lock(&self.store).files.get(&key) {
            Some(bytes) => Reply::bytes(200, "image/png", bytes.clone()),
            None => message_error(404, "File not found"),
        }
    }

    fn v2_models(&self) -> Reply {
        if !self.v2 {
            return message_error(404, "Not found");
        }
        let list: Vec<Value> = self
            .models
            .iter()
            .map(|m| {
                json!({"id": m.id, "name": m.id, "displayName": m.id, "multimodal": m.multimodal,
                       "reasoning": m.reasoning, "unlisted": false, "preprompt": ""})
            })
            .collect();
        Reply::json(200, &json!({ "json": list }))
    }

    fn v2_conversation(&self, req: &RecordedRequest) -> Reply {
        if !self.v2 {
            return message_error(404, "Not found");
        }
        if !self.authorized(req) {
            return message_error(401, "Unauthorized");
        }
        let id = req.param("id").unwrap_or_default();
        let mut store = lock(&self.store);
        let Some(conv) = store.conversation(id) else {
            return message_error(404, "Conversation not found");
        };
        let messages: Vec<Value> = conv
            .messages
            .iter()
            .map(|m| {
                json!({"id": m.id, "from": m.from, "content": m.content, "ancestors": m.ancestors, "children": m.children})
            })
            .collect();
        Reply::json(
            200,
            &json!({"json": {"id": conv.id, "title": conv.title, "model": conv.model,
                             "messages": messages, "rootMessageId": conv.messages.first().map(|m| m.id.clone())},
                    "meta": {"values": {}}}),
        )
    }
}

fn message_id(n: u64, k: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", n, k)
}

/// Flattens a JSON value the way SvelteKit's `devalue.stringify` does: one array whose first
/// element is the root, objects and arrays holding indices, equal primitives stored once. A
/// two-element array whose first element is `"Date"` is stored as a devalue `Date` entry.
pub fn devalue_flatten(value: &Value) -> Value {
    fn walk(v: &Value, out: &mut Vec<Value>, seen: &mut BTreeMap<String, usize>) -> usize {
        match v {
            Value::Array(items)
                if items.len() == 2 && items[0] == json!("Date") && items[1].is_string() =>
            {
                out.push(v.clone());
                out.len() - 1
            }
            Value::Array(items) => {
                let slot = out.len();
                out.push(Value::Null);
                let refs: Vec<Value> = items
                    .iter()
                    .map(|i| Value::from(walk(i, out, seen)))
                    .collect();
                out[slot] = Value::Array(refs);
                slot
            }
            Value::Object(map) => {
                let slot = out.len();
                out.push(Value::Null);
                let mut refs = Map::new();
                for (k, item) in map {
                    refs.insert(k.clone(), Value::from(walk(item, out, seen)));
                }
                out[slot] = Value::Object(refs);
                slot
            }
            primitive => {
                let key = primitive.to_string();
                if let Some(i) = seen.get(&key) {
                    return *i;
                }
                out.push(primitive.clone());
                seen.insert(key, out.len() - 1);
                out.len() - 1
            }
        }
    }
    let mut out = Vec::new();
    let mut seen = BTreeMap::new();
    walk(value, &mut out, &mut seen);
    Value::Array(out)
}

/// One part of a `multipart/form-data` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormPart {
    /// The `name` of the `Content-Disposition`.
    pub name: String,
    /// The `filename`, if any.
    pub file_name: Option<String>,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The content.
    pub data: Bytes,
}

/// Most parts [`parse_multipart`] accepts.
pub const MAX_PARTS: usize = 64;

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| from + i)
}

/// Splits header parameters at `;` outside double quotes; quoted values are unquoted (`\\x` → `x`).
fn header_params(header: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = header.chars().peekable();
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            '\\' if quoted => {
                current.push(c);
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            }
            ';' if !quoted => segments.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    segments.push(current);
    for seg in segments.into_iter().skip(1) {
        let Some((k, v)) = seg.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) => {
                let mut out = String::new();
                let mut it = inner.chars();
                while let Some(c) = it.next() {
                    if c == '\\' {
                        out.extend(it.next());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
            None => v.to_owned(),
        };
        out.push((k.trim().to_ascii_lowercase(), v));
    }
    out
}

fn disposition_param(header: &str, key: &str) -> Option<String> {
    header_params(header)
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// Parses a `multipart/form-data` body given its `Content-Type` header value. Errors describe
/// what is malformed (missing boundary, unterminated part, too many parts, …).
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<FormPart>, String> {
    let essence = content_type.split(';').next().unwrap_or_default();
    if !essence.trim().eq_ignore_ascii_case("multipart/form-data") {
        return Err(format!("not multipart/form-data: {essence}"));
    }
    let boundary = header_params(content_type)
        .into_iter()
        .find_map(|(k, v)| (k == "boundary").then_some(v))
        .filter(|b| !b.is_empty())
        .ok_or("missing boundary")?;
    let delimiter = format!("--{boundary}");
    let next_delimiter = format!("\r\n--{boundary}");
    let mut pos = find(body, delimiter.as_bytes(), 0).ok_or("no opening boundary")?;
    let mut parts = Vec::new();
    loop {
        pos += delimiter.len();
        if body.get(pos..pos + 2) == Some(b"--") {
            return Ok(parts);
        }
        if body.get(pos..pos + 2) != Some(b"\r\n") {
            return Err("malformed boundary line".into());
        }
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos).ok_or("unterminated part headers")?;
        let head = String::from_utf8_lossy(&body[pos..head_end]).into_owned();
        let content_start = head_end + 4;
        let content_end =
            find(body, next_delimiter.as_bytes(), content_start).ok_or("unterminated part")?;
        let mut name = None;
        let mut file_name = None;
        let mut part_type = None;
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                name = disposition_param(v, "name");
                file_name = disposition_param(v, "filename");
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                part_type = Some(v.trim().to_owned());
            }
        }
        parts.push(FormPart {
            name: name.ok_or("part without a name")?,
            file_name,
            content_type: part_type,
            data: Bytes::copy_from_slice(&body[content_start..content_end]),
        });
        if parts.len() > MAX_PARTS {
            return Err("too many parts".into());
        }
        pos = content_end + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;

    #[test]
    fn flattening_matches_devalue() {
        let v = json!({"messages": [{"id": "a", "from": "system"}], "title": "a", "shared": false});
        assert_eq!(
            devalue_flatten(&v),
            json!([{"messages": 1, "shared": 5, "title": 4}, [2], {"from": 3, "id": 4}, "system", "a", false])
        );
    }

    #[test]
    fn multipart_round_trip_and_errors() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n{\"a\":1}\r\n--XX\r\nContent-Disposition: form-data; name=\"files\"; filename=\"base64;x.png\"\r\nContent-Type: image/png\r\n\r\naGk=\r\n--XX--\r\n";
        let parts = parse_multipart("multipart/form-data; boundary=XX", body).expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "data");
        assert_eq!(&parts[0].data[..], b"{\"a\":1}");
        assert_eq!(parts[1].file_name.as_deref(), Some("base64;x.png"));
        assert_eq!(parts[1].content_type.as_deref(), Some("image/png"));
        assert!(parse_multipart("application/json", body).is_err());
        assert!(parse_multipart("multipart/form-data", body).is_err());
        assert!(parse_multipart("multipart/form-data; boundary=XX", b"--XX\r\nbroken").is_err());
    }

    #[tokio::test]
    async fn conversation_flow() {
        let fake = FakeHuggingChat::new()
            .no_auth()
            .reply("Hi there")
            .title("Greeting");
        let server = fake.start().await;
        let page = client::get(&server.url("/chat")).await.expect("page");
        let html = page.text().await.expect("text");
        assert!(
            html.contains("models:[{id:\"Qwen/Qwen2.5-72B-Instruct\""),
            "{html}"
        );
        assert!(html.contains(",oldModels:[]"));
        assert!(fake.conversations().is_empty());
        let resp = client::get(&server.url("/chat/conversation/nope/__data.json"))
            .await
            .expect("data");
        let v = resp.json().await.expect("json");
        assert_eq!(v["nodes"][1]["status"], json!(404));
    }
}
