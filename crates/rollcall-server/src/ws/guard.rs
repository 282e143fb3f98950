//! The socket task's drop guard: whatever ends the task, what the socket held is released.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rollcall_core::{ConnId, LeaveReason};

use crate::hub::{ConnCtl, Hub};
use crate::session::Session;

/// What one socket registered with the hub, released exactly once when the socket task ends:
/// normally, when the task is cancelled, and when it panics (tokio drops a panicked task's
/// future, so this runs while unwinding). No panic can leak a `max_connections` slot, a
/// gauge, or a presence that stays online until its heartbeat timeout.
pub(super) struct SocketGuard {
    hub: Arc<Hub>,
    conn: ConnId,
    pub(super) ctl: Arc<ConnCtl>,
    pub(super) session: Session,
    /// Why the socket ended; `Closed` until the task says otherwise (and after a panic).
    pub(super) reason: LeaveReason,
}

impl SocketGuard {
    /// Registers a connection the engine already knows: its control block and the socket gauge.
    pub(super) fn register(
        hub: Arc<Hub>,
        conn: ConnId,
        ctl: Arc<ConnCtl>,
        session: Session,
    ) -> SocketGuard {
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
        self.session.close(self.hub.now(), self.reason);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;
    use crate::hub::Outbox;
    use rollcall_phoenix::Vsn;

    #[tokio::test]
    async fn a_panicking_socket_task_releases_its_slot_gauges_and_presence() {
        let hub = Hub::new(ServerConfig::default()).unwrap();
        let task_hub = hub.clone();
        let task = tokio::spawn(async move {
            let hub = task_hub;
            let conn = hub.next_conn_id();
            let (outbox, ctl) = Outbox::new(64, 1 << 16);
            hub.engine.connect(conn, hub.now()).unwrap();
            let session = Session::new(hub.clone(), conn, Vsn::V2, outbox, None, hub.now());
            let mut guard = SocketGuard::register(hub.clone(), conn, ctl, session);
            guard.session.handle_text(
                hub.now(),
                r#"["1","1","realtime:g","phx_join",{"config":{"presence":{"key":"ghost"}}}]"#,
            );
            guard.session.handle_text(
                hub.now(),
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
