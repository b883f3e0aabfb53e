//! Followers and standbys: an archive read live while a writer extends it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tidelog::Lsn;
use tidelog_archive::{
    Archiver, Error, FollowOptions, Follower, Standby, Target, describe, restore,
};

use crate::common::{
    WAIT, append, archive_records, assert_holds, open_log, payload, places, quick,
};
use crate::faulty::Rule;

fn follow_options() -> FollowOptions {
    FollowOptions::default()
        .poll(Duration::from_millis(5))
        .backoff(tidelog_archive::Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(10),
        })
}

/// Reads `follower` until it yielded `last`, checking every record is the next in order.
fn read_to(follower: &mut Follower, from: u64, last: Lsn) {
    let mut expected = from;
    while expected <= last.get() {
        let record = follower.next().expect("never ends").expect("record");
        assert_eq!(record.lsn(), Lsn::new(expected), "in order, each once");
        assert_eq!(record.data(), payload(expected));
        expected += 1;
    }
}

#[test]
fn a_follower_yields_every_record_once_in_order_while_the_writer_archives() {
    for place in places("follow") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let archiver = Arc::new(
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start"),
        );
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (log, done) = (Arc::clone(&log), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut last = Lsn::ZERO;
                for _ in 0..40 {
                    last = append(&log, 15);
                    std::thread::sleep(Duration::from_millis(2));
                }
                done.store(true, Ordering::SeqCst);
                last
            })
        };
        let mut follower = Follower::new(place.store.clone(), follow_options()).expect("new");
        // Records as they come, tails replaced by longer ones, segments sealed.
        read_to(&mut follower, 1, Lsn::new(300));
        let last = writer.join().expect("writer");
        archiver.wait_archived(last, WAIT).expect("archived");
        read_to(&mut follower, 301, last);
        assert_eq!(follower.try_next().expect("read"), None, "{}", place.name);
        let lag = follower.lag();
        assert_eq!((lag.records, lag.archived_lsn), (0, last));
        // Its lease is in the store while it lives, and gone after.
        assert_eq!(describe(&place.store).expect("describe").readers.len(), 1);
        drop(follower);
        assert!(describe(&place.store).expect("describe").readers.is_empty());
        // From an LSN of the caller's choice, as an async stream.
        let from = last.get() - 57;
        let follower =
            Follower::new(place.store.clone(), follow_options().from(Lsn::new(from))).expect("new");
        let got: Vec<u64> = crate::common::block_on(async {
            follower
                .into_stream()
                .take(58)
                .map(|r| {
                    let r = r.expect("record");
                    assert_eq!(r.data(), payload(r.lsn().get()));
                    r.lsn().get()
                })
                .collect()
                .await
        });
        assert_eq!(
            got,
            (from..=last.get()).collect::<Vec<_>>(),
            "{}",
            place.name
        );
        assert!(done.load(Ordering::SeqCst));
    }
}

#[test]
fn a_follower_rides_out_store_errors_and_reports_a_lasting_one() {
    for place in places("follow-errors") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let last = archive_records(&log, &place.store, 200);
        for (op, path_contains) in [
            ("get", "segments/"),
            ("list", "manifests"),
            ("get", "manifests/"),
        ] {
            place.faults.fail(Rule {
                op,
                path_contains,
                times: 3,
                after: false,
            });
        }
        let mut follower = Follower::new(place.store.clone(), follow_options()).expect("new");
        read_to(&mut follower, 1, last);
        assert!(
            follower.retries() >= 9,
            "{}: {}",
            place.name,
            follower.retries()
        );
        // A store that keeps failing: the error, then the follower goes on where it was.
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        let more = append(&log, 30);
        archiver.wait_archived(more, WAIT).expect("archived");
        archiver.stop().expect("stop");
        place.faults.fail(Rule {
            op: "list",
            path_contains: "manifests",
            times: u64::MAX,
            after: false,
        });
        assert!(matches!(follower.try_next(), Err(Error::Store { .. })));
        place.faults.clear();
        read_to(&mut follower, last.get() + 1, more);
    }
}

