//! `tidelog fsync-probe [DIR]`: what write + fsync costs on the disk under DIR, measured like
//! `pg_test_fsync`, and which tidelog setting suits it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use super::{memory_file_system, parse_seconds};
use crate::output::{Ctx, Style, Table, human_bytes, human_duration, note, percentile, thousands};

/// Writes wrap around to the start of the file past this offset.
const MAX_FILE_BYTES: u64 = 64 << 20;
/// Below this fdatasync latency, a sync per commit is cheap.
const CHEAP_SYNC: Duration = Duration::from_micros(100);

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each test appends blocks to a new file for --seconds and makes each one durable: with
write + fdatasync (what tidelog does), write + fsync, and writes to a file opened with O_DSYNC;
each at 1 KiB and 8 KiB. It prints operations per second and the median (p50) and p99
latencies, then which tidelog setting suits the disk. The test file is removed afterwards.

Examples:
  tidelog fsync-probe                  # the disk under the current directory
  tidelog fsync-probe ./wal --seconds 5
  tidelog fsync-probe /mnt/nvme --json")]
pub(crate) struct Args {
    /// A directory on the disk to measure (default: the current directory).
    pub(crate) dir: Option<PathBuf>,

    /// How long each test runs, in seconds.
    #[arg(long, value_name = "S", default_value = "2", value_parser = parse_seconds)]
    pub(crate) seconds: Duration,
}

/// How a test makes each write durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// `write` then `fdatasync`: what tidelog does.
    Fdatasync,
    /// `write` then `fsync`.
    Fsync,
    /// `write` to a file opened with `O_DSYNC`.
    ODsync,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Fdatasync => "write + fdatasync",
            Method::Fsync => "write + fsync",
            Method::ODsync => "O_DSYNC write",
        }
    }
}

/// What one test measured.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
}

