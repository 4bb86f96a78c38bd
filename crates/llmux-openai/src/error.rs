//! OpenAI's error envelope: `{"error":{"message","type","param","code"}}`.

use serde::{Deserialize, Serialize};

/// The error envelope, borrowed for writing.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody<'a> {
    /// The error.
    pub error: ErrorObject<'a>,
}

/// The error object.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorObject<'a> {
    /// What went wrong and what to do.
    pub message: &'a str,
    /// The error type (`invalid_request_error`, `rate_limit_error`, …).
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// The offending request field.
    pub param: Option<&'a str>,
    /// Machine-readable code.
    pub code: Option<&'a str>,
}

/// An upstream's OpenAI-shaped error, read from its body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UpstreamError {
    /// The message.
    #[serde(default)]
    pub message: String,
    /// The error type.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The offending field.
    #[serde(default)]
    pub param: Option<String>,
    /// The code (a string, or a number some servers send, as text).
    #[serde(default, deserialize_with = "code_de")]
    pub code: Option<String>,
}

fn code_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

impl UpstreamError {
    /// Reads `{"error":{…}}` from an error body; `None` when the body is not OpenAI-shaped.
    pub fn parse(body: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Envelope {
            error: UpstreamError,
        }
        serde_json::from_slice::<Envelope>(body)
            .ok()
            .map(|e| e.error)
            .filter(|e| !e.message.is_empty() || e.code.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openai_error_bodies() {
        let e = UpstreamError::parse(
            br#"{"error":{"message":"too long","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        )
        .expect("openai error");
        assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert_eq!(
            UpstreamError::parse(br#"{"error":{"message":"x","code":400}}"#).and_then(|e| e.code),
            Some("400".into())
        );
        assert!(UpstreamError::parse(b"Internal Server Error").is_none());
        assert!(UpstreamError::parse(br#"{"detail":[{"loc":["body"]}]}"#).is_none());
        let out = serde_json::to_string(&ErrorBody {
            error: ErrorObject {
                message: "m",
                kind: "t",
                param: None,
                code: Some("c"),
            },
        })
        .expect("json");
        assert_eq!(
            out,
            r#"{"error":{"message":"m","type":"t","param":null,"code":"c"}}"#
        );
    }
}
