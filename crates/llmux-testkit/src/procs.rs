//! Real helper processes for tests of several gateway replicas: a throwaway [`RedisServer`]
//! and an [`Nginx`] load balancer built from `deploy/nginx/llmux.conf`, each on loopback
//! ports with a temporary directory of its own.
//!
//! Both need their program installed (the Debian packages `redis-server` and `nginx`; `.ci/run`
//! installs them). A missing program is an [`io::Error`] of kind
//! [`NotFound`](io::ErrorKind::NotFound) that names the package. Every wait is bounded
//! ([`START_TIMEOUT`], [`STOP_TIMEOUT`]); dropping a handle kills its process and removes its
//! directory.
//!
//! ```no_run
//! use llmux_testkit::procs::{Nginx, RedisServer, free_port};
//! use std::path::Path;
//!
//! # fn main() -> std::io::Result<()> {
//! let mut redis = RedisServer::start()?;
//! assert!(redis.url().starts_with("redis://127.0.0.1:"));
//! redis.stop()?; // replicas now see Redis down
//! redis.restart()?; // back on the same port, empty
//!
//! let (a, b) = (free_port()?, free_port()?); // start two `llmux serve --port` replicas here
//! let nginx = Nginx::start(Path::new("deploy/nginx/llmux.conf"), 0, &[a, b])?;
//! println!("clients talk to {}", nginx.url());
//! # Ok(())
//! # }
//! ```

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest wait for a started process to answer (Redis: `PING`; nginx: a TCP connection).
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a process to exit after it was told to (then it is killed).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect, read and write timeout of [`RedisServer::command`].
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect, read and write timeout of one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between two readiness probes.
const POLL: Duration = Duration::from_millis(20);
/// Attempts at starting on a fresh free port when the picked one was taken in between.
const PORT_ATTEMPTS: usize = 3;
/// Longest RESP line (type byte, text, CRLF) [`RedisServer::command`] reads.
const MAX_RESP_LINE: u64 = 64 * 1024;
/// Longest RESP bulk string [`RedisServer::command`] reads.
const MAX_RESP_BULK: usize = 16 * 1024 * 1024;
/// Most array elements [`RedisServer::command`] accepts in one reply.
const MAX_RESP_ITEMS: usize = 1024 * 1024;
/// Deepest nesting of RESP arrays [`RedisServer::command`] accepts.
const MAX_RESP_DEPTH: usize = 32;
/// Most bytes of a process log quoted in an error.
const LOG_TAIL: usize = 4096;

/// The address the templates of [`Nginx::start`] use for the listen and upstream ports.
const LOOPBACK: &str = "127.0.0.1:";
/// The listen port of the template (`127.0.0.1:8080`).
const TEMPLATE_LISTEN: u16 = 8080;
/// The first upstream port of the template (`127.0.0.1:8081`, then 8082, … up to 8089).
const TEMPLATE_FIRST_UPSTREAM: u16 = 8081;
/// The last port number treated as an upstream placeholder.
const TEMPLATE_LAST_UPSTREAM: u16 = 8089;

/// A loopback port that was free a moment ago (bound to `127.0.0.1:0`, then released). Another
/// process could take it in between, which is very unlikely.
pub fn free_port() -> io::Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()
        .map(|a| a.port())
}

