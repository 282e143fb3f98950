//! The remote view of one topic: what the other nodes have, kept for topics with local
//! subscribers, and how pub/sub messages and snapshots change it.
//!
//! Loading follows one rule that makes it exact: subscribe first, then read the snapshot and
//! publish a marker on the same connection; messages that arrive before both the snapshot
//! and the marker are buffered and replayed onto the snapshot. Every message published after
//! the subscription is seen, in order, and refs are never reused (a presence joins once and
//! leaves once), so snapshot + replay equals the live state whatever the interleaving. What
//! clients see is the difference between the old view and the final one, sent as one diff.

use std::collections::{HashMap, HashSet};

use rollcall_core::PresenceRef;

use crate::render;
use crate::wire::{NodePresences, Presence};

/// A change to a topic's view, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// A node's diff: the presences that joined, the refs that left.
    Diff {
        node: String,
        joins: Vec<Presence>,
        leaves: Vec<PresenceRef>,
    },
    /// A node's full state of the topic, replacing what was known.
    Reset {
        node: String,
        presences: Vec<Presence>,
    },
    /// A node is gone: all its presences leave.
    Gone { node: String },
}

/// A load in progress.
#[derive(Debug, Default)]
pub(crate) struct Loading {
    pub(crate) token: String,
    snapshot: Option<HashMap<String, NodePresences>>,
    marker_seen: bool,
    buffer: Vec<Op>,
}

/// One topic's remote view.
#[derive(Debug, Default)]
pub(crate) struct TopicView {
    /// Local subscribers (joined channels) of the topic.
    pub(crate) subs: usize,
    nodes: HashMap<String, NodePresences>,
    pub(crate) loading: Option<Loading>,
}

impl TopicView {
    /// Applies `op`; returns the `presence_diff` payload for local subscribers, if any.
    pub(crate) fn handle(&mut self, op: Op) -> Option<String> {
        if let Some(l) = &mut self.loading {
            l.buffer.push(op);
            return None;
        }
        apply(&mut self.nodes, op, true)
    }

    /// Starts (or restarts) a load identified by `token`. `fresh` drops messages buffered by
    /// an earlier load (they came through an older subscription, with a possible gap after
    /// them); otherwise they are kept, as a retry on the same subscription needs them.
    pub(crate) fn begin_load(&mut self, token: String, fresh: bool) {
        let buffer = match self.loading.take() {
            Some(l) if !fresh => l.buffer,
            _ => Vec::new(),
        };
        self.loading = Some(Loading {
            token,
            buffer,
            ..Loading::default()
        });
    }

    /// The snapshot of load `token` arrived.
    pub(crate) fn snapshot(
        &mut self,
        token: &str,
        snapshot: HashMap<String, NodePresences>,
        dead: &HashSet<String>,
    ) -> Option<String> {
        let l = self.loading.as_mut().filter(|l| l.token == token)?;
        l.snapshot = Some(snapshot);
        self.finish(dead)
    }

    /// The marker of load `token` came back through pub/sub.
    pub(crate) fn marker(&mut self, token: &str, dead: &HashSet<String>) -> Option<String> {
        let l = self.loading.as_mut().filter(|l| l.token == token)?;
        l.marker_seen = true;
        self.finish(dead)
    }

    fn finish(&mut self, dead: &HashSet<String>) -> Option<String> {
        let l = self.loading.as_mut()?;
        if !l.marker_seen || l.snapshot.is_none() {
            return None;
        }
        let l = self.loading.take().expect("checked above");
        let mut new = l.snapshot.expect("checked above");
        new.retain(|node, _| !dead.contains(node));
        for op in l.buffer {
            // Not reported one by one: the load reports old view → final view as one diff.
            apply(&mut new, op, false);
        }
        let mut joins = Vec::new();
        let mut leaves = Vec::new();
        for (node, presences) in &new {
            let old = self.nodes.get(node);
            for (r, p) in presences {
                if old.is_none_or(|o| !o.contains_key(r)) {
                    joins.push(p);
                }
            }
        }
        for (node, presences) in &self.nodes {
            let now = new.get(node);
            for (r, p) in presences {
                if now.is_none_or(|n| !n.contains_key(r)) {
                    leaves.push(p);
                }
            }
        }
        let out = render::diff(joins, leaves);
        self.nodes = new;
        out
    }

    /// Every remote presence.
    pub(crate) fn presences(&self) -> impl Iterator<Item = &Presence> {
        self.nodes.values().flat_map(|n| n.values())
    }

    /// Number of remote presences.
    pub(crate) fn len(&self) -> usize {
        self.nodes.values().map(|n| n.len()).sum()
    }
}

