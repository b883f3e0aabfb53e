//! [`Log`]: one ordered, durable sequence of records in one directory.
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
//! Durability goes through [`GroupCommit::commit`]: one caller leads (writes out the buffer,
//! fsyncs the segment holding the written watermark) and every caller it covers returns.
//!
//! Lock order: `maintenance` (checkpoint, rollback, reset), then `state`, then the group-commit
//! lock, then `background`.

use std::future::Future;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::commit::{Cause, GroupCommit, Synced};
use crate::error::{Error, IoContext, Result};
use crate::format::{
    FLAG_BATCH_END, FLAG_BATCH_START, FRAME_HEADER_LEN, SEGMENT_HEADER_LEN, TEMP_SUFFIX,
    encode_frame, frame_header, free_file_name,
};
use crate::io::{DirLock, OpenMode, StdStorage, Storage, StorageFile};
use crate::metrics::{Metrics, Stats};
use crate::options::{Durability, Options, RecoveryMode, SyncPolicy, WhenFull};
use crate::reader::{Iter, Reaper, Record};
use crate::recovery::{self, RecoveryReport};
use crate::segment::{FoundFrame, Segment, SegmentFile};
use crate::types::Lsn;

/// How many free segment files recycling keeps for reuse.
const FREE_FILES_KEPT: usize = 2;

/// Batches of at least this many bytes skip the shared buffer: the appender encodes and writes
/// them itself, outside the lock.
const DIRECT_WRITE_BYTES: u64 = 64 << 10;

/// Builds and opens a [`Log`]; see [`Log::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct LogBuilder {
    dir: PathBuf,
    options: Options,
    storage: Arc<dyn Storage>,
}

impl LogBuilder {
    /// Replaces all options at once.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Target segment size in bytes ([`Options::segment_bytes`]).
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.options.segment_bytes = bytes;
        self
    }

    /// Largest record accepted ([`Options::max_record_bytes`]).
    pub fn max_record_bytes(mut self, bytes: u32) -> Self {
        self.options.max_record_bytes = bytes;
        self
    }

    /// What recovery does with damage ([`Options::recovery_mode`]).
    pub fn recovery_mode(mut self, mode: RecoveryMode) -> Self {
        self.options.recovery_mode = mode;
        self
    }

    /// When the log syncs on its own ([`Options::sync_policy`]).
    pub fn sync_policy(mut self, policy: SyncPolicy) -> Self {
        self.options.sync_policy = policy;
        self
    }

    /// Size of the write buffer ([`Options::write_buffer_bytes`]).
    pub fn write_buffer_bytes(mut self, bytes: usize) -> Self {
        self.options.write_buffer_bytes = bytes;
        self
    }

    /// Whether to create the log if the directory holds none ([`Options::create_if_missing`]).
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.options.create_if_missing = create;
        self
    }

    /// Whether new segment files are preallocated ([`Options::preallocate`]).
    pub fn preallocate(mut self, preallocate: bool) -> Self {
        self.options.preallocate = preallocate;
        self
    }

    /// Whether segment files a checkpoint frees are reused ([`Options::recycle_segments`]).
    pub fn recycle_segments(mut self, recycle: bool) -> Self {
        self.options.recycle_segments = recycle;
        self
    }

    /// Bound the log to `bytes` ([`Options::capacity_bytes`]).
    pub fn capacity_bytes(mut self, bytes: u64) -> Self {
        self.options.capacity_bytes = Some(bytes);
        self
    }

    /// What an append into a full bounded log does ([`Options::when_full`]).
    pub fn when_full(mut self, when: WhenFull) -> Self {
        self.options.when_full = when;
        self
    }

    /// Open read-only, for inspection ([`Options::read_only`]).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.options.read_only = read_only;
        self
    }

    /// The storage the log lives on; the real file system by default.
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// Opens the log, creating it if allowed, and runs recovery.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] for an option out of range, [`Error::Locked`] if another open
    /// log holds the directory, [`Error::NotFound`] if there is no log and creating is off,
    /// [`Error::Corrupt`] or [`Error::MissingRecords`] for damage the recovery mode does not
    /// tolerate, [`Error::Io`] for a failing storage.
    pub fn open(self) -> Result<Log> {
        Log::open_with(self)
    }
}

#[derive(Debug)]
struct State {
    next_lsn: Lsn,
    checkpoint: Lsn,
    /// Ascending by first LSN; never empty; the last one takes appends.
    segments: Vec<Segment>,
    /// Encoded frames not yet handed to a writer; they belong at `buf_offset` of the active
    /// segment and start with LSN `buf_first`.
    buf: Vec<u8>,
    buf_offset: u64,
    buf_first: Lsn,
    closed: bool,
    /// What appends did, counted under the lock they already hold (no atomics on that path).
    counts: AppendCounts,
}

#[derive(Debug, Default, Clone, Copy)]
struct AppendCounts {
    appends: u64,
    records: u64,
    batches: u64,
    bytes: u64,
}

