//! Embeddings through Hugging Face's `feature-extraction` task.
//!
//! - Inference mode (default): `POST {base}/models/<id>` (the classic Inference API).
//! - Router mode (option `mode = "router"`):
//!   `POST {router}/hf-inference/models/<id>/pipeline/feature-extraction`.
//!
//! Body `{"inputs": [texts…], "normalize": <bool>, "dimensions"?: n}`. Sentence-embedding
//! models answer one vector per input; plain transformer models answer token vectors per input
//! (`[[[f32]]]`, sometimes with a batch level of one more), which are mean-pooled here and then
//! L2-normalised when `normalize` is on — what HF's own sentence pipelines do. `normalize`
//! comes from the request's `extra` (default `true`, as on HF's feature-extraction API).
//! Token-array input is refused: the task takes text.

use llmux_core::{
    ChatRequest, Context, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, Error, Result,
    embedding,
};
use serde_json::{Value, json};

use crate::{DEFAULT_BASE_URL, DEFAULT_ROUTER_URL, Inner, Mode, model_path};

/// Request `extra` key: L2-normalise the vectors (default `true`).
pub const NORMALIZE: &str = "normalize";

impl Inner {
    /// Answers `req` with the feature-extraction task.
    pub(crate) async fn embed(
        &self,
        req: EmbeddingRequest,
        ctx: &Context,
    ) -> Result<EmbeddingResponse> {
        let name = self.info.name.clone();
        let EmbeddingInput::Text(texts) = &req.input else {
            return Err(Error::Unsupported {
                provider: name,
                param: "input".into(),
                help: "Hugging Face's feature-extraction task takes text, not token arrays; send \
                    the texts"
                    .into(),
            });
        };
        // the per-call settings (key, mode, wait_for_model) come from the same options as chat
        let mut probe = ChatRequest::new(req.model.clone(), Vec::new());
        probe.api_key.clone_from(&req.api_key);
        probe.extra = req.extra.clone();
        probe.extra.remove(NORMALIZE);
        let call = self.call(&probe)?;
        let normalize = match req.extra.get(NORMALIZE) {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(Error::invalid(format!(
                    "{name}: option `normalize` must be true or false"
                )));
            }
        };
        let path = model_path(&call.model)?;
        let url = match call.mode {
            Mode::Inference => format!(
                "{}/models/{path}",
                self.config.origin("base", DEFAULT_BASE_URL)
            ),
            Mode::Router => format!(
                "{}/hf-inference/models/{path}/pipeline/feature-extraction",
                self.config.origin("router", DEFAULT_ROUTER_URL)
            ),
        };
        let mut body = json!({"inputs": texts, "normalize": normalize});
        if let Some(d) = req.dimensions {
            body["dimensions"] = json!(d);
        }
        let resp = self.post(ctx, &url, &body, &call).await?;
        let bytes = resp.bytes().await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
            provider: name.clone(),
            message: format!("the feature-extraction answer is not JSON: {e}"),
            snippet: llmux_core::error::snippet(&String::from_utf8_lossy(&bytes), 200),
        })?;
        let embeddings =
            vectors(&value, texts.len(), normalize).ok_or_else(|| Error::Protocol {
                provider: name.clone(),
                message: format!(
                    "the feature-extraction answer is not one vector (or token vectors) per input \
                 ({} inputs)",
                    texts.len()
                ),
                snippet: llmux_core::error::snippet(&value.to_string(), 200),
            })?;
        Ok(EmbeddingResponse {
            provider: name,
            model: call.model,
            embeddings,
            usage: None,
        })
    }
}

/// Nesting depth of the first element chain (`[1.0]` → 1, `[[1.0]]` → 2).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.first().map_or(0, depth),
        _ => 0,
    }
}

fn vector(v: &Value) -> Option<Vec<f32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect()
}

fn matrix(v: &Value) -> Option<Vec<Vec<f32>>> {
    v.as_array()?.iter().map(vector).collect()
}

/// Pooled (and, when asked, normalised) token vectors.
fn pooled(tokens: &[Vec<f32>], normalize: bool) -> Option<Vec<f32>> {
    let mut v = embedding::mean_pool(tokens)?;
    if normalize {
        embedding::normalize(&mut v);
    }
    Some(v)
}

/// One vector per input out of any of HF's answer shapes, or `None` when it is none of them.
pub(crate) fn vectors(v: &Value, inputs: usize, normalize: bool) -> Option<Vec<Vec<f32>>> {
    let items = v.as_array()?;
    let out = match depth(v) {
        // one input sent as a plain string
        1 if inputs == 1 => vec![vector(v)?],
        // one vector per input
        2 if items.len() == inputs => matrix(v)?,
        // one input's token vectors without the batch level
        2 if inputs == 1 => vec![pooled(&matrix(v)?, normalize)?],
        // token vectors per input
        3 if items.len() == inputs => items
            .iter()
            .map(|t| pooled(&matrix(t)?, normalize))
            .collect::<Option<_>>()?,
        // token vectors per input, each with a batch level of one
        4 if items.len() == inputs => items
            .iter()
            .map(|b| {
                let batch = b.as_array()?;
                (batch.len() == 1).then_some(())?;
                pooled(&matrix(&batch[0])?, normalize)
            })
            .collect::<Option<_>>()?,
        _ => return None,
    };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_shape() {
        // sentence-transformers models: one vector per input
        let v = vectors(&json!([[0.1, 0.2], [0.3, 0.4]]), 2, true).expect("vectors");
        assert_eq!(v, vec![vec![0.1, 0.2], vec![0.3, 0.4]]);
        // plain transformers: token vectors per input, mean-pooled then normalised
        let v = vectors(&json!([[[1.0, 0.0], [3.0, 0.0]], [[0.0, 2.0]]]), 2, true).expect("pooled");
        assert_eq!(v, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        let raw = vectors(&json!([[[1.0, 0.0], [3.0, 4.0]]]), 1, false).expect("raw");
        assert_eq!(raw, vec![vec![2.0, 2.0]]);
        // batch level of one per input
        let v = vectors(&json!([[[[2.0, 0.0]]]]), 1, true).expect("batched");
        assert_eq!(v, vec![vec![1.0, 0.0]]);
        // one input, token vectors without batch level
        let v = vectors(&json!([[2.0, 0.0], [0.0, 0.0]]), 1, false).expect("tokens");
        assert_eq!(v, vec![vec![1.0, 0.0]]);
        assert!(vectors(&json!([[0.1], [0.2], [0.3]]), 2, true).is_none());
        assert!(vectors(&json!({"error": "x"}), 1, true).is_none());
        assert!(vectors(&json!([["a"]]), 1, true).is_none());
    }
}
