//! Restores to an LSN and to a time, checked record by record against what the writer saw.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tidelog::{Durability, Lsn};
use tidelog_archive::{Archiver, Error, Target, restore};

use crate::common::{
    WAIT, append, archive_records, assert_holds, open_log, payload, places, quick,
};
use crate::faulty::Rule;

#[test]
fn a_restore_to_an_lsn_keeps_exactly_the_records_up_to_it() {
    for place in places("to-lsn") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let last = archive_records(&log, &place.store, 300);
        assert_eq!(last, Lsn::new(300));
        for (i, lsn) in [1, 2, 77, 150, 299, 300].into_iter().enumerate() {
            let dir = tmp.path().join(format!("at-{i}"));
            let report = restore(&place.store, &dir, Target::Lsn(Lsn::new(lsn))).expect("restore");
            assert_eq!(report.last_lsn, Lsn::new(lsn), "{}", place.name);
            assert_holds(&dir, 1, lsn);
            let restored = open_log(&dir);
            assert_eq!(
                restored
                    .append(&payload(lsn + 1), Durability::Synced)
                    .expect("append"),
                Lsn::new(lsn + 1)
            );
        }
        assert!(matches!(
            restore(
                &place.store,
                tmp.path().join("past"),
                Target::Lsn(Lsn::new(301))
            ),
            Err(Error::TargetNotArchived { .. })
        ));
        assert!(!tmp.path().join("past").exists());
    }
}

#[test]
fn a_restore_to_a_time_keeps_every_batch_stamped_at_or_before_it_and_none_after() {
    for place in places("to-time") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        // Batches spread over time, so many carry times of their own.
        let mut last = Lsn::ZERO;
        for round in 0..40 {
            last = append(&log, 7);
            if round % 4 == 0 {
                std::thread::sleep(Duration::from_millis(3));
            }
        }
        archiver.wait_archived(last, WAIT).expect("archived");
        archiver.stop().expect("stop");
        // What the writer saw: each record's time.
        let seen: Vec<(u64, u64)> = log
            .iter()
            .expect("iter")
            .map(|r| {
                let r = r.expect("record");
                (
                    r.lsn().get(),
                    r.timestamp_ms().expect("version 2 records carry times"),
                )
            })
            .collect();
        let mut times: Vec<u64> = seen.iter().map(|&(_, t)| t).collect();
        times.dedup();
        assert!(times.len() > 5, "the batches span several milliseconds");
        let picks = [
            times[0],
            times[times.len() / 3],
            times[times.len() / 2] + 1,
            times[times.len() - 1],
        ];
        for (i, t) in picks.into_iter().enumerate() {
            let expected = seen
                .iter()
                .filter(|&&(_, ts)| ts <= t)
                .map(|&(l, _)| l)
                .max()
                .expect("some");
            let dir = tmp.path().join(format!("t-{i}"));
            let target = Target::Time(UNIX_EPOCH + Duration::from_millis(t));
            let report = restore(&place.store, &dir, target).expect("restore");
            assert_eq!(report.last_lsn.get(), expected, "{}: time {t}", place.name);
            assert_holds(&dir, 1, expected);
        }
        let before = UNIX_EPOCH + Duration::from_millis(times[0] - 1);
        assert!(matches!(
            restore(
                &place.store,
                tmp.path().join("before"),
                Target::Time(before)
            ),
            Err(Error::TargetNotArchived { .. })
        ));
    }
}

#[test]
fn a_restore_never_writes_over_a_directory_that_holds_files() {
    for place in places("exists") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let last = archive_records(&log, &place.store, 20);
        let taken = tmp.path().join("taken");
        std::fs::create_dir_all(&taken).expect("mkdir");
        std::fs::write(taken.join("precious"), b"keep me").expect("write");
        assert!(matches!(
            restore(&place.store, &taken, Target::Latest),
            Err(Error::TargetExists { .. })
        ));
        assert_eq!(
            std::fs::read(taken.join("precious")).expect("read"),
            b"keep me"
        );
        // An empty directory is taken.
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).expect("mkdir");
        restore(&place.store, &empty, Target::Latest).expect("restore");
        assert_holds(&empty, 1, last.get());
    }
}

