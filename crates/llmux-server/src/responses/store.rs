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

/// The in-memory store: at most `capacity` responses (the least recently used go first), each
/// for `ttl` after it was stored.
pub struct MemoryStore {
    ttl: Duration,
    entries: Mutex<LruCache<String, (Instant, StoredResponse)>>,
}

impl MemoryStore {
    /// A store of at most `capacity` responses, each kept for `ttl`.
    pub fn new(capacity: NonZeroUsize, ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, (Instant, StoredResponse)>> {
        // a panic while holding the lock cannot leave the cache half-updated
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_live(&self, id: &str, remove: bool) -> Option<StoredResponse> {
        let mut entries = self.lock();
        let expired = entries
            .peek(id)
            .is_some_and(|(at, _)| at.elapsed() >= self.ttl);
        if expired || remove {
            return entries.pop(id).filter(|_| !expired).map(|(_, r)| r);
        }
        entries.get(id).map(|(_, r)| r.clone())
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.lock();
        f.debug_struct("MemoryStore")
            .field("ttl", &self.ttl)
            .field("len", &entries.len())
            .field("capacity", &entries.cap())
            .finish()
    }
}

impl ResponseStore for MemoryStore {
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredResponse>> {
        let found = self.take_live(id, false);
        Box::pin(async move { Ok(found) })
    }

    fn put(&self, response: StoredResponse) -> StoreFuture<'_, ()> {
        self.lock()
            .put(response.response.id.clone(), (Instant::now(), response));
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        let found = self.take_live(id, true).is_some();
        Box::pin(async move { Ok(found) })
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
}
