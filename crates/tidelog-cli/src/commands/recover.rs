//! `tidelog recover DIR [--mode MODE] [--apply]`: what recovery would do, or do it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;
use tidelog::{Log, RecoveryMode};

use super::{is_damage, only_a_provisional_tail, open_read_only, writer_holds};
use crate::output::{Ctx, EXIT_PROBLEM, Out, Style};
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

Examples:
  tidelog recover ./wal                              # dry run in the default mode
  tidelog recover ./wal --mode point-in-time         # what would a point-in-time recovery cut?
  tidelog recover ./wal --mode point-in-time --apply")]
pub(crate) struct Args {
    /// The log directory.
    pub(crate) dir: PathBuf,

    /// The recovery mode.
    #[arg(long, value_parser = report::mode_parser(), default_value_t)]
    pub(crate) mode: RecoveryMode,

    /// Really recover (open the log for writing); without it, a dry run.
    #[arg(long)]
    pub(crate) apply: bool,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    if args.apply {
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
            let message = format!("{e:#}");
            if ctx.json {
                out.json(&json!({
                    "apply": false,
                    "mode": mode.name(),
                    "would_fail": message,
                }))?;
            } else {
                out.line(format_args!(
                    "{} recovery in mode {} would refuse to open the log: {message}",
                    out.paint(Style::Red, "damaged:"),
                    mode.name()
                ))?;
                out.line(
                    "  --mode point-in-time keeps the records before the damage; --mode \
                     skip-corrupt keeps every intact record (try either: this is a dry run)",
                )?;
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
