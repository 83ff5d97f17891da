//! Typed, zero-copy views of the headers an SBC reads. Each view borrows from the
//! message and is parsed on demand, so a message that is only relayed pays nothing.

use std::borrow::Cow;

use super::error::{ErrorKind, ParseError};
use super::grammar::{find_unquoted, is_token, parse_u32, split_list, unquote, Params};
use super::message::{Method, SipMessage};
use super::name::HeaderName;
use super::uri::{Host, Uri};

fn bad(why: &str) -> ParseError {
    ParseError::new(ErrorKind::HeaderValue, why.to_string())
}

/// One Via value (RFC 3261 §20.42).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name, normally "SIP".
    pub protocol: &'a str,
    /// Protocol version, normally "2.0".
    pub version: &'a str,
    /// Transport token (UDP, TCP, TLS, SCTP, WS, WSS...).
    pub transport: &'a str,
    /// sent-by host.
    pub host: Host<'a>,
    /// sent-by port.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via value; spaces and folding around `/` and `:` are legal.
    pub fn parse(v: &'a str) -> Result<Via<'a>, ParseError> {
        let (main, params) = match find_unquoted(v, b';') {
            Some(i) => (v.get(..i).unwrap_or(""), v.get(i..).unwrap_or("")),
            None => (v, ""),
        };
        let mut parts = main.splitn(3, '/');
        let protocol = parts.next().unwrap_or("").trim();
        let version = parts
            .next()
            .ok_or_else(|| bad("Via without protocol version"))?
            .trim();
        let rest = parts
            .next()
            .ok_or_else(|| bad("Via without transport"))?
            .trim_start();
        let split = rest
            .find([' ', '\t', '\r', '\n'])
            .ok_or_else(|| bad("Via without sent-by"))?;
        let transport = rest.get(..split).unwrap_or("");
        let sent_by = rest.get(split..).unwrap_or("").trim();
        if !is_token(protocol) || !is_token(version) || !is_token(transport) {
            return Err(bad("malformed Via protocol"));
        }
        // sent-by = host [ SWS ":" SWS port ]: remove whitespace around the colon.
        let (host_s, port_s) = if sent_by.starts_with('[') {
            let close = sent_by
                .find(']')
                .ok_or_else(|| bad("Via IPv6 sent-by without closing bracket"))?;
            let host = sent_by.get(..=close).unwrap_or("");
            let tail = sent_by.get(close + 1..).unwrap_or("").trim();
            match tail {
                "" => (host, None),
                t => (
                    host,
                    Some(
                        t.strip_prefix(':')
                            .ok_or_else(|| bad("junk after Via sent-by"))?
                            .trim(),
                    ),
                ),
            }
        } else {
            if sent_by.bytes().filter(|c| *c == b':').count() > 1 {
                return Err(bad("Via sent-by IPv6 address not enclosed in brackets"));
            }
            match sent_by.split_once(':') {
                Some((h, p)) => (h.trim(), Some(p.trim())),
                None => (sent_by, None),
            }
        };
        let host = Host::parse(host_s).map_err(|e| bad(&format!("Via sent-by: {}", e.reason)))?;
        let port = match port_s {
            None => None,
            Some(p) => Some(
                parse_u32(p)
                    .filter(|n| *n <= 65535 && !p.is_empty())
                    .ok_or_else(|| bad("Via sent-by port is not a port number"))?
                    as u16,
            ),
        };
        let params = Params(params);
        if let Some(Some(rport)) = params.get("rport") {
            if parse_u32(rport).is_none_or(|p| p > 65535) {
                return Err(bad("Via rport is not a port number"));
            }
        }
        Ok(Via {
            protocol,
            version,
            transport,
            host,
            port,
            params,
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// Whether the branch carries the RFC 3261 magic cookie (else the peer is RFC 2543).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }

    /// The received parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// `None` when absent, `Some(None)` when requested (bare), `Some(Some(p))` when filled.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.trim().parse::<u16>().ok()))
    }

    /// The maddr parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route,
/// Record-Route, P-Asserted-Identity, P-Preferred-Identity, Remote-Party-ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (quotes kept); see [`NameAddr::display_name`].
    pub display: Option<&'a str>,
    /// The URI.
    pub uri: Uri<'a>,
    /// Header parameters (tag, expires, q, ...).
    pub params: Params<'a>,
    /// Whether the URI was in angle brackets.
    pub bracketed: bool,
}

impl<'a> NameAddr<'a> {
    /// Parses `[display] <uri> *(;param)` or `uri *(;param)`.
    pub fn parse(v: &'a str) -> Result<NameAddr<'a>, ParseError> {
        let v = v.trim();
        if v.is_empty() {
            return Err(bad("empty address"));
        }
        let lt = find_unquoted(v, b'<');
        let (display, uri_s, rest, bracketed) = match lt {
            Some(i) => {
                let display = v.get(..i).unwrap_or("").trim();
                let after = v.get(i + 1..).unwrap_or("");
                let gt = after
                    .find('>')
                    .ok_or_else(|| bad("address without closing '>'"))?;
                let uri_s = after.get(..gt).unwrap_or("").trim();
                let rest = after.get(gt + 1..).unwrap_or("");
                let display = if display.is_empty() {
                    None
                } else {
                    Some(display)
                };
                (display, uri_s, rest, true)
            }
            None => {
                if v.starts_with('"') {
                    if !closes_quote(v) {
                        return Err(bad("unterminated quoted string in display name"));
                    }
                    return Err(bad("display name without <uri>"));
                }
                if v.contains('>') {
                    return Err(bad("'>' without matching '<'"));
                }
                // RFC 3261 §20.10: a URI with a comma or question mark must be in <>.
                if find_unquoted(v, b';')
                    .map_or(v, |i| v.get(..i).unwrap_or(""))
                    .contains(['?', ','])
                {
                    return Err(bad("URI with '?' or ',' not enclosed in <>"));
                }
                match find_unquoted(v, b';') {
                    Some(i) => (
                        None,
                        v.get(..i).unwrap_or(""),
                        v.get(i..).unwrap_or(""),
                        false,
                    ),
                    None => (None, v, "", false),
                }
            }
        };
        if let Some(d) = display {
            let quoted = d.starts_with('"');
            let ok = if quoted {
                is_quoted_string(d)
            } else {
                d.split_whitespace().all(is_token)
            };
            if !ok {
                return Err(bad("malformed display name"));
            }
        }
        let rest = rest.trim();
        if !rest.is_empty() && !rest.starts_with(';') {
            return Err(bad("junk after address"));
        }
        let uri = Uri::parse(uri_s).map_err(|e| ParseError::new(ErrorKind::Uri, e.reason))?;
        Ok(NameAddr {
            display,
            uri,
            params: Params(rest),
            bracketed,
        })
    }

    /// The display name with quotes and escapes resolved.
    pub fn display_name(&self) -> Option<Cow<'a, str>> {
        self.display.map(unquote)
    }

    /// The tag parameter (From/To).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }

    /// The expires parameter (Contact).
    pub fn expires(&self) -> Option<u32> {
        self.params.get("expires").flatten().and_then(parse_u32)
    }

    /// The q parameter (Contact), 0.0 to 1.0.
    pub fn q(&self) -> Option<f32> {
        self.params
            .get("q")
            .flatten()
            .and_then(|q| q.parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q))
    }
}

/// CSeq (RFC 3261 §20.16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (below 2^31).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(v: &str) -> Result<CSeq, ParseError> {
        let v = v.trim();
        let split = v
            .find([' ', '\t'])
            .ok_or_else(|| bad("CSeq without method"))?;
        let seq = parse_u32(v.get(..split).unwrap_or(""))
            .filter(|n| *n < 1 << 31)
            .ok_or_else(|| bad("CSeq number is not a number below 2^31"))?;
        let method = Method::parse(v.get(split..).unwrap_or("").trim())
            .ok_or_else(|| bad("CSeq method is not a token"))?;
        Ok(CSeq { seq, method })
    }
}

