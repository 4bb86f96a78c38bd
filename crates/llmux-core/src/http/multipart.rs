//! `multipart/form-data` request bodies.

use bytes::{BufMut, Bytes, BytesMut};

/// One part of a form.
#[derive(Clone)]
struct Part {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Bytes,
}

/// A `multipart/form-data` body under construction.
#[derive(Clone)]
pub struct Multipart {
    boundary: String,
    parts: Vec<Part>,
}

impl std::fmt::Debug for Multipart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multipart")
            .field(
                "parts",
                &self.parts.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for Multipart {
    fn default() -> Self {
        Self::new()
    }
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "%22")
        .replace(['\r', '\n'], " ")
}

impl Multipart {
    /// An empty form with a random boundary.
    pub fn new() -> Self {
        Self {
            boundary: format!("----llmux{}", crate::random::random_hex(24)),
            parts: Vec::new(),
        }
    }

    /// Adds a text field.
    pub fn text(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parts.push(Part {
            name: name.into(),
            file_name: None,
            content_type: None,
            data: Bytes::from(value.into()),
        });
        self
    }

    /// Adds a file field.
    pub fn file(
        mut self,
        name: impl Into<String>,
        file_name: impl Into<String>,
        content_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Self {
        self.parts.push(Part {
            name: name.into(),
            file_name: Some(file_name.into()),
            content_type: Some(content_type.into()),
            data: data.into(),
        });
        self
    }

    /// The `Content-Type` header value (with the boundary).
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// Renders the body.
    pub fn into_bytes(self) -> Bytes {
        let size: usize = self.parts.iter().map(|p| p.data.len() + 200).sum();
        let mut out = BytesMut::with_capacity(size + 64);
        for p in &self.parts {
            out.put_slice(b"--");
            out.put_slice(self.boundary.as_bytes());
            out.put_slice(b"\r\nContent-Disposition: form-data; name=\"");
            out.put_slice(quote(&p.name).as_bytes());
            out.put_slice(b"\"");
            if let Some(f) = &p.file_name {
                out.put_slice(b"; filename=\"");
                out.put_slice(quote(f).as_bytes());
                out.put_slice(b"\"");
            }
            out.put_slice(b"\r\n");
            if let Some(ct) = &p.content_type {
                out.put_slice(b"Content-Type: ");
                // CR/LF would end the header (and could inject headers or end the part headers).
                out.put_slice(ct.replace(['\r', '\n'], " ").as_bytes());
                out.put_slice(b"\r\n");
            }
            out.put_slice(b"\r\n");
            out.put_slice(&p.data);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"--");
        out.put_slice(self.boundary.as_bytes());
        out.put_slice(b"--\r\n");
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_parts() {
        let m = Multipart::new().text("data", "{\"a\":1}").file(
            "files",
            "x \"y\".png",
            "image/png",
            &b"\x89PNG"[..],
        );
        let ct = m.content_type();
        let boundary = ct.rsplit('=').next().unwrap_or_default().to_owned();
        let body = m.into_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n{{\"a\":1}}\r\n"
        )));
        assert!(text.contains(
            "name=\"files\"; filename=\"x %22y%22.png\"\r\nContent-Type: image/png\r\n\r\n"
        ));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }

    /// Found with the `multipart` fuzz target (llmux-fuzz): a content type holding CR/LF was
    /// written as is, ending the part's headers early (the rest became part data) or injecting
    /// headers.
    #[test]
    fn content_type_cannot_break_the_headers() {
        let m = Multipart::new().file(
            "files",
            "a.png",
            "image/png\r\nContent-Disposition: form-data; name=\"evil\"\r\n\r\nX",
            &b"data"[..],
        );
        let body = m.into_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("Content-Type: image/png  Content-Disposition: form-data; name=\"evil\"    X\r\n\r\ndata\r\n"),
            "{text}"
        );
        assert_eq!(text.matches("\r\n\r\n").count(), 1, "{text}");
    }
}
