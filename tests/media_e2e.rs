//! The built-in media relay end to end on the real binary (issue 6,
//! "Integration"): the test plays both SIP peers itself over UDP and checks
//! that
//! - the SDP each side receives names only sipveil's address on that side;
//! - RTP-shaped packets cross the relay in both directions, and RTCP too,
//!   leaving from sipveil's own address and advertised ports;
//! - a re-INVITE moving the caller's media port moves the relay's target;
//! - the relay's ports are free again within 2 s of the BYE.
//!
//! Caller 127.0.63.1:25061 (media 30000/30001, later 30010/30011) -> sipveil
//! access 127.0.63.10:25060 -> sipveil core 127.0.63.20:25060 -> callee
//! 127.0.63.2:25090 (media 30002/30003). The config has no `[media]` section:
//! the relay is the default.

mod common;

use common::ua::{param, split_list, uri_of, SipMsg};
use common::*;
use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const NET: u8 = 63;
/// How long one SIP step may take.
const STEP: Duration = Duration::from_secs(3);

fn ip(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, NET, host))
}

fn addr(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(ip(host), port)
}

const CALLER: u8 = 1;
const CALLEE: u8 = 2;
const ACCESS: u8 = 10;
const CORE: u8 = 20;

// ---------------------------------------------------------------------------
// SIP peers
// ---------------------------------------------------------------------------

/// One SIP endpoint on a UDP socket that drops retransmitted messages (same
/// start line, top Via branch and CSeq as one already seen).
struct Peer {
    sock: UdpSocket,
    local: SocketAddr,
    seen: HashSet<(String, String, String)>,
    branches: u32,
}

impl Peer {
    fn bind(local: SocketAddr) -> Peer {
        let sock = UdpSocket::bind(local).unwrap_or_else(|e| panic!("bind {local}: {e}"));
        Peer {
            sock,
            local,
            seen: HashSet::new(),
            branches: 0,
        }
    }

    fn branch(&mut self) -> String {
        self.branches += 1;
        format!("z9hG4bK-media-e2e-{}-{}", self.local.port(), self.branches)
    }

    fn send(&self, text: &str, to: SocketAddr) {
        self.sock
            .send_to(text.as_bytes(), to)
            .unwrap_or_else(|e| panic!("send from {} to {to}: {e}", self.local));
    }

    /// The next new SIP message for which `want` holds, within `STEP`; other
    /// new messages are ignored (and noted), duplicates are skipped.
    fn expect(&mut self, what: &str, want: impl Fn(&SipMsg) -> bool) -> (SipMsg, SocketAddr) {
        let deadline = Instant::now() + STEP;
        let mut buf = vec![0u8; 65536];
        let mut ignored = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "{}: no {what} within {STEP:?}; ignored meanwhile: {ignored:#?}",
                    self.local
                );
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            let (n, from) = match self.sock.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => continue,
            };
            let Some(m) = SipMsg::parse(&buf[..n]) else {
                continue;
            };
            let key = (
                m.start_line.clone(),
                m.branch().unwrap_or_default().to_string(),
                m.header("CSeq").unwrap_or_default().to_string(),
            );
            if !self.seen.insert(key) {
                continue;
            }
            if want(&m) {
                return (m, from);
            }
            ignored.push(m.start_line.clone());
        }
    }

    /// Answers `req` (from `to`) copying Via, From, To (with `to_tag` added if
    /// it has none), Call-ID and CSeq; with a Contact and `sdp` when given.
    fn respond(&self, req: &SipMsg, to: SocketAddr, status: &str, to_tag: &str, sdp: Option<&str>) {
        let mut m = format!("SIP/2.0 {status}\r\n");
        for v in req.header_all("Via") {
            m.push_str(&format!("Via: {v}\r\n"));
        }
        let to_hdr = req.header("To").unwrap_or_default();
        let to_hdr = if param(to_hdr, "tag").is_some() {
            to_hdr.to_string()
        } else {
            format!("{to_hdr};tag={to_tag}")
        };
        m.push_str(&format!(
            "From: {}\r\nTo: {to_hdr}\r\nCall-ID: {}\r\nCSeq: {}\r\n",
            req.header("From").unwrap_or_default(),
            req.header("Call-ID").unwrap_or_default(),
            req.header("CSeq").unwrap_or_default(),
        ));
        match sdp {
            Some(body) => m.push_str(&format!(
                "Contact: <sip:callee@{}>\r\nContent-Type: application/sdp\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                self.local,
                body.len()
            )),
            None => m.push_str("Content-Length: 0\r\n\r\n"),
        }
        self.send(&m, to);
    }
}

