//! User-level status of keys across all topics and connections: online / idle / offline,
//! `last_seen`, debounced login and logout, and watchers to notify.
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
use crate::ids::{ConnId, Key, WatchId};
use crate::output::{KeyStatus, LeaveReason, Outputs, Status, StatusEvent, WatchEvent};
use crate::time::Millis;
use crate::timer::Deadlines;

#[derive(Debug, Clone, Copy)]
struct PendingLogout {
    at: Millis,
    reason: LeaveReason,
    bucket: Token,
}

/// A timer bucket squeezed to 32 bits, to tell a live deadline from a stale one. Never 0
/// (0 means "none armed"); two buckets 2^32 apart share a token, which at worst makes one
/// stale entry run a re-check.
type Token = u32;

fn token(bucket: u64) -> Token {
    (bucket % u64::from(u32::MAX)) as u32 + 1
}

#[derive(Debug)]
struct KeyState {
    /// Connections with presences of this key, with how many presences each holds.
    conns: SmallVec<[(ConnId, u32); 1]>,
    status: Status,
    last_seen: Millis,
    last_activity: Millis,
    pending_logout: Option<PendingLogout>,
    /// Bucket of the live idle check (0: none armed).
    idle_bucket: Token,
    /// Bucket of the live forget deadline (0: none armed).
    forget_bucket: Token,
}

/// One shard's keys.
#[derive(Debug)]
pub(crate) struct KeyShard {
    keys: HashMap<Key, KeyState, RandomState>,
    watchers: HashMap<Key, SmallVec<[WatchId; 2]>, RandomState>,
    grace: Deadlines<Key>,
    idle: Deadlines<Key>,
    /// Forget deadlines of offline keys; their order is also the eviction order.
    forget: Deadlines<Key>,
    online: usize,
    /// This shard's share of `max_offline_keys`.
    offline_cap: usize,
    /// Offline keys forgotten early to stay within `offline_cap`.
    evicted: u64,
}

impl KeyShard {
    pub(crate) fn new(cfg: &Config) -> Self {
        KeyShard {
            keys: HashMap::default(),
            watchers: HashMap::default(),
            grace: Deadlines::new(cfg.timer_granularity),
            idle: Deadlines::new(cfg.timer_granularity),
            forget: Deadlines::new(cfg.timer_granularity),
            online: 0,
            offline_cap: cfg.max_offline_keys.div_ceil(cfg.shards),
            evicted: 0,
        }
    }

