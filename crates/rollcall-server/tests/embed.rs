//! Embedding: the server's routes mounted in someone else's axum app, served by their
//! `axum::serve`, with their own routes beside Rollcall's.

mod support;

use std::net::SocketAddr;

use rollcall_server::Server;
use serde_json::json;

#[tokio::test]
async fn the_routes_mount_in_an_axum_app_beside_its_own() {
    let server = Server::builder()
        .config(support::fast_config(1000, 3))
        .build()
        .unwrap();
    server.start().await.unwrap();
    let app = axum::Router::new()
        .route("/hello", axum::routing::get(|| async { "hi from the app" }))
        .merge(server.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await
    });
    let base = format!("http://{addr}");
    assert_eq!(
        support::http(&base, "GET", "/hello", "").await.1,
        "hi from the app"
    );
    let mut ws = support::connect(&format!("ws://{addr}/realtime/v1/websocket?vsn=2.0.0")).await;
    support::send(
        &mut ws,
        json!(["1", "1", "realtime:room", "phx_join", {"config": {"presence": {"key": "ann"}}}]),
    )
    .await;
    support::until(&mut ws, 5, |v| v[3] == "phx_reply").await;
    support::send(
        &mut ws,
        json!(["1", "2", "realtime:room", "presence", {"type": "presence", "event": "track", "payload": {}}]),
    )
    .await;
    support::until(&mut ws, 5, |v| v[3] == "presence_diff").await;
    let (status, body) =
        support::http(&base, "POST", "/api/presence/status", r#"{"keys":["ann"]}"#).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"online\":true"), "{body}");
    // The app stops serving, then the server shuts down: the socket is closed, ann leaves.
    server.shutdown().await;
    let _ = tx.send(());
    serving.await.unwrap().unwrap();
    assert_eq!(server.hub().engine().stats().presences, 0);
}
