//! Forensics: the frames of one segment file or quarantined `.cut` file, read straight from its
//! bytes, whether they are valid or not.
//!
//! A [`Log`](crate::Log) shows records; this module shows what is in a file, for the moments
//! when the log does not open or when what recovery moved to `quarantine/` must be looked at. It
//! never changes a byte, takes no lock, and needs no log around the file: it reads one file,
//! front to back, and reports each frame it finds (offset, length, LSN, flags, durable hint,
//! the stored checksum and the one computed from the bytes), each run of zeros, and each stretch
//! of bytes that is no frame, resuming at the next frame after damage.
//!
//! Frame checksums are salted with the header of the segment the frame was written in (its
//! log id and random salt, `docs/format.md` section 2.2), so a file is read with the header of
//! its segment:
//!
//! - a segment file (`{first_lsn:020}.seg`, in the log directory or moved whole to the
//!   quarantine folder) carries its own header;
//! - a cut file (`{segment name}.{offset}.cut`, in the quarantine folder) holds the bytes cut
//!   from a segment at `offset`, without a header. The header is taken from that segment, looked
//!   for in the log directory (the quarantine folder's parent), then beside the cut file; the
//!   header found must name the segment's first LSN. A header can also be named explicitly
//!   ([`Frames::open_with`]).
//!
//! Without a usable header (the segment's header is damaged, or the segment is gone), frames
//! are still found and shown from their structure (a well-formed frame header whose frame fits
//! in the file), with the checksum [unverified](Checksum::Unverified). A header found for a cut
//! file may also be that of a later segment file of the same name (the segment was removed and
//! created again); then no frame verifies, and every well-formed frame shows a
//! [mismatch](Checksum::Mismatch).
//!
//! After a frame whose checksum does not match, reading goes on where that frame ends if a
//! frame or zeros stand there (a flipped payload byte; the frames a recycled file kept from its
//! earlier life, written under another header), and otherwise looks for the next frame at
//! every byte offset after the frame's start (a damaged length).
//!
//! Offsets are offsets in the segment: for a cut file, the cut offset plus the position in the
//! cut file, so they match what recovery reported.
//!
//! ```
//! use tidelog::inspect::{Entry, Frames};
//! use tidelog::{Durability, Log};
//! # fn main() -> tidelog::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let log = Log::open(dir.path())?;
//! log.append_batch(&["a", "b"], Durability::Synced)?;
//! let segment = log.segments()[0].path.clone();
//! let frames = Frames::open(&segment)?;
//! for entry in frames {
//!     if let Entry::Frame(frame) = entry? {
//!         assert!(frame.checksum().is_valid());
//!         println!("{} at offset {}: {} bytes", frame.lsn, frame.offset, frame.len);
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::format::{
    FLAG_BATCH_END, FLAG_BATCH_START, FrameHeader, Layout, MAX_SEGMENT_HEADER_LEN, QUARANTINE_DIR,
    SegmentHeader, parse_segment_name,
};
use crate::io::{OpenMode, StdStorage, Storage, StorageFile};
use crate::types::Lsn;

/// Suffix of a file holding bytes cut from a segment.
const CUT_SUFFIX: &str = ".cut";
/// Bytes read at a time.
const WINDOW: usize = 256 << 10;

/// What a file of a log directory, or of its quarantine folder, is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A segment file, `{first_lsn:020}.seg`, possibly with the `.1`, `.2`, … the quarantine
    /// folder adds to a name already taken.
    Segment {
        /// The first LSN its name gives.
        first_lsn: Lsn,
    },
    /// Bytes cut from a segment, `{segment name}.{offset}.cut` (possibly with `.1`, `.2`, …).
    Cut {
        /// The file name of the segment the bytes were cut from.
        segment: String,
        /// The first LSN of that segment.
        first_lsn: Lsn,
        /// Where in the segment the cut was made: the offset of the cut file's first byte.
        offset: u64,
    },
    /// Any other file.
    Other,
}

