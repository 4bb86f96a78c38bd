//! Tool and structured-output emulation for providers without them (g4f's answer), off unless
//! asked for: per request (`tool_emulation`), per provider (`tool_emulation = true` in its
//! configuration) or for a whole client ([`crate::ClientBuilder::tool_emulation`]).
//!
//! **Tools.** A system instruction lists the functions (name, description, JSON Schema of the
//! arguments) and asks for a reply of only
//! `{"tool_calls": [{"name": "<function>", "arguments": {…}}]}` when the model wants to call
//! them, plain text otherwise; `tool_choice` `required` or a named function adds "you must
//! call…", `parallel_tool_calls: false` adds "at most one". Earlier tool calls in the history are
//! written in the same JSON form, tool results as user messages naming the function and call id.
//! The reply is buffered as soon as it starts like JSON (`{`, `[` or a code fence) and parsed
//! back: each call must name an offered function and have arguments that parse as a JSON object
//! (and, for a `strict` tool, validate against its schema); then it becomes real
//! [`Chunk::ToolCall`]s with finish reason `tool_calls`. Anything else is returned as the text it
//! was. A reply that starts with prose streams through as it comes.
//!
//! **Structured output.** The instruction asks for only a JSON object (following the schema for
//! `json_schema`); the whole reply is buffered, the JSON is taken out of code fences or
//! surrounding prose and returned alone. A `strict` schema the JSON does not follow is an error
//! (the next provider may be tried); otherwise the text is returned as it was.

use futures_util::StreamExt;
use llmux_core::{
    ChatRequest, ChatStream, Chunk, Content, Error, FinishReason, Message, ResponseFormat, Role,
    Tool, ToolCallDelta, ToolChoice,
};
use serde_json::{Value, json};

use crate::capability::Plan;

/// What the answer must be checked against.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spec {
    tools: Vec<Tool>,
    choice: Option<ToolChoice>,
    parallel: bool,
    format: Option<ResponseFormat>,
}

impl Spec {
    fn is_empty(&self) -> bool {
        self.tools.is_empty() && self.format.is_none()
    }
}

/// Rewrites `req` for `plan` (instructions in, native fields out) and returns what to check the
/// answer against; `None` when nothing is emulated.
pub(crate) fn rewrite(req: &mut ChatRequest, plan: &Plan) -> Option<Spec> {
    let mut spec = Spec::default();
    let mut instructions = Vec::new();
    if plan.emulate_tools {
        instructions.push(tools_instruction(req));
        spec.tools = std::mem::take(&mut req.tools);
        spec.choice = req.tool_choice.take();
        spec.parallel = req.parallel_tool_calls.take().unwrap_or(true);
        flatten_tool_history(&mut req.messages);
    }
    if plan.emulate_format {
        spec.format = req.response_format.take();
        instructions.push(format_instruction(spec.format.as_ref()));
    }
    if spec.is_empty() {
        return None;
    }
    add_system(&mut req.messages, &instructions.join("\n\n"));
    Some(spec)
}

fn tools_instruction(req: &ChatRequest) -> String {
    let list: Vec<String> = req
        .tools
        .iter()
        .map(|t| {
            json!({"name": t.name, "description": t.description, "parameters": t.parameters})
                .to_string()
        })
        .collect();
    let mut s = format!(
        "You can call functions. These functions are available (the JSON Schema of each one's arguments is given):\n{}\n\n\
         To call functions, reply with only this JSON and nothing else:\n\
         {{\"tool_calls\": [{{\"name\": \"<function name>\", \"arguments\": {{<arguments>}}}}]}}\n\
         When you can answer without calling a function, reply normally in plain text.",
        list.join("\n")
    );
    match &req.tool_choice {
        Some(ToolChoice::Required) => s.push_str("\nYou must call at least one function now."),
        Some(ToolChoice::Function(name)) => {
            s.push_str(&format!("\nYou must call the function `{name}` now."));
        }
        _ => {}
    }
    if req.parallel_tool_calls == Some(false) {
        s.push_str("\nCall at most one function at a time.");
    }
    s
}