    /// A presence of `key` held by `conn` appeared at `now`.
    pub(crate) fn presence_added(
        &mut self,
        key: &Key,
        conn: ConnId,
        now: Millis,
        cfg: &Config,
        out: &mut Outputs,
    ) {
        let state = self.keys.entry(key.clone()).or_insert_with(|| KeyState {
            conns: SmallVec::new(),
            status: Status::Offline,
            last_seen: now,
            last_activity: now,
            pending_logout: None,
            idle_bucket: 0,
            forget_bucket: 0,
        });
        match state.conns.iter_mut().find(|(c, _)| *c == conn) {
            Some((_, n)) => *n += 1,
            None => state.conns.push((conn, 1)),
        }
        state.last_seen = state.last_seen.max(now);
        state.last_activity = state.last_activity.max(now);
        state.pending_logout = None;
        state.forget_bucket = 0;
        let previous = state.status;
        if previous != Status::Online {
            state.status = Status::Online;
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
        if state.idle_bucket == 0
            && let Some(idle_after) = cfg.idle_after
        {
            state.idle_bucket = token(
                self.idle
                    .schedule(state.last_activity + idle_after, key.clone()),
            );
        }
    }

    /// A presence of `key` held by `conn` left; `at` is when it was last known alive.
    pub(crate) fn presence_removed(
        &mut self,
        key: &Key,
        conn: ConnId,
        at: Millis,
        reason: LeaveReason,
        now: Millis,
        cfg: &Config,
        out: &mut Outputs,
    ) {
        let Some(state) = self.keys.get_mut(key.as_str()) else {
            debug_assert!(false, "removed a presence of an unknown key");
            return;
        };
        if let Some(i) = state.conns.iter().position(|(c, _)| *c == conn) {
            state.conns[i].1 -= 1;
            if state.conns[i].1 == 0 {
                state.conns.swap_remove(i);
            }
        }
        state.last_seen = state.last_seen.max(at);
        if !state.conns.is_empty() {
            return;
        }
        if cfg.offline_grace == Millis::ZERO {
            self.logout(key, at, reason, now, cfg, out);
        } else {
            let bucket = token(self.grace.schedule(now + cfg.offline_grace, key.clone()));
            let state = self.keys.get_mut(key.as_str()).expect("looked up above");
            state.pending_logout = Some(PendingLogout { at, reason, bucket });
        }
    }

    /// `key` showed activity (track update, broadcast) at `now`.
    pub(crate) fn activity(&mut self, key: &Key, now: Millis, cfg: &Config, out: &mut Outputs) {
        let Some(state) = self.keys.get_mut(key.as_str()) else {
            return;
        };
        if state.conns.is_empty() {
            return;
        }
        state.last_activity = state.last_activity.max(now);
        if state.status == Status::Idle {
            state.status = Status::Online;
            out.events.push(StatusEvent::Active {
                key: key.clone(),
                at: now,
            });
            notify(&self.watchers, key, Status::Online, out);
            if let Some(idle_after) = cfg.idle_after {
                state.idle_bucket = token(self.idle.schedule(now + idle_after, key.clone()));
            }
        }
    }

    fn logout(
        &mut self,
        key: &Key,
        at: Millis,
        reason: LeaveReason,
        now: Millis,
        cfg: &Config,
        out: &mut Outputs,
    ) {
        let state = self
            .keys
            .get_mut(key.as_str())
            .expect("caller holds the key");
        state.pending_logout = None;
        state.idle_bucket = 0;
        state.status = Status::Offline;
        self.online -= 1;
        state.forget_bucket = token(
            self.forget
                .schedule(now + cfg.forget_offline_after, key.clone()),
        );
        out.events.push(StatusEvent::Logout {
            key: key.clone(),
            at,
            reason,
        });
        notify(&self.watchers, key, Status::Offline, out);
        self.evict_over_cap();
    }

    /// Forgets the oldest unwatched offline keys while more than `offline_cap` are
    /// remembered. Each forget entry is popped at most once, so this is O(1) amortised; a
    /// watched key met on the way is unqueued and queued again when its last watcher leaves.
    fn evict_over_cap(&mut self) {
        while self.offline() > self.offline_cap {
            let Some((bucket, key)) = self.forget.pop_earliest() else {
                return; // every remembered offline key is watched
            };
            let Some(state) = self.keys.get_mut(key.as_str()) else {
                continue;
            };
            if state.forget_bucket != token(bucket) || state.status != Status::Offline {
                continue; // stale entry
            }
            if self.watchers.contains_key(key.as_str()) {
                state.forget_bucket = 0;
                continue;
            }
            self.keys.remove(key.as_str());
            self.evicted += 1;
        }
    }

    /// Runs due grace, idle and forget deadlines.
    pub(crate) fn tick(&mut self, now: Millis, cfg: &Config, out: &mut Outputs) {
        let mut due = Vec::new();
        self.grace.pop_due(now, &mut due);
        for (bucket, key) in due.drain(..) {
            let pending = self.keys.get(key.as_str()).and_then(|s| {
                s.pending_logout
                    .filter(|p| p.bucket == token(bucket) && s.conns.is_empty())
            });
            if let Some(p) = pending {
                self.logout(&key, p.at, p.reason, now, cfg, out);
            }
        }
        self.idle.pop_due(now, &mut due);
        for (bucket, key) in due.drain(..) {
            let Some(state) = self.keys.get_mut(key.as_str()) else {
                continue;
            };
            if state.idle_bucket != token(bucket) || state.status != Status::Online {
                continue;
            }
            let Some(idle_after) = cfg.idle_after else {
                continue;
            };
            if state.conns.is_empty() {
                state.idle_bucket = 0; // re-armed if a presence comes back within grace
            } else if state.last_activity + idle_after <= now {
                state.status = Status::Idle;
                state.idle_bucket = 0;
                out.events.push(StatusEvent::Idle {
                    key: key.clone(),
                    at: now,
                });
                notify(&self.watchers, &key, Status::Idle, out);
            } else {
                state.idle_bucket =
                    token(self.idle.schedule(state.last_activity + idle_after, key));
            }
        }
        self.forget.pop_due(now, &mut due);
        for (bucket, key) in due.drain(..) {
            let Some(state) = self.keys.get_mut(key.as_str()) else {
                continue;
            };
            if state.forget_bucket != token(bucket) || state.status != Status::Offline {
                continue;
            }
            if self.watchers.contains_key(key.as_str()) {
                // kept while watched; `remove_watcher` queues it again
                state.forget_bucket = 0;
            } else {
                self.keys.remove(key.as_str());
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
        match self.keys.get(key.as_str()) {
            None => KeyStatus {
                key: key.clone(),
                status: Status::Offline,
                last_seen: None,
                connections: 0,
            },
            Some(s) => KeyStatus {
                key: key.clone(),
                status: s.status,
                last_seen: Some(if s.conns.is_empty() { s.last_seen } else { now }),
                connections: s.conns.len(),
            },
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
        if let Some(state) = self.keys.get_mut(key.as_str())
            && state.status == Status::Offline
            && state.forget_bucket == 0
        {
            let at = state.last_seen + cfg.forget_offline_after;
            state.forget_bucket = token(self.forget.schedule(at, key.clone()));
            self.evict_over_cap();
        }
    }

    /// Keys currently online or idle in this shard.
    pub(crate) fn online(&self) -> usize {
        self.online
    }

    /// Offline keys still remembered in this shard (every record not online is offline).
    pub(crate) fn offline(&self) -> usize {
        self.keys.len() - self.online
    }

    /// Offline keys this shard forgot early to stay within its cap, since start.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }
}

fn notify(
    watchers: &HashMap<Key, SmallVec<[WatchId; 2]>, RandomState>,
    key: &Key,
    status: Status,
    out: &mut Outputs,
) {
    if let Some(list) = watchers.get(key.as_str()) {
        out.watch.extend(list.iter().map(|&watch| WatchEvent {
            watch,
            key: key.clone(),
            status,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cap: usize) -> Config {
        Config {
            max_offline_keys: cap,
            shards: 1,
            offline_grace: Millis::ZERO,
            idle_after: None,
            timer_granularity: Millis(1),
            forget_offline_after: Millis(10),
            ..Config::default()
        }
    }

    /// `key` comes online on connection 1 at `now` and leaves at once.
    fn churn(shard: &mut KeyShard, key: &Key, now: u64, cfg: &Config) {
        let mut out = Outputs::default();
        let now = Millis(now);
        shard.presence_added(key, ConnId(1), now, cfg, &mut out);
        shard.presence_removed(key, ConnId(1), now, LeaveReason::Closed, now, cfg, &mut out);
    }

    fn remembered(shard: &KeyShard, key: &Key) -> bool {
        shard.status(key, Millis(0)).last_seen.is_some()
    }

    #[test]
    fn offline_keys_over_the_cap_are_forgotten_oldest_first() {
        let cfg = cfg(2);
        let mut s = KeyShard::new(&cfg);
        let keys: Vec<Key> = (0..4).map(|i| Key::from(format!("k{i}"))).collect();
        for (i, k) in keys.iter().enumerate() {
            churn(&mut s, k, i as u64, &cfg);
        }
        assert_eq!((s.offline(), s.evicted()), (2, 2));
        let kept: Vec<bool> = keys.iter().map(|k| remembered(&s, k)).collect();
        assert_eq!(kept, [false, false, true, true]);
        assert_eq!(s.status(&keys[3], Millis(9)).last_seen, Some(Millis(3)));
    }

    #[test]
    fn a_watched_key_survives_the_cap_and_is_queued_again_when_unwatched() {
        let cfg = cfg(1);
        let mut s = KeyShard::new(&cfg);
        let (a, b, c) = (Key::new("a"), Key::new("b"), Key::new("c"));
        s.add_watcher(&a, WatchId(1));
        churn(&mut s, &a, 0, &cfg);
        churn(&mut s, &b, 1, &cfg);
        assert!(remembered(&s, &a), "watched keys are never evicted");
        assert!(!remembered(&s, &b));
        s.remove_watcher(&a, WatchId(1), &cfg);
        assert!(remembered(&s, &a), "within the cap after unwatch");
        churn(&mut s, &c, 2, &cfg);
        assert!(!remembered(&s, &a), "the oldest goes first");
        assert!(remembered(&s, &c));
        assert_eq!(s.evicted(), 2);
    }

    #[test]
    fn a_key_watched_past_its_forget_deadline_is_forgotten_after_unwatch() {
        let cfg = cfg(100);
        let mut s = KeyShard::new(&cfg);
        let a = Key::new("a");
        let mut out = Outputs::default();
        s.add_watcher(&a, WatchId(1));
        churn(&mut s, &a, 0, &cfg);
        s.tick(Millis(20), &cfg, &mut out);
        assert!(remembered(&s, &a), "kept while watched");
        s.remove_watcher(&a, WatchId(1), &cfg);
        s.tick(Millis(21), &cfg, &mut out);
        assert!(!remembered(&s, &a), "forgotten once nobody watches it");
        assert_eq!((s.offline(), s.evicted()), (0, 0));
    }
}