fn is_response(m: &SipMsg, code: u16, method: &str, cseq: u32) -> bool {
    m.status() == Some(code) && m.cseq() == Some((cseq, method.to_string()))
}

fn is_request(m: &SipMsg, method: &str, cseq: Option<u32>) -> bool {
    m.method() == Some(method) && cseq.is_none_or(|n| m.cseq().is_some_and(|(c, _)| c == n))
}

/// `host:port` of a SIP URI (`sip:user@host:port;params`), resolved.
fn uri_target(uri: &str) -> SocketAddr {
    let rest = uri.strip_prefix("sip:").unwrap_or(uri);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, hp)| hp);
    let hp = rest.split([';', '?']).next().unwrap_or(rest);
    let hp = if hp.contains(':') {
        hp.to_string()
    } else {
        format!("{hp}:5060")
    };
    hp.parse()
        .unwrap_or_else(|e| panic!("Contact URI {uri:?} is not ip:port: {e}"))
}

/// The URI of the (single) Contact of `m`.
fn contact_uri(m: &SipMsg) -> String {
    let contacts = m.header_all("Contact");
    let first = contacts
        .first()
        .and_then(|c| split_list(c).into_iter().next())
        .unwrap_or_else(|| panic!("no Contact in:\n{}", m.raw));
    uri_of(first).to_string()
}

// ---------------------------------------------------------------------------
// SDP
// ---------------------------------------------------------------------------

fn sdp(host: u8, version: u32, rtp: u16, rtcp: bool) -> String {
    let ip = ip(host);
    let mut s = format!(
        "v=0\r\no=- 4242 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {rtp} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    if rtcp {
        s.push_str(&format!("a=rtcp:{}\r\n", rtp + 1));
    }
    s
}

/// Whether `body` names `ip` as a whole address (127.0.63.1 is not in 127.0.63.10).
fn mentions(body: &str, ip: IpAddr) -> bool {
    let needle = ip.to_string();
    body.match_indices(&needle).any(|(i, _)| {
        let before = body[..i].chars().next_back();
        let after = body[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
            && !after.is_some_and(|c| c.is_ascii_digit() || c == '.')
    })
}

/// The SDP of `m` names `own` (on every o= and c= line) and never `other`;
/// returns its audio RTP port and RTCP port (`a=rtcp`, else RTP + 1).
fn check_sdp(m: &SipMsg, own: IpAddr, other: IpAddr) -> (u16, u16) {
    let body = &m.body;
    assert!(
        !mentions(body, other),
        "SDP received by {} names the other side's {other}:\n{}",
        own,
        m.raw
    );
    let mut addresses = 0;
    let mut rtp = None;
    let mut rtcp = None;
    for line in body.lines().map(str::trim_end) {
        if line.starts_with("o=") || line.starts_with("c=") {
            let a = line.rsplit(' ').next().unwrap_or_default();
            assert_eq!(a, own.to_string(), "line {line:?} of:\n{}", m.raw);
            addresses += 1;
        } else if let Some(rest) = line.strip_prefix("m=audio ") {
            rtp = Some(rest.split(' ').next().unwrap().parse::<u16>().unwrap());
        } else if let Some(rest) = line.strip_prefix("a=rtcp:") {
            let mut f = rest.split(' ');
            rtcp = Some(f.next().unwrap().parse::<u16>().unwrap());
            if let Some(a) = f.nth(2) {
                assert_eq!(a, own.to_string(), "line {line:?} of:\n{}", m.raw);
            }
        }
    }
    assert!(addresses >= 2, "no o=/c= address in:\n{}", m.raw);
    let rtp = rtp.unwrap_or_else(|| panic!("no m=audio in:\n{}", m.raw));
    assert_ne!(rtp, 0, "audio stream rejected:\n{}", m.raw);
    (rtp, rtcp.unwrap_or(rtp + 1))
}

// ---------------------------------------------------------------------------
// Media
// ---------------------------------------------------------------------------

fn media_socket(a: SocketAddr) -> UdpSocket {
    UdpSocket::bind(a).unwrap_or_else(|e| panic!("bind {a}: {e}"))
}

/// An RTP packet: 12-byte header (v=2, PT 0, `seq`, timestamp, SSRC) and 160
/// bytes of payload that encode `seq`.
fn rtp_packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160u16).map(|i| (i as u8) ^ (seq as u8)));
    p
}

