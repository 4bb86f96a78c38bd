//! The request parsers of the gateway's other APIs: Anthropic Messages (`POST /v1/messages`)
//! and OpenAI embeddings (`POST /v1/embeddings`).

use llmux_core::EmbeddingInput;
use llmux_server::fuzzing::{parse_embeddings, parse_messages};
use serde_json::Value;

use crate::Target;
use crate::engine::{bucket, fnv};

const MESSAGES_DICTIONARY: &[&[u8]] = &[
    b"{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
    b"\"max_tokens\":",
    b"\"messages\":",
    b"\"system\":",
    b"\"role\":\"assistant\"",
    b"\"role\":\"user\"",
    b"{\"type\":\"text\",\"text\":\"x\"}",
    b"{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBORw0KGgo=\"}}",
    b"{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://a.b/c.png\"}}",
    b"{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{\"a\":1}}",
    b"{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"r\",\"is_error\":true}",
    b"{\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":\"s\"}",
    b"\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}]",
    b"{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}",
    b"\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":true}",
    b"\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048}",
    b"\"metadata\":{\"user_id\":\"u\"}",
    b"\"stop_sequences\":[\"a\"]",
    b"\"cache_control\":{\"type\":\"ephemeral\"}",
    b"\"stream\":true",
    b"null",
    b"[]",
];

const EMBEDDINGS_DICTIONARY: &[&[u8]] = &[
    b"{\"model\":\"m\",\"input\":\"hi\"}",
    b"\"input\":",
    b"[[1,2],[3]]",
    b"[\"a\",\"b\"]",
    b"\"encoding_format\":\"base64\"",
    b"\"encoding_format\":\"float\"",
    b"\"dimensions\":",
    b"\"user\":\"u\"",
    b"\"provider\":\"p\"",
    b"4294967296",
    b"-1",
    b"null",
];

/// `POST /v1/messages` bodies.
pub const MESSAGES_PARSE: Target = Target {
    name: "messages-parse",
    about: "Anthropic Messages request bodies: parsing + translation to llmux requests (Anthropic-shaped errors)",
    run: messages_parse,
    seeds: messages_seeds,
    dictionary: MESSAGES_DICTIONARY,
};

/// `POST /v1/embeddings` bodies.
pub const EMBEDDINGS_PARSE: Target = Target {
    name: "embeddings-parse",
    about: "OpenAI embeddings request bodies: every input shape, encodings, dimensions (OpenAI-shaped errors)",
    run: embeddings_parse,
    seeds: embeddings_seeds,
    dictionary: EMBEDDINGS_DICTIONARY,
};

fn messages_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"model":"m","max_tokens":100,"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}],"stop_sequences":["x"],"temperature":0.2,"top_p":0.9,"top_k":5,"metadata":{"user_id":"u"}}"#,
        r#"{"model":"m","max_tokens":100,"tools":[{"name":"get_weather","description":"w","input_schema":{"type":"object","properties":{"l":{"type":"string"}}}}],"tool_choice":{"type":"tool","name":"get_weather"},"messages":[{"role":"user","content":"w?"},{"role":"assistant","content":[{"type":"text","text":"ok"},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"l":"Paris"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"15"}]},{"type":"text","text":"and?"}]}]}"#,
        r#"{"model":"m","max_tokens":2048,"stream":true,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"text","text":"what?"}]},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"redacted_thinking","data":"d"}]}]}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn embeddings_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"model":"text-embedding-3-small","input":"hello","encoding_format":"float","dimensions":256,"user":"u"}"#,
        r#"{"model":"m","input":["a","b"],"encoding_format":"base64"}"#,
        r#"{"model":"m","input":[[1,2,3],[4]],"provider":"openai-compat"}"#,
        r#"{"model":"m","input":[1,2,3],"x_extra":{"k":[1]}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn messages_parse(data: &[u8]) -> u64 {
    let mut sig = Vec::new();
    for remote in [false, true] {
        match parse_messages(data, remote) {
            Ok(req) => {
                assert!(!req.messages.is_empty(), "no messages accepted");
                assert!(req.max_tokens.is_some(), "max_tokens is required");
                let text: usize = req.messages.iter().map(|m| m.text().len()).sum();
                assert!(text <= data.len(), "more text out than bytes in");
                sig.push(bucket(req.messages.len()) + 10 * bucket(req.tools.len()));
            }
            Err(e) => {
                let v: Value = serde_json::from_slice(&e).expect("error bodies are JSON");
                assert_eq!(v["type"], "error", "not Anthropic-shaped: {v}");
                assert!(
                    v.pointer("/error/type").is_some_and(Value::is_string),
                    "{v}"
                );
                assert!(
                    v.pointer("/error/message").is_some_and(Value::is_string),
                    "{v}"
                );
                sig.push(100 + bucket(e.len()));
            }
        }
    }
    fnv(&sig)
}

fn embeddings_parse(data: &[u8]) -> u64 {
    match parse_embeddings(data) {
        Ok(req) => {
            assert!(!req.input.is_empty(), "empty input accepted");
            let size = match &req.input {
                EmbeddingInput::Text(t) => t.iter().map(String::len).sum::<usize>(),
                EmbeddingInput::Tokens(t) => t.iter().map(Vec::len).sum::<usize>(),
            };
            assert!(size <= data.len(), "more input out than bytes in");
            assert_ne!(req.dimensions, Some(0));
            fnv(&[1, bucket(req.input.len()), bucket(size)])
        }
        Err(e) => {
            let v: Value = serde_json::from_slice(&e).expect("error bodies are JSON");
            assert!(
                v.pointer("/error/message").is_some_and(Value::is_string),
                "{v}"
            );
            fnv(&[2, bucket(e.len())])
        }
    }
}
