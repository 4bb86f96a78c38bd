//! A fake OpenAI-compatible upstream: `/models`, `/chat/completions`
//! (streaming and not), `/images/generations` and `/embeddings` (see [`crate::embeddings`]).
//!
//! ```
//! # async fn demo() {
//! use llmux_testkit::openai::FakeOpenAi;
//! let server = FakeOpenAi::new()
//!     .models(["gpt-fake", "gpt-fake-mini"])
//!     .reply("Hello there!")
//!     .chunks(3)
//!     .api_key("sk-test")
//!     .start()
//!     .await;
//! let base_url = server.url("/v1"); // http://127.0.0.1:PORT/v1
//! # let _ = base_url;
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::reply::{Reply, Script, SseEvent, content_text, last_user_text, script_builders, split};
use crate::server::{FakeServer, RecordedRequest, Router};

/// The `created` timestamp of every fake object (fixed, for stable snapshots).
pub const CREATED: u64 = 1_700_000_000;

/// A valid 1×1 PNG, served for the default image URLs and as `b64_json`.
pub const TINY_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Token counts reported in `usage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// `prompt_tokens`.
    pub prompt_tokens: u64,
    /// `completion_tokens`.
    pub completion_tokens: u64,
}

impl Usage {
    fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }
}

/// An OpenAI-shaped error reply: `{"error":{"message","type","param":null,"code"}}`.
pub fn openai_error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

/// Builder and configuration of the fake OpenAI-compatible upstream.
///
/// Defaults: prefix `/v1`, model `fake-model`, reply `"Hello from the fake
/// upstream!"` in 3 stream chunks without delay, finish reason `stop`, usage
/// derived from word counts, no API key, image URLs pointing back at the fake
/// (`http://<Host>/fake-files/image-N.png`, which serves [`TINY_PNG`]). In echo mode
/// the reply is `echo: <content of the last user message>` (text parts of array content
/// joined with spaces); the reply and the reasoning stream in `chunks` pieces each.
///
/// Behaviour of `POST {prefix}/chat/completions`:
/// - bad JSON or a missing `model`/`messages` → 400 `invalid_request_error`;
/// - a model not in the list → 404 with code `model_not_found` (an empty
///   model list accepts any model);
/// - `"stream": true` → SSE `chat.completion.chunk`s: a role delta, the
///   reasoning deltas (if configured), the content deltas, a chunk with
///   `finish_reason`, a usage chunk with empty `choices` (when
///   `stream_options.include_usage` is true or [`FakeOpenAi::always_usage`]),
///   then `data: [DONE]`;
/// - otherwise one `chat.completion` object with `usage`.
///
/// Like the real OpenAI API, it also handles (see [`FakeOpenAi::extras`] for
/// the extra fields on every response):
/// - **Validation of tool history** (400 `invalid_request_error`, `code: null`):
///   a `tool` message with no assistant `tool_calls` message before it (only
///   other tool messages in between) → "Invalid parameter: messages with role
///   'tool' must be a response to a preceeding message with 'tool_calls'.",
///   param `messages.[N].role`; a `tool_call_id` that is not one of those
///   calls' ids → "Invalid parameter: 'tool_call_id' of 'ID' not found in
///   'tool_calls' of previous message.", param `messages.[N].tool_call_id`;
///   an assistant message with `tool_calls` not followed by tool messages
///   answering every id → "An assistant message with 'tool_calls' must be
///   followed by tool messages responding to each 'tool_call_id'. The following
///   tool_call_ids did not have response messages: ID, ID", param
///   `messages.[N].role` (N: that assistant message).
/// - **Tool calls**, when the request has `tools`, `tool_choice` is not
///   `"none"` and the last message is a `user` message: a `tool_choice` naming a
///   function calls it; otherwise every tool whose name appears in the last
///   user message (as a whole word) is called, in order of appearance (twice
///   if named twice); if none is named, `"required"` calls the first tool and
///   `"auto"`/absent answers text. `parallel_tool_calls: false` keeps only the
///   first call. Arguments are [`schema_instance`] of the function's
///   `parameters`, serialised compactly; ids are `call_<request>_<index>`.
///   The message is `{"role":"assistant","content":null,"tool_calls":[...]}`
///   with `finish_reason: "tool_calls"`. Streamed as OpenAI does: the first
///   chunk's delta holds the role, `content: null` and the first call's header
///   (`index`, `id`, `type`, `function.name`, `arguments: ""`), each further
///   call starts with such a header chunk, and each call's arguments follow in
///   at least 2 fragments (`tool_calls: [{"index", "function": {"arguments"}}]`),
///   then an empty delta with `finish_reason: "tool_calls"`.
/// - **Tool results**: when the last message(s) are `tool` messages the reply
///   is `Tool results: ` + their contents joined by `"; "` (before `echo`).
/// - **`response_format`**: `json_object` answers `{"answer":"<reply>"}`;
///   `json_schema` answers [`schema_instance`] of `json_schema.schema`; both
///   stream in pieces like text.
/// - **`logprobs: true`**: the choice (and every content chunk) carries
///   `logprobs: {"content": [{token, logprob, bytes, top_logprobs}], "refusal":
///   null}`, one entry per stream piece of the reply, with `top_logprobs: n`
///   alternatives (the first being the token itself).
/// - **`x_fake_received`**: every response object and chunk carries, at top
///   level, the request's fields other than `model`, `messages`, `stream`,
///   `stream_options`, `logprobs` and `top_logprobs` (so `tools`,
///   `tool_choice`, `response_format`, `metadata`, `user`, `seed` and any
///   made-up field are shown verbatim), and leaves it out when there are none.
/// - **`x_fake_unknown_fields: true`** in the request (a made-up field, so it
///   also proves request pass-through): the response carries made-up fields at
///   every level, to prove a relay keeps unknown response fields —
///   `x_fake_response` on every response object and chunk, `x_fake_choice` on
///   every choice, `x_fake_message` on the message, `x_fake_delta` on every
///   delta and `x_fake_tool_call` on every tool call (in the stream, on each
///   call's header), each `{"level": "<that level>"}`.
///
/// With an API key set, every route under the prefix demands
/// `Authorization: Bearer KEY` and answers 401 `invalid_api_key` otherwise.
/// Each response carries `x-fake-request-id: N` (1-based request number).
#[derive(Clone, Debug)]
pub struct FakeOpenAi {
    prefix: String,
    models: Vec<String>,
    script: Script,
    reasoning: Option<String>,
    usage: Option<Usage>,
    always_usage: bool,
    usage_in_finish_chunk: bool,
    finish_reason: String,
    api_key: Option<String>,
    image_urls: Vec<String>,
    extras: bool,
}

