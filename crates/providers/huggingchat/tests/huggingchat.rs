//! HuggingChat provider against the testkit's fake chat-ui, directly and through the facade.

use std::time::Duration;

use llmux::core::http::{HttpClient, HttpConfig, Proxy};
use llmux::{
    ChatRequest, Chunk, Client, Content, ContentPart, Conversation, Cookies, Error, FinishReason,
    ImageUrl, Media, MediaData, Message, Provider, ProviderConfig, Reasoning, Source, Timeouts,
};
use llmux_provider_huggingchat::{HuggingChat, IMAGE_TOOL_ID, NAME};
use llmux_testkit::chat::text_of;
use llmux_testkit::huggingchat::{DEFAULT_COOKIE, FakeHuggingChat, FakeModel, parse_multipart};
use llmux_testkit::openai::TINY_PNG;
use llmux_testkit::{FakeServer, Fault, RecordedRequest, Reply, chat};
use serde_json::{Value, json};

const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    first_byte: Duration::from_secs(5),
    idle: Duration::from_secs(5),
    total: Duration::from_secs(10),
};

fn cookies() -> Cookies {
    Cookies::parse(&format!("hf-chat={DEFAULT_COOKIE}; token=other"))
}

fn config(base: &str) -> ProviderConfig {
    ProviderConfig::default()
        .with_base_url(base)
        .with_cookies(cookies())
}

fn client_with(cfg: ProviderConfig) -> Client {
    Client::builder()
        .ignore_env()
        .timeouts(TIMEOUTS)
        .provider(NAME, cfg)
        .build()
        .expect("client")
}

fn client(server: &FakeServer) -> Client {
    client_with(config(&server.url("/chat")))
}

fn request(model: &str, messages: Vec<Message>) -> ChatRequest {
    ChatRequest::new(model, messages).with_provider(NAME)
}

async fn run(client: &Client, req: ChatRequest) -> (Vec<Chunk>, Option<Error>) {
    chat::drain(client.chat(req)).await
}

/// The `data` JSON and the file parts of a recorded message post.
fn posted(req: &RecordedRequest) -> (String, Vec<llmux_testkit::huggingchat::FormPart>) {
    let parts = parse_multipart(req.header("content-type").unwrap_or_default(), &req.body)
        .expect("multipart");
    let data = parts
        .iter()
        .find(|p| p.name == "data")
        .map(|p| String::from_utf8_lossy(&p.data).into_owned())
        .expect("data part");
    let files = parts.into_iter().filter(|p| p.name == "files").collect();
    (data, files)
}

fn message_posts(server: &FakeServer) -> Vec<RecordedRequest> {
    server
        .requests_to("/chat/conversation/{id}")
        .into_iter()
        .filter(|r| r.method == llmux_testkit::Method::POST)
        .collect()
}