/// Digest credentials or challenge parameters (RFC 3261 §22, RFC 8760), looked up
/// on demand from the raw `k=v, k="v"` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest<'a> {
    /// The auth scheme (normally "Digest").
    pub scheme: &'a str,
    /// The parameter list as written.
    pub raw: &'a str,
}

impl<'a> Digest<'a> {
    /// Parses `scheme param *(, param)`.
    pub fn parse(v: &'a str) -> Result<Digest<'a>, ParseError> {
        let v = v.trim();
        let (scheme, raw) = match v.find([' ', '\t']) {
            Some(i) => (v.get(..i).unwrap_or(""), v.get(i..).unwrap_or("").trim()),
            None => (v, ""),
        };
        if !is_token(scheme) {
            return Err(bad("authentication scheme is not a token"));
        }
        let d = Digest { scheme, raw };
        for item in split_list(raw) {
            let (k, _) = item
                .split_once('=')
                .ok_or_else(|| bad("auth parameter without '='"))?;
            if !is_token(k.trim()) {
                return Err(bad("auth parameter name is not a token"));
            }
        }
        Ok(d)
    }

    /// Every parameter as (name, raw value with quotes).
    pub fn params(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        split_list(self.raw)
            .filter_map(|item| item.split_once('=').map(|(k, v)| (k.trim(), v.trim())))
    }

    /// A parameter's value with quotes resolved; names compare case-insensitively.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.params()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| unquote(v))
    }
}

