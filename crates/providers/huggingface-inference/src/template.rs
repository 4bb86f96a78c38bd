//! Per-model chat templates: how g4f turns a conversation into the raw `inputs` prompt of a
//! text-generation model (`get_inputs` in `HuggingFaceInference.py`), and the 4096-character
//! truncation rule.
//!
//! The template is chosen from the model's Hub data ([`Template::select`]): its `config.model_type`,
//! its `author` and its `config.tokenizer_config.eos_token`. Message contents are flattened to
//! text (image and audio parts are dropped; vision models receive text only).
//!
//! ```
//! use llmux_core::Message;
//! use llmux_provider_huggingface_inference::template::Template;
//!
//! let data = serde_json::json!({"config": {"model_type": "qwen2",
//!     "tokenizer_config": {"eos_token": "<|im_end|>"}}});
//! let t = Template::select(&data);
//! assert_eq!(t, Template::ChatMl);
//! assert_eq!(
//!     t.render(&[Message::user("Hi")], false),
//!     "<|im_start|>user\nHi\n<|im_end|>\n<|im_start|>assistant\n"
//! );
//! ```

use llmux_core::prompt::{format_prompt, last_user_message};
use llmux_core::{Message, Role};
use serde_json::Value;

/// Longest `inputs` (in characters) sent before the conversation is shortened once.
pub const MAX_INPUT_CHARS: usize = 4096;

/// DeepSeek's end-of-sentence token (fullwidth `｜` U+FF5C, `▁` U+2581).
pub const DEEPSEEK_EOS: &str = "<\u{FF5C}end\u{2581}of\u{2581}sentence\u{FF5C}>";

/// A chat template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// g4f's `format_prompt`: `Role: content` lines and a final `Assistant:`.
    Generic,
    /// Mistral's `<s>[INST] … [/INST]` format (model type `mistral` by `mistralai`).
    Mistral,
    /// `<|role|>\ncontent<end token>\n` blocks (end token `<|endoftext|>`, `<eos>` or `</s>`).
    Custom(String),
    /// ChatML (`<|im_start|>role\ncontent\n<|im_end|>\n`), end token `<|im_end|>`.
    ChatMl,
    /// DeepSeek style (`<｜User｜>content<｜end▁of▁sentence｜>`).
    DeepSeek,
    /// Llama 3 (`<|start_header_id|>role<|end_header_id|>\n\ncontent\n<|eot_id|>\n`).
    Llama3,
}

impl Template {
    /// g4f's selection from a model's Hub data (`GET /api/models/<id>`), first match wins:
    /// model type `gpt2`/`gpt_neo`/`gemma`/`gemma2` → generic; `mistral` by author `mistralai` →
    /// mistral; else by `config.tokenizer_config.eos_token`; else generic.
    pub fn select(model_data: &Value) -> Template {
        let config = model_data.get("config");
        let model_type = config
            .and_then(|c| c.get("model_type"))
            .and_then(Value::as_str);
        if matches!(model_type, Some("gpt2" | "gpt_neo" | "gemma" | "gemma2")) {
            return Template::Generic;
        }
        if model_type == Some("mistral")
            && model_data.get("author").and_then(Value::as_str) == Some("mistralai")
        {
            return Template::Mistral;
        }
        let eos = config
            .and_then(|c| c.get("tokenizer_config"))
            .and_then(|t| t.get("eos_token"));
        match eos {
            Some(Value::String(s)) => match s.as_str() {
                "<|endoftext|>" | "<eos>" | "</s>" => Template::Custom(s.clone()),
                "<|im_end|>" => Template::ChatMl,
                "<|eot_id|>" => Template::Llama3,
                _ => Template::Generic,
            },
            Some(Value::Object(o))
                if o.get("content").and_then(Value::as_str) == Some(DEEPSEEK_EOS) =>
            {
                Template::DeepSeek
            }
            _ => Template::Generic,
        }
    }

