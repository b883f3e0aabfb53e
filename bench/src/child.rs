//! One case, run in a process of its own: a fresh heap, no threads or process-global state left
//! by another contender (walrus-rust keeps its directory and fsync schedule per process), and a
//! real restart between writing and reopening in W4. The parent reads the `RESULT` line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::contenders::{self, Kind, Purpose, Reading};
use crate::payload::{self, Verifier};
use crate::stats::{Metrics, percentile};
use crate::{Result, archive, follow, raft, sharded, sysinfo};

/// Entry point for `--child CASE CONTENDER DIR key=value...`.
pub fn main(args: &[String]) -> ! {
    match run(args) {
        Ok(m) => {
            let fields: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("RESULT {}", fields.join(" "));
            std::process::exit(0);
        }
        Err(e) => {
            let msg = e.to_string().replace('\n', " ");
            println!("ERROR {msg}");
            std::process::exit(1);
        }
    }
}

fn run(args: &[String]) -> Result<Metrics> {
    let [case, contender, dir, rest @ ..] = args else {
        return Err("usage: --child CASE CONTENDER DIR key=value...".into());
    };
    let kind = Kind::parse(contender).ok_or("unknown contender")?;
    let dir = PathBuf::from(dir);
    let params: BTreeMap<&str, &str> = rest.iter().filter_map(|a| a.split_once('=')).collect();
    let param =
        |k: &str| -> Result<&str> { Ok(*params.get(k).ok_or_else(|| format!("missing {k}="))?) };
    let num = |k: &str| -> Result<u64> {
        Ok(params
            .get(k)
            .ok_or_else(|| format!("missing {k}="))?
            .parse()?)
    };
    match case.as_str() {
        "bulk" => bulk(kind, &dir, num("n")?, num("len")? as usize),
        "commits" => commits(
            kind,
            &dir,
            num("threads")? as usize,
            Duration::from_millis(num("ms")?),
            params.get("dev").copied().filter(|d| *d != "-"),
            params.get("shards").map(|n| n.parse()).transpose()?,
            match params.get("archive") {
                Some(url) => Some((*url, Duration::from_millis(num("interval_ms")?))),
                None => None,
            },
        ),
        "archive" => archive::archive_child(&dir, param("store")?, num("n")?),
        "restore" => archive::restore_child(&dir, param("store")?, num("n")?),
        "follow" => follow::follow_child(&dir, param("store")?, num("interval_ms")?, num("ms")?),
        "raft-commits" => raft::commits_child(
            &dir,
            num("tasks")? as usize,
            Duration::from_millis(num("ms")?),
        ),
        "sharded-write" => sharded::write_child(&dir, num("shards")? as usize, num("n")?),
        "sharded-replay" => sharded::replay_child(&dir, num("shards")? as usize, num("n")?),
        "w4-write" => w4_write(kind, &dir, num("n")?),
        "w4-reopen" => w4_reopen(
            kind,
            &dir,
            num("n")?,
            params.get("trust_seals").is_some_and(|v| *v == "1"),
        ),
        other => Err(format!("unknown case {other}").into()),
    }
}

/// W1 and W3: `n` records of `len` bytes, one thread, durable once at the end.
fn bulk(kind: Kind, dir: &Path, n: u64, len: usize) -> Result<Metrics> {
    let wal = contenders::open(kind, dir, Purpose::Bulk)?;
    let cpu0 = sysinfo::cpu_seconds();
    let t0 = Instant::now();
    wal.bulk(n, len)?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = sysinfo::cpu_seconds() - cpu0;
    wal.close()?;
    let mut m = Metrics::new();
    m.insert("secs".into(), secs);
    m.insert("cpu_secs".into(), cpu);
    Ok(m)
}