/// Applies one op to `nodes`; with `report`, returns the payload describing what actually
/// changed (a join already known or a leave of an unknown ref, e.g. replayed after a load, is
/// left out).
fn apply(nodes: &mut HashMap<String, NodePresences>, op: Op, report: bool) -> Option<String> {
    match op {
        Op::Diff {
            node,
            joins,
            leaves,
        } => {
            let entry = nodes.entry(node.clone()).or_default();
            let mut joined = Vec::with_capacity(joins.len());
            for p in joins {
                let r = p.presence_ref;
                if entry.insert_new(r, p) {
                    joined.push(r);
                }
            }
            let left: Vec<Presence> = leaves.iter().filter_map(|r| entry.remove(r)).collect();
            let out = report
                .then(|| render::diff(joined.iter().filter_map(|r| entry.get(r)), &left))
                .flatten();
            if entry.is_empty() {
                nodes.remove(&node);
            }
            out
        }
        Op::Reset { node, presences } => {
            let new: NodePresences = presences.into_iter().map(|p| (p.presence_ref, p)).collect();
            let old = nodes.remove(&node).unwrap_or_default();
            let joins = new.iter().filter(|(r, _)| !old.contains_key(r));
            let leaves = old.iter().filter(|(r, _)| !new.contains_key(r));
            let out = report
                .then(|| render::diff(joins.map(|(_, p)| p), leaves.map(|(_, p)| p)))
                .flatten();
            if !new.is_empty() {
                nodes.insert(node, new);
            }
            out
        }
        Op::Gone { node } => {
            let old = nodes.remove(&node).unwrap_or_default();
            report.then(|| render::diff([], old.values())).flatten()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: &str, r: u64) -> Presence {
        Presence {
            key: key.to_string(),
            presence_ref: PresenceRef::new(r).unwrap(),
            prev_ref: None,
            meta: r#"{"n":1}"#.into(),
        }
    }

    fn diff(node: &str, joins: &[(&str, u64)], leaves: &[u64]) -> Op {
        Op::Diff {
            node: node.into(),
            joins: joins.iter().map(|(k, r)| p(k, *r)).collect(),
            leaves: leaves
                .iter()
                .map(|r| PresenceRef::new(*r).unwrap())
                .collect(),
        }
    }

    fn refs(v: &TopicView) -> Vec<u64> {
        let mut r: Vec<u64> = v
            .nodes
            .values()
            .flat_map(|n| n.keys().map(|r| r.raw()))
            .collect();
        r.sort();
        r
    }

    fn snap(entries: &[(&str, &str, u64)]) -> HashMap<String, NodePresences> {
        let mut m: HashMap<String, NodePresences> = HashMap::new();
        for (node, key, r) in entries {
            let pr = p(key, *r);
            m.entry(node.to_string())
                .or_default()
                .insert(pr.presence_ref, pr);
        }
        m
    }

    #[test]
    fn a_remote_diff_is_rendered_once_and_a_replayed_join_not_at_all() {
        let mut v = TopicView::default();
        let out = v.handle(diff("b", &[("alice", 1)], &[])).unwrap();
        let out: serde_json::Value = serde_json::from_str(&out).unwrap();
        let r1 = PresenceRef::new(1).unwrap().to_string();
        assert_eq!(
            out,
            serde_json::json!({"joins": {"alice": {"metas": [{"n": 1, "phx_ref": r1}]}}, "leaves": {}})
        );
        assert_eq!(refs(&v), [1]);
        // a replayed join is not delivered twice
        assert_eq!(v.handle(diff("b", &[("alice", 1)], &[])), None);
    }

    #[test]
    fn a_join_and_leave_buffered_during_a_load_leave_no_ghost() {
        let mut v = TopicView::default();
        v.begin_load("t".into(), true);
        assert_eq!(v.handle(diff("b", &[("alice", 1)], &[])), None);
        assert_eq!(v.handle(diff("b", &[], &[1])), None);
        assert_eq!(v.marker("t", &HashSet::new()), None);
        // the snapshot was read after the leave: r1 is absent; r2 is there
        let out = v.snapshot("t", snap(&[("b", "bob", 2)]), &HashSet::new());
        assert_eq!(refs(&v), [2]);
        let out: serde_json::Value = serde_json::from_str(&out.unwrap()).unwrap();
        assert!(out["joins"]["bob"].is_object());
        assert!(out["leaves"].as_object().unwrap().is_empty());
    }

    #[test]
    fn a_stale_snapshot_is_corrected_by_buffered_leaves() {
        let mut v = TopicView::default();
        v.begin_load("t".into(), true);
        v.handle(diff("b", &[], &[1]));
        v.snapshot("t", snap(&[("b", "alice", 1)]), &HashSet::new());
        assert_eq!(v.marker("t", &HashSet::new()), None);
        assert!(refs(&v).is_empty());
    }

    #[test]
    fn a_reload_reports_only_the_difference_and_drops_dead_nodes() {
        let mut v = TopicView::default();
        v.begin_load("1".into(), true);
        v.marker("1", &HashSet::new());
        v.snapshot("1", snap(&[("b", "a", 1), ("c", "x", 9)]), &HashSet::new());
        v.begin_load("2".into(), true);
        assert_eq!(
            v.marker("1", &HashSet::new()),
            None,
            "a stale marker is ignored"
        );
        v.marker("2", &HashSet::new());
        let dead: HashSet<String> = ["c".to_string()].into();
        let out = v.snapshot(
            "2",
            snap(&[("b", "a", 1), ("b", "a", 2), ("c", "x", 9)]),
            &dead,
        );
        let out: serde_json::Value = serde_json::from_str(&out.unwrap()).unwrap();
        assert_eq!(out["joins"]["a"]["metas"].as_array().unwrap().len(), 1);
        assert_eq!(out["leaves"]["x"]["metas"].as_array().unwrap().len(), 1);
        assert_eq!(refs(&v), [1, 2]);
    }

    #[test]
    fn a_reset_replaces_and_gone_removes_a_node() {
        let mut v = TopicView::default();
        v.handle(diff("b", &[("a", 1), ("a", 2)], &[]));
        let out = v.handle(Op::Reset {
            node: "b".into(),
            presences: vec![p("a", 2), p("c", 3)],
        });
        let out: serde_json::Value = serde_json::from_str(&out.unwrap()).unwrap();
        assert!(out["joins"]["c"].is_object() && out["leaves"]["a"].is_object());
        assert_eq!(refs(&v), [2, 3]);
        assert!(v.handle(Op::Gone { node: "b".into() }).is_some());
        assert!(
            v.handle(Op::Gone { node: "b".into() }).is_none(),
            "gone twice: no second leave"
        );
        assert_eq!(v.len(), 0);
    }
}
