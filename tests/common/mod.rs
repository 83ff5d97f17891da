//! Shared harness for the integration tests that drive sipveil with SIPp.
//!
//! Used from a test file with `mod common;`. It offers:
//! - tool discovery with the SKIP/require rule (`require_sipp`);
//! - scratch directories that survive a failing test for inspection (`TempDir`);
//! - a sipveil config writer and a running sipveil that is ready when it has
//!   answered an OPTIONS, killed by PID on drop and restartable (`Sipveil`;
//!   `configure` + `cli` + `launch` prepare the store before the start);
//! - bounded SIPp runs with parsed statistics (`Sipp`, `SippResult`);
//! - a topology-leak checker over SIPp `-trace_msg` files (`check_leaks`);
//! - a small Rust SIP user agent over UDP with its own digest code (`ua`).
//!
//! Every process started here is stopped by its PID (SIGKILL via
//! `Child::kill`) when its owner is dropped, also when a test panics.

#![allow(dead_code)]

pub mod baresip;
pub mod call;
pub mod peer;
pub mod ua;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Tools on PATH, SKIP / require
// ---------------------------------------------------------------------------

/// Env var that turns a missing interop tool from a SKIP into a failure (CI sets it).
pub const REQUIRE_INTEROP_ENV: &str = "SIPVEIL_REQUIRE_INTEROP";

/// The first executable file called `name` in a directory of `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether `SIPVEIL_REQUIRE_INTEROP=1` is set.
pub fn interop_required() -> bool {
    std::env::var(REQUIRE_INTEROP_ENV)
        .map(|v| v == "1")
        .unwrap_or(false)
}

/// Looks `tool` up on PATH. When it is missing: prints
/// `SKIP: <test>: <tool> not found on PATH` and returns `None` (the test then
/// returns early), or panics when `SIPVEIL_REQUIRE_INTEROP=1`.
pub fn require_tool(test: &str, tool: &str) -> Option<PathBuf> {
    match find_on_path(tool) {
        Some(path) => Some(path),
        None if interop_required() => {
            panic!("{test}: {tool} not found on PATH and {REQUIRE_INTEROP_ENV}=1")
        }
        None => {
            println!("SKIP: {test}: {tool} not found on PATH");
            None
        }
    }
}

/// `require_tool(test, "sipp")`.
pub fn require_sipp(test: &str) -> Option<PathBuf> {
    require_tool(test, "sipp")
}

// ---------------------------------------------------------------------------
// Paths and scratch directories
// ---------------------------------------------------------------------------

/// `fixtures/sipp/` of this crate.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("sipp")
}

/// `fixtures/sipp/<name>` (give the name with `.xml`).
pub fn scenario(name: &str) -> PathBuf {
    let path = scenarios_dir().join(name);
    assert!(path.is_file(), "no SIPp scenario {}", path.display());
    path
}

static TEMP_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A scratch directory under the system temp dir. Removed on drop, except when
/// the thread is panicking (a failed test keeps its traces; the path is printed)
/// or when `SIPVEIL_KEEP_TEST_DIRS=1`.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let clean: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = std::env::temp_dir().join(format!("sipveil-{clean}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create scratch dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory, created.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        fs::create_dir_all(&p).expect("create scratch subdir");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let keep = std::env::var("SIPVEIL_KEEP_TEST_DIRS")
            .map(|v| v == "1")
            .unwrap_or(false);
        if std::thread::panicking() || keep {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn tail_of_file(path: &Path, max_bytes: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max_bytes);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

// ---------------------------------------------------------------------------
// Processes killed by PID
// ---------------------------------------------------------------------------

/// Owns child processes; SIGKILLs each (by its PID, `Child::kill`) and reaps it
/// on drop.
#[derive(Default)]
pub struct ProcessGuard {
    children: Vec<(String, Child)>,
}

impl ProcessGuard {
    pub fn new() -> ProcessGuard {
        ProcessGuard::default()
    }

    pub fn add(&mut self, label: &str, child: Child) -> u32 {
        let pid = child.id();
        self.children.push((label.to_string(), child));
        pid
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|(_, c)| c.id()).collect()
    }

    /// SIGKILL and reap every process still running.
    pub fn kill_all(&mut self) {
        for (_, child) in self.children.iter_mut() {
            kill_and_reap(child);
        }
        self.children.clear();
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// SIGKILL (if still running) and wait for the process, so no zombie is left.
pub fn kill_and_reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Waits up to `limit` for the child to exit; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => return None,
        }
    }
}

// ---------------------------------------------------------------------------
// sipveil config
// ---------------------------------------------------------------------------

/// One `[[interface]]` of the config.
#[derive(Clone, Debug)]
pub struct Interface {
    pub name: String,
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub advertise: Option<String>,
    pub trusted: bool,
    /// More `key = value` lines for this `[[interface]]` (e.g.
    /// `send_identity = false`), written as given.
    pub options: Vec<String>,
}

impl Interface {
    /// UDP only.
    pub fn udp(name: &str, addr: SocketAddr) -> Interface {
        Interface {
            name: name.to_string(),
            udp: Some(addr),
            tcp: None,
            advertise: None,
            trusted: false,
            options: Vec::new(),
        }
    }

    /// UDP and TCP on the same address.
    pub fn udp_tcp(name: &str, addr: SocketAddr) -> Interface {
        Interface {
            tcp: Some(addr),
            ..Interface::udp(name, addr)
        }
    }

    pub fn advertise(mut self, host: &str) -> Interface {
        self.advertise = Some(host.to_string());
        self
    }

    pub fn trusted(mut self, trusted: bool) -> Interface {
        self.trusted = trusted;
        self
    }

    /// Adds one `key = value` line to this interface's section.
    pub fn option(mut self, line: &str) -> Interface {
        self.options.push(line.to_string());
        self
    }
}

/// One `[[route]]`: requests arriving on `from` go to `to`, leaving from `egress`.
#[derive(Clone, Debug)]
pub struct Route {
    pub from: String,
    pub to: String,
    pub egress: String,
}

impl Route {
    pub fn new(from: &str, to: &str, egress: &str) -> Route {
        Route {
            from: from.to_string(),
            to: to.to_string(),
            egress: egress.to_string(),
        }
    }
}

fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The TOML text of a sipveil config (operator contract in DESIGN.md).
pub fn config_toml(
    node_name: &str,
    data_dir: &Path,
    interfaces: &[Interface],
    routes: &[Route],
) -> String {
    let mut s = String::new();
    s.push_str("[node]\n");
    s.push_str(&format!("name = {}\n", toml_str(node_name)));
    s.push_str(&format!(
        "data_dir = {}\n",
        toml_str(&data_dir.to_string_lossy())
    ));
    for i in interfaces {
        s.push_str("\n[[interface]]\n");
        s.push_str(&format!("name = {}\n", toml_str(&i.name)));
        if let Some(a) = i.udp {
            s.push_str(&format!("udp = {}\n", toml_str(&a.to_string())));
        }
        if let Some(a) = i.tcp {
            s.push_str(&format!("tcp = {}\n", toml_str(&a.to_string())));
        }
        if let Some(h) = &i.advertise {
            s.push_str(&format!("advertise = {}\n", toml_str(h)));
        }
        s.push_str(&format!("trusted = {}\n", i.trusted));
        for line in &i.options {
            s.push_str(line);
            s.push('\n');
        }
    }
    for r in routes {
        s.push_str("\n[[route]]\n");
        s.push_str(&format!("from = {}\n", toml_str(&r.from)));
        s.push_str(&format!("to = {}\n", toml_str(&r.to)));
        s.push_str(&format!("egress = {}\n", toml_str(&r.egress)));
    }
    s
}

/// The usual two-sided setup: `access` (UDP+TCP, untrusted) at `access`,
/// `core` (UDP, trusted) at `core`, and one route access -> `callee` via core.
pub fn edge_config(
    access: SocketAddr,
    core: SocketAddr,
    callee: SocketAddr,
) -> (Vec<Interface>, Vec<Route>) {
    (
        vec![
            Interface::udp_tcp("access", access),
            Interface::udp("core", core).trusted(true),
        ],
        vec![Route::new("access", &format!("sip:{callee}"), "core")],
    )
}

// ---------------------------------------------------------------------------
// A running sipveil
// ---------------------------------------------------------------------------

/// What `Sipveil::start` adds to the config: the functional suites drive
/// sipveil with SIPp at up to 100 calls/s from one loopback address, far above
/// the per-source budgets and flood threshold that are safe for a public
/// interface, so their load generators are declared exempt peers (as an
/// operator declares a trunk). tests/flood.rs runs the defaults through
/// `Sipveil::start_with`.
pub const LOAD_GENERATORS_EXEMPT: &str = "[admission]\nexempt = [\"127.0.0.0/8\"]\n";

/// How long sipveil gets to answer its first OPTIONS.
pub const SIPVEIL_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A sipveil process (`sipveil run --config <file>`) with its config and data
/// dir in a scratch directory. SIGKILLed by PID on drop.
pub struct Sipveil {
    child: Option<Child>,
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    pub dir: PathBuf,
    /// UDP address probed with OPTIONS to decide that sipveil is up.
    pub probe: SocketAddr,
    starts: u32,
}

impl Sipveil {
    /// The binary under test.
    pub fn binary() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_sipveil"))
    }

    /// Writes the config into `dir`, starts sipveil and waits until the first
    /// interface with a UDP listener answers an OPTIONS. Panics (with the tail
    /// of sipveil's log) if it exits or stays silent.
    pub fn start(dir: &Path, interfaces: &[Interface], routes: &[Route]) -> Sipveil {
        let mut s = Sipveil::configure(dir, interfaces, routes, "");
        s.launch();
        s
    }

    /// `start` with `extra` TOML (whole sections, e.g. `[admission.flood]`)
    /// appended to the generated config.
    pub fn start_with(
        dir: &Path,
        interfaces: &[Interface],
        routes: &[Route],
        extra: &str,
    ) -> Sipveil {
        let mut s = Sipveil::write_config(dir, interfaces, routes, extra);
        s.launch();
        s
    }

    /// Writes the config into `dir` (with `extra` TOML appended, e.g. a
    /// `[registrar]` section) and creates the data_dir, without starting
    /// sipveil: `cli` can prepare the store first, then `launch`. Unless `extra`
    /// configures `[admission]` itself, loopback load generators are exempt from
    /// the per-source limits (tests drive hundreds of calls from one address).
    pub fn configure(
        dir: &Path,
        interfaces: &[Interface],
        routes: &[Route],
        extra: &str,
    ) -> Sipveil {
        if extra.contains("[admission") {
            Sipveil::write_config(dir, interfaces, routes, extra)
        } else {
            let extra = format!("{extra}\n{LOAD_GENERATORS_EXEMPT}");
            Sipveil::write_config(dir, interfaces, routes, &extra)
        }
    }

    /// Writes the config with `extra` appended as is (the admission defaults stay
    /// in force unless `extra` changes them).
    fn write_config(
        dir: &Path,
        interfaces: &[Interface],
        routes: &[Route],
        extra: &str,
    ) -> Sipveil {
        let data_dir = dir.join("data");
        fs::create_dir_all(&data_dir).expect("create data_dir");
        let config_path = dir.join("sipveil.toml");
        let mut text = config_toml("test-edge", &data_dir, interfaces, routes);
        text.push('\n');
        text.push_str(extra);
        fs::write(&config_path, text).expect("write sipveil config");
        let probe = interfaces
            .iter()
            .find_map(|i| i.udp)
            .expect("an interface with a UDP listener to probe");
        Sipveil {
            child: None,
            config_path,
            data_dir,
            dir: dir.to_path_buf(),
            probe,
            starts: 0,
        }
    }

    /// Starts the configured sipveil and waits until it answers OPTIONS.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "sipveil is already running");
        self.spawn_and_wait();
    }

    /// Runs `sipveil ARGS --config <this config>` to its end (bounded to 30 s)
    /// and returns its output; e.g. `["subscriber", "add", "alice@example.test",
    /// "--password", "pw"]`.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut child = Command::new(Self::binary())
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sipveil cli");
        // Both pipes are drained on threads so the bound holds even if the
        // process hangs with its pipes open.
        let drain = |mut r: Box<dyn io::Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                v
            })
        };
        let out = drain(Box::new(child.stdout.take().expect("stdout")));
        let err = drain(Box::new(child.stderr.take().expect("stderr")));
        let Some(status) = wait_timeout(&mut child, Duration::from_secs(30)) else {
            kill_and_reap(&mut child);
            panic!("sipveil {args:?} did not finish within 30 s");
        };
        std::process::Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        }
    }

    /// `sipveil subscriber add AOR --password PW`; panics unless it succeeds.
    pub fn add_subscriber(&self, aor: &str, password: &str) {
        let o = self.cli(&["subscriber", "add", aor, "--password", password]);
        assert!(
            o.status.success(),
            "subscriber add {aor}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn log_path(&self, n: u32) -> PathBuf {
        self.dir.join(format!("sipveil-{n}.log"))
    }

    fn spawn_and_wait(&mut self) {
        self.starts += 1;
        let log = self.log_path(self.starts);
        let out = fs::File::create(&log).expect("create sipveil log");
        let err = out.try_clone().expect("clone log handle");
        let child = Command::new(Self::binary())
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn sipveil");
        self.child = Some(child);
        if let Err(why) = self.wait_ready(SIPVEIL_READY_TIMEOUT) {
            let tail = tail_of_file(&log, 4000);
            self.kill();
            panic!(
                "sipveil did not come up ({why}); config {}:\n{}\n--- log tail ---\n{tail}",
                self.config_path.display(),
                fs::read_to_string(&self.config_path).unwrap_or_default()
            );
        }
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        let deadline = started + limit;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "sipveil exited with {status} before answering OPTIONS"
                    ));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no answer to OPTIONS on {} within {limit:?}",
                    self.probe
                ));
            }
            if options_ping(self.probe, left.min(Duration::from_millis(200))).is_ok() {
                return Ok(started.elapsed());
            }
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILL by PID and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }

    /// SIGKILL, then start again with the same config and data_dir and wait
    /// until it answers OPTIONS (the restart test).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn_and_wait();
    }

    /// SIGTERM by PID (`kill -TERM <pid>`) and wait up to `limit` for the
    /// process to exit; SIGKILL if it does not. Returns its exit status, `None`
    /// when it had to be killed.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let status = wait_timeout(&mut child, limit);
        if status.is_none() {
            kill_and_reap(&mut child);
        }
        status
    }

    /// SIGTERM (see `terminate`), then start again with the same config and
    /// data_dir. Panics if it did not exit cleanly within 10 s.
    pub fn restart_graceful(&mut self) {
        let status = self.terminate(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "sipveil did not exit cleanly on SIGTERM ({status:?}):\n{}",
            self.log_tail(3000)
        );
        self.spawn_and_wait();
    }

    /// The last `max_bytes` of the current run's log.
    pub fn log_tail(&self, max_bytes: usize) -> String {
        tail_of_file(&self.log_path(self.starts), max_bytes)
    }

    /// The whole log of the current run, ANSI colour codes removed (tracing
    /// colours its fields even into a file).
    pub fn log_text(&self) -> String {
        let raw = fs::read(self.log_path(self.starts)).unwrap_or_default();
        strip_ansi(&String::from_utf8_lossy(&raw))
    }

    /// Waits up to `limit` until the log (see `log_text`) holds `count` lines
    /// containing `needle`; returns those lines (fewer at the deadline). The
    /// log is written by a background thread, so a line may trail its event.
    pub fn wait_log_lines(&self, needle: &str, count: usize, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let lines: Vec<String> = self
                .log_text()
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_string)
                .collect();
            if lines.len() >= count || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sipveil {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The value of `key=value` in a tracing log line (a quoted value keeps its quotes).
pub fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}=");
    let mut from = 0;
    while let Some(i) = line[from..].find(&pat) {
        let start = from + i;
        let glued = line[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !glued {
            let rest = &line[start + pat.len()..];
            let end = if let Some(quoted) = rest.strip_prefix('"') {
                quoted.find('"').map_or(rest.len(), |j| j + 2)
            } else {
                rest.find(char::is_whitespace).unwrap_or(rest.len())
            };
            return Some(&rest[..end]);
        }
        from = start + pat.len();
    }
    None
}

