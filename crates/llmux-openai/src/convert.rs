//! Between the wire model and llmux's own request: [`into_chat_request`] (the gateway reads a
//! client's request) and [`chat_body`] (a provider writes an upstream request).

use llmux_core::media;
use llmux_core::{
    ChatRequest, Content, ContentPart, Conversation, Error, ImageUrl, InputAudio, Message,
    ResponseFormat, Result, Role, Secret, Tool, ToolCall, ToolChoice,
};
use serde_json::{Map, Value};

use crate::wire::{
    ChatCompletionRequest, ChatMessage, FunctionCall, FunctionDef, JsonSchemaSpec, NamedFunction,
    Stop, StreamOptions, WireResponseFormat, WireRole, WireTool, WireToolCall, WireToolChoice,
};

/// A request the gateway refuses: a 400 with OpenAI's `code` and `param`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Machine-readable code (`invalid_value`, `unsupported_value`, …).
    pub code: &'static str,
    /// What is wrong and what to do.
    pub message: String,
    /// The offending field (`messages[2].tool_call_id`).
    pub param: Option<String>,
}

impl WireError {
    pub(crate) fn new(
        code: &'static str,
        param: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            message: message.into(),
            param: Some(param.into()),
        }
    }
}

/// The request fields llmux adds to OpenAI's (read from `extra` by the gateway).
pub const LLMUX_FIELDS: &[&str] = &[
    "provider",
    "conversation",
    "api_key",
    "web_search",
    "tool_emulation",
];

/// What the gateway needs besides the llmux request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayOptions {
    /// The client asked for a stream.
    pub stream: bool,
    /// The client asked for a last chunk with the usage.
    pub include_usage: bool,
}

/// Reads a client's request. `allow_remote_media`: accept `http(s)` image URLs (else only data
/// URIs).
pub fn into_chat_request(
    mut wire: ChatCompletionRequest,
    allow_remote_media: bool,
) -> std::result::Result<(ChatRequest, GatewayOptions), WireError> {
    if wire.messages.is_empty() {
        return Err(WireError::new(
            "invalid_value",
            "messages",
            "`messages` must not be empty",
        ));
    }
    if let Some(n) = wire.n.filter(|n| *n != 1) {
        return Err(WireError::new(
            "unsupported_value",
            "n",
            format!(
                "`n` = {n} is not supported: llmux returns exactly one choice; send n = 1 and repeat the request"
            ),
        ));
    }
    let mut messages = Vec::with_capacity(wire.messages.len());
    for (i, m) in std::mem::take(&mut wire.messages).into_iter().enumerate() {
        messages.push(message_in(m, i, allow_remote_media)?);
    }
    let mut req = ChatRequest::new(wire.model.take().unwrap_or_default(), messages);
    let stream = wire.stream.unwrap_or(false);
    req.stream = stream;
    req.temperature = wire.temperature;
    req.top_p = wire.top_p;
    req.max_tokens = wire.max_completion_tokens.or(wire.max_tokens);
    if let Some(n) = wire.max_completion_tokens {
        // forwarded under the client's own name (reasoning models refuse `max_tokens`)
        req.extra.insert("max_completion_tokens".into(), n.into());
    }
    req.presence_penalty = wire.presence_penalty;
    req.frequency_penalty = wire.frequency_penalty;
    req.stop = wire.stop.take().map(|s| s.0).unwrap_or_default();
    req.seed = wire.seed;
    req.user = wire.user.take();
    req.parallel_tool_calls = wire.parallel_tool_calls;
    req.tools = tools_in(wire.tools.take().unwrap_or_default())?;
    req.tool_choice = wire
        .tool_choice
        .take()
        .map(|c| tool_choice_in(c, &req.tools))
        .transpose()?;
    req.response_format = wire.response_format.take().map(response_format_in);
    let include_usage = wire
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    if let Some(o) = wire.stream_options.take().filter(|o| !o.extra.is_empty()) {
        req.extra
            .insert("stream_options".into(), Value::Object(o.extra));
    }
    llmux_fields(&mut wire.extra, &mut req)?;
    req.extra.extend(wire.extra);
    Ok((
        req,
        GatewayOptions {
            stream,
            include_usage,
        },
    ))
}

