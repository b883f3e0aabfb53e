//! Divergence and fast-forward: a log whose records differ from its archive's at the same LSN
//! is refused (never merged), and a log behind its archive is brought up to its end.

use std::sync::Arc;

use tidelog::{Durability, Lsn};
use tidelog_archive::{Archiver, Error, Target, fast_forward, restore};

use crate::common::{
    WAIT, append, archive_records, assert_holds, open_log, payload, places, quick,
};

#[test]
fn two_writers_from_one_restored_base_diverge_and_the_second_is_refused() {
    for place in places("two-bases") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let base = archive_records(&log, &place.store, 90);
        let one = restore(&place.store, tmp.path().join("one"), Target::Latest).expect("restore");
        let two = restore(&place.store, tmp.path().join("two"), Target::Latest).expect("restore");
        let one = Arc::new(open_log(&one.dir));
        let two = Arc::new(open_log(&two.dir));
        // The first copy archives records of its own.
        let first = Archiver::start(Arc::clone(&one), place.store.clone(), quick()).expect("start");
        let one_last = append(&one, 30);
        first.wait_archived(one_last, WAIT).expect("archived");
        first.stop().expect("stop");
        // The second appends others at the same LSNs: more of them, and fewer.
        two.append_batch(&[b"second writer".as_slice(); 40], Durability::Synced)
            .expect("append");
        for attempt in [
            Archiver::start(Arc::clone(&two), place.store.clone(), quick()).map(|_| ()),
            fast_forward(&two, &place.store).map(|_| ()),
        ] {
            match attempt {
                Err(Error::Diverged { lsn, local, remote }) => {
                    assert_eq!(lsn, base.next(), "{}", place.name);
                    assert_eq!(local, two.last_lsn());
                    assert_eq!(remote, one_last);
                }
                other => panic!("{}: expected Diverged, got {other:?}", place.name),
            }
        }
        let short =
            restore(&place.store, tmp.path().join("three"), Target::Lsn(base)).expect("restore");
        let short = Arc::new(open_log(&short.dir));
        short.append(b"other", Durability::Synced).expect("append");
        assert!(matches!(
            fast_forward(&short, &place.store),
            Err(Error::Diverged { lsn, .. }) if lsn == base.next()
        ));
        // Nothing was merged: the archive is the first copy's.
        let report =
            restore(&place.store, tmp.path().join("out"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, one_last.get());
    }
}

#[test]
fn a_log_rolled_back_below_its_archive_and_written_again_diverges() {
    for place in places("rolled-back") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let last = archive_records(&log, &place.store, 150);
        let cut = Lsn::new(last.get() - 70);
        log.truncate_after(cut).expect("roll back");
        // Shorter than the archive, and then longer: the same divergence either way.
        log.append(b"rewritten", Durability::Synced)
            .expect("append");
        for _ in 0..2 {
            match Archiver::start(Arc::clone(&log), place.store.clone(), quick()) {
                Err(Error::Diverged { lsn, remote, .. }) => {
                    assert_eq!(lsn, cut.next(), "{}", place.name);
                    assert_eq!(remote, last);
                }
                other => panic!("{}: {:?}", place.name, other.map(|a| a.status())),
            }
            log.append_batch(&[b"more".as_slice(); 100], Durability::Synced)
                .expect("append");
        }
    }
}