impl State {
    fn active(&self) -> &Segment {
        // `segments` is never empty: recovery and every operation that removes segments leave
        // an active one.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Index of the segment that holds (or would hold) `lsn`.
    fn segment_of(&self, lsn: Lsn) -> usize {
        self.segments
            .partition_point(|s| s.first_lsn() <= lsn)
            .saturating_sub(1)
    }

    /// Takes the buffered frames out as a region for a writer.
    fn take_buffer(&mut self, commit: &GroupCommit, pool: &BufferPool) -> Option<Region> {
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

/// Spare write buffers, so handing the buffer to a writer does not allocate (a buffer of a
/// few hundred KiB is an `mmap` for most allocators).
#[derive(Debug)]
struct BufferPool {
    spare: Mutex<Vec<Vec<u8>>>,
    capacity: usize,
}

impl BufferPool {
    const KEEP: usize = 4;

    fn get(&self) -> Vec<u8> {
        let spare = self.spare.lock().ok().and_then(|mut s| s.pop());
        spare.unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    fn put(&self, mut buf: Vec<u8>) {
        // Keep ordinary buffers only, not one grown by a huge batch.
        if buf.capacity() <= self.capacity.max(64 << 10) * 4
            && let Ok(mut spare) = self.spare.lock()
            && spare.len() < Self::KEEP
        {
            buf.clear();
            spare.push(buf);
        }
    }
}

/// Frames for a contiguous LSN range, to be written at `offset` of `file`.
struct Region {
    file: Arc<SegmentFile>,
    offset: u64,
    bytes: Vec<u8>,
    first: Lsn,
    last: Lsn,
}

/// A roll planned under the lock: seal `sealed` (whose last record is `sealed_last`), create
/// `next`.
struct Roll {
    sealed: Arc<SegmentFile>,
    sealed_last: Lsn,
    /// Where the sealed segment's frames end (its preallocated tail is trimmed there).
    sealed_end: u64,
    next: Arc<SegmentFile>,
}

/// A batch to encode and write outside the lock.
struct Direct {
    file: Arc<SegmentFile>,
    offset: u64,
    first: Lsn,
    hint: Lsn,
}

#[derive(Debug, Default)]
struct Background {
    stop: bool,
    /// Highest LSN an async waiter asked to be made durable.
    requested: Lsn,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    options: Options,
    log_id: u128,
    report: RecoveryReport,
    maintenance: Mutex<()>,
    state: Mutex<State>,
    commit: GroupCommit,
    background: Mutex<Background>,
    background_wake: Condvar,
    /// Bytes appended since the last sync, for [`SyncPolicy::Bytes`].
    unsynced_bytes: AtomicU64,
    buffers: BufferPool,
    /// Signalled (with the state lock) whenever segments leave the log, for appends waiting for
    /// room in a bounded log.
    room: Condvar,
    stats: Stats,
    /// Free segment files kept for reuse ([`Options::recycle_segments`]).
    free: Mutex<Vec<PathBuf>>,
    /// Positions of the live followers, for the reader lag.
    followers: Mutex<Vec<Weak<AtomicU64>>>,
    /// Segment files a checkpoint or reset dropped, removed once no reader holds them.
    retired: Mutex<Vec<Arc<SegmentFile>>>,
    _lock: Option<DirLock>,
}

/// A durable, recoverable write-ahead log in one directory.
///
/// `Log` is `Send + Sync`: share it between threads with an `Arc`. Appends take a short lock to
/// assign LSNs and copy the record into the write buffer (large batches are written by their
/// appender outside the lock); syncs are grouped so that many threads waiting for durability
/// share one fsync.
///
/// Dropping a `Log` stops its background syncer and makes a best-effort sync; call
/// [`Log::close`] to see the result.
#[derive(Debug)]
pub struct Log {
    inner: Arc<Inner>,
    syncer: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock().map_err(|_| Error::Poisoned)
}

impl Log {
    /// Starts building a log in `dir` with the default options on the real file system.
    pub fn builder(dir: impl AsRef<Path>) -> LogBuilder {
        LogBuilder {
            dir: dir.as_ref().to_path_buf(),
            options: Options::default(),
            storage: Arc::new(StdStorage::new()),
        }
    }

    /// Opens (or creates) the log in `dir` with the default options.
    ///
    /// # Errors
    /// As [`LogBuilder::open`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Log> {
        Self::builder(dir).open()
    }

    fn open_with(builder: LogBuilder) -> Result<Log> {
        let LogBuilder {
            dir,
            options,
            storage,
        } = builder;
        options.validate()?;
        if options.create_if_missing && !options.read_only {
            create_log_dir(&*storage, &dir)?;
        } else {
            let names = storage.list(&dir).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::NotFound { path: dir.clone() },
                _ => Error::Io {
                    op: "list",
                    path: dir.clone(),
                    source: e,
                },
            })?;
            // Refused before the lock is taken, so a directory without a log stays untouched.
            if !names.iter().any(|n| crate::format::is_log_file_name(n)) {
                return Err(Error::NotFound { path: dir });
            }
        }
        // A read-only log changes nothing, so it takes no lock: a writer may hold it.
        let dir_lock = if options.read_only {
            None
        } else {
            Some(storage.lock_dir(&dir).map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock => Error::Locked { path: dir.clone() },
                _ => Error::Io {
                    op: "lock",
                    path: dir.clone(),
                    source: e,
                },
            })?)
        };
        let recovered = {
            span!("tidelog.recover", dir = %dir.display(), mode = ?options.recovery_mode);
            recovery::recover(&*storage, &dir, &options)?
        };
        let buf_offset = recovered
            .segments
            .last()
            .map_or(SEGMENT_HEADER_LEN as u64, |s| s.end);
        let durable = recovered.next_lsn.prev();
        let free_files = recovered.free.clone();
        let state = State {
            next_lsn: recovered.next_lsn,
            checkpoint: recovered.checkpoint,
            segments: recovered.segments,
            buf: Vec::with_capacity(options.write_buffer_bytes),
            buf_offset,
            buf_first: recovered.next_lsn,
            closed: false,
            counts: AppendCounts::default(),
        };
        let policy = options.sync_policy;
        let buffer_capacity = options.write_buffer_bytes;
        let label = dir.display().to_string();
        let inner = Arc::new(Inner {
            dir,
            storage,
            options,
            log_id: recovered.log_id,
            report: recovered.report,
            maintenance: Mutex::new(()),
            state: Mutex::new(state),
            commit: GroupCommit::new(durable),
            background: Mutex::new(Background::default()),
            background_wake: Condvar::new(),
            unsynced_bytes: AtomicU64::new(0),
            buffers: BufferPool {
                spare: Mutex::new(Vec::new()),
                capacity: buffer_capacity,
            },
            retired: Mutex::new(Vec::new()),
            stats: Stats::new(&label),
            free: Mutex::new(free_files),
            followers: Mutex::new(Vec::new()),
            room: Condvar::new(),
            _lock: dir_lock,
        });
        if inner.options.read_only {
            return Ok(Log {
                inner,
                syncer: None,
            });
        }
        let worker = Arc::clone(&inner);
        let syncer = std::thread::Builder::new()
            .name("tidelog-syncer".into())
            .spawn(move || worker.run_background(policy))
            .at("start the background syncer thread", &inner.dir)?;
        Ok(Log {
            inner,
            syncer: Some(syncer),
        })
    }

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

    /// Appends one record and returns its LSN.
    ///
    /// With [`Durability::Buffered`] the record is durable only after a later sync; with
    /// [`Durability::Synced`] the call returns once it is.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`] (checked before anything is allocated or written),
    /// [`Error::Poisoned`] after an earlier failure, [`Error::Closed`], or the [`Error::Io`] of
    /// a failed write or sync, which poisons the log.
    ///
    /// # Blocking
    /// May write to the storage (when the write buffer fills or the segment rolls), and with
    /// `Synced` waits for an fsync.
    pub fn append(&self, record: &[u8], durability: Durability) -> Result<Lsn> {
        self.inner
            .append_records(&[record], durability)
            .map(|(first, _)| first)
    }

    /// Appends records as one batch: after a crash either all of them are there or none is.
    /// Returns the LSNs of the first and the last record; the others lie between. Any slice of
    /// byte containers will do (`&[Vec<u8>]`, `&[&[u8]]`, `&[&str]`, …); a batch never spans
    /// two segments.
    ///
    /// # Errors
    /// [`Error::EmptyBatch`] for no records, and as [`Log::append`].
    ///
    /// # Blocking
    /// As [`Log::append`].
    pub fn append_batch<B: AsRef<[u8]>>(
        &self,
        records: &[B],
        durability: Durability,
    ) -> Result<(Lsn, Lsn)> {
        self.inner.append_records(records, durability)
    }

    /// Makes every record appended so far durable.
    ///
    /// # Errors
    /// [`Error::Poisoned`], [`Error::Closed`], or the [`Error::Io`] of the failed write or sync
    /// (which poisons the log).
    ///
    /// # Blocking
    /// Waits for an fsync (its own, or one another thread leads that covers it).
    pub fn sync(&self) -> Result<()> {
        let last = self.inner.state()?.next_lsn.prev();
        self.inner.sync_to(last)
    }

    /// Returns once every record up to `lsn` is durable, leading a sync if nobody else is.
    ///
    /// # Errors
    /// [`Error::InvalidLsn`] if `lsn` was not appended yet, and as [`Log::sync`].
    ///
    /// # Blocking
    /// As [`Log::sync`].
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        self.check_appended(lsn)?;
        self.inner.sync_to(lsn)
    }

    /// Like [`Log::wait_durable`], giving up after `timeout`: returns whether `lsn` is durable.
    /// A sync this call leads is never cut short, so it may return a little after the timeout.
    ///
    /// # Errors
    /// As [`Log::wait_durable`].
    ///
    /// # Blocking
    /// Up to about `timeout`.
    pub fn wait_durable_timeout(&self, lsn: Lsn, timeout: Duration) -> Result<bool> {
        self.check_appended(lsn)?;
        let deadline = Instant::now() + timeout;
        let inner = &*self.inner;
        inner.commit.commit(lsn, Some(deadline), &|| inner.lead())
    }

    /// A future that resolves once every record up to `lsn` is durable. It works under any
    /// executor and never blocks one: the log's background thread runs the sync and wakes the
    /// future.
    ///
    /// # Errors
    /// [`Error::InvalidLsn`] (at once) if `lsn` was not appended yet; the future resolves to the
    /// error of a failed sync, or [`Error::Poisoned`].
    pub fn durable(&self, lsn: Lsn) -> Result<DurableFuture> {
        self.check_appended(lsn)?;
        Ok(DurableFuture {
            inner: Arc::clone(&self.inner),
            target: lsn,
            requested: false,
            request: true,
        })
    }

    fn check_appended(&self, lsn: Lsn) -> Result<()> {
        if lsn > self.inner.state()?.next_lsn.prev() {
            return Err(Error::InvalidLsn {
                lsn,
                reason: "no record with this LSN was appended",
            });
        }
        Ok(())
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
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`].
    pub fn last_lsn(&self) -> Result<Lsn> {
        Ok(self.inner.state()?.next_lsn.prev())
    }

    /// Records below this LSN were dropped by a checkpoint; it is the first LSN a read may ask
    /// for (1 for a log never checkpointed).
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`].
    pub fn checkpoint_lsn(&self) -> Result<Lsn> {
        Ok(self.inner.state()?.checkpoint)
    }

    /// Bytes the log holds: segment headers and frames, written or still buffered. This is what
    /// [`Options::capacity_bytes`] bounds.
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`].
    pub fn used_bytes(&self) -> Result<u64> {
        Ok(used_bytes(&*self.inner.state()?))
    }

    /// Room left in a bounded log (`None` if the log is unbounded).
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`].
    pub fn free_bytes(&self) -> Result<Option<u64>> {
        let used = self.used_bytes()?;
        Ok(self
            .inner
            .options
            .capacity_bytes
            .map(|c| c.saturating_sub(used)))
    }

    /// What the log has done since it was opened: counts, latency histograms, watermarks,
    /// space, and how far behind the slowest follower is. With the `metrics` feature the same
    /// figures also go to the `metrics` crate's recorder (the gauges when this is called).
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`].
    pub fn metrics(&self) -> Result<Metrics> {
        let inner = &*self.inner;
        let (last_lsn, used, counts) = {
            let st = inner.state()?;
            (st.next_lsn.prev(), used_bytes(&st), st.counts)
        };
        let durable_lsn = inner.commit.durable();
        let slowest = lock(&inner.followers)?
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
        Ok(metrics)
    }

    /// The segments of the log, oldest first; the last one takes appends.
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`].
    pub fn segments(&self) -> Result<Vec<SegmentInfo>> {
        let st = self.inner.state()?;
        let n = st.segments.len();
        Ok(st
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| SegmentInfo {
                path: s.file.path.clone(),
                first_lsn: s.first_lsn(),
                last_lsn: s.last_lsn,
                bytes: s.end,
                active: i + 1 == n,
            })
            .collect())
    }

    /// Reads the record at `lsn`.
    ///
    /// # Errors
    /// [`Error::BelowCheckpoint`], [`Error::NotDurable`] (readers see durable records only),
    /// [`Error::RecordLost`] for a record a `SkipCorrupt` recovery skipped, [`Error::Corrupt`] if
    /// the bytes on disk no longer check out, [`Error::Io`], [`Error::Poisoned`],
    /// [`Error::Closed`].
    pub fn read(&self, lsn: Lsn) -> Result<Record> {
        let view = {
            let st = self.inner.state()?;
            self.check_readable(&st, lsn)?;
            let i = st.segment_of(lsn);
            if lsn > st.segments[i].last_lsn {
                return Err(Error::RecordLost { lsn });
            }
            st.segments[i].view(lsn)
        };
        match view.find(lsn)? {
            Some(frame) => Ok(Record::new(lsn, frame.payload, frame.header.flags)),
            None => Err(Error::RecordLost { lsn }),
        }
    }

    fn check_readable(&self, st: &State, lsn: Lsn) -> Result<()> {
        if lsn == Lsn::ZERO {
            return Err(Error::InvalidLsn {
                lsn,
                reason: "LSNs start at 1",
            });
        }
        if lsn < st.checkpoint {
            return Err(Error::BelowCheckpoint {
                lsn,
                checkpoint: st.checkpoint,
            });
        }
        let durable = self.durable_lsn();
        if lsn > durable {
            return Err(Error::NotDurable { lsn, durable });
        }
        Ok(())
    }

    /// Iterates over every durable record from the checkpoint on.
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`].
    pub fn iter(&self) -> Result<Iter> {
        self.range(..)
    }

    /// Iterates over the durable records from `lsn` on.
    ///
    /// # Errors
    /// As [`Log::range`].
    pub fn iter_from(&self, lsn: Lsn) -> Result<Iter> {
        self.range(lsn..)
    }

    /// Iterates over the durable records in `range`, as the log is when the call is made
    /// (records that become durable later are not included). The iterator keeps the segment
    /// files it needs open, so a checkpoint cannot take them away under it. Records a
    /// `SkipCorrupt` recovery skipped are left out.
    ///
    /// # Errors
    /// [`Error::BelowCheckpoint`] if the range starts below the checkpoint, [`Error::Poisoned`],
    /// [`Error::Closed`]. Items are `Err` for damage found while reading.
    pub fn range(&self, range: impl RangeBounds<Lsn>) -> Result<Iter> {
        range_of(&self.inner, range)
    }

    /// A follower that reads the log from `from` on and, having read everything durable, waits
    /// for more: [`Tail::recv`] blocks (woken when the durable LSN moves, never by polling),
    /// [`Tail::recv_timeout`] gives up after a while, [`Tail::recv_async`] awaits. It sees
    /// durable records only, so never one a crash could take away, and pins the segments it may
    /// still read. Any number of followers can run at once.
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
        let checkpoint = self.inner.state()?.checkpoint;
        if from < checkpoint {
            return Err(Error::BelowCheckpoint {
                lsn: from,
                checkpoint,
            });
        }
        let position = Arc::new(AtomicU64::new(from.get()));
        let mut followers = lock(&self.inner.followers)?;
        followers.retain(|f| f.strong_count() > 0);
        followers.push(Arc::downgrade(&position));
        drop(followers);
        Ok(Tail {
            log: Arc::downgrade(&self.inner),
            next: from,
            iter: None,
            position,
        })
    }

    /// Declares that records below `lsn` are no longer needed. The checkpoint is persisted
    /// crash-safely (after the records below it are made durable), then every segment holding
    /// only records below it is removed. Checkpoints only move forward; a lower `lsn` is a no-op.
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
        {
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
        }
        if lsn > Lsn::FIRST {
            inner.sync_to(lsn.prev())?;
        }
        inner.write_checkpoint(lsn)?;
        let removed: Vec<Segment> = {
            let mut st = inner.state()?;
            st.checkpoint = lsn;
            let n = st.segments.len();
            let k = st.segments[..n - 1]
                .iter()
                .take_while(|s| s.last_lsn < lsn)
                .count();
            let dropped = st.segments.drain(..k).collect();
            inner.room.notify_all();
            dropped
        };
        inner.retire(removed)
    }

    /// Durably discards every record after `lsn` (the Raft conflict case); the next append gets
    /// `lsn + 1`. A batch cut in the middle keeps its records up to `lsn`. A `lsn` at or past
    /// the last record is a no-op.
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
            None => SEGMENT_HEADER_LEN as u64,
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
        st.buf_offset = cut;
        st.buf_first = target;
        st.next_lsn = target;
        inner.room.notify_all();
        inner.commit.reset_to(lsn)
    }

    /// Discards every record. LSNs go on from where they were (the next append gets the LSN it
    /// would have got), so no LSN ever names two records; the checkpoint moves to that LSN.
    ///
    /// # Errors
    /// [`Error::Io`]: a failure before the checkpoint is written leaves the log as it was; a
    /// later one poisons it. [`Error::Poisoned`], [`Error::Closed`].
    ///
    /// # Blocking
    /// Waits for appends in flight, writes the checkpoint, creates a segment, removes files.
    pub fn reset(&self) -> Result<()> {
        span!("tidelog.reset", dir = %self.inner.dir.display());
        let inner = &*self.inner;
        inner.writable()?;
        let _maintenance = lock(&inner.maintenance)?;
        let mut st = inner.state()?;
        inner.quiesce(&mut st)?;
        let next = st.next_lsn;
        inner.write_checkpoint(next)?;
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
        let n = st.segments.len();
        let old: Vec<Segment> = st.segments.drain(..n - 1).collect();
        inner.room.notify_all();
        drop(st);
        inner.commit.advance_durable(next.prev())?;
        inner.retire(old).inspect_err(|e| inner.poison_with(e))
    }

    /// Syncs and closes the log, reporting what a drop would swallow.
    ///
    /// # Errors
    /// As [`Log::sync`].
    pub fn close(mut self) -> Result<()> {
        let result = self.sync();
        self.stop_background();
        if let Ok(mut st) = lock(&self.inner.state) {
            st.closed = true;
        }
        result
    }

    fn stop_background(&mut self) {
        if let Ok(mut bg) = self.inner.background.lock() {
            bg.stop = true;
            self.inner.background_wake.notify_all();
        }
        if let Some(handle) = self.syncer.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.stop_background();
        // Followers waiting for records give up once the log is gone.
        let inner = Arc::clone(&self.inner);
        let _close_followers = CloseOnDrop(inner);
        // Best effort: a caller who needs the outcome uses `close`.
        let closed = lock(&self.inner.state).map_or(true, |st| st.closed);
        if !closed && !self.inner.commit.is_poisoned() {
            let _ = self.sync();
        }
    }
}

impl Inner {
    /// Creates a planned segment's file, reusing a free one if recycling kept any.
    fn create_segment(&self, file: &SegmentFile) -> Result<()> {
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
    fn preallocation(&self) -> u64 {
        if self.options.preallocate {
            self.options.segment_bytes
        } else {
            0
        }
    }

    fn writable(&self) -> Result<()> {
        if self.options.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Locks the append state, failing if the log is poisoned or closed.
    fn state(&self) -> Result<MutexGuard<'_, State>> {
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

    fn append_records<B: AsRef<[u8]>>(
        &self,
        records: &[B],
        durability: Durability,
    ) -> Result<(Lsn, Lsn)> {
        if self.options.read_only {
            return Err(Error::ReadOnly);
        }
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let max = u64::from(self.options.max_record_bytes);
        let mut total = 0u64;
        for record in records {
            let len = record.as_ref().len() as u64;
            if len > max {
                return Err(Error::RecordTooLarge { len, max });
            }
            total += FRAME_HEADER_LEN as u64 + len;
        }
        let capacity = self.options.write_buffer_bytes;
        let mut sealed_region = None;
        let mut roll = None;
        let mut full = None;
        let mut direct = None;
        let (first, last) = {
            let mut st = self.state()?;
            if let Some(capacity) = self.options.capacity_bytes {
                st = self.wait_for_room(st, capacity, total)?;
            }
            let active = st.active();
            if !active.is_empty() && active.end + total > self.options.segment_bytes {
                sealed_region = st.take_buffer(&self.commit, &self.buffers);
                roll = Some(self.plan_roll(&mut st));
            }
            let st = &mut *st;
            let n = records.len() as u64;
            st.counts.appends += 1;
            st.counts.records += n;
            st.counts.batches += u64::from(n > 1);
            st.counts.bytes += total - n * FRAME_HEADER_LEN as u64;
            let first = st.next_lsn;
            let last = Lsn::new(first.get() + records.len() as u64 - 1);
            st.next_lsn = last.next();
            let hint = self.commit.durable();
            let seg = st.segments.last_mut().ok_or(Error::Poisoned)?;
            let offset = seg.end;
            seg.note_batch(first, offset);
            seg.end += total;
            seg.last_lsn = last;
            if total >= DIRECT_WRITE_BYTES {
                // The buffer's frames come before this batch; hand them out too.
                let file = Arc::clone(&seg.file);
                if !st.buf.is_empty() {
                    let bytes = std::mem::replace(&mut st.buf, self.buffers.get());
                    full = Some(Region {
                        file: Arc::clone(&file),
                        offset: st.buf_offset,
                        bytes,
                        first: st.buf_first,
                        last: first.prev(),
                    });
                }
                st.buf_offset = offset + total;
                st.buf_first = last.next();
                self.commit.handed(last);
                direct = Some(Direct {
                    file,
                    offset,
                    first,
                    hint,
                });
            } else {
                if st.buf.is_empty() {
                    st.buf_offset = offset;
                    st.buf_first = first;
                }
                let seed = seg.file.seed;
                encode_batch(&mut st.buf, seed, first, hint, records);
                if st.buf.len() >= capacity {
                    full = st.take_buffer(&self.commit, &self.buffers);
                }
            }
            (first, last)
        };
        if let Some(region) = sealed_region {
            self.write_region(region)?;
        }
        if let Some(roll) = roll {
            self.run_roll(roll)?;
        }
        if let Some(region) = full {
            self.write_region(region)?;
        }
        if let Some(d) = direct {
            self.write_direct(d, records, last)?;
        }
        #[cfg(feature = "metrics")]
        self.stats.appended(
            records.len() as u64,
            total - (FRAME_HEADER_LEN * records.len()) as u64,
        );
        self.note_appended(total);
        if durability == Durability::Synced || self.options.sync_policy == SyncPolicy::EveryCommit {
            self.sync_to(last)?;
        }
        Ok((first, last))
    }

    /// Returns the state lock once an append of `total` bytes fits in the bounded log, waiting
    /// for space as [`Options::when_full`] says.
    fn wait_for_room<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        capacity: u64,
        total: u64,
    ) -> Result<MutexGuard<'a, State>> {
        // A new segment's header counts too, if the append would roll.
        let needed = |st: &State| {
            let active = st.active();
            let rolls = !active.is_empty() && active.end + total > self.options.segment_bytes;
            total + if rolls { SEGMENT_HEADER_LEN as u64 } else { 0 }
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
            WhenFull::Wait(timeout) => Some(Instant::now() + timeout),
        };
        while used_bytes(&st) + needed(&st) > capacity {
            let Some(deadline) = deadline else {
                return Err(full(&st));
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(full(&st));
            }
            st = self
                .room
                .wait_timeout(st, deadline - now)
                .map_err(|_| Error::Poisoned)?
                .0;
            if self.commit.is_poisoned() {
                return Err(Error::Poisoned);
            }
            if st.closed || self.commit.is_closed() {
                return Err(Error::Closed);
            }
        }
        Ok(st)
    }

    /// Counts appended bytes for [`SyncPolicy::Bytes`] and wakes the syncer when they are due.
    fn note_appended(&self, bytes: u64) {
        if let SyncPolicy::Bytes(limit) = self.options.sync_policy {
            let before = self.unsynced_bytes.fetch_add(bytes, Ordering::AcqRel);
            if before < limit
                && before + bytes >= limit
                && let Ok(_bg) = self.background.lock()
            {
                self.background_wake.notify_all();
            }
        }
    }

    /// Plans a roll: the active segment is sealed and a new one, starting at the next LSN, takes
    /// appends at once; its file is created by `run_roll`, outside the lock.
    fn plan_roll(&self, st: &mut State) -> Roll {
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
        }
    }

    /// Seals a segment (once every region of it is written: fsync) and creates the next one.
    fn run_roll(&self, roll: Roll) -> Result<()> {
        span!("tidelog.roll", sealed = %roll.sealed.path.display(), next_lsn = %roll.next.first_lsn());
        self.commit
            .wait_until(None, |g| g.written() >= roll.sealed_last)?;
        let sealed = roll.sealed.io()?;
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
        if let Err(e) = self.create_segment(&roll.next) {
            self.poison_with(&e);
            return Err(e);
        }
        self.commit.notify();
        self.commit.advance_durable(roll.sealed_last)
    }

    /// Writes a region once its segment file exists, and reports it written.
    fn write_region(&self, region: Region) -> Result<()> {
        let file = self.ready(&region.file)?;
        if let Err(e) = file.write_all_at(&region.bytes, region.offset) {
            return Err(self.poison("write", &region.file.path, e));
        }
        self.buffers.put(region.bytes);
        self.commit.complete(region.first, region.last)
    }

    /// The segment's open file, waiting for a roll in progress to create it.
    fn ready<'a>(&self, segment: &'a SegmentFile) -> Result<&'a dyn StorageFile> {
        if segment.handle().is_none() {
            self.commit
                .wait_until(None, |_| segment.handle().is_some())?;
        }
        segment.io()
    }

    /// Writes a batch that skips the shared buffer. Large payloads are written from where they
    /// are (their header first), small ones are gathered and written together.
    fn write_direct<B: AsRef<[u8]>>(&self, d: Direct, records: &[B], last: Lsn) -> Result<()> {
        const IN_PLACE_BYTES: usize = 16 << 10;
        let file = self.ready(&d.file)?;
        let write = |bytes: &[u8], at: u64| {
            file.write_all_at(bytes, at)
                .map_err(|e| self.poison("write", &d.file.path, e))
        };
        let mut gathered = Vec::new();
        let mut gathered_at = d.offset;
        let mut at = d.offset;
        let n = records.len();
        for (i, record) in records.iter().enumerate() {
            let payload = record.as_ref();
            let lsn = Lsn::new(d.first.get() + i as u64);
            let header = frame_header(d.file.seed, lsn, d.hint, payload, batch_flags(i, n));
            if payload.len() >= IN_PLACE_BYTES {
                if !gathered.is_empty() {
                    write(&gathered, gathered_at)?;
                    gathered.clear();
                }
                write(&header, at)?;
                write(payload, at + FRAME_HEADER_LEN as u64)?;
            } else {
                if gathered.is_empty() {
                    gathered_at = at;
                }
                gathered.extend_from_slice(&header);
                gathered.extend_from_slice(payload);
            }
            at += (FRAME_HEADER_LEN + payload.len()) as u64;
        }
        if !gathered.is_empty() {
            write(&gathered, gathered_at)?;
        }
        self.commit.complete(d.first, last)
    }

    /// Writes out the buffer and waits until every record appended is written and the active
    /// segment exists, so maintenance can work on the files. Called with the state lock held;
    /// writers in flight and rollers finish without it.
    fn quiesce(&self, st: &mut MutexGuard<'_, State>) -> Result<()> {
        if let Some(region) = st.take_buffer(&self.commit, &self.buffers) {
            self.write_region(region)?;
        }
        let last = st.next_lsn.prev();
        let active = Arc::clone(&st.active().file);
        self.commit
            .wait_until(None, |g| g.written() >= last && active.handle().is_some())?;
        Ok(())
    }

    fn sync_to(&self, target: Lsn) -> Result<()> {
        if self.commit.durable() >= target {
            return Ok(());
        }
        let started = Instant::now();
        self.commit.commit(target, None, &|| self.lead())?;
        self.stats.committed(started.elapsed());
        Ok(())
    }

    /// The group-commit leader's step: write out the buffer, fsync the segment that holds the
    /// written watermark (earlier segments were synced when they were sealed), and report it.
    fn lead(&self) -> Result<Synced> {
        let pending = self.unsynced_bytes.load(Ordering::Acquire);
        let region = self.state()?.take_buffer(&self.commit, &self.buffers);
        if let Some(region) = region {
            self.write_region(region)?;
        }
        let epoch = self.commit.epoch();
        let written = self.commit.written();
        let durable = self.commit.durable();
        if written > durable {
            let file = {
                let st = self.state()?;
                Arc::clone(&st.segments[st.segment_of(written)].file)
            };
            let started = Instant::now();
            if let Err(e) = file.io()?.sync_data() {
                return Err(self.poison("sync", &file.path, e));
            }
            self.stats
                .synced(started.elapsed(), written.get() - durable.get());
        }
        let _ = self
            .unsynced_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(pending))
            });
        Ok(Synced {
            lsn: written,
            epoch,
        })
    }

    /// The background syncer: syncs on the policy's timer or byte count, and for async waiters.
    fn run_background(&self, policy: SyncPolicy) {
        let interval = match policy {
            SyncPolicy::Interval(every) => Some(every),
            _ => None,
        };
        let bytes_due = || match policy {
            SyncPolicy::Bytes(limit) => self.unsynced_bytes.load(Ordering::Acquire) >= limit,
            _ => false,
        };
        loop {
            {
                let Ok(mut bg) = self.background.lock() else {
                    return;
                };
                let mut deadline = interval.map(|every| Instant::now() + every);
                loop {
                    if bg.stop {
                        return;
                    }
                    if bg.requested > self.commit.durable() || bytes_due() {
                        break;
                    }
                    match deadline {
                        None => match self.background_wake.wait(bg) {
                            Ok(g) => bg = g,
                            Err(_) => return,
                        },
                        Some(at) => {
                            let now = Instant::now();
                            if now >= at {
                                break;
                            }
                            match self.background_wake.wait_timeout(bg, at - now) {
                                Ok((g, _)) => bg = g,
                                Err(_) => return,
                            }
                        }
                    }
                }
                deadline.take();
            }
            let Ok(last) = self.state().map(|st| st.next_lsn.prev()) else {
                return;
            };
            if last > self.commit.durable() && self.sync_to(last).is_err() {
                // The failure poisoned the log and reached the waiters; nothing more to do.
                return;
            }
        }
    }

    /// Asks the background thread to make `target` durable.
    fn request_sync(&self, target: Lsn) {
        if let Ok(mut bg) = self.background.lock() {
            bg.requested = bg.requested.max(target);
            self.background_wake.notify_all();
        }
    }

    /// Drops segments from the log: their files are removed now, or as soon as the last
    /// reader holding one lets go (a reader never finds a file gone under it).
    fn retire(&self, segments: Vec<Segment>) -> Result<()> {
        if segments.is_empty() {
            return Ok(());
        }
        lock(&self.retired)?.extend(segments.into_iter().map(|s| s.file));
        self.reap_files()
    }

    /// Removes the retired files no reader holds any more.
    fn reap_files(&self) -> Result<()> {
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
            if self.options.recycle_segments && lock(&self.free)?.len() < FREE_FILES_KEPT {
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

    fn write_checkpoint(&self, lsn: Lsn) -> Result<()> {
        recovery::write_checkpoint(&*self.storage, &self.dir, self.log_id, lsn)
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
            let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + last.payload.len());
            let flags = last.header.flags | FLAG_BATCH_END;
            let (lsn, durable) = (last.header.lsn, last.header.durable);
            encode_frame(&mut frame, old.seed, lsn, durable, &last.payload, flags);
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

    /// Poisons the log with a failed storage operation and returns the error for the caller.
    fn poison(&self, op: &'static str, path: &Path, err: io::Error) -> Error {
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
    fn poison_with(&self, err: &Error) {
        #[cfg(feature = "tracing")]
        tracing::error!(error = %err, "tidelog: log poisoned");
        self.commit.poison(Cause::of(err, &self.dir));
    }
}

/// Creates the log directory (and missing parents) durably: each directory created is synced
/// into its parent, so a power loss cannot lose a new log whose records were acknowledged.
fn create_log_dir(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let exists = |p: &Path| match storage.list(p) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).at("list", p),
    };
    // The directories to create, deepest first.
    let mut missing = Vec::new();
    let mut at = Some(dir);
    // A root (no parent) or an empty path (the current directory) always exists.
    while let Some(p) = at.filter(|p| !p.as_os_str().is_empty() && p.parent().is_some()) {
        if exists(p)? {
            break;
        }
        missing.push(p);
        at = p.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    storage.create_dir_all(dir).at("create directory", dir)?;
    for created in missing.iter().rev() {
        let parent = match created.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        storage.sync_dir(parent).at("sync directory", parent)?;
    }
    Ok(())
}

/// Bytes the log's segments hold: headers and frames, written or buffered.
fn used_bytes(st: &State) -> u64 {
    st.segments.iter().map(|s| s.end).sum()
}

/// An iterator over the durable records of `range` (see [`Log::range`]).
fn range_of(inner: &Arc<Inner>, range: impl RangeBounds<Lsn>) -> Result<Iter> {
    let st = inner.state()?;
    let from = match range.start_bound() {
        Bound::Included(&l) => l,
        Bound::Excluded(&l) => l.next(),
        Bound::Unbounded => st.checkpoint,
    };
    if from < st.checkpoint {
        return Err(Error::BelowCheckpoint {
            lsn: from,
            checkpoint: st.checkpoint,
        });
    }
    let from = from.max(Lsn::FIRST);
    let durable = inner.commit.durable();
    let to = match range.end_bound() {
        Bound::Included(&l) => l.min(durable),
        Bound::Excluded(&l) => l.prev().min(durable),
        Bound::Unbounded => durable,
    };
    let mut views = Vec::new();
    if from <= to {
        let first = st.segment_of(from);
        let last = st.segment_of(to);
        for i in first..=last {
            views.push(st.segments[i].view(if i == first { from } else { Lsn::ZERO }));
        }
    }
    let reaper: Weak<dyn Reaper> = Arc::downgrade(inner) as Weak<dyn Reaper>;
    Ok(Iter::new(views, from, to, Some(reaper)))
}

/// A follower of a log, from [`Log::tail`]: reads every durable record in LSN order and waits
/// for the next ones.
#[derive(Debug)]
pub struct Tail {
    log: Weak<Inner>,
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

    /// The next record if one is durable, without waiting.
    ///
    /// # Errors
    /// [`Error::BelowCheckpoint`] if a checkpoint dropped the records it had not read yet,
    /// [`Error::Closed`] once the log is closed, [`Error::Poisoned`], and read errors.
    pub fn try_recv(&mut self) -> Result<Option<Record>> {
        loop {
            if let Some(iter) = self.iter.as_mut() {
                match iter.next() {
                    Some(Ok(record)) => {
                        self.next = record.lsn().next();
                        self.position.store(self.next.get(), Ordering::Relaxed);
                        return Ok(Some(record));
                    }
                    Some(Err(e)) => {
                        self.iter = None;
                        return Err(e);
                    }
                    None => {
                        // Past the end of that snapshot (and past any skipped records).
                        self.next = self.next.max(iter.last_lsn().next());
                        self.position.store(self.next.get(), Ordering::Relaxed);
                        self.iter = None;
                    }
                }
            }
            let inner = self.log.upgrade().ok_or(Error::Closed)?;
            if inner.commit.is_closed() {
                return Err(Error::Closed);
            }
            if inner.commit.is_poisoned() {
                return Err(Error::Poisoned);
            }
            if inner.commit.durable() < self.next {
                return Ok(None);
            }
            self.iter = Some(range_of(&inner, self.next..)?);
        }
    }

    /// The next record, waiting up to `timeout` for it to become durable.
    ///
    /// # Errors
    /// As [`Tail::try_recv`].
    ///
    /// # Blocking
    /// Up to `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Record>> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    /// The next record, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`Tail::try_recv`].
    ///
    /// A follower waiting when the log is poisoned gets the error that poisoned it; later calls
    /// get [`Error::Poisoned`].
    ///
    /// # Blocking
    /// Until a record is durable, or the log is closed or poisoned.
    pub fn recv(&mut self) -> Result<Record> {
        loop {
            if let Some(record) = self.recv_until(None)? {
                return Ok(record);
            }
        }
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<Record>> {
        loop {
            if let Some(record) = self.try_recv()? {
                return Ok(Some(record));
            }
            let inner = self.log.upgrade().ok_or(Error::Closed)?;
            let next = self.next;
            if !inner.commit.wait_until(deadline, |g| g.durable() >= next)? {
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
            let wait = DurableFuture {
                inner,
                target: self.next,
                requested: false,
                request: false,
            };
            wait.await?;
        }
    }
}

impl Reaper for Inner {
    fn reap(&self) {
        // Best effort from a reader's drop: what fails is retried by the next checkpoint.
        let _ = self.reap_files();
    }
}

/// Closes the group-commit state when dropped: at the very end of `Log::drop`, after the final
/// sync, so followers blocked in [`Tail::recv`] wake and return [`Error::Closed`].
struct CloseOnDrop(Arc<Inner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.commit.close();
    }
}

