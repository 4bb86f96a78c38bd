//! FlowGpt against the testkit fake, directly and through the facade.

use std::sync::Arc;
use std::time::Duration;

use llmux::core::bytes::Bytes;
use llmux::core::http::Proxy;
use llmux::{
    ChatRequest, Client, Content, ContentPart, Error, Media, Message, ProviderConfig, Registration,
    Timeouts,
};
use llmux_provider_flowgpt::{FixedSigner, FlowGpt, NAME};
use llmux_testkit::flowgpt::{self as fake, FakeFlowGpt, event_line, rate_limited_page};
use llmux_testkit::{FakeServer, Fault, Reply, chat};
use serde_json::{Value, json};

const PATH: &str = "/v3/chat-anonymous";

fn ours() -> Vec<&'static Registration> {
    llmux_testkit::chat::registrations(&[NAME])
}

fn builder() -> llmux::ClientBuilder {
    Client::builder()
        .ignore_env()
        .proxy(Proxy::Direct)
        .timeouts(Timeouts {
            connect: Duration::from_secs(2),
            first_byte: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            total: Duration::from_secs(20),
        })
}

/// A client with the registered provider (real clock and randomness) pointed at `server`.
fn client(server: &FakeServer) -> Client {
    builder()
        .registrations(ours())
        .provider(
            NAME,
            ProviderConfig::default().with_base_url(server.url("")),
        )
        .build()
        .expect("client")
}

fn transcript_signer() -> FixedSigner {
    FixedSigner {
        unix_time: 1_714_000_000,
        nonce: "9f86d081884c7d659a2feaa0c55ad015".into(),
        device_id: "f-k3j9x0q2m8v7b1n5c4z".into(),
    }
}

/// A client whose only provider is a FlowGpt signing with fixed inputs.
fn fixed_client(server: &FakeServer) -> Client {
    let p = FlowGpt::with_signer(
        ProviderConfig::named(NAME).with_base_url(server.url("")),
        Arc::new(transcript_signer()),
    );
    builder()
        .registrations(vec![])
        .with_provider(Arc::new(p))
        .build()
        .expect("client")
}

fn named(model: &str, messages: Vec<Message>) -> ChatRequest {
    ChatRequest::new(model, messages).with_provider(NAME)
}

async fn texts(client: &Client, req: ChatRequest) -> (Vec<String>, Option<Error>) {
    let (chunks, error) = chat::drain(client.chat(req)).await;
    let texts = chat::texts(&chunks)
        .into_iter()
        .map(str::to_owned)
        .collect();
    (texts, error)
}

fn body(server: &FakeServer, i: usize) -> Value {
    server.requests_to(PATH)[i].json().expect("json body")
}

#[tokio::test]
async fn transcript_with_system_message_and_history() {
    let server = FakeFlowGpt::new()
        .reply("Je vais bien, merci !")
        .chunks(2)
        .start()
        .await;
    let client = fixed_client(&server);
    let messages = vec![
        Message::system("Answer in French."),
        Message::user("Hi"),
        Message::assistant("Bonjour !"),
        Message::user("How are you?"),
    ];
    let (out, err) = texts(&client, named("gemini", messages)).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(out, ["Je vais bie", "n, merci !"]);

    let reqs = server.requests_to(PATH);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    for (k, v) in [
        ("authorization", "Bearer null"),
        ("content-type", "application/json"),
        ("x-flow-device-id", "f-k3j9x0q2m8v7b1n5c4z"),
        ("x-nonce", "9f86d081884c7d659a2feaa0c55ad015"),
        ("x-timestamp", "1714000000"),
        ("x-signature", "8665df1a193a76960370763fb6ec50f9"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0",
        ),
        ("accept", "*/*"),
        ("accept-language", "en-US;q=0.7,en;q=0.3"),
        ("accept-encoding", "gzip, deflate, br"),
        ("referer", "https://flowgpt.com/"),
        ("origin", "https://flowgpt.com"),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-site", "same-site"),
        ("te", "trailers"),
    ] {
        assert_eq!(r.header(k), Some(v), "header {k}");
    }
    assert_eq!(
        r.body_text(),
        r#"{"model":"google-gemini","nsfw":false,"question":"How are you?","history":[{"role":"assistant","content":"Hello, how can I help you today?"},{"role":"user","content":"Hi"},{"role":"assistant","content":"Bonjour !"}],"system":"Answer in French.","temperature":0.7,"promptId":"model-google-gemini","documentIds":[],"chatFileDocumentIds":[],"generateImage":false,"generateAudio":false}"#
    );
}