/// One "media released" line of sipveil's log: what the relay forwarded for
/// one stream of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaReleased {
    pub call: String,
    pub stream: u64,
    pub a_to_b_packets: u64,
    /// UDP payload bytes (0 when the line predates the bytes fields).
    pub a_to_b_bytes: u64,
    pub b_to_a_packets: u64,
    pub b_to_a_bytes: u64,
    pub dropped: u64,
}

impl MediaReleased {
    /// Parses a log line; `None` unless it is a "media released" line.
    pub fn parse(line: &str) -> Option<MediaReleased> {
        if !line.contains("media released") {
            return None;
        }
        let num = |k: &str| log_field(line, k).and_then(|v| v.parse::<u64>().ok());
        Some(MediaReleased {
            call: log_field(line, "call")?.to_string(),
            stream: num("stream")?,
            a_to_b_packets: num("a_to_b_packets")?,
            a_to_b_bytes: num("a_to_b_bytes").unwrap_or(0),
            b_to_a_packets: num("b_to_a_packets")?,
            b_to_a_bytes: num("b_to_a_bytes").unwrap_or(0),
            dropped: num("dropped").unwrap_or(0),
        })
    }
}

/// Sends one OPTIONS (UDP, from an ephemeral port on 127.0.0.1 or `::1`) to
/// `target` and waits up to `limit` for any SIP response. Returns its status line.
pub fn options_ping(target: SocketAddr, limit: Duration) -> io::Result<String> {
    let bind: SocketAddr = if target.is_ipv4() {
        "127.0.0.1:0".parse().expect("v4 any")
    } else {
        "[::1]:0".parse().expect("v6 any")
    };
    let sock = UdpSocket::bind(bind)?;
    let local = sock.local_addr()?;
    let n = TEMP_COUNTER.fetch_add(1, Ordering::SeqCst);
    let host = match target.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let lhost = match local.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let msg = format!(
        "OPTIONS sip:{host}:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {lhost}:{lport};branch=z9hG4bK-probe-{pid}-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@example.test>;tag=probe{pid}x{n}\r\n\
         To: <sip:{host}:{port}>\r\n\
         Call-ID: probe-{pid}-{n}@example.test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        port = target.port(),
        lport = local.port(),
        pid = std::process::id(),
    );
    sock.send_to(msg.as_bytes(), target)?;
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no response"));
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv_from(&mut buf) {
            Ok((len, _)) => {
                let text = String::from_utf8_lossy(&buf[..len]);
                if text.starts_with("SIP/2.0 ") {
                    return Ok(text.lines().next().unwrap_or_default().to_string());
                }
            }
            // ICMP port unreachable shows up as ConnectionRefused: not up yet.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(Duration::from_millis(50).min(left));
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether something has bound `addr` (UDP or TCP listener), from /proc/net.
pub fn is_bound(addr: SocketAddr, tcp: bool) -> bool {
    let (file, hex) = match addr.ip() {
        IpAddr::V4(ip) => {
            let o = ip.octets();
            (
                if tcp {
                    "/proc/net/tcp"
                } else {
                    "/proc/net/udp"
                },
                format!(
                    "{:02X}{:02X}{:02X}{:02X}:{:04X}",
                    o[3],
                    o[2],
                    o[1],
                    o[0],
                    addr.port()
                ),
            )
        }
        IpAddr::V6(ip) => {
            let mut h = String::new();
            for chunk in ip.octets().chunks(4) {
                for b in chunk.iter().rev() {
                    h.push_str(&format!("{b:02X}"));
                }
            }
            (
                if tcp {
                    "/proc/net/tcp6"
                } else {
                    "/proc/net/udp6"
                },
                format!("{h}:{:04X}", addr.port()),
            )
        }
    };
    let Ok(text) = fs::read_to_string(file) else {
        return false;
    };
    text.lines().skip(1).any(|line| {
        let mut f = line.split_whitespace();
        let local = f.nth(1);
        let state = f.nth(1);
        local == Some(hex.as_str()) && (!tcp || state == Some("0A"))
    })
}

/// Waits until `addr` is bound (see `is_bound`), up to `limit`.
pub fn wait_bound(addr: SocketAddr, tcp: bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if is_bound(addr, tcp) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

// ---------------------------------------------------------------------------
// SIPp
// ---------------------------------------------------------------------------

/// SIPp transport mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `-t u1`
    Udp,
    /// `-t t1` (one TCP connection)
    Tcp,
}

impl Transport {
    fn flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }
}

/// One SIPp instance to run: a UAS (no `remote`) or a UAC (`remote` set).
/// Traces (-trace_msg, -trace_stat, -trace_err, -trace_screen, optional
/// -trace_rtt) go into `dir` under `name`.
#[derive(Clone, Debug)]
pub struct Sipp {
    pub name: String,
    pub scenario: PathBuf,
    pub local: SocketAddr,
    pub remote: Option<SocketAddr>,
    pub transport: Transport,
    pub calls: u32,
    pub rate: Option<u32>,
    pub limit: Option<u32>,
    pub hold_ms: Option<u32>,
    pub service: String,
    pub lost_percent: Option<u32>,
    pub trace_rtt: bool,
    pub extra: Vec<String>,
    /// Wall-clock bound; SIPp itself gets `-timeout` a little shorter.
    pub timeout: Duration,
}

impl Sipp {
    /// A UAS bound to `local`, answering `calls` calls with `scenario` (file
    /// name under fixtures/sipp/).
    pub fn uas(name: &str, scenario_file: &str, local: SocketAddr, calls: u32) -> Sipp {
        Sipp {
            name: name.to_string(),
            scenario: scenario(scenario_file),
            local,
            remote: None,
            transport: Transport::Udp,
            calls,
            rate: None,
            limit: None,
            hold_ms: None,
            service: "bob".into(),
            lost_percent: None,
            trace_rtt: false,
            extra: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }

    /// A UAC bound to `local`, placing `calls` calls to `remote`.
    pub fn uac(
        name: &str,
        scenario_file: &str,
        local: SocketAddr,
        remote: SocketAddr,
        calls: u32,
    ) -> Sipp {
        Sipp {
            remote: Some(remote),
            rate: Some(10),
            ..Sipp::uas(name, scenario_file, local, calls)
        }
    }

    pub fn transport(mut self, t: Transport) -> Sipp {
        self.transport = t;
        self
    }
    /// Calls per second (`-r`).
    pub fn rate(mut self, cps: u32) -> Sipp {
        self.rate = Some(cps);
        self
    }
    /// Max simultaneous calls (`-l`).
    pub fn limit(mut self, n: u32) -> Sipp {
        self.limit = Some(n);
        self
    }
    /// Hold time for `<pause/>` (`-d`, ms).
    pub fn hold_ms(mut self, ms: u32) -> Sipp {
        self.hold_ms = Some(ms);
        self
    }
    /// Percentage of packets SIPp loses on purpose (`-lost`).
    pub fn lost(mut self, percent: u32) -> Sipp {
        self.lost_percent = Some(percent);
        self
    }
    pub fn trace_rtt(mut self) -> Sipp {
        self.trace_rtt = true;
        self
    }
    pub fn timeout(mut self, t: Duration) -> Sipp {
        self.timeout = t;
        self
    }
    /// `-s`: the user part SIPp puts into `[service]`.
    pub fn service(mut self, user: &str) -> Sipp {
        self.service = user.to_string();
        self
    }
    /// `-au USER -ap PASSWORD`: credentials for `[authentication]`.
    pub fn credentials(self, user: &str, password: &str) -> Sipp {
        self.arg("-au").arg(user).arg("-ap").arg(password)
    }
    pub fn arg(mut self, a: &str) -> Sipp {
        self.extra.push(a.to_string());
        self
    }

    fn file(&self, dir: &Path, suffix: &str) -> PathBuf {
        dir.join(format!("{}{suffix}", self.name))
    }

    /// The SIPp command line (without the program name).
    pub fn args(&self, dir: &Path) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        if let Some(r) = self.remote {
            a.push(r.to_string());
        }
        let sf = self.file(dir, ".xml");
        let sipp_timeout = self
            .timeout
            .saturating_sub(Duration::from_secs(5))
            .max(Duration::from_secs(3));
        a.extend(
            [
                "-sf",
                &sf.to_string_lossy(),
                "-i",
                &self.local.ip().to_string(),
                "-p",
                &self.local.port().to_string(),
                "-t",
                self.transport.flag(),
                "-m",
                &self.calls.to_string(),
                "-s",
                &self.service,
                "-timeout",
                &format!("{}s", sipp_timeout.as_secs()),
                "-timeout_error",
                "-recv_timeout",
                "30000",
                "-nostdin",
                "-trace_msg",
                "-message_file",
                &self.file(dir, "_messages.log").to_string_lossy(),
                "-trace_stat",
                "-stf",
                &self.file(dir, "_stat.csv").to_string_lossy(),
                "-fd",
                "1",
                "-trace_err",
                "-error_file",
                &self.file(dir, "_errors.log").to_string_lossy(),
                "-trace_screen",
                "-screen_file",
                &self.file(dir, "_screen.log").to_string_lossy(),
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        if let Some(r) = self.rate {
            a.extend(["-r".into(), r.to_string(), "-rp".into(), "1000".into()]);
        }
        if let Some(l) = self.limit {
            a.extend(["-l".into(), l.to_string()]);
        }
        if let Some(d) = self.hold_ms {
            a.extend(["-d".into(), d.to_string()]);
        }
        if let Some(p) = self.lost_percent {
            a.extend(["-lost".into(), p.to_string()]);
        }
        if self.trace_rtt {
            a.extend(["-trace_rtt".into(), "-rtt_freq".into(), "1".into()]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Starts SIPp (scenario copied into `dir`, cwd `dir`). For a UAS, waits
    /// until its port is bound. The process is killed by PID if the returned
    /// handle is dropped unwaited. A SIPp that cannot bind its address (someone
    /// else holds the port for a moment) is started again, up to 3 times.
    pub fn spawn(&self, dir: &Path) -> SippProcess {
        let mut attempt = 1;
        loop {
            let mut p = self.spawn_once(dir);
            if attempt >= 3 || !p.failed_to_bind() {
                return p;
            }
            eprintln!(
                "SIPp {} could not bind {} (attempt {attempt}); retrying",
                self.name, self.local
            );
            if let Some(mut c) = p.child.take() {
                kill_and_reap(&mut c);
            }
            attempt += 1;
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn spawn_once(&self, dir: &Path) -> SippProcess {
        fs::create_dir_all(dir).expect("create sipp dir");
        fs::copy(&self.scenario, self.file(dir, ".xml")).expect("copy scenario");
        let out = fs::File::create(self.file(dir, "_out.log")).expect("create sipp log");
        let err = out.try_clone().expect("clone log handle");
        let sipp = find_on_path("sipp").expect("sipp on PATH (check require_sipp first)");
        let child = Command::new(sipp)
            .args(self.args(dir))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn sipp");
        let mut p = SippProcess {
            child: Some(child),
            spec: self.clone(),
            dir: dir.to_path_buf(),
            started: Instant::now(),
        };
        if self.remote.is_none() {
            let tcp = self.transport == Transport::Tcp;
            if !wait_bound(self.local, tcp, Duration::from_secs(5)) && !p.failed_to_bind() {
                let r = p.wait();
                panic!(
                    "SIPp {} did not bind {}:\n{}",
                    self.name,
                    self.local,
                    r.log_tail()
                );
            }
        } else {
            // a caller that cannot bind exits at once: give it that moment
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(300) && !p.has_exited() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        p
    }

    /// `spawn` then `wait`.
    pub fn run(&self, dir: &Path) -> SippResult {
        self.spawn(dir).wait()
    }
}

/// A running SIPp.
pub struct SippProcess {
    child: Option<Child>,
    pub spec: Sipp,
    pub dir: PathBuf,
    started: Instant,
}

impl SippProcess {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn has_exited(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))))
    }

    /// Exited already, saying it could not bind its socket.
    fn failed_to_bind(&mut self) -> bool {
        self.has_exited()
            && fs::read_to_string(self.spec.file(&self.dir, "_out.log"))
                .map(|t| t.contains("Unable to bind"))
                .unwrap_or(false)
    }

    /// Waits for SIPp to end (killing it by PID at the wall-clock bound) and
    /// collects its results.
    pub fn wait(self) -> SippResult {
        self.wait_at_most(Duration::MAX)
    }

    /// Like `wait`, but kills SIPp after at most `limit` from now (e.g. a
    /// callee whose caller has already finished).
    pub fn wait_at_most(mut self, limit: Duration) -> SippResult {
        let mut child = self.child.take().expect("sipp child");
        let left = self
            .spec
            .timeout
            .saturating_sub(self.started.elapsed())
            .min(limit)
            .max(Duration::from_millis(100));
        let status = wait_timeout(&mut child, left);
        let timed_out = status.is_none();
        if timed_out {
            kill_and_reap(&mut child);
        }
        let spec = &self.spec;
        let stat_file = spec.file(&self.dir, "_stat.csv");
        let screen_file = spec.file(&self.dir, "_screen.log");
        let stats = SippStats::from_csv(&stat_file)
            .or_else(|| SippStats::from_screen(&screen_file))
            .unwrap_or_default();
        SippResult {
            name: spec.name.clone(),
            status,
            timed_out,
            elapsed: self.started.elapsed(),
            stats,
            dir: self.dir.clone(),
            message_file: spec.file(&self.dir, "_messages.log"),
            error_file: spec.file(&self.dir, "_errors.log"),
            screen_file,
            out_file: spec.file(&self.dir, "_out.log"),
            rtt_file: find_rtt_file(&self.dir, &spec.name),
        }
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_and_reap(&mut c);
        }
    }
}

fn find_rtt_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let prefix = format!("{name}_");
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .map(|f| f.starts_with(&prefix) && f.ends_with("_rtt.csv"))
                .unwrap_or(false)
        })
}

/// Call counters of one SIPp run (cumulative values).
#[derive(Clone, Debug, Default)]
pub struct SippStats {
    pub created: u64,
    pub successful: u64,
    pub failed: u64,
    pub retransmissions: u64,
    /// Every non-zero cumulative counter of the CSV, by column name.
    pub counters: BTreeMap<String, String>,
}

impl SippStats {
    /// From the `-trace_stat` CSV (`;`-separated, header row, last row = final).
    pub fn from_csv(path: &Path) -> Option<SippStats> {
        let text = fs::read_to_string(path).ok()?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines.next()?.split(';').collect();
        let last: Vec<&str> = lines.next_back()?.split(';').collect();
        let get = |col: &str| -> Option<u64> {
            let i = header.iter().position(|h| *h == col)?;
            last.get(i)?.trim().parse().ok()
        };
        let mut counters = BTreeMap::new();
        for (h, v) in header.iter().zip(last.iter()) {
            if h.ends_with("(C)") && !v.is_empty() && *v != "0" {
                counters.insert(h.to_string(), v.to_string());
            }
        }
        Some(SippStats {
            created: get("TotalCallCreated")?,
            successful: get("SuccessfulCall(C)")?,
            failed: get("FailedCall(C)")?,
            retransmissions: get("Retransmissions(C)").unwrap_or(0),
            counters,
        })
    }

    /// From the last statistics screen of `-trace_screen` (fallback).
    pub fn from_screen(path: &Path) -> Option<SippStats> {
        let text = fs::read_to_string(path).ok()?;
        let cumulative = |label: &str| -> Option<u64> {
            text.lines()
                .rev()
                .find(|l| l.trim_start().starts_with(label))
                .and_then(|l| l.split('|').nth(2))
                .and_then(|v| v.trim().parse().ok())
        };
        Some(SippStats {
            created: cumulative("Total Calls created").unwrap_or(0),
            successful: cumulative("Successful call")?,
            failed: cumulative("Failed call")?,
            retransmissions: 0,
            counters: BTreeMap::new(),
        })
    }
}

/// What a finished SIPp run left behind.
#[derive(Debug)]
pub struct SippResult {
    pub name: String,
    /// `None` if it had to be killed at the wall-clock bound.
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub elapsed: Duration,
    pub stats: SippStats,
    pub dir: PathBuf,
    pub message_file: PathBuf,
    pub error_file: PathBuf,
    pub screen_file: PathBuf,
    pub out_file: PathBuf,
    pub rtt_file: Option<PathBuf>,
}

impl SippResult {
    pub fn exit_code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Exit code 0, not timed out, `expected` successful calls and none failed.
    pub fn all_calls_ok(&self, expected: u64) -> bool {
        !self.timed_out
            && self.exit_code() == Some(0)
            && self.stats.successful == expected
            && self.stats.failed == 0
    }

    /// Panics with a readable summary unless `all_calls_ok(expected)`.
    pub fn assert_calls_ok(&self, expected: u64) {
        assert!(self.all_calls_ok(expected), "{}", self.summary(expected));
    }

    pub fn summary(&self, expected: u64) -> String {
        format!(
            "SIPp {}: exit {:?}{}, {} s; calls created {}, successful {} (expected {expected}), failed {}, retransmissions {}\ncounters: {:?}\n--- errors ---\n{}\n--- output tail ---\n{}\n(traces in {})",
            self.name,
            self.exit_code(),
            if self.timed_out { " (killed at timeout)" } else { "" },
            self.elapsed.as_secs_f32(),
            self.stats.created,
            self.stats.successful,
            self.stats.failed,
            self.stats.retransmissions,
            self.stats.counters,
            self.error_events()
                .iter()
                .take(8)
                .map(|e| e.chars().take(600).collect::<String>())
                .collect::<Vec<_>>()
                .join("\n"),
            self.log_tail(),
            self.dir.display(),
        )
    }

    pub fn log_tail(&self) -> String {
        tail_of_file(&self.out_file, 3000)
    }

    /// The events of the -trace_err file, without the routine "receive
    /// timeout ... jumping to label" ones (a recv with ontimeout is how the
    /// scenarios wait for something that may or may not come).
    pub fn error_events(&self) -> Vec<String> {
        let text = fs::read_to_string(&self.error_file).unwrap_or_default();
        split_sipp_events(&text)
            .into_iter()
            .filter(|e| !e.contains("jumping to label"))
            .collect()
    }

    /// INVITE->200 response times in ms from the -trace_rtt file (rtd "invite").
    pub fn response_times_ms(&self) -> Vec<u64> {
        let Some(path) = &self.rtt_file else {
            return Vec::new();
        };
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split(';');
                let _date = f.next()?;
                let ms = f.next()?.trim().parse().ok()?;
                Some(ms)
            })
            .collect()
    }

    pub fn messages(&self) -> Vec<TracedMessage> {
        parse_message_file(&self.message_file).unwrap_or_default()
    }
}

