//! The whole message path, shared by the `message_path` cargo-fuzz target
//! (`fuzz_targets/message_path.rs`) and the test that replays its corpus and
//! findings (`tests/message_path_fuzz.rs`, which includes this file by path). A
//! broken invariant panics.
//!
//! Each datagram goes the way `runtime::handle` sends it: `parse_datagram` with
//! the config's limits, then the real [`Admission`] pipeline, then
//! `Engine::on_message` (or, for bytes the parser refused,
//! `Admission::check_malformed` and the stateless answer); after each one the
//! engine is polled, its digest verdicts go back to admission, and its outputs are
//! checked. The configuration is a config file read by `Config::from_toml_str`
//! and turned into the core's configuration by `runtime::from_config`, as `run`
//! does: two interfaces (`core` trusted, with an allow-list), a static route and a
//! `registrar` route, the registrar with digest auth and one subscriber
//! (`alice@example.test`, password `secret`). The clock is fake: the input moves
//! it, and timers fire at their own time on the way.
//!
//! # Input
//!
//! Byte 0 picks the setup:
//! - bits 0-1: admission as configured (0), every source exempt (1, 3), or
//!   `enabled = false` (2, only sanity runs);
//! - bit 2: the shipped example policies (`policies/examples/*.toml`: number
//!   rewriting, header policy, manipulation rules, normalization switches)
//!   instead of the built-in defaults;
//! - bit 3: NAT keep-alives toward registered contacts every 20 s.
//!
//! The rest is a sequence of records separated by [`DELIMITER`]. A record is a
//! peer byte, a clock byte and the datagram:
//! - peer byte bits 0-2: who sends it ([`PEERS`]); bit 4: the datagram arrives
//!   twice (a retransmission); bit 5: instead of the datagram, the last message
//!   sipveil sent to peer `datagram[0] & 7` arrives (sipveil's own output looped
//!   back);
//! - clock byte: how far the clock moves before the datagram arrives:
//!   `(b & 63)` units of 1 ms, 20 ms, 500 ms or 4 s (`b >> 6`), up to 252 s;
//! - the datagram, where `$X` stands for a value from what sipveil last sent to
//!   this peer (for a response: the last request), so that a fuzzed peer can
//!   answer sipveil's own random Call-IDs, tags and branches: `$V` top Via value,
//!   `$F` From, `$T` To, `$C` Call-ID, `$S` CSeq, `$R` request-URI, `$M` Contact
//!   URI, `$b` branch, `$f` From tag, `$t` To tag, `$n` CSeq number, and `$A`
//!   digest credentials of alice answering the last 401/407 sent to this peer
//!   (for the method and request-URI of the datagram's first line).
//!
//! Media is passthrough: the built-in relay binds real sockets and starts
//! forwarding threads, so SDP crosses unchanged here (the `sdp_rewrite` target
//! covers the rewriter, `rewrite_for_leg` included).
//!
//! # Invariants
//!
//! No panic; timers never fire without the clock moving; every message sipveil
//! sends (the core's and admission's stateless answers) re-parses, carries a
//! Content-Length equal to its body, and a response has a status in 100-699 and a
//! reason phrase; calls and transactions stay bounded by the number of datagrams.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use sipveil::admission::{Admission, Admit, Verdict};
use sipveil::config::Config;
use sipveil::dialog::{Engine, Output};
use sipveil::policy::PolicySet;
use sipveil::registrar::digest::{self, Algorithm};
use sipveil::registrar::subscribers::{Aor, Subscriber, SubscriberCache};
use sipveil::registrar::AuthContext;
use sipveil::runtime::{from_config, RuntimeConfig};
use sipveil::sip::{HeaderName, Limits, SipMessage};
use sipveil::transaction::{Peer, Transport};

/// Separates records in the input.
pub const DELIMITER: &[u8] = b"\n%%\n";

/// Most records read from one input (keeps one run short).
pub const MAX_RECORDS: usize = 48;

/// The config file the engine runs with (`run` reads the same keys).
pub const CONFIG: &str = r#"
[node]
name = "fuzz"
data_dir = "/nonexistent/sipveil-fuzz"

