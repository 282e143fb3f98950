//! Memory bounds of the engine: over-long keys are refused before anything is stored, and the
//! offline keys remembered for `last_seen` are capped by `max_offline_keys`.
//!
//! Found by measurement: 100 keys of 500 KB took a server from 7.5 MB to 63 MB, and unique-key
//! churn kept every offline key for an hour (~640 B each) with no count cap.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use rollcall_core::{
    Config, ConnId, Engine, Key, Meta, Millis, Outputs, QueryError, Topic, TrackError, WatchId,
};

fn engine(cfg: Config) -> Engine {
    Engine::new(Config {
        timer_granularity: Millis(1),
        offline_grace: Millis::ZERO,
        idle_after: None,
        ..cfg
    })
    .unwrap()
}

#[test]
fn a_key_over_max_key_bytes_is_refused_and_nothing_changes() {
    let e = engine(Config {
        max_key_bytes: 8,
        ..Config::default()
    });
    let mut out = Outputs::default();
    e.connect(ConnId(1), Millis(0)).unwrap();
    let t = Topic::new("realtime:room");
    let long = Key::new("123456789");
    assert_eq!(
        e.track(ConnId(1), &t, &long, Meta::empty(), Millis(1), &mut out),
        Err(TrackError::KeyTooLong { len: 9, max: 8 })
    );
    assert!(out.is_empty());
    assert_eq!(e.stats().presences, 0);
    assert_eq!(e.key_count("realtime:room"), 0);
    let ok = Key::new("12345678");
    e.track(ConnId(1), &t, &ok, Meta::empty(), Millis(1), &mut out)
        .unwrap();
    assert_eq!(e.stats().presences, 1);
}

#[test]
fn status_and_watch_queries_with_an_over_long_key_are_refused() {
    let e = engine(Config::default());
    let keys = vec![Key::new("fine"), Key::from("x".repeat(256))];
    let want = QueryError::KeyTooLong { len: 256, max: 255 };
    assert_eq!(e.statuses(&keys, Millis(0)), Err(want.clone()));
    assert_eq!(e.watch(keys, Millis(0)), Err(want));
    // nothing was registered: the first watch id is still free
    let (id, _) = e.watch(vec![Key::new("fine")], Millis(0)).unwrap();
    assert!(e.unwatch(id));
}

#[test]
fn unique_key_churn_is_bounded_by_max_offline_keys() {
    let e = engine(Config {
        max_offline_keys: 100,
        shards: 4,
        ..Config::default()
    });
    let t = Topic::new("realtime:lobby");
    let mut out = Outputs::default();
    for i in 0..2_000u64 {
        let now = Millis(i + 1);
        e.connect(ConnId(i), now).unwrap();
        let key = Key::from(format!("guest-{i}"));
        e.track(ConnId(i), &t, &key, Meta::empty(), now, &mut out)
            .unwrap();
        e.close(ConnId(i), now, &mut out);
        out.clear();
    }
    let s = e.stats();
    // per shard ⌈100 / 4⌉ = 25
    assert!(s.offline_keys_remembered <= 100, "{s:?}");
    assert!(s.offline_keys_remembered >= 90, "{s:?}");
    assert_eq!(
        s.offline_keys_evicted_total,
        2_000 - s.offline_keys_remembered as u64
    );
    let newest = e
        .statuses(&[Key::new("guest-1999")], Millis(3_000))
        .unwrap();
    assert_eq!(newest[0].last_seen, Some(Millis(2_000)));
    let oldest = e.statuses(&[Key::new("guest-0")], Millis(3_000)).unwrap();
    assert_eq!(oldest[0].last_seen, None);
}

#[derive(Debug, Clone)]
enum Op {
    Login(usize),
    Logout(usize),
    Watch(usize),
    Unwatch(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..KEYS).prop_map(Op::Login),
        3 => (0..KEYS).prop_map(Op::Logout),
        1 => (0..KEYS).prop_map(Op::Watch),
        1 => (0..KEYS).prop_map(Op::Unwatch),
    ]
}

const KEYS: usize = 8;
const CAP: usize = 3;

/// The reference: remembered offline keys by last_seen; over the cap, the oldest unwatched
/// one goes.
#[derive(Default)]
struct Model {
    online: HashMap<usize, u64>,
    remembered: BTreeMap<u64, usize>,
    watches: HashMap<usize, Vec<WatchId>>,
    evicted: u64,
}

impl Model {
    fn watched(&self, k: usize) -> bool {
        self.watches.get(&k).is_some_and(|w| !w.is_empty())
    }

    fn evict(&mut self) {
        while self.remembered.len() > CAP {
            let oldest = self
                .remembered
                .iter()
                .find(|(_, k)| !self.watched(**k))
                .map(|(at, _)| *at);
            let Some(at) = oldest else { return };
            self.remembered.remove(&at);
            self.evicted += 1;
        }
    }

    fn last_seen(&self, k: usize, now: u64) -> Option<u64> {
        if self.online.contains_key(&k) {
            return Some(now);
        }
        self.remembered
            .iter()
            .find(|(_, key)| **key == k)
            .map(|(at, _)| *at)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn remembered_offline_keys_are_the_newest_within_the_cap(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        let e = engine(Config {
            max_offline_keys: CAP,
            shards: 1,
            forget_offline_after: Millis::from_secs(3600),
            ..Config::default()
        });
        let t = Topic::new("t");
        let names: Vec<Key> = (0..KEYS).map(|k| Key::from(format!("k{k}"))).collect();
        let mut model = Model::default();
        let mut out = Outputs::default();
        for (step, op) in ops.into_iter().enumerate() {
            let now = step as u64 + 1;
            match op {
                Op::Login(k) => {
                    if let std::collections::hash_map::Entry::Vacant(v) = model.online.entry(k) {
                        v.insert(now);
                        e.connect(ConnId(k as u64), Millis(now)).unwrap();
                        e.track(ConnId(k as u64), &t, &names[k], Meta::empty(), Millis(now), &mut out).unwrap();
                        model.remembered.retain(|_, key| *key != k);
                    }
                }
                Op::Logout(k) => {
                    if model.online.remove(&k).is_some() {
                        prop_assert!(e.close(ConnId(k as u64), Millis(now), &mut out));
                        model.remembered.insert(now, k);
                        model.evict();
                    }
                }
                Op::Watch(k) => {
                    let (id, _) = e.watch(vec![names[k].clone()], Millis(now)).unwrap();
                    model.watches.entry(k).or_default().push(id);
                }
                Op::Unwatch(k) => {
                    if let Some(id) = model.watches.get_mut(&k).and_then(Vec::pop) {
                        prop_assert!(e.unwatch(id));
                        model.evict();
                    }
                }
            }
            out.clear();
            let statuses = e.statuses(&names, Millis(now)).unwrap();
            for (k, s) in statuses.iter().enumerate() {
                prop_assert_eq!(s.last_seen.map(|m| m.0), model.last_seen(k, now), "key {} at {}", k, now);
            }
            let stats = e.stats();
            prop_assert_eq!(stats.offline_keys_remembered, model.remembered.len());
            prop_assert_eq!(stats.offline_keys_evicted_total, model.evicted);
        }
    }
}