#[tokio::test]
async fn real_signer_passes_the_signature_check_with_fresh_values() {
    let server = FakeFlowGpt::new()
        .echo()
        .max_clock_skew(Duration::from_secs(300))
        .start()
        .await;
    let client = client(&server);
    for _ in 0..2 {
        let resp = client
            .complete(named("", vec![Message::user("ping")]))
            .await
            .expect("signed request accepted");
        assert_eq!(resp.text, "echo: ping");
        assert_eq!(resp.provider, NAME);
    }
    let reqs = server.requests_to(PATH);
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        let (ts, nonce) = (
            r.header("x-timestamp").expect("ts"),
            r.header("x-nonce").expect("nonce"),
        );
        assert_eq!(
            r.header("x-signature"),
            Some(fake::signature(ts, nonce).as_str())
        );
    }
    assert_ne!(reqs[0].header("x-nonce"), reqs[1].header("x-nonce"));
    assert_ne!(
        reqs[0].header("x-flow-device-id"),
        reqs[1].header("x-flow-device-id")
    );
    assert_eq!(body(&server, 0)["model"], "gpt-3.5-turbo");
    assert_eq!(body(&server, 0)["promptId"], "model-gpt-3.5-turbo");
}

#[tokio::test]
async fn a_clock_checking_upstream_refuses_stale_signatures() {
    let server = FakeFlowGpt::new().start().await;
    // a clock-checking upstream refuses the transcript's 2024 timestamp
    let strict = FakeFlowGpt::new()
        .max_clock_skew(Duration::from_secs(300))
        .start()
        .await;
    let err = fixed_client(&strict)
        .complete(named("", vec![Message::user("hi")]))
        .await
        .expect_err("stale");
    assert!(
        matches!(&err, Error::MissingAuth { help, .. } if help.contains("Request expired")),
        "{err:?}"
    );
    // while the lenient one accepts it
    let resp = fixed_client(&server)
        .complete(named("", vec![Message::user("hi")]))
        .await
        .expect("ok");
    assert_eq!(resp.text, "Hello from the fake FlowGPT!");
}

#[tokio::test]
async fn history_and_system_mapping() {
    let server = FakeFlowGpt::new().reply("ok").start().await;
    let client = fixed_client(&server);

    // no system message: the default prompt; the question is the last message, verbatim
    let parts = Content::Parts(vec![ContentPart::Text {
        text: "look".into(),
    }]);
    let req = named(
        "claude-v2",
        vec![
            Message::user("first"),
            Message::assistant("answer"),
            Message::new(llmux::Role::User, parts),
        ],
    )
    .with_temperature(0.2)
    .with_stream(false);
    let (out, err) = texts(&client, req).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(out.concat(), "ok");
    let b = body(&server, 0);
    assert_eq!(
        b["system"],
        "You are helpful assistant. Follow the user's instructions carefully."
    );
    assert_eq!(b["question"], json!([{"type": "text", "text": "look"}]));
    assert_eq!(
        b["history"],
        json!([
            {"role": "assistant", "content": "Hello, how can I help you today?"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "answer"},
        ])
    );
    assert_eq!(b["temperature"], 0.2);
    assert_eq!(b["model"], "claude-v2");

    // several system messages are joined; system messages never enter the history; the last
    // message is the question even when it is not from the user
    let req = named(
        "gemini-pro",
        vec![
            Message::system("One."),
            Message::user("u"),
            Message::system("Two."),
            Message::assistant("a"),
        ],
    );
    let (_, err) = texts(&client, req).await;
    assert!(err.is_none(), "{err:?}");
    let b = body(&server, 1);
    assert_eq!(b["system"], "One.\nTwo.");
    assert_eq!(b["question"], "a");
    assert_eq!(b["model"], "google-gemini");
    assert_eq!(
        b["history"],
        json!([
            {"role": "assistant", "content": "Hello, how can I help you today?"},
            {"role": "user", "content": "u"},
        ])
    );
}

