//! The `rollcall` binary: parse configuration, set up logging, serve until a signal.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use rollcall_server::config::LogFormat;
use rollcall_server::{Hub, ServerConfig, Settings};

fn main() -> ExitCode {
    let cfg = match ServerConfig::from_settings(Settings::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rollcall: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rollcall: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cfg: ServerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let bind = cfg.bind;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        tracing::info!(
            addr = %listener.local_addr()?,
            node_id = %cfg.node_id,
            heartbeat_interval = %cfg.core.heartbeat_interval,
            missed_heartbeats = cfg.core.missed_heartbeats,
            "rollcall listening"
        );
        if !cfg.auth.enabled() {
            tracing::warn!(
                "no JWT secret, public key or JWKS configured: running OPEN (any apikey is \
                 accepted, private channels are refused, and the HTTP API — statuses, login \
                 history, broadcast — answers anyone who can reach it); set \
                 ROLLCALL_JWT_SECRET to verify tokens"
            );
        }
        let hub = Hub::new(cfg).context("building the engine")?;
        rollcall_server::serve(listener, hub, shutdown_signal())
            .await
            .context("serving")?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
