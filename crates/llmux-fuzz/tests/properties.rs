//! Property tests run with the normal test suite: the gateway's request parsing and handling,
//! prompt templates and prompt shortening, and the round trips of the media and multipart
//! helpers. (The SSE / JSON-lines decoders, Gradio diffs and the devalue decoders have their own
//! property tests next to their code.) Every generated input is also fed to the matching fuzz
//! target, so the targets' invariants are checked on well-formed inputs too.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use llmux_core::prompt::{format_prompt_max_length, last_user_message};
use llmux_core::{Message, Role};
use llmux_fuzz::targets::{block_on, gateway, media, multipart, prompt};
use llmux_provider_huggingface_inference::template::Template;
use llmux_server::fuzzing::{parse_chat, parse_images};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Text with the characters parsers tend to trip on.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,24}",
        "\\PC{0,24}",
        "[\"\\\\\n\r\t\u{0}<>|:{}\\[\\]]{0,12}",
        Just("<|im_end|>".to_owned()),
        Just(" ".to_owned()),
    ]
}

fn role() -> impl Strategy<Value = (&'static str, Role)> {
    prop_oneof![
        Just(("system", Role::System)),
        Just(("developer", Role::System)),
        Just(("user", Role::User)),
        Just(("assistant", Role::Assistant)),
        Just(("tool", Role::Tool)),
        Just(("function", Role::Tool)),
    ]
}

/// A wire message and the text llmux should see in it.
fn wire_message() -> impl Strategy<Value = (Value, Role, String)> {
    let content = prop_oneof![
        text().prop_map(|t| (json!(t), t)),
        Just((Value::Null, String::new())),
        prop::collection::vec(
            prop_oneof![
                text().prop_map(|t| (json!({"type": "text", "text": t}), t)),
                Just((
                    json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}),
                    String::new()
                )),
            ],
            0..4,
        )
        .prop_map(|parts| {
            let text: String = parts.iter().map(|(_, t)| t.as_str()).collect();
            (Value::Array(parts.into_iter().map(|(p, _)| p).collect()), text)
        }),
    ];
    (role(), content).prop_map(|((wire, role), (content, text))| {
        (json!({"role": wire, "content": content}), role, text)
    })
}

