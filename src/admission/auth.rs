//! Brute-force defence, fail2ban built in: the registrar reports each digest
//! verdict ([`AuthGuard::failed`], [`AuthGuard::succeeded`]).
//!
//! - `source_failures` failures from one source within `source_window` ban the
//!   source for `source_ban`: everything it sends is dropped.
//! - `user_failures` failures against one user (from any number of sources)
//!   within `user_window` slow that user for `user_slow`: credentialed requests
//!   for it from addresses it never logged in from get through once per
//!   `user_interval` and are answered 503 with Retry-After otherwise. Addresses
//!   it logged in from keep working, so a distributed guessing run cannot lock
//!   the real user out, and a new address of the real user waits seconds, not
//!   the whole slow period.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;

use super::acl::contains;
use super::bans::{BanBook, BanKind};
use super::metrics::AdmissionMetrics;
use super::table::BoundedMap;
use super::throttle::LogGate;
use super::{Admit, AuthConfig, Check, Verdict};
use crate::sip::{Digest, ParseError};

/// Longest user name kept as a key (names are attacker-chosen).
const MAX_USER_LEN: usize = 128;
/// Addresses remembered per user as known-good.
const GOOD_SOURCES: usize = 4;

#[derive(Clone, Copy, Debug)]
struct Failures {
    window_start: Instant,
    count: u32,
}

impl Failures {
    fn new(now: Instant) -> Self {
        Failures {
            window_start: now,
            count: 0,
        }
    }

    /// Counts one failure in a window of `window`; returns the count.
    fn add(&mut self, now: Instant, window: std::time::Duration) -> u32 {
        if now.saturating_duration_since(self.window_start) >= window {
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count
    }
}

#[derive(Clone, Debug)]
struct UserState {
    failures: Failures,
    slow_until: Option<Instant>,
    next_attempt: Instant,
    good: [Option<IpAddr>; GOOD_SOURCES],
    good_next: usize,
}

impl UserState {
    fn new(now: Instant) -> Self {
        UserState {
            failures: Failures::new(now),
            slow_until: None,
            next_attempt: now,
            good: [None; GOOD_SOURCES],
            good_next: 0,
        }
    }

    fn is_good(&self, ip: IpAddr) -> bool {
        self.good.contains(&Some(ip))
    }

    fn add_good(&mut self, ip: IpAddr) {
        if self.is_good(ip) {
            return;
        }
        if let Some(slot) = self.good.get_mut(self.good_next % GOOD_SOURCES) {
            *slot = Some(ip);
        }
        self.good_next = (self.good_next + 1) % GOOD_SOURCES;
    }

    fn slowed(&self, now: Instant) -> bool {
        self.slow_until.is_some_and(|t| t > now)
    }
}

/// The brute-force layer and the API the registrar reports to.
pub struct AuthGuard {
    cfg: AuthConfig,
    exempt: Vec<IpNet>,
    sources: BoundedMap<IpAddr, Failures>,
    users: BoundedMap<String, UserState>,
    bans: BanBook,
    /// Users in slow mode (may overcount after an eviction until the next tick);
    /// zero keeps the per-message check to one ban lookup.
    slowed: usize,
    metrics: Arc<AdmissionMetrics>,
    log: LogGate,
}

fn user_key(user: &str) -> &str {
    let mut end = user.len().min(MAX_USER_LEN);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    user.get(..end).unwrap_or("")
}

impl AuthGuard {
    /// A guard with no history; `max_sources` bounds each of its tables.
    pub fn new(
        cfg: AuthConfig,
        exempt: Vec<IpNet>,
        max_sources: usize,
        metrics: Arc<AdmissionMetrics>,
        log_per_sec: u32,
    ) -> AuthGuard {
        AuthGuard {
            cfg,
            exempt,
            sources: BoundedMap::new(max_sources),
            users: BoundedMap::new(max_sources),
            bans: BanBook::new(BanKind::Auth, max_sources, metrics.clone(), log_per_sec),
            slowed: 0,
            metrics,
            log: LogGate::new(log_per_sec),
        }
    }

