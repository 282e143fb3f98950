//! User-level status of keys across all topics and connections: online / idle / offline,
//! `last_seen`, debounced login and logout, and watchers to notify.
//!
//! Keys are interned ([`KeyIds`]): the status lives in each key's 32-byte record.
//!
//! A key is online while it has a live presence anywhere. When its last presence leaves, the
//! logout waits `offline_grace`; a new presence within that time cancels it, so a reload or a
//! quick reconnect produces no logout/login pair. Idle: no activity (track, update, broadcast)
//! on any of the key's presences for `idle_after`; activity is kept per key, so a device that
//! leaves still counts as the key's last activity.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use smallvec::SmallVec;

use crate::config::Config;
use crate::ids::{Key, WatchId};
use crate::keys::{KeyIds, KeyState, pack};
use crate::output::{KeyStatus, LeaveReason, Outputs, Status, StatusEvent, WatchEvent};
use crate::slab::NONE;
use crate::time::Millis;
use crate::timer::{Deadlines, token};

#[derive(Debug, Clone, Copy)]
struct PendingLogout {
    at: Millis,
    reason: LeaveReason,
    bucket: u32,
}

type Watchers = HashMap<Key, SmallVec<[WatchId; 2]>, RandomState>;

/// Where a key stands in the index: its hash, and its id if it is known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyAt {
    pub(crate) hash: u64,
    pub(crate) id: Option<u32>,
}

/// Every key's status.
#[derive(Debug)]
pub(crate) struct KeyTable {
    ids: KeyIds,
    /// Keys whose last presence left, waiting out `offline_grace` (only those).
    pending: HashMap<u32, PendingLogout, RandomState>,
    watchers: Watchers,
    grace: Deadlines<u32>,
    idle: Deadlines<u32>,
    /// Forget deadlines of offline keys; their order is also the eviction order.
    forget: Deadlines<u32>,
    online: usize,
    evicted: u64,
}

impl KeyTable {
    pub(crate) fn new(cfg: &Config) -> Self {
        KeyTable {
            ids: KeyIds::new(cfg.ref_seed),
            pending: HashMap::default(),
            watchers: HashMap::default(),
            grace: Deadlines::new(cfg.timer_granularity),
            idle: Deadlines::new(cfg.timer_granularity),
            forget: Deadlines::new(cfg.timer_granularity),
            online: 0,
            evicted: 0,
        }
    }

    /// The id of `key`, if known.
    pub(crate) fn find(&self, key: &str) -> Option<u32> {
        self.ids.find(key)
    }

    /// The id of `key`, creating an offline record seen at `now` if it is new.
    #[cfg(test)]
    pub(crate) fn intern(&mut self, key: &str, now: Millis) -> u32 {
        self.ids.intern(key, now)
    }

    /// Looks `key` up, keeping its hash for a later [`KeyTable::insert_new`].
    pub(crate) fn locate(&self, key: &str) -> KeyAt {
        let hash = self.ids.hash(key);
        KeyAt {
            hash,
            id: self.ids.find_hashed(key, hash),
        }
    }

    /// Creates an offline record seen at `now` for `key`, not known yet (`hash` is from its
    /// [`KeyTable::locate`]), and returns its id.
    pub(crate) fn insert_new(&mut self, key: &str, hash: u64, now: Millis) -> u32 {
        self.ids.insert_new(key, hash, now)
    }

    /// The text of key `id`.
    pub(crate) fn name(&self, id: u32) -> &str {
        self.ids.name(id)
    }

    pub(crate) fn state(&self, id: u32) -> &KeyState {
        self.ids.get(id)
    }

    pub(crate) fn state_mut(&mut self, id: u32) -> &mut KeyState {
        self.ids.get_mut(id)
    }

