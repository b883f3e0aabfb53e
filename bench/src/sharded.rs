//! The sharded workload (`--only sharded`, not run by default): tidelog's `ShardedLog` with 1, 2
//! and 4 shards against one `Log`, in W2's durable commits at several numbers of committers
//! (committer `t` appends to shard `t % N`), and the merged replay of a sharded log of about
//! 1 GiB against reading one log of the same records.
//!
//! Every case runs in a process of its own, as the other workloads do.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tidelog::Durability;
use tidelog::sharded::ShardedLog;

use crate::contenders::{Kind, Reading, Wal};
use crate::payload::{self, Verifier};
use crate::stats::Metrics;
use crate::{Config, Outcome, Result, Runs, runner};

/// The numbers of shards measured (beside one plain log).
pub const SHARDS: [usize; 3] = [1, 2, 4];
/// The numbers of committing threads.
pub const THREADS: [usize; 3] = [4, 16, 64];
/// The shards of the replayed log.
pub const REPLAY_SHARDS: usize = 4;
/// The epochs the replayed log's records are spread over.
pub const REPLAY_EPOCHS: u64 = 16;

/// Opens (creating) the sharded log at `dir` with `shards` shards, behind [`Wal`] for W2's
/// committers.
pub fn open(dir: &Path, shards: usize) -> Result<Box<dyn Wal>> {
    Ok(Box::new(Sharded {
        log: ShardedLog::builder(dir).shards(shards).open()?,
        next_thread: AtomicUsize::new(0),
    }))
}

thread_local! {
    /// The shard the calling thread appends to, given on its first append.
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

struct Sharded {
    log: ShardedLog,
    /// Hands out shards round-robin to the threads in the order of their first append.
    next_thread: AtomicUsize,
}

impl Sharded {
    fn my_shard(&self) -> usize {
        SHARD.with(|s| match s.get() {
            Some(shard) => shard,
            None => {
                let shard =
                    self.next_thread.fetch_add(1, Ordering::Relaxed) % self.log.shard_count();
                s.set(Some(shard));
                shard
            }
        })
    }
}

impl Wal for Sharded {
    fn append(&self, record: &[u8]) -> Result<()> {
        self.log
            .append(self.my_shard(), record, Durability::Buffered)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(self.log.barrier(self.log.epoch())?)
    }

    fn append_durable(&self, record: &[u8]) -> Result<()> {
        self.log
            .append(self.my_shard(), record, Durability::Synced)?;
        Ok(())
    }

    fn read_all(&self, _verify: &mut Verifier) -> Result<Reading> {
        Err("the sharded log is read by the sharded-replay case".into())
    }

    fn lib_syncs(&self) -> Option<u64> {
        Some(self.log.metrics().fsyncs)
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.log.close()?)
    }
}

/// Child `sharded-write`: `n` records of 100 B, record `i` to shard `i % shards`, the epoch
/// advanced [`REPLAY_EPOCHS`] - 1 times along the way, all made durable by a barrier at the end.
pub fn write_child(dir: &Path, shards: usize, n: u64) -> Result<Metrics> {
    let log = ShardedLog::builder(dir).shards(shards).open()?;
    let mut buf = vec![0u8; payload::SMALL];
    let per_epoch = n.div_ceil(REPLAY_EPOCHS).max(1);
    let t0 = Instant::now();
    for i in 0..n {
        if i > 0 && i % per_epoch == 0 {
            log.advance_epoch()?;
        }
        payload::fill(i, &mut buf);
        log.append((i % shards as u64) as usize, &buf, Durability::Buffered)?;
    }
    log.barrier(log.epoch())?;
    let secs = t0.elapsed().as_secs_f64();
    let used = log.metrics().used_bytes;
    log.close()?;
    let mut m = Metrics::new();
    m.insert("write_secs".into(), secs);
    m.insert("used_bytes".into(), used as f64);
    Ok(m)
}

/// Child `sharded-replay`: opens the sharded log at `dir` (timed) and replays it whole (timed),
/// checking every record's bytes, that record `i` comes from shard `i % shards`, that each
/// shard's records come in the order they were written, that epochs never go back, and that
/// all `n` came.
pub fn replay_child(dir: &Path, shards: usize, n: u64) -> Result<Metrics> {
    let t0 = Instant::now();
    let log = ShardedLog::builder(dir).open()?;
    let open = t0.elapsed().as_secs_f64();
    if log.shard_count() != shards {
        return Err(format!("{} shards, not {shards}", log.shard_count()).into());
    }
    let t1 = Instant::now();
    let mut next: Vec<u64> = (0..shards as u64).collect();
    let (mut count, mut epoch) = (0u64, 0u64);
    for r in log.replay()? {
        let r = r?;
        if r.epoch < epoch {
            return Err(format!("epoch {} after epoch {epoch}", r.epoch).into());
        }
        epoch = r.epoch;
        let data = r.record.data();
        let i = u64::from_le_bytes(
            data.get(..8)
                .ok_or("a record shorter than 8 bytes")?
                .try_into()?,
        );
        if i != next[r.shard] {
            return Err(
                format!("shard {}: record {i}, expected {}", r.shard, next[r.shard]).into(),
            );
        }
        let mut want = vec![0u8; payload::SMALL];
        payload::fill(i, &mut want);
        if data != want.as_slice() {
            return Err(format!("record {i}: bytes differ").into());
        }
        next[r.shard] += shards as u64;
        count += 1;
    }
    let replay = t1.elapsed().as_secs_f64();
    if count != n {
        return Err(format!("replayed {count} of {n} records").into());
    }
    log.close()?;
    let mut m = Metrics::new();
    m.insert("reopen_secs".into(), open);
    m.insert("read_secs".into(), replay);
    m.insert("epochs".into(), epoch as f64);
    if let Some(kib) = crate::sysinfo::peak_rss_kib() {
        m.insert("peak_rss_kib".into(), kib as f64);
    }
    Ok(m)
}

