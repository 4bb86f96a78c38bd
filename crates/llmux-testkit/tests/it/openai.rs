use std::time::Duration;

use base64::Engine as _;
use llmux_testkit::client;
use llmux_testkit::openai::{FakeOpenAi, TINY_PNG};
use llmux_testkit::{FakeServer, Fault};
use serde_json::{Value, json};

use crate::{SHORT, sse_data};

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream,
           "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]})
}

fn frames(body: &str) -> (Vec<Value>, Vec<String>) {
    let data = sse_data(body);
    let json = data
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    (json, data)
}

#[tokio::test]
async fn models_and_non_streaming_chat() {
    let server = FakeOpenAi::new()
        .models(["m1", "m2"])
        .reply("Hello world!")
        .start()
        .await;
    let models = client::get(&server.url("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        models,
        json!({"object": "list", "data": [
            {"id": "m1", "object": "model", "created": 0, "owned_by": "fake"},
            {"id": "m2", "object": "model", "created": 0, "owned_by": "fake"},
        ]})
    );
    let r = client::post_json(&server.url("/v1/chat/completions"), &[], &chat("m2", false))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let v = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "m2");
    assert_eq!(
        v["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hello world!"})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 2);
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["total_tokens"], 6);
    let req = &server.requests_to("/v1/chat/completions")[0];
    assert_eq!(req.json().unwrap()["messages"][1]["content"], "hi there");
}

#[tokio::test]
async fn streaming_chat_with_reasoning_and_usage() {
    let server = FakeOpenAi::new()
        .reply("The answer is 42.")
        .reasoning("Let me think.")
        .chunks(4)
        .usage(11, 7)
        .finish_reason("length")
        .chunk_delay(Duration::from_millis(5))
        .start()
        .await;
    let mut req = chat("fake-model", true);
    req["stream_options"] = json!({"include_usage": true});
    let r = client::post_json(&server.url("/v1/chat/completions"), &[], &req)
        .await
        .unwrap();
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let body = r.text().await.unwrap();
    let (chunks, data) = frames(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"])
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let collect = |field: &str| -> String {
        chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"][field].as_str())
            .collect()
    };
    assert_eq!(collect("content"), "The answer is 42.");
    assert_eq!(collect("reasoning_content"), "Let me think.");
    let content_deltas = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"]["content"].is_string())
        .count();
    assert_eq!(content_deltas, 1 + 4, "role delta + 4 content chunks");
    // Reasoning comes before content.
    let first_reasoning = chunks
        .iter()
        .position(|c| c["choices"][0]["delta"]["reasoning_content"].is_string())
        .unwrap();
    let first_content = chunks
        .iter()
        .position(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .unwrap();
    assert!(first_reasoning < first_content);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
    );

    // Without include_usage there is no usage chunk.
    let r = client::post_json(
        &server.url("/v1/chat/completions"),
        &[],
        &chat("fake-model", true),
    )
    .await
    .unwrap();
    let (chunks, _) = frames(&r.text().await.unwrap());
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert!(chunks.last().unwrap()["choices"][0]["finish_reason"].is_string());
}

#[tokio::test]
async fn usage_in_finish_chunk_and_echo() {
    let server = FakeOpenAi::new()
        .echo()
        .always_usage(true)
        .usage_in_finish_chunk(true)
        .start()
        .await;
    let mut req = chat("fake-model", true);
    req["messages"][1]["content"] =
        json!([{"type": "text", "text": "ping"}, {"type": "image_url", "image_url": {"url": "x"}}]);
    let body = client::post_json(&server.url("/v1/chat/completions"), &[], &req)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (chunks, _) = frames(&body);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "echo: ping");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(last["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn auth_unknown_model_and_bad_json() {
    let server = FakeOpenAi::new().api_key("sk-test").start().await;
    let url = server.url("/v1/chat/completions");
    let r = client::post_json(&url, &[], &chat("fake-model", false))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json().await.unwrap()["error"]["code"], "invalid_api_key");
    let r = client::post_json(
        &url,
        &[("authorization", "Bearer wrong")],
        &chat("fake-model", false),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401);
    let r = client::get(&server.url("/v1/models")).await.unwrap();
    assert_eq!(r.status, 401);

    let auth = [("authorization", "Bearer sk-test")];
    let r = client::post_json(&url, &auth, &chat("fake-model", false))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = client::post_json(&url, &auth, &chat("gpt-nope", false))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let err = r.json().await.unwrap();
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert_eq!(err["error"]["code"], "model_not_found");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-nope")
    );

    let r = client::send(llmux_testkit::Method::POST, &url, &auth, "{not json")
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json().await.unwrap()["error"]["type"],
        "invalid_request_error"
    );
    let r = client::post_json(&url, &auth, &json!({"model": "fake-model"}))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn images_urls_and_b64() {
    let server = FakeOpenAi::new().start().await;
    let url = server.url("/v1/images/generations");
    let v = client::post_json(&url, &[], &json!({"prompt": "a cat", "n": 2}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert!(v["created"].is_u64());
    let image_url = v["data"][0]["url"].as_str().unwrap();
    assert!(image_url.starts_with(&server.url("/")));
    let img = client::get(image_url).await.unwrap();
    assert_eq!(img.header("content-type"), Some("image/png"));
    assert_eq!(&img.bytes().await.unwrap()[..], TINY_PNG);

    let v = client::post_json(
        &url,
        &[],
        &json!({"prompt": "a cat", "response_format": "b64_json"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let b64 = v["data"][0]["b64_json"].as_str().unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        TINY_PNG
    );

    let server = FakeOpenAi::new()
        .image_urls(["http://img.example/1.png"])
        .start()
        .await;
    let v = client::post_json(
        &server.url("/v1/images/generations"),
        &[],
        &json!({"prompt": "x"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["data"], json!([{"url": "http://img.example/1.png"}]));
}

#[tokio::test]
async fn composes_with_faults_and_prefix() {
    let server = FakeServer::start(FakeOpenAi::new().prefix("/api/openai/v1").router()).await;
    let url = server.url("/api/openai/v1/chat/completions");
    server.inject("/api/openai/v1/chat/completions", Fault::status(500));
    server.inject(
        "/api/openai/v1/chat/completions",
        Fault::DisconnectAfter { chunks: 2 },
    );
    let r = client::post_json(&url, &[], &chat("fake-model", false))
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    let mut r = client::post_json(&url, &[], &chat("fake-model", true))
        .await
        .unwrap();
    let mut got = Vec::new();
    let err = loop {
        match r.chunk(SHORT).await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => panic!("must be cut"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, client::ClientError::Http(_)), "{err:?}");
    assert_eq!(sse_data(&String::from_utf8_lossy(&got)).len(), 2);
    let r = client::post_json(&url, &[], &chat("fake-model", false))
        .await
        .unwrap();
    // The status fault answered without reaching the fake: 2 handler calls so far.
    assert_eq!(r.header("x-fake-request-id"), Some("2"));
    assert_eq!(
        r.json().await.unwrap()["choices"][0]["message"]["content"],
        "Hello from the fake upstream!"
    );
}
