//! [`Log`]: one ordered, durable sequence of records in one directory, and the write path that
//! keeps it.
//!
//! The modules follow a record's way through the log:
//!
//! - [`builder`]: options and storage chosen, the directory created durably, recovery run;
//! - [`append`]: LSNs assigned and frames encoded under the state lock, written outside it
//!   (through the shared write buffer, or directly for large batches);
//! - [`segments`]: rolls to a new segment, segment creation and recycling, and removal of the
//!   files a checkpoint dropped once no reader holds them;
//! - [`space`]: the bounded log (room, waiting for it);
//! - `crate::commit`: group commit, the leader's sync, the background syncer, durability futures;
//! - [`maintenance`]: checkpoint, rollback (`truncate_after`) and reset;
//! - `crate::read`: reads, iterators and tails.
//!
//! # Concurrency
//!
//! Appends take the `state` lock only to assign LSNs and file space and to copy small records
//! into the shared write buffer; no I/O happens under it on the append path. A full buffer, or
//! a batch too large to buffer, becomes a *region* (a contiguous LSN range at a known offset of
//! one segment) that the appender writes itself, outside every lock. Regions finish in any
//! order; [`GroupCommit`] advances the written watermark over their gap-free prefix only.
//!
//! Rolling to a new segment is planned under the lock (the new header is chosen there) and done
//! outside it: the roller waits until every region of the sealed segment is written, fsyncs it,
//! then creates the new file; writers of the new segment's first regions wait for that file. So
//! a later segment never holds intact records while an earlier one has a gap.
//!
//! A rollback changes the LSNs under the state lock and starts a new rollback *generation* in
//! [`GroupCommit`]; everything that learned of an LSN (waiters, futures, iterators, tails, rolls,
//! the leader's sync) carries the generation it saw there, so none of them mistakes a record that
//! later takes the same LSN for the one it knew.
//!
//! A panic in a writer, the leader or the syncer (a user [`Storage`] that panics) poisons the
//! log through a [`PanicGuard`], so nobody waits forever for a write that will never finish.
//!
//! Lock order: `maintenance` (checkpoint, rollback, reset), then `state`, then the group-commit
//! lock, then `background`.

mod append;
mod builder;
mod maintenance;
mod metadata;
mod refresh;
mod retention;
mod segments;
mod space;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;

pub use self::append::Appended;
pub(crate) use self::append::BufferPool;
use self::append::Region;
pub use self::builder::LogBuilder;
pub(crate) use self::builder::create_log_dir;
pub(crate) use self::retention::read as read_retention;
pub use self::segments::SegmentEvent;
pub(crate) use self::space::used_bytes;
use crate::commit::{Background, Cause, GroupCommit};
use crate::error::{Error, Result};
use crate::io::{DirLock, Storage};
use crate::metrics::{Metrics, Stats};
use crate::options::Options;
use crate::recovery::RecoveryReport;
use crate::segment::{Segment, SegmentFile};
use crate::types::Lsn;

/// The append state: what the `state` lock guards.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) next_lsn: Lsn,
    pub(crate) checkpoint: Lsn,
    /// Ascending by first LSN; never empty; the last one takes appends.
    pub(crate) segments: Vec<Segment>,
    /// Encoded frames not yet handed to a writer; they belong at `buf_offset` of the active
    /// segment and start with LSN `buf_first`.
    pub(crate) buf: Vec<u8>,
    pub(crate) buf_offset: u64,
    pub(crate) buf_first: Lsn,
    pub(crate) closed: bool,
    /// The retention floor: no segment holding a record at or above it is dropped.
    pub(crate) retention: Option<Lsn>,
    /// What appends did, counted under the lock they already hold (no atomics on that path).
    pub(crate) counts: AppendCounts,
    /// The time given to the latest batch, in milliseconds since the Unix epoch: batch times
    /// never go backwards, whatever the wall clock does.
    pub(crate) last_ms: u64,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AppendCounts {
    pub(crate) appends: u64,
    pub(crate) records: u64,
    pub(crate) batches: u64,
    pub(crate) bytes: u64,
}

