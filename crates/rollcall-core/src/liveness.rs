//! Connection liveness: last heartbeat per connection, bucketed expiry deadlines, and the ids
//! of the presences each connection holds.
//!
//! A heartbeat only overwrites `last_beat` (O(1), no timer moves). Each connection has one
//! entry in the deadline buckets; when it pops, the connection either expired
//! (`last_beat + timeout ≤ now`) or is re-armed at its true deadline. So a connection costs at
//! most one timer operation per timeout period, and a tick costs O(entries due).
//!
//! Records are 24 bytes in a slab; a `u32`-only hash index finds them by [`ConnId`].

use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use smallvec::{SmallVec, smallvec};

use crate::config::Config;
use crate::error::ConnectError;
use crate::ids::ConnId;
use crate::index::IdIndex;
use crate::slab::{NONE, Slab};
use crate::time::Millis;
use crate::timer::{Deadlines, token};

/// Set in [`ConnRecord::tracks`] when it indexes a list of presences rather than being one.
const MANY: u32 = 1 << 31;

/// The seed of a shard's index hasher. The engine picks a connection's shard from the low
/// bits of a hash seeded with `ref_seed`; the index picks its chunk from the low bits too, so
/// with the same seed every connection of a shard would share those bits and crowd a 64th of
/// the chunks (long probe runs, one cache miss per chunk). A different seed decorrelates them.
fn index_seed(seed: u64) -> u64 {
    seed ^ 0x9e37_79b9_7f4a_7c15
}

/// One open connection.
#[derive(Debug, Default)]
pub(crate) struct ConnRecord {
    id: u64,
    pub(crate) last_beat: Millis,
    /// Token of the live expiry deadline; 0 marks a free slot.
    bucket: u32,
    /// `NONE`, one presence id, or `MANY | i` with `i` indexing the shard's lists.
    tracks: u32,
}

/// A closed or expired connection: what the engine needs to remove its presences.
#[derive(Debug)]
pub(crate) struct Gone {
    pub(crate) conn: ConnId,
    pub(crate) last_beat: Millis,
    pub(crate) presences: SmallVec<[u32; 4]>,
}

/// One shard's connections.
#[derive(Debug)]
pub(crate) struct ConnShard {
    records: Slab<ConnRecord>,
    index: IdIndex,
    hasher: FixedState,
    /// Presence lists of connections holding more than one presence.
    lists: Slab<Vec<u32>>,
    deadlines: Deadlines<u32>,
}

impl ConnShard {
    pub(crate) fn new(cfg: &Config) -> Self {
        ConnShard {
            records: Slab::default(),
            index: IdIndex::default(),
            hasher: FixedState::with_seed(index_seed(cfg.ref_seed)),
            lists: Slab::default(),
            deadlines: Deadlines::new(cfg.timer_granularity),
        }
    }

    /// The slot of `conn`, if open.
    pub(crate) fn find(&self, conn: ConnId) -> Option<u32> {
        let records = &self.records;
        self.index.find(self.hasher.hash_one(conn.0), |s| {
            records.get(s).id == conn.0
        })
    }

    pub(crate) fn connect(
        &mut self,
        conn: ConnId,
        now: Millis,
        cfg: &Config,
    ) -> Result<(), ConnectError> {
        if self.find(conn).is_some() {
            return Err(ConnectError::AlreadyConnected(conn));
        }
        let slot = self.records.insert(ConnRecord {
            id: conn.0,
            last_beat: now,
            bucket: 0,
            tracks: NONE,
        });
        let bucket = token(self.deadlines.schedule(now + cfg.expiry_timeout(), slot));
        self.records.get_mut(slot).bucket = bucket;
        let (records, hasher) = (&self.records, &self.hasher);
        self.index.insert(hasher.hash_one(conn.0), slot, |s| {
            hasher.hash_one(records.get(s).id)
        });
        Ok(())
    }

    /// Records inbound traffic; false if the connection is unknown (closed or expired).
    pub(crate) fn heartbeat(&mut self, conn: ConnId, now: Millis) -> bool {
        match self.find(conn) {
            Some(slot) => {
                self.beat(slot, now);
                true
            }
            None => false,
        }
    }

    /// Moves the last heartbeat of `slot` forward to `now`.
    pub(crate) fn beat(&mut self, slot: u32, now: Millis) {
        let r = self.records.get_mut(slot);
        r.last_beat = r.last_beat.max(now);
    }

    /// The presence ids `slot` holds.
    pub(crate) fn presences(&self, slot: u32) -> &[u32] {
        let r = self.records.get(slot);
        match r.tracks {
            NONE => &[],
            t if t & MANY != 0 => self.lists.get(t & !MANY),
            _ => std::slice::from_ref(&r.tracks),
        }
    }

    /// Adds presence `p` to `slot`'s list.
    pub(crate) fn add_presence(&mut self, slot: u32, p: u32) {
        let t = self.records.get(slot).tracks;
        if t == NONE {
            self.records.get_mut(slot).tracks = p;
        } else if t & MANY != 0 {
            self.lists.get_mut(t & !MANY).push(p);
        } else {
            let list = self.lists.insert(vec![t, p]);
            self.records.get_mut(slot).tracks = MANY | list;
        }
    }

