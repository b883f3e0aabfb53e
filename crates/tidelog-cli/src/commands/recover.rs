//! `tidelog recover DIR [--mode MODE] [--apply]`: what recovery would do, or do it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;
use tidelog::repair::{CheckpointRebuild, CheckpointState};
use tidelog::{Log, RecoveryMode};

use super::{is_damage, only_a_provisional_tail, open_read_only, writer_holds};
use crate::output::{self, Ctx, EXIT_PROBLEM, Out, Style};
use crate::report;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Without --apply this is a dry run: the log is opened read-only, recovery runs in the chosen
mode without changing anything, and its report says what it would do. Exit code 0: nothing to
do; 1: damage found, or recovery would change the directory (or would refuse to open the log).

With --apply the log is opened for writing in that mode, so recovery really runs; what it cuts
or moves goes to the quarantine/ folder of the log directory, never deleted.

Modes:
  strict              any damage, even a torn tail, is an error
  tolerate-torn-tail  cut the never-synced end of the log; other damage is an error (default)
  point-in-time       stop at the first damage; everything after it goes to quarantine/
  skip-corrupt        keep every intact record; damaged ones are skipped and stay in place

A damaged CHECKPOINT file stops recovery in every mode, and a lost one makes the log look as
if its first records were missing. --rebuild-checkpoint rebuilds it from what the segments say:
the log id most segment headers carry, and the first LSN of the first segment as the
checkpoint (records a lost checkpoint had dropped, but whose segment was still there, become
readable again). It refuses if the segments disagree on the log id with no majority. Without
--apply it is a dry run (exit code 0: the file is fine; 1: it would be rewritten); with
--apply the file it replaces is copied to quarantine/ first, and the new one is written the
way a checkpoint always is (temporary file, fsync, rename, directory fsync). It takes the
log's lock, so it refuses a log that a process has open for writing.

Examples:
  tidelog recover ./wal                              # dry run in the default mode
  tidelog recover ./wal --mode point-in-time         # what would a point-in-time recovery cut?
  tidelog recover ./wal --mode point-in-time --apply
  tidelog recover ./wal --rebuild-checkpoint         # what would a rebuilt CHECKPOINT hold?
  tidelog recover ./wal --rebuild-checkpoint --apply")]
pub(crate) struct Args {
    /// The log directory.
    pub(crate) dir: PathBuf,

    /// The recovery mode.
    #[arg(long, value_parser = report::mode_parser(), default_value_t)]
    pub(crate) mode: RecoveryMode,

    /// Really recover (open the log for writing); without it, a dry run.
    #[arg(long)]
    pub(crate) apply: bool,

    /// Rebuild a damaged or lost CHECKPOINT file from the segments instead of recovering (a
    /// dry run unless --apply).
    #[arg(long, conflicts_with = "mode")]
    pub(crate) rebuild_checkpoint: bool,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    if args.rebuild_checkpoint {
        rebuild_checkpoint(&args.dir, args.apply, ctx)
    } else if args.apply {
        apply(&args, ctx)
    } else {
        dry_run(&args, ctx)
    }
}

