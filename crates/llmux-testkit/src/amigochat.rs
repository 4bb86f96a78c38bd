//! A fake AmigoChat upstream (`api.amigochat.io`): `POST /v1/chat/completions` (OpenAI-style
//! SSE when `stream` is true, one JSON completion otherwise) and `POST /v1/images/generations`,
//! plus `GET /img/{name}` serving [`TINY_PNG`] for the generated image URLs.
//!
//! It checks what the real service checks: the `authorization: Bearer` header, a UUID in
//! `x-device-uuid`, a UUID `chatId`, a known model and the `personaId` that belongs to it.
//!
//! ```
//! # async fn demo() {
//! use llmux_testkit::amigochat::FakeAmigoChat;
//! let server = FakeAmigoChat::new().reply("Hi there!").chunks(2).start().await;
//! let base_url = server.url(""); // LLMUX_AMIGOCHAT_BASE_URL
//! # let _ = base_url;
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::openai::{CREATED, TINY_PNG};
use crate::reply::{Reply, Script, SseEvent, last_user_text, script_builders};
use crate::server::{FakeServer, RecordedRequest, Router};

/// Chat models and their `personaId`.
pub const CHAT_PERSONAS: &[(&str, &str)] = &[
    ("gpt-4o-2024-11-20", "gpt"),
    ("gpt-4o", "summarizer"),
    ("gpt-4o-mini", "amigo"),
    ("o1-preview-", "openai-o-one"),
    ("o1-preview-2024-09-12-", "orion"),
    ("o1-mini-", "openai-o-one-mini"),
    (
        "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo",
        "llama-three-point-one",
    ),
    (
        "meta-llama/Llama-3.2-90B-Vision-Instruct-Turbo",
        "llama-3-2",
    ),
    (
        "codellama/CodeLlama-34b-Instruct-hf",
        "codellama-CodeLlama-34b-Instruct-hf",
    ),
    ("gemini-1.5-pro", "gemini-1-5-pro"),
    ("gemini-1.5-flash", "gemini-1.5-flash"),
    ("claude-3-5-sonnet-20240620", "claude"),
    (
        "claude-3-5-sonnet-20241022",
        "clude-claude-3-5-sonnet-20241022",
    ),
    ("claude-3-5-haiku-latest", "3-5-haiku"),
    ("Qwen/Qwen2.5-72B-Instruct-Turbo", "qwen-2-5"),
    ("google/gemma-2b-it", "google-gemma-2b-it"),
    ("google/gemma-7b", "google-gemma-7b"),
    ("Gryphe/MythoMax-L2-13b", "Gryphe-MythoMax-L2-13b"),
    (
        "mistralai/Mistral-7B-Instruct-v0.3",
        "mistralai-Mistral-7B-Instruct-v0.1",
    ),
    ("mistralai/mistral-tiny", "mistralai-mistral-tiny"),
    ("mistralai/mistral-nemo", "mistralai-mistral-nemo"),
    (
        "deepseek-ai/deepseek-llm-67b-chat",
        "deepseek-ai-deepseek-llm-67b-chat",
    ),
    ("databricks/dbrx-instruct", "databricks-dbrx-instruct"),
    (
        "NousResearch/Nous-Hermes-2-Mixtral-8x7B-DPO",
        "NousResearch-Nous-Hermes-2-Mixtral-8x7B-DPO",
    ),
    ("x-ai/grok-beta", "x-ai-grok-beta"),
    (
        "anthracite-org/magnum-v4-72b",
        "anthracite-org-magnum-v4-72b",
    ),
    ("cohere/command-r-plus", "cohere-command-r-plus"),
    ("ai21/jamba-1-5-mini", "ai21-jamba-1-5-mini"),
    ("zero-one-ai/Yi-34B", "zero-one-ai-Yi-34B"),
];

