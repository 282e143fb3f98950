//! Interned keys: each known key has a `u32` id, a 32-byte [`KeyState`] in a slab and its
//! text once in the [`Names`] arena. A hash index of bare ids finds a key by its text; every
//! other structure refers to the key by id.

use std::hash::BuildHasher;

use foldhash::fast::FixedState;

use crate::index::IdIndex;
use crate::intern::Names;
use crate::output::Status;
use crate::slab::{NONE, Slab};
use crate::time::Millis;
use crate::timer::TOKEN_MASK;

/// One known key. The status shares a word with the token of the key's live timer: the idle
/// check while online or idle, the forget deadline while offline (0: none armed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyState {
    pub(crate) last_seen: Millis,
    pub(crate) last_activity: Millis,
    /// Offset of the key's text in the arena; `NONE` while the slot is free.
    pub(crate) name: u32,
    /// First presence of this key in the presence table's per-key chain (`NONE`: no presence).
    pub(crate) head: u32,
    /// Distinct connections holding a presence of the key.
    pub(crate) conns: u32,
    pub(crate) timer: u32,
}

impl Default for KeyState {
    fn default() -> Self {
        KeyState {
            last_seen: Millis::ZERO,
            last_activity: Millis::ZERO,
            name: NONE,
            head: NONE,
            conns: 0,
            timer: pack(Status::Offline, 0),
        }
    }
}

pub(crate) fn pack(status: Status, token: u32) -> u32 {
    let s = match status {
        Status::Online => 0,
        Status::Idle => 1,
        Status::Offline => 2,
    };
    (s << 30) | token
}

impl KeyState {
    pub(crate) fn status(&self) -> Status {
        match self.timer >> 30 {
            0 => Status::Online,
            1 => Status::Idle,
            _ => Status::Offline,
        }
    }
    pub(crate) fn token(&self) -> u32 {
        self.timer & TOKEN_MASK
    }
    pub(crate) fn set_status(&mut self, s: Status) {
        self.timer = pack(s, self.token());
    }
    pub(crate) fn set_token(&mut self, t: u32) {
        self.timer = pack(self.status(), t);
    }
}

/// The key records, their text and the index from text to id.
#[derive(Debug)]
pub(crate) struct KeyIds {
    names: Names,
    states: Slab<KeyState>,
    index: IdIndex,
    hasher: FixedState,
}

impl KeyIds {
    pub(crate) fn new(seed: u64) -> Self {
        KeyIds {
            names: Names::default(),
            states: Slab::default(),
            index: IdIndex::default(),
            hasher: FixedState::with_seed(seed),
        }
    }

    /// The index hash of `key`: 32 bits, repeated in both halves of the word (the index picks
    /// the chunk from the low bits and a tag from the top byte), so a growing index can be fed
    /// hashes from a 4-byte-per-key scratch table instead of re-reading every key's text.
    pub(crate) fn hash(&self, key: &str) -> u64 {
        spread(self.hash32(key.as_bytes()))
    }

    fn hash32(&self, text: &[u8]) -> u32 {
        hash32(&self.hasher, text)
    }

    /// The id of `key`, if known.
    pub(crate) fn find(&self, key: &str) -> Option<u32> {
        self.find_hashed(key, self.hash(key))
    }

    /// The id of `key`, whose [`KeyIds::hash`] is `hash`, if known.
    pub(crate) fn find_hashed(&self, key: &str, hash: u64) -> Option<u32> {
        let (names, states) = (&self.names, &self.states);
        self.index.find(hash, |id| {
            names.bytes(states.get(id).name) == key.as_bytes()
        })
    }

    /// The id of `key`, creating an offline record seen at `now` if it is new.
    #[cfg(test)]
    pub(crate) fn intern(&mut self, key: &str, now: Millis) -> u32 {
        let hash = self.hash(key);
        match self.find_hashed(key, hash) {
            Some(id) => id,
            None => self.insert_new(key, hash, now),
        }
    }

    /// Creates an offline record seen at `now` for `key` (not known yet; `hash` is its
    /// [`KeyIds::hash`]) and returns its id.
    pub(crate) fn insert_new(&mut self, key: &str, hash: u64, now: Millis) -> u32 {
        debug_assert!(
            self.find_hashed(key, hash).is_none(),
            "key already interned"
        );
        self.make_room();
        let id = self.states.insert(KeyState {
            last_seen: now,
            last_activity: now,
            name: self.names.push(key),
            ..KeyState::default()
        });
        // `make_room` left room, so this never re-hashes (the closure is not called).
        let (names, states, hasher) = (&self.names, &self.states, &self.hasher);
        self.index.insert(hash, id, |i| {
            spread(hash32(hasher, names.bytes(states.get(i).name)))
        });
        id
    }

