//! Helpers for cluster tests: `rollcall` child processes sharing one Redis, and a raw-frame
//! client that keeps the presence model realtime-js keeps (state, then diffs applied).

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// One `rollcall` process; killed (SIGKILL) on drop.
pub struct Node {
    pub child: Child,
    pub port: u16,
    pub id: String,
}

impl Node {
    /// Starts a node on a free port and waits until it answers.
    pub async fn start(redis_url: &str, prefix: &str, id: &str, node_timeout: &str) -> Node {
        Node::start_with(redis_url, prefix, id, node_timeout, &[]).await
    }

    /// Like [`Node::start`] with extra flags.
    pub async fn start_with(
        redis_url: &str,
        prefix: &str,
        id: &str,
        node_timeout: &str,
        extra: &[&str],
    ) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--redis-url", redis_url, "--redis-prefix", prefix])
            .args(["--node-id", id, "--node-timeout", node_timeout])
            .args(["--database-url", "none"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn rollcall");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "node {id} did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Node {
            child,
            port,
            id: id.to_string(),
        }
    }

    pub fn ws_url(&self) -> String {
        format!(
            "ws://127.0.0.1:{}/realtime/v1/websocket?apikey=x&vsn=1.0.0",
            self.port
        )
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// SIGKILL: no leave is sent, no key is cleaned.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A metric's value from `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = http_get(self.port, "/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A minimal HTTP/1.1 request over a raw socket (no client crate needed): the body.
pub async fn http_request(port: u16, method: &str, path: &str, body: &str) -> String {
    http_exchange(port, method, path, body).await.1
}

/// Like [`http_request`]: the status code and the body.
pub async fn http_exchange(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub async fn http_get(port: u16, path: &str) -> String {
    http_request(port, "GET", path, "").await
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A client joined to one channel, keeping the presence model from what it receives.
pub struct Client {
    ws: Ws,
    topic: String,
    /// key → refs present.
    pub model: BTreeMap<String, BTreeSet<String>>,
    /// ref → leaves received for it.
    pub leaves: HashMap<String, u32>,
    pub broadcasts: Vec<Value>,
    pub got_state: bool,
    /// The `i` field of the last joined meta (for the latency benchmark).
    pub joined_meta_i: Option<u64>,
}

impl Client {
    /// Connects and joins `room` with presence `key` (presence enabled).
    pub async fn join(node: &Node, room: &str, key: &str) -> Client {
        let ws = connect_async(node.ws_url()).await.expect("upgrade").0;
        let topic = format!("realtime:{room}");
        let mut c = Client {
            ws,
            topic: topic.clone(),
            model: BTreeMap::new(),
            leaves: HashMap::new(),
            broadcasts: Vec::new(),
            got_state: false,
            joined_meta_i: None,
        };
        c.send(
            json!({"topic": topic, "event": "phx_join", "ref": "1", "join_ref": "1",
            "payload": {"config": {"broadcast": {"ack": false, "self": false},
            "presence": {"key": key, "enabled": true}, "postgres_changes": [], "private": false}}}),
        )
        .await;
        c.wait(Duration::from_secs(5), |c| c.got_state).await;
        c
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn track(&mut self, meta: Value) {
        let topic = self.topic.clone();
        self.send(
            json!({"topic": topic, "event": "presence", "ref": "2", "join_ref": "1",
            "payload": {"type": "presence", "event": "track", "payload": meta}}),
        )
        .await;
    }

    pub async fn untrack(&mut self) {
        let topic = self.topic.clone();
        self.send(
            json!({"topic": topic, "event": "presence", "ref": "3", "join_ref": "1",
            "payload": {"type": "presence", "event": "untrack"}}),
        )
        .await;
    }

    pub async fn heartbeat(&mut self) {
        self.send(json!({"topic": "phoenix", "event": "heartbeat", "ref": "h", "payload": {}}))
            .await;
    }

    fn apply(&mut self, v: &Value) {
        let event = v["event"].as_str().unwrap_or("");
        let payload = &v["payload"];
        match event {
            "presence_state" => {
                self.model.clear();
                add(&mut self.model, payload);
                self.got_state = true;
            }
            "presence_diff" => {
                add(&mut self.model, &payload["joins"]);
                for metas in payload["joins"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(_, m)| m)
                {
                    for m in metas["metas"].as_array().into_iter().flatten() {
                        if let Some(i) = m["i"].as_u64() {
                            self.joined_meta_i = Some(i);
                        }
                    }
                }
                for (key, metas) in payload["leaves"].as_object().into_iter().flatten() {
                    for m in metas["metas"].as_array().into_iter().flatten() {
                        let r = m["phx_ref"].as_str().unwrap().to_string();
                        *self.leaves.entry(r.clone()).or_default() += 1;
                        if let Some(set) = self.model.get_mut(key) {
                            set.remove(&r);
                            if set.is_empty() {
                                self.model.remove(key);
                            }
                        }
                    }
                }
            }
            "broadcast" => self.broadcasts.push(payload.clone()),
            _ => {}
        }
    }

    /// Reads frames for `for_` (applying them).
    pub async fn pump(&mut self, for_: Duration) {
        let deadline = tokio::time::Instant::now() + for_;
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                self.apply(&v);
            }
        }
    }

    /// Reads frames until `done` holds; panics after `timeout`.
    pub async fn wait(&mut self, timeout: Duration, done: impl Fn(&Client) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(self) {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    self.apply(&v);
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("socket ended: {other:?}"),
                Err(_) => panic!("timed out; model: {:?}", self.model),
            }
        }
    }

    /// The keys present, with how many presences each.
    pub fn keys(&self) -> BTreeMap<String, usize> {
        self.model
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect()
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

fn add(model: &mut BTreeMap<String, BTreeSet<String>>, groups: &Value) {
    for (key, metas) in groups.as_object().into_iter().flatten() {
        for m in metas["metas"].as_array().into_iter().flatten() {
            let r = m["phx_ref"].as_str().unwrap().to_string();
            model.entry(key.clone()).or_default().insert(r);
        }
    }
}

/// `{key: count}` from pairs.
pub fn expect(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// The node-death scenario, on three started nodes of one cluster (`node_timeout` 2 s): two
/// users on `b`, watchers on `a` and `c`; `b` is killed with SIGKILL; both watchers see each
/// user leave exactly once, a newcomer sees nobody from the dead node, and exactly one survivor
/// reaped it.
pub async fn killed_node_s_users_leave_once(a: &Node, b: &mut Node, c: &Node) {
    let wait = Duration::from_secs(5);
    let mut watch_a = Client::join(a, "room", "watcher-a").await;
    let mut watch_c = Client::join(c, "room", "watcher-c").await;
    let mut b1 = Client::join(b, "room", "bob").await;
    let mut b2 = Client::join(b, "room", "carol").await;
    b1.track(json!({})).await;
    b2.track(json!({})).await;
    let both = expect(&[("bob", 1), ("carol", 1)]);
    watch_a.wait(wait, |c| c.keys() == both).await;
    watch_c.wait(wait, |c| c.keys() == both).await;
    b.kill9();
    let started = Instant::now();
    // node_timeout 2 s + a reaper period, with slack for a loaded 2-core CI box (this
    // checks that the leave happens, not how fast)
    for w in [&mut watch_a, &mut watch_c] {
        w.wait(Duration::from_secs(15), |c| c.keys().is_empty())
            .await;
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "leaves took {took:?}");
    // nothing more arrives: each ref left exactly once on each client
    watch_a.pump(Duration::from_millis(1500)).await;
    watch_c.pump(Duration::from_millis(1500)).await;
    for w in [&watch_a, &watch_c] {
        assert_eq!(w.leaves.len(), 2, "{:?}", w.leaves);
        assert!(
            w.leaves.values().all(|n| *n == 1),
            "duplicate leave: {:?}",
            w.leaves
        );
    }
    let late = Client::join(a, "room", "late").await;
    assert!(late.keys().is_empty(), "{:?}", late.keys());
    let reaped = a.metric("rollcall_redis_nodes_reaped_total").await
        + c.metric("rollcall_redis_nodes_reaped_total").await;
    assert_eq!(reaped, 1, "exactly one survivor removes the dead node");
}

/// The clients of the outage scenarios on nodes `a` and `b`: watchers `wa` on `a` and `wb` on
/// `b`, and on `b` the users `stay` and `go`, tracked and seen by `wa`.
pub async fn outage_clients(a: &Node, b: &Node) -> [Client; 4] {
    let wa = Client::join(a, "room", "wa").await;
    let wb = Client::join(b, "room", "wb").await;
    let mut stay = Client::join(b, "room", "stay").await;
    let mut go = Client::join(b, "room", "go").await;
    stay.track(json!({})).await;
    go.track(json!({})).await;
    let mut wa = wa;
    let before = expect(&[("go", 1), ("stay", 1)]);
    wa.wait(Duration::from_secs(5), |c| c.keys() == before)
        .await;
    [wa, wb, stay, go]
}

/// Fresh joiners on each of `nodes` get exactly `live` in their state, and nothing after.
pub async fn fresh_joiners_see(nodes: &[&Node], live: &BTreeMap<String, usize>) {
    for n in nodes {
        let mut fresh = Client::join(n, "room", "fresh").await;
        fresh
            .wait(Duration::from_secs(5), |c| c.keys() == *live)
            .await;
        fresh.pump(Duration::from_millis(300)).await;
        assert_eq!(fresh.keys(), *live);
    }
}
