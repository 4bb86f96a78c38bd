//! Gradio queue messages and diffs.

use llmux_gradio::{
    QueueEvent, QueueState, ReplyText, apply_diff, chatbot_reply, is_diff, parse_data_line,
    parse_space_page, space_error,
};
use serde_json::Value;

use super::{depth, json_size};
use crate::Target;
use crate::engine::{bucket, fnv};

/// Deepest output a stream may build: serde_json parses at most 128 levels per message, and
/// diffs must not be able to stack messages on top of each other.
const MAX_OUTPUT_DEPTH: usize = 512;

/// `QueueState` over a `queue/data` stream, `apply_diff`, `chatbot_reply`, `ReplyText`.
pub const GRADIO: Target = Target {
    name: "gradio",
    about: "Gradio queue/data stream: QueueState (diffs applied across messages), apply_diff, chatbot_reply, ReplyText, space_error, parse_space_page",
    run: gradio,
    seeds: gradio_seeds,
    dictionary: &[
        b"data: ", b"\n\n", b"{\"msg\":\"process_generating\",\"output\":{\"data\":[[[\"append\",[1,\"content\"],\" x\"]]]}}",
        b"{\"msg\":\"process_completed\",\"output\":{\"data\":[[]]},\"success\":true}",
        b"{\"msg\":\"estimation\",\"rank\":0,\"queue_size\":1,\"rank_eta\":0.5}",
        b"{\"msg\":\"close_stream\"}", b"{\"msg\":\"heartbeat\"}", b"{\"msg\":\"unexpected_error\",\"message\":\"x\"}",
        b"[\"replace\",[],", b"[\"append\",[0],", b"[\"add\",[0],", b"[\"delete\",[0]]", b"[0,0,0,0,0,0,0,0]",
        b"\"content\"", b"{\"role\":\"assistant\",\"content\":\"a\"}", b"[[", b"]]", b"Try again in 0:01:19",
        b"GPU quota exceeded", b"&quot;token&quot;:&quot;", b"&quot;sessionUuid&quot;:&quot;",
    ],
};

fn gradio_seeds() -> Vec<Vec<u8>> {
    let deep = {
        // Each message replaces the innermost value with a nested one, through a long path.
        let mut s = String::from(
            "data: {\"msg\":\"process_generating\",\"output\":{\"data\":[[[[[[[[0]]]]]]]]}}\n\n",
        );
        for i in 1..6 {
            let path = vec!["0"; 6 * i].join(",");
            s.push_str(&format!(
                "data: {{\"msg\":\"process_generating\",\"output\":{{\"data\":[[[\"replace\",[{path}],[[[[[[0]]]]]]]]]}}}}\n\n"
            ));
        }
        s
    };
    vec![
        deep.into_bytes(),
        b"data: {\"msg\":\"process_completed\",\"output\":{\"error\":\"You have exceeded your GPU quota (60s requested vs. 41s left). Try again in 0:01:19.\"},\"success\":false}\n\n".to_vec(),
        b"<div data-props=\"{&quot;zeroGpu&quot;:{&quot;token&quot;:&quot;eyJ.FAKE&quot;,&quot;sessionUuid&quot;:&quot;6c0f&quot;}}\"></div>".to_vec(),
    ]
}

fn gradio(data: &[u8]) -> u64 {
    let mut queue = QueueState::new("p");
    let mut reply = ReplyText::default();
    let mut streamed = String::new();
    let mut first: Option<Value> = None;
    let mut kinds = Vec::new();
    let mut errors = 0u64;
    for line in data.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(message) = parse_data_line(line) else {
            continue;
        };
        // Every message is also a diff candidate against the first value seen.
        let _ = is_diff(&message);
        match &mut first {
            None => first = Some(message.clone()),
            Some(target) => {
                if apply_diff(target, &message).is_ok() {
                    assert!(
                        depth(target) <= MAX_OUTPUT_DEPTH,
                        "diffs nest without bound"
                    );
                    assert!(
                        json_size(target) <= 8 * data.len() + 64,
                        "diffs grow without bound"
                    );
                }
            }
        }
        if queue.is_completed() || queue.is_closed() {
            continue;
        }
        match queue.handle(&message) {
            Ok(Some(event)) => {
                kinds.push(match &event {
                    QueueEvent::Queued { .. } => 1,
                    QueueEvent::Started => 2,
                    QueueEvent::Generating(_) => 3,
                    QueueEvent::Completed(_) => 4,
                });
                if let QueueEvent::Generating(out) | QueueEvent::Completed(out) = &event {
                    let total: usize = out.iter().map(json_size).sum();
                    let deepest = out.iter().map(depth).max().unwrap_or(0);
                    assert!(
                        deepest <= MAX_OUTPUT_DEPTH,
                        "outputs nest {deepest} levels deep"
                    );
                    assert!(total <= 8 * data.len() + 64, "outputs of {total} bytes");
                    if let Some(delta) = out
                        .first()
                        .and_then(chatbot_reply)
                        .and_then(|t| reply.update(t))
                    {
                        streamed.push_str(&delta);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                errors += 1;
                let _ = e.retry_after();
                assert!(
                    e.to_string().len() <= 2048,
                    "error message of {} bytes",
                    e.to_string().len()
                );
            }
        }
    }
    assert_eq!(streamed, reply.sent());
    assert!(streamed.len() <= data.len());
    let _ = queue.finish();
    let text = String::from_utf8_lossy(data);
    let (token, uuid) = parse_space_page(&text);
    assert!(token.is_none_or(|t| t.len() <= text.len() && !t.contains('&')));
    assert!(uuid.is_none_or(|u| u.len() <= text.len()));
    let e = space_error("p", Some(&text));
    let _ = e.retry_after();
    kinds.truncate(16);
    fnv(&[
        fnv(&kinds),
        bucket(errors as usize),
        u64::from(queue.is_completed()),
        bucket(streamed.len()),
    ])
}
