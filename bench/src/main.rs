//! `tidelog-bench`: tidelog against peer write-ahead logs and against the raw limits of the
//! disk. Prints a Markdown report on stdout and progress on stderr. See README.md.

mod archive;
mod child;
mod contenders;
mod follow;
mod payload;
mod plot;
mod raft;
mod raw;
mod report;
mod runner;
mod sharded;
mod stats;
mod sysinfo;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use contenders::Kind;
use report::int;
use stats::Metrics;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    W1,
    W2,
    W3,
    W4,
    /// Open and read time of logs of several sizes (`--only sizes`; not run by default).
    Sizes,
    /// Archive and restore with tidelog-archive, and W2 with an archiver (`--only archive`;
    /// not run by default).
    Archive,
    /// The sharded log against one log: W2 and the merged replay (`--only sharded`; not run by
    /// default).
    Sharded,
    /// openraft on tidelog-raft beside raft-engine (`--only raft`; not run by default).
    Raft,
    /// A follower of an archive behind its writer at a steady load (`--only follow`; not run
    /// by default).
    Follow,
}

/// Sizes and durations of one mode.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub w1_records: u64,
    pub w2_threads: Vec<usize>,
    pub w2_secs: f64,
    pub w3_total: u64,
    pub w3_lens: Vec<usize>,
    pub w4_records: u64,
    /// The sizes workload's logs, in records of 100 B.
    pub size_records: Vec<u64>,
    /// The archive workload's log, in records of 100 B.
    pub archive_records: u64,
    pub raw_fsyncs: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        Sizes {
            w1_records: if quick { 200_000 } else { 1_000_000 },
            w2_threads: vec![1, 4, 16, 64],
            w2_secs: if quick { 1.0 } else { 5.0 },
            w3_total: if quick { 128 << 20 } else { 1 << 30 },
            w3_lens: vec![4 << 10, 1 << 20],
            w4_records: if quick { 1_000_000 } else { 10_000_000 },
            // About 100 MiB, 1 GiB and 10 GiB of log (quick: a tenth of each).
            size_records: if quick {
                vec![80_000, 800_000, 8_000_000]
            } else {
                vec![800_000, 8_000_000, 81_000_000]
            },
            // About 1 GiB of log (quick: a tenth).
            archive_records: if quick { 800_000 } else { 8_000_000 },
            raw_fsyncs: 2000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub quick: bool,
    pub runs: usize,
    pub workloads: Vec<Workload>,
    pub contenders: Vec<Kind>,
    /// The contenders of the sizes workload: tidelog unless `--contenders` names them.
    pub size_contenders: Vec<Kind>,
    pub sizes: Sizes,
    /// Every fsync of every contender delayed by this many microseconds (an `LD_PRELOAD` shim).
    pub fsync_delay_us: Option<u64>,
    /// Where to write W2's scaling curve as an SVG chart.
    pub svg: Option<PathBuf>,
    /// Where to write the sizes workload's times by log size as an SVG chart.
    pub sizes_svg: Option<PathBuf>,
}

const USAGE: &str = "\
usage: tidelog-bench [--dir DIR] [--quick] [--runs N]
                     [--only W1,W2,W3,W4,sizes,archive,sharded,raft,follow]
                     [--contenders tidelog,okaywal,wal-db,raft-engine,walrus-rust,commitlog,writeahead]

  --dir DIR         where the logs are written (default ./target/bench-data); each run uses a
                    fresh subdirectory, removed afterwards; must not be tmpfs or ramfs
  --quick           smaller sizes and 1 s durations, for a smoke run
  --runs N          runs per case (default 3); the median is reported
  --only LIST       workloads to run (default W1,W2,W3,W4); `sizes`, run only when named,
                    writes logs of several sizes and times their open (full, and trusting
                    seals) and read-all, each in a new process; `archive`, run only
                    when named, archives a log of about 1 GiB with tidelog-archive to a
                    file:// store and to the S3 test server (`bash .ci/with-s3`), restores
                    it, and runs W2 at T=16 and 64 with and without an archiver;
                    `sharded`, run only when named, runs W2 at T=4, 16 and 64 on one log
                    and on a sharded log of 1, 2 and 4 shards, and reads back about 1 GiB
                    written as one log and as 4 shards (merged replay); `raft`, run
                    only when named, commits through openraft on tidelog-raft by 1, 4
                    and 16 tasks beside raft-engine's and tidelog's durable commits;
                    `follow`, run only when named, measures how far a follower of an
                    archive trails a writer appending 10,000 records/s, archiving every
                    100 ms and 1 s, to a file:// store and to the S3 test server
  --contenders LIST contenders to run (default all; the sizes workload: tidelog)
  --threads LIST    W2's numbers of committing threads (default 1,4,16,64)
  --svg FILE        also write W2's commits/s by threads as an SVG chart to FILE
  --size-records LIST
                    the sizes workload's logs in records of 100 B (default
                    800000,8000000,81000000: about 100 MiB, 1 GiB and 10 GiB; quick: a tenth)
  --sizes-svg FILE  also write the sizes workload's times by log size as an SVG chart to FILE
  --fsync-delay-us N
                    delay every fsync and fdatasync of every contender (and of the raw
                    limits) by N µs, through the LD_PRELOAD shim fsync-delay (build it with
                    `cargo build --release --workspace`): a slower disk, alike for all";

