//! Group commit: the watermarks and the leader/follower protocol, with no I/O of its own.
//!
//! Writers hand regions of the log (contiguous LSN ranges) to the storage concurrently and may
//! finish out of order; [`GroupCommit::complete`] records each finished region and advances the
//! *written* watermark only over a gap-free prefix, so a crash can never leave a durable record
//! behind a hole. Callers that want durability go through [`GroupCommit::commit`]: the first one
//! that finds nobody syncing becomes the leader and runs the injected `lead` step (write out what
//! is buffered, fsync, return the LSN made durable); the others wait and return as soon as a
//! leader's sync covers them. A failed `lead` poisons the state: every caller waiting at that
//! moment gets the real error, every later one [`Error::Poisoned`].
//!
//! The primitives come from `crate::sync`, so loom can model this module.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard, Ordering};
use crate::types::Lsn;

/// The first failure that poisoned the log, kept so every waiter it covered gets the real error.
#[derive(Debug, Clone)]
pub(crate) struct Cause {
    pub(crate) op: &'static str,
    pub(crate) path: PathBuf,
    pub(crate) kind: io::ErrorKind,
    pub(crate) message: String,
}

impl Cause {
    pub(crate) fn of(err: &Error, fallback_path: &std::path::Path) -> Cause {
        match err {
            Error::Io { op, path, source } => Cause {
                op,
                path: path.clone(),
                kind: source.kind(),
                message: source.to_string(),
            },
            other => Cause {
                op: "update",
                path: fallback_path.to_path_buf(),
                kind: io::ErrorKind::Other,
                message: other.to_string(),
            },
        }
    }

    fn to_error(&self) -> Error {
        Error::Io {
            op: self.op,
            path: self.path.clone(),
            source: io::Error::new(self.kind, self.message.clone()),
        }
    }
}

#[derive(Debug, Default)]
struct Progress {
    /// Every record up to here was handed to the storage, with no gap.
    written: Lsn,
    /// Finished regions beyond `written`: first LSN → last LSN.
    done: BTreeMap<u64, u64>,
    /// Every record up to here is on stable storage.
    durable: Lsn,
    /// A leader is running its `lead` step.
    syncing: bool,
    cause: Option<Cause>,
    /// Async waiters: the LSN each waits for.
    wakers: Vec<(Lsn, Waker)>,
}

/// What a leader's `lead` step reports: the LSN it made durable, and the rollback epoch it saw
/// when it chose that LSN.
pub(crate) struct Synced {
    pub(crate) lsn: Lsn,
    pub(crate) epoch: u64,
}

/// The group-commit state of one log.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    progress: Mutex<Progress>,
    changed: Condvar,
    poisoned: AtomicBool,
    /// The log was closed: waiters give up with [`Error::Closed`].
    closed: AtomicBool,
    /// Mirrors of the watermarks, for lock-free reads.
    durable: AtomicU64,
    written: AtomicU64,
    /// Highest LSN handed to a writer (records above it are still in the log's buffer, so a
    /// caller waiting for one must lead a sync rather than wait for a writer).
    handed: AtomicU64,
    /// Bumped by every rollback, so a sync begun before one cannot raise the durable LSN over
    /// records the rollback removed.
    epoch: AtomicU64,
}

