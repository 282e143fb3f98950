//! What a node does with what comes from Redis: pub/sub messages, loaded snapshots and node
//! deaths, each applied to the topic's view under the view lock and delivered from there (so
//! per topic in order).

use std::collections::HashMap;

use crate::cluster::{Cluster, Views, lock};
use crate::metrics::ClusterMetrics;
use crate::view::Op;
use crate::wire::{self, Message, NodePresences};

impl Cluster {
    /// Handles one pub/sub message.
    pub(crate) fn on_message(&self, channel: &str, payload: &[u8]) {
        let Some(topic) = self.keys.topic_of_channel(channel) else {
            return;
        };
        let Some(msg) = std::str::from_utf8(payload).ok().and_then(Message::decode) else {
            tracing::debug!(channel, "undecodable cluster message");
            return;
        };
        let me = self.cfg.node_id.as_str();
        let op = match msg {
            Message::Broadcast {
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
            Message::Marker { node, token } => {
                if node == me {
                    let mut v = lock(&self.views);
                    let Views { topics, dead } = &mut *v;
                    if let Some(out) = topics.get_mut(topic).and_then(|tv| tv.marker(token, dead)) {
                        self.deliver(topic, events::PRESENCE_DIFF, &out);
                    }
                }
                return;
            }
            _ if msg_node(&msg) == me => return,
            Message::Diff { node, payload } => {
                let Some((joins, leaves)) = wire::parse_diff(payload) else {
                    return;
                };
                ClusterMetrics::inc(&self.metrics.diffs_received);
                Op::Diff {
                    node: node.to_string(),
                    joins,
                    leaves,
                    payload: payload.to_string(),
                }
            }
            Message::Reset { node, state } => Op::Reset {
                node: node.to_string(),
                presences: wire::parse_state(state).unwrap_or_default(),
            },
            Message::Gone { node } => Op::Gone {
                node: node.to_string(),
            },
        };
        let mut v = lock(&self.views);
        if !matches!(op, Op::Gone { .. }) {
            v.dead.remove(msg_node(&msg));
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
}

fn msg_node<'a>(m: &Message<'a>) -> &'a str {
    match m {
        Message::Diff { node, .. }
        | Message::Reset { node, .. }
        | Message::Gone { node }
        | Message::Broadcast { node, .. }
        | Message::Marker { node, .. } => node,
    }
}

/// Event names used on delivery.
mod events {
    /// Supabase's presence diff event.
    pub(crate) const PRESENCE_DIFF: &str = "presence_diff";
}
