//! Appends, batches, syncs, reads and reopening, on both backends.

use tidelog::{Durability, Error, Log, Lsn, Result};

use crate::common::{Env, append_n, assert_holds, payload, read_all};

#[test]
fn appends_get_dense_lsns_and_read_back_after_reopen() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        assert!(log.recovery_report().created, "{}", env.name());
        assert_eq!(log.last_lsn(), Lsn::ZERO);
        append_n(&log, 300)?;
        let (first, last) = log.append_batch(&[payload(301), payload(302)], Durability::Synced)?;
        assert_eq!((first, last), (Lsn::new(301), Lsn::new(302)));
        assert_eq!(log.durable_lsn(), Lsn::new(302));
        assert!(log.segments().len() > 3, "small segments roll");
        assert_holds(&log, 1, 302)?;
        assert_eq!(log.read(Lsn::new(150))?.data(), payload(150));
        let batch: Vec<(bool, bool)> = log
            .range(Lsn::new(300)..)?
            .map(|r| r.map(|r| (r.is_batch_start(), r.is_batch_end())))
            .collect::<Result<_>>()?;
        assert_eq!(batch, vec![(true, true), (true, false), (false, true)]);
        log.close()?;

        let log = env.open()?;
        let report = log.recovery_report();
        assert!(
            report.is_clean() && !report.created,
            "{}: {report}",
            env.name()
        );
        assert_eq!(report.records_recovered, 302);
        assert_holds(&log, 1, 302)?;
        for lsn in [1, 2, 77, 150, 151, 302] {
            assert_eq!(
                log.read(Lsn::new(lsn))?.data(),
                payload(lsn),
                "{}",
                env.name()
            );
        }
        assert_eq!(log.append(b"more", Durability::Synced)?, Lsn::new(303));
    }
    Ok(())
}

#[test]
fn segments_are_contiguous_and_named_by_first_lsn() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    append_n(&log, 500)?;
    log.sync()?;
    let segments = log.segments();
    for pair in segments.windows(2) {
        assert_eq!(pair[0].last_lsn.next(), pair[1].first_lsn);
        assert!(!pair[0].active);
    }
    for s in &segments {
        let name = s.path.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(name, format!("{:020}.seg", s.first_lsn.get()));
        // Past the limit by at most what follows the last batch: a sync marker (32 bytes) and
        // the seal (64).
        assert!(s.bytes <= crate::common::SEGMENT_BYTES + 32 + 64, "{s:?}");
    }
    assert!(segments.last().unwrap().active);
    Ok(())
}

#[test]
fn readers_see_durable_records_only() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    let a = log.append(b"a", Durability::Synced)?;
    let b = log.append(b"b", Durability::Buffered)?;
    assert_eq!(log.read(a)?.data(), b"a");
    assert!(
        matches!(log.read(b), Err(Error::NotDurable { lsn, durable }) if lsn == b && durable == a)
    );
    assert_eq!(
        read_all(&log)?.len(),
        1,
        "iteration stops at the durable LSN"
    );
    log.wait_durable(b)?;
    assert_eq!(log.read(b)?.data(), b"b");
    assert!(matches!(
        log.read(Lsn::new(9)),
        Err(Error::NotDurable { .. })
    ));
    assert!(matches!(log.read(Lsn::ZERO), Err(Error::InvalidLsn { .. })));
    assert!(matches!(
        log.wait_durable(Lsn::new(9)),
        Err(Error::InvalidLsn { .. })
    ));
    Ok(())
}

#[test]
fn ranges_respect_both_bounds() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    append_n(&log, 200)?;
    log.sync()?;
    let lsns =
        |it: tidelog::Iter| -> Result<Vec<u64>> { it.map(|r| r.map(|r| r.lsn().get())).collect() };
    assert_eq!(
        lsns(log.range(Lsn::new(40)..Lsn::new(45))?)?,
        vec![40, 41, 42, 43, 44]
    );
    assert_eq!(lsns(log.range(Lsn::new(198)..)?)?, vec![198, 199, 200]);
    assert_eq!(lsns(log.range(..=Lsn::new(2))?)?, vec![1, 2]);
    assert_eq!(lsns(log.iter_from(Lsn::new(201))?)?, Vec::<u64>::new());
    assert_eq!(
        lsns(log.range(Lsn::new(5)..Lsn::new(5))?)?,
        Vec::<u64>::new()
    );
    Ok(())
}