    /// A presence of key `id` appeared at `now` (already linked); `new_conn` when its
    /// connection held no other presence of the key.
    pub(crate) fn presence_added(
        &mut self,
        id: u32,
        key: &Key,
        new_conn: bool,
        now: Millis,
        cfg: &Config,
        out: &mut Outputs,
    ) {
        if !self.pending.is_empty() {
            self.pending.remove(&id);
        }
        let state = self.ids.get_mut(id);
        state.conns += u32::from(new_conn);
        state.last_seen = state.last_seen.max(now);
        state.last_activity = state.last_activity.max(now);
        let previous = state.status();
        if previous == Status::Offline {
            state.set_token(0); // the forget deadline is void
        }
        if previous != Status::Online {
            state.set_status(Status::Online);
            out.events.push(match previous {
                Status::Offline => {
                    self.online += 1;
                    StatusEvent::Login {
                        key: key.clone(),
                        at: now,
                    }
                }
                _ => StatusEvent::Active {
                    key: key.clone(),
                    at: now,
                },
            });
            notify(&self.watchers, key, Status::Online, out);
        }
        let state = self.ids.get_mut(id);
        if state.token() == 0
            && let Some(idle_after) = cfg.idle_after
        {
            state.set_token(token(
                self.idle.schedule(state.last_activity + idle_after, id),
            ));
        }
    }

