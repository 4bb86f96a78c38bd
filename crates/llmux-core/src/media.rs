//! Media helpers: extensions and MIME types, magic-number sniffing, data URIs, base64, and saving
//! generated media (g4f `g4f/image/__init__.py`, `g4f/tools/media.py`, `g4f/image/copy_images.py`).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::request::{InputAudio, Media};

/// g4f's `EXTENSIONS_MAP` (extension → MIME type), in its order.
pub const EXTENSIONS: &[(&str, &str)] = &[
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("wav", "audio/wav"),
    ("mp3", "audio/mpeg"),
    ("flac", "audio/flac"),
    ("opus", "audio/opus"),
    ("ogg", "audio/ogg"),
    ("m4a", "audio/m4a"),
    ("mkv", "video/x-matroska"),
    ("webm", "video/webm"),
    ("mp4", "video/mp4"),
];

fn mime_of_extension(ext: &str) -> Option<&'static str> {
    EXTENSIONS.iter().find(|(e, _)| *e == ext).map(|(_, m)| *m)
}

/// g4f `get_extension`: the lower-cased extension of `file_name` if it is a key of [`EXTENSIONS`].
///
/// Like Python's `os.path.splitext`, only the last path component counts and leading dots are part
/// of the name (`.png` has no extension).
pub fn extension_of(file_name: &str) -> Option<&'static str> {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let (stem, ext) = base.rsplit_once('.')?;
    if stem.chars().all(|c| c == '.') {
        return None;
    }
    let ext = ext.to_ascii_lowercase();
    EXTENSIONS.iter().find(|(e, _)| *e == ext).map(|(e, _)| *e)
}

/// The MIME type for a file name: [`EXTENSIONS`] first, then `mime_guess` (image, audio and video
/// types only).
pub fn mime_from_file_name(name: &str) -> Option<String> {
    if let Some(mime) = extension_of(name).and_then(mime_of_extension) {
        return Some(mime.to_owned());
    }
    mime_guess::from_path(name)
        .iter()
        .map(|m| m.essence_str().to_owned())
        .find(|m| m.starts_with("image/") || m.starts_with("audio/") || m.starts_with("video/"))
}

/// `type/subtype` of a MIME type, lower-cased, parameters removed.
fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// g4f `MEDIA_TYPE_MAP` (MIME type → extension; `image/jpeg` → `jpeg`, the later entry winning).
///
/// Deviation: parameters are ignored (`image/png; charset=x` → `png`) and case does not matter,
/// where g4f requires an exact key.
pub fn extension_for_mime(mime: &str) -> Option<&'static str> {
    let mime = essence(mime);
    EXTENSIONS
        .iter()
        .rev()
        .find(|(_, m)| *m == mime)
        .map(|(e, _)| *e)
}

/// g4f `is_accepted_format`: the image MIME type from magic numbers (JPEG, PNG, GIF, WebP).
pub fn sniff_image(data: &[u8]) -> Option<&'static str> {
    // g4f checks, in order: FF D8 FF; PNG; GIF87a/GIF89a; 89 "JFIF" or "JFIF" 00; FF D8; RIFF..WEBP.
    // The prefixes are disjoint, so the JPEG cases can be merged.
    if data.starts_with(b"\xFF\xD8")
        || data.starts_with(b"\x89JFIF")
        || data.starts_with(b"JFIF\x00")
    {
        Some("image/jpeg")
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if data.starts_with(b"RIFF") && data.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else {
        None
    }
}

