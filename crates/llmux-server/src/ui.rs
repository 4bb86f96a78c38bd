//! The web chat page: static assets embedded in the binary, served at `/` (and `/chat`) and
//! under `/ui/`, without the gateway key (the page asks for it and sends it on its API calls).
//!
//! Every asset gets a strong `ETag` (a SHA-256 prefix of its bytes; `If-None-Match` answers
//! 304), `cache-control: no-cache` (revalidate, so a new binary is picked up at once), a strict
//! `content-security-policy` (scripts, styles and fetches from this origin only; images and
//! audio also from `data:`/`blob:` URLs; no inline script or style, no framing) and
//! `x-content-type-options: nosniff`. The page uses only the public `/v1/*` API.

use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderValue, IF_NONE_MATCH};
use http::{HeaderMap, Method, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::body::Body;
use crate::config::ServerConfig;

/// The page's Content-Security-Policy: nothing from other origins, no inline code.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' data: blob:; connect-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its URL path, content type and bytes.
struct Asset {
    path: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

macro_rules! asset {
    ($path:literal, $mime:expr) => {
        Asset {
            path: concat!("/ui/", $path),
            mime: $mime,
            bytes: include_bytes!(concat!("../ui/", $path)),
        }
    };
}

/// Every file of the page (the first is the page itself).
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("store.js", JS),
    asset!("render.js", JS),
    asset!("style.css", CSS),
    asset!("icon.svg", "image/svg+xml"),
    asset!("vendor/marked.esm.js", JS),
    asset!("vendor/purify.min.js", JS),
    asset!("vendor/marked.LICENSE", TEXT),
    asset!("vendor/dompurify.LICENSE", TEXT),
];

/// The strong ETag of each asset, in [`ASSETS`] order (computed once).
fn etags() -> &'static [HeaderValue] {
    static TAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.bytes);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                HeaderValue::from_str(&format!("\"{hex}\""))
                    .unwrap_or(HeaderValue::from_static("\"0\""))
            })
            .collect()
    })
}

/// Which asset `path` names, if any.
fn lookup(path: &str) -> Option<usize> {
    let path = match path {
        "/" | "/chat" | "/chat/" | "/ui" | "/ui/" => "/ui/index.html",
        p => p,
    };
    ASSETS.iter().position(|a| a.path == path)
}

/// Whether `If-None-Match` lists `etag` (or is `*`). Weak comparison, as RFC 9110 asks for
/// `If-None-Match`.
fn matches(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let tag = etag.as_bytes();
    headers.get_all(IF_NONE_MATCH).iter().any(|v| {
        v.as_bytes().split(|b| *b == b',').any(|t| {
            let t = t.trim_ascii();
            t == b"*" || t.strip_prefix(b"W/").unwrap_or(t) == tag
        })
    })
}