#[test]
fn oversized_record_is_refused_before_anything_is_written() -> Result<()> {
    let env = Env::mem();
    let log = env.builder().max_record_bytes(100).open()?;
    let err = log.append(&[0; 101], Durability::Synced).unwrap_err();
    assert!(
        matches!(err, Error::RecordTooLarge { len: 101, max: 100 }),
        "{err}"
    );
    let err = log
        .append_batch(&[vec![0; 10], vec![0; 500]], Durability::Synced)
        .unwrap_err();
    assert!(matches!(err, Error::RecordTooLarge { len: 500, .. }));
    assert_eq!(
        log.last_lsn(),
        Lsn::ZERO,
        "nothing of the refused batch was appended"
    );
    assert_eq!(log.append(&[0; 100], Durability::Synced)?, Lsn::new(1));
    let empty: [&[u8]; 0] = [];
    assert!(matches!(
        log.append_batch(&empty, Durability::Synced),
        Err(Error::EmptyBatch)
    ));
    Ok(())
}

#[test]
fn a_batch_larger_than_a_segment_gets_a_segment_of_its_own() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    append_n(&log, 3)?;
    let big: Vec<Vec<u8>> = (0..10).map(|i| vec![i as u8; 1000]).collect();
    let (first, last) = log.append_batch(&big, Durability::Synced)?;
    assert_eq!((first.get(), last.get()), (4, 13));
    let segments = log.segments();
    let holder = segments
        .iter()
        .find(|s| s.first_lsn == first)
        .expect("batch starts a segment");
    assert_eq!(holder.last_lsn, last);
    drop(log);
    let log = env.open()?;
    assert_eq!(log.read(Lsn::new(13))?.data(), vec![9; 1000]);
    Ok(())
}

#[test]
fn large_records_round_trip() -> Result<()> {
    for env in Env::both() {
        let log = env.builder().segment_bytes(1 << 20).open()?;
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let lsn = log.append(&big, Durability::Synced)?;
        log.append(b"after", Durability::Synced)?;
        drop(log);
        let log = env.builder().segment_bytes(1 << 20).open()?;
        assert_eq!(log.read(lsn)?.data(), &big[..]);
        assert_eq!(log.read(lsn.next())?.data(), b"after");
    }
    Ok(())
}

#[test]
fn invalid_options_are_refused() {
    let env = Env::mem();
    for builder in [
        env.builder().segment_bytes(100),
        env.builder().max_record_bytes(0),
        env.builder().max_record_bytes(u32::MAX),
        env.builder().write_buffer_bytes(usize::MAX),
    ] {
        assert!(matches!(builder.open(), Err(Error::InvalidOptions { .. })));
    }
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        assert!(
            matches!(env.open(), Err(Error::Locked { .. })),
            "{}",
            env.name()
        );
        drop(log);
        env.open()?;
    }
    Ok(())
}

#[test]
fn missing_log_without_create_is_not_found() {
    for env in Env::both() {
        let err = env.builder().create_if_missing(false).open().unwrap_err();
        assert!(
            matches!(err, Error::NotFound { .. }),
            "{}: {err}",
            env.name()
        );
    }
}

#[test]
fn an_empty_directory_without_create_is_not_found_and_left_empty() {
    for env in Env::both() {
        env.storage.create_dir_all(&env.dir).unwrap();
        for read_only in [false, true] {
            let err = env
                .builder()
                .create_if_missing(false)
                .read_only(read_only)
                .open()
                .unwrap_err();
            assert!(
                matches!(err, Error::NotFound { .. }),
                "{}: {err}",
                env.name()
            );
            assert!(
                env.storage.list(&env.dir).unwrap().is_empty(),
                "{}: a file was left behind",
                env.name()
            );
        }
    }
}

