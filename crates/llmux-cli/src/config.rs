//! The configuration file (TOML) and how it maps onto [`llmux::ClientBuilder`].
//!
//! Location: `--config FILE`, else `$LLMUX_CONFIG`, else `<config dir>/llmux/config.toml`
//! (`~/.config/llmux/config.toml` on Linux). A missing default file is fine; a missing file named
//! by the flag or the variable is an error.
//!
//! Precedence: command-line flags win over environment variables (`LLMUX_<NAME>_BASE_URL`,
//! `_API_KEY`, `_COOKIES`, `_<KEY>_URL`, `LLMUX_API_KEY`, …), which win over the file.
//!
//! ```
//! let cfg = llmux_cli::config::FileConfig::parse(
//!     r#"
//! priority = ["openai-compat"]
//! [timeouts]
//! total = 120
//! [providers.openai-compat]
//! base_url = "http://127.0.0.1:11434/v1"
//! "#,
//!     std::path::Path::new("config.toml"),
//! )
//! .expect("valid");
//! assert_eq!(cfg.priority, ["openai-compat"]);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use llmux::core::config::opt_secs;
use llmux::{ClientBuilder, Cookies, ProviderConfig, Proxy, Secret, Timeouts};
use serde::Deserialize;

/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "LLMUX_CONFIG";

/// A configuration problem, naming the file and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("config file {}, line {line}, column {column}{}: {message}{}", path.display(), key_part(key), hint.as_deref().unwrap_or(""))]
    Parse {
        /// The file.
        path: PathBuf,
        /// Dotted key at the error, when known (`providers.openai-compat.base_url`).
        key: Option<String>,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
        /// A hint on how to fix it (with its leading separator).
        hint: Option<String>,
    },
    /// A value is well-typed but not acceptable (bad address, unknown provider, …).
    #[error("config file {}: `{key}`: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn key_part(key: &Option<String>) -> String {
    key.as_deref()
        .map(|k| format!(", key `{k}`"))
        .unwrap_or_default()
}

/// Keys allowed at the top level of the file (used for hints when one lands in a table).
const TOP_LEVEL_KEYS: &[&str] = &[
    "priority",
    "proxy",
    "shuffle",
    "max_retries",
    "tool_emulation",
];

/// Phase timeouts in seconds; unset ones keep the library defaults (connect 10, first_byte 60,
/// idle 60, total 600).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsSection {
    /// Opening a connection.
    #[serde(with = "opt_secs")]
    pub connect: Option<Duration>,
    /// Waiting for response headers.
    #[serde(with = "opt_secs")]
    pub first_byte: Option<Duration>,
    /// Longest silence between two chunks.
    #[serde(with = "opt_secs")]
    pub idle: Option<Duration>,
    /// The whole call.
    #[serde(with = "opt_secs")]
    pub total: Option<Duration>,
}

impl TimeoutsSection {
    /// These timeouts over the library defaults.
    pub fn resolve(&self) -> Timeouts {
        let d = Timeouts::default();
        Timeouts {
            connect: self.connect.unwrap_or(d.connect),
            first_byte: self.first_byte.unwrap_or(d.first_byte),
            idle: self.idle.unwrap_or(d.idle),
            total: self.total.unwrap_or(d.total),
        }
    }
}

/// `[health]`: the circuit breaker of automatic routing (see `llmux::HealthConfig`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSection {
    /// Track provider health and let it order routing (default true).
    pub enabled: Option<bool>,
    /// Consecutive "provider is down" failures that open a provider's breaker (default 3).
    pub failure_threshold: Option<u32>,
    /// Seconds an opened breaker waits before one probe request (default 30); doubles on
    /// every reopening.
    #[serde(with = "opt_secs")]
    pub cooldown: Option<Duration>,
    /// Longest cooldown in seconds (default 600).
    #[serde(with = "opt_secs")]
    pub max_cooldown: Option<Duration>,
}

impl HealthSection {
    /// These settings over the library defaults.
    pub fn resolve(&self) -> llmux::HealthConfig {
        let d = llmux::HealthConfig::default();
        llmux::HealthConfig {
            enabled: self.enabled.unwrap_or(d.enabled),
            failure_threshold: self.failure_threshold.unwrap_or(d.failure_threshold),
            cooldown: self.cooldown.unwrap_or(d.cooldown),
            max_cooldown: self.max_cooldown.unwrap_or(d.max_cooldown),
        }
    }
}

