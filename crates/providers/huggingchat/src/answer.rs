//! One turn: the model, the conversation, the message with its files, and the answer stream.

use std::sync::Arc;

use llmux_core::futures_util::{Stream, StreamExt};
use llmux_core::http::{Multipart, Response};
use llmux_core::{ChatRequest, Chunk, Context, Cookies, Error, Media, Result, media, prompt};
use serde::Serialize;

use crate::updates::{self, Step, Updates};
use crate::{IMAGE_MODELS, IMAGE_TOOL_ID, Inner, ModelConversation, origin_of};

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

/// The conversation flow of one turn: the model, its conversation (yielded as the state to hand
/// back), the message with its files, then the answer stream.
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
        let model = inner.model_for(&req, files.is_empty(), &text_models, discovered)?;
        let is_image = IMAGE_MODELS.contains(&model.as_str());

        let create_with = || {
            if is_image {
                inner.default_text_model(&text_models, discovered)
            } else {
                model.clone()
            }
        };
        let (state, conv, inputs) = inner.turn(&ctx, &app, &jar, &req, &model, create_with).await?;
        yield Chunk::Conversation(state.to_conversation());

        if inputs.trim().is_empty() {
            Err(Error::invalid("nothing to send: the conversation must end with a non-empty user message"))?;
        }
        let form = message_form(&req, &conv, &inputs, &files, is_image)?;
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
        let updates = Updates::new(&name, format!("{url}/output/"), alt);
        let mut chunks = std::pin::pin!(read_answer(name, updates, resp));
        while let Some(chunk) = chunks.next().await {
            yield chunk?;
        }
    }
}

/// The send request's form: the `data` part, then each file as a base64 `files` part.
fn message_form(
    req: &ChatRequest,
    conv: &ModelConversation,
    inputs: &str,
    files: &[Media],
    is_image: bool,
) -> Result<Multipart> {
    let data = SendData {
        inputs,
        id: &conv.message_id,
        is_retry: false,
        is_continue: false,
        web_search: req.web_search,
        tools: if is_image {
            vec![IMAGE_TOOL_ID]
        } else {
            Vec::new()
        },
    };
    let data = serde_json::to_string(&data)
        .map_err(|e| Error::invalid(format!("cannot encode the message: {e}")))?;
    let mut form = Multipart::new().text("data", data);
    for m in files {
        let mime = m
            .detect_mime()
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        let file_name = format!("base64;{}", upload_name(m, &mime));
        form = form.file("files", file_name, mime, media::b64_encode(&m.data));
    }
    Ok(form)
}

/// The answer stream (JSON lines) → chunks, up to `finalAnswer`; lines that are not JSON are
/// skipped, and a stream that ends before `finalAnswer` is a protocol error.
fn read_answer(
    name: String,
    mut updates: Updates,
    resp: Response,
) -> impl Stream<Item = Result<Chunk>> + Send {
    llmux_core::async_stream::try_stream! {
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
