//! [`FakeServer`], [`Router`] and request recording.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use crate::fault::{self, Fault};
use crate::reply::{Reply, ResponseBody};

/// A request as the fake server received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: Method,
    /// Path without the query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Raw query string without `?`, if any.
    pub query: Option<String>,
    /// Request headers (names are lower-case).
    pub headers: HeaderMap,
    /// The full request body.
    pub body: Bytes,
    /// Values of the `{param}` segments of the matched route; a trailing `*`
    /// stores the rest of the path under `"*"`.
    pub params: BTreeMap<String, String>,
    /// 1-based number of the TCP connection the request came on (in accept
    /// order), so tests can tell keep-alive reuse from new connections.
    pub connection: usize,
}

impl RecordedRequest {
    /// A header value as text (`name` is case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A `{param}` value of the matched route.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A query parameter, percent- and `+`-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k) == name).then(|| decode(v))
        })
    }

    /// The body as (lossy) UTF-8 text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The token of an `Authorization: Bearer <token>` header.
    pub fn bearer_token(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }
}

/// A boxed route handler.
pub type Handler =
    Arc<dyn Fn(RecordedRequest) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// A path pattern: literal segments, `{name}` segments matching any one
/// segment, and an optional trailing `*` matching the rest (possibly empty).
/// `*` alone matches every path. Empty segments and trailing slashes are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<Segment>,
    wildcard: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl PathPattern {
    /// Parses a pattern such as `/v1/models/{id}` or `/files/*`.
    pub fn new(pattern: &str) -> Self {
        let mut segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        let wildcard = segments.last() == Some(&"*");
        if wildcard {
            segments.pop();
        }
        let segments = segments
            .into_iter()
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                },
            )
            .collect();
        PathPattern { segments, wildcard }
    }

    /// Matches `path`, returning the captured params.
    pub fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let fixed = self.segments.len();
        if parts.len() < fixed || (!self.wildcard && parts.len() != fixed) {
            return None;
        }
        let mut params = BTreeMap::new();
        for (seg, part) in self.segments.iter().zip(&parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => {
                    params.insert(name.clone(), (*part).to_owned());
                }
            }
        }
        if self.wildcard {
            params.insert("*".to_owned(), parts[fixed..].join("/"));
        }
        Some(params)
    }
}

#[derive(Clone)]
struct Route {
    method: Option<Method>,
    pattern: PathPattern,
    handler: Handler,
}

/// Scripted routes: method + [`PathPattern`] → async handler returning a [`Reply`].
///
/// Routes are tried in the order they were added; the first match wins.
/// A path with no route gets a 404 JSON error, a path matched only with
/// another method a 405.
///
/// ```
/// use llmux_testkit::{Reply, Router};
/// use http::Method;
/// let router = Router::new()
///     .route(Method::GET, "/v1/models/{id}", |req| async move {
///         Reply::json(200, &serde_json::json!({ "id": req.param("id") }))
///     })
///     .reply(Method::POST, "/ping", Reply::text(200, "pong"));
/// # let _ = router;
/// ```
#[derive(Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|r| format!("{:?} {:?}", r.method, r.pattern))
            .collect();
        f.debug_struct("Router").field("routes", &routes).finish()
    }
}

impl Router {
    /// An empty router (every request gets a 404).
    pub fn new() -> Self {
        Router::default()
    }

    fn push<F, Fut>(mut self, method: Option<Method>, pattern: &str, handler: F) -> Self
    where
        F: Fn(RecordedRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        self.routes.push(Route {
            method,
            pattern: PathPattern::new(pattern),
            handler,
        });
        self
    }

    /// Adds a route for `method` + `pattern`.
    pub fn route<F, Fut>(self, method: Method, pattern: &str, handler: F) -> Self
    where
        F: Fn(RecordedRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.push(Some(method), pattern, handler)
    }

    /// Adds a `GET` route.
    pub fn get<F, Fut>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(RecordedRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.route(Method::GET, pattern, handler)
    }

