//! Fencing: one writer per archive. Writers race for the archive, an old writer loses it to a
//! new one, and a store without conditional puts is refused; on memory, a local directory and
//! the S3 test server.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};

use tidelog::{Durability, Lsn};
use tidelog_archive::{
    ArchiveOptions, Archiver, Error, FollowOptions, Follower, Target, describe, restore,
};

use crate::common::{WAIT, append, archive_records, assert_holds, open_log, places, quick};
use crate::faulty::{FaultyStore, Rule};

#[test]
fn sixteen_writers_claiming_one_archive_at_once_leave_exactly_one_holder_each_round() {
    const WRITERS: usize = 16;
    const ROUNDS: u64 = 20;
    for place in places("race") {
        let tmp = tempfile::tempdir().expect("tmp");
        // One log, archived by 16 archivers at once (each its own claim): what the race is
        // about is the store, not the local logs.
        let log = Arc::new(open_log(&tmp.path().join("log")));
        archive_records(&log, &place.store, 10);
        let mut fenced_at_start = 0;
        for round in 1..=ROUNDS {
            let barrier = Arc::new(Barrier::new(WRITERS));
            let starts: Vec<_> = (0..WRITERS)
                .map(|_| {
                    let (log, store, barrier) =
                        (Arc::clone(&log), place.store.clone(), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        Archiver::start(log, store, quick())
                    })
                })
                .collect();
            let mut running = Vec::new();
            for start in starts {
                match start.join().expect("start thread") {
                    Ok(archiver) => running.push(archiver),
                    Err(Error::Fenced { by, .. }) => {
                        assert!(by > 0);
                        fenced_at_start += 1;
                    }
                    Err(e) => panic!("{} round {round}: {e}", place.name),
                }
            }
            assert!(!running.is_empty(), "{} round {round}", place.name);
            // Each archiver still running tries to upload the next record: only the holder's
            // manifest write goes through.
            let lsn = log
                .append(
                    &crate::common::payload(log.last_lsn().get() + 1),
                    Durability::Synced,
                )
                .expect("append");
            let mut holders = Vec::new();
            for archiver in running {
                match archiver.wait_archived(lsn, WAIT) {
                    Ok(()) => holders.push(archiver.status()),
                    Err(Error::Stopped { reason }) => {
                        assert!(reason.contains("fenced"), "{}: {reason}", place.name);
                        assert!(archiver.status().fenced.is_some());
                        assert!(
                            matches!(archiver.stop(), Err(Error::Fenced { .. })),
                            "{}",
                            place.name
                        );
                    }
                    Err(e) => panic!("{} round {round}: {e}", place.name),
                }
            }
            assert_eq!(
                holders.len(),
                1,
                "{} round {round}: {holders:?}",
                place.name
            );
            let manifest = describe(&place.store)
                .expect("describe")
                .manifest
                .expect("manifest");
            assert_eq!(manifest.generation, holders[0].generation);
            assert_eq!(manifest.holder, holders[0].holder);
            assert_eq!(manifest.last_lsn(), lsn, "{} round {round}", place.name);
        }
        println!(
            "{}: {ROUNDS} rounds of {WRITERS} writers: 1 holder each, {fenced_at_start} fenced at their start, {} at their first upload",
            place.name,
            ROUNDS as usize * (WRITERS - 1) - fenced_at_start
        );
        let report =
            restore(&place.store, tmp.path().join("restored"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, 10 + ROUNDS);
    }
}

