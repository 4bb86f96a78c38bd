//! Embeddings through the facade: resolution by model as for chat, only providers with
//! [`llmux_core::Capabilities::embeddings`], fallback on failure (an embeddings answer arrives
//! whole, so there is never partial output to duplicate).

use llmux_core::error::Action;
use llmux_core::{
    Attempt, ChatRequest, EmbeddingRequest, EmbeddingResponse, Error, Result, TimeoutPhase,
    Timeouts,
};
use tokio::time::Instant;

use crate::client::Client;
use crate::resolve::{self, Candidate};

/// The candidates for `req` that answer embeddings, or a refusal naming the provider(s).
async fn candidates(client: &Client, req: &EmbeddingRequest) -> Result<Vec<Candidate>> {
    let mut probe = ChatRequest::new(req.model.clone(), Vec::new());
    probe.provider.clone_from(&req.provider);
    let all = resolve::candidates(client, &probe).await?;
    let single = all.len() == 1;
    let first = all.first().map(|c| c.entry.info().name.clone());
    let kept: Vec<Candidate> = all
        .into_iter()
        .filter(|c| c.entry.info().capabilities.embeddings)
        .collect();
    if kept.is_empty() {
        let provider = match first {
            Some(name) if single => name,
            _ => format!("no provider serving `{}`", req.model),
        };
        return Err(Error::Unsupported {
            provider,
            param: "model".into(),
            help: "it does not answer embeddings; use an `openai-compat` or \
                `huggingface-inference` model (e.g. `openai-compat:text-embedding-3-small`)"
                .into(),
        });
    }
    Ok(kept)
}

/// The request one candidate gets: its model, and the caller's key only when named explicitly.
fn request_for(req: &EmbeddingRequest, cand: &Candidate) -> EmbeddingRequest {
    let mut r = req.clone();
    r.model = cand.model.clone();
    r.provider = Some(cand.entry.info().name.clone());
    if !cand.explicit {
        r.api_key = None;
    }
    r
}

/// Embeds `req`, trying candidates in order (retry, fall back or give up as for chat).
pub(crate) async fn embed(client: &Client, req: EmbeddingRequest) -> Result<EmbeddingResponse> {
    if req.input.is_empty() {
        return Err(Error::invalid(
            "`input` is empty: give at least one text or token array",
        ));
    }
    let timeouts = Timeouts {
        total: req.timeout.unwrap_or(client.inner.timeouts.total),
        ..client.inner.timeouts
    };
    let deadline = Instant::now() + timeouts.total;
    let total_timeout = || Error::Timeout {
        provider: String::new(),
        phase: TimeoutPhase::Total,
        after: timeouts.total,
    };
    let cands = tokio::time::timeout_at(deadline, Box::pin(candidates(client, &req)))
        .await
        .map_err(|_| total_timeout())??;
    let single = cands.len() == 1;
    let mut attempts = Vec::new();
    for cand in &cands {
        let name = cand.entry.info().name.clone();
        let mut retries = 0u32;
        let failure = loop {
            let ctx = client.context(timeouts, deadline);
            let call = cand.entry.provider.embed(request_for(&req, cand), &ctx);
            let result = match tokio::time::timeout_at(deadline, call).await {
                Ok(r) => r,
                Err(_) => Err(total_timeout()),
            };
            let e = match result.and_then(|r| r.check_count(req.input.len()).map(|()| r)) {
                Ok(r) => return Ok(r),
                Err(e) => e.with_provider(&name),
            };
            match e.action() {
                Action::RetryAfter(d)
                    if retries < client.inner.max_retries && Instant::now() + d < deadline =>
                {
                    retries += 1;
                    tokio::time::sleep(d).await;
                }
                _ => break e,
            }
        };
        if matches!(failure.action(), Action::GiveUp) || single {
            return Err(failure);
        }
        let timed_out = matches!(
            failure,
            Error::Timeout {
                phase: TimeoutPhase::Total,
                ..
            }
        );
        attempts.push(Attempt {
            provider: name,
            model: cand.model.clone(),
            error: Box::new(failure),
        });
        if timed_out {
            break;
        }
    }
    Err(Error::AllFailed { attempts })
}