/// W2: `threads` threads, each committing 100 B records one at a time until `duration` is up.
/// With `archive` (a store's URL and an interval; tidelog only), an archiver uploads the log to
/// that store while they run, and a thread samples its lag every 10 ms. With `shards` (tidelog
/// only), the log is a `ShardedLog` of that many shards, committer `t` appending to shard
/// `t % shards`.
fn commits(
    kind: Kind,
    dir: &Path,
    threads: usize,
    duration: Duration,
    device: Option<&str>,
    shards: Option<usize>,
    archive: Option<(&str, Duration)>,
) -> Result<Metrics> {
    let wal = match shards {
        Some(_) if kind != Kind::Tidelog => return Err("shards= is for tidelog only".into()),
        Some(n) => sharded::open(dir, n)?,
        None => contenders::open(kind, dir, Purpose::Durable)?,
    };
    let archiver = match archive {
        Some((url, interval)) => {
            let log = wal
                .tidelog()
                .ok_or("an archiver needs tidelog's log (archive= is for tidelog only)")?;
            Some(archive::W2Archiver::start(log, url, interval)?)
        }
        None => None,
    };
    let wal = &*wal;
    let stop = AtomicBool::new(false);
    let start_line = Barrier::new(threads + 1 + usize::from(archiver.is_some()));
    let (results, elapsed, flushes, lib_syncs, lags) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (stop, start_line) = (&stop, &start_line);
                s.spawn(move || -> Result<Vec<u32>> {
                    let mut buf = vec![0u8; payload::SMALL];
                    let mut lat = Vec::with_capacity(1 << 16);
                    // Distinct indices per thread (raft-engine keys them).
                    let mut i = (t as u64) << 40;
                    start_line.wait();
                    while !stop.load(Ordering::Relaxed) {
                        payload::fill(i, &mut buf);
                        let t0 = Instant::now();
                        let r = wal.append_durable(&buf);
                        let ns = t0.elapsed().as_nanos();
                        if let Err(e) = r {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        lat.push(u32::try_from(ns / 100).unwrap_or(u32::MAX)); // 0.1 µs units
                        i += 1;
                    }
                    Ok(lat)
                })
            })
            .collect();
        let sampler = archiver.as_ref().map(|a| {
            let (stop, start_line) = (&stop, &start_line);
            s.spawn(move || {
                start_line.wait();
                a.sample(stop)
            })
        });
        let flushes0 = device.and_then(sysinfo::device_flushes);
        let syncs0 = wal.lib_syncs();
        start_line.wait();
        let t0 = Instant::now();
        let deadline = t0 + duration;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(
                Duration::from_millis(5).min(deadline.saturating_duration_since(Instant::now())),
            );
        }
        stop.store(true, Ordering::Relaxed);
        let results: Vec<Result<Vec<u32>>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a committing thread panicked".into()))
            })
            .collect();
        let elapsed = t0.elapsed().as_secs_f64();
        let flushes = flushes0
            .zip(device.and_then(sysinfo::device_flushes))
            .map(|(a, b)| b - a);
        let lib_syncs = syncs0.zip(wal.lib_syncs()).map(|(a, b)| b - a);
        let lags = sampler.map(|h| h.join().unwrap_or_default());
        (results, elapsed, flushes, lib_syncs, lags)
    });
    let mut lat: Vec<f64> = Vec::new();
    for r in results {
        lat.extend(r?.into_iter().map(|x| f64::from(x) / 10.0));
    }
    lat.sort_by(f64::total_cmp);
    let mut m = Metrics::new();
    m.insert("commits".into(), lat.len() as f64);
    m.insert("secs".into(), elapsed);
    m.insert("p50_us".into(), percentile(&lat, 0.50));
    m.insert("p99_us".into(), percentile(&lat, 0.99));
    if let Some(f) = flushes {
        m.insert("dev_flushes".into(), f as f64);
    }
    if let Some(s) = lib_syncs {
        m.insert("lib_syncs".into(), s as f64);
    }
    if let Some(archiver) = archiver {
        m.extend(archiver.stop(lags.unwrap_or_default())?);
    }
    Ok(m)
}

/// W4, first process: `n` records written in bulk, then the log is closed.
fn w4_write(kind: Kind, dir: &Path, n: u64) -> Result<Metrics> {
    let wal = contenders::open(kind, dir, Purpose::Bulk)?;
    let t0 = Instant::now();
    wal.bulk(n, payload::SMALL)?;
    let secs = t0.elapsed().as_secs_f64();
    wal.close()?;
    let mut m = Metrics::new();
    m.insert("write_secs".into(), secs);
    Ok(m)
}

/// W4 and the sizes workload, second process: reopen (timed), then read every record and
/// verify it (timed). With `trust_seals`, the open trusts sealed segments' seals where the
/// contender can. Also reports what the log tells of itself and the process's peak memory.
fn w4_reopen(kind: Kind, dir: &Path, n: u64, trust_seals: bool) -> Result<Metrics> {
    let t0 = Instant::now();
    let wal = contenders::open(
        kind,
        dir,
        Purpose::Reopen {
            len: payload::SMALL,
            trust_seals,
        },
    )?;
    let reopen = t0.elapsed().as_secs_f64();
    let mut verify = Verifier::new(payload::SMALL);
    let t1 = Instant::now();
    let reading = wal.read_all(&mut verify)?;
    let read = t1.elapsed().as_secs_f64();
    if verify.next != n {
        return Err(format!("read back {} of {n} records", verify.next).into());
    }
    let mut m = wal.open_figures();
    wal.close()?;
    if let Some(kib) = sysinfo::peak_rss_kib() {
        m.insert("peak_rss_kib".into(), kib as f64);
    }
    m.insert("reopen_secs".into(), reopen);
    if reading == Reading::Read {
        m.insert("read_secs".into(), read);
    }
    Ok(m)
}
