//! The registrar behind the bridge: REGISTER with digest authentication, calls to
//! registered users, authentication of calls that claim a local subscriber, and
//! upkeep of bindings (expiry, NAT keep-alives).

use std::time::{Duration, Instant, SystemTime};

use super::{now_unix, Engine, Output, Target};
use crate::dialog::crossing::PRODUCT;
use crate::dialog::leg::{new_branch, new_tag};
use crate::registrar::digest::{Algorithm, AuthResult, DigestAuth};
use crate::registrar::location::{aor_of, KeepAlive, Location, RegistrarLimits};
use crate::registrar::AuthContext;
use crate::sip::{HeaderName, Method, SipMessage, Uri};
use crate::transaction::{Peer, ServerTxId};

/// `[registrar]` as the core uses it.
#[derive(Clone, Debug)]
pub struct RegistrarConfig {
    /// Domain served (realm of the challenges).
    pub domain: String,
    /// Index of the interface REGISTER is accepted on.
    pub iface: usize,
    /// Whether REGISTER and calls claiming a subscriber must authenticate.
    pub auth: bool,
    /// Expiry bounds.
    pub limits: RegistrarLimits,
    /// Interval of keep-alives toward NATed bindings.
    pub nat_keepalive: Option<Duration>,
    /// Lifetime of digest nonces.
    pub nonce_ttl: Duration,
    /// Algorithms offered in challenges, one challenge each, in this order;
    /// credentials computed with any other are refused.
    pub algorithms: Vec<Algorithm>,
}

/// Run-time state of the registrar.
pub(crate) struct Registrar {
    pub(crate) cfg: RegistrarConfig,
    pub(crate) auth: AuthContext,
    pub(crate) digest: DigestAuth,
    pub(crate) location: Location,
    pub(crate) next_purge: u64,
    pub(crate) next_keepalive: Option<Instant>,
}

/// A digest verdict on credentials from `source`, reported to admission so
/// password guessing gets the guesser banned (issue 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthEvent {
    /// Where the request came from (packet source).
    pub source: std::net::IpAddr,
    /// The user name the credentials claimed (empty when unreadable).
    pub user: String,
    /// Whether the credentials were accepted.
    pub ok: bool,
}

/// The outcome of checking credentials on a request.
enum Check {
    /// Authenticated as this user.
    User(String),
    /// Answered already (challenge or refusal).
    Answered,
}

impl Engine {
    /// Turns the registrar on: bindings from the store, subscribers and the nonce
    /// secret from `auth`.
    pub fn enable_registrar(
        &mut self,
        cfg: RegistrarConfig,
        auth: AuthContext,
        records: Vec<(String, Vec<u8>)>,
    ) {
        let mut location = Location::new(cfg.limits);
        let summary = location.restore(records, now_unix());
        if summary.bindings > 0 {
            tracing::info!(
                aors = summary.aors,
                bindings = summary.bindings,
                "restored registrations"
            );
        }
        self.out.extend(summary.outputs);
        let digest = auth.digest_auth().with_nonce_ttl(cfg.nonce_ttl);
        self.registrar = Some(Registrar {
            cfg,
            auth,
            digest,
            location,
            next_purge: 0,
            next_keepalive: None,
        });
    }

    /// Whether `iface` is where REGISTER is served.
    pub(super) fn is_registrar_iface(&self, iface: usize) -> bool {
        self.registrar
            .as_ref()
            .is_some_and(|r| r.cfg.iface == iface)
    }

    fn realm(&self) -> String {
        self.registrar
            .as_ref()
            .map(|r| r.cfg.domain.clone())
            .unwrap_or_default()
    }

