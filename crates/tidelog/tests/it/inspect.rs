//! Reading segment and quarantined files frame by frame (`tidelog::inspect`): a healthy log's
//! frames are its records; the files recovery writes to `quarantine/` show what was cut, at the
//! offsets recovery reported, checked against the header of the segment they came from.

use std::path::{Path, PathBuf};

use tidelog::inspect::{Checksum, Entry, FileKind, Frame, Frames, HeaderSource, segment_files};
use tidelog::{CorruptionKind, DamageAction, Durability, Lsn, RecoveryMode, Result, SyncPolicy};

use crate::common::{Env, append_n, payload};

/// Every entry of the file at `path`.
fn entries(env: &Env, path: &Path) -> Result<(Frames, Vec<Entry>)> {
    let frames = Frames::open_with(&*env.storage, path, None)?;
    let all = Frames::open_with(&*env.storage, path, None)?.collect::<Result<Vec<_>>>()?;
    Ok((frames, all))
}

fn frames(entries: &[Entry]) -> Vec<Frame> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Frame(f) if f.is_record() => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// The segment holding the frame of `lsn`, and that frame.
fn find(env: &Env, lsn: u64) -> Result<(PathBuf, Frame)> {
    for path in segment_files(&*env.storage, &env.dir)? {
        let (_, all) = entries(env, &path)?;
        if let Some(f) = frames(&all).into_iter().find(|f| f.lsn == Lsn::new(lsn)) {
            return Ok((path, f));
        }
    }
    panic!("no frame of LSN {lsn}");
}

#[test]
fn the_frames_of_a_log_are_its_records() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let log = env.open()?;
        append_n(&log, 100)?;
        log.append_batch(&[b"one".as_slice(), b"two", b"three"], Durability::Synced)?;
        append_n(&log, 50)?;
        log.sync()?;
        let records: Vec<_> = log.iter()?.collect::<Result<_>>()?;
        let segments = segment_files(&*env.storage, &env.dir)?;
        assert_eq!(
            segments,
            log.segments()
                .into_iter()
                .map(|s| s.path)
                .collect::<Vec<_>>(),
            "{ctx}"
        );
        let mut seen = Vec::new();
        for path in &segments {
            let (reader, all) = entries(&env, path)?;
            assert_eq!(reader.header_source(), &HeaderSource::Own, "{ctx}");
            assert!(matches!(reader.kind(), FileKind::Segment { .. }), "{ctx}");
            assert_eq!(
                reader.header().map(|h| h.log_id),
                Some(log.log_id()),
                "{ctx}"
            );
            for entry in &all {
                match entry {
                    Entry::Frame(f) if f.is_record() => seen.push((f.clone(), reader.payload(f)?)),
                    Entry::Frame(_) => {} // a sync marker
                    // Only the active segment's preallocated end, if any.
                    Entry::Zeros { .. } => assert_eq!(Some(path), segments.last(), "{ctx}"),
                    other => panic!("{ctx}: damage in a healthy log: {other:?}"),
                }
            }
        }
        assert_eq!(seen.len(), records.len(), "{ctx}");
        for ((frame, data), record) in seen.iter().zip(&records) {
            assert_eq!(frame.lsn, record.lsn(), "{ctx}");
            assert_eq!(frame.checksum(), Checksum::Valid, "{ctx}");
            assert_eq!(frame.is_batch_start(), record.is_batch_start(), "{ctx}");
            assert_eq!(frame.is_batch_end(), record.is_batch_end(), "{ctx}");
            assert_eq!(data.as_slice(), record.data(), "{ctx}");
            assert!(frame.durable_hint < frame.lsn, "{ctx}");
        }
    }
    Ok(())
}

