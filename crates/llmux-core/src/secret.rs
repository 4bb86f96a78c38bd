//! Secrets (API keys, tokens) and cookie jars whose `Debug`/`Display` never show their values.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string: an API key, a token, a cookie value.
///
/// `Debug` and `Display` print `***`; the value is only reachable through [`Secret::expose`],
/// so it cannot end up in logs or error messages by accident. Serialises as the plain value
/// (configuration files and conversation state need it), so never serialise it into logs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call this only where the value is sent to its owner (an upstream).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// An ordered cookie jar (`name → value`); values are [`Secret`]s.
///
/// Parses and renders the `Cookie` header syntax `a=1; b=2`. Serialises as a JSON object.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Cookies(Vec<(String, Secret)>);

impl Cookies {
    /// An empty jar.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `a=1; b=2` (cookie-header syntax). Pairs without `=` or with an empty name are
    /// skipped; a repeated name keeps the last value.
    pub fn parse(header: &str) -> Self {
        let mut jar = Self::new();
        for pair in header.split(';') {
            if let Some((name, value)) = pair.split_once('=') {
                let name = name.trim();
                if !name.is_empty() {
                    jar.insert(name, value.trim());
                }
            }
        }
        jar
    }

    /// Sets a cookie, replacing an existing one of the same name.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Secret>) {
        let name = name.into();
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// Adds every cookie of `other`, overriding ours on equal names.
    pub fn merge(&mut self, other: &Cookies) {
        for (name, value) in &other.0 {
            self.insert(name.clone(), value.clone());
        }
    }

    /// The value of one cookie.
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// True when the jar holds no cookie.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Cookie values, in order.
    pub fn values(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter().map(|(_, v)| v)
    }

    /// Cookie names, in order (safe to log).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// Renders the `Cookie` header value `a=1; b=2` (g4f's `format_cookies`).
    pub fn header_value(&self) -> String {
        let mut out = String::new();
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            out.push_str(name);
            out.push('=');
            out.push_str(value.expose());
        }
        out
    }
}

impl fmt::Debug for Cookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(n, _)| (n, "***")))
            .finish()
    }
}

impl Serialize for Cookies {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (n, v) in &self.0 {
            map.serialize_entry(n, v.expose())?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Cookies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Header(String),
            Map(serde_json::Map<String, serde_json::Value>),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Header(h) => Cookies::parse(&h),
            Repr::Map(m) => {
                let mut jar = Cookies::new();
                for (k, v) in m {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    jar.insert(k, v);
                }
                jar
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_values() {
        let s = Secret::new("sk-very-secret");
        assert!(!format!("{s:?} {s}").contains("very-secret"));
        let jar = Cookies::parse("hf-chat=abc123; token=zzz");
        let dbg = format!("{jar:?}");
        assert!(dbg.contains("hf-chat") && !dbg.contains("abc123") && !dbg.contains("zzz"));
    }

    #[test]
    fn cookie_header_round_trip() {
        let jar = Cookies::parse(" a=1; b = 2 ;;junk; =x; a=3");
        assert_eq!(jar.header_value(), "a=3; b=2");
        let json = serde_json::to_string(&jar).unwrap_or_default();
        let back: Cookies = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, jar);
        let from_str: Cookies = serde_json::from_str("\"x=1; y=2\"").unwrap_or_default();
        assert_eq!(from_str.get("y").map(Secret::expose), Some("2"));
    }
}
