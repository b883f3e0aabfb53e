//! Model-based tests: sequences of operations, crashes, injected faults and reopens, run against
//! the log and against a plain `Vec` model, on the in-memory storage (many cases, with crashes)
//! and on the real file system (fewer cases, faults and reopens).
//!
//! Two drivers share the runner: the proptests at the bottom, which generate sequences and
//! shrink a failing one to a minimal one, and the `log_ops` fuzz target, which decodes a
//! sequence from the fuzzer's bytes ([`Config::from_bytes`], [`Op::from_bytes`]). The fuzz crate
//! compiles this file as it is; only the proptests, and the real file system bed they use, are
//! left out of it (`cfg(test)`).
//!
//! After every reopen the recovered log must be what the contract allows: a gap-free prefix of
//! what was appended, from the checkpoint, holding every acknowledged record, exact payloads, whole
//! batches. What an operation that failed (an injected fault) or that a crash interrupted may or
//! may not have done is allowed either way; the model then takes the recovered log as its new
//! truth.

use std::sync::Arc;

use arbitrary::Unstructured;
#[cfg(test)]
use proptest::prelude::*;
use tidelog::io::{CrashMode, FaultPlan, FaultyStorage, MemStorage};
use tidelog::{Durability, Log, Lsn, Result};

/// One step of a sequence.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// A record of about this many bytes.
    Append(usize, bool),
    /// A batch of this many records.
    Batch(usize, bool),
    /// A record as large as a segment's room, so the segment rolls before it (unless it is
    /// empty) and again at the next append.
    Roll(bool),
    Sync,
    /// Checkpoint at `last - n`.
    Checkpoint(u64),
    /// Truncate after `last - n`.
    TruncateAfter(u64),
    Reset,
    /// Every mutating storage call after the next `n` fails (the log is poisoned; a reopen
    /// follows).
    Fault(u64),
    /// The disk fills up after `n` more bytes written.
    DiskFull(u64),
    /// The power goes (in-memory storage only; a plain reopen on the real one).
    Crash(u8, u64),
    Reopen,
}

impl Op {
    /// One operation decoded from fuzzer bytes, with the weights and ranges of the proptest
    /// strategy.
    pub(crate) fn from_bytes(u: &mut Unstructured<'_>) -> arbitrary::Result<Op> {
        Ok(match u.int_in_range(0u8..=22)? {
            0..=7 => Op::Append(u.int_in_range(1..=299)?, u.arbitrary()?),
            8..=9 => Op::Append(60_000 + u.int_in_range(1..=19_999)?, u.arbitrary()?),
            10..=12 => Op::Batch(u.int_in_range(2..=5)?, u.arbitrary()?),
            13 => Op::Roll(u.arbitrary()?),
            14..=15 => Op::Sync,
            16 => Op::Checkpoint(u.int_in_range(0..=29)?),
            17 => Op::TruncateAfter(u.int_in_range(0..=29)?),
            18 => Op::Reset,
            19 => Op::Fault(u.int_in_range(1..=39)?),
            20 => Op::DiskFull(u.int_in_range(0..=20_000)?),
            21 => Op::Crash(u.int_in_range(0..=2)?, u.arbitrary()?),
            _ => Op::Reopen,
        })
    }

    /// A sequence of at most `max` operations decoded from fuzzer bytes, up to their end.
    pub(crate) fn sequence_from_bytes(u: &mut Unstructured<'_>, max: usize) -> Vec<Op> {
        let mut ops = Vec::new();
        while ops.len() < max && !u.is_empty() {
            match Op::from_bytes(u) {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        ops
    }
}

/// How the log under test is configured, and what its storage does besides failing.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) segment_bytes: u64,
    pub(crate) recycle: bool,
    pub(crate) preallocate: bool,
    /// Every write stores, and every read returns, at most this many bytes.
    pub(crate) short_io: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            segment_bytes: 4096,
            recycle: true,
            preallocate: true,
            short_io: None,
        }
    }
}

