//! RFC 3261 §17 transactions: INVITE and non-INVITE, client and server, as a sans-IO
//! state machine (DESIGN.md, "Parts").
//!
//! # Driving it
//!
//! The layer owns no socket, no clock and no task. The shell around it:
//!
//! 1. feeds every parsed message with [`TransactionLayer::on_message`] and acts on
//!    the returned [`Incoming`] (a new request for the TU, a matched response, an ACK
//!    for a 2xx, or something the layer absorbed);
//! 2. lets the TU answer with [`TransactionLayer::respond`] and start requests with
//!    [`TransactionLayer::send_request`] / [`TransactionLayer::cancel`];
//! 3. after every call, drains [`TransactionLayer::drain_actions`]: bytes to send
//!    (serialized once; every retransmission is the same [`Bytes`]), timeouts to
//!    report upstream, and transactions that ended;
//! 4. sleeps until [`TransactionLayer::next_deadline`] (or the next packet) and then
//!    calls [`TransactionLayer::poll`] with the current time.
//!
//! Every entry point takes `now`, so a test drives every timer path with a fake
//! clock (`Instant::now()` plus offsets) and no sleeping.
//!
//! # What the layer does on its own
//!
//! - INVITE server transactions answer `100 Trying` at once (§17.2.1).
//! - Retransmitted requests are absorbed and answered with the last response sent,
//!   byte for byte.
//! - A non-2xx final response to a client INVITE is acknowledged by the layer
//!   (§17.1.1.3); retransmissions of that final get the same ACK again.
//! - A 2xx sent by an INVITE server transaction is retransmitted over UDP (T1
//!   doubling up to T2, §13.3.1.4) until its ACK arrives, in the RFC 6026 Accepted
//!   state; Timer L ends the transaction and reports an ACK that never came.
//! - Timers A, B, D, E, F, G, H, I, J, K, L and M with RFC values; over a reliable
//!   transport nothing is retransmitted and D, I, J, K are zero.
//!
//! # What it leaves to the TU
//!
//! Building responses (the request is handed over in [`Incoming::NewRequest`]; the
//! layer keeps a copy, [`TransactionLayer::server_request`], until the final), the ACK for a 2xx (a dialog matter, sent
//! with [`TransactionLayer::send_stateless`]), 408/503 upstream when a client
//! transaction fails, timer C / ring timeouts, and answering [`Incoming::Invalid`]
//! and [`Incoming::Overloaded`] (with [`TransactionLayer::respond_stateless`]).
//!
//! # Cost
//!
//! Matching allocates nothing: indexes map a keyed 64-bit hash of the matching
//! fields (branch, sent-by, method; or the RFC 2543 tuple) to slab ids, and a hit is
//! confirmed against the fields the transaction keeps. Timers sit in per-duration
//! FIFO lanes (O(1) arm and expiry; see `timers.rs`). Retransmissions reuse the
//! bytes serialized once. `benches/transaction.rs` measures a whole B2BUA call
//! (both legs, eight messages in); most of its cost is parsing the top Via, CSeq
//! and To of each message in the `sip` layer, not the state machines.
//!
//! # Memory
//!
//! Once a final response is sent or received, a transaction drops the request and
//! keeps only its matching key and the bytes it may still have to resend (the last
//! response, or the ACK), because at thousands of calls per second most live
//! transactions are in their 5–32 s wait states.

mod build;
mod client;
mod server;
mod store;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::sip::SipMessage;

pub use build::{build_ack, build_cancel, response_destination};
pub use client::ClientState;
pub use server::ServerState;

use client::ClientTx;
use server::ServerTx;
use store::{Index, Slab};
use timers::TimerQueue;

/// A transport protocol. The layer only needs to know whether it is reliable:
/// reliable transports get no retransmissions and zero wait timers (D, I, J, K).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unreliable datagrams: the layer retransmits.
    Udp,
    /// A reliable stream: the transport delivers, the layer does not retransmit.
    Tcp,
}

impl Transport {
    /// Whether the transport delivers reliably (RFC 3261 "reliable transport").
    pub fn reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }
}

/// Where a message came from or goes to. Opaque to the layer apart from
/// `transport`: it is stored with each transaction and handed back in
/// [`Action::Send`], so the shell can pick the interface's socket (`iface`) and, for
/// streams, the connection the peer opened (`conn`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Remote address and port.
    pub addr: SocketAddr,
    /// Transport protocol.
    pub transport: Transport,
    /// Index of the local interface the message arrived on or leaves from.
    pub iface: usize,
    /// Stream connection id, when the message arrived on (or must use) one.
    pub conn: Option<u64>,
}

