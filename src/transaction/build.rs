//! Messages the transaction layer builds itself: the hop-by-hop ACK for a non-2xx
//! final response (§17.1.1.3) and CANCEL (§9.1). Both copy fields verbatim from the
//! INVITE, because the next hop matches them byte for byte against its own
//! transaction.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::sip::{HeaderName, Method, SipMessage, Via};

use super::Peer;

/// The ACK for a non-2xx final response to `invite` (RFC 3261 §17.1.1.3): same
/// Request-URI, top Via (so the same branch), From, Call-ID and Route set as the
/// INVITE, the To header of the response (with its tag), and the CSeq number with
/// method ACK. The server transaction matches it to the INVITE by branch.
pub fn build_ack(invite: &SipMessage, response: &SipMessage) -> Option<SipMessage> {
    let uri = invite.request_uri()?;
    let to = response.header(HeaderName::To)?;
    build(invite, Method::Ack, uri, to)
}

/// A CANCEL for `invite` (RFC 3261 §9.1): same Request-URI, Call-ID, From, To and
/// CSeq number (method CANCEL), a single Via equal to the INVITE's top Via, and the
/// INVITE's Route headers, so the next hop matches it to its INVITE transaction.
pub fn build_cancel(invite: &SipMessage) -> Option<SipMessage> {
    let uri = invite.request_uri()?;
    let to = invite.header(HeaderName::To)?;
    build(invite, Method::Cancel, uri, to)
}

fn build(invite: &SipMessage, method: Method, uri: &str, to: &str) -> Option<SipMessage> {
    let via = invite.header_values(HeaderName::Via).next()?;
    let cseq = invite.cseq().ok()?;
    let call_id = invite.call_id()?;
    let from = invite.header(HeaderName::From)?;
    let mut m = SipMessage::new_request(method.clone(), uri);
    m.push(HeaderName::Via, via);
    for route in invite.header_lines(HeaderName::Route) {
        m.push(HeaderName::Route, route);
    }
    m.push(
        HeaderName::MaxForwards,
        invite.header(HeaderName::MaxForwards).unwrap_or("70"),
    );
    m.push(HeaderName::From, from);
    m.push(HeaderName::To, to);
    m.push(HeaderName::CallId, call_id);
    m.push(
        HeaderName::CSeq,
        &format!("{} {}", cseq.seq, method.as_str()),
    );
    m.push(HeaderName::ContentLength, "0");
    Some(m)
}

/// Where a response to `request` received from `from` goes (RFC 3261 §18.2.2 with
/// RFC 3581): over a reliable transport, back on the same connection; over UDP, to
/// the source address and port when the top Via asks for `rport` (or `force_rport`
/// is set, the usual SBC stance toward NATed peers), else to the source address and
/// the Via sent-by port (5060 when absent). `maddr` is not honoured: an edge device
/// does not send responses where an untrusted header says.
pub fn response_destination(request: &SipMessage, from: &Peer, force_rport: bool) -> Peer {
    match request.top_via() {
        Ok(via) => destination(&via, from, force_rport),
        Err(_) => from.clone(),
    }
}

/// [`response_destination`] for an already parsed top Via.
pub(super) fn destination(via: &Via<'_>, from: &Peer, force_rport: bool) -> Peer {
    if from.transport.reliable() || force_rport || via.rport().is_some() {
        return from.clone();
    }
    Peer {
        addr: SocketAddr::new(from.addr.ip(), via.port.unwrap_or(5060)),
        ..from.clone()
    }
}

/// `100 Trying` for `invite`, serialized straight from the request's lines in one
/// pass over its headers into one buffer: the headers `make_response` echoes (every
/// Via in order, From, To, Call-ID, CSeq, Timestamp), without building a message
/// first. Every INVITE pays for this one.
pub(super) fn trying(invite: &SipMessage) -> Bytes {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"SIP/2.0 100 Trying\r\n");
    let mut timestamp = false;
    for h in invite.headers() {
        let name = match h.name {
            HeaderName::Via
            | HeaderName::From
            | HeaderName::To
            | HeaderName::CallId
            | HeaderName::CSeq => h.name.as_str(),
            HeaderName::Other if !timestamp && h.written_name.eq_ignore_ascii_case("Timestamp") => {
                timestamp = true;
                "Timestamp"
            }
            _ => continue,
        };
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trying_echoes_what_make_response_echoes() {
        let raw = "INVITE sip:b@x SIP/2.0\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP c\r\n\
Via: SIP/2.0/UDP b;branch=z9hG4bK2\r\nf: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nTimestamp: 54\r\n\
Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let req = SipMessage::parse(raw.as_bytes()).unwrap();
        let want = req.make_response(100, "Trying");
        let got = SipMessage::parse(&trying(&req)).unwrap();
        assert_eq!(got.status(), Some(100));
        let lines = |m: &SipMessage| {
            let mut v: Vec<(String, String)> = m
                .headers()
                .map(|h| (h.name.as_str().to_string(), h.value.to_string()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(lines(&got), lines(&want));
        let vias: Vec<_> = got.header_lines(HeaderName::Via).collect();
        assert_eq!(
            vias,
            vec![
                "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP c",
                "SIP/2.0/UDP b;branch=z9hG4bK2"
            ]
        );
        assert_eq!(got.header_named("Timestamp"), Some("54"));
    }
}
