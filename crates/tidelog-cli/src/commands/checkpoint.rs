//! `tidelog checkpoint DIR LSN`: records below LSN are no longer needed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;
use tidelog::Lsn;

use super::{open_for_writing, parse_lsn};
use crate::output::Ctx;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The checkpoint is persisted crash-safely (after the records below it are made durable), then
every segment file holding only records below it is removed. Checkpoints only move forward: a
lower LSN changes nothing. Needs the log not to be open for writing elsewhere.

Examples:
  tidelog checkpoint ./wal 1000      # records 1..=999 may go
  tidelog info ./wal                 # the checkpoint and the segments left")]
pub(crate) struct Args {
    /// The log directory.
    pub(crate) dir: PathBuf,

    /// Records below this LSN are no longer needed.
    #[arg(value_parser = parse_lsn)]
    pub(crate) lsn: Lsn,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let log = open_for_writing(&args.dir, false)?;
    let before = log.checkpoint_lsn();
    let segments_before = log.segments();
    log.checkpoint(args.lsn)
        .with_context(|| format!("cannot checkpoint at LSN {}", args.lsn))?;
    let after = log.checkpoint_lsn();
    let segments_after = log.segments();
    log.close().context("cannot close the log")?;
    let removed: Vec<String> = segments_before
        .iter()
        .filter(|s| !segments_after.iter().any(|a| a.path == s.path))
        .map(|s| s.path.display().to_string())
        .collect();

    let mut out = ctx.out();
    if ctx.json {
        out.json(&json!({
            "checkpoint_lsn_before": before.get(),
            "checkpoint_lsn": after.get(),
            "removed_segments": removed,
            "segments_left": segments_after.len(),
        }))?;
    } else if after == before {
        out.line(format_args!(
            "the checkpoint is already at LSN {before}; nothing changed"
        ))?;
    } else {
        out.line(format_args!(
            "checkpoint moved from LSN {before} to LSN {after}: records below {after} are no longer readable"
        ))?;
        if removed.is_empty() {
            out.line(format_args!(
                "no segment removed (each still holds records at or above LSN {after}); {} left",
                segments_after.len()
            ))?;
        } else {
            out.line(format_args!(
                "removed {} segment file{}, {} left:",
                removed.len(),
                if removed.len() == 1 { "" } else { "s" },
                segments_after.len()
            ))?;
            for path in &removed {
                out.line(format_args!("  {path}"))?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
