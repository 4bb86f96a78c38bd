//! AmigoChat against the testkit fake, directly and through the facade.

use std::time::{Duration, Instant};

use llmux::core::futures_util::StreamExt;
use llmux::core::http::{HttpClient, HttpConfig, Proxy};
use llmux::core::{Context, MediaData};
use llmux::{
    ChatRequest, Chunk, Client, Error, FinishReason, Image, Message, Provider, ProviderConfig,
    Registration, Timeouts,
};
use llmux_provider_amigochat::{AmigoChat, NAME};
use llmux_testkit::amigochat::{BALANCE_MESSAGE, FakeAmigoChat, is_uuid};
use llmux_testkit::chat::texts;
use llmux_testkit::{FakeServer, Fault, RecordedRequest, chat};
use serde_json::{Value, json};

const CHAT: &str = "/v1/chat/completions";
const IMAGES: &str = "/v1/images/generations";

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(5),
        idle: Duration::from_secs(5),
        total: Duration::from_secs(20),
    }
}

fn ours() -> Vec<&'static Registration> {
    llmux_testkit::chat::registrations(&[NAME])
}

fn client_with(config: ProviderConfig) -> Client {
    Client::builder()
        .registrations(ours())
        .ignore_env()
        .proxy(Proxy::Direct)
        .timeouts(timeouts())
        .provider(NAME, config)
        .build()
        .expect("client")
}

fn client(server: &FakeServer) -> Client {
    client_with(ProviderConfig::default().with_base_url(server.url("")))
}

fn provider(server: &FakeServer) -> AmigoChat {
    AmigoChat::new(ProviderConfig::named(NAME).with_base_url(server.url("")))
}

fn ctx() -> Context {
    let http = HttpClient::new(HttpConfig {
        proxy: Proxy::Direct,
        timeouts: timeouts(),
        ..HttpConfig::default()
    })
    .expect("http client");
    Context::new(http)
}

/// Runs the provider directly: every chunk until the end or the first error.
async fn run(p: &AmigoChat, req: ChatRequest) -> (Vec<Chunk>, Option<Error>) {
    chat::drain(p.chat(req, ctx())).await
}

fn named(model: &str, messages: Vec<Message>) -> ChatRequest {
    ChatRequest::new(model, messages).with_provider(NAME)
}

fn body(r: &RecordedRequest) -> Value {
    r.json().expect("json body")
}

#[tokio::test]
async fn streamed_chat_through_the_facade() {
    let server = FakeAmigoChat::new()
        .reply("Hi there!")
        .chunks(2)
        .start()
        .await;
    let client = client(&server);
    let mut stream = client.chat(named("gpt-4o-mini", vec![Message::user("Say hi")]));
    let mut chunks = Vec::new();
    while let Some(c) = stream.next().await {
        chunks.push(c.expect("chunk"));
    }
    assert!(
        matches!(&chunks[0], Chunk::Provider(p) if p.provider == NAME && p.model == "gpt-4o-mini")
    );
    assert_eq!(texts(&chunks), ["Hi th", "ere!"]);
    assert_eq!(chunks.last(), Some(&Chunk::Finish(FinishReason::Stop)));

    let reqs = server.requests_to(CHAT);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    for (k, v) in [
        ("accept", "*/*"),
        ("accept-language", "en-US,en;q=0.9"),
        ("authorization", "Bearer"),
        ("cache-control", "no-cache"),
        ("content-type", "application/json"),
        ("origin", "https://amigochat.io/chat/"),
        ("pragma", "no-cache"),
        ("priority", "u=1, i"),
        ("referer", "https://amigochat.io/chat//"),
        (
            "sec-ch-ua",
            "\"Chromium\";v=\"129\", \"Not=A?Brand\";v=\"8\"",
        ),
        ("sec-ch-ua-mobile", "?0"),
        ("sec-ch-ua-platform", "\"Linux\""),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
        ),
        ("x-device-language", "en-US"),
        ("x-device-platform", "web"),
        ("x-device-version", "1.0.45"),
    ] {
        assert_eq!(r.header(k), Some(v), "header {k}");
    }
    assert!(r.header("x-device-uuid").is_some_and(is_uuid));
    let chat_id = body(r)["chatId"].as_str().expect("chatId").to_owned();
    assert!(is_uuid(&chat_id));
    assert_eq!(
        r.body_text(),
        format!(
            r#"{{"chatId":"{chat_id}","frequency_penalty":0,"max_tokens":4000,"messages":[{{"role":"user","content":"Say hi"}}],"model":"gpt-4o-mini","personaId":"amigo","presence_penalty":0,"stream":true,"temperature":0.5,"top_p":0.95}}"#
        )
    );
}

