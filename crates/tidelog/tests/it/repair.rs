//! Rebuilding the checkpoint file (`tidelog::repair`): a damaged or lost `CHECKPOINT` stops
//! recovery, and a rebuild from the segments opens the log again with every record still in
//! them; the plan changes nothing; apply refuses what it cannot decide, a log open for writing
//! and a directory that changed since the plan; and a crash at any step of a rebuild leaves a
//! directory that a second rebuild repairs.

use std::path::Path;
use std::sync::Arc;

use tidelog::io::{CrashMode, FaultPlan, FaultyStorage, MemStorage, Storage};
use tidelog::repair::{CheckpointRebuild, CheckpointState};
use tidelog::{CorruptionKind, Error, Log, Lsn, RecoveryMode, Result, SyncPolicy};

use crate::common::{Env, SEGMENT_BYTES, append_n, assert_holds};

const RECORDS: u64 = 200;

/// A log of `RECORDS` records in several segments, checkpointed at `checkpoint` (if not 1),
/// closed; returns its id and the first LSN of its first segment.
fn build(env: &Env, checkpoint: u64) -> Result<(u128, Lsn)> {
    build_on(Arc::clone(&env.storage), &env.dir, checkpoint)
}

/// As `build`, in `dir` of `storage`.
fn build_on(storage: Arc<dyn Storage>, dir: &Path, checkpoint: u64) -> Result<(u128, Lsn)> {
    let log = Log::builder(dir)
        .storage(storage)
        .segment_bytes(SEGMENT_BYTES)
        .preallocate(false)
        .sync_policy(SyncPolicy::EveryCommit)
        .open()?;
    append_n(&log, RECORDS)?;
    if checkpoint > 1 {
        log.checkpoint(Lsn::new(checkpoint))?;
    }
    let first = log.segments()[0].first_lsn;
    let id = log.log_id();
    log.close()?;
    Ok((id, first))
}

fn checkpoint_path(env: &Env) -> std::path::PathBuf {
    env.dir.join("CHECKPOINT")
}

fn plan_of(env: &Env) -> Result<CheckpointRebuild> {
    CheckpointRebuild::plan_with(Arc::clone(&env.storage), &env.dir)
}

#[test]
fn a_damaged_checkpoint_stops_every_mode_and_a_rebuild_opens_the_log() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let (id, first) = build(&env, 80)?;
        assert!(
            first > Lsn::FIRST && first <= Lsn::new(120),
            "{ctx}: {first}"
        );
        let damaged = b"not a checkpoint at all".to_vec();
        env.write_file(&checkpoint_path(&env), &damaged);
        for mode in [
            RecoveryMode::Strict,
            RecoveryMode::TolerateTornTail,
            RecoveryMode::PointInTime,
            RecoveryMode::SkipCorrupt,
        ] {
            let opened = env.builder().recovery_mode(mode).open();
            assert!(
                matches!(opened, Err(Error::Corrupt { ref path, .. }) if path.ends_with("CHECKPOINT")),
                "{ctx} {mode:?}: {opened:?}"
            );
        }

        let before = env.snapshot();
        let plan = plan_of(&env)?;
        assert_eq!(env.snapshot(), before, "{ctx}: planning changes nothing");
        assert!(matches!(
            plan.current(),
            CheckpointState::Damaged(CorruptionKind::TruncatedHeader { .. })
        ));
        assert!(plan.is_needed(), "{ctx}");
        assert_eq!(plan.refusal(), None, "{ctx}");
        assert_eq!(plan.log_id(), Some(id), "{ctx}");
        assert_eq!(plan.lsn(), first, "{ctx}");
        assert_eq!(plan.log_ids(), &[(id, plan.segments())], "{ctx}");
        assert!(plan.segments() >= 3, "{ctx}: {} segments", plan.segments());
        assert!(plan.unreadable().is_empty(), "{ctx}");

        let copy = plan.apply()?.expect("the damaged file is kept");
        assert_eq!(copy, env.dir.join("quarantine").join("CHECKPOINT"), "{ctx}");
        assert_eq!(env.read_file(&copy), damaged, "{ctx}");
        let log = env.open()?;
        assert!(log.recovery_report().is_clean(), "{ctx}");
        assert_eq!(log.log_id(), id, "{ctx}");
        assert_eq!(log.checkpoint_lsn(), first, "{ctx}");
        assert_holds(&log, first.get(), RECORDS)?;
        log.close()?;
        assert!(!plan_of(&env)?.is_needed(), "{ctx}: done once");
    }
    Ok(())
}

