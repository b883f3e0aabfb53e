//! Appending: LSNs and file space assigned under the state lock, frames encoded into the shared
//! write buffer (or, for large batches, by the appender itself), and regions written outside
//! every lock.
//!
//! Invariants: LSNs are dense and assigned in the order their frames sit in the segment; every
//! LSN handed out belongs to exactly one region that some thread writes and then reports to
//! [`GroupCommit::complete`](crate::commit::GroupCommit::complete) (or the log is poisoned); a
//! batch never spans two segments.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::{Inner, Log, PanicGuard};
use crate::commit::Deadline;
use crate::error::{Error, Result};
use crate::format::{
    FLAG_BATCH_END, FLAG_BATCH_START, FrameMeta, KIND_RECORD, Layout, MAX_FRAME_HEADER_LEN,
    encode_frame, frame_header,
};
use crate::io::StorageFile;
use crate::options::{Durability, SyncPolicy};
use crate::segment::SegmentFile;
use crate::types::Lsn;

/// Batches of at least this many bytes skip the shared buffer: the appender encodes and writes
/// them itself, outside the lock.
const DIRECT_WRITE_BYTES: u64 = 64 << 10;

/// Spare write buffers, so handing the buffer to a writer does not allocate (a buffer of a
/// few hundred KiB is an `mmap` for most allocators).
#[derive(Debug)]
pub(crate) struct BufferPool {
    spare: Mutex<Vec<Vec<u8>>>,
    capacity: usize,
}

impl BufferPool {
    const KEEP: usize = 4;

    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            spare: Mutex::new(Vec::new()),
            capacity,
        }
    }

    pub(crate) fn get(&self) -> Vec<u8> {
        let spare = self.spare.lock().ok().and_then(|mut s| s.pop());
        spare.unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    pub(crate) fn put(&self, mut buf: Vec<u8>) {
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
pub(crate) struct Region {
    pub(crate) file: Arc<SegmentFile>,
    pub(crate) offset: u64,
    pub(crate) bytes: Vec<u8>,
    pub(crate) first: Lsn,
    pub(crate) last: Lsn,
}

/// A batch to encode and write outside the lock.
struct Direct {
    file: Arc<SegmentFile>,
    offset: u64,
    batch: BatchMeta,
}

impl Log {
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
            .map(|a| a.first)
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
        self.inner
            .append_records(records, durability)
            .map(|a| (a.first, a.last))
    }

    /// Appends records as one batch, as [`Log::append_batch`] with [`Durability::Buffered`],
    /// and returns an [`Appended`] to wait on later with [`Log::wait_appended`]: for a caller
    /// that must not hold its own lock across the fsync (the sharded log takes the epoch of a
    /// record under its shard's gate, and waits outside it).
    ///
    /// # Errors
    /// As [`Log::append_batch`].
    pub fn append_batch_deferred<B: AsRef<[u8]>>(&self, records: &[B]) -> Result<Appended> {
        self.inner.append_records(records, Durability::Buffered)
    }

    /// Returns once the batch `appended` is durable. Unlike [`Log::wait_durable`] on its LSN,
    /// the wait knows which records it waits for: if a rollback removes them, it returns
    /// [`Error::RolledBack`], even once later records have taken the same LSNs.
    ///
    /// # Errors
    /// [`Error::RolledBack`], and the error of a failed sync, [`Error::Poisoned`],
    /// [`Error::Closed`].
    ///
    /// # Blocking
    /// Waits for an fsync, as a `Synced` append does.
    pub fn wait_appended(&self, appended: Appended) -> Result<()> {
        self.inner.sync_to(appended.last, appended.generation)
    }
}

/// A batch appended without waiting for durability ([`Log::append_batch_deferred`]): its LSNs,
/// and the rollback generation it was appended in, which [`Log::wait_appended`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The LSN of the batch's first record.
    pub first: Lsn,
    /// The LSN of its last record.
    pub last: Lsn,
    generation: u64,
}

