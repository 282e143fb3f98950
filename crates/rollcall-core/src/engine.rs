//! The engine: the only file with locks. Three independently sharded maps, each shard behind
//! a `std::sync::Mutex` that is held for a few hash operations and never across I/O:
//!
//! * connections (liveness, and the (topic, key) pairs each one tracks), sharded by `ConnId`;
//! * topics (the presence table and diff batching), sharded by topic;
//! * keys (status, grace, idle, watchers), sharded by key.
//!
//! Lock order is always connection → topic → key, so there is no deadlock; a heartbeat takes
//! one connection-shard lock and nothing else, and tracks in unrelated topics by unrelated
//! connections touch disjoint shards. Holding the connection shard across a track is what
//! makes a track and a concurrent expiry of the same connection serialise cleanly.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::config::Config;
use crate::diff::PresenceView;
use crate::error::{ConfigError, ConnectError, QueryError, TrackError};
use crate::ids::{ConnId, Key, PresenceRef, Topic, WatchId};
use crate::liveness::{ConnRecord, ConnShard};
use crate::meta::Meta;
use crate::output::{KeyStatus, LeaveReason, Outputs, TopicDiff};
use crate::status::KeyShard;
use crate::table::{TopicShard, TrackChange};
use crate::time::Millis;

/// The sans-IO presence engine. Share it (`Arc<Engine>`) between threads; every method
/// takes `&self`.
///
/// Call order: [`Engine::connect`] a connection, then [`Engine::heartbeat`] on every inbound
/// message, [`Engine::track`]/[`Engine::untrack`] as clients ask, [`Engine::close`] when the
/// socket closes, and [`Engine::tick`] whenever [`Engine::poll_timeout`] says (or on a fixed
/// period). Each mutating call appends to an [`Outputs`] the caller drains.
pub struct Engine {
    cfg: Config,
    conns: Box<[Mutex<ConnShard>]>,
    topics: Box<[Mutex<TopicShard>]>,
    keys: Box<[Mutex<KeyShard>]>,
    hasher: foldhash::fast::FixedState,
    next_ref: AtomicU64,
    next_watch: AtomicU64,
    watches: Mutex<HashMap<WatchId, Vec<Key>>>,
    sink: Option<DiffSink>,
}

/// Receives each diff while its topic's shard is still locked, so diffs of one topic reach the
/// sink in exactly the order they were produced, whichever threads produced them. It must be
/// quick and must not block or call back into the engine (enqueue the bytes and return).
pub type DiffSink = Box<dyn Fn(&TopicDiff) + Send + Sync>;

/// Result of a successful [`Engine::track`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    /// The presence's current ref.
    pub presence_ref: PresenceRef,
    /// Whether it joined, was updated, or was already identical.
    pub change: TrackChange,
}

