//! The seams the archive and the sharded log build on: segment events (sealed, rolled back,
//! reset), tested through the public API on both backends.

use std::sync::mpsc::TryRecvError;

use tidelog::{Lsn, Result, SegmentEvent, SegmentInfo};

use crate::common::{Env, append_n};

fn sealed(events: &std::sync::mpsc::Receiver<SegmentEvent>) -> Vec<SegmentInfo> {
    let mut out = Vec::new();
    loop {
        match events.try_recv() {
            Ok(SegmentEvent::Sealed(info)) => out.push(info),
            Ok(other) => panic!("unexpected event {other:?}"),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => return out,
        }
    }
}

#[test]
fn every_roll_reports_the_sealed_segment_with_its_final_range_and_size() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        let events = log.segment_events();
        append_n(&log, 300)?;
        log.sync()?;
        let listed = log.segments();
        let got = sealed(&events);
        // Every segment but the active one was sealed, in order, exactly once.
        assert_eq!(got.len(), listed.len() - 1, "{}", env.name());
        for (event, info) in got.iter().zip(&listed) {
            assert_eq!(event, info, "{}: the event matches the listing", env.name());
            let len = env.read_file(&event.path).len() as u64;
            assert_eq!(
                len,
                event.bytes,
                "{}: the file holds exactly its frames",
                env.name()
            );
        }
        for pair in got.windows(2) {
            assert_eq!(pair[0].last_lsn.next(), pair[1].first_lsn, "{}", env.name());
        }
        assert!(got.iter().all(|s| s.last_lsn <= log.durable_lsn()));
    }
    Ok(())
}

#[test]
fn rollbacks_and_resets_are_reported_and_a_dropped_receiver_is_forgotten() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        let events = log.segment_events();
        let dropped = log.segment_events();
        drop(dropped);
        append_n(&log, 20)?;
        log.truncate_after(Lsn::new(12))?;
        log.reset()?;
        assert_eq!(
            events.try_recv().ok(),
            Some(SegmentEvent::RolledBack { to: Lsn::new(12) }),
            "{}",
            env.name()
        );
        assert_eq!(
            events.try_recv().ok(),
            Some(SegmentEvent::Reset { next: Lsn::new(13) }),
            "{}",
            env.name()
        );
        assert!(events.try_recv().is_err());
    }
    Ok(())
}

#[test]
fn the_retention_floor_holds_segments_against_checkpoints_until_raised() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        log.set_retention_floor(Some(Lsn::new(100)))?;
        append_n(&log, 300)?;
        log.checkpoint(Lsn::new(301))?;
        let held = log.segments();
        assert!(held.len() > 1, "{}: held segments stay", env.name());
        assert!(held[0].first_lsn <= Lsn::new(100), "{}", env.name());
        assert!(held.iter().all(|s| s.last_lsn >= Lsn::new(100)));
        assert!(matches!(
            log.read(Lsn::new(150)),
            Err(tidelog::Error::BelowCheckpoint { .. })
        ));
        drop(log);

        // The floor and what it holds survive a reopen.
        let log = env.open()?;
        assert_eq!(log.retention_floor(), Some(Lsn::new(100)), "{}", env.name());
        assert_eq!(log.segments(), held, "{}: recovery keeps them", env.name());
        assert_eq!(log.checkpoint_lsn(), Lsn::new(301));

        // Raising the floor lets go of what only it held.
        log.set_retention_floor(Some(Lsn::new(250)))?;
        let now = log.segments();
        assert!(now.len() < held.len(), "{}", env.name());
        assert!(now.iter().all(|s| s.last_lsn >= Lsn::new(250)));
        log.set_retention_floor(None)?;
        assert_eq!(log.segments().len(), 1, "{}", env.name());
        assert_eq!(log.retention_floor(), None);
        append_n(&log, 5)?;
        log.close()?;
        let log = env.open()?;
        assert_eq!(log.retention_floor(), None, "{}", env.name());
        assert_eq!(log.last_lsn(), Lsn::new(305));
    }
    Ok(())
}

#[test]
fn a_reset_keeps_what_the_retention_floor_holds_and_appends_go_on_after_it() -> Result<()> {
    for env in Env::both() {
        let log = env.builder().preallocate(true).open()?;
        append_n(&log, 100)?;
        log.set_retention_floor(Some(Lsn::new(90)))?;
        log.reset()?;
        let held = log.segments();
        assert!(
            held.len() >= 2,
            "{}: a held segment and a new one",
            env.name()
        );
        assert!(held[0].last_lsn >= Lsn::new(90), "{}", env.name());
        let active = held.last().expect("an active segment");
        assert_eq!(active.first_lsn, Lsn::new(101), "{}", env.name());
        drop(log);

        let log = env.open()?;
        assert!(log.recovery_report().is_clean(), "{}", env.name());
        assert_eq!(log.segments(), held, "{}", env.name());
        assert_eq!(
            log.append(b"after", tidelog::Durability::Synced)?,
            Lsn::new(101)
        );
        drop(log);
        let log = env.open()?;
        assert_eq!(log.read(Lsn::new(101))?.data(), b"after", "{}", env.name());
    }
    Ok(())
}
