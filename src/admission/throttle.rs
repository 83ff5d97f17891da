//! Rate limit for log lines: a flood must not turn into a log flood (disk and
//! CPU are what the attacker is after). Each layer keeps one gate per kind of
//! line; what the gate holds back is counted and reported on the next line.

use std::time::{Duration, Instant};

/// At most `per_sec` lines per second; the rest are counted.
#[derive(Debug)]
pub(crate) struct LogGate {
    per_sec: u32,
    start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl LogGate {
    pub(crate) fn new(per_sec: u32) -> Self {
        LogGate {
            per_sec,
            start: None,
            used: 0,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a line may be written now, `n` being how many were held
    /// back since the last one written; `None` when this one is held back.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        let fresh = self
            .start
            .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1));
        if fresh {
            self.start = Some(now);
            self.used = 0;
        }
        if self.used < self.per_sec {
            self.used += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_past_the_budget_and_reports_the_count() {
        let t0 = Instant::now();
        let mut g = LogGate::new(2);
        assert_eq!(g.allow(t0), Some(0));
        assert_eq!(g.allow(t0), Some(0));
        assert_eq!(g.allow(t0), None);
        assert_eq!(g.allow(t0 + Duration::from_millis(999)), None);
        assert_eq!(g.allow(t0 + Duration::from_secs(1)), Some(2));
    }
}
