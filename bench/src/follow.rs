//! The follower workload (`--only follow`, not run by default): how far a follower of an
//! archive trails its writer at a steady load, to a `file://` store on the benchmark's disk and
//! to the S3 test server when one is named.
//!
//! One child process per case: a writer appends a synced batch of 10 records of 100 B every
//! millisecond (about 10,000 records/s, as many as the disk allows) while an archiver uploads
//! them every `interval`; a follower of the same archive (polling every 20 ms) reads every
//! record. For each record it yields: how long after its batch was stamped (the append's wall
//! clock, in whole milliseconds) the follower had it, and how many records the writer had
//! acknowledged past it at that moment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tidelog::{Durability, Log, Lsn};
use tidelog_archive::{ArchiveOptions, Archiver, FollowOptions, Follower};

use crate::archive::{S3_ENDPOINT, file_url, store};
use crate::contenders::Kind;
use crate::stats::{Metrics, percentile};
use crate::{Outcome, Result, Runs, runner};

/// The archiver's intervals measured.
pub const INTERVALS_MS: [u64; 2] = [100, 1000];
/// The follower's poll.
pub const POLL: Duration = Duration::from_millis(20);
/// Records per batch, and bytes per record.
pub const BATCH: usize = 10;
const RECORD_BYTES: usize = 100;

/// The workload's figures by case (`file-100`, `s3-1000`, …), and why S3 was skipped.
#[derive(Default)]
pub struct FollowResults {
    pub cases: BTreeMap<String, Outcome>,
    pub s3_skipped: Option<String>,
}

/// The key of a case.
pub fn key(store: &str, interval_ms: u64) -> String {
    format!("{store}-{interval_ms}")
}

/// Child `follow`: the writer, its archiver to `url` and a follower, for `ms` milliseconds of
/// appends; then the follower reads to the writer's last record.
pub fn follow_child(dir: &Path, url: &str, interval_ms: u64, ms: u64) -> Result<Metrics> {
    let store = store(url)?;
    let log = Arc::new(Log::open(dir)?);
    let options = ArchiveOptions::default().interval(Duration::from_millis(interval_ms));
    let archiver = Archiver::start(Arc::clone(&log), store.clone(), options)?;
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, acked, done) = (Arc::clone(&log), Arc::clone(&acked), Arc::clone(&done));
        std::thread::spawn(move || -> tidelog::Result<Lsn> {
            let batch = vec![vec![7u8; RECORD_BYTES]; BATCH];
            let start = Instant::now();
            let mut last = Lsn::ZERO;
            let mut n = 0u64;
            while start.elapsed() < Duration::from_millis(ms) {
                last = log.append_batch(&batch, Durability::Synced)?.1;
                acked.store(last.get(), Ordering::Release);
                n += 1;
                // A steady rate: the next batch is due a millisecond after this one was.
                let due = start + Duration::from_millis(n);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            done.store(true, Ordering::Release);
            Ok(last)
        })
    };
    let mut follower = Follower::new(store, FollowOptions::default().poll(POLL))?;
    let (mut delays, mut behind) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    let mut next = 1u64;
    loop {
        let record = follower.next().ok_or("the follower ended")??;
        if record.lsn().get() != next {
            return Err(format!("the follower yielded LSN {} for {next}", record.lsn()).into());
        }
        next += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64;
        let stamped = record.timestamp_ms().ok_or("a record without a time")?;
        delays.push(now.saturating_sub(stamped) as f64);
        behind.push(
            acked
                .load(Ordering::Acquire)
                .saturating_sub(record.lsn().get()) as f64,
        );
        if done.load(Ordering::Acquire) && record.lsn().get() >= acked.load(Ordering::Acquire) {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let last = writer.join().map_err(|_| "the writer panicked")??;
    if next - 1 != last.get() {
        return Err(format!("followed {} records of {last}", next - 1).into());
    }
    let status = archiver.stop()?;
    delays.sort_by(f64::total_cmp);
    behind.sort_by(f64::total_cmp);
    let mut m = Metrics::new();
    m.insert("records".into(), last.get() as f64);
    m.insert("secs".into(), secs);
    m.insert("delay_p50_ms".into(), percentile(&delays, 0.5));
    m.insert("delay_p99_ms".into(), percentile(&delays, 0.99));
    m.insert("delay_max_ms".into(), percentile(&delays, 1.0));
    m.insert("behind_p50".into(), percentile(&behind, 0.5));
    m.insert("behind_p99".into(), percentile(&behind, 0.99));
    m.insert("uploads".into(), status.uploads as f64);
    m.insert("follower_retries".into(), follower.retries() as f64);
    Ok(m)
}

/// Runs every case `runs` times, each in a new process and a new store.
pub fn measure(
    runs: usize,
    secs: f64,
    case_dir: &mut dyn FnMut(&str) -> PathBuf,
    clean: &dyn Fn(&Path),
) -> FollowResults {
    let ms = (secs * 1000.0) as u64;
    let timeout = Duration::from_secs_f64(secs + 300.0);
    let mut results = FollowResults::default();
    let s3 = std::env::var_os(S3_ENDPOINT).is_some();
    if !s3 {
        let why = format!("{S3_ENDPOINT} is not set (run under `bash .ci/with-s3`)");
        eprintln!("[follow] S3 skipped: {why}");
        results.s3_skipped = Some(why);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut acc = Runs::default();
    let mut keys = Vec::new();
    for r in 0..runs {
        for interval in INTERVALS_MS {
            let mut stores = vec![("file", None)];
            if s3 {
                stores.push(("s3", Some(())));
            }
            for (name, _) in stores {
                let k = key(name, interval);
                if r == 0 {
                    keys.push(k.clone());
                }
                let log = case_dir(&format!("follow-log-{k}"));
                let archive = case_dir(&format!("follow-store-{k}"));
                let url = if name == "file" {
                    file_url(&archive)
                } else {
                    let bucket = std::env::var("TIDELOG_TEST_S3_BUCKET")
                        .unwrap_or_else(|_| "tidelog-test".into());
                    format!(
                        "s3://{bucket}/tidelog-bench-follow-{stamp}-{}-{r}-{k}",
                        std::process::id()
                    )
                };
                let params = [
                    format!("store={url}"),
                    format!("interval_ms={interval}"),
                    format!("ms={ms}"),
                ];
                let out = runner::run_child("follow", Kind::Tidelog, &log, &params, timeout);
                clean(&log);
                clean(&archive);
                match &out {
                    Ok(m) => eprintln!(
                        "[follow] run {}/{runs} {k}: {:.0} records, delay p50 {:.0} ms p99 {:.0} \
                         ms, behind p50 {:.0} p99 {:.0} records",
                        r + 1,
                        m["records"],
                        m["delay_p50_ms"],
                        m["delay_p99_ms"],
                        m["behind_p50"],
                        m["behind_p99"]
                    ),
                    Err(e) => eprintln!("[follow] run {}/{runs} {k} FAILED: {e}", r + 1),
                }
                acc.add(k, out);
            }
        }
    }
    results.cases = acc.outcomes(keys);
    results
}
