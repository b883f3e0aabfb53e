//! The sharded log: routing, epochs and barriers, merged replay in (epoch, shard, LSN) order,
//! checkpoints by epoch, rollbacks and resets, what reopening refuses, crashes across shards,
//! and shards that never wait for each other.

use std::sync::Arc;

use tidelog::io::{CrashMode, Storage};
use tidelog::sharded::{ShardedLog, shard_of_key};
use tidelog::{CorruptionKind, Durability, Error, Lsn, Options, Result};

use crate::common::{Env, payload};
use crate::hooked::HookedStorage;

/// (epoch, shard, LSN, payload) of every record a test appended, in replay order once sorted.
type Model = Vec<(u64, usize, u64, Vec<u8>)>;

fn open(env: &Env, shards: usize) -> Result<ShardedLog> {
    open_on(Arc::clone(&env.storage), env, shards)
}

fn open_on(storage: Arc<dyn Storage>, env: &Env, shards: usize) -> Result<ShardedLog> {
    let mut options = Options::default();
    options.segment_bytes = crate::common::SEGMENT_BYTES;
    options.preallocate = false;
    ShardedLog::builder(env.dir.join("sharded"))
        .shards(shards)
        .options(options)
        .storage(storage)
        .open()
}

fn replayed(log: &ShardedLog, to: u64) -> Result<Model> {
    log.replay_to(to)?
        .map(|r| {
            r.map(|r| {
                let lsn = r.record.lsn().get();
                (r.epoch, r.shard, lsn, r.record.into_data())
            })
        })
        .collect()
}

/// Appends `n` records to `shard`, recording them in `model`.
fn append(log: &ShardedLog, model: &mut Model, shard: usize, n: u64, d: Durability) -> Result<()> {
    for _ in 0..n {
        let next = log.shard(shard)?.last_lsn().next().get();
        let data = payload(next * 10 + shard as u64);
        let (epoch, lsn) = log.append(shard, &data, d)?;
        assert_eq!(lsn.get(), next);
        model.push((epoch, shard, lsn.get(), data));
    }
    Ok(())
}

#[test]
fn records_replay_in_epoch_shard_lsn_order_and_replay_stops_at_an_epoch() -> Result<()> {
    for env in Env::both() {
        let log = open(&env, 3)?;
        assert!(log.recovery_report().created);
        assert_eq!(log.epoch(), 1);
        let mut model = Model::new();
        for round in 0..4u64 {
            for shard in [2, 0, 1] {
                append(
                    &log,
                    &mut model,
                    shard,
                    3 + round * shard as u64,
                    Durability::Buffered,
                )?;
            }
            assert_eq!(log.advance_epoch()?, round + 2);
        }
        log.barrier(4)?;
        let mut sorted = model.clone();
        sorted.sort_by_key(|&(e, s, l, _)| (e, s, l));
        assert_eq!(replayed(&log, u64::MAX)?, sorted, "{}", env.name());
        let upto2: Model = sorted.iter().filter(|r| r.0 <= 2).cloned().collect();
        assert_eq!(replayed(&log, 2)?, upto2, "{}", env.name());
        // Across a reopen, and the epoch goes on after the highest.
        log.close()?;
        let log = open(&env, 3)?;
        assert_eq!(log.epoch(), 5);
        assert!(log.recovery_report().clamped.is_empty());
        assert_eq!(replayed(&log, u64::MAX)?, sorted, "{}", env.name());
    }
    Ok(())
}

#[test]
fn keys_go_to_a_fixed_shard() -> Result<()> {
    // Fixed forever: CRC-32C of the key modulo the shard count.
    assert_eq!(shard_of_key(b"", 4), 0);
    assert_eq!(shard_of_key(b"123456789", 7), (0xe306_9283u32 % 7) as usize);
    let env = Env::mem();
    let log = open(&env, 4)?;
    let (shard, epoch, lsn) = log.append_keyed(b"123456789", b"x", Durability::Synced)?;
    assert_eq!(
        (shard, epoch, lsn),
        ((0xe306_9283u32 % 4) as usize, 1, Lsn::new(1))
    );
    assert!(matches!(
        log.append(4, b"x", Durability::Buffered),
        Err(Error::InvalidOptions { name: "shard", .. })
    ));
    Ok(())
}

