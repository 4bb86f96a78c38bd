//! Cookie files from fixtures: every format, malformed files, domain matching, expiry, storing.

use std::path::{Path, PathBuf};

use llmux_cookies::{
    CookieDir, FileError, StoreError, domain_matches, hf_token, hosts_of, lookup_in, read_file,
    sanitize_file_name, store_file,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("llmux-cookies-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const NOW: i64 = 1_767_225_600; // 2026-01-01

fn hf_hosts() -> Vec<String> {
    hosts_of(["https://huggingface.co/chat"])
}

#[test]
fn har_cookies_by_request_host() {
    let recs = read_file(&fixture("huggingface.har")).expect("parses");
    let names: Vec<(&str, &str)> = recs
        .iter()
        .map(|r| (r.domain.as_str(), r.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("huggingface.co", "hf-chat"),
            ("huggingface.co", "token"),
            ("example.org", "other"),
            ("example.org", "second")
        ]
    );
    assert_eq!(recs[0].expires, Some(4_070_908_800));
    let l = lookup_in(&recs, &hf_hosts(), NOW);
    assert_eq!(l.cookies.header_value(), "hf-chat=har-chat-secret");
    assert_eq!(l.expired.len(), 1);
    let note = l.expired_note().expect("a note");
    assert!(
        note.contains("cookie `token`") && note.contains("huggingface.har"),
        "{note}"
    );
    assert!(note.contains("2001-01-01"), "{note}");
    assert!(!note.contains("har-old-secret"), "{note}");
}

#[test]
fn json_export_and_netscape() {
    let recs = read_file(&fixture("export.json")).expect("parses");
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].domain, "huggingface.co");
    assert_eq!(recs[0].expires, Some(4_102_444_800));
    assert_eq!(recs[1].expires, None);
    let l = lookup_in(&recs, &hosts_of(["https://api.amigochat.io"]), NOW);
    assert!(l.cookies.is_empty());
    assert_eq!(l.expired[0].name, "gone");

    let recs = read_file(&fixture("cookies.txt")).expect("parses");
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].domain, "flowgpt.com");
    assert_eq!(recs[1].name, "sid");
    assert_eq!(recs[1].expires, None, "expiry 0 is a session cookie");
    let l = lookup_in(&recs, &hf_hosts(), NOW);
    assert_eq!(l.cookies.header_value(), "hf-chat=txt-chat-secret");
}

fn err(name: &str) -> FileError {
    read_file(&fixture(name)).expect_err(name)
}

#[test]
fn malformed_files_name_the_file_and_line() {
    let e = err("bad-expiry.txt");
    assert_eq!(e.line, Some(3));
    assert!(e.to_string().starts_with("cookie file "), "{e}");
    assert!(
        e.to_string().contains("bad-expiry.txt, line 3: the expiry"),
        "{e}"
    );
    let e = err("short-line.txt");
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("found 3"), "{e}");
    let e = err("broken.json");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(
        e.to_string()
            .contains("broken.json, line 2: not valid JSON"),
        "{e}"
    );
    let e = err("no-name.json");
    assert!(e.to_string().contains("cookie 2: no `name`"), "{e}");
    let e = err("not-har.har");
    assert!(e.message.contains("log.entries"), "{e}");
    for name in ["bad-expiry.txt", "no-name.json"] {
        let shown = format!("{} {:?}", err(name), err(name));
        assert!(!shown.contains("secret"), "{shown}");
    }
    let missing = read_file(&fixture("missing.txt")).expect_err("missing");
    assert!(missing.to_string().contains("missing.txt"), "{missing}");
}

#[test]
fn domains_match_hosts_and_subdomains_only() {
    assert!(domain_matches(".huggingface.co", "huggingface.co"));
    assert!(domain_matches("huggingface.co", "www.huggingface.co"));
    assert!(domain_matches("HuggingFace.co", "huggingface.co."));
    assert!(!domain_matches("huggingface.co", "nothuggingface.co"));
    assert!(!domain_matches("www.huggingface.co", "huggingface.co"));
    assert!(!domain_matches("", "huggingface.co"));
    assert_eq!(
        hosts_of([
            "https://user:pw@Example.org:8443/a?b",
            "http://[::1]:80/",
            "nope"
        ]),
        ["example.org", "::1"]
    );
}

#[test]
fn records_debug_masks_values() {
    let recs = read_file(&fixture("export.json")).expect("parses");
    let dbg = format!("{recs:?}");
    assert!(!dbg.contains("json-token-secret"), "{dbg}");
}