impl Inner {
    pub(crate) fn append_records<B: AsRef<[u8]>>(
        &self,
        records: &[B],
        durability: Durability,
    ) -> Result<Appended> {
        if self.options.read_only {
            return Err(Error::ReadOnly);
        }
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let max = u64::from(self.options.max_record_bytes);
        let mut payload_bytes = 0u64;
        for record in records {
            let len = record.as_ref().len() as u64;
            if len > max {
                return Err(Error::RecordTooLarge { len, max });
            }
            payload_bytes += len;
        }
        let n = records.len() as u64;
        // The frames' length in a segment of `layout` (the active one may be of an earlier
        // version; a new one is of the current).
        let frames_len = |layout: Layout| payload_bytes + n * layout.frame_header_len() as u64;
        let mut total = frames_len(Layout::CURRENT).max(frames_len(Layout::V1));
        let capacity = self.options.write_buffer_bytes;
        let mut sealed_region = None;
        let mut roll = None;
        let mut full = None;
        let mut direct = None;
        // From here on a panic (in a user's `Storage`, say) would leave LSNs assigned and never
        // written: it poisons the log instead.
        let _guard = PanicGuard(self);
        let (first, last, generation) = {
            let mut st = self.state()?;
            if let Some(capacity) = self.options.capacity_bytes {
                st = self.wait_for_room(st, capacity, total)?;
            }
            // The batch's last LSN, and the next one after it, must exist (a log recovered
            // from segments named near the end of the LSN space has few left).
            let fits = st
                .next_lsn
                .get()
                .checked_add(records.len() as u64 - 1)
                .is_some_and(|last| last < u64::MAX);
            if !fits {
                return Err(Error::InvalidLsn {
                    lsn: st.next_lsn,
                    reason: "the log has no LSNs left for this batch",
                });
            }
            let active = st.active();
            total = frames_len(active.file.layout());
            if self.rolls(active, total) {
                self.seal_active(&mut st);
                sealed_region = st.take_buffer(&self.commit, &self.buffers);
                roll = Some(self.plan_roll(&mut st));
                total = frames_len(st.active().file.layout());
            }
            let st = &mut *st;
            st.counts.appends += 1;
            st.counts.records += n;
            st.counts.batches += u64::from(n > 1);
            st.counts.bytes += payload_bytes;
            let first = st.next_lsn;
            let last = Lsn::new(first.get() + records.len() as u64 - 1);
            st.next_lsn = last.next();
            let durable_hint = self.commit.durable();
            let timestamp_ms = st.stamp();
            let seg = st.segments.last_mut().ok_or(Error::Poisoned)?;
            if seg.is_empty() {
                seg.min_ms = timestamp_ms;
            }
            seg.max_ms = timestamp_ms;
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
                    batch: BatchMeta {
                        first,
                        durable_hint,
                        timestamp_ms,
                    },
                });
            } else {
                if st.buf.is_empty() {
                    st.buf_offset = offset;
                    st.buf_first = first;
                }
                let (layout, seed) = (seg.file.layout(), seg.file.seed);
                let batch = BatchMeta {
                    first,
                    durable_hint,
                    timestamp_ms,
                };
                encode_batch(&mut st.buf, layout, seed, batch, records);
                if st.buf.len() >= capacity {
                    full = st.take_buffer(&self.commit, &self.buffers);
                }
            }
            (first, last, self.commit.generation())
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
        self.stats.appended(records.len() as u64, payload_bytes);
        self.note_appended(total);
        if durability == Durability::Synced || self.options.sync_policy == SyncPolicy::EveryCommit {
            self.sync_to(last, generation)?;
        }
        Ok(Appended {
            first,
            last,
            generation,
        })
    }

    /// Counts appended bytes for [`SyncPolicy::Bytes`] and wakes the syncer when they are due.
    fn note_appended(&self, bytes: u64) {
        if let SyncPolicy::Bytes(limit) = self.options.sync_policy {
            let before = self.unsynced_bytes.fetch_add(bytes, Ordering::AcqRel);
            if before < limit && before + bytes >= limit {
                self.background.wake();
            }
        }
    }

    /// Writes a region once its segment file exists, and reports it written.
    pub(crate) fn write_region(&self, region: Region) -> Result<()> {
        let file = self.ready(&region.file)?;
        if let Err(e) = file.write_all_at(&region.bytes, region.offset) {
            return Err(self.poison("write", &region.file.path, e));
        }
        self.buffers.put(region.bytes);
        // A region holding only a marker carries no LSN.
        if region.first > region.last {
            return Ok(());
        }
        self.commit.complete(region.first, region.last)
    }

    /// The segment's open file, waiting for a roll in progress to create it.
    pub(crate) fn ready<'a>(&self, segment: &'a SegmentFile) -> Result<&'a dyn StorageFile> {
        if segment.handle().is_none() {
            self.commit
                .wait_until(Deadline::NEVER, |_| segment.handle().is_some())?;
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
        // A spare write buffer (a fresh one of this size is an `mmap` and page faults each
        // time), sized for the whole batch at once, so gathering never reallocates.
        let frames_len = records
            .iter()
            .map(|r| r.as_ref().len() + MAX_FRAME_HEADER_LEN)
            .filter(|&len| len < IN_PLACE_BYTES + MAX_FRAME_HEADER_LEN)
            .sum();
        let mut gathered = self.buffers.get();
        gathered.reserve(frames_len);
        let mut gathered_at = d.offset;
        let mut at = d.offset;
        let n = records.len();
        let layout = d.file.layout();
        let header_len = layout.frame_header_len();
        for (i, record) in records.iter().enumerate() {
            let payload = record.as_ref();
            let meta = d.batch.frame(i, n);
            if payload.len() >= IN_PLACE_BYTES {
                if !gathered.is_empty() {
                    write(&gathered, gathered_at)?;
                    gathered.clear();
                }
                let header = frame_header(layout, d.file.seed, meta, payload);
                write(&header, at)?;
                write(payload, at + header.len() as u64)?;
            } else {
                if gathered.is_empty() {
                    gathered_at = at;
                }
                encode_frame(&mut gathered, layout, d.file.seed, meta, payload);
            }
            at += (header_len + payload.len()) as u64;
        }
        if !gathered.is_empty() {
            write(&gathered, gathered_at)?;
        }
        self.buffers.put(gathered);
        self.commit.complete(d.batch.first, last)
    }
}

