//! Storage for live transactions: a generational slab (O(1) insert, lookup and
//! removal, no hashing, stale ids detected) and hash indexes from a 64-bit keyed
//! hash of the matching fields to the transactions that carry them.
//!
//! Indexes store no strings: the key is a SipHash (random per-process keys, so a
//! peer cannot aim collisions) of the branch or of the legacy matching tuple, and a
//! hit is confirmed against the fields kept in the transaction itself. A request
//! lookup therefore allocates nothing.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A generational slab. Ids pack `generation << 32 | index`; a removed slot bumps its
/// generation so an old id never reaches the slot's next occupant.
pub(super) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
}

struct Entry<T> {
    generation: u32,
    value: Option<T>,
}

fn split(id: u64) -> (usize, u32) {
    ((id & 0xffff_ffff) as usize, (id >> 32) as u32)
}

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(super) fn insert(&mut self, value: T) -> u64 {
        self.len += 1;
        if let Some(idx) = self.free.pop() {
            if let Some(e) = self.entries.get_mut(idx as usize) {
                e.value = Some(value);
                return (u64::from(e.generation) << 32) | u64::from(idx);
            }
        }
        let idx = self.entries.len() as u64;
        self.entries.push(Entry {
            generation: 1,
            value: Some(value),
        });
        (1u64 << 32) | idx
    }

    pub(super) fn get(&self, id: u64) -> Option<&T> {
        let (idx, generation) = split(id);
        self.entries
            .get(idx)
            .filter(|e| e.generation == generation)
            .and_then(|e| e.value.as_ref())
    }

    pub(super) fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let (idx, generation) = split(id);
        self.entries
            .get_mut(idx)
            .filter(|e| e.generation == generation)
            .and_then(|e| e.value.as_mut())
    }

    pub(super) fn remove(&mut self, id: u64) -> Option<T> {
        let (idx, generation) = split(id);
        let e = self.entries.get_mut(idx)?;
        if e.generation != generation {
            return None;
        }
        let v = e.value.take()?;
        e.generation = e.generation.wrapping_add(1).max(1);
        self.free.push(idx as u32);
        self.len -= 1;
        Some(v)
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }
}

/// A pass-through hasher for keys that are already uniformly distributed hashes.
#[derive(Default)]
pub(super) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used; fold anything else in so the hasher stays total.
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The ids sharing one key: almost always one (a CANCEL shares its INVITE's branch).
enum Bucket {
    One(u64),
    Many(Vec<u64>),
}

/// A multimap from a precomputed 64-bit hash to transaction ids.
#[derive(Default)]
pub(super) struct Index {
    map: HashMap<u64, Bucket, BuildHasherDefault<PreHashed>>,
}

impl Index {
    pub(super) fn insert(&mut self, key: u64, id: u64) {
        match self.map.entry(key) {
            MapEntry::Vacant(v) => {
                v.insert(Bucket::One(id));
            }
            MapEntry::Occupied(mut o) => {
                let b = o.get_mut();
                match b {
                    Bucket::One(first) => {
                        let first = *first;
                        *b = Bucket::Many(vec![first, id]);
                    }
                    Bucket::Many(v) => v.push(id),
                }
            }
        }
    }

    pub(super) fn remove(&mut self, key: u64, id: u64) {
        // One probe: the entry API finds the bucket and removes it in place.
        let MapEntry::Occupied(mut e) = self.map.entry(key) else {
            return;
        };
        let now_empty = match e.get_mut() {
            Bucket::One(x) => *x == id,
            Bucket::Many(v) => {
                v.retain(|x| *x != id);
                if let [only] = v.as_slice() {
                    let only = *only;
                    *e.get_mut() = Bucket::One(only);
                }
                false
            }
        };
        if now_empty {
            e.remove();
        }
    }

    pub(super) fn get(&self, key: u64) -> &[u64] {
        match self.map.get(&key) {
            None => &[],
            Some(Bucket::One(x)) => std::slice::from_ref(x),
            Some(Bucket::Many(v)) => v,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_ids_are_generational() {
        let mut s = Slab::new();
        let a = s.insert("a");
        assert_eq!(s.get(a), Some(&"a"));
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.get(a), None);
        let b = s.insert("b");
        assert_ne!(a, b, "a reused slot gets a new generation");
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn index_buckets_grow_and_shrink() {
        let mut i = Index::default();
        i.insert(7, 1);
        i.insert(7, 2);
        assert_eq!(i.get(7), &[1, 2]);
        i.remove(7, 1);
        assert_eq!(i.get(7), &[2]);
        i.remove(7, 2);
        assert!(i.get(7).is_empty());
        assert_eq!(i.len(), 0);
        i.remove(9, 1);
    }
}
