//! Usage per gateway key, model and provider (requests, errors, tokens in and out), counted
//! once per request when its access line is written, and served by `GET /v1/usage` to admin
//! keys. With Redis the counts of every replica add up in one hash, and `/v1/usage` reads it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use http::{Response, StatusCode};
use serde::Serialize;

use crate::body::{self, Body};
use crate::error::ApiError;
use crate::keys::Caller;
use crate::redis_client::RedisClient;

/// Separates the parts of a Redis usage field (never in a key name, model id or provider).
const SEP: char = '\u{1f}';

/// The counts of one (key, model, provider).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Counts {
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Counts {
    fn add(&mut self, metric: &str, n: u64) {
        let slot = match metric {
            "requests" => &mut self.requests,
            "errors" => &mut self.errors,
            "input_tokens" => &mut self.input_tokens,
            "output_tokens" => &mut self.output_tokens,
            _ => return,
        };
        *slot = slot.saturating_add(n);
    }
}

type Table = BTreeMap<(String, String, String), Counts>;

/// String → value.
type By<V> = HashMap<String, V>;

/// Values by three strings, found without allocating once they exist (one read lock).
pub(crate) struct Labels3<V> {
    map: RwLock<By<By<By<V>>>>,
}

impl<V: Clone> Labels3<V> {
    pub fn new() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The value of `(a, b, c)`, made by `make` the first time.
    pub fn get(&self, a: &str, b: &str, c: &str, make: impl FnOnce() -> V) -> V {
        {
            let m = self.map.read().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = m.get(a).and_then(|m| m.get(b)).and_then(|m| m.get(c)) {
                return v.clone();
            }
        }
        let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
        m.entry(a.to_owned())
            .or_default()
            .entry(b.to_owned())
            .or_default()
            .entry(c.to_owned())
            .or_insert_with(make)
            .clone()
    }

    /// Every entry.
    pub fn each(&self, mut f: impl FnMut(&str, &str, &str, &V)) {
        let m = self.map.read().unwrap_or_else(|p| p.into_inner());
        for (a, m) in m.iter() {
            for (b, m) in m {
                for (c, v) in m {
                    f(a, b, c, v);
                }
            }
        }
    }
}

/// The counts of one (key, model, provider) in this process.
#[derive(Default)]
struct Atomics([AtomicU64; 4]);

/// The usage counters of a gateway.
pub(crate) struct Usage {
    local: Labels3<Arc<Atomics>>,
    redis: Option<RedisClient>,
}

/// One request's usage.
pub(crate) struct Record<'a> {
    pub key: &'a str,
    pub model: &'a str,
    pub provider: &'a str,
    pub error: bool,
    pub tokens: Option<(u64, u64)>,
}

impl Record<'_> {
    /// The counters, in the order of [`Record::increments`].
    const METRICS: [&'static str; 4] = ["requests", "errors", "input_tokens", "output_tokens"];

    fn increments(&self) -> [(&'static str, u64); 4] {
        let (i, o) = self.tokens.unwrap_or_default();
        let n = [1, u64::from(self.error), i, o];
        [0, 1, 2, 3].map(|k| (Self::METRICS[k], n[k]))
    }
}

impl Usage {
    pub fn new(redis: Option<RedisClient>) -> Self {
        Self {
            local: Labels3::new(),
            redis,
        }
    }

    /// Counts one request.
    pub fn record(&self, r: &Record<'_>) {
        let incs = r.increments();
        if let Some(redis) = &self.redis {
            let fields = incs
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(m, n)| {
                    (
                        format!("{}{SEP}{}{SEP}{}{SEP}{m}", r.key, r.model, r.provider),
                        *n,
                    )
                })
                .collect();
            redis.spawn_usage(fields);
            return;
        }
        let slot = self.local.get(r.key, r.model, r.provider, Arc::default);
        for (a, (_, n)) in slot.0.iter().zip(incs) {
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Every count: this process's, or every replica's through Redis.
    async fn table(&self) -> Result<Table, ApiError> {
        let Some(redis) = &self.redis else {
            let mut t = Table::new();
            self.local.each(|k, m, p, a| {
                let c = t.entry((k.into(), m.into(), p.into())).or_default();
                for (metric, n) in Record::METRICS.iter().zip(&a.0) {
                    c.add(metric, n.load(Ordering::Relaxed));
                }
            });
            return Ok(t);
        };
        let fields = redis.usage().await.map_err(|e| {
            tracing::warn!(error = %e, "usage unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "usage_unavailable",
                "usage is kept in Redis, which cannot be reached right now; try again shortly",
            )
        })?;
        let mut t = Table::new();
        for (field, n) in fields {
            let mut parts = field.split(SEP);
            if let (Some(k), Some(m), Some(p), Some(metric), None) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) {
                t.entry((k.into(), m.into(), p.into()))
                    .or_default()
                    .add(metric, n);
            }
        }
        Ok(t)
    }
}

#[derive(Serialize)]
struct Row<'a> {
    key: &'a str,
    model: &'a str,
    provider: &'a str,
    #[serde(flatten)]
    counts: &'a Counts,
}

#[derive(Serialize)]
struct UsageList<'a> {
    object: &'static str,
    data: Vec<Row<'a>>,
}

/// The 403 of an admin-only route.
pub(crate) fn admin_required(route: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "permission_error",
        "admin_key_required",
        format!("{route} needs an admin gateway key (`admin = true` in its `[[keys]]` entry)"),
    )
}

/// `GET /v1/usage`: needs an admin key.
pub(crate) async fn respond(usage: &Usage, caller: &Caller) -> Response<Body> {
    if !caller.as_ref().is_some_and(|c| c.config.admin) {
        return body::error(&admin_required("GET /v1/usage"));
    }
    let table = match usage.table().await {
        Ok(t) => t,
        Err(e) => return body::error(&e),
    };
    let data = table
        .iter()
        .map(|((key, model, provider), counts)| Row {
            key,
            model,
            provider,
            counts,
        })
        .collect();
    let list = UsageList {
        object: "list",
        data,
    };
    body::json(StatusCode::OK, &list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn usage_adds_up_per_key_model_and_provider() {
        let u = Usage::new(None);
        let r = |key, error, tokens| Record {
            key,
            model: "m",
            provider: "p",
            error,
            tokens,
        };
        u.record(&r("alice", false, Some((3, 5))));
        u.record(&r("alice", true, None));
        u.record(&r("bob", false, Some((1, 1))));
        let t = u.table().await.expect("local");
        let alice = &t[&("alice".into(), "m".into(), "p".into())];
        assert_eq!(
            *alice,
            Counts {
                requests: 2,
                errors: 1,
                input_tokens: 3,
                output_tokens: 5
            }
        );
        assert_eq!(t.len(), 2);
    }
}
