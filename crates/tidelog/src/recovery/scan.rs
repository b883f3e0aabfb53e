//! The scan of a segment's frames at open: one forward pass over the file, read in chunks.
//!
//! Memory is one chunk, whatever the size of the segment or of its frames: the record limit
//! plus a frame header (so a frame of the largest record the log takes is checked from one
//! read), at least 4 KiB and at most 256 KiB. A frame larger than a chunk is checksummed piece
//! by piece; its payload is never needed here.
//!
//! Damage found on the way is handed to [`judge`] with the facts it needs. The one fact that
//! lies ahead of the damage is whether an intact frame after it proves that the records it
//! destroyed were durable:
//!
//! - In the modes other than `SkipCorrupt` the scan ends at the first damage, so it reads on
//!   from there once, to the end of the file, looking at every byte offset for intact frames.
//! - `SkipCorrupt` goes on reading past damage anyway, so it learns that fact on the way: the
//!   search for the next intact frame starts at the damage and goes forward, and the whole
//!   segment is read once however many damaged places it holds. Damage in the last segment
//!   that nothing has proven yet is skipped *on probation*: the state of the pass there is
//!   kept, and a frame met later that the search from that damage would take, written when the
//!   log was durable past it, proves it. Damage still on probation at the end of the segment is
//!   looked at as the other modes look at it (every intact frame after it); the first that
//!   nothing proves is where the pass returns to, and where the segment is cut: the unsynced
//!   tail begins there. So the decisions are those of a scan that read the rest of the segment
//!   at every damaged place.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::format::{FrameHeader, KIND_RECORD, KIND_SEAL, KIND_SYNC, Layout, MAX_FRAME_HEADER_LEN};
use crate::io::StorageFile;
use crate::options::RecoveryMode;
use crate::segment::{Segment, SegmentFile};
use crate::types::Lsn;

use super::report::{Damage, DamageAction};
use super::rules::{DamageFacts, Later, Place, Verdict, judge};

/// The largest read of a scan.
const MAX_CHUNK: usize = 256 << 10;
/// The smallest read of a scan (for logs with a tiny record limit).
const MIN_CHUNK: usize = 4 << 10;
/// Where a frame header holds its kind byte (format.md, 2.2): a frame can only start 16 bytes
/// before a byte holding the record kind.
const KIND_OFFSET: usize = 16;

/// The size of the reads of a scan for a log whose records hold at most `max_record_bytes`.
pub(super) fn chunk_for(max_record_bytes: u32) -> usize {
    usize::try_from(max_record_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(MAX_FRAME_HEADER_LEN)
        .clamp(MIN_CHUNK, MAX_CHUNK)
}

/// Where a scan stopped, and what to do about the damage there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stop {
    pub(super) offset: u64,
    /// Where a cut would go: the damage, or the start of the incomplete batch before it.
    pub(super) cut: u64,
    pub(super) kind: CorruptionKind,
    pub(super) verdict: Verdict,
    /// Intact frames found after the damage (they go with a cut).
    pub(super) intact_after: u64,
    /// Where the last of them ends (0 if there is none): the data a cut moves to quarantine
    /// reaches at least that far, even if those frames end in zeros.
    pub(super) intact_end: u64,
}

/// What the scan of a segment found.
#[derive(Debug)]
pub(super) struct Scanned {
    pub(super) segment: Segment,
    /// Complete records found.
    pub(super) records: u64,
    /// Runs of consecutive LSNs found, in order.
    pub(super) runs: Vec<(Lsn, Lsn)>,
    /// Damage skipped over (`SkipCorrupt`), in order.
    pub(super) skipped: Vec<Damage>,
    /// The damage the scan stopped at, if any.
    pub(super) stop: Option<Stop>,
}

