//! The location service: which contacts are registered for an address-of-record,
//! until when, and where their REGISTER came from (RFC 3261 §10.3).
//!
//! Sans-IO like the rest of the core: [`Location::register`] takes the parsed
//! REGISTER, the peer it came from and the current Unix time, changes the bindings
//! and returns a [`RegisterOutcome`] holding the status, the bindings to list in the
//! answer and the store writes ([`Output::Persist`] / [`Output::Forget`]) for the
//! shell to carry out. Nothing here owns a socket, a clock or the store.
//!
//! # Decisions where RFC 3261 leaves a choice
//!
//! - Expiry is exact to the second and never waits for a timer: a binding whose
//!   `expires_at` is at or before `now` is invisible to [`Location::lookup`],
//!   [`Location::nat_targets`] and the next REGISTER, whether or not
//!   [`Location::purge`] has removed it yet. Purging only frees memory and the store.
//! - §10.3 step 7 leaves the failure code for an out-of-order REGISTER (same
//!   Call-ID, CSeq not higher than the stored one) open; we answer
//!   `500 Out Of Order REGISTER`, as Kamailio does, and change nothing: a REGISTER is
//!   applied to all its contacts or to none.
//! - Too many bindings for one AOR: by default the binding refreshed longest ago is
//!   evicted ([`OverflowPolicy::EvictOldest`]), because a phone that rebooted
//!   without unregistering comes back with a new Contact and must not be locked out
//!   until its stale binding expires; [`OverflowPolicy::Reject`] answers
//!   `503 Too Many Registered Contacts` instead. A single REGISTER that by itself
//!   adds more contacts than the bound is always refused with 503.
//! - A Contact whose expiry is below `min_expires` (and not zero) makes the whole
//!   REGISTER fail with 423 and `Min-Expires`; above `max_expires` it is shortened
//!   to `max_expires` (§10.3 step 6 allows both). `default_expires` is clamped into
//!   `[min_expires, max_expires]` so a misconfiguration never produces a 423 the
//!   phone did not ask for.
//! - Contacts are told apart by URI comparison per §19.1.4 (scheme, user and
//!   password exactly, host case-insensitively, port, and the `transport`, `user`,
//!   `method`, `ttl` and `maddr` parameters), except that a Contact carrying both
//!   `+sip.instance` and `reg-id` (RFC 5626) is one flow of one device and replaces
//!   the binding with the same pair even when its URI changed (new NAT mapping).
//! - Bindings without `q` rank as `q=1.0`; equal q-values rank the most recently
//!   refreshed first.
//! - Only `sip:` and `sips:` contacts are accepted (400 otherwise): sipveil cannot
//!   route anything else.
//! - An AOR is `user@domain`, user %-decoded, all lowercase (as Kamailio and
//!   OpenSIPS do by default), so `Alice@Example.test` and `alice@example.test` are
//!   one user.
//!
//! # NAT
//!
//! A binding keeps the transport address the REGISTER came from ([`Source`]).
//! Requests to the contact are sent there ([`Binding::send_to`]) with the Contact
//! URI as the Request-URI, so a phone behind NAT that wrote its private address in
//! Contact is still reached through its NAT mapping.
//!
//! # Store
//!
//! One record per AOR under `reg/<aor>`: a JSON [`AorRecord`] holding every binding.
//! An AOR with no binding left is forgotten. TCP connection ids are not persisted
//! (they do not survive a restart).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::dialog::Output;
use crate::sip::{HeaderName, Host, Scheme, SipMessage, Uri};
use crate::transaction::{Peer, Transport};

/// Store key prefix of registration records: restore with `store.scan(KEY_PREFIX)`.
pub const KEY_PREFIX: &str = "reg/";

/// Longest User-Agent kept per binding: it is only for display, and memory per
/// binding must stay bounded (DESIGN.md invariant 5).
const MAX_USER_AGENT: usize = 128;

/// What to do when a REGISTER would take an AOR past `max_bindings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Drop the binding refreshed longest ago, so a device that came back with a new
    /// Contact is never locked out by its own stale binding.
    #[default]
    EvictOldest,
    /// Refuse the REGISTER with 503 and keep the existing bindings.
    Reject,
}

