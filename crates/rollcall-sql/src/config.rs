//! Settings of the persistence layer, each with its default.

use std::path::PathBuf;
use std::time::Duration;

/// How to connect and how the writer batches.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// `sqlite://PATH` (created if missing) or `postgres://...`.
    pub url: String,
    /// This node's id: sessions are closed per node on restart and shutdown.
    pub node_id: String,
    /// Postgres only: run everything in this schema (created if missing). Tests use one per
    /// test. Default: none (the server's `search_path`).
    pub pg_schema: Option<String>,
    /// Rows kept in memory while the database is unreachable before they spill to
    /// [`DbConfig::spill_path`]. Default 100,000; at least 1.
    pub queue_capacity: usize,
    /// Most events in one batch (one transaction). Default 1,000; 1 means one transaction per
    /// event (the unbatched baseline of the benchmark).
    pub batch_max: usize,
    /// How long the writer waits for more events before it writes a partial batch.
    /// Default 5 ms.
    pub flush_interval: Duration,
    /// How often this node's `presence_nodes.last_beat` is refreshed; a crash is dated by
    /// the last beat, so this is the error bound on `node_restart` logout times. Default 5 s.
    pub beat_interval: Duration,
    /// First retry delay after a failed write; doubles up to [`DbConfig::retry_max`].
    /// Default 50 ms.
    pub retry_min: Duration,
    /// Longest retry delay. Default 5 s.
    pub retry_max: Duration,
    /// Longest wait for a connection or one batch before it counts as failed. Default 5 s.
    pub op_timeout: Duration,
    /// Overflow file (JSON lines), created only when the in-memory queue is full. Default
    /// `rollcall-spill-<node_id>.jsonl` in the working directory.
    pub spill_path: PathBuf,
    /// Pool size. Default 4.
    pub max_connections: u32,
    /// The write-behind window: a queued row not committed this long after it was queued
    /// (the database is slow or down) is appended to the spill file and fsynced, so a crash
    /// loses at most this much of the most recent history. Default 100 ms.
    pub sync_window: Duration,
}

impl DbConfig {
    /// The defaults for `url` and `node_id`.
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> DbConfig {
        let node_id = node_id.into();
        DbConfig {
            url: url.into(),
            spill_path: PathBuf::from(format!("rollcall-spill-{node_id}.jsonl")),
            node_id,
            pg_schema: None,
            queue_capacity: 100_000,
            batch_max: 1_000,
            flush_interval: Duration::from_millis(5),
            beat_interval: Duration::from_secs(5),
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
            op_timeout: Duration::from_secs(5),
            max_connections: 4,
            sync_window: Duration::from_millis(100),
        }
    }
}