    /// Removes presence `p` from `slot`'s list.
    pub(crate) fn remove_presence(&mut self, slot: u32, p: u32) {
        let t = self.records.get(slot).tracks;
        if t == p {
            self.records.get_mut(slot).tracks = NONE;
        } else if t != NONE && t & MANY != 0 {
            let list = self.lists.get_mut(t & !MANY);
            list.retain(|&x| x != p);
            if list.len() == 1 {
                let last = list[0];
                self.lists.remove(t & !MANY);
                self.records.get_mut(slot).tracks = last;
            }
        }
    }

    /// Closes `slot`, returning what its presences need to leave.
    fn take(&mut self, slot: u32) -> Gone {
        let r = self.records.remove(slot);
        let hash = self.hasher.hash_one(r.id);
        self.index.remove(hash, slot);
        let presences = match r.tracks {
            NONE => SmallVec::new(),
            t if t & MANY != 0 => SmallVec::from_vec(self.lists.remove(t & !MANY)),
            t => smallvec![t],
        };
        Gone {
            conn: ConnId(r.id),
            last_beat: r.last_beat,
            presences,
        }
    }

    /// Closes `conn` if open.
    pub(crate) fn remove(&mut self, conn: ConnId) -> Option<Gone> {
        self.find(conn).map(|slot| self.take(slot))
    }

    /// Removes and returns connections silent for the expiry timeout at `now`.
    pub(crate) fn pop_expired(&mut self, now: Millis, cfg: &Config, out: &mut Vec<Gone>) {
        let mut due = Vec::new();
        self.deadlines.pop_due(now, &mut due);
        let timeout = cfg.expiry_timeout();
        for (bucket, slot) in due {
            let record = self.records.get(slot);
            if record.bucket == 0 || record.bucket != token(bucket) {
                continue; // closed since it was scheduled, or re-armed
            }
            let deadline = record.last_beat + timeout;
            if deadline <= now {
                out.push(self.take(slot));
            } else {
                let t = token(self.deadlines.schedule(deadline, slot));
                self.records.get_mut(slot).bucket = t;
            }
        }
    }

    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.deadlines.next_due()
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            heartbeat_interval: Millis(10),
            missed_heartbeats: 3,
            timer_granularity: Millis(1),
            ..Config::default()
        }
    }

    #[test]
    fn a_shards_index_buckets_do_not_inherit_the_shard_choice() {
        // The engine's shard choice: low bits of a hash seeded with `ref_seed`.
        let shard_of = FixedState::with_seed(0);
        let index = FixedState::with_seed(index_seed(0));
        let low_bits: std::collections::HashSet<u64> = (0..100_000u64)
            .filter(|c| shard_of.hash_one(c) % 64 == 0)
            .map(|c| index.hash_one(c) % 64)
            .collect();
        // With the shard's own seed every one of them would share the same low bits.
        assert_eq!(low_bits.len(), 64);
    }

    #[test]
    fn a_silent_connection_expires_at_interval_times_missed() {
        let cfg = cfg();
        let mut s = ConnShard::new(&cfg);
        s.connect(ConnId(1), Millis(0), &cfg).unwrap();
        let mut out = Vec::new();
        s.pop_expired(Millis(29), &cfg, &mut out);
        assert!(out.is_empty());
        s.pop_expired(Millis(30), &cfg, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn heartbeats_push_the_deadline_back() {
        let cfg = cfg();
        let mut s = ConnShard::new(&cfg);
        s.connect(ConnId(1), Millis(0), &cfg).unwrap();
        assert!(s.heartbeat(ConnId(1), Millis(20)));
        let mut out = Vec::new();
        s.pop_expired(Millis(30), &cfg, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.next_due(), Some(Millis(50)));
        s.pop_expired(Millis(50), &cfg, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn duplicate_connect_is_refused_and_unknown_heartbeat_reported() {
        let cfg = cfg();
        let mut s = ConnShard::new(&cfg);
        s.connect(ConnId(1), Millis(0), &cfg).unwrap();
        assert_eq!(
            s.connect(ConnId(1), Millis(0), &cfg),
            Err(ConnectError::AlreadyConnected(ConnId(1)))
        );
        assert!(!s.heartbeat(ConnId(2), Millis(1)));
    }

    #[test]
    fn presence_lists_grow_spill_and_shrink_back() {
        let cfg = cfg();
        let mut s = ConnShard::new(&cfg);
        s.connect(ConnId(7), Millis(0), &cfg).unwrap();
        let slot = s.find(ConnId(7)).unwrap();
        assert!(s.presences(slot).is_empty());
        s.add_presence(slot, 4);
        s.add_presence(slot, 9);
        s.add_presence(slot, 2);
        assert_eq!(s.presences(slot), &[4, 9, 2]);
        s.remove_presence(slot, 9);
        s.remove_presence(slot, 4);
        assert_eq!(s.presences(slot), &[2]);
        let gone = s.remove(ConnId(7)).unwrap();
        assert_eq!(
            (gone.conn, gone.presences.as_slice()),
            (ConnId(7), &[2][..])
        );
        assert!(s.find(ConnId(7)).is_none());
    }
}