/// Scans every frame of a segment `len` bytes long, reading `chunk` bytes at a time. Stops at
/// the first damage, except where `mode` skips over it.
pub(super) fn scan(
    file: SegmentFile,
    len: u64,
    is_last: bool,
    mode: RecoveryMode,
    chunk: usize,
) -> Result<Scanned> {
    let segment = Segment::new(file);
    let file = Arc::clone(&segment.file);
    let seed = file.seed;
    let skip = mode == RecoveryMode::SkipCorrupt;
    let mut chunks = Chunks::new(file.io()?, file.layout(), len, chunk);
    // A recycled file's earlier contents end at its `prev_extent`: anything but zeros after
    // that is no earlier life's, and the file's data cannot end before it (an end there would
    // move once appends passed the extent).
    let old_extent = match file.header.prev_extent_bytes() {
        extent if extent > 0 && len > extent && is_last => {
            if data_end(chunks.file, extent, len, chunk).at("read", &file.path)? > extent {
                0
            } else {
                extent
            }
        }
        extent => extent,
    };
    let mut pass = Pass {
        expected: segment.first_lsn(),
        segment,
        batch: None,
        records: 0,
        runs: Vec::new(),
        skipped: Vec::new(),
        sealed: false,
    };
    let path = &file.path;
    let mut at = file.data_start();
    // Damage skipped on probation, oldest first.
    let mut probation: VecDeque<Probation> = VecDeque::new();
    let stop = loop {
        // The damage, and where an intact frame after it can first start.
        let (kind, from) = match chunks.frame(seed, at).at("read", path)? {
            Found::Frame(header) => {
                probation.retain(|p| !p.proven_by(at, &header));
                match pass.take(at, &header, skip) {
                    Ok(()) => {
                        at += header.frame_len();
                        continue;
                    }
                    Err(kind) => (kind, Some(at + 1)),
                }
            }
            Found::End => match pass.batch {
                None => break None,
                Some((_, first)) => (CorruptionKind::IncompleteBatch { first }, None),
            },
            // No frame starts where its kind byte would be one of the zeros.
            Found::Zeros { nonzero } => (
                CorruptionKind::ZeroedRegion,
                Some((at + 1).max(nonzero.saturating_sub(KIND_OFFSET as u64))),
            ),
            Found::Damage(kind) => (kind, Some(at + 1)),
        };
        let offset = at;
        let base = offset + 1;
        let cut = pass.batch.map_or(offset, |(start, _)| start);
        let in_old_extent = cut < old_extent;
        let facts = |later, old_extent| DamageFacts {
            place: Place::Frames,
            last_segment: is_last,
            misplaced: matches!(
                kind,
                CorruptionKind::LsnMismatch { .. } | CorruptionKind::BatchFraming
            ),
            later,
            in_batch: pass.batch.is_some(),
            old_extent,
        };
        // Every intact frame after the damage, read to the end of the file.
        let after = |chunks: &mut Chunks<'_>, from| {
            let after = chunks
                .walk(seed, base, pass.expected, from)
                .at("read", path)?;
            let later = match after {
                None => Later::Nothing,
                Some(a) if a.durable_hint > pass.segment.last_lsn => Later::Durable,
                Some(_) => Later::Intact,
            };
            Ok::<_, Error>((
                after.map(|a| a.offset),
                later,
                after.map_or((0, 0), |a| (a.frames, a.end)),
            ))
        };
        let mut on_probation = None;
        let (next, later, intact_after) = match from {
            None => (None, Later::Nothing, (0, 0)),
            Some(from) if !skip => after(&mut chunks, from)?,
            Some(from) => match chunks
                .next_intact(seed, base, pass.expected, from)
                .at("read", path)?
            {
                None => (None, Later::Nothing, (0, 0)),
                // Going on past the damage if it is proven, the pass meets the frames that
                // could prove it: it learns on the way whether one does.
                Some((next, _))
                    if judge(facts(Later::Durable, in_old_extent), mode) == Verdict::Skip =>
                {
                    let unproven = judge(facts(Later::Intact, in_old_extent), mode);
                    if unproven != Verdict::Skip {
                        on_probation = Some((from, unproven));
                    }
                    (Some(next), Later::Durable, (0, 0))
                }
                Some(_) => after(&mut chunks, from)?,
            },
        };
        let mut verdict = judge(facts(later, in_old_extent), mode);
        // The end of a recycled file's data has no frame of the current life after it, whatever
        // its LSN: an append at the end could make one follow on.
        if verdict == Verdict::EndOfData && chunks.any_intact(seed, base).at("read", path)? {
            verdict = judge(facts(later, false), mode);
        }
        // In format version 2 the earlier life is known by what it is, not by where it lies.
        if verdict == Verdict::EndOfData
            && file.layout() == Layout::V2
            && !earlier_life(&file, len, chunk, cut, pass.expected).at("read", path)?
        {
            verdict = judge(facts(later, false), mode);
        }
        match (verdict, next) {
            (Verdict::Skip, Some(resume)) => {
                if let Some((from, verdict)) = on_probation {
                    probation.push_back(Probation {
                        mark: pass.mark(),
                        base,
                        from,
                        expected: pass.expected,
                        stop: Stop {
                            offset,
                            cut,
                            kind: kind.clone(),
                            verdict,
                            intact_after: 0,
                            intact_end: 0,
                        },
                    });
                }
                pass.skip(path, cut, resume, kind);
                at = resume;
            }
            (Verdict::EndOfData, _) => break None,
            (verdict, _) => {
                break Some(Stop {
                    offset,
                    cut,
                    kind,
                    verdict,
                    intact_after: intact_after.0,
                    intact_end: intact_after.1,
                });
            }
        }
    };
    // Damage still on probation: every intact frame after it is looked at, as if the pass had
    // stopped there. The first damage nothing proves is where the unsynced tail begins.
    let mut stop = stop;
    while let Some(p) = probation.pop_front() {
        let after = chunks
            .walk(seed, p.base, p.expected, p.from)
            .at("read", path)?;
        if after.is_some_and(|a| a.durable_hint > p.mark.last_lsn) {
            continue;
        }
        pass.rollback(p.mark);
        stop = Some(Stop {
            intact_after: after.map_or(0, |a| a.frames),
            intact_end: after.map_or(0, |a| a.end),
            ..p.stop
        });
        break;
    }
    Ok(Scanned {
        segment: pass.segment,
        records: pass.records,
        runs: pass.runs,
        skipped: pass.skipped,
        stop,
    })
}

