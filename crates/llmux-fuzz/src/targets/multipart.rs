//! `multipart/form-data`: the testkit's parser (what the fakes use to read uploads) and the
//! core's builder, checked against each other.

use llmux_core::http::Multipart;
use llmux_testkit::huggingchat::{FormPart, MAX_PARTS, parse_multipart};

use crate::Target;
use crate::engine::{bucket, fnv};

/// `parse_multipart` on arbitrary bodies, and `parse(build(fields)) == fields`.
pub const MULTIPART: Target = Target {
    name: "multipart",
    about: "multipart/form-data: testkit parse_multipart (first line = Content-Type, rest = body) and a core Multipart build/parse round trip",
    run: multipart,
    seeds: multipart_seeds,
    dictionary: &[
        b"multipart/form-data; boundary=",
        b"boundary=\"a;b\"",
        b"--XX",
        b"--XX--",
        b"\r\n",
        b"\r\n\r\n",
        b"Content-Disposition: form-data; name=\"",
        b"; filename=\"",
        b"Content-Type: image/png",
        b"\"",
        b"\\",
        b";",
        b"\x00",
    ],
};

fn multipart_seeds() -> Vec<Vec<u8>> {
    vec![
        b"multipart/form-data; boundary=XX\n--XX\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n{\"a\":1}\r\n--XX\r\nContent-Disposition: form-data; name=\"files\"; filename=\"base64;x.png\"\r\nContent-Type: image/png\r\n\r\naGk=\r\n--XX--\r\n".to_vec(),
        b"multipart/form-data; boundary=\"----peer;boundary\"\n------peer;boundary\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a \\\"b\\\".wav\"\r\n\r\nRIFF\r\n------peer;boundary--\r\n".to_vec(),
    ]
}

/// `(name, file name, content type, data)` of one part.
type Field = (String, Option<String>, Option<String>, Vec<u8>);

/// Fields for the round trip: the input split at `\x1e` into parts, each `name\x1ffile\x1ftype\x1fdata`.
fn fields(data: &[u8]) -> Vec<Field> {
    data.split(|b| *b == 0x1e)
        .take(MAX_PARTS)
        .map(|part| {
            let mut it = part.splitn(4, |b| *b == 0x1f);
            let name = String::from_utf8_lossy(it.next().unwrap_or_default()).into_owned();
            let file = it.next().map(|f| String::from_utf8_lossy(f).into_owned());
            let ty = it.next().map(|t| String::from_utf8_lossy(t).into_owned());
            let body = it.next().unwrap_or_default().to_vec();
            (name, file, ty, body)
        })
        .collect()
}

/// What the builder promises for a name or file name: `"` becomes `%22`, CR and LF spaces.
fn quoted(s: &str) -> String {
    s.replace('"', "%22").replace(['\r', '\n'], " ")
}

fn multipart(data: &[u8]) -> u64 {
    let mut sig = Vec::new();
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (
            data.get(..i).unwrap_or_default(),
            data.get(i + 1..).unwrap_or_default(),
        ),
        None => (data, &[][..]),
    };
    let content_type = String::from_utf8_lossy(head);
    match parse_multipart(&content_type, body) {
        Ok(parts) => {
            assert!(parts.len() <= MAX_PARTS);
            let total: usize = parts.iter().map(|p| p.data.len()).sum();
            assert!(total <= body.len());
            sig.push(bucket(parts.len()));
        }
        Err(e) => sig.push(100 + bucket(e.len())),
    }
    // Round trip through the core's builder.
    let wanted = fields(data);
    let mut form = Multipart::new();
    for (name, file, ty, body) in &wanted {
        form = match file {
            Some(f) => form.file(
                name.clone(),
                f.clone(),
                ty.clone().unwrap_or_default(),
                body.clone(),
            ),
            None => form.text(name.clone(), String::from_utf8_lossy(body).into_owned()),
        };
    }
    let ct = form.content_type();
    let bytes = form.into_bytes();
    let parsed: Vec<FormPart> = parse_multipart(&ct, &bytes).expect("the builder's output parses");
    assert_eq!(parsed.len(), wanted.len(), "part count");
    for (p, (name, file, ty, body)) in parsed.iter().zip(&wanted) {
        assert_eq!(p.name, quoted(name), "name");
        assert_eq!(p.file_name, file.as_deref().map(quoted), "file name");
        if file.is_some() {
            let ty = ty.clone().unwrap_or_default();
            let ty = ty.replace(['\r', '\n'], " ");
            assert_eq!(p.content_type.as_deref(), Some(ty.trim()), "content type");
            assert_eq!(&p.data[..], &body[..], "file data");
        } else {
            assert_eq!(
                &p.data[..],
                String::from_utf8_lossy(body).as_bytes(),
                "text data"
            );
        }
    }
    fnv(&sig)
}
