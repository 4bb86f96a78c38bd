//! A reusable client for Gradio Spaces (the Gradio 4, 5 and 6 queue protocol, `sse_v3`), plus
//! the Hugging Face ZeroGPU credential helpers that Spaces on ZeroGPU hardware need.
//!
//! Gradio 6 changed the shape of `Chatbot` messages: their `content` is a list of typed blocks
//! (`{"type": "text", "text"}`, `{"type": "file", "file"}`) in inputs, outputs and diffs (paths
//! such as `[1, "content", 0, "text"]`), and each major version rejects the other's form. So a
//! Space's version is read once from `GET /config` ([`ConfigCache`]) and messages are built in
//! its [`Dialect`]; replies are read in both ([`chatbot_reply`]).
//!
//! One call to a Space function is:
//!
//! 1. [`Space::upload`] the files (`POST /gradio_api/upload?upload_id=<session>`, one `files`
//!    part per file) and get [`FileData`] objects back;
//! 2. optionally [`Space::predict`] a non-queued function (`POST /gradio_api/run/predict`);
//! 3. [`Space::join`] the queue (`POST /gradio_api/queue/join`);
//! 4. [`Space::listen`] to the session's `GET /gradio_api/queue/data?session_hash=<session>` event
//!    stream, which yields [`QueueEvent`]s: `process_generating` outputs have Gradio's diffs applied
//!    ([`apply_diff`]), every error kind becomes a typed [`Error`], and a stream that ends without
//!    `process_completed` is an error.
//!
//! For chat Spaces, [`chatbot_reply`] reads the assistant text out of a `Chatbot` value and
//! [`ReplyText`] turns successive full texts into deltas.
//!
//! ```no_run
//! # async fn demo(http: llmux_core::http::HttpClient) -> llmux_core::Result<()> {
//! use llmux_core::futures_util::StreamExt;
//! use llmux_gradio::{self as gradio, Call, QueueEvent, ReplyText, Space};
//! use serde_json::json;
//!
//! let space = Space::new("my-provider", "https://user-space.hf.space");
//! let session = gradio::session_hash();
//! space.join(&http, &Call::new(0, &session, json!([[{"role": "user", "content": "Hi"}]]))).await?;
//! let mut reply = ReplyText::default();
//! let mut events = std::pin::pin!(space.listen(&http, &session));
//! while let Some(event) = events.next().await {
//!     if let QueueEvent::Generating(out) | QueueEvent::Completed(out) = event? {
//!         if let Some(delta) = out.first().and_then(gradio::chatbot_reply).and_then(|t| reply.update(t)) {
//!             print!("{delta}");
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! What `listen` does with the frames, runnable offline: a Gradio 6 `Chatbot` value, a diff that
//! appends to the assistant's text block, and the deltas [`ReplyText`] makes of the full texts.
//!
//! ```
//! use llmux_gradio::{Dialect, ReplyText, apply_diff, chatbot_reply};
//! use serde_json::json;
//!
//! let dialect = Dialect::from_version("6.31.0").unwrap_or(Dialect::Gradio5);
//! assert!(matches!(dialect, Dialect::Gradio6));
//! let mut chatbot = json!([
//!     dialect.text_message("user", "Hi"),
//!     dialect.text_message("assistant", "Hel"),
//! ]);
//! let mut reply = ReplyText::default();
//! let delta = chatbot_reply(&chatbot).and_then(|t| reply.update(t));
//! assert_eq!(delta.as_deref(), Some("Hel"));
//!
//! apply_diff(&mut chatbot, &json!([["append", [1, "content", 0, "text"], "lo!"]]))?;
//! let delta = chatbot_reply(&chatbot).and_then(|t| reply.update(t));
//! assert_eq!(delta.as_deref(), Some("lo!"));
//! # Ok::<(), llmux_gradio::DiffError>(())
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use llmux_core::error::{Error, Result, TimeoutPhase, snippet};
use llmux_core::http::{HttpClient, Multipart, RequestBuilder, strip_html};
use llmux_core::provider::DiscoveryCache;
use llmux_core::secret::{Cookies, Secret};
use llmux_hf::SPACE_RULES;

/// The `meta._type` of a Gradio file object.
pub const FILE_DATA_TYPE: &str = "gradio.FileData";

/// What the Space's JavaScript sends for a missing ZeroGPU value (an object printed as a string);
/// g4f copies it.
pub const OBJECT_OBJECT: &str = "[object Object]";

/// A new session hash: 32 lower-case hex characters (a UUID4 without dashes, as Gradio clients use).
pub fn session_hash() -> String {
    llmux_core::random::uuid_v4().replace('-', "")
}

/// A file to upload to a Space.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadFile {
    /// File name sent in the multipart part (and kept as `orig_name`).
    pub name: String,
    /// MIME type recorded in the [`FileData`] (the part itself is `application/octet-stream`).
    pub mime: String,
    /// The bytes.
    pub data: Bytes,
}

impl std::fmt::Debug for UploadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadFile")
            .field("name", &self.name)
            .field("mime", &self.mime)
            .field("len", &self.data.len())
            .finish()
    }
}

/// The `meta` object of a [`FileData`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Always [`FILE_DATA_TYPE`].
    #[serde(rename = "_type")]
    pub kind: String,
}

/// A Gradio file object (`gradio.FileData`) pointing at an uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileData {
    /// Server-side path returned by the upload.
    pub path: String,
    /// `<base>/gradio_api/file=<path>`.
    pub url: String,
    /// The uploaded file name.
    pub orig_name: String,
    /// Size in bytes.
    pub size: u64,
    /// MIME type.
    pub mime_type: String,
    /// `{"_type": "gradio.FileData"}`.
    pub meta: FileMeta,
}

impl FileData {
    /// As a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// How a Space's `Chatbot` messages are shaped, which depends on its Gradio major version
/// ([`Dialect::from_version`], read from `GET /config` by [`ConfigCache`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Gradio 4 and 5: a message's `content` is a string, or `{"file": FileData}` for a file.
    /// Gradio 5 rejects the list form.
    Gradio5,
    /// Gradio 6 and later: `content` is a list of typed blocks (`{"type": "text", "text"}`,
    /// `{"type": "file", "file": FileData}`, components). Gradio 6 rejects a string or object
    /// (`Input should be a valid list`).
    Gradio6,
}

impl Dialect {
    /// The dialect of a Gradio version such as `6.31.0` (its major number: 6 and later speak
    /// [`Dialect::Gradio6`], earlier ones [`Dialect::Gradio5`]); `None` when the version does
    /// not start with a number.
    pub fn from_version(version: &str) -> Option<Self> {
        let major: String = version
            .trim()
            .trim_start_matches('v')
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let major: u64 = major.parse().ok()?;
        Some(if major >= 6 {
            Self::Gradio6
        } else {
            Self::Gradio5
        })
    }

    /// A text message of `role`: `{"role", "content": text}` (Gradio 5) or
    /// `{"role", "content": [{"type": "text", "text"}]}` (Gradio 6).
    pub fn text_message(self, role: &str, text: &str) -> Value {
        match self {
            Self::Gradio5 => serde_json::json!({"role": role, "content": text}),
            Self::Gradio6 => {
                serde_json::json!({"role": role, "content": [{"type": "text", "text": text}]})
            }
        }
    }