/// Image models and their `personaId`.
pub const IMAGE_PERSONAS: &[(&str, &str)] = &[
    ("flux-pro/v1.1", "flux-1-1-pro"),
    ("flux-realism", "flux-realism"),
    ("flux-pro", "flux-pro"),
    ("flux-pro/v1.1-ultra", "flux-pro-v1.1-ultra"),
    ("flux-pro/v1.1-ultra-raw", "flux-pro-v1.1-ultra-raw"),
    ("flux/dev", "flux-dev"),
    ("dall-e-3", "dalle-three"),
    ("recraft-v3", "recraft"),
];

/// What balance-limited models answer (HTTP 402).
pub const BALANCE_MESSAGE: &str =
    "Amigo, your balance is not enough to make the request, wait until 12 UTC or upgrade your plan";

/// Models the upstream answered with [`BALANCE_MESSAGE`].
pub const BALANCE_LIMITED: &[&str] = &[
    "o1-preview-",
    "o1-preview-2024-09-12-",
    "o1-mini-",
    "gemini-1.5-pro",
    "flux-pro/v1.1",
    "flux-pro",
    "flux-pro/v1.1-ultra",
    "flux-pro/v1.1-ultra-raw",
];

/// What broken models answer (HTTP 500).
pub const AIML_ERROR_MESSAGE: &str = "Error handling AIML chat completion stream";

/// Models the upstream answered with [`AIML_ERROR_MESSAGE`].
pub const AIML_BROKEN: &[&str] = &["google/gemma-7b", "zero-one-ai/Yi-34B"];

/// An AmigoChat error reply: `{"error":{"message": ...}}`.
pub fn amigo_error(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({"error": {"message": message}}))
}

/// True for `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits, any case).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Builder and configuration of the fake AmigoChat upstream.
///
/// Defaults: reply `"Hello from the fake AmigoChat!"` in 3 stream chunks without delay, image
/// URLs pointing back at the fake (`http://<Host>/img/amigo-N.png`), upstream limits on (the
/// models of [`BALANCE_LIMITED`] answer 402 with [`BALANCE_MESSAGE`], those of [`AIML_BROKEN`]
/// 500 with [`AIML_ERROR_MESSAGE`]), no forced failures. In echo mode the reply is
/// `echo: <text of the last user message>`.
///
/// Validation failures answer `{"error":{"message":…}}`: 401 without `authorization: Bearer…`,
/// 400 for a missing or malformed `x-device-uuid`, a non-JSON body, a bad `chatId`, an unknown
/// model, a `personaId` that does not belong to the model, missing `messages` or `prompt`.
/// Each response carries `x-fake-request-id: N` (1-based, across both endpoints).
#[derive(Clone, Debug)]
pub struct FakeAmigoChat {
    script: Script,
    image_urls: Vec<String>,
    upstream_limits: bool,
    fail_first: usize,
    fail_status: u16,
    fail_message: String,
}

impl Default for FakeAmigoChat {
    fn default() -> Self {
        FakeAmigoChat {
            script: Script::fixed("Hello from the fake AmigoChat!", 3),
            image_urls: Vec::new(),
            upstream_limits: true,
            fail_first: 0,
            fail_status: 500,
            fail_message: "upstream timeout".to_owned(),
        }
    }
}

impl FakeAmigoChat {
    /// The default configuration (see the type docs).
    pub fn new() -> Self {
        FakeAmigoChat::default()
    }

    script_builders!(reply, echo, chunks, chunk_delay);

    /// URLs returned by `/v1/images/generations` (all of them, in one response).
    pub fn image_urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.image_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// Whether balance-limited and broken models fail as upstream (default true).
    pub fn upstream_limits(mut self, on: bool) -> Self {
        self.upstream_limits = on;
        self
    }

    /// The first `n` requests (to either endpoint) fail with `status` and
    /// `{"error":{"message": message}}` before any validation, like the upstream's transient errors.
    pub fn fail_first(mut self, n: usize, status: u16, message: impl Into<String>) -> Self {
        self.fail_first = n;
        self.fail_status = status;
        self.fail_message = message.into();
        self
    }