    /// A presence of key `id` left (already unlinked); `at` is when it was last known alive,
    /// `last_of_conn` when its connection holds no other presence of the key.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn presence_removed(
        &mut self,
        id: u32,
        last_of_conn: bool,
        at: Millis,
        reason: LeaveReason,
        now: Millis,
        cfg: &Config,
        out: &mut Outputs,
    ) {
        let state = self.ids.get_mut(id);
        state.conns -= u32::from(last_of_conn);
        state.last_seen = state.last_seen.max(at);
        if state.head != NONE {
            return;
        }
        if cfg.offline_grace == Millis::ZERO {
            self.logout(id, at, reason, now, cfg, out);
        } else {
            let bucket = token(self.grace.schedule(now + cfg.offline_grace, id));
            self.pending
                .insert(id, PendingLogout { at, reason, bucket });
        }
    }

    /// `key` showed activity (track update, broadcast) at `now`.
    pub(crate) fn activity(&mut self, key: &Key, now: Millis, cfg: &Config, out: &mut Outputs) {
        let Some(id) = self.find(key) else {
            return;
        };
        let state = self.ids.get_mut(id);
        if state.head == NONE {
            return;
        }
        state.last_activity = state.last_activity.max(now);
        if state.status() == Status::Idle {
            state.set_status(Status::Online);
            out.events.push(StatusEvent::Active {
                key: key.clone(),
                at: now,
            });
            if let Some(idle_after) = cfg.idle_after {
                state.set_token(token(self.idle.schedule(now + idle_after, id)));
            }
            notify(&self.watchers, key, Status::Online, out);
        }
    }

    fn logout(
        &mut self,
        id: u32,
        at: Millis,
        reason: LeaveReason,
        now: Millis,
        cfg: &Config,
        out: &mut Outputs,
    ) {
        self.pending.remove(&id);
        let forget = token(self.forget.schedule(now + cfg.forget_offline_after, id));
        let state = self.ids.get_mut(id);
        state.timer = pack(Status::Offline, forget);
        self.online -= 1;
        let key = Key::new(self.name(id));
        notify(&self.watchers, &key, Status::Offline, out);
        out.events.push(StatusEvent::Logout { key, at, reason });
        self.evict_over_cap(cfg);
    }

    /// Whether key `id` is offline and its live timer token is `bucket`'s.
    fn offline_due(&self, id: u32, bucket: u64) -> bool {
        let s = self.ids.get(id);
        s.name != NONE && s.status() == Status::Offline && s.token() == token(bucket)
    }

    /// Forgets the oldest unwatched offline keys while more than `max_offline_keys` are
    /// remembered. Each forget entry is popped at most once, so this is O(1) amortised; a
    /// watched key met on the way is unqueued and queued again when its last watcher leaves.
    fn evict_over_cap(&mut self, cfg: &Config) {
        while self.offline() > cfg.max_offline_keys {
            let Some((bucket, id)) = self.forget.pop_earliest() else {
                return; // every remembered offline key is watched
            };
            if !self.offline_due(id, bucket) {
                continue; // stale entry
            }
            if self.watchers.contains_key(self.name(id)) {
                self.ids.get_mut(id).set_token(0);
                continue;
            }
            self.ids.forget(id);
            self.evicted += 1;
        }
    }

    /// Runs due grace, idle and forget deadlines.
    pub(crate) fn tick(&mut self, now: Millis, cfg: &Config, out: &mut Outputs) {
        let mut due = Vec::new();
        self.grace.pop_due(now, &mut due);
        for (bucket, id) in due.drain(..) {
            let pending = self
                .pending
                .get(&id)
                .copied()
                .filter(|p| p.bucket == token(bucket) && self.ids.get(id).head == NONE);
            if let Some(p) = pending {
                self.logout(id, p.at, p.reason, now, cfg, out);
            }
        }
        self.idle.pop_due(now, &mut due);
        for (bucket, id) in due.drain(..) {
            let state = self.ids.get_mut(id);
            if state.name == NONE
                || state.token() != token(bucket)
                || state.status() != Status::Online
            {
                continue;
            }
            let Some(idle_after) = cfg.idle_after else {
                continue;
            };
            if state.head == NONE {
                state.set_token(0); // re-armed if a presence comes back within grace
            } else if state.last_activity + idle_after <= now {
                state.timer = pack(Status::Idle, 0);
                let key = Key::new(self.name(id));
                notify(&self.watchers, &key, Status::Idle, out);
                out.events.push(StatusEvent::Idle { key, at: now });
            } else {
                let at = state.last_activity + idle_after;
                state.set_token(token(self.idle.schedule(at, id)));
            }
        }
        self.forget.pop_due(now, &mut due);
        for (bucket, id) in due.drain(..) {
            if !self.offline_due(id, bucket) {
                continue;
            }
            if self.watchers.contains_key(self.name(id)) {
                // kept while watched; `remove_watcher` queues it again
                self.ids.get_mut(id).set_token(0);
            } else {
                self.ids.forget(id);
            }
        }
    }

    pub(crate) fn next_due(&self) -> Option<Millis> {
        [
            self.grace.next_due(),
            self.idle.next_due(),
            self.forget.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The status of `key` at `now`.
    pub(crate) fn status(&self, key: &Key, now: Millis) -> KeyStatus {
        match self.find(key) {
            None => KeyStatus {
                key: key.clone(),
                status: Status::Offline,
                last_seen: None,
                connections: 0,
            },
            Some(id) => {
                let s = self.ids.get(id);
                KeyStatus {
                    key: key.clone(),
                    status: s.status(),
                    last_seen: Some(if s.head == NONE { s.last_seen } else { now }),
                    connections: s.conns as usize,
                }
            }
        }
    }

    pub(crate) fn add_watcher(&mut self, key: &Key, watch: WatchId) {
        self.watchers.entry(key.clone()).or_default().push(watch);
    }

    /// Removes one watcher of `key`. When the last one leaves, an offline key whose forget
    /// deadline passed while watched is queued again, due `forget_offline_after` after it
    /// was last seen (so at the next tick if that is already past).
    pub(crate) fn remove_watcher(&mut self, key: &Key, watch: WatchId, cfg: &Config) {
        let Some(list) = self.watchers.get_mut(key.as_str()) else {
            return;
        };
        list.retain(|w| *w != watch);
        if !list.is_empty() {
            return;
        }
        self.watchers.remove(key.as_str());
        if let Some(id) = self.find(key) {
            let state = self.ids.get(id);
            if state.status() == Status::Offline && state.token() == 0 {
                let at = state.last_seen + cfg.forget_offline_after;
                let t = token(self.forget.schedule(at, id));
                self.ids.get_mut(id).set_token(t);
                self.evict_over_cap(cfg);
            }
        }
    }

    /// Keys currently online or idle.
    pub(crate) fn online(&self) -> usize {
        self.online
    }

    /// Offline keys still remembered (every record not online is offline).
    pub(crate) fn offline(&self) -> usize {
        self.ids.len() - self.online
    }

    /// Offline keys forgotten early to stay within `max_offline_keys`, since start.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }
}

fn notify(watchers: &Watchers, key: &Key, status: Status, out: &mut Outputs) {
    if watchers.is_empty() {
        return;
    }
    if let Some(list) = watchers.get(key.as_str()) {
        out.watch.extend(list.iter().map(|&watch| WatchEvent {
            watch,
            key: key.clone(),
            status,
        }));
    }
}

#[cfg(test)]
mod tests;
