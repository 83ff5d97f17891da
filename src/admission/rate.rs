//! Per-source rate limits (governor's GCRA, one budget per source IP and
//! interface for each of INVITE, REGISTER and other out-of-dialog requests).
//!
//! Over the budget a source first gets 503 with Retry-After (an honest client
//! backs off); after `replies_before_drop` such answers within `drop_window` it
//! gets silence until it slows down, so answering does not double a flood.
//! In-dialog requests, ACK, trusted interfaces and `exempt` networks are not
//! limited.

use std::cell::Cell;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use ipnet::IpNet;

use super::acl::contains;
use super::config::RateQuota;
use super::metrics::AdmissionMetrics;
use super::table::BoundedMap;
use super::throttle::LogGate;
use super::{Admit, Check, IfacePolicy, RateConfig, Verdict};
use crate::sip::Method;

/// governor's view of the core's clock: the `now` of the message being checked,
/// as time since the layer's first message. Shared by every limiter of the
/// layer, so a test's fake clock drives them all.
#[derive(Clone, Debug, Default)]
pub struct CoreClock(Rc<Cell<Duration>>);

impl Clock for CoreClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.get()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, CoreClock, NoOpMiddleware<Duration>>;

/// The three budget classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// INVITE.
    Invite,
    /// REGISTER.
    Register,
    /// Everything else.
    Other,
}

impl Class {
    /// The class of a request method.
    pub fn of(m: &Method) -> Class {
        match m {
            Method::Invite => Class::Invite,
            Method::Register => Class::Register,
            _ => Class::Other,
        }
    }

    fn index(self) -> usize {
        match self {
            Class::Invite => 0,
            Class::Register => 1,
            Class::Other => 2,
        }
    }
}

