//! Fault injection, on the in-memory storage and on the real file system: failed writes and
//! fsyncs poison the log, every caller covered by a failed sync gets the error, short writes are
//! harmless, a full disk is an error, and reopening loses nothing that was acknowledged.
//!
//! The sweeps fail each storage call of the crash suite's scripted workload in turn (appends,
//! rolls and segment creation, syncs, checkpoints, rollbacks, resets), without and with
//! preallocation and segment recycling, and check the outcome against its model: the failing
//! call gets the real error, later calls `Poisoned` (a failed checkpoint, or a reset that fails
//! writing its checkpoint, leaves the log usable instead), and a reopen without faults (and, on
//! the in-memory storage, after a crash too) holds every acknowledged record.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Barrier};

use tidelog::io::{CrashMode, FaultPlan, FaultyStorage, MemStorage, Op, Storage};
use tidelog::{Durability, Error, Log, LogBuilder, Lsn, Result};

use crate::common::{Env, SEGMENT_BYTES, assert_holds, payload, read_all};
use crate::crash::{self, AFTER_RECOVERY, Model, Step};

/// A log directory on one backend, reached through a [`FaultyStorage`] whose plan starts once
/// the log is open.
struct Faulty {
    env: Env,
    faulty: FaultyStorage,
    plan: FaultPlan,
}

impl Faulty {
    fn new(env: Env, plan: FaultPlan) -> Self {
        let faulty = FaultyStorage::new(Arc::clone(&env.storage), FaultPlan::new());
        Faulty { env, faulty, plan }
    }

    /// The same plan on each backend: the in-memory storage, and a temporary directory on the
    /// real file system.
    fn both(plan: &FaultPlan) -> [Faulty; 2] {
        Env::both().map(|env| Faulty::new(env, plan.clone()))
    }

    fn name(&self) -> &'static str {
        self.env.name()
    }

    /// Opens through the faulty storage; the plan starts counting once the log is open.
    fn open(&self) -> Result<Log> {
        self.open_with(self.builder())
    }

    /// Small segments; preallocation on (the default), so new segments meet `allocate`.
    fn builder(&self) -> LogBuilder {
        Log::builder(&self.env.dir)
            .storage(Arc::new(self.faulty.clone()))
            .segment_bytes(SEGMENT_BYTES)
    }

    fn open_with(&self, builder: LogBuilder) -> Result<Log> {
        let log = builder.open()?;
        self.faulty.set_plan(self.plan.clone());
        Ok(log)
    }

    /// Reopens on the storage without faults, as a restarted process would.
    fn reopen_clean(&self) -> Result<Log> {
        Log::builder(&self.env.dir)
            .storage(Arc::clone(&self.env.storage))
            .segment_bytes(SEGMENT_BYTES)
            .open()
    }

    /// How the process ends before the reopen: it just exits, and on the in-memory storage the
    /// machine may lose power too (the real file system cannot be crashed from a test).
    fn endings(&self) -> Vec<Option<CrashMode>> {
        match self.env.mem {
            Some(_) => vec![None, Some(CrashMode::DropUnsynced)],
            None => vec![None],
        }
    }

    fn crash(&self, mode: CrashMode) {
        self.env
            .mem
            .as_ref()
            .expect("only the in-memory storage crashes")
            .crash(mode);
    }
}

/// Whether `err` is a fault the [`FaultyStorage`] injected, passed through as the real error.
fn is_injected(err: &Error) -> bool {
    matches!(err, Error::Io { source, .. } if source.to_string().contains("injected fault"))
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
    assert!(matches!(log.reset(), Err(Error::Poisoned)));
}

/// After a poisoning failure: the failing call got the real error, later calls get `Poisoned`,
/// and a reopen (after a crash too, in memory) keeps every acknowledged record.
fn check_poison_and_recovery(
    env: &Faulty,
    log: Log,
    acked: u64,
    err: Option<Error>,
    context: &str,
) -> Result<()> {
    let context = format!("{}, {context}", env.name());
    let err = err.unwrap_or_else(|| panic!("{context}: the injected fault surfaced"));
    assert!(is_injected(&err), "{context}: the real error, not {err:?}");
    assert_poisoned(&log);
    drop(log); // a poisoned log does no I/O when dropped
    for mode in env.endings() {
        if let Some(mode) = mode {
            env.crash(mode);
        }
        let log = env.reopen_clean()?;
        let last = log.last_lsn().get();
        assert!(
            last >= acked,
            "{context}: acknowledged LSN {acked} lost after {mode:?} (last {last})"
        );
        assert_holds(&log, 1, last)?;
        let next = log.append(b"still works", Durability::Synced)?;
        assert_eq!(next.get(), last + 1, "{context}");
        log.truncate_after(Lsn::new(last))?;
    }
    Ok(())
}

