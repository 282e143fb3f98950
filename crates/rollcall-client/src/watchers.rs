//! Watch sets: per watcher, the last status sent for each key, so only real changes go out.

use std::collections::HashMap;

use tokio::sync::mpsc;

use crate::event::{Status, StatusChange};
use crate::presence::PresenceEvent;

/// Every live [`Watch`](crate::Watch) of one client.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    list: Vec<Watcher>,
}

#[derive(Debug)]
struct Watcher {
    last: HashMap<String, Status>,
    tx: mpsc::UnboundedSender<StatusChange>,
}

impl Watchers {
    /// Registers a watcher and returns the keys' current statuses.
    pub(crate) fn add(
        &mut self,
        keys: Vec<String>,
        tx: mpsc::UnboundedSender<StatusChange>,
        status_of: impl Fn(&str) -> Status,
    ) -> HashMap<String, Status> {
        let last: HashMap<String, Status> = keys
            .into_iter()
            .map(|k| {
                let s = status_of(&k);
                (k, s)
            })
            .collect();
        let initial = last.clone();
        self.list.push(Watcher { last, tx });
        initial
    }

    /// The watched keys that presence `events` may have changed.
    pub(crate) fn touched(&self, events: &[PresenceEvent]) -> Vec<String> {
        if self.list.is_empty() {
            return Vec::new();
        }
        let mut keys: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                PresenceEvent::Join { key, .. } | PresenceEvent::Leave { key, .. } => Some(key),
                _ => None,
            })
            .filter(|k| self.list.iter().any(|w| w.last.contains_key(*k)))
            .cloned()
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Re-evaluates `keys` (None: every watched key) and sends the statuses that changed.
    /// Watchers whose receiver is gone are dropped.
    pub(crate) fn update(&mut self, keys: Option<&[String]>, status_of: impl Fn(&str) -> Status) {
        self.list.retain(|w| !w.tx.is_closed());
        for w in &mut self.list {
            let check: Vec<String> = match keys {
                Some(keys) => keys
                    .iter()
                    .filter(|k| w.last.contains_key(*k))
                    .cloned()
                    .collect(),
                None => w.last.keys().cloned().collect(),
            };
            for key in check {
                let now = status_of(&key);
                let last = w.last.get_mut(&key).expect("only watched keys are checked");
                if *last != now {
                    *last = now;
                    let _ = w.tx.send(StatusChange { key, status: now });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_changes_are_sent() {
        let mut w = Watchers::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let init = w.add(vec!["a".into()], tx, |_| Status::Offline);
        assert_eq!(init["a"], Status::Offline);
        w.update(None, |_| Status::Offline);
        assert!(rx.try_recv().is_err());
        w.update(Some(&["a".into()]), |_| Status::Online);
        w.update(Some(&["a".into()]), |_| Status::Online);
        assert_eq!(rx.try_recv().unwrap().status, Status::Online);
        assert!(rx.try_recv().is_err());
    }
}