impl FileKind {
    /// The kind of the file at `path`, from its name alone.
    pub fn of(path: &Path) -> FileKind {
        let Some(name) = path.file_name().and_then(OsStr::to_str) else {
            return FileKind::Other;
        };
        let name = strip_copy_suffix(name);
        if let Some(first_lsn) = parse_segment_name(OsStr::new(name)) {
            return FileKind::Segment { first_lsn };
        }
        let cut = name.strip_suffix(CUT_SUFFIX).and_then(|rest| {
            let (segment, offset) = rest.rsplit_once('.')?;
            if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let offset = offset.parse().ok()?;
            let first_lsn = parse_segment_name(OsStr::new(segment))?;
            Some(FileKind::Cut {
                segment: segment.to_owned(),
                first_lsn,
                offset,
            })
        });
        cut.unwrap_or(FileKind::Other)
    }
}

/// `name` without the `.N` the quarantine folder appends to a name already taken.
fn strip_copy_suffix(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}

/// A segment header, as a file holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// The id of the log the segment belongs to.
    pub log_id: u128,
    /// The LSN of the segment's first record.
    pub first_lsn: Lsn,
    /// The segment's random salt, part of the seed of its frame checksums.
    pub salt: u64,
    /// When the segment file was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The format version of the header and of the segment's frames.
    pub version: u32,
    /// For a recycled file, how far its earlier contents reach, in bytes (0 for a new file).
    pub prev_extent_bytes: u64,
    /// For a recycled file of format version 2, the checksum seed of its earlier frames (0 for
    /// a new file, and in version 1).
    pub prev_seed: u32,
    /// The log's timeline generation when the file was created (0 in version 1).
    pub generation: u64,
}

impl Header {
    fn of(h: &SegmentHeader) -> Header {
        Header {
            log_id: h.log_id,
            first_lsn: h.first_lsn,
            salt: h.salt,
            created_ms: h.created_ms,
            version: h.layout.version(),
            prev_extent_bytes: h.prev_extent_bytes(),
            prev_seed: h.prev_seed,
            generation: h.generation,
        }
    }
}

/// Where the header that salts the frame checksums came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderSource {
    /// The file's own header (a segment file).
    Own,
    /// The header of another file: for a cut file, the segment the bytes were cut from; or the
    /// file named to [`Frames::open_with`].
    File(PathBuf),
    /// No usable header: frames are found from their structure alone and their checksums are
    /// [unverified](Checksum::Unverified).
    Unavailable(Unavailable),
}

/// Why no header is available for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unavailable {
    /// The header found does not decode, or (for a cut file) names another first LSN than the
    /// segment the bytes were cut from.
    Damaged {
        /// The file whose header was read.
        path: PathBuf,
        /// What is wrong with it.
        kind: CorruptionKind,
    },
    /// The segment a cut file's bytes came from is not where it would be.
    NotFound {
        /// The paths looked at.
        tried: Vec<PathBuf>,
    },
}

/// What the checksum of a frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// The checksum of the bytes matches the stored one.
    Valid,
    /// It does not: the frame is damaged, or was not written under this header.
    Mismatch,
    /// No header is available to salt it, so it was not computed.
    Unverified,
}

impl Checksum {
    /// Whether the checksum matches.
    pub fn is_valid(self) -> bool {
        self == Checksum::Valid
    }
}

/// What a seal says of the segment it ends: the LSNs of its first and last record and the times
/// of its first and last batch (milliseconds since the Unix epoch). Written when a roll ends the
/// segment (format.md, 2.5), it lets a copy of the segment (in an archive, say) be checked
/// whole: the records must run from `first_lsn` to `last_lsn`, and the seal must be the last
/// frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Seal {
    /// The LSN of the segment's first record.
    pub first_lsn: Lsn,
    /// The LSN of its last record.
    pub last_lsn: Lsn,
    /// The time of its first batch.
    pub first_ms: u64,
    /// The time of its last batch.
    pub last_ms: u64,
}

