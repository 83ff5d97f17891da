//! A small SIP user agent over `std::net::UdpSocket` for the tests SIPp cannot
//! express: answering a SHA-256 challenge, replaying a nonce-count, registering
//! several contacts or from a chosen port, querying bindings, and playing both
//! ends of a call whose outcome the test inspects.
//!
//! Digest responses are computed here from RFC 2617 / RFC 7616 with the `md-5`
//! and `sha2` crates, independently of sipveil's own implementation, so a test
//! checks sipveil against the RFC rather than against itself.
//!
//! Everything is blocking and bounded: every wait has a deadline and returns
//! `None` (or panics with what was seen) when it passes.

use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// How long a transaction waits for its final response.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(8);
/// Retransmission interval of non-INVITE requests (loopback rarely needs it).
const RETRANSMIT: Duration = Duration::from_millis(500);

static UNIQUE: AtomicU64 = AtomicU64::new(1);

/// A token unique within this test process.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::SeqCst)
    )
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// A received SIP message, split into start line, headers and body.
#[derive(Clone, Debug)]
pub struct SipMsg {
    pub start_line: String,
    /// (name as written, value) in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The raw text, for failure messages.
    pub raw: String,
}

/// Long form of a compact header name, lowercase.
fn long_name(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    let long = match n.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "k" => "supported",
        _ => return n,
    };
    long.to_string()
}

impl SipMsg {
    /// Parses a datagram; `None` if it is not a SIP message.
    pub fn parse(bytes: &[u8]) -> Option<SipMsg> {
        let raw = String::from_utf8_lossy(bytes).into_owned();
        let (head, body) = match raw.find("\r\n\r\n") {
            Some(i) => (&raw[..i], &raw[i + 4..]),
            None => (raw.as_str(), ""),
        };
        let mut lines = head.split("\r\n");
        let start_line = lines.next()?.to_string();
        if !(start_line.starts_with("SIP/2.0 ") || start_line.ends_with(" SIP/2.0")) {
            return None;
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            let (n, v) = line.split_once(':')?;
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        Some(SipMsg {
            start_line,
            headers,
            body: body.to_string(),
            raw: raw.clone(),
        })
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        self.start_line
            .strip_prefix("SIP/2.0 ")?
            .get(..3)?
            .parse()
            .ok()
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&str> {
        if self.start_line.starts_with("SIP/2.0 ") {
            return None;
        }
        self.start_line.split(' ').next()
    }

    /// The request-URI of a request.
    pub fn request_uri(&self) -> Option<&str> {
        self.method()?;
        self.start_line.split(' ').nth(1)
    }

    /// Every value of a header (compact forms understood), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let want = long_name(name);
        self.headers
            .iter()
            .filter(|(n, _)| long_name(n) == want)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let v = self.header("CSeq")?;
        let mut f = v.split_whitespace();
        let n = f.next()?.parse().ok()?;
        Some((n, f.next()?.to_string()))
    }

    /// The top Via's branch parameter.
    pub fn branch(&self) -> Option<&str> {
        let via = self.header("Via")?;
        let via = via.split(',').next()?;
        via.split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("branch"))
            .map(|(_, v)| v.trim())
    }

    /// Every Contact entry (comma-separated values split), trimmed.
    pub fn contacts(&self) -> Vec<String> {
        self.header_all("Contact")
            .into_iter()
            .flat_map(split_list)
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    }
}

/// Splits a header value at commas outside quotes and angle brackets.
pub fn split_list(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out
}

/// The URI inside `<...>` of a name-addr, or the value up to its first `;`.
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// `;name=value` of a header value after its URI (case-insensitive name).
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    params
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

// ---------------------------------------------------------------------------
// Digest authentication (RFC 2617, RFC 7616, RFC 8760)
// ---------------------------------------------------------------------------

/// Digest algorithms this UA can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Md5,
    Sha256,
}

