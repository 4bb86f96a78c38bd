//! OpenAI's embeddings wire model (`POST /v1/embeddings`), used both ways: the gateway reads
//! requests and writes answers with it, and OpenAI-shaped providers send requests and read
//! answers with it.
//!
//! Request: `model`, `input` (a string, a list of strings, a token array, or a list of token
//! arrays), `encoding_format` (`float`, the default, or `base64`: little-endian `f32`s, base64
//! encoded, which the official Python SDK asks for by default), `dimensions`, `user`; other
//! fields are kept in `extra` and forwarded.

use llmux_core::media::{b64_decode, b64_encode};
use llmux_core::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse, Error, Result, Usage};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::convert::WireError;

/// `input` as OpenAI takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Input {
    /// One text.
    Text(String),
    /// Several texts.
    Texts(Vec<String>),
    /// One token array.
    Tokens(Vec<u32>),
    /// Several token arrays.
    TokenArrays(Vec<Vec<u32>>),
}

/// How vectors are written in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodingFormat {
    /// JSON arrays of numbers.
    #[default]
    Float,
    /// Base64 of the little-endian `f32` bytes.
    Base64,
}

/// The body of `POST /v1/embeddings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    /// Model id.
    pub model: String,
    /// What to embed.
    pub input: Input,
    /// `float` or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    /// Vector size, for models that can shorten vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// End-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Fields llmux does not model (forwarded to OpenAI-shaped upstreams).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Gateway-side fields of the body that are not the upstream's: `provider`, `api_key`.
const GATEWAY_FIELDS: &[&str] = &["provider", "api_key"];

/// Converts a parsed body into an llmux request and the answer's encoding.
pub fn into_embedding_request(
    mut wire: EmbeddingsRequest,
) -> std::result::Result<(EmbeddingRequest, EncodingFormat), WireError> {
    let input = match wire.input {
        Input::Text(t) => EmbeddingInput::Text(vec![t]),
        Input::Texts(t) => EmbeddingInput::Text(t),
        Input::Tokens(t) => EmbeddingInput::Tokens(vec![t]),
        Input::TokenArrays(t) => EmbeddingInput::Tokens(t),
    };
    if input.is_empty() {
        return Err(WireError {
            code: "invalid_value",
            message: "`input` is empty: give a string, a list of strings or token arrays".into(),
            param: Some("input".into()),
        });
    }
    if wire.dimensions == Some(0) {
        return Err(WireError {
            code: "invalid_value",
            message: "`dimensions` must be at least 1".into(),
            param: Some("dimensions".into()),
        });
    }
    let mut req = EmbeddingRequest::with_input(wire.model, input);
    req.dimensions = wire.dimensions;
    req.user = wire.user;
    for key in GATEWAY_FIELDS {
        match (key, wire.extra.remove(*key)) {
            (&"provider", Some(Value::String(p))) => req.provider = Some(p),
            (&"api_key", Some(Value::String(k))) => req.api_key = Some(k.into()),
            (_, None | Some(Value::Null)) => {}
            (k, Some(_)) => {
                return Err(WireError {
                    code: "invalid_type",
                    message: format!("`{k}` must be a string"),
                    param: Some((*k).to_owned()),
                });
            }
        }
    }
    req.extra = wire.extra;
    Ok((req, wire.encoding_format.unwrap_or_default()))
}

/// The upstream body for `req` asking `model` (always `encoding_format: float`).
pub fn embeddings_body(req: &EmbeddingRequest, model: &str) -> EmbeddingsRequest {
    let input = match &req.input {
        EmbeddingInput::Text(t) => Input::Texts(t.clone()),
        EmbeddingInput::Tokens(t) => Input::TokenArrays(t.clone()),
    };
    EmbeddingsRequest {
        model: model.to_owned(),
        input,
        encoding_format: Some(EncodingFormat::Float),
        dimensions: req.dimensions,
        user: req.user.clone(),
        extra: req.extra.clone(),
    }
}

