//! Channel events after join: `presence` (track/untrack), `broadcast`, `access_token`.

use axum::extract::ws::Message;
use rollcall_core::{ConnId, Meta, TrackError};
use rollcall_phoenix::presence_msg::strip_server_meta_keys;
use rollcall_phoenix::{
    Inbound, Payload, PresenceCommand, UserBroadcastBody, Vsn, encode_user_broadcast, event,
    parse_broadcast, parse_presence, reply,
};
use serde_json::value::RawValue;

use super::Session;
use crate::auth::PresenceKeySource;
use crate::hub::{Frames, TopicSubs};
use crate::metrics::Metrics;

impl Session {
    pub(super) fn presence(&mut self, msg: &Inbound<'_>) {
        let Payload::Json(raw) = &msg.payload else {
            return self.error(msg, "invalid_presence", "presence payload must be JSON");
        };
        let cmd = match parse_presence(raw) {
            Ok(c) => c,
            Err(e) => {
                self.hub.metrics.error("invalid_presence");
                let (jr, r) = (msg.join_ref.as_deref(), msg.msg_ref.as_deref());
                return self.reply(jr, r, &msg.topic, reply::STATUS_ERROR, &e.response());
            }
        };
        let now = self.now;
        let limits = &self.hub.cfg.limits;
        let (calls, window) = (limits.presence_calls, limits.presence_window);
        let ch = self
            .channels
            .get_mut(&msg.topic)
            .expect("dispatch checked the topic is joined");
        if !ch.presence_calls.allow(now, window, calls) {
            // Supabase: system error + close, and no reply to the push.
            return self.end_channel(
                &msg.topic,
                "presence_rate",
                reply::CLIENT_PRESENCE_RATE_LIMIT_EXCEEDED,
            );
        }
        let (internal, key) = (ch.internal.clone(), ch.key.clone());
        match cmd {
            PresenceCommand::Track { meta } => {
                let Some(key) = key else {
                    let reason = "Unauthorized: presence_key = sub needs a token with a sub claim";
                    return self.error(msg, "presence_without_sub", reason);
                };
                if meta.get().len() > self.hub.cfg.core.max_meta_bytes {
                    return self.end_channel(
                        &msg.topic,
                        "track_too_large",
                        reply::TRACK_MESSAGE_SIZE_EXCEEDED,
                    );
                }
                let Some(meta) = client_meta(meta) else {
                    return self.error(msg, "invalid_presence", reply::PRESENCE_PAYLOAD_NOT_A_MAP);
                };
                match self
                    .hub
                    .engine
                    .track(self.conn, &internal, &key, meta, now, &mut self.out)
                {
                    Ok(_) => self.ok(msg, reply::ok_empty()),
                    Err(TrackError::MetaTooLarge { .. }) => {
                        return self.end_channel(
                            &msg.topic,
                            "track_too_large",
                            reply::TRACK_MESSAGE_SIZE_EXCEEDED,
                        );
                    }
                    Err(e @ TrackError::TooManyKeys { .. }) => {
                        self.error(msg, "too_many_keys", &format!("TooManyPresenceKeys: {e}"));
                    }
                    Err(e @ TrackError::KeyTooLong { .. }) => {
                        self.error(msg, "key_too_long", &format!("PresenceKeyTooLong: {e}"));
                    }
                    Err(e @ TrackError::TooManyPresences { .. }) => {
                        self.error(msg, "too_many_presences", &format!("TooManyPresences: {e}"));
                    }
                    Err(e) => self.error(msg, "track_refused", &e.to_string()),
                }
            }
            PresenceCommand::Untrack => {
                if let Some(key) = key {
                    let _ = self
                        .hub
                        .engine
                        .untrack(self.conn, &internal, &key, now, &mut self.out);
                }
                self.ok(msg, reply::ok_empty());
            }
            PresenceCommand::NoOp => self.ok(msg, reply::ok_empty()),
            PresenceCommand::Unknown(name) => {
                tracing::debug!(conn = self.conn.0, event = name, "unknown presence event");
                self.hub.metrics.error("unknown_presence_event");
                let (jr, r) = (msg.join_ref.as_deref(), msg.msg_ref.as_deref());
                self.reply(jr, r, &msg.topic, reply::STATUS_ERROR, "{}");
            }
        }
        self.hub.handle_events(&mut self.out);
    }

    pub(super) fn broadcast(&mut self, msg: &Inbound<'_>) {
        let ch = &self.channels[&*msg.topic];
        let skip = (!ch.broadcast_self).then_some((self.conn, &*ch.join_ref));
        match &msg.payload {
            Payload::Json(raw) => {
                if let Err(e) = parse_broadcast(raw) {
                    return self.error(
                        msg,
                        "invalid_broadcast",
                        &format!("invalid broadcast: {e}"),
                    );
                }
                self.hub
                    .broadcast_json(ch.internal.as_str(), event::BROADCAST, raw.get(), skip);
            }
            Payload::UserBroadcast {
                event: user_event,
                metadata,
                body,
            } => {
                if let Some(entry) = self.hub.registry.get(ch.internal.as_str()) {
                    self.fan_out_user_broadcast(&entry, user_event, *metadata, *body, skip);
                }
            }
            Payload::Binary(_) => {
                return self.error(
                    msg,
                    "invalid_broadcast",
                    "binary pushes are only accepted as user broadcasts",
                );
            }
        }
        Metrics::inc(&self.hub.metrics.broadcasts);
        let (key, ack) = (ch.key.clone(), ch.broadcast_ack);
        if let Some(key) = key {
            self.hub.engine.activity(&key, self.now, &mut self.out);
            self.hub.handle_events(&mut self.out);
        }
        if ack {
            self.ok(msg, reply::ok_empty());
        }
    }