#[test]
fn a_lost_checkpoint_reads_as_missing_records_and_a_rebuild_restores_it() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let (id, first) = build(&env, 150)?;
        env.remove_file(&checkpoint_path(&env));
        let opened = env.open();
        assert!(
            matches!(
                opened,
                Err(Error::MissingRecords {
                    first: Lsn::FIRST,
                    ..
                })
            ),
            "{ctx}: {opened:?}"
        );
        let plan = plan_of(&env)?;
        assert_eq!(plan.current(), &CheckpointState::Missing, "{ctx}");
        assert!(plan.is_needed(), "{ctx}");
        assert_eq!(plan.apply()?, None, "{ctx}: nothing to keep");
        let log = env.open()?;
        assert_eq!((log.log_id(), log.checkpoint_lsn()), (id, first), "{ctx}");
        assert_holds(&log, first.get(), RECORDS)?;
    }
    Ok(())
}

#[test]
fn an_intact_checkpoint_that_agrees_is_kept() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let (id, _) = build(&env, 150)?;
        let plan = plan_of(&env)?;
        assert_eq!(
            plan.current(),
            &CheckpointState::Intact {
                log_id: id,
                lsn: Lsn::new(150)
            },
            "{ctx}"
        );
        assert!(!plan.is_needed(), "{ctx}");
        let before = env.snapshot();
        assert_eq!(plan.apply()?, None, "{ctx}");
        assert_eq!(env.snapshot(), before, "{ctx}: nothing changed");
    }
    Ok(())
}

#[test]
fn a_checkpoint_of_another_log_is_replaced() -> Result<()> {
    let env = Env::mem();
    let (id, first) = build(&env, 1)?;
    let other = Env::mem();
    build(&other, 1)?;
    env.write_file(
        &checkpoint_path(&env),
        &other.read_file(&checkpoint_path(&other)),
    );
    assert!(env.open().is_err(), "every segment is foreign to it");
    let plan = plan_of(&env)?;
    assert!(matches!(plan.current(), CheckpointState::Intact { log_id, .. } if *log_id != id));
    assert!(plan.is_needed());
    plan.apply()?;
    let log = env.open()?;
    assert_eq!((log.log_id(), log.checkpoint_lsn()), (id, first));
    assert_holds(&log, 1, RECORDS)
}

#[test]
fn a_foreign_segment_is_outvoted_and_a_tie_is_refused() -> Result<()> {
    let env = Env::mem();
    let (id, _) = build(&env, 1)?;
    let other = Env::mem();
    let (other_id, _) = build(&other, 1)?;
    // A segment of the other log, named after this log's last one.
    let foreign = other.segment_paths()[0].clone();
    let dropped = env.dir.join("00000000000000099999.seg");
    env.write_file(&dropped, &other.read_file(&foreign));
    env.remove_file(&checkpoint_path(&env));
    let plan = plan_of(&env)?;
    let ours = env.segment_paths().len() - 1;
    assert_eq!(plan.log_ids(), &[(id, ours), (other_id, 1)]);
    assert_eq!(plan.log_id(), Some(id));

    // A tie: as many segments of each.
    for path in env.segment_paths().iter().skip(1) {
        if *path != dropped {
            env.remove_file(path);
        }
    }
    let plan = plan_of(&env)?;
    assert_eq!(plan.log_id(), None);
    let refusal = plan.refusal().expect("a tie is refused");
    assert!(refusal.contains(&format!("{id:032x}")), "{refusal}");
    assert!(refusal.contains(&format!("{other_id:032x}")), "{refusal}");
    let before = env.snapshot();
    let err = plan.apply().expect_err("refused");
    assert!(err.to_string().contains("disagree"), "{err}");
    assert_eq!(env.snapshot(), before, "a refused rebuild changes nothing");
    Ok(())
}

