//! Overload protection (the load-shed idea, RFC 7339 in spirit): a global bound
//! on concurrent transactions and calls. Beyond it new out-of-dialog requests
//! get 503 with Retry-After before they cost any state, while responses,
//! in-dialog requests (BYE of established calls), ACK and CANCEL keep working,
//! so calls in progress can finish and free capacity.

use std::sync::Arc;
use std::time::Instant;

use super::metrics::AdmissionMetrics;
use super::throttle::LogGate;
use super::{Admit, Check, OverloadConfig, Verdict};
use crate::sip::Method;

/// The overload layer; the core reports its load with [`Overload::set_load`].
pub struct Overload {
    cfg: OverloadConfig,
    transactions: usize,
    calls: usize,
    metrics: Arc<AdmissionMetrics>,
    log: LogGate,
}

impl Overload {
    /// A layer with these bounds and no load.
    pub fn new(cfg: OverloadConfig, metrics: Arc<AdmissionMetrics>, log_per_sec: u32) -> Overload {
        Overload {
            cfg,
            transactions: 0,
            calls: 0,
            metrics,
            log: LogGate::new(log_per_sec),
        }
    }

    /// The core's current counts (call it before each batch of messages).
    pub fn set_load(&mut self, transactions: usize, calls: usize) {
        self.transactions = transactions;
        self.calls = calls;
    }

    fn refuse(&mut self, now: Instant, what: &'static str) -> Verdict {
        AdmissionMetrics::bump(&self.metrics.overload_replied);
        if let Some(held) = self.log.allow(now) {
            tracing::warn!(
                transactions = self.transactions,
                calls = self.calls,
                suppressed = held,
                "admission: overload, new {what} refused with 503"
            );
        }
        Verdict::unavailable("Service Unavailable (overload)", self.cfg.retry_after)
    }
}

impl Check for Overload {
    fn check(&mut self, req: &Admit<'_>) -> Verdict {
        if !req.out_of_dialog_request() {
            return Verdict::Pass;
        }
        let Some(method) = req.msg.method() else {
            return Verdict::Pass;
        };
        match method {
            Method::Ack | Method::Cancel => Verdict::Pass,
            _ if self.transactions >= self.cfg.max_transactions => self.refuse(req.now, "request"),
            Method::Invite if self.calls >= self.cfg.max_calls => self.refuse(req.now, "call"),
            _ => Verdict::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::tests::{admit, invite, request, response, src};

    fn layer(max_transactions: usize, max_calls: usize) -> Overload {
        let cfg = OverloadConfig {
            max_transactions,
            max_calls,
            retry_after: 7,
        };
        Overload::new(cfg, Arc::default(), 10)
    }

    #[test]
    fn new_invites_beyond_the_call_bound_get_503_with_retry_after() {
        let mut o = layer(100, 2);
        let t0 = Instant::now();
        let m = invite();
        o.set_load(5, 1);
        assert!(o.check(&admit(&m, src(1), t0)).is_pass());
        o.set_load(5, 2);
        assert_eq!(
            o.check(&admit(&m, src(1), t0)),
            Verdict::unavailable("Service Unavailable (overload)", 7)
        );
        // Other requests still pass below the transaction bound.
        let opt = request("OPTIONS", false, "");
        assert!(o.check(&admit(&opt, src(1), t0)).is_pass());
        assert_eq!(o.metrics.snapshot().overload_replied, 1);
    }

    #[test]
    fn calls_in_progress_keep_working_at_the_transaction_bound() {
        let mut o = layer(10, 10);
        o.set_load(10, 3);
        let t0 = Instant::now();
        for m in [
            request("BYE", true, ""),
            request("ACK", true, ""),
            request("CANCEL", false, ""),
            response(),
        ] {
            assert!(o.check(&admit(&m, src(1), t0)).is_pass());
        }
        let opt = request("OPTIONS", false, "");
        assert!(!o.check(&admit(&opt, src(1), t0)).is_pass());
    }
}
