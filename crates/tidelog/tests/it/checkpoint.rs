//! Checkpoint, rollback (`truncate_after`) and reset, on both backends.

use tidelog::{Durability, Error, Lsn, Result};

use crate::common::{Env, append_n, assert_holds, payload, read_all};

#[test]
fn checkpoint_removes_whole_segments_below_it_and_persists() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 400)?;
        let before = log.segments();
        log.checkpoint(Lsn::new(250))?;
        assert_eq!(log.checkpoint_lsn(), Lsn::new(250));
        assert!(
            log.durable_lsn() >= Lsn::new(249),
            "records below the checkpoint were synced"
        );
        let after = log.segments();
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
        assert_eq!(log.checkpoint_lsn(), Lsn::new(250));
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
    assert_eq!(log.checkpoint_lsn(), Lsn::new(5));
    log.checkpoint(Lsn::new(11))?; // everything
    assert_eq!(log.checkpoint_lsn(), Lsn::new(11));
    assert!(read_all(&log)?.is_empty());
    assert_eq!(log.append(b"x", Durability::Synced)?, Lsn::new(11));
    drop(log);
    let log = env.open()?;
    assert_eq!(log.checkpoint_lsn(), Lsn::new(11));
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
            log.segments().len(),
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
        assert_eq!(log.last_lsn(), Lsn::new(120));
        assert_eq!(log.durable_lsn(), Lsn::new(120));
        assert!(log.segments().iter().all(|s| s.first_lsn <= Lsn::new(121)));
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
        assert_eq!(log.last_lsn(), Lsn::new(121));
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
    let second = log.segments()[1].first_lsn;
    log.truncate_after(second.prev())?;
    assert_eq!(log.last_lsn(), second.prev());
    assert_eq!(log.segments().len(), 2, "the segment is kept, emptied");
    log.truncate_after(Lsn::ZERO)?;
    assert_eq!(log.last_lsn(), Lsn::ZERO);
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
    assert_eq!(log.last_lsn(), Lsn::new(300));
    log.checkpoint(Lsn::new(200))?;
    let err = log.truncate_after(Lsn::new(150)).unwrap_err();
    assert!(matches!(err, Error::InvalidLsn { .. }), "{err}");
    log.truncate_after(Lsn::new(199))?; // keeps nothing at or above the checkpoint: allowed
    assert_eq!(log.last_lsn(), Lsn::new(199));
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
        assert_eq!(log.checkpoint_lsn(), Lsn::new(301));
        assert_eq!(env.segment_paths().len(), 1, "{}", env.name());
        log.reset()?; // twice in a row
        assert_eq!(
            log.append(b"after reset", Durability::Synced)?,
            Lsn::new(301)
        );
        drop(log);
        let log = env.open()?;
        assert!(log.recovery_report().is_clean());
        assert_eq!(log.checkpoint_lsn(), Lsn::new(301));
        assert_eq!(read_all(&log)?, vec![(301, b"after reset".to_vec())]);
    }
    Ok(())
}

