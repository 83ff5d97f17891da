//! Engine tests: hand-built SIP messages from a fake caller and a fake callee, a
//! fake clock (`Instant` plus offsets, no sleeping, no sockets), and assertions on
//! the bytes the engine asks the shell to send.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{CallRecord, Engine, EngineConfig, IfaceInfo, NextHop, Output, Route};
use crate::sip::{HeaderName, Method, SipMessage};
use crate::transaction::{Peer, TimerConfig, Transport};

// ----- the scene -----

/// The fake caller (on the access side).
const CALLER: &str = "127.0.0.1:5070";
/// The fake callee (the route's next hop, on the core side).
const CALLEE: &str = "127.0.0.2:5090";

/// What the caller writes that must never reach the callee.
const A_CALL_ID: &str = "a-call-7f3e1c@caller.example";
const A_TAG: &str = "atag91c2";
const A_BRANCH: &str = "z9hG4bKcallerinv0001";
const A_PROXY: &str = "10.11.12.13";

/// An SDP offer; bodies pass unchanged in this version, so its addresses are not
/// the caller's own.
const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 192.0.2.55\r\ns=-\r\nc=IN IP4 192.0.2.55\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
const ANSWER: &str = "v=0\r\no=bob 2 2 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 50000 RTP/AVP 0\r\n";

/// Headers the callee puts on its 1xx/2xx to the initial INVITE.
const CALLEE_EXTRA: &[&str] = &[
    "Contact: <sip:bob@127.0.0.2:5090>",
    "Record-Route: <sip:127.0.0.2:5090;lr>",
    "Server: callee-ua/1.0",
    "X-Internal: 127.0.0.2",
];

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config() -> EngineConfig {
    EngineConfig {
        ifaces: vec![
            IfaceInfo {
                name: "access".into(),
                advertise: "127.0.0.10".into(),
                udp: Some(sa("127.0.0.10:5060")),
                tcp: Some(sa("127.0.0.10:5060")),
                trusted: false,
                send_identity: true,
                identity_header: Default::default(),
                media: Default::default(),
            },
            IfaceInfo {
                name: "core".into(),
                advertise: "127.0.0.20".into(),
                udp: Some(sa("127.0.0.20:5060")),
                tcp: None,
                trusted: true,
                send_identity: true,
                identity_header: Default::default(),
                media: Default::default(),
            },
        ],
        routes: vec![Route {
            from: 0,
            next_hop: Some(NextHop {
                addr: sa(CALLEE),
                host: "127.0.0.2".into(),
                port: 5090,
                transport: Transport::Udp,
            }),
            egress: 1,
        }],
        ring_timeout: Duration::from_secs(180),
        timers: TimerConfig::default(),
        max_calls: 100,
    }
}

fn caller_peer() -> Peer {
    Peer {
        addr: sa(CALLER),
        transport: Transport::Udp,
        iface: 0,
        conn: None,
    }
}

fn callee_peer() -> Peer {
    Peer {
        addr: sa(CALLEE),
        transport: Transport::Udp,
        iface: 1,
        conn: None,
    }
}

// ----- what the engine sent -----

/// One `Output::Send`, parsed back.
#[derive(Clone, Debug)]
struct Sent {
    peer: Peer,
    raw: String,
    msg: SipMessage,
}

impl Sent {
    /// Start line and headers (everything before the blank line).
    fn head(&self) -> &str {
        self.raw.split("\r\n\r\n").next().unwrap()
    }

    fn is_request(&self, m: &Method) -> bool {
        self.msg.method() == Some(m)
    }

    fn is_response(&self, code: u16) -> bool {
        self.msg.status() == Some(code)
    }

    fn h(&self, name: HeaderName) -> &str {
        self.msg
            .header(name)
            .unwrap_or_else(|| panic!("no {} in\n{}", name.as_str(), self.raw))
    }

    fn call_id(&self) -> &str {
        self.msg.call_id().unwrap()
    }

    fn to_tag(&self) -> Option<String> {
        self.msg.to_header().unwrap().tag().map(str::to_string)
    }

    fn tag_in_from(&self) -> String {
        self.msg.from_header().unwrap().tag().unwrap().to_string()
    }

    fn branch(&self) -> String {
        self.msg.top_via().unwrap().branch().unwrap().to_string()
    }

    fn cseq(&self) -> (u32, Method) {
        let c = self.msg.cseq().unwrap();
        (c.seq, c.method)
    }

    fn contact_uri(&self) -> String {
        self.msg
            .contacts()
            .next()
            .unwrap()
            .unwrap()
            .uri
            .raw
            .to_string()
    }

    fn body(&self) -> &[u8] {
        self.msg.body()
    }

    /// Asserts that none of `secrets` occurs in the head as a whole token.
    fn assert_hides(&self, secrets: &[&str]) {
        for s in secrets {
            assert!(
                !contains_token(self.head(), s),
                "{s:?} leaked into a message to {}:\n{}",
                self.peer.addr,
                self.raw
            );
        }
    }
}

/// Whether `needle` occurs in `hay` not glued to letters, digits or dots (so that
/// "127.0.0.1" is not found in "127.0.0.10", nor "5070" inside a hex tag).
fn contains_token(hay: &str, needle: &str) -> bool {
    let glue = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.');
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        !glue(before) && !glue(after)
    })
}

// ----- the harness -----

struct Harness {
    eng: Engine,
    now: Instant,
    /// Every message sent so far, in order.
    sent: Vec<Sent>,
    persisted: Vec<(String, Vec<u8>)>,
    forgotten: Vec<String>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(config())
    }

    fn with_config(cfg: EngineConfig) -> Harness {
        Harness {
            eng: Engine::new(cfg),
            now: Instant::now(),
            sent: Vec::new(),
            persisted: Vec::new(),
            forgotten: Vec::new(),
        }
    }

    /// Feeds bytes as they would come off the wire: parsed, or reported malformed.
    fn deliver(&mut self, bytes: &[u8], peer: Peer) -> Vec<Sent> {
        match SipMessage::parse(bytes) {
            Ok(m) => self.eng.on_message(m, peer, self.now),
            Err(e) => self.eng.on_malformed(e, peer),
        }
        self.collect()
    }

    fn caller_sends(&mut self, text: &str) -> Vec<Sent> {
        self.deliver(text.as_bytes(), caller_peer())
    }

    fn callee_sends(&mut self, text: &str) -> Vec<Sent> {
        self.deliver(text.as_bytes(), callee_peer())
    }

    /// Moves the clock forward by `d`, firing every timer due on the way at its
    /// own time.
    fn advance(&mut self, d: Duration) -> Vec<Sent> {
        let end = self.now + d;
        let start = self.sent.len();
        for _ in 0..100_000 {
            match self.eng.next_deadline() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.eng.poll(self.now);
                    self.collect();
                }
                _ => {
                    self.now = end;
                    self.eng.poll(end);
                    self.collect();
                    return self.sent[start..].to_vec();
                }
            }
        }
        panic!("timers keep firing without the clock moving");
    }

    fn advance_ms(&mut self, ms: u64) -> Vec<Sent> {
        self.advance(Duration::from_millis(ms))
    }

    /// Takes the engine's outputs; returns the messages sent.
    fn collect(&mut self) -> Vec<Sent> {
        let mut new = Vec::new();
        for o in self.eng.take_outputs() {
            match o {
                Output::Send { peer, data } => {
                    let raw = String::from_utf8(data.to_vec()).unwrap();
                    let msg = SipMessage::parse(&data)
                        .unwrap_or_else(|e| panic!("engine sent unparsable bytes ({e}):\n{raw}"));
                    new.push(Sent { peer, raw, msg });
                }
                Output::Persist { key, value } => self.persisted.push((key, value)),
                Output::Forget { key } => self.forgotten.push(key),
            }
        }
        self.sent.extend(new.iter().cloned());
        new
    }

    fn sent_to(&self, addr: &str) -> Vec<&Sent> {
        let a = sa(addr);
        self.sent.iter().filter(|s| s.peer.addr == a).collect()
    }

    fn last_to(&self, addr: &str) -> &Sent {
        self.sent_to(addr)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("nothing sent to {addr}"))
    }

    fn last_request_to(&self, addr: &str, m: Method) -> &Sent {
        self.sent_to(addr)
            .into_iter()
            .rev()
            .find(|s| s.is_request(&m))
            .unwrap_or_else(|| panic!("no {m} sent to {addr}"))
    }

    fn last_response_to(&self, addr: &str, code: u16) -> &Sent {
        self.sent_to(addr)
            .into_iter()
            .rev()
            .find(|s| s.is_response(code))
            .unwrap_or_else(|| panic!("no {code} sent to {addr}"))
    }

    fn count_requests_to(&self, addr: &str, m: Method) -> usize {
        self.sent_to(addr)
            .into_iter()
            .filter(|s| s.is_request(&m))
            .count()
    }

    fn count_responses_to(&self, addr: &str, code: u16) -> usize {
        self.sent_to(addr)
            .into_iter()
            .filter(|s| s.is_response(code))
            .count()
    }

    /// The records persisted under `prefix`.
    fn persisted_under(&self, prefix: &str) -> Vec<&(String, Vec<u8>)> {
        self.persisted
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .collect()
    }
}

// ----- building messages -----

fn with_length(head: String, body: &str) -> String {
    format!("{head}Content-Length: {}\r\n\r\n{body}", body.len())
}

/// The caller's INVITE: a Record-Route of a proxy on its side, a Contact with its
/// address, an SDP offer.
fn caller_invite() -> String {
    caller_invite_with(&[], OFFER)
}

fn caller_invite_with(extra: &[&str], body: &str) -> String {
    let mut s = format!(
        "INVITE sip:bob@127.0.0.10:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={A_BRANCH};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag={A_TAG}\r\n\
         To: \"Bob\" <sip:bob@127.0.0.10:5060>\r\n\
         Call-ID: {A_CALL_ID}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@127.0.0.1:5070>\r\n\
         Record-Route: <sip:{A_PROXY};lr>\r\n\
         Subject: engine test\r\n\
         User-Agent: caller-ua/1.0\r\n"
    );
    for e in extra {
        s.push_str(e);
        s.push_str("\r\n");
    }
    if !body.is_empty() {
        s.push_str("Content-Type: application/sdp\r\n");
    }
    with_length(s, body)
}

/// The caller's CANCEL for its INVITE (same branch, RFC 3261 §9.1).
fn caller_cancel() -> String {
    with_length(
        format!(
            "CANCEL sip:bob@127.0.0.10:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch={A_BRANCH};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag={A_TAG}\r\n\
             To: \"Bob\" <sip:bob@127.0.0.10:5060>\r\n\
             Call-ID: {A_CALL_ID}\r\n\
             CSeq: 1 CANCEL\r\n"
        ),
        "",
    )
}

/// The caller's ACK for a non-2xx final to its INVITE (same branch, §17.1.1.3).
fn caller_ack_non2xx(final_resp: &Sent) -> String {
    with_length(
        format!(
            "ACK sip:bob@127.0.0.10:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch={A_BRANCH};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag={A_TAG}\r\n\
             To: {}\r\n\
             Call-ID: {A_CALL_ID}\r\n\
             CSeq: 1 ACK\r\n",
            final_resp.h(HeaderName::To)
        ),
        "",
    )
}

