//! The engine: the only file with locks. Two kinds, each held for a few slab and hash
//! operations and never across I/O:
//!
//! * connection shards (liveness, and the ids of the presences each connection holds),
//!   sharded by `ConnId` into `Config::shards` mutexes;
//! * the table (presences, topics and key statuses, all cross-linked by `u32` ids), one mutex;
//! * the diff hand-off queue, taken briefly under the table lock to enqueue a diff in order,
//!   and alone to dequeue one for the sink, which therefore never runs under a core lock.
//!
//! Lock order is always connection shard → table, so there is no deadlock. A heartbeat takes
//! one connection-shard lock and nothing else; a track takes its connection's shard and the
//! table. Holding the connection shard across a track is what makes a track and a concurrent
//! expiry of the same connection serialise cleanly. The table is one lock because presences
//! are linked to their topic and their key by id: a track costs a few hundred nanoseconds
//! under it, which one core can do over a million times a second.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::config::Config;
use crate::error::{ConfigError, ConnectError, TrackError};
use crate::ids::{ConnId, Key, PresenceRef, Topic, WatchId};
use crate::liveness::{ConnShard, Gone};
use crate::meta::Meta;
use crate::output::{LeaveReason, Outputs, TopicDiff};
use crate::table::{Table, TrackChange};
use crate::time::Millis;

/// The sans-IO presence engine. Share it (`Arc<Engine>`) between threads; every method
/// takes `&self`.
///
/// Call order: [`Engine::connect`] a connection, then [`Engine::heartbeat`] on every inbound
/// message, [`Engine::track`]/[`Engine::untrack`] as clients ask, [`Engine::close`] when the
/// socket closes, and [`Engine::tick`] whenever [`Engine::poll_timeout`] says (or on a fixed
/// period). Each mutating call appends to an [`Outputs`] the caller drains.
pub struct Engine {
    pub(crate) cfg: Config,
    pub(crate) conns: Box<[Mutex<ConnShard>]>,
    pub(crate) table: Mutex<Table>,
    hasher: foldhash::fast::FixedState,
    next_ref: AtomicU64,
    pub(crate) next_watch: AtomicU64,
    pub(crate) watches: Mutex<HashMap<WatchId, Vec<Key>>>,
    sink: Option<DiffSink>,
    handoff: Mutex<Handoff>,
}

/// Receives each diff in exactly the order the engine produced them, whichever threads
/// produced them, one call at a time and never while a core lock is held (so it may take its
/// time rendering). It must not call back into the engine's mutating methods.
pub type DiffSink = Box<dyn Fn(&TopicDiff) + Send + Sync>;

/// Diffs made under the table lock and not yet given to the sink, in production order, and
/// whether some thread is giving them (the one that found nobody doing it: flat combining).
#[derive(Default)]
struct Handoff {
    queue: VecDeque<TopicDiff>,
    draining: bool,
}

/// Clears `Handoff::draining` if the sink panics, so later diffs still find a drainer.
struct DrainGuard<'a>(&'a Mutex<Handoff>);

