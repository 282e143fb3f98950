//! The write-behind task: a non-blocking handle in front of one task that batches rows.
//!
//! [`Writer::record`] is an unbounded channel send: it never blocks or fails while the task
//! runs, so a socket task is never held up by the database. The task moves rows from the
//! channel into the [`Queue`] (memory, then the spill file), assigns each session its
//! `(run_id, seq)` identity, and writes the oldest rows in batches: when `batch_max` are
//! waiting, or `flush_interval` after the first one arrived. A failed batch is retried, the
//! same rows in the same order, after a delay that doubles from `retry_min` to `retry_max`;
//! later rows wait behind it, so the order per key (and globally) is kept. Retrying a batch
//! whose commit actually succeeded is harmless: session inserts are `ON CONFLICT DO NOTHING`
//! on `(node_id, run_id, seq)`, logouts update one identified session, and the status upsert
//! writes the same values.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rollcall_core::StatusEvent;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::DbConfig;
use crate::error::SqlError;
use crate::metrics::DbMetrics;
use crate::row::{Batch, Row};
use crate::spill::Queue;
use crate::store::Db;

#[derive(Debug)]
enum Kind {
    Login,
    Logout(&'static str),
    Idle,
    Active,
}

#[derive(Debug)]
enum Cmd {
    Event { key: String, at: i64, kind: Kind },
    Flush(oneshot::Sender<()>),
    Shutdown(Duration, oneshot::Sender<()>),
}

/// Handle to the writer task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Cmd>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Writer {
    /// Replays a spill file left by a previous run, runs crash recovery
    /// ([`Db::recover`]) and spawns the task.
    ///
    /// # Errors
    /// The spill file is unreadable or the database failed during replay or recovery.
    pub async fn start(db: Db, cfg: &DbConfig) -> Result<Writer, SqlError> {
        let mut queue = Queue::open(cfg.spill_path.clone(), cfg.queue_capacity)?;
        if !queue.is_empty() {
            tracing::info!(rows = queue.len(), path = %cfg.spill_path.display(), "replaying spill file");
            while !queue.is_empty() {
                let (rows, ack) = queue.peek(cfg.batch_max.max(1))?;
                db.write(&Batch::compact(&rows)).await?;
                queue.ack(ack)?;
            }
        }
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(1);
        let closed = db.recover(run).await?;
        if closed > 0 {
            tracing::warn!(
                closed,
                "closed sessions left open by a previous run (node_restart)"
            );
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            db,
            rx,
            queue,
            open: HashMap::new(),
            run,
            next_seq: 1,
            batch_max: cfg.batch_max.max(1),
            flush_interval: cfg.flush_interval,
            beat_interval: cfg.beat_interval,
            retry_min: cfg.retry_min,
            retry_max: cfg.retry_max.max(cfg.retry_min),
            op_timeout: cfg.op_timeout,
            backoff: cfg.retry_min,
            retry_at: None,
            first_at: None,
            enqueued: 0,
            written: 0,
            waiters: Vec::new(),
        };
        let handle = tokio::spawn(task.run());
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

struct Task {
    db: Db,
    rx: mpsc::UnboundedReceiver<Cmd>,
    queue: Queue,
    /// Key → open sessions of this run (oldest first; normally one).
    open: HashMap<String, VecDeque<i64>>,
    run: i64,
    next_seq: i64,
    batch_max: usize,
    flush_interval: Duration,
    beat_interval: Duration,
    retry_min: Duration,
    retry_max: Duration,
    op_timeout: Duration,
    backoff: Duration,
    retry_at: Option<Instant>,
    first_at: Option<Instant>,
    enqueued: u64,
    written: u64,
    waiters: Vec<(u64, oneshot::Sender<()>)>,
}

impl Task {
    async fn run(mut self) {
        let mut beat = tokio::time::interval(self.beat_interval);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        beat.tick().await;
        loop {
            let due = self.due();
            tokio::select! {
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else {
                        // Every handle is gone: write what we have, as a shutdown would.
                        self.shutdown(Duration::from_secs(5)).await;
                        return;
                    };
                    let mut stop = self.handle(cmd);
                    let mut n = 0;
                    while stop.is_none() && n < self.batch_max {
                        match self.rx.try_recv() {
                            Ok(cmd) => stop = self.handle(cmd),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                    if let Some((deadline, reply)) = stop {
                        self.shutdown(deadline).await;
                        let _ = reply.send(());
                        return;
                    }
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.flush_all().await;
                }
                _ = beat.tick() => {
                    if let Ok(Err(e)) = tokio::time::timeout(self.op_timeout, self.db.beat()).await {
                        tracing::debug!(error = %e, "node beat failed");
                    }
                }
            }
        }
    }

    /// When the next write attempt is due, if anything is waiting.
    fn due(&self) -> Option<Instant> {
        if self.queue.is_empty() {
            return None;
        }
        if let Some(t) = self.retry_at {
            return Some(t);
        }
        if self.queue.len() >= self.batch_max {
            return Some(Instant::now());
        }
        Some(self.first_at.unwrap_or_else(Instant::now) + self.flush_interval)
    }

    fn handle(&mut self, cmd: Cmd) -> Option<(Duration, oneshot::Sender<()>)> {
        match cmd {
            Cmd::Event { key, at, kind } => {
                let row = match kind {
                    Kind::Login => {
                        let seq = self.next_seq;
                        self.next_seq += 1;
                        self.open.entry(key.clone()).or_default().push_back(seq);
                        Row::Login {
                            key,
                            run: self.run,
                            seq,
                            at,
                        }
                    }
                    Kind::Logout(reason) => {
                        let seq = match self.open.get_mut(&key) {
                            Some(q) => {
                                let s = q.pop_front();
                                if q.is_empty() {
                                    self.open.remove(&key);
                                }
                                s
                            }
                            None => None,
                        };
                        Row::Logout {
                            key,
                            run: self.run,
                            seq,
                            at,
                            reason: reason.to_string(),
                        }
                    }
                    Kind::Idle => Row::Status {
                        key,
                        status: "idle".into(),
                        at,
                    },
                    Kind::Active => Row::Status {
                        key,
                        status: "online".into(),
                        at,
                    },
                };
                if self.queue.is_empty() {
                    self.first_at = Some(Instant::now());
                }
                match self.queue.push(row) {
                    Ok(0) => {}
                    Ok(n) => {
                        DbMetrics::add(&self.db.metrics().spilled, n as u64);
                        tracing::warn!(rows = n, "write queue full: spilled to file");
                    }
                    Err(e) => tracing::error!(error = %e, "spill failed; keeping rows in memory"),
                }
                self.enqueued += 1;
                self.set_queued();
                None
            }
            Cmd::Flush(reply) => {
                if self.written >= self.enqueued {
                    let _ = reply.send(());
                } else {
                    self.waiters.push((self.enqueued, reply));
                }
                None
            }
            Cmd::Shutdown(deadline, reply) => Some((deadline, reply)),
        }
    }

    fn set_queued(&self) {
        self.db.metrics().queued.store(
            self.queue.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Writes batches until the queue is empty or a write fails (then schedules a retry).
    /// Returns whether the queue is empty.
    async fn flush_all(&mut self) -> bool {
        while !self.queue.is_empty() {
            let result = match self.queue.peek(self.batch_max) {
                Ok((rows, ack)) => {
                    let batch = Batch::compact(&rows);
                    match tokio::time::timeout(self.op_timeout, self.db.write(&batch)).await {
                        Ok(Ok(_)) => self.queue.ack(ack).map(|()| rows.len()),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(SqlError::Timeout(self.op_timeout.as_millis() as u64)),
                    }
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(n) => {
                    self.written += n as u64;
                    self.retry_at = None;
                    self.backoff = self.retry_min;
                    self.release_waiters();
                }
                Err(e) => {
                    DbMetrics::add(&self.db.metrics().write_errors, 1);
                    tracing::warn!(error = %e, queued = self.queue.len(), retry_in_ms = self.backoff.as_millis() as u64, "database write failed; will retry");
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(self.retry_max);
                    self.set_queued();
                    return false;
                }
            }
        }
        self.first_at = None;
        self.set_queued();
        true
    }

    fn release_waiters(&mut self) {
        let written = self.written;
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].0 <= written {
                let (_, tx) = self.waiters.swap_remove(i);
                let _ = tx.send(());
            } else {
                i += 1;
            }
        }
    }

    async fn shutdown(&mut self, deadline: Duration) {
        let end = Instant::now() + deadline;
        while !self.rx.is_empty() {
            match self.rx.try_recv() {
                Ok(cmd @ Cmd::Event { .. }) => {
                    self.handle(cmd);
                }
                Ok(Cmd::Flush(tx)) => self.waiters.push((self.enqueued, tx)),
                Ok(Cmd::Shutdown(_, tx)) => drop(tx),
                Err(_) => break,
            }
        }
        self.retry_at = None;
        let mut done = false;
        loop {
            if self.flush_all().await {
                done = true;
                break;
            }
            let next = self.retry_at.unwrap_or_else(Instant::now);
            if next >= end {
                break;
            }
            tokio::time::sleep_until(next).await;
        }
        if !done {
            match self.queue.spill_memory() {
                Ok(n) => tracing::warn!(
                    rows = self.queue.len(),
                    spilled_now = n,
                    "database unreachable at shutdown: rows kept in the spill file for the next start"
                ),
                Err(e) => {
                    tracing::error!(error = %e, rows = self.queue.len(), "database unreachable and spill failed at shutdown: rows lost")
                }
            }
            return;
        }
        let now = crate::unix_now_ms();
        match tokio::time::timeout(
            self.op_timeout,
            self.db.close_open_sessions(now, "shutdown"),
        )
        .await
        {
            Ok(Ok(n)) => tracing::info!(closed = n, "closed open sessions (shutdown)"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "closing sessions at shutdown failed; the next start closes them (node_restart)")
            }
            Err(_) => tracing::warn!(
                "closing sessions at shutdown timed out; the next start closes them (node_restart)"
            ),
        }
        self.db.close().await;
    }
}
