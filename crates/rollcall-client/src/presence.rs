//! The synced presence map of one channel, with realtime-js's exact sync semantics
//! (protocol §4.6; SPHX `presence.js`, RJS `RealtimePresence.ts`). Sans-IO: the driver feeds it
//! `presence_state` and `presence_diff` payloads and forwards the events it returns.
//!
//! * Until a `presence_state` for the channel's **current** join ref has arrived, diffs are
//!   buffered, not applied.
//! * `presence_state` runs `syncState`: keys missing from the new state leave, metas with new
//!   refs join, vanished refs leave; then the buffered diffs are applied in order; then one
//!   [`PresenceEvent::Sync`].
//! * A diff outside the pending state applies joins first (the joined metas replace the entry;
//!   existing metas with other refs are put in front of them), then leaves (a key with no metas
//!   left is deleted), then one [`PresenceEvent::Sync`].

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// One presence as realtime-js's `presenceState()` shows it: the tracked meta, with the
/// server's `phx_ref` as `presence_ref`.
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    /// The server's opaque, unique ref for this presence (`phx_ref` on the wire).
    pub presence_ref: String,
    /// The tracked meta without `phx_ref` and `phx_ref_prev`.
    pub meta: Map<String, Value>,
}

/// A presence event, as delivered to realtime-js's `.on('presence', {event}, cb)` callbacks.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PresenceEvent {
    /// Presences joined `key`.
    Join {
        /// The presence key.
        key: String,
        /// The key's presences before this join (empty for a new key).
        current_presences: Vec<Presence>,
        /// The presences that joined.
        new_presences: Vec<Presence>,
    },
    /// Presences left `key`.
    Leave {
        /// The presence key.
        key: String,
        /// The key's presences after this leave (empty when the key is gone).
        current_presences: Vec<Presence>,
        /// The presences that left.
        left_presences: Vec<Presence>,
    },
    /// The state is consistent again: fired once per `presence_state` and once per applied
    /// diff.
    Sync,
}

/// The presence list of every key, in insertion order as in realtime-js.
pub type PresenceState = IndexMap<String, Vec<Presence>>;

/// A channel's presence map plus its pending-diff buffer.
#[derive(Debug, Default)]
pub struct PresenceMap {
    state: PresenceState,
    /// The join ref the state was last synced for; None before the first `presence_state`.
    join_ref: Option<String>,
    pending: Vec<Diff>,
}

/// A parsed `presence_diff` payload, keys in wire order.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Diff {
    #[serde(default)]
    joins: Entries,
    #[serde(default)]
    leaves: Entries,
}

/// `{key: {metas: [...]}, ...}` in wire order.
#[derive(Debug, Clone, Default)]
pub struct Entries(Vec<(String, Vec<Presence>)>);

impl PresenceMap {
    /// A snapshot of the state (`presenceState()`).
    pub fn state(&self) -> &PresenceState {
        &self.state
    }

    /// True if `key` has at least one presence.
    pub fn contains(&self, key: &str) -> bool {
        self.state.get(key).is_some_and(|p| !p.is_empty())
    }

    /// Handles a `presence_state` received while the channel's join ref is `join_ref`.
    ///
    /// # Errors
    /// A payload that is not `{key: {metas: [...]}}`; the map is unchanged.
    pub fn handle_state(
        &mut self,
        join_ref: Option<&str>,
        payload: &str,
        out: &mut Vec<PresenceEvent>,
    ) -> Result<(), serde_json::Error> {
        let new: Entries = serde_json::from_str(payload)?;
        self.join_ref = join_ref.map(str::to_owned);
        let diff = sync_state_diff(&self.state, new);
        apply_diff(&mut self.state, diff, out);
        for diff in std::mem::take(&mut self.pending) {
            apply_diff(&mut self.state, diff, out);
        }
        out.push(PresenceEvent::Sync);
        Ok(())
    }

    /// Handles a `presence_diff`; buffers it while no state has arrived for `join_ref`.
    ///
    /// # Errors
    /// A payload that is not `{joins, leaves}`; the map is unchanged.
    pub fn handle_diff(
        &mut self,
        join_ref: Option<&str>,
        payload: &str,
        out: &mut Vec<PresenceEvent>,
    ) -> Result<(), serde_json::Error> {
        let diff: Diff = serde_json::from_str(payload)?;
        if self.join_ref.is_none() || self.join_ref.as_deref() != join_ref {
            self.pending.push(diff);
        } else {
            apply_diff(&mut self.state, diff, out);
            out.push(PresenceEvent::Sync);
        }
        Ok(())
    }