/// Splits a SIPp error log into events. Each starts with
/// `YYYY-MM-DD<TAB>HH:MM:SS.micro<TAB>epoch: ` and SIPp does not always end the
/// previous one with a newline.
pub fn split_sipp_events(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let is_start = |i: usize| -> bool {
        b.len() >= i + 11
            && b[i..i + 4].iter().all(u8::is_ascii_digit)
            && b[i + 4] == b'-'
            && b[i + 5..i + 7].iter().all(u8::is_ascii_digit)
            && b[i + 7] == b'-'
            && b[i + 8..i + 10].iter().all(u8::is_ascii_digit)
            && b[i + 10] == b'\t'
    };
    let starts: Vec<usize> = (0..b.len()).filter(|&i| is_start(i)).collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let e = starts.get(k + 1).copied().unwrap_or(b.len());
            text[s..e].trim().to_string()
        })
        .collect()
}

/// How long a callee may still run once its caller has finished.
pub const CALLEE_GRACE: Duration = Duration::from_secs(10);

/// Starts the callee (UAS), runs the caller (UAC) to its end, then gives the
/// callee at most `CALLEE_GRACE` to finish. Returns (caller, callee).
pub fn run_pair(dir: &Path, uac: &Sipp, uas: &Sipp) -> (SippResult, SippResult) {
    let uas_proc = uas.spawn(dir);
    let uac_res = uac.run(dir);
    let uas_res = uas_proc.wait_at_most(CALLEE_GRACE);
    (uac_res, uas_res)
}

