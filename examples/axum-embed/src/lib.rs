//! The Rollcall server inside your own axum app.
//!
//! [`app`] merges Rollcall's routes (`/realtime/v1/websocket`, `/api/...`, `/healthz`,
//! `/metrics`, the demo page at `/`) with two of the app's own: `GET /hello` and
//! `GET /app/rooms/{room}/members`, which reads the presence engine directly. [`run`] serves
//! it with the app's own `axum::serve` and shuts Rollcall down first on the stop signal, so
//! WebSockets close cleanly (each gets `phx_close`) before axum stops accepting.

use std::future::Future;
use std::net::SocketAddr;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use rollcall_server::{Hub, Server};

/// The app's routes merged with Rollcall's.
pub fn app(server: &Server) -> Router {
    let own = Router::new()
        .route("/hello", get(|| async { "hello from the app" }))
        .route("/app/rooms/{room}/members", get(members))
        .with_state(server.hub().clone());
    own.merge(server.router())
}

/// The keys present in a room (`realtime:<room>`, the topic realtime-js joins for `room`).
async fn members(State(hub): State<Arc<Hub>>, Path(room): Path<String>) -> Json<Vec<String>> {
    let mut keys: Vec<String> = hub
        .engine()
        .list(&format!("realtime:{room}"))
        .into_iter()
        .map(|(key, _)| key.to_string())
        .collect();
    keys.sort();
    Json(keys)
}

/// Starts Rollcall (database, cluster, timers) and serves [`app`] on `listener` until `stop`
/// resolves; then Rollcall shuts down (sockets closed, presences left, history written) and
/// the HTTP server stops.
pub async fn run(
    listener: tokio::net::TcpListener,
    server: Server,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server.start().await?;
    let router = app(&server);
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        axum::serve(
            listener,
            // Rollcall's REST rate limit reads client addresses from ConnectInfo.
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped_rx.await;
        })
        .await
    });
    stop.await;
    server.shutdown().await;
    let _ = stopped_tx.send(());
    serving.await.map_err(std::io::Error::other)?
}
