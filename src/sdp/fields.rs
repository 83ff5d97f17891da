//! Grammar of the individual lines and attributes sipveil reads (RFC 4566, 3605,
//! 8839). Each function takes the text after `x=` (or after `a=name:`) and the
//! 1-based line number, and returns a typed value or an error naming the fault.

use std::net::IpAddr;
use std::ops::Range;

use super::error::{syntax, SdpError};
use super::types::{Candidate, Connection, MediaKind, Origin, Rtcp, RtpMap};

/// The whitespace-separated tokens of `s`, each with its byte offset. SDP uses a
/// single space, but tabs and doubled spaces are tolerated on input.
pub(crate) fn tokens(s: &str) -> impl Iterator<Item = (usize, &str)> + '_ {
    let mut rest = 0usize;
    std::iter::from_fn(move || {
        let tail = s.get(rest..)?;
        let skip = tail.find(|c: char| c != ' ' && c != '\t')?;
        let start = rest + skip;
        let len = s.get(start..)?.find([' ', '\t']).unwrap_or(s.len() - start);
        rest = start + len;
        Some((start, s.get(start..rest)?))
    })
}

fn words(s: &str) -> Vec<&str> {
    tokens(s).map(|(_, t)| t).collect()
}

fn number<T: std::str::FromStr>(token: &str, line: usize, what: &str) -> Result<T, SdpError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax(line, format!("{what} {token:?} is not a number")));
    }
    token
        .parse()
        .map_err(|_| syntax(line, format!("{what} {token:?} is out of range")))
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
pub(crate) fn origin(value: &str, line: usize) -> Result<Origin, SdpError> {
    let w = words(value);
    let [username, sess_id, sess_version, nettype, addrtype, address] = w.as_slice() else {
        return Err(syntax(
            line,
            format!("o= line needs 6 fields, found {}", w.len()),
        ));
    };
    for (what, token) in [("sess-id", sess_id), ("sess-version", sess_version)] {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax(line, format!("o= {what} {token:?} is not a number")));
        }
    }
    Ok(Origin {
        username: (*username).to_owned(),
        sess_id: (*sess_id).to_owned(),
        sess_version: (*sess_version).to_owned(),
        nettype: (*nettype).to_owned(),
        addrtype: (*addrtype).to_owned(),
        address: (*address).to_owned(),
    })
}

/// `<nettype> <addrtype> <connection-address>` as in `c=` and the tail of `a=rtcp`.
/// `what` names the line in errors.
pub(crate) fn connection(words: &[&str], line: usize, what: &str) -> Result<Connection, SdpError> {
    let [nettype, addrtype, address] = words else {
        return Err(syntax(
            line,
            format!(
                "{what} needs nettype, addrtype and address, found {} fields",
                words.len()
            ),
        ));
    };
    // A multicast address carries "/ttl[/count]" (IPv4) or "/count" (IPv6).
    let host = address.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(syntax(line, format!("{what} has an empty address")));
    }
    let ip = host.parse::<IpAddr>().ok();
    let family_ok = !matches!(
        (addrtype.to_ascii_uppercase().as_str(), ip),
        ("IP4", Some(IpAddr::V6(_))) | ("IP6", Some(IpAddr::V4(_)))
    );
    if !family_ok {
        return Err(syntax(
            line,
            format!("{what} address {host} does not match addrtype {addrtype}"),
        ));
    }
    Ok(Connection {
        nettype: (*nettype).to_owned(),
        addrtype: (*addrtype).to_owned(),
        address: host.to_owned(),
        ip,
    })
}

/// The parts of an `m=` line, with byte offsets relative to the start of its value.
pub(crate) struct MediaLine {
    pub kind: MediaKind,
    pub port: u16,
    pub port_count: Option<u16>,
    pub proto: String,
    pub formats: Vec<String>,
    pub port_span: Range<usize>,
    pub formats_at: usize,
}

/// `m=<media> <port>[/<number of ports>] <proto> <fmt> ...`
pub(crate) fn media(value: &str, line: usize, max_formats: usize) -> Result<MediaLine, SdpError> {
    let mut it = tokens(value);
    let (Some((_, kind)), Some((port_at, port_token)), Some((_, proto))) =
        (it.next(), it.next(), it.next())
    else {
        return Err(syntax(line, "m= line needs media, port, proto and formats"));
    };
    let (port_text, count_text) = match port_token.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (port_token, None),
    };
    let port: u16 = number(port_text, line, "m= port")?;
    let port_count = count_text
        .map(|c| number(c, line, "m= port count"))
        .transpose()?;
    let mut formats = Vec::new();
    let mut formats_at = value.len();
    for (at, token) in it {
        if formats.is_empty() {
            formats_at = at;
        }
        if formats.len() >= max_formats {
            return Err(SdpError::TooLarge(format!(
                "line {line}: more than {max_formats} formats on one m= line"
            )));
        }
        formats.push(token.to_owned());
    }
    if formats.is_empty() && port != 0 {
        return Err(syntax(line, "m= line has no formats"));
    }
    Ok(MediaLine {
        kind: MediaKind::from_token(kind),
        port,
        port_count,
        proto: proto.to_owned(),
        formats,
        port_span: port_at..port_at + port_text.len(),
        formats_at,
    })
}

