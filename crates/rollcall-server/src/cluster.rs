//! Cluster mode: the wiring between the hub and the Redis adapter (`rollcall-redis`).
//!
//! With `--redis-url`, local diffs go to Redis from the engine's diff sink, channel joins
//! subscribe the node to a topic's remote view, `presence_state` merges that view, remote
//! diffs and broadcasts reach local subscribers through [`fan_out_local`], a periodic flush
//! keeps the volatile status of keys with local presences in Redis, and the batch status
//! query adds what the other nodes report. Without it every function here is a no-op.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rollcall_core::{KeyStatus, Millis, Status, Topic};
use rollcall_redis::{Cluster, ClusterConfig, StatusEntry};

use crate::config::ServerConfig;
use crate::hub::Hub;

/// Builds the adapter for `cfg` (not started yet); `None` in single-node mode.
pub fn build(cfg: &ServerConfig) -> Option<Arc<Cluster>> {
    let s = cfg.redis.as_ref()?;
    let mut c = ClusterConfig::new(&s.url, &cfg.node_id);
    c.prefix = s.prefix.clone();
    c.node_timeout = s.node_timeout.as_duration();
    let ttl = cfg.core.heartbeat_interval.0 * u64::from(cfg.core.missed_heartbeats);
    c.status_ttl = Duration::from_millis(ttl.max(1000));
    match Cluster::new(c) {
        Ok(c) => Some(c),
        Err(e) => {
            // settings() validated the same values; keep serving as a single node.
            tracing::error!(error = %e, "redis adapter not started");
            None
        }
    }
}

/// Starts the adapter's tasks and the status flush (call inside the runtime).
pub fn start(hub: &Arc<Hub>) {
    let Some(cluster) = &hub.cluster else {
        return;
    };
    let weak: Weak<Hub> = Arc::downgrade(hub);
    cluster.start(Box::new(move |topic, event, payload| {
        if let Some(hub) = weak.upgrade() {
            fan_out_local(&hub, topic, event, payload);
        }
    }));
    tokio::spawn(status_flush(Arc::downgrade(hub)));
    tracing::info!(
        node = cluster.node_id(),
        "cluster mode: sharing presence through redis"
    );
}

/// Readiness of Redis: `off` in single-node mode, else `ok` when it answers a `PING` within a
/// second, `down` otherwise.
pub async fn readiness(hub: &Hub) -> &'static str {
    match &hub.cluster {
        None => "off",
        Some(c) if c.ping(Duration::from_secs(1)).await => "ok",
        Some(_) => "down",
    }
}

/// On shutdown: lets queued leaves reach Redis and removes this node's record.
pub async fn flush(hub: &Hub) {
    if let Some(c) = &hub.cluster {
        c.leave(Duration::from_secs(2)).await;
    }
}

impl Hub {
    /// A channel of `topic` joined: keeps the node subscribed to the topic's remote view.
    pub fn cluster_subscribe(&self, topic: &Topic) {
        if let Some(c) = &self.cluster {
            c.subscribe(topic.as_str());
        }
    }

    /// `n` channels of `topic` left.
    pub fn cluster_unsubscribe(&self, topic: &Topic, n: usize) {
        if let Some(c) = &self.cluster {
            for _ in 0..n {
                c.unsubscribe(topic.as_str());
            }
        }
    }

    /// Writes `topic`'s `presence_state` payload: local presences, plus the remote view in
    /// cluster mode.
    pub fn write_presence_state(&self, topic: &str, out: &mut Vec<u8>) {
        match &self.cluster {
            None => self.engine.write_state_json(topic, out),
            Some(c) => c.write_state_json(topic, &self.engine.list(topic), out),
        }
    }
}

/// Sends an already-encoded payload from another node to this node's subscribers of
/// `topic` (never re-published), through the hub's one fan-out path.
pub fn fan_out_local(hub: &Hub, topic: &str, event_name: &str, payload: &str) {
    crate::hub::deliver(
        &hub.registry,
        &hub.metrics,
        topic,
        event_name,
        payload,
        None,
    );
}

