//! Several `rollcall` processes sharing one Redis: clients on different nodes see one channel
//! state and the same diffs; a node killed with SIGKILL has its users leave everywhere within
//! `node_timeout`, exactly once; after Redis drops every connection, every node's view equals
//! the live presences again. Each test uses its own key prefix, so they run in parallel.

mod cluster_support;

use std::time::Duration;

use cluster_support::{
    Client, Node, expect, fresh_joiners_see, http_exchange, http_request,
    killed_node_s_users_leave_once, outage_clients,
};
use rollcall_testkit::{client_ids_where, service_url, unique_name};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn clients_on_two_nodes_see_each_other_and_diffs_cross_nodes() {
    let Some(url) = service_url("REDIS_URL") else {
        return;
    };
    let prefix = unique_name("rc_see");
    let a = Node::start(&url, &prefix, "see-a", "3s").await;
    let b = Node::start(&url, &prefix, "see-b", "3s").await;
    let mut alice = Client::join(&a, "room", "alice").await;
    alice.track(json!({"name": "alice"})).await;
    alice
        .wait(WAIT, |c| c.keys() == expect(&[("alice", 1)]))
        .await;
    // bob joins on the other node: alice's presence reaches him (state or diff).
    let mut bob = Client::join(&b, "room", "bob").await;
    bob.wait(WAIT, |c| c.keys() == expect(&[("alice", 1)]))
        .await;
    bob.track(json!({"name": "bob"})).await;
    bob.wait(WAIT, |c| c.keys() == expect(&[("alice", 1), ("bob", 1)]))
        .await;
    alice
        .wait(WAIT, |c| c.keys() == expect(&[("alice", 1), ("bob", 1)]))
        .await;
    // the same key on both nodes: one entry, two metas, for a late joiner on either node.
    let mut alice2 = Client::join(&b, "room", "alice").await;
    alice2.track(json!({"device": 2})).await;
    for c in [&mut alice, &mut bob, &mut alice2] {
        c.wait(WAIT, |c| c.keys() == expect(&[("alice", 2), ("bob", 1)]))
            .await;
    }
    let late = Client::join(&a, "room", "late").await;
    assert_eq!(
        late.keys(),
        expect(&[("alice", 2), ("bob", 1)]),
        "state merges nodes"
    );
    // an update and a leave cross nodes
    bob.track(json!({"name": "bob", "status": "away"})).await;
    bob.untrack().await;
    alice
        .wait(WAIT, |c| c.keys() == expect(&[("alice", 2)]))
        .await;
    // a REST broadcast on node B reaches a socket on node A
    let body = json!({"messages": [{"topic": "room", "event": "ping", "payload": {"n": 1}}]});
    http_request(b.port, "POST", "/api/broadcast", &body.to_string()).await;
    alice.wait(WAIT, |c| !c.broadcasts.is_empty()).await;
    assert_eq!(alice.broadcasts[0]["payload"]["n"], 1);
    // the batch status answers on any node
    let body = json!({"keys": ["alice", "bob", "nobody"]});
    let status = http_request(b.port, "POST", "/api/presence/status", &body.to_string()).await;
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["statuses"]["nobody"]["status"], "offline", "{v}");
    assert!(v["statuses"]["bob"]["status"].is_string(), "{v}");
}

#[tokio::test]
async fn a_killed_node_s_users_leave_everywhere_once_within_node_timeout() {
    let Some(url) = service_url("REDIS_URL") else {
        return;
    };
    let prefix = unique_name("rc_kill");
    let a = Node::start(&url, &prefix, "kill-a", "2s").await;
    let mut b = Node::start(&url, &prefix, "kill-b", "2s").await;
    let c = Node::start(&url, &prefix, "kill-c", "2s").await;
    killed_node_s_users_leave_once(&a, &mut b, &c).await;
}

/// Kills every Redis connection opened on database `db` (this test's nodes only), with
/// `redis-cli` (CI starts Redis with it, so it is there).
fn kill_connections(url: &str, db: u32) -> usize {
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-u", url])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let list = cli(&["CLIENT", "LIST"]);
    let ids = client_ids_where(&list, "db", |d| d == db.to_string());
    for id in &ids {
        cli(&["CLIENT", "KILL", "ID", id]);
    }
    ids.len()
}

#[tokio::test]
async fn after_redis_drops_every_connection_each_view_equals_the_live_presences() {
    let Some(url) = service_url("REDIS_URL") else {
        return;
    };
    // A database of its own, so killing "our" connections spares parallel tests.
    let db = 7;
    let node_url = format!("{}/{db}", url.trim_end_matches('/'));
    let prefix = unique_name("rc_outage");
    let a = Node::start(&node_url, &prefix, "out-a", "3s").await;
    let b = Node::start(&node_url, &prefix, "out-b", "3s").await;
    let [mut wa, mut wb, mut stay, mut go] = outage_clients(&a, &b).await;
    // Drop all connections, and change presences on both nodes while they reconnect.
    let killed = kill_connections(&url, db);
    assert!(
        killed >= 4,
        "expected both nodes' connections, killed {killed}"
    );
    go.untrack().await;
    let mut newcomer = Client::join(&a, "room", "new").await;
    newcomer.track(json!({})).await;
    kill_connections(&url, db);
    let live = expect(&[("new", 1), ("stay", 1)]);
    for c in [&mut wa, &mut wb, &mut stay, &mut newcomer] {
        c.wait(Duration::from_secs(10), |c| c.keys() == live).await;
    }
    // fresh joiners on both nodes get exactly the live set in their state
    fresh_joiners_see(&[&a, &b], &live).await;
    assert!(a.metric("rollcall_redis_pubsub_connects_total").await >= 2);
}

