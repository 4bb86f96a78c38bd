//! Conversations: the handed-back state, creating a conversation and reading the id of its
//! latest message.

use std::collections::BTreeMap;

use llmux_core::{ChatRequest, Context, Conversation, Cookies, Error, Result, prompt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::discovery::Api;
use crate::{Inner, MAX_DOCUMENT, devalue, looks_like_html, origin_of, updates};

/// One model's chat-ui conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConversation {
    /// chat-ui conversation id (a 24-hex-digit ObjectId on HuggingChat).
    #[serde(rename = "conversationId")]
    pub conversation_id: String,
    /// Id of the latest message when the state was produced (refreshed every turn).
    #[serde(rename = "messageId", default)]
    pub message_id: String,
}

/// The provider's conversation state (g4f's `Conversation`): model id → its conversation.
///
/// Serialised as `{"models": {"<model>": {"conversationId": "…", "messageId": "…"}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationState {
    /// One conversation per model.
    #[serde(default)]
    pub models: BTreeMap<String, ModelConversation>,
}

impl ConversationState {
    /// Reads handed-back state; anything unreadable is an empty state (as in g4f).
    pub fn from_conversation(c: Option<&Conversation>) -> Self {
        c.and_then(|c| serde_json::from_value(c.0.clone()).ok())
            .unwrap_or_default()
    }

