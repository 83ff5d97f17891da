//! Whole calls through a running sipveil, played by two Rust UAs ([`super::ua`]),
//! for tests that assert exactly what crossed from one leg to the other
//! (identity, header policy, manipulation rules, numbers, normalization).
//!
//! [`Edge`] is one sipveil per test on 127.5.N.x, where N is the test's own
//! number (so tests run in parallel without sharing a port):
//! - `access` on 127.5.N.10:5060 (untrusted unless the test says otherwise),
//!   `core` on 127.5.N.20:5060 (trusted unless the test says otherwise);
//! - access -> `sip:127.5.N.2:5090` (the callee) via core, and
//!   core -> `sip:127.5.N.3:5090` (a phone) via access;
//! - a caller on the access side at 127.5.N.1:5061, one on the core side at
//!   127.5.N.4:5061;
//! - `[policy] dir` is the test's own directory, holding the files the test
//!   gives.
//!
//! Calls end cleanly (answer, ACK, BYE, 200) so sipveil's log shows no
//! half-finished dialog, and every wait is bounded.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::ua::{authorization, param, unique, uri_of, Alg, Challenge, SipMsg, Ua};
use super::{Interface, Route, Sipveil, TempDir};

/// The domain in From/To of the test calls and of the registrar.
pub const DOMAIN: &str = "example.test";
/// How long a UA waits for the next message of a call.
pub const STEP: Duration = Duration::from_secs(5);
/// How long a test listens to be sure nothing arrives.
pub const QUIET: Duration = Duration::from_millis(400);

/// The addresses of one test: 127.5.N.x.
#[derive(Clone, Copy, Debug)]
pub struct Net(pub u8);

impl Net {
    pub fn addr(self, host: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 5, self.0, host)), port)
    }
    /// sipveil's `access` interface.
    pub fn access(self) -> SocketAddr {
        self.addr(10, 5060)
    }
    /// sipveil's `core` interface.
    pub fn core(self) -> SocketAddr {
        self.addr(20, 5060)
    }
    /// A caller on the access side.
    pub fn caller(self) -> SocketAddr {
        self.addr(1, 5061)
    }
    /// The callee behind core (target of the access -> core route).
    pub fn callee(self) -> SocketAddr {
        self.addr(2, 5090)
    }
    /// The phone behind access (target of the core -> access route).
    pub fn phone(self) -> SocketAddr {
        self.addr(3, 5090)
    }
    /// A caller on the core side.
    pub fn core_caller(self) -> SocketAddr {
        self.addr(4, 5061)
    }
}

/// How to start an [`Edge`]; the defaults are the layout in the module doc.
pub struct EdgeBuilder {
    test: String,
    net: Net,
    access: Interface,
    core: Interface,
    routes: Vec<Route>,
    policies: Vec<(String, String)>,
    extra: String,
    subscribers: Vec<(String, String)>,
}

impl EdgeBuilder {
    /// Changes the `access` interface (e.g. `|i| i.trusted(true)`).
    pub fn access(mut self, f: impl FnOnce(Interface) -> Interface) -> Self {
        self.access = f(self.access);
        self
    }
    /// Changes the `core` interface.
    pub fn core(mut self, f: impl FnOnce(Interface) -> Interface) -> Self {
        self.core = f(self.core);
        self
    }
    /// Replaces the routes.
    pub fn routes(mut self, routes: Vec<Route>) -> Self {
        self.routes = routes;
        self
    }
    /// A policy file `name` with `text` in the policy directory.
    pub fn policy(mut self, name: &str, text: &str) -> Self {
        self.policies.push((name.to_string(), text.to_string()));
        self
    }
    /// More config sections (TOML), e.g. `[registrar]`.
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }
    /// A subscriber added with `sipveil subscriber add` before the start.
    pub fn subscriber(mut self, aor: &str, password: &str) -> Self {
        self.subscribers
            .push((aor.to_string(), password.to_string()));
        self
    }

    /// Writes config and policies, adds the subscribers, starts sipveil.
    pub fn start(self) -> Edge {
        let dir = TempDir::new(&self.test);
        let policy_dir = dir.subdir("policies");
        for (name, text) in &self.policies {
            std::fs::write(policy_dir.join(name), text).expect("write policy file");
        }
        let extra = format!(
            "{}\n[policy]\ndir = \"{}\"\n",
            self.extra,
            policy_dir.display()
        );
        let mut sbc = Sipveil::configure(
            &dir.subdir("sipveil"),
            &[self.access, self.core],
            &self.routes,
            &extra,
        );
        for (aor, pw) in &self.subscribers {
            sbc.add_subscriber(aor, pw);
        }
        sbc.launch();
        Edge {
            net: self.net,
            sbc,
            dir,
        }
    }
}