impl Default for FakeOpenAi {
    fn default() -> Self {
        FakeOpenAi {
            prefix: "/v1".to_owned(),
            models: vec!["fake-model".to_owned()],
            script: Script::fixed("Hello from the fake upstream!", 3),
            reasoning: None,
            usage: None,
            always_usage: false,
            usage_in_finish_chunk: false,
            finish_reason: "stop".to_owned(),
            api_key: None,
            image_urls: Vec::new(),
            extras: true,
        }
    }
}

impl FakeOpenAi {
    /// The default configuration (see the type docs).
    pub fn new() -> Self {
        FakeOpenAi::default()
    }

    /// Route prefix (default `/v1`; `""` serves at the root).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// Replaces the model list (an empty list accepts any model).
    pub fn models<I, S>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.models = models.into_iter().map(Into::into).collect();
        self
    }

    /// Adds one model to the list.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.models.push(model.into());
        self
    }

    script_builders!(reply, echo, chunks, chunk_delay);

    /// Sends `reasoning_content` (deltas when streaming) before the content.
    pub fn reasoning(mut self, text: impl Into<String>) -> Self {
        self.reasoning = Some(text.into());
        self
    }

    /// Fixed usage numbers (default: derived from word counts).
    pub fn usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.usage = Some(Usage {
            prompt_tokens,
            completion_tokens,
        });
        self
    }

    /// Streams usage even when the request did not ask via `stream_options`.
    pub fn always_usage(mut self, yes: bool) -> Self {
        self.always_usage = yes;
        self
    }

    /// Puts streamed usage into the `finish_reason` chunk (as many compatible
    /// providers do) instead of a separate chunk with empty `choices` (as OpenAI does).
    pub fn usage_in_finish_chunk(mut self, yes: bool) -> Self {
        self.usage_in_finish_chunk = yes;
        self
    }

    /// The `finish_reason` (default `stop`).
    pub fn finish_reason(mut self, reason: impl Into<String>) -> Self {
        self.finish_reason = reason.into();
        self
    }

    /// Requires `Authorization: Bearer <key>`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// URLs returned by `/images/generations` (cycled when `n` exceeds them).
    pub fn image_urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.image_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// Whether responses carry the fields real OpenAI responses have that llmux
    /// need not interpret (default `true`): `system_fingerprint`
    /// ([`SYSTEM_FINGERPRINT`]) and `service_tier: "default"` on every response
    /// and chunk, `refusal: null` and `annotations: []` in messages,
    /// `refusal: null` in the first stream delta, `logprobs: null` in every
    /// choice. `false` gives the bare shapes many compatible providers send.
    pub fn extras(mut self, yes: bool) -> Self {
        self.extras = yes;
        self
    }

    /// The routes of this fake, to combine with other routes or serve with faults.
    pub fn router(self) -> Router {
        let state = Arc::new(State {
            cfg: self,
            counter: AtomicU64::new(0),
        });
        let p = state.cfg.prefix.clone();
        let s1 = state.clone();
        let s2 = state.clone();
        let s3 = state.clone();
        Router::new()
            .get(&format!("{p}/models"), move |req| {
                let s = s1.clone();
                async move { s.guarded(&req, |n| s.models(n)) }
            })
            .post(&format!("{p}/chat/completions"), move |req| {
                let s = s2.clone();
                async move { s.guarded(&req, |n| s.chat(&req, n)) }
            })
            .post(&format!("{p}/images/generations"), move |req| {
                let s = s3.clone();
                async move { s.guarded(&req, |n| s.images(&req, n)) }
            })
            .merge(embeddings_route(&p, state.clone()))
            .get("/fake-files/{name}", |_| async {
                Reply::bytes(200, "image/png", TINY_PNG)
            })
    }

    /// Starts a [`FakeServer`] serving [`FakeOpenAi::router`].
    pub async fn start(self) -> FakeServer {
        FakeServer::start(self.router()).await
    }
}

