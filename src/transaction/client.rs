//! Client transactions (RFC 3261 §17.1, RFC 6026): sending and retransmitting
//! requests, matching responses (§17.1.3), the hop-by-hop ACK for non-2xx finals,
//! and CANCEL (§9.1).

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::sip::{Method, SipMessage};

use super::timers::{Slot, Slots};
use super::{
    build_ack, build_cancel, Action, ClientTxId, Incoming, Peer, TransactionLayer, TxError, TxRef,
};

/// The state of a live client transaction (§17.1.1, §17.1.2, RFC 6026 §8.4).
/// "Terminated" is never observed: the transaction is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// A CANCEL held back until its INVITE sees a provisional response (§9.1).
    Held,
    /// INVITE sent, nothing received: timer A retransmits (UDP), timer B gives up.
    Calling,
    /// Non-INVITE sent, nothing received: timer E retransmits (UDP), F gives up.
    Trying,
    /// A provisional arrived. INVITE: no more retransmission and no timeout (the TU
    /// cancels). Non-INVITE: E keeps retransmitting every T2 until F.
    Proceeding,
    /// A final arrived. INVITE (non-2xx): ACK sent, retransmitted finals re-ACKed
    /// until timer D. Non-INVITE: retransmitted finals absorbed until timer K.
    Completed,
    /// INVITE: a 2xx arrived; further 2xx (retransmissions or other forks) are passed
    /// up until timer M (RFC 6026).
    Accepted,
}

/// A live client transaction.
#[derive(Debug)]
pub(super) struct ClientTx {
    invite: bool,
    pub(super) state: ClientState,
    /// The request, until a final response arrives (the TU reads it; CANCEL and the
    /// ACK are built from it).
    pub(super) request: Option<SipMessage>,
    method: Method,
    branch: Box<str>,
    hash: u64,
    peer: Peer,
    /// The request bytes while retransmitting; the ACK after a non-2xx final.
    data: Bytes,
    interval: Duration,
    pub(super) timers: Slots,
    /// To tags (hashed) of the 2xx seen, to flag retransmissions.
    tags_2xx: Vec<u64>,
    /// INVITE: the CANCEL started for it.
    cancel: Option<u64>,
}

fn push_send(actions: &mut Vec<Action>, peer: &Peer, data: Bytes, id: u64) {
    actions.push(Action::Send {
        peer: peer.clone(),
        data,
        tx: Some(TxRef::Client(ClientTxId(id))),
    });
}

impl TransactionLayer {
    pub(super) fn client_send(
        &mut self,
        req: SipMessage,
        to: Peer,
        now: Instant,
    ) -> Result<ClientTxId, TxError> {
        let method = req.method().ok_or(TxError::NotARequest)?.clone();
        if method == Method::Ack {
            return Err(TxError::AckIsNotATransaction);
        }
        let (branch, hash) = {
            let via = req.top_via().map_err(|_| TxError::BadVia)?;
            let b = via
                .branch()
                .filter(|b| !b.is_empty())
                .ok_or(TxError::BadVia)?;
            (Box::<str>::from(b), self.key((b, method.as_str())))
        };
        let cseq = req.cseq().map_err(|_| TxError::BadCSeq)?;
        if cseq.method != method || req.call_id().is_none() {
            return Err(TxError::BadCSeq);
        }
        if self.find_client(hash, &branch, &method).is_some() {
            return Err(TxError::DuplicateBranch);
        }
        let invite = method == Method::Invite;
        let data = Bytes::from(req.to_bytes());
        let id = self.insert_client(ClientTx {
            invite,
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            request: Some(req),
            method,
            branch,
            hash,
            peer: to,
            data,
            interval: self.cfg.timers.t1,
            timers: [None, None],
            tags_2xx: Vec::new(),
            cancel: None,
        });
        self.start_client(id, now);
        Ok(ClientTxId(id))
    }

