//! The status-watch extension over real sockets: `watch` / `unwatch` on
//! `realtime:rollcall:status`, `status` pushes only on real changes, `offline_grace` respected,
//! bounds and the `status_read` rule.
//!
//! "Nothing was pushed" is never checked by waiting: a later, known change (a sentinel key)
//! must be the next frame to arrive.

mod support;

use std::sync::Arc;

use jsonwebtoken::{EncodingKey, Header, encode};
use rollcall_core::Millis;
use rollcall_server::ServerConfig;
use rollcall_server::config::Auth;
use rollcall_server::config::StatusRead;
use serde_json::{Value, json};
use support::{Ws, connect, next_frame, send, until};

const STATUS: &str = "realtime:rollcall:status";
const GRACE_MS: u64 = 400;

fn config() -> ServerConfig {
    let mut cfg = support::fast_config(1000, 3);
    cfg.core.offline_grace = Millis(GRACE_MS);
    cfg
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Joins the status topic and expects `ok`.
async fn join_status(ws: &mut Ws) {
    send(ws, json!(["s", "s", STATUS, "phx_join", {"config": {}}])).await;
    let r = until(ws, 5, |v| v[3] == "phx_reply" && v[1] == "s").await;
    assert_eq!(r[4]["status"], "ok", "{r}");
}

/// Sends `event` with `keys`; returns the reply.
async fn keys_event(ws: &mut Ws, event: &str, msg_ref: &str, keys: Value) -> Value {
    send(ws, json!(["s", msg_ref, STATUS, event, {"keys": keys}])).await;
    until(ws, 5, |v| v[3] == "phx_reply" && v[1] == msg_ref).await
}

/// A socket whose presence `key` is tracked in `realtime:room`.
async fn present(url: &str, key: &str) -> Ws {
    let mut ws = connect(url).await;
    send(
        &mut ws,
        json!(["1", "1", "realtime:room", "phx_join", {"config": {"presence": {"key": key}}}]),
    )
    .await;
    until(&mut ws, 5, |v| v[3] == "phx_reply" && v[1] == "1").await;
    send(
        &mut ws,
        json!(["1", "2", "realtime:room", "presence", {"type": "presence", "event": "track", "payload": {}}]),
    )
    .await;
    let r = until(&mut ws, 5, |v| v[3] == "phx_reply" && v[1] == "2").await;
    assert_eq!(r[4]["status"], "ok", "{r}");
    ws
}

/// The next frame, which must be a `status` push on the status topic.
async fn next_status(ws: &mut Ws) -> Value {
    let v = next_frame(ws, 5).await;
    assert_eq!(v[2], STATUS, "{v}");
    assert_eq!(v[3], "status", "a status push, nothing else: {v}");
    v[4].clone()
}

#[tokio::test]
async fn watch_answers_current_statuses_then_pushes_only_real_changes() {
    let s = support::start(config()).await;
    let url = s.ws_url("2.0.0");
    let _online = present(&url, "early").await;
    let mut w = connect(&url).await;
    join_status(&mut w).await;
    let r = keys_event(&mut w, "watch", "w1", json!(["alice", "early", "alice"])).await;
    assert_eq!(r[4]["status"], "ok", "{r}");
    let statuses = r[4]["response"]["statuses"].as_array().unwrap().clone();
    assert_eq!(statuses.len(), 2, "deduplicated: {r}");
    let alice = statuses.iter().find(|s| s["key"] == "alice").unwrap();
    assert_eq!(alice["status"], "offline");
    assert_eq!(alice["last_seen"], Value::Null, "never seen");
    let early = statuses.iter().find(|s| s["key"] == "early").unwrap();
    assert_eq!(early["status"], "online");
    assert!(early["last_seen"].as_u64().unwrap() > 1_600_000_000_000);

    // alice comes online: one push.
    let alice_ws = present(&url, "alice").await;
    let p = next_status(&mut w).await;
    assert_eq!(
        (&p["key"], &p["status"]),
        (&json!("alice"), &json!("online"))
    );
    assert!(p["last_seen"].is_u64());

    // A reload within offline_grace: close and come back. No offline, no online.
    drop(alice_ws);
    let alice_again = present(&url, "alice").await;
    // Sentinel: bob comes online; his push must be the very next frame.
    let bob = present(&url, "bob").await;
    let r = keys_event(&mut w, "watch", "w2", json!(["bob"])).await;
    assert_eq!(r[4]["response"]["statuses"][0]["status"], "online", "{r}");
    drop(bob);
    let p = next_status(&mut w).await;
    assert_eq!(
        (&p["key"], &p["status"]),
        (&json!("bob"), &json!("offline")),
        "the reload of alice produced nothing: {p}"
    );

    // A real disconnect: exactly one offline, after the grace, with last_seen.
    let closed_at = unix_ms();
    drop(alice_again);
    let p = next_status(&mut w).await;
    let pushed_at = unix_ms();
    assert_eq!(
        (&p["key"], &p["status"]),
        (&json!("alice"), &json!("offline"))
    );
    let last_seen = p["last_seen"].as_u64().expect("last_seen");
    assert!(
        last_seen + 50 >= closed_at,
        "last seen when the socket closed"
    );
    assert!(
        pushed_at + 50 >= last_seen + GRACE_MS,
        "not before offline_grace: left at {last_seen}, pushed by {pushed_at}"
    );
    let _bob = present(&url, "bob").await;
    let p = next_status(&mut w).await;
    assert_eq!(
        (&p["key"], &p["status"]),
        (&json!("bob"), &json!("online")),
        "one offline only: {p}"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn unwatch_and_leaving_the_topic_stop_pushes() {
    let s = support::start(config()).await;
    let url = s.ws_url("2.0.0");
    let mut w = connect(&s.ws_url("1.0.0")).await;
    send(
        &mut w,
        json!({"topic": STATUS, "event": "phx_join", "payload": {}, "ref": "s", "join_ref": "s"}),
    )
    .await;
    until(&mut w, 5, |v| v["event"] == "phx_reply").await;
    send(&mut w, json!({"topic": STATUS, "event": "watch", "payload": {"keys": ["a", "b"]}, "ref": "w", "join_ref": "s"})).await;
    let r = until(&mut w, 5, |v| v["ref"] == "w").await;
    assert_eq!(r["payload"]["status"], "ok", "{r}");
    send(&mut w, json!({"topic": STATUS, "event": "unwatch", "payload": {"keys": ["a"]}, "ref": "u", "join_ref": "s"})).await;
    let r = until(&mut w, 5, |v| v["ref"] == "u").await;
    assert_eq!(r["payload"]["status"], "ok", "{r}");
    assert_eq!(s.hub.status_watches(), 1);
    let _a = present(&url, "a").await;
    let _b = present(&url, "b").await;
    let p = next_frame(&mut w, 5).await;
    assert_eq!(p["event"], "status", "{p}");
    assert_eq!(p["payload"]["key"], "b", "a is no longer watched: {p}");
    assert_eq!(p["topic"], STATUS, "v1 object frames: {p}");
    send(
        &mut w,
        json!({"topic": STATUS, "event": "phx_leave", "payload": {}, "ref": "l", "join_ref": "s"}),
    )
    .await;
    until(&mut w, 5, |v| v["event"] == "phx_close").await;
    assert!(s.hub.status_watches() == 0, "leaving drops the watches");
    drop(w);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn watch_requests_are_bounded_and_checked() {
    let mut cfg = config();
    cfg.core.max_batch_keys = 3;
    cfg.core.max_key_bytes = 8;
    let s = support::start(cfg).await;
    let mut w = connect(&s.ws_url("2.0.0")).await;
    // Not joined yet: like any channel event.
    let r = keys_event(&mut w, "watch", "0", json!(["a"])).await;
    assert_eq!(r[4]["response"]["reason"], "unmatched topic", "{r}");
    join_status(&mut w).await;
    let reason = |r: &Value| {
        r[4]["response"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let r = keys_event(&mut w, "watch", "1", json!(["a", "b", "c", "d"])).await;
    assert!(reason(&r).starts_with("TooManyWatchedKeys"), "{r}");
    let r = keys_event(&mut w, "watch", "2", json!(["a", "b"])).await;
    assert_eq!(r[4]["status"], "ok", "{r}");
    let r = keys_event(&mut w, "watch", "3", json!(["c", "d"])).await;
    assert!(
        reason(&r).starts_with("TooManyWatchedKeys"),
        "3 in all: {r}"
    );
    let r = keys_event(&mut w, "watch", "4", json!(["a", "c"])).await;
    assert_eq!(r[4]["status"], "ok", "a is already watched: {r}");
    let r = keys_event(&mut w, "watch", "5", json!(["123456789"])).await;
    assert!(reason(&r).starts_with("WatchKeyTooLong"), "{r}");
    let r = keys_event(&mut w, "watch", "6", json!("a")).await;
    assert!(reason(&r).starts_with("InvalidWatchPayload"), "{r}");
    send(
        &mut w,
        json!(["s", "7", STATUS, "broadcast", {"event": "x", "payload": {}}]),
    )
    .await;
    let r = until(&mut w, 5, |v| v[1] == "7").await;
    assert!(
        reason(&r).starts_with("UnknownEvent"),
        "no broadcast on the status topic: {r}"
    );
    assert_eq!(s.hub.status_watches(), 3);
    drop(w);
    s.shutdown().await.unwrap();
}

const SECRET: &str = "rollcall-watch-secret";

fn token(role: &str) -> String {
    let exp = unix_ms() / 1000 + 3600;
    encode(
        &Header::default(),
        &json!({"role": role, "sub": "u1", "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn status_read_service_role_limits_who_may_watch() {
    let mut cfg = config();
    cfg.auth = Arc::new(Auth::new(Some(SECRET), None, None).unwrap());
    cfg.http.status_read = StatusRead::ServiceRole;
    let s = support::start(cfg).await;
    let url = |t: &str| format!("ws://{}/realtime/v1/websocket?apikey={t}&vsn=2.0.0", s.addr);
    let mut user = connect(&url(&token("authenticated"))).await;
    send(
        &mut user,
        json!(["s", "s", STATUS, "phx_join", {"config": {}}]),
    )
    .await;
    let r = until(&mut user, 5, |v| v[1] == "s").await;
    assert_eq!(r[4]["status"], "error", "{r}");
    assert!(
        r[4]["response"]["reason"]
            .as_str()
            .unwrap()
            .contains("status_read"),
        "{r}"
    );
    // A bad token in the join payload is refused as on any channel.
    send(
        &mut user,
        json!(["t", "t", STATUS, "phx_join", {"config": {}, "access_token": "nope"}]),
    )
    .await;
    let r = until(&mut user, 5, |v| v[1] == "t").await;
    assert_eq!(r[4]["status"], "error", "{r}");
    let mut service = connect(&url(&token("service_role"))).await;
    join_status(&mut service).await;
    let r = keys_event(&mut service, "watch", "w", json!(["u1"])).await;
    assert_eq!(r[4]["status"], "ok", "{r}");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn max_watched_keys_bounds_one_socket() {
    let mut cfg = config();
    cfg.limits.max_watched_keys = 2;
    let s = support::start(cfg).await;
    let mut w = connect(&s.ws_url("2.0.0")).await;
    join_status(&mut w).await;
    let r = keys_event(&mut w, "watch", "1", json!(["a", "b"])).await;
    assert_eq!(r[4]["status"], "ok", "{r}");
    let r = keys_event(&mut w, "watch", "2", json!(["c"])).await;
    let reason = r[4]["response"]["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("TooManyWatchedKeys: a socket watches at most 2 keys"),
        "{r}"
    );
    drop(w);
    s.shutdown().await.unwrap();
}