/// A response to `req` as a UA would write it: Via, From, To, Call-ID and CSeq
/// copied, a To tag added when given and missing.
fn response(
    req: &SipMessage,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[&str],
    body: &str,
) -> String {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.header_lines(HeaderName::Via) {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    s.push_str(&format!(
        "From: {}\r\n",
        req.header(HeaderName::From).unwrap()
    ));
    let to = req.header(HeaderName::To).unwrap();
    let has_tag = req.to_header().unwrap().tag().is_some();
    match to_tag {
        Some(t) if !has_tag => s.push_str(&format!("To: {to};tag={t}\r\n")),
        _ => s.push_str(&format!("To: {to}\r\n")),
    }
    s.push_str(&format!("Call-ID: {}\r\n", req.call_id().unwrap()));
    s.push_str(&format!(
        "CSeq: {}\r\n",
        req.header(HeaderName::CSeq).unwrap()
    ));
    for e in extra {
        s.push_str(e);
        s.push_str("\r\n");
    }
    if !body.is_empty() {
        s.push_str("Content-Type: application/sdp\r\n");
    }
    with_length(s, body)
}

/// One side's view of an established dialog, to write in-dialog requests.
#[derive(Clone, Debug)]
struct Ua {
    call_id: String,
    /// Our From value, with our tag.
    local: String,
    /// Our To value, with the peer's tag.
    remote: String,
    /// Request-URI (the peer's Contact).
    target: String,
    cseq: u32,
    /// host:port written in Via.
    sent_by: &'static str,
    contact: &'static str,
    branches: Vec<String>,
}

impl Ua {
    /// The next in-dialog request (new CSeq, new branch).
    fn request(&mut self, method: &str, extra: &[&str], body: &str) -> String {
        self.cseq += 1;
        self.request_cseq(method, self.cseq, extra, body)
    }

    /// An in-dialog request with a given CSeq (ACK reuses the INVITE's).
    fn request_cseq(&mut self, method: &str, cseq: u32, extra: &[&str], body: &str) -> String {
        let branch = format!("z9hG4bK{:016x}", fastrand::u64(..));
        self.branches.push(branch.clone());
        let mut s = format!(
            "{method} {} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {}\r\n\
             To: {}\r\n\
             Call-ID: {}\r\n\
             CSeq: {cseq} {method}\r\n",
            self.target, self.sent_by, self.local, self.remote, self.call_id
        );
        if matches!(method, "INVITE" | "UPDATE") {
            s.push_str(&format!("Contact: {}\r\n", self.contact));
        }
        for e in extra {
            s.push_str(e);
            s.push_str("\r\n");
        }
        if !body.is_empty() {
            s.push_str("Content-Type: application/sdp\r\n");
        }
        with_length(s, body)
    }
}

/// An established call, from both fake UAs' points of view.
struct Established {
    h: Harness,
    /// The caller's dialog.
    a: Ua,
    /// The callee's dialog.
    b: Ua,
    /// The INVITE sipveil sent to the callee.
    b_invite: Sent,
    /// The callee's To tag.
    b_tag: String,
}

impl Established {
    /// What the callee's side knows that the caller must never see.
    fn b_secrets(&self) -> Vec<String> {
        let mut v = vec![
            self.b.call_id.clone(),
            self.b_tag.clone(),
            self.b_invite.tag_in_from(),
            "127.0.0.2".into(),
            "127.0.0.20".into(),
            "5090".into(),
            "callee-ua".into(),
        ];
        v.extend(self.b.branches.iter().cloned());
        v
    }

    /// What the caller's side knows that the callee must never see.
    fn a_secrets(&self) -> Vec<String> {
        let mut v = vec![
            A_CALL_ID.to_string(),
            A_TAG.into(),
            A_BRANCH.into(),
            A_PROXY.into(),
            "127.0.0.1".into(),
            "127.0.0.10".into(),
            "5070".into(),
            "caller-ua".into(),
        ];
        v.extend(self.a.branches.iter().cloned());
        v
    }

    /// Checks every message sent so far against invariant 1.
    fn assert_topology_hidden(&self) {
        let a = self.a_secrets();
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let b = self.b_secrets();
        let b: Vec<&str> = b.iter().map(String::as_str).collect();
        for s in self.h.sent_to(CALLEE) {
            s.assert_hides(&a);
        }
        for s in self.h.sent_to(CALLER) {
            s.assert_hides(&b);
        }
    }
}

/// INVITE from the caller, 180 and 200 from the callee; stops before the ACK.
fn answered() -> Established {
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    let b_invite = h.last_request_to(CALLEE, Method::Invite).clone();
    let b_tag = "btag5d1e".to_string();
    h.callee_sends(&response(
        &b_invite.msg,
        180,
        "Ringing",
        Some(&b_tag),
        CALLEE_EXTRA,
        "",
    ));
    h.callee_sends(&response(
        &b_invite.msg,
        200,
        "OK",
        Some(&b_tag),
        CALLEE_EXTRA,
        ANSWER,
    ));
    let ok = h.last_response_to(CALLER, 200).clone();
    let a = Ua {
        call_id: A_CALL_ID.into(),
        local: format!("\"Alice\" <sip:alice@127.0.0.1:5070>;tag={A_TAG}"),
        remote: ok.h(HeaderName::To).to_string(),
        target: ok.contact_uri(),
        cseq: 1,
        sent_by: CALLER,
        contact: "<sip:alice@127.0.0.1:5070>",
        branches: Vec::new(),
    };
    let b = Ua {
        call_id: b_invite.call_id().to_string(),
        local: format!("{};tag={b_tag}", b_invite.h(HeaderName::To)),
        remote: b_invite.h(HeaderName::From).to_string(),
        target: b_invite.contact_uri(),
        cseq: 100,
        sent_by: CALLEE,
        contact: "<sip:bob@127.0.0.2:5090>",
        branches: Vec::new(),
    };
    Established {
        h,
        a,
        b,
        b_invite,
        b_tag,
    }
}

/// An answered call whose 200 the caller has acknowledged.
fn established() -> Established {
    let mut c = answered();
    let ack = c.a.request_cseq("ACK", 1, &[], "");
    c.h.caller_sends(&ack);
    c
}

// ----- basic call -----

#[test]
fn basic_call_is_two_independent_legs() {
    let mut h = Harness::new();
    let out = h.caller_sends(&caller_invite());

    // 100 Trying to the caller at once, then the INVITE on the B leg.
    assert_eq!(out.len(), 2, "{out:#?}");
    assert!(out[0].is_response(100));
    assert_eq!(out[0].peer.addr, sa(CALLER));
    assert_eq!(out[0].call_id(), A_CALL_ID);
    let inv = &out[1];
    assert!(inv.is_request(&Method::Invite));
    assert_eq!(inv.peer.addr, sa(CALLEE));
    assert_eq!(inv.peer.iface, 1);
    assert_eq!(inv.msg.request_uri(), Some("sip:bob@127.0.0.2:5090"));
    assert_ne!(inv.call_id(), A_CALL_ID);
    assert!(inv.call_id().len() >= 16);
    assert_ne!(inv.tag_in_from(), A_TAG);
    assert_eq!(inv.to_tag(), None);
    let from = inv.msg.from_header().unwrap();
    assert_eq!(from.uri.raw, "sip:alice@127.0.0.20");
    assert_eq!(from.display_name().as_deref(), Some("Alice"));
    assert_eq!(inv.msg.to_header().unwrap().uri.raw, "sip:bob@127.0.0.20");
    let vias: Vec<_> = inv.msg.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 1);
    assert_eq!(vias[0].host.to_string(), "127.0.0.20");
    assert_eq!(vias[0].port, Some(5060));
    assert!(vias[0].has_rfc3261_branch());
    assert_eq!(inv.contact_uri(), "sip:127.0.0.20:5060");
    assert_eq!(inv.h(HeaderName::MaxForwards), "69");
    assert_eq!(inv.cseq().1, Method::Invite);
    assert!(inv.msg.header(HeaderName::RecordRoute).is_none());
    assert!(inv.msg.header(HeaderName::Route).is_none());
    assert_eq!(inv.h(HeaderName::Subject), "engine test");
    assert_eq!(inv.body(), OFFER.as_bytes());
    inv.assert_hides(&[
        A_CALL_ID,
        A_TAG,
        A_BRANCH,
        A_PROXY,
        "127.0.0.1",
        "127.0.0.10",
        "5070",
        "caller-ua",
    ]);

    // 180 relayed with its reason phrase and a tag of sipveil's own.
    let b_tag = "btag5d1e";
    let out = h.callee_sends(&response(
        &inv.msg,
        180,
        "Ringing Loudly",
        Some(b_tag),
        CALLEE_EXTRA,
        "",
    ));
    assert_eq!(out.len(), 1, "{out:#?}");
    let ringing = &out[0];
    assert_eq!(ringing.peer.addr, sa(CALLER));
    assert!(ringing.raw.starts_with("SIP/2.0 180 Ringing Loudly\r\n"));
    assert_eq!(ringing.call_id(), A_CALL_ID);
    assert_eq!(ringing.tag_in_from(), A_TAG);
    assert_eq!(ringing.branch(), A_BRANCH);
    let a_tag = ringing.to_tag().unwrap();
    assert_ne!(a_tag, b_tag);
    assert_eq!(ringing.contact_uri(), "sip:127.0.0.10:5060");
    let b_secrets = [
        inv.call_id(),
        &inv.tag_in_from(),
        &inv.branch(),
        b_tag,
        "127.0.0.2",
        "127.0.0.20",
        "5090",
        "callee-ua",
        "X-Internal",
    ];
    ringing.assert_hides(&b_secrets);

    // 200 relayed with the same tag, sipveil's Contact and the callee's body.
    let out = h.callee_sends(&response(
        &inv.msg,
        200,
        "OK",
        Some(b_tag),
        CALLEE_EXTRA,
        ANSWER,
    ));
    assert_eq!(out.len(), 1, "{out:#?}");
    let ok = &out[0];
    assert_eq!(ok.peer.addr, sa(CALLER));
    assert!(ok.raw.starts_with("SIP/2.0 200 OK\r\n"));
    assert_eq!(ok.to_tag().as_deref(), Some(a_tag.as_str()));
    assert_eq!(ok.contact_uri(), "sip:127.0.0.10:5060");
    assert_eq!(ok.body(), ANSWER.as_bytes());
    // Only the caller's own Record-Route comes back (RFC 3261 §12.1.1).
    let rr: Vec<&str> = ok.msg.header_lines(HeaderName::RecordRoute).collect();
    assert_eq!(rr, vec![format!("<sip:{A_PROXY};lr>")]);
    ok.assert_hides(&b_secrets);

    // The established call is persisted.
    let calls = h.persisted_under("call/");
    assert_eq!(calls.len(), 1);
    let (key, value) = calls[0].clone();
    let rec: CallRecord = serde_json::from_slice(&value).unwrap();
    assert_eq!(key, format!("call/{}", rec.uuid));
    assert_eq!(rec.a.call_id, A_CALL_ID);
    assert_eq!(rec.b.call_id, inv.call_id());
    assert_eq!(rec.b.remote_tag, b_tag);

    // The caller's ACK becomes an ACK on B with B's CSeq, to the callee's Contact.
    let ack = with_length(
        format!(
            "ACK sip:127.0.0.10:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcallerack1;rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag={A_TAG}\r\n\
             To: {}\r\n\
             Call-ID: {A_CALL_ID}\r\n\
             CSeq: 1 ACK\r\n",
            ok.h(HeaderName::To)
        ),
        "",
    );
    let out = h.caller_sends(&ack);
    assert_eq!(out.len(), 1, "{out:#?}");
    let b_ack = &out[0];
    assert_eq!(b_ack.peer.addr, sa(CALLEE));
    assert!(b_ack.is_request(&Method::Ack));
    assert_eq!(b_ack.msg.request_uri(), Some("sip:bob@127.0.0.2:5090"));
    assert_eq!(b_ack.cseq(), (inv.cseq().0, Method::Ack));
    assert_eq!(b_ack.call_id(), inv.call_id());
    assert_eq!(b_ack.tag_in_from(), inv.tag_in_from());
    assert_eq!(b_ack.to_tag().as_deref(), Some(b_tag));
    assert_eq!(b_ack.h(HeaderName::Route), "<sip:127.0.0.2:5090;lr>");
    assert_ne!(b_ack.branch(), inv.branch());
    b_ack.assert_hides(&[A_CALL_ID, A_TAG, "callerack1", "127.0.0.1", "127.0.0.10"]);

    // BYE from the caller: BYE on B with B's next CSeq; the 200 comes back.
    let bye = with_length(
        format!(
            "BYE sip:127.0.0.10:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcallerbye1;rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag={A_TAG}\r\n\
             To: {}\r\n\
             Call-ID: {A_CALL_ID}\r\n\
             CSeq: 2 BYE\r\n",
            ok.h(HeaderName::To)
        ),
        "",
    );
    let out = h.caller_sends(&bye);
    assert_eq!(out.len(), 1, "{out:#?}");
    let b_bye = &out[0];
    assert_eq!(b_bye.peer.addr, sa(CALLEE));
    assert!(b_bye.is_request(&Method::Bye));
    assert_eq!(b_bye.cseq(), (inv.cseq().0 + 1, Method::Bye));
    assert_eq!(b_bye.call_id(), inv.call_id());
    assert_eq!(b_bye.tag_in_from(), inv.tag_in_from());
    assert_eq!(b_bye.to_tag().as_deref(), Some(b_tag));
    assert_eq!(b_bye.msg.request_uri(), Some("sip:bob@127.0.0.2:5090"));
    b_bye.assert_hides(&[A_CALL_ID, A_TAG, "callerbye1", "127.0.0.1", "127.0.0.10"]);
    let out = h.callee_sends(&response(&b_bye.msg, 200, "OK", None, &[], ""));
    assert_eq!(out.len(), 1, "{out:#?}");
    let bye_ok = &out[0];
    assert_eq!(bye_ok.peer.addr, sa(CALLER));
    assert!(bye_ok.raw.starts_with("SIP/2.0 200 OK\r\n"));
    assert_eq!(bye_ok.cseq(), (2, Method::Bye));
    assert_eq!(bye_ok.branch(), "z9hG4bKcallerbye1");
    bye_ok.assert_hides(&b_secrets);

    // The call record is removed and a CDR written.
    assert_eq!(h.forgotten, vec![key]);
    let cdrs = h.persisted_under("cdr/");
    assert_eq!(cdrs.len(), 1);
    let cdr: serde_json::Value = serde_json::from_slice(&cdrs[0].1).unwrap();
    assert_eq!(cdr["uuid"], rec.uuid.as_str());
    assert_eq!(cdr["status"], 200);
    assert_eq!(cdr["caller"], "alice");
    assert_eq!(cdr["callee"], "bob");
    assert_eq!(cdr["ingress"], "access");
    assert_eq!(cdr["egress"], "core");
    assert_eq!(h.eng.call_count(), 0);
}

