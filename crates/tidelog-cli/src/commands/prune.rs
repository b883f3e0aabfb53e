//! `tidelog prune URL (--below LSN | --older-than AGE)`: an archive's oldest objects removed,
//! never one a reader in progress needs.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tidelog::Lsn;
use tidelog_archive::{PruneOptions, PruneTarget, prune};

use super::{open_existing_store, parse_age, parse_lsn, show_age};
use crate::output::{Ctx, Style, human_bytes, thousands};

#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("target").required(true).args(["below", "older_than"])),
    after_help = "\
Removes an archive's oldest objects: with --below, every object whose records are all below
LSN; with --older-than, every object whose newest batch is older than AGE (by this host's
clock; objects of a log whose records carry no time never are). Give exactly one of the two.
The archive's newest object is never removed, so an archive always says where it ends.

Prune first writes the manifest without the objects it removes, as the next manifest of the
chain, then deletes them: a restore or a follower that starts afterwards never looks for them.
Readers in progress keep a lease under readers/ at the URL (`tidelog follow`, `tidelog
restore`, and the library's followers, standbys and restores): nothing is removed from the lowest LSN a
lease holds on, if it was renewed within --reader-ttl (at least 3m). Readers renew their leases
every minute;
a lease older than the TTL is of a reader that stopped or stalled, and holds nothing back.
`tidelog archive-info` shows the leases. A later restore starts at the archive's new first LSN.

Prune can run while the log is archived: if the archiver writes a manifest at the same moment,
prune writes its own again on top of it. The manifest is written with a conditional put, as the
archiver's are; --no-fencing writes it without, for a store that cannot do conditional puts
(whose archiver runs with --no-fencing too).

Ages are a number and a unit (90s, 15m, 12h, 7d, 2w), or several (1h 30m).

Examples:
  tidelog prune s3://backups/wal --older-than 7d
  tidelog prune s3://backups/wal --below 120000 --json
  tidelog prune file:///mnt/backup/wal --older-than 12h --reader-ttl 30m"
)]
pub(crate) struct Args {
    /// The store the archive lives in: s3://BUCKET/PREFIX or file:///ABSOLUTE/PATH.
    pub(crate) url: String,

    /// Remove every object whose records are all below this LSN.
    #[arg(long, value_name = "LSN", value_parser = parse_lsn)]
    pub(crate) below: Option<Lsn>,

    /// Remove every object whose newest batch is older than this: 90s, 15m, 12h, 7d.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub(crate) older_than: Option<Duration>,

    /// A reader's lease not renewed for this long holds nothing back.
    #[arg(long, value_name = "AGE", value_parser = parse_age, default_value = "10m")]
    pub(crate) reader_ttl: Duration,

    /// Write the manifest without a conditional put (for a store that cannot do them).
    #[arg(long)]
    pub(crate) no_fencing: bool,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let target = match (args.below, args.older_than) {
        (Some(lsn), _) => PruneTarget::Below(lsn),
        (None, Some(age)) => PruneTarget::OlderThan(age),
        // clap requires one of the two.
        (None, None) => anyhow::bail!("give --below LSN or --older-than AGE"),
    };
    let store = open_existing_store(&args.url)?;
    let options = PruneOptions::new(target)
        .reader_ttl(args.reader_ttl)
        .fencing(!args.no_fencing);
    let report =
        prune(&store, &options).with_context(|| format!("cannot prune {}", store.location()))?;
    let target_text = match target {
        PruneTarget::Below(lsn) => format!("below LSN {lsn}"),
        PruneTarget::OlderThan(age) => format!("older than {}", show_age(age)),
    };
    let mut out = ctx.out();
    if ctx.json {
        out.json(&json!({
            "location": store.location(),
            "target": target_text,
            "below": args.below.map(Lsn::get),
            "older_than_seconds": args.older_than.map(|d| d.as_secs_f64()),
            "reader_ttl_seconds": args.reader_ttl.as_secs_f64(),
            "fencing": !args.no_fencing,
            "removed": report.removed,
            "removed_bytes": report.removed_bytes,
            "kept_for_readers": report.kept_for_readers,
            "first_lsn": report.first_lsn.get(),
            "reader_lsn": report.reader_lsn.map(Lsn::get),
        }))?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    if report.removed == 0 {
        out.line(format_args!(
            "nothing removed from {} ({target_text}): the archive starts at LSN {}",
            store.location(),
            report.first_lsn
        ))?;
    } else {
        out.line(format_args!(
            "{} {} object{} ({}) from {} ({target_text}): the archive starts at LSN {} now",
            out.paint(Style::Green, "removed"),
            thousands(report.removed as u64),
            if report.removed == 1 { "" } else { "s" },
            human_bytes(report.removed_bytes),
            store.location(),
            report.first_lsn
        ))?;
    }
    if let Some(reader) = report.reader_lsn {
        // Whether the lease kept back something the target would have removed (known for an
        // LSN target; for an age, only through the objects kept).
        let held_back = matches!(target, PruneTarget::Below(lsn) if reader < lsn)
            || report.kept_for_readers > 0;
        let label = if held_back {
            out.paint(Style::Yellow, "held back")
        } else {
            "reader".to_owned()
        };
        out.line(format_args!(
            "  {label}: a reader's lease, renewed within {}, holds LSN {reader}: nothing from \
             the object holding it on is removed while it does",
            show_age(args.reader_ttl)
        ))?;
    }
    if report.kept_for_readers > 0 {
        out.line(format_args!(
            "  {} object{} the manifest no longer names kept for readers in progress; a later \
             prune removes {}",
            report.kept_for_readers,
            if report.kept_for_readers == 1 {
                ""
            } else {
                "s"
            },
            if report.kept_for_readers == 1 {
                "it"
            } else {
                "them"
            }
        ))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
