//! Tests of `format`, in a file of their own so the module reads as what it owns.

use super::*;
use proptest::prelude::*;

#[test]
fn segment_names_sort_and_parse() {
    let name = segment_file_name(Lsn::new(1024));
    assert_eq!(name, "00000000000000001024.seg");
    assert_eq!(parse_segment_name(OsStr::new(&name)), Some(Lsn::new(1024)));
    assert_eq!(parse_segment_name(OsStr::new("1024.seg")), None);
    assert_eq!(
        parse_segment_name(OsStr::new("0000000000000000102x.seg")),
        None
    );
    assert_eq!(
        parse_segment_name(OsStr::new("00000000000000001024.seg.tmp")),
        None
    );
    assert_eq!(
        parse_segment_name(OsStr::new("00000000000000000000.seg")),
        None,
        "LSN 0 is never a record's"
    );
    assert_eq!(
        parse_segment_name(OsStr::new("99999999999999999999.seg")),
        None
    );
    assert!(segment_file_name(Lsn::new(9)) < segment_file_name(Lsn::new(10)));
}

#[test]
fn segment_header_round_trips_and_detects_damage() {
    for layout in [Layout::V1, Layout::V2] {
        let mut h = SegmentHeader::for_test(layout, 7 << 64 | 9, Lsn::new(42), 5, 4096);
        h.created_ms = 1;
        if layout == Layout::V2 {
            h.prev_seed = 0xdead_beef;
            h.prev_version = 1;
            h.generation = 3;
        }
        let bytes = h.encode();
        assert_eq!(bytes.len(), layout.segment_header_len());
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                SegmentHeader::decode(&bad).is_err(),
                "{layout:?}: flip at byte {i} undetected"
            );
        }
        assert_eq!(
            SegmentHeader::decode(&bytes[..10]),
            Err(CorruptionKind::TruncatedHeader { len: 10 })
        );
    }
    let v2 = SegmentHeader::new(1, Lsn::FIRST, 2, 3).encode();
    assert_eq!(
        SegmentHeader::decode(&v2[..64]),
        Err(CorruptionKind::TruncatedHeader { len: 64 }),
        "a version 2 header cut to version 1's length"
    );
}

/// A header of a later version, with a length of its own, is refused as such, not as
/// damage.
#[test]
fn a_header_of_a_later_version_is_unsupported() {
    let mut b = SegmentHeader::new(1, Lsn::FIRST, 2, 3).encode();
    b.resize(256, 0);
    b[8..12].copy_from_slice(&3u32.to_le_bytes());
    b[12..16].copy_from_slice(&256u32.to_le_bytes());
    let crc = crc32c::crc32c(&b[..252]);
    b[252..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        SegmentHeader::decode(&b),
        Err(CorruptionKind::UnsupportedVersion {
            found: 3,
            supported: FORMAT_VERSION
        })
    );
}