/// Moves llmux's own fields out of `extra` into the request.
pub(crate) fn llmux_fields(
    extra: &mut Map<String, Value>,
    req: &mut ChatRequest,
) -> std::result::Result<(), WireError> {
    let text = |v: Value, field: &str| match v {
        Value::String(s) => Ok(Some(s).filter(|s| !s.trim().is_empty())),
        Value::Null => Ok(None),
        _ => Err(WireError::new(
            "invalid_type",
            field,
            format!("`{field}` must be a string"),
        )),
    };
    let flag = |v: Value, field: &str| match v {
        Value::Bool(b) => Ok(Some(b)),
        Value::Null => Ok(None),
        _ => Err(WireError::new(
            "invalid_type",
            field,
            format!("`{field}` must be a boolean"),
        )),
    };
    if let Some(v) = extra.remove("provider") {
        req.provider = text(v, "provider")?;
    }
    if let Some(v) = extra.remove("api_key") {
        req.api_key = text(v, "api_key")?.map(Secret::new);
    }
    if let Some(v) = extra.remove("conversation") {
        req.conversation = Some(v).filter(|c| !c.is_null()).map(Conversation);
    }
    if let Some(v) = extra.remove("web_search") {
        req.web_search = flag(v, "web_search")?.unwrap_or(false);
    }
    if let Some(v) = extra.remove("tool_emulation") {
        req.tool_emulation = flag(v, "tool_emulation")?;
    }
    Ok(())
}

fn message_in(
    m: ChatMessage,
    i: usize,
    allow_remote_media: bool,
) -> std::result::Result<Message, WireError> {
    let role = match m.role {
        WireRole::System | WireRole::Developer => Role::System,
        WireRole::User => Role::User,
        WireRole::Assistant => Role::Assistant,
        WireRole::Tool | WireRole::Function => Role::Tool,
    };
    if let Some(Content::Parts(parts)) = &m.content {
        for (j, p) in parts.iter().enumerate() {
            if let ContentPart::ImageUrl { image_url } = p {
                check_media_url(&image_url.url, allow_remote_media).map_err(|e| WireError {
                    param: Some(format!("messages[{i}].content[{j}].image_url.url")),
                    ..e
                })?;
            }
        }
    }
    let tool_calls = m
        .tool_calls
        .into_iter()
        .map(|c| ToolCall {
            id: c.id,
            name: c.function.name,
            arguments: c.function.arguments,
            extra: c.extra,
        })
        .collect();
    Ok(Message {
        role,
        content: m.content,
        tool_calls,
        tool_call_id: m.tool_call_id,
        name: m.name,
        extra: m.extra,
    })
}

/// `image_url` values must be data URIs unless remote media is allowed.
pub(crate) fn check_media_url(url: &str, allow_remote: bool) -> std::result::Result<(), WireError> {
    let lower = |p: &str| {
        url.get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    if lower("data:") || (allow_remote && (lower("http://") || lower("https://"))) {
        return Ok(());
    }
    Err(WireError {
        code: "invalid_image_url",
        message: if allow_remote {
            "image URLs must be `data:` URIs or http(s) URLs".into()
        } else {
            "image URLs must be data URIs (`data:image/png;base64,...`): this gateway does not accept remote URLs".into()
        },
        param: None,
    })
}

fn tools_in(tools: Vec<WireTool>) -> std::result::Result<Vec<Tool>, WireError> {
    tools
        .into_iter()
        .enumerate()
        .map(|(i, t)| match (t.kind.as_str(), t.function) {
            ("function", Some(f)) => Ok(Tool {
                name: f.name,
                description: f.description,
                parameters: f.parameters,
                strict: f.strict,
            }),
            ("function", None) => Err(WireError::new(
                "missing_required_parameter",
                format!("tools[{i}].function"),
                "a `function` tool needs its `function` object",
            )),
            (other, _) => Err(WireError::new(
                "unsupported_value",
                format!("tools[{i}].type"),
                format!("tool type `{other}` is not supported: llmux relays `function` tools"),
            )),
        })
        .collect()
}

fn tool_choice_in(c: WireToolChoice, tools: &[Tool]) -> std::result::Result<ToolChoice, WireError> {
    match c {
        WireToolChoice::Mode(m) => match m.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            other => Err(WireError::new(
                "invalid_value",
                "tool_choice",
                format!(
                    "`tool_choice` must be `none`, `auto`, `required` or a function, got `{other}`"
                ),
            )),
        },
        WireToolChoice::Named {
            kind,
            function: Some(f),
        } if kind == "function" => {
            if !tools.iter().any(|t| t.name == f.name) {
                return Err(WireError::new(
                    "invalid_value",
                    "tool_choice",
                    format!("`tool_choice` names `{}`, which is not in `tools`", f.name),
                ));
            }
            Ok(ToolChoice::Function(f.name))
        }
        WireToolChoice::Named { kind, .. } => Err(WireError::new(
            "unsupported_value",
            "tool_choice",
            format!(
                "`tool_choice` of type `{kind}` is not supported: use `none`, `auto`, `required` or `{{\"type\":\"function\",\"function\":{{\"name\":…}}}}`"
            ),
        )),
    }
}