/// Session-Expires (RFC 4028).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionExpires<'a> {
    /// Interval in seconds.
    pub delta: u32,
    /// `uac` or `uas`, when given.
    pub refresher: Option<&'a str>,
}

impl<'a> SessionExpires<'a> {
    /// Parses `delta-seconds *(;param)`.
    pub fn parse(v: &'a str) -> Result<SessionExpires<'a>, ParseError> {
        let (d, params) = match v.find(';') {
            Some(i) => (v.get(..i).unwrap_or(""), v.get(i..).unwrap_or("")),
            None => (v, ""),
        };
        let delta = parse_u32(d).ok_or_else(|| bad("Session-Expires is not a number"))?;
        Ok(SessionExpires {
            delta,
            refresher: Params(params).get("refresher").flatten(),
        })
    }
}

/// Whether the quoted string that `s` opens is closed somewhere in `s`.
fn closes_quote(s: &str) -> bool {
    let mut escaped = false;
    for c in s.bytes().skip(1) {
        if escaped {
            escaped = false;
        } else if c == b'\\' {
            escaped = true;
        } else if c == b'"' {
            return true;
        }
    }
    false
}

/// Whether `s` is exactly one quoted string: opening quote, escapes resolved, the
/// closing quote last.
fn is_quoted_string(s: &str) -> bool {
    let mut chars = s.chars();
    if chars.next() != Some('"') {
        return false;
    }
    let mut escaped = false;
    let mut closed = false;
    for c in chars {
        if closed {
            return false;
        }
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            closed = true;
        }
    }
    closed
}

fn name_addrs<'a>(
    m: &'a SipMessage,
    name: HeaderName,
) -> impl Iterator<Item = Result<NameAddr<'a>, ParseError>> + 'a {
    m.header_values(name).map(NameAddr::parse)
}

fn required(m: &SipMessage, name: HeaderName) -> Result<&str, ParseError> {
    m.header(name).ok_or_else(|| {
        ParseError::new(
            ErrorKind::MissingHeader,
            format!("missing {} header", name.as_str()),
        )
    })
}

