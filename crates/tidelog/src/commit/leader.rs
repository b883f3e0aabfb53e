//! The log's side of group commit: the calls that wait for durability ([`Log::sync`],
//! [`Log::wait_durable`], [`Log::durable`]) and the leader's step that a waiter runs when nobody
//! else is syncing: write out the buffer, fsync the segment that holds the written watermark,
//! report what it made durable.
//!
//! Invariants: every caller waits in the rollback generation in which it learned of its LSN
//! (read under the state lock with the LSN); the leader pairs the written watermark with the
//! segment that holds it under the state lock, so a rollback and a new roll between the two can
//! never send it to a file that does not exist (a lookup never poisons the log; only a failed
//! write or fsync does).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Deadline, DurableFuture, Synced};
use crate::error::{Error, Result};
use crate::log::{Inner, Log, PanicGuard};
use std::sync::atomic::Ordering;

use crate::format::{FrameMeta, KIND_SYNC, Layout, encode_frame};
use crate::types::Lsn;

/// The length of a sync marker: a version 2 frame header, no payload.
const MARKER_LEN: u64 = Layout::V2.frame_header_len() as u64;

impl Log {
    /// Makes every record appended so far durable. A [`Log::truncate_after`] that runs
    /// meanwhile does not fail it: every record the rollback kept is durable once it returns.
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::Closed`], or the [`Error::Io`] of the failed write or sync
    /// (which poisons the log).
    ///
    /// # Blocking
    /// Waits for an fsync (its own, or one another thread leads that covers it).
    pub fn sync(&self) -> Result<()> {
        let (last, generation) = {
            let st = self.inner.state()?;
            (st.last_lsn(), self.inner.commit.generation())
        };
        match self.inner.sync_to(last, generation) {
            // The rollback made what it kept durable; the rest is gone.
            Err(Error::RolledBack { .. }) => Ok(()),
            other => other,
        }
    }

    /// Returns once every record up to `lsn` is durable, leading a sync if nobody else is.
    ///
    /// # Errors
    /// [`Error::InvalidLsn`] if `lsn` was not appended yet, [`Error::RolledBack`] if a
    /// [`Log::truncate_after`] removed it meanwhile, and as [`Log::sync`].
    ///
    /// # Blocking
    /// As [`Log::sync`].
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        let generation = self.check_appended(lsn)?;
        self.inner.sync_to(lsn, generation)
    }

    /// Like [`Log::wait_durable`], giving up after `timeout`: returns whether `lsn` is durable.
    /// A sync this call leads is never cut short, so it may return a little after the timeout.
    /// A timeout too large for the clock (`Duration::MAX`) waits as long as it takes.
    ///
    /// # Errors
    /// As [`Log::wait_durable`].
    ///
    /// # Blocking
    /// Up to about `timeout`.
    pub fn wait_durable_timeout(&self, lsn: Lsn, timeout: Duration) -> Result<bool> {
        let generation = self.check_appended(lsn)?;
        let deadline = Deadline::after(timeout);
        let inner = &*self.inner;
        inner
            .commit
            .commit(lsn, generation, deadline, &|| inner.lead())
    }

    /// A future that resolves once every record up to `lsn` is durable. It works under any
    /// executor and never blocks one: the log's background thread runs the sync and wakes the
    /// future. It does not keep the log open: once the log is dropped it resolves to
    /// [`Error::Closed`] (unless `lsn` was durable by then).
    ///
    /// # Errors
    /// [`Error::InvalidLsn`] (at once) if `lsn` was not appended yet; the future resolves to the
    /// error of a failed sync, [`Error::Poisoned`], or [`Error::RolledBack`] if a
    /// [`Log::truncate_after`] removed `lsn` after this call.
    pub fn durable(&self, lsn: Lsn) -> Result<DurableFuture> {
        let generation = self.check_appended(lsn)?;
        Ok(DurableFuture::new(&self.inner, lsn, generation, true))
    }

    /// Checks that `lsn` was appended; returns the rollback generation it was seen in.
    fn check_appended(&self, lsn: Lsn) -> Result<u64> {
        let st = self.inner.state()?;
        if lsn > st.last_lsn() {
            return Err(Error::InvalidLsn {
                lsn,
                reason: "no record with this LSN was appended",
            });
        }
        Ok(self.inner.commit.generation())
    }
}

impl Inner {
    /// Returns once `target`, appended in `generation`, is durable.
    pub(crate) fn sync_to(&self, target: Lsn, generation: u64) -> Result<()> {
        if self.commit.durable() >= target && self.commit.generation() == generation {
            return Ok(());
        }
        let started = Instant::now();
        self.commit
            .commit(target, generation, Deadline::NEVER, &|| self.lead())?;
        self.stats.committed(started.elapsed());
        Ok(())
    }

    /// After an fsync that made the log durable through `synced` (in rollback generation
    /// `generation`), writes a sync marker at the end of the active segment: proof for recovery
    /// that those records were durable even if nothing is ever appended after them (format.md,
    /// 2.4). It is not synced itself: the next sync covers it, and until then it is in the page
    /// cache, which outlives the process. Skipped in a segment of format version 1, after a
    /// rollback, while a roll is creating the active segment, and where a bounded log has no
    /// room left for it.
    ///
    /// Behind records still buffered, it goes out with them, in their region. Alone, it is
    /// written under the state lock: records appended after it could otherwise be written, and
    /// read, before it, and a reader would meet the zeros it had not yet filled.
    fn write_sync_marker(&self, synced: Lsn, generation: u64) -> Result<()> {
        let mut st = self.state()?;
        let room = self
            .options
            .capacity_bytes
            .is_none_or(|c| crate::log::used_bytes(&st) + MARKER_LEN <= c);
        let (file, end) = {
            let active = st.active();
            (Arc::clone(&active.file), active.end)
        };
        let Some(io) = file.handle() else {
            return Ok(());
        };
        if file.layout() != Layout::V2 || self.commit.generation() != generation || !room {
            return Ok(());
        }
        let next = st.next_lsn;
        let meta = FrameMeta {
            kind: KIND_SYNC,
            lsn: next,
            durable_hint: synced.min(next.prev()),
            flags: 0,
            timestamp_ms: st.stamp(),
        };
        st.active_mut().end += MARKER_LEN;
        if st.buf.is_empty() {
            let mut marker = Vec::with_capacity(MARKER_LEN as usize);
            encode_frame(&mut marker, Layout::V2, file.seed, meta, &[]);
            st.buf_offset = end + MARKER_LEN;
            st.buf_first = next;
            io.write_all_at(&marker, end)
                .map_err(|e| self.poison("write", &file.path, e))?;
            self.marker_pending.store(true, Ordering::Release);
            return Ok(());
        }
        encode_frame(&mut st.buf, Layout::V2, file.seed, meta, &[]);
        let region = st.take_buffer(&self.commit, &self.buffers);
        drop(st);
        if let Some(region) = region {
            self.write_region(region)?;
        }
        self.marker_pending.store(true, Ordering::Release);
        Ok(())
    }

    /// The group-commit leader's step: write out the buffer, fsync the segment that holds the
    /// written watermark (earlier segments were synced when they were sealed), and report it.
    pub(crate) fn lead(&self) -> Result<Synced> {
        let _guard = PanicGuard(self);
        let pending = self
            .unsynced_bytes
            .load(std::sync::atomic::Ordering::Acquire);
        // No rollback completes between taking the buffer and writing it: a rollback waits
        // for every region handed out to be written.
        let region = self.state()?.take_buffer(&self.commit, &self.buffers);
        if let Some(region) = region {
            self.write_region(region)?;
        }
        // The written watermark, its generation and the segment holding it, read together
        // under the state lock (a rollback changes all three under it).
        let (file, written, generation) = {
            let st = self.state()?;
            let written = self.commit.written();
            let file = Arc::clone(&st.segments[st.segment_of(written)].file);
            (file, written, self.commit.generation())
        };
        let durable = self.commit.durable();
        if written > durable {
            // A region of that segment was written, so its file exists; `ready` also covers a
            // roll still creating it, and never fails for a lookup.
            let io = self.ready(&file)?;
            let started = Instant::now();
            // A marker written before this fsync is durable after it (if it is in this
            // segment; one in an earlier segment was synced when that segment was sealed).
            self.marker_pending.store(false, Ordering::Release);
            if let Err(e) = io.sync_data() {
                return Err(self.poison("sync", &file.path, e));
            }
            self.stats
                .synced(started.elapsed(), written.get() - durable.get());
            self.write_sync_marker(written, generation)?;
        }
        let _ = self.unsynced_bytes.fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |b| Some(b.saturating_sub(pending)),
        );
        Ok(Synced {
            lsn: written,
            generation,
        })
    }
}