#[test]
fn failed_fsync_poisons_and_reopen_keeps_acknowledged() -> Result<()> {
    for nth in [1, 2, 5, 9] {
        for env in Faulty::both(&FaultPlan::new().fail_nth(Op::SyncData, nth)) {
            let log = env.open()?;
            let (acked, err) = append_until_error(&log, 1, 600);
            assert_eq!(env.faulty.injected(), 1, "{}: fsync #{nth}", env.name());
            check_poison_and_recovery(&env, log, acked, err, &format!("fsync #{nth}"))?;
        }
    }
    Ok(())
}

#[test]
fn failed_write_poisons_and_reopen_keeps_acknowledged() -> Result<()> {
    for nth in [1, 2, 7] {
        for env in Faulty::both(&FaultPlan::new().fail_nth(Op::Write, nth)) {
            let log = env.open_with(env.builder().write_buffer_bytes(512))?;
            let (acked, err) = append_until_error(&log, 1, 600);
            check_poison_and_recovery(&env, log, acked, err, &format!("write #{nth}"))?;
        }
    }
    Ok(())
}

#[test]
fn failed_roll_steps_poison() -> Result<()> {
    // A roll trims the sealed segment and syncs it, then creates the next segment: temporary
    // file, preallocation, header write, sync, rename, directory sync.
    for (op, nth) in [
        (Op::SetLen, 1),
        (Op::SetLen, 2),
        (Op::Rename, 1),
        (Op::SyncDir, 1),
        (Op::Open, 1),
        (Op::Write, 2),
    ] {
        for env in Faulty::both(&FaultPlan::new().fail_nth(op, nth)) {
            let log = env.open()?;
            let (acked, err) = append_until_error(&log, 1, 600);
            let context = format!("{op:?} #{nth}");
            assert_eq!(env.faulty.injected(), 1, "{}: {context}", env.name());
            check_poison_and_recovery(&env, log, acked, err, &context)?;
        }
    }
    Ok(())
}

