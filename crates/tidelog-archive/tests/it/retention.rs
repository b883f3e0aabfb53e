//! Retention: prune removes what is below an LSN or older than an age, behind the manifest,
//! and never under a restore or a follower in progress, nor under a writer running beside it.

use std::sync::Arc;
use std::time::Duration;

use tidelog::Lsn;
use tidelog_archive::{
    Archiver, Error, FollowOptions, Follower, PruneOptions, PruneTarget, Target, describe, prune,
    restore, restore_with,
};

use crate::common::{
    WAIT, append, archive_records, assert_holds, open_log, payload, places, quick,
};

fn objects(place: &crate::common::Place) -> usize {
    describe(&place.store)
        .expect("describe")
        .manifest
        .expect("manifest")
        .objects
        .len()
}

#[test]
fn prune_keeps_what_a_follower_and_a_restore_in_progress_read() {
    for place in places("prune-readers") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let last = archive_records(&log, &place.store, 600);
        let before = objects(&place);
        assert!(before > 5, "{}: {before} objects", place.name);
        // A follower part way through.
        let mut follower = Follower::new(
            place.store.clone(),
            FollowOptions::default().poll(Duration::from_millis(5)),
        )
        .expect("new");
        for lsn in 1..=100 {
            assert_eq!(
                follower.next().expect("never ends").expect("record").lsn(),
                Lsn::new(lsn)
            );
        }
        let below = Lsn::new(last.get() - 10);
        let report =
            prune(&place.store, &PruneOptions::new(PruneTarget::Below(below))).expect("prune");
        let held = report.reader_lsn.expect("the follower's lease");
        assert!(held <= Lsn::new(101), "{}: {report:?}", place.name);
        assert!(report.first_lsn <= Lsn::new(101));
        // A restore that prunes as it goes: what it reads stays.
        let mut pruned_during = None;
        let restored = restore_with(
            &place.store,
            tmp.path().join("restored"),
            Target::Latest,
            &tidelog::Options::default(),
            |progress| {
                if progress.objects == 1 {
                    let options = PruneOptions::new(PruneTarget::Below(below));
                    pruned_during = Some(prune(&place.store, &options).expect("prune"));
                }
            },
        )
        .expect("restore");
        assert_eq!(pruned_during.expect("pruned").removed, 0, "{}", place.name);
        let first = restored.first_lsn.get();
        assert_holds(&restored.dir, first, last.get());
        // The follower reads on to the end.
        for lsn in 101..=last.get() {
            let record = follower.next().expect("never ends").expect("record");
            assert_eq!(
                (record.lsn(), record.data()),
                (Lsn::new(lsn), payload(lsn).as_slice())
            );
        }
        drop(follower);
        // Once the readers are gone, prune removes the rest below the bound, keeping the
        // object that holds the bound.
        let report =
            prune(&place.store, &PruneOptions::new(PruneTarget::Below(below))).expect("prune");
        assert!(report.removed > 0, "{}: {report:?}", place.name);
        assert_eq!(report.reader_lsn, None);
        assert!(report.first_lsn <= below && report.first_lsn > Lsn::new(101));
        let described = describe(&place.store).expect("describe");
        assert!(
            described.unreferenced.is_empty(),
            "{:?}",
            described.unreferenced
        );
        let after =
            restore(&place.store, tmp.path().join("after"), Target::Latest).expect("restore");
        assert_eq!(after.first_lsn, report.first_lsn);
        assert_holds(&after.dir, report.first_lsn.get(), last.get());
        // A follower that starts below the archive's start is told what is gone.
        let mut late = Follower::new(
            place.store.clone(),
            FollowOptions::default().from(Lsn::new(1)),
        )
        .expect("new");
        assert!(matches!(
            late.try_next(),
            Err(Error::Gap { first, last }) if first == Lsn::FIRST && last == report.first_lsn.prev()
        ));
    }
}

#[test]
fn prune_by_age_keeps_the_newest_object_and_a_writer_beside_it_goes_on() {
    for place in places("prune-age") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        archive_records(&log, &place.store, 300);
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        // Prunes of everything older than now, while the writer uploads.
        let mut last = log.last_lsn();
        for _ in 0..8 {
            last = append(&log, 40);
            prune(
                &place.store,
                &PruneOptions::new(PruneTarget::OlderThan(Duration::ZERO)),
            )
            .expect("prune");
        }
        archiver.wait_archived(last, WAIT).expect("archived");
        let status = archiver
            .stop()
            .expect("the writer was never fenced by a prune");
        assert!(status.fenced.is_none());
        let report = prune(
            &place.store,
            &PruneOptions::new(PruneTarget::OlderThan(Duration::ZERO)),
        )
        .expect("prune");
        assert_eq!(objects(&place), 1, "{}: {report:?}", place.name);
        let restored =
            restore(&place.store, tmp.path().join("out"), Target::Latest).expect("restore");
        assert_eq!(restored.last_lsn, last);
        assert_holds(&restored.dir, restored.first_lsn.get(), last.get());
        // An age nothing is older than removes nothing.
        let none = prune(
            &place.store,
            &PruneOptions::new(PruneTarget::OlderThan(Duration::from_secs(86_400))),
        )
        .expect("prune");
        assert_eq!(none.removed, 0);
    }
}

#[test]
fn a_lease_that_cannot_be_read_for_a_moment_still_holds() {
    for place in places("prune-lease-errors") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let last = archive_records(&log, &place.store, 400);
        let mut follower = Follower::new(
            place.store.clone(),
            FollowOptions::default().poll(Duration::from_millis(5)),
        )
        .expect("new");
        for lsn in 1..=100 {
            assert_eq!(
                follower.next().expect("never ends").expect("record").lsn(),
                Lsn::new(lsn)
            );
        }
        // Reading the follower's lease fails twice (a store's passing 503s): on both of
        // prune's looks, were they not tried again.
        place.faults.fail(crate::faulty::Rule {
            op: "get",
            path_contains: "readers/",
            times: 2,
            after: false,
        });
        let report =
            prune(&place.store, &PruneOptions::new(PruneTarget::Below(last))).expect("prune");
        assert!(report.reader_lsn.is_some(), "{}: {report:?}", place.name);
        for lsn in 101..=last.get() {
            assert_eq!(
                follower.next().expect("never ends").expect("record").lsn(),
                Lsn::new(lsn)
            );
        }
    }
}
