//! Golden fixtures of the on-disk format: small logs, healthy and damaged, kept in
//! `tests/fixtures/v1/` as version 1 wrote them and in `tests/fixtures/v2/` as version 2 writes
//! them (`tests/fixtures/README.md` describes each). This build writes version 2 and reads both:
//! the version 1 fixtures were committed before the version changed, and are never written
//! again.
//!
//! The writer's bytes are a pure function of what it is given inside
//! `tidelog::__fixtures::deterministic` (a seeded log id and salts, a fixed clock), and each case
//! is written by one thread with `SyncPolicy::Manual`, so:
//!
//! - `regenerated_fixtures_match_the_committed_bytes` writes every case again and compares it
//!   with the committed folder of the version this build writes, byte for byte: a change of the bytes the writer produces fails
//!   it until the fixtures are regenerated on purpose, with
//!   `cargo test -p tidelog --test it fixtures::regenerate -- --ignored`.
//! - `every_fixture_recovers_as_expected_in_every_mode` opens a copy of each fixture of each
//!   version in each recovery mode and checks the outcome against the tables in `expected`,
//!   written out by hand.
//! - `read_only_opens_of_every_fixture_change_no_byte` does the same read-only: a dry run, with
//!   the same verdicts and not one byte changed.
//! - `the_fixtures_follow_the_format_document` decodes their headers, and the frames of the
//!   healthy one, as docs/format.md describes them.
//!
//! The committed files are never opened for writing: every open works on a copy.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use tidelog::__fixtures::{FIXED_NOW_MS, deterministic};
use tidelog::io::{OpenMode, StdStorage, Storage};
use tidelog::{
    CorruptionKind, DamageAction, Durability, Error, FORMAT_VERSION, Log, LogBuilder, Lsn,
    RecoveryMode, Result, SyncPolicy,
};

use RecoveryMode::{PointInTime, SkipCorrupt, Strict, TolerateTornTail};

/// The modes, in the order of the columns of the table in [`expected`].
const MODES: [RecoveryMode; 4] = [Strict, TolerateTornTail, PointInTime, SkipCorrupt];

/// The segment size every case is written with: the smallest there is.
const SEGMENT_BYTES: u64 = 4096;

/// The sizes of the version the writer writes (docs/format.md, 2.1 and 2.2), for the byte edits
/// that damage the cases.
const SEGMENT_HEADER_LEN: usize = 128;
const FRAME_HEADER_LEN: usize = 32;
/// The kind byte of a sync marker (docs/format.md, 2.4).
const KIND_SYNC: u8 = 2;
/// Frame kind of a seal (format version 2).
const KIND_SEAL: u8 = 3;

/// The format versions whose fixtures are committed.
const VERSIONS: [u32; 2] = [1, 2];

/// The seed of the other log whose frame the `foreign-frame` case splices in.
const FOREIGN_SEED: u64 = 0xf0f0;

/// One fixture: a folder under `tests/fixtures/v1/`, written by `write` into a directory that
/// does not exist yet, with randomness seeded with `seed`.
struct Case {
    name: &'static str,
    seed: u64,
    write: fn(&Path) -> Result<()>,
}

/// Every case, in the order of the README.
const CASES: [Case; 10] = [
    Case {
        name: "empty",
        seed: 1,
        write: write_empty,
    },
    Case {
        name: "healthy",
        seed: 2,
        write: write_healthy,
    },
    Case {
        name: "torn-tail",
        seed: 3,
        write: write_torn_tail,
    },
    Case {
        name: "flipped-sealed",
        seed: 4,
        write: write_flipped_sealed,
    },
    Case {
        name: "flipped-last",
        seed: 5,
        write: write_flipped_last,
    },
    Case {
        name: "missing-middle",
        seed: 6,
        write: write_missing_middle,
    },
    Case {
        name: "foreign-frame",
        seed: 7,
        write: write_foreign_frame,
    },
    Case {
        name: "recycled",
        seed: 8,
        write: write_recycled,
    },
    Case {
        name: "interrupted-checkpoint",
        seed: 9,
        write: write_interrupted_checkpoint,
    },
    Case {
        name: "flipped-last-proven",
        seed: 10,
        write: write_flipped_last_proven,
    },
];

// ---------------------------------------------------------------------------------------------
// Where the fixtures are, and files as trees of bytes.
// ---------------------------------------------------------------------------------------------

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixtures of the format version this build writes: what `regenerate` writes and the
/// comparison checks.
fn written_dir() -> PathBuf {
    fixtures_root().join(format!("v{FORMAT_VERSION}"))
}

/// The fixtures of format version `version`.
fn version_dir(version: u32) -> PathBuf {
    fixtures_root().join(format!("v{version}"))
}

