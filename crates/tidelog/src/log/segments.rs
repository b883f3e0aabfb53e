//! Segments over the log's life: rolls (planned under the state lock, run outside it), creating
//! a segment file (or reusing a recycled one), and removing the files a checkpoint, rollback or
//! reset dropped once no reader holds them.
//!
//! Invariants: a segment is synced before the next one is created, so a later segment never
//! holds intact records while an earlier one may lose some; a file a reader holds is never
//! removed under it (it is *retired* until the reader lets go).

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use std::sync::mpsc::{self, Receiver};

use super::{Inner, Log, SegmentInfo, State, lock, lock_any};
use crate::commit::Deadline;
use crate::error::{Error, IoContext, Result};
use crate::format::{
    FrameMeta, KIND_SEAL, Layout, SEAL_FRAME_LEN, SEGMENT_HEADER_LEN, encode_frame, free_file_name,
    seal_payload,
};
use crate::read::Reaper;
use crate::segment::{Segment, SegmentFile};
use crate::types::Lsn;

/// How many free segment files recycling keeps for reuse.
const FREE_FILES_KEPT: usize = 2;

/// A roll planned under the lock: seal `sealed` (whose last record is `sealed_last`), create
/// `next`; planned in rollback generation `generation`.
pub(crate) struct Roll {
    sealed: Arc<SegmentFile>,
    sealed_last: Lsn,
    /// Where the sealed segment's frames end (its preallocated tail is trimmed there).
    sealed_end: u64,
    next: Arc<SegmentFile>,
    generation: u64,
}