/// What every frame of a batch carries.
#[derive(Debug, Clone, Copy)]
struct BatchMeta {
    first: Lsn,
    durable_hint: Lsn,
    timestamp_ms: u64,
}

impl BatchMeta {
    /// What the frame of record `i` of the batch's `n` carries.
    fn frame(&self, i: usize, n: usize) -> FrameMeta {
        FrameMeta {
            kind: KIND_RECORD,
            lsn: Lsn::new(self.first.get() + i as u64),
            durable_hint: self.durable_hint,
            flags: batch_flags(i, n),
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// Encodes a batch's frames into `buf`, the first with the batch-start flag and the last with
/// the batch-end flag.
fn encode_batch<B: AsRef<[u8]>>(
    buf: &mut Vec<u8>,
    layout: Layout,
    seed: u32,
    batch: BatchMeta,
    records: &[B],
) {
    let n = records.len();
    for (i, record) in records.iter().enumerate() {
        encode_frame(buf, layout, seed, batch.frame(i, n), record.as_ref());
    }
}

/// The batch flags of record `i` of a batch of `n`.
fn batch_flags(i: usize, n: usize) -> u8 {
    let start = if i == 0 { FLAG_BATCH_START } else { 0 };
    let end = if i + 1 == n { FLAG_BATCH_END } else { 0 };
    start | end
}
