//! The harness operations: join, leave, track, untrack, heartbeat, broadcast, garbage, tick.

use std::collections::HashMap;

use rollcall_core::{LeaveReason, Millis, Outputs};
use rollcall_phoenix::{decode_binary, decode_text, event};
use serde_json::Value;

use super::*;

impl Harness {
    pub(super) fn join(&mut self, slot: u8, input: &mut Input<'_>) {
        let topic = topic(input);
        let key_choice = input.below(7);
        let enabled = input.flag();
        let ack = input.flag();
        let bself = input.flag();
        // Rare refusals: private (auth is off, so refused), postgres_changes, replay.
        let refusal = input.below(16);
        let mut presence = serde_json::json!({"enabled": enabled});
        let key = match key_choice {
            0 => ModelKey::Generated,
            1 => {
                presence["key"] = Value::from("");
                ModelKey::Generated
            }
            6 => {
                presence["key"] = Value::from(42);
                ModelKey::Given("42".into())
            }
            k => {
                let k = KEYS[usize::from(k - 2)];
                presence["key"] = Value::from(k);
                ModelKey::Given(k.into())
            }
        };
        let mut config = serde_json::json!({
            "broadcast": {"ack": ack, "self": bself},
            "presence": presence,
            "postgres_changes": [],
            "private": refusal == 1,
        });
        if refusal == 2 {
            config["postgres_changes"] = serde_json::json!([{"event": "*", "schema": "public"}]);
        }
        if refusal == 3 {
            config["broadcast"]["replay"] = serde_json::json!({"since": 0});
        }
        let payload = serde_json::json!({"config": config, "access_token": "sb_publishable"});

        let Some(s) = self.sockets.get_mut(&slot) else {
            return;
        };
        let expect = if !valid_topic(&topic) || (1..=3).contains(&refusal) {
            Expect::Error
        } else {
            // A second join replaces the channel (its presence leaves) before the limit check.
            s.channels.remove(&topic);
            if s.channels.len() >= MAX_CHANNELS {
                Expect::Error
            } else {
                let ch = ModelChannel {
                    key,
                    ack,
                    meta: None,
                };
                s.channels.insert(topic.clone(), ch);
                Expect::Ok
            }
        };
        self.send(slot, &topic, event::PHX_JOIN, &payload, expect);
    }

    pub(super) fn leave(&mut self, slot: u8, topic: &str) {
        if let Some(s) = self.sockets.get_mut(&slot) {
            s.channels.remove(topic);
        }
        let payload = serde_json::json!({});
        self.send(slot, topic, event::PHX_LEAVE, &payload, Expect::Ok);
    }

    pub(super) fn track(&mut self, slot: u8, input: &mut Input<'_>) {
        let topic = topic(input);
        let (meta_text, meta) = meta(input);
        let payload_text =
            format!(r#"{{"type":"presence","event":"track","payload":{meta_text}}}"#);
        let payload: Value = serde_json::from_str(&payload_text).expect("grammar writes json");
        let expect = self.predict_track(slot, &topic, meta_text.len(), meta);
        self.send(slot, &topic, event::PRESENCE, &payload, expect);
    }

    /// What a track does, applied to the model.
    pub(super) fn predict_track(
        &mut self,
        slot: u8,
        topic: &str,
        len: usize,
        meta: Option<Value>,
    ) -> Expect {
        let counts = self.key_counts(topic);
        let Some(s) = self.sockets.get_mut(&slot) else {
            return Expect::Nothing;
        };
        let Some(ch) = s.channels.get_mut(topic) else {
            return Expect::Error;
        };
        if len > MAX_META {
            s.channels.remove(topic);
            return Expect::Ended;
        }
        let Some(meta) = meta else {
            return Expect::Error;
        };
        if ch.meta.is_none() {
            let held = match &ch.key {
                ModelKey::Given(k) => counts.get(k.as_str()).copied(),
                ModelKey::Generated => None,
            };
            match held {
                None if counts.len() >= MAX_KEYS => return Expect::Error,
                Some(n) if n >= MAX_PER_KEY => return Expect::Error,
                _ => {}
            }
        }
        ch.meta = Some(meta);
        Expect::Ok
    }

    /// Presences per key in `topic`, by the model; generated keys are counted as distinct.
    pub(super) fn key_counts(&self, topic: &str) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        let mut generated = 0;
        for ch in self.sockets.values().filter_map(|s| s.channels.get(topic)) {
            match (&ch.key, &ch.meta) {
                (_, None) => {}
                (ModelKey::Given(k), Some(_)) => *counts.entry(k.clone()).or_insert(0) += 1,
                (ModelKey::Generated, Some(_)) => {
                    generated += 1;
                    counts.insert(format!("generated {generated}"), 1);
                }
            }
        }
        counts
    }

    pub(super) fn untrack(&mut self, slot: u8, topic: &str) {
        let expect = match self
            .sockets
            .get_mut(&slot)
            .map(|s| s.channels.get_mut(topic))
        {
            None => return,
            Some(None) => Expect::Error,
            Some(Some(ch)) => {
                ch.meta = None;
                Expect::Ok
            }
        };
        let payload = serde_json::json!({"type": "presence", "event": "untrack"});
        self.send(slot, topic, event::PRESENCE, &payload, expect);
    }

    pub(super) fn heartbeat(&mut self, slot: u8) {
        self.send(
            slot,
            event::PHOENIX_TOPIC,
            event::HEARTBEAT,
            &serde_json::json!({}),
            Expect::Ok,
        );
    }

