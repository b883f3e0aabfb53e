//! `tidelog verify DIR`: find all damage, read back every record, give a verdict.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidelog::{Log, Lsn, RecoveryMode, RecoveryReport};

use super::{
    EPOCHS_DIR, Modes, is_damage, is_sharded_root, only_a_provisional_tail, open_read_only,
    open_sharded_read_only, shard_list, writer_holds,
};
use crate::output::{Ctx, EXIT_PROBLEM, Out, Style, human_bytes, human_duration, thousands};
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

The root of a sharded log (a directory holding a SHARDS file): its manifest and epoch journal
are checked by opening it read-only, then every shard and the epoch journal are verified as one
log is, each in turn, with an overall verdict and the same exit codes. Epochs a crash cut short
(their start lies past a shard's end) are noted, not counted as damage.

Examples:
  tidelog verify ./wal
  tidelog verify ./wal --json
  tidelog verify ./wal || tidelog recover ./wal
  tidelog verify ./sharded              # every shard and the epoch journal")]
pub(crate) struct Args {
    /// The log directory, or the root of a sharded log.
    pub(crate) dir: PathBuf,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    if is_sharded_root(&args.dir) {
        return sharded(&args.dir, ctx);
    }
    let mut out = ctx.out();
    let problem = ExitCode::from(EXIT_PROBLEM);
    let log = match open(&args.dir)? {
        Ok(log) => log,
        Err(message) => {
            if ctx.json {
                out.json(&unopenable_json(&message))?;
            } else {
                print_unopenable(&mut out, "", &message)?;
            }
            out.flush()?;
            return Ok(problem);
        }
    };
    if !ctx.json {
        out.line(format_args!("verifying {} (read-only)", args.dir.display()))?;
        out.indented("  ", &log.recovery_report().to_string())?;
        out.flush()?;
    }
    let check = Check::of(&log, &args.dir, ctx)?;
    let open_to_others = Modes::of(&args.dir).readable_by_others(&args.dir);
    if ctx.json {
        let mut value = check.json();
        value["readable_by_others"] = readable_json(&open_to_others);
        out.json(&value)?;
    } else {
        check.print_read_back(&mut out, "")?;
        warn_readable(&mut out, &open_to_others, &args.dir, "log")?;
        check.print_verdict(&mut out, "", &args.dir)?;
    }
    out.flush()?;
    Ok(if check.ok { ExitCode::SUCCESS } else { problem })
}

/// Opens the log in `dir` read-only with a skip-corrupt dry run; `Ok(Err(message))` for
/// damage even a skip-corrupt recovery does not get past.
fn open(dir: &Path) -> anyhow::Result<Result<Log, String>> {
    match open_read_only(dir, RecoveryMode::SkipCorrupt) {
        Ok(log) => Ok(Ok(log)),
        Err(e) if is_damage(&e) => Ok(Err(format!("{e:#}"))),
        Err(e) => Err(e),
    }
}

fn unopenable_json(message: &str) -> Value {
    json!({"ok": false, "open_error": message})
}

fn print_unopenable(out: &mut Out, indent: &str, message: &str) -> anyhow::Result<()> {
    out.line(format_args!(
        "{indent}{} {message}",
        out.paint(Style::Red, "DAMAGED:")
    ))
}

fn readable_json(open_to_others: &[(PathBuf, u32)]) -> Value {
    json!(
        open_to_others
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect::<Vec<_>>()
    )
}

/// Warns (without failing) that other users can read some of the files under `dir`.
fn warn_readable(
    out: &mut Out,
    open_to_others: &[(PathBuf, u32)],
    dir: &Path,
    what: &str,
) -> anyhow::Result<()> {
    let Some((first, mode)) = open_to_others.first() else {
        return Ok(());
    };
    out.line(format_args!(
        "{} {} of the {what}'s files and directories can be read by other users ({} is \
         {mode:04o}); `chmod -R go-rwx {}` makes the {what} its owner's only",
        out.paint(Style::Yellow, "warning:"),
        open_to_others.len(),
        first.display(),
        dir.display()
    ))
}

/// What verifying one open log found: its recovery report and the read-back of every record.
struct Check {
    report: RecoveryReport,
    first: Lsn,
    last: Lsn,
    read: u64,
    bytes: u64,
    read_error: Option<String>,
    provisional: bool,
    elapsed: Duration,
    ok: bool,
}

impl Check {
    /// Reads back every record of `log` (opened from `dir` with a skip-corrupt dry run) and
    /// gives the verdict.
    fn of(log: &Log, dir: &Path, ctx: &Ctx) -> anyhow::Result<Check> {
        let r = log.recovery_report();
        let first = log.checkpoint_lsn();
        let last = log.last_lsn();
        let span = (last.get() + 1).saturating_sub(first.get());
        let lost: u64 = r
            .lost
            .iter()
            .map(|range| {
                (range.end().get() + 1).saturating_sub(range.start().get().max(first.get()))
            })
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
                        read_error =
                            Some(format!("LSN {} came after LSN {previous}", record.lsn()));
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
        let provisional = !r.is_clean() && writer_holds(dir) && only_a_provisional_tail(r, log);
        let ok = (r.is_clean() || provisional) && read_error.is_none();
        Ok(Check {
            report: r.clone(),
            first,
            last,
            read,
            bytes,
            read_error,
            provisional,
            elapsed,
            ok,
        })
    }

    fn json(&self) -> Value {
        json!({
            "ok": self.ok,
            "records_read": self.read,
            "bytes_read": self.bytes,
            "first_lsn": self.first.get(),
            "last_lsn": self.last.get(),
            "read_error": self.read_error,
            "provisional_tail": self.provisional,
            "report": report::report_json(&self.report),
        })
    }

    fn print_read_back(&self, out: &mut Out, indent: &str) -> anyhow::Result<()> {
        out.line(format_args!(
            "{indent}read back {} records ({}) in {}{}",
            thousands(self.read),
            human_bytes(self.bytes),
            human_duration(self.elapsed),
            if self.read_error.is_none() {
                ": every checksum matches"
            } else {
                ""
            }
        ))?;
        if let Some(e) = &self.read_error {
            out.line(format_args!(
                "{indent}{} {e}",
                out.paint(Style::Red, "read error:")
            ))?;
        }
        Ok(())
    }

    /// The verdict on the log in `dir`.
    fn print_verdict(&self, out: &mut Out, indent: &str, dir: &Path) -> anyhow::Result<()> {
        let r = &self.report;
        if self.ok && self.provisional {
            return out.line(format_args!(
                "{indent}{} no damage found; a writer holds the log, and the end of its last \
                 segment ({} bytes after LSN {}) is still being written: provisional, not damage",
                out.paint(Style::Green, "OK:"),
                r.torn_bytes_cut,
                self.last
            ));
        }
        if self.ok {
            return out.line(format_args!(
                "{indent}{} no damage found",
                out.paint(Style::Green, "OK:")
            ));
        }
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
        if self.read_error.is_some() {
            what.push("a read error".to_owned());
        }
        out.line(format_args!(
            "{indent}{} {}; `tidelog recover {}` shows what recovery would do",
            out.paint(Style::Red, "DAMAGED:"),
            what.join(", "),
            dir.display()
        ))
    }
}

/// `verify` of a sharded log's root: its structure through a read-only open, then every shard
/// and the epoch journal as one log each.
fn sharded(root: &Path, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    // The manifest, each shard's log id and the journal's records are checked by the open.
    let (sharded, open_error) = match open_sharded_read_only(root, RecoveryMode::SkipCorrupt, false)
    {
        Ok(log) => (Some(log), None),
        Err(e) if is_damage(&e) => (None, Some(format!("{e:#}"))),
        Err(e) => return Err(e),
    };
    // The logs to verify: (shard index, directory); the journal last, with no index.
    let mut logs: Vec<(Option<usize>, PathBuf)> = match &sharded {
        Some(log) => (0..log.shard_count())
            .map(|i| Ok((Some(i), log.shard(i)?.dir().to_path_buf())))
            .collect::<anyhow::Result<_>>()?,
        // The shard directories there are (the manifest could not be used).
        None => shard_dirs(root)?,
    };
    let journal = root.join(EPOCHS_DIR);
    if sharded.is_some() || journal.is_dir() {
        logs.push((None, journal));
    }
    let name = |shard: Option<usize>| match shard {
        Some(i) => format!("shard {i}"),
        None => "epoch journal".to_owned(),
    };
    if !ctx.json {
        match &sharded {
            Some(log) => out.line(format_args!(
                "verifying the sharded log in {} (read-only): {} shard{}, epoch {}",
                root.display(),
                log.shard_count(),
                if log.shard_count() == 1 { "" } else { "s" },
                log.epoch()
            ))?,
            None => out.line(format_args!(
                "verifying the sharded log in {} (read-only)",
                root.display()
            ))?,
        }
        if let Some(message) = &open_error {
            print_unopenable(&mut out, "", message)?;
            out.line(format_args!(
                "  the sharded log does not open; verifying the {} log directories found in it",
                logs.len()
            ))?;
        }
        out.flush()?;
    }

    let mut ok = open_error.is_none();
    let mut damaged = Vec::new();
    let mut results = Vec::new();
    let (mut read, mut bytes) = (0u64, 0u64);
    for (shard, dir) in &logs {
        let opened;
        let log = match (shard, &sharded) {
            // The shard as the sharded open found it (opened the same way as one log is).
            (Some(i), Some(s)) => Some(s.shard(*i)?),
            _ => match open(dir)? {
                Ok(log) => {
                    opened = log;
                    Some(&opened)
                }
                Err(message) => {
                    if !ctx.json {
                        out.line("")?;
                        out.line(format_args!("{}: {}", name(*shard), dir.display()))?;
                        print_unopenable(&mut out, "  ", &message)?;
                    }
                    results.push((*shard, dir, unopenable_json(&message)));
                    damaged.push(name(*shard));
                    ok = false;
                    None
                }
            },
        };
        let Some(log) = log else { continue };
        if !ctx.json {
            out.line("")?;
            out.line(format_args!("{}: {}", name(*shard), dir.display()))?;
            out.indented("  ", &log.recovery_report().to_string())?;
            out.flush()?;
        }
        let check = Check::of(log, dir, ctx)?;
        if !ctx.json {
            check.print_read_back(&mut out, "  ")?;
            check.print_verdict(&mut out, "  ", dir)?;
        }
        if shard.is_some() {
            read += check.read;
            bytes += check.bytes;
        }
        if !check.ok {
            ok = false;
            damaged.push(name(*shard));
        }
        results.push((*shard, dir, check.json()));
    }
    let clamped = sharded
        .as_ref()
        .map(|log| log.recovery_report().clamped.clone())
        .unwrap_or_default();
    let open_to_others = Modes::of(root).readable_by_others(root);

    if ctx.json {
        let mut shards = Vec::new();
        let mut epochs = Value::Null;
        for (shard, dir, mut value) in results {
            value["dir"] = json!(dir.display().to_string());
            match shard {
                Some(i) => {
                    value["shard"] = json!(i);
                    shards.push(value);
                }
                None => epochs = value,
            }
        }
        out.json(&json!({
            "ok": ok,
            "root": root.display().to_string(),
            "sharded": true,
            "open_error": open_error,
            "shard_count": sharded.as_ref().map(|log| log.shard_count()),
            "epoch": sharded.as_ref().map(|log| log.epoch()),
            "clamped": clamped
                .iter()
                .map(|(epoch, shards)| json!({"epoch": epoch, "shards": shards}))
                .collect::<Vec<_>>(),
            "records_read": read,
            "bytes_read": bytes,
            "shards": shards,
            "epochs": epochs,
            "readable_by_others": readable_json(&open_to_others),
        }))?;
    } else {
        out.line("")?;
        for (epoch, shards) in &clamped {
            out.line(format_args!(
                "{} epoch {epoch} starts past the end of {} (records a crash took away \
                 before they were durable, or a writer has not written yet): the next open \
                 for writing clamps it and begins a new epoch; not damage",
                out.paint(Style::Yellow, "note:"),
                shard_list(shards)
            ))?;
        }
        warn_readable(&mut out, &open_to_others, root, "sharded log")?;
        let shards = logs.iter().filter(|(shard, _)| shard.is_some()).count();
        if ok {
            out.line(format_args!(
                "{} no damage found in {shards} shard{} and the epoch journal ({} records, {} \
                 read back)",
                out.paint(Style::Green, "OK:"),
                if shards == 1 { "" } else { "s" },
                thousands(read),
                human_bytes(bytes)
            ))?;
        } else {
            let mut what = damaged;
            if open_error.is_some() {
                what.insert(0, "the sharded log does not open".to_owned());
            }
            out.line(format_args!(
                "{} {} (each is shown above)",
                out.paint(Style::Red, "DAMAGED:"),
                what.join(", ")
            ))?;
        }
    }
    out.flush()?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEM)
    })
}

/// The shard directories in `root` (`shard-` and four or more digits), in shard order.
fn shard_dirs(root: &Path) -> anyhow::Result<Vec<(Option<usize>, PathBuf)>> {
    let entries = std::fs::read_dir(root)
        .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", root.display()))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| anyhow::anyhow!("cannot list {}: {e}", root.display()))?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .filter(|d| d.len() >= 4 && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<usize>().ok())
        else {
            continue;
        };
        if entry.path().is_dir() {
            dirs.push((Some(index), entry.path()));
        }
    }
    dirs.sort();
    Ok(dirs)
}
