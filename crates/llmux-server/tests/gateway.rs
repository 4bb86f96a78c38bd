//! The gateway over raw HTTP, against the testkit's fake OpenAI upstream (through the
//! openai-compat provider) and a scripted in-process provider.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream;
use llmux::core::Context;
use llmux::{
    ChatRequest, ChatStream, Chunk, Client, Conversation, Error, Image, MediaData, Provider,
    ProviderConfig, ProviderInfo, Source, Timeouts,
};
use llmux_server::ServerConfig;
use llmux_testkit::client;
use llmux_testkit::openai::{FakeOpenAi, TINY_PNG};
use llmux_testkit::{FakeServer, Fault, Method, closed_port};
use serde_json::{Value, json};

mod common;

use common::{
    Gw, T, builder, concat, config, error_of, events, hi, json_events, only_openai_compat, post,
    serve, start,
};

#[tokio::test]
async fn non_stream_relay_with_params() {
    // bare shapes: the exact-message assertion below is about the relay, not OpenAI's extras
    let (fake, gw) = start(FakeOpenAi::new().echo().extras(false)).await;
    let body = json!({
        "model": "fake-model", "messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi there"}],
        "temperature": 0.5, "top_p": 0.9, "max_completion_tokens": 7, "presence_penalty": 0.1,
        "frequency_penalty": 0.2, "stop": "END", "seed": 42, "user": "ignored"
    });
    let resp = post(&gw, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status, 200);
    let overhead: f64 = resp
        .header("x-llmux-overhead-ms")
        .expect("overhead")
        .parse()
        .expect("number");
    assert!((0.0..1000.0).contains(&overhead));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json().await.expect("json");
    assert_eq!(v["object"], "chat.completion");
    assert!(
        v["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-") && id.len() == 33)
    );
    assert_eq!(v["model"], "fake-model");
    assert_eq!(v["provider"], "openai-compat");
    assert_eq!(
        v["choices"][0]["message"],
        json!({"role": "assistant", "content": "echo: hi there"})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // the fake's usage: prompt words 4, completion words 3
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7})
    );
    assert!(v.get("conversation").is_none());

    let sent = fake.requests_to("/v1/chat/completions");
    let up = sent[0].json().expect("upstream json");
    assert_eq!(up["stream"], false);
    assert_eq!(
        (up["temperature"].clone(), up["top_p"].clone()),
        (json!(0.5), json!(0.9))
    );
    // forwarded under the client's own name (reasoning models refuse `max_tokens`)
    assert_eq!(up["max_completion_tokens"], 7);
    assert!(up.get("max_tokens").is_none());
    assert_eq!(
        (
            up["presence_penalty"].clone(),
            up["frequency_penalty"].clone()
        ),
        (json!(0.1), json!(0.2))
    );
    assert_eq!(up["stop"], json!(["END"]));
    assert_eq!(up["seed"], 42);
    assert_eq!(up["user"], "ignored", "`user` reaches the upstream");
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn stream_relay_exact_content() {
    let reply = "Streaming — with ünïcode and \"quotes\"\nand lines.";
    let (_fake, gw) = start(FakeOpenAi::new().reply(reply).chunks(5)).await;
    let resp = post(&gw, "/v1/chat/completions", &hi("fake-model", true)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert!(resp.header("x-llmux-overhead-ms").is_some());
    let text = resp.text().await.expect("body");
    assert_eq!(events(&text).last().map(String::as_str), Some("[DONE]"));
    let chunks = json_events(&text);
    assert_eq!(concat(&chunks, "content"), reply);
    assert!(chunks.len() >= 6, "{text}");
    let id = chunks[0]["id"].as_str().expect("id");
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id);
        assert_eq!(c["provider"], "openai-compat");
        assert_eq!(c["model"], "fake-model");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks[1]["choices"][0]["delta"].get("role").is_none());
    let last = chunks.last().expect("last");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    // usage only when `stream_options.include_usage` asks for it, as OpenAI does
    assert!(last.get("usage").is_none(), "{last}");
    for c in &chunks[..chunks.len() - 1] {
        assert!(c["choices"][0]["finish_reason"].is_null());
        assert!(c.get("usage").is_none());
    }
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn stream_include_usage_sends_openai_usage_chunk() {
    let (_fake, gw) = start(FakeOpenAi::new().reply("a b c").usage(11, 3)).await;
    let mut body = hi("fake-model", true);
    body["stream_options"] = json!({"include_usage": true});
    let text = post(&gw, "/v1/chat/completions", &body)
        .await
        .text()
        .await
        .expect("body");
    let chunks = json_events(&text);
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert!(chunks[n - 2].get("usage").is_none());
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(
        chunks[n - 1]["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14})
    );
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn reasoning_content_is_relayed() {
    let (_fake, gw) = start(
        FakeOpenAi::new()
            .reply("The answer is 4.")
            .reasoning("2 plus 2 makes 4")
            .chunks(3),
    )
    .await;
    let text = post(&gw, "/v1/chat/completions", &hi("fake-model", true))
        .await
        .text()
        .await
        .expect("body");
    let chunks = json_events(&text);
    assert_eq!(concat(&chunks, "reasoning_content"), "2 plus 2 makes 4");
    assert_eq!(concat(&chunks, "content"), "The answer is 4.");
    // the role goes with the very first delta, even a reasoning one
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks[0]["choices"][0]["delta"]["reasoning_content"].is_string());

    let v = post(&gw, "/v1/chat/completions", &hi("fake-model", false))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        v["choices"][0]["message"]["reasoning_content"],
        "2 plus 2 makes 4"
    );
    assert_eq!(v["choices"][0]["message"]["content"], "The answer is 4.");
    gw.stop().await.expect("stopped");
}

