//! Embeddings: [`EmbeddingRequest`] in, [`EmbeddingResponse`] out (OpenAI's model of them), and
//! the pooling helpers providers whose upstream returns token vectors share.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::chunk::Usage;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// What to embed: texts, or token id arrays (only some upstreams take tokens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One vector per text.
    Text(Vec<String>),
    /// One vector per token array.
    Tokens(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// How many vectors the answer must hold.
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Text(t) => t.len(),
            EmbeddingInput::Tokens(t) => t.len(),
        }
    }

    /// True when there is nothing to embed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An embeddings request.
///
/// ```
/// use llmux_core::EmbeddingRequest;
/// let req = EmbeddingRequest::new("text-embedding-3-small", ["hello", "world"]).with_dimensions(256);
/// assert_eq!(req.input.len(), 2);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmbeddingRequest {
    /// Model id, alias or `provider:model`.
    pub model: String,
    /// Provider to use; `None` lets the facade choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// What to embed.
    pub input: EmbeddingInput,
    /// Vector size for models that can shorten their vectors (forwarded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// An end-user id for the upstream's abuse monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// API key for this call (only for a provider the caller named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    /// Fields llmux does not model, forwarded verbatim to OpenAI-shaped upstreams; providers
    /// also read their options here (as in [`crate::ChatRequest::extra`]).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Total time budget of the call (overrides the client default).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::config::opt_secs"
    )]
    pub timeout: Option<Duration>,
}

impl EmbeddingRequest {
    /// A request embedding `texts` with `model`.
    pub fn new<I, S>(model: impl Into<String>, texts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_input(
            model,
            EmbeddingInput::Text(texts.into_iter().map(Into::into).collect()),
        )
    }

    /// A request with any input.
    pub fn with_input(model: impl Into<String>, input: EmbeddingInput) -> Self {
        Self {
            model: model.into(),
            provider: None,
            input,
            dimensions: None,
            user: None,
            api_key: None,
            extra: serde_json::Map::new(),
            timeout: None,
        }
    }

    /// Chooses a provider by name.
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Asks for vectors of this size.
    pub fn with_dimensions(mut self, n: u32) -> Self {
        self.dimensions = Some(n);
        self
    }

    /// Sets an API key for this call.
    pub fn with_api_key(mut self, key: impl Into<Secret>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Sets the total time budget.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// The vectors, in input order, with the provider and model that made them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// Provider that answered.
    pub provider: String,
    /// Model that answered.
    pub model: String,
    /// One vector per input, in input order.
    pub embeddings: Vec<Vec<f32>>,
    /// Upstream usage (`prompt_tokens`, `total_tokens`), when it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl EmbeddingResponse {
    /// Checks that there is one vector per input, or a protocol error naming `provider`.
    pub fn check_count(&self, expected: usize) -> Result<()> {
        if self.embeddings.len() == expected {
            return Ok(());
        }
        Err(Error::Protocol {
            provider: self.provider.clone(),
            message: format!(
                "the upstream returned {} embedding(s) for {expected} input(s)",
                self.embeddings.len()
            ),
            snippet: String::new(),
        })
    }
}

/// Mean of token vectors (sentence-transformers' mean pooling); `None` for no tokens or ragged
/// vectors.
pub fn mean_pool(tokens: &[Vec<f32>]) -> Option<Vec<f32>> {
    let first = tokens.first()?;
    let dim = first.len();
    if tokens.iter().any(|t| t.len() != dim) {
        return None;
    }
    let mut sum = vec![0f64; dim];
    for t in tokens {
        for (s, v) in sum.iter_mut().zip(t) {
            *s += f64::from(*v);
        }
    }
    let n = tokens.len() as f64;
    Some(sum.into_iter().map(|s| (s / n) as f32).collect())
}

/// Scales `v` to unit L2 length, as HF's `normalize` does (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 1e-12 {
        for x in v.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_and_normalising() {
        let pooled = mean_pool(&[vec![1.0, 2.0], vec![3.0, 4.0]]).expect("pooled");
        assert_eq!(pooled, vec![2.0, 3.0]);
        assert!(mean_pool(&[vec![1.0], vec![1.0, 2.0]]).is_none());
        assert!(mean_pool(&[]).is_none());
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = vec![0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }

    #[test]
    fn input_shapes() {
        let t: EmbeddingInput = serde_json::from_str(r#"["a","b"]"#).expect("texts");
        assert_eq!(t, EmbeddingInput::Text(vec!["a".into(), "b".into()]));
        let k: EmbeddingInput = serde_json::from_str("[[1,2],[3]]").expect("tokens");
        assert_eq!(k.len(), 2);
    }
}