/// The audio MIME type from magic numbers: WAV (`RIFF....WAVE`), MP3 (`ID3` tag or an MPEG audio
/// frame sync `FF Ex/Fx` with a valid layer), FLAC, Ogg (`audio/opus` when the first page holds an
/// `OpusHead`), M4A (`....ftypM4A `).
pub fn sniff_audio(data: &[u8]) -> Option<&'static str> {
    match data {
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'A',
            b'V',
            b'E',
            ..,
        ] => Some("audio/wav"),
        [b'I', b'D', b'3', ..] => Some("audio/mpeg"),
        // 11-bit frame sync; layer bits `00` are reserved (ADTS AAC uses them).
        [0xFF, b, ..] if b & 0xE0 == 0xE0 && b & 0x06 != 0 => Some("audio/mpeg"),
        [b'f', b'L', b'a', b'C', ..] => Some("audio/flac"),
        [b'O', b'g', b'g', b'S', ..] => {
            // Page header is 27 bytes + a segment table of `data[26]` entries; then the payload.
            let payload = 27 + usize::from(*data.get(26)?);
            if data.get(payload..payload + 8) == Some(b"OpusHead") {
                Some("audio/opus")
            } else {
                Some("audio/ogg")
            }
        }
        [_, _, _, _, b'f', b't', b'y', b'p', b'M', b'4', b'A', ..] => Some("audio/m4a"),
        _ => None,
    }
}

/// [`sniff_image`], then [`sniff_audio`].
pub fn sniff(data: &[u8]) -> Option<&'static str> {
    sniff_image(data).or_else(|| sniff_audio(data))
}

/// g4f `is_data_an_audio`: the audio MIME type of a known file extension, else the MIME type of a
/// data URI matching `^data:(audio/\w+);base64,` (`\w` = `[A-Za-z0-9_]`, so `audio/x-wav` is not
/// recognised, as in g4f).
pub fn audio_mime(data_uri_or_none: Option<&str>, file_name: Option<&str>) -> Option<String> {
    if let Some(mime) = file_name
        .and_then(extension_of)
        .and_then(mime_of_extension)
        .filter(|m| m.starts_with("audio/"))
    {
        return Some(mime.to_owned());
    }
    let rest = data_uri_or_none?.strip_prefix("data:audio/")?;
    let word_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let (subtype, tail) = rest.split_at(word_len);
    if subtype.is_empty() || !tail.starts_with(";base64,") {
        return None;
    }
    Some(format!("audio/{subtype}"))
}

/// A decoded `data:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUri {
    /// The MIME type (`type/subtype`, lower-cased, parameters removed); `None` when omitted.
    pub mime: Option<String>,
    /// The decoded payload.
    pub data: Bytes,
}

/// Parses `data:[<mime>][;param]*[;base64],<payload>`.
///
/// Base64 payloads may lack padding, contain whitespace or newlines, use the URL-safe alphabet or
/// be percent-encoded; other payloads are percent-decoded.
pub fn parse_data_uri(uri: &str) -> Result<DataUri> {
    let uri = uri.trim();
    let rest = match uri.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("data:") => uri.get(5..).unwrap_or_default(),
        _ => {
            return Err(Error::invalid(format!(
                "not a data URI (expected `data:<mime>;base64,<payload>`): {:?}",
                crate::error::snippet(uri, 40)
            )));
        }
    };
    let Some((meta, payload)) = rest.split_once(',') else {
        return Err(Error::invalid(
            "malformed data URI: no `,` between the header and the payload",
        ));
    };
    let mut parts = meta.split(';');
    let mime = parts.next().unwrap_or_default().trim();
    let is_base64 = parts.any(|p| p.trim().eq_ignore_ascii_case("base64"));
    let mime = if mime.is_empty() {
        None
    } else {
        let (ty, sub) = mime.split_once('/').unwrap_or((mime, ""));
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        if !token(ty) || !token(sub) {
            return Err(Error::invalid(format!(
                "malformed data URI: invalid MIME type {:?}",
                crate::error::snippet(mime, 40)
            )));
        }
        Some(mime.to_ascii_lowercase())
    };
    let data = if is_base64 {
        let decoded;
        let payload = if payload.contains('%') {
            decoded = percent_encoding::percent_decode_str(payload).decode_utf8_lossy();
            decoded.as_ref()
        } else {
            payload
        };
        b64_decode(payload).map_err(|e| match e {
            Error::InvalidInput(msg) => Error::invalid(format!("malformed data URI: {msg}")),
            other => other,
        })?
    } else {
        percent_encoding::percent_decode_str(payload).collect()
    };
    Ok(DataUri {
        mime,
        data: Bytes::from(data),
    })
}

