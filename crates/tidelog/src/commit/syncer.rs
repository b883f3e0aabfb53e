//! The background syncer: one thread per writable log that syncs on the
//! [`SyncPolicy`]'s timer or byte count, and for [`DurableFuture`](crate::DurableFuture)s, which
//! must not block their executor.
//!
//! Invariants: a request is taken when the syncer acts on it, and a byte count with nothing
//! unsynced behind it is dropped, so a rollback that lowers the durable LSN below what woke the
//! syncer never leaves it spinning; the syncer stops on a poisoned or closed
//! log (every waiter has been told by then) and goes on after a rollback; a panic inside it
//! poisons the log (the leader's step holds a [`PanicGuard`](crate::log::PanicGuard)).

use crate::sync::{Condvar, Mutex};
use std::sync::atomic::Ordering;

use super::Deadline;
use super::deadline::Waited;
use crate::error::Error;
use crate::log::Inner;
use crate::options::SyncPolicy;
use crate::types::Lsn;

/// What the syncer thread is asked to do, and how it is woken.
#[derive(Debug, Default)]
pub(crate) struct Background {
    state: Mutex<Requests>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Requests {
    stop: bool,
    /// Highest LSN an async waiter asked to be made durable since the syncer last looked.
    requested: Lsn,
}

impl Background {
    /// Asks the thread to stop.
    pub(crate) fn stop(&self) {
        if let Ok(mut r) = self.state.lock() {
            r.stop = true;
            self.wake.notify_all();
        }
    }

    /// Asks the thread to make `target` durable.
    pub(crate) fn request(&self, target: Lsn) {
        if let Ok(mut r) = self.state.lock() {
            r.requested = r.requested.max(target);
            self.wake.notify_all();
        }
    }

    /// Wakes the thread to look at the byte count.
    pub(crate) fn wake(&self) {
        if let Ok(_r) = self.state.lock() {
            self.wake.notify_all();
        }
    }

    /// Waits until a sync is due: a request (taken), `due()`, or `interval` elapsed. `false`
    /// once the thread should stop.
    fn next_due(&self, interval: Option<std::time::Duration>, due: impl Fn() -> bool) -> bool {
        let Ok(mut r) = self.state.lock() else {
            return false;
        };
        let deadline = Deadline::within(interval);
        loop {
            if r.stop {
                return false;
            }
            if r.requested > Lsn::ZERO {
                r.requested = Lsn::ZERO;
                return true;
            }
            if due() {
                return true;
            }
            match deadline.wait(&self.wake, r) {
                Ok(Waited::Woken(g)) => r = g,
                Ok(Waited::Expired) => return true,
                Err(()) => return false,
            }
        }
    }
}

impl Inner {
    /// The syncer thread's loop.
    pub(crate) fn run_syncer(&self, policy: SyncPolicy) {
        let interval = match policy {
            SyncPolicy::Interval(every) => Some(every),
            _ => None,
        };
        let bytes_due = || match policy {
            SyncPolicy::Bytes(limit) => self.unsynced_bytes.load(Ordering::Acquire) >= limit,
            _ => false,
        };
        while self.background.next_due(interval, bytes_due) {
            let counted = self.unsynced_bytes.load(Ordering::Acquire);
            let Ok((last, generation)) = self
                .state()
                .map(|st| (st.last_lsn(), self.commit.generation()))
            else {
                return;
            };
            if last > self.commit.durable() {
                match self.sync_to(last, generation) {
                    // A rollback took some of those records; the rest are someone else's.
                    Ok(()) | Err(Error::RolledBack { .. }) => {}
                    // Poisoned or closed: every waiter has been told.
                    Err(_) => return,
                }
            } else {
                // Nothing is unsynced: a rollback or reset took the bytes counted so far, which
                // would otherwise keep the byte count due (and the syncer busy) until the next
                // append. Bytes counted since the look are kept.
                let _ =
                    self.unsynced_bytes
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                            Some(b.saturating_sub(counted))
                        });
            }
        }
    }
}