    /// Empties the map (the channel left or was closed), firing nothing.
    pub fn clear(&mut self) {
        self.state.clear();
        self.pending.clear();
        self.join_ref = None;
    }
}

/// `Presence.syncState`: the diff that turns `current` into `new`.
fn sync_state_diff(current: &PresenceState, new: Entries) -> Diff {
    let mut diff = Diff::default();
    for (key, metas) in current {
        if !new.0.iter().any(|(k, _)| k == key) {
            diff.leaves.0.push((key.clone(), metas.clone()));
        }
    }
    for (key, new_metas) in new.0 {
        match current.get(&key) {
            Some(cur) => {
                let joined: Vec<Presence> = new_metas
                    .iter()
                    .filter(|m| !cur.iter().any(|c| c.presence_ref == m.presence_ref))
                    .cloned()
                    .collect();
                let left: Vec<Presence> = cur
                    .iter()
                    .filter(|c| !new_metas.iter().any(|m| m.presence_ref == c.presence_ref))
                    .cloned()
                    .collect();
                if !joined.is_empty() {
                    diff.joins.0.push((key.clone(), joined));
                }
                if !left.is_empty() {
                    diff.leaves.0.push((key, left));
                }
            }
            None => diff.joins.0.push((key, new_metas)),
        }
    }
    diff
}

