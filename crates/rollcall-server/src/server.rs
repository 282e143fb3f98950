//! The server's life cycle as a library: build it from a config, then either `run` it on a
//! listener (what the `rollcall` binary does) or mount its routes in your own axum app:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rollcall_server::{Server, ServerConfig};
//! let server = Server::builder().config(ServerConfig::default()).build()?;
//! server.start().await?; // database, cluster adapter, timers
//! let app = axum::Router::new()
//!     .route("/hello", axum::routing::get(|| async { "hi" }))
//!     .merge(server.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//!     .with_graceful_shutdown(async { let _ = tokio::signal::ctrl_c().await; })
//!     .await?;
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Mounted in your own app, the HTTP server's limits (header timeout, connection cap) are your
//! server's; `run` applies Rollcall's ([`crate::listener`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use rollcall_core::{LeaveReason, Outputs};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::config::ServerConfig;
use crate::hub::Hub;
use crate::{driver, listener, persist};

/// Why a server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The engine rejected a setting.
    #[error("invalid engine setting: {0}")]
    Engine(#[from] rollcall_core::ConfigError),
}

/// Builds a [`Server`].
#[derive(Debug, Default)]
pub struct ServerBuilder {
    cfg: ServerConfig,
}

impl ServerBuilder {
    /// Uses `cfg` (the default is [`ServerConfig::default`]: open mode, no database).
    pub fn config(mut self, cfg: ServerConfig) -> ServerBuilder {
        self.cfg = cfg;
        self
    }

    /// Builds the engine and shared state; nothing runs until [`Server::start`] or
    /// [`Server::run`].
    ///
    /// # Errors
    /// An engine setting is out of range.
    pub fn build(self) -> Result<Server, BuildError> {
        Ok(Server::from_hub(Hub::new(self.cfg)?))
    }
}

/// A Rollcall server: the shared state, its background tasks and its routes.
#[derive(Debug)]
pub struct Server {
    hub: Arc<Hub>,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
    driver: Mutex<Option<JoinHandle<()>>>,
}

impl Server {
    /// A builder with the default configuration.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Wraps an existing hub (tests and [`crate::serve`]).
    pub fn from_hub(hub: Arc<Hub>) -> Server {
        let (stop_tx, stop_rx) = watch::channel(false);
        Server {
            hub,
            stop_tx,
            stop_rx,
            driver: Mutex::new(None),
        }
    }

    /// The shared state (engine, metrics, configuration).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Opens the configured database (replaying a spill file, closing sessions a crash left
    /// open), starts the cluster adapter and the timer task. Idempotent.
    ///
    /// # Errors
    /// The database could not be opened.
    pub async fn start(&self) -> std::io::Result<()> {
        let mut driver = self.driver.lock().await;
        if driver.is_some() {
            return Ok(());
        }
        persist::attach(&self.hub)
            .await
            .map_err(std::io::Error::other)?;
        self.hub.bus.start(Arc::downgrade(&self.hub));
        tracing::debug!(bus = self.hub.bus.kind(), "presence bus started");
        *driver = Some(tokio::spawn(driver::run(
            self.hub.clone(),
            self.stop_rx.clone(),
        )));
        Ok(())
    }

    /// The routes: WebSocket endpoints, REST API, health, metrics, OpenAPI and the demo page.
    /// Merge them into your own `Router`; serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` so the REST rate limit sees
    /// client addresses.
    pub fn router(&self) -> Router {
        crate::router(self.hub.clone(), self.stop_rx.clone())
    }

    /// Starts, serves on `listener` with Rollcall's HTTP limits until `signal` resolves, then
    /// shuts down ([`Server::shutdown`]).
    ///
    /// # Errors
    /// The database could not be opened, or `metrics_bind` could not be bound.
    pub async fn run(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let metrics_listener = match self.hub.cfg.http.metrics_bind {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        self.start().await?;
        if let Some(l) = metrics_listener {
            tokio::spawn(listener::serve(
                l,
                crate::metrics_router(self.hub.clone()),
                self.hub.clone(),
                self.stop_rx.clone(),
            ));
        }
        let accept = tokio::spawn(listener::serve(
            listener,
            self.router(),
            self.hub.clone(),
            self.stop_rx.clone(),
        ));
        signal.await;
        let deadline = self.begin_shutdown();
        let _ = accept.await;
        if !listener::drain(&self.hub, deadline).await {
            tracing::warn!(
                open = self.hub.listener.open.load(Ordering::Relaxed),
                "shutdown deadline passed with HTTP requests still open; dropping them"
            );
        }
        self.finish_shutdown(deadline).await;
        Ok(())
    }

    /// Shuts down within `shutdown_timeout`: every socket gets `phx_close` and a close frame,
    /// every presence leaves (reason `shutdown`), pending diffs are flushed, the cluster
    /// record is removed, and pending logins/logouts are written (what the database cannot
    /// take before the deadline stays in the spill file).
    pub async fn shutdown(&self) {
        let deadline = self.begin_shutdown();
        self.finish_shutdown(deadline).await;
    }

    fn begin_shutdown(&self) -> tokio::time::Instant {
        tracing::info!("shutting down");
        // One deadline for everything that follows: sockets, HTTP requests, the database.
        let deadline = (self.hub.clock).deadline_in(self.hub.cfg.shutdown_timeout.as_duration());
        let _ = self.stop_tx.send(true);
        deadline
    }

    async fn finish_shutdown(&self, deadline: tokio::time::Instant) {
        let hub = &self.hub;
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
        if let Some(driver) = self.driver.lock().await.take() {
            let _ = driver.await;
        }
        hub.bus.flush().await;
        let left = hub.clock.until(deadline);
        persist::shutdown(hub, left.max(std::time::Duration::from_millis(200))).await;
    }
}
