//! Maintenance: checkpoint (drop what is no longer needed), rollback (`truncate_after`: durably
//! discard what follows an LSN) and reset (discard everything; `reset_to` goes on at a later LSN).
//!
//! Each holds the `maintenance` lock, so at most one runs at a time. A rollback and a reset
//! *quiesce* first (every record appended is written and the active segment exists) and change
//! the files under the state lock; a rollback ends by starting a new rollback generation, under
//! that lock, which is how everything running beside it learns of it.

use std::sync::{Arc, MutexGuard};

use super::retention::releasable;
use super::{Inner, Log, PanicGuard, SegmentEvent, State, lock};
use crate::commit::Deadline;
use crate::error::{Error, IoContext, Result};
use crate::format::{
    FLAG_BATCH_END, FrameMeta, KIND_RECORD, SEGMENT_HEADER_LEN, TEMP_SUFFIX, encode_frame,
};
use crate::io::{OpenMode, StorageFile};
use crate::segment::{FoundFrame, Segment, SegmentFile};
use crate::types::Lsn;

impl Log {
    /// Declares that records below `lsn` are no longer needed. The checkpoint is persisted
    /// crash-safely (after the records below it are made durable), then every segment holding
    /// only records below it (and none the [retention floor](Log::set_retention_floor) holds)
    /// is removed. A checkpoint at the next LSN to be appended (one that
    /// covers every record) frees the active segment too: a new, empty segment takes appends,
    /// so a full bounded log always has room again after it. Checkpoints only move forward; a
    /// lower `lsn` is a no-op.
    ///
    /// # Errors
    /// [`Error::InvalidLsn`] if `lsn` is past the next LSN to be appended, [`Error::Io`] if the
    /// checkpoint file cannot be written (the log stays usable), and as [`Log::sync`].
    ///
    /// # Blocking
    /// Syncs, writes and fsyncs the checkpoint file, and removes files.
    pub fn checkpoint(&self, lsn: Lsn) -> Result<()> {
        span!("tidelog.checkpoint", dir = %self.inner.dir.display(), lsn = %lsn);
        let inner = &*self.inner;
        inner.writable()?;
        let _maintenance = lock(&inner.maintenance)?;
        let generation = {
            let st = inner.state()?;
            if lsn > st.next_lsn {
                return Err(Error::InvalidLsn {
                    lsn,
                    reason: "a checkpoint cannot be past the next LSN to be appended",
                });
            }
            if lsn <= st.checkpoint {
                return Ok(());
            }
            // No rollback can start while the maintenance lock is held.
            inner.commit.generation()
        };
        if lsn > Lsn::FIRST {
            inner.sync_to(lsn.prev(), generation)?;
        }
        inner.write_checkpoint(lsn)?;
        let _guard = PanicGuard(inner);
        let (removed, seal, roll) = {
            let mut st = inner.state()?;
            st.checkpoint = lsn;
            // Every record is below the checkpoint, synced and written (the buffer is empty
            // unless an append came in since the sync, which would have moved `next_lsn`).
            let frees_active = lsn == st.next_lsn
                && !st.active().is_empty()
                && st.buf.is_empty()
                && !inner.holds_active(&st);
            let (seal, roll) = if frees_active {
                inner.seal_active(&mut st);
                let seal = st.take_buffer(&inner.commit, &inner.buffers);
                (seal, Some(inner.plan_roll(&mut st)))
            } else {
                (None, None)
            };
            let (n, floor) = (st.segments.len(), st.retention);
            let k = st.segments[..n - 1]
                .iter()
                .take_while(|s| releasable(s, lsn, floor))
                .count();
            let removed: Vec<Segment> = st.segments.drain(..k).collect();
            (removed, seal, roll)
        };
        if let Some(seal) = seal {
            inner.write_region(seal)?;
        }
        if let Some(roll) = roll {
            inner.run_roll(roll)?;
        }
        inner.room_freed();
        inner.retire(removed)
    }

