//! OpenAI chat-completions wire format, shared by every provider that speaks it (openai-compat,
//! AmigoChat, the Hugging Face router): request bodies, SSE chunk parsing, non-stream responses,
//! image generation responses and model lists.

use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value, json};

use crate::chunk::{Chunk, FinishReason, Image, MediaData, Reasoning, Usage};
use crate::decode::sse::sse_events;
use crate::error::{Error, Result};
use crate::http::Response;
use crate::media;
use crate::request::{ChatRequest, Content, ContentPart, ImageUrl, InputAudio, Role};

/// The `messages` array: the request's messages, with [`ChatRequest::media`] attached to the
/// last user message as `image_url` / `input_audio` parts (data URIs).
pub fn messages_json(req: &ChatRequest) -> Result<Vec<Value>> {
    let mut messages = req.messages.clone();
    if !req.media.is_empty() {
        let idx = messages
            .iter()
            .rposition(|m| m.role == Role::User)
            .ok_or_else(|| {
                Error::invalid("media attached but there is no user message to carry it")
            })?;
        let msg = &mut messages[idx];
        let mut parts = match std::mem::take(&mut msg.content) {
            Content::Text(t) => vec![ContentPart::Text { text: t }],
            Content::Parts(p) => p,
        };
        for m in &req.media {
            let (kind, mime) = media::classify_media(m)?;
            match kind {
                media::MediaKind::Audio => parts.push(ContentPart::InputAudio {
                    input_audio: InputAudio {
                        data: media::b64_encode(&m.data),
                        format: media::extension_for_mime(&mime).unwrap_or("wav").to_owned(),
                    },
                }),
                _ => parts.push(ContentPart::ImageUrl {
                    image_url: ImageUrl {
                        url: media::to_data_uri(&mime, &m.data),
                    },
                }),
            }
        }
        msg.content = Content::Parts(parts);
    }
    messages
        .iter()
        .map(|m| {
            serde_json::to_value(m)
                .map_err(|e| Error::invalid(format!("cannot encode message: {e}")))
        })
        .collect()
}

/// The chat-completions body: model, messages, stream (+ `stream_options.include_usage`),
/// sampling parameters that are set, then [`ChatRequest::extra`] (which may override any key).
pub fn chat_body(req: &ChatRequest, model: &str) -> Result<Value> {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages_json(req)?));
    body.insert("stream".into(), json!(req.stream));
    if req.stream {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let opt = |b: &mut Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            b.insert(k.into(), v);
        }
    };
    opt(&mut body, "temperature", req.temperature.map(|v| json!(v)));
    opt(&mut body, "top_p", req.top_p.map(|v| json!(v)));
    opt(&mut body, "max_tokens", req.max_tokens.map(|v| json!(v)));
    opt(
        &mut body,
        "presence_penalty",
        req.presence_penalty.map(|v| json!(v)),
    );
    opt(
        &mut body,
        "frequency_penalty",
        req.frequency_penalty.map(|v| json!(v)),
    );
    opt(&mut body, "seed", req.seed.map(|v| json!(v)));
    if !req.stop.is_empty() {
        body.insert("stop".into(), json!(req.stop));
    }
    for (k, v) in &req.extra {
        body.insert(k.clone(), v.clone());
    }
    Ok(Value::Object(body))
}

fn usage_of(v: &Value) -> Option<Usage> {
    let u = v.get("usage")?;
    if u.is_null() {
        return None;
    }
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (p, c) = (n("prompt_tokens"), n("completion_tokens"));
    Some(Usage {
        prompt_tokens: p,
        completion_tokens: c,
        total_tokens: u
            .get("total_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(p + c),
    })
}

fn error_of(provider: &str, v: &Value) -> Option<Error> {
    let e = v.get("error")?;
    if e.is_null() {
        return None;
    }
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            e.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string())
        });
    Some(Error::Upstream {
        provider: provider.to_owned(),
        message,
    })
}

