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
use tidelog_archive::{Archiver, Error, Store, Target, restore};

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

/// Runs the child until it prints `until` (or any line, if `None`) and `ms` more
/// milliseconds, kills it, and returns the last LSN it acknowledged.
fn run_child(dir: &Path, url: &str, stall: Option<u64>, ms: u64) -> u64 {
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
    let mut child = command.spawn().expect("start the child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wanted = if stall.is_some() {
        "stalled"
    } else {
        "archiving"
    };
    let mut acked = 0;
    for line in rx.iter() {
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.parse().expect("an LSN");
        }
        if line == wanted {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(ms));
    child.kill().expect("kill");
    let _ = child.wait();
    let _ = reader.join();
    for line in rx.try_iter() {
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.parse().expect("an LSN");
        }
    }
    acked
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