#[test]
fn reopening_with_another_count_a_missing_or_foreign_shard_or_a_damaged_manifest_is_refused()
-> Result<()> {
    for env in Env::both() {
        open(&env, 3)?.close()?;
        let root = env.dir.join("sharded");
        assert!(matches!(
            open(&env, 4),
            Err(Error::ShardCount {
                expected: 4,
                found: 3,
                ..
            })
        ));
        if env.mem.is_some() {
            // Directories are moved on the real disk only.
            continue;
        }
        // Every file a sharded log creates is its owner's only, the manifest too.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(root.join("SHARDS"))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "SHARDS has mode {mode:o}");
        }
        // A shard of another sharded log put in place of shard 1.
        let other = ShardedLog::builder(env.dir.join("other"))
            .shards(3)
            .storage(Arc::clone(&env.storage))
            .open()?;
        other.close()?;
        let (theirs, ours) = (env.dir.join("other/shard-0001"), root.join("shard-0001"));
        let saved = env.dir.join("saved-shard");
        env.storage
            .rename(&ours, &saved)
            .expect("move the shard away");
        assert!(matches!(open(&env, 3), Err(Error::MissingShard { path }) if path == ours));
        env.storage
            .rename(&theirs, &ours)
            .expect("put the other one there");
        assert!(matches!(open(&env, 3), Err(Error::ForeignShard { path, .. }) if path == ours));
        env.storage.rename(&ours, &theirs).expect("take it back");
        env.storage.rename(&saved, &ours).expect("restore ours");
        open(&env, 3)?.close()?;
        // A damaged manifest.
        env.flip_byte(&root.join("SHARDS"), 20, 0x01);
        assert!(matches!(
            open(&env, 3),
            Err(Error::Corrupt {
                kind: CorruptionKind::HeaderChecksum,
                ..
            })
        ));
        assert!(matches!(
            ShardedLog::builder(env.dir.join("none"))
                .shards(0)
                .storage(Arc::clone(&env.storage))
                .open(),
            Err(Error::InvalidOptions { name: "shards", .. })
        ));
    }
    Ok(())
}

#[test]
fn a_checkpoint_by_epoch_drops_the_epochs_up_to_it_from_every_shard() -> Result<()> {
    for env in Env::both() {
        let log = open(&env, 2)?;
        let mut model = Model::new();
        for _ in 0..3 {
            append(&log, &mut model, 0, 150, Durability::Buffered)?;
            append(&log, &mut model, 1, 120, Durability::Buffered)?;
            log.advance_epoch()?;
        }
        let before: usize = (0..2)
            .map(|i| log.shard(i).map(|s| s.segments().len()))
            .sum::<Result<usize>>()?;
        assert!(matches!(
            log.checkpoint_epoch(4),
            Err(Error::InvalidEpoch { epoch: 4, .. })
        ));
        log.checkpoint_epoch(2)?;
        // Replay reads durable records only: make epoch 3's durable too.
        log.barrier(3)?;
        let after: usize = (0..2)
            .map(|i| log.shard(i).map(|s| s.segments().len()))
            .sum::<Result<usize>>()?;
        assert!(
            after < before,
            "{}: {before} -> {after} segments",
            env.name()
        );
        let mut kept: Model = model.iter().filter(|r| r.0 > 2).cloned().collect();
        kept.sort_by_key(|&(e, s, l, _)| (e, s, l));
        let got = replayed(&log, u64::MAX)?;
        let key = |m: &Model| m.iter().map(|r| (r.0, r.1, r.2)).collect::<Vec<_>>();
        assert_eq!(key(&got), key(&kept), "{}", env.name());
        assert_eq!(got, kept, "{}", env.name());
        log.close()?;
        let log = open(&env, 2)?;
        assert_eq!(replayed(&log, u64::MAX)?, kept, "{}", env.name());
        assert_eq!(log.epoch(), 4);
    }
    Ok(())
}