    fn insert_client(&mut self, tx: ClientTx) -> u64 {
        let (hash, invite) = (tx.hash, tx.invite);
        let id = self.clients.insert(tx);
        self.client_branches.insert(hash, id);
        if invite {
            self.counts.client_invite += 1;
        } else {
            self.counts.client_non_invite += 1;
        }
        id
    }

    /// Sends the request for the first time and arms A/B or E/F.
    fn start_client(&mut self, id: u64, now: Instant) {
        let t = self.cfg.timers;
        let me = TxRef::Client(ClientTxId(id));
        let Some(tx) = self.clients.get_mut(id) else {
            return;
        };
        if tx.state == ClientState::Held {
            tx.state = ClientState::Trying;
        }
        push_send(&mut self.actions, &tx.peer, tx.data.clone(), id);
        if !tx.peer.transport.reliable() {
            tx.interval = t.t1;
            self.timers
                .arm(&mut tx.timers, me, Slot::Retransmit, now, t.t1);
        }
        self.timers
            .arm(&mut tx.timers, me, Slot::Lifetime, now, t.t64());
    }

    /// The client transaction for `branch` and `method`; `hash` is the index key
    /// of the pair (§17.1.3: top Via branch and CSeq method).
    fn find_client(&self, hash: u64, branch: &str, method: &Method) -> Option<u64> {
        self.client_branches.get(hash).iter().copied().find(|id| {
            self.clients
                .get(*id)
                .is_some_and(|t| t.method == *method && *t.branch == *branch)
        })
    }

    pub(super) fn client_cancel(
        &mut self,
        invite: ClientTxId,
        now: Instant,
    ) -> Result<ClientTxId, TxError> {
        let t = self.cfg.timers;
        let tx = self
            .clients
            .get(invite.0)
            .ok_or(TxError::UnknownTransaction)?;
        if !tx.invite {
            return Err(TxError::NotInvite);
        }
        if let Some(c) = tx.cancel {
            return Ok(ClientTxId(c));
        }
        if !matches!(tx.state, ClientState::Calling | ClientState::Proceeding) {
            return Err(TxError::AlreadyFinal);
        }
        let req = tx.request.as_ref().ok_or(TxError::AlreadyFinal)?;
        let cancel = build_cancel(req).ok_or(TxError::BadVia)?;
        let held = tx.state == ClientState::Calling;
        let c = ClientTx {
            invite: false,
            state: ClientState::Held,
            data: Bytes::from(cancel.to_bytes()),
            request: Some(cancel),
            method: Method::Cancel,
            branch: tx.branch.clone(),
            hash: self.key((&*tx.branch, Method::Cancel.as_str())),
            peer: tx.peer.clone(),
            interval: t.t1,
            timers: [None, None],
            tags_2xx: Vec::new(),
            cancel: None,
        };
        let cid = self.insert_client(c);
        if let Some(tx) = self.clients.get_mut(invite.0) {
            tx.cancel = Some(cid);
        }
        if !held {
            self.send_cancel(invite.0, cid, now);
        }
        Ok(ClientTxId(cid))
    }

    /// Sends a CANCEL and gives its INVITE 64*T1 to see a final (§9.1).
    fn send_cancel(&mut self, invite: u64, cancel: u64, now: Instant) {
        self.start_client(cancel, now);
        let t64 = self.cfg.timers.t64();
        if let Some(tx) = self.clients.get_mut(invite) {
            self.timers.arm(
                &mut tx.timers,
                TxRef::Client(ClientTxId(invite)),
                Slot::Lifetime,
                now,
                t64,
            );
        }
    }

    /// A CANCEL still held when its INVITE got a final (or ended) is never sent.
    fn drop_held_cancel(&mut self, cancel: Option<u64>) {
        let Some(c) = cancel else {
            return;
        };
        if self
            .clients
            .get(c)
            .is_some_and(|t| t.state == ClientState::Held)
        {
            self.remove_client(c);
        }
    }