fn format_instruction(format: Option<&ResponseFormat>) -> String {
    let mut s = "Reply with only a JSON object, without any prose or code fences.".to_owned();
    if let Some(ResponseFormat::JsonSchema {
        schema: Some(schema),
        ..
    }) = format
    {
        s.push_str(&format!(
            "\nThe JSON must follow this JSON Schema:\n{schema}"
        ));
    }
    s
}

/// Appends `text` to the first system message, or inserts one.
fn add_system(messages: &mut Vec<Message>, text: &str) {
    match messages.first_mut() {
        Some(m) if m.role == Role::System => {
            let old = m.text();
            m.content = Some(Content::Text(format!("{old}\n\n{text}")));
        }
        _ => messages.insert(0, Message::system(text)),
    }
}

/// Earlier tool calls become their JSON form, tool results user messages.
fn flatten_tool_history(messages: &mut [Message]) {
    let mut names: Vec<(String, String)> = Vec::new();
    for m in messages.iter_mut() {
        if !m.tool_calls.is_empty() {
            let calls: Vec<Value> = std::mem::take(&mut m.tool_calls)
                .into_iter()
                .map(|c| {
                    names.push((c.id.clone(), c.name.clone()));
                    let args = serde_json::from_str::<Value>(&c.arguments)
                        .unwrap_or(Value::String(c.arguments));
                    json!({"name": c.name, "arguments": args})
                })
                .collect();
            let prefix = m.text();
            let call_json = json!({"tool_calls": calls}).to_string();
            m.content = Some(Content::Text(if prefix.is_empty() {
                call_json
            } else {
                format!("{prefix}\n{call_json}")
            }));
        } else if m.role == Role::Tool {
            let id = m.tool_call_id.take().unwrap_or_default();
            let name = names
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, n)| n.as_str())
                .or(m.name.as_deref())
                .unwrap_or("function")
                .to_owned();
            m.content = Some(Content::Text(format!(
                "The function `{name}` (call `{id}`) returned:\n{}",
                m.text()
            )));
            m.role = Role::User;
        }
    }
}

/// How far the answer is read before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Undecided,
    Stream,
    Buffer,
}

/// Wraps a provider's stream: buffers a reply that may be a tool call or JSON, and turns it
/// into tool-call chunks or clean JSON at the end (see the module docs).
pub(crate) fn wrap(mut stream: ChatStream, spec: Spec, provider: String) -> ChatStream {
    Box::pin(async_stream::try_stream! {
        let mut text = String::new();
        let mut mode = Mode::Undecided;
        let mut finish = None;
        while let Some(chunk) = stream.next().await {
            match chunk? {
                Chunk::Text(t) if mode == Mode::Stream => yield Chunk::Text(t),
                Chunk::Text(t) => {
                    text.push_str(&t);
                    if mode == Mode::Undecided {
                        mode = decide(&text, &spec);
                        if mode == Mode::Stream {
                            yield Chunk::Text(std::mem::take(&mut text));
                        }
                    }
                }
                Chunk::Finish(f) => finish = Some(f),
                other => yield other,
            }
        }
        if !text.is_empty() {
            if let Some(calls) = parse_calls(&text, &spec) {
                for (index, (name, arguments)) in (0u32..).zip(calls) {
                    yield Chunk::ToolCall(ToolCallDelta {
                        index,
                        id: Some(format!("call_{}", llmux_core::random::random_alnum(24))),
                        name: Some(name),
                        arguments,
                        extra: serde_json::Map::new(),
                    });
                }
                yield Chunk::Finish(FinishReason::ToolCalls);
                return;
            }
            yield Chunk::Text(structured(text, &spec, &provider)?);
        }
        if let Some(f) = finish {
            yield Chunk::Finish(f);
        }
    })
}

/// Stream prose at once; buffer what may be JSON (and everything for structured output).
fn decide(text: &str, spec: &Spec) -> Mode {
    let t = text.trim_start();
    if spec.format.is_some() {
        Mode::Buffer
    } else if t.is_empty() || "```".starts_with(t) {
        Mode::Undecided
    } else if t.starts_with('{') || t.starts_with('[') || t.starts_with("```") {
        Mode::Buffer
    } else {
        Mode::Stream
    }
}

