//! # rollcall-sql
//!
//! Makes Rollcall's `Login`/`Logout` (and `Idle`/`Active`) status events durable in SQLite or
//! PostgreSQL, and answers the two history questions the server asks: *when was this key last
//! seen* ([`Db::last_seen`]) and *when was it online* ([`Db::sessions`]).
//!
//! The database is written only when a status changes, never per heartbeat. Events go through
//! a [`Writer`]: recording one is a non-blocking channel send, and one task writes them in
//! batches (one transaction, at most three multi-row statements per batch). When the database
//! is down (or slow), rows wait in memory at most `sync_window` (100 ms) or a count bound and
//! then spill to a local file; they are written in order once it is back. The server starts
//! without the database ([`Persistence::start`]) and queries fail at once while it is down. See `docs/persistence.md` for the schema and the guarantees.
//!
//! Layout: `config.rs` (settings), `store.rs` ([`Db`]: connect, migrate, recover, query),
//! `sql.rs` (the statements, one copy per backend), `row.rs` (queued rows and batch
//! compaction), `spill.rs` (the overflow file), `writer.rs` (the write-behind handle),
//! `task.rs` (the task behind it), `health.rs` (up/down state), `metrics.rs`. Depends on `rollcall-core`, `sqlx`, `tokio`; nothing here knows about sockets.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rollcall_sql::SqlError> {
//! use rollcall_sql::{DbConfig, Persistence};
//! let p = Persistence::open(DbConfig::new("sqlite://rollcall.db", "node-1")).await?;
//! p.writer().login("alice", 1_700_000_000_000);
//! p.writer().flush().await?;
//! let seen = p.db().last_seen(&["alice".to_string()]).await?;
//! assert!(seen.contains_key("alice"));
//! p.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

mod config;
mod error;
mod health;
mod metrics;
mod row;
mod spill;
mod sql;
mod store;
mod task;
mod writer;

pub use config::DbConfig;
pub use error::SqlError;
pub use health::DbState;
pub use metrics::DbMetrics;
pub use store::{Backend, Db, LastSeen, Session};
pub use writer::Writer;

use std::sync::Arc;
use std::time::Duration;

/// An open database plus its running writer: what the server holds.
#[derive(Debug, Clone)]
pub struct Persistence {
    db: Db,
    writer: Writer,
}

impl Persistence {
    /// Starts the writer without waiting for the database: it connects in the background
    /// (migrations, replay of a spill file left by a previous run, closing the sessions this
    /// node left open with `node_restart`), retrying while the database is unreachable.
    /// Rows recorded meanwhile are kept, spilling to the spill file. Watch [`Db::state`].
    ///
    /// # Errors
    /// The URL is not `sqlite:`/`postgres:` or does not parse, or a spill file exists but
    /// cannot be read or is corrupt.
    pub fn start(cfg: DbConfig) -> Result<Persistence, SqlError> {
        let metrics = Arc::new(DbMetrics::default());
        let db = Db::lazy(&cfg, metrics)?;
        let writer = Writer::start(db.clone(), &cfg)?;
        Ok(Persistence { db, writer })
    }

    /// [`Persistence::start`], then waits until the database is up (migrated, spill file
    /// replayed, crash recovery done); the first failure is returned instead (fail fast).
    ///
    /// # Errors
    /// As [`Persistence::start`], or [`SqlError::Unavailable`] with the reason the database
    /// could not be reached, migrated or recovered.
    pub async fn open(cfg: DbConfig) -> Result<Persistence, SqlError> {
        let p = Persistence::start(cfg)?;
        match p.first_attempt(None).await {
            DbState::Down(why) => {
                p.shutdown(Duration::ZERO).await;
                Err(SqlError::Unavailable(why))
            }
            _ => Ok(p),
        }
    }

    /// Waits (at most `limit`, if given) until the writer's first start-up attempt has
    /// succeeded or failed, and returns the state then: `Up`, `Down`, or still `Starting`
    /// when `limit` passed first.
    pub async fn first_attempt(&self, limit: Option<Duration>) -> DbState {
        let mut rx = self.db.health().subscribe();
        let wait = async {
            rx.wait_for(|s| *s != DbState::Starting)
                .await
                .map(|s| s.clone())
                .unwrap_or(DbState::Down("the writer stopped".into()))
        };
        match limit {
            None => wait.await,
            Some(limit) => tokio::time::timeout(limit, wait)
                .await
                .unwrap_or(DbState::Starting),
        }
    }

    /// The query side.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The write side.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Counters for `/metrics`.
    pub fn metrics(&self) -> &DbMetrics {
        self.db.metrics()
    }

    /// Records one core status event dated `at_unix_ms` (non-blocking).
    pub fn record(&self, event: &rollcall_core::StatusEvent, at_unix_ms: u64) {
        self.writer.record(event, at_unix_ms);
    }

    /// Graceful stop: writes every queued row (retrying until `deadline`, then spilling the
    /// rest to the spill file), and closes this node's open sessions with reason `shutdown`.
    pub async fn shutdown(&self, deadline: Duration) {
        self.writer.shutdown(deadline).await;
    }
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
