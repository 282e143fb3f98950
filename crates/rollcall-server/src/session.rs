//! One socket's protocol state: its joined channels and what each inbound frame does.
//!
//! Synchronous on purpose: a frame goes in, engine calls and enqueued replies come out; no
//! `.await`, so no lock is ever held across one. The socket task (`ws.rs`) owns the I/O.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rollcall_core::{ConnId, Key, Meta, Outputs, Topic, TrackError};
use rollcall_phoenix::{
    Inbound, JoinConfig, Payload, PresenceCommand, UserBroadcastBody, Vsn, decode_binary,
    decode_text, encode_close, encode_push, encode_reply, encode_user_broadcast, event,
    parse_broadcast, parse_join, parse_presence, reply,
};
use serde_json::value::RawValue;

use crate::hub::{Frames, Hub, Outbox, Subscriber, TopicSubs, text_message};
use crate::metrics::Metrics;

/// A joined channel.
#[derive(Debug)]
struct Channel {
    join_ref: Arc<str>,
    internal: Topic,
    key: Key,
    broadcast_self: bool,
    broadcast_ack: bool,
}

/// Per-socket protocol state.
pub struct Session {
    hub: Arc<Hub>,
    conn: ConnId,
    vsn: Vsn,
    outbox: Outbox,
    channels: HashMap<String, Channel>,
    out: Outputs,
}

/// Internal topic name: public and private channels with one name are separate rooms.
fn internal_topic(external: &str, private: bool) -> Topic {
    if private {
        Topic::from(format!("private|{external}"))
    } else {
        Topic::new(external)
    }
}

/// The internal topic REST broadcasts and HTTP queries address for a subtopic.
pub fn topic_for(subtopic: &str, private: bool) -> Topic {
    let external = if subtopic.starts_with(event::TOPIC_PREFIX) {
        subtopic.to_string()
    } else {
        format!("{}{subtopic}", event::TOPIC_PREFIX)
    };
    internal_topic(&external, private)
}

impl Session {
    /// A session for a connection already registered with the engine.
    pub fn new(hub: Arc<Hub>, conn: ConnId, vsn: Vsn, outbox: Outbox) -> Session {
        Session {
            hub,
            conn,
            vsn,
            outbox,
            channels: HashMap::new(),
            out: Outputs::default(),
        }
    }

    /// Handles one text frame.
    pub fn handle_text(&mut self, text: &str) {
        self.inbound();
        match decode_text(self.vsn, text) {
            Ok(msg) => self.dispatch(msg),
            Err(e) => self.malformed(&e.to_string()),
        }
    }

    /// Handles one binary frame (kind 3 user broadcast, kind 0 push).
    pub fn handle_binary(&mut self, data: &[u8]) {
        self.inbound();
        match decode_binary(data) {
            Ok(msg) => self.dispatch(msg),
            Err(e) => self.malformed(&e.to_string()),
        }
    }

    /// Counts a control frame (ping/pong) as liveness.
    pub fn touch(&self) {
        self.hub.engine.heartbeat(self.conn, self.hub.now());
    }

    /// The WebSocket layer rejected input; returns true when it was a message over
    /// `max_frame_bytes` (the caller closes with 1009).
    pub fn protocol_error(&self, why: &str) -> bool {
        let too_big = why.contains("too long") || why.contains("too big");
        self.hub.metrics.error(if too_big {
            "frame_too_large"
        } else {
            "websocket_error"
        });
        too_big
    }

    fn inbound(&self) {
        Metrics::inc(&self.hub.metrics.messages_in);
        self.hub.engine.heartbeat(self.conn, self.hub.now());
    }

    fn malformed(&mut self, why: &str) {
        tracing::debug!(conn = self.conn.0, why, "malformed frame");
        self.hub.metrics.error("malformed_message");
        let body = reply::error_reason(&format!("malformed message: {why}"));
        self.reply(None, None, event::PHOENIX_TOPIC, reply::STATUS_ERROR, &body);
    }

    fn send(&self, buf: Vec<u8>) {
        self.outbox.send(text_message(buf), &self.hub.metrics);
    }