impl Inner {
    /// Creates a planned segment's file, reusing a free one if recycling kept any.
    pub(crate) fn create_segment(&self, file: &SegmentFile) -> Result<()> {
        let free = lock(&self.free)?.pop();
        let reused = file.create(
            &*self.storage,
            &self.dir,
            self.preallocation(),
            free.as_deref(),
        )?;
        if reused {
            self.stats.recycled.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Bytes to preallocate a new segment file to (0: none).
    pub(crate) fn preallocation(&self) -> u64 {
        if self.options.preallocate {
            self.options.segment_bytes
        } else {
            0
        }
    }

    /// Whether an append of `total` bytes rolls `active`: it would take the segment past
    /// `segment_bytes` (a segment's records alone may, when its first batch is larger). The seal
    /// that ends a rolled segment and a sync marker come after, outside that limit.
    pub(crate) fn rolls(&self, active: &Segment, total: u64) -> bool {
        !active.is_empty() && active.end + total > self.options.segment_bytes
    }

    /// Ends the active segment (of format version 2) with a seal: a frame naming the LSNs and
    /// the times of its records, which goes out with its last frames (format.md, 2.5). The
    /// caller rolls next.
    pub(crate) fn seal_active(&self, st: &mut State) {
        let active = st.active();
        let (file, end) = (Arc::clone(&active.file), active.end);
        let (first, last, first_ms, last_ms) = (
            active.first_lsn(),
            active.last_lsn,
            active.min_ms,
            active.max_ms,
        );
        if file.layout() != Layout::V2 || active.is_empty() {
            return;
        }
        let next = st.next_lsn;
        let meta = FrameMeta {
            kind: KIND_SEAL,
            lsn: next,
            durable_hint: self.commit.durable().min(last),
            flags: 0,
            timestamp_ms: st.stamp(),
        };
        if st.buf.is_empty() {
            st.buf_offset = end;
            st.buf_first = next;
        }
        let payload = seal_payload(first, last, first_ms, last_ms);
        encode_frame(&mut st.buf, Layout::V2, file.seed, meta, &payload);
        st.active_mut().end += SEAL_FRAME_LEN as u64;
    }

    /// Plans a roll: the active segment is sealed and a new one, starting at the next LSN, takes
    /// appends at once; its file is created by `run_roll`, outside the lock.
    pub(crate) fn plan_roll(&self, st: &mut State) -> Roll {
        let sealed = st.active();
        let sealed_file = Arc::clone(&sealed.file);
        let sealed_last = sealed.last_lsn;
        let sealed_end = sealed.end;
        let next = SegmentFile::planned(&self.dir, self.log_id, st.next_lsn);
        let segment = Segment::new(next);
        let next = Arc::clone(&segment.file);
        st.segments.push(segment);
        st.buf_offset = SEGMENT_HEADER_LEN as u64;
        st.buf_first = st.next_lsn;
        Roll {
            sealed: sealed_file,
            sealed_last,
            sealed_end,
            next,
            generation: self.commit.generation(),
        }
    }

    /// Seals a segment (once every region of it is written: fsync) and creates the next one.
    pub(crate) fn run_roll(&self, roll: Roll) -> Result<()> {
        span!("tidelog.roll", sealed = %roll.sealed.path.display(), next_lsn = %roll.next.first_lsn());
        self.commit
            .wait_until(Deadline::NEVER, |g| g.written() >= roll.sealed_last)?;
        let sealed = self.ready(&roll.sealed)?;
        if self.options.preallocate || self.options.recycle_segments {
            // A sealed segment keeps no preallocated zeros, which recovery would have to read,
            // and a file recycled later holds exactly one earlier life of frames.
            if let Err(e) = sealed.set_len(roll.sealed_end) {
                return Err(self.poison("trim", &roll.sealed.path, e));
            }
        }
        let started = Instant::now();
        if let Err(e) = sealed.sync_data() {
            return Err(self.poison("sync", &roll.sealed.path, e));
        }
        self.stats.sealed(started.elapsed());
        // Announced now, between its sync and the next segment's creation: the next roll (whose
        // segment this creation makes) and any rollback or reset (which wait for it) all come
        // after, so events reach subscribers in the order things happened.
        self.emit(SegmentEvent::Sealed(SegmentInfo {
            path: roll.sealed.path.clone(),
            first_lsn: roll.sealed.first_lsn(),
            last_lsn: roll.sealed_last,
            bytes: roll.sealed_end,
            active: false,
        }));
        if let Err(e) = self.create_segment(&roll.next) {
            self.poison_with(&e);
            return Err(e);
        }
        self.commit.notify();
        // Not if a rollback since the plan removed records of the sealed segment.
        self.commit
            .advance_durable(roll.sealed_last, roll.generation)
    }

    /// Drops segments from the log: their files are removed now, or as soon as the last
    /// reader holding one lets go (a reader never finds a file gone under it).
    pub(crate) fn retire(&self, segments: Vec<Segment>) -> Result<()> {
        if segments.is_empty() {
            return Ok(());
        }
        lock(&self.retired)?.extend(segments.into_iter().map(|s| s.file));
        self.reap_files()
    }

    /// Removes the retired files no reader holds any more.
    pub(crate) fn reap_files(&self) -> Result<()> {
        let free: Vec<Arc<SegmentFile>> = {
            let mut retired = lock(&self.retired)?;
            let (free, held) = retired.drain(..).partition(|f| Arc::strong_count(f) == 1);
            *retired = held;
            free
        };
        if free.is_empty() {
            return Ok(());
        }
        let mut failed = None;
        let mut recycled = 0;
        for (i, file) in free.iter().enumerate() {
            if self.options.recycle_segments
                && file.recyclable()
                && lock(&self.free)?.len() < FREE_FILES_KEPT
            {
                let target = self.dir.join(free_file_name(file.first_lsn()));
                // If the rename fails, the file is removed as usual instead.
                if self.storage.rename(&file.path, &target).is_ok() {
                    lock(&self.free)?.push(target);
                    recycled += 1;
                    continue;
                }
            }
            match self.storage.remove_file(&file.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    // Keep what is left for the next attempt.
                    lock(&self.retired)?.extend(free[i..].iter().cloned());
                    failed = Some(Error::Io {
                        op: "remove",
                        path: file.path.clone(),
                        source: e,
                    });
                    break;
                }
                _ => {}
            }
        }
        self.storage
            .sync_dir(&self.dir)
            .at("sync directory", &self.dir)?;
        let removed = free.len() - usize::from(failed.is_some()) - recycled;
        self.stats.removed(removed as u64);
        failed.map_or(Ok(()), Err)
    }
}

impl Log {
    /// Subscribes to what happens to the log's segments from now on: each segment sealed
    /// (synced, with its final LSN range and size, and never written again), each rollback and
    /// each reset. This is the seam an archiver builds on: it learns of segments sealed before
    /// the call from [`Log::segments`] (subscribe first, then list, and skip a segment seen
    /// twice). Events are delivered in the order they happened; a dropped receiver is
    /// forgotten.
    pub fn segment_events(&self) -> Receiver<SegmentEvent> {
        let (sender, receiver) = mpsc::channel();
        lock_any(&self.inner.subscribers).push(sender);
        receiver
    }
}

/// What happened to a segment, as [`Log::segment_events`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentEvent {
    /// A segment was sealed: its records are durable and its bytes final, until a checkpoint
    /// drops it or a rollback removes records from it.
    Sealed(SegmentInfo),
    /// [`Log::truncate_after`] removed every record after `to`, from sealed segments too (a
    /// sealed segment that held records after `to` is removed or cut).
    RolledBack {
        /// The LSN the log was truncated after.
        to: Lsn,
    },
    /// [`Log::reset`] discarded every record; the next one appended gets `next`.
    Reset {
        /// The LSN of the next record.
        next: Lsn,
    },
}

impl Inner {
    /// Sends `event` to every subscriber still listening.
    pub(crate) fn emit(&self, event: SegmentEvent) {
        let mut subscribers = lock_any(&self.subscribers);
        if !subscribers.is_empty() {
            subscribers.retain(|s| s.send(event.clone()).is_ok());
        }
    }
}

impl Reaper for Inner {
    fn reap(&self) {
        // Best effort from a reader's drop: what fails is retried by the next checkpoint.
        let _ = self.reap_files();
    }
}
