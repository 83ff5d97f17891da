//! The admission settings, typed and checked (the config file's `[admission]`
//! section and the `allow` / `rate` keys of `[[interface]]`, read by
//! `crate::config`). Every default here is meant to be safe on an interface open
//! to the internet; the numbers are per source IP address unless said otherwise.

use std::time::Duration;

use ipnet::IpNet;

/// `[admission]`: the whole pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// `enabled` (default true). Off, no limit acts (allow-lists, scanner,
    /// flood, rate, brute-force, overload): for labs and benchmarks only. The
    /// sanity checks still run: the core relies on them.
    pub enabled: bool,
    /// `exempt` (default none): sources never flood-banned, rate limited or
    /// auth-banned, e.g. a monitoring host or a peer on an untrusted interface.
    /// Trusted interfaces are exempt anyway.
    pub exempt: Vec<IpNet>,
    /// `max_sources` (default 65536): most sources tracked by each per-source
    /// table (flood density, rate limits, auth failures, users); the least
    /// recently active are forgotten first. Bounds memory under spoofed floods.
    pub max_sources: usize,
    /// `log_lines_per_sec` (default 10): most log lines per second for each kind
    /// of admission event; the rest are counted and reported on the next line
    /// (0 silences them; the counters still count).
    pub log_lines_per_sec: u32,
    /// `[admission.sanity]`.
    pub sanity: SanityConfig,
    /// `[admission.scanner]`.
    pub scanner: ScannerConfig,
    /// `[admission.flood]`.
    pub flood: FloodConfig,
    /// `[admission.rate]`.
    pub rate: RateConfig,
    /// `[admission.auth]`.
    pub auth: AuthConfig,
    /// `[admission.overload]`.
    pub overload: OverloadConfig,
    /// `[admission.tcp]`.
    pub tcp: TcpConfig,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            enabled: true,
            exempt: Vec::new(),
            max_sources: 65_536,
            log_lines_per_sec: 10,
            sanity: SanityConfig::default(),
            scanner: ScannerConfig::default(),
            flood: FloodConfig::default(),
            rate: RateConfig::default(),
            auth: AuthConfig::default(),
            overload: OverloadConfig::default(),
            tcp: TcpConfig::default(),
        }
    }
}

/// `[admission.sanity]`: RFC 3261 §8.2 / §16.3 checks beyond what the parser
/// enforces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SanityConfig {
    /// `require_max_forwards` (default false): answer 400 to requests without
    /// Max-Forwards. RFC 3261 requires it, but an edge that normalizes buggy
    /// clients adds it instead (§16.6 step 3), so the default tolerates it.
    pub require_max_forwards: bool,
}

/// The User-Agent substrings of well-known SIP scanners and password crackers
/// (SIPVicious and its forks, sipcli, VaxSIP, sundayddr, SIPScan, iWar, ...).
pub const DEFAULT_SCANNERS: &[&str] = &[
    "friendly-scanner",
    "friendly-request",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",
    "sundayddr",
    "iwar",
    "sivus",
    "vaxsipuseragent",
    "vaxipuseragent",
    "siparmyknife",
    "pplsip",
];

/// `[admission.scanner]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannerConfig {
    /// `user_agents` (default [`DEFAULT_SCANNERS`]): requests whose User-Agent
    /// contains one of these (ASCII case-insensitive) are dropped without an
    /// answer. Setting the key replaces the list; `[]` turns the check off.
    pub user_agents: Vec<String>,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        ScannerConfig {
            user_agents: DEFAULT_SCANNERS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// `[admission.flood]`: density-based bans in the manner of Kamailio's pike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodConfig {
    /// `threshold` (default 200): a source sending more requests than this within
    /// one window is banned; 0 turns flood bans off. Set above the rate limits so
    /// a busy but honest source sees 503s long before a ban.
    pub threshold: u32,
    /// `window` (seconds, default 2): the sampling window.
    pub window: Duration,
    /// `ban` (seconds, default 300): how long a flooding source is dropped.
    pub ban: Duration,
}

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig {
            threshold: 200,
            window: Duration::from_secs(2),
            ban: Duration::from_secs(300),
        }
    }
}

/// One request budget: `per_sec` sustained with bursts up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateQuota {
    /// Requests per second; 0 means no limit.
    pub per_sec: u32,
    /// Most requests at once.
    pub burst: u32,
}

/// The three budgets every source has on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateQuotas {
    /// INVITE (`invite`, `invite_burst`; default 10/s, burst 20).
    pub invite: RateQuota,
    /// REGISTER (`register`, `register_burst`; default 10/s, burst 20).
    pub register: RateQuota,
    /// Every other out-of-dialog request (`other`, `other_burst`; default 50/s,
    /// burst 100).
    pub other: RateQuota,
}

impl Default for RateQuotas {
    fn default() -> Self {
        RateQuotas {
            invite: RateQuota {
                per_sec: 10,
                burst: 20,
            },
            register: RateQuota {
                per_sec: 10,
                burst: 20,
            },
            other: RateQuota {
                per_sec: 50,
                burst: 100,
            },
        }
    }
}

