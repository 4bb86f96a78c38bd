//! A tool loop over a provider without native function calling, with tool emulation on:
//! `cargo run -p llmux --example tool_loop`.
//!
//! The in-process provider plays a model: offered tools (in the emulation's system prompt), it
//! answers with the emulation's JSON call; given a tool result, it answers in prose. The same
//! loop works unchanged against any provider (native tools or emulated).

use std::io::Write;
use std::sync::Arc;

use futures_util::StreamExt;
use llmux::core::Context;
use llmux::{
    Accumulator, Capabilities, ChatRequest, ChatStream, Chunk, Client, FinishReason, Message,
    Provider, ProviderInfo, Role, Tool,
};

struct TinyModel {
    info: ProviderInfo,
}

impl Provider for TinyModel {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn chat(&self, req: ChatRequest, _ctx: Context) -> ChatStream {
        let last = req.messages.last().map(Message::text).unwrap_or_default();
        let reply = if last.contains("returned:") {
            format!(
                "Here is what I found: {}",
                last.rsplit('\n').next().unwrap_or_default()
            )
        } else {
            r#"{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}"#
                .to_owned()
        };
        Box::pin(futures_util::stream::iter([
            Ok(Chunk::text(reply)),
            Ok(Chunk::Finish(FinishReason::Stop)),
        ]))
    }
}

fn weather(city: &str) -> String {
    format!("{{\"city\":\"{city}\",\"sky\":\"sunny\",\"celsius\":21}}")
}

/// Runs the tool loop to its answer, writing each tool call and the answer to `out`.
pub async fn run(out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    let model = TinyModel {
        info: ProviderInfo {
            name: "tiny".into(),
            working: true,
            default_model: "tiny-1".into(),
            capabilities: Capabilities::plain(&[], &[]),
            ..ProviderInfo::default()
        },
    };
    let client = Client::builder()
        .ignore_env()
        .registrations(Vec::new())
        .with_provider(Arc::new(model))
        .tool_emulation(true)
        .build()?;
    let mut req = ChatRequest::user("tiny-1", "What's the weather in Paris?").with_tool(
        Tool::function(
            "get_weather",
            "Current weather of a city",
            serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        ),
    );
    loop {
        let mut acc = Accumulator::new();
        let mut stream = client.chat(req.clone());
        while let Some(chunk) = stream.next().await {
            acc.push(&chunk?);
        }
        let answer = acc.finish();
        if answer.tool_calls.is_empty() {
            writeln!(out, "assistant: {}", answer.text)?;
            return Ok(());
        }
        req.messages
            .push(Message::tool_calls(answer.tool_calls.clone()));
        for call in answer.tool_calls {
            let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap_or_default();
            let city = args["city"].as_str().unwrap_or("nowhere");
            writeln!(
                out,
                "tool call {}: {}({})",
                call.id, call.name, call.arguments
            )?;
            req.messages
                .push(Message::tool_result(call.id, weather(city)));
        }
        debug_assert!(req.messages.iter().any(|m| m.role == Role::Tool));
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(&mut std::io::stdout()).await
}