/// An RTCP sender report (28 bytes, no report blocks).
fn rtcp_packet(ssrc: u32, n: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0x00, 0x06];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&n.to_be_bytes()); // NTP msw
    p.extend_from_slice(&[0; 4]); // NTP lsw
    p.extend_from_slice(&(n * 160).to_be_bytes()); // RTP timestamp
    p.extend_from_slice(&n.to_be_bytes()); // packet count
    p.extend_from_slice(&(n * 160).to_be_bytes()); // octet count
    p
}

/// Sends `packet` from `from` to `to` until it arrives at `at` (up to 5 tries,
/// 400 ms each) and checks it came unchanged from `expect_src`.
fn relay_one(
    what: &str,
    packet: &[u8],
    from: &UdpSocket,
    to: SocketAddr,
    at: &UdpSocket,
    expect_src: SocketAddr,
) {
    let mut buf = [0u8; 2048];
    at.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    for _ in 0..5 {
        from.send_to(packet, to).unwrap();
        while let Ok((n, src)) = at.recv_from(&mut buf) {
            if &buf[..n] != packet {
                // a late copy of an earlier packet
                continue;
            }
            assert_eq!(
                src,
                expect_src,
                "{what}: packet arrived at {} from {src}, not from sipveil's {expect_src}",
                at.local_addr().unwrap()
            );
            return;
        }
    }
    panic!(
        "{what}: packet sent from {} to {to} never arrived at {}",
        from.local_addr().unwrap(),
        at.local_addr().unwrap()
    );
}

/// Several RTP packets in a row, each checked.
fn relay_rtp(
    what: &str,
    from: &UdpSocket,
    to: SocketAddr,
    at: &UdpSocket,
    expect_src: SocketAddr,
    ssrc: u32,
    seq0: u16,
) {
    for seq in seq0..seq0 + 5 {
        relay_one(what, &rtp_packet(seq, ssrc), from, to, at, expect_src);
    }
}

