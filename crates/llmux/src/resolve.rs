//! Resolution: from a request's provider / model strings to an ordered list of candidates.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use llmux_core::{ChatRequest, Error, Result};

use crate::client::{Client, Entry};
use crate::health::BreakerState;

/// How long a routing result that needed model discovery is fresh: as long as a provider
/// remembers a failed discovery before it tries again. A stale result is still used, while one
/// background task runs discovery again and replaces it, so no request waits for discovery of a
/// model that was already routed (a provider whose discovery fails can take seconds: DNS or
/// connect timeouts). A provider whose discovery recovers joins the routing for the model within
/// about twice this time.
const ROUTE_TTL: Duration = llmux_core::provider::DISCOVERY_RETRY_AFTER;
/// Most models remembered (model ids come from callers: the cache must stay bounded).
const ROUTE_CACHE_MAX: usize = 256;

/// The providers serving a model that no enabled provider lists statically, found by running
/// discovery on every enabled provider. Discovery (a boxed future and list copies per provider,
/// network on a cache miss) would otherwise run on every request for such a model, e.g. every
/// request to an OpenAI-compatible upstream whose models are only known from its `/models`.
#[derive(Default)]
pub(crate) struct RouteCache {
    map: Mutex<HashMap<String, Route>>,
}

struct Route {
    at: Instant,
    /// The providers, each with whether it is only tried because its discovery failed.
    entries: Vec<(Entry, bool)>,
    /// A background refresh is under way.
    refreshing: bool,
}

impl RouteCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Route>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached providers of `model`, and whether the caller should refresh them (stale, and
    /// no refresh under way: the caller now owns it).
    fn get(&self, model: &str) -> Option<(Vec<(Entry, bool)>, bool)> {
        let mut map = self.lock();
        let route = map.get_mut(model)?;
        let refresh = !route.refreshing && route.at.elapsed() >= ROUTE_TTL;
        route.refreshing |= refresh;
        Some((route.entries.clone(), refresh))
    }

    /// Stores (or, for an empty list, forgets) the providers of `model`.
    fn put(&self, model: &str, entries: Vec<(Entry, bool)>) {
        let mut map = self.lock();
        if entries.is_empty() {
            map.remove(model);
            return;
        }
        if map.len() >= ROUTE_CACHE_MAX && !map.contains_key(model) {
            map.retain(|_, r| r.at.elapsed() < ROUTE_TTL);
            if map.len() >= ROUTE_CACHE_MAX {
                map.clear();
            }
        }
        let route = Route {
            at: Instant::now(),
            entries,
            refreshing: false,
        };
        map.insert(model.to_owned(), route);
    }
}

/// Runs discovery on every enabled provider: the ones serving `model`, and every model id found.
///
/// When no provider serves it, a provider whose discovery failed and that lists no models of its
/// own (an OpenAI-compatible server: llama.cpp's `/v1/models` blocks while it generates) may:
/// it is tried (marked `true`, "unlisted"), rather than the model being reported as served by
/// nobody.
async fn discover_route(client: &Client, model: &str) -> (Vec<(Entry, bool)>, Vec<String>) {
    let mut serving = Vec::new();
    let mut maybe = Vec::new();
    let mut known = Vec::new();
    for (e, discovered) in client.discover_all(true).await {
        match discovered {
            Ok(found) => {
                if e.info().serves(model, &found) {
                    serving.push(e);
                }
                known.extend(found);
            }
            Err(err) if e.info().all_models().is_empty() => {
                tracing::info!(provider = %e.info().name, error = %err, model,
                    "model discovery failed; trying the provider for the model anyway");
                maybe.push(e);
            }
            Err(_) => {}
        }
    }
    let route = if serving.is_empty() {
        maybe.into_iter().map(|e| (e, true)).collect()
    } else {
        serving.into_iter().map(|e| (e, false)).collect()
    };
    (route, known)
}

