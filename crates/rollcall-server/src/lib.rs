//! # rollcall-server
//!
//! The running Rollcall service: a Phoenix-channels WebSocket endpoint that unmodified
//! `@supabase/realtime-js` clients use for presence and broadcast, an HTTP API (batch status,
//! channel state, REST broadcast), Prometheus metrics, health and a live demo page.
//!
//! The public API is small: [`Server`] (build, mount [`Server::router`] in your own axum app or
//! [`Server::run`] it), its [`config`] schema, the shared [`Hub`] (engine, counters) and the
//! [`clock`] (a manual one for deterministic tests). Everything else is private; see
//! docs/architecture.md for the layout. This crate is the composition root: it depends on
//! `rollcall-core`, `rollcall-phoenix` and, behind the default features `sql` and `redis`,
//! `rollcall-sql` and `rollcall-redis`; nothing depends on it.

mod auth;
mod bus;
pub mod clock;
pub mod config;
mod driver;
/// The in-process session harness of the `session` fuzz target, the corpus test and the
/// simulation test; only with the `sim` feature (off by default, so release builds have none
/// of it).
#[cfg(feature = "sim")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod http_auth;
mod http_limits;
mod hub;
mod limits;
mod listener;
mod metrics;
mod openapi;
// The outbox and the session are public to the `sim` harness only (`fuzzing`).
#[cfg_attr(not(feature = "sim"), allow(unreachable_pub))]
mod outbox;
mod persist;
mod refusal;
mod server;
#[cfg_attr(not(feature = "sim"), allow(unreachable_pub))]
mod session;
mod watches;
mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::timeout::RequestBodyTimeoutLayer;

pub use config::{ServerConfig, Settings};
pub use hub::Hub;
pub use metrics::Metrics;
pub use server::{BuildError, Server, ServerBuilder};

/// Builds the router for `hub`: the WebSocket endpoints, and the REST API behind its rate
/// limit, body limits and (when configured) CORS.
pub(crate) fn router(hub: Arc<Hub>, shutdown: watch::Receiver<bool>) -> Router {
    let ws_state = ws::WsState {
        hub: hub.clone(),
        shutdown,
    };
    let sockets = Router::new()
        .route("/realtime/v1/websocket", get(ws::upgrade))
        .route("/socket/websocket", get(ws::upgrade))
        .with_state(ws_state);
    let mut rest = Router::new()
        .route(
            "/api/presence/status",
            post(http::status).fallback(http::method_not_allowed),
        )
        .route(
            "/api/presence/{key}/sessions",
            get(http::sessions).fallback(http::method_not_allowed),
        )
        .route(
            "/api/channels/{topic}/presence",
            get(http::channel_presence).fallback(http::method_not_allowed),
        )
        .route(
            "/api/broadcast",
            post(http::broadcast).fallback(http::method_not_allowed),
        )
        .route(
            "/realtime/v1/api/broadcast",
            post(http::broadcast).fallback(http::method_not_allowed),
        );
    if hub.cfg.http.metrics_bind.is_none() {
        rest = rest.route("/metrics", get(http::metrics));
    }
    let mut rest = rest
        .layer(axum::middleware::from_fn_with_state(
            hub.clone(),
            http_limits::rate_limit,
        ))
        .layer(DefaultBodyLimit::max(hub.cfg.http.max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(
            hub.cfg.http.body_timeout.as_duration(),
        ));
    if let Some(cors) = http_limits::cors(&hub.cfg.http.cors_origins) {
        rest = rest.layer(cors);
    }
    let open = Router::new()
        .route("/", get(http::demo))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .route("/openapi.json", get(http::openapi))
        .fallback(http::not_found);
    sockets.merge(rest.merge(open).with_state(hub))
}

/// The separate metrics address' router (`metrics_bind`): `/metrics`, open.
pub(crate) fn metrics_router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(hub): axum::extract::State<Arc<Hub>>| async move {
                    http::render_metrics(&hub)
                },
            ),
        )
        .fallback(http::not_found)
        .with_state(hub)
}

/// Serves on `listener` until `signal` resolves, then shuts down gracefully (see
/// [`Server::shutdown`]). The same as `Server::from_hub(hub).run(listener, signal)`.
///
/// # Errors
/// The listener failed, or the configured database could not be opened.
pub async fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    Server::from_hub(hub).run(listener, signal).await
}