fn dry_run(args: &Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mode = args.mode;
    let mut out = ctx.out();
    let problem = ExitCode::from(EXIT_PROBLEM);
    let log = match open_read_only(&args.dir, mode) {
        Ok(log) => log,
        Err(e) if is_damage(&e) => {
            let message = output::chain(&e);
            let checkpoint = checkpoint_at_fault(&args.dir, &e);
            if ctx.json {
                out.json(&json!({
                    "apply": false,
                    "mode": mode.name(),
                    "would_fail": message,
                    "checkpoint_at_fault": checkpoint,
                }))?;
            } else {
                out.line(format_args!(
                    "{} recovery in mode {} would refuse to open the log: {message}",
                    out.paint(Style::Red, "damaged:"),
                    mode.name()
                ))?;
                if checkpoint {
                    out.line(format_args!(
                        "  the CHECKPOINT file is at fault, which no recovery mode gets past: \
                         `tidelog recover {} --rebuild-checkpoint` shows how it would be rebuilt \
                         from the segments (a dry run too)",
                        args.dir.display()
                    ))?;
                } else {
                    out.line(
                        "  --mode point-in-time keeps the records before the damage; --mode \
                         skip-corrupt keeps every intact record (try either: this is a dry run)",
                    )?;
                }
            }
            out.flush()?;
            return Ok(problem);
        }
        Err(e) => return Err(e),
    };
    let r = log.recovery_report();
    let changes = report::changes(r);
    // A writer holds the log: what looks torn at the end is what it is writing right now.
    let provisional = !r.is_clean() && writer_holds(&args.dir) && only_a_provisional_tail(r, &log);
    let needed = !provisional && (!r.is_clean() || report::changes_anything(r));
    if ctx.json {
        out.json(&json!({
            "apply": false,
            "provisional_tail": provisional,
            "mode": mode.name(),
            "would_change": changes,
            "left_in_place": report::left_in_place(r),
            "report": report::report_json(r),
        }))?;
    } else {
        out.indented("", &r.to_string())?;
        print_list(&mut out, "would change:", &changes)?;
        print_list(
            &mut out,
            "damage it would leave in place:",
            &report::left_in_place(r),
        )?;
        if provisional {
            out.line(format_args!(
                "{} a writer holds the log: the tail it would cut is a write in progress \
                 (provisional), not damage; nothing to recover while the writer runs",
                out.paint(Style::Green, "nothing to do:")
            ))?;
        } else if needed {
            out.line(format_args!(
                "{} run `tidelog recover {} --mode {} --apply` to do it",
                out.paint(Style::Yellow, "dry run:"),
                args.dir.display(),
                mode.name()
            ))?;
        } else {
            out.line(format_args!(
                "{} the log is clean",
                out.paint(Style::Green, "nothing to do:")
            ))?;
        }
    }
    out.flush()?;
    Ok(if needed { problem } else { ExitCode::SUCCESS })
}

