//! Both ends of a relayed call played by the test itself over UDP (the media
//! tests): a SIP peer that skips retransmissions, the caller's side of the
//! dialog, SDP that names a chosen address and checks of the SDP sipveil sends,
//! and RTP/RTCP-shaped packets.

use super::ua::{param, recv_sip, split_list, uri_of, SipMsg};
use super::Sipveil;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long one SIP step may take.
pub const STEP: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// SIP peers
// ---------------------------------------------------------------------------

/// One SIP endpoint on a UDP socket that drops retransmitted messages (same
/// start line, top Via branch and CSeq as one already seen).
pub struct Peer {
    pub sock: UdpSocket,
    pub local: SocketAddr,
    seen: HashSet<(String, String, String)>,
    branches: u32,
}

impl Peer {
    pub fn bind(local: SocketAddr) -> Peer {
        let sock = UdpSocket::bind(local).unwrap_or_else(|e| panic!("bind {local}: {e}"));
        Peer {
            sock,
            local,
            seen: HashSet::new(),
            branches: 0,
        }
    }

    pub fn branch(&mut self) -> String {
        self.branches += 1;
        format!("z9hG4bK-peer-{}-{}", self.local.port(), self.branches)
    }

    pub fn send(&self, text: &str, to: SocketAddr) {
        self.sock
            .send_to(text.as_bytes(), to)
            .unwrap_or_else(|e| panic!("send from {} to {to}: {e}", self.local));
    }

    /// The next SIP message within `limit`, retransmissions included.
    pub fn next_any(&mut self, limit: Duration) -> Option<(SipMsg, SocketAddr)> {
        recv_sip(&self.sock, limit)
    }