impl State {
    pub(crate) fn active(&self) -> &Segment {
        // `segments` is never empty: recovery and every operation that removes segments leave
        // an active one.
        &self.segments[self.segments.len() - 1]
    }

    /// The time of a batch appended now: the wall clock (its coarse reading), or the latest
    /// batch's time if the clock went back.
    pub(crate) fn stamp(&mut self) -> u64 {
        self.last_ms = self.last_ms.max(crate::coarse_now_ms());
        self.last_ms
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Index of the segment that holds (or would hold) `lsn`.
    pub(crate) fn segment_of(&self, lsn: Lsn) -> usize {
        self.segments
            .partition_point(|s| s.first_lsn() <= lsn)
            .saturating_sub(1)
    }

    /// The LSN of the last record appended.
    pub(crate) fn last_lsn(&self) -> Lsn {
        self.next_lsn.prev()
    }

    /// Takes the buffered frames out as a region for a writer.
    pub(crate) fn take_buffer(
        &mut self,
        commit: &GroupCommit,
        pool: &BufferPool,
    ) -> Option<Region> {
        if self.buf.is_empty() {
            return None;
        }
        let bytes = std::mem::replace(&mut self.buf, pool.get());
        let last = self.next_lsn.prev();
        commit.handed(last);
        let region = Region {
            file: Arc::clone(&self.active().file),
            offset: self.buf_offset,
            bytes,
            first: self.buf_first,
            last,
        };
        self.buf_offset += region.bytes.len() as u64;
        Some(region)
    }
}

/// What a [`Log`] shares with its syncer thread, readers, tails and futures.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) options: Options,
    pub(crate) log_id: u128,
    pub(crate) report: RecoveryReport,
    pub(crate) maintenance: Mutex<()>,
    /// The user metadata slot, as the checkpoint file holds it.
    pub(crate) metadata: Mutex<Vec<u8>>,
    pub(crate) state: Mutex<State>,
    /// Shared with iterators, which check the rollback generation without keeping the log.
    pub(crate) commit: Arc<GroupCommit>,
    pub(crate) background: Background,
    /// Bytes appended since the last sync, for [`SyncPolicy::Bytes`](crate::SyncPolicy::Bytes).
    pub(crate) unsynced_bytes: AtomicU64,
    /// A sync marker was written since the last fsync (a close makes it durable).
    pub(crate) marker_pending: std::sync::atomic::AtomicBool,
    pub(crate) buffers: BufferPool,
    /// Bumped (then the group-commit waiters notified) whenever segments leave the log, for
    /// appends waiting for room in a bounded log.
    pub(crate) room: AtomicU64,
    pub(crate) stats: Stats,
    /// Free segment files kept for reuse ([`Options::recycle_segments`]).
    pub(crate) free: Mutex<Vec<PathBuf>>,
    /// Positions of the live tails, for the reader lag.
    pub(crate) tails: Mutex<Vec<Weak<AtomicU64>>>,
    /// Segment files a checkpoint or reset dropped, removed once no reader holds them.
    pub(crate) retired: Mutex<Vec<Arc<SegmentFile>>>,
    /// Receivers of [`SegmentEvent`]s.
    pub(crate) subscribers: Mutex<Vec<Sender<SegmentEvent>>>,
}

/// A durable, recoverable write-ahead log in one directory.
///
/// `Log` is `Send + Sync`: share it between threads with an `Arc`. Appends take a short lock to
/// assign LSNs and copy the record into the write buffer (large batches are written by their
/// appender outside the lock); syncs are grouped so that many threads waiting for durability
/// share one fsync.
///
/// Dropping a `Log` stops its background syncer, makes a best-effort sync and releases the
/// directory lock (iterators, tails and futures still alive do not hold it); call
/// [`Log::close`] to see the result of the sync.
#[derive(Debug)]
pub struct Log {
    pub(crate) inner: Arc<Inner>,
    syncer: Option<JoinHandle<()>>,
    /// Dropped last, once the final sync is done.
    _lock: Option<DirLock>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock().map_err(|_| Error::Poisoned)
}

