//! The one HTTP client shared by all providers: hyper 1 + rustls (HTTP/1.1 and HTTP/2 by ALPN),
//! gzip/deflate/br decoding, CONNECT and SOCKS5 proxies, pooling, phase timeouts, bounded reads.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> llmux_core::Result<()> {
//! use llmux_core::http::{HttpClient, HttpConfig, Proxy};
//! # let upstream = llmux_testkit::openai::FakeOpenAi::new().models(["fake-model"]).start().await;
//! # let base_url = upstream.url("/v1");
//! // `base_url`: an OpenAI-compatible server, here a fake on 127.0.0.1 (so no proxy)
//! let http = HttpClient::new(HttpConfig { proxy: Proxy::Direct, ..HttpConfig::default() })?;
//! let models: serde_json::Value = http
//!     .get(format!("{base_url}/models"))
//!     .provider("openai-compat") // errors name the provider
//!     .send()
//!     .await?
//!     .error_for_status() // 4xx / 5xx become typed errors
//!     .await?
//!     .json()
//!     .await?;
//! assert_eq!(models["data"][0]["id"], "fake-model");
//! # Ok(()) }
//! ```

mod connector;
mod multipart;
mod response;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

pub use connector::Proxy;
pub use multipart::Multipart;
pub use response::{BodyStream, Response};
pub use status::{
    MessageRule, StatusRules, is_cloudflare, parse_retry_after, status_error, strip_html,
};

use crate::config::Timeouts;
use crate::error::{Error, Result, TimeoutPhase};
use crate::secret::{Cookies, Secret};
use connector::{ProxyConnector, tls_config};
use response::ReadLimits;

/// The browser-like user agent g4f sends (core.md §1.8).
pub const DEFAULT_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36";

/// Default response size limit (64 MiB).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024 * 1024;

type HyperClient = Client<HttpsConnector<ProxyConnector>, Full<Bytes>>;

/// Settings of an [`HttpClient`].
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Default proxy.
    pub proxy: Proxy,
    /// Default timeouts.
    pub timeouts: Timeouts,
    /// Response size limit.
    pub max_body: usize,
    /// `User-Agent` sent when a request sets none.
    pub user_agent: String,
    /// Idle pooled connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            proxy: Proxy::FromEnv,
            timeouts: Timeouts::default(),
            max_body: DEFAULT_MAX_BODY,
            user_agent: DEFAULT_USER_AGENT.into(),
            pool_max_idle_per_host: 64,
            pool_idle_timeout: Duration::from_secs(60),
        }
    }
}

struct Shared {
    config: HttpConfig,
    tls: rustls::ClientConfig,
    /// The pool of the configured proxy (looked up on every request: no lock, no key).
    default: std::sync::OnceLock<HyperClient>,
    /// Pools of other proxies (per-call proxies), by [`Proxy::key`].
    clients: Mutex<HashMap<String, HyperClient>>,
}

