//! `microsoft-phi-4` end to end: facade → provider → fake Gradio Space + Hub (llmux-testkit).

use std::time::Duration;

use llmux::{
    ChatRequest, ChatStream, Chunk, Client, Content, ContentPart, Cookies, Error, FinishReason,
    InputAudio, Media, Message, ProviderConfig, TimeoutPhase, Timeouts,
};
use llmux_core::futures_util::StreamExt;
use llmux_core::serde_json::{Value, json};
use llmux_provider_microsoft_phi_4::NAME;
use llmux_testkit::gradio::{Ending, FakeGradio, JWT_TOKEN, PAGE_TOKEN, SESSION_UUID};
use llmux_testkit::openai::TINY_PNG;
use llmux_testkit::{FakeServer, Fault, RecordedRequest, Reply};

const HUB_PAGE: &str = "/spaces/microsoft/phi-4-multimodal";
const JWT: &str = "/api/spaces/microsoft/phi-4-multimodal/jwt";
const UPLOAD: &str = "/gradio_api/upload";
const PREDICT: &str = "/gradio_api/run/predict";
const JOIN: &str = "/gradio_api/queue/join";
const DATA: &str = "/gradio_api/queue/data";

/// A minimal WAV file (44-byte header + 4 samples).
fn wav() -> Vec<u8> {
    let mut v = b"RIFF".to_vec();
    v.extend_from_slice(&40u32.to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&[
        16, 0, 0, 0, 1, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x80, 0x3e, 0, 0, 2, 0, 16, 0,
    ]);
    v.extend_from_slice(b"data");
    v.extend_from_slice(&4u32.to_le_bytes());
    v.extend_from_slice(&[0, 0, 1, 0]);
    v
}

fn timeouts(idle: Duration) -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(3),
        idle,
        total: Duration::from_secs(10),
    }
}

/// Space and Hub on the same fake.
fn config(server: &FakeServer) -> ProviderConfig {
    ProviderConfig::default()
        .with_base_url(server.url(""))
        .with_origin("hub", server.url(""))
}

fn client_with(cfg: ProviderConfig, idle: Duration) -> Client {
    let regs = llmux_core::registrations()
        .expect("registrations")
        .into_iter()
        .filter(|r| r.name == NAME)
        .collect();
    Client::builder()
        .ignore_env()
        .registrations(regs)
        .timeouts(timeouts(idle))
        .provider(NAME, cfg)
        .build()
        .expect("client")
}

fn client(server: &FakeServer) -> Client {
    client_with(config(server), Duration::from_secs(2))
}

fn req(text: &str) -> ChatRequest {
    ChatRequest::user("phi-4", text).with_provider(NAME)
}

async fn drain(mut stream: ChatStream) -> (Vec<Chunk>, Option<Error>) {
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(Chunk::Provider(_)) => {}
            Ok(c) => chunks.push(c),
            Err(e) => return (chunks, Some(e)),
        }
    }
    (chunks, None)
}

