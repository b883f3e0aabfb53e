//! The archive workload (`--only archive`, not run by default): tidelog-archive's archive and
//! restore of a log of about 1 GiB, to a `file://` store on the benchmark's disk and to the S3
//! test server when one is named, beside a raw copy of the log's files; and W2 with an
//! archiver running in the committers' process, its lag behind the durable log sampled.
//!
//! The stores: a `file://` URL, or an `s3://` URL on the test server that `.ci/with-s3` starts
//! (its endpoint in `TIDELOG_TEST_S3_ENDPOINT`, its bucket in `TIDELOG_TEST_S3_BUCKET`, with
//! the test credentials the archive's own tests use).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use tidelog::Log;
use tidelog_archive::{ArchiveOptions, Archiver, Store, Target};

use crate::contenders::{self, Kind, Purpose};
use crate::payload::{self, Verifier};
use crate::stats::Metrics;
use crate::{Config, Outcome, Result, Runs, raw, runner};

/// The environment variable naming the S3 test server.
pub const S3_ENDPOINT: &str = "TIDELOG_TEST_S3_ENDPOINT";
/// The environment variable naming its bucket.
const S3_BUCKET: &str = "TIDELOG_TEST_S3_BUCKET";

/// W2's numbers of committing threads with and without an archiver.
pub const W2_THREADS: [usize; 2] = [16, 64];
/// The archiver's interval in W2 (the default).
pub const W2_INTERVAL: Duration = Duration::from_secs(1);
/// How often W2's sampler reads the archiver's lag.
const LAG_SAMPLE: Duration = Duration::from_millis(10);

/// The workload's figures: by case (`copy`, `copy-nosync`, `archive-file`, `restore-file`,
/// `archive-s3`, `restore-s3`, `w2-t16`, `w2-t16-archived`, …), and why S3 was skipped.
#[derive(Default)]
pub struct ArchiveResults {
    pub cases: BTreeMap<String, Outcome>,
    pub s3_skipped: Option<String>,
}

/// The store at `url`: a `file://` directory, or the S3 test server for `s3://`.
pub fn store(url: &str) -> Result<Store> {
    if url.starts_with("s3://") {
        let endpoint = std::env::var(S3_ENDPOINT)
            .map_err(|_| format!("{S3_ENDPOINT} is not set for the store {url}"))?;
        Ok(Store::from_url_with(
            url,
            [
                ("endpoint", endpoint.as_str()),
                ("allow_http", "true"),
                ("virtual_hosted_style_request", "false"),
                ("region", "us-east-1"),
                ("access_key_id", "tidelog-test"),
                ("secret_access_key", "tidelog-test-secret"),
            ],
        )?)
    } else {
        Ok(Store::from_url(url)?)
    }
}

/// The `file://` URL of a directory.
pub fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// An `s3://` URL under the test server's bucket with a prefix of its own, or why there is
/// none.
fn s3_url(tag: &str) -> Result<String, String> {
    if std::env::var_os(S3_ENDPOINT).is_none() {
        return Err(format!(
            "{S3_ENDPOINT} is not set (run under `bash .ci/with-s3`, which starts the S3 test \
             server)"
        ));
    }
    let bucket = std::env::var(S3_BUCKET).unwrap_or_else(|_| "tidelog-test".into());
    Ok(format!("s3://{bucket}/{tag}"))
}

/// Removes every object under the store's prefix; returns how many.
fn clear(url: &str) -> Result<usize> {
    let store = store(url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let os = store.object_store();
        let locations = os
            .list(Some(store.prefix()))
            .map_ok(|meta| meta.location)
            .boxed();
        let deleted: Vec<_> = os.delete_stream(locations).try_collect().await?;
        Ok(deleted.len())
    })
}

/// Child `archive`: opens the log in `dir` (`n` records), starts an archiver to `url` and
/// stops it at once, which uploads every durable record; the time from the start to the stop's
/// return.
pub fn archive_child(dir: &Path, url: &str, n: u64) -> Result<Metrics> {
    let store = store(url)?;
    let log = Arc::new(Log::builder(dir).create_if_missing(false).open()?);
    if log.last_lsn().get() != n {
        return Err(format!("the log holds {} records, not {n}", log.last_lsn()).into());
    }
    let segments = log.segments();
    let log_bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    let t0 = Instant::now();
    let archiver = Archiver::start(Arc::clone(&log), store, ArchiveOptions::default())?;
    let status = archiver.stop()?;
    let secs = t0.elapsed().as_secs_f64();
    if status.archived_lsn != log.last_lsn() {
        return Err(format!(
            "archived up to LSN {} of {}",
            status.archived_lsn,
            log.last_lsn()
        )
        .into());
    }
    let log = Arc::try_unwrap(log).map_err(|_| "the log is still shared")?;
    log.close()?;
    let mut m = Metrics::new();
    m.insert("secs".into(), secs);
    m.insert("log_bytes".into(), log_bytes as f64);
    m.insert("segments".into(), segments.len() as f64);
    m.insert("uploads".into(), status.uploads as f64);
    m.insert("uploaded_bytes".into(), status.bytes as f64);
    m.insert("retries".into(), status.retries as f64);
    Ok(m)
}

