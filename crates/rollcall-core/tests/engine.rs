//! Scenario tests of the engine's public API on a fake clock.

use rollcall_core::{
    Config, ConnId, Engine, Key, LeaveReason, Meta, Millis, Outputs, QueryError, Status,
    StatusEvent, Topic, TrackChange, TrackError,
};

fn engine(cfg: Config) -> Engine {
    Engine::new(Config {
        timer_granularity: Millis(1),
        ..cfg
    })
    .unwrap()
}

fn meta(s: &str) -> Meta {
    Meta::parse(s).unwrap()
}

#[test]
fn key_with_two_devices_stays_online_when_one_closes() {
    let e = engine(Config {
        offline_grace: Millis::ZERO,
        ..Config::default()
    });
    let (t, k) = (Topic::new("realtime:family"), Key::new("mum"));
    let mut out = Outputs::default();
    e.connect(ConnId(1), Millis(0)).unwrap();
    e.connect(ConnId(2), Millis(0)).unwrap();
    e.track(
        ConnId(1),
        &t,
        &k,
        meta(r#"{"d":"phone"}"#),
        Millis(1),
        &mut out,
    )
    .unwrap();
    e.track(
        ConnId(2),
        &t,
        &k,
        meta(r#"{"d":"laptop"}"#),
        Millis(2),
        &mut out,
    )
    .unwrap();
    assert_eq!(out.events.len(), 1, "one login for two devices");
    out.clear();
    assert!(e.close(ConnId(1), Millis(3), &mut out));
    assert!(out.events.is_empty(), "no logout while the laptop is on");
    assert_eq!(out.diffs[0].diff.leaves.len(), 1);
    let s = &e.statuses(std::slice::from_ref(&k), Millis(4)).unwrap()[0];
    assert_eq!((s.status, s.connections), (Status::Online, 1));
    assert_eq!(e.get("realtime:family", "mum").len(), 1);
    out.clear();
    e.close(ConnId(2), Millis(5), &mut out);
    assert_eq!(
        out.events,
        vec![StatusEvent::Logout {
            key: k.clone(),
            at: Millis(5),
            reason: LeaveReason::Closed
        }]
    );
    let s = &e.statuses(&[k], Millis(9)).unwrap()[0];
    assert_eq!((s.status, s.last_seen), (Status::Offline, Some(Millis(5))));
}

#[test]
fn reload_within_grace_emits_no_logout() {
    let e = engine(Config {
        offline_grace: Millis(1000),
        ..Config::default()
    });
    let (t, k) = (Topic::new("t"), Key::new("u"));
    let mut out = Outputs::default();
    e.connect(ConnId(1), Millis(0)).unwrap();
    e.track(ConnId(1), &t, &k, Meta::empty(), Millis(0), &mut out)
        .unwrap();
    e.close(ConnId(1), Millis(100), &mut out);
    e.connect(ConnId(2), Millis(300)).unwrap();
    e.track(ConnId(2), &t, &k, Meta::empty(), Millis(300), &mut out)
        .unwrap();
    e.tick(Millis(5000), &mut out);
    let logins = out
        .events
        .iter()
        .filter(|e| matches!(e, StatusEvent::Login { .. }))
        .count();
    let logouts = out
        .events
        .iter()
        .filter(|e| matches!(e, StatusEvent::Logout { .. }))
        .count();
    assert_eq!((logins, logouts), (1, 0));
}

#[test]
fn a_silent_connection_times_out_and_logs_out_at_its_last_heartbeat() {
    let e = engine(Config {
        heartbeat_interval: Millis(1000),
        missed_heartbeats: 3,
        offline_grace: Millis(500),
        ..Config::default()
    });
    let (t, k) = (Topic::new("t"), Key::new("u"));
    let mut out = Outputs::default();
    e.connect(ConnId(7), Millis(0)).unwrap();
    e.track(ConnId(7), &t, &k, Meta::empty(), Millis(0), &mut out)
        .unwrap();
    assert!(e.heartbeat(ConnId(7), Millis(1000)));
    out.clear();
    e.tick(Millis(3999), &mut out);
    assert!(out.expired.is_empty());
    e.tick(Millis(4000), &mut out);
    assert_eq!(out.expired, vec![ConnId(7)]);
    assert_eq!(out.diffs.len(), 1);
    assert!(out.events.is_empty(), "logout waits for the grace period");
    e.tick(Millis(4500), &mut out);
    assert_eq!(
        out.events,
        vec![StatusEvent::Logout {
            key: k,
            at: Millis(1000),
            reason: LeaveReason::Timeout
        }]
    );
    assert!(!e.heartbeat(ConnId(7), Millis(4600)));
}

#[test]
fn idle_after_inactivity_and_active_again_on_activity() {
    let e = engine(Config {
        idle_after: Some(Millis(100)),
        heartbeat_interval: Millis(10_000),
        ..Config::default()
    });
    let (t, k) = (Topic::new("t"), Key::new("u"));
    let mut out = Outputs::default();
    e.connect(ConnId(1), Millis(0)).unwrap();
    e.track(ConnId(1), &t, &k, Meta::empty(), Millis(0), &mut out)
        .unwrap();
    e.heartbeat(ConnId(1), Millis(90)); // heartbeats are not activity
    e.activity(&k, Millis(50), &mut out);
    out.clear();
    e.tick(Millis(149), &mut out);
    assert!(out.events.is_empty());
    e.tick(Millis(150), &mut out);
    assert_eq!(
        out.events,
        vec![StatusEvent::Idle {
            key: k.clone(),
            at: Millis(150)
        }]
    );
    out.clear();
    e.track(ConnId(1), &t, &k, meta(r#"{"x":1}"#), Millis(200), &mut out)
        .unwrap();
    assert_eq!(
        out.events,
        vec![StatusEvent::Active {
            key: k,
            at: Millis(200)
        }]
    );
}

#[test]
fn watch_sets_see_only_real_changes() {
    let e = engine(Config {
        offline_grace: Millis::ZERO,
        ..Config::default()
    });
    let (t, kid) = (Topic::new("t"), Key::new("child-1"));
    let mut out = Outputs::default();
    let (w, initial) = e
        .watch(vec![kid.clone(), Key::new("child-2")], Millis(0))
        .unwrap();
    assert!(
        initial
            .iter()
            .all(|s| s.status == Status::Offline && s.last_seen.is_none())
    );
    e.connect(ConnId(1), Millis(0)).unwrap();
    e.connect(ConnId(2), Millis(0)).unwrap();
    e.track(ConnId(1), &t, &kid, Meta::empty(), Millis(1), &mut out)
        .unwrap();
    e.track(ConnId(2), &t, &kid, Meta::empty(), Millis(2), &mut out)
        .unwrap();
    e.track(
        ConnId(2),
        &Topic::new("t2"),
        &kid,
        Meta::empty(),
        Millis(2),
        &mut out,
    )
    .unwrap();
    assert_eq!(out.watch.len(), 1, "online once, not per device or topic");
    assert_eq!(
        (out.watch[0].watch, out.watch[0].status),
        (w, Status::Online)
    );
    out.clear();
    e.close(ConnId(1), Millis(3), &mut out);
    assert!(out.watch.is_empty());
    e.close(ConnId(2), Millis(4), &mut out);
    assert_eq!(out.watch.len(), 1);
    assert_eq!(out.watch[0].status, Status::Offline);
    assert!(e.unwatch(w));
    assert!(!e.unwatch(w));
    out.clear();
    e.connect(ConnId(3), Millis(5)).unwrap();
    e.track(ConnId(3), &t, &kid, Meta::empty(), Millis(5), &mut out)
        .unwrap();
    assert!(out.watch.is_empty(), "an unwatched set hears nothing");
}

#[test]
fn batch_queries_are_bounded() {
    let e = engine(Config {
        max_batch_keys: 2,
        ..Config::default()
    });
    let keys: Vec<Key> = ["a", "b", "c"].iter().map(|k| Key::new(k)).collect();
    assert_eq!(
        e.statuses(&keys, Millis(0)),
        Err(QueryError::TooManyKeys { len: 3, max: 2 })
    );
    assert!(e.watch(keys, Millis(0)).is_err());
}

#[test]
fn oversized_meta_and_unknown_connections_are_refused() {
    let e = engine(Config {
        max_meta_bytes: 10,
        ..Config::default()
    });
    let (t, k) = (Topic::new("t"), Key::new("u"));
    let mut out = Outputs::default();
    let big = meta(r#"{"status":"online"}"#);
    assert_eq!(
        e.track(ConnId(1), &t, &k, Meta::empty(), Millis(0), &mut out),
        Err(TrackError::UnknownConnection(ConnId(1)))
    );
    e.connect(ConnId(1), Millis(0)).unwrap();
    assert_eq!(
        e.track(ConnId(1), &t, &k, big.clone(), Millis(0), &mut out),
        Err(TrackError::MetaTooLarge {
            len: big.len(),
            max: 10
        })
    );
    assert!(out.is_empty());
}

#[test]
fn state_json_is_the_presence_state_payload() {
    let e = engine(Config::default());
    let t = Topic::new("realtime:room1");
    let mut out = Outputs::default();
    e.connect(ConnId(1), Millis(0)).unwrap();
    let tracked = e
        .track(
            ConnId(1),
            &t,
            &Key::new("alice"),
            meta(r#"{"status":"online"}"#),
            Millis(0),
            &mut out,
        )
        .unwrap();
    assert_eq!(tracked.change, TrackChange::Joined);
    let mut json = Vec::new();
    e.write_state_json("realtime:room1", &mut json);
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"alice": {"metas": [{"status": "online", "phx_ref": tracked.presence_ref.to_string()}]}})
    );
    json.clear();
    e.write_state_json("realtime:empty", &mut json);
    assert_eq!(json, b"{}");
    let s = e.stats();
    assert_eq!(
        (s.connections, s.topics, s.presences, s.keys_online),
        (1, 1, 1, 1)
    );
}

#[test]
fn refs_differ_across_engines_with_different_seeds() {
    let a = Engine::new(Config {
        ref_seed: 1,
        ..Config::default()
    })
    .unwrap();
    let b = Engine::new(Config {
        ref_seed: 2,
        ..Config::default()
    })
    .unwrap();
    let mut out = Outputs::default();
    let t = Topic::new("t");
    a.connect(ConnId(1), Millis(0)).unwrap();
    b.connect(ConnId(1), Millis(0)).unwrap();
    let ra = a
        .track(
            ConnId(1),
            &t,
            &Key::new("k"),
            Meta::empty(),
            Millis(0),
            &mut out,
        )
        .unwrap();
    let rb = b
        .track(
            ConnId(1),
            &t,
            &Key::new("k"),
            Meta::empty(),
            Millis(0),
            &mut out,
        )
        .unwrap();
    assert_ne!(ra.presence_ref, rb.presence_ref);
}

#[test]
fn the_engine_is_shareable_between_threads() {
    let e = std::sync::Arc::new(engine(Config::default()));
    let handles: Vec<_> = (0..4u64)
        .map(|i| {
            let e = e.clone();
            std::thread::spawn(move || {
                let mut out = Outputs::default();
                for j in 0..500u64 {
                    let c = ConnId(i * 1000 + j);
                    e.connect(c, Millis(0)).unwrap();
                    let t = Topic::new(&format!("t{}", j % 7));
                    e.track(
                        c,
                        &t,
                        &Key::new(&format!("k{j}")),
                        Meta::empty(),
                        Millis(0),
                        &mut out,
                    )
                    .unwrap();
                    if j % 2 == 0 {
                        e.close(c, Millis(1), &mut out);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = e.stats();
    assert_eq!((s.connections, s.presences), (1000, 1000));
}

#[test]
fn a_diff_sink_receives_diffs_in_order_instead_of_outputs() {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<(String, usize, usize)>>> = Arc::default();
    let sink_seen = seen.clone();
    let e = Engine::with_diff_sink(
        Config::default(),
        Box::new(move |d| {
            sink_seen.lock().unwrap().push((
                d.topic.to_string(),
                d.diff.joins.len(),
                d.diff.leaves.len(),
            ))
        }),
    )
    .unwrap();
    let (t, k) = (Topic::new("t"), Key::new("k"));
    let mut out = Outputs::default();
    e.connect(ConnId(1), Millis(0)).unwrap();
    e.track(ConnId(1), &t, &k, Meta::empty(), Millis(0), &mut out)
        .unwrap();
    e.track(ConnId(1), &t, &k, meta(r#"{"a":1}"#), Millis(0), &mut out)
        .unwrap();
    e.close(ConnId(1), Millis(1), &mut out);
    assert!(out.diffs.is_empty());
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("t".into(), 1, 0), ("t".into(), 1, 1), ("t".into(), 0, 1)]
    );
}

/// Many threads track and close at once: the sink sees every diff exactly once, one call at a
/// time, each presence's join before its leave, and may read the engine (no core lock held).
#[test]
fn a_diff_sink_runs_outside_the_locks_one_call_at_a_time_in_order() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, OnceLock, Weak};
    type Seen = Arc<Mutex<Vec<(bool, rollcall_core::PresenceRef)>>>;
    let seen: Seen = Arc::default();
    let engine_slot: Arc<OnceLock<Weak<Engine>>> = Arc::default();
    let busy = Arc::new(AtomicBool::new(false));
    let (sink_seen, sink_engine, sink_busy) = (seen.clone(), engine_slot.clone(), busy.clone());
    let e = Arc::new(
        Engine::with_diff_sink(
            Config::default(),
            Box::new(move |d| {
                assert!(!sink_busy.swap(true, Ordering::SeqCst), "sink re-entered");
                // Would deadlock if the sink ran under the table lock.
                if let Some(e) = sink_engine.get().and_then(Weak::upgrade) {
                    let _ = e.list(d.topic.as_str());
                }
                let mut s = sink_seen.lock().unwrap();
                s.extend(d.diff.joins.iter().map(|j| (true, j.presence.presence_ref)));
                s.extend(
                    d.diff
                        .leaves
                        .iter()
                        .map(|l| (false, l.presence.presence_ref)),
                );
                sink_busy.store(false, Ordering::SeqCst);
            }),
        )
        .unwrap(),
    );
    engine_slot.set(Arc::downgrade(&e)).unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                let mut out = Outputs::default();
                let topic = Topic::new("room");
                for i in 0..500 {
                    let c = ConnId(t * 1000 + i);
                    e.connect(c, Millis(0)).unwrap();
                    let key = Key::new(&format!("u{t}-{i}"));
                    e.track(c, &topic, &key, Meta::empty(), Millis(0), &mut out)
                        .unwrap();
                    if i % 2 == 0 {
                        e.close(c, Millis(1), &mut out);
                    }
                }
                assert!(out.diffs.is_empty());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let mut live = HashSet::new();
    for &(join, r) in seen.iter() {
        if join {
            assert!(live.insert(r), "joined twice");
        } else {
            assert!(live.remove(&r), "left before it joined");
        }
    }
    assert_eq!(seen.len(), 2000 + 1000);
    assert_eq!(live.len(), e.list("room").len());
}

/// `poll_timeout` (the server's timer task) and `track` (socket tasks) run on different
/// threads; both take a connection shard and the table, and must do it in the same order.
#[test]
fn poll_timeout_and_track_on_other_threads_never_deadlock() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let e = Arc::new(engine(Config::default()));
    for c in 0..64 {
        e.connect(ConnId(c), Millis(0)).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (e, stop) = (e.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = e.poll_timeout();
            }
        })
    };
    let (done_tx, done) = std::sync::mpsc::channel();
    let tracker = {
        let e = e.clone();
        std::thread::spawn(move || {
            let mut out = Outputs::default();
            for i in 0..50_000u64 {
                let topic = Topic::new(&format!("realtime:r{}", i % 8));
                let key = Key::new(&format!("k{}", i % 64));
                e.track(
                    ConnId(i % 64),
                    &topic,
                    &key,
                    meta("{}"),
                    Millis(i),
                    &mut out,
                )
                .unwrap();
                out.clear();
            }
            let _ = done_tx.send(());
        })
    };
    let finished = done.recv_timeout(std::time::Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    assert!(finished.is_ok(), "track and poll_timeout deadlocked");
    tracker.join().unwrap();
    poller.join().unwrap();
}
