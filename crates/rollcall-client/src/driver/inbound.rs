//! Frames from the server: replies, presence, broadcasts, system messages, close and error.

use rollcall_phoenix::{Inbound, Payload, UserBroadcastBody, Vsn, event};
use serde_json::Value;

use super::{ChanState, Driver, Pending};
use crate::error::ChannelError;
use crate::event::{Broadcast, BroadcastBody, ChannelEvent};

impl Driver {
    pub(super) fn handle_text(&mut self, text: &str) {
        match decode(self.cfg.vsn, Some(text), None) {
            Some(msg) => self.handle_message(&msg),
            None => tracing::debug!(frame = text, "undecodable frame ignored"),
        }
    }

    pub(super) fn handle_binary(&mut self, bin: &[u8]) {
        let Some(msg) = decode(self.cfg.vsn, None, Some(bin)) else {
            tracing::debug!(len = bin.len(), "undecodable binary frame ignored");
            return;
        };
        let Some(chan) = self.channels.get(msg.topic.as_ref()) else {
            return;
        };
        if let Some(b) = binary_broadcast(&msg) {
            let _ = chan.shared.events.send(ChannelEvent::Broadcast(b));
        }
    }

    fn handle_message(&mut self, msg: &Inbound<'_>) {
        let payload = match &msg.payload {
            Payload::Json(raw) => raw.get(),
            _ => return,
        };
        if msg.event == event::PHX_REPLY {
            if let Some(r) = msg.msg_ref.as_deref() {
                self.handle_reply(r, payload);
            }
            return;
        }
        let topic = msg.topic.as_ref();
        let Some(chan) = self.channels.get_mut(topic) else {
            return;
        };
        // Phoenix JS's isMember: a message for another join of this topic is stale.
        if msg.join_ref.is_some() && msg.join_ref.as_deref() != chan.join_ref.as_deref() {
            return;
        }
        let shared = chan.shared.clone();
        match msg.event.as_ref() {
            event::PRESENCE_STATE | event::PRESENCE_DIFF if chan.config.presence_enabled => {
                let mut out = Vec::new();
                let jr = chan.join_ref.as_deref();
                let res = {
                    let mut map = shared.presence.lock().unwrap_or_else(|e| e.into_inner());
                    if msg.event == event::PRESENCE_STATE {
                        map.handle_state(jr, payload, &mut out)
                    } else {
                        map.handle_diff(jr, payload, &mut out)
                    }
                };
                if let Err(e) = res {
                    tracing::warn!(error = %e, topic, "bad presence payload ignored");
                }
                let keys = self.watchers.touched(&out);
                for e in out {
                    let _ = shared.events.send(ChannelEvent::Presence(e));
                }
                self.update_watchers(Some(keys));
            }
            event::BROADCAST => {
                if let Some(b) = text_broadcast(payload) {
                    let _ = shared.events.send(ChannelEvent::Broadcast(b));
                }
            }
            event::SYSTEM => {
                let v = serde_json::from_str(payload).unwrap_or(Value::Null);
                let _ = shared.events.send(ChannelEvent::System(v));
            }
            event::PHX_CLOSE => {
                chan.state = ChanState::Waiting;
                chan.join_ref = None;
                let deadline = tokio::time::Instant::now() + super::CLOSE_GRACE;
                self.closing.push((topic.to_owned(), deadline));
            }
            event::PHX_ERROR => {
                let _ = shared
                    .events
                    .send(ChannelEvent::Error("channel error".into()));
                chan.state = ChanState::Waiting;
                chan.join_ref = None;
                let delay = super::backoff(&self.cfg.rejoin_after, chan.rejoin_attempt);
                chan.retry_at = Some(tokio::time::Instant::now() + delay);
                chan.rejoin_attempt += 1;
            }
            _ => {}
        }
    }