/// A reply of Redis in the RESP2 protocol, as [`RedisServer::command`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resp {
    /// `+OK`, `+PONG`, …
    Simple(String),
    /// `-ERR …`: the error line without the `-`.
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo`, or `None` for the null bulk string `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n…`, or `None` for the null array `*-1`.
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The text of a simple or (UTF-8) bulk string reply.
    pub fn text(&self) -> Option<&str> {
        match self {
            Resp::Simple(s) => Some(s),
            Resp::Bulk(Some(b)) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// A `redis-server` on a free loopback port, without persistence (`--save ""`,
/// `--appendonly no`), its working directory in a temporary directory.
///
/// [`stop`](RedisServer::stop) kills it (as a crash would) and keeps its port;
/// [`restart`](RedisServer::restart) starts it again on that same port, empty. Dropping it
/// kills the process and removes the directory.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts `redis-server` (found on `PATH`, else `/usr/bin/redis-server`) on a free
    /// loopback port and waits (at most [`START_TIMEOUT`]) until it answers `PING` (written
    /// by hand in RESP: `*1\r\n$4\r\nPING\r\n`, answered `+PONG`).
    pub fn start() -> io::Result<RedisServer> {
        RedisServer::start_with_args(&[])
    }

    /// [`RedisServer::start`] with more command-line options after the default ones (e.g.
    /// `["--requirepass", "secret"]`); [`restart`](RedisServer::restart) passes them again.
    /// The server counts as up once `PING` answers `PONG` or `NOAUTH`.
    pub fn start_with_args(extra_args: &[&str]) -> io::Result<RedisServer> {
        let binary = find_program(
            "redis-server",
            &["/usr/bin/redis-server", "/usr/local/bin/redis-server"],
            "redis-server",
        )?;
        let mut server = RedisServer {
            binary,
            port: 0,
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
            dir: TempDir::new("redis")?,
        };
        let mut attempt = 1;
        loop {
            server.port = free_port()?;
            match server.spawn() {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < PORT_ATTEMPTS => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(server),
            }
        }
    }

    /// `redis://127.0.0.1:PORT/0`, for `llmux serve --redis`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The loopback port (the same after [`restart`](RedisServer::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process is still running (not stopped, not exited by itself).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_)) | Err(_)) | None => false,
        }
    }

    /// Kills the server (SIGKILL, like a crash: clients see their connections reset) and waits
    /// for it to exit. The port stays this server's for [`restart`](RedisServer::restart).
    /// Stopping a stopped server does nothing.
    pub fn stop(&mut self) -> io::Result<()> {
        match self.child.take() {
            Some(mut child) => kill_and_wait(&mut child),
            None => Ok(()),
        }
    }

    /// Stops the server if it runs, then starts it again on the same port, with no data, and
    /// waits until it answers `PING`. Fails (kind `AddrInUse`) if another process took the
    /// port meanwhile.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop()?;
        self.spawn()
    }

    /// Sends one command (`["SET", "k", "v"]`) on a fresh connection and reads the reply
    /// (every step within 5 s). Redis errors come back as [`Resp::Error`], not as `Err`.
    pub fn command(&self, args: &[&str]) -> io::Result<Resp> {
        resp_command(self.port, args, IO_TIMEOUT)
    }

    /// Starts the process on `self.port` and waits until it answers `PING`.
    fn spawn(&mut self) -> io::Result<()> {
        let log_path = self.dir.path.join("redis.log");
        // a fresh log per start, so an old "Address already in use" is not read as new
        let log = fs::File::create(&log_path)?;
        let mut child = Command::new(&self.binary)
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir.path)
            .args(["--daemonize", "no"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| annotate(e, &format!("cannot run {}", self.binary.display())))?;
        match wait_for_pong(self.port, &mut child, &log_path) {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(e) => {
                let _ = kill_and_wait(&mut child);
                Err(e)
            }
        }
    }
}

/// Waits until the Redis `child` on `port` answers `PING`, at most [`START_TIMEOUT`]; an
/// early exit is an error quoting its log (kind `AddrInUse` when the port was taken).
fn wait_for_pong(port: u16, child: &mut Child, log_path: &Path) -> io::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            let log = tail(log_path);
            let kind = if log.contains("Address already in use") {
                io::ErrorKind::AddrInUse
            } else {
                io::ErrorKind::Other
            };
            return Err(io::Error::new(
                kind,
                format!(
                    "redis-server on 127.0.0.1:{port} exited ({status}) before answering PING; its log:\n{log}"
                ),
            ));
        }
        match resp_command(port, &["PING"], PROBE_TIMEOUT) {
            // NOAUTH: up, but started with --requirepass
            Ok(Resp::Simple(s)) if s == "PONG" => return Ok(()),
            Ok(Resp::Error(e)) if e.starts_with("NOAUTH") => return Ok(()),
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "redis-server on 127.0.0.1:{port} did not answer PING within {START_TIMEOUT:?}; its log:\n{}",
                    tail(log_path)
                ),
            ));
        }
        thread::sleep(POLL);
    }
}

/// Leaves the extra arguments out: they may hold a `--requirepass` secret.
impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("binary", &self.binary)
            .field("port", &self.port)
            .field("extra_args", &self.extra_args.len())
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("dir", &self.dir)
            .finish()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// An nginx master process (one worker) serving a site file such as `deploy/nginx/llmux.conf`,