/// `[server]`: gateway settings (`llmux serve`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Listen address `HOST:PORT` (default `127.0.0.1:1337`).
    pub bind: Option<String>,
    /// Key clients must send (`Authorization: Bearer` or `g4f-api-key`).
    pub api_key: Option<Secret>,
    /// Largest accepted request body.
    pub max_body_bytes: Option<usize>,
    /// Fetch `http(s)` image URLs in requests.
    pub allow_remote_media: Option<bool>,
    /// Send permissive CORS headers.
    pub cors: Option<bool>,
    /// Seconds a client may take to send its request headers.
    #[serde(with = "opt_secs")]
    pub header_read_timeout: Option<Duration>,
    /// Provider used when a request names none.
    pub default_provider: Option<String>,
    /// Seconds in-flight requests get to finish on shutdown.
    #[serde(with = "opt_secs")]
    pub shutdown_grace: Option<Duration>,
    /// Most responses `/v1/responses` keeps for `previous_response_id` (`0`: storage off).
    pub responses_store_size: Option<usize>,
    /// Seconds a stored response is kept.
    #[serde(with = "opt_secs")]
    pub responses_store_ttl: Option<Duration>,
    /// Count and serve `GET /metrics` (default true).
    pub metrics: Option<bool>,
    /// Serve `GET /metrics` without the gateway key (default false).
    pub metrics_public: Option<bool>,
}

/// `[cache]`: the response cache of the gateway's chat completions (`llmux serve`). Without
/// this section only requests sending `x-llmux-cache: use` are cached, with the defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// Models whose requests are cached without asking, as requests name them (`"*"`: all).
    pub models: Vec<String>,
    /// How long an answer is kept: seconds, or a number with a unit `s`, `m`, `h` or `d`
    /// (`"1h"`); default 1 hour, `0` turns the cache off.
    #[serde(deserialize_with = "duration_text")]
    pub ttl: Option<Duration>,
    /// Most bytes of answers kept together (default 64 MiB); `0` turns the cache off.
    pub max_bytes: Option<u64>,
}

/// A duration given as seconds (`90`, `2.5`) or as text with a unit (`"90s"`, `"30m"`, `"1h"`,
/// `"1d"`).
fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }
    let invalid = |what: &str| {
        serde::de::Error::custom(format!(
            "invalid duration {what}: expected seconds or a number with a unit s, m, h or d (\"1h\")"
        ))
    };
    let (n, unit) = match Raw::deserialize(d)? {
        Raw::Secs(v) => (v, 1.0),
        Raw::Text(t) => {
            let t = t.trim();
            let (num, unit) = match t.char_indices().last() {
                Some((i, 's')) => (&t[..i], 1.0),
                Some((i, 'm')) => (&t[..i], 60.0),
                Some((i, 'h')) => (&t[..i], 3600.0),
                Some((i, 'd')) => (&t[..i], 86400.0),
                _ => (t, 1.0),
            };
            let n = num
                .trim()
                .parse::<f64>()
                .map_err(|_| invalid(&format!("{t:?}")))?;
            (n, unit)
        }
    };
    Duration::try_from_secs_f64(n * unit)
        .map(Some)
        .map_err(|_| invalid(&n.to_string()))
}

/// `[chat]`: defaults of `llmux chat` / `llmux image`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatSection {
    /// Default model (`-m`).
    pub model: Option<String>,
    /// Default provider (`-p`).
    pub provider: Option<String>,
    /// Default model of `llmux image`.
    pub image_model: Option<String>,
    /// Default system prompt.
    pub system: Option<String>,
    /// Where generated media is saved (default: the current directory).
    pub output_dir: Option<PathBuf>,
}

impl ChatSection {
    /// [`ChatSection::output_dir`] with a leading `~/` expanded to the home directory.
    pub fn output_dir(&self) -> Option<PathBuf> {
        let dir = self.output_dir.as_ref()?;
        match (dir.strip_prefix("~"), dirs::home_dir()) {
            (Ok(rest), Some(home)) => Some(home.join(rest)),
            _ => Some(dir.clone()),
        }
    }
}

/// Cookies as a `Cookie` header string (`"a=1; b=2"`) or a table (`{ a = "1" }`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CookiesValue(pub Cookies);