// ---------------------------------------------------------------------------
// SIPp -trace_msg files and the topology-leak check
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

/// One message of a SIPp `-trace_msg` file.
#[derive(Clone, Debug)]
pub struct TracedMessage {
    pub index: usize,
    pub direction: Direction,
    pub transport: String,
    pub start_line: String,
    /// (name as written, value) in order; folded lines are joined.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl TracedMessage {
    /// Values of a header by canonical name (compact forms understood).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let want = canonical_header(name);
        self.headers
            .iter()
            .filter(move |(n, _)| canonical_header(n) == want)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_request(&self) -> bool {
        !self.start_line.starts_with("SIP/2.0")
    }
}

fn canonical_header(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let full = match lower.as_str() {
        "i" => "call-id",
        "f" => "from",
        "t" => "to",
        "v" => "via",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "k" => "supported",
        "s" => "subject",
        "e" => "content-encoding",
        "o" => "event",
        "r" => "refer-to",
        "b" => "referred-by",
        "u" => "allow-events",
        "x" => "session-expires",
        other => other,
    };
    full.to_string()
}

const TRACE_SEPARATOR: &str = "-----------------------------------------------";

/// Parses a SIPp `-trace_msg` file into messages (sent and received).
pub fn parse_message_file(path: &Path) -> io::Result<Vec<TracedMessage>> {
    let raw = fs::read(path)?;
    let text = String::from_utf8_lossy(&raw);
    Ok(parse_message_trace(&text))
}