#[test]
fn no_waiter_gets_ok_from_a_failed_group_sync() -> Result<()> {
    for round in 0..20 {
        for env in Faulty::both(&FaultPlan::new().fail_nth(Op::SyncData, 2)) {
            let context = format!("{}, round {round}", env.name());
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
                    Ok(()) => panic!("{context}: a waiter got Ok from a failed sync"),
                    Err(e @ Error::Io { .. }) => {
                        assert!(is_injected(&e), "{context}: {e}");
                        real_errors += 1;
                    }
                    Err(Error::Poisoned) => {}
                    Err(other) => panic!("{context}: unexpected {other}"),
                }
            }
            assert!(real_errors >= 1, "{context}: the leader got the real error");
            assert_eq!(
                log.durable_lsn(),
                Lsn::new(1),
                "{context}: the watermark did not move"
            );
            assert_poisoned(&log);
            drop(log); // a poisoned log does no I/O when dropped
            for mode in env.endings() {
                if let Some(mode) = mode {
                    env.crash(mode);
                }
                let log = env.reopen_clean()?;
                assert!(log.last_lsn() >= Lsn::new(1), "{context}, {mode:?}");
                assert_eq!(
                    log.read(Lsn::new(1))?.data(),
                    b"first",
                    "{context}, {mode:?}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn short_writes_and_reads_are_harmless() -> Result<()> {
    for env in Faulty::both(&FaultPlan::new().short_writes(7).short_reads(5)) {
        let log = env.open()?;
        let (acked, err) = append_until_error(&log, 1, 400);
        assert!(err.is_none(), "{}: {err:?}", env.name());
        log.sync()?;
        assert_eq!(acked, 400);
        assert_holds(&log, 1, 400)?;
        drop(log);
        let log = env.open()?;
        assert!(log.recovery_report().is_clean(), "{}", env.name());
        assert_holds(&log, 1, 400)?;
    }
    Ok(())
}

#[test]
fn full_disk_is_an_error_and_loses_nothing_acknowledged() -> Result<()> {
    for limit in [3_000, 10_000, 25_000] {
        for env in Faulty::both(&FaultPlan::new().disk_full_after(limit)) {
            let log = env.open()?;
            let (acked, err) = append_until_error(&log, 1, 2_000);
            let err = err.expect("the disk fills up");
            let full = match &err {
                Error::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
                _ => false,
            };
            assert!(full, "{}, limit {limit}: {err}", env.name());
            check_poison_and_recovery(&env, log, acked, Some(err), &format!("limit {limit}"))?;
        }
    }
    Ok(())
}

#[test]
fn failed_checkpoint_write_leaves_the_log_usable() -> Result<()> {
    for env in Faulty::both(&FaultPlan::new().fail_nth(Op::Rename, 1)) {
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
            "{}: {err}",
            env.name()
        );
        assert_eq!(log.checkpoint_lsn(), Lsn::FIRST);
        log.checkpoint(Lsn::new(20))?;
        assert_eq!(log.checkpoint_lsn(), Lsn::new(20));
        assert_eq!(log.append(b"more", Durability::Synced)?, Lsn::new(51));
    }
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
    // The damaged files, to lay down again for each attempt on each backend.
    let image: Vec<(String, Vec<u8>)> = base
        .list(Path::new("/log"))
        .expect("list the damaged log")
        .into_iter()
        .map(|name| {
            let name = name.into_string().expect("file name");
            let bytes = base
                .read_file(&Path::new("/log").join(&name))
                .expect("a file");
            (name, bytes)
        })
        .collect();
    assert!(image.len() > 3, "segments and a checkpoint: {image:?}");
    for n in 0..40 {
        for backend in [Env::mem, Env::std] {
            let env = Faulty::new(backend(), FaultPlan::new());
            let context = format!("{}, fail after {n}", env.name());
            env.env
                .storage
                .create_dir_all(&env.env.dir)
                .expect("create the log directory");
            for (name, bytes) in &image {
                env.env.write_file(&env.env.dir.join(name), bytes);
            }
            if let Some(mem) = &env.env.mem {
                mem.sync_dir(Path::new("/")).expect("sync the root");
            }
            env.faulty.set_plan(FaultPlan::new().fail_after(n));
            let opened = Log::builder(&env.env.dir)
                .storage(Arc::new(env.faulty.clone()))
                .segment_bytes(SEGMENT_BYTES)
                .open();
            // Whatever the open left behind (on the real file system, a recovery cut short),
            // the process ends here.
            drop(opened);
            for mode in env.endings() {
                if let Some(mode) = mode {
                    env.crash(mode);
                }
                let log = env.reopen_clean()?;
                assert_eq!(log.checkpoint_lsn(), Lsn::new(100), "{context}");
                assert!(log.last_lsn() >= Lsn::new(300), "{context}");
                assert_holds(&log, 100, 300).or_else(|_| {
                    // The two unsynced records may have survived the torn crash.
                    let all = read_all(&log)?;
                    assert!(all.len() >= 201 && all.len() <= 203, "{context}");
                    Ok::<(), Error>(())
                })?;
            }
        }
    }
    Ok(())
}

/// A segment renamed into place whose directory fsync failed: the log is poisoned, and the
/// next process finds the segment and appends to it. Its records are acknowledged only once the
/// directory entry is durable too, so the reopen must sync the directory it finds.
#[test]
fn a_reopen_makes_the_segment_names_it_finds_durable() -> Result<()> {
    let env = Faulty::new(Env::mem(), FaultPlan::new().fail_nth(Op::SyncDir, 1));
    let log = env.open()?;
    let (acked, err) = append_until_error(&log, 1, 600);
    assert!(is_injected(&err.expect("the roll's directory sync fails")));
    drop(log);
    let log = env.reopen_clean()?;
    let last = log.last_lsn().get();
    assert!(last >= acked);
    let after = log.append(b"after the reopen", Durability::Synced)?;
    drop(log);
    env.crash(CrashMode::DropUnsynced);
    let log = env.reopen_clean()?;
    assert!(
        log.last_lsn() >= after,
        "LSN {after}, appended Synced after the reopen, is lost (last {})",
        log.last_lsn()
    );
    Ok(())
}

/// A log directory created by an open whose parent directory fsync failed: the next open finds
/// the directory and uses it, so it must make the directory durable in its parent first.
#[test]
fn a_reopen_makes_the_log_directory_it_finds_durable() -> Result<()> {
    let mem = MemStorage::new();
    let faulty = FaultyStorage::new(
        Arc::new(mem.clone()),
        FaultPlan::new().fail_nth(Op::SyncDir, 1),
    );
    let open = |storage: Arc<dyn Storage>| Log::builder("/data/log").storage(storage).open();
    let err = open(Arc::new(faulty.clone())).expect_err("the directory sync fails");
    assert!(is_injected(&err), "{err}");
    let log = open(Arc::new(faulty))?;
    let lsn = log.append(b"acknowledged", Durability::Synced)?;
    std::mem::forget(log);
    mem.crash(CrashMode::DropUnsynced);
    let log = open(Arc::new(mem))?;
    assert_eq!(log.last_lsn(), lsn, "the acknowledged record is lost");
    Ok(())
}

/// (preallocate, recycle segments): the configurations the sweeps run the script in.
const CONFIGS: [(bool, bool); 2] = [(false, false), (true, true)];

/// The kind of a script step, for the coverage of the sweeps.
fn step_kind(step: Step) -> &'static str {
    match step {
        Step::Append(_) | Step::Large(_) | Step::Batch(..) => "append",
        Step::Sync => "sync",
        Step::Checkpoint(_) => "checkpoint",
        Step::TruncateAfter(_) => "truncate_after",
        Step::Reset => "reset",
        Step::ResetTo(_) => "reset_to",
        Step::Roll => "roll",
    }
}

