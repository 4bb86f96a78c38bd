//! `microsoft-phi-4` end to end: facade → provider → fake Gradio Space + Hub (llmux-testkit).
//! Every test runs against a Gradio 5 and a Gradio 6 Space (`against_both!` at the end).

use std::time::Duration;

use llmux::{
    ChatRequest, ChatStream, Chunk, Client, Content, ContentPart, Cookies, Error, FinishReason,
    InputAudio, Media, Message, ProviderConfig, TimeoutPhase, Timeouts,
};
use llmux_core::serde_json::{Value, json};
use llmux_provider_microsoft_phi_4::NAME;
use llmux_testkit::chat::texts;
use llmux_testkit::gradio::{Ending, FakeGradio, JWT_TOKEN, PAGE_TOKEN, SESSION_UUID, Version};
use llmux_testkit::openai::TINY_PNG;
use llmux_testkit::{FakeServer, Fault, RecordedRequest, Reply};

const HUB_PAGE: &str = "/spaces/microsoft/phi-4-multimodal";
const JWT: &str = "/api/spaces/microsoft/phi-4-multimodal/jwt";
const CONFIG: &str = "/config";
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

/// The fake Space, speaking Gradio `v`.
fn fake(v: Version) -> FakeGradio {
    FakeGradio::new().version(v)
}

/// A user text message as the Space's version expects it in `queue/join` (the captures).
fn text_message(v: Version, text: &str) -> Value {
    match v {
        Version::Gradio5 => json!({"role": "user", "content": text}),
        Version::Gradio6 => json!({"role": "user", "content": [{"type": "text", "text": text}]}),
    }
}

/// A user file message as the Space's version expects it in `queue/join` (the captures).
fn file_message(v: Version, file: &Value) -> Value {
    match v {
        Version::Gradio5 => json!({"role": "user", "content": {"file": file}}),
        Version::Gradio6 => json!({"role": "user", "content": [{"type": "file", "file": file}]}),
    }
}

/// The FileData of a file message sent in `queue/join`.
fn file_of(v: Version, message: &Value) -> &Value {
    match v {
        Version::Gradio5 => &message["content"]["file"],
        Version::Gradio6 => &message["content"][0]["file"],
    }
}

/// A message `content` holding `text`, as the Space's version sends it (JSON text).
fn content(v: Version, text: &str) -> String {
    match v {
        Version::Gradio5 => json!(text).to_string(),
        Version::Gradio6 => json!([{"text": text, "type": "text"}]).to_string(),
    }
}

/// The diff path of the assistant text (message 1).
fn text_path(v: Version) -> &'static str {
    match v {
        Version::Gradio5 => r#"[1,"content"]"#,
        Version::Gradio6 => r#"[1,"content",0,"text"]"#,
    }
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
    let regs = llmux_testkit::chat::registrations(&[NAME]);
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

/// The stream's chunks but the `Provider` announcement, and the error that ended it.
async fn drain(stream: ChatStream) -> (Vec<Chunk>, Option<Error>) {
    let (mut chunks, error) = llmux_testkit::chat::drain(stream).await;
    chunks.retain(|c| !matches!(c, Chunk::Provider(_)));
    (chunks, error)
}

fn one(server: &FakeServer, path: &str) -> RecordedRequest {
    let mut found = server.requests_to(path);
    assert_eq!(found.len(), 1, "requests to {path}");
    found.remove(0)
}

fn body(r: &RecordedRequest) -> Value {
    r.json().expect("JSON body")
}

async fn text_only_streams_deltas_and_sends_the_documented_requests(v: Version) {
    let server = fake(v).start().await;
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

    // page fetched, the Space's version read, no JWT (no cookies), no upload (text only)
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, [HUB_PAGE, CONFIG, PREDICT, JOIN, DATA]);

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
        json!({"data": [[text_message(v, "Hello Phi")], []], "event_data": null,
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

async fn complete_accumulates_the_full_reply(v: Version) {
    let server = fake(v).reply("Phi-4 here. How can I help?").start().await;
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
        body(&join)["data"][0][0],
        text_message(
            v,
            "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: 2+2?\nAssistant:"
        )
    );
}

async fn image_is_uploaded_and_sent_as_file_data(v: Version) {
    let server = fake(v).start().await;
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
        json!([file_message(v, &file)])
    );
}

