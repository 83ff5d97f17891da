//! Call setup: routing a new request, offering it to every target, relaying the
//! answers back to the caller, CANCEL and ring timeout.

use std::time::Instant;

use bytes::Bytes;

use super::*;
use crate::dialog::crossing::PRODUCT;
use crate::dialog::leg::{new_tag, Leg, PeerRecord};
use crate::policy::identity::{
    anonymize_from, apply as apply_identity, Crossing, PrivacyUnmet, ANONYMOUS_FROM,
};
use crate::sip::{HeaderName, Method, SipMessage, Uri};
use crate::transaction::{ClientTxId, Peer, ServerTxId, Transport};
use media::SdpRole;

impl Engine {
    pub(super) fn out_of_dialog(
        &mut self,
        id: ServerTxId,
        msg: &SipMessage,
        peer: &Peer,
        now: Instant,
    ) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let iface = peer.iface;
        let uri = msg.request_uri().and_then(|u| Uri::parse(u).ok());
        let to_self = uri.as_ref().is_some_and(|u| {
            u.user.is_none()
                && self
                    .cfg
                    .ifaces
                    .get(iface)
                    .is_some_and(|i| i.is_own_host(&u.host.to_string(), u.port))
        });
        if method == Method::Register && self.is_registrar_iface(iface) {
            return self.on_register(id, msg, peer, now);
        }
        if let Method::Extension(_) = method {
            return self.reply_with(
                id,
                501,
                "Not Implemented",
                &[(HeaderName::Allow, ALLOW)],
                now,
            );
        }
        if to_self {
            return match method {
                Method::Options => self.reply_with(
                    id,
                    200,
                    "OK",
                    &[
                        (HeaderName::Allow, ALLOW),
                        (HeaderName::Accept, "application/sdp"),
                    ],
                    now,
                ),
                _ => self.reply_with(
                    id,
                    405,
                    "Method Not Allowed",
                    &[(HeaderName::Allow, ALLOW)],
                    now,
                ),
            };
        }
        if matches!(
            method,
            Method::Register
                | Method::Subscribe
                | Method::Refer
                | Method::Publish
                | Method::Bye
                | Method::Prack
                | Method::Update
        ) {
            let (code, why) = if matches!(method, Method::Bye | Method::Prack | Method::Update) {
                (481, "Call/Transaction Does Not Exist")
            } else {
                (405, "Method Not Allowed")
            };
            return self.reply_with(id, code, why, &[(HeaderName::Allow, ALLOW)], now);
        }
        let mf = msg.max_forwards().ok().flatten().unwrap_or(70);
        if mf == 0 {
            return self.reply(id, 483, "Too Many Hops", now);
        }
        let Some(route) = self.cfg.routes.iter().find(|r| r.from == iface).cloned() else {
            return self.reply(id, 404, "Not Found (no route)", now);
        };
        let Some(egress) = self.cfg.ifaces.get(route.egress).cloned() else {
            return self.reply(id, 500, "Server Internal Error (bad route)", now);
        };
        if route
            .next_hop
            .as_ref()
            .is_some_and(|h| !egress.has(h.transport))
        {
            return self.reply(
                id,
                503,
                "Service Unavailable (egress transport not configured)",
                now,
            );
        }
        if method == Method::Invite && self.calls.len() >= self.cfg.max_calls {
            return self.reply_with(
                id,
                503,
                "Service Unavailable (call limit)",
                &[(HeaderName::RetryAfter, "5")],
                now,
            );
        }
        let identity = if self.needs_caller_auth(msg, iface) {
            match self.authenticate_caller(id, msg, peer, now) {
                Some(user) => Some(user),
                None => return,
            }
        } else {
            None
        };
        let (Ok(from), Ok(to), Some(call_id)) = (msg.from_header(), msg.to_header(), msg.call_id())
        else {
            return self.reply(id, 400, "Bad Request (From/To/Call-ID)", now);
        };
        let Some(ruri) = uri else {
            return self.reply(id, 400, "Bad Request (request-URI)", now);
        };
        let Ok(cseq) = msg.cseq() else {
            return self.reply(id, 400, "Bad Request (CSeq)", now);
        };
        // The caller's Contact is the A leg's remote target (RFC 3261 §8.1.1.8:
        // an INVITE MUST carry one): without it, a BYE toward the caller would
        // have no request-URI.
        if method == Method::Invite && contact_uri(msg).is_none() {
            return self.reply(id, 400, "Bad Request (missing or invalid Contact)", now);
        }
        let mut ruser = user_of(&ruri);
        let mut from_user = user_of(&from.uri);
        let mut to_user = user_of(&to.uri);
        // Inbound number rewriting changes what crosses, never the caller's own
        // dialog state: it works on a copy and only the user parts are taken.
        let ingress_name = self
            .cfg
            .ifaces
            .get(iface)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        let mut rewritten = msg.clone();
        if self
            .policy
            .rewrite_numbers(&ingress_name, PolicyDirection::In, &mut rewritten)
            > 0
        {
            let users = |m: &SipMessage| {
                (
                    m.request_uri()
                        .and_then(|u| Uri::parse(u).ok())
                        .and_then(|u| user_of(&u)),
                    m.from_header().ok().and_then(|f| user_of(&f.uri)),
                    m.to_header().ok().and_then(|t| user_of(&t.uri)),
                )
            };
            (ruser, from_user, to_user) = users(&rewritten);
        }
        let host = &egress.advertise;
        let mk = |user: Option<&str>, display: Option<&str>| match user {
            Some(u) => name_addr(display, &format!("sip:{u}@{host}")),
            None => name_addr(display, &format!("sip:{host}")),
        };
        let targets: Vec<Target> = match &route.next_hop {
            Some(hop) => {
                let tparam = if hop.transport == Transport::Tcp {
                    ";transport=tcp"
                } else {
                    ""
                };
                let ruri = match &ruser {
                    Some(u) => format!("sip:{u}@{}:{}{tparam}", hop.host, hop.port),
                    None => format!("sip:{}:{}{tparam}", hop.host, hop.port),
                };
                vec![Target {
                    ruri,
                    peer: Peer {
                        addr: hop.addr,
                        transport: hop.transport,
                        iface: route.egress,
                        conn: None,
                    },
                    latched: false,
                }]
            }
            None => match self.registered_targets(&ruri, route.egress, now_unix()) {
                Ok(t) => t,
                Err((code, reason)) => return self.reply(id, code, reason, now),
            },
        };
        let Some(first) = targets.first().cloned() else {
            return self.reply(id, 480, "Temporarily Unavailable", now);
        };
        let ingress_trusted = self.cfg.ifaces.get(iface).is_some_and(|i| i.trusted);
        let domain = self.registrar.as_ref().map(|r| r.cfg.domain.clone());
        let crossing = Crossing {
            from_trusted: ingress_trusted,
            to_trusted: egress.trusted,
            authenticated: identity.as_deref(),
            domain: domain.as_deref(),
            send_identity: egress.send_identity,
            identity_header: egress.identity_header,
            media_anchored: self.media_anchored(),
        };
        // A privacy level that cannot be met and is critical refuses the request
        // before anything is sent (RFC 3323 §4.2).
        if let Err(PrivacyUnmet(why)) = apply_identity(
            &rewritten,
            &mut SipMessage::new_response(200, ""),
            &crossing,
        ) {
            return self.reply(id, 500, &format!("Server Internal Error ({why})"), now);
        }
        let local_uri = if anonymize_from(msg, egress.trusted) {
            ANONYMOUS_FROM.to_string()
        } else {
            mk(from_user.as_deref(), from.display)
        };
        let mut b = Leg {
            iface: route.egress,
            call_id: uuid::Uuid::new_v4().simple().to_string(),
            local_tag: new_tag(),
            remote_tag: String::new(),
            local_uri,
            remote_uri: mk(to_user.as_deref(), to.display),
            local_cseq: 0,
            remote_cseq: 0,
            remote_target: first.ruri.clone(),
            route_set: Vec::new(),
            peer: PeerRecord::from_peer(&first.peer),
            invite_cseq: 1,
            latched: first.latched,
        };
        let a_tag = new_tag();
        if method != Method::Invite {
            let mut req = b.request(method.clone(), None, &egress, mf.saturating_sub(1));
            self.cross_with(iface, route.egress, msg, &mut req, |req| {
                let _ = apply_identity(&rewritten, req, &crossing);
            });
            self.send(
                req,
                first.peer,
                ClientRole::Standalone {
                    server: id,
                    a_tag,
                    a_iface: iface,
                    a_transport: peer.transport,
                },
                now,
            );
            return;
        }
        b.local_cseq = 1;
        b.invite_cseq = 1;
        let mut requests = Vec::with_capacity(targets.len());
        for t in &targets {
            b.remote_target = t.ruri.clone();
            let mut req = b.request(method.clone(), Some(1), &egress, mf.saturating_sub(1));
            self.cross_with(iface, route.egress, msg, &mut req, |req| {
                let _ = apply_identity(&rewritten, req, &crossing);
            });
            requests.push(req);
        }
        b.remote_target = first.ruri.clone();
        // The caller's dialog keeps its own From/To, as sent before `in` rules.
        let echo = self.server_req(id).unwrap_or(msg);
        let a = Leg {
            iface,
            call_id: call_id.to_string(),
            local_tag: a_tag.clone(),
            remote_tag: from.tag().unwrap_or("").to_string(),
            local_uri: strip_tag(echo.header(HeaderName::To).unwrap_or("")),
            remote_uri: strip_tag(echo.header(HeaderName::From).unwrap_or("")),
            local_cseq: 0,
            remote_cseq: cseq.seq,
            remote_target: contact_uri(msg).unwrap_or_default(),
            route_set: record_routes(msg),
            peer: PeerRecord::from_peer(peer),
            invite_cseq: cseq.seq,
            latched: true,
        };
        let call_no = self.next_call;
        self.next_call += 1;
        let uuid = uuid::Uuid::new_v4().to_string();
        let caller = from_user.unwrap_or_default();
        let callee = ruser.unwrap_or_default();
        tracing::info!(call = %uuid, %caller, %callee, ingress = %self.iface_name(iface), egress = %egress.name, branches = targets.len(), "call start");
        self.tags.insert(a_tag, call_no);
        self.tags.insert(b.local_tag.clone(), call_no);
        self.server_calls.insert(id, call_no);
        self.ring_timers
            .insert((now + self.cfg.ring_timeout, call_no), ());
        let branches = targets
            .iter()
            .map(|t| Branch {
                tx: None,
                peer: t.peer.clone(),
                provisional: false,
                cancel_wanted: false,
                done: false,
                latched: t.latched,
            })
            .collect();
        self.calls.insert(
            call_no,
            Call {
                uuid,
                a,
                b,
                state: State::Setup,
                a_invite: Some(id),
                branches,
                forks: Vec::new(),
                a_final_sent: false,
                best_failure: None,
                pending_ack: [None, None],
                last_ack: [None, None],
                started: unix_now(),
                answered: 0,
                caller,
                callee,
                identity,
                media: None,
            },
        );
        let mut requests = requests;
        for req in requests.iter_mut() {
            if let Err(e) = self.anchor_body(call_no, Side::A, SdpRole::Offer, msg, req) {
                let code = e.status();
                self.reject_sdp(id, &e, now);
                if let Some(c) = self.calls.get_mut(&call_no) {
                    c.a_final_sent = true;
                }
                self.end_call(call_no, code, "bad SDP");
                return;
            }
        }
        for (i, (req, t)) in requests.into_iter().zip(targets).enumerate() {
            let cid = self.send(
                req,
                t.peer,
                ClientRole::InitialInvite {
                    call: call_no,
                    branch: i,
                },
                now,
            );
            if let Some(c) = self.calls.get_mut(&call_no) {
                if let Some(b) = c.branches.get_mut(i) {
                    b.tx = cid;
                    b.done = cid.is_none();
                }
            }
        }
    }

    pub(super) fn on_response(
        &mut self,
        id: ClientTxId,
        msg: SipMessage,
        retransmission: bool,
        src: &Peer,
        now: Instant,
    ) {
        let Some(role) = self.clients.get(&id).cloned() else {
            return;
        };
        let code = msg.status().unwrap_or(0);
        // After a 2xx an INVITE client transaction still passes up 2xx
        // retransmissions and other forks' 2xx: its role stays until the
        // transaction ends (`Action::Terminated`).
        let invite_2xx =
            (200..300).contains(&code) && msg.cseq().is_ok_and(|c| c.method == Method::Invite);
        if code >= 200 && !invite_2xx {
            self.clients.remove(&id);
        }
        match role {
            ClientRole::InitialInvite { call, branch } => {
                self.invite_response(call, branch, msg, retransmission, src, now)
            }
            ClientRole::Relay {
                call,
                server,
                origin,
                method,
                cseq,
            } => self.relay_response(
                call,
                server,
                origin,
                &method,
                cseq,
                &msg,
                retransmission,
                now,
            ),
            ClientRole::Standalone {
                server,
                a_tag,
                a_iface,
                a_transport,
            } => {
                if code <= 100 {
                    return;
                }
                let Some(req) = self.server_req(server) else {
                    return;
                };
                let mut r = req.make_response(code, msg.reason().unwrap_or(""));
                r.set_to_tag(&a_tag);
                if (200..300).contains(&code) && msg.contacts().next().is_some() {
                    if let Some(i) = self.cfg.ifaces.get(a_iface) {
                        r.push(HeaderName::Contact, &i.contact(a_transport));
                    }
                }
                self.cross(src.iface, a_iface, &msg, &mut r);
                self.respond(server, r, now);
            }
            ClientRole::Own => {}
        }
    }

    pub(super) fn invite_response(
        &mut self,
        call_no: u64,
        branch: usize,
        msg: SipMessage,
        retransmission: bool,
        src: &Peer,
        now: Instant,
    ) {
        let code = msg.status().unwrap_or(0);
        let b_tag = msg
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_string))
            .unwrap_or_default();
        let Some(call) = self.calls.get_mut(&call_no) else {
            if (200..300).contains(&code) {
                self.late_2xx_cleanup(&msg, src, now);
            }
            return;
        };
        if code < 200 {
            // Any provisional, 100 included, lets a pending CANCEL go (§9.1).
            let Some(br) = call.branches.get_mut(branch) else {
                return;
            };
            br.provisional = true;
            if br.cancel_wanted {
                br.cancel_wanted = false;
                if let Some(tx) = br.tx {
                    self.send_cancel(tx, now);
                }
                return;
            }
            if code == 100 || call.a_final_sent || call.state == State::Confirmed {
                return;
            }
            let a_tag = Self::fork_tag(call, &b_tag, &msg);
            self.tags.insert(a_tag.clone(), call_no);
            self.answer_a(call_no, &msg, &a_tag, now);
            return;
        }
        if code < 300 {
            if let Some(br) = call.branches.get_mut(branch) {
                br.done = true;
            }
            if call.state == State::Confirmed {
                if b_tag == call.b.remote_tag {
                    if let Some((peer, data, _)) = call.last_ack[1].clone() {
                        self.out.push(Output::Send { peer, data });
                    }
                } else if !retransmission || !b_tag.is_empty() {
                    self.late_2xx_cleanup(&msg, src, now);
                }
                return;
            }
            if call.a_final_sent {
                // The caller cancelled or timed out while the callee answered.
                self.late_2xx_cleanup(&msg, src, now);
                self.cancel_branches(call_no, Some(branch), now);
                self.end_call(call_no, 487, "cancelled");
                return;
            }
            let a_tag = Self::fork_tag(call, &b_tag, &msg);
            if let Some(br) = call.branches.get(branch) {
                call.b.peer = PeerRecord::from_peer(&br.peer);
                call.b.latched = br.latched;
            }
            call.b.remote_tag = b_tag.clone();
            if let Some(t) = contact_uri(&msg) {
                call.b.remote_target = t;
            }
            call.b.route_set = record_routes(&msg).into_iter().rev().collect();
            call.a.local_tag = a_tag.clone();
            call.state = State::Confirmed;
            call.a_final_sent = true;
            call.answered = unix_now();
            call.pending_ack[0] = Some(call.b.invite_cseq);
            let stale: Vec<String> = call
                .forks
                .iter()
                .filter(|f| f.a_tag != a_tag)
                .map(|f| f.a_tag.clone())
                .collect();
            call.forks.clear();
            tracing::info!(call = %call.uuid, "call answered");
            for t in stale {
                self.tags.remove(&t);
            }
            self.tags.insert(a_tag.clone(), call_no);
            self.answer_a(call_no, &msg, &a_tag, now);
            self.cancel_branches(call_no, Some(branch), now);
            self.persist(call_no);
            return;
        }
        self.branch_failed(call_no, branch, msg, now);
    }

    /// A branch ended without answering; when every branch has, the caller gets the
    /// best of their final responses (RFC 3261 §16.7: a 6xx wins, else the lowest
    /// class, the first seen within a class).
    pub(super) fn branch_failed(
        &mut self,
        call_no: u64,
        branch: usize,
        msg: SipMessage,
        now: Instant,
    ) {
        let Some(call) = self.calls.get_mut(&call_no) else {
            return;
        };
        if let Some(br) = call.branches.get_mut(branch) {
            br.done = true;
        }
        if call.state == State::Confirmed {
            return;
        }
        let rank = |c: u16| if c >= 600 { 0 } else { c / 100 };
        let code = msg.status().unwrap_or(500);
        let better = call
            .best_failure
            .as_ref()
            .is_none_or(|b| rank(code) < rank(b.status().unwrap_or(500)));
        if better {
            call.best_failure = Some(msg);
        }
        if code >= 600 {
            self.cancel_branches(call_no, None, now);
        }
        let Some(call) = self.calls.get_mut(&call_no) else {
            return;
        };
        if !call.branches.iter().all(|b| b.done) {
            return;
        }
        let best = call.best_failure.take();
        let final_code = best.as_ref().and_then(|m| m.status()).unwrap_or(code);
        if call.a_final_sent {
            self.end_call(call_no, final_code, "cancelled");
            return;
        }
        call.a_final_sent = true;
        let a_tag = call.a.local_tag.clone();
        if let Some(best) = best {
            self.answer_a(call_no, &best, &a_tag, now);
        }
        self.end_call(call_no, final_code, "rejected");
    }

    /// The A-leg tag for a B-leg early dialog, creating the fork on first sight.
    pub(super) fn fork_tag(call: &mut Call, b_tag: &str, msg: &SipMessage) -> String {
        if b_tag.is_empty() {
            return call.a.local_tag.clone();
        }
        if let Some(f) = call.forks.iter_mut().find(|f| f.b_tag == b_tag) {
            if let Some(t) = contact_uri(msg) {
                f.target = t;
            }
            return f.a_tag.clone();
        }
        let a_tag = if call.forks.is_empty() {
            call.a.local_tag.clone()
        } else {
            new_tag()
        };
        call.forks.push(Fork {
            b_tag: b_tag.to_string(),
            a_tag: a_tag.clone(),
            target: contact_uri(msg).unwrap_or_else(|| call.b.remote_target.clone()),
            route_set: record_routes(msg).into_iter().rev().collect(),
        });
        a_tag
    }

    /// Relays a B-leg response to the caller's INVITE.
    pub(super) fn answer_a(&mut self, call_no: u64, msg: &SipMessage, a_tag: &str, now: Instant) {
        let Some(call) = self.calls.get(&call_no) else {
            return;
        };
        let Some(inv) = call.a_invite else { return };
        let Some(req) = self.server_req(inv) else {
            return;
        };
        let code = msg.status().unwrap_or(500);
        let mut r = req.make_response(code, msg.reason().unwrap_or(""));
        r.set_to_tag(a_tag);
        if code < 300 {
            // The caller's own Record-Route goes back to it (RFC 3261 §12.1.1), so
            // proxies on its side stay in the dialog; it names only its side.
            for rr in req.header_lines(HeaderName::RecordRoute) {
                r.push(HeaderName::RecordRoute, rr);
            }
            if let Some(i) = self.cfg.ifaces.get(call.a.iface) {
                r.push(HeaderName::Contact, &i.contact(call.a.transport()));
            }
        }
        let (from, to) = (call.b.iface, call.a.iface);
        self.cross_response(from, to, msg, &mut r);
        let role = SdpRole::of_response(media::has_sdp(req));
        if let Err(e) = self.anchor_body(call_no, Side::B, role, msg, &mut r) {
            tracing::warn!("SDP in a {code} not relayed: {e}");
            r.set_body(bytes::Bytes::new());
        }
        self.respond(inv, r, now);
    }

    /// ACK and BYE a 2xx nobody wants, built from the 2xx alone (the call may be
    /// gone) and sent back where the 2xx came from.
    pub(super) fn late_2xx_cleanup(&mut self, msg: &SipMessage, src: &Peer, now: Instant) {
        let (Ok(from), Ok(to), Some(call_id), Ok(cseq)) = (
            msg.from_header(),
            msg.to_header(),
            msg.call_id(),
            msg.cseq(),
        ) else {
            return;
        };
        let Some(target) = contact_uri(msg) else {
            return;
        };
        let leg = Leg {
            iface: src.iface,
            call_id: call_id.to_string(),
            local_tag: from.tag().unwrap_or("").to_string(),
            remote_tag: to.tag().unwrap_or("").to_string(),
            local_uri: strip_tag(msg.header(HeaderName::From).unwrap_or("")),
            remote_uri: strip_tag(msg.header(HeaderName::To).unwrap_or("")),
            local_cseq: cseq.seq,
            remote_cseq: 0,
            remote_target: target,
            route_set: record_routes(msg).into_iter().rev().collect(),
            peer: PeerRecord::from_peer(src),
            invite_cseq: cseq.seq,
            latched: true,
        };
        self.ack_and_bye(leg, cseq.seq, now);
    }

    /// A 2xx to an INVITE whose client transaction is gone: re-send our ACK when it
    /// belongs to an established call, otherwise ACK and BYE it.
    pub(super) fn stray_2xx(&mut self, msg: &SipMessage, src: &Peer, now: Instant) {
        let from_tag = msg
            .from_header()
            .ok()
            .and_then(|f| f.tag().map(str::to_string));
        let to_tag = msg
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_string));
        let call = from_tag
            .and_then(|t| self.tags.get(&t))
            .and_then(|c| self.calls.get(c));
        if let Some(call) = call {
            if to_tag.as_deref() == Some(call.b.remote_tag.as_str()) {
                if let Some((peer, data, _)) = call.last_ack[1].clone() {
                    self.out.push(Output::Send { peer, data });
                }
                return;
            }
        }
        self.late_2xx_cleanup(msg, src, now);
    }

    pub(super) fn ack_and_bye(&mut self, mut leg: Leg, invite_cseq: u32, now: Instant) {
        let Some(iface) = self.cfg.ifaces.get(leg.iface).cloned() else {
            return;
        };
        let ack = leg.request(Method::Ack, Some(invite_cseq), &iface, 70);
        let peer = dialog_peer(&leg);
        self.out.push(Output::Send {
            peer: peer.clone(),
            data: Bytes::from(ack.to_bytes()),
        });
        leg.local_cseq = leg.local_cseq.max(invite_cseq);
        let mut bye = leg.request(Method::Bye, None, &iface, 70);
        bye.push(
            HeaderName::Reason,
            "SIP;cause=200;text=\"Call completed elsewhere\"",
        );
        self.send(bye, peer, ClientRole::Own, now);
    }

    pub(super) fn send_cancel(&mut self, inv: ClientTxId, now: Instant) {
        match self.tl.cancel(inv, now) {
            Ok(cid) => {
                self.clients.insert(cid, ClientRole::Own);
            }
            Err(e) => tracing::debug!("CANCEL not sent: {e}"),
        }
    }

    // ----- CANCEL, ACK, timers -----

    pub(super) fn on_cancel(
        &mut self,
        id: ServerTxId,
        invite: Option<ServerTxId>,
        msg: &SipMessage,
        now: Instant,
    ) {
        let call_no = invite.and_then(|i| self.server_calls.get(&i)).copied();
        let a_tag = call_no
            .and_then(|c| self.calls.get(&c))
            .map(|c| c.a.local_tag.clone());
        let (code, reason) = match (call_no, &a_tag) {
            (Some(_), Some(_)) => (200, "OK"),
            _ => (481, "Call/Transaction Does Not Exist"),
        };
        let mut r = msg.make_response(code, reason);
        r.set_to_tag(a_tag.as_deref().unwrap_or(&new_tag()));
        r.push(HeaderName::Server, PRODUCT);
        self.respond(id, r, now);
        if let Some(call_no) = call_no {
            self.abandon_setup(call_no, 487, "Request Terminated", now);
        }
    }

    /// Ends call setup toward the caller with `code` and cancels the callee leg.
    pub(super) fn abandon_setup(&mut self, call_no: u64, code: u16, reason: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(&call_no) else {
            return;
        };
        if call.state == State::Confirmed || call.a_final_sent {
            return;
        }
        call.a_final_sent = true;
        let a_tag = call.a.local_tag.clone();
        let inv = call.a_invite;
        if let Some(inv) = inv {
            if let Some(req) = self.server_req(inv) {
                let mut r = req.make_response(code, reason);
                r.set_to_tag(&a_tag);
                r.push(HeaderName::Server, PRODUCT);
                self.respond(inv, r, now);
            }
        }
        self.cancel_branches(call_no, None, now);
    }

    /// CANCELs every unfinished branch but `keep` (§9.1: only once it answered
    /// provisionally; until then the CANCEL waits for its first 1xx).
    pub(super) fn cancel_branches(&mut self, call_no: u64, keep: Option<usize>, now: Instant) {
        let Some(call) = self.calls.get_mut(&call_no) else {
            return;
        };
        let mut to_cancel = Vec::new();
        for (i, b) in call.branches.iter_mut().enumerate() {
            if Some(i) == keep || b.done {
                continue;
            }
            if b.provisional {
                if let Some(tx) = b.tx {
                    to_cancel.push(tx);
                }
            } else {
                b.cancel_wanted = true;
            }
        }
        for tx in to_cancel {
            self.send_cancel(tx, now);
        }
    }

    pub(super) fn ring_timeout(&mut self, call_no: u64, now: Instant) {
        if let Some(c) = self.calls.get(&call_no) {
            if c.state == State::Setup && !c.a_final_sent {
                tracing::info!(call = %c.uuid, "ring timeout");
                self.abandon_setup(call_no, 408, "Request Timeout", now);
            }
        }
    }
}