    /// Parses a template name (the `template` option): `generic`, `mistral`, `chatml` (or
    /// `qwen`), `deepseek` (or `qwen2`), `llama3`, or `custom:<end token>`.
    pub fn from_name(name: &str) -> Option<Template> {
        Some(match name {
            "generic" => Template::Generic,
            "mistral" => Template::Mistral,
            "chatml" | "qwen" => Template::ChatMl,
            "deepseek" | "qwen2" => Template::DeepSeek,
            "llama3" | "llama" => Template::Llama3,
            _ => {
                let end = name.strip_prefix("custom:")?;
                if end.is_empty() {
                    return None;
                }
                Template::Custom(end.to_owned())
            }
        })
    }

    /// Renders `messages` with this template. With `do_continue` the prompt ends with the last
    /// message's text (no end token, no assistant header), so the model continues it.
    pub fn render(&self, messages: &[Message], do_continue: bool) -> String {
        match self {
            Template::Generic => format_prompt(messages, false, do_continue, true),
            Template::Mistral => mistral(messages, do_continue),
            Template::Custom(end) => {
                let mut s = String::new();
                for m in messages {
                    s.push_str(&format!("<|{}|>\n{}{end}\n", m.role.as_str(), m.text()));
                }
                finish(s, do_continue, "<|assistant|>\n", end.chars().count() + 1)
            }
            Template::ChatMl => {
                let mut s = String::new();
                for m in messages {
                    s.push_str(&format!(
                        "<|im_start|>{}\n{}\n<|im_end|>\n",
                        m.role.as_str(),
                        m.text()
                    ));
                }
                finish(s, do_continue, "<|im_start|>assistant\n", 12)
            }
            Template::DeepSeek => {
                let mut s = String::new();
                for m in messages {
                    s.push_str(&format!(
                        "<\u{FF5C}{}\u{FF5C}>{}{DEEPSEEK_EOS}",
                        capitalized(m.role),
                        m.text()
                    ));
                }
                // g4f removes 13 characters here, cutting into the end token; the whole token
                // (19 characters) is removed instead.
                finish(
                    s,
                    do_continue,
                    "<\u{FF5C}Assistant\u{FF5C}>",
                    DEEPSEEK_EOS.chars().count(),
                )
            }
            Template::Llama3 => {
                let mut s = String::from("<|begin_of_text|>");
                for m in messages {
                    s.push_str(&format!(
                        "<|start_header_id|>{}<|end_header_id|>\n\n{}\n<|eot_id|>\n",
                        m.role.as_str(),
                        m.text()
                    ));
                }
                finish(
                    s,
                    do_continue,
                    "<|start_header_id|>assistant<|end_header_id|>\n\n",
                    12,
                )
            }
        }
    }

    /// [`Template::render`] plus g4f's truncation rule: when the result is longer than
    /// [`MAX_INPUT_CHARS`] characters, the conversation is shortened once (more than 6 messages:
    /// the first three and the last three; otherwise the system messages followed by one user
    /// message holding the trailing user text) and rendered again. The result may still be
    /// longer.
    pub fn inputs(&self, messages: &[Message], do_continue: bool) -> String {
        let inputs = self.render(messages, do_continue);
        if inputs.chars().count() <= MAX_INPUT_CHARS {
            return inputs;
        }
        let n = messages.len();
        let shortened: Vec<Message> = if n > 6 {
            messages
                .iter()
                .take(3)
                .chain(messages.iter().skip(n - 3))
                .cloned()
                .collect()
        } else {
            messages
                .iter()
                .filter(|m| m.role == Role::System)
                .cloned()
                .chain(std::iter::once(Message::user(last_user_message(messages))))
                .collect()
        };
        self.render(&shortened, do_continue)
    }
}

/// Appends `suffix`, or with `do_continue` removes the last `cut` characters instead.
fn finish(mut s: String, do_continue: bool, suffix: &str, cut: usize) -> String {
    if do_continue {
        let keep = s.chars().count().saturating_sub(cut);
        let end = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
        s.truncate(end);
    } else {
        s.push_str(suffix);
    }
    s
}

