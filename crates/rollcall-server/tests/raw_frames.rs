//! Raw-frame tests with tokio-tungstenite: bad input gets an error reply or a close with a
//! reason, never a crash; timeouts, REST errors and graceful shutdown behave as documented.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use support::{Ws, connect, http, send};

async fn next(ws: &mut Ws) -> Value {
    support::next_frame(ws, 2).await
}

async fn until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    support::until(ws, 2, pred).await
}

fn join(topic: &str, jr: &str, key: &str) -> Value {
    json!([jr, jr, topic, "phx_join", {"config": {"broadcast": {"ack": false, "self": false},
        "presence": {"key": key, "enabled": true}, "postgres_changes": [], "private": false}}])
}

#[tokio::test]
async fn malformed_frames_get_an_error_reply_and_the_socket_stays_open() {
    let server = support::start(support::fast_config(1000, 3)).await;
    let mut ws = connect(&server.ws_url("2.0.0")).await;
    for bad in [
        "not json",
        "[1,2]",
        "{\"topic\":\"x\"}",
        "[null,\"1\",\"phoenix\",\"heartbeat\"]",
    ] {
        ws.send(Message::text(bad)).await.unwrap();
        let r = next(&mut ws).await;
        assert_eq!(r[3], "phx_reply", "{bad}: {r}");
        assert_eq!(r[4]["status"], "error");
        assert!(
            r[4]["response"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("malformed message"),
            "{r}"
        );
    }
    ws.send(Message::binary(vec![9u8, 1, 2])).await.unwrap();
    let r = next(&mut ws).await;
    assert!(
        r[4]["response"]["reason"]
            .as_str()
            .unwrap()
            .contains("kind"),
        "{r}"
    );
    send(&mut ws, json!([null, "7", "phoenix", "heartbeat", {}])).await;
    assert_eq!(
        next(&mut ws).await,
        json!([null, "7", "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );
    assert!(server.hub.metrics().errors_of("malformed_message") >= 5);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_topics_and_events_get_error_replies() {
    let server = support::start(support::fast_config(1000, 3)).await;
    let mut ws = connect(&server.ws_url("2.0.0")).await;
    send(&mut ws, json!(["1", "1", "foo:bar", "phx_join", {}])).await;
    assert_eq!(
        next(&mut ws).await[4],
        json!({"status": "error", "response": {"reason": "unmatched topic"}})
    );
    send(&mut ws, json!(["2", "2", "realtime:", "phx_join", {}])).await;
    assert_eq!(
        next(&mut ws).await[4]["response"]["reason"],
        "TopicNameRequired: You must provide a topic name"
    );
    send(&mut ws, join("realtime:r", "3", "k")).await;
    assert_eq!(next(&mut ws).await[4]["status"], "ok");
    send(&mut ws, json!(["3", "4", "realtime:r", "dance", {}])).await;
    let r = until(&mut ws, |v| v[1] == "4").await;
    assert_eq!(r[4]["status"], "error");
    assert!(
        r[4]["response"]["reason"]
            .as_str()
            .unwrap()
            .contains("dance")
    );
    send(&mut ws, json!(["3", "5", "realtime:r", "presence", {"type": "presence", "event": "track", "payload": [1]}])).await;
    let r = until(&mut ws, |v| v[1] == "5").await;
    assert_eq!(
        r[4],
        json!({"status": "error", "response": {"reason": "Presence track payload must be a map"}})
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_oversized_frame_closes_the_socket_with_1009() {
    let mut cfg = support::fast_config(1000, 3);
    cfg.max_frame_bytes = 1024;
    let server = support::start(cfg).await;
    let mut ws = connect(&server.ws_url("2.0.0")).await;
    let big = format!(
        "[null,\"1\",\"phoenix\",\"heartbeat\",{{\"x\":\"{}\"}}]",
        "a".repeat(4096)
    );
    ws.send(Message::text(big)).await.unwrap();
    let close = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => return Some(f),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed within 2 s")
    .expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    assert_eq!(server.hub.metrics().errors_of("frame_too_large"), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_oversized_meta_ends_the_channel_with_a_system_error() {
    let mut cfg = support::fast_config(1000, 3);
    cfg.core.max_meta_bytes = 64;
    let server = support::start(cfg).await;
    let mut ws = connect(&server.ws_url("2.0.0")).await;
    send(&mut ws, join("realtime:m", "1", "k")).await;
    until(&mut ws, |v| v[3] == "presence_state").await;
    let meta = json!({"blob": "x".repeat(100)});
    send(&mut ws, json!(["1", "2", "realtime:m", "presence", {"type": "presence", "event": "track", "payload": meta}])).await;
    let sys = until(&mut ws, |v| v[3] == "system").await;
    assert_eq!(sys[4]["status"], "error");
    assert_eq!(sys[4]["message"], "Track message size exceeded");
    let close = until(&mut ws, |v| v[3] == "phx_close").await;
    assert_eq!(close[1], "1", "phx_close carries ref = join_ref");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_vsn_is_refused_with_403() {
    let server = support::start(support::fast_config(1000, 3)).await;
    let err = connect_async(server.ws_url("3.0.0")).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 403),
        other => panic!("expected HTTP 403, got {other:?}"),
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_silent_socket_is_closed_and_its_presence_leaves_once() {
    let server = support::start(support::fast_config(200, 2)).await;
    let mut observer = connect(&server.ws_url("2.0.0")).await;
    send(&mut observer, join("realtime:t", "1", "observer")).await;
    until(&mut observer, |v| v[3] == "presence_state").await;
    let mut silent = connect(&server.ws_url("2.0.0")).await;
    send(&mut silent, join("realtime:t", "1", "ghost")).await;
    send(&mut silent, json!(["1", "2", "realtime:t", "presence", {"type": "presence", "event": "track", "payload": {"a": 1}}])).await;
    until(&mut observer, |v| {
        v[3] == "presence_diff" && v[4]["joins"].get("ghost").is_some()
    })
    .await;
    // keep the observer alive with heartbeats while waiting for the ghost's leave
    let mut leaves = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    let mut n = 10;
    while tokio::time::Instant::now() < deadline {
        n += 1;
        send(
            &mut observer,
            json!([null, n.to_string(), "phoenix", "heartbeat", {}]),
        )
        .await;
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(100), observer.next()).await
        {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v[3] == "presence_diff" && v[4]["leaves"].get("ghost").is_some() {
                leaves += 1;
            }
        }
    }
    assert_eq!(leaves, 1, "exactly one leave for the silent client");
    assert!(
        server
            .hub
            .metrics()
            .timeouts
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_sends_phx_close_to_every_channel() {
    let server = support::start(support::fast_config(1000, 3)).await;
    let mut ws = connect(&server.ws_url("1.0.0")).await;
    send(&mut ws, json!({"topic": "realtime:s", "event": "phx_join", "payload": {"config": {}}, "ref": "1", "join_ref": "1"})).await;
    assert_eq!(next(&mut ws).await["payload"]["status"], "ok");
    let stop = tokio::spawn(server.shutdown());
    let close = until(&mut ws, |v| v["event"] == "phx_close").await;
    assert_eq!(close["topic"], "realtime:s");
    stop.await.unwrap().unwrap();
}

#[tokio::test]
async fn http_api_reports_status_state_and_rejects_bad_bodies() {
    let server = support::start(support::fast_config(1000, 3)).await;
    let mut ws = connect(&server.ws_url("2.0.0")).await;
    send(&mut ws, join("realtime:h", "1", "alice")).await;
    send(&mut ws, json!(["1", "2", "realtime:h", "presence", {"type": "presence", "event": "track", "payload": {"s": 1}}])).await;
    until(&mut ws, |v| v[1] == "2").await;
    let base = server.http_url();
    let (status, body) = http(
        &base,
        "POST",
        "/api/presence/status",
        r#"{"keys":["alice","bob"]}"#,
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["statuses"]["alice"]["status"], "online");
    assert_eq!(v["statuses"]["alice"]["connections"], 1);
    assert_eq!(v["statuses"]["bob"]["status"], "offline");
    assert!(v["statuses"]["bob"]["last_seen"].is_null());
    let (status, body) = http(&base, "GET", "/api/channels/h/presence", "").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["alice"]["metas"][0]["s"], 1);
    let (status, body) = http(&base, "POST", "/api/presence/status", "{nope").await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid JSON body"), "{body}");
    let (status, _) = http(
        &base,
        "POST",
        "/api/broadcast",
        r#"{"messages":[{"topic":"","event":"e"}]}"#,
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = http(
        &base,
        "POST",
        "/api/broadcast",
        r#"{"messages":[{"topic":"h","event":"e","payload":{"v":1}}]}"#,
    )
    .await;
    assert_eq!(status, 202);
    let b = until(&mut ws, |v| v[3] == "broadcast").await;
    assert_eq!(
        b[4],
        json!({"type": "broadcast", "event": "e", "payload": {"v": 1}})
    );
    let (status, body) = http(&base, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(body.contains("rollcall_presences 1"), "{body}");
    let (status, body) = http(&base, "GET", "/nope", "").await;
    assert_eq!((status, body.contains("error")), (404, true));
    server.shutdown().await.unwrap();
}