/// Whether the bytes of a recycled segment `len` bytes long, from `cut` on, are positively
/// the earlier life's (format version 2, format.md 2.3): no frame header of the current life
/// carrying `expected`, the LSN due there, stands at `cut`, and the earlier frames after `cut`
/// (which verify under the earlier seed) follow one another up to where the earlier data ended.
/// Where no earlier frame starts after `cut`, `cut` lies in the earlier data's last frame.
fn earlier_life(
    file: &SegmentFile,
    len: u64,
    chunk: usize,
    cut: u64,
    expected: Lsn,
) -> io::Result<bool> {
    let header = &file.header;
    let (Some(prev), Some(io)) = (header.prev_layout(), file.handle()) else {
        return Ok(false);
    };
    let layout = file.layout();
    let mut current = Chunks::new(io, layout, len, chunk);
    let head = current.bytes(cut, layout.frame_header_len())?;
    if FrameHeader::parse(head, layout).is_some_and(|h| h.lsn == expected) {
        return Ok(false);
    }
    let (seed, end) = (header.prev_seed, header.prev_end.min(len));
    let mut old = Chunks::new(io, prev, len, chunk);
    let Some((mut at, _)) = old.next_intact_where(seed, cut, |at, _| at < end)? else {
        return Ok(true);
    };
    while at < end {
        match old.frame(seed, at)? {
            Found::Frame(h) => at += h.frame_len(),
            _ => return Ok(false),
        }
    }
    Ok(at == end)
}

