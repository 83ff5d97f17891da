//! The timer queue: a binary min-heap with lazy deletion.
//!
//! Every transaction has two timer slots (a retransmission timer: A, E, G or the 2xx
//! retransmission; and a lifetime timer: B, D, F, H, I, J, K, L, M or the CANCEL
//! guard). A slot records the sequence number of the heap entry that serves it;
//! re-arming or disarming just overwrites the slot, and the orphaned heap entry is
//! discarded when it surfaces (or in a bulk compaction when orphans pile up). Push
//! and pop are O(log n) with no allocation beyond the heap's own amortized growth.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::TxRef;

/// Which of a transaction's two timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// A, E, G, or 2xx retransmission.
    Retransmit = 0,
    /// B, D, F, H, I, J, K, L, M, or the CANCEL guard.
    Lifetime = 1,
}

/// The armed sequence numbers of a transaction's two slots.
pub(super) type Slots = [Option<u64>; 2];

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) at: Instant,
    pub(super) seq: u64,
    pub(super) tx: TxRef,
    pub(super) slot: Slot,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, the earliest deadline must surface.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Orphaned entries tolerated before a compaction is considered.
const COMPACT_MIN: usize = 4096;

pub(super) struct TimerQueue {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
    /// Heap entries no slot refers to any more.
    stale: usize,
}

impl TimerQueue {
    pub(super) fn new() -> Self {
        TimerQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
            stale: 0,
        }
    }

    /// Arms `slot` of a transaction at `at`, replacing whatever it held.
    pub(super) fn arm(&mut self, slots: &mut Slots, tx: TxRef, slot: Slot, at: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if slots[slot as usize].replace(seq).is_some() {
            self.stale += 1;
        }
        self.heap.push(Entry { at, seq, tx, slot });
    }

    /// Disarms `slot`; its heap entry becomes an orphan.
    pub(super) fn disarm(&mut self, slots: &mut Slots, slot: Slot) {
        if slots[slot as usize].take().is_some() {
            self.stale += 1;
        }
    }

    /// A transaction is gone: its armed slots become orphans.
    pub(super) fn forget(&mut self, slots: &Slots) {
        self.stale += slots.iter().filter(|s| s.is_some()).count();
    }

    pub(super) fn peek(&self) -> Option<&Entry> {
        self.heap.peek()
    }

    /// Pops the earliest entry if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        if self.heap.peek()?.at <= now {
            self.heap.pop()
        } else {
            None
        }
    }

    /// Pops the earliest entry unconditionally (used to discard an orphan on top).
    pub(super) fn pop(&mut self) -> Option<Entry> {
        self.heap.pop()
    }

    /// Records that a popped entry was an orphan.
    pub(super) fn discarded(&mut self) {
        self.stale = self.stale.saturating_sub(1);
    }

    /// Whether enough orphans piled up (more than half the heap) to rebuild.
    pub(super) fn wants_compaction(&self) -> bool {
        self.stale > COMPACT_MIN && self.stale * 2 > self.heap.len()
    }

    /// Keeps only the entries `live` accepts.
    pub(super) fn compact(&mut self, mut live: impl FnMut(&Entry) -> bool) {
        self.heap.retain(|e| live(e));
        self.stale = 0;
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}
