//! `[admission]` and the admission keys of `[[interface]]` (`allow`, `rate`):
//! the file as written and its validation into [`crate::admission`]'s typed
//! settings. Kept apart from the parent module so the additions are in one place;
//! it uses the parent's locator so every error names key, section and line.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::{Problems, Seg};
use crate::admission::config::RateQuota;
use crate::admission::{
    AdmissionConfig, AuthConfig, FloodConfig, OverloadConfig, RateConfig, RateOverride, RateQuotas,
    SanityConfig, ScannerConfig, TcpConfig,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAdmission {
    enabled: bool,
    exempt: Vec<String>,
    max_sources: usize,
    log_lines_per_sec: u32,
    sanity: RawSanity,
    scanner: RawScanner,
    flood: RawFlood,
    rate: RawRate,
    auth: RawAuth,
    overload: RawOverload,
    tcp: RawTcp,
}

impl Default for RawAdmission {
    fn default() -> Self {
        let d = AdmissionConfig::default();
        RawAdmission {
            enabled: d.enabled,
            exempt: Vec::new(),
            max_sources: d.max_sources,
            log_lines_per_sec: d.log_lines_per_sec,
            sanity: RawSanity::default(),
            scanner: RawScanner::default(),
            flood: RawFlood::default(),
            rate: RawRate::default(),
            auth: RawAuth::default(),
            overload: RawOverload::default(),
            tcp: RawTcp::default(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSanity {
    require_max_forwards: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawScanner {
    user_agents: Vec<String>,
}

impl Default for RawScanner {
    fn default() -> Self {
        RawScanner {
            user_agents: ScannerConfig::default().user_agents,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFlood {
    threshold: u32,
    window: u64,
    ban: u64,
}

impl Default for RawFlood {
    fn default() -> Self {
        let d = FloodConfig::default();
        RawFlood {
            threshold: d.threshold,
            window: d.window.as_secs(),
            ban: d.ban.as_secs(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRate {
    invite: u32,
    invite_burst: u32,
    register: u32,
    register_burst: u32,
    other: u32,
    other_burst: u32,
    replies_before_drop: u32,
    drop_window: u64,
}

impl Default for RawRate {
    fn default() -> Self {
        let d = RateConfig::default();
        let q = d.quotas;
        RawRate {
            invite: q.invite.per_sec,
            invite_burst: q.invite.burst,
            register: q.register.per_sec,
            register_burst: q.register.burst,
            other: q.other.per_sec,
            other_burst: q.other.burst,
            replies_before_drop: d.replies_before_drop,
            drop_window: d.drop_window.as_secs(),
        }
    }
}

/// `[[interface]] rate = { invite = 5, ... }`: the budget keys of
/// `[admission.rate]`, each optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRateOverride {
    invite: Option<u32>,
    invite_burst: Option<u32>,
    register: Option<u32>,
    register_burst: Option<u32>,
    other: Option<u32>,
    other_burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAuth {
    source_failures: u32,
    source_window: u64,
    source_ban: u64,
    user_failures: u32,
    user_window: u64,
    user_slow: u64,
    user_interval: u64,
}

impl Default for RawAuth {
    fn default() -> Self {
        let d = AuthConfig::default();
        RawAuth {
            source_failures: d.source_failures,
            source_window: d.source_window.as_secs(),
            source_ban: d.source_ban.as_secs(),
            user_failures: d.user_failures,
            user_window: d.user_window.as_secs(),
            user_slow: d.user_slow.as_secs(),
            user_interval: d.user_interval.as_secs(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawOverload {
    max_transactions: usize,
    max_calls: usize,
    retry_after: u32,
}

impl Default for RawOverload {
    fn default() -> Self {
        let d = OverloadConfig::default();
        RawOverload {
            max_transactions: d.max_transactions,
            max_calls: d.max_calls,
            retry_after: d.retry_after,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTcp {
    max_connections: usize,
    max_per_source: usize,
    idle_timeout: u64,
    message_timeout: u64,
}

impl Default for RawTcp {
    fn default() -> Self {
        let d = TcpConfig::default();
        RawTcp {
            max_connections: d.max_connections,
            max_per_source: d.max_per_source,
            idle_timeout: d.idle_timeout.as_secs(),
            message_timeout: d.message_timeout.as_secs(),
        }
    }
}

use Seg::{Index as I, Key as K};

/// Parses a network (`192.0.2.0/24`, `2001:db8::/32`) or a single address.
fn network(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("`{s}` is not a network like 192.0.2.0/24 or 2001:db8::/32, nor an IP address")
    })
}

fn networks(
    list: &[String],
    path: &[Seg<'_>],
    here: &str,
    key: &str,
    p: &mut Problems<'_, '_>,
) -> Vec<IpNet> {
    let mut out = Vec::with_capacity(list.len());
    for (n, s) in list.iter().enumerate() {
        match network(s) {
            Ok(net) => out.push(net),
            Err(e) => {
                let mut at = path.to_vec();
                at.push(K(key));
                at.push(I(n));
                p.add(&at, format!("{here} {key}: {e}"));
            }
        }
    }
    out
}

/// Complains about each `(key, value)` below 1.
fn at_least_one(
    p: &mut Problems<'_, '_>,
    section: &'static str,
    here: &str,
    items: &[(&'static str, u64)],
) {
    for (key, v) in items {
        if *v == 0 {
            p.add(
                &[K("admission"), K(section), K(key)],
                format!("{here} {key} must be at least 1"),
            );
        }
    }
}

fn quota(per_sec: u32, burst: u32) -> RateQuota {
    RateQuota { per_sec, burst }
}

/// `[admission]` checked and typed.
pub(super) fn validate(raw: &RawAdmission, p: &mut Problems<'_, '_>) -> AdmissionConfig {
    let exempt = networks(&raw.exempt, &[K("admission")], "[admission]", "exempt", p);
    if raw.max_sources == 0 {
        p.add(
            &[K("admission"), K("max_sources")],
            "[admission] max_sources must be at least 1".into(),
        );
    }
    for (i, ua) in raw.scanner.user_agents.iter().enumerate() {
        if ua.trim().is_empty() {
            p.add(
                &[K("admission"), K("scanner"), K("user_agents"), I(i)],
                "[admission.scanner] user_agents: an empty pattern would match every request"
                    .into(),
            );
        }
    }
    let f = &raw.flood;
    if f.threshold > 0 {
        at_least_one(
            p,
            "flood",
            "[admission.flood]",
            &[("window", f.window), ("ban", f.ban)],
        );
    }
    let r = &raw.rate;
    for (key, rate, burst) in [
        ("invite_burst", r.invite, r.invite_burst),
        ("register_burst", r.register, r.register_burst),
        ("other_burst", r.other, r.other_burst),
    ] {
        if rate > 0 && burst == 0 {
            p.add(
                &[K("admission"), K("rate"), K(key)],
                format!("[admission.rate] {key} must be at least 1 when the rate is set"),
            );
        }
    }
    at_least_one(
        p,
        "rate",
        "[admission.rate]",
        &[("drop_window", r.drop_window)],
    );
    let a = &raw.auth;
    if a.source_failures > 0 {
        at_least_one(
            p,
            "auth",
            "[admission.auth]",
            &[
                ("source_window", a.source_window),
                ("source_ban", a.source_ban),
            ],
        );
    }
    if a.user_failures > 0 {
        at_least_one(
            p,
            "auth",
            "[admission.auth]",
            &[
                ("user_window", a.user_window),
                ("user_slow", a.user_slow),
                ("user_interval", a.user_interval),
            ],
        );
    }
    let o = &raw.overload;
    at_least_one(
        p,
        "overload",
        "[admission.overload]",
        &[
            ("max_transactions", o.max_transactions as u64),
            ("max_calls", o.max_calls as u64),
            ("retry_after", o.retry_after.into()),
        ],
    );
    let t = &raw.tcp;
    at_least_one(
        p,
        "tcp",
        "[admission.tcp]",
        &[
            ("max_connections", t.max_connections as u64),
            ("max_per_source", t.max_per_source as u64),
            ("idle_timeout", t.idle_timeout),
            ("message_timeout", t.message_timeout),
        ],
    );
    let secs = Duration::from_secs;
    AdmissionConfig {
        enabled: raw.enabled,
        exempt,
        max_sources: raw.max_sources.max(1),
        log_lines_per_sec: raw.log_lines_per_sec,
        sanity: SanityConfig {
            require_max_forwards: raw.sanity.require_max_forwards,
        },
        scanner: ScannerConfig {
            user_agents: raw.scanner.user_agents.clone(),
        },
        flood: FloodConfig {
            threshold: f.threshold,
            window: secs(f.window),
            ban: secs(f.ban),
        },
        rate: RateConfig {
            quotas: RateQuotas {
                invite: quota(r.invite, r.invite_burst),
                register: quota(r.register, r.register_burst),
                other: quota(r.other, r.other_burst),
            },
            replies_before_drop: r.replies_before_drop,
            drop_window: secs(r.drop_window),
        },
        auth: AuthConfig {
            source_failures: a.source_failures,
            source_window: secs(a.source_window),
            source_ban: secs(a.source_ban),
            user_failures: a.user_failures,
            user_window: secs(a.user_window),
            user_slow: secs(a.user_slow),
            user_interval: secs(a.user_interval),
        },
        overload: OverloadConfig {
            max_transactions: o.max_transactions,
            max_calls: o.max_calls,
            retry_after: o.retry_after,
        },
        tcp: TcpConfig {
            max_connections: t.max_connections,
            max_per_source: t.max_per_source,
            idle_timeout: secs(t.idle_timeout),
            message_timeout: secs(t.message_timeout),
        },
    }
}

/// `allow` and `rate` of `[[interface]]` #`i`, checked and typed.
pub(super) fn interface(
    i: usize,
    here: &str,
    allow: &[String],
    rate: &RawRateOverride,
    p: &mut Problems<'_, '_>,
) -> (Vec<IpNet>, RateOverride) {
    let nets = networks(
        allow,
        &[K("interface"), I(i)],
        &format!("{here}:"),
        "allow",
        p,
    );
    for (key, v) in [
        ("invite_burst", rate.invite_burst),
        ("register_burst", rate.register_burst),
        ("other_burst", rate.other_burst),
    ] {
        if v == Some(0) {
            p.add(
                &[K("interface"), I(i), K("rate"), K(key)],
                format!("{here}: rate.{key} must be at least 1"),
            );
        }
    }
    let o = RateOverride {
        invite: rate.invite,
        invite_burst: rate.invite_burst,
        register: rate.register,
        register_burst: rate.register_burst,
        other: rate.other,
        other_burst: rate.other_burst,
    };
    (nets, o)
}

#[cfg(test)]
mod tests {
    use crate::admission::{AdmissionConfig, RateQuota};
    use crate::config::Config;
    use std::time::Duration;

    const BASE: &str = "[node]\nname = \"n\"\ndata_dir = \"d\"\n\n\
                        [[interface]]\nname = \"access\"\nudp = \"127.0.0.10:5060\"\n";

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml_str(text, "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_when_the_section_is_absent() {
        let c = parse(BASE).unwrap();
        assert_eq!(c.admission, AdmissionConfig::default());
        let i = &c.interfaces[0];
        assert!(i.allow.is_empty());
        assert_eq!(i.rate, Default::default());
    }

    #[test]
    fn every_key_is_read() {
        let text = format!(
            "{BASE}allow = [\"192.0.2.0/24\", \"2001:db8::1\"]\n\
             rate = {{ invite = 3, register_burst = 4 }}\n\n\
             [admission]\nenabled = false\nexempt = [\"10.1.2.3\"]\nmax_sources = 100\n\
             log_lines_per_sec = 2\n\
             [admission.sanity]\nrequire_max_forwards = true\n\
             [admission.scanner]\nuser_agents = [\"evil\"]\n\
             [admission.flood]\nthreshold = 50\nwindow = 3\nban = 60\n\
             [admission.rate]\ninvite = 1\ninvite_burst = 2\nreplies_before_drop = 1\ndrop_window = 5\n\
             [admission.auth]\nsource_failures = 3\nuser_interval = 2\n\
             [admission.overload]\nmax_calls = 5\nretry_after = 3\n\
             [admission.tcp]\nmax_per_source = 2\nmessage_timeout = 4\n"
        );
        let c = parse(&text).unwrap();
        let a = &c.admission;
        assert!(!a.enabled && a.sanity.require_max_forwards);
        assert_eq!(a.exempt, vec!["10.1.2.3/32".parse().unwrap()]);
        assert_eq!((a.max_sources, a.log_lines_per_sec), (100, 2));
        assert_eq!(a.scanner.user_agents, ["evil"]);
        assert_eq!(a.flood.threshold, 50);
        assert_eq!(a.flood.window, Duration::from_secs(3));
        assert_eq!(
            a.rate.quotas.invite,
            RateQuota {
                per_sec: 1,
                burst: 2
            }
        );
        assert_eq!(a.rate.replies_before_drop, 1);
        assert_eq!(a.auth.source_failures, 3);
        assert_eq!(a.auth.user_interval, Duration::from_secs(2));
        assert_eq!((a.overload.max_calls, a.overload.retry_after), (5, 3));
        assert_eq!(a.tcp.max_per_source, 2);
        assert_eq!(a.tcp.message_timeout, Duration::from_secs(4));
        let i = &c.interfaces[0];
        assert_eq!(i.allow.len(), 2);
        let q = i.rate.apply(a.rate.quotas);
        assert_eq!(
            q.invite,
            RateQuota {
                per_sec: 3,
                burst: 2
            }
        );
        assert_eq!(q.register.burst, 4);
    }

    #[test]
    fn errors_name_key_section_and_line() {
        let text = format!("{BASE}\n[admission.flood]\nthreshhold = 5\n");
        let e = parse(&text).unwrap_err();
        assert!(
            e.starts_with("t.toml:10: unknown key `threshhold` in [admission.flood]"),
            "{e}"
        );
        let text = format!("{BASE}allow = [\"192.0.2.0/33\"]\n");
        let e = parse(&text).unwrap_err();
        assert!(
            e.starts_with("t.toml:8: [[interface]] #1 (access): allow: `192.0.2.0/33`"),
            "{e}"
        );
        let text = format!("{BASE}rate = {{ invit = 3 }}\n");
        let e = parse(&text).unwrap_err();
        assert!(e.contains("unknown key `invit`"), "{e}");
        let text = format!("{BASE}\n[admission.overload]\nmax_calls = 0\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(
            e,
            "t.toml:10: [admission.overload] max_calls must be at least 1"
        );
        let text = format!("{BASE}\n[admission.scanner]\nuser_agents = [\"\"]\n");
        assert!(parse(&text).unwrap_err().contains("empty pattern"));
    }
}
