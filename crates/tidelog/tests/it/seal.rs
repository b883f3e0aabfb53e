//! Seals (format version 2, format.md 2.5): every segment a roll ends carries, as its last
//! frame, the LSNs and times of its records; nothing is ever appended after a seal, not even
//! when a crash kept the next segment from being created.

use std::path::Path;
use std::sync::Arc;

use tidelog::inspect::{Checksum, Entry, Frames, Seal, segment_files};
use tidelog::io::{FaultPlan, FaultyStorage, Op};
use tidelog::{Durability, Lsn, Result};

use crate::common::{Env, append_n, assert_holds, payload};

/// The seal ending the segment file at `path`, checked to be its last frame, intact; `None` if
/// its last frame is no seal.
fn seal_of(env: &Env, path: &Path) -> Result<Option<Seal>> {
    let frames = Frames::open_with(&*env.storage, path, None)?;
    let all = Frames::open_with(&*env.storage, path, None)?.collect::<Result<Vec<_>>>()?;
    let Some(Entry::Frame(last)) = all.last() else {
        return Ok(None);
    };
    assert_eq!(last.checksum(), Checksum::Valid, "{}", path.display());
    let seal = frames.seal(last)?;
    if let Some(seal) = seal {
        assert_eq!(
            last.lsn,
            seal.last_lsn.next(),
            "a seal carries the next LSN"
        );
    }
    Ok(seal)
}

/// The time of each record, by LSN.
fn times(log: &tidelog::Log) -> Result<Vec<(u64, u64)>> {
    log.iter()?
        .map(|r| r.map(|r| (r.lsn().get(), r.timestamp_ms().expect("version 2"))))
        .collect()
}

#[test]
fn every_rolled_segment_ends_with_a_seal_naming_its_records_and_times() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let log = env.open()?;
        append_n(&log, 300)?;
        log.sync()?;
        let times = times(&log)?;
        let time = |lsn: Lsn| times[lsn.get() as usize - 1].1;
        let segments = log.segments();
        assert!(segments.len() > 3, "{ctx}: the log rolled");
        for s in &segments[..segments.len() - 1] {
            let seal = seal_of(&env, &s.path)?.expect("a rolled segment is sealed");
            assert_eq!(
                (seal.first_lsn, seal.last_lsn),
                (s.first_lsn, s.last_lsn),
                "{ctx}: {s:?}"
            );
            assert_eq!(seal.first_ms, time(s.first_lsn), "{ctx}: {s:?}");
            assert_eq!(seal.last_ms, time(s.last_lsn), "{ctx}: {s:?}");
        }
        let active = segments.last().unwrap();
        assert_eq!(
            seal_of(&env, &active.path)?,
            None,
            "{ctx}: the active one is not"
        );
        // A checkpoint that frees the active segment rolls it too, and seals it: an iterator
        // on it keeps its file on disk to be seen.
        let next = log.append(b"last", Durability::Synced)?.next();
        let mut reading = log.iter_from(active.first_lsn)?;
        assert!(reading.next().is_some());
        log.checkpoint(next)?;
        let seal = seal_of(&env, &active.path)?.expect("sealed by the checkpoint's roll");
        assert_eq!(
            (seal.first_lsn, seal.last_lsn),
            (active.first_lsn, next.prev())
        );
        drop(reading);
        drop(log);
        let log = env.open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{ctx}: {}",
            log.recovery_report()
        );
    }
    Ok(())
}

/// A roll syncs the sealed segment before it creates the next one: a crash in between leaves a
/// log whose last segment is sealed. Recovery keeps every record and starts the next segment;
/// appends never go behind the seal.
#[test]
fn a_crash_between_a_seal_and_the_next_segment_loses_nothing() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        drop(env.open()?);
        // The reopen renames nothing: the first rename is the next segment's, at the first roll.
        let faulty = FaultyStorage::new(
            Arc::clone(&env.storage),
            FaultPlan::new().fail_nth(Op::Rename, 1),
        );
        let log = env.builder().storage(Arc::new(faulty)).open()?;
        let mut last = 0;
        let failed = loop {
            match log.append(&payload(last + 1), Durability::Buffered) {
                Ok(lsn) => last = lsn.get(),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(failed, tidelog::Error::Io { .. }),
            "{ctx}: {failed}"
        );
        drop(log);
        if let Some(mem) = &env.mem {
            mem.crash(tidelog::io::CrashMode::DropUnsynced);
        }
        let first = segment_files(&*env.storage, &env.dir)?;
        assert_eq!(first.len(), 1, "{ctx}: no second segment");
        let seal = seal_of(&env, &first[0])?.expect("sealed before the crash");
        assert_eq!(seal.last_lsn, Lsn::new(last), "{ctx}");

        let log = env.open()?;
        let report = log.recovery_report();
        assert!(report.damage.is_empty(), "{ctx}: {report}");
        assert_eq!(report.last_lsn, Lsn::new(last), "{ctx}");
        let segments = log.segments();
        assert_eq!(segments.len(), 2, "{ctx}: a new segment takes the appends");
        assert_eq!(segments[1].first_lsn, Lsn::new(last + 1), "{ctx}");
        assert_eq!(
            log.append(&payload(last + 1), Durability::Synced)?,
            Lsn::new(last + 1)
        );
        drop(log);
        let log = env.open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{ctx}: {}",
            log.recovery_report()
        );
        assert_holds(&log, 1, last + 1)?;
        assert_eq!(
            seal_of(&env, &first[0])?,
            Some(seal),
            "{ctx}: the seal stays"
        );
    }
    Ok(())
}