#[test]
fn bye_from_callee() {
    let mut c = established();
    let bye = c.b.request("BYE", &[], "");
    let out = c.h.callee_sends(&bye);
    assert_eq!(out.len(), 1, "{out:#?}");
    let a_bye = &out[0];
    assert_eq!(a_bye.peer.addr, sa(CALLER));
    assert!(a_bye.is_request(&Method::Bye));
    // The caller's leg: its Call-ID and tags, sipveil's own CSeq space, the
    // caller's Contact as request-URI and its proxy in Route.
    assert_eq!(a_bye.call_id(), A_CALL_ID);
    assert_eq!(a_bye.to_tag().as_deref(), Some(A_TAG));
    assert_eq!(
        Some(a_bye.tag_in_from()),
        c.a.remote.split(";tag=").nth(1).map(str::to_string)
    );
    assert_eq!(a_bye.cseq(), (1, Method::Bye));
    assert_eq!(a_bye.msg.request_uri(), Some("sip:alice@127.0.0.1:5070"));
    assert_eq!(a_bye.h(HeaderName::Route), format!("<sip:{A_PROXY};lr>"));
    let via = a_bye.msg.top_via().unwrap();
    assert_eq!(via.host.to_string(), "127.0.0.10");
    let out =
        c.h.caller_sends(&response(&a_bye.msg, 200, "OK", None, &[], ""));
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].peer.addr, sa(CALLEE));
    assert!(out[0].raw.starts_with("SIP/2.0 200 OK\r\n"));
    assert_eq!(out[0].cseq(), (101, Method::Bye));
    assert_eq!(c.h.forgotten.len(), 1);
    let cdrs = c.h.persisted_under("cdr/");
    assert_eq!(cdrs.len(), 1);
    let cdr: serde_json::Value = serde_json::from_slice(&cdrs[0].1).unwrap();
    assert_eq!(cdr["reason"], "callee hangup");
    c.assert_topology_hidden();
}

// ----- in-dialog requests -----

#[test]
fn reinvite_from_both_sides_keeps_cseq_spaces_apart() {
    let mut c = established();
    let b_base = c.b_invite.cseq().0;

    // Caller re-INVITE (CSeq 2 on A) -> re-INVITE on B with B's next CSeq.
    let reinv = c.a.request("INVITE", &[], OFFER);
    let out = c.h.caller_sends(&reinv);
    assert!(out[0].is_response(100), "{out:#?}");
    let b_re = c.h.last_request_to(CALLEE, Method::Invite).clone();
    assert_ne!(b_re.branch(), c.b_invite.branch());
    assert_eq!(b_re.cseq(), (b_base + 1, Method::Invite));
    assert_eq!(b_re.call_id(), c.b.call_id);
    assert_eq!(b_re.to_tag().as_deref(), Some(c.b_tag.as_str()));
    assert_eq!(b_re.contact_uri(), "sip:127.0.0.20:5060");
    assert_eq!(b_re.msg.request_uri(), Some("sip:bob@127.0.0.2:5090"));
    assert_eq!(b_re.h(HeaderName::MaxForwards), "69");
    assert_eq!(b_re.body(), OFFER.as_bytes());
    let out = c.h.callee_sends(&response(
        &b_re.msg,
        200,
        "OK",
        None,
        &["Contact: <sip:bob@127.0.0.2:5090>"],
        ANSWER,
    ));
    assert_eq!(out.len(), 1, "{out:#?}");
    let ok = &out[0];
    assert_eq!(ok.peer.addr, sa(CALLER));
    assert_eq!(ok.cseq(), (2, Method::Invite));
    assert_eq!(ok.contact_uri(), "sip:127.0.0.10:5060");
    assert_eq!(ok.body(), ANSWER.as_bytes());
    // The caller's ACK (CSeq 2) becomes B's ACK with B's CSeq.
    let ack = c.a.request_cseq("ACK", 2, &[], "");
    let out = c.h.caller_sends(&ack);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_request(&Method::Ack));
    assert_eq!(out[0].cseq(), (b_base + 1, Method::Ack));
    assert_eq!(out[0].peer.addr, sa(CALLEE));

    // Callee re-INVITE (its own CSeq 101) -> re-INVITE on A in sipveil's A space.
    let reinv = c.b.request("INVITE", &[], ANSWER);
    let out = c.h.callee_sends(&reinv);
    assert!(out[0].is_response(100), "{out:#?}");
    assert_eq!(out[0].peer.addr, sa(CALLEE));
    let a_re = c.h.last_request_to(CALLER, Method::Invite).clone();
    assert_eq!(a_re.cseq(), (1, Method::Invite));
    assert_eq!(a_re.call_id(), A_CALL_ID);
    assert_eq!(a_re.to_tag().as_deref(), Some(A_TAG));
    assert_eq!(a_re.contact_uri(), "sip:127.0.0.10:5060");
    assert_eq!(a_re.msg.request_uri(), Some("sip:alice@127.0.0.1:5070"));
    assert_eq!(a_re.body(), ANSWER.as_bytes());
    let out = c.h.caller_sends(&response(
        &a_re.msg,
        200,
        "OK",
        None,
        &["Contact: <sip:alice@127.0.0.1:5070>"],
        OFFER,
    ));
    assert_eq!(out.len(), 1, "{out:#?}");
    let ok = &out[0];
    assert_eq!(ok.peer.addr, sa(CALLEE));
    assert_eq!(ok.cseq(), (101, Method::Invite));
    assert_eq!(ok.contact_uri(), "sip:127.0.0.20:5060");
    let ack = c.b.request_cseq("ACK", 101, &[], "");
    let out = c.h.callee_sends(&ack);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_request(&Method::Ack));
    assert_eq!(out[0].peer.addr, sa(CALLER));
    assert_eq!(out[0].cseq(), (1, Method::Ack));
    assert_eq!(out[0].call_id(), A_CALL_ID);

    // Another one from the caller continues B's space where it was.
    let reinv = c.a.request("INVITE", &[], "");
    c.h.caller_sends(&reinv);
    let b_re2 = c.h.last_request_to(CALLEE, Method::Invite).clone();
    assert_eq!(b_re2.cseq(), (b_base + 2, Method::Invite));
    assert!(b_re2.body().is_empty());
    c.assert_topology_hidden();
}

#[test]
fn update_and_info_in_dialog() {
    let mut c = established();
    let b_base = c.b_invite.cseq().0;

    let upd = c.a.request("UPDATE", &[], OFFER);
    let out = c.h.caller_sends(&upd);
    assert_eq!(out.len(), 1, "{out:#?}");
    let b_upd = &out[0];
    assert!(b_upd.is_request(&Method::Update));
    assert_eq!(b_upd.cseq(), (b_base + 1, Method::Update));
    assert_eq!(b_upd.contact_uri(), "sip:127.0.0.20:5060");
    assert_eq!(b_upd.body(), OFFER.as_bytes());
    let out = c.h.callee_sends(&response(
        &b_upd.msg,
        200,
        "OK",
        None,
        &["Contact: <sip:bob@127.0.0.2:5090>"],
        ANSWER,
    ));
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].cseq(), (2, Method::Update));
    assert_eq!(out[0].contact_uri(), "sip:127.0.0.10:5060");
    assert_eq!(out[0].body(), ANSWER.as_bytes());

    let info = c.b.request(
        "INFO",
        &["Info-Package: dtmf", "Content-Type: application/dtmf-relay"],
        "Signal=5\r\nDuration=160\r\n",
    );
    let out = c.h.callee_sends(&info);
    assert_eq!(out.len(), 1, "{out:#?}");
    let a_info = &out[0];
    assert!(a_info.is_request(&Method::Info));
    assert_eq!(a_info.peer.addr, sa(CALLER));
    assert_eq!(a_info.cseq(), (1, Method::Info));
    assert_eq!(a_info.header_named("Info-Package"), Some("dtmf"));
    assert_eq!(a_info.body(), b"Signal=5\r\nDuration=160\r\n");
    assert!(a_info.msg.header(HeaderName::Contact).is_none());
    let out =
        c.h.caller_sends(&response(&a_info.msg, 200, "OK", None, &[], ""));
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].peer.addr, sa(CALLEE));
    assert_eq!(out[0].cseq(), (101, Method::Info));
    c.assert_topology_hidden();
}

impl Sent {
    fn header_named(&self, name: &str) -> Option<&str> {
        self.msg.header_named(name)
    }
}

#[test]
fn options_to_sipveil_itself() {
    let mut h = Harness::new();
    let opt = with_length(
        "OPTIONS sip:127.0.0.10:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKopt1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:monitor@127.0.0.1>;tag=m1\r\n\
         To: <sip:127.0.0.10:5060>\r\n\
         Call-ID: opt-1\r\n\
         CSeq: 1 OPTIONS\r\n"
            .to_string(),
        "",
    );
    let out = h.caller_sends(&opt);
    assert_eq!(out.len(), 1, "{out:#?}");
    let ok = &out[0];
    assert_eq!(ok.peer.addr, sa(CALLER));
    assert!(ok.is_response(200));
    assert!(ok.to_tag().is_some());
    let allow: Vec<&str> = ok.msg.allow().collect();
    for m in ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE"] {
        assert!(allow.contains(&m), "{m} missing from Allow: {allow:?}");
    }
    assert!(h.sent_to(CALLEE).is_empty());
}

#[test]
fn in_dialog_request_with_unknown_tag_gets_481() {
    let mut c = established();
    c.a.remote = "\"Bob\" <sip:bob@127.0.0.10:5060>;tag=nosuchtag".into();
    let bye = c.a.request("BYE", &[], "");
    let out = c.h.caller_sends(&bye);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_response(481));
    assert_eq!(out[0].peer.addr, sa(CALLER));
    assert_eq!(c.h.count_requests_to(CALLEE, Method::Bye), 0);
    // The call itself is untouched.
    assert_eq!(c.h.eng.call_count(), 1);
}

fn final_to_caller(h: &Harness) -> &Sent {
    h.sent_to(CALLER)
        .into_iter()
        .rev()
        .find(|s| s.msg.status().is_some_and(|c| c >= 200))
        .expect("a final response to the caller")
}

#[test]
fn route_miss_gets_404() {
    let mut cfg = config();
    cfg.routes.clear();
    let mut h = Harness::with_config(cfg);
    h.caller_sends(&caller_invite());
    let f = final_to_caller(&h);
    assert!(f.is_response(404), "{}", f.raw);
    assert!(h.sent_to(CALLEE).is_empty());
    assert_eq!(h.eng.call_count(), 0);
    // The caller's ACK for the 404 is absorbed.
    let ack = caller_ack_non2xx(f);
    let out = h.caller_sends(&ack);
    assert!(out.is_empty(), "{out:#?}");
}