impl Alg {
    pub fn token(self) -> &'static str {
        match self {
            Alg::Md5 => "MD5",
            Alg::Sha256 => "SHA-256",
        }
    }

    /// Lowercase hex of the hash of `data`.
    pub fn hex(self, data: &str) -> String {
        match self {
            Alg::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Alg::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

/// One `WWW-Authenticate` / `Proxy-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    /// As written; absent means MD5.
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub opaque: Option<String>,
    pub stale: bool,
}

impl Challenge {
    /// Parses `Digest k=v, k="v", ...`; `None` for another scheme or without
    /// realm and nonce.
    pub fn parse(value: &str) -> Option<Challenge> {
        let (scheme, rest) = value.trim().split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let params = auth_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        Some(Challenge {
            realm: get("realm")?,
            nonce: get("nonce")?,
            algorithm: get("algorithm"),
            qop: get("qop"),
            opaque: get("opaque"),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// Every parseable challenge of `header` in `msg`, in order.
    pub fn all(msg: &SipMsg, header: &str) -> Vec<Challenge> {
        msg.header_all(header)
            .into_iter()
            .filter_map(Challenge::parse)
            .collect()
    }

    /// The algorithm this challenge asks for.
    pub fn alg(&self) -> Option<Alg> {
        match self.algorithm.as_deref() {
            None => Some(Alg::Md5),
            Some(a) if a.eq_ignore_ascii_case("MD5") => Some(Alg::Md5),
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Some(Alg::Sha256),
            Some(_) => None,
        }
    }

    /// Whether `qop` offers `auth`.
    pub fn offers_qop_auth(&self) -> bool {
        self.qop
            .as_deref()
            .is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")))
    }
}

/// `k=v` pairs of an auth-param list; quoted values unquoted.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, remainder) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &q[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((name, value));
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// What a client needs to answer a challenge.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// The `Authorization` / `Proxy-Authorization` value answering `ch` for
/// `method` on `uri` with nonce-count `nc` (RFC 7616 §3.4; qop=auth when
/// offered, else the RFC 2069 form).
pub fn authorization(
    ch: &Challenge,
    creds: &Credentials,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let alg = ch.alg().expect("a challenge with a supported algorithm");
    let ha1 = alg.hex(&format!("{}:{}:{}", creds.user, ch.realm, creds.password));
    let ha2 = alg.hex(&format!("{method}:{uri}"));
    let nc_hex = format!("{nc:08x}");
    let mut v = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\"",
        creds.user, ch.realm, ch.nonce
    );
    let response = if ch.offers_qop_auth() {
        alg.hex(&format!("{ha1}:{}:{nc_hex}:{cnonce}:auth:{ha2}", ch.nonce))
    } else {
        alg.hex(&format!("{ha1}:{}:{ha2}", ch.nonce))
    };
    let _ = write!(v, ", response=\"{response}\", algorithm={}", alg.token());
    if ch.offers_qop_auth() {
        let _ = write!(v, ", qop=auth, nc={nc_hex}, cnonce=\"{cnonce}\"");
    }
    if let Some(o) = &ch.opaque {
        let _ = write!(v, ", opaque=\"{o}\"");
    }
    v
}

// ---------------------------------------------------------------------------
// The user agent
// ---------------------------------------------------------------------------

/// A UDP SIP endpoint bound to one local address, talking to one server
/// (sipveil's interface). It keeps one REGISTER dialog (Call-ID, From tag,
/// CSeq) so consecutive REGISTERs follow RFC 3261 §10.2.4.
pub struct Ua {
    pub sock: UdpSocket,
    pub local: SocketAddr,
    pub server: SocketAddr,
    pub domain: String,
    pub creds: Credentials,
    pub call_id: String,
    pub from_tag: String,
    pub cseq: u32,
    /// Received messages not consumed yet (a request that arrived while a
    /// transaction waited for its response).
    backlog: Vec<(SipMsg, SocketAddr)>,
}

/// One REGISTER to send.
#[derive(Clone, Debug, Default)]
pub struct Register {
    /// Contact header values, e.g. `<sip:alice@127.0.0.3:5090>` or `*`; empty
    /// for a query.
    pub contacts: Vec<String>,
    /// `Expires` header, if any.
    pub expires: Option<u32>,
    /// `Authorization` header value, if any.
    pub authorization: Option<String>,
    /// The AOR user in To (default: the UA's own user).
    pub to_user: Option<String>,
}

impl Register {
    /// One contact, with an `Expires` header.
    pub fn contact(contact: &str, expires: u32) -> Register {
        Register {
            contacts: vec![contact.to_string()],
            expires: Some(expires),
            ..Register::default()
        }
    }
}

impl Ua {
    /// Binds `local` (port 0 picks one) and aims at `server`.
    pub fn bind(
        local: SocketAddr,
        server: SocketAddr,
        user: &str,
        password: &str,
        domain: &str,
    ) -> io::Result<Ua> {
        let sock = UdpSocket::bind(local)?;
        let local = sock.local_addr()?;
        Ok(Ua {
            sock,
            local,
            server,
            domain: domain.to_string(),
            creds: Credentials {
                user: user.to_string(),
                password: password.to_string(),
            },
            call_id: unique("ua-"),
            from_tag: unique("t"),
            cseq: 0,
            backlog: Vec::new(),
        })
    }

    /// `<sip:user@local-address>`: this UA's own contact.
    pub fn own_contact(&self) -> String {
        format!("<sip:{}@{}>", self.creds.user, self.local)
    }

    fn via(&self) -> String {
        format!(
            "SIP/2.0/UDP {};branch=z9hG4bK{};rport",
            self.local,
            unique("b")
        )
    }

    /// The text of a REGISTER (next CSeq of this UA's registration Call-ID).
    pub fn register_text(&mut self, r: &Register) -> String {
        self.cseq += 1;
        let to_user = r.to_user.as_deref().unwrap_or(&self.creds.user);
        let mut m = format!(
            "REGISTER sip:{domain} SIP/2.0\r\n\
             Via: {via}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{domain}>;tag={tag}\r\n\
             To: <sip:{to_user}@{domain}>\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             User-Agent: sipveil-test-ua\r\n",
            domain = self.domain,
            via = self.via(),
            user = self.creds.user,
            tag = self.from_tag,
            cid = self.call_id,
            cseq = self.cseq,
        );
        for c in &r.contacts {
            let _ = write!(m, "Contact: {c}\r\n");
        }
        if let Some(e) = r.expires {
            let _ = write!(m, "Expires: {e}\r\n");
        }
        if let Some(a) = &r.authorization {
            let _ = write!(m, "Authorization: {a}\r\n");
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        m
    }

    /// Sends one REGISTER and returns its final response.
    pub fn register(&mut self, r: &Register) -> SipMsg {
        let text = self.register_text(r);
        self.transact(&text)
    }

    /// REGISTER without credentials, expecting 401; returns the challenge
    /// offering `alg`, after checking the 401 offers it.
    pub fn challenge(&mut self, r: &Register, alg: Alg) -> Challenge {
        let resp = self.register(&Register {
            authorization: None,
            ..r.clone()
        });
        assert_eq!(resp.status(), Some(401), "expected 401:\n{}", resp.raw);
        Challenge::all(&resp, "WWW-Authenticate")
            .into_iter()
            .find(|c| c.alg() == Some(alg))
            .unwrap_or_else(|| panic!("no {} challenge in:\n{}", alg.token(), resp.raw))
    }

    /// The `Authorization` value for a REGISTER answering `ch`.
    pub fn register_authorization(&self, ch: &Challenge, nc: u32) -> String {
        let uri = format!("sip:{}", self.domain);
        authorization(ch, &self.creds, "REGISTER", &uri, nc, &unique("cn"))
    }

    /// The whole exchange: REGISTER, 401, REGISTER with credentials (nc=1)
    /// answering the `alg` challenge. Returns the final response.
    pub fn register_auth(&mut self, r: &Register, alg: Alg) -> SipMsg {
        let ch = self.challenge(r, alg);
        let auth = self.register_authorization(&ch, 1);
        self.register(&Register {
            authorization: Some(auth),
            ..r.clone()
        })
    }

    /// `register_auth` that must succeed with 200; returns the 200.
    pub fn register_ok(&mut self, r: &Register) -> SipMsg {
        let resp = self.register_auth(r, Alg::Md5);
        assert_eq!(resp.status(), Some(200), "REGISTER failed:\n{}", resp.raw);
        resp
    }

    /// Sends raw text to the server.
    pub fn send(&self, text: &str) {
        self.send_to(text, self.server);
    }

    /// Sends raw text to `to`.
    pub fn send_to(&self, text: &str, to: SocketAddr) {
        self.sock
            .send_to(text.as_bytes(), to)
            .unwrap_or_else(|e| panic!("send from {} to {to}: {e}", self.local));
    }

    /// The next SIP message from anywhere within `limit` (backlog first).
    pub fn recv(&mut self, limit: Duration) -> Option<(SipMsg, SocketAddr)> {
        if !self.backlog.is_empty() {
            return Some(self.backlog.remove(0));
        }
        self.recv_socket(limit)
    }

    fn recv_socket(&self, limit: Duration) -> Option<(SipMsg, SocketAddr)> {
        recv_sip(&self.sock, limit)
    }

    /// Sends a non-INVITE request and waits for its final response (same
    /// branch), retransmitting every 500 ms; requests arriving meanwhile are
    /// kept for `recv`. Panics after `TRANSACTION_TIMEOUT`.
    pub fn transact(&mut self, text: &str) -> SipMsg {
        let sent = SipMsg::parse(text.as_bytes()).expect("a SIP request");
        let branch = sent.branch().expect("a Via branch").to_string();
        let deadline = Instant::now() + TRANSACTION_TIMEOUT;
        self.send(text);
        let mut next_retransmit = Instant::now() + RETRANSMIT;
        loop {
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "no final response from {} within {TRANSACTION_TIMEOUT:?} to:\n{text}",
                    self.server
                );
            }
            if now >= next_retransmit {
                self.send(text);
                next_retransmit = now + RETRANSMIT;
            }
            let wait = next_retransmit.min(deadline).saturating_duration_since(now);
            let Some((m, from)) = self.recv_socket(wait) else {
                continue;
            };
            if m.status().is_none() {
                self.backlog.push((m, from));
                continue;
            }
            if m.branch() == Some(branch.as_str()) && m.status().is_some_and(|s| s >= 200) {
                return m;
            }
        }
    }

    /// Waits for a request with `method`, skipping (and recording nothing of)
    /// other traffic. `None` if none came within `limit`.
    pub fn expect_request(
        &mut self,
        method: &str,
        limit: Duration,
    ) -> Option<(SipMsg, SocketAddr)> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (m, from) = self.recv(left)?;
            if m.method() == Some(method) {
                return Some((m, from));
            }
        }
    }

    /// Answers `req` (received from `to`) with `code reason`, copying Via,
    /// From, To (adding `to_tag` when given and To has none), Call-ID and CSeq.
    pub fn respond(
        &self,
        req: &SipMsg,
        to: SocketAddr,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) {
        let mut m = format!("SIP/2.0 {code} {reason}\r\n");
        for v in req.header_all("Via") {
            let _ = write!(m, "Via: {v}\r\n");
        }
        let _ = write!(m, "From: {}\r\n", req.header("From").unwrap_or_default());
        let to_hdr = req.header("To").unwrap_or_default();
        match to_tag {
            Some(t) if param(to_hdr, "tag").is_none() => {
                let _ = write!(m, "To: {to_hdr};tag={t}\r\n");
            }
            _ => {
                let _ = write!(m, "To: {to_hdr}\r\n");
            }
        }
        let _ = write!(
            m,
            "Call-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
            req.header("Call-ID").unwrap_or_default(),
            req.header("CSeq").unwrap_or_default()
        );
        self.send_to(&m, to);
    }

    /// Sends an INVITE for `sip:{callee}@{server}` from this UA's user (From
    /// `sip:user@domain`) and returns it (for `invite_final`).
    pub fn send_invite(&mut self, callee: &str) -> SipMsg {
        let call_id = unique("call-");
        let tag = unique("ft");
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            ip = self.local.ip()
        );
        let text = format!(
            "INVITE sip:{callee}@{server} SIP/2.0\r\n\
             Via: {via}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{domain}>;tag={tag}\r\n\
             To: <sip:{callee}@{domain}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            server = self.server,
            via = self.via(),
            user = self.creds.user,
            domain = self.domain,
            local = self.local,
            len = sdp.len(),
        );
        self.send(&text);
        SipMsg::parse(text.as_bytes()).expect("own INVITE parses")
    }

    /// Waits for the final response to `invite` (sent by `send_invite`) and
    /// ACKs it when it is a failure (same branch, RFC 3261 §17.1.1.3). A 2xx
    /// is returned unacknowledged. `None` if nothing final came within `limit`.
    pub fn invite_final(&mut self, invite: &SipMsg, limit: Duration) -> Option<SipMsg> {
        let branch = invite.branch()?.to_string();
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (m, from) = self.recv_socket(left)?;
            if m.status().is_none() {
                self.backlog.push((m, from));
                continue;
            }
            let is_final = m.status().is_some_and(|s| s >= 200);
            if !is_final || m.branch() != Some(branch.as_str()) {
                continue;
            }
            if m.status().is_some_and(|s| s >= 300) {
                let ack = format!(
                    "ACK {ruri} SIP/2.0\r\n\
                     Via: {via}\r\n\
                     Max-Forwards: 70\r\n\
                     From: {from_hdr}\r\n\
                     To: {to}\r\n\
                     Call-ID: {cid}\r\n\
                     CSeq: 1 ACK\r\n\
                     Content-Length: 0\r\n\r\n",
                    ruri = invite.request_uri().unwrap_or_default(),
                    via = invite.header("Via").unwrap_or_default(),
                    from_hdr = invite.header("From").unwrap_or_default(),
                    to = m.header("To").unwrap_or_default(),
                    cid = invite.header("Call-ID").unwrap_or_default(),
                );
                self.send(&ack);
            }
            return Some(m);
        }
    }
}

/// The next datagram on `sock` within `limit` that parses as SIP, with its
/// source; `None` at the deadline. ICMP errors from earlier sends and
/// non-SIP datagrams are skipped.
pub fn recv_sip(sock: &UdpSocket, limit: Duration) -> Option<(SipMsg, SocketAddr)> {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left)).ok()?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Some(m) = buf.get(..n).and_then(SipMsg::parse) {
                    return Some((m, from));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => continue,
        }
    }
}
