//! Gateway keys: who may call the gateway, which models and providers each key may use, its
//! limits, and whether it may read usage ([`KeyConfig`]).
//!
//! A presented key is hashed with SHA-256 and compared with every configured digest in
//! constant time (no early exit), so neither the key nor its length leaks through timing.
//! Keys are never logged: the access log and the usage counters name the key by its `name`.

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, StatusCode};
use llmux_core::Secret;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::error::ApiError;

/// The secret part of a [`KeyConfig`]: the key itself, or its SHA-256 (what
/// `llmux keys hash` prints), so that a config file need not hold the key.
#[derive(Clone)]
pub enum KeySecret {
    /// The key as clients send it.
    Plain(Secret),
    /// The SHA-256 of the key (32 bytes).
    Sha256([u8; 32]),
}

impl KeySecret {
    /// Parses a hex SHA-256 digest (64 hex digits, any case; an optional `sha256:` prefix).
    pub fn from_hex(hex: &str) -> Result<Self, String> {
        let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
        if hex.len() != 64 {
            return Err(format!(
                "a key hash is 64 hex digits (`llmux keys hash` prints one), not {} characters",
                hex.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let byte = std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or("a key hash may contain only hex digits")?;
            out[i] = byte;
        }
        Ok(Self::Sha256(out))
    }

    fn digest(&self) -> [u8; 32] {
        match self {
            Self::Plain(k) => Sha256::digest(k.expose().as_bytes()).into(),
            Self::Sha256(d) => *d,
        }
    }
}

impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "Plain(***)",
            Self::Sha256(_) => "Sha256(***)",
        })
    }
}

/// The hex SHA-256 of `key`: what a `[[keys]]` entry's `sha256` holds.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One gateway key (`[[keys]]` in the CLI's config file).
///
/// ```
/// use llmux_server::{KeyConfig, KeySecret};
/// let key = KeyConfig {
///     rpm: Some(60),
///     models: vec!["gpt-4o*".into()],
///     ..KeyConfig::new("alice", KeySecret::Plain("sk-alice".into()))
/// };
/// assert!(!format!("{key:?}").contains("sk-alice"));
/// ```
#[derive(Clone, Debug)]
pub struct KeyConfig {
    /// Name in logs, metrics and `/v1/usage` (never the key).
    pub name: String,
    /// The key or its hash.
    pub key: KeySecret,
    /// Models this key may ask for (exact ids, or a prefix ending in `*`); empty = all.
    pub models: Vec<String>,
    /// Providers this key may use; empty = all. A key limited to providers must name one
    /// (`provider` or a `provider:model` prefix) unless it is limited to exactly one.
    pub providers: Vec<String>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens (prompt + completion) per minute. Checked before a request, counted after it.
    pub tpm: Option<u64>,
    /// Requests in flight at once (a stream counts until it ends).
    pub concurrency: Option<u32>,
    /// When the key stops working.
    pub expires: Option<SystemTime>,
    /// May read `GET /v1/usage`.
    pub admin: bool,
}

impl KeyConfig {
    /// A key with no restrictions and no limits.
    pub fn new(name: impl Into<String>, key: KeySecret) -> Self {
        Self {
            name: name.into(),
            key,
            models: Vec::new(),
            providers: Vec::new(),
            rpm: None,
            tpm: None,
            concurrency: None,
            expires: None,
            admin: false,
        }
    }

    /// True when any limit is set.
    pub(crate) fn limited(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.concurrency.is_some()
    }

    /// Whether this key may ask for `model` (the id as sent, `provider:` prefix removed).
    pub(crate) fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty()
            || self.models.iter().any(|m| match m.strip_suffix('*') {
                Some(prefix) => model.starts_with(prefix),
                None => m == model,
            })
    }
}

/// A known key, with its digest computed once.
pub(crate) struct Entry {
    pub config: KeyConfig,
    digest: [u8; 32],
}

/// The configured keys.
#[derive(Default)]
pub(crate) struct Keyring {
    entries: Vec<Arc<Entry>>,
}

/// Who is calling: `None` when the gateway has no keys.
pub(crate) type Caller = Option<Arc<Entry>>;