/// `Presence.syncDiff` without the trailing sync.
fn apply_diff(state: &mut PresenceState, diff: Diff, out: &mut Vec<PresenceEvent>) {
    for (key, new_presences) in diff.joins.0 {
        let current = state.get(&key).cloned();
        let mut metas: Vec<Presence> = match &current {
            Some(cur) => cur
                .iter()
                .filter(|c| {
                    !new_presences
                        .iter()
                        .any(|m| m.presence_ref == c.presence_ref)
                })
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        metas.extend(new_presences.iter().cloned());
        state.insert(key.clone(), metas);
        out.push(PresenceEvent::Join {
            key,
            current_presences: current.unwrap_or_default(),
            new_presences,
        });
    }
    for (key, left_presences) in diff.leaves.0 {
        let Some(cur) = state.get_mut(&key) else {
            continue;
        };
        cur.retain(|c| {
            !left_presences
                .iter()
                .any(|l| l.presence_ref == c.presence_ref)
        });
        let current_presences = cur.clone();
        if current_presences.is_empty() {
            state.shift_remove(&key);
        }
        out.push(PresenceEvent::Leave {
            key,
            current_presences,
            left_presences,
        });
    }
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of key to {metas: [...]}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                #[derive(Deserialize)]
                struct Metas {
                    metas: Vec<Map<String, Value>>,
                }
                let mut out = Vec::new();
                while let Some((key, Metas { metas })) = map.next_entry::<String, Metas>()? {
                    let metas = metas
                        .into_iter()
                        .map(to_presence)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(de::Error::custom)?;
                    out.push((key, metas));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Moves `phx_ref` out of a wire meta and drops `phx_ref_prev`, as RJS's transform does.
fn to_presence(mut meta: Map<String, Value>) -> Result<Presence, &'static str> {
    meta.remove("phx_ref_prev");
    match meta.remove("phx_ref") {
        Some(Value::String(presence_ref)) => Ok(Presence { presence_ref, meta }),
        _ => Err("a presence meta has no string phx_ref"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(
        map: &mut PresenceMap,
        jr: &str,
        state: Option<&str>,
        diff: Option<&str>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = state {
            map.handle_state(Some(jr), s, &mut out).unwrap();
        }
        if let Some(d) = diff {
            map.handle_diff(Some(jr), d, &mut out).unwrap();
        }
        out.iter().map(describe).collect()
    }

    fn describe(e: &PresenceEvent) -> String {
        let refs = |p: &[Presence]| {
            p.iter()
                .map(|p| p.presence_ref.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        match e {
            PresenceEvent::Join {
                key,
                current_presences,
                new_presences,
            } => {
                format!(
                    "join {key} [{}] +[{}]",
                    refs(current_presences),
                    refs(new_presences)
                )
            }
            PresenceEvent::Leave {
                key,
                current_presences,
                left_presences,
            } => {
                format!(
                    "leave {key} [{}] -[{}]",
                    refs(current_presences),
                    refs(left_presences)
                )
            }
            PresenceEvent::Sync => "sync".into(),
        }
    }

    fn refs(map: &PresenceMap, key: &str) -> Vec<String> {
        map.state()[key]
            .iter()
            .map(|p| p.presence_ref.clone())
            .collect()
    }

    #[test]
    fn diffs_before_the_state_are_buffered_then_applied_after_it() {
        let mut m = PresenceMap::default();
        let d = r#"{"joins":{"b":{"metas":[{"phx_ref":"2"}]}},"leaves":{}}"#;
        assert!(events(&mut m, "1", None, Some(d)).is_empty());
        assert!(m.state().is_empty());
        let s = r#"{"a":{"metas":[{"x":1,"phx_ref":"1"}]}}"#;
        assert_eq!(
            events(&mut m, "1", Some(s), None),
            ["join a [] +[1]", "join b [] +[2]", "sync"]
        );
        assert_eq!(m.state()["a"][0].meta["x"], 1);
    }

    #[test]
    fn an_empty_state_still_fires_one_sync() {
        let mut m = PresenceMap::default();
        assert_eq!(events(&mut m, "1", Some("{}"), None), ["sync"]);
    }

    #[test]
    fn an_update_fires_join_then_leave_then_one_sync() {
        let mut m = PresenceMap::default();
        events(
            &mut m,
            "1",
            Some(r#"{"a":{"metas":[{"s":"on","phx_ref":"1"}]}}"#),
            None,
        );
        let d = r#"{"joins":{"a":{"metas":[{"s":"away","phx_ref":"2","phx_ref_prev":"1"}]}},
                   "leaves":{"a":{"metas":[{"s":"on","phx_ref":"1"}]}}}"#;
        assert_eq!(
            events(&mut m, "1", None, Some(d)),
            ["join a [1] +[2]", "leave a [2] -[1]", "sync"]
        );
        assert_eq!(refs(&m, "a"), ["2"]);
        assert!(!m.state()["a"][0].meta.contains_key("phx_ref_prev"));
    }

    #[test]
    fn joined_metas_go_after_the_existing_ones() {
        let mut m = PresenceMap::default();
        events(
            &mut m,
            "1",
            Some(r#"{"u":{"metas":[{"phx_ref":"1"}]}}"#),
            None,
        );
        events(
            &mut m,
            "1",
            None,
            Some(r#"{"joins":{"u":{"metas":[{"phx_ref":"2"}]}},"leaves":{}}"#),
        );
        assert_eq!(refs(&m, "u"), ["1", "2"]);
        let leave = r#"{"joins":{},"leaves":{"u":{"metas":[{"phx_ref":"1"}]}}}"#;
        assert_eq!(
            events(&mut m, "1", None, Some(leave)),
            ["leave u [2] -[1]", "sync"]
        );
        assert!(m.contains("u"));
    }

    #[test]
    fn a_leave_for_an_unknown_key_is_ignored() {
        let mut m = PresenceMap::default();
        events(&mut m, "1", Some("{}"), None);
        let leave = r#"{"joins":{},"leaves":{"z":{"metas":[{"phx_ref":"9"}]}}}"#;
        assert_eq!(events(&mut m, "1", None, Some(leave)), ["sync"]);
    }

    #[test]
    fn a_new_state_after_rejoin_leaves_vanished_keys_and_refs() {
        let mut m = PresenceMap::default();
        events(
            &mut m,
            "1",
            Some(r#"{"a":{"metas":[{"phx_ref":"1"}]},"b":{"metas":[{"phx_ref":"2"}]}}"#),
            None,
        );
        // rejoined with join ref 5: diffs wait for the new state
        let d = r#"{"joins":{"c":{"metas":[{"phx_ref":"4"}]}},"leaves":{}}"#;
        assert!(events(&mut m, "5", None, Some(d)).is_empty());
        let s = r#"{"b":{"metas":[{"phx_ref":"3"}]}}"#;
        assert_eq!(
            events(&mut m, "5", Some(s), None),
            [
                "join b [2] +[3]",
                "leave a [] -[1]",
                "leave b [3] -[2]",
                "join c [] +[4]",
                "sync"
            ]
        );
        assert_eq!(m.state().keys().collect::<Vec<_>>(), ["b", "c"]);
    }

    #[test]
    fn a_meta_without_phx_ref_is_an_error_and_changes_nothing() {
        let mut m = PresenceMap::default();
        let mut out = Vec::new();
        assert!(
            m.handle_state(Some("1"), r#"{"a":{"metas":[{}]}}"#, &mut out)
                .is_err()
        );
        assert!(out.is_empty() && m.state().is_empty());
    }
}