    /// A message of `role` carrying one uploaded file: `{"role", "content": {"file"}}`
    /// (Gradio 5) or `{"role", "content": [{"type": "file", "file"}]}` (Gradio 6).
    pub fn file_message(self, role: &str, file: &FileData) -> Value {
        let file = file.to_value();
        match self {
            Self::Gradio5 => serde_json::json!({"role": role, "content": {"file": file}}),
            Self::Gradio6 => {
                serde_json::json!({"role": role, "content": [{"type": "file", "file": file}]})
            }
        }
    }
}

/// What a Space's `GET /config` says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceConfig {
    /// The Gradio version (`version`), e.g. `6.31.0`.
    pub version: String,
    /// The message dialect of that version.
    pub dialect: Dialect,
}

/// Per-Space cache of [`SpaceConfig`]s, keyed by the Space's API origin, with the discipline of
/// the other discoveries ([`DiscoveryCache`]): one `GET /config` at a time per Space, a success
/// kept for the process lifetime, a failure returned again without a request for
/// [`llmux_core::provider::DISCOVERY_RETRY_AFTER`].
#[derive(Debug, Default)]
pub struct ConfigCache {
    spaces: std::sync::Mutex<HashMap<String, Arc<DiscoveryCache<SpaceConfig>>>>,
}

impl ConfigCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The configuration of `space`, fetched with [`Space::config`] on first use.
    pub async fn get(&self, http: &HttpClient, space: &Space) -> Result<SpaceConfig> {
        let slot = self
            .spaces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(space.base.clone())
            .or_default()
            .clone();
        slot.get_or_fetch(|| space.config(http)).await
    }
}

/// The body of `run/predict` and `queue/join`: `{"data", "event_data", "fn_index", "trigger_id",
/// "session_hash"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    /// The function's input values.
    pub data: Value,
    /// Event data (`null` for clicks and submits).
    pub event_data: Value,
    /// Index of the function in the Space's config.
    pub fn_index: u32,
    /// Id of the component that triggered the event (omitted when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<u32>,
    /// The session.
    pub session_hash: String,
}

impl Call {
    /// A call of function `fn_index` with these inputs.
    pub fn new(fn_index: u32, session_hash: &str, data: Value) -> Self {
        Self {
            data,
            event_data: Value::Null,
            fn_index,
            trigger_id: None,
            session_hash: session_hash.to_owned(),
        }
    }

    /// Sets the trigger id.
    pub fn trigger(mut self, trigger_id: u32) -> Self {
        self.trigger_id = Some(trigger_id);
        self
    }
}

/// One Gradio Space: its API origin, the provider name errors are reported under, a `referer`,
/// and headers sent with `run/predict` and `queue/join` (e.g. ZeroGPU credentials).
#[derive(Debug, Clone)]
pub struct Space {
    provider: String,
    base: String,
    referer: Option<String>,
    join_query: Option<String>,
    headers: Vec<(String, Secret)>,
}

impl Space {
    /// A Space served at `base` (e.g. `https://user-space.hf.space`; a trailing `/` is removed).
    pub fn new(provider: &str, base: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            base: base.trim_end_matches('/').to_owned(),
            referer: None,
            join_query: None,
            headers: Vec::new(),
        }
    }

    /// The API origin.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `referer` with every request.
    pub fn referer(mut self, referer: impl Into<String>) -> Self {
        self.referer = Some(referer.into());
        self
    }

    /// Appends `?<query>` to the `queue/join` URL (e.g. `__theme=light`).
    pub fn join_query(mut self, query: impl Into<String>) -> Self {
        self.join_query = Some(query.into());
        self
    }

    /// Sends this header (value kept secret) with `run/predict` and `queue/join`.
    pub fn header(mut self, name: &str, value: impl Into<Secret>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The URL the Space serves an uploaded file at.
    pub fn file_url(&self, path: &str) -> String {
        format!("{}/gradio_api/file={path}", self.base)
    }

    fn request(&self, rb: RequestBuilder) -> RequestBuilder {
        let rb = rb.provider(&self.provider);
        match &self.referer {
            Some(r) => rb.header("referer", r),
            None => rb,
        }
    }

    fn with_headers(&self, mut rb: RequestBuilder) -> RequestBuilder {
        for (name, value) in &self.headers {
            rb = rb.secret_header(name, value);
        }
        rb
    }

    /// Reads the Space's `GET /config` (prefer [`ConfigCache::get`], which asks once per Space).
    /// Non-2xx answers become errors by the Hugging Face Space rules; an answer that is not JSON
    /// or has no Gradio `version` is a protocol error.
    pub async fn config(&self, http: &HttpClient) -> Result<SpaceConfig> {
        let url = format!("{}/config", self.base);
        let resp = self
            .request(http.get(url))
            .send()
            .await?
            .error_for_status_with(SPACE_RULES)
            .await?;
        let body: Value = resp.json().await?;
        let version = body.get("version").and_then(Value::as_str).unwrap_or("");
        let dialect = Dialect::from_version(version).ok_or_else(|| {
            Error::protocol(
                &self.provider,
                "the Space's /config has no Gradio `version`; is the base URL the Space's API origin (https://<owner>-<name>.hf.space)?",
                &body.to_string(),
            )
        })?;
        Ok(SpaceConfig {
            version: version.to_owned(),
            dialect,
        })
    }

    /// Uploads `files` (`POST /gradio_api/upload?upload_id=<upload_id>`, one `files` part per
    /// file) and returns one [`FileData`] per file, in order. Non-2xx answers become errors by the
    /// Hugging Face Space rules; an answer that is not a list of one path per file is a protocol
    /// error.
    pub async fn upload(
        &self,
        http: &HttpClient,
        upload_id: &str,
        files: &[UploadFile],
    ) -> Result<Vec<FileData>> {
        let mut form = Multipart::new();
        for f in files {
            form = form.file("files", &f.name, "application/octet-stream", f.data.clone());
        }
        let url = format!("{}/gradio_api/upload", self.base);
        let resp = self
            .request(http.post(url))
            .query(&[("upload_id", upload_id)])
            .multipart(form)
            .send()
            .await?
            .error_for_status_with(SPACE_RULES)
            .await?;
        let body: Value = resp.json().await?;
        let paths: Vec<&str> = body
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if paths.len() != files.len() || body.as_array().map(Vec::len) != Some(files.len()) {
            return Err(Error::protocol(
                &self.provider,
                format!(
                    "upload answered something other than a list of {} file path(s)",
                    files.len()
                ),
                &body.to_string(),
            ));
        }
        Ok(paths
            .into_iter()
            .zip(files)
            .map(|(path, f)| FileData {
                path: path.to_owned(),
                url: self.file_url(path),
                orig_name: f.name.clone(),
                size: f.data.len() as u64,
                mime_type: f.mime.clone(),
                meta: FileMeta {
                    kind: FILE_DATA_TYPE.to_owned(),
                },
            })
            .collect())
    }

    /// Calls a non-queued function (`POST /gradio_api/run/predict`). Returns the answer's JSON
    /// (`null` when it is not JSON); non-2xx answers become errors.
    pub async fn predict(&self, http: &HttpClient, call: &Call) -> Result<Value> {
        let url = format!("{}/gradio_api/run/predict", self.base);
        let rb = self.with_headers(self.request(http.post(url)).json(call));
        let resp = rb.send().await?.error_for_status_with(SPACE_RULES).await?;
        let body = resp.bytes().await?;
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Queues a function (`POST /gradio_api/queue/join`). Returns the `event_id` when the answer
    /// has one; non-2xx answers become errors.
    pub async fn join(&self, http: &HttpClient, call: &Call) -> Result<Option<String>> {
        let mut url = format!("{}/gradio_api/queue/join", self.base);
        if let Some(q) = &self.join_query {
            url.push('?');
            url.push_str(q);
        }
        let rb = self.with_headers(self.request(http.post(url)).json(call));
        let resp = rb.send().await?.error_for_status_with(SPACE_RULES).await?;
        let body = resp.bytes().await?;
        Ok(serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("event_id")?.as_str().map(str::to_owned)))
    }

    /// Reads the session's event stream (`GET /gradio_api/queue/data?session_hash=…`) until
    /// `process_completed`; see [`QueueState`] for how each message is handled. The wait is
    /// bounded by the HTTP client's idle and total timeouts (Gradio sends a heartbeat every 15 s).
    pub fn listen(
        &self,
        http: &HttpClient,
        session_hash: &str,
    ) -> impl Stream<Item = Result<QueueEvent>> + Send + 'static {
        let url = format!("{}/gradio_api/queue/data", self.base);
        let rb = self
            .request(http.get(url))
            .query(&[("session_hash", session_hash)])
            .header("accept", "text/event-stream")
            .header("content-type", "application/json");
        let provider = self.provider.clone();
        async_stream::try_stream! {
            let resp = rb.send().await?.error_for_status_with(SPACE_RULES).await?;
            let mut lines = std::pin::pin!(llmux_core::decode::jsonl::lines(resp.into_stream()));
            let mut queue = QueueState::new(&provider);
            while let Some(line) = lines.next().await {
                let line = line.map_err(|e| e.with_provider(&provider))?;
                let Some(message) = parse_data_line(&line) else {
                    continue;
                };
                if let Some(event) = queue.handle(&message)? {
                    let done = matches!(event, QueueEvent::Completed(_));
                    yield event;
                    if done {
                        return;
                    }
                }
                if queue.is_closed() {
                    break;
                }
            }
            queue.finish()?;
        }
    }
}