/// Any JSON value (shallow), for bodies that are structurally wrong.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("messages".to_owned()),
                    Just("role".to_owned()),
                    Just("content".to_owned()),
                    Just("type".to_owned()),
                    Just("text".to_owned()),
                    Just("stop".to_owned()),
                    Just("seed".to_owned()),
                    Just("prompt".to_owned()),
                    Just("n".to_owned()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_messages() -> impl Strategy<Value = Vec<Message>> {
    prop::collection::vec(
        (role(), text()).prop_map(|((_, r), t)| Message::new(r, t)),
        0..9,
    )
}

fn templates() -> Vec<Template> {
    vec![
        Template::Generic,
        Template::Mistral,
        Template::ChatMl,
        Template::DeepSeek,
        Template::Llama3,
        Template::Custom("<eos>".into()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A valid chat body converts into exactly the messages and options it holds.
    #[test]
    fn chat_bodies_convert_faithfully(
        messages in prop::collection::vec(wire_message(), 1..6),
        stop in prop::option::of(prop_oneof![text().prop_map(|s| json!(s)), prop::collection::vec(text(), 0..3).prop_map(|v| json!(v))]),
        seed in prop::option::of(any::<i64>()),
        max_tokens in prop::option::of(any::<u32>()),
        stream in any::<bool>(),
    ) {
        let mut body = json!({
            "model": "echo-1",
            "messages": messages.iter().map(|(m, _, _)| m.clone()).collect::<Vec<_>>(),
            "stream": stream,
        });
        if let Some(s) = &stop { body["stop"] = s.clone(); }
        if let Some(s) = seed { body["seed"] = json!(s); }
        if let Some(n) = max_tokens { body["max_completion_tokens"] = json!(n); }
        let bytes = serde_json::to_vec(&body).expect("json");
        let req = parse_chat(&bytes, false).map_err(|e| String::from_utf8_lossy(&e).into_owned());
        let req = req.expect("a valid body parses");
        prop_assert_eq!(req.messages.len(), messages.len());
        for (m, (_, role, text)) in req.messages.iter().zip(&messages) {
            prop_assert_eq!(m.role, *role);
            prop_assert_eq!(&m.text(), text);
        }
        let want_stop: Vec<String> = match &stop {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(v) => serde_json::from_value(v.clone()).expect("strings"),
        };
        prop_assert_eq!(&req.stop, &want_stop);
        prop_assert_eq!(req.seed, seed);
        prop_assert_eq!(req.max_tokens, max_tokens);
        prop_assert_eq!(req.stream, stream);
        (gateway::GATEWAY_PARSE.run)(&bytes);
    }

    /// Wrong bodies never panic and always get an OpenAI-shaped error (or parse).
    #[test]
    fn any_json_body_is_handled(body in any_json(), cut in any::<prop::sample::Index>()) {
        let bytes = serde_json::to_vec(&body).expect("json");
        (gateway::GATEWAY_PARSE.run)(&bytes);
        // Truncated bodies are refused (as invalid JSON, or for a wrong type found first).
        let cut = cut.index(bytes.len());
        if cut > 0 {
            let e = parse_chat(&bytes[..cut], false).expect_err("truncated JSON is refused");
            let v: Value = serde_json::from_slice(&e).expect("error JSON");
            prop_assert!(v["error"]["message"].is_string());
        }
        let _ = parse_images(&bytes);
    }

    /// Through the whole handler, the echo provider answers with the last user message: the
    /// gateway preserves the text both ways, streamed or not.
    #[test]
    fn gateway_round_trips_text(user in "\\PC{1,40}", stream in any::<bool>(), with_key in any::<bool>()) {
        prop_assume!(!user.contains("boom"));
        let body = json!({"model": "echo-1", "stream": stream, "messages": [{"role": "user", "content": user}]});
        let mut req = Request::post("/v1/chat/completions").header("content-type", "application/json");
        if with_key {
            req = req.header("authorization", format!("Bearer {}", gateway::GATEWAY_KEY));
        }
        let req = req.body(Full::new(Bytes::from(serde_json::to_vec(&body).expect("json")))).expect("request");
        let handler = gateway::handler(with_key);
        let (status, _, resp) = block_on(handler.respond(req, Duration::from_secs(5)));
        let expected = last_user_message(&[Message::user(user.clone())]);
        prop_assert_eq!(status.as_u16(), 200, "{}", String::from_utf8_lossy(&resp));
        let text = if stream {
            let mut text = String::new();
            for line in String::from_utf8_lossy(&resp).lines() {
                let Some(data) = line.strip_prefix("data: ") else { continue };
                if data == "[DONE]" { continue; }
                let v: Value = serde_json::from_str(data).expect("chunk JSON");
                if let Some(d) = v.pointer("/choices/0/delta/content").and_then(Value::as_str) {
                    text.push_str(d);
                }
            }
            text
        } else {
            let v: Value = serde_json::from_slice(&resp).expect("completion JSON");
            v.pointer("/choices/0/message/content").and_then(Value::as_str).unwrap_or_default().to_owned()
        };
        prop_assert_eq!(text, expected);
    }

    /// Without the key, a keyed gateway refuses every route but `/health`.
    #[test]
    fn keyed_gateway_requires_the_key(path in prop_oneof![Just("/v1/models"), Just("/v1/providers"), Just("/models"), Just("/v1/providers/echo")], key in prop::option::of("[a-z]{1,8}")) {
        let mut req = Request::get(path);
        if let Some(k) = &key {
            req = req.header("x-api-key", k.as_str());
        }
        let req = req.body(Full::new(Bytes::new())).expect("request");
        let (status, _, _) = block_on(gateway::handler(true).respond(req, Duration::from_secs(5)));
        prop_assert_eq!(status.as_u16(), 401);
    }

    /// Every template: the `do_continue` prompt is a prefix of the full one, a message's text
    /// appears in the output, short prompts are not shortened, and `inputs` stays bounded.
    #[test]
    fn templates_render_consistently(messages in arb_messages()) {
        for t in templates() {
            let full = t.render(&messages, false);
            let cont = t.render(&messages, true);
            prop_assert!(full.starts_with(&cont), "{:?}: {:?} / {:?}", t, cont, full);
            if matches!(t, Template::ChatMl | Template::Llama3 | Template::DeepSeek | Template::Custom(_)) {
                for m in &messages {
                    prop_assert!(full.contains(&m.text()), "{:?} lost {:?}", t, m.text());
                }
            }
            let inputs = t.inputs(&messages, false);
            if full.chars().count() <= llmux_provider_huggingface_inference::template::MAX_INPUT_CHARS {
                prop_assert_eq!(&inputs, &full);
            }
        }
        let bytes = serde_json::to_vec(&messages).expect("json");
        (prompt::PROMPT.run)(&bytes);
    }

    /// Long conversations go through the shortening rule; the result stays proportional to the
    /// conversation (g4f's rule may even make it longer: Mistral pairs change, and a trailing
    /// user message is added even when empty).
    #[test]
    fn long_conversations_stay_bounded(messages in prop::collection::vec((role(), "[a-z ]{200,900}").prop_map(|((_, r), t)| Message::new(r, t)), 1..12)) {
        let chars: usize = messages.iter().map(|m| m.text().chars().count()).sum();
        for t in templates() {
            let inputs = t.inputs(&messages, false);
            prop_assert!(inputs.chars().count() <= 4 * chars + 64 * (messages.len() + 2), "{:?}", t);
        }
    }

    /// `format_prompt_max_length` fits the limit, or falls back to the last message's text.
    #[test]
    fn prompt_max_length(messages in arb_messages(), max in 0usize..400) {
        let p = format_prompt_max_length(&messages, max);
        let last = messages.last().map(Message::text).unwrap_or_default();
        prop_assert!(p.chars().count() <= max || p == last);
    }

    /// `Template::select` and `from_name` accept anything.
    #[test]
    fn template_selection_is_total(data in any_json(), name in "\\PC{0,20}") {
        let _ = Template::select(&data);
        let _ = Template::select(&json!({"config": {"model_type": name, "tokenizer_config": {"eos_token": data}}}));
        if let Some(rest) = name.strip_prefix("custom:").filter(|r| !r.is_empty()) {
            prop_assert_eq!(Template::from_name(&name), Some(Template::Custom(rest.to_owned())));
        }
    }

    /// Data URIs of any bytes and MIME type round-trip (and the data-uri target accepts them).
    #[test]
    fn data_uris_round_trip(data in prop::collection::vec(any::<u8>(), 0..200), ty in "[a-z]{1,8}", sub in "[a-z0-9.+-]{1,12}") {
        let mime = format!("{ty}/{sub}");
        let uri = llmux_core::media::to_data_uri(&mime, &data);
        let parsed = llmux_core::media::parse_data_uri(&uri).expect("parses");
        prop_assert_eq!(parsed.mime.as_deref(), Some(mime.as_str()));
        prop_assert_eq!(&parsed.data[..], &data[..]);
        (media::DATA_URI.run)(uri.as_bytes());
    }

    /// Multipart bodies built by the core parse back (the multipart target's round trip, on
    /// structured fields).
    #[test]
    fn multipart_round_trips(parts in prop::collection::vec((text(), prop::option::of(text()), "[a-z/;= \r\n]{0,12}", prop::collection::vec(any::<u8>(), 0..64)), 0..6)) {
        let mut input = Vec::new();
        for (i, (name, file, ty, data)) in parts.iter().enumerate() {
            if i > 0 { input.push(0x1e); }
            input.extend_from_slice(name.replace(['\u{1e}', '\u{1f}'], "").as_bytes());
            if let Some(f) = file {
                input.push(0x1f);
                input.extend_from_slice(f.replace(['\u{1e}', '\u{1f}'], "").as_bytes());
                input.push(0x1f);
                input.extend_from_slice(ty.as_bytes());
                input.push(0x1f);
                input.extend(data.iter().copied().filter(|b| *b != 0x1e));
            }
        }
        (multipart::MULTIPART.run)(&input);
    }
}
