//! A hash index of bare `u32` ids (the record an id points at holds the text or number it is
//! looked up by), laid out so that a lookup reads one cache line.
//!
//! hashbrown keeps its tag bytes and its entries in two separate arrays, so at a million
//! entries a lookup misses the cache twice (tags, then the entry) and an insert a third time.
//! Here the table is an array of 64-byte chunks, each holding 12 ids beside their 8-bit tags:
//! a lookup reads the home chunk, compares tags and only then asks the caller to compare the
//! record. A chunk that filled up counts the entries that went past it, so a lookup stops at
//! the first chunk with no such entry, and removal leaves no tombstone (it decrements the
//! counts along the way instead). It costs 64 B per 12 slots and grows by doubling at 7/8
//! full, about the same bytes as hashbrown's 5 B per bucket.

/// Ids per chunk.
const SLOTS: usize = 12;

/// One cache line: 12 tags (0 = empty slot), the overflow count, 12 ids.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Chunk {
    tags: [u8; SLOTS],
    /// Entries whose probe passed this chunk because it was full.
    overflow: u32,
    ids: [u32; SLOTS],
}

/// 0x01 in each of the 12 tag bytes.
const ONES: u128 = 0x0101_0101_0101_0101_0101_0101;
/// 0x7f in each of the 12 tag bytes.
const LOW7: u128 = ONES * 0x7f;

impl Chunk {
    /// The slots holding `tag` (0: the empty ones), as the top bit of byte `i` for slot `i`;
    /// compared eight bytes at a time (the classic exact zero-byte test on `tags ^ tag`).
    fn matching(&self, tag: u8) -> u128 {
        let t = &self.tags;
        let lo = u64::from_le_bytes([t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]]);
        let hi = u32::from_le_bytes([t[8], t[9], t[10], t[11]]);
        let x = (u128::from(lo) | u128::from(hi) << 64) ^ (ONES * u128::from(tag));
        !(((x & LOW7) + LOW7) | x | LOW7) & (ONES << 7)
    }
}

/// The slot of the lowest match in a [`Chunk::matching`] mask.
fn first(m: u128) -> usize {
    (m.trailing_zeros() / 8) as usize
}

/// The index. Hashes are the caller's (64 bits; the home chunk comes from the low bits, the
/// tag from the top byte), and every call that may grow the table takes a closure giving the
/// hash of an id already in it.
#[derive(Default)]
pub(crate) struct IdIndex {
    chunks: Vec<Chunk>,
    len: usize,
}

impl std::fmt::Debug for IdIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdIndex")
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

fn tag_of(hash: u64) -> u8 {
    ((hash >> 56) as u8).max(1)
}

impl IdIndex {
    fn mask(&self) -> usize {
        self.chunks.len() - 1
    }