    /// Adds a `POST` route.
    pub fn post<F, Fut>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(RecordedRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.route(Method::POST, pattern, handler)
    }

    /// Adds a route matching any method.
    pub fn any<F, Fut>(self, pattern: &str, handler: F) -> Self
    where
        F: Fn(RecordedRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        self.push(None, pattern, handler)
    }

    /// Adds a route that always answers a clone of `reply`.
    pub fn reply(self, method: Method, pattern: &str, reply: Reply) -> Self {
        self.route(method, pattern, move |_| {
            let reply = reply.clone();
            async move { reply }
        })
    }

    /// Appends all routes of `other` (after this router's own routes).
    pub fn merge(mut self, other: Router) -> Self {
        self.routes.extend(other.routes);
        self
    }

    /// Finds the handler for a request, or the 404/405 reply.
    fn find(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<(Handler, BTreeMap<String, String>), Box<Reply>> {
        let mut path_matched = false;
        for route in &self.routes {
            if let Some(params) = route.pattern.matches(path) {
                if route.method.as_ref().is_none_or(|m| m == method) {
                    return Ok((route.handler.clone(), params));
                }
                path_matched = true;
            }
        }
        let (status, kind) = if path_matched {
            (405, "method_not_allowed")
        } else {
            (404, "not_found")
        };
        Err(Box::new(Reply::json(
            status,
            &json!({"error": {
                "message": format!("fake server: no route for {method} {path}"),
                "type": kind,
                "code": kind,
            }}),
        )))
    }
}

/// Aborts one connection from inside a request (used by faults).
#[derive(Clone, Default)]
pub(crate) struct Kill(Arc<Notify>);

impl Kill {
    /// Drops the connection this handle belongs to.
    pub(crate) fn fire(&self) {
        self.0.notify_one();
    }
}

struct Shared {
    router: Router,
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<Vec<(PathPattern, VecDeque<Fault>)>>,
    accepted: AtomicUsize,
    open: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Pops the next fault queued for `path`.
    fn take_fault(&self, path: &str) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let idx = faults
            .iter()
            .position(|(p, q)| !q.is_empty() && p.matches(path).is_some())?;
        let fault = faults[idx].1.pop_front();
        faults.retain(|(_, q)| !q.is_empty());
        fault
    }

    /// Pops a [`Fault::Refuse`] at the front of any queue (checked on accept).
    fn take_refuse(&self) -> bool {
        let mut faults = lock(&self.faults);
        let Some(idx) = faults
            .iter()
            .position(|(_, q)| matches!(q.front(), Some(Fault::Refuse)))
        else {
            return false;
        };
        faults[idx].1.pop_front();
        faults.retain(|(_, q)| !q.is_empty());
        true
    }
}