impl GroupCommit {
    /// The state of a log whose records up to `durable` are all on stable storage.
    pub(crate) fn new(durable: Lsn) -> Self {
        let progress = Progress {
            written: durable,
            durable,
            ..Progress::default()
        };
        Self {
            progress: Mutex::new(progress),
            changed: Condvar::new(),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            durable: AtomicU64::new(durable.get()),
            written: AtomicU64::new(durable.get()),
            handed: AtomicU64::new(durable.get()),
            epoch: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Progress>> {
        self.progress.lock().map_err(|_| Error::Poisoned)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Progress>) -> Result<MutexGuard<'a, Progress>> {
        self.changed.wait(guard).map_err(|_| Error::Poisoned)
    }

    pub(crate) fn durable(&self) -> Lsn {
        Lsn::new(self.durable.load(Ordering::Acquire))
    }

    pub(crate) fn written(&self) -> Lsn {
        Lsn::new(self.written.load(Ordering::Acquire))
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the log closed and wakes every waiter, blocking or async, to give up.
    pub(crate) fn close(&self) {
        self.latch(&self.closed, |_| {});
    }

    /// Sets `flag` (under the lock, after `update`), wakes every blocking waiter and every
    /// async one, so each re-checks and sees it.
    fn latch(&self, flag: &AtomicBool, update: impl FnOnce(&mut Progress)) {
        let wakers = match self.progress.lock() {
            Ok(mut p) => {
                update(&mut p);
                flag.store(true, Ordering::Release);
                self.changed.notify_all();
                std::mem::take(&mut p.wakers)
            }
            Err(_) => {
                flag.store(true, Ordering::Release);
                Vec::new()
            }
        };
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// Records that every LSN up to `last` has been handed to a writer.
    pub(crate) fn handed(&self, last: Lsn) {
        self.handed.fetch_max(last.get(), Ordering::AcqRel);
    }

    /// A writer finished the region `first..=last`.
    pub(crate) fn complete(&self, first: Lsn, last: Lsn) -> Result<()> {
        let mut p = self.lock()?;
        p.done.insert(first.get(), last.get());
        let mut advanced = false;
        loop {
            let next = p.written.next().get();
            let Some(last) = p.done.remove(&next) else {
                break;
            };
            p.written = Lsn::new(last);
            advanced = true;
        }
        if advanced {
            self.written.store(p.written.get(), Ordering::Release);
            self.changed.notify_all();
        }
        Ok(())
    }

    /// Marks everything up to `lsn` durable (a sealed segment was synced).
    pub(crate) fn advance_durable(&self, lsn: Lsn) -> Result<()> {
        let mut p = self.lock()?;
        self.raise_durable(&mut p, lsn);
        self.changed.notify_all();
        Ok(())
    }

    fn raise_durable(&self, p: &mut Progress, lsn: Lsn) {
        if lsn > p.durable {
            p.durable = lsn;
            self.durable.store(lsn.get(), Ordering::Release);
            let mut i = 0;
            while i < p.wakers.len() {
                if p.wakers[i].0 <= lsn {
                    p.wakers.swap_remove(i).1.wake();
                } else {
                    i += 1;
                }
            }
        }
    }

    /// After a rollback to `lsn`: every watermark is `lsn` (the caller has made it durable and
    /// made sure no write is in flight).
    pub(crate) fn reset_to(&self, lsn: Lsn) -> Result<()> {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut p = self.lock()?;
        p.written = lsn;
        p.done.clear();
        p.durable = lsn;
        self.written.store(lsn.get(), Ordering::Release);
        self.durable.store(lsn.get(), Ordering::Release);
        self.handed.store(lsn.get(), Ordering::Release);
        Ok(())
    }

    /// Poisons the state with the first failure and wakes every waiter.
    pub(crate) fn poison(&self, cause: Cause) {
        self.latch(&self.poisoned, |p| {
            p.cause.get_or_insert(cause);
        });
    }

    /// The error a caller waiting at the time of the failure gets.
    pub(crate) fn cause_error(&self) -> Error {
        match self.progress.lock() {
            Ok(p) => p.cause.as_ref().map_or(Error::Poisoned, Cause::to_error),
            Err(_) => Error::Poisoned,
        }
    }

    /// Waits until `ready` holds, the state is poisoned (an error), or `deadline` passes
    /// (`Ok(false)`). `ready` is checked under the lock, so whoever makes it true and then calls
    /// [`GroupCommit::notify`] never loses the wake-up.
    pub(crate) fn wait_until(
        &self,
        deadline: Option<Instant>,
        mut ready: impl FnMut(&Self) -> bool,
    ) -> Result<bool> {
        let mut p = self.lock()?;
        loop {
            if ready(self) {
                return Ok(true);
            }
            if self.is_poisoned() {
                return Err(p.cause.as_ref().map_or(Error::Poisoned, Cause::to_error));
            }
            if self.is_closed() {
                return Err(Error::Closed);
            }
            match deadline {
                None => p = self.wait(p)?,
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(false);
                    }
                    p = self.wait_timeout(p, deadline - now)?;
                }
            }
        }
    }

    #[cfg(not(loom))]
    fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, Progress>,
        timeout: Duration,
    ) -> Result<MutexGuard<'a, Progress>> {
        self.changed
            .wait_timeout(guard, timeout)
            .map(|(g, _)| g)
            .map_err(|_| Error::Poisoned)
    }

    #[cfg(loom)]
    fn wait_timeout<'a>(
        &self,
        guard: MutexGuard<'a, Progress>,
        _timeout: Duration,
    ) -> Result<MutexGuard<'a, Progress>> {
        self.wait(guard)
    }

    /// Wakes everyone waiting in [`GroupCommit::wait_until`] to re-check.
    pub(crate) fn notify(&self) {
        if let Ok(_p) = self.progress.lock() {
            self.changed.notify_all();
        }
    }

    /// Registers `waker` to be woken once `target` is durable (or the state is poisoned).
    /// Returns `false` (and registers nothing) if that is already so.
    pub(crate) fn register(&self, target: Lsn, waker: &Waker) -> bool {
        let Ok(mut p) = self.progress.lock() else {
            return false;
        };
        if p.durable >= target || self.is_poisoned() || self.is_closed() {
            return false;
        }
        match p.wakers.iter_mut().find(|(_, w)| w.will_wake(waker)) {
            Some(entry) => entry.0 = entry.0.max(target),
            None => p.wakers.push((target, waker.clone())),
        }
        true
    }

    /// Returns once every record up to `target` is durable, leading syncs as needed; `lead`
    /// writes out what is buffered, fsyncs, and reports what it made durable. With a
    /// `deadline`, gives up waiting then (`Ok(false)`); a running `lead` is never interrupted.
    pub(crate) fn commit(
        &self,
        target: Lsn,
        deadline: Option<Instant>,
        lead: &dyn Fn() -> Result<Synced>,
    ) -> Result<bool> {
        if self.durable() >= target {
            return Ok(true);
        }
        if self.is_poisoned() {
            return Err(Error::Poisoned);
        }
        let mut p = self.lock()?;
        loop {
            if p.durable >= target {
                return Ok(true);
            }
            if self.is_poisoned() {
                // This caller was waiting when the failure happened: it gets the real error.
                return Err(p.cause.as_ref().map_or(Error::Poisoned, Cause::to_error));
            }
            // Lead when nobody is syncing and there is something this caller needs that a
            // sync can reach: records written but not synced, or records still buffered.
            let in_buffer = self.handed.load(Ordering::Acquire) < target.get();
            if !p.syncing && (p.written > p.durable || in_buffer) {
                p.syncing = true;
                drop(p);
                let result = lead();
                p = self.lock()?;
                p.syncing = false;
                match result {
                    Ok(synced) => {
                        if synced.epoch == self.epoch() {
                            self.raise_durable(&mut p, synced.lsn);
                        }
                        self.changed.notify_all();
                    }
                    Err(e) => {
                        drop(p);
                        self.poison(Cause::of(&e, std::path::Path::new("")));
                        return Err(e);
                    }
                }
                continue;
            }
            match deadline {
                None => p = self.wait(p)?,
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(false);
                    }
                    p = self.wait_timeout(p, deadline - now)?;
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn written_advances_only_over_a_gap_free_prefix() {
        let g = GroupCommit::new(Lsn::ZERO);
        g.complete(Lsn::new(4), Lsn::new(6)).unwrap();
        assert_eq!(g.written(), Lsn::ZERO);
        g.complete(Lsn::new(1), Lsn::new(2)).unwrap();
        assert_eq!(g.written(), Lsn::new(2));
        g.complete(Lsn::new(3), Lsn::new(3)).unwrap();
        assert_eq!(g.written(), Lsn::new(6));
    }

    #[test]
    fn a_failed_lead_reaches_the_caller_and_poisons() {
        let g = GroupCommit::new(Lsn::ZERO);
        g.handed(Lsn::new(1));
        g.complete(Lsn::new(1), Lsn::new(1)).unwrap();
        let fail = || -> Result<Synced> {
            Err(Error::Io {
                op: "sync",
                path: "/x".into(),
                source: io::Error::other("disk on fire"),
            })
        };
        assert!(matches!(
            g.commit(Lsn::new(1), None, &fail),
            Err(Error::Io { .. })
        ));
        assert!(matches!(
            g.commit(Lsn::new(1), None, &fail),
            Err(Error::Poisoned)
        ));
        assert_eq!(g.durable(), Lsn::ZERO);
    }

    #[test]
    fn waiters_time_out_without_a_sync() {
        let g = Arc::new(GroupCommit::new(Lsn::ZERO));
        // LSN 1 is handed to a writer that never finishes: nobody can lead a useful sync.
        g.handed(Lsn::new(1));
        let never = || -> Result<Synced> { unreachable_lead() };
        let deadline = Some(Instant::now() + Duration::from_millis(20));
        assert!(!g.commit(Lsn::new(1), deadline, &never).unwrap());
    }

    fn unreachable_lead() -> Result<Synced> {
        Err(Error::Closed)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// A leader step that writes nothing itself and syncs whatever is written.
    fn sync_written(g: &GroupCommit) -> Result<Synced> {
        Ok(Synced {
            lsn: g.written(),
            epoch: g.epoch(),
        })
    }

    #[test]
    fn loom_every_waiter_returns_after_one_covering_sync() {
        loom::model(|| {
            let g = Arc::new(GroupCommit::new(Lsn::ZERO));
            g.handed(Lsn::new(2));
            g.complete(Lsn::new(1), Lsn::new(2)).unwrap();
            let waiters: Vec<_> = (1..=2u64)
                .map(|t| {
                    let g = Arc::clone(&g);
                    thread::spawn(move || {
                        let lead = || sync_written(&g);
                        g.commit(Lsn::new(t), None, &lead).unwrap()
                    })
                })
                .collect();
            for w in waiters {
                assert!(w.join().unwrap());
            }
            assert_eq!(g.durable(), Lsn::new(2));
        });
    }

    #[test]
    fn loom_watermark_never_moves_backwards_with_out_of_order_writers() {
        loom::model(|| {
            let g = Arc::new(GroupCommit::new(Lsn::ZERO));
            g.handed(Lsn::new(2));
            let w1 = {
                let g = Arc::clone(&g);
                thread::spawn(move || g.complete(Lsn::new(2), Lsn::new(2)).unwrap())
            };
            let w2 = {
                let g = Arc::clone(&g);
                thread::spawn(move || g.complete(Lsn::new(1), Lsn::new(1)).unwrap())
            };
            let committer = {
                let g = Arc::clone(&g);
                thread::spawn(move || {
                    let mut last = Lsn::ZERO;
                    let lead = || sync_written(&g);
                    assert!(g.commit(Lsn::new(2), None, &lead).unwrap());
                    for _ in 0..2 {
                        let d = g.durable();
                        assert!(d >= last);
                        last = d;
                    }
                })
            };
            w1.join().unwrap();
            w2.join().unwrap();
            committer.join().unwrap();
            assert_eq!(g.written(), Lsn::new(2));
            assert_eq!(g.durable(), Lsn::new(2));
        });
    }

    #[test]
    fn loom_a_leader_waiting_for_writers_in_flight_is_woken() {
        loom::model(|| {
            let g = Arc::new(GroupCommit::new(Lsn::ZERO));
            g.handed(Lsn::new(2));
            g.complete(Lsn::new(1), Lsn::new(1)).unwrap();
            // As the log's leader does: wait until the regions handed to writers are written,
            // then sync. Its own sync is running, so only the writer's completion can wake it.
            let committer = {
                let g = Arc::clone(&g);
                thread::spawn(move || {
                    let lead = || {
                        g.wait_until(None, |g| g.written() >= Lsn::new(2))?;
                        sync_written(&g)
                    };
                    assert!(g.commit(Lsn::new(2), None, &lead).unwrap());
                })
            };
            let writer = {
                let g = Arc::clone(&g);
                thread::spawn(move || g.complete(Lsn::new(2), Lsn::new(2)).unwrap())
            };
            committer.join().unwrap();
            writer.join().unwrap();
            assert_eq!(g.durable(), Lsn::new(2));
        });
    }

    #[test]
    fn loom_a_failed_sync_reaches_every_covered_waiter() {
        loom::model(|| {
            let g = Arc::new(GroupCommit::new(Lsn::ZERO));
            g.handed(Lsn::new(1));
            g.complete(Lsn::new(1), Lsn::new(1)).unwrap();
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let g = Arc::clone(&g);
                    thread::spawn(move || {
                        let fail = || -> Result<Synced> {
                            Err(Error::Io {
                                op: "sync",
                                path: "/log".into(),
                                source: io::Error::other("injected"),
                            })
                        };
                        g.commit(Lsn::new(1), None, &fail)
                    })
                })
                .collect();
            for w in waiters {
                assert!(
                    w.join().unwrap().is_err(),
                    "no waiter gets Ok from a failed sync"
                );
            }
            assert_eq!(g.durable(), Lsn::ZERO);
        });
    }
}
