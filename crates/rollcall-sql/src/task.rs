//! The writer task behind [`crate::Writer`].
//!
//! One loop owns the queue. It never waits on the database itself: each database step (a
//! migration run, a batch, crash recovery, a node beat) is a spawned *job*, at most one at a
//! time, so commands keep being taken in and the write-behind window keeps being enforced
//! while a statement hangs. Steps, in order: `Migrate` → `Replay` (rows a previous run left in
//! the spill file) → `Recover` (close that run's open sessions, `node_restart`) → `Running`.
//! A failed job marks the database down and is retried after a backoff; the first success
//! after recovery marks it up again.
//!
//! Counters are in queue order, rows of a previous run included: `enqueued` rows were queued,
//! the first `written` are committed, the first `synced` are on disk in the spill file.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use crate::config::DbConfig;
use crate::error::SqlError;
use crate::metrics::DbMetrics;
use crate::row::{Batch, Row};
use crate::spill::{Ack, Queue};
use crate::store::Db;
use crate::writer::{Cmd, Kind};

mod shutdown;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Migrate,
    Replay,
    Recover,
    Running,
}

#[derive(Debug)]
enum Job {
    Migrate,
    Rows { ack: Ack, n: usize },
    Recover,
    Beat,
}

type Waiters = Vec<(u64, oneshot::Sender<()>)>;
type Stop = (Duration, Option<oneshot::Sender<()>>);

pub(crate) struct Task {
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
    sync_window: Duration,
    phase: Phase,
    /// Rows of a previous run still to replay before recovery.
    old_left: usize,
    backoff: Duration,
    retry_at: Option<Instant>,
    flush_at: Option<Instant>,
    next_beat: Instant,
    inflight: Option<(Job, JoinHandle<Result<u64, SqlError>>)>,
    enqueued: u64,
    written: u64,
    synced: u64,
    flush_waiters: Waiters,
    durable_waiters: Waiters,
    stop: Option<Stop>,
}

async fn join(
    h: Option<&mut JoinHandle<Result<u64, SqlError>>>,
) -> Result<Result<u64, SqlError>, JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

