//! # llmux-cookies
//!
//! Browser credentials for llmux providers, the way g4f users hand them over: a **cookies
//! directory** holding
//!
//! - `*.har` captures (the cookies of each captured request, by the request's host),
//! - `*.json` cookie exports (browser-extension format: a list of `{domain, name, value,
//!   expirationDate}`), and
//! - Netscape `*.txt` `cookies.txt` files.
//!
//! [`CookieDir`] reads the directory and re-reads it when a file changes (a `stat` of the
//! directory's entries: no watcher thread, works on every platform and file system). By default
//! it looks before each lookup; [`CookieDir::recheck_every`] looks at most once per interval
//! (the gateway: once a second, so requests do not pay for directory reads), while a file
//! written through [`store_file`] in this process is seen by the next lookup either way.
//! Cookies are matched to a provider by domain ([`domain_matches`]) against the hosts of the
//! provider's default origins (`huggingface.co` → HuggingChat and the Phi-4 Space's Hub origin);
//! expired cookies are ignored, and [`Lookup::expired`] tells which ones were.
//!
//! Secrets: cookie values are [`Secret`]s (masked in `Debug`); errors name files, lines and
//! cookie names, never values.
//!
//! ```
//! use std::path::Path;
//! use llmux_cookies::{hosts_of, lookup_in, parse_netscape};
//!
//! // a cookies.txt export: one session cookie and one that expired at 1000
//! let text = "# Netscape HTTP Cookie File\n\
//!     .huggingface.co\tTRUE\t/\tTRUE\t0\thf-chat\tsession-value\n\
//!     huggingface.co\tFALSE\t/\tTRUE\t1000\told\tstale-value\n";
//! let records = parse_netscape(Path::new("cookies.txt"), text)?;
//! assert_eq!(records.len(), 2);
//!
//! let hosts = hosts_of(["https://huggingface.co/chat"]);
//! let found = lookup_in(&records, &hosts, 2000);
//! assert_eq!(found.cookies.get("hf-chat").map(|v| v.expose()), Some("session-value"));
//! assert!(found.cookies.get("old").is_none());
//! assert_eq!(found.expired.len(), 1);
//! // the note names the cookie and the file, never the value
//! let note = found.expired_note().unwrap_or_default();
//! assert!(note.contains("`old`") && !note.contains("stale-value"));
//!
//! // other hosts get nothing
//! assert!(lookup_in(&records, &hosts_of(["https://example.com/"]), 2000).cookies.is_empty());
//! # Ok::<(), llmux_cookies::FileError>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use llmux_core::{Cookies, Secret};

mod hf;
mod parse;
mod store;
pub mod time;

pub use hf::hf_token;
pub use parse::{Format, parse_file, parse_har, parse_json, parse_netscape};
pub use store::{MAX_FILE_BYTES, StoreError, sanitize_file_name, store_file};

/// Environment variable naming the cookies directory.
pub const COOKIES_DIR_ENV: &str = "LLMUX_COOKIES_DIR";

/// The default cookies directory: `<config dir>/llmux/cookies` (`~/.config/llmux/cookies`).
pub fn default_dir() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("llmux").join("cookies"))
}

/// One cookie read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieRecord {
    /// Cookie domain, lower-cased, without a leading dot.
    pub domain: String,
    /// Cookie name.
    pub name: String,
    /// Cookie value.
    pub value: Secret,
    /// Expiry in seconds since the epoch; `None` for a session cookie.
    pub expires: Option<i64>,
    /// The file it came from.
    pub file: PathBuf,
}

impl CookieRecord {
    fn new(file: &Path, domain: &str, name: &str, value: &str, expires: Option<i64>) -> Self {
        Self {
            domain: domain.trim().trim_start_matches('.').to_ascii_lowercase(),
            name: name.to_owned(),
            value: Secret::new(value),
            expires,
            file: file.to_owned(),
        }
    }

    /// True when the cookie has expired at `now` (seconds since the epoch).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// A cookie file that could not be read, naming the file and (when known) the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cookie file {}{}: {message}", file.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct FileError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong (never a cookie value).
    pub message: String,
}

impl FileError {
    fn new(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }
}

/// Reads and parses one cookie file (at most [`MAX_FILE_BYTES`]).
pub fn read_file(path: &Path) -> Result<Vec<CookieRecord>, FileError> {
    let len = std::fs::metadata(path)
        .map_err(|e| FileError::new(path, None, format!("cannot read: {e}")))?
        .len();
    if len > MAX_FILE_BYTES as u64 {
        return Err(FileError::new(
            path,
            None,
            format!("larger than the limit of {MAX_FILE_BYTES} bytes"),
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| FileError::new(path, None, format!("cannot read: {e}")))?;
    let text =
        String::from_utf8(bytes).map_err(|_| FileError::new(path, None, "not UTF-8 text"))?;
    parse_file(path, &text)
}

/// True when a cookie for `cookie_domain` is sent to `host`: the same host, or a subdomain of
/// it (`huggingface.co` matches `huggingface.co` and `www.huggingface.co`, not
/// `nothuggingface.co`).
pub fn domain_matches(cookie_domain: &str, host: &str) -> bool {
    let d = cookie_domain.trim_start_matches('.').to_ascii_lowercase();
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    !d.is_empty() && (h == d || h.strip_suffix(&d).is_some_and(|p| p.ends_with('.')))
}

/// The hosts of URLs (`https://huggingface.co/chat` → `huggingface.co`).
pub fn hosts_of<'a>(urls: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = urls.into_iter().filter_map(parse::url_host).collect();
    out.dedup();
    out
}

/// What the directory holds for one provider.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// The cookies still valid, ready for the provider.
    pub cookies: Cookies,
    /// Matching cookies that expired (ignored).
    pub expired: Vec<CookieRecord>,
}

