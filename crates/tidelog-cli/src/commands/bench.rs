//! `tidelog bench`: tidelog's own workloads on this disk, with a summary table.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use tidelog::{Durability, Log};

use super::fsync_probe::{self, Method};
use super::{parse_seconds, refuse_memory_file_system};
use crate::output::{Ctx, Out, Table, human_bytes, human_duration, percentile, thousands};

const SMALL_RECORD_BYTES: usize = 100;
const LARGE_RECORD_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Workload {
    /// Small records (100 B) appended from one thread, then one sync.
    Bulk,
    /// Durable commits (100 B, Synced) from --threads threads for --seconds.
    Commits,
    /// Large records (1 MiB) appended from one thread, then one sync.
    Large,
    /// All three.
    #[default]
    All,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Workloads:
  bulk     --records appends of 100 bytes from one thread, then one sync
  commits  durable commits of 100 bytes (Durability::Synced) from --threads threads for
           --seconds; group commit lets one fsync cover many commits
  large    --large-records appends of 1 MiB from one thread, then one sync

The summary gives records/s, MB/s (10^6 bytes of payload), commits/s, the p50 and p99 latency
of one append (or one durable commit), and the fsyncs done. The logs go to a new directory
under ./target/tidelog-bench (or under --dir), removed afterwards; a directory in memory
(tmpfs) is refused, since fsync does nothing there.

Examples:
  tidelog bench
  tidelog bench --workload commits --threads 64 --seconds 10
  tidelog bench --dir /mnt/nvme --json
  tidelog bench --quick")]
pub(crate) struct Args {
    /// Which workload to run.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) workload: Workload,

    /// Where to put the logs (a new directory is made inside and removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    /// Records of the bulk workload [default: 1000000; 10000 with --quick].
    #[arg(long, value_name = "N")]
    pub(crate) records: Option<u64>,

    /// Committing threads of the commits workload.
    #[arg(long, value_name = "T", default_value_t = 16)]
    pub(crate) threads: usize,

    /// Seconds of the commits workload [default: 5; 0.5 with --quick].
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    pub(crate) seconds: Option<Duration>,

    /// Records of the large workload [default: 256; 8 with --quick].
    #[arg(long, value_name = "N")]
    pub(crate) large_records: Option<u64>,

    /// Small sizes: a quick look, or a smoke test.
    #[arg(long)]
    pub(crate) quick: bool,
}

/// Removes the benchmark's directory however the benchmark ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one workload measured.
struct Outcome {
    workload: &'static str,
    records: u64,
    record_bytes: usize,
    elapsed: Duration,
    /// Durable commits (the commits workload only).
    commits: Option<u64>,
    p50: Duration,
    p99: Duration,
    fsyncs: u64,
}

impl Outcome {
    fn per_sec(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn mb_per_sec(&self) -> f64 {
        self.per_sec(self.records) * self.record_bytes as f64 / 1e6
    }

    fn commits_per_fsync(&self) -> Option<f64> {
        let commits = self.commits?;
        (self.fsyncs > 0).then(|| commits as f64 / self.fsyncs as f64)
    }
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    if args.threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    let records = args
        .records
        .unwrap_or(if args.quick { 10_000 } else { 1_000_000 });
    let seconds = args.seconds.unwrap_or(if args.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    });
    let large_records = args
        .large_records
        .unwrap_or(if args.quick { 8 } else { 256 });
    let parent = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("target").join("tidelog-bench"));
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    refuse_memory_file_system(&parent)?;
    let base = parent.join(format!("run-{}", std::process::id()));
    if base.exists() {
        std::fs::remove_dir_all(&base)
            .with_context(|| format!("cannot clear {}", base.display()))?;
    }
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    let _remove = RemoveOnDrop(base.clone());

    let mut out = ctx.out();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let probe = fsync_probe::measure(
        &base,
        Method::Fdatasync,
        SMALL_RECORD_BYTES,
        seconds.min(Duration::from_millis(500)),
        &|_| {},
    )?;
    if ctx.json {
        out.json(&json!({
            "disk": base.display().to_string(),
            "fdatasync_p50_us": probe.p50.as_secs_f64() * 1e6,
            "fdatasync_p99_us": probe.p99.as_secs_f64() * 1e6,
            "cores": cores,
        }))?;
    } else {
        out.line(format_args!(
            "tidelog bench in {}: {cores} cores; a write + fdatasync of 100 B takes {} (p50), {} (p99)",
            base.display(),
            human_duration(probe.p50),
            human_duration(probe.p99)
        ))?;
    }
    out.flush()?;

    let run_bulk = matches!(args.workload, Workload::Bulk | Workload::All);
    let run_commits = matches!(args.workload, Workload::Commits | Workload::All);
    let run_large = matches!(args.workload, Workload::Large | Workload::All);
    let mut outcomes = Vec::new();
    if run_bulk {
        outcomes.push(appends(
            ctx,
            &base.join("bulk"),
            "bulk",
            records,
            SMALL_RECORD_BYTES,
        )?);
        report(ctx, &mut out, outcomes.last())?;
    }
    if run_commits {
        outcomes.push(commits(ctx, &base.join("commits"), args.threads, seconds)?);
        report(ctx, &mut out, outcomes.last())?;
    }
    if run_large {
        outcomes.push(appends(
            ctx,
            &base.join("large"),
            "large",
            large_records,
            LARGE_RECORD_BYTES,
        )?);
        report(ctx, &mut out, outcomes.last())?;
    }
    if !ctx.json {
        summary(&mut out, &outcomes, args.threads, cores)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn open(dir: &Path) -> anyhow::Result<Log> {
    Log::open(dir).with_context(|| format!("cannot create a log in {}", dir.display()))
}

/// Segment-data fsyncs the log has made so far.
fn fsyncs(log: &Log) -> u64 {
    log.metrics().fsyncs
}

fn payload(bytes: usize, i: u64) -> Vec<u8> {
    let mut p = format!("record {i} ").into_bytes();
    p.resize(bytes, b'.');
    p
}

/// `n` appends of `bytes` each from one thread, then one sync.
fn appends(
    ctx: &Ctx,
    dir: &Path,
    name: &'static str,
    n: u64,
    bytes: usize,
) -> anyhow::Result<Outcome> {
    let log = open(dir)?;
    let record = payload(bytes, 0);
    let bar = ctx.progress_bar(n, name);
    let step = if bytes >= 1 << 16 { 1 } else { 4096 };
    let mut latencies = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let syncs_before = fsyncs(&log);
    let started = Instant::now();
    for i in 0..n {
        let t0 = Instant::now();
        log.append(&record, Durability::Buffered)
            .context("append failed")?;
        latencies.push(t0.elapsed());
        if (i + 1) % step == 0 {
            bar.set_position(i + 1);
        }
    }
    log.sync().context("sync failed")?;
    let elapsed = started.elapsed();
    let fsyncs = fsyncs(&log) - syncs_before;
    bar.finish_and_clear();
    log.close().context("close failed")?;
    latencies.sort_unstable();
    Ok(Outcome {
        workload: name,
        records: n,
        record_bytes: bytes,
        elapsed,
        commits: None,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        fsyncs,
    })
}

/// Durable commits from `threads` threads for `duration`.
fn commits(ctx: &Ctx, dir: &Path, threads: usize, duration: Duration) -> anyhow::Result<Outcome> {
    let log = Arc::new(open(dir)?);
    let done = Arc::new(AtomicU64::new(0));
    let bar = ctx.timed_bar(duration, "commits");
    let syncs_before = fsyncs(&log);
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let log = Arc::clone(&log);
            let done = Arc::clone(&done);
            std::thread::spawn(move || -> tidelog::Result<Vec<Duration>> {
                let record = payload(SMALL_RECORD_BYTES, t as u64);
                let mut latencies = Vec::new();
                loop {
                    let t0 = Instant::now();
                    log.append(&record, Durability::Synced)?;
                    let now = Instant::now();
                    latencies.push(now.duration_since(t0));
                    done.fetch_add(1, Ordering::Relaxed);
                    if now >= deadline {
                        return Ok(latencies);
                    }
                }
            })
        })
        .collect();
    while workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        bar.set_position(u64::try_from(started.elapsed().as_millis() / 100).unwrap_or(u64::MAX));
        bar.set_message(format!(
            "{} commits",
            thousands(done.load(Ordering::Relaxed))
        ));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        let mine = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a committing thread panicked"))?
            .context("a durable commit failed")?;
        latencies.extend(mine);
    }
    let elapsed = started.elapsed();
    let fsyncs = fsyncs(&log) - syncs_before;
    bar.finish_and_clear();
    Arc::try_unwrap(log)
        .map_err(|_| anyhow::anyhow!("the log is still shared"))?
        .close()
        .context("close failed")?;
    latencies.sort_unstable();
    let n = latencies.len() as u64;
    Ok(Outcome {
        workload: "commits",
        records: n,
        record_bytes: SMALL_RECORD_BYTES,
        elapsed,
        commits: Some(n),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        fsyncs,
    })
}

