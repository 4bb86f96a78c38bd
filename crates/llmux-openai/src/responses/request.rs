//! `POST /v1/responses` bodies and their translation into a [`ChatRequest`].

use llmux_core::{
    ChatRequest, Content, ContentPart, ImageUrl, Message, ResponseFormat, Role, Tool, ToolCall,
    ToolChoice,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::err;
use super::object::{ReasoningSettings, ResponseObject, TextSettings};
use crate::convert::{WireError, check_media_url, llmux_fields};

type Result<T> = std::result::Result<T, WireError>;

/// A `POST /v1/responses` body. Fields not modelled here land in `extra`, where
/// [`into_chat_request`] honours or refuses each of them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateResponse {
    /// Model id, alias or `provider:model`.
    #[serde(default)]
    pub model: Option<String>,
    /// A string (one user message) or a list of input items.
    #[serde(default)]
    pub input: Option<Input>,
    /// A system message before the input (not carried over by `previous_response_id`).
    #[serde(default)]
    pub instructions: Option<String>,
    /// Function tools (other types are refused).
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    /// `none`, `auto`, `required` or `{"type":"function","name":…}`.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// Allow several calls in one turn.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// `format` and `verbosity`.
    #[serde(default)]
    pub text: Option<TextConfig>,
    /// Token limit of the answer.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// `effort` and `summary`.
    #[serde(default)]
    pub reasoning: Option<ReasoningConfig>,
    /// Up to 16 string pairs, echoed on the response.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Stream events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Keep the response (default `true`).
    #[serde(default)]
    pub store: Option<bool>,
    /// Continue this stored response's conversation.
    #[serde(default)]
    pub previous_response_id: Option<String>,
    /// End-user id.
    #[serde(default)]
    pub user: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `input`: a string or items.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Input {
    /// One user message.
    Text(String),
    /// Messages, function calls and their outputs.
    Items(Vec<Value>),
}

/// `text`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TextConfig {
    /// `{"type":"text" | "json_object" | "json_schema", …}`.
    #[serde(default)]
    pub format: Option<Value>,
    /// `low`, `medium` or `high` (forwarded as chat `verbosity`).
    #[serde(default)]
    pub verbosity: Option<String>,
    /// Anything else (refused).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `reasoning`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReasoningConfig {
    /// Forwarded as chat `reasoning_effort`.
    #[serde(default)]
    pub effort: Option<String>,
    /// `auto`, `concise` or `detailed`: the provider's reasoning is returned as the summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// Deprecated name of `summary`.
    #[serde(default)]
    pub generate_summary: Option<String>,
    /// Anything else (refused).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A translated request.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The chat request to run.
    pub request: ChatRequest,
    /// The conversation to store (previous turns and this input, without `instructions`).
    pub conversation: Vec<Message>,
    /// The response object to fill in (id empty, `status` `in_progress`, no output).
    pub response: ResponseObject,
    /// The client asked for a stream.
    pub stream: bool,
}

/// Fields with the same name and meaning in chat completions: forwarded in
/// [`ChatRequest::extra`] (OpenAI-shaped upstreams honour them; others name them in
/// `ignored_params`).
const FORWARDED: &[&str] = &[
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
];

/// Translates a request. `previous`: the stored conversation of `previous_response_id` (empty
/// without one). `allow_remote_media`: accept `http(s)` image URLs (else only data URIs).
pub fn into_chat_request(
    mut wire: CreateResponse,
    previous: Vec<Message>,
    allow_remote_media: bool,
) -> Result<Converted> {
    let mut conversation = previous;
    match wire.input.take() {
        Some(Input::Text(t)) => conversation.push(Message::user(t)),
        Some(Input::Items(items)) => items_in(items, allow_remote_media, &mut conversation)?,
        None => {}
    }
    if conversation.is_empty() {
        return Err(err(
            "missing_required_parameter",
            "input",
            "`input` is required: a string or a list of input items",
        ));
    }
    let mut messages = Vec::with_capacity(conversation.len() + 1);
    if let Some(i) = wire.instructions.as_ref().filter(|i| !i.is_empty()) {
        messages.push(Message::system(i.as_str()));
    }
    messages.extend(conversation.iter().cloned());
    let mut req = ChatRequest::new(wire.model.clone().unwrap_or_default(), messages);
    req.stream = wire.stream.unwrap_or(false);
    req.temperature = wire.temperature;
    req.top_p = wire.top_p;
    req.max_tokens = wire.max_output_tokens;
    req.user = wire.user.clone();
    req.parallel_tool_calls = wire.parallel_tool_calls;
    let tools = wire.tools.take().unwrap_or_default();
    req.tools = tools_in(&tools)?;
    let tool_choice = wire.tool_choice.take().filter(|c| !c.is_null());
    req.tool_choice = tool_choice
        .as_ref()
        .map(|c| tool_choice_in(c, &req.tools))
        .transpose()?;
    let text = text_in(wire.text.take(), &mut req)?;
    let reasoning = reasoning_in(wire.reasoning.take(), &mut req)?;
    extra_in(&mut wire.extra, &mut req)?;
    let response = skeleton(&wire, &req, tools, tool_choice, text, reasoning);
    Ok(Converted {
        stream: req.stream,
        request: req,
        conversation,
        response,
    })
}

