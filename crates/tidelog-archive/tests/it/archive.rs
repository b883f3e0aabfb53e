//! The archiver: what it uploads, when `archived_lsn` moves, what survives failures and
//! restarts, and what it holds back from checkpoints.

use std::sync::Arc;
use std::time::Duration;

use tidelog::Lsn;
use tidelog_archive::{Archiver, Error, Target, describe, manifest::ObjectKind, restore};

use crate::common::{WAIT, append, assert_holds, open_log, places, quick};
use crate::faulty::Rule;

#[test]
fn sealed_segments_and_the_tail_are_archived_and_restore_to_the_latest_record() {
    for place in places("latest") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        let last = append(&log, 400);
        archiver.wait_archived(last, WAIT).expect("archived");
        let status = archiver.status();
        assert_eq!(status.archived_lsn, last, "{}", place.name);
        assert_eq!(status.lag_records(), 0);
        assert_eq!(status.generation, 1);
        archiver.stop().expect("stop");

        let described = describe(&place.store).expect("describe");
        let manifest = described.manifest.expect("manifest");
        assert!(
            manifest.objects.len() > 3,
            "{}: several segments",
            place.name
        );
        assert_eq!(manifest.last_lsn(), last);
        assert!(described.foreign.is_empty());
        assert!(
            manifest.objects[..manifest.objects.len() - 1]
                .iter()
                .all(|o| o.kind == ObjectKind::Seg),
            "{}: only the last object may be a tail",
            place.name
        );

        let report =
            restore(&place.store, tmp.path().join("restored"), Target::Latest).expect("restore");
        assert_eq!(report.last_lsn, last);
        assert_eq!(report.log_id, log.log_id());
        assert_holds(&report.dir, 1, last.get());
        // The restored log goes on at the next LSN.
        let restored = open_log(&report.dir);
        assert_eq!(append(&restored, 1), last.next());
        // Nothing else was left beside the target.
        let mut names: Vec<String> = std::fs::read_dir(tmp.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["log", "restored"], "{}", place.name);
    }
}

#[test]
fn an_archiver_resumes_where_the_store_ends_and_uploads_nothing_twice() {
    for place in places("resume") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let first = Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        let last = append(&log, 200);
        first.wait_archived(last, WAIT).expect("archived");
        first.stop().expect("stop");
        let uploads = place.faults.puts_of("segments/");

        // Nothing new: a second archiver uploads nothing.
        let second =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        assert_eq!(second.archived_lsn(), last);
        assert_eq!(second.status().generation, 2);
        second.stop().expect("stop");
        assert_eq!(place.faults.puts_of("segments/"), uploads, "{}", place.name);

        // Objects uploaded by a run whose manifest writes all failed are found, not sent again.
        let third = Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        place.faults.fail(Rule {
            op: "put",
            path_contains: "manifests/",
            times: u64::MAX,
            after: false,
        });
        let more = append(&log, 150);
        assert!(matches!(
            third.wait_archived(more, Duration::from_millis(300)),
            Err(Error::Timeout { .. })
        ));
        assert_eq!(
            third.archived_lsn(),
            last,
            "{}: no manifest, no progress",
            place.name
        );
        assert!(
            third.stop().is_err(),
            "{}: the last manifest write failed",
            place.name
        );
        let before = place.faults.puts.lock().expect("puts").clone();
        place.faults.clear();
        let fourth =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        fourth.wait_archived(more, WAIT).expect("archived");
        fourth.stop().expect("stop");
        let after = place.faults.puts.lock().expect("puts").clone();
        // By what an object holds (its range and checksum), not by its name, which carries
        // the generation of the archiver that wrote it.
        let range = |path: &String| {
            let name = &path[path.find("segments/")?..];
            tidelog_archive::manifest::parse_name(name)
                .filter(|p| p.kind == ObjectKind::Seg)
                .map(|p| (p.first_lsn, p.last_lsn, p.crc32c))
        };
        let sent_before: Vec<_> = before.iter().filter_map(range).collect();
        let sealed_again: Vec<&String> = after[before.len()..]
            .iter()
            .filter(|p| range(p).is_some_and(|r| sent_before.contains(&r)))
            .collect();
        assert!(
            !sent_before.is_empty(),
            "{}: the failed run uploaded segments",
            place.name
        );
        assert!(
            sealed_again.is_empty(),
            "{}: uploaded twice: {sealed_again:?}",
            place.name
        );

        let report =
            restore(&place.store, tmp.path().join("restored"), Target::Latest).expect("restore");
        assert_eq!(report.last_lsn, more);
        assert_holds(&report.dir, 1, more.get());
    }
}