/// Locks `m` for reading even if a panic poisoned it (the log is poisoned then anyway, and
/// watermarks and counts stay meaningful).
pub(crate) fn lock_any<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Poisons the log if dropped while its thread unwinds from a panic: held across every stretch
/// where a panic would leave a region unwritten, a sync unfinished or a lock poisoned, so that
/// waiters learn of it instead of waiting forever.
pub(crate) struct PanicGuard<'a>(pub(crate) &'a Inner);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.commit.poison(Cause {
                op: "write (a panic unwound through the log)",
                path: self.0.dir.clone(),
                kind: io::ErrorKind::Other,
                message: "a thread panicked while writing or syncing the log".into(),
            });
        }
    }
}

impl Log {
    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The log's random 128-bit id, written into every segment header.
    pub fn log_id(&self) -> u128 {
        self.inner.log_id
    }

    /// What recovery found and did when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// The LSN up to which every record is on stable storage.
    pub fn durable_lsn(&self) -> Lsn {
        self.inner.commit.durable()
    }

    /// The LSN up to which every record was handed to the storage with no gap (written, maybe
    /// not synced).
    pub fn written_lsn(&self) -> Lsn {
        self.inner.commit.written()
    }

    /// The LSN of the last record appended (`checkpoint_lsn - 1` if the log holds none).
    pub fn last_lsn(&self) -> Lsn {
        lock_any(&self.inner.state).last_lsn()
    }

    /// Records below this LSN were dropped by a checkpoint; it is the first LSN a read may ask
    /// for (1 for a log never checkpointed).
    pub fn checkpoint_lsn(&self) -> Lsn {
        lock_any(&self.inner.state).checkpoint
    }

    /// What the log has done since it was opened: counts, latency histograms, watermarks,
    /// space, and how far behind the slowest tail is. With the `metrics` feature the same
    /// figures also go to the `metrics` crate's recorder (the gauges when this is called).
    pub fn metrics(&self) -> Metrics {
        let inner = &*self.inner;
        let (last_lsn, used, counts) = {
            let st = lock_any(&inner.state);
            (st.last_lsn(), space::used_bytes(&st), st.counts)
        };
        let durable_lsn = inner.commit.durable();
        let slowest = lock_any(&inner.tails)
            .iter()
            .filter_map(Weak::upgrade)
            .map(|p| p.load(Ordering::Relaxed))
            .min();
        let reader_lag = slowest.map_or(0, |next| (durable_lsn.get() + 1).saturating_sub(next));
        let stats = &inner.stats;
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let metrics = Metrics {
            appends: counts.appends,
            records: counts.records,
            batches: counts.batches,
            bytes: counts.bytes,
            fsyncs: count(&stats.fsyncs),
            commits: count(&stats.commits),
            group_size: stats.group_size.summary(),
            fsync_latency: stats.fsync_ns.summary(),
            commit_latency: stats.commit_ns.summary(),
            segments_rolled: count(&stats.rolled),
            segments_removed: count(&stats.removed),
            segments_recycled: count(&stats.recycled),
            used_bytes: used,
            free_bytes: inner.options.capacity_bytes.map(|c| c.saturating_sub(used)),
            last_lsn,
            written_lsn: inner.commit.written(),
            durable_lsn,
            reader_lag,
            recovery_time: inner.report.duration,
        };
        stats.gauges(&metrics);
        metrics
    }