impl Lookup {
    /// A one-line explanation of the expired cookies (file, name and date; no value).
    pub fn expired_note(&self) -> Option<String> {
        let parts: Vec<String> = self
            .expired
            .iter()
            .map(|r| {
                format!(
                    "cookie `{}` in {} expired {}",
                    r.name,
                    r.file.display(),
                    r.expires.map(time::format_utc).unwrap_or_default()
                )
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Directory state at one moment: file names with modification times and sizes.
type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

#[derive(Debug, Default)]
struct Snapshot {
    stamp: Option<Stamp>,
    records: Arc<Vec<CookieRecord>>,
    errors: Arc<Vec<FileError>>,
    /// When the directory was last looked at, and [`STORED`] at that moment.
    checked: Option<(Instant, u64)>,
}

/// Counts the files [`store_file`] wrote in this process: a lookup after a store looks at the
/// directory again whatever its interval.
pub(crate) static STORED: AtomicU64 = AtomicU64::new(0);

/// A cookies directory, re-read when its files change.
#[derive(Debug)]
pub struct CookieDir {
    dir: PathBuf,
    recheck: Duration,
    state: Mutex<Snapshot>,
}

impl CookieDir {
    /// The directory `dir` (need not exist yet); nothing is read until first use.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            recheck: Duration::ZERO,
            state: Mutex::new(Snapshot::default()),
        }
    }

    /// Looks at the directory at most once per `interval` on lookups (files written through
    /// [`store_file`] in this process are still seen at once; [`CookieDir::refresh`] always
    /// looks).
    pub fn recheck_every(mut self, interval: Duration) -> Self {
        self.recheck = interval;
        self
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The cookie files of the directory (by supported extension), sorted by name.
    fn stamp(&self) -> Stamp {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Stamp = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| Format::of(p).is_some() && p.is_file())
            .map(|p| {
                let meta = std::fs::metadata(&p).ok();
                let modified = meta.as_ref().and_then(|m| m.modified().ok());
                (p, modified, meta.map_or(0, |m| m.len()))
            })
            .collect();
        out.sort();
        out
    }

    /// Re-reads the directory if a file was added, removed or changed; returns the records and
    /// the files that failed to parse (each logged once, as a warning).
    pub fn refresh(&self) -> (Arc<Vec<CookieRecord>>, Arc<Vec<FileError>>) {
        let stored = STORED.load(Ordering::Acquire);
        let stamp = self.stamp();
        let mut state = self.lock();
        state.checked = Some((Instant::now(), stored));
        if state.stamp.as_ref() != Some(&stamp) {
            let mut records = Vec::new();
            let mut errors = Vec::new();
            for (path, _, _) in &stamp {
                match read_file(path) {
                    Ok(r) => records.extend(r),
                    Err(e) => {
                        // once per change of the directory: the error names file and line only
                        tracing::warn!("{e}; the file is skipped");
                        errors.push(e);
                    }
                }
            }
            state.records = Arc::new(records);
            state.errors = Arc::new(errors);
            state.stamp = Some(stamp);
        }
        (state.records.clone(), state.errors.clone())
    }

    /// The cookies for a provider whose origins are on `hosts`, at `now`.
    pub fn lookup(&self, hosts: &[String], now: i64) -> Lookup {
        let (records, _) = self.current();
        lookup_in(&records, hosts, now)
    }

    /// The records, looking at the directory again when the interval has passed or a file was
    /// stored since the last look.
    fn current(&self) -> (Arc<Vec<CookieRecord>>, Arc<Vec<FileError>>) {
        {
            let state = self.lock();
            if let Some((at, stored)) = state.checked
                && stored == STORED.load(Ordering::Acquire)
                && at.elapsed() < self.recheck
            {
                return (state.records.clone(), state.errors.clone());
            }
        }
        self.refresh()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The cookies of `records` for `hosts` at `now` (later files override earlier ones).
pub fn lookup_in(records: &[CookieRecord], hosts: &[String], now: i64) -> Lookup {
    let mut out = Lookup::default();
    for r in records {
        if !hosts.iter().any(|h| domain_matches(&r.domain, h)) {
            continue;
        }
        if r.is_expired(now) {
            out.expired.push(r.clone());
        } else {
            out.cookies.insert(r.name.clone(), r.value.clone());
        }
    }
    // an expired copy with a valid one elsewhere is not worth a warning
    out.expired.retain(|r| out.cookies.get(&r.name).is_none());
    out
}
