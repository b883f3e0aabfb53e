//! Segment copies out of a log and a log imported from them: the seam the archive uploads and
//! restores through, on both backends.

use std::sync::Arc;

use tidelog::{CorruptionKind, Durability, Error, Importer, Log, Lsn, Result, SegmentCopy};

use crate::common::{Env, append_n, assert_holds, payload, read_all};

/// A copy of every segment of `log`, in order.
fn copies(log: &Log) -> Result<Vec<SegmentCopy>> {
    log.segments()
        .iter()
        .map(|s| log.copy_segment(s.first_lsn))
        .collect()
}

/// An import of `copies` into `dir` of `env`'s storage.
fn import(env: &Env, dir: &str, copies: &[&[u8]]) -> Result<std::path::PathBuf> {
    let mut importer = Importer::create_with(Arc::clone(&env.storage), env.dir.join(dir))?;
    for bytes in copies {
        importer.add(bytes)?;
    }
    importer.finish()
}

fn open_at(env: &Env, dir: &std::path::Path) -> Result<Log> {
    Log::builder(dir)
        .storage(Arc::clone(&env.storage))
        .segment_bytes(crate::common::SEGMENT_BYTES)
        .preallocate(false)
        .create_if_missing(false)
        .open()
}

#[test]
fn copies_of_every_segment_import_into_a_log_that_holds_the_same_records_and_goes_on() -> Result<()>
{
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 250)?;
        log.sync()?;
        let copies = copies(&log)?;
        let listed = log.segments();
        assert!(copies.len() >= 3, "{}: the log rolled", env.name());
        for (copy, info) in copies.iter().zip(&listed) {
            assert_eq!(copy.first_lsn(), info.first_lsn);
            assert_eq!(copy.last_lsn(), info.last_lsn, "{}", env.name());
            assert_eq!(copy.log_id(), log.log_id());
            // Sealed segments are copied whole, as their file holds them.
            assert_eq!(copy.is_complete(), !info.active, "{}", env.name());
            assert_eq!(copy.is_sealed(), !info.active, "{}", env.name());
            if !info.active {
                assert_eq!(copy.bytes(), env.read_file(&info.path), "{}", env.name());
            }
            assert!(copy.first_ms().is_some() && copy.first_ms() <= copy.last_ms());
        }
        let times: Vec<_> = read_all_times(&log)?;
        let parts: Vec<&[u8]> = copies.iter().map(SegmentCopy::bytes).collect();
        let dir = import(&env, "imported", &parts)?;
        let imported = open_at(&env, &dir)?;
        assert_eq!(imported.log_id(), log.log_id());
        assert_holds(&imported, 1, 250)?;
        assert_eq!(
            read_all_times(&imported)?,
            times,
            "{}: batch times",
            env.name()
        );
        assert_eq!(
            imported.append(&payload(251), Durability::Synced)?,
            Lsn::new(251)
        );
        imported.close()?;
        assert_holds(&open_at(&env, &dir)?, 1, 251)?;
    }
    Ok(())
}

fn read_all_times(log: &Log) -> Result<Vec<(u64, Option<u64>)>> {
    log.iter()?
        .map(|r| r.map(|r| (r.lsn().get(), r.timestamp_ms())))
        .collect()
}

#[test]
fn a_copy_of_the_active_segment_holds_its_durable_records_only() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 5)?;
        log.sync()?;
        let durable = log.durable_lsn();
        // Appended but not synced: not in the copy.
        append_n(&log, 3)?;
        let active = log
            .segments()
            .last()
            .map(|s| s.first_lsn)
            .unwrap_or(Lsn::new(1));
        let copy = log.copy_segment(active)?;
        assert_eq!(copy.last_lsn(), durable, "{}", env.name());
        assert!(!copy.is_complete() && !copy.is_sealed());
        let dir = import(&env, "imported", &[copy.bytes()])?;
        assert_holds(&open_at(&env, &dir)?, 1, 5)?;
    }
    Ok(())
}