/// `data:<mime>;base64,<standard base64 of data>`.
pub fn to_data_uri(mime: &str, data: &[u8]) -> String {
    format!("data:{mime};base64,{}", STANDARD.encode(data))
}

/// Standard base64 with padding.
pub fn b64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes base64 leniently: padding optional, ASCII whitespace ignored, URL-safe `-`/`_` accepted.
pub fn b64_decode(s: &str) -> Result<Vec<u8>> {
    let needs_cleaning = s
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b == b'-' || b == b'_');
    let result = if needs_cleaning {
        let cleaned: Vec<u8> = s
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .map(|b| match b {
                b'-' => b'+',
                b'_' => b'/',
                other => other,
            })
            .collect();
        LENIENT.decode(cleaned)
    } else {
        LENIENT.decode(s)
    };
    result.map_err(|e| Error::invalid(format!("invalid base64: {e}")))
}

/// Serde helpers storing [`Bytes`] as a standard base64 string (a data URI is accepted when
/// reading). Use with `#[serde(with = "crate::media::base64_bytes")]`.
pub mod base64_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the bytes as a standard base64 string.
    pub fn serialize<S: Serializer>(data: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::b64_encode(data))
    }

    /// Reads a base64 string (or a `data:` URI) into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        if s.trim_start().starts_with("data:") {
            super::parse_data_uri(&s)
                .map(|d| d.data)
                .map_err(serde::de::Error::custom)
        } else {
            super::b64_decode(&s)
                .map(Bytes::from)
                .map_err(serde::de::Error::custom)
        }
    }
}

/// The MIME type of an OpenAI `input_audio` format name.
fn audio_format_mime(format: &str) -> Option<&'static str> {
    Some(match format {
        "wav" | "wave" => "audio/wav",
        "mp3" | "mpeg" => "audio/mpeg",
        "flac" => "audio/flac",
        "ogg" => "audio/ogg",
        "opus" => "audio/opus",
        "m4a" => "audio/m4a",
        "webm" => "audio/webm",
        "aac" => "audio/aac",
        _ => return None,
    })
}

/// Converts an OpenAI `input_audio` part into [`Media`]. `data` may be raw base64 or a data URI;
/// the MIME type comes from `format` (`wav` → `audio/wav`, `mp3` → `audio/mpeg`, `flac`, `ogg`,
/// `opus`, `m4a`, `webm`, `aac`), else from the data URI; the file name is `audio.<format>`.
pub fn input_audio_to_media(a: &InputAudio) -> Result<Media> {
    let format = a.format.trim().to_ascii_lowercase();
    let (data, uri_mime) = if a.data.trim_start().starts_with("data:") {
        let uri = parse_data_uri(&a.data)?;
        (uri.data, uri.mime)
    } else {
        let bytes = b64_decode(&a.data)
            .map_err(|e| Error::invalid(format!("input_audio data is not valid base64 ({e})")))?;
        (Bytes::from(bytes), None)
    };
    if data.is_empty() {
        return Err(Error::invalid("input_audio data is empty"));
    }
    let (mime, ext) = match audio_format_mime(&format) {
        Some(mime) => (mime.to_owned(), format),
        None => match uri_mime.filter(|m| m.starts_with("audio/")) {
            Some(mime) if format.is_empty() => {
                let ext = extension_for_mime(&mime)
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        mime.trim_start_matches("audio/")
                            .chars()
                            .filter(char::is_ascii_alphanumeric)
                            .collect()
                    });
                (mime, ext)
            }
            _ => {
                return Err(Error::invalid(format!(
                    "unsupported input_audio format {:?} (expected wav, mp3, flac, ogg, opus, m4a, webm or aac)",
                    crate::error::snippet(&a.format, 20)
                )));
            }
        },
    };
    Ok(Media {
        data,
        file_name: Some(format!("audio.{ext}")),
        mime: Some(mime),
    })
}