/// Encodes a batch's frames into `buf`, the first with the batch-start flag and the last with
/// the batch-end flag.
fn encode_batch<B: AsRef<[u8]>>(
    buf: &mut Vec<u8>,
    seed: u32,
    first: Lsn,
    hint: Lsn,
    records: &[B],
) {
    let n = records.len();
    for (i, record) in records.iter().enumerate() {
        let lsn = Lsn::new(first.get() + i as u64);
        encode_frame(buf, seed, lsn, hint, record.as_ref(), batch_flags(i, n));
    }
}

/// The batch flags of record `i` of a batch of `n`.
fn batch_flags(i: usize, n: usize) -> u8 {
    let start = if i == 0 { FLAG_BATCH_START } else { 0 };
    let end = if i + 1 == n { FLAG_BATCH_END } else { 0 };
    start | end
}

/// A future that resolves once a record is durable; from [`Log::durable`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct DurableFuture {
    inner: Arc<Inner>,
    target: Lsn,
    requested: bool,
    /// Ask the background thread to sync (a follower only waits for others' syncs).
    request: bool,
}

impl Future for DurableFuture {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let commit = &self.inner.commit;
        if commit.durable() >= self.target {
            return Poll::Ready(Ok(()));
        }
        if commit.is_poisoned() {
            return Poll::Ready(Err(commit.cause_error()));
        }
        if commit.is_closed() {
            return Poll::Ready(Err(Error::Closed));
        }
        if !commit.register(self.target, cx.waker()) {
            // Became durable (or poisoned) between the checks: decide now.
            return if commit.durable() >= self.target {
                Poll::Ready(Ok(()))
            } else if commit.is_closed() {
                Poll::Ready(Err(Error::Closed))
            } else {
                Poll::Ready(Err(commit.cause_error()))
            };
        }
        if self.request && !self.requested {
            self.requested = true;
            self.inner.request_sync(self.target);
        }
        Poll::Pending
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
