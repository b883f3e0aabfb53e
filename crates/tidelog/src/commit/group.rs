//! [`GroupCommit`]: the watermarks, the leader/waiter protocol and the rollback generation of one
//! log, with no I/O of its own.
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
//! # Rollbacks
//!
//! A rollback ([`GroupCommit::roll_back`]) lowers every watermark and starts a new *generation*.
//! Whoever learned of an LSN before it (a waiter, a future, a reader, a roll, a leader's sync)
//! carries the generation it saw; a sync or roll of an older generation never raises the durable
//! LSN, and a waiter whose LSN the rollback removed gets [`Error::RolledBack`] instead of `Ok` for
//! a different record that later takes the same LSN.
//!
//! # Waking
//!
//! A blocking caller that cannot lead parks on a slot of its own, registered under the lock
//! with its target. Whoever changes what it waits for wakes exactly the callers concerned: a
//! sync wakes those it covered, and once nobody is syncing, the one caller with the lowest
//! target still waiting (the next leader), never all of them. A rollback, a poisoning or a
//! close wakes every one. Async waiters have their wakers; other waits ([`GroupCommit::
//! wait_until`]) share one condition variable, on which no committer waits.
//!
//! Invariants: `written` and `durable` only move forward within a generation;
//! `durable <= written`; the generation changes only under the lock, with the watermarks; a
//! registered sleeper's slot is woken at most once, by whoever removes it from the list.
//!
//! The primitives come from `crate::sync`, so loom can model this module.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::PathBuf;
use std::task::{Poll, Waker};

use super::deadline::{Deadline, Waited};
use crate::error::{Error, Result};
use crate::sync::{
    AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard, Ordering, Thread, current_thread,
};
use crate::types::Lsn;

/// How many past rollbacks are remembered exactly; a caller older than all of them is told its
/// records were rolled back to the lowest point remembered.
const ROLLBACKS_KEPT: usize = 64;

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
    /// Blocking committers parked until their target is decided or they are to lead.
    sleepers: Vec<Sleeper>,
    /// How many parked committers the last sync covered.
    last_covered: usize,
    /// The latest rollbacks, oldest first: the generation each started and the LSN the log was
    /// truncated after.
    rollbacks: VecDeque<(u64, Lsn)>,
    /// Of the rollbacks no longer kept: the newest one's generation and the lowest point of
    /// them all.
    forgotten: Option<(u64, Lsn)>,
}

/// A blocking caller of [`GroupCommit::commit`], parked until it is woken.
#[derive(Debug)]
struct Sleeper {
    target: Lsn,
    slot: std::sync::Arc<Slot>,
}

/// Where a parked committer learns why it was woken: a state set under the lock before its
/// thread is unparked, so a spurious or early return from `park` is told apart from a real
/// wake-up, and a caller whose target a sync covered returns without taking the lock again.
#[derive(Debug)]
struct Slot {
    state: AtomicU64,
    thread: Thread,
}

/// How many times a new leader gives up its core, at most, to let the committers the last
/// sync woke append again and join its sync (measured best of 0, 4, 8, 16 and 64 with 4 to 64
/// committers; with one, no sync covers a parked committer and it never yields).
#[cfg(not(loom))]
const GATHER_TURNS: u32 = 8;
/// Under loom, one turn: enough to model a leader that gives way, few enough states to check.
#[cfg(loom)]
const GATHER_TURNS: u32 = 1;

/// A slot's states: parked, its target made durable, woken to look again (to lead, or to see
/// a rollback, a poisoning or a close).
const WAITING: u64 = 0;
const COVERED: u64 = 1;
const WOKEN: u64 = 2;

impl Slot {
    fn wake(&self) {
        self.state.store(WOKEN, Ordering::Release);
        self.thread.unpark();
    }
}