#[tokio::test]
async fn first_turn_with_web_search_title_and_sources() {
    let fake = FakeHuggingChat::new()
        .reply("Frank Herbert.")
        .chunks(2)
        .title("Author of Dune");
    let server = fake.start().await;
    let client = client(&server);
    let (chunks, err) = run(
        &client,
        request("", vec![Message::user("Who wrote Dune?")]).with_web_search(true),
    )
    .await;
    assert!(err.is_none(), "{err:?}");

    let conv = &fake.conversations()[0];
    let root = conv.messages[0].id.clone();
    assert_eq!(conv.model, "Qwen/Qwen2.5-72B-Instruct");
    let state = json!({"huggingchat": {"models": {"Qwen/Qwen2.5-72B-Instruct": {"conversationId": conv.id, "messageId": root}}}});
    assert!(matches!(&chunks[0], Chunk::Provider(p) if p.provider == NAME));
    assert_eq!(
        chunks[1..].to_vec(),
        vec![
            Chunk::Conversation(Conversation(state)),
            Chunk::Title("Author of Dune".into()),
            Chunk::text("Frank H"),
            Chunk::text("erbert."),
            Chunk::Sources(vec![Source {
                url: "https://en.wikipedia.org/wiki/Dune_(novel)".into(),
                title: "Dune (novel) - Wikipedia".into()
            }]),
            Chunk::Finish(FinishReason::Stop),
        ]
    );

    // The wire, as in the spec's transcript: page, create, __data.json, multipart post.
    let sequence: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        sequence,
        [
            "GET /chat".to_owned(),
            "POST /chat/conversation".to_owned(),
            format!("GET /chat/conversation/{}/__data.json", conv.id),
            format!("POST /chat/conversation/{}", conv.id),
        ]
    );
    let create = &server.requests_to("/chat/conversation")[0];
    assert_eq!(
        create.json().expect("json"),
        json!({"model": "Qwen/Qwen2.5-72B-Instruct"})
    );
    assert_eq!(
        create.header("cookie"),
        Some(format!("hf-chat={DEFAULT_COOKIE}; token=other").as_str())
    );
    let data = &server.requests_to("/chat/conversation/{id}/__data.json")[0];
    assert_eq!(data.query.as_deref(), Some("x-sveltekit-invalidated=11"));
    let post = &message_posts(&server)[0];
    assert_eq!(post.path, format!("/chat/conversation/{}", conv.id));
    assert_eq!(post.header("accept"), Some("*/*"));
    assert_eq!(post.header("origin"), Some(server.url("").as_str()));
    assert_eq!(
        post.header("referer"),
        Some(
            server
                .url(&format!("/chat/conversation/{}", conv.id))
                .as_str()
        )
    );
    let (data, files) = posted(post);
    assert_eq!(
        data,
        format!(
            r#"{{"inputs":"Who wrote Dune?","id":"{root}","is_retry":false,"is_continue":false,"web_search":true,"tools":[]}}"#
        )
    );
    assert!(files.is_empty());
}

#[tokio::test]
async fn follow_up_turn_reuses_the_conversation_and_sends_only_the_new_message() {
    let fake = FakeHuggingChat::new().echo();
    let server = fake.start().await;
    let client = client(&server);
    let history = vec![Message::system("Be brief."), Message::user("Hi")];
    let first = client
        .complete(request("qwen-2.5-72b", history.clone()))
        .await
        .expect("first turn");
    assert_eq!(first.text, "echo: System: Be brief.\nUser: Hi\nAssistant:");

    let mut next = history;
    next.push(Message::assistant(first.text.clone()));
    next.push(Message::user("And then?"));
    let second = client
        .complete(
            request("qwen-2.5-72b", next)
                .with_conversation(first.conversation.clone().expect("state")),
        )
        .await
        .expect("second turn");
    assert_eq!(second.text, "echo: And then?");

    assert_eq!(
        server.requests_to("/chat/conversation").len(),
        1,
        "no second conversation"
    );
    let conv = &fake.conversations()[0];
    assert_eq!(conv.messages.len(), 5);
    let previous_answer = &conv.messages[2];
    assert_eq!(previous_answer.from, "assistant");
    let asked = &conv.messages[3];
    assert_eq!(asked.content, "And then?");
    assert_eq!(asked.ancestors.last(), Some(&previous_answer.id));
    // The returned state carries the refreshed message id.
    let state = second.conversation.expect("state").0;
    assert_eq!(
        state["huggingchat"]["models"]["Qwen/Qwen2.5-72B-Instruct"]["messageId"],
        json!(previous_answer.id)
    );
    // A different model in the same state gets its own conversation.
    let third = client
        .complete(
            request("deepseek-r1", vec![Message::user("Think")])
                .with_conversation(Conversation(state)),
        )
        .await
        .expect("third turn");
    assert_eq!(fake.conversations().len(), 2);
    let models = &third.conversation.expect("state").0["huggingchat"]["models"];
    assert!(models.get("Qwen/Qwen2.5-72B-Instruct").is_some());
    assert!(
        models
            .get("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B")
            .is_some()
    );
}

