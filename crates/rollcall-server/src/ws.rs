//! The WebSocket endpoint: upgrade, then one task per socket that reads frames into its
//! [`Session`] and writes its outbound queue, until close, timeout, slow-consumer kill or
//! server shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use rollcall_core::{ConnId, LeaveReason};
use rollcall_phoenix::Vsn;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::auth::{AuthError, Claims, unix_now};
use crate::hub::{ConnCtl, Hub, KillReason, Outbox, message_len};
use crate::metrics::Metrics;
use crate::session::Session;

/// Bytes tungstenite reserves per read. Presence traffic is small frames (a heartbeat is ~40
/// bytes), and every idle connection keeps this buffer, so it is kept small: larger frames
/// are read in several chunks.
const READ_BUFFER_BYTES: usize = 512;

/// State for the socket route: the hub and the shutdown signal.
#[derive(Clone, Debug)]
pub struct WsState {
    /// Shared state.
    pub hub: Arc<Hub>,
    /// Becomes true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

fn refuse(hub: &Hub, status: StatusCode, metric: &'static str, message: &str) -> Response {
    Metrics::inc(&hub.metrics.connections_refused);
    hub.metrics.error(metric);
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// `GET /realtime/v1/websocket` and `GET /socket/websocket`.
pub async fn upgrade(
    State(state): State<WsState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let hub = state.hub.clone();
    let key = headers.get(header::SEC_WEBSOCKET_KEY).map(|v| v.as_bytes());
    if !key.is_some_and(valid_websocket_key) {
        return refuse(
            &hub,
            StatusCode::BAD_REQUEST,
            "bad_handshake",
            "Sec-WebSocket-Key must be the base64 encoding of 16 bytes (RFC 6455 section 4.1)",
        );
    }
    if hub.sockets.load(Ordering::Relaxed) >= hub.cfg.limits.max_connections {
        return refuse(
            &hub,
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            "Too many connected users",
        );
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
            return refuse(
                &hub,
                StatusCode::UNAUTHORIZED,
                "auth_refused",
                &AuthError::Missing.http_message(),
            );
        };
        match hub.cfg.auth.verify(key, unix_now()) {
            Ok(c) => Some(c),
            Err(e) => {
                return refuse(
                    &hub,
                    StatusCode::UNAUTHORIZED,
                    "auth_refused",
                    &e.http_message(),
                );
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

async fn run(
    socket: WebSocket,
    hub: Arc<Hub>,
    vsn: Vsn,
    apikey: Option<(String, Option<Claims>)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let conn = hub.next_conn_id();
    let (outbox, ctl) = Outbox::new(hub.cfg.outbound_queue, hub.cfg.limits.outbound_queue_bytes);
    if hub.engine.connect(conn, hub.now()).is_err() {
        return; // ids are unique; unreachable in practice
    }
    let session = Session::new(hub.clone(), conn, vsn, outbox, apikey);
    let mut guard = SocketGuard::register(hub.clone(), conn, ctl, session);
    Metrics::inc(&hub.metrics.connections_total);
    tracing::debug!(conn = conn.0, ?vsn, "connected");
    let join_timeout = hub.cfg.limits.join_timeout.as_duration();
    guard.reason = drive(
        socket,
        &mut guard.session,
        &guard.ctl,
        &mut shutdown,
        join_timeout,
    )
    .await;
    // `guard` drops here and releases everything the socket held.
}

/// What one socket registered with the hub, released exactly once when the socket task ends:
/// normally, when the task is cancelled, and when it panics (tokio drops a panicked task's
/// future, so this runs while unwinding). No panic can leak a `max_connections` slot, a
/// gauge, or a presence that stays online until its heartbeat timeout.
struct SocketGuard {
    hub: Arc<Hub>,
    conn: ConnId,
    ctl: Arc<ConnCtl>,
    session: Session,
    /// Why the socket ended; `Closed` until the task says otherwise (and after a panic).
    reason: LeaveReason,
}

impl SocketGuard {
    /// Registers a connection the engine already knows: its control block and the socket gauge.
    fn register(hub: Arc<Hub>, conn: ConnId, ctl: Arc<ConnCtl>, session: Session) -> SocketGuard {
        hub.conns.insert(conn, ctl.clone());
        hub.sockets.fetch_add(1, Ordering::Relaxed);
        SocketGuard {
            hub,
            conn,
            ctl,
            session,
            reason: LeaveReason::Closed,
        }
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.hub.metrics.error("socket_task_panic");
            tracing::error!(
                conn = self.conn.0,
                "socket task panicked; releasing its state"
            );
        }
        self.session.close(self.reason);
        self.ctl.close();
        self.hub.conns.remove(&self.conn);
        self.hub.sockets.fetch_sub(1, Ordering::Relaxed);
        self.hub.sockets_changed.notify_waiters();
        tracing::debug!(
            conn = self.conn.0,
            reason = self.reason.as_str(),
            "disconnected"
        );
    }
}

/// The longest single timer wait. Deadlines further out (a token `exp` of 1e19, a huge
/// `join_timeout`) are capped here instead of overflowing the clock; a capped timer that fires
/// finds nothing due and is set again.
const MAX_TIMER: Duration = Duration::from_secs(365 * 24 * 3600);

/// `now + wait` without overflow: the wait is capped at [`MAX_TIMER`].
fn deadline_after(now: Instant, wait: Duration) -> Instant {
    // A monotonic clock counts from boot: a year more cannot overflow it; `now` is a
    // fallback that is never taken.
    now.checked_add(wait.min(MAX_TIMER)).unwrap_or(now)
}

async fn drive(
    socket: WebSocket,
    session: &mut Session,
    ctl: &ConnCtl,
    shutdown: &mut watch::Receiver<bool>,
    join_timeout: Duration,
) -> LeaveReason {
    let (mut sink, mut stream) = socket.split();
    if *shutdown.borrow() {
        return LeaveReason::Shutdown;
    }
    let join_deadline = deadline_after(Instant::now(), join_timeout);
    loop {
        // Token expiry of the earliest joined channel (Unix seconds → a deadline).
        let expiry = session.next_token_expiry().map(|exp| {
            let wait = Duration::from_secs(exp.saturating_sub(unix_now()));
            deadline_after(Instant::now(), wait)
        });
        let outcome = tokio::select! {
            biased;
            why = ctl.killed() => Err(why),
            _ = shutdown.changed() => {
                session.close_all_channels();
                let _ = tokio::time::timeout(Duration::from_millis(500), drain(&mut sink, ctl)).await;
                close(&mut sink, 1001, "server shutting down", 500).await;
                return LeaveReason::Shutdown;
            }
            _ = tokio::time::sleep_until(join_deadline), if !session.joined_once() => {
                session.hub().metrics.error("join_timeout");
                close(&mut sink, 1008, "no channel joined within join_timeout", 200).await;
                return LeaveReason::Closed;
            }
            _ = tokio::time::sleep_until(expiry.unwrap_or(join_deadline)), if expiry.is_some() => {
                session.expire_tokens(unix_now());
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
                    Some(Ok(Message::Text(text))) => session.handle_text(&text),
                    Some(Ok(Message::Binary(data))) => session.handle_binary(&data),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => session.touch(),
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
                        let _ =
                            tokio::time::timeout(Duration::from_millis(200), drain(&mut sink, ctl))
                                .await;
                        (1008, "Too many joins per second", LeaveReason::Closed)
                    }
                };
                close(&mut sink, code, text, 100).await;
                return reason;
            }
        }
    }
}

/// What a failed read means for the socket (RFC 6455 §7.4.1), classified by the error's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadError {
    /// A message or frame over `max_frame_bytes`: close 1009.
    TooBig,
    /// A text message that is not UTF-8: close 1007.
    InvalidUtf8,
    /// Any other violation of the framing rules (reserved bits, unmasked frame, bad opcode,
    /// fragmented control frame, …): close 1002.
    Protocol,
    /// The transport failed or the peer vanished: no close frame can be delivered.
    Transport,
}

impl ReadError {
    fn of(e: &axum::Error) -> ReadError {
        use tungstenite::Error as WsError;
        use tungstenite::error::ProtocolError;
        let inner = std::error::Error::source(e).and_then(|s| s.downcast_ref::<WsError>());
        match inner {
            Some(WsError::Capacity(_)) => ReadError::TooBig,
            Some(WsError::Utf8(_)) => ReadError::InvalidUtf8,
            Some(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                ReadError::Transport
            }
            Some(WsError::Protocol(_)) => ReadError::Protocol,
            _ => ReadError::Transport,
        }
    }

