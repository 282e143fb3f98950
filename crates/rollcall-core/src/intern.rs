//! One arena for the text of every presence key, so a key record names its key with a `u32`
//! offset instead of a pointer to its own allocation.
//!
//! Each string is stored as a LEB128 length followed by its UTF-8 bytes. Removing a string
//! only counts its bytes as dead; the owner compacts (copies the live strings into a fresh
//! arena) once more than half of the arena is dead, so the cost is O(1) amortised per string.

use crate::slab::reserve_gently;

/// The arena: strings appended back to back.
#[derive(Debug, Default)]
pub(crate) struct Names {
    bytes: Vec<u8>,
    dead: usize,
}

impl Names {
    /// Appends `s` and returns its offset.
    pub(crate) fn push(&mut self, s: &str) -> u32 {
        let off = u32::try_from(self.bytes.len()).expect("key arena under 4 GiB");
        reserve_gently(&mut self.bytes, s.len() + 5);
        let mut n = s.len();
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.bytes.push(low);
                break;
            }
            self.bytes.push(low | 0x80);
        }
        self.bytes.extend_from_slice(s.as_bytes());
        off
    }

    /// (start, end) of the text stored at `off`.
    fn span(&self, off: u32) -> (usize, usize) {
        let mut i = off as usize;
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let b = self.bytes[i];
            i += 1;
            len |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return (i, i + len);
            }
            shift += 7;
        }
    }

    /// The bytes of the string stored at `off` (for hashing and comparing).
    pub(crate) fn bytes(&self, off: u32) -> &[u8] {
        let (start, end) = self.span(off);
        &self.bytes[start..end]
    }

    /// The string stored at `off`.
    pub(crate) fn get(&self, off: u32) -> &str {
        std::str::from_utf8(self.bytes(off)).expect("stored from a &str")
    }

    /// Marks the string at `off` as dead.
    pub(crate) fn release(&mut self, off: u32) {
        let (_, end) = self.span(off);
        self.dead += end - off as usize;
    }

    /// Whether enough is dead that compacting pays off.
    pub(crate) fn wants_compaction(&self) -> bool {
        self.dead > 4096 && self.dead * 2 > self.bytes.len()
    }

    /// Heap bytes held (for tests).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_whatever_their_length() {
        let mut n = Names::default();
        let long = "é".repeat(300);
        let a = n.push("alice");
        let b = n.push(&long);
        let c = n.push("");
        assert_eq!(n.get(a), "alice");
        assert_eq!(n.get(b), long);
        assert_eq!(n.get(c), "");
    }

    #[test]
    fn released_bytes_ask_for_compaction_once_most_are_dead() {
        let mut n = Names::default();
        let offs: Vec<u32> = (0..1000).map(|i| n.push(&format!("key-{i:05}"))).collect();
        assert!(!n.wants_compaction());
        for &o in &offs[..400] {
            n.release(o);
        }
        assert!(!n.wants_compaction());
        for &o in &offs[400..600] {
            n.release(o);
        }
        assert!(n.wants_compaction());
        assert!(n.capacity() >= 1000 * 10);
    }
}