/// Fuzz finding (`fuzz/regressions/message_path/invite-without-contact-...`):
/// an INVITE without a usable Contact left the A leg without a remote target,
/// and the BYE sipveil later sent the caller had an empty request-URI.
#[test]
fn invite_without_contact_gets_400() {
    for contact in ["", "Contact: <bad uri>\r\n"] {
        let mut h = Harness::new();
        let invite = caller_invite().replace("Contact: <sip:alice@127.0.0.1:5070>\r\n", contact);
        h.caller_sends(&invite);
        let f = final_to_caller(&h);
        assert!(f.is_response(400), "{}", f.raw);
        assert!(f.raw.contains("Contact"), "{}", f.raw);
        assert!(h.sent_to(CALLEE).is_empty());
        assert_eq!(h.eng.call_count(), 0);
    }
}

#[test]
fn max_forwards_zero_gets_483() {
    let mut h = Harness::new();
    let inv = caller_invite().replace("Max-Forwards: 70", "Max-Forwards: 0");
    h.caller_sends(&inv);
    let f = final_to_caller(&h);
    assert!(f.is_response(483), "{}", f.raw);
    assert!(h.sent_to(CALLEE).is_empty());
}

#[test]
fn unknown_method_gets_501() {
    let mut h = Harness::new();
    let req = with_length(
        format!(
            "FROBNICATE sip:bob@127.0.0.10:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKfrob1;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@127.0.0.1>;tag={A_TAG}\r\n\
             To: <sip:bob@127.0.0.10>\r\n\
             Call-ID: frob-1\r\n\
             CSeq: 1 FROBNICATE\r\n"
        ),
        "",
    );
    let out = h.caller_sends(&req);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_response(501), "{}", out[0].raw);
    assert!(out[0].msg.header(HeaderName::Allow).is_some());
    assert!(h.sent_to(CALLEE).is_empty());
}

#[test]
fn unsupported_uri_scheme_gets_416() {
    let mut h = Harness::new();
    let inv = caller_invite().replace(
        "INVITE sip:bob@127.0.0.10:5060 SIP/2.0",
        "INVITE http://bob.example/ SIP/2.0",
    );
    let out = h.caller_sends(&inv);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_response(416), "{}", out[0].raw);
    assert_eq!(out[0].peer.addr, sa(CALLER));
    assert!(h.sent_to(CALLEE).is_empty());
}

#[test]
fn sip_3_gets_505() {
    let mut h = Harness::new();
    let inv = caller_invite().replace(
        "INVITE sip:bob@127.0.0.10:5060 SIP/2.0",
        "INVITE sip:bob@127.0.0.10:5060 SIP/3.0",
    );
    let out = h.caller_sends(&inv);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_response(505), "{}", out[0].raw);
    assert!(out[0].raw.starts_with("SIP/2.0 505 "));
    assert_eq!(out[0].peer.addr, sa(CALLER));
    assert!(h.sent_to(CALLEE).is_empty());
}

#[test]
fn malformed_requests_get_400_naming_the_fault() {
    // Caught by the parser: answered through on_malformed.
    let mut h = Harness::new();
    let bad = caller_invite().replace(
        &format!("Content-Length: {}", OFFER.len()),
        "Content-Length: lots",
    );
    assert!(SipMessage::parse(bad.as_bytes()).is_err());
    let out = h.caller_sends(&bad);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_response(400), "{}", out[0].raw);
    assert!(
        out[0].msg.reason().unwrap().contains("Content-Length"),
        "{}",
        out[0].raw
    );
    assert_eq!(out[0].peer.addr, sa(CALLER));

    // Parsed, but missing a mandatory header: answered by on_message.
    let bad = caller_invite().replace(&format!("Call-ID: {A_CALL_ID}\r\n"), "");
    assert!(SipMessage::parse(bad.as_bytes()).is_ok());
    let out = h.caller_sends(&bad);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_response(400), "{}", out[0].raw);
    assert!(
        out[0].msg.reason().unwrap().contains("Call-ID"),
        "{}",
        out[0].raw
    );

    // CSeq method different from the request's.
    let bad = caller_invite().replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
    let out = h.caller_sends(&bad);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_response(400), "{}", out[0].raw);
    assert!(
        out[0].msg.reason().unwrap().contains("CSeq"),
        "{}",
        out[0].raw
    );
    assert!(h.sent_to(CALLEE).is_empty());
    assert_eq!(h.eng.call_count(), 0);
}

// ----- CANCEL and timers -----

#[test]
fn caller_cancels_while_ringing() {
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    h.callee_sends(&response(
        &inv.msg,
        180,
        "Ringing",
        Some("btagring"),
        CALLEE_EXTRA,
        "",
    ));
    let ringing = h.last_response_to(CALLER, 180).clone();

    let out = h.caller_sends(&caller_cancel());
    let to_caller: Vec<_> = out.iter().filter(|s| s.peer.addr == sa(CALLER)).collect();
    let to_callee: Vec<_> = out.iter().filter(|s| s.peer.addr == sa(CALLEE)).collect();
    assert_eq!(to_caller.len(), 2, "{out:#?}");
    assert!(to_caller[0].is_response(200));
    assert_eq!(to_caller[0].cseq(), (1, Method::Cancel));
    assert!(to_caller[1].is_response(487));
    assert_eq!(to_caller[1].cseq(), (1, Method::Invite));
    assert_eq!(to_caller[1].to_tag(), ringing.to_tag());
    assert_eq!(to_callee.len(), 1, "{out:#?}");
    let cancel = to_callee[0];
    assert!(cancel.is_request(&Method::Cancel));
    assert_eq!(cancel.branch(), inv.branch());
    assert_eq!(cancel.call_id(), inv.call_id());
    assert_eq!(cancel.cseq(), (inv.cseq().0, Method::Cancel));
    assert_eq!(cancel.msg.request_uri(), inv.msg.request_uri());

    // The callee: 200 for the CANCEL, 487 for the INVITE, which the transaction
    // layer acknowledges on its own.
    let out = h.callee_sends(&response(&cancel.msg, 200, "OK", Some("btagring"), &[], ""));
    assert!(out.is_empty(), "{out:#?}");
    let out = h.callee_sends(&response(
        &inv.msg,
        487,
        "Request Terminated",
        Some("btagring"),
        &[],
        "",
    ));
    assert_eq!(out.len(), 1, "{out:#?}");
    let ack = &out[0];
    assert!(ack.is_request(&Method::Ack));
    assert_eq!(ack.peer.addr, sa(CALLEE));
    assert_eq!(ack.branch(), inv.branch());
    assert_eq!(ack.cseq(), (inv.cseq().0, Method::Ack));
    assert_eq!(ack.to_tag().as_deref(), Some("btagring"));

    // The caller's ACK for the 487 stays on its leg.
    let out = h.caller_sends(&caller_ack_non2xx(&to_caller[1].clone()));
    assert!(out.is_empty(), "{out:#?}");
    assert_eq!(h.eng.call_count(), 0);
    assert!(h.persisted_under("call/").is_empty());
    assert!(h.forgotten.is_empty());
    let cdrs = h.persisted_under("cdr/");
    assert_eq!(cdrs.len(), 1);
    let cdr: serde_json::Value = serde_json::from_slice(&cdrs[0].1).unwrap();
    assert_eq!(cdr["status"], 487);
    // Nothing more happens once the timers run out.
    let out = h.advance(Duration::from_secs(64));
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn cancel_before_any_provisional_waits_for_the_first_1xx() {
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();

    let out = h.caller_sends(&caller_cancel());
    assert!(out.iter().all(|s| s.peer.addr == sa(CALLER)), "{out:#?}");
    assert_eq!(h.last_response_to(CALLER, 487).cseq().1, Method::Invite);
    assert_eq!(h.count_requests_to(CALLEE, Method::Cancel), 0);

    // Timer A keeps retransmitting the INVITE meanwhile, never a CANCEL.
    h.advance_ms(600);
    assert_eq!(h.count_requests_to(CALLEE, Method::Invite), 2);
    assert_eq!(h.count_requests_to(CALLEE, Method::Cancel), 0);

    // The callee's 100 Trying is a provisional: the CANCEL may go now (§9.1).
    let out = h.callee_sends(&response(&inv.msg, 100, "Trying", None, &[], ""));
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_request(&Method::Cancel));
    assert_eq!(out[0].branch(), inv.branch());
    let cancel = out[0].clone();
    h.callee_sends(&response(&cancel.msg, 200, "OK", None, &[], ""));
    let out = h.callee_sends(&response(
        &inv.msg,
        487,
        "Request Terminated",
        Some("b1"),
        &[],
        "",
    ));
    assert!(out[0].is_request(&Method::Ack), "{out:#?}");
    assert_eq!(h.eng.call_count(), 0);
}

#[test]
fn cancel_before_provisional_then_180() {
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    h.caller_sends(&caller_cancel());
    assert_eq!(h.count_requests_to(CALLEE, Method::Cancel), 0);
    let out = h.callee_sends(&response(
        &inv.msg,
        180,
        "Ringing",
        Some("b1"),
        CALLEE_EXTRA,
        "",
    ));
    // The CANCEL goes out; the late 180 is not relayed after the 487.
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_request(&Method::Cancel));
    assert_eq!(h.count_responses_to(CALLER, 180), 0);
}

#[test]
fn answer_racing_a_cancel_is_acked_and_hung_up() {
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    h.callee_sends(&response(
        &inv.msg,
        180,
        "Ringing",
        Some("b1"),
        CALLEE_EXTRA,
        "",
    ));
    h.caller_sends(&caller_cancel());
    let out = h.callee_sends(&response(
        &inv.msg,
        200,
        "OK",
        Some("b1"),
        CALLEE_EXTRA,
        ANSWER,
    ));
    let ack = out.iter().find(|s| s.is_request(&Method::Ack)).unwrap();
    let bye = out.iter().find(|s| s.is_request(&Method::Bye)).unwrap();
    assert_eq!(ack.cseq().0, inv.cseq().0);
    assert_eq!(ack.to_tag().as_deref(), Some("b1"));
    assert_eq!(bye.to_tag().as_deref(), Some("b1"));
    assert_eq!(bye.call_id(), inv.call_id());
    assert!(bye.cseq().0 > inv.cseq().0);
    assert_eq!(h.count_responses_to(CALLER, 200), 1); // the CANCEL's
    assert_eq!(h.eng.call_count(), 0);
}

#[test]
fn ring_timeout_cancels_with_408() {
    let mut cfg = config();
    cfg.ring_timeout = Duration::from_secs(5);
    let mut h = Harness::with_config(cfg);
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    h.callee_sends(&response(
        &inv.msg,
        180,
        "Ringing",
        Some("b1"),
        CALLEE_EXTRA,
        "",
    ));
    let out = h.advance_ms(4_900);
    assert!(out.is_empty(), "{out:#?}");
    let out = h.advance_ms(200);
    let f = out.iter().find(|s| s.peer.addr == sa(CALLER)).unwrap();
    assert!(f.is_response(408), "{}", f.raw);
    assert_eq!(f.cseq(), (1, Method::Invite));
    let cancel = out.iter().find(|s| s.peer.addr == sa(CALLEE)).unwrap();
    assert!(cancel.is_request(&Method::Cancel));
    assert_eq!(cancel.branch(), inv.branch());
    let cancel = cancel.clone();
    h.callee_sends(&response(&cancel.msg, 200, "OK", None, &[], ""));
    let out = h.callee_sends(&response(
        &inv.msg,
        487,
        "Request Terminated",
        Some("b1"),
        &[],
        "",
    ));
    assert!(out[0].is_request(&Method::Ack), "{out:#?}");
    assert_eq!(h.eng.call_count(), 0);
    let cdr: serde_json::Value = serde_json::from_slice(&h.persisted_under("cdr/")[0].1).unwrap();
    assert_eq!(cdr["status"], 487);
}

#[test]
fn ring_timeout_with_only_100_from_callee() {
    let mut cfg = config();
    cfg.ring_timeout = Duration::from_secs(5);
    let mut h = Harness::with_config(cfg);
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    h.callee_sends(&response(&inv.msg, 100, "Trying", None, &[], ""));
    let out = h.advance(Duration::from_secs(6));
    assert!(out.iter().any(|s| s.is_response(408)), "{out:#?}");
    assert!(
        out.iter().any(|s| s.is_request(&Method::Cancel)),
        "no CANCEL after a 100: {out:#?}"
    );
    // A callee that never answers the CANCEL: the INVITE transaction gives up
    // 64*T1 later and the call is gone.
    h.advance(Duration::from_secs(40));
    assert_eq!(h.eng.call_count(), 0);
}