    /// The `rollcall_errors_total` reason.
    fn metric(self) -> &'static str {
        match self {
            ReadError::TooBig => "frame_too_large",
            ReadError::InvalidUtf8 => "invalid_utf8",
            ReadError::Protocol => "protocol_error",
            ReadError::Transport => "websocket_error",
        }
    }

    /// The close frame to send, if the peer can still receive one.
    fn close_frame(self) -> Option<(u16, &'static str)> {
        match self {
            ReadError::TooBig => Some((1009, "message too big")),
            ReadError::InvalidUtf8 => Some((1007, "invalid UTF-8 in a text message")),
            ReadError::Protocol => Some((1002, "protocol error")),
            ReadError::Transport => None,
        }
    }
}

/// True for a `Sec-WebSocket-Key` that is the base64 of 16 bytes: 22 base64 characters and
/// `==` (RFC 6455 §4.1). Only the length is checked in the last character's unused bits.
fn valid_websocket_key(key: &[u8]) -> bool {
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    key.len() == 24 && key[..22].iter().all(b64) && &key[22..] == b"=="
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

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

/// Writes whatever is queued (used before a deliberate close).
async fn drain(sink: &mut Sink, ctl: &ConnCtl) {
    if let Some(first) = ctl.try_recv() {
        write_batch(sink, first, ctl).await;
    }
}

/// Sends a close frame, waiting at most `wait_ms` (the peer may not be reading).
async fn close(sink: &mut Sink, code: u16, reason: &'static str, wait_ms: u64) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(Duration::from_millis(wait_ms), sink.send(frame)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;

    #[test]
    fn deadlines_far_in_the_future_are_capped_instead_of_overflowing() {
        let now = Instant::now();
        let far = deadline_after(now, Duration::from_secs(10_000_000_000_000_000_000));
        assert_eq!(far, now + MAX_TIMER);
        let near = deadline_after(now, Duration::from_secs(5));
        assert_eq!(near, now + Duration::from_secs(5));
    }

    #[test]
    fn websocket_keys_must_be_the_base64_of_16_bytes() {
        assert!(valid_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(valid_websocket_key(b"6D69KGBOr4Re+Nj6zx9aQA=="));
        for bad in [
            &b"abc"[..],
            b"",
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZQ=",
            b"dGhlIHNhbXBsZSBub25jZ===",
            b"dGhlIHNhbXBsZSBub25j*Q==",
            b"dGhlIHNhbXBsZSBub25jZQ==dGhl",
        ] {
            assert!(
                !valid_websocket_key(bad),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn read_errors_map_to_their_close_codes_by_type() {
        use tungstenite::error::{CapacityError, ProtocolError};
        let of = |e: tungstenite::Error| ReadError::of(&axum::Error::new(e));
        let utf8 = std::str::from_utf8(&[0xff, 0xfe][..]).unwrap_err();
        assert_eq!(of(tungstenite::Error::from(utf8)), ReadError::InvalidUtf8);
        let big = CapacityError::MessageTooLong {
            size: 2,
            max_size: 1,
        };
        assert_eq!(of(big.into()), ReadError::TooBig);
        assert_eq!(
            of(ProtocolError::NonZeroReservedBits.into()),
            ReadError::Protocol
        );
        assert_eq!(
            of(ProtocolError::ResetWithoutClosingHandshake.into()),
            ReadError::Transport
        );
        assert_eq!(
            of(tungstenite::Error::ConnectionClosed),
            ReadError::Transport
        );
        assert_eq!(
            ReadError::InvalidUtf8.close_frame().map(|c| c.0),
            Some(1007)
        );
        assert_eq!(ReadError::Protocol.close_frame().map(|c| c.0), Some(1002));
        assert_eq!(ReadError::TooBig.close_frame().map(|c| c.0), Some(1009));
    }

    #[tokio::test]
    async fn a_panicking_socket_task_releases_its_slot_gauges_and_presence() {
        let hub = Hub::new(ServerConfig::default()).unwrap();
        let task_hub = hub.clone();
        let task = tokio::spawn(async move {
            let hub = task_hub;
            let conn = hub.next_conn_id();
            let (outbox, ctl) = Outbox::new(64, 1 << 16);
            hub.engine.connect(conn, hub.now()).unwrap();
            let session = Session::new(hub.clone(), conn, Vsn::V2, outbox, None);
            let mut guard = SocketGuard::register(hub.clone(), conn, ctl, session);
            guard.session.handle_text(
                r#"["1","1","realtime:g","phx_join",{"config":{"presence":{"key":"ghost"}}}]"#,
            );
            guard.session.handle_text(
                r#"["1","2","realtime:g","presence",{"type":"presence","event":"track","payload":{}}]"#,
            );
            assert_eq!(hub.engine.list("realtime:g").len(), 1);
            assert_eq!(hub.sockets.load(Ordering::Relaxed), 1);
            assert_eq!(hub.channels.load(Ordering::Relaxed), 1);
            panic!("a bug in the socket task");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert!(hub.engine.list("realtime:g").is_empty(), "no ghost");
        assert_eq!(hub.sockets.load(Ordering::Relaxed), 0, "slot released");
        assert_eq!(hub.channels.load(Ordering::Relaxed), 0, "channel gauge");
        assert!(hub.conns.is_empty());
        assert!(hub.registry.is_empty(), "no subscription left");
        assert_eq!(hub.metrics.errors_of("socket_task_panic"), 1);
    }
}
