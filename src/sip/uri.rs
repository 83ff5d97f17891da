//! URIs: sip, sips (RFC 3261 §19.1), tel (RFC 3966), IPv6 references (RFC 5118), and
//! any other scheme kept as an absolute URI for the caller to refuse with 416.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::{ErrorKind, ParseError};
use super::grammar::{find_unquoted, Params};

/// The URI scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme<'a> {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Any other absolute URI scheme, as written.
    Other(&'a str),
}

/// A host: a domain name, an IPv4 address, or an IPv6 reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// A host name as written.
    Name(&'a str),
    /// A dotted IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written in brackets in URIs and Via).
    V6(Ipv6Addr),
    /// No host (tel and other absolute URIs).
    None,
}

impl<'a> Host<'a> {
    /// Parses `hostname / IPv4address / "[" IPv6address "]"`.
    pub fn parse(s: &'a str) -> Result<Host<'a>, ParseError> {
        let bad = |why: &str| ParseError::new(ErrorKind::Uri, why.to_string());
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| bad("IPv6 reference without closing bracket"))?;
            return inner
                .parse::<Ipv6Addr>()
                .map(Host::V6)
                .map_err(|_| bad("invalid IPv6 address"));
        }
        if s.is_empty() {
            return Err(bad("empty host"));
        }
        if s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            return s
                .parse::<Ipv4Addr>()
                .map(Host::V4)
                .map_err(|_| bad("invalid IPv4 address"));
        }
        let ok = s.len() <= 255
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
            && !s.starts_with(['-', '.']);
        if !ok {
            return Err(bad("invalid host name"));
        }
        Ok(Host::Name(s))
    }

    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
            _ => None,
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
            Host::None => Ok(()),
        }
    }
}

/// Splits `host[:port]`, with IPv6 references in brackets.
pub fn parse_hostport(s: &str) -> Result<(Host<'_>, Option<u16>), ParseError> {
    let bad = |why: &str| ParseError::new(ErrorKind::Uri, why.to_string());
    let (host, port) = if s.starts_with('[') {
        let close = s
            .find(']')
            .ok_or_else(|| bad("IPv6 reference without closing bracket"))?;
        let host = s.get(..=close).unwrap_or("");
        let rest = s.get(close + 1..).unwrap_or("");
        match rest {
            "" => (host, None),
            r => (
                host,
                Some(
                    r.strip_prefix(':')
                        .ok_or_else(|| bad("junk after IPv6 reference"))?,
                ),
            ),
        }
    } else {
        if s.bytes().filter(|c| *c == b':').count() > 1 {
            return Err(bad("IPv6 address not enclosed in brackets"));
        }
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad("invalid port"));
            }
            Some(p.parse::<u16>().map_err(|_| bad("port out of range"))?)
        }
    };
    Ok((Host::parse(host)?, port))
}

/// A parsed URI borrowing from the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The scheme.
    pub scheme: Scheme<'a>,
    /// User part (sip/sips) or the telephone number (tel), still %-escaped.
    pub user: Option<&'a str>,
    /// Password in userinfo (deprecated, but legal).
    pub password: Option<&'a str>,
    /// Host (`Host::None` for tel and other schemes).
    pub host: Host<'a>,
    /// Explicit port.
    pub port: Option<u16>,
    /// URI parameters, `;`-prefixed.
    pub params: Params<'a>,
    /// URI headers after `?`, without the `?`.
    pub headers: Option<&'a str>,
    /// Everything after `scheme:`.
    pub opaque: &'a str,
    /// The whole URI as written.
    pub raw: &'a str,
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b.get(i) == Some(&b'%') {
            let ok = b.get(i + 1).is_some_and(|c| c.is_ascii_hexdigit())
                && b.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit());
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Bytes allowed in a user part or password: printable, not a delimiter RFC 3261
/// excludes there (UTF-8 bytes pass; the header section was checked as UTF-8).
static USER_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0x21usize;
    while c < 256 {
        t[c] = c != 0x7f
            && !matches!(
                c as u8,
                b'<' | b'>' | b'"' | b'@' | b'[' | b']' | b'{' | b'}' | b'|' | b'\\' | b'^' | b'`'
            );
        c += 1;
    }
    t
};

