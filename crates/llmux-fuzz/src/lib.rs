//! Stable-Rust fuzz harness for llmux's parsers and decoders.
//!
//! Every [`Target`] is a function of arbitrary bytes that drives one parser the way untrusted
//! input reaches it (an upstream's byte stream split at arbitrary points, a client's request
//! body, a data URI, …) and checks properties on the way: it must not panic, must terminate
//! quickly, and its outputs must stay proportional to its input (decoded data never larger than
//! `k ×` the input, bounded nesting). A property violation is a panic, which the runner catches.
//!
//! The `llmux-fuzz` binary runs the targets for a bounded time (`cargo xtask fuzz`); see
//! [`runner`] and the crate README.
//!
//! ```
//! let target = llmux_fuzz::target("sse").expect("target");
//! (target.run)(b"data: hello\n\n");
//! ```

pub mod engine;
pub mod runner;
pub mod targets;

use std::path::{Path, PathBuf};

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name used on the command line.
    pub name: &'static str,
    /// What the target drives.
    pub about: &'static str,
    /// Runs one input; returns a behaviour signature (inputs with a new signature join the
    /// corpus). Panics on a property violation.
    pub run: fn(&[u8]) -> u64,
    /// Built-in seed inputs (the files in `seeds/<name>/` are added to them).
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens the mutator splices in.
    pub dictionary: &'static [&'static [u8]],
}

/// Every target, in the order `all` runs them.
pub fn all_targets() -> Vec<Target> {
    targets::all()
}

/// The target called `name` (including the harness self-test, `selftest`).
pub fn target(name: &str) -> Option<Target> {
    all_targets()
        .into_iter()
        .chain([targets::SELFTEST])
        .find(|t| t.name == name)
}

/// The seed directory of the crate's source tree.
pub fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
}

/// The seeds of `target`: built-in ones plus the files in `seeds/<name>/`, sorted by file name.
pub fn seeds(target: &Target) -> Vec<Vec<u8>> {
    let mut out = (target.seeds)();
    let dir = seed_dir().join(target.name);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for p in paths {
            if let Ok(bytes) = std::fs::read(&p) {
                out.push(bytes);
            }
        }
    }
    out
}

/// `bytes` as an escaped string (printable ASCII kept, the rest as `\xNN`), cut after `max`
/// bytes.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_accepts_its_seeds_and_trivial_inputs() {
        for t in all_targets() {
            for s in seeds(&t) {
                (t.run)(&s);
            }
            (t.run)(b"");
            (t.run)(&[0xff; 3]);
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(escape(b"a\n\x00\\", 10), "a\\n\\x00\\\\");
        assert_eq!(escape(b"abcdef", 2), "ab… (6 bytes)");
    }
}
