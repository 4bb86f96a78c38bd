//! The openai-compat provider end to end: registry → facade → HTTP → SSE → chunks → accumulator.

use llmux::{ChatRequest, Chunk, Client, Error, FinishReason, Message, ProviderConfig, Reasoning};
use llmux_e2e::{drain, short_timeouts, text_of};
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::{FakeServer, Fault};

async fn client_for(server: &FakeServer, key: Option<&str>) -> Client {
    let mut cfg = ProviderConfig::default().with_base_url(server.url("/v1"));
    if let Some(k) = key {
        cfg = cfg.with_api_key(k);
    }
    Client::builder()
        .ignore_env()
        .timeouts(short_timeouts())
        .provider("openai-compat", cfg)
        .build()
        .expect("client")
}

#[tokio::test]
async fn streams_through_the_facade() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new()
        .models(["fake-model"])
        .reply("Hello from the fake upstream!")
        .chunks(4)
        .reasoning("Let me think.")
        .usage(7, 5)
        .api_key("sk-test")
        .start()
        .await;
    let client = client_for(&fake, Some("sk-test")).await;
    let req = ChatRequest::new(
        "fake-model",
        vec![Message::system("Be brief."), Message::user("Hi")],
    )
    .with_temperature(0.3)
    .with_max_tokens(50);
    let (chunks, err) = drain(client.chat(req)).await;
    assert!(err.is_none(), "{err:?}");
    assert!(
        matches!(&chunks[0], Chunk::Provider(p) if p.provider == "openai-compat" && p.model == "fake-model")
    );
    assert_eq!(text_of(&chunks), "Hello from the fake upstream!");
    let text_chunks = chunks
        .iter()
        .filter(|c| matches!(c, Chunk::Text(_)))
        .count();
    assert!(text_chunks >= 2, "streamed in pieces: {chunks:?}");
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| match c {
            Chunk::Reasoning(Reasoning { token: Some(t), .. }) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasoning, "Let me think.");
    assert!(chunks.contains(&Chunk::Finish(FinishReason::Stop)));
    assert!(
        chunks.iter().any(
            |c| matches!(c, Chunk::Usage(u) if u.prompt_tokens == 7 && u.completion_tokens == 5)
        )
    );

    // what reached the upstream
    let sent = fake.requests_to("/v1/chat/completions");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].bearer_token(), Some("sk-test"));
    let body = sent[0].json().expect("json body");
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["stream"], true);
    assert_eq!(body["temperature"], 0.3);
    assert_eq!(body["max_tokens"], 50);
    assert_eq!(
        body["messages"][0],
        serde_json::json!({"role":"system","content":"Be brief."})
    );
}

#[tokio::test]
async fn completes_without_streaming() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new()
        .models(["fake-model"])
        .echo()
        .start()
        .await;
    let client = client_for(&fake, None).await;
    let resp = client
        .complete(ChatRequest::user("fake-model", "ping").with_stream(false))
        .await
        .expect("response");
    assert_eq!(resp.text, "echo: ping");
    assert_eq!(resp.provider, "openai-compat");
    assert_eq!(resp.model, "fake-model");
    assert_eq!(resp.finish_reason, Some(FinishReason::Stop));
    let body = fake.requests_to("/v1/chat/completions")[0]
        .json()
        .expect("json");
    assert_eq!(body["stream"], false);
    assert!(body.get("stream_options").is_none());
}

#[tokio::test]
async fn routes_by_discovered_model_and_reports_close_matches() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new()
        .models(["llama3.2", "qwen2.5"])
        .echo()
        .start()
        .await;
    let client = client_for(&fake, None).await;
    let resp = client
        .complete(ChatRequest::user("qwen2.5", "hi"))
        .await
        .expect("routed");
    assert_eq!(resp.text, "echo: hi");
    assert_eq!(
        fake.requests_to("/v1/models").len(),
        1,
        "discovery ran once"
    );
    let again = client
        .complete(ChatRequest::user("llama3.2", "x"))
        .await
        .expect("routed");
    assert_eq!(again.model, "llama3.2");
    assert_eq!(
        fake.requests_to("/v1/models").len(),
        1,
        "discovery is cached"
    );

    let err = client
        .complete(ChatRequest::user("qwen2", "hi"))
        .await
        .expect_err("unknown model");
    match err {
        Error::NoProviderForModel {
            model, suggestions, ..
        } => {
            assert_eq!(model, "qwen2");
            assert!(
                suggestions.contains(&"qwen2.5".to_owned()),
                "{suggestions:?}"
            );
        }
        other => panic!("unexpected {other}"),
    }
    // provider:model syntax
    let resp = client
        .complete(ChatRequest::user("openai-compat:qwen2.5", "yo"))
        .await
        .expect("ok");
    assert_eq!(resp.model, "qwen2.5");
}