/// The JSON of an SSE line `data: <json>` (`data:<json>` is accepted too); `None` for other lines
/// and for data that is not JSON.
pub fn parse_data_line(line: &[u8]) -> Option<Value> {
    let rest = line.strip_prefix(b"data:")?;
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    serde_json::from_slice(rest).ok()
}

/// What the queue stream reports, after heartbeats and unknown messages are dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueEvent {
    /// `estimation`: the position in the queue.
    Queued {
        /// 0-based rank.
        rank: Option<u64>,
        /// Queue length.
        queue_size: Option<u64>,
        /// Estimated seconds until processing starts.
        eta: Option<f64>,
    },
    /// `process_starts`.
    Started,
    /// `process_generating`: the function's output values so far (diffs applied).
    Generating(Vec<Value>),
    /// `process_completed` with success: the final output values.
    Completed(Vec<Value>),
}

/// The state machine of one queue stream (what [`Space::listen`] runs; public for other
/// transports and for tests).
///
/// * `estimation` → [`QueueEvent::Queued`]; `process_starts` → [`QueueEvent::Started`].
/// * `process_generating`: the first one carries full output values, later ones Gradio diffs per
///   output (full values are accepted too) → [`QueueEvent::Generating`]. A diff that cannot be
///   applied stops generating events (the completion still carries the full values).
/// * `process_completed`: `output.error` (even `null`) or `success: false` → [`space_error`];
///   else `output.data` → [`QueueEvent::Completed`]; without `output.data` → protocol error.
/// * `unexpected_error` → [`space_error`] of its `message`.
/// * `close_stream` ends the stream; `heartbeat`, `log`, `progress` and unknown kinds are ignored.
/// * Ending (close or EOF) without a completion → [`QueueState::finish`] fails.
#[derive(Debug, Clone)]
pub struct QueueState {
    provider: String,
    outputs: Option<Vec<Value>>,
    desynced: bool,
    completed: bool,
    closed: bool,
}

impl QueueState {
    /// A fresh state; errors name `provider`.
    pub fn new(provider: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            outputs: None,
            desynced: false,
            completed: false,
            closed: false,
        }
    }

    /// True once `close_stream` was seen.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// True once `process_completed` was seen.
    pub fn is_completed(&self) -> bool {
        self.completed
    }

    /// Handles one message.
    pub fn handle(&mut self, message: &Value) -> Result<Option<QueueEvent>> {
        let kind = message.get("msg").and_then(Value::as_str).unwrap_or("");
        Ok(match kind {
            "estimation" => Some(QueueEvent::Queued {
                rank: message.get("rank").and_then(Value::as_u64),
                queue_size: message.get("queue_size").and_then(Value::as_u64),
                eta: message.get("rank_eta").and_then(Value::as_f64),
            }),
            "process_starts" => Some(QueueEvent::Started),
            "process_generating" => self.generating(message),
            "process_completed" => {
                self.completed = true;
                let output = message.get("output");
                if let Some(error) = output.and_then(|o| o.get("error")) {
                    return Err(space_error(&self.provider, error.as_str()));
                }
                if message.get("success").and_then(Value::as_bool) == Some(false) {
                    let text = message.get("message").and_then(Value::as_str);
                    return Err(space_error(&self.provider, text));
                }
                match output.and_then(|o| o.get("data")).and_then(Value::as_array) {
                    Some(data) => Some(QueueEvent::Completed(data.clone())),
                    None => {
                        return Err(Error::protocol(
                            &self.provider,
                            "process_completed without output data",
                            &message.to_string(),
                        ));
                    }
                }
            }
            "unexpected_error" => {
                let text = message.get("message").and_then(Value::as_str);
                let mut error = space_error(&self.provider, text);
                // Gradio 6 flags a session without a queued event (its text is a bare 404)
                if message.get("session_not_found").and_then(Value::as_bool) == Some(true) {
                    if let Error::Upstream { message, .. } = &mut error {
                        message.push_str(" (the Space has no queued event for this session: the queue/join was lost or already answered)");
                    }
                }
                return Err(error);
            }
            "close_stream" => {
                self.closed = true;
                None
            }
            _ => None,
        })
    }

    fn generating(&mut self, message: &Value) -> Option<QueueEvent> {
        let data = message.pointer("/output/data")?.as_array()?;
        if self.desynced {
            return None;
        }
        match &mut self.outputs {
            None => self.outputs = Some(data.clone()),
            Some(current) => {
                for (i, value) in data.iter().enumerate() {
                    let result = match current.get_mut(i) {
                        Some(slot) if is_diff(value) => apply_diff(slot, value),
                        Some(slot) => {
                            *slot = value.clone();
                            Ok(())
                        }
                        None => {
                            current.push(value.clone());
                            Ok(())
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!(provider = %self.provider, error = %e, "cannot apply a Gradio diff; waiting for the completion");
                        self.desynced = true;
                        return None;
                    }
                }
            }
        }
        self.outputs.clone().map(QueueEvent::Generating)
    }

    /// Checks the end of the stream: an error unless `process_completed` was seen.
    pub fn finish(&self) -> Result<()> {
        if self.completed {
            return Ok(());
        }
        let how = if self.closed {
            "the Space closed the event stream (close_stream)"
        } else {
            "the event stream ended"
        };
        Err(Error::Protocol {
            provider: self.provider.clone(),
            message: format!("{how} before the result (process_completed)"),
            snippet: String::new(),
        })
    }
}