#[test]
fn a_point_in_time_cut_shows_the_damaged_frame_and_the_intact_ones_after_it() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let log = env.builder().sync_policy(SyncPolicy::EveryCommit).open()?;
        append_n(&log, 300)?;
        log.close()?;
        let (path, frame) = find(&env, 40)?;
        let segments = segment_files(&*env.storage, &env.dir)?;
        assert_ne!(
            Some(&path),
            segments.last(),
            "{ctx}: damage in a sealed segment"
        );
        let mut bytes = env.read_file(&path);
        bytes[frame.offset as usize + 30] ^= 0x01;
        env.write_file(&path, &bytes);

        let log = env
            .builder()
            .recovery_mode(RecoveryMode::PointInTime)
            .open()?;
        let report = log.recovery_report().clone();
        drop(log);
        let cut_at = report
            .damage
            .iter()
            .find_map(|d| match d.action {
                DamageAction::Cut { at, .. } => Some(at),
                _ => None,
            })
            .expect("a cut");
        assert_eq!(cut_at, frame.offset, "{ctx}");
        let cut_file = report
            .quarantined
            .iter()
            .find(|p| p.to_string_lossy().ends_with(".cut"))
            .expect("a cut file")
            .clone();
        let (reader, all) = entries(&env, &cut_file)?;
        assert_eq!(
            reader.header_source(),
            &HeaderSource::File(path.clone()),
            "{ctx}"
        );
        assert_eq!(reader.base_offset(), cut_at, "{ctx}");
        let cut = frames(&all);
        assert_eq!(cut[0].lsn, Lsn::new(40), "{ctx}");
        assert_eq!(cut[0].offset, frame.offset, "{ctx}");
        assert_eq!(cut[0].checksum(), Checksum::Mismatch, "{ctx}");
        assert!(cut.len() > 1, "{ctx}: intact frames after the damage");
        for (f, lsn) in cut.iter().zip(40..).skip(1) {
            assert_eq!(
                (f.lsn, f.checksum()),
                (Lsn::new(lsn), Checksum::Valid),
                "{ctx}"
            );
            assert_eq!(reader.payload(f)?, payload(lsn), "{ctx}");
        }
        // Sync markers are intact frames too.
        let all_intact = all
            .iter()
            .filter(|e| matches!(e, Entry::Frame(f) if f.checksum() == Checksum::Valid))
            .count();
        assert_eq!(report.intact_frames_cut, all_intact as u64, "{ctx}");

        // The segments moved whole read with their own headers.
        for moved in report.quarantined.iter().filter(|p| *p != &cut_file) {
            let (reader, all) = entries(&env, moved)?;
            assert_eq!(reader.header_source(), &HeaderSource::Own, "{ctx}");
            assert!(
                frames(&all).iter().all(|f| f.checksum().is_valid()),
                "{ctx}"
            );
        }
    }
    Ok(())
}

#[test]
fn a_torn_tail_cut_shows_as_damage() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    append_n(&log, 20)?;
    log.sync()?;
    let last = log.segments().pop().expect("a segment");
    log.close()?;
    let mut bytes = env.read_file(&last.path);
    bytes.truncate(last.bytes as usize);
    bytes.extend_from_slice(&[0x5a; 13]);
    env.write_file(&last.path, &bytes);
    let report = env.open()?.recovery_report().clone();
    let cut_file = report.quarantined.first().expect("a cut file").clone();
    let (_, all) = entries(&env, &cut_file)?;
    assert_eq!(
        all,
        [Entry::Damage {
            offset: last.bytes,
            len: 13,
            kind: CorruptionKind::TruncatedFrame {
                needed: 32,
                available: 13
            }
        }]
    );
    Ok(())
}

#[test]
fn a_file_of_another_kind_is_refused() {
    let env = Env::mem();
    let log = env.open().expect("open");
    drop(log);
    let err = Frames::open_with(&*env.storage, &env.dir.join("CHECKPOINT"), None).unwrap_err();
    assert!(err.to_string().contains("not a segment file"), "{err}");
    let missing = env.dir.join("00000000000000000077.seg");
    assert!(Frames::open_with(&*env.storage, &missing, None).is_err());
}
