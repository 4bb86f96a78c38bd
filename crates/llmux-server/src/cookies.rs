//! `POST /v1/upload_cookies` (g4f's route): browser cookie files uploaded as a
//! `multipart/form-data` form (field `files`, one part per file) are validated and stored in the
//! gateway's cookies directory ([`ServerConfig::cookies_dir`](crate::ServerConfig)), where the
//! providers pick them up on their next request.
//!
//! Limits: the whole body at most [`MAX_UPLOAD_BYTES`] (and the gateway's body limit), at most
//! [`MAX_FILES`] files, each a `.har`, `.json` or `.txt` cookie file that parses
//! ([`llmux_cookies::parse_file`]); names are reduced to their last path component and safe
//! characters ([`llmux_cookies::sanitize_file_name`]), so nothing is written outside the
//! directory. Every file is checked before any is written. The answer is g4f's:
//! `[{"filename": "cookies.har"}, …]`.

use std::path::PathBuf;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use serde_json::json;

use crate::body::{self, Body};
use crate::error::ApiError;
use crate::routes::{State, read_body};

/// Largest upload body.
pub const MAX_UPLOAD_BYTES: usize = llmux_cookies::MAX_FILE_BYTES + 64 * 1024;
/// Most files in one upload.
pub const MAX_FILES: usize = 32;

/// One file of the form.
struct Part {
    file_name: String,
    data: Bytes,
}

/// Handles `POST /v1/upload_cookies` (already authorised).
pub(crate) async fn upload<B>(state: &State, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match store(state, req).await {
        Ok(names) => {
            let list: Vec<_> = names.iter().map(|n| json!({ "filename": n })).collect();
            body::json(StatusCode::OK, &list)
        }
        Err(e) => body::error(&e),
    }
}

async fn store<B>(state: &State, req: Request<B>) -> Result<Vec<String>, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(dir) = state.config.cookies_dir.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "cookie_uploads_disabled",
            "this gateway has no cookies directory; start it with --cookies-dir DIR",
        ));
    };
    let boundary = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(boundary_of)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_content_type",
                "send the cookie files as multipart/form-data with field `files`",
            )
        })?;
    let limit = state.config.max_body_bytes.min(MAX_UPLOAD_BYTES);
    let data = read_body(req, limit).await?;
    let parts = parse_multipart(&data, &boundary)
        .map_err(|m| ApiError::bad_request("invalid_multipart", m))?;
    if parts.is_empty() {
        return Err(ApiError::bad_request(
            "no_files",
            "no files in the form: send each cookie file as a part named `files`",
        ));
    }
    if parts.len() > MAX_FILES {
        return Err(ApiError::bad_request(
            "too_many_files",
            format!("at most {MAX_FILES} files per upload"),
        ));
    }
    tokio::task::spawn_blocking(move || write_all(&dir, &parts))
        .await
        .map_err(|_| internal("the upload task failed"))?
}

fn internal(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "cookie_store_failed",
        message.to_owned(),
    )
}

/// Checks every file, then writes them all.
fn write_all(dir: &std::path::Path, parts: &[Part]) -> Result<Vec<String>, ApiError> {
    let mut names = Vec::with_capacity(parts.len());
    for p in parts {
        let clean = llmux_cookies::sanitize_file_name(&p.file_name).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_file_name",
                format!(
                    "file name {:?} is not accepted: use a name ending in .har, .json or .txt",
                    llmux_core::error::snippet(&p.file_name, 80)
                ),
            )
        })?;
        let text = std::str::from_utf8(&p.data).map_err(|_| {
            ApiError::bad_request("invalid_cookie_file", format!("{clean}: not UTF-8 text"))
        })?;
        llmux_cookies::parse_file(&PathBuf::from(&clean), text)
            .map_err(|e| ApiError::bad_request("invalid_cookie_file", e.to_string()))?;
        names.push(clean);
    }
    for (p, name) in parts.iter().zip(&names) {
        llmux_cookies::store_file(dir, name, &p.data).map_err(|e| {
            tracing::warn!(file = %name, error = %e, "cannot store an uploaded cookie file");
            internal("cannot store the cookie file in the gateway's cookies directory")
        })?;
        tracing::info!(file = %name, "stored an uploaded cookie file");
    }
    Ok(names)
}

/// The `boundary` parameter of a `multipart/form-data` content type.
fn boundary_of(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let mime = params.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        let v = v.trim().trim_matches('"');
        (k.trim().eq_ignore_ascii_case("boundary") && !v.is_empty() && v.len() <= 200)
            .then(|| v.to_owned())
    })
}

/// A parameter of a `Content-Disposition` header (`name="files"`).
fn disposition_param(header: &str, key: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').replace("\\\"", "\""))
    })
}

/// The file parts named `files` (or `file`) of a multipart body (RFC 7578); other fields
/// are ignored.
fn parse_multipart(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delim = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delim.as_bytes());
    let next_delim = format!("\r\n--{boundary}");
    let next_finder = memchr::memmem::Finder::new(next_delim.as_bytes());
    let head_end = memchr::memmem::Finder::new(b"\r\n\r\n");
    let start = finder
        .find(body)
        .ok_or("the body has no multipart boundary")?;
    let mut rest = &body[start + delim.len()..];
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("malformed multipart body: no line break after a boundary")?;
        let h = head_end
            .find(rest)
            .ok_or("malformed multipart body: part headers never end")?;
        let headers = String::from_utf8_lossy(&rest[..h]);
        let content = &rest[h + 4..];
        let end = next_finder
            .find(content)
            .ok_or("malformed multipart body: no closing boundary")?;
        let disposition = headers
            .split("\r\n")
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-disposition")
                    .then_some(v.trim())
            })
            .unwrap_or("");
        let name = disposition_param(disposition, "name").unwrap_or_default();
        if matches!(name.as_str(), "files" | "file") {
            if let Some(file_name) = disposition_param(disposition, "filename") {
                parts.push(Part {
                    file_name,
                    data: Bytes::copy_from_slice(&content[..end]),
                });
            }
        }
        rest = &content[end + next_delim.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_files_and_boundaries() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nignored\r\n--XyZ\r\ncontent-disposition: form-data; name=\"files\"; filename=\"../b.har\"\r\n\r\n{}\r\n--XyZ--\r\n";
        let parts = parse_multipart(body, "XyZ").expect("parses");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].file_name, "a.txt");
        assert_eq!(&parts[0].data[..], b"line1\r\nline2");
        assert_eq!(parts[1].file_name, "../b.har");
        assert!(parse_multipart(b"--XyZ\r\nno end", "XyZ").is_err());
        assert!(parse_multipart(b"nothing", "XyZ").is_err());
        assert_eq!(
            boundary_of("multipart/form-data; boundary=\"abc\"").as_deref(),
            Some("abc")
        );
        assert_eq!(boundary_of("application/json"), None);
    }
}
