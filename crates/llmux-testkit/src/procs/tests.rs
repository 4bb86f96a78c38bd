//! Tests of the helper processes: the template substitution, RESP, a real `redis-server` and a
//! real nginx running `deploy/nginx/llmux.conf` in front of two tiny HTTP backends.

use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex};

use super::*;
use crate::closed_port;

/// Timeout of every socket step in these tests.
const STEP: Duration = Duration::from_secs(10);

fn deploy_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx/llmux.conf")
}

// --- template substitution ---------------------------------------------------------------

#[test]
fn substitutes_exact_loopback_ports_in_one_pass() {
    let template = "listen 127.0.0.1:8080;\n\
                    server 127.0.0.1:8081 max_fails=1;\n\
                    server 127.0.0.1:8082;\n\
                    # not ours: 127.0.0.1:80800 127.0.0.1:80 10.127.0.0.1:8081 127.0.0.2:8081\n\
                    redis 127.0.0.1:6379\n";
    // the listen port is one of the template's upstream numbers: one pass does not re-replace
    let out = substitute_ports(template, 8081, &[8080, 40001]).expect("substitutes");
    assert_eq!(
        out,
        "listen 127.0.0.1:8081;\n\
         server 127.0.0.1:8080 max_fails=1;\n\
         server 127.0.0.1:40001;\n\
         # not ours: 127.0.0.1:80800 127.0.0.1:80 10.127.0.0.1:8081 127.0.0.2:8081\n\
         redis 127.0.0.1:6379\n"
    );
}