fn parse_args(args: &[String]) -> Result<Config> {
    let mut dir = PathBuf::from("target/bench-data");
    let mut quick = false;
    let mut runs = 3;
    let mut workloads = vec![Workload::W1, Workload::W2, Workload::W3, Workload::W4];
    let mut contenders = Kind::ALL.to_vec();
    let mut contenders_named = false;
    let mut fsync_delay_us = None;
    let mut svg = None;
    let mut sizes_svg = None;
    let mut threads: Option<Vec<usize>> = None;
    let mut size_records: Option<Vec<u64>> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}").into())
        };
        match flag {
            "--dir" => dir = PathBuf::from(value()?),
            "--quick" => quick = true,
            "--runs" => {
                runs = value()?.parse().map_err(|_| "--runs needs a number")?;
                if runs == 0 {
                    return Err("--runs must be at least 1".into());
                }
            }
            "--only" => {
                workloads = value()?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| match s.trim().to_ascii_uppercase().as_str() {
                        "W1" => Ok(Workload::W1),
                        "W2" => Ok(Workload::W2),
                        "W3" => Ok(Workload::W3),
                        "W4" => Ok(Workload::W4),
                        "SIZES" => Ok(Workload::Sizes),
                        "ARCHIVE" => Ok(Workload::Archive),
                        "SHARDED" => Ok(Workload::Sharded),
                        "RAFT" => Ok(Workload::Raft),
                        "FOLLOW" => Ok(Workload::Follow),
                        other => Err(format!(
                            "unknown workload {other} (W1, W2, W3, W4, sizes, archive, sharded, \
                             raft, follow)"
                        )),
                    })
                    .collect::<Result<_, _>>()?;
                workloads.sort();
                workloads.dedup();
            }
            "--contenders" => {
                let mut picked: Vec<Kind> = value()?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| Kind::parse(s).ok_or_else(|| format!("unknown contender {s}")))
                    .collect::<Result<_, _>>()?;
                picked.sort();
                picked.dedup();
                contenders = picked;
                contenders_named = true;
            }
            "--svg" => svg = Some(PathBuf::from(value()?)),
            "--sizes-svg" => sizes_svg = Some(PathBuf::from(value()?)),
            "--size-records" => {
                let mut list: Vec<u64> = value()?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        s.trim()
                            .parse()
                            .map_err(|_| format!("not a number of records: {s}"))
                    })
                    .collect::<Result<_, _>>()?;
                list.sort_unstable();
                list.dedup();
                if list.is_empty() || list[0] == 0 {
                    return Err("--size-records needs numbers of at least 1".into());
                }
                size_records = Some(list);
            }
            "--threads" => {
                let mut list: Vec<usize> = value()?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        s.trim()
                            .parse()
                            .map_err(|_| format!("not a number of threads: {s}"))
                    })
                    .collect::<Result<_, _>>()?;
                list.sort_unstable();
                list.dedup();
                if list.is_empty() || list[0] == 0 {
                    return Err("--threads needs numbers of at least 1".into());
                }
                threads = Some(list);
            }
            "--fsync-delay-us" => {
                fsync_delay_us = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--fsync-delay-us needs a number of microseconds")?,
                );
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n\n{USAGE}").into()),
        }
    }
    if workloads.is_empty() || contenders.is_empty() {
        return Err("nothing to run".into());
    }
    if workloads.contains(&Workload::Sizes)
        && std::env::var_os("TIDELOG_BENCH_TRUST_SEALS").is_some_and(|v| v == "1")
    {
        return Err(
            "TIDELOG_BENCH_TRUST_SEALS=1 would make the sizes workload's full open \
                    trust seals too; it times both opens by itself"
                .into(),
        );
    }
    let mut sizes = Sizes::new(quick);
    if let Some(threads) = threads {
        sizes.w2_threads = threads;
    }
    if let Some(records) = size_records {
        sizes.size_records = records;
    }
    // The sizes workload is about how tidelog's open grows; peers only when named.
    let size_contenders = if contenders_named {
        contenders.clone()
    } else {
        vec![Kind::Tidelog]
    };
    Ok(Config {
        dir,
        quick,
        runs,
        workloads,
        contenders,
        size_contenders,
        sizes,
        fsync_delay_us,
        svg,
        sizes_svg,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child::main(&args[1..]);
    }
    let config = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tidelog-bench: {e}");
            std::process::exit(2);
        }
    };
    if let Some(micros) = config.fsync_delay_us
        && let Err(e) = runner::delay_fsyncs(micros)
    {
        eprintln!("tidelog-bench: {e}");
        std::process::exit(2);
    }
    if let Err(e) = run(&config) {
        eprintln!("tidelog-bench: {e}");
        std::process::exit(1);
    }
}

