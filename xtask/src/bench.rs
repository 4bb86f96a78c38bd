//! `cargo xtask bench [--peers] [--quick] [--dur S] [--reps N] [--no-micro] [--no-relay]`:
//! the project's own benchmarks, printed as one table (also written to
//! `target/bench/results.md`), and with `--peers` the peers harness
//! (`../shared/bench/peers/peers.sh`) with llmux as a fourth target beside LiteLLM and g4f.
//!
//! What it measures (see `BENCHMARKS.md` for the method and the figures):
//! - **Relay**: the gateway (`llmux serve --upstream`) in front of the peers harness's fake
//!   upstream, against that upstream directly, non-stream and stream at c = 1/16/64, targets
//!   interleaved per scenario, median of `--reps` runs of `--dur` seconds driven by oha:
//!   throughput, p50/p99, time to first byte, added latency, gateway CPU per request (from
//!   `/proc`), peak RSS; RSS idle, under load and after load.
//! - **CPU per relayed chunk**: streams of 1,000 chunks (a second upstream), CPU ÷ chunks.
//! - **Memory per open stream**: RSS with 1,000 concurrent slow streams open through the
//!   gateway (upstream: `llmux-mock openai` with a chunk delay).
//! - **CLI cold start**: `llmux chat` against a local fake, process start to first token.
//! - **Library micro-benchmarks**: the criterion benches `llmux-core/benches/decode.rs` and
//!   `llmux-server/benches/encode.rs`.
//!
//! Needs Linux (`/proc`), oha (`$OHA`, else on `PATH`, else the one the peers harness installs
//! in `${PEERS_WORK:-/tmp/llmux-peers}/cargo/bin`) and the peers harness's upstream sources.
//! Every process it starts is stopped by its handle, on every exit path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::{cargo, root, run};

mod keys;

/// Options of one `cargo xtask bench` run.
struct Opts {
    peers: bool,
    micro: bool,
    relay: bool,
    dur: u64,
    reps: usize,
}

fn parse_opts(args: &[&str]) -> Result<Opts, String> {
    let mut o = Opts {
        peers: false,
        micro: true,
        relay: true,
        dur: 5,
        reps: 3,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--peers" => o.peers = true,
            "--quick" => {
                o.dur = 2;
                o.reps = 1;
            }
            "--no-micro" => o.micro = false,
            "--no-relay" => o.relay = false,
            "--dur" => {
                o.dur = it
                    .next()
                    .and_then(|v| v.trim_end_matches('s').parse().ok())
                    .filter(|d| *d > 0)
                    .ok_or("--dur needs a number of seconds")?;
            }
            "--reps" => {
                o.reps = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|r| *r > 0)
                    .ok_or("--reps needs a positive number")?;
            }
            other => return Err(format!("bench: unknown option `{other}`")),
        }
    }
    Ok(o)
}

/// Runs `cargo xtask bench`.
pub(crate) fn bench(args: &[&str]) -> Result<(), String> {
    let opts = parse_opts(args)?;
    let root = root();
    let out_dir = root.join("target/bench");
    fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let mut report = String::new();
    let _ = writeln!(report, "# llmux benchmarks\n\n{}\n", machine());

    if opts.relay {
        run(cargo().args(["build", "--release", "-p", "llmux-cli"]))?;
        run(cargo().args([
            "build",
            "--release",
            "-p",
            "llmux-testkit",
            "--bin",
            "llmux-mock",
        ]))?;
        let tools = Tools::find(&root)?;
        relay(&tools, &opts, &mut report)?;
        keys::keys(&tools, &opts, &mut report)?;
        open_streams(&tools, &mut report)?;
        cold_start(&tools, &mut report)?;
    }
    if opts.micro {
        micro(&mut report)?;
    }
    let path = out_dir.join("results.md");
    fs::write(&path, &report).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{report}");
    eprintln!("(written to {})", path.display());

    if opts.peers {
        peers(&root, &opts)?;
    }
    Ok(())
}

/// Machine facts for the report header.
fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = thread::available_parallelism().map_or(0, usize::from);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), Linux {}, {rustc}; loadavg at start: {}",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// The binaries a run needs.
struct Tools {
    llmux: PathBuf,
    mock: PathBuf,
    upstream: PathBuf,
    oha: PathBuf,
}