/// The error for a message a Space sent as an error (`output.error`, `unexpected_error`): HTML is
/// stripped; ZeroGPU quota messages become [`Error::RateLimited`] (with `retry_after` when the
/// text says "Try again in H:MM:SS"), anything else [`Error::Upstream`].
pub fn space_error(provider: &str, message: Option<&str>) -> Error {
    let text = message.map(strip_html).unwrap_or_default();
    let text = if text.is_empty() {
        "the Space reported an error without a message".to_owned()
    } else {
        snippet(&text, 500)
    };
    let lower = text.to_ascii_lowercase();
    if lower.contains("quota") && (lower.contains("gpu") || lower.contains("exceeded")) {
        return Error::RateLimited {
            provider: provider.to_owned(),
            retry_after: try_again_in(&lower),
            message: text,
        };
    }
    Error::Upstream {
        provider: provider.to_owned(),
        message: text,
    }
}

/// Parses `try again in [H:]MM:SS` in a lower-cased message.
fn try_again_in(lower: &str) -> Option<Duration> {
    let rest = &lower[lower.find("try again in ")? + "try again in ".len()..];
    let clock: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ':')
        .collect();
    let mut secs = 0u64;
    let mut parts = 0;
    for part in clock.split(':') {
        secs = secs.checked_mul(60)?.checked_add(part.parse().ok()?)?;
        parts += 1;
    }
    (parts >= 2).then(|| Duration::from_secs(secs))
}

/// A diff that cannot be applied to the value it targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffError(String);

impl std::fmt::Display for DiffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot apply Gradio diff: {}", self.0)
    }
}

impl std::error::Error for DiffError {}

fn diff_error(message: impl Into<String>) -> DiffError {
    DiffError(message.into())
}

const ACTIONS: &[&str] = &["replace", "append", "add", "delete"];

/// Longest diff path [`apply_edit`] follows. Gradio's paths are as deep as the changed value
/// (a chatbot's are 2); the bound keeps a stream of diffs from nesting outputs deeper than
/// this plus one message's own nesting (serde_json parses at most 128 levels).
pub const MAX_DIFF_PATH: usize = 128;

/// True when `value` has the shape of a Gradio diff: a list of `[action, path]` or
/// `[action, path, value]` edits with a known action and a list path (an empty list is an empty
/// diff).
pub fn is_diff(value: &Value) -> bool {
    value.as_array().is_some_and(|edits| {
        edits.iter().all(|e| {
            e.as_array().is_some_and(|e| {
                (2..=3).contains(&e.len())
                    && e.first()
                        .and_then(Value::as_str)
                        .is_some_and(|a| ACTIONS.contains(&a))
                    && e.get(1).is_some_and(Value::is_array)
            })
        })
    })
}

/// Applies a Gradio diff (a list of `[action, path, value]` edits) to `target`, edit by edit, as
/// Gradio's clients do:
///
/// * `replace`: set the value at `path` (an empty path replaces `target`; an array index may be
///   one past the end, which appends);
/// * `append`: concatenate a string (or extend a list) at `path`;
/// * `add`: insert into a list at the index (clamped to its length), or set an object key;
/// * `delete`: remove a list element or object key (missing ones are ignored, like the JS client).
///
/// Path segments are list indexes (numbers or numeric strings) or object keys; paths longer than
/// [`MAX_DIFF_PATH`] are refused. On error `target` may hold the edits applied before the
/// failing one. Never panics.
pub fn apply_diff(target: &mut Value, diff: &Value) -> Result<(), DiffError> {
    let edits = diff
        .as_array()
        .ok_or_else(|| diff_error("a diff must be a list of edits"))?;
    for edit in edits {
        apply_edit(target, edit)?;
    }
    Ok(())
}

/// Applies one `[action, path, value]` edit (see [`apply_diff`]).
pub fn apply_edit(target: &mut Value, edit: &Value) -> Result<(), DiffError> {
    let parts = edit
        .as_array()
        .ok_or_else(|| diff_error("an edit must be a list [action, path, value]"))?;
    let action = parts
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| diff_error("an edit needs an action string"))?;
    let path = parts
        .get(1)
        .and_then(Value::as_array)
        .ok_or_else(|| diff_error("an edit needs a path list"))?;
    if path.len() > MAX_DIFF_PATH {
        return Err(diff_error(format!(
            "a path of {} segments is longer than {MAX_DIFF_PATH}",
            path.len()
        )));
    }
    let value = parts.get(2).cloned().unwrap_or(Value::Null);
    let Some((last, parents)) = path.split_last() else {
        return match action {
            "replace" => {
                *target = value;
                Ok(())
            }
            "append" => append(target, value),
            other => Err(diff_error(format!("`{other}` needs a non-empty path"))),
        };
    };
    let mut current = target;
    for segment in parents {
        current = child(current, segment)?;
    }
    match action {
        "replace" => match current {
            Value::Array(items) => {
                let i = index(segment_index(last)?, items.len() + 1)?;
                if i == items.len() {
                    items.push(value);
                } else if let Some(slot) = items.get_mut(i) {
                    *slot = value;
                }
                Ok(())
            }
            Value::Object(map) => {
                map.insert(segment_key(last)?, value);
                Ok(())
            }
            _ => Err(diff_error(
                "replace inside a value that is not a list or object",
            )),
        },
        "append" => append(child(current, last)?, value),
        "add" => match current {
            Value::Array(items) => {
                let i = segment_index(last)?.min(items.len());
                items.insert(i, value);
                Ok(())
            }
            Value::Object(map) => {
                map.insert(segment_key(last)?, value);
                Ok(())
            }
            _ => Err(diff_error(
                "add inside a value that is not a list or object",
            )),
        },
        "delete" => match current {
            Value::Array(items) => {
                let i = segment_index(last)?;
                if i < items.len() {
                    items.remove(i);
                }
                Ok(())
            }
            Value::Object(map) => {
                map.remove(&segment_key(last)?);
                Ok(())
            }
            _ => Err(diff_error(
                "delete inside a value that is not a list or object",
            )),
        },
        other => Err(diff_error(format!(
            "unknown action `{}`",
            snippet(other, 20)
        ))),
    }
}

fn append(slot: &mut Value, value: Value) -> Result<(), DiffError> {
    match (slot, value) {
        (Value::String(s), Value::String(v)) => {
            s.push_str(&v);
            Ok(())
        }
        (Value::Array(a), Value::Array(v)) => {
            a.extend(v);
            Ok(())
        }
        _ => Err(diff_error("append needs two strings or two lists")),
    }
}

fn segment_index(segment: &Value) -> Result<usize, DiffError> {
    let i = match segment {
        Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    i.ok_or_else(|| diff_error("a list index must be a non-negative integer"))
}

fn segment_key(segment: &Value) -> Result<String, DiffError> {
    match segment {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(diff_error("an object key must be a string")),
    }
}

fn index(i: usize, len: usize) -> Result<usize, DiffError> {
    if i < len {
        Ok(i)
    } else {
        Err(diff_error(format!("index {i} out of range")))
    }
}

fn child<'a>(current: &'a mut Value, segment: &Value) -> Result<&'a mut Value, DiffError> {
    match current {
        Value::Array(items) => {
            let i = segment_index(segment)?;
            let len = items.len();
            items
                .get_mut(i)
                .ok_or_else(|| diff_error(format!("index {i} out of range (length {len})")))
        }
        Value::Object(map) => {
            let key = segment_key(segment)?;
            map.get_mut(&key)
                .ok_or_else(|| diff_error(format!("no key `{}`", snippet(&key, 40))))
        }
        _ => Err(diff_error(
            "path goes through a value that is not a list or object",
        )),
    }
}