/// The response object before any output.
fn skeleton(
    wire: &CreateResponse,
    req: &ChatRequest,
    tools: Vec<Value>,
    tool_choice: Option<Value>,
    text: TextSettings,
    reasoning: ReasoningSettings,
) -> ResponseObject {
    ResponseObject {
        id: String::new(),
        object: "response".into(),
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        status: "in_progress".into(),
        error: None,
        incomplete_details: None,
        instructions: wire.instructions.clone(),
        max_output_tokens: wire.max_output_tokens,
        model: req.model.clone(),
        output: Vec::new(),
        parallel_tool_calls: wire.parallel_tool_calls.unwrap_or(true),
        previous_response_id: wire.previous_response_id.clone(),
        reasoning,
        store: wire.store.unwrap_or(true),
        temperature: wire.temperature,
        text,
        tool_choice: tool_choice.unwrap_or_else(|| Value::String("auto".into())),
        tools,
        top_p: wire.top_p,
        truncation: "disabled".into(),
        usage: None,
        user: wire.user.clone(),
        metadata: wire.metadata.clone().unwrap_or_default(),
        completed_at: None,
        extra: Map::new(),
    }
}

/// Honours, forwards or refuses each field of `extra`.
fn extra_in(extra: &mut Map<String, Value>, req: &mut ChatRequest) -> Result<()> {
    if extra.get("conversation").is_some_and(|c| !c.is_null()) {
        return Err(err(
            "unsupported_parameter",
            "conversation",
            "the Conversations API is not supported: continue a conversation with `previous_response_id`",
        ));
    }
    extra.remove("conversation");
    llmux_fields(extra, req)?;
    for (key, value) in std::mem::take(extra) {
        if FORWARDED.contains(&key.as_str()) {
            if !value.is_null() {
                req.extra.insert(key, value);
            }
            continue;
        }
        let harmless = match key.as_str() {
            "background" => matches!(value, Value::Null | Value::Bool(false)),
            "include" => value.is_null() || value.as_array().is_some_and(Vec::is_empty),
            "truncation" => value.is_null() || value == "disabled",
            "stream_options" => value.is_null() || value.is_object(),
            "top_logprobs" => value.is_null() || value.as_u64() == Some(0),
            _ => value.is_null(),
        };
        if !harmless {
            return Err(refused(&key));
        }
    }
    Ok(())
}

fn refused(key: &str) -> WireError {
    let why = match key {
        "background" => {
            "background responses are not supported: llmux answers within the request; omit `background`"
        }
        "include" => "`include` is not supported: llmux returns no extra output data; omit it",
        "truncation" => "only `truncation: \"disabled\"` is supported: llmux never drops input",
        "top_logprobs" => "log probabilities are not returned by this route; omit `top_logprobs`",
        "prompt" => "prompt templates are not supported: send `instructions` and `input`",
        _ => "",
    };
    let message = if why.is_empty() {
        format!("the parameter `{key}` is not supported by this gateway's Responses API")
    } else {
        why.to_owned()
    };
    err("unsupported_parameter", key, message)
}

fn text_in(text: Option<TextConfig>, req: &mut ChatRequest) -> Result<TextSettings> {
    let Some(text) = text else {
        return Ok(TextSettings::default());
    };
    if let Some(key) = text.extra.keys().next() {
        return Err(err(
            "unsupported_parameter",
            format!("text.{key}"),
            format!("`text.{key}` is not supported"),
        ));
    }
    if let Some(v) = &text.verbosity {
        req.extra
            .insert("verbosity".into(), Value::String(v.clone()));
    }
    let format = text.format.filter(|f| !f.is_null());
    if let Some(f) = &format {
        req.response_format = Some(format_in(f)?);
    }
    Ok(TextSettings {
        format: format.unwrap_or_else(|| TextSettings::default().format),
        verbosity: text.verbosity,
    })
}