/// Binds `a` (which sipveil held during the call), retrying for up to 2 s.
fn assert_released(a: SocketAddr, sbc: &Sipveil) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match UdpSocket::bind(a) {
            Ok(_) => return,
            Err(e) if Instant::now() >= deadline => panic!(
                "{a} still bound 2 s after the BYE ({e}); sipveil log:\n{}",
                sbc.log_tail(4000)
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

// ---------------------------------------------------------------------------
// The call
// ---------------------------------------------------------------------------

#[test]
fn relayed_call_rewrites_sdp_forwards_media_follows_reinvite_and_releases_ports() {
    let started = Instant::now();
    let dir = TempDir::new("media_e2e");
    let access = addr(ACCESS, 25060);
    let callee_sip = addr(CALLEE, 25090);
    let (interfaces, routes) = edge_config(access, addr(CORE, 25060), callee_sip);
    let sbc = Sipveil::start(&dir.subdir("sipveil"), &interfaces, &routes);

    let mut caller = Peer::bind(addr(CALLER, 25061));
    let mut callee = Peer::bind(callee_sip);
    let caller_rtp = media_socket(addr(CALLER, 30000));
    let caller_rtcp = media_socket(addr(CALLER, 30001));
    let callee_rtp = media_socket(addr(CALLEE, 30002));
    let callee_rtcp = media_socket(addr(CALLEE, 30003));

    // --- INVITE ------------------------------------------------------------
    let call_id = format!("media-e2e-{}", std::process::id());
    let from_hdr = "<sip:caller@example.test>;tag=caller-tag-1";
    let offer = sdp(CALLER, 1, 30000, true);
    let branch = caller.branch();
    let invite = format!(
        "INVITE sip:callee@{access} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: {from_hdr}\r\n\
         To: <sip:callee@example.test>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{local}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{offer}",
        local = caller.local,
        len = offer.len(),
    );
    caller.send(&invite, access);

    let (b_invite, core_from) = callee.expect("B-leg INVITE", |m| is_request(m, "INVITE", None));
    let (b_rtp, b_rtcp) = check_sdp(&b_invite, ip(CORE), ip(CALLER));
    let sbc_b_rtp = addr(CORE, b_rtp);
    let sbc_b_rtcp = addr(CORE, b_rtcp);
    let b_cseq = b_invite.cseq().unwrap().0;
    let to_tag = "callee-tag-1";
    callee.respond(&b_invite, core_from, "100 Trying", to_tag, None);
    callee.respond(
        &b_invite,
        core_from,
        "200 OK",
        to_tag,
        Some(&sdp(CALLEE, 1, 30002, false)),
    );

    let (ok, _) = caller.expect("200 to the INVITE", |m| is_response(m, 200, "INVITE", 1));
    let (a_rtp, a_rtcp) = check_sdp(&ok, ip(ACCESS), ip(CALLEE));
    let sbc_a_rtp = addr(ACCESS, a_rtp);
    let sbc_a_rtcp = addr(ACCESS, a_rtcp);
    let remote_target = contact_uri(&ok);
    let dialog_to = ok.header("To").unwrap().to_string();
    let target = uri_target(&remote_target);

    let in_dialog = |caller: &mut Peer, method: &str, cseq: u32, body: Option<&str>| {
        let branch = caller.branch();
        let mut m = format!(
            "{method} {remote_target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from_hdr}\r\n\
             To: {dialog_to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{local}>\r\n",
            local = caller.local,
        );
        match body {
            Some(b) => m.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => m.push_str("Content-Length: 0\r\n\r\n"),
        }
        caller.send(&m, target);
    };
    in_dialog(&mut caller, "ACK", 1, None);
    callee.expect("B-leg ACK", |m| is_request(m, "ACK", Some(b_cseq)));

    // --- media both ways -------------------------------------------------
    relay_rtp(
        "RTP caller -> callee",
        &caller_rtp,
        sbc_a_rtp,
        &callee_rtp,
        sbc_b_rtp,
        0x1111_1111,
        1,
    );
    relay_rtp(
        "RTP callee -> caller",
        &callee_rtp,
        sbc_b_rtp,
        &caller_rtp,
        sbc_a_rtp,
        0x2222_2222,
        1,
    );
    relay_one(
        "RTCP caller -> callee",
        &rtcp_packet(0x1111_1111, 1),
        &caller_rtcp,
        sbc_a_rtcp,
        &callee_rtcp,
        sbc_b_rtcp,
    );
    relay_one(
        "RTCP callee -> caller",
        &rtcp_packet(0x2222_2222, 1),
        &callee_rtcp,
        sbc_b_rtcp,
        &caller_rtcp,
        sbc_a_rtcp,
    );

    // --- re-INVITE: the caller moves its media to 30010 ------------------
    let moved_rtp = media_socket(addr(CALLER, 30010));
    let reoffer = sdp(CALLER, 2, 30010, true);
    in_dialog(&mut caller, "INVITE", 2, Some(&reoffer));
    let (b_reinvite, core_from) = callee.expect("B-leg re-INVITE", |m| {
        is_request(m, "INVITE", None) && m.cseq().is_some_and(|(c, _)| c > b_cseq)
    });
    let (b_rtp2, _) = check_sdp(&b_reinvite, ip(CORE), ip(CALLER));
    let b_recseq = b_reinvite.cseq().unwrap().0;
    callee.respond(
        &b_reinvite,
        core_from,
        "200 OK",
        to_tag,
        Some(&sdp(CALLEE, 2, 30002, false)),
    );
    let (ok2, _) = caller.expect("200 to the re-INVITE", |m| is_response(m, 200, "INVITE", 2));
    let (a_rtp2, _) = check_sdp(&ok2, ip(ACCESS), ip(CALLEE));
    in_dialog(&mut caller, "ACK", 2, None);
    callee.expect("B-leg ACK of the re-INVITE", |m| {
        is_request(m, "ACK", Some(b_recseq))
    });

    // The callee speaks first: the relay must follow the new SDP, not the
    // source it had latched on 30000.
    relay_rtp(
        "RTP callee -> caller after the re-INVITE",
        &callee_rtp,
        addr(CORE, b_rtp2),
        &moved_rtp,
        addr(ACCESS, a_rtp2),
        0x2222_2222,
        100,
    );
    relay_rtp(
        "RTP caller (moved) -> callee after the re-INVITE",
        &moved_rtp,
        addr(ACCESS, a_rtp2),
        &callee_rtp,
        addr(CORE, b_rtp2),
        0x3333_3333,
        100,
    );

    // --- BYE ---------------------------------------------------------------
    // While the call is up sipveil holds its ports (so the check after the BYE
    // means something).
    assert!(
        UdpSocket::bind(sbc_a_rtp).is_err() && UdpSocket::bind(sbc_b_rtp).is_err(),
        "sipveil's relay ports {sbc_a_rtp} / {sbc_b_rtp} are not bound during the call"
    );
    in_dialog(&mut caller, "BYE", 3, None);
    let (bye, core_from) = callee.expect("B-leg BYE", |m| is_request(m, "BYE", None));
    callee.respond(&bye, core_from, "200 OK", to_tag, None);
    caller.expect("200 to the BYE", |m| is_response(m, 200, "BYE", 3));

    let mut held: Vec<SocketAddr> = vec![sbc_a_rtp, sbc_a_rtcp, sbc_b_rtp, sbc_b_rtcp];
    for a in [addr(ACCESS, a_rtp2), addr(CORE, b_rtp2)] {
        if !held.contains(&a) {
            held.push(a);
        }
    }
    for &a in &held {
        assert_released(a, &sbc);
    }
    println!(
        "relay ports: A side {a_rtp}/{a_rtcp} (after re-INVITE {a_rtp2}), \
         B side {b_rtp}/{b_rtcp} (after re-INVITE {b_rtp2}); released: {held:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the test took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Restart and rtpengine: a call set up by a helper
// ---------------------------------------------------------------------------

/// The caller's view of an established call, for its in-dialog requests.
struct Dialog {
    call_id: String,
    from_hdr: String,
    dialog_to: String,
    remote_target: String,
    target: SocketAddr,
}

impl Dialog {
    /// Sends an in-dialog request from the caller.
    fn send(&self, caller: &mut Peer, method: &str, cseq: u32, body: Option<&str>) {
        let branch = caller.branch();
        let mut m = format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{local}>\r\n",
            target = self.remote_target,
            local = caller.local,
            from = self.from_hdr,
            to = self.dialog_to,
            call_id = self.call_id,
        );
        match body {
            Some(b) => m.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None => m.push_str("Content-Length: 0\r\n\r\n"),
        }
        caller.send(&m, self.target);
    }
}

/// INVITE with `offer`, 200 with `answer`, ACK. Returns the dialog, the B-leg
/// INVITE and the 200 the caller got.
fn establish(
    caller: &mut Peer,
    callee: &mut Peer,
    access: SocketAddr,
    offer: &str,
    answer: &str,
) -> (Dialog, SipMsg, SipMsg) {
    let call_id = format!("media-e2e-{}-{}", std::process::id(), caller.local.port());
    let from_hdr = "<sip:caller@example.test>;tag=caller-tag-2".to_string();
    let branch = caller.branch();
    let invite = format!(
        "INVITE sip:callee@{access} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: {from_hdr}\r\n\
         To: <sip:callee@example.test>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{local}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{offer}",
        local = caller.local,
        len = offer.len(),
    );
    caller.send(&invite, access);
    let (b_invite, core_from) = callee.expect("B-leg INVITE", |m| is_request(m, "INVITE", None));
    callee.respond(&b_invite, core_from, "200 OK", "callee-tag-2", Some(answer));
    let (ok, _) = caller.expect("200 to the INVITE", |m| is_response(m, 200, "INVITE", 1));
    let remote_target = contact_uri(&ok);
    let dialog = Dialog {
        call_id,
        from_hdr,
        dialog_to: ok.header("To").unwrap().to_string(),
        target: uri_target(&remote_target),
        remote_target,
    };
    dialog.send(caller, "ACK", 1, None);
    let b_cseq = b_invite.cseq().unwrap().0;
    callee.expect("B-leg ACK", |m| is_request(m, "ACK", Some(b_cseq)));
    (dialog, b_invite, ok)
}

/// The sess-id and sess-version of the o= line of `m`'s SDP.
fn origin_of(m: &SipMsg) -> (String, u64) {
    let line = m
        .body
        .lines()
        .find_map(|l| l.strip_prefix("o="))
        .unwrap_or_else(|| panic!("no o= in:\n{}", m.raw));
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[1].to_string(), f[2].parse().unwrap())
}

/// Caller re-INVITEs with `offer`; the callee answers `answer`. Returns the
/// B-leg re-INVITE and the caller's 200.
fn reinvite(
    caller: &mut Peer,
    callee: &mut Peer,
    d: &Dialog,
    cseq: u32,
    offer: &str,
    answer: &str,
) -> (SipMsg, SipMsg) {
    d.send(caller, "INVITE", cseq, Some(offer));
    let (b_re, core_from) = callee.expect("B-leg re-INVITE", |m| is_request(m, "INVITE", None));
    callee.respond(&b_re, core_from, "200 OK", "callee-tag-2", Some(answer));
    let (ok, _) = caller.expect("200 to the re-INVITE", |m| {
        is_response(m, 200, "INVITE", cseq)
    });
    d.send(caller, "ACK", cseq, None);
    let b_cseq = b_re.cseq().unwrap().0;
    callee.expect("B-leg ACK", |m| is_request(m, "ACK", Some(b_cseq)));
    (b_re, ok)
}

/// Invariant 4 for media: after SIGKILL and restart, an established relayed
/// call keeps its relay ports (media flows where the peers were told), and the
/// next re-INVITE carries the same o= sess-id with the next version.
#[test]
fn relayed_call_keeps_its_media_ports_and_origin_across_a_restart() {
    let (caller_h, callee_h, access_h, core_h) = (3, 4, 30, 40);
    let dir = TempDir::new("media_e2e_restart");
    let access = addr(access_h, 25060);
    let callee_sip = addr(callee_h, 25090);
    let (interfaces, routes) = edge_config(access, addr(core_h, 25060), callee_sip);
    let mut sbc = Sipveil::start(&dir.subdir("sipveil"), &interfaces, &routes);
    let mut caller = Peer::bind(addr(caller_h, 25061));
    let mut callee = Peer::bind(callee_sip);
    let caller_rtp = media_socket(addr(caller_h, 30100));
    let callee_rtp = media_socket(addr(callee_h, 30102));

    let (d, b_invite, ok) = establish(
        &mut caller,
        &mut callee,
        access,
        &sdp(caller_h, 1, 30100, false),
        &sdp(callee_h, 1, 30102, false),
    );
    let (b_rtp, _) = check_sdp(&b_invite, ip(core_h), ip(caller_h));
    let (a_rtp, _) = check_sdp(&ok, ip(access_h), ip(callee_h));
    let (sbc_a, sbc_b) = (addr(access_h, a_rtp), addr(core_h, b_rtp));
    let (b_sess, b_version) = origin_of(&b_invite);
    relay_rtp(
        "RTP caller -> callee",
        &caller_rtp,
        sbc_a,
        &callee_rtp,
        sbc_b,
        0x4444_4444,
        1,
    );

    // Give the store writer its batch interval, then kill without warning.
    std::thread::sleep(Duration::from_millis(300));
    sbc.restart();

    relay_rtp(
        "RTP callee -> caller after the restart",
        &callee_rtp,
        sbc_b,
        &caller_rtp,
        sbc_a,
        0x5555_5555,
        10,
    );
    relay_rtp(
        "RTP caller -> callee after the restart",
        &caller_rtp,
        sbc_a,
        &callee_rtp,
        sbc_b,
        0x4444_4444,
        20,
    );

    // A re-offer that changes nothing keeps the ports; o= keeps its sess-id
    // and moves its version on (the body on the B leg changed: new o= from
    // the caller's side is not what counts, the rewritten body is).
    let (b_re, ok2) = reinvite(
        &mut caller,
        &mut callee,
        &d,
        2,
        &sdp(caller_h, 2, 30100, true),
        &sdp(callee_h, 2, 30102, false),
    );
    let (b_rtp2, _) = check_sdp(&b_re, ip(core_h), ip(caller_h));
    let (a_rtp2, _) = check_sdp(&ok2, ip(access_h), ip(callee_h));
    assert_eq!(
        (a_rtp2, b_rtp2),
        (a_rtp, b_rtp),
        "ports moved after the restart"
    );
    let (b_sess2, b_version2) = origin_of(&b_re);
    assert_eq!(
        b_sess2, b_sess,
        "B-leg o= sess-id changed across the restart"
    );
    assert_eq!(b_version2, b_version + 1, "B-leg o= version:\n{}", b_re.raw);

    d.send(&mut caller, "BYE", 3, None);
    let (bye, core_from) = callee.expect("B-leg BYE", |m| is_request(m, "BYE", None));
    callee.respond(&bye, core_from, "200 OK", "callee-tag-2", None);
    caller.expect("200 to the BYE", |m| is_response(m, 200, "BYE", 3));
    assert_released(sbc_a, &sbc);
    assert_released(sbc_b, &sbc);
}

/// `[media] mode = "rtpengine"`: sipveil drives Debian's rtpengine over ng; each
/// side's SDP names only rtpengine's address, RTP crosses both ways through it,
/// a re-INVITE is offered to it too, and the BYE deletes the call there.
#[test]
fn rtpengine_mode_anchors_the_call_at_rtpengine() {
    let (caller_h, callee_h, access_h, core_h, engine_h) = (5, 6, 50, 60, 70);
    let ng = addr(engine_h, 22223);
    let Some(_engine) = Rtpengine::start(
        "media_e2e::rtpengine_mode_anchors_the_call_at_rtpengine",
        ip(engine_h),
        ng,
        (31_200, 31_299),
    ) else {
        return;
    };
    let dir = TempDir::new("media_e2e_rtpengine");
    let access = addr(access_h, 25060);
    let callee_sip = addr(callee_h, 25090);
    let (interfaces, routes) = edge_config(access, addr(core_h, 25060), callee_sip);
    let mut sbc = Sipveil::configure(
        &dir.subdir("sipveil"),
        &interfaces,
        &routes,
        &format!("[media]\nmode = \"rtpengine\"\nrtpengine = \"{ng}\"\n"),
    );
    sbc.launch();
    let mut caller = Peer::bind(addr(caller_h, 25061));
    let mut callee = Peer::bind(callee_sip);
    let caller_rtp = media_socket(addr(caller_h, 30200));
    let callee_rtp = media_socket(addr(callee_h, 30202));

    let (d, b_invite, ok) = establish(
        &mut caller,
        &mut callee,
        access,
        &sdp(caller_h, 1, 30200, false),
        &sdp(callee_h, 1, 30202, false),
    );
    let (b_rtp, _) = check_sdp(&b_invite, ip(engine_h), ip(caller_h));
    let (a_rtp, _) = check_sdp(&ok, ip(engine_h), ip(callee_h));
    assert!((31_200..=31_299).contains(&a_rtp) && (31_200..=31_299).contains(&b_rtp));
    let (rtp_a, rtp_b) = (addr(engine_h, a_rtp), addr(engine_h, b_rtp));
    relay_rtp(
        "RTP caller -> callee",
        &caller_rtp,
        rtp_a,
        &callee_rtp,
        rtp_b,
        0x6666_6666,
        1,
    );
    relay_rtp(
        "RTP callee -> caller",
        &callee_rtp,
        rtp_b,
        &caller_rtp,
        rtp_a,
        0x7777_7777,
        1,
    );

    let (b_re, ok2) = reinvite(
        &mut caller,
        &mut callee,
        &d,
        2,
        &sdp(caller_h, 2, 30200, false),
        &sdp(callee_h, 2, 30202, false),
    );
    check_sdp(&b_re, ip(engine_h), ip(caller_h));
    check_sdp(&ok2, ip(engine_h), ip(callee_h));
    relay_rtp(
        "RTP after the re-INVITE",
        &caller_rtp,
        rtp_a,
        &callee_rtp,
        rtp_b,
        0x6666_6666,
        50,
    );

    d.send(&mut caller, "BYE", 3, None);
    let (bye, core_from) = callee.expect("B-leg BYE", |m| is_request(m, "BYE", None));
    callee.respond(&bye, core_from, "200 OK", "callee-tag-2", None);
    caller.expect("200 to the BYE", |m| is_response(m, 200, "BYE", 3));
    std::thread::sleep(Duration::from_millis(200));
    let log = sbc.log_tail(20_000);
    assert!(!log.contains("rtpengine delete"), "{log}");
    assert!(
        !log.contains("rtpengine:"),
        "rtpengine command failed:\n{log}"
    );
}