/// with its configuration, logs, pid file and temporary files in a temporary directory.
///
/// Works as root (the worker then runs as nginx's default user) and as any other user.
/// Dropping it stops nginx (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]) and removes the
/// directory.
#[derive(Debug)]
pub struct Nginx {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx (found on `PATH`, else `/usr/sbin/nginx`) with `conf_template` as the site:
    /// an http{}-level file whose `127.0.0.1:8080` becomes `127.0.0.1:{listen}` and whose
    /// `127.0.0.1:8081`, `127.0.0.1:8082`, … become `127.0.0.1:{upstreams[0]}`,
    /// `127.0.0.1:{upstreams[1]}`, … (exact matches only: `127.0.0.1:80800` is left alone).
    /// `listen` 0 picks a free port. The template must name the listen address and exactly
    /// as many upstream addresses as `upstreams` has ports (else `InvalidInput`).
    ///
    /// Waits (at most [`START_TIMEOUT`]) until the listen port accepts connections; if nginx
    /// exits first (bad configuration, port taken), the error quotes its error log.
    pub fn start(conf_template: &Path, listen: u16, upstreams: &[u16]) -> io::Result<Nginx> {
        let binary = find_program(
            "nginx",
            &[
                "/usr/sbin/nginx",
                "/usr/local/sbin/nginx",
                "/usr/local/nginx/sbin/nginx",
            ],
            "nginx",
        )?;
        let template = fs::read_to_string(conf_template)
            .map_err(|e| annotate(e, &format!("cannot read {}", conf_template.display())))?;
        let port = match listen {
            0 => free_port()?,
            p => p,
        };
        let site = substitute_ports(&template, port, upstreams)?;
        let dir = TempDir::new("nginx")?;
        let site_path = dir.path.join("llmux.conf");
        fs::write(&site_path, site)?;
        fs::write(
            dir.path.join("nginx.conf"),
            main_conf(&dir.path, &site_path)?,
        )?;
        let stderr = fs::File::create(dir.path.join("stderr.log"))?;
        let child = Command::new(&binary)
            .args(nginx_args(&dir.path))
            .stdin(Stdio::null())
            .stdout(stderr.try_clone()?)
            .stderr(stderr)
            .spawn()
            .map_err(|e| annotate(e, &format!("cannot run {}", binary.display())))?;
        let mut nginx = Nginx {
            binary,
            port,
            child: Some(child),
            dir,
        };
        nginx.wait_ready()?;
        Ok(nginx)
    }

    /// `http://127.0.0.1:PORT`, the load balancer's address (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The listen port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// nginx's error log so far (and what it wrote to stderr), for failing tests to print.
    pub fn error_log(&self) -> String {
        let mut text = tail(&self.dir.path.join("error.log"));
        let stderr = tail(&self.dir.path.join("stderr.log"));
        if !stderr.trim().is_empty() {
            text.push_str("\n--- stderr ---\n");
            text.push_str(&stderr);
        }
        text
    }

    /// Waits until the pid file exists and the listen port accepts a connection.
    fn wait_ready(&mut self) -> io::Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let pid_file = self.dir.path.join("nginx.pid");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait()?,
                None => return Err(io::Error::other("nginx is not running")),
            };
            if let Some(status) = exited {
                self.child = None;
                return Err(io::Error::other(format!(
                    "nginx exited ({status}) before listening on {addr}; its error log:\n{}",
                    self.error_log()
                )));
            }
            if pid_file.exists() && TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "nginx did not listen on {addr} within {START_TIMEOUT:?}; its error log:\n{}",
                        self.error_log()
                    ),
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// SIGTERM (nginx's fast shutdown: the master stops its worker, then exits), SIGKILL if
    /// that takes longer than [`STOP_TIMEOUT`]. Without the `kill` program, `nginx -s stop`
    /// sends the SIGTERM (a SIGKILLed master would leave its worker running).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let sent = signal_term(child.id())
                || Command::new(&self.binary)
                    .args(nginx_args(&self.dir.path))
                    .args(["-s", "stop"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
            if sent && matches!(wait_until(&mut child, STOP_TIMEOUT), Ok(Some(_))) {
                return;
            }
        }
        let _ = kill_and_wait(&mut child);
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `-p DIR/ -c DIR/nginx.conf -e DIR/error.log`: everything nginx reads and writes in `dir`.
fn nginx_args(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut prefix = dir.as_os_str().to_owned();
    prefix.push("/");
    vec![
        "-p".into(),
        prefix,
        "-c".into(),
        dir.join("nginx.conf").into_os_string(),
        "-e".into(),
        dir.join("error.log").into_os_string(),
    ]
}

/// The main nginx.conf around `site`: no daemon, one worker, every path under `dir`.
fn main_conf(dir: &Path, site: &Path) -> io::Result<String> {
    let under = |name: &str| quote(&dir.join(name));
    Ok(format!(
        "# written by llmux_testkit::procs::Nginx\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes 1;\n\
         pid {pid};\n\
         error_log {error_log} warn;\n\
         events {{}}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path {client_body};\n\
         \x20   proxy_temp_path {proxy};\n\
         \x20   fastcgi_temp_path {fastcgi};\n\
         \x20   uwsgi_temp_path {uwsgi};\n\
         \x20   scgi_temp_path {scgi};\n\
         \x20   include {site};\n\
         }}\n",
        pid = under("nginx.pid")?,
        error_log = under("error.log")?,
        client_body = under("client_body_temp")?,
        proxy = under("proxy_temp")?,
        fastcgi = under("fastcgi_temp")?,
        uwsgi = under("uwsgi_temp")?,
        scgi = under("scgi_temp")?,
        site = quote(site)?,
    ))
}

/// `path` as a double-quoted nginx string; paths nginx could misread are refused.
fn quote(path: &Path) -> io::Result<String> {
    match path.to_str() {
        Some(s) if !s.contains(['"', '\\', '$', '\n', '\r']) => Ok(format!("\"{s}\"")),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "temporary path {} cannot be written in an nginx configuration",
                path.display()
            ),
        )),
    }
}