#[test]
fn a_rollback_to_synced_positions_keeps_them_and_what_follows_is_a_new_epoch() -> Result<()> {
    for env in Env::both() {
        let log = open(&env, 2)?;
        let mut model = Model::new();
        append(&log, &mut model, 0, 20, Durability::Synced)?;
        append(&log, &mut model, 1, 7, Durability::Synced)?;
        log.advance_epoch()?;
        append(&log, &mut model, 1, 5, Durability::Synced)?;
        let positions = log.synced_positions();
        assert_eq!(positions, [Lsn::new(20), Lsn::new(12)]);
        let kept = model.clone();
        append(&log, &mut model, 0, 9, Durability::Synced)?;
        log.advance_epoch()?;
        append(&log, &mut model, 1, 9, Durability::Synced)?;
        log.truncate_to(&positions)?;
        let mut sorted = kept.clone();
        sorted.sort_by_key(|&(e, s, l, _)| (e, s, l));
        assert_eq!(replayed(&log, u64::MAX)?, sorted, "{}", env.name());
        let epoch = log.epoch();
        assert!(epoch > 3);
        let (e, lsn) = log.append(0, b"after", Durability::Synced)?;
        assert_eq!((e, lsn), (epoch, Lsn::new(21)));
        log.reset()?;
        assert!(replayed(&log, u64::MAX)?.is_empty());
        let (e, lsn) = log.append(1, b"after reset", Durability::Synced)?;
        assert!(e > epoch && lsn > Lsn::new(12));
        log.close()?;
        let log = open(&env, 2)?;
        let all = replayed(&log, u64::MAX)?;
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].3, b"after reset");
    }
    Ok(())
}

#[test]
fn a_stalled_fsync_on_one_shard_holds_up_no_other() -> Result<()> {
    let env = Env::mem();
    let hooked = HookedStorage::new(Arc::clone(&env.storage));
    let log = Arc::new(open_on(Arc::new(hooked.clone()), &env, 2)?);
    let held = hooked.hold_syncs(1);
    let stalled = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || log.append(0, b"stalled", Durability::Synced))
    };
    held.wait_entered();
    // Shard 0's leader is in its fsync: shard 1 appends and commits, shard 0 still appends.
    assert_eq!(
        log.append(1, b"free", Durability::Synced)?,
        (1, Lsn::new(1))
    );
    assert_eq!(log.shard(1)?.durable_lsn(), Lsn::new(1));
    log.append(0, b"buffered", Durability::Buffered)?;
    assert_eq!(log.shard(0)?.durable_lsn(), Lsn::ZERO);
    held.release();
    assert_eq!(stalled.join().expect("thread")?, (1, Lsn::new(1)));
    Ok(())
}

#[test]
fn epoch_starts_a_crash_took_away_are_clamped_and_reported() -> Result<()> {
    let env = Env::mem();
    let mem = env.mem.clone().expect("in-memory storage");
    let log = open(&env, 2)?;
    let mut model = Model::new();
    append(&log, &mut model, 0, 4, Durability::Synced)?;
    append(&log, &mut model, 1, 6, Durability::Buffered)?;
    // Epoch 2 starts at shard 1's LSN 7; its first six records are not durable.
    log.advance_epoch()?;
    append(&log, &mut model, 0, 2, Durability::Synced)?;
    mem.crash(CrashMode::DropUnsynced);
    drop(log);
    let log = open(&env, 2)?;
    assert_eq!(log.recovery_report().clamped, [(2, vec![1])]);
    assert_eq!(log.epoch(), 3);
    let survived: Model = model.iter().filter(|r| r.1 == 0).cloned().collect();
    assert_eq!(replayed(&log, u64::MAX)?, survived);
    // Shard 1 goes on at LSN 1, in the new epoch, not in epoch 2.
    assert_eq!(log.append(1, b"x", Durability::Synced)?, (3, Lsn::new(1)));
    Ok(())
}

fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Random appends, advances and barriers on three shards, then a crash at a random point:
/// every record acknowledged durable (a synced append, or one a barrier covered) is there, in
/// the epoch its append returned, and replay is in (epoch, shard, LSN) order.
#[test]
fn crashes_across_shards_keep_every_acknowledged_record_in_its_epoch() -> Result<()> {
    let mut rng = 0x5eed_u64;
    for round in 0..60u64 {
        let env = Env::mem();
        let mem = env.mem.clone().expect("in-memory storage");
        let mut model = Model::new();
        // How many of each shard's records (in append order) were acknowledged durable.
        let mut acked = [0usize; 3];
        let count = |model: &Model, shard: usize| model.iter().filter(|r| r.1 == shard).count();
        {
            let log = open(&env, 3)?;
            let steps = 20 + next(&mut rng) % 60;
            for _ in 0..steps {
                let r = next(&mut rng);
                let shard = (r % 3) as usize;
                match (r >> 8) % 10 {
                    0 => {
                        log.advance_epoch()?;
                    }
                    1 => {
                        log.barrier(log.epoch())?;
                        for (shard, a) in acked.iter_mut().enumerate() {
                            *a = count(&model, shard);
                        }
                    }
                    2..=4 => {
                        append(
                            &log,
                            &mut model,
                            shard,
                            1 + (r >> 16) % 4,
                            Durability::Synced,
                        )?;
                        // Synced on its shard: acknowledged, with what came before on it.
                        acked[shard] = count(&model, shard);
                    }
                    _ => append(
                        &log,
                        &mut model,
                        shard,
                        1 + (r >> 16) % 9,
                        Durability::Buffered,
                    )?,
                }
            }
            let seed = next(&mut rng);
            let mode = if round % 2 == 0 {
                CrashMode::DropUnsynced
            } else {
                CrashMode::Torn { seed }
            };
            // The crash comes with the log still open.
            mem.crash(mode);
            drop(log);
        }
        let log = open(&env, 3)?;
        let got = replayed(&log, u64::MAX)?;
        let mut order = got.clone();
        order.sort_by_key(|&(e, s, l, _)| (e, s, l));
        assert_eq!(got, order, "round {round}: replay order");
        // Every record there is one that was appended, in the epoch its append returned.
        for r in &got {
            assert!(
                model.contains(r),
                "round {round}: {:?} was never appended so",
                (r.0, r.1, r.2)
            );
        }
        // Per shard, what survived is a prefix of what was appended, and holds every record
        // acknowledged durable.
        for (shard, &acked) in acked.iter().enumerate() {
            let appended: Vec<u64> = model.iter().filter(|r| r.1 == shard).map(|r| r.2).collect();
            let kept: Vec<u64> = got.iter().filter(|r| r.1 == shard).map(|r| r.2).collect();
            assert_eq!(kept, appended[..kept.len()], "round {round}: shard {shard}");
            assert!(
                kept.len() >= acked,
                "round {round}: shard {shard} kept {} of {} acknowledged ({} appended)",
                kept.len(),
                acked,
                appended.len()
            );
        }
    }
    Ok(())
}

#[test]
fn a_sharded_log_opens_read_only_and_without_its_count() -> Result<()> {
    for env in Env::both() {
        let root = env.dir.join("sharded");
        assert!(matches!(
            ShardedLog::builder(&root)
                .storage(Arc::clone(&env.storage))
                .open(),
            Err(Error::InvalidOptions { name: "shards", .. })
        ));
        let log = open(&env, 3)?;
        let mut model = Model::new();
        append(&log, &mut model, 1, 5, Durability::Synced)?;
        log.advance_epoch()?;
        append(&log, &mut model, 2, 5, Durability::Synced)?;
        log.close()?;
        let mut options = Options::default();
        options.read_only = true;
        let reader = ShardedLog::builder(&root)
            .options(options)
            .storage(Arc::clone(&env.storage))
            .open()?;
        assert_eq!(reader.shard_count(), 3);
        assert_eq!(reader.epoch(), 2);
        assert_eq!(replayed(&reader, u64::MAX)?, model, "{}", env.name());
        assert!(matches!(
            reader.append(0, b"x", Durability::Buffered),
            Err(Error::ReadOnly)
        ));
        assert!(matches!(reader.advance_epoch(), Err(Error::ReadOnly)));
        drop(reader);
        let mut options = Options::default();
        options.read_only = true;
        let none = ShardedLog::builder(env.dir.join("none"))
            .options(options)
            .storage(Arc::clone(&env.storage))
            .open();
        assert!(matches!(none, Err(Error::NotFound { .. })));
    }
    Ok(())
}

/// One step of a model-based sequence on a sharded log.
#[derive(Debug, Clone)]
enum ShardOp {
    Append(usize, u64, bool),
    Advance,
    Barrier,
    /// Checkpoint the epoch this many before the current one's predecessor.
    CheckpointEpoch(u64),
    /// Roll back to the positions synced now, after more appends.
    TruncateTo(u64),
    Reset,
    Reopen,
}

fn shard_op() -> impl proptest::strategy::Strategy<Value = ShardOp> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (0..3usize, 1..6u64, any::<bool>()).prop_map(|(s, n, d)| ShardOp::Append(s, n, d)),
        2 => Just(ShardOp::Advance),
        1 => Just(ShardOp::Barrier),
        1 => (0..3u64).prop_map(ShardOp::CheckpointEpoch),
        1 => (1..8u64).prop_map(ShardOp::TruncateTo),
        1 => Just(ShardOp::Reset),
        1 => Just(ShardOp::Reopen),
    ]
}