    /// The next new SIP message within `limit`, or `None`; duplicates are skipped.
    pub fn next_new(&mut self, limit: Duration) -> Option<(SipMsg, SocketAddr)> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (m, from) = self.next_any(left)?;
            let key = (
                m.start_line.clone(),
                m.branch().unwrap_or_default().to_string(),
                m.header("CSeq").unwrap_or_default().to_string(),
            );
            if self.seen.insert(key) {
                return Some((m, from));
            }
        }
    }

    /// The next new SIP message for which `want` holds, within `STEP`; other
    /// new messages are ignored (and noted), duplicates are skipped.
    pub fn expect(&mut self, what: &str, want: impl Fn(&SipMsg) -> bool) -> (SipMsg, SocketAddr) {
        self.expect_within(what, STEP, want)
    }

    /// `expect` with its own time limit.
    pub fn expect_within(
        &mut self,
        what: &str,
        limit: Duration,
        want: impl Fn(&SipMsg) -> bool,
    ) -> (SipMsg, SocketAddr) {
        let deadline = Instant::now() + limit;
        let mut ignored = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((m, from)) = self.next_new(left) else {
                panic!(
                    "{}: no {what} within {limit:?}; ignored meanwhile: {ignored:#?}",
                    self.local
                );
            };
            if want(&m) {
                return (m, from);
            }
            ignored.push(m.start_line.clone());
        }
    }

    /// Answers `req` (from `to`) copying Via, From, To (with `to_tag` added if
    /// it has none), Call-ID and CSeq; with a Contact and `sdp` when given.
    pub fn respond(
        &self,
        req: &SipMsg,
        to: SocketAddr,
        status: &str,
        to_tag: &str,
        sdp: Option<&str>,
    ) {
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

pub fn is_response(m: &SipMsg, code: u16, method: &str, cseq: u32) -> bool {
    m.status() == Some(code) && m.cseq() == Some((cseq, method.to_string()))
}

pub fn is_request(m: &SipMsg, method: &str, cseq: Option<u32>) -> bool {
    m.method() == Some(method) && cseq.is_none_or(|n| m.cseq().is_some_and(|(c, _)| c == n))
}

/// `host:port` of a SIP URI (`sip:user@host:port;params`), resolved.
pub fn uri_target(uri: &str) -> SocketAddr {
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
pub fn contact_uri(m: &SipMsg) -> String {
    let contacts = m.header_all("Contact");
    let first = contacts
        .first()
        .and_then(|c| split_list(c).into_iter().next())
        .unwrap_or_else(|| panic!("no Contact in:\n{}", m.raw));
    uri_of(first).to_string()
}

// ---------------------------------------------------------------------------
// The caller's side of a call
// ---------------------------------------------------------------------------

/// The caller's dialog state after the 200: enough to send ACK, re-INVITE and
/// BYE to the remote target the 200 named.
pub struct CallerDialog {
    pub call_id: String,
    pub from_hdr: String,
    /// The To of the 200 (with sipveil's tag).
    pub to_hdr: String,
    pub remote_target: String,
    pub target: SocketAddr,
}

/// Sends an INVITE for `sip:callee@<sbc>` with `offer` from `caller` to `sbc`.
pub fn send_invite(caller: &mut Peer, sbc: SocketAddr, call_id: &str, from_hdr: &str, offer: &str) {
    let branch = caller.branch();
    let invite = format!(
        "INVITE sip:callee@{sbc} SIP/2.0\r\n\
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
    caller.send(&invite, sbc);
}

impl CallerDialog {
    /// The dialog the 200 `ok` to the INVITE (`call_id`, `from_hdr`) set up.
    pub fn from_ok(ok: &SipMsg, call_id: &str, from_hdr: &str) -> CallerDialog {
        let remote_target = contact_uri(ok);
        CallerDialog {
            call_id: call_id.to_string(),
            from_hdr: from_hdr.to_string(),
            to_hdr: ok.header("To").unwrap_or_default().to_string(),
            target: uri_target(&remote_target),
            remote_target,
        }
    }

    /// Sends an in-dialog request (ACK, INVITE, BYE, ...) with an optional SDP body.
    pub fn request(&self, caller: &mut Peer, method: &str, cseq: u32, body: Option<&str>) {
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
            to = self.to_hdr,
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

// ---------------------------------------------------------------------------
// SDP
// ---------------------------------------------------------------------------

/// One PCMU audio stream at `ip`:`rtp`, with `a=rtcp:rtp+1` when `rtcp`.
pub fn sdp(ip: IpAddr, version: u32, rtp: u16, rtcp: bool) -> String {
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
pub fn mentions(body: &str, ip: IpAddr) -> bool {
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
pub fn check_sdp(m: &SipMsg, own: IpAddr, other: IpAddr) -> (u16, u16) {
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

pub fn media_socket(a: SocketAddr) -> UdpSocket {
    UdpSocket::bind(a).unwrap_or_else(|e| panic!("bind {a}: {e}"))
}

/// An RTP packet: 12-byte header (v=2, PT 0, `seq`, timestamp, SSRC) and 160
/// bytes of payload that encode `seq`.
pub fn rtp_packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160u16).map(|i| (i as u8) ^ (seq as u8)));
    p
}

/// An RTCP sender report (28 bytes, no report blocks).
pub fn rtcp_packet(ssrc: u32, n: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0x00, 0x06];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&n.to_be_bytes()); // NTP msw
    p.extend_from_slice(&[0; 4]); // NTP lsw
    p.extend_from_slice(&(n * 160).to_be_bytes()); // RTP timestamp
    p.extend_from_slice(&n.to_be_bytes()); // packet count
    p.extend_from_slice(&(n * 160).to_be_bytes()); // octet count
    p
}

/// Datagrams waiting on `sock` right now (drained without blocking).
pub fn drain_count(sock: &UdpSocket) -> u64 {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    sock.set_nonblocking(true).expect("nonblocking");
    while sock.recv_from(&mut buf).is_ok() {
        n += 1;
    }
    sock.set_nonblocking(false).expect("blocking");
    n
}

/// Binds `a` (which sipveil held during the call), retrying for up to 2 s.
pub fn assert_released(a: SocketAddr, sbc: &Sipveil) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match UdpSocket::bind(a) {
            Ok(_) => return,
            Err(e) if Instant::now() >= deadline => panic!(
                "{a} still bound 2 s after the call ended ({e}); sipveil log:\n{}",
                sbc.log_tail(4000)
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
