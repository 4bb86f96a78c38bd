//! Gateway keys and Redis: what a key with generous limits costs per request in one process,
//! and what the shared Redis round trip adds (`llmux serve --redis`, when `redis-server` is
//! installed), against the same gateway without keys. Non-stream, c = 1 and 16, targets
//! interleaved, median of `--reps` runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::process::Command;
use std::thread;
use std::time::Duration;

use super::{Load, Opts, Proc, Tools, med, oha_with_key, root, start_gateway_with, start_upstream};

const KEY: &str = "sk-bench-generous-key";

/// A key no benchmark reaches the limits of.
fn keyed_config(redis: bool) -> String {
    format!(
        "[[keys]]\nname = \"bench\"\nkey = \"{KEY}\"\nrpm = 100000000\ntpm = 100000000000\nconcurrency = 100000\n{}",
        if redis { "[redis]\ntimeout = 1\n" } else { "" }
    )
}

/// `redis-server` on a free loopback port, if installed.
fn start_redis(log: &std::path::Path) -> Option<(Proc, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let bin = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let p = Proc::spawn(
        "redis-server",
        Command::new(bin).args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]),
        log,
    )
    .ok()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((p, port));
        }
        thread::sleep(Duration::from_millis(50));
    }
    None
}

pub(super) fn keys(tools: &Tools, o: &Opts, report: &mut String) -> Result<(), String> {
    let logs = root().join("target/bench");
    let (_up, up_port) = start_upstream(tools, 50, &logs.join("upstream-keys.log"))?;
    let upstream = format!("http://127.0.0.1:{up_port}/v1");
    let redis = start_redis(&logs.join("redis.log"));
    let mut targets: Vec<(&str, Proc, u16, Option<&str>)> = Vec::new();
    let (p, port) = start_gateway_with(tools, &upstream, &logs.join("gw-nokey.log"), "", &[])?;
    targets.push(("no key", p, port, None));
    let (p, port) = start_gateway_with(
        tools,
        &upstream,
        &logs.join("gw-key.log"),
        &keyed_config(false),
        &[],
    )?;
    targets.push(("key, in process", p, port, Some(KEY)));
    if let Some((_, rport)) = &redis {
        let url = format!("redis://127.0.0.1:{rport}/0");
        let (p, port) = start_gateway_with(
            tools,
            &upstream,
            &logs.join("gw-redis.log"),
            &keyed_config(true),
            &["--redis", &url],
        )?;
        targets.push(("key, Redis", p, port, Some(KEY)));
    }
    for (_, p, port, key) in &targets {
        oha_with_key(tools, *port, p, false, 8, 1, *key)?;
    }
    let mut results: BTreeMap<(usize, usize), Vec<Load>> = BTreeMap::new();
    for _ in 0..o.reps {
        for c in [1usize, 16] {
            for (i, (name, p, port, key)) in targets.iter().enumerate() {
                let l = oha_with_key(tools, *port, p, false, c, o.dur, *key)?;
                eprintln!(
                    "bench: keys {name} c={c}: {:.0} req/s, {:.1} µs CPU/req",
                    l.rps, l.cpu_us_req
                );
                results.entry((c, i)).or_default().push(l);
            }
        }
    }
    let _ = writeln!(
        report,
        "## Gateway keys and Redis\n\nnon-stream, median of {} runs of {} s; the key has limits \
         it never reaches (rpm, tpm, concurrency); *vs no key* compares CPU per request.\n\n\
         | gateway | c | req/s | p50 ms | added p50 ms | CPU µs/req | CPU vs no key |\n|---|---|---|---|---|---|---|",
        o.reps, o.dur
    );
    for c in [1usize, 16] {
        let base = &results[&(c, 0)];
        for (i, (name, ..)) in targets.iter().enumerate() {
            let runs = &results[&(c, i)];
            let cpu = med(runs, |l| l.cpu_us_req);
            let _ = writeln!(
                report,
                "| {name} | {c} | {:.0} | {:.3} | {:+.3} | {cpu:.1} | {:+.1} % |",
                med(runs, |l| l.rps),
                med(runs, |l| l.p50_ms),
                med(runs, |l| l.p50_ms) - med(base, |l| l.p50_ms),
                (cpu / med(base, |l| l.cpu_us_req) - 1.0) * 100.0
            );
        }
    }
    if redis.is_none() {
        report.push_str("\n(redis-server not installed: the Redis row is missing.)\n");
    }
    report.push('\n');
    Ok(())
}