#[test]
fn callee_never_answers_timer_b() {
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    let out = h.advance_ms(31_900);
    // Timer A over UDP: 500 ms doubling; byte-identical retransmissions.
    let retrans: Vec<_> = out.iter().filter(|s| s.peer.addr == sa(CALLEE)).collect();
    assert_eq!(retrans.len(), 6, "{retrans:#?}");
    assert!(retrans.iter().all(|s| s.raw == inv.raw));
    assert!(out.iter().all(|s| s.peer.addr != sa(CALLER)), "{out:#?}");
    // Timer B at 64*T1: 408 to the caller.
    let out = h.advance_ms(200);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_response(408), "{}", out[0].raw);
    assert_eq!(out[0].peer.addr, sa(CALLER));
    assert_eq!(h.eng.call_count(), 0);
    let cdr: serde_json::Value = serde_json::from_slice(&h.persisted_under("cdr/")[0].1).unwrap();
    assert_eq!(cdr["status"], 408);
    // The 408 is retransmitted until the caller ACKs it, then nothing more.
    let f = out[0].clone();
    h.advance_ms(600);
    assert_eq!(h.count_responses_to(CALLER, 408), 2);
    h.caller_sends(&caller_ack_non2xx(&f));
    let out = h.advance(Duration::from_secs(40));
    assert!(out.is_empty(), "{out:#?}");
}

#[test]
fn caller_never_acks_the_200() {
    let mut c = answered();
    let first = c.h.last_response_to(CALLER, 200).clone();
    let out = c.h.advance(Duration::from_secs(33));
    // §13.3.1.4: the 2xx is retransmitted over UDP, T1 doubling up to T2.
    let again: Vec<_> = out.iter().filter(|s| s.is_response(200)).collect();
    assert!(again.len() >= 7, "{out:#?}");
    assert!(again.iter().all(|s| s.raw == first.raw));
    // Then sipveil gives up and hangs up both legs.
    let a_bye = out
        .iter()
        .find(|s| s.is_request(&Method::Bye) && s.peer.addr == sa(CALLER))
        .expect("BYE to the caller");
    let b_bye = out
        .iter()
        .find(|s| s.is_request(&Method::Bye) && s.peer.addr == sa(CALLEE))
        .expect("BYE to the callee");
    assert_eq!(a_bye.call_id(), A_CALL_ID);
    assert_eq!(a_bye.to_tag().as_deref(), Some(A_TAG));
    assert_eq!(b_bye.call_id(), c.b.call_id);
    assert_eq!(b_bye.to_tag().as_deref(), Some(c.b_tag.as_str()));
    assert_eq!(c.h.count_requests_to(CALLEE, Method::Ack), 0);
    assert_eq!(c.h.eng.call_count(), 0);
    assert_eq!(c.h.forgotten.len(), 1);
    assert_eq!(c.h.persisted_under("cdr/").len(), 1);
    c.assert_topology_hidden();
}

#[test]
fn retransmitted_invite_is_absorbed() {
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    // Before any answer from B: the 100 again.
    let out = h.caller_sends(&caller_invite());
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_response(100));
    assert_eq!(out[0].peer.addr, sa(CALLER));
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    h.callee_sends(&response(
        &inv.msg,
        180,
        "Ringing",
        Some("b1"),
        CALLEE_EXTRA,
        "",
    ));
    let ringing = h.last_response_to(CALLER, 180).clone();
    // After the 180: the 180 again, byte for byte; no second INVITE on B.
    let out = h.caller_sends(&caller_invite());
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].raw, ringing.raw);
    assert_eq!(h.count_requests_to(CALLEE, Method::Invite), 1);
    assert_eq!(h.eng.call_count(), 1);
}

#[test]
fn callee_200_retransmission_gets_the_same_ack() {
    let mut c = established();
    let ack = c.h.last_request_to(CALLEE, Method::Ack).clone();
    let ok = response(
        &c.b_invite.msg,
        200,
        "OK",
        Some(&c.b_tag),
        CALLEE_EXTRA,
        ANSWER,
    );
    let out = c.h.callee_sends(&ok);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].peer.addr, sa(CALLEE));
    assert_eq!(out[0].raw, ack.raw);
    // Nothing toward the caller: its 200 was acknowledged already.
    assert_eq!(c.h.count_responses_to(CALLER, 200), 1);
    // Still so after the INVITE client transaction is gone (Timer M).
    c.h.advance(Duration::from_secs(40));
    let out = c.h.callee_sends(&ok);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].raw, ack.raw);
}

// ----- forking -----

#[test]
fn forked_early_dialogs_map_to_distinct_tags() {
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    let x_extra = &["Contact: <sip:bob-x@127.0.0.2:5090>"];
    let y_extra = &["Contact: <sip:bob-y@127.0.0.2:5090>"];
    h.callee_sends(&response(&inv.msg, 180, "Ringing", Some("fx"), x_extra, ""));
    h.callee_sends(&response(&inv.msg, 180, "Ringing", Some("fy"), y_extra, ""));
    let ringing: Vec<Sent> = h
        .sent_to(CALLER)
        .into_iter()
        .filter(|s| s.is_response(180))
        .cloned()
        .collect();
    assert_eq!(ringing.len(), 2);
    let tx = ringing[0].to_tag().unwrap();
    let ty = ringing[1].to_tag().unwrap();
    assert_ne!(tx, ty);
    for t in [&tx, &ty] {
        assert_ne!(t, "fx");
        assert_ne!(t, "fy");
    }
    for r in &ringing {
        r.assert_hides(&["fx", "fy", "bob-x", "bob-y", "127.0.0.2", "5090"]);
    }

    // Y answers: the caller's 200 carries Y's mapped tag.
    h.callee_sends(&response(&inv.msg, 200, "OK", Some("fy"), y_extra, ANSWER));
    let ok = h.last_response_to(CALLER, 200).clone();
    assert_eq!(ok.to_tag().as_deref(), Some(ty.as_str()));
    let ack = with_length(
        format!(
            "ACK sip:127.0.0.10:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKforkack;rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag={A_TAG}\r\n\
             To: {}\r\n\
             Call-ID: {A_CALL_ID}\r\n\
             CSeq: 1 ACK\r\n",
            ok.h(HeaderName::To)
        ),
        "",
    );
    let out = h.caller_sends(&ack);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].to_tag().as_deref(), Some("fy"));
    assert_eq!(out[0].msg.request_uri(), Some("sip:bob-y@127.0.0.2:5090"));

    // X answers too, late: ACK and BYE it on B; the caller hears nothing of it.
    let out = h.callee_sends(&response(&inv.msg, 200, "OK", Some("fx"), x_extra, ANSWER));
    let ack = out
        .iter()
        .find(|s| s.is_request(&Method::Ack))
        .unwrap_or_else(|| panic!("no ACK for the late fork: {out:#?}"));
    let bye = out
        .iter()
        .find(|s| s.is_request(&Method::Bye))
        .unwrap_or_else(|| panic!("no BYE for the late fork: {out:#?}"));
    for m in [ack, bye] {
        assert_eq!(m.peer.addr, sa(CALLEE));
        assert_eq!(m.to_tag().as_deref(), Some("fx"));
        assert_eq!(m.call_id(), inv.call_id());
        assert_eq!(m.msg.request_uri(), Some("sip:bob-x@127.0.0.2:5090"));
    }
    assert_eq!(ack.cseq(), (inv.cseq().0, Method::Ack));
    assert!(out.iter().all(|s| s.peer.addr == sa(CALLEE)), "{out:#?}");
    assert_eq!(h.count_responses_to(CALLER, 200), 1);
    assert_eq!(h.eng.call_count(), 1);

    // The call with Y goes on: BYE from the caller reaches Y only.
    let bye = with_length(
        format!(
            "BYE sip:127.0.0.10:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKforkbye;rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag={A_TAG}\r\n\
             To: {}\r\n\
             Call-ID: {A_CALL_ID}\r\n\
             CSeq: 2 BYE\r\n",
            ok.h(HeaderName::To)
        ),
        "",
    );
    let out = h.caller_sends(&bye);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].to_tag().as_deref(), Some("fy"));
}

// ----- restart -----

#[test]
fn restored_call_routes_bye() {
    let mut c = established();
    let (_, value) =
        c.h.persisted_under("call/")
            .last()
            .cloned()
            .cloned()
            .unwrap();
    let rec: CallRecord = serde_json::from_slice(&value).unwrap();

    // A new process: same configuration, the record from the store.
    let mut h = Harness::new();
    h.eng.restore(vec![rec]);
    assert_eq!(h.eng.call_count(), 1);
    let bye = c.a.request("BYE", &[], "");
    let out = h.caller_sends(&bye);
    assert_eq!(out.len(), 1, "{out:#?}");
    let b_bye = &out[0];
    assert!(b_bye.is_request(&Method::Bye));
    assert_eq!(b_bye.peer.addr, sa(CALLEE));
    assert_eq!(b_bye.call_id(), c.b.call_id);
    assert_eq!(b_bye.tag_in_from(), c.b_invite.tag_in_from());
    assert_eq!(b_bye.to_tag().as_deref(), Some(c.b_tag.as_str()));
    assert_eq!(b_bye.cseq(), (c.b_invite.cseq().0 + 1, Method::Bye));
    assert_eq!(b_bye.msg.request_uri(), Some("sip:bob@127.0.0.2:5090"));
    let out = h.callee_sends(&response(&b_bye.msg, 200, "OK", None, &[], ""));
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_response(200));
    assert_eq!(out[0].peer.addr, sa(CALLER));
    assert_eq!(h.forgotten.len(), 1);
    assert_eq!(h.persisted_under("cdr/").len(), 1);
    c.h = h;
    c.assert_topology_hidden();
}

#[test]
fn restored_call_routes_reinvite_from_callee() {
    let mut c = established();
    let (_, value) =
        c.h.persisted_under("call/")
            .last()
            .cloned()
            .cloned()
            .unwrap();
    let rec: CallRecord = serde_json::from_slice(&value).unwrap();
    let mut h = Harness::new();
    h.eng.restore(vec![rec]);
    let reinv = c.b.request("INVITE", &[], ANSWER);
    h.callee_sends(&reinv);
    let a_re = h.last_request_to(CALLER, Method::Invite).clone();
    assert_eq!(a_re.call_id(), A_CALL_ID);
    assert_eq!(a_re.to_tag().as_deref(), Some(A_TAG));
    assert_eq!(a_re.contact_uri(), "sip:127.0.0.10:5060");
}

// ----- glare -----

#[test]
fn glare_491_is_passed_to_the_originator() {
    let mut c = established();
    let reinv = c.a.request("INVITE", &[], OFFER);
    let reinv_branch = c.a.branches.last().unwrap().clone();
    c.h.caller_sends(&reinv);
    let b_re = c.h.last_request_to(CALLEE, Method::Invite).clone();
    let out =
        c.h.callee_sends(&response(&b_re.msg, 491, "Request Pending", None, &[], ""));
    // The transaction layer ACKs the 491 on B; the caller gets the 491.
    let ack = out.iter().find(|s| s.peer.addr == sa(CALLEE)).unwrap();
    assert!(ack.is_request(&Method::Ack));
    assert_eq!(ack.branch(), b_re.branch());
    let f = out.iter().find(|s| s.peer.addr == sa(CALLER)).unwrap();
    assert!(
        f.raw.starts_with("SIP/2.0 491 Request Pending\r\n"),
        "{}",
        f.raw
    );
    assert_eq!(f.cseq(), (2, Method::Invite));
    assert_eq!(f.call_id(), A_CALL_ID);
    // The caller's ACK for the 491 (the re-INVITE's branch, §17.1.1.3) is
    // absorbed; the call goes on.
    let a_ack = c.a.request_cseq("ACK", 2, &[], "");
    let a_ack = a_ack.replace(c.a.branches.last().unwrap(), &reinv_branch);
    let out = c.h.caller_sends(&a_ack);
    assert!(out.is_empty(), "{out:#?}");
    let bye = c.a.request("BYE", &[], "");
    c.h.caller_sends(&bye);
    let b_bye = c.h.last_request_to(CALLEE, Method::Bye);
    assert_eq!(b_bye.cseq(), (b_re.cseq().0 + 1, Method::Bye));
    c.assert_topology_hidden();
}