/// The RFC 3261 timer base values (§17.1.1.1, Table 4). Timers A–M derive from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate: first retransmission interval; 64*T1 is the transaction timeout.
    pub t1: Duration,
    /// Cap on the retransmission interval of non-INVITE requests and of responses.
    pub t2: Duration,
    /// Longest time a message stays in the network: timers I and K.
    pub t4: Duration,
    /// Timer D over UDP: how long a client INVITE transaction absorbs retransmitted
    /// non-2xx finals (RFC: at least 32 s).
    pub timer_d: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
        }
    }
}

impl TimerConfig {
    /// Bounded values: every timer at least 1 ms (a zero T1 would retransmit in a
    /// loop) and at most one hour (so deadline arithmetic cannot overflow).
    fn clamped(self) -> Self {
        let c = |d: Duration| d.clamp(Duration::from_millis(1), Duration::from_secs(3600));
        TimerConfig {
            t1: c(self.t1),
            t2: c(self.t2),
            t4: c(self.t4),
            timer_d: c(self.timer_d),
        }
    }

    /// 64*T1: timers B, F, H, J (UDP), L and M.
    fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// The layer's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerConfig {
    /// Timer base values.
    pub timers: TimerConfig,
    /// Most live transactions (client and server together, wait states included).
    /// At the bound a new request from the network is reported as
    /// [`Incoming::Overloaded`] so the TU answers 503 without creating state
    /// (DESIGN.md invariant 5). Requests the TU sends are never refused: the TU
    /// bounds its own work.
    pub max_transactions: usize,
    /// Send UDP responses to the request's source port even when the top Via has
    /// no `rport` (symmetric response routing for peers behind NAT).
    pub force_rport: bool,
}

impl Default for LayerConfig {
    fn default() -> Self {
        LayerConfig {
            timers: TimerConfig::default(),
            max_transactions: 1_000_000,
            force_rport: false,
        }
    }
}

/// A server transaction (a request received). Opaque; stale ids are detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(u64);

/// A client transaction (a request sent). Opaque; stale ids are detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(u64);

impl ServerTxId {
    /// The raw value, for logs and maps keyed by transaction.
    pub fn raw(self) -> u64 {
        self.0
    }
}

impl ClientTxId {
    /// The raw value, for logs and maps keyed by transaction.
    pub fn raw(self) -> u64 {
        self.0
    }
}

/// Either kind of transaction, for reports that concern both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxRef {
    /// A server transaction.
    Server(ServerTxId),
    /// A client transaction.
    Client(ClientTxId),
}

/// What the shell must do after an entry point returns, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `data` to `peer`. `tx` names the transaction it belongs to (none for
    /// stateless sends), so a transport failure can be reported back with
    /// [`TransactionLayer::on_transport_error`].
    Send {
        /// Destination, as given to or recorded by the layer.
        peer: Peer,
        /// The serialized message; retransmissions share the same buffer.
        data: Bytes,
        /// The transaction that sent it.
        tx: Option<TxRef>,
    },
    /// A client transaction got no final response: timer B or F fired, or the CANCEL
    /// guard (64*T1 after a CANCEL, §9.1) did. The TU answers 408 upstream.
    ClientTimeout {
        /// The transaction that failed.
        id: ClientTxId,
    },
    /// A client transaction's request could not be delivered
    /// ([`TransactionLayer::on_transport_error`], §17.1.4). The TU treats it as a 503.
    ClientTransportError {
        /// The transaction that failed.
        id: ClientTxId,
    },
    /// An INVITE server transaction's final response was never acknowledged: timer H
    /// (non-2xx) or timer L with a 2xx still unacknowledged (RFC 6026). For a 2xx the
    /// TU ends the dialog with BYE (§13.3.1.4).
    ServerNoAck {
        /// The transaction whose final was not acknowledged.
        id: ServerTxId,
    },
    /// The transaction ended; its id is no longer valid. For bookkeeping.
    Terminated(TxRef),
}