[[interface]]
name = "access"
udp = "127.0.0.10:5060"
tcp = "127.0.0.10:5060"
trusted = false

[[interface]]
name = "core"
udp = "127.0.0.20:5060"
tcp = "127.0.0.20:5060"
trusted = true
allow = ["127.0.0.0/8", "10.0.0.0/8"]

[registrar]
domain = "example.test"
interface = "access"
auth = true

[[route]]
from = "access"
to = "sip:127.0.0.2:5090"
egress = "core"

[[route]]
from = "core"
to = "registrar"
egress = "access"

[policy]
dir = "/nonexistent/sipveil-fuzz-policies"
"#;

/// The shipped example policies, for setups with bit 2.
const EXAMPLES: &[(&str, &str)] = &[
    ("e164.toml", include_str!("../policies/examples/e164.toml")),
    (
        "headers.toml",
        include_str!("../policies/examples/headers.toml"),
    ),
    (
        "manipulation.toml",
        include_str!("../policies/examples/manipulation.toml"),
    ),
    (
        "trusted-core.toml",
        include_str!("../policies/examples/trusted-core.toml"),
    ),
];

/// The subscriber, and its password.
pub const USER: &str = "alice";
/// The domain served.
pub const DOMAIN: &str = "example.test";
/// alice's password.
pub const PASSWORD: &str = "secret";

/// Who can send: (address, interface, transport, connection).
pub const PEERS: [(&str, usize, Transport, Option<u64>); 8] = [
    // 0: a phone on access (alice registers from here)
    ("192.0.2.10:5060", 0, Transport::Udp, None),
    // 1: an IPv6 phone on access
    ("[2001:db8::10]:5062", 0, Transport::Udp, None),
    // 2: a phone on access over TCP
    ("203.0.113.5:5070", 0, Transport::Tcp, Some(1)),
    // 3: the static route's next hop on core
    ("127.0.0.2:5090", 1, Transport::Udp, None),
    // 4: another core host, over TCP
    ("10.0.0.5:5060", 1, Transport::Tcp, Some(2)),
    // 5: the partner network of the manipulation example, on access
    ("198.51.100.7:5060", 0, Transport::Udp, None),
    // 6: a core host outside the core's allow-list
    ("172.16.0.9:5060", 1, Transport::Udp, None),
    // 7: another phone on access
    ("192.0.2.99:5060", 0, Transport::Udp, None),
];

/// What stays the same for every input.
struct World {
    rc: RuntimeConfig,
    auth: AuthContext,
    examples: Arc<PolicySet>,
    peers: Vec<Peer>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let cfg = Config::from_toml_str(CONFIG, "fuzz.toml")
            .unwrap_or_else(|e| panic!("fuzz config refused: {e}"));
        let rc = from_config(&cfg).unwrap_or_else(|e| panic!("fuzz config refused: {e}"));
        let names: Vec<String> = cfg.interfaces.iter().map(|i| i.name.clone()).collect();
        let examples = PolicySet::from_sources(EXAMPLES, &names)
            .unwrap_or_else(|e| panic!("example policies refused: {e}"));
        let mut subscribers = SubscriberCache::default();
        let aor = Aor::parse(&format!("{USER}@{DOMAIN}")).expect("subscriber AOR");
        subscribers.set(&aor, Subscriber::new(&aor, PASSWORD));
        let auth = AuthContext {
            secret: [7; 32],
            subscribers: Arc::new(RwLock::new(subscribers)),
        };
        let peers = PEERS
            .iter()
            .map(|(addr, iface, transport, conn)| Peer {
                addr: addr.parse().expect("peer address"),
                transport: *transport,
                iface: *iface,
                conn: *conn,
            })
            .collect();
        World {
            rc,
            auth,
            examples: Arc::new(examples),
            peers,
        }
    })
}

/// Limits for re-reading what sipveil sends: its own lines can be longer than
/// what it received (added parameters, canonical forms), and an answer to a
/// request refused for too many Vias echoes them all. They guard the wire.
fn relaxed(l: &Limits) -> Limits {
    Limits {
        max_message_size: l.max_message_size * 2 + 1024,
        max_headers: l.max_headers + 16,
        max_header_line: l.max_header_line * 2 + 64,
        max_via: l.max_via * 2 + 4,
    }
}

