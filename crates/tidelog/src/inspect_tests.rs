//! Tests of `inspect`, in a file of their own so the module reads as what it owns.

use super::*;
use crate::format::{FLAG_BATCH_END, FLAG_BATCH_START, encode_test_frame, segment_file_name};
use crate::io::MemStorage;
use proptest::prelude::*;

const SINGLE: u8 = FLAG_BATCH_START | FLAG_BATCH_END;

fn header(first: u64, salt: u64) -> SegmentHeader {
    SegmentHeader::new(0xabcd, Lsn::new(first), salt, 5)
}

/// The length of the headers of [`header`]'s segments, and of their frames' headers.
const SEGMENT_HEADER_LEN: usize = Layout::CURRENT.segment_header_len();
const FRAME_HEADER_LEN: usize = Layout::CURRENT.frame_header_len();

/// A segment starting at `first` holding `n` single-record batches; returns its bytes and
/// the offset of each frame.
fn segment(h: &SegmentHeader, n: u64) -> (Vec<u8>, Vec<u64>) {
    let mut bytes = h.encode().to_vec();
    let mut offsets = Vec::new();
    for i in 0..n {
        let lsn = Lsn::new(h.first_lsn.get() + i);
        offsets.push(bytes.len() as u64);
        let payload = format!("record {lsn} {}", "x".repeat(i as usize % 7));
        let at = (lsn, lsn.prev());
        encode_test_frame(
            &mut bytes,
            h.layout,
            h.seed(),
            at,
            payload.as_bytes(),
            SINGLE,
        );
    }
    (bytes, offsets)
}

fn put(storage: &MemStorage, path: &Path, bytes: &[u8]) {
    storage
        .create_dir_all(path.parent().unwrap())
        .expect("create dir");
    let file = storage.open(path, OpenMode::Truncate).expect("create");
    file.write_all_at(bytes, 0).expect("write");
}

fn entries(storage: &MemStorage, path: &Path, from: Option<&Path>) -> (Frames, Vec<Entry>) {
    let frames = Frames::open_with(storage, path, from).expect("open");
    let mut again = Frames::open_with(storage, path, from).expect("open");
    let all: Vec<Entry> = again.by_ref().collect::<Result<_>>().expect("read");
    (frames, all)
}

fn frames_of(entries: &[Entry]) -> Vec<&Frame> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Frame(f) => Some(f),
            _ => None,
        })
        .collect()
}

#[test]
fn file_kinds_come_from_names() {
    let seg = segment_file_name(Lsn::new(42));
    assert_eq!(
        FileKind::of(Path::new(&seg)),
        FileKind::Segment {
            first_lsn: Lsn::new(42)
        }
    );
    assert_eq!(
        FileKind::of(&Path::new("/q").join(format!("{seg}.3"))),
        FileKind::Segment {
            first_lsn: Lsn::new(42)
        }
    );
    let cut = FileKind::Cut {
        segment: seg.clone(),
        first_lsn: Lsn::new(42),
        offset: 8192,
    };
    assert_eq!(FileKind::of(Path::new(&format!("{seg}.8192.cut"))), cut);
    assert_eq!(FileKind::of(Path::new(&format!("{seg}.8192.cut.1"))), cut);
    for other in [
        "CHECKPOINT",
        "LOCK",
        "42.seg",
        "00000000000000000042.seg.x.cut",
        "00000000000000000042.seg..cut",
        "00000000000000000042.free",
        "",
    ] {
        assert_eq!(FileKind::of(Path::new(other)), FileKind::Other, "{other}");
    }
    let storage = MemStorage::new();
    let err = Frames::open_with(&storage, Path::new("/log/CHECKPOINT"), None).unwrap_err();
    assert!(err.to_string().contains("not a segment file"), "{err}");
}