#[test]
fn substitution_refuses_templates_that_do_not_match_the_ports() {
    let two = "listen 127.0.0.1:8080; server 127.0.0.1:8081; server 127.0.0.1:8082;";
    for (template, upstreams, needle) in [
        (two, &[1u16][..], "only 1 upstream port"),
        (
            two,
            &[1, 2, 3][..],
            "no 127.0.0.1:8083 for upstream port 3 of 3",
        ),
        ("server 127.0.0.1:8081;", &[1][..], "no 127.0.0.1:8080"),
    ] {
        let e = substitute_ports(template, 9000, upstreams).expect_err("mismatch");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn the_deploy_file_has_one_listen_and_two_upstream_addresses() {
    let template = fs::read_to_string(deploy_conf()).expect("deploy/nginx/llmux.conf");
    let out = substitute_ports(&template, 40000, &[40001, 40002]).expect("two upstreams");
    assert!(out.contains("listen 127.0.0.1:40000;"), "{out}");
    assert!(out.contains("server 127.0.0.1:40001 "), "{out}");
    assert!(out.contains("server 127.0.0.1:40002 "), "{out}");
    assert!(!out.contains("127.0.0.1:808"), "{out}");
    assert!(substitute_ports(&template, 40000, &[40001]).is_err());
}

#[test]
fn a_missing_program_names_its_debian_package() {
    let e = find_program(
        "llmux-no-such-program",
        &["/nonexistent/llmux-no-such-program"],
        "llmux-pkg",
    )
    .expect_err("not installed");
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    let msg = e.to_string();
    assert!(msg.contains("Debian package `llmux-pkg`"), "{msg}");
    assert!(msg.contains("apt-get install llmux-pkg"), "{msg}");
}

#[test]
fn temp_dirs_are_unique_private_to_this_process_and_removed_on_drop() {
    let a = TempDir::new("t").expect("temp dir");
    let b = TempDir::new("t").expect("temp dir");
    assert_ne!(a.path, b.path);
    assert!(a.path.starts_with(std::env::temp_dir()));
    let name = a.path.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(
        name.starts_with(&format!("llmux-t-{}-", std::process::id())),
        "{name}"
    );
    let mode = fs::metadata(&a.path).expect("exists").permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    fs::write(a.path.join("file"), "x").expect("writable");
    let path = a.path.clone();
    drop(a);
    assert!(!path.exists());
}

// --- RESP ----------------------------------------------------------------------------------

#[test]
fn resp_commands_are_arrays_of_bulk_strings() {
    assert_eq!(resp_encode(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(
        resp_encode(&["SET", "k", ""]),
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
    );
}

#[test]
fn resp_replies_parse_with_bounds() {
    let parse = |bytes: &[u8]| read_resp(&mut Cursor::new(bytes.to_vec()), 0);
    assert_eq!(
        parse(b"+PONG\r\n").expect("ok"),
        Resp::Simple("PONG".into())
    );
    assert_eq!(
        parse(b"-ERR wrong\r\n").expect("ok"),
        Resp::Error("ERR wrong".into())
    );
    assert_eq!(parse(b":-7\r\n").expect("ok"), Resp::Integer(-7));
    assert_eq!(parse(b"$-1\r\n").expect("ok"), Resp::Bulk(None));
    assert_eq!(parse(b"*-1\r\n").expect("ok"), Resp::Array(None));
    assert_eq!(
        parse(b"*2\r\n$3\r\na\r\n\r\n*1\r\n:1\r\n").expect("ok"),
        Resp::Array(Some(vec![
            Resp::Bulk(Some(b"a\r\n".to_vec())),
            Resp::Array(Some(vec![Resp::Integer(1)])),
        ]))
    );
    assert_eq!(
        parse(b"$2\r\nhi\r\n").expect("ok").text(),
        Some("hi"),
        "bulk text"
    );
    for bad in [
        &b""[..],
        b"+PONG\n",
        b"?x\r\n",
        b":x\r\n",
        b"$5\r\nab\r\n",
        b"$2\r\nabcd",
        b"$999999999999\r\n",
        b"*3\r\n:1\r\n",
    ] {
        assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    let deep = "*1\r\n".repeat(MAX_RESP_DEPTH + 2) + ":1\r\n";
    assert!(parse(deep.as_bytes()).is_err(), "nesting is bounded");
}

// --- Redis ---------------------------------------------------------------------------------

fn refused(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    matches!(
        TcpStream::connect_timeout(&addr, STEP),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
    )
}

#[test]
fn redis_answers_stops_and_restarts_on_the_same_port() {
    let mut redis = RedisServer::start().expect("redis-server starts");
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/0"));
    assert!(redis.is_running());
    assert_eq!(
        redis.command(&["PING"]).expect("ping"),
        Resp::Simple("PONG".into())
    );
    assert_eq!(
        redis.command(&["SET", "k", "v"]).expect("set"),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        redis.command(&["GET", "k"]).expect("get"),
        Resp::Bulk(Some(b"v".to_vec()))
    );
    assert!(matches!(
        redis.command(&["NOSUCHCOMMAND"]).expect("reply"),
        Resp::Error(e) if e.starts_with("ERR")
    ));

    redis.stop().expect("stop");
    assert!(!redis.is_running());
    assert!(refused(port), "nothing listens after stop");
    assert!(redis.command(&["PING"]).is_err());
    redis.stop().expect("stopping twice is fine");

    redis.restart().expect("restart");
    assert_eq!(redis.port(), port, "same port after restart");
    assert!(redis.is_running());
    assert_eq!(
        redis.command(&["PING"]).expect("ping"),
        Resp::Simple("PONG".into())
    );
    assert_eq!(
        redis.command(&["GET", "k"]).expect("get"),
        Resp::Bulk(None),
        "no persistence: the restarted server is empty"
    );
    // restarting a running server works too
    redis.restart().expect("restart while running");
    assert_eq!(redis.port(), port);
    assert_eq!(
        redis.command(&["DBSIZE"]).expect("dbsize"),
        Resp::Integer(0)
    );
    // and nothing was written to its directory
    assert!(!redis.dir.path.join("dump.rdb").exists());
}

#[test]
fn redis_drop_kills_the_server_and_removes_its_directory() {
    let redis = RedisServer::start().expect("redis-server starts");
    let other = RedisServer::start().expect("a second one");
    assert_ne!(redis.port(), other.port());
    let (port, dir) = (redis.port(), redis.dir.path.clone());
    assert!(dir.is_dir());
    drop(redis);
    assert!(refused(port), "the process is gone");
    assert!(!dir.exists());
    assert_eq!(
        other.command(&["PING"]).expect("the other one still runs"),
        Resp::Simple("PONG".into())
    );
}

#[test]
fn redis_extra_args_are_passed_and_kept_across_restarts() {
    let mut redis =
        RedisServer::start_with_args(&["--requirepass", "s3cret"]).expect("starts with a password");
    for round in 0..2 {
        assert!(
            matches!(redis.command(&["PING"]).expect("reply"), Resp::Error(e) if e.starts_with("NOAUTH")),
            "round {round}"
        );
        redis.restart().expect("restart");
    }
    let mut stream = TcpStream::connect(("127.0.0.1", redis.port())).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    stream
        .write_all(&resp_encode(&["AUTH", "s3cret"]))
        .expect("write");
    stream.write_all(&resp_encode(&["PING"])).expect("write");
    let mut reader = BufReader::new(stream);
    assert_eq!(
        read_resp(&mut reader, 0).expect("auth"),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        read_resp(&mut reader, 0).expect("ping"),
        Resp::Simple("PONG".into())
    );
}

// --- nginx with the deploy file --------------------------------------------------------------

/// What a backend does with each request.
#[derive(Clone)]
enum Mode {
    /// 200 with the backend's name as the body (keep-alive).
    Answer,
    /// Reads the request, then closes the connection without answering.
    CloseAfterRequest,
    /// An SSE answer: one event, then waits for the gate, then a second event.
    Stream(Gate),
    /// A `total`-byte answer written as fast as the proxy takes it; the bytes written so far
    /// are counted in `written` (a write that blocks for 1 s ends the answer).
    Bulk {
        total: usize,
        written: Arc<AtomicUsize>,
    },
}

/// A latch a test opens to let a streaming backend finish.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        let (lock, cond) = &*self.0;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cond.notify_all();
    }

    fn wait(&self) {
        let (lock, cond) = &*self.0;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let _ = cond.wait_timeout_while(guard, STEP, |open| !*open);
    }
}

/// One request as a backend read it.
#[derive(Clone, Debug)]
struct Seen {
    /// The request line.
    line: String,
    /// The header lines, lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP/1.1 server on a std listener, recording what it reads.
struct Backend {
    name: &'static str,
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Request heads read (counted before the body is read).
    heads: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Backend {
    fn start(name: &'static str, mode: Mode) -> Backend {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, h, c, st) = (
            seen.clone(),
            heads.clone(),
            connections.clone(),
            stop.clone(),
        );
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (s, h, mode) = (s.clone(), h.clone(), mode.clone());
                thread::spawn(move || {
                    let _ = serve_connection(conn, name, &mode, &s, &h);
                });
            }
        });
        Backend {
            name,
            port,
            seen,
            heads,
            connections,
            stop,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop so it sees the flag
        let _ =
            TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)), STEP);
    }
}

