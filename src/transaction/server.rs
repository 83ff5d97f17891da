//! Server transactions (RFC 3261 §17.2, RFC 6026): matching of incoming requests
//! (§17.2.3, with the RFC 2543 fallback), the INVITE and non-INVITE state
//! machines, and ACK handling.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::sip::{HeaderName, Host, Method, SipMessage, Via};

use super::timers::{Slot, Slots};
use super::{
    build::destination, Action, Incoming, Peer, ServerTxId, TransactionLayer, TxError, TxRef,
};

/// The RFC 3261 branch prefix; a branch without it comes from an RFC 2543 peer.
const MAGIC: &str = "z9hG4bK";

/// Most transactions one index key may hold. The keys cover every matching field
/// but the ones verified afterwards, so a real key holds one transaction; a bucket
/// growing past this means requests crafted to pile onto one slot, which are refused
/// as overload so that every lookup stays O(1) (DESIGN.md invariant 5).
const MAX_PER_KEY: usize = 8;

/// The state of a live server transaction (§17.2.1, §17.2.2, RFC 6026 §8.2).
/// "Terminated" is never observed: the transaction is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE: received, nothing sent yet; retransmissions get no answer.
    Trying,
    /// A provisional was sent (INVITE: from the start, the automatic 100).
    Proceeding,
    /// A final was sent (INVITE: non-2xx, waiting for the ACK under G/H;
    /// non-INVITE: absorbing retransmissions until J).
    Completed,
    /// INVITE: a 2xx was sent; retransmitted over UDP until its ACK arrives, and
    /// INVITE retransmissions absorbed until timer L (RFC 6026).
    Accepted,
    /// INVITE: the ACK for the non-2xx final arrived; ACK retransmissions are
    /// absorbed until timer I.
    Confirmed,
}

/// The sent-by of a Via, owned for comparison with later requests.
#[derive(Debug)]
pub(super) struct SentBy {
    host: HostKey,
    port: Option<u16>,
}

#[derive(Debug)]
enum HostKey {
    Ip(IpAddr),
    Name(Box<str>),
}

impl SentBy {
    fn of(via: &Via<'_>) -> SentBy {
        let host = match via.host {
            Host::Name(n) => HostKey::Name(n.into()),
            Host::V4(a) => HostKey::Ip(IpAddr::V4(a)),
            Host::V6(a) => HostKey::Ip(IpAddr::V6(a)),
            Host::None => HostKey::Name("".into()),
        };
        SentBy {
            host,
            port: via.port,
        }
    }

    fn matches(&self, via: &Via<'_>) -> bool {
        self.port == via.port
            && match (&self.host, via.host) {
                (HostKey::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
                (HostKey::Ip(a), h) => h.ip() == Some(*a),
                (HostKey::Name(a), Host::None) => a.is_empty(),
                _ => false,
            }
    }
}

/// The fields RFC 2543 matching compares (§17.2.3, last paragraphs), owned. Only
/// requests whose branch lacks the magic cookie pay for these allocations.
#[derive(Debug)]
pub(super) struct Legacy {
    ruri: Box<str>,
    to_tag: Option<Box<str>>,
    from_tag: Option<Box<str>>,
    call_id: Box<str>,
    cseq: u32,
    via: Box<str>,
    /// The To tag of the non-2xx final sent, which the ACK must carry.
    final_to_tag: Option<Box<str>>,
}

/// The same fields borrowed from an incoming request.
struct LegacyRef<'a> {
    ruri: &'a str,
    to_tag: Option<&'a str>,
    from_tag: Option<&'a str>,
    call_id: &'a str,
    cseq: u32,
    via: &'a str,
}