/// The workload's figures by case: `commits-log-t{T}`, `commits-s{N}-t{T}`, `replay-log`,
/// `replay-s{N}`.
pub type ShardedResults = BTreeMap<String, Outcome>;

/// The key of W2's case with `shards` shards (`None`: one plain log) at `threads` committers.
pub fn commits_key(shards: Option<usize>, threads: usize) -> String {
    match shards {
        None => format!("commits-log-t{threads}"),
        Some(n) => format!("commits-s{n}-t{threads}"),
    }
}

/// The workload, `config.runs` times: W2 at each of [`THREADS`] on one log and on each of
/// [`SHARDS`]; then a log of `config.sizes.archive_records` records written as one log and as
/// [`REPLAY_SHARDS`] shards, each read back whole in a new process.
pub fn measure(
    config: &Config,
    dev_arg: &str,
    case_dir: &mut dyn FnMut(&str) -> PathBuf,
    clean: &dyn Fn(&Path),
    long: Duration,
) -> ShardedResults {
    let runs = config.runs;
    let mut acc = Runs::default();
    let ms = (config.sizes.w2_secs * 1000.0) as u64;
    let timeout = Duration::from_secs_f64(config.sizes.w2_secs + 300.0);
    let mut keys = Vec::new();
    for t in THREADS {
        for shards in std::iter::once(None).chain(SHARDS.map(Some)) {
            keys.push(commits_key(shards, t));
        }
    }
    keys.extend(["replay-log".into(), format!("replay-s{REPLAY_SHARDS}")]);
    for r in 0..runs {
        let label = format!("[sharded] run {}/{runs}", r + 1);
        for t in THREADS {
            for shards in std::iter::once(None).chain(SHARDS.map(Some)) {
                let key = commits_key(shards, t);
                let d = case_dir(&format!("sharded-{key}"));
                let mut params = vec![format!("threads={t}"), format!("ms={ms}"), dev_arg.into()];
                if let Some(n) = shards {
                    params.push(format!("shards={n}"));
                }
                let out = runner::run_child("commits", Kind::Tidelog, &d, &params, timeout);
                clean(&d);
                match &out {
                    Ok(m) => eprintln!(
                        "{label} W2 T={t} {}: {:.0} commits/s, {:.1} commits per fsync",
                        shards.map_or("one log".into(), |n| format!("{n} shard(s)")),
                        m["commits"] / m["secs"],
                        m.get("lib_syncs").map_or(f64::NAN, |s| m["commits"] / s)
                    ),
                    Err(e) => eprintln!("{label} W2 T={t} FAILED: {e}"),
                }
                acc.add(key, out);
            }
        }
        let n = config.sizes.archive_records;
        let one = case_dir("sharded-replay-log");
        let out = runner::run_child("w4-write", Kind::Tidelog, &one, &[format!("n={n}")], long)
            .and_then(|_| {
                runner::run_child("w4-reopen", Kind::Tidelog, &one, &[format!("n={n}")], long)
            });
        clean(&one);
        report_replay(&label, "one log", &out);
        acc.add("replay-log".into(), out);
        let root = case_dir("sharded-replay-root");
        let params = [format!("shards={REPLAY_SHARDS}"), format!("n={n}")];
        let out =
            runner::run_child("sharded-write", Kind::Tidelog, &root, &params, long).and_then(|w| {
                let mut m =
                    runner::run_child("sharded-replay", Kind::Tidelog, &root, &params, long)?;
                m.insert("used_bytes".into(), w["used_bytes"]);
                Ok(m)
            });
        clean(&root);
        report_replay(&label, &format!("{REPLAY_SHARDS} shards"), &out);
        acc.add(format!("replay-s{REPLAY_SHARDS}"), out);
    }
    acc.outcomes(keys)
}

fn report_replay(label: &str, what: &str, out: &Outcome) {
    match out {
        Ok(m) => eprintln!(
            "{label} read back {what}: open {:.3} s, read {:.3} s",
            m["reopen_secs"],
            m.get("read_secs").copied().unwrap_or(f64::NAN)
        ),
        Err(e) => eprintln!("{label} read back {what} FAILED: {e}"),
    }
}