/// What an incoming message turned out to be.
#[derive(Debug)]
pub enum Incoming {
    /// A new server transaction for the TU. For INVITE the layer has already queued
    /// `100 Trying`. The layer keeps a copy until its final response
    /// ([`TransactionLayer::server_request`]).
    NewRequest {
        /// The new transaction; answer with [`TransactionLayer::respond`].
        id: ServerTxId,
        /// The request.
        msg: SipMessage,
    },
    /// Absorbed by the layer: a retransmitted request (its last response, if any, is
    /// queued again), a retransmitted final at a completed client transaction (its
    /// ACK is queued again), or a late response the RFC says to discard.
    Retransmission,
    /// A CANCEL, which got its own non-INVITE server transaction `id` (answer it 200,
    /// or 481 when `invite` is `None`). `invite` is the INVITE server transaction it
    /// matches (same branch, sent-by; §9.2) if still alive; see
    /// [`TransactionLayer::server_state`] to tell whether it is still unanswered.
    Cancel {
        /// The CANCEL's own transaction.
        id: ServerTxId,
        /// The INVITE transaction it cancels.
        invite: Option<ServerTxId>,
        /// The CANCEL request.
        msg: SipMessage,
    },
    /// An ACK that is not hop-by-hop (it acknowledges a 2xx), for the dialog. If it
    /// matches a 2xx sent by an INVITE server transaction (Call-ID, CSeq number, To
    /// tag), that transaction stopped retransmitting the 2xx and `invite` names it.
    AckFor2xx {
        /// The Accepted INVITE server transaction whose 2xx this acknowledges.
        invite: Option<ServerTxId>,
        /// The ACK.
        msg: SipMessage,
    },
    /// An ACK for a non-2xx final, matched and consumed (hop by hop).
    AckAbsorbed,
    /// A response matched to client transaction `id` (§17.1.3). Provisionals, the
    /// final, and 2xx arriving in the Accepted state are passed up; `retransmission`
    /// is true for a 2xx whose To tag was already seen (the TU re-sends its ACK).
    Response {
        /// The client transaction.
        id: ClientTxId,
        /// The response.
        msg: SipMessage,
        /// A retransmitted 2xx.
        retransmission: bool,
    },
    /// A response that matches no client transaction (e.g. a 2xx retransmission
    /// after timer M); the TU may still use it (a late 2xx needs ACK and BYE).
    Stray(SipMessage),
    /// A message the layer cannot match: missing or malformed top Via, CSeq or
    /// Call-ID, or a CSeq method differing from the request method. Not the layer's
    /// business to answer: the TU answers a request 400 or drops it.
    Invalid {
        /// The message.
        msg: SipMessage,
        /// Why, for a Warning header or a log line.
        reason: &'static str,
    },
    /// A new request arrived while [`LayerConfig::max_transactions`] transactions are
    /// live; no state was created. The TU answers 503 (or drops under attack).
    Overloaded(SipMessage),
}

/// Why the TU's call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The id names a transaction that ended (or never existed).
    #[error("no such transaction")]
    UnknownTransaction,
    /// `respond` was given a request.
    #[error("not a response")]
    NotAResponse,
    /// `send_request` was given a response.
    #[error("not a request")]
    NotARequest,
    /// A final response was already sent, so nothing more may be (save further 2xx).
    #[error("a final response was already sent")]
    FinalAlreadySent,
    /// The request has no top Via with a branch, so responses could not be matched.
    #[error("request has no top Via with a branch parameter")]
    BadVia,
    /// The request has no parseable CSeq matching its method, or no Call-ID.
    #[error("request has no valid CSeq or Call-ID")]
    BadCSeq,
    /// ACK is never a client transaction; send it with `send_stateless`.
    #[error("ACK is not sent in a transaction")]
    AckIsNotATransaction,
    /// A live client transaction already uses this branch and method.
    #[error("branch already in use")]
    DuplicateBranch,
    /// Only INVITE can be cancelled.
    #[error("only INVITE transactions can be cancelled")]
    NotInvite,
    /// The INVITE already has a final response; there is nothing left to cancel.
    #[error("the INVITE already has a final response")]
    AlreadyFinal,
}

/// Live transactions by kind, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxCounts {
    /// INVITE server transactions.
    pub server_invite: usize,
    /// Non-INVITE server transactions (CANCEL included).
    pub server_non_invite: usize,
    /// INVITE client transactions.
    pub client_invite: usize,
    /// Non-INVITE client transactions (CANCEL included).
    pub client_non_invite: usize,
}

/// The transaction layer: every live transaction, the indexes that match messages
/// to them, the timer queue, and the actions queued for the shell.
pub struct TransactionLayer {
    cfg: LayerConfig,
    servers: Slab<ServerTx>,
    clients: Slab<ClientTx>,
    /// Server transactions with an RFC 3261 branch, by hash of the branch.
    server_branches: Index,
    /// Server transactions from RFC 2543 peers, by hash of (Call-ID, From tag, CSeq).
    server_legacy: Index,
    /// Accepted INVITE server transactions, by hash of (Call-ID, CSeq, To tag).
    server_accepted: Index,
    /// Client transactions by hash of their branch.
    client_branches: Index,
    timers: TimerQueue,
    actions: Vec<Action>,
    hasher: RandomState,
    counts: TxCounts,
    branch_counter: u64,
}