impl Tools {
    fn find(root: &Path) -> Result<Self, String> {
        let llmux = root.join("target/release/llmux");
        let mock = root.join("target/release/llmux-mock");
        let peers = peers_dir(root)?;
        // the peers harness's fake upstream, built into our own target dir
        let target = root.join("target/bench-upstream");
        run(cargo()
            .args(["build", "--release", "--locked", "--manifest-path"])
            .arg(peers.join("upstream/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target))?;
        let upstream = target.join("release/fake-upstream");
        let oha = find_oha().ok_or(
            "oha not found: set OHA, put oha 1.16 on PATH, or run the peers harness once \
             (it installs oha into ${PEERS_WORK:-/tmp/llmux-peers}/cargo/bin)",
        )?;
        for p in [&llmux, &mock, &upstream] {
            if !p.exists() {
                return Err(format!("{} was not built", p.display()));
            }
        }
        Ok(Self {
            llmux,
            mock,
            upstream,
            oha,
        })
    }
}

fn peers_dir(root: &Path) -> Result<PathBuf, String> {
    let dir = root.join("../shared/bench/peers");
    if dir.join("peers.sh").exists() {
        Ok(dir)
    } else {
        Err(format!(
            "the peers harness is not at {} (expected ../shared/bench/peers beside the repo)",
            dir.display()
        ))
    }
}

fn find_oha() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OHA")
        .map(PathBuf::from)
        .filter(|p| p.exists())
    {
        return Some(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("oha");
            if p.exists() {
                return Some(p);
            }
        }
    }
    let work = std::env::var_os("PEERS_WORK")
        .map_or_else(|| PathBuf::from("/tmp/llmux-peers"), PathBuf::from);
    Some(work.join("cargo/bin/oha")).filter(|p| p.exists())
}

// ------------------------------------------------------------------ processes

/// A child process, stopped (SIGKILL through its handle) when dropped.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Result<Self, String> {
        let out = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Self { child, name })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// user + system CPU time so far, in microseconds.
    fn cpu_us(&self) -> u64 {
        cpu_us(self.pid())
    }

    fn rss_kb(&self) -> u64 {
        status_kb(self.pid(), "VmRSS:")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.name;
    }
}

fn cpu_us(pid: u32) -> u64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // fields after "pid (comm)": state is field 3; utime 14, stime 15 (1-based)
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // rest[0] is field 3
    (ticks(11) + ticks(12)) * 1_000_000 / clk_tck()
}

fn clk_tck() -> u64 {
    static TCK: AtomicU64 = AtomicU64::new(0);
    let v = TCK.load(Ordering::Relaxed);
    if v != 0 {
        return v;
    }
    let v = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100);
    TCK.store(v, Ordering::Relaxed);
    v
}

fn status_kb(pid: u32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A free loopback port (bound, then released).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// A tiny HTTP/1.1 GET, for readiness checks: the status code.
fn http_get(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}

fn wait_ready(proc: &mut Proc, port: u16, path: &str) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(status)) = proc.child.try_wait() {
            return Err(format!("{} exited early ({status})", proc.name));
        }
        if http_get(port, path) == Some(200) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{} did not answer GET {path} within 60 s",
        proc.name
    ))
}

fn start_upstream(tools: &Tools, chunks: usize, log: &Path) -> Result<(Proc, u16), String> {
    let port = free_port()?;
    let mut p = Proc::spawn(
        "fake upstream",
        Command::new(&tools.upstream)
            .env("PORT", port.to_string())
            .env("CHUNKS", chunks.to_string()),
        log,
    )?;
    wait_ready(&mut p, port, "/v1/models")?;
    Ok((p, port))
}

fn start_gateway(tools: &Tools, upstream: &str, log: &Path) -> Result<(Proc, u16), String> {
    start_gateway_with(tools, upstream, log, "", &[])
}