    /// Verifies `Authorization` (REGISTER) or `Proxy-Authorization` (other
    /// requests) against the subscriber table, answering 401/407/403 when needed.
    fn check_credentials(
        &mut self,
        id: ServerTxId,
        msg: &SipMessage,
        peer: &Peer,
        now: Instant,
    ) -> Check {
        let proxy = msg.method() != Some(&Method::Register);
        let realm = self.realm();
        let creds_value = if proxy {
            msg.proxy_authorization()
        } else {
            msg.authorization()
        };
        let Some(reg) = self.registrar.as_mut() else {
            return Check::Answered;
        };
        let method = msg
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let result = match creds_value {
            None => None,
            Some(Err(_)) => Some(AuthResult::Malformed("unparseable credentials")),
            Some(Ok(d))
                if !reg.cfg.algorithms.contains(
                    &d.get("algorithm")
                        .and_then(|a| Algorithm::parse(&a))
                        .map_or(Algorithm::Md5, |(alg, _)| alg),
                ) =>
            {
                Some(AuthResult::Malformed("algorithm not offered"))
            }
            Some(Ok(d)) => {
                let subs = reg.auth.subscribers.clone();
                let domain = reg.cfg.domain.clone();
                let lookup = move |user: &str, alg| {
                    subs.read()
                        .ok()
                        .and_then(|c| c.ha1(user, &domain, alg).map(str::to_string))
                };
                Some(
                    reg.digest
                        .verify(&d, &method, &realm, lookup, SystemTime::now()),
                )
            }
        };
        match result {
            Some(AuthResult::Ok { user }) => {
                self.auth_events.push(AuthEvent {
                    source: peer.addr.ip(),
                    user: user.clone(),
                    ok: true,
                });
                Check::User(user)
            }
            None => {
                self.challenge(id, msg, proxy, false, now);
                Check::Answered
            }
            Some(AuthResult::Stale) => {
                self.challenge(id, msg, proxy, true, now);
                Check::Answered
            }
            Some(other) => {
                let (why, user) = match &other {
                    AuthResult::BadResponse { user } => ("wrong password", user.as_str()),
                    AuthResult::UnknownUser { user } => ("unknown user", user.as_str()),
                    AuthResult::Replay => ("replayed nonce count", ""),
                    AuthResult::Malformed(w) => (*w, ""),
                    _ => ("refused", ""),
                };
                tracing::warn!(source = %peer.addr, user, reason = why, "authentication failed");
                self.auth_events.push(AuthEvent {
                    source: peer.addr.ip(),
                    user: user.to_string(),
                    ok: false,
                });
                let reason = format!("Forbidden ({why})");
                self.reply(id, 403, &reason, now);
                Check::Answered
            }
        }
    }

    fn challenge(
        &mut self,
        id: ServerTxId,
        msg: &SipMessage,
        proxy: bool,
        stale: bool,
        now: Instant,
    ) {
        let realm = self.realm();
        let Some(reg) = self.registrar.as_ref() else {
            return;
        };
        let values =
            reg.digest
                .challenge_with(&realm, stale, SystemTime::now(), &reg.cfg.algorithms);
        let (code, reason, name) = if proxy {
            (
                407,
                "Proxy Authentication Required",
                HeaderName::ProxyAuthenticate,
            )
        } else {
            (401, "Unauthorized", HeaderName::WwwAuthenticate)
        };
        let mut r = msg.make_response(code, reason);
        r.set_to_tag(&new_tag());
        for v in &values {
            r.push(name, v);
        }
        r.push(HeaderName::Server, PRODUCT);
        self.respond(id, r, now);
    }

