use std::time::{Duration, Instant};

use bytes::Bytes;
use llmux_testkit::client::{self, ClientError};
use llmux_testkit::{
    FakeServer, Method, PathPattern, Reply, Router, SseEvent, closed_port, jsonl_line, sse_event,
    sse_frame,
};
use serde_json::json;

use crate::{SHORT, raw_exchange};

fn router() -> Router {
    Router::new()
        .get("/v1/items/{id}", |req| async move {
            Reply::json(
                200,
                &json!({"id": req.param("id"), "q": req.query_param("q")}),
            )
        })
        .post("/v1/items/{id}", |req| async move {
            Reply::text(201, format!("posted {}", req.body_text()))
        })
        .any("/files/*", |req| async move {
            Reply::text(200, req.param("*").unwrap_or("").to_owned())
        })
        .reply(Method::GET, "/static", Reply::html(200, "<p>hi</p>"))
        // Rust 2024 async closures work too.
        .get("/async-closure", async |req| Reply::text(200, req.path))
}

#[tokio::test]
async fn routes_params_and_recording() {
    let server = FakeServer::start(router()).await;
    assert!(server.url("/v1").starts_with("http://127.0.0.1:"));
    assert!(server.url("/v1").ends_with("/v1"));

    let r = client::get(&server.url("/v1/items/42?q=a+b%21"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json().await.unwrap(), json!({"id": "42", "q": "a b!"}));

    let r = client::send(
        Method::POST,
        &server.url("/v1/items/7"),
        &[("X-Custom-Header", "Yes")],
        "payload",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.text().await.unwrap(), "posted payload");

    let r = client::send(Method::DELETE, &server.url("/files/a/b/c.txt"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "a/b/c.txt");
    let r = client::get(&server.url("/static")).await.unwrap();
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = client::get(&server.url("/async-closure")).await.unwrap();
    assert_eq!(r.text().await.unwrap(), "/async-closure");

    // Unmatched path → 404 JSON, wrong method → 405 JSON.
    let r = client::get(&server.url("/nope")).await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json().await.unwrap()["error"]["code"], "not_found");
    let r = client::send(Method::PUT, &server.url("/static"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 405);

    let reqs = server.requests();
    assert_eq!(reqs.len(), 7);
    assert_eq!(server.request_count(), 7);
    let posts = server.requests_to("/v1/items/{id}");
    assert_eq!(posts.len(), 2);
    let post = &posts[1];
    assert_eq!(post.method, Method::POST);
    assert_eq!(post.path, "/v1/items/7");
    assert_eq!(post.param("id"), Some("7"));
    assert_eq!(post.header("x-custom-header"), Some("Yes"));
    assert!(post.headers.contains_key("x-custom-header"));
    assert_eq!(post.body, Bytes::from_static(b"payload"));
    assert_eq!(reqs[0].query.as_deref(), Some("q=a+b%21"));
    assert_eq!(server.requests_to("/v1/items/42").len(), 1);
    server.clear_requests();
    assert!(server.requests().is_empty());
}

#[test]
fn path_patterns() {
    let p = PathPattern::new("/a/{x}/c");
    assert_eq!(p.matches("/a/b/c").unwrap()["x"], "b");
    assert!(p.matches("/a/b/c/d").is_none());
    assert!(p.matches("/a/b").is_none());
    assert!(p.matches("/a/b/c/").is_some());
    let w = PathPattern::new("/a/*");
    assert_eq!(w.matches("/a").unwrap()["*"], "");
    assert_eq!(w.matches("/a/x/y").unwrap()["*"], "x/y");
    assert!(w.matches("/b/x").is_none());
    assert!(PathPattern::new("*").matches("/anything/at/all").is_some());
}

#[tokio::test]
async fn keep_alive_and_connection_counts() {
    let server = FakeServer::start(router()).await;
    let raw = b"GET /static HTTP/1.1\r\nhost: x\r\n\r\nGET /static HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let (out, _) = raw_exchange(server.addr(), raw).await;
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].connection, reqs[1].connection);
    assert_eq!(server.accepted_connections(), 1);

    // A response held open counts as an open connection until dropped.
    let resp = client::get(&server.url("/static")).await.unwrap();
    assert_eq!(server.accepted_connections(), 2);
    assert!(server.wait_for_open_connections(1, SHORT).await);
    drop(resp);
    assert!(server.wait_for_open_connections(0, SHORT).await);
    assert!(server.wait_for_requests(3, SHORT).await);
    assert!(!server.wait_for_requests(4, Duration::from_millis(20)).await);
}

