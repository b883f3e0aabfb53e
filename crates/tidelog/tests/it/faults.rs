//! Fault injection: failed writes and fsyncs poison the log, every caller covered by a failed
//! sync gets the error, short writes are harmless, a full disk is an error, and reopening loses
//! nothing that was acknowledged.

use std::sync::{Arc, Barrier};

use tidelog::io::{CrashMode, FaultPlan, FaultyStorage, MemStorage, Op, Storage};
use tidelog::{Durability, Error, Log, Lsn, Result};

use crate::common::{SEGMENT_BYTES, assert_holds, payload};

struct Faulty {
    mem: MemStorage,
    faulty: FaultyStorage,
    plan: FaultPlan,
}

impl Faulty {
    fn new(plan: FaultPlan) -> Self {
        let mem = MemStorage::new();
        let faulty = FaultyStorage::new(Arc::new(mem.clone()), FaultPlan::new());
        Faulty { mem, faulty, plan }
    }

    /// Opens through the faulty storage; the plan starts counting once the log is open.
    fn open(&self) -> Result<Log> {
        self.open_with(self.builder())
    }

    fn builder(&self) -> tidelog::LogBuilder {
        Log::builder("/log")
            .storage(Arc::new(self.faulty.clone()))
            .segment_bytes(SEGMENT_BYTES)
    }

    fn open_with(&self, builder: tidelog::LogBuilder) -> Result<Log> {
        let log = builder.open()?;
        self.faulty.set_plan(self.plan.clone());
        Ok(log)
    }

    /// Reopens on the storage without faults, as a restarted process would.
    fn reopen_clean(&self) -> Result<Log> {
        Log::builder("/log")
            .storage(Arc::new(self.mem.clone()) as Arc<dyn Storage>)
            .segment_bytes(SEGMENT_BYTES)
            .open()
    }
}

/// Appends `payload(lsn)` for LSNs `from..=to`, syncing each tenth; returns the last LSN
/// acknowledged durable, stopping at the first error (which it returns too).
fn append_until_error(log: &Log, from: u64, to: u64) -> (u64, Option<Error>) {
    let mut acked = from - 1;
    for lsn in from..=to {
        let d = if lsn % 10 == 0 {
            Durability::Synced
        } else {
            Durability::Buffered
        };
        match log.append(&payload(lsn), d) {
            Ok(got) => {
                assert_eq!(got.get(), lsn);
                if d == Durability::Synced {
                    acked = lsn;
                }
            }
            Err(e) => return (acked, Some(e)),
        }
    }
    (acked, None)
}

fn assert_poisoned(log: &Log) {
    assert!(matches!(
        log.append(b"x", Durability::Buffered),
        Err(Error::Poisoned)
    ));
    assert!(matches!(log.sync(), Err(Error::Poisoned)));
    assert!(matches!(log.read(Lsn::FIRST), Err(Error::Poisoned)));
    assert!(matches!(log.checkpoint(Lsn::FIRST), Err(Error::Poisoned)));
    assert!(matches!(
        log.truncate_after(Lsn::FIRST),
        Err(Error::Poisoned)
    ));
}

/// After a poisoning failure: the failing call got the real error, later calls get `Poisoned`,
/// and a reopen (after a crash too) keeps every acknowledged record.
fn check_poison_and_recovery(env: &Faulty, log: Log, acked: u64, err: Option<Error>) -> Result<()> {
    let err = err.expect("the injected fault surfaced");
    assert!(
        matches!(err, Error::Io { .. }),
        "the real error, not {err:?}"
    );
    assert_poisoned(&log);
    drop(log); // a poisoned log does no I/O when dropped
    for mode in [None, Some(CrashMode::DropUnsynced)] {
        if let Some(mode) = mode {
            env.mem.crash(mode);
        }
        let log = env.reopen_clean()?;
        let last = log.last_lsn()?.get();
        assert!(
            last >= acked,
            "acknowledged LSN {acked} lost after {mode:?} (last {last})"
        );
        assert_holds(&log, 1, last)?;
        let next = log.append(b"still works", Durability::Synced)?;
        assert_eq!(next.get(), last + 1);
        log.truncate_after(Lsn::new(last))?;
    }
    Ok(())
}