#[tokio::test]
async fn g4f_name_history_and_sampling_parameters() {
    let server = FakeAmigoChat::new().echo().start().await;
    let client = client(&server);
    let req = ChatRequest::new(
        "claude-3.5-sonnet",
        vec![
            Message::system("Be brief."),
            Message::user("Hi"),
            Message::assistant("Hello!"),
            Message::user("Tell me a joke"),
        ],
    )
    .with_provider("AmigoChat")
    .with_temperature(0.2)
    .with_top_p(0.5)
    .with_max_tokens(64)
    .with_stream(false);
    let resp = client.complete(req).await.expect("complete");
    assert_eq!(resp.text, "echo: Tell me a joke");
    assert_eq!(resp.provider, NAME);
    let b = body(&server.requests_to(CHAT)[0]);
    assert_eq!(b["model"], "claude-3-5-sonnet-20241022");
    assert_eq!(b["personaId"], "clude-claude-3-5-sonnet-20241022");
    assert_eq!(b["stream"], false);
    assert_eq!(b["temperature"], 0.2);
    assert_eq!(b["top_p"], 0.5);
    assert_eq!(b["max_tokens"], 64);
    assert_eq!(b["frequency_penalty"], 0);
    assert_eq!(
        b["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Tell me a joke"},
        ])
    );
}

#[tokio::test]
async fn aliases_map_to_models_and_personas() {
    let server = FakeAmigoChat::new().reply("ok").start().await;
    let p = provider(&server);
    for (asked, model, persona) in [
        ("gpt-4o", "gpt-4o-2024-11-20", "gpt"),
        ("", "gpt-4o-mini", "amigo"),
        (
            "llama-3.1-405b",
            "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo",
            "llama-three-point-one",
        ),
        (
            "mixtral-7b",
            "mistralai/Mistral-7B-Instruct-v0.3",
            "mistralai-Mistral-7B-Instruct-v0.1",
        ),
        ("x-ai/grok-beta", "x-ai/grok-beta", "x-ai-grok-beta"),
    ] {
        server.clear_requests();
        let (chunks, err) = run(&p, ChatRequest::user(asked, "hi")).await;
        assert!(err.is_none(), "{asked}: {err:?}");
        assert_eq!(texts(&chunks).concat(), "ok");
        let b = body(&server.requests_to(CHAT)[0]);
        assert_eq!(
            (b["model"].as_str(), b["personaId"].as_str()),
            (Some(model), Some(persona))
        );
    }
    server.clear_requests();
    let (_, err) = run(&p, ChatRequest::user("gpt-5", "hi")).await;
    assert!(matches!(err, Some(Error::ModelNotSupported { ref model, .. }) if model == "gpt-5"));
    assert_eq!(server.request_count(), 0, "no request for an unknown model");
}

#[tokio::test]
async fn image_generation_yields_urls_with_prompt_as_alt() {
    let server = FakeAmigoChat::new()
        .image_urls(["https://cdn.amigochat.io/img/abc123.webp"])
        .start()
        .await;
    let client = client(&server);
    let resp = client
        .complete(named(
            "flux-dev",
            vec![Message::user("a lighthouse at dusk")],
        ))
        .await
        .expect("image");
    assert_eq!(
        resp.images,
        vec![Image {
            data: MediaData::Url("https://cdn.amigochat.io/img/abc123.webp".into()),
            alt: "a lighthouse at dusk".into(),
            needs_auth: false,
        }]
    );
    assert_eq!(resp.text, "");
    let reqs = server.requests_to(IMAGES);
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].body_text(),
        r#"{"prompt":"a lighthouse at dusk","model":"flux/dev","personaId":"flux-dev"}"#
    );
    assert_eq!(reqs[0].header("authorization"), Some("Bearer"));
    assert!(server.requests_to(CHAT).is_empty());

    // an explicit prompt wins over the last message
    let resp = client
        .complete(named("dall-e-3", vec![Message::user("ignored")]).with_prompt("a red fox"))
        .await
        .expect("image");
    assert_eq!(resp.images[0].alt, "a red fox");
    assert_eq!(
        body(&server.requests_to(IMAGES)[1]),
        json!({"prompt": "a red fox", "model": "dall-e-3", "personaId": "dalle-three"})
    );
}