/// Child `restore`: restores the archive at `url` into `dir` (which must not exist), to its
/// latest record, timed; then (not timed) checks it holds the `n` records, reading and
/// verifying every one.
pub fn restore_child(dir: &Path, url: &str, n: u64) -> Result<Metrics> {
    let store = store(url)?;
    let t0 = Instant::now();
    let report = tidelog_archive::restore(&store, dir, Target::Latest)?;
    let secs = t0.elapsed().as_secs_f64();
    if report.first_lsn.get() != 1 || report.last_lsn.get() != n {
        return Err(format!(
            "restored LSNs {} to {}, not 1 to {n}",
            report.first_lsn, report.last_lsn
        )
        .into());
    }
    let (files, _) = runner::dir_bytes(dir)?;
    let wal = contenders::open(
        Kind::Tidelog,
        dir,
        Purpose::Reopen {
            len: payload::SMALL,
            trust_seals: false,
        },
    )?;
    let mut verify = Verifier::new(payload::SMALL);
    wal.read_all(&mut verify)?;
    wal.close()?;
    if verify.next != n {
        return Err(format!("read back {} of {n} restored records", verify.next).into());
    }
    let mut m = Metrics::new();
    m.insert("secs".into(), secs);
    m.insert("bytes".into(), report.bytes as f64);
    m.insert("objects".into(), report.objects as f64);
    m.insert("file_bytes".into(), files as f64);
    Ok(m)
}

/// W2's archiver: started on `log` before the committers, its lag sampled every 10 ms while
/// they run, stopped after them.
pub struct W2Archiver {
    archiver: Archiver,
    log: Arc<Log>,
    interval: Duration,
}

impl W2Archiver {
    pub fn start(log: Arc<Log>, url: &str, interval: Duration) -> Result<W2Archiver> {
        let options = ArchiveOptions::default().interval(interval);
        Ok(W2Archiver {
            archiver: Archiver::start(Arc::clone(&log), store(url)?, options)?,
            log,
            interval,
        })
    }

    /// Samples the lag every 10 ms until `stop` is set.
    pub fn sample(&self, stop: &std::sync::atomic::AtomicBool) -> Vec<u64> {
        let mut lags = Vec::with_capacity(1 << 12);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            lags.push(self.archiver.status().lag_records());
            std::thread::sleep(LAG_SAMPLE);
        }
        lags
    }

    /// Stops the archiver (which uploads what is durable) and gives its figures and the lag's:
    /// `lag_p50`, `lag_max` (records), the uploads and their bytes, the log's bytes, the stop's
    /// seconds.
    pub fn stop(self, mut lags: Vec<u64>) -> Result<Metrics> {
        let t0 = Instant::now();
        let status = self.archiver.stop()?;
        let stop_secs = t0.elapsed().as_secs_f64();
        if status.lag_records() != 0 {
            return Err(format!(
                "the archiver stopped {} records behind the durable log",
                status.lag_records()
            )
            .into());
        }
        if lags.is_empty() {
            return Err("no lag sampled".into());
        }
        lags.sort_unstable();
        let lags: Vec<f64> = lags.into_iter().map(|l| l as f64).collect();
        let mut m = Metrics::new();
        m.insert("lag_p50".into(), crate::stats::percentile(&lags, 0.50));
        m.insert("lag_max".into(), lags[lags.len() - 1]);
        m.insert("lag_samples".into(), lags.len() as f64);
        m.insert("interval_ms".into(), self.interval.as_secs_f64() * 1e3);
        m.insert("archive_uploads".into(), status.uploads as f64);
        m.insert("archive_bytes".into(), status.bytes as f64);
        m.insert("archive_retries".into(), status.retries as f64);
        m.insert("archive_stop_secs".into(), stop_secs);
        let log_bytes: u64 = self.log.segments().iter().map(|s| s.bytes).sum();
        m.insert("log_bytes".into(), log_bytes as f64);
        Ok(m)
    }
}