#[test]
fn checkpoint_round_trips_and_detects_damage() {
    for metadata in [
        Vec::new(),
        b"vote 7 term 3".to_vec(),
        vec![0xab; MAX_METADATA_BYTES],
    ] {
        let c = CheckpointFile {
            durable: Lsn::new(70),
            generation: 2,
            metadata,
            ..CheckpointFile::at(3, Lsn::new(77))
        };
        let bytes = c.encode();
        assert_eq!(bytes.len(), 72 + c.metadata.len());
        assert_eq!(CheckpointFile::decode(&bytes), Ok(c.clone()));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(
                CheckpointFile::decode(&bad).is_err(),
                "flip at byte {i} undetected"
            );
        }
        for cut in [0, 15, 51, 60, bytes.len() - 1] {
            assert!(
                CheckpointFile::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}

/// A version 1 checkpoint file (52 bytes) still reads; one of a later version is refused
/// as such.
#[test]
fn checkpoint_files_of_other_versions() {
    let mut v1 = vec![0u8; CHECKPOINT_LEN];
    v1[0..8].copy_from_slice(&CHECKPOINT_MAGIC);
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    v1[16..32].copy_from_slice(&9u128.to_le_bytes());
    v1[32..40].copy_from_slice(&5u64.to_le_bytes());
    let crc = crc32c::crc32c(&v1[..48]);
    v1[48..52].copy_from_slice(&crc.to_le_bytes());
    let c = CheckpointFile::decode(&v1).expect("a version 1 file");
    assert_eq!((c.log_id, c.lsn, c.metadata.len()), (9, Lsn::new(5), 0));
    let mut later = CheckpointFile::at(9, Lsn::new(5)).encode();
    later[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let n = later.len();
    let crc = crc32c::crc32c(&later[..n - 4]);
    later[n - 4..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        CheckpointFile::decode(&later),
        Err(CorruptionKind::UnsupportedVersion {
            found: FORMAT_VERSION + 1,
            supported: FORMAT_VERSION
        })
    );
}

/// The worked example of `docs/format.md`, byte for byte.
#[test]
fn worked_example_of_the_format_document() {
    let mut header = SegmentHeader::for_test(
        Layout::V1,
        0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
        Lsn::FIRST,
        0x1122_3344_5566_7788,
        0,
    );
    header.created_ms = 1_700_000_000_000;
    let mut file = header.encode().to_vec();
    let flags = FLAG_BATCH_START | FLAG_BATCH_END;
    let at = (Lsn::FIRST, Lsn::ZERO);
    encode_test_frame(&mut file, Layout::V1, header.seed(), at, b"hi", flags);
    let hex: Vec<String> = file
        .chunks(16)
        .enumerate()
        .map(|(i, row)| {
            let bytes: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:08x}  {}", i * 16, bytes.join(" "))
        })
        .collect();
    let expected = "\
00000000  54 44 4c 47 53 45 47 00 01 00 00 00 40 00 00 00
00000010  10 0f 0e 0d 0c 0b 0a 09 08 07 06 05 04 03 02 01
00000020  01 00 00 00 00 00 00 00 88 77 66 55 44 33 22 11
00000030  00 68 e5 cf 8b 01 00 00 00 00 00 00 db 71 8b b4
00000040  97 d5 8b 0c 02 00 00 00 01 00 00 00 00 00 00 00
00000050  01 03 00 00 01 00 00 00 68 69";
    assert_eq!(hex.join("\n"), expected, "seed {:#010x}", header.seed());
}

/// The hex dump of `bytes`, 16 to a row, as the format document shows files.
fn hex_rows(bytes: &[u8]) -> String {
    let rows: Vec<String> = bytes
        .chunks(16)
        .enumerate()
        .map(|(i, row)| {
            let bytes: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:08x}  {}", i * 16, bytes.join(" "))
        })
        .collect();
    rows.join("\n")
}

/// The worked example of version 2 in `docs/format.md`: the same record, then the sync
/// marker a sync after it writes.
#[test]
fn worked_example_of_version_2() {
    let header = SegmentHeader::new(
        0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
        Lsn::FIRST,
        0x1122_3344_5566_7788,
        1_700_000_000_000,
    );
    let mut file = header.encode();
    let record = FrameMeta {
        kind: KIND_RECORD,
        lsn: Lsn::FIRST,
        durable_hint: Lsn::ZERO,
        flags: FLAG_BATCH_START | FLAG_BATCH_END,
        timestamp_ms: 1_700_000_000_000,
    };
    encode_frame(&mut file, Layout::V2, header.seed(), record, b"hi");
    let marker = FrameMeta {
        kind: KIND_SYNC,
        lsn: Lsn::new(2),
        durable_hint: Lsn::FIRST,
        flags: 0,
        timestamp_ms: 1_700_000_000_001,
    };
    encode_frame(&mut file, Layout::V2, header.seed(), marker, &[]);
    let expected = "\
00000000  54 44 4c 47 53 45 47 00 02 00 00 00 80 00 00 00
00000010  10 0f 0e 0d 0c 0b 0a 09 08 07 06 05 04 03 02 01
00000020  01 00 00 00 00 00 00 00 88 77 66 55 44 33 22 11
00000030  00 68 e5 cf 8b 01 00 00 00 00 00 00 00 00 00 00
00000040  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00000050  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00000060  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00000070  00 00 00 00 00 00 00 00 00 00 00 00 24 b2 ed be
00000080  3e 97 f5 07 02 00 00 00 01 00 00 00 00 00 00 00
00000090  01 03 00 00 01 00 00 00 00 68 e5 cf 8b 01 00 00
000000a0  68 69 3e d1 67 bb 00 00 00 00 02 00 00 00 00 00
000000b0  00 00 02 00 00 00 01 00 00 00 01 68 e5 cf 8b 01
000000c0  00 00";
    assert_eq!(hex_rows(&file), expected, "seed {:#010x}", header.seed());
}

#[test]
fn frame_checksum_is_salted() {
    let a = SegmentHeader::new(1, Lsn::FIRST, 1, 0);
    let b = SegmentHeader { salt: 2, ..a };
    let c = SegmentHeader { log_id: 2, ..a };
    let mut frame = Vec::new();
    let at = (Lsn::FIRST, Lsn::ZERO);
    encode_test_frame(
        &mut frame,
        a.layout,
        a.seed(),
        at,
        b"payload",
        FLAG_BATCH_END,
    );
    let header = FrameHeader::parse(&frame, a.layout).unwrap();
    assert_eq!(FrameHeader::checksum(a.seed(), &frame), header.crc);
    assert_ne!(
        FrameHeader::checksum(b.seed(), &frame),
        header.crc,
        "older segment file"
    );
    assert_ne!(
        FrameHeader::checksum(c.seed(), &frame),
        header.crc,
        "another log"
    );
}

proptest! {
    #[test]
    fn frame_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..300),
                         lsn in 1u64..u64::MAX, lag in 1u64..u64::MAX, end: bool, seed: u32,
                         v2: bool, timestamp_ms: u64) {
        let layout = if v2 { Layout::V2 } else { Layout::V1 };
        let mut buf = vec![0xAA; 3];
        let flags = if end { FLAG_BATCH_END } else { 0 } | FLAG_BATCH_START;
        let durable = Lsn::new(lsn.saturating_sub(lag));
        let meta = FrameMeta { kind: KIND_RECORD, lsn: Lsn::new(lsn), durable_hint: durable, flags, timestamp_ms };
        encode_frame(&mut buf, layout, seed, meta, &payload);
        let header = FrameHeader::parse(&buf[3..], layout).unwrap();
        prop_assert_eq!(header.timestamp_ms, v2.then_some(timestamp_ms));
        prop_assert_eq!(header.header_len(), layout.frame_header_len() as u64);
        prop_assert_eq!(header.lsn, Lsn::new(lsn));
        prop_assert_eq!(header.batch_end(), end);
        prop_assert!(header.batch_start());
        // The durable hint never claims more than was durable.
        prop_assert!(header.durable_hint <= durable);
        if lsn - durable.get() < u64::from(u32::MAX) {
            prop_assert_eq!(header.durable_hint, durable);
        }
        prop_assert_eq!(header.len as usize, payload.len());
        prop_assert_eq!(FrameHeader::checksum(seed, &buf[3..]), header.crc);
        prop_assert_eq!(&buf[3 + layout.frame_header_len()..], &payload[..]);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = FrameHeader::parse(&bytes, Layout::V1);
        let _ = FrameHeader::parse(&bytes, Layout::V2);
        let _ = SegmentHeader::decode(&bytes);
        let _ = CheckpointFile::decode(&bytes);
    }
}