#[tokio::test]
async fn image_retry_after_server_error_uses_a_fresh_device() {
    let server = FakeAmigoChat::new()
        .fail_first(1, 500, "upstream timeout")
        .start()
        .await;
    let (chunks, err) = run(
        &provider(&server),
        ChatRequest::user("flux-dev", "a lighthouse at dusk"),
    )
    .await;
    assert!(err.is_none(), "{err:?}");
    assert!(
        matches!(&chunks[..], [Chunk::Images(i)] if i.len() == 1 && i[0].alt == "a lighthouse at dusk")
    );
    let reqs = server.requests_to(IMAGES);
    assert_eq!(reqs.len(), 2);
    assert_ne!(
        reqs[0].header("x-device-uuid"),
        reqs[1].header("x-device-uuid")
    );
    assert_eq!(reqs[0].body, reqs[1].body);
}

#[tokio::test]
async fn retries_before_the_first_token_with_fresh_ids() {
    let server = FakeAmigoChat::new().reply("Hi there!").start().await;
    server.inject_times(CHAT, Fault::status(500), 1);
    // the second attempt dies after the role-only delta: nothing was emitted, so retry again
    server.inject(CHAT, Fault::DisconnectAfter { chunks: 1 });
    let (chunks, err) = run(&provider(&server), ChatRequest::user("gpt-4o-mini", "hi")).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(texts(&chunks).concat(), "Hi there!");
    let reqs = server.requests_to(CHAT);
    assert_eq!(reqs.len(), 3);
    let devices: Vec<_> = reqs
        .iter()
        .map(|r| r.header("x-device-uuid").expect("uuid").to_owned())
        .collect();
    let chats: Vec<_> = reqs
        .iter()
        .map(|r| body(r)["chatId"].as_str().expect("id").to_owned())
        .collect();
    for list in [&devices, &chats] {
        assert!(
            list[0] != list[1] && list[1] != list[2] && list[0] != list[2],
            "{list:?}"
        );
    }
}

#[tokio::test]
async fn gives_up_after_three_attempts() {
    let server = FakeAmigoChat::new()
        .fail_first(10, 500, "upstream timeout")
        .start()
        .await;
    let err = client(&server)
        .complete(named("gpt-4o-mini", vec![Message::user("hi")]))
        .await
        .expect_err("must fail");
    assert!(
        matches!(&err, Error::HttpStatus { status: 500, message, provider } if message == "upstream timeout" && provider == NAME),
        "{err:?}"
    );
    assert_eq!(server.requests_to(CHAT).len(), 3);
}

#[tokio::test]
async fn no_retry_after_the_first_token() {
    let server = FakeAmigoChat::new()
        .reply("Hi there!")
        .chunks(2)
        .start()
        .await;
    // role delta + "Hi th", then the connection dies
    server.inject(CHAT, Fault::DisconnectAfter { chunks: 2 });
    let (chunks, err) = run(&provider(&server), ChatRequest::user("gpt-4o-mini", "hi")).await;
    assert_eq!(texts(&chunks), ["Hi th"]);
    assert!(
        matches!(err, Some(Error::Connect { .. } | Error::Protocol { .. })),
        "{err:?}"
    );
    assert_eq!(server.requests_to(CHAT).len(), 1);

    // the same through the facade: partial output, then the error, no second request
    server.clear_requests();
    server.inject(CHAT, Fault::DisconnectAfter { chunks: 2 });
    let mut stream = client(&server).chat(named("gpt-4o-mini", vec![Message::user("hi")]));
    let mut text = String::new();
    let mut failed = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(Chunk::Text(t)) => text.push_str(&t),
            Ok(_) => {}
            Err(_) => failed = true,
        }
    }
    assert!(failed);
    assert_eq!(text, "Hi th");
    assert_eq!(server.requests_to(CHAT).len(), 1);
}

