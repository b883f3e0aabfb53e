//! The bodies of the fuzz targets, in one place for the two ways they run.
//!
//! The fuzz crate (`fuzz/` at the root of the repository, its own workspace, built with
//! `cargo +nightly fuzz`) compiles this file, with `model.rs` and `hooked.rs`, through `#[path]`,
//! and each of its targets calls one body here. The tests at the bottom run the same bodies on
//! the stable toolchain over every file of the committed corpora (`fuzz/corpus/<target>/`) and
//! over every input the fuzzer found failing, each kept as a named regression test. So a
//! finding stays covered whether or not the fuzzer runs.
//!
//! A body panics when, and only when, the library broke a promise:
//!
//! - `frame_decode`: any bytes as a quarantined cut file, read by `tidelog::inspect` with the
//!   header of its segment, without one, and with a damaged one.
//! - `segment_scan`: any bytes after a valid segment header, then `segment_header`: any bytes as
//!   a whole segment file, header included. Each file is read by `inspect`, then the log is
//!   opened read-only and writable in each of the four recovery modes and read to its end.
//! - `checkpoint`: any bytes as the `CHECKPOINT` or `RETENTION` file beside healthy segments:
//!   the same opens, and a checkpoint rebuild where one is needed.
//! - `log_dir`: a whole log directory generated from the bytes (segments of frames with valid
//!   checksums, batches, durability hints, gaps, torn and flipped bytes, foreign frames, a
//!   checkpoint), opened as above.
//! - `log_ops`: the model-based run of `model.rs` (operations, fault countdown, disk full,
//!   crashes of the in-memory storage, reopens, each checked against the model).
//!
//! What the opens must do, whatever the bytes: never panic; fail, if they fail, with an error
//! that names the problem (never `Io`, `Poisoned` or `Closed`: the storage is in memory and
//! never fails); read no more than the record limit and a frame header at a time while
//! recovering (docs/design.md, Recovery), so a length field can make no allocation larger than
//! that; give back only records whose frames are intact in the files (nothing invented), in
//! LSN order, the same through the iterator and through `Log::read`; agree between a read-only
//! open (a dry run) and a writable one; and leave, after a writable open, a log that takes an
//! append and reopens with what it held and that record.
//!
//! The format constants and the checksum are written out here from docs/format.md rather than
//! taken from the crate, so the bodies also check the code against the document.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arbitrary::Unstructured;
use tidelog::inspect::{Entry, FileKind, Frames, HeaderSource};
use tidelog::io::{MemStorage, OpenMode, Storage};
use tidelog::repair::CheckpointRebuild;
use tidelog::{Durability, Error, Log, Lsn, RecoveryMode};

use crate::hooked::HookedStorage;
use crate::model;

// ---------------------------------------------------------------------------------------------
// The format, from docs/format.md.
// ---------------------------------------------------------------------------------------------

/// Version 1's segment header length: the harness's fixed headers are of version 1 (`log_dir`
/// writes both versions).
const SEGMENT_HEADER_LEN: usize = 64;

/// A format version's layout (format.md, 2.1 and 2.2): the lengths of its segment header and of
/// its frame headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lay {
    segment_header: usize,
    frame_header: usize,
}

const V1: Lay = Lay {
    segment_header: 64,
    frame_header: 24,
};
const V2: Lay = Lay {
    segment_header: 128,
    frame_header: 32,
};

impl Lay {
    fn of(version: u32) -> Option<Lay> {
        match version {
            1 => Some(V1),
            2 => Some(V2),
            _ => None,
        }
    }
}
const SEGMENT_MAGIC: &[u8; 8] = b"TDLGSEG\0";
const CHECKPOINT_MAGIC: &[u8; 8] = b"TDLGCKP\0";
const RETENTION_MAGIC: &[u8; 8] = b"TDLGRTN\0";
const FORMAT_VERSION: u32 = 1;
const RECORD_KIND: u8 = 1;
/// A sync marker (version 2 only): no flags, no payload.
const SYNC_KIND: u8 = 2;
/// A seal (version 2 only): no flags, a payload of 32 bytes (format.md, 2.5).
const SEAL_KIND: u8 = 3;
const SEAL_LEN: u32 = 32;
const FLAG_BATCH_END: u8 = 0x01;
const FLAG_BATCH_START: u8 = 0x02;
const MAX_RECORD_BYTES_LIMIT: u32 = 1 << 30;
/// A durable lag that says "durable up to no known LSN".
const LAG_UNKNOWN: u32 = u32::MAX;

/// The id and salt of the harness's segment 1: those of segment 1 of the `healthy` fixture
/// (`tests/fixtures/v1/healthy/`), so the fixture's frames verify under the harness's header.
const LOG_ID: u128 = 0x9758_35de_1c97_56ce_bfc8_4610_0bfc_1e42;
const SALT: u64 = 0x987b_bcbf_dd7e_532f;
/// The creation time the fixtures' headers hold.
const CREATED_MS: u64 = 1_700_000_000_000;

/// The log directory of every body, on the in-memory storage.
const DIR: &str = "/log";

fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.seg")
}