fn format_in(f: &Value) -> Result<ResponseFormat> {
    let field = |name: &str| f.get(name).filter(|v| !v.is_null());
    match field("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let name = field("name").and_then(Value::as_str).ok_or_else(|| {
                err(
                    "missing_required_parameter",
                    "text.format.name",
                    "a `json_schema` format needs a `name`",
                )
            })?;
            let schema = field("schema").cloned();
            if !schema.as_ref().is_some_and(Value::is_object) {
                return Err(err(
                    "missing_required_parameter",
                    "text.format.schema",
                    "a `json_schema` format needs a `schema` object",
                ));
            }
            Ok(ResponseFormat::JsonSchema {
                name: name.to_owned(),
                description: field("description")
                    .and_then(Value::as_str)
                    .map(String::from),
                schema,
                strict: field("strict").and_then(Value::as_bool),
            })
        }
        _ => Err(err(
            "invalid_value",
            "text.format.type",
            "`text.format.type` must be `text`, `json_object` or `json_schema`",
        )),
    }
}

fn reasoning_in(r: Option<ReasoningConfig>, req: &mut ChatRequest) -> Result<ReasoningSettings> {
    let Some(r) = r else {
        return Ok(ReasoningSettings::default());
    };
    if let Some(key) = r.extra.keys().next() {
        return Err(err(
            "unsupported_parameter",
            format!("reasoning.{key}"),
            format!("`reasoning.{key}` is not supported"),
        ));
    }
    if let Some(e) = &r.effort {
        req.extra
            .insert("reasoning_effort".into(), Value::String(e.clone()));
    }
    Ok(ReasoningSettings {
        effort: r.effort,
        summary: r.summary.or(r.generate_summary),
    })
}

fn tools_in(tools: &[Value]) -> Result<Vec<Tool>> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let kind = t.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind != "function" {
            return Err(err(
                "unsupported_value",
                format!("tools[{i}].type"),
                format!(
                    "tool type `{kind}` is not supported: llmux offers `function` tools only (built-in tools such as web_search or file_search run at OpenAI)"
                ),
            ));
        }
        let name = t.get("name").and_then(Value::as_str).ok_or_else(|| {
            err(
                "missing_required_parameter",
                format!("tools[{i}].name"),
                "a function tool needs a `name`",
            )
        })?;
        let get = |k: &str| t.get(k).filter(|v| !v.is_null());
        out.push(Tool {
            name: name.to_owned(),
            description: get("description").and_then(Value::as_str).map(String::from),
            parameters: get("parameters").cloned(),
            strict: get("strict").and_then(Value::as_bool),
        });
    }
    Ok(out)
}

fn tool_choice_in(c: &Value, tools: &[Tool]) -> Result<ToolChoice> {
    let bad = || {
        err(
            "invalid_value",
            "tool_choice",
            "`tool_choice` must be `none`, `auto`, `required` or `{\"type\":\"function\",\"name\":…}`",
        )
    };
    match c {
        Value::String(s) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            _ => Err(bad()),
        },
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o.get("name").and_then(Value::as_str).ok_or_else(bad)?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(err(
                    "invalid_value",
                    "tool_choice",
                    format!("`tool_choice` names `{name}`, which is not in `tools`"),
                ));
            }
            Ok(ToolChoice::Function(name.to_owned()))
        }
        _ => Err(bad()),
    }
}