    /// Makes room in the index for one more key. Growing it re-hashes every entry; through
    /// the text, that reads each key's record and then its text in index order, two cache
    /// misses per key at scale. Instead, hash every key once in id order (the records and the
    /// arena are read front to back) into a scratch table, and grow from that.
    fn make_room(&mut self) {
        if !self.index.is_full() {
            return;
        }
        let hashes: Vec<u32> = self
            .states
            .iter()
            .map(|s| match s.name {
                NONE => 0,
                name => self.hash32(self.names.bytes(name)),
            })
            .collect();
        self.index.grow(|id| spread(hashes[id as usize]));
    }

    /// The text of key `id`.
    pub(crate) fn name(&self, id: u32) -> &str {
        self.names.get(self.states.get(id).name)
    }

    pub(crate) fn get(&self, id: u32) -> &KeyState {
        self.states.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> &mut KeyState {
        self.states.get_mut(id)
    }

    /// Known keys.
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }

    /// Forgets key `id`: its record, index entry and text (compacting the arena once most
    /// of it is dead).
    pub(crate) fn forget(&mut self, id: u32) {
        let name = self.states.get(id).name;
        let hash = spread(self.hash32(self.names.bytes(name)));
        self.index.remove(hash, id);
        self.names.release(name);
        self.states.remove(id);
        if self.names.wants_compaction() {
            let mut fresh = Names::default();
            for state in self.states.iter_mut() {
                if state.name != NONE {
                    state.name = fresh.push(self.names.get(state.name));
                }
            }
            self.names = fresh;
        }
    }
}

fn hash32(hasher: &FixedState, text: &[u8]) -> u32 {
    let h = hasher.hash_one(text);
    (h ^ (h >> 32)) as u32
}

/// A 32-bit key hash as the index's 64-bit hash (see [`KeyIds::hash`]).
fn spread(h: u32) -> u64 {
    u64::from(h) * 0x1_0000_0001
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_get_stable_ids_and_forgotten_ones_are_reused() {
        let mut ids = KeyIds::new(0);
        let a = ids.intern("alice", Millis(1));
        let b = ids.intern("bob", Millis(2));
        assert_eq!(ids.intern("alice", Millis(3)), a);
        assert_eq!((ids.name(a), ids.name(b)), ("alice", "bob"));
        assert_eq!(ids.get(a).last_seen, Millis(1));
        ids.forget(a);
        assert_eq!(ids.find("alice"), None);
        assert_eq!(ids.find("bob"), Some(b));
        assert_eq!(ids.intern("carol", Millis(4)), a);
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn compaction_keeps_every_live_key_findable() {
        let mut ids = KeyIds::new(7);
        let all: Vec<u32> = (0..2000)
            .map(|i| ids.intern(&format!("key-{i:06}"), Millis(0)))
            .collect();
        for &id in all.iter().step_by(2).chain(all.iter().skip(1).step_by(4)) {
            ids.forget(id);
        }
        for (i, &id) in all.iter().enumerate().skip(3).step_by(4) {
            let name = format!("key-{i:06}");
            assert_eq!(ids.find(&name), Some(id));
            assert_eq!(ids.name(id), name);
        }
        assert_eq!(ids.len(), 500);
    }

    #[test]
    fn keys_stay_findable_across_growth_and_tombstone_clearing() {
        let mut ids = KeyIds::new(3);
        let mut live = Vec::new();
        for i in 0..5000 {
            let name = format!("k{i}");
            live.push((ids.intern(&name, Millis(0)), name));
            if i % 3 == 0 {
                let (id, _) = live.remove(live.len() / 2);
                ids.forget(id);
            }
        }
        for (id, name) in &live {
            assert_eq!(ids.find(name), Some(*id));
        }
        assert_eq!(ids.len(), live.len());
    }

    #[test]
    fn status_and_timer_token_share_a_word() {
        let mut s = KeyState::default();
        assert_eq!((s.status(), s.token()), (Status::Offline, 0));
        s.set_token(TOKEN_MASK);
        s.set_status(Status::Idle);
        assert_eq!((s.status(), s.token()), (Status::Idle, TOKEN_MASK));
        s.set_token(5);
        assert_eq!((s.status(), s.token()), (Status::Idle, 5));
    }
}
