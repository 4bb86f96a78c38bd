//! Adding files to the cookies directory (`llmux cookies import`, `POST /v1/upload_cookies`).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{CookieRecord, FileError, Format, parse_file};

/// Largest cookie file accepted (HAR captures can be large).
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Why a file was not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The name is unusable (empty, a path, or an unsupported extension).
    #[error("file name {0:?} is not accepted: use a plain name ending in .har, .json or .txt")]
    BadName(String),
    /// Larger than [`MAX_FILE_BYTES`].
    #[error("{name} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The file name.
        name: String,
        /// The limit.
        limit: usize,
    },
    /// The content does not parse.
    #[error(transparent)]
    Invalid(#[from] FileError),
    /// The file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The target.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A safe file name for the directory: the last path component of `name`, with characters
/// other than letters, digits, `.`, `-` and `_` replaced by `_`, no leading dot, at most 128
/// characters, and a supported extension. `None` when nothing usable remains.
pub fn sanitize_file_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next()?.trim();
    let clean: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean.is_empty() || clean.len() > 128 || Format::of(Path::new(clean)).is_none() {
        return None;
    }
    Some(clean.to_owned())
}

/// Validates `data` as a cookie file named `name` and writes it into `dir` (created if
/// missing, owner-only on Unix) atomically; returns the path and what it holds.
pub fn store_file(
    dir: &Path,
    name: &str,
    data: &[u8],
) -> Result<(PathBuf, Vec<CookieRecord>), StoreError> {
    let clean = sanitize_file_name(name).ok_or_else(|| StoreError::BadName(name.to_owned()))?;
    if data.len() > MAX_FILE_BYTES {
        return Err(StoreError::TooLarge {
            name: clean,
            limit: MAX_FILE_BYTES,
        });
    }
    let target = dir.join(&clean);
    let text = std::str::from_utf8(data)
        .map_err(|_| FileError::new(Path::new(&clean), None, "not UTF-8 text"))?;
    let records = parse_file(Path::new(&clean), text)?;
    let io = |source| StoreError::Io {
        path: target.clone(),
        source,
    };
    create_private_dir(dir).map_err(io)?;
    let tmp = dir.join(format!(".{clean}.{}.tmp", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = opts
        .open(&tmp)
        .and_then(|mut f| f.write_all(data))
        .and_then(|()| std::fs::rename(&tmp, &target));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    crate::STORED.fetch_add(1, std::sync::atomic::Ordering::Release);
    let records = records
        .into_iter()
        .map(|r| CookieRecord {
            file: target.clone(),
            ..r
        })
        .collect();
    Ok((target, records))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}
