//! Where responses are kept for `GET /v1/responses/{id}` and `previous_response_id`: the
//! [`ResponseStore`] trait and its default, the bounded in-memory [`MemoryStore`].

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use llmux::{Conversation, Message};
use llmux_openai::responses::ResponseObject;
use lru::LruCache;
use serde::{Deserialize, Serialize};

/// A stored response and what a follow-up needs to continue it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The response object, as `GET /v1/responses/{id}` returns it.
    pub response: ResponseObject,
    /// The whole conversation: earlier turns, this request's input (without its
    /// `instructions`) and the output, as chat messages.
    pub messages: Vec<Message>,
    /// The provider's conversation state, when it returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Conversation>,
}

/// Why the store could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "response store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// The future of a store operation.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A keeper of responses by id. Asynchronous so that a shared store (Redis) can implement it.
pub trait ResponseStore: Send + Sync {
    /// The response `id`, or `None` when unknown or expired.
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredResponse>>;
    /// Keeps `response` under its id (replacing an older one).
    fn put(&self, response: StoredResponse) -> StoreFuture<'_, ()>;
    /// Forgets `id`; `false` when it was unknown or expired.
    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;
}

/// Default of [`MemoryStore::with_max_bytes`]: 256 MiB.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// The in-memory store: at most `capacity` responses and [`DEFAULT_MAX_BYTES`] of them (their
/// JSON size; the least recently used go first), each for `ttl` after it was stored.
pub struct MemoryStore {
    ttl: Duration,
    max_bytes: usize,
    entries: Mutex<Entries>,
}

type Entry = (Instant, usize, StoredResponse);

/// The cache and the bytes it holds.
struct Entries {
    cache: LruCache<String, Entry>,
    bytes: usize,
}

impl Entries {
    fn pop(&mut self, id: &str) -> Option<Entry> {
        let e = self.cache.pop(id)?;
        self.bytes = self.bytes.saturating_sub(e.1);
        Some(e)
    }
}

impl MemoryStore {
    /// A store of at most `capacity` responses, each kept for `ttl`.
    pub fn new(capacity: NonZeroUsize, ttl: Duration) -> Self {
        Self {
            ttl,
            max_bytes: DEFAULT_MAX_BYTES,
            entries: Mutex::new(Entries {
                cache: LruCache::new(capacity),
                bytes: 0,
            }),
        }
    }

    /// Limits the JSON size of all stored responses together (a larger one is not stored).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // a panic while holding the lock cannot leave the cache half-updated
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_live(&self, id: &str, remove: bool) -> Option<StoredResponse> {
        let mut entries = self.lock();
        let expired = entries
            .cache
            .peek(id)
            .is_some_and(|(at, _, _)| at.elapsed() >= self.ttl);
        if expired || remove {
            return entries.pop(id).filter(|_| !expired).map(|(_, _, r)| r);
        }
        entries.cache.get(id).map(|(_, _, r)| r.clone())
    }

    /// Stores `response`, evicting the least recently used until it fits.
    fn insert(&self, response: StoredResponse) -> Result<(), StoreError> {
        let size = serde_json::to_vec(&response)
            .map_err(|e| StoreError(format!("cannot encode the response: {e}")))?
            .len();
        if size > self.max_bytes {
            return Err(StoreError(format!(
                "the response ({size} bytes with its conversation) is larger than the store's limit of {} bytes",
                self.max_bytes
            )));
        }
        let mut entries = self.lock();
        let id = response.response.id.clone();
        entries.pop(&id);
        while entries.bytes + size > self.max_bytes {
            let Some((_, (_, n, _))) = entries.cache.pop_lru() else {
                break;
            };
            entries.bytes = entries.bytes.saturating_sub(n);
        }
        if let Some((_, (_, n, _))) = entries.cache.push(id, (Instant::now(), size, response)) {
            entries.bytes = entries.bytes.saturating_sub(n);
        }
        entries.bytes += size;
        Ok(())
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.lock();
        f.debug_struct("MemoryStore")
            .field("ttl", &self.ttl)
            .field("len", &entries.cache.len())
            .field("capacity", &entries.cache.cap())
            .field("bytes", &entries.bytes)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl ResponseStore for MemoryStore {
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredResponse>> {
        let found = self.take_live(id, false);
        Box::pin(async move { Ok(found) })
    }

    fn put(&self, response: StoredResponse) -> StoreFuture<'_, ()> {
        let done = self.insert(response);
        Box::pin(async move { done })
    }

    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        let found = self.take_live(id, true).is_some();
        Box::pin(async move { Ok(found) })
    }
}