/// Refreshes the cached route of `model` in the background (inline outside a tokio runtime).
fn refresh_route(client: &Client, model: &str) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        // no runtime to run it on: keep the stale route, try again on the next request
        if let Some(r) = client.inner.routes.lock().get_mut(model) {
            r.refreshing = false;
        }
        return;
    };
    let (client, model) = (client.clone(), model.to_owned());
    rt.spawn(async move {
        let (entries, _) = discover_route(&client, &model).await;
        client.inner.routes.put(&model, entries);
    });
}

/// One provider to try, with the model to ask it for.
#[derive(Clone)]
pub(crate) struct Candidate {
    pub entry: Entry,
    pub model: String,
    /// Chosen by name (explicitly): gets the caller's credentials, skips the `working` check.
    pub explicit: bool,
    /// Tried only because its model discovery failed (it does not list the model).
    pub unlisted: bool,
}

/// Orders candidates: explicit priority first, then (optionally shuffled) the rest.
fn order(client: &Client, mut list: Vec<Candidate>) -> Vec<Candidate> {
    list.sort_by_key(|c| c.entry.rank);
    if client.inner.shuffle {
        use rand::seq::SliceRandom;
        let split = list
            .iter()
            .position(|c| c.entry.rank == usize::MAX)
            .unwrap_or(list.len());
        list[split..].shuffle(&mut rand::rng());
    }
    by_health(client, list)
}

/// The model a candidate's health is kept under (its default model when it asks for none).
pub(crate) fn health_model(cand: &Candidate) -> &str {
    if cand.model.is_empty() {
        &cand.entry.info().default_model
    } else {
        &cand.model
    }
}

/// Orders candidates by breaker state, keeping the priority order within a state: closed ones
/// and half-open ones whose probe is free first (a half-open entry is probed at its priority
/// place, by whichever request claims the probe first: see `Health::admit`), then open ones
/// (and half-open ones being probed), which stay only when nothing else serves the model.
fn by_health(client: &Client, list: Vec<Candidate>) -> Vec<Candidate> {
    let states = client.inner.health.routing_states(
        list.iter()
            .map(|c| (c.entry.info().name.as_str(), health_model(c))),
    );
    if states.iter().all(|s| *s == BreakerState::Closed) {
        return list;
    }
    let mut ranked: Vec<(BreakerState, Candidate)> = states.into_iter().zip(list).collect();
    ranked.sort_by_key(|(s, _)| *s == BreakerState::Open);
    if ranked.iter().any(|(s, _)| *s != BreakerState::Open) {
        ranked.retain(|(s, _)| *s != BreakerState::Open);
    }
    ranked.into_iter().map(|(_, c)| c).collect()
}

pub(crate) fn provider_not_found(client: &Client, name: &str) -> Error {
    let names: Vec<String> = client
        .inner
        .entries
        .iter()
        .flat_map(|e| [e.info().name.clone(), e.info().g4f_name.clone()])
        .filter(|n| !n.is_empty())
        .collect();
    Error::ProviderNotFound {
        name: name.to_owned(),
        suggestions: close_matches(name, &names),
    }
}

