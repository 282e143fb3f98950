//! Watch routing: the core's watch events (`Outputs::watch`) reach the sockets that asked.
//!
//! A socket watching key `k` (event `watch` on the reserved topic `realtime:rollcall:status`,
//! see `session/watch.rs`) holds one engine watch set per key, and here one [`Route`] per set:
//! where to push, and the status last pushed. A watch event does not carry the new status to
//! the socket as is: the route asks the engine for the key's status now and pushes it only if
//! it differs from the last one pushed. Two threads delivering events of one key in the other
//! order therefore still leave the socket with the engine's final status, and a change undone
//! within one batch pushes nothing.

use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use rollcall_core::{Engine, Key, KeyStatus, Millis, Status, WatchEvent, WatchId};
use rollcall_phoenix::{Vsn, encode_push};

use crate::hub::{Outbox, text_message};
use crate::metrics::Metrics;

/// The event pushed on the status topic when a watched key changes.
pub(crate) const STATUS_EVENT: &str = "status";

/// Where one watch set's changes go.
#[derive(Debug)]
pub(crate) struct Route {
    /// The watched key.
    pub key: Key,
    /// The watching socket's queue.
    pub outbox: Outbox,
    /// Its serializer.
    pub vsn: Vsn,
    /// The status channel's join ref.
    pub join_ref: Arc<str>,
    /// The status channel's topic, as joined.
    pub topic: Arc<str>,
    /// The status last sent to the socket (in the `watch` reply or a push).
    last: Mutex<Status>,
}

impl Route {
    /// A route whose socket was last told `status`.
    pub(crate) fn new(
        key: Key,
        outbox: Outbox,
        vsn: Vsn,
        join_ref: Arc<str>,
        topic: Arc<str>,
        status: Status,
    ) -> Route {
        Route {
            key,
            outbox,
            vsn,
            join_ref,
            topic,
            last: Mutex::new(status),
        }
    }
}

/// Watch set → route, for every watching socket.
#[derive(Debug, Default)]
pub(crate) struct WatchRoutes {
    routes: DashMap<WatchId, Arc<Route>>,
}

impl WatchRoutes {
    /// Registers where `id`'s changes go.
    pub(crate) fn insert(&self, id: WatchId, route: Route) {
        self.routes.insert(id, Arc::new(route));
    }

    /// Forgets `id` (its watcher left).
    pub(crate) fn remove(&self, id: WatchId) {
        self.routes.remove(&id);
    }

    /// Routes registered (one per watched key per socket).
    pub(crate) fn len(&self) -> usize {
        self.routes.len()
    }

    /// Delivers the engine's watch events (drained): each affected route pushes the key's
    /// current status if it is not the one last pushed. `to_unix_ms` converts engine times.
    pub(crate) fn deliver(
        &self,
        engine: &Engine,
        events: &mut Vec<WatchEvent>,
        now: Millis,
        to_unix_ms: impl Fn(Millis) -> u64,
        metrics: &Metrics,
    ) {
        for e in events.drain(..) {
            let Some(route) = self.routes.get(&e.watch).map(|r| r.clone()) else {
                continue; // unwatched since
            };
            sync(engine, &route, now, &to_unix_ms, metrics);
        }
    }

    /// Answers a `watch` request: reads the current status of each of `ids`' keys, records
    /// it as the status last sent, and calls `reply` with them while every one of those
    /// routes is locked, so no push of a later change can be queued before the answer.
    pub(crate) fn answer(
        &self,
        engine: &Engine,
        ids: &[WatchId],
        now: Millis,
        reply: impl FnOnce(&[KeyStatus]),
    ) {
        let routes: Vec<Arc<Route>> = ids
            .iter()
            .filter_map(|id| self.routes.get(id).map(|r| r.clone()))
            .collect();
        let mut guards = Vec::with_capacity(routes.len());
        let mut statuses = Vec::with_capacity(routes.len());
        for route in &routes {
            let mut last = route.last.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(mut s) = engine.statuses(std::slice::from_ref(&route.key), now)
                && let Some(s) = s.pop()
            {
                *last = s.status;
                statuses.push(s);
            }
            guards.push(last);
        }
        reply(&statuses);
        drop(guards);
    }
}

fn sync(
    engine: &Engine,
    route: &Route,
    now: Millis,
    to_unix_ms: &impl Fn(Millis) -> u64,
    metrics: &Metrics,
) {
    let mut last = route.last.lock().unwrap_or_else(|e| e.into_inner());
    let Ok(mut current) = engine.statuses(std::slice::from_ref(&route.key), now) else {
        return; // the key was checked when watched
    };
    let Some(current) = current.pop() else { return };
    if current.status == *last {
        return;
    }
    *last = current.status;
    let payload = status_json(&current, to_unix_ms);
    let mut buf = Vec::with_capacity(payload.len() + 64);
    encode_push(
        route.vsn,
        Some(&route.join_ref),
        &route.topic,
        STATUS_EVENT,
        &payload,
        &mut buf,
    );
    route.outbox.send(text_message(buf), metrics);
}

/// `{"key":..,"status":..,"last_seen":<unix ms>|null}` for one key.
pub(crate) fn status_json(s: &KeyStatus, to_unix_ms: impl Fn(Millis) -> u64) -> String {
    serde_json::json!({
        "key": s.key.as_str(),
        "status": s.status.as_str(),
        "last_seen": s.last_seen.map(to_unix_ms),
    })
    .to_string()
}
