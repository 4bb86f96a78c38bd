//! `llmux chat --tools FILE.json`, `--tool-choice` and `--json-schema FILE.json`: reading the
//! files into [`Tool`]s and a [`ResponseFormat`], and printing the tool calls the model makes.

use std::io::Write;
use std::path::Path;

use llmux::{ResponseFormat, Tool, ToolCall, ToolChoice};
use serde_json::{Map, Value, json};

use crate::exit::CliError;

/// Largest tools or schema file read.
const MAX_FILE: u64 = 4 * 1024 * 1024;

/// Reads a JSON file (bounded), naming the file in every error.
fn read_json(path: &Path, what: &str) -> Result<Value, CliError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::usage(format!("cannot read {what} {}: {e}", path.display())))?;
    if meta.len() > MAX_FILE {
        return Err(CliError::usage(format!(
            "{what} {} is larger than 4 MiB",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {what} {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::usage(format!(
            "{what} {} is not valid JSON (line {}, column {}): {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// One tool of the file: `{"type":"function","function":{…}}` or a bare `{name,…}` object.
fn parse_tool(item: &Value) -> Result<Tool, String> {
    let Some(obj) = item.as_object() else {
        return Err("is not a JSON object".into());
    };
    let function = match obj.get("type").and_then(Value::as_str) {
        Some("function") => obj
            .get("function")
            .and_then(Value::as_object)
            .ok_or("has `\"type\": \"function\"` but no `function` object")?,
        Some(other) => {
            return Err(format!(
                "has type `{other}`; only `function` tools are supported"
            ));
        }
        None if obj.contains_key("function") => obj
            .get("function")
            .and_then(Value::as_object)
            .ok_or("has a `function` that is not an object")?,
        None => obj,
    };
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or("has no function `name`")?;
    if let Some(p) = function.get("parameters").filter(|p| !p.is_object()) {
        return Err(format!(
            "`{name}`: `parameters` must be a JSON Schema object, not {p}"
        ));
    }
    let strict = match function.get("strict") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(format!("`{name}`: `strict` must be true or false")),
    };
    Ok(Tool {
        name: name.to_owned(),
        description: function
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parameters: function.get("parameters").cloned(),
        strict,
    })
}

/// Reads `--tools FILE.json`: a JSON array of OpenAI function tools (or bare function objects).
pub(crate) fn load_tools(path: &Path) -> Result<Vec<Tool>, CliError> {
    let doc = read_json(path, "tools file")?;
    let items = match &doc {
        Value::Array(a) => a.as_slice(),
        Value::Object(_) => std::slice::from_ref(&doc),
        _ => {
            return Err(CliError::usage(format!(
                "tools file {}: expected a JSON array of tools like [{{\"type\":\"function\",\"function\":{{\"name\":…,\"parameters\":{{…}}}}}}]",
                path.display()
            )));
        }
    };
    if items.is_empty() {
        return Err(CliError::usage(format!(
            "tools file {}: the list of tools is empty",
            path.display()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            parse_tool(item).map_err(|m| {
                CliError::usage(format!("tools file {}: tool {} {m}", path.display(), i + 1))
            })
        })
        .collect()
}

/// Parses `--tool-choice auto|required|none|NAME`.
pub(crate) fn parse_tool_choice(s: &str) -> Result<ToolChoice, String> {
    match s.trim() {
        "" => Err("expected auto, required, none or a function name".into()),
        "auto" => Ok(ToolChoice::Auto),
        "required" => Ok(ToolChoice::Required),
        "none" => Ok(ToolChoice::None),
        name => Ok(ToolChoice::Function(name.to_owned())),
    }
}

/// Reads `--json-schema FILE.json`: a bare JSON Schema, or `{"name","schema","strict"}` (as
/// OpenAI's `response_format.json_schema`). The name defaults to the file stem.
pub(crate) fn load_schema(path: &Path) -> Result<ResponseFormat, CliError> {
    let doc = read_json(path, "JSON schema file")?;
    let bad = |m: &str| CliError::usage(format!("JSON schema file {}: {m}", path.display()));
    let Value::Object(obj) = doc else {
        return Err(bad("expected a JSON Schema object"));
    };
    let wrapped = obj.get("schema").is_some_and(Value::is_object);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "schema".into());
    let name: String = obj
        .get("name")
        .and_then(Value::as_str)
        .filter(|_| wrapped)
        .map_or(stem, str::to_owned)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if !wrapped {
        return Ok(ResponseFormat::JsonSchema {
            name,
            description: None,
            schema: Some(Value::Object(obj)),
            strict: Some(true),
        });
    }
    let strict = match obj.get("strict") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("`strict` must be true or false")),
    };
    Ok(ResponseFormat::JsonSchema {
        name,
        description: obj
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        schema: obj.get("schema").cloned(),
        strict: Some(strict),
    })
}

/// One tool call as printed: `{"id":…,"name":…,"arguments":<parsed JSON, else the text>}`.
pub(crate) fn call_line(call: &ToolCall) -> Value {
    let arguments = if call.arguments.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str::<Value>(&call.arguments)
            .unwrap_or_else(|_| Value::String(call.arguments.clone()))
    };
    let mut o = Map::new();
    o.insert("id".into(), json!(call.id));
    o.insert("name".into(), json!(call.name));
    o.insert("arguments".into(), arguments);
    Value::Object(o)
}

/// Prints each call as one JSON line on stdout.
pub(crate) fn print_calls(calls: &[ToolCall]) {
    let mut out = std::io::stdout().lock();
    for c in calls {
        let _ = writeln!(out, "{}", call_line(c));
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("llmux-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn tools_in_both_shapes() {
        let p = tmp(
            "tools.json",
            r#"[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object"},"strict":true}},
               {"name":"bare","parameters":{"type":"object","properties":{}}}]"#,
        );
        let tools = load_tools(&p).expect("valid");
        assert_eq!(tools.len(), 2);
        assert_eq!(tools[0].name, "get_weather");
        assert_eq!(tools[0].strict, Some(true));
        assert_eq!(tools[1].name, "bare");
        assert_eq!(tools[1].description, None);
    }

    #[test]
    fn bad_tools_name_file_and_problem() {
        for (text, needle) in [
            (
                "[{\"type\":\"function\"}]",
                "tool 1 has `\"type\": \"function\"` but no",
            ),
            ("[{\"description\":\"x\"}]", "tool 1 has no function `name`"),
            (
                "[{\"name\":\"f\",\"parameters\":3}]",
                "`parameters` must be",
            ),
            ("[{\"type\":\"retrieval\"}]", "only `function` tools"),
            ("[]", "empty"),
            ("42", "expected a JSON array"),
            ("[{", "not valid JSON (line 1"),
        ] {
            let p = tmp("bad-tools.json", text);
            let e = load_tools(&p).expect_err(text);
            assert!(e.message.contains("bad-tools.json"), "{}", e.message);
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }

    #[test]
    fn schema_bare_and_wrapped() {
        let p = tmp(
            "person.json",
            r#"{"type":"object","properties":{"n":{"type":"string"}}}"#,
        );
        match load_schema(&p).expect("bare") {
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
                ..
            } => {
                assert_eq!(name, "person");
                assert_eq!(schema.expect("schema")["type"], "object");
                assert_eq!(strict, Some(true));
            }
            other => panic!("{other:?}"),
        }
        let p = tmp(
            "w.json",
            r#"{"name":"answer","strict":false,"schema":{"type":"object"}}"#,
        );
        match load_schema(&p).expect("wrapped") {
            ResponseFormat::JsonSchema { name, strict, .. } => {
                assert_eq!(name, "answer");
                assert_eq!(strict, Some(false));
            }
            other => panic!("{other:?}"),
        }
        assert!(load_schema(&tmp("arr.json", "[1]")).is_err());
    }

    #[test]
    fn tool_choice_and_call_lines() {
        assert_eq!(parse_tool_choice("auto"), Ok(ToolChoice::Auto));
        assert_eq!(parse_tool_choice("f"), Ok(ToolChoice::Function("f".into())));
        assert!(parse_tool_choice(" ").is_err());
        let c = ToolCall::new("c1", "f", r#"{"a":1}"#);
        assert_eq!(
            call_line(&c),
            json!({"id":"c1","name":"f","arguments":{"a":1}})
        );
        let c = ToolCall {
            arguments: "not json".into(),
            ..c
        };
        assert_eq!(call_line(&c)["arguments"], "not json");
    }
}
