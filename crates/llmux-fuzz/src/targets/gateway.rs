//! The gateway's request handling: body parsing alone, and whole requests (method, path, query,
//! headers, body) through its handler, answered by an in-process echo provider.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use llmux_core::{ChatRequest, ChatStream, Chunk, Context, Error, Provider, ProviderInfo, Secret};
use llmux_server::ServerConfig;
use llmux_server::fuzzing::{Handler, parse_chat, parse_images};
use serde_json::Value;

use super::{block_on, hash_str};
use crate::Target;
use crate::engine::{bucket, fnv};

/// The key of the authenticated gateway variant.
pub const GATEWAY_KEY: &str = "sk-llmux-fuzz-gateway-key";

const DICTIONARY: &[&[u8]] = &[
    b"{\"model\":\"echo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
    b"\"messages\":",
    b"\"model\":",
    b"\"stream\":true",
    b"\"stream_options\":{\"include_usage\":true}",
    b"\"stop\":[\"a\",\"b\"]",
    b"\"seed\":-1",
    b"\"n\":2",
    b"\"temperature\":0.5",
    b"\"max_tokens\":9",
    b"\"conversation\":{\"a\":1}",
    b"\"api_key\":\"k\"",
    b"\"provider\":\"echo\"",
    b"{\"type\":\"text\",\"text\":\"x\"}",
    b"{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\"}}",
    b"{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"UklGRg==\",\"format\":\"wav\"}}",
    b"\"role\":\"developer\"",
    b"\"prompt\":\"a fox\"",
    b"\"size\":\"1024x1024\"",
    b"\"response_format\":\"b64_json\"",
    b"POST ",
    b"GET ",
    b"OPTIONS ",
    b"HEAD ",
    b"/v1/chat/completions",
    b"/v1/images/generations",
    b"/v1/responses",
    b"/v1/responses/resp_1",
    b"DELETE ",
    b"\"input\":\"hi\"",
    b"/v1/models",
    b"/v1/models/echo%3Aecho-1",
    b"/v1/providers/echo",
    b"/health",
    b"?api_key=x",
    b"?a=b&token=",
    b"\nauthorization: Bearer ",
    GATEWAY_KEY.as_bytes(),
    b"\nx-api-key: ",
    b"\ncontent-length: 99999999999",
    b"\ncontent-type: application/json",
    b"\n\n",
    b"null",
    b"[]",
];

/// `parse_chat` and `parse_images` on raw bodies.
pub const GATEWAY_PARSE: Target = Target {
    name: "gateway-parse",
    about: "gateway request bodies: chat completions and image generation parsing + validation (field-path errors)",
    run: gateway_parse,
    seeds: body_seeds,
    dictionary: DICTIONARY,
};

/// Whole requests through the handler.
pub const GATEWAY: Target = Target {
    name: "gateway",
    about: "gateway handler in process: `METHOD target` line, headers, blank line, body (or a bare JSON chat body), with and without a gateway key",
    run: gateway,
    seeds: request_seeds,
    dictionary: DICTIONARY,
};

fn body_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"model":"echo-1","stop":"END","seed":-1,"max_completion_tokens":9,"messages":[{"role":"developer","content":"be brief"},{"role":"assistant","content":null},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]}]}"#,
        r#"{"model":"echo:echo-1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello there"}],"conversation":{"id":1}}"#,
        r#"{"prompt":"a red fox","model":"echo-img","n":2,"size":"512x256","response_format":"b64_json","seed":3}"#,
        r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"UklGRiQAAABXQVZF","format":"wav"}}]}]}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn request_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = body_seeds();
    for s in [
        "POST /v1/chat/completions\ncontent-type: application/json\n\n{\"model\":\"echo-1\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"boom after this\"}]}",
        "POST /v1/images/generations\nauthorization: Bearer sk-llmux-fuzz-gateway-key\n\n{\"prompt\":\"x\",\"size\":\"9x9\"}",
        "GET /v1/models/echo%3Aecho-1\n\n",
        "POST /v1/responses\n\n{\"model\":\"echo-1\",\"stream\":true,\"input\":\"boom after this\"}",
        "POST /v1/responses\n\n{\"model\":\"echo-1\",\"input\":[{\"role\":\"user\",\"content\":\"hi\"}],\"previous_response_id\":\"resp_x\"}",
        "DELETE /v1/responses/resp_x\n\n",
        "GET /v1/providers/echo?x=1\nx-api-key: sk-llmux-fuzz-gateway-key\n\n",
        "OPTIONS /v1/chat/completions\naccess-control-request-headers: x-custom\n\n",
        "GET /v1/models?api_key=secret\n\n",
        "HEAD /health\n\n",
    ] {
        out.push(s.as_bytes().to_vec());
    }
    out
}

/// An error body must be OpenAI-shaped.
fn check_error_body(body: &[u8]) {
    let v: Value = serde_json::from_slice(body).expect("error bodies are JSON");
    assert!(
        v.pointer("/error/message").is_some_and(Value::is_string),
        "error body without error.message: {v}"
    );
}

