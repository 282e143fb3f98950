//! [`Cluster`]: the adapter's handle. Its synchronous methods are called from the server's hot
//! paths (the engine's diff sink, channel joins and leaves) and only take a short
//! `std::sync::Mutex`; all Redis I/O happens in the tasks [`Cluster::start`] spawns.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rollcall_core::{Key, PresenceView, TopicDiff};
use tokio::sync::{Notify, mpsc};

use crate::conn::{Backend, Con};
use crate::error::{ClusterError, RedisOpError};
use crate::keys::Keys;
use crate::metrics::ClusterMetrics;
use crate::render;
use crate::view::TopicView;
use crate::wire::{self, Entry, Frame, NodePresences, Presence, Writer};

/// Settings of the Redis adapter.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://host:port/db`; with `redis_cluster`, the seed nodes' URLs separated by commas.
    pub url: String,
    /// Connect to a Redis Cluster: commands go to the node owning their slot and topic
    /// channels use sharded pub/sub (Redis 7) [default: false, one server].
    pub redis_cluster: bool,
    /// Prefix of every key and channel [default: `rc`]; one per deployment (or per test).
    pub prefix: String,
    /// This node's id, unique among live nodes.
    pub node_id: String,
    /// A node silent this long is dead: its presences leave everywhere [default: 15 s].
    pub node_timeout: Duration,
    /// Lifetime of a volatile status entry: heartbeat interval × missed heartbeats.
    pub status_ttl: Duration,
}

impl ClusterConfig {
    /// Settings with the defaults above.
    pub fn new(url: &str, node_id: &str) -> ClusterConfig {
        ClusterConfig {
            url: url.to_string(),
            redis_cluster: false,
            prefix: "rc".to_string(),
            node_id: node_id.to_string(),
            node_timeout: Duration::from_secs(15),
            status_ttl: Duration::from_secs(180),
        }
    }
}

/// Delivers a message to the local subscribers of a topic: `(topic, event, payload json)`.
pub type Deliver = Box<dyn Fn(&str, &str, &str) + Send + Sync>;

/// A local change queued for publication: the encoded diff message, and the hash fields
/// (`phx_ref` text) to set and to delete.
#[derive(Debug)]
pub(crate) struct PubOp {
    pub(crate) topic: String,
    pub(crate) message: Vec<u8>,
    pub(crate) joins: Vec<(String, Vec<u8>)>,
    pub(crate) leaves: Vec<String>,
    pub(crate) empty: bool,
}

/// This node's own presences, mirrored so they can be re-published after an outage.
#[derive(Debug)]
pub(crate) struct Mirror {
    pub(crate) topics: HashMap<String, NodePresences>,
    /// Redis may be missing some local change: re-publish everything before the next diff.
    pub(crate) dirty: bool,
    pub(crate) tx: mpsc::UnboundedSender<PubOp>,
}

/// Remote views and the nodes known to be dead.
#[derive(Debug, Default)]
pub(crate) struct Views {
    pub(crate) topics: HashMap<String, TopicView>,
    pub(crate) dead: HashSet<String>,
}

/// A request to the pub/sub task.
#[derive(Debug)]
pub(crate) enum SubCmd {
    Subscribe(String),
    Unsubscribe(String),
}