fn serve_connection(
    stream: TcpStream,
    name: &str,
    mode: &Mode,
    seen: &Mutex<Vec<Seen>>,
    heads: &AtomicUsize,
) -> io::Result<()> {
    stream.set_read_timeout(Some(STEP))?;
    stream.set_write_timeout(Some(STEP))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(()); // the proxy closed the connection
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" {
                break;
            }
            if let Some((n, v)) = h.trim_end().split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        heads.fetch_add(1, Ordering::SeqCst);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        seen.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
            line: line.trim_end().to_owned(),
            headers,
            body,
        });
        match mode {
            Mode::Answer => write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{name}",
                name.len()
            )?,
            Mode::CloseAfterRequest => {
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Mode::Stream(gate) => {
                let chunk = |data: &str| format!("{:x}\r\n{data}\r\n", data.len());
                write!(
                    writer,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                     Transfer-Encoding: chunked\r\n\r\n{}",
                    chunk("data: one\n\n")
                )?;
                writer.flush()?;
                gate.wait();
                write!(writer, "{}0\r\n\r\n", chunk("data: two\n\n"))?;
            }
            Mode::Bulk { total, written } => {
                write!(
                    writer,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {total}\r\n\r\n"
                )?;
                writer.set_write_timeout(Some(Duration::from_secs(1)))?;
                let piece = [b'x'; 64 * 1024];
                while written.load(Ordering::SeqCst) < *total {
                    let n = piece.len().min(total - written.load(Ordering::SeqCst));
                    writer.write_all(&piece[..n])?;
                    written.fetch_add(n, Ordering::SeqCst);
                }
            }
        }
        writer.flush()?;
    }
}