    /// Ends the segment taking appends (with its seal) and starts a new one at the next LSN,
    /// as an append that does not fit does. A no-op if the segment holds no record. What it
    /// is for: keeping a log's segments cut where another copy's are (an archive's objects,
    /// when records are pulled from it), or sealing recent records for a copy.
    ///
    /// # Errors
    /// [`Error::LogFull`] if a bounded log has no room for the seal and the new segment's
    /// header, and the [`Error::Io`] of a failed write, sync or creation, which poisons the
    /// log (as the same step of an append would).
    ///
    /// # Blocking
    /// Writes the buffered records and the seal, syncs the segment, and creates the next.
    pub fn roll(&self) -> Result<()> {
        span!("tidelog.roll_now", dir = %self.inner.dir.display());
        let inner = &*self.inner;
        inner.writable()?;
        let _maintenance = lock(&inner.maintenance)?;
        let (seal, roll) = {
            let mut st = inner.state()?;
            if st.active().is_empty() {
                return Ok(());
            }
            if let Some(capacity) = inner.options.capacity_bytes {
                let needed = (SEGMENT_HEADER_LEN + crate::format::SEAL_FRAME_LEN) as u64;
                let used = super::space::used_bytes(&st);
                if used + needed > capacity {
                    return Err(Error::LogFull { capacity, used });
                }
            }
            inner.seal_active(&mut st);
            let seal = st.take_buffer(&inner.commit, &inner.buffers);
            (seal, inner.plan_roll(&mut st))
        };
        if let Some(seal) = seal {
            inner.write_region(seal)?;
        }
        inner.run_roll(roll)
    }

    /// Durably discards every record after `lsn` (the Raft conflict case); the next append gets
    /// `lsn + 1`. A batch cut in the middle keeps its records up to `lsn`. A `lsn` at or past
    /// the last record is a no-op.
    ///
    /// What runs beside a rollback sees it: a waiter, `Synced` append or [`DurableFuture`]
    /// whose LSN it removed gets [`Error::RolledBack`] (never `Ok` for a later record that
    /// takes the same LSN); an iterator made before it yields its records up to `lsn`, then
    /// [`Error::RolledBack`]; a [`Tail`](crate::Tail) that had read past `lsn` reports it once
    /// and goes on from `lsn + 1`.
    ///
    /// [`DurableFuture`]: crate::DurableFuture
    ///
    /// # Errors
    /// [`Error::InvalidLsn`] if records at or below `lsn` were dropped by a checkpoint
    /// (`lsn + 1 < checkpoint_lsn`), [`Error::RecordLost`] if the record at `lsn` was skipped by
    /// a `SkipCorrupt` recovery, or the [`Error::Io`] of a failed step, which poisons the log.
    ///
    /// # Blocking
    /// Waits for appends in flight, then removes and truncates files and syncs.
    pub fn truncate_after(&self, lsn: Lsn) -> Result<()> {
        span!("tidelog.truncate_after", dir = %self.inner.dir.display(), lsn = %lsn);
        let inner = &*self.inner;
        inner.writable()?;
        let _maintenance = lock(&inner.maintenance)?;
        let mut st = inner.state()?;
        let _guard = PanicGuard(inner);
        if lsn >= st.next_lsn.prev() {
            return Ok(());
        }
        if lsn.next() < st.checkpoint {
            return Err(Error::InvalidLsn {
                lsn,
                reason: "records at or below it were dropped by a checkpoint",
            });
        }
        inner.quiesce(&mut st)?;
        let target = lsn.next();
        let k = st.segment_of(target);
        // Find the new last frame before changing anything.
        let keep = if st.segments[k].first_lsn() == target {
            None
        } else {
            match st.segments[k].view(lsn).find(lsn)? {
                Some(frame) => Some(frame),
                None => return Err(Error::RecordLost { lsn }),
            }
        };
        // Everything running beside the rollback learns of it before any file changes: a
        // reader that meets a cut or removed file then knows why.
        inner.commit.begin_rollback(lsn)?;
        // Under the state lock, so no event of what follows the rollback comes before it.
        inner.emit(SegmentEvent::RolledBack { to: lsn });
        let later: Vec<Segment> = st.segments.drain(k + 1..).collect();
        let storage = &*inner.storage;
        for seg in later.iter().rev() {
            let path = &seg.file.path;
            if let Err(e) = storage.remove_file(path) {
                return Err(inner.poison("remove", path, e));
            }
        }
        if !later.is_empty()
            && let Err(e) = storage.sync_dir(&inner.dir)
        {
            return Err(inner.poison("sync directory", &inner.dir, e));
        }
        let cut = match &keep {
            None => st.active().file.data_start(),
            Some(frame) => frame.offset + frame.header.frame_len(),
        };
        let seg = st.active_mut();
        match &keep {
            Some(frame) if !frame.header.batch_end() => inner.rewrite_tail(seg, frame)?,
            _ => {
                let path = &seg.file.path;
                let file = seg.file.io()?;
                if let Err(e) = file.set_len(cut) {
                    return Err(inner.poison("truncate", path, e));
                }
                if let Err(e) = file.sync_data() {
                    return Err(inner.poison("sync", path, e));
                }
                // Best effort: appends extend the file if the space cannot be reserved again.
                let _ = file.allocate(inner.preallocation());
            }
        }
        seg.end = cut;
        seg.last_lsn = lsn;
        seg.forget_from(cut);
        // The times a seal will name are those of the records kept.
        seg.max_ms = keep
            .as_ref()
            .map_or(0, |f| f.header.timestamp_ms.unwrap_or(0));
        if keep.is_none() {
            seg.min_ms = 0;
        }
        st.buf_offset = cut;
        st.buf_first = target;
        st.next_lsn = target;
        inner.commit.finish_rollback(lsn)?;
        drop(st);
        inner.room_freed();
        Ok(())
    }

