//! Segments: the files that hold contiguous LSN ranges, and what the log keeps in memory about
//! each (its last LSN, its valid length, a sparse index from LSN to offset).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, IoContext, Result};
use crate::format::{
    FrameCursor, FrameHeader, Layout, MAX_FRAME_HEADER_LEN, MAX_SEGMENT_HEADER_LEN, SegmentHeader,
    Step, TEMP_SUFFIX, segment_file_name,
};
use crate::io::{OpenMode, Storage, StorageFile};
use crate::types::Lsn;

/// One index point per this many bytes of a segment: a random read scans at most about this
/// much (plus one batch).
pub(crate) const INDEX_INTERVAL_BYTES: u64 = 16 << 10;

/// A segment file. Shared (behind an `Arc`) between the log and its readers, so a reader keeps
/// reading a file that a checkpoint has since removed from the directory.
///
/// A new segment is *planned* under the log's lock (its header, salt and name are chosen there,
/// so appends can encode frames for it at once) and its file is created afterwards, outside the
/// lock; writers of its first frames wait until the file exists.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    pub(crate) path: PathBuf,
    pub(crate) header: SegmentHeader,
    pub(crate) seed: u32,
    handle: OnceLock<Box<dyn StorageFile>>,
    /// Recovery skipped damage in it (`SkipCorrupt`): once freed, it is removed, never
    /// recycled (the frames a recycled file keeps behind its new data must be one clean life).
    damaged: AtomicBool,
}

impl SegmentFile {
    /// An existing, open segment file.
    pub(crate) fn opened(path: PathBuf, header: SegmentHeader, file: Box<dyn StorageFile>) -> Self {
        let handle = OnceLock::new();
        let _ = handle.set(file);
        Self {
            path,
            seed: header.seed(),
            header,
            handle,
            damaged: AtomicBool::new(false),
        }
    }

    /// A segment starting at `first_lsn`, whose file is not created yet.
    pub(crate) fn planned(dir: &Path, log_id: u128, first_lsn: Lsn) -> Self {
        let header = SegmentHeader::new(log_id, first_lsn, crate::random_u64(), crate::now_ms());
        let path = dir.join(segment_file_name(first_lsn));
        Self {
            path,
            seed: header.seed(),
            header,
            handle: OnceLock::new(),
            damaged: AtomicBool::new(false),
        }
    }

    pub(crate) fn first_lsn(&self) -> Lsn {
        self.header.first_lsn
    }

    /// Notes that recovery skipped damage in the file: it is never recycled.
    pub(crate) fn mark_damaged(&self) {
        self.damaged.store(true, Ordering::Relaxed);
    }

    /// Whether the file may be recycled once freed.
    pub(crate) fn recyclable(&self) -> bool {
        !self.damaged.load(Ordering::Relaxed)
    }

    /// The layout of the file's header and frames.
    pub(crate) fn layout(&self) -> Layout {
        self.header.layout
    }

    /// Where the first frame starts: the length of the header.
    pub(crate) fn data_start(&self) -> u64 {
        self.header.len()
    }

    /// The open file, once it exists.
    pub(crate) fn handle(&self) -> Option<&dyn StorageFile> {
        self.handle.get().map(|b| &**b)
    }

