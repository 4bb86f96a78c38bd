//! Connection setup: direct TCP, HTTP CONNECT tunnels and SOCKS5 proxies, under rustls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How requests reach the network.
#[derive(Clone, Default)]
pub enum Proxy {
    /// Connect directly.
    Direct,
    /// Use `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY` from the environment.
    #[default]
    FromEnv,
    /// Use this proxy for every request: `http://[user:pass@]host:port` (CONNECT tunnel) or
    /// `socks5://` / `socks5h://` (`socks5h` resolves names on the proxy).
    Url(crate::secret::Secret),
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proxy::Direct => f.write_str("Direct"),
            Proxy::FromEnv => f.write_str("FromEnv"),
            Proxy::Url(_) => f.write_str("Url(***)"),
        }
    }
}

impl Proxy {
    /// A cache key for the connection pool (the URL is part of it, never printed).
    pub(crate) fn key(&self) -> String {
        match self {
            Proxy::Direct => "direct".into(),
            Proxy::FromEnv => "env".into(),
            Proxy::Url(u) => format!("url:{}", u.expose()),
        }
    }

    pub(crate) fn matcher(&self) -> Option<Arc<Matcher>> {
        match self {
            Proxy::Direct => None,
            Proxy::FromEnv => Some(Arc::new(Matcher::from_env())),
            Proxy::Url(u) => Some(Arc::new(
                Matcher::builder().all(u.expose().to_owned()).no("").build(),
            )),
        }
    }
}

/// A connector that opens TCP connections directly or through a proxy.
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    http: HttpConnector,
    matcher: Option<Arc<Matcher>>,
}

impl ProxyConnector {
    pub(crate) fn new(proxy: &Proxy, connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        Self {
            http,
            matcher: proxy.matcher(),
        }
    }
}

fn with_port(dst: &Uri) -> Uri {
    if dst.port().is_some() {
        return dst.clone();
    }
    let port = if dst.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let host = dst.host().unwrap_or_default();
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut parts = dst.clone().into_parts();
    parts.authority = authority.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| dst.clone())
}

impl Service<Uri> for ProxyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let intercept = self.matcher.as_ref().and_then(|m| m.intercept(&dst));
        let http = self.http.clone();
        match intercept {
            None => {
                let mut http = http;
                Box::pin(async move { http.call(dst).await.map_err(Into::into) })
            }
            Some(i) => {
                let proxy_uri = i.uri().clone();
                let dst = with_port(&dst);
                match proxy_uri.scheme_str() {
                    Some(s @ ("socks5" | "socks5h")) => {
                        let mut socks =
                            SocksV5::new(proxy_uri.clone(), http).local_dns(s == "socks5");
                        if let Some((user, pass)) = i.raw_auth() {
                            socks = socks.with_auth(user.to_owned(), pass.to_owned());
                        }
                        Box::pin(async move {
                            socks
                                .call(dst)
                                .await
                                .map_err(|e| format!("SOCKS5 proxy: {e}").into())
                        })
                    }
                    _ => {
                        let mut tunnel = Tunnel::new(proxy_uri, http);
                        if let Some(auth) = i.basic_auth() {
                            tunnel = tunnel.with_auth(auth.clone());
                        }
                        Box::pin(async move {
                            tunnel
                                .call(dst)
                                .await
                                .map_err(|e| format!("proxy CONNECT: {e}").into())
                        })
                    }
                }
            }
        }
    }
}

/// The rustls client configuration: webpki roots, ring (ALPN h2/http1.1 is set by the HTTPS connector).
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports() {
        let u: Uri = "https://example.com/x".parse().expect("uri");
        assert_eq!(with_port(&u).port_u16(), Some(443));
        let u: Uri = "http://example.com".parse().expect("uri");
        assert_eq!(with_port(&u).port_u16(), Some(80));
    }

    #[test]
    fn proxy_debug_hides_credentials() {
        let p = Proxy::Url("http://user:hunter2@proxy:3128".into());
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
