//! Per-stream counters, written by a forwarding thread and read by the core.
//!
//! Relaxed atomics: each counter has one writer (the stream's worker) and the
//! readers only want a recent value, so no ordering between counters is needed,
//! and an increment costs the worker no more than a plain add on its own cache line.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Live counters of one stream (shared between the worker and the handle).
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Counters {
    pub a_to_b_packets: AtomicU64,
    pub a_to_b_bytes: AtomicU64,
    pub b_to_a_packets: AtomicU64,
    pub b_to_a_bytes: AtomicU64,
    /// Packets from a source the latching rules refused.
    pub dropped_source: AtomicU64,
    /// Packets accepted but with nowhere to go (no signaled or latched far end)
    /// or that the kernel would not send.
    pub dropped_unroutable: AtomicU64,
    /// Relay-clock milliseconds of the last accepted packet (stored before it
    /// is sent on), or of the last allocate/set_remote (so the media timeout
    /// counts from the answer).
    pub last_activity_ms: AtomicU64,
}

impl Counters {
    /// Counts one forwarded packet.
    #[inline]
    pub fn forwarded(&self, from_a: bool, len: usize) {
        let (p, b) = if from_a {
            (&self.a_to_b_packets, &self.a_to_b_bytes)
        } else {
            (&self.b_to_a_packets, &self.b_to_a_bytes)
        };
        p.fetch_add(1, Relaxed);
        b.fetch_add(len as u64, Relaxed);
    }

    pub fn snapshot(&self, stream: usize, epoch: Instant) -> StreamStats {
        StreamStats {
            stream,
            a_to_b: Flow {
                packets: self.a_to_b_packets.load(Relaxed),
                bytes: self.a_to_b_bytes.load(Relaxed),
            },
            b_to_a: Flow {
                packets: self.b_to_a_packets.load(Relaxed),
                bytes: self.b_to_a_bytes.load(Relaxed),
            },
            dropped_source: self.dropped_source.load(Relaxed),
            dropped_unroutable: self.dropped_unroutable.load(Relaxed),
            last_activity: epoch + Duration::from_millis(self.last_activity_ms.load(Relaxed)),
        }
    }
}

/// Packets and bytes in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// Datagrams forwarded (RTP and RTCP).
    pub packets: u64,
    /// Their UDP payload bytes.
    pub bytes: u64,
}

/// A stream's counters at one moment, for logs at call end and for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamStats {
    /// The stream index the core gave at `allocate`.
    pub stream: usize,
    /// Side A's far end toward side B's.
    pub a_to_b: Flow,
    /// Side B's far end toward side A's.
    pub b_to_a: Flow,
    /// Refused by the latching rules (possible injection or hijack attempts).
    pub dropped_source: u64,
    /// Accepted but not sent (no known far end, or the send failed).
    pub dropped_unroutable: u64,
    /// Last accepted packet, or the last allocate/set_remote if later.
    pub last_activity: Instant,
}