/// The `[registrar]` bounds on expiry and on the number of bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrarLimits {
    /// Shortest non-zero expiry accepted; shorter gets 423 with Min-Expires.
    pub min_expires: u32,
    /// Longest expiry granted; longer requests are shortened to it.
    pub max_expires: u32,
    /// Expiry when neither the Contact nor the request gives one.
    pub default_expires: u32,
    /// Most bindings per AOR.
    pub max_bindings: usize,
    /// What happens beyond `max_bindings`.
    pub overflow: OverflowPolicy,
    /// Most AORs held; a REGISTER creating one more gets 503. Bounds memory when
    /// registration is not authenticated.
    pub max_aors: usize,
}

impl Default for RegistrarLimits {
    fn default() -> Self {
        RegistrarLimits {
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_bindings: 10,
            overflow: OverflowPolicy::EvictOldest,
            max_aors: 1_000_000,
        }
    }
}

impl RegistrarLimits {
    /// `max_expires`, never below `min_expires`.
    fn granted_max(&self) -> u32 {
        self.max_expires.max(self.min_expires)
    }

    /// `default_expires` clamped into `[min_expires, max_expires]`.
    fn granted_default(&self) -> u32 {
        self.default_expires
            .clamp(self.min_expires, self.granted_max())
    }
}

/// The transport address a REGISTER came from, where requests to the binding go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Remote address and port as seen on the socket (the NAT's public side).
    pub addr: SocketAddr,
    /// `true` when the REGISTER came over TCP.
    pub tcp: bool,
    /// Index of the interface it arrived on.
    pub iface: usize,
    /// The TCP connection it arrived on; not persisted, since connections do not
    /// survive a restart.
    #[serde(skip)]
    pub conn: Option<u64>,
}

impl Source {
    /// Records where a message came from.
    pub fn from_peer(p: &Peer) -> Source {
        Source {
            addr: p.addr,
            tcp: p.transport == Transport::Tcp,
            iface: p.iface,
            conn: p.conn,
        }
    }
}

/// One registered contact of an AOR.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    /// The Contact URI as registered: the Request-URI of requests sent to it.
    pub contact: String,
    /// The Contact's q-value, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<f32>,
    /// Unix time (seconds) at which the binding stops existing.
    pub expires_at: u64,
    /// Call-ID of the REGISTER that last set it (§10.3 step 7 ordering).
    pub call_id: String,
    /// CSeq of the REGISTER that last set it.
    pub cseq: u32,
    /// Where the REGISTER came from: requests go there, not to the Contact host.
    pub source: Source,
    /// Unix time the binding was created.
    pub registered_at: u64,
    /// Unix time it was last refreshed (eviction picks the smallest).
    pub updated_at: u64,
    /// User-Agent of the registering device (truncated), for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// RFC 5626 `+sip.instance` as written (quotes kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// RFC 5626 `reg-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reg_id: Option<u32>,
    /// Whether the Contact does not name the source address (private address
    /// behind NAT, or a host name): such bindings get keepalives.
    #[serde(default)]
    pub natted: bool,
}