/// `a=rtcp:<port> [<nettype> <addrtype> <connection-address>]`
pub(crate) fn rtcp(value: &str, line: usize) -> Result<Rtcp, SdpError> {
    let w = words(value);
    let Some((port, rest)) = w.split_first() else {
        return Err(syntax(line, "a=rtcp has no port"));
    };
    let port = number(port, line, "a=rtcp port")?;
    let connection = if rest.is_empty() {
        None
    } else {
        Some(connection(rest, line, "a=rtcp")?)
    };
    Ok(Rtcp { port, connection })
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`
pub(crate) fn rtpmap(value: &str, line: usize) -> Result<RtpMap, SdpError> {
    let w = words(value);
    let [pt, encoding] = w.as_slice() else {
        return Err(syntax(
            line,
            "a=rtpmap needs a payload type and an encoding",
        ));
    };
    let payload_type: u8 = number(pt, line, "a=rtpmap payload type")?;
    if payload_type > 127 {
        return Err(syntax(
            line,
            format!("a=rtpmap payload type {payload_type} is above 127"),
        ));
    }
    let mut parts = encoding.splitn(3, '/');
    let name = parts.next().unwrap_or_default();
    let Some(rate) = parts.next() else {
        return Err(syntax(line, "a=rtpmap has no clock rate"));
    };
    if name.is_empty() {
        return Err(syntax(line, "a=rtpmap has an empty encoding name"));
    }
    Ok(RtpMap {
        payload_type,
        encoding: name.to_owned(),
        clock_rate: number(rate, line, "a=rtpmap clock rate")?,
        params: parts.next().map(str::to_owned),
    })
}

/// `a=fmtp:<format> <parameters>`: the format and the rest, as received.
pub(crate) fn fmtp(value: &str, line: usize) -> Result<(String, String), SdpError> {
    let mut it = tokens(value);
    let Some((_, format)) = it.next() else {
        return Err(syntax(line, "a=fmtp has no format"));
    };
    let params = it
        .next()
        .and_then(|(at, _)| value.get(at..))
        .unwrap_or_default();
    Ok((format.to_owned(), params.to_owned()))
}

/// `a=candidate:<foundation> <component> <transport> <priority> <address> <port>
/// typ <type> [raddr <addr>] [rport <port>] *(<extension name> <value>)`
pub(crate) fn candidate(value: &str, line: usize) -> Result<Candidate, SdpError> {
    let w = words(value);
    let [foundation, component, transport, priority, address, port, typ, kind, ext @ ..] =
        w.as_slice()
    else {
        return Err(syntax(
            line,
            format!("a=candidate needs 8 fields, found {}", w.len()),
        ));
    };
    if !typ.eq_ignore_ascii_case("typ") {
        return Err(syntax(line, "a=candidate has no \"typ\" field"));
    }
    let mut related_address = None;
    let mut related_port = None;
    for pair in ext.chunks(2) {
        match pair {
            [name, v] if name.eq_ignore_ascii_case("raddr") => {
                related_address = Some((*v).to_owned());
            }
            [name, v] if name.eq_ignore_ascii_case("rport") => {
                related_port = Some(number(v, line, "a=candidate rport")?);
            }
            _ => {}
        }
    }
    Ok(Candidate {
        foundation: (*foundation).to_owned(),
        component: number(component, line, "a=candidate component")?,
        transport: (*transport).to_owned(),
        priority: number(priority, line, "a=candidate priority")?,
        address: (*address).to_owned(),
        port: number(port, line, "a=candidate port")?,
        kind: (*kind).to_owned(),
        related_address,
        related_port,
    })
}

/// Splits `words` of a `c=` value for [`connection`].
pub(crate) fn connection_line(value: &str, line: usize) -> Result<Connection, SdpError> {
    connection(&words(value), line, "c= line")
}

/// The tokens of `a=ice-options`.
pub(crate) fn option_tokens(value: &str) -> Vec<String> {
    tokens(value).map(|(_, t)| t.to_owned()).collect()
}