impl<'a> LegacyRef<'a> {
    fn of(msg: &'a SipMessage, via: &'a str, call_id: &'a str, cseq: u32) -> LegacyRef<'a> {
        LegacyRef {
            ruri: msg.request_uri().unwrap_or(""),
            to_tag: msg.to_header().ok().and_then(|t| t.tag()),
            from_tag: msg.from_header().ok().and_then(|f| f.tag()),
            call_id,
            cseq,
            via,
        }
    }

    fn to_owned(&self) -> Legacy {
        Legacy {
            ruri: self.ruri.into(),
            to_tag: self.to_tag.map(Into::into),
            from_tag: self.from_tag.map(Into::into),
            call_id: self.call_id.into(),
            cseq: self.cseq,
            via: self.via.into(),
            final_to_tag: None,
        }
    }

    /// Request-URI, From tag, Call-ID, CSeq number and top Via: common to the three
    /// legacy comparisons.
    fn common_eq(&self, l: &Legacy) -> bool {
        *l.call_id == *self.call_id
            && l.cseq == self.cseq
            && l.from_tag.as_deref() == self.from_tag
            && *l.ruri == *self.ruri
            && *l.via == *self.via
    }
}

/// How a legacy request is compared with a transaction.
enum LegacyMatch<'m> {
    /// A retransmission: same method and To tag as well.
    Same(&'m Method),
    /// ACK: the INVITE, with the To tag of the final response sent.
    Ack,
    /// CANCEL: the INVITE, with the same To tag.
    Cancel,
}

/// How a server transaction is found again.
#[derive(Debug)]
pub(super) enum ServerKey {
    /// RFC 3261: branch + sent-by (+ method, kept in the transaction).
    Branch {
        branch: Box<str>,
        sent_by: SentBy,
        hash: u64,
    },
    /// RFC 2543 fallback.
    Legacy { fields: Box<Legacy>, hash: u64 },
}

/// One 2xx sent by an INVITE server transaction (several when the TU answers with
/// more than one To tag), retransmitted until its ACK arrives.
#[derive(Debug)]
pub(super) struct Sent2xx {
    call_id: Box<str>,
    cseq: u32,
    to_tag: Box<str>,
    hash: u64,
    /// Emptied once acknowledged (nothing more to resend).
    data: Bytes,
    acked: bool,
}

/// A live server transaction. The request itself belongs to the TU.
#[derive(Debug)]
pub(super) struct ServerTx {
    pub(super) invite: bool,
    pub(super) state: ServerState,
    /// A copy of the request until a final response is sent, for
    /// [`TransactionLayer::server_request`].
    pub(super) request: Option<SipMessage>,
    /// The transaction's method (INVITE for INVITE transactions; ACK never has one).
    method: Method,
    key: ServerKey,
    /// Where responses go (§18.2.2), refreshed by each retransmitted request.
    peer: Peer,
    /// The last provisional or non-2xx final sent, resent on retransmissions.
    last: Option<Bytes>,
    accepted: Vec<Sent2xx>,
    interval: Duration,
    pub(super) timers: Slots,
}

/// What a request turned out to be, decided while it is still borrowed.
enum Decision {
    Absorbed,
    /// At the transaction bound, or too many transactions under one key (see
    /// [`MAX_PER_KEY`]): no state is created.
    Refused,
    AckAbsorbed,
    AckFor2xx(Option<u64>),
    New {
        method: Method,
        key: ServerKey,
        peer: Peer,
        /// For CANCEL: the INVITE transaction it matched.
        invite: Option<u64>,
        /// For INVITE: the 100 Trying to queue.
        trying: Option<Bytes>,
    },
}

fn push_send(actions: &mut Vec<Action>, peer: &Peer, data: Bytes, id: u64) {
    actions.push(Action::Send {
        peer: peer.clone(),
        data,
        tx: Some(TxRef::Server(ServerTxId(id))),
    });
}

fn next_interval(cur: Duration, cap: Duration) -> Duration {
    cur.saturating_mul(2).min(cap)
}

impl TransactionLayer {
    pub(super) fn on_request(&mut self, msg: SipMessage, from: Peer, now: Instant) -> Incoming {
        let decision = match self.decide(&msg, &from, now) {
            Ok(d) => d,
            Err(reason) => return Incoming::Invalid { msg, reason },
        };
        match decision {
            Decision::Absorbed => Incoming::Retransmission,
            Decision::Refused => Incoming::Overloaded(msg),
            Decision::AckAbsorbed => Incoming::AckAbsorbed,
            Decision::AckFor2xx(invite) => Incoming::AckFor2xx {
                invite: invite.map(ServerTxId),
                msg,
            },
            Decision::New {
                method,
                key,
                peer,
                invite,
                trying,
            } => {
                let is_cancel = method == Method::Cancel;
                let id = self.create_server(msg.clone(), method, key, peer, trying);
                let id = ServerTxId(id);
                if is_cancel {
                    Incoming::Cancel {
                        id,
                        invite: invite.map(ServerTxId),
                        msg,
                    }
                } else {
                    Incoming::NewRequest { id, msg }
                }
            }
        }
    }