impl<'de> Deserialize<'de> for CookiesValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CookiesValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a cookie string \"name=value; name2=value2\" or a table of cookies")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CookiesValue, E> {
                Ok(CookiesValue(Cookies::parse(v)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<CookiesValue, A::Error> {
                let mut jar = Cookies::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    jar.insert(k, v);
                }
                Ok(CookiesValue(jar))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[providers.<name>]` (a compiled-in provider) or `[instances.<name>]` (an extra named
/// instance, which needs `kind`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderSection {
    /// Provider kind of an extra instance (`openai-compat`); only under `[instances.*]`.
    pub kind: Option<String>,
    /// The main origin (`LLMUX_<NAME>_BASE_URL`).
    pub base_url: Option<String>,
    /// Other origins by key (`hub = "…"`, as `LLMUX_<NAME>_HUB_URL`).
    pub origins: BTreeMap<String, String>,
    /// API key.
    pub api_key: Option<Secret>,
    /// Cookies.
    pub cookies: Option<CookiesValue>,
    /// Used by automatic routing (default: the provider's `working` flag).
    pub enabled: Option<bool>,
    /// Default model.
    pub default_model: Option<String>,
    /// Extra model ids this instance serves.
    pub models: Vec<String>,
    /// Emulate `tools` / `response_format` on this provider when a request does not say.
    pub tool_emulation: Option<bool>,
    /// Provider-specific options.
    pub options: toml::Table,
}

impl ProviderSection {
    /// The provider configuration this section describes.
    pub fn to_provider_config(&self, name: &str) -> ProviderConfig {
        let mut cfg = ProviderConfig::named(name);
        cfg.origins = self.origins.clone();
        if let Some(b) = &self.base_url {
            cfg.origins.insert("base".into(), b.clone());
        }
        cfg.api_key = self.api_key.clone().filter(|k| !k.is_empty());
        cfg.cookies = self.cookies.as_ref().map(|c| c.0.clone());
        cfg.enabled = self.enabled;
        cfg.default_model = self.default_model.clone();
        cfg.models = self.models.clone();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&self.options) {
            cfg.options = map;
        }
        if let Some(on) = self.tool_emulation {
            cfg.options
                .insert("tool_emulation".into(), serde_json::Value::Bool(on));
        }
        cfg
    }
}

/// The whole configuration file. Every key is optional; unknown keys are errors.
///
/// Top-level keys (`priority`, `proxy`, `shuffle`, `max_retries`) must come before the first
/// `[table]` header, as TOML puts later keys into that table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Providers tried first, in this order.
    pub priority: Vec<String>,
    /// Proxy for every upstream: `http://…`, `socks5://…`, `socks5h://…`, `direct` (none) or
    /// `env` (`HTTPS_PROXY`/`ALL_PROXY`, the default).
    pub proxy: Option<Secret>,
    /// Shuffle candidates of equal priority (as g4f does).
    pub shuffle: Option<bool>,
    /// Retries on one provider before falling back.
    pub max_retries: Option<u32>,
    /// Emulate `tools` / `response_format` on providers without them, unless a request or the
    /// provider's section says otherwise (default off).
    pub tool_emulation: Option<bool>,
    /// Timeouts in seconds.
    pub timeouts: TimeoutsSection,
    /// Circuit breaker.
    pub health: HealthSection,
    /// Gateway settings.
    pub server: ServerSection,
    /// Chat defaults.
    pub chat: ChatSection,
    /// The gateway's response cache (`None`: no `[cache]` section).
    pub cache: Option<CacheSection>,
    /// Extra model aliases: `alias = "model"` or `"provider:model"`.
    pub aliases: BTreeMap<String, String>,
    /// Compiled-in providers.
    pub providers: BTreeMap<String, ProviderSection>,
    /// Extra named instances.
    pub instances: BTreeMap<String, ProviderSection>,
    /// Gateway keys (`[[keys]]`), each with its own models, providers, limits and usage.
    pub keys: Vec<KeySection>,
    /// Shared state of gateway replicas.
    pub redis: RedisSection,
}

/// One `[[keys]]` entry: a gateway key of `llmux serve`.
///
/// ```toml
/// [[keys]]
/// name = "alice"
/// sha256 = "…"            # `llmux keys hash` prints it; or `key = "sk-…"`
/// models = ["gpt-4o*"]     # optional: exact ids or prefixes ending in `*`
/// rpm = 60                 # optional limits: requests / tokens per minute, at once
/// tpm = 100000
/// concurrency = 4
/// expires = 2027-01-01T00:00:00Z
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySection {
    /// Name in logs, metrics and `/v1/usage`.
    pub name: String,
    /// The key itself.
    pub key: Option<Secret>,
    /// Or its SHA-256 in hex.
    pub sha256: Option<String>,
    /// Models it may use (empty: all).
    pub models: Vec<String>,
    /// Providers it may use (empty: all).
    pub providers: Vec<String>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
    /// Requests at once.
    pub concurrency: Option<u32>,
    /// Expiry: a TOML date-time or an RFC 3339 string.
    pub expires: Option<Expiry>,
    /// May read `GET /v1/usage`.
    pub admin: bool,
}

/// A `[[keys]]` expiry: a TOML offset date-time or an RFC 3339 string.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Expiry {
    /// `expires = 2027-01-01T00:00:00Z`.
    Datetime(toml::value::Datetime),
    /// `expires = "2027-01-01T00:00:00Z"`.
    Text(String),
}

impl KeySection {
    /// The gateway key this entry describes (`Err`: what is wrong, for `keys[i]`).
    pub fn to_key_config(&self) -> Result<llmux_server::KeyConfig, String> {
        use llmux_server::{KeyConfig, KeySecret};
        if self.name.trim().is_empty() {
            return Err("every [[keys]] entry needs a `name`".into());
        }
        let secret = match (&self.key, &self.sha256) {
            (Some(k), None) if !k.is_empty() => KeySecret::Plain(k.clone()),
            (None, Some(h)) => KeySecret::from_hex(h.trim())?,
            (Some(_), Some(_)) => return Err("give `key` or `sha256`, not both".into()),
            _ => {
                return Err(
                    "needs `key` (the key) or `sha256` (its hash from `llmux keys hash`)".into(),
                );
            }
        };
        let expires = match &self.expires {
            None => None,
            Some(e) => {
                let text = match e {
                    Expiry::Datetime(d) => d.to_string(),
                    Expiry::Text(t) => t.clone(),
                };
                let secs = llmux_cookies::time::parse_iso8601(&text)
                    .and_then(|s| u64::try_from(s).ok())
                    .ok_or_else(|| {
                        format!("`expires` = {text:?} is not a date-time like 2027-01-01T00:00:00Z")
                    })?;
                Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
            }
        };
        if [self.rpm, self.concurrency].contains(&Some(0)) || self.tpm == Some(0) {
            return Err("limits must be at least 1 (leave one out for no limit)".into());
        }
        Ok(KeyConfig {
            models: self.models.clone(),
            providers: self.providers.clone(),
            rpm: self.rpm,
            tpm: self.tpm,
            concurrency: self.concurrency,
            expires,
            admin: self.admin,
            ..KeyConfig::new(self.name.trim(), secret)
        })
    }
}

/// `[redis]`: where gateway replicas share limits, usage, stored responses and the cache.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSection {
    /// `redis://HOST:PORT/DB` (may hold a password: never logged).
    pub url: Option<Secret>,
    /// Seconds each Redis command may take (default 0.5).
    #[serde(with = "opt_secs")]
    pub timeout: Option<Duration>,
    /// Let requests of limited keys through when Redis is down (default true); `false`
    /// refuses them with 503.
    pub limits_fail_open: Option<bool>,
}