/// `template` with `127.0.0.1:8080` replaced by the listen port and `127.0.0.1:8081 + i` by
/// `upstreams[i]`, in one pass (a replaced port is never replaced again). Only whole port
/// numbers after exactly `127.0.0.1:` count; every other text is kept as it is.
fn substitute_ports(template: &str, listen: u16, upstreams: &[u16]) -> io::Result<String> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    let mut out = String::with_capacity(template.len() + 16);
    let mut listen_seen = false;
    let mut upstream_seen = vec![false; upstreams.len()];
    let mut rest = template;
    while let Some(at) = rest.find(LOOPBACK) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        out.push_str(LOOPBACK);
        let after = &from[LOOPBACK.len()..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, tail) = after.split_at(digits);
        rest = tail;
        // `1127.0.0.1:8080` or `10.127.0.0.1:8080` is some other address
        let glued = out[..out.len() - LOOPBACK.len()]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_digit() || c == '.');
        let port = if glued {
            None
        } else {
            number.parse::<u16>().ok()
        };
        match port {
            Some(TEMPLATE_LISTEN) => {
                listen_seen = true;
                out.push_str(&listen.to_string());
            }
            Some(p @ TEMPLATE_FIRST_UPSTREAM..=TEMPLATE_LAST_UPSTREAM) => {
                let index = usize::from(p - TEMPLATE_FIRST_UPSTREAM);
                let Some(&port) = upstreams.get(index) else {
                    return Err(invalid(format!(
                        "the nginx template names {LOOPBACK}{p}, but only {} upstream port(s) were given",
                        upstreams.len()
                    )));
                };
                upstream_seen[index] = true;
                out.push_str(&port.to_string());
            }
            _ => out.push_str(number),
        }
    }
    out.push_str(rest);
    if !listen_seen {
        return Err(invalid(format!(
            "the nginx template has no {LOOPBACK}{TEMPLATE_LISTEN} to replace with the listen port"
        )));
    }
    if let Some(missing) = upstream_seen.iter().position(|seen| !seen) {
        return Err(invalid(format!(
            "the nginx template has no {LOOPBACK}{} for upstream port {} of {}",
            usize::from(TEMPLATE_FIRST_UPSTREAM) + missing,
            missing + 1,
            upstreams.len()
        )));
    }
    Ok(out)
}

/// The first executable `name` on `PATH`, else the first executable of `fallbacks`; if none,
/// a `NotFound` error naming the Debian `package` to install.
fn find_program(name: &str, fallbacks: &[&str], package: &str) -> io::Result<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "`{name}` is not on PATH nor at {}: install the Debian package `{package}` \
                     (apt-get install {package})",
                    fallbacks.join(", ")
                ),
            )
        })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The same error kind with `context` in front of the message.
fn annotate(e: io::Error, context: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{context}: {e}"))
}