impl Binding {
    /// Where requests to this binding are sent: the REGISTER's source address,
    /// transport, interface and connection, not the Contact host (which may be a
    /// private address behind NAT).
    pub fn send_to(&self) -> Peer {
        Peer {
            addr: self.source.addr,
            transport: if self.source.tcp {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            iface: self.source.iface,
            conn: self.source.conn,
        }
    }

    /// Whether the binding still exists at `now` (exact to the second).
    pub fn is_live(&self, now: u64) -> bool {
        self.expires_at > now
    }

    /// Seconds left at `now` (0 once expired).
    pub fn remaining(&self, now: u64) -> u32 {
        u32::try_from(self.expires_at.saturating_sub(now)).unwrap_or(u32::MAX)
    }

    /// The Contact header value listing this binding in a 200 OK.
    pub fn contact_value(&self, now: u64) -> String {
        let mut v = format!("<{}>;expires={}", self.contact, self.remaining(now));
        if let Some(q) = self.q {
            v.push_str(&format!(";q={}", format_q(q)));
        }
        if let Some(i) = &self.instance {
            v.push_str(&format!(";+sip.instance={i}"));
        }
        if let Some(r) = self.reg_id {
            v.push_str(&format!(";reg-id={r}"));
        }
        v
    }

    /// Rank for forking order: q descending (absent = 1.0), then most recently
    /// refreshed first.
    fn rank_cmp(a: &Binding, b: &Binding) -> std::cmp::Ordering {
        let qa = a.q.unwrap_or(1.0);
        let qb = b.q.unwrap_or(1.0);
        qb.total_cmp(&qa).then(b.updated_at.cmp(&a.updated_at))
    }
}

/// q-values have at most three decimals (RFC 3261 §25.1 `qvalue`).
fn format_q(q: f32) -> String {
    let s = format!("{q:.3}");
    let s = s.trim_end_matches('0');
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// The store record of one AOR under `reg/<aor>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AorRecord {
    /// The normalized AOR (`user@domain`, lowercase).
    pub aor: String,
    /// Its bindings.
    pub bindings: Vec<Binding>,
}

/// The result of [`Location::register`]: what to answer and what to write.
#[derive(Debug)]
pub struct RegisterOutcome {
    /// Status code of the answer (200, 400, 423, 500, 503).
    pub status: u16,
    /// Reason phrase of the answer.
    pub reason: &'static str,
    /// The AOR's bindings after the request (empty unless 200), best first.
    pub bindings: Vec<Binding>,
    /// `Min-Expires` to send (only with 423).
    pub min_expires: Option<u32>,
    /// Store writes to carry out before (or with) sending the answer.
    pub outputs: Vec<Output>,
    /// The time the request was handled, for the remaining expiry in the answer.
    pub now: u64,
}

impl RegisterOutcome {
    fn fail(status: u16, reason: &'static str, now: u64) -> RegisterOutcome {
        RegisterOutcome {
            status,
            reason,
            bindings: Vec::new(),
            min_expires: None,
            outputs: Vec::new(),
            now,
        }
    }

    /// Whether the REGISTER succeeded.
    pub fn is_ok(&self) -> bool {
        self.status == 200
    }
}

/// A NATed binding to keep open, for the `nat_keepalive` option.
#[derive(Clone, Debug, PartialEq)]
pub struct NatTarget {
    /// The AOR it belongs to.
    pub aor: String,
    /// The Contact URI (Request-URI of a keepalive OPTIONS).
    pub contact: String,
    /// Where to send.
    pub peer: Peer,
    /// What to send.
    pub keepalive: KeepAlive,
}

/// The keepalive suited to a binding's transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAlive {
    /// An OPTIONS request (UDP: keeps the NAT mapping and shows the phone is there).
    Options,
    /// A CRLF ping (RFC 5626 §3.5.1) on the TCP connection.
    Crlf,
}

/// What [`Location::restore`] loaded.
#[derive(Debug, Default)]
pub struct RestoreSummary {
    /// AORs with at least one live binding.
    pub aors: usize,
    /// Live bindings loaded.
    pub bindings: usize,
    /// Keys whose value could not be read; left in the store for inspection.
    pub corrupt: Vec<String>,
    /// Store clean-up: records that expired while the node was down.
    pub outputs: Vec<Output>,
}

/// The registrar's bindings for every AOR, with the configured bounds.
#[derive(Debug, Default)]
pub struct Location {
    bindings: HashMap<String, Vec<Binding>>,
    cfg: RegistrarLimits,
}

/// One Contact of a REGISTER after step 6.
struct Wanted {
    uri: String,
    expires: u32,
    q: Option<f32>,
    instance: Option<String>,
    reg_id: Option<u32>,
}

impl Location {
    /// An empty location service with these bounds.
    pub fn new(cfg: RegistrarLimits) -> Location {
        Location {
            bindings: HashMap::new(),
            cfg,
        }
    }

    /// The configured bounds.
    pub fn limits(&self) -> &RegistrarLimits {
        &self.cfg
    }

    /// Number of AORs held (expired but not yet purged ones included).
    pub fn aor_count(&self) -> usize {
        self.bindings.len()
    }

    /// Number of bindings held (expired but not yet purged ones included).
    pub fn binding_count(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }

    /// Applies a REGISTER for `aor` (RFC 3261 §10.3 steps 5–8). Authentication and
    /// the check that the request may touch this AOR (steps 1–4) are the caller's.
    /// On any failure nothing changes.
    pub fn register(
        &mut self,
        aor: &str,
        req: &SipMessage,
        source: &Peer,
        now: u64,
    ) -> RegisterOutcome {
        let aor = normalize_aor(aor);
        let Some(call_id) = req.call_id() else {
            return RegisterOutcome::fail(400, "Missing Call-ID", now);
        };
        let Ok(cseq) = req.cseq().map(|c| c.seq) else {
            return RegisterOutcome::fail(400, "Bad CSeq", now);
        };
        let current: Vec<Binding> = self
            .bindings
            .get(&aor)
            .map(|v| v.iter().filter(|b| b.is_live(now)).cloned().collect())
            .unwrap_or_default();

        // Step 5: the wildcard.
        if req.contact_is_star() {
            let values = req.header_values(HeaderName::Contact).count();
            if values != 1 {
                return RegisterOutcome::fail(400, "Contact * Must Be The Only Contact", now);
            }
            if req.expires() != Some(0) {
                return RegisterOutcome::fail(400, "Contact * Requires Expires: 0", now);
            }
            if current
                .iter()
                .any(|b| b.call_id == call_id && cseq <= b.cseq)
            {
                return RegisterOutcome::fail(500, "Out Of Order REGISTER", now);
            }
            return self.commit(aor, Vec::new(), now);
        }

        let mut contacts = Vec::new();
        for c in req.contacts() {
            match c {
                Ok(na) => contacts.push(na),
                Err(_) => return RegisterOutcome::fail(400, "Malformed Contact", now),
            }
        }
        if contacts.is_empty() {
            // A query: the current bindings, nothing written.
            let mut bindings = current;
            bindings.sort_by(Binding::rank_cmp);
            return RegisterOutcome {
                status: 200,
                reason: "OK",
                bindings,
                min_expires: None,
                outputs: Vec::new(),
                now,
            };
        }

        // Step 6: expiry of every contact, before anything changes.
        let header_expires = req.expires();
        let mut wanted = Vec::with_capacity(contacts.len());
        for na in &contacts {
            if !na.uri.is_sip() {
                return RegisterOutcome::fail(400, "Unsupported Contact URI Scheme", now);
            }
            let asked = na
                .expires()
                .or(header_expires)
                .unwrap_or(self.cfg.granted_default());
            if asked != 0 && asked < self.cfg.min_expires {
                let mut o = RegisterOutcome::fail(423, "Interval Too Brief", now);
                o.min_expires = Some(self.cfg.min_expires);
                return o;
            }
            wanted.push(Wanted {
                uri: na.uri.raw.to_string(),
                expires: asked.min(self.cfg.granted_max()),
                q: na.q(),
                instance: na.params.get("+sip.instance").flatten().map(str::to_string),
                reg_id: na
                    .params
                    .get("reg-id")
                    .flatten()
                    .and_then(|r| r.trim().parse().ok()),
            });
        }

        // Step 7: apply each contact to a working copy; any failure aborts all.
        let user_agent = req.header(HeaderName::UserAgent).map(truncate_ua);
        let src = Source::from_peer(source);
        // (binding, touched by this request)
        let mut work: Vec<(Binding, bool)> = current.into_iter().map(|b| (b, false)).collect();
        for w in wanted {
            let pos = work.iter().position(|(b, _)| same_binding(b, &w));
            match pos {
                Some(i) => {
                    let Some((existing, touched)) = work.get_mut(i) else {
                        continue;
                    };
                    if !*touched && existing.call_id == call_id && cseq <= existing.cseq {
                        return RegisterOutcome::fail(500, "Out Of Order REGISTER", now);
                    }
                    if w.expires == 0 {
                        work.remove(i);
                    } else {
                        let natted = is_natted(&w.uri, &src);
                        existing.contact = w.uri;
                        existing.q = w.q;
                        existing.expires_at = now + u64::from(w.expires);
                        existing.call_id = call_id.to_string();
                        existing.cseq = cseq;
                        existing.source = src.clone();
                        existing.updated_at = now;
                        existing.user_agent = user_agent.clone();
                        existing.instance = w.instance;
                        existing.reg_id = w.reg_id;
                        existing.natted = natted;
                        *touched = true;
                    }
                }
                None if w.expires == 0 => {}
                None => {
                    let natted = is_natted(&w.uri, &src);
                    work.push((
                        Binding {
                            contact: w.uri,
                            q: w.q,
                            expires_at: now + u64::from(w.expires),
                            call_id: call_id.to_string(),
                            cseq,
                            source: src.clone(),
                            registered_at: now,
                            updated_at: now,
                            user_agent: user_agent.clone(),
                            instance: w.instance,
                            reg_id: w.reg_id,
                            natted,
                        },
                        true,
                    ));
                }
            }
        }

        // Bounds.
        let max = self.cfg.max_bindings.max(1);
        if work.iter().filter(|(_, t)| *t).count() > max {
            return RegisterOutcome::fail(503, "Too Many Contacts In Request", now);
        }
        if work.len() > max {
            match self.cfg.overflow {
                OverflowPolicy::Reject => {
                    return RegisterOutcome::fail(503, "Too Many Registered Contacts", now);
                }
                OverflowPolicy::EvictOldest => {
                    while work.len() > max {
                        let oldest = work
                            .iter()
                            .enumerate()
                            .filter(|(_, (_, t))| !*t)
                            .min_by_key(|(_, (b, _))| (b.updated_at, b.expires_at))
                            .map(|(i, _)| i);
                        match oldest {
                            Some(i) => {
                                work.remove(i);
                            }
                            None => break,
                        }
                    }
                }
            }
        }
        if !work.is_empty()
            && !self.bindings.contains_key(&aor)
            && self.bindings.len() >= self.cfg.max_aors
        {
            return RegisterOutcome::fail(503, "Registrar Full", now);
        }
        self.commit(aor, work.into_iter().map(|(b, _)| b).collect(), now)
    }