#[test]
fn a_healthy_segment_shows_every_frame_valid_and_its_zeros() {
    let storage = MemStorage::new();
    let h = header(10, 1);
    let (mut bytes, offsets) = segment(&h, 5);
    let data_end = bytes.len() as u64;
    bytes.resize(bytes.len() + 1000, 0); // preallocated space
    let path = Path::new("/log").join(segment_file_name(Lsn::new(10)));
    put(&storage, &path, &bytes);
    let (frames, all) = entries(&storage, &path, None);
    assert_eq!(frames.header_source(), &HeaderSource::Own);
    assert_eq!(frames.header().map(|h| h.first_lsn), Some(Lsn::new(10)));
    assert_eq!(frames.base_offset(), 0);
    let got = frames_of(&all);
    assert_eq!(got.len(), 5);
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f.lsn, Lsn::new(10 + i as u64));
        assert_eq!(f.offset, offsets[i]);
        assert_eq!(f.checksum(), Checksum::Valid);
        assert!(f.is_batch_start() && f.is_batch_end());
        assert_eq!(f.durable_hint, f.lsn.prev());
        let payload = frames.payload(f).expect("payload");
        assert!(payload.starts_with(format!("record {}", f.lsn).as_bytes()));
    }
    assert_eq!(
        all.last(),
        Some(&Entry::Zeros {
            offset: data_end,
            len: 1000
        })
    );
}

#[test]
fn a_flipped_payload_byte_is_one_mismatch_and_the_rest_reads_on() {
    let storage = MemStorage::new();
    let h = header(1, 7);
    let (mut bytes, offsets) = segment(&h, 6);
    bytes[offsets[2] as usize + FRAME_HEADER_LEN + 1] ^= 0x10;
    let path = Path::new("/log").join(segment_file_name(Lsn::FIRST));
    put(&storage, &path, &bytes);
    let (_, all) = entries(&storage, &path, None);
    assert_eq!(all.len(), 6, "{all:?}");
    let checks: Vec<Checksum> = frames_of(&all).iter().map(|f| f.checksum()).collect();
    assert_eq!(checks[2], Checksum::Mismatch);
    assert!(
        checks
            .iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_valid())
    );
}

#[test]
fn garbage_is_one_damage_entry_up_to_the_next_frame() {
    let storage = MemStorage::new();
    let h = header(1, 7);
    let (mut bytes, offsets) = segment(&h, 6);
    // The header of the frame of LSN 3 and a few bytes of its payload.
    for b in &mut bytes[offsets[2] as usize..offsets[2] as usize + 30] {
        *b = 0xff;
    }
    let path = Path::new("/log").join(segment_file_name(Lsn::FIRST));
    put(&storage, &path, &bytes);
    let (_, all) = entries(&storage, &path, None);
    assert_eq!(
        all[2],
        Entry::Damage {
            offset: offsets[2],
            len: offsets[3] - offsets[2],
            kind: CorruptionKind::BadFrameHeader
        }
    );
    let lsns: Vec<u64> = frames_of(&all).iter().map(|f| f.lsn.get()).collect();
    assert_eq!(lsns, [1, 2, 4, 5, 6]);
}

#[test]
fn a_damaged_length_is_read_past_and_frames_of_another_header_each_show() {
    let storage = MemStorage::new();
    let h = header(1, 7);
    let (mut bytes, offsets) = segment(&h, 6);
    // LSN 2's length field says 3 bytes more: its end falls inside LSN 3's frame.
    let at = offsets[1] as usize + 4;
    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    bytes[at..at + 4].copy_from_slice(&(len + 3).to_le_bytes());
    // Frames of an earlier life of the file (another salt) after the data.
    let (old, _) = segment(&header(7, 99), 4);
    bytes.extend_from_slice(&old[SEGMENT_HEADER_LEN..]);
    let path = Path::new("/log").join(segment_file_name(Lsn::FIRST));
    put(&storage, &path, &bytes);
    let (_, all) = entries(&storage, &path, None);
    let got: Vec<(u64, Checksum)> = frames_of(&all)
        .iter()
        .map(|f| (f.lsn.get(), f.checksum()))
        .collect();
    use Checksum::{Mismatch, Valid};
    assert_eq!(
        got,
        [
            (1, Valid),
            (2, Mismatch),
            (3, Valid),
            (4, Valid),
            (5, Valid),
            (6, Valid),
            (7, Mismatch),
            (8, Mismatch),
            (9, Mismatch),
            (10, Mismatch)
        ],
        "{all:?}"
    );
    assert!(
        !all.iter().any(|e| matches!(e, Entry::Damage { .. })),
        "{all:?}"
    );
}

