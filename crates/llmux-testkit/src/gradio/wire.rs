//! What the Gradio 5 and Gradio 6 fakes answer differently, following the captures of real
//! servers (`gradio-5-capture.txt`, `gradio-6-capture.txt` of Gradio 6.31.0): `GET /config`, the
//! shape of chat messages (a string `content` or a list of typed blocks), the diff paths, the
//! extra fields of outputs and completions, and the validation errors each version gives for
//! the other's message form.

use serde_json::{Value, json};

/// The Gradio major version a [`super::FakeGradio`] behaves as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Version {
    /// Gradio 5: `content` is a string or `{"file": FileData}`; a list is refused.
    #[default]
    Gradio5,
    /// Gradio 6: `content` is a list of `{"type": "text"|"file", …}` blocks; anything else is
    /// refused with pydantic's `Input should be a valid list`.
    Gradio6,
}

/// The `run/predict` error of the Gradio 5 capture when `files` is `null`.
pub const FILES_NOT_A_LIST: &str = "1 validation error for MultimodalData\nfiles\n  Input should be a valid list [type=list_type, input_value=None, input_type=NoneType]\n    For further information visit https://errors.pydantic.dev/2.11/v/list_type";
/// The same error from the Gradio 6 capture (a newer pydantic).
pub const FILES_NOT_A_LIST_6: &str = "1 validation error for MultimodalData\nfiles\n  Input should be a valid list [type=list_type, input_value=None, input_type=NoneType]\n    For further information visit https://errors.pydantic.dev/2.14/v/list_type";

/// JSON string literal of `s`.
fn js(s: &str) -> String {
    Value::from(s).to_string()
}