    /// The open file; an error if it was never created (a bug, reported rather than a panic).
    pub(crate) fn io(&self) -> Result<&dyn StorageFile> {
        self.handle().ok_or_else(|| Error::Io {
            op: "use",
            path: self.path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "segment file not created yet",
            ),
        })
    }

    /// Creates the planned file crash-safely: the header goes to a temporary file (allocated to
    /// `allocate` bytes of zeros first, if not 0), which is synced, renamed into place, and made
    /// durable with a directory sync.
    ///
    /// With `recycled`, a free file (a former segment, trimmed to its frames) is reused instead:
    /// the new header, which records the old frames' checksum seed and where they end, is
    /// written over the old one and synced, and the file is renamed into place. The old frames
    /// stay behind the new data and never validate as records of the new segment (another
    /// salt); recovery knows them by the old seed as the end of the data. Returns whether the free file was used (a free file whose header
    /// does not decode is removed instead).
    pub(crate) fn create(
        &self,
        storage: &dyn Storage,
        dir: &Path,
        allocate: u64,
        recycled: Option<&Path>,
    ) -> Result<bool> {
        if let Some(free) = recycled {
            if let Some(file) = Self::reuse(storage, free, &self.header, allocate)? {
                storage
                    .rename(free, &self.path)
                    .at("rename into place", free)?;
                storage.sync_dir(dir).at("sync directory", dir)?;
                let _ = self.handle.set(file);
                return Ok(true);
            }
            storage
                .remove_file(free)
                .at("remove unusable free file", free)?;
        }
        let name = segment_file_name(self.first_lsn());
        let tmp = dir.join(format!("{name}{TEMP_SUFFIX}"));
        let file = storage.open(&tmp, OpenMode::Truncate).at("create", &tmp)?;
        if allocate > 0 {
            file.allocate(allocate).at("preallocate", &tmp)?;
        }
        file.write_all_at(&self.header.encode(), 0)
            .at("write", &tmp)?;
        file.sync_data().at("sync", &tmp)?;
        storage
            .rename(&tmp, &self.path)
            .at("rename into place", &tmp)?;
        storage.sync_dir(dir).at("sync directory", dir)?;
        let _ = self.handle.set(file);
        Ok(false)
    }

    /// Writes `header` (with the old contents' seed and end) over a free file's, or `None` if
    /// the free file's own header does not decode.
    fn reuse(
        storage: &dyn Storage,
        free: &Path,
        header: &SegmentHeader,
        allocate: u64,
    ) -> Result<Option<Box<dyn StorageFile>>> {
        let file = storage.open(free, OpenMode::ReadWrite).at("open", free)?;
        let mut old = [0u8; MAX_SEGMENT_HEADER_LEN];
        let n = file.read_full_at(&mut old, 0).at("read", free)?;
        let Ok(old) = SegmentHeader::decode(&old[..n]) else {
            return Ok(None);
        };
        let len = file.len().at("read length", free)?;
        let header = SegmentHeader {
            prev_seed: old.seed(),
            prev_version: old.layout.version(),
            prev_end: len,
            ..*header
        };
        file.write_all_at(&header.encode(), 0).at("write", free)?;
        if allocate > 0 {
            file.allocate(allocate).at("preallocate", free)?;
        }
        file.sync_data().at("sync", free)?;
        Ok(Some(file))
    }
}

/// Whether a free file found on disk holds one clean life: a header that decodes and intact
/// frames one after another up to its end. Only such a file is recycled: the frames it keeps
/// behind a new segment's data are known by their seed as the end of the data (format.md,
/// 2.3), and damage among them would read as damage to the new segment.
///
/// Reads in pieces of `chunk` bytes; a frame longer than a piece counts as damage, unread.
pub(crate) fn clean_life(storage: &dyn Storage, path: &Path, chunk: usize) -> Result<bool> {
    let file = storage.open(path, OpenMode::ReadOnly).at("open", path)?;
    let Ok(header) = read_header(&*file, path)? else {
        return Ok(false);
    };
    let len = file.len().at("read length", path)?;
    let max_len = u32::try_from(chunk.saturating_sub(MAX_FRAME_HEADER_LEN)).unwrap_or(u32::MAX);
    let mut cursor = FrameCursor::new(header.layout, header.seed(), len, header.len())
        .with_chunk(chunk)
        .with_max_len(max_len);
    loop {
        match cursor.step(&*file).at("read", path)? {
            Step::Frame { .. } => {}
            Step::End => return Ok(cursor.position() == len),
            Step::Zeros { .. } | Step::Damage { .. } => return Ok(false),
        }
    }
}

/// Reads and decodes the header of the segment file `file` (at `path`): `Err` for a failed
/// read, `Ok(Err(kind))` for bytes that are no header of this format.
pub(crate) fn read_header(
    file: &dyn StorageFile,
    path: &Path,
) -> Result<std::result::Result<SegmentHeader, crate::CorruptionKind>> {
    let mut head = [0u8; MAX_SEGMENT_HEADER_LEN];
    let n = file.read_full_at(&mut head, 0).at("read", path)?;
    Ok(SegmentHeader::decode(&head[..n]))
}

