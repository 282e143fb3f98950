//! The status-watch extension: the reserved topic `realtime:rollcall:status`, its `watch` and
//! `unwatch` events, and the `status` pushes (routed by `crate::watch`). See
//! docs/protocol.md, "Extension: status watch".

use std::sync::Arc;

use rollcall_core::{Key, KeyStatus, QueryError, WatchId};
use rollcall_phoenix::{Inbound, Payload, reply};
use serde::Deserialize;

use super::{Channel, Session};
use crate::auth::Claims;
use crate::http_auth::{SERVICE_ROLE, StatusRead};
use crate::limits::RateWindow;
use crate::refusal::Refusal;
use crate::watches::{Route, status_json};

/// The reserved topic (`client.channel('rollcall:status')` in realtime-js).
pub(crate) const STATUS_TOPIC: &str = "realtime:rollcall:status";
/// Watch a list of keys.
pub(super) const WATCH: &str = "watch";
/// Stop watching a list of keys.
pub(super) const UNWATCH: &str = "unwatch";

/// `{"keys": [...]}`.
#[derive(Deserialize)]
struct KeysBody {
    keys: Vec<String>,
}

impl Session {
    /// Joins the status topic: the token was verified like any join's; `status_read =
    /// service_role` further needs a `service_role` token, as on `POST /api/presence/status`.
    pub(super) fn join_status(
        &mut self,
        msg: &Inbound<'_>,
        claims: Option<Claims>,
        token: Option<String>,
    ) {
        if !self.may_read_statuses(claims.as_ref()) {
            return self.error(msg, Refusal::StatusRead);
        }
        if self.channels.contains_key(STATUS_TOPIC) {
            // A rejoin replaces the channel; its watches go with it.
            self.leave(STATUS_TOPIC);
        }
        if self.channels.len() >= self.hub.cfg.max_channels_per_connection {
            return self.error(msg, Refusal::TooManyChannels);
        }
        self.open_channel(
            msg,
            Channel {
                join_ref: super::join::join_ref_of(msg),
                internal: rollcall_core::Topic::new(STATUS_TOPIC),
                key: None,
                broadcast_self: false,
                broadcast_ack: false,
                private: false,
                exp: claims.as_ref().map(|c| c.exp),
                token: claims.as_ref().and(token),
                presence_calls: RateWindow::new(),
            },
        );
    }

    /// Whether a token with `claims` may watch (`None`: the server runs open).
    pub(super) fn may_read_statuses(&self, claims: Option<&Claims>) -> bool {
        match (self.hub.cfg.http.status_read, claims) {
            (StatusRead::Any, _) | (_, None) => true,
            (StatusRead::ServiceRole, Some(c)) => c.role == SERVICE_ROLE,
        }
    }

    /// An event on the joined status topic.
    pub(super) fn status_event(&mut self, msg: &Inbound<'_>) {
        if msg.event != WATCH && msg.event != UNWATCH {
            let e = msg.event.to_string();
            return self.error(msg, Refusal::UnknownStatusEvent(e));
        }
        let keys = match parse_keys(msg) {
            Ok(k) => k,
            Err(why) => return self.error(msg, Refusal::InvalidWatch(why)),
        };
        if msg.event == UNWATCH {
            for key in &keys {
                self.unwatch_key(key);
            }
            return self.ok(msg, reply::ok_empty());
        }
        self.watch(msg, keys);
    }

    fn watch(&mut self, msg: &Inbound<'_>, keys: Vec<Key>) {
        let max_key = self.hub.cfg.core.max_key_bytes;
        if let Some(k) = keys.iter().find(|k| k.len() > max_key) {
            let e = QueryError::KeyTooLong {
                len: k.len(),
                max: max_key,
            };
            return self.error(msg, Refusal::WatchKeyTooLong(e.to_string()));
        }
        // Validated settings keep it within max_batch_keys; a config built in code may not.
        let cfg = &self.hub.cfg;
        let limit = cfg.limits.max_watched_keys.min(cfg.core.max_batch_keys);
        let mut asked = keys;
        asked.sort();
        asked.dedup();
        let fresh: Vec<Key> = asked
            .iter()
            .filter(|k| !self.watching.iter().any(|(w, _)| w == *k))
            .cloned()
            .collect();
        if asked.len() > limit || self.watching.len() + fresh.len() > limit {
            let r = Refusal::TooManyWatchedKeys {
                max: limit,
                watched: self.watching.len(),
                asked: asked.len(),
            };
            return self.error(msg, r);
        }
        let now = self.now;
        let join_ref = self.channels[STATUS_TOPIC].join_ref.clone();
        let topic = Arc::<str>::from(STATUS_TOPIC);
        for key in fresh {
            let Ok((id, mut current)) = self.hub.engine.watch(vec![key.clone()], now) else {
                continue; // length and count were checked above
            };
            let status = current
                .pop()
                .map_or(rollcall_core::Status::Offline, |s| s.status);
            let route = Route::new(
                key.clone(),
                self.outbox.clone(),
                self.vsn,
                join_ref.clone(),
                topic.clone(),
                status,
            );
            self.hub.watches.insert(id, route);
            self.watching.push((key, id));
        }
        let ids: Vec<WatchId> = asked
            .iter()
            .filter_map(|k| {
                self.watching
                    .iter()
                    .find(|(w, _)| w == k)
                    .map(|(_, id)| *id)
            })
            .collect();
        let hub = self.hub.clone();
        hub.watches.answer(&hub.engine, &ids, now, |statuses| {
            let body = statuses_json(statuses, |t| hub.to_unix_ms(t));
            self.ok(msg, &body);
        });
    }

    fn unwatch_key(&mut self, key: &Key) {
        if let Some(i) = self.watching.iter().position(|(k, _)| k == key) {
            let (_, id) = self.watching.swap_remove(i);
            self.hub.watches.remove(id);
            self.hub.engine.unwatch(id);
        }
    }

    /// Drops every watch of this socket (status channel left, socket closed).
    pub(super) fn unwatch_all(&mut self) {
        for (_, id) in self.watching.drain(..) {
            self.hub.watches.remove(id);
            self.hub.engine.unwatch(id);
        }
        self.watching = Vec::new();
    }
}

fn parse_keys(msg: &Inbound<'_>) -> Result<Vec<Key>, String> {
    let Payload::Json(raw) = &msg.payload else {
        return Err("InvalidWatchPayload: payload must be a JSON object".into());
    };
    let body: KeysBody = serde_json::from_str(raw.get())
        .map_err(|e| format!(r#"InvalidWatchPayload: expected {{"keys":["..."]}} ({e})"#))?;
    Ok(body.keys.iter().map(|k| Key::new(k)).collect())
}

/// `{"statuses":[{key, status, last_seen}, ...]}`.
fn statuses_json(
    statuses: &[KeyStatus],
    to_unix_ms: impl Fn(rollcall_core::Millis) -> u64,
) -> String {
    let mut out = String::from(r#"{"statuses":["#);
    for (i, s) in statuses.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&status_json(s, &to_unix_ms));
    }
    out.push_str("]}");
    out
}