/// Runs `ops` against a sharded log and a model; after every step, with every shard synced,
/// replay must be exactly the model in (epoch, shard, LSN) order, and the epoch the model's.
fn run_model(ops: &[ShardOp]) -> Result<()> {
    let env = Env::mem();
    let mut log = open(&env, 3)?;
    let mut model = Model::new();
    let mut epoch = 1u64;
    for op in ops {
        match *op {
            ShardOp::Append(shard, n, synced) => {
                let d = if synced {
                    Durability::Synced
                } else {
                    Durability::Buffered
                };
                append(&log, &mut model, shard, n, d)?;
            }
            ShardOp::Advance => {
                epoch += 1;
                assert_eq!(log.advance_epoch()?, epoch);
            }
            ShardOp::Barrier => {
                log.barrier(epoch)?;
                epoch += 1;
            }
            ShardOp::CheckpointEpoch(back) => {
                let Some(e) = epoch.checked_sub(1 + back).filter(|&e| e >= 1) else {
                    continue;
                };
                log.checkpoint_epoch(e)?;
                model.retain(|r| r.0 > e);
            }
            ShardOp::TruncateTo(more) => {
                for i in 0..3 {
                    log.shard(i)?.sync()?;
                }
                let positions = log.synced_positions();
                for shard in 0..3 {
                    append(&log, &mut model, shard, more, Durability::Buffered)?;
                }
                log.truncate_to(&positions)?;
                model.retain(|r| Lsn::new(r.2) <= positions[r.1]);
                epoch += 1;
            }
            ShardOp::Reset => {
                log.reset()?;
                model.clear();
                epoch += 1;
            }
            ShardOp::Reopen => {
                log.close()?;
                log = open(&env, 3)?;
                assert!(log.recovery_report().clamped.is_empty());
            }
        }
        for i in 0..3 {
            log.shard(i)?.sync()?;
        }
        let mut sorted = model.clone();
        sorted.sort_by_key(|&(e, s, l, _)| (e, s, l));
        assert_eq!(replayed(&log, u64::MAX)?, sorted, "after {op:?}");
        assert_eq!(log.epoch(), epoch, "after {op:?}");
    }
    Ok(())
}

proptest::proptest! {
    // As the core's model tests: a failure is shrunk and printed, not written into the tree.
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..Default::default()
    })]

    #[test]
    fn sequences_of_shard_operations_match_the_model(
        ops in proptest::collection::vec(shard_op(), 1..40)
    ) {
        run_model(&ops).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
    }
}

/// The environment variable naming the root the kill test's child writes.
#[cfg(unix)]
const KILL_CHILD_ROOT: &str = "TIDELOG_SHARDED_KILL_ROOT";

/// The child of the kill test: appends synced records to random shards of the sharded log at
/// `TIDELOG_SHARDED_KILL_ROOT`, advancing the epoch now and then, printing `acked E S L` for
/// each acknowledged record and `epoch E` for each epoch begun, until it is killed.
#[cfg(unix)]
#[test]
#[ignore = "run by the kill test as its child process"]
fn kill_child() {
    use std::io::Write;
    let Some(root) = std::env::var_os(KILL_CHILD_ROOT) else {
        return;
    };
    let mut options = Options::default();
    options.segment_bytes = 16 << 10;
    let log = ShardedLog::builder(&root)
        .shards(3)
        .options(options)
        .open()
        .expect("open");
    let mut out = std::io::stdout();
    let _ = writeln!(out, "epoch {}", log.epoch());
    let mut rng = std::process::id() as u64;
    loop {
        let r = next(&mut rng);
        if r.is_multiple_of(23) {
            let e = log.advance_epoch().expect("advance");
            let _ = writeln!(out, "epoch {e}");
        } else {
            let shard = (r % 3) as usize;
            let next_lsn = log.shard(shard).expect("shard").last_lsn().next().get();
            let data = payload(next_lsn * 10 + shard as u64);
            let (e, lsn) = log
                .append(shard, &data, Durability::Synced)
                .expect("append");
            let _ = writeln!(out, "acked {e} {shard} {}", lsn.get());
        }
        let _ = out.flush();
    }
}