/// A Redis of the test's own on a free port, so it can be killed without touching the
/// shared one; killed on drop.
struct OwnRedis {
    child: std::process::Child,
    port: u16,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnRedis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn channel_state_from_a_node_without_a_view_is_whole_or_a_503() {
    // Needs only the redis-server binary; gated like the others so a machine without Redis skips.
    if service_url("REDIS_URL").is_none() {
        return;
    }
    let mut redis = OwnRedis::start();
    let prefix = unique_name("rc_state503");
    let a = Node::start(&redis.url(), &prefix, "s503-a", "3s").await;
    let b = Node::start(&redis.url(), &prefix, "s503-b", "3s").await;
    // A topic no node holds: an empty state, not an error.
    let (status, body) = http_exchange(a.port, "GET", "/api/channels/nobody/presence", "").await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    let mut alice = Client::join(&b, "room", "alice").await;
    alice.track(json!({"name": "alice"})).await;
    alice
        .wait(WAIT, |c| c.keys() == expect(&[("alice", 1)]))
        .await;
    // Node A has no channel on `room`, so it reads the others' presences from Redis.
    let path = "/api/channels/room/presence";
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, body) = http_exchange(a.port, "GET", path, "").await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect(&body);
        if v.get("alice").is_some() {
            assert_eq!(v["alice"]["metas"][0]["name"], "alice", "{v}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alice never read: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Redis gone: a partial answer (A's own, empty) would look complete; it is a 503 instead.
    redis.kill();
    let (status, body) = http_exchange(a.port, "GET", path, "").await;
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect(&body);
    assert!(
        v["error"].as_str().unwrap_or("").contains("redis"),
        "the reason names redis: {v}"
    );
    // Node B holds a view of `room`: it still answers from it.
    let (status, body) = http_exchange(b.port, "GET", path, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("alice"), "{body}");
}

/// The status of `key` as node `port` answers it for the whole cluster.
async fn cluster_status(port: u16, key: &str) -> serde_json::Value {
    let body = json!({ "keys": [key] }).to_string();
    let text = http_request(port, "POST", "/api/presence/status", &body).await;
    let v: serde_json::Value = serde_json::from_str(&text).expect(&text);
    v["statuses"][key].clone()
}

#[tokio::test]
async fn a_status_change_reaches_other_nodes_within_seconds_not_a_flush_period() {
    let Some(url) = service_url("REDIS_URL") else {
        return;
    };
    let prefix = unique_name("rc_fresh");
    // 300 s heartbeats: the status flush period is 150 s, cut into 30 slices of 5 s, so a key's
    // own slice may come up to 150 s after it changes; only the write of changed keys at the
    // next tick makes other nodes see it within seconds. No offline grace: the logout is at
    // the close.
    let slow = ["--heartbeat-interval", "300s", "--offline-grace", "0s"];
    let a = Node::start_with(&url, &prefix, "fresh-a", "3s", &slow).await;
    let b = Node::start_with(&url, &prefix, "fresh-b", "3s", &slow).await;
    assert_eq!(cluster_status(b.port, "alice").await["status"], "offline");
    let mut alice = Client::join(&a, "room", "alice").await;
    alice.track(json!({})).await;
    let within = |what: &'static str| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(4);
        loop {
            let s = cluster_status(b.port, "alice").await;
            if s["status"] == what {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node B never saw alice {what}: {s}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let online = within("online").await;
    assert_eq!(online["connections"], 1, "{online}");
    alice.close().await;
    within("offline").await;
}

/// Benchmark, not a check: cross-node diff latency (track on node A → `presence_diff` on a
/// socket of node B), p50/p99 over 1,000 updates. Run with:
/// `cargo test --release -p rollcall-server --test cluster -- --ignored cross_node --nocapture`
#[tokio::test]
#[ignore = "benchmark"]
async fn cross_node_diff_latency() {
    let Some(url) = service_url("REDIS_URL") else {
        return;
    };
    let prefix = unique_name("rc_lat");
    let unlimited = [
        "--presence-calls",
        "1000000",
        "--max-events-per-second",
        "1000000",
    ];
    let a = Node::start_with(&url, &prefix, "lat-a", "15s", &unlimited).await;
    let b = Node::start(&url, &prefix, "lat-b", "15s").await;
    let mut writer = Client::join(&a, "room", "writer").await;
    let mut reader = Client::join(&b, "room", "reader").await;
    let mut samples = Vec::with_capacity(1000);
    for i in 0..1000u64 {
        let t = std::time::Instant::now();
        writer.track(json!({ "i": i })).await;
        reader.wait(WAIT, |c| c.joined_meta_i == Some(i)).await;
        samples.push(t.elapsed());
        if i % 100 == 0 {
            writer.pump(Duration::from_millis(1)).await;
        }
    }
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "cross-node diff latency over {} updates: p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        p(0.50),
        p(0.99),
        samples[samples.len() - 1]
    );
}