    fn reply(
        &self,
        join_ref: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        status: &str,
        response: &str,
    ) {
        let mut buf = Vec::with_capacity(64 + response.len());
        encode_reply(
            self.vsn, join_ref, msg_ref, topic, status, response, &mut buf,
        );
        self.send(buf);
    }

    fn error(&self, msg: &Inbound<'_>, metric: &'static str, reason: &str) {
        self.hub.metrics.error(metric);
        self.reply(
            msg.join_ref.as_deref(),
            msg.msg_ref.as_deref(),
            &msg.topic,
            reply::STATUS_ERROR,
            &reply::error_reason(reason),
        );
    }

    fn ok(&self, msg: &Inbound<'_>, response: &str) {
        self.reply(
            msg.join_ref.as_deref(),
            msg.msg_ref.as_deref(),
            &msg.topic,
            reply::STATUS_OK,
            response,
        );
    }

    fn dispatch(&mut self, msg: Inbound<'_>) {
        tracing::trace!(conn = self.conn.0, topic = %msg.topic, event = %msg.event, "inbound");
        if msg.topic == event::PHOENIX_TOPIC {
            if msg.event == event::HEARTBEAT {
                Metrics::inc(&self.hub.metrics.heartbeats);
                self.ok(&msg, reply::ok_empty());
            } else {
                self.error(
                    &msg,
                    "unknown_event",
                    &format!("unknown event on phoenix: {}", msg.event),
                );
            }
            return;
        }
        match &*msg.event {
            event::PHX_JOIN => self.join(&msg),
            event::PHX_LEAVE => {
                self.ok(&msg, reply::ok_empty());
                if self.channels.contains_key(&*msg.topic) {
                    self.leave(&msg.topic);
                }
            }
            _ if !self.channels.contains_key(&*msg.topic) => {
                self.error(&msg, "unmatched_topic", reply::UNMATCHED_TOPIC);
            }
            event::PRESENCE => self.presence(&msg),
            event::BROADCAST => self.broadcast(&msg),
            // Token refresh: RT never replies. Auth is verified by the security layer.
            event::ACCESS_TOKEN => {}
            other => {
                let reason = format!("UnknownEvent: {other} is not handled by this server");
                self.error(&msg, "unknown_event", &reason);
            }
        }
    }

