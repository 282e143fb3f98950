//! # rollcall-server
//!
//! The running Rollcall service: a Phoenix-channels WebSocket endpoint that unmodified
//! `@supabase/realtime-js` clients use for presence and broadcast, an HTTP API (batch status,
//! channel state, REST broadcast), Prometheus metrics, health and a live demo page.
//!
//! Layout: `config.rs` (flags, env, TOML), `hub.rs` (shared state, per-connection queues and
//! fan-out), `ws.rs` (the socket task), `session/` (per-socket protocol state: dispatch, join,
//! events), `auth.rs` (JWT and access rules), `limits.rs` (rate windows), `http.rs` (REST),
//! `driver.rs` (timers), `metrics.rs`, `persist.rs` (the SQL adapter's wiring), `cluster.rs`
//! (the Redis adapter's wiring). This crate is the composition root: it depends on
//! `rollcall-core`, `rollcall-phoenix`, `rollcall-sql` and `rollcall-redis`; nothing depends
//! on it.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod driver;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod persist;
pub mod session;
pub mod ws;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::routing::{get, post};
use rollcall_core::{LeaveReason, Outputs};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{Cli, ServerConfig};
pub use hub::Hub;

/// Builds the router for `hub`.
pub fn router(hub: Arc<Hub>, shutdown: watch::Receiver<bool>) -> Router {
    let ws_state = ws::WsState {
        hub: hub.clone(),
        shutdown,
    };
    let sockets = Router::new()
        .route("/realtime/v1/websocket", get(ws::upgrade))
        .route("/socket/websocket", get(ws::upgrade))
        .with_state(ws_state);
    let api = Router::new()
        .route("/", get(http::demo))
        .route("/healthz", get(http::healthz))
        .route("/metrics", get(http::metrics))
        .route("/api/presence/status", post(http::status))
        .route("/api/presence/{key}/sessions", get(persist::sessions))
        .route(
            "/api/channels/{topic}/presence",
            get(http::channel_presence),
        )
        .route("/api/broadcast", post(http::broadcast))
        .route("/realtime/v1/api/broadcast", post(http::broadcast))
        .fallback(http::not_found)
        .with_state(hub);
    sockets.merge(api)
}

/// Serves on `listener` until `signal` resolves, then shuts down gracefully: stops
/// accepting, sends `phx_close` on every channel, removes every presence (reason
/// `shutdown`), flushes pending diffs and waits for sockets to drain (at most
/// `shutdown_timeout`), then writes every pending login/logout and closes this node's
/// open sessions in the database (reason `shutdown`).
///
/// # Errors
/// The listener failed, or the configured database could not be opened.
pub async fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    persist::attach(&hub).await.map_err(std::io::Error::other)?;
    cluster::start(&hub);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let driver = tokio::spawn(driver::run(hub.clone(), shutdown_rx.clone()));
    let app = router(hub.clone(), shutdown_rx);
    let tx = shutdown_tx.clone();
    let graceful = async move {
        signal.await;
        tracing::info!("shutting down");
        let _ = tx.send(true);
    };
    // Small frames (heartbeat replies, diffs) must not wait for Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY failed");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(graceful)
        .await?;
    let _ = shutdown_tx.send(true);
    let deadline = tokio::time::Instant::now() + hub.cfg.shutdown_timeout.as_duration();
    while hub.sockets.load(Ordering::Relaxed) > 0 {
        let notified = hub.sockets_changed.notified();
        if hub.sockets.load(Ordering::Relaxed) == 0 {
            break;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            tracing::warn!(
                open = hub.sockets.load(Ordering::Relaxed),
                "shutdown deadline passed with sockets still open"
            );
            break;
        }
    }
    // Anything left (sockets that did not drain in time) leaves now.
    let mut out = Outputs::default();
    let conns: Vec<_> = hub.conns.iter().map(|e| *e.key()).collect();
    for conn in conns {
        hub.engine
            .close_with(conn, hub.now(), LeaveReason::Shutdown, &mut out);
    }
    hub.engine.flush(&mut out);
    hub.handle_events(&mut out);
    let _ = driver.await;
    cluster::flush(&hub).await;
    if let Some(p) = hub.persistence.get() {
        p.shutdown(hub.cfg.shutdown_timeout.as_duration()).await;
    }
    Ok(())
}
