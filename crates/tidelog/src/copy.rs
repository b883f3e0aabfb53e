//! Copies of segments out of a log ([`Log::copy_segment`]) and a new log built from such
//! copies ([`Importer`]): the seam an archive uploads through and restores through.
//!
//! Invariants: a copy holds only durable, checked bytes, cut at a batch end, and is a segment
//! file of its own (header, frames, and the seal if the segment has one); it is *complete* only
//! once the segment is synced whole and the next segment exists, so its bytes never change
//! after (short of a rollback, which a copy that raced one reports). An import writes nothing it
//! has not checked frame by frame, accepts only copies of one log whose LSNs follow each other,
//! and leaves a directory that opens as an ordinary log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::format::{CheckpointFile, FrameCursor, SegmentHeader, Step, TEMP_SUFFIX};
use crate::io::{DirLock, OpenMode, StdStorage, Storage, WithModes};
use crate::log::Log;
use crate::types::Lsn;
use crate::{CorruptionKind, Options};

/// The bytes of one segment of a log, checked frame by frame, from [`Log::copy_segment`]: a
/// file that [`Importer::add`] turns back into a segment of a new log.
#[derive(Clone, PartialEq, Eq)]
pub struct SegmentCopy {
    log_id: u128,
    first_lsn: Lsn,
    last_lsn: Lsn,
    first_ms: Option<u64>,
    last_ms: Option<u64>,
    sealed: bool,
    complete: bool,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for SegmentCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentCopy")
            .field("first_lsn", &self.first_lsn)
            .field("last_lsn", &self.last_lsn)
            .field("sealed", &self.sealed)
            .field("complete", &self.complete)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl SegmentCopy {
    /// The id of the log the segment belongs to.
    pub fn log_id(&self) -> u128 {
        self.log_id
    }

    /// The LSN of the segment's first record (of the first it would take, if it holds none).
    pub fn first_lsn(&self) -> Lsn {
        self.first_lsn
    }

    /// The LSN of the last record the copy holds; `first_lsn - 1` if it holds none.
    pub fn last_lsn(&self) -> Lsn {
        self.last_lsn
    }

    /// Whether the copy holds no record.
    pub fn is_empty(&self) -> bool {
        self.last_lsn < self.first_lsn
    }

    /// The time of the copy's first batch, in milliseconds since the Unix epoch; `None` if it
    /// holds no record or its format (version 1) keeps no times.
    pub fn first_ms(&self) -> Option<u64> {
        self.first_ms
    }

    /// The time of the copy's last batch (as [`first_ms`](Self::first_ms)).
    pub fn last_ms(&self) -> Option<u64> {
        self.last_ms
    }

    /// Whether the copy ends with the segment's seal.
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// Whether the segment will never change: it was synced whole and the log moved on to the
    /// next segment (only a rollback into it changes it again). A copy that is not complete is
    /// the durable part of the segment that takes appends, or of one being sealed right now.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The bytes: a segment file of its own, its header and its frames up to the copy's end.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl Log {
    /// Copies the segment whose first LSN is `first_lsn` (see [`Log::segments`]): its header
    /// and every frame up to the last durable batch end, each frame checked on the way. A
    /// segment synced whole and followed by the next is copied whole, seal included
    /// ([`SegmentCopy::is_complete`]); the segment taking appends, only up to the durable LSN.
    ///
    /// This is what an archiver uploads; [`Importer`] builds a log from such copies.
    ///
    /// # Errors
    /// [`Error::InvalidLsn`] if no segment of the log starts at `first_lsn` (a checkpoint may
    /// have dropped it: hold it with [`Log::set_retention_floor`]), [`Error::Corrupt`] naming
    /// the file and offset of a frame that does not check out, [`Error::RolledBack`] if a
    /// rollback removed records of the copy while it was read, [`Error::Io`],
    /// [`Error::Poisoned`], [`Error::Closed`].
    ///
    /// # Blocking
    /// Reads the segment (at most its size) outside every lock.
    pub fn copy_segment(&self, first_lsn: Lsn) -> Result<SegmentCopy> {
        let inner = &*self.inner;
        let (file, end, last, complete, generation) = {
            let st = inner.state()?;
            let i = st
                .segments
                .binary_search_by_key(&first_lsn, |s| s.first_lsn())
                .map_err(|_| Error::InvalidLsn {
                    lsn: first_lsn,
                    reason: "no segment of the log starts at this LSN",
                })?;
            let seg = &st.segments[i];
            // The next segment's file is created only after this one's sync: from then on its
            // bytes are durable and final.
            let complete = st
                .segments
                .get(i + 1)
                .is_some_and(|next| next.file.handle().is_some());
            let last = if complete {
                seg.last_lsn
            } else {
                seg.last_lsn.min(inner.commit.durable())
            };
            (
                Arc::clone(&seg.file),
                seg.end,
                last,
                complete,
                inner.commit.generation(),
            )
        };
        let path = &file.path;
        let empty = |bytes| SegmentCopy {
            log_id: file.header.log_id,
            first_lsn,
            last_lsn: first_lsn.prev(),
            first_ms: None,
            last_ms: None,
            sealed: false,
            complete,
            bytes,
        };
        // A segment a roll planned but has not created yet holds nothing durable.
        let Some(io) = file.handle() else {
            return Ok(empty(file.header.encode()));
        };
        let mut bytes = vec![0; usize::try_from(file.data_start()).unwrap_or(0)];
        io.read_full_at(&mut bytes, 0).at("read", path)?;
        let mut copy = empty(bytes);
        let mut cursor = FrameCursor::new(file.layout(), file.seed, end, file.data_start());
        // Bytes up to here end with a batch (or hold none): where the copy may end.
        let mut cut = copy.bytes.len();
        while copy.last_lsn < last || complete {
            let header = match cursor.step(io).at("read", path)? {
                Step::Frame { header, .. } => header,
                Step::End if complete => break,
                Step::End => {
                    return Err(corrupt(path, cursor.position(), truncated(&cursor, end)));
                }
                Step::Zeros { offset } => {
                    return Err(corrupt(path, offset, CorruptionKind::ZeroedRegion));
                }
                Step::Damage { offset, kind } => return Err(corrupt(path, offset, kind)),
            };
            if header.is_record() {
                let expected = copy.last_lsn.next();
                if header.lsn != expected {
                    let offset = cursor.position() - header.frame_len();
                    let found = header.lsn;
                    return Err(corrupt(
                        path,
                        offset,
                        CorruptionKind::LsnMismatch { expected, found },
                    ));
                }
                copy.last_lsn = header.lsn;
                copy.first_ms = copy.first_ms.or(header.timestamp_ms);
                copy.last_ms = header.timestamp_ms;
            }
            copy.bytes.extend_from_slice(cursor.frame());
            if header.is_seal() {
                copy.sealed = true;
            }
            if !header.is_record() || header.batch_end() {
                cut = copy.bytes.len();
            }
        }
        copy.bytes.truncate(cut);
        if let Some(to) = inner.commit.rolled_back_since(generation)
            && to < copy.last_lsn
        {
            return Err(Error::RolledBack { lsn: to.next(), to });
        }
        Ok(copy)
    }
}

fn corrupt(path: &Path, offset: u64, kind: CorruptionKind) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        offset,
        kind,
    }
}

