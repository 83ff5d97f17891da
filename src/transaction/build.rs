//! Messages the transaction layer builds itself: the hop-by-hop ACK for a non-2xx
//! final response (§17.1.1.3) and CANCEL (§9.1). Both copy fields verbatim from the
//! INVITE, because the next hop matches them byte for byte against its own
//! transaction.

use std::net::SocketAddr;

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