/// A running sipveil for one test.
pub struct Edge {
    pub net: Net,
    pub sbc: Sipveil,
    // dropped last: keeps the traces if the test panicked
    pub dir: TempDir,
}

impl Edge {
    /// The default layout, to be changed before `start`.
    pub fn build(test: &str, net: Net) -> EdgeBuilder {
        EdgeBuilder {
            test: test.to_string(),
            net,
            access: Interface::udp("access", net.access()),
            core: Interface::udp("core", net.core()).trusted(true),
            routes: vec![
                Route::new("access", &format!("sip:{}", net.callee()), "core"),
                Route::new("core", &format!("sip:{}", net.phone()), "access"),
            ],
            policies: Vec::new(),
            extra: String::new(),
            subscribers: Vec::new(),
        }
    }

    /// The default layout, started.
    pub fn start(test: &str, net: Net) -> Edge {
        Edge::build(test, net).start()
    }

    fn ua(&self, local: SocketAddr, server: SocketAddr, user: &str) -> Ua {
        Ua::bind(local, server, user, "", DOMAIN)
            .unwrap_or_else(|e| panic!("bind test UA on {local}: {e}"))
    }

    /// `alice` on the access side, talking to the access interface.
    pub fn caller(&self) -> Ua {
        self.ua(self.net.caller(), self.net.access(), "alice")
    }
    /// The callee behind core.
    pub fn callee(&self) -> Ua {
        self.ua(self.net.callee(), self.net.core(), "bob")
    }
    /// `carol` on the core side, talking to the core interface.
    pub fn core_caller(&self) -> Ua {
        self.ua(self.net.core_caller(), self.net.core(), "carol")
    }
    /// The phone behind access.
    pub fn phone(&self) -> Ua {
        self.ua(self.net.phone(), self.net.access(), "dave")
    }

    /// sipveil's log, for failure messages.
    pub fn log(&self) -> String {
        self.sbc.log_tail(6000)
    }
}

/// A Via header value for a new transaction from `ua`.
pub fn via(ua: &Ua) -> String {
    format!(
        "SIP/2.0/UDP {};branch=z9hG4bK{};rport",
        ua.local,
        unique("b")
    )
}

/// A one-stream audio offer/answer naming `ip`, with `c=` set to `conn`.
pub fn sdp(origin_ip: IpAddr, conn: &str, port: u16, extra: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {origin_ip}\r\ns=-\r\nc=IN IP4 {conn}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}"
    )
}

/// An INVITE to build, with everything a test may want to change.
#[derive(Clone, Debug)]
pub struct Invite {
    pub ruri: String,
    /// From without tag.
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub from_tag: String,
    pub cseq: u32,
    /// Whole header lines added after the standard ones (`Name: value`).
    pub headers: Vec<String>,
    pub max_forwards: bool,
    pub sdp: Option<String>,
}

impl Invite {
    /// An INVITE from `ua` (From `<sip:USER@example.test>`) to `user`,
    /// request-URI `sip:user@<sipveil's address>`, with an audio offer.
    pub fn new(ua: &Ua, user: &str) -> Invite {
        Invite {
            ruri: format!("sip:{user}@{}", ua.server),
            from: format!("<sip:{}@{DOMAIN}>", ua.creds.user),
            to: format!("<sip:{user}@{DOMAIN}>"),
            call_id: unique("call-"),
            from_tag: unique("ft"),
            cseq: 1,
            headers: Vec::new(),
            max_forwards: true,
            sdp: Some(sdp(ua.local.ip(), &ua.local.ip().to_string(), 40000, "")),
        }
    }

    /// Adds a header line (`Name: value`).
    pub fn header(mut self, line: &str) -> Invite {
        self.headers.push(line.to_string());
        self
    }

    /// Sets From (without tag).
    pub fn from(mut self, from: &str) -> Invite {
        self.from = from.to_string();
        self
    }

    /// Sets To.
    pub fn to(mut self, to: &str) -> Invite {
        self.to = to.to_string();
        self
    }