/// What sipveil last sent to one address.
#[derive(Default)]
struct Last {
    any: Option<SipMessage>,
    req: Option<SipMessage>,
    challenge: Option<SipMessage>,
}

/// One message sipveil sent, for tests to look at.
#[derive(Clone, Debug)]
pub struct Sent {
    /// Where to.
    pub to: SocketAddr,
    /// Start line.
    pub start: String,
    /// The whole message.
    pub text: String,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Trace {
    /// Every message sent (keep-alives left out), in order.
    pub sent: Vec<Sent>,
    /// Datagrams delivered.
    pub delivered: usize,
    /// Datagrams that reached the engine.
    pub to_engine: usize,
    /// Most calls at once.
    pub max_calls: usize,
}

impl Trace {
    /// Whether a message to `to` starts with `start`.
    pub fn sent_to(&self, to: &str, start: &str) -> bool {
        let to: SocketAddr = to.parse().expect("address");
        self.sent
            .iter()
            .any(|s| s.to == to && s.start.starts_with(start))
    }
}

struct Driver {
    engine: Engine,
    admission: Admission,
    trusted: Vec<bool>,
    limits: Limits,
    now: Instant,
    book: HashMap<SocketAddr, Last>,
    outs: Vec<Output>,
    trace: Trace,
}

/// The `message_path` target.
pub fn run(data: &[u8]) -> Trace {
    let Some((&flags, rest)) = data.split_first() else {
        return Trace::default();
    };
    // Tags and branches come from fastrand: the same input, the same run.
    fastrand::seed(0x005e_ed0f_5e1f);
    let w = world();
    let mut acfg = w.rc.admission.clone();
    match flags & 3 {
        1 | 3 => {
            acfg.exempt = vec![
                "0.0.0.0/0".parse().expect("net"),
                "::/0".parse().expect("net"),
            ]
        }
        2 => acfg.enabled = false,
        _ => {}
    }
    let admission = Admission::new(&acfg, &w.rc.admission_ifaces);
    let mut engine = Engine::new(w.rc.engine.clone());
    engine.set_policy(if flags & 4 != 0 {
        w.examples.clone()
    } else {
        w.rc.policy.clone()
    });
    let mut reg =
        w.rc.registrar
            .clone()
            .expect("the fuzz config has a registrar");
    if flags & 8 != 0 {
        reg.nat_keepalive = Some(Duration::from_secs(20));
    }
    engine.enable_registrar(reg, w.auth.clone(), Vec::new());
    let mut d = Driver {
        engine,
        admission,
        trusted: w.rc.engine.ifaces.iter().map(|i| i.trusted).collect(),
        limits: w.rc.limits,
        now: Instant::now(),
        book: HashMap::new(),
        outs: Vec::new(),
        trace: Trace::default(),
    };
    d.collect();
    for record in split(rest).take(MAX_RECORDS) {
        let [sel, clock, dgram @ ..] = record else {
            continue;
        };
        d.advance(advance_of(*clock));
        let Some(peer) = w.peers.get(usize::from(sel & 7)).cloned() else {
            continue;
        };
        let bytes = if sel & 0x20 != 0 {
            let from = dgram.first().map_or(0, |b| usize::from(b & 7));
            let Some(addr) = w.peers.get(from).map(|p| p.addr) else {
                continue;
            };
            match d.book.get(&addr).and_then(|l| l.any.as_ref()) {
                Some(m) => m.to_bytes(),
                None => continue,
            }
        } else {
            d.substitute(dgram, peer.addr)
        };
        let times = if sel & 0x10 != 0 { 2 } else { 1 };
        for _ in 0..times {
            d.deliver(&bytes, &peer);
        }
    }
    // Let everything in flight time out: calls that never got an answer end.
    d.advance(Duration::from_secs(200));
    d.trace
}

/// The records of an input.
fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(DELIMITER.len()).position(|w| w == DELIMITER) {
            Some(i) => {
                rest = r.get(i + DELIMITER.len()..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

fn advance_of(b: u8) -> Duration {
    let unit = match b >> 6 {
        0 => Duration::from_millis(1),
        1 => Duration::from_millis(20),
        2 => Duration::from_millis(500),
        _ => Duration::from_secs(4),
    };
    unit * u32::from(b & 63)
}

impl Driver {
    /// Moves the clock, firing every timer due on the way at its own time.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        for _ in 0..100_000 {
            match self.engine.next_deadline() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.poll();
                }
                _ => {
                    self.now = end;
                    self.poll();
                    return;
                }
            }
        }
        panic!("timers keep firing without the clock moving");
    }

