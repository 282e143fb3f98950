//! What a node does with what comes from Redis: pub/sub messages, loaded snapshots and node
//! deaths, each applied to the topic's view under the view lock and delivered from there (so
//! per topic in order).

use std::collections::HashMap;

use crate::cluster::{Cluster, Views, lock};
use crate::metrics::ClusterMetrics;
use crate::view::Op;
use crate::wire::{Frame, NodePresences, Presence, WireError};

impl Cluster {
    /// Handles one pub/sub message.
    pub(crate) fn on_message(&self, channel: &str, payload: &[u8]) {
        let Some(topic) = self.keys.topic_of_channel(channel) else {
            return;
        };
        let msg = match Frame::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                self.refused("pub/sub message", e);
                return;
            }
        };
        let me = self.cfg.node_id.as_str();
        let node = msg.node();
        let op = match msg {
            Frame::Broadcast {
                node,
                event,
                payload,
            } => {
                if node != me {
                    ClusterMetrics::inc(&self.metrics.broadcasts_received);
                    self.deliver(topic, event, payload);
                }
                return;
            }
            Frame::Marker { node, token } => {
                if node == me {
                    let mut v = lock(&self.views);
                    let Views { topics, dead } = &mut *v;
                    if let Some(out) = topics.get_mut(topic).and_then(|tv| tv.marker(token, dead)) {
                        self.deliver(topic, events::PRESENCE_DIFF, &out);
                    }
                }
                return;
            }
            _ if node == me => return,
            Frame::Diff {
                node,
                joins,
                leaves,
            } => {
                ClusterMetrics::inc(&self.metrics.diffs_received);
                Op::Diff {
                    node: node.to_string(),
                    joins: joins.into_iter().map(Presence::from).collect(),
                    leaves: leaves.iter().map(|e| e.presence_ref).collect(),
                }
            }
            Frame::Reset { node, presences } => Op::Reset {
                node: node.to_string(),
                presences: presences.into_iter().map(Presence::from).collect(),
            },
            Frame::Gone { node } => Op::Gone {
                node: node.to_string(),
            },
        };
        let mut v = lock(&self.views);
        if !matches!(op, Op::Gone { .. }) {
            v.dead.remove(node);
        }
        if let Some(out) = v.topics.get_mut(topic).and_then(|tv| tv.handle(op)) {
            self.deliver(topic, events::PRESENCE_DIFF, &out);
        }
    }

    /// A load's snapshot arrived.
    pub(crate) fn on_snapshot(
        &self,
        topic: &str,
        token: &str,
        snap: HashMap<String, NodePresences>,
    ) {
        ClusterMetrics::inc(&self.metrics.topic_loads);
        let mut v = lock(&self.views);
        let Views { topics, dead } = &mut *v;
        if let Some(out) = topics
            .get_mut(topic)
            .and_then(|tv| tv.snapshot(token, snap, dead))
        {
            self.deliver(topic, events::PRESENCE_DIFF, &out);
        }
    }

    /// `node` is dead: its presences leave every view (once: a second call finds nothing).
    pub(crate) fn node_down(&self, node: &str) {
        let mut v = lock(&self.views);
        if !v.dead.insert(node.to_string()) {
            return;
        }
        ClusterMetrics::inc(&self.metrics.nodes_down);
        tracing::warn!(node, "cluster node is down; its presences leave");
        let topics: Vec<String> = v.topics.keys().cloned().collect();
        for topic in topics {
            let op = Op::Gone {
                node: node.to_string(),
            };
            if let Some(out) = v.topics.get_mut(&topic).and_then(|tv| tv.handle(op)) {
                self.deliver(&topic, events::PRESENCE_DIFF, &out);
            }
        }
    }

    /// `node` has a live record again.
    pub(crate) fn node_up(&self, node: &str) {
        lock(&self.views).dead.remove(node);
    }

    /// Counts a message or stored value this node cannot read. An unknown version means a
    /// node of another release shares the prefix (a rolling upgrade, or a mix-up): warned at
    /// the 1st, 2nd, 4th, 8th.. refusal, so the log shows it without flooding.
    pub(crate) fn refused(&self, what: &'static str, e: WireError) {
        let counter = match e {
            WireError::UnknownVersion(_) => &self.metrics.wire_version_refused,
            WireError::Truncated | WireError::Malformed(_) => &self.metrics.wire_malformed,
        };
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(what, error = %e, refused = n, "node-to-node data refused");
        }
    }
}

/// Event names used on delivery.
mod events {
    /// Supabase's presence diff event.
    pub(crate) const PRESENCE_DIFF: &str = "presence_diff";
}
