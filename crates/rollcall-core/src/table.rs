//! The presence table of one shard: topic → key → presences, plus per-topic diff batching.
//!
//! A shard owns a subset of topics (chosen by hash in [`crate::Engine`]); everything here is
//! single-threaded and is called with the shard's lock held.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use smallvec::SmallVec;

use crate::config::Config;
use crate::diff::{Diff, DiffEntry, Presence, PresenceView};
use crate::error::TrackError;
use crate::ids::{ConnId, Key, PresenceRef, Topic};
use crate::meta::Meta;
use crate::output::TopicDiff;
use crate::time::Millis;
use crate::timer::Deadlines;

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

type Presences = SmallVec<[Presence; 1]>;

#[derive(Debug, Default)]
struct TopicState {
    keys: HashMap<Key, Presences, RandomState>,
    /// Diff accumulated in the current batch window, with the bucket of its flush deadline.
    pending: Option<(Diff, u64)>,
}

/// One shard's topics.
#[derive(Debug)]
pub(crate) struct TopicShard {
    topics: HashMap<Topic, TopicState, RandomState>,
    flushes: Deadlines<Topic>,
    presences: usize,
}

impl TopicShard {
    pub(crate) fn new(cfg: &Config) -> Self {
        TopicShard {
            topics: HashMap::default(),
            flushes: Deadlines::new(cfg.timer_granularity),
            presences: 0,
        }
    }

    /// Adds or updates `conn`'s presence for `topic`/`key`. `mint` gives a fresh ref.
    pub(crate) fn track(
        &mut self,
        topic: &Topic,
        key: &Key,
        conn: ConnId,
        meta: Meta,
        mint: impl FnOnce() -> PresenceRef,
        cfg: &Config,
    ) -> Result<(PresenceRef, TrackChange, Diff), TrackError> {
        let state = self.topics.entry(topic.clone()).or_default();
        if !state.keys.contains_key(key.as_str()) && state.keys.len() >= cfg.max_keys_per_topic {
            return Err(TrackError::TooManyKeys {
                max: cfg.max_keys_per_topic,
            });
        }
        let list = state.keys.entry(key.clone()).or_default();
        if let Some(existing) = list.iter_mut().find(|p| p.conn == conn) {
            if existing.view.meta == meta {
                return Ok((
                    existing.view.presence_ref,
                    TrackChange::Unchanged,
                    Diff::default(),
                ));
            }
            let old = existing.view.clone();
            let new_ref = mint();
            existing.view = PresenceView {
                presence_ref: new_ref,
                prev_ref: Some(old.presence_ref),
                meta,
            };
            let diff = Diff {
                joins: vec![DiffEntry {
                    key: key.clone(),
                    presence: existing.view.clone(),
                }],
                leaves: vec![DiffEntry {
                    key: key.clone(),
                    presence: old,
                }],
            };
            return Ok((new_ref, TrackChange::Updated, diff));
        }
        if list.len() >= cfg.max_presences_per_key {
            let max = cfg.max_presences_per_key;
            if list.is_empty() {
                state.keys.remove(key.as_str());
            }
            return Err(TrackError::TooManyPresences { max });
        }
        let view = PresenceView {
            presence_ref: mint(),
            prev_ref: None,
            meta,
        };
        let r = view.presence_ref;
        list.push(Presence {
            conn,
            view: view.clone(),
        });
        self.presences += 1;
        let diff = Diff {
            joins: vec![DiffEntry {
                key: key.clone(),
                presence: view,
            }],
            leaves: Vec::new(),
        };
        Ok((r, TrackChange::Joined, diff))
    }

    /// Removes `conn`'s presence for `topic`/`key`; returns the leave diff, if it existed.
    pub(crate) fn untrack(&mut self, topic: &Topic, key: &Key, conn: ConnId) -> Option<Diff> {
        let state = self.topics.get_mut(topic.as_str())?;
        let list = state.keys.get_mut(key.as_str())?;
        let i = list.iter().position(|p| p.conn == conn)?;
        let removed = list.remove(i);
        if list.is_empty() {
            state.keys.remove(key.as_str());
        }
        if state.keys.is_empty() && state.pending.is_none() {
            self.topics.remove(topic.as_str());
        }
        self.presences -= 1;
        Some(Diff {
            joins: Vec::new(),
            leaves: vec![DiffEntry {
                key: key.clone(),
                presence: removed.view,
            }],
        })
    }