/// Line and column (1-based) of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Best-effort dotted key at a byte offset: the enclosing `[table]` header and the key of the
/// line (`providers.openai-compat.base_url`).
fn key_at(src: &str, offset: usize) -> (Option<String>, Option<String>) {
    let offset = offset.min(src.len());
    let start_of_line = src
        .get(..offset)
        .and_then(|s| s.rfind('\n'))
        .map_or(0, |i| i + 1);
    let line = src[start_of_line..].lines().next().unwrap_or("");
    let table = src[..start_of_line].lines().rev().find_map(|l| {
        let t = l.trim();
        t.starts_with('[').then(|| {
            t.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
    });
    let trimmed = line.trim();
    let key = if trimmed.starts_with('[') {
        None
    } else {
        line.split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_owned())
    };
    let dotted = match (&table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t.clone()),
        (None, None) => None,
    };
    (table, dotted)
}

impl FileConfig {
    /// Parses TOML text; errors name `path`, the line and the key.
    pub fn parse(src: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str::<FileConfig>(src).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let (line, column) = line_col(src, offset);
            let (table, key) = key_at(src, offset);
            let message = e.message().trim().to_owned();
            let hint = table.as_ref().and_then(|t| {
                TOP_LEVEL_KEYS
                    .iter()
                    .find(|k| message.starts_with(&format!("unknown field `{k}`")))
                    .map(|k| {
                        format!(
                            " (`{k}` is a top-level key: move it above the first table header, before [{t}])"
                        )
                    })
            });
            ConfigError::Parse {
                path: path.to_owned(),
                key,
                line,
                column,
                message,
                hint,
            }
        })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::parse(&src, path)
    }

    /// Checks what types cannot: addresses, proxy URLs, provider names and instance kinds.
    /// `known` are the compiled-in provider names.
    pub fn validate(&self, path: &Path, known: &[&str]) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        if let Some(bind) = &self.server.bind {
            parse_bind(bind).map_err(|m| invalid("server.bind".into(), m))?;
        }
        if let Some(p) = &self.proxy {
            parse_proxy(p.expose()).map_err(|m| invalid("proxy".into(), m))?;
        }
        let list = known.join(", ");
        for (name, sec) in &self.providers {
            if !known.contains(&name.as_str()) {
                return Err(invalid(
                    format!("providers.{name}"),
                    format!(
                        "no provider of that name is compiled in (known: {list}); extra named servers go under [instances.{name}] with `kind`"
                    ),
                ));
            }
            if sec.kind.is_some() {
                return Err(invalid(
                    format!("providers.{name}.kind"),
                    "`kind` belongs under [instances.<name>]".into(),
                ));
            }
        }
        for (name, sec) in &self.instances {
            let Some(kind) = &sec.kind else {
                return Err(invalid(
                    format!("instances.{name}.kind"),
                    format!("missing: which provider this instance is (one of: {list})"),
                ));
            };
            if !known.contains(&kind.as_str()) {
                return Err(invalid(
                    format!("instances.{name}.kind"),
                    format!("provider `{kind}` is not compiled in (known: {list})"),
                ));
            }
            if known.iter().any(|k| k.eq_ignore_ascii_case(name)) {
                return Err(invalid(
                    format!("instances.{name}"),
                    "an instance cannot reuse a provider's name; configure it under [providers.*] instead".into(),
                ));
            }
        }
        for (key, d) in [
            ("timeouts.connect", self.timeouts.connect),
            ("timeouts.first_byte", self.timeouts.first_byte),
            ("timeouts.idle", self.timeouts.idle),
            ("timeouts.total", self.timeouts.total),
        ] {
            if d == Some(Duration::ZERO) {
                return Err(invalid(key.into(), "must be greater than 0".into()));
            }
        }
        self.validate_keys(&invalid)?;
        if let Some(url) = &self.redis.url {
            llmux_server::RedisConfig::new(url.expose())
                .map_err(|m| invalid("redis.url".into(), m))?;
        }
        if self.redis.timeout == Some(Duration::ZERO) {
            return Err(invalid(
                "redis.timeout".into(),
                "must be greater than 0".into(),
            ));
        }
        Ok(())
    }

    /// Every `[[keys]]` entry converts, and names are unique.
    fn validate_keys(
        &self,
        invalid: &dyn Fn(String, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let mut names = std::collections::BTreeSet::new();
        for (i, k) in self.keys.iter().enumerate() {
            k.to_key_config()
                .map_err(|m| invalid(format!("keys[{i}]"), m))?;
            if !names.insert(k.name.trim()) {
                return Err(invalid(
                    format!("keys[{i}].name"),
                    format!("`{}` names two keys: names must be unique", k.name.trim()),
                ));
            }
        }
        Ok(())
    }
}