    /// Discards every record. LSNs go on from where they were (the next append gets the LSN it
    /// would have got), so no LSN ever names two records; the checkpoint moves to that LSN.
    /// Segments the [retention floor](Log::set_retention_floor) holds are kept (made durable,
    /// not readable).
    ///
    /// # Errors
    /// [`Error::Io`]: a failure before the checkpoint is written leaves the log as it was; a
    /// later one poisons it. [`Error::Poisoned`], [`Error::Closed`].
    ///
    /// # Blocking
    /// Waits for appends in flight, writes the checkpoint, creates a segment, removes files.
    pub fn reset(&self) -> Result<()> {
        self.reset_inner(None)
    }

    /// Discards every record, as [`Log::reset`], and makes `next` the LSN of the next append:
    /// the LSNs from the log's next one up to `next` are skipped and never name a record (a
    /// Raft store that installed a snapshot ending past its log goes on after the snapshot's
    /// last index; a new log can start at any LSN). The checkpoint moves to `next`, so reads
    /// below it get [`Error::BelowCheckpoint`]; the durable and written LSNs become
    /// `next - 1`. `next` equal to the next LSN is [`Log::reset`]. Durable once it returns;
    /// after a crash the log holds its records as they were, or none and goes on at `next`.
    ///
    /// # Errors
    /// [`Error::InvalidLsn`] if `next` is below the next LSN to be appended (an LSN would name
    /// two records) or is `u64::MAX`; [`Error::Io`], which poisons the log whenever `next`
    /// skips LSNs (the new checkpoint may have reached the disk, and appends at the old LSNs
    /// would fall below it); otherwise as [`Log::reset`].
    ///
    /// # Blocking
    /// As [`Log::reset`].
    pub fn reset_to(&self, next: Lsn) -> Result<()> {
        self.reset_inner(Some(next))
    }

    fn reset_inner(&self, to: Option<Lsn>) -> Result<()> {
        span!("tidelog.reset", dir = %self.inner.dir.display());
        let inner = &*self.inner;
        inner.writable()?;
        let _maintenance = lock(&inner.maintenance)?;
        let mut st = inner.state()?;
        let _guard = PanicGuard(inner);
        let next = match to {
            Some(lsn) if lsn < st.next_lsn => {
                return Err(Error::InvalidLsn {
                    lsn,
                    reason: "a reset cannot go back before the next LSN to be appended",
                });
            }
            Some(lsn) if lsn.get() == u64::MAX => {
                return Err(Error::InvalidLsn {
                    lsn,
                    reason: "a reset must leave room for a record",
                });
            }
            Some(lsn) => lsn,
            None => st.next_lsn,
        };
        inner.quiesce(&mut st)?;
        let generation = inner.commit.generation();
        // Records the retention floor holds stay, and must be durable like any sealed segment.
        if inner.holds_active(&st) {
            let (active, end) = (Arc::clone(&st.active().file), st.active().end);
            let file = active.io()?;
            // Sealed like a rolled segment: no preallocated zeros left behind its frames.
            let trimmed = if inner.options.preallocate || inner.options.recycle_segments {
                file.set_len(end)
            } else {
                Ok(())
            };
            if let Err(e) = trimmed.and_then(|()| file.sync_data()) {
                return Err(inner.poison("seal", &active.path, e));
            }
        }
        if let Err(e) = inner.write_checkpoint(next) {
            // A checkpoint past the next LSN that reached the disk would drop, at the next
            // open, what is appended from here on: a log that skips LSNs cannot go on unsure.
            if next > st.next_lsn {
                inner.poison_with(&e);
            }
            return Err(e);
        }
        st.checkpoint = next;
        if st.active().first_lsn() != next {
            let file = SegmentFile::planned(&inner.dir, inner.log_id, next);
            if let Err(e) = inner.create_segment(&file) {
                inner.poison_with(&e);
                return Err(e);
            }
            st.segments.push(Segment::new(file));
            st.buf_offset = SEGMENT_HEADER_LEN as u64;
            st.buf_first = next;
        }
        if next > st.next_lsn {
            // Under the state lock, before any append can take `next`.
            st.next_lsn = next;
            inner.commit.skip_to(next.prev())?;
        }
        let (n, floor) = (st.segments.len(), st.retention);
        let k = st.segments[..n - 1]
            .iter()
            .take_while(|s| releasable(s, next, floor))
            .count();
        let old: Vec<Segment> = st.segments.drain(..k).collect();
        // Under the state lock, so no event of what follows the reset comes before it.
        inner.emit(SegmentEvent::Reset { next });
        drop(st);
        inner.room_freed();
        inner.commit.advance_durable(next.prev(), generation)?;
        inner.retire(old).inspect_err(|e| inner.poison_with(e))
    }
}

