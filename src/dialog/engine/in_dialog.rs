//! Established calls: ACK mapping, in-dialog requests in both directions and
//! their answers, timeouts and teardown by sipveil itself.

use std::time::Instant;

use bytes::Bytes;

use super::*;
use crate::dialog::crossing::copy_body;
use crate::dialog::leg::{is_target_refresh, Side};
use crate::sip::{HeaderName, Method, SipMessage};
use crate::transaction::{ClientTxId, ServerTxId};
use media::SdpRole;

impl Engine {
    pub(super) fn on_ack(&mut self, msg: &SipMessage) {
        let Some(tag) = msg
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_string))
        else {
            return;
        };
        let Some(&call_no) = self.tags.get(&tag) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_no) else {
            return;
        };
        let side = if call.b.local_tag == tag {
            Side::B
        } else {
            Side::A
        };
        if msg.call_id() != Some(call.leg(side).call_id.as_str()) {
            return;
        }
        let Some(other_cseq) = call.pending_ack[idx(side)].take() else {
            return;
        };
        let other = side.other();
        let Some(iface) = self.cfg.ifaces.get(call.leg(other).iface).cloned() else {
            return;
        };
        let leg = call.leg_mut(other);
        let mut ack = leg.request(Method::Ack, Some(other_cseq), &iface, 70);
        let peer = dialog_peer(leg);
        copy_body(msg, &mut ack);
        if let Err(e) = self.anchor_body(call_no, side, SdpRole::Answer, msg, &mut ack) {
            tracing::warn!("SDP in ACK not relayed: {e}");
            ack.set_body(Bytes::new());
        }
        let data = Bytes::from(ack.to_bytes());
        if let Some(call) = self.calls.get_mut(&call_no) {
            call.last_ack[idx(other)] = Some((peer.clone(), data.clone(), other_cseq));
        }
        self.out.push(Output::Send { peer, data });
    }

    pub(super) fn client_timeout(&mut self, id: ClientTxId, now: Instant) {
        if let Some(role) = self.clients.remove(&id) {
            self.client_failed(role, now);
        }
    }

    /// A client transaction timed out or could not be sent.
    pub(super) fn client_failed(&mut self, role: ClientRole, now: Instant) {
        match role {
            ClientRole::InitialInvite { call, branch } => {
                // No answer from this target: a 408 of our own stands in for it.
                let timeout = SipMessage::new_response(408, "Request Timeout");
                self.branch_failed(call, branch, timeout, now);
            }
            ClientRole::Relay {
                call,
                server,
                method,
                ..
            } => {
                self.reply(server, 408, "Request Timeout", now);
                if method == Method::Bye {
                    self.end_call(call, 200, "bye timeout");
                }
            }
            ClientRole::Standalone { server, .. } => {
                self.reply(server, 408, "Request Timeout", now)
            }
            ClientRole::Own => {}
        }
    }

    pub(super) fn server_no_ack(&mut self, id: ServerTxId, now: Instant) {
        let Some(call_no) = self.server_calls.remove(&id) else {
            return;
        };
        let confirmed_unacked = self
            .calls
            .get(&call_no)
            .is_some_and(|c| c.state == State::Confirmed && c.pending_ack[0].is_some());
        if confirmed_unacked {
            tracing::info!("caller never acknowledged the answer; ending call");
            self.hangup_with(call_no, "SIP;cause=408;text=\"no ACK\"", now);
        }
    }

    /// Sends BYE on both legs (sipveil itself ends the call).
    /// Sends BYE with a Reason on both legs and ends the call (sipveil itself
    /// ends it: no ACK, media timeout).
    pub(super) fn hangup_with(&mut self, call_no: u64, reason: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(&call_no) else {
            return;
        };
        let mut byes = Vec::new();
        for side in [Side::A, Side::B] {
            let iface_idx = call.leg(side).iface;
            let Some(iface) = self.cfg.ifaces.get(iface_idx).cloned() else {
                continue;
            };
            let leg = call.leg_mut(side);
            let mut bye = leg.request(Method::Bye, None, &iface, 70);
            bye.push(HeaderName::Reason, reason);
            byes.push((bye, dialog_peer(leg)));
        }
        for (bye, peer) in byes {
            self.send(bye, peer, ClientRole::Own, now);
        }
        let why = if reason.contains("media") {
            "media timeout"
        } else {
            "no ACK"
        };
        self.end_call(call_no, 408, why);
    }

    // ----- in-dialog requests -----

    pub(super) fn in_dialog(&mut self, id: ServerTxId, msg: &SipMessage, tag: &str, now: Instant) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let Some(&call_no) = self.tags.get(tag) else {
            return self.reply(id, 481, "Call/Transaction Does Not Exist", now);
        };
        let Some(call) = self.calls.get_mut(&call_no) else {
            return self.reply(id, 481, "Call/Transaction Does Not Exist", now);
        };
        let side = if call.b.local_tag == tag {
            Side::B
        } else {
            Side::A
        };
        if msg.call_id() != Some(call.leg(side).call_id.as_str()) {
            return self.reply(id, 481, "Call/Transaction Does Not Exist", now);
        }
        let Ok(cseq) = msg.cseq() else { return };
        if msg.max_forwards().ok().flatten() == Some(0) {
            return self.reply(id, 483, "Too Many Hops", now);
        }
        let leg = call.leg_mut(side);
        if leg.remote_cseq != 0 && cseq.seq <= leg.remote_cseq && method != Method::Prack {
            return self.reply(id, 500, "Server Internal Error (CSeq out of order)", now);
        }
        leg.remote_cseq = cseq.seq;
        if is_target_refresh(&method) {
            if let Some(t) = contact_uri(msg) {
                leg.remote_target = t;
            }
        }
        if side == Side::B && leg.remote_tag.is_empty() {
            // A request from an early dialog of the callee.
            if let Some(t) = msg
                .from_header()
                .ok()
                .and_then(|f| f.tag().map(str::to_string))
            {
                leg.remote_tag = t;
            }
        }
        let other = side.other();
        // Early dialogs: address the fork the caller's tag belongs to.
        let mut target_leg = call.leg(other).clone();
        if call.state == State::Setup {
            match other {
                Side::B => {
                    if let Some(f) = call.forks.iter().find(|f| f.a_tag == tag) {
                        target_leg.remote_tag = f.b_tag.clone();
                        target_leg.remote_target = f.target.clone();
                        target_leg.route_set = f.route_set.clone();
                    }
                }
                Side::A => {
                    let from_tag = msg
                        .from_header()
                        .ok()
                        .and_then(|f| f.tag().map(str::to_string));
                    if let Some(f) = call
                        .forks
                        .iter()
                        .find(|f| Some(&f.b_tag) == from_tag.as_ref())
                    {
                        target_leg.local_tag = f.a_tag.clone();
                    }
                }
            }
        }
        let Some(iface) = self.cfg.ifaces.get(target_leg.iface).cloned() else {
            return;
        };
        let mf = msg
            .max_forwards()
            .ok()
            .flatten()
            .unwrap_or(70)
            .saturating_sub(1);
        let mut req = target_leg.request(method.clone(), None, &iface, mf.max(1));
        let new_cseq = target_leg.local_cseq;
        call.leg_mut(other).local_cseq = new_cseq;
        let from_iface = call.leg(side).iface;
        self.cross(from_iface, target_leg.iface, msg, &mut req);
        if method == Method::Refer {
            copy_refer_headers(msg, &mut req);
        }
        let role = if matches!(method, Method::Invite | Method::Update) {
            SdpRole::Offer
        } else {
            SdpRole::Answer
        };
        if let Err(e) = self.anchor_body(call_no, side, role, msg, &mut req) {
            return self.reject_sdp(id, &e, now);
        }
        let Some(call) = self.calls.get_mut(&call_no) else {
            return;
        };
        if method == Method::Prack {
            if let Some(rack) = msg.header(HeaderName::RAck) {
                let rseq = rack.split_whitespace().next().unwrap_or("1");
                let inv = call.leg(other).invite_cseq;
                req.push(HeaderName::RAck, &format!("{rseq} {inv} INVITE"));
            }
        }
        let peer = dialog_peer(&target_leg);
        self.send(
            req,
            peer,
            ClientRole::Relay {
                call: call_no,
                server: id,
                origin: side,
                method: method.clone(),
                cseq: new_cseq,
            },
            now,
        );
        if method == Method::Bye {
            let uuid = self
                .calls
                .get(&call_no)
                .map(|c| c.uuid.clone())
                .unwrap_or_default();
            tracing::info!(call = %uuid, from = ?side, "call end (BYE)");
            // A BYE on an early dialog ends the setup too: the caller's INVITE
            // gets its 487, the callee's INVITE (other forks) a CANCEL (§15.1.2).
            let early = self
                .calls
                .get(&call_no)
                .is_some_and(|c| c.state == State::Setup);
            if early {
                self.abandon_setup(call_no, 487, "Request Terminated", now);
            }
            self.end_call(
                call_no,
                if early { 487 } else { 200 },
                if side == Side::A {
                    "caller hangup"
                } else {
                    "callee hangup"
                },
            );
        } else if self
            .calls
            .get(&call_no)
            .is_some_and(|c| c.state == State::Confirmed)
        {
            self.persist(call_no);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn relay_response(
        &mut self,
        call_no: u64,
        server: ServerTxId,
        origin: Side,
        method: &Method,
        cseq: u32,
        msg: &SipMessage,
        retransmission: bool,
        now: Instant,
    ) {
        let code = msg.status().unwrap_or(500);
        if code == 100 {
            return;
        }
        let other = origin.other();
        if retransmission && (200..300).contains(&code) {
            // The other leg retransmits its 2xx: re-send our ACK if the origin acked.
            if let Some(call) = self.calls.get(&call_no) {
                if let Some((peer, data, c)) = call.last_ack[idx(other)].clone() {
                    if c == cseq {
                        self.out.push(Output::Send { peer, data });
                    }
                }
            }
            return;
        }
        let Some(req) = self.server_req(server) else {
            return;
        };
        let mut r = req.make_response(code, msg.reason().unwrap_or(""));
        let mut origin_iface = None;
        let mut ifaces = None;
        if let Some(call) = self.calls.get_mut(&call_no) {
            ifaces = Some((call.leg(other).iface, call.leg(origin).iface));
            let origin_leg = call.leg(origin);
            r.set_to_tag(&origin_leg.local_tag);
            origin_iface = Some((origin_leg.iface, origin_leg.transport()));
            if (200..300).contains(&code) && is_target_refresh(method) {
                if let Some(t) = contact_uri(msg) {
                    call.leg_mut(other).remote_target = t;
                }
            }
            if *method == Method::Invite && (200..300).contains(&code) {
                call.pending_ack[idx(origin)] = Some(cseq);
            }
        }
        if code < 300 && is_target_refresh(method) {
            if let Some((i, t)) = origin_iface {
                if let Some(f) = self.cfg.ifaces.get(i) {
                    r.push(HeaderName::Contact, &f.contact(t));
                }
            }
        }
        match ifaces {
            Some((from, to)) => self.cross_response(from, to, msg, &mut r),
            None => crate::dialog::crossing::copy_across(msg, &mut r),
        }
        let role = SdpRole::of_response(self.server_req(server).is_some_and(media::has_sdp));
        if let Err(e) = self.anchor_body(call_no, other, role, msg, &mut r) {
            tracing::warn!("SDP in a {code} not relayed: {e}");
            r.set_body(Bytes::new());
        }
        self.respond(server, r, now);
    }

    // ----- bookkeeping -----
}

