//! Scanner defence: requests whose User-Agent names a well-known SIP scanner or
//! password cracker (friendly-scanner, sipvicious, sipcli, ...) are dropped
//! without an answer. An answer would confirm a live SIP server to the scanner
//! and invite the password-guessing run that usually follows.

use std::sync::Arc;

use memchr::memmem::Finder;

use super::metrics::AdmissionMetrics;
use super::throttle::LogGate;
use super::{Admit, Check, Verdict};
use crate::sip::HeaderName;

/// The scanner layer: a case-insensitive substring search of User-Agent.
pub struct Scanner {
    finders: Vec<Finder<'static>>,
    /// The lower-cased User-Agent of the request being checked; reused, so the
    /// check allocates nothing once it has seen the longest User-Agent.
    buf: Vec<u8>,
    metrics: Arc<AdmissionMetrics>,
    log: LogGate,
}

impl Scanner {
    /// A layer matching any of `user_agents` (ASCII case-insensitive; empty
    /// strings are ignored, an empty list matches nothing).
    pub fn new(
        user_agents: &[String],
        metrics: Arc<AdmissionMetrics>,
        log_per_sec: u32,
    ) -> Scanner {
        let finders = user_agents
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| Finder::new(p.to_ascii_lowercase().as_bytes()).into_owned())
            .collect();
        Scanner {
            finders,
            buf: Vec::new(),
            metrics,
            log: LogGate::new(log_per_sec),
        }
    }

    /// Whether `ua` contains one of the patterns.
    pub fn matches(&mut self, ua: &str) -> bool {
        if self.finders.is_empty() {
            return false;
        }
        self.buf.clear();
        self.buf.extend(ua.bytes().map(|b| b.to_ascii_lowercase()));
        let hay = self.buf.as_slice();
        self.finders.iter().any(|f| f.find(hay).is_some())
    }
}

impl Check for Scanner {
    fn check(&mut self, req: &Admit<'_>) -> Verdict {
        if !req.msg.is_request() {
            return Verdict::Pass;
        }
        let Some(ua) = req.msg.header(HeaderName::UserAgent) else {
            return Verdict::Pass;
        };
        if !self.matches(ua) {
            return Verdict::Pass;
        }
        AdmissionMetrics::bump(&self.metrics.scanner_dropped);
        if let Some(held) = self.log.allow(req.now) {
            let shown: String = ua.chars().filter(|c| !c.is_control()).take(80).collect();
            tracing::info!(source = %req.source, user_agent = %shown, suppressed = held, "admission: dropped request from a scanner user agent");
        }
        Verdict::Drop {
            why: "scanner user agent",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::config::ScannerConfig;
    use crate::admission::tests::{admit, request, response, src};

    fn scanner() -> Scanner {
        Scanner::new(&ScannerConfig::default().user_agents, Arc::default(), 10)
    }

    #[test]
    fn known_scanners_are_dropped_case_insensitively() {
        let mut s = scanner();
        let t0 = std::time::Instant::now();
        for ua in [
            "friendly-scanner",
            "SIPVicious 0.3.4",
            "sipcli/v1.8",
            "VaxSIPUserAgent/3.1",
            "sundayddr",
            "SIPScan",
            "iWar",
        ] {
            let m = request("OPTIONS", false, &format!("User-Agent: {ua}\r\n"));
            assert!(
                matches!(s.check(&admit(&m, src(1), t0)), Verdict::Drop { .. }),
                "{ua}"
            );
        }
        assert_eq!(s.metrics.snapshot().scanner_dropped, 7);
    }

    #[test]
    fn ordinary_agents_and_responses_pass() {
        let mut s = scanner();
        let t0 = std::time::Instant::now();
        for extra in ["", "User-Agent: Linphone/5.2 (belle-sip/5.2)\r\n"] {
            let m = request("INVITE", false, extra);
            assert!(s.check(&admit(&m, src(1), t0)).is_pass());
        }
        let r = response();
        assert!(s.check(&admit(&r, src(1), t0)).is_pass());
    }

    #[test]
    fn list_is_configurable_and_can_be_empty() {
        let mut s = Scanner::new(&["EvilBot".into()], Arc::default(), 10);
        assert!(s.matches("my evilbot 1.0"));
        assert!(!s.matches("friendly-scanner"));
        let mut none = Scanner::new(&[], Arc::default(), 10);
        assert!(!none.matches("friendly-scanner"));
    }
}