fn truncated(cursor: &FrameCursor, end: u64) -> CorruptionKind {
    CorruptionKind::TruncatedFrame {
        needed: 1,
        available: end.saturating_sub(cursor.position()),
    }
}

/// Builds a new log directory from [`SegmentCopy`] bytes, in LSN order; what a restore from an
/// archive writes through. Each copy is checked whole (header, every frame's checksum, LSNs
/// one after another, batches whole, nothing after a seal) before it takes its place, and
/// [`finish`](Importer::finish) writes the checkpoint that makes the directory a log, which
/// then opens with [`Log::open`] like any other and goes on at the LSN after the last copy.
///
/// The directory is locked against opens while the import runs. Files are created with the
/// default modes ([`DEFAULT_DIR_MODE`](crate::DEFAULT_DIR_MODE),
/// [`DEFAULT_FILE_MODE`](crate::DEFAULT_FILE_MODE)), or those of
/// [`Importer::create_with_options`].
#[derive(Debug)]
pub struct Importer {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    _lock: DirLock,
    log_id: Option<u128>,
    first: Option<Lsn>,
    next: Option<Lsn>,
    segments: usize,
}

impl Importer {
    /// Starts an import into `dir` on the real file system. `dir` must not exist or be empty;
    /// it is created (and its parents).
    ///
    /// # Errors
    /// [`Error::Io`] if `dir` cannot be created or holds files already (`AlreadyExists`), or
    /// [`Error::Locked`].
    pub fn create(dir: impl AsRef<Path>) -> Result<Importer> {
        Importer::create_with(Arc::new(StdStorage::new()), dir)
    }