/// A well-formed frame header whose frame fits in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Frame {
    /// Offset of the frame in its segment.
    pub offset: u64,
    /// Payload length in bytes.
    pub len: u32,
    /// The LSN the frame carries.
    pub lsn: Lsn,
    /// The batch flags byte (`0x02` batch start, `0x01` batch end).
    pub flags: u8,
    /// The durable hint: the log was durable up to this LSN when the frame was written
    /// (`Lsn::ZERO` when unknown).
    pub durable_hint: Lsn,
    /// The checksum stored in the frame.
    pub stored_crc: u32,
    /// The checksum of the frame's bytes under its segment's header, if a header is available.
    pub computed_crc: Option<u32>,
    /// The wall-clock time of the append of the frame's batch, in milliseconds since the Unix
    /// epoch (format version 2; `None` in version 1).
    pub timestamp_ms: Option<u64>,
    /// The length of the frame's header.
    pub header_len: u32,
    /// The frame's kind: 1 for a record; in format version 2, 2 for a sync marker and 3 for a
    /// segment's seal, which hold no record and carry, as their LSN, the LSN the next record
    /// takes.
    pub kind: u8,
}

impl Frame {
    /// Whether the frame holds a record (not a sync marker or a seal).
    pub fn is_record(&self) -> bool {
        self.kind == crate::format::KIND_RECORD
    }

    /// Whether the frame is a seal, the last frame of a segment that a roll ended (format
    /// version 2); [`Frames::seal`] reads what it says.
    pub fn is_seal(&self) -> bool {
        self.kind == crate::format::KIND_SEAL
    }

    /// Whether the frame opens a batch.
    pub fn is_batch_start(&self) -> bool {
        self.flags & FLAG_BATCH_START != 0
    }

    /// Whether the frame closes a batch (a single append both opens and closes one).
    pub fn is_batch_end(&self) -> bool {
        self.flags & FLAG_BATCH_END != 0
    }

    /// The frame's length on disk: its header (24 bytes in format version 1, 32 in version 2)
    /// and its payload.
    pub fn frame_len(&self) -> u64 {
        u64::from(self.header_len) + u64::from(self.len)
    }

    /// What the checksum says.
    pub fn checksum(&self) -> Checksum {
        match self.computed_crc {
            None => Checksum::Unverified,
            Some(crc) if crc == self.stored_crc => Checksum::Valid,
            Some(_) => Checksum::Mismatch,
        }
    }
}

/// One stretch of a file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entry {
    /// A frame (valid or not: see [`Frame::checksum`]).
    Frame(Frame),
    /// Zero bytes. At the end of a file they are the clean end of the data (a preallocated
    /// segment's unused space); before other bytes, a zeroed region.
    Zeros {
        /// Offset in the segment.
        offset: u64,
        /// How many.
        len: u64,
    },
    /// Bytes that are no frame, up to the next frame or run of zeros found after them.
    Damage {
        /// Offset in the segment.
        offset: u64,
        /// How many bytes.
        len: u64,
        /// What is wrong with the first of them (`BadFrameHeader`, `TruncatedFrame`).
        kind: CorruptionKind,
    },
}

/// The frames of one segment or cut file, as an iterator of [`Entry`]s in file order.
///
/// Reads through a buffer of 256 KiB, and checksums large frames piece by piece, so memory does
/// not grow with the file or the frames; payloads are read only when asked for
/// ([`Frames::payload`]).
pub struct Frames {
    path: PathBuf,
    file: Box<dyn StorageFile>,
    kind: FileKind,
    header: Option<Header>,
    source: HeaderSource,
    seed: Option<u32>,
    /// The layout of the frames: the header's, or, without one, the version its bytes name (the
    /// current one if they name none).
    layout: Layout,
    /// Offset in the segment of the file's byte 0.
    base: u64,
    file_len: u64,
    /// Position in the file of the next entry.
    pos: u64,
    /// Entries found but not yet returned.
    pending: VecDeque<Entry>,
    buf: Vec<u8>,
    buf_start: u64,
    failed: bool,
}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("source", &self.source)
            .field("pos", &self.pos)
            .field("len", &self.file_len)
            .finish_non_exhaustive()
    }
}

