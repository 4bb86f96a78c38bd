//! Request bodies of the OpenAI API, parsed with field paths in the error messages, and their
//! conversion into llmux requests.

use llmux::{ChatRequest, Message, Secret};
use llmux_openai::convert::{GatewayOptions, into_chat_request};
use llmux_openai::wire::ChatCompletionRequest;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned};
use serde_json::Value;

use crate::error::ApiError;

/// Parses a JSON body; errors name the offending field (`messages[0].content`).
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // valid bodies take the plain parser; the path-tracking one (which costs about as much
    // again) only runs to explain an error
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde_json reports a wrong type where an enum (e.g. `role`) is expected as a syntax
        // error; when the document itself is valid JSON, it is the field that is wrong
        if inner.is_syntax()
            && path != "."
            && serde_json::from_slice::<de::IgnoredAny>(body).is_ok()
        {
            return ApiError::bad_request(
                "invalid_type",
                format!("invalid `{path}`: wrong type or value for this field"),
            )
            .with_param(path);
        }
        json_error(&path, &inner)
    })?;
    de.end().map_err(|e| json_error(".", &e))?;
    Ok(value)
}

fn json_error(path: &str, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        ),
        Category::Data => {
            let msg = e.to_string();
            // `missing field `x`` is reported at the parent path
            let missing = msg
                .strip_prefix("missing field `")
                .and_then(|r| r.split_once('`'))
                .map(|(f, _)| f);
            let param = match (path, missing) {
                (".", Some(f)) => f.to_owned(),
                (p, Some(f)) => format!("{p}.{f}"),
                (p, None) => p.to_owned(),
            };
            if param == "." {
                ApiError::bad_request("invalid_request", format!("invalid request body: {msg}"))
            } else {
                ApiError::bad_request("invalid_type", format!("invalid `{param}`: {msg}"))
                    .with_param(param)
            }
        }
    }
}

/// Parses and converts a `POST /v1/chat/completions` body (the wire model of `llmux-openai`).
/// `allow_remote_media`: pass `http(s)` image URLs on.
pub(crate) fn chat_request(
    body: &[u8],
    allow_remote_media: bool,
) -> Result<(ChatRequest, GatewayOptions), ApiError> {
    let wire = parse::<ChatCompletionRequest>(body)?;
    into_chat_request(wire, allow_remote_media).map_err(from_wire_error)
}

/// The 400 of a request the wire model refuses.
pub(crate) fn from_wire_error(e: llmux_openai::WireError) -> ApiError {
    let api = ApiError::bad_request(e.code, e.message);
    match e.param {
        Some(p) => api.with_param(p),
        None => api,
    }
}

/// `POST /v1/images/generations` body.
#[derive(Deserialize)]
pub(crate) struct ImageRequest {
    pub prompt: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    #[serde(default)]
    pub api_key: Option<Secret>,
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub negative_prompt: Option<String>,
    #[serde(default)]
    pub aspect_ratio: Option<String>,
}

/// `response_format` of an image request.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ResponseFormat {
    Url,
    B64Json,
}

impl ImageRequest {
    /// The llmux request: a g4f-style user message, `prompt` set, `extra.image_generation`.
    pub fn into_request(self) -> Result<(ChatRequest, ResponseFormat), ApiError> {
        if self.prompt.trim().is_empty() {
            return Err(
                ApiError::bad_request("invalid_value", "`prompt` must not be empty")
                    .with_param("prompt"),
            );
        }
        let n = self.n.unwrap_or(1);
        if !(1..=10).contains(&n) {
            return Err(
                ApiError::bad_request("invalid_value", "`n` must be between 1 and 10")
                    .with_param("n"),
            );
        }
        let (mut width, mut height) = (self.width, self.height);
        if let Some(size) = self
            .size
            .as_deref()
            .filter(|s| !s.is_empty() && *s != "auto")
        {
            let parsed = size.split_once(['x', 'X']).and_then(|(w, h)| {
                Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?))
            });
            let Some((w, h)) = parsed else {
                return Err(ApiError::bad_request(
                    "invalid_value",
                    format!("`size` must look like `1024x1024`, got {size:?}"),
                )
                .with_param("size"));
            };
            width = width.or(Some(w));
            height = height.or(Some(h));
        }
        let mut req = ChatRequest::new(
            self.model.unwrap_or_default(),
            vec![Message::user(format!("Generate a image: {}", self.prompt))],
        );
        req.provider = self.provider.filter(|p| !p.trim().is_empty());
        req.api_key = self.api_key.filter(|k| !k.is_empty());
        req.prompt = Some(self.prompt);
        req.extra
            .insert("image_generation".into(), Value::Bool(true));
        if n > 1 {
            req.extra.insert("n".into(), n.into());
        }
        let opt = [
            ("width", width.map(Value::from)),
            ("height", height.map(Value::from)),
            ("seed", self.seed.map(Value::from)),
            ("negative_prompt", self.negative_prompt.map(Value::from)),
            ("aspect_ratio", self.aspect_ratio.map(Value::from)),
        ];
        for (k, v) in opt {
            if let Some(v) = v {
                req.extra.insert(k.into(), v);
            }
        }
        Ok((req, self.response_format.unwrap_or(ResponseFormat::Url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let e =
            parse::<ChatCompletionRequest>(br#"{"model":"m","messages":[],"temperature":"hot"}"#)
                .expect_err("error");
        assert_eq!(e.param.as_deref(), Some("temperature"));
        let e = parse::<ChatCompletionRequest>(br#"{"model":"m"}"#).expect_err("error");
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = parse::<ChatCompletionRequest>(br#"{"messages":[{"role":"user","content":5}]}"#)
            .expect_err("error");
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        let e = parse::<ChatCompletionRequest>(br#"{"messages": ["#).expect_err("error");
        assert_eq!(e.code, "invalid_json");
        // regression (e2e abuse tests): a wrong type for an enum was "not valid JSON"
        let e = parse::<ChatCompletionRequest>(br#"{"messages":[{"role":5,"content":"x"}]}"#)
            .expect_err("error");
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("invalid_type", Some("messages[0].role"))
        );
        let e = parse::<ChatCompletionRequest>(br#"{"messages":[{"role":5,"content":"x"}"#)
            .expect_err("error");
        assert_eq!(e.code, "invalid_json");
    }

    #[test]
    fn converts() {
        let (req, opts) = chat_request(
            br#"{"model":"m","stop":"END","seed":-1,"max_completion_tokens":9,"messages":[
            {"role":"developer","content":"be brief"},{"role":"assistant","content":null},
            {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]}]}"#,
            false,
        )
        .expect("convert");
        assert_eq!(req.stop, vec!["END"]);
        assert_eq!(req.max_tokens, Some(9));
        assert_eq!(req.seed, Some(-1));
        assert_eq!(req.messages[0].role, llmux::Role::System);
        assert!(req.messages[1].content.is_none());
        assert!(!opts.stream);
        let e = chat_request(
            br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#,
            false,
        )
        .expect_err("remote refused");
        assert_eq!(
            e.param.as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
    }
}