#[tokio::test]
async fn reasoning_model_streams_reasoning_then_text() {
    let fake = FakeHuggingChat::new()
        .reply("42")
        .chunks(1)
        .reasoning("Add them.");
    let server = fake.start().await;
    let (chunks, err) = run(
        &client(&server),
        request("deepseek-r1", vec![Message::user("6*7?")]),
    )
    .await;
    assert!(err.is_none(), "{err:?}");
    let tail: Vec<Chunk> = chunks.into_iter().skip(2).collect();
    assert_eq!(
        tail,
        vec![
            Chunk::Reasoning(Reasoning::status("Thinking...")),
            Chunk::Reasoning(Reasoning::token("Add them.")),
            Chunk::Reasoning(Reasoning::status("Done")),
            Chunk::text("42"),
            Chunk::Finish(FinishReason::Stop),
        ]
    );
    assert_eq!(
        fake.conversations()[0].model,
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
    );
}

#[tokio::test]
async fn image_model_uses_the_tool_and_the_download_needs_cookies() {
    let fake = FakeHuggingChat::new().reply("Here you go.");
    let server = fake.start().await;
    let client = client(&server);
    let resp = client
        .complete(request("flux-dev", vec![Message::user("a red fox")]))
        .await
        .expect("image");
    let conv = &fake.conversations()[0];
    assert_eq!(
        conv.model, "Qwen/Qwen2.5-72B-Instruct",
        "default text model"
    );
    let (data, _) = posted(&message_posts(&server)[0]);
    let data: Value = serde_json::from_str(&data).expect("json");
    assert_eq!(data["tools"], json!([IMAGE_TOOL_ID]));
    assert_eq!(data["inputs"], json!("a red fox"));
    assert_eq!(resp.text, "Here you go.");
    assert_eq!(resp.images.len(), 1);
    let image = &resp.images[0];
    assert!(image.needs_auth);
    assert_eq!(image.alt, "a red fox");
    let MediaData::Url(url) = &image.data else {
        panic!("url expected")
    };
    assert!(
        url.starts_with(&server.url(&format!("/chat/conversation/{}/output/", conv.id))),
        "{url}"
    );
    assert!(
        resp.conversation.expect("state").0["huggingchat"]["models"]
            .get("black-forest-labs/FLUX.1-dev")
            .is_some()
    );

    let file = client.download(NAME, url).await.expect("download");
    assert_eq!(file.mime, "image/png");
    assert_eq!(&file.data[..], TINY_PNG);
    // Without the cookie the same URL is refused, as a missing-auth error.
    let anonymous = client_with(ProviderConfig::default().with_base_url(server.url("/chat")));
    let err = anonymous
        .download(NAME, url)
        .await
        .expect_err("needs cookies");
    assert!(matches!(err, Error::MissingAuth { .. }), "{err}");
    // Cookies never go to another origin.
    let other = FakeServer::start(llmux_testkit::Router::new().get("/x.png", |_| async {
        Reply::bytes(200, "image/png", TINY_PNG)
    }))
    .await;
    client
        .download(NAME, &other.url("/x.png"))
        .await
        .expect("foreign download");
    assert_eq!(other.requests()[0].header("cookie"), None);
}

#[tokio::test]
async fn media_upload_as_base64_files() {
    let fake = FakeHuggingChat::new().reply("A pixel.");
    let server = fake.start().await;
    let data_uri = format!(
        "data:image/png;base64,{}",
        llmux::core::media::b64_encode(TINY_PNG)
    );
    let message = Message::user(Content::Parts(vec![
        ContentPart::Text {
            text: "What is this?".into(),
        },
        ContentPart::ImageUrl {
            image_url: ImageUrl::new(data_uri),
        },
    ]));
    let req = request("", vec![message])
        .with_media(Media::from_bytes(TINY_PNG.to_vec(), Some("dot.png".into())));
    let resp = client(&server).complete(req).await.expect("vision");
    assert_eq!(resp.text, "A pixel.");
    // No model + media → the default vision model.
    assert_eq!(
        fake.conversations()[0].model,
        "meta-llama/Llama-3.2-11B-Vision-Instruct"
    );
    let (_, files) = posted(&message_posts(&server)[0]);
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].file_name.as_deref(), Some("base64;file.png"));
    assert_eq!(files[1].file_name.as_deref(), Some("base64;dot.png"));
    for f in &files {
        assert_eq!(f.content_type.as_deref(), Some("image/png"));
        assert_eq!(
            llmux::core::media::b64_decode(&String::from_utf8_lossy(&f.data)).expect("b64"),
            TINY_PNG
        );
    }
    let uploads = &fake.conversations()[0].messages[1].files;
    assert_eq!(uploads.len(), 2);
    assert_eq!(uploads[1].name, "dot.png");
    assert_eq!(uploads[1].data, TINY_PNG);
}

