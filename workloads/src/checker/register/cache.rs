//! The visited cache of the search: a set of (linearized-ops bitset, register state) pairs.
//!
//! Bitsets are stored compactly: all words before the first word that is not all ones are
//! implied (`base` words of ones), and trailing zero words are dropped. Operations are numbered
//! in invocation order and the search linearizes early operations first, so the stored part
//! (the "frontier") stays about as wide as the history's concurrency, not its length.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in for safety.
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

const NONE: u32 = u32::MAX;

struct Entry {
    start: usize,
    len: u32,
    base: u32,
    state: u32,
    /// Next entry with the same hash (a chain), or `NONE`.
    next: u32,
}

/// A set of (bitset, state) pairs; see the module doc for the representation.
#[derive(Default)]
pub(super) struct Cache {
    heads: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    entries: Vec<Entry>,
    words: Vec<u64>,
}

fn hash(base: u32, words: &[u64], state: u32) -> u64 {
    let mut h = (u64::from(base) << 32 | u64::from(state)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for &w in words {
        h = (h.rotate_left(23) ^ w).wrapping_mul(0x517C_C1B7_2722_0A95);
    }
    // final avalanche (murmur3 fmix64)
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

impl Cache {
    /// Adds the pair; returns `true` if it was not there before. `base` counts the leading
    /// all-ones words left out of `words`.
    pub(super) fn insert(&mut self, base: u32, words: &[u64], state: u32) -> bool {
        let h = hash(base, words, state);
        let head = self.heads.get(&h).copied().unwrap_or(NONE);
        let mut cur = head;
        while cur != NONE {
            let e = &self.entries[cur as usize];
            if e.base == base
                && e.state == state
                && &self.words[e.start..e.start + e.len as usize] == words
            {
                return false;
            }
            cur = e.next;
        }
        let id = self.entries.len() as u32;
        self.entries.push(Entry {
            start: self.words.len(),
            len: words.len() as u32,
            base,
            state,
            next: head,
        });
        self.words.extend_from_slice(words);
        self.heads.insert(h, id);
        true
    }

    /// Number of pairs stored.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Approximate heap bytes held (capacities, not lengths: what the allocator gave us).
    pub(super) fn bytes(&self) -> usize {
        self.words.capacity() * 8
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.heads.capacity() * (8 + 4 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_reports_new_pairs_only() {
        let mut c = Cache::default();
        assert!(c.insert(0, &[1, 2], 0));
        assert!(!c.insert(0, &[1, 2], 0));
        assert!(c.insert(0, &[1, 2], 1));
        assert!(c.insert(1, &[1, 2], 0));
        assert!(c.insert(0, &[1], 0));
        assert!(c.insert(0, &[], 0));
        assert!(!c.insert(0, &[], 0));
        assert_eq!(c.len(), 5);
        assert!(c.bytes() > 0);
    }
}
