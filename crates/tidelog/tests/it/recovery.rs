//! Recovery from damaged logs in every recovery mode: torn and zero-filled tails, incomplete
//! batches, flipped bytes, LSN jumps, missing and foreign segments, corrupt segment headers and
//! checkpoints, and a deterministic sweep of single-byte flips.
//!
//! Logs are damaged by hand through the `Storage` trait (see `common::Env`), so every scenario
//! runs on the in-memory storage and on the real disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tidelog::{
    CorruptionKind, DamageAction, Durability, Error, Log, Lsn, RecoveryMode, Result, SyncPolicy,
};

use crate::common::{Env, append_n, assert_holds, payload, read_all};
use crate::hooked::HookedStorage;

use RecoveryMode::{PointInTime, SkipCorrupt, Strict, TolerateTornTail};

const MODES: [RecoveryMode; 4] = [Strict, TolerateTornTail, PointInTime, SkipCorrupt];
/// The modes that cut a torn tail instead of refusing it.
const TOLERANT: [RecoveryMode; 3] = [TolerateTornTail, PointInTime, SkipCorrupt];
/// Records in the standard test log: several 4 KiB segments.
const RECORDS: u64 = 300;

// ---------------------------------------------------------------------------------------------
// Helpers: the on-disk layout as the tests see it.
// ---------------------------------------------------------------------------------------------

/// The lengths of a segment file's header and of a frame's header, measured on a fresh log
/// rather than hard-coded, so the tests follow the format if those headers grow.
fn header_lens() -> (usize, usize) {
    static LENS: OnceLock<(usize, usize)> = OnceLock::new();
    *LENS.get_or_init(|| {
        let env = Env::mem();
        let log = env.open().expect("open a new log");
        log.close().expect("close");
        let path = env.segment_paths().pop().expect("the new log's segment");
        let empty = env.read_file(&path).len();
        // A close leaves a sync marker after the records: one record and then two, in one
        // batch each, differ by a frame.
        let batch_len = |n: u64| {
            let env = Env::mem();
            let log = env.open().expect("open a new log");
            let records: Vec<Vec<u8>> = (1..=n).map(payload).collect();
            log.append_batch(&records, Durability::Synced)
                .expect("append");
            log.close().expect("close");
            let path = env.segment_paths().pop().expect("the new log's segment");
            env.read_file(&path).len()
        };
        (empty, batch_len(2) - batch_len(1) - payload(2).len())
    })
}

fn segment_header_len() -> usize {
    header_lens().0
}

fn frame_header_len() -> usize {
    header_lens().1
}

/// A frame found in a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    offset: usize,
    /// Header plus payload.
    len: usize,
    lsn: u64,
    flags: u8,
}

impl Frame {
    fn end(&self) -> usize {
        self.offset + self.len
    }

