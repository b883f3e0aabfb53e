//! `tidelog archive DIR URL [--once] [--interval SECS]`: the log's segments uploaded to an
//! object store (S3 and compatible, or a local directory), once or every few seconds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use tidelog::Log;
use tidelog_archive::{ArchiveOptions, Archiver, Store, describe};

use super::{open_for_writing, open_store, parse_seconds};
use crate::output::{Ctx, Out, human_bytes, human_duration, note, thousands};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Opens the log for writing, so no other process may have it open: archive a log while its
writer is stopped, or between its runs. Every record that is durable is uploaded: each sealed
segment whole, and the durable part of the segment taking appends as a tail object that a later
run replaces. The archive's manifest (manifest.json under the URL) is written after each upload
and is its commit point, so an interrupted run leaves a consistent archive, and the next run
goes on from it.

While a log is archived, its retention floor is set to the first LSN not archived yet: local
checkpoints keep every segment from there on, so nothing is removed before it is in the store
(`tidelog info` shows the floor).

With --once, archives what is durable and exits. Without it, keeps going: every --interval
seconds it opens the log if no other process has it (if one has, it says so once and tries
again at the next interval), archives what is new and closes the log, until interrupted
(Ctrl-C); an upload that fails is tried again at the next interval too. While a pass runs
(briefly: it uploads only what is new), the log's own writer cannot open the log.

Store URLs:
  s3://BUCKET/PREFIX        S3 or S3-compatible; credentials, region and endpoint from
                            AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
                            AWS_ENDPOINT (and AWS_ALLOW_HTTP=true for a plain-HTTP endpoint)
  file:///ABSOLUTE/PATH     a local directory (created if missing)

Examples:
  tidelog archive ./wal s3://backups/wal --once
  tidelog archive ./wal file:///mnt/backup/wal --once --json
  tidelog archive ./wal s3://backups/wal --interval 30   # until interrupted")]
pub(crate) struct Args {
    /// The log directory (opened for writing: no other process may have it open).
    pub(crate) dir: PathBuf,

    /// The store the archive lives in: s3://BUCKET/PREFIX or file:///ABSOLUTE/PATH.
    pub(crate) url: String,

    /// Archive what is durable now, then exit.
    #[arg(long)]
    pub(crate) once: bool,

    /// Without --once: seconds between two runs (each opens the log, archives what is new and
    /// closes it).
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        value_parser = parse_seconds,
        conflicts_with = "once"
    )]
    pub(crate) interval: Duration,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    if args.once {
        let log = open_for_writing(&args.dir, false)?;
        let store = open_store(&args.url)?;
        let pass = archive_once(log, &store)?;
        pass.print(&mut out, ctx.json, &args.dir, &store, true)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let store = open_store(&args.url)?;
    let mut said_locked = false;
    let mut first = true;
    loop {
        match open_for_writing(&args.dir, false) {
            Ok(log) => {
                said_locked = false;
                match archive_once(log, &store) {
                    Ok(pass) => {
                        if first || pass.uploads > 0 {
                            pass.print(&mut out, ctx.json, &args.dir, &store, first)?;
                            out.flush()?;
                        }
                        first = false;
                    }
                    Err(e) if is_transient(&e) => note(format_args!(
                        "{}; trying again in {}",
                        crate::output::chain(&e),
                        seconds(args.interval)
                    )),
                    Err(e) => return Err(e),
                }
            }
            Err(e) if is_locked(&e) => {
                if !said_locked {
                    note(format_args!(
                        "another process has the log in {} open for writing; trying again \
                         every {} until it is free",
                        args.dir.display(),
                        seconds(args.interval)
                    ));
                    said_locked = true;
                }
            }
            Err(e) => return Err(e),
        }
        std::thread::sleep(args.interval);
    }
}

/// What one pass of the archiver did.
struct Pass {
    /// Every record up to here is in the store.
    archived_lsn: u64,
    /// The log's first readable record and its last, when the pass ran.
    checkpoint_lsn: u64,
    last_lsn: u64,
    /// The generation this pass wrote under.
    generation: u64,
    /// Objects this pass uploaded (or found already there) and named in the manifest.
    uploads: u64,
    /// Their bytes.
    bytes: u64,
    /// The objects and bytes the archive holds in all.
    total_objects: usize,
    total_bytes: u64,
    /// The retention floor the pass left on the log.
    retention_floor: Option<u64>,
    elapsed: Duration,
}