/// A REFER relayed on the other leg keeps its transfer target (Refer-To, at
/// most one, RFC 3515 §2.4.1) and Referred-By, which the header allow-list
/// never copies. A `Replaces` embedded in Refer-To names a dialog on the
/// referrer's side that the referee cannot reach through sipveil; it is
/// removed, so an attended transfer becomes a blind one to the same target
/// instead of failing or leaking that dialog's Call-ID and tags.
fn copy_refer_headers(src: &SipMessage, dst: &mut SipMessage) {
    if let Some(to) = src.header(HeaderName::ReferTo) {
        dst.push(HeaderName::ReferTo, &strip_replaces(to));
    }
    if let Some(by) = src.header(HeaderName::ReferredBy) {
        dst.push(HeaderName::ReferredBy, by);
    }
}

/// `<sip:c@host?Replaces=...&X=y>` without the `Replaces` URI header.
fn strip_replaces(refer_to: &str) -> String {
    let Some(q) = refer_to.find('?') else {
        return refer_to.to_string();
    };
    let end = refer_to[q..].find('>').map_or(refer_to.len(), |i| q + i);
    let (head, tail) = (&refer_to[..q], &refer_to[end..]);
    let kept: Vec<&str> = refer_to[q + 1..end]
        .split('&')
        .filter(|h| {
            !h.is_empty()
                && !h
                    .split('=')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case("replaces"))
        })
        .collect();
    if refer_to[q + 1..end].split('&').any(|h| {
        h.split('=')
            .next()
            .is_some_and(|n| n.eq_ignore_ascii_case("replaces"))
    }) {
        tracing::info!(
            "REFER: Replaces removed from Refer-To (attended transfer relayed as blind)"
        );
    }
    if kept.is_empty() {
        format!("{head}{tail}")
    } else {
        format!("{head}?{}{tail}", kept.join("&"))
    }
}

#[cfg(test)]
mod refer_tests {
    use super::strip_replaces;

    #[test]
    fn replaces_is_removed_from_refer_to() {
        assert_eq!(
            strip_replaces("<sip:carol@example.test>"),
            "<sip:carol@example.test>"
        );
        assert_eq!(
            strip_replaces("<sip:carol@example.test?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>"),
            "<sip:carol@example.test>"
        );
        assert_eq!(
            strip_replaces("<sip:carol@example.test?X-A=1&replaces=abc&X-B=2>;p=1"),
            "<sip:carol@example.test?X-A=1&X-B=2>;p=1"
        );
        assert_eq!(strip_replaces("sip:x@y?"), "sip:x@y");
    }
}