/// Parses the text of a SIPp `-trace_msg` file.
pub fn parse_message_trace(text: &str) -> Vec<TracedMessage> {
    // Blocks start with "----------------------------------------------- <date> <time>".
    // SIPp may glue a note ("UDP message voluntary lost (while sending).") in
    // front of the separator, so split on the separator anywhere.
    let mut out = Vec::new();
    for block in text.split(TRACE_SEPARATOR).skip(1) {
        let mut lines = block.split('\n');
        let _date = lines.next();
        let Some(kind) = lines.next() else { continue };
        let kind = kind.trim();
        let direction = if kind.contains("message sent") {
            Direction::Sent
        } else if kind.contains("message received") {
            Direction::Received
        } else {
            continue;
        };
        let transport = kind.split_whitespace().next().unwrap_or("").to_string();
        let rest: Vec<&str> = lines.map(|l| l.trim_end_matches('\r')).collect();
        let rest: Vec<&str> = rest
            .into_iter()
            .skip_while(|l| l.trim().is_empty())
            .collect();
        let Some((start, after)) = rest.split_first() else {
            continue;
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut body_lines: Vec<&str> = Vec::new();
        let mut in_body = false;
        for line in after {
            if in_body {
                body_lines.push(line);
                continue;
            }
            if line.is_empty() {
                in_body = true;
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            if let Some((n, v)) = line.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut body = body_lines.join("\n");
        for note in [
            "UDP message voluntary lost",
            "TCP message voluntary lost",
            "TLS message voluntary lost",
        ] {
            if let Some(i) = body.find(note) {
                body.truncate(i);
            }
        }
        out.push(TracedMessage {
            index: out.len(),
            direction,
            transport,
            start_line: start.to_string(),
            headers,
            body: body.trim_end().to_string(),
        });
    }
    out
}

/// What kind of identifier a forbidden value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdKind {
    CallId,
    Tag,
    Branch,
    HostPort,
    Host,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::CallId => "Call-ID",
            IdKind::Tag => "tag",
            IdKind::Branch => "Via branch",
            IdKind::HostPort => "host:port",
            IdKind::Host => "host",
        })
    }
}