#[test]
fn failed_uploads_never_count_and_are_retried() {
    for place in places("retries") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        // Segment puts that fail, a manifest put that reaches the store but reports an error,
        // and a segment put that does the same.
        for rule in [
            Rule {
                op: "put",
                path_contains: ".seg",
                times: 3,
                after: false,
            },
            Rule {
                op: "put",
                path_contains: "manifests/",
                times: 2,
                after: true,
            },
            Rule {
                op: "put",
                path_contains: "segments/",
                times: 1,
                after: true,
            },
        ] {
            place.faults.fail(rule);
        }
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        let last = append(&log, 300);
        archiver.wait_archived(last, WAIT).expect("archived");
        let status = archiver.status();
        // The manifest put that reached the store is tried again and found there: its second
        // hit of the rule reports the store's own "already there", which is no retry.
        assert!(status.retries >= 5, "{}: {status:?}", place.name);
        assert_eq!(status.last_error, None);
        archiver.stop().expect("stop");
        // The watermark never passed what the manifest names.
        let manifest = describe(&place.store)
            .expect("describe")
            .manifest
            .expect("manifest");
        assert_eq!(manifest.last_lsn(), last);
        let report =
            restore(&place.store, tmp.path().join("restored"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, last.get());
    }
}

#[test]
fn an_object_whose_put_reached_the_store_but_failed_is_not_put_again() {
    for place in places("ambiguous-puts") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        // The first three object puts reach the store, then report an error.
        place.faults.fail(Rule {
            op: "put",
            path_contains: "segments/",
            times: 3,
            after: true,
        });
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        let last = append(&log, 300);
        archiver.wait_archived(last, WAIT).expect("archived");
        assert!(archiver.status().retries >= 3, "{}", place.name);
        archiver.stop().expect("stop");
        let manifest = describe(&place.store)
            .expect("describe")
            .manifest
            .expect("manifest");
        for object in &manifest.objects {
            assert_eq!(
                place.faults.puts_of(&object.name),
                1,
                "{}: {} was put more than once",
                place.name,
                object.name
            );
        }
        let report =
            restore(&place.store, tmp.path().join("restored"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, last.get());
    }
}

#[test]
fn a_damaged_object_an_earlier_archiver_left_is_not_adopted() {
    for place in places("damaged-leftovers") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let first = Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        first
            .wait_archived(append(&log, 50), WAIT)
            .expect("archived");
        // Then it uploads objects, but none of its manifest writes lands.
        place.faults.fail(Rule {
            op: "put",
            path_contains: "manifests/",
            times: u64::MAX,
            after: false,
        });
        let before = place.faults.puts_of(".seg");
        let last = append(&log, 300);
        while place.faults.puts_of(".seg") < before + 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(first.stop().is_err());
        place.faults.clear();
        // What it left is damaged in place, at the same length.
        let left = describe(&place.store).expect("describe").unreferenced;
        assert!(!left.is_empty(), "{}: leftovers", place.name);
        for (name, _) in &left {
            let mut bytes = crate::common::get_object(&place.store, name);
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x5a;
            crate::common::put_object(&place.store, name, bytes);
        }
        let next = Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        next.wait_archived(last, WAIT).expect("archived");
        next.stop().expect("stop");
        let manifest = describe(&place.store)
            .expect("describe")
            .manifest
            .expect("manifest");
        for (name, _) in &left {
            assert!(
                manifest.objects.iter().all(|o| &o.name != name),
                "{}: the damaged {name} was adopted",
                place.name
            );
        }
        let report =
            restore(&place.store, tmp.path().join("restored"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, last.get());
    }
}