    pub(super) fn on_response(&mut self, msg: SipMessage, now: Instant) -> Incoming {
        let found = {
            let via = match msg.top_via() {
                Ok(v) => v,
                Err(_) => {
                    return Incoming::Invalid {
                        msg,
                        reason: "missing or malformed top Via",
                    }
                }
            };
            let cseq = match msg.cseq() {
                Ok(c) => c,
                Err(_) => {
                    return Incoming::Invalid {
                        msg,
                        reason: "missing or malformed CSeq",
                    }
                }
            };
            via.branch().and_then(|b| {
                let hash = self.key((b, cseq.method.as_str()));
                self.find_client(hash, b, &cseq.method)
            })
        };
        let Some(id) = found else {
            return Incoming::Stray(msg);
        };
        let class = msg.status().unwrap_or(0) / 100;
        let invite = self.clients.get(id).is_some_and(|t| t.invite);
        let tag_hash = if class == 2 && invite {
            let tag = msg.to_header().ok().and_then(|t| t.tag()).unwrap_or("");
            self.key(tag)
        } else {
            0
        };
        let t = self.cfg.timers;
        let me = TxRef::Client(ClientTxId(id));
        let Some(tx) = self.clients.get_mut(id) else {
            return Incoming::Stray(msg);
        };
        let reliable = tx.peer.transport.reliable();
        let passed_up = |msg, retransmission| Incoming::Response {
            id: ClientTxId(id),
            msg,
            retransmission,
        };
        if tx.invite {
            match (tx.state, class) {
                (ClientState::Calling | ClientState::Proceeding, 1) => {
                    if tx.state == ClientState::Calling {
                        tx.state = ClientState::Proceeding;
                        self.timers.disarm(&mut tx.timers, Slot::Retransmit);
                        self.timers.disarm(&mut tx.timers, Slot::Lifetime);
                        let held = tx.cancel;
                        if let Some(c) = held {
                            if self
                                .clients
                                .get(c)
                                .is_some_and(|c| c.state == ClientState::Held)
                            {
                                self.send_cancel(id, c, now);
                            }
                        }
                    }
                    passed_up(msg, false)
                }
                (ClientState::Calling | ClientState::Proceeding, 2) => {
                    tx.state = ClientState::Accepted;
                    tx.request = None;
                    tx.data = Bytes::new();
                    tx.tags_2xx.push(tag_hash);
                    self.timers.disarm(&mut tx.timers, Slot::Retransmit);
                    self.timers
                        .arm(&mut tx.timers, me, Slot::Lifetime, now, t.t64());
                    let cancel = tx.cancel;
                    self.drop_held_cancel(cancel);
                    passed_up(msg, false)
                }
                (ClientState::Calling | ClientState::Proceeding, 3..=6) => {
                    let ack = tx
                        .request
                        .take()
                        .and_then(|req| build_ack(&req, &msg))
                        .map(|a| Bytes::from(a.to_bytes()))
                        .unwrap_or_default();
                    tx.state = ClientState::Completed;
                    tx.data = ack.clone();
                    if !ack.is_empty() {
                        push_send(&mut self.actions, &tx.peer, ack, id);
                    }
                    self.timers.disarm(&mut tx.timers, Slot::Retransmit);
                    let cancel = tx.cancel;
                    if reliable {
                        self.remove_client(id);
                    } else {
                        self.timers
                            .arm(&mut tx.timers, me, Slot::Lifetime, now, t.timer_d);
                    }
                    self.drop_held_cancel(cancel);
                    passed_up(msg, false)
                }
                (ClientState::Accepted, 2) => {
                    let seen = tx.tags_2xx.contains(&tag_hash);
                    if !seen {
                        tx.tags_2xx.push(tag_hash);
                    }
                    passed_up(msg, seen)
                }
                (ClientState::Completed, 3..=6) => {
                    if !tx.data.is_empty() {
                        push_send(&mut self.actions, &tx.peer, tx.data.clone(), id);
                    }
                    Incoming::Retransmission
                }
                _ => Incoming::Retransmission,
            }
        } else {
            match (tx.state, class) {
                (ClientState::Trying | ClientState::Proceeding, 1) => {
                    tx.state = ClientState::Proceeding;
                    passed_up(msg, false)
                }
                (ClientState::Trying | ClientState::Proceeding, 2..=6) => {
                    tx.state = ClientState::Completed;
                    tx.request = None;
                    tx.data = Bytes::new();
                    self.timers.disarm(&mut tx.timers, Slot::Retransmit);
                    if reliable {
                        self.remove_client(id);
                    } else {
                        self.timers
                            .arm(&mut tx.timers, me, Slot::Lifetime, now, t.t4);
                    }
                    passed_up(msg, false)
                }
                (ClientState::Held, _) => Incoming::Stray(msg),
                _ => Incoming::Retransmission,
            }
        }
    }