    /// The request text from `ua` (a new Via branch each call).
    pub fn text(&self, ua: &Ua) -> String {
        let mut m = format!("INVITE {} SIP/2.0\r\nVia: {}\r\n", self.ruri, via(ua));
        if self.max_forwards {
            m.push_str("Max-Forwards: 70\r\n");
        }
        let _ = write!(
            m,
            "From: {};tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} INVITE\r\n\
             Contact: <sip:{}@{}>\r\n",
            self.from, self.from_tag, self.to, self.call_id, self.cseq, ua.creds.user, ua.local
        );
        for h in &self.headers {
            m.push_str(h);
            m.push_str("\r\n");
        }
        match &self.sdp {
            Some(body) => {
                let _ = write!(
                    m,
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
            None => m.push_str("Content-Length: 0\r\n\r\n"),
        }
        m
    }
}

/// The text of a response to `req` (Via, From, To, Call-ID, CSeq copied; the
/// To tag added when missing), with extra header lines and an optional SDP body.
pub fn response_text(
    req: &SipMsg,
    code: u16,
    reason: &str,
    to_tag: &str,
    extra: &[&str],
    body: Option<&str>,
) -> String {
    let mut m = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.header_all("Via") {
        let _ = write!(m, "Via: {v}\r\n");
    }
    let _ = write!(m, "From: {}\r\n", req.header("From").unwrap_or_default());
    let to = req.header("To").unwrap_or_default();
    if param(to, "tag").is_some() {
        let _ = write!(m, "To: {to}\r\n");
    } else {
        let _ = write!(m, "To: {to};tag={to_tag}\r\n");
    }
    let _ = write!(
        m,
        "Call-ID: {}\r\nCSeq: {}\r\n",
        req.header("Call-ID").unwrap_or_default(),
        req.header("CSeq").unwrap_or_default()
    );
    for h in extra {
        m.push_str(h);
        m.push_str("\r\n");
    }
    match body {
        Some(b) => {
            let _ = write!(
                m,
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            );
        }
        None => m.push_str("Content-Length: 0\r\n\r\n"),
    }
    m
}

/// Waits for a response to a `method` request with CSeq number `seq` whose
/// status is at least `min`, skipping everything else.
pub fn wait_response(ua: &mut Ua, seq: u32, method: &str, min: u16) -> Option<SipMsg> {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (m, _) = ua.recv(left)?;
        let Some(code) = m.status() else { continue };
        if code >= min && m.cseq() == Some((seq, method.to_string())) {
            return Some(m);
        }
    }
}

/// Waits for the INVITE at `callee`; panics with sipveil's log if none came.
pub fn expect_invite(edge: &Edge, callee: &mut Ua) -> (SipMsg, SocketAddr) {
    callee.expect_request("INVITE", STEP).unwrap_or_else(|| {
        panic!(
            "the callee got no INVITE\n--- sipveil log ---\n{}",
            edge.log()
        )
    })
}

/// An answered call: what each side saw, and what is needed to end it.
pub struct Dialog {
    /// The INVITE the caller sent.
    pub a_invite: SipMsg,
    /// The 200 the caller received.
    pub a_ok: SipMsg,
    /// The INVITE the callee received.
    pub b_invite: SipMsg,
    /// The ACK the callee received.
    pub b_ack: SipMsg,
    /// Where the callee's requests come from (sipveil).
    pub b_peer: SocketAddr,
    /// The caller's next CSeq.
    pub next_cseq: u32,
}

/// Sends `text` (an INVITE) from `caller`; the callee answers 200 with
/// `answer_extra` header lines (a `Contact:` there replaces the callee's own)
/// and an SDP answer; the caller ACKs. Panics
/// with sipveil's log on any missing step.
pub fn answer_call(
    edge: &Edge,
    caller: &mut Ua,
    callee: &mut Ua,
    text: &str,
    answer_extra: &[&str],
) -> Dialog {
    let a_invite = SipMsg::parse(text.as_bytes()).expect("the test's INVITE parses");
    caller.send(text);
    let (b_invite, b_peer) = expect_invite(edge, callee);
    let answer = sdp(callee.local.ip(), &callee.local.ip().to_string(), 40002, "");
    // The callee's own Contact unless the test gives one.
    let mut extra = Vec::new();
    if !answer_extra.iter().any(|h| h.starts_with("Contact:")) {
        extra.push(format!("Contact: <sip:bob@{}>", callee.local));
    }
    extra.extend(answer_extra.iter().map(|s| s.to_string()));
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let ok = response_text(&b_invite, 200, "OK", &unique("tt"), &extra, Some(&answer));
    callee.send_to(&ok, b_peer);
    let (seq, _) = a_invite.cseq().expect("CSeq");
    let a_ok = wait_response(caller, seq, "INVITE", 200).unwrap_or_else(|| {
        panic!(
            "the caller got no final answer\n--- sipveil log ---\n{}",
            edge.log()
        )
    });
    assert_eq!(a_ok.status(), Some(200), "{}", a_ok.raw);
    let mut d = Dialog {
        a_invite,
        a_ok,
        b_invite,
        b_ack: SipMsg::parse(b"ACK sip:x SIP/2.0\r\n\r\n").expect("placeholder"),
        b_peer,
        next_cseq: seq + 1,
    };
    caller.send(&d.in_dialog(caller, "ACK", seq, None));
    let (ack, _) = callee
        .expect_request("ACK", STEP)
        .unwrap_or_else(|| panic!("the callee got no ACK\n--- sipveil log ---\n{}", edge.log()));
    d.b_ack = ack;
    d
}

impl Dialog {
    /// A request of the caller's dialog (request-URI = the 200's Contact).
    pub fn in_dialog(&self, caller: &Ua, method: &str, seq: u32, body: Option<&str>) -> String {
        let contact = self.a_ok.contacts().into_iter().next().unwrap_or_default();
        let mut m = format!(
            "{method} {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
             Call-ID: {}\r\nCSeq: {seq} {method}\r\nContact: <sip:{}@{}>\r\n",
            uri_of(&contact),
            via(caller),
            self.a_invite.header("From").unwrap_or_default(),
            self.a_ok.header("To").unwrap_or_default(),
            self.a_invite.header("Call-ID").unwrap_or_default(),
            caller.creds.user,
            caller.local,
        );
        match body {
            Some(b) => {
                let _ = write!(
                    m,
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                );
            }
            None => m.push_str("Content-Length: 0\r\n\r\n"),
        }
        m
    }

