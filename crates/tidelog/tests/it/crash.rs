//! Crash simulation: a scripted workload is cut at every storage operation in turn, the
//! in-memory storage crashes (dropping unsynced bytes, or keeping a torn prefix of them), and the
//! reopened log is checked against a model of what was appended and acknowledged.
//!
//! The scripted workload, its model and the check of a reopened log are shared with the fault
//! injection tests (`faults.rs`), which run the same script with one fault at each storage call.

use std::path::Path;
use std::sync::Arc;

use tidelog::io::{CrashMode, FaultPlan, FaultyStorage, MemStorage, Storage};
use tidelog::{Durability, Error, Log, Lsn, Result};

use crate::common::SEGMENT_BYTES;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    Append(Durability),
    /// A record large enough to be written in place, header and payload apart.
    Large(Durability),
    Batch(usize, Durability),
    Sync,
    /// Checkpoint at `last - n`.
    Checkpoint(u64),
    /// Truncate after `last - n`.
    TruncateAfter(u64),
    Reset,
    /// Reset to `last + 1 + n`, skipping `n` LSNs.
    ResetTo(u64),
    /// `Log::roll`: the segment sealed, a new one started.
    Roll,
}

pub(crate) fn script() -> Vec<Step> {
    use Durability::{Buffered, Synced};
    let mut steps = Vec::new();
    for round in 0..3 {
        steps.extend([Step::Append(Buffered); 5]);
        steps.push(Step::Batch(3, Buffered));
        steps.push(Step::Large(Buffered));
        steps.push(Step::Sync);
        steps.push(Step::Large(Synced));
        steps.push(Step::Append(Synced));
        steps.push(Step::Batch(4, Synced));
        steps.push(Step::Roll);
        steps.extend([Step::Append(Buffered); 30]);
        steps.push(Step::Sync);
        steps.push(Step::Checkpoint(10));
        steps.push(Step::Batch(5, Buffered));
        steps.push(Step::TruncateAfter(2));
        steps.push(Step::Append(Synced));
        steps.extend([Step::Append(Buffered); 40]);
        if round == 0 {
            // Buffered records go out with the seal.
            steps.push(Step::Roll);
        }
        steps.push(Step::Batch(2, Synced));
        if round == 1 {
            steps.push(Step::Reset);
            steps.push(Step::Append(Synced));
        }
        if round == 2 {
            steps.push(Step::ResetTo(57));
            steps.extend([Step::Append(Buffered); 3]);
            steps.push(Step::Append(Synced));
        }
    }
    // A rollback across a segment boundary to the end of a batch (the later segment removed,
    // the earlier one cut short), then a checkpoint that has records to sync first.
    steps.extend([Step::Append(Buffered); 80]);
    steps.push(Step::Sync);
    steps.push(Step::TruncateAfter(70));
    steps.extend([Step::Append(Buffered); 3]);
    steps.push(Step::Checkpoint(1));
    steps
}

/// What the test knows about the log it drove.
#[derive(Debug, Default)]
pub(crate) struct Model {
    /// `payloads[i]` is the record at LSN `i + 1` (possibly not acknowledged).
    payloads: Vec<Vec<u8>>,
    /// Batches as LSN ranges.
    batches: Vec<(u64, u64)>,
    /// Every record up to here was acknowledged durable.
    pub(crate) acked: u64,
    pub(crate) checkpoint: u64,
    /// The step that failed, if any: its effect may or may not have happened.
    pub(crate) failed: Option<Step>,
    /// The error the failed step returned.
    pub(crate) error: Option<Error>,
    /// The checkpoint the failed step would have set.
    pub(crate) failed_checkpoint: Option<u64>,
    /// The LSN a failed `truncate_after` was truncating to: it may have completed, which cuts
    /// a batch there on purpose.
    failed_truncation: Option<u64>,
}

impl Model {
    pub(crate) fn last(&self) -> u64 {
        self.payloads.len() as u64
    }

