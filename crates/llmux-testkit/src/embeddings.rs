//! Embeddings answers of the fakes: OpenAI's `POST /v1/embeddings` (on
//! [`crate::openai::FakeOpenAi`]) and Hugging Face's `feature-extraction` task (on
//! [`crate::hf_inference::FakeHfInference`]).
//!
//! Vectors are deterministic: [`fake_vector`] of the text (a token array is embedded as its
//! numbers joined with spaces), so tests can compute what they expect.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::openai::openai_error;
use crate::reply::Reply;
use crate::server::RecordedRequest;

/// Vector size when the request sets no `dimensions`.
pub const FAKE_DIMENSIONS: usize = 8;

/// The fake's unit-length vector of `text` with `dims` numbers (FNV-1a of the text, per
/// position).
pub fn fake_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dims)
        .map(|i| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (i as u64);
            for b in text.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            ((h % 2001) as f32 / 1000.0) - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// The texts of an OpenAI `input` (string, strings, token array, token arrays).
fn openai_inputs(input: &Value) -> Option<Vec<String>> {
    let tokens = |a: &Value| -> Option<String> {
        let ids: Option<Vec<String>> = a
            .as_array()?
            .iter()
            .map(|t| t.as_u64().map(|n| n.to_string()))
            .collect();
        ids.map(|ids| ids.join(" "))
    };
    match input {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if items.iter().all(Value::is_string) => Some(
            items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
        ),
        Value::Array(items) if items.iter().all(Value::is_u64) => Some(vec![tokens(input)?]),
        Value::Array(items) => items.iter().map(tokens).collect(),
        _ => None,
    }
}

/// `POST /v1/embeddings` as OpenAI answers it: `{"object":"list","data":[{"object":"embedding",
/// "index","embedding"}],"model","usage":{"prompt_tokens","total_tokens"}}`, vectors as floats or
/// (with `encoding_format: "base64"`) base64 of little-endian `f32`s. Any model is accepted;
/// `dimensions` sets the vector size (1..=4096).
pub(crate) fn openai_embeddings(req: &RecordedRequest) -> Reply {
    let bad = |m: &str| openai_error(400, m, "invalid_request_error", None);
    let Ok(body @ Value::Object(_)) = req.json() else {
        return bad("We could not parse the JSON body of your request.");
    };
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return bad("you must provide a model parameter");
    };
    let Some(texts) = body.get("input").and_then(openai_inputs) else {
        return bad("'input' must be a string, an array of strings or token arrays");
    };
    if texts.is_empty() {
        return bad("'input' must not be empty");
    }
    let dims = match body.get("dimensions") {
        None | Some(Value::Null) => FAKE_DIMENSIONS,
        Some(d) => match d.as_u64().filter(|d| (1..=4096).contains(d)) {
            Some(d) => d as usize,
            None => return bad("'dimensions' must be an integer between 1 and 4096"),
        },
    };
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = fake_vector(t, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    Reply::json(
        200,
        &json!({"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

/// Hugging Face's feature-extraction answer for a model with pipeline tag `tag`:
/// `sentence-similarity` models answer one vector per input (`[[f32]]`, normalised unless
/// `normalize: false`: the fake's vectors are already unit length, so `false` scales them by 2);
/// `feature-extraction` models answer token vectors per input (`[[[f32]]]`, one per
/// whitespace-separated word: [`fake_vector`] of the word, never normalised).
pub(crate) fn hf_features(tag: &str, req: &RecordedRequest) -> Reply {
    let bad = |m: &str| Reply::json(400, &json!({"error": m}));
    let Ok(body) = req.json() else {
        return bad("Failed to deserialize the JSON body");
    };
    let texts: Vec<String> = match body.get("inputs") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        _ => return bad("`inputs` must be a string or a list of strings"),
    };
    let normalize = body.get("normalize").and_then(Value::as_bool) != Some(false);
    let dims = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .map_or(FAKE_DIMENSIONS, |d| d.clamp(1, 4096) as usize);
    let answer: Vec<Value> = if tag == "sentence-similarity" {
        texts
            .iter()
            .map(|t| {
                let scale = if normalize { 1.0 } else { 2.0 };
                json!(
                    fake_vector(t, dims)
                        .iter()
                        .map(|x| x * scale)
                        .collect::<Vec<_>>()
                )
            })
            .collect()
    } else {
        texts
            .iter()
            .map(|t| {
                let words: Vec<Vec<f32>> =
                    t.split_whitespace().map(|w| fake_vector(w, dims)).collect();
                json!(words)
            })
            .collect()
    };
    Reply::json(200, &Value::Array(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_deterministic_unit_vectors() {
        let a = fake_vector("hello", 8);
        assert_eq!(a, fake_vector("hello", 8));
        assert_ne!(a, fake_vector("world", 8));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(
            openai_inputs(&json!([[1, 2], [3]])),
            Some(vec!["1 2".into(), "3".into()])
        );
        assert_eq!(openai_inputs(&json!([5, 6])), Some(vec!["5 6".into()]));
        assert_eq!(openai_inputs(&json!({"a": 1})), None);
    }
}
