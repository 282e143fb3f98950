//! Rollcall nodes on a Redis Cluster (`--redis-cluster`): each test starts its own 3-master
//! cluster (`rollcall_testkit::RedisCluster`: `redis-server --cluster-enabled yes`, `redis-cli
//! --cluster create`) on free ports, so keys and sharded channels really spread over three
//! shards. Clients on different nodes
//! see one channel state and the same diffs, broadcasts and status; a killed node's users
//! leave everywhere exactly once; after every connection to every shard is dropped, each
//! node's view equals the live presences again.

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::{
    Client, Node, expect, fresh_joiners_see, http_exchange, http_request,
    killed_node_s_users_leave_once, outage_clients,
};
use rollcall_testkit::{RedisCluster, client_ids_where, unique_name};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

/// A bare RESP connection for killing clients in a tight loop (a redis-cli process per
/// command is too slow to keep a subscriber down while diffs are published).
struct Resp(std::io::BufReader<std::net::TcpStream>);

impl Resp {
    fn connect(port: u16) -> Resp {
        Resp(std::io::BufReader::new(
            std::net::TcpStream::connect(("127.0.0.1", port)).unwrap(),
        ))
    }

    /// Sends a command; returns its reply's text (bulk strings and integers only).
    fn call(&mut self, args: &[&str]) -> String {
        use std::io::{BufRead, Read, Write};
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0.get_mut().write_all(req.as_bytes()).unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).unwrap();
        match line.as_bytes().first() {
            Some(b'$') => {
                let len: usize = line[1..].trim().parse().unwrap();
                let mut body = vec![0; len + 2];
                self.0.read_exact(&mut body).unwrap();
                String::from_utf8_lossy(&body[..len]).to_string()
            }
            _ => line[1..].trim().to_string(),
        }
    }

    /// Kills the sharded pub/sub subscribers only (clients with shard channel subscriptions),
    /// so the data connections stay up and no re-publication hides a missed message.
    fn kill_subscribers(&mut self) -> usize {
        let list = self.call(&["CLIENT", "LIST"]);
        let ids = client_ids_where(&list, "ssub", |n| n != "0");
        for id in &ids {
            self.call(&["CLIENT", "KILL", "ID", id]);
        }
        ids.len()
    }
}

/// A node on the cluster; a 2 s heartbeat interval makes the status flush run every second.
async fn node(rc: &RedisCluster, prefix: &str, id: &str, timeout: &str) -> Node {
    let extra = ["--redis-cluster", "--heartbeat-interval", "2s"];
    Node::start_with(&rc.seeds(), prefix, id, timeout, &extra).await
}