/// A raw response read through nginx.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends one request (`Connection: close`) to nginx and reads the whole response.
fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    stream.set_write_timeout(Some(STEP)).expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).expect("write request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    parse_answer(&String::from_utf8_lossy(&raw))
}

fn parse_answer(raw: &str) -> Answer {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn start_nginx(upstreams: &[u16]) -> Nginx {
    Nginx::start(&deploy_conf(), 0, upstreams).expect("nginx starts with the deploy file")
}

#[test]
fn nginx_alternates_between_replicas_over_kept_alive_connections() {
    let (a, b) = (
        Backend::start("replica-a", Mode::Answer),
        Backend::start("replica-b", Mode::Answer),
    );
    let nginx = start_nginx(&[a.port, b.port]);
    assert_eq!(nginx.url(), format!("http://127.0.0.1:{}", nginx.port()));
    let mut names = Vec::new();
    for i in 0..6 {
        let path = format!("/v1/models?i={i}");
        let answer = send(nginx.port(), "GET", &path, &[], "");
        assert_eq!(answer.status, 200, "{}\n{}", answer.head, nginx.error_log());
        names.push(answer.body);
    }
    // sequential requests tie on open connections: least_conn then takes turns
    for pair in names.windows(2) {
        assert_ne!(pair[0], pair[1], "{names:?}");
    }
    for backend in [&a, &b] {
        let seen = backend.seen();
        assert_eq!(seen.len(), 3, "{}: {seen:?}", backend.name);
        for s in &seen {
            assert!(s.line.ends_with(" HTTP/1.1"), "{}", s.line);
            assert_eq!(
                s.header("connection"),
                None,
                "no Connection header upstream"
            );
            assert_eq!(s.header("host"), Some("gateway.test"));
        }
        assert_eq!(
            backend.connections(),
            1,
            "{}: upstream keepalive reuses one connection",
            backend.name
        );
    }
}

#[test]
fn nginx_passes_the_key_and_request_id_and_makes_one_when_missing() {
    let a = Backend::start("replica-a", Mode::Answer);
    let nginx = start_nginx(&[a.port, closed_port()]);
    let body = r#"{"model":"m","messages":[]}"#;
    let given = [
        ("Authorization", "Bearer gw-key-1"),
        ("X-Request-Id", "client-id-42"),
        ("Content-Type", "application/json"),
    ];
    let answer = send(nginx.port(), "POST", "/v1/chat/completions", &given, body);
    assert_eq!(answer.status, 200, "{}\n{}", answer.head, nginx.error_log());
    let answer = send(nginx.port(), "POST", "/v1/chat/completions", &[], body);
    assert_eq!(answer.status, 200, "{}", answer.head);

    let seen = a.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].line, "POST /v1/chat/completions HTTP/1.1");
    assert_eq!(seen[0].header("authorization"), Some("Bearer gw-key-1"));
    assert_eq!(seen[0].header("x-request-id"), Some("client-id-42"));
    assert_eq!(seen[0].header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen[0].body, body.as_bytes());
    assert_eq!(seen[1].header("authorization"), None);
    let made = seen[1]
        .header("x-request-id")
        .expect("nginx makes a request id");
    assert_eq!(made.len(), 32, "{made}");
    assert!(made.bytes().all(|c| c.is_ascii_hexdigit()), "{made}");
}

#[test]
fn nginx_streams_sse_chunks_without_buffering() {
    let gate = Gate::default();
    let a = Backend::start("replica-a", Mode::Stream(gate.clone()));
    let nginx = start_nginx(&[a.port, closed_port()]);
    let mut stream = TcpStream::connect(("127.0.0.1", nginx.port())).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    let body = r#"{"stream":true}"#;
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    // the first event arrives while the backend still holds back the second one
    while !String::from_utf8_lossy(&got).contains("data: one") {
        let n = stream
            .read(&mut buf)
            .expect("the first event arrives unbuffered");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        assert!(started.elapsed() < STEP, "no first event");
    }
    assert!(!String::from_utf8_lossy(&got).contains("data: two"));
    gate.open();
    stream.read_to_end(&mut got).expect("the rest");
    let answer = parse_answer(&String::from_utf8_lossy(&got));
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream")
    );
    assert!(answer.body.contains("data: two"), "{}", answer.body);
}

