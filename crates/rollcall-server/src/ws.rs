//! The WebSocket endpoint: upgrade, then one task per socket that reads frames into its
//! [`Session`] and writes its outbound queue, until close, timeout, slow-consumer kill or
//! server shutdown.
//!
//! Files: `ws.rs` (upgrade and the socket loop), `ws/guard.rs` (the drop guard that releases a
//! socket's state however its task ends), `ws/rfc6455.rs` (close codes for read errors, the
//! `Sec-WebSocket-Key` check).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rollcall_core::LeaveReason;
use rollcall_phoenix::Vsn;
use tokio::sync::watch;

use crate::auth::{AuthError, Claims};
use crate::hub::{ConnCtl, Hub, KillReason, Outbox};
use crate::metrics::Metrics;
use crate::outbox::message_len;
use crate::refusal::Refusal;
use crate::session::Session;

mod guard;
mod rfc6455;

use guard::SocketGuard;
use rfc6455::{ReadError, valid_websocket_key};

/// Bytes tungstenite reserves per read. Presence traffic is small frames (a heartbeat is ~40
/// bytes), and every idle connection keeps this buffer, so it is kept small: larger frames
/// are read in several chunks.
const READ_BUFFER_BYTES: usize = 512;

/// State for the socket route: the hub and the shutdown signal.
#[derive(Clone, Debug)]
pub(crate) struct WsState {
    /// Shared state.
    pub hub: Arc<Hub>,
    /// Becomes true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

fn refuse(hub: &Hub, why: Refusal) -> Response {
    Metrics::inc(&hub.metrics.connections_refused);
    hub.metrics.error(why.metric());
    let body = serde_json::json!({ "error": why.http_message() });
    (why.http_status(), axum::Json(body)).into_response()
}

/// `GET /realtime/v1/websocket` and `GET /socket/websocket`.
pub(crate) async fn upgrade(
    State(state): State<WsState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let hub = state.hub.clone();
    let key = headers.get(header::SEC_WEBSOCKET_KEY).map(|v| v.as_bytes());
    if !key.is_some_and(valid_websocket_key) {
        return refuse(&hub, Refusal::BadHandshake);
    }
    if hub.sockets.load(Ordering::Relaxed) >= hub.cfg.limits.max_connections {
        return refuse(&hub, Refusal::TooManyConnections);
    }
    // Supabase: the x-api-key header wins over the apikey query parameter.
    let apikey = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| params.get("apikey").cloned())
        .filter(|k| !k.is_empty());
    let claims = if hub.cfg.auth.enabled() {
        let Some(key) = apikey.as_deref() else {
            return refuse(&hub, Refusal::Token(AuthError::Missing));
        };
        match hub.cfg.auth.verify(key, hub.clock.unix_secs()) {
            Ok(c) => Some(c),
            Err(e) => {
                return refuse(&hub, Refusal::Token(e));
            }
        }
    } else {
        None
    };
    let apikey = apikey.map(|k| (k, claims));
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
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| run(socket, hub, vsn, apikey, state.shutdown))
}

/// Sets a socket up synchronously, then returns the task that serves it. The task is the
/// connection's largest allocation, so it holds only the split socket's two halves (the
/// socket itself sits behind their shared lock), the drop guard and the shutdown signal:
/// nothing used only during set-up.
fn run(
    socket: WebSocket,
    hub: Arc<Hub>,
    vsn: Vsn,
    apikey: Option<(String, Option<Claims>)>,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let conn = hub.next_conn_id();
    let (outbox, ctl) = Outbox::new(hub.cfg.outbound_queue, hub.cfg.limits.outbound_queue_bytes);
    let registered = hub.engine.connect(conn, hub.now()).is_ok();
    let guard = registered.then(|| {
        let session = Session::new(hub.clone(), conn, vsn, outbox, apikey, hub.now());
        SocketGuard::register(hub.clone(), conn, ctl, session)
    });
    let (sink, stream) = socket.split();
    async move {
        // Ids are unique, so `connect` cannot fail in practice; without a guard the socket
        // is simply dropped.
        let Some(mut guard) = guard else { return };
        let mut shutdown = shutdown;
        Metrics::inc(&guard.session.hub().metrics.connections_total);
        tracing::debug!(conn = conn.0, ?vsn, "connected");
        let SocketGuard { session, ctl, .. } = &mut guard;
        let reason = drive(sink, stream, session, ctl, &mut shutdown).await;
        guard.reason = reason;
        // `guard` drops here and releases everything the socket held.
    }
}