/// Prints one outcome as soon as it is known: a JSON line, or a short text line.
fn report(ctx: &Ctx, out: &mut Out, outcome: Option<&Outcome>) -> anyhow::Result<()> {
    let Some(o) = outcome else {
        return Ok(());
    };
    if ctx.json {
        out.json(&json!({
            "workload": o.workload,
            "records": o.records,
            "record_bytes": o.record_bytes,
            "seconds": o.elapsed.as_secs_f64(),
            "records_per_sec": o.per_sec(o.records),
            "mb_per_sec": o.mb_per_sec(),
            "commits_per_sec": o.commits.map(|c| o.per_sec(c)),
            "p50_us": o.p50.as_secs_f64() * 1e6,
            "p99_us": o.p99.as_secs_f64() * 1e6,
            "fsyncs": o.fsyncs,
            "commits_per_fsync": o.commits_per_fsync(),
        }))?;
    } else {
        out.line(format_args!(
            "  {:<8} {} records of {} in {:.2} s",
            o.workload,
            thousands(o.records),
            human_bytes(o.record_bytes as u64),
            o.elapsed.as_secs_f64()
        ))?;
    }
    out.flush()
}

fn summary(
    out: &mut Out,
    outcomes: &[Outcome],
    threads: usize,
    cores: usize,
) -> anyhow::Result<()> {
    let mut table = Table::new(&[
        "workload",
        ">records",
        ">size",
        ">seconds",
        ">records/s",
        ">MB/s",
        ">commits/s",
        ">p50",
        ">p99",
        ">fsyncs",
        ">commits/fsync",
    ]);
    for o in outcomes {
        table.row(vec![
            o.workload.to_owned(),
            thousands(o.records),
            human_bytes(o.record_bytes as u64),
            format!("{:.2}", o.elapsed.as_secs_f64()),
            thousands(o.per_sec(o.records).round() as u64),
            format!("{:.1}", o.mb_per_sec()),
            o.commits.map_or_else(
                || "-".to_owned(),
                |c| thousands(o.per_sec(c).round() as u64),
            ),
            human_duration(o.p50),
            human_duration(o.p99),
            thousands(o.fsyncs),
            o.commits_per_fsync()
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}")),
        ]);
    }
    out.line("")?;
    for line in table.lines() {
        out.line(line)?;
    }
    out.line("")?;
    out.line(
        "p50/p99: the latency of one append (bulk, large) or of one durable commit (commits).",
    )?;
    if outcomes.iter().any(|o| o.commits.is_some()) {
        out.line(format_args!(
            "commits: {threads} threads on {cores} cores; committers wait in fsync, so more \
             threads than cores share fsyncs (more commits per fsync) rather than CPU."
        ))?;
    }
    Ok(())
}
