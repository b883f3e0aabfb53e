//! Process kills: a writer that archives as it appends is SIGKILLed, at random moments (in the
//! middle of an upload, of a multipart upload, between an object and its manifest) and at one
//! fixed moment (an object uploaded, its manifest write stalled). After every kill the archive
//! restores, to a prefix of what the writer acknowledged that never shrinks, and the next writer
//! resumes archiving; at the end the archive holds every durable record.
//!
//! The child is this test binary started again to run [`child`], which works only when
//! `TIDELOG_ARCHIVE_KILL_DIR` is set.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use tidelog::{Durability, Log, Lsn};
use tidelog_archive::{Archiver, Error, FollowOptions, Follower, Store, Target, restore};

use crate::common::{self, WAIT, assert_holds, payload};
use crate::faulty::FaultyStore;

const CHILD_DIR: &str = "TIDELOG_ARCHIVE_KILL_DIR";
const CHILD_URL: &str = "TIDELOG_ARCHIVE_KILL_URL";
const CHILD_STALL: &str = "TIDELOG_ARCHIVE_KILL_STALL";

/// Segments that roll every few hundred records, and parts small enough that a local store
/// takes every sealed segment in several (S3 wants parts of 5 MiB: none there).
fn log_at(dir: &Path) -> Log {
    Log::builder(dir)
        .segment_bytes(64 << 10)
        .open()
        .expect("open log")
}

fn store_for(url: &str) -> Store {
    if url.starts_with("s3://") {
        common::s3_store(url)
    } else {
        Store::from_url(url).expect("store")
    }
}

fn part_bytes(url: &str) -> usize {
    if url.starts_with("s3://") {
        5 << 20
    } else {
        16 << 10
    }
}

/// The child: appends synced batches to the log in `TIDELOG_ARCHIVE_KILL_DIR` while an archiver
/// uploads them, printing `acked N` after each, until it is killed.
#[test]
#[ignore = "run by the kill tests as their child process"]
fn child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let url = std::env::var(CHILD_URL).expect("store URL");
    let store = store_for(&url);
    let faults = FaultyStore::new(Arc::clone(store.object_store()));
    if let Ok(after) = std::env::var(CHILD_STALL) {
        faults.stall_after("manifests/", after.parse().expect("a count"));
    }
    let store = Store::new(faults, store.prefix().as_ref());
    let log = Arc::new(log_at(Path::new(&dir)));
    let options = common::quick().part_bytes(part_bytes(&url));
    let _archiver = Archiver::start(Arc::clone(&log), store, options).expect("start");
    let mut out = std::io::stdout();
    let _ = writeln!(out, "archiving");
    let mut last = log.last_lsn();
    loop {
        let k = 1 + last.get() % 4;
        let batch: Vec<Vec<u8>> = (1..=k).map(|i| payload(last.get() + i)).collect();
        last = log
            .append_batch(&batch, Durability::Synced)
            .expect("append")
            .1;
        let _ = writeln!(out, "acked {}", last.get());
        let _ = out.flush();
    }
}

