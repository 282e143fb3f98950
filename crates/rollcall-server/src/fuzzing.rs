//! The `session` fuzz target: sockets driven through [`Session`] by an arbitrary sequence of
//! operations, checked against a small reference model.
//!
//! The input bytes are read as operations (open socket k, send a frame built from a small
//! grammar of realistic frames with fuzzed fields, send garbage, close socket k, let time pass
//! and tick the engine). After every operation:
//! * every frame any socket was sent is valid JSON of its serializer's shape (a v1 object, a
//!   v2 5-array, or a v2 kind-4 binary frame), and a `phx_reply` has status `ok` or `error`;
//! * the sender got exactly the reply the model predicts (none, `ok` or `error`), echoing its ref;
//! * the engine's presence state of every topic equals the model's: the set of
//!   (socket, topic, key, meta) tracked and not since untracked, left, replaced or closed.
//!
//! At the end every socket closes and nothing may remain: no presence, no subscription, no
//! channel count. A broken invariant panics, which is what the fuzzer looks for.
//!
//! The limits are small (2 channels per socket, 3 keys per topic, 2 presences per key, 200-byte
//! metas) so the inputs reach them; the rate limits are out of reach because the session reads
//! the wall clock, which would make the model's answer depend on timing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::Message;
use rollcall_core::{ConnId, LeaveReason, Millis, Outputs};
use rollcall_phoenix::{Vsn, decode_binary, decode_text, event};
use serde_json::Value;

use crate::config::ServerConfig;
use crate::hub::{ConnCtl, Hub, Outbox};
use crate::session::Session;

const SOCKETS: u8 = 4;
const MAX_OPS: usize = 200;
const MAX_CHANNELS: usize = 2;
const MAX_KEYS: usize = 3;
const MAX_PER_KEY: usize = 2;
const MAX_META: usize = 200;
/// Topics that can hold presences; the grammar also sends invalid ones.
const TOPICS: [&str; 3] = ["realtime:room0", "realtime:room1", "realtime:room2"];
const KEYS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// Runs one input.
///
/// # Panics
/// When an invariant above breaks.
pub fn session(data: &[u8]) {
    let mut h = Harness::new();
    let mut input = Input(data);
    for _ in 0..MAX_OPS {
        if input.0.is_empty() {
            break;
        }
        h.step(&mut input);
        h.check_presence();
    }
    h.close_all();
}

/// Reads the input like `arbitrary::Unstructured`: a byte at a time, zeros once exhausted.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn below(&mut self, n: u8) -> u8 {
        self.byte() % n
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn bytes(&mut self, max: usize) -> &[u8] {
        let len = (self.byte() as usize).min(max).min(self.0.len());
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        head
    }
}

/// The presence key a channel tracks under, as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ModelKey {
    Given(String),
    /// The server made up a UUID; the model only knows it is unique.
    Generated,
}

#[derive(Debug)]
struct ModelChannel {
    key: ModelKey,
    ack: bool,
    /// The tracked meta, if any.
    meta: Option<Value>,
}

struct Socket {
    session: Session,
    ctl: Arc<ConnCtl>,
    conn: ConnId,
    vsn: Vsn,
    channels: HashMap<String, ModelChannel>,
}

/// What the sender must get back for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Nothing,
    Ok,
    Error,
    /// A `system` error then `phx_close`, and no reply.
    Ended,
    /// Not predicted (garbage).
    Any,
}

struct Harness {
    hub: Arc<Hub>,
    sockets: BTreeMap<u8, Socket>,
    next_ref: u64,
}

