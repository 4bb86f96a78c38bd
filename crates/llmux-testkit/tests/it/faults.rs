use std::time::{Duration, Instant};

use llmux_testkit::client::{self, ClientError};
use llmux_testkit::{FakeServer, Fault, Reply, Router};
use serde_json::json;

use crate::{SHORT, raw_exchange};

const QUIET: Duration = Duration::from_millis(300);

async fn server() -> FakeServer {
    FakeServer::start(
        Router::new()
            .get("/json", |_| async {
                Reply::json(200, &json!({"msg": "héllo wörld"}))
            })
            .get("/sse", |_| async {
                Reply::sse(["one", "two", "three"]).chunk_delay(Duration::from_millis(10))
            })
            .get("/ascii", |_| async { Reply::text(200, "plain") }),
    )
    .await
}

async fn ok_json(server: &FakeServer) {
    let r = client::get(&server.url("/json")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json().await.unwrap()["msg"], "héllo wörld");
}

#[tokio::test]
async fn status_with_retry_after_then_recovers() {
    let server = server().await;
    server.inject_times("/json", Fault::rate_limited("2"), 2);
    server.inject("/json", Fault::status(503));
    assert_eq!(server.pending_faults(), 3);
    for _ in 0..2 {
        let r = client::get(&server.url("/json")).await.unwrap();
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("2"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json().await.unwrap()["error"]["code"], 429);
    }
    let r = client::get(&server.url("/json")).await.unwrap();
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_none());
    drop(r);
    ok_json(&server).await;
    assert_eq!(server.pending_faults(), 0);
    assert_eq!(server.requests_to("/json").len(), 4);

    // Other paths are unaffected; "*" hits any path; custom Status fields.
    server.inject("/json", Fault::status(500));
    let r = client::get(&server.url("/ascii")).await.unwrap();
    assert_eq!(r.status, 200);
    server.clear_faults();
    ok_json(&server).await;
    server.inject(
        "*",
        Fault::Status {
            code: 418,
            retry_after: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
            body: "teapot".into(),
            content_type: "text/plain".into(),
        },
    );
    let r = client::get(&server.url("/ascii")).await.unwrap();
    assert_eq!(r.status, 418);
    assert_eq!(
        r.header("retry-after"),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );
    assert_eq!(r.text().await.unwrap(), "teapot");
}

#[tokio::test]
async fn delay_before_headers() {
    let server = server().await;
    server.inject("/json", Fault::Delay(Duration::from_millis(200)));
    let start = Instant::now();
    ok_json(&server).await;
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn stall_after_headers() {
    let server = server().await;
    server.inject("/json", Fault::StallAfterHeaders);
    let mut r = client::get(&server.url("/json")).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_none());
    assert!(matches!(r.chunk(QUIET).await, Err(ClientError::Timeout(_))));
    assert_eq!(server.open_connections(), 1, "connection kept open");
    drop(r);
    ok_json(&server).await;
}

#[tokio::test]
async fn stall_after_chunks() {
    let server = server().await;
    server.inject("/sse", Fault::StallAfter { chunks: 2 });
    let mut r = client::get(&server.url("/sse")).await.unwrap();
    let mut got = Vec::new();
    loop {
        match r.chunk(QUIET).await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => panic!("stalled body must not end"),
            Err(ClientError::Timeout(_)) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(got, b"data: one\n\ndata: two\n\n");
}

#[tokio::test]
async fn disconnect_after_chunks_gives_incomplete_body() {
    let server = server().await;
    server.inject("/sse", Fault::DisconnectAfter { chunks: 1 });
    let mut r = client::get(&server.url("/sse")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.chunk(SHORT).await.unwrap().as_deref(),
        Some(&b"data: one\n\n"[..])
    );
    let err = r.chunk(SHORT).await.unwrap_err();
    assert!(matches!(err, ClientError::Http(_)), "{err:?}");
    assert!(server.wait_for_open_connections(0, SHORT).await);

    // A full body counts as one chunk; 0 chunks = headers then disconnect.
    server.inject("/json", Fault::DisconnectAfter { chunks: 0 });
    let r = client::get(&server.url("/json")).await.unwrap();
    assert!(matches!(r.bytes().await, Err(ClientError::Http(_))));
    ok_json(&server).await;
}

#[tokio::test]
async fn refuse_closes_connection_without_response() {
    let server = server().await;
    server.inject("/json", Fault::Refuse);
    let (out, _) = raw_exchange(server.addr(), b"GET /json HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(out.is_empty(), "no response bytes");
    assert_eq!(server.accepted_connections(), 1);
    assert_eq!(server.request_count(), 0, "nothing was read");
    ok_json(&server).await;

    server.inject("/json", Fault::Refuse);
    let err = client::get(&server.url("/json")).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Http(_) | ClientError::Io(_)),
        "{err:?}"
    );
    ok_json(&server).await;
}

