//! One turn: the model, the conversation, the message with its files, and the answer stream.

use std::sync::Arc;

use llmux_core::futures_util::{Stream, StreamExt};
use llmux_core::http::Multipart;
use llmux_core::{ChatRequest, Chunk, Context, Cookies, Error, Media, Result, media, prompt};
use serde::Serialize;

use crate::updates::{self, Step, Updates};
use crate::{
    ConversationState, IMAGE_MODELS, IMAGE_TOOL_ID, Inner, ModelConversation, origin_of, strings,
};

/// The `data` part of the send request, in chat-ui's field order.
#[derive(Serialize)]
pub(crate) struct SendData<'a> {
    inputs: &'a str,
    id: &'a str,
    is_retry: bool,
    is_continue: bool,
    web_search: bool,
    tools: Vec<&'a str>,
}

/// A file name for an upload: the original one, else `file.<ext>`.
pub(crate) fn upload_name(m: &Media, mime: &str) -> String {
    m.file_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| match media::extension_for_mime(mime) {
            Some(ext) => format!("file.{ext}"),
            None => "file".to_owned(),
        })
}

/// The conversation flow of one turn.
pub(crate) fn answer(
    inner: Arc<Inner>,
    req: ChatRequest,
    ctx: Context,
    jar: Cookies,
) -> impl Stream<Item = Result<Chunk>> + Send {
    llmux_core::async_stream::try_stream! {
        let name = inner.name().to_owned();
        let files = req.all_media()?;
        let app = inner.app(&ctx).await?;
        let (text_models, discovered) = inner.text_models(&ctx).await;
        let model = if req.model.trim().is_empty() {
            if files.is_empty() {
                inner.default_text_model(&text_models, discovered)
            } else {
                inner.default_vision_model(&text_models, discovered)
            }
        } else {
            let mut known = text_models.clone();
            known.extend(strings(IMAGE_MODELS));
            inner.info.resolve_model(req.model.trim(), Some(&known))?
        };
        let is_image = IMAGE_MODELS.contains(&model.as_str());

        let mut state = ConversationState::from_conversation(req.conversation.as_ref());
        let mut known_turn = None;
        if let Some(existing) = state.models.get(&model).cloned() {
            match inner.latest_message(&ctx, &app, &jar, &existing.conversation_id).await? {
                Some(message_id) => known_turn = Some(ModelConversation { message_id, ..existing }),
                None => {
                    tracing::debug!(provider = %name, "conversation is gone upstream; starting a new one");
                }
            }
        }
        let (conv, inputs) = match known_turn {
            Some(conv) => (conv, prompt::last_user_message(&req.messages)),
            None => {
                let create_with = if is_image {
                    inner.default_text_model(&text_models, discovered)
                } else {
                    model.clone()
                };
                let conversation_id = inner.create_conversation(&ctx, &app, &jar, &create_with).await?;
                let message_id = inner
                    .latest_message(&ctx, &app, &jar, &conversation_id)
                    .await?
                    .ok_or_else(|| Error::protocol(&name, "cannot read the messages of the conversation just created (check the `api` option: v1 or v2)", &conversation_id))?;
                (
                    ModelConversation { conversation_id, message_id },
                    prompt::format_prompt(&req.messages, false, false, true),
                )
            }
        };
        state.models.insert(model.clone(), conv.clone());
        yield Chunk::Conversation(state.to_conversation());

        if inputs.trim().is_empty() {
            Err(Error::invalid("nothing to send: the conversation must end with a non-empty user message"))?;
        }
        let data = SendData {
            inputs: &inputs,
            id: &conv.message_id,
            is_retry: false,
            is_continue: false,
            web_search: req.web_search,
            tools: if is_image { vec![IMAGE_TOOL_ID] } else { Vec::new() },
        };
        let data = serde_json::to_string(&data)
            .map_err(|e| Error::invalid(format!("cannot encode the message: {e}")))?;
        let mut form = Multipart::new().text("data", data);
        for m in &files {
            let mime = m.detect_mime().unwrap_or_else(|| "application/octet-stream".to_owned());
            let file_name = format!("base64;{}", upload_name(m, &mime));
            form = form.file("files", file_name, mime, media::b64_encode(&m.data));
        }
        let cid = updates::path_segment(&conv.conversation_id);
        let url = format!("{app}/conversation/{cid}");
        let resp = ctx
            .http
            .post(&url)
            .provider(&name)
            .cookies(&jar)
            .header("accept", "*/*")
            .header("origin", &origin_of(&app))
            .header("referer", &url)
            .multipart(form)
            .send()
            .await?;
        let resp = inner.checked(resp).await?;

        let alt = prompt::image_prompt(&req.messages, req.prompt.as_deref());
        let mut updates = Updates::new(&name, format!("{url}/output/"), alt);
        let mut lines = std::pin::pin!(llmux_core::decode::jsonl::lines(resp.into_stream()));
        let mut finished = false;
        while let Some(line) = lines.next().await {
            let line = line.map_err(|e| e.with_provider(&name))?;
            let value = match llmux_core::decode::jsonl::parse_json_line(&line, &name) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(provider = %name, error = %e, "skipping a line that is not JSON");
                    continue;
                }
            };
            match updates.step(&value)? {
                Step::Emit(chunks) => {
                    for c in chunks {
                        yield c;
                    }
                }
                Step::Finish(chunks) => {
                    for c in chunks {
                        yield c;
                    }
                    finished = true;
                    break;
                }
            }
        }
        if !finished {
            Err(Error::protocol(&name, "the answer stream ended before `finalAnswer` (the answer may be incomplete)", ""))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_data_field_order() {
        let d = SendData {
            inputs: "Who wrote Dune?",
            id: "0b7e",
            is_retry: false,
            is_continue: false,
            web_search: true,
            tools: vec![],
        };
        assert_eq!(
            serde_json::to_string(&d).expect("json"),
            r#"{"inputs":"Who wrote Dune?","id":"0b7e","is_retry":false,"is_continue":false,"web_search":true,"tools":[]}"#
        );
    }
}
