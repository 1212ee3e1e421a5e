//! Time as an input.

use std::fmt::Debug;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

/// The source of "now". Pure crates never read the system clock: they take a `&dyn Clock` or a
/// `now` argument, so tests and simulations control time exactly. `adapters::SystemClock` is the
/// production implementation.
pub trait Clock: Send + Sync + Debug {
    /// The current time. Successive calls never go backwards.
    fn now(&self) -> DateTime<Utc>;
}

/// A clock that moves only when told to: the in-memory implementation for tests and simulations.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use commerce_core::{Clock, ManualClock};
/// let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap());
/// clock.advance(TimeDelta::minutes(15));
/// assert_eq!(clock.now(), Utc.with_ymd_and_hms(2026, 11, 25, 0, 15, 0).unwrap());
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `delta`; a negative delta is ignored, so time never goes back.
    pub fn advance(&self, delta: TimeDelta) {
        if delta > TimeDelta::zero() {
            let mut now = self
                .now
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *now = now.checked_add_signed(delta).unwrap_or(*now);
        }
    }

    /// Sets the clock to `to` if that is not earlier than now.
    pub fn set(&self, to: DateTime<Utc>) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if to > *now {
            *now = to;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