impl Config {
    /// A configuration decoded from fuzzer bytes.
    pub(crate) fn from_bytes(u: &mut Unstructured<'_>) -> arbitrary::Result<Config> {
        let flags: u8 = u.arbitrary()?;
        Ok(Config {
            segment_bytes: [4096, 4096, 8192, 65_536][usize::from(flags & 3)],
            recycle: flags & 4 != 0,
            preallocate: flags & 8 != 0,
            short_io: (flags & 0x30 == 0x30).then_some(usize::from(flags >> 6) * 100 + 7),
        })
    }

    /// The plan the storage runs with when no fault is armed.
    fn plan(&self) -> FaultPlan {
        match self.short_io {
            Some(n) => FaultPlan::new().short_writes(n).short_reads(n),
            None => FaultPlan::new(),
        }
    }
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
pub(crate) struct Bed {
    dir: std::path::PathBuf,
    config: Config,
    faulty: FaultyStorage,
    mem: Option<MemStorage>,
    #[cfg(test)]
    _tmp: Option<tempfile::TempDir>,
}

impl Bed {
    pub(crate) fn mem(config: Config) -> Bed {
        let mem = MemStorage::new();
        Bed {
            dir: "/log".into(),
            faulty: FaultyStorage::new(Arc::new(mem.clone()), config.plan()),
            config,
            mem: Some(mem),
            #[cfg(test)]
            _tmp: None,
        }
    }

    #[cfg(test)]
    fn std(config: Config) -> Bed {
        let tmp = tempfile::tempdir().expect("temporary directory");
        Bed {
            dir: tmp.path().join("log"),
            faulty: FaultyStorage::new(Arc::new(tidelog::io::StdStorage::new()), config.plan()),
            config,
            mem: None,
            _tmp: Some(tmp),
        }
    }

    fn open(&self) -> Result<Log> {
        Log::builder(&self.dir)
            .storage(Arc::new(self.faulty.clone()))
            .segment_bytes(self.config.segment_bytes)
            .recycle_segments(self.config.recycle)
            .preallocate(self.config.preallocate)
            .open()
    }
}

/// Fails the run with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Runs `ops` on `bed`, checking the log against the model at every reopen and at the end.
///
/// # Errors
/// What the log did that the contract does not allow.
pub(crate) fn run(bed: &Bed, ops: &[Op]) -> std::result::Result<(), String> {
    let mut m = Model::default();
    let mut log = Some(bed.open().map_err(fail("first open"))?);
    for (no, op) in ops.iter().enumerate() {
        let context = format!("op {no} {op:?}");
        let Some(live) = log.as_ref() else {
            unreachable!("a log is open between operations")
        };
        match op {
            // Every mutating storage call after the next `n` fails, as on a dying machine; the
            // log notices at some later operation.
            Op::Fault(n) => {
                bed.faulty.set_plan(bed.config.plan().fail_after(*n));
                continue;
            }
            Op::DiskFull(n) => {
                bed.faulty.set_plan(bed.config.plan().disk_full_after(*n));
                continue;
            }
            _ => {}
        }
        let outcome = step(live, op, no, &bed.config, &mut m);
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
                ensure!(
                    bed.faulty.injected() > 0,
                    "{context}: an error without a fault: {e}"
                );
                true
            }
        };
        if reopen {
            drop(log.take());
            bed.faulty.set_plan(bed.config.plan());
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
    bed.faulty.set_plan(bed.config.plan());
    if live.close().is_err() {
        // The log met an armed fault at the very end: it is poisoned, and what it did is
        // uncertain as after any fault.
    }
    let reopened = bed.open().map_err(fail("final open"))?;
    check(&reopened, &mut m, "the end")?;
    Ok(())
}

fn fail(context: &str) -> impl Fn(tidelog::Error) -> String + '_ {
    move |e| format!("{context}: {e}")
}

