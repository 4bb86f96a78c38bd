//! A fake FlowGPT upstream (`prod-backend-k8s.flowgpt.com`): `POST /v3/chat-anonymous`
//! answering JSON lines (`{"event":"text","data":…}` deltas, then a `done` event).
//!
//! It checks what the real service checks: `Authorization: Bearer null`, the shape of
//! `x-timestamp`, `x-nonce` and `x-flow-device-id`, and that
//! `x-signature == md5(x-timestamp + "-" + x-nonce + "-" + "Bearer null")`; optionally that the
//! timestamp is close to the server's clock. The body must name a known model with the matching
//! `promptId` and carry `question`, `history` and `system`.
//!
//! ```
//! # async fn demo() {
//! use llmux_testkit::flowgpt::FakeFlowGpt;
//! let server = FakeFlowGpt::new().reply("Je vais bien, merci !").chunks(2).start().await;
//! let base_url = server.url(""); // LLMUX_FLOWGPT_BASE_URL
//! # let _ = base_url;
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use md5::{Digest, Md5};
use serde_json::{Value, json};

use crate::reply::{Reply, Script, content_text, script_builders};
use crate::server::{FakeServer, RecordedRequest, Router};

/// The models FlowGPT serves anonymously.
pub const MODELS: &[&str] = &[
    "gpt-3.5-turbo",
    "gpt-3.5-long",
    "gpt-4-turbo",
    "google-gemini",
    "claude-instant",
    "claude-v1",
    "claude-v2",
    "llama2-13b",
    "mythalion-13b",
    "pygmalion-13b",
    "chronos-hermes-13b",
    "Mixtral-8x7B",
    "Dolphin-2.6-8x7B",
];

/// The `Authorization` value anonymous clients send (and sign).
pub const AUTH: &str = "Bearer null";

