//! `tidelog demo [DIR]`: the whole story of a write-ahead log, on the real disk.
//!
//! 1. Several threads commit concurrently (synced appends and atomic batches); a counting
//!    storage shows how many commits each fsync carried.
//! 2. A child process (`tidelog demo --child DIR`) appends and syncs in a loop and is killed
//!    with SIGKILL mid-write; a torn half-frame is then left at the end of its log, as a power
//!    loss can leave one.
//! 3. The log is reopened: recovery cuts the torn tail, prints its report, and every record
//!    whose durability was acknowledged is read back and verified.
//! 4. A checkpoint drops the segments below it.
//! 5. A power loss is simulated on the in-memory storage, which drops unsynced bytes.
//! 6. The crash log is archived to a local-directory store while more records are appended,
//!    then restored whole and to an LSN in the middle, and every restored record is checked.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde_json::json;
use tidelog::io::{CrashMode, MemStorage, OpenMode, StdStorage, Storage};
use tidelog::{Durability, Log, Lsn};
use tidelog_archive::{ArchiveOptions, Archiver, Store, Target, restore};

use crate::output::{Ctx, Out, Style, human_bytes, note};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The demo, on the real disk:
  1. threads commit concurrently (synced appends and atomic batches), sharing fsyncs;
  2. a child process appends with Durability::Synced and is killed with SIGKILL mid-write,
     and a torn write is left at the end of its log;
  3. the log is reopened: recovery cuts the torn tail, and every acknowledged record is read
     back and checked;
  4. a checkpoint drops the segments below it;
  5. a power loss is simulated on the in-memory storage;
  6. the log of step 2 is archived to a local-directory store (file://, under the demo's
     directory) while more records are appended, then restored whole and to an LSN in the
     middle, and every restored record is checked.
It ends with a summary: commits/s, fsyncs, commits per fsync. Exit code 0 when every check
passed.

Examples:
  tidelog demo                     # in target/tidelog-demo, wiped first
  tidelog demo /tmp/tidelog-demo   # a directory that is empty or absent")]
pub(crate) struct Args {
    /// Where the demo's logs go [default: target/tidelog-demo, wiped each run]; a directory
    /// you name must be empty or absent.
    pub(crate) dir: Option<PathBuf>,

    /// Smaller sizes (for tests).
    #[arg(long, hide = true)]
    pub(crate) quick: bool,

    /// Run as the crash child: append and sync forever, printing `ack LSN` lines.
    #[arg(long, hide = true, requires = "dir")]
    pub(crate) child: bool,
}

