//! The bus contract: the same scenarios, with the same expected frames, against every
//! cluster backend — a single node (`LocalBus`) and a node on Redis (`RedisBus`, needs
//! `REDIS_URL`). Whatever the backend, a client must not be able to tell: each diff and
//! broadcast arrives once (a node must not hear its own messages back through Redis), the
//! HTTP channel state equals `presence_state`, statuses and readiness answer. Multi-node
//! behaviour is in `tests/cluster.rs`.

mod support;

use std::time::Duration;

use rollcall_core::Millis;
use rollcall_server::config::RedisSettings;
use rollcall_testkit::{service_url, unique_name};
use serde_json::{Value, json};
use support::{TestServer, Ws};

#[derive(Debug, Clone, Copy)]
enum Backend {
    Local,
    Redis,
}

/// Starts a server on `backend`; `None` when Redis is not configured (the test skips, or
/// fails under `ROLLCALL_REQUIRE_SERVICES=1`).
async fn start(backend: Backend) -> Option<TestServer> {
    let mut cfg = support::fast_config(10_000, 3);
    if let Backend::Redis = backend {
        let url = service_url("REDIS_URL")?;
        cfg.node_id = unique_name("bus");
        cfg.redis = Some(RedisSettings {
            url,
            cluster: false,
            prefix: unique_name("rc_bus"),
            node_timeout: Millis(3000),
        });
    }
    let s = support::start(cfg).await;
    // The Redis bus subscribes asynchronously; readiness tells when it answers.
    if let Backend::Redis = backend {
        let (_, body) = support::http(&s.http_url(), "GET", "/readyz", "").await;
        assert!(body.contains(r#""redis":"ok""#), "{body}");
    }
    Some(s)
}

async fn join(s: &TestServer, key: &str, topic: &str, broadcast_self: bool) -> Ws {
    let mut ws = support::connect(&s.ws_url("2.0.0")).await;
    let msg = json!(["1", "1", format!("realtime:{topic}"), "phx_join",
        {"config": {"presence": {"key": key, "enabled": true}, "broadcast": {"self": broadcast_self}}}]);
    support::send(&mut ws, msg).await;
    let reply = support::until(&mut ws, 5, |v| v[3] == "phx_reply").await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    ws
}

/// Tracks `meta` and returns the `presence_diff` frames that arrived before the reply.
async fn track(ws: &mut Ws, topic: &str, meta: Value) -> Vec<Value> {
    let msg = json!(["1", "2", format!("realtime:{topic}"), "presence",
        {"type": "presence", "event": "track", "payload": meta}]);
    support::send(ws, msg).await;
    let mut diffs = Vec::new();
    loop {
        let v = support::next_frame(ws, 5).await;
        if v[3] == "presence_diff" {
            diffs.push(v);
        } else if v[3] == "phx_reply" && v[1] == "2" {
            return diffs;
        }
    }
}

/// Every frame of `event` that arrives within `quiet` (the contract: nothing more comes).
async fn drain(ws: &mut Ws, event: &str, quiet: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + quiet;
    while let Ok(v) = tokio::time::timeout_at(deadline, support::next_frame(ws, 60)).await {
        if v[3] == event {
            got.push(v);
        }
    }
    got
}

fn keys(payload: &Value) -> Vec<String> {
    let mut k: Vec<String> = payload
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

const QUIET: Duration = Duration::from_millis(600);

async fn diffs_reach_each_subscriber_once(b: Backend) {
    let Some(s) = start(b).await else { return };
    let mut alice = join(&s, "alice", "room", false).await;
    let mut diffs = track(&mut alice, "room", json!({"name": "alice"})).await;
    let mut bob = join(&s, "bob", "room", false).await;
    let state = support::until(&mut bob, 5, |v| v[3] == "presence_state").await;
    assert_eq!(keys(&state[4]), ["alice"], "{b:?}: {state}");
    track(&mut bob, "room", json!({"name": "bob"})).await;
    // alice: her own join diff, then bob's, each exactly once.
    diffs.extend(drain(&mut alice, "presence_diff", QUIET).await);
    let joins: Vec<Vec<String>> = diffs.iter().map(|d| keys(&d[4]["joins"])).collect();
    assert_eq!(joins, [vec!["alice"], vec!["bob"]], "{b:?}: {diffs:?}");
    drop(bob);
    let leave = support::until(&mut alice, 5, |v| v[3] == "presence_diff").await;
    let mut diffs = vec![leave];
    diffs.extend(drain(&mut alice, "presence_diff", QUIET).await);
    let leaves: Vec<Vec<String>> = diffs.iter().map(|d| keys(&d[4]["leaves"])).collect();
    assert_eq!(leaves, [vec!["bob"]], "{b:?}: {diffs:?}");
    s.shutdown().await.unwrap();
}

async fn broadcasts_reach_others_once(b: Backend) {
    let Some(s) = start(b).await else { return };
    let mut a = join(&s, "a", "chat", false).await;
    let mut c = join(&s, "c", "chat", true).await;
    let msg = json!(["1", "3", "realtime:chat", "broadcast",
        {"type": "broadcast", "event": "hi", "payload": {"n": 1}}]);
    support::send(&mut a, msg).await;
    let body = json!({"messages": [{"topic": "chat", "event": "rest", "payload": {"n": 2}}]});
    let (status, text) =
        support::http(&s.http_url(), "POST", "/api/broadcast", &body.to_string()).await;
    assert_eq!(status, 202, "{text}");
    let got = drain(&mut c, "broadcast", QUIET).await;
    let events: Vec<&str> = got
        .iter()
        .map(|v| v[4]["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["hi", "rest"], "{b:?}: {got:?}");
    // the sender (self: false) gets only the REST one
    let got = drain(&mut a, "broadcast", QUIET).await;
    let events: Vec<&str> = got
        .iter()
        .map(|v| v[4]["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["rest"], "{b:?}: {got:?}");
    s.shutdown().await.unwrap();
}

async fn http_views_match_the_socket(b: Backend) {
    let Some(s) = start(b).await else { return };
    let mut a = join(&s, "ann", "lobby", false).await;
    track(&mut a, "lobby", json!({"device": "phone"})).await;
    let mut late = join(&s, "late", "lobby", false).await;
    let state = support::until(&mut late, 5, |v| v[3] == "presence_state").await;
    let (status, text) =
        support::http(&s.http_url(), "GET", "/api/channels/lobby/presence", "").await;
    assert_eq!(status, 200, "{text}");
    let http_state: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(keys(&http_state), keys(&state[4]), "{b:?}");
    assert_eq!(
        http_state["ann"]["metas"][0]["device"], "phone",
        "{b:?}: {http_state}"
    );
    let (status, text) = support::http(
        &s.http_url(),
        "POST",
        "/api/presence/status",
        r#"{"keys":["ann","nobody"]}"#,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["statuses"]["ann"]["status"], "online", "{b:?}: {v}");
    assert_eq!(v["statuses"]["nobody"]["status"], "offline", "{b:?}: {v}");
    let (status, text) = support::http(&s.http_url(), "GET", "/readyz", "").await;
    assert_eq!(status, 200, "{text}");
    let expected = match b {
        Backend::Local => r#""redis":"off""#,
        Backend::Redis => r#""redis":"ok""#,
    };
    assert!(text.contains(expected), "{b:?}: {text}");
    s.shutdown().await.unwrap();
}

macro_rules! contract {
    ($($name:ident),*) => {
        mod local {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Local).await
            })*
        }
        mod redis {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Redis).await
            })*
        }
    };
}

contract!(
    diffs_reach_each_subscriber_once,
    broadcasts_reach_others_once,
    http_views_match_the_socket
);