/// A writer of a sharded log on the real disk, SIGKILLed at moments spread over its appends and
/// advances, again and again: every acknowledged record survives in the epoch its append
/// returned, each shard keeps a gap-free prefix, and the epoch never goes back.
#[cfg(unix)]
#[test]
fn a_sharded_writer_killed_anywhere_keeps_every_acknowledged_record_in_its_epoch() -> Result<()> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("sharded");
    let mut acked: Vec<(u64, usize, u64)> = Vec::new();
    let mut epoch_seen = 0u64;
    for round in 0..12u64 {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "sharded::kill_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "-q",
                "--test-threads=1",
            ])
            .env(KILL_CHILD_ROOT, &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child");
        // Killed once it has acknowledged a number of records that differs from round to
        // round, so every round makes progress however slow the machine.
        let kill_after = 1 + (round * 37) % 60;
        let mut round_acks = 0;
        let mut killed = false;
        let stdout = child.stdout.take().expect("stdout");
        for line in BufReader::new(stdout)
            .lines()
            .map_while(std::result::Result::ok)
        {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["acked", e, s, l] => {
                    acked.push((
                        e.parse().expect("epoch"),
                        s.parse().expect("shard"),
                        l.parse().expect("lsn"),
                    ));
                    round_acks += 1;
                }
                ["epoch", e] => epoch_seen = epoch_seen.max(e.parse().expect("epoch")),
                _ => {}
            }
            if !killed && round_acks >= kill_after {
                child.kill().expect("kill");
                killed = true;
            }
        }
        assert!(
            killed,
            "round {round}: the child ended before it was killed"
        );
        let _ = child.wait();
        // With the count: the child may have been killed before or while creating the root.
        let log = ShardedLog::builder(&root).shards(3).open()?;
        assert!(
            log.epoch() >= epoch_seen,
            "round {round}: the epoch went back"
        );
        let got: Vec<(u64, usize, u64)> = log
            .replay()?
            .map(|r| {
                r.map(|r| {
                    let lsn = r.record.lsn().get();
                    assert_eq!(r.record.data(), payload(lsn * 10 + r.shard as u64));
                    (r.epoch, r.shard, lsn)
                })
            })
            .collect::<Result<_>>()?;
        for a in &acked {
            assert!(
                got.contains(a),
                "round {round}: acknowledged {a:?} lost or in another epoch"
            );
        }
        for shard in 0..3 {
            let lsns: Vec<u64> = got.iter().filter(|r| r.1 == shard).map(|r| r.2).collect();
            assert_eq!(
                lsns,
                (1..=lsns.len() as u64).collect::<Vec<_>>(),
                "round {round}: shard {shard}"
            );
        }
        // What survived unacknowledged is acknowledged from now on.
        acked = got;
        log.close()?;
    }
    assert!(
        acked.len() >= (0..12u64).map(|r| 1 + (r * 37) % 60).sum::<u64>() as usize,
        "the child appended: {} records",
        acked.len()
    );
    Ok(())
}

/// Writer threads, one per shard, each running a step until stopped and counting its steps,
/// for the stress tests.
struct Writers<T> {
    stop: Arc<std::sync::atomic::AtomicBool>,
    done: Arc<Vec<std::sync::atomic::AtomicU64>>,
    handles: Vec<std::thread::JoinHandle<Result<Vec<T>>>>,
}

impl<T: Send + 'static> Writers<T> {
    /// `n` writers, writer `shard` running `step(shard, i)` for i = 0, 1, …, keeping what it
    /// returns (`None`: nothing to keep), until stopped or an error.
    fn spawn<F>(n: usize, step: F) -> Writers<T>
    where
        F: Fn(usize, u64) -> Result<Option<T>> + Send + Sync + 'static,
    {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let done: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let step = Arc::new(step);
        let handles = (0..n)
            .map(|shard| {
                let (stop, done, step) = (Arc::clone(&stop), Arc::clone(&done), Arc::clone(&step));
                std::thread::spawn(move || -> Result<Vec<T>> {
                    let mut kept = Vec::new();
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        kept.extend(step(shard, i)?);
                        i += 1;
                        done[shard].fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(kept)
                })
            })
            .collect();
        Writers {
            stop,
            done,
            handles,
        }
    }

    /// Waits until every writer has made `more` more steps (so the last began after the call);
    /// `false` if one has stopped, on an error that [`Writers::stop`] returns.
    fn wait(&self, more: u64) -> bool {
        use std::sync::atomic::Ordering;
        let seen: Vec<u64> = self.done.iter().map(|d| d.load(Ordering::SeqCst)).collect();
        for (d, seen) in self.done.iter().zip(seen) {
            while d.load(Ordering::SeqCst) < seen + more {
                if self
                    .handles
                    .iter()
                    .any(std::thread::JoinHandle::is_finished)
                {
                    return false;
                }
                std::thread::yield_now();
            }
        }
        true
    }

    /// Stops the writers; what each kept, by shard.
    fn stop(self) -> Result<Vec<Vec<T>>> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handles
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect()
    }
}

