use std::time::Duration;

use base64::Engine as _;
use llmux_testkit::client;
use llmux_testkit::openai::{FakeOpenAi, TINY_PNG, schema_instance};
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
        json!({"role": "assistant", "content": "Hello world!", "refusal": null, "annotations": []})
    );
    assert_eq!(v["choices"][0]["logprobs"], Value::Null);
    assert_eq!(v["system_fingerprint"], "fp_fake");
    assert_eq!(v["service_tier"], "default");
    assert!(
        v.get("x_fake_received").is_none(),
        "nothing uninterpreted was sent"
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

// --- tool calls, structured output, logprobs, pass-through ---------------------------------

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"}
            }, "required": ["city"]}}},
        {"type": "function", "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}, "dst": {"type": "boolean"}}}}},
        {"type": "function", "function": {"name": "weather"}}
    ])
}

fn tool_request(text: &str, stream: bool) -> Value {
    json!({"model": "fake-model", "stream": stream, "tools": weather_tools(),
           "messages": [{"role": "user", "content": text}]})
}

async fn post(server: &FakeServer, body: &Value) -> (u16, Value) {
    let r = client::post_json(&server.url("/v1/chat/completions"), &[], body)
        .await
        .unwrap();
    let status = r.status.as_u16();
    (status, r.json().await.unwrap())
}

async fn post_stream(server: &FakeServer, body: &Value) -> (Vec<Value>, Vec<String>) {
    let r = client::post_json(&server.url("/v1/chat/completions"), &[], body)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    frames(&r.text().await.unwrap())
}