/// The kind of file a failed storage call was about.
fn file_kind(path: &Path) -> &'static str {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with("CHECKPOINT") {
        "checkpoint file"
    } else if name.ends_with(".seg.tmp") {
        "temporary segment file"
    } else if name.ends_with(".seg") {
        "segment"
    } else if name.ends_with(".free") {
        "free segment file"
    } else {
        "directory"
    }
}

/// Where a fault met the log: the backend, the step, the operation the error names, the kind
/// of file.
type Site = (&'static str, &'static str, &'static str, &'static str);

/// Whether a fault during `step`, reported as `op` on a file of `kind`, poisons the log (`None`:
/// either is right). Everything poisons but writing the checkpoint file and removing what a
/// checkpoint frees (`Log::checkpoint` leaves the log usable), and a reset's failure before
/// its checkpoint is written, which leaves the log as it was.
fn must_poison(step: Step, op: &str, kind: &str) -> Option<bool> {
    match step {
        Step::Checkpoint(_) => Some(kind == "segment" && matches!(op, "write" | "sync")),
        Step::Reset if kind == "checkpoint file" => Some(false),
        // The directory sync that makes the new checkpoint durable, or a later one.
        Step::Reset if op == "sync directory" => None,
        // A reset that skips LSNs poisons on every failure.
        _ => Some(true),
    }
}

/// The record the sweeps append to a log that stayed usable after a fault.
const AFTER_FAULT: &[u8] = b"after the fault";