#[test]
fn a_checkpoint_never_removes_what_is_not_archived() {
    for place in places("holdback") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        place.faults.fail(Rule {
            op: "put",
            path_contains: "segments/",
            times: u64::MAX,
            after: false,
        });
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        let last = append(&log, 300);
        let segments = log.segments().len();
        assert!(segments > 3);
        log.checkpoint(last).expect("checkpoint");
        assert_eq!(log.segments().len(), segments, "{}: all held", place.name);
        assert_eq!(log.retention_floor(), Some(Lsn::new(1)));
        place.faults.clear();
        archiver.wait_archived(last, WAIT).expect("archived");
        // Archived: the floor moved past it, and the next checkpoint lets go.
        assert_eq!(log.retention_floor(), Some(last.next()));
        log.checkpoint(last).expect("checkpoint");
        assert_eq!(log.segments().len(), 1, "{}", place.name);
        archiver.stop().expect("stop");
    }
}

#[test]
fn a_rollback_below_the_archive_stops_the_archiver() {
    for place in places("rollback") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        let last = append(&log, 100);
        archiver.wait_archived(last, WAIT).expect("archived");
        log.truncate_after(Lsn::new(50)).expect("rollback");
        assert!(matches!(
            archiver.wait_archived(Lsn::new(1000), WAIT),
            Err(Error::Stopped { .. })
        ));
        assert!(matches!(
            archiver.stop(),
            Err(Error::RolledBackBelowArchive { to, archived }) if to == Lsn::new(50) && archived == last
        ));
    }
}

#[test]
fn an_archive_of_another_log_is_refused() {
    for place in places("foreign") {
        let tmp = tempfile::tempdir().expect("tmp");
        let a = Arc::new(open_log(&tmp.path().join("a")));
        let b = Arc::new(open_log(&tmp.path().join("b")));
        let archiver =
            Archiver::start(Arc::clone(&a), place.store.clone(), quick()).expect("start");
        let last = append(&a, 10);
        archiver.wait_archived(last, WAIT).expect("archived");
        archiver.stop().expect("stop");
        assert!(matches!(
            Archiver::start(b, place.store.clone(), quick()),
            Err(Error::ForeignArchive { expected, found }) if found == a.log_id() && expected != found
        ));
    }
}

#[test]
fn large_segments_go_up_in_parts() {
    for place in places("multipart") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(
            tidelog::Log::builder(tmp.path().join("log"))
                .segment_bytes(6 << 20)
                .open()
                .expect("open"),
        );
        let options = quick().part_bytes(5 << 20);
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), options).expect("start");
        let record = vec![7u8; 4096];
        let mut last = Lsn::ZERO;
        for _ in 0..(7 << 20) / 4096 {
            last = log
                .append(&record, tidelog::Durability::Buffered)
                .expect("append");
        }
        log.sync().expect("sync");
        archiver.wait_archived(last, WAIT).expect("archived");
        archiver.stop().expect("stop");
        assert!(place.faults.puts_of("multipart") >= 1, "{}", place.name);
        let report =
            restore(&place.store, tmp.path().join("restored"), Target::Latest).expect("restore");
        assert_eq!(report.last_lsn, last);
        let restored = tidelog::Log::open(&report.dir).expect("open");
        assert_eq!(restored.read(last).expect("read").data(), record);
    }
}

#[test]
fn the_watermark_can_be_awaited() {
    let place = crate::common::local();
    let tmp = tempfile::tempdir().expect("tmp");
    let log = Arc::new(open_log(&tmp.path().join("log")));
    let archiver = Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
    let last = append(&log, 50);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(archiver.archived(last)).expect("archived");
    assert!(archiver.archived_lsn() >= last);
    archiver.stop().expect("stop");
}

#[test]
fn a_stalled_store_never_holds_up_the_log() {
    for place in places("stalled") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        place.faults.set_gate(false);
        // Durable commits, rolls and a checkpoint all go on while every upload waits.
        let last = append(&log, 300);
        assert!(log.segments().len() > 3);
        log.checkpoint(last).expect("checkpoint");
        assert!(
            log.segments().len() > 3,
            "{}: held for the archive",
            place.name
        );
        assert_eq!(archiver.archived_lsn(), Lsn::ZERO);
        place.faults.set_gate(true);
        archiver.wait_archived(last, WAIT).expect("archived");
        archiver.stop().expect("stop");
    }
}