    /// Records `data` as appended alone at the next LSN.
    pub(crate) fn push_record(&mut self, data: &[u8]) {
        self.payloads.push(data.to_vec());
        let lsn = self.last();
        self.batches.push((lsn, lsn));
    }

    fn push(&mut self, n: usize, step_no: usize) -> Vec<Vec<u8>> {
        self.push_sized(n, step_no, |lsn| (lsn * 13 % 60) as usize)
    }

    fn push_sized(&mut self, n: usize, step_no: usize, pad: impl Fn(u64) -> usize) -> Vec<Vec<u8>> {
        let first = self.last() + 1;
        let records: Vec<Vec<u8>> = (0..n as u64)
            .map(|i| {
                let lsn = first + i;
                let mut p = format!("step {step_no} lsn {lsn} ").into_bytes();
                p.resize(p.len() + pad(lsn), b'x');
                p
            })
            .collect();
        self.payloads.extend(records.iter().cloned());
        self.batches.push((first, first + n as u64 - 1));
        records
    }

    pub(crate) fn truncate(&mut self, lsn: u64) {
        self.payloads.truncate(lsn as usize);
        self.batches.retain(|b| b.0 <= lsn);
        if let Some(b) = self.batches.last_mut() {
            b.1 = b.1.min(lsn);
        }
        self.acked = self.acked.min(lsn);
    }
}

/// Runs the script until the first error; returns the model of what happened.
pub(crate) fn run(log: &Log) -> Model {
    run_observed(log, |_| {})
}