    /// A client timer fired (its slot is already cleared).
    pub(super) fn client_timer(&mut self, id: u64, slot: Slot, now: Instant) {
        let t = self.cfg.timers;
        let me = TxRef::Client(ClientTxId(id));
        let Some(tx) = self.clients.get_mut(id) else {
            return;
        };
        match (tx.invite, tx.state, slot) {
            // Timer A: retransmit, doubling with no cap (B ends it at 64*T1).
            (true, ClientState::Calling, Slot::Retransmit) => {
                push_send(&mut self.actions, &tx.peer, tx.data.clone(), id);
                tx.interval = tx.interval.saturating_mul(2);
                self.timers
                    .arm(&mut tx.timers, me, Slot::Retransmit, now, tx.interval);
            }
            // Timer E: doubling up to T2 while Trying, every T2 once Proceeding.
            (false, ClientState::Trying | ClientState::Proceeding, Slot::Retransmit) => {
                push_send(&mut self.actions, &tx.peer, tx.data.clone(), id);
                tx.interval = if tx.state == ClientState::Trying {
                    tx.interval.saturating_mul(2).min(t.t2)
                } else {
                    t.t2
                };
                self.timers
                    .arm(&mut tx.timers, me, Slot::Retransmit, now, tx.interval);
            }
            // Timer B (Calling), the CANCEL guard (Proceeding), timer F: no final.
            (true, ClientState::Calling | ClientState::Proceeding, Slot::Lifetime)
            | (false, ClientState::Trying | ClientState::Proceeding, Slot::Lifetime) => {
                self.actions
                    .push(Action::ClientTimeout { id: ClientTxId(id) });
                self.remove_client(id);
            }
            // Timers D, M and K: the wait is over.
            (true, ClientState::Completed | ClientState::Accepted, Slot::Lifetime)
            | (false, ClientState::Completed, Slot::Lifetime) => self.remove_client(id),
            _ => {}
        }
    }

    pub(super) fn client_transport_error(&mut self, id: ClientTxId) {
        let Some(tx) = self.clients.get(id.0) else {
            return;
        };
        if matches!(
            tx.state,
            ClientState::Calling | ClientState::Trying | ClientState::Proceeding
        ) {
            self.actions.push(Action::ClientTransportError { id });
        }
        self.remove_client(id.0);
    }

    /// Ends client transaction `id` (and a CANCEL it still holds), unindexes it and
    /// reports it.
    pub(super) fn remove_client(&mut self, id: u64) {
        let Some(tx) = self.clients.remove(id) else {
            return;
        };
        self.timers.forget(&tx.timers);
        self.client_branches.remove(tx.hash, id);
        if tx.invite {
            self.counts.client_invite -= 1;
        } else {
            self.counts.client_non_invite -= 1;
        }
        self.actions
            .push(Action::Terminated(TxRef::Client(ClientTxId(id))));
        self.drop_held_cancel(tx.cancel);
    }
}
