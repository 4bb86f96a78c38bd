//! A fake Gradio chat Space on ZeroGPU (shaped like `microsoft/phi-4-multimodal`), plus the two
//! Hugging Face Hub routes that hand out ZeroGPU credentials. It behaves as Gradio 5 (the
//! default) or Gradio 6 ([`FakeGradio::gradio6`]), following captures of real servers
//! (`gradio-5-capture.txt`, `gradio-6-capture.txt` of Gradio 6.31.0):
//!
//! - `GET /config` — `version` (`5.35.0` / `6.31.0`), `protocol: sse_v3`, `api_prefix`,
//!   `enable_queue` and the two chat functions.
//! - `POST /gradio_api/upload?upload_id=…` — multipart `files` parts; answers the JSON list of
//!   server paths `/data/gradio/<64 hex>/<file name>`, one per part. Files are kept (and served at
//!   `GET /gradio_api/file=<path>`); calls referring to paths never uploaded fail like Gradio.
//! - `POST /gradio_api/run/predict` (fn 10, "add message"): `files` must be a list (else the
//!   pydantic 500 of the capture); answers the updated chat box.
//! - `POST /gradio_api/queue/join` (fn 11, "bot"): needs `data` = `[history, file messages]`;
//!   queues one event under the body's `session_hash` and answers `{"event_id": …}`. Wrong input
//!   counts, unknown file paths and messages in the other version's form (Gradio 6: `content`
//!   must be a list of blocks; Gradio 5: it must not be a list) make that event fail with
//!   Gradio's (pydantic's) messages. Gradio 6 answers an unknown `fn_index` with a plain 500.
//! - `GET /gradio_api/queue/data?session_hash=…` — `text/event-stream; charset=utf-8`, one
//!   `data: {json}\n\n` frame per message: `estimation` → `process_starts` → `process_generating`
//!   (the full history first, then `append` diffs: path `[1,"content"]` in Gradio 5,
//!   `[1,"content",0,"text"]` in Gradio 6) → `process_completed` → `close_stream`, with a
//!   `heartbeat` every [`FakeGradio::heartbeat_interval`]. A session with no queued event gets
//!   `unexpected_error` ("404: Session not found." / Gradio 6: "404: Not Found",
//!   `session_not_found: true`) and the stream ends.
//! - `GET /spaces/<space>` — an HTML page embedding the ZeroGPU token and session UUID the way
//!   huggingface.co does (HTML-entity-encoded JSON); `GET /api/spaces/<space>/jwt?expiration=…`
//!   — `{"token": …}` when a `Cookie` header is sent, else 401.
//!
//! The reply echoes the prompt: `echo: <text> | files: <n>[ <mime>:<size>,…]`, streamed one word
//! at a time, or a fixed text ([`FakeGradio::reply`]).
//!
//! ```
//! # async fn demo() {
//! use llmux_testkit::gradio::FakeGradio;
//! let server = FakeGradio::new().chunk_delay(std::time::Duration::from_millis(5)).start().await;
//! let space_origin = server.url(""); // also serves the Hub routes
//! # let _ = space_origin;
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::reply::{Chunk, Reply, Script, script_builders};
use crate::server::{FakeServer, RecordedRequest, Router};

/// The Space the Hub routes answer for by default.
pub const DEFAULT_SPACE: &str = "microsoft/phi-4-multimodal";
/// ZeroGPU token embedded in the Space page.
pub const PAGE_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.FAKE.TOKEN";
/// ZeroGPU session UUID embedded in the Space page.
pub const SESSION_UUID: &str = "6c0f1b2a-9d3e-4f70-8a11-2b3c4d5e6f70";
/// Token answered by the JWT route.
pub const JWT_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.JWT.FROM.COOKIES";
/// A ZeroGPU quota message, as Spaces send it (with an HTML link).
pub const QUOTA_ERROR: &str = "You have exceeded your GPU quota (60s requested vs. 41s left). <a style=\"text-decoration: underline\" href=\"https://huggingface.co/settings/billing\">Sign-up</a>";
pub use wire::{FILES_NOT_A_LIST, FILES_NOT_A_LIST_6, Version};
use wire::{content_files, content_text};

mod wire;

/// How the event stream of a queued event ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `process_completed` with the reply, then `close_stream`.
    Complete,
    /// `process_completed` with `output.error` = this text (no generation).
    Error(String),
    /// The generation messages, then `close_stream` without `process_completed`.
    CloseWithoutCompletion,
    /// The generation messages, then the body ends (no completion, no `close_stream`).
    EofWithoutCompletion,
}