/// What the run found about the machine and the directory.
pub struct Machine {
    /// The directory as given on the command line.
    pub dir: PathBuf,
    pub fstype: String,
    pub device: Option<String>,
    /// The device counts flush requests (some report none, e.g. without a volatile cache).
    pub device_counts_flushes: bool,
}

/// Outcome of one case over all runs: median figures, or why it failed.
pub type Outcome = Result<Metrics, String>;

#[derive(Default)]
pub struct Results {
    pub raw: Metrics,
    pub w1: BTreeMap<Kind, Outcome>,
    pub w2: BTreeMap<(usize, Kind), Outcome>,
    pub w3: BTreeMap<(usize, Kind), Outcome>,
    pub w4: BTreeMap<Kind, Outcome>,
    /// By records in the log.
    pub sizes: BTreeMap<(u64, Kind), Outcome>,
    pub archive: archive::ArchiveResults,
    pub sharded: sharded::ShardedResults,
    pub raft: raft::RaftResults,
    pub follow: follow::FollowResults,
}

/// Collects the runs of one case.
#[derive(Default)]
struct Runs(BTreeMap<String, Result<Vec<Metrics>, String>>);

impl Runs {
    fn failed(&self, key: &str) -> bool {
        matches!(self.0.get(key), Some(Err(_)))
    }

    fn add(&mut self, key: String, r: Result<Metrics, String>) {
        let slot = self.0.entry(key).or_insert_with(|| Ok(Vec::new()));
        match (slot, r) {
            (Ok(v), Ok(m)) => v.push(m),
            (slot @ Ok(_), Err(e)) => *slot = Err(e),
            (Err(_), _) => {}
        }
    }

    fn outcome(&self, key: &str) -> Outcome {
        match self.0.get(key) {
            Some(Ok(v)) if !v.is_empty() => Ok(stats::median(v)),
            Some(Err(e)) => Err(e.clone()),
            _ => Err("not run".into()),
        }
    }

    /// The outcome of each of `keys`, by key.
    fn outcomes(&self, keys: Vec<String>) -> BTreeMap<String, Outcome> {
        keys.into_iter()
            .map(|k| {
                let o = self.outcome(&k);
                (k, o)
            })
            .collect()
    }
}