#[tokio::test]
async fn uploads_over_the_limit_get_413() {
    let fake = FakeHuggingChat::new().max_upload(16);
    let server = fake.start().await;
    let req = request("llama-3.2-11b", vec![Message::user("look")])
        .with_media(Media::from_bytes(vec![0u8; 64], Some("big.png".into())));
    let err = client(&server).complete(req).await.expect_err("too large");
    assert!(
        matches!(err, Error::HttpStatus { status: 413, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("File too large"), "{err}");
}

#[tokio::test]
async fn missing_cookies_fail_before_any_request() {
    let fake = FakeHuggingChat::new();
    let server = fake.start().await;
    let client = client_with(ProviderConfig::default().with_base_url(server.url("/chat")));
    let (chunks, err) = run(&client, request("", vec![Message::user("Hi")])).await;
    let err = err.expect("error");
    let Error::MissingAuth {
        help, login_url, ..
    } = &err
    else {
        panic!("expected MissingAuth, got {err}")
    };
    assert!(
        help.contains("`hf-chat`") && help.contains("LLMUX_HUGGINGCHAT_COOKIES"),
        "{help}"
    );
    assert_eq!(login_url.as_deref(), Some(server.url("/chat").as_str()));
    assert!(
        !chunks
            .iter()
            .any(|c| matches!(c, Chunk::LoginRequired { .. }))
    );
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn expired_cookies_give_login_required_and_missing_auth() {
    let fake = FakeHuggingChat::new().cookie("the-real-one");
    let server = fake.start().await;
    let (chunks, err) = run(&client(&server), request("", vec![Message::user("Hi")])).await;
    let err = err.expect("error");
    assert!(
        matches!(&err, Error::MissingAuth { help, .. } if help.contains("expired") && help.contains("You need to be logged in")),
        "{err}"
    );
    assert!(
        !err.to_string().contains(DEFAULT_COOKIE),
        "no secret in errors"
    );
    assert_eq!(
        chunks.last(),
        Some(&Chunk::LoginRequired {
            label: "HuggingChat".into(),
            url: server.url("/chat")
        })
    );

    // Request cookies override the configured ones.
    let req =
        request("", vec![Message::user("Hi")]).with_cookies(Cookies::parse("hf-chat=the-real-one"));
    let resp = client(&server)
        .complete(req)
        .await
        .expect("request cookies win");
    assert_eq!(resp.text, "Hello from the fake HuggingChat!");
}

#[tokio::test]
async fn data_json_error_node_403_is_missing_auth() {
    let fake = FakeHuggingChat::new();
    let server = fake.start().await;
    server.inject(
        "/chat/conversation/{id}/__data.json",
        Fault::Reply(Reply::json(200, &json!({"type":"data","nodes":[{"type":"data","data":[{}],"uses":{}},
            {"type":"error","error":{"message":"You don't have access to this conversation."},"status":403}]}))),
    );
    let err = client(&server)
        .complete(request("", vec![Message::user("Hi")]))
        .await
        .expect_err("403 node");
    assert!(
        matches!(&err, Error::MissingAuth { help, .. } if help.contains("access to this conversation")),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_data_json_is_a_protocol_error() {
    let fake = FakeHuggingChat::new();
    let server = fake.start().await;
    let client = client(&server);
    let bodies = [
        Fault::Malformed(bytes_of("{not json at all")),
        Fault::Reply(Reply::json(
            200,
            &json!({"type":"data","nodes":[null,{"type":"data","data":[{"messages":1},[7]]}]}),
        )),
        Fault::Reply(Reply::json(
            200,
            &json!({"type":"data","nodes":[null,{"type":"data","data":[{"messages":1},[0]]}]}),
        )),
        Fault::Reply(Reply::json(
            200,
            &json!({"type":"data","nodes":[null,{"type":"data","data":[{"title":1},"x"]}]}),
        )),
    ];
    for fault in bodies {
        server.inject("/chat/conversation/{id}/__data.json", fault);
        let err = client
            .complete(request("", vec![Message::user("Hi")]))
            .await
            .expect_err("malformed");
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
        assert!(err.to_string().contains("__data.json"), "{err}");
    }
    // A cyclic payload is decoded without hanging.
    server.inject(
        "/chat/conversation/{id}/__data.json",
        Fault::Reply(Reply::json(200, &json!({"type":"data","nodes":[null,{"type":"data","data":[{"messages":1,"self":0},[2,2],{"id":3,"parent":2},"cafe-1"]}]}))),
    );
    let resp = client
        .complete(request("", vec![Message::user("Hi")]))
        .await;
    // The fake does not know message `cafe-1`: the post is refused, but the id was extracted.
    assert!(
        matches!(resp, Err(Error::HttpStatus { status: 404, .. })),
        "{resp:?}"
    );
    let (data, _) = posted(message_posts(&server).last().expect("post"));
    assert!(data.contains(r#""id":"cafe-1""#), "{data}");
}

fn bytes_of(s: &str) -> llmux::core::bytes::Bytes {
    llmux::core::bytes::Bytes::from(s.to_owned())
}

#[tokio::test]
async fn error_status_lines_are_upstream_errors() {
    let fake = FakeHuggingChat::new().error_status("Model is overloaded");
    let server = fake.start().await;
    let (chunks, err) = run(&client(&server), request("", vec![Message::user("Hi")])).await;
    let err = err.expect("error");
    assert!(
        matches!(&err, Error::Upstream { message, .. } if message == "Model is overloaded"),
        "{err}"
    );
    assert!(!chunks.iter().any(|c| matches!(c, Chunk::Finish(_))));
}

#[tokio::test]
async fn broken_answer_streams() {
    let fake = FakeHuggingChat::new();
    let server = fake.start().await;
    let client = client(&server);
    let jsonl = |lines: &[&str]| {
        Fault::Reply(Reply::chunked(
            "application/jsonl",
            lines.iter().map(|l| format!("{l}\n")).collect::<Vec<_>>(),
        ))
    };
    // A line without `type`.
    server.inject(
        "/chat/conversation/{id}",
        jsonl(&[r#"{"type":"stream","token":"a"}"#, r#"{"token":"b"}"#]),
    );
    let (chunks, err) = run(&client, request("", vec![Message::user("Hi")])).await;
    assert!(
        matches!(&err, Some(Error::Protocol { message, .. }) if message.contains("without `type`")),
        "{err:?}"
    );
    assert_eq!(text_of(&chunks), "a");
    // The stream ends before `finalAnswer`; lines that are not JSON are skipped.
    server.inject(
        "/chat/conversation/{id}",
        jsonl(&[r#"{"type":"stream","token":"partial"}"#, "garbage", ""]),
    );
    let (chunks, err) = run(&client, request("", vec![Message::user("Hi")])).await;
    assert!(
        matches!(&err, Some(Error::Protocol { message, .. }) if message.contains("finalAnswer")),
        "{err:?}"
    );
    assert_eq!(text_of(&chunks), "partial");
    // Raw NUL padding around lines and the trailing whitespace block are ignored.
    server.inject(
        "/chat/conversation/{id}",
        Fault::Reply(Reply::chunked(
            "application/jsonl",
            [
                "\0\0{\"type\":\"stream\",\"token\":\"ok\\u0000\\u0000\"}\0\n".to_owned(),
                "{\"type\":\"finalAnswer\",\"text\":\"ok\"}\n".to_owned(),
                " ".repeat(4096),
            ],
        )),
    );
    let resp = client
        .complete(request("", vec![Message::user("Hi")]))
        .await
        .expect("ok");
    assert_eq!(resp.text, "ok");
    assert_eq!(resp.finish_reason, Some(FinishReason::Stop));
}

#[tokio::test]
async fn v2_routes_detected_or_configured() {
    for api in [None, Some("v2")] {
        let fake = FakeHuggingChat::new().api(false, true).echo();
        let server = fake.start().await;
        let mut cfg = config(&server.url("/chat"));
        if let Some(a) = api {
            cfg = cfg.with_option("api", json!(a));
        }
        let client = client_with(cfg);
        let first = client
            .complete(request("llama-3.2-11b", vec![Message::user("Hi")]))
            .await
            .expect("v2 first turn");
        let second = client
            .complete(
                request(
                    "llama-3.2-11b",
                    vec![
                        Message::user("Hi"),
                        Message::assistant(first.text),
                        Message::user("More"),
                    ],
                )
                .with_conversation(first.conversation.expect("state")),
            )
            .await
            .expect("v2 second turn");
        assert_eq!(second.text, "echo: More");
        assert_eq!(
            server
                .requests_to("/chat/conversation/{id}/__data.json")
                .len(),
            0
        );
        assert_eq!(
            server.requests_to("/chat/api/v2/conversations/{id}").len(),
            2
        );
        assert_eq!(server.requests_to("/chat/api/v2/models").len(), 1, "cached");
        let models = client.provider_models(NAME).await.expect("models");
        assert!(models.contains(&"deepseek-ai/DeepSeek-R1-Distill-Qwen-32B".to_owned()));
        assert!(models.contains(&"black-forest-labs/FLUX.1-schnell".to_owned()));
    }
    // Forcing v1 on a server with both generations uses `__data.json`.
    let fake = FakeHuggingChat::new().api(true, true);
    let server = fake.start().await;
    let client = client_with(config(&server.url("/chat")).with_option("api", json!("v1")));
    client
        .complete(request("", vec![Message::user("Hi")]))
        .await
        .expect("v1");
    assert_eq!(
        server
            .requests_to("/chat/conversation/{id}/__data.json")
            .len(),
        1
    );
    assert_eq!(server.requests_to("/chat/api/v2/models").len(), 0);
}

#[tokio::test]
async fn self_hosted_layouts_are_probed() {
    // chat-ui at the root of its host.
    let fake = FakeHuggingChat::new()
        .prefix("")
        .models([FakeModel::text("local/llama")])
        .echo();
    let server = fake.start().await;
    let client = client_with(config(&server.url("")));
    let resp = client
        .complete(request("", vec![Message::user("Hi")]))
        .await
        .expect("root-mounted");
    assert_eq!(resp.text, "echo: Hi");
    // The server's only model became the default.
    assert_eq!(fake.conversations()[0].model, "local/llama");
    assert_eq!(server.requests_to("/conversation").len(), 1);
    let err = client
        .complete(request("llama-3.3-70b", vec![Message::user("Hi")]))
        .await
        .expect_err("not served");
    assert!(
        matches!(err, Error::HttpStatus { status: 400, ref message, .. } if message.contains("Invalid model")),
        "{err}"
    );
    let err = client
        .complete(request("no/such-model", vec![Message::user("Hi")]))
        .await
        .expect_err("unknown");
    assert!(matches!(err, Error::ModelNotSupported { .. }), "{err}");

    // A bare origin with chat-ui under /chat (huggingface.co's layout).
    let fake = FakeHuggingChat::new();
    let server = fake.start().await;
    let client = client_with(config(&server.url("")));
    client
        .complete(request("", vec![Message::user("Hi")]))
        .await
        .expect("/chat layout");
    assert_eq!(
        server.requests_to("/chat").len(),
        1,
        "probe page reused for discovery"
    );
    assert_eq!(fake.conversations().len(), 1);
}

#[tokio::test]
async fn discovery_falls_back_to_the_static_list() {
    let fake = FakeHuggingChat::new().api(false, false);
    let server = fake.start().await;
    let provider = HuggingChat::new(config(&server.url("/chat")));
    let http = HttpClient::new(HttpConfig {
        proxy: Proxy::Direct,
        timeouts: TIMEOUTS,
        ..HttpConfig::default()
    })
    .expect("http");
    let ctx = llmux::core::Context::new(http);
    let models = provider.models(&ctx).await.expect("models");
    assert_eq!(models.len(), 12);
    assert_eq!(models[0], "Qwen/Qwen2.5-72B-Instruct");
    assert_eq!(models[11], "black-forest-labs/FLUX.1-schnell");
    // The failure is remembered for a while (core's ModelCache backoff): the next call serves
    // the static list again without hammering the upstream.
    let again = provider.models(&ctx).await.expect("models");
    assert_eq!(again.len(), 12);
    assert_eq!(server.requests_to("/chat").len(), 1);
    assert_eq!(server.requests_to("/chat/api/v2/models").len(), 1);

    // With the page literal, the discovered list is used (and cached).
    let fake = FakeHuggingChat::new();
    let server = fake.start().await;
    let provider = HuggingChat::new(config(&server.url("/chat")));
    let models = provider.models(&ctx).await.expect("models");
    assert_eq!(
        models,
        [
            "Qwen/Qwen2.5-72B-Instruct",
            "meta-llama/Llama-3.2-11B-Vision-Instruct",
            "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
            "black-forest-labs/FLUX.1-dev",
            "black-forest-labs/FLUX.1-schnell"
        ]
    );
    provider.models(&ctx).await.expect("models");
    assert_eq!(server.requests_to("/chat").len(), 1);
}

#[tokio::test]
async fn deleted_conversation_is_replaced() {
    let fake = FakeHuggingChat::new().echo();
    let server = fake.start().await;
    let client = client(&server);
    let first = client
        .complete(request("", vec![Message::user("One")]))
        .await
        .expect("first");
    fake.delete_conversation(&fake.conversations()[0].id);
    let second = client
        .complete(
            request(
                "",
                vec![
                    Message::user("One"),
                    Message::assistant(first.text),
                    Message::user("Two"),
                ],
            )
            .with_conversation(first.conversation.expect("state")),
        )
        .await
        .expect("second");
    assert_eq!(
        second.text,
        "echo: User: One\nAssistant: echo: One\nUser: Two\nAssistant:"
    );
    assert_eq!(server.requests_to("/chat/conversation").len(), 2);
}

#[tokio::test]
async fn routing_by_alias_and_g4f_name() {
    let fake = FakeHuggingChat::new().reply("hi");
    let server = fake.start().await;
    let client = client(&server);
    // No provider named: the alias routes to huggingchat (configured cookies are used).
    let resp = client
        .complete(ChatRequest::new("llama-3.2-11b", vec![Message::user("Hi")]))
        .await
        .expect("alias routing");
    assert_eq!(resp.provider, NAME);
    assert_eq!(resp.text, "hi");
    assert_eq!(
        fake.conversations()[0].model,
        "meta-llama/Llama-3.2-11B-Vision-Instruct"
    );
    let resp = client
        .complete(
            ChatRequest::new("flux-schnell", vec![Message::user("a cat")])
                .with_provider("HuggingChat"),
        )
        .await
        .expect("g4f name");
    assert_eq!(resp.images.len(), 1);
}

#[test]
fn environment_configuration() {
    let cfg = ProviderConfig::from_lookup(NAME, &[], |k| match k {
        "LLMUX_HUGGINGCHAT_COOKIES" => Some("hf-chat=abc".into()),
        "LLMUX_HUGGINGCHAT_BASE_URL" => Some("http://127.0.0.1:3000/".into()),
        _ => None,
    });
    let p = HuggingChat::new(cfg);
    assert_eq!(p.info().url, "http://127.0.0.1:3000");
    assert!(p.info().working && p.info().needs_auth);
    assert_eq!(p.info().g4f_name, "HuggingChat");
    assert_eq!(
        p.info().alias_target("qwen-2.5-72b"),
        Some("Qwen/Qwen2.5-72B-Instruct")
    );
}