/// What kind of media an attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// An image.
    Image,
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// Classifies an attachment and returns its MIME type, so providers can reject bad media before
/// sending any request: an explicit MIME type decides the kind; else audio by file name
/// ([`audio_mime`]); else an image by magic bytes; else audio by magic bytes; else
/// [`Error::InvalidInput`].
pub fn classify_media(media: &Media) -> Result<(MediaKind, String)> {
    let name = media.file_name.as_deref().unwrap_or("(unnamed)");
    if let Some(mime) = media.mime.as_deref() {
        let mime = essence(mime);
        let kind = match mime.split_once('/').map(|(ty, _)| ty) {
            Some("image") => MediaKind::Image,
            Some("audio") => MediaKind::Audio,
            Some("video") => MediaKind::Video,
            _ => {
                return Err(Error::invalid(format!(
                    "unsupported media `{name}`: MIME type `{mime}` is not an image, audio or video type"
                )));
            }
        };
        return Ok((kind, mime));
    }
    if let Some(mime) = audio_mime(None, media.file_name.as_deref()) {
        return Ok((MediaKind::Audio, mime));
    }
    if let Some(mime) = sniff_image(&media.data) {
        return Ok((MediaKind::Image, mime.to_owned()));
    }
    if let Some(mime) = sniff_audio(&media.data) {
        return Ok((MediaKind::Audio, mime.to_owned()));
    }
    Err(Error::invalid(format!(
        "unsupported media `{name}`: not a recognised image (png, jpeg, gif, webp) or audio (wav, mp3, flac, ogg, opus, m4a) file"
    )))
}

/// g4f `secure_filename`: URL-unquote, trim, replace each run of characters other than word
/// characters and `.,_+-` by `_`, cut to 100 bytes of UTF-8 (on a character boundary), strip
/// leading/trailing `.,_-+`.
///
/// Word characters are Unicode alphanumerics and `_` (Python's `\w`). The cut is by UTF-8 bytes as
/// in g4f's code (core.md says "100 chars"; the two agree on ASCII), which also keeps generated
/// names below common file-name length limits.
pub fn secure_filename(s: &str) -> String {
    let unquoted = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
    let mut out = String::with_capacity(unquoted.len());
    let mut in_run = false;
    for c in unquoted.trim().chars() {
        if c.is_alphanumeric() || matches!(c, '_' | '.' | ',' | '+' | '-') {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    let mut cut = out.len().min(100);
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    out.trim_matches(['.', ',', '_', '-', '+']).to_owned()
}

/// g4f's generated media file name (`get_filename` as used by `save_response_media`):
/// `<unix>_<secure(tags joined by '+')>+<secure(prompt)>_<sha256(prompt)[:16]>.<ext>`; the tags
/// part (with its `+`) is left out when `tags` is empty, and empty tags are skipped.
///
/// Fails with [`Error::InvalidInput`] when `mime` has no known extension ([`extension_for_mime`]).
pub fn generated_file_name(
    prompt: &str,
    tags: &[&str],
    mime: &str,
    unix_secs: u64,
) -> Result<String> {
    let ext = extension_for_mime(mime)
        .ok_or_else(|| Error::invalid(format!("unsupported media type: {mime}")))?;
    let tags_part = if tags.is_empty() {
        String::new()
    } else {
        let joined: Vec<&str> = tags.iter().copied().filter(|t| !t.is_empty()).collect();
        format!("{}+", secure_filename(&joined.join("+")))
    };
    let digest = Sha256::digest(prompt.as_bytes());
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{unix_secs}_{tags_part}{}_{hash}.{ext}",
        secure_filename(prompt)
    ))
}

/// Saves generated media under `dir` (created if needed) with [`generated_file_name`] (no tags) and
/// returns the path. The name never leaves `dir`; if it exists already, `-1`, `-2`, … is added
/// before the extension instead of overwriting (g4f overwrites).
pub async fn save_media(dir: &Path, prompt: &str, mime: &str, data: &[u8]) -> Result<PathBuf> {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let name = generated_file_name(prompt, &[], mime, unix)?;
    let dir = dir.to_path_buf();
    let data = data.to_vec();
    tokio::task::spawn_blocking(move || save_blocking(&dir, &name, &data))
        .await
        .map_err(|e| Error::Io(format!("saving media failed: {e}")))?
}