    fn crc(&self, segment: &[u8]) -> u32 {
        u32_at(segment, self.offset)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn u128_at(b: &[u8], at: usize) -> u128 {
    let mut x = [0; 16];
    x.copy_from_slice(&b[at..at + 16]);
    u128::from_le_bytes(x)
}

/// The record frames of a segment file, read by their length fields (no checksum check), up to
/// the end of the file or a zero header; sync markers (kind 2) are stepped over.
fn frames(bytes: &[u8]) -> Vec<Frame> {
    all_frames(bytes).0
}

/// The record frames and the sync markers of a segment file (a marker's `lsn` is the LSN the
/// next record takes).
fn all_frames(bytes: &[u8]) -> (Vec<Frame>, Vec<Frame>) {
    let (mut out, mut markers) = (Vec::new(), Vec::new());
    let mut at = segment_header_len();
    while at + frame_header_len() <= bytes.len() {
        let head = &bytes[at..at + frame_header_len()];
        if head.iter().all(|&b| b == 0) {
            break;
        }
        let len = frame_header_len() + u32_at(head, 4) as usize;
        if at + len > bytes.len() {
            break;
        }
        let frame = Frame {
            offset: at,
            len,
            lsn: u64_at(head, 8),
            flags: head[17],
        };
        if head[16] == 1 {
            out.push(frame);
        } else {
            markers.push(frame);
        }
        at += len;
    }
    (out, markers)
}

/// Removes the sync marker a close left at the end of the segment at `path`, if there is one:
/// the file is then as a crash before any sync would have left it (with `SyncPolicy::Manual`
/// and buffered appends, nothing else proves its records durable).
fn drop_close_marker(env: &Env, path: &Path) {
    let bytes = env.read_file(path);
    let mut at = segment_header_len();
    let mut last = None;
    while at + frame_header_len() <= bytes.len() {
        let head = &bytes[at..at + frame_header_len()];
        if head.iter().all(|&b| b == 0) {
            break;
        }
        last = Some((at, head[16]));
        at += frame_header_len() + u32_at(head, 4) as usize;
    }
    if let Some((marker, 2)) = last {
        env.write_file(path, &bytes[..marker]);
    }
}

/// A segment file as found in the log directory.
#[derive(Debug, Clone)]
struct SegFile {
    path: PathBuf,
    name: String,
    first: u64,
    bytes: Vec<u8>,
    frames: Vec<Frame>,
}

impl SegFile {
    fn last(&self) -> u64 {
        self.frames.last().map_or(self.first - 1, |f| f.lsn)
    }

    fn frame(&self, lsn: u64) -> Frame {
        *self
            .frames
            .iter()
            .find(|f| f.lsn == lsn)
            .unwrap_or_else(|| panic!("LSN {lsn} is not in {}", self.name))
    }

    /// A frame in the middle, with frames before and after it.
    fn middle_frame(&self) -> Frame {
        assert!(self.frames.len() >= 3, "{} holds too few frames", self.name);
        self.frames[self.frames.len() / 2]
    }

    fn log_id(&self) -> u128 {
        u128_at(&self.bytes, 16)
    }
}

/// Every segment file of the log, in LSN order, with its bytes and frames.
fn layout(env: &Env) -> Vec<SegFile> {
    env.segment_paths()
        .into_iter()
        .map(|path| {
            let bytes = env.read_file(&path);
            let name = file_name(&path);
            let first = name
                .strip_suffix(".seg")
                .and_then(|d| d.parse().ok())
                .expect("segment name");
            assert_eq!(u64_at(&bytes, 32), first, "header of {name}");
            let frames = frames(&bytes);
            SegFile {
                path,
                name,
                first,
                bytes,
                frames,
            }
        })
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("file name")
        .to_owned()
}

/// The checksum seed of a segment's frames, from its header (as `format.rs` derives it).
fn seed_of(segment: &[u8]) -> u32 {
    let mut s = Vec::with_capacity(24);
    s.extend_from_slice(&segment[16..32]);
    s.extend_from_slice(&segment[40..48]);
    crc32c::crc32c(&s)
}

/// The checksum a frame at `at` of `len` bytes should carry in `segment`.
fn frame_crc(segment: &[u8], at: usize, len: usize) -> u32 {
    crc32c::crc32c_append(seed_of(segment), &segment[at + 4..at + len])
}

/// Opens the log so that every append is synced before the next one is written: each frame
/// then proves that the records before it were durable, so damage before intact frames can
/// never pass for an unsynced tail.
fn open_synced(env: &Env) -> Result<Log> {
    env.builder().sync_policy(SyncPolicy::EveryCommit).open()
}

/// Creates a log of `n` records (`payload(lsn)` each, each one synced), closed; returns its id.
fn build(env: &Env, n: u64) -> Result<u128> {
    let log = open_synced(env)?;
    append_n(&log, n)?;
    let id = log.log_id();
    log.close()?;
    Ok(id)
}

fn open_in(env: &Env, mode: RecoveryMode) -> Result<Log> {
    env.builder().recovery_mode(mode).open()
}

/// XORs one byte of a file with `mask`.
fn flip(env: &Env, path: &Path, offset: usize, mask: u8) {
    let mut bytes = env.read_file(path);
    bytes[offset] ^= mask;
    env.write_file(path, &bytes);
}

fn quarantine_dir(env: &Env) -> PathBuf {
    env.dir.join("quarantine")
}

/// Names of the files in the quarantine folder (none if it does not exist).
fn quarantined(env: &Env) -> Vec<String> {
    env.list(&quarantine_dir(env))
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = paths.iter().map(|p| file_name(p)).collect();
    names.sort();
    names
}

/// The LSNs an iteration over the whole log yields, after checking every payload.
fn lsns(log: &Log) -> Result<Vec<u64>> {
    let all = read_all(log)?;
    for (lsn, data) in &all {
        assert_eq!(data, &payload(*lsn), "payload of LSN {lsn}");
    }
    Ok(all.into_iter().map(|(lsn, _)| lsn).collect())
}

/// The `Error::Corrupt` an open must fail with.
fn corrupt(result: Result<Log>, context: &str) -> (PathBuf, u64, CorruptionKind) {
    match result {
        Err(Error::Corrupt { path, offset, kind }) => (path, offset, kind),
        Err(other) => panic!("{context}: expected Error::Corrupt, got {other:?}"),
        Ok(log) => panic!(
            "{context}: expected Error::Corrupt, but the log opened: {}",
            log.recovery_report()
        ),
    }
}

fn lsn_range(first: u64, last: u64) -> std::ops::RangeInclusive<Lsn> {
    Lsn::new(first)..=Lsn::new(last)
}

/// Reopens in the default mode, expects a clean recovery, and checks the log holds `1..=last`.
fn reopen_clean(env: &Env, last: u64, context: &str) -> Result<()> {
    let log = env.open()?;
    let report = log.recovery_report();
    assert!(report.is_clean(), "{context}: reopen not clean: {report}");
    assert_eq!(report.torn_bytes_cut, 0, "{context}");
    assert!(report.quarantined.is_empty(), "{context}: {report}");
    assert_holds(&log, 1, last)?;
    log.close()
}

/// Checks that appends continue at `next` and survive a clean reopen in the default mode.
fn appends_continue(env: &Env, log: Log, next: u64, context: &str) -> Result<()> {
    assert_eq!(log.last_lsn(), Lsn::new(next - 1), "{context}");
    assert_eq!(
        log.append(&payload(next), Durability::Synced)?,
        Lsn::new(next),
        "{context}: next LSN"
    );
    // Enough to roll into new segments past the point of damage.
    let last = append_n(&log, 150)?.get();
    log.close()?;
    reopen_clean(env, last, context)
}

// ---------------------------------------------------------------------------------------------
// 1. Torn tails.
// ---------------------------------------------------------------------------------------------

#[test]
fn torn_tail_is_cut_and_quarantined() -> Result<()> {
    for mode in TOLERANT {
        for env in Env::both() {
            let ctx = format!("{} {mode:?}", env.name());
            build(&env, RECORDS)?;
            let path = layout(&env).pop().expect("segments").path;
            // As a crash would leave it: the last record, not the close's sync marker, ends it.
            drop_close_marker(&env, &path);
            let segs = layout(&env);
            let last = segs.last().expect("segments");
            let frame = last.frame(RECORDS);
            assert_eq!(
                frame.end(),
                last.bytes.len(),
                "the last frame ends the file"
            );
            // The header is whole, the payload is torn.
            let keep = frame.offset + frame_header_len() + 5;
            env.write_file(&last.path, &last.bytes[..keep]);
            let cut = (keep - frame.offset) as u64;

            let log = open_in(&env, mode)?;
            let report = log.recovery_report();
            assert_eq!(report.torn_bytes_cut, cut, "{ctx}: {report}");
            assert_eq!(report.damage.len(), 1, "{ctx}: {report}");
            let d = &report.damage[0];
            assert_eq!(d.path, last.path, "{ctx}");
            assert_eq!(d.offset, frame.offset as u64, "{ctx}");
            assert_eq!(
                d.kind,
                CorruptionKind::TruncatedFrame {
                    needed: frame.len as u64,
                    available: cut,
                },
                "{ctx}"
            );
            assert_eq!(
                d.action,
                DamageAction::Cut {
                    at: frame.offset as u64,
                    bytes: cut,
                },
                "{ctx}"
            );
            assert!(report.lost.is_empty(), "{ctx}: {report}");
            // The cut bytes are kept in quarantine, and the file is cut.
            assert_eq!(report.quarantined.len(), 1, "{ctx}: {report}");
            assert_eq!(quarantined(&env), names(&report.quarantined), "{ctx}");
            assert_eq!(
                env.read_file(&report.quarantined[0]),
                &last.bytes[frame.offset..keep],
                "{ctx}: quarantined bytes"
            );
            assert_eq!(env.read_file(&last.path).len(), frame.offset, "{ctx}");
            assert_eq!(report.last_lsn, Lsn::new(RECORDS - 1), "{ctx}");
            assert_holds(&log, 1, RECORDS - 1)?;
            appends_continue(&env, log, RECORDS, &ctx)?;
        }
    }
    Ok(())
}

#[test]
fn strict_refuses_a_torn_tail_and_changes_nothing() -> Result<()> {
    for env in Env::both() {
        build(&env, RECORDS)?;
        let segs = layout(&env);
        let last = segs.last().expect("segments");
        let frame = last.frame(RECORDS);
        let keep = frame.offset + frame_header_len() + 5;
        env.write_file(&last.path, &last.bytes[..keep]);

        let (path, offset, kind) = corrupt(open_in(&env, Strict), env.name());
        assert_eq!((path, offset), (last.path.clone(), frame.offset as u64));
        assert!(
            matches!(kind, CorruptionKind::TruncatedFrame { .. }),
            "{kind}"
        );
        assert_eq!(env.read_file(&last.path), &last.bytes[..keep], "untouched");
        assert!(quarantined(&env).is_empty());
        // The default mode still recovers it afterwards.
        let log = env.open()?;
        assert_eq!(log.recovery_report().damage.len(), 1);
        assert_holds(&log, 1, RECORDS - 1)?;
    }
    Ok(())
}

#[test]
fn garbage_after_the_last_frame_is_cut_and_quarantined() -> Result<()> {
    let garbage: Vec<u8> = (0..37u8).map(|i| 0xA5 ^ i.wrapping_mul(29)).collect();
    for mode in MODES {
        for env in Env::both() {
            let ctx = format!("{} {mode:?}", env.name());
            build(&env, RECORDS)?;
            let segs = layout(&env);
            let last = segs.last().expect("segments");
            let end = last.bytes.len();
            let mut bytes = last.bytes.clone();
            bytes.extend_from_slice(&garbage);
            env.write_file(&last.path, &bytes);

            if mode == Strict {
                let (path, offset, kind) = corrupt(open_in(&env, mode), &ctx);
                assert_eq!((path, offset), (last.path.clone(), end as u64), "{ctx}");
                assert_eq!(kind, CorruptionKind::BadFrameHeader, "{ctx}");
                assert_eq!(env.read_file(&last.path), bytes, "{ctx}: untouched");
                continue;
            }
            let log = open_in(&env, mode)?;
            let report = log.recovery_report();
            assert_eq!(
                report.torn_bytes_cut,
                garbage.len() as u64,
                "{ctx}: {report}"
            );
            assert_eq!(report.damage.len(), 1, "{ctx}: {report}");
            let d = &report.damage[0];
            assert_eq!((&d.path, d.offset), (&last.path, end as u64), "{ctx}");
            assert_eq!(d.kind, CorruptionKind::BadFrameHeader, "{ctx}");
            assert_eq!(
                d.action,
                DamageAction::Cut {
                    at: end as u64,
                    bytes: garbage.len() as u64
                },
                "{ctx}"
            );
            assert_eq!(report.quarantined.len(), 1, "{ctx}");
            assert_eq!(env.read_file(&report.quarantined[0]), garbage, "{ctx}");
            assert_eq!(env.read_file(&last.path), last.bytes, "{ctx}: cut back");
            assert_holds(&log, 1, RECORDS)?;
            appends_continue(&env, log, RECORDS + 1, &ctx)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. Zero-filled tails.
// ---------------------------------------------------------------------------------------------

#[test]
fn zero_filled_tail_is_clean_in_every_mode() -> Result<()> {
    // Fewer zeros than a frame header, and more than a page.
    for zeros in [7, 5000] {
        for mode in MODES {
            for env in Env::both() {
                let ctx = format!("{} {mode:?} {zeros} zeros", env.name());
                build(&env, RECORDS)?;
                let segs = layout(&env);
                let last = segs.last().expect("segments");
                let mut bytes = last.bytes.clone();
                bytes.resize(bytes.len() + zeros, 0);
                env.write_file(&last.path, &bytes);

                let log = open_in(&env, mode)?;
                let report = log.recovery_report();
                assert!(report.is_clean(), "{ctx}: {report}");
                assert_eq!(report.torn_bytes_cut, 0, "{ctx}");
                assert!(report.quarantined.is_empty(), "{ctx}");
                assert!(report.lost.is_empty(), "{ctx}");
                assert!(quarantined(&env).is_empty(), "{ctx}");
                assert_holds(&log, 1, RECORDS)?;
                let next = log.append(&payload(RECORDS + 1), Durability::Synced)?;
                assert_eq!(next, Lsn::new(RECORDS + 1), "{ctx}");
                log.close()?;
                let log = open_in(&env, mode)?;
                assert!(log.recovery_report().is_clean(), "{ctx}");
                assert_holds(&log, 1, RECORDS + 1)?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. Incomplete final batches.
// ---------------------------------------------------------------------------------------------

/// A log of 100 single records and then a batch of 3 (LSNs 101..=103), synced and closed.
fn build_with_final_batch(env: &Env) -> Result<()> {
    let log = env.open()?;
    append_n(&log, 100)?;
    let batch = [payload(101), payload(102), payload(103)];
    let (first, last) = log.append_batch(&batch, Durability::Synced)?;
    assert_eq!((first.get(), last.get()), (101, 103));
    log.close()
}

#[test]
fn incomplete_final_batch_is_dropped_whole() -> Result<()> {
    for mode in MODES {
        for env in Env::both() {
            let ctx = format!("{} {mode:?}", env.name());
            build_with_final_batch(&env)?;
            let path = layout(&env).pop().expect("segments").path;
            drop_close_marker(&env, &path);
            let segs = layout(&env);
            let last = segs.last().expect("segments");
            let (f1, f2, f3) = (last.frame(101), last.frame(102), last.frame(103));
            assert_eq!((f1.flags, f2.flags, f3.flags), (2, 0, 1), "batch flags");
            assert_eq!(f3.end(), last.bytes.len());
            // The batch's last frame never made it to the disk.
            env.write_file(&last.path, &last.bytes[..f3.offset]);

            if mode == Strict {
                let (path, offset, kind) = corrupt(open_in(&env, mode), &ctx);
                assert_eq!(
                    (path, offset),
                    (last.path.clone(), f3.offset as u64),
                    "{ctx}"
                );
                assert_eq!(
                    kind,
                    CorruptionKind::IncompleteBatch {
                        first: Lsn::new(101)
                    },
                    "{ctx}"
                );
                continue;
            }
            let log = open_in(&env, mode)?;
            let report = log.recovery_report();
            let cut = (f3.offset - f1.offset) as u64;
            assert_eq!(report.damage.len(), 1, "{ctx}: {report}");
            let d = &report.damage[0];
            assert_eq!(d.path, last.path, "{ctx}");
            assert_eq!(d.offset, f3.offset as u64, "{ctx}");
            assert_eq!(
                d.kind,
                CorruptionKind::IncompleteBatch {
                    first: Lsn::new(101)
                },
                "{ctx}"
            );
            assert_eq!(
                d.action,
                DamageAction::Cut {
                    at: f1.offset as u64,
                    bytes: cut
                },
                "{ctx}"
            );
            assert_eq!(report.torn_bytes_cut, cut, "{ctx}");
            assert!(report.lost.is_empty(), "{ctx}: {report}");
            assert_eq!(report.quarantined.len(), 1, "{ctx}");
            assert_eq!(
                env.read_file(&report.quarantined[0]),
                &last.bytes[f1.offset..f3.offset],
                "{ctx}: the two orphaned frames are in quarantine"
            );
            // All three LSNs are gone: none is readable, and the next append takes 101.
            assert_holds(&log, 1, 100)?;
            for lsn in 101..=103 {
                assert!(
                    matches!(log.read(Lsn::new(lsn)), Err(Error::NotDurable { .. })),
                    "{ctx}: LSN {lsn}"
                );
            }
            appends_continue(&env, log, 101, &ctx)?;
        }
    }
    Ok(())
}

#[test]
fn batch_torn_inside_its_last_frame_is_dropped_whole() -> Result<()> {
    for env in Env::both() {
        build_with_final_batch(&env)?;
        let segs = layout(&env);
        let last = segs.last().expect("segments");
        let (f1, f3) = (last.frame(101), last.frame(103));
        env.write_file(
            &last.path,
            &last.bytes[..f3.offset + frame_header_len() + 2],
        );

        let (_, offset, _) = corrupt(open_in(&env, Strict), env.name());
        assert_eq!(offset, f3.offset as u64);
        let log = env.open()?;
        let report = log.recovery_report();
        assert_eq!(report.damage.len(), 1, "{report}");
        assert_eq!(
            report.damage[0].action,
            DamageAction::Cut {
                at: f1.offset as u64,
                bytes: (f3.offset + frame_header_len() + 2 - f1.offset) as u64,
            }
        );
        assert_holds(&log, 1, 100)?;
        appends_continue(&env, log, 101, env.name())?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. A flipped byte in the middle of a segment.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The middle of a segment that is not the last one.
    Sealed,
    /// The middle of the last segment, with intact frames after it.
    LastSegment,
}

/// A log of `RECORDS` records with one payload byte flipped in a frame at `place`.
struct Flipped {
    /// The layout before the flip.
    segs: Vec<SegFile>,
    /// Index of the damaged segment.
    seg: usize,
    frame: Frame,
    /// The damaged segment's bytes after the flip.
    damaged: Vec<u8>,
}

impl Flipped {
    fn new(env: &Env, place: Place) -> Result<Flipped> {
        build(env, RECORDS)?;
        let segs = layout(env);
        assert!(segs.len() >= 4, "{} segments", segs.len());
        let seg = match place {
            Place::Sealed => 1,
            Place::LastSegment => segs.len() - 1,
        };
        let frame = segs[seg].middle_frame();
        flip(
            env,
            &segs[seg].path,
            frame.offset + frame_header_len() + 3,
            0x10,
        );
        let damaged = env.read_file(&segs[seg].path);
        Ok(Flipped {
            segs,
            seg,
            frame,
            damaged,
        })
    }

    fn path(&self) -> &Path {
        &self.segs[self.seg].path
    }

    fn lsn(&self) -> u64 {
        self.frame.lsn
    }

    fn later(&self) -> &[SegFile] {
        &self.segs[self.seg + 1..]
    }

    /// Checks the kind is the checksum mismatch the flip causes.
    fn check_kind(&self, kind: &CorruptionKind, context: &str) {
        let stored = self.frame.crc(&self.damaged);
        let computed = frame_crc(&self.damaged, self.frame.offset, self.frame.len);
        assert_ne!(stored, computed);
        assert_eq!(
            kind,
            &CorruptionKind::FrameChecksum { stored, computed },
            "{context}"
        );
    }
}

const PLACES: [Place; 2] = [Place::Sealed, Place::LastSegment];

#[test]
fn flipped_byte_is_an_error_in_default_and_strict_modes() -> Result<()> {
    for place in PLACES {
        for mode in [TolerateTornTail, Strict] {
            for env in Env::both() {
                let ctx = format!("{} {mode:?} {place:?}", env.name());
                let f = Flipped::new(&env, place)?;
                let (path, offset, kind) = corrupt(open_in(&env, mode), &ctx);
                assert_eq!(path, f.path(), "{ctx}");
                assert_eq!(offset, f.frame.offset as u64, "{ctx}");
                f.check_kind(&kind, &ctx);
                // Nothing was changed.
                assert_eq!(env.read_file(f.path()), f.damaged, "{ctx}");
                assert_eq!(env.segment_paths().len(), f.segs.len(), "{ctx}");
                assert!(quarantined(&env).is_empty(), "{ctx}");
            }
        }
    }
    Ok(())
}

#[test]
fn point_in_time_ends_the_log_before_a_flipped_byte() -> Result<()> {
    for place in PLACES {
        for env in Env::both() {
            let ctx = format!("{} {place:?}", env.name());
            let f = Flipped::new(&env, place)?;
            let at = f.frame.offset as u64;
            let cut = f.damaged.len() as u64 - at;

            let log = open_in(&env, PointInTime)?;
            let report = log.recovery_report();
            assert_eq!(report.damage.len(), 1, "{ctx}: {report}");
            let d = &report.damage[0];
            assert_eq!((d.path.as_path(), d.offset), (f.path(), at), "{ctx}");
            f.check_kind(&d.kind, &ctx);
            assert_eq!(d.action, DamageAction::Cut { at, bytes: cut }, "{ctx}");
            assert_eq!(report.torn_bytes_cut, cut, "{ctx}");
            // Every later frame of the segment (sync markers too) was intact, and the report
            // says they went too.
            let (records, markers) = all_frames(&f.segs[f.seg].bytes);
            let intact = records
                .iter()
                .chain(&markers)
                .filter(|x| x.offset > f.frame.offset)
                .count();
            assert_eq!(report.intact_frames_cut, intact as u64, "{ctx}: {report}");
            assert!(report.lost.is_empty(), "{ctx}");
            assert_eq!(report.last_lsn, Lsn::new(f.lsn() - 1), "{ctx}");

            // The damaged segment is cut before the record; every later segment is moved to
            // quarantine whole, next to a copy of the cut bytes.
            let kept: Vec<PathBuf> = f.segs[..=f.seg].iter().map(|s| s.path.clone()).collect();
            assert_eq!(env.segment_paths(), kept, "{ctx}");
            assert_eq!(
                env.read_file(f.path()),
                &f.damaged[..f.frame.offset],
                "{ctx}"
            );
            assert_eq!(report.quarantined.len(), 1 + f.later().len(), "{ctx}");
            assert_eq!(quarantined(&env), names(&report.quarantined), "{ctx}");
            let qdir = quarantine_dir(&env);
            for s in f.later() {
                assert_eq!(
                    env.read_file(&qdir.join(&s.name)),
                    s.bytes,
                    "{ctx}: {}",
                    s.name
                );
            }
            let cut_copy = report
                .quarantined
                .iter()
                .find(|p| !f.later().iter().any(|s| s.name == file_name(p)))
                .expect("the cut bytes are quarantined");
            // Every byte, up to the end of the last intact frame (a sync marker's may be zeros).
            assert_eq!(
                env.read_file(cut_copy),
                &f.damaged[f.frame.offset..],
                "{ctx}"
            );

            assert_holds(&log, 1, f.lsn() - 1)?;
            assert!(
                matches!(log.read(Lsn::new(f.lsn())), Err(Error::NotDurable { .. })),
                "{ctx}"
            );
            appends_continue(&env, log, f.lsn(), &ctx)?;
        }
    }
    Ok(())
}

#[test]
fn skip_corrupt_loses_only_the_record_with_a_flipped_byte() -> Result<()> {
    for place in PLACES {
        for env in Env::both() {
            let ctx = format!("{} {place:?}", env.name());
            let f = Flipped::new(&env, place)?;
            let x = f.lsn();

            let log = open_in(&env, SkipCorrupt)?;
            let report = log.recovery_report();
            assert_eq!(report.damage.len(), 1, "{ctx}: {report}");
            let d = &report.damage[0];
            assert_eq!(
                (d.path.as_path(), d.offset),
                (f.path(), f.frame.offset as u64),
                "{ctx}"
            );
            f.check_kind(&d.kind, &ctx);
            assert_eq!(
                d.action,
                DamageAction::Skipped {
                    to: f.frame.end() as u64
                },
                "{ctx}"
            );
            assert_eq!(report.lost, vec![lsn_range(x, x)], "{ctx}");
            assert_eq!(report.records_recovered, RECORDS - 1, "{ctx}");
            assert_eq!(report.torn_bytes_cut, 0, "{ctx}");
            assert!(report.quarantined.is_empty(), "{ctx}");
            assert!(quarantined(&env).is_empty(), "{ctx}");
            assert_eq!(env.read_file(f.path()), f.damaged, "{ctx}: left in place");

            check_skipped(&log, &[x], RECORDS, &ctx)?;
            assert_eq!(
                log.append(&payload(RECORDS + 1), Durability::Synced)?,
                Lsn::new(RECORDS + 1)
            );
            log.close()?;

            // The damage stays in place: skipped again, refused by the default mode.
            let log = open_in(&env, SkipCorrupt)?;
            assert_eq!(log.recovery_report().lost, vec![lsn_range(x, x)], "{ctx}");
            check_skipped(&log, &[x], RECORDS + 1, &ctx)?;
            drop(log);
            let (path, offset, _) = corrupt(env.open(), &ctx);
            assert_eq!((path.as_path(), offset), (f.path(), f.frame.offset as u64));
        }
    }
    Ok(())
}

/// Checks a `SkipCorrupt` log holds `1..=last` except `lost`: every other record reads back, the
/// lost ones fail with `RecordLost`, and iteration leaves them out.
fn check_skipped(log: &Log, lost: &[u64], last: u64, context: &str) -> Result<()> {
    assert_eq!(log.last_lsn(), Lsn::new(last), "{context}");
    let expected: Vec<u64> = (1..=last).filter(|l| !lost.contains(l)).collect();
    assert_eq!(lsns(log)?, expected, "{context}: iteration");
    for &lsn in lost {
        match log.read(Lsn::new(lsn)) {
            Err(Error::RecordLost { lsn: l }) => assert_eq!(l, Lsn::new(lsn), "{context}"),
            other => panic!("{context}: read of lost LSN {lsn}: {other:?}"),
        }
    }
    let (lo, hi) = (lost[0], lost[lost.len() - 1]);
    for lsn in [1, lo.saturating_sub(1).max(1), hi + 1, last] {
        if lsn <= last && !lost.contains(&lsn) {
            assert_eq!(log.read(Lsn::new(lsn))?.data(), payload(lsn), "{context}");
        }
    }
    if lo > 1 && hi < last {
        let around: Vec<u64> = log
            .range(Lsn::new(lo - 1)..=Lsn::new(hi + 1))?
            .map(|r| r.map(|r| r.lsn().get()))
            .collect::<Result<_>>()?;
        assert_eq!(
            around,
            vec![lo - 1, hi + 1],
            "{context}: range over the loss"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// LSN jumps.
// ---------------------------------------------------------------------------------------------

/// Removes the frame of `lsn` from its segment (the frames after it move up), leaving every
/// frame intact but the LSNs with a jump. Returns the segment's layout before the change.
fn remove_frame(env: &Env, lsn: u64) -> (Vec<SegFile>, usize, Frame) {
    let segs = layout(env);
    let seg = segs
        .iter()
        .position(|s| s.first <= lsn && lsn <= s.last())
        .expect("segment of the LSN");
    let frame = segs[seg].frame(lsn);
    let mut bytes = segs[seg].bytes.clone();
    bytes.drain(frame.offset..frame.end());
    env.write_file(&segs[seg].path, &bytes);
    (segs, seg, frame)
}

#[test]
fn lsn_jump_inside_a_segment_is_an_error_or_a_loss_by_mode() -> Result<()> {
    for env in Env::both() {
        build(&env, RECORDS)?;
        let segs = layout(&env);
        let x = segs[2].middle_frame().lsn;
        let (segs, seg, frame) = remove_frame(&env, x);
        let path = segs[seg].path.clone();
        let jump = CorruptionKind::LsnMismatch {
            expected: Lsn::new(x),
            found: Lsn::new(x + 1),
        };
        for mode in [Strict, TolerateTornTail] {
            let ctx = format!("{} {mode:?}", env.name());
            let (p, offset, kind) = corrupt(open_in(&env, mode), &ctx);
            assert_eq!(
                (p, offset, kind),
                (path.clone(), frame.offset as u64, jump.clone())
            );
        }
        // SkipCorrupt keeps every intact record and reports the hole.
        let log = open_in(&env, SkipCorrupt)?;
        assert_eq!(log.recovery_report().lost, vec![lsn_range(x, x)]);
        check_skipped(&log, &[x], RECORDS, env.name())?;
        drop(log);
        // PointInTime ends the log before the jump.
        let log = open_in(&env, PointInTime)?;
        let report = log.recovery_report();
        assert_eq!(report.damage.len(), 1, "{report}");
        assert_eq!(report.damage[0].kind, jump);
        assert_eq!(report.damage[0].offset, frame.offset as u64);
        assert_holds(&log, 1, x - 1)?;
        appends_continue(&env, log, x, env.name())?;
    }
    Ok(())
}

/// An intact frame (valid checksum under this segment's salt) whose LSN skips one is not a torn
/// write; the default mode must refuse it, as any other LSN jump, even at the very end of the
/// last segment.
#[test]
fn lsn_jump_at_the_end_of_the_last_segment_is_an_error() -> Result<()> {
    for env in Env::both() {
        build(&env, RECORDS)?;
        let (segs, seg, frame) = remove_frame(&env, RECORDS - 1);
        assert_eq!(seg, segs.len() - 1);
        let result = env.open();
        if let Ok(log) = &result {
            assert_eq!(
                log.last_lsn(),
                Lsn::new(RECORDS - 2),
                "the intact record {RECORDS} was cut"
            );
        }
        let (path, offset, kind) = corrupt(result, env.name());
        assert_eq!(
            (path, offset),
            (segs[seg].path.clone(), frame.offset as u64)
        );
        assert_eq!(
            kind,
            CorruptionKind::LsnMismatch {
                expected: Lsn::new(RECORDS - 1),
                found: Lsn::new(RECORDS),
            }
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Damage inside a batch, followed by intact records.
// ---------------------------------------------------------------------------------------------

/// 20 single records, a batch of 10 (21..=30), then 2 single records (31, 32), each synced; the
/// last frame of the batch has a flipped byte. Records 31 and 32 are intact, and were written
/// after the batch was durable.
fn build_damaged_batch(env: &Env) -> Result<(SegFile, Frame)> {
    let log = open_synced(env)?;
    append_n(&log, 20)?;
    let batch: Vec<Vec<u8>> = (21..=30).map(payload).collect();
    log.append_batch(&batch, Durability::Synced)?;
    append_n(&log, 2)?;
    log.close()?;
    let segs = layout(env);
    assert_eq!(segs.len(), 1, "all in one segment");
    let last = segs[0].clone();
    let frame = last.frame(30);
    flip(env, &last.path, frame.offset + frame_header_len() + 1, 0x01);
    Ok((last, frame))
}

#[test]
fn damage_late_in_a_batch_followed_by_intact_records_is_not_a_torn_tail() -> Result<()> {
    for env in Env::both() {
        let (last, frame) = build_damaged_batch(&env)?;
        // Default mode: intact records follow the damage, so this is not a torn tail.
        let result = env.open();
        if let Ok(log) = &result {
            panic!(
                "{}: opened, intact records 31..=32 cut: {}",
                env.name(),
                log.recovery_report()
            );
        }
        let (path, offset, kind) = corrupt(result, env.name());
        assert_eq!((path, offset), (last.path.clone(), frame.offset as u64));
        assert!(
            matches!(kind, CorruptionKind::FrameChecksum { .. }),
            "{kind}"
        );
        // SkipCorrupt keeps the intact records after the damaged batch.
        let log = open_in(&env, SkipCorrupt)?;
        assert_eq!(log.recovery_report().lost, vec![lsn_range(21, 30)]);
        let lost: Vec<u64> = (21..=30).collect();
        check_skipped(&log, &lost, 32, env.name())?;
        drop(log);
        // PointInTime ends the log before the batch.
        let log = open_in(&env, PointInTime)?;
        assert_holds(&log, 1, 20)?;
        appends_continue(&env, log, 21, env.name())?;
    }
    Ok(())
}

#[test]
fn damage_early_in_a_batch_followed_by_intact_records_loses_the_whole_batch() -> Result<()> {
    for env in Env::both() {
        let log = open_synced(&env)?;
        append_n(&log, 50)?;
        let batch: Vec<Vec<u8>> = (51..=53).map(payload).collect();
        log.append_batch(&batch, Durability::Synced)?;
        append_n(&log, 20)?;
        log.close()?;
        let segs = layout(&env);
        let seg = segs
            .iter()
            .find(|s| s.first <= 51 && s.last() >= 53)
            .expect("the batch's segment")
            .clone();
        let f2 = seg.frame(52);
        flip(&env, &seg.path, f2.offset + frame_header_len(), 0x80);

        let (path, offset, _) = corrupt(env.open(), env.name());
        assert_eq!((path, offset), (seg.path.clone(), f2.offset as u64));
        let log = open_in(&env, SkipCorrupt)?;
        assert_eq!(log.recovery_report().lost, vec![lsn_range(51, 53)]);
        check_skipped(&log, &[51, 52, 53], 73, env.name())?;
        drop(log);
        let log = open_in(&env, PointInTime)?;
        assert_holds(&log, 1, 50)?;
        appends_continue(&env, log, 51, env.name())?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 5. A missing middle segment.
// ---------------------------------------------------------------------------------------------

/// A log of `RECORDS` records with its third segment removed; returns the layout before and the
/// missing LSN range.
fn remove_middle_segment(env: &Env) -> Result<(Vec<SegFile>, u64, u64)> {
    build(env, RECORDS)?;
    let segs = layout(env);
    assert!(segs.len() >= 4, "{} segments", segs.len());
    env.remove_file(&segs[2].path);
    Ok((segs.clone(), segs[2].first, segs[3].first - 1))
}

#[test]
fn missing_middle_segment_is_an_error_in_default_and_strict_modes() -> Result<()> {
    for mode in [TolerateTornTail, Strict] {
        for env in Env::both() {
            let ctx = format!("{} {mode:?}", env.name());
            let (segs, first, last) = remove_middle_segment(&env)?;
            match open_in(&env, mode) {
                Err(Error::MissingRecords {
                    first: f,
                    last: l,
                    path,
                }) => {
                    assert_eq!((f, l), (Lsn::new(first), Lsn::new(last)), "{ctx}");
                    assert_eq!(path, segs[3].path, "{ctx}: the segment after the gap");
                }
                other => panic!("{ctx}: expected MissingRecords, got {other:?}"),
            }
            assert_eq!(
                env.segment_paths().len(),
                segs.len() - 1,
                "{ctx}: untouched"
            );
            assert!(quarantined(&env).is_empty(), "{ctx}");
        }
    }
    Ok(())
}

#[test]
fn point_in_time_ends_the_log_at_a_missing_segment() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let (segs, first, last) = remove_middle_segment(&env)?;
        let log = open_in(&env, PointInTime)?;
        let report = log.recovery_report();
        assert_eq!(report.damage.len(), 1, "{ctx}: {report}");
        let d = &report.damage[0];
        assert_eq!((&d.path, d.offset), (&segs[3].path, 0), "{ctx}");
        assert_eq!(
            d.kind,
            CorruptionKind::MissingRecords {
                first: Lsn::new(first),
                last: Lsn::new(last)
            },
            "{ctx}"
        );
        assert_eq!(d.action, DamageAction::Quarantined, "{ctx}");
        assert_eq!(report.torn_bytes_cut, 0, "{ctx}");
        let later: Vec<String> = segs[3..].iter().map(|s| s.name.clone()).collect();
        assert_eq!(names(&report.quarantined), later, "{ctx}");
        assert_eq!(quarantined(&env), later, "{ctx}");
        for s in &segs[3..] {
            assert_eq!(env.read_file(&quarantine_dir(&env).join(&s.name)), s.bytes);
        }
        // The segment the log now ends with was sealed: appends go to a new one.
        let new = segs[1].path.with_file_name(format!("{first:020}.seg"));
        assert_eq!(
            env.segment_paths(),
            vec![segs[0].path.clone(), segs[1].path.clone(), new],
            "{ctx}"
        );
        assert_holds(&log, 1, first - 1)?;
        appends_continue(&env, log, first, ctx)?;
    }
    Ok(())
}

#[test]
fn skip_corrupt_accepts_a_missing_segment_as_lost_records() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let (segs, first, last) = remove_middle_segment(&env)?;
        let log = open_in(&env, SkipCorrupt)?;
        let report = log.recovery_report();
        assert_eq!(report.lost, vec![lsn_range(first, last)], "{ctx}: {report}");
        assert_eq!(report.damage.len(), 1, "{ctx}: {report}");
        assert_eq!(report.damage[0].action, DamageAction::Accepted, "{ctx}");
        assert_eq!(report.damage[0].path, segs[3].path, "{ctx}");
        assert!(report.quarantined.is_empty(), "{ctx}");
        assert_eq!(
            report.records_recovered,
            RECORDS - (last - first + 1),
            "{ctx}"
        );
        let lost: Vec<u64> = (first..=last).collect();
        check_skipped(&log, &lost, RECORDS, ctx)?;
        assert_eq!(
            log.append(&payload(RECORDS + 1), Durability::Synced)?,
            Lsn::new(RECORDS + 1)
        );
        log.close()?;
        let log = open_in(&env, SkipCorrupt)?;
        assert_eq!(log.recovery_report().lost, vec![lsn_range(first, last)]);
        check_skipped(&log, &lost, RECORDS + 1, ctx)?;
        drop(log);
        assert!(matches!(env.open(), Err(Error::MissingRecords { .. })));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 6. A frame of another log.
// ---------------------------------------------------------------------------------------------

#[test]
fn frame_copied_from_another_log_fails_its_checksum() -> Result<()> {
    for (env, other) in [(Env::mem(), Env::mem()), (Env::std(), Env::std())] {
        let ctx = env.name();
        build(&env, RECORDS)?;
        build(&other, RECORDS)?;
        let (ours, theirs) = (layout(&env), layout(&other));
        assert_eq!(ours.len(), theirs.len());
        let (a, b) = (&ours[1], &theirs[1]);
        assert_eq!(a.name, b.name, "same records, same segments");
        let frame = a.middle_frame();
        assert_eq!(b.frame(frame.lsn), frame, "the frame lines up");
        let (fa, fb) = (
            &a.bytes[frame.offset..frame.end()],
            &b.bytes[frame.offset..frame.end()],
        );
        // Only the checksum and the time of the append differ.
        let h = frame_header_len();
        assert_eq!(fa[4..24], fb[4..24], "same length, LSN and flags");
        assert_eq!(fa[h..], fb[h..], "same payload");
        let foreign_crc = frame.crc(&b.bytes);
        assert_ne!(frame.crc(&a.bytes), foreign_crc, "checksums are salted");
        assert_eq!(frame_crc(&b.bytes, frame.offset, frame.len), foreign_crc);

        let mut bytes = a.bytes.clone();
        bytes[frame.offset..frame.end()].copy_from_slice(fb);
        env.write_file(&a.path, &bytes);
        let expected = CorruptionKind::FrameChecksum {
            stored: foreign_crc,
            computed: frame_crc(&bytes, frame.offset, frame.len),
        };
        for mode in [TolerateTornTail, Strict] {
            let (path, offset, kind) = corrupt(open_in(&env, mode), ctx);
            assert_eq!(
                (path, offset),
                (a.path.clone(), frame.offset as u64),
                "{ctx}"
            );
            assert_eq!(kind, expected, "{ctx} {mode:?}");
        }
        // Not accepted as a record even by the most tolerant mode.
        let log = open_in(&env, SkipCorrupt)?;
        let report = log.recovery_report();
        assert_eq!(report.damage.len(), 1, "{ctx}: {report}");
        assert_eq!(report.damage[0].kind, expected);
        assert_eq!(report.lost, vec![lsn_range(frame.lsn, frame.lsn)]);
        check_skipped(&log, &[frame.lsn], RECORDS, ctx)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 7. A segment of another log.
// ---------------------------------------------------------------------------------------------

#[test]
fn segment_of_another_log_after_the_last_one_is_refused_as_foreign() -> Result<()> {
    for (env, other) in [(Env::mem(), Env::mem()), (Env::std(), Env::std())] {
        let ctx = env.name();
        let theirs_id = build(&other, 2 * RECORDS)?;
        let theirs = layout(&other);
        assert!(theirs.len() >= 5);
        // Our log ends exactly where their segment 3 begins, so it fits by name and LSN.
        let boundary = theirs[3].first;
        let ours_id = build(&env, boundary - 1)?;
        let ours = layout(&env);
        assert_eq!(
            ours.iter().map(|s| &s.name).collect::<Vec<_>>(),
            theirs[..3].iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        let intruder = env.dir.join(&theirs[3].name);
        env.write_file(&intruder, &theirs[3].bytes);
        let foreign = CorruptionKind::ForeignLog {
            expected: ours_id,
            found: theirs_id,
        };

        for mode in [TolerateTornTail, Strict] {
            let (path, offset, kind) = corrupt(open_in(&env, mode), ctx);
            assert_eq!((&path, offset), (&intruder, 0), "{ctx} {mode:?}");
            assert_eq!(kind, foreign, "{ctx} {mode:?}");
        }
        for mode in [PointInTime, SkipCorrupt] {
            let mctx = format!("{ctx} {mode:?}");
            env.write_file(&intruder, &theirs[3].bytes);
            let log = open_in(&env, mode)?;
            let report = log.recovery_report();
            assert_eq!(report.damage.len(), 1, "{mctx}: {report}");
            assert_eq!(report.damage[0].kind, foreign, "{mctx}");
            assert_eq!(report.damage[0].action, DamageAction::Quarantined, "{mctx}");
            assert!(report.lost.is_empty(), "{mctx}");
            // Moved aside whole; a second time under a fresh name, nothing overwritten.
            assert_eq!(report.quarantined.len(), 1, "{mctx}");
            assert!(file_name(&report.quarantined[0]).starts_with(&theirs[3].name));
            assert_eq!(env.read_file(&report.quarantined[0]), theirs[3].bytes);
            assert_eq!(
                quarantined(&env).len(),
                1 + usize::from(mode == SkipCorrupt)
            );
            assert!(!env.segment_paths().contains(&intruder), "{mctx}");
            assert_eq!(log.log_id(), ours_id, "{mctx}");
            assert_holds(&log, 1, boundary - 1)?;
            if mode == SkipCorrupt {
                appends_continue(&env, log, boundary, &mctx)?;
            }
        }
    }
    Ok(())
}

#[test]
fn segment_of_another_log_in_the_middle_is_refused_as_foreign() -> Result<()> {
    for (env, other) in [(Env::mem(), Env::mem()), (Env::std(), Env::std())] {
        let ours_id = build(&env, RECORDS)?;
        let theirs_id = build(&other, RECORDS)?;
        let (ours, theirs) = (layout(&env), layout(&other));
        assert_eq!(ours[2].name, theirs[2].name);
        assert_eq!(ours[2].log_id(), ours_id);
        env.write_file(&ours[2].path, &theirs[2].bytes);
        let (path, offset, kind) = corrupt(env.open(), env.name());
        assert_eq!((path, offset), (ours[2].path.clone(), 0));
        assert_eq!(
            kind,
            CorruptionKind::ForeignLog {
                expected: ours_id,
                found: theirs_id
            }
        );
    }
    Ok(())
}

/// A log of `RECORDS` records whose first segment was replaced by the same-named first segment
/// of another log (with other records); the checkpoint file is removed if `with_checkpoint` is
/// off, so the log's identity must come from its segments. Returns the log's id.
fn foreign_first_segment(env: &Env, with_checkpoint: bool) -> Result<u128> {
    let ours_id = build(env, RECORDS)?;
    let other = Env::mem();
    let log = other.open()?;
    for i in 0..40u64 {
        log.append(format!("foreign {i}").as_bytes(), Durability::Buffered)?;
    }
    log.close()?;
    let (ours, theirs) = (layout(env), layout(&other));
    assert_eq!(ours[0].name, theirs[0].name);
    assert_ne!(theirs[0].log_id(), ours_id);
    env.write_file(&ours[0].path, &theirs[0].bytes);
    let checkpoint = env.dir.join("CHECKPOINT");
    if !with_checkpoint && env.list(&env.dir).contains(&"CHECKPOINT".to_owned()) {
        env.remove_file(&checkpoint);
    }
    Ok(ours_id)
}

/// The log's identity must not be taken from a foreign first segment: the error names the
/// intruder, and no tolerant mode hands out the other log's records or drops the log's own.
#[test]
fn foreign_first_segment_is_named_and_never_recovered() -> Result<()> {
    for with_checkpoint in [true, false] {
        for env in Env::both() {
            let ctx = format!("{} checkpoint file: {with_checkpoint}", env.name());
            let ours_id = foreign_first_segment(&env, with_checkpoint)?;
            let first = env.segment_paths()[0].clone();
            let (path, offset, kind) = corrupt(env.open(), &ctx);
            assert_eq!(
                (path, offset),
                (first.clone(), 0),
                "{ctx}: names the intruder"
            );
            assert!(
                matches!(kind, CorruptionKind::ForeignLog { expected, .. } if expected == ours_id),
                "{ctx}: {kind}"
            );
        }
        for mode in [PointInTime, SkipCorrupt] {
            for env in Env::both() {
                let ctx = format!("{} {mode:?} checkpoint file: {with_checkpoint}", env.name());
                let ours_id = foreign_first_segment(&env, with_checkpoint)?;
                let genuine: Vec<PathBuf> = env.segment_paths()[1..].to_vec();
                let log = open_in(&env, mode)?;
                let report = log.recovery_report();
                assert_eq!(log.log_id(), ours_id, "{ctx}: {report}");
                assert!(
                    matches!(report.damage[0].kind, CorruptionKind::ForeignLog { .. }),
                    "{ctx}: {report}"
                );
                for (lsn, data) in read_all(&log)? {
                    assert_eq!(data, payload(lsn), "{ctx}: LSN {lsn}");
                }
                if mode == SkipCorrupt {
                    // Only the intruder is moved aside; every genuine segment stays.
                    assert_eq!(report.quarantined.len(), 1, "{ctx}: {report}");
                    let kept = env.segment_paths();
                    assert!(genuine.iter().all(|p| kept.contains(p)), "{ctx}: {report}");
                    let first = layout(&env)[0].first;
                    assert_eq!(report.lost, vec![lsn_range(1, first - 1)], "{ctx}");
                    assert_eq!(log.last_lsn(), Lsn::new(RECORDS), "{ctx}");
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 8. Corrupt segment headers and checkpoint files.
// ---------------------------------------------------------------------------------------------

#[test]
fn corrupt_segment_header_is_a_typed_error() -> Result<()> {
    for env in Env::both() {
        build(&env, RECORDS)?;
        let segs = layout(&env);
        for seg in [0, 2, segs.len() - 1] {
            let s = &segs[seg];
            for at in [0, 7, 9, 13, 20, 33, 41, 50, 58, 61] {
                let ctx = format!("{} segment {seg} byte {at}", env.name());
                flip(&env, &s.path, at, 0x04);
                // Magic, then the checksum: a flipped version bit is damage like any other
                // (only a header that passes its checksum can be of another version).
                let expected = match at {
                    0..8 => CorruptionKind::BadMagic,
                    _ => CorruptionKind::HeaderChecksum,
                };
                for mode in [TolerateTornTail, Strict] {
                    let (path, offset, kind) = corrupt(open_in(&env, mode), &ctx);
                    assert_eq!((&path, offset, &kind), (&s.path, 0, &expected), "{ctx}");
                }
                env.write_file(&s.path, &s.bytes);
            }
            // Shorter than a header.
            for len in [0, 40] {
                env.write_file(&s.path, &s.bytes[..len]);
                let (path, offset, kind) = corrupt(env.open(), env.name());
                assert_eq!((path, offset), (s.path.clone(), 0));
                assert_eq!(kind, CorruptionKind::TruncatedHeader { len: len as u64 });
                env.write_file(&s.path, &s.bytes);
            }
        }
        // A newer format version, with a valid header checksum.
        let s = &segs[1];
        let mut bytes = s.bytes.clone();
        let newer = tidelog::FORMAT_VERSION + 1;
        bytes[8..12].copy_from_slice(&newer.to_le_bytes());
        let n = segment_header_len();
        let crc = crc32c::crc32c(&bytes[..n - 4]);
        bytes[n - 4..n].copy_from_slice(&crc.to_le_bytes());
        env.write_file(&s.path, &bytes);
        // Not damage: refused in every mode, and never moved aside.
        for mode in MODES {
            let (path, _, kind) = corrupt(open_in(&env, mode), env.name());
            assert_eq!(path, s.path);
            assert_eq!(
                kind,
                CorruptionKind::UnsupportedVersion {
                    found: newer,
                    supported: tidelog::FORMAT_VERSION
                }
            );
            assert_eq!(env.read_file(&s.path), bytes, "{mode:?}");
            assert_eq!(env.segment_paths().len(), segs.len(), "{mode:?}");
            assert!(quarantined(&env).is_empty(), "{mode:?}");
        }
        env.write_file(&s.path, &s.bytes);
        // A segment under another name than its header's first LSN.
        let last = &segs[segs.len() - 1];
        let renamed = env.dir.join(format!("{:020}.seg", last.first + 1));
        env.remove_file(&last.path);
        env.write_file(&renamed, &last.bytes);
        let (path, offset, kind) = corrupt(env.open(), env.name());
        assert_eq!((path, offset), (renamed.clone(), 0));
        assert_eq!(
            kind,
            CorruptionKind::NameMismatch {
                name: Lsn::new(last.first + 1),
                header: Lsn::new(last.first)
            }
        );
        env.remove_file(&renamed);
        env.write_file(&last.path, &last.bytes);
        reopen_clean(&env, RECORDS, env.name())?;
    }
    Ok(())
}

#[test]
fn corrupt_segment_header_in_tolerant_modes_loses_that_segment() -> Result<()> {
    for env in Env::both() {
        build(&env, RECORDS)?;
        let segs = layout(&env);
        let (first, last) = (segs[2].first, segs[2].last());
        flip(&env, &segs[2].path, 45, 0x01);
        let damaged = env.read_file(&segs[2].path);

        // SkipCorrupt: that segment is quarantined, its records lost, the rest readable.
        let log = open_in(&env, SkipCorrupt)?;
        let report = log.recovery_report();
        assert_eq!(report.lost, vec![lsn_range(first, last)], "{report}");
        assert_eq!(report.damage[0].kind, CorruptionKind::HeaderChecksum);
        assert_eq!(report.damage[0].action, DamageAction::Quarantined);
        assert_eq!(names(&report.quarantined), vec![segs[2].name.clone()]);
        let lost: Vec<u64> = (first..=last).collect();
        check_skipped(&log, &lost, RECORDS, env.name())?;
        drop(log);
        assert_eq!(
            env.read_file(&quarantine_dir(&env).join(&segs[2].name)),
            damaged
        );

        // Put it back: PointInTime ends the log before it.
        env.write_file(&segs[2].path, &damaged);
        let log = open_in(&env, PointInTime)?;
        let report = log.recovery_report();
        assert_eq!(report.damage.len(), 1, "{report}");
        assert_eq!(report.damage[0].path, segs[2].path);
        assert_eq!(report.damage[0].action, DamageAction::Quarantined);
        // The quarantine folder already holds a file of that name: nothing is overwritten.
        assert_eq!(quarantined(&env).len(), 1 + (segs.len() - 2), "{report}");
        assert_holds(&log, 1, first - 1)?;
        appends_continue(&env, log, first, env.name())?;
    }
    Ok(())
}

#[test]
fn corrupt_checkpoint_file_is_a_typed_error_in_every_mode() -> Result<()> {
    for env in Env::both() {
        build(&env, RECORDS)?;
        let segs = layout(&env);
        let cp = segs[2].first;
        let log = env.open()?;
        log.checkpoint(Lsn::new(cp))?;
        log.close()?;
        let path = env.dir.join("CHECKPOINT");
        let good = env.read_file(&path);
        assert_eq!(
            good.len(),
            72,
            "a checkpoint file of version 2 without metadata"
        );

        let flipped = |at: usize| {
            let mut b = good.clone();
            b[at] ^= 0x20;
            b
        };
        let cases: Vec<(Vec<u8>, CorruptionKind)> = vec![
            (flipped(0), CorruptionKind::BadMagic),
            (flipped(9), CorruptionKind::HeaderChecksum),
            (flipped(13), CorruptionKind::HeaderChecksum),
            (flipped(20), CorruptionKind::HeaderChecksum),
            (flipped(33), CorruptionKind::HeaderChecksum),
            (flipped(49), CorruptionKind::HeaderChecksum),
            (
                good[..30].to_vec(),
                CorruptionKind::TruncatedHeader { len: 30 },
            ),
            (Vec::new(), CorruptionKind::TruncatedHeader { len: 0 }),
            (
                [good.as_slice(), b"x"].concat(),
                CorruptionKind::HeaderChecksum,
            ),
        ];
        for (bytes, expected) in cases {
            env.write_file(&path, &bytes);
            for mode in MODES {
                let ctx = format!("{} {mode:?} {expected}", env.name());
                let (p, offset, kind) = corrupt(open_in(&env, mode), &ctx);
                assert_eq!((&p, offset, &kind), (&path, 0, &expected), "{ctx}");
            }
        }
        env.write_file(&path, &good);
        let log = env.open()?;
        assert!(log.recovery_report().is_clean());
        assert_eq!(log.checkpoint_lsn(), Lsn::new(cp));
        let held: Vec<u64> = lsns(&log)?;
        assert_eq!(held, (cp..=RECORDS).collect::<Vec<_>>());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 9. A sweep of single-byte flips over every segment file, in every mode.
// ---------------------------------------------------------------------------------------------

/// xorshift64: deterministic and good enough to spread positions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One flipped byte: segment `seg`, `offset`, XOR `mask`.
#[derive(Debug, Clone, Copy)]
struct Flip {
    seg: usize,
    offset: usize,
    mask: u8,
}

/// 200 flips spread over the files: in segment headers, in frame headers, and anywhere.
fn flips(segs: &[SegFile]) -> Vec<Flip> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..200)
        .map(|i| {
            let seg = i % segs.len();
            let s = &segs[seg];
            let offset = match i % 5 {
                0 => rng.below(segment_header_len()),
                1 => {
                    let f = s.frames[rng.below(s.frames.len())];
                    f.offset + rng.below(frame_header_len())
                }
                _ => rng.below(s.bytes.len()),
            };
            let mask = (rng.below(255) + 1) as u8;
            Flip { seg, offset, mask }
        })
        .collect()
}

/// Writes the pristine segment files into `env`'s (new) directory, with one byte flipped.
fn restore_flipped(env: &Env, segs: &[SegFile], flip: Flip) {
    env.storage
        .create_dir_all(&env.dir)
        .expect("create log directory");
    for (i, s) in segs.iter().enumerate() {
        let mut bytes = s.bytes.clone();
        if i == flip.seg {
            bytes[flip.offset] ^= flip.mask;
        }
        env.write_file(&env.dir.join(&s.name), &bytes);
    }
}

/// What a flip destroys: the LSNs lost, and the frame hit (none for a header).
fn victims(segs: &[SegFile], flip: Flip) -> (Vec<u64>, Option<Frame>) {
    let s = &segs[flip.seg];
    if flip.offset < segment_header_len() {
        return ((s.first..=s.last()).collect(), None);
    }
    let f = *s
        .frames
        .iter()
        .find(|f| f.offset <= flip.offset && flip.offset < f.end())
        .expect("every byte after the header belongs to a frame or a marker");
    (vec![f.lsn], Some(f))
}

/// The sync marker a flip hits, if it hits one.
fn marker_hit(segs: &[SegFile], flip: Flip) -> Option<Frame> {
    let s = &segs[flip.seg];
    let (_, markers) = all_frames(&s.bytes);
    markers
        .into_iter()
        .find(|f| f.offset <= flip.offset && flip.offset < f.end())
}

/// A flip in a sync marker destroys no record: recovery refuses it where it refuses damage,
/// ends the log before it (`PointInTime`), skips it (`SkipCorrupt`), and cuts it where it is the
/// last frame of the log, which nothing after it proves.
fn check_marker_flip(
    env: &Env,
    segs: &[SegFile],
    flip: Flip,
    marker: Frame,
    mode: RecoveryMode,
) -> Result<()> {
    let ctx = format!("{} {mode:?} {flip:?} (a sync marker)", env.name());
    restore_flipped(env, segs, flip);
    let s = &segs[flip.seg];
    let path = env.dir.join(&s.name);
    let last_seg = flip.seg + 1 == segs.len();
    // The log's last frame: nothing after it proves it.
    let torn_tail = last_seg
        && all_frames(&s.bytes).1.last() == Some(&marker)
        && s.frames.last().is_none_or(|f| f.offset < marker.offset);
    let result = open_in(env, mode);
    let (held, last): (Vec<u64>, u64) = match mode {
        Strict => {
            let (p, offset, _) = corrupt(result, &ctx);
            assert_eq!((p, offset), (path, marker.offset as u64), "{ctx}");
            return Ok(());
        }
        TolerateTornTail if !torn_tail => {
            let (p, offset, _) = corrupt(result, &ctx);
            assert_eq!((p, offset), (path, marker.offset as u64), "{ctx}");
            return Ok(());
        }
        PointInTime => ((1..marker.lsn).collect(), marker.lsn - 1),
        _ => ((1..=RECORDS).collect(), RECORDS),
    };
    let log = result.unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let report = log.recovery_report().clone();
    assert!(!report.is_clean(), "{ctx}: damage unnoticed");
    assert_eq!(lsns(&log)?, held, "{ctx}: {report}");
    assert_eq!(log.last_lsn(), Lsn::new(last), "{ctx}");
    assert!(report.lost.is_empty(), "{ctx}: {report}");
    let next = log.append(&payload(last + 1), Durability::Synced)?;
    assert_eq!(next, Lsn::new(last + 1), "{ctx}");
    log.close()?;
    let log = open_in(env, mode)?;
    assert_eq!(log.last_lsn(), Lsn::new(last + 1), "{ctx}");
    Ok(())
}

/// Opens the flipped log in `mode` and checks the outcome against what the flip destroyed.
fn check_flip(env: &Env, segs: &[SegFile], flip: Flip, mode: RecoveryMode) -> Result<()> {
    if flip.offset >= segment_header_len()
        && let Some(marker) = marker_hit(segs, flip)
    {
        return check_marker_flip(env, segs, flip, marker, mode);
    }
    let ctx = format!("{} {mode:?} {flip:?}", env.name());
    restore_flipped(env, segs, flip);
    let (victims, frame) = victims(segs, flip);
    let s = &segs[flip.seg];
    let path = env.dir.join(&s.name);
    let err_offset = frame.map_or(0, |f| f.offset as u64);
    let last_seg = flip.seg + 1 == segs.len();
    // The last record of the log, with no sync marker after it to prove it durable.
    let marker_after = |f: &Frame| all_frames(&s.bytes).1.iter().any(|m| m.offset > f.offset);
    let torn_tail =
        last_seg && frame.is_some_and(|f| Some(&f) == s.frames.last() && !marker_after(&f));
    let (vmin, vmax) = (victims[0], victims[victims.len() - 1]);
    // `SkipCorrupt` goes on past the damage to the end of the log: past a damaged frame that
    // something proves, or a damaged segment that is not the last.
    let skipped_on = mode == SkipCorrupt
        && if frame.is_some() {
            !torn_tail
        } else {
            vmax < RECORDS
        };

    let result = open_in(env, mode);
    let log = match mode {
        Strict => {
            let (p, offset, _) = corrupt(result, &ctx);
            assert_eq!((p, offset), (path, err_offset), "{ctx}");
            return Ok(());
        }
        TolerateTornTail if !torn_tail => {
            let (p, offset, _) = corrupt(result, &ctx);
            assert_eq!((p, offset), (path, err_offset), "{ctx}");
            return Ok(());
        }
        _ => result.unwrap_or_else(|e| panic!("{ctx}: {e}")),
    };
    let report = log.recovery_report().clone();
    assert!(!report.is_clean(), "{ctx}: damage unnoticed");
    let held = lsns(&log)?;
    let expected: Vec<u64> = match mode {
        SkipCorrupt => (1..=RECORDS).filter(|l| !victims.contains(l)).collect(),
        _ => (1..vmin).collect(),
    };
    assert_eq!(held, expected, "{ctx}: {report}");
    let last = if skipped_on { RECORDS } else { vmin - 1 };
    assert_eq!(log.last_lsn(), Lsn::new(last), "{ctx}");
    match mode {
        SkipCorrupt if skipped_on => {
            assert_eq!(report.lost, vec![lsn_range(vmin, vmax)], "{ctx}: {report}");
            for lsn in [vmin, vmax] {
                assert!(
                    matches!(log.read(Lsn::new(lsn)), Err(Error::RecordLost { .. })),
                    "{ctx}: LSN {lsn}"
                );
            }
        }
        _ => assert!(report.lost.is_empty(), "{ctx}: {report}"),
    }
    // Nothing is thrown away without a copy in quarantine.
    if mode != SkipCorrupt || frame.is_none() || torn_tail {
        assert!(!report.quarantined.is_empty(), "{ctx}: {report}");
        assert_eq!(quarantined(env), names(&report.quarantined), "{ctx}");
    }
    let next = log.append(&payload(last + 1), Durability::Synced)?;
    assert_eq!(next, Lsn::new(last + 1), "{ctx}");
    log.close()?;
    if mode == SkipCorrupt {
        let log = open_in(env, SkipCorrupt)?;
        assert_eq!(log.recovery_report().lost, report.lost, "{ctx}");
        assert_eq!(log.last_lsn(), Lsn::new(last + 1), "{ctx}");
    } else {
        reopen_clean(env, last + 1, &ctx)?;
    }
    Ok(())
}

#[test]
fn single_byte_flips_never_invent_records_in_any_mode() -> Result<()> {
    let pristine = Env::mem();
    build(&pristine, RECORDS)?;
    let segs = layout(&pristine);
    assert!(segs.len() >= 4, "{} segments", segs.len());
    let flips = flips(&segs);
    for (i, &flip) in flips.iter().enumerate() {
        for mode in MODES {
            check_flip(&Env::mem(), &segs, flip, mode)?;
            // The real disk too, for a tenth of the flips.
            if i % 10 == 0 {
                check_flip(&Env::std(), &segs, flip, mode)?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 10. Unsynced tail or damage: what proves that damaged records were durable.
// ---------------------------------------------------------------------------------------------

/// A log of at least `RECORDS` records appended buffered, never synced but by the close, whose
/// last segment holds a few of them.
fn build_buffered(env: &Env) -> Result<()> {
    let log = env.open()?;
    append_n(&log, RECORDS)?;
    while log
        .segments()
        .last()
        .is_some_and(|s| s.last_lsn.get().saturating_sub(s.first_lsn.get()) < 4)
    {
        log.append(&payload(log.last_lsn().get() + 1), Durability::Buffered)?;
    }
    log.close()
}

/// Damage in the last segment followed by intact frames, where nothing says the damaged records
/// were durable (appended buffered and never synced, as a crash before any sync leaves them):
/// indistinguishable from a crash that wrote the unsynced tail back out of order, so it is cut
/// as a torn tail, and the cut bytes, intact frames included, are kept in quarantine.
#[test]
fn unproven_damage_in_the_last_segment_is_cut_as_an_unsynced_tail() -> Result<()> {
    for env in Env::both() {
        build_buffered(&env)?;
        drop_close_marker(&env, &layout(&env).pop().expect("segments").path);
        let segs = layout(&env);
        let last = &segs[segs.len() - 1];
        let victim = last.middle_frame();
        flip(
            &env,
            &last.path,
            victim.offset + frame_header_len() + 1,
            0x10,
        );
        for mode in [TolerateTornTail, PointInTime, SkipCorrupt] {
            let ctx = format!("{} {mode:?}", env.name());
            let log = open_in(&env, mode)?;
            let report = log.recovery_report().clone();
            assert_eq!(log.last_lsn(), Lsn::new(victim.lsn - 1), "{ctx}: {report}");
            assert!(
                matches!(report.damage[0].action, DamageAction::Cut { .. }),
                "{ctx}: {report}"
            );
            assert_eq!(
                report.torn_bytes_cut,
                (last.bytes.len() - victim.offset) as u64,
                "{ctx}"
            );
            let cut = env.read_file(&report.quarantined[0]);
            assert_eq!(
                cut[frame_header_len() + 2..],
                last.bytes[victim.offset + frame_header_len() + 2..]
            );
            drop(log);
            // Put the damaged file back for the next mode.
            let mut bytes = last.bytes.clone();
            bytes[victim.offset + frame_header_len() + 1] ^= 0x10;
            env.write_file(&last.path, &bytes);
            for q in quarantined(&env) {
                env.storage
                    .remove_file(&quarantine_dir(&env).join(q))
                    .expect("clean quarantine");
            }
        }
    }
    Ok(())
}

/// The same records, made durable by the close alone: the sync marker the close leaves after
/// them (format.md, 2.4) proves them durable, so damage to any of them is damage, not a torn
/// tail: an error in the default mode, whatever frames follow it.
#[test]
fn damage_to_records_only_the_close_synced_is_proven_by_its_sync_marker() -> Result<()> {
    for env in Env::both() {
        build_buffered(&env)?;
        let segs = layout(&env);
        let last = &segs[segs.len() - 1];
        // The middle record, and the very last one (nothing but the marker after it).
        for victim in [last.middle_frame(), *last.frames.last().expect("frames")] {
            let mut bytes = last.bytes.clone();
            bytes[victim.offset + frame_header_len() + 1] ^= 0x10;
            env.write_file(&last.path, &bytes);
            for mode in [Strict, TolerateTornTail] {
                let ctx = format!("{} {mode:?} LSN {}", env.name(), victim.lsn);
                let (path, offset, kind) = corrupt(open_in(&env, mode), &ctx);
                assert_eq!(
                    (path, offset),
                    (last.path.clone(), victim.offset as u64),
                    "{ctx}"
                );
                assert!(
                    matches!(kind, CorruptionKind::FrameChecksum { .. }),
                    "{ctx}"
                );
            }
            let log = open_in(&env, SkipCorrupt)?;
            let report = log.recovery_report().clone();
            let ctx = format!("{} SkipCorrupt LSN {}", env.name(), victim.lsn);
            assert_eq!(
                report.lost,
                [lsn_range(victim.lsn, victim.lsn)],
                "{ctx}: {report}"
            );
            assert!(
                matches!(report.damage[0].action, DamageAction::Skipped { .. }),
                "{ctx}: {report}"
            );
            drop(log);
            // Undo what SkipCorrupt did: the file as closed, the new segment gone.
            for path in env.segment_paths() {
                if !segs.iter().any(|s| s.path == path) {
                    env.storage.remove_file(&path).expect("remove");
                }
            }
            env.write_file(&last.path, &last.bytes);
        }
    }
    Ok(())
}

/// The same damage where later frames were written after the damaged records were made
/// durable (every append synced): damage to durable records, an error in the default mode.
#[test]
fn proven_damage_in_the_last_segment_is_an_error() -> Result<()> {
    for env in Env::both() {
        build(&env, RECORDS)?; // every append synced
        let segs = layout(&env);
        let last = &segs[segs.len() - 1];
        let victim = last.middle_frame();
        flip(
            &env,
            &last.path,
            victim.offset + frame_header_len() + 1,
            0x10,
        );
        let (path, offset, kind) = corrupt(env.open(), env.name());
        assert_eq!((path, offset), (last.path.clone(), victim.offset as u64));
        assert!(
            matches!(kind, CorruptionKind::FrameChecksum { .. }),
            "{kind}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 11. What recovery reads: memory bounded by the record limit, one pass over a segment.
// ---------------------------------------------------------------------------------------------

/// The record limit of the logs below: far smaller than their segments.
const SMALL_RECORD_LIMIT: u32 = 64 << 10;
/// Their segment size.
const BIG_SEGMENT: u64 = 8 << 20;

/// An in-memory environment, and the same storage with its reads counted.
fn counting_env() -> (Env, HookedStorage) {
    let env = Env::mem();
    let counting = HookedStorage::new(Arc::new(env.mem.clone().expect("in-memory storage")));
    (env, counting)
}

/// A builder for logs with [`BIG_SEGMENT`]-byte preallocated segments and records of at most
/// [`SMALL_RECORD_LIMIT`], on the counting storage.
fn big_segments(env: &Env, counting: &HookedStorage) -> tidelog::LogBuilder {
    env.builder()
        .storage(Arc::new(counting.clone()))
        .segment_bytes(BIG_SEGMENT)
        .max_record_bytes(SMALL_RECORD_LIMIT)
        .preallocate(true)
}

/// Opening a log whose last segment needs a tail scan (a torn write in front of megabytes of
/// preallocated zeros, or damage in front of megabytes of unsynced frames) reads it in pieces no
/// larger than the record limit and a frame header (plus a page of slack), not the rest of the
/// segment at once.
#[test]
fn recovery_reads_a_large_segment_in_pieces_bounded_by_the_record_limit() -> Result<()> {
    let bound = u64::from(SMALL_RECORD_LIMIT) + frame_header_len() as u64 + 4096;

    // A clean log: many records, then megabytes of preallocated zeros.
    let (env, counting) = counting_env();
    let log = big_segments(&env, &counting).open()?;
    for lsn in 1..=200 {
        log.append(&payload(lsn), Durability::Synced)?;
    }
    let active = log.segments().pop().expect("a segment");
    drop(log);
    counting.reads().reset();
    let log = big_segments(&env, &counting).open()?;
    let largest = counting.reads().largest();
    assert!(
        log.recovery_report().is_clean(),
        "{}",
        log.recovery_report()
    );
    assert!(largest <= bound, "clean open: a read of {largest} bytes");
    drop(log);

    // A torn write after the last frame, then zeros to the end of the segment.
    let mut bytes = env.read_file(&active.path);
    assert_eq!(bytes.len() as u64, BIG_SEGMENT);
    let end = active.bytes as usize;
    bytes[end..end + 9].copy_from_slice(&[0x5a; 9]);
    env.write_file(&active.path, &bytes);
    counting.reads().reset();
    let log = big_segments(&env, &counting).open()?;
    let largest = counting.reads().largest();
    let report = log.recovery_report().clone();
    assert_eq!(report.torn_bytes_cut, 9, "{report}");
    assert_holds(&log, 1, 200)?;
    assert!(largest <= bound, "torn write: a read of {largest} bytes");
    drop(log);

    // Damage early in a segment holding megabytes of frames that were never synced.
    let (env, counting) = counting_env();
    let log = big_segments(&env, &counting).open()?;
    let big = vec![0x3c; 40 << 10];
    for _ in 0..150 {
        log.append(&big, Durability::Buffered)?;
    }
    log.close()?;
    drop_close_marker(&env, &layout(&env)[0].path);
    let segs = layout(&env);
    assert_eq!(segs.len(), 1);
    let victim = segs[0].frames[3];
    flip(
        &env,
        &segs[0].path,
        victim.offset + frame_header_len() + 7,
        0x01,
    );
    counting.reads().reset();
    let log = big_segments(&env, &counting).open()?;
    let largest = counting.reads().largest();
    let report = log.recovery_report().clone();
    assert_eq!(report.last_lsn, Lsn::new(victim.lsn - 1), "{report}");
    assert_eq!(report.intact_frames_cut, 150 - victim.lsn, "{report}");
    assert!(
        report.torn_bytes_cut > 5 << 20,
        "megabytes of unsynced frames cut: {report}"
    );
    assert!(largest <= bound, "damaged tail: a read of {largest} bytes");
    Ok(())
}

/// A log of 5000 records in 256 KiB segments, appended with `durability` (each synced, or all
/// synced once at the end), with 50 damaged places spread over each segment, none next to
/// another. Returns the LSNs of the damaged records, the highest LSN, and the size of the
/// segment files.
fn many_damaged_places(
    env: &Env,
    counting: &HookedStorage,
    durability: SyncPolicy,
) -> Result<(Vec<u64>, u64, u64)> {
    let log = env
        .builder()
        .storage(Arc::new(counting.clone()))
        .segment_bytes(256 << 10)
        .sync_policy(durability)
        .open()?;
    let last = append_n(&log, 5000)?.get();
    log.close()?;
    if durability == SyncPolicy::Manual {
        // Never synced but by the close: as a crash before it would have left the files.
        let path = layout(env).pop().expect("segments").path;
        drop_close_marker(env, &path);
    }
    let segs = layout(env);
    assert_eq!(segs.len(), 2, "a sealed segment and the last one");
    let mut lost = Vec::new();
    for s in &segs {
        let step = s.frames.len() / 51;
        for k in 1..=50 {
            let f = s.frames[k * step];
            flip(env, &s.path, f.offset + frame_header_len() + 2, 0x08);
            lost.push(f.lsn);
        }
    }
    let files = segs.iter().map(|s| s.bytes.len() as u64).sum();
    Ok((lost, last, files))
}

/// `SkipCorrupt` over segments with many damaged places (a sealed one, and the last one, where
/// each place needs a later frame to prove it is not an unsynced tail) reads each segment about
/// once, not its rest again at every damaged place.
#[test]
fn skip_corrupt_reads_a_segment_with_many_damaged_places_once() -> Result<()> {
    let (env, counting) = counting_env();
    let (lost, last, files) = many_damaged_places(&env, &counting, SyncPolicy::EveryCommit)?;
    counting.reads().reset();
    let log = env
        .builder()
        .storage(Arc::new(counting.clone()))
        .recovery_mode(SkipCorrupt)
        .open()?;
    let total = counting.reads().total();
    let report = log.recovery_report().clone();
    assert_eq!(report.damage.len(), 100, "{report}");
    assert!(
        report
            .damage
            .iter()
            .all(|d| matches!(d.action, DamageAction::Skipped { .. })),
        "{report}"
    );
    let expected: Vec<_> = lost.iter().map(|&l| lsn_range(l, l)).collect();
    assert_eq!(report.lost, expected);
    assert!(
        total <= 3 * files,
        "{total} bytes read for {files} bytes of segments"
    );
    let held: Vec<u64> = (1..=last).filter(|l| !lost.contains(l)).collect();
    assert_eq!(lsns(&log)?, held);
    for &lsn in &lost {
        assert!(
            matches!(log.read(Lsn::new(lsn)), Err(Error::RecordLost { .. })),
            "LSN {lsn}"
        );
    }
    Ok(())
}

/// The same damage where nothing proves the records in the last segment were ever synced:
/// `SkipCorrupt` skips the sealed segment's damage and cuts the last segment at its first
/// damaged place, having read it once, once more from that place on, and once more to copy the
/// cut bytes into quarantine.
#[test]
fn skip_corrupt_cuts_an_unsynced_tail_with_many_damaged_places_reading_it_a_few_times() -> Result<()>
{
    let (env, counting) = counting_env();
    let (lost, _, files) = many_damaged_places(&env, &counting, SyncPolicy::Manual)?;
    let first_in_last = lost[50];
    counting.reads().reset();
    let log = env
        .builder()
        .storage(Arc::new(counting.clone()))
        .recovery_mode(SkipCorrupt)
        .open()?;
    let total = counting.reads().total();
    let report = log.recovery_report().clone();
    assert_eq!(report.damage.len(), 51, "{report}");
    assert!(
        matches!(report.damage[50].action, DamageAction::Cut { .. }),
        "{report}"
    );
    assert_eq!(report.last_lsn, Lsn::new(first_in_last - 1), "{report}");
    let expected: Vec<_> = lost[..50].iter().map(|&l| lsn_range(l, l)).collect();
    assert_eq!(report.lost, expected);
    assert!(
        total <= 4 * files,
        "{total} bytes read for {files} bytes of segments"
    );
    Ok(())
}