impl TransactionLayer {
    /// A layer with the given timers and default limits.
    pub fn new(timers: TimerConfig) -> Self {
        Self::with_config(LayerConfig {
            timers,
            ..LayerConfig::default()
        })
    }

    /// A layer with a full configuration.
    pub fn with_config(cfg: LayerConfig) -> Self {
        TransactionLayer {
            cfg: LayerConfig {
                timers: cfg.timers.clamped(),
                ..cfg
            },
            servers: Slab::new(),
            clients: Slab::new(),
            server_branches: Index::default(),
            server_legacy: Index::default(),
            server_accepted: Index::default(),
            client_branches: Index::default(),
            timers: TimerQueue::new(),
            actions: Vec::with_capacity(16),
            hasher: RandomState::new(),
            counts: TxCounts::default(),
            branch_counter: 0,
        }
    }

    /// The configuration in force (timers clamped to sane bounds).
    pub fn config(&self) -> &LayerConfig {
        &self.cfg
    }

    /// Feeds one parsed message received from `from`. Requests are matched to server
    /// transactions (§17.2.3), responses to client transactions (§17.1.3).
    pub fn on_message(&mut self, msg: SipMessage, from: Peer, now: Instant) -> Incoming {
        let out = if msg.is_request() {
            self.on_request(msg, from, now)
        } else {
            self.on_response(msg, now)
        };
        self.settle();
        out
    }

    /// The TU answers server transaction `id`. The layer serializes the response
    /// once, sends it to where §18.2.2 says, keeps it for retransmitted requests,
    /// and arms G/H (non-2xx INVITE final), the 2xx retransmission and L (2xx), or J
    /// (non-INVITE final).
    pub fn respond(
        &mut self,
        id: ServerTxId,
        resp: &SipMessage,
        now: Instant,
    ) -> Result<(), TxError> {
        let r = self.server_respond(id, resp, now);
        self.settle();
        r
    }

    /// Starts a client transaction for `req` (anything but ACK) toward `to`. The
    /// request's top Via must carry the branch (see [`Self::new_branch`]); it is
    /// serialized once and retransmitted byte for byte (timers A/B for INVITE, E/F
    /// otherwise; no retransmission over reliable transports).
    pub fn send_request(
        &mut self,
        req: SipMessage,
        to: Peer,
        now: Instant,
    ) -> Result<ClientTxId, TxError> {
        let r = self.client_send(req, to, now);
        self.settle();
        r
    }

    /// Cancels client INVITE transaction `invite` (§9.1): builds the CANCEL and runs
    /// it as its own non-INVITE client transaction, whose id is returned (its 200
    /// arrives as [`Incoming::Response`]). Before any provisional response has
    /// arrived the CANCEL is held and sent when one does (§9.1 forbids sending it
    /// earlier); if a final arrives first it is dropped. Once sent, the INVITE
    /// transaction is given 64*T1 to see its final before it ends with
    /// [`Action::ClientTimeout`]. Cancelling twice returns the same CANCEL.
    pub fn cancel(&mut self, invite: ClientTxId, now: Instant) -> Result<ClientTxId, TxError> {
        let r = self.client_cancel(invite, now);
        self.settle();
        r
    }

    /// Sends a response outside any transaction (e.g. 400 to [`Incoming::Invalid`],
    /// 503 to [`Incoming::Overloaded`]) to where §18.2.2 says for `request` from `from`.
    pub fn respond_stateless(&mut self, request: &SipMessage, from: &Peer, resp: &SipMessage) {
        let peer = response_destination(request, from, self.cfg.force_rport);
        self.actions.push(Action::Send {
            peer,
            data: Bytes::from(resp.to_bytes()),
            tx: None,
        });
    }

    /// Sends a message outside any transaction: the ACK for a 2xx (a dialog matter,
    /// §13.2.2.4), or a 2xx retransmission the TU decides on itself.
    pub fn send_stateless(&mut self, msg: &SipMessage, to: Peer) {
        self.actions.push(Action::Send {
            peer: to,
            data: Bytes::from(msg.to_bytes()),
            tx: None,
        });
    }

