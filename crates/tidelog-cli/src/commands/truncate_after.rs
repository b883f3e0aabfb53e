//! `tidelog truncate-after DIR LSN`: durably discard every record after LSN.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;
use tidelog::Lsn;

use super::{open_for_writing, parse_lsn};
use crate::output::Ctx;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
A rollback, as after a Raft conflict: the records after LSN are removed durably and the next
append gets LSN + 1. A batch cut in the middle keeps its records up to LSN. An LSN at or past
the last record changes nothing. Needs the log not to be open for writing elsewhere.

Examples:
  tidelog truncate-after ./wal 41    # keep 1..=41, drop the rest
  tidelog truncate-after ./wal 0     # drop every record (of a log never checkpointed)")]
pub(crate) struct Args {
    /// The log directory.
    pub(crate) dir: PathBuf,

    /// The last LSN to keep.
    #[arg(value_parser = parse_lsn)]
    pub(crate) lsn: Lsn,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let log = open_for_writing(&args.dir, false)?;
    let before = log.last_lsn();
    let segments_before = log.segments().len();
    log.truncate_after(args.lsn)
        .with_context(|| format!("cannot truncate after LSN {}", args.lsn))?;
    let after = log.last_lsn();
    let segments_after = log.segments().len();
    log.close().context("cannot close the log")?;
    let dropped = before.get().saturating_sub(after.get());

    let mut out = ctx.out();
    if ctx.json {
        out.json(&json!({
            "last_lsn_before": before.get(),
            "last_lsn": after.get(),
            "records_dropped": dropped,
            "segments_removed": segments_before.saturating_sub(segments_after),
        }))?;
    } else if dropped == 0 {
        out.line(format_args!(
            "no record after LSN {} (the last LSN is {before}); nothing changed",
            args.lsn
        ))?;
    } else {
        out.line(format_args!(
            "dropped LSN {}..={before} ({dropped} record{}, {} segment file{} removed); the last LSN is now {after}",
            after.next(),
            if dropped == 1 { "" } else { "s" },
            segments_before.saturating_sub(segments_after),
            if segments_before.saturating_sub(segments_after) == 1 { "" } else { "s" },
        ))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