/// A rollback into a sealed segment makes it the active one again: its seal goes with the
/// records the rollback removed, and appends follow the kept record. A rollback to its last
/// record keeps it sealed: appends go to the segment after it.
#[test]
fn a_rollback_into_a_sealed_segment_removes_its_seal() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let log = env.open()?;
        append_n(&log, 150)?;
        log.sync()?;
        let sealed = log.segments()[0].clone();
        let end = sealed.last_lsn;
        log.truncate_after(end)?;
        let seal = seal_of(&env, &sealed.path)?.expect("still sealed");
        assert_eq!(seal.last_lsn, end, "{ctx}");
        assert_eq!(log.segments().len(), 2, "{ctx}");
        let kept = end.get() - 5;
        log.truncate_after(Lsn::new(kept))?;
        assert_eq!(seal_of(&env, &sealed.path)?, None, "{ctx}: the seal went");
        assert_eq!(log.segments().len(), 1, "{ctx}");
        append_n(&log, 40)?;
        log.sync()?;
        drop(log);
        let log = env.open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{ctx}: {}",
            log.recovery_report()
        );
        assert_holds(&log, 1, kept + 40)?;
    }
    Ok(())
}

/// A log of many sealed segments, closed: `(env, last LSN, segment paths)`.
fn sealed_log(env: &Env) -> Result<(u64, Vec<std::path::PathBuf>)> {
    let log = env.open()?;
    let last = append_n(&log, 400)?.get();
    log.close()?;
    let paths = env.segment_paths();
    assert!(paths.len() > 5, "{}: the log rolled", env.name());
    Ok((last, paths))
}

/// An open that trusts seals reads two small pieces of each sealed segment and scans only the
/// last; the log it gives reads back the same, sequentially and by LSN (a read in the middle
/// of a trusted segment reads it whole once, to index it), and rolls back and checkpoints.
#[test]
fn an_open_that_trusts_seals_gives_the_same_log() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let (last, paths) = sealed_log(&env)?;
        let log = env.builder().trust_seals(true).open()?;
        let report = log.recovery_report();
        assert!(report.is_clean(), "{ctx}: {report}");
        assert_eq!(report.segments_trusted, paths.len() - 1, "{ctx}: {report}");
        assert_eq!(report.records_recovered, last, "{ctx}");
        assert_eq!(report.last_lsn, Lsn::new(last), "{ctx}");
        assert_holds(&log, 1, last)?;
        for lsn in (1..=last).rev() {
            let record = log.read(Lsn::new(lsn))?;
            assert_eq!(record.data(), payload(lsn), "{ctx}: LSN {lsn}");
        }
        let mut from_middle = log.iter_from(Lsn::new(last / 2))?;
        let first = from_middle.next().expect("a record")?;
        assert_eq!(first.lsn(), Lsn::new(last / 2), "{ctx}");
        // A rollback into a trusted segment, appends, a checkpoint: a full open agrees.
        let kept = last / 3;
        log.truncate_after(Lsn::new(kept))?;
        let end = append_n(&log, 30)?.get();
        log.checkpoint(Lsn::new(kept / 2))?;
        log.close()?;
        let log = env.open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{ctx}: {}",
            log.recovery_report()
        );
        assert_holds(&log, kept / 2, end)?;
    }
    Ok(())
}