#[tokio::test]
async fn upstream_errors_are_typed() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new()
        .models(["fake-model"])
        .api_key("right")
        .start()
        .await;
    let client = client_for(&fake, Some("wrong")).await;
    let err = client
        .complete(ChatRequest::user("fake-model", "hi").with_provider("openai-compat"))
        .await
        .expect_err("401");
    assert!(matches!(err, Error::MissingAuth { .. }), "{err}");
    assert!(
        !err.to_string().contains("wrong"),
        "no secret in message: {err}"
    );

    let fake = FakeOpenAi::new().models(["fake-model"]).start().await;
    let client = client_for(&fake, None).await;
    fake.inject("/v1/chat/completions", Fault::rate_limited("600"));
    let err = client
        .complete(ChatRequest::user("fake-model", "hi").with_provider("openai-compat"))
        .await
        .expect_err("429");
    assert!(
        matches!(err, Error::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 600),
        "{err}"
    );

    fake.inject("/v1/chat/completions", Fault::StallAfter { chunks: 1 });
    let started = std::time::Instant::now();
    let (chunks, err) =
        drain(client.chat(ChatRequest::user("fake-model", "hi").with_provider("openai-compat")))
            .await;
    assert!(
        matches!(
            err,
            Some(Error::Timeout {
                phase: llmux::TimeoutPhase::Idle,
                ..
            })
        ),
        "{err:?} {chunks:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));

    fake.inject(
        "/v1/chat/completions",
        Fault::Malformed("data: {not json\n\n".into()),
    );
    let err = client
        .complete(ChatRequest::user("fake-model", "hi").with_provider("openai-compat"))
        .await
        .expect_err("malformed");
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
}

#[tokio::test]
async fn generates_images() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new().models(["dall-e-3"]).start().await;
    let client = Client::builder()
        .ignore_env()
        .provider(
            "openai-compat",
            ProviderConfig::default()
                .with_base_url(fake.url("/v1"))
                .with_option("image_models", serde_json::json!(["dall-e-3"])),
        )
        .build()
        .expect("client");
    let resp = client
        .complete(ChatRequest::user("dall-e-3", "a red cat"))
        .await
        .expect("image");
    assert_eq!(resp.images.len(), 1);
    assert_eq!(resp.images[0].alt, "a red cat");
    let body = fake.requests_to("/v1/images/generations")[0]
        .json()
        .expect("json");
    assert_eq!(body["prompt"], "a red cat");
    assert_eq!(body["model"], "dall-e-3");
}

#[tokio::test]
async fn unknown_model_on_the_server_is_model_not_supported() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new().models(["fake-model"]).start().await;
    let client = client_for(&fake, None).await;
    let err = client
        .complete(ChatRequest::user("openai-compat:other-model", "hi"))
        .await
        .expect_err("404");
    assert!(
        matches!(&err, Error::ModelNotSupported { model, .. } if model == "other-model"),
        "{err}"
    );
}

/// A server whose model discovery fails (llama.cpp's `/v1/models` blocks while it generates) is
/// still tried for a model it may serve, instead of "no provider serves model X".
#[tokio::test]
async fn failed_discovery_does_not_hide_the_server() {
    let _shared = llmux_e2e::shared().await;
    let fake = FakeOpenAi::new()
        .models(Vec::<String>::new())
        .echo()
        .start()
        .await;
    fake.inject_times("/v1/models", Fault::status(500), 100);
    let client = client_for(&fake, None).await;
    let resp = client
        .complete(ChatRequest::user("local-model", "hi"))
        .await
        .expect("tried despite failed discovery");
    assert_eq!(resp.text, "echo: hi");
    assert_eq!(resp.provider, "openai-compat");
    assert!(
        !fake.requests_to("/v1/models").is_empty(),
        "discovery was tried"
    );
}