/// `POST {prefix}/embeddings` (see [`crate::embeddings`]), behind the same API-key check.
fn embeddings_route(prefix: &str, state: Arc<State>) -> Router {
    Router::new().post(&format!("{prefix}/embeddings"), move |req| {
        let s = state.clone();
        async move { s.guarded(&req, |_| crate::embeddings::openai_embeddings(&req)) }
    })
}

struct State {
    cfg: FakeOpenAi,
    counter: AtomicU64,
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn bad_request(message: &str) -> Reply {
    openai_error(400, message, "invalid_request_error", None)
}

/// The `system_fingerprint` of every response and chunk (see [`FakeOpenAi::extras`]).
pub const SYSTEM_FINGERPRINT: &str = "fp_fake";

/// Request fields the fake interprets itself; every other field is echoed back
/// in `x_fake_received` (together with `tools`, `tool_choice`,
/// `parallel_tool_calls` and `response_format`, which it also interprets).
const INTERPRETED: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "logprobs",
    "top_logprobs",
];

/// The request fields echoed back in `x_fake_received` (`None` when there are none).
fn received_fields(body: &Value) -> Option<Value> {
    let map: serde_json::Map<String, Value> = body
        .as_object()?
        .iter()
        .filter(|(k, _)| !INTERPRETED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!map.is_empty()).then_some(Value::Object(map))
}