fn texts(chunks: &[Chunk]) -> Vec<&str> {
    chunks
        .iter()
        .filter_map(|c| match c {
            Chunk::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn one(server: &FakeServer, path: &str) -> RecordedRequest {
    let mut found = server.requests_to(path);
    assert_eq!(found.len(), 1, "requests to {path}");
    found.remove(0)
}

fn body(r: &RecordedRequest) -> Value {
    r.json().expect("JSON body")
}

#[tokio::test]
async fn text_only_streams_deltas_and_sends_the_documented_requests() {
    let server = FakeGradio::new().start().await;
    let (chunks, err) = drain(client(&server).chat(req("Hello Phi"))).await;
    assert!(err.is_none(), "{err:?}");
    // streamed word by word from process_generating, nothing repeated at completion
    assert_eq!(
        texts(&chunks),
        ["echo:", " Hello", " Phi", " |", " files:", " 0"]
    );
    assert_eq!(chunks.last(), Some(&Chunk::Finish(FinishReason::Stop)));

    // the conversation chunk comes first and carries session, token and uuid
    let Some(Chunk::Conversation(conv)) = chunks.first() else {
        panic!("first chunk is not the conversation: {chunks:?}")
    };
    let state = conv.get(NAME).expect("keyed by provider");
    let session = state["session_hash"].as_str().expect("session").to_owned();
    assert_eq!(session.len(), 32);
    assert!(
        session
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(state["zerogpu_token"], PAGE_TOKEN);
    assert_eq!(state["zerogpu_uuid"], SESSION_UUID);

    // page fetched, no JWT (no cookies), no upload (text only)
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, [HUB_PAGE, PREDICT, JOIN, DATA]);

    let base = server.url("");
    let referer = format!("{base}?__theme=light");
    let predict = one(&server, PREDICT);
    assert_eq!(
        body(&predict),
        json!({"data": [[], {"text": "Hello Phi", "files": []}, null], "event_data": null,
               "fn_index": 10, "trigger_id": 8, "session_hash": session})
    );
    let join = one(&server, JOIN);
    assert_eq!(join.query.as_deref(), Some("__theme=light"));
    assert_eq!(
        body(&join),
        json!({"data": [[{"role": "user", "content": "Hello Phi"}], []], "event_data": null,
               "fn_index": 11, "trigger_id": 8, "session_hash": session})
    );
    for r in [&predict, &join] {
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-zerogpu-token"), Some(PAGE_TOKEN));
        assert_eq!(r.header("x-zerogpu-uuid"), Some(SESSION_UUID));
        assert_eq!(r.header("referer"), Some(referer.as_str()));
    }
    let data = one(&server, DATA);
    assert_eq!(
        data.query_param("session_hash").as_deref(),
        Some(session.as_str())
    );
    assert_eq!(data.header("accept"), Some("text/event-stream"));
    assert_eq!(data.header("referer"), Some(referer.as_str()));
    assert_eq!(data.header("x-zerogpu-token"), None);
}

#[tokio::test]
async fn complete_accumulates_the_full_reply() {
    let server = FakeGradio::new()
        .reply("Phi-4 here. How can I help?")
        .start()
        .await;
    let resp = client(&server).complete(req("Hi")).await.expect("reply");
    assert_eq!(resp.text, "Phi-4 here. How can I help?");
    assert_eq!(resp.provider, NAME);
    assert_eq!(resp.finish_reason, Some(FinishReason::Stop));
    // the whole history is the prompt of a first turn
    let history = ChatRequest::new(
        "phi-4",
        vec![
            Message::system("Be brief."),
            Message::user("Hi"),
            Message::assistant("Hello!"),
            Message::user("2+2?"),
        ],
    )
    .with_provider(NAME);
    client(&server).complete(history).await.expect("reply");
    let join = server.requests_to(JOIN).pop().expect("join");
    assert_eq!(
        body(&join)["data"][0][0]["content"],
        "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: 2+2?\nAssistant:"
    );
}

#[tokio::test]
async fn image_is_uploaded_and_sent_as_file_data() {
    let server = FakeGradio::new().start().await;
    let request = req("What is this?").with_media(Media::from_bytes(TINY_PNG.to_vec(), None));
    let resp = client(&server).complete(request).await.expect("reply");
    assert_eq!(
        resp.text,
        format!(
            "echo: What is this? | files: 1 image/png:{}",
            TINY_PNG.len()
        )
    );

    let upload = one(&server, UPLOAD);
    let session = resp
        .conversation
        .as_ref()
        .and_then(|c| c.get(NAME))
        .expect("state")["session_hash"]
        .as_str()
        .expect("session")
        .to_owned();
    assert_eq!(
        upload.query_param("upload_id").as_deref(),
        Some(session.as_str())
    );
    assert!(
        upload
            .header("content-type")
            .expect("ct")
            .starts_with("multipart/form-data; boundary=")
    );
    let raw = upload.body_text();
    assert!(raw.contains("Content-Disposition: form-data; name=\"files\"; filename=\"image.png\"\r\nContent-Type: application/octet-stream\r\n\r\n"), "{raw}");
    assert_eq!(raw.matches("name=\"files\"").count(), 1);

    let path = body(&one(&server, PREDICT))["data"][1]["files"][0]["path"]
        .as_str()
        .expect("path")
        .to_owned();
    assert!(
        path.starts_with("/data/gradio/") && path.ends_with("/image.png"),
        "{path}"
    );
    let file = json!({"path": path, "url": server.url(&format!("/gradio_api/file={path}")),
                      "orig_name": "image.png", "size": TINY_PNG.len(), "mime_type": "image/png",
                      "meta": {"_type": "gradio.FileData"}});
    assert_eq!(
        body(&one(&server, PREDICT))["data"][1]["files"],
        json!([file])
    );
    assert_eq!(
        body(&one(&server, JOIN))["data"][1],
        json!([{"role": "user", "content": {"file": file}}])
    );
}

#[tokio::test]
async fn audio_by_file_name_and_by_data_uri() {
    let server = FakeGradio::new().start().await;
    let by_name = req("Transcribe").with_media(Media::from_bytes(wav(), Some("hello.wav".into())));
    let resp = client(&server).complete(by_name).await.expect("reply");
    assert_eq!(
        resp.text,
        format!("echo: Transcribe | files: 1 audio/wav:{}", wav().len())
    );

    server.clear_requests();
    let uri = llmux_core::media::to_data_uri("audio/mpeg", b"ID3\x04\0\0\0\0\0\0");
    let part = ChatRequest::new(
        "phi-4",
        vec![Message::user(Content::Parts(vec![
            ContentPart::Text {
                text: "Transcribe".into(),
            },
            ContentPart::InputAudio {
                input_audio: InputAudio {
                    data: uri,
                    format: String::new(),
                },
            },
        ]))],
    )
    .with_provider(NAME);
    let resp = client(&server).complete(part).await.expect("reply");
    assert_eq!(resp.text, "echo: Transcribe | files: 1 audio/mpeg:10");
    let predict = body(&one(&server, PREDICT));
    assert_eq!(predict["data"][1]["files"][0]["orig_name"], "audio.mp3");
    assert_eq!(predict["data"][1]["files"][0]["mime_type"], "audio/mpeg");
}

#[tokio::test]
async fn image_and_audio_like_the_capture() {
    let server = FakeGradio::new()
        .chunk_delay(Duration::from_millis(5))
        .start()
        .await;
    let request = req("What is in these?")
        .with_media(Media::from_bytes(TINY_PNG.to_vec(), Some("red.png".into())))
        .with_media(Media::from_bytes(wav(), Some("tone.wav".into())));
    let (chunks, err) = drain(client(&server).chat(request)).await;
    assert!(err.is_none(), "{err:?}");
    let expected = format!("image/png:{},audio/wav:{}", TINY_PNG.len(), wav().len());
    assert_eq!(
        texts(&chunks),
        [
            "echo:",
            " What",
            " is",
            " in",
            " these?",
            " |",
            " files:",
            " 2",
            &format!(" {expected}")
        ]
    );
    let raw = one(&server, UPLOAD).body_text();
    let png_at = raw.find("filename=\"red.png\"").expect("png part");
    let wav_at = raw.find("filename=\"tone.wav\"").expect("wav part");
    assert!(png_at < wav_at);
    let files = body(&one(&server, JOIN))["data"][1].clone();
    let mimes: Vec<&str> = files
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["content"]["file"]["mime_type"].as_str().expect("mime"))
        .collect();
    assert_eq!(mimes, ["image/png", "audio/wav"]);
}

#[tokio::test]
async fn follow_up_turn_reuses_the_session_and_sends_only_the_new_message() {
    let server = FakeGradio::new().start().await;
    let c = client(&server);
    let first = c.complete(req("Hi")).await.expect("first turn");
    let conversation = first.conversation.clone().expect("state");
    let session = conversation.get(NAME).expect("mine")["session_hash"].clone();

    let second = ChatRequest::new(
        "phi-4",
        vec![
            Message::user("Hi"),
            Message::assistant(first.text.clone()),
            Message::user("And now?"),
        ],
    )
    .with_provider(NAME)
    .with_conversation(conversation);
    let resp = c.complete(second).await.expect("second turn");
    assert_eq!(resp.text, "echo: And now? | files: 0");

    assert_eq!(
        server.requests_to(HUB_PAGE).len(),
        1,
        "the uuid is reused, not rediscovered"
    );
    let joins = server.requests_to(JOIN);
    assert_eq!(joins.len(), 2);
    let last = body(&joins[1]);
    assert_eq!(last["session_hash"], session);
    assert_eq!(
        last["data"][0],
        json!([{"role": "user", "content": "And now?"}])
    );
    assert_eq!(
        body(&server.requests_to(PREDICT)[1])["data"][1]["text"],
        "And now?"
    );
    // as in the reference: without cookies a known uuid comes with the placeholder token
    assert_eq!(joins[1].header("x-zerogpu-uuid"), Some(SESSION_UUID));
    assert_eq!(joins[1].header("x-zerogpu-token"), Some("[object Object]"));
    let state = resp
        .conversation
        .as_ref()
        .and_then(|c| c.get(NAME))
        .expect("state");
    assert_eq!(state["session_hash"], session);
    assert_eq!(state["zerogpu_uuid"], SESSION_UUID);
}

#[tokio::test]
async fn quota_error_becomes_a_clean_rate_limit() {
    let server = FakeGradio::new().quota_exceeded().start().await;
    let err = client(&server)
        .complete(req("Hi"))
        .await
        .expect_err("quota");
    match &err {
        Error::RateLimited {
            provider, message, ..
        } => {
            assert_eq!(provider, NAME);
            assert_eq!(
                message,
                "You have exceeded your GPU quota (60s requested vs. 41s left). Sign-up"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.to_string().contains('<'));
}

#[tokio::test]
async fn other_space_errors_are_upstream_errors() {
    let server = FakeGradio::new()
        .fail_with("GPU task aborted")
        .start()
        .await;
    let err = client(&server)
        .complete(req("Hi"))
        .await
        .expect_err("error");
    assert!(
        matches!(&err, Error::Upstream { message, .. } if message == "GPU task aborted"),
        "{err:?}"
    );

    // `unexpected_error` (what Gradio sends for an unknown session)
    let server = FakeGradio::new().start().await;
    server.inject(
        DATA,
        Fault::Reply(Reply::sse([
            r#"{"msg":"unexpected_error","event_id":null,"message":"404: Session not found.","success":false}"#,
        ])),
    );
    let err = client(&server)
        .complete(req("Hi"))
        .await
        .expect_err("error");
    assert_eq!(err.to_string(), "microsoft-phi-4: 404: Session not found.");
}

#[tokio::test]
async fn a_stream_without_completion_is_an_error() {
    for ending in [Ending::CloseWithoutCompletion, Ending::EofWithoutCompletion] {
        let server = FakeGradio::new().ending(ending.clone()).start().await;
        let (chunks, err) = drain(client(&server).chat(req("Hello Phi"))).await;
        assert_eq!(
            texts(&chunks).concat(),
            "echo: Hello Phi | files: 0",
            "{ending:?}"
        );
        let err = err.expect("must not end silently");
        assert!(matches!(err, Error::Protocol { .. }), "{ending:?}: {err:?}");
        assert!(err.to_string().contains("process_completed"), "{err}");
    }
}

#[tokio::test]
async fn heartbeats_and_unknown_messages_are_ignored() {
    let server = FakeGradio::new()
        .chunk_delay(Duration::from_millis(20))
        .heartbeat_interval(Duration::from_millis(15))
        .start()
        .await;
    let resp = client(&server).complete(req("Hi")).await.expect("reply");
    assert_eq!(resp.text, "echo: Hi | files: 0");

    let server = FakeGradio::new().start().await;
    let frames = [
        r#"{"msg":"estimation","event_id":"e","rank":2,"queue_size":3,"rank_eta":1.5}"#,
        r#"{"msg":"heartbeat","event_id":null}"#,
        r#"{"msg":"process_starts","event_id":"e","eta":1.0}"#,
        r#"{"msg":"log","event_id":"e","log":"warming up","level":"info"}"#,
        r#"{"msg":"progress","event_id":"e","progress_data":[]}"#,
        r#"{"msg":"something_new","event_id":"e"}"#,
        "not json at all",
        r#"{"msg":"process_generating","event_id":"e","output":{"data":[[{"role":"user","content":"Hi"},{"role":"assistant","content":"He"}]]},"success":true}"#,
        r#"{"msg":"process_generating","event_id":"e","output":{"data":[[["replace",[1,"content"],"Hel"],["append",[1,"content"],"lo"]]]},"success":true}"#,
        r#"{"msg":"process_generating","event_id":"e","output":{"data":[[]]},"success":true}"#,
        r#"{"msg":"process_completed","event_id":"e","output":{"data":[[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]]},"success":true}"#,
    ];
    server.inject(DATA, Fault::Reply(Reply::sse(frames)));
    let (chunks, err) = drain(client(&server).chat(req("Hi"))).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(texts(&chunks), ["He", "llo", "!"]);
}

#[tokio::test]
async fn http_errors_on_each_step() {
    let image = || req("x").with_media(Media::from_bytes(TINY_PNG.to_vec(), None));

    let server = FakeGradio::new().start().await;
    server.inject(UPLOAD, Fault::HtmlError { code: 503 });
    let err = client(&server).complete(image()).await.expect_err("upload");
    assert!(
        matches!(&err, Error::HttpStatus { status: 503, message, .. } if message == "HTML content"),
        "{err:?}"
    );
    assert!(server.requests_to(PREDICT).is_empty());

    let server = FakeGradio::new().start().await;
    server.inject(
        PREDICT,
        Fault::Status {
            code: 500,
            retry_after: None,
            body: r#"{"error":"1 validation error for MultimodalData"}"#.into(),
            content_type: "application/json".into(),
        },
    );
    let err = client(&server)
        .complete(req("x"))
        .await
        .expect_err("predict");
    assert!(
        matches!(&err, Error::HttpStatus { status: 500, message, .. } if message == "1 validation error for MultimodalData"),
        "{err:?}"
    );
    assert!(server.requests_to(JOIN).is_empty());

    let server = FakeGradio::new().start().await;
    server.inject(
        JOIN,
        Fault::Status {
            code: 422,
            retry_after: None,
            body: r#"{"error":"Queue is closed. <a href=\"https://huggingface.co\">Details</a>"}"#
                .into(),
            content_type: "application/json".into(),
        },
    );
    let err = client(&server).complete(req("x")).await.expect_err("join");
    assert!(
        matches!(&err, Error::HttpStatus { status: 422, message, .. } if message == "Queue is closed."),
        "{err:?}"
    );
    assert!(server.requests_to(DATA).is_empty());

    let server = FakeGradio::new().start().await;
    server.inject(DATA, Fault::HtmlError { code: 502 });
    let err = client(&server).complete(req("x")).await.expect_err("data");
    assert!(
        matches!(err, Error::HttpStatus { status: 502, .. }),
        "{err:?}"
    );

    let server = FakeGradio::new().start().await;
    server.inject(UPLOAD, Fault::Malformed("<html>nope</html>".into()));
    let err = client(&server)
        .complete(image())
        .await
        .expect_err("bad upload body");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
}

#[tokio::test]
async fn missing_hub_page_is_tolerated() {
    let server = FakeGradio::new().space("someone/else").start().await;
    let resp = client(&server).complete(req("Hi")).await.expect("reply");
    assert_eq!(resp.text, "echo: Hi | files: 0");
    let join = one(&server, JOIN);
    assert_eq!(join.header("x-zerogpu-token"), Some("[object Object]"));
    assert_eq!(join.header("x-zerogpu-uuid"), None);

    // an unreachable Hub does not stop the call either
    let server = FakeGradio::new().start().await;
    let hub = format!("http://127.0.0.1:{}", llmux_testkit::closed_port());
    let cfg = config(&server).with_origin("hub", hub);
    let resp = client_with(cfg, Duration::from_secs(2))
        .complete(req("Hi"))
        .await
        .expect("reply");
    assert_eq!(resp.text, "echo: Hi | files: 0");
    assert_eq!(
        one(&server, JOIN).header("x-zerogpu-token"),
        Some("[object Object]")
    );
}

#[tokio::test]
async fn a_stalled_stream_hits_the_idle_timeout() {
    let server = FakeGradio::new().start().await;
    server.inject(DATA, Fault::StallAfter { chunks: 3 });
    let c = client_with(config(&server), Duration::from_millis(300));
    let started = std::time::Instant::now();
    let (chunks, err) = drain(c.chat(req("Hello Phi"))).await;
    assert_eq!(texts(&chunks), ["echo:"]);
    let err = err.expect("timeout");
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: TimeoutPhase::Idle,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn invalid_media_fails_before_any_request() {
    let server = FakeGradio::new().start().await;
    for media in [
        Media::from_bytes(b"just some text".to_vec(), Some("notes.txt".into())),
        Media::from_bytes(wav(), None),
        Media::from_bytes(b"\0\0\0\x18ftypmp42".to_vec(), Some("clip.mp4".into())),
    ] {
        let err = client(&server)
            .complete(req("x").with_media(media))
            .await
            .expect_err("invalid");
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    }
    let remote = ChatRequest::new(
        "phi-4",
        vec![Message::user(Content::Parts(vec![ContentPart::ImageUrl {
            image_url: llmux::ImageUrl::new("https://example.com/cat.png"),
        }]))],
    )
    .with_provider(NAME);
    let err = client(&server)
        .complete(remote)
        .await
        .expect_err("remote url");
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn api_key_skips_discovery() {
    let server = FakeGradio::new().start().await;
    let resp = client(&server)
        .complete(req("Hi").with_api_key("my-zerogpu-token"))
        .await
        .expect("reply");
    assert_eq!(resp.text, "echo: Hi | files: 0");
    assert!(server.requests_to(HUB_PAGE).is_empty() && server.requests_to(JWT).is_empty());
    let join = one(&server, JOIN);
    assert_eq!(join.header("x-zerogpu-token"), Some("my-zerogpu-token"));
    assert_eq!(join.header("x-zerogpu-uuid"), Some("[object Object]"));
}

#[tokio::test]
async fn cookies_fetch_a_zerogpu_jwt() {
    let server = FakeGradio::new().start().await;
    let cfg = config(&server).with_cookies(Cookies::parse("token=hf_cookie_value"));
    let resp = client_with(cfg, Duration::from_secs(2))
        .complete(req("Hi"))
        .await
        .expect("reply");
    assert_eq!(resp.text, "echo: Hi | files: 0");
    let page = one(&server, HUB_PAGE);
    assert_eq!(page.header("cookie"), Some("token=hf_cookie_value"));
    let jwt = one(&server, JWT);
    assert_eq!(jwt.header("cookie"), Some("token=hf_cookie_value"));
    assert_eq!(
        jwt.query_param("include_pro_status").as_deref(),
        Some("true")
    );
    let raw = jwt.query.clone().unwrap_or_default();
    // 2025-05-06T12%3A44%3A56.789%2B00%3A00
    let exp = raw
        .split('&')
        .find_map(|p| p.strip_prefix("expiration="))
        .expect("expiration");
    assert_eq!(exp.len(), 37, "{exp}");
    assert!(
        exp.ends_with("%2B00%3A00") && exp.contains('T') && exp.contains('.'),
        "{exp}"
    );
    let join = one(&server, JOIN);
    assert_eq!(join.header("x-zerogpu-token"), Some(JWT_TOKEN));
    assert_eq!(join.header("x-zerogpu-uuid"), Some(SESSION_UUID));
}

#[tokio::test]
async fn routing_by_alias_and_g4f_name() {
    let server = FakeGradio::new().start().await;
    let c = client(&server);
    let routed = c
        .complete(ChatRequest::user("phi-4", "Hi"))
        .await
        .expect("by model alias");
    assert_eq!(
        (routed.provider.as_str(), routed.text.as_str()),
        (NAME, "echo: Hi | files: 0")
    );
    let by_g4f = c
        .complete(ChatRequest::user("phi-4-multimodal", "Hi").with_provider("Microsoft_Phi_4"))
        .await
        .expect("by g4f name");
    assert_eq!(by_g4f.provider, NAME);
    let listing = c.providers();
    let me = listing
        .iter()
        .find(|p| p.info.name == NAME)
        .expect("listed");
    assert!(me.enabled && me.info.working);
    assert_eq!(me.info.default_model, "phi-4-multimodal");
}

#[tokio::test]
async fn origins_come_from_the_environment_names() {
    let server = FakeGradio::new().space("me/phi-copy").start().await;
    let reg = llmux_core::registrations()
        .expect("registrations")
        .into_iter()
        .find(|r| r.name == NAME)
        .expect("registered");
    assert_eq!(reg.extra_origins, ["hub"]);
    assert_eq!(reg.g4f_name, "Microsoft_Phi_4");
    let base = server.url("");
    let env = |k: &str| match k {
        "LLMUX_MICROSOFT_PHI_4_BASE_URL" | "LLMUX_MICROSOFT_PHI_4_HUB_URL" => Some(base.clone()),
        _ => None,
    };
    let cfg = ProviderConfig::from_lookup(NAME, reg.extra_origins, env)
        .with_option("space", json!("me/phi-copy"));
    let resp = client_with(cfg, Duration::from_secs(2))
        .complete(req("Hi"))
        .await
        .expect("reply");
    assert_eq!(resp.text, "echo: Hi | files: 0");
    assert_eq!(server.requests_to("/spaces/me/phi-copy").len(), 1);
    assert_eq!(
        one(&server, JOIN).header("x-zerogpu-token"),
        Some(PAGE_TOKEN)
    );
}