    /// Stores the AOR's new bindings and builds the 200 outcome with its store write.
    fn commit(&mut self, aor: String, mut bindings: Vec<Binding>, now: u64) -> RegisterOutcome {
        bindings.sort_by(Binding::rank_cmp);
        let mut outputs = Vec::with_capacity(1);
        if bindings.is_empty() {
            self.bindings.remove(&aor);
            outputs.push(Output::Forget { key: key_of(&aor) });
        } else {
            outputs.extend(persist(&aor, &bindings));
            self.bindings.insert(aor, bindings.clone());
        }
        RegisterOutcome {
            status: 200,
            reason: "OK",
            bindings,
            min_expires: None,
            outputs,
            now,
        }
    }

    /// The answer to `req` for `outcome`: 200 listing every current binding with
    /// its remaining expiry, 423 with Min-Expires, or the failure; a To tag and a
    /// Date header (§10.3 step 8) in every case.
    pub fn response(&self, req: &SipMessage, outcome: &RegisterOutcome) -> SipMessage {
        let mut r = req.make_response(outcome.status, outcome.reason);
        r.set_to_tag(&format!("{:016x}", fastrand::u64(..)));
        if outcome.status == 200 {
            for b in &outcome.bindings {
                r.push(HeaderName::Contact, &b.contact_value(outcome.now));
            }
        }
        if let Some(m) = outcome.min_expires {
            r.push(HeaderName::MinExpires, &m.to_string());
        }
        r.push_named("Date", &http_date(outcome.now));
        r
    }

    /// The live bindings of `aor` at `now`, best first (q descending). A binding
    /// is never returned at or after its `expires_at`, purged or not.
    pub fn lookup(&self, aor: &str, now: u64) -> Vec<&Binding> {
        let mut out: Vec<&Binding> = self
            .bindings
            .get(&normalize_aor(aor))
            .map(|v| v.iter().filter(|b| b.is_live(now)).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| Binding::rank_cmp(a, b));
        out
    }

    /// Removes every binding expired at `now` and returns the store writes: the
    /// AOR's record rewritten, or forgotten when nothing is left. Lookups do not
    /// depend on it; it bounds memory and store size.
    pub fn purge(&mut self, now: u64) -> Vec<Output> {
        let mut outputs = Vec::new();
        let mut emptied = Vec::new();
        for (aor, list) in self.bindings.iter_mut() {
            let before = list.len();
            list.retain(|b| b.is_live(now));
            if list.len() == before {
                continue;
            }
            if list.is_empty() {
                emptied.push(aor.clone());
                outputs.push(Output::Forget { key: key_of(aor) });
            } else {
                outputs.extend(persist(aor, list));
            }
        }
        for aor in emptied {
            self.bindings.remove(&aor);
        }
        outputs
    }

    /// Removes every binding of `aor` (a deleted subscriber), returning the write.
    pub fn remove_aor(&mut self, aor: &str) -> Vec<Output> {
        let aor = normalize_aor(aor);
        match self.bindings.remove(&aor) {
            Some(_) => vec![Output::Forget { key: key_of(&aor) }],
            None => Vec::new(),
        }
    }