/// Parses `HOST:PORT` (`localhost` is accepted as 127.0.0.1).
pub fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let fixed = s
        .strip_prefix("localhost:")
        .map(|p| format!("127.0.0.1:{p}"));
    fixed
        .as_deref()
        .unwrap_or(s)
        .parse::<SocketAddr>()
        .map_err(|_| {
            format!("invalid listen address {s:?}: expected HOST:PORT such as 127.0.0.1:1337")
        })
}

/// Parses a proxy setting: `direct`/`none`, `env`, or an `http(s)://` / `socks5(h)://` URL.
pub fn parse_proxy(s: &str) -> Result<Proxy, String> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "direct" | "none" | "off" => return Ok(Proxy::Direct),
        "env" | "" => return Ok(Proxy::FromEnv),
        _ => {}
    }
    let scheme = t.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http" | "https" | "socks5" | "socks5h") => Ok(Proxy::Url(Secret::new(t))),
        _ => Err(format!(
            "invalid proxy {:?}: expected http://, https://, socks5:// or socks5h:// URL, `direct` or `env`",
            llmux::core::http::redact_url(t)
        )),
    }
}

/// Where the configuration file is, and whether it must exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    /// The path.
    pub path: PathBuf,
    /// Named by `--config` or `$LLMUX_CONFIG` (so it must exist).
    pub explicit: bool,
}

/// Finds the configuration file: the flag, else `$LLMUX_CONFIG`, else the platform default.
pub fn locate(flag: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Option<ConfigLocation> {
    if let Some(p) = flag {
        return Some(ConfigLocation {
            path: p.to_owned(),
            explicit: true,
        });
    }
    if let Some(p) = env(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Some(ConfigLocation {
            path: PathBuf::from(p),
            explicit: true,
        });
    }
    dirs::config_dir().map(|d| ConfigLocation {
        path: d.join("llmux").join("config.toml"),
        explicit: false,
    })
}

/// The loaded configuration and where it came from.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// File contents (empty when there is no file).
    pub file: FileConfig,
    /// The file that was read, if any.
    pub path: Option<PathBuf>,
    /// The default location that was looked at and not found.
    pub looked_at: Option<PathBuf>,
}

