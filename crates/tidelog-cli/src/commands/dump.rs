//! `tidelog dump PATH`: the records of a log, one line each; for forensics, the frames of its
//! segment files (or of one segment or quarantined `.cut` file) straight from their bytes; or
//! records, bytes and batch sizes per segment.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Value, json};
use tidelog::inspect::{Checksum, Entry, FileKind, Frame, Frames, HeaderSource, Seal, Unavailable};
use tidelog::io::StdStorage;
use tidelog::{Lsn, RecoveryMode};

use super::{
    PayloadFormat, RecordPrinter, SHARDS_FILE, batch_flags, civil_date, is_sharded_root,
    open_read_only, open_sharded_read_only, parse_lsn,
};
use crate::output::{Ctx, Out, Style, human_bytes, thousands};
use crate::report;

mod stats;

use self::stats::stats;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Records: each line holds the LSN, the record's place in the batch it was appended in (single,
start, middle, end), its size in bytes and its payload. With --json each line is an object:
{\"lsn\": 7, \"batch\": \"single\", \"size\": 5, \"text\": \"hello\"} (the payload's key is the
encoding's name). Records come through a read-only open of the log, as readers see them.

Frames (--frames, or PATH naming one file): the segment files as they are on disk, valid or
not, for when the log does not open or recovery moved something to quarantine/. One line per
frame: its offset in the segment, bytes on disk, LSN, place in its batch, flags byte, durable
hint (the LSN up to which the log was durable when the frame was written), stored checksum and
whether the bytes match it, then the payload; runs of zeros and stretches of bytes that are no
frame get a line each. A .cut file in quarantine/ holds the bytes recovery cut from a segment
at the offset in its name; its checksums are checked against the header of that segment (in
the log directory, or the file given with --header-from). If no header is found, frames are
shown from their structure and their checksums are marked unverified. With --json, a
{\"type\": \"file\"} object starts each file, then one object per frame, zeros or damage, then
a {\"type\": \"summary\"} object.

Stats (--stats): per segment file, read the same way: records, their first and last LSN,
batches and records per batch (min/mean/max), payload and file bytes, damaged bytes. A
recycled segment file keeps frames of its earlier life after its current data; they do not
verify, and are counted apart as left over, not as damage (as recovery treats them).

A sharded log (PATH is its root, which holds a SHARDS file): the records of every shard in
the order a replay gives them, by epoch, then shard, then LSN; each line starts with the
epoch and the shard, and with --json each object has \"epoch\" and \"shard\" fields. --shard N
shows one shard's records (with their epochs), and --from and --to, which are LSNs of one
shard, need it. --frames and --stats read one log's files: give them a shard's directory
(ROOT/shard-0000, an ordinary log).

Nothing in the directory changes, and no lock is taken: a process may be writing the log.

Examples:
  tidelog dump ./wal
  tidelog dump ./wal --from 100 --to 120 --payload hex
  tidelog dump ./wal --limit 20 --json | jq -r .text
  tidelog dump ./wal --mode skip-corrupt      # a damaged log: every intact record
  tidelog dump ./wal --stats                  # records, bytes and batch sizes per segment
  tidelog dump ./wal --frames --from 990      # frames with offsets, flags and checksums
  tidelog dump ./wal/00000000000000000001.seg # one segment file
  tidelog dump ./wal/quarantine/00000000000000000042.seg.8192.cut   # what recovery cut
  tidelog dump ./wal/quarantine/00000000000000000042.seg.8192.cut --header-from ./copy.seg
  tidelog dump ./sharded                      # a sharded log: (epoch, shard, LSN) order
  tidelog dump ./sharded --shard 2 --from 40  # one shard's records, with their epochs")]
pub(crate) struct Args {
    /// The log directory, or one segment file or quarantined .cut file (shown frame by frame),
    /// or the root of a sharded log.
    #[arg(value_name = "PATH")]
    pub(crate) path: PathBuf,

    /// First LSN to print (default: the checkpoint, the first readable record).
    #[arg(long, value_name = "LSN", value_parser = parse_lsn)]
    pub(crate) from: Option<Lsn>,

    /// Last LSN to print (default: the last record).
    #[arg(long, value_name = "LSN", value_parser = parse_lsn)]
    pub(crate) to: Option<Lsn>,

    /// Print at most N records (with --frames, N lines: frames, zeros or damage).
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,

    /// How payloads are printed.
    #[arg(long, value_enum, default_value_t, alias = "format")]
    pub(crate) payload: PayloadFormat,

    /// The recovery mode of the read-only open (skip-corrupt reads a damaged log).
    #[arg(long, value_parser = report::mode_parser(), default_value_t)]
    pub(crate) mode: RecoveryMode,

    /// Show the frames of the segment files, valid or not, with offsets, flags and checksums
    /// (implied when PATH is a file).
    #[arg(long, conflicts_with = "mode")]
    pub(crate) frames: bool,

    /// Show records, bytes and batch sizes per segment file.
    #[arg(long, conflicts_with_all = ["frames", "limit", "mode"])]
    pub(crate) stats: bool,

    /// Check the frames of the file PATH names against this segment file's header (for a .cut
    /// file whose segment is gone or was replaced).
    #[arg(long, value_name = "SEGMENT", conflicts_with = "mode")]
    pub(crate) header_from: Option<PathBuf>,

    /// Of a sharded log (PATH its root), print only shard N's records.
    #[arg(long, value_name = "N", conflicts_with_all = ["frames", "stats", "header_from"])]
    pub(crate) shard: Option<usize>,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    // A file, or a name of one that is not there (for an error that says so).
    let one_file =
        args.path.is_file() || (!args.path.exists() && FileKind::of(&args.path) != FileKind::Other);
    if args.header_from.is_some() && !one_file {
        anyhow::bail!(
            "--header-from needs PATH to name one segment or .cut file, and {} is not a file",
            args.path.display()
        );
    }
    if is_sharded_root(&args.path) {
        return sharded_records(&args, ctx);
    }
    if args.shard.is_some() {
        anyhow::bail!(
            "--shard picks a shard of a sharded log, and {} is not the root of one (it holds no \
             {SHARDS_FILE} file)",
            args.path.display()
        );
    }
    if args.stats {
        stats(&args, ctx, &files(&args.path, one_file)?)
    } else if args.frames || one_file {
        frames(&args, ctx, &files(&args.path, one_file)?)
    } else {
        records(&args, ctx)
    }
}

/// The records view: through a read-only open of the log.
fn records(args: &Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let log = open_read_only(&args.path, args.mode)?;
    let from = args.from.unwrap_or_else(|| log.checkpoint_lsn());
    let to = args.to.unwrap_or_else(|| log.last_lsn());
    let mut out = ctx.out();
    if from > to || args.limit == Some(0) {
        return out.flush().map(|()| ExitCode::SUCCESS);
    }
    let printer = RecordPrinter::new(args.payload, ctx.json, log.last_lsn().min(to));
    let records = log
        .range(from..=to)
        .with_context(|| format!("cannot read LSN {from}..={to}"))?;
    let limit = usize::try_from(args.limit.unwrap_or(u64::MAX)).unwrap_or(usize::MAX);
    for record in records.take(limit) {
        let record = record.context("cannot read a record")?;
        printer.print(&mut out, &record)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The records view of a sharded log: its replay, in (epoch, shard, LSN) order.
fn sharded_records(args: &Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let root = &args.path;
    for (given, option) in [(args.frames, "--frames"), (args.stats, "--stats")] {
        if given {
            anyhow::bail!(
                "{option} reads the files of one log, and {} is the root of a sharded log: run \
                 it on a shard's directory, such as {}",
                root.display(),
                root.join("shard-0000").display()
            );
        }
    }
    if args.shard.is_none() && (args.from.is_some() || args.to.is_some()) {
        anyhow::bail!(
            "--from and --to are LSNs of one shard (each shard numbers its own records), and {} \
             is the root of a sharded log: give --shard N with them",
            root.display()
        );
    }
    let log = open_sharded_read_only(root, args.mode, false)?;
    let count = log.shard_count();
    let shards: Vec<usize> = match args.shard {
        Some(n) if n >= count => anyhow::bail!(
            "there is no shard {n}: the sharded log in {} has shards 0 to {}",
            root.display(),
            count - 1
        ),
        Some(n) => vec![n],
        None => (0..count).collect(),
    };
    let mut last = Lsn::ZERO;
    for &i in &shards {
        last = last.max(log.shard(i)?.last_lsn());
    }
    let mut out = ctx.out();
    let mut left = args.limit.unwrap_or(u64::MAX);
    if left == 0 {
        return out.flush().map(|()| ExitCode::SUCCESS);
    }
    let printer = RecordPrinter::new(args.payload, ctx.json, last.min(args.to.unwrap_or(last)))
        .sharded(log.epoch(), count - 1);
    let replay = log
        .replay()
        .with_context(|| format!("cannot replay the sharded log in {}", root.display()))?;
    for item in replay {
        let item = item.context("cannot read a record")?;
        if args.shard.is_some_and(|n| n != item.shard) {
            continue;
        }
        // --from and --to come with --shard: one shard's LSNs rise from epoch to epoch.
        let lsn = item.record.lsn();
        if args.to.is_some_and(|to| lsn > to) {
            break;
        }
        if args.from.is_some_and(|from| lsn < from) {
            continue;
        }
        printer.print_in(&mut out, Some((item.epoch, item.shard)), &item.record)?;
        left -= 1;
        if left == 0 {
            break;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The files the frames and stats views read: PATH if it is a file, else the log directory's
/// segment files in LSN order.
fn files(path: &Path, one_file: bool) -> anyhow::Result<Vec<PathBuf>> {
    if one_file {
        return Ok(vec![path.to_path_buf()]);
    }
    let files = tidelog::inspect::segment_files(&StdStorage::new(), path)
        .with_context(|| format!("cannot read the segment files of {}", path.display()))?;
    if files.is_empty() {
        anyhow::bail!("{} holds no segment files", path.display());
    }
    Ok(files)
}

/// Opens one file for the frames and stats views (the library's errors name the file).
fn open(path: &Path, header_from: Option<&Path>) -> anyhow::Result<Frames> {
    Ok(Frames::open_with(&StdStorage::new(), path, header_from)?)
}

/// Whether `lsn` is in the range asked for.
fn wanted(args: &Args, lsn: Lsn) -> bool {
    args.from.is_none_or(|from| lsn >= from) && args.to.is_none_or(|to| lsn <= to)
}

/// Counts of what a file held.
///
/// A recycled segment file still holds frames of its earlier life after its current data (up
/// to `prev_extent`, `docs/format.md` 2.3). They were written under another header, so they
/// read as checksum mismatches; recovery takes the first of them, outside a batch and with no
/// valid frame after it, as the end of the data. The tally does the same: bad bytes after the
/// last valid frame, starting below that extent and outside a batch, are left over from the
/// earlier life, not damage.
#[derive(Debug, Default)]
struct Tally {
    valid: u64,
    mismatched: u64,
    unverified: u64,
    zero_bytes: u64,
    damaged_bytes: u64,
    /// Frames and bytes a recycled file kept from its earlier life (known at the end).
    leftover_frames: u64,
    leftover_bytes: u64,
    /// Where the earlier life of a recycled file ends, in the segment (0 for a new file).
    prev_extent: u64,
    /// Whether the last valid frame left a batch open.
    in_batch: bool,
    /// Bad frames and bytes since the last valid frame, and where they began, undecided
    /// until a valid frame follows (damage) or the file ends (perhaps an earlier life).
    pending_frames: u64,
    pending_bytes: u64,
    pending_from: Option<(u64, bool)>,
}

impl Tally {
    fn of(frames: &Frames) -> Tally {
        Tally {
            prev_extent: frames.header().map_or(0, |h| h.prev_extent_bytes),
            ..Tally::default()
        }
    }

    fn add(&mut self, entry: &Entry) {
        match entry {
            Entry::Frame(f) => match f.checksum() {
                Checksum::Valid => {
                    self.settle(false);
                    self.valid += 1;
                    // A sync marker stands between batches.
                    self.in_batch = f.is_record() && !f.is_batch_end();
                }
                Checksum::Mismatch => self.bad(f.offset, 1, f.frame_len()),
                Checksum::Unverified => self.unverified += 1,
            },
            Entry::Zeros { len, .. } => self.zero_bytes += len,
            Entry::Damage { offset, len, .. } => self.bad(*offset, 0, *len),
            _ => {}
        }
    }

    fn bad(&mut self, offset: u64, frames: u64, bytes: u64) {
        self.pending_from.get_or_insert((offset, self.in_batch));
        self.pending_frames += frames;
        self.pending_bytes += bytes;
    }

    /// Decides what the bad bytes since the last valid frame were: damage, or (at the end of
    /// the file) what a recycled file kept from its earlier life.
    fn settle(&mut self, at_end: bool) {
        let leftover = at_end
            && self
                .pending_from
                .is_some_and(|(from, in_batch)| from < self.prev_extent && !in_batch);
        if leftover {
            self.leftover_frames += self.pending_frames;
            self.leftover_bytes += self.pending_bytes;
        } else {
            self.mismatched += self.pending_frames;
            self.damaged_bytes += self.pending_bytes;
        }
        self.pending_frames = 0;
        self.pending_bytes = 0;
        self.pending_from = None;
    }

    fn frames(&self) -> u64 {
        self.valid + self.mismatched + self.unverified + self.leftover_frames
    }
}

/// The frames view.
fn frames(args: &Args, ctx: &Ctx, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let mut left = args.limit.unwrap_or(u64::MAX);
    for (i, path) in files.iter().enumerate() {
        if left == 0 {
            break;
        }
        let mut frames = open(path, args.header_from.as_deref())?;
        let end = frames.base_offset() + frames.file_len();
        let view = FrameView {
            path: path.display().to_string(),
            width: end.to_string().len().max(6),
            end,
            payload: args.payload,
        };
        if ctx.json {
            out.json(&file_json(&frames))?;
        } else {
            if i > 0 {
                out.line("")?;
            }
            view.heading(&mut out, &frames)?;
        }
        let mut tally = Tally::of(&frames);
        let mut complete = true;
        loop {
            if left == 0 {
                complete = false;
                break;
            }
            let Some(entry) = frames.next() else { break };
            let entry = entry?;
            if let Entry::Frame(f) = &entry
                && !wanted(args, f.lsn)
            {
                continue;
            }
            tally.add(&entry);
            left -= 1;
            let payload = match &entry {
                Entry::Frame(f) => Some(frames.payload(f)?),
                _ => None,
            };
            let seal = match &entry {
                Entry::Frame(f) => frames.seal(f)?,
                _ => None,
            };
            if ctx.json {
                out.json(&view.entry_json(&entry, payload.as_deref(), seal))?;
            } else {
                view.entry_line(&mut out, &entry, payload.as_deref(), seal)?;
            }
        }
        if complete {
            tally.settle(true);
            view.summary(&mut out, ctx.json, &tally)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// How the frames of one file are printed.
struct FrameView {
    path: String,
    /// Width of the offset column.
    width: usize,
    /// The offset in the segment where the file ends.
    end: u64,
    payload: PayloadFormat,
}

impl FrameView {
    fn heading(&self, out: &mut Out, frames: &Frames) -> anyhow::Result<()> {
        out.line(out.paint(Style::Bold, &self.path))?;
        let what = match frames.kind() {
            FileKind::Segment { first_lsn } => format!("segment file, first LSN {first_lsn}"),
            FileKind::Cut {
                segment, offset, ..
            } => format!("bytes cut from segment {segment} at offset {offset}"),
            _ => "file".to_owned(),
        };
        out.line(format_args!(
            "  {what}, {} bytes",
            thousands(frames.file_len())
        ))?;
        let header = frames.header().map(|h| {
            format!(
                "log {:032x}, first LSN {}, salt {:#018x}, created {}",
                h.log_id,
                h.first_lsn,
                h.salt,
                utc(h.created_ms)
            )
        });
        let checked = match frames.header_source() {
            HeaderSource::Own => format!("checksums checked against its own header: {}", {
                header.unwrap_or_default()
            }),
            HeaderSource::File(from) => format!(
                "checksums checked against the header of {}: {}",
                from.display(),
                header.unwrap_or_default()
            ),
            HeaderSource::Unavailable(why) => {
                let why = match why {
                    Unavailable::Damaged { path, kind } => {
                        format!("the header of {} is unusable ({kind})", path.display())
                    }
                    Unavailable::NotFound { tried } => {
                        let tried: Vec<String> =
                            tried.iter().map(|p| p.display().to_string()).collect();
                        format!("the segment is not there ({})", tried.join(", "))
                    }
                    _ => "no header is available".to_owned(),
                };
                format!(
                    "{} {why}: frames are shown from their structure (--header-from SEGMENT \
                     names a header to check them against)",
                    out.paint(Style::Yellow, "checksums NOT checked:")
                )
            }
            _ => String::new(),
        };
        out.line(format_args!("  {checked}"))?;
        if let Some(h) = frames.header().filter(|h| h.prev_extent_bytes > 0) {
            out.line(format_args!(
                "  a recycled file: its earlier life reaches offset {}; frames of that life after \
                 the current data do not verify (another header) and are not damage",
                h.prev_extent_bytes
            ))?;
        }
        out.line(format_args!(
            "  {:>w$}  {:>8}  {:>8}  {:<6}  flags  {:>8}  crc         check     payload",
            "offset",
            "bytes",
            "lsn",
            "batch",
            "durable",
            w = self.width
        ))
    }

    fn entry_line(
        &self,
        out: &mut Out,
        entry: &Entry,
        payload: Option<&[u8]>,
        seal: Option<Seal>,
    ) -> anyhow::Result<()> {
        let w = self.width;
        match entry {
            Entry::Frame(f) => {
                let check = match f.checksum() {
                    Checksum::Valid => out.paint(Style::Green, "ok      "),
                    Checksum::Mismatch => out.paint(
                        Style::Red,
                        &format!(
                            "MISMATCH (computed {:#010x})",
                            f.computed_crc.unwrap_or_default()
                        ),
                    ),
                    Checksum::Unverified => "unverified".to_owned(),
                };
                out.line(format_args!(
                    "  {:>w$}  {:>8}  {:>8}  {:<6}  {:#04x}   {:>8}  {:#010x}  {check}  {}",
                    f.offset,
                    f.frame_len(),
                    f.lsn,
                    frame_batch(f),
                    f.flags,
                    f.durable_hint,
                    f.stored_crc,
                    match seal {
                        Some(seal) => format!(
                            "seal: LSN {}..={}, batches {} to {}",
                            seal.first_lsn,
                            seal.last_lsn,
                            utc(seal.first_ms),
                            utc(seal.last_ms)
                        ),
                        None => self.payload.encode(payload.unwrap_or_default()),
                    },
                ))
            }
            Entry::Zeros { offset, len } => out.line(format_args!(
                "  {offset:>w$}  {len:>8}  zeros: {}",
                if offset + len == self.end {
                    "the end of the data (unused space)"
                } else {
                    "a zeroed region"
                }
            )),
            Entry::Damage { offset, len, kind } => out.line(format_args!(
                "  {offset:>w$}  {len:>8}  {} {kind}",
                out.paint(Style::Red, "damage:")
            )),
            _ => Ok(()),
        }
    }

    fn entry_json(&self, entry: &Entry, payload: Option<&[u8]>, seal: Option<Seal>) -> Value {
        match entry {
            Entry::Frame(f) => {
                let mut value = json!({
                    "file": self.path,
                    "type": "frame",
                    "offset": f.offset,
                    "bytes": f.frame_len(),
                    "size": f.len,
                    "lsn": f.lsn.get(),
                    "batch": frame_batch(f),
                    "flags": f.flags,
                    "durable_hint": f.durable_hint.get(),
                    "time_ms": f.timestamp_ms,
                    "kind": match f.kind {
                        1 => "record",
                        2 => "sync_marker",
                        _ => "seal",
                    },
                    "crc_stored": f.stored_crc,
                    "crc_computed": f.computed_crc,
                    "checksum": checksum_name(f.checksum()),
                });
                value[self.payload.name()] =
                    Value::String(self.payload.encode(payload.unwrap_or_default()));
                if let Some(seal) = seal {
                    value["seal"] = json!({
                        "first_lsn": seal.first_lsn.get(),
                        "last_lsn": seal.last_lsn.get(),
                        "first_ms": seal.first_ms,
                        "last_ms": seal.last_ms,
                    });
                }
                value
            }
            Entry::Zeros { offset, len } => json!({
                "file": self.path,
                "type": "zeros",
                "offset": offset,
                "bytes": len,
                "to_end": offset + len == self.end,
            }),
            Entry::Damage { offset, len, kind } => json!({
                "file": self.path,
                "type": "damage",
                "offset": offset,
                "bytes": len,
                "kind": kind.name(),
                "detail": kind.to_string(),
            }),
            _ => json!({"file": self.path, "type": "unknown"}),
        }
    }

    fn summary(&self, out: &mut Out, json: bool, t: &Tally) -> anyhow::Result<()> {
        if json {
            return out.json(&json!({
                "file": self.path,
                "type": "summary",
                "frames": t.frames(),
                "valid": t.valid,
                "mismatched": t.mismatched,
                "unverified": t.unverified,
                "zero_bytes": t.zero_bytes,
                "damaged_bytes": t.damaged_bytes,
                "leftover_frames": t.leftover_frames,
                "leftover_bytes": t.leftover_bytes,
            }));
        }
        let mut parts = vec![format!("{} valid", thousands(t.valid))];
        if t.mismatched > 0 {
            parts.push(format!("{} checksum mismatches", thousands(t.mismatched)));
        }
        if t.unverified > 0 {
            parts.push(format!("{} unverified", thousands(t.unverified)));
        }
        if t.leftover_frames > 0 {
            parts.push(format!(
                "{} left from the file's earlier life",
                thousands(t.leftover_frames)
            ));
        }
        out.line(format_args!(
            "  {} frames ({}); {} damaged; {} of zeros",
            thousands(t.frames()),
            parts.join(", "),
            human_bytes(t.damaged_bytes),
            human_bytes(t.zero_bytes)
        ))
    }
}

/// The header of a file as a JSON object, with where it came from.
fn file_json(frames: &Frames) -> Value {
    let (kind, segment, cut_offset) = match frames.kind() {
        FileKind::Segment { .. } => ("segment", None, None),
        FileKind::Cut {
            segment, offset, ..
        } => ("cut", Some(segment.clone()), Some(*offset)),
        _ => ("other", None, None),
    };
    let header = frames.header().map(|h| {
        json!({
            "log_id": format!("{:032x}", h.log_id),
            "first_lsn": h.first_lsn.get(),
            "salt": h.salt,
            "created_ms": h.created_ms,
            "prev_extent_bytes": h.prev_extent_bytes,
        })
    });
    let (checked_against, unverified) = match frames.header_source() {
        HeaderSource::Own => (Some(frames.path().display().to_string()), None),
        HeaderSource::File(from) => (Some(from.display().to_string()), None),
        HeaderSource::Unavailable(Unavailable::Damaged { path, kind }) => (
            None,
            Some(format!(
                "the header of {} is unusable: {kind}",
                path.display()
            )),
        ),
        HeaderSource::Unavailable(Unavailable::NotFound { tried }) => {
            let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
            (
                None,
                Some(format!("the segment is not there ({})", tried.join(", "))),
            )
        }
        _ => (None, Some("no header is available".to_owned())),
    };
    json!({
        "file": frames.path().display().to_string(),
        "type": "file",
        "kind": kind,
        "segment": segment,
        "cut_offset": cut_offset,
        "file_bytes": frames.file_len(),
        "header": header,
        "checked_against": checked_against,
        "unverified_reason": unverified,
    })
}

fn checksum_name(c: Checksum) -> &'static str {
    match c {
        Checksum::Valid => "valid",
        Checksum::Mismatch => "mismatch",
        Checksum::Unverified => "unverified",
    }
}

fn frame_batch(f: &Frame) -> &'static str {
    match f.kind {
        1 => batch_flags(f.is_batch_start(), f.is_batch_end()),
        2 => "sync",
        _ => "seal",
    }
}

/// Milliseconds since the Unix epoch as a UTC date and time (`2024-03-01 12:00:00 UTC`).
fn utc(ms: u64) -> String {
    // Up to the year 9999; a later time is no time a file was created at.
    if ms >= 253_402_300_800_000 {
        return format!("{ms} ms after the Unix epoch");
    }
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let (y, m, d) = civil_date(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(4_107_542_399_000), "2100-02-28 23:59:59 UTC");
        assert_eq!(utc(253_402_300_799_000), "9999-12-31 23:59:59 UTC");
        assert!(utc(u64::MAX).contains("ms after"));
    }
}