/// A gateway with `config` as its config file and `extra` flags.
fn start_gateway_with(
    tools: &Tools,
    upstream: &str,
    log: &Path,
    config: &str,
    extra: &[&str],
) -> Result<(Proc, u16), String> {
    let port = free_port()?;
    let file = log.with_extension("toml");
    fs::write(&file, config).map_err(|e| e.to_string())?;
    let mut p = Proc::spawn(
        "llmux serve",
        Command::new(&tools.llmux)
            .args(["serve", "--port", &port.to_string(), "--upstream", upstream])
            .args(extra)
            .env("LLMUX_CONFIG", &file)
            .env_remove("LLMUX_LOG")
            .env_remove("LLMUX_API_KEY"),
        log,
    )?;
    // `/health` needs no key (a keyed gateway answers `/v1/models` with 401)
    let ready = if config.is_empty() {
        "/v1/models"
    } else {
        "/health"
    };
    wait_ready(&mut p, port, ready)?;
    Ok((p, port))
}

// ------------------------------------------------------------------ load (oha)

/// The result of one oha run.
#[derive(Clone, Default)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    ttfb50_ms: f64,
    ok: u64,
    other: u64,
    /// CPU of the measured process, µs per 200 response.
    cpu_us_req: f64,
    peak_rss_kb: u64,
}

