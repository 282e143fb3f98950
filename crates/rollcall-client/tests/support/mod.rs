//! Test helpers: an in-process server on a loopback port (the pattern of
//! `crates/rollcall-server/tests/support`), client configs with short timings, and waits.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rollcall_client::{ChannelEvent, ClientConfig, PresenceEvent, StatusChange, Watch};
use rollcall_core::Millis;
use rollcall_server::{Hub, ServerConfig};
use tokio::sync::oneshot;

/// A running server; [`TestServer::shutdown`] stops it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// The endpoint a client connects to.
    pub fn endpoint(&self) -> String {
        format!("ws://{}/realtime/v1", self.addr)
    }

    /// Triggers a graceful shutdown and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }

    /// Closes every connection from the server side, as a missed-heartbeat expiry does.
    pub fn kill_all_connections(&self) {
        self.hub.close_all_connections();
    }
}

/// Server config with short heartbeats so timeouts take seconds, not minutes.
pub fn fast_config(heartbeat_ms: u64, missed: u32) -> ServerConfig {
    let mut cfg = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    cfg.core.heartbeat_interval = Millis(heartbeat_ms);
    cfg.core.missed_heartbeats = missed;
    cfg.core.offline_grace = Millis(200);
    cfg.core.timer_granularity = Millis(20);
    cfg.shutdown_timeout = Millis(500);
    cfg
}

/// Starts a server on `cfg.bind` (port 0: a free port), reusing the address so a restart on
/// the same port works.
pub async fn start(cfg: ServerConfig) -> TestServer {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(cfg.bind).unwrap();
    let listener = socket.listen(1024).unwrap();
    let addr = listener.local_addr().unwrap();
    let hub = Hub::new(cfg).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(rollcall_server::serve(listener, hub.clone(), async move {
        let _ = rx.await;
    }));
    TestServer {
        addr,
        hub,
        stop: Some(tx),
        task,
    }
}

/// A client config for `server` with quick heartbeats, reconnects and timeouts.
pub fn client_config(server: &TestServer) -> ClientConfig {
    let mut cfg = ClientConfig::new(server.endpoint(), "test");
    cfg.heartbeat_interval = Duration::from_millis(300);
    cfg.reconnect_after = vec![Duration::from_millis(100), Duration::from_millis(300)];
    cfg.rejoin_after = vec![Duration::from_millis(100)];
    cfg.push_timeout = Duration::from_secs(3);
    cfg
}

pub const WAIT: Duration = Duration::from_secs(5);

/// The next event matching `pred` within [`WAIT`], skipping others.
pub async fn next_event(
    ch: &mut rollcall_client::Channel,
    what: &str,
    mut pred: impl FnMut(&ChannelEvent) -> bool,
) -> ChannelEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = ch.recv().await.expect("client task alive");
            if pred(&e) {
                return e;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// True for a presence join of `key`.
pub fn is_join(e: &ChannelEvent, key: &str) -> bool {
    matches!(e, ChannelEvent::Presence(PresenceEvent::Join { key: k, .. }) if k == key)
}

/// True for a presence leave of `key`.
pub fn is_leave(e: &ChannelEvent, key: &str) -> bool {
    matches!(e, ChannelEvent::Presence(PresenceEvent::Leave { key: k, .. }) if k == key)
}

/// The next status change within [`WAIT`].
pub async fn next_change(w: &mut Watch) -> StatusChange {
    tokio::time::timeout(WAIT, w.recv())
        .await
        .expect("timed out waiting for a status change")
        .expect("client task alive")
}

/// `clients/<name>` in the repository.
pub fn clients_dir(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../clients")
        .join(name)
}

/// Runs `npm ci` in `dir` unless its lockfile's packages are already installed (one at a
/// time per test binary: two installs into one folder race on `node_modules`).
pub async fn npm_ci(dir: &std::path::Path) {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = ONE_AT_A_TIME.lock().await;
    let installed = dir.join("node_modules/.package-lock.json");
    let lock = dir.join("package-lock.json");
    let fresh = match (installed.metadata(), lock.metadata()) {
        (Ok(i), Ok(l)) => i.modified().ok() >= l.modified().ok(),
        _ => false,
    };
    if fresh {
        return;
    }
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .await
        .expect("npm must be installed to run the Node test suites");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Runs `program args` in `dir` against `server` (ROLLCALL_URL and its timings in the
/// environment); panics with its output if it fails, else prints it.
pub async fn run_node_suite(
    dir: &std::path::Path,
    program: &str,
    args: &[&str],
    server: &TestServer,
) {
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("ROLLCALL_URL", format!("http://{}", server.addr))
        .env(
            "ROLLCALL_HEARTBEAT_MS",
            server.hub.config().core.heartbeat_interval.0.to_string(),
        )
        .env(
            "ROLLCALL_MISSED_HEARTBEATS",
            server.hub.config().core.missed_heartbeats.to_string(),
        )
        .env(
            "ROLLCALL_OFFLINE_GRACE_MS",
            server.hub.config().core.offline_grace.0.to_string(),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} must be installed: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} {args:?} failed in {}:\n{stdout}\n{stderr}",
        dir.display()
    );
    println!("{stdout}");
}
