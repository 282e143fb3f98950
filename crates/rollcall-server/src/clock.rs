//! Where time enters the server: the one place that reads a clock.
//!
//! Everything else takes time as a value: the engine and the sessions get [`Millis`] since
//! the clock's start ([`Clock::now`]), token checks get Unix seconds ([`Clock::unix_secs`]),
//! and the socket task turns an engine time into a timer deadline with [`Clock::deadline`].
//! A [`Clock::manual`] clock only moves when told to ([`ManualClock::advance`]), so a test
//! can drive sessions, rate windows, token expiry and heartbeat timeouts deterministically.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rollcall_core::Millis;

/// The longest single timer wait. Deadlines further out (a token `exp` of 1e19, a huge
/// `join_timeout`) are capped here instead of overflowing the clock; a capped timer that fires
/// finds nothing due and is set again.
pub const MAX_TIMER: Duration = Duration::from_secs(365 * 24 * 3600);

/// The server's clock: the system's, or a manual one for tests. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Monotonic time since start, anchored to the wall clock once at start.
    System {
        /// When the clock started (engine time 0).
        start: Instant,
        /// Unix milliseconds at `start`.
        start_unix_ms: u64,
    },
    /// Time that only moves when a test advances it.
    Manual(Arc<ManualClock>),
}

/// The state of a [`Clock::Manual`] clock, shared by its clones.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicU64,
    start_unix_ms: u64,
}

impl ManualClock {
    /// Moves time forward by `by`.
    pub fn advance(&self, by: Millis) {
        self.now.fetch_add(by.0, Ordering::SeqCst);
    }

    /// Sets the time (never backwards: an earlier `to` is ignored).
    pub fn set(&self, to: Millis) {
        self.now.fetch_max(to.0, Ordering::SeqCst);
    }
}

fn system_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Clock {
    /// The system clock, starting now.
    pub fn system() -> Clock {
        Clock::System {
            start: Instant::now(),
            start_unix_ms: system_unix_ms(),
        }
    }

    /// A manual clock at engine time 0 = `start_unix_ms`; returns the clock and its handle.
    pub fn manual(start_unix_ms: u64) -> (Clock, Arc<ManualClock>) {
        let state = Arc::new(ManualClock {
            now: AtomicU64::new(0),
            start_unix_ms,
        });
        (Clock::Manual(state.clone()), state)
    }

    /// Milliseconds since the clock started: the engine's time.
    pub fn now(&self) -> Millis {
        match self {
            Clock::System { start, .. } => Millis(start.elapsed().as_millis() as u64),
            Clock::Manual(m) => Millis(m.now.load(Ordering::SeqCst)),
        }
    }

    /// Unix milliseconds at engine time 0.
    pub fn start_unix_ms(&self) -> u64 {
        match self {
            Clock::System { start_unix_ms, .. } => *start_unix_ms,
            Clock::Manual(m) => m.start_unix_ms,
        }
    }

    /// Converts an engine time to Unix milliseconds.
    pub fn to_unix_ms(&self, t: Millis) -> u64 {
        self.start_unix_ms().saturating_add(t.0)
    }

    /// The engine time of a Unix time in seconds (0 for times before the start).
    pub fn from_unix_secs(&self, secs: u64) -> Millis {
        Millis(
            secs.saturating_mul(1000)
                .saturating_sub(self.start_unix_ms()),
        )
    }

    /// Unix seconds now (token `exp` / `nbf` checks).
    pub fn unix_secs(&self) -> u64 {
        self.to_unix_ms(self.now()) / 1000
    }

    /// The timer deadline of engine time `at` (`at` in the past: now). Waits are capped at
    /// [`MAX_TIMER`]. A manual clock maps `at` relative to the runtime's current instant.
    pub fn deadline(&self, at: Millis) -> tokio::time::Instant {
        let wait = Duration::from_millis(at.0.saturating_sub(self.now().0));
        self.deadline_in(wait)
    }

    /// The timer deadline `wait` from now (capped at [`MAX_TIMER`]).
    pub fn deadline_in(&self, wait: Duration) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        // A monotonic clock counts from boot: a year more cannot overflow it; `now` is a
        // fallback that is never taken.
        now.checked_add(wait.min(MAX_TIMER)).unwrap_or(now)
    }

    /// Time left until `deadline` (zero once passed).
    pub fn until(&self, deadline: tokio::time::Instant) -> Duration {
        deadline.saturating_duration_since(tokio::time::Instant::now())
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_never_back() {
        let (clock, hand) = Clock::manual(1_700_000_000_000);
        assert_eq!(clock.now(), Millis(0));
        hand.advance(Millis(1500));
        assert_eq!(clock.now(), Millis(1500));
        hand.set(Millis(1000));
        assert_eq!(clock.now(), Millis(1500), "not backwards");
        assert_eq!(clock.unix_secs(), 1_700_000_001);
        assert_eq!(clock.to_unix_ms(Millis(2)), 1_700_000_000_002);
        assert_eq!(clock.from_unix_secs(1_700_000_003), Millis(3000));
        assert_eq!(clock.from_unix_secs(5), Millis(0), "before the start");
    }

    #[tokio::test]
    async fn deadlines_far_in_the_future_are_capped_instead_of_overflowing() {
        let (clock, _) = Clock::manual(0);
        let before = tokio::time::Instant::now();
        let far = clock.deadline(Millis(u64::MAX));
        assert!(far >= before + MAX_TIMER);
        assert!(far <= tokio::time::Instant::now() + MAX_TIMER);
        let near = clock.deadline_in(Duration::from_secs(5));
        assert!(near <= tokio::time::Instant::now() + Duration::from_secs(5));
        assert!(near >= before + Duration::from_secs(5));
    }
}
