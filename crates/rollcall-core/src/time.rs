//! Time as the core sees it: a monotonic millisecond count passed in by the caller.
//!
//! The core never reads a clock. Adapters convert their own clock (e.g. `tokio::time::Instant`
//! relative to process start) to [`Millis`] and pass it to every time-dependent call, so tests
//! move time exactly.

use std::fmt;
use std::ops::{Add, Sub};

/// A point on the caller's monotonic clock, or a duration, in milliseconds.
///
/// One type serves both roles (as `u64` milliseconds would) so that arithmetic stays simple;
/// the field and parameter names say which one is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// Zero milliseconds: the start of the clock, or an empty duration.
    pub const ZERO: Millis = Millis(0);

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Millis {
        Millis(secs * 1000)
    }

    /// `self - earlier`, or zero when `earlier` is later (clocks passed in may be equal).
    pub fn saturating_sub(self, earlier: Millis) -> Millis {
        Millis(self.0.saturating_sub(earlier.0))
    }

    /// The value as a `std::time::Duration`, for adapters that sleep.
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl Add for Millis {
    type Output = Millis;
    fn add(self, rhs: Millis) -> Millis {
        Millis(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Millis {
    type Output = Millis;
    fn sub(self, rhs: Millis) -> Millis {
        self.saturating_sub(rhs)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtraction_never_underflows() {
        assert_eq!(Millis(5) - Millis(9), Millis::ZERO);
        assert_eq!(Millis(9) - Millis(5), Millis(4));
    }

    #[test]
    fn addition_saturates_instead_of_wrapping() {
        assert_eq!(Millis(u64::MAX) + Millis(1), Millis(u64::MAX));
        assert_eq!(Millis::from_secs(2), Millis(2000));
    }
}