fn save_blocking(dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Io(format!("cannot create directory {}: {e}", dir.display())))?;
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    for attempt in 0u32..1000 {
        let candidate = if attempt == 0 {
            name.to_owned()
        } else {
            format!("{stem}-{attempt}.{ext}")
        };
        let path = dir.join(candidate);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                return match file.write_all(data).and_then(|()| file.flush()) {
                    Ok(()) => Ok(path),
                    Err(e) => {
                        drop(file);
                        let _ = std::fs::remove_file(&path);
                        Err(Error::Io(format!("cannot write {}: {e}", path.display())))
                    }
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::Io(format!("cannot create {}: {e}", path.display())));
            }
        }
    }
    Err(Error::Io(format!(
        "cannot save media in {}: too many files named {name}",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_and_mimes() {
        assert_eq!(extension_of("photo.PNG"), Some("png"));
        assert_eq!(extension_of("a/b.c/voice.Mp3"), Some("mp3"));
        assert_eq!(extension_of("archive.tar.gz"), None);
        assert_eq!(extension_of("noext"), None);
        assert_eq!(extension_of(".png"), None);
        assert_eq!(extension_of("dir.png/file"), None);
        assert_eq!(mime_from_file_name("x.jpg").as_deref(), Some("image/jpeg"));
        assert_eq!(mime_from_file_name("x.m4a").as_deref(), Some("audio/m4a"));
        assert_eq!(mime_from_file_name("x.bmp").as_deref(), Some("image/bmp"));
        assert_eq!(mime_from_file_name("x.txt"), None);
        assert_eq!(mime_from_file_name("x"), None);
        assert_eq!(extension_for_mime("image/jpeg"), Some("jpeg"));
        assert_eq!(extension_for_mime("audio/mpeg"), Some("mp3"));
        assert_eq!(extension_for_mime("image/png; charset=x"), Some("png"));
        assert_eq!(extension_for_mime("IMAGE/WEBP"), Some("webp"));
        assert_eq!(extension_for_mime("video/x-matroska"), Some("mkv"));
        assert_eq!(extension_for_mime("text/plain"), None);
        assert_eq!(EXTENSIONS.len(), 14);
    }

    #[test]
    fn image_magic() {
        assert_eq!(sniff_image(b"\xFF\xD8\xFF\xE0rest"), Some("image/jpeg"));
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff_image(b"GIF87a"), Some("image/gif"));
        assert_eq!(sniff_image(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff_image(b"\x89JFIF"), Some("image/jpeg"));
        assert_eq!(sniff_image(b"JFIF\x00"), Some("image/jpeg"));
        assert_eq!(sniff_image(b"\xFF\xD8"), Some("image/jpeg"));
        assert_eq!(
            sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 "),
            Some("image/webp")
        );
        assert_eq!(sniff_image(b"RIFF\x00\x00\x00\x00WAVE"), None);
        assert_eq!(sniff_image(b"RIFF"), None);
        assert_eq!(sniff_image(b"\x89PNG"), None);
        assert_eq!(sniff_image(b""), None);
    }

    #[test]
    fn audio_magic() {
        assert_eq!(
            sniff_audio(b"RIFF\x24\x00\x00\x00WAVEfmt "),
            Some("audio/wav")
        );
        assert_eq!(sniff_audio(b"ID3\x04\x00"), Some("audio/mpeg"));
        assert_eq!(sniff_audio(b"\xFF\xFB\x90\x00"), Some("audio/mpeg"));
        assert_eq!(sniff_audio(b"\xFF\xF3\x90\x00"), Some("audio/mpeg"));
        assert_eq!(sniff_audio(b"\xFF\xE3"), Some("audio/mpeg"));
        assert_eq!(
            sniff_audio(b"\xFF\xF1\x50\x80"),
            None,
            "ADTS AAC is not MP3"
        );
        assert_eq!(sniff_audio(b"fLaC\x00\x00\x00\x22"), Some("audio/flac"));
        let mut ogg = b"OggS\x00\x02".to_vec();
        ogg.resize(26, 0);
        ogg.push(1); // one segment
        ogg.push(19); // segment length
        let mut vorbis = ogg.clone();
        ogg.extend_from_slice(b"OpusHead\x01\x02");
        vorbis.extend_from_slice(b"\x01vorbis\x00\x00");
        assert_eq!(sniff_audio(&ogg), Some("audio/opus"));
        assert_eq!(sniff_audio(&vorbis), Some("audio/ogg"));
        assert_eq!(sniff_audio(b"OggS"), None, "truncated page header");
        assert_eq!(
            sniff_audio(b"\x00\x00\x00\x20ftypM4A \x00"),
            Some("audio/m4a")
        );
        assert_eq!(sniff_audio(b"\x00\x00\x00\x20ftypisom"), None);
        assert_eq!(sniff_audio(b"hello"), None);
        assert_eq!(sniff(b"\xFF\xD8\xFF"), Some("image/jpeg"));
        assert_eq!(sniff(b"fLaC"), Some("audio/flac"));
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn audio_mime_rules() {
        assert_eq!(
            audio_mime(None, Some("a.WAV")).as_deref(),
            Some("audio/wav")
        );
        assert_eq!(audio_mime(None, Some("a.png")), None);
        assert_eq!(
            audio_mime(Some("data:audio/mpeg;base64,AAAA"), Some("a.png")).as_deref(),
            Some("audio/mpeg")
        );
        assert_eq!(audio_mime(Some("data:audio/x-wav;base64,AAAA"), None), None);
        assert_eq!(audio_mime(Some("data:audio/;base64,AAAA"), None), None);
        assert_eq!(audio_mime(Some("data:audio/wav,AAAA"), None), None);
        assert_eq!(audio_mime(Some("data:image/png;base64,AAAA"), None), None);
        assert_eq!(audio_mime(None, None), None);
    }

    #[test]
    fn data_uris() {
        let d = parse_data_uri("data:image/png;base64,iVBORw0KGgo=").expect("valid");
        assert_eq!(d.mime.as_deref(), Some("image/png"));
        assert_eq!(&d.data[..], b"\x89PNG\r\n\x1a\n");
        // Missing padding, whitespace, newlines, URL-safe alphabet, upper-case scheme.
        let d = parse_data_uri("DATA:Image/PNG;base64,iVBO\nRw0K\r\n Ggo").expect("lenient");
        assert_eq!(d.mime.as_deref(), Some("image/png"));
        assert_eq!(&d.data[..], b"\x89PNG\r\n\x1a\n");
        assert_eq!(
            &parse_data_uri("data:;base64,-_8=").expect("url-safe").data[..],
            b"\xfb\xff"
        );
        assert_eq!(
            &parse_data_uri("data:;base64,%2B%2F8%3D").expect("pct").data[..],
            b"\xfb\xff"
        );
        // Parameters and non-base64 payloads.
        let d = parse_data_uri("data:text/plain;charset=utf-8,hello%20world").expect("text");
        assert_eq!(d.mime.as_deref(), Some("text/plain"));
        assert_eq!(&d.data[..], b"hello world");
        let d = parse_data_uri("data:,").expect("empty");
        assert_eq!((d.mime, d.data.len()), (None, 0));
        let round = to_data_uri("audio/wav", b"\x00\x01\x02xyz");
        assert_eq!(round, "data:audio/wav;base64,AAECeHl6");
        assert_eq!(
            &parse_data_uri(&round).expect("roundtrip").data[..],
            b"\x00\x01\x02xyz"
        );

        for (bad, expect) in [
            ("image/png;base64,AAAA", "not a data URI"),
            ("data:image/png;base64", "no `,`"),
            ("data:image/png;base64,@@@", "invalid base64"),
            ("data:image/png;base64,A", "invalid base64"),
            ("data:image png;base64,AAAA", "invalid MIME type"),
            ("data:image/;base64,AAAA", "invalid MIME type"),
            ("dat", "not a data URI"),
            ("dätä:x", "not a data URI"),
        ] {
            let err = parse_data_uri(bad).expect_err(bad);
            assert!(matches!(err, Error::InvalidInput(_)), "{bad}: {err}");
            assert!(err.to_string().contains(expect), "{bad}: {err}");
        }
    }

    #[test]
    fn base64_helpers() {
        assert_eq!(b64_encode(b"hi"), "aGk=");
        assert_eq!(b64_decode("aGk=").expect("padded"), b"hi");
        assert_eq!(b64_decode("aGk").expect("unpadded"), b"hi");
        assert_eq!(b64_decode(" aG\nk= ").expect("whitespace"), b"hi");
        assert!(b64_decode("a").is_err());

        #[derive(serde::Serialize, serde::Deserialize)]
        struct W {
            #[serde(with = "crate::media::base64_bytes")]
            b: Bytes,
        }
        let json = serde_json::to_string(&W {
            b: Bytes::from_static(b"hi"),
        })
        .expect("ser");
        assert_eq!(json, r#"{"b":"aGk="}"#);
        let w: W = serde_json::from_str(&json).expect("de");
        assert_eq!(&w.b[..], b"hi");
        let w: W = serde_json::from_str(r#"{"b":"data:audio/wav;base64,aGk="}"#).expect("uri");
        assert_eq!(&w.b[..], b"hi");
        assert!(serde_json::from_str::<W>(r#"{"b":"!!"}"#).is_err());
    }

    #[test]
    fn input_audio() {
        let a = InputAudio {
            data: b64_encode(b"RIFF\x00\x00\x00\x00WAVE"),
            format: "WAV".into(),
        };
        let m = input_audio_to_media(&a).expect("wav");
        assert_eq!(m.mime.as_deref(), Some("audio/wav"));
        assert_eq!(m.file_name.as_deref(), Some("audio.wav"));
        assert_eq!(&m.data[..], b"RIFF\x00\x00\x00\x00WAVE");

        let a = InputAudio {
            data: "data:audio/mpeg;base64,SUQz".into(),
            format: "mp3".into(),
        };
        let m = input_audio_to_media(&a).expect("mp3 uri");
        assert_eq!(m.mime.as_deref(), Some("audio/mpeg"));
        assert_eq!(m.file_name.as_deref(), Some("audio.mp3"));
        assert_eq!(&m.data[..], b"ID3");

        let a = InputAudio {
            data: "data:audio/flac;base64,ZkxhQw==".into(),
            format: String::new(),
        };
        let m = input_audio_to_media(&a).expect("mime from uri");
        assert_eq!(m.mime.as_deref(), Some("audio/flac"));
        assert_eq!(m.file_name.as_deref(), Some("audio.flac"));

        for (data, format) in [("SUQz", "xyz"), ("@@", "wav"), ("", "wav"), ("SUQz", "")] {
            let a = InputAudio {
                data: data.into(),
                format: format.into(),
            };
            assert!(matches!(
                input_audio_to_media(&a),
                Err(Error::InvalidInput(_))
            ));
        }
        let ogg = InputAudio {
            data: "T2dnUw".into(),
            format: "ogg".into(),
        };
        assert_eq!(
            input_audio_to_media(&ogg).expect("ogg").mime.as_deref(),
            Some("audio/ogg")
        );
    }

    #[test]
    fn classification() {
        let png = Media::from_bytes(&b"\x89PNG\r\n\x1a\n0000"[..], None);
        assert_eq!(
            classify_media(&png).expect("png"),
            (MediaKind::Image, "image/png".into())
        );
        let named = Media::from_bytes(&b"garbage"[..], Some("voice.mp3".into()));
        assert_eq!(
            classify_media(&named).expect("by name"),
            (MediaKind::Audio, "audio/mpeg".into())
        );
        let wav = Media::from_bytes(&b"RIFF\x00\x00\x00\x00WAVEfmt "[..], Some("x.bin".into()));
        assert_eq!(
            classify_media(&wav).expect("wav"),
            (MediaKind::Audio, "audio/wav".into())
        );
        let explicit = Media::from_bytes(&b"x"[..], None).with_mime("Video/MP4; codecs=avc1");
        assert_eq!(
            classify_media(&explicit).expect("explicit"),
            (MediaKind::Video, "video/mp4".into())
        );
        let pdf = Media::from_bytes(&b"%PDF"[..], None).with_mime("application/pdf");
        assert!(matches!(classify_media(&pdf), Err(Error::InvalidInput(_))));
        let bad = Media::from_bytes(&b"hello"[..], Some("notes.txt".into()));
        let err = classify_media(&bad).expect_err("unsupported");
        assert_eq!(
            err.to_string(),
            "invalid input: unsupported media `notes.txt`: not a recognised image (png, jpeg, gif, webp) or audio (wav, mp3, flac, ogg, opus, m4a) file"
        );
    }

    #[test]
    fn secure_names() {
        assert_eq!(secure_filename("  a cat, sitting!  "), "a_cat,_sitting");
        assert_eq!(secure_filename("../../etc/passwd"), "etc_passwd");
        assert_eq!(secure_filename("%2E%2E%2Fx%20y"), "x_y");
        assert_eq!(secure_filename("a_ b"), "a__b");
        assert_eq!(secure_filename("Ünïcödé 猫"), "Ünïcödé_猫");
        assert_eq!(secure_filename("+-.,_"), "");
        assert_eq!(secure_filename("a+b-c.d"), "a+b-c.d");
        assert_eq!(secure_filename(&"x".repeat(150)), "x".repeat(100));
        // 100-byte cut on a character boundary: 49 × "é" (98 bytes) + partial é dropped.
        assert_eq!(secure_filename(&"é".repeat(60)), "é".repeat(50));
        assert_eq!(
            secure_filename(&format!("a{}", "é".repeat(60))),
            format!("a{}", "é".repeat(49))
        );
        assert_eq!(secure_filename("%ZZ"), "ZZ");
        assert_eq!(secure_filename("a/b\\c"), "a_b_c");
    }

    #[test]
    fn generated_names() {
        // sha256("a cat") = 2d9f2d3e...
        let digest = Sha256::digest(b"a cat");
        let hex16: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let name = generated_file_name("a cat", &[], "image/jpeg", 1_700_000_000).expect("name");
        assert_eq!(name, format!("1700000000_a_cat_{hex16}.jpeg"));
        let name =
            generated_file_name("a cat", &["flux", "", "hd x"], "image/png", 1).expect("tags");
        assert_eq!(name, format!("1_flux+hd_x+a_cat_{hex16}.png"));
        assert_eq!(hex16.len(), 16);
        let err = generated_file_name("p", &[], "text/html", 1).expect_err("unsupported");
        assert_eq!(
            err.to_string(),
            "invalid input: unsupported media type: text/html"
        );
        assert!(
            generated_file_name("p", &[], "audio/mpeg", 1)
                .expect("mp3")
                .ends_with(".mp3")
        );
    }

    #[tokio::test]
    async fn saving() {
        let dir = std::env::temp_dir().join(format!(
            "llmux-media-test-{}",
            crate::random::random_hex(12)
        ));
        let p1 = save_media(&dir, "../../escape me", "image/png", b"one")
            .await
            .expect("save");
        let p2 = save_media(&dir, "../../escape me", "image/png", b"two")
            .await
            .expect("save again");
        assert_eq!(p1.parent(), Some(dir.as_path()));
        assert_eq!(p2.parent(), Some(dir.as_path()));
        assert_eq!(std::fs::read(&p1).expect("read"), b"one");
        assert_eq!(std::fs::read(&p2).expect("read"), b"two");
        let n1 = p1.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(n1.contains("_escape_me_") && n1.ends_with(".png"), "{n1}");
        assert!(save_media(&dir, "x", "text/plain", b"").await.is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
