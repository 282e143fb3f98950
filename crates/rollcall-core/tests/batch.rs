//! Batch paths: many connections handled in one call.

use rollcall_core::{Config, ConnId, Engine, Millis, Outputs};

#[test]
fn heartbeat_many_keeps_every_open_connection_alive_and_counts_only_open_ones() {
    let e = Engine::new(Config {
        heartbeat_interval: Millis(10),
        missed_heartbeats: 3,
        timer_granularity: Millis(1),
        shards: 4,
        ..Config::default()
    })
    .unwrap();
    for c in 0..50 {
        e.connect(ConnId(c), Millis(0)).unwrap();
    }
    let even: Vec<ConnId> = (0..50).step_by(2).map(ConnId).collect();
    let with_unknown: Vec<ConnId> = even.iter().copied().chain([ConnId(99)]).collect();
    assert_eq!(e.heartbeat_many(&with_unknown, Millis(20)), 25);
    let mut out = Outputs::default();
    e.tick(Millis(30), &mut out);
    let mut expired = out.expired.clone();
    expired.sort();
    let odd: Vec<ConnId> = (1..50).step_by(2).map(ConnId).collect();
    assert_eq!(
        expired, odd,
        "only the connections left out of the batch expire"
    );
    assert_eq!(e.stats().connections, 25);
    out.clear();
    e.tick(Millis(50), &mut out);
    assert_eq!(out.expired.len(), 25);
}