    /// Emits `diff` now (window 0) or folds it into the topic's batch.
    pub(crate) fn emit(
        &mut self,
        topic: &Topic,
        diff: Diff,
        now: Millis,
        cfg: &Config,
        out: &mut Vec<TopicDiff>,
    ) {
        if diff.is_empty() {
            return;
        }
        if cfg.diff_batch_window == Millis::ZERO {
            out.push(TopicDiff {
                topic: topic.clone(),
                diff,
            });
            return;
        }
        let state = self.topics.entry(topic.clone()).or_default();
        match &mut state.pending {
            Some((pending, _)) => pending.merge(diff),
            None => {
                let bucket = self
                    .flushes
                    .schedule(now + cfg.diff_batch_window, topic.clone());
                state.pending = Some((diff, bucket));
            }
        }
    }

    /// Emits every batch whose window has closed at `now` (all of them with `all`).
    pub(crate) fn flush(&mut self, now: Millis, all: bool, out: &mut Vec<TopicDiff>) {
        let mut due = Vec::new();
        if all {
            due.extend(
                self.topics
                    .iter()
                    .filter_map(|(t, s)| s.pending.as_ref().map(|(_, b)| (*b, t.clone()))),
            );
        } else {
            self.flushes.pop_due(now, &mut due);
        }
        for (bucket, topic) in due {
            let Some(state) = self.topics.get_mut(topic.as_str()) else {
                continue;
            };
            if !matches!(&state.pending, Some((_, b)) if *b == bucket) {
                continue; // stale entry: that batch was already flushed
            }
            let (diff, _) = state.pending.take().expect("matched Some above");
            if state.keys.is_empty() {
                self.topics.remove(topic.as_str());
            }
            if !diff.is_empty() {
                out.push(TopicDiff { topic, diff });
            }
        }
    }