fn text_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Chunks of one `chat.completion.chunk` object (tolerant: missing choices, `finish_reason: ""`,
/// `reasoning` or `reasoning_content`). An `error` object becomes [`Error::Upstream`].
pub fn stream_chunks(provider: &str, v: &Value) -> Result<Vec<Chunk>> {
    if let Some(e) = error_of(provider, v) {
        return Err(e);
    }
    let mut out = Vec::new();
    if let Some(choice) = v.get("choices").and_then(|c| c.get(0)) {
        let delta = choice.get("delta").or_else(|| choice.get("message"));
        if let Some(d) = delta {
            if let Some(r) =
                text_of(d.get("reasoning_content")).or_else(|| text_of(d.get("reasoning")))
            {
                out.push(Chunk::Reasoning(Reasoning::token(r)));
            }
            if let Some(t) = text_of(d.get("content")) {
                out.push(Chunk::text(t));
            }
        } else if let Some(t) = text_of(choice.get("text")) {
            // completions-style chunk (`choices[0].text`), which g4f's AmigoChat also reads
            out.push(Chunk::text(t));
        }
        if let Some(f) = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .and_then(FinishReason::parse)
        {
            out.push(Chunk::Finish(f));
        }
    }
    if let Some(u) = usage_of(v) {
        out.push(Chunk::Usage(u));
    }
    Ok(out)
}

/// Chunks of a non-streaming `chat.completion` response.
pub fn completion_chunks(provider: &str, v: &Value) -> Result<Vec<Chunk>> {
    if let Some(e) = error_of(provider, v) {
        return Err(e);
    }
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| Error::protocol(provider, "completion without choices", &v.to_string()))?;
    let mut out = Vec::new();
    if let Some(m) = choice.get("message") {
        if let Some(r) = text_of(m.get("reasoning_content")).or_else(|| text_of(m.get("reasoning")))
        {
            out.push(Chunk::Reasoning(Reasoning::token(r)));
        }
        if let Some(t) = text_of(m.get("content")) {
            out.push(Chunk::text(t));
        }
    }
    if let Some(f) = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .and_then(FinishReason::parse)
    {
        out.push(Chunk::Finish(f));
    }
    if let Some(u) = usage_of(v) {
        out.push(Chunk::Usage(u));
    }
    Ok(out)
}

/// Turns a chat-completions response into chunks: SSE when the server streams
/// (`text/event-stream`), else one JSON completion. A stream that ends without `[DONE]` and
/// without a finish reason is an error (the connection died mid-answer).
pub fn response_chunks(
    provider: String,
    resp: Response,
) -> impl Stream<Item = Result<Chunk>> + Send {
    async_stream::try_stream! {
        let is_sse = resp.content_type().is_some_and(|c| c.starts_with("text/event-stream"));
        if !is_sse {
            let v: Value = resp.json().await?;
            for c in completion_chunks(&provider, &v)? {
                yield c;
            }
            return;
        }
        let mut events = std::pin::pin!(sse_events(resp.into_stream()));
        let mut finished = false;
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| e.with_provider(&provider))?;
            let data = ev.data.trim();
            if data == "[DONE]" {
                return;
            }
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(data)
                .map_err(|e| Error::protocol(&provider, format!("malformed SSE JSON: {e}"), data))?;
            for c in stream_chunks(&provider, &v)? {
                finished |= matches!(c, Chunk::Finish(_));
                yield c;
            }
        }
        if !finished {
            Err(Error::protocol(&provider, "stream ended before [DONE]", ""))?;
        }
    }
}