/// Appends the messages of `items` to `out`.
fn items_in(items: Vec<Value>, allow_remote: bool, out: &mut Vec<Message>) -> Result<()> {
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("input[{i}]");
        let Value::Object(item) = item else {
            return Err(err("invalid_type", at, "an input item must be an object"));
        };
        match item.get("type").and_then(Value::as_str) {
            None | Some("message") => out.push(message_in(&item, &at, allow_remote)?),
            Some("function_call") => {
                let call = ToolCall {
                    id: string(&item, &at, "call_id")?,
                    name: string(&item, &at, "name")?,
                    arguments: string(&item, &at, "arguments")?,
                    ..ToolCall::default()
                };
                match out.last_mut() {
                    Some(m) if m.role == Role::Assistant => m.tool_calls.push(call),
                    _ => out.push(Message::tool_calls(vec![call])),
                }
            }
            Some("function_call_output") => {
                let call_id = string(&item, &at, "call_id")?;
                let output = match item.get("output") {
                    Some(Value::String(s)) => Content::Text(s.clone()),
                    Some(Value::Array(parts)) => {
                        parts_in(parts, &format!("{at}.output"), allow_remote)?
                    }
                    _ => {
                        return Err(err(
                            "missing_required_parameter",
                            format!("{at}.output"),
                            "a `function_call_output` needs `output`: a string or content parts",
                        ));
                    }
                };
                out.push(Message::tool_result(call_id, output));
            }
            // reasoning of earlier turns: accepted and not replayed (chat upstreams take none)
            Some("reasoning") => {}
            Some(other) => {
                return Err(err(
                    "unsupported_value",
                    format!("{at}.type"),
                    format!(
                        "input items of type `{other}` are not supported: send `message`, `function_call` or `function_call_output` items"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn string(item: &Map<String, Value>, at: &str, key: &str) -> Result<String> {
    match item.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(err(
            "missing_required_parameter",
            format!("{at}.{key}"),
            format!("`{at}.{key}` must be a string"),
        )),
    }
}

fn message_in(item: &Map<String, Value>, at: &str, allow_remote: bool) -> Result<Message> {
    let role = match item.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("system" | "developer") => Role::System,
        _ => {
            return Err(err(
                "invalid_value",
                format!("{at}.role"),
                "`role` must be `user`, `assistant`, `system` or `developer`",
            ));
        }
    };
    let content = match item.get("content") {
        Some(Value::String(s)) => Content::Text(s.clone()),
        Some(Value::Array(parts)) => {
            let mut refusal = None;
            let c =
                parts_with_refusal(parts, &format!("{at}.content"), allow_remote, &mut refusal)?;
            let mut m = Message::new(role, c);
            if let Some(r) = refusal {
                m.extra.insert("refusal".into(), Value::String(r));
            }
            return Ok(m);
        }
        _ => {
            return Err(err(
                "missing_required_parameter",
                format!("{at}.content"),
                "a message needs `content`: a string or content parts",
            ));
        }
    };
    Ok(Message::new(role, content))
}

fn parts_in(parts: &[Value], at: &str, allow_remote: bool) -> Result<Content> {
    let mut refusal = None;
    let c = parts_with_refusal(parts, at, allow_remote, &mut refusal)?;
    if refusal.is_some() {
        return Err(err(
            "unsupported_value",
            at.to_owned(),
            "`refusal` parts belong in assistant messages",
        ));
    }
    Ok(c)
}

/// Content parts: `input_text` / `output_text` → text, `input_image` → image, `refusal` →
/// `refusal` (an assistant turn's).
fn parts_with_refusal(
    parts: &[Value],
    at: &str,
    allow_remote: bool,
    refusal: &mut Option<String>,
) -> Result<Content> {
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        let at = format!("{at}[{j}]");
        let field = |k: &str| p.get(k).and_then(Value::as_str);
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text") => {
                let text = field("text").ok_or_else(|| {
                    err(
                        "missing_required_parameter",
                        format!("{at}.text"),
                        "a text part needs `text`",
                    )
                })?;
                out.push(ContentPart::Text {
                    text: text.to_owned(),
                });
            }
            Some("refusal") => *refusal = field("refusal").map(String::from),
            Some("input_image") => out.push(image_in(p, &at, allow_remote)?),
            Some(other) => {
                return Err(err(
                    "unsupported_value",
                    format!("{at}.type"),
                    format!(
                        "content parts of type `{other}` are not supported: send `input_text` or `input_image` (a data URI)"
                    ),
                ));
            }
            None => {
                return Err(err(
                    "missing_required_parameter",
                    format!("{at}.type"),
                    "a content part needs a `type`",
                ));
            }
        }
    }
    Ok(match out.as_slice() {
        [ContentPart::Text { text }] => Content::Text(text.clone()),
        _ => Content::Parts(out),
    })
}

fn image_in(p: &Value, at: &str, allow_remote: bool) -> Result<ContentPart> {
    let Some(url) = p.get("image_url").and_then(Value::as_str) else {
        let why = if p.get("file_id").is_some_and(|f| !f.is_null()) {
            "file ids are not supported: send the image as a data URI in `image_url`"
        } else {
            "an `input_image` part needs `image_url` (a data URI)"
        };
        return Err(err("invalid_value", format!("{at}.image_url"), why));
    };
    check_media_url(url, allow_remote).map_err(|e| WireError {
        param: Some(format!("{at}.image_url")),
        ..e
    })?;
    let mut image = ImageUrl::new(url);
    image.detail = p
        .get("detail")
        .and_then(Value::as_str)
        .filter(|d| *d != "auto")
        .map(String::from);
    Ok(ContentPart::ImageUrl { image_url: image })
}
