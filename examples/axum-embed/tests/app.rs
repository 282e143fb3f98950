//! The example app on a loopback port: its own routes, Rollcall's routes, and its route that
//! reads the presence engine, seen by a real client; then a clean shutdown.

use std::time::Duration;

use rollcall_client::{ChannelConfig, Client, ClientConfig};
use rollcall_server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over HTTP/1.1; the status code and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_routes_beside_rollcall_and_a_member_list_from_the_engine() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder().build().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(example_axum_embed::run(listener, server, async {
        let _ = stop_rx.await;
    }));

    assert_eq!(
        get(addr, "/hello").await,
        (200, "hello from the app".into())
    );
    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(
        get(addr, "/app/rooms/lobby/members").await,
        (200, "[]".into())
    );

    let client =
        Client::connect(ClientConfig::new(format!("ws://{addr}/realtime/v1"), "any")).unwrap();
    let room = client
        .join("lobby", ChannelConfig::with_key("ann"))
        .await
        .unwrap();
    room.track(serde_json::json!({"name": "Ann"}))
        .await
        .unwrap();
    // The track reply comes after the engine applied it.
    assert_eq!(
        get(addr, "/app/rooms/lobby/members").await,
        (200, r#"["ann"]"#.into())
    );

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("shut down within the deadline")
        .unwrap()
        .unwrap();
}