/// A provider scripted by the last user message: `turn` counts conversation turns through the
/// state it hands out; `media` answers with an image and sources; `fail` fails after output.
struct Scripted {
    info: ProviderInfo,
}

impl Scripted {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            info: ProviderInfo {
                name: "scripted".into(),
                label: "Scripted".into(),
                working: true,
                default_model: "scripted-model".into(),
                models: vec!["scripted-model".into()],
                ..ProviderInfo::default()
            },
        })
    }
}

impl Provider for Scripted {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn chat(&self, req: ChatRequest, _ctx: Context) -> ChatStream {
        let last = llmux::core::prompt::last_user_message(&req.messages);
        let items: Vec<Result<Chunk, Error>> = match last.as_str() {
            "turn" => {
                let n = req
                    .conversation
                    .as_ref()
                    .and_then(|c| c.0["turn"].as_u64())
                    .unwrap_or(0)
                    + 1;
                vec![
                    Ok(Chunk::text(format!("turn {n}"))),
                    Ok(Chunk::Conversation(Conversation(json!({"turn": n})))),
                ]
            }
            "media" => vec![
                Ok(Chunk::text("Here:")),
                Ok(Chunk::Images(vec![Image {
                    data: MediaData::Url("https://img.example/a cat.png".into()),
                    alt: "a cat".into(),
                    needs_auth: false,
                }])),
                Ok(Chunk::Sources(vec![Source {
                    url: "https://src.example/p".into(),
                    title: "Src".into(),
                }])),
            ],
            _ => vec![
                Ok(Chunk::text("ok")),
                Err(Error::Upstream {
                    provider: String::new(),
                    message: "exploded".into(),
                }),
            ],
        };
        Box::pin(stream::iter(items))
    }
}

async fn start_scripted() -> Gw {
    let client = Client::builder()
        .ignore_env()
        .registrations(Vec::new())
        .with_provider(Scripted::new())
        .build()
        .expect("client");
    serve(client, config()).await
}

