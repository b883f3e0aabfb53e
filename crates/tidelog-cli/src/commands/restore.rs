//! `tidelog restore URL DIR [--lsn N | --time T]`: a log rebuilt from its archive.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::json;
use tidelog::Lsn;
use tidelog_archive::{Target, restore_with_progress};

use super::{open_existing_store, parse_lsn, parse_time, utc_time};
use crate::output::{Ctx, Style, human_bytes, human_duration, thousands};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads the archive's manifest, then each object it needs in LSN order, checking each against
the checksum the manifest names and then frame by frame, and refuses an archive with a gap.
The log is built in a temporary directory beside DIR and renamed into place only once it is
whole and cut at the target, so a failed or interrupted restore leaves nothing under DIR. DIR
must not exist, or be empty. While it reads, it holds a reader's lease under readers/ at the
URL, so that `tidelog prune` removes nothing it needs; the lease goes when it is done.

Targets:
  (none)       every archived record
  --lsn N      every record up to and including LSN N
  --time T     every batch appended at or before T, and none after: RFC 3339 in UTC
               (2026-12-02T09:00:00Z, 2026-12-02 09:00:00.250) or milliseconds since the Unix
               epoch (1796202000000)

A progress bar of the bytes read is drawn when standard error is a terminal (not with --json).
Store URLs are those of `tidelog archive`.

Examples:
  tidelog restore s3://backups/wal ./wal-restored
  tidelog restore s3://backups/wal ./wal-restored --lsn 120000
  tidelog restore file:///mnt/backup/wal ./wal-restored --time 2026-12-02T09:00:00Z
  tidelog verify ./wal-restored")]
pub(crate) struct Args {
    /// The store the archive lives in: s3://BUCKET/PREFIX or file:///ABSOLUTE/PATH.
    pub(crate) url: String,

    /// The directory to restore into (must not exist, or be empty).
    pub(crate) dir: PathBuf,

    /// Restore every record up to and including this LSN.
    #[arg(long, value_name = "N", value_parser = parse_lsn, conflicts_with = "time")]
    pub(crate) lsn: Option<Lsn>,

    /// Restore every batch appended at or before this time: RFC 3339 in UTC
    /// (2026-12-02T09:00:00Z) or milliseconds since the Unix epoch.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub(crate) time: Option<SystemTime>,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let store = open_existing_store(&args.url)?;
    let target = match (args.lsn, args.time) {
        (Some(lsn), _) => Target::Lsn(lsn),
        (None, Some(time)) => Target::Time(time),
        (None, None) => Target::Latest,
    };
    let bar = ctx.bytes_bar("restore");
    let started = Instant::now();
    let report = restore_with_progress(&store, &args.dir, target, |p| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes);
        bar.set_message(format!("object {}/{}", p.objects, p.objects_total));
    });
    bar.finish_and_clear();
    let report = report.with_context(|| {
        format!(
            "cannot restore {} into {}",
            store.location(),
            args.dir.display()
        )
    })?;
    let elapsed = started.elapsed();
    let records = (report.last_lsn.get() + 1).saturating_sub(report.first_lsn.get());
    let target_ms = args.time.map(|t| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    });
    let target_text = match (target, target_ms) {
        (Target::Lsn(lsn), _) => format!("LSN {lsn}"),
        (Target::Time(_), Some(ms)) => utc_time(ms),
        _ => "latest".to_owned(),
    };
    let mut out = ctx.out();
    if ctx.json {
        out.json(&json!({
            "dir": report.dir.display().to_string(),
            "location": store.location(),
            "log_id": format!("{:032x}", report.log_id),
            "target": target_text,
            "target_lsn": args.lsn.map(Lsn::get),
            "target_ms": target_ms,
            "first_lsn": report.first_lsn.get(),
            "last_lsn": report.last_lsn.get(),
            "records": records,
            "objects": report.objects,
            "bytes": report.bytes,
            "seconds": elapsed.as_secs_f64(),
        }))?;
    } else {
        let range = if records == 0 {
            format!(
                "no record (the next append gets LSN {})",
                report.last_lsn.next()
            )
        } else {
            format!(
                "LSN {}..={} ({} record{})",
                report.first_lsn,
                report.last_lsn,
                thousands(records),
                if records == 1 { "" } else { "s" }
            )
        };
        out.line(format_args!(
            "{} {range} into {}",
            out.paint(Style::Green, "restored"),
            report.dir.display()
        ))?;
        out.line(format_args!(
            "  from {}, target {target_text}: {} object{} ({}) read in {}",
            store.location(),
            report.objects,
            if report.objects == 1 { "" } else { "s" },
            human_bytes(report.bytes),
            human_duration(elapsed)
        ))?;
        out.line(format_args!(
            "  log id {:032x}; the next append gets LSN {}",
            report.log_id,
            report.last_lsn.next()
        ))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
