//! One socket's protocol state: its joined channels and what each inbound frame does.
//!
//! Sans-IO: no clock, no runtime, no socket. Every input comes with the time it happened
//! (`handle_text(now, …)`, `handle_timeout(now)`); replies and pushes go to the connection's
//! outbound queue, engine calls are made in place, and a close the socket must perform is
//! returned ([`SessionClose`]). The session says when it next needs the time
//! ([`Session::poll_timeout`]: join timeout, token expiry); the socket task (`ws.rs`) only
//! moves bytes and sleeps until then. No `.await`, so no lock is ever held across one.
//!
//! Files: `mod.rs` (dispatch and replies), `join.rs` (join, leave, auth), `events.rs`
//! (presence, broadcast, access_token), `timers.rs` (join timeout, token expiry), `watch.rs`
//! (the status-watch extension), `tests.rs` (unit tests on a manual clock).

mod channels;
mod events;
mod join;
mod timers;
mod watch;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rollcall_core::{ConnId, Key, LeaveReason, Millis, Outputs, Topic, WatchId};
use rollcall_phoenix::{
    Inbound, Vsn, decode_binary, decode_text, encode_close, encode_push, encode_reply, event,
    plain_heartbeat_ref, reply,
};

use crate::auth::Claims;
use crate::hub::{Hub, Outbox, text_message};
use crate::limits::RateWindow;
use crate::metrics::Metrics;
use crate::refusal::Refusal;

pub(crate) use join::topic_for;
pub(crate) use watch::STATUS_TOPIC;

/// A joined channel.
#[derive(Debug)]
struct Channel {
    join_ref: Arc<str>,
    internal: Topic,
    /// The presence key; `None` when `presence_key = sub` and the token has no `sub`.
    key: Option<Key>,
    broadcast_self: bool,
    broadcast_ack: bool,
    private: bool,
    /// The token this channel was authorised with (when auth is on).
    token: Option<String>,
    /// When that token expires, Unix seconds.
    exp: Option<u64>,
    presence_calls: RateWindow,
}

/// Per-socket protocol state.
pub struct Session {
    hub: Arc<Hub>,
    conn: ConnId,
    vsn: Vsn,
    outbox: Outbox,
    channels: channels::Channels,
    out: Outputs,
    /// The socket's `apikey` token and its claims (verified on connect when auth is on).
    apikey: Option<(String, Option<Claims>)>,
    joins: RateWindow,
    /// Every inbound message but heartbeats, malformed ones included.
    events: RateWindow,
    heartbeats: RateWindow,
    joined_once: bool,
    /// Keys watched on the status topic, each with its engine watch set.
    watching: Vec<(Key, WatchId)>,
    /// The time of the input being handled.
    now: Millis,
    /// When the socket is closed if it has joined nothing.
    join_deadline: Millis,
}

impl Session {
    /// A session for a connection already registered with the engine at `now`. `apikey` is
    /// the connect-time token (already verified when auth is on).
    pub fn new(
        hub: Arc<Hub>,
        conn: ConnId,
        vsn: Vsn,
        outbox: Outbox,
        apikey: Option<(String, Option<Claims>)>,
        now: Millis,
    ) -> Session {
        let join_deadline = now + hub.cfg.limits.join_timeout;
        Session {
            hub,
            conn,
            vsn,
            outbox,
            channels: channels::Channels::default(),
            out: Outputs::default(),
            apikey,
            joins: RateWindow::new(),
            events: RateWindow::new(),
            heartbeats: RateWindow::new(),
            joined_once: false,
            watching: Vec::new(),
            now,
            join_deadline,
        }
    }

    /// Handles one text frame received at `now`.
    pub fn handle_text(&mut self, now: Millis, text: &str) {
        self.touch(now);
        Metrics::inc(&self.hub.metrics.messages_in);
        // Most frames are heartbeats in realtime-js' exact shape: no JSON decode for those.
        if let Some(msg_ref) = plain_heartbeat_ref(self.vsn, text) {
            return self.heartbeat(None, Some(msg_ref));
        }
        match decode_text(self.vsn, text) {
            Ok(msg) => self.dispatch(msg),
            Err(e) => self.malformed(&e.to_string()),
        }
    }

    /// Handles one binary frame (kind 3 user broadcast, kind 0 push) received at `now`.
    pub fn handle_binary(&mut self, now: Millis, data: &[u8]) {
        self.touch(now);
        Metrics::inc(&self.hub.metrics.messages_in);
        match decode_binary(data) {
            Ok(msg) => self.dispatch(msg),
            Err(e) => self.malformed(&e.to_string()),
        }
    }

    /// Counts any inbound traffic at `now` (including ping/pong) as liveness.
    pub fn touch(&mut self, now: Millis) {
        self.set_now(now);
        self.hub.engine.heartbeat(self.conn, now);
    }

    /// Time never goes back inside a session, whatever the caller passes.
    fn set_now(&mut self, now: Millis) {
        self.now = self.now.max(now);
    }

    /// Unix seconds at the current input's time (token checks).
    fn unix_secs(&self) -> u64 {
        self.hub.clock.to_unix_ms(self.now) / 1000
    }

    /// The shared state this session works on.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Counts one message against `max_events_per_second`; false when over it.
    fn allow_event(&mut self) -> bool {
        let max = self.hub.cfg.limits.max_events_per_second;
        let now = self.now;
        self.events
            .allow(now, rollcall_core::Millis::from_secs(1), max)
    }