impl Harness {
    fn new() -> Harness {
        let mut cfg = ServerConfig::default();
        cfg.core.shards = 4;
        cfg.core.max_keys_per_topic = MAX_KEYS;
        cfg.core.max_presences_per_key = MAX_PER_KEY;
        cfg.core.max_meta_bytes = MAX_META;
        cfg.core.diff_batch_window = Millis(100);
        cfg.max_channels_per_connection = MAX_CHANNELS;
        cfg.limits.max_joins_per_second = 1_000_000;
        cfg.limits.max_events_per_second = 1_000_000;
        cfg.limits.max_heartbeats_per_second = 1_000_000;
        cfg.limits.presence_calls = 1_000_000;
        let hub = Hub::new(cfg).expect("the fuzz config is valid");
        Harness {
            hub,
            sockets: BTreeMap::new(),
            next_ref: 0,
        }
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let slot = input.below(SOCKETS);
        match input.below(12) {
            0 | 1 => self.open(slot, if input.flag() { Vsn::V2 } else { Vsn::V1 }),
            2 => self.close(slot),
            3 => self.join(slot, input),
            4 => {
                let topic = topic(input);
                self.leave(slot, &topic);
            }
            5 => self.track(slot, input),
            6 => {
                let topic = topic(input);
                self.untrack(slot, &topic);
            }
            7 => self.heartbeat(slot),
            8 => self.broadcast(slot, input),
            9 => self.garbage(slot, input),
            _ => self.tick(input),
        }
    }

    fn open(&mut self, slot: u8, vsn: Vsn) {
        if self.sockets.contains_key(&slot) {
            return;
        }
        let hub = &self.hub;
        let conn = hub.next_conn_id();
        hub.engine
            .connect(conn, hub.now())
            .expect("a fresh connection id");
        let (outbox, ctl) = Outbox::new(1024, 1 << 20);
        hub.conns.insert(conn, ctl.clone());
        let session = Session::new(hub.clone(), conn, vsn, outbox, None, hub.now());
        let socket = Socket {
            session,
            ctl,
            conn,
            vsn,
            channels: HashMap::new(),
        };
        self.sockets.insert(slot, socket);
    }

    fn close(&mut self, slot: u8) {
        if let Some(mut s) = self.sockets.remove(&slot) {
            s.session.close(self.hub.now(), LeaveReason::Closed);
            s.ctl.close();
            self.hub.conns.remove(&s.conn);
        }
        self.drain_all();
    }

    fn close_all(&mut self) {
        let slots: Vec<u8> = self.sockets.keys().copied().collect();
        for slot in slots {
            self.close(slot);
        }
        for topic in TOPICS {
            assert!(
                self.hub.engine.list(topic).is_empty(),
                "{topic} kept presences"
            );
        }
        assert!(
            self.hub.registry.is_empty(),
            "subscriptions outlived sockets"
        );
        assert_eq!(self.hub.channels.load(Ordering::Relaxed), 0);
        assert!(self.hub.conns.is_empty());
    }

    fn refs(&mut self) -> (String, String) {
        self.next_ref += 1;
        (format!("j{}", self.next_ref), format!("r{}", self.next_ref))
    }

    /// Sends one text frame on `slot` and checks the reply against `expect`.
    fn send(&mut self, slot: u8, topic: &str, event: &str, payload: &Value, expect: Expect) {
        let (join_ref, msg_ref) = self.refs();
        let Some(s) = self.sockets.get_mut(&slot) else {
            return;
        };
        let frame = match s.vsn {
            Vsn::V2 => serde_json::json!([join_ref, msg_ref, topic, event, payload]),
            _ => serde_json::json!({"topic": topic, "event": event, "payload": payload,
                                    "ref": msg_ref, "join_ref": join_ref}),
        };
        s.session.handle_text(self.hub.now(), &frame.to_string());
        self.after(slot, Some(&msg_ref), expect);
    }