/// Checks a log whose script run met the injected faults (as `m` records it), then reopens it
/// without faults, and on the in-memory storage after a crash too; returns where the fault met
/// the log. `best_effort`: the fault may hit a step that goes on without it.
fn check_fault(
    f: &Faulty,
    log: Log,
    mut m: Model,
    best_effort: bool,
    context: &str,
) -> Result<Site> {
    let site = match m.failed {
        None => {
            // Only best-effort steps swallow a fault: reserving the space of a segment again
            // after a rollback, and recycling a freed segment file (it is removed instead).
            assert!(best_effort, "{context}: the fault vanished");
            log.close()?;
            (f.name(), "none", "best effort", "")
        }
        Some(step) => {
            let err = m.error.take().expect("a failed step keeps its error");
            let Error::Io { op: what, path, .. } = &err else {
                panic!("{context}: {step:?} failed with {err:?}, not the injected fault")
            };
            assert!(is_injected(&err), "{context}: {step:?} failed with {err}");
            let site = (f.name(), step_kind(step), *what, file_kind(path));
            // The disk has room again, if it was full.
            f.faulty.set_plan(FaultPlan::new());
            let poisoned = match log.sync() {
                Err(Error::Poisoned) => true,
                Ok(()) => false,
                Err(e) => panic!("{context}: after {err}, sync failed with {e}"),
            };
            if let Some(expected) = must_poison(step, what, site.3) {
                assert_eq!(
                    poisoned, expected,
                    "{context}: {step:?} failed with {err}; poisoned?"
                );
            }
            if poisoned {
                assert_poisoned(&log);
                drop(log); // a poisoned log does no I/O when dropped
            } else {
                // The sync returned Ok: everything appended is acknowledged.
                m.acked = m.last();
                let cp = log.checkpoint_lsn().get();
                match step {
                    Step::Checkpoint(_) => assert!(
                        cp == m.checkpoint.max(1) || Some(cp) == m.failed_checkpoint,
                        "{context}: checkpoint {cp} after {err}"
                    ),
                    Step::Reset => {
                        assert_eq!(cp, m.checkpoint.max(1), "{context}: {err}");
                        assert_eq!(log.last_lsn().get(), m.last(), "{context}: {err}");
                    }
                    _ => unreachable!("must_poison"),
                }
                // The log stays usable.
                let lsn = log.append(AFTER_FAULT, Durability::Synced)?;
                m.push_record(AFTER_FAULT);
                assert_eq!(lsn.get(), m.last(), "{context}");
                m.acked = m.last();
                log.close()?;
            }
            site
        }
    };
    let next = crash::verify_at(&f.env.storage, &f.env.dir, &m, context)?;
    // The reopen made what it found durable, even after a failed directory fsync
    // (`a_reopen_makes_the_segment_names_it_finds_durable`).
    if let Some(mem) = &f.env.mem {
        // The reopen appended a record: the model follows, then the power goes.
        m.truncate(next.get() - 1);
        m.push_record(AFTER_RECOVERY);
        m.acked = next.get();
        mem.crash(CrashMode::DropUnsynced);
        crash::verify_at(&f.env.storage, &f.env.dir, &m, &format!("{context}, crash"))?;
    }
    Ok(site)
}

/// The crash suite's script on `f`, in the given configuration.
fn script_builder(f: &Faulty, preallocate: bool, recycle: bool) -> LogBuilder {
    f.builder()
        .write_buffer_bytes(0)
        .preallocate(preallocate)
        .recycle_segments(recycle)
}

/// On the real file system, where each run costs real fsyncs, a sweep runs only every
/// `STRIDE`th of a stretch of faults that meet the log alike (see [`sweep`]).
const STRIDE: usize = 8;

/// Runs the script in each configuration, on the in-memory storage and then on the real file
/// system: once without faults, then once for each plan `plans` makes from that run (from its
/// counters, and the bytes written before each step of the script), checking each; returns
/// where the faults met the log.
///
/// On the real file system the sweep runs the plans whose fault met the in-memory log
/// somewhere else than the plan before or after it did (the first and last of each stretch of
/// alike faults, such as the appends to one segment), and every [`STRIDE`]th one; each must
/// meet the log where it met the in-memory one.
fn sweep(
    plans: impl Fn(&FaultyStorage, &[u64]) -> Vec<(String, FaultPlan)>,
    best_effort: bool,
) -> Result<BTreeSet<Site>> {
    let mut sites = BTreeSet::new();
    let alike = |a: &Site, b: &Site| (a.1, a.2, a.3) == (b.1, b.2, b.3);
    for (preallocate, recycle) in CONFIGS {
        let mut in_memory: Vec<Site> = Vec::new();
        for backend in [Env::mem, Env::std] {
            let clean = Faulty::new(backend(), FaultPlan::new());
            let mut bytes_before = Vec::new();
            let log = clean.open_with(script_builder(&clean, preallocate, recycle))?;
            let m = crash::run_observed(&log, |_| bytes_before.push(clean.faulty.bytes_written()));
            assert!(m.failed.is_none(), "{:?}", m.error);
            bytes_before.push(clean.faulty.bytes_written());
            // The faults to plan are those the script meets; the close after it (which makes
            // the last sync marker durable) is another step's.
            let plans = plans(&clean.faulty, &bytes_before);
            drop(log);
            assert!(!plans.is_empty());
            let sample = clean.env.mem.is_none();
            if sample {
                assert_eq!(
                    plans.len(),
                    in_memory.len(),
                    "the same plans on each backend"
                );
            }
            for (i, (what, plan)) in plans.into_iter().enumerate() {
                let edge = |j: Option<usize>| {
                    j.and_then(|j| in_memory.get(j))
                        .is_none_or(|other| !alike(other, &in_memory[i]))
                };
                if sample && i % STRIDE != 0 && !edge(i.checked_sub(1)) && !edge(Some(i + 1)) {
                    continue;
                }
                let f = Faulty::new(backend(), plan);
                let context = format!(
                    "{}, {what}, preallocate {preallocate}, recycle {recycle}",
                    f.name()
                );
                let log = f.open_with(script_builder(&f, preallocate, recycle))?;
                let m = crash::run(&log);
                assert!(f.faulty.injected() >= 1, "{context}: the fault was reached");
                let site = check_fault(&f, log, m, best_effort, &context)?;
                if sample {
                    assert!(
                        alike(&site, &in_memory[i]),
                        "{context}: met {site:?}, in memory {:?}",
                        in_memory[i]
                    );
                } else {
                    in_memory.push(site);
                }
                sites.insert(site);
            }
        }
    }
    Ok(sites)
}