impl Keyring {
    /// The keys of a configuration: `keys`, plus the single `api_key` as an unlimited admin
    /// key named `default`.
    pub fn new(api_key: Option<&Secret>, keys: &[KeyConfig]) -> Self {
        let single = api_key.filter(|k| !k.is_empty()).map(|k| KeyConfig {
            admin: true,
            ..KeyConfig::new("default", KeySecret::Plain(k.clone()))
        });
        let entries = keys
            .iter()
            .cloned()
            .chain(single)
            .map(|config| {
                Arc::new(Entry {
                    digest: config.key.digest(),
                    config,
                })
            })
            .collect();
        Self { entries }
    }

    /// Every key.
    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    /// The caller of a request: its key from `x-api-key`, `g4f-api-key` or
    /// `Authorization: Bearer`, matched in constant time; 401 when missing, unknown or expired.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        let Some(presented) = presented_key(headers) else {
            return Err(unauthorized(
                "missing_api_key",
                "this gateway requires an API key: send `Authorization: Bearer <key>` (or an `x-api-key` header)",
            ));
        };
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found: Option<&Arc<Entry>> = None;
        for e in &self.entries {
            // every entry is compared: the time does not depend on which one matches
            let hit: Choice = digest.ct_eq(&e.digest);
            if bool::from(hit) && found.is_none() {
                found = Some(e);
            }
        }
        let Some(entry) = found else {
            return Err(unauthorized(
                "invalid_api_key",
                "the gateway API key is not valid: check the key you send",
            ));
        };
        if entry
            .config
            .expires
            .is_some_and(|at| SystemTime::now() >= at)
        {
            return Err(unauthorized(
                "expired_api_key",
                format!(
                    "the gateway API key `{}` has expired: ask the gateway's operator for a new one",
                    entry.config.name
                ),
            ));
        }
        Ok(Some(entry.clone()))
    }
}

/// The key a request presents (trimmed, non-empty).
fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    ["x-api-key", "g4f-api-key"]
        .iter()
        .find_map(|h| headers.get(*h).map(HeaderValue::as_bytes))
        .or_else(|| {
            let v = headers.get(http::header::AUTHORIZATION)?.as_bytes();
            let (scheme, token) = v.split_at(v.iter().position(|b| *b == b' ').unwrap_or(v.len()));
            scheme
                .eq_ignore_ascii_case(b"bearer")
                .then(|| token.trim_ascii())
        })
        .map(<[u8]>::trim_ascii)
        .filter(|k| !k.is_empty())
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        code,
        message,
    )
}

fn forbidden(code: &'static str, message: String, param: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "permission_error", code, message).with_param(param)
}