    /// The routes of this fake.
    pub fn router(self) -> Router {
        let state = Arc::new(State {
            cfg: self,
            counter: AtomicUsize::new(0),
        });
        let chat = state.clone();
        let images = state;
        Router::new()
            .post("/v1/chat/completions", move |req| {
                let s = chat.clone();
                async move { s.guarded(&req, |body| s.chat(body)) }
            })
            .post("/v1/images/generations", move |req| {
                let s = images.clone();
                async move { s.guarded(&req, |body| s.images(&req, body)) }
            })
            .get("/img/{name}", |_| async {
                Reply::bytes(200, "image/png", TINY_PNG)
            })
    }

    /// Starts a [`FakeServer`] serving [`FakeAmigoChat::router`].
    pub async fn start(self) -> FakeServer {
        FakeServer::start(self.router()).await
    }
}

struct State {
    cfg: FakeAmigoChat,
    counter: AtomicUsize,
}

fn persona_of(table: &[(&str, &'static str)], model: &str) -> Option<&'static str> {
    table.iter().find(|(m, _)| *m == model).map(|(_, p)| *p)
}

impl State {
    /// Numbers the request, applies forced failures and the header checks, parses the body.
    fn guarded(&self, req: &RecordedRequest, f: impl FnOnce(&Value) -> Reply) -> Reply {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let reply = if n <= self.cfg.fail_first {
            amigo_error(self.cfg.fail_status, &self.cfg.fail_message)
        } else if !req
            .header("authorization")
            .is_some_and(|v| v.trim().starts_with("Bearer"))
        {
            amigo_error(401, "Unauthorized")
        } else if !req.header("x-device-uuid").is_some_and(is_uuid) {
            amigo_error(400, "x-device-uuid header must be a UUID")
        } else {
            match req.json() {
                Ok(body @ Value::Object(_)) => f(&body),
                _ => amigo_error(400, "Invalid JSON body"),
            }
        };
        reply.header("x-fake-request-id", &n.to_string())
    }

    /// Model / persona checks shared by both endpoints.
    fn check_model(
        &self,
        body: &Value,
        table: &[(&str, &'static str)],
    ) -> Result<String, Box<Reply>> {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(persona) = persona_of(table, model) else {
            return Err(Box::new(amigo_error(
                400,
                &format!("Unknown model: {model}"),
            )));
        };
        if body.get("personaId").and_then(Value::as_str) != Some(persona) {
            let message = format!("Invalid personaId for model {model}");
            return Err(Box::new(amigo_error(400, &message)));
        }
        if self.cfg.upstream_limits && BALANCE_LIMITED.contains(&model) {
            return Err(Box::new(amigo_error(402, BALANCE_MESSAGE)));
        }
        if self.cfg.upstream_limits && AIML_BROKEN.contains(&model) {
            return Err(Box::new(amigo_error(500, AIML_ERROR_MESSAGE)));
        }
        Ok(model.to_owned())
    }

    fn chat(&self, body: &Value) -> Reply {
        if !body
            .get("chatId")
            .and_then(Value::as_str)
            .is_some_and(is_uuid)
        {
            return amigo_error(400, "chatId must be a UUID");
        }
        let model = match self.check_model(body, CHAT_PERSONAS) {
            Ok(m) => m,
            Err(reply) => return *reply,
        };
        let Some(messages) = body
            .get("messages")
            .and_then(Value::as_array)
            .filter(|m| !m.is_empty())
        else {
            return amigo_error(400, "messages must be a non-empty array");
        };
        let text = self.cfg.script.answer(|| last_user_text(messages));
        let id = format!("chatcmpl-{}", self.counter.load(Ordering::SeqCst));
        if body.get("stream").and_then(Value::as_bool) != Some(true) {
            return Reply::json(
                200,
                &json!({
                    "id": id, "object": "chat.completion", "created": CREATED, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                }),
            );
        }
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut events = vec![SseEvent::json(&chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ))];
        for piece in self.cfg.script.pieces(&text) {
            events.push(SseEvent::json(&chunk(
                json!({"content": piece}),
                Value::Null,
            )));
        }
        events.push(SseEvent::json(&chunk(json!({}), json!("stop"))));
        events.push(SseEvent::data("[DONE]"));
        Reply::sse(events).chunk_delay(self.cfg.script.chunk_delay())
    }

    fn images(&self, req: &RecordedRequest, body: &Value) -> Reply {
        if let Err(reply) = self.check_model(body, IMAGE_PERSONAS) {
            return *reply;
        }
        if body
            .get("prompt")
            .and_then(Value::as_str)
            .is_none_or(|p| p.trim().is_empty())
        {
            return amigo_error(400, "prompt is required");
        }
        let urls: Vec<Value> = if self.cfg.image_urls.is_empty() {
            let host = req.header("host").unwrap_or("127.0.0.1");
            let n = self.counter.load(Ordering::SeqCst);
            vec![json!({"url": format!("http://{host}/img/amigo-{n}.png")})]
        } else {
            self.cfg
                .image_urls
                .iter()
                .map(|u| json!({"url": u}))
                .collect()
        };
        Reply::json(200, &json!({"created": CREATED, "data": urls}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;

    #[test]
    fn uuid_check() {
        assert!(is_uuid("5e0b3c1a-8f2d-4a6b-9c7e-1d2f3a4b5c6d"));
        assert!(!is_uuid("5e0b3c1a-8f2d-4a6b-9c7e-1d2f3a4b5c6"));
        assert!(!is_uuid("5e0b3c1a08f2d-4a6b-9c7e-1d2f3a4b5c6d"));
        assert!(!is_uuid("ze0b3c1a-8f2d-4a6b-9c7e-1d2f3a4b5c6d"));
    }

    #[tokio::test]
    async fn checks_persona_and_device() {
        let server = FakeAmigoChat::new()
            .reply("Hi there!")
            .chunks(2)
            .start()
            .await;
        let url = server.url("/v1/chat/completions");
        let ok = json!({"chatId": "d3b07384-d113-4ec6-a5a8-0c6f0e0a1b2c", "messages": [{"role": "user", "content": "Say hi"}],
                        "model": "gpt-4o-mini", "personaId": "amigo", "stream": true});
        let headers = [
            ("authorization", "Bearer"),
            ("x-device-uuid", "5e0b3c1a-8f2d-4a6b-9c7e-1d2f3a4b5c6d"),
        ];
        let r = client::post_json(&url, &headers, &ok).await.expect("post");
        assert_eq!(r.status, 200);
        let text = r.text().await.expect("body");
        assert!(text.contains("\"content\":\"Hi th\""), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");

        let mut wrong = ok.clone();
        wrong["personaId"] = json!("gpt");
        let r = client::post_json(&url, &headers, &wrong)
            .await
            .expect("post");
        assert_eq!(r.status, 400);
        let r = client::post_json(&url, &headers[..1], &ok)
            .await
            .expect("post");
        assert_eq!(r.status, 400);

        let mut limited = ok.clone();
        limited["model"] = json!("gemini-1.5-pro");
        limited["personaId"] = json!("gemini-1-5-pro");
        let r = client::post_json(&url, &headers, &limited)
            .await
            .expect("post");
        assert_eq!(r.status, 402);
        assert_eq!(
            r.json().await.expect("json")["error"]["message"],
            BALANCE_MESSAGE
        );

        let img =
            json!({"prompt": "a lighthouse at dusk", "model": "flux/dev", "personaId": "flux-dev"});
        let r = client::post_json(&server.url("/v1/images/generations"), &headers, &img)
            .await
            .expect("post");
        let v = r.json().await.expect("json");
        let u = v["data"][0]["url"].as_str().expect("url").to_owned();
        let png = client::get(&u).await.expect("get");
        assert_eq!(png.status, 200);
    }
}