/// A child started, its stdout's lines on a channel.
struct Child {
    process: std::process::Child,
    lines: mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl Child {
    /// Starts the child on the log in `dir`, archiving to `url`, stalling its manifest writes
    /// after `stall` of them if set.
    fn start(dir: &Path, url: &str, stall: Option<u64>) -> Child {
        let mut command = Command::new(std::env::current_exe().expect("the test binary"));
        command
            .args([
                "kills::child",
                "--exact",
                "--ignored",
                "--nocapture",
                "-q",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir)
            .env(CHILD_URL, url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(after) = stall {
            command.env(CHILD_STALL, after.to_string());
        }
        let mut process = command.spawn().expect("start the child");
        let stdout = process.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Child {
            process,
            lines,
            reader,
        }
    }

    /// Kills the child; returns the last LSN it acknowledged among the lines not read yet (or
    /// `acked` if none).
    fn kill(mut self, mut acked: u64) -> u64 {
        self.process.kill().expect("kill");
        let _ = self.process.wait();
        let _ = self.reader.join();
        for line in self.lines.try_iter() {
            if let Some(n) = line.strip_prefix("acked ") {
                acked = n.parse().expect("an LSN");
            }
        }
        acked
    }
}

/// Runs the child until it prints `stalled` (with `stall`) or `archiving` and `ms` more
/// milliseconds, kills it, and returns the last LSN it acknowledged.
fn run_child(dir: &Path, url: &str, stall: Option<u64>, ms: u64) -> u64 {
    let child = Child::start(dir, url, stall);
    let wanted = if stall.is_some() {
        "stalled"
    } else {
        "archiving"
    };
    let mut acked = 0;
    for line in child.lines.iter() {
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.parse().expect("an LSN");
        }
        if line == wanted {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(ms));
    child.kill(acked)
}

/// The `q`th quantile of `sorted`.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

#[test]
fn a_follower_in_another_process_sees_every_record_once_in_order() {
    const RECORDS: u64 = 3000;
    let tmp = tempfile::tempdir().expect("tmp");
    let mut urls = vec![format!("file://{}", tmp.path().join("archive").display())];
    match common::s3_url("follow-process") {
        Some(url) => urls.push(url),
        None => eprintln!("SKIPPED the follower on S3: TIDELOG_TEST_S3_ENDPOINT is not set"),
    }
    for (u, url) in urls.iter().enumerate() {
        let dir = tmp.path().join(format!("log-{u}"));
        let child = Child::start(&dir, url, None);
        let mut follower = Follower::new(
            store_for(url),
            FollowOptions::default().poll(Duration::from_millis(10)),
        )
        .expect("follower");
        let (mut behind_ms, mut behind_records) = (Vec::new(), Vec::new());
        for lsn in 1..=RECORDS {
            let record = follower.next().expect("never ends").expect("record");
            assert_eq!(record.lsn(), Lsn::new(lsn), "{url}: in order, each once");
            assert_eq!(record.data(), payload(lsn), "{url}");
            let stamped = record.timestamp_ms().expect("a time");
            behind_ms.push(now_ms().saturating_sub(stamped));
            behind_records.push(follower.lag().records);
        }
        let acked = child.kill(0);
        behind_ms.sort_unstable();
        behind_records.sort_unstable();
        println!(
            "{url}: follower lag over {RECORDS} records: p50 {} ms / {} records, p99 {} ms / {} records (writer acknowledged {acked})",
            quantile(&behind_ms, 0.5),
            quantile(&behind_records, 0.5),
            quantile(&behind_ms, 0.99),
            quantile(&behind_records, 0.99),
        );
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[test]
fn an_archiver_killed_anywhere_leaves_an_archive_that_restores_and_resumes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut urls = vec![format!("file://{}", tmp.path().join("archive").display())];
    match common::s3_url("kills") {
        Some(url) => urls.push(url),
        None => eprintln!("SKIPPED kills on S3: TIDELOG_TEST_S3_ENDPOINT is not set"),
    }
    for (u, url) in urls.iter().enumerate() {
        let dir = tmp.path().join(format!("log-{u}"));
        let store = store_for(url);
        let mut restored_last = 0;
        let mut acked_max = 0;
        // Kills at moments spread over uploads, and at an object whose manifest never came.
        let plan: Vec<(Option<u64>, u64)> = (0..12u64)
            .map(|i| (None, 5 + (i * 37) % 150))
            .chain([(Some(1), 0), (Some(3), 5), (Some(0), 0)])
            .collect();
        for (round, (stall, ms)) in plan.into_iter().enumerate() {
            let acked = run_child(&dir, url, stall, ms);
            acked_max = acked_max.max(acked);
            // What the writer acknowledged survived; the archive may hold durable records it
            // had not acknowledged yet, never records the log does not have.
            let local = log_at(&dir).last_lsn().get();
            assert!(
                local >= acked_max,
                "{url} round {round}: acknowledged records lost"
            );
            let out = tmp.path().join(format!("restored-{u}-{round}"));
            match restore(&store, &out, Target::Latest) {
                Ok(report) => {
                    let last = report.last_lsn.get();
                    assert!(
                        last >= restored_last,
                        "{url} round {round}: the archive went back"
                    );
                    assert!(
                        last <= local,
                        "{url} round {round}: restored {last}, the log ends at {local}"
                    );
                    assert_holds(&out, 1, last);
                    restored_last = last;
                    std::fs::remove_dir_all(&out).expect("clean");
                }
                // Nothing yet, or only the writer's claim.
                Err(Error::NoArchive { .. } | Error::TargetNotArchived { .. })
                    if restored_last == 0 => {}
                Err(e) => panic!("{url} round {round}: restore failed: {e}"),
            }
        }
        // A last writer archives everything durable.
        let log = Arc::new(log_at(&dir));
        let last = log.last_lsn();
        assert!(
            last.get() >= acked_max,
            "{url}: acknowledged records survived"
        );
        let options = common::quick().part_bytes(part_bytes(url));
        let archiver = Archiver::start(Arc::clone(&log), store.clone(), options).expect("start");
        archiver.wait_archived(last, WAIT).expect("archived");
        archiver.stop().expect("stop");
        let out = tmp.path().join(format!("final-{u}"));
        let report = restore(&store, &out, Target::Latest).expect("restore");
        assert_eq!(report.last_lsn, last);
        assert!(report.last_lsn >= Lsn::new(restored_last));
        assert_holds(&out, 1, last.get());
    }
}