#[test]
fn a_restore_retries_failed_reads_and_names_the_object_that_keeps_failing() {
    for place in places("flaky-reads") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let last = archive_records(&log, &place.store, 100);
        for (path, times) in [("manifests/", 2), (".seg", 3)] {
            place.faults.fail(Rule {
                op: "get",
                path_contains: path,
                times,
                after: false,
            });
        }
        let report = restore(&place.store, tmp.path().join("a"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, last.get());
        assert_eq!(
            place
                .faults
                .failed
                .load(std::sync::atomic::Ordering::SeqCst),
            5
        );
        place.faults.fail(Rule {
            op: "get",
            path_contains: ".seg",
            times: u64::MAX,
            after: false,
        });
        match restore(&place.store, tmp.path().join("b"), Target::Latest) {
            Err(Error::Store { op: "get", key, .. }) => assert!(key.contains(".seg"), "{key}"),
            other => panic!("{}: expected a store error, got {other:?}", place.name),
        }
        assert!(!tmp.path().join("b").exists());
    }
}

/// The modes of `dir` and of every file in it (permission bits only), by name.
#[cfg(unix)]
fn modes(dir: &std::path::Path) -> (u32, Vec<(String, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    let mut files: Vec<(String, u32)> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                mode(&e.path()),
            )
        })
        .collect();
    files.sort();
    (mode(dir), files)
}

/// A restored log is its owner's only, as the log makes its own (0700 and 0600), or has the
/// modes the options give (but for the lock file, always 0600); the restored log keeps them as it goes on (rolls, checkpoints); and
/// options the log refuses are refused before anything is read or created.
#[cfg(unix)]
#[test]
fn a_restored_log_gets_the_modes_of_the_log_owner_only_by_default_or_those_asked_for() {
    for place in places("modes") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        archive_records(&log, &place.store, 300);
        let owner_only = tmp.path().join("owner-only");
        restore(&place.store, &owner_only, Target::Latest).expect("restore");
        let group = tmp.path().join("group");
        let mut options = tidelog::Options::default();
        options.dir_mode = 0o750;
        options.file_mode = 0o640;
        tidelog_archive::restore_with(
            &place.store,
            &group,
            Target::Lsn(Lsn::new(200)),
            &options,
            |_| {},
        )
        .expect("restore with modes");
        for (dir, dir_mode, file_mode) in [(&owner_only, 0o700, 0o600), (&group, 0o750, 0o640)] {
            // Going on: appends that roll segments, and a checkpoint.
            let mut going_on = tidelog::Options::default();
            going_on.segment_bytes = crate::common::SEGMENT_BYTES;
            going_on.dir_mode = dir_mode;
            going_on.file_mode = file_mode;
            let restored = tidelog::Log::builder(dir)
                .options(going_on)
                .open()
                .expect("open");
            let next = restored.last_lsn().next().get();
            for lsn in next..next + 100 {
                restored
                    .append(&payload(lsn), Durability::Synced)
                    .expect("append");
            }
            restored.checkpoint(Lsn::new(next)).expect("checkpoint");
            restored.close().expect("close");
            let (got_dir, files) = modes(dir);
            assert_eq!(got_dir, dir_mode, "{}: {}", place.name, dir.display());
            assert!(files.len() > 2, "{}: {files:?}", place.name);
            for (name, mode) in files {
                // The lock file holds nothing and is always the owner's only, as in the log.
                let want = if name == "LOCK" { 0o600 } else { file_mode };
                assert_eq!(mode, want, "{}: {name} in {}", place.name, dir.display());
            }
        }
        let mut refused = tidelog::Options::default();
        refused.file_mode = 0o666;
        let never = tmp.path().join("never");
        assert!(
            matches!(
                tidelog_archive::restore_with(
                    &place.store,
                    &never,
                    Target::Latest,
                    &refused,
                    |_| {}
                ),
                Err(Error::Log(tidelog::Error::InvalidOptions { .. }))
            ),
            "{}",
            place.name
        );
        assert!(!never.exists(), "{}", place.name);
    }
}