async fn audio_by_file_name_and_by_data_uri(v: Version) {
    let server = fake(v).start().await;
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

async fn image_and_audio_like_the_capture(v: Version) {
    let server = fake(v).chunk_delay(Duration::from_millis(5)).start().await;
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
        .map(|m| file_of(v, m)["mime_type"].as_str().expect("mime"))
        .collect();
    assert_eq!(mimes, ["image/png", "audio/wav"]);
}

async fn follow_up_turn_reuses_the_session_and_sends_only_the_new_message(v: Version) {
    let server = fake(v).start().await;
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
    assert_eq!(last["data"][0], json!([text_message(v, "And now?")]));
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

async fn quota_error_becomes_a_clean_rate_limit(v: Version) {
    let server = fake(v).quota_exceeded().start().await;
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

async fn other_space_errors_are_upstream_errors(v: Version) {
    let server = fake(v).fail_with("GPU task aborted").start().await;
    let err = client(&server)
        .complete(req("Hi"))
        .await
        .expect_err("error");
    assert!(
        matches!(&err, Error::Upstream { message, .. } if message == "GPU task aborted"),
        "{err:?}"
    );

    // `unexpected_error` (what Gradio sends for an unknown session; the captures' texts)
    let (frame, expected) = match v {
        Version::Gradio5 => (
            r#"{"msg":"unexpected_error","event_id":null,"message":"404: Session not found.","success":false}"#,
            "microsoft-phi-4: 404: Session not found.",
        ),
        Version::Gradio6 => (
            r#"{"msg":"unexpected_error","event_id":null,"message":"404: Not Found","session_not_found":true,"success":false}"#,
            "microsoft-phi-4: 404: Not Found (the Space has no queued event for this session: the queue/join was lost or already answered)",
        ),
    };
    let server = fake(v).start().await;
    server.inject(DATA, Fault::Reply(Reply::sse([frame])));
    let err = client(&server)
        .complete(req("Hi"))
        .await
        .expect_err("error");
    assert_eq!(err.to_string(), expected);
}

async fn a_stream_without_completion_is_an_error(v: Version) {
    for ending in [Ending::CloseWithoutCompletion, Ending::EofWithoutCompletion] {
        let server = fake(v).ending(ending.clone()).start().await;
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

async fn heartbeats_and_unknown_messages_are_ignored(v: Version) {
    let server = fake(v)
        .chunk_delay(Duration::from_millis(20))
        .heartbeat_interval(Duration::from_millis(15))
        .start()
        .await;
    let resp = client(&server).complete(req("Hi")).await.expect("reply");
    assert_eq!(resp.text, "echo: Hi | files: 0");

    let server = fake(v).start().await;
    let (hi, path) = (content(v, "Hi"), text_path(v));
    let history = |reply: &str| {
        format!(
            r#"[{{"role":"user","content":{hi}}},{{"role":"assistant","content":{}}}]"#,
            content(v, reply)
        )
    };
    let frames = [
        r#"{"msg":"estimation","event_id":"e","rank":2,"queue_size":3,"rank_eta":1.5}"#.to_owned(),
        r#"{"msg":"heartbeat","event_id":null}"#.to_owned(),
        r#"{"msg":"process_starts","event_id":"e","eta":1.0}"#.to_owned(),
        r#"{"msg":"log","event_id":"e","log":"warming up","level":"info"}"#.to_owned(),
        r#"{"msg":"progress","event_id":"e","progress_data":[]}"#.to_owned(),
        r#"{"msg":"something_new","event_id":"e"}"#.to_owned(),
        "not json at all".to_owned(),
        format!(
            r#"{{"msg":"process_generating","event_id":"e","output":{{"data":[{}]}},"success":true}}"#,
            history("He")
        ),
        format!(
            r#"{{"msg":"process_generating","event_id":"e","output":{{"data":[[["replace",{path},"Hel"],["append",{path},"lo"]]]}},"success":true}}"#
        ),
        r#"{"msg":"process_generating","event_id":"e","output":{"data":[[]]},"success":true}"#
            .to_owned(),
        format!(
            r#"{{"msg":"process_completed","event_id":"e","output":{{"data":[{}]}},"success":true}}"#,
            history("Hello!")
        ),
    ];
    server.inject(DATA, Fault::Reply(Reply::sse(frames)));
    let (chunks, err) = drain(client(&server).chat(req("Hi"))).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(texts(&chunks), ["He", "llo", "!"]);
}

async fn http_errors_on_each_step(v: Version) {
    let image = || req("x").with_media(Media::from_bytes(TINY_PNG.to_vec(), None));

    let server = fake(v).start().await;
    server.inject(UPLOAD, Fault::HtmlError { code: 503 });
    let err = client(&server).complete(image()).await.expect_err("upload");
    assert!(
        matches!(&err, Error::HttpStatus { status: 503, message, .. } if message == "HTML content"),
        "{err:?}"
    );
    assert!(server.requests_to(PREDICT).is_empty());

    let server = fake(v).start().await;
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

    let server = fake(v).start().await;
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

    let server = fake(v).start().await;
    server.inject(DATA, Fault::HtmlError { code: 502 });
    let err = client(&server).complete(req("x")).await.expect_err("data");
    assert!(
        matches!(err, Error::HttpStatus { status: 502, .. }),
        "{err:?}"
    );

    let server = fake(v).start().await;
    server.inject(UPLOAD, Fault::Malformed("<html>nope</html>".into()));
    let err = client(&server)
        .complete(image())
        .await
        .expect_err("bad upload body");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
}

async fn missing_hub_page_is_tolerated(v: Version) {
    let server = fake(v).space("someone/else").start().await;
    let resp = client(&server).complete(req("Hi")).await.expect("reply");
    assert_eq!(resp.text, "echo: Hi | files: 0");
    let join = one(&server, JOIN);
    assert_eq!(join.header("x-zerogpu-token"), Some("[object Object]"));
    assert_eq!(join.header("x-zerogpu-uuid"), None);

    // an unreachable Hub does not stop the call either
    let server = fake(v).start().await;
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

async fn a_stalled_stream_hits_the_idle_timeout(v: Version) {
    let server = fake(v).start().await;
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

async fn invalid_media_fails_before_any_request(v: Version) {
    let server = fake(v).start().await;
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

async fn api_key_skips_discovery(v: Version) {
    let server = fake(v).start().await;
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

async fn cookies_fetch_a_zerogpu_jwt(v: Version) {
    let server = fake(v).start().await;
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

async fn routing_by_alias_and_g4f_name(v: Version) {
    let server = fake(v).start().await;
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

async fn origins_come_from_the_environment_names(v: Version) {
    let server = fake(v).space("me/phi-copy").start().await;
    let reg = llmux_core::registrations()
        .expect("registrations")
        .into_iter()
        .find(|r| r.name == NAME)
        .expect("registered");
    assert_eq!(reg.extra_origin_keys(), ["hub"]);
    assert_eq!(reg.g4f_name, "Microsoft_Phi_4");
    let base = server.url("");
    let env = |k: &str| match k {
        "LLMUX_MICROSOFT_PHI_4_BASE_URL" | "LLMUX_MICROSOFT_PHI_4_HUB_URL" => Some(base.clone()),
        _ => None,
    };
    let cfg = ProviderConfig::from_lookup(NAME, &reg.extra_origin_keys(), env)
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

/// The Space's version is read once (`GET /config`, with the referer) and kept for later calls.
async fn the_version_is_read_once_per_space(v: Version) {
    let server = fake(v).start().await;
    let c = client(&server);
    for _ in 0..2 {
        let resp = c.complete(req("Hi")).await.expect("reply");
        assert_eq!(resp.text, "echo: Hi | files: 0");
    }
    let config = one(&server, CONFIG);
    let referer = format!("{}?__theme=light", server.url(""));
    assert_eq!(config.header("referer"), Some(referer.as_str()));
    assert_eq!(config.header("x-zerogpu-token"), None);
    assert_eq!(server.requests_to(JOIN).len(), 2);
}

/// A failed `GET /config` fails the call before any upload or queue request, and is
/// remembered (the discovery backoff): the next call fails the same way without asking again.
async fn a_failed_version_lookup_is_remembered_briefly(v: Version) {
    let server = fake(v).start().await;
    server.inject(CONFIG, Fault::HtmlError { code: 503 });
    let c = client(&server);
    let image = || req("x").with_media(Media::from_bytes(TINY_PNG.to_vec(), None));
    for _ in 0..2 {
        let err = c.complete(image()).await.expect_err("config failed");
        assert!(
            matches!(err, Error::HttpStatus { status: 503, .. }),
            "{err:?}"
        );
    }
    assert_eq!(server.requests_to(CONFIG).len(), 1);
    assert!(server.requests_to(UPLOAD).is_empty() && server.requests_to(PREDICT).is_empty());
    // another client (a fresh cache) asks again and works
    let resp = client(&server).complete(image()).await.expect("reply");
    assert!(resp.text.starts_with("echo: x | files: 1"), "{}", resp.text);
}

/// A `/config` that names no Gradio version (a proxy page, the wrong origin) is a protocol
/// error that says what to check.
async fn a_config_without_a_version_is_a_protocol_error(v: Version) {
    for answer in [
        Reply::json(200, &json!({"mode": "blocks"})),
        Reply::html(200, "<html>Sign in</html>"),
    ] {
        let server = fake(v).start().await;
        server.inject(CONFIG, Fault::Reply(answer));
        let err = client(&server)
            .complete(req("Hi"))
            .await
            .expect_err("no version");
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
        assert!(server.requests_to(PREDICT).is_empty());
    }
    let server = fake(v).start().await;
    server.inject(
        CONFIG,
        Fault::Reply(Reply::json(200, &json!({"version": ""}))),
    );
    let err = client(&server)
        .complete(req("Hi"))
        .await
        .expect_err("empty");
    assert!(err.to_string().contains("has no Gradio `version`"), "{err}");
}

/// Runs each listed test against a Gradio 5 and a Gradio 6 Space.
macro_rules! against_both {
    ($($name:ident),* $(,)?) => {
        mod gradio5 {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Version::Gradio5).await
            })*
        }
        mod gradio6 {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Version::Gradio6).await
            })*
        }
    };
}

against_both!(
    text_only_streams_deltas_and_sends_the_documented_requests,
    complete_accumulates_the_full_reply,
    image_is_uploaded_and_sent_as_file_data,
    audio_by_file_name_and_by_data_uri,
    image_and_audio_like_the_capture,
    follow_up_turn_reuses_the_session_and_sends_only_the_new_message,
    quota_error_becomes_a_clean_rate_limit,
    other_space_errors_are_upstream_errors,
    a_stream_without_completion_is_an_error,
    heartbeats_and_unknown_messages_are_ignored,
    http_errors_on_each_step,
    missing_hub_page_is_tolerated,
    a_stalled_stream_hits_the_idle_timeout,
    invalid_media_fails_before_any_request,
    api_key_skips_discovery,
    cookies_fetch_a_zerogpu_jwt,
    routing_by_alias_and_g4f_name,
    origins_come_from_the_environment_names,
    the_version_is_read_once_per_space,
    a_failed_version_lookup_is_remembered_briefly,
    a_config_without_a_version_is_a_protocol_error,
);