/// Fails each call of `op` the script makes, one run each.
fn fail_each_call_of(op: Op) -> Result<BTreeSet<Site>> {
    let sites = sweep(
        |clean, _| {
            let total = clean.count(op);
            (1..=total)
                .map(|n| {
                    let plan = FaultPlan::new().fail_nth(op, n);
                    (format!("{op:?} #{n} of {total}"), plan)
                })
                .collect()
        },
        matches!(op, Op::SetLen | Op::Rename),
    )?;
    eprintln!("{op:?}: {sites:#?}");
    Ok(sites)
}

/// Asserts faults met the log, on each backend, at each `(step, kind of file)` of `expected`.
fn assert_met(sites: &BTreeSet<Site>, expected: &[(&str, &str)]) {
    for backend in ["mem", "std"] {
        for &(step, kind) in expected {
            assert!(
                sites
                    .iter()
                    .any(|s| (s.0, s.1, s.3) == (backend, step, kind)),
                "{backend}: no fault met {step} on a {kind}; met {sites:#?}"
            );
        }
    }
}

/// Where the script writes bytes: what a failed write and a full disk meet.
const WRITE_SITES: &[(&str, &str)] = &[
    ("append", "segment"),
    ("append", "temporary segment file"),
    ("append", "free segment file"),
    ("checkpoint", "checkpoint file"),
    ("truncate_after", "temporary segment file"),
    ("reset", "checkpoint file"),
    ("reset", "temporary segment file"),
    ("reset", "free segment file"),
];

#[test]
fn every_failed_write_in_the_script() -> Result<()> {
    let sites = fail_each_call_of(Op::Write)?;
    assert_met(&sites, WRITE_SITES);
    Ok(())
}

#[test]
fn every_failed_fsync_in_the_script() -> Result<()> {
    let sites = fail_each_call_of(Op::SyncData)?;
    assert_met(
        &sites,
        &[
            ("append", "segment"),
            ("append", "temporary segment file"),
            ("append", "free segment file"),
            ("sync", "segment"),
            ("checkpoint", "segment"),
            ("checkpoint", "checkpoint file"),
            ("truncate_after", "segment"),
            ("truncate_after", "temporary segment file"),
            ("reset", "checkpoint file"),
            ("reset", "temporary segment file"),
            ("reset", "free segment file"),
        ],
    );
    Ok(())
}

#[test]
fn every_failed_truncate_and_preallocation_in_the_script() -> Result<()> {
    let sites = fail_each_call_of(Op::SetLen)?;
    assert_met(
        &sites,
        &[
            ("append", "segment"),                // trimming the sealed segment
            ("append", "temporary segment file"), // preallocating a new segment
            ("append", "free segment file"),      // preallocating a recycled one
            ("truncate_after", "segment"),
            ("reset", "free segment file"),
            ("none", ""), // preallocating again after a rollback
        ],
    );
    Ok(())
}

#[test]
fn every_failed_rename_in_the_script() -> Result<()> {
    let sites = fail_each_call_of(Op::Rename)?;
    assert_met(
        &sites,
        &[
            ("append", "temporary segment file"),
            ("append", "free segment file"),
            ("checkpoint", "checkpoint file"),
            ("truncate_after", "temporary segment file"),
            ("reset", "checkpoint file"),
            ("reset", "temporary segment file"),
            ("reset", "free segment file"),
            ("none", ""), // recycling a freed segment: it is removed instead
        ],
    );
    Ok(())
}