fn apply(args: &Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mode = args.mode;
    let log = Log::builder(&args.dir)
        .create_if_missing(false)
        .recovery_mode(mode)
        .open()
        .with_context(|| {
            format!(
                "recovery of {} in mode {} failed",
                args.dir.display(),
                mode.name()
            )
        })?;
    let r = log.recovery_report().clone();
    log.close().context("cannot close the log after recovery")?;
    let changes = report::changes(&r);
    let left = report::left_in_place(&r);
    let mut out = ctx.out();
    if ctx.json {
        out.json(&json!({
            "apply": true,
            "mode": mode.name(),
            "changed": changes,
            "left_in_place": left,
            "report": report::report_json(&r),
        }))?;
    } else {
        out.indented("", &r.to_string())?;
        print_list(&mut out, "changed:", &changes)?;
        print_list(&mut out, "damage left in place:", &left)?;
        if changes.is_empty() && left.is_empty() {
            out.line(format_args!(
                "{} the log was clean; nothing changed",
                out.paint(Style::Green, "done:")
            ))?;
        } else if left.is_empty() {
            out.line(format_args!(
                "{} the log opens cleanly now",
                out.paint(Style::Green, "recovered:")
            ))?;
        } else {
            out.line(format_args!(
                "{} the damage stays in place, so the log opens only in skip-corrupt mode; \
                 --mode point-in-time would cut it instead",
                out.paint(Style::Yellow, "note:")
            ))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `--rebuild-checkpoint`: what a rebuilt CHECKPOINT would hold, or (with `apply`) write it.
fn rebuild_checkpoint(dir: &Path, apply: bool, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let plan = CheckpointRebuild::plan(dir)
        .with_context(|| format!("cannot read the log in {}", dir.display()))?;
    let refusal = plan.refusal();
    let needed = plan.is_needed();
    let mut out = ctx.out();
    let id = |id: u128| format!("{id:032x}");
    let (state, detail) = match plan.current() {
        CheckpointState::Missing => ("missing", "there is no CHECKPOINT file".to_owned()),
        CheckpointState::Damaged(kind) => ("damaged", format!("damaged: {kind}")),
        CheckpointState::Intact { log_id, lsn } => (
            "intact",
            format!("intact: log id {}, checkpoint LSN {lsn}", id(*log_id)),
        ),
        _ => ("unknown", "unknown".to_owned()),
    };
    let retention_differs = plan
        .retention_log_id()
        .zip(plan.log_id())
        .is_some_and(|(r, l)| r != l);

    // Write first (if asked and possible), so what is printed is what was done.
    let written = if apply && needed && refusal.is_none() {
        let copy = plan
            .apply()
            .with_context(|| format!("cannot rebuild the checkpoint of {}", dir.display()))?;
        Some(copy)
    } else {
        None
    };

    if ctx.json {
        let current = match plan.current() {
            CheckpointState::Damaged(kind) => {
                json!({"state": state, "kind": kind.name(), "detail": kind.to_string()})
            }
            CheckpointState::Intact { log_id, lsn } => {
                json!({"state": state, "log_id": id(*log_id), "lsn": lsn.get()})
            }
            _ => json!({"state": state}),
        };
        let ids: Vec<_> = plan
            .log_ids()
            .iter()
            .map(|(log_id, n)| json!({"log_id": id(*log_id), "segments": n}))
            .collect();
        let unreadable: Vec<_> = plan
            .unreadable()
            .iter()
            .map(|(path, kind)| json!({"path": path.display().to_string(), "kind": kind.name()}))
            .collect();
        out.json(&json!({
            "rebuild_checkpoint": true,
            "apply": apply,
            "dir": dir.display().to_string(),
            "current": current,
            "needed": needed,
            "log_id": plan.log_id().map(id),
            "lsn": plan.lsn().get(),
            "segments": plan.segments(),
            "log_ids": ids,
            "unreadable_segments": unreadable,
            "retention_log_id": plan.retention_log_id().map(id),
            "refusal": refusal,
            "written": written.is_some(),
            "quarantined": written.clone().flatten().map(|p| p.display().to_string()),
        }))?;
    } else {
        out.line(format_args!(
            "{:<11} {detail}",
            out.paint(Style::Bold, "CHECKPOINT")
        ))?;
        let carried: Vec<String> = plan
            .log_ids()
            .iter()
            .map(|(log_id, n)| format!("{n} carry log id {}", id(*log_id)))
            .collect();
        out.line(format_args!(
            "{:<11} {}{}",
            out.paint(Style::Bold, "segments"),
            plan.segments(),
            if carried.is_empty() {
                String::new()
            } else {
                format!(" ({})", carried.join(", "))
            }
        ))?;
        for (path, kind) in plan.unreadable() {
            out.line(format_args!(
                "  header of {} unreadable: {kind}",
                path.display()
            ))?;
        }
        if let Some(log_id) = plan.log_id() {
            out.line(format_args!(
                "{:<11} log id {}, checkpoint LSN {} (the first LSN of the first segment)",
                out.paint(Style::Bold, "rebuild"),
                id(log_id),
                plan.lsn()
            ))?;
        }
        if retention_differs {
            out.line(format_args!(
                "{} the RETENTION file names another log id ({}): recovery will refuse it",
                out.paint(Style::Yellow, "warning:"),
                plan.retention_log_id().map(id).unwrap_or_default()
            ))?;
        }
        if let Some(reason) = &refusal {
            out.line(format_args!(
                "{} {reason}",
                out.paint(Style::Red, "cannot rebuild:")
            ))?;
        } else if let Some(copy) = &written {
            out.line(format_args!(
                "{} wrote {}{}",
                out.paint(Style::Green, "rebuilt:"),
                dir.join("CHECKPOINT").display(),
                match copy {
                    Some(copy) => format!("; the file it replaced is kept as {}", copy.display()),
                    None => String::new(),
                }
            ))?;
            out.line(format_args!(
                "  `tidelog recover {}` now shows what recovery would do",
                dir.display()
            ))?;
        } else if !needed {
            out.line(format_args!(
                "{} the CHECKPOINT file agrees with the segments",
                out.paint(Style::Green, "nothing to do:")
            ))?;
        } else {
            out.line(format_args!(
                "{} run `tidelog recover {} --rebuild-checkpoint --apply` to write it (the file \
                 it replaces is kept in quarantine/)",
                out.paint(Style::Yellow, "dry run:"),
                dir.display()
            ))?;
        }
    }
    out.flush()?;
    if let Some(reason) = refusal.filter(|_| needed) {
        anyhow::bail!(
            "cannot rebuild the checkpoint of {}: {reason}",
            dir.display()
        );
    }
    Ok(if needed && written.is_none() {
        ExitCode::from(EXIT_PROBLEM)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether a refused open is the checkpoint file's fault: it does not decode, or it is gone and
/// the log's first records read as missing.
fn checkpoint_at_fault(dir: &Path, err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| match e.downcast_ref::<tidelog::Error>() {
            Some(tidelog::Error::Corrupt { path, .. }) => path.ends_with("CHECKPOINT"),
            Some(tidelog::Error::MissingRecords { first, .. }) => {
                *first == tidelog::Lsn::FIRST && !dir.join("CHECKPOINT").exists()
            }
            _ => false,
        })
}

fn print_list(out: &mut Out, title: &str, items: &[String]) -> anyhow::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    out.line(title)?;
    for item in items {
        out.line(format_args!("  {item}"))?;
    }
    Ok(())
}