    /// What the runtime does after each batch: poll, hand the digest verdicts to
    /// admission, carry out the outputs.
    fn poll(&mut self) {
        self.admission.tick(self.now);
        self.engine.poll(self.now);
        for e in self.engine.drain_auth_events() {
            if e.ok {
                self.admission.auth_succeeded(e.source, &e.user, self.now);
            } else {
                self.admission.auth_failed(e.source, &e.user, self.now);
            }
        }
        self.collect();
    }

    /// `runtime::handle` for one datagram.
    fn deliver(&mut self, bytes: &[u8], peer: &Peer) {
        self.trace.delivered += 1;
        self.admission
            .set_load(self.engine.transaction_count(), self.engine.call_count());
        self.admission.tick(self.now);
        let trusted = self.trusted.get(peer.iface).copied().unwrap_or(false);
        match SipMessage::parse_datagram(bytes, &self.limits) {
            Ok(msg) => {
                let verdict = self
                    .admission
                    .check(&Admit::new(&msg, peer.addr, peer.iface, trusted, self.now));
                match verdict {
                    Verdict::Pass => {
                        self.trace.to_engine += 1;
                        self.engine.on_message(msg, peer.clone(), self.now);
                    }
                    v => self.answer(&v, &msg, peer),
                }
            }
            Err(err) => {
                let v = self
                    .admission
                    .check_malformed(&err, peer.addr, peer.iface, trusted, self.now);
                if let Some(partial) = err.partial.as_deref() {
                    self.answer(&v, partial, peer);
                }
            }
        }
        self.poll();
        let calls = self.engine.call_count();
        self.trace.max_calls = self.trace.max_calls.max(calls);
        let n = self.trace.delivered;
        assert!(calls <= n, "{calls} calls after {n} datagrams");
        let txs = self.engine.transaction_count();
        assert!(txs <= 16 * n, "{txs} transactions after {n} datagrams");
    }

    /// Admission's stateless answer (sent to the packet's source).
    fn answer(&mut self, v: &Verdict, req: &SipMessage, peer: &Peer) {
        if let Some(resp) = v.response_to(req) {
            self.sent(peer.addr, &resp.to_bytes());
        }
    }

    fn collect(&mut self) {
        self.engine.drain_outputs_into(&mut self.outs);
        let outs = std::mem::take(&mut self.outs);
        for o in outs {
            if let Output::Send { peer, data } = o {
                self.sent(peer.addr, &data);
            }
        }
    }

    /// Checks one message sipveil sends and remembers it.
    fn sent(&mut self, to: SocketAddr, data: &[u8]) {
        if data.iter().all(|b| *b == b'\r' || *b == b'\n') {
            // RFC 5626 CRLF keep-alive.
            return;
        }
        let text = String::from_utf8_lossy(data).into_owned();
        let m = match SipMessage::parse_datagram(data, &relaxed(&self.limits)) {
            Ok(m) => m,
            Err(e) => panic!("sipveil sent what does not re-parse ({e}):\n{text}"),
        };
        assert_eq!(
            m.content_length().ok().flatten(),
            Some(m.body().len()),
            "Content-Length of a message sipveil sent:\n{text}"
        );
        if let Some(code) = m.status() {
            assert!((100..=699).contains(&code), "status {code}:\n{text}");
            assert!(
                m.reason().is_some_and(|r| !r.trim().is_empty()),
                "response without a reason phrase:\n{text}"
            );
        }
        let start = text.lines().next().unwrap_or("").to_string();
        self.trace.sent.push(Sent { to, start, text });
        let last = self.book.entry(to).or_default();
        if matches!(m.status(), Some(401 | 407)) {
            last.challenge = Some(m.clone());
        }
        if m.is_request() {
            last.req = Some(m.clone());
        }
        last.any = Some(m);
    }