fn user_chars_ok(s: &str) -> bool {
    s.bytes()
        .all(|c| USER_CHAR.get(usize::from(c)).copied().unwrap_or(false))
        && (!s.contains('%') || valid_escapes(s))
}

impl<'a> Uri<'a> {
    /// Parses an absolute URI.
    pub fn parse(raw: &'a str) -> Result<Uri<'a>, ParseError> {
        let bad = |why: &str| ParseError::new(ErrorKind::Uri, why.to_string());
        let raw = raw.trim();
        let (scheme_s, rest) = raw
            .split_once(':')
            .ok_or_else(|| bad("URI without scheme"))?;
        let scheme_ok = scheme_s
            .as_bytes()
            .first()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme_s
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c));
        if !scheme_ok {
            return Err(bad("invalid URI scheme"));
        }
        if raw.bytes().any(|c| c <= b' ' || c == 0x7f) {
            return Err(bad("whitespace or control character in URI"));
        }
        let scheme = if scheme_s.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_s.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_s.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme_s)
        };
        let mut uri = Uri {
            scheme,
            user: None,
            password: None,
            host: Host::None,
            port: None,
            params: Params(""),
            headers: None,
            opaque: rest,
            raw,
        };
        match scheme {
            Scheme::Other(_) => {
                if rest.is_empty() {
                    return Err(bad("empty absolute URI"));
                }
                Ok(uri)
            }
            Scheme::Tel => {
                let (number, params) = match rest.find(';') {
                    Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("")),
                    None => (rest, ""),
                };
                let ok = !number.is_empty()
                    && number
                        .bytes()
                        .all(|c| c.is_ascii_hexdigit() || b"+-.()*#".contains(&c));
                if !ok {
                    return Err(bad("invalid telephone number in tel URI"));
                }
                uri.user = Some(number);
                uri.params = Params(params);
                Ok(uri)
            }
            Scheme::Sip | Scheme::Sips => {
                // userinfo may hold `?`, `;` and `,` (RFC 3261 user-unreserved) but
                // never `@`, and neither may host, parameters or headers: the first
                // `@` ends the userinfo, and only after it does `?` start headers.
                let (userinfo, after_user) = match rest.find('@') {
                    Some(i) => (
                        Some(rest.get(..i).unwrap_or("")),
                        rest.get(i + 1..).unwrap_or(""),
                    ),
                    None => (None, rest),
                };
                let (hostpart, headers) = match after_user.split_once('?') {
                    Some((m, h)) => (m, Some(h)),
                    None => (after_user, None),
                };
                uri.headers = headers;
                if let Some(ui) = userinfo {
                    let (user, password) = match ui.split_once(':') {
                        Some((u, p)) => (u, Some(p)),
                        None => (ui, None),
                    };
                    if user.is_empty() {
                        return Err(bad("empty user part before @"));
                    }
                    if !user_chars_ok(user) || !password.is_none_or(user_chars_ok) {
                        return Err(bad("invalid character or escape in user part"));
                    }
                    uri.user = Some(user);
                    uri.password = password;
                }
                let (hostport, params) = match find_unquoted(hostpart, b';') {
                    Some(i) => (
                        hostpart.get(..i).unwrap_or(""),
                        hostpart.get(i..).unwrap_or(""),
                    ),
                    None => (hostpart, ""),
                };
                let (host, port) = parse_hostport(hostport)?;
                uri.host = host;
                uri.port = port;
                uri.params = Params(params);
                Ok(uri)
            }
        }
    }

    /// Whether this is a sip: or sips: URI (the schemes sipveil routes).
    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    /// The `transport` URI parameter, if any.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }

    /// The user part with %-escapes resolved (escaped NUL included; invalid UTF-8 is
    /// replaced, since this is for comparison and display, not for re-emission).
    pub fn user_decoded(&self) -> Option<Cow<'a, str>> {
        self.user.map(percent_decode)
    }
}

