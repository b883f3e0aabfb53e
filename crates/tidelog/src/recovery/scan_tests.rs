//! Tests of `scan`, in a file of their own so the module reads as what it owns.

use super::*;

use std::path::PathBuf;

use crate::format::{
    FLAG_BATCH_END, FLAG_BATCH_START, FrameCursor, FrameMeta, SegmentHeader, Step, encode_frame,
    encode_test_frame, seal_payload,
};
use crate::io::{MemStorage, OpenMode, Storage};

use RecoveryMode::{PointInTime, SkipCorrupt, Strict, TolerateTornTail};

const MODES: [RecoveryMode; 4] = [Strict, TolerateTornTail, PointInTime, SkipCorrupt];

/// xorshift64: deterministic cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

fn header(layout: Layout, first: u64, salt: u64, prev_bytes: u64) -> SegmentHeader {
    SegmentHeader::for_test(layout, 0x5eed, Lsn::new(first), salt, prev_bytes)
}

/// A segment file holding `bytes`, opened as recovery opens it.
fn segment_file(bytes: &[u8], header: SegmentHeader) -> SegmentFile {
    let storage = MemStorage::new();
    storage.create_dir_all(Path::new("/log")).unwrap();
    let path = PathBuf::from("/log/seg");
    let file = storage.open(&path, OpenMode::Truncate).unwrap();
    file.write_all_at(bytes, 0).unwrap();
    SegmentFile::opened(path, header, file)
}

/// Frames of batches of one to three records from `first` on, with random payloads (some
/// larger than the chunks the tests read with); the log is synced now and then, and the
/// frames' durable hints say so. Returns the bytes and the offset of every frame.
fn frames(
    rng: &mut Rng,
    layout: Layout,
    seed: u32,
    first: u64,
    batches: usize,
) -> (Vec<u8>, Vec<usize>) {
    let (mut bytes, mut offsets) = (Vec::new(), Vec::new());
    let mut lsn = Lsn::new(first);
    let mut durable = lsn.prev();
    for _ in 0..batches {
        let size = 1 + rng.below(3);
        for k in 0..size {
            let mut flags = 0;
            if k == 0 {
                flags |= FLAG_BATCH_START;
            }
            if k + 1 == size {
                flags |= FLAG_BATCH_END;
            }
            let len = if rng.one_in(8) {
                rng.below(300)
            } else {
                rng.below(40)
            };
            let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            offsets.push(bytes.len());
            encode_test_frame(&mut bytes, layout, seed, (lsn, durable), &payload, flags);
            lsn = lsn.next();
        }
        if rng.one_in(3) {
            durable = lsn.prev();
        }
    }
    (bytes, offsets)
}

