//! Preallocated segments: allocated whole when created, trimmed when sealed, and a zero tail
//! that recovery reads as the clean end.

use std::path::Path;

use tidelog::{Durability, Lsn, Result};

use crate::common::{Env, SEGMENT_BYTES, append_n, assert_holds, payload};

fn file_len(env: &Env, path: &Path) -> u64 {
    env.read_file(path).len() as u64
}

#[test]
fn segments_are_allocated_whole_and_trimmed_when_sealed() -> Result<()> {
    for env in Env::both() {
        let log = env.builder().preallocate(true).open()?;
        let active = log.segments().pop().expect("a segment");
        assert_eq!(
            file_len(&env, &active.path),
            SEGMENT_BYTES,
            "{}",
            env.name()
        );
        append_n(&log, 300)?;
        log.sync()?;
        let segments = log.segments();
        let (active, sealed) = segments.split_last().expect("segments");
        for s in sealed {
            assert_eq!(
                file_len(&env, &s.path),
                s.bytes,
                "{}: sealed {:?} trimmed",
                env.name(),
                s.path
            );
        }
        assert_eq!(
            file_len(&env, &active.path),
            SEGMENT_BYTES,
            "{}",
            env.name()
        );
        drop(log);
        let log = env.builder().preallocate(true).open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{}: {}",
            env.name(),
            log.recovery_report()
        );
        assert_holds(&log, 1, 300)?;
        assert_eq!(log.append(b"more", Durability::Synced)?, Lsn::new(301));
    }
    Ok(())
}

#[test]
fn a_torn_write_inside_the_preallocated_tail_is_cut() -> Result<()> {
    for env in Env::both() {
        let log = env.builder().preallocate(true).open()?;
        for lsn in 1..=20 {
            log.append(&payload(lsn), Durability::Synced)?;
        }
        let active = log.segments().pop().expect("a segment");
        drop(log);
        // Half of a frame, written into the zeros after the last one, and then a crash.
        let mut bytes = env.read_file(&active.path);
        let end = active.bytes as usize;
        bytes[end..end + 9].copy_from_slice(&[0x5a; 9]);
        env.write_file(&active.path, &bytes);
        let log = env.builder().preallocate(true).open()?;
        let report = log.recovery_report().clone();
        assert_eq!(report.damage.len(), 1, "{}: {report}", env.name());
        assert_eq!(report.damage[0].offset, active.bytes, "{}", env.name());
        // Only the torn bytes count as cut and are quarantined, not the zeros after them.
        assert_eq!(report.torn_bytes_cut, 9, "{}: {report}", env.name());
        let quarantined = report.quarantined.first().expect("a quarantined copy");
        assert_eq!(env.read_file(quarantined), [0x5a; 9], "{}", env.name());
        assert_eq!(log.last_lsn(), Lsn::new(20));
        drop(log);
        let log = env.builder().preallocate(true).open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{}: {}",
            env.name(),
            log.recovery_report()
        );
    }
    Ok(())
}

#[test]
fn rollback_in_a_preallocated_segment_reopens_clean() -> Result<()> {
    for env in Env::both() {
        let log = env
            .builder()
            .preallocate(true)
            .segment_bytes(1 << 20)
            .open()?;
        append_n(&log, 100)?;
        log.truncate_after(Lsn::new(60))?;
        log.append(&payload(61), Durability::Synced)?;
        drop(log);
        let log = env
            .builder()
            .preallocate(true)
            .segment_bytes(1 << 20)
            .open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{}: {}",
            env.name(),
            log.recovery_report()
        );
        assert_holds(&log, 1, 61)?;
    }
    Ok(())
}