/// Where the data in `from..len` of a file ends: after its last non-zero byte, or at `from` if
/// every byte there is zero. Reads backwards from `len` and stops at the data, in pieces that
/// start small (the data usually runs to the end) and double up to `chunk` (over a preallocated
/// file's zeros).
pub(super) fn data_end(
    file: &dyn StorageFile,
    from: u64,
    len: u64,
    chunk: usize,
) -> io::Result<u64> {
    let mut buf = Vec::new();
    let mut piece = MIN_CHUNK.min(chunk);
    let mut end = len;
    while end > from {
        let n = bounded(end - from, piece);
        buf.resize(n, 0);
        let start = end - n as u64;
        let got = file.read_full_at(&mut buf, start)?;
        if let Some(i) = buf[..got].iter().rposition(|&b| b != 0) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
        piece = piece.saturating_mul(2).min(chunk);
    }
    Ok(from)
}

/// `n`, but at most `limit`.
fn bounded(n: u64, limit: usize) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).min(limit)
}

/// Reads a file forward through one buffer of at most a chunk.
struct Chunks<'a> {
    file: &'a dyn StorageFile,
    /// The layout of the segment's frames.
    layout: Layout,
    /// The length of the file when the scan began: nothing after it is read.
    len: u64,
    chunk: usize,
    buf: Vec<u8>,
    /// The offset of `buf[0]` in the file.
    start: u64,
}

/// What a scan finds at an offset (as [`crate::format::FrameCursor`] classifies it).
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// An intact frame.
    Frame(FrameHeader),
    /// Nothing more: the end of the file, or zeros up to the end of it.
    End,
    /// Zeros where a frame header should be, and a non-zero byte at `nonzero`.
    Zeros { nonzero: u64 },
    /// Bytes that are not a valid frame.
    Damage(CorruptionKind),
}

/// Intact frames after damage.
#[derive(Debug, Clone, Copy)]
struct IntactAfter {
    /// Offset of the first one.
    offset: u64,
    /// The highest durable hint among them.
    durable_hint: Lsn,
    /// How many there are.
    frames: u64,
    /// Where the last one ends.
    end: u64,
}

impl<'a> Chunks<'a> {
    fn new(file: &'a dyn StorageFile, layout: Layout, len: u64, chunk: usize) -> Self {
        Self {
            file,
            layout,
            len,
            chunk: chunk.max(MAX_FRAME_HEADER_LEN),
            buf: Vec::new(),
            start: 0,
        }
    }

    /// The bytes from `at` on that the buffer holds, at least `want` of them (or a chunk, if
    /// less, or what is left of the file): the buffer is filled anew from `at` if it holds
    /// fewer.
    fn bytes(&mut self, at: u64, want: usize) -> io::Result<&[u8]> {
        let left = self.len.saturating_sub(at);
        let want = (want.min(self.chunk) as u64).min(left);
        let end = self.start + self.buf.len() as u64;
        if at < self.start || at > end || end - at < want {
            self.buf.resize(bounded(left, self.chunk), 0);
            let got = self.file.read_full_at(&mut self.buf, at)?;
            self.buf.truncate(got);
            self.start = at;
        }
        let from = bounded(at - self.start, usize::MAX);
        Ok(self.buf.get(from..).unwrap_or_default())
    }