    fn malformed(&mut self, why: &str) {
        // Garbage counts against the message budget too, or it would be a free flood.
        if !self.allow_event() {
            self.hub.metrics.error("events_rate");
            let body = reply::error_reason(reply::TOO_MANY_MESSAGES);
            return self.reply(None, None, event::PHOENIX_TOPIC, reply::STATUS_ERROR, &body);
        }
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

    fn error(&self, msg: &Inbound<'_>, why: Refusal) {
        let (join_ref, msg_ref) = (msg.join_ref.as_deref(), msg.msg_ref.as_deref());
        self.refuse(join_ref, msg_ref, &msg.topic, why);
    }

    /// Counts `why` and answers the message with its error reply.
    fn refuse(&self, join_ref: Option<&str>, msg_ref: Option<&str>, topic: &str, why: Refusal) {
        self.hub.metrics.error(why.metric());
        let body = reply::error_reason(&why.reason());
        self.reply(join_ref, msg_ref, topic, reply::STATUS_ERROR, &body);
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

    /// Answers a heartbeat (liveness was already refreshed by the frame's arrival).
    fn heartbeat(&mut self, join_ref: Option<&str>, msg_ref: Option<&str>) {
        // Heartbeats have their own, smaller budget: a client sends one every 25 s.
        let max = self.hub.cfg.limits.max_heartbeats_per_second;
        let now = self.now;
        let topic = event::PHOENIX_TOPIC;
        if !self
            .heartbeats
            .allow(now, rollcall_core::Millis::from_secs(1), max)
        {
            return self.refuse(join_ref, msg_ref, topic, Refusal::HeartbeatRate);
        }
        Metrics::inc(&self.hub.metrics.heartbeats);
        self.reply(
            join_ref,
            msg_ref,
            topic,
            reply::STATUS_OK,
            reply::ok_empty(),
        );
    }

    fn dispatch(&mut self, msg: Inbound<'_>) {
        tracing::trace!(conn = self.conn.0, topic = %msg.topic, event = %msg.event, "inbound");
        if msg.topic == event::PHOENIX_TOPIC && msg.event == event::HEARTBEAT {
            return self.heartbeat(msg.join_ref.as_deref(), msg.msg_ref.as_deref());
        }
        if !self.allow_event() {
            if self.channels.contains_key(&msg.topic) {
                return self.end_channel(&msg.topic, Refusal::EventRate);
            }
            return self.error(&msg, Refusal::EventRate);
        }
        if msg.topic == event::PHOENIX_TOPIC {
            let e = msg.event.to_string();
            return self.error(&msg, Refusal::UnknownPhoenixEvent(e));
        }
        match &*msg.event {
            event::PHX_JOIN => self.join(&msg),
            event::PHX_LEAVE => {
                self.ok(&msg, reply::ok_empty());
                if self.channels.contains_key(&msg.topic) {
                    self.leave(&msg.topic);
                }
            }
            _ if !self.channels.contains_key(&msg.topic) => {
                self.error(&msg, Refusal::UnmatchedTopic);
            }
            _ if msg.topic == STATUS_TOPIC && msg.event != event::ACCESS_TOKEN => {
                self.status_event(&msg);
            }
            event::PRESENCE => self.presence(&msg),
            event::BROADCAST => self.broadcast(&msg),
            event::ACCESS_TOKEN => self.access_token(&msg),
            other => {
                self.error(&msg, Refusal::UnknownEvent(other.to_string()));
            }
        }
    }

    /// Removes a channel: its presence leaves, its subscription ends, then `phx_close`.
    fn leave(&mut self, topic: &str) {
        let Some(ch) = self.channels.remove(topic) else {
            return;
        };
        self.hub.channels.fetch_sub(1, Ordering::Relaxed);
        if topic == STATUS_TOPIC {
            self.unwatch_all();
        }
        if let Some(key) = &ch.key {
            let now = self.now;
            let _ = self
                .hub
                .engine
                .untrack(self.conn, &ch.internal, key, now, &mut self.out);
            self.hub.handle_events(&mut self.out);
        }
        unsubscribe(&self.hub, &ch.internal, self.conn, &ch.join_ref);
        let mut buf = Vec::new();
        encode_close(self.vsn, Some(&ch.join_ref), topic, &mut buf);
        self.send(buf);
    }

    /// Ends a channel as Supabase does on a policy violation: `system` error, then `phx_close`.
    fn end_channel(&mut self, topic: &str, why: Refusal) {
        if self.system_error(topic, &why) {
            self.leave(topic);
        }
    }

    /// Pushes a `system` error on a joined channel without ending it; false if not joined.
    fn system_error(&self, topic: &str, why: &Refusal) -> bool {
        self.hub.metrics.error(why.metric());
        let Some(ch) = self.channels.get(topic) else {
            return false;
        };
        let sub = topic.strip_prefix(event::TOPIC_PREFIX);
        let body = reply::system_message(reply::STATUS_ERROR, &why.reason(), sub);
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
        true
    }

    /// The socket closed (or is being closed) at `now`: everything this connection held goes.
    pub fn close(&mut self, now: Millis, reason: LeaveReason) {
        self.set_now(now);
        self.unwatch_all();
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
        for (topic, ch) in self.channels.iter() {
            let mut buf = Vec::new();
            encode_close(self.vsn, Some(&ch.join_ref), topic, &mut buf);
            self.send(buf);
        }
    }
}

fn unsubscribe(hub: &Hub, internal: &Topic, conn: ConnId, join_ref: &str) {
    let removed = match hub.registry.get_mut(internal.as_str()) {
        Some(mut entry) => {
            let before = entry.subs.len();
            entry
                .subs
                .retain(|s| !(s.conn == conn && *s.join_ref == *join_ref));
            before - entry.subs.len()
        }
        None => 0,
    };
    // After the registry guard is gone: remote deliveries take the view lock, then the registry.
    hub.bus.unsubscribe(internal.as_str(), removed);
    hub.registry
        .remove_if(internal.as_str(), |_, e| e.subs.is_empty());
}