/// `reset_to` skips LSNs: the log goes on at the LSN given, before and after a reopen, reads
/// below it are refused, a new log can start anywhere, and an LSN that would name two records
/// is refused with the log unchanged.
#[test]
fn reset_to_skips_lsns_and_the_log_goes_on_at_the_lsn_given() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 300)?;
        log.reset_to(Lsn::new(1_000))?;
        assert_eq!(log.checkpoint_lsn(), Lsn::new(1_000), "{}", env.name());
        assert_eq!(log.last_lsn(), Lsn::new(999));
        assert_eq!(log.durable_lsn(), Lsn::new(999));
        assert_eq!(log.written_lsn(), Lsn::new(999));
        assert!(read_all(&log)?.is_empty());
        assert!(matches!(
            log.read(Lsn::new(500)),
            Err(Error::BelowCheckpoint { .. })
        ));
        assert_eq!(env.segment_paths().len(), 1, "{}", env.name());
        assert_eq!(log.append(b"a", Durability::Buffered)?, Lsn::new(1_000));
        assert_eq!(
            log.append_batch(&[b"b", b"c"], Durability::Synced)?,
            (Lsn::new(1_001), Lsn::new(1_002))
        );
        assert_eq!(log.durable_lsn(), Lsn::new(1_002));
        // Back, or to u64::MAX: refused, nothing changed.
        for lsn in [Lsn::new(1_002), Lsn::new(1), Lsn::new(u64::MAX)] {
            assert!(
                matches!(log.reset_to(lsn), Err(Error::InvalidLsn { .. })),
                "{}: {lsn}",
                env.name()
            );
        }
        assert_eq!(log.last_lsn(), Lsn::new(1_002));
        // The next LSN itself is a plain reset.
        log.reset_to(Lsn::new(1_003))?;
        assert_eq!(log.checkpoint_lsn(), Lsn::new(1_003));
        assert_eq!(log.append(b"d", Durability::Synced)?, Lsn::new(1_003));
        drop(log);
        let log = env.open()?;
        assert!(log.recovery_report().is_clean(), "{}", env.name());
        assert_eq!(log.checkpoint_lsn(), Lsn::new(1_003));
        assert_eq!(read_all(&log)?, vec![(1_003, b"d".to_vec())]);
        assert_eq!(log.append(b"e", Durability::Synced)?, Lsn::new(1_004));
    }
    // A new log that starts at LSN 42, reopened before its first append.
    for env in Env::both() {
        let log = env.open()?;
        log.reset_to(Lsn::new(42))?;
        drop(log);
        let log = env.open()?;
        assert_eq!(log.checkpoint_lsn(), Lsn::new(42), "{}", env.name());
        assert_eq!(log.append(b"first", Durability::Synced)?, Lsn::new(42));
    }
    Ok(())
}

/// Waiters, iterators and tails beside a `reset_to`: a tail that had not read what the reset
/// dropped is told so, an iterator made before it ends with what it had, and appends after
/// it take the new LSNs.
#[test]
fn readers_made_before_a_reset_to_see_it() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 50)?;
        log.sync()?;
        let mut iter = log.iter()?;
        let mut tail = log.tail(Lsn::new(1))?;
        for lsn in 1..=10 {
            assert_eq!(tail.recv()?.lsn().get(), lsn);
        }
        log.reset_to(Lsn::new(500))?;
        // The iterator holds its files: it yields what was durable when it was made.
        let seen: Vec<u64> = iter
            .by_ref()
            .map(|r| r.map(|r| r.lsn().get()))
            .collect::<Result<_>>()?;
        assert_eq!(seen, (1..=50).collect::<Vec<_>>(), "{}", env.name());
        // The tail may still yield what its open files hold, in order, then is told.
        let mut next = 11;
        let end = loop {
            match tail.try_recv() {
                Ok(Some(r)) => {
                    assert_eq!(r.lsn().get(), next, "{}", env.name());
                    next += 1;
                }
                other => break other,
            }
        };
        assert!(
            matches!(end, Err(Error::BelowCheckpoint { .. })),
            "{}: {end:?}",
            env.name()
        );
        assert_eq!(log.append(b"x", Durability::Synced)?, Lsn::new(500));
        let mut tail = log.tail(Lsn::new(500))?;
        assert_eq!(tail.recv()?.lsn().get(), 500);
    }
    Ok(())
}

#[test]
fn a_full_bounded_log_fails_appends_with_log_full() -> Result<()> {
    let env = Env::mem();
    let log = env.builder().capacity_bytes(3 * 4096).open()?;
    let mut last = Lsn::ZERO;
    let err = loop {
        match log.append(&payload(last.get() + 1), Durability::Buffered) {
            Ok(lsn) => last = lsn,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, Error::LogFull { capacity: 12288, used } if used <= 12288),
        "{err}"
    );
    assert!(log.used_bytes() <= 3 * 4096);
    assert!(log.free_bytes().is_some_and(|free| free < 200));
    // A checkpoint frees whole segments, and appends go on.
    log.checkpoint(last)?;
    assert!(log.free_bytes().is_some_and(|free| free > 4000));
    assert_eq!(log.append(b"after", Durability::Synced)?, last.next());
    // A record that could never fit is refused at once.
    assert!(matches!(
        log.append(&[0; 20_000], Durability::Buffered),
        Err(Error::LogFull { .. })
    ));
    Ok(())
}