/// `[[interface]] rate = { ... }`: per-interface replacements of the budgets
/// in `[admission.rate]`; what is not given comes from there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateOverride {
    /// `invite`.
    pub invite: Option<u32>,
    /// `invite_burst`.
    pub invite_burst: Option<u32>,
    /// `register`.
    pub register: Option<u32>,
    /// `register_burst`.
    pub register_burst: Option<u32>,
    /// `other`.
    pub other: Option<u32>,
    /// `other_burst`.
    pub other_burst: Option<u32>,
}

impl RateOverride {
    /// `base` with this override's values in place.
    pub fn apply(&self, base: RateQuotas) -> RateQuotas {
        let q = |b: RateQuota, r: Option<u32>, burst: Option<u32>| RateQuota {
            per_sec: r.unwrap_or(b.per_sec),
            burst: burst.unwrap_or(b.burst),
        };
        RateQuotas {
            invite: q(base.invite, self.invite, self.invite_burst),
            register: q(base.register, self.register, self.register_burst),
            other: q(base.other, self.other, self.other_burst),
        }
    }
}

/// `[admission.rate]`: per-source budgets for out-of-dialog requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateConfig {
    /// The budgets (keys above); per interface they can be replaced.
    pub quotas: RateQuotas,
    /// `replies_before_drop` (default 5): a source over its budget gets this many
    /// 503s within `drop_window`, then silence until it slows down (answering
    /// every excess request would double the flood).
    pub replies_before_drop: u32,
    /// `drop_window` (seconds, default 10).
    pub drop_window: Duration,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            quotas: RateQuotas::default(),
            replies_before_drop: 5,
            drop_window: Duration::from_secs(10),
        }
    }
}

/// `[admission.auth]`: brute-force defence fed by the registrar's verdicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// `source_failures` (default 10): failed authentications from one source
    /// within `source_window` that ban it; 0 turns source bans off.
    pub source_failures: u32,
    /// `source_window` (seconds, default 600).
    pub source_window: Duration,
    /// `source_ban` (seconds, default 900).
    pub source_ban: Duration,
    /// `user_failures` (default 20): failed authentications for one user (from
    /// any sources) within `user_window` that slow that user down; 0 turns it off.
    pub user_failures: u32,
    /// `user_window` (seconds, default 600).
    pub user_window: Duration,
    /// `user_slow` (seconds, default 900): how long a user stays slowed.
    pub user_slow: Duration,
    /// `user_interval` (seconds, default 10): while slowed, one credentialed
    /// request per interval is let through for that user from addresses it has
    /// not logged in from; the others get 503 with Retry-After. Addresses it
    /// logged in from before are not slowed, so the real user keeps working.
    pub user_interval: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            source_failures: 10,
            source_window: Duration::from_secs(600),
            source_ban: Duration::from_secs(900),
            user_failures: 20,
            user_window: Duration::from_secs(600),
            user_slow: Duration::from_secs(900),
            user_interval: Duration::from_secs(10),
        }
    }
}

/// `[admission.overload]`: global bounds (not per source).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverloadConfig {
    /// `max_transactions` (default 1000000): at this many transactions (those in
    /// their RFC 3261 wait states, timers D/J/K/M, count: about 6 per call for 32 s
    /// over UDP, so 1,000,000 is ~5,000 calls/s), new
    /// out-of-dialog requests (except ACK and CANCEL) get 503.
    pub max_transactions: usize,
    /// `max_calls` (default 10000): at this many calls, new INVITEs get 503.
    pub max_calls: usize,
    /// `retry_after` (seconds, default 10): the Retry-After of those 503s.
    pub retry_after: u32,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        OverloadConfig {
            max_transactions: 1_000_000,
            max_calls: 10_000,
            retry_after: 10,
        }
    }
}

/// `[admission.tcp]`: bounds on TCP connections (enforced by the transport).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// `max_connections` (default 4096): most inbound connections at once; more
    /// are closed as soon as they are accepted.
    pub max_connections: usize,
    /// `max_per_source` (default 32): most inbound connections from one IP.
    pub max_per_source: usize,
    /// `idle_timeout` (seconds, default 300): a connection with no complete
    /// message (or keep-alive) for this long is closed.
    pub idle_timeout: Duration,
    /// `message_timeout` (seconds, default 10): a message must arrive whole
    /// within this long of its first byte, however the bytes trickle in
    /// (slowloris).
    pub message_timeout: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_connections: 4096,
            max_per_source: 32,
            idle_timeout: Duration::from_secs(300),
            message_timeout: Duration::from_secs(10),
        }
    }
}

/// What admission knows of one interface: its allow-list and budgets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IfacePolicy {
    /// `[[interface]] allow`: when not empty, out-of-dialog requests from
    /// sources outside these networks are dropped on this interface.
    pub allow: Vec<IpNet>,
    /// The budgets of this interface (`[admission.rate]` with its `rate`
    /// override applied).
    pub rate: RateQuotas,
}

impl IfacePolicy {
    /// The policy of every `[[interface]]` of a validated config, in order.
    pub fn from_config(cfg: &crate::config::Config) -> Vec<IfacePolicy> {
        cfg.interfaces
            .iter()
            .map(|i| IfacePolicy {
                allow: i.allow.clone(),
                rate: i.rate.apply(cfg.admission.rate.quotas),
            })
            .collect()
    }
}