/// Starts an archiver on `log`, stops it at once (which uploads everything durable), closes the
/// log and reads back the manifest.
fn archive_once(log: Log, store: &Store) -> anyhow::Result<Pass> {
    let started = Instant::now();
    let log = Arc::new(log);
    let archiver = Archiver::start(Arc::clone(&log), store.clone(), ArchiveOptions::default())
        .with_context(|| format!("cannot start archiving to {}", store.location()))?;
    let at_start = archiver.status();
    // Stopping uploads what is durable (sealed segments, then the tail), and gives up after a
    // few failed attempts at any one store operation.
    archiver
        .stop()
        .with_context(|| format!("cannot archive to {}", store.location()))?;
    let (checkpoint_lsn, last_lsn) = (log.checkpoint_lsn().get(), log.last_lsn().get());
    let retention_floor = log.retention_floor().map(|f| f.get());
    match Arc::try_unwrap(log) {
        Ok(log) => log.close().context("cannot close the log")?,
        Err(log) => drop(log),
    }
    let description = describe(store)
        .with_context(|| format!("cannot read the archive back from {}", store.location()))?;
    let manifest = description.manifest.with_context(|| {
        format!(
            "no manifest at {} after archiving (the log holds no record?)",
            store.location()
        )
    });
    let (archived_lsn, generation, mine, total_objects, total_bytes) = match manifest {
        Ok(m) => {
            let mine: Vec<_> = m
                .objects
                .iter()
                .filter(|o| o.generation == at_start.generation)
                .collect();
            (
                m.last_lsn().get(),
                m.generation,
                (mine.len() as u64, mine.iter().map(|o| o.bytes).sum::<u64>()),
                m.objects.len(),
                m.objects.iter().map(|o| o.bytes).sum(),
            )
        }
        // An empty log: nothing to upload, so no manifest was written.
        Err(_) if last_lsn < checkpoint_lsn => (0, at_start.generation, (0, 0), 0, 0),
        Err(e) => return Err(e),
    };
    Ok(Pass {
        archived_lsn,
        checkpoint_lsn,
        last_lsn,
        generation,
        uploads: mine.0,
        bytes: mine.1,
        total_objects,
        total_bytes,
        retention_floor,
        elapsed: started.elapsed(),
    })
}

impl Pass {
    fn print(
        &self,
        out: &mut Out,
        json: bool,
        dir: &Path,
        store: &Store,
        full: bool,
    ) -> anyhow::Result<()> {
        if json {
            return out.json(&json!({
                "dir": dir.display().to_string(),
                "location": store.location(),
                "archived_lsn": self.archived_lsn,
                "last_lsn": self.last_lsn,
                "checkpoint_lsn": self.checkpoint_lsn,
                "generation": self.generation,
                "objects_uploaded": self.uploads,
                "bytes_uploaded": self.bytes,
                "objects": self.total_objects,
                "bytes": self.total_bytes,
                "retention_floor": self.retention_floor,
                "seconds": self.elapsed.as_secs_f64(),
            }));
        }
        if self.archived_lsn == 0 {
            return out.line(format_args!(
                "the log in {} holds no record yet: nothing to archive",
                dir.display()
            ));
        }
        let whole = if self.archived_lsn >= self.last_lsn {
            " (the log's last record)"
        } else {
            ""
        };
        out.line(format_args!(
            "archived {} up to LSN {}{whole} to {}",
            dir.display(),
            self.archived_lsn,
            store.location()
        ))?;
        out.line(format_args!(
            "  uploaded {} object{} ({}) in {}, as generation {}",
            thousands(self.uploads),
            if self.uploads == 1 { "" } else { "s" },
            human_bytes(self.bytes),
            human_duration(self.elapsed),
            self.generation
        ))?;
        if full {
            out.line(format_args!(
                "  the archive holds {} object{} ({})",
                thousands(self.total_objects as u64),
                if self.total_objects == 1 { "" } else { "s" },
                human_bytes(self.total_bytes)
            ))?;
            if let Some(floor) = self.retention_floor {
                out.line(format_args!(
                    "  retention floor LSN {floor}: checkpoints keep every segment from it on \
                     until it is archived"
                ))?;
            }
        }
        Ok(())
    }
}

/// An interval as people write it: `0.5 s`, `10 s`.
fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Whether opening the log failed because another process has it open for writing.
fn is_locked(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        matches!(
            e.downcast_ref::<tidelog::Error>(),
            Some(tidelog::Error::Locked { .. })
        )
    })
}

/// Whether an archiving pass failed in a way the next pass may not: the store failed.
fn is_transient(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        matches!(
            e.downcast_ref::<tidelog_archive::Error>(),
            Some(tidelog_archive::Error::Store { .. })
        )
    })
}