fn response_format_in(f: WireResponseFormat) -> ResponseFormat {
    match f {
        WireResponseFormat::Text => ResponseFormat::Text,
        WireResponseFormat::JsonObject => ResponseFormat::JsonObject,
        WireResponseFormat::JsonSchema { json_schema: s } => ResponseFormat::JsonSchema {
            name: s.name,
            description: s.description,
            schema: s.schema,
            strict: s.strict,
        },
    }
}

/// Keys of [`ChatRequest::extra`] that are llmux's own options, never sent upstream.
const INTERNAL_OPTIONS: &[&str] = &["image_generation"];

/// The upstream body for `req` asking `model`: every modelled field that is set, the media of
/// [`ChatRequest::media`] attached to the last user message, `stream_options.include_usage` when
/// streaming, and then [`ChatRequest::extra`] verbatim (a key there replaces the modelled field
/// of the same name).
pub fn chat_body(req: &ChatRequest, model: &str) -> Result<ChatCompletionRequest> {
    let mut extra: Map<String, Value> = req
        .extra
        .iter()
        .filter(|(k, _)| !INTERNAL_OPTIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let stream_options = req.stream.then(|| {
        let more = match extra.remove("stream_options") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        StreamOptions {
            include_usage: Some(true),
            extra: more,
        }
    });
    let unless = |key: &str| !extra.contains_key(key);
    let mut body = ChatCompletionRequest {
        model: Some(model.to_owned()),
        messages: messages_out(req)?,
        stream: Some(req.stream),
        stream_options,
        temperature: req.temperature.filter(|_| unless("temperature")),
        top_p: req.top_p.filter(|_| unless("top_p")),
        max_tokens: req
            .max_tokens
            .filter(|_| unless("max_tokens") && unless("max_completion_tokens")),
        presence_penalty: req.presence_penalty.filter(|_| unless("presence_penalty")),
        frequency_penalty: req
            .frequency_penalty
            .filter(|_| unless("frequency_penalty")),
        stop: Some(Stop(req.stop.clone())).filter(|s| !s.0.is_empty() && unless("stop")),
        seed: req.seed.filter(|_| unless("seed")),
        user: req.user.clone().filter(|_| unless("user")),
        parallel_tool_calls: req
            .parallel_tool_calls
            .filter(|_| unless("parallel_tool_calls")),
        ..ChatCompletionRequest::default()
    };
    if !req.tools.is_empty() && unless("tools") {
        body.tools = Some(req.tools.iter().map(tool_out).collect());
    }
    if unless("tool_choice") {
        body.tool_choice = req.tool_choice.as_ref().map(tool_choice_out);
    }
    if unless("response_format") {
        body.response_format = req.response_format.as_ref().map(response_format_out);
    }
    body.extra = extra;
    Ok(body)
}

fn tool_out(t: &Tool) -> WireTool {
    WireTool {
        kind: "function".into(),
        function: Some(FunctionDef {
            name: t.name.clone(),
            description: t.description.clone(),
            parameters: t.parameters.clone(),
            strict: t.strict,
        }),
        extra: Map::new(),
    }
}

fn tool_choice_out(c: &ToolChoice) -> WireToolChoice {
    match c {
        ToolChoice::None => WireToolChoice::Mode("none".into()),
        ToolChoice::Auto => WireToolChoice::Mode("auto".into()),
        ToolChoice::Required => WireToolChoice::Mode("required".into()),
        ToolChoice::Function(name) => WireToolChoice::Named {
            kind: "function".into(),
            function: Some(NamedFunction { name: name.clone() }),
        },
    }
}

fn response_format_out(f: &ResponseFormat) -> WireResponseFormat {
    match f {
        ResponseFormat::Text => WireResponseFormat::Text,
        ResponseFormat::JsonObject => WireResponseFormat::JsonObject,
        ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        } => WireResponseFormat::JsonSchema {
            json_schema: JsonSchemaSpec {
                name: name.clone(),
                description: description.clone(),
                schema: schema.clone(),
                strict: *strict,
            },
        },
    }
}

/// The wire role of a message: tool results named by a legacy `function` message keep that role.
fn role_out(m: &Message) -> WireRole {
    match m.role {
        Role::System => WireRole::System,
        Role::User => WireRole::User,
        Role::Assistant => WireRole::Assistant,
        Role::Tool if m.tool_call_id.is_none() && m.name.is_some() => WireRole::Function,
        Role::Tool => WireRole::Tool,
    }
}