#[test]
fn an_append_waits_for_a_checkpoint_to_free_room() -> Result<()> {
    let env = Env::mem();
    let log = std::sync::Arc::new(
        env.builder()
            .capacity_bytes(3 * 4096)
            .when_full(tidelog::WhenFull::Wait(std::time::Duration::from_secs(30)))
            .open()?,
    );
    let mut last = Lsn::ZERO;
    while log.free_bytes().is_some_and(|free| free > 500) {
        last = log.append(&payload(last.get() + 1), Durability::Buffered)?;
    }
    let writer = {
        let log = std::sync::Arc::clone(&log);
        std::thread::spawn(move || -> Result<Lsn> {
            let mut lsn = Lsn::ZERO;
            for i in 0..20u64 {
                lsn = log.append(&payload(i), Durability::Buffered)?;
            }
            Ok(lsn)
        })
    };
    // The writer fills the log and waits; the checkpoint frees room and it finishes.
    while log.free_bytes().is_some_and(|free| free > 200) {
        std::thread::yield_now();
    }
    log.checkpoint(log.last_lsn().next())?;
    let done = writer.join().expect("writer")?;
    assert_eq!(done, Lsn::new(last.get() + 20));
    Ok(())
}

#[test]
fn capacity_smaller_than_a_segment_is_refused() {
    let env = Env::mem();
    let err = env.builder().capacity_bytes(1000).open().unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOptions {
                name: "capacity_bytes",
                ..
            }
        ),
        "{err}"
    );
}

/// The user metadata slot: kept in the checkpoint file, carried over by checkpoints and resets,
/// read back after a reopen, refused past its limit and on a read-only log, and seen by a
/// read-only log's refresh.
#[test]
fn metadata_survives_checkpoints_resets_and_reopens() -> tidelog::Result<()> {
    for env in crate::common::Env::both() {
        let ctx = env.name();
        let log = env.open()?;
        assert!(log.metadata().is_empty(), "{ctx}");
        log.set_metadata(b"vote 1 term 1")?;
        crate::common::append_n(&log, 50)?;
        log.checkpoint(tidelog::Lsn::new(20))?;
        assert_eq!(log.metadata(), b"vote 1 term 1", "{ctx}");
        let reader = env.builder().read_only(true).open()?;
        assert_eq!(reader.metadata(), b"vote 1 term 1", "{ctx}");
        log.set_metadata(b"vote 2 term 3")?;
        reader.refresh()?;
        assert_eq!(
            reader.metadata(),
            b"vote 2 term 3",
            "{ctx}: a refresh reads it again"
        );
        assert!(
            matches!(reader.set_metadata(b"x"), Err(tidelog::Error::ReadOnly)),
            "{ctx}"
        );
        drop(reader);
        let too_large = vec![7; tidelog::MAX_METADATA_BYTES + 1];
        assert!(
            matches!(
                log.set_metadata(&too_large),
                Err(tidelog::Error::MetadataTooLarge { len, max })
                    if len == tidelog::MAX_METADATA_BYTES + 1 && max == tidelog::MAX_METADATA_BYTES
            ),
            "{ctx}"
        );
        log.reset()?;
        assert_eq!(log.metadata(), b"vote 2 term 3", "{ctx}: a reset keeps it");
        let largest = vec![9; tidelog::MAX_METADATA_BYTES];
        log.set_metadata(&largest)?;
        drop(log);
        let log = env.open()?;
        assert_eq!(log.metadata(), largest, "{ctx}: after a reopen");
        assert!(log.recovery_report().is_clean(), "{ctx}");
    }
    Ok(())
}

