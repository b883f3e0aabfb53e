//! `tidelog info DIR`: segments, watermarks, checkpoint, retention floor and the segments it
//! holds back, log id, format version, totals.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use tidelog::{FORMAT_VERSION, Log, RecoveryMode};

use super::{
    EPOCHS_DIR, Modes, is_damage, is_sharded_root, open_read_only, open_read_only_trusting,
    open_sharded_read_only, shard_list,
};
use crate::output::{Ctx, Style, Table, human_bytes, thousands};
use crate::report;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Opens the log read-only: nothing in the directory changes, and a process writing the log may
keep running. If the log is damaged, the figures come from a skip-corrupt dry run and a
warning says so. With --trust-seals the open reads only the seal of each sealed segment and
scans the last one, so it takes about as long for a log of 10 GiB as for one of 100 MiB; it
does not look for damage inside sealed segments (tidelog verify does).

A log an archiver writes to object storage has a retention floor: the first LSN not archived
yet. Checkpoints keep every segment that holds a record from the floor on, so a segment wholly
below the checkpoint may stay until the archive has it. The \"held back\" row says which
segments the floor keeps that way now (how many, their bytes and LSNs), and the segment table
marks them \"sealed, held\". Their records are not readable through the log; once they are
archived, the archiver raises the floor past them, which removes them.

The root of a sharded log (a directory holding a SHARDS file) is opened the same way, every
shard and the epoch journal read-only: it shows the shard count, the current epoch, the epochs
a crash cut short (their start in some shard lies past that shard's end; the next open for
writing clamps them and begins a new epoch), and each shard's directory, records, LSNs,
durable LSN, segments and bytes, with totals.

Examples:
  tidelog info ./wal
  tidelog info ./wal --trust-seals
  tidelog info ./wal --json | jq .last_lsn
  tidelog info ./sharded                # shards, epoch, per-shard LSNs and sizes")]
pub(crate) struct Args {
    /// The log directory, or the root of a sharded log.
    pub(crate) dir: PathBuf,
    /// Take each sealed segment as its seal describes it, without reading its frames.
    #[arg(long)]
    pub(crate) trust_seals: bool,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    if is_sharded_root(&args.dir) {
        return sharded(&args, ctx);
    }
    let open = |mode| open_read_only_trusting(&args.dir, mode, args.trust_seals);
    let (log, damage) = match open(RecoveryMode::TolerateTornTail) {
        Ok(log) => (log, None),
        Err(e) if is_damage(&e) => (open(RecoveryMode::SkipCorrupt)?, Some(format!("{e:#}"))),
        Err(e) => return Err(e),
    };
    let facts = Facts::of(&log)?;
    let floor = log.retention_floor();
    let held = held_back(&facts, floor);
    let modes = Modes::of(&args.dir);
    let open_to_others = modes.readable_by_others(&args.dir);
    let r = log.recovery_report();
    let mut out = ctx.out();
    if ctx.json {
        let segments: Vec<_> = facts
            .segments
            .iter()
            .map(|s| {
                json!({
                    "path": s.path.display().to_string(),
                    "first_lsn": s.first_lsn.get(),
                    "last_lsn": s.last_lsn.get(),
                    "records": s.last_lsn.get().saturating_sub(s.first_lsn.get().saturating_sub(1)),
                    "bytes": s.bytes,
                    "state": if s.active { "active" } else { "sealed" },
                    "held": held.iter().any(|h| h.path == s.path),
                })
            })
            .collect();
        let held_lsns = held_range(&held);
        out.json(&json!({
            "dir": args.dir.display().to_string(),
            "log_id": format!("{:032x}", log.log_id()),
            "format_version": FORMAT_VERSION,
            "last_lsn": facts.last.get(),
            "durable_lsn": log.durable_lsn().get(),
            "written_lsn": log.written_lsn().get(),
            "checkpoint_lsn": facts.checkpoint.get(),
            "retention_floor": floor.map(|f| f.get()),
            "held_back": {
                "segments": held.len(),
                "bytes": held.iter().map(|s| s.bytes).sum::<u64>(),
                "first_lsn": held_lsns.map(|(first, _)| first.get()),
                "last_lsn": held_lsns.map(|(_, last)| last.get()),
                "paths": held
                    .iter()
                    .map(|s| s.path.display().to_string())
                    .collect::<Vec<_>>(),
            },
            "records": facts.records,
            "bytes": facts.bytes,
            "segments": segments,
            "modes": {
                "dir": modes.dir.map(|m| format!("{m:04o}")),
                "files": modes
                    .entries
                    .iter()
                    .map(|(p, m)| (p.display().to_string(), format!("{m:04o}")))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            },
            "readable_by_others": open_to_others
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect::<Vec<_>>(),
            "damaged": damage,
            "recovery": report::report_json(r),
        }))?;
        return out.flush().map(|()| ExitCode::SUCCESS);
    }