/// A 64-byte segment header (format.md, 2.1).
fn encode_segment_header(log_id: u128, first_lsn: u64, salt: u64, prev_extent: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(SEGMENT_HEADER_LEN);
    h.extend_from_slice(SEGMENT_MAGIC);
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
    h.extend_from_slice(&log_id.to_le_bytes());
    h.extend_from_slice(&first_lsn.to_le_bytes());
    h.extend_from_slice(&salt.to_le_bytes());
    h.extend_from_slice(&CREATED_MS.to_le_bytes());
    h.extend_from_slice(&prev_extent.to_le_bytes());
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// A 52-byte checkpoint file, or retention file with [`RETENTION_MAGIC`] (format.md, 3).
fn encode_checkpoint(magic: &[u8; 8], log_id: u128, lsn: u64) -> Vec<u8> {
    let mut c = Vec::with_capacity(52);
    c.extend_from_slice(magic);
    c.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    c.extend_from_slice(&0u32.to_le_bytes());
    c.extend_from_slice(&log_id.to_le_bytes());
    c.extend_from_slice(&lsn.to_le_bytes());
    c.extend_from_slice(&CREATED_MS.to_le_bytes());
    let crc = crc32c::crc32c(&c);
    c.extend_from_slice(&crc.to_le_bytes());
    c
}

/// The seed of the frame checksums of a segment (format.md, 2.2).
fn frame_seed(log_id: u128, salt: u64) -> u32 {
    let mut seed = log_id.to_le_bytes().to_vec();
    seed.extend_from_slice(&salt.to_le_bytes());
    crc32c::crc32c(&seed)
}

/// A frame of `lay` (format.md, 2.2): a record, or in version 2 a sync marker or a seal, with
/// its LSN, flags, durable lag and (version 2) time.
fn encode_frame_of(
    lay: Lay,
    seed: u32,
    kind: u8,
    (lsn, flags, lag, ms): (u64, u8, u32, u64),
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![0; 4];
    f.extend_from_slice(
        &u32::try_from(payload.len())
            .expect("a small payload")
            .to_le_bytes(),
    );
    f.extend_from_slice(&lsn.to_le_bytes());
    f.extend_from_slice(&[kind, flags, 0, 0]);
    f.extend_from_slice(&lag.to_le_bytes());
    if lay == V2 {
        f.extend_from_slice(&ms.to_le_bytes());
    }
    f.extend_from_slice(payload);
    let crc = crc32c::crc32c_append(seed, &f[4..]);
    f[..4].copy_from_slice(&crc.to_le_bytes());
    f
}

/// A 128-byte segment header of version 2 (format.md, 2.1): a recycled file's keeps the seed,
/// version and end of its earlier life.
fn encode_segment_header_v2(
    log_id: u128,
    first_lsn: u64,
    salt: u64,
    prev: (u32, u32, u64),
) -> Vec<u8> {
    let (prev_seed, prev_version, prev_end) = prev;
    let mut h = Vec::with_capacity(V2.segment_header);
    h.extend_from_slice(SEGMENT_MAGIC);
    h.extend_from_slice(&2u32.to_le_bytes());
    h.extend_from_slice(&(V2.segment_header as u32).to_le_bytes());
    h.extend_from_slice(&log_id.to_le_bytes());
    h.extend_from_slice(&first_lsn.to_le_bytes());
    h.extend_from_slice(&salt.to_le_bytes());
    h.extend_from_slice(&CREATED_MS.to_le_bytes());
    h.extend_from_slice(&prev_seed.to_le_bytes());
    h.extend_from_slice(&prev_version.to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes()); // generation
    h.extend_from_slice(&prev_end.to_le_bytes());
    h.resize(V2.segment_header - 4, 0);
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// A checkpoint file of version 2 (format.md, 3), with `metadata`.
fn encode_checkpoint_v2(log_id: u128, lsn: u64, metadata: &[u8]) -> Vec<u8> {
    let len = 72 + metadata.len();
    let mut c = Vec::with_capacity(len);
    c.extend_from_slice(CHECKPOINT_MAGIC);
    c.extend_from_slice(&2u32.to_le_bytes());
    c.extend_from_slice(&u32::try_from(len).expect("small").to_le_bytes());
    c.extend_from_slice(&log_id.to_le_bytes());
    c.extend_from_slice(&lsn.to_le_bytes());
    c.extend_from_slice(&CREATED_MS.to_le_bytes());
    c.extend_from_slice(&lsn.saturating_sub(1).to_le_bytes()); // durable
    c.extend_from_slice(&0u64.to_le_bytes()); // generation
    c.extend_from_slice(&u32::try_from(metadata.len()).expect("small").to_le_bytes());
    c.extend_from_slice(metadata);
    let crc = crc32c::crc32c(&c);
    c.extend_from_slice(&crc.to_le_bytes());
    c
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The fields of a frame header that a reader accepts (format.md, 2.2, "Validity").
#[derive(Debug, Clone, Copy)]
struct FrameHead {
    crc: u32,
    len: u32,
    lsn: u64,
    flags: u8,
    kind: u8,
    header_len: usize,
}

impl FrameHead {
    fn parse(b: &[u8], lay: Lay) -> Option<FrameHead> {
        let b = b.get(..lay.frame_header)?;
        let head = FrameHead {
            crc: u32_at(b, 0),
            len: u32_at(b, 4),
            lsn: u64_at(b, 8),
            flags: b[17],
            kind: b[16],
            header_len: lay.frame_header,
        };
        let marker = lay == V2
            && head.flags == 0
            && (b[16] == SYNC_KIND && head.len == 0 || b[16] == SEAL_KIND && head.len == SEAL_LEN);
        let valid = (b[16] == RECORD_KIND || marker)
            && head.flags & !(FLAG_BATCH_START | FLAG_BATCH_END) == 0
            && b[18] == 0
            && b[19] == 0
            && head.len <= MAX_RECORD_BYTES_LIMIT
            && head.lsn != 0;
        valid.then_some(head)
    }

    fn frame_len(&self) -> usize {
        self.header_len + self.len as usize
    }
}

/// The frame at `at` of `bytes`, if its header is valid and it fits, with whether its checksum
/// verifies under `seed`.
fn frame_at(
    bytes: &[u8],
    at: usize,
    seed: Option<u32>,
    lay: Lay,
) -> Option<(FrameHead, Option<bool>)> {
    let head = FrameHead::parse(bytes.get(at..)?, lay)?;
    let frame = bytes.get(at..at.checked_add(head.frame_len())?)?;
    let verifies = seed.map(|seed| crc32c::crc32c_append(seed, &frame[4..]) == head.crc);
    Some((head, verifies))
}

/// The seed of the frames of a segment file and their layout, if its header decodes
/// (format.md, 2.1: length, magic, version and header length, checksum).
fn header_seed(file: &[u8]) -> Option<(u32, Lay)> {
    let lay = Lay::of(u32_at(file.get(..12)?, 8))?;
    let n = lay.segment_header;
    let h = file.get(..n)?;
    let valid = &h[..8] == SEGMENT_MAGIC
        && u32_at(h, 12) as usize == n
        && crc32c::crc32c(&h[..n - 4]) == u32_at(h, n - 4);
    let log_id = u128::from_le_bytes(h[16..32].try_into().expect("16 bytes"));
    valid.then(|| (frame_seed(log_id, u64_at(h, 40)), lay))
}

/// Every record whose frame is intact somewhere in a set of segment files: what a log opened
/// on them may give back, and nothing else.
#[derive(Debug, Default)]
struct Intact {
    records: HashSet<(u64, Vec<u8>)>,
}

impl Intact {
    /// The intact frames of the segment files (`*.seg`) among `files`, at every byte offset.
    fn of(files: &[(String, Vec<u8>)]) -> Intact {
        let mut intact = Intact::default();
        for (_, bytes) in files.iter().filter(|(n, _)| n.ends_with(".seg")) {
            let Some((seed, lay)) = header_seed(bytes) else {
                continue;
            };
            for at in lay.segment_header..bytes.len() {
                if let Some((head, Some(true))) = frame_at(bytes, at, Some(seed), lay)
                    && head.kind == RECORD_KIND
                {
                    let payload = &bytes[at + head.header_len..at + head.frame_len()];
                    intact.records.insert((head.lsn, payload.to_vec()));
                }
            }
        }
        intact
    }

    fn holds(&self, lsn: u64, data: &[u8]) -> bool {
        self.records.contains(&(lsn, data.to_vec()))
    }
}

// ---------------------------------------------------------------------------------------------
// Building a directory, and what reading it may cost.
// ---------------------------------------------------------------------------------------------

/// Files of a log directory: a path relative to [`DIR`] (`quarantine/…` too) and its bytes.
type Files = Vec<(String, Vec<u8>)>;

/// An in-memory storage holding `files` under [`DIR`], durably.
fn build(files: &[(String, Vec<u8>)]) -> MemStorage {
    let mem = MemStorage::new();
    let write = || -> std::io::Result<()> {
        mem.create_dir_all(Path::new(DIR))?;
        mem.sync_dir(Path::new("/"))?;
        for (name, bytes) in files {
            let path = Path::new(DIR).join(name);
            let parent = path.parent().expect("a parent");
            mem.create_dir_all(parent)?;
            let file = mem.open(&path, OpenMode::Truncate)?;
            file.write_all_at(bytes, 0)?;
            file.sync_data()?;
            mem.sync_dir(parent)?;
            mem.sync_dir(Path::new(DIR))?;
        }
        Ok(())
    };
    write().expect("the in-memory storage takes the files");
    mem
}

/// The largest read recovery may make with records of at most `limit` bytes: docs/design.md
/// (Recovery) reads a segment "through a single buffer of about the record limit:
/// `max_record_bytes` plus the longest frame header, at least 4 KiB and at most 256 KiB".
fn recovery_read_bound(limit: u32) -> u64 {
    (u64::from(limit) + V2.frame_header as u64).clamp(4 << 10, 256 << 10)
}

/// The buffer `inspect` reads through (its module documentation).
const INSPECT_WINDOW: u64 = 256 << 10;

/// The record limits the opens use, small ones mostly, so that the read bound is tight.
const LIMITS: [u32; 4] = [64, 1000, 8192, 300_000];

// ---------------------------------------------------------------------------------------------
// inspect
// ---------------------------------------------------------------------------------------------

/// Reads the file at `path` with `inspect` (`header_from` as [`Frames::open_with`] takes it)
/// and checks what it shows against the bytes.
fn inspect_file(mem: &MemStorage, path: &Path, header_from: Option<&Path>) {
    let bytes = mem.read_file(path).expect("the file exists");
    let hooked = HookedStorage::new(Arc::new(mem.clone()));
    let mut frames = match Frames::open_with(&hooked, path, header_from) {
        Ok(frames) => frames,
        Err(e) => panic!("inspect cannot open {}: {e}", path.display()),
    };
    let base = frames.base_offset();
    let lay = Lay::of(frames.version()).expect("a version the harness knows");
    let start = match frames.kind() {
        FileKind::Segment { .. } => lay.segment_header.min(bytes.len()),
        FileKind::Cut { offset, .. } => {
            assert_eq!(base, *offset, "the base of a cut file is its offset");
            0
        }
        _ => panic!("{} read as neither segment nor cut", path.display()),
    };
    assert_eq!(frames.file_len(), bytes.len() as u64);
    let seed = frames.header().map(|h| frame_seed(h.log_id, h.salt));
    if *frames.header_source() == HeaderSource::Own {
        assert_eq!(
            seed.map(|s| (s, lay)),
            header_seed(&bytes),
            "the file's own header"
        );
    }
    let mut end = base + start as u64;
    let mut last_offset = None;
    let mut largest_payload = 0u64;
    while let Some(entry) = frames.next() {
        let entry = entry.unwrap_or_else(|e| panic!("inspect failed in memory: {e}"));
        let (offset, len) = match &entry {
            Entry::Frame(f) => (f.offset, f.frame_len()),
            Entry::Zeros { offset, len } | Entry::Damage { offset, len, .. } => (*offset, *len),
            _ => panic!("an entry of an unknown kind: {entry:?}"),
        };
        assert!(len > 0, "an empty entry: {entry:?}");
        assert!(
            last_offset.is_none_or(|last| offset > last),
            "entries out of order: {entry:?} after offset {last_offset:?}"
        );
        assert!(
            offset >= base + start as u64 && offset + len <= base + bytes.len() as u64,
            "{entry:?} outside the file (base {base}, {} bytes)",
            bytes.len()
        );
        assert!(offset <= end, "a hole before {entry:?} (covered to {end})");
        last_offset = Some(offset);
        end = end.max(offset + len);
        let at = usize::try_from(offset - base).expect("an offset in memory");
        match &entry {
            Entry::Frame(f) => {
                let (head, verifies) = frame_at(&bytes, at, seed, lay)
                    .unwrap_or_else(|| panic!("{f:?} is no well-formed frame"));
                assert_eq!(
                    (f.lsn.get(), f.len, f.flags, f.stored_crc),
                    (head.lsn, head.len, head.flags, head.crc),
                    "{f:?}"
                );
                assert_eq!(
                    f.checksum().is_valid(),
                    verifies == Some(true),
                    "the checksum of {f:?}"
                );
                if u64::from(f.len) <= 1 << 20 {
                    let payload = frames.payload(f).expect("the payload reads");
                    assert_eq!(payload, &bytes[at + head.header_len..at + head.frame_len()]);
                    largest_payload = largest_payload.max(u64::from(f.len));
                }
            }
            Entry::Zeros { .. } => {
                let run = &bytes[at..at + len as usize];
                assert!(run.iter().all(|&b| b == 0), "{entry:?} is not all zeros");
            }
            _ => {}
        }
    }
    if bytes.len() > start {
        assert_eq!(
            end,
            base + bytes.len() as u64,
            "the entries end before the file does"
        );
    }
    let largest = hooked.reads().largest();
    assert!(
        largest <= INSPECT_WINDOW.max(largest_payload),
        "inspect read {largest} bytes at once"
    );
}

// ---------------------------------------------------------------------------------------------
// Opening a log directory.
// ---------------------------------------------------------------------------------------------

/// What an open gave back.
#[derive(Debug, PartialEq, Eq)]
struct Read {
    checkpoint: u64,
    last: u64,
    records: Vec<(u64, Vec<u8>)>,
}

/// Panics unless `e` is an error a log on a healthy storage may give for what its files hold.
fn assert_typed(e: &Error, context: &str) {
    assert!(
        !matches!(e, Error::Io { .. } | Error::Poisoned | Error::Closed),
        "{context}: an error that blames the storage or the log, not the bytes: {e:?}"
    );
}

/// Opens the log on `storage` in `mode`, checking the reads recovery makes.
fn open(
    storage: &MemStorage,
    mode: RecoveryMode,
    read_only: bool,
    limit: u32,
    context: &str,
) -> Result<Log, Error> {
    open_with(storage, mode, read_only, limit, false, context)
}

/// [`open`], trusting seals or not (`Options::trust_seals`).
fn open_with(
    storage: &MemStorage,
    mode: RecoveryMode,
    read_only: bool,
    limit: u32,
    trust_seals: bool,
    context: &str,
) -> Result<Log, Error> {
    let hooked = HookedStorage::new(Arc::new(storage.clone()));
    let opened = Log::builder(DIR)
        .storage(Arc::new(hooked.clone()))
        .recovery_mode(mode)
        .read_only(read_only)
        .max_record_bytes(limit)
        .segment_bytes(4096)
        .trust_seals(trust_seals)
        .open();
    let largest = hooked.reads().largest();
    let bound = recovery_read_bound(limit);
    assert!(
        largest <= bound,
        "{context}: recovery read {largest} bytes at once, more than {bound} (record limit \
         {limit}): {opened:?}",
        opened = opened.as_ref().map(Log::recovery_report)
    );
    if let Err(e) = &opened {
        assert_typed(e, context);
    }
    opened
}

/// Reads every record of `log`, through its iterator (resuming after a record that a
/// `SkipCorrupt` recovery lost) and through `Log::read`, and checks them against `intact`.
fn read_all(log: &Log, intact: &Intact, context: &str) -> Read {
    let checkpoint = log.checkpoint_lsn().get();
    let last = log.last_lsn().get();
    let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut lost = Vec::new();
    let mut from = log.checkpoint_lsn();
    'outer: while from.get() <= last {
        let iter = log
            .iter_from(from)
            .unwrap_or_else(|e| panic!("{context}: iter_from({from}): {e:?}"));
        for item in iter {
            match item {
                Ok(r) => {
                    from = r.lsn().next();
                    records.push((r.lsn().get(), r.into_data()));
                }
                Err(Error::RecordLost { lsn }) if lsn >= from && lsn.get() <= last => {
                    lost.push(lsn.get());
                    from = lsn.next();
                    continue 'outer;
                }
                Err(e) => panic!("{context}: reading from LSN {from}: {e:?}"),
            }
        }
        break;
    }
    let lsns: Vec<u64> = records.iter().map(|r| r.0).collect();
    assert!(
        lsns.windows(2).all(|w| w[0] < w[1]),
        "{context}: LSNs out of order: {lsns:?}"
    );
    assert!(
        lsns.iter().all(|&l| l >= checkpoint && l <= last),
        "{context}: LSNs outside checkpoint {checkpoint} ..= last {last}: {lsns:?}"
    );
    for (lsn, data) in &records {
        assert!(
            intact.holds(*lsn, data),
            "{context}: LSN {lsn} ({} bytes) is no intact frame of the files",
            data.len()
        );
    }
    // Every LSN from the checkpoint to the last one is a record, or lost as the recovery report
    // says, and `read` agrees.
    let reported: Vec<_> = log.recovery_report().lost.clone();
    let in_report = |lsn: u64| reported.iter().any(|r| r.contains(&Lsn::new(lsn)));
    let mut next = records.iter().peekable();
    for lsn in (checkpoint..=last).take(300) {
        let read = log.read(Lsn::new(lsn));
        match next.next_if(|r| r.0 == lsn) {
            Some((_, data)) => {
                assert!(!in_report(lsn), "{context}: LSN {lsn} read, reported lost");
                match read {
                    Ok(r) => assert_eq!(r.data(), &data[..], "{context}: read({lsn})"),
                    Err(e) => panic!("{context}: read({lsn}) fails, the iterator read it: {e:?}"),
                }
            }
            None => {
                assert!(
                    matches!(read, Err(Error::RecordLost { .. })),
                    "{context}: LSN {lsn} not read by the iterator, read: {read:?}"
                );
                assert!(
                    lost.contains(&lsn) || in_report(lsn),
                    "{context}: LSN {lsn} lost, but the recovery report does not say so \
                     (reported lost: {reported:?})"
                );
            }
        }
    }
    Read {
        checkpoint,
        last,
        records,
    }
}

/// Opens the log in `files` read-only and writable in every recovery mode, reads everything,
/// and checks the opens against each other; after each writable open, appends a record and
/// reopens.
fn check_dir(files: &[(String, Vec<u8>)], limit: u32) {
    let intact = Intact::of(files);
    for mode in RecoveryMode::ALL {
        let ro_storage = build(files);
        let ro_context = format!("read-only open, {mode}");
        let ro = open(&ro_storage, mode, true, limit, &ro_context)
            .map(|log| read_all(&log, &intact, &ro_context));
        let (after, before) = (snapshot(&ro_storage), snapshot(&build(files)));
        let changed: Vec<_> = after
            .iter()
            .filter(|f| !before.contains(f))
            .chain(before.iter().filter(|f| !after.contains(f)))
            .map(|(path, bytes)| (path, bytes.as_ref().map(Vec::len)))
            .collect();
        assert!(
            changed.is_empty(),
            "{ro_context}: a read-only open changed the directory: {changed:?}"
        );

        let storage = build(files);
        let context = format!("writable open, {mode}");
        let log = match open(&storage, mode, false, limit, &context) {
            Ok(log) => log,
            Err(e) => {
                assert!(
                    ro.is_err(),
                    "{context} fails ({e:?}) where a read-only one read {ro:?}"
                );
                continue;
            }
        };
        let rw = read_all(&log, &intact, &context);
        let ro = match ro {
            Ok(ro) => Some(ro),
            // No log there: a read-only open does not create one.
            Err(Error::NotFound { .. }) if log.recovery_report().created => None,
            Err(e) => panic!("{ro_context} fails ({e:?}) where a writable one read {rw:?}"),
        };
        assert!(
            ro.as_ref().is_none_or(|ro| *ro == rw),
            "{context}: a dry run and the real one disagree: checkpoint {} last {} records \
             {:?}, read-only checkpoint {:?} last {:?} records {:?}",
            rw.checkpoint,
            rw.last,
            lsns(&rw.records),
            ro.as_ref().map(|r| r.checkpoint),
            ro.as_ref().map(|r| r.last),
            ro.as_ref().map(|r| lsns(&r.records))
        );

        // The recovered log takes an append and reopens with it.
        let expected = log.last_lsn().next();
        let appended = log.append(b"appended after recovery", Durability::Synced);
        match appended {
            Ok(lsn) => assert_eq!(lsn, expected, "{context}: the LSN of an append"),
            Err(e) => {
                assert!(
                    expected.get() >= u64::MAX - 1,
                    "{context}: an append to the recovered log fails: {e:?}"
                );
                continue;
            }
        }
        log.close()
            .unwrap_or_else(|e| panic!("{context}: close: {e:?}"));
        let context = format!("{context}, then an append and a reopen");
        let mut intact_now = Intact {
            records: intact.records.clone(),
        };
        intact_now
            .records
            .insert((expected.get(), b"appended after recovery".to_vec()));
        let reopened = open(&storage, mode, false, limit, &context)
            .unwrap_or_else(|e| panic!("{context}: the reopen fails: {e:?}"));
        let again = read_all(&reopened, &intact_now, &context);
        let mut want = rw.records.clone();
        want.push((expected.get(), b"appended after recovery".to_vec()));
        assert!(
            again.checkpoint == rw.checkpoint && again.records == want,
            "{context}: checkpoint {} and records {:?} where {} and {:?} were expected",
            again.checkpoint,
            lsns(&again.records),
            rw.checkpoint,
            lsns(&want)
        );
    }
}

/// The LSNs of `records`, and the length of each.
fn lsns(records: &[(u64, Vec<u8>)]) -> Vec<(u64, usize)> {
    records.iter().map(|(l, d)| (*l, d.len())).collect()
}

/// Every file under [`DIR`] of `mem`, with its live bytes, by path.
fn snapshot(mem: &MemStorage) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    fn walk(mem: &MemStorage, dir: &Path, out: &mut Vec<(PathBuf, Option<Vec<u8>>)>) {
        let Ok(mut names) = mem.list(dir) else {
            return;
        };
        names.sort();
        for name in names {
            let path = dir.join(name);
            match mem.read_file(&path) {
                Some(bytes) => out.push((path, Some(bytes))),
                None => {
                    out.push((path.clone(), None));
                    walk(mem, &path, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(mem, Path::new(DIR), &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// The bodies.
// ---------------------------------------------------------------------------------------------

/// The harness's segment 1 header.
fn harness_header() -> Vec<u8> {
    encode_segment_header(LOG_ID, 1, SALT, 0)
}

/// `data` as a cut file, `quarantine/00000000000000000001.seg.{offset}.cut`, read by `inspect`.
/// The first byte says where the segment the bytes were cut from is (in the log directory,
/// beside the cut file, nowhere, or there with a damaged header) and where the cut was made.
pub(crate) fn frame_decode(data: &[u8]) {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let offset = if control & 4 == 0 {
        SEGMENT_HEADER_LEN as u64
    } else {
        SEGMENT_HEADER_LEN as u64 + 1000 * u64::from(control >> 3)
    };
    let cut = format!("quarantine/{}.{offset}.cut", segment_name(1));
    let mut files: Files = vec![(cut.clone(), bytes.to_vec())];
    let mut damaged = harness_header();
    damaged[40] ^= 0x10;
    match control & 3 {
        0 => files.push((segment_name(1), harness_header())),
        1 => files.push((format!("quarantine/{}", segment_name(1)), harness_header())),
        2 => {}
        _ => files.push((segment_name(1), damaged)),
    }
    files.push(("elsewhere/header.seg".to_owned(), harness_header()));
    let mem = build(&files);
    let path = Path::new(DIR).join(&cut);
    inspect_file(&mem, &path, None);
    inspect_file(
        &mem,
        &path,
        Some(&Path::new(DIR).join("elsewhere/header.seg")),
    );
}

/// The first byte of a segment body's input: the record limit, zeros after the bytes (a
/// preallocated segment's unused space, small or larger than every buffer), and whether a
/// second, empty segment follows, and at which LSN.
struct Knobs {
    limit: u32,
    pad: usize,
    next_segment: Option<i64>,
}

impl Knobs {
    fn of(control: u8) -> Knobs {
        Knobs {
            limit: LIMITS[usize::from(control & 3)],
            pad: [0, 0, 8 << 10, 300 << 10][usize::from((control >> 2) & 3)],
            next_segment: (control & 0x10 != 0).then(|| i64::from(control >> 5) - 1),
        }
    }
}

/// A log directory with `segment` as segment 1 (its bytes then the padding), a checkpoint at
/// LSN 1, and possibly an empty segment after it; read by `inspect`, then opened every way.
fn segment_dir(segment: Vec<u8>, knobs: &Knobs) {
    let mut segment = segment;
    segment.resize(segment.len() + knobs.pad, 0);
    let mut files: Files = vec![
        (segment_name(1), segment),
        (
            "CHECKPOINT".to_owned(),
            encode_checkpoint(CHECKPOINT_MAGIC, LOG_ID, 1),
        ),
    ];
    if let Some(delta) = knobs.next_segment {
        // After the frames segment 1 holds in order, give or take a few LSNs.
        let seed = header_seed(&files[0].1).map(|(seed, _)| seed);
        let mut at = SEGMENT_HEADER_LEN;
        let mut next = 1u64;
        while let Some((head, Some(true))) = frame_at(&files[0].1, at, seed, V1) {
            if head.lsn != next {
                break;
            }
            next += 1;
            at += head.frame_len();
        }
        let first = next.saturating_add_signed(delta).max(1);
        let header = encode_segment_header(LOG_ID, first, SALT ^ 0x5a5a, 0);
        files.push((segment_name(first), header));
    }
    let mem = build(&files);
    for (name, _) in files.iter().filter(|(n, _)| n.ends_with(".seg")) {
        inspect_file(&mem, &Path::new(DIR).join(name), None);
    }
    check_dir(&files, knobs.limit);
}

/// Any bytes after a valid header, as segment 1 (the first byte: [`Knobs`]).
pub(crate) fn segment_scan(data: &[u8]) {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let mut segment = harness_header();
    segment.extend_from_slice(bytes);
    segment_dir(segment, &Knobs::of(control));
}

/// Any bytes as the whole of segment 1, its header included (the first byte: [`Knobs`]).
pub(crate) fn segment_header(data: &[u8]) {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    segment_dir(bytes.to_vec(), &Knobs::of(control));
}

const HEALTHY_1: &[u8] = include_bytes!("../fixtures/v1/healthy/00000000000000000001.seg");
const HEALTHY_64: &[u8] = include_bytes!("../fixtures/v1/healthy/00000000000000000064.seg");

/// Any bytes as `CHECKPOINT` (first byte even) or as `RETENTION` beside a valid checkpoint
/// (odd), in a directory holding the `healthy` fixture's segments; opened every way, and the
/// checkpoint rebuilt where a rebuild is needed and allowed.
pub(crate) fn checkpoint(data: &[u8]) {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let mut files: Files = vec![
        (segment_name(1), HEALTHY_1.to_vec()),
        (segment_name(64), HEALTHY_64.to_vec()),
    ];
    if control & 1 == 0 {
        files.push(("CHECKPOINT".to_owned(), bytes.to_vec()));
    } else {
        let cp = 1 + u64::from(control >> 1);
        files.push((
            "CHECKPOINT".to_owned(),
            encode_checkpoint(CHECKPOINT_MAGIC, LOG_ID, cp),
        ));
        files.push(("RETENTION".to_owned(), bytes.to_vec()));
    }
    check_dir(&files, LIMITS[usize::from(control >> 1) & 3]);

    let mem = build(&files);
    let plan = CheckpointRebuild::plan_with(Arc::new(mem.clone()), DIR)
        .unwrap_or_else(|e| panic!("planning a rebuild: {e:?}"));
    if plan.is_needed() && plan.refusal().is_none() {
        plan.apply()
            .unwrap_or_else(|e| panic!("applying a rebuild: {e:?}"));
        let log = open(
            &mem,
            RecoveryMode::default(),
            false,
            DEFAULT_LIMIT,
            "after a rebuild",
        )
        .unwrap_or_else(|e| panic!("the log does not open after a rebuild: {e:?}, {plan:?}"));
        read_all(&log, &Intact::of(&files), "after a rebuild");
    }
}

const DEFAULT_LIMIT: u32 = tidelog::DEFAULT_MAX_RECORD_BYTES;

/// Two log directories generated from `data` by [`gen_dir`], each opened every way: one of
/// format version 1 (the bytes read as they always were, so the inputs of earlier findings
/// keep their meaning), and one of version 2 or an upgrade from 1 to 2, which is also opened
/// trusting seals.
pub(crate) fn log_dir(data: &[u8]) {
    for v2 in [false, true] {
        let mut u = Unstructured::new(data);
        if let Ok((files, limit)) = gen_dir(&mut u, v2) {
            check_dir(&files, limit);
            if v2 {
                check_trusted(&files, limit);
            }
        }
    }
}

/// A read-only open trusting seals beside one that reads every frame (the default mode): where
/// the full open finds the log clean, the trusted one gives the same records; otherwise it
/// refuses the log with a typed error, or gives records, each an intact frame of the files, in
/// order, until an error that names what is wrong (damage in a trusted segment is found when it
/// is read).
fn check_trusted(files: &[(String, Vec<u8>)], limit: u32) {
    let intact = Intact::of(files);
    let mode = RecoveryMode::default();
    let full = open(
        &build(files),
        mode,
        true,
        limit,
        "full open beside a trusting one",
    )
    .ok()
    .filter(|log| log.recovery_report().is_clean())
    .map(|log| read_all(&log, &intact, "full open beside a trusting one"));
    let context = "read-only open trusting seals";
    let trusted = open_with(&build(files), mode, true, limit, true, context);
    match (full, trusted) {
        (Some(full), Ok(log)) => {
            let read = read_all(&log, &intact, context);
            assert_eq!(read, full, "{context}: not what the full open read");
        }
        (Some(full), Err(e)) => {
            panic!("{context}: refuses a log a full open finds clean ({full:?}): {e:?}")
        }
        (None, Err(e)) => assert_typed(&e, context),
        (None, Ok(log)) => {
            let mut previous = 0;
            let iter = log
                .iter()
                .unwrap_or_else(|e| panic!("{context}: iter: {e:?}"));
            for item in iter {
                match item {
                    Ok(r) => {
                        let lsn = r.lsn().get();
                        assert!(lsn > previous, "{context}: LSN {lsn} after {previous}");
                        assert!(
                            intact.holds(lsn, r.data()),
                            "{context}: LSN {lsn} is no intact frame of the files"
                        );
                        previous = lsn;
                    }
                    Err(e) => {
                        assert_typed(&e, context);
                        break;
                    }
                }
            }
            let (first, last) = (log.checkpoint_lsn().get(), log.last_lsn().get());
            for lsn in (first..=last).take(100) {
                match log.read(Lsn::new(lsn)) {
                    Ok(r) => assert!(
                        intact.holds(lsn, r.data()),
                        "{context}: read({lsn}) is no intact frame of the files"
                    ),
                    Err(e) => assert_typed(&e, context),
                }
            }
        }
    }
}

/// The operation sequences of `model.rs`.
pub(crate) fn log_ops(data: &[u8]) {
    model::run_bytes(data);
}

/// A log directory: up to four segment files of frames, mostly valid and in order (batches,
/// durability hints that move as syncs happen), with the damage a crash or bit rot leaves
/// (torn and flipped bytes, zeros, garbage, frames of another segment's salt or out of place,
/// gaps and overlaps between segments, damaged headers), and a checkpoint and retention file.
/// Returns the files and the record limit to open them with.
fn gen_dir(u: &mut Unstructured<'_>, v2: bool) -> arbitrary::Result<(Files, u32)> {
    let flags: u8 = u.arbitrary()?;
    let limit = LIMITS[usize::from(flags & 3)];
    let first_lsn: u64 = match (flags >> 2) & 3 {
        0 | 1 => 1,
        2 => u.int_in_range(1..=1000)?,
        _ => u64::MAX - u.int_in_range(0..=8)?,
    };
    // The format of the segments: version 1; or with `v2`, version 2 or an upgraded log (the
    // first segment of version 1, the later ones of version 2).
    let upgrade = v2 && (flags >> 4) & 3 == 2;
    let lay_of = |i: usize| if !v2 || upgrade && i == 0 { V1 } else { V2 };
    let mut files: Files = Vec::new();
    let mut next = first_lsn;
    // The time batches carry (version 2): it never goes back.
    let mut ms = CREATED_MS;
    let segments = u.int_in_range(1..=4)?;
    for i in 0..segments {
        let lay = lay_of(i);
        let sflags: u8 = u.arbitrary()?;
        let first = match sflags & 7 {
            0 => next.saturating_sub(u.int_in_range(1..=3)?),
            1 => next.saturating_add(u.int_in_range(1..=3)?),
            _ => next,
        };
        let log_id = if sflags & 0x18 == 0x18 {
            LOG_ID ^ 1
        } else {
            LOG_ID
        };
        let salt: u64 = u.arbitrary()?;
        let recycled = sflags & 0x20 != 0;
        let prev_extent = if recycled && lay == V1 {
            u.int_in_range(0..=40)?
        } else {
            0
        };
        // A recycled file of version 2: the seed and version of its earlier life, whose frames
        // may follow the data; where that life ended is filled in once the bytes are known.
        let prev_salt: u64 = if recycled && lay == V2 {
            u.arbitrary()?
        } else {
            0
        };
        let prev_seed = frame_seed(log_id, prev_salt);
        let prev_version = if recycled && lay == V2 {
            u.int_in_range(1..=2)?
        } else {
            0
        };
        let seed = frame_seed(log_id, salt);
        // Damage to the header: drawn here, applied once the header is final.
        let header_damage = if sflags & 0xc0 == 0xc0 {
            Some((
                u.int_in_range(0..=lay.segment_header - 1)?,
                u.int_in_range(1..=255)?,
            ))
        } else {
            None
        };
        let mut bytes = if lay == V1 {
            encode_segment_header(log_id, first, salt, prev_extent)
        } else {
            encode_segment_header_v2(log_id, first, salt, (0, 0, 0))
        };
        let mut lsn = first;
        // The log was durable up to here when the frames being written were encoded.
        let mut durable = first.saturating_sub(1);
        let lag = |lsn: u64, durable: u64| {
            u32::try_from(lsn.saturating_sub(durable)).unwrap_or(LAG_UNKNOWN)
        };
        let mut pieces = 0;
        while pieces < 48 && !u.is_empty() {
            pieces += 1;
            // Version 1 draws from the pieces it always had.
            let last_piece = if v2 { 18 } else { 15 };
            match u.int_in_range(0u8..=last_piece)? {
                // A batch of intact frames, the next LSNs in order.
                0..=8 => {
                    let n = if u.ratio(3, 4)? {
                        1
                    } else {
                        u.int_in_range(2..=4)?
                    };
                    if lay == V2 {
                        ms += u.int_in_range(0..=3)?;
                    }
                    for i in 0..n {
                        let mut flags = 0;
                        if i == 0 {
                            flags |= FLAG_BATCH_START;
                        }
                        if i + 1 == n {
                            flags |= FLAG_BATCH_END;
                        }
                        let len = if u.ratio(1, 16)? {
                            u.int_in_range(0..=5000)?
                        } else {
                            u.int_in_range(0..=80)?
                        };
                        let lag = lag(lsn, durable);
                        let p = payload(lsn, len);
                        bytes.extend(encode_frame_of(
                            lay,
                            seed,
                            RECORD_KIND,
                            (lsn, flags, lag, ms),
                            &p,
                        ));
                        lsn = lsn.saturating_add(1);
                    }
                }
                // A frame out of place: another LSN, other flags, another salt, a lying
                // checksum or durability hint.
                9 => {
                    let at_lsn = match u.int_in_range(0u8..=3)? {
                        0 => lsn.saturating_sub(1),
                        1 => lsn.saturating_add(u.int_in_range(1..=3)?),
                        _ => lsn,
                    };
                    let flags = u.int_in_range(0..=3)?;
                    let frame_seed = if u.arbitrary()? { seed } else { seed ^ 1 };
                    let lag = u.arbitrary()?;
                    let len = u.int_in_range(0..=80)?;
                    let p = payload(at_lsn, len);
                    let mut frame =
                        encode_frame_of(lay, frame_seed, RECORD_KIND, (at_lsn, flags, lag, ms), &p);
                    if u.ratio(1, 4)? {
                        frame[0] ^= 1;
                    }
                    bytes.extend(frame);
                }
                10 => {
                    let n = u.int_in_range(1..=600)?;
                    bytes.resize(bytes.len() + n, 0);
                }
                11 => {
                    let n = u.int_in_range(1..=40)?;
                    bytes.extend_from_slice(u.bytes(n)?);
                }
                // A torn write: the end cut off.
                12 => {
                    let n = u.int_in_range(1..=40)?;
                    bytes.truncate(bytes.len().saturating_sub(n).max(lay.segment_header));
                }
                // A sync: what was written so far is durable; in version 2 a sync marker says
                // so (or, now and then, the marker is lost or never written).
                13 => {
                    durable = lsn.saturating_sub(1);
                    if lay == V2 && u.ratio(3, 4)? {
                        let lag = lag(lsn, durable);
                        bytes.extend(encode_frame_of(V2, seed, SYNC_KIND, (lsn, 0, lag, ms), &[]));
                    }
                }
                // A flipped bit.
                14 => {
                    let at = u.int_in_range(0..=bytes.len() - 1)?;
                    bytes[at] ^= 1 << u.int_in_range(0..=7)?;
                }
                // A seal (version 2): what a roll writes last, the LSNs and times of the
                // segment's records (a lying one now and then).
                15 if lay == V2 => {
                    let mut seal = Vec::with_capacity(SEAL_LEN as usize);
                    let last = if u.ratio(7, 8)? {
                        lsn.saturating_sub(1)
                    } else {
                        u.arbitrary()?
                    };
                    seal.extend_from_slice(&first.to_le_bytes());
                    seal.extend_from_slice(&last.to_le_bytes());
                    seal.extend_from_slice(&CREATED_MS.to_le_bytes());
                    seal.extend_from_slice(&ms.to_le_bytes());
                    let lag = lag(lsn, durable);
                    bytes.extend(encode_frame_of(
                        V2,
                        seed,
                        SEAL_KIND,
                        (lsn, 0, lag, ms),
                        &seal,
                    ));
                }
                // Frames of a recycled file's earlier life (version 2): its own seed and
                // layout, earlier LSNs.
                16 if prev_version != 0 => {
                    let old = if prev_version == 1 { V1 } else { V2 };
                    let n = u.int_in_range(1..=4)?;
                    let mut old_lsn = u.int_in_range(1..=first.max(1))?;
                    for _ in 0..n {
                        let len = u.int_in_range(0..=80)?;
                        let p = payload(old_lsn, len);
                        let flags = FLAG_BATCH_START | FLAG_BATCH_END;
                        bytes.extend(encode_frame_of(
                            old,
                            prev_seed,
                            RECORD_KIND,
                            (old_lsn, flags, 1, ms),
                            &p,
                        ));
                        old_lsn = old_lsn.saturating_add(1);
                    }
                }
                // The unsynced tail lost, the rest intact: LSNs move on.
                _ => lsn = lsn.saturating_add(u.int_in_range(1..=2)?),
            }
        }
        if lay == V2 {
            // Where the earlier life ended: the end of the file, or near it.
            let prev_end = if prev_version == 0 {
                0
            } else if u.ratio(3, 4)? {
                bytes.len() as u64
            } else {
                u.int_in_range(0..=bytes.len() as u64 + 100)?
            };
            let prev = if prev_version == 0 {
                (0, 0, 0)
            } else {
                (prev_seed, prev_version, prev_end)
            };
            let header = encode_segment_header_v2(log_id, first, salt, prev);
            bytes[..V2.segment_header].copy_from_slice(&header);
        }
        if let Some((at, x)) = header_damage {
            bytes[at] ^= x;
        }
        let name = match sflags & 7 {
            7 => format!("{:020}.free", first),
            6 if u.ratio(1, 4)? => format!("{}.tmp", segment_name(first)),
            _ => segment_name(first),
        };
        // A name met again replaces the file, as a later write would.
        files.retain(|(n, _)| *n != name);
        files.push((name, bytes));
        next = lsn;
    }
    let cflags: u8 = u.arbitrary()?;
    let checkpoint = match cflags & 3 {
        0 | 1 => Some(first_lsn),
        2 => Some(first_lsn.saturating_add(u.int_in_range(0..=20)?)),
        _ => None,
    };
    if let Some(cp) = checkpoint {
        let id = if cflags & 4 == 0 { LOG_ID } else { LOG_ID ^ 1 };
        let file = if !v2 || cflags & 0x20 != 0 {
            encode_checkpoint(CHECKPOINT_MAGIC, id, cp)
        } else {
            let n = u.int_in_range(0..=40)?;
            encode_checkpoint_v2(id, cp, u.bytes(n)?)
        };
        files.push(("CHECKPOINT".to_owned(), file));
    }
    if cflags & 0x18 == 0x18 {
        let floor = first_lsn.saturating_add(u.int_in_range(0..=20)?);
        files.push((
            "RETENTION".to_owned(),
            encode_checkpoint(RETENTION_MAGIC, LOG_ID, floor),
        ));
    }
    Ok((files, limit))
}

/// The payload of a generated record: its LSN, then filler.
fn payload(lsn: u64, len: usize) -> Vec<u8> {
    let mut p = format!("lsn {lsn} ").into_bytes();
    p.resize(len, b'a' + (lsn % 26) as u8);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target's body.
    type Body = fn(&[u8]);

    /// Every target: its name (a file in `fuzz/fuzz_targets/`, a folder in `fuzz/corpus/`) and
    /// its body.
    const TARGETS: [(&str, Body); 6] = [
        ("frame_decode", frame_decode),
        ("segment_scan", segment_scan),
        ("segment_header", segment_header),
        ("checkpoint", checkpoint),
        ("log_dir", log_dir),
        ("log_ops", log_ops),
    ];

    /// The corpus folder of `target`.
    fn corpus(target: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target)
    }

    /// Runs every file of the committed corpus of `target` through its body.
    fn replay(target: &str) {
        let (_, body) = TARGETS
            .iter()
            .find(|(name, _)| *name == target)
            .expect("a target");
        let dir = corpus(target);
        let mut names = tidelog::io::StdStorage::new()
            .list(&dir)
            .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
        names.sort();
        assert!(!names.is_empty(), "{} is empty", dir.display());
        for name in names {
            let path = dir.join(&name);
            let bytes = std::fs::read(&path).expect("a corpus file");
            let run = std::panic::catch_unwind(|| body(&bytes));
            assert!(run.is_ok(), "{target}: {} fails", path.display());
        }
    }

    #[test]
    fn corpus_frame_decode() {
        replay("frame_decode");
    }

    #[test]
    fn corpus_segment_scan() {
        replay("segment_scan");
    }

    #[test]
    fn corpus_segment_header() {
        replay("segment_header");
    }

    #[test]
    fn corpus_checkpoint() {
        replay("checkpoint");
    }

    #[test]
    fn corpus_log_dir() {
        replay("log_dir");
    }

    #[test]
    fn corpus_log_ops() {
        replay("log_ops");
    }

    /// Every target of the fuzz crate has a body here and a corpus folder, and nothing else
    /// does.
    #[test]
    fn every_target_has_a_body_and_a_corpus() {
        let list = |dir: &Path| {
            let mut names: Vec<String> = tidelog::io::StdStorage::new()
                .list(dir)
                .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
                .into_iter()
                .map(|n| n.into_string().expect("a UTF-8 name"))
                .collect();
            names.sort();
            names
        };
        let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
        names.sort();
        assert_eq!(list(&corpus("")), names, "fuzz/corpus/");
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
        let with_rs: Vec<String> = names.iter().map(|n| format!("{n}.rs")).collect();
        assert_eq!(list(&sources), with_rs, "fuzz/fuzz_targets/");
    }

    /// The harness writes the format as the `healthy` fixture holds it: its header and
    /// checkpoint byte for byte, and every frame of it verifies under the harness's seed.
    #[test]
    fn the_harness_encodes_the_format_as_the_fixtures_hold_it() {
        assert_eq!(harness_header(), &HEALTHY_1[..SEGMENT_HEADER_LEN]);
        let checkpoint = include_bytes!("../fixtures/v1/healthy/CHECKPOINT");
        assert_eq!(
            encode_checkpoint(CHECKPOINT_MAGIC, LOG_ID, 1),
            checkpoint.to_vec()
        );
        let files: Files = vec![
            (segment_name(1), HEALTHY_1.to_vec()),
            (segment_name(64), HEALTHY_64.to_vec()),
        ];
        let intact = Intact::of(&files);
        assert_eq!(intact.records.len(), 75);
        assert!((1..=75).all(|lsn| intact.records.iter().any(|r| r.0 == lsn)));
    }

    // -----------------------------------------------------------------------------------------
    // Regressions: each input the fuzzer found failing, named for the bug it showed, with what
    // the library did before the fix.
    // -----------------------------------------------------------------------------------------

    /// Runs the committed input `name` of `target` (a file of its corpus).
    fn regression(target: &str, name: &str) {
        let (_, body) = TARGETS
            .iter()
            .find(|(n, _)| *n == target)
            .expect("a target");
        let bytes = std::fs::read(corpus(target).join(name)).expect("the input");
        body(&bytes);
    }

    /// A `TruncateAfter` at the last record, which is a no-op, was taken by the model for a
    /// sync: after a record appended `Buffered` (a roll, in a 64 KiB segment), a disk that
    /// fills up, `truncate_after(1)` (`Ok`, nothing written) and a failed batch, the reopened
    /// log rightly lacks LSN 1. The model was wrong, not the log.
    #[test]
    fn regression_truncate_after_the_last_record_makes_nothing_durable() {
        regression(
            "log_ops",
            "regression-truncate-after-the-last-record-syncs-nothing",
        );
    }

    /// A `SkipCorrupt` open appending behind damage whose proof it removed, the proof quarantined: segment 1 holds LSN 1, a
    /// frame of LSN 2 with a bad checksum at offset 109, intact frames of LSNs 5 and 27, and 4
    /// stray bytes; an empty segment named 2 follows it. A writable `SkipCorrupt` open skips the
    /// damage (segment 1 is sealed), then quarantines segment 2 (`LsnMismatch`, 28 expected):
    /// the log holds 1, 5 and 27. `append(.., Synced)` gives LSN 28; the next `SkipCorrupt`
    /// open cuts segment 1 at 109 as an unsynced tail, and 5, 27 and the acknowledged 28 are
    /// gone.
    #[test]
    fn regression_skip_corrupt_keeps_appends_after_quarantining_the_segment_that_proved_damage() {
        regression("segment_scan", "regression-skip-corrupt-proof-quarantined");
    }

    /// A `SkipCorrupt` open appending behind damage whose proof it removed, skipped bytes read back: as above, but the skipped
    /// damage runs to the end of segment 1 and holds an intact frame of LSN 58. The append of
    /// LSN 27 overwrites the bytes before it; the next open reads 1, 26, 27 and then 58, with
    /// 28..=57 reported lost.
    #[test]
    fn regression_skip_corrupt_does_not_read_back_skipped_frames_after_an_append() {
        regression(
            "segment_scan",
            "regression-skip-corrupt-proof-quarantined-resurrects",
        );
    }

    /// A `SkipCorrupt` open appending behind damage whose proof it removed, the proof cut: segment 601, the last one, holds a
    /// frame of LSN 605 with a bad checksum, then 606 (batch start), 607 (batch end) and
    /// 608..=610 whose durability hints say 607. `SkipCorrupt` skips the damage (proven by
    /// those hints), then cuts at 607 (`BatchFraming`), the proof with it; the log is empty at
    /// checkpoint 601. The acknowledged append of 601 is cut with the damage at the next open.
    #[test]
    fn regression_skip_corrupt_keeps_appends_after_cutting_the_frames_that_proved_damage() {
        regression("log_dir", "regression-skip-corrupt-proof-cut-away");
    }

    /// An append at the end of the LSN space: a `CHECKPOINT` at `u64::MAX` and an empty segment named
    /// `18446744073709551614.seg`; every mode opens it clean, and the first append panics with
    /// an overflow (debug) or takes LSN `u64::MAX` twice (release).
    #[test]
    fn regression_an_append_at_the_end_of_the_lsn_space_fails_cleanly() {
        regression("log_dir", "regression-append-at-lsn-max");
    }

    /// A segment at LSN 0: a `CHECKPOINT` at 1 and an empty segment named and headed
    /// LSN 0. Every mode opens it clean; after `append(.., Synced)` of LSN 1, `Strict` and
    /// `TolerateTornTail` refuse the log (`LsnMismatch { expected: 0, found: 1 }`).
    #[test]
    fn regression_a_segment_at_lsn_zero_is_refused_before_appends_go_to_it() {
        regression("log_dir", "regression-segment-at-lsn-zero");
    }

    /// A read-only open that wrote: one segment, `00000000000000000246.seg`, whose
    /// header checksum fails, and no `CHECKPOINT`: a read-only open in `Strict` writes a
    /// `CHECKPOINT` with a new random log id.
    #[test]
    fn regression_a_read_only_open_without_a_checkpoint_writes_nothing() {
        regression("log_dir", "regression-read-only-open-writes-checkpoint");
    }

    /// A gap below the checkpoint: segment 156 (kept by a retention floor)
    /// holds 156, 157 and then a frame of LSN 197; the checkpoint is at 163. `PointInTime` cuts
    /// at 197 and creates segment 163 for appends; after `append(.., Synced)` of 163 the next
    /// `PointInTime` open reports `MissingRecords 158..=162` (all below the checkpoint) and
    /// quarantines segment 163 with the acknowledged record.
    #[test]
    fn regression_a_gap_below_the_checkpoint_after_a_retained_segment_is_no_damage() {
        regression(
            "log_dir",
            "regression-retained-segment-gap-below-checkpoint",
        );
    }

    /// The end of a recycled file's data moving: segment 244 with a `prev_extent` of 256
    /// bytes holds 244..=246, 136 zero bytes from offset 234, then intact frames of 294..=296.
    /// `Strict` opens it clean (the damage lies below `prev_extent * 256`, and 294 is no
    /// plausible LSN there); after `append(.., Synced)` of 247, which ends at 281, `Strict`
    /// refuses it: `ZeroedRegion` at 281.
    #[test]
    fn regression_a_strict_log_that_opened_clean_reopens_after_an_append() {
        regression("log_dir", "regression-recycled-end-moves-past-prev-extent");
    }

    /// A `SkipCorrupt` open appending behind damage whose proof it removed, in a recycled file:
    /// segment 244 holds 244..=247, then damage that intact frames of LSNs 271 and 272 further
    /// on prove (they lie too far ahead to follow it, so are misplaced). The append of 248 went
    /// right behind 247 and ended where the frame of 271 starts; the next open read 271 and 272
    /// as records after it. (`Strict`, which opened the log clean because the damage lay in the
    /// recycled file's earlier contents, then refused it: `LsnMismatch` at 271.)
    #[test]
    fn regression_skip_corrupt_does_not_read_back_misplaced_frames_after_an_append() {
        regression(
            "log_dir",
            "regression-skip-corrupt-reads-back-frames-behind-an-append",
        );
    }

    /// A read-only `SkipCorrupt` open of a log whose last segment held nothing but skipped
    /// damage planned the segment a writable open would create for appends, without creating
    /// it, and a read over the log's lost LSNs tried to open it: an `Io` error ("segment file
    /// not created yet") from a dry run.
    #[test]
    fn regression_a_skip_corrupt_dry_run_reads_only_files_that_exist() {
        regression(
            "log_dir",
            "regression-skip-corrupt-dry-run-reads-a-segment-it-never-created",
        );
    }

    /// A free file that holds no clean earlier life, recycled: segment 244 (format version 2,
    /// 4,988 bytes, sealed at LSN 322) and `00000000000000000323.free`, whose frames after its
    /// header are zeros, damage, then intact frames. `Strict` opened the log clean; the append
    /// of 323 rolled into the free file, and the reopen found the zeros behind the new data:
    /// `ZeroedRegion` at 215, since damaged frames of the earlier life cannot be known as that
    /// life. A writable open now removes a free file that is not one clean life.
    #[test]
    fn regression_a_free_file_is_recycled_only_if_it_holds_one_clean_life() {
        regression("log_dir", "regression-damaged-free-file-recycled");
    }

    /// Reading free files whole at open (the fix above) read them in pieces of 256 KiB, and a
    /// frame whole whatever its length: with a record limit of 8 KiB, a read of 10,959 bytes,
    /// past the bound a recovery keeps to. They are read in the recovery's pieces now, and a
    /// longer frame makes the file unfit for reuse, unread.
    #[test]
    fn regression_free_files_are_read_in_the_pieces_of_the_recovery() {
        regression(
            "log_dir",
            "regression-recovery-reads-a-free-file-in-large-pieces",
        );
    }

    /// The harness did not know sync markers (format version 2, kind 2): `inspect` showed one
    /// in a cut file read as version 2, and the harness called it no well-formed frame. The
    /// harness was wrong, not the library.
    #[test]
    fn regression_a_sync_marker_is_a_well_formed_frame() {
        regression("frame_decode", "regression-a-sync-marker-is-a-frame");
    }

    /// A lost range at the end of the log, as the fuzzer found it: empty segments named 0, 1 and
    /// 2 and a `CHECKPOINT` at 1. `SkipCorrupt` accepts the gap before segment 2; `read(1)`
    /// gives `RecordLost`, but `RecoveryReport::lost` is empty.
    #[test]
    fn regression_skip_corrupt_reports_a_gap_no_record_follows_as_lost() {
        regression("log_dir", "regression-trailing-gap-not-reported");
    }

    /// A lost range at the end of the log, by hand: a `CHECKPOINT` at 1 and an empty segment
    /// named 8. `SkipCorrupt` accepts the gap 1..=7 (`MissingRecords`, `Accepted`) and reads of
    /// those LSNs give `RecordLost`, but `RecoveryReport::lost` is empty.
    #[test]
    fn regression_skip_corrupt_reports_a_gap_before_an_empty_segment_as_lost() {
        let files: Files = vec![
            (
                "CHECKPOINT".to_owned(),
                encode_checkpoint(CHECKPOINT_MAGIC, LOG_ID, 1),
            ),
            (segment_name(8), encode_segment_header(LOG_ID, 8, SALT, 0)),
        ];
        check_dir(&files, 1000);
    }
}