/// The Redis adapter of one node.
pub struct Cluster {
    pub(crate) cfg: ClusterConfig,
    pub(crate) keys: Keys,
    pub(crate) backend: Backend,
    pub(crate) views: Mutex<Views>,
    pub(crate) mirror: Mutex<Mirror>,
    pub(crate) pub_rx: Mutex<Option<mpsc::UnboundedReceiver<PubOp>>>,
    pub(crate) sub_tx: mpsc::UnboundedSender<SubCmd>,
    pub(crate) sub_rx: Mutex<Option<mpsc::UnboundedReceiver<SubCmd>>>,
    pub(crate) dirty_kick: Notify,
    /// Keys whose status changed since the status flush last took them.
    changed_keys: Mutex<HashSet<String>>,
    /// Diffs queued and not yet written.
    pub(crate) pending: std::sync::atomic::AtomicUsize,
    deliver: OnceLock<Deliver>,
    con: tokio::sync::Mutex<Option<Con>>,
    /// Counters.
    pub metrics: ClusterMetrics,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its maps consistent, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Cluster {
    /// Checks the settings and builds the handle; nothing connects until [`Cluster::start`].
    ///
    /// # Errors
    /// The URL does not parse, or the prefix is unusable.
    pub fn new(cfg: ClusterConfig) -> Result<Arc<Cluster>, ClusterError> {
        if cfg.prefix.is_empty() || cfg.prefix.len() > 64 || cfg.prefix.contains(['{', '}']) {
            return Err(ClusterError::InvalidPrefix(cfg.prefix));
        }
        let backend =
            Backend::open(&cfg.url, cfg.redis_cluster).map_err(|e| ClusterError::InvalidUrl {
                url: cfg.url.clone(),
                reason: e.to_string(),
            })?;
        let (pub_tx, pub_rx) = mpsc::unbounded_channel();
        let (sub_tx, sub_rx) = mpsc::unbounded_channel();
        Ok(Arc::new(Cluster {
            keys: Keys::new(&cfg.prefix),
            cfg,
            backend,
            views: Mutex::new(Views::default()),
            // Dirty at start: the first publication writes the whole (empty) state, which
            // also clears what an earlier process with this node id left behind.
            mirror: Mutex::new(Mirror {
                topics: HashMap::new(),
                dirty: true,
                tx: pub_tx,
            }),
            pub_rx: Mutex::new(Some(pub_rx)),
            sub_tx,
            sub_rx: Mutex::new(Some(sub_rx)),
            dirty_kick: Notify::new(),
            changed_keys: Mutex::new(HashSet::new()),
            pending: std::sync::atomic::AtomicUsize::new(0),
            deliver: OnceLock::new(),
            con: tokio::sync::Mutex::new(None),
            metrics: ClusterMetrics::default(),
        }))
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.cfg.node_id
    }

    /// The settings in force.
    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// Spawns the publisher, pub/sub, liveness tasks on the current tokio runtime; `deliver`
    /// receives remote diffs and broadcasts for local subscribers (called with the topic's
    /// view locked, so per topic in order). Call once; later calls do nothing.
    pub fn start(self: &Arc<Self>, deliver: Deliver) {
        if self.deliver.set(deliver).is_err() {
            return;
        }
        if let Some(rx) = lock(&self.pub_rx).take() {
            tokio::spawn(crate::publisher::run(self.clone(), rx));
        }
        if let Some(rx) = lock(&self.sub_rx).take() {
            tokio::spawn(crate::subscriber::run(self.clone(), rx));
        }
        tokio::spawn(crate::liveness::run(self.clone()));
    }

    /// A connection (multiplexed, reconnecting) to Redis or the Redis Cluster.
    pub(crate) async fn con(&self) -> Result<Con, RedisOpError> {
        let mut slot = self.con.lock().await;
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let c = self
            .backend
            .connect()
            .await
            .inspect_err(|_| self.failed())?;
        *slot = Some(c.clone());
        Ok(c)
    }

    pub(crate) fn failed(&self) {
        ClusterMetrics::inc(&self.metrics.errors);
        self.metrics.connected.store(false, Ordering::Relaxed);
    }

    pub(crate) fn succeeded(&self) {
        self.metrics.connected.store(true, Ordering::Relaxed);
    }

    pub(crate) fn deliver(&self, topic: &str, event: &str, payload: &str) {
        if let Some(d) = self.deliver.get() {
            d(topic, event, payload);
        }
    }

    /// Records a local diff and queues it for Redis, encoded in the node-to-node format (the
    /// other nodes render the client payload themselves). Call from the engine's diff sink
    /// (one call at a time, in the engine's order, so a topic's diffs are queued in order).
    /// Never blocks.
    pub fn publish_diff(&self, d: &TopicDiff) {
        let topic = d.topic.as_str();
        let mut m = lock(&self.mirror);
        let entry = m.topics.entry(topic.to_string()).or_default();
        let mut joins = Vec::with_capacity(d.diff.joins.len());
        for j in &d.diff.joins {
            let e = Entry::from(j);
            joins.push((e.presence_ref.to_string(), wire::encode_hash_value(&e)));
            entry.insert(e.presence_ref, Presence::from(e));
        }
        let mut leaves = Vec::with_capacity(d.diff.leaves.len());
        for l in &d.diff.leaves {
            entry.remove(&l.presence.presence_ref);
            leaves.push(l.presence.presence_ref.to_string());
        }
        let empty = entry.is_empty();
        if empty {
            m.topics.remove(topic);
        }
        if !m.dirty {
            let mut w = Writer::new(wire::kind::DIFF, &self.cfg.node_id);
            w.entries(d.diff.joins.iter().map(Entry::from));
            w.entries(d.diff.leaves.iter().map(Entry::from));
            self.pending.fetch_add(1, Ordering::Relaxed);
            let _ = m.tx.send(PubOp {
                topic: topic.to_string(),
                message: w.finish(),
                joins,
                leaves,
                empty,
            });
        }
    }

    /// Publishes a broadcast to the other nodes' subscribers of `topic` (fire and forget).
    pub fn publish_broadcast(self: &Arc<Self>, topic: &str, event: &str, payload: &str) {
        let msg = Frame::Broadcast {
            node: &self.cfg.node_id,
            event,
            payload,
        }
        .encode();
        let channel = self.keys.channel(topic);
        let this = self.clone();
        tokio::spawn(async move {
            let Ok(mut con) = this.con().await else {
                return;
            };
            let r: Result<i64, _> = redis::cmd(this.backend.publish_cmd())
                .arg(&channel)
                .arg(&msg)
                .query_async(&mut con)
                .await;
            match r {
                Ok(_) => ClusterMetrics::inc(&this.metrics.broadcasts_published),
                Err(_) => this.failed(),
            }
        });
    }

    /// A local channel joined `topic`: the first one subscribes the node and loads the view.
    pub fn subscribe(&self, topic: &str) {
        let mut v = lock(&self.views);
        let tv = v.topics.entry(topic.to_string()).or_default();
        tv.subs += 1;
        if tv.subs == 1 {
            let _ = self.sub_tx.send(SubCmd::Subscribe(topic.to_string()));
        }
    }

    /// A local channel left `topic`: the last one drops the view and unsubscribes.
    pub fn unsubscribe(&self, topic: &str) {
        let mut v = lock(&self.views);
        let Some(tv) = v.topics.get_mut(topic) else {
            return;
        };
        tv.subs = tv.subs.saturating_sub(1);
        if tv.subs == 0 {
            v.topics.remove(topic);
            let _ = self.sub_tx.send(SubCmd::Unsubscribe(topic.to_string()));
        }
    }

    /// Writes `topic`'s `presence_state` payload: `local` presences plus the remote view.
    /// Keys present on several nodes are merged into one entry.
    pub fn write_state_json(
        &self,
        topic: &str,
        local: &[(Key, Vec<PresenceView>)],
        out: &mut Vec<u8>,
    ) {
        let remote: Vec<(String, String)> = lock(&self.views)
            .topics
            .get(topic)
            .map(|tv| {
                tv.presences()
                    .map(|p| (p.key.clone(), render::presence_json(p)))
                    .collect()
            })
            .unwrap_or_default();
        render::write_state_with(local, &remote, out);
    }

    /// Whether this node keeps a view of `topic` (it has local subscribers).
    pub fn has_view(&self, topic: &str) -> bool {
        lock(&self.views).topics.contains_key(topic)
    }

    /// Waits (at most `timeout`) until queued diffs are written, then removes this node's
    /// record: a graceful stop, so survivors need not wait for `node_timeout`.
    pub async fn leave(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.pending.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let Ok(mut con) = self.con().await else {
            return;
        };
        let me = self.cfg.node_id.as_str();
        let _ = redis::pipe()
            .cmd("DEL")
            .arg(self.keys.node_alive(me))
            .cmd("SREM")
            .arg(self.keys.nodes())
            .arg(me)
            .query_async::<()>(&mut con)
            .await;
    }

    /// True when Redis answers a `PING` within `timeout` (for the server's readiness check).
    pub async fn ping(&self, timeout: Duration) -> bool {
        let probe = async {
            let mut con = self.con().await.ok()?;
            redis::cmd("PING")
                .query_async::<String>(&mut con)
                .await
                .ok()
        };
        matches!(tokio::time::timeout(timeout, probe).await, Ok(Some(_)))
    }

    /// Reads the other nodes' presences in `topic` straight from Redis (for topics this node
    /// has no view of, e.g. an HTTP query), as `(key, presence json)`.
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn remote_presences(
        &self,
        topic: &str,
    ) -> Result<Vec<(String, String)>, RedisOpError> {
        let snap = self.read_topic(topic, None).await?;
        Ok(snap
            .into_values()
            .flat_map(|n| n.into_values())
            .map(|p| {
                let json = render::presence_json(&p);
                (p.key, json)
            })
            .collect())
    }

    /// Reads every other node's hash of `topic` in one pipeline; with `marker`, publishes
    /// it on the topic's channel after the reads (see `view.rs` for why).
    pub(crate) async fn read_topic(
        &self,
        topic: &str,
        marker: Option<&str>,
    ) -> Result<HashMap<String, NodePresences>, RedisOpError> {
        let mut con = self.con().await?;
        let nodes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.topic_nodes(topic))
            .query_async(&mut con)
            .await
            .inspect_err(|_| self.failed())?;
        let nodes: Vec<String> = nodes
            .into_iter()
            .filter(|n| *n != self.cfg.node_id)
            .collect();
        if nodes.is_empty() && marker.is_none() {
            // Nothing to read: Redis refuses an empty pipeline ("empty command").
            self.succeeded();
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for n in &nodes {
            pipe.cmd("HGETALL").arg(self.keys.topic_hash(topic, n));
        }
        if let Some(token) = marker {
            let msg = Frame::Marker {
                node: &self.cfg.node_id,
                token,
            };
            pipe.cmd(self.backend.publish_cmd())
                .arg(self.keys.channel(topic))
                .arg(msg.encode())
                .ignore();
        }
        let hashes: Vec<HashMap<String, Vec<u8>>> = pipe
            .query_async(&mut con)
            .await
            .inspect_err(|_| self.failed())?;
        self.succeeded();
        let mut snap = HashMap::new();
        for (n, h) in nodes.into_iter().zip(hashes) {
            let presences: NodePresences = h
                .values()
                .filter_map(|v| match wire::decode_hash_value(v) {
                    Ok(e) => Some((e.presence_ref, Presence::from(e))),
                    Err(e) => {
                        self.refused("stored presence", e);
                        None
                    }
                })
                .collect();
            if !presences.is_empty() {
                snap.insert(n, presences);
            }
        }
        Ok(snap)
    }

    /// Marks the local state as possibly missing from Redis; the publisher re-publishes it.
    pub(crate) fn mark_dirty(&self) {
        let mut m = lock(&self.mirror);
        if !m.dirty {
            m.dirty = true;
            tracing::info!("redis state may be stale; re-publishing local presences");
        }
        drop(m);
        self.dirty_kick.notify_one();
    }

    /// Keys with at least one local presence (what the status flush refreshes).
    pub fn local_keys(&self) -> HashSet<String> {
        self.local_keys_where(|_| true)
    }

    /// The keys of [`Cluster::local_keys`] for which `keep` holds; only those are copied, so a
    /// flush spread over slices of the key space copies each key once per period.
    pub fn local_keys_where(&self, keep: impl Fn(&str) -> bool) -> HashSet<String> {
        let m = lock(&self.mirror);
        m.topics
            .values()
            .flat_map(|t| t.values())
            .filter(|p| keep(&p.key))
            .map(|p| p.key.clone())
            .collect()
    }

    /// Records that `key`'s status changed on this node (login, logout, idle, active), so the
    /// status flush writes it at its next tick instead of waiting for its slice.
    pub fn status_changed(&self, key: &str) {
        let mut c = lock(&self.changed_keys);
        if !c.contains(key) {
            c.insert(key.to_string());
        }
    }

    /// Takes the keys recorded by [`Cluster::status_changed`] since the last call.
    pub fn take_changed_keys(&self) -> HashSet<String> {
        std::mem::take(&mut *lock(&self.changed_keys))
    }

    /// Topics with a remote view, and remote presences held in them (for metrics).
    pub fn view_counts(&self) -> (usize, usize) {
        let v = lock(&self.views);
        (v.topics.len(), v.topics.values().map(|t| t.len()).sum())
    }
}
