//! The session's timers, as values: when it next needs the time ([`Session::poll_timeout`])
//! and what happens then ([`Session::handle_timeout`]): the join timeout and token expiry.

use rollcall_core::Millis;

use super::Session;

/// A close the socket task must perform: the session decided the socket ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClose {
    /// The WebSocket close code.
    pub code: u16,
    /// The close reason.
    pub reason: &'static str,
}

/// No channel was joined within `join_timeout`.
pub(super) const JOIN_TIMEOUT: SessionClose = SessionClose {
    code: 1008,
    reason: "no channel joined within join_timeout",
};

impl Session {
    /// The earliest time [`Session::handle_timeout`] has something to do: the join deadline
    /// while nothing was joined, the earliest token expiry of the joined channels.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let join = (!self.joined_once).then_some(self.join_deadline);
        let expiry = self.next_token_expiry().map(|exp| {
            // A token valid through second `exp` expires when the clock reaches it.
            self.hub.clock.from_unix_secs(exp)
        });
        match (join, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles the timers due at `now`: ends the channels whose token expired, and returns
    /// the close to perform when nothing was joined in time.
    pub fn handle_timeout(&mut self, now: Millis) -> Option<SessionClose> {
        self.set_now(now);
        if !self.joined_once && self.now >= self.join_deadline {
            self.hub.metrics.error("join_timeout");
            return Some(JOIN_TIMEOUT);
        }
        self.expire_tokens();
        None
    }

    /// The earliest token expiry among joined channels (Unix seconds).
    fn next_token_expiry(&self) -> Option<u64> {
        self.channels.values().filter_map(|c| c.exp).min()
    }

    /// Ends every channel whose token expired at the current time.
    fn expire_tokens(&mut self) {
        let now = self.unix_secs();
        let expired: Vec<(String, u64)> = self
            .channels
            .iter()
            .filter_map(|(t, c)| c.exp.filter(|e| *e <= now).map(|e| (t.clone(), e)))
            .collect();
        for (topic, exp) in expired {
            let msg = format!("Token has expired {} seconds ago", now.saturating_sub(exp));
            self.end_channel(&topic, "token_expired", &msg);
        }
    }
}
