//! Several nodes sharing presence through Redis: the wiring between the hub and
//! `rollcall-redis`. Local diffs go to Redis from the engine's diff sink, channel joins
//! subscribe the node to a topic's remote view, `presence_state` merges that view, remote
//! diffs and broadcasts reach local subscribers through `hub::deliver`, a periodic flush keeps
//! the volatile status of keys with local presences in Redis, and the batch status query adds
//! what the other nodes report.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rollcall_core::{KeyStatus, Millis, Status, TopicDiff};
use rollcall_redis::{Cluster, ClusterConfig, ClusterError, StatusEntry};

use super::{Bus, BusFuture, Readiness};
use crate::config::{RedisSettings, ServerConfig};
use crate::hub::Hub;

/// The Redis backend: one [`Cluster`] handle.
#[derive(Debug)]
pub(crate) struct RedisBus {
    cluster: Arc<Cluster>,
}

impl RedisBus {
    /// Builds the adapter for `cfg` (not started yet).
    ///
    /// # Errors
    /// The URL or prefix is refused by the Redis client.
    pub(crate) fn new(cfg: &ServerConfig, s: &RedisSettings) -> Result<RedisBus, ClusterError> {
        let mut c = ClusterConfig::new(&s.url, &cfg.node_id);
        c.prefix = s.prefix.clone();
        c.redis_cluster = s.cluster;
        c.node_timeout = s.node_timeout.as_duration();
        let ttl = cfg.core.heartbeat_interval.0 * u64::from(cfg.core.missed_heartbeats);
        c.status_ttl = Duration::from_millis(ttl.max(1000));
        Ok(RedisBus {
            cluster: Cluster::new(c)?,
        })
    }
}

impl Bus for RedisBus {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn start(&self, hub: Weak<Hub>) {
        let inbound = hub.clone();
        self.cluster.start(Box::new(move |topic, event, payload| {
            if let Some(hub) = inbound.upgrade() {
                crate::hub::deliver(&hub.registry, &hub.metrics, topic, event, payload, None);
            }
        }));
        tokio::spawn(status_flush(hub, self.cluster.clone()));
        tracing::info!(
            node = self.cluster.node_id(),
            "cluster mode: sharing presence through redis"
        );
    }

    fn publish_diff(&self, diff: &TopicDiff) {
        self.cluster.publish_diff(diff);
    }

    fn publish_broadcast(&self, topic: &str, event: &str, payload: &str) {
        self.cluster.publish_broadcast(topic, event, payload);
    }

    fn subscribe(&self, topic: &str) {
        self.cluster.subscribe(topic);
    }

    fn unsubscribe(&self, topic: &str, n: usize) {
        for _ in 0..n {
            self.cluster.unsubscribe(topic);
        }
    }

    fn write_presence_state(&self, hub: &Hub, topic: &str, out: &mut Vec<u8>) {
        self.cluster
            .write_state_json(topic, &hub.engine.list(topic), out);
    }

