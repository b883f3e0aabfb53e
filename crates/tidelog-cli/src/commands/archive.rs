//! `tidelog archive DIR URL [--once] [--interval SECS] [--fast-forward] [--no-fencing]`: the
//! log's segments uploaded to an object store (S3 and compatible, or a local directory), once
//! or every few seconds, by the archive's one writer.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use tidelog::Log;
use tidelog_archive::{ArchiveOptions, Archiver, FastForward, Store, describe, fast_forward};

use super::{open_for_writing, open_store, parse_seconds};
use crate::output::{Ctx, Out, Style, human_bytes, human_duration, note, thousands};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Opens the log for writing, so no other process may have it open: archive a log while its
writer is stopped, or between its runs. Every record that is durable is uploaded: each sealed
segment whole, and the durable part of the segment taking appends as a tail object that a later
run replaces. After each upload the archive's next manifest is written (manifests/SEQUENCE.json
under the URL: a chain of manifests, each written once, whose newest is the archive); it is the
commit point, so an interrupted run leaves a consistent archive, and the next run goes on from
it.

One writer per archive (fencing): each run (without --once, each pass) first checks that the
archive's records are the log's, then claims the archive's next generation by writing the next
manifest with a conditional put. A writer that held the archive before is fenced off: it stops
at its next manifest write, its log unchanged. `tidelog archive-info` shows the generation and
who holds it. A store that cannot do conditional puts is refused, unless --no-fencing is given:
then nothing keeps a second writer out, so run one writer at a time.

With --fast-forward, the records the archive holds past the log's last are first appended to
the log, batch by batch (an older copy of the log, such as a restore, catches up), then it is
archived as usual; the records pulled are reported.

A start that is refused exits with code 2, and the hint under the error says what to do:
  diverged     the archive holds other records than the log at the same LSNs (two logs from
               one restored base, both written since): nothing is merged; restore the archive
               into a new directory and use that log (`tidelog restore URL NEW_DIR`), or
               archive the log to a new location (another prefix)
  fenced       another writer claimed the archive (at the start, or while this one ran): the
               same two ways out; the log is unchanged and usable
  ahead        the archive holds records past the log's last (the log is an older copy):
               --fast-forward pulls them into the log first
  unfenceable  the store cannot do conditional puts: --no-fencing, one writer at a time

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
  tidelog archive ./wal s3://backups/wal --interval 30   # until interrupted
  tidelog archive ./wal-copy s3://backups/wal --once --fast-forward   # an older copy catches up
  tidelog archive ./wal s3://backups/wal --once --no-fencing   # a store without conditional puts")]
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

    /// Before archiving, append to the log the records the archive holds past its last one
    /// (for an older copy of the log, such as a restore).
    #[arg(long)]
    pub(crate) fast_forward: bool,

    /// Archive without fencing, to a store that cannot do conditional puts: nothing keeps a
    /// second writer out, so run one writer at a time.
    #[arg(long)]
    pub(crate) no_fencing: bool,
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut out = ctx.out();
    if args.once {
        let log = open_for_writing(&args.dir, false)?;
        let store = open_store(&args.url)?;
        let pass = archive_once(log, &store, &args)?;
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
                match archive_once(log, &store, &args) {
                    Ok(pass) => {
                        let pulled = pass.pulled.is_some_and(|p| p.records > 0);
                        if first || pass.uploads > 0 || pulled {
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
    /// The generation this pass wrote under, and who it claimed it as.
    generation: u64,
    holder: String,
    /// Whether the pass kept other writers out.
    fencing: bool,
    /// What the fast-forward before the pass pulled, if one was asked for.
    pulled: Option<FastForward>,
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

/// Fast-forwards `log` if asked, starts an archiver on it, stops it at once (which uploads
/// everything durable), closes the log and reads back the manifest.
fn archive_once(log: Log, store: &Store, args: &Args) -> anyhow::Result<Pass> {
    let started = Instant::now();
    let stuck = |phase, error| Stuck::wrap(error, phase, &args.dir, store);
    let pulled = if args.fast_forward {
        match fast_forward(&log, store) {
            Ok(pulled) => Some(pulled),
            // A new archive: nothing to pull, and this pass starts it.
            Err(tidelog_archive::Error::NoArchive { .. }) => Some(FastForward::default()),
            Err(e) => return Err(stuck(Phase::FastForward, e)),
        }
    } else {
        None
    };
    let log = Arc::new(log);
    let options = ArchiveOptions::default().fencing(!args.no_fencing);
    let archiver = Archiver::start(Arc::clone(&log), store.clone(), options)
        .map_err(|e| stuck(Phase::Start, e))?;
    let at_start = archiver.status();
    // Stopping uploads what is durable (sealed segments, then the tail), and gives up after a
    // few failed attempts at any one store operation; a writer fenced off meanwhile stopped
    // with that error.
    archiver.stop().map_err(|e| stuck(Phase::Running, e))?;
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
        holder: at_start.holder,
        fencing: !args.no_fencing,
        pulled,
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
                "holder": self.holder,
                "fencing": self.fencing,
                "fast_forward": self.pulled.map(|p| json!({
                    "records": p.records,
                    "objects": p.objects,
                    "last_lsn": p.last_lsn.get(),
                })),
                "objects_uploaded": self.uploads,
                "bytes_uploaded": self.bytes,
                "objects": self.total_objects,
                "bytes": self.total_bytes,
                "retention_floor": self.retention_floor,
                "seconds": self.elapsed.as_secs_f64(),
            }));
        }
        if let Some(pulled) = self.pulled {
            if pulled.records == 0 {
                out.line(format_args!(
                    "fast-forward: {} was at the archive's end already",
                    dir.display()
                ))?;
            } else {
                out.line(format_args!(
                    "fast-forwarded {}: pulled {} record{} ({} object{}) from the archive, up to \
                     LSN {}",
                    dir.display(),
                    thousands(pulled.records),
                    if pulled.records == 1 { "" } else { "s" },
                    pulled.objects,
                    if pulled.objects == 1 { "" } else { "s" },
                    pulled.last_lsn
                ))?;
            }
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
                "  generation {} claimed as {}",
                self.generation, self.holder
            ))?;
            if !self.fencing {
                out.line(format_args!(
                    "  {}: nothing keeps a second writer out of this archive",
                    out.paint(Style::Yellow, "fencing off")
                ))?;
            }
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