#[test]
fn a_standby_keeps_a_local_log_up_to_date_and_takes_over_as_writer() {
    for place in places("standby") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        archive_records(&log, &place.store, 50);
        let writer =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        let copy =
            restore(&place.store, tmp.path().join("standby"), Target::Latest).expect("restore");
        let standby_log = Arc::new(open_log(&copy.dir));
        let standby = Standby::start(
            Arc::clone(&standby_log),
            place.store.clone(),
            follow_options(),
        )
        .expect("standby");
        let mut last = Lsn::ZERO;
        for _ in 0..6 {
            last = append(&log, 70);
            writer.wait_archived(last, WAIT).expect("archived");
            standby.wait_applied(last, WAIT).expect("applied");
        }
        let status = standby.stop().expect("stop");
        assert_eq!(status.applied_lsn, last);
        drop(standby_log);
        assert_holds(&copy.dir, 1, last.get());
        // Promotion: the standby's log claims the archive, the old writer is fenced.
        let promoted = Arc::new(open_log(&copy.dir));
        let archiver =
            Archiver::start(Arc::clone(&promoted), place.store.clone(), quick()).expect("start");
        let newest = append(&promoted, 40);
        archiver.wait_archived(newest, WAIT).expect("archived");
        archiver.stop().expect("stop");
        log.append(b"from the old writer", tidelog::Durability::Synced)
            .expect("append");
        assert!(
            matches!(writer.stop(), Err(Error::Fenced { .. })),
            "{}",
            place.name
        );
        let report =
            restore(&place.store, tmp.path().join("out"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, newest.get());
    }
}

#[test]
fn a_follower_reports_an_object_the_newest_manifest_names_but_the_store_lost() {
    for place in places("follow-lost") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        archive_records(&log, &place.store, 200);
        let manifest = describe(&place.store)
            .expect("describe")
            .manifest
            .expect("manifest");
        let lost = manifest.objects[1].clone();
        let path = crate::common::object_path(&place.store, &lost.name);
        crate::common::block_on(object_store::ObjectStoreExt::delete(
            &**place.store.object_store(),
            &path,
        ))
        .expect("delete");
        let mut follower = Follower::new(place.store.clone(), follow_options()).expect("new");
        read_to(&mut follower, 1, Lsn::new(lost.first_lsn - 1));
        match follower.try_next() {
            Err(Error::MissingObject { key }) => assert!(key.ends_with(&lost.name), "{key}"),
            other => panic!("{}: {other:?}", place.name),
        }
    }
}

#[test]
fn prune_keeps_what_a_standby_behind_the_writer_still_has_to_pull() {
    for place in places("standby-prune") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let base = archive_records(&log, &place.store, 50);
        let copy =
            restore(&place.store, tmp.path().join("standby"), Target::Latest).expect("restore");
        let standby_log = Arc::new(open_log(&copy.dir));
        let faults = crate::faulty::FaultyStore::new(Arc::clone(place.store.object_store()));
        let view = tidelog_archive::Store::new(faults.clone(), place.store.prefix().as_ref());
        let standby =
            Standby::start(Arc::clone(&standby_log), view, follow_options()).expect("standby");
        standby.wait_applied(base, WAIT).expect("applied");
        // The standby is held up reading a manifest while the writer archives several
        // segments and a prune removes what is below the writer's end.
        faults.set_get_gate(Some("manifests/"));
        let before = faults.gets_of("manifests/");
        while faults.gets_of("manifests/") == before {
            std::thread::sleep(Duration::from_millis(2));
        }
        let last = archive_records(&log, &place.store, 400);
        let pruned = tidelog_archive::prune(
            &place.store,
            &tidelog_archive::PruneOptions::new(tidelog_archive::PruneTarget::Below(last)),
        );
        faults.set_get_gate(None);
        let pruned = pruned.expect("prune");
        assert!(
            pruned.reader_lsn.is_some_and(|l| l <= base.next()),
            "{}: {pruned:?}",
            place.name
        );
        standby
            .wait_applied(last, WAIT)
            .expect("the standby pulled everything");
        standby.stop().expect("stop");
        drop(standby_log);
        assert_holds(&copy.dir, 1, last.get());
    }
}