fn quota(q: RateQuota) -> Option<Quota> {
    let rate = NonZeroU32::new(q.per_sec)?;
    let burst = NonZeroU32::new(q.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Some(Quota::per_second(rate).allow_burst(burst))
}

/// One source's budgets on one interface; limiters are made on first use.
struct Budget {
    limiters: [Option<Limiter>; 3],
    rejected_since: Instant,
    rejected: u32,
    last_seen: Instant,
}

/// The rate-limit layer.
pub struct RateLimit {
    /// Per interface: quota per class (`None` = unlimited).
    quotas: Vec<[Option<Quota>; 3]>,
    cfg: RateConfig,
    exempt: Vec<IpNet>,
    budgets: BoundedMap<(usize, IpAddr), Budget>,
    clock: CoreClock,
    epoch: Option<Instant>,
    metrics: Arc<AdmissionMetrics>,
    log: LogGate,
}

impl RateLimit {
    /// A layer with the budgets of each interface.
    pub fn new(
        cfg: RateConfig,
        ifaces: &[IfacePolicy],
        exempt: Vec<IpNet>,
        max_sources: usize,
        metrics: Arc<AdmissionMetrics>,
        log_per_sec: u32,
    ) -> RateLimit {
        let quotas = ifaces
            .iter()
            .map(|p| {
                [
                    quota(p.rate.invite),
                    quota(p.rate.register),
                    quota(p.rate.other),
                ]
            })
            .collect();
        RateLimit {
            quotas,
            cfg,
            exempt,
            budgets: BoundedMap::new(max_sources),
            clock: CoreClock::default(),
            epoch: None,
            metrics,
            log: LogGate::new(log_per_sec),
        }
    }

    /// Forgets sources that have been quiet long enough for their buckets to
    /// be full again (a fresh budget is then the same thing).
    pub fn tick(&mut self, now: Instant) {
        let idle = self.cfg.drop_window.max(Duration::from_secs(60));
        self.budgets.sweep(256, |_, b| {
            now.saturating_duration_since(b.last_seen) < idle
        });
    }

    fn over_limit(&mut self, req: &Admit<'_>, class: Class, wait: Duration) -> Verdict {
        let now = req.now;
        let (window, replies) = (self.cfg.drop_window, self.cfg.replies_before_drop);
        let Some(b) = self.budgets.get_mut(&(req.iface, req.source.ip())) else {
            return Verdict::Drop { why: "rate limit" };
        };
        if now.saturating_duration_since(b.rejected_since) >= window {
            b.rejected_since = now;
            b.rejected = 0;
        }
        b.rejected = b.rejected.saturating_add(1);
        let answer = b.rejected <= replies;
        let counter = if answer {
            &self.metrics.rate_replied
        } else {
            &self.metrics.rate_dropped
        };
        AdmissionMetrics::bump(counter);
        if let Some(held) = self.log.allow(now) {
            tracing::info!(
                source = %req.source,
                iface = req.iface,
                class = ?class,
                answered = answer,
                suppressed = held,
                "admission: request over the per-source rate limit"
            );
        }
        if answer {
            let secs = u32::try_from(wait.as_secs())
                .unwrap_or(u32::MAX)
                .saturating_add(1);
            Verdict::unavailable("Service Unavailable (rate limit)", secs)
        } else {
            Verdict::Drop { why: "rate limit" }
        }
    }
}

impl Check for RateLimit {
    fn check(&mut self, req: &Admit<'_>) -> Verdict {
        if !req.out_of_dialog_request() || req.trusted {
            return Verdict::Pass;
        }
        let Some(method) = req.msg.method() else {
            return Verdict::Pass;
        };
        if *method == Method::Ack {
            return Verdict::Pass;
        }
        let class = Class::of(method);
        let Some(q) = self
            .quotas
            .get(req.iface)
            .and_then(|qs| qs.get(class.index()).copied().flatten())
        else {
            return Verdict::Pass;
        };
        let ip = req.source.ip();
        if contains(&self.exempt, ip) {
            return Verdict::Pass;
        }
        let epoch = *self.epoch.get_or_insert(req.now);
        self.clock.0.set(req.now.saturating_duration_since(epoch));
        let now = req.now;
        let clock = &self.clock;
        let b = self.budgets.get_or_insert_with((req.iface, ip), || Budget {
            limiters: [None, None, None],
            rejected_since: now,
            rejected: 0,
            last_seen: now,
        });
        b.last_seen = now;
        let Some(slot) = b.limiters.get_mut(class.index()) else {
            return Verdict::Pass;
        };
        let limiter = slot.get_or_insert_with(|| RateLimiter::direct_with_clock(q, clock.clone()));
        match limiter.check() {
            Ok(()) => Verdict::Pass,
            Err(not_until) => {
                let wait = not_until.wait_time_from(clock.now());
                self.over_limit(req, class, wait)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::config::RateQuotas;
    use crate::admission::tests::{admit, invite, request, src};

    fn layer(quotas: RateQuotas, replies: u32) -> RateLimit {
        let cfg = RateConfig {
            quotas,
            replies_before_drop: replies,
            drop_window: Duration::from_secs(10),
        };
        let policy = IfacePolicy {
            rate: quotas,
            ..IfacePolicy::default()
        };
        RateLimit::new(cfg, &[policy], Vec::new(), 1000, Arc::default(), 10)
    }

    fn tight() -> RateQuotas {
        RateQuotas {
            invite: RateQuota {
                per_sec: 2,
                burst: 3,
            },
            register: RateQuota {
                per_sec: 1,
                burst: 1,
            },
            other: RateQuota {
                per_sec: 0,
                burst: 0,
            },
        }
    }

    #[test]
    fn over_the_budget_503_first_then_silence() {
        let mut r = layer(tight(), 2);
        let t0 = Instant::now();
        let m = invite();
        for _ in 0..3 {
            assert!(r.check(&admit(&m, src(1), t0)).is_pass());
        }
        let v = r.check(&admit(&m, src(1), t0));
        assert_eq!(
            v,
            Verdict::unavailable("Service Unavailable (rate limit)", 1)
        );
        assert!(matches!(
            r.check(&admit(&m, src(1), t0)),
            Verdict::Reply { .. }
        ));
        assert!(matches!(
            r.check(&admit(&m, src(1), t0)),
            Verdict::Drop { .. }
        ));
        // Another source has its own budget.
        assert!(r.check(&admit(&m, src(2), t0)).is_pass());
        let s = r.metrics.snapshot();
        assert_eq!((s.rate_replied, s.rate_dropped), (2, 1));
    }

    #[test]
    fn budget_refills_with_the_fake_clock() {
        let mut r = layer(tight(), 5);
        let t0 = Instant::now();
        let m = invite();
        for _ in 0..3 {
            assert!(r.check(&admit(&m, src(1), t0)).is_pass());
        }
        assert!(!r.check(&admit(&m, src(1), t0)).is_pass());
        // 2 per second: one more after 500 ms.
        let t1 = t0 + Duration::from_millis(500);
        assert!(r.check(&admit(&m, src(1), t1)).is_pass());
        assert!(!r.check(&admit(&m, src(1), t1)).is_pass());
        // A steady 2/s is never refused.
        for i in 1..=40u64 {
            let t = t1 + Duration::from_millis(500 * i);
            assert!(r.check(&admit(&m, src(1), t)).is_pass(), "at {i}");
        }
    }

    #[test]
    fn classes_have_separate_budgets_and_zero_means_unlimited() {
        let mut r = layer(tight(), 5);
        let t0 = Instant::now();
        let reg = request("REGISTER", false, "");
        assert!(r.check(&admit(&reg, src(1), t0)).is_pass());
        assert!(!r.check(&admit(&reg, src(1), t0)).is_pass());
        let m = invite();
        assert!(r.check(&admit(&m, src(1), t0)).is_pass());
        let opt = request("OPTIONS", false, "");
        for _ in 0..1000 {
            assert!(r.check(&admit(&opt, src(1), t0)).is_pass());
        }
    }

    #[test]
    fn in_dialog_ack_and_trusted_are_not_limited() {
        let mut r = layer(tight(), 5);
        let t0 = Instant::now();
        let q = RateQuotas {
            other: RateQuota {
                per_sec: 1,
                burst: 1,
            },
            ..tight()
        };
        r.quotas = vec![[quota(q.invite), quota(q.register), quota(q.other)]];
        let bye = request("BYE", true, "");
        let ack = request("ACK", false, "");
        let m = invite();
        for _ in 0..10 {
            assert!(r.check(&admit(&bye, src(1), t0)).is_pass());
            assert!(r.check(&admit(&ack, src(1), t0)).is_pass());
            let mut trusted = admit(&m, src(3), t0);
            trusted.trusted = true;
            assert!(r.check(&trusted).is_pass());
        }
    }
}
