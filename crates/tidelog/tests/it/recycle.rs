//! Recycled segment files: reused after a checkpoint, and never a stale record read back.

use std::sync::Arc;

use tidelog::io::{CrashMode, MemStorage, Storage};
use tidelog::{Durability, Log, Lsn, RecoveryMode, Result};

use crate::common::{Env, SEGMENT_BYTES, append_n, assert_holds};

fn free_files(env: &Env) -> usize {
    env.list(&env.dir)
        .iter()
        .filter(|n| n.ends_with(".free"))
        .count()
}

#[test]
fn freed_segments_are_reused_and_the_log_reopens_clean() -> Result<()> {
    for env in Env::both() {
        let log = env.builder().recycle_segments(true).open()?;
        let last = append_n(&log, 400)?;
        log.checkpoint(last.next())?;
        assert_eq!(
            free_files(&env),
            2,
            "{}: two freed files kept for reuse",
            env.name()
        );
        let last = append_n(&log, 200)?;
        log.sync()?;
        let m = log.metrics();
        assert!(m.segments_recycled >= 2, "{}: {m:?}", env.name());
        assert!(free_files(&env) < 2, "{}", env.name());
        drop(log);
        let log = env.builder().recycle_segments(true).open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{}: {}",
            env.name(),
            log.recovery_report()
        );
        assert_holds(&log, 401, last.get())?;
        // A log opened without recycling reads it the same, and leaves the free files alone.
        drop(log);
        let log = env.builder().open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{}: {}",
            env.name(),
            log.recovery_report()
        );
        assert!(log.recovery_report().unknown_files.is_empty());
        assert_holds(&log, 401, last.get())?;
    }
    Ok(())
}

fn old(lsn: u64) -> Vec<u8> {
    format!("old record {lsn:05} ").repeat(3).into_bytes()
}

fn new(lsn: u64) -> Vec<u8> {
    format!("new {lsn:05}").into_bytes()
}

#[test]
fn a_crash_in_a_recycled_segment_never_reads_old_frames_back() -> Result<()> {
    for seed in 0..120u64 {
        let mem = MemStorage::new();
        let open = || {
            Log::builder("/log")
                .storage(Arc::new(mem.clone()) as Arc<dyn Storage>)
                .segment_bytes(SEGMENT_BYTES)
                .recycle_segments(true)
                .open()
        };
        let log = open()?;
        for lsn in 1..=300 {
            log.append(&old(lsn), Durability::Buffered)?;
        }
        log.checkpoint(Lsn::new(301))?;
        // New records, shorter than the old ones, land in recycled files over old frames.
        let mut acked = 300;
        for lsn in 301..=520u64 {
            let d = if lsn % 7 == 0 {
                Durability::Synced
            } else {
                Durability::Buffered
            };
            log.append(&new(lsn), d)?;
            if d == Durability::Synced {
                acked = lsn;
            }
        }
        assert!(log.metrics().segments_recycled > 0);
        std::mem::forget(log);
        mem.crash(if seed % 2 == 0 {
            CrashMode::Torn { seed }
        } else {
            CrashMode::Reordered { seed }
        });
        let log = open()?;
        let records: Vec<(u64, Vec<u8>)> = log
            .iter()?
            .map(|r| r.map(|r| (r.lsn().get(), r.into_data())))
            .collect::<Result<_>>()?;
        let last = log.last_lsn().get();
        assert!(
            last >= acked,
            "seed {seed}: acknowledged {acked} lost (last {last})"
        );
        assert_eq!(
            records.iter().map(|r| r.0).collect::<Vec<_>>(),
            (301..=last).collect::<Vec<_>>(),
            "seed {seed}"
        );
        for (lsn, data) in &records {
            assert_eq!(
                data,
                &new(*lsn),
                "seed {seed}: LSN {lsn} read back an old frame"
            );
        }
        drop(log);
        let log = open()?;
        assert!(
            log.recovery_report().is_clean(),
            "seed {seed}: {}",
            log.recovery_report()
        );
    }
    Ok(())
}

/// The bytes of the segment file holding `lsn`, and the offset of that record's payload, found
/// through `tidelog::inspect` (which reads the frames as format.md describes them).
pub(crate) fn payload_offset(env: &Env, lsn: Lsn) -> (std::path::PathBuf, u64) {
    for path in env.segment_paths() {
        let frames =
            tidelog::inspect::Frames::open_with(&*env.storage, &path, None).expect("inspect");
        for entry in frames {
            if let Ok(tidelog::inspect::Entry::Frame(f)) = entry
                && f.is_record()
                && f.lsn == lsn
            {
                return (path, f.offset + u64::from(f.header_len));
            }
        }
    }
    panic!("LSN {lsn} in no segment");
}

