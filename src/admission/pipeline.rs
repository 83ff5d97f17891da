//! [`Admission`]: the assembled stack and the control-plane calls the core and
//! the registrar make on it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tower::ServiceBuilder;

use super::acl::Acl;
use super::auth::AuthGuard;
use super::flood::Flood;
use super::metrics::AdmissionMetrics;
use super::overload::Overload;
use super::rate::RateLimit;
use super::sanity::{self, Sanity};
use super::scanner::Scanner;
use super::stack::{Accept, Check, Guard, GuardLayer};
use super::{AdmissionConfig, Admit, IfacePolicy, Verdict};
use crate::sip::{HeaderName, ParseError};

/// The stack in the order the layers run (outermost first).
type Stack = Guard<
    Acl,
    Guard<
        Scanner,
        Guard<Flood, Guard<Sanity, Guard<AuthGuard, Guard<RateLimit, Guard<Overload, Accept>>>>>,
    >,
>;

/// The admission pipeline the core owns: one per process, driven from the
/// signaling loop (single-threaded; not `Send`).
pub struct Admission {
    enabled: bool,
    stack: Stack,
    metrics: Arc<AdmissionMetrics>,
    next_tick: Option<Instant>,
}

impl Admission {
    /// Builds the stack from the settings and the per-interface policies
    /// (in `[[interface]]` order, the index being `Admit::iface`).
    pub fn new(cfg: &AdmissionConfig, ifaces: &[IfacePolicy]) -> Admission {
        Admission::with_metrics(cfg, ifaces, Arc::new(AdmissionMetrics::default()))
    }

    /// A pipeline that counts into existing metrics (a config reload keeps the
    /// counters the transport and the admin endpoint already hold).
    pub fn with_metrics(
        cfg: &AdmissionConfig,
        ifaces: &[IfacePolicy],
        m: Arc<AdmissionMetrics>,
    ) -> Admission {
        let lps = cfg.log_lines_per_sec;
        let cap = cfg.max_sources;
        let stack = ServiceBuilder::new()
            .layer(GuardLayer::new(|| Acl::new(ifaces, m.clone(), lps)))
            .layer(GuardLayer::new(|| {
                Scanner::new(&cfg.scanner.user_agents, m.clone(), lps)
            }))
            .layer(GuardLayer::new(|| {
                Flood::new(cfg.flood.clone(), cfg.exempt.clone(), cap, m.clone(), lps)
            }))
            .layer(GuardLayer::new(|| {
                Sanity::new(cfg.sanity.clone(), m.clone(), lps)
            }))
            .layer(GuardLayer::new(|| {
                AuthGuard::new(cfg.auth.clone(), cfg.exempt.clone(), cap, m.clone(), lps)
            }))
            .layer(GuardLayer::new(|| {
                RateLimit::new(
                    cfg.rate.clone(),
                    ifaces,
                    cfg.exempt.clone(),
                    cap,
                    m.clone(),
                    lps,
                )
            }))
            .layer(GuardLayer::new(|| {
                Overload::new(cfg.overload.clone(), m.clone(), lps)
            }))
            .service(Accept);
        Admission {
            enabled: cfg.enabled,
            stack,
            metrics: m,
            next_tick: None,
        }
    }

    /// The pipeline of a validated config file.
    pub fn from_config(cfg: &crate::config::Config) -> Admission {
        Admission::new(&cfg.admission, &IfacePolicy::from_config(cfg))
    }

    /// The verdict on one parsed message (every layer, in order).
    #[inline]
    pub fn check(&mut self, req: &Admit<'_>) -> Verdict {
        let v = if self.enabled {
            self.stack.check(req)
        } else {
            // The core relies on sanity; only the limits can be turned off.
            self.sanity().check(req)
        };
        if v.is_pass() {
            AdmissionMetrics::bump(&self.metrics.passed);
        }
        v
    }

    /// The verdict on bytes the parser refused: dropped for a source outside
    /// the allow-list, a banned source, a scanner, or when the partial message
    /// cannot be answered; otherwise the parser's status (400, 413). Counts
    /// toward the source's flood density, so garbage floods get banned too.
    pub fn check_malformed(
        &mut self,
        err: &ParseError,
        source: SocketAddr,
        iface: usize,
        trusted: bool,
        now: Instant,
    ) -> Verdict {
        let judged = sanity::judge_malformed(err);
        if !self.enabled {
            return judged;
        }
        let ip = source.ip();
        if !self.acl().allows(iface, ip) {
            self.acl().refused(iface, ip, now);
            return Verdict::Drop {
                why: "source not in the interface allow-list",
            };
        }
        if let Some(ua) = err
            .partial
            .as_deref()
            .and_then(|p| p.header(HeaderName::UserAgent))
        {
            if self.scanner().matches(ua) {
                AdmissionMetrics::bump(&self.metrics.scanner_dropped);
                return Verdict::Drop {
                    why: "scanner user agent",
                };
            }
        }
        if self.flood().observe(ip, trusted, true, now) {
            return Verdict::Drop { why: "flood ban" };
        }
        if !trusted && self.auth().banned(ip, now) {
            AdmissionMetrics::bump(&self.metrics.auth_dropped);
            return Verdict::Drop {
                why: "source banned for failed authentications",
            };
        }
        self.sanity().record(&judged, source, now);
        judged
    }

    /// The core's current load: transactions and calls in progress. Call it
    /// before handing over each batch of messages; it only stores two numbers.
    pub fn set_load(&mut self, transactions: usize, calls: usize) {
        self.overload().set_load(transactions, calls);
    }

    /// The registrar refused credentials of `user` (empty when unknown) from
    /// `source`.
    pub fn auth_failed(&mut self, source: IpAddr, user: &str, now: Instant) {
        self.auth().failed(source, user, now);
    }

    /// The registrar accepted credentials of `user` from `source`.
    pub fn auth_succeeded(&mut self, source: IpAddr, user: &str, now: Instant) {
        self.auth().succeeded(source, user, now);
    }

    /// Housekeeping: ends bans and slow periods on time (with their log lines)
    /// and ages out idle per-source state. Call it as often as convenient
    /// (every loop turn); it does its work at most once a second.
    pub fn tick(&mut self, now: Instant) {
        if self.next_tick.is_some_and(|t| now < t) {
            return;
        }
        self.next_tick = Some(now + Duration::from_secs(1));
        self.flood().tick(now);
        self.auth().tick(now);
        self.rate().tick(now);
    }

    /// The counters, shared with whoever exports them.
    pub fn metrics(&self) -> Arc<AdmissionMetrics> {
        self.metrics.clone()
    }

    // The layers, by their place in `Stack`.
    fn acl(&mut self) -> &mut Acl {
        &mut self.stack.layer
    }
    fn scanner(&mut self) -> &mut Scanner {
        &mut self.stack.inner.layer
    }
    fn flood(&mut self) -> &mut Flood {
        &mut self.stack.inner.inner.layer
    }
    fn sanity(&mut self) -> &mut Sanity {
        &mut self.stack.inner.inner.inner.layer
    }
    fn auth(&mut self) -> &mut AuthGuard {
        &mut self.stack.inner.inner.inner.inner.layer
    }
    fn rate(&mut self) -> &mut RateLimit {
        &mut self.stack.inner.inner.inner.inner.inner.layer
    }
    fn overload(&mut self) -> &mut Overload {
        &mut self.stack.inner.inner.inner.inner.inner.inner.layer
    }
}
