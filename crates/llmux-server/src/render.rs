//! Markdown renderings of non-text chunks (images, sources, audio, login prompts), as g4f's
//! `str(chunk)` does, so plain OpenAI clients see them in `content`.

use std::fmt::Write;

use llmux::{Image, MediaData, Source};
use llmux_core::media;

/// g4f `quote_url`: un-quote when the URL holds `%`, then re-quote everything after
/// `scheme://host/` with form encoding (space → `+`), keeping `/ ? & = #` literal.
pub(crate) fn quote_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let decoded;
    let url = if url.contains('%') {
        decoded = percent_encoding::percent_decode_str(url).decode_utf8_lossy();
        decoded.as_ref()
    } else {
        url
    };
    let host_start = scheme_end + 3;
    let Some(path_start) = url[host_start..].find('/').map(|i| host_start + i + 1) else {
        return url.to_owned();
    };
    let mut out = String::with_capacity(url.len() + 8);
    out.push_str(&url[..path_start]);
    for b in url[path_start..].bytes() {
        match b {
            b'a'..=b'z'
            | b'A'..=b'Z'
            | b'0'..=b'9'
            | b'_'
            | b'.'
            | b'-'
            | b'~'
            | b'/'
            | b'?'
            | b'&'
            | b'='
            | b'#' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn media_src(data: &MediaData) -> String {
    match data {
        MediaData::Url(u) => quote_url(u),
        MediaData::Bytes { mime, data } => media::to_data_uri(mime, data),
    }
}

fn alt_text(alt: &str) -> String {
    alt.replace(['\n', '\r'], " ").replace(['[', ']'], "")
}

/// `ImageResponse` markdown: one image `[![alt](u)](u)`, several `[![#n alt](u)](u)` lines.
pub(crate) fn images(images: &[Image]) -> String {
    let mut out = String::from("\n<!-- generated images start -->\n");
    if let [one] = images {
        let src = media_src(&one.data);
        let _ = write!(out, "[![{}]({src})]({src})", alt_text(&one.alt));
    } else {
        for (i, img) in images.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let src = media_src(&img.data);
            let _ = write!(out, "[![#{} {}]({src})]({src})", i + 1, alt_text(&img.alt));
        }
    }
    out.push_str("\n<!-- generated images end -->\n\n");
    out
}

/// `Sources` markdown: `"\n\n\n\n"` then `> [i] [title](url)` entries joined by `"\n>\n"`.
pub(crate) fn sources(sources: &[Source]) -> String {
    if sources.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n\n\n\n");
    for (i, s) in sources.iter().enumerate() {
        if i > 0 {
            out.push_str("\n>\n");
        }
        let title = s.title.split_whitespace().collect::<Vec<_>>().join(" ");
        let title = if title.is_empty() {
            let rest = s.url.split_once("//").map_or(s.url.as_str(), |(_, r)| r);
            rest.split(['?', '#']).next().unwrap_or(rest).to_owned()
        } else {
            title
        };
        let _ = write!(out, "> [{i}] [{}]({})", alt_text(&title), quote_url(&s.url));
    }
    out
}

/// `AudioResponse` HTML.
pub(crate) fn audio(data: &MediaData) -> String {
    format!("<audio controls src=\"{}\"></audio>", media_src(data))
}

/// `RequestLogin` text.
pub(crate) fn login(label: &str, url: &str) -> String {
    format!("[[Login to {label}]]({url})\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_g4f() {
        assert_eq!(
            quote_url("https://a.b/x y/(1).png?q=a b"),
            "https://a.b/x+y/%281%29.png?q=a+b"
        );
        assert_eq!(quote_url("https://a.b/x%20y.png"), "https://a.b/x+y.png");
        let one = Image {
            data: MediaData::Url("https://h/i.png".into()),
            alt: "a cat".into(),
            needs_auth: false,
        };
        assert_eq!(
            images(std::slice::from_ref(&one)),
            "\n<!-- generated images start -->\n[![a cat](https://h/i.png)](https://h/i.png)\n<!-- generated images end -->\n\n"
        );
        let two = images(&[one.clone(), one]);
        assert!(
            two.contains("[![#1 a cat](https://h/i.png)](https://h/i.png)\n[![#2 a cat]"),
            "{two}"
        );
        let s = sources(&[
            Source {
                url: "https://x.org/p?utm=1".into(),
                title: "  X \n site ".into(),
            },
            Source {
                url: "https://y.org/q".into(),
                title: String::new(),
            },
        ]);
        assert_eq!(
            s,
            "\n\n\n\n> [0] [X site](https://x.org/p?utm=1)\n>\n> [1] [y.org/q](https://y.org/q)"
        );
    }
}