#[test]
fn nginx_sends_a_post_to_the_other_replica_when_one_refuses_connections() {
    let b = Backend::start("replica-b", Mode::Answer);
    let nginx = start_nginx(&[closed_port(), b.port]);
    for i in 0..4 {
        let answer = send(
            nginx.port(),
            "POST",
            "/v1/chat/completions",
            &[],
            &format!("{{\"i\":{i}}}"),
        );
        assert_eq!(
            answer.status,
            200,
            "request {i}: {}\n{}",
            answer.head,
            nginx.error_log()
        );
        assert_eq!(answer.body, "replica-b");
    }
    assert_eq!(b.seen().len(), 4);
}

#[test]
fn nginx_never_retries_a_post_a_replica_received_but_retries_a_get() {
    // POST: the replica that read the request and died is not followed by the other one
    let bad = Backend::start("bad", Mode::CloseAfterRequest);
    let good = Backend::start("good", Mode::Answer);
    let nginx = start_nginx(&[bad.port, good.port]);
    let mut statuses = Vec::new();
    for i in 0..2 {
        let id = format!("post-{i}");
        let answer = send(
            nginx.port(),
            "POST",
            "/v1/chat/completions",
            &[("X-Request-Id", &id)],
            "{}",
        );
        statuses.push(answer.status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 502], "{}", nginx.error_log());
    let (bad_seen, good_seen) = (bad.seen(), good.seen());
    assert_eq!(bad_seen.len(), 1, "{bad_seen:?}");
    assert_eq!(good_seen.len(), 1, "{good_seen:?}");
    assert_ne!(
        bad_seen[0].header("x-request-id"),
        good_seen[0].header("x-request-id"),
        "the POST the bad replica received was not sent again"
    );
    drop(nginx);

    // GET: the same failure is retried on the other replica
    let bad = Backend::start("bad", Mode::CloseAfterRequest);
    let good = Backend::start("good", Mode::Answer);
    let nginx = start_nginx(&[bad.port, good.port]);
    for i in 0..2 {
        let id = format!("get-{i}");
        let answer = send(
            nginx.port(),
            "GET",
            "/v1/models",
            &[("X-Request-Id", &id)],
            "",
        );
        assert_eq!(answer.status, 200, "{}\n{}", answer.head, nginx.error_log());
        assert_eq!(answer.body, "good");
    }
    let (bad_seen, good_seen) = (bad.seen(), good.seen());
    assert_eq!(bad_seen.len(), 1, "{bad_seen:?}");
    assert_eq!(good_seen.len(), 2, "{good_seen:?}");
    let retried = bad_seen[0].header("x-request-id");
    assert!(
        good_seen
            .iter()
            .any(|s| s.header("x-request-id") == retried),
        "the same GET went on to the good replica"
    );
}

#[test]
fn nginx_refuses_bodies_over_llmux_default_32_mib() {
    let a = Backend::start("replica-a", Mode::Answer);
    let nginx = start_nginx(&[a.port, closed_port()]);
    let mut stream = TcpStream::connect(("127.0.0.1", nginx.port())).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    let too_big = 32 * 1024 * 1024 + 1;
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Length: {too_big}\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    assert_eq!(parse_answer(&String::from_utf8_lossy(&raw)).status, 413);
    assert!(a.seen().is_empty());
}

#[test]
fn nginx_drop_stops_it_and_removes_its_directory() {
    let a = Backend::start("replica-a", Mode::Answer);
    let nginx = start_nginx(&[a.port, closed_port()]);
    let (port, dir) = (nginx.port(), nginx.dir.path.clone());
    assert!(dir.join("nginx.pid").is_file());
    assert_eq!(send(port, "GET", "/", &[], "").status, 200);
    drop(nginx);
    assert!(refused(port), "nothing listens after drop");
    assert!(!dir.exists());
}

