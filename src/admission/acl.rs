//! Interface allow-lists (`[[interface]] allow = ["cidr", ...]`): an interface
//! that only serves known peers (a trunk, a core network) drops out-of-dialog
//! requests from anyone else without an answer, so it does not even show a
//! scanner that something listens there.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::metrics::AdmissionMetrics;
use super::throttle::LogGate;
use super::{Admit, Check, IfacePolicy, Verdict};

/// Whether `ip` is inside one of `nets`. An IPv4-mapped IPv6 source
/// (`::ffff:192.0.2.1`, from a dual-stack socket) matches IPv4 networks.
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|n| n.contains(&ip))
}

/// The allow-list layer: one list per interface, empty meaning "anyone".
pub struct Acl {
    allow: Vec<Vec<IpNet>>,
    metrics: Arc<AdmissionMetrics>,
    log: LogGate,
}

impl Acl {
    /// Lists from the interface policies, in interface order.
    pub fn new(ifaces: &[IfacePolicy], metrics: Arc<AdmissionMetrics>, log_per_sec: u32) -> Acl {
        Acl {
            allow: ifaces.iter().map(|p| p.allow.clone()).collect(),
            metrics,
            log: LogGate::new(log_per_sec),
        }
    }

    /// Whether out-of-dialog requests from `ip` are accepted on `iface`.
    pub fn allows(&self, iface: usize, ip: IpAddr) -> bool {
        match self.allow.get(iface) {
            Some(nets) if !nets.is_empty() => contains(nets, ip),
            _ => true,
        }
    }

    /// Counts and logs a refused source (shared with the malformed path).
    pub(crate) fn refused(&mut self, iface: usize, ip: IpAddr, now: std::time::Instant) {
        AdmissionMetrics::bump(&self.metrics.acl_dropped);
        if let Some(held) = self.log.allow(now) {
            tracing::info!(source = %ip, iface, suppressed = held, "admission: dropped request from a source outside the interface allow-list");
        }
    }
}

impl Check for Acl {
    fn check(&mut self, req: &Admit<'_>) -> Verdict {
        if !req.out_of_dialog_request() || self.allows(req.iface, req.source.ip()) {
            return Verdict::Pass;
        }
        self.refused(req.iface, req.source.ip(), req.now);
        Verdict::Drop {
            why: "source not in the interface allow-list",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::tests::{admit, invite, request, src};

    fn acl(allow: &[&str]) -> Acl {
        let policy = IfacePolicy {
            allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
            ..IfacePolicy::default()
        };
        Acl::new(&[policy, IfacePolicy::default()], Arc::default(), 10)
    }

    #[test]
    fn only_listed_sources_may_open_dialogs() {
        let mut a = acl(&["198.51.100.0/30"]);
        let t0 = std::time::Instant::now();
        let m = invite();
        assert!(a.check(&admit(&m, src(2), t0)).is_pass());
        assert!(matches!(
            a.check(&admit(&m, src(9), t0)),
            Verdict::Drop { .. }
        ));
        // In-dialog requests and responses are the core's business.
        let bye = request("BYE", true, "");
        assert!(a.check(&admit(&bye, src(9), t0)).is_pass());
        // Another interface without a list takes anyone.
        let mut other = admit(&m, src(9), t0);
        other.iface = 1;
        assert!(a.check(&other).is_pass());
        assert_eq!(a.metrics.snapshot().acl_dropped, 1);
    }

    #[test]
    fn mapped_ipv6_sources_match_ipv4_networks() {
        let nets: Vec<IpNet> = vec!["198.51.100.0/24".parse().unwrap()];
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert!(contains(&nets, mapped));
        assert!(!contains(&nets, "2001:db8::1".parse().unwrap()));
    }
}