async fn drive(
    mut sink: Sink,
    mut stream: SplitStream<WebSocket>,
    session: &mut Session,
    ctl: &ConnCtl,
    shutdown: &mut watch::Receiver<bool>,
) -> LeaveReason {
    if *shutdown.borrow() {
        return LeaveReason::Shutdown;
    }
    let clock = session.hub().clock.clone();
    loop {
        // The session's next timer (join timeout, token expiry) as a runtime deadline.
        let timer = session.poll_timeout().map(|t| clock.deadline(t));
        let outcome = tokio::select! {
            biased;
            why = ctl.killed() => Err(why),
            _ = shutdown.changed() => {
                session.close_all_channels();
                drain(&mut sink, ctl, 500).await;
                close(&mut sink, 1001, "server shutting down", 500).await;
                return LeaveReason::Shutdown;
            }
            _ = sleep_until(timer), if timer.is_some() => {
                if let Some(c) = session.handle_timeout(clock.now()) {
                    close(&mut sink, c.code, c.reason, 200).await;
                    return LeaveReason::Closed;
                }
                Ok(true)
            }
            msg = ctl.recv() => {
                // A client that stops reading blocks this write; a kill must still get through.
                tokio::select! {
                    biased;
                    why = ctl.killed() => Err(why),
                    ok = write_batch(&mut sink, msg, ctl) => Ok(ok),
                }
            }
            frame = stream.next() => {
                match frame {
                    Some(Ok(Message::Text(text))) => session.handle_text(clock.now(), &text),
                    Some(Ok(Message::Binary(data))) => session.handle_binary(clock.now(), &data),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => session.touch(clock.now()),
                    Some(Ok(Message::Close(_))) | None => return LeaveReason::Closed,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "socket error");
                        let verdict = ReadError::of(&e);
                        session.hub().metrics.error(verdict.metric());
                        if let Some((code, reason)) = verdict.close_frame() {
                            close(&mut sink, code, reason, 200).await;
                        }
                        return LeaveReason::Closed;
                    }
                }
                Ok(true)
            }
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => return LeaveReason::Closed,
            Err(why) => {
                let (code, text, reason) = match why {
                    KillReason::Timeout => (1000, "heartbeat timeout", LeaveReason::Timeout),
                    KillReason::SlowConsumer => (
                        1008,
                        "slow consumer: outbound queue full",
                        LeaveReason::Closed,
                    ),
                    KillReason::JoinRate => {
                        // Let the error reply out first.
                        drain(&mut sink, ctl, 200).await;
                        (1008, "Too many joins per second", LeaveReason::Closed)
                    }
                };
                close(&mut sink, code, text, 100).await;
                return reason;
            }
        }
    }
}

type Sink = SplitSink<WebSocket, Message>;

/// Writes `first` and everything already queued, then flushes once. False on a socket error.
async fn write_batch(sink: &mut Sink, first: Message, ctl: &ConnCtl) -> bool {
    let mut next = Some(first);
    while let Some(msg) = next {
        let len = message_len(&msg);
        if sink.feed(msg).await.is_err() {
            return false;
        }
        ctl.queued_bytes.fetch_sub(len, Ordering::Relaxed);
        next = ctl.try_recv();
    }
    sink.flush().await.is_ok()
}

// `drain` and `close` run once, at a socket's end. Their futures are boxed so that they do
// not enlarge every connection's task, which is sized for its largest await.

/// Writes whatever is queued, for at most `wait_ms` (used before a deliberate close).
fn drain<'a>(sink: &'a mut Sink, ctl: &'a ConnCtl, wait_ms: u64) -> BoxFuture<'a, ()> {
    Box::pin(async move {
        if let Some(first) = ctl.try_recv() {
            let wait = Duration::from_millis(wait_ms);
            let _ = tokio::time::timeout(wait, write_batch(sink, first, ctl)).await;
        }
    })
}

/// Sends a close frame, waiting at most `wait_ms` (the peer may not be reading).
fn close<'a>(
    sink: &'a mut Sink,
    code: u16,
    reason: &'static str,
    wait_ms: u64,
) -> BoxFuture<'a, ()> {
    Box::pin(async move {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(Duration::from_millis(wait_ms), sink.send(frame)).await;
    })
}

/// Sleeps until `deadline` (the select branch is disabled when there is none).
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d).await;
    }
}