fn message_out(m: &Message) -> ChatMessage {
    ChatMessage {
        role: role_out(m),
        content: m.content.clone(),
        name: m.name.clone(),
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| WireToolCall {
                id: c.id.clone(),
                kind: "function".into(),
                function: FunctionCall {
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                },
                extra: c.extra.clone(),
            })
            .collect(),
        tool_call_id: m.tool_call_id.clone(),
        extra: m.extra.clone(),
    }
}

/// The `messages` array, with [`ChatRequest::media`] attached to the last user message as
/// `image_url` / `input_audio` parts (data URIs).
pub fn messages_out(req: &ChatRequest) -> Result<Vec<ChatMessage>> {
    let mut out: Vec<ChatMessage> = req.messages.iter().map(message_out).collect();
    if req.media.is_empty() {
        return Ok(out);
    }
    let msg = req
        .messages
        .iter()
        .rposition(|m| m.role == Role::User)
        .and_then(|i| out.get_mut(i))
        .ok_or_else(|| Error::invalid("media attached but there is no user message to carry it"))?;
    let mut parts = match msg.content.take() {
        None => Vec::new(),
        Some(Content::Text(t)) => vec![ContentPart::Text { text: t }],
        Some(Content::Parts(p)) => p,
    };
    for m in &req.media {
        let (kind, mime) = media::classify_media(m)?;
        parts.push(match kind {
            media::MediaKind::Audio => ContentPart::InputAudio {
                input_audio: InputAudio {
                    data: media::b64_encode(&m.data),
                    format: media::extension_for_mime(&mime).unwrap_or("wav").to_owned(),
                },
            },
            _ => ContentPart::ImageUrl {
                image_url: ImageUrl::new(media::to_data_uri(&mime, &m.data)),
            },
        });
    }
    msg.content = Some(Content::Parts(parts));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> ChatCompletionRequest {
        serde_json::from_str(body).expect("valid request")
    }

    #[test]
    fn gateway_request_to_llmux_and_back_is_lossless() {
        let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"user","content":"weather?"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{\"city\":\"Paris\"}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"sunny"}],
            "tools":[{"type":"function","function":{"name":"w","description":"d","parameters":{"type":"object"},"strict":true}}],
            "tool_choice":"required","parallel_tool_calls":false,"user":"u1","seed":-3,
            "max_completion_tokens":7,"response_format":{"type":"json_object"},
            "metadata":{"k":"v"},"logprobs":true,"provider":"p","web_search":true}"#;
        let (req, opts) = into_chat_request(parse(body), false).expect("convert");
        assert!(opts.stream && opts.include_usage);
        assert_eq!(req.provider.as_deref(), Some("p"));
        assert!(req.web_search);
        assert!(!req.extra.contains_key("provider"));
        assert_eq!(req.messages[1].tool_calls[0].name, "w");
        assert!(req.messages[1].content.is_none());
        assert_eq!(req.messages[2].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(req.tool_choice, Some(ToolChoice::Required));
        assert_eq!(req.seed, Some(-3));
        let up = serde_json::to_value(chat_body(&req, "m2").expect("body")).expect("json");
        let orig: Value = serde_json::from_str(body).expect("json");
        for key in [
            "messages",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "user",
            "seed",
            "max_completion_tokens",
            "response_format",
            "metadata",
            "logprobs",
            "stream_options",
        ] {
            assert_eq!(up[key], orig[key], "{key}");
        }
        assert_eq!(up["model"], "m2");
        assert!(up.get("max_tokens").is_none() && up.get("provider").is_none());
    }

    #[test]
    fn refusals_name_the_field() {
        let e = |body: &str| into_chat_request(parse(body), false).expect_err("refused");
        assert_eq!(
            e(r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search"}]}"#)
                .param
                .as_deref(),
            Some("tools[0].type")
        );
        assert_eq!(
            e(r#"{"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"nope"}}}"#)
                .param
                .as_deref(),
            Some("tool_choice")
        );
        assert_eq!(
            e(r#"{"messages":[{"role":"user","content":"x"}],"n":2}"#)
                .param
                .as_deref(),
            Some("n")
        );
        assert_eq!(
            e(r#"{"messages":[{"role":"user","content":"x"}],"provider":5}"#).code,
            "invalid_type"
        );
    }

    #[test]
    fn extra_replaces_the_modelled_field() {
        let req = ChatRequest::user("m", "hi")
            .with_temperature(0.5)
            .with_extra("temperature", serde_json::json!(0.9))
            .with_extra("image_generation", Value::Bool(true));
        let up = serde_json::to_value(chat_body(&req, "m").expect("body")).expect("json");
        assert_eq!(up["temperature"], 0.9);
        assert!(up.get("image_generation").is_none());
        assert_eq!(up["stream_options"]["include_usage"], true);
    }
}