    fn handle_reply(&mut self, r: &str, payload: &str) {
        let Some((pending, _)) = self.pending.remove(r) else {
            return;
        };
        let body: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
        let ok = body.get("status").and_then(Value::as_str) == Some("ok");
        let result = if ok {
            Ok(())
        } else {
            Err(ChannelError::Refused(reason(body.get("response"))))
        };
        match pending {
            Pending::Heartbeat => {
                if self.heartbeat_ref.as_deref() == Some(r) {
                    self.heartbeat_ref = None;
                }
            }
            Pending::Push { replies } => {
                replies
                    .into_iter()
                    .for_each(|t| drop(t.send(result.clone())));
            }
            Pending::Join { topic, join_ref } => {
                let Some(chan) = self.channels.get_mut(&topic) else {
                    return;
                };
                if chan.join_ref.as_deref() != Some(&join_ref) {
                    return;
                }
                if let Err(e) = result {
                    return self.join_failed(&topic, e);
                }
                chan.state = ChanState::Joined;
                chan.ever_joined = true;
                chan.rejoin_attempt = 0;
                chan.join_deadline = None;
                chan.join_waiters
                    .drain(..)
                    .for_each(|t| drop(t.send(Ok(()))));
                let _ = chan.shared.events.send(ChannelEvent::Subscribed);
                let waiters = std::mem::take(&mut chan.track_waiters);
                if let Some(meta) = chan.meta.clone() {
                    self.send_track(&topic, &meta, waiters);
                } else {
                    waiters.into_iter().for_each(|t| drop(t.send(Ok(()))));
                }
            }
        }
    }

    /// Removes a channel for good (server `phx_close`, or left).
    pub(super) fn close_channel(&mut self, topic: &str) {
        let Some(chan) = self.channels.shift_remove(topic) else {
            return;
        };
        chan.shared
            .presence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let _ = chan.shared.events.send(ChannelEvent::Closed);
        let gone = ChannelError::NotJoined(topic.to_owned());
        chan.join_waiters
            .into_iter()
            .for_each(|t| drop(t.send(Err(gone.clone()))));
        chan.track_waiters
            .into_iter()
            .for_each(|t| drop(t.send(Err(gone.clone()))));
        self.update_watchers(None);
    }
}

/// The `reason` of an error reply's response, or the whole response as text.
fn reason(response: Option<&Value>) -> String {
    match response {
        Some(Value::Object(o)) => match o.get("reason") {
            Some(Value::String(s)) => s.clone(),
            _ => Value::Object(o.clone()).to_string(),
        },
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

/// A user broadcast from a text frame's payload `{"type":"broadcast","event":E,"payload":P}`.
fn text_broadcast(payload: &str) -> Option<Broadcast> {
    let mut v: Value = serde_json::from_str(payload).ok()?;
    let event = v.get("event")?.as_str()?.to_owned();
    Some(Broadcast {
        event,
        payload: BroadcastBody::Json(v.get_mut("payload").map(Value::take).unwrap_or(Value::Null)),
        meta: v.get_mut("meta").map(Value::take),
    })
}

/// Decodes a server frame; binary frames must be kind 4.
fn decode<'a>(vsn: Vsn, text: Option<&'a str>, bin: Option<&'a [u8]>) -> Option<Inbound<'a>> {
    match (text, bin) {
        (Some(t), _) => rollcall_phoenix::decode_text(vsn, t).ok(),
        (_, Some(b)) => rollcall_phoenix::decode_server_binary(b).ok(),
        _ => None,
    }
}

/// A kind-4 user broadcast.
fn binary_broadcast(msg: &Inbound<'_>) -> Option<Broadcast> {
    let Payload::UserBroadcast {
        event,
        metadata,
        body,
    } = &msg.payload
    else {
        return None;
    };
    let payload = match body {
        UserBroadcastBody::Json(raw) => BroadcastBody::Json(serde_json::from_str(raw.get()).ok()?),
        UserBroadcastBody::Binary(b) => BroadcastBody::Binary(b.to_vec()),
    };
    Some(Broadcast {
        event: event.to_string(),
        payload,
        meta: metadata.and_then(|m| serde_json::from_str(m.get()).ok()),
    })
}
