//! [`Tail`]: a reader of a live log that, having read every durable record, waits for the next.
//!
//! Invariants: a tail returns durable records only, each once, in LSN order; after a rollback
//! that removed records it had returned, it reports [`Error::RolledBack`] once and goes on from
//! the rollback point, so it returns the records that take those LSNs next.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Iter, Record, range_of};
use crate::commit::{Deadline, DurableFuture, GroupCommit};
use crate::error::{Error, Result};
use crate::log::{Inner, Log, lock};
use crate::types::Lsn;

impl Log {
    /// A tail that reads the log from `from` on and, having read everything durable, waits
    /// for more: [`Tail::recv`] blocks (woken when the durable LSN moves, never by polling),
    /// [`Tail::recv_timeout`] gives up after a while, [`Tail::recv_async`] awaits. It sees
    /// durable records only, so never one a crash could take away, and pins the segments it may
    /// still read. Any number of tails can run at once.
    ///
    /// # Errors
    /// [`Error::BelowCheckpoint`] if `from` is below the checkpoint, [`Error::InvalidLsn`] for
    /// LSN 0, [`Error::Poisoned`], [`Error::Closed`].
    pub fn tail(&self, from: Lsn) -> Result<Tail> {
        if from == Lsn::ZERO {
            return Err(Error::InvalidLsn {
                lsn: from,
                reason: "LSNs start at 1",
            });
        }
        let (checkpoint, generation) = {
            let st = self.inner.state()?;
            (st.checkpoint, self.inner.commit.generation())
        };
        if from < checkpoint {
            return Err(Error::BelowCheckpoint {
                lsn: from,
                checkpoint,
            });
        }
        let position = Arc::new(AtomicU64::new(from.get()));
        let mut tails = lock(&self.inner.tails)?;
        tails.retain(|f| f.strong_count() > 0);
        tails.push(Arc::downgrade(&position));
        drop(tails);
        Ok(Tail {
            log: Arc::downgrade(&self.inner),
            commit: Arc::clone(&self.inner.commit),
            generation,
            next: from,
            iter: None,
            position,
        })
    }
}

/// A reader of a live log, from [`Log::tail`]: reads every durable record in LSN order and
/// waits for the next ones.
#[derive(Debug)]
pub struct Tail {
    log: Weak<Inner>,
    commit: Arc<GroupCommit>,
    /// The rollback generation the tail has caught up with.
    generation: u64,
    next: Lsn,
    iter: Option<Iter>,
    /// `next`, shared with the log for its reader-lag figure.
    position: Arc<AtomicU64>,
}

impl Tail {
    /// The LSN of the next record it will return.
    pub fn position(&self) -> Lsn {
        self.next
    }

    fn set_next(&mut self, next: Lsn) {
        self.next = next;
        self.position.store(next.get(), Ordering::Relaxed);
    }

    /// Catches up with rollbacks since the tail last looked: `Err(RolledBack)` if one removed
    /// records it had returned (it then goes on from the rollback point).
    fn check_rollback(&mut self) -> Result<()> {
        let now = self.commit.generation();
        if now == self.generation {
            return Ok(());
        }
        let to = self.commit.rolled_back_since(self.generation);
        self.generation = now;
        self.iter = None;
        match to {
            Some(to) if to.next() < self.next => {
                let lsn = self.next.prev();
                self.set_next(to.next());
                Err(Error::RolledBack { lsn, to })
            }
            _ => Ok(()),
        }
    }

    /// The next record if one is durable, without waiting.
    ///
    /// # Errors
    /// [`Error::RolledBack`] (once) if a [`Log::truncate_after`] removed records it had
    /// returned, [`Error::BelowCheckpoint`] if a checkpoint dropped the records it had not read
    /// yet, [`Error::Closed`] once the log is closed, [`Error::Poisoned`], and read errors.
    pub fn try_recv(&mut self) -> Result<Option<Record>> {
        loop {
            self.check_rollback()?;
            if let Some(iter) = self.iter.as_mut() {
                match iter.next() {
                    Some(Ok(record)) => {
                        self.set_next(record.lsn().next());
                        return Ok(Some(record));
                    }
                    // Reported by `check_rollback`, as the tail sees it.
                    Some(Err(Error::RolledBack { .. })) => {
                        self.iter = None;
                        continue;
                    }
                    Some(Err(e)) => {
                        self.iter = None;
                        return Err(e);
                    }
                    None => {
                        // Past the end of that snapshot (and past any skipped records).
                        let past = self.next.max(iter.last_lsn().next());
                        self.set_next(past);
                        self.iter = None;
                    }
                }
            }
            let inner = self.log.upgrade().ok_or(Error::Closed)?;
            if self.commit.is_closed() {
                return Err(Error::Closed);
            }
            if self.commit.is_poisoned() {
                return Err(Error::Poisoned);
            }
            if self.commit.durable() < self.next {
                return Ok(None);
            }
            let iter = range_of(&inner, self.next..)?;
            // Made after a rollback the tail has not caught up with: catch up first.
            if iter.generation() == Some(self.generation) {
                self.iter = Some(iter);
            }
        }
    }

    /// The next record, waiting up to `timeout` for it to become durable. A timeout too large
    /// for the clock (`Duration::MAX`) waits as long as it takes.
    ///
    /// # Errors
    /// As [`Tail::try_recv`].
    ///
    /// # Blocking
    /// Up to `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Record>> {
        self.recv_until(Deadline::after(timeout))
    }

    /// The next record, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`Tail::try_recv`].
    ///
    /// A tail waiting when the log is poisoned gets the error that poisoned it; later calls
    /// get [`Error::Poisoned`].
    ///
    /// # Blocking
    /// Until a record is durable, or the log is closed or poisoned.
    pub fn recv(&mut self) -> Result<Record> {
        loop {
            if let Some(record) = self.recv_until(Deadline::NEVER)? {
                return Ok(record);
            }
        }
    }

    fn recv_until(&mut self, deadline: Deadline) -> Result<Option<Record>> {
        loop {
            if let Some(record) = self.try_recv()? {
                return Ok(Some(record));
            }
            let (next, generation) = (self.next, self.generation);
            let ready = self.commit.wait_until(deadline, |g| {
                g.durable() >= next || g.generation() != generation
            })?;
            if !ready {
                return Ok(None);
            }
        }
    }

    /// The next record, awaiting it without blocking the executor; works under any runtime.
    ///
    /// # Errors
    /// As [`Tail::try_recv`].
    pub async fn recv_async(&mut self) -> Result<Record> {
        loop {
            if let Some(record) = self.try_recv()? {
                return Ok(record);
            }
            let inner = self.log.upgrade().ok_or(Error::Closed)?;
            let wait = DurableFuture::new(&inner, self.next, self.generation, false);
            drop(inner);
            match wait.await {
                // `try_recv` reports it, if it concerns this tail.
                Ok(()) | Err(Error::RolledBack { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