    /// Matches a request and applies what retransmissions and ACKs do to existing
    /// transactions.
    fn decide(
        &mut self,
        msg: &SipMessage,
        from: &Peer,
        now: Instant,
    ) -> Result<Decision, &'static str> {
        let method = msg.method().ok_or("not a request")?.clone();
        let via = msg.top_via().map_err(|_| "missing or malformed top Via")?;
        let cseq = msg.cseq().map_err(|_| "missing or malformed CSeq")?;
        if cseq.method != method {
            return Err("CSeq method does not match the request method");
        }
        let call_id = msg.call_id().ok_or("missing Call-ID")?;
        let branch = via.branch().filter(|b| b.starts_with(MAGIC));
        let legacy = match branch {
            Some(_) => None,
            None => Some(LegacyRef::of(
                msg,
                msg.header_values(HeaderName::Via).next().unwrap_or(""),
                call_id,
                cseq.seq,
            )),
        };

        if method == Method::Ack {
            let found = match (branch, &legacy) {
                (Some(b), _) => self.find_by_branch(b, &via, &Method::Invite),
                (None, Some(l)) => self.find_legacy(l, LegacyMatch::Ack),
                (None, None) => None,
            };
            if let Some(id) = found {
                if let Some(d) = self.ack_matched(id, now) {
                    return Ok(d);
                }
            }
            let to_tag = msg.to_header().ok().and_then(|t| t.tag()).unwrap_or("");
            return Ok(Decision::AckFor2xx(self.ack_2xx(call_id, cseq.seq, to_tag)));
        }

        let existing = match (branch, &legacy) {
            (Some(b), _) => self.find_by_branch(b, &via, &method),
            (None, Some(l)) => self.find_legacy(l, LegacyMatch::Same(&method)),
            (None, None) => None,
        };
        if let Some(id) = existing {
            let peer = destination(&via, from, self.cfg.force_rport);
            self.retransmitted(id, peer);
            return Ok(Decision::Absorbed);
        }

        let invite = match (method == Method::Cancel, branch, &legacy) {
            (false, _, _) => None,
            (true, Some(b), _) => self.find_by_branch(b, &via, &Method::Invite),
            (true, None, Some(l)) => self.find_legacy(l, LegacyMatch::Cancel),
            (true, None, None) => None,
        };
        // A CANCEL for a live INVITE is let through at the bound: it sheds load.
        if self.is_full() && invite.is_none() {
            return Ok(Decision::Refused);
        }
        let (hash, index) = match (branch, &legacy) {
            (Some(b), _) => (self.branch_key(b, &via, &method), &self.server_branches),
            (None, Some(l)) => (self.legacy_key(l, &method), &self.server_legacy),
            (None, None) => return Err("missing or malformed top Via"),
        };
        if index.get(hash).len() >= MAX_PER_KEY {
            return Ok(Decision::Refused);
        }
        let key = match (branch, &legacy) {
            (Some(b), _) => ServerKey::Branch {
                branch: b.into(),
                sent_by: SentBy::of(&via),
                hash,
            },
            (_, Some(l)) => ServerKey::Legacy {
                fields: Box::new(l.to_owned()),
                hash,
            },
            (None, None) => return Err("missing or malformed top Via"),
        };
        let trying = (method == Method::Invite).then(|| super::build::trying(msg));
        Ok(Decision::New {
            method,
            key,
            peer: destination(&via, from, self.cfg.force_rport),
            invite,
            trying,
        })
    }

    /// Index key of an RFC 3261 server transaction: branch, sent-by (host name
    /// case-folded) and method (the caller passes INVITE for ACK and for the INVITE
    /// a CANCEL targets).
    fn branch_key(&self, branch: &str, via: &Via<'_>, method: &Method) -> u64 {
        let mut h = self.hasher.build_hasher();
        branch.hash(&mut h);
        match via.host {
            Host::Name(n) => {
                h.write_u8(0);
                for b in n.bytes() {
                    h.write_u8(b.to_ascii_lowercase());
                }
            }
            other => {
                h.write_u8(1);
                other.ip().hash(&mut h);
            }
        }
        via.port.hash(&mut h);
        method.as_str().hash(&mut h);
        h.finish()
    }