impl SipMessage {
    /// Every Via value, top first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> + '_ {
        self.header_values(HeaderName::Via).map(Via::parse)
    }

    /// The top Via.
    pub fn top_via(&self) -> Result<Via<'_>, ParseError> {
        let v = self
            .header_values(HeaderName::Via)
            .next()
            .ok_or_else(|| ParseError::new(ErrorKind::MissingHeader, "missing Via header"))?;
        Via::parse(v)
    }

    /// From.
    pub fn from_header(&self) -> Result<NameAddr<'_>, ParseError> {
        NameAddr::parse(required(self, HeaderName::From)?).map_err(|e| prefix(e, "From"))
    }

    /// To.
    pub fn to_header(&self) -> Result<NameAddr<'_>, ParseError> {
        NameAddr::parse(required(self, HeaderName::To)?).map_err(|e| prefix(e, "To"))
    }

    /// Call-ID, trimmed.
    pub fn call_id(&self) -> Option<&str> {
        self.header(HeaderName::CallId).filter(|c| !c.is_empty())
    }

    /// CSeq.
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(required(self, HeaderName::CSeq)?)
    }

    /// Max-Forwards: `None` when absent.
    pub fn max_forwards(&self) -> Result<Option<u32>, ParseError> {
        self.header(HeaderName::MaxForwards)
            .map(|v| {
                parse_u32(v)
                    .filter(|n| *n <= 255)
                    .ok_or_else(|| bad("Max-Forwards is not a number 0-255"))
            })
            .transpose()
    }

    /// Whether the Contact is the wildcard `*` (REGISTER removal of all bindings).
    pub fn contact_is_star(&self) -> bool {
        self.header_values(HeaderName::Contact).any(|c| c == "*")
    }

    /// Contact values (excluding `*`).
    pub fn contacts(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.header_values(HeaderName::Contact)
            .filter(|c| *c != "*")
            .map(NameAddr::parse)
    }

    /// Route values, in order.
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        name_addrs(self, HeaderName::Route)
    }

    /// Record-Route values, in order.
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        name_addrs(self, HeaderName::RecordRoute)
    }

    /// P-Asserted-Identity values.
    pub fn p_asserted_identities(
        &self,
    ) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        name_addrs(self, HeaderName::PAssertedIdentity)
    }

    /// P-Preferred-Identity values.
    pub fn p_preferred_identities(
        &self,
    ) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        name_addrs(self, HeaderName::PPreferredIdentity)
    }

    /// Remote-Party-ID values (draft-ietf-sip-privacy, still sent by gateways).
    pub fn remote_party_ids(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        name_addrs(self, HeaderName::RemotePartyId)
    }

    /// Content-Length as declared.
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        self.declared_content_length()
    }

    /// Content-Type as written.
    pub fn content_type(&self) -> Option<&str> {
        self.header(HeaderName::ContentType)
    }

    /// The Expires header in seconds.
    pub fn expires(&self) -> Option<u32> {
        self.header(HeaderName::Expires).and_then(parse_u32)
    }

    /// Authorization (digest credentials), when present.
    pub fn authorization(&self) -> Option<Result<Digest<'_>, ParseError>> {
        self.header(HeaderName::Authorization).map(Digest::parse)
    }

    /// Proxy-Authorization, when present.
    pub fn proxy_authorization(&self) -> Option<Result<Digest<'_>, ParseError>> {
        self.header(HeaderName::ProxyAuthorization)
            .map(Digest::parse)
    }

    /// Every WWW-Authenticate challenge.
    pub fn www_authenticate(&self) -> impl Iterator<Item = Result<Digest<'_>, ParseError>> + '_ {
        self.header_lines(HeaderName::WwwAuthenticate)
            .map(Digest::parse)
    }

    /// Every Proxy-Authenticate challenge.
    pub fn proxy_authenticate(&self) -> impl Iterator<Item = Result<Digest<'_>, ParseError>> + '_ {
        self.header_lines(HeaderName::ProxyAuthenticate)
            .map(Digest::parse)
    }

    /// Privacy values (RFC 3323: `priv-value *(";" priv-value)`), lower-cased compare
    /// is up to the caller.
    pub fn privacy(&self) -> impl Iterator<Item = &str> + '_ {
        self.header_lines(HeaderName::Privacy)
            .flat_map(|l| l.split([';', ',']).map(str::trim).filter(|s| !s.is_empty()))
    }

    /// Require option tags.
    pub fn require(&self) -> impl Iterator<Item = &str> + '_ {
        self.header_values(HeaderName::Require)
    }

    /// Supported option tags.
    pub fn supported(&self) -> impl Iterator<Item = &str> + '_ {
        self.header_values(HeaderName::Supported)
    }

    /// Allow methods.
    pub fn allow(&self) -> impl Iterator<Item = &str> + '_ {
        self.header_values(HeaderName::Allow)
    }

    /// Session-Expires, when present.
    pub fn session_expires(&self) -> Option<Result<SessionExpires<'_>, ParseError>> {
        self.header(HeaderName::SessionExpires)
            .map(SessionExpires::parse)
    }

    /// Checks what every SIP message must carry to be processed (RFC 3261 §8.1.1,
    /// §8.2): request-URI (without URI headers), Via, From, To, Call-ID, CSeq
    /// (matching the method), each of those at most once, Max-Forwards and
    /// Content-Length if present, and the Contact, Route and Record-Route values the
    /// SBC rewrites. The error names the fault.
    pub fn validate(&self) -> Result<(), ParseError> {
        if let Some(uri) = self.request_uri() {
            let u = Uri::parse(uri).map_err(|e| {
                ParseError::new(ErrorKind::Uri, format!("request-URI: {}", e.reason))
            })?;
            // RFC 3261 §19.1.1: URI headers are not allowed in a request-URI.
            if u.is_sip() && u.headers.is_some() {
                return Err(ParseError::new(
                    ErrorKind::Uri,
                    "request-URI: headers ('?') not allowed in a request-URI",
                ));
            }
        }
        // Fields that must appear exactly once (RFC 3261 §7.3.1, RFC 4475 §3.3.8).
        for name in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
            HeaderName::MaxForwards,
        ] {
            if self.header_lines(name).nth(1).is_some() {
                return Err(bad(&format!("multiple {} headers", name.as_str())));
            }
        }
        let mut n = 0usize;
        for v in self.vias() {
            v.map_err(|e| prefix(e, "Via"))?;
            n += 1;
        }
        if n == 0 {
            return Err(ParseError::new(
                ErrorKind::MissingHeader,
                "missing Via header",
            ));
        }
        self.from_header()?;
        self.to_header()?;
        match self.call_id() {
            None => {
                return Err(ParseError::new(
                    ErrorKind::MissingHeader,
                    "missing Call-ID header",
                ))
            }
            Some(c) if c.contains(|ch: char| ch.is_whitespace() || ch == ',') => {
                return Err(bad("malformed Call-ID (whitespace or comma)"));
            }
            Some(_) => {}
        }
        let cseq = self.cseq().map_err(|e| prefix(e, "CSeq"))?;
        if let Some(m) = self.method() {
            if *m != cseq.method {
                return Err(bad("CSeq method does not match the request method"));
            }
        }
        self.max_forwards()?;
        self.declared_content_length()?;
        // Headers the SBC rewrites or routes by: unreadable ones cannot be relayed.
        for c in self.contacts() {
            c.map_err(|e| prefix(e, "Contact"))?;
        }
        if self.contact_is_star() && self.contacts().next().is_some() {
            return Err(bad("Contact: * mixed with other contacts"));
        }
        for r in self.routes() {
            r.map_err(|e| prefix(e, "Route"))?;
        }
        for r in self.record_routes() {
            r.map_err(|e| prefix(e, "Record-Route"))?;
        }
        Ok(())
    }
}

