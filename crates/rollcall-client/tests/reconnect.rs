//! Reconnect with re-join and re-track. realtime-js does not re-track after a reconnect (the
//! app must, in its SUBSCRIBED callback); a presence client that forgets to do so silently
//! shows its user offline after every network blip or server restart. These tests kill the
//! socket from the server side, and restart the server on the same port, and check that the
//! client's presence comes back without the app doing anything.

mod support;

use rollcall_client::{ChannelConfig, ChannelEvent, Client, Status};
use serde_json::json;
use support::{client_config, fast_config, is_join, next_change, next_event, start};

#[tokio::test]
async fn a_server_side_kill_is_followed_by_reconnect_rejoin_and_retrack() {
    let server = start(fast_config(1000, 3)).await;
    let a = Client::connect(client_config(&server)).unwrap();
    let mut ca = a.join("rc", ChannelConfig::with_key("a")).await.unwrap();
    ca.track(json!({"name": "A"})).await.unwrap();
    next_event(&mut ca, "own join", |e| is_join(e, "a")).await;
    let mut conn = a.connection();

    server.kill_all_connections();

    tokio::time::timeout(support::WAIT, conn.wait_for(|c| c.opens >= 2 && c.open))
        .await
        .expect("reconnected")
        .unwrap();
    next_event(&mut ca, "subscribed again", |e| {
        *e == ChannelEvent::Subscribed
    })
    .await;
    // a fresh observer sees the re-tracked presence with its meta
    let o = Client::connect(client_config(&server)).unwrap();
    let mut co = o.join("rc", ChannelConfig::with_key("o")).await.unwrap();
    next_event(&mut co, "a re-tracked", |e| is_join(e, "a")).await;
    assert_eq!(co.presence_state()["a"][0].meta["name"], "A");
    assert_eq!(
        co.presence_state()["a"].len(),
        1,
        "the old presence left with the old socket"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_restart_on_the_same_port_brings_the_presence_back() {
    let server = start(fast_config(1000, 3)).await;
    let addr = server.addr;
    let a = Client::connect(client_config(&server)).unwrap();
    let b = Client::connect(client_config(&server)).unwrap();
    let ca = a
        .join("restart", ChannelConfig::with_key("a"))
        .await
        .unwrap();
    ca.track(json!({"n": 1})).await.unwrap();
    let _cb = b
        .join("restart", ChannelConfig::with_key("b"))
        .await
        .unwrap();
    let mut watch = b.watch(["a"]).await.unwrap();
    if watch.initial()["a"] == Status::Offline {
        assert_eq!(next_change(&mut watch).await.status, Status::Online);
    }
    let mut conn = a.connection();

    server.shutdown().await;
    tokio::time::timeout(support::WAIT, conn.wait_for(|c| !c.open))
        .await
        .unwrap()
        .unwrap();
    let mut cfg = fast_config(1000, 3);
    cfg.bind = addr;
    let server = start(cfg).await;

    tokio::time::timeout(support::WAIT, conn.wait_for(|c| c.open))
        .await
        .unwrap()
        .unwrap();
    // b's map is re-synced from the new server; a is back once it re-tracks. Depending on the
    // order of the two rejoins, b may see a leave and come back: both are real changes.
    let deadline = tokio::time::Instant::now() + support::WAIT;
    loop {
        let state = _cb.presence_state();
        if state
            .get("a")
            .is_some_and(|p| p.len() == 1 && p[0].meta["n"] == 1)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a came back: {state:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut last = None;
    while let Some(c) = watch.try_recv() {
        assert_ne!(Some(c.status), last, "no repeated status");
        last = Some(c.status);
    }
    assert!(last.is_none() || last == Some(Status::Online));
    server.shutdown().await;
}