/// The shared store of replicas: each response as JSON under `llmux:resp:{id}` in Redis,
/// expiring after the store's TTL. When Redis cannot be reached, operations fail with a
/// [`StoreError`] (the routes answer 503) and work again once it is back.
pub(crate) struct RedisStore {
    client: crate::redis_client::RedisClient,
    ttl: Duration,
    max_bytes: usize,
}

impl RedisStore {
    pub(crate) fn new(client: crate::redis_client::RedisClient, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

fn unavailable(e: crate::redis_client::RedisError) -> StoreError {
    StoreError(e.to_string())
}

impl ResponseStore for RedisStore {
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredResponse>> {
        Box::pin(async move {
            let key = crate::redis_client::response_key(id);
            let Some(bytes) = self.client.get(&key).await.map_err(unavailable)? else {
                return Ok(None);
            };
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError(format!("stored response {id} is unreadable: {e}")))
        })
    }

    fn put(&self, response: StoredResponse) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let json = serde_json::to_vec(&response)
                .map_err(|e| StoreError(format!("cannot encode the response: {e}")))?;
            if json.len() > self.max_bytes {
                return Err(StoreError(format!(
                    "the response ({} bytes with its conversation) is larger than the store's limit of {} bytes",
                    json.len(),
                    self.max_bytes
                )));
            }
            let key = crate::redis_client::response_key(&response.response.id);
            self.client
                .set(&key, &json, self.ttl)
                .await
                .map_err(unavailable)
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let key = crate::redis_client::response_key(id);
            self.client.del(&key).await.map_err(unavailable)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux_openai::responses::{CreateResponse, into_chat_request};

    fn stored(id: &str) -> StoredResponse {
        let wire: CreateResponse =
            serde_json::from_str(r#"{"model":"m","input":"hi"}"#).expect("valid");
        let mut c = into_chat_request(wire, Vec::new(), false).expect("valid");
        c.response.id = id.into();
        StoredResponse {
            response: c.response,
            messages: c.conversation,
            state: None,
        }
    }

    fn block<T>(f: StoreFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
            .expect("store answers")
    }

    #[test]
    fn bounded_by_size_and_ttl() {
        let s = MemoryStore::new(NonZeroUsize::new(2).expect("2"), Duration::from_secs(60));
        for id in ["a", "b", "c"] {
            block(s.put(stored(id)));
        }
        assert!(block(s.get("a")).is_none(), "the oldest went first");
        assert_eq!(block(s.get("c")).map(|r| r.response.id), Some("c".into()));
        assert!(block(s.delete("b")));
        assert!(!block(s.delete("b")));
        assert!(block(s.get("b")).is_none());

        let s = MemoryStore::new(NonZeroUsize::new(2).expect("2"), Duration::from_millis(30));
        block(s.put(stored("x")));
        assert!(block(s.get("x")).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(block(s.get("x")).is_none(), "expired");
        assert!(!block(s.delete("x")));
    }

    #[test]
    fn bounded_by_bytes() {
        let one = serde_json::to_vec(&stored("a")).expect("json").len();
        let s = MemoryStore::new(NonZeroUsize::new(10).expect("10"), Duration::from_secs(60))
            .with_max_bytes(2 * one + one / 2);
        for id in ["a", "b", "c"] {
            block(s.put(stored(id)));
        }
        assert!(block(s.get("a")).is_none(), "evicted to fit");
        assert!(block(s.get("b")).is_some() && block(s.get("c")).is_some());
        let small = MemoryStore::new(NonZeroUsize::new(10).expect("10"), Duration::from_secs(60))
            .with_max_bytes(one / 2);
        let e = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(small.put(stored("big")))
            .expect_err("too large");
        assert!(e.0.contains("larger than"), "{e}");
    }
}
