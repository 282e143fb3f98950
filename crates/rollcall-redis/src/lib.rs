//! # rollcall-redis
//!
//! Runs Rollcall as several nodes sharing presence through Redis (docs/clustering.md has the
//! design and its guarantees). Each node keeps its own presences in the core engine and
//! mirrors them into Redis: one hash per (topic, node), a set of topics per node, a pub/sub
//! channel per topic carrying each local diff as rendered `presence_diff` JSON. Nodes keep a
//! *remote view* of the topics they have subscribers for, merge it into `presence_state` and
//! forward remote diffs. A node record with a TTL tells live nodes from dead ones; one survivor
//! (under a `SET NX` lock) removes a dead node's presences. Volatile user status lives in
//! per-key hashes with a TTL, written and read in pipelines.
//!
//! Layout: `cluster.rs` (the [`Cluster`] handle), `view.rs` (remote views and loading),
//! `inbound.rs` (applying messages), `wire.rs` (message and value formats), `keys.rs` (key layout, Cluster hash tags),
//! `publisher.rs`, `subscriber.rs`, `liveness.rs` (the tasks), `status.rs`, `metrics.rs`.
//!
//! Dependencies: `rollcall-core` (diff types and JSON rendering), `redis`, `tokio`. It does
//! not know the server or the Phoenix protocol; the server passes a delivery callback.

mod cluster;
mod error;
mod inbound;
mod keys;
mod liveness;
mod metrics;
mod publisher;
mod status;
mod subscriber;
mod view;
mod wire;

pub use cluster::{Cluster, ClusterConfig, Deliver, write_state_with};
pub use error::{ClusterError, RedisOpError};
pub use metrics::ClusterMetrics;
pub use status::{RemoteStatus, StatusEntry};