/// When archiving met an error.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Pulling the archive's records into the log (--fast-forward).
    FastForward,
    /// Starting: checking the archive against the log and claiming it.
    Start,
    /// Uploading, after the start.
    Running,
}

/// Archiving refused or stopped on an error that takes a decision (another writer holds the
/// archive, the log and the archive differ, the store cannot fence): the error, with the ways
/// out for this log and this archive, which the hint under the error gives.
#[derive(Debug)]
pub(crate) struct Stuck {
    phase: Phase,
    dir: PathBuf,
    location: String,
    error: tidelog_archive::Error,
}

impl Stuck {
    /// `error` met in `phase`, as a `Stuck` if it takes a decision, else with what was being
    /// done as its context.
    fn wrap(
        error: tidelog_archive::Error,
        phase: Phase,
        dir: &Path,
        store: &Store,
    ) -> anyhow::Error {
        use tidelog_archive::Error as E;
        let location = store.location().to_owned();
        match error {
            E::Fenced { .. }
            | E::Diverged { .. }
            | E::ArchiveAhead { .. }
            | E::Unfenceable { .. }
            | E::SegmentsMisaligned { .. } => anyhow::Error::new(Stuck {
                phase,
                dir: dir.to_path_buf(),
                location,
                error,
            }),
            other => {
                let doing = Stuck::doing(phase, dir, &location);
                anyhow::Error::new(other).context(doing)
            }
        }
    }

    /// What failed, for the start of the error's line.
    fn doing(phase: Phase, dir: &Path, location: &str) -> String {
        let dir = dir.display();
        match phase {
            Phase::FastForward => format!("cannot fast-forward {dir} from {location}"),
            Phase::Start => format!("cannot start archiving {dir} to {location}"),
            Phase::Running => format!("cannot archive {dir} to {location}"),
        }
    }

