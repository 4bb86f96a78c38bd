//! Request bodies of the OpenAI API, parsed with field paths in the error messages, and their
//! conversion into llmux requests.

use std::fmt;

use llmux::{
    ChatRequest, Content, ContentPart, Conversation, ImageUrl, InputAudio, Message, Role, Secret,
};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
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

/// `POST /v1/chat/completions` body. Unknown fields are ignored.
#[derive(Deserialize)]
pub(crate) struct ChatCompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub seed: Option<serde_json::Number>,
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub conversation: Option<Value>,
    #[serde(default)]
    pub api_key: Option<Secret>,
    #[serde(default)]
    pub web_search: Option<bool>,
}

/// `stream_options`.
#[derive(Deserialize, Default)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// One message; `content` may be a string, an array of parts, or null.
#[derive(Deserialize)]
pub(crate) struct WireMessage {
    pub role: WireRole,
    #[serde(default)]
    pub content: Option<WireContent>,
}

/// Roles, including OpenAI's `developer` (= system) and legacy `function` (= tool).
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WireRole {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

impl WireRole {
    fn role(self) -> Role {
        match self {
            WireRole::System | WireRole::Developer => Role::System,
            WireRole::User => Role::User,
            WireRole::Assistant => Role::Assistant,
            WireRole::Tool | WireRole::Function => Role::Tool,
        }
    }
}

/// Message content without serde's buffering `untagged` machinery.
pub(crate) enum WireContent {
    Text(String),
    Parts(Vec<WirePart>),
}

impl<'de> Deserialize<'de> for WireContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireContent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireContent, E> {
                Ok(WireContent::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<WireContent, E> {
                Ok(WireContent::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireContent, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(p) = seq.next_element()? {
                    parts.push(p);
                }
                Ok(WireContent::Parts(parts))
            }
        }
        d.deserialize_any(V)
    }
}

/// A content part.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum WirePart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
    InputAudio { input_audio: InputAudio },
}

/// `stop`: a string or an array of strings.
pub(crate) struct Stop(pub Vec<String>);

