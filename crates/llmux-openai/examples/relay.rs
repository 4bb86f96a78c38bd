//! Reads an OpenAI-shaped stream (two parallel tool calls, with fields llmux does not model)
//! and writes it back in OpenAI's shape, as the gateway does: `cargo run -p llmux-openai
//! --example relay`.

use llmux_core::{Accumulator, Chunk};
use llmux_openai::read::Reader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = [
        r#"{"system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":null},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]}}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}"#,
        r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}"#,
    ];
    let mut reader = Reader::new("example");
    let mut chunks = Vec::new();
    for event in upstream {
        reader.event(event, &mut chunks)?;
    }
    let mut acc = Accumulator::new();
    for c in &chunks {
        if let Chunk::ToolCall(piece) = c {
            println!("piece: {}", serde_json::to_string(piece)?);
        }
        acc.push(c);
    }
    let answer = acc.finish();
    for call in &answer.tool_calls {
        println!("call {} {}({})", call.id, call.name, call.arguments);
    }
    println!(
        "finish: {:?}, extras: {:?}",
        answer.finish_reason, answer.extra.response
    );
    Ok(())
}
