//! Project chores: `cargo xtask <task>`.
//!
//! - `ci` — `cargo fmt --check`, `cargo clippy --all-targets --all-features -D warnings`, tests.
//! - `fuzz [target|all] [--seconds N]` — runs the `llmux-fuzz` targets (default: all, 30 s each).
//! - `bench [--peers] [--quick]` — the benchmarks (relay, memory, cold start, micro-benchmarks)
//!   as one table; `--peers` also runs `../shared/bench/peers/peers.sh` with llmux as a target.
//! - `new-provider <name>` — scaffolds `crates/providers/<name>` (package `llmux-provider-<name>`)
//!   with its testkit fake, `llmux-mock` subcommand and fault-matrix target, and wires it into
//!   the workspace and the facade (see [`scaffold`]).

mod bench;
mod scaffold;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The workspace root: the parent of xtask's manifest directory. Taken from the environment
/// `cargo run` sets when it can (a binary reused from a copy of the workspace at another path,
/// as the scaffold check makes, would otherwise work on the directory it was compiled in).
fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
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

/// `new-provider NAME`: scaffolds and wires the provider (see [`scaffold`]), then formats the
/// Rust files it wrote.
fn new_provider(name: &str) -> Result<(), String> {
    let root = root();
    let written = scaffold::new_provider(&root, name)?;
    let rust: Vec<&PathBuf> = written
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let mut fmt = Command::new("rustfmt");
    fmt.args(["--edition", "2024"]).args(&rust);
    if let Err(e) = run(&mut fmt) {
        eprintln!("xtask: warning: {e}; run `cargo fmt --all`");
    }
    for p in &written {
        eprintln!("wrote {}", p.display());
    }
    eprintln!(
        "provider `{name}` scaffolded and wired; try `cargo test -p llmux-provider-{name}` and `cargo test -p llmux-e2e fault_matrix::`"
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