#[test]
fn a_directory_without_segments_is_refused() -> Result<()> {
    let env = Env::mem();
    env.storage.create_dir_all(&env.dir).expect("create");
    env.write_file(&checkpoint_path(&env), b"junk");
    let plan = plan_of(&env)?;
    assert_eq!(plan.segments(), 0);
    assert!(plan.refusal().expect("refused").contains("no segment"));
    assert!(plan.apply().is_err());
    Ok(())
}

#[test]
fn apply_refuses_a_log_open_for_writing_and_a_directory_changed_since_the_plan() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        build(&env, 1)?;
        env.remove_file(&checkpoint_path(&env));
        let plan = plan_of(&env)?;
        // The log opens without the file: its first segment starts at LSN 1.
        let writer = env.open()?;
        let err = plan.apply().expect_err("locked");
        assert!(matches!(err, Error::Locked { .. }), "{ctx}: {err:?}");
        writer.checkpoint(Lsn::new(5))?; // writes the file
        writer.close()?;
        let err = plan.apply().expect_err("changed");
        assert!(matches!(err, Error::LogChanged { .. }), "{ctx}: {err:?}");
    }
    Ok(())
}

#[test]
fn a_replaced_file_is_kept_under_a_free_name() -> Result<()> {
    let env = Env::mem();
    build(&env, 1)?;
    let qdir = env.dir.join("quarantine");
    env.storage.create_dir_all(&qdir).expect("create");
    env.write_file(&qdir.join("CHECKPOINT"), b"an older copy");
    env.write_file(&checkpoint_path(&env), b"damaged");
    let copy = plan_of(&env)?.apply()?.expect("kept");
    assert_eq!(copy, qdir.join("CHECKPOINT.1"));
    assert_eq!(env.read_file(&copy), b"damaged");
    assert_eq!(env.read_file(&qdir.join("CHECKPOINT")), b"an older copy");
    Ok(())
}

/// A crash after any storage operation of a rebuild leaves either file whole (never a torn
/// `CHECKPOINT`), a finished rebuild survives, and a second rebuild opens the log.
#[test]
fn a_crash_at_any_step_of_a_rebuild_is_repaired_by_a_second_one() -> Result<()> {
    let dir = Path::new("/log");
    let damaged = |mem: &MemStorage| -> Result<(u128, Lsn)> {
        let built = build_on(Arc::new(mem.clone()), dir, 90)?;
        let file = mem
            .open(&dir.join("CHECKPOINT"), tidelog::io::OpenMode::Truncate)
            .expect("open");
        file.write_all_at(b"damaged checkpoint", 0).expect("write");
        file.sync_data().expect("sync");
        Ok(built)
    };
    let count = MemStorage::new();
    damaged(&count)?;
    let faulty = FaultyStorage::new(Arc::new(count.clone()), FaultPlan::new());
    CheckpointRebuild::plan_with(Arc::new(faulty.clone()), dir)?.apply()?;
    let total = faulty.mutating_ops();
    assert!(total >= 6, "{total} operations");

    for n in 0..=total {
        for mode in [CrashMode::DropUnsynced, CrashMode::Torn { seed: n }] {
            let ctx = format!("crash after op {n} of {total} ({mode:?})");
            let mem = MemStorage::new();
            let (id, first) = damaged(&mem)?;
            let faulty = FaultyStorage::new(Arc::new(mem.clone()), FaultPlan::new().fail_after(n));
            let done = CheckpointRebuild::plan_with(Arc::new(faulty), dir)?
                .apply()
                .is_ok();
            mem.crash(mode);
            let plan = CheckpointRebuild::plan_with(Arc::new(mem.clone()), dir)?;
            match plan.current() {
                CheckpointState::Intact { log_id, lsn } => {
                    assert_eq!((*log_id, *lsn), (id, first), "{ctx}");
                }
                CheckpointState::Damaged(_) => assert!(!done, "{ctx}: a finished rebuild was lost"),
                other => panic!("{ctx}: CHECKPOINT {other:?}"),
            }
            plan.apply()?;
            let log = Log::builder(dir).storage(Arc::new(mem)).open()?;
            assert_eq!((log.log_id(), log.checkpoint_lsn()), (id, first), "{ctx}");
            assert_holds(&log, first.get(), RECORDS)?;
        }
    }
    Ok(())
}