fn gateway_parse(data: &[u8]) -> u64 {
    let mut sig = Vec::new();
    for remote in [false, true] {
        match parse_chat(data, remote) {
            Ok(req) => {
                assert!(!req.messages.is_empty());
                let text: usize = req.messages.iter().map(|m| m.text().len()).sum();
                assert!(text <= data.len());
                sig.push(bucket(req.messages.len()));
            }
            Err(e) => {
                check_error_body(&e);
                sig.push(100 + bucket(e.len()));
            }
        }
    }
    match parse_images(data) {
        Ok(req) => {
            assert!(req.prompt.as_deref().is_some_and(|p| !p.trim().is_empty()));
            sig.push(200);
        }
        Err(e) => check_error_body(&e),
    }
    fnv(&sig)
}

/// Echoes the last user message in two deltas; `boom` in it fails after the first delta.
struct Echo {
    info: ProviderInfo,
}

impl Provider for Echo {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn chat(&self, request: ChatRequest, _ctx: Context) -> ChatStream {
        Box::pin(llmux_core::async_stream::try_stream! {
            let text = llmux_core::prompt::last_user_message(&request.messages);
            let mut mid = text.len() / 2;
            while !text.is_char_boundary(mid) {
                mid -= 1;
            }
            let (a, b) = text.split_at(mid);
            yield Chunk::text(a);
            if text.contains("boom") {
                Err(Error::Upstream { provider: "echo".into(), message: "boom".into() })?;
            }
            yield Chunk::text(b);
        })
    }
}

/// A gateway handler over the echo provider (models `echo-1`, `echo-img`), with
/// [`GATEWAY_KEY`] required when `with_key`; request bodies are limited to 16 KiB.
pub fn handler(with_key: bool) -> Handler {
    let info = ProviderInfo {
        name: "echo".into(),
        g4f_name: "Echo".into(),
        working: true,
        supports_stream: true,
        supports_system_message: true,
        supports_message_history: true,
        default_model: "echo-1".into(),
        models: vec!["echo-1".into(), "echo-img".into()],
        image_models: vec!["echo-img".into()],
        ..ProviderInfo::default()
    };
    let client = llmux::Client::builder()
        .ignore_env()
        .registrations(Vec::new())
        .with_provider(Arc::new(Echo { info }))
        .build()
        .expect("a client");
    let config = ServerConfig {
        api_key: with_key.then(|| Secret::new(GATEWAY_KEY)),
        max_body_bytes: 16 * 1024,
        responses_store_size: 16,
        ..ServerConfig::default()
    };
    Handler::new(client, config)
}

thread_local! {
    static HANDLERS: (Handler, Handler) = (handler(false), handler(true));
}

/// The request an input describes (`None` when it is not a valid HTTP request).
fn request(data: &[u8]) -> Option<Request<Full<Bytes>>> {
    if data.first().is_some_and(|b| matches!(b, b'{' | b'[')) {
        return Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(data)))
            .ok();
    }
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (data.get(..i)?, data.get(i + 2..)?),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let start = lines.next()?;
    let mut words = start.splitn(2, |b| *b == b' ');
    let method = http::Method::from_bytes(words.next()?).ok()?;
    let target = std::str::from_utf8(words.next()?).ok()?;
    let mut builder = Request::builder().method(method).uri(target);
    for line in lines {
        let i = line.iter().position(|b| *b == b':')?;
        let (name, value) = line.split_at(i);
        let value = value.get(1..)?.trim_ascii();
        builder = builder.header(
            http::HeaderName::from_bytes(name).ok()?,
            http::HeaderValue::from_bytes(value).ok()?,
        );
    }
    builder.body(Full::new(Bytes::copy_from_slice(body))).ok()
}

fn gateway(data: &[u8]) -> u64 {
    let Some(req) = request(data) else {
        return 1;
    };
    let responses = req.uri().path().contains("/responses");
    let with_key = hash_str(&String::from_utf8_lossy(data)) % 2 == 1;
    let (status, headers, body) = HANDLERS.with(|(open, keyed)| {
        let h = if with_key { keyed } else { open };
        block_on(h.respond(req, Duration::from_secs(2)))
    });
    assert_ne!(
        status.as_u16(),
        500,
        "internal error: {}",
        String::from_utf8_lossy(&body)
    );
    if status.is_client_error() || status.is_server_error() {
        check_error_body(&body);
    }
    // Answers are proportional to the request (the model and provider lists are small).
    assert!(
        body.len() <= 8 * data.len() + 16 * 1024,
        "{} bytes answered to {} bytes",
        body.len(),
        data.len()
    );
    let streamed = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streamed {
        if responses {
            // Responses API streams end with their terminal typed event, not `[DONE]`
            let last = body
                .rsplit(|b| *b == b'\n')
                .find(|l| l.starts_with(b"data: "))
                .and_then(|l| serde_json::from_slice::<Value>(&l[6..]).ok());
            let kind = last.as_ref().and_then(|v| v["type"].as_str());
            assert!(
                matches!(
                    kind,
                    Some("response.completed" | "response.failed" | "response.incomplete")
                ),
                "a Responses stream must end with a terminal event, not {kind:?}"
            );
        } else {
            assert!(
                body.ends_with(b"data: [DONE]\n\n"),
                "a stream must end with [DONE]"
            );
        }
    }
    fnv(&[
        u64::from(status.as_u16()),
        u64::from(streamed),
        bucket(body.len()),
    ])
}
