//! Fallback: try candidates in order; retry or fall back freely before the first content chunk,
//! never after it.

use futures_util::StreamExt;
use llmux_core::error::Action;
use llmux_core::{
    Attempt, ChatRequest, ChatStream, Chunk, Conversation, Error, ProviderInfoChunk, TimeoutPhase,
    Timeouts,
};
use tokio::time::Instant;

use crate::capability::{self, Plan};
use crate::client::Client;
use crate::emulation;
use crate::health;
use crate::resolve::{self, Candidate};

/// The candidates that can honour `req`, each with its plan. When none can, the refusal of the
/// only candidate, or one that names every provider serving the model.
fn honouring(
    client: &Client,
    req: &ChatRequest,
    cands: Vec<Candidate>,
) -> Result<Vec<(Candidate, Plan)>, Error> {
    let single = cands.len() == 1;
    let mut kept = Vec::with_capacity(cands.len());
    let mut refusal = None;
    for cand in cands {
        let emulation = req
            .tool_emulation
            .or(cand.entry.tool_emulation)
            .unwrap_or(client.inner.tool_emulation);
        match capability::plan(req, cand.entry.info(), emulation) {
            Ok(plan) => kept.push((cand, plan)),
            Err(e) => {
                refusal.get_or_insert(e);
            }
        }
    }
    match refusal {
        Some(e) if kept.is_empty() && single => Err(e),
        Some(Error::Unsupported { param, help, .. }) if kept.is_empty() => {
            Err(Error::Unsupported {
                provider: format!("no provider serving `{}`", req.model),
                param,
                help,
            })
        }
        Some(e) if kept.is_empty() => Err(e),
        _ => Ok(kept),
    }
}

/// The conversation state for one provider out of the composite `{provider: state}` object.
fn provider_state(conv: Option<&Conversation>, provider: &str) -> Option<Conversation> {
    conv.and_then(|c| c.get(provider))
        .cloned()
        .map(Conversation)
}

/// The composite after `provider` returned `state`: other providers' states are kept.
fn merge_state(prev: Option<&Conversation>, provider: &str, state: Conversation) -> Conversation {
    let mut map = match prev.map(|c| &c.0) {
        Some(serde_json::Value::Object(m)) => m.clone(),
        _ => serde_json::Map::new(),
    };
    map.insert(provider.to_owned(), state.0);
    Conversation(serde_json::Value::Object(map))
}

fn request_for(client: &Client, req: &ChatRequest, cand: &Candidate) -> Result<ChatRequest, Error> {
    let mut r = req.clone();
    r.model = cand.model.clone();
    r.provider = Some(cand.entry.info().name.clone());
    r.conversation = provider_state(req.conversation.as_ref(), &cand.entry.info().name);
    if !cand.explicit {
        // credentials given with a request are meant for the provider the caller named; never
        // hand them to providers chosen by routing
        r.api_key = None;
        r.cookies = None;
    }
    if let (None, Some(source)) = (&r.cookies, &client.inner.cookie_source) {
        r.cookies = source(cand.entry.info())?;
    }
    Ok(r)
}

/// "No provider serves the model", naming the providers that were tried because their model
/// discovery failed, and how their attempts failed.
fn unlisted_failure(model: &str, attempts: &[Attempt]) -> Error {
    let tried: Vec<String> = attempts
        .iter()
        .map(|a| format!("{}: {}", a.provider, a.error))
        .collect();
    Error::NoProviderForModel {
        model: model.to_owned(),
        suggestions: Vec::new(),
        note: format!(
            "tried, because their model discovery failed: {}",
            tried.join("; ")
        ),
    }
}