impl Version {
    /// The `version` of `GET /config`. Gradio 6's is the capture's; Gradio 5's is a 5.x release
    /// (the Gradio 5 capture does not show its config).
    pub fn number(self) -> &'static str {
        match self {
            Self::Gradio5 => "5.35.0",
            Self::Gradio6 => "6.31.0",
        }
    }

    fn pydantic(self) -> &'static str {
        match self {
            Self::Gradio5 => "2.11",
            Self::Gradio6 => "2.14",
        }
    }

    /// The `run/predict` error when `files` is not a list.
    pub(super) fn files_not_a_list(self) -> &'static str {
        match self {
            Self::Gradio5 => FILES_NOT_A_LIST,
            Self::Gradio6 => FILES_NOT_A_LIST_6,
        }
    }

    /// The body of `GET /config` (the parts a client reads: version, protocol, API prefix, the
    /// chat functions).
    pub(super) fn config(self, predict_fn: u64, join_fn: u64) -> Value {
        let dep = |id: u64,
                   name: &str,
                   inputs: Value,
                   outputs: Value,
                   queue: bool,
                   targets: Value| {
            let mut d = json!({"id": id, "targets": targets, "inputs": inputs, "outputs": outputs,
                "api_name": name, "queue": queue, "connection": "sse", "stream_every": 0.5,
                "trigger_mode": "once"});
            match self {
                Self::Gradio5 => d["show_api"] = json!(true),
                Self::Gradio6 => d["api_visibility"] = json!("public"),
            }
            d
        };
        json!({
            "version": self.number(),
            "api_prefix": "/gradio_api",
            "mode": "blocks",
            "protocol": "sse_v3",
            "enable_queue": true,
            "components": [
                {"id": 4, "type": "chatbot", "props": {"label": "Phi-4-multimodal"}},
                {"id": 5, "type": "chatbot", "props": {"label": "attachments"}},
                {"id": 6, "type": "state", "props": {}},
                {"id": 8, "type": "multimodaltextbox", "props": {}}
            ],
            "dependencies": [
                dep(predict_fn, "add_message", json!([4, 8, 6]), json!([4, 8, 6]), false, json!([[8, "submit"]])),
                dep(join_fn, "bot_response", json!([4, 5]), json!([4]), true, json!([[null, "then"]])),
            ]
        })
    }

    /// A text chat message as this version serialises it (key order of the captures).
    pub(super) fn chat_message(self, role: &str, text: &str) -> String {
        let content = match self {
            Self::Gradio5 => js(text),
            Self::Gradio6 => format!(r#"[{{"text":{},"type":"text"}}]"#, js(text)),
        };
        format!(r#"{{"role":"{role}","metadata":null,"content":{content},"options":null}}"#)
    }

    /// A user message holding one uploaded file, as `run/predict` answers it.
    pub(super) fn file_message(self, path: &str, url: &str, mime: &str) -> String {
        let file = format!(
            r#"{{"path":{},"url":{},"size":null,"orig_name":null,"mime_type":{},"is_stream":false,"meta":{{"_type":"gradio.FileData"}}}}"#,
            js(path),
            js(url),
            js(mime)
        );
        let content = match self {
            Self::Gradio5 => format!(r#"{{"file":{file},"alt_text":null}}"#),
            Self::Gradio6 => format!(r#"[{{"file":{file},"alt_text":null,"type":"file"}}]"#),
        };
        format!(r#"{{"role":"user","metadata":null,"content":{content},"options":null}}"#)
    }

    /// The `run/predict` answer: the chat box, the cleared textbox update, the state.
    pub(super) fn predict_answer(self, history: &[String]) -> String {
        let (value, tail) = match self {
            Self::Gradio5 => (
                "null",
                r#""duration":0.0005991458892822266,"average_duration":0.0015152825249565972,"render_config":null,"changed_state_ids":[]"#,
            ),
            Self::Gradio6 => (
                r#"{"text":"","files":[]}"#,
                r#""duration":0.0009162425994873047,"average_duration":0.0008559226989746094,"render_config":null,"changed_state_ids":[],"used_cache":null"#,
            ),
        };
        format!(
            r#"{{"data":[[{}],{{"interactive":false,"value":{value},"__type__":"update"}},null],"is_generating":false,{tail}}}"#,
            history.join(",")
        )
    }

    /// The diff appending `piece` to the assistant text (message 1).
    pub(super) fn append_diff(self, piece: &str) -> String {
        let path = match self {
            Self::Gradio5 => r#"[1,"content"]"#,
            Self::Gradio6 => r#"[1,"content",0,"text"]"#,
        };
        format!(r#"[["append",{path},{}]]"#, js(piece))
    }

    /// The fields after `changed_state_ids` in an output.
    fn output_tail(self) -> &'static str {
        match self {
            Self::Gradio5 => "",
            Self::Gradio6 => r#","used_cache":null"#,
        }
    }

    /// A `process_generating` message carrying `data` (one output).
    pub(super) fn generating(self, id: &str, data: &str) -> String {
        format!(
            r#"{{"msg":"process_generating","event_id":"{id}","output":{{"data":[{data}],"is_generating":true,"duration":0.051311492919921875,"average_duration":0.0449826016145594,"render_config":null,"changed_state_ids":[]{}}},"success":true,"time_limit":null}}"#,
            self.output_tail()
        )
    }

    /// A successful `process_completed` message carrying `data` (one output).
    pub(super) fn completed(self, id: &str, data: &str) -> String {
        let tail = match self {
            Self::Gradio5 => "",
            Self::Gradio6 => {
                r#","used_cache":null,"cache_duration":0.0004279613494873047,"avg_time":0.0450126010102111"#
            }
        };
        format!(
            r#"{{"msg":"process_completed","event_id":"{id}","output":{{"data":[{data}],"is_generating":false,"duration":0.0004279613494873047,"average_duration":0.0450126010102111,"render_config":null,"changed_state_ids":[]{}}},"success":true,"title":null{tail}}}"#,
            self.output_tail()
        )
    }

    /// A failed `process_completed` message.
    pub(super) fn failed(self, id: &str, message: &str) -> String {
        let (visible, tail) = match self {
            Self::Gradio5 => ("", ""),
            Self::Gradio6 => (
                r#","visible":true"#,
                r#","used_cache":null,"cache_duration":null,"avg_time":null"#,
            ),
        };
        format!(
            r#"{{"msg":"process_completed","event_id":"{id}","output":{{"error":{}{visible}}},"success":false,"title":"Error"{tail}}}"#,
            js(message)
        )
    }

    /// The `unexpected_error` of a `queue/data` request for a session with nothing queued.
    pub(super) fn session_not_found(self) -> &'static str {
        match self {
            Self::Gradio5 => {
                r#"{"msg":"unexpected_error","event_id":null,"message":"404: Session not found.","success":false}"#
            }
            Self::Gradio6 => {
                r#"{"msg":"unexpected_error","event_id":null,"message":"404: Not Found","session_not_found":true,"success":false}"#
            }
        }
    }

    /// The pydantic error Gradio gives when a `Chatbot` input (a list of messages) is not in
    /// this version's form, `None` when it is.
    pub(super) fn chatbot_error(self, messages: &Value) -> Option<String> {
        let pydantic = self.pydantic();
        let entry = |loc: String, msg: &str, kind: &str, content: &Value| {
            format!(
                "{loc}\n  {msg} [type={kind}, input_value={}, input_type={}]\n    For further information visit https://errors.pydantic.dev/{pydantic}/v/{kind}",
                truncate(&py_repr(content)),
                py_type(content)
            )
        };
        let mut errors = Vec::new();
        for (i, content) in messages
            .as_array()?
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i, m.get("content")?)))
        {
            match self {
                Self::Gradio6 if !content.is_array() => errors.push(entry(
                    format!("{i}.content"),
                    "Input should be a valid list",
                    "list_type",
                    content,
                )),
                Self::Gradio5 if content.is_array() => {
                    errors.push(entry(
                        format!("{i}.content.str"),
                        "Input should be a valid string",
                        "string_type",
                        content,
                    ));
                    for model in ["FileMessage", "ComponentMessage"] {
                        errors.push(entry(
                            format!("{i}.content.{model}"),
                            &format!("Input should be a valid dictionary or instance of {model}"),
                            "model_type",
                            content,
                        ));
                    }
                }
                _ => {}
            }
        }
        let n = errors.len();
        (n > 0).then(|| {
            let plural = if n == 1 { "" } else { "s" };
            format!(
                "{n} validation error{plural} for ChatbotDataMessages\n{}",
                errors.join("\n")
            )
        })
    }
}

