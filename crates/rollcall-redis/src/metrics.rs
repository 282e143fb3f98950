//! Counters of the Redis adapter, rendered into the server's `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Relaxed atomic counters; see [`ClusterMetrics::render`] for their names.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// Local diffs written to Redis and published.
    pub diffs_published: AtomicU64,
    /// Diffs from other nodes received.
    pub diffs_received: AtomicU64,
    /// Broadcasts published to / received from other nodes.
    pub broadcasts_published: AtomicU64,
    /// Broadcasts received from other nodes.
    pub broadcasts_received: AtomicU64,
    /// Full re-publications of the local state (start, reconnect, after being reaped).
    pub resets: AtomicU64,
    /// Failed Redis operations.
    pub errors: AtomicU64,
    /// Pub/sub (re)connections.
    pub pubsub_connects: AtomicU64,
    /// Topic views loaded (or reloaded) from Redis.
    pub topic_loads: AtomicU64,
    /// Nodes this node declared dead.
    pub nodes_down: AtomicU64,
    /// Dead nodes this node removed from Redis (it held the lock).
    pub nodes_reaped: AtomicU64,
    /// Status entries written by the periodic flush.
    pub status_writes: AtomicU64,
    /// Round trips made by batch status queries.
    pub status_round_trips: AtomicU64,
    /// Messages and stored values in a node-to-node format version this node does not speak
    /// (another release shares the prefix).
    pub wire_version_refused: AtomicU64,
    /// Messages and stored values of this node's format version that did not decode.
    pub wire_malformed: AtomicU64,
    /// Whether the last Redis operation succeeded.
    pub connected: AtomicBool,
}

impl ClusterMetrics {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Appends Prometheus text for every counter, plus `gauges` (name, help, value).
    pub fn render(&self, out: &mut String, gauges: &[(&str, &str, u64)]) {
        let counters: [(&str, &str, &AtomicU64); 14] = [
            (
                "diffs_published",
                "Local presence diffs published.",
                &self.diffs_published,
            ),
            (
                "diffs_received",
                "Presence diffs received from other nodes.",
                &self.diffs_received,
            ),
            (
                "broadcasts_published",
                "Broadcasts published to other nodes.",
                &self.broadcasts_published,
            ),
            (
                "broadcasts_received",
                "Broadcasts received from other nodes.",
                &self.broadcasts_received,
            ),
            (
                "resets",
                "Full re-publications of the local presence state.",
                &self.resets,
            ),
            ("errors", "Failed Redis operations.", &self.errors),
            (
                "pubsub_connects",
                "Pub/sub connections made (on a Redis Cluster: connections lost and resubscribed).",
                &self.pubsub_connects,
            ),
            (
                "topic_loads",
                "Topic views loaded from Redis.",
                &self.topic_loads,
            ),
            (
                "nodes_down",
                "Nodes declared dead by this node.",
                &self.nodes_down,
            ),
            (
                "nodes_reaped",
                "Dead nodes removed from Redis by this node.",
                &self.nodes_reaped,
            ),
            (
                "status_writes",
                "Status entries written.",
                &self.status_writes,
            ),
            (
                "status_round_trips",
                "Round trips made by batch status queries.",
                &self.status_round_trips,
            ),
            (
                "wire_version_refused",
                "Node-to-node messages and values refused for their format version.",
                &self.wire_version_refused,
            ),
            (
                "wire_malformed",
                "Node-to-node messages and values that did not decode.",
                &self.wire_malformed,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP rollcall_redis_{name}_total {help}\n# TYPE rollcall_redis_{name}_total counter\nrollcall_redis_{name}_total {}",
                c.load(Ordering::Relaxed)
            );
        }
        let connected = u64::from(self.connected.load(Ordering::Relaxed));
        let mut all = vec![(
            "connected",
            "1 while the last Redis operation succeeded.",
            connected,
        )];
        all.extend_from_slice(gauges);
        for (name, help, v) in all {
            let _ = writeln!(
                out,
                "# HELP rollcall_redis_{name} {help}\n# TYPE rollcall_redis_{name} gauge\nrollcall_redis_{name} {v}"
            );
        }
    }
}