    /// The caller re-INVITEs with `offer`; the callee answers 200 with its own
    /// SDP; the caller ACKs. Returns the re-INVITE the callee received.
    pub fn reinvite(
        &mut self,
        edge: &Edge,
        caller: &mut Ua,
        callee: &mut Ua,
        offer: &str,
    ) -> SipMsg {
        let seq = self.next_cseq;
        self.next_cseq += 1;
        caller.send(&self.in_dialog(caller, "INVITE", seq, Some(offer)));
        let (req, from) = expect_invite(edge, callee);
        let answer = sdp(callee.local.ip(), &callee.local.ip().to_string(), 40002, "");
        let contact = format!("Contact: <sip:bob@{}>", callee.local);
        let ok = response_text(&req, 200, "OK", "", &[&contact], Some(&answer));
        callee.send_to(&ok, from);
        let r = wait_response(caller, seq, "INVITE", 200)
            .unwrap_or_else(|| panic!("no answer to the re-INVITE\n{}", edge.log()));
        assert_eq!(r.status(), Some(200), "{}", r.raw);
        caller.send(&self.in_dialog(caller, "ACK", seq, None));
        callee
            .expect_request("ACK", STEP)
            .unwrap_or_else(|| panic!("no ACK for the re-INVITE\n{}", edge.log()));
        req
    }

