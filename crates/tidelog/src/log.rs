//! [`Log`]: one ordered, durable sequence of records in one directory.
//!
//! Locks, always taken in this order: `maintenance` (checkpoint, rollback, reset), then `state`
//! (appends, the segment list, the write buffer), then `sync` (the durable watermark and who is
//! syncing). The fsync itself runs under none of them, so appends go on while a sync is in
//! flight; every caller that wants durability either leads the next sync or waits for the
//! leader's to cover it (group commit).

use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{Error, IoContext, Result};
use crate::format::{
    CHECKPOINT_FILE, CheckpointFile, FLAG_BATCH_END, FLAG_BATCH_START, FRAME_HEADER_LEN,
    SEGMENT_HEADER_LEN, TEMP_SUFFIX, encode_frame,
};
use crate::io::{DirLock, OpenMode, StdStorage, Storage};
use crate::options::{Durability, Options, RecoveryMode, SyncPolicy};
use crate::reader::{Iter, Record};
use crate::recovery::{self, RecoveryReport};
use crate::segment::{Segment, SegmentFile, SegmentView};
use crate::types::Lsn;

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

/// The first failure that poisoned the log, kept so every waiter it covered gets the real error.
#[derive(Debug)]
struct Cause {
    op: &'static str,
    path: PathBuf,
    kind: io::ErrorKind,
    message: String,
}

impl Cause {
    fn to_error(&self) -> Error {
        Error::Io {
            op: self.op,
            path: self.path.clone(),
            source: io::Error::new(self.kind, self.message.clone()),
        }
    }
}

#[derive(Debug)]
struct State {
    next_lsn: Lsn,
    checkpoint: Lsn,
    /// Ascending by first LSN; never empty; the last one takes appends.
    segments: Vec<Segment>,
    /// Encoded frames not yet written; they belong at `written_end` of the active segment.
    buf: Vec<u8>,
    /// Offset in the active segment up to which bytes were handed to the storage.
    written_end: u64,
    /// Every record up to this LSN was handed to the storage.
    written_lsn: Lsn,
    closed: bool,
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

    /// A reader's view of segment `i` from `lsn` on.
    fn view(&self, i: usize, lsn: Lsn) -> SegmentView {
        let seg = &self.segments[i];
        let end = if i + 1 == self.segments.len() {
            self.written_end
        } else {
            seg.end
        };
        seg.view(lsn, end)
    }
}

#[derive(Debug, Default)]
struct SyncState {
    durable: Lsn,
    syncing: bool,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    options: Options,
    log_id: u128,
    report: RecoveryReport,
    poisoned: AtomicBool,
    cause: Mutex<Option<Cause>>,
    maintenance: Mutex<()>,
    state: Mutex<State>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Mirror of `sync.durable` for lock-free reads.
    durable: AtomicU64,
    /// Bumped (under the state lock) by every rollback, so a sync begun before one cannot raise
    /// the durable LSN over records the rollback removed.
    epoch: AtomicU64,
    _lock: DirLock,
}

