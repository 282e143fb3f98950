//! Shared server state: the engine, the topic → subscribers registry used for fan-out, the
//! open connections, the clock and the metrics.
//!
//! Fan-out encodes a message once per topic and serializer and hands every subscriber the same
//! reference-counted bytes. Diffs arrive through the engine's diff sink, one at a time in the
//! engine's order and outside its locks, so subscribers see a topic's diffs in the order they
//! happened and rendering never holds up a track.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use axum::extract::ws::{Message, Utf8Bytes};
use dashmap::DashMap;
use rollcall_core::{ConnId, Engine, Millis, Outputs, StatusEvent, TopicDiff};
use rollcall_phoenix::{Vsn, encode_broadcast, event};
use tokio::sync::Notify;

use crate::config::ServerConfig;
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

/// Queue capacity kept after draining; beyond it the buffer is released.
const KEEP_QUEUE_CAPACITY: usize = 16;

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
        if q.is_empty() && q.capacity() > KEEP_QUEUE_CAPACITY {
            q.shrink_to(KEEP_QUEUE_CAPACITY);
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
pub fn message_len(msg: &Message) -> usize {
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

/// One joined channel, as the fan-out sees it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The connection.
    pub conn: ConnId,
    /// The channel's join ref (a connection may rejoin a topic).
    pub join_ref: Arc<str>,
    /// The connection's serializer.
    pub vsn: Vsn,
    /// Where to put frames.
    pub outbox: Outbox,
}

/// The subscribers of one internal topic.
#[derive(Debug)]
pub struct TopicSubs {
    /// The topic as clients joined it (`realtime:room`), used in outgoing frames.
    pub external: Arc<str>,
    /// Joined channels.
    pub subs: Vec<Subscriber>,
}

/// Topic → subscribers.
pub type Registry = DashMap<String, TopicSubs>;

/// Everything the connection tasks, timer task and HTTP handlers share.
pub struct Hub {
    /// Validated configuration.
    pub cfg: ServerConfig,
    /// The presence engine.
    pub engine: Engine,
    /// Fan-out registry.
    pub registry: Arc<Registry>,
    /// Open connections.
    pub conns: DashMap<ConnId, Arc<ConnCtl>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Joined channels on all connections.
    pub channels: AtomicUsize,
    /// Open sockets (drops to 0 when a shutdown has drained).
    pub sockets: AtomicUsize,
    /// Signalled when `sockets` changes, for the shutdown drain.
    pub sockets_changed: Notify,
    /// Login/logout persistence, set once by `serve` when a database is configured.
    pub persistence: std::sync::OnceLock<crate::persist::Store>,
    /// The other nodes (see `bus/`): a single node's [`crate::bus::LocalBus`] or Redis.
    pub bus: Arc<dyn crate::bus::Bus>,
    /// The accept loop's counters (open non-upgraded HTTP connections, refusals).
    pub listener: crate::listener::ListenerStats,
    /// Per-address REST request counters.
    pub http_rate: crate::http_limits::HttpRate,
    /// Where the engine's watch events go (the status topic's watchers).
    pub watches: crate::watches::WatchRoutes,
    /// The one clock (see `clock.rs`).
    pub clock: crate::clock::Clock,
    next_conn: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Builds the hub and wires the engine's diff sink to the registry.
    ///
    /// # Errors
    /// The engine configuration is invalid.
    pub fn new(cfg: ServerConfig) -> Result<Arc<Hub>, rollcall_core::ConfigError> {
        Hub::with_clock(cfg, crate::clock::Clock::system())
    }

    /// [`Hub::new`] on a given clock (a manual one in tests).
    ///
    /// # Errors
    /// The engine configuration is invalid.
    pub fn with_clock(
        cfg: ServerConfig,
        clock: crate::clock::Clock,
    ) -> Result<Arc<Hub>, rollcall_core::ConfigError> {
        let registry: Arc<Registry> = Arc::new(DashMap::new());
        let metrics = Arc::new(Metrics::default());
        let sink_registry = registry.clone();
        let sink_metrics = metrics.clone();
        let bus = crate::bus::build(&cfg);
        let sink_bus = bus.clone();
        let engine = Engine::with_diff_sink(
            cfg.core.clone(),
            Box::new(move |d: &TopicDiff| {
                fan_out_diff(&sink_registry, &sink_metrics, &*sink_bus, d);
            }),
        )?;
        Ok(Arc::new(Hub {
            cfg,
            engine,
            registry,
            conns: DashMap::new(),
            metrics,
            channels: AtomicUsize::new(0),
            sockets: AtomicUsize::new(0),
            sockets_changed: Notify::new(),
            persistence: std::sync::OnceLock::new(),
            bus,
            listener: crate::listener::ListenerStats::default(),
            http_rate: crate::http_limits::HttpRate::default(),
            watches: crate::watches::WatchRoutes::default(),
            clock,
            next_conn: std::sync::atomic::AtomicU64::new(1),
        }))
    }

    /// Milliseconds since the server started: the engine's clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Converts an engine time to Unix milliseconds.
    pub fn to_unix_ms(&self, t: Millis) -> u64 {
        self.clock.to_unix_ms(t)
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Logs and counts status events (persistence adapters hook in here).
    pub fn handle_events(&self, out: &mut Outputs) {
        for e in out.events.drain(..) {
            // A channel send: never blocks the socket or timer task calling us.
            let (StatusEvent::Login { at, .. }
            | StatusEvent::Logout { at, .. }
            | StatusEvent::Idle { at, .. }
            | StatusEvent::Active { at, .. }) = &e;
            crate::persist::record(self, &e, self.to_unix_ms(*at));
            match &e {
                StatusEvent::Login { key, .. } => {
                    Metrics::inc(&self.metrics.logins);
                    tracing::info!(key = %key, "login");
                }
                StatusEvent::Logout { key, reason, .. } => {
                    Metrics::inc(&self.metrics.logouts);
                    tracing::info!(key = %key, reason = reason.as_str(), "logout");
                }
                StatusEvent::Idle { key, .. } => tracing::info!(key = %key, "idle"),
                StatusEvent::Active { key, .. } => tracing::info!(key = %key, "active"),
            }
        }
        if !out.watch.is_empty() {
            let now = self.now();
            self.watches.deliver(
                &self.engine,
                &mut out.watch,
                now,
                |t| self.to_unix_ms(t),
                &self.metrics,
            );
        }
        for conn in out.expired.drain(..) {
            Metrics::inc(&self.metrics.timeouts);
            if let Some(ctl) = self.conns.get(&conn) {
                ctl.kill(KillReason::Timeout);
            }
        }
        out.diffs.clear();
    }

    /// Sends an already-encoded JSON payload as `event` to every channel of `internal_topic`,
    /// except `skip` (a sender with `broadcast.self` false). One encoding per serializer.
    pub fn broadcast_json(
        &self,
        internal_topic: &str,
        event_name: &str,
        payload_json: &str,
        skip: Option<(ConnId, &str)>,
    ) {
        self.bus
            .publish_broadcast(internal_topic, event_name, payload_json);
        deliver(
            &self.registry,
            &self.metrics,
            internal_topic,
            event_name,
            payload_json,
            skip,
        );
    }
}

/// Lazily encoded copies of one message, one per serializer, shared by all recipients.
#[derive(Default)]
pub struct Frames {
    v1: Option<Message>,
    v2: Option<Message>,
}

impl Frames {
    /// The frame for `vsn`, encoding it on first use.
    pub fn get(&mut self, vsn: Vsn, encode: impl FnOnce(Vsn, &mut Vec<u8>)) -> Message {
        let slot = match vsn {
            Vsn::V1 => &mut self.v1,
            Vsn::V2 => &mut self.v2,
        };
        slot.get_or_insert_with(|| {
            let mut buf = Vec::with_capacity(256);
            encode(vsn, &mut buf);
            text_message(buf)
        })
        .clone()
    }
}

/// Wraps encoded JSON bytes as a text message without copying.
pub fn text_message(buf: Vec<u8>) -> Message {
    match Utf8Bytes::try_from(buf) {
        Ok(text) => Message::Text(text),
        // Encoders write serde_json output and UTF-8 input only; keep going if that breaks.
        Err(_) => Message::Text(Utf8Bytes::from_static("")),
    }
}

/// The one local fan-out path: sends `payload_json` as `event_name` to every channel of
/// `internal_topic` (except `skip`, a sender with `broadcast.self` false), encoded once per
/// serializer and shared by every recipient. Returns how many channels it reached. Local
/// diffs, broadcasts (socket and REST) and messages from other nodes all come through here.
pub fn deliver(
    registry: &Registry,
    metrics: &Metrics,
    internal_topic: &str,
    event_name: &str,
    payload_json: &str,
    skip: Option<(ConnId, &str)>,
) -> usize {
    let Some(entry) = registry.get(internal_topic) else {
        return 0;
    };
    let is_diff = event_name == event::PRESENCE_DIFF;
    let mut frames = Frames::default();
    let mut reached = 0;
    for sub in &entry.subs {
        if skip.is_some_and(|(c, jr)| c == sub.conn && *sub.join_ref == *jr) {
            continue;
        }
        let msg = frames.get(sub.vsn, |vsn, out| {
            encode_broadcast(vsn, &entry.external, event_name, payload_json, out)
        });
        if sub.outbox.send(msg, metrics) {
            reached += 1;
            if is_diff {
                Metrics::inc(&metrics.diffs_sent);
            }
        }
    }
    reached
}

/// A diff from the engine's sink: rendered once, then to local subscribers and (in cluster
/// mode) to the other nodes, in the order the engine produced it.
fn fan_out_diff(registry: &Registry, metrics: &Metrics, bus: &dyn crate::bus::Bus, d: &TopicDiff) {
    let mut payload = Vec::with_capacity(128);
    d.diff.write_json(&mut payload);
    let payload = std::str::from_utf8(&payload).unwrap_or("{}");
    deliver(
        registry,
        metrics,
        d.topic.as_str(),
        event::PRESENCE_DIFF,
        payload,
        None,
    );
    bus.publish_diff(d, payload);
}
