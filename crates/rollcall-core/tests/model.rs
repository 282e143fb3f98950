//! Property tests of the heartbeat and status semantics against a small reference model.
//!
//! Random sequences of connect / track / untrack / heartbeat / activity / close / advance run
//! on the engine and on a ~150-line model; after every step the test asserts that
//! * expiry happens exactly when the model says (`last + interval × missed`, at the first
//!   tick at or after it: never earlier, never more than one tick later), so a connection that
//!   heartbeats at least every interval is never expired;
//! * the Login/Logout events equal the model's (one Login per offline→online, one Logout per
//!   online→offline after `offline_grace`, never two in a row);
//! * `list(topic)` equals the model's table;
//! * applying every emitted diff to an empty replica reproduces `list(topic)` (at every step
//!   when diffs are immediate, after the final flush when they are batched).

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use rollcall_core::{
    Config, ConnId, Engine, Key, LeaveReason, Meta, Millis, Outputs, Status, StatusEvent, Topic,
    TrackError,
};

const INTERVAL: u64 = 10;
const MISSED: u32 = 3;
const TIMEOUT: u64 = INTERVAL * MISSED as u64;
const TOPICS: [&str; 2] = ["realtime:a", "realtime:b"];
const KEYS: [&str; 3] = ["k0", "k1", "k2"];

#[derive(Debug, Clone)]
enum Op {
    Connect(u64),
    Track(u64, usize, usize, u8),
    Untrack(u64, usize, usize),
    Heartbeat(u64),
    Activity(usize),
    Close(u64),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..4u64).prop_map(Op::Connect),
        4 => (0..4u64, 0..2usize, 0..3usize, 0..3u8).prop_map(|(c, t, k, m)| Op::Track(c, t, k, m)),
        1 => (0..4u64, 0..2usize, 0..3usize).prop_map(|(c, t, k)| Op::Untrack(c, t, k)),
        3 => (0..4u64).prop_map(Op::Heartbeat),
        1 => (0..3usize).prop_map(Op::Activity),
        1 => (0..4u64).prop_map(Op::Close),
        4 => (1..25u64).prop_map(Op::Advance),
    ]
}

/// The reference model: plain maps, no shards, no timers.
#[derive(Default)]
struct Model {
    conns: HashMap<u64, u64>,                   // conn -> last beat
    table: BTreeMap<(usize, usize, u64), u8>,   // (topic, key, conn) -> meta id
    online: HashMap<usize, bool>,               // key -> logged in
    pending_logout: HashMap<usize, (u64, u64)>, // key -> (deadline, at)
    events: Vec<(usize, bool, u64)>,            // (key, login?, at)
}

impl Model {
    fn live(&self, key: usize) -> bool {
        self.table.keys().any(|(_, k, _)| *k == key)
    }

    fn added(&mut self, key: usize, now: u64) {
        self.pending_logout.remove(&key);
        if !self.online.get(&key).copied().unwrap_or(false) {
            self.online.insert(key, true);
            self.events.push((key, true, now));
        }
    }

    fn removed(&mut self, key: usize, at: u64, now: u64, grace: u64) {
        if self.live(key) {
            return;
        }
        if grace == 0 {
            self.online.insert(key, false);
            self.events.push((key, false, at));
        } else {
            self.pending_logout.insert(key, (now + grace, at));
        }
    }

    fn drop_conn(&mut self, conn: u64, at: u64, now: u64, grace: u64) {
        let gone: Vec<_> = self
            .table
            .keys()
            .filter(|(_, _, c)| *c == conn)
            .copied()
            .collect();
        for entry in gone {
            self.table.remove(&entry);
            self.removed(entry.1, at, now, grace);
        }
    }

    fn tick(&mut self, now: u64, grace: u64) -> Vec<u64> {
        let mut expired: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, last)| **last + TIMEOUT <= now)
            .map(|(c, _)| *c)
            .collect();
        expired.sort();
        for c in &expired {
            let last = self.conns.remove(c).unwrap();
            self.drop_conn(*c, last, now, grace);
        }
        let mut due: Vec<_> = self
            .pending_logout
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(k, (_, at))| (*k, *at))
            .collect();
        due.sort();
        for (k, at) in due {
            self.pending_logout.remove(&k);
            self.online.insert(k, false);
            self.events.push((k, false, at));
        }
        expired
    }

    fn list(&self, topic: usize) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .table
            .iter()
            .filter(|((t, _, _), _)| *t == topic)
            .map(|((_, k, _), m)| (KEYS[*k].to_string(), meta(*m).as_json().to_string()))
            .collect();
        v.sort();
        v
    }
}

