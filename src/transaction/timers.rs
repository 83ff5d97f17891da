//! The timer queue: per-duration FIFO lanes with lazy deletion.
//!
//! Every transaction has two timer slots (a retransmission timer: A, E, G or the 2xx
//! retransmission; and a lifetime timer: B, D, F, H, I, J, K, L, M or the CANCEL
//! guard). A slot records the sequence number of the queue entry that serves it;
//! re-arming or disarming just overwrites the slot, and the orphaned entry is
//! discarded when it surfaces (or in a bulk compaction when orphans pile up).
//!
//! The RFC timers take only a handful of distinct durations (T1·2^k, T2, T4, 64·T1,
//! D), and `now` never goes backwards, so all timers of one duration expire in the
//! order they were armed: each duration gets a FIFO lane (`VecDeque`), arming is a
//! push to the back and the next deadline is the smallest lane front. That is O(1)
//! per operation and touches only the lane ends, where a binary heap of 100,000
//! timers pays ~17 cache-missing levels per pop. A deadline that would break a
//! lane's order (a caller's clock going backwards) or a duration beyond the lane
//! limit goes to a binary heap, so the order stays exact in every case.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

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

/// Most lanes; further durations share the heap.
const MAX_LANES: usize = 32;

struct Lane {
    dur: Duration,
    q: VecDeque<Entry>,
}

pub(super) struct TimerQueue {
    lanes: Vec<Lane>,
    spill: BinaryHeap<Entry>,
    next_seq: u64,
    /// Entries no slot refers to any more.
    stale: usize,
}

/// Where the earliest entry is.
#[derive(Clone, Copy)]
enum Source {
    Lane(usize),
    Spill,
}

impl TimerQueue {
    pub(super) fn new() -> Self {
        TimerQueue {
            lanes: Vec::new(),
            spill: BinaryHeap::new(),
            next_seq: 0,
            stale: 0,
        }
    }

    /// Arms `slot` of a transaction to fire `dur` after `now`, replacing whatever it
    /// held.
    pub(super) fn arm(
        &mut self,
        slots: &mut Slots,
        tx: TxRef,
        slot: Slot,
        now: Instant,
        dur: Duration,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if slots[slot as usize].replace(seq).is_some() {
            self.stale += 1;
        }
        let at = super::after(now, dur);
        let e = Entry { at, seq, tx, slot };
        let lane = match self.lanes.iter().position(|l| l.dur == dur) {
            Some(i) => self.lanes.get_mut(i),
            None if self.lanes.len() < MAX_LANES => {
                self.lanes.push(Lane {
                    dur,
                    q: VecDeque::new(),
                });
                self.lanes.last_mut()
            }
            None => None,
        };
        match lane {
            Some(l) if l.q.back().is_none_or(|b| b.at <= at) => l.q.push_back(e),
            _ => self.spill.push(e),
        }
    }

    /// Disarms `slot`; its entry becomes an orphan.
    pub(super) fn disarm(&mut self, slots: &mut Slots, slot: Slot) {
        if slots[slot as usize].take().is_some() {
            self.stale += 1;
        }
    }

    /// A transaction is gone: its armed slots become orphans.
    pub(super) fn forget(&mut self, slots: &Slots) {
        self.stale += slots.iter().filter(|s| s.is_some()).count();
    }

    fn earliest(&self) -> Option<(Source, &Entry)> {
        let mut best: Option<(Source, &Entry)> = self.spill.peek().map(|e| (Source::Spill, e));
        for (i, l) in self.lanes.iter().enumerate() {
            if let Some(e) = l.q.front() {
                if best.is_none_or(|(_, b)| (e.at, e.seq) < (b.at, b.seq)) {
                    best = Some((Source::Lane(i), e));
                }
            }
        }
        best
    }

    pub(super) fn peek(&self) -> Option<&Entry> {
        self.earliest().map(|(_, e)| e)
    }

    /// Pops the earliest entry if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        let (src, e) = self.earliest()?;
        if e.at > now {
            return None;
        }
        self.take(src)
    }

    /// Pops the earliest entry unconditionally (used to discard an orphan on top).
    pub(super) fn pop(&mut self) -> Option<Entry> {
        let (src, _) = self.earliest()?;
        self.take(src)
    }

    fn take(&mut self, src: Source) -> Option<Entry> {
        match src {
            Source::Spill => self.spill.pop(),
            Source::Lane(i) => self.lanes.get_mut(i)?.q.pop_front(),
        }
    }

    /// Records that a popped entry was an orphan.
    pub(super) fn discarded(&mut self) {
        self.stale = self.stale.saturating_sub(1);
    }

    /// Whether enough orphans piled up (more than half the entries) to rebuild.
    pub(super) fn wants_compaction(&self) -> bool {
        self.stale > COMPACT_MIN && self.stale * 2 > self.len()
    }

    /// Keeps only the entries `live` accepts.
    pub(super) fn compact(&mut self, mut live: impl FnMut(&Entry) -> bool) {
        for l in &mut self.lanes {
            l.q.retain(|e| live(e));
        }
        self.spill.retain(|e| live(e));
        self.stale = 0;
    }

    /// Entries queued, orphans included.
    pub(super) fn len(&self) -> usize {
        self.spill.len() + self.lanes.iter().map(|l| l.q.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::{ClientTxId, TxRef};

    #[test]
    fn entries_come_out_in_deadline_order_whatever_the_lane() {
        let mut q = TimerQueue::new();
        let t0 = Instant::now();
        let mut slots = [[None, None]; 6];
        let tx = TxRef::Client(ClientTxId(1));
        let ms = Duration::from_millis;
        // Two lanes interleaved, then a clock that went backwards (spill).
        q.arm(&mut slots[0], tx, Slot::Lifetime, t0, ms(300));
        q.arm(&mut slots[1], tx, Slot::Lifetime, t0, ms(100));
        q.arm(&mut slots[2], tx, Slot::Lifetime, t0 + ms(50), ms(300));
        q.arm(&mut slots[3], tx, Slot::Lifetime, t0 + ms(10), ms(100));
        q.arm(&mut slots[4], tx, Slot::Lifetime, t0, ms(100));
        q.arm(&mut slots[5], tx, Slot::Lifetime, t0 + ms(5), ms(1));
        let mut out = Vec::new();
        while let Some(e) = q.pop_due(t0 + ms(1000)) {
            out.push((e.at - t0).as_millis());
        }
        assert_eq!(out, vec![6, 100, 100, 110, 300, 350]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn compaction_drops_orphans() {
        let mut q = TimerQueue::new();
        let t0 = Instant::now();
        let mut slots = [None, None];
        let tx = TxRef::Client(ClientTxId(1));
        for i in 0..10 {
            q.arm(
                &mut slots,
                tx,
                Slot::Retransmit,
                t0,
                Duration::from_millis(i),
            );
        }
        assert_eq!(q.len(), 10);
        let keep = slots[0];
        q.compact(|e| Some(e.seq) == keep);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop().map(|e| e.seq), keep);
    }
}