    /// What is at `at`, read as a frame checksummed with `seed`.
    fn frame(&mut self, seed: u32, at: u64) -> io::Result<Found> {
        let left = self.len.saturating_sub(at);
        if left == 0 {
            return Ok(Found::End);
        }
        let (layout, header_len) = (self.layout, self.layout.frame_header_len());
        let bytes = self.bytes(at, header_len)?;
        let head = &bytes[..bytes.len().min(header_len)];
        if head.iter().all(|&b| b == 0) {
            return Ok(match self.nonzero_from(at)? {
                None => Found::End,
                Some(nonzero) => Found::Zeros { nonzero },
            });
        }
        if head.len() < header_len {
            return Ok(Found::Damage(CorruptionKind::TruncatedFrame {
                needed: header_len as u64,
                available: left,
            }));
        }
        let Some(header) = FrameHeader::parse(head, layout) else {
            return Ok(Found::Damage(CorruptionKind::BadFrameHeader));
        };
        if header.frame_len() > left {
            return Ok(Found::Damage(CorruptionKind::TruncatedFrame {
                needed: header.frame_len(),
                available: left,
            }));
        }
        let computed = self.checksum(seed, at, &header)?;
        if computed != header.crc {
            return Ok(Found::Damage(CorruptionKind::FrameChecksum {
                stored: header.crc,
                computed,
            }));
        }
        Ok(Found::Frame(header))
    }

    /// The checksum of the frame at `at` under `seed`, computed piece by piece.
    fn checksum(&mut self, seed: u32, at: u64, header: &FrameHeader) -> io::Result<u32> {
        let end = at.saturating_add(header.frame_len()).min(self.len);
        // The checksum covers the frame from its length field on.
        let mut crc = seed;
        let mut pos = at + 4;
        while pos < end {
            let bytes = self.bytes(pos, 1)?;
            let piece = &bytes[..bounded(end - pos, bytes.len())];
            if piece.is_empty() {
                break;
            }
            crc = crate::format::crc32c_append(crc, piece);
            pos += piece.len() as u64;
        }
        Ok(crc)
    }

    /// The offset of the first non-zero byte from `from` on, if there is one.
    fn nonzero_from(&mut self, from: u64) -> io::Result<Option<u64>> {
        let mut pos = from;
        while pos < self.len {
            let bytes = self.bytes(pos, 1)?;
            if bytes.is_empty() {
                break;
            }
            if let Some(i) = bytes.iter().position(|&b| b != 0) {
                return Ok(Some(pos + i as u64));
            }
            pos += bytes.len() as u64;
        }
        Ok(None)
    }

    /// The first intact frame under `seed` that starts at or after `from` and whose LSN could
    /// follow damage just before `base` where `min_lsn` was expected: at least `min_lsn`, and
    /// higher by at most one per frame header that fits between `base` and the frame.
    fn next_intact(
        &mut self,
        seed: u32,
        base: u64,
        min_lsn: Lsn,
        from: u64,
    ) -> io::Result<Option<(u64, FrameHeader)>> {
        let header_len = self.layout.frame_header_len();
        self.next_intact_where(seed, from, |at, lsn| {
            plausible(header_len, base, min_lsn, at, lsn)
        })
    }

    /// Whether any intact frame under `seed`, whatever its LSN, starts at or after `from`.
    fn any_intact(&mut self, seed: u32, from: u64) -> io::Result<bool> {
        Ok(self.next_intact_where(seed, from, |_, _| true)?.is_some())
    }

    /// The first intact frame under `seed` that starts at or after `from` and whose offset and
    /// LSN `accept` takes.
    fn next_intact_where(
        &mut self,
        seed: u32,
        from: u64,
        accept: impl Fn(u64, Lsn) -> bool,
    ) -> io::Result<Option<(u64, FrameHeader)>> {
        let len = self.len;
        let mut at = from;
        let (layout, header_len) = (self.layout, self.layout.frame_header_len());
        while len.saturating_sub(at) >= header_len as u64 {
            let bytes = self.bytes(at, header_len)?;
            if bytes.len() < header_len {
                break;
            }
            // Only where the kind byte of a record (or a marker) is can a frame start.
            let starts = bytes.len() - header_len + 1;
            let kinds = &bytes[KIND_OFFSET..KIND_OFFSET + starts];
            let marker = |b: u8| layout == Layout::V2 && (b == KIND_SYNC || b == KIND_SEAL);
            let Some(i) = kinds.iter().position(|&b| b == KIND_RECORD || marker(b)) else {
                at += starts as u64;
                continue;
            };
            let candidate = at + i as u64;
            let header = FrameHeader::parse(&bytes[i..], layout)
                .filter(|h| accept(candidate, h.lsn) && h.frame_len() <= len - candidate);
            if let Some(header) = header
                && self.checksum(seed, candidate, &header)? == header.crc
            {
                return Ok(Some((candidate, header)));
            }
            at = candidate + 1;
        }
        Ok(None)
    }

