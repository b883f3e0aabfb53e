//! Checkpoint, rollback (`truncate_after`) and reset, on both backends.

use tidelog::{Durability, Error, Lsn, Result};

use crate::common::{Env, append_n, assert_holds, payload, read_all};

#[test]
fn checkpoint_removes_whole_segments_below_it_and_persists() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 400)?;
        let before = log.segments()?;
        log.checkpoint(Lsn::new(250))?;
        assert_eq!(log.checkpoint_lsn()?, Lsn::new(250));
        assert!(
            log.durable_lsn() >= Lsn::new(249),
            "records below the checkpoint were synced"
        );
        let after = log.segments()?;
        assert!(
            after.len() < before.len(),
            "{}: segments removed",
            env.name()
        );
        assert!(after[0].first_lsn <= Lsn::new(250) && after[0].last_lsn >= Lsn::new(250));
        for s in &before {
            let exists = env.segment_paths().contains(&s.path);
            assert_eq!(
                exists,
                s.last_lsn >= Lsn::new(250),
                "{}: {:?}",
                env.name(),
                s.path
            );
        }
        assert!(matches!(
            log.read(Lsn::new(249)),
            Err(Error::BelowCheckpoint { lsn, checkpoint }) if lsn.get() == 249 && checkpoint.get() == 250
        ));
        assert!(matches!(
            log.iter_from(Lsn::new(10)),
            Err(Error::BelowCheckpoint { .. })
        ));
        log.sync()?;
        assert_holds(&log, 250, 400)?;
        drop(log);

        let log = env.open()?;
        assert_eq!(log.checkpoint_lsn()?, Lsn::new(250));
        assert_holds(&log, 250, 400)?;
        assert_eq!(read_all(&log)?.first().map(|r| r.0), Some(250));
    }
    Ok(())
}

#[test]
fn checkpoint_rules() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    append_n(&log, 10)?;
    let err = log.checkpoint(Lsn::new(12)).unwrap_err();
    assert!(matches!(err, Error::InvalidLsn { .. }), "{err}");
    log.checkpoint(Lsn::new(5))?;
    log.checkpoint(Lsn::new(3))?; // lower: no-op
    assert_eq!(log.checkpoint_lsn()?, Lsn::new(5));
    log.checkpoint(Lsn::new(11))?; // everything
    assert_eq!(log.checkpoint_lsn()?, Lsn::new(11));
    assert!(read_all(&log)?.is_empty());
    assert_eq!(log.append(b"x", Durability::Synced)?, Lsn::new(11));
    drop(log);
    let log = env.open()?;
    assert_eq!(log.checkpoint_lsn()?, Lsn::new(11));
    assert_eq!(log.read(Lsn::new(11))?.data(), b"x");
    Ok(())
}

#[test]
fn an_iterator_keeps_reading_segments_a_checkpoint_removed() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 300)?;
        log.sync()?;
        let mut iter = log.iter()?;
        let first = iter.next().transpose()?.map(|r| r.lsn());
        assert_eq!(first, Some(Lsn::new(1)));
        log.checkpoint(Lsn::new(301))?;
        assert_eq!(
            log.segments()?.len(),
            1,
            "{}: only the active segment is left",
            env.name()
        );
        let rest: Vec<u64> = iter
            .map(|r| r.map(|r| r.lsn().get()))
            .collect::<Result<_>>()?;
        assert_eq!(rest, (2..=300).collect::<Vec<_>>(), "{}", env.name());
        assert_eq!(
            env.segment_paths().len(),
            1,
            "{}: files removed after the reader",
            env.name()
        );
    }
    Ok(())
}

#[test]
fn truncate_after_at_a_batch_boundary_and_across_segments() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 300)?;
        log.truncate_after(Lsn::new(120))?;
        assert_eq!(log.last_lsn()?, Lsn::new(120));
        assert_eq!(log.durable_lsn(), Lsn::new(120));
        assert!(log.segments()?.iter().all(|s| s.first_lsn <= Lsn::new(121)));
        assert!(matches!(
            log.read(Lsn::new(121)),
            Err(Error::NotDurable { .. })
        ));
        assert_eq!(log.append(b"new 121", Durability::Synced)?, Lsn::new(121));
        drop(log);
        let log = env.open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{}",
            log.recovery_report()
        );
        assert_eq!(log.last_lsn()?, Lsn::new(121));
        assert_eq!(log.read(Lsn::new(121))?.data(), b"new 121");
        assert_eq!(log.read(Lsn::new(120))?.data(), payload(120));
    }
    Ok(())
}

#[test]
fn truncate_after_in_the_middle_of_a_batch_keeps_its_head() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 5)?;
        let batch: Vec<Vec<u8>> = (6..=10).map(payload).collect();
        log.append_batch(&batch, Durability::Synced)?;
        log.truncate_after(Lsn::new(7))?;
        assert_holds(&log, 1, 7)?;
        log.append(&payload(8), Durability::Synced)?;
        drop(log);
        let log = env.open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{}: {}",
            env.name(),
            log.recovery_report()
        );
        assert_holds(&log, 1, 8)?;
        assert!(!env.list(&env.dir).iter().any(|n| n.ends_with(".tmp")));
    }
    Ok(())
}

#[test]
fn truncate_after_to_the_start_of_a_segment_and_to_nothing() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    append_n(&log, 300)?;
    log.sync()?;
    let second = log.segments()?[1].first_lsn;
    log.truncate_after(second.prev())?;
    assert_eq!(log.last_lsn()?, second.prev());
    assert_eq!(log.segments()?.len(), 2, "the segment is kept, emptied");
    log.truncate_after(Lsn::ZERO)?;
    assert_eq!(log.last_lsn()?, Lsn::ZERO);
    assert!(read_all(&log)?.is_empty());
    append_n(&log, 3)?;
    log.sync()?;
    drop(log);
    let log = env.open()?;
    assert!(
        log.recovery_report().is_clean(),
        "{}",
        log.recovery_report()
    );
    assert_holds(&log, 1, 3)?;
    Ok(())
}

#[test]
fn truncate_after_rules() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    append_n(&log, 300)?;
    log.truncate_after(Lsn::new(300))?; // nothing after: no-op
    log.truncate_after(Lsn::new(900))?;
    assert_eq!(log.last_lsn()?, Lsn::new(300));
    log.checkpoint(Lsn::new(200))?;
    let err = log.truncate_after(Lsn::new(150)).unwrap_err();
    assert!(matches!(err, Error::InvalidLsn { .. }), "{err}");
    log.truncate_after(Lsn::new(199))?; // keeps nothing at or above the checkpoint: allowed
    assert_eq!(log.last_lsn()?, Lsn::new(199));
    assert!(read_all(&log)?.is_empty());
    assert_eq!(log.append(b"200", Durability::Synced)?, Lsn::new(200));
    Ok(())
}

#[test]
fn reset_empties_the_log_and_lsns_go_on() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 300)?;
        log.reset()?;
        assert!(read_all(&log)?.is_empty());
        assert_eq!(log.checkpoint_lsn()?, Lsn::new(301));
        assert_eq!(env.segment_paths().len(), 1, "{}", env.name());
        log.reset()?; // twice in a row
        assert_eq!(
            log.append(b"after reset", Durability::Synced)?,
            Lsn::new(301)
        );
        drop(log);
        let log = env.open()?;
        assert!(log.recovery_report().is_clean());
        assert_eq!(log.checkpoint_lsn()?, Lsn::new(301));
        assert_eq!(read_all(&log)?, vec![(301, b"after reset".to_vec())]);
    }
    Ok(())
}
