//! Project chores: `cargo xtask <task>`.
//!
//! - `ci` — `cargo fmt --check`, `cargo clippy --all-targets --all-features -D warnings`, tests.
//! - `fuzz [target|all] [--seconds N]` — runs the `llmux-fuzz` targets (default: all, 30 s each).
//! - `bench [--peers] [--quick]` — the benchmarks (relay, memory, cold start, micro-benchmarks)
//!   as one table; `--peers` also runs `../shared/bench/peers/peers.sh` with llmux as a target.
//! - `new-provider <name>` — scaffolds `crates/providers/<name>` (package `llmux-provider-<name>`),
//!   wires its feature and re-export into the `llmux` facade, and builds the facade.

mod bench;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn ci() -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args(["test", "--workspace", "--all-features"]))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn pascal(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn insert_after(text: &str, anchor: &str, line: &str) -> Result<String, String> {
    let i = text
        .find(anchor)
        .ok_or_else(|| format!("anchor `{anchor}` not found"))?;
    let end = i + anchor.len();
    Ok(format!("{}\n{}{}", &text[..end], line, &text[end..]))
}

/// Scaffolds a provider crate and wires it into the workspace and the facade.
fn new_provider(name: &str) -> Result<(), String> {
    if !valid_name(name) {
        return Err(format!(
            "invalid provider name `{name}`: use lower-case letters, digits and `-`"
        ));
    }
    let root = root();
    let dir = root.join("crates/providers").join(name);
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let krate = format!("llmux-provider-{name}");
    let ident = name.replace('-', "_");
    let ty = pascal(name);
    fs::create_dir_all(dir.join("src")).map_err(|e| e.to_string())?;
    let manifest = format!(
        r#"[package]
name = "{krate}"
description = "llmux provider `{name}`."
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true
repository.workspace = true
readme = "README.md"

[dependencies]
llmux-core = {{ workspace = true }}

[dev-dependencies]
tokio = {{ workspace = true, features = ["rt-multi-thread", "macros"] }}

[lints]
workspace = true
"#
    );
    let lib = format!(
        r#"//! llmux provider `{name}`.
//!
//! ```
//! use llmux_core::Provider;
//! let p = {ident}::{ty}::new(llmux_core::ProviderConfig::named("{name}"));
//! assert_eq!(p.info().name, "{name}");
//! ```

use std::sync::Arc;

use llmux_core::{{ChatRequest, ChatStream, Chunk, Context, Provider, ProviderConfig, ProviderInfo, Registration}};

/// Provider name.
pub const NAME: &str = "{name}";

/// The `{name}` provider.
pub struct {ty} {{
    info: ProviderInfo,
    #[allow(dead_code)]
    config: ProviderConfig,
}}

impl {ty} {{
    /// An instance for this configuration.
    pub fn new(config: ProviderConfig) -> Self {{
        let info = ProviderInfo {{
            name: NAME.into(),
            g4f_name: "{ty}".into(),
            label: "{ty}".into(),
            working: false,
            supports_stream: true,
            ..ProviderInfo::default()
        }};
        Self {{ info, config }}
    }}
}}

impl Provider for {ty} {{
    fn info(&self) -> &ProviderInfo {{
        &self.info
    }}

    fn chat(&self, request: ChatRequest, _ctx: Context) -> ChatStream {{
        Box::pin(llmux_core::async_stream::try_stream! {{
            yield Chunk::text(llmux_core::prompt::last_user_message(&request.messages));
        }})
    }}
}}

llmux_core::inventory::submit! {{
    Registration {{ name: NAME, g4f_name: "{ty}", extra_origins: &[], build: |cfg| Arc::new({ty}::new(cfg)) }}
}}
"#,
        ident = krate.replace('-', "_"),
    );
    fs::write(dir.join("Cargo.toml"), manifest).map_err(|e| e.to_string())?;
    fs::write(dir.join("src/lib.rs"), lib).map_err(|e| e.to_string())?;
    fs::write(
        dir.join("README.md"),
        format!(
            "# {krate}\n\nllmux provider `{name}`. Enable it with the `llmux` feature `{name}`.\n"
        ),
    )
    .map_err(|e| e.to_string())?;

    // workspace dependency
    let ws_path = root.join("Cargo.toml");
    let ws = fs::read_to_string(&ws_path).map_err(|e| e.to_string())?;
    let ws = insert_after(
        &ws,
        "# internal crates",
        &format!(r#"{krate} = {{ path = "crates/providers/{name}", version = "0.1.0" }}"#),
    )?;
    fs::write(&ws_path, ws).map_err(|e| e.to_string())?;

    // facade feature, dependency and re-export
    let facade = root.join("crates/llmux/Cargo.toml");
    let text = fs::read_to_string(&facade).map_err(|e| e.to_string())?;
    let text = text.replacen("default = [", &format!("default = [\"{name}\", "), 1);
    let text = insert_after(&text, "[features]", &format!("{name} = [\"dep:{krate}\"]"))?;
    let text = insert_after(
        &text,
        "[dependencies]",
        &format!("{krate} = {{ workspace = true, optional = true }}"),
    )?;
    fs::write(&facade, text).map_err(|e| e.to_string())?;
    let lib_path = root.join("crates/llmux/src/lib.rs");
    let lib = fs::read_to_string(&lib_path).map_err(|e| e.to_string())?;
    let marker = "// @provider-reexports";
    let i = lib
        .find(marker)
        .ok_or("re-export marker not found in crates/llmux/src/lib.rs")?;
    let lib = format!(
        "{}#[cfg(feature = \"{name}\")]\npub use {} as {};\n{}",
        &lib[..i],
        krate.replace('-', "_"),
        ident,
        &lib[i..]
    );
    fs::write(&lib_path, lib).map_err(|e| e.to_string())?;

    run(cargo().args([
        "build",
        "-p",
        "llmux",
        "--no-default-features",
        "--features",
        name,
    ]))?;
    eprintln!(
        "created {} and wired feature `{name}` into llmux",
        dir.display()
    );
    Ok(())
}

/// `fuzz [target|all] [--seconds N] [...]`: runs the `llmux-fuzz` harness (release build), each
/// target for N seconds (default 30); other options are passed on.
fn fuzz(args: &[&str]) -> Result<(), String> {
    let (target, rest) = match args.split_first() {
        Some((t, rest)) if !t.starts_with('-') => (*t, rest),
        _ => ("all", args),
    };
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "llmux-fuzz", "--", target]);
    if !rest.contains(&"--seconds") {
        cmd.args(["--seconds", "30"]);
    }
    cmd.args(rest);
    run(&mut cmd)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["ci"] => ci(),
        ["new-provider", name] => new_provider(name),
        ["fuzz", rest @ ..] => fuzz(rest),
        ["bench", rest @ ..] => bench::bench(rest),
        _ => Err(
            "usage: cargo xtask ci | cargo xtask new-provider <name> | cargo xtask fuzz [target|all] [--seconds N] [llmux-fuzz options] | cargo xtask bench [--peers] [--quick] [--dur S] [--reps N] [--no-micro] [--no-relay]"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("microsoft-phi-4"));
        assert!(!valid_name("Bad_Name"));
        assert!(!valid_name("-x"));
        assert_eq!(pascal("microsoft-phi-4"), "MicrosoftPhi4");
        assert_eq!(
            insert_after("a\n# m\nb", "# m", "x").ok().as_deref(),
            Some("a\n# m\nx\nb")
        );
    }
}
