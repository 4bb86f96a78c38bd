//! The three cookie file formats: `.har` captures, JSON cookie exports and Netscape
//! `cookies.txt`.

use std::path::Path;

use serde_json::Value;

use crate::{CookieRecord, FileError};

/// A cookie file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An HTTP Archive (`.har`): the cookies of each captured request, by request host.
    Har,
    /// A browser-extension export: a JSON list of `{domain, name, value, expirationDate}`.
    Json,
    /// Netscape / curl `cookies.txt` (tab-separated, seven fields a line).
    Netscape,
}

impl Format {
    /// The format a file name says (`.har`, `.json`, `.txt`); `None` for other names.
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "har" => Some(Self::Har),
            "json" => Some(Self::Json),
            "txt" => Some(Self::Netscape),
            _ => None,
        }
    }
}

/// Parses the text of `path` in the format its name says.
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<CookieRecord>, FileError> {
    match Format::of(path) {
        Some(Format::Har) => parse_har(path, text),
        Some(Format::Json) => parse_json(path, text),
        Some(Format::Netscape) => parse_netscape(path, text),
        None => Err(FileError::new(
            path,
            None,
            "unknown cookie file type: name it *.har, *.json (cookie export) or *.txt (Netscape cookies.txt)",
        )),
    }
}

fn json_doc(path: &Path, text: &str) -> Result<Value, FileError> {
    serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| FileError::new(path, Some(e.line()), format!("not valid JSON: {e}")))
}

/// Host of an `http(s)` URL, lower-cased, without port or user info.
pub(crate) fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A HAR file: `log.entries[].request` with `url` and `cookies[]` (`name`, `value`,
/// `expires` as an ISO 8601 date or null); a request without `cookies` falls back to its
/// `Cookie` header. The domain of each cookie is the request's host.
pub fn parse_har(path: &Path, text: &str) -> Result<Vec<CookieRecord>, FileError> {
    let doc = json_doc(path, text)?;
    let entries = doc
        .pointer("/log/entries")
        .and_then(Value::as_array)
        .ok_or_else(|| FileError::new(path, None, "not a HAR file: no `log.entries` list"))?;
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = |m: &str| FileError::new(path, None, format!("entry {}: {m}", i + 1));
        let Some(req) = entry.get("request") else {
            return Err(at("no `request`"));
        };
        let url = req.get("url").and_then(Value::as_str).unwrap_or("");
        let Some(host) = url_host(url) else {
            return Err(at("the request has no http(s) `url`"));
        };
        let listed = req.get("cookies").and_then(Value::as_array);
        match listed.filter(|l| !l.is_empty()) {
            Some(list) => {
                for c in list {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                    if name.is_empty() {
                        return Err(at("a cookie without a `name`"));
                    }
                    let value = c.get("value").and_then(Value::as_str).unwrap_or("");
                    let expires = match c.get("expires") {
                        Some(Value::String(s)) if !s.is_empty() => {
                            Some(crate::time::parse_iso8601(s).ok_or_else(|| {
                                at(&format!("cookie `{name}`: bad `expires` date"))
                            })?)
                        }
                        _ => None,
                    };
                    out.push(CookieRecord::new(path, &host, name, value, expires));
                }
            }
            None => out.extend(header_cookies(path, &host, req)),
        }
    }
    Ok(dedupe(out))
}

/// The cookies of a HAR request's `Cookie` header.
fn header_cookies(path: &Path, host: &str, req: &Value) -> Vec<CookieRecord> {
    let headers = req.get("headers").and_then(Value::as_array);
    let header = headers.into_iter().flatten().find(|h| {
        h.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.eq_ignore_ascii_case("cookie"))
    });
    let value = header.and_then(|h| h.get("value")).and_then(Value::as_str);
    let jar = llmux_core::Cookies::parse(value.unwrap_or(""));
    jar.names()
        .zip(jar.values())
        .map(|(n, v)| CookieRecord::new(path, host, n, v.expose(), None))
        .collect()
}

/// Keeps the last record of each (domain, name): a capture sees a cookie many times.
fn dedupe(records: Vec<CookieRecord>) -> Vec<CookieRecord> {
    let mut out: Vec<CookieRecord> = Vec::with_capacity(records.len());
    for r in records {
        match out
            .iter_mut()
            .find(|x| x.domain == r.domain && x.name == r.name)
        {
            Some(slot) => *slot = r,
            None => out.push(r),
        }
    }
    out
}

/// A JSON cookie export (EditThisCookie, Cookie-Editor, …): a list of objects with `domain`,
/// `name`, `value` and an expiry in seconds since the epoch (`expirationDate`, `expires` or
/// `expiry`; absent for session cookies); also `{"cookies": [...]}`.
pub fn parse_json(path: &Path, text: &str) -> Result<Vec<CookieRecord>, FileError> {
    let doc = json_doc(path, text)?;
    let list = match &doc {
        Value::Array(a) => a,
        Value::Object(o) => o
            .get("cookies")
            .and_then(Value::as_array)
            .ok_or_else(|| FileError::new(path, None, "expected a JSON list of cookies"))?,
        _ => {
            return Err(FileError::new(
                path,
                None,
                "expected a JSON list of cookies",
            ));
        }
    };
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let at = |m: &str| FileError::new(path, None, format!("cookie {}: {m}", i + 1));
        let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        let (domain, name) = (field("domain"), field("name"));
        if domain.is_empty() {
            return Err(at("no `domain`"));
        }
        if name.is_empty() {
            return Err(at("no `name`"));
        }
        let expiry = ["expirationDate", "expires", "expiry"]
            .iter()
            .find_map(|k| c.get(*k).filter(|v| !v.is_null()));
        let expires =
            match expiry {
                None => None,
                Some(v) => Some(v.as_f64().map(|f| f as i64).ok_or_else(|| {
                    at(&format!("`{name}`: the expiry is not a number of seconds"))
                })?),
            };
        out.push(CookieRecord::new(
            path,
            domain,
            name,
            field("value"),
            expires,
        ));
    }
    Ok(out)
}

/// Netscape `cookies.txt`: `domain  include-subdomains  path  secure  expiry  name  value`,
/// tab-separated; `#` comments (and the `#HttpOnly_` domain prefix); expiry 0 is a session
/// cookie.
pub fn parse_netscape(path: &Path, text: &str) -> Result<Vec<CookieRecord>, FileError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        let line = match line.strip_prefix("#HttpOnly_") {
            Some(rest) => rest,
            None if line.trim_start().starts_with('#') || line.trim().is_empty() => continue,
            None => line,
        };
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 6 || fields.len() > 7 {
            return Err(FileError::new(
                path,
                Some(line_no),
                format!(
                    "expected 7 tab-separated fields (domain, subdomains, path, secure, expiry, name, value), found {}",
                    fields.len()
                ),
            ));
        }
        let expiry: i64 = fields[4].trim().parse().map_err(|_| {
            FileError::new(
                path,
                Some(line_no),
                "the expiry (field 5) is not a whole number",
            )
        })?;
        let name = fields[5].trim();
        if name.is_empty() {
            return Err(FileError::new(path, Some(line_no), "empty cookie name"));
        }
        let value = fields.get(6).copied().unwrap_or("");
        let expires = (expiry != 0).then_some(expiry);
        out.push(CookieRecord::new(
            path,
            fields[0].trim(),
            name,
            value,
            expires,
        ));
    }
    Ok(out)
}
