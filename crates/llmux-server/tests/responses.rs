//! `POST /v1/responses`, `GET` / `DELETE /v1/responses/{id}` over raw HTTP: against the
//! testkit's fake OpenAI upstream (through the openai-compat provider) and a scripted provider
//! that shows what it received.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use llmux::core::Context;
use llmux::{
    Capabilities, ChatRequest, ChatStream, Chunk, Client, Error, Provider, ProviderInfo, Reasoning,
    Role, ToolCallDelta,
};
use llmux_server::ServerConfig;
use llmux_testkit::Fault;
use llmux_testkit::client::{self, ClientResponse};
use llmux_testkit::openai::FakeOpenAi;
use serde_json::{Value, json};

mod common;

use common::{Gw, config, serve, start};

/// Answers with what it received (`role:text` of every message, `|`-joined); the last user
/// message `call` makes it call `get_weather`, `think` reason first, `fail` fail after output.
struct Scripted {
    info: ProviderInfo,
}

impl Provider for Scripted {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn chat(&self, req: ChatRequest, _ctx: Context) -> ChatStream {
        let seen: Vec<String> = req
            .messages
            .iter()
            .map(|m| {
                let calls: String = m.tool_calls.iter().map(|c| format!("[{}]", c.id)).collect();
                let role = match m.role {
                    Role::Tool => format!("tool({})", m.tool_call_id.as_deref().unwrap_or("")),
                    r => r.as_str().to_owned(),
                };
                format!("{role}:{}{calls}", m.text())
            })
            .collect();
        let last = llmux::core::prompt::last_user_message(&req.messages);
        let answer = seen.join("|");
        let items: Vec<Result<Chunk, Error>> = match last.as_str() {
            "call" if req.messages.last().is_some_and(|m| m.role == Role::User) => vec![
                Ok(Chunk::ToolCall(ToolCallDelta {
                    index: 0,
                    id: Some("call_w1".into()),
                    name: Some("get_weather".into()),
                    arguments: "{\"city\":".into(),
                    ..ToolCallDelta::default()
                })),
                Ok(Chunk::ToolCall(ToolCallDelta {
                    index: 0,
                    id: None,
                    name: None,
                    arguments: "\"Paris\"}".into(),
                    ..ToolCallDelta::default()
                })),
            ],
            "think" => vec![
                Ok(Chunk::Reasoning(Reasoning::token("hmm"))),
                Ok(Chunk::text("done")),
            ],
            "fail" => vec![
                Ok(Chunk::text("partial")),
                Err(Error::Upstream {
                    provider: String::new(),
                    message: "exploded".into(),
                }),
            ],
            _ => vec![Ok(Chunk::text(answer))],
        };
        Box::pin(stream::iter(items))
    }
}

fn scripted_client() -> Client {
    let info = ProviderInfo {
        name: "scripted".into(),
        working: true,
        default_model: "scripted-model".into(),
        models: vec!["scripted-model".into()],
        capabilities: Capabilities {
            tools: true,
            ..Capabilities::plain(&["temperature"], &[])
        },
        ..ProviderInfo::default()
    };
    Client::builder()
        .ignore_env()
        .registrations(Vec::new())
        .with_provider(Arc::new(Scripted { info }))
        .build()
        .expect("client")
}

async fn start_scripted(config: ServerConfig) -> Gw {
    serve(scripted_client(), config).await
}

async fn post(gw: &Gw, body: &Value) -> ClientResponse {
    client::post_json(&gw.url("/v1/responses"), &[], body)
        .await
        .expect("response")
}

async fn json_of(resp: ClientResponse) -> (u16, Value) {
    let status = resp.status.as_u16();
    (status, resp.json().await.expect("json"))
}

/// The `(event, data)` pairs of a Responses SSE body; the event name must equal `data.type`.
fn sse(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            let mut lines = b.lines();
            let event = lines.next().and_then(|l| l.strip_prefix("event: "));
            let data = lines.next().and_then(|l| l.strip_prefix("data: "));
            let v: Value = serde_json::from_str(data.expect("data line")).expect("json");
            assert_eq!(event, v["type"].as_str(), "{b}");
            v
        })
        .collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().into_iter().flatten())
        .filter_map(|c| c["text"].as_str())
        .collect()
}