/// The demo's sizes.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    segment_bytes: u64,
    threads: usize,
    commits_per_thread: usize,
    child_acks_before_kill: u64,
    /// Records appended while the archiver runs.
    archived_appends: u64,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                segment_bytes: tidelog::MIN_SEGMENT_BYTES,
                threads: 4,
                commits_per_thread: 50,
                child_acks_before_kill: 300,
                archived_appends: 200,
            }
        } else {
            Sizes {
                segment_bytes: 64 << 10,
                threads: 4,
                commits_per_thread: 500,
                child_acks_before_kill: 3_000,
                archived_appends: 2_000,
            }
        }
    }
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let sizes = Sizes::new(args.quick);
    if args.child {
        let dir = args.dir.context("--child needs a directory")?;
        child(&dir, sizes)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut story = Story {
        out: ctx.out(),
        json: ctx.json,
        color: ctx.color,
    };
    let summary = demo(&mut story, args.dir, args.quick, sizes)?;
    if ctx.json {
        story.out.json(&summary)?;
    }
    story.out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Where the story goes: standard output, or standard error when standard output carries
/// the JSON summary.
struct Story {
    out: Out,
    json: bool,
    color: bool,
}

impl Story {
    fn say(&mut self, text: impl std::fmt::Display) -> anyhow::Result<()> {
        if self.json {
            let _ = writeln!(std::io::stderr(), "{text}");
            Ok(())
        } else {
            self.out.line(text)?;
            self.out.flush()
        }
    }

    fn heading(&mut self, text: &str) -> anyhow::Result<()> {
        let text = if self.color {
            self.out.paint(Style::Bold, text)
        } else {
            text.to_owned()
        };
        self.say(format_args!("\n{text}"))
    }
}

/// The payload the crash child writes at `lsn`, so the parent can check it.
fn child_payload(lsn: u64) -> Vec<u8> {
    let mut p = format!("crash-test record {lsn} ").into_bytes();
    p.resize(p.len() + usize::try_from(lsn % 97).unwrap_or(0), b'#');
    p
}

/// The crash child: appends forever, syncing, and reports each acknowledged LSN on stdout.
fn child(dir: &Path, sizes: Sizes) -> anyhow::Result<()> {
    let log = Log::builder(dir)
        .segment_bytes(sizes.segment_bytes)
        .open()
        .with_context(|| format!("cannot open the log in {}", dir.display()))?;
    let mut out = std::io::stdout().lock();
    let mut next = log.last_lsn().next().get();
    loop {
        // Alternate single synced appends and synced batches of three.
        if next % 4 == 0 {
            let batch: Vec<Vec<u8>> = (next..next + 3).map(child_payload).collect();
            let (_, last) = log.append_batch(&batch, Durability::Synced)?;
            next = last.get() + 1;
            writeln!(out, "ack {last}")?;
        } else {
            let lsn = log.append(&child_payload(next), Durability::Synced)?;
            next = lsn.get() + 1;
            writeln!(out, "ack {lsn}")?;
        }
        out.flush()?;
    }
}

/// The demo's directory: the default one wiped, or a named one that must be empty or absent.
fn fresh_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let default = dir.is_none();
    let dir = dir.unwrap_or_else(|| PathBuf::from("target").join("tidelog-demo"));
    if dir.exists() {
        if default {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot wipe {}", dir.display()))?;
        } else if std::fs::read_dir(&dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .next()
            .is_some()
        {
            bail!(
                "{} is not empty; give a new or empty directory",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn demo(
    story: &mut Story,
    dir: Option<PathBuf>,
    quick: bool,
    sizes: Sizes,
) -> anyhow::Result<serde_json::Value> {
    let base = fresh_dir(dir)?;
    story.say(format_args!("tidelog demo: logs under {}", base.display()))?;

    // 1. Concurrent commits.
    let threads = sizes.threads;
    let per_thread = sizes.commits_per_thread;
    story.heading(&format!(
        "1. {threads} threads commit concurrently, {per_thread} durable commits each"
    ))?;
    let log = Arc::new(
        Log::builder(base.join("concurrent"))
            .segment_bytes(sizes.segment_bytes)
            .open()?,
    );
    let before = log.metrics();
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || -> tidelog::Result<u64> {
                let mut records = 0;
                for i in 0..per_thread {
                    if i % 5 == 4 {
                        let batch: Vec<String> = (0..3)
                            .map(|k| format!("thread {t} commit {i} part {k}"))
                            .collect();
                        log.append_batch(&batch, Durability::Synced)?;
                        records += 3;
                    } else {
                        log.append(
                            format!("thread {t} commit {i}").as_bytes(),
                            Durability::Synced,
                        )?;
                        records += 1;
                    }
                }
                Ok(records)
            })
        })
        .collect();
    let mut records = 0;
    for worker in workers {
        records += worker
            .join()
            .map_err(|_| anyhow::anyhow!("a committing thread panicked"))??;
    }
    let elapsed = started.elapsed();
    let after = log.metrics();
    let fsyncs = after.fsyncs - before.fsyncs;
    let rolled = after.segments_rolled - before.segments_rolled;
    let commits = (threads * per_thread) as u64;
    let commits_per_sec = commits as f64 / elapsed.as_secs_f64().max(1e-9);
    let per_fsync = commits as f64 / fsyncs.max(1) as f64;
    story.say(format_args!(
        "   {commits} commits ({records} records) in {:.2} s: {commits_per_sec:.0} commits/s; durable LSN {}",
        elapsed.as_secs_f64(),
        log.durable_lsn()
    ))?;
    story.say(format_args!(
        "   {fsyncs} fsyncs of segment files for {commits} commits: {per_fsync:.1} commits per fsync (group commit); {rolled} new segments"
    ))?;
    if log.durable_lsn().get() != records {
        bail!(
            "durable LSN {} after {records} synced records",
            log.durable_lsn()
        );
    }
    drop(log);

    // 2. A crash: a child process killed mid-write.
    let dir = base.join("crash");
    let acks = sizes.child_acks_before_kill;
    story.heading(&format!(
        "2. a child process appends with Durability::Synced; SIGKILL after {acks} acknowledged records"
    ))?;
    let acked = run_and_kill_child(story, &dir, quick, acks)?;
    // A power loss can also leave half of a frame behind: write one right after the last
    // complete record of the log.
    let (active, end) = {
        let log = Log::builder(&dir).read_only(true).open()?;
        let segments = log.segments();
        let last = segments.last().context("the log has no segment")?;
        (last.path.clone(), last.bytes)
    };
    let file = StdStorage::new().open(&active, OpenMode::ReadWrite)?;
    file.write_all_at(&[0x5a; 13], end)?;
    file.sync_data()?;
    drop(file);
    story.say(format_args!(
        "   13 bytes of a torn write left at the end of {}",
        active.display()
    ))?;

    // 3. Recovery.
    story.heading("3. reopen: recovery runs")?;
    let log = Log::builder(&dir)
        .segment_bytes(sizes.segment_bytes)
        .open()?;
    for line in log.recovery_report().to_string().lines() {
        story.say(format_args!("   {line}"))?;
    }
    let last = log.last_lsn().get();
    let started = Instant::now();
    let mut verified = 0u64;
    for record in log.iter()? {
        let record = record?;
        let lsn = record.lsn().get();
        if record.data() != child_payload(lsn) {
            bail!("record {lsn} does not hold what was written");
        }
        verified += 1;
    }
    if last < acked || verified != last {
        bail!("recovered {verified} records up to LSN {last}, but {acked} were acknowledged");
    }
    story.say(format_args!(
        "   verified: all {acked} acknowledged records present and intact ({verified} records read back in {:.1} ms)",
        started.elapsed().as_secs_f64() * 1e3
    ))?;

    // 4. Checkpoint.
    let before = log.segments().len();
    let cp = Lsn::new(last / 2);
    log.checkpoint(cp)?;
    let after = log.segments().len();
    story.heading(&format!(
        "4. checkpoint at LSN {cp}: {} segments removed, {after} left; first readable LSN {}",
        before - after,
        log.checkpoint_lsn()
    ))?;
    log.close()?;

    // 5. Power loss on the in-memory storage.
    story.heading("5. power loss on the in-memory storage (unsynced bytes torn)")?;
    let mem = MemStorage::new();
    let open = || {
        Log::builder("/demo")
            .storage(Arc::new(mem.clone()) as Arc<dyn Storage>)
            .open()
    };
    let log = open()?;
    for i in 0..100u32 {
        log.append(format!("synced {i}").as_bytes(), Durability::Buffered)?;
    }
    log.sync()?;
    for i in 0..50u32 {
        log.append(format!("never synced {i}").as_bytes(), Durability::Buffered)?;
    }
    log.append_batch(
        &[b"batch a".as_slice(), b"batch b", b"batch c"],
        Durability::Buffered,
    )?;
    // Push the buffered records to the storage without syncing them.
    log.append(&vec![0u8; 300_000], Durability::Buffered)?;
    std::mem::forget(log); // the process dies with the machine
    mem.crash(CrashMode::Torn { seed: 7 });
    let log = open()?;
    for line in log.recovery_report().to_string().lines() {
        story.say(format_args!("   {line}"))?;
    }
    let recovered = log.last_lsn().get();
    if recovered < 100 {
        bail!("a synced record was lost in the simulated power loss");
    }
    story.say(format_args!(
        "   all 100 synced records survived; {} of the 54 unsynced ones did",
        recovered - 100
    ))?;

    // 6. Archive and restore.
    let archive = archive_and_restore(story, &base, &dir, sizes)?;

    story.heading("summary")?;
    story.say(format_args!(
        "   {commits} concurrent durable commits at {commits_per_sec:.0} commits/s, with {fsyncs} fsyncs: {per_fsync:.1} commits per fsync"
    ))?;
    story.say(format_args!(
        "   a SIGKILLed writer and a torn tail recovered with nothing acknowledged lost ({acked} records verified)"
    ))?;
    story.say("   a checkpoint, and a simulated power loss that kept every synced record")?;
    story.say(format_args!(
        "   an archive of {} objects on a local-directory store, restored whole and to LSN {}, every record checked",
        archive.objects, archive.middle
    ))?;
    Ok(json!({
        "commits": commits,
        "records": records,
        "seconds": elapsed.as_secs_f64(),
        "commits_per_sec": commits_per_sec,
        "fsyncs": fsyncs,
        "commits_per_fsync": per_fsync,
        "child_acknowledged": acked,
        "verified": verified,
        "checkpoint_lsn": cp.get(),
        "power_loss_recovered": recovered,
        "archive": {
            "archived_lsn": archive.archived,
            "objects": archive.objects,
            "bytes": archive.bytes,
            "archive_seconds": archive.archive_seconds,
            "restored_first_lsn": archive.first,
            "restored_middle_lsn": archive.middle,
            "restore_seconds": archive.restore_seconds,
        },
    }))
}

/// What step 6 did.
struct Archived {
    archived: u64,
    objects: u64,
    bytes: u64,
    archive_seconds: f64,
    first: u64,
    middle: u64,
    restore_seconds: f64,
}

/// Step 6: archives the log in `dir` to a local-directory store under `base` while records are
/// appended, restores it whole and to an LSN in the middle, and checks every restored record.
fn archive_and_restore(
    story: &mut Story,
    base: &Path,
    dir: &Path,
    sizes: Sizes,
) -> anyhow::Result<Archived> {
    let archive_dir =
        std::path::absolute(base.join("archive")).context("cannot name the archive's directory")?;
    let url = format!("file://{}", archive_dir.display());
    story.heading(&format!(
        "6. archive and restore, through a local-directory store at {url}"
    ))?;
    let store = Store::from_url(&url)?;
    let log = Arc::new(
        Log::builder(dir)
            .segment_bytes(sizes.segment_bytes)
            .open()?,
    );
    let started = Instant::now();
    let options = ArchiveOptions::default().interval(std::time::Duration::from_millis(100));
    let archiver = Archiver::start(Arc::clone(&log), store.clone(), options)?;
    // The archiver uploads each segment as it is sealed, and the tail every interval, while
    // records keep coming.
    let mut last = log.last_lsn();
    for _ in 0..sizes.archived_appends {
        let next = last.next().get();
        last = log.append(&child_payload(next), Durability::Synced)?;
    }
    archiver.wait_archived(last, std::time::Duration::from_secs(60))?;
    let status = archiver.status();
    archiver.stop()?;
    let archive_seconds = started.elapsed().as_secs_f64();
    let floor = log.retention_floor();
    let checkpoint = log.checkpoint_lsn();
    story.say(format_args!(
        "   {} records appended while the archiver ran; archived up to LSN {} in {:.2} s: {} uploads, {} (a tail object is replaced once its segment is sealed)",
        sizes.archived_appends,
        status.archived_lsn,
        archive_seconds,
        status.uploads,
        human_bytes(status.bytes)
    ))?;
    if let Some(floor) = floor {
        story.say(format_args!(
            "   retention floor LSN {floor}: no checkpoint removes a segment before it is archived"
        ))?;
    }
    match Arc::try_unwrap(log) {
        Ok(log) => log.close()?,
        Err(log) => drop(log),
    }

    let started = Instant::now();
    let whole = restore(&store, base.join("restored"), Target::Latest)?;
    let restore_seconds = started.elapsed().as_secs_f64();
    if whole.last_lsn != last || whole.first_lsn > checkpoint {
        bail!(
            "the restore holds LSN {}..={}, but the log held {checkpoint}..={last}",
            whole.first_lsn,
            whole.last_lsn
        );
    }
    let checked = check_restored(&whole.dir, whole.first_lsn, last)?;
    story.say(format_args!(
        "   restored the latest record into {} in {:.1} ms: LSN {}..={}, {} objects, {}; all {checked} records match",
        whole.dir.display(),
        restore_seconds * 1e3,
        whole.first_lsn,
        whole.last_lsn,
        whole.objects,
        human_bytes(whole.bytes)
    ))?;

    let middle = Lsn::new((whole.first_lsn.get() + last.get()) / 2);
    let started = Instant::now();
    let part = restore(&store, base.join("restored-middle"), Target::Lsn(middle))?;
    let elapsed = started.elapsed().as_secs_f64();
    if part.last_lsn != middle {
        bail!("the restore to LSN {middle} ends at LSN {}", part.last_lsn);
    }
    let checked = check_restored(&part.dir, part.first_lsn, middle)?;
    story.say(format_args!(
        "   restored to LSN {middle} into {} in {:.1} ms: {} of {} objects read, cut at LSN {middle}; all {checked} records match",
        part.dir.display(),
        elapsed * 1e3,
        part.objects,
        whole.objects
    ))?;
    Ok(Archived {
        archived: status.archived_lsn.get(),
        objects: whole.objects as u64,
        bytes: whole.bytes,
        archive_seconds,
        first: whole.first_lsn.get(),
        middle: middle.get(),
        restore_seconds,
    })
}

/// Opens a restored log and checks that it holds exactly the records `first..=last`, each as
/// the crash child (or step 6) wrote it; returns how many it read.
fn check_restored(dir: &Path, first: Lsn, last: Lsn) -> anyhow::Result<u64> {
    let log = Log::builder(dir)
        .create_if_missing(false)
        .open()
        .with_context(|| format!("cannot open the restored log in {}", dir.display()))?;
    if log.checkpoint_lsn() != first || log.last_lsn() != last {
        bail!(
            "the restored log in {} holds LSN {}..={}, not {first}..={last}",
            dir.display(),
            log.checkpoint_lsn(),
            log.last_lsn()
        );
    }
    let mut read = 0u64;
    for (expected, record) in (first.get()..).zip(log.iter()?) {
        let record = record?;
        let lsn = record.lsn().get();
        if lsn != expected || record.data() != child_payload(lsn) {
            bail!(
                "restored record {lsn} in {} does not hold what was written",
                dir.display()
            );
        }
        read += 1;
    }
    if read != last.get() + 1 - first.get() {
        bail!("read {read} restored records, not {first}..={last}");
    }
    log.close()?;
    Ok(read)
}

/// Starts the crash child on `dir`, waits for `acks` acknowledged records and kills it with
/// SIGKILL; returns the last acknowledged LSN.
fn run_and_kill_child(
    story: &mut Story,
    dir: &Path,
    quick: bool,
    acks: u64,
) -> anyhow::Result<u64> {
    let exe = std::env::current_exe().context("cannot find the tidelog executable")?;
    let mut command = Command::new(exe);
    command.arg("demo").arg("--child");
    if quick {
        command.arg("--quick");
    }
    let mut child = command
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the crash child")?;
    let stdout = child
        .stdout
        .take()
        .context("no pipe from the crash child")?;
    let mut acked = 0u64;
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    while acked < acks {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            let status = child.wait()?;
            bail!("the crash child ended early ({status}) after LSN {acked}");
        }
        if let Some(lsn) = line.trim_end().strip_prefix("ack ") {
            acked = lsn.parse().context("the crash child printed a bad LSN")?;
        }
    }
    // SIGKILL: the child gets no chance to finish the write or sync it may be in.
    child.kill()?;
    let status = child.wait()?;
    drop(reader);
    story.say(format_args!(
        "   child killed ({status}); last acknowledged LSN {acked}"
    ))?;
    if status.success() {
        note("the crash child exited normally instead of being killed");
    }
    Ok(acked)
}
