//! Auth: the session cookies, the login help and the handling of refused cookies.

use llmux_core::http::{Response, StatusRules};
use llmux_core::{Cookies, Error, ProviderConfig, Result};
use serde_json::Value;

use crate::{AUTH_COOKIE, Inner, looks_like_html, origin_of};

impl Inner {
    /// Configuration cookies merged with the request's (the request wins).
    pub(crate) fn jar(&self, req_cookies: Option<&Cookies>) -> Cookies {
        let mut jar = self.config.cookies.clone().unwrap_or_default();
        if let Some(c) = req_cookies {
            jar.merge(c);
        }
        jar
    }

    pub(crate) fn login_url(&self) -> String {
        self.app.get().cloned().unwrap_or_else(|| self.base.clone())
    }

    pub(crate) fn cookie_howto(&self) -> String {
        let login = self.login_url();
        let host = origin_of(&login);
        format!(
            "log in at {login} in your browser, open the developer tools (F12) → Application/Storage → Cookies → {host}, copy the value of the `{AUTH_COOKIE}` cookie and set LLMUX_{}_COOKIES=\"{AUTH_COOKIE}=<value>\" (or pass it as ProviderConfig/ChatRequest cookies)",
            ProviderConfig::env_prefix(self.name()).trim_start_matches("LLMUX_")
        )
    }

    /// No `hf-chat` cookie at all.
    pub(crate) fn missing_cookie(&self) -> Error {
        Error::MissingAuth {
            provider: self.name().to_owned(),
            help: format!(
                "HuggingChat needs the `{AUTH_COOKIE}` session cookie: {}",
                self.cookie_howto()
            ),
            login_url: Some(self.login_url()),
        }
    }

    /// The server refused the cookies.
    pub(crate) fn refused(&self, what: &str) -> Error {
        Error::MissingAuth {
            provider: self.name().to_owned(),
            help: format!(
                "the server refused the `{AUTH_COOKIE}` cookie ({what}); it has expired or was logged out: {}",
                self.cookie_howto()
            ),
            login_url: Some(self.login_url()),
        }
    }

    /// Turns a non-2xx response into the typed error (401/403 → expired cookies).
    pub(crate) async fn status_error(&self, resp: Response) -> Error {
        let status = resp.status().as_u16();
        if !matches!(status, 401 | 403) {
            return resp.into_error(StatusRules::Generic).await;
        }
        let ct = resp.content_type().map(str::to_owned);
        let body = match resp.bytes().await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => return e,
        };
        let generic = llmux_core::http::status_error(
            self.name(),
            status,
            ct.as_deref(),
            &body,
            None,
            StatusRules::Generic,
        );
        if matches!(generic, Error::Cloudflare { .. }) {
            return generic;
        }
        match upstream_message(&body) {
            Some(m) => self.refused(&format!("HTTP {status}: {m}")),
            None => self.refused(&format!("HTTP {status}")),
        }
    }

    pub(crate) async fn checked(&self, resp: Response) -> Result<Response> {
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.status_error(resp).await)
        }
    }
}

/// The message of a chat-ui error body (`{"message": …}` or `{"error": …}`), or its plain text;
/// `None` for HTML pages and empty bodies.
pub(crate) fn upstream_message(body: &str) -> Option<String> {
    let text = body.trim();
    if text.is_empty() || looks_like_html(text) {
        return None;
    }
    let message = match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            let picked = v.get("message").or_else(|| v.get("error")).unwrap_or(&v);
            let picked = picked.get("message").unwrap_or(picked);
            match picked {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }
        }
        Err(_) => text.to_owned(),
    };
    Some(llmux_core::error::snippet(
        &llmux_core::http::strip_html(&message),
        300,
    ))
}