    /// Every intact frame after damage just before `base` where `min_lsn` was expected, up to
    /// the end of the file: looking at every byte offset from `from` on (`from` is `base`, or
    /// later where the bytes in between cannot start a frame), and stepping over each frame
    /// found.
    fn walk(
        &mut self,
        seed: u32,
        base: u64,
        min_lsn: Lsn,
        from: u64,
    ) -> io::Result<Option<IntactAfter>> {
        let mut found: Option<IntactAfter> = None;
        let mut at = from;
        while let Some((offset, header)) = self.next_intact(seed, base, min_lsn, at)? {
            let after = found.get_or_insert(IntactAfter {
                offset,
                durable_hint: Lsn::ZERO,
                frames: 0,
                end: 0,
            });
            after.durable_hint = after.durable_hint.max(header.durable_hint);
            after.frames += 1;
            after.end = offset + header.frame_len();
            at = offset + header.frame_len();
        }
        Ok(found)
    }
}

/// Whether an intact frame at `at` carrying `lsn` can follow damage just before `base` where
/// `min_lsn` was expected: its LSN is at least `min_lsn`, and higher by at most one per frame
/// header that fits between `base` and it.
fn plausible(header_len: usize, base: u64, min_lsn: Lsn, at: u64, lsn: Lsn) -> bool {
    let frames = at.saturating_sub(base) / header_len as u64;
    lsn >= min_lsn && lsn.get() <= min_lsn.get().saturating_add(frames + 1)
}

/// The state of a scan that a return to an earlier point restores.
struct Pass {
    segment: Segment,
    /// The LSN the next frame should carry.
    expected: Lsn,
    /// The batch being read: its first frame's offset and LSN.
    batch: Option<(u64, Lsn)>,
    records: u64,
    runs: Vec<(Lsn, Lsn)>,
    skipped: Vec<Damage>,
    /// A seal was read: the segment ends there.
    sealed: bool,
}

/// The state of a pass at a damaged place. Until a return to it, vectors only grow or change
/// their last element, so their length and last element are enough to restore them.
struct Mark {
    last_lsn: Lsn,
    end: u64,
    sealed: bool,
    records: u64,
    runs: (usize, Option<(Lsn, Lsn)>),
    skips: (usize, Option<(u64, u64)>),
    skipped: (usize, Option<Damage>),
}

/// Damage skipped before anything proved it: if nothing does by the end of the segment, the
/// scan stops there after all.
struct Probation {
    mark: Mark,
    /// Just after the damage: the search for intact frames after it counts from there.
    base: u64,
    /// Where a frame can first start from `base` on.
    from: u64,
    /// The LSN expected at the damage.
    expected: Lsn,
    stop: Stop,
}

impl Probation {
    /// Whether the intact frame at `at` proves the damage: the search for intact frames after
    /// the damage takes it, and it was written when the log was durable past the last complete
    /// batch before the damage.
    fn proven_by(&self, at: u64, header: &FrameHeader) -> bool {
        plausible(
            header.header_len() as usize,
            self.base,
            self.expected,
            at,
            header.lsn,
        ) && header.durable_hint > self.mark.last_lsn
    }
}

fn top<T: Clone>(v: &[T]) -> (usize, Option<T>) {
    (v.len(), v.last().cloned())
}

fn restore<T>(v: &mut Vec<T>, (len, last): (usize, Option<T>)) {
    v.truncate(len);
    if let (Some(slot), Some(last)) = (v.last_mut(), last) {
        *slot = last;
    }
}