    /// A failed authentication of `user` (empty when unknown) from `source`.
    pub fn failed(&mut self, source: IpAddr, user: &str, now: Instant) {
        AdmissionMetrics::bump(&self.metrics.auth_failures);
        if self.cfg.source_failures > 0 && !contains(&self.exempt, source) {
            let window = self.cfg.source_window;
            let n = self
                .sources
                .get_or_insert_with(source, || Failures::new(now))
                .add(now, window);
            if n >= self.cfg.source_failures {
                self.sources.remove(&source);
                let detail = format!("{n} failed authentications within {} s", window.as_secs());
                self.bans.ban(source, now, self.cfg.source_ban, &detail);
            }
        }
        let user = user_key(user);
        if self.cfg.user_failures == 0 || user.is_empty() {
            return;
        }
        let window = self.cfg.user_window;
        let state = match self.users.get_mut(user) {
            Some(s) => s,
            None => self
                .users
                .get_or_insert_with(user.to_string(), || UserState::new(now)),
        };
        let n = state.failures.add(now, window);
        if n >= self.cfg.user_failures && !state.slowed(now) {
            state.slow_until = Some(now + self.cfg.user_slow);
            state.next_attempt = now;
            state.failures = Failures::new(now);
            self.slowed += 1;
            AdmissionMetrics::bump(&self.metrics.auth_users_slowed);
            if let Some(held) = self.log.allow(now) {
                tracing::warn!(
                    user,
                    failures = n,
                    seconds = self.cfg.user_slow.as_secs(),
                    suppressed = held,
                    "admission: user slowed after failed authentications"
                );
            }
        }
    }

    /// A successful authentication: `source` becomes a known-good address of
    /// `user`, which is never slowed.
    pub fn succeeded(&mut self, source: IpAddr, user: &str, now: Instant) {
        let user = user_key(user);
        if user.is_empty() || self.cfg.user_failures == 0 {
            return;
        }
        match self.users.get_mut(user) {
            Some(s) => s.add_good(source),
            None => self
                .users
                .get_or_insert_with(user.to_string(), || UserState::new(now))
                .add_good(source),
        }
    }

    /// Ends source bans and slow periods whose time is up.
    pub fn tick(&mut self, now: Instant) {
        self.bans.expire(now);
        if self.slowed > 0 {
            let mut still = 0;
            self.users.sweep(usize::MAX, |user, s| {
                if s.slowed(now) {
                    still += 1;
                } else if s.slow_until.take().is_some() {
                    tracing::info!(user = %user, "admission: user no longer slowed");
                }
                true
            });
            self.slowed = still;
        }
        let (sw, uw) = (self.cfg.source_window, self.cfg.user_window);
        self.sources.sweep(64, |_, f| {
            now.saturating_duration_since(f.window_start) < sw
        });
        self.users.sweep(64, |_, u| {
            u.slowed(now)
                || u.good.iter().any(Option::is_some)
                || now.saturating_duration_since(u.failures.window_start) < uw
        });
    }

    /// Whether `ip` is banned for failed authentications.
    pub fn banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.bans.is_banned(ip, now)
    }

    fn slow_verdict(&mut self, req: &Admit<'_>) -> Verdict {
        let user = match credentials_user(req) {
            Some(Ok(d)) => d,
            _ => return Verdict::Pass,
        };
        let Some(user) = user.get("username") else {
            return Verdict::Pass;
        };
        let interval = self.cfg.user_interval;
        let now = req.now;
        let ip = req.source.ip();
        let Some(state) = self.users.get_mut(user_key(&user)) else {
            return Verdict::Pass;
        };
        if !state.slowed(now) || state.is_good(ip) {
            return Verdict::Pass;
        }
        if now >= state.next_attempt {
            state.next_attempt = now + interval;
            return Verdict::Pass;
        }
        let wait = state.next_attempt.saturating_duration_since(now);
        AdmissionMetrics::bump(&self.metrics.auth_user_rejected);
        if let Some(held) = self.log.allow(now) {
            tracing::info!(source = %req.source, user = %user, suppressed = held, "admission: login for a slowed user refused with 503");
        }
        let secs = u32::try_from(wait.as_secs())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        Verdict::unavailable(
            "Service Unavailable (too many failed logins for this user)",
            secs,
        )
    }
}

/// The digest credentials of a request, if it carries any.
fn credentials_user<'m>(req: &Admit<'m>) -> Option<Result<Digest<'m>, ParseError>> {
    let msg: &'m crate::sip::SipMessage = req.msg;
    msg.authorization().or_else(|| msg.proxy_authorization())
}