    /// Index key of an RFC 2543 server transaction: what an INVITE, its ACK and its
    /// CANCEL share (Request-URI, From tag, Call-ID, CSeq number, top Via) plus the
    /// method; non-INVITE keys add the To tag, since nothing else looks them up.
    fn legacy_key(&self, l: &LegacyRef<'_>, method: &Method) -> u64 {
        let to_tag = if *method == Method::Invite {
            ""
        } else {
            l.to_tag.unwrap_or("")
        };
        let from_tag = l.from_tag.unwrap_or("");
        self.key((
            l.call_id,
            from_tag,
            l.cseq,
            l.ruri,
            l.via,
            method.as_str(),
            to_tag,
        ))
    }

    fn find_by_branch(&self, branch: &str, via: &Via<'_>, method: &Method) -> Option<u64> {
        self.server_branches
            .get(self.branch_key(branch, via, method))
            .iter()
            .copied()
            .find(|id| {
                self.servers.get(*id).is_some_and(|t| {
                    t.method == *method
                        && matches!(&t.key, ServerKey::Branch { branch: b, sent_by, .. }
                            if **b == *branch && sent_by.matches(via))
                })
            })
    }

    fn find_legacy(&self, l: &LegacyRef<'_>, how: LegacyMatch<'_>) -> Option<u64> {
        let method = match how {
            LegacyMatch::Same(m) => m,
            LegacyMatch::Ack | LegacyMatch::Cancel => &Method::Invite,
        };
        self.server_legacy
            .get(self.legacy_key(l, method))
            .iter()
            .copied()
            .find(|id| {
                let Some(t) = self.servers.get(*id) else {
                    return false;
                };
                let ServerKey::Legacy { fields, .. } = &t.key else {
                    return false;
                };
                l.common_eq(fields)
                    && match how {
                        LegacyMatch::Same(m) => {
                            t.method == *m && fields.to_tag.as_deref() == l.to_tag
                        }
                        LegacyMatch::Ack => {
                            t.method == Method::Invite && fields.final_to_tag.as_deref() == l.to_tag
                        }
                        LegacyMatch::Cancel => {
                            t.method == Method::Invite && fields.to_tag.as_deref() == l.to_tag
                        }
                    }
            })
    }

    /// A retransmitted request: refresh the response destination and resend what
    /// the state calls for (§17.2.1, §17.2.2, RFC 6026).
    fn retransmitted(&mut self, id: u64, peer: Peer) {
        let Some(tx) = self.servers.get_mut(id) else {
            return;
        };
        tx.peer = peer;
        match tx.state {
            ServerState::Proceeding | ServerState::Completed => {
                if let Some(d) = tx.last.clone() {
                    push_send(&mut self.actions, &tx.peer, d, id);
                }
            }
            ServerState::Accepted => {
                for s in tx.accepted.iter().filter(|s| !s.acked) {
                    push_send(&mut self.actions, &tx.peer, s.data.clone(), id);
                }
            }
            ServerState::Trying | ServerState::Confirmed => {}
        }
    }

    /// An ACK matched INVITE transaction `id` by branch (or the RFC 2543 rules).
    /// `None` when the transaction is Accepted: the ACK is then for the 2xx and goes
    /// to dialog matching.
    fn ack_matched(&mut self, id: u64, now: Instant) -> Option<Decision> {
        let t = self.cfg.timers;
        let tx = self.servers.get_mut(id)?;
        match tx.state {
            ServerState::Completed => {
                tx.state = ServerState::Confirmed;
                tx.last = None;
                self.timers.disarm(&mut tx.timers, Slot::Retransmit);
                if tx.peer.transport.reliable() {
                    self.remove_server(id);
                } else {
                    self.timers.arm(
                        &mut tx.timers,
                        TxRef::Server(ServerTxId(id)),
                        Slot::Lifetime,
                        now,
                        t.t4,
                    );
                }
                Some(Decision::AckAbsorbed)
            }
            ServerState::Accepted => None,
            ServerState::Confirmed | ServerState::Proceeding | ServerState::Trying => {
                Some(Decision::AckAbsorbed)
            }
        }
    }