/// The image chunk of an `images/generations` response (`url` or `b64_json` entries).
pub fn image_chunk(provider: &str, v: &Value, alt: &str) -> Result<Chunk> {
    if let Some(e) = error_of(provider, v) {
        return Err(e);
    }
    let data = v.get("data").and_then(Value::as_array).ok_or_else(|| {
        Error::protocol(provider, "image response without `data`", &v.to_string())
    })?;
    let mut images = Vec::new();
    for item in data {
        let media = if let Some(u) = item.get("url").and_then(Value::as_str) {
            MediaData::Url(u.to_owned())
        } else if let Some(b) = item.get("b64_json").and_then(Value::as_str) {
            let bytes = media::b64_decode(b)?;
            let mime = media::sniff_image(&bytes).unwrap_or("image/png").to_owned();
            MediaData::Bytes {
                mime,
                data: bytes.into(),
            }
        } else {
            continue;
        };
        let alt = item
            .get("revised_prompt")
            .and_then(Value::as_str)
            .unwrap_or(alt)
            .to_owned();
        images.push(Image {
            data: media,
            alt,
            needs_auth: false,
        });
    }
    if images.is_empty() {
        return Err(Error::protocol(
            provider,
            "image response without images",
            &v.to_string(),
        ));
    }
    Ok(Chunk::Images(images))
}

/// Model ids of a `GET /models` response (`{"data":[{"id":..}]}` or a bare array).
pub fn model_ids(v: &Value) -> Vec<String> {
    let list = v.get("data").unwrap_or(v);
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str).or_else(|| m.as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Media, Message};

    #[test]
    fn body_has_params_and_media() {
        let req = ChatRequest::new("m", vec![Message::system("s"), Message::user("look")])
            .with_temperature(0.5)
            .with_stop("END")
            .with_media(Media::from_bytes(&b"\x89PNG\r\n\x1a\n...."[..], None))
            .with_extra("user", json!("u1"));
        let b = chat_body(&req, "gpt").expect("body");
        assert_eq!(b["model"], "gpt");
        assert_eq!(b["temperature"], 0.5);
        assert_eq!(b["stop"], json!(["END"]));
        assert_eq!(b["user"], "u1");
        assert_eq!(b["stream_options"]["include_usage"], true);
        let parts = b["messages"][1]["content"].as_array().expect("parts");
        assert_eq!(parts[0], json!({"type":"text","text":"look"}));
        assert!(
            parts[1]["image_url"]["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("data:image/png;base64,"))
        );
        assert!(b.get("max_tokens").is_none());
    }

    #[test]
    fn tolerant_chunk_parsing() {
        let v = json!({"choices":[{"delta":{"content":"Hi","reasoning_content":null},"finish_reason":""}]});
        assert_eq!(stream_chunks("p", &v).ok(), Some(vec![Chunk::text("Hi")]));
        let v = json!({"choices":[{"delta":{"reasoning":"hmm"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":4}});
        let c = stream_chunks("p", &v).expect("chunks");
        assert_eq!(c[0], Chunk::Reasoning(Reasoning::token("hmm")));
        assert_eq!(c[1], Chunk::Finish(FinishReason::Length));
        assert_eq!(
            c[2],
            Chunk::Usage(Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7
            })
        );
        let v = json!({"choices":[{"text":"legacy","finish_reason":null}]});
        assert_eq!(
            stream_chunks("p", &v).ok(),
            Some(vec![Chunk::text("legacy")])
        );
        let v = json!({"choices":[], "usage": null});
        assert_eq!(stream_chunks("p", &v).ok(), Some(vec![]));
        assert!(matches!(
            stream_chunks("p", &json!({"error":{"message":"boom"}})),
            Err(Error::Upstream { .. })
        ));
    }

    #[test]
    fn models_and_images() {
        assert_eq!(
            model_ids(&json!({"data":[{"id":"a"},{"id":"b"}]})),
            vec!["a", "b"]
        );
        let c = image_chunk("p", &json!({"data":[{"url":"http://x/i.png"}]}), "cat").expect("img");
        assert_eq!(
            c,
            Chunk::Images(vec![Image {
                data: MediaData::Url("http://x/i.png".into()),
                alt: "cat".into(),
                needs_auth: false
            }])
        );
    }
}