    /// Drains every outbox, checks each frame, and checks the sender's replies.
    fn after(&mut self, slot: u8, msg_ref: Option<&str>, expect: Expect) {
        let mut sender = Vec::new();
        for (k, s) in &self.sockets {
            while let Some(m) = s.ctl.try_recv() {
                let frame = check_frame(s.vsn, &m);
                if *k == slot {
                    sender.extend(frame);
                }
            }
        }
        let replies: Vec<&Frame> = sender.iter().filter(|f| f.event == "phx_reply").collect();
        let got = match (replies.as_slice(), expect) {
            (_, Expect::Any) => return,
            ([], _) => {
                let ended = sender.iter().any(|f| f.event == event::SYSTEM)
                    && sender.last().is_some_and(|f| f.event == event::PHX_CLOSE);
                if ended {
                    Expect::Ended
                } else {
                    Expect::Nothing
                }
            }
            ([r], _) => {
                assert_eq!(r.msg_ref.as_deref(), msg_ref, "a reply must echo the ref");
                if r.status.as_deref() == Some("ok") {
                    Expect::Ok
                } else {
                    Expect::Error
                }
            }
            (many, _) => panic!("{} replies to one frame: {sender:?}", many.len()),
        };
        assert_eq!(got, expect, "frames sent back: {sender:?}");
    }

    fn drain_all(&mut self) {
        self.after(u8::MAX, None, Expect::Any);
    }

