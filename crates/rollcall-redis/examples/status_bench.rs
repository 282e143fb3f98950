//! Heartbeat-refresh throughput through the adapter: status entries written per second with
//! `Cluster::write_statuses` (one pipeline of `HSET` + `PEXPIRE` per 10,000 keys).
//!
//! Run with: `cargo run --release -p rollcall-redis --example status_bench -- redis://127.0.0.1:6379 1000000`

use std::time::Instant;

use rollcall_redis::{Cluster, ClusterConfig, StatusEntry};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let total: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let mut cfg = ClusterConfig::new(&url, "bench");
    cfg.prefix = format!("rcbench{}", std::process::id());
    let cluster = Cluster::new(cfg).expect("config");
    let keys = 100_000.min(total);
    let entries: Vec<StatusEntry> = (0..keys)
        .map(|i| StatusEntry {
            key: format!("user-{i}"),
            status: rollcall_core::Status::Online,
            last_seen_ms: 1,
            connections: 1,
        })
        .collect();
    cluster
        .write_statuses(&entries[..10], &[])
        .await
        .expect("redis");
    let start = Instant::now();
    let mut written = 0;
    while written < total {
        for chunk in entries.chunks(10_000) {
            cluster.write_statuses(chunk, &[]).await.expect("redis");
            written += chunk.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{written} status refreshes in {secs:.2} s: {:.0} keys/s ({:.0} commands/s)",
        written as f64 / secs,
        2.0 * written as f64 / secs
    );
    let gone: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
    for chunk in gone.chunks(10_000) {
        let _ = cluster.write_statuses(&[], chunk).await;
    }
}