/// Builder and configuration of the fake Gradio Space.
///
/// Defaults: Space [`DEFAULT_SPACE`], tokens [`PAGE_TOKEN`] / [`SESSION_UUID`] / [`JWT_TOKEN`],
/// echo replies (`echo: <text> | files: <n>[ <mime>:<size>,…]`; a fixed reply instead streams one
/// space-separated word at a time), no delay before `process_starts` and each
/// `process_generating`, heartbeats every 15 s (as Gradio), functions 10
/// (predict) and 11 (join), [`Ending::Complete`].
#[derive(Clone, Debug)]
pub struct FakeGradio {
    space: String,
    page_token: String,
    session_uuid: String,
    jwt_token: String,
    script: Script,
    heartbeat: Duration,
    ending: Ending,
    predict_fn: u64,
    join_fn: u64,
    version: Version,
}

impl Default for FakeGradio {
    fn default() -> Self {
        Self {
            space: DEFAULT_SPACE.to_owned(),
            page_token: PAGE_TOKEN.to_owned(),
            session_uuid: SESSION_UUID.to_owned(),
            jwt_token: JWT_TOKEN.to_owned(),
            script: Script::echo(1),
            heartbeat: Duration::from_secs(15),
            ending: Ending::Complete,
            predict_fn: 10,
            join_fn: 11,
            version: Version::Gradio5,
        }
    }
}

impl FakeGradio {
    /// The default configuration (see the type docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// The Space id (`owner/name`) the Hub routes answer for.
    pub fn space(mut self, space: &str) -> Self {
        self.space = space.trim_matches('/').to_owned();
        self
    }

    /// The ZeroGPU token of the Space page.
    pub fn page_token(mut self, token: &str) -> Self {
        self.page_token = token.to_owned();
        self
    }

    /// The ZeroGPU session UUID of the Space page.
    pub fn session_uuid(mut self, uuid: &str) -> Self {
        self.session_uuid = uuid.to_owned();
        self
    }

    /// The token of the JWT route.
    pub fn jwt_token(mut self, token: &str) -> Self {
        self.jwt_token = token.to_owned();
        self
    }

    script_builders!(reply, echo, chunk_delay);

    /// Interval of `heartbeat` messages, counted from the start of the stream (zero disables).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// How queued events end.
    pub fn ending(mut self, ending: Ending) -> Self {
        self.ending = ending;
        self
    }

    /// Every queued event fails with `process_completed` / `output.error` = `message`.
    pub fn fail_with(self, message: &str) -> Self {
        self.ending(Ending::Error(message.to_owned()))
    }

    /// Every queued event fails with [`QUOTA_ERROR`].
    pub fn quota_exceeded(self) -> Self {
        self.fail_with(QUOTA_ERROR)
    }

    /// The `fn_index` of the "add message" (predict) and "bot" (join) functions.
    pub fn fn_indexes(mut self, predict: u64, join: u64) -> Self {
        self.predict_fn = predict;
        self.join_fn = join;
        self
    }

    /// The Gradio major version the Space behaves as (default [`Version::Gradio5`]).
    pub fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// Behaves as a Gradio 6 Space ([`Version::Gradio6`]).
    pub fn gradio6(self) -> Self {
        self.version(Version::Gradio6)
    }

    /// The routes of this fake (Space and Hub), to combine with others or serve with faults.
    pub fn router(self) -> Router {
        let state = Arc::new(State {
            space: self.space.clone(),
            cfg: self,
            uploads: Mutex::default(),
            pending: Mutex::default(),
            counter: AtomicU64::new(0),
        });
        let (s0, s1, s2, s3, s4, s5, s6, s7) = (
            state.clone(),
            state.clone(),
            state.clone(),
            state.clone(),
            state.clone(),
            state.clone(),
            state.clone(),
            state,
        );
        Router::new()
            .get("/config", move |_req| {
                let s = s0.clone();
                async move { s.config() }
            })
            .post("/gradio_api/upload", move |req| {
                let s = s1.clone();
                async move { s.upload(&req) }
            })
            .post("/gradio_api/run/predict", move |req| {
                let s = s2.clone();
                async move { s.predict(&req) }
            })
            .post("/gradio_api/queue/join", move |req| {
                let s = s3.clone();
                async move { s.join(&req) }
            })
            .get("/gradio_api/queue/data", move |req| {
                let s = s4.clone();
                async move { s.data(&req) }
            })
            .get("/gradio_api/file=/*", move |req| {
                let s = s5.clone();
                async move { s.file(&req) }
            })
            .get("/spaces/{owner}/{name}", move |req| {
                let s = s6.clone();
                async move { s.page(&req) }
            })
            .get("/api/spaces/{owner}/{name}/jwt", move |req| {
                let s = s7.clone();
                async move { s.jwt(&req) }
            })
    }

    /// Starts a [`FakeServer`] serving [`FakeGradio::router`].
    pub async fn start(self) -> FakeServer {
        FakeServer::start(self.router()).await
    }
}

struct Upload {
    data: Bytes,
}

enum Outcome {
    Reply { user: String, text: String },
    Error(String),
}

struct Pending {
    event_id: String,
    outcome: Outcome,
}

