//! Browser cookies for providers: the cookies directory (`--cookies-dir`,
//! `LLMUX_COOKIES_DIR`, default `<config dir>/llmux/cookies`), `llmux cookies import FILE` and
//! `llmux cookies list`, and the [`llmux::CookieSource`] that hands a running client the
//! directory's cookies (re-read when its files change) for each provider by domain.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use llmux::{CookieSource, Error, ProviderInfo};
use llmux_cookies::{CookieDir, CookieRecord, hosts_of, time};
use serde_json::json;

use crate::App;
use crate::exit::{self, CliError};
use crate::term::table;

/// `llmux cookies`.
#[derive(Args, Debug)]
pub(crate) struct CookiesArgs {
    #[command(subcommand)]
    command: CookiesCommand,
}

#[derive(Subcommand, Debug)]
enum CookiesCommand {
    /// Validate a cookie file (.har, .json export or Netscape cookies.txt) and copy it into the
    /// cookies directory.
    Import {
        /// The file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Show which providers get which cookies (values masked), with expiry.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The cookies directory: the flag or `LLMUX_COOKIES_DIR`, else the platform default.
pub(crate) fn resolve_dir(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.filter(|p| !p.as_os_str().is_empty())
        .or_else(llmux_cookies::default_dir)
}

/// The hosts a provider's cookies belong to: those of its default origins.
fn provider_hosts(info: &ProviderInfo) -> Vec<String> {
    hosts_of(info.origins.iter().map(|o| o.default.as_str()))
}

/// A cookie source over `dir` for every provider not in `configured` (those have cookies of
/// their own in the configuration or environment, which win). A provider that needs
/// authentication and whose only matching cookies expired gets [`Error::MissingAuth`] naming
/// the files and cookies.
pub(crate) fn source(dir: Arc<CookieDir>, configured: BTreeSet<String>) -> CookieSource {
    Arc::new(move |info: &ProviderInfo| {
        if configured.contains(&info.name) {
            return Ok(None);
        }
        let found = dir.lookup(&provider_hosts(info), time::now());
        if !found.cookies.is_empty() {
            return Ok(Some(found.cookies));
        }
        match found.expired_note() {
            Some(note) if info.needs_auth => Err(Error::MissingAuth {
                provider: info.name.clone(),
                help: format!(
                    "{note}; export fresh cookies from your browser and run `llmux cookies import FILE`"
                ),
                login_url: Some(info.url.clone()).filter(|u| !u.is_empty()),
            }),
            _ => Ok(None),
        }
    })
}

/// True when the cookies directory holds unexpired cookies for this provider.
pub(crate) fn dir_has_cookies(dir: Option<&CookieDir>, info: &ProviderInfo) -> bool {
    dir.is_some_and(|d| {
        !d.lookup(&provider_hosts(info), time::now())
            .cookies
            .is_empty()
    })
}

/// Runs `llmux cookies`.
pub(crate) fn run(app: &App, args: CookiesArgs) -> Result<u8, CliError> {
    let dir = app
        .cookies_dir
        .clone()
        .ok_or_else(|| CliError::usage("no cookies directory: pass --cookies-dir DIR"))?;
    match args.command {
        CookiesCommand::Import { file } => import(&dir, &file),
        CookiesCommand::List { json } => list(app, &dir, json),
    }
}

fn import(dir: &Path, file: &Path) -> Result<u8, CliError> {
    let records = llmux_cookies::read_file(file).map_err(|e| CliError::usage(e.to_string()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let data = std::fs::read(file)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
    let (path, _) = llmux_cookies::store_file(dir, &name, &data).map_err(|e| match e {
        llmux_cookies::StoreError::Io { .. } => CliError::new(exit::FAILURE, e.to_string()),
        other => CliError::usage(other.to_string()),
    })?;
    let now = time::now();
    let expired = records.iter().filter(|r| r.is_expired(now)).count();
    println!(
        "imported {} ({} cookies, {expired} expired) as {}",
        file.display(),
        records.len(),
        path.display()
    );
    Ok(exit::OK)
}

fn expiry_text(r: &CookieRecord, now: i64) -> String {
    match r.expires {
        None => "session".into(),
        Some(e) if e <= now => format!("expired {}", time::format_utc(e)),
        Some(e) => time::format_utc(e),
    }
}

fn list(app: &App, dir: &Path, as_json: bool) -> Result<u8, CliError> {
    let client = app.client()?;
    let cd = CookieDir::new(dir);
    let (records, errors) = cd.refresh();
    let now = time::now();
    let mut rows = Vec::new();
    for l in client.providers() {
        let hosts = provider_hosts(&l.info);
        for r in records.iter().filter(|r| {
            hosts
                .iter()
                .any(|h| llmux_cookies::domain_matches(&r.domain, h))
        }) {
            rows.push((l.info.name.clone(), r));
        }
    }
    if as_json {
        let v: Vec<_> = rows
            .iter()
            .map(|(p, r)| {
                json!({"provider": p, "domain": r.domain, "name": r.name, "value": "***",
                       "expires": r.expires, "expired": r.is_expired(now), "file": r.file.display().to_string()})
            })
            .collect();
        let errs: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let doc = json!({"dir": dir.display().to_string(), "cookies": v, "errors": errs});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(exit::OK);
    }
    println!("# cookies directory: {}", dir.display());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(p, r)| {
            vec![
                p.clone(),
                r.domain.clone(),
                format!("{}=***", r.name),
                expiry_text(r, now),
                r.file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    if cells.is_empty() {
        println!("no provider has cookies in this directory");
    } else {
        print!(
            "{}",
            table(&["PROVIDER", "DOMAIN", "COOKIE", "EXPIRES", "FILE"], &cells)
        );
    }
    for e in errors.iter() {
        eprintln!("llmux: warning: {e}");
    }
    Ok(exit::OK)
}