    fn fan_out_user_broadcast(
        &self,
        entry: &TopicSubs,
        user_event: &str,
        metadata: Option<&RawValue>,
        body: UserBroadcastBody<'_>,
        skip: Option<(ConnId, &str)>,
    ) {
        let mut frames = Frames::default();
        let mut binary: Option<Message> = None;
        for s in &entry.subs {
            if skip.is_some_and(|(c, jr)| c == s.conn && *s.join_ref == *jr) {
                continue;
            }
            let m = match body {
                UserBroadcastBody::Json(_) => frames.get(s.vsn, |vsn, out| {
                    let _ = encode_user_broadcast(
                        vsn,
                        &entry.external,
                        user_event,
                        metadata,
                        body,
                        out,
                    );
                }),
                UserBroadcastBody::Binary(_) if s.vsn == Vsn::V2 => binary
                    .get_or_insert_with(|| {
                        let mut out = Vec::new();
                        let _ = encode_user_broadcast(
                            Vsn::V2,
                            &entry.external,
                            user_event,
                            metadata,
                            body,
                            &mut out,
                        );
                        Message::Binary(out.into())
                    })
                    .clone(),
                // v1 cannot carry binary payloads; Supabase drops them for v1 sockets too.
                UserBroadcastBody::Binary(_) => continue,
            };
            s.outbox.send(m, &self.hub.metrics);
        }
    }

    /// Token refresh. Supabase never replies; a bad token ends the channel with a `system`
    /// error; `null`, `sb_…` and the current token are ignored. With `presence_key = sub`, a
    /// valid token for another user is refused with a `system` error and the channel keeps
    /// its current token (its presence key is the old `sub`; changing user needs a rejoin).
    pub(super) fn access_token(&mut self, msg: &Inbound<'_>) {
        if !self.hub.cfg.auth.enabled() {
            return;
        }
        let Payload::Json(raw) = &msg.payload else {
            return;
        };
        let token = serde_json::from_str::<serde_json::Value>(raw.get())
            .ok()
            .and_then(|v| {
                v.get("access_token")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
            });
        let Some(token) = token.filter(|t| !t.is_empty() && !t.starts_with("sb_")) else {
            return;
        };
        let topic = msg.topic.to_string();
        if self.channels[topic.as_str()].token.as_deref() == Some(token.as_str()) {
            return;
        }
        match self.verify(Some(&token)) {
            Err(e) => self.end_channel(&topic, "auth_refused", &e.system_message()),
            Ok(claims) => {
                let sub = topic
                    .strip_prefix(event::TOPIC_PREFIX)
                    .unwrap_or(&topic)
                    .to_string();
                let ch = self.channels.get_mut(&topic).expect("checked above");
                if let Some(c) = &claims
                    && ch.private
                    && !self.hub.cfg.auth.may_join_private(&sub, c)
                {
                    let m = format!(
                        "You no longer have permission to read from this Channel topic: {sub}"
                    );
                    return self.end_channel(&topic, "private_refused", &m);
                }
                if let Some(c) = &claims
                    && self.hub.cfg.auth.presence_key == PresenceKeySource::Sub
                    && c.sub.as_deref() != ch.key.as_ref().map(|k| k.as_str())
                {
                    return self.refuse_other_user(&topic);
                }
                if topic == super::STATUS_TOPIC && !self.may_read_statuses(claims.as_ref()) {
                    let m = "status_read = service_role: the new token may not watch statuses";
                    return self.end_channel(&topic, "status_read_refused", m);
                }
                let ch = self.channels.get_mut(&topic).expect("checked above");
                ch.exp = claims.as_ref().map(|c| c.exp);
                ch.token = Some(token);
            }
        }
    }

    /// A refresh to another user's token while presence keys are token subs: refused, the
    /// channel stays on its current token.
    fn refuse_other_user(&self, topic: &str) {
        let message = "Token refresh refused: the new token is for another user (sub); \
                       the channel keeps its current token, rejoin to change user";
        self.system_error(topic, "refresh_other_sub", message);
    }
}

/// A client's meta object without the keys the server writes (`phx_ref`, `phx_ref_prev`):
/// kept, they would be duplicated in every `presence_state` and diff. None: not an object.
fn client_meta(raw: &RawValue) -> Option<Meta> {
    let mut value: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
    if strip_server_meta_keys(value.as_object_mut()?) {
        tracing::debug!("phx_ref / phx_ref_prev removed from a client meta");
    }
    Meta::from_value(&value).ok()
}