/// The assistant text of a `Chatbot` value: the `content` of its last message when that message
/// is the assistant's (messages format) or has no role, or the bot half of its last `[user, bot]`
/// pair (tuples format). The content is read in both dialects: a string (Gradio 5) or a list of
/// blocks (Gradio 6), whose `text` blocks are joined by a blank line. `None` when there is no
/// such text (yet), or only files or components.
pub fn chatbot_reply(chatbot: &Value) -> Option<Cow<'_, str>> {
    match chatbot.as_array()?.last()? {
        Value::Object(message) => match message.get("role").and_then(Value::as_str) {
            Some("assistant") | None => content_text(message.get("content")?),
            Some(_) => None,
        },
        Value::Array(pair) => pair.get(1)?.as_str().map(Cow::Borrowed),
        _ => None,
    }
}

/// The text of a message `content`: a string, or the `text` blocks of a Gradio 6 block list.
fn content_text(content: &Value) -> Option<Cow<'_, str>> {
    if let Some(text) = content.as_str() {
        return Some(Cow::Borrowed(text));
    }
    let mut texts = content.as_array()?.iter().filter_map(|block| {
        (block.get("type").and_then(Value::as_str) == Some("text"))
            .then(|| block.get("text")?.as_str())
            .flatten()
    });
    let first = texts.next()?;
    match texts.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut joined = format!("{first}\n\n{second}");
            for t in texts {
                joined.push_str("\n\n");
                joined.push_str(t);
            }
            Some(Cow::Owned(joined))
        }
    }
}

/// Turns successive full texts of one reply into deltas: each update yields what was added since
/// the last one. When a text no longer extends what was already sent (the Space rewrote it), no
/// more deltas are produced.
#[derive(Debug, Clone, Default)]
pub struct ReplyText {
    sent: String,
    diverged: bool,
}

impl ReplyText {
    /// The new part of `full`, if any.
    pub fn update(&mut self, full: impl AsRef<str>) -> Option<String> {
        if self.diverged {
            return None;
        }
        match full.as_ref().strip_prefix(self.sent.as_str()) {
            Some("") => None,
            Some(rest) => {
                let delta = rest.to_owned();
                self.sent.push_str(rest);
                Some(delta)
            }
            None => {
                tracing::debug!("Gradio reply text was rewritten; no more deltas");
                self.diverged = true;
                None
            }
        }
    }

    /// Everything sent so far.
    pub fn sent(&self) -> &str {
        &self.sent
    }
}

/// ZeroGPU credentials, sent as `x-zerogpu-token` and `x-zerogpu-uuid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeroGpu {
    /// The token ([`OBJECT_OBJECT`] when none was found).
    pub token: Secret,
    /// The session UUID (`None`: the header is omitted).
    pub uuid: Option<String>,
}

/// Finds `&quot;<key>&quot;:&quot;<value>&quot;` (HTML-entity-encoded JSON) in `html`: the first
/// occurrence whose value is non-empty and contains no `&`.
fn entity_json_value<'a>(html: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("&quot;{key}&quot;:&quot;");
    let mut from = 0;
    while let Some(pos) = html.get(from..)?.find(&needle) {
        let start = from + pos + needle.len();
        let rest = html.get(start..)?;
        if let Some(end) = rest.find('&') {
            if end > 0 && rest[end..].starts_with("&quot;") {
                return Some(&rest[..end]);
            }
        }
        from = start;
    }
    None
}

/// The ZeroGPU `(token, sessionUuid)` embedded in a Space's Hugging Face page.
pub fn parse_space_page(html: &str) -> (Option<String>, Option<String>) {
    (
        entity_json_value(html, "token").map(str::to_owned),
        entity_json_value(html, "sessionUuid").map(str::to_owned),
    )
}