#[tokio::test]
async fn reset_before_headers() {
    let server = server().await;
    server.inject("/json", Fault::ResetBeforeHeaders);
    let (out, _) = raw_exchange(server.addr(), b"GET /json HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(out.is_empty(), "no response bytes");
    assert_eq!(
        server.request_count(),
        1,
        "the request was read and recorded"
    );
    server.inject("/json", Fault::ResetBeforeHeaders);
    let err = client::get(&server.url("/json")).await.unwrap_err();
    assert!(matches!(err, ClientError::Http(_)), "{err:?}");
    ok_json(&server).await;
}

#[tokio::test]
async fn slow_drip() {
    let server = server().await;
    let interval = Duration::from_millis(25);
    server.inject("/ascii", Fault::SlowDrip { interval });
    let start = Instant::now();
    let mut r = client::get(&server.url("/ascii")).await.unwrap();
    let mut chunks = Vec::new();
    while let Some(c) = r.chunk(SHORT).await.unwrap() {
        chunks.push(c);
    }
    assert!(start.elapsed() >= interval * 5);
    assert!(chunks.iter().all(|c| c.len() == 1), "{chunks:?}");
    assert_eq!(chunks.concat(), b"plain");
}

#[tokio::test]
async fn malformed_truncated_oversized_wrong_type() {
    let server = server().await;
    server.inject("/json", Fault::Malformed("{\"msg\": ".into()));
    let r = client::get(&server.url("/json")).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), r.header("content-type")),
        (200, Some("application/json"))
    );
    assert_eq!(r.text().await.unwrap(), "{\"msg\": ");

    server.inject("/json", Fault::TruncatedUtf8);
    let real = json!({"msg": "héllo wörld"}).to_string().into_bytes();
    let body = client::get(&server.url("/json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(std::str::from_utf8(&body).is_err());
    assert!(real.starts_with(&body) && body.len() < real.len());
    server.inject("/ascii", Fault::TruncatedUtf8);
    let body = client::get(&server.url("/ascii"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"plain\xE2\x82");

    server.inject("/sse", Fault::Oversized { bytes: 300_000 });
    let r = client::get(&server.url("/sse")).await.unwrap();
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 300_000);
    assert!(body.iter().all(|b| *b == b'x'));

    server.inject("/json", Fault::WrongContentType("text/html".into()));
    let r = client::get(&server.url("/json")).await.unwrap();
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.json().await.unwrap()["msg"], "héllo wörld");
}

#[tokio::test]
async fn html_pages_and_custom_reply() {
    let server = server().await;
    server.inject("/json", Fault::CloudflareChallenge);
    let r = client::get(&server.url("/json")).await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.header("server"), Some("cloudflare"));
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<title>Just a moment...</title>")
    );

    server.inject("/json", Fault::HtmlError { code: 502 });
    let r = client::get(&server.url("/json")).await.unwrap();
    assert_eq!(r.status, 502);
    let text = r.text().await.unwrap();
    assert!(
        text.starts_with("<!DOCTYPE html>") && text.contains("502 Bad Gateway"),
        "{text}"
    );

    server.inject(
        "/json",
        Fault::Reply(Reply::json(400, &json!({"detail": "custom"}))),
    );
    let r = client::get(&server.url("/json")).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json().await.unwrap()["detail"], "custom");
    ok_json(&server).await;
}