    /// When the earliest pending batch must be flushed.
    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.flushes.next_due()
    }

    /// The presences of `topic`, keys in table order.
    pub(crate) fn list(&self, topic: &str) -> Vec<(Key, Vec<PresenceView>)> {
        self.topics
            .get(topic)
            .map(|s| {
                s.keys
                    .iter()
                    .map(|(k, l)| (k.clone(), l.iter().map(|p| p.view.clone()).collect()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The presences of one key in `topic`.
    pub(crate) fn get(&self, topic: &str, key: &str) -> Vec<PresenceView> {
        self.topics
            .get(topic)
            .and_then(|s| s.keys.get(key))
            .map(|l| l.iter().map(|p| p.view.clone()).collect())
            .unwrap_or_default()
    }

    /// Writes the `presence_state` payload of `topic` (`{}` when empty).
    pub(crate) fn write_state_json(&self, topic: &str, out: &mut Vec<u8>) {
        match self.topics.get(topic) {
            Some(s) => crate::json::write_state(
                out,
                s.keys.iter().map(|(k, l)| (k, l.iter().map(|p| &p.view))),
            ),
            None => out.extend_from_slice(b"{}"),
        }
    }

    /// Number of keys present in `topic`.
    pub(crate) fn key_count(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |s| s.keys.len())
    }

    /// (topics with presences, presences) in this shard.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let topics = self.topics.values().filter(|s| !s.keys.is_empty()).count();
        (topics, self.presences)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minter() -> impl FnMut() -> PresenceRef {
        let mut n = 0;
        move || {
            n += 1;
            PresenceRef::new(n).unwrap()
        }
    }

    #[test]
    fn retracking_changes_meta_as_one_join_plus_leave() {
        let cfg = Config::default();
        let mut shard = TopicShard::new(&cfg);
        let mut mint = minter();
        let (t, k) = (Topic::new("t"), Key::new("a"));
        let m1 = Meta::parse(r#"{"s":1}"#).unwrap();
        let (r1, c, d) = shard
            .track(&t, &k, ConnId(1), m1.clone(), &mut mint, &cfg)
            .unwrap();
        assert_eq!(
            (c, d.joins.len(), d.leaves.len()),
            (TrackChange::Joined, 1, 0)
        );
        let (_, c, d) = shard.track(&t, &k, ConnId(1), m1, &mut mint, &cfg).unwrap();
        assert_eq!(c, TrackChange::Unchanged);
        assert!(d.is_empty());
        let m2 = Meta::parse(r#"{"s":2}"#).unwrap();
        let (r2, c, d) = shard.track(&t, &k, ConnId(1), m2, &mut mint, &cfg).unwrap();
        assert_eq!(c, TrackChange::Updated);
        assert_eq!(d.joins[0].presence.prev_ref, Some(r1));
        assert_eq!(d.leaves[0].presence.presence_ref, r1);
        assert_ne!(r1, r2);
        assert_eq!(shard.get("t", "a").len(), 1);
    }

    #[test]
    fn two_connections_hold_two_presences_under_one_key() {
        let cfg = Config::default();
        let mut shard = TopicShard::new(&cfg);
        let mut mint = minter();
        let (t, k) = (Topic::new("t"), Key::new("u"));
        shard
            .track(&t, &k, ConnId(1), Meta::empty(), &mut mint, &cfg)
            .unwrap();
        shard
            .track(&t, &k, ConnId(2), Meta::empty(), &mut mint, &cfg)
            .unwrap();
        assert_eq!(shard.get("t", "u").len(), 2);
        assert!(shard.untrack(&t, &k, ConnId(1)).is_some());
        assert!(shard.untrack(&t, &k, ConnId(1)).is_none());
        assert_eq!(shard.get("t", "u").len(), 1);
        assert_eq!(shard.counts(), (1, 1));
    }

    #[test]
    fn limits_refuse_without_changing_anything() {
        let cfg = Config {
            max_presences_per_key: 1,
            max_keys_per_topic: 1,
            ..Config::default()
        };
        let mut shard = TopicShard::new(&cfg);
        let mut mint = minter();
        let t = Topic::new("t");
        shard
            .track(
                &t,
                &Key::new("a"),
                ConnId(1),
                Meta::empty(),
                &mut mint,
                &cfg,
            )
            .unwrap();
        let e = shard.track(
            &t,
            &Key::new("a"),
            ConnId(2),
            Meta::empty(),
            &mut mint,
            &cfg,
        );
        assert_eq!(e.unwrap_err(), TrackError::TooManyPresences { max: 1 });
        let e = shard.track(
            &t,
            &Key::new("b"),
            ConnId(2),
            Meta::empty(),
            &mut mint,
            &cfg,
        );
        assert_eq!(e.unwrap_err(), TrackError::TooManyKeys { max: 1 });
        assert_eq!(shard.key_count("t"), 1);
    }

    #[test]
    fn batched_diffs_flush_when_the_window_closes() {
        let cfg = Config {
            diff_batch_window: Millis(50),
            timer_granularity: Millis(10),
            ..Config::default()
        };
        let mut shard = TopicShard::new(&cfg);
        let mut mint = minter();
        let (t, k) = (Topic::new("t"), Key::new("a"));
        let mut out = Vec::new();
        let (_, _, d) = shard
            .track(&t, &k, ConnId(1), Meta::empty(), &mut mint, &cfg)
            .unwrap();
        shard.emit(&t, d, Millis(0), &cfg, &mut out);
        let d = shard.untrack(&t, &k, ConnId(1)).unwrap();
        shard.emit(&t, d, Millis(10), &cfg, &mut out);
        let (_, _, d) = shard
            .track(
                &t,
                &Key::new("b"),
                ConnId(2),
                Meta::empty(),
                &mut mint,
                &cfg,
            )
            .unwrap();
        shard.emit(&t, d, Millis(20), &cfg, &mut out);
        assert!(out.is_empty());
        assert_eq!(shard.next_due(), Some(Millis(50)));
        shard.flush(Millis(49), false, &mut out);
        assert!(out.is_empty());
        shard.flush(Millis(50), false, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].diff.joins.len(), 1);
        assert_eq!(&*out[0].diff.joins[0].key, "b");
        assert!(out[0].diff.leaves.is_empty());
    }
}
