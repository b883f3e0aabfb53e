//! [`Deadline`]: the one way every timed wait in the log turns a user's timeout into a point in
//! time.
//!
//! A timeout too large to add to the clock (`Duration::MAX`, say) means "wait forever", never a
//! panic: every wait goes through [`Deadline::after`] and [`Deadline::wait`], so no call site
//! adds a duration to an [`Instant`] by hand.

use std::time::{Duration, Instant};

use crate::sync::{Condvar, MutexGuard};

/// When a wait gives up: at an instant, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline(Option<Instant>);

/// What one step of a timed wait saw.
pub(crate) enum Waited<'a, T> {
    /// Woken (or spuriously): check the condition again.
    Woken(MutexGuard<'a, T>),
    /// The deadline passed (the lock is released).
    Expired,
}

impl Deadline {
    /// A deadline that never passes.
    pub(crate) const NEVER: Deadline = Deadline(None);

    /// `timeout` from now; one too far in the future to represent never passes.
    pub(crate) fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// `timeout` from now, or never for `None`.
    pub(crate) fn within(timeout: Option<Duration>) -> Deadline {
        timeout.map_or(Deadline::NEVER, Deadline::after)
    }

    /// Whether it has passed.
    pub(crate) fn expired(self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }

    /// Time left, or `None` for a deadline that never passes.
    pub(crate) fn remaining(self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Waits on `condvar` until woken or until the deadline; `Err` if the mutex is poisoned.
    pub(crate) fn wait<'a, T>(
        self,
        condvar: &Condvar,
        guard: MutexGuard<'a, T>,
    ) -> Result<Waited<'a, T>, ()> {
        match self.remaining() {
            None => condvar.wait(guard).map(Waited::Woken).map_err(|_| ()),
            Some(left) if left.is_zero() => Ok(Waited::Expired),
            Some(left) => wait_timeout(condvar, guard, left).map(Waited::Woken),
        }
    }
}

#[cfg(not(loom))]
fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> Result<MutexGuard<'a, T>, ()> {
    condvar
        .wait_timeout(guard, timeout)
        .map(|(g, _)| g)
        .map_err(|_| ())
}

/// Loom has no clock: a timed wait is an untimed one there.
#[cfg(loom)]
fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    _timeout: Duration,
) -> Result<MutexGuard<'a, T>, ()> {
    condvar.wait(guard).map_err(|_| ())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_past_the_clock_never_expires() {
        let d = Deadline::after(Duration::MAX);
        assert_eq!(d, Deadline::NEVER);
        assert!(!d.expired());
        assert_eq!(d.remaining(), None);
    }

    #[test]
    fn a_zero_timeout_has_expired() {
        let d = Deadline::after(Duration::ZERO);
        assert!(d.expired());
        assert_eq!(d.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn an_expired_wait_returns_without_blocking() {
        let m = crate::sync::Mutex::new(());
        let cv = Condvar::new();
        let guard = m.lock().expect("unpoisoned");
        let waited = Deadline::after(Duration::ZERO).wait(&cv, guard);
        assert!(matches!(waited, Ok(Waited::Expired)));
    }
}