/// Identifiers found in the messages one SIPp instance sent: Call-IDs, From/To
/// tags, Via branches, and the hosts and host:ports of Via sent-by, Contact,
/// Record-Route, Route and request-URIs. Value -> (kind, where it was seen).
pub fn collect_identifiers(messages: &[TracedMessage]) -> HashMap<String, (IdKind, String)> {
    let mut ids: HashMap<String, (IdKind, String)> = HashMap::new();
    let mut add = |v: &str, kind: IdKind, origin: String| {
        let v = v.trim();
        if v.len() >= 3 {
            ids.entry(v.to_string()).or_insert((kind, origin));
        }
    };
    for m in messages.iter().filter(|m| m.direction == Direction::Sent) {
        let mut words = m.start_line.split_whitespace();
        let first = if m.is_request() {
            words.next()
        } else {
            words.nth(1)
        }
        .unwrap_or("?");
        let origin = |h: &str| format!("{h} of sent {first} #{}", m.index);
        for v in m.header_values("Call-ID") {
            add(v, IdKind::CallId, origin("Call-ID"));
        }
        for h in ["From", "To"] {
            for v in m.header_values(h) {
                if let Some(tag) = param_value(v, "tag") {
                    add(tag, IdKind::Tag, origin(h));
                }
            }
        }
        for v in m.header_values("Via") {
            for via in split_commas(v) {
                if let Some(b) = param_value(via, "branch") {
                    add(b, IdKind::Branch, origin("Via"));
                }
                if let Some(sent_by) = via_sent_by(via) {
                    add_host_port(&mut add, sent_by, origin("Via"));
                }
            }
        }
        for h in ["Contact", "Record-Route", "Route"] {
            for v in m.header_values(h) {
                for part in split_commas(v) {
                    if let Some(hp) = uri_host_port(part) {
                        add_host_port(&mut add, hp, origin(h));
                    }
                }
            }
        }
        if m.is_request() {
            if let Some(uri) = m.start_line.split_whitespace().nth(1) {
                if let Some(hp) = uri_host_port(uri) {
                    add_host_port(&mut add, hp, origin("request-URI"));
                }
            }
        }
    }
    ids
}

fn add_host_port(add: &mut impl FnMut(&str, IdKind, String), hp: &str, origin: String) {
    let host = split_host(hp);
    if host != hp {
        add(hp, IdKind::HostPort, origin.clone());
    }
    add(host, IdKind::Host, origin);
}

/// Host part of `host[:port]` (IPv6 references keep their brackets).
fn split_host(hp: &str) -> &str {
    if hp.starts_with('[') {
        return match hp.find(']') {
            Some(i) => &hp[..=i],
            None => hp,
        };
    }
    match hp.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => hp,
    }
}

/// Splits a header value at commas that are outside quotes and angle brackets.
fn split_commas(v: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut quote, mut angle, mut start) = (false, false, 0);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quote = !quote,
            '<' if !quote => angle = true,
            '>' if !quote => angle = false,
            ',' if !quote && !angle => {
                parts.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&v[start..]);
    parts
}

/// The value of `;name=value` in a header value (outside <...>), case-insensitive name.
fn param_value<'a>(v: &'a str, name: &str) -> Option<&'a str> {
    let params = match v.rfind('>') {
        Some(i) => &v[i + 1..],
        None => v,
    };
    for p in params.split(';').skip(1) {
        if let Some((n, val)) = p.split_once('=') {
            if n.trim().eq_ignore_ascii_case(name) {
                let val = val.trim();
                let end = val
                    .find(|c: char| c == ',' || c == '>' || c.is_whitespace())
                    .unwrap_or(val.len());
                return Some(&val[..end]);
            }
        }
    }
    None
}

/// `host[:port]` of a Via value (`SIP/2.0/UDP host:port;params`).
fn via_sent_by(via: &str) -> Option<&str> {
    let after = via.trim().split_once(char::is_whitespace)?.1.trim_start();
    let end = after
        .find(|c: char| c == ';' || c == ',' || c.is_whitespace())
        .unwrap_or(after.len());
    let sb = &after[..end];
    (!sb.is_empty()).then_some(sb)
}

/// `host[:port]` of the first sip:/sips: URI in `v` (name-addr or bare).
fn uri_host_port(v: &str) -> Option<&str> {
    let lower = v.to_ascii_lowercase();
    let start = lower
        .find("sip:")
        .map(|i| i + 4)
        .or_else(|| lower.find("sips:").map(|i| i + 5))?;
    let rest = &v[start..];
    let end = rest
        .find(['>', ';', '?', ',', ' ', '"'])
        .unwrap_or(rest.len());
    let uri = &rest[..end];
    let hp = match uri.rfind('@') {
        Some(i) => &uri[i + 1..],
        None => uri,
    };
    (!hp.is_empty()).then_some(hp)
}

