//! The gateway's `POST /v1/responses` request parser, and the event builder over what it
//! accepts.

use llmux_openai::responses::Builder;
use llmux_server::fuzzing::parse_responses;
use serde_json::Value;

use crate::Target;
use crate::engine::{bucket, fnv};

const DICTIONARY: &[&[u8]] = &[
    b"{\"model\":\"echo-1\",\"input\":\"hi\"}",
    b"\"input\":",
    b"\"instructions\":\"be brief\"",
    b"{\"role\":\"user\",\"content\":\"x\"}",
    b"{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"a\",\"annotations\":[]}]}",
    b"{\"type\":\"input_text\",\"text\":\"x\"}",
    b"{\"type\":\"input_image\",\"image_url\":\"data:image/png;base64,iVBORw0KGgo=\",\"detail\":\"low\"}",
    b"{\"type\":\"refusal\",\"refusal\":\"no\"}",
    b"{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"}",
    b"{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"r\"}",
    b"{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]}",
    b"\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":{\"type\":\"object\"},\"strict\":true}]",
    b"{\"type\":\"web_search\"}",
    b"\"tool_choice\":{\"type\":\"function\",\"name\":\"f\"}",
    b"\"tool_choice\":\"required\"",
    b"\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"s\",\"schema\":{\"type\":\"object\"}}}",
    b"\"reasoning\":{\"effort\":\"low\",\"summary\":\"auto\"}",
    b"\"max_output_tokens\":9",
    b"\"metadata\":{\"k\":\"v\"}",
    b"\"store\":false",
    b"\"stream\":true",
    b"\"previous_response_id\":\"resp_1\"",
    b"\"background\":true",
    b"\"include\":[]",
    b"\"truncation\":\"auto\"",
    b"\"provider\":\"echo\"",
    b"null",
    b"[]",
];

/// `parse_responses` on raw bodies, then the stream events of an answer to what it accepted.
pub const RESPONSES_PARSE: Target = Target {
    name: "responses-parse",
    about: "gateway `/v1/responses` bodies: parsing + translation (field-path errors), then the event builder over the accepted request",
    run: responses_parse,
    seeds,
    dictionary: DICTIONARY,
};

fn seeds() -> Vec<Vec<u8>> {
    [
        r#"{"model":"echo-1","input":"hi","instructions":"be brief","max_output_tokens":9,"temperature":0.5,"reasoning":{"effort":"low"},"metadata":{"k":"v"}}"#,
        r#"{"model":"echo-1","stream":true,"input":[{"role":"user","content":[{"type":"input_text","text":"weather?"},{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}]},{"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},{"type":"function_call_output","call_id":"c1","output":"18C"}],"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"},"strict":true}],"tool_choice":"auto"}"#,
        r#"{"input":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"a","annotations":[]},{"type":"refusal","refusal":"no"}]},{"role":"developer","content":"x"}],"text":{"format":{"type":"json_schema","name":"s","schema":{"type":"object"},"strict":true},"verbosity":"low"},"store":false}"#,
        r#"{"input":"x","tools":[{"type":"web_search"}],"background":true}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn check_error_body(body: &[u8]) {
    let v: Value = serde_json::from_slice(body).expect("error bodies are JSON");
    assert!(
        v.pointer("/error/message").is_some_and(Value::is_string),
        "error body without error.message: {v}"
    );
    assert!(
        v.pointer("/error/param").is_some(),
        "error body without error.param: {v}"
    );
}

fn responses_parse(data: &[u8]) -> u64 {
    let mut sig = Vec::new();
    for remote in [false, true] {
        match parse_responses(data, remote) {
            Ok((req, response)) => {
                assert!(!req.messages.is_empty());
                let text: usize = req.messages.iter().map(|m| m.text().len()).sum();
                assert!(text <= data.len());
                sig.push(bucket(req.messages.len()));
                sig.push(build(response, &req));
            }
            Err(e) => {
                check_error_body(&e);
                sig.push(100 + bucket(e.len()));
            }
        }
    }
    fnv(&sig)
}

/// Answers with the request's own texts (text, reasoning, a call), checking the event stream.
fn build(response: llmux_openai::responses::ResponseObject, req: &llmux::ChatRequest) -> u64 {
    let mut b = Builder::new(response, true);
    b.start();
    for (i, m) in req.messages.iter().enumerate() {
        let t = m.text();
        match i % 3 {
            0 => b.text(&t),
            1 => b.reasoning(&t),
            _ => b.tool(0, Some("call_1"), Some("f"), &t),
        }
    }
    if req.messages.len() % 2 == 0 {
        b.finish(None, None);
    } else {
        b.fail("server_error", "cut");
    }
    let events = b.take_events();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.sequence_number, i as u64);
        let v = serde_json::to_value(e).expect("events serialise");
        assert_eq!(v["type"].as_str(), Some(e.event.kind()));
    }
    let last = events.last().map(|e| e.event.kind());
    assert!(matches!(
        last,
        Some("response.completed" | "response.failed")
    ));
    bucket(events.len())
}
