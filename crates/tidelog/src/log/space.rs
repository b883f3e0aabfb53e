//! The bounded log ([`Options::capacity_bytes`](crate::Options::capacity_bytes)): what the log
//! holds, the room left, and appends that wait for a checkpoint to free room.
//!
//! Invariant: the bytes the segments hold (headers and frames, written or buffered) never exceed
//! the capacity. A checkpoint that covers every record frees the active segment too (see
//! [`Log::checkpoint`]), so a bounded log can always make progress again after one.

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use super::{Inner, Log, State, lock_any};
use crate::commit::Deadline;
use crate::error::{Error, Result};
use crate::format::SEGMENT_HEADER_LEN;
use crate::options::WhenFull;

impl Log {
    /// Bytes the log holds: segment headers and frames, written or still buffered. This is what
    /// [`Options::capacity_bytes`](crate::Options::capacity_bytes) bounds.
    pub fn used_bytes(&self) -> u64 {
        used_bytes(&lock_any(&self.inner.state))
    }

    /// Room left in a bounded log (`None` if the log is unbounded).
    pub fn free_bytes(&self) -> Option<u64> {
        let used = self.used_bytes();
        self.inner
            .options
            .capacity_bytes
            .map(|c| c.saturating_sub(used))
    }
}

/// Bytes the log's segments hold: headers and frames, written or buffered.
pub(crate) fn used_bytes(st: &State) -> u64 {
    st.segments.iter().map(|s| s.end).sum()
}

impl Inner {
    /// Returns the state lock once an append of `total` bytes fits in the bounded log, waiting
    /// for room as [`Options::when_full`](crate::Options::when_full) says. While it waits it
    /// holds no lock; it wakes when segments leave the log, and gives up when the log is
    /// poisoned or closed.
    pub(crate) fn wait_for_room<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        capacity: u64,
        total: u64,
    ) -> Result<MutexGuard<'a, State>> {
        // The seal that ends the active segment and a new segment's header count too, if the
        // append would roll.
        let needed = |st: &State| {
            let rolls = self.rolls(st.active(), total);
            let roll_bytes = SEGMENT_HEADER_LEN as u64 + crate::format::SEAL_FRAME_LEN as u64;
            total + if rolls { roll_bytes } else { 0 }
        };
        let full = |st: &State| Error::LogFull {
            capacity,
            used: used_bytes(st),
        };
        if needed(&st) + SEGMENT_HEADER_LEN as u64 > capacity {
            return Err(full(&st)); // could never fit
        }
        let deadline = match self.options.when_full {
            WhenFull::Fail => None,
            WhenFull::Wait(timeout) => Some(Deadline::after(timeout)),
        };
        loop {
            if used_bytes(&st) + needed(&st) <= capacity {
                return Ok(st);
            }
            let Some(deadline) = deadline.filter(|d| !d.expired()) else {
                return Err(full(&st));
            };
            // Read under the state lock: a checkpoint bumps it after changing the segments.
            let seen = self.room.load(Ordering::Acquire);
            drop(st);
            let woken = self
                .commit
                .wait_until(deadline, |_| self.room.load(Ordering::Acquire) != seen)?;
            st = self.state()?;
            if !woken && used_bytes(&st) + needed(&st) > capacity {
                return Err(full(&st));
            }
        }
    }
}
