//! baresip 1.0.0 (Debian `baresip-core`) as a headless softphone for the
//! interop tests: a scratch config dir per phone (`-f DIR`), G.711 with a sine
//! source and no sound card, one account through sipveil, and its ctrl_tcp
//! socket to dial, hang up and quit. The recipe and its pitfalls are in
//! /work/shared/SIPP-NOTES.md.
//!
//! Each phone is killed by PID when its `Baresip` is dropped (also when a test
//! panics); `quit` first asks it to leave cleanly, so that it un-REGISTERs and
//! flushes its log.

use super::ua::{uri_of, Alg, Register, Ua};
use super::{kill_and_reap, wait_timeout};
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One phone's settings.
#[derive(Clone, Debug)]
pub struct PhoneConfig {
    /// SIP listen address; its IP is also the phone's media address.
    pub sip: SocketAddr,
    /// ctrl_tcp listen address.
    pub ctrl: SocketAddr,
    /// RTP port range (`rtp_ports`); distinct per phone, because baresip's
    /// RTP sockets are not bound to `net_interface` (see SIPP-NOTES.md).
    pub rtp_ports: (u16, u16),
    pub user: String,
    pub domain: String,
    pub password: String,
    /// sipveil's address: the outbound proxy for REGISTER and calls.
    pub proxy: SocketAddr,
    /// `answermode=auto`: answer incoming calls at once.
    pub auto_answer: bool,
}

impl PhoneConfig {
    /// The `config` and `accounts` files in `dir`. The sine source needs 48 kHz
    /// stereo, else the call dies with 486; no audio player (no sound card).
    pub fn write(&self, dir: &Path) {
        let config = format!(
            "sip_listen {sip}\n\
             net_interface {ip}\n\
             audio_source ausine,440\n\
             ausrc_srate 48000\n\
             auplay_srate 48000\n\
             ausrc_channels 2\n\
             auplay_channels 2\n\
             rtp_ports {lo}-{hi}\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module ausine.so\n\
             module_tmp account.so\n\
             module_app menu.so\n\
             module_app ctrl_tcp.so\n\
             ctrl_tcp_listen {ctrl}\n",
            sip = self.sip,
            ip = self.sip.ip(),
            lo = self.rtp_ports.0,
            hi = self.rtp_ports.1,
            ctrl = self.ctrl,
        );
        fs::write(dir.join("config"), config).expect("write baresip config");
        let answer = if self.auto_answer { "auto" } else { "manual" };
        let account = format!(
            "<sip:{user}@{domain};transport=udp>;auth_pass={pw};\
             outbound=\"sip:{proxy}\";answermode={answer};regint=60;medianat=;mwi=no\n",
            user = self.user,
            domain = self.domain,
            pw = self.password,
            proxy = self.proxy,
        );
        fs::write(dir.join("accounts"), account).expect("write baresip accounts");
    }
}

/// A running baresip; SIGKILLed by PID on drop.
pub struct Baresip {
    pub cfg: PhoneConfig,
    log: PathBuf,
    child: Option<Child>,
}

