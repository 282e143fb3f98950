//! Dense storage indexed by `u32` ids: [`Slab`] and the gentle growth policy every large
//! vector of the engine uses.
//!
//! Records live in one `Vec` each and refer to each other by `u32` index instead of by
//! pointer or hashed key, so a record costs its own bytes and nothing else (no hash-table
//! slack, no per-record allocation). Freed slots are reused before the vector grows.

/// Sentinel for "no id" in `u32` link fields.
pub(crate) const NONE: u32 = u32::MAX;

/// Makes room for `additional` more items, growing by about 1/8 of the length instead of
/// doubling, so a large vector wastes at most ~12% of its bytes. Large reallocations are
/// usually done in place by the system allocator, so the extra copies stay cheap.
pub(crate) fn reserve_gently<T>(v: &mut Vec<T>, additional: usize) {
    if v.capacity() - v.len() < additional {
        let step = (v.len() / 8).max(additional).max(8);
        v.reserve_exact(step);
    }
}

/// A vector of records with a free list; ids stay valid until removed.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    items: Vec<T>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T: Default> Slab<T> {
    /// Stores `item` and returns its id (a freed one when available).
    pub(crate) fn insert(&mut self, item: T) -> u32 {
        if let Some(id) = self.free.pop() {
            self.items[id as usize] = item;
            return id;
        }
        reserve_gently(&mut self.items, 1);
        let id = u32::try_from(self.items.len()).expect("fewer than 2^32 records");
        assert!(id != NONE, "fewer than 2^32 - 1 records");
        self.items.push(item);
        id
    }

    /// Frees `id` and returns its record (the slot is left holding `T::default()`).
    pub(crate) fn remove(&mut self, id: u32) -> T {
        reserve_gently(&mut self.free, 1);
        self.free.push(id);
        std::mem::take(&mut self.items[id as usize])
    }

    /// The record at `id` (a default one if `id` was freed).
    pub(crate) fn get(&self, id: u32) -> &T {
        &self.items[id as usize]
    }

    /// The record at `id`, mutably.
    pub(crate) fn get_mut(&mut self, id: u32) -> &mut T {
        &mut self.items[id as usize]
    }

    /// Number of live records.
    pub(crate) fn len(&self) -> usize {
        self.items.len() - self.free.len()
    }

    /// Every slot in id order, freed ones included.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    /// Every slot, mutably, freed ones included.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.items.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_ids_are_reused_before_growing() {
        let mut s: Slab<u64> = Slab::default();
        let a = s.insert(10);
        let b = s.insert(20);
        assert_eq!((a, b), (0, 1));
        assert_eq!(s.remove(a), 10);
        assert_eq!(s.len(), 1);
        assert_eq!(s.insert(30), a);
        assert_eq!(*s.get(a), 30);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn growth_is_gentle_for_large_vectors() {
        let mut v: Vec<u32> = Vec::new();
        for i in 0..100_000 {
            reserve_gently(&mut v, 1);
            v.push(i);
        }
        assert!(
            v.capacity() <= v.len() + v.len() / 8 + 8,
            "{}",
            v.capacity()
        );
    }
}
