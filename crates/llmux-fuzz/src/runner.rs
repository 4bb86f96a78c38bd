//! Running targets: a supervisor process and one child process per target.
//!
//! The **child** ([`child`]) generates inputs and runs them on a worker thread with a 2 MiB stack
//! (the size of a tokio worker's), catching panics. Before running an input it writes it to its
//! stdout (a frame), so that when the process dies — a stack overflow, an allocation failure under
//! the memory limit, any abort — the supervisor still knows which input did it. Its main thread is
//! a watchdog: an input running longer than the time limit is reported as a hang and the child
//! exits.
//!
//! The **supervisor** ([`supervise`]) starts the child (under `ulimit -v` where a shell is
//! available), reads its frames, records and saves failures, and restarts the child with the next
//! seed after a crash or hang until the time is up.

use std::io::{Read, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::{Generator, fnv};
use crate::{Target, escape, seeds};

/// Stack size of the worker thread that runs inputs.
pub const WORKER_STACK: usize = 2 * 1024 * 1024;

const FRAME_INPUT: u8 = b'I';
const FRAME_PANIC: u8 = b'F';
const FRAME_HANG: u8 = b'H';
const FRAME_DONE: u8 = b'D';
const FRAME_SLOW: u8 = b'S';

/// Inputs slower than this are reported as the target's slowest (and saved).
const SLOW_REPORT_US: u64 = 10_000;

/// How a target is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Total time for the target.
    pub duration: Duration,
    /// First generator seed (restarts use the next ones).
    pub seed: u64,
    /// Longest time one input may run.
    pub timeout: Duration,
    /// Address-space limit of the child process, in MiB (0 = none).
    pub memory_mb: u64,
    /// Where failing inputs are saved.
    pub out_dir: PathBuf,
}

/// What went wrong with one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// A panic (including a violated property).
    Panic,
    /// The input ran longer than the time limit.
    Hang,
    /// The process died (stack overflow, out of memory, abort).
    Crash,
}

/// One failing input.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The kind.
    pub kind: FailureKind,
    /// The panic message or what the process printed.
    pub message: String,
    /// The input.
    pub input: Vec<u8>,
    /// Where it was saved.
    pub saved: Option<PathBuf>,
}

/// The outcome of running one target.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Target name.
    pub target: String,
    /// Inputs run.
    pub inputs: u64,
    /// Failing inputs (each distinct failure is kept once; `failures` counts them all).
    pub distinct: Vec<Failure>,
    /// Failing inputs in total.
    pub failures: u64,
    /// Slowest input, in microseconds.
    pub slowest_us: u64,
    /// Corpus size at the end.
    pub corpus: u64,
    /// The slowest input (when slower than 10 ms).
    pub slowest_input: Option<Vec<u8>>,
    /// Wall time.
    pub elapsed: Duration,
}

fn write_frame(tag: u8, payload: &[u8]) {
    let mut frame = Vec::with_capacity(payload.len() + 5);
    frame.push(tag);
    frame.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    frame.extend_from_slice(payload);
    let mut out = std::io::stdout().lock();
    // The supervisor going away ends the run; nothing to report to.
    if out.write_all(&frame).and_then(|()| out.flush()).is_err() {
        std::process::exit(2);
    }
}

static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

fn install_quiet_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic payload)".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut slot) = PANIC_MESSAGE.lock() {
            *slot = Some(format!("panicked at {location}: {payload}"));
        }
    }));
}

/// The child process: runs `target` for `duration`, reporting through frames on stdout. Returns
/// the process exit code.
pub fn child(target: Target, duration: Duration, seed: u64, timeout: Duration) -> i32 {
    install_quiet_panic_hook();
    let base = Instant::now();
    // Start of the running input, in µs since `base` plus one; 0 when idle.
    let running = Arc::new(AtomicU64::new(0));
    let worker_running = Arc::clone(&running);
    let worker = std::thread::Builder::new()
        .name(format!("fuzz-{}", target.name))
        .stack_size(WORKER_STACK)
        .spawn(move || {
            let mut generator = Generator::new(seed, seeds(&target), target.dictionary);
            let deadline = base + duration;
            let (mut count, mut slowest) = (0u64, 0u64);
            while Instant::now() < deadline {
                let input = generator.next_input();
                write_frame(FRAME_INPUT, &input);
                let start = Instant::now();
                let start_us = u64::try_from((start - base).as_micros()).unwrap_or(u64::MAX - 1);
                worker_running.store(start_us + 1, Ordering::SeqCst);
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
                worker_running.store(0, Ordering::SeqCst);
                let took = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                if took > slowest && took > SLOW_REPORT_US {
                    write_frame(FRAME_SLOW, &took.to_le_bytes());
                }
                slowest = slowest.max(took);
                count += 1;
                match result {
                    Ok(signature) => generator.feedback(&input, signature),
                    Err(_) => {
                        let message = PANIC_MESSAGE
                            .lock()
                            .ok()
                            .and_then(|mut m| m.take())
                            .unwrap_or_else(|| "panic".to_owned());
                        write_frame(FRAME_PANIC, message.as_bytes());
                    }
                }
            }
            let done = format!("{count} {slowest} {}", generator.corpus_len());
            write_frame(FRAME_DONE, done.as_bytes());
        });
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot start the worker thread: {e}");
            return 1;
        }
    };
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if worker.is_finished() {
            return i32::from(worker.join().is_err());
        }
        let started = running.load(Ordering::SeqCst);
        if started == 0 {
            continue;
        }
        let now = u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX);
        let ran = now.saturating_sub(started - 1);
        if ran > u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX) {
            let message = format!("an input ran for more than {} ms", timeout.as_millis());
            write_frame(FRAME_HANG, message.as_bytes());
            // The worker cannot be stopped; ending the process stops it.
            return 3;
        }
    }
}