fn meta(m: u8) -> Meta {
    Meta::parse(&format!(r#"{{"m":{m}}}"#)).unwrap()
}

fn engine_list(engine: &Engine, topic: usize) -> Vec<(String, String)> {
    let mut v: Vec<_> = engine
        .list(TOPICS[topic])
        .into_iter()
        .flat_map(|(k, ps)| {
            ps.into_iter()
                .map(move |p| (k.to_string(), p.meta.as_json().to_string()))
        })
        .collect();
    v.sort();
    v
}

type Replica = HashMap<String, BTreeMap<u64, (String, String)>>;

fn apply(replica: &mut Replica, out: &Outputs) -> Result<(), TestCaseError> {
    for td in &out.diffs {
        let topic = replica.entry(td.topic.to_string()).or_default();
        for j in &td.diff.joins {
            let prev = topic.insert(
                j.presence.presence_ref.raw(),
                (j.key.to_string(), j.presence.meta.as_json().to_string()),
            );
            prop_assert!(prev.is_none(), "a ref joined twice");
        }
        for l in &td.diff.leaves {
            let gone = topic.remove(&l.presence.presence_ref.raw());
            prop_assert!(gone.is_some(), "a leave for a ref the replica never saw");
        }
    }
    Ok(())
}

fn replica_list(replica: &Replica, topic: usize) -> Vec<(String, String)> {
    let mut v: Vec<_> = replica
        .get(TOPICS[topic])
        .map(|t| t.values().cloned().collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn run(ops: Vec<Op>, grace: u64, window: u64, idle: Option<u64>) -> Result<(), TestCaseError> {
    let engine = Engine::new(Config {
        heartbeat_interval: Millis(INTERVAL),
        missed_heartbeats: MISSED,
        offline_grace: Millis(grace),
        diff_batch_window: Millis(window),
        idle_after: idle.map(Millis),
        timer_granularity: Millis(1),
        shards: 4,
        ..Config::default()
    })
    .unwrap();
    let mut model = Model::default();
    let mut replica = Replica::new();
    let mut out = Outputs::default();
    let mut now = 0u64;
    let mut logged_in: HashMap<String, bool> = HashMap::new();
    let mut idle_state: HashMap<String, Status> = HashMap::new();

    for op in ops {
        out.clear();
        let t = Millis(now);
        match op {
            Op::Connect(c) => {
                let r = engine.connect(ConnId(c), t);
                prop_assert_eq!(r.is_ok(), !model.conns.contains_key(&c));
                model.conns.entry(c).or_insert(now);
            }
            Op::Track(c, ti, ki, m) => {
                let r = engine.track(
                    ConnId(c),
                    &Topic::new(TOPICS[ti]),
                    &Key::new(KEYS[ki]),
                    meta(m),
                    t,
                    &mut out,
                );
                if let Some(last) = model.conns.get_mut(&c) {
                    prop_assert!(r.is_ok(), "{:?}", r);
                    *last = now;
                    let fresh = model.table.insert((ti, ki, c), m).is_none();
                    if fresh {
                        model.added(ki, now);
                    }
                } else {
                    prop_assert_eq!(r, Err(TrackError::UnknownConnection(ConnId(c))));
                }
            }
            Op::Untrack(c, ti, ki) => {
                let r = engine.untrack(
                    ConnId(c),
                    &Topic::new(TOPICS[ti]),
                    &Key::new(KEYS[ki]),
                    t,
                    &mut out,
                );
                if let Some(last) = model.conns.get_mut(&c) {
                    *last = now;
                    let existed = model.table.remove(&(ti, ki, c)).is_some();
                    prop_assert_eq!(r, Ok(existed));
                    if existed {
                        model.removed(ki, now, now, grace);
                    }
                } else {
                    prop_assert!(r.is_err());
                }
            }
            Op::Heartbeat(c) => {
                let known = engine.heartbeat(ConnId(c), t);
                prop_assert_eq!(known, model.conns.contains_key(&c));
                if let Some(last) = model.conns.get_mut(&c) {
                    *last = now;
                }
            }
            Op::Activity(ki) => engine.activity(&Key::new(KEYS[ki]), t, &mut out),
            Op::Close(c) => {
                let known = engine.close(ConnId(c), t, &mut out);
                prop_assert_eq!(known, model.conns.remove(&c).is_some());
                model.drop_conn(c, now, now, grace);
            }
            Op::Advance(dt) => {
                // tick at every millisecond: expiry must happen at exactly the model's time
                for _ in 0..dt {
                    now += 1;
                    engine.tick(Millis(now), &mut out);
                    let mut expired: Vec<u64> = out.expired.drain(..).map(|c| c.0).collect();
                    expired.sort();
                    let want = model.tick(now, grace);
                    prop_assert_eq!(expired, want, "expiry at {}", now);
                }
            }
        }
        // Login/Logout equal the model's, and alternate per key.
        let mut got: Vec<(String, bool, u64)> = out
            .events
            .iter()
            .filter_map(|e| match e {
                StatusEvent::Login { key, at } => Some((key.to_string(), true, at.0)),
                StatusEvent::Logout { key, at, reason } => {
                    assert_ne!(*reason, LeaveReason::Shutdown);
                    Some((key.to_string(), false, at.0))
                }
                _ => None,
            })
            .collect();
        let mut want: Vec<(String, bool, u64)> = model
            .events
            .drain(..)
            .map(|(k, l, at)| (KEYS[k].to_string(), l, at))
            .collect();
        // order is guaranteed per key, not across keys: stable-sort by key
        got.sort_by(|a, b| a.0.cmp(&b.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        prop_assert_eq!(&got, &want);
        for (k, login, _) in &got {
            let was = logged_in.insert(k.clone(), *login).unwrap_or(false);
            prop_assert_ne!(was, *login, "two {} in a row for {}", login, k);
        }
        // Idle/Active only between Login and Logout, alternating.
        for e in &out.events {
            let k = e.key().to_string();
            let prev = idle_state.get(&k).copied().unwrap_or(Status::Offline);
            let next = match e {
                StatusEvent::Login { .. } => {
                    prop_assert_eq!(prev, Status::Offline);
                    Status::Online
                }
                StatusEvent::Logout { .. } => {
                    prop_assert_ne!(prev, Status::Offline);
                    Status::Offline
                }
                StatusEvent::Idle { .. } => {
                    prop_assert_eq!(prev, Status::Online);
                    Status::Idle
                }
                StatusEvent::Active { .. } => {
                    prop_assert_eq!(prev, Status::Idle);
                    Status::Online
                }
            };
            idle_state.insert(k, next);
        }
        // Table equals the model; a key with presences is never offline.
        for ti in 0..TOPICS.len() {
            prop_assert_eq!(engine_list(&engine, ti), model.list(ti));
        }
        let keys: Vec<Key> = KEYS.iter().map(|k| Key::new(k)).collect();
        for (i, s) in engine
            .statuses(&keys, Millis(now))
            .unwrap()
            .iter()
            .enumerate()
        {
            if model.live(i) {
                prop_assert_ne!(s.status, Status::Offline);
            }
            let logged = model.online.get(&i).copied().unwrap_or(false);
            prop_assert_eq!(s.status != Status::Offline, logged);
        }
        apply(&mut replica, &out)?;
        if window == 0 {
            for ti in 0..TOPICS.len() {
                prop_assert_eq!(replica_list(&replica, ti), model.list(ti));
            }
        }
    }
    out.clear();
    engine.flush(&mut out);
    apply(&mut replica, &out)?;
    for ti in 0..TOPICS.len() {
        prop_assert_eq!(replica_list(&replica, ti), model.list(ti));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn immediate_diffs_no_grace(ops in prop::collection::vec(op(), 1..60)) {
        run(ops, 0, 0, None)?;
    }

    #[test]
    fn immediate_diffs_with_grace_and_idle(ops in prop::collection::vec(op(), 1..60)) {
        run(ops, 15, 0, Some(20))?;
    }

    #[test]
    fn batched_diffs_with_grace(ops in prop::collection::vec(op(), 1..60)) {
        run(ops, 15, 7, Some(40))?;
    }
}
