//! Abuse of the gateway over raw HTTP: slowloris clients, invalid JSON at every nesting level,
//! wrong types at every level, absurd nesting, non-UTF-8 bodies, unknown fields (ignored),
//! oversized chunked bodies. (Oversized heads, `Content-Length` bodies, wrong and missing keys
//! and keys in the query string are covered by the gateway crate's own tests.)

use std::time::{Duration, Instant};

use llmux::{Client, ProviderConfig};
use llmux_e2e::gateway::{self, Gw, Seen};
use llmux_e2e::runner;
use llmux_server::ServerConfig;
use llmux_testkit::openai::FakeOpenAi;
use llmux_testkit::{FakeServer, Method, client};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHAT: &str = "/v1/chat/completions";

async fn setup(config: ServerConfig) -> (FakeServer, Gw) {
    let fake = FakeOpenAi::new().models(["m"]).echo().start().await;
    let client = Client::builder()
        .ignore_env()
        .registrations(runner::registrations("openai-compat"))
        .http_config(runner::http_config())
        .provider(
            "openai-compat",
            ProviderConfig::default().with_base_url(fake.url("/v1")),
        )
        .build()
        .expect("client");
    let gw = Gw::start(client, ServerConfig { ..config }).await;
    (fake, gw)
}

async fn post_raw(gw: &Gw, body: impl Into<llmux::core::bytes::Bytes>) -> Seen {
    let (k, v) = gateway::auth();
    let resp = client::send(
        Method::POST,
        &gw.url(CHAT),
        &[("content-type", "application/json"), (k, v.as_str())],
        body,
    )
    .await
    .expect("response");
    gateway::read(resp).await.expect("well-formed").0
}