/// Unparks the committers of `slots` (marked covered under the lock), after it is released:
/// a thread woken while the waker still holds the lock would only block on it.
fn unpark_all(slots: Vec<std::sync::Arc<Slot>>) {
    for slot in slots {
        slot.thread.unpark();
    }
}

impl Progress {
    /// Wakes (and forgets) every sleeper `wanted` picks.
    fn wake_sleepers(&mut self, wanted: impl Fn(Lsn) -> bool) {
        let mut i = 0;
        while i < self.sleepers.len() {
            if wanted(self.sleepers[i].target) {
                self.sleepers.swap_remove(i).slot.wake();
            } else {
                i += 1;
            }
        }
    }

    /// Removes the sleepers whose target is at or below `lsn`, marked covered, for the caller
    /// to unpark once it has released the lock.
    fn take_covered(&mut self, lsn: Lsn) -> Vec<std::sync::Arc<Slot>> {
        let mut covered = Vec::new();
        let mut i = 0;
        while i < self.sleepers.len() {
            if self.sleepers[i].target <= lsn {
                let slot = self.sleepers.swap_remove(i).slot;
                slot.state.store(COVERED, Ordering::Release);
                covered.push(slot);
            } else {
                i += 1;
            }
        }
        covered
    }

    /// With nobody syncing, wakes the sleeper with the lowest target to lead the next sync
    /// (the others wait for it): one wake-up, not a stampede.
    fn wake_next_leader(&mut self) {
        if self.syncing {
            return;
        }
        let lowest = (0..self.sleepers.len()).min_by_key(|&i| self.sleepers[i].target);
        if let Some(i) = lowest {
            self.sleepers.swap_remove(i).slot.wake();
        }
    }

    /// Forgets the sleeper of `slot`, if it is still registered (a wait that timed out).
    fn forget_sleeper(&mut self, slot: &std::sync::Arc<Slot>) {
        if let Some(i) = self
            .sleepers
            .iter()
            .position(|s| std::sync::Arc::ptr_eq(&s.slot, slot))
        {
            self.sleepers.swap_remove(i);
        }
    }

    /// The lowest LSN the log was rolled back to since generation `since`, if any rollback
    /// happened since then.
    fn rolled_back_since(&self, since: u64) -> Option<Lsn> {
        // A forgotten rollback may be newer than `since` only if the newest forgotten one is:
        // then the lowest forgotten point counts (a caller that old is told the lowest).
        let forgotten = self
            .forgotten
            .filter(|&(newest, _)| newest > since)
            .map(|(_, to)| to);
        self.rollbacks
            .iter()
            .filter(|&&(generation, _)| generation > since)
            .map(|&(_, to)| to)
            .chain(forgotten)
            .min()
    }
}

/// What a leader's `lead` step reports: the LSN it made durable, and the generation it saw when
/// it chose that LSN.
pub(crate) struct Synced {
    pub(crate) lsn: Lsn,
    pub(crate) generation: u64,
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
    /// The rollback generation: bumped (under the lock) by every rollback.
    generation: AtomicU64,
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
            generation: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Progress>> {
        self.progress.lock().map_err(|_| Error::Poisoned)
    }

