//! Deadlines (heartbeats, join and reply timeouts, rejoin retries, deferred closes) and the
//! end of a connection.

use tokio::time::Instant;

use super::{ChanState, Driver, Pending};
use crate::error::ChannelError;
use crate::event::ChannelEvent;
use rollcall_phoenix::event;

impl Driver {
    pub(super) fn next_wake(&self) -> Instant {
        let mut wake = self.next_heartbeat;
        for c in self.channels.values() {
            for t in [c.retry_at, c.join_deadline].into_iter().flatten() {
                wake = wake.min(t);
            }
        }
        let pending = self.pending.values().map(|(_, d)| *d);
        for deadline in pending.chain(self.closing.iter().map(|(_, d)| *d)) {
            wake = wake.min(deadline);
        }
        wake
    }

    /// Heartbeats, join deadlines, rejoin retries, reply timeouts. False: heartbeat timed out.
    pub(super) fn handle_timeout(&mut self, now: Instant) -> bool {
        if now >= self.next_heartbeat {
            if self.heartbeat_ref.is_some() {
                return false;
            }
            let r = self.push(None, event::PHOENIX_TOPIC, event::HEARTBEAT, "{}");
            self.heartbeat_ref = Some(r.clone());
            self.pending.insert(
                r,
                (Pending::Heartbeat, now + self.cfg.heartbeat_interval * 2),
            );
            self.next_heartbeat = now + self.cfg.heartbeat_interval;
        }
        let ms = self.cfg.push_timeout.as_millis() as u64;
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, (p, d))| *d <= now && !matches!(p, Pending::Heartbeat))
            .map(|(r, _)| r.clone())
            .collect();
        for r in expired {
            if let Some((Pending::Push { replies }, _)) = self.pending.remove(&r) {
                replies
                    .into_iter()
                    .for_each(|t| drop(t.send(Err(ChannelError::TimedOut(ms)))));
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = self.closing.drain(..).partition(|(_, d)| *d <= now);
        self.closing = later;
        for (topic, _) in due {
            self.close_channel(&topic);
        }
        let topics: Vec<String> = self.channels.keys().cloned().collect();
        for topic in topics {
            let chan = &mut self.channels[&topic];
            if chan.join_deadline.is_some_and(|d| d <= now) {
                chan.join_deadline = None;
                self.join_failed(&topic, ChannelError::TimedOut(ms));
            } else if chan.retry_at.is_some_and(|d| d <= now) {
                chan.retry_at = None;
                self.send_join(&topic);
            }
        }
        true
    }

    /// The socket closed: fail what awaited a reply, keep channels (and their presence maps)
    /// to rejoin on the next open.
    pub(super) fn on_lost(&mut self) {
        self.conn_tx.send_modify(|c| c.open = false);
        self.heartbeat_ref = None;
        self.out.clear();
        self.closing.clear();
        for (_, (p, _)) in self.pending.drain() {
            if let Pending::Push { replies } = p {
                replies
                    .into_iter()
                    .for_each(|t| drop(t.send(Err(ChannelError::Disconnected))));
            }
        }
        for chan in self.channels.values_mut() {
            chan.state = ChanState::Waiting;
            chan.join_ref = None;
            chan.retry_at = None;
            chan.join_deadline = None;
            chan.rejoin_attempt = 0;
        }
    }

    pub(super) fn finish(&mut self) {
        self.conn_tx.send_modify(|c| c.open = false);
        for (_, chan) in self.channels.drain(..) {
            let _ = chan.shared.events.send(ChannelEvent::Closed);
            chan.join_waiters
                .into_iter()
                .for_each(|t| drop(t.send(Err(ChannelError::ClientClosed))));
        }
        for (_, (p, _)) in self.pending.drain() {
            if let Pending::Push { replies } = p {
                replies
                    .into_iter()
                    .for_each(|t| drop(t.send(Err(ChannelError::ClientClosed))));
            }
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