fn chat_body(stream: bool) -> String {
    format!(
        r#"{{"model":"fake-model",{}"messages":[{{"role":"user","content":"Say hello"}}]}}"#,
        if stream { r#""stream":true,"# } else { "" }
    )
}

/// Runs oha against `port` while sampling the CPU and RSS of `measured`.
fn oha(
    tools: &Tools,
    port: u16,
    measured: &Proc,
    stream: bool,
    c: usize,
    dur: u64,
) -> Result<Load, String> {
    oha_with_key(tools, port, measured, stream, c, dur, None)
}

/// [`oha`], sending `Authorization: Bearer key` when given.
fn oha_with_key(
    tools: &Tools,
    port: u16,
    measured: &Proc,
    stream: bool,
    c: usize,
    dur: u64,
    key: Option<&str>,
) -> Result<Load, String> {
    let out = root().join("target/bench/oha.json");
    let _ = fs::remove_file(&out);
    let pid = measured.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(status_kb(pid, "VmRSS:"), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let cpu0 = measured.cpu_us();
    let status = Command::new(&tools.oha)
        .args(["-z", &format!("{dur}s"), "-c", &c.to_string(), "-t", "60s"])
        .args(["--no-tui", "-m", "POST", "-T", "application/json"])
        .args(
            key.map(|k| ["-H".to_owned(), format!("Authorization: Bearer {k}")])
                .into_iter()
                .flatten(),
        )
        .args(["-d", &chat_body(stream), "--output-format", "json", "-o"])
        .arg(&out)
        .arg(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let cpu1 = measured.cpu_us();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let status = status.map_err(|e| format!("cannot run oha: {e}"))?;
    if !status.success() {
        return Err(format!("oha failed ({status})"));
    }
    let text = fs::read_to_string(&out).map_err(|e| format!("no oha output: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("bad oha output: {e}"))?;
    let ms = |section: &str, key: &str| v[section][key].as_f64().unwrap_or(f64::NAN) * 1e3;
    let codes = v["statusCodeDistribution"].as_object();
    let ok = codes
        .and_then(|m| m.get("200"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let all: u64 = codes.map_or(0, |m| {
        m.values().filter_map(serde_json::Value::as_u64).sum()
    });
    let total = v["summary"]["total"].as_f64().unwrap_or(dur as f64);
    Ok(Load {
        rps: ok as f64 / total,
        p50_ms: ms("latencyPercentiles", "p50"),
        p99_ms: ms("latencyPercentiles", "p99"),
        ttfb50_ms: ms("firstBytePercentiles", "p50"),
        ok,
        other: all - ok,
        cpu_us_req: (cpu1 - cpu0) as f64 / ok.max(1) as f64,
        peak_rss_kb: peak.load(Ordering::Relaxed),
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn med(runs: &[Load], f: impl Fn(&Load) -> f64) -> f64 {
    median(runs.iter().map(f).collect())
}

// ------------------------------------------------------------------ relay

const CHUNKS: usize = 50;
const LONG_CHUNKS: usize = 1_000;

fn relay(tools: &Tools, o: &Opts, report: &mut String) -> Result<(), String> {
    let logs = root().join("target/bench");
    let (up, up_port) = start_upstream(tools, CHUNKS, &logs.join("upstream.log"))?;
    let upstream = format!("http://127.0.0.1:{up_port}/v1");
    let (gw, gw_port) = start_gateway(tools, &upstream, &logs.join("gateway.log"))?;
    thread::sleep(Duration::from_secs(1));
    let rss_idle = gw.rss_kb();
    eprintln!("bench: warm-up");
    for stream in [false, true] {
        oha(tools, gw_port, &gw, stream, 8, 2)?;
    }
    let scenarios: Vec<(bool, usize)> = [false, true]
        .into_iter()
        .flat_map(|s| [1, 16, 64].map(|c| (s, c)))
        .collect();
    let mut results: BTreeMap<(bool, usize, &str), Vec<Load>> = BTreeMap::new();
    for rep in 1..=o.reps {
        for &(stream, c) in &scenarios {
            for target in ["direct", "llmux"] {
                let (port, proc) = if target == "direct" {
                    (up_port, &up)
                } else {
                    (gw_port, &gw)
                };
                let l = oha(tools, port, proc, stream, c, o.dur)?;
                eprintln!(
                    "bench: rep {rep} {target} {} c={c}: {:.0} req/s, p50 {:.3} ms, {:.1} µs CPU/req",
                    if stream { "stream" } else { "nonstream" },
                    l.rps,
                    l.p50_ms,
                    l.cpu_us_req
                );
                results.entry((stream, c, target)).or_default().push(l);
            }
        }
    }
    thread::sleep(Duration::from_secs(3));
    let rss_after = gw.rss_kb();
    let hwm = status_kb(gw.pid(), "VmHWM:");
    let threads = status_kb(gw.pid(), "Threads:");

    let _ = writeln!(
        report,
        "## Gateway relay (fake upstream, loopback, oha)\n\nmedian of {} runs of {} s per cell, \
         targets interleaved; stream = {CHUNKS} content chunks + role/finish chunks + `[DONE]`; \
         *added* = llmux − direct in the same scenario; CPU = user+system of the measured \
         process ÷ 200 responses (for `direct`: the upstream's own).\n",
        o.reps, o.dur
    );
    report.push_str(
        "| target | mode | c | req/s | x direct | p50 ms | p99 ms | TTFB p50 ms | added p50 ms | added p99 ms | added TTFB ms | CPU µs/req | peak RSS MiB | non-200 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for &(stream, c) in &scenarios {
        let direct = &results[&(stream, c, "direct")];
        for target in ["direct", "llmux"] {
            let runs = &results[&(stream, c, target)];
            let rps = med(runs, |l| l.rps);
            let (p50, p99, ttfb) = (
                med(runs, |l| l.p50_ms),
                med(runs, |l| l.p99_ms),
                med(runs, |l| l.ttfb50_ms),
            );
            let added = |f: fn(&Load) -> f64| {
                if target == "direct" {
                    "-".to_owned()
                } else {
                    format!("{:+.3}", med(runs, f) - med(direct, f))
                }
            };
            let _ = writeln!(
                report,
                "| {target} | {} | {c} | {rps:.0} | {:.3} | {p50:.3} | {p99:.3} | {ttfb:.3} | {} | {} | {} | {:.1} | {:.1} | {} |",
                if stream { "stream" } else { "nonstream" },
                rps / med(direct, |l| l.rps),
                added(|l| l.p50_ms),
                added(|l| l.p99_ms),
                added(|l| l.ttfb50_ms),
                med(runs, |l| l.cpu_us_req),
                runs.iter().map(|l| l.peak_rss_kb).max().unwrap_or(0) as f64 / 1024.0,
                runs.iter().map(|l| l.other).sum::<u64>(),
            );
        }
    }
    let peak = results
        .iter()
        .filter(|(k, _)| k.2 == "llmux")
        .flat_map(|(_, v)| v.iter().map(|l| l.peak_rss_kb))
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        report,
        "\nGateway process: {threads} threads; RSS idle {:.1} MiB, peak under load {:.1} MiB \
         (VmHWM {:.1} MiB), 3 s after the load {:.1} MiB.\n",
        rss_idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        hwm as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    drop(gw);
    drop(up);

    // CPU per relayed chunk: long streams
    let (up, up_port) = start_upstream(tools, LONG_CHUNKS, &logs.join("upstream-long.log"))?;
    let upstream = format!("http://127.0.0.1:{up_port}/v1");
    let (gw, gw_port) = start_gateway(tools, &upstream, &logs.join("gateway-long.log"))?;
    oha(tools, gw_port, &gw, true, 4, 1)?;
    report.push_str(&format!(
        "## CPU per relayed chunk\n\nstreams of {LONG_CHUNKS} content chunks (+2), median of {} runs of {} s; CPU of the gateway (user+system) ÷ chunks relayed; the upstream's own CPU per chunk beside it.\n\n| c | streams/s | chunks/s | gateway µs/chunk | upstream µs/chunk |\n|---|---|---|---|---|\n",
        o.reps, o.dur
    ));
    for c in [1usize, 16] {
        let mut gw_runs = Vec::new();
        let mut up_cpu = Vec::new();
        for _ in 0..o.reps {
            let u0 = up.cpu_us();
            let l = oha(tools, gw_port, &gw, true, c, o.dur)?;
            let u1 = up.cpu_us();
            up_cpu.push((u1 - u0) as f64 / l.ok.max(1) as f64 / (LONG_CHUNKS + 2) as f64);
            gw_runs.push(l);
        }
        let per_chunk = (LONG_CHUNKS + 2) as f64;
        let _ = writeln!(
            report,
            "| {c} | {:.0} | {:.0} | {:.2} | {:.2} |",
            med(&gw_runs, |l| l.rps),
            med(&gw_runs, |l| l.rps) * per_chunk,
            med(&gw_runs, |l| l.cpu_us_req) / per_chunk,
            median(up_cpu)
        );
    }
    report.push('\n');
    Ok(())
}

// ------------------------------------------------------------------ open streams

const OPEN_STREAMS: usize = 1_000;

fn open_streams(tools: &Tools, report: &mut String) -> Result<(), String> {
    let logs = root().join("target/bench");
    let port = free_port()?;
    // 20 chunks 500 ms apart: every stream stays open for about 10 s
    let reply = (1..=20).map(|i| format!("word{i} ")).collect::<String>();
    let mut mock = Proc::spawn(
        "llmux-mock",
        Command::new(&tools.mock).args([
            "openai",
            "--port",
            &port.to_string(),
            "--model",
            "fake-model",
            "--reply",
            &reply,
            "--chunks",
            "20",
            "--chunk-delay-ms",
            "500",
        ]),
        &logs.join("mock.log"),
    )?;
    wait_ready(&mut mock, port, "/v1/models")?;
    let (gw, gw_port) = start_gateway(
        tools,
        &format!("http://127.0.0.1:{port}/v1"),
        &logs.join("gateway-streams.log"),
    )?;
    // one short stream first (connection pool, lazy statics), then settle
    let _ = oha(tools, gw_port, &gw, true, 1, 1);
    thread::sleep(Duration::from_secs(2));
    let idle = gw.rss_kb();
    let out = root().join("target/bench/oha-streams.json");
    let mut load = Command::new(&tools.oha)
        .args([
            "-n",
            &OPEN_STREAMS.to_string(),
            "-c",
            &OPEN_STREAMS.to_string(),
        ])
        .args([
            "-t",
            "60s",
            "--no-tui",
            "-m",
            "POST",
            "-T",
            "application/json",
        ])
        .args(["-d", &chat_body(true), "--output-format", "json", "-o"])
        .arg(&out)
        .arg(format!("http://127.0.0.1:{gw_port}/v1/chat/completions"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run oha: {e}"))?;
    // sample while the streams are open (they last ~10 s)
    let start = Instant::now();
    let mut peak = 0;
    let mut conns = 0;
    while start.elapsed() < Duration::from_secs(8) {
        peak = peak.max(gw.rss_kb());
        conns = conns.max(open_sockets(gw.pid()));
        thread::sleep(Duration::from_millis(100));
    }
    let _ = load.wait();
    let finished = fs::read_to_string(&out)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["statusCodeDistribution"]["200"].as_u64())
        .unwrap_or(0);
    thread::sleep(Duration::from_secs(3));
    let after = gw.rss_kb();
    // the connection pool keeps idle upstream connections for 60 s
    thread::sleep(Duration::from_secs(62));
    let after_pool = gw.rss_kb();
    let per = peak.saturating_sub(idle) as f64 / OPEN_STREAMS as f64;
    let _ = writeln!(
        report,
        "## Memory per open stream\n\n{OPEN_STREAMS} concurrent streams through the gateway \
         (upstream `llmux-mock openai`, 20 chunks 500 ms apart), RSS sampled every 100 ms while \
         they were open.\n\n| RSS idle MiB | peak RSS with the streams open MiB | gateway sockets open (peak) | per open stream KiB | RSS 3 s after MiB | RSS 65 s after (pool idle timeout) MiB | streams completed |\n|---|---|---|---|---|---|---|\n| {:.1} | {:.1} | {conns} | {per:.1} | {:.1} | {:.1} | {finished}/{OPEN_STREAMS} |\n",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        after as f64 / 1024.0,
        after_pool as f64 / 1024.0,
    );
    Ok(())
}

fn open_sockets(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| {
                fs::read_link(e.path())
                    .map(|l| l.to_string_lossy().starts_with("socket:"))
                    .unwrap_or(false)
            })
            .count()
    })
}

// ------------------------------------------------------------------ cold start

fn cold_start(tools: &Tools, report: &mut String) -> Result<(), String> {
    let logs = root().join("target/bench");
    let (up, up_port) = start_upstream(tools, CHUNKS, &logs.join("upstream-cli.log"))?;
    let config = root().join("target/bench/empty-config.toml");
    fs::write(&config, "").map_err(|e| e.to_string())?;
    let mut first = Vec::new();
    let mut total = Vec::new();
    for i in 0..21 {
        let start = Instant::now();
        let mut child = Command::new(&tools.llmux)
            .args(["chat", "-m", "openai-compat:fake-model", "Say hello"])
            .env("LLMUX_CONFIG", &config)
            .env(
                "LLMUX_OPENAI_COMPAT_BASE_URL",
                format!("http://127.0.0.1:{up_port}/v1"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run llmux chat: {e}"))?;
        let mut out = child.stdout.take().ok_or("no stdout")?;
        let mut byte = [0u8; 1];
        let got = out.read(&mut byte).unwrap_or(0);
        let t_first = start.elapsed();
        let mut rest = Vec::new();
        let _ = out.read_to_end(&mut rest);
        let status = child.wait().map_err(|e| e.to_string())?;
        let t_total = start.elapsed();
        if got == 0 || !status.success() {
            return Err(format!("llmux chat failed ({status})"));
        }
        if i > 0 {
            // the first run warms the page cache
            first.push(t_first.as_secs_f64() * 1e3);
            total.push(t_total.as_secs_f64() * 1e3);
        }
    }
    drop(up);
    let p90 = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() * 9 / 10).copied().unwrap_or(f64::NAN)
    };
    let _ = writeln!(
        report,
        "## CLI cold start\n\n`llmux chat -m openai-compat:fake-model \"Say hello\"` against the \
         fake upstream (stream of {CHUNKS} chunks), 20 runs after one warm-up.\n\n| process start → first token ms (median) | p90 | process start → exit ms (median) | p90 |\n|---|---|---|---|\n| {:.2} | {:.2} | {:.2} | {:.2} |\n",
        median(first.clone()),
        p90(first),
        median(total.clone()),
        p90(total),
    );
    Ok(())
}

// ------------------------------------------------------------------ micro-benchmarks

fn micro(report: &mut String) -> Result<(), String> {
    report.push_str(
        "## Library micro-benchmarks (criterion, one core)\n\n| benchmark | time per iteration | throughput |\n|---|---|---|\n",
    );
    for (krate, bench) in [("llmux-core", "decode"), ("llmux-server", "encode")] {
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root())
            .args(["bench", "-p", krate, "--bench", bench, "--"])
            .args(["--warm-up-time", "1", "--measurement-time", "3"])
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run cargo bench: {e}"))?;
        if !out.status.success() {
            return Err(format!("cargo bench -p {krate} failed ({})", out.status));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        for (name, time, thrpt) in criterion_lines(&text) {
            let _ = writeln!(report, "| {name} | {time} | {thrpt} |");
        }
    }
    report.push('\n');
    Ok(())
}

/// `(name, time, throughput)` of criterion's text output (the middle estimate of each). A name
/// is either on its own line or before `time:` on the same line; the `change:` block criterion
/// prints against a saved baseline is skipped.
fn criterion_lines(text: &str) -> Vec<(String, String, String)> {
    let middle = |l: &str| -> String {
        let inner = l
            .split_once('[')
            .and_then(|(_, r)| r.split_once(']'))
            .map_or("", |(m, _)| m);
        let parts: Vec<&str> = inner.split_whitespace().collect();
        // "a unit b unit c unit": the middle pair
        match parts.as_slice() {
            [_, _, m, u, _, _] => format!("{m} {u}"),
            _ => inner.to_owned(),
        }
    };
    let mut out = Vec::new();
    let mut name: Option<String> = None;
    let mut time: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some((before, rest)) = line.split_once("time:") {
            if !before.trim().is_empty() && !before.contains("change") {
                name = Some(before.trim().to_owned());
            }
            if name.is_some() && time.is_none() {
                time = Some(middle(rest));
            }
        } else if let Some((_, rest)) = line.split_once("thrpt:") {
            if let (Some(n), Some(tm)) = (name.take(), time.take()) {
                out.push((n, tm, middle(rest)));
            }
        } else if !t.is_empty()
            && !line.starts_with(' ')
            && !t.starts_with("Benchmarking")
            && !t.starts_with("Found")
            && !t.starts_with("Gnuplot")
            && !t.starts_with("Running")
        {
            name = Some(t.to_owned());
            time = None;
        }
    }
    out
}

// ------------------------------------------------------------------ peers

fn peers(root: &Path, o: &Opts) -> Result<(), String> {
    let dir = peers_dir(root)?;
    let llmux = root.join("target/release/llmux");
    let cmd = format!(
        "exec '{}' serve --port \"$LLMUX_BENCH_PORT\" --upstream \"$LLMUX_BENCH_UPSTREAM\"",
        llmux.display()
    );
    let mut c = Command::new("bash");
    c.arg(dir.join("peers.sh"))
        .env("TARGETS", "direct litellm g4f llmux")
        .env("LLMUX_CMD", cmd);
    // the harness's own defaults (10 s x 3) unless DUR / REPS are set, or --quick
    if std::env::var_os("DUR").is_none() && o.dur < 5 {
        c.env("DUR", format!("{}s", o.dur));
    }
    if std::env::var_os("REPS").is_none() && o.reps < 3 {
        c.env("REPS", o.reps.to_string());
    }
    run(&mut c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_criterion_output() {
        let o = parse_opts(&["--quick", "--peers"]).expect("opts");
        assert!(o.peers && o.reps == 1 && o.dur == 2);
        assert!(parse_opts(&["--reps", "0"]).is_err());
        let text = "sse/llmux SseDecoder (push + next_event)\n                        time:   [204.66 µs 206.23 µs 208.69 µs]\n                        thrpt:  [2.1194 GiB/s 2.1446 GiB/s 2.1611 GiB/s]\n";
        let with_change = format!(
            "{text}                        change:\n                               time:   [-1.0% +0.5% +2.0%] (p = 0.60 > 0.05)\n                               thrpt:  [-2.0% -0.5% +1.0%]\nshort   time:   [1.0 ns 2.0 ns 3.0 ns]\n        thrpt:  [1 Melem/s 2 Melem/s 3 Melem/s]\n"
        );
        let rows = criterion_lines(&with_change);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[1],
            ("short".into(), "2.0 ns".into(), "2 Melem/s".into())
        );
        assert_eq!(rows[0].0, "sse/llmux SseDecoder (push + next_event)");
        assert_eq!(rows[0].1, "206.23 µs");
        assert_eq!(rows[0].2, "2.1446 GiB/s");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }
}