/// A durable, recoverable write-ahead log in one directory.
///
/// `Log` is `Send + Sync`: share it between threads with an `Arc`. Appends take a short lock to
/// assign LSNs and copy the record into the write buffer; syncs are grouped so that many
/// threads waiting for durability share one fsync.
///
/// Dropping a `Log` makes a best-effort sync; call [`Log::close`] to see its result.
#[derive(Debug)]
pub struct Log {
    inner: Arc<Inner>,
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
        if options.create_if_missing {
            storage.create_dir_all(&dir).at("create directory", &dir)?;
        } else if let Err(e) = storage.list(&dir) {
            return match e.kind() {
                io::ErrorKind::NotFound => Err(Error::NotFound { path: dir }),
                _ => Err(Error::Io {
                    op: "list",
                    path: dir,
                    source: e,
                }),
            };
        }
        let dir_lock = storage.lock_dir(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => Error::Locked { path: dir.clone() },
            _ => Error::Io {
                op: "lock",
                path: dir.clone(),
                source: e,
            },
        })?;
        let recovered = recovery::recover(&*storage, &dir, &options)?;
        let written_end = recovered
            .segments
            .last()
            .map_or(SEGMENT_HEADER_LEN as u64, |s| s.end);
        let durable = recovered.next_lsn.prev();
        let state = State {
            next_lsn: recovered.next_lsn,
            checkpoint: recovered.checkpoint,
            segments: recovered.segments,
            buf: Vec::with_capacity(options.write_buffer_bytes),
            written_end,
            written_lsn: durable,
            closed: false,
        };
        let inner = Inner {
            dir,
            storage,
            options,
            log_id: recovered.log_id,
            report: recovered.report,
            poisoned: AtomicBool::new(false),
            cause: Mutex::new(None),
            maintenance: Mutex::new(()),
            state: Mutex::new(state),
            sync: Mutex::new(SyncState {
                durable,
                syncing: false,
            }),
            synced: Condvar::new(),
            durable: AtomicU64::new(durable.get()),
            epoch: AtomicU64::new(0),
            _lock: dir_lock,
        };
        Ok(Log {
            inner: Arc::new(inner),
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
        self.append_records(&[record], durability)
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
        self.append_records(records, durability)
    }

    fn append_records<B: AsRef<[u8]>>(
        &self,
        records: &[B],
        durability: Durability,
    ) -> Result<(Lsn, Lsn)> {
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let max = u64::from(self.inner.options.max_record_bytes);
        let mut total = 0u64;
        for record in records {
            let len = record.as_ref().len() as u64;
            if len > max {
                return Err(Error::RecordTooLarge { len, max });
            }
            total += FRAME_HEADER_LEN as u64 + len;
        }
        let (first, last) = {
            let mut st = self.state()?;
            let active = st.active();
            if !active.is_empty() && active.end + total > self.inner.options.segment_bytes {
                self.roll(&mut st)?;
            }
            let st = &mut *st;
            let first = st.next_lsn;
            let last = Lsn::new(first.get() + records.len() as u64 - 1);
            let seg = st.segments.last_mut().ok_or(Error::Poisoned)?;
            let seed = seg.file.seed;
            seg.note_batch(first, seg.end);
            let n = records.len();
            for (i, record) in records.iter().enumerate() {
                let start = if i == 0 { FLAG_BATCH_START } else { 0 };
                let end = if i + 1 == n { FLAG_BATCH_END } else { 0 };
                let lsn = Lsn::new(first.get() + i as u64);
                encode_frame(&mut st.buf, seed, lsn, record.as_ref(), start | end);
            }
            seg.end += total;
            seg.last_lsn = last;
            st.next_lsn = last.next();
            if st.buf.len() >= self.inner.options.write_buffer_bytes {
                self.flush(st)?;
            }
            (first, last)
        };
        if durability == Durability::Synced
            || self.inner.options.sync_policy == SyncPolicy::EveryCommit
        {
            self.sync_to(last)?;
        }
        Ok((first, last))
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
        let last = self.state()?.next_lsn.prev();
        self.sync_to(last)
    }

    /// Returns once every record up to `lsn` is durable, syncing if nobody else is.
    ///
    /// # Errors
    /// [`Error::InvalidLsn`] if `lsn` was not appended yet, and as [`Log::sync`].
    ///
    /// # Blocking
    /// As [`Log::sync`].
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        if lsn > self.state()?.next_lsn.prev() {
            return Err(Error::InvalidLsn {
                lsn,
                reason: "no record with this LSN was appended",
            });
        }
        self.sync_to(lsn)
    }

    /// The LSN up to which every record is on stable storage.
    pub fn durable_lsn(&self) -> Lsn {
        Lsn::new(self.inner.durable.load(Ordering::Acquire))
    }

    /// The LSN of the last record appended (`checkpoint_lsn - 1` if the log holds none).
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`].
    pub fn last_lsn(&self) -> Result<Lsn> {
        Ok(self.state()?.next_lsn.prev())
    }

    /// The LSN up to which every record was handed to the storage (written, maybe not synced).
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`].
    pub fn written_lsn(&self) -> Result<Lsn> {
        Ok(self.state()?.written_lsn)
    }

    /// Records below this LSN were dropped by a checkpoint; it is the first LSN a read may ask
    /// for (1 for a log never checkpointed).
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`].
    pub fn checkpoint_lsn(&self) -> Result<Lsn> {
        Ok(self.state()?.checkpoint)
    }

    /// The segments of the log, oldest first; the last one takes appends.
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`].
    pub fn segments(&self) -> Result<Vec<SegmentInfo>> {
        let st = self.state()?;
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
            let st = self.state()?;
            self.check_readable(&st, lsn)?;
            let i = st.segment_of(lsn);
            if lsn > st.segments[i].last_lsn {
                return Err(Error::RecordLost { lsn });
            }
            st.view(i, lsn)
        };
        match view.find(lsn)? {
            Some(frame) => Ok(Record::new(lsn, frame.payload)),
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
        let st = self.state()?;
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
        let durable = self.durable_lsn();
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
                views.push(st.view(i, if i == first { from } else { Lsn::ZERO }));
            }
        }
        Ok(Iter::new(views, from, to))
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
        let _maintenance = lock(&self.inner.maintenance)?;
        {
            let st = self.state()?;
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
            self.sync_to(lsn.prev())?;
        }
        self.write_checkpoint(lsn)?;
        let removed: Vec<Segment> = {
            let mut st = self.state()?;
            st.checkpoint = lsn;
            let n = st.segments.len();
            let k = st.segments[..n - 1]
                .iter()
                .take_while(|s| s.last_lsn < lsn)
                .count();
            st.segments.drain(..k).collect()
        };
        self.remove_segments(&removed)
    }

    fn remove_segments(&self, segments: &[Segment]) -> Result<()> {
        if segments.is_empty() {
            return Ok(());
        }
        let storage = &*self.inner.storage;
        for seg in segments {
            let path = &seg.file.path;
            match storage.remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::Io {
                        op: "remove",
                        path: path.clone(),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        storage
            .sync_dir(&self.inner.dir)
            .at("sync directory", &self.inner.dir)
    }

    fn write_checkpoint(&self, lsn: Lsn) -> Result<()> {
        let dir = &self.inner.dir;
        let storage = &*self.inner.storage;
        let path = dir.join(CHECKPOINT_FILE);
        let tmp = dir.join(format!("{CHECKPOINT_FILE}{TEMP_SUFFIX}"));
        let record = CheckpointFile {
            log_id: self.inner.log_id,
            lsn,
            written_ms: crate::now_ms(),
        };
        let file = storage.open(&tmp, OpenMode::Truncate).at("create", &tmp)?;
        file.write_all_at(&record.encode(), 0).at("write", &tmp)?;
        file.sync_data().at("sync", &tmp)?;
        storage.rename(&tmp, &path).at("rename into place", &tmp)?;
        storage.sync_dir(dir).at("sync directory", dir)
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
    /// Removes and truncates files and syncs.
    pub fn truncate_after(&self, lsn: Lsn) -> Result<()> {
        let _maintenance = lock(&self.inner.maintenance)?;
        let mut st = self.state()?;
        if lsn >= st.next_lsn.prev() {
            return Ok(());
        }
        if lsn.next() < st.checkpoint {
            return Err(Error::InvalidLsn {
                lsn,
                reason: "records at or below it were dropped by a checkpoint",
            });
        }
        self.flush(&mut st)?;
        let target = lsn.next();
        let k = st.segment_of(target);
        // Find the new last frame before changing anything.
        let keep = if st.segments[k].first_lsn() == target {
            None
        } else {
            match st.view(k, lsn).find(lsn)? {
                Some(frame) => Some(frame),
                None => return Err(Error::RecordLost { lsn }),
            }
        };
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        let later: Vec<Segment> = st.segments.drain(k + 1..).collect();
        let storage = &*self.inner.storage;
        for seg in later.iter().rev() {
            let path = &seg.file.path;
            if let Err(e) = storage.remove_file(path) {
                return Err(self.poison("remove", path, e));
            }
        }
        if !later.is_empty()
            && let Err(e) = storage.sync_dir(&self.inner.dir)
        {
            return Err(self.poison("sync directory", &self.inner.dir, e));
        }
        let seg = st.active_mut();
        let cut = match &keep {
            None => SEGMENT_HEADER_LEN as u64,
            Some(frame) => frame.offset + frame.header.frame_len(),
        };
        match &keep {
            Some(frame) if !frame.header.batch_end() => self.rewrite_tail(seg, frame)?,
            _ => {
                let path = &seg.file.path;
                if let Err(e) = seg.file.file.set_len(cut) {
                    return Err(self.poison("truncate", path, e));
                }
                if let Err(e) = seg.file.file.sync_data() {
                    return Err(self.poison("sync", path, e));
                }
            }
        }
        seg.end = cut;
        seg.last_lsn = lsn;
        seg.forget_from(cut);
        st.written_end = cut;
        st.written_lsn = lsn;
        st.next_lsn = target;
        let mut sync = lock(&self.inner.sync)?;
        sync.durable = lsn;
        self.inner.durable.store(lsn.get(), Ordering::Release);
        Ok(())
    }

    /// Rewrites the active segment so it ends with `last`, marked as the end of its batch: the
    /// bytes before it are copied to a temporary file, the frame is re-encoded, and the copy is
    /// renamed over the segment, so a crash leaves either the old file or the new one.
    fn rewrite_tail(&self, seg: &mut Segment, last: &crate::segment::FoundFrame) -> Result<()> {
        let storage = &*self.inner.storage;
        let old = Arc::clone(&seg.file);
        let tmp = old.path.with_extension(format!("seg{TEMP_SUFFIX}"));
        let result = (|| -> Result<Box<dyn crate::io::StorageFile>> {
            let out = storage.open(&tmp, OpenMode::Truncate).at("create", &tmp)?;
            let mut chunk = vec![0u8; 1 << 20];
            let mut at = 0u64;
            while at < last.offset {
                let n = usize::try_from(last.offset - at)
                    .unwrap_or(usize::MAX)
                    .min(chunk.len());
                old.file
                    .read_exact_at(&mut chunk[..n], at)
                    .at("read", &old.path)?;
                out.write_all_at(&chunk[..n], at).at("write", &tmp)?;
                at += n as u64;
            }
            let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + last.payload.len());
            let flags = last.header.flags | FLAG_BATCH_END;
            encode_frame(&mut frame, old.seed, last.header.lsn, &last.payload, flags);
            out.write_all_at(&frame, last.offset).at("write", &tmp)?;
            out.sync_data().at("sync", &tmp)?;
            storage
                .rename(&tmp, &old.path)
                .at("rename into place", &tmp)?;
            storage
                .sync_dir(&self.inner.dir)
                .at("sync directory", &self.inner.dir)?;
            Ok(out)
        })();
        match result {
            Ok(file) => {
                seg.file = Arc::new(SegmentFile {
                    path: old.path.clone(),
                    header: old.header,
                    seed: old.seed,
                    file,
                });
                Ok(())
            }
            Err(e) => {
                self.poison_with(&e);
                Err(e)
            }
        }
    }

    /// Discards every record. LSNs go on from where they were (the next append gets the LSN it
    /// would have got), so no LSN ever names two records; the checkpoint moves to that LSN.
    ///
    /// # Errors
    /// [`Error::Io`]: a failure before the checkpoint is written leaves the log as it was; a
    /// later one poisons it. [`Error::Poisoned`], [`Error::Closed`].
    ///
    /// # Blocking
    /// Writes the checkpoint, creates a segment, removes files, syncs.
    pub fn reset(&self) -> Result<()> {
        let _maintenance = lock(&self.inner.maintenance)?;
        let mut st = self.state()?;
        self.flush(&mut st)?;
        let next = st.next_lsn;
        self.write_checkpoint(next)?;
        st.checkpoint = next;
        if st.active().first_lsn() != next {
            let created = SegmentFile::create(
                &*self.inner.storage,
                &self.inner.dir,
                self.inner.log_id,
                next,
            );
            match created {
                Ok(file) => st.segments.push(Segment::new(file)),
                Err(e) => {
                    self.poison_with(&e);
                    return Err(e);
                }
            }
            st.written_end = SEGMENT_HEADER_LEN as u64;
        }
        let n = st.segments.len();
        let old: Vec<Segment> = st.segments.drain(..n - 1).collect();
        drop(st);
        self.advance_durable(next.prev())?;
        self.remove_segments(&old)
            .inspect_err(|e| self.poison_with(e))
    }

    /// Syncs and closes the log, reporting what a drop would swallow.
    ///
    /// # Errors
    /// As [`Log::sync`].
    pub fn close(self) -> Result<()> {
        let result = self.sync();
        if let Ok(mut st) = lock(&self.inner.state) {
            st.closed = true;
        }
        result
    }

    /// Locks the append state, failing if the log is poisoned or closed.
    fn state(&self) -> Result<MutexGuard<'_, State>> {
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let st = lock(&self.inner.state)?;
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        if st.closed {
            return Err(Error::Closed);
        }
        Ok(st)
    }

    /// Writes the buffered frames to the active segment.
    fn flush(&self, st: &mut State) -> Result<()> {
        if st.buf.is_empty() {
            return Ok(());
        }
        let seg = st.active();
        if let Err(e) = seg.file.file.write_all_at(&st.buf, st.written_end) {
            let path = seg.file.path.clone();
            return Err(self.poison("write", &path, e));
        }
        st.written_end += st.buf.len() as u64;
        st.written_lsn = st.next_lsn.prev();
        st.buf.clear();
        let cap = self.inner.options.write_buffer_bytes;
        if st.buf.capacity() > cap.max(1 << 20) * 4 {
            st.buf.shrink_to(cap);
        }
        Ok(())
    }

    /// Seals the active segment (written and synced) and starts a new one at the next LSN.
    fn roll(&self, st: &mut State) -> Result<()> {
        self.flush(st)?;
        let sealed = st.active();
        let sealed_last = sealed.last_lsn;
        if let Err(e) = sealed.file.file.sync_data() {
            let path = sealed.file.path.clone();
            return Err(self.poison("sync", &path, e));
        }
        let inner = &*self.inner;
        match SegmentFile::create(&*inner.storage, &inner.dir, inner.log_id, st.next_lsn) {
            Ok(file) => st.segments.push(Segment::new(file)),
            Err(e) => {
                self.poison_with(&e);
                return Err(e);
            }
        }
        st.written_end = SEGMENT_HEADER_LEN as u64;
        self.advance_durable(sealed_last)
    }

    fn advance_durable(&self, lsn: Lsn) -> Result<()> {
        let mut sync = lock(&self.inner.sync)?;
        if lsn > sync.durable {
            sync.durable = lsn;
            self.inner.durable.store(lsn.get(), Ordering::Release);
            self.inner.synced.notify_all();
        }
        Ok(())
    }

    /// Returns once everything up to `target` is durable. The first caller that finds nobody
    /// syncing leads: it writes out the buffer and fsyncs the active segment, covering every
    /// record written so far; the others wait for it and return if it covered them.
    fn sync_to(&self, target: Lsn) -> Result<()> {
        if self.durable_lsn() >= target {
            return Ok(());
        }
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let mut sync = lock(&self.inner.sync)?;
        loop {
            if sync.durable >= target {
                return Ok(());
            }
            if self.inner.poisoned.load(Ordering::Acquire) {
                // This caller was waiting when the failure happened: it gets the real error.
                return Err(self.cause_error());
            }
            if sync.syncing {
                sync = self.inner.synced.wait(sync).map_err(|_| Error::Poisoned)?;
                continue;
            }
            sync.syncing = true;
            drop(sync);
            let result = self.write_and_sync();
            sync = lock(&self.inner.sync)?;
            sync.syncing = false;
            match result {
                Ok((lsn, epoch)) => {
                    let current = self.inner.epoch.load(Ordering::Acquire);
                    if lsn > sync.durable && current == epoch {
                        sync.durable = lsn;
                        self.inner.durable.store(lsn.get(), Ordering::Release);
                    }
                    self.inner.synced.notify_all();
                }
                Err(e) => {
                    self.inner.synced.notify_all();
                    return Err(e);
                }
            }
        }
    }

    /// The leader's step: write out the buffer, then fsync the active segment outside the lock.
    /// Returns the LSN it made durable and the rollback epoch it saw.
    fn write_and_sync(&self) -> Result<(Lsn, u64)> {
        let (file, written, epoch) = {
            let mut st = self.state()?;
            self.flush(&mut st)?;
            let epoch = self.inner.epoch.load(Ordering::Acquire);
            (Arc::clone(&st.active().file), st.written_lsn, epoch)
        };
        if let Err(e) = file.file.sync_data() {
            return Err(self.poison("sync", &file.path, e));
        }
        Ok((written, epoch))
    }

    fn cause_error(&self) -> Error {
        match lock(&self.inner.cause) {
            Ok(cause) => cause.as_ref().map_or(Error::Poisoned, Cause::to_error),
            Err(_) => Error::Poisoned,
        }
    }

    /// Poisons the log with a failed storage operation and returns the error for the caller.
    fn poison(&self, op: &'static str, path: &Path, err: io::Error) -> Error {
        self.record_cause(Cause {
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
        let cause = match err {
            Error::Io { op, path, source } => Cause {
                op,
                path: path.clone(),
                kind: source.kind(),
                message: source.to_string(),
            },
            other => Cause {
                op: "update",
                path: self.inner.dir.clone(),
                kind: io::ErrorKind::Other,
                message: other.to_string(),
            },
        };
        self.record_cause(cause);
    }

    fn record_cause(&self, cause: Cause) {
        if let Ok(mut slot) = self.inner.cause.lock() {
            slot.get_or_insert(cause);
        }
        self.inner.poisoned.store(true, Ordering::Release);
        // Wake every waiter so it sees the poison.
        if let Ok(_sync) = self.inner.sync.lock() {
            self.inner.synced.notify_all();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // Best effort: a caller who needs the outcome uses `close`.
        let closed = lock(&self.inner.state).map_or(true, |st| st.closed);
        if !closed && !self.inner.poisoned.load(Ordering::Acquire) {
            let _ = self.sync();
        }
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