impl Drop for DrainGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(self.0).draining = false;
        }
    }
}

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

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
            table: Mutex::new(Table::new(&cfg)),
            hasher: foldhash::fast::FixedState::with_seed(cfg.ref_seed),
            // refs: 24 bits of seed, then a 40-bit counter
            next_ref: AtomicU64::new(((cfg.ref_seed & 0xff_ffff) << 40) | 1),
            next_watch: AtomicU64::new(1),
            watches: Mutex::new(HashMap::new()),
            sink: None,
            handoff: Mutex::new(Handoff::default()),
            cfg,
        })
    }

    /// Builds an engine that hands every diff to `sink` (in production order, outside the
    /// core's locks) instead of appending it to `Outputs::diffs`.
    ///
    /// # Errors
    /// A field of `cfg` is out of range (see [`Config::validate`]).
    pub fn with_diff_sink(cfg: Config, sink: DiffSink) -> Result<Engine, ConfigError> {
        let mut engine = Engine::new(cfg)?;
        engine.sink = Some(sink);
        Ok(engine)
    }

    /// Moves diffs appended since `mark` to the hand-off queue, if there is a sink. Call with
    /// the table still locked, so the queue's order is the engine's order. Returns whether
    /// the caller must [`Engine::drain`] once it has released its locks (nobody else is).
    fn route(&self, diffs: &mut Vec<TopicDiff>, mark: usize) -> bool {
        if self.sink.is_none() || diffs.len() == mark {
            return false;
        }
        let mut h = lock(&self.handoff);
        h.queue.extend(diffs.drain(mark..));
        !std::mem::replace(&mut h.draining, true)
    }

    /// Gives queued diffs to the sink, in order, until the queue is empty. Runs with no core
    /// lock held; only the thread that [`Engine::route`] elected calls it, so the sink sees
    /// one diff at a time. Diffs queued by other threads meanwhile are given too.
    fn drain(&self) {
        let Some(sink) = &self.sink else { return };
        let _guard = DrainGuard(&self.handoff);
        loop {
            let next = {
                let mut h = lock(&self.handoff);
                match h.queue.pop_front() {
                    Some(d) => d,
                    None => {
                        h.draining = false;
                        return;
                    }
                }
            };
            sink(&next);
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn conn_shard(&self, conn: ConnId) -> MutexGuard<'_, ConnShard> {
        lock(&self.conns[self.shard_index(conn)])
    }

    fn shard_index(&self, conn: ConnId) -> usize {
        (self.hasher.hash_one(conn.0) % self.conns.len() as u64) as usize
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

    /// [`Engine::heartbeat`] for many connections at once (e.g. every connection that sent a
    /// frame during one wake of the server), taking each shard lock once. Returns how many
    /// of `conns` were open.
    pub fn heartbeat_many(&self, conns: &[ConnId], now: Millis) -> usize {
        let mut order: Vec<(usize, ConnId)> =
            conns.iter().map(|&c| (self.shard_index(c), c)).collect();
        order.sort_unstable_by_key(|&(s, _)| s);
        let mut open = 0;
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let mut shard = lock(&self.conns[group[0].0]);
            open += group
                .iter()
                .filter(|&&(_, c)| shard.heartbeat(c, now))
                .count();
        }
        open
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
        // Both locks, then the key and the connection lookups back to back: each is a cache
        // miss at scale, and with no lock (a full fence) or long stretch of code between them
        // the two misses overlap.
        let mut table = lock(&self.table);
        let at = table.keys.locate(key);
        let slot = conns
            .find(conn)
            .ok_or(TrackError::UnknownConnection(conn))?;
        conns.beat(slot, now);
        let mark = out.diffs.len();
        let done = table.track(
            conns.presences(slot),
            topic,
            key,
            at,
            meta,
            now,
            || self.mint_ref(),
            &self.cfg,
            out,
        )?;
        if let Some(p) = done.joined {
            conns.add_presence(slot, p);
        }
        let elected = self.route(&mut out.diffs, mark);
        drop(table);
        drop(conns);
        if elected {
            self.drain();
        }
        Ok(Tracked {
            presence_ref: done.presence_ref,
            change: done.change,
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
        let slot = conns
            .find(conn)
            .ok_or(TrackError::UnknownConnection(conn))?;
        conns.beat(slot, now);
        let mut table = lock(&self.table);
        let Some(p) = table.find_held(conns.presences(slot), topic, key) else {
            return Ok(false);
        };
        conns.remove_presence(slot, p);
        let k = table.key_of(p);
        let last_of_conn = !conns.presences(slot).iter().any(|&q| table.key_of(q) == k);
        let mark = out.diffs.len();
        let reason = LeaveReason::Untracked;
        table.remove(p, Some(key), last_of_conn, now, reason, now, &self.cfg, out);
        let elected = self.route(&mut out.diffs, mark);
        drop(table);
        drop(conns);
        if elected {
            self.drain();
        }
        Ok(true)
    }

    /// Records activity of `key` (e.g. a broadcast from a channel tracking it): an idle key
    /// becomes online again.
    pub fn activity(&self, key: &Key, now: Millis, out: &mut Outputs) {
        lock(&self.table).keys.activity(key, now, &self.cfg, out);
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
        let gone = self.conn_shard(conn).remove(conn);
        match gone {
            Some(gone) => {
                self.drop_connection(gone, now, reason, now, out);
                true
            }
            None => false,
        }
    }

    /// Removes the presences of a closed or expired connection.
    fn drop_connection(
        &self,
        gone: Gone,
        at: Millis,
        reason: LeaveReason,
        now: Millis,
        out: &mut Outputs,
    ) {
        if gone.presences.is_empty() {
            return;
        }
        let mut table = lock(&self.table);
        let mark = out.diffs.len();
        for (i, &p) in gone.presences.iter().enumerate() {
            let k = table.key_of(p);
            let rest = &gone.presences[i + 1..];
            let last_of_conn = !rest.iter().any(|&q| table.key_of(q) == k);
            table.remove(p, None, last_of_conn, at, reason, now, &self.cfg, out);
        }
        let elected = self.route(&mut out.diffs, mark);
        drop(table);
        if elected {
            self.drain();
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
        for gone in expired {
            out.expired.push(gone.conn);
            let at = gone.last_beat;
            self.drop_connection(gone, at, LeaveReason::Timeout, now, out);
        }
        let mut table = lock(&self.table);
        table.keys.tick(now, &self.cfg, out);
        let mark = out.diffs.len();
        table.topics.flush(now, false, &mut out.diffs);
        let elected = self.route(&mut out.diffs, mark);
        drop(table);
        if elected {
            self.drain();
        }
    }

    /// Emits every pending diff batch now (for shutdown).
    pub fn flush(&self, out: &mut Outputs) {
        let mut table = lock(&self.table);
        let mark = out.diffs.len();
        table.topics.flush(Millis::ZERO, true, &mut out.diffs);
        let elected = self.route(&mut out.diffs, mark);
        drop(table);
        if elected {
            self.drain();
        }
    }

    /// The earliest time [`Engine::tick`] has work, if any timer is armed.
    pub fn poll_timeout(&self) -> Option<Millis> {
        // The shards are read (and released) before the table is locked: holding the table
        // while locking a shard would invert the shard → table order and deadlock `track`.
        let conns = self.conns.iter().filter_map(|s| lock(s).next_due()).min();
        let table = lock(&self.table);
        [conns, table.keys.next_due(), table.topics.next_due()]
            .into_iter()
            .flatten()
            .min()
    }
}