pub(crate) fn chat(client: Client, req: ChatRequest) -> ChatStream {
    Box::pin(async_stream::try_stream! {
        let timeouts = Timeouts {
            total: req.timeout.unwrap_or(client.inner.timeouts.total),
            idle: req.idle_timeout.unwrap_or(client.inner.timeouts.idle),
            ..client.inner.timeouts
        };
        let deadline = Instant::now() + timeouts.total;
        let total_timeout = || Error::Timeout { provider: String::new(), phase: TimeoutPhase::Total, after: timeouts.total };
        // (boxed: resolution may run discovery, whose futures need not take room in this
        // generator for the whole answer)
        let cands = match tokio::time::timeout_at(deadline, Box::pin(resolve::candidates(&client, &req))).await {
            Ok(c) => honouring(&client, &req, c?)?,
            Err(_) => Err(total_timeout())?,
        };
        let single = cands.len() == 1;
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut tried: Vec<String> = Vec::new();
        // Login prompts of attempts that may still be followed by another provider: shown once
        // their attempt produces content, dropped when it falls back (its error keeps the login
        // URL), and shown before the final error when every provider failed. Otherwise the
        // caller would see one provider's prompt followed by another provider's answer.
        let mut held: Vec<Chunk> = Vec::new();
        let mut failed_prompts: Vec<Chunk> = Vec::new();

        'candidates: for (cand, plan) in &cands {
            let info = cand.entry.info();
            let name = info.name.clone();
            tried.push(name.clone());
            let mut preq = match request_for(&client, &req, cand) {
                Ok(r) => r,
                Err(e) => {
                    attempts.push(Attempt { provider: name.clone(), model: cand.model.clone(), error: Box::new(e.with_provider(&name)) });
                    continue 'candidates;
                }
            };
            let emulated = emulation::rewrite(&mut preq, plan);
            let shown_model = if cand.model.is_empty() { info.default_model.clone() } else { cand.model.clone() };
            let Some(mut watch) = client.inner.health.admit(&name, &shown_model, cand.explicit) else {
                attempts.push(Attempt { provider: name.clone(), model: shown_model, error: Box::new(health::probing(&name)) });
                continue 'candidates;
            };
            yield Chunk::Provider(ProviderInfoChunk {
                provider: name.clone(),
                label: info.label.clone(),
                url: info.url.clone(),
                model: shown_model.clone(),
                ignored_params: plan.ignored.clone(),
            });
            let mut retries = 0u32;
            loop {
                let ctx = client.call_context(timeouts, deadline, req.proxy.as_ref());
                let mut stream = cand.entry.provider.chat(preq.clone(), ctx);
                if let Some(spec) = &emulated {
                    stream = emulation::wrap(stream, spec.clone(), name.clone());
                }
                let mut started = false;
                // one timer for the whole attempt (not one per chunk)
                let mut expiry = std::pin::pin!(tokio::time::sleep_until(deadline));
                let failure: Error = loop {
                    let next = tokio::select! {
                        biased;
                        n = stream.next() => n,
                        () = &mut expiry => Some(Err(total_timeout())),
                    };
                    match next {
                        None if started => {
                            watch.finished();
                            return;
                        }
                        None => {
                            tracing::debug!(provider = %name, "provider finished without content");
                            failed_prompts.append(&mut held);
                            continue 'candidates;
                        }
                        Some(Ok(chunk)) => {
                            if !started && chunk.is_content() {
                                started = true;
                                watch.content();
                            }
                            let chunk = match chunk {
                                Chunk::Conversation(state) => Chunk::Conversation(merge_state(req.conversation.as_ref(), &name, state)),
                                Chunk::LoginRequired { .. } if !single && !started => {
                                    held.push(chunk);
                                    continue;
                                }
                                other => other,
                            };
                            if started {
                                for prompt in held.drain(..) {
                                    yield prompt;
                                }
                            }
                            yield chunk;
                        }
                        Some(Err(e)) => break e.with_provider(&name),
                    }
                };
                failed_prompts.append(&mut held);
                if !started {
                    watch.failed(&failure);
                }
                if started {
                    // output already reached the caller: another attempt would duplicate it
                    Err(failure)?;
                    return;
                }
                match failure.action() {
                    Action::GiveUp => {
                        for prompt in failed_prompts.drain(..) {
                            yield prompt;
                        }
                        Err(failure)?;
                        return;
                    }
                    Action::RetryAfter(delay) if retries < client.inner.max_retries && Instant::now() + delay < deadline => {
                        retries += 1;
                        tracing::debug!(provider = %name, error = %failure, ?delay, "retrying");
                        tokio::time::sleep(delay).await;
                    }
                    _ => {
                        tracing::debug!(provider = %name, error = %failure, "falling back");
                        let timed_out = matches!(failure, Error::Timeout { phase: TimeoutPhase::Total, .. });
                        attempts.push(Attempt { provider: name.clone(), model: shown_model.clone(), error: Box::new(failure) });
                        if timed_out {
                            break 'candidates;
                        }
                        continue 'candidates;
                    }
                }
            }
        }
        for prompt in failed_prompts {
            yield prompt;
        }
        if !attempts.is_empty() && cands.iter().all(|(c, _)| c.unlisted) {
            // nobody lists the model: the servers tried because their discovery failed could
            // not serve it either
            Err(unlisted_failure(&req.model, &attempts))?;
        }
        if single && attempts.len() == 1 {
            if let Some(a) = attempts.pop() {
                Err(*a.error)?;
            }
        }
        if attempts.is_empty() {
            Err(Error::NoResponse { tried })?;
        }
        Err(Error::AllFailed { attempts })?;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_composite() {
        let prev = Conversation(serde_json::json!({"a": {"x": 1}, "b": {"y": 2}}));
        assert_eq!(
            provider_state(Some(&prev), "a").map(|c| c.0),
            Some(serde_json::json!({"x": 1}))
        );
        let merged = merge_state(Some(&prev), "a", Conversation(serde_json::json!({"x": 3})));
        assert_eq!(merged.0, serde_json::json!({"a": {"x": 3}, "b": {"y": 2}}));
        assert_eq!(provider_state(None, "a"), None);
    }
}