impl Frames {
    /// Opens the segment or cut file at `path` on the real file system, finding the header that
    /// salts its checksums as the [module documentation](self) says.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or read, or if its name is neither a segment
    /// file's nor a cut file's ([`io::ErrorKind::InvalidInput`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Frames> {
        Frames::open_with(&StdStorage::new(), path.as_ref(), None)
    }

    /// Opens the file at `path` through `storage`; with `header_from`, the frame checksums are
    /// salted with that segment file's header instead of the one found by default.
    ///
    /// # Errors
    /// As [`Frames::open`]; also [`Error::Io`] if `header_from` cannot be opened or read.
    pub fn open_with(
        storage: &dyn Storage,
        path: &Path,
        header_from: Option<&Path>,
    ) -> Result<Frames> {
        let kind = FileKind::of(path);
        let base = match &kind {
            FileKind::Segment { .. } => 0,
            FileKind::Cut { offset, .. } => *offset,
            FileKind::Other => {
                return Err(Error::Io {
                    op: "inspect",
                    path: path.to_path_buf(),
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "not a segment file ({first LSN, 20 digits}.seg) or a cut file \
                         ({segment file name}.{offset}.cut) by its name",
                    ),
                });
            }
        };
        let file = storage.open(path, OpenMode::ReadOnly).at("open", path)?;
        let file_len = file.len().at("stat", path)?;
        let (source, header) = match (header_from, &kind) {
            (Some(from), _) => match read_header_of(storage, from, None)? {
                Ok(h) => (HeaderSource::File(from.to_path_buf()), Some(h)),
                Err(kind) => (unavailable_damaged(from, kind), None),
            },
            (
                None,
                FileKind::Cut {
                    segment, first_lsn, ..
                },
            ) => header_of_cut(storage, path, segment, *first_lsn)?,
            (None, _) => match read_header(&*file, path)? {
                Ok(h) => (HeaderSource::Own, Some(h)),
                Err(kind) => (unavailable_damaged(path, kind), None),
            },
        };
        let layout = match &header {
            Some(h) => h.layout,
            None => layout_named_by(&*file, &kind),
        };
        let start = match &kind {
            FileKind::Segment { .. } => layout.segment_header_len() as u64,
            _ => 0,
        };
        Ok(Frames {
            path: path.to_path_buf(),
            file,
            kind,
            layout,
            seed: header.map(|h| h.seed()),
            header: header.as_ref().map(Header::of),
            source,
            base,
            file_len,
            pos: start.min(file_len),
            pending: VecDeque::new(),
            buf: Vec::new(),
            buf_start: 0,
            failed: false,
        })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the file is, by its name.
    pub fn kind(&self) -> &FileKind {
        &self.kind
    }

    /// The format version the frames are read as: the header's, or, without one, the one the
    /// file's bytes suggest (see [`Frames::header_source`]).
    pub fn version(&self) -> u32 {
        self.layout.version()
    }

    /// The header that salts the checksums, if one is available.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Where that header came from, or why there is none.
    pub fn header_source(&self) -> &HeaderSource {
        &self.source
    }

    /// The file's length in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The offset in the segment of the file's first byte: the cut offset for a cut file, 0 for
    /// a segment file.
    pub fn base_offset(&self) -> u64 {
        self.base
    }

    /// Reads the payload of `frame`, one this iterator returned.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read.
    pub fn payload(&self, frame: &Frame) -> Result<Vec<u8>> {
        let at = frame.offset.saturating_sub(self.base) + u64::from(frame.header_len);
        let mut data = vec![0; frame.len as usize];
        self.file
            .read_exact_at(&mut data, at)
            .at("read", &self.path)?;
        Ok(data)
    }

    /// What the seal `frame` (one this iterator returned) says of its segment; `None` if the
    /// frame is no seal or its payload does not decode. Check [`Frame::checksum`] before
    /// trusting it.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read.
    pub fn seal(&self, frame: &Frame) -> Result<Option<Seal>> {
        if !frame.is_seal() {
            return Ok(None);
        }
        let payload = self.payload(frame)?;
        Ok(
            crate::format::decode_seal(&payload).map(|(first, last, first_ms, last_ms)| Seal {
                first_lsn: first,
                last_lsn: last,
                first_ms,
                last_ms,
            }),
        )
    }

    /// Up to `n` bytes of the file from `at` (fewer only at its end).
    fn bytes(&mut self, at: u64, n: usize) -> io::Result<&[u8]> {
        let have = at
            .checked_sub(self.buf_start)
            .and_then(|d| usize::try_from(d).ok())
            .filter(|&from| from <= self.buf.len() && self.buf.len() - from >= n);
        if let Some(from) = have {
            return Ok(&self.buf[from..from + n]);
        }
        let left = usize::try_from(self.file_len.saturating_sub(at)).unwrap_or(usize::MAX);
        let want = n.max(WINDOW).min(left);
        self.buf.resize(want, 0);
        let got = self.file.read_full_at(&mut self.buf, at)?;
        self.buf.truncate(got);
        self.buf_start = at;
        Ok(&self.buf[..n.min(got)])
    }

    /// The checksum of the frame at file position `at` under `seed`, read piece by piece.
    fn checksum_at(&mut self, seed: u32, at: u64, frame_len: u64) -> io::Result<u32> {
        let header_len = self.layout.frame_header_len();
        let head = self.bytes(at, header_len)?;
        let mut crc = crate::format::crc32c_append(seed, head.get(4..).unwrap_or_default());
        let mut pos = at + header_len as u64;
        let end = at + frame_len;
        while pos < end {
            let n = usize::try_from(end - pos).unwrap_or(usize::MAX).min(WINDOW);
            let piece = self.bytes(pos, n)?;
            if piece.is_empty() {
                break;
            }
            crc = crate::format::crc32c_append(crc, piece);
            pos += piece.len() as u64;
        }
        Ok(crc)
    }

    /// The frame at file position `at`, if its header is well-formed and it fits in the file,
    /// with its checksum computed if a header is available.
    fn frame_at(&mut self, at: u64) -> io::Result<Option<Frame>> {
        let layout = self.layout;
        let Some(h) = FrameHeader::parse(self.bytes(at, layout.frame_header_len())?, layout) else {
            return Ok(None);
        };
        if h.frame_len() > self.file_len.saturating_sub(at) {
            return Ok(None);
        }
        let computed_crc = match self.seed {
            Some(seed) => Some(self.checksum_at(seed, at, h.frame_len())?),
            None => None,
        };
        Ok(Some(Frame {
            offset: self.base + at,
            len: h.len,
            lsn: h.lsn,
            flags: h.flags,
            durable_hint: h.durable_hint,
            stored_crc: h.crc,
            computed_crc,
            timestamp_ms: h.timestamp_ms,
            header_len: h.header_len() as u32,
            kind: h.kind,
        }))
    }

    /// Whether the bytes at `at` are zeros where a frame header would be: a header's length of
    /// zero bytes, or zeros to the end of the file if fewer are left.
    fn zeros_at(&mut self, at: u64) -> io::Result<bool> {
        let head = self.bytes(at, self.layout.frame_header_len())?;
        Ok(!head.is_empty() && head.iter().all(|&b| b == 0))
    }

    /// The first position at or after `from` where a frame that counts starts (one whose
    /// checksum matches, or, without a header, any well-formed one), or where zeros stand in
    /// place of a frame header; the end of the file if there is none.
    fn resync(&mut self, from: u64) -> io::Result<u64> {
        let mut at = from;
        while at < self.file_len {
            if self.zeros_at(at)? {
                return Ok(at);
            }
            if let Some(frame) = self.frame_at(at)?
                && frame.checksum() != Checksum::Mismatch
            {
                return Ok(at);
            }
            at += 1;
        }
        Ok(self.file_len)
    }

    /// The end of the run of zeros starting at `at`: the first non-zero byte, or the end.
    fn zeros_end(&mut self, at: u64) -> io::Result<u64> {
        let mut pos = at;
        while pos < self.file_len {
            let n = usize::try_from(self.file_len - pos)
                .unwrap_or(usize::MAX)
                .min(WINDOW);
            let chunk = self.bytes(pos, n)?;
            if chunk.is_empty() {
                break;
            }
            match chunk.iter().position(|&b| b != 0) {
                Some(i) => return Ok(pos + i as u64),
                None => pos += chunk.len() as u64,
            }
        }
        Ok(self.file_len)
    }

    /// Finds the next entries at the current position.
    fn advance(&mut self) -> io::Result<()> {
        let at = self.pos;
        if self.zeros_at(at)? {
            let end = self.zeros_end(at)?;
            self.pending.push_back(Entry::Zeros {
                offset: self.base + at,
                len: end - at,
            });
            self.pos = end;
            return Ok(());
        }
        if let Some(frame) = self.frame_at(at)? {
            let end = at + frame.frame_len();
            let checksum = frame.checksum();
            self.pending.push_back(Entry::Frame(frame));
            // After a mismatch, the length is trusted only if a frame (valid or not) or zeros
            // follow where it ends: a flipped payload byte, or frames written under another
            // header (a recycled file's earlier life) each read as one frame.
            if checksum != Checksum::Mismatch
                || end >= self.file_len
                || self.zeros_at(end)?
                || self.frame_at(end)?.is_some()
            {
                self.pos = end;
                return Ok(());
            }
            // Otherwise the length may be what is damaged: look for the next frame from just
            // after this one's start, and call what lies between its end and that frame damage.
            let next = self.resync(at + 1)?;
            if next > end {
                self.pending.push_back(Entry::Damage {
                    offset: self.base + end,
                    len: next - end,
                    kind: CorruptionKind::BadFrameHeader,
                });
            }
            self.pos = next;
            return Ok(());
        }
        let left = self.file_len - at;
        let layout = self.layout;
        let header_len = layout.frame_header_len();
        let kind = match FrameHeader::parse(self.bytes(at, header_len)?, layout) {
            Some(h) => CorruptionKind::TruncatedFrame {
                needed: h.frame_len(),
                available: left,
            },
            None if left < header_len as u64 => CorruptionKind::TruncatedFrame {
                needed: header_len as u64,
                available: left,
            },
            None => CorruptionKind::BadFrameHeader,
        };
        let next = self.resync(at + 1)?;
        self.pending.push_back(Entry::Damage {
            offset: self.base + at,
            len: next - at,
            kind,
        });
        self.pos = next;
        Ok(())
    }
}

