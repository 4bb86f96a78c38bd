//! The gateway's Redis connection ([`RedisConfig`]): shared rate limits, the shared Responses
//! store, the shared response cache and usage counters of replicas.
//!
//! One multiplexed connection per process (`redis`'s `ConnectionManager`, which reconnects by
//! itself), opened on first use. Every command has a deadline ([`RedisConfig::timeout`]), so a
//! Redis that is down or slow costs a request at most that long and never hangs it; callers
//! decide what a failure means (see the crate docs, "Replicas").

use std::sync::Arc;
use std::time::Duration;

use llmux_core::Secret;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::keys::KeyConfig;
use crate::limits::Limit;

/// Key prefix of everything the gateway keeps in Redis.
const PREFIX: &str = "llmux";
/// How long a concurrency lease lives if its replica never releases it (a crash).
const LEASE_TTL: Duration = Duration::from_secs(15 * 60);

/// Where replicas share their state.
#[derive(Clone)]
pub struct RedisConfig {
    url: Secret,
    /// Deadline of every Redis command (default 500 ms).
    pub timeout: Duration,
    /// When Redis cannot be reached: let requests of limited keys through (`true`, the
    /// default) or refuse them with 503 `rate_limiter_unavailable` (`false`).
    pub limits_fail_open: bool,
}

impl RedisConfig {
    /// A configuration for `url` (`redis://[user:password@]HOST:PORT/DB` or
    /// `redis+unix:///path`); checked here, connected on first use.
    pub fn new(url: &str) -> Result<Self, String> {
        redis::Client::open(url).map_err(|e| {
            format!(
                "invalid Redis URL (expected redis://HOST:PORT/DB): {:?}",
                e.kind()
            )
        })?;
        Ok(Self {
            url: Secret::new(url),
            timeout: Duration::from_millis(500),
            limits_fail_open: true,
        })
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"***")
            .field("timeout", &self.timeout)
            .field("limits_fail_open", &self.limits_fail_open)
            .finish()
    }
}

/// Why a Redis command failed (never contains the URL or its password).
#[derive(Debug, Clone)]
pub(crate) struct RedisError(pub String);

impl std::fmt::Display for RedisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redis: {}", self.0)
    }
}

impl From<redis::RedisError> for RedisError {
    fn from(e: redis::RedisError) -> Self {
        // the kind and the server's message; the client's Display may include the address
        Self(match e.detail() {
            Some(d) => format!("{:?}: {d}", e.kind()),
            None => format!("{:?}", e.kind()),
        })
    }
}

/// What one limit check found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LimitCheck {
    /// The limit that refused the request, if one did.
    pub refused: Option<Limit>,
    /// Requests counted in this window (this one included when admitted).
    pub requests: u64,
    /// Tokens counted in this window.
    pub tokens: u64,
    /// Time until the window ends.
    pub reset: Duration,
    /// The concurrency lease taken: (set key, lease id).
    pub lease: Option<(String, String)>,
}

/// Checks and counts one request of a key, atomically, on Redis's clock. KEYS[1] = the key's
/// base name; ARGV = rpm, tpm, concurrency (0 = none), lease id, lease ttl (ms). Returns
/// {refused (0 none, 1 requests, 2 tokens, 3 concurrency), requests, tokens, reset ms}.
const LIMIT_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = math.floor(now / 60000)
local reset = (window + 1) * 60000 - now
local rk = KEYS[1] .. ':r:' .. window
local tk = KEYS[1] .. ':t:' .. window
local ck = KEYS[1] .. ':c'
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local req = tonumber(redis.call('GET', rk) or '0')
local tok = tonumber(redis.call('GET', tk) or '0')
if tpm > 0 and tok >= tpm then return {2, req, tok, reset} end
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', ck, '-inf', now)
  if redis.call('ZCARD', ck) >= conc then return {3, req, tok, reset} end
end
if rpm > 0 then
  if req >= rpm then return {1, req, tok, reset} end
  req = redis.call('INCR', rk)
  redis.call('PEXPIRE', rk, reset + 1000)
end
if conc > 0 then
  redis.call('ZADD', ck, now + tonumber(ARGV[5]), ARGV[4])
  redis.call('PEXPIRE', ck, tonumber(ARGV[5]))
end
return {0, req, tok, reset}
";

/// Adds ARGV[1] tokens to the current window of KEYS[1].
const TOKENS_SCRIPT: &str = r"
local t = redis.call('TIME')
local window = math.floor((tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) / 60000)
local tk = KEYS[1] .. ':t:' .. window
redis.call('INCRBY', tk, ARGV[1])
redis.call('PEXPIRE', tk, 121000)
return 1
";

/// A handle on the gateway's Redis (cheap to clone).
#[derive(Clone)]
pub(crate) struct RedisClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    timeout: Duration,
    limit: redis::Script,
    tokens: redis::Script,
}

