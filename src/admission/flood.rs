//! Flood detection in the manner of Kamailio's pike: each source's requests are
//! counted per sampling window; a source above the density threshold is banned
//! for a while, and everything it sends is dropped without an answer until the
//! ban ends. Trusted interfaces and the `exempt` networks are never counted.
//! Malformed datagrams count too (see `Admission::check_malformed`), so garbage
//! does not flood for free.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;

use super::acl::contains;
use super::bans::{BanBook, BanKind};
use super::metrics::AdmissionMetrics;
use super::table::BoundedMap;
use super::throttle::LogGate;
use super::{Admit, Check, FloodConfig, Verdict};

/// Requests counted in the current window of one source.
#[derive(Clone, Copy, Debug)]
struct Density {
    window_start: Instant,
    count: u32,
}

/// The flood layer.
pub struct Flood {
    cfg: FloodConfig,
    exempt: Vec<IpNet>,
    density: BoundedMap<IpAddr, Density>,
    bans: BanBook,
    metrics: Arc<AdmissionMetrics>,
    drops: LogGate,
}

impl Flood {
    /// A layer with no history; `max_sources` bounds both the density table
    /// and the ban book.
    pub fn new(
        cfg: FloodConfig,
        exempt: Vec<IpNet>,
        max_sources: usize,
        metrics: Arc<AdmissionMetrics>,
        log_per_sec: u32,
    ) -> Flood {
        Flood {
            cfg,
            exempt,
            density: BoundedMap::new(max_sources),
            bans: BanBook::new(BanKind::Flood, max_sources, metrics.clone(), log_per_sec),
            metrics,
            drops: LogGate::new(1),
        }
    }

    /// Whether `ip` (on an interface of that trust) is never counted or banned.
    pub fn exempt(&self, ip: IpAddr, trusted: bool) -> bool {
        trusted || self.cfg.threshold == 0 || contains(&self.exempt, ip)
    }

    /// Whether `ip` is banned now (dropping is counted).
    pub fn banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.bans.is_banned(ip, now) {
            return false;
        }
        AdmissionMetrics::bump(&self.metrics.flood_dropped);
        if let Some(held) = self.drops.allow(now) {
            tracing::debug!(source = %ip, suppressed = held, "admission: dropped message from a flood-banned source");
        }
        true
    }

    /// Counts one request from `ip`; `true` when that puts it over the
    /// threshold (the ban starts here).
    pub fn count(&mut self, ip: IpAddr, now: Instant) -> bool {
        let window = self.cfg.window;
        let d = self.density.get_or_insert_with(ip, || Density {
            window_start: now,
            count: 0,
        });
        if now.saturating_duration_since(d.window_start) >= window {
            d.window_start = now;
            d.count = 0;
        }
        d.count = d.count.saturating_add(1);
        if d.count <= self.cfg.threshold {
            return false;
        }
        let seen = d.count;
        self.density.remove(&ip);
        let detail = format!(
            "{seen} requests within {} s (threshold {})",
            window.as_secs(),
            self.cfg.threshold
        );
        self.bans.ban(ip, now, self.cfg.ban, &detail);
        AdmissionMetrics::bump(&self.metrics.flood_dropped);
        true
    }

    /// The whole decision for one message from `ip`: `true` means drop.
    pub fn observe(&mut self, ip: IpAddr, trusted: bool, is_request: bool, now: Instant) -> bool {
        if self.exempt(ip, trusted) {
            return false;
        }
        if self.banned(ip, now) {
            return true;
        }
        is_request && self.count(ip, now)
    }

    /// Ends bans whose time is up and forgets sources quiet for a window.
    pub fn tick(&mut self, now: Instant) {
        self.bans.expire(now);
        let window = self.cfg.window;
        self.density.sweep(256, |_, d| {
            now.saturating_duration_since(d.window_start) < window
        });
    }

    /// Sources currently banned.
    pub fn banned_count(&self) -> usize {
        self.bans.len()
    }
}

impl Check for Flood {
    fn check(&mut self, req: &Admit<'_>) -> Verdict {
        if self.observe(req.source.ip(), req.trusted, req.msg.is_request(), req.now) {
            Verdict::Drop { why: "flood ban" }
        } else {
            Verdict::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::tests::{admit, invite, response, src};
    use std::time::Duration;

    fn flood(threshold: u32, exempt: &[&str], cap: usize) -> Flood {
        let cfg = FloodConfig {
            threshold,
            window: Duration::from_secs(2),
            ban: Duration::from_secs(30),
        };
        let exempt = exempt.iter().map(|s| s.parse().unwrap()).collect();
        Flood::new(cfg, exempt, cap, Arc::default(), 10)
    }

    #[test]
    fn density_above_threshold_bans_until_the_ban_ends() {
        let mut f = flood(5, &[], 100);
        let t0 = Instant::now();
        let m = invite();
        for i in 0..5 {
            assert!(f.check(&admit(&m, src(1), t0)).is_pass(), "request {i}");
        }
        assert_eq!(
            f.check(&admit(&m, src(1), t0)),
            Verdict::Drop { why: "flood ban" }
        );
        let later = t0 + Duration::from_secs(29);
        assert!(!f.check(&admit(&m, src(1), later)).is_pass());
        let r = response();
        assert!(!f.check(&admit(&r, src(1), later)).is_pass());
        assert!(f.check(&admit(&m, src(2), later)).is_pass());
        f.tick(t0 + Duration::from_secs(30));
        assert_eq!(f.banned_count(), 0);
        let s = f.metrics.snapshot();
        assert_eq!((s.flood_bans_started, s.flood_bans_ended), (1, 1));
        assert_eq!(s.flood_dropped, 3);
        assert!(f
            .check(&admit(&m, src(1), t0 + Duration::from_secs(30)))
            .is_pass());
    }

    #[test]
    fn the_same_count_spread_over_windows_is_no_flood() {
        let mut f = flood(5, &[], 100);
        let t0 = Instant::now();
        let m = invite();
        for i in 0..50u64 {
            let now = t0 + Duration::from_millis(500 * i);
            assert!(f.check(&admit(&m, src(1), now)).is_pass(), "request {i}");
        }
    }

    #[test]
    fn trusted_interfaces_and_exempt_networks_are_never_banned() {
        let mut f = flood(2, &["198.51.100.7/32"], 100);
        let t0 = Instant::now();
        let m = invite();
        for _ in 0..10 {
            let mut trusted = admit(&m, src(1), t0);
            trusted.trusted = true;
            assert!(f.check(&trusted).is_pass());
            assert!(f.check(&admit(&m, src(7), t0)).is_pass());
        }
    }

    #[test]
    fn memory_is_bounded_under_a_spoofed_flood() {
        let mut f = flood(100, &[], 64);
        let t0 = Instant::now();
        let m = invite();
        for i in 0..10_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            let a = Admit::new(&m, std::net::SocketAddr::new(ip, 5060), 0, false, t0);
            f.check(&a);
        }
        assert!(f.density.len() <= 64);
    }
}