/// Runs one operation, updating the model as the contract says its success means.
fn step(log: &Log, op: &Op, no: usize, config: &Config, m: &mut Model) -> Result<()> {
    let durability = |synced: bool| {
        if synced {
            Durability::Synced
        } else {
            Durability::Buffered
        }
    };
    let append = |m: &mut Model, size: usize, synced: bool| -> Result<()> {
        let rec = m.push(&[size], no);
        let lsn = log.append(&rec[0], durability(synced))?;
        assert_eq!(lsn.get(), m.last());
        if synced {
            m.acked = lsn.get();
        }
        Ok(())
    };
    match *op {
        Op::Append(size, synced) => append(m, size, synced)?,
        // A segment's room: its size less its header and one frame header.
        Op::Roll(synced) => append(m, config.segment_bytes as usize - 64 - 24, synced)?,
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
            // At or past the last record it is a no-op, which makes nothing durable.
            if lsn < m.last() {
                m.truncate(lsn);
                m.acked = lsn;
            }
        }
        Op::Reset => {
            m.maybe_checkpoint = Some(m.last() + 1);
            log.reset()?;
            m.checkpoint = m.last() + 1;
            m.acked = m.last();
        }
        Op::Fault(_) | Op::DiskFull(_) | Op::Crash(..) | Op::Reopen => {}
    }
    Ok(())
}

/// Checks a reopened log against the model, then makes the model what the log holds.
fn check(log: &Log, m: &mut Model, context: &str) -> std::result::Result<(), String> {
    let cp = log.checkpoint_lsn().get();
    let last = log.last_lsn().get();
    let allowed = [Some(m.checkpoint.max(1)), m.maybe_checkpoint];
    ensure!(
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
        ensure!(
            last >= required,
            "{context}: acknowledged LSN {required} lost (last {last})"
        );
    }
    ensure!(
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
    ensure!(
        lsns == (cp..=last).collect::<Vec<_>>(),
        "{context}: not a prefix: {lsns:?}, checkpoint {cp}, last {last}"
    );
    for (lsn, data) in &records {
        ensure!(
            data == &m.payloads[*lsn as usize - 1],
            "{context}: payload of LSN {lsn}"
        );
    }
    for &(first, end) in &m.batches {
        if m.maybe_truncated == Some(last) {
            break; // an interrupted rollback completed and cut a batch there on purpose
        }
        ensure!(
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

/// The body of the `log_ops` fuzz target: a configuration and at most 64 operations decoded
/// from `data`, run on the in-memory storage; panics with what broke the contract.
pub(crate) fn run_bytes(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(config) = Config::from_bytes(&mut u) else {
        return;
    };
    let ops = Op::sequence_from_bytes(&mut u, 64);
    if let Err(e) = run(&Bed::mem(config.clone()), &ops) {
        panic!("{e}\nconfig: {config:?}\noperations: {ops:#?}");
    }
}

#[cfg(test)]
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..300, any::<bool>()).prop_map(|(n, s)| Op::Append(n, s)),
        2 => (1usize..20_000, any::<bool>()).prop_map(|(n, s)| Op::Append(n + 60_000, s)),
        3 => (2usize..6, any::<bool>()).prop_map(|(n, s)| Op::Batch(n, s)),
        1 => any::<bool>().prop_map(Op::Roll),
        2 => Just(Op::Sync),
        1 => (0u64..30).prop_map(Op::Checkpoint),
        1 => (0u64..30).prop_map(Op::TruncateAfter),
        1 => Just(Op::Reset),
        1 => (1u64..40).prop_map(Op::Fault),
        1 => (0u64..20_000).prop_map(Op::DiskFull),
        1 => (0u8..3, any::<u64>()).prop_map(|(m, seed)| Op::Crash(m, seed)),
        1 => Just(Op::Reopen),
    ]
}

#[cfg(test)]
fn run_on(bed: &Bed, ops: &[Op]) -> std::result::Result<(), TestCaseError> {
    run(bed, ops).map_err(TestCaseError::fail)
}

#[cfg(test)]
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
        run_on(&Bed::mem(Config::default()), &ops)?;
    }
}

#[cfg(test)]
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
        let bed = Bed::std(Config::default());
        prop_assert!(bed.dir.parent().is_some_and(std::path::Path::exists));
        run_on(&bed, &ops)?;
    }
}
