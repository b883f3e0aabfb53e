//! Model-based property tests: random sequences of operations, crashes, injected faults and
//! reopens, run against the log and against a plain `Vec` model, on the in-memory storage (many
//! cases, with crashes) and on the real file system (fewer cases, faults and reopens). proptest
//! shrinks a failing sequence to a minimal one.
//!
//! After every reopen the recovered log must be what the contract allows: a gap-free prefix of
//! what was appended, from the checkpoint, holding every acknowledged record, exact payloads, whole
//! batches. What an operation that failed (an injected fault) or that a crash interrupted may or
//! may not have done is allowed either way; the model then takes the recovered log as its new
//! truth.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use tidelog::io::{CrashMode, FaultPlan, FaultyStorage, MemStorage};
use tidelog::{Durability, Log, Lsn, Result};

/// One step of a generated sequence.
#[derive(Debug, Clone)]
enum Op {
    /// A record of about this many bytes.
    Append(usize, bool),
    /// A batch of this many records.
    Batch(usize, bool),
    Sync,
    /// Checkpoint at `last - n`.
    Checkpoint(u64),
    /// Truncate after `last - n`.
    TruncateAfter(u64),
    Reset,
    /// The next `n`-th mutating storage call fails (the log is poisoned; a reopen follows).
    Fault(u64),
    /// The power goes (in-memory storage only; a plain reopen on the real one).
    Crash(u8, u64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..300, any::<bool>()).prop_map(|(n, s)| Op::Append(n, s)),
        2 => (1usize..20_000, any::<bool>()).prop_map(|(n, s)| Op::Append(n + 60_000, s)),
        3 => (2usize..6, any::<bool>()).prop_map(|(n, s)| Op::Batch(n, s)),
        2 => Just(Op::Sync),
        1 => (0u64..30).prop_map(Op::Checkpoint),
        1 => (0u64..30).prop_map(Op::TruncateAfter),
        1 => Just(Op::Reset),
        1 => (1u64..40).prop_map(Op::Fault),
        1 => (0u8..3, any::<u64>()).prop_map(|(m, seed)| Op::Crash(m, seed)),
        1 => Just(Op::Reopen),
    ]
}

/// What the test knows of the log.
#[derive(Debug, Default)]
struct Model {
    /// `payloads[i]` is the record at LSN `i + 1`.
    payloads: Vec<Vec<u8>>,
    /// Batches as LSN ranges.
    batches: Vec<(u64, u64)>,
    /// Every record up to here was acknowledged durable.
    acked: u64,
    checkpoint: u64,
    /// What an operation that failed may have done: a checkpoint it set, a rollback point.
    maybe_checkpoint: Option<u64>,
    maybe_truncated: Option<u64>,
}

impl Model {
    fn last(&self) -> u64 {
        self.payloads.len() as u64
    }

    fn push(&mut self, sizes: &[usize], tag: usize) -> Vec<Vec<u8>> {
        let first = self.last() + 1;
        let records: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let mut p = format!("op {tag} lsn {} ", first + i as u64).into_bytes();
                p.resize(p.len().max(size), b'a' + (tag % 26) as u8);
                p
            })
            .collect();
        self.payloads.extend(records.iter().cloned());
        self.batches.push((first, self.last()));
        records
    }

    fn truncate(&mut self, lsn: u64) {
        self.payloads.truncate(lsn as usize);
        self.batches.retain(|b| b.0 <= lsn);
        if let Some(b) = self.batches.last_mut() {
            b.1 = b.1.min(lsn);
        }
        self.acked = self.acked.min(lsn);
    }
}

/// Where a sequence runs: the storage the log sees, and the faults and crashes under it.
struct Bed {
    dir: std::path::PathBuf,
    faulty: FaultyStorage,
    mem: Option<MemStorage>,
    _tmp: Option<tempfile::TempDir>,
}