#[test]
fn a_torn_last_frame_and_a_zeroed_region_are_shown_as_such() {
    let storage = MemStorage::new();
    let h = header(1, 7);
    let (bytes, offsets) = segment(&h, 6);
    let mut torn = bytes[..bytes.len() - 3].to_vec();
    let path = Path::new("/log").join(segment_file_name(Lsn::FIRST));
    put(&storage, &path, &torn);
    let (_, all) = entries(&storage, &path, None);
    assert!(
        matches!(all.last(), Some(Entry::Damage { offset, kind: CorruptionKind::TruncatedFrame { .. }, .. }) if *offset == offsets[5]),
        "{all:?}"
    );

    // Zeros over frames 2 and 3, intact frames after them.
    torn = bytes.clone();
    for b in &mut torn[offsets[1] as usize..offsets[3] as usize] {
        *b = 0;
    }
    put(&storage, &path, &torn);
    let (_, all) = entries(&storage, &path, None);
    assert_eq!(
        all[1],
        Entry::Zeros {
            offset: offsets[1],
            len: offsets[3] - offsets[1]
        }
    );
    let lsns: Vec<u64> = frames_of(&all).iter().map(|f| f.lsn.get()).collect();
    assert_eq!(lsns, [1, 4, 5, 6]);
}

#[test]
fn a_cut_file_is_read_with_the_header_of_its_segment() {
    let storage = MemStorage::new();
    let h = header(100, 3);
    let (bytes, offsets) = segment(&h, 8);
    let cut_at = offsets[5];
    let name = segment_file_name(Lsn::new(100));
    let seg_path = Path::new("/log").join(&name);
    put(&storage, &seg_path, &bytes[..cut_at as usize]);
    let cut_path = Path::new("/log/quarantine").join(format!("{name}.{cut_at}.cut"));
    put(&storage, &cut_path, &bytes[cut_at as usize..]);

    let (frames, all) = entries(&storage, &cut_path, None);
    assert_eq!(
        frames.header_source(),
        &HeaderSource::File(seg_path.clone())
    );
    assert_eq!(frames.base_offset(), cut_at);
    let got = frames_of(&all);
    assert_eq!(got.len(), 3);
    for (f, i) in got.iter().zip(5..) {
        assert_eq!(f.offset, offsets[i]);
        assert_eq!(f.lsn, Lsn::new(100 + i as u64));
        assert!(f.checksum().is_valid());
    }
    assert!(
        frames
            .payload(got[0])
            .expect("payload")
            .starts_with(b"record 105")
    );

    // The segment gone: frames from their structure, unverified.
    storage.remove_file(&seg_path).expect("remove");
    let (frames, all) = entries(&storage, &cut_path, None);
    assert!(matches!(
        frames.header_source(),
        HeaderSource::Unavailable(Unavailable::NotFound { tried }) if tried.contains(&seg_path)
    ));
    let got = frames_of(&all);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|f| f.checksum() == Checksum::Unverified));

    // A later segment of the same name (another salt): every frame mismatches.
    let (later, _) = segment(&header(100, 4), 0);
    put(&storage, &seg_path, &later);
    let (_, all) = entries(&storage, &cut_path, None);
    assert!(
        frames_of(&all)
            .iter()
            .all(|f| f.checksum() == Checksum::Mismatch),
        "{all:?}"
    );

    // Named explicitly: a copy of the original segment elsewhere.
    let copy = Path::new("/elsewhere").join(&name);
    put(&storage, &copy, &bytes[..SEGMENT_HEADER_LEN]);
    let (frames, all) = entries(&storage, &cut_path, Some(&copy));
    assert_eq!(frames.header_source(), &HeaderSource::File(copy.clone()));
    assert!(frames_of(&all).iter().all(|f| f.checksum().is_valid()));

    // A damaged header of the segment.
    let mut damaged = bytes[..SEGMENT_HEADER_LEN].to_vec();
    damaged[20] ^= 1;
    put(&storage, &seg_path, &damaged);
    let (frames, _) = entries(&storage, &cut_path, None);
    assert!(matches!(
        frames.header_source(),
        HeaderSource::Unavailable(Unavailable::Damaged {
            kind: CorruptionKind::HeaderChecksum,
            ..
        })
    ));
}

