//! Runs every example offline, against `llmux-testkit` fakes on 127.0.0.1, and checks what it
//! prints: each example file is compiled here as a module and its `run` called.

#[allow(dead_code)]
#[path = "../examples/custom_provider.rs"]
mod custom_provider;
#[cfg(feature = "openai-compat")]
#[allow(dead_code)]
#[path = "../examples/fallback.rs"]
mod fallback;
#[cfg(feature = "openai-compat")]
#[allow(dead_code)]
#[path = "../examples/streaming_chat.rs"]
mod streaming_chat;
#[allow(dead_code)]
#[path = "../examples/tool_loop.rs"]
mod tool_loop;

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).expect("examples print UTF-8")
}

#[cfg(feature = "openai-compat")]
#[tokio::test]
async fn streaming_chat_prints_the_deltas() {
    let mut out = Vec::new();
    streaming_chat::run(false, &mut out).await.expect("runs");
    let out = text(out);
    assert!(
        out.starts_with("[openai-compat answers with fake-model]\n"),
        "{out}"
    );
    assert!(
        out.contains("Streaming means the first words arrive before the last are written.\n"),
        "{out}"
    );
    assert!(
        out.contains("written.\n[finished: Stop]\n[usage: "),
        "{out}"
    );
    assert!(out.ends_with("[6 text deltas]\n"), "{out}");
}

#[cfg(feature = "openai-compat")]
#[tokio::test]
async fn fallback_answers_from_the_backup() {
    let mut out = Vec::new();
    let answered_by = fallback::run(None, &mut out).await.expect("runs");
    let out = text(out);
    assert_eq!(answered_by, "backup", "{out}");
    assert!(
        out.starts_with("trying primary (shared-model)\ntrying backup (shared-model)\n"),
        "{out}"
    );
    assert!(
        out.contains("answered by backup: backup answers\n"),
        "{out}"
    );
}

#[tokio::test]
async fn custom_provider_answers_a_chat() {
    let mut out = Vec::new();
    custom_provider::run(None, &mut out).await.expect("runs");
    let out = text(out);
    assert_eq!(
        out,
        "token-stream (ts-small): You said: Hello, custom provider!\nfinish reason: Some(Stop)\n"
    );
}

#[tokio::test]
async fn tool_loop_calls_the_tool_then_answers() {
    let mut out = Vec::new();
    tool_loop::run(&mut out).await.expect("runs");
    let out = text(out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("tool call ")
            && lines[0].ends_with(r#": get_weather({"city":"Paris"})"#),
        "{out}"
    );
    assert_eq!(
        lines[1],
        r#"assistant: Here is what I found: {"city":"Paris","sky":"sunny","celsius":21}"#
    );
}