/// `now + 10 minutes` as ISO-8601 UTC with milliseconds and offset
/// (`2025-05-06T12:44:56.789+00:00`), the `expiration` of a ZeroGPU JWT request.
pub fn jwt_expiration(now: SystemTime) -> String {
    let t = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(Duration::from_secs(600));
    let secs = t.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        t.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Gets ZeroGPU credentials for the Space `space` (`owner/name`) from the Hub at `hub`
/// (g4f's `get_zerogpu_token`):
///
/// 1. token [`OBJECT_OBJECT`], uuid `known_uuid`;
/// 2. without a known uuid: `GET {hub}/spaces/{space}` (with `cookies`) and read the token and
///    session UUID out of the page (best effort: its status is not checked, and a page that
///    cannot be fetched or lacks them leaves the defaults);
/// 3. with cookies: `GET {hub}/api/spaces/{space}/jwt?expiration=<now+10min>&include_pro_status=true`;
///    a `token` in the JSON answer replaces the token (non-2xx answers are ignored; a 2xx answer
///    that is not JSON is a protocol error).
pub async fn zerogpu_credentials(
    http: &HttpClient,
    provider: &str,
    hub: &str,
    space: &str,
    known_uuid: Option<String>,
    cookies: &Cookies,
) -> Result<ZeroGpu> {
    let hub = hub.trim_end_matches('/');
    let mut creds = ZeroGpu {
        token: Secret::new(OBJECT_OBJECT),
        uuid: known_uuid,
    };
    if creds.uuid.is_none() {
        let page = async {
            http.get(format!("{hub}/spaces/{space}"))
                .provider(provider)
                .cookies(cookies)
                .send()
                .await?
                .text()
                .await
        };
        match page.await {
            Ok(page) => {
                let (token, uuid) = parse_space_page(&page);
                if let Some(token) = token {
                    creds.token = Secret::new(token);
                }
                creds.uuid = uuid;
            }
            // the call's budget is spent: nothing after this could succeed
            Err(
                e @ Error::Timeout {
                    phase: TimeoutPhase::Total,
                    ..
                },
            ) => return Err(e),
            Err(e) => {
                tracing::debug!(provider, error = %e, "Space page unavailable; continuing without ZeroGPU credentials");
            }
        }
    }
    if !cookies.is_empty() {
        let expiration = jwt_expiration(SystemTime::now())
            .replace(':', "%3A")
            .replace('+', "%2B");
        let url =
            format!("{hub}/api/spaces/{space}/jwt?expiration={expiration}&include_pro_status=true");
        let resp = http
            .get(url)
            .provider(provider)
            .cookies(cookies)
            .send()
            .await?;
        if resp.status().is_success() {
            let body: Value = resp.json().await?;
            if let Some(token) = body.get("token").and_then(Value::as_str) {
                creds.token = Secret::new(token);
            }
        } else {
            tracing::debug!(provider, status = %resp.status(), "ZeroGPU JWT request refused; keeping the page token");
        }
    }
    Ok(creds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn apply(mut target: Value, diff: Value) -> Result<Value, DiffError> {
        apply_diff(&mut target, &diff).map(|()| target)
    }

    #[test]
    fn diff_replace() {
        assert_eq!(
            apply(json!("a"), json!([["replace", [], "b"]])),
            Ok(json!("b"))
        );
        assert_eq!(
            apply(json!([{"c": 1}]), json!([["replace", [0, "c"], 2]])),
            Ok(json!([{"c": 2}]))
        );
        assert_eq!(
            apply(json!([1]), json!([["replace", [1], 2]])),
            Ok(json!([1, 2]))
        );
        assert_eq!(
            apply(json!({}), json!([["replace", ["k"], 1]])),
            Ok(json!({"k": 1}))
        );
        assert!(apply(json!([1]), json!([["replace", [3], 2]])).is_err());
        assert!(apply(json!("s"), json!([["replace", [0], 2]])).is_err());
    }

    #[test]
    fn diff_append() {
        let history = json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "echo:"}
        ]);
        let out = apply(
            history,
            json!([
                ["append", [1, "content"], " Hi"],
                ["append", ["1", "content"], "!"]
            ]),
        );
        assert_eq!(out.expect("applies")[1]["content"], "echo: Hi!");
        assert_eq!(
            apply(json!("ab"), json!([["append", [], "c"]])),
            Ok(json!("abc"))
        );
        assert_eq!(
            apply(json!({"l": [1]}), json!([["append", ["l"], [2, 3]]])),
            Ok(json!({"l": [1, 2, 3]}))
        );
        assert!(apply(json!({"n": 1}), json!([["append", ["n"], 2]])).is_err());
        assert!(apply(json!([]), json!([["append", [0, "content"], "x"]])).is_err());
    }

    #[test]
    fn diff_add_and_delete() {
        assert_eq!(
            apply(json!([1, 3]), json!([["add", [1], 2]])),
            Ok(json!([1, 2, 3]))
        );
        assert_eq!(
            apply(json!([1]), json!([["add", [9], 2]])),
            Ok(json!([1, 2]))
        );
        assert_eq!(
            apply(json!({}), json!([["add", ["a"], {"b": 1}]])),
            Ok(json!({"a": {"b": 1}}))
        );
        assert_eq!(
            apply(json!([1, 2, 3]), json!([["delete", [1], null]])),
            Ok(json!([1, 3]))
        );
        assert_eq!(apply(json!([1]), json!([["delete", [5]]])), Ok(json!([1])));
        assert_eq!(
            apply(json!({"a": 1, "b": 2}), json!([["delete", ["a"], null]])),
            Ok(json!({"b": 2}))
        );
        assert!(apply(json!([1]), json!([["delete", [], null]])).is_err());
        assert!(apply(json!([1]), json!([["move", [0], null]])).is_err());
        assert!(apply(json!([1]), json!([["add", [-1], 0]])).is_err());
    }

    /// Nesting depth, computed without recursion.
    fn depth(v: &Value) -> usize {
        let mut max = 0;
        let mut stack = vec![(v, 1usize)];
        while let Some((v, d)) = stack.pop() {
            max = max.max(d);
            match v {
                Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
                Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
                _ => {}
            }
        }
        max
    }

    /// Found while building the `gradio` fuzz target (llmux-fuzz): each message may only nest
    /// 128 levels (serde_json's limit), but a diff with a long path could put a new nested value
    /// at the bottom of the previous one, so a stream could grow the outputs without bound until
    /// cloning or dropping them overflowed the stack (an abort of the whole process).
    #[test]
    fn diffs_cannot_stack_nesting_across_messages() {
        let nested = |n: usize| format!("{}0{}", "[".repeat(n), "]".repeat(n));
        let mut q = QueueState::new("p");
        let first = format!(
            r#"data: {{"msg":"process_generating","output":{{"data":[{}]}}}}"#,
            nested(100)
        );
        assert!(matches!(
            q.handle(&line(&first)),
            Ok(Some(QueueEvent::Generating(_)))
        ));
        let mut deepest = 0;
        for round in 1..200usize {
            let path = vec!["0"; 99 * round].join(",");
            let msg = format!(
                r#"data: {{"msg":"process_generating","output":{{"data":[[["replace",[{path}],{}]]]}}}}"#,
                nested(100)
            );
            if let Ok(Some(QueueEvent::Generating(out))) = q.handle(&line(&msg)) {
                deepest = deepest.max(out.iter().map(depth).max().unwrap_or(0));
            }
        }
        assert!(deepest <= 256, "outputs nest {deepest} levels deep");
        // Direct use: a path longer than the limit is refused.
        let mut target = json!([]);
        let long: Vec<Value> = (0..=MAX_DIFF_PATH).map(|_| json!(0)).collect();
        assert!(apply_edit(&mut target, &json!(["replace", long, 1])).is_err());
    }

    #[test]
    fn diff_shape_detection() {
        assert!(is_diff(&json!([["append", [1, "content"], " x"]])));
        assert!(is_diff(&json!([])));
        assert!(is_diff(&json!([["delete", [0]]])));
        assert!(!is_diff(&json!([{"role": "user", "content": "x"}])));
        assert!(!is_diff(&json!([["user text", "bot text"]])));
        assert!(!is_diff(&json!("append")));
    }

    #[test]
    fn chatbot_replies() {
        let messages =
            json!([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]);
        assert_eq!(chatbot_reply(&messages).as_deref(), Some("a"));
        assert_eq!(
            chatbot_reply(&json!([{"role": "user", "content": "q"}])),
            None
        );
        assert_eq!(chatbot_reply(&json!([["q", "a"]])).as_deref(), Some("a"));
        assert_eq!(chatbot_reply(&json!([["q", null]])), None);
        assert_eq!(chatbot_reply(&json!([])), None);
        assert_eq!(
            chatbot_reply(&json!([{"role": "assistant", "content": {"file": {}}}])),
            None
        );
    }

    /// Gradio 6 (gradio-6-capture.txt): `content` is a list of typed blocks.
    #[test]
    fn chatbot_replies_in_gradio_6() {
        let history = json!([
            {"role": "user", "metadata": null, "content": [{"text": "Hi", "type": "text"}], "options": null},
            {"role": "assistant", "metadata": null, "content": [{"text": "echo: Hi", "type": "text"}], "options": null}
        ]);
        assert_eq!(chatbot_reply(&history).as_deref(), Some("echo: Hi"));
        let file = json!({"file": {"path": "/x.png"}, "alt_text": null, "type": "file"});
        let mixed = json!([{"role": "assistant", "content": [
            {"type": "text", "text": "one"}, file, {"type": "text", "text": "two"}
        ]}]);
        assert_eq!(chatbot_reply(&mixed).as_deref(), Some("one\n\ntwo"));
        assert_eq!(
            chatbot_reply(&json!([{"role": "assistant", "content": [file]}])),
            None
        );
        assert_eq!(
            chatbot_reply(&json!([{"role": "assistant", "content": []}])),
            None
        );
        assert_eq!(
            chatbot_reply(
                &json!([{"role": "assistant", "content": [{"type": "text", "text": 5}]}])
            ),
            None
        );
    }

    #[test]
    fn dialects() {
        assert_eq!(Dialect::from_version("6.31.0"), Some(Dialect::Gradio6));
        assert_eq!(Dialect::from_version("10.0"), Some(Dialect::Gradio6));
        assert_eq!(Dialect::from_version("5.35.0"), Some(Dialect::Gradio5));
        assert_eq!(Dialect::from_version("4.44.1"), Some(Dialect::Gradio5));
        assert_eq!(Dialect::from_version(""), None);
        assert_eq!(Dialect::from_version("latest"), None);
        assert_eq!(
            Dialect::Gradio5.text_message("user", "Hi"),
            json!({"role": "user", "content": "Hi"})
        );
        assert_eq!(
            Dialect::Gradio6.text_message("user", "Hi"),
            json!({"role": "user", "content": [{"type": "text", "text": "Hi"}]})
        );
        let f = FileData {
            path: "/data/gradio/a/red.png".into(),
            url: "http://s/gradio_api/file=/data/gradio/a/red.png".into(),
            orig_name: "red.png".into(),
            size: 73,
            mime_type: "image/png".into(),
            meta: FileMeta {
                kind: FILE_DATA_TYPE.into(),
            },
        };
        assert_eq!(
            Dialect::Gradio5.file_message("user", &f),
            json!({"role": "user", "content": {"file": f.to_value()}})
        );
        assert_eq!(
            Dialect::Gradio6.file_message("user", &f),
            json!({"role": "user", "content": [{"type": "file", "file": f.to_value()}]})
        );
    }

    /// FLOW I of gradio-6-capture.txt: diffs reach into the text block
    /// (`[1,"content",0,"text"]`).
    #[test]
    fn queue_state_follows_the_gradio_6_capture() {
        let mut q = QueueState::new("p");
        let msgs = [
            r#"data: {"msg":"estimation","event_id":"e","rank":0,"queue_size":1,"rank_eta":0.4846675395965576}"#,
            r#"data: {"msg":"process_starts","event_id":"e","eta":0.4846675395965576}"#,
            r#"data: {"msg":"process_generating","event_id":"e","output":{"data":[[{"role":"user","metadata":null,"content":[{"text":"Hello Phi","type":"text"}],"options":null},{"role":"assistant","metadata":null,"content":[{"text":"echo:","type":"text"}],"options":null}]],"is_generating":true,"duration":0.05146145820617676,"average_duration":0.046579837799072266,"render_config":null,"changed_state_ids":[],"used_cache":null},"success":true,"time_limit":null}"#,
            r#"data: {"msg":"process_generating","event_id":"e","output":{"data":[[["append",[1,"content",0,"text"]," Hello"]]],"is_generating":true,"duration":0.05078268051147461,"average_duration":0.04693007469177246,"render_config":null,"changed_state_ids":[],"used_cache":null},"success":true,"time_limit":null}"#,
            r#"data: {"msg":"heartbeat","event_id":null}"#,
            r#"data: {"msg":"process_generating","event_id":"e","output":{"data":[[["append",[1,"content",0,"text"]," Phi"]]],"is_generating":true,"duration":0.0514073371887207,"average_duration":0.04727447949923002,"render_config":null,"changed_state_ids":[],"used_cache":null},"success":true,"time_limit":null}"#,
            r#"data: {"msg":"process_completed","event_id":"e","output":{"data":[[{"role":"user","metadata":null,"content":[{"text":"Hello Phi","type":"text"}],"options":null},{"role":"assistant","metadata":null,"content":[{"text":"echo: Hello Phi | files: 0","type":"text"}],"options":null}]],"is_generating":false,"duration":0.0011768341064453125,"average_duration":0.04528240596546846,"render_config":null,"changed_state_ids":[],"used_cache":null},"success":true,"title":null,"used_cache":null,"cache_duration":0.0011768341064453125,"avg_time":0.04528240596546846}"#,
        ];
        let mut reply = ReplyText::default();
        let mut deltas = Vec::new();
        for m in msgs {
            if let Some(QueueEvent::Generating(out) | QueueEvent::Completed(out)) =
                q.handle(&line(m)).expect("no error")
            {
                deltas.extend(
                    out.first()
                        .and_then(chatbot_reply)
                        .and_then(|t| reply.update(t)),
                );
            }
        }
        assert_eq!(deltas, ["echo:", " Hello", " Phi", " | files: 0"]);
        assert!(q.finish().is_ok());
    }

    #[test]
    fn gradio_6_errors() {
        let validation = r#"data: {"msg":"process_completed","event_id":"e","output":{"error":"1 validation error for ChatbotDataMessages\n0.content\n  Input should be a valid list [type=list_type, input_value='Hello Phi', input_type=str]\n    For further information visit https://errors.pydantic.dev/2.14/v/list_type","visible":true},"success":false,"title":"Error","used_cache":null,"cache_duration":null,"avg_time":null}"#;
        let err = QueueState::new("p")
            .handle(&line(validation))
            .expect_err("validation");
        assert!(
            matches!(&err, Error::Upstream { message, .. } if message.starts_with("1 validation error for ChatbotDataMessages")),
            "{err:?}"
        );
        let lost = r#"data: {"msg":"unexpected_error","event_id":null,"message":"404: Not Found","session_not_found":true,"success":false}"#;
        let err = QueueState::new("p").handle(&line(lost)).expect_err("lost");
        assert!(
            err.to_string()
                .starts_with("p: 404: Not Found (the Space has no queued event for this session"),
            "{err}"
        );
    }

    #[test]
    fn reply_text_deltas() {
        let mut r = ReplyText::default();
        assert_eq!(r.update("echo:").as_deref(), Some("echo:"));
        assert_eq!(r.update("echo:").as_deref(), None);
        assert_eq!(r.update("echo: Hi").as_deref(), Some(" Hi"));
        assert_eq!(r.update("rewritten"), None);
        assert_eq!(r.update("echo: Hi there"), None);
        assert_eq!(r.sent(), "echo: Hi");
    }

    fn line(s: &str) -> Value {
        parse_data_line(s.as_bytes()).expect("data line")
    }

    #[test]
    fn queue_state_follows_the_capture() {
        let mut q = QueueState::new("p");
        let msgs = [
            r#"data: {"msg":"estimation","event_id":"e","rank":0,"queue_size":1,"rank_eta":0.38}"#,
            r#"data: {"msg":"process_starts","event_id":"e","eta":0.38}"#,
            r#"data: {"msg":"process_generating","event_id":"e","output":{"data":[[{"role":"user","metadata":null,"content":"Hi","options":null},{"role":"assistant","metadata":null,"content":"echo:","options":null}]],"is_generating":true},"success":true}"#,
            r#"data: {"msg":"heartbeat","event_id":null}"#,
            r#"data: {"msg":"process_generating","event_id":"e","output":{"data":[[["append",[1,"content"]," Hi"]]],"is_generating":true},"success":true}"#,
            r#"data: {"msg":"log","event_id":"e","log":"x","level":"info"}"#,
            r#"data: {"msg":"process_completed","event_id":"e","output":{"data":[[{"role":"user","content":"Hi"},{"role":"assistant","content":"echo: Hi"}]]},"success":true,"title":null}"#,
        ];
        let events: Vec<Option<QueueEvent>> = msgs
            .iter()
            .map(|m| q.handle(&line(m)).expect("no error"))
            .collect();
        assert!(matches!(
            events[0],
            Some(QueueEvent::Queued {
                rank: Some(0),
                queue_size: Some(1),
                ..
            })
        ));
        assert_eq!(events[1], Some(QueueEvent::Started));
        let reply = |e: &Option<QueueEvent>| match e {
            Some(QueueEvent::Generating(out) | QueueEvent::Completed(out)) => {
                out.first().and_then(chatbot_reply).map(Cow::into_owned)
            }
            _ => None,
        };
        assert_eq!(reply(&events[2]).as_deref(), Some("echo:"));
        assert_eq!(events[3], None);
        assert_eq!(reply(&events[4]).as_deref(), Some("echo: Hi"));
        assert_eq!(events[5], None);
        assert!(matches!(events[6], Some(QueueEvent::Completed(_))));
        assert_eq!(reply(&events[6]).as_deref(), Some("echo: Hi"));
        assert!(q.finish().is_ok());
    }

    #[test]
    fn queue_state_errors() {
        let quota = r#"data: {"msg":"process_completed","event_id":"e","output":{"error":"You have exceeded your GPU quota (60s requested vs. 41s left). <a style=\"text-decoration: underline\" href=\"https://huggingface.co/settings/billing\">Sign-up</a>"},"success":false,"title":"Error"}"#;
        let err = QueueState::new("phi")
            .handle(&line(quota))
            .expect_err("quota");
        match err {
            Error::RateLimited { message, .. } => assert_eq!(
                message,
                "You have exceeded your GPU quota (60s requested vs. 41s left). Sign-up"
            ),
            other => panic!("unexpected {other:?}"),
        }
        let null = r#"data: {"msg":"process_completed","output":{"error":null},"success":false}"#;
        let err = QueueState::new("p")
            .handle(&line(null))
            .expect_err("null error");
        assert!(matches!(err, Error::Upstream { .. }), "{err:?}");
        let unexpected = r#"data: {"msg":"unexpected_error","event_id":null,"message":"404: Session not found.","success":false}"#;
        let err = QueueState::new("p")
            .handle(&line(unexpected))
            .expect_err("unexpected");
        assert_eq!(err.to_string(), "p: 404: Session not found.");
        let mut q = QueueState::new("p");
        assert_eq!(
            q.handle(&line(r#"data: {"msg":"close_stream","event_id":null}"#))
                .ok(),
            Some(None)
        );
        assert!(q.is_closed());
        assert!(matches!(q.finish(), Err(Error::Protocol { .. })));
        let no_data = r#"data: {"msg":"process_completed","output":{},"success":true}"#;
        assert!(matches!(
            QueueState::new("p").handle(&line(no_data)),
            Err(Error::Protocol { .. })
        ));
        assert_eq!(
            QueueState::new("p")
                .handle(&json!({"msg": "brand_new_kind"}))
                .ok(),
            Some(None)
        );
    }

    #[test]
    fn quota_retry_after() {
        let e = space_error(
            "p",
            Some("You have exceeded your GPU quota. Try again in 0:01:19."),
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(79)));
        assert!(matches!(
            space_error("p", Some("GPU task aborted")),
            Error::Upstream { .. }
        ));
    }

    #[test]
    fn data_lines() {
        assert_eq!(parse_data_line(b"data: {\"a\":1}"), Some(json!({"a": 1})));
        assert_eq!(parse_data_line(b"data:{\"a\":1}"), Some(json!({"a": 1})));
        assert_eq!(parse_data_line(b": comment"), None);
        assert_eq!(parse_data_line(b"data: not json"), None);
        assert_eq!(parse_data_line(b""), None);
    }

    #[test]
    fn space_page() {
        let html = r#"<div data-props="{&quot;space&quot;:{&quot;id&quot;:&quot;microsoft/phi-4-multimodal&quot;},&quot;zeroGpu&quot;:{&quot;token&quot;:&quot;eyJhbGciOiJFZERTQSJ9.FAKE.TOKEN&quot;,&quot;sessionUuid&quot;:&quot;6c0f1b2a-9d3e&quot;}}"></div>"#;
        assert_eq!(
            parse_space_page(html),
            (
                Some("eyJhbGciOiJFZERTQSJ9.FAKE.TOKEN".to_owned()),
                Some("6c0f1b2a-9d3e".to_owned())
            )
        );
        assert_eq!(parse_space_page("<html></html>"), (None, None));
        let skip = "&quot;token&quot;:&quot;&quot;,&quot;token&quot;:&quot;good&quot;";
        assert_eq!(parse_space_page(skip).0.as_deref(), Some("good"));
    }

    #[test]
    fn expiration_format() {
        let t = UNIX_EPOCH + Duration::from_millis(1_746_534_896_789);
        assert_eq!(jwt_expiration(t), "2025-05-06T12:44:56.789+00:00");
        assert_eq!(jwt_expiration(UNIX_EPOCH), "1970-01-01T00:10:00.000+00:00");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 - 600);
        assert_eq!(jwt_expiration(leap), "2000-02-29T00:00:00.000+00:00");
    }

    #[test]
    fn call_body_shape() {
        let call = Call::new(10, "abc", json!([[], {"text": "x", "files": []}, null])).trigger(8);
        assert_eq!(
            serde_json::to_value(&call).expect("json"),
            json!({"data": [[], {"text": "x", "files": []}, null], "event_data": null,
                   "fn_index": 10, "trigger_id": 8, "session_hash": "abc"})
        );
        assert_eq!(session_hash().len(), 32);
        assert!(
            session_hash()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..6).prop_map(Value::from),
            prop_oneof![
                Just("replace"),
                Just("append"),
                Just("add"),
                Just("delete"),
                Just("content"),
                Just("1"),
                Just("")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-c1]{0,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_edit() -> impl Strategy<Value = Value> {
        (
            prop_oneof![
                Just("replace"),
                Just("append"),
                Just("add"),
                Just("delete"),
                Just("x")
            ],
            prop::collection::vec(
                prop_oneof![
                    (0i64..4).prop_map(Value::from),
                    "[a-c0-2]{0,1}".prop_map(Value::from)
                ],
                0..4,
            ),
            arb_json(),
        )
            .prop_map(|(a, p, v)| json!([a, p, v]))
    }

    proptest! {
        #[test]
        fn diffs_never_panic(target in arb_json(), diff in arb_json()) {
            let mut t = target;
            let _ = apply_diff(&mut t, &diff);
            let _ = is_diff(&diff);
            let _ = chatbot_reply(&t);
        }

        #[test]
        fn well_formed_edits_never_panic(target in arb_json(), edits in prop::collection::vec(arb_edit(), 0..6)) {
            let mut t = target;
            let _ = apply_diff(&mut t, &Value::Array(edits));
        }

        #[test]
        fn queue_messages_never_panic(data in arb_json(), diff in arb_json(), kind in prop_oneof![
            Just("process_generating"), Just("process_completed"), Just("estimation"),
            Just("unexpected_error"), Just("close_stream"), Just("heartbeat"), Just("other")]) {
            let mut q = QueueState::new("p");
            let _ = q.handle(&json!({"msg": "process_generating", "output": {"data": data}}));
            let _ = q.handle(&json!({"msg": kind, "output": {"data": diff.clone(), "error": diff}}));
            let _ = q.finish();
        }

        #[test]
        fn appends_accumulate(pieces in prop::collection::vec("[a-z ]{0,6}", 0..8)) {
            let mut q = QueueState::new("p");
            let first = json!({"msg": "process_generating", "output": {"data": [[{"role": "assistant", "content": ""}]]}});
            q.handle(&first).expect("first");
            let mut reply = ReplyText::default();
            let mut streamed = String::new();
            for p in &pieces {
                let msg = json!({"msg": "process_generating", "output": {"data": [[["append", [0, "content"], p]]]}});
                if let Some(QueueEvent::Generating(out)) = q.handle(&msg).expect("diff") {
                    if let Some(d) = out.first().and_then(chatbot_reply).and_then(|t| reply.update(t)) {
                        streamed.push_str(&d);
                    }
                }
            }
            prop_assert_eq!(streamed, pieces.concat());
        }
    }
}