    /// What to do about it, one line each.
    pub(crate) fn ways_out(&self) -> Vec<String> {
        use tidelog_archive::Error as E;
        let (dir, location) = (self.dir.display(), &self.location);
        let restore = format!(
            "  restore the archive over the log: `tidelog restore {location} NEW_DIR`, and use \
             NEW_DIR as the log from now on"
        );
        let elsewhere = format!(
            "  or archive this log to a new location, another prefix: `tidelog archive {dir} \
             NEW_URL`"
        );
        let why = match &self.error {
            E::Diverged { lsn, .. } => format!(
                "the archive holds other records than this log from LSN {lsn} on (another writer \
                 archived there: two logs from one restored base, or a log rolled back below \
                 what it archived); nothing is merged, and this log is unchanged. Either:"
            ),
            E::Fenced { by, holder, .. } => format!(
                "another writer holds the archive ({holder}, generation {by}); this log is \
                 unchanged and usable, but archives nothing more there. Either:"
            ),
            E::SegmentsMisaligned { .. } => "this log is cut into segments elsewhere than the \
                 archive's objects are (a log built apart from the archive, or written with \
                 another segment size); this log is unchanged. Either:"
                .to_owned(),
            E::ArchiveAhead { archived, last } => {
                return vec![format!(
                    "the archive holds records up to LSN {archived}, past this log's last \
                     ({last}): this log is an older copy (a restore, a backup); pull the \
                     missing records into it first: `tidelog archive {dir} {location} \
                     --fast-forward`"
                )];
            }
            E::Unfenceable { .. } => {
                return vec![format!(
                    "the store cannot create an object only if its name is free, so it cannot \
                     keep a second writer out: archive to it without fencing, and run only one \
                     writer at a time there: `tidelog archive {dir} {location} --no-fencing`"
                )];
            }
            _ => return Vec::new(),
        };
        vec![why, restore, elsewhere]
    }
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Stuck::doing(self.phase, &self.dir, &self.location))
    }
}

impl std::error::Error for Stuck {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuck(error: tidelog_archive::Error, phase: Phase) -> anyhow::Error {
        let store = Store::from_url("memory:///").unwrap();
        Stuck::wrap(error, phase, Path::new("./wal"), &store)
    }

    #[test]
    fn a_writer_fenced_off_while_it_ran_says_so_and_its_ways_out() {
        let err = stuck(
            tidelog_archive::Error::Fenced {
                generation: 4,
                by: 5,
                holder: "db2 pid 7 #00ff".to_owned(),
            },
            Phase::Running,
        );
        let line = crate::output::chain(&err);
        assert!(
            line.starts_with("cannot archive ./wal to memory:///: fenced"),
            "{line}"
        );
        assert!(line.contains("the local log is unchanged"), "{line}");
        let ways = err.downcast_ref::<Stuck>().unwrap().ways_out();
        assert_eq!(ways.len(), 3, "{ways:?}");
        assert!(
            ways[0].contains("db2 pid 7 #00ff, generation 5"),
            "{ways:?}"
        );
        assert!(ways[0].contains("unchanged and usable"), "{ways:?}");
        assert!(
            ways[1].contains("`tidelog restore memory:/// NEW_DIR`"),
            "{ways:?}"
        );
        assert!(
            ways[2].contains("`tidelog archive ./wal NEW_URL`"),
            "{ways:?}"
        );
    }

    #[test]
    fn a_store_without_conditional_puts_is_pointed_to_no_fencing() {
        let err = stuck(
            tidelog_archive::Error::Unfenceable {
                store: "memory:///".to_owned(),
            },
            Phase::Start,
        );
        let line = crate::output::chain(&err);
        assert!(
            line.starts_with("cannot start archiving ./wal to memory:///: "),
            "{line}"
        );
        let ways = err.downcast_ref::<Stuck>().unwrap().ways_out();
        assert_eq!(ways.len(), 1, "{ways:?}");
        assert!(ways[0].contains("--no-fencing"), "{ways:?}");
        assert!(ways[0].contains("one writer at a time"), "{ways:?}");
    }

    #[test]
    fn other_errors_keep_what_was_being_done_as_their_context() {
        let err = stuck(
            tidelog_archive::Error::NoArchive {
                location: "memory:///".to_owned(),
            },
            Phase::FastForward,
        );
        assert!(err.downcast_ref::<Stuck>().is_none());
        assert_eq!(
            crate::output::chain(&err),
            "cannot fast-forward ./wal from memory:///: no archive at memory:///"
        );
    }
}