/// One tool call the fake answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ToolCall {
    id: String,
    name: String,
    arguments: String,
}

impl ToolCall {
    fn to_json(&self) -> Value {
        json!({"id": self.id, "type": "function",
               "function": {"name": self.name, "arguments": self.arguments}})
    }
}

/// Whether `name` occurs in `text` at byte `at` as a whole word (not inside a
/// longer identifier).
fn whole_word(text: &str, at: usize, name: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let before = text[..at].chars().next_back().is_none_or(|c| !ident(c));
    let after = text[at + name.len()..]
        .chars()
        .next()
        .is_none_or(|c| !ident(c));
    before && after
}

/// The tool calls the fake makes for this request (empty: answer text).
fn tool_calls_for(body: &Value, messages: &[Value], n: u64) -> Vec<ToolCall> {
    let tools: Vec<(&str, &Value)> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| {
                    let f = t.get("function")?;
                    let name = f.get("name")?.as_str()?;
                    Some((name, f.get("parameters").unwrap_or(&Value::Null)))
                })
                .collect()
        })
        .unwrap_or_default();
    let choice = body.get("tool_choice");
    let last_is_user = messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        == Some("user");
    if tools.is_empty() || choice.and_then(Value::as_str) == Some("none") || !last_is_user {
        return Vec::new();
    }
    let params_of = |name: &str| {
        tools
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&Value::Null, |(_, p)| *p)
    };
    let mut names: Vec<String> = Vec::new();
    if let Some(forced) = choice
        .and_then(|c| c.pointer("/function/name"))
        .and_then(Value::as_str)
    {
        names.push(forced.to_owned());
    } else {
        let text = messages
            .last()
            .and_then(|m| m.get("content"))
            .map(content_text)
            .unwrap_or_default();
        let mut hits: Vec<(usize, &str)> = Vec::new();
        for (name, _) in &tools {
            if name.is_empty() {
                continue;
            }
            hits.extend(
                text.match_indices(name)
                    .filter(|(at, _)| whole_word(&text, *at, name))
                    .map(|(at, _)| (at, *name)),
            );
        }
        hits.sort_by_key(|(at, name)| (*at, std::cmp::Reverse(name.len())));
        // A longer name found at the same place wins over a shorter one.
        let mut end = 0;
        for (at, name) in hits {
            if at >= end {
                names.push(name.to_owned());
                end = at + name.len();
            }
        }
        if names.is_empty() && choice.and_then(Value::as_str) == Some("required") {
            names.push(tools[0].0.to_owned());
        }
    }
    if body.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
        names.truncate(1);
    }
    names
        .into_iter()
        .enumerate()
        .map(|(k, name)| ToolCall {
            id: format!("call_{n}_{k}"),
            arguments: schema_instance(params_of(&name)).to_string(),
            name,
        })
        .collect()
}