/// What an open that trusts seals does not see at open: damage inside a sealed segment. It is
/// found when the segment is read, as `Error::Corrupt` naming the file and the offset, whichever
/// way it is read; an open that reads every frame refuses the log at once.
#[test]
fn damage_in_a_trusted_segment_is_reported_when_it_is_read() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let (last, paths) = sealed_log(&env)?;
        let lsn = last / 2;
        let (path, offset) = crate::recycle::payload_offset(&env, Lsn::new(lsn));
        assert_ne!(Some(&path), paths.last(), "{ctx}: a sealed segment");
        env.flip_byte(&path, offset as usize, 0x01);

        let log = env.builder().trust_seals(true).open()?;
        assert!(log.recovery_report().is_clean(), "{ctx}: not seen at open");
        let corrupt = |e: tidelog::Error| match e {
            tidelog::Error::Corrupt { path: p, .. } => assert_eq!(p, path, "{ctx}"),
            other => panic!("{ctx}: {other:?}"),
        };
        let read_all: Result<Vec<_>> = log.iter()?.collect();
        corrupt(read_all.expect_err("the damage is met"));
        corrupt(log.read(Lsn::new(lsn)).expect_err("the damaged record"));
        drop(log);
        match env.open() {
            Err(tidelog::Error::Corrupt { path: p, .. }) => assert_eq!(p, path, "{ctx}"),
            other => panic!("{ctx}: a full open refuses the log: {other:?}"),
        }
    }
    Ok(())
}

/// A seal that is not intact is not trusted: its segment is read in full, and its damage
/// reported as without the option.
#[test]
fn a_damaged_seal_is_not_trusted() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let (_, paths) = sealed_log(&env)?;
        let path = &paths[1];
        let len = env.read_file(path).len();
        env.flip_byte(path, len - 10, 0x01);
        let full = env.open().map(|_| ()).map_err(|e| format!("{e:?}"));
        let trusting = env
            .builder()
            .trust_seals(true)
            .open()
            .map(|_| ())
            .map_err(|e| format!("{e:?}"));
        assert!(full.is_err(), "{ctx}");
        assert_eq!(trusting, full, "{ctx}");
        // Where the damage is accepted, the other seals are trusted and the damaged one is not.
        let log = env
            .builder()
            .trust_seals(true)
            .recovery_mode(tidelog::RecoveryMode::SkipCorrupt)
            .open()?;
        let report = log.recovery_report();
        assert_eq!(report.segments_trusted, paths.len() - 2, "{ctx}: {report}");
        assert_eq!(report.damage.len(), 1, "{ctx}: {report}");
    }
    Ok(())
}

#[test]
fn a_roll_seals_the_segment_and_the_next_one_takes_appends() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let log = env.open()?;
        log.roll()?; // nothing to seal: a no-op
        assert_eq!(log.segments().len(), 1, "{ctx}");
        append_n(&log, 5)?;
        log.append(b"buffered", Durability::Buffered)?;
        log.roll()?;
        let segments = log.segments();
        assert_eq!(segments.len(), 2, "{ctx}");
        assert_eq!(
            (segments[0].first_lsn, segments[0].last_lsn),
            (Lsn::new(1), Lsn::new(6))
        );
        assert_eq!(segments[1].first_lsn, Lsn::new(7), "{ctx}");
        assert_eq!(
            log.durable_lsn(),
            Lsn::new(6),
            "{ctx}: the sealed segment is synced"
        );
        let seal = seal_of(&env, &segments[0].path)?.expect("sealed");
        assert_eq!((seal.first_lsn, seal.last_lsn), (Lsn::new(1), Lsn::new(6)));
        log.roll()?; // the new segment holds nothing yet
        assert_eq!(log.segments().len(), 2, "{ctx}");
        let lsn = log.append(b"after", Durability::Synced)?;
        assert_eq!(lsn, Lsn::new(7));
        drop(log);
        let log = env.open()?;
        assert_eq!(log.segments().len(), 2, "{ctx}");
        assert_eq!(log.read(Lsn::new(6))?.data(), b"buffered");
        assert_eq!(log.read(lsn)?.data(), b"after");
    }
    Ok(())
}

#[test]
fn a_roll_in_a_full_bounded_log_is_refused_and_changes_nothing() -> Result<()> {
    let env = Env::mem();
    let log = env
        .builder()
        .capacity_bytes(8192)
        .segment_bytes(4096)
        .open()?;
    let mut appended = 0;
    while log.append(&[7u8; 100], Durability::Buffered).is_ok() {
        appended += 1;
    }
    let segments = log.segments().len();
    match log.roll() {
        Err(tidelog::Error::LogFull { .. }) => {}
        other => panic!("expected LogFull, got {other:?}"),
    }
    assert_eq!(log.segments().len(), segments);
    log.sync()?;
    assert_eq!(log.last_lsn(), Lsn::new(appended));
    Ok(())
}
