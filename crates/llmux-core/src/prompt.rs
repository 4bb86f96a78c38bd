//! Prompt helpers with g4f's exact semantics (`g4f/providers/helper.py`).
//!
//! Lengths are counted like Python's `len` (Unicode code points), and Python's `str.strip()` is
//! mirrored by [`str::trim`].

use crate::request::{Content, Message, Role};

/// Flattens message content to text (g4f `to_string`): same as [`Content::text`].
pub fn to_text(content: &Content) -> String {
    content.text()
}

/// The role as g4f renders it in prompts (`role.capitalize()`): `User`, `Assistant`, `System`, `Tool`.
fn role_label(role: Role) -> &'static str {
    match role {
        Role::System => "System",
        Role::User => "User",
        Role::Assistant => "Assistant",
        Role::Tool => "Tool",
    }
}

/// g4f `format_prompt`: renders the conversation as `"<Role>: <text>"` lines plus `"\nAssistant:"`.
///
/// * Without special tokens and with exactly one message, returns that message's text unchanged.
/// * Otherwise messages whose text is blank are skipped, system messages are dropped when
///   `include_system` is false, and `"\nAssistant:"` is appended unless `do_continue`.
///
/// Deviation: g4f fails on an empty list (it indexes `messages[0]`); here an empty list yields `""`
/// when `add_special_tokens` is false.
pub fn format_prompt(
    messages: &[Message],
    add_special_tokens: bool,
    do_continue: bool,
    include_system: bool,
) -> String {
    if !add_special_tokens && messages.len() <= 1 {
        return messages.first().map(Message::text).unwrap_or_default();
    }
    let lines: Vec<String> = messages
        .iter()
        .filter(|m| include_system || m.role != Role::System)
        .filter_map(|m| {
            let text = m.text();
            if text.trim().is_empty() {
                None
            } else {
                Some(format!("{}: {}", role_label(m.role), text))
            }
        })
        .collect();
    let formatted = lines.join("\n");
    if do_continue {
        formatted
    } else {
        format!("{formatted}\nAssistant:")
    }
}

