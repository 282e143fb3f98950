//! The cluster seam: what the hub needs from "the other nodes", as one trait with a backend
//! per deployment. [`LocalBus`] is a single node (there are no other nodes: every call is
//! local or a no-op); [`RedisBus`] shares presence, broadcasts and status through Redis
//! (`rollcall-redis`, docs/clustering.md). The hub holds one `Arc<dyn Bus>` and never asks
//! which one it has; `tests/bus_contract.rs` runs the same scenarios against every backend.

mod local;
#[cfg(feature = "redis")]
mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use rollcall_core::{KeyStatus, TopicDiff};

use crate::config::ServerConfig;
use crate::hub::Hub;

pub(crate) use local::LocalBus;
#[cfg(feature = "redis")]
pub(crate) use redis::RedisBus;

/// A boxed future borrowed from the bus (object-safe async methods).
pub(crate) type BusFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether the bus's backing service answers, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Readiness {
    /// No backing service (a single node).
    Off,
    /// It answered.
    Ok,
    /// It did not answer in time.
    Down,
}

impl Readiness {
    /// The word `/readyz` reports: `off`, `ok` or `down`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Readiness::Off => "off",
            Readiness::Ok => "ok",
            Readiness::Down => "down",
        }
    }
}

/// What the hub asks of the other nodes. Every method is cheap and non-blocking unless it
/// returns a future; `publish_diff` is called from the engine's diff sink: one call at a
/// time, in the engine's order, outside the core's locks.
pub(crate) trait Bus: Send + Sync + std::fmt::Debug {
    /// `local` or `redis`, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Starts the backend's tasks (inside the runtime): inbound messages reach the hub's
    /// local subscribers through `hub::deliver`.
    fn start(&self, hub: Weak<Hub>);

    /// A local diff for the other nodes (the backend encodes it in its own format; receiving
    /// nodes render the client payload themselves).
    fn publish_diff(&self, diff: &TopicDiff);

    /// A broadcast for the other nodes' subscribers of `topic` (fire and forget).
    fn publish_broadcast(&self, topic: &str, event: &str, payload: &str);

    /// A local channel joined `topic`: keep the node subscribed to the others' presences.
    fn subscribe(&self, topic: &str);

    /// `n` local channels of `topic` left.
    fn unsubscribe(&self, topic: &str, n: usize);

    /// Writes `topic`'s `presence_state` payload: the hub's own presences plus the others'.
    fn write_presence_state(&self, hub: &Hub, topic: &str, out: &mut Vec<u8>);

    /// The channel state for the HTTP API (may read the backend when this node has no view).
    ///
    /// # Errors
    /// The backend had to be read and did not answer: the reason, for a 503 (a partial
    /// state with only this node's presences would look complete and be wrong).
    fn channel_state<'a>(
        &'a self,
        hub: &'a Hub,
        topic: &'a str,
    ) -> BusFuture<'a, Result<Vec<u8>, String>>;

    /// Adds what the other nodes report to the local statuses of a batch query.
    fn merge_statuses<'a>(
        &'a self,
        hub: &'a Hub,
        statuses: Vec<KeyStatus>,
    ) -> BusFuture<'a, Vec<KeyStatus>>;

    /// Whether the backend answers, within a second.
    fn readiness(&self) -> BusFuture<'_, Readiness>;

    /// On shutdown: lets queued messages out and leaves the cluster.
    fn flush(&self) -> BusFuture<'_, ()>;

    /// Appends the backend's metrics to `/metrics`.
    fn render_metrics(&self, out: &mut String);

    /// `key`'s status changed on this node (login, logout, idle, active): a backend sharing
    /// status with other nodes passes it on soon, not only at its next periodic refresh.
    fn status_changed(&self, _key: &str) {}
}

/// The bus `cfg` asks for: Redis with `redis_url`, else a single node. A Redis adapter that
/// cannot be built (settings were validated, so this is not expected) falls back to a single
/// node with an error log rather than refusing to serve.
#[cfg(feature = "redis")]
pub(crate) fn build(cfg: &ServerConfig) -> Arc<dyn Bus> {
    match cfg.redis.as_ref().map(|s| RedisBus::new(cfg, s)) {
        None => Arc::new(LocalBus),
        Some(Ok(bus)) => Arc::new(bus),
        Some(Err(e)) => {
            tracing::error!(error = %e, "redis adapter not started: serving as a single node");
            Arc::new(LocalBus)
        }
    }
}

/// The bus `cfg` asks for; without the `redis` feature that is always a single node (the
/// config refuses `redis_url` in such a build).
#[cfg(not(feature = "redis"))]
pub(crate) fn build(_cfg: &ServerConfig) -> Arc<dyn Bus> {
    Arc::new(LocalBus)
}