/// Live counts, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open connections.
    pub connections: usize,
    /// Topics with at least one presence.
    pub topics: usize,
    /// Presences in all topics.
    pub presences: usize,
    /// Keys online or idle (including those within `offline_grace`).
    pub keys_online: usize,
    /// Offline keys whose `last_seen` is still remembered (bounded by `max_offline_keys`,
    /// plus watched keys, which are never forgotten).
    pub offline_keys_remembered: usize,
    /// Offline keys forgotten early because `max_offline_keys` was reached, since start; a
    /// rising count means `last_seen` answers for older keys come from the database, not memory.
    pub offline_keys_evicted_total: u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cfg", &self.cfg)
            .field("sink", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard would be a bug in this crate; the state is still
    // structurally valid (no operation leaves it half-written), so keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    /// Builds an engine.
    ///
    /// # Errors
    /// A field of `cfg` is out of range (see [`Config::validate`]).
    pub fn new(cfg: Config) -> Result<Engine, ConfigError> {
        cfg.validate()?;
        let n = cfg.shards;
        Ok(Engine {
            conns: (0..n).map(|_| Mutex::new(ConnShard::new(&cfg))).collect(),
            topics: (0..n).map(|_| Mutex::new(TopicShard::new(&cfg))).collect(),
            keys: (0..n).map(|_| Mutex::new(KeyShard::new(&cfg))).collect(),
            hasher: foldhash::fast::FixedState::with_seed(cfg.ref_seed),
            // refs: 24 bits of seed, then a 40-bit counter
            next_ref: AtomicU64::new(((cfg.ref_seed & 0xff_ffff) << 40) | 1),
            next_watch: AtomicU64::new(1),
            watches: Mutex::new(HashMap::new()),
            sink: None,
            cfg,
        })
    }

    /// Builds an engine that hands every diff to `sink` (under the topic's lock, hence in
    /// order per topic) instead of appending it to `Outputs::diffs`.
    ///
    /// # Errors
    /// A field of `cfg` is out of range (see [`Config::validate`]).
    pub fn with_diff_sink(cfg: Config, sink: DiffSink) -> Result<Engine, ConfigError> {
        let mut engine = Engine::new(cfg)?;
        engine.sink = Some(sink);
        Ok(engine)
    }

    /// Passes diffs appended since `mark` to the sink, if there is one. Call with the topic
    /// shard still locked.
    fn route(&self, diffs: &mut Vec<TopicDiff>, mark: usize) {
        if let Some(sink) = &self.sink {
            for d in diffs.drain(mark..) {
                sink(&d);
            }
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn shard_of<T: Hash + ?Sized>(&self, v: &T) -> usize {
        (self.hasher.hash_one(v) % self.cfg.shards as u64) as usize
    }

    fn conn_shard(&self, conn: ConnId) -> MutexGuard<'_, ConnShard> {
        lock(&self.conns[self.shard_of(&conn.0)])
    }

    fn topic_shard(&self, topic: &str) -> MutexGuard<'_, TopicShard> {
        lock(&self.topics[self.shard_of(topic)])
    }

    fn key_shard(&self, key: &str) -> MutexGuard<'_, KeyShard> {
        lock(&self.keys[self.shard_of(key)])
    }

    fn mint_ref(&self) -> PresenceRef {
        let raw = self.next_ref.fetch_add(1, Ordering::Relaxed);
        PresenceRef::new(raw).unwrap_or_else(|| PresenceRef::new(1).expect("1 is non-zero"))
    }

    /// Registers an open connection; its expiry clock starts at `now`.
    ///
    /// # Errors
    /// [`ConnectError::AlreadyConnected`] if `conn` is open.
    pub fn connect(&self, conn: ConnId, now: Millis) -> Result<(), ConnectError> {
        self.conn_shard(conn).connect(conn, now, &self.cfg)
    }

    /// Records inbound traffic from `conn` (any message counts). Returns false if `conn` is not
    /// open. Takes one shard lock and allocates nothing.
    pub fn heartbeat(&self, conn: ConnId, now: Millis) -> bool {
        self.conn_shard(conn).heartbeat(conn, now)
    }

    /// Tracks `conn` as present under `key` in `topic` with `meta`, or updates its meta.
    ///
    /// A new presence yields a join diff; a changed meta yields one diff with the new
    /// presence (carrying `prev_ref`) in joins and the old one in leaves; an identical meta
    /// changes nothing. Tracking counts as activity and as a heartbeat.
    ///
    /// # Errors
    /// Unknown connection, key too long, meta too large, or a per-key / per-topic limit.
    pub fn track(
        &self,
        conn: ConnId,
        topic: &Topic,
        key: &Key,
        meta: Meta,
        now: Millis,
        out: &mut Outputs,
    ) -> Result<Tracked, TrackError> {
        if key.len() > self.cfg.max_key_bytes {
            return Err(TrackError::KeyTooLong {
                len: key.len(),
                max: self.cfg.max_key_bytes,
            });
        }
        if meta.len() > self.cfg.max_meta_bytes {
            return Err(TrackError::MetaTooLarge {
                len: meta.len(),
                max: self.cfg.max_meta_bytes,
            });
        }
        let mut conns = self.conn_shard(conn);
        let record = conns
            .get_mut(conn)
            .ok_or(TrackError::UnknownConnection(conn))?;
        record.last_beat = record.last_beat.max(now);
        let mut topics = self.topic_shard(topic);
        let (presence_ref, change, diff) =
            topics.track(topic, key, conn, meta, || self.mint_ref(), &self.cfg)?;
        match change {
            TrackChange::Joined => {
                record.tracks.push((topic.clone(), key.clone()));
                self.key_shard(key)
                    .presence_added(key, conn, now, &self.cfg, out);
            }
            TrackChange::Updated => self.key_shard(key).activity(key, now, &self.cfg, out),
            TrackChange::Unchanged => {}
        }
        let mark = out.diffs.len();
        topics.emit(topic, diff, now, &self.cfg, &mut out.diffs);
        self.route(&mut out.diffs, mark);
        drop(topics);
        Ok(Tracked {
            presence_ref,
            change,
        })
    }

    /// Removes `conn`'s presence under `key` in `topic`. Returns whether one existed.
    ///
    /// # Errors
    /// [`TrackError::UnknownConnection`] if `conn` is not open.
    pub fn untrack(
        &self,
        conn: ConnId,
        topic: &Topic,
        key: &Key,
        now: Millis,
        out: &mut Outputs,
    ) -> Result<bool, TrackError> {
        let mut conns = self.conn_shard(conn);
        let record = conns
            .get_mut(conn)
            .ok_or(TrackError::UnknownConnection(conn))?;
        record.last_beat = record.last_beat.max(now);
        let Some(i) = record
            .tracks
            .iter()
            .position(|(t, k)| t == topic && k == key)
        else {
            return Ok(false);
        };
        record.tracks.swap_remove(i);
        self.remove_presence(conn, topic, key, now, LeaveReason::Untracked, now, out);
        Ok(true)
    }

    /// Records activity of `key` (e.g. a broadcast from a channel tracking it): an idle key
    /// becomes online again.
    pub fn activity(&self, key: &Key, now: Millis, out: &mut Outputs) {
        self.key_shard(key).activity(key, now, &self.cfg, out);
    }

    /// The socket of `conn` closed: all its presences leave at once (reason `Closed`).
    /// Returns false if `conn` was not open.
    pub fn close(&self, conn: ConnId, now: Millis, out: &mut Outputs) -> bool {
        self.close_with(conn, now, LeaveReason::Closed, out)
    }

    /// Like [`Engine::close`] with an explicit reason (e.g. `Shutdown`).
    pub fn close_with(
        &self,
        conn: ConnId,
        now: Millis,
        reason: LeaveReason,
        out: &mut Outputs,
    ) -> bool {
        let record = self.conn_shard(conn).remove(conn);
        match record {
            Some(record) => {
                self.drop_connection(conn, record, now, reason, now, out);
                true
            }
            None => false,
        }
    }

    fn drop_connection(
        &self,
        conn: ConnId,
        record: ConnRecord,
        at: Millis,
        reason: LeaveReason,
        now: Millis,
        out: &mut Outputs,
    ) {
        for (topic, key) in record.tracks {
            self.remove_presence(conn, &topic, &key, at, reason, now, out);
        }
    }

    fn remove_presence(
        &self,
        conn: ConnId,
        topic: &Topic,
        key: &Key,
        at: Millis,
        reason: LeaveReason,
        now: Millis,
        out: &mut Outputs,
    ) {
        let mut topics = self.topic_shard(topic);
        if let Some(diff) = topics.untrack(topic, key, conn) {
            self.key_shard(key)
                .presence_removed(key, conn, at, reason, now, &self.cfg, out);
            let mark = out.diffs.len();
            topics.emit(topic, diff, now, &self.cfg, &mut out.diffs);
            self.route(&mut out.diffs, mark);
        }
    }

    /// Runs every timer due at `now`: expires silent connections (their ids go to
    /// `out.expired`, their presences leave with reason `Timeout` dated at their last
    /// heartbeat), emits debounced logouts, idle transitions and closed diff batches.
    pub fn tick(&self, now: Millis, out: &mut Outputs) {
        let mut expired = Vec::new();
        for shard in self.conns.iter() {
            lock(shard).pop_expired(now, &self.cfg, &mut expired);
        }
        for (conn, record) in expired {
            out.expired.push(conn);
            let at = record.last_beat;
            self.drop_connection(conn, record, at, LeaveReason::Timeout, now, out);
        }
        for shard in self.keys.iter() {
            lock(shard).tick(now, &self.cfg, out);
        }
        for shard in self.topics.iter() {
            let mut guard = lock(shard);
            let mark = out.diffs.len();
            guard.flush(now, false, &mut out.diffs);
            self.route(&mut out.diffs, mark);
        }
    }

    /// Emits every pending diff batch now (for shutdown).
    pub fn flush(&self, out: &mut Outputs) {
        for shard in self.topics.iter() {
            let mut guard = lock(shard);
            let mark = out.diffs.len();
            guard.flush(Millis::ZERO, true, &mut out.diffs);
            self.route(&mut out.diffs, mark);
        }
    }

    /// The earliest time [`Engine::tick`] has work, if any timer is armed.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let conns = self.conns.iter().filter_map(|s| lock(s).next_due());
        let keys = self.keys.iter().filter_map(|s| lock(s).next_due());
        let topics = self.topics.iter().filter_map(|s| lock(s).next_due());
        conns.chain(keys).chain(topics).min()
    }

    /// Every presence in `topic`, grouped by key.
    pub fn list(&self, topic: &str) -> Vec<(Key, Vec<PresenceView>)> {
        self.topic_shard(topic).list(topic)
    }

    /// The presences of `key` in `topic`.
    pub fn get(&self, topic: &str, key: &str) -> Vec<PresenceView> {
        self.topic_shard(topic).get(topic, key)
    }

    /// Writes `topic`'s `presence_state` payload JSON into `out`.
    pub fn write_state_json(&self, topic: &str, out: &mut Vec<u8>) {
        self.topic_shard(topic).write_state_json(topic, out);
    }

    /// Number of keys present in `topic`.
    pub fn key_count(&self, topic: &str) -> usize {
        self.topic_shard(topic).key_count(topic)
    }

    /// Status of each key, in the order asked.
    ///
    /// # Errors
    /// [`QueryError::TooManyKeys`] over `max_batch_keys`, [`QueryError::KeyTooLong`] for a key
    /// over `max_key_bytes`.
    pub fn statuses(&self, keys: &[Key], now: Millis) -> Result<Vec<KeyStatus>, QueryError> {
        self.check_batch(keys)?;
        Ok(keys
            .iter()
            .map(|k| self.key_shard(k).status(k, now))
            .collect())
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
        for k in &unique {
            let mut shard = self.key_shard(k);
            shard.add_watcher(k, id);
            current.push(shard.status(k, now));
        }
        lock(&self.watches).insert(id, unique);
        Ok((id, current))
    }

    /// Removes a watch set; returns false if it did not exist.
    pub fn unwatch(&self, id: WatchId) -> bool {
        let Some(keys) = lock(&self.watches).remove(&id) else {
            return false;
        };
        for k in &keys {
            self.key_shard(k).remove_watcher(k, id, &self.cfg);
        }
        true
    }

    /// Live counts. Walks every shard: for metrics scrapes, not hot paths.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for shard in self.conns.iter() {
            s.connections += lock(shard).len();
        }
        for shard in self.topics.iter() {
            let (t, p) = lock(shard).counts();
            s.topics += t;
            s.presences += p;
        }
        for shard in self.keys.iter() {
            let shard = lock(shard);
            s.keys_online += shard.online();
            s.offline_keys_remembered += shard.offline();
            s.offline_keys_evicted_total += shard.evicted();
        }
        s
    }
}