/// The index of a segment no one has read yet, built by its first reader and shared.
pub(crate) type LazyIndex = Arc<OnceLock<Vec<(Lsn, u64)>>>;

/// What the log knows about one segment.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) file: Arc<SegmentFile>,
    /// LSN of its last complete record; `first_lsn - 1` while it has none.
    pub(crate) last_lsn: Lsn,
    /// Bytes holding the header and complete batches; the next frame goes here.
    pub(crate) end: u64,
    /// Sparse `(lsn, offset)` points, each at the start of a batch, ascending.
    pub(crate) index: Vec<(Lsn, u64)>,
    /// Damaged byte ranges that a `SkipCorrupt` recovery kept in place and readers jump over.
    pub(crate) skips: Vec<(u64, u64)>,
    /// The latest batch time its frames carry (0 if none does), in milliseconds since the Unix
    /// epoch.
    pub(crate) max_ms: u64,
    /// The time of its first batch (0 if it has none, or its frames carry no time).
    pub(crate) min_ms: u64,
    /// Recovery found it ends with a seal: appends never go to it.
    pub(crate) sealed: bool,
    /// The offset and checksum of the last frame recovery or a refresh read (a read-only log
    /// checks them to see the writer roll back and write other frames in their place).
    pub(crate) last_frame: Option<(u64, u32)>,
    /// A segment an open took as its seal describes it (`trust_seals`): its frames were not
    /// read, so `index` is empty; the first read by LSN in its middle reads it whole, checking
    /// every frame, and leaves the index here for every later reader.
    pub(crate) unindexed: Option<LazyIndex>,
}

impl Segment {
    pub(crate) fn new(file: SegmentFile) -> Self {
        let last_lsn = file.first_lsn().prev();
        let end = file.data_start();
        Self {
            file: Arc::new(file),
            last_lsn,
            end,
            index: Vec::new(),
            skips: Vec::new(),
            max_ms: 0,
            min_ms: 0,
            sealed: false,
            last_frame: None,
            unindexed: None,
        }
    }

    pub(crate) fn first_lsn(&self) -> Lsn {
        self.file.first_lsn()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.last_lsn < self.first_lsn()
    }

    /// Records that a batch starting with `lsn` begins at `offset`.
    pub(crate) fn note_batch(&mut self, lsn: Lsn, offset: u64) {
        let due = self
            .index
            .last()
            .is_none_or(|&(_, at)| offset >= at + INDEX_INTERVAL_BYTES);
        if due {
            self.index.push((lsn, offset));
        }
    }

    /// Where to start scanning for `lsn`: the last index point at or below it.
    pub(crate) fn scan_start(&self, lsn: Lsn) -> u64 {
        let i = self.index.partition_point(|&(l, _)| l <= lsn);
        match i.checked_sub(1).and_then(|i| self.index.get(i)) {
            Some(&(_, offset)) => offset,
            None => self.file.data_start(),
        }
    }

    /// Drops every index point at or past `offset` (after a cut).
    pub(crate) fn forget_from(&mut self, offset: u64) {
        // A segment indexed on its first read keeps what it learned there (a cut segment no
        // longer ends at its seal, and is indexed like any other from now on).
        if let Some(built) = self.unindexed.take().and_then(|i| i.get().cloned()) {
            self.index = built;
        }
        self.index.retain(|&(_, at)| at < offset);
    }

    /// What a reader needs to look for `lsn` (or read on from it) without holding the log's
    /// lock: the file, where to start, where valid bytes end, and the ranges to skip.
    pub(crate) fn view(&self, lsn: Lsn) -> SegmentView {
        SegmentView {
            file: Arc::clone(&self.file),
            start: self.scan_start(lsn),
            end: self.end,
            skips: self.skips.clone(),
            unindexed: self
                .unindexed
                .as_ref()
                .filter(|_| lsn > self.first_lsn())
                .map(|index| (Arc::clone(index), lsn)),
        }
    }
}

/// A reader's handle on a segment, taken under the log's lock and used outside it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentView {
    pub(crate) file: Arc<SegmentFile>,
    /// Offset of a batch start at or before the LSN of interest.
    pub(crate) start: u64,
    /// End of the bytes that may be read.
    pub(crate) end: u64,
    pub(crate) skips: Vec<(u64, u64)>,
    /// For a segment whose frames no one has read yet (see [`Segment::unindexed`]): its index,
    /// to build if it is not built, and the LSN `start` is for.
    pub(crate) unindexed: Option<(LazyIndex, Lsn)>,
}

