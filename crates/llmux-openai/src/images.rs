//! `images/generations` answers and `GET /models` lists of OpenAI-shaped upstreams.

use llmux_core::media;
use llmux_core::{Chunk, Error, Image, MediaData, Result};
use serde_json::Value;

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

/// An `error` object (or string) inside a response body.
fn error_of(provider: &str, v: &Value) -> Option<Error> {
    v.get("error")
        .filter(|e| !e.is_null())
        .map(|e| crate::read::upstream_error(provider, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn models_and_images() {
        assert_eq!(
            model_ids(&json!({"data": [{"id": "a"}, {"id": "b"}]})),
            ["a", "b"]
        );
        assert_eq!(model_ids(&json!(["x"])), ["x"]);
        let c =
            image_chunk("p", &json!({"data": [{"url": "https://i/1.png"}]}), "cat").expect("image");
        assert!(matches!(c, Chunk::Images(ref i) if i[0].alt == "cat"));
        assert!(image_chunk("p", &json!({"data": []}), "x").is_err());
        assert!(image_chunk("p", &json!({"error": {"message": "no"}}), "x").is_err());
    }
}
