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
    forget: Deadlines<Key>,
    online: usize,
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
            let forget =
                self.keys.get(key.as_str()).is_some_and(|s| {
                    s.forget_bucket == token(bucket) && s.status == Status::Offline
                }) && !self.watchers.contains_key(key.as_str());
            if forget {
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

    pub(crate) fn remove_watcher(&mut self, key: &Key, watch: WatchId) {
        if let Some(list) = self.watchers.get_mut(key.as_str()) {
            list.retain(|w| *w != watch);
            if list.is_empty() {
                self.watchers.remove(key.as_str());
            }
        }
    }

    /// Keys currently online or idle in this shard.
    pub(crate) fn online(&self) -> usize {
        self.online
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
