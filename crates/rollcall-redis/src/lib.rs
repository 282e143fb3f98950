//! # rollcall-redis
//!
//! Runs Rollcall as several nodes sharing presence through Redis (docs/clustering.md has the
//! design and its guarantees). Each node keeps its own presences in the core engine and
//! mirrors them into Redis: one hash per (topic, node), a set of topics per node, a pub/sub
//! channel per topic carrying each local diff. What nodes write for each other is a compact
//! binary format of its own with a version byte (`wire/`), not the client's JSON. Nodes keep a
//! *remote view* of the topics they have subscribers for, merge it into `presence_state` and
//! render remote diffs as `presence_diff` payloads for their own subscribers. A node record
//! with a TTL tells live nodes from dead ones; one survivor (under a `SET NX` lock) removes a
//! dead node's presences. Volatile user status lives in per-key hashes with a TTL, written
//! and read in pipelines.
//!
//! Layout: `cluster.rs` (the [`Cluster`] handle), `view.rs` (remote views and loading),
//! `inbound.rs` (applying messages), `wire/` (the node-to-node format: `encode.rs`,
//! `decode.rs`), `render.rs` (the client JSON a node renders from it), `keys.rs` (key layout,
//! Cluster hash tags), `publisher.rs`, `subscriber.rs`, `liveness.rs` (the tasks), `status.rs`,
//! `metrics.rs`, `fuzzing.rs` (the fuzz target's entry point).
//!
//! Dependencies: `rollcall-core` (diff types, metas, JSON rendering), `redis`, `tokio`. It does
//! not know the server or the Phoenix protocol; the server passes a delivery callback.

mod cluster;
mod conn;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod inbound;
mod keys;
mod liveness;
mod metrics;
mod presences;
mod publisher;
mod render;
mod sharded;
mod shards;
mod slot;
mod status;
mod subscriber;
mod view;
mod wire;

pub use cluster::{Cluster, ClusterConfig, Deliver};
pub use error::{ClusterError, RedisOpError};
pub use metrics::ClusterMetrics;
pub use render::write_state_with;
pub use status::{RemoteStatus, StatusEntry};