/// Checks that `caller` may use `model` through `provider` (the provider the request names,
/// if any; the model without a provider prefix). When the key is limited to exactly one
/// provider and the request names none, that provider is filled in.
pub(crate) fn check_access(
    caller: &Caller,
    provider: &mut Option<String>,
    model: &str,
) -> Result<(), ApiError> {
    let Some(entry) = caller else {
        return Ok(());
    };
    let k = &entry.config;
    if !k.allows_model(model) {
        return Err(forbidden(
            "model_not_allowed",
            format!(
                "the gateway key `{}` may not use the model `{model}`; it may use: {}",
                k.name,
                k.models.join(", ")
            ),
            "model",
        ));
    }
    if k.providers.is_empty() {
        return Ok(());
    }
    match provider {
        Some(p) if k.providers.iter().any(|a| a == p) => Ok(()),
        Some(p) => Err(forbidden(
            "provider_not_allowed",
            format!(
                "the gateway key `{}` may not use the provider `{p}`; it may use: {}",
                k.name,
                k.providers.join(", ")
            ),
            "provider",
        )),
        None if k.providers.len() == 1 => {
            *provider = k.providers.first().cloned();
            Ok(())
        }
        None => Err(forbidden(
            "provider_required",
            format!(
                "the gateway key `{}` may use only the providers {}: name one with `provider` or a `provider:model` model id",
                k.name,
                k.providers.join(", ")
            ),
            "provider",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
        h
    }

    fn ring() -> Keyring {
        let bob = KeyConfig {
            expires: Some(SystemTime::now() - Duration::from_secs(1)),
            ..KeyConfig::new("bob", KeySecret::Plain("sk-bob".into()))
        };
        let carol = KeyConfig::new(
            "carol",
            KeySecret::from_hex(&hash_key("sk-carol")).expect("hex"),
        );
        Keyring::new(
            Some(&Secret::new("sk-single")),
            &[
                KeyConfig::new("alice", KeySecret::Plain("sk-alice".into())),
                bob,
                carol,
            ],
        )
    }

    fn name(c: Result<Caller, ApiError>) -> Result<String, &'static str> {
        c.map(|c| c.map(|e| e.config.name.clone()).unwrap_or_default())
            .map_err(|e| e.code)
    }

    #[test]
    fn keys_match_by_value_or_hash_from_any_header() {
        let r = ring();
        assert_eq!(
            name(r.identify(&headers("x-api-key", "sk-alice"))),
            Ok("alice".into())
        );
        assert_eq!(
            name(r.identify(&headers("authorization", "Bearer  sk-carol "))),
            Ok("carol".into())
        );
        assert_eq!(
            name(r.identify(&headers("g4f-api-key", "sk-single"))),
            Ok("default".into())
        );
        assert_eq!(
            name(r.identify(&headers("x-api-key", "sk-nobody"))),
            Err("invalid_api_key")
        );
        assert_eq!(
            name(r.identify(&headers("authorization", "Basic sk-alice"))),
            Err("missing_api_key")
        );
        assert_eq!(name(r.identify(&HeaderMap::new())), Err("missing_api_key"));
        let e = r
            .identify(&headers("x-api-key", "sk-nobody"))
            .err()
            .expect("401");
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(!e.message.contains("sk-nobody"));
    }

    #[test]
    fn expired_keys_are_refused_with_their_name() {
        let e = ring()
            .identify(&headers("x-api-key", "sk-bob"))
            .err()
            .expect("expired");
        assert_eq!(
            (e.status, e.code),
            (StatusCode::UNAUTHORIZED, "expired_api_key")
        );
        assert!(e.message.contains("`bob`") && !e.message.contains("sk-bob"));
    }

    #[test]
    fn no_keys_means_no_authentication() {
        let r = Keyring::new(None, &[]);
        assert!(r.entries().is_empty());
        assert!(matches!(r.identify(&HeaderMap::new()), Ok(None)));
        assert!(
            Keyring::new(Some(&Secret::new("")), &[])
                .entries()
                .is_empty()
        );
    }

    #[test]
    fn hashes_parse_and_match_the_cli_output() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let upper = hash_key("abc").to_uppercase();
        assert!(matches!(KeySecret::from_hex(&upper), Ok(KeySecret::Sha256(d)) if d[0] == 0xba));
        assert!(KeySecret::from_hex(&format!("sha256:{}", hash_key("abc"))).is_ok());
        assert!(KeySecret::from_hex("abc").is_err());
        assert!(KeySecret::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(
            format!("{:?}", KeySecret::Plain("sk-x".into())),
            "Plain(***)"
        );
    }

    #[test]
    fn model_and_provider_lists_are_enforced() {
        let mut k = KeyConfig::new("a", KeySecret::Plain("k".into()));
        k.models = vec!["gpt-4o*".into(), "llama".into()];
        k.providers = vec!["openai-compat".into()];
        let caller = Some(Arc::new(Entry {
            digest: k.key.digest(),
            config: k.clone(),
        }));
        let mut p = None;
        assert!(check_access(&caller, &mut p, "gpt-4o-mini").is_ok());
        assert_eq!(
            p.as_deref(),
            Some("openai-compat"),
            "the only provider is filled in"
        );
        let e = check_access(&caller, &mut None, "llama-3").expect_err("403");
        assert_eq!(
            (e.status, e.code, e.param.as_deref()),
            (StatusCode::FORBIDDEN, "model_not_allowed", Some("model"))
        );
        let e = check_access(&caller, &mut Some("flowgpt".into()), "llama").expect_err("403");
        assert_eq!(e.code, "provider_not_allowed");
        k.providers.push("flowgpt".into());
        let caller = Some(Arc::new(Entry {
            digest: k.key.digest(),
            config: k,
        }));
        assert_eq!(
            check_access(&caller, &mut None, "llama")
                .err()
                .map(|e| e.code),
            Some("provider_required")
        );
        assert!(check_access(&caller, &mut Some("flowgpt".into()), "llama").is_ok());
        assert!(check_access(&None, &mut None, "anything").is_ok());
    }
}