/// The contents of the trailing `tool` messages joined by `"; "` (`None` when
/// the last message is not a tool message).
fn trailing_tool_results(messages: &[Value]) -> Option<String> {
    let results: Vec<String> = messages
        .iter()
        .rev()
        .take_while(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
        .map(|m| m.get("content").map(content_text).unwrap_or_default())
        .collect();
    (!results.is_empty()).then(|| results.into_iter().rev().collect::<Vec<_>>().join("; "))
}

/// OpenAI's pairing rules for `tool_calls` and `tool` messages, with its error bodies.
fn validate_tool_history(messages: &[Value]) -> Option<Reply> {
    let invalid = |message: String, param: String| {
        Reply::json(
            400,
            &json!({"error": {"message": message, "type": "invalid_request_error",
                              "param": param, "code": null}}),
        )
    };
    // (index of the assistant message, its call ids, the ids answered so far)
    let mut open: Option<(usize, Vec<String>, Vec<String>)> = None;
    let unanswered = |open: &(usize, Vec<String>, Vec<String>)| -> Option<Reply> {
        let missing: Vec<&str> = open
            .1
            .iter()
            .filter(|id| !open.2.contains(id))
            .map(String::as_str)
            .collect();
        (!missing.is_empty()).then(|| {
            invalid(
                format!(
                    "An assistant message with 'tool_calls' must be followed by tool messages \
                     responding to each 'tool_call_id'. The following tool_call_ids did not \
                     have response messages: {}",
                    missing.join(", ")
                ),
                format!("messages.[{}].role", open.0),
            )
        })
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if role == "tool" {
            let Some(o) = open.as_mut() else {
                return Some(invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a \
                     preceeding message with 'tool_calls'."
                        .to_owned(),
                    format!("messages.[{i}].role"),
                ));
            };
            let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
            if !o.1.iter().any(|c| c == id) {
                return Some(invalid(
                    format!(
                        "Invalid parameter: 'tool_call_id' of '{id}' not found in 'tool_calls' \
                         of previous message."
                    ),
                    format!("messages.[{i}].tool_call_id"),
                ));
            }
            o.2.push(id.to_owned());
            continue;
        }
        if let Some(err) = open.take().as_ref().and_then(unanswered) {
            return Some(err);
        }
        let calls = m
            .get("tool_calls")
            .and_then(Value::as_array)
            .filter(|c| role == "assistant" && !c.is_empty());
        if let Some(calls) = calls {
            let ids = calls
                .iter()
                .map(|c| c.get("id").and_then(Value::as_str).unwrap_or("").to_owned())
                .collect();
            open = Some((i, ids, Vec::new()));
        }
    }
    open.as_ref().and_then(unanswered)
}

/// The reply text shaped by `response_format`: `json_object` wraps it as
/// `{"answer": text}`, `json_schema` answers [`schema_instance`] of the schema.
fn apply_response_format(body: &Value, text: String) -> String {
    match body
        .pointer("/response_format/type")
        .and_then(Value::as_str)
    {
        Some("json_object") => json!({"answer": text}).to_string(),
        Some("json_schema") => {
            let schema = body
                .pointer("/response_format/json_schema/schema")
                .unwrap_or(&Value::Null);
            schema_instance(schema).to_string()
        }
        _ => text,
    }
}

/// What the request asked of `logprobs`.
#[derive(Clone, Copy, Debug)]
struct LogprobsRequest {
    top: usize,
}

impl LogprobsRequest {
    fn of(body: &Value) -> Option<Self> {
        (body.get("logprobs").and_then(Value::as_bool) == Some(true)).then(|| LogprobsRequest {
            top: body
                .get("top_logprobs")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(20) as usize,
        })
    }

    /// `{"content": [...], "refusal": null}` for `tokens`, numbered from `first`.
    fn object(self, tokens: &[String], first: usize) -> Value {
        let entry = |token: &str, logprob: f64| json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()});
        let content: Vec<Value> = tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                let lp = -0.25 * (first + i + 1) as f64;
                let mut e = entry(token, lp);
                let top: Vec<Value> = (0..self.top)
                    .map(|j| {
                        if j == 0 {
                            entry(token, lp)
                        } else {
                            entry(&format!("alt{j}"), lp - j as f64)
                        }
                    })
                    .collect();
                e["top_logprobs"] = json!(top);
                e
            })
            .collect();
        json!({"content": content, "refusal": null})
    }
}

/// A deterministic instance of a JSON schema, as the fake's tool-call
/// arguments and `json_schema` replies: every property (required or not) of an
/// object; the first `enum` value or the `const`; string → `"value"` (or a valid
/// `date-time`, `date`, `time`, `email`, `uri`, `uuid` for those formats);
/// integer → 1 and number → 1.5 (moved into `minimum`/`maximum`); boolean →
/// `true`; array → `[]` (or `minItems` instances of `items`); null → `null`.
/// `anyOf`/`oneOf` take their first non-null branch, `allOf` merges its
/// branches, and `$ref`s to `#/$defs/…` or `#/definitions/…` are followed (to
/// a bounded depth). A missing schema gives `{}`.
pub fn schema_instance(schema: &Value) -> Value {
    if schema.is_null() {
        return json!({});
    }
    instance(schema, schema, 0)
}