/// The workload, `config.runs` times: each run writes a log, copies its files (with and
/// without fsync), archives it to a `file://` store and to S3, restores it from each, then runs
/// W2 at each of [`W2_THREADS`] without and with an archiver.
pub fn measure(
    config: &Config,
    dev_arg: &str,
    case_dir: &mut dyn FnMut(&str) -> PathBuf,
    clean: &dyn Fn(&Path),
    long: Duration,
) -> ArchiveResults {
    let n = config.sizes.archive_records;
    let runs = config.runs;
    let mut acc = Runs::default();
    let s3 = s3_url("probe").err();
    if let Some(why) = &s3 {
        eprintln!("[archive] S3 skipped: {why}");
    }
    let mut keys: Vec<String> = ["copy", "copy-nosync", "archive-file", "restore-file"]
        .map(String::from)
        .into();
    if s3.is_none() {
        keys.extend(["archive-s3".into(), "restore-s3".into()]);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for r in 0..runs {
        let label = format!("[archive] run {}/{runs}", r + 1);
        let log = case_dir("archive-log");
        let written = runner::run_child("w4-write", Kind::Tidelog, &log, &[format!("n={n}")], long);
        if let Err(e) = written {
            eprintln!("{label} writing the log FAILED: {e}");
            for key in &keys {
                acc.add(key.clone(), Err(format!("writing the log: {e}")));
            }
            clean(&log);
        } else {
            for (key, sync) in [("copy", true), ("copy-nosync", false)] {
                let copy = case_dir(key);
                runner::quiesce();
                let out = raw::copy_dir(&log, &copy, sync).map_err(|e| e.to_string());
                clean(&copy);
                match &out {
                    Ok(m) => eprintln!(
                        "{label} raw copy{}: {:.1} MB/s ({:.2} s)",
                        if sync {
                            ", fsync each file"
                        } else {
                            ", no fsync"
                        },
                        m["bytes"] / m["secs"] / 1e6,
                        m["secs"]
                    ),
                    Err(e) => eprintln!("{label} raw copy FAILED: {e}"),
                }
                acc.add(key.into(), out);
            }
            let mut stores = vec![("file", Ok(file_url(&case_dir("archive-store"))))];
            if s3.is_none() {
                stores.push((
                    "s3",
                    s3_url(&format!("tidelog-bench-{stamp}-{}-{r}", std::process::id())),
                ));
            }
            for (name, url) in stores {
                let Ok(url) = url else { continue };
                let params = [format!("store={url}"), format!("n={n}")];
                let out = runner::run_child("archive", Kind::Tidelog, &log, &params, long);
                match &out {
                    Ok(m) => eprintln!(
                        "{label} archive to {name}: {:.1} MB/s ({:.2} s, {} uploads)",
                        m["log_bytes"] / m["secs"] / 1e6,
                        m["secs"],
                        m["uploads"]
                    ),
                    Err(e) => eprintln!("{label} archive to {name} FAILED: {e}"),
                }
                let archived = out.is_ok();
                acc.add(format!("archive-{name}"), out);
                let restored = case_dir(&format!("archive-restored-{name}"));
                let out = if archived {
                    runner::run_child("restore", Kind::Tidelog, &restored, &params, long)
                } else {
                    Err("not archived".into())
                };
                clean(&restored);
                match &out {
                    Ok(m) => eprintln!(
                        "{label} restore from {name}: {:.1} MB/s ({:.2} s)",
                        m["bytes"] / m["secs"] / 1e6,
                        m["secs"]
                    ),
                    Err(e) => eprintln!("{label} restore from {name} FAILED: {e}"),
                }
                acc.add(format!("restore-{name}"), out);
                if let Some(dir) = url.strip_prefix("file://") {
                    clean(Path::new(dir));
                } else if let Err(e) = clear(&url) {
                    eprintln!("warning: could not remove the objects under {url}: {e}");
                }
            }
            clean(&log);
        }
        let ms = (config.sizes.w2_secs * 1000.0) as u64;
        let timeout = Duration::from_secs_f64(config.sizes.w2_secs + 300.0);
        for t in W2_THREADS {
            for archived in [false, true] {
                let key = format!("w2-t{t}{}", if archived { "-archived" } else { "" });
                let d = case_dir(&format!("archive-{key}"));
                let mut params = vec![
                    format!("threads={t}"),
                    format!("ms={ms}"),
                    dev_arg.to_owned(),
                ];
                // The store on the same disk, beside the log.
                let store_dir = archived.then(|| d.with_extension("store"));
                if let Some(dir) = &store_dir {
                    params.push(format!("archive={}", file_url(dir)));
                    params.push(format!("interval_ms={}", W2_INTERVAL.as_millis()));
                }
                let out = runner::run_child("commits", Kind::Tidelog, &d, &params, timeout);
                clean(&d);
                if let Some(dir) = &store_dir {
                    clean(dir);
                }
                match &out {
                    Ok(m) => {
                        let rate = m["commits"] / m["secs"];
                        let lag = m.get("lag_max").map_or(String::new(), |l| {
                            format!(
                                ", lag p50 {:.0} max {l:.0} records ({:.0} ms)",
                                m["lag_p50"],
                                l / rate * 1e3
                            )
                        });
                        eprintln!(
                            "{label} W2 T={t}{}: {rate:.0} commits/s{lag}",
                            if archived { " with an archiver" } else { "" }
                        );
                    }
                    Err(e) => eprintln!("{label} W2 T={t} FAILED: {e}"),
                }
                acc.add(key, out);
            }
        }
    }
    for t in W2_THREADS {
        keys.push(format!("w2-t{t}"));
        keys.push(format!("w2-t{t}-archived"));
    }
    ArchiveResults {
        cases: acc.outcomes(keys),
        s3_skipped: s3,
    }
}