impl Iterator for Frames {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if let Some(entry) = self.pending.pop_front() {
            return Some(Ok(entry));
        }
        if self.failed || self.pos >= self.file_len {
            return None;
        }
        if let Err(e) = self.advance() {
            self.failed = true;
            return Some(Err(e).at("read", &self.path));
        }
        self.pending.pop_front().map(Ok)
    }
}

impl std::iter::FusedIterator for Frames {}

fn unavailable_damaged(path: &Path, kind: CorruptionKind) -> HeaderSource {
    HeaderSource::Unavailable(Unavailable::Damaged {
        path: path.to_path_buf(),
        kind,
    })
}

/// Reads the header at the start of `file`.
fn read_header(
    file: &dyn StorageFile,
    path: &Path,
) -> Result<std::result::Result<SegmentHeader, CorruptionKind>> {
    let mut head = [0u8; MAX_SEGMENT_HEADER_LEN];
    let n = file.read_full_at(&mut head, 0).at("read", path)?;
    Ok(SegmentHeader::decode(&head[..n]))
}

/// The layout a file without a usable header most likely has: for a segment file, the version
/// its header's bytes name; for a cut file, the one under which more well-formed frame headers
/// follow one another from its start (the current one on a tie).
fn layout_named_by(file: &dyn StorageFile, kind: &FileKind) -> Layout {
    match kind {
        FileKind::Segment { .. } => {
            let mut v = [0u8; 4];
            match file.read_full_at(&mut v, 8) {
                Ok(4) => Layout::of(u32::from_le_bytes(v)).unwrap_or(Layout::CURRENT),
                _ => Layout::CURRENT,
            }
        }
        _ => {
            let mut head = vec![0u8; WINDOW];
            let n = file.read_full_at(&mut head, 0).unwrap_or(0);
            head.truncate(n);
            let chained = |layout: Layout| {
                let (mut at, mut count) = (0usize, 0usize);
                while let Some(h) = head.get(at..).and_then(|b| FrameHeader::parse(b, layout)) {
                    count += 1;
                    at = at.saturating_add(usize::try_from(h.frame_len()).unwrap_or(usize::MAX));
                }
                count
            };
            if chained(Layout::V1) > chained(Layout::CURRENT) {
                Layout::V1
            } else {
                Layout::CURRENT
            }
        }
    }
}