    /// The segments of the log, oldest first; the last one takes appends.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let st = lock_any(&self.inner.state);
        let n = st.segments.len();
        st.segments
            .iter()
            .enumerate()
            .map(|(i, s)| SegmentInfo {
                path: s.file.path.clone(),
                first_lsn: s.first_lsn(),
                last_lsn: s.last_lsn,
                bytes: s.end,
                active: i + 1 == n,
            })
            .collect()
    }

    /// Syncs and closes the log, reporting what a drop would swallow.
    ///
    /// # Errors
    /// As [`Log::sync`].
    pub fn close(mut self) -> Result<()> {
        let result = self.sync().and_then(|()| self.inner.sync_marker());
        self.stop_background();
        lock_any(&self.inner.state).closed = true;
        result
    }

    fn stop_background(&mut self) {
        self.inner.background.stop();
        if let Some(handle) = self.syncer.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.stop_background();
        // Tails, futures and appends waiting for room give up once the log is gone, even if
        // the sync below panics.
        let _close = CloseOnDrop(&self.inner.commit);
        // Best effort: a caller who needs the outcome uses `close`.
        let closed = lock_any(&self.inner.state).closed;
        if !closed && !self.inner.commit.is_poisoned() {
            let _ = self.sync().and_then(|()| self.inner.sync_marker());
        }
    }
}

/// Closes the group-commit state when dropped: at the very end of `Log::drop`, after the final
/// sync, so tails blocked in [`Tail::recv`](crate::Tail::recv) wake and return
/// [`Error::Closed`].
struct CloseOnDrop<'a>(&'a GroupCommit);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Inner {
    /// Makes the sync marker that the last sync wrote durable (at a close): the proof that
    /// every record was durable then survives a power loss too.
    fn sync_marker(&self) -> Result<()> {
        if self.options.read_only {
            return Ok(());
        }
        if !self.marker_pending.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let file = Arc::clone(&self.state()?.active().file);
        let io = self.ready(&file)?;
        io.sync_data()
            .map_err(|e| self.poison("sync", &file.path, e))
    }

    pub(crate) fn writable(&self) -> Result<()> {
        if self.options.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Locks the append state, failing if the log is poisoned or closed.
    pub(crate) fn state(&self) -> Result<MutexGuard<'_, State>> {
        if self.commit.is_poisoned() {
            return Err(Error::Poisoned);
        }
        let st = lock(&self.state)?;
        if self.commit.is_poisoned() {
            return Err(Error::Poisoned);
        }
        if st.closed {
            return Err(Error::Closed);
        }
        Ok(st)
    }

    /// Tells appends waiting for room in a bounded log that segments left it.
    pub(crate) fn room_freed(&self) {
        self.room.fetch_add(1, Ordering::AcqRel);
        self.commit.notify();
    }

    /// Poisons the log with a failed storage operation and returns the error for the caller.
    pub(crate) fn poison(&self, op: &'static str, path: &Path, err: io::Error) -> Error {
        #[cfg(feature = "tracing")]
        tracing::error!(op, path = %path.display(), error = %err, "tidelog: log poisoned");
        self.commit.poison(Cause {
            op,
            path: path.to_path_buf(),
            kind: err.kind(),
            message: err.to_string(),
        });
        Error::Io {
            op,
            path: path.to_path_buf(),
            source: err,
        }
    }

    /// Poisons the log with an error that already carries its context.
    pub(crate) fn poison_with(&self, err: &Error) {
        #[cfg(feature = "tracing")]
        tracing::error!(error = %err, "tidelog: log poisoned");
        self.commit.poison(Cause::of(err, &self.dir));
    }
}

/// A segment of a log, as [`Log::segments`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// Path of the segment file.
    pub path: PathBuf,
    /// LSN of its first record (or of the first record it will take).
    pub first_lsn: Lsn,
    /// LSN of its last record; `first_lsn - 1` if it holds none.
    pub last_lsn: Lsn,
    /// Bytes used: the header and the frames appended (written or still buffered).
    pub bytes: u64,
    /// Whether it takes appends.
    pub active: bool,
}
