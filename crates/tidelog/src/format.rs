//! The on-disk format: segment names and headers, record frames, the checkpoint file.
//!
//! `docs/format.md` describes the same layouts byte by byte. All integers are little-endian and
//! fixed-width. Every checksum is CRC32C. Frame checksums are *salted*: they start from a seed
//! derived from the log id and the segment's random salt, so a frame copied from another log or
//! left over from an older file never validates here.

mod crc;
mod cursor;

use std::ffi::OsStr;

use crate::error::CorruptionKind;
use crate::types::Lsn;

pub(crate) use crc::crc32c_append;
pub(crate) use cursor::{FrameCursor, Step};

/// The format version this build writes. It reads this one and every earlier one (1).
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this build reads.
const OLDEST_READ_VERSION: u32 = 1;

/// Largest record the format allows: 1 GiB.
pub const MAX_RECORD_BYTES_LIMIT: u32 = 1 << 30;

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"TDLGSEG\0";
pub(crate) const CHECKPOINT_MAGIC: [u8; 8] = *b"TDLGCKP\0";
pub(crate) const RETENTION_MAGIC: [u8; 8] = *b"TDLGRTN\0";
/// Length of the header of the segment files this build creates.
pub(crate) const SEGMENT_HEADER_LEN: usize = Layout::CURRENT.segment_header_len();
/// The longest segment header of any version this build reads.
pub(crate) const MAX_SEGMENT_HEADER_LEN: usize = Layout::V2.segment_header_len();

/// The layout of a segment's header and frames: the one of the format version its header
/// names. A log may hold segments of both (segments written before an upgrade keep theirs, and
/// appends to such a segment use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Layout {
    /// Version 1: a 64-byte segment header, 24-byte frame headers.
    V1,
    /// Version 2: a 128-byte segment header, 32-byte frame headers carrying the batch's time.
    V2,
}

impl Layout {
    /// The layout of the segments this build creates.
    pub(crate) const CURRENT: Self = Self::V2;

    /// The layout of format version `version`, if this build reads it.
    pub(crate) fn of(version: u32) -> Option<Self> {
        match version {
            1 => Some(Self::V1),
            2 => Some(Self::V2),
            _ => None,
        }
    }

    pub(crate) const fn version(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }

    /// Where a segment's first frame starts.
    pub(crate) const fn segment_header_len(self) -> usize {
        match self {
            Self::V1 => 64,
            Self::V2 => 128,
        }
    }

    /// The length of a frame header, in front of its payload.
    pub(crate) const fn frame_header_len(self) -> usize {
        match self {
            Self::V1 => 24,
            Self::V2 => 32,
        }
    }
}
/// `durable_lag` value meaning "unknown": the log was durable up to no known LSN.
const LAG_UNKNOWN: u32 = u32::MAX;
pub(crate) const CHECKPOINT_LEN: usize = 52;
/// Frame kind of a user record.
pub(crate) const KIND_RECORD: u8 = 1;
/// Frame kind of a sync marker (version 2): no payload, no LSN of its own; written after an
/// fsync, it says through its durable hint how far the log was durable (format.md, 2.4).
pub(crate) const KIND_SYNC: u8 = 2;
/// Frame kind of a seal (version 2): the last frame of a segment that a roll sealed, naming the
/// LSNs and the times of its records (format.md, 2.5).
pub(crate) const KIND_SEAL: u8 = 3;
/// The payload length of a seal: first and last LSN, first and last batch time.
pub(crate) const SEAL_LEN: usize = 32;
/// The length of a whole seal frame (version 2 header and payload).
pub(crate) const SEAL_FRAME_LEN: usize = Layout::V2.frame_header_len() + SEAL_LEN;
/// Frame flag: this record is the last of its batch (a single append is a batch of one).
pub(crate) const FLAG_BATCH_END: u8 = 1;
/// Frame flag: this record is the first of its batch.
pub(crate) const FLAG_BATCH_START: u8 = 2;
const KNOWN_FLAGS: u8 = FLAG_BATCH_END | FLAG_BATCH_START;

pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
pub(crate) const TEMP_SUFFIX: &str = ".tmp";
/// Suffix of a segment file kept for reuse (recycling).
pub(crate) const FREE_SUFFIX: &str = ".free";
pub(crate) const CHECKPOINT_FILE: &str = "CHECKPOINT";
/// The retention floor's file: the checkpoint file's layout under its own magic.
pub(crate) const RETENTION_FILE: &str = "RETENTION";
pub(crate) const QUARANTINE_DIR: &str = "quarantine";

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