fn run(config: &Config) -> Result<()> {
    let started = Instant::now();
    // Check the file system before creating anything on it.
    let existing = config
        .dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("."));
    let probe = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    sysinfo::refuse_memory_fs(probe, &config.dir)?;
    std::fs::create_dir_all(&config.dir)
        .map_err(|e| format!("create {}: {e}", config.dir.display()))?;
    let dir = std::fs::canonicalize(&config.dir)?;
    sysinfo::refuse_memory_fs(&dir, &dir)?;
    let mount = sysinfo::mount_of(&dir);
    let device = mount.as_ref().and_then(sysinfo::block_device);
    let fstype = mount
        .as_ref()
        .map_or_else(|| "unknown".into(), |m| m.fstype.clone());
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let run_dir = dir.join(format!("run-{stamp}-{}", std::process::id()));
    std::fs::create_dir(&run_dir)?;
    eprintln!(
        "tidelog-bench: {} in {} ({fstype}, device {}), {} run(s) per case",
        if config.quick {
            "quick run"
        } else {
            "full run"
        },
        run_dir.display(),
        device.as_deref().unwrap_or("unknown"),
        config.runs
    );
    let result = measure(config, &run_dir, device.as_deref());
    let cleanup = std::fs::remove_dir_all(&run_dir);
    let (results, counts_flushes) = result?;
    if let Err(e) = cleanup {
        eprintln!("warning: could not remove {}: {e}", run_dir.display());
    }
    let machine = Machine {
        // As given (relative by default), so the report names no path of this machine.
        dir: config.dir.clone(),
        fstype,
        device,
        device_counts_flushes: counts_flushes,
    };
    report::print(config, &machine, &results);
    if let Some(path) = &config.svg {
        match plot::w2_svg(config, &results) {
            Some(svg) => std::fs::write(path, svg)?,
            None => eprintln!("no chart: W2 ran with fewer than two thread counts"),
        }
    }
    if let Some(path) = &config.sizes_svg {
        match plot::sizes_svg(config, &results) {
            Some(svg) => std::fs::write(path, svg)?,
            None => eprintln!("no chart: the sizes workload has figures for fewer than two sizes"),
        }
    }
    eprintln!(
        "tidelog-bench: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn has(config: &Config, w: Workload) -> bool {
    config.workloads.contains(&w)
}