#[tokio::test]
async fn create_relays_to_an_openai_upstream() {
    let (fake, gw) = start(FakeOpenAi::new().echo().usage(11, 3)).await;
    let resp = post(
        &gw,
        &json!({"model": "fake-model", "input": "hi there", "instructions": "be kind",
            "max_output_tokens": 9, "temperature": 0.5, "reasoning": {"effort": "low"},
            "metadata": {"k": "v"}}),
    )
    .await;
    assert!(resp.header("x-llmux-overhead-ms").is_some());
    assert!(resp.header("x-llmux-ignored-params").is_none());
    let (status, v) = json_of(resp).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert!(v["id"].as_str().is_some_and(|i| i.starts_with("resp_")));
    assert_eq!(output_text(&v), "echo: hi there");
    assert_eq!(v["output"][0]["role"], "assistant");
    assert!(
        v["output"][0]["id"]
            .as_str()
            .is_some_and(|i| i.starts_with("msg_"))
    );
    assert_eq!(v["usage"]["input_tokens"], 11);
    assert_eq!(v["usage"]["output_tokens"], 3);
    assert_eq!(v["usage"]["total_tokens"], 14);
    assert_eq!(v["metadata"], json!({"k": "v"}));
    assert_eq!(v["instructions"], "be kind");
    assert_eq!(v["provider"], "openai-compat");
    let upstream = fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/chat/completions"))
        .expect("upstream call")
        .json()
        .expect("json");
    assert_eq!(upstream["reasoning_effort"], "low");
    assert_eq!(upstream["max_tokens"], 9);
    assert_eq!(upstream["temperature"], 0.5);
    assert_eq!(
        upstream["messages"][0],
        json!({"role": "system", "content": "be kind"})
    );
}