    /// Number of ids.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The id stored under `hash` for which `eq` holds.
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.chunks.is_empty() {
            return None;
        }
        let tag = tag_of(hash);
        let mut i = hash as usize & self.mask();
        // Bounded by the number of chunks: removals can leave every count above zero.
        for _ in 0..self.chunks.len() {
            let chunk = &self.chunks[i];
            let mut m = chunk.matching(tag);
            while m != 0 {
                let id = chunk.ids[first(m)];
                if eq(id) {
                    return Some(id);
                }
                m &= m - 1;
            }
            if chunk.overflow == 0 {
                return None;
            }
            i = (i + 1) & self.mask();
        }
        None
    }

    /// Whether the next insert would grow the table (and so call its closure).
    pub(crate) fn is_full(&self) -> bool {
        self.len >= self.chunks.len() * SLOTS * 7 / 8
    }

    /// Doubles the table, re-placing every id by `hash_of(id)`.
    pub(crate) fn grow(&mut self, hash_of: impl Fn(u32) -> u64) {
        let n = (self.chunks.len() * 2).max(1);
        let old = std::mem::replace(&mut self.chunks, vec![Chunk::default(); n]);
        for chunk in &old {
            for (&t, &id) in chunk.tags.iter().zip(&chunk.ids) {
                if t != 0 {
                    self.place(hash_of(id), id);
                }
            }
        }
    }

    /// Adds `id` under `hash` (the caller knows it is absent); `hash_of` gives the hash of
    /// any id already stored, in case the table grows.
    pub(crate) fn insert(&mut self, hash: u64, id: u32, hash_of: impl Fn(u32) -> u64) {
        if self.is_full() {
            self.grow(hash_of);
        }
        self.place(hash, id);
        self.len += 1;
    }

    fn place(&mut self, hash: u64, id: u32) {
        let tag = tag_of(hash);
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let chunk = &mut self.chunks[i];
            let free = chunk.matching(0);
            if free != 0 {
                let s = first(free);
                chunk.tags[s] = tag;
                chunk.ids[s] = id;
                return;
            }
            chunk.overflow += 1;
            i = (i + 1) & mask;
        }
    }

    /// Removes `id`, stored under `hash`. Returns whether it was there.
    pub(crate) fn remove(&mut self, hash: u64, id: u32) -> bool {
        if self.chunks.is_empty() {
            return false;
        }
        let tag = tag_of(hash);
        let mask = self.mask();
        let home = hash as usize & mask;
        let mut i = home;
        for _ in 0..self.chunks.len() {
            let chunk = &mut self.chunks[i];
            let mut m = chunk.matching(tag);
            while m != 0 && chunk.ids[first(m)] != id {
                m &= m - 1;
            }
            if m != 0 {
                let s = first(m);
                chunk.tags[s] = 0;
                let mut j = home;
                while j != i {
                    self.chunks[j].overflow -= 1;
                    j = (j + 1) & mask;
                }
                self.len -= 1;
                return true;
            }
            if chunk.overflow == 0 {
                return false;
            }
            i = (i + 1) & mask;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A poor hash, so chunks overflow and probes run long.
    fn h(id: u32) -> u64 {
        u64::from(id % 97).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    #[test]
    fn a_chunk_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Chunk>(), 64);
        assert_eq!(std::mem::align_of::<Chunk>(), 64);
    }

    #[test]
    fn tag_matching_is_exact_for_every_byte_value() {
        let mut chunk = Chunk::default();
        for round in 0..64u32 {
            for (i, t) in chunk.tags.iter_mut().enumerate() {
                *t = (round * 37 + i as u32 * 101) as u8 ^ (round as u8 & 0x81);
            }
            for tag in 0..=255u8 {
                let m = chunk.matching(tag);
                for (i, &t) in chunk.tags.iter().enumerate() {
                    assert_eq!(m >> (8 * i + 7) & 1 == 1, t == tag, "{tag} at {i}");
                }
                assert_eq!(m & !(ONES << 7), 0);
            }
        }
    }

    #[test]
    fn ids_are_found_removed_and_reinserted_under_heavy_collisions() {
        let mut ix = IdIndex::default();
        assert_eq!(ix.find(h(1), |_| true), None);
        assert!(!ix.remove(h(1), 1));
        for id in 0..3000 {
            ix.insert(h(id), id, h);
        }
        assert_eq!(ix.len(), 3000);
        for id in (0..3000).step_by(3) {
            assert!(ix.remove(h(id), id));
            assert!(!ix.remove(h(id), id));
        }
        assert_eq!(ix.len(), 2000);
        for id in 0..3000 {
            let want = (id % 3 != 0).then_some(id);
            assert_eq!(ix.find(h(id), |x| x == id), want, "{id}");
        }
        for id in (0..3000).step_by(3) {
            ix.insert(h(id), id, h);
        }
        for id in 0..3000 {
            assert_eq!(ix.find(h(id), |x| x == id), Some(id));
        }
        // Every overflow count is back to what the live entries need.
        for id in 0..3000 {
            assert!(ix.remove(h(id), id));
        }
        assert_eq!(ix.len(), 0);
        assert!(ix.chunks.iter().all(|c| c.overflow == 0));
    }

    proptest::proptest! {
        /// Any sequence of inserts and removes, under a hash with `distinct` values (1: every
        /// id in one probe run through full chunks), leaves exactly the ids a set would hold.
        #[test]
        fn it_agrees_with_a_set(
            distinct in 1u32..120,
            ops in proptest::collection::vec((0u32..400, proptest::bool::ANY), 0..1500),
        ) {
            let hash = |id: u32| u64::from(id % distinct).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut ix = IdIndex::default();
            let mut set = std::collections::HashSet::new();
            for (id, add) in ops {
                if add && set.insert(id) {
                    ix.insert(hash(id), id, hash);
                } else if !add {
                    proptest::prop_assert_eq!(ix.remove(hash(id), id), set.remove(&id));
                }
                proptest::prop_assert_eq!(ix.len(), set.len());
            }
            for id in 0..400 {
                let want = set.contains(&id).then_some(id);
                proptest::prop_assert_eq!(ix.find(hash(id), |x| x == id), want);
            }
        }
    }

    #[test]
    fn it_grows_at_seven_eighths_full() {
        let mut ix = IdIndex::default();
        ix.insert(0, 0, h);
        assert_eq!(ix.chunks.len(), 1);
        for id in 1..11 {
            ix.insert(h(id), id, h);
        }
        assert_eq!(ix.chunks.len(), 2);
    }
}