struct State {
    cfg: FakeGradio,
    space: String,
    /// Server path → file.
    uploads: Mutex<HashMap<String, Upload>>,
    /// Session hash → queued events.
    pending: Mutex<HashMap<String, VecDeque<Pending>>>,
    counter: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `n` lower-case hex characters derived from `seed`.
fn hex(seed: &[u8], n: usize) -> String {
    let mut out = String::new();
    let mut round = 0u64;
    while out.len() < n {
        let mut h = DefaultHasher::new();
        round.hash(&mut h);
        seed.hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
        round += 1;
    }
    out.truncate(n);
    out
}

/// A FastAPI-style 422 answer.
fn unprocessable(message: &str) -> Reply {
    Reply::json(
        422,
        &json!({"detail": [{"type": "value_error", "loc": ["body"], "msg": message}]}),
    )
}

fn gradio_error(message: &str) -> Reply {
    Reply::json(500, &json!({"error": message}))
}

/// Gradio 6's answer to an unknown `fn_index` (capture FLOW K).
fn internal_server_error() -> Reply {
    Reply::text(500, "Internal Server Error")
}

/// One part of a `multipart/form-data` body.
struct Part {
    name: String,
    file_name: Option<String>,
    data: Bytes,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a `multipart/form-data` body; `None` when it is malformed.
fn parse_multipart(content_type: &str, body: &Bytes) -> Option<Vec<Part>> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    if boundary.is_empty() {
        return None;
    }
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n--{boundary}");
    let mut pos = find(body, delim.as_bytes())? + delim.len();
    let mut parts = Vec::new();
    loop {
        let rest = body.get(pos..)?;
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        let start = pos + 2;
        if !rest.starts_with(b"\r\n") {
            return None;
        }
        let len = find(body.get(start..)?, next_delim.as_bytes())?;
        let part = body.slice(start..start + len);
        let header_end = find(&part, b"\r\n\r\n")?;
        let headers = String::from_utf8_lossy(part.get(..header_end)?).into_owned();
        let data = part.slice(header_end + 4..);
        let mut name = None;
        let mut file_name = None;
        for line in headers.split("\r\n") {
            let Some((h, v)) = line.split_once(':') else {
                continue;
            };
            if !h.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for param in v.split(';').map(str::trim) {
                if let Some(n) = param.strip_prefix("name=") {
                    name = Some(n.trim_matches('"').to_owned());
                } else if let Some(f) = param.strip_prefix("filename=") {
                    file_name = Some(f.trim_matches('"').to_owned());
                }
            }
        }
        parts.push(Part {
            name: name?,
            file_name,
            data,
        });
        pos = start + len + next_delim.len();
    }
}

/// The `(path, mime_type)` of the files in the messages of `messages` (either form).
fn file_paths(messages: &Value) -> Vec<(String, String)> {
    messages
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|m| m.get("content"))
                .flat_map(content_files)
                .filter_map(|file| {
                    let path = file.get("path")?.as_str()?.to_owned();
                    let mime = file
                        .get("mime_type")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    Some((path, mime))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `first`, then ` word` for each further space-separated word.
fn pieces(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, word) in text.split(' ').enumerate() {
        if i == 0 {
            out.push(word.to_owned());
        } else {
            out.push(format!(" {word}"));
        }
    }
    out
}

impl State {
    fn upload(&self, req: &RecordedRequest) -> Reply {
        let ct = req.header("content-type").unwrap_or("");
        if !ct.starts_with("multipart/form-data") {
            return match self.cfg.version {
                Version::Gradio5 => unprocessable("Expected a multipart/form-data body"),
                Version::Gradio6 => Reply::json(400, &json!({"detail": "Invalid content type."})),
            };
        }
        let Some(parts) = parse_multipart(ct, &req.body) else {
            return Reply::json(
                400,
                &json!({"detail": "There was an error parsing the body"}),
            );
        };
        let mut paths = Vec::new();
        let mut uploads = lock(&self.uploads);
        for part in parts.into_iter().filter(|p| p.name == "files") {
            let Some(file_name) = part.file_name.filter(|f| !f.is_empty()) else {
                return unprocessable("files must be file uploads");
            };
            let base = file_name.rsplit(['/', '\\']).next().unwrap_or(&file_name);
            let path = format!("/data/gradio/{}/{base}", hex(&part.data, 64));
            uploads.insert(path.clone(), Upload { data: part.data });
            paths.push(Value::from(path));
        }
        Reply::json(200, &Value::Array(paths))
    }

    fn config(&self) -> Reply {
        Reply::json(
            200,
            &self
                .cfg
                .version
                .config(self.cfg.predict_fn, self.cfg.join_fn),
        )
    }

    /// A 500 `{"error"}` answer (Gradio 6 adds `"visible": true`).
    fn gradio_error(&self, message: &str) -> Reply {
        match self.cfg.version {
            Version::Gradio5 => gradio_error(message),
            Version::Gradio6 => Reply::json(500, &json!({"error": message, "visible": true})),
        }
    }

    fn file(&self, req: &RecordedRequest) -> Reply {
        let path = format!("/{}", req.param("*").unwrap_or(""));
        match lock(&self.uploads).get(&path) {
            Some(u) => Reply::bytes(200, "application/octet-stream", u.data.clone()),
            None => Reply::json(404, &json!({"detail": "File not found"})),
        }
    }

    fn not_uploaded(&self, paths: &[(String, String)]) -> Option<String> {
        let uploads = lock(&self.uploads);
        paths
            .iter()
            .find(|(p, _)| !uploads.contains_key(p))
            .map(|(p, _)| {
                format!(
                    "Cannot move {p} to the gradio cache dir because it was not uploaded by a user."
                )
            })
    }

    fn predict(&self, req: &RecordedRequest) -> Reply {
        let Ok(body) = req.json() else {
            return unprocessable("JSON decode error");
        };
        let version = self.cfg.version;
        if body.get("fn_index").and_then(Value::as_u64) != Some(self.cfg.predict_fn) {
            return match version {
                Version::Gradio5 => gradio_error("fn_index not found"),
                Version::Gradio6 => internal_server_error(),
            };
        }
        let message = body.pointer("/data/1").cloned().unwrap_or(Value::Null);
        let text = message.get("text").and_then(Value::as_str).unwrap_or("");
        let Some(files) = message.get("files").and_then(Value::as_array) else {
            return self.gradio_error(version.files_not_a_list());
        };
        let paths: Vec<(String, String)> = files
            .iter()
            .filter_map(|f| {
                let p = f.get("path")?.as_str()?.to_owned();
                let m = f.get("mime_type").and_then(Value::as_str).unwrap_or("");
                Some((p, m.to_owned()))
            })
            .collect();
        if let Some(err) = self.not_uploaded(&paths) {
            return self.gradio_error(&err);
        }
        let host = req.header("host").unwrap_or("127.0.0.1");
        let mut history: Vec<String> = paths
            .iter()
            .map(|(p, m)| version.file_message(p, &format!("http://{host}/gradio_api/file={p}"), m))
            .collect();
        history.push(version.chat_message("user", text));
        Reply::bytes(200, "application/json", version.predict_answer(&history))
    }

    fn join(&self, req: &RecordedRequest) -> Reply {
        let Ok(body) = req.json() else {
            return unprocessable("JSON decode error");
        };
        let Some(session) = body.get("session_hash").and_then(Value::as_str) else {
            return unprocessable("session_hash is required");
        };
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let event_id = hex(format!("{session}/{n}").as_bytes(), 32);
        let data = body.get("data").cloned().unwrap_or(Value::Null);
        let inputs = data.as_array().cloned().unwrap_or_default();
        let version = self.cfg.version;
        let known_fn = body.get("fn_index").and_then(Value::as_u64) == Some(self.cfg.join_fn);
        if !known_fn && version == Version::Gradio6 {
            return internal_server_error();
        }
        let outcome = if !known_fn {
            Outcome::Error("fn_index not found".to_owned())
        } else if inputs.len() != 2 {
            Outcome::Error(format!(
                "An event handler (bot) didn't receive enough input values (needed: 2, got: {}).\nCheck if the event handler calls a Javascript function, and make sure its return value is correct.\nWanted inputs:\n    [<gradio.components.chatbot.Chatbot object>, <gradio.components.chatbot.Chatbot object>]\nReceived inputs:\n    {data}",
                inputs.len()
            ))
        } else {
            let files = file_paths(&inputs[1]);
            let invalid = version
                .chatbot_error(&inputs[0])
                .or_else(|| version.chatbot_error(&inputs[1]));
            if let Some(err) = invalid.or_else(|| self.not_uploaded(&files)) {
                Outcome::Error(err)
            } else if let Ending::Error(message) = &self.cfg.ending {
                Outcome::Error(message.clone())
            } else {
                let user = inputs[0]
                    .as_array()
                    .and_then(|h| h.last())
                    .and_then(|m| m.get("content"))
                    .map(content_text)
                    .unwrap_or_default();
                let text = self.cfg.script.answer(|| {
                    let uploads = lock(&self.uploads);
                    let list: Vec<String> = files
                        .iter()
                        .map(|(p, m)| {
                            let size = uploads.get(p).map_or(0, |u| u.data.len());
                            format!("{m}:{size}")
                        })
                        .collect();
                    let mut t = format!("{user} | files: {}", files.len());
                    if !list.is_empty() {
                        t.push(' ');
                        t.push_str(&list.join(","));
                    }
                    t
                });
                Outcome::Reply { user, text }
            }
        };
        lock(&self.pending)
            .entry(session.to_owned())
            .or_default()
            .push_back(Pending {
                event_id: event_id.clone(),
                outcome,
            });
        Reply::bytes(
            200,
            "application/json",
            format!(r#"{{"event_id":"{event_id}"}}"#),
        )
    }

    fn data(&self, req: &RecordedRequest) -> Reply {
        let session = req.query_param("session_hash").unwrap_or_default();
        let events: Vec<Pending> = lock(&self.pending)
            .remove(&session)
            .map(Vec::from)
            .unwrap_or_default();
        let sse = |s: String| Bytes::from(format!("data: {s}\n\n"));
        let version = self.cfg.version;
        if events.is_empty() {
            return Reply::new(200)
                .header("content-type", "text/event-stream; charset=utf-8")
                .chunks([sse(version.session_not_found().to_owned())]);
        }
        let d = self.cfg.script.chunk_delay();
        let mut timeline: Vec<(Duration, String)> = Vec::new();
        let mut close = true;
        for ev in events {
            let id = ev.event_id;
            timeline.push((
                Duration::ZERO,
                format!(
                    r#"{{"msg":"estimation","event_id":"{id}","rank":0,"queue_size":1,"rank_eta":0.3826938271522522}}"#
                ),
            ));
            timeline.push((
                d,
                format!(r#"{{"msg":"process_starts","event_id":"{id}","eta":0.3826938271522522}}"#),
            ));
            match ev.outcome {
                Outcome::Error(message) => {
                    timeline.push((Duration::ZERO, version.failed(&id, &message)));
                }
                Outcome::Reply { user, text } => {
                    let history = |reply: &str| {
                        format!(
                            "[{},{}]",
                            version.chat_message("user", &user),
                            version.chat_message("assistant", reply)
                        )
                    };
                    let mut parts = pieces(&text).into_iter();
                    let first = parts.next().unwrap_or_default();
                    timeline.push((d, version.generating(&id, &history(&first))));
                    for p in parts {
                        timeline.push((d, version.generating(&id, &version.append_diff(&p))));
                    }
                    match &self.cfg.ending {
                        Ending::CloseWithoutCompletion => {}
                        Ending::EofWithoutCompletion => close = false,
                        _ => {
                            timeline.push((Duration::ZERO, version.completed(&id, &history(&text))))
                        }
                    }
                }
            }
        }
        if close {
            timeline.push((
                Duration::ZERO,
                r#"{"msg":"close_stream","event_id":null}"#.to_owned(),
            ));
        }
        let chunks = with_heartbeats(timeline, self.cfg.heartbeat)
            .into_iter()
            .map(|(delay, msg)| Chunk::delayed(delay, sse(msg)))
            .collect::<Vec<_>>();
        let mut reply = Reply::new(200).header("content-type", "text/event-stream; charset=utf-8");
        reply.body = crate::reply::BodyPlan::Chunks(chunks);
        reply
    }

    fn page(&self, req: &RecordedRequest) -> Reply {
        let id = format!(
            "{}/{}",
            req.param("owner").unwrap_or(""),
            req.param("name").unwrap_or("")
        );
        if id != self.space {
            return Reply::html(
                404,
                "<!doctype html><html><body><h1>404</h1><p>Sorry, we can't find the page you are looking for.</p></body></html>",
            );
        }
        let q = "&quot;";
        Reply::html(
            200,
            format!(
                r#"<!doctype html><html><body><div class="SVELTE_HYDRATER" data-target="SpaceHeader" data-props="{{{q}space{q}:{{{q}id{q}:{q}{id}{q}}},{q}zeroGpu{q}:{{{q}token{q}:{q}{}{q},{q}sessionUuid{q}:{q}{}{q}}}}}"></div></body></html>"#,
                self.cfg.page_token, self.cfg.session_uuid
            ),
        )
    }

    fn jwt(&self, req: &RecordedRequest) -> Reply {
        let id = format!(
            "{}/{}",
            req.param("owner").unwrap_or(""),
            req.param("name").unwrap_or("")
        );
        if id != self.space {
            return Reply::json(404, &json!({"error": "Repository not found"}));
        }
        let has_cookie = req.header("cookie").is_some_and(|c| !c.trim().is_empty());
        if !has_cookie || req.query_param("expiration").is_none() {
            return Reply::json(401, &json!({"error": "Unauthorized"}));
        }
        Reply::json(200, &json!({"token": self.cfg.jwt_token}))
    }
}

/// Inserts `{"msg":"heartbeat","event_id":null}` every `interval` of stream time.
fn with_heartbeats(
    timeline: Vec<(Duration, String)>,
    interval: Duration,
) -> Vec<(Duration, String)> {
    if interval.is_zero() {
        return timeline;
    }
    let heartbeat = r#"{"msg":"heartbeat","event_id":null}"#;
    let mut out = Vec::new();
    let mut now = Duration::ZERO;
    let mut next = interval;
    for (delay, msg) in timeline {
        let at = now + delay;
        let mut last = now;
        while next <= at {
            out.push((next - last, heartbeat.to_owned()));
            last = next;
            next += interval;
        }
        out.push((at - last, msg));
        now = at;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;

    async fn events(url: &str) -> Vec<Value> {
        let text = client::get(url)
            .await
            .expect("get")
            .text()
            .await
            .expect("body");
        text.split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| {
                serde_json::from_str(f.strip_prefix("data: ").expect("data frame")).expect("json")
            })
            .collect()
    }

    fn kinds(events: &[Value]) -> Vec<&str> {
        events.iter().filter_map(|e| e["msg"].as_str()).collect()
    }

    #[tokio::test]
    async fn queue_data_before_join_is_an_unexpected_error() {
        let server = FakeGradio::new().start().await;
        let ev = events(&server.url("/gradio_api/queue/data?session_hash=nope")).await;
        assert_eq!(kinds(&ev), ["unexpected_error"]);
        assert_eq!(ev[0]["message"], "404: Session not found.");
    }

    #[tokio::test]
    async fn text_only_flow_like_the_capture() {
        let server = FakeGradio::new().start().await;
        let predict = client::post_json(
            &server.url("/gradio_api/run/predict"),
            &[],
            &json!({"data": [[], {"text": "Hello Phi", "files": []}, null], "event_data": null, "fn_index": 10, "trigger_id": 8, "session_hash": "s1"}),
        )
        .await
        .expect("predict");
        assert_eq!(predict.status, 200);
        let join = client::post_json(
            &server.url("/gradio_api/queue/join?__theme=light"),
            &[],
            &json!({"data": [[{"role": "user", "content": "Hello Phi"}], []], "event_data": null, "fn_index": 11, "trigger_id": 8, "session_hash": "s1"}),
        )
        .await
        .expect("join")
        .json()
        .await
        .expect("json");
        let event_id = join["event_id"].as_str().expect("event id").to_owned();
        assert_eq!(event_id.len(), 32);
        let ev = events(&server.url("/gradio_api/queue/data?session_hash=s1")).await;
        assert_eq!(
            kinds(&ev),
            [
                "estimation",
                "process_starts",
                "process_generating",
                "process_generating",
                "process_generating",
                "process_generating",
                "process_generating",
                "process_generating",
                "process_completed",
                "close_stream"
            ]
        );
        assert_eq!(ev[2]["output"]["data"][0][1]["content"], "echo:");
        assert_eq!(
            ev[3]["output"]["data"],
            json!([[["append", [1, "content"], " Hello"]]])
        );
        assert_eq!(
            ev[8]["output"]["data"][0][1]["content"],
            "echo: Hello Phi | files: 0"
        );
        assert_eq!(ev[8]["event_id"], event_id.as_str());
        // consumed: the session has nothing queued any more
        let again = events(&server.url("/gradio_api/queue/data?session_hash=s1")).await;
        assert_eq!(kinds(&again), ["unexpected_error"]);
    }

    #[tokio::test]
    async fn predict_rejects_null_files_and_join_checks_inputs_and_uploads() {
        let server = FakeGradio::new().start().await;
        let r = client::post_json(
            &server.url("/gradio_api/run/predict"),
            &[],
            &json!({"data": [[], {"text": "Hi", "files": null}, null], "fn_index": 10, "session_hash": "s"}),
        )
        .await
        .expect("predict");
        assert_eq!(r.status, 500);
        assert_eq!(r.json().await.expect("json")["error"], FILES_NOT_A_LIST);

        for (session, data) in [
            ("one", json!([[{"role": "user", "content": "Hi"}]])),
            (
                "bad-file",
                json!([[{"role": "user", "content": "Hi"}], [{"role": "user", "content": {"file": {"path": "/etc/passwd"}}}]]),
            ),
        ] {
            client::post_json(
                &server.url("/gradio_api/queue/join"),
                &[],
                &json!({"data": data, "fn_index": 11, "session_hash": session}),
            )
            .await
            .expect("join");
            let ev = events(&server.url(&format!("/gradio_api/queue/data?session_hash={session}")))
                .await;
            assert_eq!(
                kinds(&ev),
                [
                    "estimation",
                    "process_starts",
                    "process_completed",
                    "close_stream"
                ]
            );
            assert_eq!(ev[2]["success"], false);
            let err = ev[2]["output"]["error"].as_str().expect("error");
            assert!(
                err.contains("needed: 2, got: 1") || err.contains("Cannot move /etc/passwd"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn uploads_return_paths_that_join_accepts() {
        let server = FakeGradio::new().start().await;
        let boundary = "XyZ";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.wav\"\r\nContent-Type: application/octet-stream\r\n\r\nRIFF1234WAVE\r\n--{boundary}--\r\n"
        );
        let resp = client::send(
            http::Method::POST,
            &server.url("/gradio_api/upload?upload_id=s"),
            &[(
                "content-type",
                format!("multipart/form-data; boundary={boundary}").as_str(),
            )],
            Bytes::from(body),
        )
        .await
        .expect("upload");
        assert_eq!(resp.status, 200);
        let paths = resp.json().await.expect("json");
        let path = paths[0].as_str().expect("path").to_owned();
        assert!(
            path.starts_with("/data/gradio/") && path.ends_with("/a.wav"),
            "{path}"
        );
        let served = client::get(&server.url(&format!("/gradio_api/file={path}")))
            .await
            .expect("file")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(&served[..], b"RIFF1234WAVE");
        client::post_json(
            &server.url("/gradio_api/queue/join"),
            &[],
            &json!({"data": [[{"role": "user", "content": "Hi"}], [{"role": "user", "content": {"file": {"path": path, "mime_type": "audio/wav"}}}]], "fn_index": 11, "session_hash": "s"}),
        )
        .await
        .expect("join");
        let ev = events(&server.url("/gradio_api/queue/data?session_hash=s")).await;
        let done = ev
            .iter()
            .find(|e| e["msg"] == "process_completed")
            .expect("completed");
        assert_eq!(
            done["output"]["data"][0][1]["content"],
            "echo: Hi | files: 1 audio/wav:12"
        );
    }

    async fn join(server: &FakeServer, session: &str, data: Value) -> Vec<Value> {
        client::post_json(
            &server.url("/gradio_api/queue/join?__theme=light"),
            &[],
            &json!({"data": data, "event_data": null, "fn_index": 11, "trigger_id": 8, "session_hash": session}),
        )
        .await
        .expect("join");
        events(&server.url(&format!("/gradio_api/queue/data?session_hash={session}"))).await
    }

    #[tokio::test]
    async fn config_reports_the_version() {
        for (fake, version) in [
            (FakeGradio::new(), "5.35.0"),
            (FakeGradio::new().gradio6(), "6.31.0"),
        ] {
            let server = fake.start().await;
            let config = client::get(&server.url("/config"))
                .await
                .expect("config")
                .json()
                .await
                .expect("json");
            assert_eq!(config["version"], version);
            assert_eq!(config["protocol"], "sse_v3");
            assert_eq!(config["api_prefix"], "/gradio_api");
            assert_eq!(config["dependencies"][1]["api_name"], "bot_response");
        }
    }

    /// FLOW I of gradio-6-capture.txt.
    #[tokio::test]
    async fn gradio_6_text_flow_like_the_capture() {
        let server = FakeGradio::new().gradio6().start().await;
        let predict = client::post_json(
            &server.url("/gradio_api/run/predict"),
            &[],
            &json!({"data": [[], {"text": "Hello Phi", "files": []}, null], "event_data": null, "fn_index": 10, "trigger_id": 8, "session_hash": "s6"}),
        )
        .await
        .expect("predict");
        let body = predict.text().await.expect("body");
        assert!(body.starts_with(r#"{"data":[[{"role":"user","metadata":null,"content":[{"text":"Hello Phi","type":"text"}],"options":null}],{"interactive":false,"value":{"text":"","files":[]},"__type__":"update"},null],"is_generating":false,"duration":"#), "{body}");
        assert!(
            body.ends_with(r#""changed_state_ids":[],"used_cache":null}"#),
            "{body}"
        );
        let ev = join(
            &server,
            "s6",
            json!([[{"role": "user", "content": [{"type": "text", "text": "Hello Phi"}]}], []]),
        )
        .await;
        assert_eq!(
            kinds(&ev),
            [
                "estimation",
                "process_starts",
                "process_generating",
                "process_generating",
                "process_generating",
                "process_generating",
                "process_generating",
                "process_generating",
                "process_completed",
                "close_stream"
            ]
        );
        assert_eq!(
            ev[2]["output"]["data"][0][1]["content"],
            json!([{"text": "echo:", "type": "text"}])
        );
        assert_eq!(ev[2]["output"]["used_cache"], Value::Null);
        assert_eq!(
            ev[3]["output"]["data"],
            json!([[["append", [1, "content", 0, "text"], " Hello"]]])
        );
        assert_eq!(
            ev[8]["output"]["data"][0][1]["content"],
            json!([{"text": "echo: Hello Phi | files: 0", "type": "text"}])
        );
        assert!(ev[8].get("avg_time").is_some() && ev[8].get("cache_duration").is_some());
        let again = events(&server.url("/gradio_api/queue/data?session_hash=s6")).await;
        assert_eq!(
            again[0],
            json!({"msg": "unexpected_error", "event_id": null, "message": "404: Not Found", "session_not_found": true, "success": false})
        );
    }

    /// FLOW B of gradio-6-capture.txt (Gradio 5 message form sent to Gradio 6), and the reverse.
    #[tokio::test]
    async fn each_version_refuses_the_other_form() {
        let server = FakeGradio::new().gradio6().start().await;
        let ev = join(
            &server,
            "b",
            json!([[{"role": "user", "content": "Hello Phi"}], []]),
        )
        .await;
        assert_eq!(
            kinds(&ev),
            [
                "estimation",
                "process_starts",
                "process_completed",
                "close_stream"
            ]
        );
        assert_eq!(
            ev[2]["output"],
            json!({"error": "1 validation error for ChatbotDataMessages\n0.content\n  Input should be a valid list [type=list_type, input_value='Hello Phi', input_type=str]\n    For further information visit https://errors.pydantic.dev/2.14/v/list_type", "visible": true})
        );
        assert_eq!(
            (ev[2]["success"].clone(), ev[2]["title"].clone()),
            (json!(false), json!("Error"))
        );
        let server = FakeGradio::new().start().await;
        let ev = join(
            &server,
            "l",
            json!([[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], []]),
        )
        .await;
        let err = ev[2]["output"]["error"].as_str().expect("error");
        assert!(
            err.starts_with("3 validation errors for ChatbotDataMessages\n0.content.str\n"),
            "{err}"
        );
        assert_eq!(ev[2]["output"].get("visible"), None);
    }

    /// FLOW K and L of gradio-6-capture.txt.
    #[tokio::test]
    async fn gradio_6_error_shapes() {
        let server = FakeGradio::new().gradio6().start().await;
        for route in ["/gradio_api/queue/join", "/gradio_api/run/predict"] {
            let r = client::post_json(
                &server.url(route),
                &[],
                &json!({"data": [[], []], "fn_index": 99, "session_hash": "k"}),
            )
            .await
            .expect("post");
            assert_eq!(r.status, 500);
            assert_eq!(r.text().await.expect("body"), "Internal Server Error");
        }
        let r = client::post_json(
            &server.url("/gradio_api/run/predict"),
            &[],
            &json!({"data": [[], {"text": "Hi", "files": null}, null], "fn_index": 10, "session_hash": "c"}),
        )
        .await
        .expect("predict");
        assert_eq!(
            r.json().await.expect("json"),
            json!({"error": FILES_NOT_A_LIST_6, "visible": true})
        );
        let r = client::send(
            http::Method::POST,
            &server.url("/gradio_api/upload?upload_id=l"),
            &[("content-type", "application/x-www-form-urlencoded")],
            Bytes::new(),
        )
        .await
        .expect("upload");
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json().await.expect("json"),
            json!({"detail": "Invalid content type."})
        );
    }

    #[tokio::test]
    async fn hub_routes() {
        let server = FakeGradio::new().start().await;
        let page = client::get(&server.url("/spaces/microsoft/phi-4-multimodal"))
            .await
            .expect("page")
            .text()
            .await
            .expect("html");
        assert!(page.contains(&format!("&quot;token&quot;:&quot;{PAGE_TOKEN}&quot;")));
        assert!(page.contains(&format!(
            "&quot;sessionUuid&quot;:&quot;{SESSION_UUID}&quot;"
        )));
        let jwt = server
            .url("/api/spaces/microsoft/phi-4-multimodal/jwt?expiration=x&include_pro_status=true");
        assert_eq!(client::get(&jwt).await.expect("jwt").status, 401);
        let ok = client::send(
            http::Method::GET,
            &jwt,
            &[("cookie", "token=abc")],
            Bytes::new(),
        )
        .await
        .expect("jwt");
        assert_eq!(ok.json().await.expect("json")["token"], JWT_TOKEN);
    }

    #[test]
    fn heartbeats_are_interleaved() {
        let t = vec![
            (Duration::ZERO, "a".to_owned()),
            (Duration::from_secs(10), "b".to_owned()),
            (Duration::from_secs(10), "c".to_owned()),
        ];
        let out = with_heartbeats(t, Duration::from_secs(15));
        let msgs: Vec<&str> = out.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(
            msgs,
            ["a", "b", r#"{"msg":"heartbeat","event_id":null}"#, "c"]
        );
        let total: Duration = out.iter().map(|(d, _)| *d).sum();
        assert_eq!(total, Duration::from_secs(20));
        assert_eq!(out[2].0, Duration::from_secs(5));
    }

    #[test]
    fn multipart_parsing() {
        let body = Bytes::from_static(b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.png\"\r\n\r\n\x89PNG\r\n--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--b--\r\n");
        let parts = parse_multipart("multipart/form-data; boundary=b", &body).expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].file_name.as_deref(), Some("x.png"));
        assert_eq!(&parts[0].data[..], b"\x89PNG");
        assert_eq!(parts[1].name, "other");
        assert!(
            parse_multipart(
                "multipart/form-data; boundary=b",
                &Bytes::from_static(b"junk")
            )
            .is_none()
        );
    }
}