    /// Fills in the `$X` placeholders of a datagram from what was sent to `to`.
    fn substitute(&self, dgram: &[u8], to: SocketAddr) -> Vec<u8> {
        if !dgram.contains(&b'$') {
            return dgram.to_vec();
        }
        let last = self.book.get(&to);
        let src = last.and_then(|l| {
            if dgram.starts_with(b"SIP/") {
                l.req.as_ref()
            } else {
                l.any.as_ref()
            }
        });
        let mut out = Vec::with_capacity(dgram.len() + 256);
        let mut i = 0;
        let mut wants_auth = false;
        while let Some(&c) = dgram.get(i) {
            let next = dgram.get(i + 1).copied();
            if c != b'$' {
                out.push(c);
                i += 1;
                continue;
            }
            let value = match (next, src) {
                (Some(b'A'), _) => {
                    wants_auth = true;
                    Some("$A".to_string())
                }
                (Some(k), Some(m)) => field(m, k),
                _ => None,
            };
            match value {
                Some(v) => {
                    out.extend_from_slice(v.as_bytes());
                    i += 2;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        if wants_auth {
            let creds = last
                .and_then(|l| l.challenge.as_ref())
                .and_then(|ch| credentials(ch, &out))
                .unwrap_or_default();
            out = replace_all(&out, b"$A", creds.as_bytes());
        }
        out
    }
}

/// The value `$k` stands for in `m`.
fn field(m: &SipMessage, k: u8) -> Option<String> {
    let s = |v: Option<&str>| v.map(str::to_string);
    match k {
        b'V' => s(m.header_values(HeaderName::Via).next()),
        b'F' => s(m.header(HeaderName::From)),
        b'T' => s(m.header(HeaderName::To)),
        b'C' => s(m.call_id()),
        b'S' => s(m.header(HeaderName::CSeq)),
        b'R' => s(m.request_uri()),
        b'M' => m
            .contacts()
            .next()
            .and_then(Result::ok)
            .map(|c| c.uri.raw.to_string()),
        b'b' => m
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_string)),
        b'f' => m
            .from_header()
            .ok()
            .and_then(|f| f.tag().map(str::to_string)),
        b't' => m.to_header().ok().and_then(|t| t.tag().map(str::to_string)),
        b'n' => m.cseq().ok().map(|c| c.seq.to_string()),
        _ => None,
    }
}

fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len() + with.len());
    let mut i = 0;
    while i < hay.len() {
        if hay.get(i..i + needle.len()) == Some(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.extend_from_slice(hay.get(i..i + 1).unwrap_or_default());
            i += 1;
        }
    }
    out
}

/// alice's credentials for the first challenge of `challenge` sipveil can check,
/// for the method and request-URI on the first line of `request`.
fn credentials(challenge: &SipMessage, request: &[u8]) -> Option<String> {
    let line = request.split(|b| *b == b'\n').next()?;
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, uri) = (words.next()?, words.next()?);
    challenge
        .www_authenticate()
        .chain(challenge.proxy_authenticate())
        .flatten()
        .find_map(|d| {
            let (alg, sess) = match d.get("algorithm") {
                Some(a) => Algorithm::parse(&a)?,
                None => (Algorithm::Md5, false),
            };
            if sess {
                return None;
            }
            let realm = d.get("realm")?;
            let nonce = d.get("nonce")?;
            let ha1 = digest::ha1(alg, USER, &realm, PASSWORD);
            let qop = d
                .get("qop")
                .is_some_and(|q| q.split(',').any(|q| q.trim() == "auth"));
            let (cnonce, nc) = ("0a4f113b", "00000001");
            let response = digest::response(
                alg,
                &ha1,
                &nonce,
                qop.then_some(("auth", nc, cnonce)),
                method,
                uri,
            );
            let mut v = format!(
                "Digest username=\"{USER}\", realm=\"{realm}\", nonce=\"{nonce}\", \
                 uri=\"{uri}\", response=\"{response}\", algorithm={}",
                alg.name()
            );
            if qop {
                v.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
            }
            Some(v)
        })
}
