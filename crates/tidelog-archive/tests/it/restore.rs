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
        for (path, times) in [("manifest.json", 2), (".seg", 3)] {
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