/// Reads the header of the segment file at `path`; with `first_lsn`, a header naming another
/// first LSN does not count.
fn read_header_of(
    storage: &dyn Storage,
    path: &Path,
    first_lsn: Option<Lsn>,
) -> Result<std::result::Result<SegmentHeader, CorruptionKind>> {
    let file = storage.open(path, OpenMode::ReadOnly).at("open", path)?;
    Ok(read_header(&*file, path)?.and_then(|h| match first_lsn {
        Some(name) if h.first_lsn != name => Err(CorruptionKind::NameMismatch {
            name,
            header: h.first_lsn,
        }),
        _ => Ok(h),
    }))
}

/// The header of the segment a cut file's bytes were cut from: in the log directory (the
/// quarantine folder's parent), then beside the cut file.
fn header_of_cut(
    storage: &dyn Storage,
    cut: &Path,
    segment: &str,
    first_lsn: Lsn,
) -> Result<(HeaderSource, Option<SegmentHeader>)> {
    let beside = cut.parent().unwrap_or_else(|| Path::new(""));
    let mut candidates = Vec::new();
    if beside.file_name() == Some(OsStr::new(QUARANTINE_DIR))
        && let Some(log_dir) = beside.parent()
    {
        candidates.push(log_dir.join(segment));
    }
    candidates.push(beside.join(segment));
    let mut damaged = None;
    for path in &candidates {
        match read_header_of(storage, path, Some(first_lsn)) {
            Ok(Ok(h)) => return Ok((HeaderSource::File(path.clone()), Some(h))),
            Ok(Err(kind)) => {
                damaged.get_or_insert_with(|| (path.clone(), kind));
            }
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let source = match damaged {
        Some((path, kind)) => HeaderSource::Unavailable(Unavailable::Damaged { path, kind }),
        None => HeaderSource::Unavailable(Unavailable::NotFound { tried: candidates }),
    };
    Ok((source, None))
}

/// The segment files of the log in `dir`, in LSN order (by name: their headers are not read).
///
/// # Errors
/// [`Error::Io`] if the directory cannot be listed.
pub fn segment_files(storage: &dyn Storage, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut segments: Vec<(Lsn, PathBuf)> = storage
        .list(dir)
        .at("list", dir)?
        .into_iter()
        .filter_map(|name| parse_segment_name(&name).map(|lsn| (lsn, dir.join(name))))
        .collect();
    segments.sort();
    Ok(segments.into_iter().map(|(_, path)| path).collect())
}

#[cfg(test)]
#[path = "inspect_tests.rs"]
mod tests;