// ----- more flows -----

#[test]
fn callee_busy_486_is_relayed_with_its_reason() {
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    let out = h.callee_sends(&response(
        &inv.msg,
        486,
        "Busy Here Today",
        Some("b1"),
        &["Retry-After: 30", "Server: callee-ua/1.0"],
        "",
    ));
    let ack = out.iter().find(|s| s.peer.addr == sa(CALLEE)).unwrap();
    assert!(ack.is_request(&Method::Ack));
    assert_eq!(ack.branch(), inv.branch());
    let busy = h.last_to(CALLER).clone();
    assert!(
        busy.raw.starts_with("SIP/2.0 486 Busy Here Today\r\n"),
        "{}",
        busy.raw
    );
    assert_eq!(busy.h(HeaderName::RetryAfter), "30");
    assert!(busy.to_tag().is_some_and(|t| t != "b1"));
    busy.assert_hides(&[inv.call_id(), "b1", "callee-ua", "127.0.0.2", "127.0.0.20"]);
    assert!(busy.msg.header(HeaderName::Contact).is_none());
    let out = h.caller_sends(&caller_ack_non2xx(&busy));
    assert!(out.is_empty(), "{out:#?}");
    assert_eq!(h.eng.call_count(), 0);
    let cdr: serde_json::Value = serde_json::from_slice(&h.persisted_under("cdr/")[0].1).unwrap();
    assert_eq!(cdr["status"], 486);
    assert!(h.persisted_under("call/").is_empty());
}

#[test]
fn cancel_for_no_invite_gets_481() {
    let mut h = Harness::new();
    let out = h.caller_sends(&caller_cancel());
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_response(481), "{}", out[0].raw);
    assert_eq!(out[0].cseq(), (1, Method::Cancel));
    assert!(h.sent_to(CALLEE).is_empty());
}

#[test]
fn caller_over_tcp() {
    let mut h = Harness::new();
    let tcp = Peer {
        addr: sa(CALLER),
        transport: Transport::Tcp,
        iface: 0,
        conn: Some(7),
    };
    let inv = caller_invite().replace("SIP/2.0/UDP 127.0.0.1:5070", "SIP/2.0/TCP 127.0.0.1:5070");
    let out = h.deliver(inv.as_bytes(), tcp.clone());
    assert!(out[0].is_response(100));
    assert_eq!(out[0].peer, tcp);
    let b_inv = h.last_request_to(CALLEE, Method::Invite).clone();
    assert_eq!(b_inv.peer.transport, Transport::Udp);
    assert!(b_inv
        .h(HeaderName::Via)
        .starts_with("SIP/2.0/UDP 127.0.0.20:5060;"));
    h.callee_sends(&response(
        &b_inv.msg,
        200,
        "OK",
        Some("b1"),
        CALLEE_EXTRA,
        ANSWER,
    ));
    let ok = h.last_response_to(CALLER, 200).clone();
    assert_eq!(ok.peer, tcp);
    assert_eq!(ok.contact_uri(), "sip:127.0.0.10:5060;transport=tcp");
    let ack = with_length(
        format!(
            "ACK sip:127.0.0.10:5060;transport=tcp SIP/2.0\r\n\
             Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKtcpack\r\n\
             Max-Forwards: 70\r\n\
             From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag={A_TAG}\r\n\
             To: {}\r\n\
             Call-ID: {A_CALL_ID}\r\n\
             CSeq: 1 ACK\r\n",
            ok.h(HeaderName::To)
        ),
        "",
    );
    let out = h.deliver(ack.as_bytes(), tcp.clone());
    assert!(out[0].is_request(&Method::Ack), "{out:#?}");
    // The callee hangs up: the BYE goes to the caller over TCP, from the TCP
    // listener's address.
    let b_tag = "b1";
    let mut b = Ua {
        call_id: b_inv.call_id().to_string(),
        local: format!("{};tag={b_tag}", b_inv.h(HeaderName::To)),
        remote: b_inv.h(HeaderName::From).to_string(),
        target: b_inv.contact_uri(),
        cseq: 100,
        sent_by: CALLEE,
        contact: "<sip:bob@127.0.0.2:5090>",
        branches: Vec::new(),
    };
    let out = h.callee_sends(&b.request("BYE", &[], ""));
    assert_eq!(out.len(), 1, "{out:#?}");
    let a_bye = &out[0];
    assert_eq!(a_bye.peer.addr, sa(CALLER));
    assert_eq!(a_bye.peer.transport, Transport::Tcp);
    assert_eq!(a_bye.peer.iface, 0);
    assert!(a_bye
        .h(HeaderName::Via)
        .starts_with("SIP/2.0/TCP 127.0.0.10:5060;"));
}

#[test]
fn reinvite_200_retransmission_gets_the_same_ack() {
    let mut c = established();
    let reinv = c.a.request("INVITE", &[], OFFER);
    c.h.caller_sends(&reinv);
    let b_re = c.h.last_request_to(CALLEE, Method::Invite).clone();
    let ok = response(
        &b_re.msg,
        200,
        "OK",
        None,
        &["Contact: <sip:bob@127.0.0.2:5090>"],
        ANSWER,
    );
    c.h.callee_sends(&ok);
    let ack = c.a.request_cseq("ACK", 2, &[], "");
    c.h.caller_sends(&ack);
    let b_ack = c.h.last_request_to(CALLEE, Method::Ack).clone();
    assert_eq!(b_ack.cseq(), (b_re.cseq().0, Method::Ack));
    let out = c.h.callee_sends(&ok);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].raw, b_ack.raw);
    assert_eq!(c.h.count_responses_to(CALLER, 200), 2);
}

#[test]
fn restored_call_keeps_cseq_after_reinvite() {
    let mut c = established();
    let base = c.b_invite.cseq().0;
    let reinv = c.a.request("INVITE", &[], OFFER);
    c.h.caller_sends(&reinv);
    let b_re = c.h.last_request_to(CALLEE, Method::Invite).clone();
    c.h.callee_sends(&response(
        &b_re.msg,
        200,
        "OK",
        None,
        &["Contact: <sip:bob@127.0.0.2:5090>"],
        ANSWER,
    ));
    let ack = c.a.request_cseq("ACK", 2, &[], "");
    c.h.caller_sends(&ack);
    let (_, value) =
        c.h.persisted_under("call/")
            .last()
            .cloned()
            .cloned()
            .unwrap();
    let rec: CallRecord = serde_json::from_slice(&value).unwrap();
    let mut h = Harness::new();
    h.eng.restore(vec![rec]);
    let bye = c.a.request("BYE", &[], "");
    let out = h.caller_sends(&bye);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].cseq(), (base + 2, Method::Bye));
    assert_eq!(out[0].call_id(), c.b.call_id);
}

// ----- nothing outlives its call -----

impl Harness {
    /// Lets every timer run out (ring timeout included) and checks that the
    /// engine's tables are empty.
    fn assert_no_state_left(&mut self) {
        self.advance(Duration::from_secs(200));
        assert_eq!(self.eng.call_count(), 0);
        assert_eq!(
            self.eng.table_sizes(),
            [0; 6],
            "[calls, tags, server_calls, clients, server_reqs, ring_timers]"
        );
    }
}

#[test]
fn ended_calls_leave_no_state() {
    // Caller hangs up.
    let mut c = established();
    let bye = c.a.request("BYE", &[], "");
    c.h.caller_sends(&bye);
    let b_bye = c.h.last_request_to(CALLEE, Method::Bye).clone();
    c.h.callee_sends(&response(&b_bye.msg, 200, "OK", None, &[], ""));
    c.h.assert_no_state_left();

    // Callee hangs up after a re-INVITE from each side and an INFO.
    let mut c = established();
    let reinv = c.a.request("INVITE", &[], OFFER);
    c.h.caller_sends(&reinv);
    let b_re = c.h.last_request_to(CALLEE, Method::Invite).clone();
    c.h.callee_sends(&response(&b_re.msg, 200, "OK", None, CALLEE_EXTRA, ANSWER));
    let ack = c.a.request_cseq("ACK", 2, &[], "");
    c.h.caller_sends(&ack);
    let reinv = c.b.request("INVITE", &[], ANSWER);
    c.h.callee_sends(&reinv);
    let a_re = c.h.last_request_to(CALLER, Method::Invite).clone();
    c.h.caller_sends(&response(&a_re.msg, 200, "OK", None, &[], OFFER));
    let ack = c.b.request_cseq("ACK", c.b.cseq, &[], "");
    c.h.callee_sends(&ack);
    let info = c.b.request("INFO", &[], "");
    c.h.callee_sends(&info);
    let a_info = c.h.last_request_to(CALLER, Method::Info).clone();
    c.h.caller_sends(&response(&a_info.msg, 200, "OK", None, &[], ""));
    let bye = c.b.request("BYE", &[], "");
    c.h.callee_sends(&bye);
    let a_bye = c.h.last_request_to(CALLER, Method::Bye).clone();
    c.h.caller_sends(&response(&a_bye.msg, 200, "OK", None, &[], ""));
    c.h.assert_no_state_left();

    // The caller never ACKs.
    let mut c = answered();
    c.h.advance(Duration::from_secs(40));
    for to in [CALLER, CALLEE] {
        let bye = c.h.last_request_to(to, Method::Bye).clone();
        c.h.deliver(
            response(&bye.msg, 200, "OK", None, &[], "").as_bytes(),
            if to == CALLER {
                caller_peer()
            } else {
                callee_peer()
            },
        );
    }
    c.h.assert_no_state_left();
}

#[test]
fn failed_setups_leave_no_state() {
    // Cancelled while ringing.
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    h.callee_sends(&response(
        &inv.msg,
        180,
        "Ringing",
        Some("b1"),
        CALLEE_EXTRA,
        "",
    ));
    h.caller_sends(&caller_cancel());
    let cancel = h.last_request_to(CALLEE, Method::Cancel).clone();
    h.callee_sends(&response(&cancel.msg, 200, "OK", None, &[], ""));
    h.callee_sends(&response(
        &inv.msg,
        487,
        "Request Terminated",
        Some("b1"),
        &[],
        "",
    ));
    let f = h.last_response_to(CALLER, 487).clone();
    h.caller_sends(&caller_ack_non2xx(&f));
    h.assert_no_state_left();

    // Busy.
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    h.callee_sends(&response(&inv.msg, 486, "Busy Here", Some("b1"), &[], ""));
    let f = h.last_response_to(CALLER, 486).clone();
    h.caller_sends(&caller_ack_non2xx(&f));
    h.assert_no_state_left();

    // Callee never answers (timer B); the caller ACKs the 408.
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    h.advance(Duration::from_secs(33));
    let f = h.last_response_to(CALLER, 408).clone();
    h.caller_sends(&caller_ack_non2xx(&f));
    h.assert_no_state_left();

    // Forked: one fork answers, the other's late 2xx is ACKed and hung up.
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    h.callee_sends(&response(
        &inv.msg,
        180,
        "Ringing",
        Some("fx"),
        CALLEE_EXTRA,
        "",
    ));
    h.callee_sends(&response(
        &inv.msg,
        180,
        "Ringing",
        Some("fy"),
        CALLEE_EXTRA,
        "",
    ));
    h.callee_sends(&response(
        &inv.msg,
        200,
        "OK",
        Some("fy"),
        CALLEE_EXTRA,
        ANSWER,
    ));
    let ok = h.last_response_to(CALLER, 200).clone();
    let mut a = Ua {
        call_id: A_CALL_ID.into(),
        local: format!("\"Alice\" <sip:alice@127.0.0.1:5070>;tag={A_TAG}"),
        remote: ok.h(HeaderName::To).to_string(),
        target: ok.contact_uri(),
        cseq: 1,
        sent_by: CALLER,
        contact: "<sip:alice@127.0.0.1:5070>",
        branches: Vec::new(),
    };
    h.caller_sends(&a.request_cseq("ACK", 1, &[], ""));
    h.callee_sends(&response(
        &inv.msg,
        200,
        "OK",
        Some("fx"),
        CALLEE_EXTRA,
        ANSWER,
    ));
    let late_bye = h.last_request_to(CALLEE, Method::Bye).clone();
    h.callee_sends(&response(&late_bye.msg, 200, "OK", None, &[], ""));
    h.caller_sends(&a.request("BYE", &[], ""));
    let bye = h.last_request_to(CALLEE, Method::Bye).clone();
    assert_eq!(bye.to_tag().as_deref(), Some("fy"));
    h.callee_sends(&response(&bye.msg, 200, "OK", None, &[], ""));
    h.assert_no_state_left();

    // Out-of-dialog answers leave nothing either.
    let mut h = Harness::new();
    h.caller_sends(&caller_cancel());
    h.caller_sends(&caller_invite().replace("Max-Forwards: 70", "Max-Forwards: 0"));
    h.assert_no_state_left();
}