impl Pass {
    /// Takes the intact frame at `offset` if it is where it belongs; otherwise says what is
    /// wrong with it. Only `SkipCorrupt` (`skip`) takes a jump forward in LSNs between batches.
    fn take(
        &mut self,
        offset: u64,
        header: &FrameHeader,
        skip: bool,
    ) -> std::result::Result<(), CorruptionKind> {
        let gap_ok = skip && self.batch.is_none() && header.lsn > self.expected;
        if header.lsn != self.expected && !gap_ok {
            return Err(CorruptionKind::LsnMismatch {
                expected: self.expected,
                found: header.lsn,
            });
        }
        // A seal ends its segment: nothing follows it.
        if self.sealed {
            return Err(CorruptionKind::BatchFraming);
        }
        if !header.is_record() {
            // A marker stands between batches, and carries the LSN the next record takes.
            if self.batch.is_some() {
                return Err(CorruptionKind::BatchFraming);
            }
            self.sealed = header.is_seal();
            self.segment.sealed = self.sealed;
            // Past a gap (`SkipCorrupt`), the marker says where the lost records end: the
            // next record takes its LSN.
            self.expected = header.lsn;
            self.segment.last_lsn = self.segment.last_lsn.max(header.lsn.prev());
            self.segment.end = offset + header.frame_len();
            self.segment.last_frame = Some((offset, header.crc));
            return Ok(());
        }
        if header.batch_start() != self.batch.is_none() {
            return Err(CorruptionKind::BatchFraming);
        }
        let (start, first) = *self.batch.get_or_insert((offset, header.lsn));
        self.expected = header.lsn.next();
        if header.batch_end() {
            self.batch = None;
            self.segment.note_batch(first, start);
            self.segment.last_lsn = header.lsn;
            self.segment.end = offset + header.frame_len();
            let ms = header.timestamp_ms.unwrap_or(0);
            self.segment.max_ms = self.segment.max_ms.max(ms);
            if self.segment.min_ms == 0 {
                self.segment.min_ms = ms;
            }
            self.segment.last_frame = Some((offset, header.crc));
            self.records += header.lsn.get() - first.get() + 1;
            match self.runs.last_mut() {
                Some(run) if run.1.next() == first => run.1 = header.lsn,
                _ => self.runs.push((first, header.lsn)),
            }
        }
        Ok(())
    }

    /// Leaves the damaged bytes from `cut` to `resume` in place for readers to jump over.
    fn skip(&mut self, path: &Path, cut: u64, resume: u64, kind: CorruptionKind) {
        match self.segment.skips.last_mut() {
            Some(range) if range.1 == cut => range.1 = resume,
            _ => self.segment.skips.push((cut, resume)),
        }
        match self.skipped.last_mut() {
            Some(d) if d.action == (DamageAction::Skipped { to: cut }) => {
                d.action = DamageAction::Skipped { to: resume };
            }
            _ => self.skipped.push(Damage {
                path: path.to_path_buf(),
                offset: cut,
                kind,
                action: DamageAction::Skipped { to: resume },
            }),
        }
        self.batch = None;
    }

    fn mark(&self) -> Mark {
        Mark {
            last_lsn: self.segment.last_lsn,
            end: self.segment.end,
            sealed: self.sealed,
            records: self.records,
            runs: top(&self.runs),
            skips: top(&self.segment.skips),
            skipped: top(&self.skipped),
        }
    }

    /// Returns to the state of `mark`.
    fn rollback(&mut self, mark: Mark) {
        self.segment.last_lsn = mark.last_lsn;
        self.segment.end = mark.end;
        self.sealed = mark.sealed;
        self.segment.sealed = mark.sealed;
        // Batches taken since started after it.
        self.segment.forget_from(mark.end);
        self.records = mark.records;
        restore(&mut self.runs, mark.runs);
        restore(&mut self.segment.skips, mark.skips);
        restore(&mut self.skipped, mark.skipped);
    }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