    let records = if facts.records == 0 {
        format!("none (the next record gets LSN {})", facts.last.next())
    } else {
        format!(
            "{} (LSN {}..={})",
            thousands(facts.records),
            facts.checkpoint,
            facts.last
        )
    };
    let retention = floor.map(|floor| {
        [
            (
                "retention",
                format!(
                    "floor at LSN {floor}: checkpoints keep every segment from it on (set by an \
                     archiver: segments not archived yet are never removed)"
                ),
            ),
            ("held back", held_summary(&held, facts.checkpoint)),
        ]
    });
    let mut rows = vec![
        ("log", args.dir.display().to_string()),
        ("log id", format!("{:032x}", log.log_id())),
        ("format", format!("version {FORMAT_VERSION}")),
        ("records", records),
        ("last LSN", facts.last.to_string()),
        (
            "durable LSN",
            format!("{} (written LSN {})", log.durable_lsn(), log.written_lsn()),
        ),
        (
            "checkpoint",
            format!("{} (the first LSN a read may ask for)", facts.checkpoint),
        ),
        (
            "permissions",
            if open_to_others.is_empty() {
                modes.summary()
            } else {
                format!("{} (readable by other users)", modes.summary())
            },
        ),
        (
            "size",
            format!(
                "{} in {} segment{}",
                human_bytes(facts.bytes),
                facts.segments.len(),
                if facts.segments.len() == 1 { "" } else { "s" }
            ),
        ),
    ];
    if let Some(retention) = retention {
        // Beside the checkpoint, which it holds back.
        let at = rows
            .iter()
            .position(|(name, _)| *name == "checkpoint")
            .map_or(rows.len(), |i| i + 1);
        rows.splice(at..at, retention);
    }
    for (name, value) in rows {
        out.line(format_args!("{:<12} {value}", out.paint(Style::Bold, name)))?;
    }
    out.line("")?;
    let mut table = Table::new(&["segment", ">first LSN", ">last LSN", ">bytes", "state"]);
    for s in &facts.segments {
        let name = s.path.file_name().map_or_else(
            || s.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        table.row(vec![
            name,
            s.first_lsn.to_string(),
            if s.last_lsn < s.first_lsn {
                "(empty)".to_owned()
            } else {
                s.last_lsn.to_string()
            },
            s.bytes.to_string(),
            if s.active {
                "active"
            } else if held.iter().any(|h| h.path == s.path) {
                "sealed, held"
            } else {
                "sealed"
            }
            .to_owned(),
        ]);
    }
    for line in table.lines() {
        out.line(line)?;
    }
    out.line("")?;
    if let Some(damage) = damage {
        out.line(format_args!(
            "{} {damage}",
            out.paint(Style::Red, "damaged:")
        ))?;
        out.line(
            "  the figures above come from a skip-corrupt dry run; `tidelog verify` lists the \
             damage and `tidelog recover` shows what each recovery mode would do",
        )?;
    } else if r.is_clean() && !report::changes_anything(r) {
        out.line(format_args!(
            "{} clean (recovery would change nothing)",
            out.paint(Style::Green, "recovery:")
        ))?;
    } else {
        out.line(format_args!(
            "{} the next open for writing would change the directory:",
            out.paint(Style::Yellow, "recovery:")
        ))?;
        for change in report::changes(r) {
            out.line(format_args!("  {change}"))?;
        }
    }
    for line in report::left_in_place(r) {
        out.line(format_args!("  {line}"))?;
    }
    for path in &r.unknown_files {
        out.line(format_args!(
            "  not a tidelog file, ignored: {}",
            path.display()
        ))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `info` of a sharded log's root.
fn sharded(args: &Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let root = &args.dir;
    let open = |mode| open_sharded_read_only(root, mode, args.trust_seals);
    let (log, damage) = match open(RecoveryMode::TolerateTornTail) {
        Ok(log) => (log, None),
        Err(e) if is_damage(&e) => (open(RecoveryMode::SkipCorrupt)?, Some(format!("{e:#}"))),
        Err(e) => return Err(e),
    };
    let count = log.shard_count();
    let mut shards = Vec::with_capacity(count);
    for i in 0..count {
        let shard = log.shard(i)?;
        shards.push((shard, Facts::of(shard)?));
    }
    // The journal's directory is not exposed by the core: a second read-only open of it, for
    // its figures.
    let journal_dir = root.join(EPOCHS_DIR);
    let journal = open_read_only(&journal_dir, RecoveryMode::SkipCorrupt)?;
    let journal_facts = Facts::of(&journal)?;
    let r = log.recovery_report();
    let records: u64 = shards.iter().map(|(_, f)| f.records).sum();
    let bytes: u64 = shards.iter().map(|(_, f)| f.bytes).sum();
    let segments: usize = shards.iter().map(|(_, f)| f.segments.len()).sum();
    let modes = Modes::of(root);
    let open_to_others = modes.readable_by_others(root);
    let mut out = ctx.out();
    if ctx.json {
        let shard_json: Vec<_> = shards
            .iter()
            .enumerate()
            .map(|(i, (shard, facts))| {
                let mut value = log_json(shard, facts);
                value["shard"] = json!(i);
                value
            })
            .collect();
        out.json(&json!({
            "root": root.display().to_string(),
            "sharded": true,
            "format_version": FORMAT_VERSION,
            "shard_count": count,
            "epoch": log.epoch(),
            "clamped": r
                .clamped
                .iter()
                .map(|(epoch, shards)| json!({"epoch": epoch, "shards": shards}))
                .collect::<Vec<_>>(),
            "records": records,
            "bytes": bytes,
            "segments": segments,
            "synced_positions": log
                .synced_positions()
                .iter()
                .map(|l| l.get())
                .collect::<Vec<_>>(),
            "shards": shard_json,
            "epochs": log_json(&journal, &journal_facts),
            "modes": {
                "dir": modes.dir.map(|m| format!("{m:04o}")),
                "files": modes
                    .entries
                    .iter()
                    .map(|(p, m)| (p.display().to_string(), format!("{m:04o}")))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            },
            "readable_by_others": open_to_others
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect::<Vec<_>>(),
            "damaged": damage,
            "recovery": {
                "shards": r.shards.iter().map(report::report_json).collect::<Vec<_>>(),
                "epochs": report::report_json(&r.epochs),
            },
        }))?;
        return out.flush().map(|()| ExitCode::SUCCESS);
    }

    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let clamped = if r.clamped.is_empty() {
        "none".to_owned()
    } else {
        let each: Vec<String> = r
            .clamped
            .iter()
            .map(|(epoch, shards)| format!("epoch {epoch} ({})", shard_list(shards)))
            .collect();
        format!(
            "{}: their start lies past the shard's end (records a crash took away before they \
             were durable); the next open for writing clamps them and begins a new epoch",
            each.join("; ")
        )
    };
    let rows = vec![
        ("sharded log", root.display().to_string()),
        ("format", format!("version {FORMAT_VERSION}")),
        ("shards", count.to_string()),
        ("epoch", format!("{} (appends go to it)", log.epoch())),
        ("cut short", clamped),
        ("records", format!("{} in all shards", thousands(records))),
        (
            "epoch journal",
            format!(
                "{} ({})",
                journal_dir.display(),
                plural(
                    usize::try_from(journal_facts.records).unwrap_or(usize::MAX),
                    "epoch start"
                )
            ),
        ),
        (
            "permissions",
            if open_to_others.is_empty() {
                modes.summary()
            } else {
                format!("{} (readable by other users)", modes.summary())
            },
        ),
        (
            "size",
            format!("{} in {}", human_bytes(bytes), plural(segments, "segment")),
        ),
    ];
    for (name, value) in rows {
        out.line(format_args!("{:<13} {value}", out.paint(Style::Bold, name)))?;
    }
    out.line("")?;
    let mut table = Table::new(&[
        ">shard",
        "directory",
        ">records",
        ">LSNs",
        ">last LSN",
        ">durable LSN",
        ">segments",
        ">bytes",
    ]);
    for (i, (shard, facts)) in shards.iter().enumerate() {
        table.row(vec![
            i.to_string(),
            dir_name(shard.dir()),
            thousands(facts.records),
            if facts.last < facts.checkpoint {
                "-".to_owned()
            } else {
                format!("{}..={}", facts.checkpoint, facts.last)
            },
            facts.last.to_string(),
            shard.durable_lsn().to_string(),
            facts.segments.len().to_string(),
            facts.bytes.to_string(),
        ]);
    }
    table.row(vec![
        "total".to_owned(),
        String::new(),
        thousands(records),
        String::new(),
        String::new(),
        String::new(),
        segments.to_string(),
        bytes.to_string(),
    ]);
    for line in table.lines() {
        out.line(line)?;
    }
    out.line("")?;
    let logs: Vec<(String, &tidelog::RecoveryReport)> = shards
        .iter()
        .map(|(shard, _)| (dir_name(shard.dir()), shard.recovery_report()))
        .chain(std::iter::once((EPOCHS_DIR.to_owned(), &r.epochs)))
        .collect();
    if let Some(damage) = damage {
        out.line(format_args!(
            "{} {damage}",
            out.paint(Style::Red, "damaged:")
        ))?;
        out.line(
            "  the figures above come from a skip-corrupt dry run; `tidelog verify` lists the \
             damage, and `tidelog recover` on a shard's directory shows what each recovery mode \
             would do",
        )?;
    } else if logs
        .iter()
        .all(|(_, r)| r.is_clean() && !report::changes_anything(r))
    {
        out.line(format_args!(
            "{} clean in every shard and the epoch journal (recovery would change nothing)",
            out.paint(Style::Green, "recovery:")
        ))?;
    } else {
        out.line(format_args!(
            "{} the next open for writing would change the directory:",
            out.paint(Style::Yellow, "recovery:")
        ))?;
        for (name, r) in &logs {
            for change in report::changes(r) {
                out.line(format_args!("  {name}: {change}"))?;
            }
        }
    }
    for (name, r) in &logs {
        for line in report::left_in_place(r) {
            out.line(format_args!("  {name}: {line}"))?;
        }
        for path in &r.unknown_files {
            out.line(format_args!(
                "  {name}: not a tidelog file, ignored: {}",
                path.display()
            ))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The last component of a directory's path (the whole path if it has none).
fn dir_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// One log of a sharded root (a shard, or the epoch journal) as a JSON object.
fn log_json(log: &Log, facts: &Facts) -> serde_json::Value {
    json!({
        "dir": log.dir().display().to_string(),
        "log_id": format!("{:032x}", log.log_id()),
        "first_lsn": facts.checkpoint.get(),
        "last_lsn": facts.last.get(),
        "durable_lsn": log.durable_lsn().get(),
        "written_lsn": log.written_lsn().get(),
        "checkpoint_lsn": facts.checkpoint.get(),
        "records": facts.records,
        "bytes": facts.bytes,
        "segments": facts.segments.len(),
    })
}

/// The segments the retention `floor` alone keeps: sealed, wholly below the checkpoint (no
/// record of theirs is readable), yet holding a record at or above the floor, so a checkpoint
/// leaves them until the archive has them.
fn held_back(facts: &Facts, floor: Option<tidelog::Lsn>) -> Vec<&tidelog::SegmentInfo> {
    let Some(floor) = floor else {
        return Vec::new();
    };
    facts
        .segments
        .iter()
        .filter(|s| !s.active && s.last_lsn < facts.checkpoint && s.last_lsn >= floor)
        .collect()
}

/// The LSNs the held segments span, if any is held.
fn held_range(held: &[&tidelog::SegmentInfo]) -> Option<(tidelog::Lsn, tidelog::Lsn)> {
    Some((held.first()?.first_lsn, held.last()?.last_lsn))
}

/// The `held back` row: the segments the retention floor keeps below the `checkpoint`.
fn held_summary(held: &[&tidelog::SegmentInfo], checkpoint: tidelog::Lsn) -> String {
    let Some((first, last)) = held_range(held) else {
        return "nothing now (no segment below the checkpoint waits for the archive)".to_owned();
    };
    format!(
        "{} segment{}, {} (LSN {first}..={last}, below the checkpoint at {checkpoint}): they \
         hold records not archived yet, so they stay until the archive has them",
        held.len(),
        if held.len() == 1 { "" } else { "s" },
        human_bytes(held.iter().map(|s| s.bytes).sum()),
    )
}

/// What `info` shows, gathered from an open log.
struct Facts {
    segments: Vec<tidelog::SegmentInfo>,
    last: tidelog::Lsn,
    checkpoint: tidelog::Lsn,
    /// Readable records: from the checkpoint to the last LSN, less those lost to damage.
    records: u64,
    bytes: u64,
}

impl Facts {
    fn of(log: &Log) -> anyhow::Result<Facts> {
        let segments = log.segments();
        let last = log.last_lsn();
        let checkpoint = log.checkpoint_lsn();
        let lost: u64 = log
            .recovery_report()
            .lost
            .iter()
            .map(|r| {
                let first = r.start().get().max(checkpoint.get());
                (r.end().get() + 1).saturating_sub(first)
            })
            .sum();
        let records = (last.get() + 1)
            .saturating_sub(checkpoint.get())
            .saturating_sub(lost);
        let bytes = segments.iter().map(|s| s.bytes).sum();
        Ok(Facts {
            segments,
            last,
            checkpoint,
            records,
            bytes,
        })
    }
}
