//! Counters that show each limit acting (issue 7: "a metric or log line that
//! shows it acting"). Plain relaxed atomics in one `Arc`-shared struct, so the
//! admin/metrics side can read them from another thread without a lock while
//! the core bumps them.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Admission counters; every field counts events since start, except the
        /// ones documented as gauges.
        #[derive(Debug, Default)]
        pub struct AdmissionMetrics {
            $( $(#[$doc])* pub $name: AtomicU64, )*
        }

        /// A copy of every counter at one moment, for export.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct MetricsSnapshot {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl AdmissionMetrics {
            /// Reads every counter.
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot {
                    $( $name: self.$name.load(Ordering::Relaxed), )*
                }
            }
        }

        impl MetricsSnapshot {
            /// `(name, value)` pairs, in declaration order (for a text exporter).
            pub fn pairs(&self) -> Vec<(&'static str, u64)> {
                vec![ $( (stringify!($name), self.$name), )* ]
            }
        }
    };
}

counters! {
    /// Messages that passed every layer.
    passed,
    /// Out-of-dialog requests dropped by an interface allow-list.
    acl_dropped,
    /// Requests dropped for a scanner User-Agent.
    scanner_dropped,
    /// Messages dropped because their source is flood-banned.
    flood_dropped,
    /// Flood bans started.
    flood_bans_started,
    /// Flood bans ended.
    flood_bans_ended,
    /// Malformed requests answered (400/413/416/505).
    sanity_replied,
    /// Malformed messages dropped (unaddressable, ACK, responses).
    sanity_dropped,
    /// Failed digest authentications reported by the registrar.
    auth_failures,
    /// Sources banned for failed authentications.
    auth_bans_started,
    /// Authentication bans ended.
    auth_bans_ended,
    /// Messages dropped because their source is auth-banned.
    auth_dropped,
    /// Users put into slow mode for failed authentications.
    auth_users_slowed,
    /// Requests for a slowed user answered 503.
    auth_user_rejected,
    /// Requests over a per-source rate answered 503.
    rate_replied,
    /// Requests over a per-source rate dropped (the source kept exceeding).
    rate_dropped,
    /// New requests answered 503 for overload.
    overload_replied,
    /// TCP connections refused by the per-source or total bound.
    tcp_refused,
    /// TCP connections closed for a message that did not complete in time.
    tcp_slow_closed,
    /// Gauge: sources currently flood- or auth-banned.
    banned_sources,
}

impl AdmissionMetrics {
    /// Adds one to a counter.
    #[inline]
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets a gauge.
    #[inline]
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }
}