/// Characters that continue a value: a forbidden value only matches where it
/// is not glued to more of these (so 127.0.0.2 does not match inside 127.0.0.20).
fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// One forbidden value found in a received message.
#[derive(Clone, Debug)]
pub struct Leak {
    pub value: String,
    pub kind: IdKind,
    /// Where the other side had used it.
    pub origin: String,
    pub message_index: usize,
    pub start_line: String,
    pub line: String,
}

/// Result of one leak check (what `side` received vs what `other` sent).
#[derive(Clone, Debug, Default)]
pub struct LeakReport {
    pub side: String,
    pub other: String,
    pub messages_checked: usize,
    pub forbidden_values: usize,
    pub leaks: Vec<Leak>,
}

impl LeakReport {
    pub fn is_clean(&self) -> bool {
        self.leaks.is_empty()
    }

    pub fn assert_clean(&self) {
        assert!(self.is_clean(), "{self}");
    }
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "leak check: {} received {} messages; {} identifiers of {} forbidden; {} leaks",
            self.side,
            self.messages_checked,
            self.forbidden_values,
            self.other,
            self.leaks.len()
        )?;
        // Group by value so one leaked Call-ID does not print 1000 lines.
        let mut by_value: BTreeMap<(IdKind, &str), Vec<&Leak>> = BTreeMap::new();
        for l in &self.leaks {
            by_value
                .entry((l.kind, l.value.as_str()))
                .or_default()
                .push(l);
        }
        for ((kind, value), leaks) in by_value.iter().take(30) {
            let first = leaks[0];
            writeln!(
                f,
                "  {kind} {value:?} ({}) in {} received message(s), first #{} \"{}\": {}",
                first.origin,
                leaks.len(),
                first.message_index,
                first.start_line,
                first.line
            )?;
        }
        if by_value.len() > 30 {
            writeln!(f, "  ... and {} more values", by_value.len() - 30)?;
        }
        Ok(())
    }
}

/// Scans what `side` received (start line and headers, never bodies) for any
/// identifier `other` sent (see `collect_identifiers`). Bare hosts that `side`
/// itself sends from are not counted (two parties may share an IP address).
pub fn check_leaks(
    side: &str,
    side_messages: &[TracedMessage],
    other: &str,
    other_messages: &[TracedMessage],
) -> LeakReport {
    let mut forbidden = collect_identifiers(other_messages);
    let own = collect_identifiers(side_messages);
    forbidden.retain(|v, (kind, _)| {
        !(*kind == IdKind::Host && matches!(own.get(v), Some((IdKind::Host, _))))
    });
    let max_len = forbidden.keys().map(|k| k.len()).max().unwrap_or(0);
    let lookup: HashSet<&str> = forbidden.keys().map(|k| k.as_str()).collect();
    let mut report = LeakReport {
        side: side.to_string(),
        other: other.to_string(),
        forbidden_values: forbidden.len(),
        ..LeakReport::default()
    };
    for m in side_messages
        .iter()
        .filter(|m| m.direction == Direction::Received)
    {
        report.messages_checked += 1;
        let header_lines = m.headers.iter().map(|(n, v)| format!("{n}: {v}"));
        for line in std::iter::once(m.start_line.clone()).chain(header_lines) {
            for value in find_values(&line, &lookup, max_len) {
                let (kind, origin) = forbidden[value].clone();
                report.leaks.push(Leak {
                    value: value.to_string(),
                    kind,
                    origin,
                    message_index: m.index,
                    start_line: m.start_line.clone(),
                    line: line.clone(),
                });
            }
        }
    }
    report
}

/// Every member of `set` that occurs in `line` delimited by non-word characters.
fn find_values<'a>(line: &str, set: &HashSet<&'a str>, max_len: usize) -> Vec<&'a str> {
    let b = line.as_bytes();
    let starts: Vec<usize> = (0..b.len())
        .filter(|&i| i == 0 || !is_word_char(b[i - 1]))
        .collect();
    let ends: Vec<usize> = (1..=b.len())
        .filter(|&j| j == b.len() || !is_word_char(b[j]))
        .collect();
    let mut found = Vec::new();
    for &s in &starts {
        let first = ends.partition_point(|&e| e <= s);
        for &e in ends[first..].iter().take_while(|&&e| e - s <= max_len) {
            if let Some(slice) = line.get(s..e) {
                if let Some(v) = set.get(slice) {
                    found.push(*v);
                }
            }
        }
    }
    found
}

/// Leak check in both directions between a caller's and a callee's
/// -trace_msg files; panics with both reports if either is not clean.
pub fn assert_no_topology_leaks(caller: &SippResult, callee: &SippResult) {
    let a = caller.messages();
    let b = callee.messages();
    assert!(
        !a.is_empty() && !b.is_empty(),
        "empty message traces ({}: {}, {}: {})",
        caller.name,
        a.len(),
        callee.name,
        b.len()
    );
    let r1 = check_leaks(&caller.name, &a, &callee.name, &b);
    let r2 = check_leaks(&callee.name, &b, &caller.name, &a);
    assert!(r1.is_clean() && r2.is_clean(), "{r1}\n{r2}");
}

// ---------------------------------------------------------------------------
// rtpengine
// ---------------------------------------------------------------------------

/// Debian's `rtpengine` daemon in userspace mode on one loopback address,
/// answering ng on `ng`; SIGKILLed by PID on drop.
pub struct Rtpengine {
    child: Child,
    /// The ng control address.
    pub ng: SocketAddr,
}

impl Rtpengine {
    /// Starts rtpengine with media ports `ports` on `interface` and waits until
    /// it answers an ng ping. `None` (with a SKIP line) when rtpengine is not on
    /// PATH and interop is not required.
    pub fn start(
        test: &str,
        interface: IpAddr,
        ng: SocketAddr,
        ports: (u16, u16),
    ) -> Option<Rtpengine> {
        let bin = require_tool(test, "rtpengine")?;
        let child = Command::new(bin)
            .args([
                "--config-file=none",
                "--foreground",
                "--log-stderr",
                "--table=-1",
                &format!("--interface={interface}"),
                &format!("--listen-ng={ng}"),
                &format!("--port-min={}", ports.0),
                &format!("--port-max={}", ports.1),
                "--log-level=4",
                // A deleted call frees its ports at once (tests check that).
                "--delete-delay=0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rtpengine");
        let daemon = Rtpengine { child, ng };
        let client = sipveil::media::rtpengine::NgClient::new(ng, Duration::from_millis(200), 1);
        let t0 = Instant::now();
        loop {
            match client.ping() {
                Ok(()) => return Some(daemon),
                Err(e) if t0.elapsed() > Duration::from_secs(10) => {
                    panic!("rtpengine not up at {ng}: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}