/// Reads one frame; `None` at the end of the stream.
fn read_frame(r: &mut impl Read) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head).ok()?;
    let [tag, a, b, c, d] = head;
    let len = u32::from_le_bytes([a, b, c, d]) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).ok()?;
    Some((tag, payload))
}

fn child_command(target: &str, remaining: Duration, seed: u64, opts: &Options) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("llmux-fuzz"));
    let args = [
        "--child".to_owned(),
        target.to_owned(),
        "--seconds".to_owned(),
        format!("{:.3}", remaining.as_secs_f64()),
        "--seed".to_owned(),
        seed.to_string(),
        "--timeout-ms".to_owned(),
        opts.timeout.as_millis().to_string(),
    ];
    let shell = Path::new("/bin/sh");
    if opts.memory_mb > 0 && cfg!(unix) && shell.exists() {
        let mut c = Command::new(shell);
        c.arg("-c")
            .arg(format!(
                "ulimit -v {} 2>/dev/null; exec \"$0\" \"$@\"",
                opts.memory_mb * 1024
            ))
            .arg(exe)
            .args(args);
        c
    } else {
        let mut c = Command::new(exe);
        c.args(args);
        c
    }
}

impl Report {
    fn record(&mut self, kind: FailureKind, message: String, input: &[u8], out_dir: &Path) {
        self.failures += 1;
        // Distinct by kind and panic location (`panicked at file:line: …`), or by the start of
        // what a dying process printed.
        let key = |f: &Failure| {
            let what = match f.message.strip_prefix("panicked at ") {
                Some(m) => m.split(": ").next().unwrap_or_default().to_owned(),
                None => f.message.chars().take(100).collect(),
            };
            (f.kind.clone(), what)
        };
        let candidate = Failure {
            kind,
            message,
            input: input.to_vec(),
            saved: None,
        };
        if self.distinct.iter().any(|f| key(f) == key(&candidate)) {
            return;
        }
        let mut failure = candidate;
        let hash = fnv(&input.iter().map(|b| u64::from(*b)).collect::<Vec<_>>());
        let kind = format!("{:?}", failure.kind).to_lowercase();
        let path = out_dir.join(format!("{}-{kind}-{hash:016x}.bin", self.target));
        if std::fs::create_dir_all(out_dir).is_ok() && std::fs::write(&path, input).is_ok() {
            failure.saved = Some(path);
        }
        eprintln!(
            "\n[{}] FAILURE ({kind}): {}\n  input ({} bytes): {}\n  saved: {}\n",
            self.target,
            crate::escape(failure.message.as_bytes(), 600),
            input.len(),
            escape(input, 300),
            failure
                .saved
                .as_ref()
                .map_or_else(|| "(not saved)".to_owned(), |p| p.display().to_string())
        );
        self.distinct.push(failure);
    }
}

