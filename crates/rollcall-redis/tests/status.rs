//! Volatile status against a real Redis: a batch query over 10,000 keys costs one round trip,
//! entries from other nodes combine, and a node's own entries are left to its engine.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rollcall_core::Status;
use rollcall_redis::{Cluster, ClusterConfig, StatusEntry};
use rollcall_testkit::{service_url, unique_name};

fn node(url: &str, prefix: &str, id: &str) -> Arc<Cluster> {
    let mut cfg = ClusterConfig::new(url, id);
    cfg.prefix = prefix.to_string();
    Cluster::new(cfg).unwrap()
}

#[tokio::test]
async fn a_batch_status_query_over_10k_keys_takes_one_round_trip() {
    let Some(url) = service_url("REDIS_URL") else {
        return;
    };
    let prefix = unique_name("rc_status");
    let a = node(&url, &prefix, "a");
    let b = node(&url, &prefix, "b");
    let keys: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    let entries: Vec<StatusEntry> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| StatusEntry {
            key: k.clone(),
            status: if i % 2 == 0 {
                Status::Online
            } else {
                Status::Idle
            },
            last_seen_ms: 1_000 + i as u64,
            connections: 1,
        })
        .collect();
    a.write_statuses(&entries, &[]).await.unwrap();
    b.write_statuses(&entries[..10], &[]).await.unwrap();
    let mut ask: Vec<&str> = keys.iter().map(String::as_str).collect();
    ask.push("nobody");
    let before = b.metrics.status_round_trips.load(Ordering::Relaxed);
    let got = b.statuses(&ask).await.unwrap();
    assert_eq!(
        b.metrics.status_round_trips.load(Ordering::Relaxed) - before,
        1
    );
    assert_eq!(got.len(), 10_001);
    assert_eq!(got[0].as_ref().unwrap().status, Status::Online);
    assert_eq!(got[1].as_ref().unwrap().status, Status::Idle);
    assert_eq!(got[9_999].as_ref().unwrap().last_seen_ms, 10_999);
    assert!(got[10_000].is_none());
    // b's own entries are not counted: its engine answers for them
    assert_eq!(got[0].as_ref().unwrap().connections, 1);
    // a's keys that left disappear for others
    a.write_statuses(&[], &keys[..5]).await.unwrap();
    let got = b.statuses(&ask[..6]).await.unwrap();
    assert!(got[..5].iter().all(Option::is_none));
    assert!(got[5].is_some());
}
