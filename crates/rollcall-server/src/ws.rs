//! The WebSocket endpoint: upgrade, then one task per socket that reads frames into its
//! [`Session`] and writes its outbound queue, until close, timeout, slow-consumer kill or
//! server shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use rollcall_core::LeaveReason;
use rollcall_phoenix::Vsn;
use tokio::sync::{mpsc, watch};

use crate::hub::{ConnCtl, Hub, KillReason, Outbox};
use crate::metrics::Metrics;
use crate::session::Session;

/// State for the socket route: the hub and the shutdown signal.
#[derive(Clone, Debug)]
pub struct WsState {
    /// Shared state.
    pub hub: Arc<Hub>,
    /// Becomes true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// `GET /realtime/v1/websocket` and `GET /socket/websocket`.
pub async fn upgrade(
    State(state): State<WsState>,
    Query(params): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let hub = state.hub.clone();
    let vsn = match Vsn::from_query(params.get("vsn").map(String::as_str)) {
        Ok(v) => v,
        Err(_) => {
            Metrics::inc(&hub.metrics.connections_refused);
            hub.metrics.error("unsupported_vsn");
            // Phoenix answers an unknown serializer version with 403 and an empty body.
            return StatusCode::FORBIDDEN.into_response();
        }
    };
    let max = hub.cfg.max_frame_bytes;
    ws.read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| run(socket, hub, vsn, state.shutdown))
}

async fn run(socket: WebSocket, hub: Arc<Hub>, vsn: Vsn, mut shutdown: watch::Receiver<bool>) {
    let conn = hub.next_conn_id();
    let (outbox, mut rx, ctl) = Outbox::new(hub.cfg.outbound_queue);
    if hub.engine.connect(conn, hub.now()).is_err() {
        return; // ids are unique; unreachable in practice
    }
    hub.conns.insert(conn, ctl.clone());
    hub.sockets.fetch_add(1, Ordering::Relaxed);
    Metrics::inc(&hub.metrics.connections_total);
    tracing::debug!(conn = conn.0, ?vsn, "connected");
    let mut session = Session::new(hub.clone(), conn, vsn, outbox);
    let reason = drive(socket, &mut session, &mut rx, &ctl, &mut shutdown).await;
    session.close(reason);
    hub.conns.remove(&conn);
    hub.sockets.fetch_sub(1, Ordering::Relaxed);
    hub.sockets_changed.notify_waiters();
    tracing::debug!(conn = conn.0, reason = reason.as_str(), "disconnected");
}

async fn drive(
    socket: WebSocket,
    session: &mut Session,
    rx: &mut mpsc::Receiver<Message>,
    ctl: &ConnCtl,
    shutdown: &mut watch::Receiver<bool>,
) -> LeaveReason {
    let (mut sink, mut stream) = socket.split();
    if *shutdown.borrow() {
        return LeaveReason::Shutdown;
    }
    loop {
        tokio::select! {
            biased;
            why = ctl.killed() => {
                let (code, text, reason) = match why {
                    KillReason::Timeout => (1000, "heartbeat timeout", LeaveReason::Timeout),
                    KillReason::SlowConsumer => (1008, "slow consumer: outbound queue full", LeaveReason::Closed),
                };
                // A slow consumer's queue is full; don't wait on it.
                let close = Message::Close(Some(CloseFrame { code, reason: text.into() }));
                let _ = tokio::time::timeout(std::time::Duration::from_millis(100), sink.send(close)).await;
                return reason;
            }
            _ = shutdown.changed() => {
                session.close_all_channels();
                while let Ok(msg) = rx.try_recv() {
                    if sink.feed(msg).await.is_err() {
                        break;
                    }
                }
                let close = Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() }));
                let _ = tokio::time::timeout(std::time::Duration::from_millis(500), sink.send(close)).await;
                return LeaveReason::Shutdown;
            }
            Some(msg) = rx.recv() => {
                if sink.feed(msg).await.is_err() {
                    return LeaveReason::Closed;
                }
                // Drain what is already queued, then flush once.
                while let Ok(msg) = rx.try_recv() {
                    if sink.feed(msg).await.is_err() {
                        return LeaveReason::Closed;
                    }
                }
                if sink.flush().await.is_err() {
                    return LeaveReason::Closed;
                }
            }
            frame = stream.next() => {
                match frame {
                    Some(Ok(Message::Text(text))) => { session.handle_text(&text); }
                    Some(Ok(Message::Binary(data))) => { session.handle_binary(&data); }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        session.touch();
                    }
                    Some(Ok(Message::Close(_))) | None => return LeaveReason::Closed,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "socket error");
                        if session.protocol_error(&e.to_string()) {
                            let close = Message::Close(Some(CloseFrame {
                                code: 1009,
                                reason: "message too big".into(),
                            }));
                            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), sink.send(close)).await;
                        }
                        return LeaveReason::Closed;
                    }
                }
            }
        }
    }
}