impl Baresip {
    /// Writes the config into `dir/<name>/` and starts `binary -f DIR -t 120`
    /// (`-t`: it quits on its own even if the test forgets it) with `extra`
    /// arguments (e.g. `-s` for a SIP trace), output into `dir/<name>.log`.
    pub fn start(
        binary: &Path,
        dir: &Path,
        name: &str,
        cfg: PhoneConfig,
        extra: &[&str],
    ) -> Baresip {
        let conf_dir = dir.join(name);
        fs::create_dir_all(&conf_dir).expect("baresip config dir");
        cfg.write(&conf_dir);
        let log = dir.join(format!("{name}.log"));
        let out = fs::File::create(&log).expect("baresip log");
        let child = Command::new(binary)
            .arg("-f")
            .arg(&conf_dir)
            .args(["-t", "120"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("log handle")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn baresip");
        Baresip {
            cfg,
            log,
            child: Some(child),
        }
    }

    /// What the phone wrote so far (stdout is block-buffered into the file:
    /// complete only after it exited).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A connection to its ctrl_tcp socket (which also carries its events).
    pub fn ctrl(&self) -> io::Result<Ctrl> {
        Ctrl::connect(self.cfg.ctrl)
    }

    /// The Contact URIs registered for this phone's user, as a query
    /// REGISTER from `from` (an address of the test, port 0) sees them.
    pub fn registered_contacts(&self, from: SocketAddr) -> Vec<String> {
        let c = &self.cfg;
        let mut ua = Ua::bind(from, c.proxy, &c.user, &c.password, &c.domain).expect("query UA");
        let resp = ua.register_auth(&Register::default(), Alg::Md5);
        assert_eq!(resp.status(), Some(200), "query failed:\n{}", resp.raw);
        resp.contacts()
            .iter()
            .map(|c| uri_of(c).to_string())
            .collect()
    }

    /// Waits up to `limit` until the phone has registered from its own
    /// address; returns the binding.
    pub fn wait_registered(&self, from: SocketAddr, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let own = self.cfg.sip.to_string();
        loop {
            let c = self.registered_contacts(from);
            if let Some(b) = c.iter().find(|b| b.contains(&own)) {
                return Some(b.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Asks the phone to quit over ctrl_tcp (sipveil must still be up to
    /// answer its un-REGISTER) and waits up to `limit` for it to exit; kills
    /// it by PID if it does not. Returns whether it exited by itself.
    pub fn quit(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let asked = Ctrl::connect(self.cfg.ctrl).and_then(|mut c| c.send("quit", ""));
        let exited = asked.is_ok() && wait_timeout(&mut child, limit).is_some();
        kill_and_reap(&mut child);
        exited
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }
}

/// A ctrl_tcp connection: commands and events as netstring-framed JSON.
pub struct Ctrl {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Every message received so far (answers and events), for diagnostics.
    pub seen: Vec<String>,
}

impl Ctrl {
    pub fn connect(addr: SocketAddr) -> io::Result<Ctrl> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        Ok(Ctrl {
            stream,
            buf: Vec::new(),
            seen: Vec::new(),
        })
    }

    /// Sends one command (`dial`, `hangup`, `quit`, ...) with its parameter.
    pub fn send(&mut self, command: &str, params: &str) -> io::Result<()> {
        let json = format!(
            "{{\"command\":\"{command}\",\"params\":\"{}\",\"token\":\"t-{command}\"}}",
            params.replace('\\', "\\\\").replace('"', "\\\"")
        );
        self.stream
            .write_all(format!("{}:{json},", json.len()).as_bytes())?;
        self.stream.flush()
    }

    /// Reads messages until one contains `needle` (e.g. `CALL_ESTABLISHED`),
    /// up to `limit`. Returns it, or `None` at the deadline or when the phone
    /// closed the connection.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(msg) = self.next_message() {
                self.seen.push(msg.clone());
                if msg.contains(needle) {
                    return Some(msg);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    /// One complete netstring (`LEN:DATA,`) off the buffer.
    fn next_message(&mut self) -> Option<String> {
        let colon = self.buf.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&self.buf[..colon]).ok()?.parse().ok()?;
        let end = colon + 1 + len;
        if self.buf.len() <= end {
            return None;
        }
        let msg = String::from_utf8_lossy(&self.buf[colon + 1..end]).into_owned();
        self.buf.drain(..=end);
        Some(msg)
    }
}

/// One SIP message of a baresip `-s` trace.
#[derive(Clone, Debug)]
pub struct TracedSip {
    pub src: String,
    pub dst: String,
    /// Start line, headers and body as printed.
    pub text: String,
}

impl TracedSip {
    pub fn start_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default().trim_end()
    }

    /// The body (after the first empty line), CRs removed.
    pub fn body(&self) -> String {
        let text = self.text.replace('\r', "");
        text.split_once("\n\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }
}

/// The SIP messages in a baresip log written with `-s`. Each is printed as
/// `ESC[36;1m#`, a line `UDP SRC -> DST`, the message, then `ESC[;m`.
pub fn sip_trace(log: &str) -> Vec<TracedSip> {
    const START: &str = "\u{1b}[36;1m#\n";
    const END: &str = "\u{1b}[;m";
    let mut out = Vec::new();
    for block in log.split(START).skip(1) {
        let block = block.split(END).next().unwrap_or(block);
        let Some((head, text)) = block.split_once('\n') else {
            continue;
        };
        let mut words = head.split_whitespace();
        let (Some(_transport), Some(src), Some("->"), Some(dst)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        out.push(TracedSip {
            src: src.to_string(),
            dst: dst.to_string(),
            text: text.to_string(),
        });
    }
    out
}