#[derive(Deserialize)]
struct AnswerIn {
    data: Vec<ItemIn>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct ItemIn {
    #[serde(default)]
    index: Option<usize>,
    embedding: VectorIn,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum VectorIn {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Deserialize)]
struct UsageIn {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
}

/// Decodes base64 little-endian `f32`s.
pub fn decode_base64_vector(s: &str) -> Result<Vec<f32>> {
    let bytes = b64_decode(s)?;
    if bytes.len() % 4 != 0 {
        return Err(Error::invalid(format!(
            "a base64 embedding has {} bytes, not a multiple of 4",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Encodes a vector as base64 little-endian `f32`s (OpenAI's `encoding_format: base64`).
pub fn encode_base64_vector(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    b64_encode(&bytes)
}

/// Reads an upstream's `{"object":"list","data":[{"index","embedding"}],"model","usage"}`
/// answer (float or base64 vectors), in input order.
pub fn read_embeddings(provider: &str, model: &str, body: &[u8]) -> Result<EmbeddingResponse> {
    let protocol = |message: String| Error::Protocol {
        provider: provider.to_owned(),
        message,
        snippet: llmux_core::error::snippet(&String::from_utf8_lossy(body), 200),
    };
    let answer: AnswerIn = serde_json::from_slice(body)
        .map_err(|e| protocol(format!("not an embeddings answer: {e}")))?;
    let mut items: Vec<(usize, Vec<f32>)> = Vec::with_capacity(answer.data.len());
    for (i, item) in answer.data.into_iter().enumerate() {
        let v = match item.embedding {
            VectorIn::Float(v) => v,
            VectorIn::Base64(s) => decode_base64_vector(&s).map_err(|e| protocol(e.to_string()))?,
        };
        items.push((item.index.unwrap_or(i), v));
    }
    items.sort_by_key(|(i, _)| *i);
    let usage = answer.usage.map(|u| Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: 0,
        total_tokens: u.total_tokens.unwrap_or(u.prompt_tokens),
        details: Map::new(),
    });
    Ok(EmbeddingResponse {
        provider: provider.to_owned(),
        model: answer.model.unwrap_or_else(|| model.to_owned()),
        embeddings: items.into_iter().map(|(_, v)| v).collect(),
        usage,
    })
}

/// One vector of the answer, as floats or base64.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum VectorOut<'a> {
    /// Numbers.
    Float(&'a [f32]),
    /// Base64 of little-endian `f32`s.
    Base64(String),
}

/// One item of the answer's `data`.
#[derive(Debug, Serialize)]
pub struct EmbeddingOut<'a> {
    /// Always `embedding`.
    pub object: &'static str,
    /// Position of the input.
    pub index: usize,
    /// The vector.
    pub embedding: VectorOut<'a>,
}

/// `usage` of the answer.
#[derive(Debug, Serialize)]
pub struct UsageOut {
    /// Input tokens.
    pub prompt_tokens: u64,
    /// The same (embeddings generate nothing).
    pub total_tokens: u64,
}

/// The answer of `POST /v1/embeddings`.
#[derive(Debug, Serialize)]
pub struct EmbeddingsAnswer<'a> {
    /// Always `list`.
    pub object: &'static str,
    /// One item per input.
    pub data: Vec<EmbeddingOut<'a>>,
    /// The model that answered.
    pub model: &'a str,
    /// Token counts (the upstream's, else `estimate`).
    pub usage: UsageOut,
    /// The provider that answered (llmux extension).
    pub provider: &'a str,
}

impl<'a> EmbeddingsAnswer<'a> {
    /// The answer for `resp` in `format`; `estimate` is the prompt token count used when the
    /// upstream reported none.
    pub fn new(resp: &'a EmbeddingResponse, format: EncodingFormat, estimate: u64) -> Self {
        let data = resp
            .embeddings
            .iter()
            .enumerate()
            .map(|(index, v)| EmbeddingOut {
                object: "embedding",
                index,
                embedding: match format {
                    EncodingFormat::Float => VectorOut::Float(v),
                    EncodingFormat::Base64 => VectorOut::Base64(encode_base64_vector(v)),
                },
            })
            .collect();
        let usage = match &resp.usage {
            Some(u) => UsageOut {
                prompt_tokens: u.prompt_tokens,
                total_tokens: u.total_tokens,
            },
            None => UsageOut {
                prompt_tokens: estimate,
                total_tokens: estimate,
            },
        };
        Self {
            object: "list",
            data,
            model: &resp.model,
            usage,
            provider: &resp.provider,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transcript of OpenAI's answer shape (API reference, "The embedding object").
    const OPENAI_ANSWER: &str = r#"{
      "object": "list",
      "data": [
        {"object": "embedding", "index": 1, "embedding": [0.5, -0.25]},
        {"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292]}
      ],
      "model": "text-embedding-3-small",
      "usage": {"prompt_tokens": 8, "total_tokens": 8}
    }"#;

    #[test]
    fn reads_openai_answers_in_input_order() {
        let r = read_embeddings("p", "m", OPENAI_ANSWER.as_bytes()).expect("answer");
        assert_eq!(r.embeddings[0], vec![0.002_306_425_5, -0.009_327_292]);
        assert_eq!(r.embeddings[1], vec![0.5, -0.25]);
        assert_eq!(r.model, "text-embedding-3-small");
        assert_eq!(r.usage.map(|u| u.total_tokens), Some(8));
        assert!(read_embeddings("p", "m", br#"{"error":"x"}"#).is_err());
    }

    #[test]
    fn base64_round_trip_is_little_endian_f32() {
        let v = [1.0f32, -2.5, 0.125];
        let s = encode_base64_vector(&v);
        // 1.0f32 LE = 00 00 80 3f
        assert!(s.starts_with("AACAP"), "{s}");
        assert_eq!(decode_base64_vector(&s).expect("decoded"), v);
        let body = format!(r#"{{"data":[{{"index":0,"embedding":"{s}"}}]}}"#);
        let r = read_embeddings("p", "m", body.as_bytes()).expect("answer");
        assert_eq!(r.embeddings[0], v);
        assert!(decode_base64_vector("AAA=").is_err());
    }

    #[test]
    fn requests_in_every_input_shape() {
        let parse = |s: &str| {
            into_embedding_request(serde_json::from_str(s).expect("wire"))
                .map(|(r, f)| (r.input, f))
        };
        let (i, f) = parse(r#"{"model":"m","input":"hi"}"#).expect("string");
        assert_eq!(
            (i, f),
            (
                EmbeddingInput::Text(vec!["hi".into()]),
                EncodingFormat::Float
            )
        );
        let (i, f) = parse(r#"{"model":"m","input":["a","b"],"encoding_format":"base64"}"#)
            .expect("strings");
        assert_eq!(i.len(), 2);
        assert_eq!(f, EncodingFormat::Base64);
        let (i, _) = parse(r#"{"model":"m","input":[1,2,3]}"#).expect("tokens");
        assert_eq!(i, EmbeddingInput::Tokens(vec![vec![1, 2, 3]]));
        let (i, _) = parse(r#"{"model":"m","input":[[1],[2,3]]}"#).expect("token arrays");
        assert_eq!(i.len(), 2);
        assert_eq!(
            parse(r#"{"model":"m","input":[]}"#)
                .err()
                .and_then(|e| e.param)
                .as_deref(),
            Some("input")
        );
        let wire: EmbeddingsRequest = serde_json::from_str(
            r#"{"model":"m","input":"x","dimensions":64,"provider":"p","x_custom":1}"#,
        )
        .expect("wire");
        let (req, _) = into_embedding_request(wire).expect("request");
        assert_eq!(req.provider.as_deref(), Some("p"));
        let body = serde_json::to_value(embeddings_body(&req, "up")).expect("body");
        assert_eq!(
            body,
            serde_json::json!({"model":"up","input":["x"],"encoding_format":"float","dimensions":64,"x_custom":1})
        );
        assert!(
            serde_json::from_str::<EmbeddingsRequest>(r#"{"model":"m","input":{"a":1}}"#).is_err()
        );
    }

    #[test]
    fn answers_in_openai_shape() {
        let resp = EmbeddingResponse {
            provider: "p".into(),
            model: "m".into(),
            embeddings: vec![vec![1.0, 0.0]],
            usage: None,
        };
        let v = serde_json::to_value(EmbeddingsAnswer::new(&resp, EncodingFormat::Float, 3))
            .expect("json");
        assert_eq!(
            v,
            serde_json::json!({"object":"list","data":[{"object":"embedding","index":0,"embedding":[1.0,0.0]}],
                "model":"m","usage":{"prompt_tokens":3,"total_tokens":3},"provider":"p"})
        );
    }
}