    fn channel_state<'a>(
        &'a self,
        hub: &'a Hub,
        topic: &'a str,
    ) -> BusFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(256);
            let local = hub.engine.list(topic);
            if self.cluster.has_view(topic) {
                self.cluster.write_state_json(topic, &local, &mut out);
                return Ok(out);
            }
            let remote = self.cluster.remote_presences(topic).await.map_err(|e| {
                tracing::warn!(error = %e, topic, "channel state refused: redis unreachable");
                format!("the other nodes' presences could not be read from redis: {e}")
            })?;
            rollcall_redis::write_state_with(&local, &remote, &mut out);
            Ok(out)
        })
    }

    fn merge_statuses<'a>(
        &'a self,
        hub: &'a Hub,
        statuses: Vec<KeyStatus>,
    ) -> BusFuture<'a, Vec<KeyStatus>> {
        Box::pin(merge_statuses(hub, &self.cluster, statuses))
    }

    fn readiness(&self) -> BusFuture<'_, Readiness> {
        Box::pin(async move {
            if self.cluster.ping(Duration::from_secs(1)).await {
                Readiness::Ok
            } else {
                Readiness::Down
            }
        })
    }

    fn flush(&self) -> BusFuture<'_, ()> {
        Box::pin(self.cluster.leave(Duration::from_secs(2)))
    }

    fn status_changed(&self, key: &str) {
        self.cluster.status_changed(key);
    }

    fn render_metrics(&self, text: &mut String) {
        let (topics, presences) = self.cluster.view_counts();
        self.cluster.metrics.render(
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

/// Adds the other nodes' view of each key to the local statuses (one Redis round trip).
/// Redis unreachable: the local answer stands.
async fn merge_statuses(
    hub: &Hub,
    cluster: &Cluster,
    mut statuses: Vec<KeyStatus>,
) -> Vec<KeyStatus> {
    let keys: Vec<&str> = statuses.iter().map(|s| s.key.as_str()).collect();
    let remote = match cluster.statuses(&keys).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "batch status without other nodes: redis unreachable");
            return statuses;
        }
    };
    let start_unix = hub.to_unix_ms(Millis::ZERO);
    for (s, r) in statuses.iter_mut().zip(remote) {
        let Some(r) = r else { continue };
        s.status = match (s.status, r.status) {
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

/// Every half heartbeat interval, writes the status of each key with local presences (one
/// pipeline per 10,000 keys) and removes this node's entries of keys that left. The key space
/// is cut into one slice per second of that period (at most [`FLUSH_SLICES`]) and one slice is
/// written per tick, so each key is still refreshed once per period but a node's flush is a
/// steady trickle instead of a burst that stalls its heartbeats (issue 15's 400k run: bursts of
/// ~120k Redis commands/s every 30 s, aligned over 23 nodes started together). Keys whose
/// status changed (login, logout, idle, active) are written (or removed) at the next tick, at
/// most a second away, so another node sees a user come online or go offline then, not up to a
/// period later.
async fn status_flush(hub: Weak<Hub>, cluster: Arc<Cluster>) {
    let period = match hub.upgrade() {
        Some(h) => Duration::from_millis((h.cfg.core.heartbeat_interval.0 / 2).max(100)),
        None => return,
    };
    let slices = flush_slices(period);
    let slice_every = period / slices as u32;
    // Changed keys go out at least every second, even when a slice lasts longer.
    let tick = slice_every.min(Duration::from_secs(1));
    let ticks_per_slice = (slice_every.as_millis() / tick.as_millis().max(1)).max(1) as u64;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written: Vec<HashSet<String>> = vec![HashSet::new(); slices];
    let mut slice = 0;
    for n in 0u64.. {
        interval.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        let this_slice = (n % ticks_per_slice == 0).then_some(slice);
        let changed = cluster.take_changed_keys();
        let keys = match this_slice {
            Some(s) => cluster.local_keys_where(|k| slice_of(k, slices) == s),
            None => HashSet::new(),
        };
        let mut entries = local_entries(&hub, &keys);
        let mut gone: Vec<String> = match this_slice {
            Some(s) => written[s].difference(&keys).cloned().collect(),
            None => Vec::new(),
        };
        // Changed keys of the other slices: written now if still online or idle here,
        // removed if this node had written them, and then owned by their slice as usual.
        let changed: HashSet<String> = changed
            .into_iter()
            .filter(|k| Some(slice_of(k, slices)) != this_slice)
            .collect();
        let fresh = local_entries(&hub, &changed);
        drop(hub);
        let live: HashSet<&str> = fresh.iter().map(|e| e.key.as_str()).collect();
        for k in &changed {
            let s = slice_of(k, slices);
            if live.contains(k.as_str()) {
                written[s].insert(k.clone());
            } else if written[s].remove(k) {
                gone.push(k.clone());
            }
        }
        entries.extend(fresh);
        let mut ok = true;
        for chunk in entries.chunks(10_000) {
            ok &= cluster.write_statuses(chunk, &[]).await.is_ok();
        }
        for chunk in gone.chunks(10_000) {
            ok &= cluster.write_statuses(&[], chunk).await.is_ok();
        }
        if let Some(s) = this_slice {
            if ok {
                written[s] = keys;
            }
            slice = (slice + 1) % slices;
        }
    }
}

/// Upper bound of the status flush's slices per period.
pub(crate) const FLUSH_SLICES: usize = 30;

/// Slices of a flush period: one per whole second, between 1 and [`FLUSH_SLICES`].
fn flush_slices(period: Duration) -> usize {
    (period.as_secs() as usize).clamp(1, FLUSH_SLICES)
}

/// The slice of `key`: FNV-1a of its bytes, so a key stays in one slice for the process' life.
fn slice_of(key: &str, slices: usize) -> usize {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h % slices.max(1) as u64) as usize
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
            if s.status == Status::Offline {
                continue;
            }
            out.push(StatusEntry {
                key: s.key.to_string(),
                status: s.status,
                last_seen_ms: hub.to_unix_ms(s.last_seen.unwrap_or(now)),
                connections: s.connections as u32,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flush_is_cut_into_one_slice_per_second_and_keys_stay_in_theirs() {
        assert_eq!(flush_slices(Duration::from_millis(500)), 1);
        assert_eq!(flush_slices(Duration::from_secs(12)), 12);
        assert_eq!(flush_slices(Duration::from_secs(30)), 30);
        assert_eq!(flush_slices(Duration::from_secs(3600)), FLUSH_SLICES);
        let mut per = [0usize; 30];
        for i in 0..30_000 {
            let k = format!("user-{i}");
            let s = slice_of(&k, 30);
            assert_eq!(s, slice_of(&k, 30));
            per[s] += 1;
        }
        // Every slice gets its share (1,000 expected), so no tick is a burst again.
        assert!(per.iter().all(|&n| (800..1200).contains(&n)), "{per:?}");
        assert_eq!(slice_of("anything", 1), 0);
    }
}