/// The HTTP channel state: local presences plus the other nodes' (from the view, or read from
/// Redis when this node has no subscriber of the topic).
pub async fn write_channel_state(hub: &Hub, topic: &Topic, out: &mut Vec<u8>) {
    let Some(c) = &hub.cluster else {
        return hub.engine.write_state_json(topic, out);
    };
    let local = hub.engine.list(topic);
    if c.has_view(topic) {
        return c.write_state_json(topic, &local, out);
    }
    let remote = c.remote_presences(topic).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "channel state without other nodes: redis unreachable");
        Vec::new()
    });
    rollcall_redis::write_state_with(&local, &remote, out);
}

/// Adds the other nodes' view of each key to the local statuses (one Redis round trip).
/// Redis unreachable: the local answer stands.
pub async fn merge_statuses(hub: &Hub, mut statuses: Vec<KeyStatus>) -> Vec<KeyStatus> {
    let Some(c) = &hub.cluster else {
        return statuses;
    };
    let keys: Vec<&str> = statuses.iter().map(|s| s.key.as_str()).collect();
    let remote = match c.statuses(&keys).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "batch status without other nodes: redis unreachable");
            return statuses;
        }
    };
    let start_unix = hub.to_unix_ms(Millis::ZERO);
    for (s, r) in statuses.iter_mut().zip(remote) {
        let Some(r) = r else { continue };
        let remote_status = if r.status == "online" {
            Status::Online
        } else {
            Status::Idle
        };
        s.status = match (s.status, remote_status) {
            (Status::Online, _) | (_, Status::Online) => Status::Online,
            _ => Status::Idle,
        };
        s.connections += r.connections as usize;
        let seen = Millis(r.last_seen_ms.saturating_sub(start_unix));
        s.last_seen = Some(if s.status == Status::Online {
            hub.now()
        } else {
            s.last_seen.map_or(seen, |l| l.max(seen))
        });
    }
    statuses
}

/// Appends the adapter's metrics to `/metrics`.
pub fn render_metrics(hub: &Hub, text: &mut String) {
    if let Some(c) = &hub.cluster {
        let (topics, presences) = c.view_counts();
        c.metrics.render(
            text,
            &[
                ("view_topics", "Topics with a remote view.", topics as u64),
                (
                    "view_presences",
                    "Presences of other nodes in remote views.",
                    presences as u64,
                ),
            ],
        );
    }
}

/// Every half heartbeat interval, writes the status of each key with local presences (one
/// pipeline per 10,000 keys) and removes this node's entries of keys that left.
async fn status_flush(hub: Weak<Hub>) {
    let period = match hub.upgrade() {
        Some(h) => Duration::from_millis((h.cfg.core.heartbeat_interval.0 / 2).max(100)),
        None => return,
    };
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written: HashSet<String> = HashSet::new();
    loop {
        interval.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        let Some(cluster) = hub.cluster.clone() else {
            return;
        };
        let keys = cluster.local_keys();
        let entries = local_entries(&hub, &keys);
        let gone: Vec<String> = written.difference(&keys).cloned().collect();
        drop(hub);
        let mut ok = true;
        for chunk in entries.chunks(10_000) {
            ok &= cluster.write_statuses(chunk, &[]).await.is_ok();
        }
        for chunk in gone.chunks(10_000) {
            ok &= cluster.write_statuses(&[], chunk).await.is_ok();
        }
        if ok {
            written = keys;
        }
    }
}

fn local_entries(hub: &Hub, keys: &HashSet<String>) -> Vec<StatusEntry> {
    let keys: Vec<rollcall_core::Key> = keys.iter().map(|k| rollcall_core::Key::new(k)).collect();
    let now = hub.now();
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(hub.cfg.core.max_batch_keys.max(1)) {
        let Ok(statuses) = hub.engine.statuses(chunk, now) else {
            continue;
        };
        for s in statuses {
            let status = match s.status {
                Status::Online => "online",
                Status::Idle => "idle",
                Status::Offline => continue,
            };
            out.push(StatusEntry {
                key: s.key.to_string(),
                status,
                last_seen_ms: hub.to_unix_ms(s.last_seen.unwrap_or(now)),
                connections: s.connections as u32,
            });
        }
    }
    out
}
