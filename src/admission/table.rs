//! A map with a hard bound on its size, for per-source (and per-user) state that
//! an attacker controls the keys of (DESIGN.md invariant 5: bounded memory).
//!
//! Eviction is the CLOCK (second chance) approximation of least-recently-used:
//! keys sit in a ring in insertion order with a "seen again" bit. To make room,
//! the ring's front is taken: seen again → bit cleared, back of the ring; not
//! seen since → evicted. A source seen once (a spoofed address in a flood) goes
//! first; a source that keeps sending (a banned flooder, a real client) stays.
//! Every operation is amortized O(1).

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

struct Slot<V> {
    value: V,
    /// Looked up since it last went round the ring.
    seen: bool,
    /// Matches the ring entry that stands for this slot; older ring entries
    /// for the same key (removed and inserted again) are stale.
    generation: u64,
}

/// A bounded map from `K` to `V` with CLOCK eviction.
pub struct BoundedMap<K, V> {
    map: HashMap<K, Slot<V>>,
    ring: VecDeque<(K, u64)>,
    cap: usize,
    generation: u64,
    evicted: u64,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// An empty map that never holds more than `cap` entries (at least 1).
    pub fn new(cap: usize) -> Self {
        BoundedMap {
            map: HashMap::new(),
            ring: VecDeque::new(),
            cap: cap.max(1),
            generation: 0,
            evicted: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// How many entries were pushed out to make room, ever.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The entry for `key`, marked as seen.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key).map(|s| {
            s.seen = true;
            &mut s.value
        })
    }

    /// The entry for `key` without marking it seen.
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|s| &s.value)
    }

    /// The entry for `key`, made with `make` (evicting another entry when full)
    /// if there is none. A new entry is not marked seen, so a key seen only once
    /// is the first to go.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let existed = self.map.contains_key(&key);
        if !existed {
            if self.map.len() >= self.cap {
                self.evict_one();
            }
            self.generation += 1;
            self.ring.push_back((key.clone(), self.generation));
            if self.ring.len() > self.cap.saturating_mul(2) {
                self.compact();
            }
        }
        let generation = self.generation;
        let slot = self.map.entry(key).or_insert_with(|| Slot {
            value: make(),
            seen: false,
            generation,
        });
        if existed {
            slot.seen = true;
        }
        &mut slot.value
    }

    /// Removes `key`'s entry.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // The ring entry goes stale and is skipped or compacted later.
        self.map.remove(key).map(|s| s.value)
    }

    /// Looks at up to `n` entries from the front of the ring and removes those
    /// `keep` refuses (idle entries, for instance); the others go to the back.
    /// Called a little at a time, this ages out state that is no longer needed
    /// without a pause proportional to the table.
    pub fn sweep(&mut self, n: usize, mut keep: impl FnMut(&K, &mut V) -> bool) {
        for _ in 0..n.min(self.ring.len()) {
            let Some((key, generation)) = self.ring.pop_front() else {
                return;
            };
            let Some(slot) = self.map.get_mut(&key) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            if keep(&key, &mut slot.value) {
                self.ring.push_back((key, generation));
            } else {
                self.map.remove(&key);
            }
        }
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.map.iter().map(|(k, s)| (k, &s.value))
    }

    fn evict_one(&mut self) {
        // Two rounds at most: the first clears every "seen" bit it meets.
        let rounds = self.ring.len().saturating_mul(2).saturating_add(1);
        for _ in 0..rounds {
            let Some((key, generation)) = self.ring.pop_front() else {
                return;
            };
            let Some(slot) = self.map.get_mut(&key) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            if slot.seen {
                slot.seen = false;
                self.ring.push_back((key, generation));
            } else {
                self.map.remove(&key);
                self.evicted += 1;
                return;
            }
        }
    }

    fn compact(&mut self) {
        let map = &self.map;
        self.ring
            .retain(|(k, g)| map.get(k).is_some_and(|s| s.generation == *g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_grows_past_its_bound() {
        let mut m = BoundedMap::new(100);
        for i in 0..10_000u32 {
            *m.get_or_insert_with(i, || 0u32) += 1;
            assert!(m.len() <= 100);
        }
        assert_eq!(m.len(), 100);
        assert_eq!(m.evicted(), 9_900);
        assert!(m.ring.len() <= 200);
    }

    #[test]
    fn keys_seen_again_survive_a_stream_of_new_keys() {
        let mut m = BoundedMap::new(10);
        m.get_or_insert_with(u32::MAX, || 1u32);
        for i in 0..1000u32 {
            // The busy key is looked up between every new one.
            assert!(m.get_mut(&u32::MAX).is_some(), "evicted at {i}");
            m.get_or_insert_with(i, || 0);
        }
    }

    #[test]
    fn sweep_removes_refused_entries_and_keeps_the_rest() {
        let mut m = BoundedMap::new(10);
        for i in 0..6u32 {
            m.get_or_insert_with(i, || i);
        }
        m.sweep(100, |_, v| *v % 2 == 0);
        let mut left: Vec<u32> = m.iter().map(|(k, _)| *k).collect();
        left.sort_unstable();
        assert_eq!(left, [0, 2, 4]);
    }

    #[test]
    fn removed_and_reinserted_keys_are_not_evicted_twice() {
        let mut m = BoundedMap::new(2);
        m.get_or_insert_with(1u32, || 1u32);
        m.remove(&1);
        m.get_or_insert_with(1, || 2);
        m.get_or_insert_with(2, || 3);
        m.get_or_insert_with(3, || 4);
        assert_eq!(m.len(), 2);
        assert_eq!(m.peek(&3), Some(&4));
    }
}