impl Inner {
    /// Writes out the buffer and waits until every record appended is written and the active
    /// segment exists, so maintenance can work on the files. Called with the state lock held;
    /// writers in flight and rollers finish without it.
    pub(crate) fn quiesce(&self, st: &mut MutexGuard<'_, State>) -> Result<()> {
        if let Some(region) = st.take_buffer(&self.commit, &self.buffers) {
            self.write_region(region)?;
        }
        let last = st.next_lsn.prev();
        let active = Arc::clone(&st.active().file);
        self.commit.wait_until(Deadline::NEVER, |g| {
            g.written() >= last && active.handle().is_some()
        })?;
        Ok(())
    }

    fn write_checkpoint(&self, lsn: Lsn) -> Result<()> {
        let metadata = crate::log::lock_any(&self.metadata).clone();
        self.write_checkpoint_file(lsn, metadata)
    }

    /// Rewrites the active segment so it ends with `last`, marked as the end of its batch: the
    /// bytes before it are copied to a temporary file, the frame is re-encoded, and the copy is
    /// renamed over the segment, so a crash leaves either the old file or the new one.
    fn rewrite_tail(&self, seg: &mut Segment, last: &FoundFrame) -> Result<()> {
        let storage = &*self.storage;
        let old = Arc::clone(&seg.file);
        let tmp = old.path.with_extension(format!("seg{TEMP_SUFFIX}"));
        let result = (|| -> Result<Box<dyn StorageFile>> {
            let src = old.io()?;
            let out = storage.open(&tmp, OpenMode::Truncate).at("create", &tmp)?;
            let mut chunk = vec![0u8; 1 << 20];
            let mut at = 0u64;
            while at < last.offset {
                let n = usize::try_from(last.offset - at)
                    .unwrap_or(usize::MAX)
                    .min(chunk.len());
                src.read_exact_at(&mut chunk[..n], at)
                    .at("read", &old.path)?;
                out.write_all_at(&chunk[..n], at).at("write", &tmp)?;
                at += n as u64;
            }
            let mut frame = Vec::new();
            let meta = FrameMeta {
                kind: KIND_RECORD,
                lsn: last.header.lsn,
                durable_hint: last.header.durable_hint,
                flags: last.header.flags | FLAG_BATCH_END,
                timestamp_ms: last.header.timestamp_ms.unwrap_or(0),
            };
            encode_frame(&mut frame, old.layout(), old.seed, meta, &last.payload);
            out.write_all_at(&frame, last.offset).at("write", &tmp)?;
            let _ = out.allocate(self.preallocation());
            out.sync_data().at("sync", &tmp)?;
            storage
                .rename(&tmp, &old.path)
                .at("rename into place", &tmp)?;
            storage
                .sync_dir(&self.dir)
                .at("sync directory", &self.dir)?;
            Ok(out)
        })();
        match result {
            Ok(file) => {
                seg.file = Arc::new(SegmentFile::opened(old.path.clone(), old.header, file));
                Ok(())
            }
            Err(e) => {
                self.poison_with(&e);
                Err(e)
            }
        }
    }
}