/// `role.capitalize()` as g4f renders roles in the DeepSeek template.
fn capitalized(role: Role) -> &'static str {
    match role {
        Role::System => "System",
        Role::User => "User",
        Role::Assistant => "Assistant",
        Role::Tool => "Tool",
    }
}

/// g4f's `format_prompt_mistral`.
fn mistral(messages: &[Message], do_continue: bool) -> String {
    let history: Vec<String> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::Assistant)
        .map(|(i, m)| {
            // g4f takes messages[i - 1], which wraps around to the last message for i = 0; an
            // assistant message without a predecessor gets an empty instruction instead.
            let question = i
                .checked_sub(1)
                .and_then(|p| messages.get(p))
                .map(Message::text)
                .unwrap_or_default();
            format!("<s>[INST]{question} [/INST] {}</s>", m.text())
        })
        .collect();
    let history = history.join("\n");
    if do_continue {
        return finish(history, true, "", 4);
    }
    let mut question: Vec<String> = messages.last().map(Message::text).into_iter().collect();
    question.extend(
        messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(Message::text),
    );
    format!("{history}\n<s>[INST] {} [/INST]", question.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conversation() -> Vec<Message> {
        vec![
            Message::system("Be brief."),
            Message::user("Hi"),
            Message::assistant("Hello!"),
            Message::user("2+2?"),
        ]
    }

    fn poem() -> Vec<Message> {
        vec![
            Message::user("Write a poem"),
            Message::assistant("Roses are red"),
        ]
    }

    fn custom(end: &str) -> Template {
        Template::Custom(end.to_owned())
    }

    #[test]
    fn golden_worked_examples() {
        let m = conversation();
        assert_eq!(
            Template::Mistral.render(&m, false),
            "<s>[INST]Hi [/INST] Hello!</s>\n<s>[INST] 2+2? Be brief. [/INST]"
        );
        assert_eq!(
            Template::ChatMl.render(&m, false),
            "<|im_start|>system\nBe brief.\n<|im_end|>\n<|im_start|>user\nHi\n<|im_end|>\n<|im_start|>assistant\nHello!\n<|im_end|>\n<|im_start|>user\n2+2?\n<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            Template::DeepSeek.render(&m, false),
            "<｜System｜>Be brief.<｜end▁of▁sentence｜><｜User｜>Hi<｜end▁of▁sentence｜><｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>2+2?<｜end▁of▁sentence｜><｜Assistant｜>"
        );
        assert_eq!(
            Template::Llama3.render(&m, false),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.\n<|eot_id|>\n<|start_header_id|>user<|end_header_id|>\n\nHi\n<|eot_id|>\n<|start_header_id|>assistant<|end_header_id|>\n\nHello!\n<|eot_id|>\n<|start_header_id|>user<|end_header_id|>\n\n2+2?\n<|eot_id|>\n<|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        assert_eq!(
            custom("</s>").render(&m, false),
            "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|user|>\n2+2?</s>\n<|assistant|>\n"
        );
        assert_eq!(
            custom("<|endoftext|>").render(&m, false),
            "<|system|>\nBe brief.<|endoftext|>\n<|user|>\nHi<|endoftext|>\n<|assistant|>\nHello!<|endoftext|>\n<|user|>\n2+2?<|endoftext|>\n<|assistant|>\n"
        );
        assert_eq!(
            custom("<eos>").render(&m, false),
            "<|system|>\nBe brief.<eos>\n<|user|>\nHi<eos>\n<|assistant|>\nHello!<eos>\n<|user|>\n2+2?<eos>\n<|assistant|>\n"
        );
        assert_eq!(
            Template::Generic.render(&m, false),
            "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: 2+2?\nAssistant:"
        );
    }

    #[test]
    fn golden_single_message() {
        let m = [Message::user("Hi")];
        assert_eq!(
            Template::Mistral.render(&m, false),
            "\n<s>[INST] Hi [/INST]"
        );
        assert_eq!(
            Template::ChatMl.render(&m, false),
            "<|im_start|>user\nHi\n<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            Template::Llama3.render(&m, false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi\n<|eot_id|>\n<|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        assert_eq!(
            Template::DeepSeek.render(&m, false),
            "<｜User｜>Hi<｜end▁of▁sentence｜><｜Assistant｜>"
        );
        assert_eq!(
            custom("</s>").render(&m, false),
            "<|user|>\nHi</s>\n<|assistant|>\n"
        );
        assert_eq!(Template::Generic.render(&m, false), "Hi");
    }

    #[test]
    fn golden_continue_mode() {
        let m = poem();
        assert_eq!(
            Template::Mistral.render(&m, true),
            "<s>[INST]Write a poem [/INST] Roses are red"
        );
        assert_eq!(
            Template::ChatMl.render(&m, true),
            "<|im_start|>user\nWrite a poem\n<|im_end|>\n<|im_start|>assistant\nRoses are red"
        );
        // g4f leaves "<｜end▁" behind here (it cuts 13 characters); llmux removes the end token.
        assert_eq!(
            Template::DeepSeek.render(&m, true),
            "<｜User｜>Write a poem<｜end▁of▁sentence｜><｜Assistant｜>Roses are red"
        );
        assert_eq!(
            Template::Llama3.render(&m, true),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWrite a poem\n<|eot_id|>\n<|start_header_id|>assistant<|end_header_id|>\n\nRoses are red"
        );
        assert_eq!(
            custom("</s>").render(&m, true),
            "<|user|>\nWrite a poem</s>\n<|assistant|>\nRoses are red"
        );
        assert_eq!(
            custom("<|endoftext|>").render(&m, true),
            "<|user|>\nWrite a poem<|endoftext|>\n<|assistant|>\nRoses are red"
        );
        assert_eq!(
            Template::Generic.render(&m, true),
            "User: Write a poem\nAssistant: Roses are red"
        );
    }

    #[test]
    fn mistral_edge_cases() {
        // An assistant message first has no instruction (g4f would wrap around to the last one).
        let m = [Message::assistant("Hey"), Message::user("Yo")];
        assert_eq!(
            Template::Mistral.render(&m, false),
            "<s>[INST] [/INST] Hey</s>\n<s>[INST] Yo [/INST]"
        );
        // Several system messages follow the question; history entries are joined by "\n".
        let m = [
            Message::system("S1"),
            Message::user("a"),
            Message::assistant("b"),
            Message::user("c"),
            Message::assistant("d"),
            Message::system("S2"),
            Message::user("e"),
        ];
        assert_eq!(
            Template::Mistral.render(&m, false),
            "<s>[INST]a [/INST] b</s>\n<s>[INST]c [/INST] d</s>\n<s>[INST] e S1 S2 [/INST]"
        );
        assert_eq!(Template::Mistral.render(&[], true), "");
        assert_eq!(Template::ChatMl.render(&[], true), "");
    }

    #[test]
    fn parts_are_flattened_to_text() {
        let parts = llmux_core::Content::Parts(vec![
            llmux_core::ContentPart::Text {
                text: "look ".into(),
            },
            llmux_core::ContentPart::ImageUrl {
                image_url: llmux_core::ImageUrl::new("data:image/png;base64,AA=="),
            },
            llmux_core::ContentPart::Text {
                text: "here".into(),
            },
        ]);
        let m = [Message::user(parts)];
        assert_eq!(
            Template::ChatMl.render(&m, false),
            "<|im_start|>user\nlook here\n<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn selection_follows_g4f() {
        let data = |model_type: Value, author: &str, eos: Option<Value>| {
            let mut config = json!({"model_type": model_type});
            if let Some(e) = eos {
                config["tokenizer_config"] = json!({"eos_token": e});
            }
            json!({"author": author, "config": config})
        };
        let ds = json!({"__type": "AddedToken", "content": DEEPSEEK_EOS, "lstrip": false});
        let cases = [
            (
                data(json!("gpt2"), "x", Some(json!("<|im_end|>"))),
                Template::Generic,
            ),
            (
                data(json!("gemma2"), "x", Some(json!("<eos>"))),
                Template::Generic,
            ),
            (data(json!("gpt_neo"), "x", None), Template::Generic),
            (
                data(json!("mistral"), "mistralai", Some(json!("</s>"))),
                Template::Mistral,
            ),
            (
                data(json!("mistral"), "someone", Some(json!("</s>"))),
                custom("</s>"),
            ),
            (
                data(json!("phi3"), "microsoft", Some(json!("<|endoftext|>"))),
                custom("<|endoftext|>"),
            ),
            (
                data(json!("gemma3"), "google", Some(json!("<eos>"))),
                custom("<eos>"),
            ),
            (
                data(json!("qwen2"), "Qwen", Some(json!("<|im_end|>"))),
                Template::ChatMl,
            ),
            (
                data(json!("qwen2"), "deepseek-ai", Some(ds)),
                Template::DeepSeek,
            ),
            (
                data(json!("llama"), "meta-llama", Some(json!("<|eot_id|>"))),
                Template::Llama3,
            ),
            (
                data(json!("phi3"), "x", Some(json!("<|end|>"))),
                Template::Generic,
            ),
            (
                data(json!("x"), "x", Some(json!({"content": "</s>"}))),
                Template::Generic,
            ),
            (data(json!("x"), "x", Some(Value::Null)), Template::Generic),
            (data(json!(null), "x", None), Template::Generic),
            (json!({}), Template::Generic),
        ];
        for (d, want) in cases {
            assert_eq!(Template::select(&d), want, "{d}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(Template::from_name("chatml"), Some(Template::ChatMl));
        assert_eq!(Template::from_name("qwen2"), Some(Template::DeepSeek));
        assert_eq!(Template::from_name("custom:</s>"), Some(custom("</s>")));
        assert_eq!(Template::from_name("custom:"), None);
        assert_eq!(Template::from_name("nope"), None);
    }

    #[test]
    fn truncation_rule() {
        let long = "x".repeat(5000);
        // Short conversations are kept as they are.
        let short = conversation();
        assert_eq!(
            Template::ChatMl.inputs(&short, false),
            Template::ChatMl.render(&short, false)
        );

        // At most 6 messages: system messages + one user message with the trailing user text.
        let m = vec![
            Message::system("S"),
            Message::user(long.as_str()),
            Message::assistant("A"),
            Message::user(" tail one "),
            Message::user("tail two"),
        ];
        assert_eq!(
            Template::ChatMl.inputs(&m, false),
            "<|im_start|>system\nS\n<|im_end|>\n<|im_start|>user\ntail one\ntail two\n<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            Template::Generic.inputs(&m, false),
            "System: S\nUser: tail one\ntail two\nAssistant:"
        );

        // More than 6: the first three and the last three messages.
        let m: Vec<Message> = (0..8)
            .map(|i| match i {
                4 => Message::assistant(long.as_str()),
                i if i % 2 == 0 => Message::user(format!("u{i}")),
                i => Message::assistant(format!("a{i}")),
            })
            .collect();
        assert_eq!(
            Template::Generic.inputs(&m, false),
            "User: u0\nAssistant: a1\nUser: u2\nAssistant: a5\nUser: u6\nAssistant: a7\nAssistant:"
        );

        // Rebuilt only once: the result may still be longer than the limit.
        let m = vec![Message::user(long.as_str())];
        assert_eq!(
            Template::Llama3.inputs(&m, false),
            Template::Llama3.render(&m, false)
        );
        assert_eq!(
            Template::Llama3.inputs(&m, false).chars().count(),
            5000 + 118
        );

        // Exactly at the limit (in characters, not bytes) is not shortened.
        let body = "é".repeat(4096 - 27);
        let m = vec![Message::system("S"), Message::user(body.as_str())];
        let exact = Template::Generic.render(&m, false);
        assert_eq!(exact.chars().count(), 4096);
        assert_eq!(Template::Generic.inputs(&m, false), exact);
        // One more character: shortened (the user text is trimmed by the rebuild).
        let m = vec![Message::system("S"), Message::user(format!(" {body}"))];
        assert_eq!(Template::Generic.inputs(&m, false), exact);
    }
}