    /// Loads the records read from the store after a restart (`store.scan(KEY_PREFIX)`).
    /// Bindings that expired while the node was down are dropped and their records
    /// cleaned up; unreadable records are reported and left in place. At most
    /// `max_bindings` per AOR are kept (the most recently refreshed), in case the
    /// bound was lowered.
    pub fn restore<I>(&mut self, records: I, now: u64) -> RestoreSummary
    where
        I: IntoIterator<Item = (String, Vec<u8>)>,
    {
        let mut summary = RestoreSummary::default();
        let max = self.cfg.max_bindings.max(1);
        // AORs whose record must be rewritten (or forgotten) once all are loaded.
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        for (key, value) in records {
            let Ok(rec) = serde_json::from_slice::<AorRecord>(&value) else {
                tracing::warn!(%key, "unreadable registration record skipped");
                summary.corrupt.push(key);
                continue;
            };
            let aor = normalize_aor(&rec.aor);
            let total = rec.bindings.len();
            let live: Vec<Binding> = rec
                .bindings
                .into_iter()
                .filter(|b| b.is_live(now))
                .collect();
            let mut changed = live.len() != total;
            if key != key_of(&aor) {
                // Written under another spelling: move it to the normalized key.
                summary.outputs.push(Output::Forget { key });
                changed = true;
            }
            if !live.is_empty() {
                let list = self.bindings.entry(aor.clone()).or_default();
                changed |= !list.is_empty();
                for b in live {
                    match list
                        .iter_mut()
                        .find(|m| same_contact(&m.contact, &b.contact))
                    {
                        Some(m) if m.updated_at < b.updated_at => *m = b,
                        Some(_) => {}
                        None => list.push(b),
                    }
                }
                if list.len() > max {
                    list.sort_by_key(|b| std::cmp::Reverse(b.updated_at));
                    list.truncate(max);
                    changed = true;
                }
                list.sort_by(Binding::rank_cmp);
            }
            if changed {
                dirty.insert(aor);
            }
        }
        for aor in dirty {
            match self.bindings.get(&aor) {
                Some(list) => summary.outputs.extend(persist(&aor, list)),
                None => summary.outputs.push(Output::Forget { key: key_of(&aor) }),
            }
        }
        summary.aors = self.bindings.len();
        summary.bindings = self.binding_count();
        summary
    }

    /// NATed bindings live at `now` that want keepalives, one per source address:
    /// OPTIONS over UDP, CRLF over TCP. Only the data; the shell sends.
    pub fn nat_targets(&self, now: u64) -> Vec<NatTarget> {
        let mut out: Vec<NatTarget> = Vec::new();
        for (aor, list) in &self.bindings {
            for b in list.iter().filter(|b| b.is_live(now) && b.natted) {
                let peer = b.send_to();
                let dup = out.iter().any(|t| {
                    t.peer.addr == peer.addr
                        && t.peer.transport == peer.transport
                        && t.peer.iface == peer.iface
                });
                if dup {
                    continue;
                }
                out.push(NatTarget {
                    aor: aor.clone(),
                    contact: b.contact.clone(),
                    keepalive: if b.source.tcp {
                        KeepAlive::Crlf
                    } else {
                        KeepAlive::Options
                    },
                    peer,
                });
            }
        }
        out
    }
}

/// The store key of an AOR's record.
pub fn key_of(aor: &str) -> String {
    format!("{KEY_PREFIX}{aor}")
}

fn persist(aor: &str, bindings: &[Binding]) -> Option<Output> {
    let rec = AorRecordRef { aor, bindings };
    match serde_json::to_vec(&rec) {
        Ok(value) => Some(Output::Persist {
            key: key_of(aor),
            value,
        }),
        Err(e) => {
            tracing::error!(%aor, "cannot serialize registration: {e}");
            None
        }
    }
}

/// Borrowing twin of [`AorRecord`], so persisting does not clone the bindings.
#[derive(Serialize)]
struct AorRecordRef<'a> {
    aor: &'a str,
    bindings: &'a [Binding],
}

/// The normal form of an AOR: trimmed and lowercase, so lookups do not depend on
/// how a phone spelled its user or domain.
pub fn normalize_aor(aor: &str) -> String {
    aor.trim().to_lowercase()
}