/// A segment of frames, damaged in random ways: frames removed, repeated or swapped,
/// frames of an earlier life of the file after the data, bytes flipped or zeroed, the file
/// cut short or extended with zeros or garbage.
fn damaged_segment(rng: &mut Rng) -> (Vec<u8>, SegmentHeader) {
    let layout = if rng.one_in(2) {
        Layout::V1
    } else {
        Layout::V2
    };
    let first = 1 + rng.below(50) as u64;
    let prev_bytes = if rng.one_in(4) {
        rng.below(40) as u64 * 256
    } else {
        0
    };
    let header = header(layout, first, rng.next(), prev_bytes);
    let header_len = layout.segment_header_len();
    let batches = rng.below(25);
    let (body, offsets) = frames(rng, layout, header.seed(), first, batches);
    let mut spans: Vec<Vec<u8>> = offsets
        .iter()
        .zip(offsets.iter().skip(1).chain([&body.len()]))
        .map(|(&a, &b)| body[a..b].to_vec())
        .collect();
    for _ in 0..rng.below(3) {
        if spans.len() < 2 {
            break;
        }
        let i = rng.below(spans.len());
        match rng.below(3) {
            0 => {
                spans.remove(i);
            }
            1 => {
                let copy = spans[i].clone();
                let j = rng.below(spans.len() + 1);
                spans.insert(j, copy);
            }
            _ => {
                let j = rng.below(spans.len());
                spans.swap(i, j);
            }
        }
    }
    let mut bytes = header.encode().to_vec();
    bytes.extend(spans.concat());
    if rng.one_in(4) {
        // What the file held before it was recycled: frames under another salt.
        let old = SegmentHeader {
            salt: header.salt ^ 1,
            ..header
        };
        let batches = rng.below(6);
        let (older, _) = frames(rng, layout, old.seed(), first, batches);
        let at = header_len + rng.below(bytes.len());
        bytes.resize(bytes.len().max(at + older.len()), 0);
        bytes[at..at + older.len()].copy_from_slice(&older);
    }
    for _ in 0..rng.below(4) {
        let len = bytes.len();
        let at = header_len + rng.below(len - header_len);
        match rng.below(5) {
            0 | 1 => {
                if at < len {
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            2 => {
                let end = (at + rng.below(80)).min(len);
                bytes[at.min(end)..end].fill(0);
            }
            3 => bytes.truncate(at.max(header_len)),
            _ => {
                let extra = rng.below(200);
                let garbage = rng.one_in(2);
                bytes.extend((0..extra).map(|_| if garbage { rng.next() as u8 } else { 0 }));
            }
        }
    }
    if rng.one_in(3) {
        // Preallocated zeros.
        bytes.resize(bytes.len() + rng.below(500), 0);
    }
    (bytes, header)
}

/// The scan as it was before it read in chunks: the rest of the file read at once at the
/// first damage, and read again at every damaged place `SkipCorrupt` skips.
fn scan_whole(file: SegmentFile, len: u64, is_last: bool, mode: RecoveryMode) -> Scanned {
    let skip = mode == SkipCorrupt;
    let mut pass = Pass {
        expected: file.first_lsn(),
        segment: Segment::new(file),
        batch: None,
        records: 0,
        runs: Vec::new(),
        skipped: Vec::new(),
        sealed: false,
    };
    let file = Arc::clone(&pass.segment.file);
    let io = file.io().unwrap();
    let layout = file.layout();
    let mut cursor = FrameCursor::new(layout, file.seed, len, file.data_start());
    let stop = loop {
        let step = cursor.step(io).unwrap();
        let at_end = matches!(step, Step::End);
        let (offset, kind) = match step {
            Step::Frame { offset, header } => match pass.take(offset, &header, skip) {
                Ok(()) => continue,
                Err(kind) => (offset, kind),
            },
            Step::End => match pass.batch {
                None => break None,
                Some((_, first)) => (cursor.position(), CorruptionKind::IncompleteBatch { first }),
            },
            Step::Zeros { offset } => (offset, CorruptionKind::ZeroedRegion),
            Step::Damage { offset, kind } => (offset, kind),
        };
        let cut = pass.batch.map_or(offset, |(start, _)| start);
        let after = if at_end {
            None
        } else {
            intact_after_whole(io, layout, file.seed, len, offset, pass.expected)
        };
        let facts = DamageFacts {
            place: Place::Frames,
            last_segment: is_last,
            misplaced: matches!(
                kind,
                CorruptionKind::LsnMismatch { .. } | CorruptionKind::BatchFraming
            ),
            later: match after {
                None => Later::Nothing,
                Some(a) if a.durable_hint > pass.segment.last_lsn => Later::Durable,
                Some(_) => Later::Intact,
            },
            in_batch: pass.batch.is_some(),
            // The end of a recycled file's earlier contents: nothing but zeros after its extent,
            // and no frame of the current life after the damage, whatever its LSN.
            old_extent: cut < file.header.prev_extent_bytes()
                && zeros_from(io, file.header.prev_extent_bytes(), len)
                && !any_intact_whole(io, layout, file.seed, len, offset)
                && (layout == Layout::V1
                    || earlier_life(&file, len, MAX_CHUNK, cut, pass.expected).unwrap()),
        };
        match (judge(facts, mode), after) {
            (Verdict::EndOfData, _) => break None,
            (Verdict::Skip, Some(after)) => {
                pass.skip(&file.path, cut, after.offset, kind);
                cursor.seek(after.offset);
            }
            (verdict, _) => {
                break Some(Stop {
                    offset,
                    cut,
                    kind,
                    verdict,
                    intact_after: after.map_or(0, |a| a.frames),
                    intact_end: after.map_or(0, |a| a.end),
                });
            }
        }
    };
    Scanned {
        segment: pass.segment,
        records: pass.records,
        runs: pass.runs,
        skipped: pass.skipped,
        stop,
    }
}

/// Whether every byte of `file` from `from` to `len` is zero.
fn zeros_from(file: &dyn StorageFile, from: u64, len: u64) -> bool {
    if from >= len {
        return true;
    }
    let mut rest = vec![0u8; (len - from) as usize];
    let got = file.read_full_at(&mut rest, from).unwrap();
    rest[..got].iter().all(|&b| b == 0)
}

/// Whether an intact frame under `seed`, whatever its LSN, starts after `from`.
fn any_intact_whole(
    file: &dyn StorageFile,
    layout: Layout,
    seed: u32,
    len: u64,
    from: u64,
) -> bool {
    let start = from + 1;
    if start >= len {
        return false;
    }
    let mut rest = vec![0u8; (len - start) as usize];
    let got = file.read_full_at(&mut rest, start).unwrap();
    rest.truncate(got);
    (0..rest.len()).any(|i| {
        FrameHeader::parse(&rest[i..], layout).is_some_and(|header| {
            rest.get(i..i + header.frame_len() as usize)
                .is_some_and(|frame| FrameHeader::checksum(seed, frame) == header.crc)
        })
    })
}

/// The intact frames after damage at `from`, found as they were before: the rest of the
/// file read at once, every byte offset tried.
fn intact_after_whole(
    file: &dyn StorageFile,
    layout: Layout,
    seed: u32,
    len: u64,
    from: u64,
    min_lsn: Lsn,
) -> Option<IntactAfter> {
    let start = from + 1;
    if start >= len {
        return None;
    }
    let mut rest = vec![0u8; (len - start) as usize];
    let got = file.read_full_at(&mut rest, start).unwrap();
    rest.truncate(got);
    let plausible = |i: usize, lsn: Lsn| {
        let frames = (i / layout.frame_header_len()) as u64;
        lsn >= min_lsn && lsn.get() <= min_lsn.get() + frames + 1
    };
    let intact_at = |i: usize| {
        let header = FrameHeader::parse(rest.get(i..)?, layout)?;
        let frame = rest.get(i..i + header.frame_len() as usize)?;
        (FrameHeader::checksum(seed, frame) == header.crc).then_some(header)
    };
    let mut found: Option<IntactAfter> = None;
    let mut i = 0;
    while i + layout.frame_header_len() <= rest.len() {
        match intact_at(i).filter(|h| plausible(i, h.lsn)) {
            Some(header) => {
                let first = found.get_or_insert(IntactAfter {
                    offset: start + i as u64,
                    durable_hint: Lsn::ZERO,
                    frames: 0,
                    end: 0,
                });
                first.durable_hint = first.durable_hint.max(header.durable_hint);
                first.frames += 1;
                first.end = start + (i + header.frame_len() as usize) as u64;
                i += header.frame_len() as usize;
            }
            None => i += 1,
        }
    }
    found
}

/// What a scan found, in a form to compare.
fn outcome(s: &Scanned) -> impl PartialEq + std::fmt::Debug {
    (
        (s.records, s.runs.clone(), s.skipped.clone(), s.stop.clone()),
        (s.segment.last_lsn, s.segment.end),
        (s.segment.index.clone(), s.segment.skips.clone()),
    )
}

#[test]
fn frames_hold_their_kind_where_the_search_looks_for_it() {
    for layout in [Layout::V1, Layout::V2] {
        let mut frame = Vec::new();
        let at = (Lsn::new(3), Lsn::ZERO);
        encode_test_frame(&mut frame, layout, 7, at, b"x", FLAG_BATCH_END);
        assert_eq!(frame[KIND_OFFSET], KIND_RECORD);
        assert!(FrameHeader::parse(&frame, layout).is_some());
    }
}

#[test]
fn reads_are_about_the_record_limit_within_bounds() {
    assert_eq!(chunk_for(64 << 10), (64 << 10) + MAX_FRAME_HEADER_LEN);
    assert_eq!(chunk_for(1), MIN_CHUNK);
    assert_eq!(chunk_for(crate::MAX_RECORD_BYTES_LIMIT), MAX_CHUNK);
}

/// Whatever a chunk's size, each offset reads as the frame cursor reads it.
#[test]
fn every_offset_reads_as_the_frame_cursor_reads_it() {
    let mut rng = Rng(0x0dd_ba11);
    for case in 0..300 {
        let (bytes, header) = damaged_segment(&mut rng);
        let file = segment_file(&bytes, header);
        let io = file.io().unwrap();
        let len = bytes.len() as u64;
        let layout = file.layout();
        for chunk in [layout.frame_header_len(), 61, 256, MIN_CHUNK] {
            let mut chunks = Chunks::new(io, layout, len, chunk);
            for at in file.data_start()..=len {
                let found = chunks.frame(file.seed, at).unwrap();
                let step = FrameCursor::new(layout, file.seed, len, at)
                    .step(io)
                    .unwrap();
                let same = match (&found, step) {
                    (Found::Frame(h), Step::Frame { header, .. }) => *h == header,
                    (Found::End, Step::End) => true,
                    (Found::Zeros { nonzero }, Step::Zeros { offset }) => {
                        *nonzero > offset
                            && bytes[offset as usize..*nonzero as usize]
                                .iter()
                                .all(|&b| b == 0)
                            && bytes[*nonzero as usize] != 0
                    }
                    (Found::Damage(k), Step::Damage { kind, .. }) => *k == kind,
                    _ => false,
                };
                assert!(same, "case {case}, chunk {chunk}, offset {at}: {found:?}");
            }
        }
    }
}

/// The chunked, single-pass scan finds what the scan that read the whole rest of the file
/// at each damaged place found, in every mode, whatever the size of its reads.
#[test]
fn scan_finds_what_the_whole_file_scan_found() {
    let mut rng = Rng(0x5ca1_ab1e);
    for case in 0..3000 {
        let (bytes, header) = damaged_segment(&mut rng);
        let len = bytes.len() as u64;
        for mode in MODES {
            for is_last in [false, true] {
                let before = scan_whole(segment_file(&bytes, header), len, is_last, mode);
                for chunk in [header.layout.frame_header_len(), 100, MIN_CHUNK] {
                    let file = segment_file(&bytes, header);
                    let now = scan(file, len, is_last, mode, chunk).unwrap();
                    assert_eq!(
                        outcome(&now),
                        outcome(&before),
                        "case {case}, {mode:?}, last {is_last}, chunk {chunk}"
                    );
                }
            }
        }
    }
}

/// `SkipCorrupt` in the last segment: damage that only a frame further on proves is
/// skipped; damage nothing proves is where the segment is cut, even after other damage was
/// skipped.
#[test]
fn skip_corrupt_cuts_at_the_first_damage_nothing_proves() {
    let layout = Layout::CURRENT;
    let header = header(layout, 1, 9, 0);
    let seed = header.seed();
    let mut bytes = header.encode().to_vec();
    let mut at = Vec::new();
    // 1..=10 synced one by one; 11..=20 never synced.
    for lsn in 1..=20u64 {
        let durable = Lsn::new(if lsn <= 10 { lsn - 1 } else { 10 });
        at.push(bytes.len());
        let flags = FLAG_BATCH_START | FLAG_BATCH_END;
        let at_lsn = (Lsn::new(lsn), durable);
        encode_test_frame(&mut bytes, layout, seed, at_lsn, b"abc", flags);
    }
    // Damage in 4 (proven by 5, written when 4 was durable) and in 14 (proven by nothing).
    for lsn in [4, 14] {
        bytes[at[lsn - 1] + layout.frame_header_len()] ^= 1;
    }
    let len = bytes.len() as u64;
    let s = scan(segment_file(&bytes, header), len, true, SkipCorrupt, 64).unwrap();
    assert_eq!(
        s.runs,
        [(Lsn::new(1), Lsn::new(3)), (Lsn::new(5), Lsn::new(13))]
    );
    assert_eq!(s.segment.last_lsn, Lsn::new(13));
    assert_eq!(s.segment.skips, [(at[3] as u64, at[4] as u64)]);
    assert_eq!(s.skipped.len(), 1);
    let stop = s.stop.expect("a cut");
    assert_eq!((stop.offset, stop.cut), (at[13] as u64, at[13] as u64));
    assert_eq!(stop.verdict, Verdict::Cut);
    assert_eq!(stop.intact_after, 6, "15..=20");
    // With 14 synced before 15 was written, 14 is proven too and skipped.
    let durable = Lsn::new(14);
    let mut frame = Vec::new();
    let flags = FLAG_BATCH_START | FLAG_BATCH_END;
    encode_test_frame(
        &mut frame,
        layout,
        seed,
        (Lsn::new(15), durable),
        b"abc",
        flags,
    );
    bytes[at[14]..at[15]].copy_from_slice(&frame);
    let s = scan(segment_file(&bytes, header), len, true, SkipCorrupt, 64).unwrap();
    assert_eq!(s.stop, None);
    assert_eq!(s.segment.last_lsn, Lsn::new(20));
    assert_eq!(s.skipped.len(), 2);
}

/// A recycled segment of format version 2: behind its current frames, the earlier life's frames
/// (salted with the earlier seed its header keeps) are the end of the data, in every mode, if
/// they follow one another up to where the earlier data ended. Bytes there that are not the
/// earlier life's are damage like any other: `Strict` refuses them, the tolerant modes cut them.
#[test]
fn the_earlier_life_of_a_recycled_segment_is_known_by_its_seed() {
    let layout = Layout::V2;
    let mut rng = Rng(0x0e1d);
    // The earlier life: 40 frames from LSN 1, as the file held them when it was freed.
    let old_header = header(layout, 1, 41, 0);
    let (old_frames, _) = frames(&mut rng, layout, old_header.seed(), 1, 40);
    let prev_end = (layout.segment_header_len() + old_frames.len()) as u64;
    // The new life's header, salt 40 (so the earlier seed is salt 41's), and a few frames.
    let header = header(layout, 500, 40, prev_end);
    assert_eq!(header.prev_seed, old_header.seed());
    let (new_frames, _) = frames(&mut rng, layout, header.seed(), 500, 3);
    let mut bytes = header.encode();
    bytes.extend_from_slice(&old_frames);
    bytes[layout.segment_header_len()..][..new_frames.len()].copy_from_slice(&new_frames);
    let data_end = (layout.segment_header_len() + new_frames.len()) as u64;
    let len = bytes.len() as u64;
    for mode in MODES {
        let s = scan(segment_file(&bytes, header), len, true, mode, MIN_CHUNK).unwrap();
        assert_eq!(s.stop, None, "{mode:?}: the earlier life ends the data");
        assert_eq!(s.segment.end, data_end, "{mode:?}");
    }
    // The same bytes, one byte of an earlier frame further on flipped: no longer the earlier
    // life's, so no end of the data.
    let mut damaged = bytes.clone();
    let at = damaged.len() - 5;
    damaged[at] ^= 0x40;
    let strict = scan(segment_file(&damaged, header), len, true, Strict, MIN_CHUNK).unwrap();
    assert_eq!(strict.stop.map(|s| s.verdict), Some(Verdict::Refuse));
    let tolerant = scan(
        segment_file(&damaged, header),
        len,
        true,
        TolerateTornTail,
        MIN_CHUNK,
    );
    let stop = tolerant.unwrap().stop.expect("a cut");
    assert_eq!((stop.cut, stop.verdict), (data_end, Verdict::Cut));
}

/// A seal ends its segment: the scan takes it (the segment is sealed, its records end before
/// it), and a frame after it, even one carrying the next LSN, is damage.
#[test]
fn nothing_follows_a_seal() {
    let layout = Layout::V2;
    let mut rng = Rng(0x5ea1);
    let header = header(layout, 1, 7, 0);
    let (records, _) = frames(&mut rng, layout, header.seed(), 1, 10);
    let mut bytes = header.encode();
    bytes.extend_from_slice(&records);
    let sealed = scan(
        segment_file(&bytes, header),
        bytes.len() as u64,
        true,
        Strict,
        MIN_CHUNK,
    );
    let last = sealed.unwrap().segment.last_lsn;
    let meta = FrameMeta {
        kind: KIND_SEAL,
        lsn: last.next(),
        durable_hint: last,
        flags: 0,
        timestamp_ms: 0,
    };
    let payload = seal_payload(Lsn::FIRST, last, 0, 0);
    encode_frame(&mut bytes, layout, header.seed(), meta, &payload);
    let end = bytes.len() as u64;
    for mode in MODES {
        let s = scan(segment_file(&bytes, header), end, false, mode, MIN_CHUNK).unwrap();
        assert_eq!(s.stop, None, "{mode:?}");
        assert!(s.segment.sealed, "{mode:?}");
        assert_eq!((s.segment.last_lsn, s.segment.end), (last, end), "{mode:?}");
    }
    let after = last.next();
    encode_test_frame(
        &mut bytes,
        layout,
        header.seed(),
        (after, last),
        b"after the seal",
        FLAG_BATCH_START | FLAG_BATCH_END,
    );
    let len = bytes.len() as u64;
    for mode in [Strict, TolerateTornTail] {
        let s = scan(segment_file(&bytes, header), len, false, mode, MIN_CHUNK).unwrap();
        let stop = s.stop.expect("damage");
        assert_eq!(
            (stop.offset, stop.kind, stop.verdict),
            (end, CorruptionKind::BatchFraming, Verdict::Refuse),
            "{mode:?}"
        );
    }
}
