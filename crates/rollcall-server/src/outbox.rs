//! One connection's outbound side: a bounded queue of frames (messages and bytes) that the
//! fan-out fills and the socket task drains, and the kill switch the timer task and the
//! fan-out use to close a slow or silent connection.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use axum::extract::ws::Message;
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// Why the server closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// Missed heartbeats.
    Timeout,
    /// Its outbound queue was full.
    SlowConsumer,
    /// It joined faster than `max_joins_per_second`.
    JoinRate,
}

/// Control block of one open connection, shared with the fan-out and the timer task: its
/// outbound queue and the kill switch.
///
/// The queue is a `VecDeque` behind a per-connection `std::sync::Mutex` (held for a push or a
/// pop, never across an `.await`) instead of a tokio channel: an idle connection's empty
/// queue holds no allocation, and the capacity a burst left behind is released once drained.
#[derive(Debug)]
pub struct ConnCtl {
    kill: Notify,
    /// 0 while alive, else `KillReason as u8 + 1` (checked on every loop turn: no lock).
    reason: AtomicU8,
    queue: std::sync::Mutex<VecDeque<Message>>,
    ready: Notify,
    closed: AtomicBool,
    /// Payload bytes enqueued and not yet written to the socket.
    pub queued_bytes: AtomicUsize,
}

impl ConnCtl {
    fn new() -> ConnCtl {
        ConnCtl {
            kill: Notify::new(),
            reason: AtomicU8::new(0),
            queue: std::sync::Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            queued_bytes: AtomicUsize::new(0),
        }
    }

    /// Asks the connection's task to close the socket (first reason wins).
    pub fn kill(&self, reason: KillReason) {
        let code = reason as u8 + 1;
        let _ = self
            .reason
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.kill.notify_one();
    }

    /// Waits until [`ConnCtl::kill`] is called; returns the reason.
    pub async fn killed(&self) -> KillReason {
        loop {
            match self.reason.load(Ordering::Acquire) {
                0 => self.kill.notified().await,
                1 => return KillReason::Timeout,
                2 => return KillReason::SlowConsumer,
                _ => return KillReason::JoinRate,
            }
        }
    }

    /// Takes the next queued message, if any (the byte count is the writer's to update).
    pub fn try_recv(&self) -> Option<Message> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let msg = q.pop_front();
        if q.is_empty() && q.capacity() > 0 {
            // An idle connection holds no queue buffer (a free and a later malloc per burst
            // cost nanoseconds; a kept buffer costs every idle socket ~200 bytes).
            *q = VecDeque::new();
        }
        msg
    }

    /// Waits for the next queued message.
    pub async fn recv(&self) -> Message {
        loop {
            if let Some(m) = self.try_recv() {
                return m;
            }
            self.ready.notified().await;
        }
    }

    /// The connection is gone: later sends are refused and queued messages dropped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.clear();
        q.shrink_to_fit();
        self.queued_bytes.store(0, Ordering::Relaxed);
    }
}

/// The sending side of a connection: its bounded queue and its control block.
#[derive(Debug, Clone)]
pub struct Outbox {
    ctl: Arc<ConnCtl>,
    max_len: usize,
    max_bytes: usize,
}

/// Payload bytes of a message, for the per-connection byte bound.
pub(crate) fn message_len(msg: &Message) -> usize {
    match msg {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}

impl Outbox {
    /// Creates a queue of at most `max_len` messages and `max_bytes` payload bytes; returns
    /// the outbox and the control block (the receiving end: [`ConnCtl::recv`]).
    pub fn new(max_len: usize, max_bytes: usize) -> (Outbox, Arc<ConnCtl>) {
        let ctl = Arc::new(ConnCtl::new());
        (
            Outbox {
                ctl: ctl.clone(),
                max_len,
                max_bytes,
            },
            ctl,
        )
    }

    /// Enqueues without waiting; a full queue (messages or bytes) closes the connection as a
    /// slow consumer, so one client that does not read cannot hold unbounded memory.
    pub fn send(&self, msg: Message, metrics: &Metrics) -> bool {
        if self.ctl.closed.load(Ordering::Relaxed) {
            return false;
        }
        let len = message_len(&msg);
        let queued = self.ctl.queued_bytes.fetch_add(len, Ordering::Relaxed) + len;
        let accepted = queued <= self.max_bytes && {
            let mut q = self.ctl.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.len() < self.max_len && {
                q.push_back(msg);
                true
            }
        };
        if !accepted {
            self.ctl.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            Metrics::inc(&metrics.slow_consumers);
            self.ctl.kill(KillReason::SlowConsumer);
            return false;
        }
        self.ctl.ready.notify_one();
        Metrics::inc(&metrics.messages_out);
        true
    }

    /// Asks this connection's task to close the socket.
    pub fn kill(&self, reason: KillReason) {
        self.ctl.kill(reason);
    }
}