impl SegmentView {
    /// A cursor at the batch start at or before the LSN of interest, reading in chunks of
    /// `chunk` bytes. For a segment no one has indexed yet, reads it whole first (checking
    /// every frame) to index it.
    pub(crate) fn cursor(&self, chunk: usize) -> Result<FrameCursor> {
        let start = match &self.unindexed {
            None => self.start,
            Some((index, lsn)) => {
                let index = match index.get() {
                    Some(index) => index,
                    None => {
                        let built = self.build_index()?;
                        let _ = index.set(built);
                        index.get().map_or(&[][..], Vec::as_slice)
                    }
                };
                let i = index.partition_point(|&(l, _)| l <= *lsn);
                i.checked_sub(1)
                    .and_then(|i| index.get(i))
                    .map_or(self.file.data_start(), |&(_, offset)| offset)
            }
        };
        Ok(FrameCursor::new(self.file.layout(), self.file.seed, self.end, start).with_chunk(chunk))
    }

    /// Reads every frame of the segment, checking each, and returns its sparse index.
    fn build_index(&self) -> Result<Vec<(Lsn, u64)>> {
        let start = self.file.data_start();
        let mut cursor = FrameCursor::new(self.file.layout(), self.file.seed, self.end, start);
        let mut index: Vec<(Lsn, u64)> = Vec::new();
        let mut open_batch = false;
        while let Some((header, offset)) = self.step_frame(&mut cursor)? {
            if header.is_record() {
                let due = index
                    .last()
                    .is_none_or(|&(_, at)| offset >= at + INDEX_INTERVAL_BYTES);
                if !open_batch && due {
                    index.push((header.lsn, offset));
                }
                open_batch = !header.batch_end();
            }
        }
        Ok(index)
    }

    /// Reads the next record's frame, jumping over skipped ranges and markers, and turning
    /// damage into an error.
    pub(crate) fn step(&self, cursor: &mut FrameCursor) -> Result<Option<(FrameHeader, u64)>> {
        loop {
            match self.step_frame(cursor)? {
                Some((header, _)) if !header.is_record() => {}
                other => return Ok(other),
            }
        }
    }

    /// Reads the next frame, a marker's too.
    fn step_frame(&self, cursor: &mut FrameCursor) -> Result<Option<(FrameHeader, u64)>> {
        let file = &*self.file;
        if let Some(&(_, to)) = self
            .skips
            .iter()
            .find(|&&(from, _)| from == cursor.position())
        {
            cursor.seek(to);
        }
        match cursor.step(file.io()?).at("read", &file.path)? {
            Step::Frame { offset, header } => Ok(Some((header, offset))),
            Step::End => Ok(None),
            Step::Zeros { offset } => Err(Error::Corrupt {
                path: file.path.clone(),
                offset,
                kind: crate::CorruptionKind::ZeroedRegion,
            }),
            Step::Damage { offset, kind } => Err(Error::Corrupt {
                path: file.path.clone(),
                offset,
                kind,
            }),
        }
    }

    /// Finds the frame of `lsn`. Returns it, or `None` when the segment has no such record (it
    /// was lost to corruption).
    pub(crate) fn find(&self, lsn: Lsn) -> Result<Option<FoundFrame>> {
        let mut cursor = self.cursor(INDEX_INTERVAL_BYTES as usize + MAX_FRAME_HEADER_LEN)?;
        while let Some((header, offset)) = self.step(&mut cursor)? {
            if header.lsn == lsn {
                let payload = cursor.payload().to_vec();
                return Ok(Some(FoundFrame {
                    offset,
                    header,
                    payload,
                }));
            }
            if header.lsn > lsn {
                break;
            }
        }
        Ok(None)
    }
}

/// A frame found by [`SegmentView::find`].
#[derive(Debug)]
pub(crate) struct FoundFrame {
    pub(crate) offset: u64,
    pub(crate) header: FrameHeader,
    pub(crate) payload: Vec<u8>,
}