#[test]
fn a_frame_larger_than_the_read_buffer_is_checksummed_in_pieces() {
    let storage = MemStorage::new();
    let h = header(1, 9);
    let mut bytes = h.encode().to_vec();
    let big: Vec<u8> = (0..(WINDOW * 2 + 77)).map(|i| (i % 251) as u8).collect();
    let at = (Lsn::FIRST, Lsn::ZERO);
    encode_test_frame(&mut bytes, h.layout, h.seed(), at, &big, SINGLE);
    let at = (Lsn::new(2), Lsn::FIRST);
    encode_test_frame(&mut bytes, h.layout, h.seed(), at, b"after", SINGLE);
    let path = Path::new("/log").join(segment_file_name(Lsn::FIRST));
    put(&storage, &path, &bytes);
    let (frames, all) = entries(&storage, &path, None);
    let got = frames_of(&all);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|f| f.checksum().is_valid()));
    assert_eq!(frames.payload(got[0]).expect("payload"), big);
}

#[test]
fn segment_files_are_listed_in_lsn_order() {
    let storage = MemStorage::new();
    for first in [300, 1, 20] {
        let (bytes, _) = segment(&header(first, 1), 0);
        put(
            &storage,
            &Path::new("/log").join(segment_file_name(Lsn::new(first))),
            &bytes,
        );
    }
    put(&storage, Path::new("/log/CHECKPOINT"), b"x");
    let names: Vec<String> = segment_files(&storage, Path::new("/log"))
        .expect("list")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [1, 20, 300].map(|l| segment_file_name(Lsn::new(l))));
}

proptest! {
    /// Whatever the bytes, reading ends, and the entries go forward through the file.
    #[test]
    fn any_bytes_are_read_to_the_end(
        n in 0u64..6,
        damage in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..8),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
        cut in any::<bool>(),
    ) {
        let storage = MemStorage::new();
        let h = header(1, 2);
        let (mut bytes, _) = segment(&h, n);
        bytes.extend_from_slice(&tail);
        for (at, b) in damage {
            let len = bytes.len();
            bytes[at as usize % len] ^= b;
        }
        let name = segment_file_name(Lsn::FIRST);
        let path = if cut {
            Path::new("/log/quarantine").join(format!("{name}.{SEGMENT_HEADER_LEN}.cut"))
        } else {
            Path::new("/log").join(&name)
        };
        let body = if cut { &bytes[SEGMENT_HEADER_LEN..] } else { &bytes[..] };
        put(&storage, &path, body);
        let frames = Frames::open_with(&storage, &path, None).expect("open");
        let len = frames.file_len() + frames.base_offset();
        // Entries start where the last one ended, or (after a checksum mismatch, whose
        // length may be what is damaged) inside it; each ends within the file.
        let mut reached = SEGMENT_HEADER_LEN.min(bytes.len()) as u64;
        let mut last_start = None;
        for entry in frames {
            let (offset, end) = match entry.expect("read") {
                Entry::Frame(f) => (f.offset, f.offset + f.frame_len()),
                Entry::Zeros { offset, len } | Entry::Damage { offset, len, .. } => {
                    prop_assert!(len > 0);
                    (offset, offset + len)
                }
            };
            prop_assert!(offset <= reached, "a gap before {offset}");
            prop_assert!(last_start.is_none_or(|s| offset > s), "not forward at {offset}");
            prop_assert!(end <= len);
            last_start = Some(offset);
            reached = reached.max(end);
        }
        prop_assert_eq!(reached, len);
    }
}