fn host(gw: &Gw) -> String {
    gw.url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `limit` passes); returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_clients_are_cut_off_and_do_not_block_others() {
    let _shared = llmux_e2e::shared().await;
    let timeout = Duration::from_millis(400);
    let (fake, gw) = setup(ServerConfig {
        header_read_timeout: timeout,
        ..gateway::config()
    })
    .await;
    let addr = host(&gw);
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..40 {
        let addr = addr.clone();
        clients.spawn(async move {
            let mut s = TcpStream::connect(&addr).await.expect("connect");
            if i % 4 == 0 {
                // connects and says nothing at all
            } else {
                s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
                    .await
                    .expect("write");
                // one header byte every 50 ms, forever (until the server hangs up)
                let writer = async {
                    for b in b"x-slow: ".iter().chain(b"a".repeat(1000).iter()).cycle() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if s.write_all(&[*b]).await.is_err() {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
            }
            let closed = read_until_closed(&mut s, Duration::from_secs(5)).await;
            (started.elapsed(), closed)
        });
    }
    // meanwhile, honest clients are served at once
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..5 {
        let t = Instant::now();
        let (k, v) = gateway::auth();
        let resp = client::post_json(
            &gw.url(CHAT),
            &[(k, v.as_str())],
            &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .expect("served");
        assert_eq!(resp.status, 200);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "honest request took {:?}",
            t.elapsed()
        );
    }
    while let Some(r) = clients.join_next().await {
        let (elapsed, closed) = r.expect("client task");
        let closed = closed.expect("the server closes a slowloris connection");
        // hyper answers 408 to a started head, or just closes an empty connection
        let text = String::from_utf8_lossy(&closed);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
        assert!(
            elapsed < timeout + Duration::from_millis(1500),
            "cut after {elapsed:?}"
        );
    }
    assert_eq!(
        fake.requests_to(CHAT).len(),
        5,
        "only the honest requests went upstream"
    );
    gw.stop().await.expect("stops");
}

/// A valid body with every nesting level the gateway reads.
fn deep_body() -> Value {
    json!({
        "model": "m",
        "stream": false,
        "stream_options": {"include_usage": true},
        "stop": ["\n\n"],
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
            ]}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_at_every_nesting_level_is_a_400() {
    let _shared = llmux_e2e::shared().await;
    let (fake, gw) = setup(gateway::config()).await;
    let valid = deep_body().to_string();
    // cut the document right after every opening bracket, brace, colon and comma (every level)
    let mut cases: Vec<Vec<u8>> = valid
        .char_indices()
        .filter(|(_, c)| matches!(c, '{' | '[' | ':' | ','))
        .map(|(i, _)| valid.as_bytes()[..=i].to_vec())
        .collect();
    // a stray closer and a trailing comma inside every level
    for (i, c) in valid.char_indices().filter(|(_, c)| matches!(c, '{' | '[')) {
        let mut stray = valid.clone().into_bytes();
        stray.insert(i + 1, if c == '{' { b']' } else { b'}' });
        cases.push(stray);
        let mut comma = valid.clone().into_bytes();
        comma.insert(i + 1, b',');
        cases.push(comma);
    }
    cases.push(b"".to_vec());
    cases.push(b"null".to_vec());
    cases.push(b"[]".to_vec());
    cases.push(vec![0xff, 0xfe, b'{', b'}']);
    cases.push(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes());
    assert!(cases.len() > 60, "{} cases", cases.len());
    for case in &cases {
        let t = Instant::now();
        match post_raw(&gw, case.clone()).await {
            Seen::Error {
                status: 400, error, ..
            } => {
                assert!(
                    matches!(
                        error["code"].as_str(),
                        Some(
                            "invalid_json"
                                | "invalid_request"
                                | "invalid_value"
                                | "missing_field"
                                | "invalid_type"
                        )
                    ),
                    "{}: {error}",
                    String::from_utf8_lossy(&case[..case.len().min(200)])
                );
            }
            other => panic!(
                "{}: {other:?}",
                String::from_utf8_lossy(&case[..case.len().min(200)])
            ),
        }
        assert!(t.elapsed() < Duration::from_secs(1), "slow to refuse");
    }
    assert!(
        fake.requests_to(CHAT).is_empty(),
        "nothing invalid went upstream"
    );
    gw.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_at_every_level_name_the_field() {
    let _shared = llmux_e2e::shared().await;
    let (fake, gw) = setup(gateway::config()).await;
    let cases: &[(&str, Value, &str)] = &[
        ("/model", json!(5), "model"),
        ("/stream", json!("yes"), "stream"),
        ("/stream_options", json!(5), "stream_options"),
        (
            "/stream_options/include_usage",
            json!("yes"),
            "stream_options.include_usage",
        ),
        ("/stop", json!({"a": 1}), "stop"),
        ("/stop/0", json!(5), "stop[0]"),
        ("/messages", json!({"role": "user"}), "messages"),
        ("/messages/1", json!("hi"), "messages[1]"),
        ("/messages/1/role", json!(5), "messages[1].role"),
        ("/messages/1/content", json!(5), "messages[1].content"),
        ("/messages/1/content/0", json!(5), "messages[1].content[0]"),
        // content parts are tagged by `type`: errors inside a part are reported at the part
        (
            "/messages/1/content/0/text",
            json!(5),
            "messages[1].content[0]",
        ),
        (
            "/messages/1/content/1/image_url",
            json!(5),
            "messages[1].content[1]",
        ),
        (
            "/messages/1/content/1/image_url/url",
            json!(5),
            "messages[1].content[1]",
        ),
    ];
    for (pointer, bad, param) in cases {
        let mut body = deep_body();
        *body.pointer_mut(pointer).expect("pointer") = bad.clone();
        match post_raw(&gw, body.to_string()).await {
            Seen::Error {
                status: 400, error, ..
            } => {
                assert_eq!(error["code"], "invalid_type", "{pointer}: {error}");
                assert_eq!(error["param"].as_str(), Some(*param), "{pointer}: {error}");
                let message = error["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains(&format!("`{param}`")),
                    "{pointer}: {message}"
                );
            }
            other => panic!("{pointer}: {other:?}"),
        }
    }
    assert!(fake.requests_to(CHAT).is_empty());
    gw.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_forwarded_verbatim() {
    let _shared = llmux_e2e::shared().await;
    let (fake, gw) = setup(gateway::config()).await;
    let mut body = deep_body();
    body["zz_top"] = json!({"nested": [1, 2, {"deeper": true}]});
    body["stream_options"]["zz_opt"] = json!(1);
    body["messages"][0]["zz_msg"] = json!("x");
    body["messages"][1]["content"][0]["zz_part"] = json!(null);
    body["messages"][1]["content"][1]["image_url"]["zz_url"] = json!([]);
    match post_raw(&gw, body.to_string()).await {
        Seen::Completion { content, .. } => assert_eq!(content, "echo: hi"),
        other => panic!("{other:?}"),
    }
    // an unknown field nested a million levels deep is skipped without recursion
    let deep = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"hi","zz_deep":{}1{}}}]}}"#,
        "[".repeat(1_000_000),
        "]".repeat(1_000_000)
    );
    match post_raw(&gw, deep).await {
        Seen::Completion { content, .. } => assert_eq!(content, "echo: hi"),
        Seen::Error { status: 400, .. } => {}
        other => panic!("{other:?}"),
    }
    let sent = fake.requests_to(CHAT);
    assert!(!sent.is_empty() && sent.len() <= 2);
    let up = sent[0].json().expect("upstream json");
    assert_eq!(up["zz_top"], body["zz_top"], "{up}");
    assert_eq!(up["stream_options"]["zz_opt"], 1, "{up}");
    assert_eq!(up["messages"][0]["zz_msg"], "x", "{up}");
    gw.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_chunked_bodies_are_refused_without_reading_them_all() {
    let _shared = llmux_e2e::shared().await;
    let (fake, gw) = setup(ServerConfig {
        max_body_bytes: 64 * 1024,
        ..gateway::config()
    })
    .await;
    let mut s = TcpStream::connect(host(&gw)).await.expect("connect");
    let (k, v) = gateway::auth();
    let head = format!(
        "POST {CHAT} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n{k}: {v}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
    let t = Instant::now();
    // up to 8 MiB, but the gateway answers (and stops reading) after 64 KiB
    let mut sent = 0usize;
    while sent < 8 * 1024 * 1024 {
        match tokio::time::timeout(Duration::from_secs(2), s.write_all(chunk.as_bytes())).await {
            Ok(Ok(())) => sent += 16 * 1024,
            _ => break,
        }
    }
    let answer = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("body_too_large"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(fake.requests_to(CHAT).is_empty());
    gw.stop().await.expect("stops");
}