    /// The state as a chunk payload.
    pub fn to_conversation(&self) -> Conversation {
        Conversation(serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

impl Inner {
    /// This turn's conversation for `model`: the handed-back one while it exists upstream (with
    /// its refreshed message id; the text to send is the last user message), else a new one
    /// created with `create_with()` (the text is the whole history). Returns the state to hand
    /// back, the conversation and the text.
    pub(crate) async fn turn(
        &self,
        ctx: &Context,
        app: &str,
        jar: &Cookies,
        req: &ChatRequest,
        model: &str,
        create_with: impl FnOnce() -> String,
    ) -> Result<(ConversationState, ModelConversation, String)> {
        let name = self.name();
        let mut state = ConversationState::from_conversation(req.conversation.as_ref());
        let mut known_turn = None;
        if let Some(existing) = state.models.get(model).cloned() {
            match self
                .latest_message(ctx, app, jar, &existing.conversation_id)
                .await?
            {
                Some(message_id) => {
                    known_turn = Some(ModelConversation {
                        message_id,
                        ..existing
                    })
                }
                None => {
                    tracing::debug!(provider = %name, "conversation is gone upstream; starting a new one");
                }
            }
        }
        let (conv, inputs) = match known_turn {
            Some(conv) => (conv, prompt::last_user_message(&req.messages)),
            None => {
                let create_with = create_with();
                let conversation_id = self
                    .create_conversation(ctx, app, jar, &create_with)
                    .await?;
                let message_id = self
                    .latest_message(ctx, app, jar, &conversation_id)
                    .await?
                    .ok_or_else(|| Error::protocol(name, "cannot read the messages of the conversation just created (check the `api` option: v1 or v2)", &conversation_id))?;
                (
                    ModelConversation {
                        conversation_id,
                        message_id,
                    },
                    prompt::format_prompt(&req.messages, false, false, true),
                )
            }
        };
        state.models.insert(model.to_owned(), conv.clone());
        Ok((state, conv, inputs))
    }

    /// `POST /conversation` → conversation id.
    pub(crate) async fn create_conversation(
        &self,
        ctx: &Context,
        app: &str,
        jar: &Cookies,
        model: &str,
    ) -> Result<String> {
        let resp = ctx
            .http
            .post(format!("{app}/conversation"))
            .provider(self.name())
            .cookies(jar)
            .header("origin", &origin_of(app))
            .header("referer", app)
            .json(&json!({ "model": model }))
            .send()
            .await?;
        if resp.status().as_u16() == 400 {
            return Err(match self.status_error(resp).await {
                Error::HttpStatus {
                    provider,
                    status,
                    message,
                } => Error::HttpStatus {
                    provider,
                    status,
                    message: format!("{message}: Model: {model}"),
                },
                other => other,
            });
        }
        let text = self.checked(resp).await?.text().await?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        match parsed
            .as_ref()
            .and_then(|v| v.get("conversationId"))
            .and_then(Value::as_str)
        {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ if parsed.is_none() && looks_like_html(&text) => {
                Err(self.refused("creating a conversation answered with an HTML page"))
            }
            _ => Err(Error::protocol(
                self.name(),
                "create-conversation answer has no `conversationId`",
                &text,
            )),
        }
    }

    /// The id of the conversation's latest message; `None` when the conversation is gone.
    pub(crate) async fn latest_message(
        &self,
        ctx: &Context,
        app: &str,
        jar: &Cookies,
        conversation: &str,
    ) -> Result<Option<String>> {
        let cid = updates::path_segment(conversation);
        match self.api() {
            Api::V1 => {
                let url =
                    format!("{app}/conversation/{cid}/__data.json?x-sveltekit-invalidated=11");
                let resp = ctx
                    .http
                    .get(url)
                    .provider(self.name())
                    .cookies(jar)
                    .max_body(MAX_DOCUMENT)
                    .send()
                    .await?;
                if resp.status().as_u16() == 404 {
                    return Ok(None);
                }
                let text = self.checked(resp).await?.text().await?;
                self.message_id_from_data(&text)
            }
            Api::V2 => {
                let resp = ctx
                    .http
                    .get(format!("{app}/api/v2/conversations/{cid}"))
                    .provider(self.name())
                    .cookies(jar)
                    .max_body(MAX_DOCUMENT)
                    .send()
                    .await?;
                if resp.status().as_u16() == 404 {
                    return Ok(None);
                }
                let v: Value = self.checked(resp).await?.json().await?;
                let id = v
                    .get("json")
                    .unwrap_or(&v)
                    .get("messages")
                    .and_then(Value::as_array)
                    .and_then(|m| m.last())
                    .and_then(|m| m.get("id"))
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| {
                        Error::protocol(
                            self.name(),
                            "conversation has no message with an `id`",
                            &v.to_string(),
                        )
                    })?;
                Ok(Some(id.to_owned()))
            }
        }
    }

    /// Reads the latest message id out of a `__data.json` body (SvelteKit's data stream).
    pub(crate) fn message_id_from_data(&self, body: &str) -> Result<Option<String>> {
        let doc = body
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .find(|v| {
                v.get("nodes").is_some()
                    || v.get("type").and_then(Value::as_str) == Some("redirect")
            })
            .ok_or_else(|| {
                Error::protocol(self.name(), "no SvelteKit data in __data.json", body)
            })?;
        if doc.get("type").and_then(Value::as_str) == Some("redirect") {
            let location = doc
                .get("location")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if location.contains("login") {
                return Err(self.refused("the conversation page redirects to the login page"));
            }
            return Err(Error::protocol(
                self.name(),
                "__data.json redirects",
                location,
            ));
        }
        let nodes = doc.get("nodes").and_then(Value::as_array).ok_or_else(|| {
            Error::protocol(self.name(), "`nodes` of __data.json is not a list", body)
        })?;
        if let Some(last) = nodes
            .last()
            .filter(|n| n.get("type").and_then(Value::as_str) == Some("error"))
        {
            let status = last.get("status").and_then(Value::as_u64).unwrap_or(500);
            let message = last
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| last.to_string());
            let message = llmux_core::error::snippet(&message, 300);
            return match status {
                401 | 403 => Err(self.refused(&message)),
                404 => Ok(None),
                s @ 400..=599 => Err(Error::HttpStatus {
                    provider: self.name().to_owned(),
                    status: s as u16,
                    message,
                }),
                _ => Err(Error::Upstream {
                    provider: self.name().to_owned(),
                    message,
                }),
            };
        }
        let mut last_err = String::from("no page data with `messages`");
        for node in nodes.iter().rev() {
            let Some(data) = node.get("data").filter(|d| d.is_array()) else {
                continue;
            };
            match last_message_id(data) {
                Ok(id) => return Ok(Some(id)),
                Err(e) => last_err = e.to_string(),
            }
        }
        Err(Error::protocol(
            self.name(),
            format!("failed to extract the message id from __data.json: {last_err}"),
            body,
        ))
    }
}

/// g4f's walk: `D[0].messages` → list of indices → last message object → its `id`.
pub(crate) fn last_message_id(data: &Value) -> devalue::Result<String> {
    let flat = devalue::Flat::new(data)?;
    let messages = flat.array(flat.field(0, "messages")?)?;
    let last = messages
        .last()
        .ok_or_else(|| devalue::DevalueError::new("the conversation has no messages"))?;
    let msg = devalue::Flat::index(last)?;
    match flat.hydrate(flat.field(msg, "id")?)? {
        Value::String(s) if !s.is_empty() => Ok(s),
        other => Err(devalue::DevalueError::new(format!(
            "message id is not a string: {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HuggingChat, NAME};
    use llmux_core::ProviderConfig;

    #[test]
    fn data_json_walk() {
        let p = HuggingChat::new(ProviderConfig::named(NAME));
        let body = r#"{"type":"data","nodes":[{"type":"data","data":[{"settings":1},{}],"uses":{}},{"type":"data","data":[{"messages":1,"title":5,"model":6,"preprompt":7,"rootMessageId":3,"shared":8},[2],{"id":3,"from":4,"content":7},"0b7e3f2a-5c1d-4e6f-8a9b-0c1d2e3f4a5b","system","New Chat","Qwen/Qwen2.5-72B-Instruct","",false],"uses":{"params":["id"]}}]}"#;
        assert_eq!(
            p.inner.message_id_from_data(body).expect("id").as_deref(),
            Some("0b7e3f2a-5c1d-4e6f-8a9b-0c1d2e3f4a5b")
        );
        let denied = r#"{"type":"data","nodes":[{"type":"data","data":[{}],"uses":{}},{"type":"error","error":{"message":"You don't have access to this conversation."},"status":403}]}"#;
        assert!(matches!(
            p.inner.message_id_from_data(denied),
            Err(Error::MissingAuth { .. })
        ));
        let gone = r#"{"type":"data","nodes":[null,{"type":"error","error":{"message":"Conversation not found"},"status":404}]}"#;
        assert_eq!(p.inner.message_id_from_data(gone).expect("gone"), None);
        let broken = r#"{"type":"data","nodes":[null,{"type":"error","error":{"message":"boom"},"status":500}]}"#;
        assert!(matches!(
            p.inner.message_id_from_data(broken),
            Err(Error::HttpStatus { status: 500, .. })
        ));
        let redirect = r#"{"type":"redirect","location":"/chat/login"}"#;
        assert!(matches!(
            p.inner.message_id_from_data(redirect),
            Err(Error::MissingAuth { .. })
        ));
        for bad in [
            "",
            "not json",
            r#"{"type":"data","nodes":[{"type":"data","data":[{"messages":1},[]]}]}"#,
            r#"{"type":"data","nodes":[{"type":"data","data":[{"messages":5}]}]}"#,
            r#"{"type":"data","nodes":[{"type":"data","data":[{"messages":1},[2],{"id":0}]}]}"#,
            r#"{"type":"data","nodes":"x"}"#,
        ] {
            assert!(
                matches!(
                    p.inner.message_id_from_data(bad),
                    Err(Error::Protocol { .. })
                ),
                "{bad}"
            );
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            (-3i64..6).prop_map(Value::from),
            "[a-z]{0,3}".prop_map(Value::String),
            prop_oneof![Just("messages"), Just("id"), Just("data"), Just("error")]
                .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("messages".to_owned()),
                        Just("id".to_owned()),
                        Just("type".to_owned()),
                        "[a-c]".prop_map(String::from)
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        #[test]
        fn data_json_extraction_is_total(data in json_value(), last in json_value()) {
            let p = HuggingChat::new(ProviderConfig::named(NAME));
            let body = json!({"type": "data", "nodes": [null, {"type": "data", "data": data}, last]});
            let _ = p.inner.message_id_from_data(&body.to_string());
        }
    }

    #[test]
    fn state_round_trip() {
        let v = json!({"models": {"m": {"conversationId": "c", "messageId": "x"}}});
        let s = ConversationState::from_conversation(Some(&Conversation(v.clone())));
        assert_eq!(s.to_conversation().0, v);
        assert_eq!(
            ConversationState::from_conversation(Some(&Conversation(json!({"other": 1})))),
            ConversationState::default()
        );
        assert_eq!(
            ConversationState::from_conversation(Some(&Conversation(json!("junk")))),
            ConversationState::default()
        );
    }
}