/// g4f `get_last_user_message`: the trimmed, non-empty texts of the trailing run of user messages,
/// in chronological order, joined with `"\n"`. `""` when the last message is not from the user.
pub fn last_user_message(messages: &[Message]) -> String {
    let mut texts: Vec<String> = messages
        .iter()
        .rev()
        .take_while(|m| m.role == Role::User)
        .map(|m| m.text().trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    texts.reverse();
    texts.join("\n")
}

/// g4f `format_image_prompt`: `prompt` when given, else [`last_user_message`].
pub fn image_prompt(messages: &[Message], prompt: Option<&str>) -> String {
    match prompt {
        Some(p) => p.to_owned(),
        None => last_user_message(messages),
    }
}

/// g4f `get_system_prompt`: the texts of all system messages joined with `"\n"`.
pub fn system_prompt(messages: &[Message]) -> String {
    messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(Message::text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// g4f `format_prompt_max_length`: [`format_prompt`] (default flags), shortened when longer than
/// `max_len` characters: first 3 + last 3 messages (when more than 6), then system messages + the
/// last message (when more than 2), then the raw text of the last message.
///
/// The last step may still exceed `max_len` (as in g4f). An empty list yields `""`.
pub fn format_prompt_max_length(messages: &[Message], max_len: usize) -> String {
    let too_long = |p: &str| p.chars().count() > max_len;
    let mut prompt = format_prompt(messages, false, false, true);
    if !too_long(&prompt) {
        return prompt;
    }
    let n = messages.len();
    if n > 6 {
        let mut subset: Vec<Message> = messages.iter().take(3).cloned().collect();
        subset.extend(messages.iter().skip(n - 3).cloned());
        prompt = format_prompt(&subset, false, false, true);
    }
    if too_long(&prompt) {
        if n > 2 {
            let mut subset: Vec<Message> = messages
                .iter()
                .filter(|m| m.role == Role::System)
                .cloned()
                .collect();
            subset.extend(messages.last().cloned());
            prompt = format_prompt(&subset, false, false, true);
        }
        if too_long(&prompt) {
            prompt = messages.last().map(Message::text).unwrap_or_default();
        }
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{ContentPart, ImageUrl};

    fn sys(t: &str) -> Message {
        Message::system(t)
    }
    fn user(t: &str) -> Message {
        Message::user(t)
    }
    fn asst(t: &str) -> Message {
        Message::assistant(t)
    }

    #[test]
    fn core_md_example() {
        let msgs = [sys("Be brief."), user("Hi")];
        assert_eq!(
            format_prompt(&msgs, false, false, true),
            "System: Be brief.\nUser: Hi\nAssistant:"
        );
        assert_eq!(
            format_prompt(&msgs, false, true, true),
            "System: Be brief.\nUser: Hi"
        );
        assert_eq!(
            format_prompt(&msgs, false, false, false),
            "User: Hi\nAssistant:"
        );
    }

    #[test]
    fn single_message_and_empty() {
        assert_eq!(
            format_prompt(&[user("  Hello ")], false, false, true),
            "  Hello "
        );
        // A single system message is returned as-is even when include_system is false (as g4f).
        assert_eq!(format_prompt(&[sys("S")], false, false, false), "S");
        assert_eq!(
            format_prompt(&[user("Hi")], true, false, true),
            "User: Hi\nAssistant:"
        );
        assert_eq!(format_prompt(&[], false, false, true), "");
        assert_eq!(format_prompt(&[], true, false, true), "\nAssistant:");
        assert_eq!(format_prompt(&[], true, true, true), "");
    }

    #[test]
    fn blank_messages_skipped_and_roles() {
        let msgs = [
            user("a"),
            asst("  \n"),
            Message::new(Role::Tool, "t"),
            asst("b"),
        ];
        assert_eq!(
            format_prompt(&msgs, false, false, true),
            "User: a\nTool: t\nAssistant: b\nAssistant:"
        );
        let parts = Content::Parts(vec![
            ContentPart::Text { text: "x".into() },
            ContentPart::ImageUrl {
                image_url: ImageUrl::new("data:image/png;base64,AA=="),
            },
            ContentPart::Text { text: "y".into() },
        ]);
        assert_eq!(to_text(&parts), "xy");
        assert_eq!(
            format_prompt(&[Message::user(parts), asst("z")], false, true, true),
            "User: xy\nAssistant: z"
        );
    }

    #[test]
    fn last_user() {
        let msgs = [
            user("old"),
            asst("ok"),
            user(" one "),
            user("   "),
            user("two\n"),
        ];
        assert_eq!(last_user_message(&msgs), "one\ntwo");
        assert_eq!(last_user_message(&[user("q"), asst("a")]), "");
        assert_eq!(last_user_message(&[]), "");
        assert_eq!(image_prompt(&msgs, None), "one\ntwo");
        assert_eq!(image_prompt(&msgs, Some("a cat")), "a cat");
        assert_eq!(image_prompt(&msgs, Some("")), "");
    }

    #[test]
    fn system() {
        let msgs = [sys("a"), user("x"), sys("b")];
        assert_eq!(system_prompt(&msgs), "a\nb");
        assert_eq!(system_prompt(&[user("x")]), "");
    }

    #[test]
    fn max_length() {
        let msgs: Vec<Message> = (0..8)
            .map(|i| {
                if i % 2 == 0 {
                    user(&format!("u{i}"))
                } else {
                    asst(&format!("a{i}"))
                }
            })
            .collect();
        let full = format_prompt(&msgs, false, false, true);
        assert_eq!(format_prompt_max_length(&msgs, 1000), full);
        // First 3 + last 3.
        let six =
            "User: u0\nAssistant: a1\nUser: u2\nAssistant: a5\nUser: u6\nAssistant: a7\nAssistant:";
        assert_eq!(format_prompt_max_length(&msgs, six.chars().count()), six);
        // System + last.
        let mut with_sys = vec![sys("S")];
        with_sys.extend(msgs.iter().cloned());
        assert_eq!(
            format_prompt_max_length(&with_sys, 34),
            "System: S\nAssistant: a7\nAssistant:"
        );
        // Raw last message.
        assert_eq!(format_prompt_max_length(&with_sys, 5), "a7");
        assert_eq!(format_prompt_max_length(&[], 0), "");
        // Characters, not bytes.
        let uni = [user("ééé")];
        assert_eq!(format_prompt_max_length(&uni, 3), "ééé");
    }
}