impl Task {
    pub(crate) fn new(
        db: Db,
        rx: mpsc::UnboundedReceiver<Cmd>,
        queue: Queue,
        cfg: &DbConfig,
    ) -> Task {
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(1);
        let old = queue.len();
        Task {
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
            sync_window: cfg.sync_window,
            phase: Phase::Migrate,
            old_left: old,
            backoff: cfg.retry_min,
            retry_at: None,
            flush_at: None,
            next_beat: Instant::now() + cfg.beat_interval,
            inflight: None,
            enqueued: old as u64,
            written: 0,
            synced: old as u64,
            flush_waiters: Vec::new(),
            durable_waiters: Vec::new(),
            stop: None,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            if let Some((deadline, reply)) = self.stop.take() {
                self.shutdown(deadline).await;
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                return;
            }
            let now = Instant::now();
            if self.inflight.is_none() && self.job_due(now).is_some_and(|t| t <= now) {
                self.start_job(now, false);
            }
            let wake = self.wake(now);
            let inflight = self.inflight.as_mut().map(|(_, h)| h);
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    // Every handle is gone: write what we have, as a shutdown would.
                    None => self.stop = Some((Duration::from_secs(5), None)),
                    Some(cmd) => {
                        self.handle(cmd);
                        for _ in 0..self.batch_max {
                            match self.rx.try_recv() {
                                Ok(cmd) => self.handle(cmd),
                                Err(_) => break,
                            }
                        }
                    }
                },
                res = join(inflight) => self.finish_job(res),
                _ = tokio::time::sleep_until(wake) => {}
            }
            self.sync_if_late();
        }
    }

    /// When the next job is due (ignoring one in flight); `None`: nothing to do.
    fn job_due(&self, now: Instant) -> Option<Instant> {
        if let Some(t) = self.retry_at {
            return Some(t);
        }
        if self.phase != Phase::Running {
            return Some(now);
        }
        let rows = if self.queue.is_empty() {
            None
        } else if self.queue.len() >= self.batch_max || self.queue.file_len() > 0 {
            Some(now)
        } else {
            Some(self.flush_at.unwrap_or(now))
        };
        Some(rows.map_or(self.next_beat, |r| r.min(self.next_beat)))
    }

    /// When the loop must wake up even if no command arrives.
    fn wake(&self, now: Instant) -> Instant {
        let mut t = now + Duration::from_secs(3600);
        if self.inflight.is_none()
            && let Some(due) = self.job_due(now)
        {
            t = t.min(due);
        }
        if let Some(at) = self.queue.oldest_mem_at() {
            t = t.min(at + self.sync_window);
        }
        t
    }

    /// Spawns the next job. `draining` (shutdown): rows now, no beats.
    fn start_job(&mut self, now: Instant, draining: bool) {
        let (job, batch) = match self.phase {
            Phase::Migrate => (Job::Migrate, None),
            Phase::Recover => (Job::Recover, None),
            Phase::Running
                if !draining
                    && (self.queue.is_empty()
                        || (self.retry_at.is_none() && self.next_beat <= now)) =>
            {
                self.next_beat = now + self.beat_interval;
                (Job::Beat, None)
            }
            Phase::Running | Phase::Replay => {
                let max = if self.phase == Phase::Replay {
                    self.batch_max.min(self.old_left)
                } else {
                    self.batch_max
                };
                match self.queue.peek(max) {
                    Ok((rows, ack)) => (
                        Job::Rows { ack, n: rows.len() },
                        Some(Batch::compact(&rows)),
                    ),
                    Err(e) => return self.failed(now, &e),
                }
            }
        };
        let db = self.db.clone();
        let limit = match job {
            Job::Rows { .. } | Job::Beat => self.op_timeout,
            Job::Migrate | Job::Recover => self.op_timeout * 4,
        };
        let run = self.run;
        let is = (matches!(job, Job::Migrate), matches!(job, Job::Recover));
        let handle = tokio::spawn(async move {
            let work = async {
                match (batch, is) {
                    (Some(b), _) => db.write(&b).await.map(|_| 0),
                    (None, (true, _)) => db.migrate().await.map(|()| 0),
                    (None, (_, true)) => db.recover(run).await,
                    (None, _) => db.beat().await.map(|()| 0),
                }
            };
            match tokio::time::timeout(limit, work).await {
                Ok(r) => r,
                Err(_) => Err(SqlError::Timeout(limit.as_millis() as u64)),
            }
        });
        self.inflight = Some((job, handle));
    }

    fn failed(&mut self, now: Instant, e: &SqlError) {
        self.db.health().set_down(&e.to_string());
        tracing::debug!(error = %e, queued = self.queue.len(), retry_in_ms = self.backoff.as_millis() as u64, "database step failed; will retry");
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(self.retry_max);
    }

    fn finish_job(&mut self, res: Result<Result<u64, SqlError>, JoinError>) {
        let Some((job, _)) = self.inflight.take() else {
            return;
        };
        let now = Instant::now();
        let res =
            res.unwrap_or_else(|e| Err(SqlError::Unavailable(format!("writer job failed: {e}"))));
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                if matches!(job, Job::Rows { .. }) {
                    DbMetrics::add(&self.db.metrics().write_errors, 1);
                    tracing::warn!(error = %e, queued = self.queue.len(), retry_in_ms = self.backoff.as_millis() as u64, "database write failed; will retry");
                }
                self.failed(now, &e);
                self.set_queued();
                return;
            }
        };
        self.retry_at = None;
        self.backoff = self.retry_min;
        match job {
            Job::Migrate => {
                self.phase = if self.old_left > 0 {
                    tracing::info!(rows = self.old_left, "replaying spill file");
                    Phase::Replay
                } else {
                    Phase::Recover
                };
            }
            Job::Rows { ack, n: rows } => {
                if let Err(e) = self.queue.ack(ack) {
                    tracing::error!(error = %e, "spill file bookkeeping failed after a write");
                }
                self.written += rows as u64;
                self.synced = self.synced.max(self.written);
                if self.phase == Phase::Replay {
                    self.old_left -= rows.min(self.old_left);
                    if self.old_left == 0 {
                        self.phase = Phase::Recover;
                    }
                }
                self.flush_at = None;
                self.release();
                self.set_queued();
            }
            Job::Recover => {
                if n > 0 {
                    tracing::warn!(
                        closed = n,
                        "closed sessions left open by a previous run (node_restart)"
                    );
                }
                self.phase = Phase::Running;
                self.next_beat = now + self.beat_interval;
            }
            Job::Beat => {}
        }
        if self.phase == Phase::Running {
            self.db.health().set_up();
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Event { key, at, kind } => {
                let row = self.row(key, at, kind);
                if self.queue.is_empty() {
                    self.flush_at = Some(Instant::now() + self.flush_interval);
                }
                match self.queue.push(row) {
                    Ok(0) => {}
                    Ok(n) => {
                        DbMetrics::add(&self.db.metrics().spilled, n as u64);
                        self.synced = self.enqueued;
                        tracing::warn!(rows = n, "write queue full: spilled to file");
                    }
                    Err(e) => tracing::error!(error = %e, "spill failed; keeping rows in memory"),
                }
                self.enqueued += 1;
                self.release();
                self.set_queued();
            }
            Cmd::Flush(reply) => self.flush_waiters.push((self.enqueued, reply)),
            Cmd::Durable(reply) => self.durable_waiters.push((self.enqueued, reply)),
            Cmd::Shutdown(deadline, reply) => {
                if self.stop.is_none() {
                    self.stop = Some((deadline, Some(reply)));
                }
            }
        }
        self.release();
    }

    fn row(&mut self, key: String, at: i64, kind: Kind) -> Row {
        match kind {
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
                let seq = self.open.get_mut(&key).and_then(|q| q.pop_front());
                if self.open.get(&key).is_some_and(VecDeque::is_empty) {
                    self.open.remove(&key);
                }
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
        }
    }

    /// The write-behind window: rows waiting in memory longer than `sync_window` (the
    /// database is slow or down) go to the spill file now, fsynced, with everything already
    /// sent to the channel.
    fn sync_if_late(&mut self) {
        let Some(at) = self.queue.oldest_mem_at() else {
            return;
        };
        if at + self.sync_window > Instant::now() {
            return;
        }
        self.sync_now();
    }

    fn sync_now(&mut self) {
        while let Ok(cmd) = self.rx.try_recv() {
            self.handle(cmd);
        }
        match self.queue.spill_memory() {
            Ok(0) => {}
            Ok(n) => {
                let m = self.db.metrics();
                DbMetrics::add(&m.spilled, n as u64);
                DbMetrics::add(&m.window_syncs, 1);
                self.synced = self.enqueued;
                tracing::debug!(
                    rows = n,
                    "rows older than the write-behind window synced to the spill file"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, rows = self.queue.len(), "spill failed: rows stay in memory only")
            }
        }
        self.release();
    }

    fn release(&mut self) {
        let (written, durable) = (self.written, self.written.max(self.synced));
        release(&mut self.flush_waiters, written);
        release(&mut self.durable_waiters, durable);
    }

    fn set_queued(&self) {
        self.db.metrics().queued.store(
            self.queue.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

fn release(waiters: &mut Waiters, upto: u64) {
    let mut i = 0;
    while i < waiters.len() {
        if waiters[i].0 <= upto {
            let (_, tx) = waiters.swap_remove(i);
            let _ = tx.send(());
        } else {
            i += 1;
        }
    }
}