/// A cheap-to-clone HTTP client handle carrying this call's proxy, timeouts and deadline.
#[derive(Clone)]
pub struct HttpClient {
    shared: Arc<Shared>,
    proxy: Proxy,
    /// `proxy` is the configured one (its pool is `shared.default`).
    default_proxy: bool,
    timeouts: Timeouts,
    deadline: Option<Instant>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("proxy", &self.proxy)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl HttpClient {
    /// Builds a client.
    pub fn new(config: HttpConfig) -> Result<Self> {
        let tls = tls_config().map_err(|e| Error::invalid(format!("TLS setup failed: {e}")))?;
        Ok(Self {
            proxy: config.proxy.clone(),
            default_proxy: true,
            timeouts: config.timeouts,
            deadline: None,
            shared: Arc::new(Shared {
                config,
                tls,
                default: std::sync::OnceLock::new(),
                clients: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The same client with other timeouts.
    pub fn with_timeouts(&self, timeouts: Timeouts) -> Self {
        Self {
            timeouts,
            ..self.clone()
        }
    }

    /// The same client with a deadline for everything it does (the call's total budget).
    pub fn with_deadline(&self, deadline: Instant) -> Self {
        Self {
            deadline: Some(deadline),
            ..self.clone()
        }
    }

    /// The same client with another proxy.
    pub fn with_proxy(&self, proxy: Proxy) -> Self {
        Self {
            default_proxy: proxy.key() == self.shared.config.proxy.key(),
            proxy,
            ..self.clone()
        }
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The deadline of this call: the explicit one, else now + total timeout.
    pub fn deadline(&self) -> Instant {
        self.deadline
            .unwrap_or_else(|| Instant::now() + self.timeouts.total)
    }

    fn hyper(&self) -> HyperClient {
        if self.default_proxy {
            return self.shared.default.get_or_init(|| self.build()).clone();
        }
        let key = self.proxy.key();
        let mut clients = self
            .shared
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clients.entry(key).or_insert_with(|| self.build()).clone()
    }

    /// A pooled hyper client for this handle's proxy.
    fn build(&self) -> HyperClient {
        let cfg = &self.shared.config;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.shared.tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(ProxyConnector::new(&self.proxy, cfg.timeouts.connect));
        Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .build(connector)
    }

    /// Starts a request.
    pub fn request(&self, method: Method, url: impl Into<String>) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            provider: String::new(),
            error: None,
            max_body: None,
            follow_redirects: true,
            secrets: Vec::new(),
        }
    }

    /// Starts a GET.
    pub fn get(&self, url: impl Into<String>) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// Starts a POST.
    pub fn post(&self, url: impl Into<String>) -> RequestBuilder {
        self.request(Method::POST, url)
    }
}

/// A request under construction. Errors in the builder surface from [`RequestBuilder::send`].
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    client: HttpClient,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    provider: String,
    error: Option<Error>,
    max_body: Option<usize>,
    follow_redirects: bool,
    /// Secret values sent with this request, scrubbed from upstream error messages.
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

/// The URL without its query string and userinfo (safe to log).
pub fn redact_url(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or_default();
    match no_query.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((auth, path)) => format!(
                "{scheme}://{}/{path}",
                auth.rsplit('@').next().unwrap_or(auth)
            ),
            None => format!("{scheme}://{}", rest.rsplit('@').next().unwrap_or(rest)),
        },
        None => no_query.to_owned(),
    }
}

impl RequestBuilder {
    /// Names the provider in errors.
    pub fn provider(mut self, name: &str) -> Self {
        self.provider = name.to_owned();
        self
    }

    /// Adds a header (invalid names/values become an error at send time).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.insert(n, v);
            }
            _ => {
                self.error.get_or_insert(Error::invalid(format!(
                    "invalid HTTP header `{name}` (value not shown)"
                )));
            }
        }
        self
    }

