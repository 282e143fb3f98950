//! Presence diffs (`joins`/`leaves`) and the batcher that coalesces them per topic.

use crate::ids::{Key, PresenceRef};
use crate::meta::Meta;

/// One presence as clients see it: its ref, the ref it replaced (on update) and its meta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceView {
    /// This presence's `phx_ref`.
    pub presence_ref: PresenceRef,
    /// On an update, the ref of the presence this one replaces (`phx_ref_prev`).
    pub prev_ref: Option<PresenceRef>,
    /// The tracked meta.
    pub meta: Meta,
}

/// One entry of a diff: a key and one of its presences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    /// The presence key.
    pub key: Key,
    /// The presence that joined or left.
    pub presence: PresenceView,
}

/// What changed in one topic: presences that joined and presences that left.
///
/// Serialises straight into Supabase's `presence_diff` payload (see
/// [`Diff::write_json`]). Joins are applied before leaves by clients; an update is a join of
/// the new presence (carrying `prev_ref`) plus a leave of the old one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Presences that joined, in order.
    pub joins: Vec<DiffEntry>,
    /// Presences that left, in order.
    pub leaves: Vec<DiffEntry>,
}

impl Diff {
    /// True when nothing joined or left.
    pub fn is_empty(&self) -> bool {
        self.joins.is_empty() && self.leaves.is_empty()
    }

    /// Appends a later diff of the same topic, cancelling a join and a leave of the same
    /// presence: the result, applied to any replica, equals applying `self` then `later`.
    pub fn merge(&mut self, later: Diff) {
        // Refs are never reused, so a leave in `later` can only cancel a join from an earlier
        // diff, never one in `later` itself.
        let earlier_joins = self.joins.len();
        for leave in later.leaves {
            let joined = self.joins[..earlier_joins]
                .iter()
                .position(|j| j.presence.presence_ref == leave.presence.presence_ref);
            match joined {
                Some(i) => {
                    self.joins.remove(i);
                }
                None => self.leaves.push(leave),
            }
        }
        self.joins.extend(later.joins);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, r: u64) -> DiffEntry {
        DiffEntry {
            key: Key::new(key),
            presence: PresenceView {
                presence_ref: PresenceRef::new(r).unwrap(),
                prev_ref: None,
                meta: Meta::empty(),
            },
        }
    }

    #[test]
    fn a_join_and_leave_in_one_window_cancel_out() {
        let mut d = Diff {
            joins: vec![entry("a", 1)],
            leaves: vec![],
        };
        d.merge(Diff {
            joins: vec![],
            leaves: vec![entry("a", 1)],
        });
        assert!(d.is_empty());
    }

    #[test]
    fn an_update_after_a_join_keeps_only_the_new_presence() {
        let mut d = Diff {
            joins: vec![entry("a", 1)],
            leaves: vec![],
        };
        d.merge(Diff {
            joins: vec![entry("a", 2)],
            leaves: vec![entry("a", 1)],
        });
        assert_eq!(d.joins, vec![entry("a", 2)]);
        assert!(d.leaves.is_empty());
    }

    #[test]
    fn leaves_of_presences_from_before_the_window_are_kept() {
        let mut d = Diff::default();
        d.merge(Diff {
            joins: vec![],
            leaves: vec![entry("b", 7)],
        });
        assert_eq!(d.leaves, vec![entry("b", 7)]);
    }
}
