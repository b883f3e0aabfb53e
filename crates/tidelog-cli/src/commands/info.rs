//! `tidelog info DIR`: segments, watermarks, checkpoint, log id, format version, totals.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use tidelog::{FORMAT_VERSION, Log, RecoveryMode};

use super::{Modes, is_damage, open_read_only_trusting};
use crate::output::{Ctx, Style, Table, human_bytes, thousands};
use crate::report;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Opens the log read-only: nothing in the directory changes, and a process writing the log may
keep running. If the log is damaged, the figures come from a skip-corrupt dry run and a
warning says so. With --trust-seals the open reads only the seal of each sealed segment and
scans the last one, so it takes about as long for a log of 10 GiB as for one of 100 MiB; it
does not look for damage inside sealed segments (tidelog verify does).

Examples:
  tidelog info ./wal
  tidelog info ./wal --trust-seals
  tidelog info ./wal --json | jq .last_lsn")]
pub(crate) struct Args {
    /// The log directory.
    pub(crate) dir: PathBuf,
    /// Take each sealed segment as its seal describes it, without reading its frames.
    #[arg(long)]
    pub(crate) trust_seals: bool,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let open = |mode| open_read_only_trusting(&args.dir, mode, args.trust_seals);
    let (log, damage) = match open(RecoveryMode::TolerateTornTail) {
        Ok(log) => (log, None),
        Err(e) if is_damage(&e) => (open(RecoveryMode::SkipCorrupt)?, Some(format!("{e:#}"))),
        Err(e) => return Err(e),
    };
    let facts = Facts::of(&log)?;
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
                })
            })
            .collect();
        out.json(&json!({
            "dir": args.dir.display().to_string(),
            "log_id": format!("{:032x}", log.log_id()),
            "format_version": FORMAT_VERSION,
            "last_lsn": facts.last.get(),
            "durable_lsn": log.durable_lsn().get(),
            "written_lsn": log.written_lsn().get(),
            "checkpoint_lsn": facts.checkpoint.get(),
            "retention_floor": log.retention_floor().map(|f| f.get()),
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
    let retention = log.retention_floor().map(|floor| {
        (
            "retention",
            format!(
                "floor at LSN {floor}: checkpoints keep every segment from it on (set by an \
                 archiver: segments not archived yet are never removed)"
            ),
        )
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
    if let Some(row) = retention {
        // Beside the checkpoint, which it holds back.
        let at = rows
            .iter()
            .position(|(name, _)| *name == "checkpoint")
            .map_or(rows.len(), |i| i + 1);
        rows.insert(at, row);
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
            if s.active { "active" } else { "sealed" }.to_owned(),
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
