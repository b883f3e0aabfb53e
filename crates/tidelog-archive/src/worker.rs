//! What the archive's background threads (the archiver's, a standby's) share: waiting for
//! their watermark to reach an LSN, and stopping them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tidelog::Lsn;

use crate::error::{Error, Result};

/// Waits until the watermark `at` reads from the status behind `lock` reaches `lsn`, at most
/// `timeout`, woken by `changed`.
///
/// # Errors
/// [`Error::Timeout`], or [`Error::Stopped`] once `stopped` gives the status a reason.
pub(crate) fn wait_for<S>(
    (lock, changed): (&Mutex<S>, &Condvar),
    lsn: Lsn,
    timeout: Duration,
    at: impl Fn(&S) -> Lsn,
    stopped: impl Fn(&S) -> Option<&String>,
) -> Result<()> {
    let deadline = Instant::now().checked_add(timeout);
    let mut status = lock.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if at(&status) >= lsn {
            return Ok(());
        }
        if let Some(reason) = stopped(&status) {
            return Err(Error::Stopped {
                reason: reason.clone(),
            });
        }
        let left = deadline.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(Instant::now())
        });
        if left.is_zero() {
            return Err(Error::Timeout {
                lsn,
                archived: at(&status),
            });
        }
        status = changed
            .wait_timeout(status, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// Asks the thread to stop (`stop`) and joins it; its result, or [`Error::Stopped`] naming
/// `what` if it panicked.
pub(crate) fn stop(
    stop: &AtomicBool,
    thread: &mut Option<JoinHandle<Result<()>>>,
    what: &str,
) -> Result<()> {
    stop.store(true, Ordering::SeqCst);
    match thread.take().map(JoinHandle::join) {
        Some(Ok(result)) => result,
        Some(Err(_)) => Err(Error::Stopped {
            reason: format!("the {what} thread panicked"),
        }),
        None => Ok(()),
    }
}