#[test]
fn fast_forward_brings_an_older_copy_to_the_archives_end_and_it_archives_on() {
    for place in places("fast-forward") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let early = archive_records(&log, &place.store, 70);
        let copy = restore(&place.store, tmp.path().join("copy"), Target::Latest).expect("restore");
        // The writer goes on for several segments, ending in the middle of one.
        let writer =
            Archiver::start(Arc::clone(&log), place.store.clone(), quick()).expect("start");
        let late = append(&log, 400);
        writer.wait_archived(late, WAIT).expect("archived");
        // The old copy starts behind: the archiver refuses it, a fast-forward fixes it.
        let copy = Arc::new(open_log(&copy.dir));
        assert_eq!(copy.last_lsn(), early);
        assert!(matches!(
            Archiver::start(Arc::clone(&copy), place.store.clone(), quick()),
            Err(Error::ArchiveAhead { .. })
        ));
        let pulled = fast_forward(&copy, &place.store).expect("fast-forward");
        assert_eq!(pulled.records, late.get() - early.get(), "{}", place.name);
        assert_eq!(pulled.last_lsn, late);
        let again = fast_forward(&copy, &place.store).expect("fast-forward");
        assert_eq!(again.records, 0);
        // It takes the archive over (the old writer is fenced) and archives on, its segments
        // cut where the archive's objects are.
        let promoted =
            Archiver::start(Arc::clone(&copy), place.store.clone(), quick()).expect("start");
        let last = append(&copy, 120);
        promoted.wait_archived(last, WAIT).expect("archived");
        promoted.stop().expect("stop");
        assert!(matches!(writer.stop(), Err(Error::Fenced { .. }) | Ok(_)));
        let report =
            restore(&place.store, tmp.path().join("out"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, last.get());
        for lsn in (early.get() + 1..=late.get()).step_by(37) {
            assert_eq!(copy.read(Lsn::new(lsn)).expect("read").data(), payload(lsn));
        }
    }
}

#[test]
fn records_not_yet_durable_at_the_start_are_checked_too() {
    for place in places("buffered-divergence") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let base = archive_records(&log, &place.store, 60);
        let copy = restore(&place.store, tmp.path().join("copy"), Target::Latest).expect("restore");
        let archived = archive_records(&log, &place.store, 5);
        // The copy's own records at the same LSNs, buffered (not durable) when it starts.
        let copy = Arc::new(open_log(&copy.dir));
        for _ in 0..5 {
            copy.append(b"buffered and different", Durability::Buffered)
                .expect("append");
        }
        assert_eq!(copy.last_lsn(), archived);
        match Archiver::start(Arc::clone(&copy), place.store.clone(), quick()) {
            Err(Error::Diverged { lsn, .. }) => assert_eq!(lsn, base.next(), "{}", place.name),
            other => panic!("{}: {:?}", place.name, other.map(|a| a.status())),
        }
    }
}

#[test]
fn records_appended_while_an_archiver_starts_never_replace_the_archives() {
    for place in places("append-during-start") {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = Arc::new(open_log(&tmp.path().join("log")));
        let base = archive_records(&log, &place.store, 120);
        let ahead = archive_records(&log, &place.store, 30);
        // A copy behind the archive, whose start is held up while it reads an archived object
        // for the divergence check ...
        let copy =
            restore(&place.store, tmp.path().join("copy"), Target::Lsn(base)).expect("restore");
        let copy = Arc::new(open_log(&copy.dir));
        let faults = crate::faulty::FaultyStore::new(Arc::clone(place.store.object_store()));
        let view = tidelog_archive::Store::new(faults.clone(), place.store.prefix().as_ref());
        faults.set_get_gate(Some("segments/"));
        let starting = {
            let copy = Arc::clone(&copy);
            std::thread::spawn(move || Archiver::start(copy, view, quick()).map(|a| a.stop()))
        };
        while faults.gets_of("segments/") == 0 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // ... while records of its own are appended past the archive's end.
        copy.append_batch(
            &[b"appended during the start".as_slice(); 60],
            Durability::Synced,
        )
        .expect("append");
        faults.set_get_gate(None);
        match starting.join().expect("start thread") {
            Err(Error::ArchiveAhead { archived, last }) => {
                assert_eq!((archived, last), (ahead, base), "{}", place.name);
            }
            other => panic!("{}: the start went on: {other:?}", place.name),
        }
        let report =
            restore(&place.store, tmp.path().join("out"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, ahead.get());
    }
}