fn security_headers(h: &mut HeaderMap) {
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

/// The page's answer to a request, or `None` when the request is not for the page (the UI is
/// off, the path is not one of its assets, or the method is neither GET nor HEAD): the caller
/// routes it as an API request then.
pub(crate) fn respond(
    config: &ServerConfig,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response<Body>> {
    if !config.ui || (method != Method::GET && method != Method::HEAD) {
        return None;
    }
    let i = lookup(path)?;
    let asset = &ASSETS[i];
    let etag = etags()[i].clone();
    let not_modified = matches(headers, &etag);
    let mut resp = Response::new(Body::Full(None));
    let h = resp.headers_mut();
    h.insert(ETAG, etag);
    security_headers(h);
    if not_modified {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return Some(resp);
    }
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(CONTENT_LENGTH, HeaderValue::from(asset.bytes.len()));
    if method == Method::GET {
        *resp.body_mut() = Body::Full(Some(Bytes::from_static(asset.bytes)));
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::Request;
    use http_body_util::{BodyExt, Full};

    use super::*;
    use crate::routes::{State, handle};

    fn get(method: Method, path: &str, etag: Option<&HeaderValue>) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = etag {
            b = b.header(IF_NONE_MATCH, t);
        }
        b.body(Full::new(Bytes::new())).expect("request")
    }

    fn state(config: ServerConfig) -> Arc<State> {
        let client = llmux::Client::builder()
            .ignore_env()
            .registrations(Vec::new())
            .build()
            .expect("client");
        Arc::new(State::new(client, config))
    }

    async fn body(resp: Response<Body>) -> Bytes {
        resp.into_body().collect().await.expect("body").to_bytes()
    }

    #[tokio::test]
    async fn page_has_strict_headers_and_a_strong_etag() {
        let s = state(ServerConfig::default());
        for path in ["/", "/chat", "/chat/", "/ui/index.html"] {
            let resp = handle(s.clone(), get(Method::GET, path, None)).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let h = resp.headers();
            assert_eq!(h[CONTENT_TYPE], HTML);
            assert_eq!(h["content-security-policy"], CSP);
            assert!(!CSP.contains("unsafe") && !CSP.contains("http"));
            assert_eq!(h["x-content-type-options"], "nosniff");
            let etag = h[ETAG].to_str().expect("etag");
            assert!(etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"));
            let b = body(resp).await;
            assert!(b.starts_with(b"<!doctype html>"));
        }
    }

    #[tokio::test]
    async fn if_none_match_gives_304_and_head_has_no_body() {
        let s = state(ServerConfig::default());
        let resp = handle(s.clone(), get(Method::GET, "/ui/app.js", None)).await;
        assert_eq!(resp.headers()[CONTENT_TYPE], JS);
        let etag = resp.headers()[ETAG].clone();
        let len = body(resp).await.len();
        let resp = handle(s.clone(), get(Method::GET, "/ui/app.js", Some(&etag))).await;
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(resp.headers()[ETAG], etag);
        assert!(body(resp).await.is_empty());
        let weak = HeaderValue::from_str(&format!("\"x\", W/{}", etag.to_str().expect("ascii")))
            .expect("header");
        let resp = handle(s.clone(), get(Method::GET, "/ui/app.js", Some(&weak))).await;
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        let other = HeaderValue::from_static("\"other\"");
        let resp = handle(s.clone(), get(Method::GET, "/ui/app.js", Some(&other))).await;
        assert_eq!(resp.status(), StatusCode::OK);

        let resp = handle(s.clone(), get(Method::HEAD, "/ui/app.js", None)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[CONTENT_LENGTH], len.to_string().as_str());
        assert_eq!(resp.headers()[ETAG], etag);
        assert!(body(resp).await.is_empty());
    }

    #[tokio::test]
    async fn every_asset_has_its_type() {
        let s = state(ServerConfig::default());
        for a in ASSETS {
            let resp = handle(s.clone(), get(Method::GET, a.path, None)).await;
            assert_eq!(resp.status(), StatusCode::OK, "{}", a.path);
            assert_eq!(resp.headers()[CONTENT_TYPE], a.mime, "{}", a.path);
            assert_eq!(body(resp).await.len(), a.bytes.len());
        }
        let tags = etags();
        let distinct: std::collections::HashSet<_> = tags.iter().collect();
        assert_eq!(distinct.len(), ASSETS.len());
    }

    #[tokio::test]
    async fn page_needs_no_key_but_the_api_does() {
        let s = state(ServerConfig {
            api_key: Some("k".into()),
            ..ServerConfig::default()
        });
        let resp = handle(s.clone(), get(Method::GET, "/", None)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = handle(s.clone(), get(Method::GET, "/v1/models", None)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let b = body(resp).await;
        assert!(String::from_utf8_lossy(&b).contains("missing_api_key"));
    }

    #[tokio::test]
    async fn no_ui_gives_404_and_other_paths_fall_through() {
        let s = state(ServerConfig {
            ui: false,
            ..ServerConfig::default()
        });
        for path in ["/", "/chat", "/ui/app.js"] {
            let resp = handle(s.clone(), get(Method::GET, path, None)).await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let s = state(ServerConfig::default());
        let resp = handle(s.clone(), get(Method::GET, "/ui/nope.js", None)).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let resp = handle(s.clone(), get(Method::POST, "/", None)).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            respond(
                &ServerConfig::default(),
                &Method::DELETE,
                "/",
                &HeaderMap::new()
            )
            .map(|r| r.status()),
            None
        );
        let resp = handle(s, get(Method::GET, "/health", None)).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
