//! Per-provider configuration (origins, credentials, options) and timeouts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::{Cookies, Secret};

/// Phase timeouts of one call. Every wait in llmux is bounded by one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeouts {
    /// Opening a connection (TCP + TLS + proxy tunnel).
    #[serde(with = "secs")]
    pub connect: Duration,
    /// From sending a request to its response headers.
    #[serde(with = "secs")]
    pub first_byte: Duration,
    /// Longest silence between two body chunks.
    #[serde(with = "secs")]
    pub idle: Duration,
    /// The whole call, across every request it makes.
    #[serde(with = "secs")]
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// Serde helper: a [`Duration`] as (fractional) seconds.
pub mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises seconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// Deserialises non-negative, finite seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid duration {v}: expected non-negative seconds"
            ))
        })
    }
}

/// Serde helper: an optional [`Duration`] as (fractional) seconds.
pub mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises seconds or null.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    /// Deserialises non-negative, finite seconds or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            None => Ok(None),
            Some(v) => Duration::try_from_secs_f64(v).map(Some).map_err(|_| {
                serde::de::Error::custom(format!(
                    "invalid duration {v}: expected non-negative seconds"
                ))
            }),
        }
    }
}

/// Configuration of one provider instance.
///
/// Origins are keyed: `base` is the main one (`LLMUX_<NAME>_BASE_URL`); a provider with more
/// (e.g. `hub`) reads `LLMUX_<NAME>_<KEY>_URL`. `NAME` is the provider name upper-cased with
/// `-` → `_`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderConfig {
    /// Instance name (the provider's name, or a custom name for extra instances).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Origin overrides by key (`base`, `hub`, `router`, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub origins: BTreeMap<String, String>,
    /// API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    /// Cookies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookies: Option<Cookies>,
    /// Enable/disable for automatic routing (`None` = the provider's `working` flag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Default model override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_model: Option<String>,
    /// Extra models this instance serves (e.g. for an OpenAI-compatible server).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Provider-specific options.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub options: serde_json::Map<String, serde_json::Value>,
}

impl ProviderConfig {
    /// An empty configuration for the instance `name`.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The origin `key` without a trailing `/`: the override if set, else `default`.
    pub fn origin(&self, key: &str, default: &str) -> String {
        self.origins
            .get(key)
            .map(String::as_str)
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_owned()
    }

    /// Sets an origin.
    pub fn with_origin(mut self, key: impl Into<String>, url: impl Into<String>) -> Self {
        self.origins.insert(key.into(), url.into());
        self
    }

    /// Sets the `base` origin.
    pub fn with_base_url(self, url: impl Into<String>) -> Self {
        self.with_origin("base", url)
    }

    /// Sets the API key.
    pub fn with_api_key(mut self, key: impl Into<Secret>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Sets the cookies.
    pub fn with_cookies(mut self, cookies: Cookies) -> Self {
        self.cookies = Some(cookies);
        self
    }

    /// Sets one option.
    pub fn with_option(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.options.insert(key.into(), value);
        self
    }

    /// A string option.
    pub fn option_str(&self, key: &str) -> Option<&str> {
        self.options.get(key).and_then(|v| v.as_str())
    }

    /// A boolean option.
    pub fn option_bool(&self, key: &str) -> Option<bool> {
        self.options.get(key).and_then(|v| v.as_bool())
    }

    /// The environment-variable prefix of a provider name: `LLMUX_OPENAI_COMPAT`.
    pub fn env_prefix(name: &str) -> String {
        let mut s = String::from("LLMUX_");
        for c in name.chars() {
            s.push(if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            });
        }
        s
    }

    /// Reads `LLMUX_<NAME>_BASE_URL`, `_API_KEY`, `_COOKIES` and `_<KEY>_URL` for every origin key
    /// through `lookup` (pass `|k| std::env::var(k).ok()` for the process environment).
    pub fn from_lookup(
        name: &str,
        origin_keys: &[&str],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let prefix = Self::env_prefix(name);
        let mut cfg = Self::named(name);
        let get = |suffix: &str| lookup(&format!("{prefix}_{suffix}")).filter(|v| !v.is_empty());
        for key in origin_keys.iter().copied().chain(["base"]) {
            let var = format!("{}_URL", key.to_ascii_uppercase());
            if let Some(v) = get(&var) {
                cfg.origins.insert(key.to_owned(), v);
            }
        }
        cfg.api_key = get("API_KEY").map(Secret::new);
        cfg.cookies = get("COOKIES").map(|c| Cookies::parse(&c));
        cfg
    }

    /// Overlays `other` on `self`: every field set in `other` wins.
    pub fn merge(&mut self, other: &ProviderConfig) {
        if !other.name.is_empty() {
            self.name = other.name.clone();
        }
        for (k, v) in &other.origins {
            self.origins.insert(k.clone(), v.clone());
        }
        if other.api_key.is_some() {
            self.api_key = other.api_key.clone();
        }
        if let Some(c) = &other.cookies {
            match &mut self.cookies {
                Some(mine) => mine.merge(c),
                None => self.cookies = Some(c.clone()),
            }
        }
        if other.enabled.is_some() {
            self.enabled = other.enabled;
        }
        if other.default_model.is_some() {
            self.default_model = other.default_model.clone();
        }
        for m in &other.models {
            if !self.models.contains(m) {
                self.models.push(m.clone());
            }
        }
        for (k, v) in &other.options {
            self.options.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_and_lookup() {
        assert_eq!(
            ProviderConfig::env_prefix("microsoft-phi-4"),
            "LLMUX_MICROSOFT_PHI_4"
        );
        let cfg = ProviderConfig::from_lookup("microsoft-phi-4", &["hub"], |k| match k {
            "LLMUX_MICROSOFT_PHI_4_BASE_URL" => Some("http://127.0.0.1:1/".into()),
            "LLMUX_MICROSOFT_PHI_4_HUB_URL" => Some("http://127.0.0.1:2".into()),
            "LLMUX_MICROSOFT_PHI_4_COOKIES" => Some("a=1; b=2".into()),
            _ => None,
        });
        assert_eq!(cfg.origin("base", "https://x"), "http://127.0.0.1:1");
        assert_eq!(cfg.origin("hub", "https://x"), "http://127.0.0.1:2");
        assert_eq!(cfg.origin("router", "https://r/"), "https://r");
        assert_eq!(
            cfg.cookies.map(|c| c.header_value()).as_deref(),
            Some("a=1; b=2")
        );
        assert!(cfg.api_key.is_none());
    }

    #[test]
    fn merge_overrides() {
        let mut a = ProviderConfig::named("x").with_base_url("http://a");
        a.merge(&ProviderConfig::default().with_api_key("k"));
        assert_eq!(a.origin("base", ""), "http://a");
        assert_eq!(a.api_key.as_ref().map(Secret::expose), Some("k"));
    }
}