fn say(text: &str, stream: bool) -> Value {
    json!({"model": "scripted-model", "stream": stream, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn conversation_round_trip() {
    let gw = start_scripted().await;
    let v = post(&gw, "/v1/chat/completions", &say("turn", false))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "turn 1");
    let conv = v["conversation"].clone();
    assert_eq!(conv, json!({"scripted": {"turn": 1}}));

    let mut next = say("turn", true);
    next["conversation"] = conv;
    let text = post(&gw, "/v1/chat/completions", &next)
        .await
        .text()
        .await
        .expect("body");
    let chunks = json_events(&text);
    assert_eq!(concat(&chunks, "content"), "turn 2");
    let last = chunks.last().expect("final");
    assert_eq!(last["conversation"], json!({"scripted": {"turn": 2}}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    // usage was not asked for
    assert!(last.get("usage").is_none(), "{last}");
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn media_and_sources_render_as_markdown() {
    let gw = start_scripted().await;
    let v = post(&gw, "/v1/chat/completions", &say("media", false))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Here:\n<!-- generated images start -->\n[![a cat](https://img.example/a+cat.png)](https://img.example/a+cat.png)\n<!-- generated images end -->\n\n\n\n\n\n> [0] [Src](https://src.example/p)"
    );
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn error_mid_stream_is_an_error_event_then_done() {
    let gw = start_scripted().await;
    let text = post(&gw, "/v1/chat/completions", &say("fail", true))
        .await
        .text()
        .await
        .expect("body");
    let ev = events(&text);
    assert_eq!(ev.len(), 3, "{text}");
    let first: Value = serde_json::from_str(&ev[0]).expect("chunk");
    assert_eq!(first["choices"][0]["delta"]["content"], "ok");
    let err: Value = serde_json::from_str(&ev[1]).expect("error event");
    assert_eq!(err["error"]["message"], "scripted: exploded");
    assert_eq!(err["error"]["code"], "upstream_error");
    assert_eq!(ev[2], "[DONE]");
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn upstream_disconnect_mid_stream_is_an_error_event() {
    let (fake, gw) = start(FakeOpenAi::new().reply("one two three four five").chunks(5)).await;
    fake.inject("/v1/chat/completions", Fault::DisconnectAfter { chunks: 3 });
    let resp = post(&gw, "/v1/chat/completions", &hi("fake-model", true)).await;
    assert_eq!(resp.status, 200);
    let text = resp.text().await.expect("body");
    let ev = events(&text);
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"), "{text}");
    let err: Value = serde_json::from_str(&ev[ev.len() - 2]).expect("error event");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("openai-compat")),
        "{err}"
    );
    let content = concat(
        &json_events(&text)
            .into_iter()
            .filter(|v| v.get("error").is_none())
            .collect::<Vec<_>>(),
        "content",
    );
    assert!(
        !content.is_empty() && "one two three four five".starts_with(&content),
        "{content}"
    );
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn models_endpoints() {
    let (_fake, gw) = start(FakeOpenAi::new().models(["fake-model", "other/model-2"])).await;
    let v = client::get(&gw.url("/v1/models"))
        .await
        .expect("resp")
        .json()
        .await
        .expect("json");
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], "fake-model");
    assert_eq!(data[0]["object"], "model");
    assert_eq!(data[0]["owned_by"], "openai-compat");

    let one = client::get(&gw.url("/v1/models/other/model-2"))
        .await
        .expect("resp");
    assert_eq!(one.status, 200);
    assert_eq!(one.json().await.expect("json")["id"], "other/model-2");
    let pref = client::get(&gw.url("/v1/models/openai-compat:fake-model"))
        .await
        .expect("resp");
    assert_eq!(pref.status, 200);
    assert_eq!(
        pref.json().await.expect("json")["owned_by"],
        "openai-compat"
    );
    let (status, err) =
        error_of(client::get(&gw.url("/v1/models/nope")).await.expect("resp")).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("model_not_found"))
    );
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn providers_endpoints() {
    let (_fake, gw) = start(FakeOpenAi::new()).await;
    let v = client::get(&gw.url("/v1/providers"))
        .await
        .expect("resp")
        .json()
        .await
        .expect("json");
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], "openai-compat");
    assert_eq!(data[0]["working"], true);
    assert_eq!(data[0]["supports_stream"], true);
    let one = client::get(&gw.url("/v1/providers/openai-compat"))
        .await
        .expect("resp");
    assert_eq!(one.status, 200);
    assert_eq!(
        one.json().await.expect("json")["models"],
        json!(["fake-model"])
    );
    let (status, err) = error_of(
        client::get(&gw.url("/v1/providers/nope"))
            .await
            .expect("resp"),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("provider_not_found"))
    );
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn images_url_and_b64() {
    let (fake, gw) = start(FakeOpenAi::new()).await;
    let resp = post(
        &gw,
        "/v1/images/generations",
        &json!({"prompt": "a cat", "model": "fake-model", "size": "256x128"}),
    )
    .await;
    assert_eq!(resp.status, 200);
    let v = resp.json().await.expect("json");
    assert_eq!(v["provider"], "openai-compat");
    let url = v["data"][0]["url"].as_str().expect("url");
    assert!(url.ends_with("/fake-files/image-0.png"), "{url}");
    assert_eq!(v["data"][0]["revised_prompt"], "a cat");
    let up = fake.requests_to("/v1/images/generations")[0]
        .json()
        .expect("json");
    assert_eq!(
        (
            up["prompt"].clone(),
            up["width"].clone(),
            up["height"].clone()
        ),
        (json!("a cat"), json!(256), json!(128))
    );
    assert!(up.get("image_generation").is_none());

    let v = post(
        &gw,
        "/v1/images/generations",
        &json!({"prompt": "a dog", "model": "fake-model", "response_format": "b64_json"}),
    )
    .await
    .json()
    .await
    .expect("json");
    let b64 = v["data"][0]["b64_json"].as_str().expect("b64");
    assert_eq!(
        llmux::core::media::b64_decode(b64).expect("base64"),
        TINY_PNG
    );
    assert_eq!(fake.requests_to("/fake-files/{name}").len(), 1);
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn bad_requests_name_the_problem() {
    let (fake, gw) = start(FakeOpenAi::new()).await;
    let resp = client::send(
        Method::POST,
        &gw.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        "{\"model\": ",
    )
    .await
    .expect("resp");
    let (status, err) = error_of(resp).await;
    assert_eq!(
        (status, err["code"].as_str(), err["type"].as_str()),
        (400, Some("invalid_json"), Some("invalid_request_error"))
    );

    let mut body = hi("fake-model", false);
    body["temperature"] = json!("hot");
    let (status, err) = error_of(post(&gw, "/v1/chat/completions", &body).await).await;
    assert_eq!((status, err["param"].as_str()), (400, Some("temperature")));
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("`temperature`")),
        "{err}"
    );

    let (status, err) =
        error_of(post(&gw, "/v1/chat/completions", &json!({"model": "fake-model"})).await).await;
    assert_eq!((status, err["param"].as_str()), (400, Some("messages")));

    let (status, err) = error_of(
        post(&gw, "/v1/chat/completions", &json!({"model": "fake-model", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "https://evil.example/x.png"}}]}]}))
        .await,
    )
    .await;
    assert_eq!(
        (status, err["param"].as_str()),
        (400, Some("messages[0].content[1].image_url.url"))
    );

    let (status, err) = error_of(client::get(&gw.url("/v1/nothing")).await.expect("resp")).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("unknown_url")));
    let resp = client::get(&gw.url("/v1/chat/completions"))
        .await
        .expect("resp");
    assert_eq!(
        (resp.status.as_u16(), resp.header("allow")),
        (405, Some("POST"))
    );
    assert!(fake.requests_to("/v1/chat/completions").is_empty());
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn data_uri_images_reach_the_upstream() {
    let (fake, gw) = start(FakeOpenAi::new().echo()).await;
    let uri = "data:image/png;base64,iVBORw0KGgo=";
    let body = json!({"model": "fake-model", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is it"}, {"type": "image_url", "image_url": {"url": uri}}]}]});
    let v = post(&gw, "/v1/chat/completions", &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: what is it");
    let up = fake.requests_to("/v1/chat/completions")[0]
        .json()
        .expect("json");
    assert_eq!(up["messages"][0]["content"][1]["image_url"]["url"], uri);
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn remote_media_passes_when_allowed() {
    let fake = FakeOpenAi::new().echo().start().await;
    let config = ServerConfig {
        allow_remote_media: true,
        ..config()
    };
    let gw = serve(builder(&fake).build().expect("client"), config).await;
    let body = json!({"model": "fake-model", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": "https://img.example/x.png"}}]}]});
    assert_eq!(post(&gw, "/v1/chat/completions", &body).await.status, 200);
    let up = fake.requests_to("/v1/chat/completions")[0]
        .json()
        .expect("json");
    assert_eq!(
        up["messages"][0]["content"][1]["image_url"]["url"],
        "https://img.example/x.png"
    );
    gw.stop().await.expect("stopped");
}

async fn start_with_key(fake: FakeOpenAi) -> (FakeServer, Gw) {
    let fake = fake.start().await;
    let config = ServerConfig {
        api_key: Some("gw-secret-123".into()),
        ..config()
    };
    let gw = serve(builder(&fake).build().expect("client"), config).await;
    (fake, gw)
}

#[tokio::test]
async fn gateway_key_is_checked() {
    let (_fake, gw) = start_with_key(FakeOpenAi::new()).await;
    let url = gw.url("/v1/chat/completions");
    let body = hi("fake-model", false);
    let (status, err) = error_of(client::post_json(&url, &[], &body).await.expect("resp")).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (401, Some("missing_api_key"))
    );
    let (status, err) = error_of(
        client::post_json(&url, &[("authorization", "Bearer ")], &body)
            .await
            .expect("resp"),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (401, Some("missing_api_key"))
    );
    let (status, err) = error_of(
        client::post_json(&url, &[("authorization", "Bearer wrong")], &body)
            .await
            .expect("resp"),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    for header in [
        ("authorization", "Bearer gw-secret-123"),
        ("x-api-key", "gw-secret-123"),
        ("g4f-api-key", "gw-secret-123"),
    ] {
        let resp = client::post_json(&url, &[header], &body)
            .await
            .expect("resp");
        assert_eq!(resp.status, 200, "{header:?}");
    }
    // models need the key too; health does not
    assert_eq!(
        client::get(&gw.url("/v1/models"))
            .await
            .expect("resp")
            .status,
        401
    );
    assert_eq!(
        client::get(&gw.url("/health")).await.expect("resp").status,
        200
    );
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn key_in_query_is_refused() {
    let (fake, gw) = start_with_key(FakeOpenAi::new()).await;
    for q in [
        "api_key=gw-secret-123",
        "key=gw-secret-123",
        "g4f-api-key=gw-secret-123",
    ] {
        let url = gw.url(&format!("/v1/chat/completions?{q}"));
        let (status, err) = error_of(
            client::post_json(&url, &[], &hi("fake-model", false))
                .await
                .expect("resp"),
        )
        .await;
        assert_eq!(
            (status, err["code"].as_str()),
            (400, Some("api_key_in_query")),
            "{q}"
        );
        // refused even alongside a valid header
        let resp = client::post_json(
            &url,
            &[("authorization", "Bearer gw-secret-123")],
            &hi("fake-model", false),
        )
        .await
        .expect("resp");
        assert_eq!(resp.status, 400);
    }
    assert!(fake.requests_to("/v1/chat/completions").is_empty());
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn gateway_key_never_reaches_the_upstream() {
    let (fake, gw) = start_with_key(FakeOpenAi::new()).await;
    let url = gw.url("/v1/chat/completions");
    let resp = client::post_json(
        &url,
        &[("authorization", "Bearer gw-secret-123")],
        &hi("fake-model", true),
    )
    .await
    .expect("resp");
    assert_eq!(resp.status, 200);
    let _ = resp.text().await;
    // a body api_key goes to the provider the caller named
    let mut body = hi("fake-model", false);
    body["provider"] = json!("openai-compat");
    body["api_key"] = json!("sk-upstream-456");
    let resp = client::post_json(&url, &[("x-api-key", "gw-secret-123")], &body)
        .await
        .expect("resp");
    assert_eq!(resp.status, 200);
    let all = fake.requests();
    assert!(all.len() >= 2);
    for r in &all {
        for (name, value) in &r.headers {
            assert!(
                !value.to_str().unwrap_or("").contains("gw-secret-123"),
                "{name} leaked the gateway key"
            );
        }
        assert!(!r.body_text().contains("gw-secret-123"));
    }
    let chats = fake.requests_to("/v1/chat/completions");
    assert_eq!(chats[0].bearer_token(), None);
    assert_eq!(chats[1].bearer_token(), Some("sk-upstream-456"));
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn unknown_model_and_provider_are_404() {
    let (_fake, gw) = start(FakeOpenAi::new()).await;
    let (status, err) =
        error_of(post(&gw, "/v1/chat/completions", &hi("no-such-model", false)).await).await;
    assert_eq!(
        (status, err["code"].as_str(), err["param"].as_str()),
        (404, Some("model_not_found"), Some("model"))
    );
    let (status, err) =
        error_of(post(&gw, "/v1/chat/completions", &hi("no-such-model", true)).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("model_not_found"))
    );
    let mut body = hi("fake-model", false);
    body["provider"] = json!("NoSuchProvider");
    let (status, err) = error_of(post(&gw, "/v1/chat/completions", &body).await).await;
    assert_eq!(
        (status, err["code"].as_str(), err["param"].as_str()),
        (404, Some("provider_not_found"), Some("provider"))
    );
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn body_too_large_is_413() {
    let fake = FakeOpenAi::new().start().await;
    let config = ServerConfig {
        max_body_bytes: 1024,
        ..config()
    };
    let gw = serve(builder(&fake).build().expect("client"), config).await;
    let body =
        json!({"model": "fake-model", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    let (status, err) = error_of(post(&gw, "/v1/chat/completions", &body).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (413, Some("body_too_large"))
    );
    assert!(fake.requests_to("/v1/chat/completions").is_empty());
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn rate_limit_passes_retry_after() {
    let (fake, gw) = start(FakeOpenAi::new()).await;
    fake.inject_times("/v1/chat/completions", Fault::rate_limited("120"), 2);
    for stream in [false, true] {
        let resp = post(&gw, "/v1/chat/completions", &hi("fake-model", stream)).await;
        assert_eq!(resp.header("retry-after"), Some("120"));
        let (status, err) = error_of(resp).await;
        assert_eq!(
            (status, err["code"].as_str(), err["type"].as_str()),
            (429, Some("rate_limited"), Some("rate_limit_error"))
        );
    }
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn upstream_missing_auth_is_401_upstream_auth_required() {
    let (_fake, gw) = start(FakeOpenAi::new().api_key("sk-needed")).await;
    let mut body = hi("fake-model", false);
    body["provider"] = json!("openai-compat");
    let (status, err) = error_of(post(&gw, "/v1/chat/completions", &body).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (401, Some("upstream_auth_required"))
    );
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("openai-compat: ")),
        "{err}"
    );
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn all_failed_is_502_naming_every_provider() {
    let fake = FakeOpenAi::new().start().await;
    fake.inject("/v1/chat/completions", Fault::status(500));
    let shared = |url: String| {
        let mut c = ProviderConfig::default().with_base_url(url);
        c.models = vec!["shared-model".into()];
        c
    };
    let client = Client::builder()
        .ignore_env()
        .registrations(only_openai_compat())
        .max_retries(0)
        .provider("openai-compat", shared(fake.url("/v1")))
        .instance(
            "backup",
            "openai-compat",
            shared(format!("http://127.0.0.1:{}/v1", closed_port())),
        )
        .build()
        .expect("client");
    let gw = serve(client, config()).await;
    let (status, err) =
        error_of(post(&gw, "/v1/chat/completions", &hi("shared-model", false)).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (502, Some("all_providers_failed"))
    );
    let msg = err["message"].as_str().expect("message");
    assert!(
        msg.contains("openai-compat (shared-model)") && msg.contains("backup (shared-model)"),
        "{msg}"
    );
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn stalled_upstream_is_504() {
    let fake = FakeOpenAi::new().start().await;
    fake.inject_times(
        "/v1/chat/completions",
        Fault::Delay(Duration::from_secs(3)),
        2,
    );
    let timeouts = Timeouts {
        connect: Duration::from_millis(200),
        first_byte: Duration::from_millis(300),
        idle: Duration::from_millis(300),
        total: Duration::from_secs(5),
    };
    let gw = serve(
        builder(&fake).timeouts(timeouts).build().expect("client"),
        config(),
    )
    .await;
    for stream in [false, true] {
        let started = Instant::now();
        let (status, err) =
            error_of(post(&gw, "/v1/chat/completions", &hi("fake-model", stream)).await).await;
        assert_eq!(
            (status, err["code"].as_str(), err["type"].as_str()),
            (504, Some("timeout"), Some("timeout_error"))
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn client_disconnect_closes_the_upstream_promptly() {
    let fake = FakeOpenAi::new()
        .reply("word ".repeat(60))
        .chunks(60)
        .chunk_delay(Duration::from_millis(50))
        .start()
        .await;
    let mut cfg = ProviderConfig::default().with_base_url(fake.url("/v1"));
    cfg.models = vec!["fake-model".into()];
    let client = Client::builder()
        .ignore_env()
        .registrations(only_openai_compat())
        .provider("openai-compat", cfg)
        .build()
        .expect("client");
    let gw = serve(client, config()).await;
    let mut resp = post(&gw, "/v1/chat/completions", &hi("fake-model", true)).await;
    assert_eq!(resp.status, 200);
    let first = resp.chunk(T).await.expect("chunk").expect("data");
    assert!(first.starts_with(b"data: {"));
    assert_eq!(fake.open_connections(), 1);
    drop(resp);
    let closed_at = Instant::now();
    assert!(
        fake.wait_until(Duration::from_secs(2), |f| f.open_connections() == 0)
            .await,
        "upstream still open"
    );
    assert!(closed_at.elapsed() < Duration::from_secs(1));
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let (_fake, gw) = start_with_key(FakeOpenAi::new()).await;
    let resp = client::send(
        Method::OPTIONS,
        &gw.url("/v1/chat/completions"),
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        "",
    )
    .await
    .expect("resp");
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    assert!(
        resp.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST"))
    );
    assert_eq!(
        resp.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    let resp = client::send(
        Method::GET,
        &gw.url("/health"),
        &[("origin", "https://app.example")],
        "",
    )
    .await
    .expect("resp");
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    let resp = client::get(&gw.url("/v1/models")).await.expect("resp");
    assert_eq!(
        (
            resp.status.as_u16(),
            resp.header("access-control-allow-origin")
        ),
        (401, Some("*"))
    );
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn graceful_shutdown_lets_open_streams_finish() {
    let reply = "a b c d e f g h i j";
    let (_fake, gw) = start(
        FakeOpenAi::new()
            .reply(reply)
            .chunks(10)
            .chunk_delay(Duration::from_millis(40)),
    )
    .await;
    let mut resp = post(&gw, "/v1/chat/completions", &hi("fake-model", true)).await;
    let mut text = String::from_utf8(resp.chunk(T).await.expect("chunk").expect("data").to_vec())
        .expect("utf8");
    let url = gw.url("/health");
    let stopping = tokio::spawn(gw.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // no new connections once shutdown began
    assert!(client::get(&url).await.is_err());
    while let Some(c) = resp.chunk(T).await.expect("chunk") {
        text.push_str(std::str::from_utf8(&c).expect("utf8"));
    }
    assert_eq!(concat(&json_events(&text), "content"), reply);
    assert!(text.ends_with("data: [DONE]\n\n"));
    stopping.await.expect("join").expect("serve ok");
}

#[tokio::test]
async fn shutdown_grace_cuts_long_streams() {
    let fake = FakeOpenAi::new()
        .reply("x ".repeat(100))
        .chunks(100)
        .chunk_delay(Duration::from_millis(50))
        .start()
        .await;
    let config = ServerConfig {
        shutdown_grace: Duration::from_millis(200),
        ..config()
    };
    let gw = serve(builder(&fake).build().expect("client"), config).await;
    let mut resp = post(&gw, "/v1/chat/completions", &hi("fake-model", true)).await;
    let _ = resp.chunk(T).await.expect("chunk");
    let started = Instant::now();
    gw.stop().await.expect("serve ok");
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut rest = Vec::new();
    let cut = loop {
        match resp.chunk(T).await {
            Ok(Some(c)) => rest.extend_from_slice(&c),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(cut || !String::from_utf8_lossy(&rest).contains("[DONE]"));
    assert!(
        fake.wait_until(Duration::from_secs(2), |f| f.open_connections() == 0)
            .await
    );
}

#[tokio::test]
async fn client_disconnect_during_upstream_silence_closes_the_upstream() {
    let fake = FakeOpenAi::new()
        .reply("one two three four")
        .chunks(4)
        .start()
        .await;
    fake.inject("/v1/chat/completions", Fault::StallAfter { chunks: 3 });
    let mut cfg = ProviderConfig::default().with_base_url(fake.url("/v1"));
    cfg.models = vec!["fake-model".into()];
    let client = Client::builder()
        .ignore_env()
        .registrations(only_openai_compat())
        .provider("openai-compat", cfg)
        .build()
        .expect("client");
    let gw = serve(client, config()).await;
    let mut resp = post(&gw, "/v1/chat/completions", &hi("fake-model", true)).await;
    assert_eq!(resp.status, 200);
    let _ = resp.chunk(T).await.expect("chunk").expect("data");
    // the upstream is now silent (idle timeout 60 s): only the client's departure can end it
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(fake.open_connections(), 1);
    drop(resp);
    assert!(
        fake.wait_until(Duration::from_secs(1), |f| f.open_connections() == 0)
            .await,
        "upstream still open"
    );
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn client_disconnect_before_the_answer_cancels_the_upstream_call() {
    let fake = FakeOpenAi::new().start().await;
    fake.inject("/v1/chat/completions", Fault::Delay(Duration::from_secs(5)));
    let mut cfg = ProviderConfig::default().with_base_url(fake.url("/v1"));
    cfg.models = vec!["fake-model".into()];
    let client = Client::builder()
        .ignore_env()
        .registrations(only_openai_compat())
        .provider("openai-compat", cfg)
        .build()
        .expect("client");
    let gw = serve(client, config()).await;
    for stream in [false, true] {
        let url = gw.url("/v1/chat/completions");
        let call =
            tokio::spawn(
                async move { client::post_json(&url, &[], &hi("fake-model", stream)).await },
            );
        assert!(fake.wait_for_requests(1, T).await);
        assert!(fake.wait_for_open_connections(1, T).await);
        call.abort();
        let _ = call.await;
        assert!(
            fake.wait_until(Duration::from_secs(1), |f| f.open_connections() == 0)
                .await,
            "upstream still open (stream: {stream})"
        );
        fake.clear_requests();
        fake.inject("/v1/chat/completions", Fault::Delay(Duration::from_secs(5)));
    }
    gw.stop().await.expect("stopped");
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let gw = start_scripted().await;
    let big = "x".repeat(70_000);
    match client::send(
        Method::GET,
        &gw.url("/health"),
        &[("x-big", big.as_str())],
        "",
    )
    .await
    {
        Ok(resp) => assert_eq!(resp.status, 431),
        Err(e) => panic!("expected a 431, got {e}"),
    }
    let ok = "x".repeat(8_000);
    let resp = client::send(
        Method::GET,
        &gw.url("/health"),
        &[("x-ok", ok.as_str())],
        "",
    )
    .await
    .expect("resp");
    assert_eq!(resp.status, 200);
    gw.stop().await.expect("stopped");
}