    /// The shell could not deliver a message of transaction `tx` (connection
    /// refused, ICMP unreachable...). §17.1.4 / §17.2.4: the transaction ends; a
    /// client transaction still waiting for its final reports
    /// [`Action::ClientTransportError`].
    pub fn on_transport_error(&mut self, tx: TxRef) {
        match tx {
            TxRef::Client(id) => self.client_transport_error(id),
            TxRef::Server(id) => self.remove_server(id.0),
        }
        self.settle();
    }

    /// Fires every timer due at `now`.
    pub fn poll(&mut self, now: Instant) {
        while let Some(e) = self.timers.pop_due(now) {
            let live = match e.tx {
                TxRef::Server(id) => self.servers.get_mut(id.0).map(|t| &mut t.timers),
                TxRef::Client(id) => self.clients.get_mut(id.0).map(|t| &mut t.timers),
            }
            .filter(|slots| slots[e.slot as usize] == Some(e.seq));
            match live {
                Some(slots) => {
                    slots[e.slot as usize] = None;
                    match e.tx {
                        TxRef::Server(id) => self.server_timer(id.0, e.slot, now),
                        TxRef::Client(id) => self.client_timer(id.0, e.slot, now),
                    }
                }
                None => self.timers.discarded(),
            }
        }
        self.settle();
    }

    /// When [`Self::poll`] must next be called; `None` when no timer is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|e| e.at)
    }

    /// Takes the queued actions, in the order they were produced.
    pub fn drain_actions(&mut self) -> std::vec::Drain<'_, Action> {
        self.actions.drain(..)
    }

    /// Whether actions are waiting to be drained.
    pub fn has_actions(&self) -> bool {
        !self.actions.is_empty()
    }

    /// The request of a server transaction that has not yet sent a final response
    /// (a copy of what [`Incoming::NewRequest`] handed over), so the TU can build a
    /// response (487, 408...) without keeping the request itself.
    pub fn server_request(&self, id: ServerTxId) -> Option<&SipMessage> {
        self.servers.get(id.0).and_then(|t| t.request.as_ref())
    }

    /// The request of a client transaction that has not yet seen a final response
    /// (the TU reads it to build the B leg's ACK, or for logs).
    pub fn client_request(&self, id: ClientTxId) -> Option<&SipMessage> {
        self.clients.get(id.0).and_then(|t| t.request.as_ref())
    }

    /// The state of a live server transaction.
    pub fn server_state(&self, id: ServerTxId) -> Option<ServerState> {
        self.servers.get(id.0).map(|t| t.state)
    }

    /// The state of a live client transaction.
    pub fn client_state(&self, id: ClientTxId) -> Option<ClientState> {
        self.clients.get(id.0).map(|t| t.state)
    }

    /// Live transactions by kind.
    pub fn counts(&self) -> TxCounts {
        self.counts
    }

    /// Live transactions in total.
    pub fn len(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bound on live transactions is reached (new network requests are
    /// then reported as [`Incoming::Overloaded`]).
    pub fn is_full(&self) -> bool {
        self.len() >= self.cfg.max_transactions
    }

    /// A fresh RFC 3261 branch (`z9hG4bK` + 16 hex digits): a keyed hash of a
    /// counter, unique in the process and unguessable, and revealing nothing about
    /// the other leg or the call rate (DESIGN.md invariant 1).
    pub fn new_branch(&mut self) -> String {
        self.branch_counter += 1;
        let h = self.hasher.hash_one(("branch", self.branch_counter));
        format!("z9hG4bK{h:016x}")
    }

    /// Hash used by the indexes (SipHash with per-process random keys).
    fn key<T: std::hash::Hash>(&self, v: T) -> u64 {
        self.hasher.hash_one(v)
    }

    /// Housekeeping after every entry point: discard orphaned timers at the front of
    /// the queue so `next_deadline` is exact, and compact when orphans dominate.
    fn settle(&mut self) {
        let (servers, clients) = (&self.servers, &self.clients);
        let live = |e: &timers::Entry| {
            match e.tx {
                TxRef::Server(id) => servers.get(id.0).map(|t| t.timers),
                TxRef::Client(id) => clients.get(id.0).map(|t| t.timers),
            }
            .is_some_and(|slots| slots[e.slot as usize] == Some(e.seq))
        };
        if self.timers.wants_compaction() {
            self.timers.compact(live);
        }
        while let Some(top) = self.timers.peek() {
            if live(top) {
                break;
            }
            self.timers.pop();
            self.timers.discarded();
        }
    }

    #[cfg(test)]
    fn timer_entries(&self) -> usize {
        self.timers.len()
    }
}

/// `now + d`, saturating instead of panicking (durations are clamped, so this only
/// guards against a clock at the far end of its range).
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}
