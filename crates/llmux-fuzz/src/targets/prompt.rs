//! Prompt formatting (core) and the per-model chat templates (Hugging Face inference).

use llmux_core::prompt::{
    format_prompt, format_prompt_max_length, image_prompt, last_user_message, system_prompt,
};
use llmux_core::{Message, Role};
use llmux_provider_huggingface_inference::template::{MAX_INPUT_CHARS, Template};
use serde_json::Value;

use crate::Target;
use crate::engine::{bucket, fnv};

/// Every template and prompt helper over arbitrary conversations.
pub const PROMPT: Target = Target {
    name: "prompt",
    about: "prompt helpers (format_prompt, max-length shortening, last user message) and every chat template's render/inputs (messages from JSON or a compact binary form)",
    run: prompt,
    seeds: prompt_seeds,
    dictionary: &[
        b"{\"role\":\"user\",\"content\":\"",
        b"{\"role\":\"assistant\",\"content\":\"",
        b"{\"role\":\"system\",\"content\":\"",
        b"\"}",
        b"[",
        b"]",
        b",",
        b"\x1e",
        b"\x00",
        b"\x01",
        b"\x02",
        b"\x03",
        b"<|im_end|>",
        b"</s>",
        b"\n",
        b"   ",
        b"\xef\xbd\x9c",
        b"\xe2\x96\x81",
        b"\xf0\x9f\x98\x80",
        b"{\"type\":\"text\",\"text\":\"",
        b"{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:,\"}}",
    ],
};

fn prompt_seeds() -> Vec<Vec<u8>> {
    vec![
        br#"[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"},{"role":"user","content":"2+2?"}]"#.to_vec(),
        br#"[{"role":"assistant","content":"first"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:,"}}]}]"#.to_vec(),
        b"\x00Be brief.\x1e\x01Hi\x1e\x02Hello!\x1e\x01\xf0\x9f\x98\x80 \x1e\x03tool".to_vec(),
    ]
}

/// Messages from the input: a JSON array of messages, or `\x1e`-separated records whose first
/// byte picks the role (mod 4) and whose rest is the text.
fn messages(data: &[u8]) -> Vec<Message> {
    if let Ok(m) = serde_json::from_slice::<Vec<Message>>(data) {
        return m;
    }
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|b| *b == 0x1e)
        .map(|rec| {
            let (role, text) = rec.split_first().unwrap_or((&0, &[]));
            let role = match role % 4 {
                0 => Role::System,
                1 => Role::User,
                2 => Role::Assistant,
                _ => Role::Tool,
            };
            Message::new(role, String::from_utf8_lossy(text).into_owned())
        })
        .collect()
}

fn templates(data: &[u8]) -> Vec<Template> {
    let mut out = vec![
        Template::Generic,
        Template::Mistral,
        Template::ChatMl,
        Template::DeepSeek,
        Template::Llama3,
        Template::Custom("</s>".into()),
    ];
    let text = String::from_utf8_lossy(data);
    if let Some(t) = Template::from_name(&text) {
        out.push(t);
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        out.push(Template::select(&v));
    }
    out
}

fn prompt(data: &[u8]) -> u64 {
    let msgs = messages(data);
    let chars: usize = msgs.iter().map(|m| m.text().chars().count()).sum();
    // Every template emits each message's text at most a few times plus a constant per message.
    let bound = 4 * chars + 64 * (msgs.len() + 2);
    let mut sig = vec![bucket(msgs.len())];
    for t in templates(data) {
        let full = t.render(&msgs, false);
        let cont = t.render(&msgs, true);
        assert!(
            full.chars().count() <= bound,
            "{t:?} rendered {} chars",
            full.chars().count()
        );
        assert!(
            full.starts_with(&cont),
            "{t:?}: the do_continue prompt is not a prefix of the full one"
        );
        let inputs = t.inputs(&msgs, false);
        assert!(inputs.chars().count() <= bound);
        if full.chars().count() <= MAX_INPUT_CHARS {
            assert_eq!(inputs, full, "{t:?}: a short prompt was shortened");
        }
        let _ = t.inputs(&msgs, true);
        sig.push(bucket(full.len()));
    }
    for (special, cont, system) in [
        (false, false, true),
        (true, false, false),
        (true, true, true),
    ] {
        let p = format_prompt(&msgs, special, cont, system);
        assert!(p.chars().count() <= bound);
    }
    let max = data.len() % 300;
    let short = format_prompt_max_length(&msgs, max);
    let last = msgs.last().map(Message::text).unwrap_or_default();
    assert!(
        short.chars().count() <= max || short == last,
        "format_prompt_max_length({max}) gave {} chars that are not the last message",
        short.chars().count()
    );
    let user = last_user_message(&msgs);
    assert!(user.len() <= msgs.iter().map(|m| m.text().len() + 1).sum::<usize>());
    assert_eq!(image_prompt(&msgs, None), user);
    let _ = system_prompt(&msgs);
    fnv(&sig)
}