#[test]
fn failed_fsync_poisons_and_reopen_keeps_acknowledged() -> Result<()> {
    for nth in [1, 2, 5, 9] {
        let env = Faulty::new(FaultPlan::new().fail_nth(Op::SyncData, nth));
        let log = env.open()?;
        let (acked, err) = append_until_error(&log, 1, 600);
        assert_eq!(env.faulty.injected(), 1, "fsync #{nth}");
        check_poison_and_recovery(&env, log, acked, err)?;
    }
    Ok(())
}

#[test]
fn failed_write_poisons_and_reopen_keeps_acknowledged() -> Result<()> {
    for nth in [1, 2, 7] {
        let env = Faulty::new(FaultPlan::new().fail_nth(Op::Write, nth));
        let log = env.open_with(env.builder().write_buffer_bytes(512))?;
        let (acked, err) = append_until_error(&log, 1, 600);
        check_poison_and_recovery(&env, log, acked, err)?;
    }
    Ok(())
}

#[test]
fn failed_roll_steps_poison() -> Result<()> {
    // A roll creates the next segment: temp file, write, sync, rename, directory sync.
    for (op, nth) in [
        (Op::Rename, 1),
        (Op::SyncDir, 1),
        (Op::Open, 1),
        (Op::Write, 2),
    ] {
        let env = Faulty::new(FaultPlan::new().fail_nth(op, nth));
        let log = env.open()?;
        let (acked, err) = append_until_error(&log, 1, 600);
        assert!(env.faulty.injected() >= 1, "{op:?} #{nth} was reached");
        check_poison_and_recovery(&env, log, acked, err)?;
    }
    Ok(())
}

#[test]
fn no_waiter_gets_ok_from_a_failed_group_sync() -> Result<()> {
    for round in 0..20 {
        let env = Faulty::new(FaultPlan::new().fail_nth(Op::SyncData, 2));
        let log = Arc::new(env.open()?);
        log.append(b"first", Durability::Synced)?; // sync #1 succeeds
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (log, barrier) = (Arc::clone(&log), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let lsn = log.append(format!("t{t}").as_bytes(), Durability::Buffered);
                    barrier.wait();
                    (lsn, log.sync())
                })
            })
            .collect();
        let mut real_errors = 0;
        for t in threads {
            let (lsn, synced) = t.join().expect("thread");
            lsn?;
            match synced {
                Ok(()) => panic!("round {round}: a waiter got Ok from a failed sync"),
                Err(Error::Io { .. }) => real_errors += 1,
                Err(Error::Poisoned) => {}
                Err(other) => panic!("round {round}: unexpected {other}"),
            }
        }
        assert!(
            real_errors >= 1,
            "round {round}: the leader got the real error"
        );
        assert_eq!(log.durable_lsn(), Lsn::new(1), "the watermark did not move");
        assert_poisoned(&log);
        if let Ok(log) = Arc::try_unwrap(log) {
            std::mem::forget(log);
        }
        env.mem.crash(CrashMode::DropUnsynced);
        let log = env.reopen_clean()?;
        assert!(log.last_lsn()? >= Lsn::new(1));
        assert_eq!(log.read(Lsn::new(1))?.data(), b"first");
    }
    Ok(())
}

#[test]
fn short_writes_and_reads_are_harmless() -> Result<()> {
    let env = Faulty::new(FaultPlan::new().short_writes(7).short_reads(5));
    let log = env.open()?;
    let (acked, err) = append_until_error(&log, 1, 400);
    assert!(err.is_none(), "{err:?}");
    log.sync()?;
    assert_eq!(acked, 400);
    assert_holds(&log, 1, 400)?;
    drop(log);
    let log = env.open()?;
    assert!(log.recovery_report().is_clean());
    assert_holds(&log, 1, 400)?;
    Ok(())
}

#[test]
fn full_disk_is_an_error_and_loses_nothing_acknowledged() -> Result<()> {
    for limit in [3_000, 10_000, 25_000] {
        let env = Faulty::new(FaultPlan::new().disk_full_after(limit));
        let log = env.open()?;
        let (acked, err) = append_until_error(&log, 1, 2_000);
        let err = err.expect("the disk fills up");
        let full = match &err {
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        };
        assert!(full, "limit {limit}: {err}");
        check_poison_and_recovery(&env, log, acked, Some(err))?;
    }
    Ok(())
}