fn instance(schema: &Value, root: &Value, depth: usize) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    let Some(obj) = schema.as_object() else {
        // `true` or a non-object schema: anything goes.
        return json!("value");
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix('#')
            .and_then(|ptr| root.pointer(ptr))
            .unwrap_or(&Value::Null);
        return instance(target, root, depth + 1);
    }
    if let Some(c) = obj.get("const") {
        return c.clone();
    }
    if let Some(first) = obj
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = obj.get(key).and_then(Value::as_array) {
            let pick = branches
                .iter()
                .find(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .or(branches.first());
            if let Some(b) = pick {
                return instance(b, root, depth + 1);
            }
        }
    }
    if let Some(branches) = obj.get("allOf").and_then(Value::as_array) {
        let mut merged = serde_json::Map::new();
        let mut other = None;
        for b in branches {
            match instance(b, root, depth + 1) {
                Value::Object(m) => merged.extend(m),
                v => other = Some(v),
            }
        }
        return match other {
            Some(v) if merged.is_empty() => v,
            _ => Value::Object(merged),
        };
    }
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if obj.contains_key("properties") => "object",
        _ if obj.contains_key("items") => "array",
        _ => "string",
    };
    let bound = |v: f64| {
        let v = obj
            .get("minimum")
            .and_then(Value::as_f64)
            .map_or(v, |m| v.max(m));
        obj.get("maximum")
            .and_then(Value::as_f64)
            .map_or(v, |m| v.min(m))
    };
    match ty {
        "object" => {
            let props = obj
                .get("properties")
                .and_then(Value::as_object)
                .map(|props| {
                    props
                        .iter()
                        .map(|(k, v)| (k.clone(), instance(v, root, depth + 1)))
                        .collect()
                })
                .unwrap_or_default();
            Value::Object(props)
        }
        "array" => {
            let count = obj
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(8);
            let item = obj.get("items").unwrap_or(&Value::Bool(true));
            Value::Array(
                (0..count)
                    .map(|_| instance(item, root, depth + 1))
                    .collect(),
            )
        }
        "integer" => json!(bound(1.0).ceil() as i64),
        "number" => json!(bound(1.5)),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => json!(match obj.get("format").and_then(Value::as_str) {
            Some("date-time") => "2024-01-01T00:00:00Z",
            Some("date") => "2024-01-01",
            Some("time") => "12:00:00",
            Some("email") => "user@example.com",
            Some("uri" | "url") => "https://example.com/",
            Some("uuid") => "00000000-0000-4000-8000-000000000000",
            _ => "value",
        }),
    }
}

impl State {
    /// Checks the API key, numbers the request and tags the reply.
    fn guarded(&self, req: &RecordedRequest, f: impl FnOnce(u64) -> Reply) -> Reply {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let authorized = self
            .cfg
            .api_key
            .as_deref()
            .is_none_or(|key| req.bearer_token() == Some(key));
        if !authorized {
            let shown = req.bearer_token().unwrap_or("");
            return openai_error(
                401,
                &format!("Incorrect API key provided: {shown}."),
                "invalid_request_error",
                Some("invalid_api_key"),
            )
            .header("x-fake-request-id", &n.to_string());
        }
        f(n).header("x-fake-request-id", &n.to_string())
    }

