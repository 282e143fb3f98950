//! The Rust client against a real in-process Rollcall server: presence sync, broadcast,
//! heartbeats, vsn 1.0.0, and the join/leave/sync order realtime-js produces.

mod support;

use std::time::Duration;

use rollcall_client::{BroadcastBody, ChannelConfig, ChannelEvent, Client, PresenceEvent, Vsn};
use serde_json::json;
use support::{client_config, fast_config, is_join, is_leave, next_event, start};

#[tokio::test]
async fn a_track_is_seen_by_another_member_as_join_then_sync_and_untrack_as_leave() {
    let server = start(fast_config(1000, 3)).await;
    let a = Client::connect(client_config(&server)).unwrap();
    let b = Client::connect(client_config(&server)).unwrap();
    let mut cb = b.join("room1", ChannelConfig::with_key("b")).await.unwrap();
    next_event(&mut cb, "b's first sync", |e| {
        matches!(e, ChannelEvent::Presence(PresenceEvent::Sync))
    })
    .await;
    let ca = a.join("room1", ChannelConfig::with_key("a")).await.unwrap();
    ca.track(json!({"status": "online"})).await.unwrap();

    let join = next_event(&mut cb, "join a", |e| is_join(e, "a")).await;
    let ChannelEvent::Presence(PresenceEvent::Join {
        current_presences,
        new_presences,
        ..
    }) = join
    else {
        unreachable!()
    };
    assert!(current_presences.is_empty());
    assert_eq!(new_presences[0].meta["status"], "online");
    assert!(!new_presences[0].presence_ref.is_empty());
    let next = cb.recv().await.unwrap();
    assert_eq!(next, ChannelEvent::Presence(PresenceEvent::Sync));
    assert_eq!(cb.presence_state()["a"].len(), 1);

    // update: join (new), leave (old), one sync; the ref changes
    let old_ref = cb.presence_state()["a"][0].presence_ref.clone();
    ca.track(json!({"status": "away"})).await.unwrap();
    next_event(&mut cb, "update join", |e| is_join(e, "a")).await;
    let leave = cb.recv().await.unwrap();
    assert!(
        is_leave(&leave, "a"),
        "leave follows the update's join: {leave:?}"
    );
    assert_eq!(
        cb.recv().await.unwrap(),
        ChannelEvent::Presence(PresenceEvent::Sync)
    );
    let state = cb.presence_state();
    assert_eq!(state["a"].len(), 1);
    assert_eq!(state["a"][0].meta["status"], "away");
    assert_ne!(state["a"][0].presence_ref, old_ref);

    ca.untrack().await.unwrap();
    next_event(&mut cb, "leave a", |e| is_leave(e, "a")).await;
    assert!(!cb.presence_state().contains_key("a"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_late_joiner_gets_the_state_as_joins() {
    let server = start(fast_config(1000, 3)).await;
    let a = Client::connect(client_config(&server)).unwrap();
    let ca = a.join("late", ChannelConfig::with_key("a")).await.unwrap();
    ca.track(json!({"n": 1})).await.unwrap();
    let c = Client::connect(client_config(&server)).unwrap();
    let mut cc = c.join("late", ChannelConfig::with_key("c")).await.unwrap();
    next_event(&mut cc, "join a from state", |e| is_join(e, "a")).await;
    next_event(&mut cc, "sync", |e| {
        matches!(e, ChannelEvent::Presence(PresenceEvent::Sync))
    })
    .await;
    assert_eq!(cc.presence_state()["a"][0].meta["n"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn broadcasts_reach_others_and_self_only_with_broadcast_self() {
    let server = start(fast_config(1000, 3)).await;
    let a = Client::connect(client_config(&server)).unwrap();
    let b = Client::connect(client_config(&server)).unwrap();
    let mut cb = b.join("bc", ChannelConfig::default()).await.unwrap();
    let mut cfg = ChannelConfig::default();
    cfg.broadcast_self = true;
    cfg.broadcast_ack = true;
    let mut ca = a.join("bc", cfg).await.unwrap();

    ca.broadcast("cursor", json!({"x": 1})).await.unwrap();
    for ch in [&mut cb, &mut ca] {
        let e = next_event(ch, "cursor", |e| matches!(e, ChannelEvent::Broadcast(_))).await;
        let ChannelEvent::Broadcast(b) = e else {
            unreachable!()
        };
        assert_eq!(b.event, "cursor");
        assert_eq!(b.payload, BroadcastBody::Json(json!({"x": 1})));
    }
    // b has self off: its own broadcast reaches a only
    cb.broadcast("ping", json!(1)).await.unwrap();
    next_event(
        &mut ca,
        "ping",
        |e| matches!(e, ChannelEvent::Broadcast(b) if b.event == "ping"),
    )
    .await;
    let own = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            if let Some(ChannelEvent::Broadcast(_)) = cb.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(own.is_err(), "b must not receive its own broadcast");
    server.shutdown().await;
}

#[tokio::test]
async fn heartbeats_keep_an_idle_connection_past_the_server_timeout() {
    // the server drops connections silent for 200 ms × 3; the client beats every 150 ms
    let server = start(fast_config(200, 3)).await;
    let mut cfg = client_config(&server);
    cfg.heartbeat_interval = Duration::from_millis(150);
    let a = Client::connect(cfg).unwrap();
    let ca = a.join("hb", ChannelConfig::with_key("a")).await.unwrap();
    ca.track(json!({})).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let conn = *a.connection().borrow();
    assert!(conn.open);
    assert_eq!(conn.opens, 1, "never reconnected");
    assert_eq!(ca.presence_state()["a"].len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn vsn_1_clients_sync_presence_with_vsn_2_clients() {
    let server = start(fast_config(1000, 3)).await;
    let mut cfg = client_config(&server);
    cfg.vsn = Vsn::V1;
    let old = Client::connect(cfg).unwrap();
    let new = Client::connect(client_config(&server)).unwrap();
    let mut c1 = old
        .join("mixed", ChannelConfig::with_key("v1"))
        .await
        .unwrap();
    let mut c2 = new
        .join("mixed", ChannelConfig::with_key("v2"))
        .await
        .unwrap();
    c1.track(json!({"v": 1})).await.unwrap();
    c2.track(json!({"v": 2})).await.unwrap();
    next_event(&mut c1, "v1 sees v2", |e| is_join(e, "v2")).await;
    next_event(&mut c2, "v2 sees v1", |e| is_join(e, "v1")).await;
    c2.broadcast("hi", json!("there")).await.unwrap();
    next_event(&mut c1, "v1 gets the broadcast", |e| {
        matches!(e, ChannelEvent::Broadcast(_))
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn leaving_a_channel_removes_the_presence_for_others() {
    let server = start(fast_config(1000, 3)).await;
    let a = Client::connect(client_config(&server)).unwrap();
    let b = Client::connect(client_config(&server)).unwrap();
    let mut cb = b.join("leave", ChannelConfig::with_key("b")).await.unwrap();
    let ca = a.join("leave", ChannelConfig::with_key("a")).await.unwrap();
    ca.track(json!({})).await.unwrap();
    next_event(&mut cb, "join a", |e| is_join(e, "a")).await;
    ca.leave().await.unwrap();
    next_event(&mut cb, "leave a", |e| is_leave(e, "a")).await;
    // a disconnects entirely: operations on the client now fail
    a.disconnect().await;
    assert!(a.join("other", ChannelConfig::default()).await.is_err());
    server.shutdown().await;
}
