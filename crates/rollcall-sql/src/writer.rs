//! The write-behind handle: a non-blocking front for the task in `task.rs` that batches rows.
//!
//! [`Writer::record`] is an unbounded channel send: it never blocks or fails while the task
//! runs, so a socket task is never held up by the database. The task moves rows from the
//! channel into the queue (memory, then the spill file), assigns each session its
//! `(run_id, seq)` identity, and writes the oldest rows in batches: when `batch_max` are
//! waiting, or `flush_interval` after the first one arrived. A failed batch is retried, the
//! same rows in the same order, after a delay that doubles from `retry_min` to `retry_max`;
//! later rows wait behind it, so the order per key (and globally) is kept. Retrying a batch
//! whose commit actually succeeded is harmless: session inserts are `ON CONFLICT DO NOTHING`
//! on `(node_id, run_id, seq)`, logouts update one identified session, and the status upsert
//! writes the same values.
//!
//! The write-behind window is bounded: a row still uncommitted `sync_window` after it was
//! queued (slow or unreachable database) is appended to the spill file and fsynced, so a
//! crash loses at most the rows of the last `sync_window`. [`Writer::durable`] waits until
//! every row queued so far is committed or synced that way.

use std::sync::Arc;
use std::time::Duration;

use rollcall_core::StatusEvent;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::DbConfig;
use crate::error::SqlError;
use crate::spill::Queue;
use crate::store::Db;
use crate::task::Task;

/// What a status event does to a session.
#[derive(Debug)]
pub(crate) enum Kind {
    Login,
    Logout(&'static str),
    Idle,
    Active,
}

/// A message to the task.
#[derive(Debug)]
pub(crate) enum Cmd {
    Event {
        key: String,
        at: i64,
        kind: Kind,
    },
    /// Reply once every row queued before is committed.
    Flush(oneshot::Sender<()>),
    /// Reply once every row queued before is committed or fsynced to the spill file.
    Durable(oneshot::Sender<()>),
    Shutdown(Duration, oneshot::Sender<()>),
}

/// Handle to the writer task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Cmd>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Writer {
    /// Spawns the task. It connects in the background: it runs the migrations, replays a
    /// spill file left by a previous run, runs crash recovery ([`Db::recover`]) and then
    /// writes new rows, retrying each step while the database is unreachable (rows queued
    /// meanwhile spill to disk). Nothing here waits for the database.
    ///
    /// # Errors
    /// The spill file exists but cannot be read.
    pub fn start(db: Db, cfg: &DbConfig) -> Result<Writer, SqlError> {
        let queue = Queue::open(cfg.spill_path.clone(), cfg.queue_capacity)?;
        if !queue.is_empty() {
            tracing::info!(rows = queue.len(), path = %cfg.spill_path.display(), "spill file found: replaying it once the database is up");
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = tokio::spawn(Task::new(db, rx, queue, cfg).run());
        Ok(Writer {
            tx,
            task: Arc::new(Mutex::new(Some(handle))),
        })
    }

    fn send(&self, key: &str, at: u64, kind: Kind) {
        let _ = self.tx.send(Cmd::Event {
            key: key.to_string(),
            at: at as i64,
            kind,
        });
    }

    /// Queues a core status event dated `at_unix_ms` (non-blocking).
    pub fn record(&self, event: &StatusEvent, at_unix_ms: u64) {
        let (key, kind) = match event {
            StatusEvent::Login { key, .. } => (key, Kind::Login),
            StatusEvent::Logout { key, reason, .. } => (key, Kind::Logout(reason.as_str())),
            StatusEvent::Idle { key, .. } => (key, Kind::Idle),
            StatusEvent::Active { key, .. } => (key, Kind::Active),
        };
        self.send(key.as_str(), at_unix_ms, kind);
    }

    /// Queues a login of `key` at `at_unix_ms`.
    pub fn login(&self, key: &str, at_unix_ms: u64) {
        self.send(key, at_unix_ms, Kind::Login);
    }

    /// Queues a logout of `key`; `reason` as in `LeaveReason::as_str`.
    pub fn logout(&self, key: &str, at_unix_ms: u64, reason: &'static str) {
        self.send(key, at_unix_ms, Kind::Logout(reason));
    }

    /// Waits until every event queued before this call is in the database.
    ///
    /// # Errors
    /// [`SqlError::Stopped`] if the writer has shut down.
    pub async fn flush(&self) -> Result<(), SqlError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Flush(tx))
            .map_err(|_| SqlError::Stopped)?;
        rx.await.map_err(|_| SqlError::Stopped)
    }

    /// Returns a future that resolves once every event queued before this call is durable:
    /// committed, or (while the database is slow or down) appended to the spill file and
    /// fsynced, to be replayed when it is back. The request is queued now, so the order
    /// against earlier [`Writer::record`] calls is fixed even if the future is polled later.
    /// It resolves within about `sync_window` plus one fsync, whatever the database does.
    pub fn durable(&self) -> impl std::future::Future<Output = Result<(), SqlError>> + use<> {
        let (tx, rx) = oneshot::channel();
        let sent = self.tx.send(Cmd::Durable(tx)).is_ok();
        async move {
            if !sent {
                return Err(SqlError::Stopped);
            }
            rx.await.map_err(|_| SqlError::Stopped)
        }
    }

    /// Writes everything queued (retrying until `deadline`; what is still unwritten then goes
    /// to the spill file, replayed on the next start), closes this node's open sessions with
    /// reason `shutdown`, and stops the task. Later events are ignored.
    pub async fn shutdown(&self, deadline: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(deadline, tx)).is_ok() {
            let _ = rx.await;
        }
        if let Some(h) = self.task.lock().await.take() {
            let _ = h.await;
        }
    }
}