impl Check for AuthGuard {
    fn check(&mut self, req: &Admit<'_>) -> Verdict {
        if req.trusted {
            return Verdict::Pass;
        }
        let ip = req.source.ip();
        if self.bans.is_banned(ip, req.now) {
            AdmissionMetrics::bump(&self.metrics.auth_dropped);
            return Verdict::Drop {
                why: "source banned for failed authentications",
            };
        }
        if self.slowed == 0 || !req.out_of_dialog_request() {
            return Verdict::Pass;
        }
        self.slow_verdict(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::tests::{admit, invite, request, src};
    use std::time::Duration;

    fn guard() -> AuthGuard {
        let cfg = AuthConfig {
            source_failures: 3,
            source_window: Duration::from_secs(60),
            source_ban: Duration::from_secs(120),
            user_failures: 4,
            user_window: Duration::from_secs(60),
            user_slow: Duration::from_secs(300),
            user_interval: Duration::from_secs(10),
        };
        AuthGuard::new(cfg, Vec::new(), 1000, Arc::default(), 10)
    }

    fn register_as(user: &str) -> crate::sip::SipMessage {
        request(
            "REGISTER",
            false,
            &format!(
                "Authorization: Digest username=\"{user}\", realm=\"example.test\", \
                 nonce=\"n\", uri=\"sip:example.test\", response=\"0123\"\r\n"
            ),
        )
    }

    #[test]
    fn failures_from_one_source_ban_it_and_the_ban_ends() {
        let mut g = guard();
        let t0 = Instant::now();
        let m = invite();
        for user in ["a", "b"] {
            g.failed(src(1).ip(), user, t0);
        }
        assert!(g.check(&admit(&m, src(1), t0)).is_pass());
        g.failed(src(1).ip(), "c", t0);
        assert!(matches!(
            g.check(&admit(&m, src(1), t0)),
            Verdict::Drop { .. }
        ));
        assert!(g.check(&admit(&m, src(2), t0)).is_pass());
        let end = t0 + Duration::from_secs(120);
        g.tick(end);
        assert!(g.check(&admit(&m, src(1), end)).is_pass());
        let s = g.metrics.snapshot();
        assert_eq!(
            (s.auth_failures, s.auth_bans_started, s.auth_bans_ended),
            (3, 1, 1)
        );
    }

    #[test]
    fn failures_spread_over_windows_do_not_ban() {
        let mut g = guard();
        let t0 = Instant::now();
        for i in 0..10u64 {
            g.failed(src(1).ip(), "", t0 + Duration::from_secs(40 * i));
        }
        assert!(!g.banned(src(1).ip(), t0 + Duration::from_secs(400)));
    }

    #[test]
    fn a_guessed_user_is_slowed_but_its_known_address_is_not() {
        let mut g = guard();
        let t0 = Instant::now();
        // The real user logged in from src(50) before the attack.
        g.succeeded(src(50).ip(), "alice", t0);
        // A distributed guessing run: one failure from each of many sources.
        for n in 1..=4 {
            g.failed(src(n).ip(), "alice", t0);
        }
        assert_eq!(g.metrics.snapshot().auth_users_slowed, 1);
        let reg = register_as("alice");
        // The known address is not slowed at all.
        for _ in 0..5 {
            assert!(g.check(&admit(&reg, src(50), t0)).is_pass());
        }
        // Unknown addresses: one try per interval, then 503 with Retry-After.
        assert!(g.check(&admit(&reg, src(60), t0)).is_pass());
        let v = g.check(&admit(&reg, src(61), t0 + Duration::from_secs(1)));
        let Verdict::Reply {
            code, retry_after, ..
        } = v
        else {
            panic!("{v:?}")
        };
        assert_eq!((code, retry_after), (503, Some(10)));
        assert!(g
            .check(&admit(&reg, src(61), t0 + Duration::from_secs(10)))
            .is_pass());
        // Requests without credentials, and other users, are not slowed.
        let bob = register_as("bob");
        assert!(g.check(&admit(&bob, src(61), t0)).is_pass());
        let plain = request("REGISTER", false, "");
        assert!(g.check(&admit(&plain, src(61), t0)).is_pass());
        // The slow period ends.
        let end = t0 + Duration::from_secs(300);
        g.tick(end);
        assert_eq!(g.slowed, 0);
        assert!(g.check(&admit(&reg, src(62), end)).is_pass());
        assert!(g.check(&admit(&reg, src(63), end)).is_pass());
    }

    #[test]
    fn long_user_names_are_cut_on_a_char_boundary() {
        let long = "é".repeat(100);
        let k = user_key(&long);
        assert!(k.len() <= MAX_USER_LEN && long.starts_with(k));
    }
}
