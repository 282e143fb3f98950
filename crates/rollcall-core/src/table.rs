//! The presence table: every presence in one slab of 40-byte records, listed per topic in the
//! topic's member vector and chained per key (all topics), plus the key statuses they drive.
//!
//! Called by [`crate::Engine`] with its table lock held; everything here is single-threaded.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::config::Config;
use crate::diff::{Diff, DiffEntry, PresenceView};
use crate::error::TrackError;
use crate::ids::{Key, PresenceRef, Topic};
use crate::meta::Meta;
use crate::output::{LeaveReason, Outputs};
use crate::slab::{NONE, Slab};
use crate::status::{KeyAt, KeyTable};
use crate::time::Millis;
use crate::topics::Topics;

/// What a `track` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackChange {
    /// A new presence joined.
    Joined,
    /// The connection's presence for this topic and key got a new meta (and a new ref).
    Updated,
    /// The meta was identical to the tracked one: nothing changed, no diff.
    Unchanged,
}

/// One presence. Its connection is known from the connection's own list of presence ids.
#[derive(Debug, Default)]
struct Presence {
    /// `None` while the slot is free.
    meta: Option<Meta>,
    presence_ref: u64,
    topic: u32,
    key: u32,
    /// Next presence of the same key (any topic); `NONE` ends the chain.
    next: u32,
    /// Position in the topic's member vector.
    pos: u32,
}

/// Presences, topics and key statuses.
#[derive(Debug)]
pub(crate) struct Table {
    presences: Slab<Presence>,
    /// `phx_ref_prev` of presences created by a meta update (only those).
    prev_refs: HashMap<u32, PresenceRef, RandomState>,
    pub(crate) topics: Topics,
    pub(crate) keys: KeyTable,
}

/// The outcome of [`Table::track`].
pub(crate) struct TrackOutcome {
    pub(crate) presence_ref: PresenceRef,
    pub(crate) change: TrackChange,
    /// The id of a presence that joined.
    pub(crate) joined: Option<u32>,
}

impl Table {
    pub(crate) fn new(cfg: &Config) -> Self {
        Table {
            presences: Slab::default(),
            prev_refs: HashMap::default(),
            topics: Topics::new(cfg),
            keys: KeyTable::new(cfg),
        }
    }

    fn view(&self, p: u32) -> PresenceView {
        let pr = self.presences.get(p);
        PresenceView {
            presence_ref: PresenceRef::new(pr.presence_ref).expect("live presence"),
            prev_ref: self.prev_ref(p),
            meta: pr.meta.clone().expect("live presence"),
        }
    }

    fn prev_ref(&self, p: u32) -> Option<PresenceRef> {
        if self.prev_refs.is_empty() {
            return None;
        }
        self.prev_refs.get(&p).copied()
    }

    /// The key id of presence `p`.
    pub(crate) fn key_of(&self, p: u32) -> u32 {
        self.presences.get(p).key
    }

    /// Among `held` (one connection's presences), the one for `topic`/`key`.
    pub(crate) fn find_held(&self, held: &[u32], topic: &str, key: &str) -> Option<u32> {
        if held.is_empty() {
            return None;
        }
        self.held(held, self.topics.find(topic)?, self.keys.find(key)?)
    }

    /// Among `held`, the presence in topic `t` under key `k`.
    fn held(&self, held: &[u32], t: u32, k: u32) -> Option<u32> {
        held.iter().copied().find(|&p| {
            let pr = self.presences.get(p);
            pr.topic == t && pr.key == k
        })
    }