#[test]
fn every_failed_directory_fsync_in_the_script() -> Result<()> {
    let sites = fail_each_call_of(Op::SyncDir)?;
    assert_met(
        &sites,
        &[
            ("append", "directory"),
            ("checkpoint", "directory"),
            ("truncate_after", "directory"),
            ("reset", "directory"),
        ],
    );
    Ok(())
}

#[test]
fn every_failed_file_creation_in_the_script() -> Result<()> {
    let sites = fail_each_call_of(Op::Open)?;
    assert_met(
        &sites,
        &[
            ("append", "temporary segment file"),
            ("append", "free segment file"),
            ("checkpoint", "checkpoint file"),
            ("truncate_after", "temporary segment file"),
            ("reset", "checkpoint file"),
            ("reset", "temporary segment file"),
            ("reset", "free segment file"),
        ],
    );
    Ok(())
}

#[test]
fn every_failed_remove_in_the_script() -> Result<()> {
    let sites = fail_each_call_of(Op::Remove)?;
    assert_met(
        &sites,
        &[
            ("checkpoint", "segment"),
            ("truncate_after", "segment"),
            ("reset", "segment"),
        ],
    );
    Ok(())
}

#[test]
fn a_full_disk_in_each_step_of_the_script() -> Result<()> {
    /// The length of a seal frame (format.md, 2.5).
    const SEAL: u64 = 64;
    let script = crash::script();
    let sites = sweep(
        |_, bytes_before| {
            let mut plans = Vec::new();
            for (no, step) in script.iter().enumerate() {
                let (from, to) = (bytes_before[no], bytes_before[no + 1]);
                // Every step that writes, but only one in ten of the plain appends; the disk
                // fills up in its first write, in its last, and in the one after a seal (an
                // append that rolls writes the 64-byte seal of the segment it ends first, then
                // the next segment's header).
                if to == from || matches!(step, Step::Append(_)) && no % 10 != 0 {
                    continue;
                }
                let mut limits = vec![from + 1, (from + SEAL + 1).min(to - 1), to - 1];
                limits.dedup();
                for limit in limits {
                    let what = format!("disk full after {limit} bytes, in step {no} ({step:?})");
                    plans.push((what, FaultPlan::new().disk_full_after(limit)));
                }
            }
            plans
        },
        false,
    )?;
    eprintln!("full disk: {sites:#?}");
    assert_met(&sites, WRITE_SITES);
    Ok(())
}

#[test]
fn short_writes_and_reads_in_the_script_are_harmless() -> Result<()> {
    for (preallocate, recycle) in CONFIGS {
        for f in Faulty::both(&FaultPlan::new().short_writes(7).short_reads(5)) {
            let context = format!("{}, preallocate {preallocate}, recycle {recycle}", f.name());
            let m = crash::run(&f.open_with(script_builder(&f, preallocate, recycle))?);
            assert!(m.failed.is_none(), "{context}: {:?}", m.error);
            crash::verify_at(&f.env.storage, &f.env.dir, &m, &context)?;
        }
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
    assert_eq!(log.last_lsn(), Lsn::new(rounds));
    Ok(())
}

/// A record whose fsync failed is still in the page cache when the next process opens the log,
/// which finds it and calls it durable: the open must make it so before it does, or a power
/// loss takes away a record the reopened log already served (found by the model-based tests).
#[test]
fn a_reopen_makes_the_records_it_finds_durable_before_it_says_they_are() -> Result<()> {
    let env = Faulty::new(Env::mem(), FaultPlan::new().fail_nth(Op::SyncData, 2));
    let log = env.open()?;
    log.append(b"first", Durability::Synced)?;
    let failed = log.append(b"second", Durability::Synced);
    assert!(is_injected(&failed.expect_err("its fsync fails")));
    drop(log);
    let log = env.reopen_clean()?;
    assert_eq!(log.durable_lsn(), Lsn::new(2), "the reopened log serves it");
    assert_eq!(log.read(Lsn::new(2))?.data(), b"second");
    drop(log);
    env.crash(CrashMode::DropUnsynced);
    let log = env.reopen_clean()?;
    assert_eq!(
        log.last_lsn(),
        Lsn::new(2),
        "a record the log served is gone"
    );
    Ok(())
}