    fn join(&mut self, msg: &Inbound<'_>) {
        let topic = &*msg.topic;
        let Some(sub) = topic.strip_prefix(event::TOPIC_PREFIX) else {
            return self.error(msg, "unmatched_topic", reply::UNMATCHED_TOPIC);
        };
        if sub.is_empty() {
            return self.error(msg, "topic_name_required", reply::TOPIC_NAME_REQUIRED);
        }
        let cfg: JoinConfig = match &msg.payload {
            Payload::Json(raw) => match parse_join(raw) {
                Ok(c) => c,
                Err(e) => {
                    return self.error(
                        msg,
                        "invalid_join_payload",
                        &format!("InvalidJoinPayload: {e}"),
                    );
                }
            },
            _ => {
                return self.error(
                    msg,
                    "invalid_join_payload",
                    "InvalidJoinPayload: payload must be a JSON object",
                );
            }
        };
        if cfg.postgres_changes > 0 {
            return self.error(
                msg,
                "postgres_changes",
                reply::POSTGRES_CHANGES_NOT_SUPPORTED,
            );
        }
        if cfg.replay_requested && !cfg.private {
            return self.error(msg, "replay_public", reply::UNABLE_TO_REPLAY_MESSAGES);
        }
        // A second join of a joined topic replaces the old channel (Phoenix closes it).
        if let Some(old) = self.channels.get(topic) {
            let mut buf = Vec::new();
            encode_close(self.vsn, Some(&old.join_ref), topic, &mut buf);
            self.send(buf);
            self.leave(topic);
        }
        if self.channels.len() >= self.hub.cfg.max_channels_per_connection {
            return self.error(msg, "too_many_channels", reply::CHANNEL_RATE_LIMIT_REACHED);
        }
        let join_ref: Arc<str> = Arc::from(
            msg.join_ref
                .as_deref()
                .or(msg.msg_ref.as_deref())
                .unwrap_or(""),
        );
        let internal = internal_topic(topic, cfg.private);
        let key = match cfg.presence_key.as_deref() {
            Some(k) if !k.is_empty() => Key::new(k),
            _ => Key::from(uuid::Uuid::new_v4().to_string()),
        };
        self.hub
            .registry
            .entry(internal.to_string())
            .or_insert_with(|| TopicSubs {
                external: Arc::from(topic),
                subs: Vec::new(),
            })
            .subs
            .push(Subscriber {
                conn: self.conn,
                join_ref: join_ref.clone(),
                vsn: self.vsn,
                outbox: self.outbox.clone(),
            });
        self.channels.insert(
            topic.to_string(),
            Channel {
                join_ref: join_ref.clone(),
                internal: internal.clone(),
                key,
                broadcast_self: cfg.broadcast_self,
                broadcast_ack: cfg.broadcast_ack,
            },
        );
        self.hub.channels.fetch_add(1, Ordering::Relaxed);
        Metrics::inc(&self.hub.metrics.joins);
        self.ok(msg, r#"{"postgres_changes":[]}"#);
        if cfg.presence_enabled {
            let mut state = Vec::with_capacity(256);
            self.hub.engine.write_state_json(&internal, &mut state);
            let mut buf = Vec::with_capacity(state.len() + 64);
            let state = std::str::from_utf8(&state).unwrap_or("{}");
            encode_push(
                self.vsn,
                Some(&join_ref),
                topic,
                event::PRESENCE_STATE,
                state,
                &mut buf,
            );
            self.send(buf);
        }
    }

    /// Removes a channel: its presence leaves, its subscription ends, then `phx_close`.
    fn leave(&mut self, topic: &str) {
        let Some(ch) = self.channels.remove(topic) else {
            return;
        };
        self.hub.channels.fetch_sub(1, Ordering::Relaxed);
        let now = self.hub.now();
        let _ = self
            .hub
            .engine
            .untrack(self.conn, &ch.internal, &ch.key, now, &mut self.out);
        self.hub.handle_events(&mut self.out);
        unsubscribe(&self.hub, &ch.internal, self.conn, &ch.join_ref);
        let mut buf = Vec::new();
        encode_close(self.vsn, Some(&ch.join_ref), topic, &mut buf);
        self.send(buf);
    }

    fn presence(&mut self, msg: &Inbound<'_>) {
        let Payload::Json(raw) = &msg.payload else {
            return self.error(msg, "invalid_presence", "presence payload must be JSON");
        };
        let cmd = match parse_presence(raw) {
            Ok(c) => c,
            Err(e) => {
                self.hub.metrics.error("invalid_presence");
                return self.reply(
                    msg.join_ref.as_deref(),
                    msg.msg_ref.as_deref(),
                    &msg.topic,
                    reply::STATUS_ERROR,
                    &e.response(),
                );
            }
        };
        let ch = &self.channels[&*msg.topic];
        let now = self.hub.now();
        match cmd {
            PresenceCommand::Track { meta } => {
                if meta.get().len() > self.hub.cfg.core.max_meta_bytes {
                    return self.shutdown_channel(
                        &msg.topic,
                        "track_too_large",
                        reply::TRACK_MESSAGE_SIZE_EXCEEDED,
                    );
                }
                let meta = match Meta::parse(meta.get()) {
                    Ok(m) => m,
                    Err(_) => {
                        return self.error(
                            msg,
                            "invalid_presence",
                            reply::PRESENCE_PAYLOAD_NOT_A_MAP,
                        );
                    }
                };
                let (internal, key) = (ch.internal.clone(), ch.key.clone());
                match self
                    .hub
                    .engine
                    .track(self.conn, &internal, &key, meta, now, &mut self.out)
                {
                    Ok(_) => self.ok(msg, reply::ok_empty()),
                    Err(TrackError::MetaTooLarge { .. }) => {
                        return self.shutdown_channel(
                            &msg.topic,
                            "track_too_large",
                            reply::TRACK_MESSAGE_SIZE_EXCEEDED,
                        );
                    }
                    Err(e) => self.error(msg, "track_refused", &e.to_string()),
                }
            }
            PresenceCommand::Untrack => {
                let (internal, key) = (ch.internal.clone(), ch.key.clone());
                let _ = self
                    .hub
                    .engine
                    .untrack(self.conn, &internal, &key, now, &mut self.out);
                self.ok(msg, reply::ok_empty());
            }
            PresenceCommand::NoOp => self.ok(msg, reply::ok_empty()),
            PresenceCommand::Unknown(name) => {
                tracing::debug!(conn = self.conn.0, event = name, "unknown presence event");
                self.hub.metrics.error("unknown_presence_event");
                self.reply(
                    msg.join_ref.as_deref(),
                    msg.msg_ref.as_deref(),
                    &msg.topic,
                    reply::STATUS_ERROR,
                    "{}",
                );
            }
        }
        self.hub.handle_events(&mut self.out);
    }

    /// Ends a channel the way RT does on a policy violation: a `system` error, then `phx_close`.
    fn shutdown_channel(&mut self, topic: &str, metric: &'static str, message: &str) {
        self.hub.metrics.error(metric);
        let Some(ch) = self.channels.get(topic) else {
            return;
        };
        let sub = topic.strip_prefix(event::TOPIC_PREFIX);
        let body = reply::system_message(reply::STATUS_ERROR, message, sub);
        let mut buf = Vec::new();
        encode_push(
            self.vsn,
            Some(&ch.join_ref),
            topic,
            event::SYSTEM,
            &body,
            &mut buf,
        );
        self.send(buf);
        self.leave(topic);
    }

    fn broadcast(&mut self, msg: &Inbound<'_>) {
        let ch = &self.channels[&*msg.topic];
        let skip = (!ch.broadcast_self).then_some((self.conn, &*ch.join_ref));
        let entry = self.hub.registry.get(ch.internal.as_str());
        match &msg.payload {
            Payload::Json(raw) => {
                if let Err(e) = parse_broadcast(raw) {
                    return self.error(
                        msg,
                        "invalid_broadcast",
                        &format!("invalid broadcast: {e}"),
                    );
                }
                drop(entry);
                self.hub
                    .broadcast_json(ch.internal.as_str(), event::BROADCAST, raw.get(), skip);
            }
            Payload::UserBroadcast {
                event: user_event,
                metadata,
                body,
            } => {
                if let Some(entry) = entry {
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
        let key = ch.key.clone();
        let ack = ch.broadcast_ack;
        self.hub
            .engine
            .activity(&key, self.hub.now(), &mut self.out);
        self.hub.handle_events(&mut self.out);
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
        let mut binary: Option<axum::extract::ws::Message> = None;
        for s in &entry.subs {
            if skip.is_some_and(|(c, jr)| c == s.conn && *s.join_ref == *jr) {
                continue;
            }
            let msg = match body {
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
                        axum::extract::ws::Message::Binary(out.into())
                    })
                    .clone(),
                // v1 cannot carry binary payloads; RT drops them for v1 sockets too.
                UserBroadcastBody::Binary(_) => continue,
            };
            s.outbox.send(msg, &self.hub.metrics);
        }
    }

    /// The socket closed (or is being closed): everything this connection held goes.
    pub fn close(&mut self, reason: rollcall_core::LeaveReason) {
        let now = self.hub.now();
        for (_, ch) in self.channels.drain() {
            self.hub.channels.fetch_sub(1, Ordering::Relaxed);
            unsubscribe(&self.hub, &ch.internal, self.conn, &ch.join_ref);
        }
        self.hub
            .engine
            .close_with(self.conn, now, reason, &mut self.out);
        self.hub.handle_events(&mut self.out);
    }

    /// Sends `phx_close` on every joined channel (server shutdown).
    pub fn close_all_channels(&self) {
        for (topic, ch) in &self.channels {
            let mut buf = Vec::new();
            encode_close(self.vsn, Some(&ch.join_ref), topic, &mut buf);
            self.send(buf);
        }
    }
}

fn unsubscribe(hub: &Hub, internal: &Topic, conn: ConnId, join_ref: &str) {
    if let Some(mut entry) = hub.registry.get_mut(internal.as_str()) {
        entry
            .subs
            .retain(|s| !(s.conn == conn && *s.join_ref == *join_ref));
    }
    hub.registry
        .remove_if(internal.as_str(), |_, e| e.subs.is_empty());
}