impl Bed {
    fn mem() -> Bed {
        let mem = MemStorage::new();
        Bed {
            dir: "/log".into(),
            faulty: FaultyStorage::new(Arc::new(mem.clone()), FaultPlan::new()),
            mem: Some(mem),
            _tmp: None,
        }
    }

    fn std() -> Bed {
        let tmp = tempfile::tempdir().expect("temporary directory");
        Bed {
            dir: tmp.path().join("log"),
            faulty: FaultyStorage::new(Arc::new(tidelog::io::StdStorage::new()), FaultPlan::new()),
            mem: None,
            _tmp: Some(tmp),
        }
    }

    fn open(&self) -> Result<Log> {
        Log::builder(&self.dir)
            .storage(Arc::new(self.faulty.clone()))
            .segment_bytes(4096)
            .recycle_segments(true)
            .open()
    }
}

/// Runs `ops` on `bed`, checking the log against the model at every reopen and at the end.
fn run(bed: &Bed, ops: &[Op]) -> std::result::Result<(), TestCaseError> {
    let mut m = Model::default();
    let mut log = Some(bed.open().map_err(fail("first open"))?);
    for (no, op) in ops.iter().enumerate() {
        let context = format!("op {no} {op:?}");
        let Some(live) = log.as_ref() else {
            unreachable!("a log is open between operations")
        };
        if let Op::Fault(n) = op {
            // Every mutating storage call after the next `n` fails, as on a dying machine; the
            // log notices at some later operation.
            bed.faulty.set_plan(FaultPlan::new().fail_after(*n));
            continue;
        }
        let outcome = step(live, op, no, &mut m);
        let reopen = match (op, outcome) {
            (Op::Crash(mode, seed), Ok(())) => {
                drop(log.take());
                if let Some(mem) = &bed.mem {
                    mem.crash(match mode {
                        0 => CrashMode::DropUnsynced,
                        1 => CrashMode::Torn { seed: *seed },
                        _ => CrashMode::Reordered { seed: *seed },
                    });
                }
                true
            }
            (Op::Reopen, Ok(())) => true,
            (_, Ok(())) => false,
            // An injected fault: the log is poisoned; what the operation did is uncertain.
            (_, Err(e)) => {
                prop_assert!(
                    bed.faulty.injected() > 0,
                    "{context}: an error without a fault: {e}"
                );
                true
            }
        };
        if reopen {
            drop(log.take());
            bed.faulty.set_plan(FaultPlan::new());
            let reopened = bed.open().map_err(fail(&context))?;
            check(&reopened, &mut m, &context)?;
            log = Some(reopened);
        } else {
            m.maybe_checkpoint = None;
            m.maybe_truncated = None;
        }
    }
    let Some(live) = log.take() else {
        unreachable!("a log is open at the end")
    };
    // A fault armed but not met yet would fail the close's sync: the machine stays up.
    bed.faulty.set_plan(FaultPlan::new());
    if live.close().is_err() {
        // The log met an armed fault at the very end: it is poisoned, and what it did is
        // uncertain as after any fault.
    }
    let reopened = bed.open().map_err(fail("final open"))?;
    check(&reopened, &mut m, "the end")?;
    Ok(())
}

fn fail(context: &str) -> impl Fn(tidelog::Error) -> TestCaseError + '_ {
    move |e| TestCaseError::fail(format!("{context}: {e}"))
}