/// Writers on every shard while another thread advances the epoch and ends epochs with
/// barriers: each record replays in the epoch its append returned, per shard in LSN order (fails
/// if an append reads its epoch outside its shard's gate). Each round waits until every writer
/// has begun an append after the round's change, so the epochs interleave with the appends
/// whatever the scheduler does.
#[test]
fn epochs_advanced_beside_appends_on_every_shard_give_each_record_the_epoch_its_append_returned()
-> Result<()> {
    const WRITERS: usize = 3;
    for env in Env::both() {
        let log = Arc::new(open(&env, WRITERS)?);
        let writers = {
            let log = Arc::clone(&log);
            Writers::spawn(WRITERS, move |shard, i| {
                let d = if i.is_multiple_of(7) {
                    Durability::Synced
                } else {
                    Durability::Buffered
                };
                let next = log.shard(shard)?.last_lsn().next().get();
                let (epoch, lsn) = log.append(shard, &payload(next * 10 + shard as u64), d)?;
                Ok(Some((epoch, lsn.get())))
            })
        };
        // Two more appends by every writer: the second began after the change returned.
        writers.wait(2);
        for round in 0..60u64 {
            match round % 3 {
                0 => log.barrier(log.epoch())?,
                _ => {
                    log.advance_epoch()?;
                }
            }
            if !writers.wait(2) {
                break;
            }
        }
        let last_epoch = log.epoch();
        let appended = writers.stop()?;
        log.barrier(log.epoch())?;
        let got = replayed(&log, u64::MAX)?;
        for (shard, records) in appended.iter().enumerate() {
            let replayed: Vec<(u64, u64)> = got
                .iter()
                .filter(|r| r.1 == shard)
                .map(|r| (r.0, r.2))
                .collect();
            assert_eq!(&replayed, records, "{}: shard {shard}", env.name());
            let epochs: std::collections::BTreeSet<u64> = records.iter().map(|r| r.0).collect();
            assert_eq!(
                epochs,
                (1..=last_epoch).collect(),
                "{}: shard {shard} appended in every epoch",
                env.name()
            );
        }
    }
    Ok(())
}