#[test]
fn a_fenced_writers_later_records_never_reach_the_archive_and_its_log_stays_usable() {
    for place in places("fenced") {
        let tmp = tempfile::tempdir().expect("tmp");
        let old_log = Arc::new(open_log(&tmp.path().join("old")));
        let base = archive_records(&old_log, &place.store, 120);
        let old =
            Archiver::start(Arc::clone(&old_log), place.store.clone(), quick()).expect("start");
        // A new writer takes over from a copy of the archive.
        let copy = restore(&place.store, tmp.path().join("new"), Target::Latest).expect("restore");
        let new_log = Arc::new(open_log(&copy.dir));
        let new =
            Archiver::start(Arc::clone(&new_log), place.store.clone(), quick()).expect("start");
        assert_eq!(new.status().generation, old.status().generation + 1);
        // The old writer goes on appending: its next upload finds itself fenced.
        let old_last = old_log
            .append_batch(
                &[b"old writer 1".as_slice(), b"old writer 2"],
                Durability::Synced,
            )
            .expect("append")
            .1;
        match old.wait_archived(old_last, WAIT) {
            Err(Error::Stopped { reason }) => assert!(reason.contains("fenced"), "{reason}"),
            other => panic!("{}: {other:?}", place.name),
        }
        let status = old.status();
        assert!(status.fenced.is_some(), "{}: {status:?}", place.name);
        assert_eq!(status.archived_lsn, base);
        match old.stop() {
            Err(Error::Fenced {
                generation,
                by,
                holder,
            }) => {
                assert_eq!(by, generation + 1);
                assert_eq!(holder, new.status().holder);
            }
            other => panic!("{}: {other:?}", place.name),
        }
        // The old log is as usable as ever.
        let more = old_log
            .append(b"still writable", Durability::Synced)
            .expect("append");
        assert_eq!(old_log.read(more).expect("read").data(), b"still writable");
        // The new writer's records are the archive's.
        let new_last = append(&new_log, 40);
        new.wait_archived(new_last, WAIT).expect("archived");
        new.stop().expect("stop");
        let report =
            restore(&place.store, tmp.path().join("after"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, new_last.get());
        // A follower reads the new writer's records and never the old one's.
        let mut follower =
            Follower::new(place.store.clone(), FollowOptions::default()).expect("follower");
        for lsn in 1..=new_last.get() {
            let record = follower.try_next().expect("read").expect("archived");
            assert_eq!(record.lsn(), Lsn::new(lsn));
            assert_eq!(record.data(), crate::common::payload(lsn), "{}", place.name);
        }
        assert_eq!(follower.try_next().expect("read"), None);
        // The old writer cannot come back either: its records differ from the archive's.
        assert!(matches!(
            Archiver::start(Arc::clone(&old_log), place.store.clone(), quick()),
            Err(Error::Diverged { lsn, .. }) if lsn == base.next()
        ));
    }
}

#[test]
fn a_store_without_conditional_puts_is_refused_unless_fencing_is_off() {
    for place in places("unfenceable") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        place
            .faults
            .no_conditional_puts
            .store(true, Ordering::SeqCst);
        match Archiver::start(Arc::clone(&log), place.store.clone(), quick()) {
            Err(e @ Error::Unfenceable { .. }) => {
                let shown = e.to_string();
                assert!(shown.contains(place.store.location()), "{shown}");
            }
            other => panic!("{}: {:?}", place.name, other.map(|a| a.status())),
        }
        let options: ArchiveOptions = quick().fencing(false);
        let archiver = Archiver::start(Arc::clone(&log), place.store.clone(), options)
            .expect("start without fencing");
        let last = append(&log, 60);
        archiver.wait_archived(last, WAIT).expect("archived");
        archiver.stop().expect("stop");
        let report =
            restore(&place.store, tmp.path().join("restored"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, last.get());
    }
}

/// A view of `store` through a fault-injecting wrapper of its own, so one party can be held up
/// while the others go on.
fn own_view(store: &tidelog_archive::Store) -> (tidelog_archive::Store, Arc<FaultyStore>) {
    let faults = FaultyStore::new(Arc::clone(store.object_store()));
    let view = tidelog_archive::Store::new(faults.clone(), store.prefix().as_ref());
    (view, faults)
}

/// Waits until `faults` saw more puts to paths containing `part` than `before`.
fn wait_for_put(faults: &FaultyStore, part: &str, before: usize) {
    while faults.puts_of(part) <= before {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn a_writer_paused_while_the_chain_moved_on_is_fenced_even_where_old_manifests_were_removed() {
    for place in places("paused-writer") {
        let tmp = tempfile::tempdir().expect("tmp");
        let (paused_store, paused) = own_view(&place.store);
        let old_log = Arc::new(open_log(&tmp.path().join("old")));
        let old = Archiver::start(Arc::clone(&old_log), paused_store, quick()).expect("start");
        let base = append(&old_log, 30);
        old.wait_archived(base, WAIT).expect("archived");
        // The old writer stalls in its next upload; its manifest is to be the next of a chain
        // that will have moved far on, its old names removed.
        paused.set_gate(false);
        let puts = paused.puts.lock().expect("puts").len();
        let stalled = old_log
            .append(b"the paused writer's record", Durability::Synced)
            .expect("append");
        while paused.puts.lock().expect("puts").len() <= puts {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let copy = restore(&place.store, tmp.path().join("new"), Target::Latest).expect("restore");
        let new_log = Arc::new(open_log(&copy.dir));
        let new =
            Archiver::start(Arc::clone(&new_log), place.store.clone(), quick()).expect("start");
        let mut last = base;
        for _ in 0..3 * tidelog_archive::manifest::MANIFESTS_KEPT {
            last = append(&new_log, 1);
            new.wait_archived(last, WAIT).expect("archived");
        }
        let first_names = describe(&place.store).expect("describe");
        assert!(
            first_names.manifest.expect("manifest").seq
                > 3 * tidelog_archive::manifest::MANIFESTS_KEPT,
            "{}",
            place.name
        );
        // Released: its write lands on a name that is free again, and must not count.
        paused.set_gate(true);
        match old.wait_archived(stalled, WAIT) {
            Err(Error::Stopped { reason }) => assert!(reason.contains("fenced"), "{reason}"),
            other => panic!(
                "{}: the paused writer's record counted: {other:?}",
                place.name
            ),
        }
        assert_eq!(old.archived_lsn(), base, "{}", place.name);
        new.stop().expect("stop");
        let report =
            restore(&place.store, tmp.path().join("after"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, last.get());
    }
}

#[test]
fn a_writer_whose_manifest_write_after_a_prune_fails_ambiguously_goes_on() {
    for place in places("rebase-retry") {
        let tmp = tempfile::tempdir().expect("tmp");
        let (writer_store, writer) = own_view(&place.store);
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let archiver = Archiver::start(Arc::clone(&log), writer_store, quick()).expect("start");
        let early = append(&log, 150);
        archiver.wait_archived(early, WAIT).expect("archived");
        // The writer stalls uploading a whole segment ...
        writer.set_gate(false);
        let before = writer.puts_of(".seg");
        let last = append(&log, 100);
        wait_for_put(&writer, ".seg", before);
        // ... a prune takes the manifest's next name ...
        let pruned = tidelog_archive::prune(
            &place.store,
            &tidelog_archive::PruneOptions::new(tidelog_archive::PruneTarget::Below(early)),
        );
        if !matches!(&pruned, Ok(p) if p.removed > 0) {
            writer.set_gate(true);
            panic!("{}: {pruned:?}", place.name);
        }
        // ... and the writer's write on top of it reaches the store but reports an error.
        writer.fail(Rule {
            op: "put",
            path_contains: "manifests/",
            times: 2,
            after: true,
        });
        writer.set_gate(true);
        archiver.wait_archived(last, WAIT).expect("archived");
        let status = archiver.stop().expect("stop");
        assert!(
            status.stopped.is_none() || status.fenced.is_none(),
            "{status:?}"
        );
        let report =
            restore(&place.store, tmp.path().join("out"), Target::Latest).expect("restore");
        assert_holds(&report.dir, report.first_lsn.get(), last.get());
    }
}

#[test]
fn a_store_that_ignores_the_condition_of_a_put_is_refused() {
    for place in places("ignores-conditions") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        place
            .faults
            .ignores_conditions
            .store(true, Ordering::SeqCst);
        assert!(
            matches!(
                Archiver::start(Arc::clone(&log), place.store.clone(), quick()),
                Err(Error::Unfenceable { .. })
            ),
            "{}",
            place.name
        );
    }
}

#[test]
fn writers_keep_only_the_newest_manifests() {
    use tidelog_archive::manifest::MANIFESTS_KEPT;
    for place in places("manifests-kept") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        let mut last = Lsn::ZERO;
        for _ in 0..3 * MANIFESTS_KEPT {
            last = append(&log, 1);
            archiver.wait_archived(last, WAIT).expect("archived");
        }
        archiver.stop().expect("stop");
        let newest = describe(&place.store)
            .expect("describe")
            .manifest
            .expect("manifest")
            .seq;
        assert!(newest > 3 * MANIFESTS_KEPT, "{}: {newest}", place.name);
        let prefix = crate::common::object_path(&place.store, "manifests");
        let kept: Vec<object_store::ObjectMeta> = crate::common::block_on(
            futures::TryStreamExt::try_collect(place.store.object_store().list(Some(&prefix))),
        )
        .expect("list");
        assert!(
            kept.len() as u64 <= 2 * MANIFESTS_KEPT,
            "{}: {} manifests kept of {newest}",
            place.name,
            kept.len()
        );
        let report =
            restore(&place.store, tmp.path().join("out"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, last.get());
    }
}