#[test]
fn unknown_files_are_ignored_and_own_temp_files_cleaned() -> Result<()> {
    for env in Env::both() {
        drop(env.open()?);
        env.write_file(&env.dir.join(".DS_Store"), b"junk");
        env.write_file(&env.dir.join("notes.tmp"), b"user file");
        env.write_file(
            &env.dir.join("00000000000000000099.seg.tmp"),
            b"half a segment",
        );
        env.write_file(&env.dir.join("CHECKPOINT.tmp"), b"half a checkpoint");
        let log = env.open()?;
        let report = log.recovery_report();
        assert_eq!(
            report.removed_temp_files.len(),
            2,
            "{}: {report}",
            env.name()
        );
        assert_eq!(report.unknown_files.len(), 2, "{report}");
        assert!(report.is_clean());
        let names = env.list(&env.dir);
        assert!(names.contains(&".DS_Store".to_owned()) && names.contains(&"notes.tmp".to_owned()));
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with(".seg.tmp") || n == "CHECKPOINT.tmp")
        );
    }
    Ok(())
}

#[test]
fn log_is_send_and_sync_and_appends_from_threads() -> Result<()> {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
    let env = Env::mem();
    let log = std::sync::Arc::new(env.open()?);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || -> Result<Vec<Lsn>> {
                (0..100)
                    .map(|i| log.append(format!("{t}-{i}").as_bytes(), Durability::Synced))
                    .collect()
            })
        })
        .collect();
    let mut all: Vec<Lsn> = Vec::new();
    for t in threads {
        all.extend(t.join().expect("thread")?);
    }
    all.sort();
    assert_eq!(all, (1..=400).map(Lsn::new).collect::<Vec<_>>());
    assert_eq!(log.durable_lsn(), Lsn::new(400));
    Ok(())
}

#[test]
fn read_only_open_is_a_dry_run_that_changes_nothing() -> Result<()> {
    for env in Env::both() {
        let log = env.open()?;
        append_n(&log, 300)?;
        log.close()?;
        // Damage: a torn write after the last frame, and a stray temporary file.
        let last = env.segment_paths().pop().expect("a segment");
        let mut bytes = env.read_file(&last);
        bytes.extend_from_slice(&[0xab; 11]);
        env.write_file(&last, &bytes);
        env.write_file(&env.dir.join("CHECKPOINT.tmp"), b"half");
        let before = env.snapshot();

        let ro = env.builder().read_only(true).open()?;
        assert_eq!(
            env.snapshot(),
            before,
            "{}: a read-only open changed a byte",
            env.name()
        );
        let report = ro.recovery_report();
        assert!(report.dry_run, "{}", env.name());
        assert_eq!(report.torn_bytes_cut, 11, "{report}");
        assert_eq!(report.removed_temp_files.len(), 1, "{report}");
        assert_holds(&ro, 1, 300)?;
        assert_eq!(ro.read(Lsn::new(300))?.data(), payload(300));
        assert!(matches!(
            ro.append(b"x", Durability::Buffered),
            Err(Error::ReadOnly)
        ));
        assert!(matches!(ro.checkpoint(Lsn::new(2)), Err(Error::ReadOnly)));
        assert!(matches!(
            ro.truncate_after(Lsn::new(2)),
            Err(Error::ReadOnly)
        ));
        assert!(matches!(ro.reset(), Err(Error::ReadOnly)));
        ro.sync()?; // nothing to sync
        // A writer may hold the directory meanwhile.
        let writer = env.open()?;
        let again = env.builder().read_only(true).open()?;
        assert_eq!(again.last_lsn(), Lsn::new(300));
        drop((ro, again, writer));
        assert_ne!(
            env.snapshot(),
            before,
            "{}: the writer's recovery did change it",
            env.name()
        );
    }
    Ok(())
}

#[test]
fn read_only_open_never_creates_a_log() {
    for env in Env::both() {
        let err = env.builder().read_only(true).open().unwrap_err();
        assert!(
            matches!(err, Error::NotFound { .. }),
            "{}: {err}",
            env.name()
        );
        assert!(
            env.storage.list(&env.dir).is_err(),
            "{}: no directory was made",
            env.name()
        );
    }
}
