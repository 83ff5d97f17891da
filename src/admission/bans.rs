//! A book of banned sources with their end times, shared by the flood and the
//! brute-force layers: lookup per message, a log line and a counter when a ban
//! starts and when it ends (on time, from [`BanBook::expire`], even if the
//! source has gone quiet), and a bound on how many bans are held.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::metrics::AdmissionMetrics;
use super::throttle::LogGate;

/// Which layer owns a book: picks the counters and names the ban in logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BanKind {
    /// Flood (request density) bans.
    Flood,
    /// Failed-authentication bans.
    Auth,
}

impl BanKind {
    fn name(self) -> &'static str {
        match self {
            BanKind::Flood => "flood",
            BanKind::Auth => "auth",
        }
    }
}

/// Banned sources and when their bans end.
pub struct BanBook {
    kind: BanKind,
    until: HashMap<IpAddr, Instant>,
    /// End times in the order bans were made; one book has one ban length, so
    /// this is also the order they end in. Entries of re-banned sources are stale
    /// and skipped.
    queue: VecDeque<(Instant, IpAddr)>,
    cap: usize,
    metrics: Arc<AdmissionMetrics>,
    log: LogGate,
}

impl BanBook {
    /// An empty book holding at most `cap` bans.
    pub fn new(
        kind: BanKind,
        cap: usize,
        metrics: Arc<AdmissionMetrics>,
        log_per_sec: u32,
    ) -> Self {
        BanBook {
            kind,
            until: HashMap::new(),
            queue: VecDeque::new(),
            cap: cap.max(1),
            metrics,
            log: LogGate::new(log_per_sec),
        }
    }

    /// Number of bans in force (or ended and not yet expired).
    pub fn len(&self) -> usize {
        self.until.len()
    }

    /// Whether no ban is held.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    /// Whether `ip` is banned at `now`; a ban found ended is closed here.
    #[inline]
    pub fn is_banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.until.is_empty() {
            return false;
        }
        match self.until.get(&ip) {
            None => false,
            Some(&end) if end > now => true,
            Some(_) => {
                self.end(ip, now);
                false
            }
        }
    }

    /// Bans `ip` from `now` for `length`; `detail` goes into the log line.
    pub fn ban(&mut self, ip: IpAddr, now: Instant, length: Duration, detail: &str) {
        if !self.until.contains_key(&ip) && self.until.len() >= self.cap {
            // Full: the ban closest to its end makes room.
            while let Some((end, old)) = self.queue.pop_front() {
                if self.until.get(&old) == Some(&end) {
                    self.end(old, now);
                    break;
                }
            }
        }
        let end = now + length;
        match self.until.entry(ip) {
            Entry::Occupied(mut e) => {
                e.insert(end);
            }
            Entry::Vacant(e) => {
                e.insert(end);
                self.metrics.banned_sources.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.queue.push_back((end, ip));
        if self.queue.len() > self.cap.saturating_mul(2) {
            let until = &self.until;
            self.queue.retain(|(t, ip)| until.get(ip) == Some(t));
        }
        AdmissionMetrics::bump(self.started_counter());
        if let Some(held) = self.log.allow(now) {
            tracing::warn!(
                source = %ip,
                kind = self.kind.name(),
                seconds = length.as_secs(),
                suppressed = held,
                "admission: {} ban started: {detail}",
                self.kind.name()
            );
        }
    }

    /// Closes every ban whose time is up (call about once a second).
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(end, ip)) = self.queue.front() {
            if end > now {
                break;
            }
            self.queue.pop_front();
            if self.until.get(&ip) == Some(&end) {
                self.end(ip, now);
            }
        }
    }

    fn end(&mut self, ip: IpAddr, now: Instant) {
        if self.until.remove(&ip).is_none() {
            return;
        }
        let _ =
            self.metrics
                .banned_sources
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(1))
                });
        AdmissionMetrics::bump(self.ended_counter());
        if let Some(held) = self.log.allow(now) {
            tracing::info!(source = %ip, kind = self.kind.name(), suppressed = held, "admission: {} ban ended", self.kind.name());
        }
    }

    fn started_counter(&self) -> &AtomicU64 {
        match self.kind {
            BanKind::Flood => &self.metrics.flood_bans_started,
            BanKind::Auth => &self.metrics.auth_bans_started,
        }
    }

    fn ended_counter(&self) -> &AtomicU64 {
        match self.kind {
            BanKind::Flood => &self.metrics.flood_bans_ended,
            BanKind::Auth => &self.metrics.auth_bans_ended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[test]
    fn ban_ends_on_time_without_traffic_and_is_counted() {
        let m = Arc::new(AdmissionMetrics::default());
        let mut b = BanBook::new(BanKind::Flood, 10, m.clone(), 10);
        let t0 = Instant::now();
        b.ban(ip(1), t0, Duration::from_secs(30), "test");
        assert!(b.is_banned(ip(1), t0 + Duration::from_secs(29)));
        assert!(!b.is_banned(ip(2), t0));
        b.expire(t0 + Duration::from_secs(29));
        assert_eq!(b.len(), 1);
        b.expire(t0 + Duration::from_secs(30));
        assert_eq!(b.len(), 0);
        let s = m.snapshot();
        assert_eq!((s.flood_bans_started, s.flood_bans_ended), (1, 1));
        assert_eq!(s.banned_sources, 0);
    }

    #[test]
    fn full_book_drops_the_ban_closest_to_its_end() {
        let m = Arc::new(AdmissionMetrics::default());
        let mut b = BanBook::new(BanKind::Auth, 2, m.clone(), 10);
        let t0 = Instant::now();
        for n in 1..=3 {
            b.ban(
                ip(n),
                t0 + Duration::from_secs(n.into()),
                Duration::from_secs(60),
                "x",
            );
        }
        assert_eq!(b.len(), 2);
        let now = t0 + Duration::from_secs(4);
        assert!(!b.is_banned(ip(1), now));
        assert!(b.is_banned(ip(2), now) && b.is_banned(ip(3), now));
        assert_eq!(m.snapshot().banned_sources, 2);
    }
}