/// The last [`LOG_TAIL`] bytes of a log file as text (empty when unreadable).
fn tail(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(LOG_TAIL);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Kills `child` with SIGKILL unless it already exited, and reaps it (within [`STOP_TIMEOUT`]).
fn kill_and_wait(child: &mut Child) -> io::Result<()> {
    if child.try_wait()?.is_none() {
        // an already exited child is not an error here (older std said InvalidInput)
        if let Err(e) = child.kill() {
            if e.kind() != io::ErrorKind::InvalidInput {
                return Err(e);
            }
        }
    }
    match wait_until(child, STOP_TIMEOUT)? {
        Some(_) => Ok(()),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "process {} did not exit within {STOP_TIMEOUT:?} of SIGKILL",
                child.id()
            ),
        )),
    }
}

/// Sends SIGTERM to `pid` through the `kill` program (std can only send SIGKILL); whether
/// that worked.
fn signal_term(pid: u32) -> bool {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `child` until it exits or `limit` passes (`Ok(None)`).
fn wait_until(child: &mut Child, limit: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// A directory under [`std::env::temp_dir`] with a unique name (pid, counter, random), mode
/// 0755 (an nginx worker running as another user may need to enter it), removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(kind: &str) -> io::Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        let mut last = None;
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u64(n);
            hasher.write_u128(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default(),
            );
            let path = base.join(format!(
                "llmux-{kind}-{}-{n}-{:016x}",
                std::process::id(),
                hasher.finish()
            ));
            match fs::create_dir(&path) {
                Ok(()) => {
                    let dir = TempDir { path };
                    fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o755))?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(annotate(e, &format!("cannot create {}", path.display()))),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no unique temporary directory name")))
    }
}

impl fmt::Debug for TempDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TempDir").field(&self.path).finish()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Sends one RESP command to `127.0.0.1:port` on a fresh connection and reads the reply.
fn resp_command(port: u16, args: &[&str], timeout: Duration) -> io::Result<Resp> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&resp_encode(args))?;
    read_resp(&mut BufReader::new(stream), 0)
}

/// A command as a RESP array of bulk strings: `PING` is `*1\r\n$4\r\nPING\r\n`.
fn resp_encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one RESP2 value (bounded: line length, bulk size, array length, nesting).
fn read_resp(r: &mut impl BufRead, depth: usize) -> io::Result<Resp> {
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    if depth > MAX_RESP_DEPTH {
        return Err(bad("RESP reply nested too deeply".into()));
    }
    let mut line = Vec::new();
    r.by_ref()
        .take(MAX_RESP_LINE)
        .read_until(b'\n', &mut line)?;
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return Err(bad(format!(
            "RESP reply line not ended by CRLF: {:?}",
            String::from_utf8_lossy(&line)
        )));
    };
    let Some((&kind, rest)) = line.split_first() else {
        return Err(bad("empty RESP reply line".into()));
    };
    let text = String::from_utf8_lossy(rest).into_owned();
    let number = |t: &str| {
        t.parse::<i64>()
            .map_err(|_| bad(format!("bad RESP number {t:?}")))
    };
    match kind {
        b'+' => Ok(Resp::Simple(text)),
        b'-' => Ok(Resp::Error(text)),
        b':' => Ok(Resp::Integer(number(&text)?)),
        b'$' => {
            let len = number(&text)?;
            if len < 0 {
                return Ok(Resp::Bulk(None));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= MAX_RESP_BULK)
                .ok_or_else(|| bad(format!("RESP bulk string of {len} bytes is too long")))?;
            let mut data = vec![0; len + 2];
            r.read_exact(&mut data)?;
            if !data.ends_with(b"\r\n") {
                return Err(bad("RESP bulk string not ended by CRLF".into()));
            }
            data.truncate(len);
            Ok(Resp::Bulk(Some(data)))
        }
        b'*' => {
            let len = number(&text)?;
            if len < 0 {
                return Ok(Resp::Array(None));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= MAX_RESP_ITEMS)
                .ok_or_else(|| bad(format!("RESP array of {len} items is too long")))?;
            let mut items = Vec::with_capacity(len.min(1024));
            for _ in 0..len {
                items.push(read_resp(r, depth + 1)?);
            }
            Ok(Resp::Array(Some(items)))
        }
        other => Err(bad(format!(
            "unknown RESP type byte {:?}",
            char::from(other)
        ))),
    }
}

#[cfg(test)]
mod tests;