/// The text of a message `content` in either form (a string, or the `text` blocks of a list).
pub(super) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => String::new(),
    }
}

/// The `FileData` objects of a message `content` in either form (`{"file"}` or file blocks).
pub(super) fn content_files(content: &Value) -> Vec<&Value> {
    match content {
        Value::Array(blocks) => blocks.iter().filter_map(|b| b.get("file")).collect(),
        other => other.get("file").into_iter().collect(),
    }
}

/// Python's `repr` of a JSON value (as pydantic prints `input_value`).
fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_str(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_str(k), py_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python's `repr` of a string.
fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's type name of a JSON value.
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// pydantic's cut of a long `input_value`: the first and last 25 characters around `...`.
fn truncate(repr: &str) -> String {
    let chars: Vec<char> = repr.chars().collect();
    if chars.len() <= 50 {
        return repr.to_owned();
    }
    let head: String = chars.iter().take(25).collect();
    let tail: String = chars.iter().skip(chars.len() - 25).collect();
    format!("{head}...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The errors of FLOW B, F and M of gradio-6-capture.txt.
    #[test]
    fn gradio_6_refuses_string_content_like_the_capture() {
        let e = Version::Gradio6
            .chatbot_error(&json!([{"role": "user", "content": "Hello Phi"}]))
            .expect("refused");
        assert_eq!(
            e,
            "1 validation error for ChatbotDataMessages\n0.content\n  Input should be a valid list [type=list_type, input_value='Hello Phi', input_type=str]\n    For further information visit https://errors.pydantic.dev/2.14/v/list_type"
        );
        let dict = Version::Gradio6
            .chatbot_error(&json!([{"role": "user", "content": {"file": {"path": "/data/gradio/8d82c5cbb90e4d4e9cb897b8e84c7440ab2996ffd2cb781bd9688d3f64725243/red.png"}}}]))
            .expect("refused");
        assert!(
            dict.contains("input_value={'file': {'path': '/data/...")
                && dict.contains("input_type=dict]"),
            "{dict}"
        );
        assert_eq!(
            Version::Gradio6.chatbot_error(
                &json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
            ),
            None
        );
    }

    #[test]
    fn gradio_5_refuses_lists() {
        let e = Version::Gradio5
            .chatbot_error(&json!([{"role": "user", "content": "ok"}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]))
            .expect("refused");
        assert!(e.starts_with("3 validation errors for ChatbotDataMessages\n1.content.str\n  Input should be a valid string [type=string_type, input_value=[{'text': 'Hi', 'type': 'text'}], input_type=list]"), "{e}");
        assert!(
            e.contains("\n1.content.FileMessage\n") && e.contains("\n1.content.ComponentMessage\n"),
            "{e}"
        );
        assert_eq!(
            Version::Gradio5.chatbot_error(&json!([{"role": "user", "content": {"file": {}}}])),
            None
        );
    }

    #[test]
    fn python_reprs() {
        assert_eq!(py_repr(&json!("it's")), "\"it's\"");
        assert_eq!(py_repr(&json!("a\nb'\"")), "'a\\nb\\'\"'");
        assert_eq!(
            py_repr(&json!([null, true, 1, 1.5])),
            "[None, True, 1, 1.5]"
        );
        assert_eq!(py_type(&json!(1.5)), "float");
        assert_eq!(
            truncate(&"x".repeat(51)),
            format!("{}...{}", "x".repeat(25), "x".repeat(25))
        );
    }

    #[test]
    fn content_in_both_forms() {
        assert_eq!(content_text(&json!("Hi")), "Hi");
        assert_eq!(
            content_text(&json!([{"type": "text", "text": "Hi"}, {"type": "file", "file": {}}])),
            "Hi"
        );
        assert_eq!(content_files(&json!({"file": {"path": "/a"}})).len(), 1);
        assert_eq!(
            content_files(
                &json!([{"type": "file", "file": {"path": "/a"}}, {"type": "text", "text": "x"}])
            )
            .len(),
            1
        );
        assert!(content_files(&json!("Hi")).is_empty());
    }
}