#[test]
fn directory_is_reread_when_files_change() {
    let dir = temp_dir("reread");
    let cd = CookieDir::new(&dir);
    assert!(cd.lookup(&hf_hosts(), NOW).cookies.is_empty());
    std::fs::copy(fixture("cookies.txt"), dir.join("a.txt")).expect("copy");
    assert_eq!(
        cd.lookup(&hf_hosts(), NOW).cookies.header_value(),
        "hf-chat=txt-chat-secret"
    );
    // a later file (by name) overrides, a broken one is reported and skipped
    std::fs::copy(fixture("huggingface.har"), dir.join("b.har")).expect("copy");
    std::fs::copy(fixture("broken.json"), dir.join("c.json")).expect("copy");
    std::fs::write(dir.join("ignored.md"), "not a cookie file").expect("write");
    assert_eq!(
        cd.lookup(&hf_hosts(), NOW).cookies.header_value(),
        "hf-chat=har-chat-secret"
    );
    let (_, errors) = cd.refresh();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].file.ends_with("c.json"));
    std::fs::remove_file(dir.join("b.har")).expect("rm");
    assert_eq!(
        cd.lookup(&hf_hosts(), NOW).cookies.header_value(),
        "hf-chat=txt-chat-secret"
    );
}

#[test]
fn an_interval_spares_directory_reads_but_stored_files_are_seen_at_once() {
    let dir = temp_dir("interval");
    let cd = CookieDir::new(&dir).recheck_every(std::time::Duration::from_secs(3600));
    assert!(cd.lookup(&hf_hosts(), NOW).cookies.is_empty());
    // a file copied in by hand waits for the interval (or an explicit refresh)
    std::fs::copy(fixture("cookies.txt"), dir.join("a.txt")).expect("copy");
    assert!(cd.lookup(&hf_hosts(), NOW).cookies.is_empty());
    let (records, _) = cd.refresh();
    assert!(!records.is_empty());
    assert_eq!(
        cd.lookup(&hf_hosts(), NOW).cookies.header_value(),
        "hf-chat=txt-chat-secret"
    );
    // a file stored through the crate is seen by the next lookup
    let har = std::fs::read(fixture("huggingface.har")).expect("read");
    llmux_cookies::store_file(&dir, "b.har", &har).expect("stored");
    assert_eq!(
        cd.lookup(&hf_hosts(), NOW).cookies.header_value(),
        "hf-chat=har-chat-secret"
    );
}

#[test]
fn storing_sanitises_names_and_validates() {
    assert_eq!(
        sanitize_file_name("../../etc/x.har").as_deref(),
        Some("x.har")
    );
    assert_eq!(
        sanitize_file_name("C:\\Users\\me\\my cookies.txt").as_deref(),
        Some("my_cookies.txt")
    );
    assert_eq!(sanitize_file_name("..json"), None);
    assert_eq!(sanitize_file_name(".."), None);
    assert_eq!(sanitize_file_name("x.exe"), None);
    assert_eq!(sanitize_file_name(""), None);
    let dir = temp_dir("store");
    let data = std::fs::read(fixture("export.json")).expect("read");
    let (path, recs) = store_file(&dir, "../sub/export.json", &data).expect("stored");
    assert_eq!(path, dir.join("export.json"));
    assert_eq!(recs.len(), 3);
    assert_eq!(std::fs::read(&path).expect("read back"), data);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner-only");
    }
    let bad = std::fs::read(fixture("broken.json")).expect("read");
    assert!(matches!(
        store_file(&dir, "broken.json", &bad),
        Err(StoreError::Invalid(_))
    ));
    assert!(!dir.join("broken.json").exists());
    assert!(matches!(
        store_file(&dir, "evil.sh", b"x"),
        Err(StoreError::BadName(_))
    ));
    let big = vec![b' '; llmux_cookies::MAX_FILE_BYTES + 1];
    assert!(matches!(
        store_file(&dir, "big.json", &big),
        Err(StoreError::TooLarge { .. })
    ));
}

#[test]
fn hf_token_conventions() {
    let dir = temp_dir("hf");
    std::fs::create_dir_all(dir.join(".cache/huggingface")).expect("dir");
    std::fs::write(dir.join(".cache/huggingface/token"), "hf_fromfile\n").expect("write");
    let home = dir.display().to_string();
    let env = |k: &str| (k == "HOME").then(|| home.clone());
    assert_eq!(
        hf_token(&env).map(|s| s.expose().to_owned()).as_deref(),
        Some("hf_fromfile")
    );
    let env = |k: &str| match k {
        "HF_TOKEN" => Some("hf_env".to_owned()),
        "HOME" => Some(home.clone()),
        _ => None,
    };
    assert_eq!(
        hf_token(&env).map(|s| s.expose().to_owned()).as_deref(),
        Some("hf_env")
    );
    std::fs::write(dir.join("custom"), "hf_custom").expect("write");
    let custom = dir.join("custom").display().to_string();
    let env = |k: &str| (k == "HF_TOKEN_PATH").then(|| custom.clone());
    assert_eq!(
        hf_token(&env).map(|s| s.expose().to_owned()).as_deref(),
        Some("hf_custom")
    );
    let env = |k: &str| (k == "HF_HOME").then(|| dir.join("nothing").display().to_string());
    assert!(hf_token(&env).is_none());
}