    /// An ACK for a 2xx: find the Accepted INVITE transaction whose 2xx it
    /// acknowledges (Call-ID, CSeq number, To tag) and stop that 2xx's retransmission.
    fn ack_2xx(&mut self, call_id: &str, cseq: u32, to_tag: &str) -> Option<u64> {
        let hash = self.key((call_id, cseq, to_tag));
        for &id in self.server_accepted.get(hash) {
            let Some(tx) = self.servers.get_mut(id) else {
                continue;
            };
            let Some(s) = tx
                .accepted
                .iter_mut()
                .find(|s| s.cseq == cseq && *s.to_tag == *to_tag && *s.call_id == *call_id)
            else {
                continue;
            };
            s.acked = true;
            s.data = Bytes::new();
            if tx.accepted.iter().all(|s| s.acked) {
                self.timers.disarm(&mut tx.timers, Slot::Retransmit);
            }
            return Some(id);
        }
        None
    }

    fn create_server(
        &mut self,
        request: SipMessage,
        method: Method,
        key: ServerKey,
        peer: Peer,
        trying: Option<Bytes>,
    ) -> u64 {
        let invite = method == Method::Invite;
        let tx = ServerTx {
            invite,
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            request: Some(request),
            method,
            key,
            peer,
            last: trying.clone(),
            accepted: Vec::new(),
            interval: self.cfg.timers.t1,
            timers: [None, None],
        };
        let id = self.servers.insert(tx);
        let Some(tx) = self.servers.get(id) else {
            return id;
        };
        match &tx.key {
            ServerKey::Branch { hash, .. } => self.server_branches.insert(*hash, id),
            ServerKey::Legacy { hash, .. } => self.server_legacy.insert(*hash, id),
        }
        if invite {
            self.counts.server_invite += 1;
        } else {
            self.counts.server_non_invite += 1;
        }
        if let Some(d) = trying {
            push_send(&mut self.actions, &tx.peer, d, id);
        }
        id
    }

    pub(super) fn server_respond(
        &mut self,
        id: ServerTxId,
        resp: &SipMessage,
        now: Instant,
    ) -> Result<(), TxError> {
        let code = resp.status().ok_or(TxError::NotAResponse)?;
        let t = self.cfg.timers;
        let class = code / 100;
        // Parsed only where needed: the 2xx ACK matching key, the legacy ACK's To tag.
        let to_tag = || resp.to_header().ok().and_then(|n| n.tag()).unwrap_or("");
        let invite = self
            .servers
            .get(id.0)
            .ok_or(TxError::UnknownTransaction)?
            .invite;
        let (call_id, cseq, hash_2xx) = if class == 2 && invite {
            let call_id = resp.call_id().unwrap_or("");
            let cseq = resp.cseq().map(|c| c.seq).unwrap_or(0);
            (call_id, cseq, self.key((call_id, cseq, to_tag())))
        } else {
            ("", 0, 0)
        };
        let me = TxRef::Server(id);
        let tx = self
            .servers
            .get_mut(id.0)
            .ok_or(TxError::UnknownTransaction)?;
        let reliable = tx.peer.transport.reliable();
        let mut terminate = false;
        let data = match (tx.invite, tx.state, class) {
            (true, ServerState::Proceeding, 1) => {
                let d = Bytes::from(resp.to_bytes());
                tx.last = Some(d.clone());
                d
            }
            (true, ServerState::Proceeding | ServerState::Accepted, 2) => {
                let d = Bytes::from(resp.to_bytes());
                let to_tag = to_tag();
                match tx.accepted.iter_mut().find(|s| *s.to_tag == *to_tag) {
                    Some(s) => {
                        if !s.acked {
                            s.data = d.clone();
                        }
                    }
                    None => {
                        tx.accepted.push(Sent2xx {
                            call_id: call_id.into(),
                            cseq,
                            to_tag: to_tag.into(),
                            hash: hash_2xx,
                            data: d.clone(),
                            acked: false,
                        });
                        self.server_accepted.insert(hash_2xx, id.0);
                    }
                }
                if tx.state == ServerState::Proceeding {
                    tx.state = ServerState::Accepted;
                    tx.last = None;
                    tx.request = None;
                    self.timers
                        .arm(&mut tx.timers, me, Slot::Lifetime, now, t.t64());
                }
                if !reliable && tx.timers[Slot::Retransmit as usize].is_none() {
                    tx.interval = t.t1;
                    self.timers
                        .arm(&mut tx.timers, me, Slot::Retransmit, now, t.t1);
                }
                d
            }
            (true, ServerState::Proceeding, 3..=6) => {
                let d = Bytes::from(resp.to_bytes());
                tx.last = Some(d.clone());
                tx.state = ServerState::Completed;
                tx.request = None;
                if let ServerKey::Legacy { fields, .. } = &mut tx.key {
                    let tag = to_tag();
                    fields.final_to_tag = (!tag.is_empty()).then(|| tag.into());
                }
                if !reliable {
                    tx.interval = t.t1;
                    self.timers
                        .arm(&mut tx.timers, me, Slot::Retransmit, now, t.t1);
                }
                self.timers
                    .arm(&mut tx.timers, me, Slot::Lifetime, now, t.t64());
                d
            }
            (false, ServerState::Trying | ServerState::Proceeding, 1) => {
                let d = Bytes::from(resp.to_bytes());
                tx.last = Some(d.clone());
                tx.state = ServerState::Proceeding;
                d
            }
            (false, ServerState::Trying | ServerState::Proceeding, 2..=6) => {
                let d = Bytes::from(resp.to_bytes());
                tx.last = Some(d.clone());
                tx.state = ServerState::Completed;
                tx.request = None;
                if reliable {
                    terminate = true;
                } else {
                    self.timers
                        .arm(&mut tx.timers, me, Slot::Lifetime, now, t.t64());
                }
                d
            }
            _ => return Err(TxError::FinalAlreadySent),
        };
        push_send(&mut self.actions, &tx.peer, data, id.0);
        if terminate {
            self.remove_server(id.0);
        }
        Ok(())
    }