    pub(super) fn broadcast(&mut self, slot: u8, input: &mut Input<'_>) {
        let topic = topic(input);
        let binary = input.flag();
        let n = input.byte();
        let Some(s) = self.sockets.get_mut(&slot) else {
            return;
        };
        let expect = match s.channels.get(&topic) {
            None => Expect::Error,
            Some(ch) if ch.ack => Expect::Ok,
            Some(_) => Expect::Nothing,
        };
        if binary {
            // Kind 3, as realtime-js sends `channel.send({type:'broadcast', ..})`.
            let (join_ref, msg_ref) = self.refs();
            let body = format!(r#"{{"n":{n}}}"#);
            let mut frame = vec![3, join_ref.len() as u8, msg_ref.len() as u8];
            frame.extend([topic.len().min(255) as u8, 4, 0, 1]);
            for part in [&join_ref, &msg_ref, &topic] {
                frame.extend_from_slice(part.as_bytes());
            }
            frame.extend_from_slice(b"move");
            frame.extend_from_slice(body.as_bytes());
            if topic.len() > 255 {
                return;
            }
            if let Some(s) = self.sockets.get_mut(&slot) {
                s.session.handle_binary(self.hub.now(), &frame);
            }
            return self.after(slot, Some(&msg_ref), expect);
        }
        let payload =
            serde_json::json!({"type": "broadcast", "event": "move", "payload": {"n": n}});
        self.send(slot, &topic, event::BROADCAST, &payload, expect);
    }

    /// Arbitrary text or binary; skipped when it happens to decode to a frame that changes
    /// presence state (joins, leaves and presence events go through the grammar).
    pub(super) fn garbage(&mut self, slot: u8, input: &mut Input<'_>) {
        let binary = input.flag();
        let bytes = input.bytes(255);
        let Some(s) = self.sockets.get_mut(&slot) else {
            return;
        };
        let stateful = |e: &str| [event::PHX_JOIN, event::PHX_LEAVE, event::PRESENCE].contains(&e);
        if binary {
            if decode_binary(bytes).is_ok_and(|m| stateful(&m.event)) {
                return;
            }
            s.session.handle_binary(self.hub.now(), bytes);
        } else {
            let text = String::from_utf8_lossy(bytes);
            if decode_text(s.vsn, &text).is_ok_and(|m| stateful(&m.event)) {
                return;
            }
            s.session.handle_text(self.hub.now(), &text);
        }
        self.drain_all();
    }

    /// Lets time pass and ticks the engine. A long step expires every connection (they were
    /// all heard from at most "now" ago); a short one stays under the expiry timeout.
    pub(super) fn tick(&mut self, input: &mut Input<'_>) {
        let cfg = &self.hub.cfg.core;
        let expire = input.below(8) == 0;
        let step = if expire {
            cfg.expiry_timeout().0 + 2 * cfg.timer_granularity.0 + 1_000
        } else {
            u64::from(input.byte()) * 100
        };
        let mut out = Outputs::default();
        self.hub
            .engine
            .tick(Millis(self.hub.now().0 + step), &mut out);
        let mut expired = out.expired.clone();
        self.hub.handle_events(&mut out);
        expired.sort_unstable_by_key(|c| c.0);
        let mut open: Vec<ConnId> = self.sockets.values().map(|s| s.conn).collect();
        open.sort_unstable_by_key(|c| c.0);
        if expire {
            assert_eq!(expired, open, "a long silence expires every connection");
        } else {
            assert!(
                expired.is_empty(),
                "expired before the timeout: {expired:?}"
            );
        }
        // The socket task closes an expired connection's session.
        let slots: Vec<u8> = self
            .sockets
            .iter()
            .filter(|(_, s)| expired.contains(&s.conn))
            .map(|(k, _)| *k)
            .collect();
        for slot in slots {
            if let Some(mut s) = self.sockets.remove(&slot) {
                s.session.close(self.hub.now(), LeaveReason::Timeout);
                s.ctl.close();
                self.hub.conns.remove(&s.conn);
            }
        }
        self.drain_all();
    }
}

/// A topic from the grammar: mostly joinable, sometimes one the server refuses.
pub(super) fn topic(input: &mut Input<'_>) -> String {
    match input.below(8) {
        5 => "realtime:".into(),
        6 => "room1".into(),
        7 => format!("realtime:{}", "x".repeat(300)),
        i => TOPICS[usize::from(i % 3)].into(),
    }
}

pub(super) fn valid_topic(topic: &str) -> bool {
    topic.len() <= 255
        && topic
            .strip_prefix("realtime:")
            .is_some_and(|s| !s.is_empty())
}

/// A track payload: its JSON text (compact, keys sorted, as the engine normalises it) and its
/// value when it is an object.
pub(super) fn meta(input: &mut Input<'_>) -> (String, Option<Value>) {
    let text = match input.below(5) {
        0 => "{}".to_string(),
        1 | 2 => {
            let n = input.byte();
            let s: String = input
                .bytes(12)
                .iter()
                .map(|b| ['a', 'b', '"', '\\', 'é', ' ', '\u{1}', '0'][usize::from(b % 8)])
                .collect();
            let s = serde_json::to_string(&s).expect("a string serializes");
            format!(r#"{{"n":{n},"s":{s}}}"#)
        }
        3 => format!(r#"{{"pad":"{}"}}"#, "x".repeat(usize::from(input.byte()))),
        _ => ["[1]", r#""str""#, "7", "null"][usize::from(input.below(4))].to_string(),
    };
    let value: Value = serde_json::from_str(&text).expect("grammar writes json");
    let object = value.is_object().then_some(value);
    (text, object)
}