impl<'de> Deserialize<'de> for Stop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Stop;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Stop, E> {
                Ok(Stop(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Stop, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Stop(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// What the gateway needs besides the llmux request.
pub(crate) struct ChatOptions {
    pub stream: bool,
    pub include_usage: bool,
    /// Characters of prompt text (for usage estimates).
    pub prompt_chars: usize,
}

impl ChatCompletionRequest {
    /// Validates and converts. `allow_remote_media`: pass `http(s)` image URLs on.
    pub fn into_request(
        self,
        allow_remote_media: bool,
    ) -> Result<(ChatRequest, ChatOptions), ApiError> {
        if self.messages.is_empty() {
            return Err(
                ApiError::bad_request("invalid_value", "`messages` must not be empty")
                    .with_param("messages"),
            );
        }
        if let Some(n) = self.n.filter(|n| *n != 1) {
            return Err(ApiError::bad_request(
                "unsupported_value",
                format!("`n` = {n} is not supported; llmux returns exactly one choice"),
            )
            .with_param("n"));
        }
        let mut prompt_chars = 0;
        let mut messages = Vec::with_capacity(self.messages.len());
        for (i, m) in self.messages.into_iter().enumerate() {
            let content = match m.content {
                None => Content::Text(String::new()),
                Some(WireContent::Text(t)) => {
                    prompt_chars += t.len();
                    Content::Text(t)
                }
                Some(WireContent::Parts(parts)) => {
                    let mut out = Vec::with_capacity(parts.len());
                    for (j, p) in parts.into_iter().enumerate() {
                        out.push(match p {
                            WirePart::Text { text } => {
                                prompt_chars += text.len();
                                ContentPart::Text { text }
                            }
                            WirePart::ImageUrl { image_url } => {
                                check_media_url(&image_url.url, allow_remote_media).map_err(
                                    |e| {
                                        e.with_param(format!(
                                            "messages[{i}].content[{j}].image_url.url"
                                        ))
                                    },
                                )?;
                                ContentPart::ImageUrl { image_url }
                            }
                            WirePart::InputAudio { input_audio } => {
                                ContentPart::InputAudio { input_audio }
                            }
                        });
                    }
                    Content::Parts(out)
                }
            };
            messages.push(Message::new(m.role.role(), content));
        }
        let stream = self.stream.unwrap_or(false);
        let mut req = ChatRequest::new(self.model.unwrap_or_default(), messages);
        req.provider = self.provider.filter(|p| !p.trim().is_empty());
        req.stream = stream;
        req.temperature = self.temperature;
        req.top_p = self.top_p;
        req.max_tokens = self.max_tokens.or(self.max_completion_tokens);
        req.presence_penalty = self.presence_penalty;
        req.frequency_penalty = self.frequency_penalty;
        req.stop = self.stop.map(|s| s.0).unwrap_or_default();
        req.seed = match self.seed {
            None => None,
            Some(n) => Some(match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u,
                (None, Some(i)) => i as u64,
                _ => {
                    return Err(
                        ApiError::bad_request("invalid_type", "`seed` must be an integer")
                            .with_param("seed"),
                    );
                }
            }),
        };
        req.conversation = self.conversation.filter(|c| !c.is_null()).map(Conversation);
        req.api_key = self.api_key.filter(|k| !k.is_empty());
        req.web_search = self.web_search.unwrap_or(false);
        let include_usage = self
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        Ok((
            req,
            ChatOptions {
                stream,
                include_usage,
                prompt_chars,
            },
        ))
    }
}

/// `image_url` values must be data URIs unless remote media is allowed.
fn check_media_url(url: &str, allow_remote: bool) -> Result<(), ApiError> {
    let lower = |p: &str| {
        url.get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    if lower("data:") {
        return Ok(());
    }
    if allow_remote && (lower("http://") || lower("https://")) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "invalid_image_url",
        if allow_remote {
            "image URLs must be `data:` URIs or http(s) URLs"
        } else {
            "image URLs must be data URIs (`data:image/png;base64,...`): this gateway does not accept remote URLs"
        },
    ))
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
    pub seed: Option<u64>,
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
                .err()
                .expect("error");
        assert_eq!(e.param.as_deref(), Some("temperature"));
        let e = parse::<ChatCompletionRequest>(br#"{"model":"m"}"#)
            .err()
            .expect("error");
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = parse::<ChatCompletionRequest>(br#"{"messages":[{"role":"user","content":5}]}"#)
            .err()
            .expect("error");
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        let e = parse::<ChatCompletionRequest>(br#"{"messages": ["#)
            .err()
            .expect("error");
        assert_eq!(e.code, "invalid_json");
        // regression (e2e abuse tests): a wrong type for an enum was "not valid JSON"
        let e = parse::<ChatCompletionRequest>(br#"{"messages":[{"role":5,"content":"x"}]}"#)
            .err()
            .expect("error");
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("invalid_type", Some("messages[0].role"))
        );
        let e = parse::<ChatCompletionRequest>(br#"{"messages":[{"role":5,"content":"x"}"#)
            .err()
            .expect("error");
        assert_eq!(e.code, "invalid_json");
    }

    #[test]
    fn converts() {
        let r: ChatCompletionRequest = parse(
            br#"{"model":"m","stop":"END","seed":-1,"max_completion_tokens":9,"messages":[
            {"role":"developer","content":"be brief"},{"role":"assistant","content":null},
            {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]}]}"#,
        )
        .expect("parse");
        let (req, opts) = r.into_request(false).expect("convert");
        assert_eq!(req.stop, vec!["END"]);
        assert_eq!(req.max_tokens, Some(9));
        assert_eq!(req.seed, Some(u64::MAX));
        assert_eq!(req.messages[0].role, Role::System);
        assert!(!opts.stream);
        assert_eq!(opts.prompt_chars, 10);
        let r: ChatCompletionRequest = parse(
            br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#,
        )
        .expect("parse");
        let e = r.into_request(false).err().expect("remote refused");
        assert_eq!(
            e.param.as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
    }
}