#[tokio::test]
async fn rate_limits_honour_retry_after() {
    let server = FakeAmigoChat::new().reply("ok").start().await;
    let p = provider(&server);
    server.inject(CHAT, Fault::rate_limited("1"));
    let started = Instant::now();
    let (chunks, err) = run(&p, ChatRequest::user("gpt-4o-mini", "hi")).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(texts(&chunks).concat(), "ok");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests_to(CHAT).len(), 2);

    // a Retry-After longer than llmux waits inline: no retry, the caller gets the typed error
    server.clear_requests();
    server.inject(CHAT, Fault::rate_limited("120"));
    let started = Instant::now();
    let (_, err) = run(&p, ChatRequest::user("gpt-4o-mini", "hi")).await;
    assert!(
        matches!(err, Some(Error::RateLimited { retry_after: Some(d), .. }) if d == Duration::from_secs(120)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.requests_to(CHAT).len(), 1);
}

#[tokio::test]
async fn balance_errors_are_rate_limits_after_three_attempts() {
    let server = FakeAmigoChat::new().start().await;
    let err = client(&server)
        .complete(named("gemini-1.5-pro", vec![Message::user("hi")]))
        .await
        .expect_err("balance");
    assert!(
        matches!(&err, Error::RateLimited { message, .. } if message == BALANCE_MESSAGE),
        "{err:?}"
    );
    assert_eq!(server.requests_to(CHAT).len(), 3);
}

#[tokio::test]
async fn automatic_routing_skips_the_provider() {
    let server = FakeAmigoChat::new().reply("ok").start().await;
    let client = client(&server);
    assert!(!client.provider(NAME).expect("registered").info().working);
    for model in ["flux-realism", "x-ai/grok-beta"] {
        let err = client
            .complete(ChatRequest::user(model, "hi"))
            .await
            .expect_err("not routed");
        assert!(
            matches!(&err, Error::NoProviderForModel { model: m, .. } if m == model),
            "{err:?}"
        );
    }
    assert_eq!(server.request_count(), 0);

    // enabled in its configuration, routing uses it
    let mut config = ProviderConfig::default().with_base_url(server.url(""));
    config.enabled = Some(true);
    let resp = client_with(config)
        .complete(ChatRequest::user("x-ai/grok-beta", "hi"))
        .await
        .expect("routed when enabled");
    assert_eq!(resp.text, "ok");
}

#[tokio::test]
async fn origin_comes_from_the_environment_lookup() {
    let server = FakeAmigoChat::new().reply("ok").start().await;
    for base in [server.url(""), server.url("/v1/")] {
        let cfg = ProviderConfig::from_lookup(NAME, &[], |k| {
            (k == "LLMUX_AMIGOCHAT_BASE_URL").then(|| base.clone())
        });
        let (chunks, err) = run(&AmigoChat::new(cfg), ChatRequest::user("", "hi")).await;
        assert!(err.is_none(), "{base}: {err:?}");
        assert_eq!(texts(&chunks).concat(), "ok");
    }
    assert_eq!(server.requests_to(CHAT).len(), 2);
}

#[tokio::test]
async fn malformed_stream_data_is_a_protocol_error() {
    let server = FakeAmigoChat::new().start().await;
    // every attempt gets a broken stream: the error surfaces after three attempts
    server.inject_times(
        CHAT,
        Fault::Malformed(llmux::core::bytes::Bytes::from_static(
            b"data: {not json\n\n",
        )),
        3,
    );
    let (chunks, err) = run(&provider(&server), ChatRequest::user("", "hi")).await;
    assert!(texts(&chunks).is_empty());
    assert!(
        matches!(&err, Some(Error::Protocol { snippet, .. }) if snippet.contains("{not json")),
        "{err:?}"
    );
    assert_eq!(server.requests_to(CHAT).len(), 3);
}

#[tokio::test]
async fn completion_style_text_chunks_are_read() {
    let server = FakeAmigoChat::new().start().await;
    let sse = llmux_testkit::Reply::sse([
        json!({"choices": [{"index": 0, "text": "Hi"}]}),
        json!({"choices": [{"index": 0, "text": " there"}]}),
        json!({"choices": []}),
    ])
    .push_chunk(Duration::ZERO, "data: [DONE]\n\n");
    server.inject(CHAT, Fault::Reply(sse));
    let (chunks, err) = run(&provider(&server), ChatRequest::user("", "hi")).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(texts(&chunks), ["Hi", " there"]);
}