#[test]
fn a_copy_of_a_segment_that_is_not_there_is_refused() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 250)?;
        log.sync()?;
        let second = log.segments()[1].first_lsn;
        assert!(matches!(
            log.copy_segment(second.next()),
            Err(Error::InvalidLsn { lsn, .. }) if lsn == second.next()
        ));
        log.checkpoint(second)?;
        assert!(matches!(
            log.copy_segment(Lsn::new(1)),
            Err(Error::InvalidLsn { .. })
        ));
    }
    Ok(())
}

#[test]
fn an_import_refuses_gaps_overlaps_other_logs_and_damage_and_keeps_nothing_it_refused() -> Result<()>
{
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 250)?;
        log.sync()?;
        let copies = copies(&log)?;
        let other = Log::builder(env.dir.join("other"))
            .storage(Arc::clone(&env.storage))
            .open()?;
        append_n(&other, 10)?;
        other.sync()?;
        let foreign = other.copy_segment(other.segments()[0].first_lsn)?;

        // A gap: the second copy left out.
        let mut importer = Importer::create_with(Arc::clone(&env.storage), env.dir.join("gap"))?;
        importer.add(copies[0].bytes())?;
        match importer.add(copies[2].bytes()) {
            Err(Error::MissingRecords { first, last, .. }) => {
                assert_eq!(first, copies[1].first_lsn());
                assert_eq!(last, copies[1].last_lsn());
            }
            other => panic!("{}: expected MissingRecords, got {other:?}", env.name()),
        }
        // An overlap, and a copy of another log.
        match importer.add(copies[0].bytes()) {
            Err(Error::Corrupt {
                kind: CorruptionKind::LsnMismatch { .. },
                ..
            }) => {}
            other => panic!("{}: expected LsnMismatch, got {other:?}", env.name()),
        }
        match importer.add(foreign.bytes()) {
            Err(Error::Corrupt {
                kind: CorruptionKind::ForeignLog { .. },
                ..
            }) => {}
            other => panic!("{}: expected ForeignLog, got {other:?}", env.name()),
        }
        // A flipped byte in a frame, and a copy cut in the middle of a frame.
        let mut flipped = copies[1].bytes().to_vec();
        let at = flipped.len() - 40;
        flipped[at] ^= 0x10;
        assert!(matches!(
            importer.add(&flipped),
            Err(Error::Corrupt {
                kind: CorruptionKind::FrameChecksum { .. },
                ..
            })
        ));
        let cut = &copies[1].bytes()[..copies[1].bytes().len() - 7];
        assert!(matches!(
            importer.add(cut),
            Err(Error::Corrupt {
                kind: CorruptionKind::TruncatedFrame { .. },
                ..
            })
        ));
        // Nothing refused was left behind; the good copy still goes in.
        let mut left = env.list(&env.dir.join("gap"));
        left.retain(|name| name != "LOCK");
        assert_eq!(left, ["00000000000000000001.seg"], "{}", env.name());
        importer.add(copies[1].bytes())?;
        assert_eq!(importer.next_lsn(), Some(copies[1].last_lsn().next()));
    }
    Ok(())
}

#[test]
fn an_import_cut_inside_a_batch_is_refused() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        // Four frames of 32 + 20 bytes.
        let batch = vec![vec![b'x'; 20]; 4];
        log.append_batch(&batch, Durability::Synced)?;
        let copy = log.copy_segment(Lsn::new(1))?;
        assert_eq!(copy.last_lsn(), Lsn::new(4));
        // The copy without its last frame: a batch of four cut after three.
        let cut = &copy.bytes()[..copy.bytes().len() - 52];
        let mut importer = Importer::create_with(Arc::clone(&env.storage), env.dir.join("cut"))?;
        assert!(matches!(
            importer.add(cut),
            Err(Error::Corrupt {
                kind: CorruptionKind::IncompleteBatch { first },
                ..
            }) if first == Lsn::new(1)
        ));
        assert_eq!(read_all(&log)?.len(), 4);
    }
    Ok(())
}

