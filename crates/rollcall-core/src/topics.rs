//! Topics: each has a `u32` id, a compact vector of the ids of its presences, the number of
//! distinct keys present, and the diff being batched for it (with `diff_batch_window` > 0).

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::config::Config;
use crate::diff::Diff;
use crate::ids::Topic;
use crate::output::TopicDiff;
use crate::slab::reserve_gently;
use crate::time::Millis;
use crate::timer::Deadlines;

/// One topic with presences or a pending batch.
#[derive(Debug)]
pub(crate) struct TopicState {
    pub(crate) name: Topic,
    /// Ids of the topic's presences; a presence records its position here.
    pub(crate) members: Vec<u32>,
    /// Distinct keys among the members.
    pub(crate) keys: u32,
    /// Diff accumulated in the current batch window, with the bucket of its flush deadline.
    pending: Option<(Diff, u64)>,
}

/// Every live topic.
#[derive(Debug)]
pub(crate) struct Topics {
    slots: Vec<Option<TopicState>>,
    free: Vec<u32>,
    index: HashMap<Topic, u32, RandomState>,
    flushes: Deadlines<u32>,
}

impl Topics {
    pub(crate) fn new(cfg: &Config) -> Self {
        Topics {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::default(),
            flushes: Deadlines::new(cfg.timer_granularity),
        }
    }

    /// The id of `name`, if live.
    pub(crate) fn find(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    /// The id of `name`, creating an empty topic if needed.
    pub(crate) fn intern(&mut self, name: &Topic) -> u32 {
        if let Some(&t) = self.index.get(name.as_str()) {
            return t;
        }
        let state = TopicState {
            name: name.clone(),
            members: Vec::new(),
            keys: 0,
            pending: None,
        };
        let t = match self.free.pop() {
            Some(t) => {
                self.slots[t as usize] = Some(state);
                t
            }
            None => {
                self.slots.push(Some(state));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 topics")
            }
        };
        self.index.insert(name.clone(), t);
        t
    }

    pub(crate) fn get(&self, t: u32) -> &TopicState {
        self.slots[t as usize].as_ref().expect("live topic id")
    }

    pub(crate) fn get_mut(&mut self, t: u32) -> &mut TopicState {
        self.slots[t as usize].as_mut().expect("live topic id")
    }

    /// Appends presence `p` to topic `t` and returns its position.
    pub(crate) fn push_member(&mut self, t: u32, p: u32) -> u32 {
        let members = &mut self.get_mut(t).members;
        reserve_gently(members, 1);
        members.push(p);
        (members.len() - 1) as u32
    }

    /// Removes the member at `pos`; returns the presence moved into `pos`, if any.
    pub(crate) fn remove_member(&mut self, t: u32, pos: u32) -> Option<u32> {
        let members = &mut self.get_mut(t).members;
        members.swap_remove(pos as usize);
        members.get(pos as usize).copied()
    }

    /// Frees topic `t` if it has neither presences nor a pending batch.
    pub(crate) fn drop_if_idle(&mut self, t: u32) {
        let s = self.get(t);
        if s.members.is_empty() && s.pending.is_none() {
            let s = self.slots[t as usize].take().expect("live topic id");
            self.index.remove(s.name.as_str());
            self.free.push(t);
        }
    }

    /// Emits `diff` now (window 0) or folds it into topic `t`'s batch.
    pub(crate) fn emit(
        &mut self,
        t: u32,
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
                topic: self.get(t).name.clone(),
                diff,
            });
            return;
        }
        match &mut self.get_mut(t).pending {
            Some((pending, _)) => pending.merge(diff),
            None => {
                let bucket = self.flushes.schedule(now + cfg.diff_batch_window, t);
                self.get_mut(t).pending = Some((diff, bucket));
            }
        }
    }

    /// Emits every batch whose window has closed at `now` (all of them with `all`).
    pub(crate) fn flush(&mut self, now: Millis, all: bool, out: &mut Vec<TopicDiff>) {
        let mut due = Vec::new();
        if all {
            due.extend(self.slots.iter().enumerate().filter_map(|(t, s)| {
                let (_, b) = s.as_ref()?.pending.as_ref()?;
                Some((*b, t as u32))
            }));
        } else {
            self.flushes.pop_due(now, &mut due);
        }
        for (bucket, t) in due {
            let Some(Some(state)) = self.slots.get_mut(t as usize) else {
                continue;
            };
            if !matches!(&state.pending, Some((_, b)) if *b == bucket) {
                continue; // stale entry: that batch was already flushed
            }
            let (diff, _) = state.pending.take().expect("matched Some above");
            let topic = state.name.clone();
            self.drop_if_idle(t);
            if !diff.is_empty() {
                out.push(TopicDiff { topic, diff });
            }
        }
    }

    /// When the earliest pending batch must be flushed.
    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.flushes.next_due()
    }

    /// Topics with at least one presence.
    pub(crate) fn count(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|s| !s.members.is_empty())
            .count()
    }
}