/// Runs `target` for `opts.duration` in child processes and collects the results.
pub fn supervise(target: &Target, opts: &Options) -> Report {
    let start = Instant::now();
    let mut report = Report {
        target: target.name.to_owned(),
        ..Report::default()
    };
    let mut seed = opts.seed;
    for _attempt in 0..100 {
        let remaining = opts.duration.saturating_sub(start.elapsed());
        if remaining < Duration::from_millis(200) {
            break;
        }
        let mut cmd = child_command(target.name, remaining, seed, opts);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = match cmd.spawn() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("[{}] cannot start the child process: {e}", target.name);
                break;
            }
        };
        let stderr_tail = Arc::new(Mutex::new(Vec::<u8>::new()));
        let stderr_thread = proc.stderr.take().map(|mut err| {
            let tail = Arc::clone(&stderr_tail);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut t) = tail.lock() {
                        t.extend_from_slice(buf.get(..n).unwrap_or_default());
                        let excess = t.len().saturating_sub(8192);
                        t.drain(..excess);
                    }
                }
            })
        });
        let mut last_input: Option<Vec<u8>> = None;
        let mut finished = false;
        let mut hung = false;
        if let Some(mut out) = proc.stdout.take() {
            let mut reader = std::io::BufReader::with_capacity(256 * 1024, &mut out);
            while let Some((tag, payload)) = read_frame(&mut reader) {
                match tag {
                    FRAME_INPUT => {
                        report.inputs += 1;
                        last_input = Some(payload);
                    }
                    FRAME_PANIC | FRAME_HANG => {
                        let kind = if tag == FRAME_HANG {
                            hung = true;
                            FailureKind::Hang
                        } else {
                            FailureKind::Panic
                        };
                        let message = String::from_utf8_lossy(&payload).into_owned();
                        let input = last_input.clone().unwrap_or_default();
                        report.record(kind, message, &input, &opts.out_dir);
                    }
                    FRAME_SLOW => {
                        let took =
                            <[u8; 8]>::try_from(payload.as_slice()).map_or(0, u64::from_le_bytes);
                        if took > report.slowest_us {
                            report.slowest_us = took;
                            report.slowest_input.clone_from(&last_input);
                        }
                    }
                    FRAME_DONE => {
                        finished = true;
                        let text = String::from_utf8_lossy(&payload).into_owned();
                        let mut it = text.split(' ').map(|n| n.parse::<u64>().unwrap_or(0));
                        let _count = it.next();
                        report.slowest_us = report.slowest_us.max(it.next().unwrap_or(0));
                        report.corpus = it.next().unwrap_or(0);
                    }
                    _ => {}
                }
            }
        }
        let status = proc.wait();
        if let Some(t) = stderr_thread {
            let _ = t.join();
        }
        if finished {
            break;
        }
        if !hung {
            let tail = stderr_tail
                .lock()
                .map(|t| String::from_utf8_lossy(&t).trim().to_owned())
                .unwrap_or_default();
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            let message = format!("the process died ({status}): {tail}");
            match &last_input {
                Some(input) => report.record(FailureKind::Crash, message, input, &opts.out_dir),
                None => {
                    eprintln!(
                        "[{}] the child process failed before running anything: {message}",
                        target.name
                    );
                    break;
                }
            }
        }
        seed = seed.wrapping_add(1);
    }
    report.elapsed = start.elapsed();
    if let Some(input) = &report.slowest_input {
        let path = opts.out_dir.join(format!("{}-slowest.bin", target.name));
        if std::fs::create_dir_all(&opts.out_dir).is_ok() {
            let _ = std::fs::write(path, input);
        }
    }
    report
}

/// Where `input` fails: the panic location (`file:line`), or `None` when it passes.
fn failure_location(target: &Target, input: &[u8]) -> Option<String> {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    result.err()?;
    let message = PANIC_MESSAGE.lock().ok()?.take()?;
    let location = message.strip_prefix("panicked at ")?.split(": ").next()?;
    Some(location.to_owned())
}

/// Shrinks a panicking input (delta debugging: drops chunks, then bytes, while the input still
/// panics at the same place). Returns `None` when `input` does not panic.
pub fn minimize(target: &Target, input: &[u8]) -> Option<Vec<u8>> {
    install_quiet_panic_hook();
    let want = failure_location(target, input)?;
    let mut best = input.to_vec();
    let mut chunk = best.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        let mut shrunk = false;
        while i < best.len() {
            let mut candidate = best.clone();
            candidate.drain(i..(i + chunk).min(best.len()));
            if failure_location(target, &candidate).as_ref() == Some(&want) {
                best = candidate;
                shrunk = true;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 && !shrunk {
            break;
        }
        if !shrunk {
            chunk = chunk.div_ceil(2).max(1);
        }
    }
    let _ = std::panic::take_hook();
    Some(best)
}

/// Runs one saved input in this process (panics are reported normally).
pub fn replay(target: &Target, input: &[u8]) -> Duration {
    let start = Instant::now();
    let signature = (target.run)(input);
    let took = start.elapsed();
    println!(
        "[{}] ok in {took:?} (signature {signature:016x})",
        target.name
    );
    took
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0) + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        for (tag, payload) in [(FRAME_INPUT, &b"abc"[..]), (FRAME_DONE, b"")] {
            buf.push(tag);
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(payload);
        }
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r), Some((FRAME_INPUT, b"abc".to_vec())));
        assert_eq!(read_frame(&mut r), Some((FRAME_DONE, Vec::new())));
        assert_eq!(read_frame(&mut r), None);
    }

    #[test]
    fn date_format() {
        let d = today();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"));
    }
}