#[test]
fn an_import_into_a_directory_that_holds_files_is_refused() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 3)?;
        log.sync()?;
        drop(log);
        assert!(matches!(
            Importer::create_with(Arc::clone(&env.storage), &env.dir),
            Err(Error::Io {
                op: "import into",
                ..
            })
        ));
        let empty = Importer::create_with(Arc::clone(&env.storage), env.dir.join("empty"))?;
        assert!(matches!(empty.finish(), Err(Error::NotFound { .. })));
    }
    Ok(())
}

/// Copies taken while a writer appends and rolls: every copy checks out, a complete copy
/// never changes, and at the end each equals the file it was taken from.
#[test]
fn copies_taken_while_the_log_rolls_are_whole_and_complete_ones_never_change() -> Result<()> {
    for env in Env::both() {
        let log = Arc::new(env.open()?);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            std::thread::spawn(move || -> Result<()> {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 300_000 {
                    let batch: Vec<Vec<u8>> = (1..=3).map(|i| payload(n + i)).collect();
                    log.append_batch(&batch, Durability::Synced)?;
                    n += 3;
                }
                Ok(())
            })
        };
        let mut complete: std::collections::HashMap<Lsn, Vec<u8>> = Default::default();
        let mut copies_taken = 0;
        while !writer.is_finished() && (copies_taken < 400 || complete.len() < 15) {
            for info in log.segments() {
                let copy = log.copy_segment(info.first_lsn)?;
                copies_taken += 1;
                assert!(copy.last_lsn() <= log.durable_lsn(), "{}", env.name());
                if copy.is_complete() {
                    let seen = complete
                        .entry(copy.first_lsn())
                        .or_insert_with(|| copy.bytes().to_vec());
                    assert_eq!(
                        seen,
                        copy.bytes(),
                        "{}: a complete copy changed",
                        env.name()
                    );
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        writer.join().expect("writer")?;
        assert!(
            complete.len() >= 15 && copies_taken >= 400,
            "{}",
            env.name()
        );
        for info in log.segments().iter().filter(|s| !s.active) {
            if let Some(bytes) = complete.get(&info.first_lsn) {
                assert_eq!(bytes, &env.read_file(&info.path), "{}", env.name());
            }
        }
        let finals = copies(&log)?;
        let parts: Vec<&[u8]> = finals.iter().map(SegmentCopy::bytes).collect();
        let dir = import(&env, "imported", &parts)?;
        let imported = open_at(&env, &dir)?;
        assert_eq!(imported.last_lsn(), log.durable_lsn());
    }
    Ok(())
}

/// Copies taken while the log is rolled back again and again: each is refused with
/// `RolledBack` or is a segment file that imports on its own, never a mix of old and new bytes.
#[test]
fn copies_taken_beside_rollbacks_are_refused_or_whole() -> Result<()> {
    for env in Env::both() {
        let log = Arc::new(env.open()?);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            std::thread::spawn(move || -> Result<()> {
                let mut round = 0u64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && round < 100_000 {
                    let last = log.last_lsn().get();
                    let batch: Vec<Vec<u8>> = (1..=4).map(|i| payload(last + i)).collect();
                    log.append_batch(&batch, Durability::Synced)?;
                    if round % 3 == 2 {
                        log.truncate_after(Lsn::new(log.last_lsn().get().saturating_sub(6)))?;
                    }
                    round += 1;
                }
                Ok(())
            })
        };
        let (mut whole, mut refused) = (0, 0);
        let mut k = 0;
        while !writer.is_finished() && whole < 60 {
            for info in log.segments() {
                match log.copy_segment(info.first_lsn) {
                    Ok(copy) => {
                        k += 1;
                        let dir = import(&env, &format!("i{k}"), &[copy.bytes()])?;
                        let imported = open_at(&env, &dir)?;
                        assert_eq!(imported.last_lsn(), copy.last_lsn(), "{}", env.name());
                        for record in imported.iter()? {
                            let record = record?;
                            assert_eq!(record.data(), payload(record.lsn().get()));
                        }
                        whole += 1;
                    }
                    Err(Error::RolledBack { .. } | Error::InvalidLsn { .. }) => refused += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        writer.join().expect("writer")?;
        assert!(
            whole >= 60,
            "{}: {whole} whole, {refused} refused",
            env.name()
        );
    }
    Ok(())
}