#[test]
fn an_object_an_earlier_archiver_left_keeps_its_generation_in_the_manifest() {
    for place in places("generations") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let first = Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        first
            .wait_archived(append(&log, 50), WAIT)
            .expect("archived");
        first.stop().expect("stop");
        // The second archiver writes a manifest (generation 2), then uploads segments whose
        // manifest writes all fail.
        let second =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        let at = append(&log, 50);
        second.wait_archived(at, WAIT).expect("archived");
        place.faults.fail(Rule {
            op: "put",
            path_contains: "manifests/",
            times: u64::MAX,
            after: false,
        });
        let before = place.faults.puts_of(".seg");
        let last = append(&log, 300);
        while place.faults.puts_of(".seg") < before + 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(second.stop().is_err());
        place.faults.clear();
        // The third (generation 3) names the second's objects as they are.
        let third = Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        assert_eq!(third.status().generation, 3);
        third.wait_archived(last, WAIT).expect("archived");
        third.stop().expect("stop");
        let manifest = describe(&place.store)
            .expect("describe")
            .manifest
            .expect("manifest");
        assert!(
            manifest.objects.iter().any(|o| o.generation == 2),
            "{}",
            place.name
        );
        let report =
            restore(&place.store, tmp.path().join("restored"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, last.get());
    }
}

#[test]
fn failed_reads_and_lists_at_the_start_are_retried() {
    for place in places("start-retries") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let first = Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        first
            .wait_archived(append(&log, 30), WAIT)
            .expect("archived");
        first.stop().expect("stop");
        for (op, path_contains) in [("get", "manifests/"), ("list", "segments")] {
            place.faults.fail(Rule {
                op,
                path_contains,
                times: 2,
                after: false,
            });
        }
        let second =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        assert_eq!(
            place
                .faults
                .failed
                .load(std::sync::atomic::Ordering::SeqCst),
            4
        );
        let last = append(&log, 30);
        second.wait_archived(last, WAIT).expect("archived");
        let status = second.stop().expect("stop");
        assert!(status.retries >= 2, "{}: {status:?}", place.name);
        assert_eq!(status.archived_lsn, last);
        // A store that keeps failing (a bucket that does not exist) is the start's error after
        // a few attempts, whichever read fails: the start never waits for it forever.
        for (op, path_contains) in [("get", "manifests/"), ("list", "segments")] {
            place.faults.fail(Rule {
                op,
                path_contains,
                times: u64::MAX,
                after: false,
            });
            let refused = Archiver::start(Arc::clone(&log), place.store.clone(), quick());
            assert!(
                matches!(refused, Err(Error::Store { .. })),
                "{} {op}: {:?}",
                place.name,
                refused.map(|a| a.status())
            );
            place.faults.clear();
        }
    }
}

#[test]
fn blocking_calls_inside_an_async_runtime_are_refused_not_a_panic() {
    let tmp = tempfile::tempdir().expect("tmp");
    let log = Arc::new(open_log(&tmp.path().join("log")));
    let store = tidelog_archive::Store::from_url("memory://").expect("store");
    let archiver = Archiver::start(Arc::clone(&log), store.clone(), quick()).expect("start");
    archiver
        .wait_archived(append(&log, 20), WAIT)
        .expect("archived");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let inside = |r: Result<(), Error>, call: &str| {
            assert!(
                matches!(&r, Err(Error::InsideAsyncRuntime { call: c }) if *c == call),
                "{call}: {r:?}"
            );
        };
        inside(
            Archiver::start(Arc::clone(&log), store.clone(), quick()).map(drop),
            "Archiver::start",
        );
        inside(describe(&store).map(drop), "describe");
        inside(
            restore(&store, tmp.path().join("restored"), Target::Latest).map(drop),
            "restore",
        );
        inside(
            tidelog_archive::prune(
                &store,
                &tidelog_archive::PruneOptions::new(tidelog_archive::PruneTarget::Below(Lsn::new(
                    2,
                ))),
            )
            .map(drop),
            "prune",
        );
        inside(
            tidelog_archive::fast_forward(&log, &store).map(drop),
            "fast_forward",
        );
        let mut follower = tidelog_archive::Follower::new(
            store.clone(),
            tidelog_archive::FollowOptions::default(),
        )
        .expect("follower");
        inside(follower.try_next().map(drop), "Follower::try_next");
    });
    // Nothing was created, and the archive is as it was.
    assert!(!tmp.path().join("restored").exists());
    archiver.stop().expect("stop");
    let report = restore(&store, tmp.path().join("restored"), Target::Latest).expect("restore");
    assert_holds(&report.dir, 1, 20);
}
