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
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::reply::{Reply, SseEvent};
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
/// (`http://<Host>/fake-files/image-N.png`, which serves [`TINY_PNG`]).
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
/// With an API key set, every route under the prefix demands
/// `Authorization: Bearer KEY` and answers 401 `invalid_api_key` otherwise.
/// Each response carries `x-fake-request-id: N` (1-based request number).
#[derive(Clone, Debug)]
pub struct FakeOpenAi {
    prefix: String,
    models: Vec<String>,
    reply: String,
    echo: bool,
    chunks: usize,
    chunk_delay: Duration,
    reasoning: Option<String>,
    usage: Option<Usage>,
    always_usage: bool,
    usage_in_finish_chunk: bool,
    finish_reason: String,
    api_key: Option<String>,
    image_urls: Vec<String>,
}

impl Default for FakeOpenAi {
    fn default() -> Self {
        FakeOpenAi {
            prefix: "/v1".to_owned(),
            models: vec!["fake-model".to_owned()],
            reply: "Hello from the fake upstream!".to_owned(),
            echo: false,
            chunks: 3,
            chunk_delay: Duration::ZERO,
            reasoning: None,
            usage: None,
            always_usage: false,
            usage_in_finish_chunk: false,
            finish_reason: "stop".to_owned(),
            api_key: None,
            image_urls: Vec::new(),
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

    /// The assistant reply text.
    pub fn reply(mut self, text: impl Into<String>) -> Self {
        self.reply = text.into();
        self.echo = false;
        self
    }

    /// Replies `echo: <content of the last user message>` instead of a fixed
    /// text, proving the request made it through (text parts of array content
    /// are joined with spaces).
    pub fn echo(mut self) -> Self {
        self.echo = true;
        self
    }

    /// Number of stream chunks the reply (and the reasoning) is split into.
    pub fn chunks(mut self, n: usize) -> Self {
        self.chunks = n.max(1);
        self
    }

    /// Delay between stream chunks.
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

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

/// Text of a message `content` (string, or array of `{type:"text",text}` parts).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Splits `text` into at most `n` non-empty pieces on char boundaries.
fn split(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(n.max(1));
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn bad_request(message: &str) -> Reply {
    openai_error(400, message, "invalid_request_error", None)
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
        let text = if self.cfg.echo {
            let last_user = messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                .and_then(|m| m.get("content"))
                .map(content_text)
                .unwrap_or_default();
            format!("echo: {last_user}")
        } else {
            self.cfg.reply.clone()
        };
        let reasoning = self.cfg.reasoning.clone();
        let usage = self.cfg.usage.unwrap_or_else(|| Usage {
            prompt_tokens: messages
                .iter()
                .filter_map(|m| m.get("content"))
                .map(|c| words(&content_text(c)))
                .sum::<u64>()
                .max(1),
            completion_tokens: words(&text) + reasoning.as_deref().map_or(0, words),
        });
        let id = format!("chatcmpl-fake-{n}");
        let finish = self.cfg.finish_reason.as_str();

        if body.get("stream").and_then(Value::as_bool) != Some(true) {
            let mut message = json!({"role": "assistant", "content": text});
            if let Some(r) = reasoning {
                message["reasoning_content"] = json!(r);
            }
            return Reply::json(
                200,
                &json!({
                    "id": id, "object": "chat.completion", "created": CREATED, "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage.to_json(),
                }),
            );
        }

        let include_usage = self.cfg.always_usage
            || body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                == Some(true);
        let chunk = |choices: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": CREATED,
                   "model": model, "choices": choices})
        };
        let delta = |d: Value| chunk(json!([{"index": 0, "delta": d, "finish_reason": null}]));
        let mut events = vec![delta(json!({"role": "assistant", "content": ""}))];
        for piece in split(reasoning.as_deref().unwrap_or(""), self.cfg.chunks) {
            events.push(delta(json!({"reasoning_content": piece})));
        }
        for piece in split(&text, self.cfg.chunks) {
            events.push(delta(json!({"content": piece})));
        }
        let mut last = chunk(json!([{"index": 0, "delta": {}, "finish_reason": finish}]));
        if include_usage && self.cfg.usage_in_finish_chunk {
            last["usage"] = usage.to_json();
        }
        events.push(last);
        if include_usage && !self.cfg.usage_in_finish_chunk {
            let mut u = chunk(json!([]));
            u["usage"] = usage.to_json();
            events.push(u);
        }
        let mut sse: Vec<SseEvent> = events.iter().map(SseEvent::json).collect();
        sse.push(SseEvent::data("[DONE]"));
        Reply::sse(sse).chunk_delay(self.cfg.chunk_delay)
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
