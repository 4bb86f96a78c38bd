//! Turning generated media (URLs or bytes) into files.

use std::path::{Path, PathBuf};

use llmux::core::media as cm;
use llmux::{Client, MediaData};

use crate::exit::{self, CliError};

/// The bytes and MIME type of a generated media item: inline bytes as they are, `data:` URIs
/// decoded, other URLs downloaded through the provider that produced them (with its cookies).
pub(crate) async fn fetch(
    client: &Client,
    provider: &str,
    data: &MediaData,
) -> Result<(String, Vec<u8>), CliError> {
    let (mime, bytes) = match data {
        MediaData::Bytes { mime, data } => (mime.clone(), data.to_vec()),
        MediaData::Url(url) if url.starts_with("data:") => {
            let d = cm::parse_data_uri(url)?;
            (d.mime.unwrap_or_default(), d.data.to_vec())
        }
        MediaData::Url(url) => {
            if provider.is_empty() {
                return Err(CliError::new(
                    exit::FAILURE,
                    "cannot download generated media: the answering provider is unknown",
                ));
            }
            let d = client.download(provider, url).await?;
            (d.mime, d.data.to_vec())
        }
    };
    Ok((normalize_mime(&mime, &bytes), bytes))
}

/// The MIME type without parameters; sniffed from the bytes when missing or generic.
fn normalize_mime(mime: &str, data: &[u8]) -> String {
    let base = mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if cm::extension_for_mime(&base).is_some() {
        return base;
    }
    cm::sniff(data).map(str::to_owned).unwrap_or(base)
}

/// Saves under `dir` with g4f's generated file name (never overwriting).
pub(crate) async fn save_in(
    dir: &Path,
    prompt: &str,
    mime: &str,
    data: &[u8],
) -> Result<PathBuf, CliError> {
    cm::save_media(dir, prompt, mime, data)
        .await
        .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))
}

/// Writes `data` to exactly `path` (replacing it).
pub(crate) fn write_to(path: &Path, data: &[u8]) -> Result<PathBuf, CliError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            CliError::new(
                exit::FAILURE,
                format!("cannot create directory {}: {e}", parent.display()),
            )
        })?;
    }
    std::fs::write(path, data).map_err(|e| {
        CliError::new(
            exit::FAILURE,
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    Ok(path.to_owned())
}

/// `out.png` → `out-2.png` for the `n`-th (1-based) of several outputs.
pub(crate) fn numbered(path: &Path, n: usize) -> PathBuf {
    if n <= 1 {
        return path.to_owned();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_normalization() {
        assert_eq!(normalize_mime("image/png; charset=x", b""), "image/png");
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(normalize_mime("application/octet-stream", png), "image/png");
    }

    #[test]
    fn numbering() {
        assert_eq!(numbered(Path::new("a/out.png"), 1), Path::new("a/out.png"));
        assert_eq!(
            numbered(Path::new("a/out.png"), 3),
            Path::new("a/out-3.png")
        );
        assert_eq!(numbered(Path::new("out"), 2), Path::new("out-2"));
    }
}