    fn join(&mut self, slot: u8, input: &mut Input<'_>) {
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

    fn leave(&mut self, slot: u8, topic: &str) {
        if let Some(s) = self.sockets.get_mut(&slot) {
            s.channels.remove(topic);
        }
        let payload = serde_json::json!({});
        self.send(slot, topic, event::PHX_LEAVE, &payload, Expect::Ok);
    }

    fn track(&mut self, slot: u8, input: &mut Input<'_>) {
        let topic = topic(input);
        let (meta_text, meta) = meta(input);
        let payload_text =
            format!(r#"{{"type":"presence","event":"track","payload":{meta_text}}}"#);
        let payload: Value = serde_json::from_str(&payload_text).expect("grammar writes json");
        let expect = self.predict_track(slot, &topic, meta_text.len(), meta);
        self.send(slot, &topic, event::PRESENCE, &payload, expect);
    }

    /// What a track does, applied to the model.
    fn predict_track(&mut self, slot: u8, topic: &str, len: usize, meta: Option<Value>) -> Expect {
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
    fn key_counts(&self, topic: &str) -> HashMap<String, usize> {
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

    fn untrack(&mut self, slot: u8, topic: &str) {
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

    fn heartbeat(&mut self, slot: u8) {
        self.send(
            slot,
            event::PHOENIX_TOPIC,
            event::HEARTBEAT,
            &serde_json::json!({}),
            Expect::Ok,
        );
    }

    fn broadcast(&mut self, slot: u8, input: &mut Input<'_>) {
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
    fn garbage(&mut self, slot: u8, input: &mut Input<'_>) {
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
    fn tick(&mut self, input: &mut Input<'_>) {
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

    /// The engine's presences in each topic equal the model's.
    fn check_presence(&self) {
        for topic in TOPICS {
            let mut engine: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for (key, views) in self.hub.engine.list(topic) {
                let metas = views
                    .iter()
                    .map(|v| serde_json::from_str(v.meta.as_json()).expect("meta is json"))
                    .collect();
                assert!(
                    !views.is_empty(),
                    "{topic}: key {key:?} listed with no presence"
                );
                engine.insert(key.as_str().to_string(), metas);
            }
            let mut given: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            let mut generated: Vec<Value> = Vec::new();
            for ch in self.sockets.values().filter_map(|s| s.channels.get(topic)) {
                match (&ch.key, &ch.meta) {
                    (_, None) => {}
                    (ModelKey::Given(k), Some(m)) => {
                        given.entry(k.clone()).or_default().push(m.clone());
                    }
                    (ModelKey::Generated, Some(m)) => generated.push(m.clone()),
                }
            }
            let mut engine_generated = Vec::new();
            for (key, mut metas) in engine {
                match given.remove(&key) {
                    Some(mut want) => {
                        sort_values(&mut metas);
                        sort_values(&mut want);
                        assert_eq!(metas, want, "{topic}: metas of {key}");
                    }
                    None => {
                        assert!(is_uuid(&key), "{topic}: unexpected key {key:?}");
                        assert_eq!(metas.len(), 1, "{topic}: a generated key is one channel's");
                        engine_generated.extend(metas);
                    }
                }
            }
            assert!(given.is_empty(), "{topic}: missing presences {given:?}");
            sort_values(&mut engine_generated);
            sort_values(&mut generated);
            assert_eq!(
                engine_generated, generated,
                "{topic}: generated-key presences"
            );
        }
    }
}

/// One frame a socket was sent, reduced to what the checks need.
#[derive(Debug)]
struct Frame {
    event: String,
    msg_ref: Option<String>,
    status: Option<String>,
}

/// Checks one outbound message's shape for a socket speaking `vsn`.
fn check_frame(vsn: Vsn, m: &Message) -> Option<Frame> {
    let text = match m {
        Message::Text(t) => t.as_str(),
        Message::Binary(b) => {
            assert_eq!(vsn, Vsn::V2, "binary frame sent to a v1 socket");
            assert_eq!(b.first(), Some(&4), "servers send binary kind 4 only");
            rollcall_phoenix::decode_server_binary(b).expect("a kind-4 frame decodes");
            return None;
        }
        other => panic!("unexpected message {other:?}"),
    };
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let (join_ref, msg_ref, topic, event, payload) = match vsn {
        Vsn::V2 => {
            let a = v
                .as_array()
                .unwrap_or_else(|| panic!("v2 frame not an array: {text}"));
            assert_eq!(a.len(), 5, "v2 frame not a 5-array: {text}");
            (&a[0], &a[1], &a[2], &a[3], &a[4])
        }
        _ => {
            let o = v
                .as_object()
                .unwrap_or_else(|| panic!("v1 frame not an object: {text}"));
            let get = |k: &str| o.get(k).unwrap_or(&Value::Null);
            (
                get("join_ref"),
                get("ref"),
                get("topic"),
                get("event"),
                get("payload"),
            )
        }
    };
    for r in [join_ref, msg_ref] {
        assert!(
            r.is_null() || r.is_string(),
            "ref not a string or null: {text}"
        );
    }
    assert!(topic.is_string(), "topic not a string: {text}");
    let event = event
        .as_str()
        .unwrap_or_else(|| panic!("event not a string: {text}"));
    assert!(payload.is_object(), "payload not an object: {text}");
    let status = (event == event::PHX_REPLY).then(|| {
        let status = payload["status"].as_str().unwrap_or_default();
        assert!(status == "ok" || status == "error", "reply status: {text}");
        assert!(payload["response"].is_object(), "reply response: {text}");
        status.to_string()
    });
    Some(Frame {
        event: event.to_string(),
        msg_ref: msg_ref.as_str().map(String::from),
        status,
    })
}

/// A topic from the grammar: mostly joinable, sometimes one the server refuses.
fn topic(input: &mut Input<'_>) -> String {
    match input.below(8) {
        5 => "realtime:".into(),
        6 => "room1".into(),
        7 => format!("realtime:{}", "x".repeat(300)),
        i => TOPICS[usize::from(i % 3)].into(),
    }
}

fn valid_topic(topic: &str) -> bool {
    topic.len() <= 255
        && topic
            .strip_prefix("realtime:")
            .is_some_and(|s| !s.is_empty())
}

/// A track payload: its JSON text (compact, keys sorted, as the engine normalises it) and its
/// value when it is an object.
fn meta(input: &mut Input<'_>) -> (String, Option<Value>) {
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

fn sort_values(v: &mut [Value]) {
    v.sort_unstable_by_key(|m| m.to_string());
}

fn is_uuid(key: &str) -> bool {
    key.len() == 36 && key.bytes().filter(|b| *b == b'-').count() == 4
}
