//! Prometheus counters, kept as relaxed atomics (no lock on the message path) and rendered as
//! text by `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rollcall_core::Stats;

/// Server-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// WebSocket connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections refused before the upgrade (bad vsn, limits).
    pub connections_refused: AtomicU64,
    /// Inbound WebSocket messages.
    pub messages_in: AtomicU64,
    /// Outbound WebSocket messages enqueued.
    pub messages_out: AtomicU64,
    /// Heartbeat events on the `phoenix` topic.
    pub heartbeats: AtomicU64,
    /// Channel joins accepted.
    pub joins: AtomicU64,
    /// `presence_diff` frames enqueued to subscribers.
    pub diffs_sent: AtomicU64,
    /// Broadcast messages accepted (socket and REST).
    pub broadcasts: AtomicU64,
    /// Login events (offline → online).
    pub logins: AtomicU64,
    /// Logout events (online → offline).
    pub logouts: AtomicU64,
    /// Connections dropped for missed heartbeats.
    pub timeouts: AtomicU64,
    /// Connections closed because their outbound queue was full.
    pub slow_consumers: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an error reply or refusal by its reason (a short, stable label).
    pub fn error(&self, reason: &'static str) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// The count of errors with `reason` (for tests).
    pub fn errors_of(&self, reason: &str) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(reason)
            .copied()
            .unwrap_or(0)
    }

    /// Renders Prometheus text exposition format.
    pub fn render(&self, stats: Stats, open_sockets: usize, channels: usize) -> String {
        let mut s = String::with_capacity(2048);
        let mut gauge = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "rollcall_connections",
            "Open WebSocket connections.",
            open_sockets as u64,
        );
        gauge(
            "rollcall_channels",
            "Joined channels on all connections.",
            channels as u64,
        );
        gauge(
            "rollcall_presences",
            "Tracked presences in all topics.",
            stats.presences as u64,
        );
        gauge(
            "rollcall_topics",
            "Topics with at least one presence.",
            stats.topics as u64,
        );
        gauge(
            "rollcall_keys_online",
            "Keys online or idle.",
            stats.keys_online as u64,
        );
        gauge(
            "rollcall_offline_keys_remembered",
            "Offline keys whose last_seen is kept (bounded by max_offline_keys).",
            stats.offline_keys_remembered as u64,
        );
        let _ = writeln!(
            s,
            "# HELP rollcall_offline_keys_evicted_total Offline keys forgotten early because \
             max_offline_keys were remembered.\n# TYPE rollcall_offline_keys_evicted_total \
             counter\nrollcall_offline_keys_evicted_total {}",
            stats.offline_keys_evicted_total
        );
        let counters: [(&str, &str, &AtomicU64); 12] = [
            (
                "rollcall_connections_total",
                "Connections accepted.",
                &self.connections_total,
            ),
            (
                "rollcall_connections_refused_total",
                "Connections refused before upgrade.",
                &self.connections_refused,
            ),
            (
                "rollcall_messages_in_total",
                "Inbound WebSocket messages.",
                &self.messages_in,
            ),
            (
                "rollcall_messages_out_total",
                "Outbound WebSocket messages.",
                &self.messages_out,
            ),
            (
                "rollcall_heartbeats_total",
                "Heartbeats received.",
                &self.heartbeats,
            ),
            (
                "rollcall_joins_total",
                "Channel joins accepted.",
                &self.joins,
            ),
            (
                "rollcall_diffs_sent_total",
                "presence_diff messages sent.",
                &self.diffs_sent,
            ),
            (
                "rollcall_broadcasts_total",
                "Broadcasts accepted.",
                &self.broadcasts,
            ),
            ("rollcall_logins_total", "Login events.", &self.logins),
            ("rollcall_logouts_total", "Logout events.", &self.logouts),
            (
                "rollcall_timeouts_total",
                "Connections expired for missed heartbeats.",
                &self.timeouts,
            ),
            (
                "rollcall_slow_consumers_total",
                "Connections closed for a full outbound queue.",
                &self.slow_consumers,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP rollcall_errors_total Error replies and refusals by reason.\n# TYPE rollcall_errors_total counter"
        );
        for (reason, n) in self.errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(s, "rollcall_errors_total{{reason=\"{reason}\"}} {n}");
        }
        s
    }
}