/// One fault at a time (a failed write, fsync, rename or directory sync, in a shard or in the
/// epoch journal) while appends, advances and barriers go on, every failure shrugged off as an
/// application would; then a crash and a reopen: every record an append returned `Ok` for is
/// in the epoch it returned, replay is in (epoch, shard, LSN) order, and every record
/// acknowledged durable survives. A failed advance never moves later records into an epoch
/// their appends did not return.
#[test]
fn a_fault_anywhere_never_moves_a_record_out_of_the_epoch_its_append_returned() -> Result<()> {
    use tidelog::io::{FaultPlan, FaultyStorage, Op};

    /// The records of failed appends: shard, LSN, payload.
    type Tried = Vec<(usize, u64, Vec<u8>)>;

    /// Runs the script on `storage`; returns what was appended (`Ok`), the records of failed
    /// appends, and how many of each shard's records were acknowledged.
    fn script(storage: Arc<dyn Storage>, env: &Env) -> (Model, Tried, [usize; 3]) {
        let mut model = Model::new();
        let mut failed = Vec::new();
        let mut acked = [0usize; 3];
        let Ok(log) = open_on(storage, env, 3) else {
            return (model, failed, acked);
        };
        let count = |model: &Model, shard: usize| model.iter().filter(|r| r.1 == shard).count();
        let mut rng = 0xfa17_u64;
        for _ in 0..80 {
            let r = next(&mut rng);
            let shard = (r % 3) as usize;
            match (r >> 8) % 10 {
                0 => {
                    let _ = log.advance_epoch();
                }
                1 => {
                    if log.barrier(log.epoch()).is_ok() {
                        for (shard, a) in acked.iter_mut().enumerate() {
                            *a = count(&model, shard);
                        }
                    }
                }
                k => {
                    let d = if k <= 4 {
                        Durability::Synced
                    } else {
                        Durability::Buffered
                    };
                    let Ok(s) = log.shard(shard) else { continue };
                    let lsn = s.last_lsn().next().get();
                    let data = payload(lsn * 10 + shard as u64);
                    match log.append(shard, &data, d) {
                        Ok((epoch, got)) => {
                            assert_eq!(got.get(), lsn);
                            model.push((epoch, shard, lsn, data));
                            if d == Durability::Synced {
                                acked[shard] = count(&model, shard);
                            }
                        }
                        Err(_) => failed.push((shard, lsn, data)),
                    }
                }
            }
        }
        std::mem::forget(log); // the process dies with it open
        (model, failed, acked)
    }

    // Count the operations of a clean run.
    let env = Env::mem();
    let mem = env.mem.clone().expect("in-memory storage");
    let faulty = FaultyStorage::new(Arc::new(mem), FaultPlan::new());
    script(Arc::new(faulty.clone()), &env);
    let mut runs = 0;
    for op in [Op::Write, Op::SyncData, Op::Rename, Op::SyncDir] {
        let total = faulty.count(op);
        // Every fault of the rarer operations, every third of the writes and syncs.
        let stride = if total > 60 { 3 } else { 1 };
        for n in (1..=total).step_by(stride) {
            runs += 1;
            let env = Env::mem();
            let mem = env.mem.clone().expect("in-memory storage");
            let storage =
                FaultyStorage::new(Arc::new(mem.clone()), FaultPlan::new().fail_nth(op, n));
            let (model, failed, acked) = script(Arc::new(storage), &env);
            mem.crash(CrashMode::DropUnsynced);
            let context = format!("{op:?} #{n} of {total}");
            let log = open(&env, 3).unwrap_or_else(|e| panic!("{context}: reopen: {e}"));
            let got = replayed(&log, u64::MAX)?;
            let mut order = got.clone();
            order.sort_by_key(|&(e, s, l, _)| (e, s, l));
            assert_eq!(got, order, "{context}: replay order");
            for r in &got {
                let was_appended = model.contains(r);
                let was_tried = failed.iter().any(|f| (f.0, f.1, &f.2) == (r.1, r.2, &r.3));
                assert!(
                    was_appended || was_tried,
                    "{context}: {:?} was never appended in that epoch (epoch starts {:?})",
                    (r.0, r.1, r.2),
                    log.epoch_starts()
                );
            }
            for (shard, &acked) in acked.iter().enumerate() {
                let kept = got.iter().filter(|r| r.1 == shard).count();
                assert!(
                    kept >= acked,
                    "{context}: shard {shard} kept {kept} of {acked} acknowledged"
                );
            }
        }
    }
    assert!(runs > 50, "{runs} runs");
    Ok(())
}

/// Writers on every shard while another thread rolls every shard back to its synced positions
/// and resets the whole log, over and over: no append or rollback fails but as documented, and
/// after a last barrier every record there replays in the epoch its append returned, in LSN
/// order per shard (records a rollback or reset removed are simply gone).
#[test]
fn rollbacks_and_resets_beside_writers_keep_each_record_in_the_epoch_its_append_returned()
-> Result<()> {
    const WRITERS: usize = 3;
    for env in Env::both() {
        let log = Arc::new(open(&env, WRITERS)?);
        let writers = {
            let log = Arc::clone(&log);
            Writers::spawn(WRITERS, move |shard, i| {
                let d = if i.is_multiple_of(5) {
                    Durability::Synced
                } else {
                    Durability::Buffered
                };
                let data = format!("shard {shard} record {i}").into_bytes();
                match log.append(shard, &data, d) {
                    Ok((epoch, lsn)) => Ok(Some((epoch, lsn.get(), data))),
                    // A rollback removed it before its sync covered it.
                    Err(Error::RolledBack { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
        };
        for round in 0..30u64 {
            if !writers.wait(3) {
                break;
            }
            match round % 3 {
                0 => log.reset()?,
                1 => log.truncate_to(&log.synced_positions())?,
                _ => log.barrier(log.epoch())?,
            }
        }
        let appended = writers.stop()?;
        log.barrier(log.epoch())?;
        let got = replayed(&log, u64::MAX)?;
        let mut order = got.clone();
        order.sort_by_key(|&(e, s, l, _)| (e, s, l));
        assert_eq!(got, order, "{}: replay order", env.name());
        for r in &got {
            // The last record appended at that LSN (a rollback lets an LSN be taken again).
            let last = appended[r.1].iter().rev().find(|a| a.1 == r.2);
            assert_eq!(
                last.map(|a| (a.0, &a.2)),
                Some((r.0, &r.3)),
                "{}: shard {} LSN {} replays in epoch {}",
                env.name(),
                r.1,
                r.2,
                r.0
            );
        }
    }
    Ok(())
}
