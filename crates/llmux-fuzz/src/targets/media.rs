//! Data URIs, base64 and the other media helpers of the core.

use llmux_core::media::{
    audio_mime, b64_decode, b64_encode, classify_media, extension_for_mime, extension_of,
    generated_file_name, input_audio_to_media, mime_from_file_name, parse_data_uri,
    secure_filename, sniff, to_data_uri,
};
use llmux_core::{InputAudio, Media};

use crate::Target;
use crate::engine::fnv;

/// `parse_data_uri` and friends.
pub const DATA_URI: Target = Target {
    name: "data-uri",
    about: "data: URIs (base64, percent-encoding, MIME), b64 round trips, audio/MIME detection, secure_filename, classify_media, input_audio",
    run: data_uri,
    seeds: data_uri_seeds,
    dictionary: &[
        b"data:",
        b"DATA:",
        b"image/png",
        b"audio/wav",
        b"audio/x-wav",
        b";base64,",
        b";charset=utf-8",
        b",",
        b"%2C",
        b"%20",
        b"%",
        b"=",
        b"==",
        b"-",
        b"_",
        b"\n",
        b" ",
        b"iVBORw0KGgo",
        b"UklGR",
        b"/9j/",
        b"R0lGOD",
        b"SUQz",
        b"ZkxhQw",
        b"T2dnUw",
        b".png",
        b".wav",
        b".mp3",
        b"..",
        b"/",
        b"\\",
    ],
};

fn data_uri_seeds() -> Vec<Vec<u8>> {
    [
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
        "data:audio/wav;base64,UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=",
        "data:,Hello%2C%20World%21",
        "data:text/plain;charset=US-ASCII;base64,SGVsbG8=",
        "data:image/jpeg;base64,/9j/4A-_ Q\n==",
        "x.mp3",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn data_uri(data: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(data);
    let mut sig = Vec::new();
    match parse_data_uri(&text) {
        Ok(uri) => {
            assert!(
                uri.data.len() <= text.len(),
                "{} bytes decoded from {}",
                uri.data.len(),
                text.len()
            );
            if let Some(mime) = &uri.mime {
                assert_eq!(mime, &mime.to_ascii_lowercase());
                assert_eq!(mime.matches('/').count(), 1, "{mime:?}");
                // Rendering and parsing again gives the same thing back.
                let again =
                    parse_data_uri(&to_data_uri(mime, &uri.data)).expect("own data URI parses");
                assert_eq!(again, uri);
            }
            sig.push(1 + u64::from(uri.mime.is_some()));
            let media = Media::from_data_uri(&text, None).expect("same URI parses for Media");
            assert_eq!(media.data, uri.data);
        }
        Err(e) => {
            assert!(
                e.to_string().len() <= 512,
                "error message of {} bytes",
                e.to_string().len()
            );
            sig.push(10);
        }
    }
    if let Ok(bytes) = b64_decode(&text) {
        assert!(bytes.len() <= text.len() * 3 / 4 + 3);
        sig.push(20);
    }
    assert_eq!(
        b64_decode(&b64_encode(data)).expect("own base64 decodes"),
        data
    );
    let name = secure_filename(&text);
    assert!(
        name.len() <= 100,
        "secure_filename kept {} bytes",
        name.len()
    );
    assert!(
        !name.contains(['/', '\\', '\0']) && !name.starts_with('.'),
        "unsafe file name {name:?}"
    );
    if let Ok(generated) = generated_file_name(&text, &[&text, ""], "image/png", 1_700_000_000) {
        assert!(
            !generated.contains(['/', '\\', '\0']),
            "unsafe file name {generated:?}"
        );
        assert!(generated.len() <= 320);
    }
    let mut half = text.len() / 2;
    while !text.is_char_boundary(half) {
        half -= 1;
    }
    let (first, second) = text.split_at(half);
    let _ = audio_mime(Some(&text), Some(first));
    let _ = audio_mime(Some(second), None);
    let _ = extension_of(&text);
    if let Some(m) = mime_from_file_name(&text) {
        let _ = extension_for_mime(&m);
    }
    let _ = extension_for_mime(&text);
    let _ = sniff(data);
    let media = Media {
        data: bytes::Bytes::copy_from_slice(data),
        file_name: Some(first.to_owned()),
        mime: (data.first().copied().unwrap_or(0) % 2 == 0).then(|| second.to_owned()),
    };
    if let Ok((_, mime)) = classify_media(&media) {
        sig.push(30 + (mime.len() as u64 % 7));
    }
    let audio = InputAudio {
        data: second.to_owned(),
        format: first.chars().take(8).collect(),
    };
    if let Ok(m) = input_audio_to_media(&audio) {
        assert!(m.data.len() <= second.len());
        sig.push(40);
    }
    fnv(&sig)
}