#[tokio::test]
async fn presence_broadcast_and_status_cross_nodes_over_three_shards() {
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    let prefix = unique_name("rc_rcl");
    let a = node(&rc, &prefix, "rcl-a", "3s").await;
    let b = node(&rc, &prefix, "rcl-b", "3s").await;
    let c = node(&rc, &prefix, "rcl-c", "3s").await;
    // Several rooms, so topics (and their sharded channels) land on every shard.
    let rooms: Vec<String> = (0..6).map(|i| format!("room-{i}")).collect();
    let mut alices = Vec::new();
    let mut bobs = Vec::new();
    for room in &rooms {
        let mut alice = Client::join(&a, room, "alice").await;
        alice.track(json!({"room": room})).await;
        alice
            .wait(WAIT, |c| c.keys() == expect(&[("alice", 1)]))
            .await;
        let mut bob = Client::join(&b, room, "bob").await;
        bob.wait(WAIT, |c| c.keys() == expect(&[("alice", 1)]))
            .await;
        bob.track(json!({"room": room})).await;
        alices.push(alice);
        bobs.push(bob);
    }
    let both = expect(&[("alice", 1), ("bob", 1)]);
    for (alice, bob) in alices.iter_mut().zip(bobs.iter_mut()) {
        alice.wait(WAIT, |c| c.keys() == both).await;
        bob.wait(WAIT, |c| c.keys() == both).await;
    }
    let counts = rc.key_counts();
    assert!(
        counts.iter().all(|&n| n > 0),
        "keys on every shard: {counts:?}"
    );
    // A leave crosses nodes in every room.
    for bob in &mut bobs {
        bob.untrack().await;
    }
    for alice in &mut alices {
        alice
            .wait(WAIT, |c| c.keys() == expect(&[("alice", 1)]))
            .await;
    }
    // Node C has no channel: it reads the state of each room from the shards.
    for room in &rooms {
        let path = format!("/api/channels/{room}/presence");
        let (status, body) = http_exchange(c.port, "GET", &path, "").await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect(&body);
        assert_eq!(v["alice"]["metas"][0]["room"], room.as_str(), "{v}");
        assert!(v.get("bob").is_none(), "{v}");
    }
    // A REST broadcast on node C reaches sockets on node A in every room.
    for room in &rooms {
        let body =
            json!({"messages": [{"topic": room, "event": "ping", "payload": {"room": room}}]});
        http_request(c.port, "POST", "/api/broadcast", &body.to_string()).await;
    }
    for (alice, room) in alices.iter_mut().zip(&rooms) {
        alice.wait(WAIT, |c| !c.broadcasts.is_empty()).await;
        assert_eq!(alice.broadcasts[0]["payload"]["room"], room.as_str());
    }
    // The batch status answers on any node (here one without presences), with status keys
    // spread over the shards; node A flushes alice's status every second.
    let body = json!({"keys": ["alice", "bob", "nobody"]}).to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        let status = http_request(c.port, "POST", "/api/presence/status", &body).await;
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(v["statuses"]["nobody"]["status"], "offline", "{v}");
        if v["statuses"]["alice"]["status"] == "online" {
            assert_eq!(v["statuses"]["alice"]["connections"], 6, "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice never online on node C: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_killed_node_s_users_leave_everywhere_once_on_a_redis_cluster() {
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    let prefix = unique_name("rc_rclkill");
    let a = node(&rc, &prefix, "rck-a", "2s").await;
    let mut b = node(&rc, &prefix, "rck-b", "2s").await;
    let c = node(&rc, &prefix, "rck-c", "2s").await;
    killed_node_s_users_leave_once(&a, &mut b, &c).await;
}

#[tokio::test]
async fn after_every_shard_drops_every_connection_each_view_equals_the_live_presences() {
    let Some(rc) = RedisCluster::start() else {
        return;
    };
    let prefix = unique_name("rc_rclout");
    let a = node(&rc, &prefix, "rco-a", "3s").await;
    let b = node(&rc, &prefix, "rco-b", "3s").await;
    let [mut wa, mut wb, mut stay, mut go] = outage_clients(&a, &b).await;
    // Drop all connections; then, for a second, drop the subscribers again and again while
    // presences change on both nodes: diffs are published while a subscriber is between two
    // connections, and only the reload after resubscribing can bring them back.
    let killed = rc.kill_connections();
    assert!(
        killed >= 4,
        "expected both nodes' connections, killed {killed}"
    );
    let ports = rc.ports.clone();
    let killer = std::thread::spawn(move || {
        let mut shards: Vec<Resp> = ports.iter().map(|&p| Resp::connect(p)).collect();
        let until = Instant::now() + Duration::from_secs(1);
        let mut killed = 0;
        while Instant::now() < until {
            for s in &mut shards {
                killed += s.kill_subscribers();
            }
        }
        killed
    });
    let step = Duration::from_millis(150);
    tokio::time::sleep(step).await;
    go.untrack().await;
    tokio::time::sleep(step).await;
    let mut newcomer = Client::join(&a, "room", "new").await;
    newcomer.track(json!({})).await;
    tokio::time::sleep(step).await;
    let mut flip = Client::join(&b, "room", "flip").await;
    flip.track(json!({})).await;
    tokio::time::sleep(step).await;
    let mut late = Client::join(&b, "room", "late").await;
    late.track(json!({})).await;
    tokio::time::sleep(step).await;
    flip.untrack().await;
    assert!(killer.join().unwrap() >= 2, "subscribers were killed");
    let live = expect(&[("late", 1), ("new", 1), ("stay", 1)]);
    for c in [&mut wa, &mut wb, &mut stay, &mut newcomer, &mut late] {
        c.wait(Duration::from_secs(15), |c| c.keys() == live).await;
    }
    fresh_joiners_see(&[&a, &b], &live).await;
}
