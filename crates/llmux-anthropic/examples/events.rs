//! Prints Anthropic's SSE events for a short answer with a tool call, as the gateway streams
//! them: `cargo run -p llmux-anthropic --example events`.

use llmux_anthropic::answer::{self, MessageOut, Usage};
use llmux_anthropic::stream::EventWriter;

fn main() {
    let mut out = Vec::new();
    let mut w = EventWriter::new();
    let usage = Usage {
        input_tokens: 12,
        ..Usage::default()
    };
    let start = MessageOut::new(
        answer::message_id(),
        "claude-sonnet-4-5".into(),
        usage.clone(),
    );
    w.start(&mut out, &start);
    w.text(&mut out, "Let me check the weather.");
    if let Err(e) = w.tool(
        &mut out,
        0,
        None,
        Some("get_weather"),
        r#"{"location":"Paris"}"#,
    ) {
        eprintln!("{e}");
        return;
    }
    let (reason, seq) = answer::stop_reason(None, w.had_tool_calls(), None, &[]);
    let done = Usage {
        output_tokens: 9,
        ..usage
    };
    w.finish(&mut out, reason, seq, &done, false);
    print!("{}", String::from_utf8_lossy(&out));
}