    /// A server timer fired (its slot is already cleared).
    pub(super) fn server_timer(&mut self, id: u64, slot: Slot, now: Instant) {
        let t = self.cfg.timers;
        let me = TxRef::Server(ServerTxId(id));
        let Some(tx) = self.servers.get_mut(id) else {
            return;
        };
        match (tx.invite, tx.state, slot) {
            // Timer G: retransmit the non-2xx final, doubling up to T2.
            (true, ServerState::Completed, Slot::Retransmit) => {
                if let Some(d) = tx.last.clone() {
                    push_send(&mut self.actions, &tx.peer, d, id);
                }
                tx.interval = next_interval(tx.interval, t.t2);
                self.timers
                    .arm(&mut tx.timers, me, Slot::Retransmit, now, tx.interval);
            }
            // Timer H: the ACK never came.
            (true, ServerState::Completed, Slot::Lifetime) => {
                self.actions
                    .push(Action::ServerNoAck { id: ServerTxId(id) });
                self.remove_server(id);
            }
            // 2xx retransmission (§13.3.1.4): T1 doubling up to T2, until ACKed.
            (true, ServerState::Accepted, Slot::Retransmit) => {
                let mut pending = false;
                for s in tx.accepted.iter().filter(|s| !s.acked) {
                    push_send(&mut self.actions, &tx.peer, s.data.clone(), id);
                    pending = true;
                }
                if pending {
                    tx.interval = next_interval(tx.interval, t.t2);
                    self.timers
                        .arm(&mut tx.timers, me, Slot::Retransmit, now, tx.interval);
                }
            }
            // Timer L (RFC 6026): end of Accepted; report a 2xx never acknowledged.
            (true, ServerState::Accepted, Slot::Lifetime) => {
                if tx.accepted.iter().any(|s| !s.acked) {
                    self.actions
                        .push(Action::ServerNoAck { id: ServerTxId(id) });
                }
                self.remove_server(id);
            }
            // Timer I (Confirmed) and timer J (non-INVITE Completed).
            (true, ServerState::Confirmed, Slot::Lifetime)
            | (false, ServerState::Completed, Slot::Lifetime) => self.remove_server(id),
            _ => {}
        }
    }

    /// Ends server transaction `id`, unindexes it and reports it.
    pub(super) fn remove_server(&mut self, id: u64) {
        let Some(tx) = self.servers.remove(id) else {
            return;
        };
        self.timers.forget(&tx.timers);
        match &tx.key {
            ServerKey::Branch { hash, .. } => self.server_branches.remove(*hash, id),
            ServerKey::Legacy { hash, .. } => self.server_legacy.remove(*hash, id),
        }
        for s in &tx.accepted {
            self.server_accepted.remove(s.hash, id);
        }
        if tx.invite {
            self.counts.server_invite -= 1;
        } else {
            self.counts.server_non_invite -= 1;
        }
        self.actions
            .push(Action::Terminated(TxRef::Server(ServerTxId(id))));
    }
}