    fn models(&self, _n: u64) -> Reply {
        let data: Vec<Value> = self
            .cfg
            .models
            .iter()
            .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "fake"}))
            .collect();
        Reply::json(200, &json!({"object": "list", "data": data}))
    }

    fn chat(&self, req: &RecordedRequest, n: u64) -> Reply {
        let Ok(body @ Value::Object(_)) = req.json() else {
            return bad_request("We could not parse the JSON body of your request.");
        };
        let Some(model) = body.get("model").and_then(Value::as_str) else {
            return bad_request("you must provide a model parameter");
        };
        if !self.cfg.models.is_empty() && !self.cfg.models.iter().any(|m| m == model) {
            return openai_error(
                404,
                &format!("The model `{model}` does not exist or you do not have access to it."),
                "invalid_request_error",
                Some("model_not_found"),
            );
        }
        let Some(messages) = body.get("messages").and_then(Value::as_array) else {
            return bad_request("'messages' is a required property");
        };
        if let Some(err) = validate_tool_history(messages) {
            return err;
        }
        let calls = tool_calls_for(&body, messages, n);
        let tool_results = trailing_tool_results(messages);
        let text = if let Some(results) = &tool_results {
            format!("Tool results: {results}")
        } else {
            self.cfg.script.answer(|| last_user_text(messages))
        };
        let text = apply_response_format(&body, text);
        let reasoning = self.cfg.reasoning.clone();
        let completion_words = if calls.is_empty() {
            words(&text)
        } else {
            calls.iter().map(|c| words(&c.arguments).max(1)).sum()
        };
        let usage = self.cfg.usage.unwrap_or_else(|| Usage {
            prompt_tokens: messages
                .iter()
                .filter_map(|m| m.get("content"))
                .map(|c| words(&content_text(c)))
                .sum::<u64>()
                .max(1),
            completion_tokens: completion_words + reasoning.as_deref().map_or(0, words),
        });
        let usage_json = usage.to_json();
        let id = format!("chatcmpl-fake-{n}");
        let finish = if calls.is_empty() {
            self.cfg.finish_reason.as_str()
        } else {
            "tool_calls"
        };
        let logprobs = LogprobsRequest::of(&body);
        let received = received_fields(&body);
        let probe = body.get("x_fake_unknown_fields").and_then(Value::as_bool) == Some(true);
        let level = |name: &str| json!({"level": name});
        // Top-level fields every response object (and chunk) carries.
        let decorate = |mut v: Value| -> Value {
            if probe {
                v["x_fake_response"] = level("response");
            }
            if self.cfg.extras {
                v["service_tier"] = json!("default");
                v["system_fingerprint"] = json!(SYSTEM_FINGERPRINT);
            }
            if let Some(r) = &received {
                v["x_fake_received"] = r.clone();
            }
            v
        };
        let pieces = self.cfg.script.pieces(&text);

        if body.get("stream").and_then(Value::as_bool) != Some(true) {
            let mut message = if calls.is_empty() {
                json!({"role": "assistant", "content": text})
            } else {
                let calls: Vec<Value> = calls
                    .iter()
                    .map(|c| {
                        let mut c = c.to_json();
                        if probe {
                            c["x_fake_tool_call"] = level("tool_call");
                        }
                        c
                    })
                    .collect();
                json!({"role": "assistant", "content": null, "tool_calls": calls})
            };
            if probe {
                message["x_fake_message"] = level("message");
            }
            if self.cfg.extras {
                message["refusal"] = Value::Null;
                message["annotations"] = json!([]);
            }
            if let Some(r) = reasoning {
                message["reasoning_content"] = json!(r);
            }
            let mut choice = json!({"index": 0, "message": message, "finish_reason": finish});
            if probe {
                choice["x_fake_choice"] = level("choice");
            }
            if let Some(lp) = logprobs.filter(|_| calls.is_empty()) {
                choice["logprobs"] = lp.object(&pieces, 0);
            } else if self.cfg.extras || logprobs.is_some() {
                choice["logprobs"] = Value::Null;
            }
            return Reply::json(
                200,
                &decorate(json!({
                    "id": id, "object": "chat.completion", "created": CREATED, "model": model,
                    "choices": [choice],
                    "usage": usage_json,
                })),
            );
        }

        let include_usage = self.cfg.always_usage
            || body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                == Some(true);
        let chunk = |choices: Value| {
            decorate(
                json!({"id": id, "object": "chat.completion.chunk", "created": CREATED,
                   "model": model, "choices": choices}),
            )
        };
        let extras = self.cfg.extras;
        let choice = |mut d: Value, finish: Option<&str>, lp: Option<Value>| {
            if probe {
                d["x_fake_delta"] = level("delta");
            }
            let mut c = json!({"index": 0, "delta": d, "finish_reason": finish});
            if probe {
                c["x_fake_choice"] = level("choice");
            }
            if let Some(lp) = lp {
                c["logprobs"] = lp;
            } else if extras || logprobs.is_some() {
                c["logprobs"] = Value::Null;
            }
            c
        };
        let delta = |d: Value| chunk(json!([choice(d, None, None)]));
        let mut first = if calls.is_empty() {
            json!({"role": "assistant", "content": ""})
        } else {
            json!({"role": "assistant", "content": null})
        };
        if extras {
            first["refusal"] = Value::Null;
        }
        let mut events = Vec::new();
        let reasoning_pieces = self.cfg.script.pieces(reasoning.as_deref().unwrap_or(""));
        if calls.is_empty() || !reasoning_pieces.is_empty() {
            events.push(delta(first.take()));
        }
        for piece in reasoning_pieces {
            events.push(delta(json!({"reasoning_content": piece})));
        }
        if calls.is_empty() {
            for (offset, piece) in pieces.iter().enumerate() {
                let lp = logprobs.map(|lp| lp.object(std::slice::from_ref(piece), offset));
                events.push(chunk(json!([choice(json!({"content": piece}), None, lp)])));
            }
        } else {
            // OpenAI's shape: the first call's header rides on the role delta; every
            // call then streams its arguments in fragments.
            for (k, call) in calls.iter().enumerate() {
                let mut header = json!({"index": k, "id": call.id, "type": "function",
                                        "function": {"name": call.name, "arguments": ""}});
                if probe {
                    header["x_fake_tool_call"] = level("tool_call");
                }
                let mut d = if first.is_null() {
                    json!({})
                } else {
                    first.take()
                };
                d["tool_calls"] = json!([header]);
                events.push(delta(d));
                for piece in split(&call.arguments, self.cfg.script.chunks().max(2)) {
                    events.push(delta(json!({"tool_calls": [
                        {"index": k, "function": {"arguments": piece}}
                    ]})));
                }
            }
        }
        let mut last = chunk(json!([choice(json!({}), Some(finish), None)]));
        if include_usage && self.cfg.usage_in_finish_chunk {
            last["usage"] = usage_json.clone();
        }
        events.push(last);
        if include_usage && !self.cfg.usage_in_finish_chunk {
            let mut u = chunk(json!([]));
            u["usage"] = usage_json;
            events.push(u);
        }
        let mut sse: Vec<SseEvent> = events.iter().map(SseEvent::json).collect();
        sse.push(SseEvent::data("[DONE]"));
        Reply::sse(sse).chunk_delay(self.cfg.script.chunk_delay())
    }

    fn images(&self, req: &RecordedRequest, _n: u64) -> Reply {
        let Ok(body @ Value::Object(_)) = req.json() else {
            return bad_request("We could not parse the JSON body of your request.");
        };
        if body.get("prompt").and_then(Value::as_str).is_none() {
            return bad_request("'prompt' is a required property");
        }
        let count = body
            .get("n")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .clamp(1, 10) as usize;
        let b64 = body.get("response_format").and_then(Value::as_str) == Some("b64_json");
        let host = req.header("host").unwrap_or("127.0.0.1");
        let data: Vec<Value> = (0..count)
            .map(|i| {
                if b64 {
                    json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(TINY_PNG)})
                } else if self.cfg.image_urls.is_empty() {
                    json!({"url": format!("http://{host}/fake-files/image-{i}.png")})
                } else {
                    json!({"url": self.cfg.image_urls[i % self.cfg.image_urls.len()]})
                }
            })
            .collect();
        Reply::json(200, &json!({"created": CREATED, "data": data}))
    }
}
