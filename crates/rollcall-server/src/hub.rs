//! Shared server state: the engine, the topic → subscribers registry used for fan-out, the
//! open connections, the clock and the metrics.
//!
//! Fan-out encodes a message once per topic and serializer and hands every subscriber the same
//! reference-counted bytes. Diffs arrive through the engine's diff sink, one at a time in the
//! engine's order and outside its locks, so subscribers see a topic's diffs in the order they
//! happened and rendering never holds up a track.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::ws::{Message, Utf8Bytes};
use dashmap::DashMap;
use rollcall_core::{ConnId, Engine, Millis, Outputs, StatusEvent, TopicDiff};
use rollcall_phoenix::{Vsn, encode_broadcast, event};
use tokio::sync::Notify;

use crate::config::ServerConfig;
use crate::metrics::Metrics;
pub(crate) use crate::outbox::{ConnCtl, KillReason, Outbox};

/// One joined channel, as the fan-out sees it.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
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
pub(crate) struct TopicSubs {
    /// The topic as clients joined it (`realtime:room`), used in outgoing frames.
    pub external: Arc<str>,
    /// Joined channels.
    pub subs: Vec<Subscriber>,
}

/// Topic → subscribers.
pub(crate) type Registry = DashMap<String, TopicSubs>;

/// Everything the connection tasks, timer task and HTTP handlers share.
pub struct Hub {
    /// Validated configuration.
    pub(crate) cfg: ServerConfig,
    /// The presence engine.
    pub(crate) engine: Engine,
    /// Fan-out registry.
    pub(crate) registry: Arc<Registry>,
    /// Open connections.
    pub(crate) conns: DashMap<ConnId, Arc<ConnCtl>>,
    /// Counters.
    pub(crate) metrics: Arc<Metrics>,
    /// Joined channels on all connections.
    pub(crate) channels: AtomicUsize,
    /// Open sockets (drops to 0 when a shutdown has drained).
    pub(crate) sockets: AtomicUsize,
    /// Signalled when `sockets` changes, for the shutdown drain.
    pub(crate) sockets_changed: Notify,
    /// Login/logout persistence, set once by `serve` when a database is configured.
    pub(crate) persistence: std::sync::OnceLock<crate::persist::Store>,
    /// The other nodes (see `bus/`): a single node's [`crate::bus::LocalBus`] or Redis.
    pub(crate) bus: Arc<dyn crate::bus::Bus>,
    /// The accept loop's counters (open non-upgraded HTTP connections, refusals).
    pub(crate) listener: crate::listener::ListenerStats,
    /// Per-address REST request counters.
    pub(crate) http_rate: crate::http_limits::HttpRate,
    /// Where the engine's watch events go (the status topic's watchers).
    pub(crate) watches: crate::watches::WatchRoutes,
    /// The one clock (see `clock.rs`).
    pub(crate) clock: crate::clock::Clock,
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

    /// The validated configuration the server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// The presence engine (read its lists, statuses and stats; mutating it directly bypasses
    /// the sockets' bookkeeping).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The counters `/metrics` exports.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Open WebSocket connections (0 once a shutdown has drained).
    pub fn open_sockets(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }

    /// Joined channels over all connections.
    pub fn joined_channels(&self) -> usize {
        self.channels.load(Ordering::Relaxed)
    }

    /// Connections registered with the fan-out (each open socket until its task ends).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Status-watch sets held by sockets (the status extension, docs/protocol.md).
    pub fn status_watches(&self) -> usize {
        self.watches.len()
    }

    /// The login/logout store, once attached (by [`crate::Server::start`] when a database is
    /// configured, or by [`Hub::attach_persistence`]).
    pub fn persistence(&self) -> Option<&crate::persist::Store> {
        self.persistence.get()
    }

    /// Attaches a login/logout store opened by the caller (e.g. on a pool it shares); only
    /// once. Returns the store back if one is already attached.
    ///
    /// # Errors
    /// A store is already attached.
    pub fn attach_persistence(
        &self,
        store: crate::persist::Store,
    ) -> Result<(), crate::persist::Store> {
        self.persistence.set(store)
    }

    /// Closes every open WebSocket from the server side, as a missed-heartbeat expiry does
    /// (their presences leave; clients reconnect). For maintenance and for tests of client
    /// reconnection.
    pub fn close_all_connections(&self) {
        for c in self.conns.iter() {
            c.value().kill(KillReason::Timeout);
        }
    }

    /// Milliseconds since the server started: the engine's clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Converts an engine time to Unix milliseconds.
    pub(crate) fn to_unix_ms(&self, t: Millis) -> u64 {
        self.clock.to_unix_ms(t)
    }

    /// A fresh connection id.
    pub(crate) fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Logs and counts status events (persistence adapters hook in here).
    pub(crate) fn handle_events(&self, out: &mut Outputs) {
        for e in out.events.drain(..) {
            // A channel send: never blocks the socket or timer task calling us.
            let (StatusEvent::Login { key, at, .. }
            | StatusEvent::Logout { key, at, .. }
            | StatusEvent::Idle { key, at, .. }
            | StatusEvent::Active { key, at, .. }) = &e;
            crate::persist::record(self, &e, self.to_unix_ms(*at));
            self.bus.status_changed(key.as_str());
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
    pub(crate) fn broadcast_json(
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
pub(crate) struct Frames {
    v1: Option<Message>,
    v2: Option<Message>,
}

impl Frames {
    /// The frame for `vsn`, encoding it on first use.
    pub(crate) fn get(&mut self, vsn: Vsn, encode: impl FnOnce(Vsn, &mut Vec<u8>)) -> Message {
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
pub(crate) fn text_message(buf: Vec<u8>) -> Message {
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
pub(crate) fn deliver(
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

/// A diff from the engine's sink, in the order the engine produced it: its `presence_diff`
/// payload rendered once for the local subscribers (each frame encoded once per serializer),
/// and the diff itself to the bus, which carries it to the other nodes in the node-to-node
/// format (docs/clustering.md).
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
    bus.publish_diff(d);
}