// ----- early dialogs, out-of-dialog relays, offer in the 200 -----

/// The caller's view of an early dialog from a provisional it received.
fn caller_ua(resp: &Sent) -> Ua {
    Ua {
        call_id: A_CALL_ID.into(),
        local: format!("\"Alice\" <sip:alice@127.0.0.1:5070>;tag={A_TAG}"),
        remote: resp.h(HeaderName::To).to_string(),
        target: resp.contact_uri(),
        cseq: 1,
        sent_by: CALLER,
        contact: "<sip:alice@127.0.0.1:5070>",
        branches: Vec::new(),
    }
}

#[test]
fn reliable_183_and_prack() {
    let mut h = Harness::new();
    h.caller_sends(&caller_invite_with(
        &["Supported: 100rel, timer, foo"],
        OFFER,
    ));
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    assert_eq!(inv.h(HeaderName::Supported), "100rel, timer");
    let mut extra = CALLEE_EXTRA.to_vec();
    extra.extend(["Require: 100rel", "RSeq: 1"]);
    h.callee_sends(&response(
        &inv.msg,
        183,
        "Session Progress",
        Some("b1"),
        &extra,
        ANSWER,
    ));
    let sp = h.last_response_to(CALLER, 183).clone();
    assert_eq!(sp.h(HeaderName::Require), "100rel");
    assert_eq!(sp.h(HeaderName::RSeq), "1");
    assert_eq!(sp.body(), ANSWER.as_bytes());
    sp.assert_hides(&["b1", inv.call_id(), "127.0.0.2", "127.0.0.20"]);

    let mut a = caller_ua(&sp);
    let prack = a.request("PRACK", &["RAck: 1 1 INVITE"], "");
    let out = h.caller_sends(&prack);
    assert_eq!(out.len(), 1, "{out:#?}");
    let b_prack = &out[0];
    assert!(b_prack.is_request(&Method::Prack));
    assert_eq!(b_prack.peer.addr, sa(CALLEE));
    assert_eq!(b_prack.call_id(), inv.call_id());
    assert_eq!(b_prack.to_tag().as_deref(), Some("b1"));
    assert_eq!(b_prack.msg.request_uri(), Some("sip:bob@127.0.0.2:5090"));
    assert_eq!(
        b_prack.h(HeaderName::RAck),
        format!("1 {} INVITE", inv.cseq().0)
    );
    assert!(b_prack.cseq().0 > inv.cseq().0);
    let out = h.callee_sends(&response(&b_prack.msg, 200, "OK", None, &[], ""));
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].cseq(), (2, Method::Prack));
    assert_eq!(out[0].peer.addr, sa(CALLER));

    // The answer; the ACK on B keeps the INVITE's CSeq.
    h.callee_sends(&response(&inv.msg, 200, "OK", Some("b1"), CALLEE_EXTRA, ""));
    let ok = h.last_response_to(CALLER, 200).clone();
    assert_eq!(ok.to_tag(), sp.to_tag());
    let ack = a.request_cseq("ACK", 1, &[], "");
    let out = h.caller_sends(&ack);
    assert_eq!(out[0].cseq(), (inv.cseq().0, Method::Ack), "{out:#?}");
    let bye = a.request("BYE", &[], "");
    let out = h.caller_sends(&bye);
    assert_eq!(
        out[0].cseq(),
        (b_prack.cseq().0 + 1, Method::Bye),
        "{out:#?}"
    );
}

#[test]
fn caller_bye_in_early_dialog_ends_the_invite() {
    let mut h = Harness::new();
    h.caller_sends(&caller_invite());
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    h.callee_sends(&response(
        &inv.msg,
        180,
        "Ringing",
        Some("b1"),
        CALLEE_EXTRA,
        "",
    ));
    let ringing = h.last_response_to(CALLER, 180).clone();
    let mut a = caller_ua(&ringing);
    let out = h.caller_sends(&a.request("BYE", &[], ""));
    // The callee's early dialog is ended (BYE or CANCEL), and the caller's
    // INVITE gets its final (RFC 3261 §15.1.2: 487).
    assert!(
        out.iter().any(|s| s.peer.addr == sa(CALLEE)
            && (s.is_request(&Method::Bye) || s.is_request(&Method::Cancel))),
        "{out:#?}"
    );
    let f = final_to_caller(&h).clone();
    assert_eq!(f.cseq(), (1, Method::Invite), "{}", f.raw);
    assert!(f.is_response(487), "{}", f.raw);
    // The callee answers whatever it got.
    for s in h.sent_to(CALLEE).into_iter().cloned().collect::<Vec<_>>() {
        if s.is_request(&Method::Bye) || s.is_request(&Method::Cancel) {
            h.callee_sends(&response(&s.msg, 200, "OK", None, &[], ""));
        }
    }
    h.callee_sends(&response(
        &inv.msg,
        487,
        "Request Terminated",
        Some("b1"),
        &[],
        "",
    ));
    h.caller_sends(&caller_ack_non2xx(&f));
    let cdr: serde_json::Value = serde_json::from_slice(&h.persisted_under("cdr/")[0].1).unwrap();
    assert_eq!(cdr["status"], 487);
    h.assert_no_state_left();
}

#[test]
fn out_of_dialog_options_and_message_are_relayed() {
    let mut h = Harness::new();
    for method in ["OPTIONS", "MESSAGE"] {
        let body = if method == "MESSAGE" { "hello" } else { "" };
        let req = with_length(
            format!(
                "{method} sip:bob@127.0.0.10:5060 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{method};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:alice@127.0.0.1:5070>;tag={A_TAG}\r\n\
                 To: <sip:bob@127.0.0.10:5060>\r\n\
                 Call-ID: {A_CALL_ID}\r\n\
                 Contact: <sip:alice@127.0.0.1:5070>\r\n\
                 CSeq: 7 {method}\r\n"
            ),
            body,
        );
        let out = h.caller_sends(&req);
        assert_eq!(out.len(), 1, "{out:#?}");
        let b = &out[0];
        assert_eq!(b.peer.addr, sa(CALLEE));
        assert_eq!(b.msg.method().map(Method::as_str), Some(method));
        assert_eq!(b.msg.request_uri(), Some("sip:bob@127.0.0.2:5090"));
        assert_eq!(b.h(HeaderName::MaxForwards), "69");
        assert_eq!(b.body(), body.as_bytes());
        b.assert_hides(&[A_CALL_ID, A_TAG, "127.0.0.1", "127.0.0.10", "5070"]);
        let b = b.clone();
        let out = h.callee_sends(&response(
            &b.msg,
            200,
            "OK",
            Some("b1"),
            &[
                "Contact: <sip:bob@127.0.0.2:5090>",
                "Accept: application/sdp",
            ],
            "",
        ));
        assert_eq!(out.len(), 1, "{out:#?}");
        let ok = &out[0];
        assert_eq!(ok.peer.addr, sa(CALLER));
        assert!(ok.is_response(200));
        assert_eq!(ok.cseq().0, 7);
        assert!(ok.to_tag().is_some_and(|t| t != "b1"));
        ok.assert_hides(&[b.call_id(), "b1", "127.0.0.2", "127.0.0.20", "5090"]);
    }
    h.assert_no_state_left();
}

#[test]
fn reinvite_without_sdp_carries_the_answer_in_the_ack() {
    let mut c = established();
    let reinv = c.a.request("INVITE", &[], "");
    c.h.caller_sends(&reinv);
    let b_re = c.h.last_request_to(CALLEE, Method::Invite).clone();
    assert!(b_re.body().is_empty());
    assert!(b_re.msg.header(HeaderName::ContentType).is_none());
    c.h.callee_sends(&response(
        &b_re.msg,
        200,
        "OK",
        None,
        &["Contact: <sip:bob@127.0.0.2:5090>"],
        ANSWER,
    ));
    let ok = c.h.last_response_to(CALLER, 200).clone();
    assert_eq!(ok.body(), ANSWER.as_bytes());
    let ack = c.a.request_cseq("ACK", 2, &[], OFFER);
    let out = c.h.caller_sends(&ack);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_request(&Method::Ack));
    assert_eq!(out[0].body(), OFFER.as_bytes());
    assert_eq!(out[0].h(HeaderName::ContentType), "application/sdp");
    c.assert_topology_hidden();
}

#[test]
fn egress_without_the_routes_transport_gets_503() {
    let mut cfg = config();
    if let Some(hop) = cfg.routes[0].next_hop.as_mut() {
        hop.transport = Transport::Tcp;
    }
    let mut h = Harness::with_config(cfg);
    h.caller_sends(&caller_invite());
    assert!(final_to_caller(&h).is_response(503));
    assert!(h.sent_to(CALLEE).is_empty());
}

#[test]
fn reinvite_unanswered_by_callee_gets_408_and_the_call_stays() {
    let mut c = established();
    let reinv = c.a.request("INVITE", &[], OFFER);
    c.h.caller_sends(&reinv);
    let b_re = c.h.last_request_to(CALLEE, Method::Invite).clone();
    let out = c.h.advance(Duration::from_secs(33));
    assert!(
        out.iter()
            .filter(|s| s.peer.addr == sa(CALLEE))
            .all(|s| s.raw == b_re.raw),
        "{out:#?}"
    );
    let f = final_to_caller(&c.h).clone();
    assert!(f.is_response(408), "{}", f.raw);
    assert_eq!(f.cseq(), (2, Method::Invite));
    assert_eq!(c.h.eng.call_count(), 1);
    // The call still carries a BYE, with B's CSeq past the lost re-INVITE.
    let bye = c.a.request("BYE", &[], "");
    c.h.caller_sends(&bye);
    let b_bye = c.h.last_request_to(CALLEE, Method::Bye);
    assert_eq!(b_bye.cseq(), (b_re.cseq().0 + 1, Method::Bye));
}

// ----- identity at the boundary -----

#[test]
fn forged_identity_from_untrusted_caller_never_crosses() {
    let mut h = Harness::new();
    h.caller_sends(&caller_invite_with(
        &[
            "P-Asserted-Identity: <sip:ceo@example.test>",
            "Remote-Party-ID: <sip:ceo@example.test>;party=calling",
            "P-Preferred-Identity: <sip:ceo@example.test>",
        ],
        OFFER,
    ));
    let inv = h.last_request_to(CALLEE, Method::Invite);
    assert!(inv.msg.header(HeaderName::PAssertedIdentity).is_none());
    assert!(inv.msg.header(HeaderName::RemotePartyId).is_none());
    assert!(inv.msg.header(HeaderName::PPreferredIdentity).is_none());
}

#[test]
fn privacy_toward_untrusted_callee_anonymizes_the_dialog() {
    // The route goes from the untrusted access side to... make the egress untrusted.
    let mut cfg = config();
    cfg.ifaces[1].trusted = false;
    cfg.ifaces[0].trusted = true;
    let mut h = Harness::with_config(cfg);
    h.caller_sends(&caller_invite_with(
        &[
            "P-Asserted-Identity: <sip:+15551234@example.test>",
            "Privacy: id",
        ],
        OFFER,
    ));
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    assert!(inv.msg.header(HeaderName::PAssertedIdentity).is_none());
    assert!(inv.msg.header(HeaderName::Privacy).is_none());
    let from = inv.msg.from_header().unwrap();
    assert_eq!(from.uri.raw, "sip:anonymous@anonymous.invalid");
    assert_eq!(from.display_name().unwrap(), "Anonymous");
    let head = inv.raw.split("\r\n\r\n").next().unwrap_or("");
    assert!(!head.contains("alice"), "{head}");
}