fn names(v: &Value) -> Vec<String> {
    v["choices"][0]["message"]["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| c["function"]["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn tool_calls_non_stream() {
    let server = FakeOpenAi::new().start().await;
    let (status, v) = post(
        &server,
        &tool_request(
            "Call get_weather for Paris, then get_time, then get_weather again.",
            false,
        ),
    )
    .await;
    assert_eq!(status, 200);
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        choice["message"],
        json!({"role": "assistant", "content": null, "refusal": null, "annotations": [],
               "tool_calls": [
            {"id": "call_1_0", "type": "function", "function": {"name": "get_weather",
             "arguments": r#"{"city":"value","days":1,"unit":"celsius"}"#}},
            {"id": "call_1_1", "type": "function", "function": {"name": "get_time",
             "arguments": r#"{"dst":true,"tz":"value"}"#}},
            {"id": "call_1_2", "type": "function", "function": {"name": "get_weather",
             "arguments": r#"{"city":"value","days":1,"unit":"celsius"}"#}},
        ]})
    );
    // The tools reached the fake and come back verbatim.
    assert_eq!(v["x_fake_received"], json!({"tools": weather_tools()}));
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn tool_choice_rules() {
    let server = FakeOpenAi::new().reply("plain text").start().await;
    // `weather` only as a whole word: inside get_weather it does not count.
    let (_, v) = post(
        &server,
        &tool_request("what about weather and get_weather?", false),
    )
    .await;
    assert_eq!(names(&v), ["weather", "get_weather"]);
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{}"
    );

    // No tool named: auto (absent) answers text, required calls the first tool.
    let mut req = tool_request("hello", false);
    let (_, v) = post(&server, &req).await;
    assert_eq!(v["choices"][0]["message"]["content"], "plain text");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    req["tool_choice"] = json!("auto");
    assert_eq!(names(&post(&server, &req).await.1), Vec::<String>::new());
    req["tool_choice"] = json!("required");
    assert_eq!(names(&post(&server, &req).await.1), ["get_weather"]);

    // A named function wins over mentions; "none" never calls.
    let mut req = tool_request("use get_weather", false);
    req["tool_choice"] = json!({"type": "function", "function": {"name": "get_time"}});
    assert_eq!(names(&post(&server, &req).await.1), ["get_time"]);
    req["tool_choice"] = json!("none");
    let (_, v) = post(&server, &req).await;
    assert_eq!(v["choices"][0]["message"]["content"], "plain text");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());

    // parallel_tool_calls: false keeps the first call only.
    let mut req = tool_request("get_time and get_weather", false);
    assert_eq!(
        names(&post(&server, &req).await.1),
        ["get_time", "get_weather"]
    );
    req["parallel_tool_calls"] = json!(false);
    let (_, v) = post(&server, &req).await;
    assert_eq!(names(&v), ["get_time"]);
    assert_eq!(v["x_fake_received"]["parallel_tool_calls"], false);

    // The last message is not a user message: text.
    let mut req = tool_request("get_time", false);
    req["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "assistant", "content": "ok"}));
    assert_eq!(names(&post(&server, &req).await.1), Vec::<String>::new());
}

#[tokio::test]
async fn tool_calls_stream_in_openai_shape() {
    let server = FakeOpenAi::new().chunks(3).start().await;
    let mut req = tool_request("get_weather and get_time please", true);
    req["stream_options"] = json!({"include_usage": true});
    let (chunks, data) = post_stream(&server, &req).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["system_fingerprint"], "fp_fake");
        assert_eq!(c["service_tier"], "default");
        assert_eq!(c["x_fake_received"]["tools"], weather_tools());
    }
    // First chunk: role, content null, refusal null and the first call's header.
    assert_eq!(
        chunks[0]["choices"][0],
        json!({"index": 0, "finish_reason": null, "logprobs": null, "delta": {
            "role": "assistant", "content": null, "refusal": null,
            "tool_calls": [{"index": 0, "id": "call_1_0", "type": "function",
                            "function": {"name": "get_weather", "arguments": ""}}]}})
    );
    // The second call's header.
    let header = chunks
        .iter()
        .find(|c| c["choices"][0]["delta"]["tool_calls"][0]["id"] == "call_1_1")
        .unwrap();
    assert_eq!(
        header["choices"][0]["delta"],
        json!({"tool_calls": [{"index": 1, "id": "call_1_1", "type": "function",
                               "function": {"name": "get_time", "arguments": ""}}]})
    );
    // Arguments assembled per index, in at least 2 fragments each, headers excluded.
    for (k, expected) in [
        (0, r#"{"city":"value","days":1,"unit":"celsius"}"#),
        (1, r#"{"dst":true,"tz":"value"}"#),
    ] {
        let fragments: Vec<&str> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
            .flatten()
            .filter(|t| t["index"] == k && t.get("id").is_none())
            .map(|t| {
                assert_eq!(t.as_object().unwrap().len(), 2, "{t}");
                t["function"]["arguments"].as_str().unwrap()
            })
            .collect();
        assert!(fragments.len() >= 2, "{fragments:?}");
        assert_eq!(fragments.concat(), expected);
    }
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["delta"].get("content").is_none()
                || c["choices"][0]["delta"]["content"].is_null())
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(
        finish["choices"][0],
        json!({"index": 0, "delta": {}, "finish_reason": "tool_calls", "logprobs": null})
    );
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        chunks.iter().filter(|c| c.get("usage").is_some()).count(),
        1
    );
}

#[tokio::test]
async fn tool_results_and_history_validation() {
    let server = FakeOpenAi::new().start().await;
    let call = |id: &str| json!({"id": id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}});
    let user = json!({"role": "user", "content": "weather?"});
    let assistant = json!({"role": "assistant", "content": null, "tool_calls": [call("call_a"), call("call_b")]});
    let tool =
        |id: &str, content: Value| json!({"role": "tool", "tool_call_id": id, "content": content});
    let req = |messages: Value| json!({"model": "fake-model", "messages": messages});

    // Both answered: the results reach the fake in order.
    let (status, v) = post(
        &server,
        &req(json!([
            user,
            assistant,
            tool("call_a", json!("sunny")),
            tool("call_b", json!([{"type": "text", "text": "21 C"}]))
        ])),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Tool results: sunny; 21 C"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    // Streamed too.
    let mut body = req(json!([
        user,
        assistant,
        tool("call_a", json!("x")),
        tool("call_b", json!("y"))
    ]));
    body["stream"] = json!(true);
    let (chunks, _) = post_stream(&server, &body).await;
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Tool results: x; y");

    // A tool message with no tool_calls before it.
    let (status, v) = post(&server, &req(json!([user, tool("call_a", json!("sunny"))]))).await;
    assert_eq!(status, 400);
    assert_eq!(
        v,
        json!({"error": {"message": "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                         "type": "invalid_request_error", "param": "messages.[1].role", "code": null}})
    );

    // One call left unanswered.
    let (status, v) = post(
        &server,
        &req(json!([user, assistant, tool("call_b", json!("21 C")), {"role": "user", "content": "and?"}])),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        v,
        json!({"error": {"message": "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: call_a",
                         "type": "invalid_request_error", "param": "messages.[1].role", "code": null}})
    );
    // None answered, at the end of the history.
    let (status, v) = post(&server, &req(json!([user, assistant]))).await;
    assert_eq!(status, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("did not have response messages: call_a, call_b")
    );

    // An id that is not one of the calls.
    let (status, v) = post(
        &server,
        &req(json!([
            user,
            assistant,
            tool("call_a", json!("1")),
            tool("call_zzz", json!("2"))
        ])),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "messages.[3].tool_call_id");
    assert_eq!(
        v["error"]["message"],
        "Invalid parameter: 'tool_call_id' of 'call_zzz' not found in 'tool_calls' of previous message."
    );
}

#[test]
fn schema_instances() {
    let schema = json!({
        "$defs": {"Step": {"type": "object", "properties": {
            "explanation": {"type": "string"}, "output": {"type": "string"}}}},
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}, "minItems": 1},
            "final": {"anyOf": [{"type": "null"}, {"type": "number", "minimum": 3}]},
            "when": {"type": "string", "format": "date-time"},
            "kind": {"enum": ["a", "b"]},
            "fixed": {"const": 7},
            "tags": {"type": "array", "items": {"type": "string"}},
            "maybe": {"type": ["string", "null"]},
            "count": {"type": "integer", "maximum": 0},
            "nested": {"properties": {"ok": {"type": "boolean"}}},
            "both": {"allOf": [{"properties": {"x": {"type": "integer"}}}, {"properties": {"y": {"type": "null"}}}]}
        },
        "required": ["steps"]
    });
    assert_eq!(
        schema_instance(&schema),
        json!({
            "steps": [{"explanation": "value", "output": "value"}],
            "final": 3.0, "when": "2024-01-01T00:00:00Z", "kind": "a", "fixed": 7,
            "tags": [], "maybe": "value", "count": 0, "nested": {"ok": true},
            "both": {"x": 1, "y": null}
        })
    );
    assert_eq!(schema_instance(&Value::Null), json!({}));
    // A self-referencing schema terminates.
    let looped = json!({"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}},
                        "$ref": "#/$defs/N"});
    assert!(schema_instance(&looped).is_object());
}

#[tokio::test]
async fn response_formats() {
    let server = FakeOpenAi::new().reply("forty-two").chunks(4).start().await;
    let mut req = chat("fake-model", false);
    req["response_format"] = json!({"type": "json_object"});
    let (_, v) = post(&server, &req).await;
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content, r#"{"answer":"forty-two"}"#);
    assert_eq!(
        v["x_fake_received"],
        json!({"response_format": {"type": "json_object"}})
    );

    let schema = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["name", "age", "tags"], "additionalProperties": false});
    req["response_format"] = json!({"type": "json_schema",
        "json_schema": {"name": "Person", "strict": true, "schema": schema}});
    let (_, v) = post(&server, &req).await;
    let expected = r#"{"age":1,"name":"value","tags":[]}"#;
    assert_eq!(v["choices"][0]["message"]["content"], expected);

    req["stream"] = json!(true);
    let (chunks, _) = post_stream(&server, &req).await;
    let pieces: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(pieces.len(), 4);
    assert_eq!(pieces.concat(), expected);
}

#[tokio::test]
async fn logprobs_non_stream_and_stream() {
    let server = FakeOpenAi::new().reply("abcdef").chunks(3).start().await;
    let mut req = chat("fake-model", false);
    req["logprobs"] = json!(true);
    req["top_logprobs"] = json!(2);
    let (_, v) = post(&server, &req).await;
    let lp = &v["choices"][0]["logprobs"];
    assert_eq!(lp["refusal"], Value::Null);
    let content = lp["content"].as_array().unwrap();
    let tokens: Vec<&str> = content
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, ["ab", "cd", "ef"]);
    assert_eq!(
        content[0],
        json!({"token": "ab", "logprob": -0.25, "bytes": [97, 98], "top_logprobs": [
            {"token": "ab", "logprob": -0.25, "bytes": [97, 98]},
            {"token": "alt1", "logprob": -1.25, "bytes": [97, 108, 116, 49]}]})
    );
    assert!(
        v.get("x_fake_received").is_none(),
        "logprobs is interpreted"
    );

    req["stream"] = json!(true);
    let (chunks, _) = post_stream(&server, &req).await;
    let streamed: Vec<Value> = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .map(|c| c["choices"][0]["logprobs"]["content"][0].clone())
        .collect();
    assert_eq!(streamed, content.clone());
    // Without logprobs: null everywhere.
    let (chunks, _) = post_stream(&server, &chat("fake-model", true)).await;
    assert!(chunks.iter().all(|c| c["choices"][0]["logprobs"].is_null()));
}

#[tokio::test]
async fn unknown_fields_come_back_in_x_fake_received() {
    let server = FakeOpenAi::new().start().await;
    let mut req = chat("fake-model", true);
    let extra = json!({
        "metadata": {"trace": "t-1"}, "reasoning_effort": "low", "store": false, "user": "u-9",
        "verbosity": "low", "seed": 7, "prediction": {"type": "content", "content": "x"},
        "x_made_up": {"deep": [1, {"a": null}]}, "temperature": 0.5,
    });
    for (k, v) in extra.as_object().unwrap() {
        req[k] = v.clone();
    }
    req["stream_options"] = json!({"include_usage": true});
    let (chunks, _) = post_stream(&server, &req).await;
    assert!(chunks.iter().all(|c| c["x_fake_received"] == extra));
    req["stream"] = json!(false);
    req.as_object_mut().unwrap().remove("stream_options");
    let (_, v) = post(&server, &req).await;
    assert_eq!(v["x_fake_received"], extra);
    // Recorded verbatim too.
    let recorded = server.requests_to("/v1/chat/completions");
    assert_eq!(
        recorded.last().unwrap().json().unwrap()["x_made_up"],
        extra["x_made_up"]
    );
}

#[tokio::test]
async fn extras_off_gives_bare_shapes() {
    let server = FakeOpenAi::new().reply("hi").extras(false).start().await;
    let (_, v) = post(&server, &chat("fake-model", false)).await;
    assert_eq!(
        v["choices"][0],
        json!({"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"})
    );
    assert!(v.get("system_fingerprint").is_none() && v.get("service_tier").is_none());
    let (chunks, _) = post_stream(&server, &chat("fake-model", true)).await;
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert!(chunks.iter().all(
        |c| c.get("system_fingerprint").is_none() && c["choices"][0].get("logprobs").is_none()
    ));
}

#[tokio::test]
async fn unknown_fields_at_every_level_on_request() {
    let server = FakeOpenAi::new().start().await;
    let level = |l: &str| json!({"level": l});
    let mut req = tool_request("get_time", false);
    req["x_fake_unknown_fields"] = json!(true);
    let (_, v) = post(&server, &req).await;
    assert_eq!(v["x_fake_response"], level("response"));
    assert_eq!(v["x_fake_received"]["x_fake_unknown_fields"], true);
    assert_eq!(v["choices"][0]["x_fake_choice"], level("choice"));
    let message = &v["choices"][0]["message"];
    assert_eq!(message["x_fake_message"], level("message"));
    assert_eq!(
        message["tool_calls"][0]["x_fake_tool_call"],
        level("tool_call")
    );

    req["stream"] = json!(true);
    let (chunks, _) = post_stream(&server, &req).await;
    for c in &chunks {
        assert_eq!(c["x_fake_response"], level("response"));
        assert_eq!(c["choices"][0]["x_fake_choice"], level("choice"));
        assert_eq!(c["choices"][0]["delta"]["x_fake_delta"], level("delta"));
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["tool_calls"][0]["x_fake_tool_call"],
        level("tool_call")
    );
    // Not asked: none of them.
    let (_, v) = post(&server, &chat("fake-model", false)).await;
    assert!(v.get("x_fake_response").is_none());
    assert!(v["choices"][0].get("x_fake_choice").is_none());
}