/// Command-line overrides applied over file and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--upstream URL`: the `openai-compat` provider's base URL (also put first in priority).
    pub upstream: Option<String>,
    /// `--proxy`.
    pub proxy: Option<String>,
    /// `serve --tool-emulation`: emulation on for the whole gateway.
    pub tool_emulation: bool,
}

/// Providers that take a Hugging Face token as their API key when none is configured.
pub const HF_TOKEN_PROVIDERS: &[&str] = &["huggingface-inference"];

/// The `openai-compat` provider name.
pub const OPENAI_COMPAT: &str = "openai-compat";

impl Settings {
    /// Loads and validates the configuration file found by [`locate`]; `known` are the
    /// compiled-in provider names.
    pub fn load(
        flag: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        known: &[&str],
    ) -> Result<Self, ConfigError> {
        let Some(loc) = locate(flag, env) else {
            return Ok(Self::default());
        };
        if !loc.explicit && !loc.path.exists() {
            return Ok(Self {
                looked_at: Some(loc.path),
                ..Self::default()
            });
        }
        let file = FileConfig::load(&loc.path)?;
        file.validate(&loc.path, known)?;
        Ok(Self {
            file,
            path: Some(loc.path),
            looked_at: None,
        })
    }

    /// Effective configuration of each compiled-in provider: file, then environment, then
    /// overrides. `regs` are `(name, extra origin keys)`.
    pub fn provider_configs(
        &self,
        regs: &[(&str, Vec<&str>)],
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Vec<(String, ProviderConfig)> {
        regs.iter()
            .map(|(name, extra)| {
                let mut cfg = self
                    .file
                    .providers
                    .get(*name)
                    .map(|s| s.to_provider_config(name))
                    .unwrap_or_else(|| ProviderConfig::named(*name));
                cfg.merge(&ProviderConfig::from_lookup(name, extra, env));
                if HF_TOKEN_PROVIDERS.contains(name) && cfg.api_key.is_none() {
                    // nothing more specific: `HF_TOKEN` or the Hugging Face CLI's token file
                    cfg.api_key = llmux_cookies::hf_token(env);
                }
                if *name == OPENAI_COMPAT {
                    if let Some(u) = &overrides.upstream {
                        cfg.origins.insert("base".into(), u.clone());
                    }
                }
                ((*name).to_owned(), cfg)
            })
            .collect()
    }

    /// Effective configuration of each extra instance: `(name, kind, config)`.
    pub fn instance_configs(
        &self,
        regs: &[(&str, Vec<&str>)],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Vec<(String, String, ProviderConfig)> {
        self.file
            .instances
            .iter()
            .map(|(name, sec)| {
                let kind = sec.kind.clone().unwrap_or_default();
                let extra = regs
                    .iter()
                    .find(|(n, _)| *n == kind)
                    .map(|(_, e)| e.as_slice())
                    .unwrap_or(&[]);
                let mut cfg = sec.to_provider_config(name);
                cfg.merge(&ProviderConfig::from_lookup(name, extra, env));
                (name.clone(), kind, cfg)
            })
            .collect()
    }

    /// The effective proxy (flag, else file, else the environment's `HTTPS_PROXY`…).
    pub fn proxy(&self, overrides: &Overrides) -> Result<Proxy, String> {
        match (&overrides.proxy, &self.file.proxy) {
            (Some(p), _) => parse_proxy(p),
            (None, Some(p)) => parse_proxy(p.expose()),
            (None, None) => Ok(Proxy::FromEnv),
        }
    }

    /// The priority list (with `openai-compat` first when `--upstream` is given).
    pub fn priority(&self, overrides: &Overrides) -> Vec<String> {
        let mut p = self.file.priority.clone();
        if overrides.upstream.is_some() {
            p.retain(|n| n != OPENAI_COMPAT);
            p.insert(0, OPENAI_COMPAT.to_owned());
        }
        p
    }

    /// A client builder with everything applied.
    pub fn client_builder(
        &self,
        regs: &[(&str, Vec<&str>)],
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<ClientBuilder, String> {
        let mut b = llmux::Client::builder();
        for (name, cfg) in self.provider_configs(regs, env, overrides) {
            b = b.provider(&name, cfg);
        }
        for (name, kind, cfg) in self.instance_configs(regs, env) {
            b = b.instance(&name, &kind, cfg);
        }
        for (alias, target) in &self.file.aliases {
            b = b.alias(alias.clone(), target.clone());
        }
        b = b
            .priority(self.priority(overrides))
            .timeouts(self.file.timeouts.resolve())
            .health(self.file.health.resolve())
            .proxy(self.proxy(overrides)?);
        if let Some(s) = self.file.shuffle {
            b = b.shuffle(s);
        }
        if let Some(n) = self.file.max_retries {
            b = b.max_retries(n);
        }
        if overrides.tool_emulation || self.file.tool_emulation == Some(true) {
            b = b.tool_emulation(true);
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(src, Path::new("/etc/llmux.toml"))
    }

    const FULL: &str = r#"
priority = ["huggingchat", "microsoft-phi-4"]
proxy = "socks5h://user:pw@127.0.0.1:9050"
shuffle = true
max_retries = 2

[server]
bind = "127.0.0.1:1337"
api_key = "gw-secret"
cors = false
header_read_timeout = 2.5
responses_store_size = 50
responses_store_ttl = 120

[timeouts]
total = 600
idle = 60

[chat]
model = "fast"

[cache]
models = ["fast", "llama3.2"]
ttl = "2h"
max_bytes = 1048576

[aliases]
fast = "openai-compat:llama3.2"

[providers.openai-compat]
base_url = "http://127.0.0.1:11434/v1"
api_key = "sk-file"
enabled = true
options = { image_models = ["dall-e"] }

[providers.huggingchat]
cookies = "hf-chat=abc; other=1"

[instances.ollama]
kind = "openai-compat"
base_url = "http://127.0.0.1:11434/v1"
cookies = { session = "s1" }
"#;

    #[test]
    fn parses_the_documented_example() {
        let c = parse(FULL).expect("valid");
        assert_eq!(c.priority, ["huggingchat", "microsoft-phi-4"]);
        assert_eq!(c.timeouts.total, Some(Duration::from_secs(600)));
        assert_eq!(
            c.server.header_read_timeout,
            Some(Duration::from_millis(2500))
        );
        assert_eq!(c.server.responses_store_size, Some(50));
        assert_eq!(c.server.responses_store_ttl, Some(Duration::from_secs(120)));
        assert_eq!(c.aliases["fast"], "openai-compat:llama3.2");
        let cache = c.cache.as_ref().expect("[cache]");
        assert_eq!(cache.models, ["fast", "llama3.2"]);
        assert_eq!(cache.ttl, Some(Duration::from_secs(7200)));
        assert_eq!(cache.max_bytes, Some(1_048_576));
        let oc = c.providers["openai-compat"].to_provider_config("openai-compat");
        assert_eq!(oc.origin("base", ""), "http://127.0.0.1:11434/v1");
        assert_eq!(oc.api_key.as_ref().map(Secret::expose), Some("sk-file"));
        assert_eq!(oc.options["image_models"], serde_json::json!(["dall-e"]));
        let hc = c.providers["huggingchat"].to_provider_config("huggingchat");
        assert_eq!(
            hc.cookies.map(|c| c.header_value()).as_deref(),
            Some("hf-chat=abc; other=1")
        );
        let inst = &c.instances["ollama"];
        assert_eq!(inst.kind.as_deref(), Some("openai-compat"));
        assert_eq!(
            inst.cookies.as_ref().map(|c| c.0.header_value()).as_deref(),
            Some("session=s1")
        );
        c.validate(
            Path::new("x"),
            &["huggingchat", "openai-compat", "microsoft-phi-4"],
        )
        .expect("valid");
    }

    #[test]
    fn cache_durations() {
        for (text, secs) in [
            ("90", 90.0),
            ("2.5", 2.5),
            ("\"45s\"", 45.0),
            ("\"30m\"", 1800.0),
            ("\"1h\"", 3600.0),
            ("\" 1.5 d \"", 129_600.0),
            ("\"0\"", 0.0),
        ] {
            let c = parse(&format!("[cache]\nttl = {text}\n")).expect(text);
            let ttl = c.cache.and_then(|c| c.ttl);
            assert_eq!(ttl, Some(Duration::from_secs_f64(secs)), "{text}");
        }
        assert_eq!(
            parse("[cache]\n").expect("empty").cache,
            Some(CacheSection::default())
        );
        assert_eq!(parse("").expect("none").cache, None);
        for bad in ["\"1w\"", "\"h\"", "-1", "\"-2h\"", "true"] {
            let e = parse(&format!("[cache]\nttl = {bad}\n")).expect_err(bad);
            let msg = e.to_string();
            assert!(msg.contains("cache.ttl"), "{bad}: {msg}");
        }
        let e = parse("[cache]\nmodel = [\"x\"]\n").expect_err("unknown key");
        assert!(e.to_string().contains("unknown field `model`"), "{e}");
    }

    #[test]
    fn unknown_key_names_file_key_and_line() {
        let e = parse("[providers.openai-compat]\nbase_url = \"x\"\nbase_ur1 = \"y\"\n")
            .expect_err("unknown key");
        let msg = e.to_string();
        assert!(
            msg.starts_with("config file /etc/llmux.toml, line 3, column 1, key `providers.openai-compat.base_ur1`: unknown field `base_ur1`"),
            "{msg}"
        );
    }

    #[test]
    fn bad_type_names_the_key() {
        let e = parse("[timeouts]\ntotal = \"long\"\n").expect_err("bad type");
        match &e {
            ConfigError::Parse { key, line, .. } => {
                assert_eq!(key.as_deref(), Some("timeouts.total"));
                assert_eq!(*line, 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        let e = parse("[timeouts]\ntotal = -1\n").expect_err("negative");
        assert!(e.to_string().contains("timeouts.total"), "{e}");
    }

    #[test]
    fn misplaced_top_level_key_gets_a_hint() {
        let e = parse("[timeouts]\ntotal = 5\npriority = [\"a\"]\n").expect_err("misplaced");
        let msg = e.to_string();
        assert!(msg.contains("key `timeouts.priority`"), "{msg}");
        assert!(msg.contains("top-level key"), "{msg}");
    }

    #[test]
    fn validation() {
        let known = ["openai-compat", "huggingchat"];
        let p = Path::new("c.toml");
        let e = parse("[providers.nope]\nenabled = true\n")
            .expect("parses")
            .validate(p, &known)
            .expect_err("unknown provider");
        assert!(e.to_string().contains("`providers.nope`"), "{e}");
        let e = parse("[instances.x]\nbase_url = \"http://h\"\n")
            .expect("parses")
            .validate(p, &known)
            .expect_err("no kind");
        assert!(e.to_string().contains("instances.x.kind"), "{e}");
        let e = parse("[server]\nbind = \"nowhere\"\n")
            .expect("parses")
            .validate(p, &known)
            .expect_err("bad bind");
        assert!(e.to_string().contains("server.bind"), "{e}");
        let e = parse("proxy = \"ftp://u:secretpw@h\"\n")
            .expect("parses")
            .validate(p, &known)
            .expect_err("bad proxy");
        assert!(!e.to_string().contains("secretpw"), "{e}");
    }

    #[test]
    fn precedence_flags_env_file() {
        let file = parse(
            "[providers.openai-compat]\nbase_url = \"http://file/v1\"\napi_key = \"file-key\"\n",
        )
        .expect("valid");
        let settings = Settings {
            file,
            ..Settings::default()
        };
        let regs: &[(&str, Vec<&str>)] = &[("openai-compat", vec![]), ("huggingchat", vec!["hub"])];
        let env = |k: &str| match k {
            "LLMUX_OPENAI_COMPAT_BASE_URL" => Some("http://env/v1".to_owned()),
            "LLMUX_HUGGINGCHAT_HUB_URL" => Some("http://hub".to_owned()),
            _ => None,
        };
        let cfgs = settings.provider_configs(regs, &env, &Overrides::default());
        assert_eq!(cfgs[0].1.origin("base", ""), "http://env/v1");
        assert_eq!(
            cfgs[0].1.api_key.as_ref().map(Secret::expose),
            Some("file-key")
        );
        assert_eq!(cfgs[1].1.origin("hub", ""), "http://hub");
        let o = Overrides {
            upstream: Some("http://flag/v1".into()),
            proxy: None,
            tool_emulation: false,
        };
        let cfgs = settings.provider_configs(regs, &env, &o);
        assert_eq!(cfgs[0].1.origin("base", ""), "http://flag/v1");
        assert_eq!(settings.priority(&o), ["openai-compat"]);
    }

    #[test]
    fn readme_example_is_valid() {
        let readme = include_str!("../README.md");
        let block = readme
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a toml block in the README");
        let c = parse(block).expect("README example parses");
        c.validate(
            Path::new("README.md"),
            &["openai-compat", "huggingchat", "huggingface-inference"],
        )
        .expect("README example validates");
        assert_eq!(c.instances["ollama"].kind.as_deref(), Some("openai-compat"));
        let home = dirs::home_dir().expect("home");
        assert_eq!(c.chat.output_dir(), Some(home.join("Pictures/llmux")));
    }

    #[test]
    fn proxies_and_binds() {
        assert!(matches!(parse_proxy("direct"), Ok(Proxy::Direct)));
        assert!(matches!(parse_proxy("env"), Ok(Proxy::FromEnv)));
        assert!(matches!(
            parse_proxy("socks5://127.0.0.1:1"),
            Ok(Proxy::Url(_))
        ));
        assert!(parse_proxy("127.0.0.1:8080").is_err());
        assert_eq!(
            parse_bind("localhost:8080").expect("ok"),
            "127.0.0.1:8080".parse::<SocketAddr>().expect("addr")
        );
        assert!(parse_bind("127.0.0.1").is_err());
    }
}
