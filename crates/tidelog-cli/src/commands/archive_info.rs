//! `tidelog archive-info URL`: what an archive holds, from its manifest and a listing of the
//! store.

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;
use tidelog_archive::describe;
use tidelog_archive::manifest::{ObjectEntry, ObjectKind};

use super::{open_existing_store, utc_time};
use crate::output::{Ctx, Style, Table, human_bytes, thousands};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads the archive's manifest and lists the objects under the URL; changes nothing. Shows the
archived log's id, the generation of the last archiver that wrote the manifest, each object
(its LSN range, whether it is a complete segment or the tail of the segment that was taking
appends, its size and the times of its first and last batch), the totals, and the objects the
manifest does not name: unreferenced ones (left by an upload whose manifest write never
happened, or a replaced tail; never read) and foreign ones (not the archive's). An archive with
no manifest is an error (exit code 2).

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
        let others = description.unreferenced.len() + description.foreign.len();
        let found = if others == 0 {
            "the location is empty".to_owned()
        } else {
            format!(
                "{others} other object{} there",
                if others == 1 { "" } else { "s" }
            )
        };
        return Err(anyhow::Error::new(tidelog_archive::Error::NoArchive {
            location: format!("{} (no manifest.json; {found})", store.location()),
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
    let mut out = ctx.out();
    if ctx.json {
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
        out.json(&json!({
            "location": store.location(),
            "log_id": manifest.log_id,
            "format": manifest.format,
            "generation": manifest.generation,
            "first_lsn": first_lsn,
            "last_lsn": last_lsn,
            "objects": entries,
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
            "generation",
            format!(
                "{} (of the last archiver that wrote the manifest)",
                manifest.generation
            ),
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
    ];
    for (name, value) in rows {
        out.line(format_args!("{:<12} {value}", out.paint(Style::Bold, name)))?;
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
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The records an object holds.
fn records_of(o: &ObjectEntry) -> u64 {
    (o.last_lsn + 1).saturating_sub(o.first_lsn)
}

/// `seg` or `tail`.
fn kind(o: &ObjectEntry) -> &'static str {
    match o.kind {
        ObjectKind::Seg => "seg",
        ObjectKind::Tail => "tail",
    }
}