/// Resolves %HH escapes; borrows when there are none.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|h| (*h as char).to_digit(16));
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse("sip:alice:pw@example.com:5070;transport=tcp;lr?Subject=hi%20there")
            .unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("pw"));
        assert_eq!(u.host, Host::Name("example.com"));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.params.has("lr"));
        assert_eq!(u.headers, Some("Subject=hi%20there"));
    }

    #[test]
    fn ipv6_and_escapes() {
        let u = Uri::parse("sip:%61lice%00@[2001:db8::10]:5060").unwrap();
        assert_eq!(u.host, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5060));
        assert_eq!(u.user_decoded().unwrap(), "alice\0");
        assert!(Uri::parse("sip:[2001:db8::10").is_err());
        assert!(Uri::parse("sip:user@2001:db8::10").is_err());
        assert!(Uri::parse("sip:a%zz@x").is_err());
    }

    #[test]
    fn user_with_semicolon_and_tel() {
        let u = Uri::parse("sip:alice;day=tuesday@example.com").unwrap();
        assert_eq!(u.user, Some("alice;day=tuesday"));
        let t = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user, Some("+1-201-555-0123"));
        assert_eq!(t.params.get("phone-context"), Some(Some("example.com")));
    }

    #[test]
    fn unknown_scheme_is_absolute() {
        let u = Uri::parse("http://example.com/x").unwrap();
        assert_eq!(u.scheme, Scheme::Other("http"));
        assert!(!u.is_sip());
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;

    #[test]
    fn user_part_may_hold_question_mark_and_semicolons() {
        let u = Uri::parse("sip:odd?user;x=y,z@example.com;transport=udp?Subject=hi").unwrap();
        assert_eq!(u.user, Some("odd?user;x=y,z"));
        assert_eq!(u.host, Host::Name("example.com"));
        assert_eq!(u.transport(), Some("udp"));
        assert_eq!(u.headers, Some("Subject=hi"));
    }

    #[test]
    fn ipv6_forms_of_rfc5118() {
        let u = Uri::parse("sip:[2001:db8::10:5070]").unwrap();
        assert_eq!(u.host, Host::V6("2001:db8::10:5070".parse().unwrap()));
        assert_eq!(u.port, None);
        let u = Uri::parse("sip:[2001:db8::10]:5070").unwrap();
        assert_eq!(u.port, Some(5070));
        let u = Uri::parse("sip:u@[::ffff:192.0.2.10]").unwrap();
        assert_eq!(u.host.to_string(), "[::ffff:192.0.2.10]");
        let u = Uri::parse("sip:u@[2001:db8::192.0.2.1]").unwrap();
        assert!(matches!(u.host, Host::V6(_)));
        let e = Uri::parse("sip:2001:db8::10").unwrap_err();
        assert!(e.reason.contains("not enclosed in brackets"));
        let e = Uri::parse("sip:[fe80::1%25eth0]").unwrap_err();
        assert!(e.reason.contains("invalid IPv6"));
        assert!(Uri::parse("sip:[2001:db8:::1]").is_err());
        assert!(Uri::parse("sip:[1:2:3:4:5:6:7:8:9]").is_err());
        assert!(Uri::parse("sip:[192.0.2.1]").is_err());
    }

    #[test]
    fn sips_ports_and_hosts() {
        let u = Uri::parse("SIPS:bob@192.0.2.4:5061").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.host, Host::V4("192.0.2.4".parse().unwrap()));
        assert!(Uri::parse("sip:bob@192.0.2.4:70000").is_err());
        assert!(Uri::parse("sip:bob@192.0.2.4:").is_err());
        assert!(Uri::parse("sip:bob@").is_err());
        assert!(Uri::parse("sip:@host").is_err());
        assert!(Uri::parse("sip:bo b@host").is_err());
        assert!(Uri::parse("sip:bob@ho_st").is_err());
        assert!(Uri::parse("tel:").is_err());
        assert!(Uri::parse("1sip:x").is_err());
        let t = Uri::parse("tel:*31#").unwrap();
        assert_eq!(t.user, Some("*31#"));
    }
}