/// Resolves the request to candidates, in the order they should be tried.
pub(crate) async fn candidates(client: &Client, req: &ChatRequest) -> Result<Vec<Candidate>> {
    let mut model = req.model.trim().to_owned();
    if let Some(target) = client
        .inner
        .aliases
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&model))
        .map(|(_, v)| v.clone())
    {
        model = target;
    }

    // 1. explicit provider
    if let Some(name) = req
        .provider
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let entry = client
            .find(name)
            .ok_or_else(|| provider_not_found(client, name))?;
        let model = match model.split_once(':') {
            Some((p, m))
                if client
                    .find(p)
                    .is_some_and(|e| e.info().name == entry.info().name) =>
            {
                m.to_owned()
            }
            _ => model,
        };
        return Ok(vec![Candidate {
            entry: entry.clone(),
            model,
            explicit: true,
            unlisted: false,
        }]);
    }

    // 2. `provider:model`, 3. a provider name as the model
    if let Some((p, m)) = model.split_once(':') {
        if let Some(entry) = client.find(p) {
            return Ok(vec![Candidate {
                entry: entry.clone(),
                model: m.to_owned(),
                explicit: true,
                unlisted: false,
            }]);
        }
    }
    if let Some(entry) = client.find(&model) {
        return Ok(vec![Candidate {
            entry: entry.clone(),
            model: String::new(),
            explicit: true,
            unlisted: false,
        }]);
    }

    // 4. every enabled provider serving the model (or, for an empty model, its default)
    if model.is_empty() {
        let list = client
            .inner
            .entries
            .iter()
            .filter(|e| e.enabled && !e.info().default_model.is_empty())
            .map(|e| Candidate {
                entry: e.clone(),
                model: String::new(),
                explicit: false,
                unlisted: false,
            })
            .collect::<Vec<_>>();
        if list.is_empty() {
            return Err(Error::NoProviderForModel {
                model: "(default)".into(),
                suggestions: Vec::new(),
                note: String::new(),
            });
        }
        return Ok(order(client, list));
    }

    let mut list = Vec::new();
    let mut known: Vec<String> = Vec::new();
    // static metadata first; discovery only when no enabled provider lists the model statically
    for e in client.inner.entries.iter().filter(|e| e.enabled) {
        if e.info().serves(&model, &[]) {
            list.push(Candidate {
                entry: e.clone(),
                model: model.clone(),
                explicit: false,
                unlisted: false,
            });
        }
    }
    if list.is_empty() {
        let entries = match client.inner.routes.get(&model) {
            Some((entries, refresh)) => {
                if refresh {
                    refresh_route(client, &model);
                }
                entries
            }
            None => {
                let (entries, discovered) = discover_route(client, &model).await;
                known = discovered;
                client.inner.routes.put(&model, entries.clone());
                entries
            }
        };
        list = entries
            .into_iter()
            .map(|(entry, unlisted)| Candidate {
                entry,
                model: model.clone(),
                explicit: false,
                unlisted,
            })
            .collect();
    }
    if list.is_empty() {
        for e in &client.inner.entries {
            known.extend(e.info().all_models());
            known.extend(e.info().model_aliases.keys().cloned());
        }
        known.sort();
        known.dedup();
        return Err(Error::NoProviderForModel {
            suggestions: close_matches(&model, &known),
            model,
            note: String::new(),
        });
    }
    Ok(order(client, list))
}

/// Up to 5 names close to `needle`: containment either way, or a small edit distance.
pub(crate) fn close_matches(needle: &str, names: &[String]) -> Vec<String> {
    let n = needle.to_ascii_lowercase();
    let mut scored: Vec<(usize, &String)> = names
        .iter()
        .filter_map(|name| {
            let l = name.to_ascii_lowercase();
            if n.is_empty() {
                return None;
            }
            if l.contains(&n) || n.contains(&l) {
                return Some((0, name));
            }
            let d = edit_distance(&n, &l);
            (d <= 3.max(n.len() / 4)).then_some((d, name))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(5).map(|(_, s)| s.clone()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_routes_are_served_and_refreshed_once() {
        let cache = RouteCache::default();
        assert!(cache.get("m").is_none());
        let old = Instant::now()
            .checked_sub(ROUTE_TTL + Duration::from_secs(1))
            .expect("a past instant");
        cache.lock().insert(
            "m".into(),
            Route {
                at: old,
                entries: Vec::new(),
                refreshing: false,
            },
        );
        assert_eq!(cache.get("m").map(|(_, r)| r), Some(true), "stale: refresh");
        assert_eq!(
            cache.get("m").map(|(_, r)| r),
            Some(false),
            "one refresh at a time"
        );
        cache.put("m", Vec::new());
        assert!(
            cache.get("m").is_none(),
            "a model no provider serves is forgotten"
        );
    }

    #[test]
    fn suggestions() {
        let names: Vec<String> = ["gpt-4o", "gpt-4o-mini", "llama-3.3-70b", "phi-4"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(close_matches("gpt4o", &names)[0], "gpt-4o");
        assert!(close_matches("phi", &names).contains(&"phi-4".to_owned()));
        assert!(close_matches("zzzzzzzz", &names).is_empty());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
