//! `llmux-fuzz`: runs the fuzz targets for a bounded time.
//!
//! ```text
//! llmux-fuzz <target|all> [--seconds N] [--seed S] [--timeout-ms T] [--memory-mb M] [--out DIR]
//! llmux-fuzz <target> --replay FILE
//! llmux-fuzz list
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use llmux_fuzz::runner::{self, Options, Report};
use llmux_fuzz::{Target, all_targets, target};

const USAGE: &str = "usage: llmux-fuzz <target|all|list> [--seconds N (per target, default 30)] [--seed S] \
[--timeout-ms T (per input, default 2000)] [--memory-mb M (default 2048, 0 = none)] [--out DIR] [--replay FILE [--minimize]]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn number<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match value(args, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name}: not a number: {v:?}")),
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let seconds: f64 = number(args, "--seconds", 30.0)?;
    let seed: u64 = number(args, "--seed", 0x5eed)?;
    let timeout = Duration::from_millis(number(args, "--timeout-ms", 2000)?);
    if let Some(name) = value(args, "--child") {
        let t = target(name).ok_or_else(|| format!("unknown target {name:?}"))?;
        let code = runner::child(t, Duration::from_secs_f64(seconds.max(0.0)), seed, timeout);
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    let which = args.first().ok_or("missing target")?;
    if which == "list" {
        for t in all_targets() {
            println!("{:16} {}", t.name, t.about);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let targets: Vec<Target> = if which == "all" {
        all_targets()
    } else {
        vec![target(which).ok_or_else(|| format!("unknown target {which:?} (try `list`)"))?]
    };
    if let Some(file) = value(args, "--replay") {
        let input = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        if args.iter().any(|a| a == "--minimize") {
            for t in &targets {
                match runner::minimize(t, &input) {
                    Some(small) => {
                        let out = format!("{file}.min");
                        std::fs::write(&out, &small).map_err(|e| format!("{out}: {e}"))?;
                        println!(
                            "[{}] {} → {} bytes: {}\n  saved: {out}",
                            t.name,
                            input.len(),
                            small.len(),
                            llmux_fuzz::escape(&small, 2000)
                        );
                    }
                    None => println!("[{}] the input does not fail", t.name),
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        for t in &targets {
            runner::replay(t, &input);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let out_dir = value(args, "--out").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-failures"),
        PathBuf::from,
    );
    let opts = Options {
        duration: Duration::from_secs_f64(seconds.max(0.0)),
        seed,
        timeout,
        memory_mb: number(args, "--memory-mb", 2048)?,
        out_dir,
    };
    let mut reports = Vec::new();
    for t in &targets {
        eprintln!("[{}] fuzzing for {seconds} s: {}", t.name, t.about);
        let r = runner::supervise(t, &opts);
        eprintln!(
            "[{}] {} inputs, {} failures ({} distinct), slowest {:.1} ms, corpus {}",
            r.target,
            r.inputs,
            r.failures,
            r.distinct.len(),
            r.slowest_us as f64 / 1000.0,
            r.corpus
        );
        reports.push(r);
    }
    print_summary(&reports);
    let failed = reports.iter().any(|r| r.failures > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(reports: &[Report]) {
    let date = runner::today();
    println!("\n| target | inputs | failures | date |");
    println!("|---|---:|---:|---|");
    for r in reports {
        println!(
            "| `{}` | {} | {} | {date} |",
            r.target, r.inputs, r.failures
        );
    }
    for r in reports {
        for f in &r.distinct {
            println!(
                "\n{}: {:?}: {}\n  saved: {}",
                r.target,
                f.kind,
                llmux_fuzz::escape(f.message.as_bytes(), 600),
                f.saved
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |p| p.display().to_string())
            );
        }
    }
}