#[test]
fn failed_checkpoint_write_leaves_the_log_usable() -> Result<()> {
    let env = Faulty::new(FaultPlan::new().fail_nth(Op::Rename, 1));
    let log = env.open_with(env.builder().segment_bytes(1 << 20))?;
    for lsn in 1..=50 {
        log.append(&payload(lsn), Durability::Buffered)?;
    }
    let err = log.checkpoint(Lsn::new(20)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                op: "rename into place",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(log.checkpoint_lsn()?, Lsn::FIRST);
    log.checkpoint(Lsn::new(20))?;
    assert_eq!(log.checkpoint_lsn()?, Lsn::new(20));
    assert_eq!(log.append(b"more", Durability::Synced)?, Lsn::new(51));
    Ok(())
}

#[test]
fn every_injected_fault_during_open_is_an_error_not_a_panic() -> Result<()> {
    // Build a log with some damage for recovery to repair, then fail each step of the open.
    let base = MemStorage::new();
    {
        let log = Log::builder("/log")
            .storage(Arc::new(base.clone()))
            .segment_bytes(SEGMENT_BYTES)
            .open()?;
        for lsn in 1..=300 {
            log.append(&payload(lsn), Durability::Buffered)?;
        }
        log.sync()?;
        log.append(b"unsynced", Durability::Buffered)?;
        log.append(b"unsynced too", Durability::Buffered)?;
        log.checkpoint(Lsn::new(100))?;
        std::mem::forget(log);
    }
    base.crash(CrashMode::Torn { seed: 3 });
    for n in 0..40 {
        let faulty = FaultyStorage::new(Arc::new(base.clone()), FaultPlan::new().fail_after(n));
        let opened = Log::builder("/log")
            .storage(Arc::new(faulty))
            .segment_bytes(SEGMENT_BYTES)
            .open();
        if let Ok(log) = opened {
            std::mem::forget(log);
        }
        base.crash(CrashMode::DropUnsynced);
        let log = Log::builder("/log")
            .storage(Arc::new(base.clone()) as Arc<dyn Storage>)
            .segment_bytes(SEGMENT_BYTES)
            .open()?;
        assert_eq!(log.checkpoint_lsn()?, Lsn::new(100));
        assert!(log.last_lsn()? >= Lsn::new(300), "fail after {n}");
        assert_holds(&log, 100, 300).or_else(|_| {
            // The two unsynced records may have survived the torn crash.
            let all = crate::common::read_all(&log)?;
            assert!(all.len() >= 201 && all.len() <= 203);
            Ok::<(), Error>(())
        })?;
        std::mem::forget(log);
        base.crash(CrashMode::DropUnsynced);
    }
    Ok(())
}

/// A process that starts child processes from other threads: each child holds a copy of every
/// descriptor of the parent from `fork` until `exec` closes it, the lock file's included.
/// Closing a log must still release its lock at once, so an immediate reopen succeeds.
#[cfg(unix)]
#[test]
fn reopen_right_after_close_while_another_thread_spawns_processes() -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path().join("log");
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU64::new(0));
    let spawner = {
        let (stop, spawned) = (Arc::clone(&stop), Arc::clone(&spawned));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let status = std::process::Command::new("/bin/true")
                    .status()
                    .expect("spawn /bin/true");
                assert!(status.success());
                spawned.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while spawned.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    let open = || {
        Log::builder(&dir)
            .segment_bytes(1 << 20)
            .preallocate(false)
            .open()
    };
    let rounds = 200u64;
    let mut locked = 0;
    for round in 0..rounds {
        let log = match open() {
            Ok(log) => log,
            Err(Error::Locked { .. }) => {
                locked += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        log.append(&payload(round), Durability::Synced)?;
        log.close()?;
    }
    stop.store(true, Ordering::Relaxed);
    spawner.join().expect("spawner thread");
    let spawned = spawned.load(Ordering::Relaxed);
    eprintln!("{rounds} reopens, {spawned} processes started meanwhile");
    assert_eq!(
        locked, 0,
        "{locked} of {rounds} reopens found the log locked by its own closed handle \
         ({spawned} processes started meanwhile)"
    );
    let log = open()?;
    assert_eq!(log.last_lsn()?, Lsn::new(rounds));
    Ok(())
}
