//! The engine's read side and watch sets: listing a topic, status queries, watches and stats.

use std::sync::atomic::Ordering;

use crate::diff::PresenceView;
use crate::engine::{Engine, Stats, lock};
use crate::error::QueryError;
use crate::ids::{Key, WatchId};
use crate::output::KeyStatus;
use crate::time::Millis;

impl Engine {
    /// Every presence in `topic`, grouped by key.
    pub fn list(&self, topic: &str) -> Vec<(Key, Vec<PresenceView>)> {
        lock(&self.table).list(topic)
    }

    /// The presences of `key` in `topic`.
    pub fn get(&self, topic: &str, key: &str) -> Vec<PresenceView> {
        lock(&self.table).get(topic, key)
    }

    /// Writes `topic`'s `presence_state` payload JSON into `out`.
    pub fn write_state_json(&self, topic: &str, out: &mut Vec<u8>) {
        lock(&self.table).write_state_json(topic, out);
    }

    /// Number of keys present in `topic`.
    pub fn key_count(&self, topic: &str) -> usize {
        lock(&self.table).key_count(topic)
    }

    /// Status of each key, in the order asked.
    ///
    /// # Errors
    /// [`QueryError::TooManyKeys`] over `max_batch_keys`, [`QueryError::KeyTooLong`] for a key
    /// over `max_key_bytes`.
    pub fn statuses(&self, keys: &[Key], now: Millis) -> Result<Vec<KeyStatus>, QueryError> {
        self.check_batch(keys)?;
        let table = lock(&self.table);
        Ok(keys.iter().map(|k| table.keys.status(k, now)).collect())
    }

    /// Refuses a batch over `max_batch_keys` or holding a key over `max_key_bytes`, before
    /// anything is looked up or stored per key.
    fn check_batch(&self, keys: &[Key]) -> Result<(), QueryError> {
        if keys.len() > self.cfg.max_batch_keys {
            return Err(QueryError::TooManyKeys {
                len: keys.len(),
                max: self.cfg.max_batch_keys,
            });
        }
        let max = self.cfg.max_key_bytes;
        match keys.iter().find(|k| k.len() > max) {
            Some(k) => Err(QueryError::KeyTooLong { len: k.len(), max }),
            None => Ok(()),
        }
    }

    /// Registers a watch set over `keys`; from now on `Outputs::watch` carries each real
    /// status change of those keys for the returned id. Returns the current statuses so the
    /// watcher starts in sync.
    ///
    /// # Errors
    /// [`QueryError::TooManyKeys`] over `max_batch_keys`, [`QueryError::KeyTooLong`] for a key
    /// over `max_key_bytes`.
    pub fn watch(
        &self,
        keys: Vec<Key>,
        now: Millis,
    ) -> Result<(WatchId, Vec<KeyStatus>), QueryError> {
        self.check_batch(&keys)?;
        let id = WatchId(self.next_watch.fetch_add(1, Ordering::Relaxed));
        let mut unique = keys;
        unique.sort();
        unique.dedup();
        let mut current = Vec::with_capacity(unique.len());
        {
            let mut table = lock(&self.table);
            for k in &unique {
                table.keys.add_watcher(k, id);
                current.push(table.keys.status(k, now));
            }
        }
        lock(&self.watches).insert(id, unique);
        Ok((id, current))
    }

    /// Removes a watch set; returns false if it did not exist.
    pub fn unwatch(&self, id: WatchId) -> bool {
        let Some(keys) = lock(&self.watches).remove(&id) else {
            return false;
        };
        let mut table = lock(&self.table);
        for k in &keys {
            table.keys.remove_watcher(k, id, &self.cfg);
        }
        true
    }

    /// Live counts. Walks every connection shard and the topics: for metrics scrapes, not
    /// hot paths.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for shard in self.conns.iter() {
            s.connections += lock(shard).len();
        }
        let table = lock(&self.table);
        s.topics = table.topics.count();
        s.presences = table.presences();
        s.keys_online = table.keys.online();
        s.offline_keys_remembered = table.keys.offline();
        s.offline_keys_evicted_total = table.keys.evicted();
        s
    }
}