/// A crash at every storage call of `set_metadata` leaves the old metadata or the new one,
/// never a mix and never a log that does not open.
#[test]
fn a_crash_anywhere_in_set_metadata_leaves_the_old_or_the_new() -> tidelog::Result<()> {
    use std::sync::Arc;
    use tidelog::io::{CrashMode, FaultPlan, FaultyStorage, MemStorage};
    let open = |storage: Arc<dyn tidelog::io::Storage>| {
        tidelog::Log::builder("/log").storage(storage).open()
    };
    // Count the storage calls of one `set_metadata`.
    let mem = MemStorage::new();
    let faulty = FaultyStorage::new(Arc::new(mem.clone()), FaultPlan::new());
    let log = open(Arc::new(faulty.clone()))?;
    log.set_metadata(b"old")?;
    let before = faulty.mutating_ops();
    log.set_metadata(b"new")?;
    let calls = faulty.mutating_ops() - before;
    drop(log);
    assert!(
        calls >= 4,
        "temporary file, write, fsync, rename, directory fsync: {calls}"
    );
    for n in 0..=calls {
        for mode in [CrashMode::DropUnsynced, CrashMode::Torn { seed: n }] {
            let mem = MemStorage::new();
            let log = open(Arc::new(mem.clone()))?;
            log.set_metadata(b"old")?;
            drop(log);
            let faulty = FaultyStorage::new(Arc::new(mem.clone()), FaultPlan::new());
            let log = open(Arc::new(faulty.clone()))?;
            let start = faulty.mutating_ops();
            drop(log);
            let faulty = FaultyStorage::new(
                Arc::new(mem.clone()),
                FaultPlan::new().fail_after(start + n),
            );
            if let Ok(log) = open(Arc::new(faulty)) {
                let _ = log.set_metadata(b"new");
                std::mem::forget(log); // the process dies
            }
            mem.crash(mode);
            let log = open(Arc::new(mem.clone()))?;
            let found = log.metadata();
            assert!(
                found == b"old" || found == b"new",
                "crash after call {n} of {calls} ({mode:?}): {found:?}"
            );
        }
    }
    Ok(())
}

/// `set_metadata` beside appends, syncs and checkpoints on other threads: every call succeeds,
/// the checkpoint only moves forward, and after a reopen the checkpoint file holds the last
/// metadata set with the last checkpoint (both write the same file, one at a time).
#[test]
fn set_metadata_beside_appends_syncs_and_checkpoints() -> tidelog::Result<()> {
    for env in crate::common::Env::both() {
        let ctx = env.name();
        let log = env.open()?;
        std::thread::scope(|s| -> tidelog::Result<()> {
            let appender = s.spawn(|| -> tidelog::Result<()> {
                for i in 0..300u64 {
                    let d = if i % 7 == 0 {
                        Durability::Synced
                    } else {
                        Durability::Buffered
                    };
                    log.append(&payload(i + 1), d)?;
                }
                Ok(())
            });
            let syncer = s.spawn(|| -> tidelog::Result<()> {
                for _ in 0..50 {
                    log.sync()?;
                }
                Ok(())
            });
            let checkpointer = s.spawn(|| -> tidelog::Result<()> {
                for _ in 0..30 {
                    let cp = log.durable_lsn().next().min(log.last_lsn().next());
                    log.checkpoint(cp)?;
                }
                Ok(())
            });
            for i in 0..40u32 {
                log.set_metadata(&i.to_le_bytes())?;
            }
            appender.join().expect("appender")?;
            syncer.join().expect("syncer")?;
            checkpointer.join().expect("checkpointer")
        })?;
        let checkpoint = log.checkpoint_lsn();
        assert_eq!(log.metadata(), 39u32.to_le_bytes(), "{ctx}");
        drop(log);
        let log = env.open()?;
        assert_eq!(log.metadata(), 39u32.to_le_bytes(), "{ctx}: after a reopen");
        assert_eq!(log.checkpoint_lsn(), checkpoint, "{ctx}");
        assert!(log.recovery_report().is_clean(), "{ctx}");
    }
    Ok(())
}

/// A deferred append's wait knows its records: rolled back, they are reported so, even once a
/// later record has taken the same LSN and is durable; kept, the wait returns once durable.
#[test]
fn a_deferred_append_waits_for_its_own_records_not_their_lsns() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 10)?;
        log.sync()?;
        let gone = log.append_batch_deferred(&[b"removed 11", b"removed 12"])?;
        assert_eq!((gone.first, gone.last), (Lsn::new(11), Lsn::new(12)));
        log.truncate_after(Lsn::new(10))?;
        assert_eq!(
            log.append_batch(&[b"new 11", b"new 12"], Durability::Synced)?,
            (Lsn::new(11), Lsn::new(12))
        );
        assert!(
            matches!(log.wait_appended(gone), Err(Error::RolledBack { .. })),
            "{}",
            env.name()
        );
        // Plain `wait_durable` on the LSN cannot tell the two apart.
        log.wait_durable(gone.last)?;
        let kept = log.append_batch_deferred(&[b"13"])?;
        assert!(log.durable_lsn() < kept.last);
        log.wait_appended(kept)?;
        assert!(log.durable_lsn() >= kept.last, "{}", env.name());
    }
    Ok(())
}