fn measure(config: &Config, run_dir: &Path, device: Option<&str>) -> Result<(Results, bool)> {
    let sizes = &config.sizes;
    let runs = config.runs;
    let mut results = Results::default();

    // The raw limits first: the header needs the fsync latency.
    let mut raw_runs: Vec<Metrics> = Vec::new();
    for r in 0..runs {
        eprintln!("[raw] run {}/{runs}", r + 1);
        runner::quiesce();
        let mut m = Metrics::new();
        m.extend(raw::fsync_latency(run_dir, sizes.raw_fsyncs, device)?);
        eprintln!(
            "[raw]   fsync latency p50 {:.0} µs, p99 {:.0} µs",
            m["p50_us"], m["p99_us"]
        );
        if has(config, Workload::W2) {
            runner::quiesce();
            let c = raw::commit_loop(run_dir, sizes.w2_secs)?;
            eprintln!(
                "[raw]   pwrite 100 B + fdatasync: {:.0} commits/s",
                c["commits_per_s"]
            );
            m.extend(c);
        }
        if has(config, Workload::W1) {
            runner::quiesce();
            let s = raw::sequential(
                run_dir,
                "raw-w1",
                sizes.w1_records * payload::SMALL as u64,
                false,
            )?;
            eprintln!(
                "[raw]   W1 bytes in 1 MiB writes + fdatasync: {:.1} MB/s",
                s["write_mb_s"]
            );
            m.insert("w1_mb_s".into(), s["write_mb_s"]);
        }
        if has(config, Workload::W3) || has(config, Workload::W4) {
            runner::quiesce();
            let s = raw::sequential(run_dir, "raw-big", sizes.w3_total, true)?;
            eprintln!(
                "[raw]   {} MiB in 1 MiB writes + fdatasync: {:.1} MB/s; read back {:.0} MB/s",
                sizes.w3_total >> 20,
                s["write_mb_s"],
                s["read_mb_s"]
            );
            m.insert("big_mb_s".into(), s["write_mb_s"]);
            m.insert("read_mb_s".into(), s["read_mb_s"]);
        }
        raw_runs.push(m);
    }
    results.raw = stats::median(&raw_runs);
    let counts_flushes = results
        .raw
        .get("flushes_per_sync")
        .is_some_and(|&f| f > 0.0);
    let dev_arg = format!("dev={}", device.filter(|_| counts_flushes).unwrap_or("-"));

    let mut case_no = 0u32;
    let mut case_dir = |label: &str| {
        case_no += 1;
        run_dir.join(format!("{case_no:04}-{label}"))
    };
    let clean = |d: &Path| {
        if let Err(e) = std::fs::remove_dir_all(d)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("warning: could not remove {}: {e}", d.display());
        }
    };
    let long = Duration::from_secs(if config.quick { 600 } else { 3600 });

    if has(config, Workload::W1) {
        let mut acc = Runs::default();
        let n = sizes.w1_records;
        for r in 0..runs {
            for &k in &config.contenders {
                if acc.failed(k.name()) {
                    continue;
                }
                let d = case_dir(&format!("w1-{}", k.name()));
                let out = runner::run_child(
                    "bulk",
                    k,
                    &d,
                    &[format!("n={n}"), format!("len={}", payload::SMALL)],
                    long,
                );
                clean(&d);
                match &out {
                    Ok(m) => eprintln!(
                        "[W1] run {}/{runs} {:<12} {:>12.0} records/s",
                        r + 1,
                        k.name(),
                        n as f64 / m["secs"]
                    ),
                    Err(e) => eprintln!("[W1] run {}/{runs} {:<12} FAILED: {e}", r + 1, k.name()),
                }
                acc.add(k.name().into(), out);
            }
        }
        for &k in &config.contenders {
            results.w1.insert(k, acc.outcome(k.name()));
        }
    }

    if has(config, Workload::W2) {
        let ms = (sizes.w2_secs * 1000.0) as u64;
        let timeout = Duration::from_secs_f64(sizes.w2_secs + 300.0);
        for &t in &sizes.w2_threads {
            let mut acc = Runs::default();
            for r in 0..runs {
                for &k in &config.contenders {
                    if acc.failed(k.name()) {
                        continue;
                    }
                    let d = case_dir(&format!("w2-t{t}-{}", k.name()));
                    let out = runner::run_child(
                        "commits",
                        k,
                        &d,
                        &[format!("threads={t}"), format!("ms={ms}"), dev_arg.clone()],
                        timeout,
                    );
                    clean(&d);
                    match &out {
                        Ok(m) => eprintln!(
                            "[W2 T={t}] run {}/{runs} {:<12} {:>9.0} commits/s, p99 {:.2} ms",
                            r + 1,
                            k.name(),
                            m["commits"] / m["secs"],
                            m["p99_us"] / 1e3
                        ),
                        Err(e) => {
                            eprintln!(
                                "[W2 T={t}] run {}/{runs} {:<12} FAILED: {e}",
                                r + 1,
                                k.name()
                            )
                        }
                    }
                    acc.add(k.name().into(), out);
                }
            }
            for &k in &config.contenders {
                results.w2.insert((t, k), acc.outcome(k.name()));
            }
        }
    }

    if has(config, Workload::W3) {
        for &len in &sizes.w3_lens {
            let n = sizes.w3_total / len as u64;
            let mut acc = Runs::default();
            for r in 0..runs {
                for &k in &config.contenders {
                    if acc.failed(k.name()) {
                        continue;
                    }
                    let d = case_dir(&format!("w3-{len}-{}", k.name()));
                    let out = runner::run_child(
                        "bulk",
                        k,
                        &d,
                        &[format!("n={n}"), format!("len={len}")],
                        long,
                    );
                    clean(&d);
                    match &out {
                        Ok(m) => eprintln!(
                            "[W3 {}] run {}/{runs} {:<12} {:>8.1} MB/s",
                            report::size_label(len),
                            r + 1,
                            k.name(),
                            (n * len as u64) as f64 / m["secs"] / 1e6
                        ),
                        Err(e) => eprintln!(
                            "[W3 {}] run {}/{runs} {:<12} FAILED: {e}",
                            report::size_label(len),
                            r + 1,
                            k.name()
                        ),
                    }
                    acc.add(k.name().into(), out);
                }
            }
            for &k in &config.contenders {
                results.w3.insert((len, k), acc.outcome(k.name()));
            }
        }
    }

    if has(config, Workload::W4) {
        let n = sizes.w4_records;
        let mut acc = Runs::default();
        for r in 0..runs {
            for &k in &config.contenders {
                if acc.failed(k.name()) {
                    continue;
                }
                let d = case_dir(&format!("w4-{}", k.name()));
                let params = [format!("n={n}")];
                let out = runner::run_child("w4-write", k, &d, &params, long)
                    .map_err(|e| format!("writing: {e}"))
                    .and_then(|_| runner::run_child("w4-reopen", k, &d, &params, long));
                clean(&d);
                match &out {
                    Ok(m) => eprintln!(
                        "[W4] run {}/{runs} {:<12} reopen {:.3} s, read {}",
                        r + 1,
                        k.name(),
                        m["reopen_secs"],
                        m.get("read_secs")
                            .map_or("during reopen".into(), |s| format!("{s:.3} s"))
                    ),
                    Err(e) => eprintln!("[W4] run {}/{runs} {:<12} FAILED: {e}", r + 1, k.name()),
                }
                acc.add(k.name().into(), out);
            }
        }
        for &k in &config.contenders {
            results.w4.insert(k, acc.outcome(k.name()));
        }
    }

    if has(config, Workload::Sizes) {
        for &n in &sizes.size_records {
            let mut acc = Runs::default();
            for r in 0..runs {
                for &k in &config.size_contenders {
                    if acc.failed(k.name()) {
                        continue;
                    }
                    let d = case_dir(&format!("sizes-{n}-{}", k.name()));
                    let out = open_and_read(k, &d, n, long);
                    clean(&d);
                    let label = format!(
                        "[sizes {}] run {}/{runs} {:<12}",
                        int(n as f64),
                        r + 1,
                        k.name()
                    );
                    match &out {
                        Ok(m) => eprintln!("{label} {}", size_progress(m)),
                        Err(e) => eprintln!("{label} FAILED: {e}"),
                    }
                    acc.add(k.name().into(), out);
                }
            }
            for &k in &config.size_contenders {
                results.sizes.insert((n, k), acc.outcome(k.name()));
            }
        }
    }
    if has(config, Workload::Archive) {
        results.archive = archive::measure(config, &dev_arg, &mut case_dir, &clean, long);
    }
    if has(config, Workload::Sharded) {
        results.sharded = sharded::measure(config, &dev_arg, &mut case_dir, &clean, long);
    }
    if has(config, Workload::Raft) {
        results.raft = raft::measure(
            config.runs,
            config.sizes.w2_secs,
            &dev_arg,
            &mut case_dir,
            &clean,
        );
    }
    if has(config, Workload::Follow) {
        results.follow = follow::measure(config.runs, config.sizes.w2_secs, &mut case_dir, &clean);
    }
    Ok((results, counts_flushes))
}