    /// One step of a wait: `Ok(None)` once the deadline has passed.
    fn wait<'a>(
        &self,
        guard: MutexGuard<'a, Progress>,
        deadline: Deadline,
    ) -> Result<Option<MutexGuard<'a, Progress>>> {
        match deadline.wait(&self.changed, guard) {
            Ok(Waited::Woken(g)) => Ok(Some(g)),
            Ok(Waited::Expired) => Ok(None),
            Err(()) => Err(Error::Poisoned),
        }
    }

    pub(crate) fn durable(&self) -> Lsn {
        Lsn::new(self.durable.load(Ordering::Acquire))
    }

    pub(crate) fn written(&self) -> Lsn {
        Lsn::new(self.written.load(Ordering::Acquire))
    }

    /// The current rollback generation. Read it under the log's state lock to pair it with
    /// the LSNs seen there (a rollback changes both under that lock).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The lowest LSN the log was rolled back to since `generation`, if a rollback happened
    /// since. Cheap when none did (one atomic load).
    pub(crate) fn rolled_back_since(&self, generation: u64) -> Option<Lsn> {
        if self.generation() == generation {
            return None;
        }
        match self.progress.lock() {
            Ok(p) => p.rolled_back_since(generation),
            Err(_) => None,
        }
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
                p.wake_sleepers(|_| true);
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
            // Something to sync: a waiter may lead now, if nobody does.
            p.wake_next_leader();
        }
        Ok(())
    }

    /// Marks everything up to `lsn` durable (a sealed segment was synced), unless a rollback
    /// started a new generation since `generation` was read.
    pub(crate) fn advance_durable(&self, lsn: Lsn, generation: u64) -> Result<()> {
        let mut p = self.lock()?;
        let covered = if generation == self.generation() {
            self.raise_durable(&mut p, lsn)
        } else {
            Vec::new()
        };
        self.changed.notify_all();
        p.wake_next_leader();
        drop(p);
        unpark_all(covered);
        Ok(())
    }

    /// Raises the durable LSN to `lsn`; returns the committers it covered, to unpark once the
    /// lock is released.
    #[must_use]
    fn raise_durable(&self, p: &mut Progress, lsn: Lsn) -> Vec<std::sync::Arc<Slot>> {
        let mut covered = Vec::new();
        if lsn > p.durable {
            p.durable = lsn;
            self.durable.store(lsn.get(), Ordering::Release);
            covered = p.take_covered(lsn);
            let mut i = 0;
            while i < p.wakers.len() {
                if p.wakers[i].0 <= lsn {
                    p.wakers.swap_remove(i).1.wake();
                } else {
                    i += 1;
                }
            }
        }
        covered
    }

    /// Moves the written (and handed) watermark up to `last` at once: the LSNs up to it will
    /// never hold a record (a reset to a later LSN). The durable watermark follows through
    /// [`GroupCommit::advance_durable`] once the reset is durable. The caller holds the log's
    /// state lock and has made sure no write is in flight.
    pub(crate) fn skip_to(&self, last: Lsn) -> Result<()> {
        let mut p = self.lock()?;
        if last > p.written {
            p.written = last;
            self.written.store(last.get(), Ordering::Release);
        }
        self.handed.fetch_max(last.get(), Ordering::AcqRel);
        self.changed.notify_all();
        Ok(())
    }

    /// Starts a rollback to `to`: a new generation begins, so from now on every waiter for an
    /// LSN past `to` (woken here) gets [`Error::RolledBack`], every reader made before it stops
    /// trusting what it reads past `to`, and no sync or roll of an older generation raises the
    /// durable LSN. The caller holds the log's state lock, has made sure no write is in flight,
    /// and calls this *before* it changes any file, then [`GroupCommit::finish_rollback`].
    pub(crate) fn begin_rollback(&self, to: Lsn) -> Result<()> {
        let mut p = self.lock()?;
        let generation = self.generation() + 1;
        self.generation.store(generation, Ordering::Release);
        p.rollbacks.push_back((generation, to));
        if p.rollbacks.len() > ROLLBACKS_KEPT
            && let Some((oldest, point)) = p.rollbacks.pop_front()
        {
            let lowest = p.forgotten.map_or(point, |(_, low)| low.min(point));
            p.forgotten = Some((oldest, lowest));
        }
        let mut i = 0;
        while i < p.wakers.len() {
            if p.wakers[i].0 > to {
                p.wakers.swap_remove(i).1.wake();
            } else {
                i += 1;
            }
        }
        p.wake_sleepers(|target| target > to);
        self.changed.notify_all();
        Ok(())
    }

    /// Ends a rollback to `to` once its files are changed and `to` is durable: every watermark
    /// becomes `to`.
    pub(crate) fn finish_rollback(&self, to: Lsn) -> Result<()> {
        let mut p = self.lock()?;
        p.written = to;
        p.done.clear();
        p.durable = to;
        self.written.store(to.get(), Ordering::Release);
        self.durable.store(to.get(), Ordering::Release);
        self.handed.store(to.get(), Ordering::Release);
        self.changed.notify_all();
        p.wake_sleepers(|_| true);
        Ok(())
    }

    /// A whole rollback to `to` at once ([`GroupCommit::begin_rollback`], then
    /// [`GroupCommit::finish_rollback`]).
    #[cfg(test)]
    pub(crate) fn roll_back(&self, to: Lsn) -> Result<()> {
        self.begin_rollback(to)?;
        self.finish_rollback(to)
    }

    /// Poisons the state with the first failure and wakes every waiter.
    pub(crate) fn poison(&self, cause: Cause) {
        self.latch(&self.poisoned, |p| {
            p.cause.get_or_insert(cause);
        });
    }

    /// Waits until `ready` holds, the state is poisoned or closed (an error), or `deadline`
    /// passes (`Ok(false)`). `ready` is checked under the lock, so whoever makes it true and then
    /// calls [`GroupCommit::notify`] never loses the wake-up.
    pub(crate) fn wait_until(
        &self,
        deadline: Deadline,
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
            match self.wait(p, deadline)? {
                Some(g) => p = g,
                None => return Ok(false),
            }
        }
    }

    /// Wakes everyone waiting in [`GroupCommit::wait_until`] to re-check.
    pub(crate) fn notify(&self) {
        if let Ok(mut p) = self.progress.lock() {
            self.changed.notify_all();
            p.wake_next_leader();
        }
    }

    /// Where a wait for `target` (of `generation`) stands, with no waiting: `Some` once it is
    /// decided (durable, rolled back, poisoned or closed).
    fn decided(&self, p: &Progress, target: Lsn, generation: u64) -> Option<Result<()>> {
        if let Some(to) = p.rolled_back_since(generation).filter(|&to| to < target) {
            return Some(Err(Error::RolledBack { lsn: target, to }));
        }
        if p.durable >= target {
            return Some(Ok(()));
        }
        if self.is_poisoned() {
            return Some(Err(p
                .cause
                .as_ref()
                .map_or(Error::Poisoned, Cause::to_error)));
        }
        if self.is_closed() {
            return Some(Err(Error::Closed));
        }
        None
    }

    /// For a future: ready once `target` (appended in `generation`) is durable, rolled back,
    /// or can never be; otherwise registers `waker` to be woken when that changes.
    pub(crate) fn poll_durable(
        &self,
        target: Lsn,
        generation: u64,
        waker: &Waker,
    ) -> Poll<Result<()>> {
        let Ok(mut p) = self.progress.lock() else {
            return Poll::Ready(Err(Error::Poisoned));
        };
        if let Some(decided) = self.decided(&p, target, generation) {
            return Poll::Ready(decided);
        }
        match p.wakers.iter_mut().find(|(_, w)| w.will_wake(waker)) {
            Some(entry) => entry.0 = entry.0.max(target),
            None => p.wakers.push((target, waker.clone())),
        }
        Poll::Pending
    }

    /// Returns once every record up to `target` (appended in `generation`) is durable, leading
    /// syncs as needed; `lead` writes out what is buffered, fsyncs, and reports what it made
    /// durable. Gives up at `deadline` (`Ok(false)`); a running `lead` is never interrupted.
    ///
    /// # Errors
    /// [`Error::RolledBack`] if a rollback since `generation` removed `target`, the error of a
    /// failed `lead` (which poisons), [`Error::Poisoned`], [`Error::Closed`].
    pub(crate) fn commit(
        &self,
        target: Lsn,
        generation: u64,
        deadline: Deadline,
        lead: &dyn Fn() -> Result<Synced>,
    ) -> Result<bool> {
        if self.durable() >= target && self.generation() == generation {
            return Ok(true);
        }
        if self.is_poisoned() {
            return Err(Error::Poisoned);
        }
        let mut p = self.lock()?;
        loop {
            if let Some(decided) = self.decided(&p, target, generation) {
                return decided.map(|()| true);
            }
            // Lead when nobody is syncing and there is something this caller needs that a
            // sync can reach: records written but not synced, or records still buffered.
            let in_buffer = self.handed.load(Ordering::Acquire) < target.get();
            if !p.syncing && (p.written > p.durable || in_buffer) {
                p.syncing = true;
                // The committers the last sync covered were just woken and are appending
                // again: give them a moment to join this sync, rather than leave them for the
                // next.
                let mut turns = 0;
                while p.sleepers.len() < p.last_covered && turns < GATHER_TURNS {
                    drop(p);
                    crate::sync::yield_now();
                    p = self.lock()?;
                    turns += 1;
                }
                drop(p);
                let result = lead();
                p = self.lock()?;
                match result {
                    Ok(synced) => {
                        let covered = if synced.generation == self.generation() {
                            self.raise_durable(&mut p, synced.lsn)
                        } else {
                            Vec::new()
                        };
                        p.last_covered = covered.len();
                        self.changed.notify_all();
                        if !covered.is_empty() {
                            // Still leading while it wakes those it covered: the committers
                            // woken first append again meanwhile, and wait for the next sync
                            // instead of each starting one of its own.
                            drop(p);
                            unpark_all(covered);
                            p = self.lock()?;
                        }
                        p.syncing = false;
                        p.wake_next_leader();
                    }
                    Err(e) => {
                        p.syncing = false;
                        self.changed.notify_all();
                        p.wake_next_leader();
                        drop(p);
                        // A failed write or fsync poisons; giving up (closed) does not.
                        if matches!(e, Error::Io { .. }) {
                            self.poison(Cause::of(&e, std::path::Path::new("")));
                        }
                        return Err(e);
                    }
                }
                continue;
            }
            if deadline.expired() {
                // A wake-up meant for a leader may have been this caller's: pass it on.
                p.wake_next_leader();
                return Ok(false);
            }
            match self.sleep(p, target, deadline)? {
                Some(g) => p = g,
                // A sync covered the target (in the generation the caller's wait began in: a
                // rollback since would have woken it to look again).
                None => return Ok(true),
            }
        }
    }

    /// Parks the calling committer until a wake-up meant for it or the deadline. `None` if a
    /// sync covered its target; otherwise the lock, to check again.
    fn sleep<'a>(
        &'a self,
        mut p: MutexGuard<'a, Progress>,
        target: Lsn,
        deadline: Deadline,
    ) -> Result<Option<MutexGuard<'a, Progress>>> {
        let slot = std::sync::Arc::new(Slot {
            state: AtomicU64::new(WAITING),
            thread: current_thread(),
        });
        p.sleepers.push(Sleeper {
            target,
            slot: std::sync::Arc::clone(&slot),
        });
        drop(p);
        while slot.state.load(Ordering::Acquire) == WAITING && !deadline.expired() {
            park_until(deadline);
        }
        if slot.state.load(Ordering::Acquire) == COVERED {
            return Ok(None);
        }
        let mut p = self.lock()?;
        if slot.state.load(Ordering::Acquire) == WAITING {
            p.forget_sleeper(&slot);
        }
        Ok(Some(p))
    }
}

/// Parks the thread until it is unparked (or spuriously), or until `deadline`.
#[cfg(not(loom))]
fn park_until(deadline: Deadline) {
    match deadline.remaining() {
        None => crate::sync::park(),
        Some(left) => std::thread::park_timeout(left),
    }
}

/// Loom has no clock: a timed park is an untimed one there.
#[cfg(loom)]
fn park_until(_deadline: Deadline) {
    crate::sync::park();
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod group_tests;