/// The JSON document in `text`: the whole text, the inside of a code fence, or the span from
/// the first `{` / `[` to the last `}` / `]`.
fn json_in(text: &str) -> Option<(Value, &str)> {
    let t = text.trim();
    let unfenced = t
        .strip_prefix("```")
        .and_then(|r| r.split_once('\n'))
        .and_then(|(_, body)| body.trim_end().strip_suffix("```"))
        .map(str::trim);
    let spans = [Some(t), unfenced, span(t, '{', '}'), span(t, '[', ']')];
    spans
        .into_iter()
        .flatten()
        .find_map(|s| serde_json::from_str(s).ok().map(|v| (v, s)))
}

fn span(t: &str, open: char, close: char) -> Option<&str> {
    let (a, b) = (t.find(open)?, t.rfind(close)?);
    t.get(a..=b)
}

/// Tool calls in the reply, or `None` when it is no valid call of an offered function.
fn parse_calls(text: &str, spec: &Spec) -> Option<Vec<(String, String)>> {
    if spec.tools.is_empty() {
        return None;
    }
    let (v, _) = json_in(text)?;
    let list = match v {
        Value::Object(mut o) if o.contains_key("tool_calls") => o.remove("tool_calls")?,
        Value::Object(o) => Value::Array(vec![Value::Object(o)]),
        other => other,
    };
    let mut calls = Vec::new();
    for item in list.as_array()? {
        let name = item.get("name")?.as_str()?;
        let tool = spec.tools.iter().find(|t| t.name == name)?;
        let args = match item.get("arguments").or_else(|| item.get("parameters")) {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(s)) => serde_json::from_str(s).ok()?,
            Some(v) => v.clone(),
        };
        if !args.is_object() {
            return None;
        }
        if tool.strict == Some(true) {
            validate(tool.parameters.as_ref(), &args).ok()?;
        }
        calls.push((name.to_owned(), args.to_string()));
    }
    if let Some(ToolChoice::Function(want)) = &spec.choice {
        calls.retain(|(n, _)| n == want);
    }
    if !spec.parallel {
        calls.truncate(1);
    }
    (!calls.is_empty()).then_some(calls)
}

/// The reply for structured output: the JSON alone when it is valid, else the text as it was
/// (a `strict` schema that is not followed is an error).
fn structured(text: String, spec: &Spec, provider: &str) -> Result<String, Error> {
    let (schema, strict) = match &spec.format {
        None | Some(ResponseFormat::Text) => return Ok(text),
        Some(ResponseFormat::JsonObject) => (None, false),
        Some(ResponseFormat::JsonSchema { schema, strict, .. }) => {
            (schema.as_ref(), *strict == Some(true))
        }
    };
    let found = json_in(&text).filter(|(v, _)| schema.is_some() || v.is_object());
    match found {
        Some((v, s)) => match validate(schema, &v) {
            Ok(()) => Ok(s.to_owned()),
            Err(why) if strict => Err(Error::Upstream {
                provider: provider.to_owned(),
                message: format!("the answer does not follow the response_format schema: {why}"),
            }),
            Err(_) => Ok(text),
        },
        None if strict => Err(Error::Upstream {
            provider: provider.to_owned(),
            message: "the answer is not the JSON response_format asks for".into(),
        }),
        None => Ok(text),
    }
}