    /// Presences of key `k` in topic `t`, in the order they joined.
    fn chain(&self, k: u32, t: u32) -> impl Iterator<Item = u32> + '_ {
        let mut p = self.keys.state(k).head;
        std::iter::from_fn(move || {
            while p != NONE {
                let cur = p;
                let pr = self.presences.get(cur);
                p = pr.next;
                if pr.topic == t {
                    return Some(cur);
                }
            }
            None
        })
    }

    /// Adds or updates the presence of a connection holding `held` for `topic`/`key`, and
    /// emits its diff. `at` is [`KeyTable::locate`] of `key` (done first by the caller, so its
    /// cache miss overlaps the connection lookup's); `mint` gives a fresh ref.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn track(
        &mut self,
        held: &[u32],
        topic: &Topic,
        key: &Key,
        at: KeyAt,
        meta: Meta,
        now: Millis,
        mint: impl FnOnce() -> PresenceRef,
        cfg: &Config,
        out: &mut Outputs,
    ) -> Result<TrackOutcome, TrackError> {
        // One lookup of each name: a track is mostly these two probes.
        let (t, k) = (self.topics.find(topic), at.id);
        if let (Some(t), Some(k)) = (t, k)
            && let Some(p) = self.held(held, t, k)
        {
            return Ok(self.update(p, key, meta, now, mint, cfg, out));
        }
        let in_topic = match (t, k) {
            (Some(t), Some(k)) => self.chain(k, t).count(),
            _ => 0,
        };
        if in_topic == 0
            && t.is_some_and(|t| self.topics.get(t).keys as usize >= cfg.max_keys_per_topic)
        {
            return Err(TrackError::TooManyKeys {
                max: cfg.max_keys_per_topic,
            });
        }
        if in_topic >= cfg.max_presences_per_key {
            return Err(TrackError::TooManyPresences {
                max: cfg.max_presences_per_key,
            });
        }
        let t = t.unwrap_or_else(|| self.topics.intern(topic));
        let k = k.unwrap_or_else(|| self.keys.insert_new(key, at.hash, now));
        let r = mint();
        let p = self.presences.insert(Presence {
            meta: Some(meta),
            presence_ref: r.raw(),
            topic: t,
            key: k,
            next: NONE,
            pos: 0,
        });
        debug_assert!(
            p < 1 << 31,
            "presence ids leave the top bit for connection lists"
        );
        self.presences.get_mut(p).pos = self.topics.push_member(t, p);
        self.link(k, p);
        if in_topic == 0 {
            self.topics.get_mut(t).keys += 1;
        }
        let new_conn = !held.iter().any(|&q| self.presences.get(q).key == k);
        self.keys.presence_added(k, key, new_conn, now, cfg, out);
        let diff = Diff {
            joins: vec![DiffEntry {
                key: key.clone(),
                presence: self.view(p),
            }],
            leaves: Vec::new(),
        };
        self.topics.emit(t, diff, now, cfg, &mut out.diffs);
        Ok(TrackOutcome {
            presence_ref: r,
            change: TrackChange::Joined,
            joined: Some(p),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        p: u32,
        key: &Key,
        meta: Meta,
        now: Millis,
        mint: impl FnOnce() -> PresenceRef,
        cfg: &Config,
        out: &mut Outputs,
    ) -> TrackOutcome {
        let old = self.view(p);
        if old.meta == meta {
            return TrackOutcome {
                presence_ref: old.presence_ref,
                change: TrackChange::Unchanged,
                joined: None,
            };
        }
        let r = mint();
        let pr = self.presences.get_mut(p);
        pr.presence_ref = r.raw();
        pr.meta = Some(meta);
        let t = pr.topic;
        self.prev_refs.insert(p, old.presence_ref);
        self.keys.activity(key, now, cfg, out);
        let diff = Diff {
            joins: vec![DiffEntry {
                key: key.clone(),
                presence: self.view(p),
            }],
            leaves: vec![DiffEntry {
                key: key.clone(),
                presence: old,
            }],
        };
        self.topics.emit(t, diff, now, cfg, &mut out.diffs);
        TrackOutcome {
            presence_ref: r,
            change: TrackChange::Updated,
            joined: None,
        }
    }

    /// Appends presence `p` to key `k`'s chain.
    fn link(&mut self, k: u32, p: u32) {
        let head = self.keys.state(k).head;
        if head == NONE {
            self.keys.state_mut(k).head = p;
            return;
        }
        let mut q = head;
        while self.presences.get(q).next != NONE {
            q = self.presences.get(q).next;
        }
        self.presences.get_mut(q).next = p;
    }

    /// Takes presence `p` out of key `k`'s chain.
    fn unlink(&mut self, k: u32, p: u32) {
        let next = self.presences.get(p).next;
        let head = self.keys.state(k).head;
        if head == p {
            self.keys.state_mut(k).head = next;
            return;
        }
        let mut q = head;
        while q != NONE {
            let after = self.presences.get(q).next;
            if after == p {
                self.presences.get_mut(q).next = next;
                return;
            }
            q = after;
        }
        debug_assert!(false, "presence missing from its key's chain");
    }

    /// Removes presence `p` and emits its leave. `key` is its key if the caller has it at
    /// hand; `last_of_conn` when its connection holds no other presence of that key.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn remove(
        &mut self,
        p: u32,
        key: Option<&Key>,
        last_of_conn: bool,
        at: Millis,
        reason: LeaveReason,
        now: Millis,
        cfg: &Config,
        out: &mut Outputs,
    ) {
        let view = self.view(p);
        let (t, k, pos) = {
            let pr = self.presences.get(p);
            (pr.topic, pr.key, pr.pos)
        };
        self.unlink(k, p);
        self.presences.remove(p);
        if !self.prev_refs.is_empty() {
            self.prev_refs.remove(&p);
        }
        if let Some(moved) = self.topics.remove_member(t, pos) {
            self.presences.get_mut(moved).pos = pos;
        }
        if self.chain(k, t).next().is_none() {
            self.topics.get_mut(t).keys -= 1;
        }
        let key = key.cloned().unwrap_or_else(|| Key::new(self.keys.name(k)));
        self.keys
            .presence_removed(k, last_of_conn, at, reason, now, cfg, out);
        let diff = Diff {
            joins: Vec::new(),
            leaves: vec![DiffEntry {
                key,
                presence: view,
            }],
        };
        self.topics.emit(t, diff, now, cfg, &mut out.diffs);
        self.topics.drop_if_idle(t);
    }

    /// The members of `topic` as (key id, presence id), sorted by key id so each key's
    /// presences are adjacent (in the order they joined the topic's vector).
    fn grouped(&self, topic: &str) -> Vec<(u32, u32)> {
        let Some(t) = self.topics.find(topic) else {
            return Vec::new();
        };
        let members = &self.topics.get(t).members;
        let mut pairs: Vec<(u32, u32)> = members
            .iter()
            .map(|&p| (self.presences.get(p).key, p))
            .collect();
        pairs.sort_by_key(|&(k, _)| k);
        pairs
    }

    /// The presences of `topic`, grouped by key.
    pub(crate) fn list(&self, topic: &str) -> Vec<(Key, Vec<PresenceView>)> {
        self.grouped(topic)
            .chunk_by(|a, b| a.0 == b.0)
            .map(|g| {
                let key = Key::new(self.keys.name(g[0].0));
                (key, g.iter().map(|&(_, p)| self.view(p)).collect())
            })
            .collect()
    }

    /// The presences of one key in `topic`, in the order they joined.
    pub(crate) fn get(&self, topic: &str, key: &str) -> Vec<PresenceView> {
        match (self.topics.find(topic), self.keys.find(key)) {
            (Some(t), Some(k)) => self.chain(k, t).map(|p| self.view(p)).collect(),
            _ => Vec::new(),
        }
    }

    /// Writes the `presence_state` payload of `topic` (`{}` when empty).
    pub(crate) fn write_state_json(&self, topic: &str, out: &mut Vec<u8>) {
        let pairs = self.grouped(topic);
        crate::json::write_groups(
            out,
            pairs.chunk_by(|a, b| a.0 == b.0).map(|g| {
                let views = g.iter().map(|&(_, p)| {
                    let pr = self.presences.get(p);
                    let r = PresenceRef::new(pr.presence_ref).expect("live presence");
                    let meta = pr.meta.as_ref().expect("live presence");
                    (meta, r, self.prev_ref(p))
                });
                (self.keys.name(g[0].0), views)
            }),
        );
    }

    /// Number of keys present in `topic`.
    pub(crate) fn key_count(&self, topic: &str) -> usize {
        self.topics
            .find(topic)
            .map_or(0, |t| self.topics.get(t).keys as usize)
    }

    /// Number of presences.
    pub(crate) fn presences(&self) -> usize {
        self.presences.len()
    }
}

#[cfg(test)]
mod tests;