#[test]
fn critical_privacy_that_cannot_be_met_gets_500() {
    let mut cfg = config();
    cfg.ifaces[1].trusted = false;
    let mut h = Harness::with_config(cfg);
    let out = h.caller_sends(&caller_invite_with(&["Privacy: session;critical"], OFFER));
    assert!(out.iter().any(|s| s.is_response(500)), "{out:#?}");
    assert_eq!(h.count_requests_to(CALLEE, Method::Invite), 0);
}

/// An offer of PCMU, PCMA and telephone-event.
const OFFER_TWO_CODECS: &str = "v=0\r\no=alice 1 1 IN IP4 192.0.2.55\r\ns=-\r\nc=IN IP4 192.0.2.55\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

#[test]
fn codec_policy_of_the_egress_interface_filters_and_orders_offers() {
    let mut cfg = config();
    cfg.ifaces[1].media.codecs = crate::sdp::CodecPolicy {
        allow: vec!["PCMA".into(), "PCMU".into()],
        deny: vec!["PCMU".into()],
        prefer: vec![],
    };
    let mut h = Harness::with_config(cfg);
    h.caller_sends(&caller_invite_with(&[], OFFER_TWO_CODECS));
    let inv = h.last_request_to(CALLEE, Method::Invite);
    let body = String::from_utf8_lossy(inv.body()).to_string();
    assert!(body.contains("m=audio 40000 RTP/AVP 8 101\r\n"), "{body}");
    assert!(!body.contains("PCMU"), "{body}");
    assert!(body.contains("telephone-event"), "{body}");
}

#[test]
fn codec_policy_of_the_ingress_interface_applies_too_and_empty_offers_get_488() {
    let mut cfg = config();
    cfg.ifaces[0].media.codecs = crate::sdp::CodecPolicy {
        allow: vec!["G722".into()],
        deny: vec![],
        prefer: vec![],
    };
    let mut h = Harness::with_config(cfg);
    h.caller_sends(&caller_invite_with(&[], OFFER_TWO_CODECS));
    let f = final_to_caller(&h);
    assert!(f.is_response(488), "{}", f.raw);
    let warning = f.msg.header(HeaderName::Warning).unwrap_or_default();
    assert!(warning.starts_with("399 "), "{}", f.raw);
    assert!(warning.contains("no acceptable codec"), "{}", f.raw);
    assert!(h.sent_to(CALLEE).is_empty());
    assert_eq!(h.eng.call_count(), 0);
}

#[test]
fn codec_policy_leaves_answers_alone() {
    let mut cfg = config();
    // The caller's side prefers PCMA; the callee's answer is not an offer.
    cfg.ifaces[0].media.codecs = crate::sdp::CodecPolicy {
        allow: vec![],
        deny: vec![],
        prefer: vec!["PCMA".into()],
    };
    let mut h = Harness::with_config(cfg);
    h.caller_sends(&caller_invite_with(&[], OFFER_TWO_CODECS));
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    let body = String::from_utf8_lossy(inv.body()).to_string();
    assert!(body.contains("m=audio 40000 RTP/AVP 8 0 101\r\n"), "{body}");
    let answer = "v=0\r\no=bob 2 2 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 50000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    h.callee_sends(&response(
        &inv.msg,
        200,
        "OK",
        Some("b-tag-1"),
        &["Contact: <sip:bob@127.0.0.2:5090>"],
        answer,
    ));
    let ok = h.last_response_to(CALLER, 200);
    let body = String::from_utf8_lossy(ok.body()).to_string();
    assert!(body.contains("m=audio 50000 RTP/AVP 0 101\r\n"), "{body}");
}

#[test]
fn rtpengine_not_answering_gets_503_with_warning_and_retry_after() {
    // A port nobody answers on (bound, then dropped).
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut h = Harness::new();
    h.eng.enable_rtpengine(
        crate::media::rtpengine::NgClient::new(dead, Duration::from_millis(50), 1),
        &crate::media::MediaConfig::default(),
    );
    h.caller_sends(&caller_invite());
    let f = final_to_caller(&h);
    assert!(f.is_response(503), "{}", f.raw);
    assert!(f.msg.header(HeaderName::RetryAfter).is_some(), "{}", f.raw);
    let warning = f.msg.header(HeaderName::Warning).unwrap_or_default();
    assert!(warning.contains("rtpengine"), "{}", f.raw);
    assert!(h.sent_to(CALLEE).is_empty());
    assert_eq!(h.eng.call_count(), 0);
}

// ----- media timeout -----

/// The runtime sleeps until `next_deadline`, so the once-a-second media check
/// must be a deadline of its own: an established call's next transaction timer
/// can be half a minute away, and a silent call would outlive `media_timeout`
/// by that much when no SIP arrives (seen in tests/media_timeout.rs).
#[test]
fn media_timeout_check_is_a_deadline_of_its_own() {
    use crate::media::{MediaConfig, MediaRelay};
    let mut c = established();
    let now = c.h.now;
    let second = Duration::from_secs(1);
    let far = c.h.eng.next_deadline();
    assert!(
        far.is_none_or(|t| t > now + second),
        "the call's own timers are far off: {far:?}"
    );
    let relay = MediaRelay::new(MediaConfig::default()).expect("relay");
    c.h.eng.enable_media(relay, Some(Duration::from_secs(2)));
    assert!(
        c.h.eng
            .next_deadline()
            .is_some_and(|t| t <= Instant::now().max(now)),
        "the first media check is due at once"
    );
    c.h.eng.poll(now);
    assert_eq!(c.h.eng.next_deadline(), Some(now + second));

    // media_timeout = 0: no check, no extra deadline.
    let mut c = established();
    let far = c.h.eng.next_deadline();
    let relay = MediaRelay::new(MediaConfig::default()).expect("relay");
    c.h.eng.enable_media(relay, None);
    assert_eq!(c.h.eng.next_deadline(), far);
}

// ----- policy hooks around the crossing -----

fn with_policy(cfg: EngineConfig, text: &str) -> Harness {
    let mut h = Harness::with_config(cfg);
    let names = vec!["access".to_string(), "core".to_string()];
    let p = crate::policy::PolicySet::from_sources(&[("t.toml", text)], &names).unwrap();
    h.eng.set_policy(std::sync::Arc::new(p));
    h
}

/// An `in` rule rewriting From changes what crosses, not the caller's own
/// dialog: the answers it gets echo its From as sent (RFC 3261 §8.2.6.2).
#[test]
fn in_rule_on_from_leaves_callers_dialog_alone() {
    let mut h = with_policy(
        config(),
        "[[rule]]\ninterface = \"access\"\ndirection = \"in\"\n\
         rewrite_user = { target = \"from\", pattern = '^alice$', replacement = \"alice.desk\" }\n",
    );
    let sent_from = format!("\"Alice\" <sip:alice@127.0.0.1:5070>;tag={A_TAG}");
    let out = h.caller_sends(&caller_invite());
    assert!(out[0].is_response(100));
    assert_eq!(out[0].h(HeaderName::From), sent_from);
    let inv = h.last_request_to(CALLEE, Method::Invite).clone();
    assert_eq!(
        inv.msg.from_header().unwrap().uri.raw,
        "sip:alice.desk@127.0.0.20"
    );
    let ok = response(&inv.msg, 200, "OK", Some("btag1"), CALLEE_EXTRA, ANSWER);
    h.callee_sends(&ok);
    let a_ok = h.last_response_to(CALLER, 200);
    assert_eq!(a_ok.h(HeaderName::From), sent_from);
}

/// Outbound number rules see the asserted identity written for the egress leg
/// (README: `[[number]]` applies to every P-Asserted-Identity value).
#[test]
fn outbound_numbers_rewrite_asserted_identity() {
    let mut cfg = config();
    cfg.ifaces[0].trusted = true;
    let mut h = with_policy(
        cfg,
        "[[number]]\ninterface = \"core\"\ndirection = \"out\"\n\
         match = '^\\+49(\\d+)$'\nreplace = \"0$1\"\n",
    );
    h.caller_sends(&caller_invite_with(
        &["P-Asserted-Identity: <sip:+4930999@example.test>"],
        OFFER,
    ));
    let inv = h.last_request_to(CALLEE, Method::Invite);
    assert_eq!(
        inv.h(HeaderName::PAssertedIdentity),
        "<sip:030999@example.test>"
    );
}

// ----- identity in responses -----

/// A trusted callee's asserted identity (the connected party) reaches the
/// caller as P-Asserted-Identity; with `Privacy: id` in the answer it does not.
#[test]
fn trusted_callees_identity_crosses_in_responses_unless_private() {
    for (privacy, crosses) in [(None, true), (Some("Privacy: id"), false)] {
        let mut h = Harness::new();
        h.caller_sends(&caller_invite());
        let b_invite = h.last_request_to(CALLEE, Method::Invite).clone();
        let mut extra: Vec<&str> = CALLEE_EXTRA.to_vec();
        extra.push("P-Asserted-Identity: <sip:+4930555@core.example>");
        extra.extend(privacy);
        h.callee_sends(&response(
            &b_invite.msg,
            200,
            "OK",
            Some("bt1"),
            &extra,
            ANSWER,
        ));
        let ok = h.last_response_to(CALLER, 200);
        let pai = ok.msg.header(HeaderName::PAssertedIdentity);
        if crosses {
            assert_eq!(pai, Some("<sip:+4930555@core.example>"), "{}", ok.raw);
        } else {
            assert!(pai.is_none(), "{}", ok.raw);
        }
        assert!(ok.msg.header(HeaderName::Privacy).is_none(), "{}", ok.raw);
    }
}

/// An untrusted callee's identity headers are never believed.
#[test]
fn untrusted_callees_identity_is_dropped_from_responses() {
    let mut cfg = config();
    cfg.ifaces[1].trusted = false;
    let mut h = Harness::with_config(cfg);
    h.caller_sends(&caller_invite());
    let b_invite = h.last_request_to(CALLEE, Method::Invite).clone();
    let mut extra: Vec<&str> = CALLEE_EXTRA.to_vec();
    extra.push("P-Asserted-Identity: <sip:forged@core.example>");
    extra.push("Remote-Party-ID: <sip:forged@core.example>;party=called");
    h.callee_sends(&response(
        &b_invite.msg,
        200,
        "OK",
        Some("bt1"),
        &extra,
        ANSWER,
    ));
    let ok = h.last_response_to(CALLER, 200);
    assert!(
        ok.msg.header(HeaderName::PAssertedIdentity).is_none(),
        "{}",
        ok.raw
    );
    assert!(
        ok.msg.header(HeaderName::RemotePartyId).is_none(),
        "{}",
        ok.raw
    );
}

// ----- REFER -----

/// An in-dialog REFER crosses with its transfer target and referrer; the
/// 202 and the NOTIFY with the sipfrag progress come back across.
#[test]
fn refer_crosses_with_refer_to_and_notify_comes_back() {
    let mut c = established();
    let refer = c.a.request(
        "REFER",
        &[
            "Refer-To: <sip:carol@example.test?Replaces=x%40y%3Bto-tag%3D1%3Bfrom-tag%3D2>",
            "Referred-By: <sip:alice@example.test>",
        ],
        "",
    );
    let out = c.h.caller_sends(&refer);
    assert_eq!(out.len(), 1, "{out:#?}");
    let b_refer = &out[0];
    assert!(b_refer.is_request(&Method::Refer));
    assert_eq!(
        b_refer.header_named("Refer-To"),
        Some("<sip:carol@example.test>")
    );
    assert_eq!(
        b_refer.header_named("Referred-By"),
        Some("<sip:alice@example.test>")
    );
    let out =
        c.h.callee_sends(&response(&b_refer.msg, 202, "Accepted", None, &[], ""));
    assert!(out.iter().any(|s| s.is_response(202)), "{out:#?}");
    let notify = c.b.request(
        "NOTIFY",
        &[
            "Event: refer",
            "Subscription-State: terminated;reason=noresource",
            "Content-Type: message/sipfrag",
        ],
        "SIP/2.0 200 OK\r\n",
    );
    let out = c.h.callee_sends(&notify);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(out[0].is_request(&Method::Notify));
    assert_eq!(out[0].header_named("Event"), Some("refer"));
    assert_eq!(out[0].body(), b"SIP/2.0 200 OK\r\n");
}
