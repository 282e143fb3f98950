//! The accept loop: HTTP/1.1 connections served by hyper with the limits a public endpoint
//! needs before a WebSocket upgrade or API call is even parsed.
//!
//! - `http_header_timeout`: a connection must send a complete request head within it, whether
//!   it is new or idle between keep-alive requests (hyper's `header_read_timeout`), so sockets
//!   that trickle headers or send nothing are closed.
//! - `max_http_connections`: HTTP connections not (yet) upgraded to WebSocket are capped; over
//!   the cap a new connection is closed at once and counted. Upgraded sockets count toward
//!   `max_connections` instead.
//! - Request bodies are limited in time (`http_body_timeout`, a tower-http layer on the
//!   routes) and in size (`max_http_body_bytes`, [`crate::http::JsonBody`]).
//! - Shutdown: accepting stops at the signal, idle connections are closed, and connections with
//!   a request in flight get until the shutdown deadline; then they are dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use crate::hub::Hub;

/// Counters of the accept loop, exported on `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct ListenerStats {
    /// HTTP connections open and not upgraded.
    pub open: AtomicUsize,
    /// Connections closed at accept because `max_http_connections` were open.
    pub refused: AtomicU64,
    /// Connections that ended with an error (header timeout, parse error, reset).
    pub errors: AtomicU64,
    /// Signalled whenever `open` drops.
    pub closed: Notify,
}

/// Decrements the open count when the connection's task ends, however it ends.
struct OpenGuard(Arc<Hub>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.listener.open.fetch_sub(1, Ordering::AcqRel);
        self.0.listener.closed.notify_waiters();
    }
}

/// Appends the accept loop's metrics to `out`.
pub(crate) fn render_metrics(hub: &Hub, out: &mut String) {
    use std::fmt::Write;
    let s = &hub.listener;
    let _ = write!(
        out,
        "# HELP rollcall_http_connections HTTP connections open and not upgraded.\n\
         # TYPE rollcall_http_connections gauge\nrollcall_http_connections {}\n\
         # HELP rollcall_http_connections_refused_total Connections closed at accept: max_http_connections reached.\n\
         # TYPE rollcall_http_connections_refused_total counter\nrollcall_http_connections_refused_total {}\n\
         # HELP rollcall_http_connection_errors_total HTTP connections ended by an error or timeout.\n\
         # TYPE rollcall_http_connection_errors_total counter\nrollcall_http_connection_errors_total {}\n",
        s.open.load(Ordering::Relaxed),
        s.refused.load(Ordering::Relaxed),
        s.errors.load(Ordering::Relaxed),
    );
}

/// Serves `app` on `listener` until `stop` becomes true, then lets connections finish until
/// `deadline` (an absolute time) and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    hub: Arc<Hub>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(hub.cfg.http.header_timeout.as_duration())
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let max_open = hub.cfg.http.max_connections;
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE/ENFILE and aborted handshakes: log, back off a little, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        if hub.listener.open.load(Ordering::Acquire) >= max_open {
            hub.listener.refused.fetch_add(1, Ordering::Relaxed);
            drop(tcp);
            continue;
        }
        // Small frames (heartbeat replies, diffs) must not wait for Nagle's algorithm.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY failed");
        }
        hub.listener.open.fetch_add(1, Ordering::AcqRel);
        let guard = OpenGuard(hub.clone());
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                match app.oneshot(req).await {
                    Ok(resp) => Ok::<_, Infallible>(resp),
                    Err(never) => match never {},
                }
            }
        });
        let conn = http
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                _guard.0.listener.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "http connection ended with an error");
            }
        });
    }
    Ok(())
}

/// Waits until every non-upgraded HTTP connection has ended, or `deadline` passes.
pub(crate) async fn drain(hub: &Hub, deadline: tokio::time::Instant) -> bool {
    loop {
        let notified = hub.listener.closed.notified();
        if hub.listener.open.load(Ordering::Acquire) == 0 {
            return true;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return hub.listener.open.load(Ordering::Acquire) == 0;
        }
    }
}

/// The peer address of a request served by [`serve`].
pub(crate) fn peer(req: &axum::http::request::Parts) -> Option<SocketAddr> {
    req.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