/// Decrements the open-connection count when a connection task ends or is aborted.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A fake upstream: an HTTP/1.1 (keep-alive) server on `127.0.0.1` that
/// answers from a [`Router`], records every request and can inject [`Fault`]s.
///
/// Dropping it stops the accept loop and aborts every open connection.
/// Must be started inside a Tokio runtime.
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl FakeServer {
    /// Starts serving `router` on `127.0.0.1` at a free port.
    ///
    /// # Panics
    /// If no loopback port can be bound (see [`FakeServer::try_start_at`]).
    pub async fn start(router: Router) -> FakeServer {
        match Self::try_start_at(router, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await {
            Ok(s) => s,
            Err(e) => panic!("llmux-testkit: cannot bind 127.0.0.1:0: {e}"),
        }
    }

    /// Starts serving `router` on `addr`, which must be a loopback address
    /// (port 0 picks a free port). Non-loopback addresses are refused with
    /// [`io::ErrorKind::PermissionDenied`].
    pub async fn try_start_at(router: Router, addr: SocketAddr) -> io::Result<FakeServer> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "llmux-testkit only binds loopback addresses, not {}",
                    addr.ip()
                ),
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            router,
            requests: Mutex::default(),
            faults: Mutex::default(),
            accepted: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
        });
        let accept_task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FakeServer {
            addr,
            shared,
            accept_task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path` (e.g. `url("/v1")`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The requests whose path matches `pattern` (a plain path or a [`PathPattern`]).
    pub fn requests_to(&self, pattern: &str) -> Vec<RecordedRequest> {
        let p = PathPattern::new(pattern);
        lock(&self.shared.requests)
            .iter()
            .filter(|r| p.matches(&r.path).is_some())
            .cloned()
            .collect()
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// TCP connections accepted so far (refused ones included).
    pub fn accepted_connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// TCP connections currently open on the server side.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Makes the next request whose path matches `pattern` fail with `fault`.
    /// Faults queue up per pattern and are used once each, in order; `"*"`
    /// matches every path. See [`Fault`] for what each one does.
    pub fn inject(&self, pattern: &str, fault: Fault) {
        self.inject_times(pattern, fault, 1);
    }

    /// Makes the next `n` matching requests fail with `fault`, then recover.
    pub fn inject_times(&self, pattern: &str, fault: Fault, n: usize) {
        let p = PathPattern::new(pattern);
        let mut faults = lock(&self.shared.faults);
        let idx = match faults.iter().position(|(q, _)| *q == p) {
            Some(i) => i,
            None => {
                faults.push((p, VecDeque::new()));
                faults.len() - 1
            }
        };
        faults[idx].1.extend(std::iter::repeat_n(fault, n));
    }

    /// Faults still queued (not yet used) across all patterns.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).iter().map(|(_, q)| q.len()).sum()
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Polls `cond` every few milliseconds until it holds or `timeout` passes;
    /// returns whether it held.
    pub async fn wait_until(&self, timeout: Duration, cond: impl Fn(&FakeServer) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if cond(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits (up to `timeout`) until at least `n` requests were received.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.request_count() >= n).await
    }

    /// Waits (up to `timeout`) until exactly `n` connections are open, e.g.
    /// `wait_for_open_connections(0, ..)` to prove a client closed everything.
    pub async fn wait_for_open_connections(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.open_connections() == n)
            .await
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Connection tasks live in this set: aborting the accept task drops the
    // set, which aborts every connection.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let id = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                    if shared.take_refuse() {
                        drop(stream);
                        continue;
                    }
                    shared.open.fetch_add(1, Ordering::SeqCst);
                    conns.spawn(serve_connection(stream, id, shared.clone()));
                }
                // e.g. too many open files: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, id: usize, shared: Arc<Shared>) {
    let _guard = OpenGuard(shared.clone());
    let _ = stream.set_nodelay(true);
    let kill = Kill::default();
    let svc_kill = kill.clone();
    let service = service_fn(move |req| handle(req, id, shared.clone(), svc_kill.clone()));
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        _ = kill.0.notified() => {}
    }
}

async fn handle(
    req: Request<Incoming>,
    connection: usize,
    shared: Arc<Shared>,
    kill: Kill,
) -> Result<Response<ResponseBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let mut request = RecordedRequest {
        method: parts.method,
        path,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        params: BTreeMap::new(),
        connection,
    };
    let route = shared.router.find(&request.method, &request.path);
    if let Ok((_, params)) = &route {
        request.params = params.clone();
    }
    lock(&shared.requests).push(request.clone());
    let fault = shared.take_fault(&request.path);
    let real = async move {
        match route {
            Ok((handler, _)) => handler(request).await,
            Err(not_found) => *not_found,
        }
    };
    Ok(match fault {
        None => real.await.into_response(),
        Some(f) => fault::apply(f, real, kill).await,
    })
}

/// A loopback port with nothing listening on it (bound, then released), for
/// real "connection refused" errors. Another process could grab it in
/// between, but that is very unlikely.
///
/// # Panics
/// If no loopback port can be bound at all.
pub fn closed_port() -> u16 {
    match std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("llmux-testkit: cannot bind 127.0.0.1:0: {e}"),
    }
}
