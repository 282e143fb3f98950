//! Fixed-window rate counters for the per-connection and per-channel limits.

use rollcall_core::Millis;

/// Counts events in fixed windows of `window`; allows `max` per window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateWindow {
    started: Millis,
    count: u32,
}

impl RateWindow {
    /// A window that opens at the first event.
    pub(crate) fn new() -> RateWindow {
        RateWindow {
            started: Millis::ZERO,
            count: 0,
        }
    }

    /// Records one event at `now`; false when it is over `max` within the current window.
    /// As Supabase's presence limit: the first call opens the window, calls 2..=max pass,
    /// call max+1 within the window fails.
    pub(crate) fn allow(&mut self, now: Millis, window: Millis, max: u32) -> bool {
        if self.count == 0 || now.saturating_sub(self.started) >= window {
            self.started = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count <= max
    }
}

impl Default for RateWindow {
    fn default() -> Self {
        RateWindow::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_call_in_a_window_of_five_fails_and_a_new_window_resets() {
        let mut w = RateWindow::new();
        for i in 0..5 {
            assert!(w.allow(Millis(i * 100), Millis(30_000), 5));
        }
        assert!(!w.allow(Millis(600), Millis(30_000), 5));
        assert!(w.allow(Millis(30_000), Millis(30_000), 5));
    }
}