    /// As [`Importer::create`], through `storage`.
    ///
    /// # Errors
    /// As [`Importer::create`].
    pub fn create_with(storage: Arc<dyn Storage>, dir: impl AsRef<Path>) -> Result<Importer> {
        Importer::create_with_options(storage, dir, &Options::default())
    }

    /// As [`Importer::create_with`], creating the directory with `options.dir_mode` and every
    /// file with `options.file_mode` (the modes the log itself would use; the other options
    /// are not the importer's concern: open the finished log with them).
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] for options [`Options::validate`] refuses, and as
    /// [`Importer::create`].
    pub fn create_with_options(
        storage: Arc<dyn Storage>,
        dir: impl AsRef<Path>,
        options: &Options,
    ) -> Result<Importer> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let storage: Arc<dyn Storage> =
            Arc::new(WithModes::new(storage, options.dir_mode, options.file_mode));
        storage
            .create_dir_all_with_mode(&dir, options.dir_mode)
            .at("create directory", &dir)?;
        let lock = storage.lock_dir(&dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                Error::Locked { path: dir.clone() }
            } else {
                Error::Io {
                    op: "lock",
                    path: dir.clone(),
                    source: e,
                }
            }
        })?;
        let names = storage.list(&dir).at("list", &dir)?;
        if names.iter().any(|n| n != crate::io::LOCK_FILE) {
            return Err(Error::Io {
                op: "import into",
                path: dir,
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the directory is not empty",
                ),
            });
        }
        Ok(Importer {
            storage,
            dir,
            _lock: lock,
            log_id: None,
            first: None,
            next: None,
            segments: 0,
        })
    }

    /// The LSN the next copy must start at (`None` before the first).
    pub fn next_lsn(&self) -> Option<Lsn> {
        self.next
    }

    /// Checks `bytes` (the bytes of a [`SegmentCopy`], as an archive kept them) and writes them
    /// as the next segment of the new log, synced. Returns the LSN of its last record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the segment file being written and the offset of what does
    /// not check out (a bad header, a damaged frame, a copy of another log:
    /// [`CorruptionKind::ForeignLog`], records out of order: [`CorruptionKind::LsnMismatch`], a
    /// batch cut short: [`CorruptionKind::IncompleteBatch`]); [`Error::MissingRecords`] if the
    /// copy starts past the LSN that should come next; [`Error::Io`]. A copy refused leaves
    /// nothing behind.
    pub fn add(&mut self, bytes: &[u8]) -> Result<Lsn> {
        let header = SegmentHeader::decode(bytes).map_err(|kind| corrupt(&self.dir, 0, kind))?;
        let path = self
            .dir
            .join(crate::format::segment_file_name(header.first_lsn));
        if let Some(expected) = self.log_id
            && header.log_id != expected
        {
            let found = header.log_id;
            return Err(corrupt(
                &path,
                0,
                CorruptionKind::ForeignLog { expected, found },
            ));
        }
        if let Some(next) = self.next {
            if header.first_lsn > next {
                return Err(Error::MissingRecords {
                    first: next,
                    last: header.first_lsn.prev(),
                    path,
                });
            }
            if header.first_lsn < next {
                let found = header.first_lsn;
                return Err(corrupt(
                    &path,
                    0,
                    CorruptionKind::LsnMismatch {
                        expected: next,
                        found,
                    },
                ));
            }
        }
        let tmp = self.dir.join(format!(
            "{}{TEMP_SUFFIX}",
            crate::format::segment_file_name(header.first_lsn)
        ));
        let written = self.write_checked(&tmp, &path, &header, bytes);
        let last = match written {
            Ok(last) => last,
            Err(e) => {
                let _ = self.storage.remove_file(&tmp);
                return Err(e);
            }
        };
        self.storage
            .rename(&tmp, &path)
            .at("rename into place", &tmp)?;
        self.log_id = Some(header.log_id);
        self.first = self.first.or(Some(header.first_lsn));
        self.next = Some(last.next());
        self.segments += 1;
        Ok(last)
    }

    /// Writes `bytes` to `tmp`, then reads them back frame by frame as the segment at `path`.
    fn write_checked(
        &self,
        tmp: &Path,
        path: &Path,
        header: &SegmentHeader,
        bytes: &[u8],
    ) -> Result<Lsn> {
        let file = self
            .storage
            .open(tmp, OpenMode::Truncate)
            .at("create", tmp)?;
        file.write_all_at(bytes, 0).at("write", tmp)?;
        let len = bytes.len() as u64;
        let mut cursor = FrameCursor::new(header.layout, header.seed(), len, header.len());
        let mut last = header.first_lsn.prev();
        let mut open_batch: Option<Lsn> = None;
        let mut sealed = false;
        loop {
            let at = cursor.position();
            let frame = match cursor.step(&*file).at("read", tmp)? {
                Step::Frame { header, .. } => header,
                Step::End if at == len => break,
                Step::End | Step::Zeros { .. } => {
                    return Err(corrupt(path, at, CorruptionKind::ZeroedRegion));
                }
                Step::Damage { offset, kind } => return Err(corrupt(path, offset, kind)),
            };
            // A marker carries the LSN the next record takes.
            if frame.lsn != last.next() {
                let (expected, found) = (last.next(), frame.lsn);
                return Err(corrupt(
                    path,
                    at,
                    CorruptionKind::LsnMismatch { expected, found },
                ));
            }
            // Nothing follows a seal, and a marker stands between batches.
            if sealed || (!frame.is_record() && open_batch.is_some()) {
                return Err(corrupt(path, at, CorruptionKind::BatchFraming));
            }
            sealed = frame.is_seal();
            if !frame.is_record() {
                continue;
            }
            if frame.batch_start() != open_batch.is_none() {
                return Err(corrupt(path, at, CorruptionKind::BatchFraming));
            }
            last = frame.lsn;
            open_batch = if frame.batch_end() {
                None
            } else {
                open_batch.or(Some(frame.lsn))
            };
        }
        if let Some(first) = open_batch {
            return Err(corrupt(
                path,
                len,
                CorruptionKind::IncompleteBatch { first },
            ));
        }
        file.sync_data().at("sync", tmp)?;
        Ok(last)
    }

    /// Writes the checkpoint (at the first copy's first LSN) that makes the directory a log,
    /// and makes every file durable. Returns the directory.
    ///
    /// # Errors
    /// [`Error::NotFound`] if no copy was added (a log takes its identity from its segments),
    /// [`Error::Io`].
    pub fn finish(self) -> Result<PathBuf> {
        let (Some(log_id), Some(first)) = (self.log_id, self.first) else {
            return Err(Error::NotFound { path: self.dir });
        };
        let record = CheckpointFile::at(log_id, first);
        crate::recovery::write_checkpoint(&*self.storage, &self.dir, &record)?;
        Ok(self.dir)
    }
}