fn u128_at(bytes: &[u8], at: usize) -> u128 {
    let mut b = [0; 16];
    b.copy_from_slice(&bytes[at..at + 16]);
    u128::from_le_bytes(b)
}

fn check_version(found: u32) -> Result<(), CorruptionKind> {
    if (OLDEST_READ_VERSION..=FORMAT_VERSION).contains(&found) {
        Ok(())
    } else {
        Err(CorruptionKind::UnsupportedVersion {
            found,
            supported: FORMAT_VERSION,
        })
    }
}

/// The file name of the segment whose first record is `first`: 20 digits, so names sort.
pub(crate) fn segment_file_name(first: Lsn) -> String {
    format!("{:020}{SEGMENT_SUFFIX}", first.get())
}

/// The name of a free (recyclable) file that was the segment starting at `first`.
pub(crate) fn free_file_name(first: Lsn) -> String {
    format!("{:020}{FREE_SUFFIX}", first.get())
}

/// Whether `name` is a free file's.
pub(crate) fn is_free_name(name: &OsStr) -> bool {
    name.to_str()
        .and_then(|n| n.strip_suffix(FREE_SUFFIX))
        .is_some_and(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `name` is a segment's or the checkpoint's: a directory holding neither holds no log.
pub(crate) fn is_log_file_name(name: &OsStr) -> bool {
    name == CHECKPOINT_FILE || parse_segment_name(name).is_some()
}

/// The first LSN named by a segment file name, or `None` if `name` is not a segment's.
pub(crate) fn parse_segment_name(name: &OsStr) -> Option<Lsn> {
    let digits = name.to_str()?.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // LSN 0 is never a record's: a file named for it is no segment of tidelog's.
    digits.parse().ok().filter(|&n| n != 0).map(Lsn::new)
}

/// The fixed header of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// The layout of this header and of the segment's frames.
    pub(crate) layout: Layout,
    pub(crate) log_id: u128,
    pub(crate) first_lsn: Lsn,
    /// Random per segment file; part of the frame checksum seed.
    pub(crate) salt: u64,
    pub(crate) created_ms: u64,
    /// Version 1 only: for a recycled file, how far its earlier contents reach, in units of
    /// [`EXTENT_UNIT`] bytes rounded up (0 for a new file).
    pub(crate) prev_extent: u32,
    /// Version 2 only: for a recycled file, the frame checksum seed of its earlier life (0 for
    /// a new file), by which recovery knows the earlier frames for what they are.
    pub(crate) prev_seed: u32,
    /// Version 2 only: for a recycled file, where its earlier data ended (0 for a new file).
    pub(crate) prev_end: u64,
    /// Version 2 only: for a recycled file, the format version of its earlier frames (0 for a
    /// new file).
    pub(crate) prev_version: u32,
    /// Version 2 only: the log's timeline generation when the file was created.
    pub(crate) generation: u64,
}

/// The unit of [`SegmentHeader::prev_extent`]: 256 bytes, so a `u32` covers a 1 TiB segment.
pub(crate) const EXTENT_UNIT: u64 = 256;

impl SegmentHeader {
    /// The header of a new segment file of the current layout.
    pub(crate) fn new(log_id: u128, first_lsn: Lsn, salt: u64, created_ms: u64) -> Self {
        Self {
            layout: Layout::CURRENT,
            log_id,
            first_lsn,
            salt,
            created_ms,
            prev_extent: 0,
            prev_seed: 0,
            prev_end: 0,
            prev_version: 0,
            generation: 0,
        }
    }

    /// The layout of a recycled file's earlier frames (version 2), if it is one.
    pub(crate) fn prev_layout(&self) -> Option<Layout> {
        match self.layout {
            Layout::V1 => None,
            Layout::V2 => Layout::of(self.prev_version).filter(|_| self.prev_seed != 0),
        }
    }

    /// The length of this header: where the segment's first frame starts.
    pub(crate) fn len(&self) -> u64 {
        self.layout.segment_header_len() as u64
    }

    /// Where a recycled file's earlier contents end, in bytes (0 for a new file).
    pub(crate) fn prev_extent_bytes(&self) -> u64 {
        match self.layout {
            Layout::V1 => u64::from(self.prev_extent) * EXTENT_UNIT,
            Layout::V2 => self.prev_end,
        }
    }

    /// A header of `layout` for tests, for a file whose earlier contents reach `prev_bytes`.
    #[cfg(test)]
    pub(crate) fn for_test(
        layout: Layout,
        log_id: u128,
        first: Lsn,
        salt: u64,
        prev_bytes: u64,
    ) -> Self {
        let mut h = Self::new(log_id, first, salt, 0);
        h.layout = layout;
        match layout {
            Layout::V1 => {
                h.prev_extent = u32::try_from(prev_bytes.div_ceil(EXTENT_UNIT)).unwrap_or(u32::MAX);
            }
            // The earlier life's frames are salted with the next salt (see the scan's tests).
            Layout::V2 if prev_bytes > 0 => {
                h.prev_end = prev_bytes;
                h.prev_seed = seed_of(log_id, salt ^ 1);
                h.prev_version = 2;
            }
            Layout::V2 => {}
        }
        h
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let len = self.layout.segment_header_len();
        let mut b = vec![0u8; len];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&self.layout.version().to_le_bytes());
        b[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        b[16..32].copy_from_slice(&self.log_id.to_le_bytes());
        b[32..40].copy_from_slice(&self.first_lsn.get().to_le_bytes());
        b[40..48].copy_from_slice(&self.salt.to_le_bytes());
        b[48..56].copy_from_slice(&self.created_ms.to_le_bytes());
        match self.layout {
            Layout::V1 => b[56..60].copy_from_slice(&self.prev_extent.to_le_bytes()),
            Layout::V2 => {
                b[56..60].copy_from_slice(&self.prev_seed.to_le_bytes());
                b[60..64].copy_from_slice(&self.prev_version.to_le_bytes());
                b[64..72].copy_from_slice(&self.generation.to_le_bytes());
                b[72..80].copy_from_slice(&self.prev_end.to_le_bytes());
            }
        }
        let crc = crc32c::crc32c(&b[..len - 4]);
        b[len - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, CorruptionKind> {
        const V1_LEN: usize = Layout::V1.segment_header_len();
        if b.len() < V1_LEN {
            return Err(CorruptionKind::TruncatedHeader {
                len: b.len() as u64,
            });
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(CorruptionKind::BadMagic);
        }
        let (version, header_len) = (u32_at(b, 8), u32_at(b, 12));
        // The checksum ends the header, whose length the header names.
        let named = usize::try_from(header_len).unwrap_or(usize::MAX);
        let checks = (V1_LEN..=b.len()).contains(&named)
            && crc32c::crc32c(&b[..named - 4]) == u32_at(b, named - 4);
        let layout = Layout::of(version).filter(|l| l.segment_header_len() == named);
        let Some(layout) = layout else {
            // A header of another version: refused as such if its checksum holds, or if
            // neither its version nor its length is one this build knows (another layout,
            // whose checksum cannot be found). One of these two fields flipped in a header
            // of a known layout is damage.
            let known_len = [Layout::V1, Layout::V2]
                .iter()
                .any(|l| l.segment_header_len() == named);
            if checks || (Layout::of(version).is_none() && !known_len) {
                check_version(version)?;
            }
            return Err(CorruptionKind::HeaderChecksum);
        };
        if b.len() < named {
            return Err(CorruptionKind::TruncatedHeader {
                len: b.len() as u64,
            });
        }
        if !checks {
            return Err(CorruptionKind::HeaderChecksum);
        }
        let mut header = Self {
            layout,
            log_id: u128_at(b, 16),
            first_lsn: Lsn::new(u64_at(b, 32)),
            salt: u64_at(b, 40),
            created_ms: u64_at(b, 48),
            prev_extent: 0,
            prev_seed: 0,
            prev_end: 0,
            prev_version: 0,
            generation: 0,
        };
        match layout {
            Layout::V1 => header.prev_extent = u32_at(b, 56),
            Layout::V2 => {
                header.prev_seed = u32_at(b, 56);
                header.prev_version = u32_at(b, 60);
                header.generation = u64_at(b, 64);
                header.prev_end = u64_at(b, 72);
            }
        }
        Ok(header)
    }

    /// The checksum seed of every frame in this segment.
    pub(crate) fn seed(&self) -> u32 {
        seed_of(self.log_id, self.salt)
    }
}

/// The frame checksum seed of a segment file of log `log_id` with salt `salt`.
pub(crate) fn seed_of(log_id: u128, salt: u64) -> u32 {
    let mut s = [0u8; 24];
    s[..16].copy_from_slice(&log_id.to_le_bytes());
    s[16..].copy_from_slice(&salt.to_le_bytes());
    crc32c::crc32c(&s)
}

/// The persisted checkpoint: records below `lsn` were dropped. Also the layout of the
/// retention floor's file, under its own magic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckpointFile {
    pub(crate) log_id: u128,
    pub(crate) lsn: Lsn,
    pub(crate) written_ms: u64,
    /// Version 2: how far the log was durable when the file was written (informational).
    pub(crate) durable: Lsn,
    /// Version 2: the log's timeline generation (0 today).
    pub(crate) generation: u64,
    /// Version 2: the user's metadata slot, at most [`MAX_METADATA_BYTES`].
    pub(crate) metadata: Vec<u8>,
}

/// The largest user metadata a checkpoint file holds.
pub const MAX_METADATA_BYTES: usize = 1024;
/// The length of a version 2 checkpoint file without its metadata.
const CHECKPOINT_V2_FIXED: usize = 72;

impl CheckpointFile {
    /// A checkpoint at `lsn` of log `log_id`, written now, with nothing else to say.
    pub(crate) fn at(log_id: u128, lsn: Lsn) -> Self {
        Self {
            log_id,
            lsn,
            written_ms: crate::now_ms(),
            durable: Lsn::ZERO,
            generation: 0,
            metadata: Vec::new(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        self.encode_as(CHECKPOINT_MAGIC)
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, CorruptionKind> {
        Self::decode_as(b, CHECKPOINT_MAGIC)
    }

    /// The version 2 layout under `magic` (the retention floor's file uses it too).
    pub(crate) fn encode_as(&self, magic: [u8; 8]) -> Vec<u8> {
        let meta = &self.metadata[..self.metadata.len().min(MAX_METADATA_BYTES)];
        let len = CHECKPOINT_V2_FIXED + meta.len();
        let mut b = vec![0u8; len];
        b[0..8].copy_from_slice(&magic);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        b[16..32].copy_from_slice(&self.log_id.to_le_bytes());
        b[32..40].copy_from_slice(&self.lsn.get().to_le_bytes());
        b[40..48].copy_from_slice(&self.written_ms.to_le_bytes());
        b[48..56].copy_from_slice(&self.durable.get().to_le_bytes());
        b[56..64].copy_from_slice(&self.generation.to_le_bytes());
        b[64..68].copy_from_slice(&(meta.len() as u32).to_le_bytes());
        b[68..68 + meta.len()].copy_from_slice(meta);
        let crc = crc32c::crc32c(&b[..len - 4]);
        b[len - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a file of either version under `magic`.
    pub(crate) fn decode_as(b: &[u8], magic: [u8; 8]) -> Result<Self, CorruptionKind> {
        let truncated = || CorruptionKind::TruncatedHeader {
            len: b.len() as u64,
        };
        // Shorter than the shortest file of any version.
        if b.len() < CHECKPOINT_LEN {
            return Err(truncated());
        }
        if b[0..8] != magic {
            return Err(CorruptionKind::BadMagic);
        }
        // The checksum ends the file, whose length version 2 and later name at offset 12.
        let holds = |n: usize| {
            (8..=b.len()).contains(&n) && crc32c::crc32c(&b[..n - 4]) == u32_at(b, n - 4)
        };
        match u32_at(b, 8) {
            1 => {
                if b.len() != CHECKPOINT_LEN {
                    return Err(truncated());
                }
                if !holds(CHECKPOINT_LEN) {
                    return Err(CorruptionKind::HeaderChecksum);
                }
                Ok(Self {
                    log_id: u128_at(b, 16),
                    lsn: Lsn::new(u64_at(b, 32)),
                    written_ms: u64_at(b, 40),
                    durable: Lsn::ZERO,
                    generation: 0,
                    metadata: Vec::new(),
                })
            }
            2 => {
                let named = usize::try_from(u32_at(b, 12)).unwrap_or(usize::MAX);
                if b.len() < CHECKPOINT_V2_FIXED {
                    return Err(truncated());
                }
                // The file is written whole and renamed into place: another length than the
                // one it names is damage.
                let meta = usize::try_from(u32_at(b, 64)).unwrap_or(usize::MAX);
                let fits = meta <= MAX_METADATA_BYTES && named == CHECKPOINT_V2_FIXED + meta;
                if named != b.len() || !fits || !holds(named) {
                    return Err(CorruptionKind::HeaderChecksum);
                }
                Ok(Self {
                    log_id: u128_at(b, 16),
                    lsn: Lsn::new(u64_at(b, 32)),
                    written_ms: u64_at(b, 40),
                    durable: Lsn::new(u64_at(b, 48)),
                    generation: u64_at(b, 56),
                    metadata: b[68..68 + meta].to_vec(),
                })
            }
            // Another version: refused as such if its checksum holds where its own length (or
            // version 1's) says, damage otherwise.
            found => {
                let named = usize::try_from(u32_at(b, 12)).unwrap_or(usize::MAX);
                if holds(named) || (b.len() == CHECKPOINT_LEN && holds(CHECKPOINT_LEN)) {
                    check_version(found)?;
                }
                Err(CorruptionKind::HeaderChecksum)
            }
        }
    }
}

/// What a frame says besides its payload, for encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameMeta {
    /// [`KIND_RECORD`], or a marker's kind.
    pub(crate) kind: u8,
    /// A record's LSN; for a marker, the LSN the next record takes.
    pub(crate) lsn: Lsn,
    /// The LSN up to which the log was durable when the frame was encoded (recovery uses it
    /// to tell an unsynced tail from damage to durable records).
    pub(crate) durable_hint: Lsn,
    pub(crate) flags: u8,
    /// The wall-clock time of the batch's append, in milliseconds since the Unix epoch
    /// (version 2; version 1 frames have no field for it).
    pub(crate) timestamp_ms: u64,
}

/// Appends one record frame of `layout` to `buf`, its header encoded in place. The caller has
/// checked `payload.len()` against the maximum record size, which is below `u32::MAX`.
pub(crate) fn encode_frame(
    buf: &mut Vec<u8>,
    layout: Layout,
    seed: u32,
    meta: FrameMeta,
    payload: &[u8],
) {
    let n = layout.frame_header_len();
    let start = buf.len();
    buf.reserve(n + payload.len());
    // At a length known here, so the copy is inlined rather than a call.
    match layout {
        Layout::V1 => buf.extend_from_slice(&[0u8; Layout::V1.frame_header_len()]),
        Layout::V2 => buf.extend_from_slice(&[0u8; Layout::V2.frame_header_len()]),
    }
    fill_header(&mut buf[start..], layout, meta, payload.len());
    buf.extend_from_slice(payload);
    // The header after its checksum field and the payload, in one piece.
    let crc = crc::crc32c_append(seed, &buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Writes every field of a frame header of `layout` but its checksum into `h`.
fn fill_header(h: &mut [u8], layout: Layout, meta: FrameMeta, payload_len: usize) {
    let FrameMeta {
        kind,
        lsn,
        durable_hint,
        flags,
        timestamp_ms,
    } = meta;
    let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    let lag = lsn
        .get()
        .checked_sub(durable_hint.get())
        .and_then(|lag| u32::try_from(lag).ok())
        .filter(|&lag| lag != LAG_UNKNOWN)
        .unwrap_or(LAG_UNKNOWN);
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8..16].copy_from_slice(&lsn.get().to_le_bytes());
    h[16] = kind;
    h[17] = flags;
    h[20..24].copy_from_slice(&lag.to_le_bytes());
    if layout == Layout::V2 {
        h[24..32].copy_from_slice(&timestamp_ms.to_le_bytes());
    }
}

/// An encoded frame header: the first `len` bytes of `bytes`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodedHeader {
    bytes: [u8; MAX_FRAME_HEADER_LEN],
    len: usize,
}

impl std::ops::Deref for EncodedHeader {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The payload of a seal: the first and last LSN of the sealed segment's records and the times
/// of their first and last batch.
pub(crate) fn seal_payload(first: Lsn, last: Lsn, first_ms: u64, last_ms: u64) -> [u8; SEAL_LEN] {
    let mut p = [0u8; SEAL_LEN];
    p[0..8].copy_from_slice(&first.get().to_le_bytes());
    p[8..16].copy_from_slice(&last.get().to_le_bytes());
    p[16..24].copy_from_slice(&first_ms.to_le_bytes());
    p[24..32].copy_from_slice(&last_ms.to_le_bytes());
    p
}

/// The first and last LSN and batch time of a seal's payload, or `None` if it is not 32 bytes
/// long.
pub(crate) fn decode_seal(p: &[u8]) -> Option<(Lsn, Lsn, u64, u64)> {
    if p.len() != SEAL_LEN {
        return None;
    }
    Some((
        Lsn::new(u64_at(p, 0)),
        Lsn::new(u64_at(p, 8)),
        u64_at(p, 16),
        u64_at(p, 24),
    ))
}

/// Encodes a record frame of `layout` with time 0, for tests.
#[cfg(test)]
pub(crate) fn encode_test_frame(
    buf: &mut Vec<u8>,
    layout: Layout,
    seed: u32,
    (lsn, durable_hint): (Lsn, Lsn),
    payload: &[u8],
    flags: u8,
) {
    let meta = FrameMeta {
        kind: KIND_RECORD,
        lsn,
        durable_hint,
        flags,
        timestamp_ms: 0,
    };
    encode_frame(buf, layout, seed, meta, payload);
}

/// The longest frame header of any version.
pub(crate) const MAX_FRAME_HEADER_LEN: usize = Layout::V2.frame_header_len();

/// The header of the frame of `layout` holding `payload`, checksum included, so the payload
/// can be written from where it is, without a copy.
pub(crate) fn frame_header(
    layout: Layout,
    seed: u32,
    meta: FrameMeta,
    payload: &[u8],
) -> EncodedHeader {
    let n = layout.frame_header_len();
    let mut h = [0u8; MAX_FRAME_HEADER_LEN];
    fill_header(&mut h, layout, meta, payload.len());
    let crc = crc::crc32c_append(crc::crc32c_append(seed, &h[4..n]), payload);
    h[0..4].copy_from_slice(&crc.to_le_bytes());
    EncodedHeader { bytes: h, len: n }
}

/// The decoded header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// [`KIND_RECORD`] or [`KIND_SYNC`].
    pub(crate) kind: u8,
    pub(crate) crc: u32,
    pub(crate) len: u32,
    pub(crate) lsn: Lsn,
    pub(crate) flags: u8,
    /// The durable hint: the log was durable up to this LSN when the frame was written (a
    /// lower bound; on disk as `durable_lag`).
    pub(crate) durable_hint: Lsn,
    /// The batch's time (version 2), or `None` (version 1).
    pub(crate) timestamp_ms: Option<u64>,
    /// The length of this header (that of its layout).
    header_len: u8,
}

impl FrameHeader {
    /// Parses a frame header of `layout`; `None` if its fixed fields are not those of a valid
    /// frame (or `b` is shorter than the header).
    pub(crate) fn parse(b: &[u8], layout: Layout) -> Option<Self> {
        let n = layout.frame_header_len();
        let b = b.get(..n)?;
        let len = u32_at(b, 4);
        let lsn = Lsn::new(u64_at(b, 8));
        let kind = b[16];
        let marker = (kind == KIND_SYNC || kind == KIND_SEAL) && layout == Layout::V2;
        if !(kind == KIND_RECORD || marker) || b[17] & !KNOWN_FLAGS != 0 || b[18] != 0 || b[19] != 0
        {
            return None;
        }
        if len > MAX_RECORD_BYTES_LIMIT || lsn == Lsn::ZERO {
            return None;
        }
        // A marker belongs to no batch; a sync marker carries nothing, a seal its 32 bytes.
        let marker_len = if kind == KIND_SEAL {
            SEAL_LEN as u32
        } else {
            0
        };
        if marker && (b[17] != 0 || len != marker_len) {
            return None;
        }
        let durable_hint = match u32_at(b, 20) {
            LAG_UNKNOWN => Lsn::ZERO,
            lag => Lsn::new(lsn.get().saturating_sub(u64::from(lag))),
        };
        Some(Self {
            kind,
            crc: u32_at(b, 0),
            len,
            lsn,
            flags: b[17],
            durable_hint,
            timestamp_ms: (layout == Layout::V2).then(|| u64_at(b, 24)),
            header_len: n as u8,
        })
    }

    /// Whether the frame holds a user record (not a marker).
    pub(crate) fn is_record(&self) -> bool {
        self.kind == KIND_RECORD
    }

    /// Whether the frame is a seal.
    pub(crate) fn is_seal(&self) -> bool {
        self.kind == KIND_SEAL
    }

    /// The length of the header: where the payload starts in the frame.
    pub(crate) fn header_len(&self) -> u64 {
        u64::from(self.header_len)
    }

    pub(crate) fn batch_end(&self) -> bool {
        self.flags & FLAG_BATCH_END != 0
    }

    pub(crate) fn batch_start(&self) -> bool {
        self.flags & FLAG_BATCH_START != 0
    }

    pub(crate) fn frame_len(&self) -> u64 {
        self.header_len() + u64::from(self.len)
    }

    /// The checksum of `frame` (header and payload) under `seed`.
    pub(crate) fn checksum(seed: u32, frame: &[u8]) -> u32 {
        crc::crc32c_append(seed, &frame[4..])
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
