//! `tidelog verify DIR`: find all damage, read back every record, give a verdict.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;
use tidelog::{Lsn, RecoveryMode};

use super::{Modes, is_damage, only_a_provisional_tail, open_read_only, writer_holds};
use crate::output::{Ctx, EXIT_PROBLEM, Style, human_bytes, human_duration, thousands};
use crate::report;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Opens the log read-only with a skip-corrupt recovery as a dry run, so it finds every damaged
place instead of stopping at the first, then reads back every record and checks it. Nothing in
the directory changes. Exit code 0: no damage; 1: damage found (including a torn tail, which
the next open would cut); 2: the log could not be read at all. On a log another process has
open for writing, the end of its last segment may be a write in progress: verify says the tail
is provisional instead of calling it damage. It warns (without failing) when other users can
read the log's files or directory.

Examples:
  tidelog verify ./wal
  tidelog verify ./wal --json
  tidelog verify ./wal || tidelog recover ./wal")]
pub(crate) struct Args {
    /// The log directory.
    pub(crate) dir: PathBuf,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    let problem = ExitCode::from(EXIT_PROBLEM);
    let log = match open_read_only(&args.dir, RecoveryMode::SkipCorrupt) {
        Ok(log) => log,
        Err(e) if is_damage(&e) => {
            // Damage even a skip-corrupt recovery does not get past.
            let message = format!("{e:#}");
            if ctx.json {
                out.json(&json!({"ok": false, "open_error": message}))?;
            } else {
                out.line(format_args!(
                    "{} {message}",
                    out.paint(Style::Red, "DAMAGED:")
                ))?;
            }
            out.flush()?;
            return Ok(problem);
        }
        Err(e) => return Err(e),
    };
    let r = log.recovery_report();
    if !ctx.json {
        out.line(format_args!("verifying {} (read-only)", args.dir.display()))?;
        out.indented("  ", &r.to_string())?;
        out.flush()?;
    }

    let first = log.checkpoint_lsn();
    let last = log.last_lsn();
    let span = (last.get() + 1).saturating_sub(first.get());
    let lost: u64 = r
        .lost
        .iter()
        .map(|range| (range.end().get() + 1).saturating_sub(range.start().get().max(first.get())))
        .sum();
    let expected = span.saturating_sub(lost);
    let bar = ctx.progress_bar(span, "verify");
    let started = Instant::now();
    let mut read = 0u64;
    let mut bytes = 0u64;
    let mut read_error = None;
    let mut previous = Lsn::ZERO;
    for record in log.range(first..)? {
        match record {
            Ok(record) => {
                if record.lsn() <= previous {
                    read_error = Some(format!("LSN {} came after LSN {previous}", record.lsn()));
                    break;
                }
                previous = record.lsn();
                read += 1;
                bytes += record.data().len() as u64;
                if read.is_multiple_of(4096) {
                    bar.set_position(record.lsn().get() + 1 - first.get());
                }
            }
            Err(e) => {
                read_error = Some(e.to_string());
                break;
            }
        }
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    if read_error.is_none() && read != expected {
        read_error = Some(format!(
            "read {read} records where {expected} were expected"
        ));
    }
    // A writer holds the log: what looks torn at the end is what it is writing right now.
    let provisional = !r.is_clean() && writer_holds(&args.dir) && only_a_provisional_tail(r, &log);
    let ok = (r.is_clean() || provisional) && read_error.is_none();
    let open_to_others = Modes::of(&args.dir).readable_by_others(&args.dir);

    if ctx.json {
        out.json(&json!({
            "ok": ok,
            "records_read": read,
            "bytes_read": bytes,
            "first_lsn": first.get(),
            "last_lsn": last.get(),
            "read_error": read_error,
            "provisional_tail": provisional,
            "readable_by_others": open_to_others
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect::<Vec<_>>(),
            "report": report::report_json(r),
        }))?;
    } else {
        out.line(format_args!(
            "read back {} records ({}) in {}{}",
            thousands(read),
            human_bytes(bytes),
            human_duration(elapsed),
            if read_error.is_none() {
                ": every checksum matches"
            } else {
                ""
            }
        ))?;
        if let Some(e) = &read_error {
            out.line(format_args!("{} {e}", out.paint(Style::Red, "read error:")))?;
        }
        if !open_to_others.is_empty() {
            let (first, mode) = &open_to_others[0];
            out.line(format_args!(
                "{} {} of the log's files and directories can be read by other users ({} is \
                 {mode:04o}); `chmod -R go-rwx {}` makes the log its owner's only",
                out.paint(Style::Yellow, "warning:"),
                open_to_others.len(),
                first.display(),
                args.dir.display()
            ))?;
        }
        if ok && provisional {
            out.line(format_args!(
                "{} no damage found; a writer holds the log, and the end of its last segment \
                 ({} bytes after LSN {last}) is still being written: provisional, not damage",
                out.paint(Style::Green, "OK:"),
                r.torn_bytes_cut
            ))?;
        } else if ok {
            out.line(format_args!(
                "{} no damage found",
                out.paint(Style::Green, "OK:")
            ))?;
        } else {
            let lost_records: u64 = r
                .lost
                .iter()
                .map(|range| (range.end().get() + 1).saturating_sub(range.start().get()))
                .sum();
            let mut what = vec![format!(
                "{} damaged place{}",
                r.damage.len(),
                if r.damage.len() == 1 { "" } else { "s" }
            )];
            if lost_records > 0 {
                what.push(format!("{lost_records} records lost"));
            }
            if r.torn_bytes_cut > 0 {
                what.push(format!(
                    "{} bytes of torn tail the next open cuts",
                    r.torn_bytes_cut
                ));
            }
            if r.intact_frames_cut > 0 {
                what.push(format!(
                    "{} intact records after the damage go with it",
                    r.intact_frames_cut
                ));
            }
            if read_error.is_some() {
                what.push("a read error".to_owned());
            }
            out.line(format_args!(
                "{} {}; `tidelog recover {}` shows what recovery would do",
                out.paint(Style::Red, "DAMAGED:"),
                what.join(", "),
                args.dir.display()
            ))?;
        }
    }
    out.flush()?;
    Ok(if ok { ExitCode::SUCCESS } else { problem })
}
