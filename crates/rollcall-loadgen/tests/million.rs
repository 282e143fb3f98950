//! Smoke test of `rollcall-loadgen million` at a small size: three real node processes on the
//! real Redis, random placement, hold, exact room checks, `kill -9` of one node, leaves seen
//! exactly once by every surviving room-mate, reconnect storm, checks again; then the same on a
//! 3-master Redis Cluster the test starts (`--redis-cluster`). The full-size run is a benchmark (docs/benchmarks.md, "1M"); here only correctness is asserted, never time.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The debug `rollcall` binary beside this package's binary, built if a narrower `cargo test`
/// did not build it.
fn rollcall_bin() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_rollcall-loadgen"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let bin = dir.join("rollcall");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "rollcall-server", "--bin", "rollcall"])
            .status()
            .expect("cargo runs")
            .success();
        assert!(ok, "cargo build -p rollcall-server failed");
    }
    bin
}

#[test]
fn three_nodes_hold_check_kill_and_reconnect_exactly() {
    let Some(redis) = rollcall_testkit::service_url("REDIS_URL") else {
        return;
    };
    let r = million(&redis, false);
    assert_eq!(
        r["hold_redis_ops_per_s_by_server"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// The same on a 3-master Redis Cluster the test starts: nodes with `--redis-cluster`, every
/// master measured, and each one busy (keys and sharded channels spread over all three).
#[test]
fn the_same_on_a_redis_cluster() {
    let Some(rc) = rollcall_testkit::RedisCluster::start() else {
        return;
    };
    let r = million(&rc.urls(), true);
    let by_server = r["hold_redis_ops_per_s_by_server"].as_array().unwrap();
    assert_eq!(by_server.len(), 3, "{by_server:?}");
    assert!(
        by_server.iter().all(|v| v.as_f64().unwrap() > 0.0),
        "every master works: {by_server:?}"
    );
}

/// Runs the small `million` on `redis` and checks every correctness goal; returns the report.
fn million(redis: &str, cluster: bool) -> serde_json::Value {
    let dir = std::env::temp_dir().join(rollcall_testkit::unique_name("million"));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .min(65_000);
    let out = dir.join("million.json");
    let plot = dir.join("million.png");
    let status = Command::new(env!("CARGO_BIN_EXE_rollcall-loadgen"))
        .arg("million")
        .arg("--rollcall")
        .arg(rollcall_bin())
        .args(["-n", "3000", "--nodes", "3", "--rooms", "10"])
        .args(["--heartbeat", "1s", "--hold", "3s", "--node-timeout", "2s"])
        .args(["--sample-rooms", "100", "--sample-every", "1s", "--quiet"])
        .args(["--redis-url", redis, "--base-port", &base.to_string()])
        .args(if cluster {
            &["--redis-cluster"][..]
        } else {
            &[]
        })
        .arg("--work-dir")
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .arg("--plot")
        .arg(&plot)
        .status()
        .expect("rollcall-loadgen runs");
    let text = std::fs::read_to_string(&out).expect("the report was written");
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    let brief = |k: &str| r[k].clone();
    assert!(
        status.success(),
        "million failed: {}",
        &text[..text.len().min(4000)]
    );
    assert_eq!(brief("passed"), true);
    assert_eq!(brief("connections_held"), 3000);
    assert_eq!(brief("connect_errors"), 0);
    assert_eq!(r["check_hold"]["exact"], 100);
    assert_eq!(r["check_after_kill"]["exact"], 100);
    assert_eq!(r["check_after_reconnect"]["exact"], 100);
    let killed = r["killed_connections"].as_u64().unwrap();
    assert!(killed > 500 && killed < 1500, "{killed}");
    let leaves = &r["leaves"];
    assert!(leaves["leaves_expected"].as_u64().unwrap() > 0);
    assert_eq!(leaves["leaves_seen"], leaves["leaves_expected"]);
    assert_eq!(leaves["leave_mismatches"], 0);
    assert_eq!(r["reconnect"]["reconnected"].as_u64().unwrap(), killed);
    assert_eq!(r["reconnect"]["reconnect_errors"], 0);
    assert!(r["heartbeat_rtt"]["samples"].as_u64().unwrap() > 0);
    assert!(!r["series"].as_array().unwrap().is_empty());
    assert!(plot.exists());
    let _ = std::fs::remove_dir_all(&dir);
    r
}
