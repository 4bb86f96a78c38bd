//! The shared HTTP client through an HTTP CONNECT proxy and a SOCKS5 proxy (both tiny loopback
//! fakes written here), with credentials, per client and per call.

use std::sync::{Arc, Mutex};

use llmux_core::http::{HttpClient, HttpConfig, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Log = Arc<Mutex<Vec<String>>>;

/// An origin server answering every request with `hello from origin`.
async fn origin() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = read_head(&mut s).await;
                let body = "hello from origin";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

/// Reads up to the end of an HTTP head.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match s.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A CONNECT proxy recording each request head.
async fn connect_proxy(seen: Log) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                let target = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().expect("lock").push(head);
                let Ok(mut up) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = s
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
            });
        }
    });
    port
}

async fn read_vec(s: &mut TcpStream, len: usize) -> Option<Vec<u8>> {
    let mut v = vec![0u8; len];
    s.read_exact(&mut v).await.ok()?;
    Some(v)
}

/// Serves one SOCKS5 client (user/password or no auth), logging auth and destination.
async fn socks5_session(mut s: TcpStream, seen: Log) -> Option<()> {
    let hdr = read_vec(&mut s, 2).await?;
    let methods = read_vec(&mut s, usize::from(hdr[1])).await?;
    if methods.contains(&2) {
        s.write_all(&[5, 2]).await.ok()?;
        let ver_ulen = read_vec(&mut s, 2).await?;
        let user = read_vec(&mut s, usize::from(ver_ulen[1])).await?;
        let plen = read_vec(&mut s, 1).await?;
        let pass = read_vec(&mut s, usize::from(plen[0])).await?;
        seen.lock().expect("lock").push(format!(
            "auth {}:{}",
            String::from_utf8_lossy(&user),
            String::from_utf8_lossy(&pass)
        ));
        s.write_all(&[1, 0]).await.ok()?;
    } else {
        s.write_all(&[5, 0]).await.ok()?;
    }
    let req = read_vec(&mut s, 4).await?;
    let host = match req[3] {
        1 => {
            let a = read_vec(&mut s, 4).await?;
            format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
        }
        3 => {
            let n = read_vec(&mut s, 1).await?;
            String::from_utf8_lossy(&read_vec(&mut s, usize::from(n[0])).await?).into_owned()
        }
        _ => return None,
    };
    let p = read_vec(&mut s, 2).await?;
    let port = u16::from_be_bytes([p[0], p[1]]);
    seen.lock()
        .expect("lock")
        .push(format!("connect {host}:{port}"));
    let mut up = TcpStream::connect((host.as_str(), port)).await.ok()?;
    s.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await.ok()?;
    tokio::io::copy_bidirectional(&mut s, &mut up).await.ok()?;
    Some(())
}

async fn socks5_proxy(seen: Log) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(socks5_session(s, seen.clone()));
        }
    });
    port
}

#[tokio::test]
async fn http_connect_proxy_with_credentials() {
    let origin = origin().await;
    let seen = Log::default();
    let proxy = connect_proxy(seen.clone()).await;
    let http = HttpClient::new(HttpConfig {
        proxy: Proxy::Url(format!("http://alice:s3cret@127.0.0.1:{proxy}").into()),
        ..HttpConfig::default()
    })
    .expect("client");
    let text = http
        .get(format!("http://127.0.0.1:{origin}/hello"))
        .send()
        .await
        .expect("through the proxy")
        .text()
        .await
        .expect("body");
    assert_eq!(text, "hello from origin");
    let heads = seen.lock().expect("lock").clone();
    assert_eq!(heads.len(), 1);
    assert!(
        heads[0].starts_with(&format!("CONNECT 127.0.0.1:{origin} HTTP/1.1")),
        "{}",
        heads[0]
    );
    // base64("alice:s3cret")
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains("proxy-authorization: basic ywxpy2u6cznjcmv0"),
        "{}",
        heads[0]
    );
}

#[tokio::test]
async fn socks5_proxy_per_call() {
    let origin = origin().await;
    let seen = Log::default();
    let proxy = socks5_proxy(seen.clone()).await;
    let http = HttpClient::new(HttpConfig {
        proxy: Proxy::Direct,
        ..HttpConfig::default()
    })
    .expect("client");
    let via = http.with_proxy(Proxy::Url(
        format!("socks5h://bob:pw@127.0.0.1:{proxy}").into(),
    ));
    let text = via
        .get(format!("http://127.0.0.1:{origin}/x"))
        .send()
        .await
        .expect("through socks")
        .text()
        .await
        .expect("body");
    assert_eq!(text, "hello from origin");
    let log = seen.lock().expect("lock").clone();
    assert_eq!(
        log,
        vec![
            "auth bob:pw".to_owned(),
            format!("connect 127.0.0.1:{origin}")
        ]
    );
    // the direct client is unaffected
    let direct = http
        .get(format!("http://127.0.0.1:{origin}/y"))
        .send()
        .await
        .expect("direct");
    assert_eq!(direct.status(), 200);
    assert_eq!(seen.lock().expect("lock").len(), 2);
}