/// Lower-case hex MD5 of `"<timestamp>-<nonce>-Bearer null"`.
pub fn signature(timestamp: &str, nonce: &str) -> String {
    Md5::digest(format!("{timestamp}-{nonce}-{AUTH}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A FlowGPT error reply: `{"statusCode": status, "message": …}`.
pub fn flowgpt_error(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({"statusCode": status, "message": message}))
}

/// The 429 page of the rate limiter (HTML, as in front of the real service).
pub fn rate_limited_page() -> Reply {
    Reply::html(
        429,
        "<!DOCTYPE html><html><head><title>429</title></head><body>Too many requests</body></html>",
    )
}

/// Builder and configuration of the fake FlowGPT upstream.
///
/// Defaults: reply `"Hello from the fake FlowGPT!"` in 3 `text` events without delay, followed
/// by `{"event":"done","data":""}`; no clock check. In echo mode the reply is
/// `echo: <question>` (text parts of a list joined with spaces).
///
/// Failures: 401 `{"statusCode":401,"message":…}` for a wrong `Authorization`, malformed signing
/// headers, a wrong signature or (with [`FakeFlowGpt::max_clock_skew`]) a stale timestamp; 400
/// for a non-JSON body, an unknown model, a `promptId` other than `model-<model>`, or a missing
/// `question` / `history` / `system`. Each response carries `x-fake-request-id: N` (1-based).
#[derive(Clone, Debug)]
pub struct FakeFlowGpt {
    script: Script,
    max_clock_skew: Option<Duration>,
}

impl Default for FakeFlowGpt {
    fn default() -> Self {
        FakeFlowGpt {
            script: Script::fixed("Hello from the fake FlowGPT!", 3),
            max_clock_skew: None,
        }
    }
}

impl FakeFlowGpt {
    /// The default configuration (see the type docs).
    pub fn new() -> Self {
        FakeFlowGpt::default()
    }

    script_builders!(reply, echo, chunks, chunk_delay);

    /// Refuses timestamps further than `skew` from the server's clock.
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = Some(skew);
        self
    }

    /// The routes of this fake.
    pub fn router(self) -> Router {
        let state = Arc::new(State {
            cfg: self,
            counter: AtomicUsize::new(0),
        });
        Router::new().post("/v3/chat-anonymous", move |req| {
            let s = state.clone();
            async move {
                let n = s.counter.fetch_add(1, Ordering::SeqCst) + 1;
                s.chat(&req).header("x-fake-request-id", &n.to_string())
            }
        })
    }

    /// Starts a [`FakeServer`] serving [`FakeFlowGpt::router`].
    pub async fn start(self) -> FakeServer {
        FakeServer::start(self.router()).await
    }
}

struct State {
    cfg: FakeFlowGpt,
    counter: AtomicUsize,
}

/// The text of the `question`: a string or text parts as [`content_text`], any other JSON as
/// written.
fn question_text(question: &Value) -> String {
    match question {
        Value::String(_) | Value::Array(_) => content_text(question),
        other => other.to_string(),
    }
}

impl State {
    /// Checks the signed headers; `Some` is the refusal.
    fn check_signature(&self, req: &RecordedRequest) -> Option<Reply> {
        if req.header("authorization") != Some(AUTH) {
            return Some(flowgpt_error(401, "Unauthorized"));
        }
        let ts = req.header("x-timestamp").unwrap_or_default();
        let nonce = req.header("x-nonce").unwrap_or_default();
        let device = req.header("x-flow-device-id").unwrap_or_default();
        let ts_ok = !ts.is_empty() && ts.bytes().all(|c| c.is_ascii_digit());
        let nonce_ok = nonce.len() == 32
            && nonce
                .bytes()
                .all(|c| matches!(c, b'a'..=b'f' | b'0'..=b'9'));
        let device_ok = device.strip_prefix("f-").is_some_and(|rest| {
            rest.len() == 19
                && rest
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
        if !(ts_ok && nonce_ok && device_ok) {
            return Some(flowgpt_error(401, "Invalid request headers"));
        }
        if req.header("x-signature") != Some(signature(ts, nonce).as_str()) {
            return Some(flowgpt_error(401, "Invalid signature"));
        }
        if let Some(skew) = self.cfg.max_clock_skew {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let sent = ts.parse::<u64>().unwrap_or(0);
            if now.abs_diff(sent) > skew.as_secs() {
                return Some(flowgpt_error(401, "Request expired"));
            }
        }
        None
    }

    fn chat(&self, req: &RecordedRequest) -> Reply {
        if let Some(refusal) = self.check_signature(req) {
            return refusal;
        }
        let Ok(body @ Value::Object(_)) = req.json() else {
            return flowgpt_error(400, "Invalid JSON body");
        };
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !MODELS.contains(&model) {
            return flowgpt_error(400, &format!("Invalid model: {model}"));
        }
        if body.get("promptId").and_then(Value::as_str) != Some(format!("model-{model}").as_str()) {
            return flowgpt_error(400, "Invalid promptId");
        }
        let question = body.get("question").filter(|q| !q.is_null());
        let Some(question) = question else {
            return flowgpt_error(400, "question is required");
        };
        if !body.get("history").is_some_and(Value::is_array)
            || !body.get("system").is_some_and(Value::is_string)
        {
            return flowgpt_error(400, "history and system are required");
        }
        let text = self.cfg.script.answer(|| question_text(question));
        let mut lines: Vec<Bytes> = self
            .cfg
            .script
            .pieces(&text)
            .iter()
            .map(|piece| event_line("text", piece))
            .collect();
        lines.push(event_line("done", ""));
        Reply::chunked("application/x-ndjson", lines).chunk_delay(self.cfg.script.chunk_delay())
    }
}

/// One line of the stream, `{"event":…,"data":…}` and a newline (keys in FlowGPT's order), for
/// building custom replies with `Reply::chunked` or faults.
pub fn event_line(event: &str, data: &str) -> Bytes {
    Bytes::from(format!(
        "{{\"event\":{},\"data\":{}}}\n",
        json!(event),
        json!(data)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;

    #[test]
    fn signature_vector() {
        assert_eq!(
            signature("1714000000", "9f86d081884c7d659a2feaa0c55ad015"),
            "8665df1a193a76960370763fb6ec50f9"
        );
    }

    #[tokio::test]
    async fn checks_signature() {
        let server = FakeFlowGpt::new()
            .reply("Je vais bien")
            .chunks(2)
            .start()
            .await;
        let url = server.url("/v3/chat-anonymous");
        let body = json!({"model": "google-gemini", "nsfw": false, "question": "How are you?",
            "history": [], "system": "s", "temperature": 0.7, "promptId": "model-google-gemini"});
        let good = [
            ("authorization", AUTH),
            ("x-flow-device-id", "f-k3j9x0q2m8v7b1n5c4z"),
            ("x-nonce", "9f86d081884c7d659a2feaa0c55ad015"),
            ("x-timestamp", "1714000000"),
            ("x-signature", "8665df1a193a76960370763fb6ec50f9"),
        ];
        let r = client::post_json(&url, &good, &body).await.expect("post");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.text().await.expect("text"),
            "{\"event\":\"text\",\"data\":\"Je vai\"}\n{\"event\":\"text\",\"data\":\"s bien\"}\n{\"event\":\"done\",\"data\":\"\"}\n"
        );
        let mut bad = good;
        bad[3] = ("x-timestamp", "1714000001");
        let r = client::post_json(&url, &bad, &body).await.expect("post");
        assert_eq!(r.status, 401);
        assert_eq!(
            r.json().await.expect("json")["message"],
            "Invalid signature"
        );

        let strict = FakeFlowGpt::new()
            .max_clock_skew(Duration::from_secs(60))
            .start()
            .await;
        let r = client::post_json(&strict.url("/v3/chat-anonymous"), &good, &body)
            .await
            .expect("post");
        assert_eq!(r.status, 401);
    }
}