#[test]
fn nginx_reports_a_taken_port_and_a_bad_template() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let e = Nginx::start(&deploy_conf(), port, &[closed_port(), closed_port()])
        .expect_err("the port is taken");
    assert!(e.to_string().contains("exited"), "{e}");
    assert!(e.to_string().contains("Address already in use"), "{e}");

    let e = Nginx::start(&deploy_conf(), 0, &[closed_port()]).expect_err("one upstream");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = Nginx::start(Path::new("/nonexistent/llmux.conf"), 0, &[]).expect_err("no file");
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(e.to_string().contains("/nonexistent/llmux.conf"), "{e}");
}

#[test]
fn nginx_streams_request_bodies_to_the_replica_as_they_arrive() {
    let a = Backend::start("replica-a", Mode::Answer);
    let nginx = start_nginx(&[a.port, closed_port()]);
    let mut stream = TcpStream::connect(("127.0.0.1", nginx.port())).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    let body = "y".repeat(1000);
    write!(
        stream,
        "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .expect("write the head and the first bytes");
    // proxy_request_buffering off: the replica gets the request before the body is complete
    let started = Instant::now();
    while a.heads.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "nginx held the request back until its body was complete"
        );
        thread::sleep(POLL);
    }
    stream.write_all(&body.as_bytes()[10..]).expect("the rest");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    assert_eq!(parse_answer(&String::from_utf8_lossy(&raw)).status, 200);
    assert_eq!(a.seen()[0].body, body.as_bytes());
}

#[test]
fn nginx_passes_backpressure_from_a_slow_client_to_the_replica() {
    // proxy_buffering off: nginx holds at most a buffer of the answer, so a client that does
    // not read stalls the replica (with buffering, nginx would take it all into a temp file)
    let total = 256 * 1024 * 1024;
    let written = Arc::new(AtomicUsize::new(0));
    let a = Backend::start(
        "replica-a",
        Mode::Bulk {
            total,
            written: written.clone(),
        },
    );
    let nginx = start_nginx(&[a.port, closed_port()]);
    let mut stream = TcpStream::connect(("127.0.0.1", nginx.port())).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    write!(
        stream,
        "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).expect("the answer starts");
    // wait until the replica stops making progress
    let mut last = usize::MAX;
    let started = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(300));
        let now = written.load(Ordering::SeqCst);
        if now == last || now >= total || started.elapsed() > STEP {
            break;
        }
        last = now;
    }
    let stalled_at = written.load(Ordering::SeqCst);
    assert!(
        stalled_at < total / 4,
        "the replica wrote {stalled_at} of {total} bytes to a client that read 1"
    );
}

#[test]
fn nginx_sends_new_requests_to_the_replica_with_fewer_open_streams() {
    let gate = Gate::default();
    let a = Backend::start("replica-a", Mode::Stream(gate.clone()));
    let b = Backend::start("replica-b", Mode::Answer);
    let nginx = start_nginx(&[a.port, b.port]);
    // open requests until one is a stream held open on replica a
    let mut held = None;
    for _ in 0..2 {
        let mut stream = TcpStream::connect(("127.0.0.1", nginx.port())).expect("connect");
        stream.set_read_timeout(Some(STEP)).expect("timeout");
        write!(
            stream,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Length: 2\r\n\r\n{{}}"
        )
        .expect("write");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).expect("read");
            got.extend_from_slice(&buf[..n]);
            if n == 0 || String::from_utf8_lossy(&got).contains("data: one") {
                break;
            }
        }
        if String::from_utf8_lossy(&got).contains("data: one") {
            held = Some(stream);
            break;
        }
    }
    let mut held = held.expect("one request went to replica a");
    // least_conn: while a has a stream open, new requests go to b
    for i in 0..4 {
        let answer = send(nginx.port(), "GET", "/v1/models", &[], "");
        assert_eq!(answer.body, "replica-b", "request {i}: {}", answer.head);
    }
    gate.open();
    let mut rest = Vec::new();
    held.read_to_end(&mut rest).expect("the held stream ends");
    assert!(String::from_utf8_lossy(&rest).contains("data: two"));
    assert_eq!(a.seen().len(), 1);
}