#[test]
fn a_restore_of_a_live_archive_whose_tail_is_replaced_meanwhile_reads_what_replaced_it() {
    for place in crate::common::places("restore-live") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = std::sync::Arc::new(crate::common::open_log(&tmp.path().join("log")));
        let archiver = tidelog_archive::Archiver::start(
            std::sync::Arc::clone(&log),
            place.store.clone(),
            crate::common::quick(),
        )
        .expect("start");
        // Several segments and a tail (the segment taking appends holds records).
        let mut last = crate::common::append(&log, 200);
        while log.segments().last().expect("a segment").first_lsn > last {
            last = crate::common::append(&log, 1);
        }
        archiver
            .wait_archived(last, crate::common::WAIT)
            .expect("archived");
        let mut replaced = None;
        let report = tidelog_archive::restore_with(
            &place.store,
            tmp.path().join("restored"),
            tidelog_archive::Target::Latest,
            &tidelog::Options::default(),
            |progress| {
                if progress.objects == 1 {
                    // The writer replaces the tail while the restore reads the first objects.
                    let more = crate::common::append(&log, 1);
                    archiver
                        .wait_archived(more, crate::common::WAIT)
                        .expect("archived");
                    replaced = Some(more);
                }
            },
        )
        .expect("the restore reads what replaced the tail");
        assert!(report.last_lsn >= last, "{}: {report:?}", place.name);
        crate::common::assert_holds(&report.dir, 1, report.last_lsn.get());
        assert!(replaced.is_some());
    }
}

/// The names in `dir`, sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Two restores to one target, from two threads: the first is held after its first object
/// while the second runs whole, which leaves the first's temporary directory and lock file
/// alone; the first, let go, finds the target taken and removes what it made.
#[test]
fn a_restore_never_removes_the_temporary_directory_of_a_restore_still_running() {
    for place in places("live-beside") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let last = archive_records(&log, &place.store, 300);
        let parent = tmp.path().join("restores");
        let target = parent.join("restored");
        let (store, at) = (&place.store, &target);
        let first = std::thread::scope(|s| {
            let (held_tx, held_rx) = std::sync::mpsc::channel();
            // Dropped if this thread panics, which lets the held restore go on.
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let running = s.spawn(move || {
                tidelog_archive::restore_with(
                    store,
                    at,
                    Target::Latest,
                    &tidelog::Options::default(),
                    |progress| {
                        if progress.objects == 1 {
                            let _ = held_tx.send(());
                            let _ = go_rx.recv();
                        }
                    },
                )
            });
            held_rx.recv().expect("the first restore is held");
            let left = names(&parent);
            assert_eq!(left.len(), 2, "{}: {left:?}", place.name);
            let inside = names(&parent.join(&left[0]));
            assert!(inside.len() > 1, "{}: {inside:?}", place.name);
            let report = restore(&place.store, &target, Target::Latest).expect("restore");
            assert_eq!(report.last_lsn, last, "{}", place.name);
            assert_holds(&target, 1, last.get());
            let mut now: Vec<String> = names(&parent);
            now.retain(|n| n != "restored");
            assert_eq!(now, left, "{}: the running restore's are there", place.name);
            assert_eq!(
                names(&parent.join(&left[0])),
                inside,
                "{}: untouched",
                place.name
            );
            go_tx.send(()).expect("let the first go");
            running.join().expect("the first restore's thread")
        });
        match first {
            Err(Error::TargetExists { path }) => assert_eq!(path, target, "{}", place.name),
            other => panic!("{}: expected TargetExists, got {other:?}", place.name),
        }
        assert_eq!(names(&parent), ["restored"], "{}: nothing left", place.name);
        assert_holds(&target, 1, last.get());
    }
}