/// As [`run`], calling `before` with the number of each step before it runs.
pub(crate) fn run_observed(log: &Log, mut before: impl FnMut(usize)) -> Model {
    let mut m = Model::default();
    for (no, step) in script().into_iter().enumerate() {
        before(no);
        let result = (|| -> Result<()> {
            match step {
                Step::Append(d) => {
                    let rec = m.push(1, no);
                    let lsn = log.append(&rec[0], d)?;
                    assert_eq!(lsn.get(), m.last());
                    if d == Durability::Synced {
                        m.acked = lsn.get();
                    }
                }
                Step::Large(d) => {
                    let rec = m.push_sized(1, no, |lsn| 70_000 + lsn as usize);
                    let lsn = log.append(&rec[0], d)?;
                    assert_eq!(lsn.get(), m.last());
                    if d == Durability::Synced {
                        m.acked = lsn.get();
                    }
                }
                Step::Batch(n, d) => {
                    let recs = m.push(n, no);
                    let (_, last) = log.append_batch(&recs, d)?;
                    assert_eq!(last.get(), m.last());
                    if d == Durability::Synced {
                        m.acked = last.get();
                    }
                }
                Step::Sync => {
                    log.sync()?;
                    m.acked = m.last();
                }
                Step::Checkpoint(back) => {
                    let cp = m.last().saturating_sub(back).max(1);
                    m.failed_checkpoint = Some(cp.max(m.checkpoint));
                    log.checkpoint(Lsn::new(cp))?;
                    m.acked = m.acked.max(cp - 1);
                    m.checkpoint = m.checkpoint.max(cp);
                }
                Step::TruncateAfter(back) => {
                    let lsn = m
                        .last()
                        .saturating_sub(back)
                        .max(m.checkpoint.saturating_sub(1));
                    m.failed_truncation = Some(lsn);
                    log.truncate_after(Lsn::new(lsn))?;
                    m.truncate(lsn);
                    m.acked = lsn;
                }
                Step::Reset => {
                    m.failed_checkpoint = Some(m.last() + 1);
                    log.reset()?;
                    m.checkpoint = m.last() + 1;
                    m.acked = m.last();
                }
                Step::Roll => {
                    log.roll()?;
                    // The sealed segment, holding every record, is synced.
                    m.acked = m.last();
                }
                Step::ResetTo(skip) => {
                    // The skipped LSNs lie below the new checkpoint: never read, whether the
                    // reset happened or not.
                    let next = m.last() + 1 + skip;
                    m.failed_checkpoint = Some(next);
                    m.payloads
                        .resize(next as usize - 1, b"skipped by a reset".to_vec());
                    log.reset_to(Lsn::new(next))?;
                    m.checkpoint = next;
                    m.acked = next - 1;
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            m.failed = Some(step);
            m.error = Some(e);
            return m;
        }
        m.failed_checkpoint = None;
        m.failed_truncation = None;
    }
    m
}

/// The record [`verify_at`] appends to the recovered log.
pub(crate) const AFTER_RECOVERY: &[u8] = b"after recovery";

/// Reopens the crashed storage and checks the recovered log against the model.
fn verify(storage: &MemStorage, m: &Model, context: &str) -> Result<()> {
    verify_at(
        &(Arc::new(storage.clone()) as Arc<dyn Storage>),
        Path::new("/log"),
        m,
        context,
    )?;
    Ok(())
}

/// Reopens the log in `dir` and checks the recovered log against the model; then appends a
/// record (durably) and returns its LSN.
pub(crate) fn verify_at(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    m: &Model,
    context: &str,
) -> Result<Lsn> {
    let open = || {
        Log::builder(dir)
            .storage(Arc::clone(storage))
            .segment_bytes(SEGMENT_BYTES)
            .trust_seals(TRUST_SEALS.get())
            .open()
    };
    let log = match open() {
        Ok(log) => log,
        Err(e) => panic!("{context}: reopen failed: {e}"),
    };
    let cp = log.checkpoint_lsn().get();
    let last = log.last_lsn().get();
    let allowed_cp = [Some(m.checkpoint.max(1)), m.failed_checkpoint];
    assert!(
        allowed_cp.contains(&Some(cp)),
        "{context}: checkpoint {cp}, model {m:?}"
    );
    // Records a failed truncate was removing may or may not be there; below it they must be.
    let mut required = m.acked;
    if let (Some(Step::TruncateAfter(_)), Some(lsn)) = (m.failed, m.failed_truncation) {
        required = required.min(lsn);
    }
    if cp <= required {
        assert!(
            last >= required,
            "{context}: acknowledged LSN {required} lost (last {last})"
        );
    }
    assert!(
        last <= m.last(),
        "{context}: LSN {last} invented (model has {})",
        m.last()
    );
    let records: Vec<(u64, Vec<u8>)> = log
        .iter()?
        .map(|r| r.map(|r| (r.lsn().get(), r.into_data())))
        .collect::<Result<_>>()?;
    let expected: Vec<u64> = (cp..=last).collect();
    let got: Vec<u64> = records.iter().map(|r| r.0).collect();
    assert_eq!(
        got, expected,
        "{context}: LSNs not contiguous from the checkpoint"
    );
    for (lsn, data) in &records {
        assert_eq!(
            data,
            &m.payloads[*lsn as usize - 1],
            "{context}: payload of LSN {lsn}"
        );
    }
    for &(first, end) in &m.batches {
        if m.failed_truncation == Some(last) {
            break; // the interrupted rollback completed
        }
        assert!(
            !(first <= last && last < end),
            "{context}: batch {first}..={end} cut at {last}"
        );
    }
    // The recovered log takes appends, and a second recovery finds nothing more to do.
    let next = log.append(AFTER_RECOVERY, Durability::Synced)?;
    assert_eq!(next.get(), last.max(cp - 1) + 1, "{context}");
    drop(log);
    let log = open()?;
    assert!(
        log.recovery_report().is_clean(),
        "{context}: {}",
        log.recovery_report()
    );
    assert_eq!(log.last_lsn(), next);
    Ok(next)
}

std::thread_local! {
    /// Whether [`verify_at`] reopens trusting seals (`Options::trust_seals`), on this thread.
    static TRUST_SEALS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A crash at every storage operation of the script (recycling on, so a trusted segment may be a
/// recycled file), each log reopened trusting the seals of its sealed segments: a roll syncs a segment's frames and its seal before the next segment
/// exists, so what a crash leaves in a sealed segment is what its seal says, and nothing
/// acknowledged is lost, nothing invented, whatever the crash.
#[test]
fn opens_that_trust_seals_after_a_crash_at_every_op_keep_acknowledged_records() -> Result<()> {
    TRUST_SEALS.set(true);
    let result = crash_at_every_op_with(
        |n| match n % 3 {
            0 => CrashMode::DropUnsynced,
            1 => CrashMode::Torn { seed: n },
            _ => CrashMode::Reordered { seed: n },
        },
        true,
    );
    TRUST_SEALS.set(false);
    result
}

/// Small segments and a write-through buffer, so the script makes many storage operations.
fn builder(storage: Arc<dyn Storage>, recycle: bool) -> tidelog::LogBuilder {
    Log::builder("/log")
        .storage(storage)
        .segment_bytes(SEGMENT_BYTES)
        .write_buffer_bytes(0)
        .recycle_segments(recycle)
}

fn crash_at_every_op(mode_for: impl Fn(u64) -> CrashMode) -> Result<()> {
    crash_at_every_op_with(mode_for, false)
}

fn crash_at_every_op_with(mode_for: impl Fn(u64) -> CrashMode, recycle: bool) -> Result<()> {
    // Count the operations of a clean run.
    let mem = MemStorage::new();
    let faulty = FaultyStorage::new(Arc::new(mem.clone()), FaultPlan::new());
    let model = run(&builder(Arc::new(faulty.clone()), recycle).open()?);
    assert!(model.failed.is_none());
    let total = faulty.mutating_ops();
    assert!(
        total > 300,
        "the script exercises the storage ({total} ops)"
    );
    eprintln!("script: {total} mutating storage operations");

    for n in 0..=total {
        let mem = MemStorage::new();
        let faulty = FaultyStorage::new(Arc::new(mem.clone()), FaultPlan::new().fail_after(n));
        let opened = builder(Arc::new(faulty), recycle).open();
        let model = match opened {
            Ok(log) => {
                let m = run(&log);
                std::mem::forget(log); // the process dies: no drop-time sync
                m
            }
            Err(_) => Model::default(),
        };
        let mode = mode_for(n);
        mem.crash(mode);
        verify(
            &mem,
            &model,
            &format!("crash after op {n} of {total} ({mode:?})"),
        )?;
    }
    Ok(())
}

#[test]
fn crash_dropping_unsynced_data_at_every_op_keeps_acknowledged_records() -> Result<()> {
    crash_at_every_op(|_| CrashMode::DropUnsynced)
}

#[test]
fn torn_crash_at_every_op_keeps_acknowledged_records() -> Result<()> {
    crash_at_every_op(|n| CrashMode::Torn { seed: n })
}

#[test]
fn reordered_crash_at_every_op_keeps_acknowledged_records() -> Result<()> {
    // Unsynced writes reach the disk in any order: holes followed by intact frames in the
    // unsynced tail are cut as a torn tail, never reported as corruption.
    crash_at_every_op(|n| CrashMode::Reordered { seed: n })
}

#[test]
fn crash_at_every_op_with_recycled_segments_keeps_acknowledged_records() -> Result<()> {
    crash_at_every_op_with(
        |n| match n % 3 {
            0 => CrashMode::DropUnsynced,
            1 => CrashMode::Torn { seed: n },
            _ => CrashMode::Reordered { seed: n },
        },
        true,
    )
}

#[test]
fn torn_crash_with_many_seeds_at_a_busy_point() -> Result<()> {
    for seed in 0..300 {
        let mem = MemStorage::new();
        let log = Log::builder("/log")
            .storage(Arc::new(mem.clone()))
            .segment_bytes(SEGMENT_BYTES)
            .write_buffer_bytes(64)
            .open()?;
        let m = run(&log);
        // Leave some unsynced records behind.
        for i in 0..7u64 {
            log.append(format!("tail {i}").as_bytes(), Durability::Buffered)?;
        }
        std::mem::forget(log);
        mem.crash(if seed % 2 == 0 {
            CrashMode::Torn { seed }
        } else {
            CrashMode::Reordered { seed }
        });
        let mut m = m;
        for i in 0..7u64 {
            m.payloads.push(format!("tail {i}").into_bytes());
            let lsn = m.last();
            m.batches.push((lsn, lsn));
        }
        verify(&mem, &m, &format!("torn crash seed {seed}"))?;
    }
    Ok(())
}

#[test]
fn concurrent_synced_appenders_lose_nothing_acknowledged_in_a_crash() -> Result<()> {
    for round in 0..6u64 {
        let mem = MemStorage::new();
        let log = Arc::new(
            Log::builder("/log")
                .storage(Arc::new(mem.clone()))
                .segment_bytes(SEGMENT_BYTES)
                .open()?,
        );
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0.. {
                        let data = format!("thread {t} record {i}").into_bytes();
                        let d = if i % 3 == 0 {
                            Durability::Buffered
                        } else {
                            Durability::Synced
                        };
                        match log.append(&data, d) {
                            Ok(lsn) if d == Durability::Synced => acked.push((lsn, data)),
                            Ok(_) => {}
                            Err(_) => break,
                        }
                        if i > 5000 {
                            break;
                        }
                    }
                    acked
                })
            })
            .collect();
        // Let the threads run for a while, then pull the plug under them.
        while log.durable_lsn().get() < 200 + round * 100 {
            std::thread::yield_now();
        }
        mem.crash(match round % 3 {
            0 => CrashMode::DropUnsynced,
            1 => CrashMode::Torn { seed: round },
            _ => CrashMode::Reordered { seed: round },
        });
        let acked: Vec<(Lsn, Vec<u8>)> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("thread"))
            .collect();
        if let Ok(log) = Arc::try_unwrap(log) {
            std::mem::forget(log);
        }
        let log = Log::builder("/log")
            .storage(Arc::new(mem.clone()))
            .segment_bytes(SEGMENT_BYTES)
            .open()?;
        assert!(!acked.is_empty());
        for (lsn, data) in &acked {
            assert_eq!(
                log.read(*lsn)?.data(),
                &data[..],
                "round {round}: acked LSN {lsn}"
            );
        }
        let all: Vec<u64> = log
            .iter()?
            .map(|r| r.map(|r| r.lsn().get()))
            .collect::<Result<_>>()?;
        assert_eq!(all, (1..=log.last_lsn().get()).collect::<Vec<_>>());
    }
    Ok(())
}

