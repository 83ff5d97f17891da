//! Small pieces of wire handling the engine shares: tags, Via stamping, where
//! responses and in-dialog requests go.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::dialog::leg::Leg;
use crate::sip::{HeaderName, NameAddr, SipMessage, Uri};
use crate::transaction::{Peer, Transport};

pub(super) fn now_unix() -> u64 {
    unix_now()
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Removes the `tag` parameter from a From/To value, keeping everything else.
pub(super) fn strip_tag(value: &str) -> String {
    let Ok(na) = NameAddr::parse(value) else {
        return value.to_string();
    };
    let Some(tag) = na.tag() else {
        return value.to_string();
    };
    let params = na.params.as_str();
    let mut kept = String::new();
    for (n, v) in na.params.iter() {
        if n.eq_ignore_ascii_case("tag") && v == Some(tag) {
            continue;
        }
        kept.push(';');
        kept.push_str(n);
        if let Some(v) = v {
            kept.push('=');
            kept.push_str(v);
        }
    }
    let base_len = value.trim().len().saturating_sub(params.len());
    let base = value.trim().get(..base_len).unwrap_or(value).trim_end();
    format!("{base}{kept}")
}

/// The first URI of a Contact value, as written.
pub(super) fn contact_uri(msg: &SipMessage) -> Option<String> {
    msg.contacts()
        .next()
        .and_then(|c| c.ok())
        .map(|c| c.uri.raw.to_string())
}

/// Record-Route values in received order.
pub(super) fn record_routes(msg: &SipMessage) -> Vec<String> {
    msg.header_values(HeaderName::RecordRoute)
        .map(str::to_string)
        .collect()
}

/// The address a request on a leg is sent to. On the caller's leg, where the
/// request came from (symmetric signaling: the caller may be behind NAT and its
/// Contact unreachable); on the callee's leg the first Route or the remote target
/// when it names an IP literal, else the next hop the call was sent to.
pub(super) fn dialog_peer(leg: &Leg) -> Peer {
    let mut peer = leg.peer.to_peer();
    if leg.latched {
        return peer;
    }
    let target = match leg.route_set.first() {
        Some(r) => NameAddr::parse(r).ok().map(|n| {
            (
                n.uri.host.ip(),
                n.uri.port,
                n.uri.transport().map(str::to_string),
            )
        }),
        None => Uri::parse(&leg.remote_target)
            .ok()
            .map(|u| (u.host.ip(), u.port, u.transport().map(str::to_string))),
    };
    if let Some((Some(ip), port, transport)) = target {
        let tcp = transport
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("tcp"))
            || peer.transport == Transport::Tcp;
        // Only leave the peer's own connection when the target really differs.
        let addr = SocketAddr::new(ip, port.unwrap_or(5060));
        if addr != peer.addr {
            peer.addr = addr;
            peer.conn = None;
        }
        if tcp {
            peer.transport = Transport::Tcp;
        }
    }
    peer
}

/// Where responses to a request go (RFC 3261 §18.2.2, RFC 3581): over a stream
/// back on the connection; over UDP to the source address, and to the source port
/// when rport was asked for, else to the sent-by port.
pub(crate) fn response_peer(msg: &SipMessage, src: &Peer) -> Peer {
    let mut p = src.clone();
    if src.transport == Transport::Udp {
        if let Ok(via) = msg.top_via() {
            if via.rport().is_none() {
                p.addr.set_port(via.port.unwrap_or(5060));
            }
        }
    }
    p
}

/// Adds `received` and fills `rport` on the top Via of a request (RFC 3581).
pub(super) fn stamp_via(msg: &mut SipMessage, src: &Peer) {
    let Ok(via) = msg.top_via() else { return };
    let wants_rport = via.rport() == Some(None);
    let host_differs = match via.host.ip() {
        Some(ip) => ip != src.addr.ip(),
        None => true,
    };
    if !wants_rport && !host_differs {
        return;
    }
    let mut v = String::with_capacity(96);
    v.push_str(via.protocol);
    v.push('/');
    v.push_str(via.version);
    v.push('/');
    v.push_str(via.transport);
    v.push(' ');
    v.push_str(&via.host.to_string());
    if let Some(p) = via.port {
        v.push(':');
        v.push_str(&p.to_string());
    }
    for (n, val) in via.params.iter() {
        if n.eq_ignore_ascii_case("received") || n.eq_ignore_ascii_case("rport") {
            continue;
        }
        v.push(';');
        v.push_str(n);
        if let Some(val) = val {
            v.push('=');
            v.push_str(val);
        }
    }
    if wants_rport || host_differs {
        v.push_str(";received=");
        v.push_str(&src.addr.ip().to_string());
    }
    if wants_rport {
        v.push_str(";rport=");
        v.push_str(&src.addr.port().to_string());
    }
    msg.remove_first_value(HeaderName::Via);
    msg.prepend(HeaderName::Via, &v);
}

/// A reason phrase safe to put on a status line.
pub(super) fn phrase(reason: &str) -> String {
    reason
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect()
}

/// The user part of a From/To/R-URI, for the other leg and CDRs.
pub(super) fn user_of(uri: &Uri<'_>) -> Option<String> {
    uri.user.map(|u| u.to_string())
}

pub(super) fn name_addr(display: Option<&str>, uri: &str) -> String {
    match display {
        Some(d) => format!("{d} <{uri}>"),
        None => format!("<{uri}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_tag_keeps_other_params() {
        assert_eq!(
            strip_tag("\"A\" <sip:a@x>;tag=123;foo=bar"),
            "\"A\" <sip:a@x>;foo=bar"
        );
        assert_eq!(strip_tag("<sip:a@x>"), "<sip:a@x>");
        assert_eq!(strip_tag("sip:a@x;tag=9"), "sip:a@x");
    }
}