fn prefix(mut e: ParseError, what: &str) -> ParseError {
    if !e.reason.starts_with(what) {
        e.reason = format!("{what}: {}", e.reason);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_spaces_and_ipv6() {
        let v =
            Via::parse("SIP / 2.0 / UDP [2001:db8::9:1] : 5070 ;branch=z9hG4bKx;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::V6("2001:db8::9:1".parse().unwrap()));
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.branch(), Some("z9hG4bKx"));
        assert_eq!(v.rport(), Some(None));
        let v = Via::parse("SIP/2.0/TCP host.example.com;branch=1234;received=10.0.0.1;rport=5062")
            .unwrap();
        assert_eq!(v.host, Host::Name("host.example.com"));
        assert!(!v.has_rfc3261_branch());
        assert_eq!(v.rport(), Some(Some(5062)));
        assert_eq!(v.received(), Some("10.0.0.1"));
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("SIP/2.0/UDP host;rport=99999").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(r#""Bob \"B\" Smith" <sip:bob@example.com;transport=tcp>;tag=abc"#)
            .unwrap();
        assert_eq!(n.display_name().unwrap(), r#"Bob "B" Smith"#);
        assert_eq!(n.tag(), Some("abc"));
        assert_eq!(n.uri.transport(), Some("tcp"));
        let n = NameAddr::parse("sip:bob@example.com;tag=xyz").unwrap();
        assert_eq!(n.tag(), Some("xyz"));
        assert!(!n.uri.params.has("tag"));
        let n = NameAddr::parse("Bob Smith <sip:bob@example.com>;expires=60;q=0.5").unwrap();
        assert_eq!(n.display_name().unwrap(), "Bob Smith");
        assert_eq!(n.expires(), Some(60));
        assert_eq!(n.q(), Some(0.5));
        assert!(NameAddr::parse("<sip:bob@example.com").is_err());
        assert!(NameAddr::parse("\"unterminated <sip:x@y>").is_err());
    }

    #[test]
    fn cseq_and_digest() {
        let c = CSeq::parse("4711 INVITE").unwrap();
        assert_eq!(c.seq, 4711);
        assert_eq!(c.method, Method::Invite);
        assert!(CSeq::parse("x INVITE").is_err());
        assert!(CSeq::parse("99999999999 INVITE").is_err());
        let d = Digest::parse(r#"Digest username="alice", realm="example.test", nonce="n,1", uri="sip:example.test", response="abc", qop=auth, nc=00000001, cnonce="c""#).unwrap();
        assert_eq!(d.scheme, "Digest");
        assert_eq!(d.get("nonce").unwrap(), "n,1");
        assert_eq!(d.get("QOP").unwrap(), "auth");
        assert_eq!(d.get("nc").unwrap(), "00000001");
    }
}

#[cfg(test)]
mod rule_tests {
    //! Typed access to every header the SBC reads, and the checks of `validate`.
    use super::*;
    use crate::sip::uri::Scheme;

    const REQ: &str = "INVITE sips:bob@[2001:db8::5]:5061 SIP/2.0\r\n\
Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKa;maddr=239.1.1.1;received=192.0.2.99;rport=40000\r\n\
Max-Forwards: 69\r\n\
From: \"A\" <sip:alice@example.com>;tag=f1\r\n\
To: <tel:+15551234;phone-context=example.com>\r\n\
Call-ID: abc@192.0.2.1\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:alice@192.0.2.1>;expires=120;q=0.7, \"Two\" <sip:a2@192.0.2.1>\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Record-Route: <sip:rr1;lr>, <sip:rr2;lr>\r\n\
Content-Type: application/sdp\r\n\
Expires: 300\r\n\
Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sips:bob@[2001:db8::5]\", response=\"r\"\r\n\
Proxy-Authorization: Digest username=\"alice\", realm=\"proxy\"\r\n\
Privacy: id; header\r\n\
P-Asserted-Identity: <sip:alice@example.com>, <tel:+15550000>\r\n\
P-Preferred-Identity: \"Alice\" <sip:alice@example.com>\r\n\
Remote-Party-ID: \"Alice\" <sip:alice@example.com>;party=calling;privacy=off\r\n\
Require: timer\r\n\
Supported: 100rel, timer\r\n\
Allow: INVITE, ACK\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn every_typed_header() {
        let m = SipMessage::parse(REQ.as_bytes()).unwrap();
        m.validate().unwrap();
        let ruri = Uri::parse(m.request_uri().unwrap()).unwrap();
        assert_eq!(ruri.scheme, Scheme::Sips);
        assert_eq!(ruri.port, Some(5061));
        let v = m.top_via().unwrap();
        assert_eq!(v.transport, "TLS");
        assert_eq!(v.maddr(), Some("239.1.1.1"));
        assert_eq!(v.received(), Some("192.0.2.99"));
        assert_eq!(v.rport(), Some(Some(40000)));
        assert_eq!(m.max_forwards().unwrap(), Some(69));
        assert_eq!(m.to_header().unwrap().uri.scheme, Scheme::Tel);
        assert_eq!(m.cseq().unwrap().seq, 7);
        let c: Vec<_> = m.contacts().map(|c| c.unwrap()).collect();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].expires(), Some(120));
        assert_eq!(c[0].q(), Some(0.7));
        assert_eq!(c[1].display_name().unwrap(), "Two");
        assert!(m.routes().next().unwrap().unwrap().uri.params.has("lr"));
        assert_eq!(m.record_routes().count(), 2);
        assert_eq!(m.content_type(), Some("application/sdp"));
        assert_eq!(m.content_length().unwrap(), Some(0));
        assert_eq!(m.expires(), Some(300));
        let a = m.authorization().unwrap().unwrap();
        assert_eq!(a.get("uri").unwrap(), "sips:bob@[2001:db8::5]");
        assert_eq!(
            m.proxy_authorization()
                .unwrap()
                .unwrap()
                .get("realm")
                .unwrap(),
            "proxy"
        );
        assert_eq!(m.privacy().collect::<Vec<_>>(), vec!["id", "header"]);
        assert_eq!(m.p_asserted_identities().count(), 2);
        assert_eq!(m.p_preferred_identities().count(), 1);
        let rpid = m.remote_party_ids().next().unwrap().unwrap();
        assert_eq!(rpid.params.get("party"), Some(Some("calling")));
        assert_eq!(m.require().collect::<Vec<_>>(), vec!["timer"]);
        assert_eq!(m.supported().count(), 2);
        assert_eq!(m.allow().count(), 2);
        let se = m.session_expires().unwrap().unwrap();
        assert_eq!((se.delta, se.refresher), (1800, Some("uac")));
    }

    fn invalid(raw: &str) -> ParseError {
        match SipMessage::parse(raw.as_bytes()) {
            Ok(m) => m.validate().unwrap_err(),
            Err(e) => e,
        }
    }

    #[test]
    fn validate_names_the_fault() {
        let base = "OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n";
        SipMessage::parse(base.as_bytes())
            .unwrap()
            .validate()
            .unwrap();
        let cases = [
            ("Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n", "", "missing Via"),
            ("From: <sip:a@x>;tag=1\r\n", "", "missing From"),
            ("To: <sip:b@x>\r\n", "", "missing To"),
            ("Call-ID: c\r\n", "", "missing Call-ID"),
            ("CSeq: 1 OPTIONS\r\n", "", "missing CSeq"),
            (
                "CSeq: 1 OPTIONS\r\n",
                "CSeq: 1 INVITE\r\n",
                "does not match",
            ),
            ("CSeq: 1 OPTIONS\r\n", "CSeq: OPTIONS\r\n", "CSeq"),
            (
                "CSeq: 1 OPTIONS\r\n",
                "CSeq: 1 OPTIONS\r\nCSeq: 2 OPTIONS\r\n",
                "multiple CSeq",
            ),
            (
                "Call-ID: c\r\n",
                "Call-ID: c\r\ni: d\r\n",
                "multiple Call-ID",
            ),
            ("Call-ID: c\r\n", "Call-ID: c d\r\n", "malformed Call-ID"),
            (
                "To: <sip:b@x>\r\n",
                "To: <sip:b@x>\r\nt: <sip:c@x>\r\n",
                "multiple To",
            ),
            (
                "Max-Forwards: 70\r\n",
                "Max-Forwards: 256\r\n",
                "Max-Forwards",
            ),
            (
                "Max-Forwards: 70\r\n",
                "Max-Forwards: 70\r\nMax-Forwards: 69\r\n",
                "multiple Max-Forwards",
            ),
            (
                "sip:b@x SIP",
                "sip:b@x?Route=%3Csip:evil%3E SIP",
                "headers ('?') not allowed",
            ),
            ("sip:b@x SIP", "<sip:b@x> SIP", "request-URI"),
            (
                "sip:b@x SIP",
                "sip:b@2001:db8::1 SIP",
                "not enclosed in brackets",
            ),
            (
                "From: <sip:a@x>;tag=1\r\n",
                "From: sip:a@x?x=y;tag=1\r\n",
                "not enclosed in <>",
            ),
            (
                "From: <sip:a@x>;tag=1\r\n",
                "From: Bell, Alexander <sip:a@x>;tag=1\r\n",
                "display name",
            ),
            (
                "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n",
                "Via: SIP/2.0/UDP 2001:db8::1;branch=z9hG4bK1\r\n",
                "not enclosed in brackets",
            ),
        ];
        for (from, to, why) in cases {
            let raw = base.replacen(from, to, 1);
            assert_ne!(raw, base, "{from:?}");
            let e = invalid(&raw);
            assert!(e.reason.contains(why), "{raw:?}: {}", e.reason);
        }
    }

    #[test]
    fn odd_but_legal_via_forms() {
        let v = Via::parse(
            "SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKx;rport",
        )
        .unwrap();
        assert_eq!(v.received(), Some("[2001:db8::9:255]"));
        let v = Via::parse("SIP/2.0/UDP [::ffff:192.0.2.1]:5060;rport=5060").unwrap();
        assert_eq!(v.host, Host::V6("::ffff:192.0.2.1".parse().unwrap()));
        assert_eq!(v.rport(), Some(Some(5060)));
        let v = Via::parse("SIP/2.0/UNKNOWN-TRANSPORT host.example.com;branch=oldstyle").unwrap();
        assert_eq!(v.transport, "UNKNOWN-TRANSPORT");
        assert!(!v.has_rfc3261_branch());
        assert!(Via::parse("SIP/2.0/UDP [2001:db8::1").is_err());
        assert!(Via::parse("SIP/2.0/UDP [2001:db8::1]x").is_err());
        assert!(Via::parse("SIP/2.0/UDP h:99999").is_err());
    }
}