#[test]
fn a_new_log_in_a_new_nested_directory_survives_a_crash() -> Result<()> {
    // Nothing of the path exists yet: every directory of it is created by the open (a relative
    // path's directories are created in the current directory).
    let modes = [
        CrashMode::DropUnsynced,
        CrashMode::Torn { seed: 1 },
        CrashMode::Reordered { seed: 2 },
    ];
    let cases = ["/data/logs/app", "data/logs/app"]
        .into_iter()
        .flat_map(|dir| modes.map(|mode| (dir, mode)));
    for (round, (dir, mode)) in cases.enumerate() {
        let mem = MemStorage::new();
        let open = || {
            Log::builder(dir)
                .storage(Arc::new(mem.clone()) as Arc<dyn Storage>)
                .segment_bytes(SEGMENT_BYTES)
                .open()
        };
        let log = open()?;
        let acked: Vec<(Lsn, Vec<u8>)> = (0..20u64)
            .map(|i| {
                let data = format!("round {round} record {i}").into_bytes();
                log.append(&data, Durability::Synced).map(|lsn| (lsn, data))
            })
            .collect::<Result<_>>()?;
        std::mem::forget(log); // the process dies with the machine
        mem.crash(mode);
        let log = open()?;
        assert_eq!(
            log.last_lsn(),
            Lsn::new(20),
            "{dir}, {mode:?}: the acknowledged records of the new log survive"
        );
        for (lsn, data) in &acked {
            assert_eq!(
                log.read(*lsn)?.data(),
                &data[..],
                "{dir}, {mode:?}: LSN {lsn}"
            );
        }
    }
    Ok(())
}