/// Validates `v` against `schema` (no schema: anything goes).
fn validate(schema: Option<&Value>, v: &Value) -> Result<(), String> {
    let Some(schema) = schema else {
        return Ok(());
    };
    let validator =
        jsonschema::validator_for(schema).map_err(|e| format!("invalid schema: {e}"))?;
    match validator.iter_errors(v).next() {
        None => Ok(()),
        Some(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux_core::ToolCall;

    fn weather() -> Tool {
        Tool {
            strict: Some(true),
            ..Tool::function(
                "weather",
                "Weather of a city",
                json!({"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"], "additionalProperties": false}),
            )
        }
    }

    fn spec() -> Spec {
        Spec {
            tools: vec![weather()],
            parallel: true,
            ..Spec::default()
        }
    }

    async fn run(pieces: &[&str], spec: Spec) -> Vec<Chunk> {
        let mut items: Vec<Result<Chunk, Error>> =
            pieces.iter().map(|p| Ok(Chunk::text(*p))).collect();
        items.push(Ok(Chunk::Finish(FinishReason::Stop)));
        let inner: ChatStream = Box::pin(futures_util::stream::iter(items));
        wrap(inner, spec, "p".into())
            .filter_map(|c| async move { c.ok() })
            .collect()
            .await
    }

    #[tokio::test]
    async fn a_valid_call_becomes_tool_call_chunks() {
        let out = run(
            &[
                "```json\n{\"tool_calls\": [{\"name\": \"weather\", \"argu",
                "ments\": {\"city\": \"Paris\"}}]}\n```",
            ],
            spec(),
        )
        .await;
        let Chunk::ToolCall(d) = &out[0] else {
            panic!("tool call expected: {out:?}")
        };
        assert_eq!(d.name.as_deref(), Some("weather"));
        assert_eq!(d.arguments, r#"{"city":"Paris"}"#);
        assert!(d.id.as_deref().is_some_and(|i| i.starts_with("call_")));
        assert_eq!(out[1], Chunk::Finish(FinishReason::ToolCalls));
        assert_eq!(out.len(), 2);
    }

    #[tokio::test]
    async fn invalid_json_or_schema_or_no_call_is_text() {
        for reply in [
            "{\"tool_calls\": [{\"name\": \"weather\", \"arguments\": {\"city\": ",
            "{\"tool_calls\": [{\"name\": \"weather\", \"arguments\": {\"town\": \"x\"}}]}",
            "{\"tool_calls\": [{\"name\": \"other\", \"arguments\": {}}]}",
        ] {
            let out = run(&[reply], spec()).await;
            assert_eq!(
                out,
                [Chunk::text(reply), Chunk::Finish(FinishReason::Stop)],
                "{reply}"
            );
        }
        let out = run(&["It is ", "sunny."], spec()).await;
        assert_eq!(out[0], Chunk::text("It is "), "prose streams through");
        assert_eq!(out[1], Chunk::text("sunny."));
    }

    #[tokio::test]
    async fn structured_output_is_extracted_and_checked() {
        let format = ResponseFormat::JsonSchema {
            name: "w".into(),
            description: None,
            schema: weather().parameters,
            strict: Some(true),
        };
        let spec = Spec {
            format: Some(format),
            ..Spec::default()
        };
        let out = run(
            &["Sure! {\"city\":", " \"Oslo\"} Hope that helps."],
            spec.clone(),
        )
        .await;
        assert_eq!(out[0], Chunk::text("{\"city\": \"Oslo\"}"));
        let inner: ChatStream =
            Box::pin(futures_util::stream::iter([Ok(Chunk::text("{\"x\":1}"))]));
        let res: Vec<_> = wrap(inner, spec, "p".into()).collect().await;
        assert!(
            matches!(&res[0], Err(Error::Upstream { message, .. }) if message.contains("schema"))
        );
    }

    #[test]
    fn rewrite_moves_tools_into_the_prompt() {
        let mut req = ChatRequest::new(
            "m",
            vec![
                Message::system("Be brief."),
                Message::user("Weather in Paris?"),
                Message::tool_calls(vec![ToolCall::new("c1", "weather", r#"{"city":"Paris"}"#)]),
                Message::tool_result("c1", "sunny"),
            ],
        )
        .with_tool(weather())
        .with_tool_choice(ToolChoice::Required);
        let plan = Plan {
            emulate_tools: true,
            ..Plan::default()
        };
        let spec = rewrite(&mut req, &plan).expect("emulated");
        assert_eq!(spec.tools.len(), 1);
        assert!(req.tools.is_empty() && req.tool_choice.is_none());
        let sys = req.messages[0].text();
        assert!(
            sys.starts_with("Be brief.")
                && sys.contains("\"weather\"")
                && sys.contains("must call")
        );
        assert_eq!(
            req.messages[2].text(),
            r#"{"tool_calls":[{"arguments":{"city":"Paris"},"name":"weather"}]}"#
        );
        assert_eq!(req.messages[3].role, Role::User);
        assert!(
            req.messages[3]
                .text()
                .contains("`weather` (call `c1`) returned:\nsunny")
        );
    }
}