#[tokio::test]
async fn drop_aborts_open_connections() {
    let server = FakeServer::start(Router::new().get("/hang", |_| async {
        Reply::sse(["first", "never"]).push_chunk(Duration::from_secs(3600), "late")
    }))
    .await;
    let addr = server.addr();
    let mut resp = client::get(&server.url("/hang")).await.unwrap();
    assert!(resp.chunk(SHORT).await.unwrap().is_some());
    drop(server);
    // The connection is aborted: the body ends with an error, not a hang.
    let mut err = None;
    for _ in 0..3 {
        match resp.chunk(SHORT).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("body must not end cleanly"),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert!(matches!(err, Some(ClientError::Http(_))), "{err:?}");
    // And nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn sse_streams_in_pieces() {
    let delay = Duration::from_millis(150);
    let server = FakeServer::start(Router::new().post("/sse", move |_| async move {
        Reply::sse(["one", "two", "three"]).chunk_delay(delay)
    }))
    .await;
    let start = Instant::now();
    let mut resp = client::send(Method::POST, &server.url("/sse"), &[], "")
        .await
        .unwrap();
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.header("content-length").is_none());
    let mut arrivals = Vec::new();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk(SHORT).await.unwrap() {
        arrivals.push(start.elapsed());
        body.extend_from_slice(&chunk);
    }
    assert_eq!(body, b"data: one\n\ndata: two\n\ndata: three\n\n");
    assert_eq!(arrivals.len(), 3, "each event arrives on its own");
    assert!(arrivals[2] >= 2 * delay);
    assert!(
        arrivals[2] - arrivals[0] >= delay + delay / 2,
        "{arrivals:?}"
    );
}

#[tokio::test]
async fn jsonl_and_chunked_replies() {
    let server = FakeServer::start(
        Router::new()
            .get("/jsonl", |_| async {
                Reply::jsonl([json!({"a": 1}), json!({"b": 2})])
            })
            .get("/chunks", |_| async {
                Reply::chunked("text/plain", ["ab", "cd"])
                    .push_chunk(Duration::from_millis(10), "ef")
            }),
    )
    .await;
    let r = client::get(&server.url("/jsonl")).await.unwrap();
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(r.text().await.unwrap(), "{\"a\":1}\n{\"b\":2}\n");
    let r = client::get(&server.url("/chunks")).await.unwrap();
    assert_eq!(r.text().await.unwrap(), "abcdef");
}

#[test]
fn writers() {
    assert_eq!(sse_frame("x"), Bytes::from_static(b"data: x\n\n"));
    assert_eq!(
        sse_frame("a\nb"),
        Bytes::from_static(b"data: a\ndata: b\n\n")
    );
    assert_eq!(
        sse_event(Some("done"), "{}", Some("3")),
        Bytes::from_static(b"event: done\nid: 3\ndata: {}\n\n")
    );
    assert_eq!(sse_event(None, "", None), Bytes::from_static(b"data: \n\n"));
    let e = SseEvent::data("l1\nl2").event("e").id("9").retry(1500);
    assert_eq!(
        e.to_bytes(),
        Bytes::from_static(b"event: e\nid: 9\nretry: 1500\ndata: l1\ndata: l2\n\n")
    );
    assert_eq!(jsonl_line(&json!([1, 2])), Bytes::from_static(b"[1,2]\n"));
}

#[tokio::test]
async fn closed_port_refuses() {
    let port = closed_port();
    let err = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let err = client::get(&format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Io(_)), "{err:?}");
}

#[tokio::test]
async fn only_loopback_binds() {
    let err = FakeServer::try_start_at(Router::new(), "0.0.0.0:0".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
}
