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
//! metas) so the inputs reach them; the rate limits are left to the session's unit tests and tests/sim.rs,
//! which drive it on a manual clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rollcall_core::{ConnId, LeaveReason, Millis};
use rollcall_phoenix::{Vsn, event};
use serde_json::Value;

use crate::config::ServerConfig;
use crate::hub::Hub;
pub use crate::outbox::{ConnCtl, Outbox};
pub use crate::session::Session;

mod checks;
mod ops;

use checks::{Frame, check_frame};
use ops::topic;

const SOCKETS: u8 = 4;
const MAX_OPS: usize = 200;
const MAX_CHANNELS: usize = 2;
const MAX_KEYS: usize = 3;
const MAX_PER_KEY: usize = 2;
const MAX_META: usize = 200;
/// Topics that can hold presences; the grammar also sends invalid ones.
const TOPICS: [&str; 3] = ["realtime:room0", "realtime:room1", "realtime:room2"];
const KEYS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// Registers `conn`'s control block with the hub's open connections, as the socket task
/// does when a socket opens (the timer task kills expired connections through it).
pub fn register(hub: &Hub, conn: ConnId, ctl: Arc<ConnCtl>) {
    hub.conns.insert(conn, ctl);
}

/// Removes `conn` from the hub's open connections, as the socket task does when it ends.
pub fn unregister(hub: &Hub, conn: ConnId) {
    hub.conns.remove(&conn);
}

/// A fresh connection id from the hub.
pub fn next_conn_id(hub: &Hub) -> ConnId {
    hub.next_conn_id()
}

/// Routes the outputs of an engine call (status events, watch events, expiries) as the
/// timer task does.
pub fn handle_events(hub: &Hub, out: &mut rollcall_core::Outputs) {
    hub.handle_events(out);
}

/// Whether any channel is still subscribed to any topic.
pub fn has_subscribers(hub: &Hub) -> bool {
    !hub.registry.is_empty()
}

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
}