impl RedisClient {
    /// A client for `config` (nothing is connected yet).
    pub fn new(config: &RedisConfig) -> Result<Self, RedisError> {
        let client = redis::Client::open(config.url.expose())?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                conn: OnceCell::new(),
                timeout: config.timeout,
                limit: redis::Script::new(LIMIT_SCRIPT),
                tokens: redis::Script::new(TOKENS_SCRIPT),
            }),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, RedisError> {
        let i = &self.inner;
        let c = i
            .conn
            .get_or_try_init(|| async {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(i.timeout))
                    .set_response_timeout(Some(i.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                ConnectionManager::new_lazy_with_config(i.client.clone(), cfg)
            })
            .await?;
        Ok(c.clone())
    }

    /// `fut` within the deadline.
    async fn within<T>(
        &self,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(self.inner.timeout, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(RedisError(format!(
                "no answer within {} ms",
                self.inner.timeout.as_millis()
            ))),
        }
    }

    /// Runs `cmd` within the deadline.
    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        let mut c = self.conn().await?;
        self.within(cmd.query_async(&mut c)).await
    }

    /// Runs a script within the deadline.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        let mut c = self.conn().await?;
        self.within(inv.invoke_async(&mut c)).await
    }

    /// Runs `fut` in the background (when a runtime is there), bounded by the deadline.
    fn spawn(&self, fut: impl Future<Output = Result<(), RedisError>> + Send + 'static) {
        let deadline = self.inner.timeout * 2;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                match tokio::time::timeout(deadline, fut).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "Redis update lost"),
                    Err(_) => tracing::warn!("Redis update lost: no answer in time"),
                }
            });
        }
    }

    fn limit_key(name: &str) -> String {
        format!("{PREFIX}:rl:{{{name}}}")
    }

    /// Checks and counts one request of `key` (one round trip).
    pub async fn check_limits(&self, key: &KeyConfig) -> Result<LimitCheck, RedisError> {
        let base = Self::limit_key(&key.name);
        let lease = llmux_core::random::random_alnum(16);
        let conc = key.concurrency.unwrap_or(0);
        let mut inv = self.inner.limit.key(&base);
        inv.arg(key.rpm.unwrap_or(0))
            .arg(key.tpm.unwrap_or(0))
            .arg(conc)
            .arg(&lease)
            .arg(LEASE_TTL.as_millis() as u64);
        let (code, requests, tokens, reset): (u8, u64, u64, u64) = self.invoke(&inv).await?;
        let refused = match code {
            0 => None,
            1 => Some(Limit::Requests),
            2 => Some(Limit::Tokens),
            _ => Some(Limit::Concurrency),
        };
        Ok(LimitCheck {
            refused,
            requests,
            tokens,
            reset: Duration::from_millis(reset),
            lease: (refused.is_none() && conc > 0).then(|| (format!("{base}:c"), lease)),
        })
    }

    /// Counts `n` tokens of key `name` (in the background).
    pub fn spawn_add_tokens(&self, name: &str, n: u64) {
        let this = self.clone();
        let base = Self::limit_key(name);
        self.spawn(async move {
            let mut inv = this.inner.tokens.key(&base);
            inv.arg(n);
            this.invoke::<i64>(&inv).await.map(|_| ())
        });
    }

    /// Frees a concurrency lease (in the background).
    pub fn spawn_release(&self, set: &str, lease: &str) {
        let this = self.clone();
        let cmd = redis::cmd("ZREM").arg(set).arg(lease).to_owned();
        self.spawn(async move { this.run::<i64>(&cmd).await.map(|_| ()) });
    }

    /// The bytes under `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RedisError> {
        self.run(redis::cmd("GET").arg(key)).await
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), RedisError> {
        let ms = ttl.as_millis().max(1) as u64;
        self.run(redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ms))
            .await
    }

    /// Deletes `key`; `true` when it existed.
    pub async fn del(&self, key: &str) -> Result<bool, RedisError> {
        let n: i64 = self.run(redis::cmd("DEL").arg(key)).await?;
        Ok(n > 0)
    }

    /// Adds usage counts (field → increment) to the shared usage hash (in the background).
    pub fn spawn_usage(&self, fields: Vec<(String, u64)>) {
        let this = self.clone();
        self.spawn(async move {
            let mut pipe = redis::pipe();
            for (f, n) in &fields {
                pipe.cmd("HINCRBY").arg(usage_key()).arg(f).arg(*n).ignore();
            }
            let mut c = this.conn().await?;
            pipe.query_async::<()>(&mut c)
                .await
                .map_err(RedisError::from)
        });
    }

    /// Every usage count of every replica.
    pub async fn usage(&self) -> Result<Vec<(String, u64)>, RedisError> {
        self.run(redis::cmd("HGETALL").arg(usage_key())).await
    }
}

impl RedisClient {
    /// Writes this replica's open breakers and reads everyone's (one round trip).
    pub async fn exchange_breakers(
        &self,
        mine: &[(String, String)],
    ) -> Result<Vec<(String, String)>, RedisError> {
        let key = format!("{PREFIX}:breakers");
        let mut pipe = redis::pipe();
        for (field, value) in mine {
            pipe.cmd("HSET").arg(&key).arg(field).arg(value).ignore();
        }
        pipe.cmd("HGETALL").arg(&key);
        let mut c = self.conn().await?;
        let (all,) = self
            .within(pipe.query_async::<(Vec<(String, String)>,)>(&mut c))
            .await?;
        Ok(all)
    }

    /// Removes expired breaker fields (in the background).
    pub fn spawn_forget_breakers(&self, fields: Vec<String>) {
        let this = self.clone();
        let cmd = redis::cmd("HDEL")
            .arg(format!("{PREFIX}:breakers"))
            .arg(fields)
            .to_owned();
        self.spawn(async move { this.run::<i64>(&cmd).await.map(|_| ()) });
    }
}

/// The hash of usage counters.
fn usage_key() -> String {
    format!("{PREFIX}:usage")
}

/// Where a stored response lives.
pub(crate) fn response_key(id: &str) -> String {
    format!("{PREFIX}:resp:{id}")
}