/// Every file and folder under `dir`, by its path relative to `dir` (with `/`); a folder is
/// listed as `name/` with no bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        for name in list(dir) {
            let path = dir.join(&name);
            if path.is_dir() {
                let folder = format!("{prefix}{name}/");
                out.insert(folder.clone(), Vec::new());
                walk(&path, &folder, out);
            } else {
                out.insert(format!("{prefix}{name}"), read(&path));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

/// Panics with what differs between two snapshots, if anything does.
fn assert_same_tree(
    found: &BTreeMap<String, Vec<u8>>,
    want: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    let mut problems = Vec::new();
    for name in want.keys().filter(|n| !found.contains_key(*n)) {
        problems.push(format!("{name}: missing"));
    }
    for name in found.keys().filter(|n| !want.contains_key(*n)) {
        problems.push(format!("{name}: not expected"));
    }
    for (name, a) in found {
        if let Some(b) = want.get(name).filter(|b| *b != a) {
            let at = a
                .iter()
                .zip(b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            problems.push(format!(
                "{name}: {} bytes where {} were expected, first difference at offset {at}",
                a.len(),
                b.len()
            ));
        }
    }
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

/// Copies the tree at `from` to `to` (which must not exist).
fn copy_tree(from: &Path, to: &Path) {
    StdStorage::new()
        .create_dir_all(to)
        .unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for name in list(from) {
        let (path, target) = (from.join(&name), to.join(&name));
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            write(&target, &read(&path));
        }
    }
}

/// The names in a directory, sorted.
fn list(dir: &Path) -> Vec<String> {
    let names = StdStorage::new()
        .list(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
    let mut names: Vec<String> = names
        .into_iter()
        .map(|n| n.into_string().expect("a UTF-8 name"))
        .collect();
    names.sort();
    names
}

fn read(path: &Path) -> Vec<u8> {
    let read = || {
        let file = StdStorage::new().open(path, OpenMode::ReadOnly)?;
        let mut bytes = vec![0; usize::try_from(file.len()?).expect("a small file")];
        file.read_exact_at(&mut bytes, 0)?;
        std::io::Result::Ok(bytes)
    };
    read().unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Replaces the contents of the file at `path` (created if missing), durably.
fn write(path: &Path, bytes: &[u8]) {
    let write = || {
        let file = StdStorage::new().open(path, OpenMode::Truncate)?;
        file.write_all_at(bytes, 0)?;
        file.sync_data()
    };
    write().unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn remove(path: &Path) {
    StdStorage::new()
        .remove_file(path)
        .unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------------------------
// Writing the cases: the public API, then byte edits.
// ---------------------------------------------------------------------------------------------

/// Writes `case` into `dir`, which must not exist, with its randomness seeded.
fn generate(case: &Case, dir: &Path) -> Result<()> {
    assert!(!dir.exists(), "{} exists already", dir.display());
    deterministic(case.seed, || (case.write)(dir))
}

/// The writer of every case: small segments, no preallocation (files end where their data
/// ends), and syncs only when asked, on the calling thread.
fn writer(dir: &Path) -> LogBuilder {
    Log::builder(dir)
        .segment_bytes(SEGMENT_BYTES)
        .preallocate(false)
        .sync_policy(SyncPolicy::Manual)
}

/// The payload of record `lsn` in every case: it names its LSN, and its length varies. Kept
/// here rather than shared with the other tests, so the fixtures never change with them.
fn payload(lsn: u64) -> Vec<u8> {
    let mut p = format!("record {lsn:06} ").into_bytes();
    p.extend(std::iter::repeat_n(
        b'a' + (lsn % 26) as u8,
        (lsn * 7 % 50) as usize,
    ));
    p
}

/// Appends `payload(lsn)` for every LSN of `lsns`, one record at a time.
fn singles(log: &Log, lsns: RangeInclusive<u64>, durability: Durability) -> Result<()> {
    for lsn in lsns {
        assert_eq!(log.append(&payload(lsn), durability)?, Lsn::new(lsn));
    }
    Ok(())
}

/// Appends `payload(lsn)` for every LSN of `lsns` as one batch.
fn batch(log: &Log, lsns: RangeInclusive<u64>) -> Result<()> {
    let records: Vec<Vec<u8>> = lsns.clone().map(payload).collect();
    let (first, last) = log.append_batch(&records, Durability::Buffered)?;
    assert_eq!((first.get(), last.get()), (*lsns.start(), *lsns.end()));
    Ok(())
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// The segment files of the log in `dir`, in LSN order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    list(dir)
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .map(|n| dir.join(n))
        .collect()
}

/// A frame of a segment file, found by its length field.
#[derive(Debug, Clone, Copy)]
struct Frame {
    offset: usize,
    len: usize,
    lsn: u64,
}

impl Frame {
    fn end(&self) -> usize {
        self.offset + self.len
    }
}

/// The record frames of a segment file the writer wrote, walked by their length fields up to
/// the end of the file; sync markers are stepped over.
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while at + FRAME_HEADER_LEN <= bytes.len() {
        let head = &bytes[at..at + FRAME_HEADER_LEN];
        let len =
            FRAME_HEADER_LEN + u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
        let lsn = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
        if at + len > bytes.len() {
            break;
        }
        if head[16] != KIND_SYNC {
            out.push(Frame {
                offset: at,
                len,
                lsn,
            });
        }
        at += len;
    }
    out
}

fn frame_of(bytes: &[u8], lsn: u64) -> Frame {
    frames(bytes)
        .into_iter()
        .find(|f| f.lsn == lsn)
        .unwrap_or_else(|| panic!("no frame of LSN {lsn}"))
}

/// Flips every bit of one payload byte of the frame of `lsn` in the segment at `path`.
fn flip_payload_byte(path: &Path, lsn: u64) {
    let mut bytes = read(path);
    let frame = frame_of(&bytes, lsn);
    bytes[frame.offset + FRAME_HEADER_LEN + 3] ^= 0xff;
    write(path, &bytes);
}

/// A new log, opened and closed: a checkpoint file naming its id and an empty first segment.
fn write_empty(dir: &Path) -> Result<()> {
    writer(dir).open()?.close()
}

/// Two segments of single records and batches, closed cleanly.
fn write_healthy(dir: &Path) -> Result<()> {
    let log = writer(dir).open()?;
    singles(&log, 1..=50, Durability::Buffered)?;
    batch(&log, 51..=53)?;
    singles(&log, 54..=70, Durability::Buffered)?;
    batch(&log, 71..=73)?;
    singles(&log, 74..=75, Durability::Buffered)?;
    log.close()?;
    assert_eq!(segments(dir).len(), 2);
    Ok(())
}

/// One segment ending in a batch of three whose last frame lost its end: the header is whole,
/// five bytes of its payload are there.
fn write_torn_tail(dir: &Path) -> Result<()> {
    let log = writer(dir).open()?;
    singles(&log, 1..=9, Durability::Buffered)?;
    batch(&log, 10..=12)?;
    log.close()?;
    let path = &segments(dir)[0];
    let bytes = read(path);
    let last = frame_of(&bytes, 12);
    assert_eq!(
        last.end() + FRAME_HEADER_LEN,
        bytes.len(),
        "the close's sync marker"
    );
    write(path, &bytes[..last.offset + FRAME_HEADER_LEN + 5]);
    Ok(())
}

/// Two segments; a payload byte of LSN 20, in the first (sealed) one, flipped.
fn write_flipped_sealed(dir: &Path) -> Result<()> {
    let log = writer(dir).open()?;
    singles(&log, 1..=70, Durability::Buffered)?;
    log.close()?;
    let segs = segments(dir);
    assert_eq!(segs.len(), 2);
    flip_payload_byte(&segs[0], 20);
    Ok(())
}

/// One segment of twelve records never synced before the close (each frame says the log was
/// durable up to LSN 0); a payload byte of LSN 6 flipped. In version 1 nothing after it proves
/// LSN 6 was ever durable; in version 2 the close's sync marker does.
fn write_flipped_last(dir: &Path) -> Result<()> {
    let log = writer(dir).open()?;
    singles(&log, 1..=12, Durability::Buffered)?;
    log.close()?;
    flip_payload_byte(&segments(dir)[0], 6);
    Ok(())
}

/// Three segments, the middle one removed.
fn write_missing_middle(dir: &Path) -> Result<()> {
    let log = writer(dir).open()?;
    singles(&log, 1..=140, Durability::Buffered)?;
    log.close()?;
    let segs = segments(dir);
    assert_eq!(segs.len(), 3);
    remove(&segs[1]);
    Ok(())
}

/// One segment of twelve records, each synced as it was appended; the frame of LSN 6 replaced
/// by the frame of LSN 6 of another log that holds the same records (same offset, length, LSN,
/// flags, durable lag and payload: only the checksum, salted with the other log's identity,
/// differs).
fn write_foreign_frame(dir: &Path) -> Result<()> {
    let twelve_synced = |dir: &Path| -> Result<()> {
        let log = writer(dir).open()?;
        singles(&log, 1..=12, Durability::Synced)?;
        log.close()
    };
    twelve_synced(dir)?;
    let other = tempfile::tempdir().expect("temporary directory");
    let other_dir = other.path().join("other");
    deterministic(FOREIGN_SEED, || twelve_synced(&other_dir))?;
    let ours_path = &segments(dir)[0];
    let (mut ours, theirs) = (read(ours_path), read(&segments(&other_dir)[0]));
    assert_eq!(ours.len(), theirs.len());
    let frame = frame_of(&ours, 6);
    let (a, b) = (
        &ours[frame.offset..frame.end()],
        &theirs[frame.offset..frame.end()],
    );
    assert_eq!(a[4..], b[4..], "the frames differ in their checksum only");
    assert_ne!(a[..4], b[..4]);
    ours[frame.offset..frame.end()].copy_from_slice(&theirs[frame.offset..frame.end()]);
    write(ours_path, &ours);
    Ok(())
}

/// With segment recycling: 40 records, a checkpoint at 41 (the first segment is freed and
/// kept as `1.free`, a new segment 41 takes appends), five records, a checkpoint at 46
/// (segment 46 is made from `1.free`, and segment 41 is kept as `41.free`), three records. Segment
/// 46 holds its header (with the earlier life's seed and end), its three frames and the close's
/// sync marker, and then what is left of the frames of segment 1.
fn write_recycled(dir: &Path) -> Result<()> {
    let log = writer(dir).recycle_segments(true).open()?;
    singles(&log, 1..=40, Durability::Buffered)?;
    log.checkpoint(Lsn::new(41))?;
    singles(&log, 41..=45, Durability::Buffered)?;
    log.checkpoint(Lsn::new(46))?;
    singles(&log, 46..=48, Durability::Buffered)?;
    log.close()?;
    let segs = segments(dir);
    assert_eq!(segs, vec![dir.join(segment_name(46))]);
    let recycled = read(&segs[0]);
    let prev_seed = u32::from_le_bytes(recycled[56..60].try_into().expect("4 bytes"));
    assert!(prev_seed > 0, "segment 46 is a recycled file");
    assert!(dir.join(format!("{:020}.free", 41)).exists());
    Ok(())
}

/// Two segments; a checkpoint at the third LSN of the second, whose removal of the first
/// segment (step 6 of format.md 4.3) is undone: the first segment is written back as it was.
fn write_interrupted_checkpoint(dir: &Path) -> Result<()> {
    let log = writer(dir).open()?;
    singles(&log, 1..=70, Durability::Buffered)?;
    let segs = segments(dir);
    assert_eq!(segs.len(), 2);
    let first = read(&segs[0]);
    let second = segs[1]
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse::<u64>().ok())
        .expect("a segment name");
    log.checkpoint(Lsn::new(second + 2))?;
    log.close()?;
    assert_eq!(segments(dir), vec![segs[1].clone()]);
    write(&segs[0], &first);
    Ok(())
}

/// One segment: six records, a sync, six more (whose frames say the log was durable up to LSN
/// 6); a payload byte of LSN 4 flipped. The frame of LSN 7 proves LSN 4 was durable.
fn write_flipped_last_proven(dir: &Path) -> Result<()> {
    let log = writer(dir).open()?;
    singles(&log, 1..=6, Durability::Buffered)?;
    log.sync()?;
    singles(&log, 7..=12, Durability::Buffered)?;
    log.close()?;
    flip_payload_byte(&segments(dir)[0], 4);
    Ok(())
}

/// Writes every case into `tests/fixtures/v{FORMAT_VERSION}/`, replacing what is there.
#[test]
#[ignore = "rewrites the committed fixtures: run on purpose, after a change of the writer's bytes"]
fn regenerate() -> Result<()> {
    let root = written_dir();
    StdStorage::new()
        .create_dir_all(&root)
        .expect("create the fixtures folder");
    for name in list(&root) {
        let path = root.join(name);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).expect("remove an old fixture");
        }
    }
    for case in &CASES {
        generate(case, &root.join(case.name))?;
    }
    Ok(())
}

#[test]
fn regenerated_fixtures_match_the_committed_bytes() -> Result<()> {
    let root = written_dir();
    assert!(
        root.is_dir(),
        "no fixtures of format version {FORMAT_VERSION} in {}: write them with \
         `cargo test -p tidelog --test it fixtures::regenerate -- --ignored`",
        root.display()
    );
    let tmp = tempfile::tempdir().expect("temporary directory");
    for case in &CASES {
        let dir = tmp.path().join(case.name);
        generate(case, &dir)?;
        assert_same_tree(
            &snapshot(&dir),
            &snapshot(&root.join(case.name)),
            &format!(
                "the writer no longer writes the fixture {} byte for byte; if that is on \
                 purpose, regenerate the fixtures (tests/fixtures/README.md)",
                case.name
            ),
        );
    }
    let committed = list(&root);
    let mut names: Vec<String> = CASES.iter().map(|c| c.name.to_owned()).collect();
    names.sort();
    assert_eq!(committed, names, "one folder per case");
    Ok(())
}

#[test]
fn the_writer_is_deterministic_only_inside_the_hook() -> Result<()> {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let case = &CASES[0];
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    generate(case, &a)?;
    generate(case, &b)?;
    (case.write)(&c)?;
    assert_same_tree(
        &snapshot(&a),
        &snapshot(&b),
        "the same seed, the same bytes",
    );
    assert_ne!(snapshot(&a), snapshot(&c), "outside the hook, a new log id");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What each fixture holds, by docs/format.md.
// ---------------------------------------------------------------------------------------------

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u128_at(b: &[u8], at: usize) -> u128 {
    u128::from_le_bytes(b[at..at + 16].try_into().expect("16 bytes"))
}

/// The lengths of a version's segment header and frame headers (docs/format.md, 2.1, 2.2).
fn header_lens(version: u32) -> (usize, usize) {
    if version == 1 { (64, 24) } else { (128, 32) }
}

/// The headers of every file of every fixture, and every frame of the healthy one, hold what
/// the format document says each version writes (sections 2.1, 2.2, 2.4 and 3), with the fixed
/// clock of the hook in every timestamp.
#[test]
fn the_fixtures_follow_the_format_document() {
    for version in VERSIONS {
        follow_the_format_document(version);
    }
}

fn follow_the_format_document(version: u32) {
    let (segment_header, frame_header) = header_lens(version);
    let mut ids = Vec::new();
    for case in &CASES {
        let dir = version_dir(version).join(case.name);
        let ckp = read(&dir.join("CHECKPOINT"));
        // Version 1: 52 bytes, reserved zero at 12. Version 2: 72 bytes (no metadata), its
        // length at 12, the durable LSN, the generation and the metadata length after.
        let len = if version == 1 { 52 } else { 72 };
        assert_eq!(ckp.len(), len, "{}", case.name);
        assert_eq!(&ckp[..8], b"TDLGCKP\0", "{}", case.name);
        assert_eq!(u32_at(&ckp, 8), version, "{}: version", case.name);
        let at_12 = if version == 1 { 0 } else { 72 };
        assert_eq!(u32_at(&ckp, 12), at_12, "{}: reserved or length", case.name);
        assert_eq!(u64_at(&ckp, 40), FIXED_NOW_MS, "{}: written", case.name);
        if version == 2 {
            assert_eq!(u64_at(&ckp, 56), 0, "{}: generation", case.name);
            assert_eq!(u32_at(&ckp, 64), 0, "{}: metadata length", case.name);
        }
        assert_eq!(
            u32_at(&ckp, len - 4),
            crc32c::crc32c(&ckp[..len - 4]),
            "{}",
            case.name
        );
        let id = u128_at(&ckp, 16);
        assert!(!ids.contains(&id), "{}: a log id of its own", case.name);
        ids.push(id);

        let mut salts = Vec::new();
        for name in list(&dir) {
            let path = dir.join(&name);
            let Some(first) = name
                .strip_suffix(".seg")
                .or_else(|| name.strip_suffix(".free"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                assert!(
                    name == "CHECKPOINT" || name == "LOCK",
                    "{}: {name}",
                    case.name
                );
                continue;
            };
            let ctx = format!("v{version}/{}/{name}", case.name);
            let b = read(&path);
            let n = segment_header;
            assert!(b.len() >= n, "{ctx}");
            assert_eq!(&b[..8], b"TDLGSEG\0", "{ctx}");
            assert_eq!(u32_at(&b, 8), version, "{ctx}: version");
            assert_eq!(u32_at(&b, 12) as usize, n, "{ctx}: header length");
            assert_eq!(
                u128_at(&b, 16),
                id,
                "{ctx}: the log id of the checkpoint file"
            );
            assert_eq!(u64_at(&b, 32), first, "{ctx}: first LSN");
            assert_eq!(u64_at(&b, 48), FIXED_NOW_MS, "{ctx}: created");
            // Only the recycled segment records its earlier life: in version 1 how far it
            // reached (the whole file, since its new frames are fewer than the old ones); in
            // version 2 the earlier frames' seed, version and end.
            let recycled = name == "00000000000000000046.seg";
            if version == 1 {
                let prev_extent = if recycled {
                    u32::try_from(b.len().div_ceil(256)).expect("small")
                } else {
                    0
                };
                assert_eq!(u32_at(&b, 56), prev_extent, "{ctx}: prev_extent");
            } else {
                assert_eq!(u32_at(&b, 56) != 0, recycled, "{ctx}: prev_seed");
                let (prev_version, prev_end) = if recycled {
                    (2, b.len() as u64)
                } else {
                    (0, 0)
                };
                assert_eq!(u32_at(&b, 60), prev_version, "{ctx}: prev_version");
                assert_eq!(u64_at(&b, 64), 0, "{ctx}: generation");
                assert_eq!(u64_at(&b, 72), prev_end, "{ctx}: prev_end");
                assert!(b[80..124].iter().all(|&x| x == 0), "{ctx}: reserved");
            }
            assert_eq!(
                u32_at(&b, n - 4),
                crc32c::crc32c(&b[..n - 4]),
                "{ctx}: header crc"
            );
            let salt = u64_at(&b, 40);
            assert!(!salts.contains(&salt), "{ctx}: a salt of its own");
            salts.push(salt);
        }
    }

    // Every frame of the healthy log: dense LSNs, the batch flags of single records (0x03) and
    // of the two batches of three (0x02, 0x00, 0x01), kind 1, reserved zero, a durable lag that
    // claims nothing that was not durable, the batch's time (version 2), the test payload, and
    // the salted checksum; in version 2, after the last record, the sync marker of the close.
    let dir = version_dir(version).join("healthy");
    let mut lsn = 1;
    let mut markers = 0;
    let mut seals = 0;
    for path in segments(&dir) {
        let b = read(&path);
        let mut seed_input = b[16..32].to_vec();
        seed_input.extend_from_slice(&b[40..48]);
        let seed = crc32c::crc32c(&seed_input);
        let mut at = segment_header;
        while at < b.len() {
            let len = u32_at(&b, at + 4) as usize;
            let frame = &b[at..at + frame_header + len];
            let crc = crc32c::crc32c_append(seed, &frame[4..]);
            assert_eq!(u32_at(frame, 0), crc, "LSN {lsn}: checksum");
            if version == 2 {
                assert_eq!(u64_at(frame, 24), FIXED_NOW_MS, "LSN {lsn}: time");
            }
            if frame[16] == KIND_SYNC {
                // The close's marker: the next LSN, no flags, no payload, durable through 75.
                assert_eq!(version, 2);
                assert_eq!((u64_at(frame, 8), frame[17], len), (76, 0, 0), "the marker");
                assert_eq!(u32_at(frame, 20), 1, "durable through LSN 75");
                markers += 1;
                at += frame.len();
                continue;
            }
            if frame[16] == KIND_SEAL {
                // The seal of the first segment, its last frame: the next LSN, no flags, the
                // first and last LSN and time of its records; nothing was durable yet.
                assert_eq!(version, 2);
                assert_eq!((u64_at(frame, 8), frame[17], len), (lsn, 0, 32), "the seal");
                assert_eq!(
                    lsn - u64::from(u32_at(frame, 20)),
                    0,
                    "the seal's durable lag"
                );
                let p = &frame[frame_header..];
                let seal = (u64_at(p, 0), u64_at(p, 8), u64_at(p, 16), u64_at(p, 24));
                assert_eq!(seal, (1, lsn - 1, FIXED_NOW_MS, FIXED_NOW_MS), "the seal");
                seals += 1;
                at += frame.len();
                assert_eq!(at, b.len(), "the seal ends its segment");
                continue;
            }
            assert_eq!(u64_at(frame, 8), lsn, "{}", path.display());
            assert_eq!(frame[16], 1, "LSN {lsn}: kind");
            let flags = match lsn {
                51 | 71 => 0x02,
                52 | 72 => 0x00,
                53 | 73 => 0x01,
                _ => 0x03,
            };
            assert_eq!(frame[17], flags, "LSN {lsn}: flags");
            assert_eq!(&frame[18..20], &[0, 0], "LSN {lsn}: reserved");
            // Nothing was synced before the first segment was sealed; the first frame of the
            // second was encoded before that seal.
            let sealed_last = if version == 1 { 63 } else { 56 };
            let durable = lsn - u64::from(u32_at(frame, 20));
            assert_eq!(
                durable,
                if lsn <= sealed_last + 1 {
                    0
                } else {
                    sealed_last
                },
                "LSN {lsn}: durable lag"
            );
            assert_eq!(&frame[frame_header..], payload(lsn), "LSN {lsn}: payload");
            at += frame.len();
            lsn += 1;
        }
        assert_eq!(at, b.len(), "{}: frames to the end", path.display());
    }
    assert_eq!(lsn, 76);
    assert_eq!(markers, usize::from(version == 2));
    assert_eq!(seals, usize::from(version == 2));
}

// ---------------------------------------------------------------------------------------------
// What recovery does with each fixture, in each mode.
// ---------------------------------------------------------------------------------------------

/// What opening a copy of a fixture must do.
#[derive(Debug, Clone)]
enum Expect {
    /// Fail with `Error::Corrupt` naming this file of the log, offset and kind.
    Corrupt(&'static str, u64, CorruptionKind),
    /// Fail with `Error::MissingRecords`: LSNs `first..=last` are missing before `file`.
    Missing {
        first: u64,
        last: u64,
        file: &'static str,
    },
    /// Open.
    Opens(Outcome),
}

/// A recovery that opened the log.
#[derive(Debug, Clone, Default)]
struct Outcome {
    /// The records read back, as LSN ranges (each record holds `payload(lsn)`).
    records: Vec<RangeInclusive<u64>>,
    /// `RecoveryReport::last_lsn`.
    last: u64,
    /// `RecoveryReport::checkpoint_lsn`.
    checkpoint: u64,
    /// `RecoveryReport::records_recovered`: every complete record of the segments kept,
    /// those below the checkpoint too.
    recovered: u64,
    /// Each damaged place: the file, the offset, what is wrong, what was done about it.
    damage: Vec<(&'static str, u64, CorruptionKind, DamageAction)>,
    /// `RecoveryReport::lost`: LSNs skipped; reading one fails with `RecordLost`.
    lost: Vec<RangeInclusive<u64>>,
    /// `RecoveryReport::torn_bytes_cut`.
    cut: u64,
    /// `RecoveryReport::intact_frames_cut`.
    intact_cut: u64,
    /// What goes to `quarantine/`, in the report's order: bytes cut from a segment
    /// (`<segment>.<offset>.cut`) and whole segments, under their names.
    quarantined: Vec<&'static str>,
    /// Segments removed as wholly below the checkpoint.
    removed: Vec<&'static str>,
    /// A segment created for appends (by a writable open that skipped damage in the last
    /// segment, or whose last segment is sealed): a header of its own (a new salt), no frame.
    created: Option<&'static str>,
}

/// A recovery that finds nothing to do.
fn clean(records: &[RangeInclusive<u64>], last: u64, checkpoint: u64, recovered: u64) -> Outcome {
    Outcome {
        records: records.to_vec(),
        last,
        checkpoint,
        recovered,
        ..Outcome::default()
    }
}

const S1: &str = "00000000000000000001.seg";
const S13: &str = "00000000000000000013.seg";
const S113: &str = "00000000000000000113.seg";
const S128: &str = "00000000000000000128.seg";

fn frame_checksum(stored: u32, computed: u32) -> CorruptionKind {
    CorruptionKind::FrameChecksum { stored, computed }
}

fn cut(at: u64, bytes: u64) -> DamageAction {
    DamageAction::Cut { at, bytes }
}

/// The table: what each mode does with each fixture, in the order of [`MODES`] (`Strict`,
/// `TolerateTornTail`, `PointInTime`, `SkipCorrupt`). Checked against docs/format.md (2.3, 3,
/// 4.3, 4.6) and docs/design.md (Recovery): see tests/fixtures/README.md.
fn expected(version: u32, case: &str) -> [Expect; 4] {
    match version {
        1 => expected_v1(case),
        _ => expected_v2(case),
    }
}

/// The table for version 2: the same cases as [`expected_v1`], where frames have 32-byte headers
/// behind a 128-byte segment header and every sync leaves a sync marker. The difference that
/// matters: in `flipped-last`, the close's sync marker proves LSN 6 durable, so the damage is
/// refused where version 1 cut it as an unsynced tail.
fn expected_v2(case: &str) -> [Expect; 4] {
    use Expect::{Corrupt, Missing, Opens};
    let same = |e: Expect| [e.clone(), e.clone(), e.clone(), e];
    // Damage to records something proves durable: refused by `Strict` and `TolerateTornTail`,
    // the end of the log in `PointInTime`, skipped by `SkipCorrupt`, which then gives appends
    // a new segment (13, after the twelve records).
    let proven = |at: u64, kind: CorruptionKind, cut_bytes: u64, intact: u64, skip_to: u64| {
        // The damaged record: LSN 4 at offset 308, LSN 6 elsewhere.
        let lost = if at == 308 { 4 } else { 6 };
        let kept_before = lost - 1;
        [
            Corrupt(S1, at, kind.clone()),
            Corrupt(S1, at, kind.clone()),
            Opens(Outcome {
                damage: vec![(S1, at, kind.clone(), cut(at, cut_bytes))],
                cut: cut_bytes,
                intact_cut: intact,
                quarantined: vec![CUTS.iter().find(|c| c.0 == at).expect("a cut").1],
                ..clean(&[1..=kept_before], kept_before, 1, kept_before)
            }),
            Opens(Outcome {
                damage: vec![(S1, at, kind, DamageAction::Skipped { to: skip_to })],
                lost: vec![lost..=lost],
                created: Some(S13),
                ..clean(&[1..=lost - 1, lost + 1..=12], 12, 1, 11)
            }),
        ]
    };
    const CUTS: [(u64, &str); 3] = [
        (308, "00000000000000000001.seg.308.cut"),
        (463, "00000000000000000001.seg.463.cut"),
        (623, "00000000000000000001.seg.623.cut"),
    ];
    match case {
        "empty" => same(Opens(clean(&[], 0, 1, 0))),
        "healthy" => same(Opens(clean(&[1..=75], 75, 1, 75))),
        // LSN 12, the last of the batch 10..=12, is torn: a frame of 80 bytes with 37 left (the
        // close's sync marker after it is gone too). The batch goes whole: the cut is at the
        // frame of LSN 10 (offset 757).
        "torn-tail" => {
            let torn = CorruptionKind::TruncatedFrame {
                needed: 80,
                available: 37,
            };
            let cut = Opens(Outcome {
                damage: vec![(S1, 896, torn.clone(), cut(757, 176))],
                cut: 176,
                quarantined: vec!["00000000000000000001.seg.757.cut"],
                ..clean(&[1..=9], 9, 1, 9)
            });
            [Corrupt(S1, 896, torn), cut.clone(), cut.clone(), cut]
        }
        // LSN 20 (offset 1482, 86 bytes) in the sealed segment 1: proven damage.
        "flipped-sealed" => {
            let kind = frame_checksum(0xa2e7_fc46, 0xeaab_b803);
            [
                Corrupt(S1, 1482, kind.clone()),
                Corrupt(S1, 1482, kind.clone()),
                Opens(Outcome {
                    damage: vec![(S1, 1482, kind.clone(), cut(1482, 2658))],
                    cut: 2658,
                    intact_cut: 37, // 36 records and the seal
                    quarantined: vec![
                        "00000000000000000001.seg.1482.cut",
                        "00000000000000000057.seg",
                    ],
                    ..clean(&[1..=19], 19, 1, 19)
                }),
                Opens(Outcome {
                    damage: vec![(S1, 1482, kind, DamageAction::Skipped { to: 1568 })],
                    lost: vec![20..=20],
                    ..clean(&[1..=19, 21..=70], 70, 1, 69)
                }),
            ]
        }
        // LSN 6 (offset 463) in the last segment; the six records after it say the log was
        // durable up to LSN 0, but the close's sync marker says it was durable through LSN 12.
        "flipped-last" => proven(463, frame_checksum(0x93c6_e034, 0xb718_1d74), 545, 7, 551),
        // Segment 57 (LSNs 57..=112) is gone; segment 113 holds 113..=140.
        "missing-middle" => {
            let gap = CorruptionKind::MissingRecords {
                first: Lsn::new(57),
                last: Lsn::new(112),
            };
            let missing = Missing {
                first: 57,
                last: 112,
                file: S113,
            };
            [
                missing.clone(),
                missing,
                // Segment 1 now ends the log, and it is sealed: appends go to a new segment.
                Opens(Outcome {
                    damage: vec![(S113, 0, gap.clone(), DamageAction::Quarantined)],
                    quarantined: vec![S113],
                    created: Some("00000000000000000057.seg"),
                    ..clean(&[1..=56], 56, 1, 56)
                }),
                Opens(Outcome {
                    damage: vec![(S113, 0, gap, DamageAction::Accepted)],
                    lost: vec![57..=112],
                    ..clean(&[1..=56, 113..=140], 140, 1, 84)
                }),
            ]
        }
        // The frame of LSN 6 (offset 623, 88 bytes) is the other log's. Every record was synced
        // as it was appended, so the sync marker after LSN 6 proves it was durable.
        "foreign-frame" => proven(623, frame_checksum(0x2fcd_b262, 0x1fcc_aa9c), 737, 13, 711),
        // The earlier frames after the three new ones and the close's sync marker are segment
        // 1's, known by the seed the header keeps: the end of the data. Nothing is reported, and
        // the free file is left alone.
        "recycled" => same(Opens(clean(&[46..=48], 48, 46, 3))),
        // Segment 1 lies wholly below the checkpoint (59, the third LSN of segment 57): removed.
        "interrupted-checkpoint" => same(Opens(Outcome {
            removed: vec![S1],
            ..clean(&[59..=70], 70, 59, 14)
        })),
        // LSN 4 (offset 308) in the last segment; the frame of LSN 7 says the log was durable
        // up to LSN 6, and so does the sync marker after LSN 6: proven damage.
        "flipped-last-proven" => {
            proven(308, frame_checksum(0x32d5_b94c, 0xef5e_f429), 732, 10, 382)
        }
        other => panic!("no expectations for {other}"),
    }
}

/// The table for version 1.
fn expected_v1(case: &str) -> [Expect; 4] {
    use Expect::{Corrupt, Missing, Opens};
    let same = |e: Expect| [e.clone(), e.clone(), e.clone(), e];
    match case {
        "empty" => same(Opens(clean(&[], 0, 1, 0))),
        "healthy" => same(Opens(clean(&[1..=75], 75, 1, 75))),
        // LSN 12, the last of the batch 10..=12, is torn: a frame of 72 bytes with 29 left. The
        // batch goes whole: the cut is at the frame of LSN 10 (offset 621).
        "torn-tail" => {
            let torn = CorruptionKind::TruncatedFrame {
                needed: 72,
                available: 29,
            };
            let cut = Opens(Outcome {
                damage: vec![(S1, 744, torn.clone(), cut(621, 152))],
                cut: 152,
                quarantined: vec!["00000000000000000001.seg.621.cut"],
                ..clean(&[1..=9], 9, 1, 9)
            });
            [Corrupt(S1, 744, torn), cut.clone(), cut.clone(), cut]
        }
        // LSN 20 (offset 1266, 78 bytes) in the sealed segment 1: proven damage.
        "flipped-sealed" => {
            let kind = frame_checksum(0x334c_037e, 0x7b00_473b);
            [
                Corrupt(S1, 1266, kind.clone()),
                Corrupt(S1, 1266, kind.clone()),
                Opens(Outcome {
                    damage: vec![(S1, 1266, kind.clone(), cut(1266, 2754))],
                    cut: 2754,
                    intact_cut: 43,
                    quarantined: vec![
                        "00000000000000000001.seg.1266.cut",
                        "00000000000000000064.seg",
                    ],
                    ..clean(&[1..=19], 19, 1, 19)
                }),
                Opens(Outcome {
                    damage: vec![(S1, 1266, kind, DamageAction::Skipped { to: 1344 })],
                    lost: vec![20..=20],
                    ..clean(&[1..=19, 21..=70], 70, 1, 69)
                }),
            ]
        }
        // LSN 6 (offset 359) in the last segment; the six intact frames after it say the log was
        // durable up to LSN 0, not past LSN 5: the unsynced tail, cut in every tolerant mode.
        "flipped-last" => {
            let kind = frame_checksum(0xb1f4_cd3d, 0x952a_307d);
            let cut = Opens(Outcome {
                damage: vec![(S1, 359, kind.clone(), cut(359, 457))],
                cut: 457,
                intact_cut: 6,
                quarantined: vec!["00000000000000000001.seg.359.cut"],
                ..clean(&[1..=5], 5, 1, 5)
            });
            [Corrupt(S1, 359, kind), cut.clone(), cut.clone(), cut]
        }
        // Segment 64 (LSNs 64..=127) is gone; segment 128 holds 128..=140.
        "missing-middle" => {
            let gap = CorruptionKind::MissingRecords {
                first: Lsn::new(64),
                last: Lsn::new(127),
            };
            let missing = Missing {
                first: 64,
                last: 127,
                file: S128,
            };
            [
                missing.clone(),
                missing,
                Opens(Outcome {
                    damage: vec![(S128, 0, gap.clone(), DamageAction::Quarantined)],
                    quarantined: vec![S128],
                    ..clean(&[1..=63], 63, 1, 63)
                }),
                Opens(Outcome {
                    damage: vec![(S128, 0, gap, DamageAction::Accepted)],
                    lost: vec![64..=127],
                    ..clean(&[1..=63, 128..=140], 140, 1, 76)
                }),
            ]
        }
        // The frame at LSN 6 (offset 359, 80 bytes) is the other log's: its checksum fails here.
        // Every record was synced as it was appended, so the frame of LSN 7 proves LSN 6 was
        // durable.
        "foreign-frame" => {
            let kind = frame_checksum(0x2832_530d, 0xa352_e050);
            [
                Corrupt(S1, 359, kind.clone()),
                Corrupt(S1, 359, kind.clone()),
                Opens(Outcome {
                    damage: vec![(S1, 359, kind.clone(), cut(359, 457))],
                    cut: 457,
                    intact_cut: 6,
                    quarantined: vec!["00000000000000000001.seg.359.cut"],
                    ..clean(&[1..=5], 5, 1, 5)
                }),
                Opens(Outcome {
                    damage: vec![(S1, 359, kind, DamageAction::Skipped { to: 439 })],
                    lost: vec![6..=6],
                    created: Some(S13),
                    ..clean(&[1..=5, 7..=12], 12, 1, 11)
                }),
            ]
        }
        // The old frames after the three new ones are the end of the data: nothing is reported,
        // and the free file is left alone.
        "recycled" => same(Opens(clean(&[46..=48], 48, 46, 3))),
        // Segment 1 lies wholly below the checkpoint (66, the third LSN of segment 64): removed.
        "interrupted-checkpoint" => same(Opens(Outcome {
            removed: vec![S1],
            ..clean(&[66..=70], 70, 66, 7)
        })),
        // LSN 4 (offset 220, 66 bytes) in the last segment; the frame of LSN 7 says the log was
        // durable up to LSN 6: proven damage.
        "flipped-last-proven" => {
            let kind = frame_checksum(0xd4c6_dc48, 0x094d_912d);
            [
                Corrupt(S1, 220, kind.clone()),
                Corrupt(S1, 220, kind.clone()),
                Opens(Outcome {
                    damage: vec![(S1, 220, kind.clone(), cut(220, 596))],
                    cut: 596,
                    intact_cut: 8,
                    quarantined: vec!["00000000000000000001.seg.220.cut"],
                    ..clean(&[1..=3], 3, 1, 3)
                }),
                Opens(Outcome {
                    damage: vec![(S1, 220, kind, DamageAction::Skipped { to: 286 })],
                    lost: vec![4..=4],
                    created: Some(S13),
                    ..clean(&[1..=3, 5..=12], 12, 1, 11)
                }),
            ]
        }
        other => panic!("no expectations for the case {other}"),
    }
}

/// The directory a writable recovery that had `outcome` leaves: `before` with segments cut,
/// the bytes cut (if any is not zero) and the segments moved in `quarantine/`, and the segments
/// below the checkpoint removed.
fn after_recovery(
    before: &BTreeMap<String, Vec<u8>>,
    outcome: &Outcome,
) -> BTreeMap<String, Vec<u8>> {
    let mut want = before.clone();
    for (file, _, _, action) in &outcome.damage {
        if let DamageAction::Cut { at, bytes } = action {
            let data = want.get_mut(*file).expect("the segment cut");
            let tail = data.split_off(usize::try_from(*at).expect("small"));
            assert_eq!(tail.len() as u64, *bytes, "{file}: bytes cut");
            if tail.iter().any(|&b| b != 0) {
                want.insert(format!("quarantine/{file}.{at}.cut"), tail);
            }
        }
    }
    for name in outcome.quarantined.iter().filter(|n| !n.ends_with(".cut")) {
        let data = want.remove(*name).expect("a segment moved to quarantine");
        want.insert(format!("quarantine/{name}"), data);
    }
    for name in &outcome.removed {
        want.remove(*name).expect("a segment removed");
    }
    if !outcome.quarantined.is_empty() {
        want.insert("quarantine/".to_owned(), Vec::new());
    }
    want
}

/// Checks the report and the records of a log opened from a fixture copied to `dir`.
fn check_opened(log: &Log, dir: &Path, want: &Outcome, read_only: bool, ctx: &str) -> Result<()> {
    let report = log.recovery_report();
    let ctx = format!("{ctx}\n{report}");
    assert_eq!(report.dry_run, read_only, "{ctx}");
    assert!(!report.created, "{ctx}");
    assert_eq!(
        (
            report.last_lsn,
            report.checkpoint_lsn,
            report.records_recovered
        ),
        (
            Lsn::new(want.last),
            Lsn::new(want.checkpoint),
            want.recovered
        ),
        "{ctx}: last LSN, checkpoint LSN, records recovered"
    );
    let damage: Vec<_> = report
        .damage
        .iter()
        .map(|d| (d.path.clone(), d.offset, d.kind.clone(), d.action.clone()))
        .collect();
    let expected: Vec<_> = want
        .damage
        .iter()
        .map(|(file, offset, kind, action)| (dir.join(file), *offset, kind.clone(), action.clone()))
        .collect();
    assert_eq!(damage, expected, "{ctx}: damage");
    let lost: Vec<RangeInclusive<Lsn>> = want
        .lost
        .iter()
        .map(|r| Lsn::new(*r.start())..=Lsn::new(*r.end()))
        .collect();
    assert_eq!(report.lost, lost, "{ctx}: lost");
    assert_eq!(
        (report.torn_bytes_cut, report.intact_frames_cut),
        (want.cut, want.intact_cut),
        "{ctx}: bytes cut, intact frames cut"
    );
    // A dry run lists what it would move to the quarantine folder and the files of cut bytes it
    // would write there, as a real recovery does.
    let quarantined: Vec<PathBuf> = want
        .quarantined
        .iter()
        .map(|n| dir.join("quarantine").join(n))
        .collect();
    assert_eq!(report.quarantined, quarantined, "{ctx}: quarantined");
    let removed: Vec<PathBuf> = want.removed.iter().map(|n| dir.join(n)).collect();
    assert_eq!(report.removed_below_checkpoint, removed, "{ctx}: removed");
    assert!(report.removed_temp_files.is_empty(), "{ctx}");
    assert!(report.unknown_files.is_empty(), "{ctx}");

    let records: Vec<(u64, Vec<u8>)> = log
        .iter()?
        .map(|r| r.map(|r| (r.lsn().get(), r.into_data())))
        .collect::<Result<_>>()?;
    let lsns: Vec<u64> = records.iter().map(|(lsn, _)| *lsn).collect();
    let expected: Vec<u64> = want.records.iter().flat_map(Clone::clone).collect();
    assert_eq!(lsns, expected, "{ctx}: records read back");
    for (lsn, data) in &records {
        assert_eq!(data, &payload(*lsn), "{ctx}: payload of LSN {lsn}");
    }
    assert_eq!(log.last_lsn(), Lsn::new(want.last), "{ctx}");
    for lsn in want.lost.iter().flat_map(Clone::clone) {
        match log.read(Lsn::new(lsn)) {
            Err(Error::RecordLost { lsn: l }) if l == Lsn::new(lsn) => {}
            other => panic!("{ctx}: a read of the lost LSN {lsn}: {other:?}"),
        }
    }
    Ok(())
}

/// Opens a copy of the fixture `case` in `mode` and checks that it does what `expect` says,
/// and leaves the directory as it says: unchanged after a refusal or a read-only open.
fn check(
    version: u32,
    case: &str,
    mode: RecoveryMode,
    read_only: bool,
    expect: &Expect,
) -> Result<()> {
    let ro = if read_only { ", read-only" } else { "" };
    let ctx = format!("fixture v{version}/{case} in {mode:?}{ro}");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path().join(case);
    copy_tree(&version_dir(version).join(case), &dir);
    let before = snapshot(&dir);
    let opened = Log::builder(&dir)
        .recovery_mode(mode)
        .read_only(read_only)
        .open();
    let opened_with = match (expect, opened) {
        (
            Expect::Corrupt(file, offset, kind),
            Err(Error::Corrupt {
                path,
                offset: o,
                kind: k,
            }),
        ) => {
            assert_eq!(
                (path, o, k),
                (dir.join(file), *offset, kind.clone()),
                "{ctx}"
            );
            None
        }
        (
            Expect::Missing { first, last, file },
            Err(Error::MissingRecords {
                first: f,
                last: l,
                path,
            }),
        ) => {
            assert_eq!(
                (f, l, path),
                (Lsn::new(*first), Lsn::new(*last), dir.join(file)),
                "{ctx}"
            );
            None
        }
        (Expect::Opens(outcome), Ok(log)) => {
            assert_eq!(log.recovery_report().mode, mode, "{ctx}");
            check_opened(&log, &dir, outcome, read_only, &ctx)?;
            drop(log);
            Some(outcome)
        }
        (expect, Err(e)) => panic!("{ctx}: expected {expect:?}, but the open failed: {e:?}"),
        (expect, Ok(log)) => panic!(
            "{ctx}: expected {expect:?}, but the log opened:\n{}",
            log.recovery_report()
        ),
    };
    let mut found = snapshot(&dir);
    let want = match opened_with {
        Some(outcome) if !read_only => {
            if let Some(name) = outcome.created {
                let header = found
                    .remove(name)
                    .unwrap_or_else(|| panic!("{ctx}: {name} not created"));
                // A header, then the zeros of the space preallocated for the segment.
                let len = u32_at(&header, 12) as usize;
                assert!(
                    header.starts_with(b"TDLGSEG\0")
                        && u32_at(&header, 8) == FORMAT_VERSION
                        && header.len() >= len
                        && header[len..].iter().all(|&b| b == 0),
                    "{ctx}: {name} holds {} bytes, not a new segment",
                    header.len()
                );
            }
            after_recovery(&before, outcome)
        }
        _ => before,
    };
    assert_same_tree(&found, &want, &format!("{ctx}: the directory after"));
    Ok(())
}

#[test]
fn every_fixture_recovers_as_expected_in_every_mode() -> Result<()> {
    for version in VERSIONS {
        for case in &CASES {
            for (mode, expect) in MODES.into_iter().zip(expected(version, case.name)) {
                check(version, case.name, mode, false, &expect)?;
            }
        }
    }
    Ok(())
}

/// A read-only open is a dry run: the same verdicts and records as a writable open, and not one
/// byte of the directory changed (no file created, cut, moved or removed).
#[test]
fn read_only_opens_of_every_fixture_change_no_byte() -> Result<()> {
    for version in VERSIONS {
        for case in &CASES {
            for (mode, expect) in MODES.into_iter().zip(expected(version, case.name)) {
                check(version, case.name, mode, true, &expect)?;
            }
        }
    }
    Ok(())
}

#[test]
fn the_readme_describes_every_case() {
    let readme = read(&fixtures_root().join("README.md"));
    let readme = String::from_utf8(readme).expect("UTF-8");
    for case in &CASES {
        assert!(
            readme.contains(&format!("`{}`", case.name)),
            "tests/fixtures/README.md does not describe {}",
            case.name
        );
    }
}