/// One case of the sizes workload: `n` records written in a child process, the log's bytes
/// counted, then reopened and read whole in a new child, and again in another new child
/// trusting the seals where the contender can. The trusting run's figures get a `trusted_`
/// prefix.
fn open_and_read(k: Kind, d: &Path, n: u64, timeout: Duration) -> Outcome {
    let params = [format!("n={n}")];
    let mut m = runner::run_child("w4-write", k, d, &params, timeout)
        .map_err(|e| format!("writing: {e}"))?;
    let (bytes, allocated) =
        runner::dir_bytes(d).map_err(|e| format!("sizing {}: {e}", d.display()))?;
    m.insert("log_bytes".into(), bytes as f64);
    m.insert("disk_bytes".into(), allocated as f64);
    m.extend(runner::run_child("w4-reopen", k, d, &params, timeout)?);
    if k.can_trust_seals() {
        let trusting = [format!("n={n}"), "trust_seals=1".into()];
        let t = runner::run_child("w4-reopen", k, d, &trusting, timeout)
            .map_err(|e| format!("trusting seals: {e}"))?;
        // Every segment but the last is sealed: an open that trusted none did not trust.
        if t.get("segments").is_some_and(|&s| s > 1.0)
            && t.get("segments_trusted").is_none_or(|&s| s == 0.0)
        {
            return Err("the open asked to trust seals trusted no segment".into());
        }
        m.extend(t.into_iter().map(|(key, v)| (format!("trusted_{key}"), v)));
    }
    Ok(m)
}

/// A progress line of the sizes workload.
fn size_progress(m: &Metrics) -> String {
    let f = |key: &str| m.get(key).copied();
    let mut s = format!(
        "{} on disk, {} segment(s): reopen {:.3} s",
        f("log_bytes").map_or("?".into(), report::bytes_label),
        f("segments").map_or("?".into(), |n| n.to_string()),
        f("reopen_secs").unwrap_or(f64::NAN)
    );
    if let Some(t) = f("trusted_reopen_secs") {
        let _ = write!(s, " (trusting seals {t:.3} s)");
    }
    match f("read_secs") {
        Some(r) => {
            let _ = write!(s, ", read {r:.3} s");
        }
        None => s.push_str(", read during reopen"),
    }
    if let Some(kib) = f("peak_rss_kib") {
        let _ = write!(s, ", peak RSS {:.1} MiB", kib / 1024.0);
    }
    s
}
