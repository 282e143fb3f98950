//! Test helpers: start a server on a free loopback port with a chosen configuration.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rollcall_core::Millis;
use rollcall_server::{Hub, ServerConfig};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// A raw WebSocket client.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a raw WebSocket (the upgrade must succeed).
pub async fn connect(url: &str) -> Ws {
    connect_async(url).await.expect("upgrade").0
}

/// Sends one JSON text frame.
pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next text frame as JSON, failing after `secs`.
pub async fn next_frame(ws: &mut Ws, secs: u64) -> Value {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(secs), ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("frame ok");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Reads frames until one matches `pred` (each within `secs`).
pub async fn until(ws: &mut Ws, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let v = next_frame(ws, secs).await;
        if pred(&v) {
            return v;
        }
    }
}

/// Connects, joins `realtime:room-KEY` as `key` and tracks; returns once the track is acked.
/// (One room per key: a shared room would fan every join out to every socket.)
pub async fn online(ws_url: &str, key: &str) -> Ws {
    let mut ws = connect(ws_url).await;
    let topic = format!("realtime:room-{key}");
    send(
        &mut ws,
        serde_json::json!(["1", "1", topic, "phx_join", {"config": {
        "broadcast": {"ack": false, "self": false},
        "presence": {"key": key, "enabled": true}, "postgres_changes": [], "private": false}}]),
    )
    .await;
    until(&mut ws, 10, |v| v[1] == "1" && v[3] == "phx_reply").await;
    send(
        &mut ws,
        serde_json::json!(["1", "2", topic, "presence",
        {"type": "presence", "event": "track", "payload": {"k": key}}]),
    )
    .await;
    let r = until(&mut ws, 10, |v| v[1] == "2" && v[3] == "phx_reply").await;
    assert_eq!(r[4]["status"], "ok", "{r}");
    ws
}

/// A running server; dropping `stop` (or sending on it) shuts it down.
pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self, vsn: &str) -> String {
        format!(
            "ws://{}/realtime/v1/websocket?apikey=test&vsn={vsn}",
            self.addr
        )
    }

    /// Triggers a graceful shutdown and waits for it.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("server task")
    }
}

/// Config for tests: short heartbeats so timeouts take seconds, not minutes.
pub fn fast_config(heartbeat_ms: u64, missed: u32) -> ServerConfig {
    let mut cfg = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    cfg.core.heartbeat_interval = Millis(heartbeat_ms);
    cfg.core.missed_heartbeats = missed;
    cfg.core.offline_grace = Millis(200);
    cfg.core.timer_granularity = Millis(20);
    cfg.shutdown_timeout = Millis(2000);
    cfg
}

pub async fn start(cfg: ServerConfig) -> TestServer {
    let listener = tokio::net::TcpListener::bind(cfg.bind).await.unwrap();
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

/// Minimal HTTP/1.1 request to `addr` (`host:port`, an `http://` prefix is ignored); returns
/// the status and the body text. No HTTP client dependency needed.
pub async fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = addr.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