/// Runs one operation, updating the model as the contract says its success means.
fn step(log: &Log, op: &Op, no: usize, m: &mut Model) -> Result<()> {
    let durability = |synced: bool| {
        if synced {
            Durability::Synced
        } else {
            Durability::Buffered
        }
    };
    match *op {
        Op::Append(size, synced) => {
            let rec = m.push(&[size], no);
            let lsn = log.append(&rec[0], durability(synced))?;
            assert_eq!(lsn.get(), m.last());
            if synced {
                m.acked = lsn.get();
            }
        }
        Op::Batch(n, synced) => {
            let recs = m.push(&vec![40; n], no);
            let (_, last) = log.append_batch(&recs, durability(synced))?;
            assert_eq!(last.get(), m.last());
            if synced {
                m.acked = last.get();
            }
        }
        Op::Sync => {
            log.sync()?;
            m.acked = m.last();
        }
        Op::Checkpoint(back) => {
            let cp = m.last().saturating_sub(back).max(m.checkpoint).max(1);
            m.maybe_checkpoint = Some(cp);
            log.checkpoint(Lsn::new(cp))?;
            m.acked = m.acked.max(cp - 1);
            m.checkpoint = cp;
        }
        Op::TruncateAfter(back) => {
            let lsn = m
                .last()
                .saturating_sub(back)
                .max(m.checkpoint.saturating_sub(1));
            m.maybe_truncated = Some(lsn);
            log.truncate_after(Lsn::new(lsn))?;
            m.truncate(lsn);
            m.acked = lsn;
        }
        Op::Reset => {
            m.maybe_checkpoint = Some(m.last() + 1);
            log.reset()?;
            m.checkpoint = m.last() + 1;
            m.acked = m.last();
        }
        Op::Fault(_) | Op::Crash(..) | Op::Reopen => {}
    }
    Ok(())
}

/// Checks a reopened log against the model, then makes the model what the log holds.
fn check(log: &Log, m: &mut Model, context: &str) -> std::result::Result<(), TestCaseError> {
    let cp = log.checkpoint_lsn().get();
    let last = log.last_lsn().get();
    let allowed = [Some(m.checkpoint.max(1)), m.maybe_checkpoint];
    prop_assert!(
        allowed.contains(&Some(cp)),
        "{context}: checkpoint {cp}, model {} / {:?}",
        m.checkpoint,
        m.maybe_checkpoint
    );
    let mut required = m.acked;
    if let Some(lsn) = m.maybe_truncated {
        required = required.min(lsn);
    }
    if cp <= required {
        prop_assert!(
            last >= required,
            "{context}: acknowledged LSN {required} lost (last {last})"
        );
    }
    prop_assert!(
        last <= m.last(),
        "{context}: LSN {last} invented (the model has {})",
        m.last()
    );
    let records: Vec<(u64, Vec<u8>)> = log
        .iter()
        .map_err(fail(context))?
        .map(|r| r.map(|r| (r.lsn().get(), r.into_data())))
        .collect::<Result<_>>()
        .map_err(fail(context))?;
    let lsns: Vec<u64> = records.iter().map(|r| r.0).collect();
    prop_assert_eq!(
        lsns,
        (cp..=last).collect::<Vec<_>>(),
        "{}: not a prefix",
        context
    );
    for (lsn, data) in &records {
        prop_assert!(
            data == &m.payloads[*lsn as usize - 1],
            "{context}: payload of LSN {lsn}"
        );
    }
    for &(first, end) in &m.batches {
        if m.maybe_truncated == Some(last) {
            break; // an interrupted rollback completed and cut a batch there on purpose
        }
        prop_assert!(
            !(first <= last && last < end),
            "{context}: batch {first}..={end} cut at {last}"
        );
    }
    // The log is now the truth: what survived is on stable storage.
    m.truncate(last);
    m.acked = last;
    m.checkpoint = cp;
    m.maybe_checkpoint = None;
    m.maybe_truncated = None;
    Ok(())
}

fn run_on(bed: &Bed, ops: &[Op]) -> std::result::Result<(), TestCaseError> {
    run(bed, ops)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_crashes_and_faults_keep_the_contract_in_memory(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        run_on(&Bed::mem(), &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_and_faults_keep_the_contract_on_disk(
        ops in prop::collection::vec(op(), 1..40)
    ) {
        let bed = Bed::std();
        prop_assert!(bed.dir.parent().is_some_and(Path::exists));
        run_on(&bed, &ops)?;
    }
}