impl Measured {
    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Removes the probe file however the probe ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Appends `block`-byte writes to a new file in `dir` for `duration` (at least one), making
/// each durable with `method`; the file is removed afterwards.
pub(crate) fn measure(
    dir: &Path,
    method: Method,
    block: usize,
    duration: Duration,
    tick: &dyn Fn(Duration),
) -> anyhow::Result<Measured> {
    let path = dir.join(format!(".tidelog-fsync-probe-{}.tmp", std::process::id()));
    let _remove = RemoveOnDrop(path.clone());
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(true);
    if method == Method::ODsync {
        set_dsync(&mut options)?;
    }
    let file = options
        .open(&path)
        .with_context(|| format!("cannot create the test file {}", path.display()))?;
    let buf = vec![0x5au8; block];
    let mut latencies = Vec::new();
    let mut offset = 0u64;
    let started = Instant::now();
    let mut last_tick = started;
    loop {
        let t0 = Instant::now();
        write_at(&file, &buf, offset)
            .with_context(|| format!("cannot write {}", path.display()))?;
        match method {
            Method::Fdatasync => file.sync_data(),
            Method::Fsync => file.sync_all(),
            Method::ODsync => Ok(()),
        }
        .with_context(|| format!("cannot sync {}", path.display()))?;
        latencies.push(t0.elapsed());
        offset += block as u64;
        if offset >= MAX_FILE_BYTES {
            offset = 0;
        }
        let now = Instant::now();
        if now.duration_since(last_tick) >= Duration::from_millis(100) {
            last_tick = now;
            tick(now.duration_since(started));
        }
        if now.duration_since(started) >= duration {
            break;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(Measured {
        ops: latencies.len() as u64,
        elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    })
}

#[cfg(unix)]
fn set_dsync(options: &mut OpenOptions) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    options.custom_flags(rustix::fs::OFlags::DSYNC.bits().cast_signed());
    Ok(())
}

#[cfg(not(unix))]
fn set_dsync(_options: &mut OpenOptions) -> anyhow::Result<()> {
    anyhow::bail!("O_DSYNC is only measured on Unix")
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = buf.get(n..).unwrap_or_default();
        offset += n as u64;
    }
    Ok(())
}

pub(crate) fn run(args: Args, ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let memory = memory_file_system(&dir);
    let mut out = ctx.out();
    if !ctx.json {
        out.line(format_args!(
            "fsync probe of the disk under {}: appending writes, {} per test",
            dir.display(),
            human_duration(args.seconds)
        ))?;
        out.flush()?;
    }
    if let Some(kind) = memory {
        note(format_args!(
            "warning: {} is on {kind}, which lives in memory: fsync does nothing there",
            dir.display()
        ));
    }
    let methods = if cfg!(unix) {
        vec![Method::Fdatasync, Method::Fsync, Method::ODsync]
    } else {
        vec![Method::Fdatasync, Method::Fsync]
    };
    let mut table = Table::new(&["method", ">size", ">ops/s", ">p50", ">p99"]);
    let mut fdatasync_small = None;
    for method in methods {
        for block in [1024usize, 8192] {
            let bar = ctx.timed_bar(
                args.seconds,
                &format!("{} {}", method.name(), human_bytes(block as u64)),
            );
            let m = measure(&dir, method, block, args.seconds, &|elapsed| {
                bar.set_position(u64::try_from(elapsed.as_millis() / 100).unwrap_or(u64::MAX));
            })?;
            bar.finish_and_clear();
            if method == Method::Fdatasync && block == 1024 {
                fdatasync_small = Some(m.clone());
            }
            if ctx.json {
                out.json(&json!({
                    "method": method.name(),
                    "block_bytes": block,
                    "ops": m.ops,
                    "seconds": m.elapsed.as_secs_f64(),
                    "ops_per_sec": m.ops_per_sec(),
                    "p50_us": m.p50.as_secs_f64() * 1e6,
                    "p99_us": m.p99.as_secs_f64() * 1e6,
                }))?;
                out.flush()?;
            }
            table.row(vec![
                method.name().to_owned(),
                human_bytes(block as u64),
                thousands(m.ops_per_sec().round() as u64),
                human_duration(m.p50),
                human_duration(m.p99),
            ]);
        }
    }
    let advice = fdatasync_small
        .as_ref()
        .map(|m| recommend(m, memory.is_some()))
        .unwrap_or_default();
    if ctx.json {
        out.json(&json!({
            "recommendation": advice,
            "memory_file_system": memory,
        }))?;
    } else {
        out.line("")?;
        for line in table.lines() {
            out.line(line)?;
        }
        out.line("")?;
        for (i, line) in advice.iter().enumerate() {
            if i == 0 {
                out.line(format_args!("{} {line}", out.paint(Style::Bold, "advice:")))?;
            } else {
                out.line(format_args!("  {line}"))?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Which tidelog setting suits a disk whose 1 KiB write + fdatasync measured `m`.
fn recommend(m: &Measured, memory: bool) -> Vec<String> {
    let per_thread = 1.0 / m.p50.as_secs_f64().max(1e-9);
    let mut advice = Vec::new();
    if memory {
        advice.push(
            "this directory is in memory: nothing here survives a power loss, whatever tidelog \
             does; measure a directory on the disk the log will live on"
                .to_owned(),
        );
        return advice;
    }
    if m.p50 < CHEAP_SYNC {
        advice.push(format!(
            "fdatasync is cheap here (p50 {}): a sync per commit costs little, so \
             Durability::Synced appends (or SyncPolicy::EveryCommit) are a fine default; one \
             thread can make about {} commits/s durable.",
            human_duration(m.p50),
            thousands(per_thread.round() as u64)
        ));
        if m.p50 < Duration::from_micros(20) {
            advice.push(
                "That is faster than most disks can flush: check that the disk's write cache \
                 is durable (battery- or capacitor-backed), or a power loss may lose \
                 acknowledged commits."
                    .to_owned(),
            );
        }
    } else {
        let interval_ms = (m.p50.as_secs_f64() * 1e3 * 2.0).ceil().max(1.0);
        advice.push(format!(
            "fdatasync is expensive here (p50 {}): one thread doing a sync per commit gets \
             about {} commits/s.",
            human_duration(m.p50),
            thousands(per_thread.round() as u64)
        ));
        advice.push(
            "Commit from many threads at once: group commit makes one fsync cover every commit \
             waiting for it."
                .to_owned(),
        );
        advice.push(format!(
            "Or append with Durability::Buffered and SyncPolicy::Interval(Duration::from_millis({interval_ms})) \
             if losing the last few milliseconds of records in a power loss is acceptable."
        ));
    }
    advice
}