#[tokio::test]
async fn rate_limit_page_is_a_typed_error() {
    let server = FakeFlowGpt::new().start().await;
    server.inject(PATH, Fault::Reply(rate_limited_page()));
    let err = client(&server)
        .complete(named("", vec![Message::user("hi")]))
        .await
        .expect_err("rate limited");
    assert!(
        matches!(&err, Error::RateLimited { provider, .. } if provider == NAME),
        "{err:?}"
    );
    assert_eq!(server.requests_to(PATH).len(), 1, "FlowGpt does not retry");
}

#[tokio::test]
async fn other_events_are_ignored_and_malformed_lines_are_errors() {
    let server = FakeFlowGpt::new().start().await;
    let lines = [
        event_line("text", "Hello"),
        Bytes::from_static(b"\n{\"status\":\"typing\"}\n"),
        event_line("meta", "ignored"),
        event_line("text", " world"),
        event_line("done", ""),
    ];
    server.inject(
        PATH,
        Fault::Reply(Reply::chunked("application/x-ndjson", lines)),
    );
    let client = client(&server);
    let (out, err) = texts(&client, named("", vec![Message::user("hi")])).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(out, ["Hello", " world"]);

    let broken = [
        event_line("text", "Hel"),
        Bytes::from_static(b"<html>oops</html>\n"),
    ];
    server.inject(
        PATH,
        Fault::Reply(Reply::chunked("application/x-ndjson", broken)),
    );
    let (out, err) = texts(&client, named("", vec![Message::user("hi")])).await;
    assert_eq!(out, ["Hel"]);
    assert!(
        matches!(&err, Some(Error::Protocol { snippet, provider, .. }) if snippet.contains("<html>oops") && provider == NAME),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_requests_send_nothing() {
    let server = FakeFlowGpt::new().start().await;
    let client = client(&server);
    let err = client
        .complete(named("gpt-5", vec![Message::user("hi")]))
        .await
        .expect_err("unknown model");
    assert!(matches!(err, Error::ModelNotSupported { .. }), "{err:?}");
    let err = client
        .complete(
            named("", vec![Message::user("hi")])
                .with_media(Media::from_bytes(&b"\x89PNG\r\n\x1a\n"[..], None)),
        )
        .await
        .expect_err("media");
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    let err = client.complete(named("", vec![])).await.expect_err("empty");
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn automatic_routing_skips_the_provider() {
    let server = FakeFlowGpt::new().reply("ok").start().await;
    let client = client(&server);
    for model in ["Dolphin-2.6-8x7B", "mythalion-13b"] {
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
    // named by its g4f name, it answers
    let resp = client
        .complete(ChatRequest::user("Dolphin-2.6-8x7B", "hi").with_provider("FlowGpt"))
        .await
        .expect("named");
    assert_eq!(resp.text, "ok");
}

#[tokio::test]
async fn origin_comes_from_the_environment_lookup() {
    let server = FakeFlowGpt::new().reply("ok").start().await;
    let url = server.url("");
    let cfg = ProviderConfig::from_lookup(NAME, &[], |k| {
        (k == "LLMUX_FLOWGPT_BASE_URL").then(|| url.clone())
    });
    let client = builder()
        .registrations(vec![])
        .with_provider(Arc::new(FlowGpt::new(cfg)))
        .build()
        .expect("client");
    let resp = client
        .complete(named("", vec![Message::user("hi")]))
        .await
        .expect("ok");
    assert_eq!(resp.text, "ok");
}