/// The AOR (`user@domain`, lowercase, user %-decoded) named by a sip/sips URI,
/// typically the To of a REGISTER or the Request-URI of an INVITE. `None` for URIs
/// without a user part or of another scheme.
pub fn aor_of(uri: &Uri<'_>) -> Option<String> {
    if !uri.is_sip() {
        return None;
    }
    let user = uri.user_decoded()?;
    let host = uri.host.to_string();
    if host.is_empty() {
        return None;
    }
    Some(normalize_aor(&format!("{user}@{host}")))
}

fn truncate_ua(ua: &str) -> String {
    let mut end = ua.len().min(MAX_USER_AGENT);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    ua.get(..end).unwrap_or("").to_string()
}

/// Whether a stored binding is the one a REGISTER's contact refers to.
fn same_binding(b: &Binding, w: &Wanted) -> bool {
    match (&w.instance, w.reg_id, &b.instance, b.reg_id) {
        (Some(wi), Some(wr), Some(bi), Some(br)) => wi == bi && wr == br,
        (Some(_), Some(_), _, _) => false,
        _ => same_contact(&b.contact, &w.uri),
    }
}

/// Whether the Contact URI names somewhere else than the source address (a
/// private address behind NAT, a host name, or another port), so the binding is
/// reached only through its source and should be kept open.
fn is_natted(contact: &str, src: &Source) -> bool {
    let Ok(uri) = Uri::parse(contact) else {
        return true;
    };
    let Some(ip) = uri.host.ip() else {
        return true;
    };
    let default_port = if matches!(uri.scheme, Scheme::Sips) {
        5061
    } else {
        5060
    };
    ip != src.addr.ip() || uri.port.unwrap_or(default_port) != src.addr.port()
}

/// URI equality for bindings, after RFC 3261 §19.1.4: scheme, user and password
/// exactly (after %-decoding), host case-insensitively, port as written; the
/// `transport`, `user`, `method`, `ttl` and `maddr` parameters must agree (absent
/// differs from present), other parameters only when both carry them; URI headers
/// are ignored. Unparsable URIs compare as strings.
pub fn same_contact(a: &str, b: &str) -> bool {
    let (Ok(x), Ok(y)) = (Uri::parse(a), Uri::parse(b)) else {
        return a == b;
    };
    let scheme_eq = match (x.scheme, y.scheme) {
        (Scheme::Sip, Scheme::Sip) | (Scheme::Sips, Scheme::Sips) | (Scheme::Tel, Scheme::Tel) => {
            true
        }
        (Scheme::Other(p), Scheme::Other(q)) => p.eq_ignore_ascii_case(q),
        _ => false,
    };
    if !scheme_eq {
        return false;
    }
    if !matches!(x.scheme, Scheme::Sip | Scheme::Sips) {
        return x.raw == y.raw;
    }
    let host_eq = match (x.host, y.host) {
        (Host::Name(p), Host::Name(q)) => p.eq_ignore_ascii_case(q),
        (p, q) => p == q,
    };
    if !host_eq
        || x.port != y.port
        || x.user_decoded() != y.user_decoded()
        || x.password.map(crate::sip::uri::percent_decode)
            != y.password.map(crate::sip::uri::percent_decode)
    {
        return false;
    }
    const MUST_AGREE: [&str; 5] = ["transport", "user", "method", "ttl", "maddr"];
    let eq = |p: Option<&str>, q: Option<&str>| match (p, q) {
        (Some(p), Some(q)) => p.eq_ignore_ascii_case(q),
        (None, None) => true,
        _ => false,
    };
    for name in MUST_AGREE {
        match (x.params.get(name), y.params.get(name)) {
            (None, None) => {}
            (Some(p), Some(q)) if eq(p, q) => {}
            _ => return false,
        }
    }
    x.params.iter().all(|(n, v)| {
        MUST_AGREE.iter().any(|m| m.eq_ignore_ascii_case(n))
            || y.params.get(n).is_none_or(|w| eq(v, w))
    })
}

/// An RFC 1123 date (`Thu, 01 Jan 1970 00:00:00 GMT`) for the Date header.
pub fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    let wd = DAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
    let mon = MONTHS
        .get(m.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Gregorian (year, month 1–12, day 1–31) of a count of days since 1970-01-01,
/// counting in 400-year eras of 146 097 days that start on 1 March.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from 1 March
    let mp = (5 * doy + 2) / 153; // month from March, 0..11
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests;