    /// REGISTER on the registrar's interface (RFC 3261 §10.3).
    pub(super) fn on_register(
        &mut self,
        id: ServerTxId,
        msg: &SipMessage,
        peer: &Peer,
        now: Instant,
    ) {
        let Some(domain) = self.registrar.as_ref().map(|r| r.cfg.domain.clone()) else {
            return self.reply(id, 405, "Method Not Allowed", now);
        };
        let ruri_ok = msg
            .request_uri()
            .and_then(|u| Uri::parse(u).ok())
            .is_some_and(|u| u.host.to_string().eq_ignore_ascii_case(&domain));
        let aor = msg.to_header().ok().and_then(|t| aor_of(&t.uri));
        let Some(aor) = aor.filter(|a| {
            a.rsplit_once('@')
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&domain))
        }) else {
            return self.reply(id, 404, "Not Found (domain not served here)", now);
        };
        if !ruri_ok {
            return self.reply(id, 404, "Not Found (domain not served here)", now);
        }
        let auth = self.registrar.as_ref().is_some_and(|r| r.cfg.auth);
        if auth {
            match self.check_credentials(id, msg, peer, now) {
                Check::Answered => return,
                Check::User(user) => {
                    let own = aor
                        .rsplit_once('@')
                        .is_some_and(|(u, _)| u.eq_ignore_ascii_case(&user));
                    if !own {
                        tracing::warn!(source = %peer.addr, %user, %aor, "REGISTER for another user's AOR refused");
                        return self.reply(id, 403, "Forbidden (not your address-of-record)", now);
                    }
                }
            }
        }
        let Some(reg) = self.registrar.as_mut() else {
            return;
        };
        let outcome = reg.location.register(&aor, msg, peer, now_unix());
        let mut resp = reg.location.response(msg, &outcome);
        resp.push(HeaderName::Server, PRODUCT);
        if outcome.is_ok() {
            tracing::debug!(%aor, bindings = outcome.bindings.len(), source = %peer.addr, "registered");
        }
        self.out.extend(outcome.outputs);
        self.respond(id, resp, now);
    }

    /// Whether an out-of-dialog request must authenticate first: auth is on, it
    /// arrived on the registrar's interface, and its From claims a local subscriber.
    pub(super) fn needs_caller_auth(&self, msg: &SipMessage, iface: usize) -> bool {
        let Some(reg) = self.registrar.as_ref() else {
            return false;
        };
        if !reg.cfg.auth || reg.cfg.iface != iface {
            return false;
        }
        let Ok(from) = msg.from_header() else {
            return false;
        };
        let (Some(user), host) = (from.uri.user, from.uri.host.to_string()) else {
            return false;
        };
        if !host.eq_ignore_ascii_case(&reg.cfg.domain) {
            return false;
        }
        reg.auth
            .subscribers
            .read()
            .ok()
            .is_some_and(|c| c.contains(user, &reg.cfg.domain))
    }

    /// Challenges or verifies a caller that claims a subscriber; `Some(user)` when
    /// it may proceed as that subscriber, `None` when it was answered.
    pub(super) fn authenticate_caller(
        &mut self,
        id: ServerTxId,
        msg: &SipMessage,
        peer: &Peer,
        now: Instant,
    ) -> Option<String> {
        match self.check_credentials(id, msg, peer, now) {
            Check::User(user) => {
                let claimed = msg
                    .from_header()
                    .ok()
                    .and_then(|f| f.uri.user.map(str::to_string));
                if claimed.is_some_and(|c| !c.eq_ignore_ascii_case(&user)) {
                    tracing::warn!(source = %peer.addr, %user, "caller authenticated as another subscriber than its From");
                    self.reply(id, 403, "Forbidden (From does not match credentials)", now);
                    return None;
                }
                Some(user)
            }
            Check::Answered => None,
        }
    }

    /// Targets for a call routed to the registrar: every live binding of the
    /// request-URI user, or 480 (subscriber without bindings) / 404 (unknown).
    pub(super) fn registered_targets(
        &self,
        ruri: &Uri<'_>,
        egress: usize,
        now: u64,
    ) -> Result<Vec<Target>, (u16, &'static str)> {
        let Some(reg) = self.registrar.as_ref() else {
            return Err((404, "Not Found (no registrar)"));
        };
        let Some(user) = ruri.user else {
            return Err((404, "Not Found"));
        };
        let aor = format!("{user}@{}", reg.cfg.domain);
        let bindings = reg.location.lookup(&aor, now);
        if bindings.is_empty() {
            let known = reg
                .auth
                .subscribers
                .read()
                .ok()
                .is_some_and(|c| c.contains(user, &reg.cfg.domain));
            return Err(
                if known || reg.location.lookup(&aor, 0).iter().any(|_| true) {
                    (480, "Temporarily Unavailable")
                } else {
                    (404, "Not Found")
                },
            );
        }
        Ok(bindings
            .into_iter()
            .map(|b| {
                let mut peer = b.send_to();
                if self.cfg.ifaces.get(peer.iface).is_none() {
                    peer.iface = egress;
                }
                Target {
                    ruri: b.contact.clone(),
                    peer,
                    latched: true,
                }
            })
            .collect())
    }

    /// Expires bindings on the second they lapse and sends NAT keep-alives.
    pub(super) fn registrar_upkeep(&mut self, now: Instant) {
        let unix = now_unix();
        let mut keepalives = Vec::new();
        if let Some(reg) = self.registrar.as_mut() {
            if unix >= reg.next_purge {
                let outs = reg.location.purge(unix);
                reg.next_purge = unix + 1;
                self.out.extend(outs);
            }
            if let Some(every) = reg.cfg.nat_keepalive {
                let due = reg.next_keepalive.is_none_or(|t| now >= t);
                if due {
                    reg.next_keepalive = Some(now + every);
                    keepalives = reg.location.nat_targets(unix);
                }
            }
        }
        for t in keepalives {
            let data = match t.keepalive {
                KeepAlive::Crlf => bytes::Bytes::from_static(b"\r\n\r\n"),
                KeepAlive::Options => {
                    let Some(iface) = self.cfg.ifaces.get(t.peer.iface) else {
                        continue;
                    };
                    let mut m = SipMessage::new_request(Method::Options, &t.contact);
                    m.push(HeaderName::Via, &iface.via(t.peer.transport, &new_branch()));
                    m.push(HeaderName::MaxForwards, "70");
                    m.push(
                        HeaderName::From,
                        &format!("<sip:keepalive@{}>;tag={}", iface.advertise, new_tag()),
                    );
                    m.push(HeaderName::To, &format!("<{}>", t.contact));
                    m.push(
                        HeaderName::CallId,
                        &uuid::Uuid::new_v4().simple().to_string(),
                    );
                    m.push(HeaderName::CSeq, "1 OPTIONS");
                    m.push(HeaderName::UserAgent, PRODUCT);
                    m.push(HeaderName::ContentLength, "0");
                    bytes::Bytes::from(m.to_bytes())
                }
            };
            self.out.push(Output::Send { peer: t.peer, data });
        }
    }
}