#[tokio::test]
async fn stream_is_the_typed_event_sequence() {
    let (_fake, gw) = start(FakeOpenAi::new().reply("one two three").chunks(3)).await;
    let resp = post(
        &gw,
        &json!({"model": "fake-model", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let ev = sse(&resp.text().await.expect("body"));
    let k = kinds(&ev);
    assert_eq!(
        k[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        k[k.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["sequence_number"], json!(i));
    }
    let deltas: String = ev
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(deltas, "one two three");
    let done = &ev[ev.len() - 1]["response"];
    assert_eq!(output_text(done), "one two three");
    assert_eq!(done["status"], "completed");
    assert_eq!(ev[0]["response"]["id"], done["id"]);
}

#[tokio::test]
async fn a_cut_upstream_stream_ends_with_response_failed() {
    let (fake, gw) = start(FakeOpenAi::new().reply("one two three four five").chunks(5)).await;
    fake.inject("/v1/chat/completions", Fault::DisconnectAfter { chunks: 3 });
    let resp = post(
        &gw,
        &json!({"model": "fake-model", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(resp.status, 200);
    let ev = sse(&resp.text().await.expect("body"));
    let last = ev.last().expect("events");
    assert_eq!(last["type"], "response.failed", "{ev:?}");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"]["code"], "server_error");
    assert!(
        last["response"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("openai-compat"))
    );
    assert!(!kinds(&ev).contains(&"response.completed"));
}

#[tokio::test]
async fn a_scripted_failure_after_output_is_response_failed_and_not_stored() {
    let gw = start_scripted(config()).await;
    let resp = post(&gw, &json!({"input": "fail", "stream": true})).await;
    let ev = sse(&resp.text().await.expect("body"));
    let last = ev.last().expect("events");
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["output"][0]["status"], "incomplete");
    let id = last["response"]["id"].as_str().expect("id");
    let got = client::get(&gw.url(&format!("/v1/responses/{id}")))
        .await
        .expect("resp");
    assert_eq!(got.status, 404);
    // before any output the failure gets a real status
    let (status, v) = json_of(post(&gw, &json!({"model": "nope-model", "input": "x"})).await).await;
    assert_eq!(status, 404, "{v}");
    assert!(v["error"]["message"].is_string());
}

#[tokio::test]
async fn previous_response_id_continues_and_get_delete_work() {
    let gw = start_scripted(config()).await;
    let (_, first) =
        json_of(post(&gw, &json!({"input": "first", "instructions": "sys"})).await).await;
    assert_eq!(output_text(&first), "system:sys|user:first");
    let id = first["id"].as_str().expect("id").to_owned();

    let (status, second) = json_of(
        post(
            &gw,
            &json!({"input": [{"role": "user", "content": [{"type": "input_text", "text": "second"}]}],
                "previous_response_id": id}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{second}");
    // the instructions of the first request are not carried over, its answer is
    assert_eq!(
        output_text(&second),
        "user:first|assistant:system:sys|user:first|user:second"
    );
    assert_eq!(second["previous_response_id"], json!(id));

    let got = client::get(&gw.url(&format!("/v1/responses/{id}")))
        .await
        .expect("resp");
    let (status, v) = json_of(got).await;
    assert_eq!((status, &v), (200, &first));

    let del = client::send(
        http::Method::DELETE,
        &gw.url(&format!("/v1/responses/{id}")),
        &[],
        bytes::Bytes::new(),
    )
    .await
    .expect("resp");
    let (status, v) = json_of(del).await;
    assert_eq!(status, 200);
    assert_eq!(v, json!({"id": id, "object": "response", "deleted": true}));
    let (status, v) = json_of(
        client::get(&gw.url(&format!("/v1/responses/{id}")))
            .await
            .expect("resp"),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (status, v) =
        json_of(post(&gw, &json!({"input": "x", "previous_response_id": id})).await).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["param"], "previous_response_id");
    assert_eq!(v["error"]["code"], "previous_response_not_found");
}

#[tokio::test]
async fn store_false_and_store_off_keep_nothing() {
    let gw = start_scripted(config()).await;
    let (_, v) = json_of(post(&gw, &json!({"input": "x", "store": false})).await).await;
    assert_eq!(v["store"], false);
    let got = client::get(&gw.url(&format!("/v1/responses/{}", v["id"].as_str().expect("id"))))
        .await
        .expect("resp");
    assert_eq!(got.status, 404);

    let off = start_scripted(ServerConfig {
        responses_store_size: 0,
        ..config()
    })
    .await;
    let (_, v) = json_of(post(&off, &json!({"input": "x"})).await).await;
    assert_eq!(v["store"], false, "the response says it was not stored");
    let (status, _) = json_of(
        post(
            &off,
            &json!({"input": "y", "previous_response_id": v["id"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_store_expires_responses() {
    let gw = start_scripted(ServerConfig {
        responses_store_ttl: Duration::from_millis(200),
        ..config()
    })
    .await;
    let (_, v) = json_of(post(&gw, &json!({"input": "x"})).await).await;
    let url = gw.url(&format!("/v1/responses/{}", v["id"].as_str().expect("id")));
    assert_eq!(client::get(&url).await.expect("resp").status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client::get(&url).await.expect("resp").status, 404);
}

#[tokio::test]
async fn function_call_round_trip() {
    let gw = start_scripted(config()).await;
    let tools = json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": null}]);
    let resp = post(
        &gw,
        &json!({"input": "call", "tools": tools, "stream": true}),
    )
    .await;
    let ev = sse(&resp.text().await.expect("body"));
    let k = kinds(&ev);
    assert_eq!(
        k,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(ev[2]["item"]["type"], "function_call");
    assert_eq!(ev[2]["item"]["arguments"], "");
    assert_eq!(ev[5]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(ev[5]["name"], "get_weather");
    let done = &ev[7]["response"];
    let call = &done["output"][0];
    assert_eq!(call["call_id"], "call_w1");
    assert!(call["id"].as_str().is_some_and(|i| i.starts_with("fc_")));
    assert_eq!(call["status"], "completed");

    let (status, next) = json_of(
        post(
            &gw,
            &json!({"previous_response_id": done["id"], "tools": tools,
                "input": [{"type": "function_call_output", "call_id": "call_w1", "output": "18C"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(
        output_text(&next),
        "user:call|assistant:[call_w1]|tool(call_w1):18C"
    );

    // the same round trip without the store: the client sends the whole history
    let (status, v) = json_of(
        post(
            &gw,
            &json!({"store": false, "tools": tools, "input": [
                {"role": "user", "content": "call"},
                call,
                {"type": "function_call_output", "call_id": "call_w1", "output": "18C"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        output_text(&v),
        "user:call|assistant:[call_w1]|tool(call_w1):18C"
    );
}

#[tokio::test]
async fn reasoning_is_a_summary_item() {
    let gw = start_scripted(config()).await;
    let (_, v) = json_of(post(&gw, &json!({"input": "think"})).await).await;
    assert_eq!(v["output"][0]["type"], "reasoning");
    assert_eq!(
        v["output"][0]["summary"],
        json!([{"type": "summary_text", "text": "hmm"}])
    );
    assert_eq!(output_text(&v), "done");
    let resp = post(&gw, &json!({"input": "think", "stream": true})).await;
    let ev = sse(&resp.text().await.expect("body"));
    let k = kinds(&ev);
    assert!(k.contains(&"response.reasoning_summary_part.added"));
    let delta = ev
        .iter()
        .find(|e| e["type"] == "response.reasoning_summary_text.delta")
        .expect("reasoning delta");
    assert_eq!(delta["delta"], "hmm");
    assert_eq!(delta["output_index"], 0);
}

#[tokio::test]
async fn fields_a_provider_ignores_are_named() {
    let gw = start_scripted(config()).await;
    for stream in [false, true] {
        let resp = post(
            &gw,
            &json!({"input": "x", "reasoning": {"effort": "high"}, "top_p": 0.5, "stream": stream}),
        )
        .await;
        assert_eq!(resp.status, 200);
        let ignored = resp.header("x-llmux-ignored-params").unwrap_or_default();
        assert!(ignored.contains("reasoning_effort"), "{ignored}");
        assert!(ignored.contains("top_p"), "{ignored}");
    }
}

#[tokio::test]
async fn refused_fields_are_400s_in_openai_shape() {
    let gw = start_scripted(config()).await;
    for (body, param) in [
        (
            json!({"input": "x", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
        ),
        (json!({"input": "x", "background": true}), "background"),
        (
            json!({"input": [{"type": "item_reference", "id": "x"}]}),
            "input[0].type",
        ),
        (json!({"input": 5}), "input"),
        (
            json!({"input": "x", "max_output_tokens": "many"}),
            "max_output_tokens",
        ),
    ] {
        let (status, v) = json_of(post(&gw, &body).await).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], param, "{body}: {v}");
        assert!(v["error"]["message"].is_string());
    }
    let r = client::get(&gw.url("/v1/responses")).await.expect("resp");
    assert_eq!(r.status, 405);
    let r = client::get(&gw.url("/v1/responses/resp_unknown"))
        .await
        .expect("resp");
    let (status, v) = json_of(r).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "not_found");
}
