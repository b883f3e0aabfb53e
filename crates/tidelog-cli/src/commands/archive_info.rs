//! `tidelog archive-info URL`: what an archive holds, from its newest manifest and a listing of
//! the store: the log, the generation holding it, the objects, the gaps, and the readers'
//! leases.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::json;
use tidelog_archive::manifest::{Gap, GapCause, ObjectEntry, ObjectKind, manifest_name};
use tidelog_archive::{ReaderLease, describe};

use super::{open_existing_store, show_age, utc_time};
use crate::output::{Ctx, Style, Table, human_bytes, thousands};

/// The reader TTL `tidelog prune` uses unless told otherwise: older leases hold nothing back.
const DEFAULT_READER_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads the archive's newest manifest and lists the objects under the URL; changes nothing. The
manifests form a chain (manifests/00000000000000000001.json, …): each is written once, as the
next of the one its writer read, and the newest is the archive. Shows the archived log's id,
the newest manifest's sequence number, the writer generation that holds the archive and who
claimed it (host, process and a token unique to the claim: each `tidelog archive` run claims
the next generation, which fences off the writer that held it), each object (its LSN range,
whether it is a complete segment or the tail of the segment that was taking appends, its size
and the times of its first and last batch), the totals, the gaps (LSNs between the archive's
first and last that it cannot restore: a hole between the manifest's objects, or an object it
names that the store does not hold; records below the first LSN that a prune removed are no
gap), the objects the manifest does not name (unreferenced ones, left by an upload whose
manifest write never happened or a replaced tail, never read; and foreign ones, not the
archive's), and the leases of readers in progress (`tidelog follow`, restores): who holds
each, the LSN from which it keeps the records, and when it was last renewed. `tidelog prune`
removes nothing a lease renewed within its --reader-ttl (default 10m) holds. An archive with no manifest is an error (exit code 2).

Times are in UTC (RFC 3339); `tidelog restore --time` takes them as they are printed.

Examples:
  tidelog archive-info s3://backups/wal
  tidelog archive-info file:///mnt/backup/wal --json | jq .last_lsn")]
pub(crate) struct Args {
    /// The store the archive lives in: s3://BUCKET/PREFIX or file:///ABSOLUTE/PATH.
    pub(crate) url: String,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let store = open_existing_store(&args.url)?;
    let description = describe(&store)
        .with_context(|| format!("cannot read the archive at {}", store.location()))?;
    let Some(manifest) = description.manifest else {
        let others =
            description.unreferenced.len() + description.foreign.len() + description.readers.len();
        let found = if others == 0 {
            "the location is empty".to_owned()
        } else {
            format!(
                "{others} other object{} there",
                if others == 1 { "" } else { "s" }
            )
        };
        return Err(anyhow::Error::new(tidelog_archive::Error::NoArchive {
            location: format!(
                "{} (no manifest under manifests/; {found})",
                store.location()
            ),
        }));
    };
    let objects = &manifest.objects;
    let records: u64 = objects.iter().map(records_of).sum();
    let bytes: u64 = objects.iter().map(|o| o.bytes).sum();
    let first_lsn = objects.first().map(|o| o.first_lsn);
    let last_lsn = manifest.last_lsn().get();
    let oldest_ms = objects.iter().filter_map(|o| o.first_ms).min();
    let newest_ms = objects.iter().filter_map(|o| o.last_ms).max();
    let sized = |list: &[(String, u64)]| {
        list.iter()
            .map(|(name, bytes)| json!({"name": name, "bytes": bytes}))
            .collect::<Vec<_>>()
    };
    let now_ms = now_ms();
    let mut readers = description.readers.clone();
    readers.sort_by_key(|r| (r.lsn, std::cmp::Reverse(r.updated_ms)));
    let mut out = ctx.out();
    if ctx.json {
        let leases: Vec<_> = readers
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "holder": r.holder,
                    "lsn": r.lsn,
                    "updated_ms": r.updated_ms,
                    "updated": utc_time(r.updated_ms),
                    "age_seconds": age(r, now_ms).as_secs_f64(),
                })
            })
            .collect();
        let entries: Vec<_> = objects
            .iter()
            .map(|o| {
                json!({
                    "name": o.name,
                    "first_lsn": o.first_lsn,
                    "last_lsn": o.last_lsn,
                    "records": records_of(o),
                    "kind": kind(o),
                    "bytes": o.bytes,
                    "crc32c": format!("{:08x}", o.crc32c),
                    "generation": o.generation,
                    "first_ms": o.first_ms,
                    "last_ms": o.last_ms,
                    "first_time": o.first_ms.map(utc_time),
                    "last_time": o.last_ms.map(utc_time),
                })
            })
            .collect();
        let gaps: Vec<_> = description
            .gaps
            .iter()
            .map(|g| {
                json!({
                    "first_lsn": g.first.get(),
                    "last_lsn": g.last.get(),
                    "records": gap_records(g),
                    "cause": cause(g),
                    "object": match &g.cause {
                        GapCause::MissingObject(name) => Some(name.as_str()),
                        _ => None,
                    },
                })
            })
            .collect();
        out.json(&json!({
            "location": store.location(),
            "log_id": manifest.log_id,
            "format": manifest.format,
            "seq": manifest.seq,
            "manifest": manifest_name(manifest.seq),
            "generation": manifest.generation,
            "holder": manifest.holder,
            "first_lsn": first_lsn,
            "last_lsn": last_lsn,
            "objects": entries,
            "gaps": gaps,
            "totals": {
                "objects": objects.len(),
                "bytes": bytes,
                "records": records,
            },
            "oldest_batch_ms": oldest_ms,
            "newest_batch_ms": newest_ms,
            "oldest_batch": oldest_ms.map(utc_time),
            "newest_batch": newest_ms.map(utc_time),
            "unreferenced": sized(&description.unreferenced),
            "foreign": sized(&description.foreign),
            "readers": leases,
        }))?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }

    let segs = objects.iter().filter(|o| o.kind == ObjectKind::Seg).count();
    let tails = objects.len() - segs;
    let range = match first_lsn {
        Some(first) if records > 0 => format!("{} (LSN {first}..={last_lsn})", thousands(records)),
        _ => "none".to_owned(),
    };
    let batches = match (oldest_ms, newest_ms) {
        (Some(oldest), Some(newest)) => format!("{} .. {}", utc_time(oldest), utc_time(newest)),
        _ => "not stamped (a log of format version 1)".to_owned(),
    };
    let rows = [
        ("archive", store.location().to_owned()),
        ("log id", manifest.log_id.clone()),
        (
            "manifest",
            format!(
                "{} ({}, the newest of the chain)",
                manifest.seq,
                manifest_name(manifest.seq)
            ),
        ),
        (
            "generation",
            if manifest.holder.is_empty() {
                format!("{} (claimed by no writer)", manifest.generation)
            } else {
                format!("{}, held by {}", manifest.generation, manifest.holder)
            },
        ),
        ("records", range),
        (
            "objects",
            format!(
                "{} ({segs} segment{}, {tails} tail{}), {}",
                objects.len(),
                if segs == 1 { "" } else { "s" },
                if tails == 1 { "" } else { "s" },
                human_bytes(bytes)
            ),
        ),
        ("batches", batches),
        (
            "newest",
            newest_ms.map_or_else(
                || "unknown".to_owned(),
                |ms| format!("{} (the last archived batch)", utc_time(ms)),
            ),
        ),
        // Last, so that the ranges listed below it follow it.
        ("gaps", gap_summary(&description.gaps)),
    ];
    for (name, value) in rows {
        let style = if name == "gaps" && !description.gaps.is_empty() {
            Style::Red
        } else {
            Style::Bold
        };
        out.line(format_args!("{:<12} {value}", out.paint(style, name)))?;
    }
    for g in &description.gaps {
        let why = match &g.cause {
            GapCause::MissingObject(name) => {
                format!("the manifest names {name}, which the store does not hold")
            }
            _ => "no object of the manifest holds them".to_owned(),
        };
        out.line(format_args!(
            "  LSN {}..={} ({} record{}): {why}",
            g.first,
            g.last,
            thousands(gap_records(g)),
            if gap_records(g) == 1 { "" } else { "s" }
        ))?;
    }
    out.line("")?;
    let mut table = Table::new(&[
        ">first LSN",
        ">last LSN",
        "kind",
        ">bytes",
        "first batch",
        "last batch",
        "object",
    ]);
    for o in objects {
        table.row(vec![
            o.first_lsn.to_string(),
            o.last_lsn.to_string(),
            kind(o).to_owned(),
            o.bytes.to_string(),
            o.first_ms.map_or_else(|| "-".to_owned(), utc_time),
            o.last_ms.map_or_else(|| "-".to_owned(), utc_time),
            o.name.clone(),
        ]);
    }
    for line in table.lines() {
        out.line(line)?;
    }
    out.line("")?;
    for (what, list, why) in [
        (
            "unreferenced",
            &description.unreferenced,
            "named by no manifest, never read",
        ),
        ("foreign", &description.foreign, "not the archive's"),
    ] {
        if list.is_empty() {
            out.line(format_args!("{what}: none"))?;
            continue;
        }
        let total: u64 = list.iter().map(|(_, b)| b).sum();
        out.line(format_args!(
            "{}: {} object{} ({}; {why})",
            out.paint(Style::Yellow, what),
            list.len(),
            if list.len() == 1 { "" } else { "s" },
            human_bytes(total)
        ))?;
        for (name, bytes) in list {
            out.line(format_args!("  {name} ({bytes} bytes)"))?;
        }
    }
    if readers.is_empty() {
        out.line("readers: none")?;
    } else {
        out.line(format_args!(
            "{}: {} lease{} (prune removes nothing from a lease's LSN on while it is renewed \
             within --reader-ttl, default {})",
            out.paint(Style::Yellow, "readers"),
            readers.len(),
            if readers.len() == 1 { "" } else { "s" },
            show_age(DEFAULT_READER_TTL)
        ))?;
        let mut table = Table::new(&[">LSN", "renewed", "holder", "lease"]);
        for r in &readers {
            let age = age(r, now_ms);
            let stale = if age > DEFAULT_READER_TTL {
                " (stale)"
            } else {
                ""
            };
            table.row(vec![
                r.lsn.to_string(),
                format!("{} ago{stale}", show_age(age)),
                r.holder.clone(),
                r.name.clone(),
            ]);
        }
        for line in table.lines() {
            out.line(format_args!("  {line}"))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The time now, in milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long ago a lease was renewed (zero for one renewed by a clock ahead of this one).
fn age(lease: &ReaderLease, now_ms: u64) -> Duration {
    Duration::from_millis(now_ms.saturating_sub(lease.updated_ms))
}

/// The records an object holds.
fn records_of(o: &ObjectEntry) -> u64 {
    (o.last_lsn + 1).saturating_sub(o.first_lsn)
}

/// The records a gap misses.
fn gap_records(g: &Gap) -> u64 {
    (g.last.get() + 1).saturating_sub(g.first.get())
}

/// Why a gap misses its records, in a word or two (as `--json` gives it).
fn cause(g: &Gap) -> &'static str {
    match g.cause {
        GapCause::Hole => "hole",
        GapCause::MissingObject(_) => "missing object",
        _ => "unknown",
    }
}

/// The `gaps` row: none, or how many and the records they miss.
fn gap_summary(gaps: &[Gap]) -> String {
    if gaps.is_empty() {
        return "none (a restore reads the archive through)".to_owned();
    }
    let records: u64 = gaps.iter().map(gap_records).sum();
    format!(
        "{} ({} record{} the archive cannot restore; a restore across them is refused)",
        gaps.len(),
        thousands(records),
        if records == 1 { "" } else { "s" }
    )
}

/// `seg` or `tail`.
fn kind(o: &ObjectEntry) -> &'static str {
    match o.kind {
        ObjectKind::Seg => "seg",
        ObjectKind::Tail => "tail",
    }
}