    /// Adds a secret header, marked sensitive (never logged by hyper).
    pub fn secret_header(mut self, name: &str, value: &Secret) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.expose()),
        ) {
            (Ok(n), Ok(mut v)) => {
                v.set_sensitive(true);
                self.headers.insert(n, v);
                self.secrets.push(value.clone());
            }
            _ => {
                self.error.get_or_insert(Error::invalid(format!(
                    "invalid value for HTTP header `{name}` (value not shown): check for newlines or non-ASCII characters"
                )));
            }
        }
        self
    }

    /// `Authorization: Bearer <key>`.
    pub fn bearer(mut self, key: &Secret) -> Self {
        self.secrets.push(key.clone());
        let v = Secret::new(format!("Bearer {}", key.expose()));
        self.secret_header("authorization", &v)
    }

    /// `Cookie: a=1; b=2` (skipped when the jar is empty).
    pub fn cookies(mut self, cookies: &Cookies) -> Self {
        if cookies.is_empty() {
            return self;
        }
        self.secrets.extend(cookies.values().cloned());
        let v = Secret::new(cookies.header_value());
        self.secret_header("cookie", &v)
    }

    /// Appends query parameters (percent-encoded).
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        for (k, v) in pairs {
            self.url
                .push(if self.url.contains('?') { '&' } else { '?' });
            self.url
                .extend(utf8_percent_encode(k, NON_ALPHANUMERIC).map(str::to_owned));
            self.url.push('=');
            self.url
                .extend(utf8_percent_encode(v, NON_ALPHANUMERIC).map(str::to_owned));
        }
        self
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(v) => {
                self.body = Bytes::from(v);
                self.header("content-type", "application/json")
            }
            Err(e) => {
                self.error
                    .get_or_insert(Error::invalid(format!("cannot encode JSON body: {e}")));
                self
            }
        }
    }

    /// A raw body with its content type.
    pub fn body(mut self, body: impl Into<Bytes>, content_type: &str) -> Self {
        self.body = body.into();
        self.header("content-type", content_type)
    }

    /// A `multipart/form-data` body.
    pub fn multipart(self, form: Multipart) -> Self {
        let ct = form.content_type();
        self.body(form.into_bytes(), &ct)
    }

    /// Overrides the response size limit.
    pub fn max_body(mut self, limit: usize) -> Self {
        self.max_body = Some(limit);
        self
    }

    /// Disables redirect following.
    pub fn no_redirects(mut self) -> Self {
        self.follow_redirects = false;
        self
    }

    /// Sends the request; returns once headers arrived (any status).
    pub async fn send(self) -> Result<Response> {
        if let Some(e) = self.error {
            return Err(e.with_provider(&self.provider));
        }
        let client = &self.client;
        let deadline = client.deadline();
        let timeouts = client.timeouts;
        let provider = self.provider;
        let hyper = client.hyper();
        let mut hop = Hop {
            method: self.method,
            url: self.url,
            body: self.body,
            headers: with_default_headers(self.headers, &client.shared.config.user_agent),
        };
        for _hop in 0..=5 {
            let uri = hop_uri(&hop.url, &provider)?;
            let mut req = http::Request::builder()
                .method(hop.method.clone())
                .uri(uri.clone())
                .body(Full::new(hop.body.clone()))
                .map_err(|e| Error::invalid(format!("cannot build request: {e}")))?;
            *req.headers_mut() = hop.headers.clone();
            tracing::debug!(method = %hop.method, url = %redact_url(&hop.url), provider = %provider, "upstream request");

            let resp = first_byte(&hyper, req, &provider, timeouts, deadline).await?;
            let status = resp.status();
            if self.follow_redirects && status.is_redirection() {
                if let Some(loc) = resp
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                {
                    hop.redirect(&uri, status, loc);
                    continue;
                }
            }
            let limits = ReadLimits {
                idle: timeouts.idle,
                deadline,
                total: timeouts.total,
                max_body: self.max_body.unwrap_or(client.shared.config.max_body),
            };
            return Response::new(resp, provider, limits, self.secrets);
        }
        Err(Error::HttpStatus {
            provider,
            status: 310,
            message: "too many redirects".into(),
        })
    }
}

/// What [`RequestBuilder::send`] sends on the current hop of a redirect chain.
struct Hop {
    method: Method,
    url: String,
    body: Bytes,
    headers: HeaderMap,
}

impl Hop {
    /// The next hop after a redirect from `uri` with status `status` to `loc`: credentials are
    /// dropped when it leaves the origin; 301-303 turn a request other than GET/HEAD into a GET
    /// without a body.
    fn redirect(&mut self, uri: &Uri, status: http::StatusCode, loc: &str) {
        let next = resolve_location(uri, loc);
        if origin_of(&next) != origin_of(&self.url) {
            self.headers.remove(http::header::AUTHORIZATION);
            self.headers.remove(http::header::COOKIE);
        }
        if matches!(status.as_u16(), 301..=303) && self.method != Method::GET {
            self.method = if self.method == Method::HEAD {
                Method::HEAD
            } else {
                Method::GET
            };
            self.body = Bytes::new();
            self.headers.remove(http::header::CONTENT_TYPE);
        }
        self.url = next;
    }
}

/// `headers` with what every request carries unless set: the user agent, `Accept-Encoding`
/// (the decoders llmux has) and `Accept: */*`.
fn with_default_headers(mut headers: HeaderMap, user_agent: &str) -> HeaderMap {
    if !headers.contains_key(http::header::USER_AGENT) {
        if let Ok(v) = HeaderValue::from_str(user_agent) {
            headers.insert(http::header::USER_AGENT, v);
        }
    }
    headers
        .entry(http::header::ACCEPT_ENCODING)
        .or_insert(HeaderValue::from_static("gzip, deflate, br"));
    headers
        .entry(http::header::ACCEPT)
        .or_insert(HeaderValue::from_static("*/*"));
    headers
}