    /// The caller hangs up; the callee answers the BYE. Returns the BYE the
    /// callee received.
    pub fn hangup(&mut self, edge: &Edge, caller: &mut Ua, callee: &mut Ua) -> SipMsg {
        let seq = self.next_cseq;
        self.next_cseq += 1;
        caller.send(&self.in_dialog(caller, "BYE", seq, None));
        let (bye, from) = callee
            .expect_request("BYE", STEP)
            .unwrap_or_else(|| panic!("the callee got no BYE\n{}", edge.log()));
        callee.send_to(&response_text(&bye, 200, "OK", "", &[], None), from);
        let r = wait_response(caller, seq, "BYE", 200)
            .unwrap_or_else(|| panic!("no answer to the BYE\n{}", edge.log()));
        assert_eq!(r.status(), Some(200), "{}", r.raw);
        bye
    }
}

/// A whole call: `answer_call` then `hangup`. Returns the dialog (with the
/// INVITE the callee got) and the BYE the callee got.
pub fn call(
    edge: &Edge,
    caller: &mut Ua,
    callee: &mut Ua,
    text: &str,
    answer_extra: &[&str],
) -> (Dialog, SipMsg) {
    let mut d = answer_call(edge, caller, callee, text, answer_extra);
    let bye = d.hangup(edge, caller, callee);
    (d, bye)
}

/// Sends `text` (an INVITE) and returns sipveil's final answer (ACKed when a
/// failure); checks the callee heard nothing of it.
pub fn refused(edge: &Edge, caller: &mut Ua, callee: &mut Ua, text: &str) -> SipMsg {
    let invite = SipMsg::parse(text.as_bytes()).expect("the test's INVITE parses");
    caller.send(text);
    let fin = caller
        .invite_final(&invite, STEP)
        .unwrap_or_else(|| panic!("no final answer\n--- sipveil log ---\n{}", edge.log()));
    if let Some((m, _)) = callee.recv(QUIET) {
        panic!("a refused call reached the callee:\n{}", m.raw);
    }
    fin
}

/// The callee answers the INVITE of `text` with `code` (and `extra` lines);
/// returns (the INVITE the callee got, the final answer the caller got).
pub fn rejected_by_callee(
    edge: &Edge,
    caller: &mut Ua,
    callee: &mut Ua,
    text: &str,
    code: u16,
    reason: &str,
    extra: &[&str],
) -> (SipMsg, SipMsg) {
    let invite = SipMsg::parse(text.as_bytes()).expect("the test's INVITE parses");
    caller.send(text);
    let (b_invite, from) = expect_invite(edge, callee);
    callee.send_to(
        &response_text(&b_invite, code, reason, &unique("tt"), extra, None),
        from,
    );
    let fin = caller
        .invite_final(&invite, STEP)
        .unwrap_or_else(|| panic!("no final answer\n--- sipveil log ---\n{}", edge.log()));
    callee
        .expect_request("ACK", STEP)
        .unwrap_or_else(|| panic!("sipveil did not ACK the {code}\n{}", edge.log()));
    (b_invite, fin)
}

/// An INVITE that first gets 407 and is then sent again with credentials
/// (`password` for the caller's user, digest MD5 computed by the test UA).
/// Returns the text of the second INVITE (CSeq 2), ready for `answer_call`.
pub fn authenticated_invite(edge: &Edge, caller: &mut Ua, inv: &Invite, password: &str) -> String {
    let first = inv.text(caller);
    let sent = SipMsg::parse(first.as_bytes()).expect("INVITE parses");
    caller.send(&first);
    let resp = caller
        .invite_final(&sent, STEP)
        .unwrap_or_else(|| panic!("no answer to the first INVITE\n{}", edge.log()));
    assert_eq!(resp.status(), Some(407), "{}", resp.raw);
    let ch = Challenge::all(&resp, "Proxy-Authenticate")
        .into_iter()
        .find(|c| c.alg() == Some(Alg::Md5))
        .unwrap_or_else(|| panic!("no MD5 challenge in:\n{}", resp.raw));
    caller.creds.password = password.to_string();
    let auth = authorization(&ch, &caller.creds, "INVITE", &inv.ruri, 1, &unique("cn"));
    let mut again = inv.clone();
    again.cseq = inv.cseq + 1;
    again.headers.push(format!("Proxy-Authorization: {auth}"));
    again.text(caller)
}

/// Panics unless `msg` has no `name` header.
#[track_caller]
pub fn assert_absent(msg: &SipMsg, name: &str) {
    assert!(
        msg.header(name).is_none(),
        "{name} should not have crossed:\n{}",
        msg.raw
    );
}

/// The value of `name` in `msg`; panics when absent.
#[track_caller]
pub fn value<'a>(msg: &'a SipMsg, name: &str) -> &'a str {
    msg.header(name)
        .unwrap_or_else(|| panic!("no {name} in:\n{}", msg.raw))
}

/// The user part of the URI in a header value or request-URI.
pub fn user_of(v: &str) -> &str {
    let uri = uri_of(v);
    let rest = uri.split_once(':').map(|(_, r)| r).unwrap_or(uri);
    rest.split('@').next().unwrap_or("")
}
