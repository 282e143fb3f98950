use super::*;

fn cfg(cap: usize) -> Config {
    Config {
        max_offline_keys: cap,
        shards: 1,
        offline_grace: Millis::ZERO,
        idle_after: None,
        timer_granularity: Millis(1),
        forget_offline_after: Millis(10),
        ..Config::default()
    }
}

/// `key` comes online on one connection at `now` and leaves at once (the presence table's
/// part, linking the presence to the key, is played by setting the chain head).
fn churn(t: &mut KeyTable, key: &Key, now: u64, cfg: &Config) {
    let mut out = Outputs::default();
    let now = Millis(now);
    let id = t.intern(key, now);
    t.state_mut(id).head = 0;
    t.presence_added(id, key, true, now, cfg, &mut out);
    t.state_mut(id).head = NONE;
    t.presence_removed(id, true, now, LeaveReason::Closed, now, cfg, &mut out);
}

fn remembered(t: &KeyTable, key: &Key) -> bool {
    t.status(key, Millis(0)).last_seen.is_some()
}

#[test]
fn offline_keys_over_the_cap_are_forgotten_oldest_first() {
    let cfg = cfg(2);
    let mut t = KeyTable::new(&cfg);
    let keys: Vec<Key> = (0..4).map(|i| Key::from(format!("k{i}"))).collect();
    for (i, k) in keys.iter().enumerate() {
        churn(&mut t, k, i as u64, &cfg);
    }
    assert_eq!((t.offline(), t.evicted()), (2, 2));
    let kept: Vec<bool> = keys.iter().map(|k| remembered(&t, k)).collect();
    assert_eq!(kept, [false, false, true, true]);
    assert_eq!(t.status(&keys[3], Millis(9)).last_seen, Some(Millis(3)));
}

#[test]
fn a_watched_key_survives_the_cap_and_is_queued_again_when_unwatched() {
    let cfg = cfg(1);
    let mut t = KeyTable::new(&cfg);
    let (a, b, c) = (Key::new("a"), Key::new("b"), Key::new("c"));
    t.add_watcher(&a, WatchId(1));
    churn(&mut t, &a, 0, &cfg);
    churn(&mut t, &b, 1, &cfg);
    assert!(remembered(&t, &a), "watched keys are never evicted");
    assert!(!remembered(&t, &b));
    t.remove_watcher(&a, WatchId(1), &cfg);
    assert!(remembered(&t, &a), "within the cap after unwatch");
    churn(&mut t, &c, 2, &cfg);
    assert!(!remembered(&t, &a), "the oldest goes first");
    assert!(remembered(&t, &c));
    assert_eq!(t.evicted(), 2);
}

#[test]
fn a_key_watched_past_its_forget_deadline_is_forgotten_after_unwatch() {
    let cfg = cfg(100);
    let mut t = KeyTable::new(&cfg);
    let a = Key::new("a");
    let mut out = Outputs::default();
    t.add_watcher(&a, WatchId(1));
    churn(&mut t, &a, 0, &cfg);
    t.tick(Millis(20), &cfg, &mut out);
    assert!(remembered(&t, &a), "kept while watched");
    t.remove_watcher(&a, WatchId(1), &cfg);
    t.tick(Millis(21), &cfg, &mut out);
    assert!(!remembered(&t, &a), "forgotten once nobody watches it");
    assert_eq!((t.offline(), t.evicted()), (0, 0));
}

#[test]
fn grace_cancelled_by_a_new_presence_emits_no_logout() {
    let cfg = Config {
        offline_grace: Millis(5),
        ..cfg(100)
    };
    let mut t = KeyTable::new(&cfg);
    let a = Key::new("a");
    let mut out = Outputs::default();
    let id = t.intern(&a, Millis(0));
    t.state_mut(id).head = 0;
    t.presence_added(id, &a, true, Millis(0), &cfg, &mut out);
    t.state_mut(id).head = NONE;
    t.presence_removed(
        id,
        true,
        Millis(1),
        LeaveReason::Closed,
        Millis(1),
        &cfg,
        &mut out,
    );
    t.state_mut(id).head = 0;
    t.presence_added(id, &a, true, Millis(3), &cfg, &mut out);
    t.tick(Millis(10), &cfg, &mut out);
    assert_eq!(out.events.len(), 1, "{:?}", out.events);
    assert_eq!(t.status(&a, Millis(10)).connections, 1);
}