/// The URI of a hop; only absolute `http(s)` URLs are sent.
fn hop_uri(url: &str, provider: &str) -> Result<Uri> {
    let uri: Uri = url.parse().map_err(|_| {
        Error::invalid(format!("invalid URL `{}`", redact_url(url))).with_provider(provider)
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(Error::invalid(format!(
            "URL `{}` must be absolute http(s)",
            redact_url(url)
        )));
    }
    Ok(uri)
}

/// Sends one hop and waits for the response headers, within the connect and first-byte budget
/// and the call's deadline.
async fn first_byte(
    hyper: &HyperClient,
    req: http::Request<Full<Bytes>>,
    provider: &str,
    timeouts: Timeouts,
    deadline: Instant,
) -> Result<http::Response<hyper::body::Incoming>> {
    let budget = timeouts.connect + timeouts.first_byte;
    let limit = (Instant::now() + budget).min(deadline);
    match tokio::time::timeout_at(limit, hyper.request(req)).await {
        Err(_) => {
            let (phase, after) = if Instant::now() >= deadline {
                (TimeoutPhase::Total, timeouts.total)
            } else {
                (TimeoutPhase::FirstByte, budget)
            };
            Err(Error::Timeout {
                provider: provider.to_owned(),
                phase,
                after,
            })
        }
        Ok(Err(e)) => Err(map_client_error(provider, &e, timeouts)),
        Ok(Ok(r)) => Ok(r),
    }
}

fn origin_of(url: &str) -> String {
    let mut it = url.splitn(4, '/');
    let scheme = it.next().unwrap_or_default();
    let _ = it.next();
    let host = it.next().unwrap_or_default();
    format!("{scheme}//{host}")
}

fn resolve_location(base: &Uri, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return loc.to_owned();
    }
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    if let Some(rest) = loc.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    if loc.starts_with('/') {
        return format!("{scheme}://{authority}{loc}");
    }
    let path = base.path();
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    format!("{scheme}://{authority}{dir}/{loc}")
}

/// A short description of an error chain (no URLs with credentials: hyper's errors carry none).
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        src = s.source();
    }
    out
}

fn map_client_error(
    provider: &str,
    e: &hyper_util::client::legacy::Error,
    timeouts: Timeouts,
) -> Error {
    let text = describe(e);
    if e.is_connect() && text.to_ascii_lowercase().contains("timed out") {
        return Error::Timeout {
            provider: provider.to_owned(),
            phase: TimeoutPhase::Connect,
            after: timeouts.connect,
        };
    }
    Error::Connect {
        provider: provider.to_owned(),
        message: text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_redaction() {
        assert_eq!(
            redact_url("https://user:pw@host.io/a/b?key=secret#x"),
            "https://host.io/a/b"
        );
        assert_eq!(redact_url("http://h:1"), "http://h:1");
    }

    #[test]
    fn locations() {
        let base: Uri = "http://h:1/a/b?q".parse().expect("uri");
        assert_eq!(resolve_location(&base, "/x"), "http://h:1/x");
        assert_eq!(resolve_location(&base, "c"), "http://h:1/a/c");
        assert_eq!(resolve_location(&base, "https://o/p"), "https://o/p");
        assert_eq!(origin_of("http://h:1/a"), "http://h:1");
    }

    #[tokio::test]
    async fn connect_refused_is_typed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let http = HttpClient::new(HttpConfig {
            proxy: Proxy::Direct,
            ..HttpConfig::default()
        })
        .expect("client");
        let err = http
            .get(format!("http://127.0.0.1:{port}/"))
            .provider("p")
            .send()
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, Error::Connect { .. }), "{err}");
        let err = http.get("ftp://x/").send().await.expect_err("bad scheme");
        assert!(matches!(err, Error::InvalidInput(_)));
    }
}