/// Damage to the last record of a recycled segment, every record of which was acknowledged as
/// synced: the earlier life's frames behind it are known by their own seed, and the sync marker
/// the close left after the record proves it durable, so the damage is reported (an error in the
/// default mode), never taken for the end of the data and overwritten by the next appends.
#[test]
fn damage_to_a_synced_record_of_a_recycled_segment_is_reported() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let builder = || env.builder().segment_bytes(4096).recycle_segments(true);
        let log = builder().open()?;
        append_n(&log, 200)?;
        log.checkpoint(Lsn::new(150))?;
        // Into a recycled file: records until the active segment is one.
        let first_recycled = log.metrics().segments_recycled;
        let mut last = log.last_lsn();
        while log.metrics().segments_recycled == first_recycled {
            last = log.append(
                format!("r{}", last.get() + 1).as_bytes(),
                Durability::Synced,
            )?;
        }
        for _ in 0..3 {
            last = log.append(
                format!("r{}", last.get() + 1).as_bytes(),
                Durability::Synced,
            )?;
        }
        log.close()?;
        let log = builder().open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{ctx}: {}",
            log.recovery_report()
        );
        assert_eq!(log.last_lsn(), last, "{ctx}");
        drop(log);

        let (path, at) = payload_offset(&env, last);
        let mut bytes = env.read_file(&path);
        bytes[at as usize] ^= 0x20;
        env.write_file(&path, &bytes);
        let opened = builder().open();
        assert!(
            matches!(&opened, Err(tidelog::Error::Corrupt { path: p, .. }) if *p == path),
            "{ctx}: {:?}",
            opened.as_ref().map(Log::recovery_report)
        );
    }
    Ok(())
}

/// Only a file that holds one clean life is recycled: the frames it keeps behind a new
/// segment's data must be known by their seed as the end of the data. A free file found
/// damaged is removed by a writable open; a segment in which `SkipCorrupt` skipped damage is
/// removed, not recycled, when a checkpoint frees it. Either way the log reopens clean, in
/// `Strict` too, after the next rolls.
#[test]
fn only_a_clean_file_is_recycled() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let log = env.builder().recycle_segments(true).open()?;
        let last = append_n(&log, 400)?;
        log.checkpoint(last.next())?;
        assert_eq!(free_files(&env), 2, "{ctx}");
        drop(log);
        // Damage in a free file's frames.
        let free: Vec<String> = env
            .list(&env.dir)
            .into_iter()
            .filter(|n| n.ends_with(".free"))
            .collect();
        let path = env.dir.join(&free[0]);
        let len = env.read_file(&path).len();
        env.flip_byte(&path, len / 2, 0x20);
        let log = env.builder().recycle_segments(true).open()?;
        assert_eq!(
            log.recovery_report().removed_temp_files,
            vec![path.clone()],
            "{ctx}"
        );
        assert_eq!(free_files(&env), 1, "{ctx}: the clean one stays");
        appends_reopen_strict_and_clean(&env, log, 401)?;

        // A sealed segment damaged in the middle, opened with `SkipCorrupt`, then freed.
        // The oldest segment, the first a checkpoint frees (and would keep for reuse).
        let (path, offset) = payload_offset(&env, Lsn::new(405));
        env.flip_byte(&path, offset as usize, 0x20);
        let log = env
            .builder()
            .recycle_segments(true)
            .recovery_mode(RecoveryMode::SkipCorrupt)
            .open()?;
        assert_eq!(log.recovery_report().damage.len(), 1, "{ctx}");
        let before = free_files(&env);
        let end = append_n(&log, 1)?;
        log.checkpoint(end.next())?;
        let kept = env.list(&env.dir);
        let name = path.with_extension("free");
        let name = name
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(!kept.iter().any(|n| n == name), "{ctx}: {kept:?}");
        assert!(free_files(&env) <= before.max(2), "{ctx}");
        appends_reopen_strict_and_clean(&env, log, end.get() + 1)?;
    }
    Ok(())
}

/// Appends 400 records to `log` (rolling into recycled files), closes it, and reopens it in
/// `Strict`: clean, holding every record from `first` on.
fn appends_reopen_strict_and_clean(env: &Env, log: Log, first: u64) -> Result<()> {
    let last = append_n(&log, 400)?;
    log.sync()?;
    drop(log);
    let log = env.builder().recovery_mode(RecoveryMode::Strict).open()?;
    assert!(
        log.recovery_report().is_clean(),
        "{}: {}",
        env.name(),
        log.recovery_report()
    );
    assert_holds(&log, first, last.get())
}
