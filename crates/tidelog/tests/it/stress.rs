//! Stress: every operation that changes the log runs beside everything that watches it, for a
//! bounded number of seeded rounds, on both backends.
//!
//! Changers: two appenders (single records and batches, `Buffered` and `Synced`, now and then a
//! record large enough to skip the write buffer) and a maintenance thread that checkpoints,
//! rolls back (`truncate_after`), resets and syncs in a seeded order; the background syncer
//! runs too (`SyncPolicy::Interval` in one configuration, `SyncPolicy::Bytes` with preallocated
//! and recycled segments and a small write buffer in the other). Watchers: a tail, an iterator
//! thread (whole-log passes, `iter_from`, `read`), and a thread waiting for durability
//! (`wait_durable`, `wait_durable_timeout`, `durable` futures).
//!
//! Payloads check themselves: each names its appender, its sequence number in that appender,
//! the rollback count the appender saw before appending (its generation tag), its place in its
//! batch, and ends with a checksum. An appender cannot know its LSN before the append returns
//! (the other appender races it), so it publishes the LSN it got in a lock-free ledger right
//! after; a reader checks each record against the ledger at once, or at the end if the
//! appender had not published it yet. So a record read at the wrong LSN, a stale record, or a
//! torn or mixed payload is caught.
//!
//! What must hold is checked in the threads and at the end:
//!
//! - no call fails, except as the contract allows: `RolledBack` for appends, waiters, futures,
//!   iterators, reads and tails whose records a rollback removed (and only while a rollback
//!   ran), `BelowCheckpoint` for a reader a checkpoint or reset passed, `InvalidLsn` or
//!   `NotDurable` for an LSN a rollback took away between looking and asking;
//! - every record read carries its own LSN and a valid payload; what one reader sees is one
//!   history (each appender's records in order, batches whole unless a rollback cut them);
//! - a `RolledBack { to, .. }` names the point of a rollback that began while the caller
//!   waited or read;
//! - a tail yields every LSN once, in order, except right after `RolledBack { to, .. }`, when
//!   it goes on from `to + 1`; read to the end after the run, the records it returned less
//!   those the rollbacks it reported took back are exactly the log's;
//! - an iterator yields a dense run up to its last LSN, or a prefix and then `RolledBack`, and
//!   never a record appended after a rollback that began after it was made (the payload's
//!   generation tag tells);
//! - an `Ok` from `wait_durable(l)`, a `durable(l)` future or a `Synced` append means the durable
//!   LSN is at least `l` right after, unless a rollback ran meanwhile;
//! - every rollback and reset shows in `segment_events`, and what an archiver following the
//!   events would hold matches the sealed segments of the log at the end;
//! - at the end, each appended record is in the log exactly where it must be (it survived
//!   every rollback that began after it was appended) and nowhere it must not be (a rollback
//!   below it began after it was appended); after `close` and a reopen the recovery report is
//!   clean and the log holds exactly what the last iteration before `close` returned.
//!
//! A failure names the seed (`TIDELOG_STRESS_SEED` replays it; `TIDELOG_STRESS_ROUNDS` sets how
//! many appends each appender makes), the backend, the configuration, the thread, its round and
//! its operation. The interleaving of the threads is not reproducible, only their choices. A
//! watchdog prints what each thread was doing and aborts a run that hangs.
//!
//! The defects the test found are reproduced on their own at the end of this module, as
//! regression tests. [`EVENTS_MAY_TRAIL_SEALS`] and [`READERS_MAY_SEE_A_ROLLBACK_EARLY`] turn
//! back on the narrow tolerance of their symptoms the test had while they stood.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tidelog::{
    DEFAULT_WRITE_BUFFER_BYTES, Durability, Error, Log, LogBuilder, Lsn, Record, SegmentEvent,
    SegmentInfo, SyncPolicy,
};

use crate::common::{Env, SEGMENT_BYTES};
use crate::hardening::block_on;
use crate::hooked::{HeldSyncs, HookedStorage};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The seed when `TIDELOG_STRESS_SEED` is not set.
const DEFAULT_SEED: u64 = 0x5EED_7A11_0601_2024;
/// Appends (single records or batches) each appender makes, unless `TIDELOG_STRESS_ROUNDS`
/// says otherwise: on `MemStorage`, and on the disk (where the syncs take most of the time).
/// Each run takes about a second on a two-core machine.
const DEFAULT_ROUNDS_MEM: u64 = 20_000;
const DEFAULT_ROUNDS_STD: u64 = 2_500;
/// The maintenance thread makes one operation for this many rounds of each appender, spread
/// over their run.
const ROUNDS_PER_MAINTENANCE: u64 = 6;
const APPENDERS: u32 = 2;
/// Largest batch.
const MAX_BATCH: u64 = 8;
/// One append in this many is `Synced`.
const SYNCED_ONE_IN: u64 = 8;
/// One record in this many is large enough (with its batch) to be written past the buffer.
const LARGE_ONE_IN: u64 = 400;
const LARGE_FILLER: u64 = 70 << 10;
/// Small records carry up to this many filler bytes.
const MAX_FILLER: u64 = 300;
/// How long a run may take before the watchdog gives up on it (it prints what every thread was
/// doing and aborts: a hang cannot be turned into a failure otherwise).
const WATCHDOG: Duration = Duration::from_secs(180);

/// One way to open the log.
#[derive(Debug, Clone, Copy)]
struct Config {
    name: &'static str,
    sync_policy: SyncPolicy,
    preallocate: bool,
    recycle: bool,
    write_buffer_bytes: usize,
}

/// The interval syncer; files grow as they are written.
const INTERVAL: Config = Config {
    name: "interval syncer",
    sync_policy: SyncPolicy::Interval(Duration::from_millis(1)),
    preallocate: false,
    recycle: false,
    write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
};

/// The byte-count syncer, preallocated and recycled segment files, and a write buffer small
/// enough that appenders write out full buffers beside each other.
const BYTES: Config = Config {
    name: "byte-count syncer, preallocated and recycled segments",
    sync_policy: SyncPolicy::Bytes(2048),
    preallocate: true,
    recycle: true,
    write_buffer_bytes: 1024,
};

/// Segments of 4 KiB (`env.builder()`), so the log rolls every 15 records or so.
fn builder(env: &Env, config: &Config) -> LogBuilder {
    env.builder()
        .sync_policy(config.sync_policy)
        .preallocate(config.preallocate)
        .recycle_segments(config.recycle)
        .write_buffer_bytes(config.write_buffer_bytes)
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim();
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={value:?} is not a number")))
}

// ---------------------------------------------------------------------------------------------
// Seeded choices
// ---------------------------------------------------------------------------------------------

/// splitmix64: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 for `n == 0`).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// A number in `lo..=hi` (`lo` if `hi < lo`).
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

// ---------------------------------------------------------------------------------------------
// Self-checking payloads
// ---------------------------------------------------------------------------------------------

const MAGIC: &[u8; 4] = b"TLST";
/// Magic, writer, sequence number, generation tag, index and size of the batch, filler length.
const HEAD: usize = 4 + 4 + 8 + 8 + 2 + 2 + 4;
const CHECKSUM: usize = 8;

/// What a payload says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    writer: u32,
    /// The record's sequence number in its appender (records of a batch are consecutive).
    seq: u64,
    /// How many rollbacks had finished when the appender appended it.
    generation: u64,
    index: u16,
    batch: u16,
}

impl Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "writer {} seq {} (generation {}, record {} of a batch of {})",
            self.writer,
            self.seq,
            self.generation,
            self.index + 1,
            self.batch
        )
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

fn encode(stamp: &Stamp, filler: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(HEAD + filler + CHECKSUM);
    p.extend_from_slice(MAGIC);
    p.extend_from_slice(&stamp.writer.to_le_bytes());
    p.extend_from_slice(&stamp.seq.to_le_bytes());
    p.extend_from_slice(&stamp.generation.to_le_bytes());
    p.extend_from_slice(&stamp.index.to_le_bytes());
    p.extend_from_slice(&stamp.batch.to_le_bytes());
    p.extend_from_slice(&u32::try_from(filler).expect("small filler").to_le_bytes());
    let mut bytes = Rng::new(stamp.seq, u64::from(stamp.writer) + 1);
    while p.len() < HEAD + filler {
        p.extend_from_slice(&bytes.next().to_le_bytes());
    }
    p.truncate(HEAD + filler);
    let sum = fnv1a(&p);
    p.extend_from_slice(&sum.to_le_bytes());
    p
}

fn decode(data: &[u8]) -> Result<Stamp, String> {
    let short = || format!("a payload of {} bytes is too short", data.len());
    if data.len() < HEAD + CHECKSUM {
        return Err(short());
    }
    let (body, sum) = data.split_at(data.len() - CHECKSUM);
    let field = |at: usize, len: usize| &body[at..at + len];
    let u16_at = |at| u16::from_le_bytes(field(at, 2).try_into().expect("2 bytes"));
    let u32_at = |at| u32::from_le_bytes(field(at, 4).try_into().expect("4 bytes"));
    let u64_at = |at| u64::from_le_bytes(field(at, 8).try_into().expect("8 bytes"));
    if field(0, 4) != MAGIC {
        return Err(format!("no magic: starts with {:02x?}", field(0, 8)));
    }
    let filler = u32_at(28) as usize;
    if HEAD + filler != body.len() {
        return Err(format!(
            "torn: says {filler} filler bytes, holds {}",
            body.len() - HEAD
        ));
    }
    let want = fnv1a(body);
    let got = u64::from_le_bytes(sum.try_into().expect("8 bytes"));
    if want != got {
        return Err(format!(
            "checksum {got:#018x}, content sums to {want:#018x} (torn or mixed)"
        ));
    }
    let stamp = Stamp {
        writer: u32_at(4),
        seq: u64_at(8),
        generation: u64_at(16),
        index: u16_at(24),
        batch: u16_at(26),
    };
    if stamp.writer >= APPENDERS || stamp.batch == 0 || stamp.index >= stamp.batch {
        return Err(format!("impossible stamp {stamp}"));
    }
    Ok(stamp)
}

// ---------------------------------------------------------------------------------------------
// What the threads share
// ---------------------------------------------------------------------------------------------

/// Where each appender publishes the LSN each of its records got: `slots[writer][seq]`, 0 until
/// the append returned.
struct Ledger {
    slots: Vec<Vec<AtomicU64>>,
}

impl Ledger {
    fn new(per_writer: u64) -> Self {
        let slots = (0..APPENDERS)
            .map(|_| (0..per_writer).map(|_| AtomicU64::new(0)).collect())
            .collect();
        Ledger { slots }
    }

    fn publish(&self, writer: u32, seq: u64, first: Lsn, n: u64) {
        for i in 0..n {
            self.slots[writer as usize][(seq + i) as usize].store(first.get() + i, SeqCst);
        }
    }

    /// `Err` for a sequence number never handed out, `Ok(None)` if not published yet.
    fn lsn_of(&self, writer: u32, seq: u64) -> Result<Option<u64>, String> {
        let slot = self.slots[writer as usize]
            .get(seq as usize)
            .ok_or_else(|| format!("writer {writer} never made a record {seq}"))?;
        Ok(Some(slot.load(SeqCst)).filter(|&l| l != 0))
    }
}

struct Shared {
    /// Seed, backend and configuration, for every message.
    run: String,
    /// Rollbacks begun and ended by the maintenance thread (counted before and after each call).
    rollbacks_started: AtomicU64,
    rollbacks_finished: AtomicU64,
    /// The point of each rollback begun (pushed before it is counted as begun).
    points: Mutex<Vec<u64>>,
    /// Appends returned so far, for pacing the maintenance thread.
    appends: AtomicU64,
    appenders_running: AtomicUsize,
    /// Set once the changers are done (or on the first failure): the watchers stop.
    stop: AtomicBool,
    failures: Mutex<Vec<String>>,
    /// How many departures the known reader defect explained, and the first few.
    excused: Mutex<(u64, Vec<String>)>,
    ledger: Ledger,
    /// What each thread is doing, for the watchdog.
    board: Vec<(String, Mutex<String>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn fail(&self, what: String) {
        let mut failures = lock(&self.failures);
        if failures.len() < 50 {
            failures.push(what);
        }
        self.stop.store(true, SeqCst);
    }

    /// Whether a rollback began after `finished_before` rollbacks had ended (so it may have run
    /// at any moment since then).
    fn rolled_back_since(&self, finished_before: u64) -> bool {
        self.rollbacks_started.load(SeqCst) > finished_before
    }

    /// Checks the point of a `RolledBack { to, .. }` told to a caller that began after
    /// `finished_before` rollbacks had ended: it is the lowest point of the rollbacks since the
    /// caller looked, so one of those begun since `finished_before`. A caller more rollbacks old
    /// than the log remembers (64) is told the lowest point it remembers, which may be older.
    fn began_since(&self, finished_before: u64, to: u64) -> Result<(), String> {
        const REMEMBERED: u64 = 64;
        let started = self.rollbacks_started.load(SeqCst);
        let points = lock(&self.points);
        let since = &points[(finished_before as usize).min(points.len())..];
        if since.contains(&to) || started - finished_before >= REMEMBERED {
            return Ok(());
        }
        Err(format!(
            "the rollbacks begun since the call went to {since:?}, none to {to}"
        ))
    }

    fn board(&self) -> String {
        self.board
            .iter()
            .map(|(name, doing)| format!("  {name}: {}", lock(doing)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One thread's handle on the run: its choices, its round and operation (for messages).
struct Worker {
    shared: Arc<Shared>,
    slot: usize,
    round: u64,
    op: String,
    rng: Rng,
}

impl Worker {
    fn new(shared: &Arc<Shared>, slot: usize, seed: u64) -> Self {
        Worker {
            shared: Arc::clone(shared),
            slot,
            round: 0,
            op: "starting".into(),
            rng: Rng::new(seed, slot as u64 + 1),
        }
    }

    fn name(&self) -> &str {
        &self.shared.board[self.slot].0
    }

    fn begin(&mut self, round: u64, op: String) {
        self.round = round;
        *lock(&self.shared.board[self.slot].1) = format!("round {round}: {op}");
        self.op = op;
    }

    fn fail(&self, what: impl Display) {
        self.shared.fail(format!(
            "{}: {}, round {}, {}: {what}",
            self.shared.run,
            self.name(),
            self.round,
            self.op
        ));
    }

    /// A reader's departure from the contract that the known defect explains, if a rollback
    /// was under way while it read (see [`READERS_MAY_SEE_A_ROLLBACK_EARLY`]): counted and
    /// printed, not failed. Returns whether it was excused (if not, the run has failed).
    fn excuse(&self, rollback_under_way: bool, what: impl Display) -> bool {
        if !(READERS_MAY_SEE_A_ROLLBACK_EARLY && rollback_under_way) {
            self.fail(what);
            return false;
        }
        let mut excused = lock(&self.shared.excused);
        excused.0 += 1;
        if excused.1.len() < 5 {
            excused.1.push(format!(
                "{}, round {}, {}: {what}",
                self.name(),
                self.round,
                self.op
            ));
        }
        true
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(SeqCst)
    }

    fn finished(&self) -> u64 {
        self.shared.rollbacks_finished.load(SeqCst)
    }

    /// Where the record was read, for a check deferred to the end.
    fn here(&self) -> String {
        format!("{}, round {}, {}", self.name(), self.round, self.op)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if thread::panicking() {
            self.fail("panicked");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks on what readers read
// ---------------------------------------------------------------------------------------------

/// A record read before its appender published its LSN: checked at the end.
struct Deferred {
    writer: u32,
    seq: u64,
    lsn: u64,
    context: String,
}

/// Checks a record read at `lsn`: a valid payload, batch flags that fit it, and the LSN its
/// appender got for it. Returns its stamp.
fn check_record(w: &Worker, record: &Record, deferred: &mut Vec<Deferred>) -> Option<Stamp> {
    let lsn = record.lsn().get();
    let stamp = match decode(record.data()) {
        Ok(stamp) => stamp,
        Err(e) => {
            w.fail(format!("LSN {lsn}: bad payload: {e}"));
            return None;
        }
    };
    if record.is_batch_start() != (stamp.index == 0) {
        w.fail(format!(
            "LSN {lsn} holds {stamp}, batch start flag {}",
            record.is_batch_start()
        ));
    }
    if stamp.index + 1 == stamp.batch && !record.is_batch_end() {
        w.fail(format!(
            "LSN {lsn} holds {stamp} without the batch end flag"
        ));
    }
    match w.shared.ledger.lsn_of(stamp.writer, stamp.seq) {
        Err(e) => w.fail(format!("LSN {lsn} holds {stamp}: {e}")),
        Ok(Some(at)) if at != lsn => w.fail(format!(
            "LSN {lsn} holds {stamp}, which was appended at LSN {at}"
        )),
        Ok(Some(_)) => {}
        Ok(None) => deferred.push(Deferred {
            writer: stamp.writer,
            seq: stamp.seq,
            lsn,
            context: w.here(),
        }),
    }
    Some(stamp)
}

/// Whether `next` may follow `prev` (read at the LSN before it) in one history: a batch goes on
/// with its next record, and a new batch starts after a batch end (a rollback that cut a batch
/// marks its last kept record as the end).
fn follows(prev: (Stamp, bool), next: &Stamp) -> Result<(), String> {
    let (prev, prev_end) = prev;
    let continues = next.writer == prev.writer
        && next.seq == prev.seq + 1
        && next.index == prev.index + 1
        && next.batch == prev.batch;
    if prev_end && next.index != 0 {
        return Err(format!("{next} follows the end of a batch ({prev})"));
    }
    if !prev_end && !continues {
        return Err(format!("{next} follows {prev}, which is not a batch end"));
    }
    Ok(())
}

/// What one reader has seen of the history: each appender's records in LSN order, which must be
/// in append order too.
#[derive(Default)]
struct History {
    per_writer: Vec<Vec<(u64, u64)>>,
}

impl History {
    fn push(&mut self, lsn: u64, stamp: &Stamp) -> Result<(), String> {
        if self.per_writer.is_empty() {
            self.per_writer = vec![Vec::new(); APPENDERS as usize];
        }
        let seen = &mut self.per_writer[stamp.writer as usize];
        if let Some(&(at, seq)) = seen.last()
            && seq >= stamp.seq
        {
            return Err(format!(
                "LSN {lsn} holds {stamp}, but LSN {at} before it holds that writer's seq {seq}"
            ));
        }
        seen.push((lsn, stamp.seq));
        Ok(())
    }

    /// Forgets what a rollback to `to` removed.
    fn roll_back(&mut self, to: u64) {
        for seen in &mut self.per_writer {
            while seen.last().is_some_and(|&(lsn, _)| lsn > to) {
                seen.pop();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Changers
// ---------------------------------------------------------------------------------------------

/// One append, as its appender saw it.
#[derive(Debug, Clone)]
struct Appended {
    writer: u32,
    seq: u64,
    n: u64,
    first: u64,
    /// Rollbacks ended before the call, and begun after it returned.
    finished_before: u64,
    started_after: u64,
    /// A `Synced` append's `RolledBack { to, .. }`.
    rolled_back_to: Option<u64>,
}

fn appender(log: &Log, mut w: Worker, writer: u32, rounds: u64) -> Vec<Appended> {
    let shared = Arc::clone(&w.shared);
    let mut done = Vec::new();
    let mut seq = 0;
    for round in 0..rounds {
        if w.stopped() {
            break;
        }
        let n = if w.rng.one_in(3) {
            w.rng.between(2, MAX_BATCH)
        } else {
            1
        };
        let durability = if w.rng.one_in(SYNCED_ONE_IN) {
            Durability::Synced
        } else {
            Durability::Buffered
        };
        let finished_before = w.finished();
        let records: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let filler = if w.rng.one_in(LARGE_ONE_IN) {
                    LARGE_FILLER
                } else {
                    w.rng.below(MAX_FILLER)
                };
                let stamp = Stamp {
                    writer,
                    seq: seq + i,
                    generation: finished_before,
                    index: i as u16,
                    batch: n as u16,
                };
                encode(&stamp, filler as usize)
            })
            .collect();
        w.begin(
            round,
            format!("append of {n} records from seq {seq}, {durability:?}"),
        );
        let got = if n == 1 {
            log.append(&records[0], durability).map(|l| (l, l))
        } else {
            log.append_batch(&records, durability)
        };
        let started_after = shared.rollbacks_started.load(SeqCst);
        let (first, rolled_back_to) = match got {
            Ok((first, last)) => {
                if last.get() + 1 - first.get() != n {
                    w.fail(format!("got LSNs {first}..={last} for {n} records"));
                    break;
                }
                if durability == Durability::Synced {
                    let durable = log.durable_lsn();
                    if durable < last && !shared.rolled_back_since(finished_before) {
                        w.fail(format!(
                            "returned {first}..={last} with the log durable to {durable} only"
                        ));
                    }
                }
                (first.get(), None)
            }
            Err(Error::RolledBack { lsn, to }) if durability == Durability::Synced => {
                if let Err(e) = shared.began_since(finished_before, to.get()) {
                    w.fail(format!("RolledBack {{ {lsn}, {to} }}: {e}"));
                }
                if to >= lsn {
                    w.fail(format!("RolledBack {{ {lsn}, {to} }}: {lsn} was kept"));
                }
                let Some(first) = lsn.get().checked_sub(n - 1).filter(|&f| f > 0) else {
                    w.fail(format!("RolledBack {{ {lsn}, {to} }} for a batch of {n}"));
                    break;
                };
                (first, Some(to.get()))
            }
            Err(e) => {
                w.fail(format!("unexpected {e:?}"));
                break;
            }
        };
        shared.ledger.publish(writer, seq, Lsn::new(first), n);
        shared.appends.fetch_add(1, SeqCst);
        done.push(Appended {
            writer,
            seq,
            n,
            first,
            finished_before,
            started_after,
            rolled_back_to,
        });
        seq += n;
    }
    w.begin(rounds, "done".into());
    done
}

/// The rollback and reset events the maintenance thread's own operation produced.
fn own_events(events: &Receiver<SegmentEvent>) -> Vec<SegmentEvent> {
    events
        .try_iter()
        .filter(|e| !matches!(e, SegmentEvent::Sealed(_)))
        .collect()
}

/// Checkpoints, rollbacks, resets, syncs and rolls, spread over the appenders' rounds. The point of
/// each rollback goes to `Shared::points`.
fn maintenance(log: &Log, mut w: Worker, rounds: u64, appends: u64) {
    let shared = Arc::clone(&w.shared);
    let events = log.segment_events();
    for round in 0..rounds {
        if w.stopped() {
            break;
        }
        // Pace: the appenders are about as far along as this thread.
        let due = appends * round / rounds;
        while shared.appends.load(SeqCst) < due
            && shared.appenders_running.load(SeqCst) > 0
            && !w.stopped()
        {
            thread::sleep(Duration::from_micros(100));
        }
        let checkpoint = log.checkpoint_lsn().get();
        let last = log.last_lsn().get();
        let pick = w.rng.below(100);
        if pick < 30 {
            let lsn = if w.rng.one_in(4) {
                last + 1
            } else {
                w.rng.between(checkpoint, last + 1)
            };
            w.begin(
                round,
                format!("checkpoint({lsn}) (checkpoint {checkpoint}, last {last})"),
            );
            if let Err(e) = log.checkpoint(Lsn::new(lsn)) {
                w.fail(format!("unexpected {e:?}"));
                break;
            }
            let now = log.checkpoint_lsn().get();
            if now != lsn.max(checkpoint) {
                w.fail(format!("the checkpoint is {now} after"));
            }
            let durable = log.durable_lsn().get();
            if durable + 1 < lsn {
                w.fail(format!("durable {durable} after"));
            }
            let own = own_events(&events);
            if !own.is_empty() {
                w.fail(format!("events {own:?}"));
            }
        } else if pick < 60 {
            let low = if w.rng.one_in(10) {
                checkpoint - 1
            } else {
                checkpoint
            };
            let high = last.max(low);
            let to = if w.rng.one_in(3) {
                w.rng.between(low, high)
            } else {
                high - w.rng.below((high - low).min(40) + 1)
            };
            w.begin(
                round,
                format!("truncate_after({to}) (checkpoint {checkpoint}, last {last})"),
            );
            lock(&shared.points).push(to);
            shared.rollbacks_started.fetch_add(1, SeqCst);
            let got = log.truncate_after(Lsn::new(to));
            shared.rollbacks_finished.fetch_add(1, SeqCst);
            if let Err(e) = got {
                w.fail(format!("unexpected {e:?}"));
                break;
            }
            let durable = log.durable_lsn().get();
            let effective = to < last;
            if effective && durable < to {
                w.fail(format!("durable {durable} after"));
            }
            let own = own_events(&events);
            let rolled_back = [SegmentEvent::RolledBack { to: Lsn::new(to) }];
            let ok = if effective {
                own == rolled_back
            } else {
                own.is_empty() || own == rolled_back
            };
            if !ok {
                w.fail(format!("events {own:?}"));
            }
        } else if pick < 65 {
            // Every other reset skips LSNs (`reset_to`): the appenders go on past a gap.
            let skip = round % 2 * (1 + round % 97);
            w.begin(
                round,
                format!("reset() skipping {skip} (checkpoint {checkpoint}, last {last})"),
            );
            let reset = loop {
                if skip == 0 {
                    break log.reset();
                }
                match log.reset_to(Lsn::new(log.last_lsn().get() + 1 + skip)) {
                    // The appenders went past the target between looking and asking.
                    Err(Error::InvalidLsn { .. }) => {}
                    other => break other,
                }
            };
            if let Err(e) = reset {
                w.fail(format!("unexpected {e:?}"));
                break;
            }
            let now = log.checkpoint_lsn();
            if now.get() <= last {
                w.fail(format!("the checkpoint is {now} after"));
            }
            if log.durable_lsn() < now.prev() {
                w.fail(format!("durable {} after", log.durable_lsn()));
            }
            let own = own_events(&events);
            if own != [SegmentEvent::Reset { next: now }] {
                w.fail(format!("events {own:?}"));
            }
        } else {
            // Every other sync is a roll, which syncs the segment it seals.
            let roll = round % 2 == 0;
            w.begin(
                round,
                format!("{}() (last {last})", if roll { "roll" } else { "sync" }),
            );
            let done = if roll { log.roll() } else { log.sync() };
            if let Err(e) = done {
                w.fail(format!("unexpected {e:?}"));
                break;
            }
            let durable = log.durable_lsn().get();
            if durable < last {
                w.fail(format!("durable {durable} after"));
            }
            let own = own_events(&events);
            if !own.is_empty() {
                w.fail(format!("events {own:?}"));
            }
        }
    }
    w.begin(rounds, "done".into());
}

// ---------------------------------------------------------------------------------------------
// Watchers
// ---------------------------------------------------------------------------------------------

/// What a watcher did, for the summary.
#[derive(Debug, Default)]
struct Seen {
    ops: u64,
    records: u64,
    rolled_back: u64,
    below_checkpoint: u64,
}

/// A tail and what the test knows of it: the next LSN it must return, the records it returned
/// that no rollback it reported has taken back (its view of the log), and what it saw.
struct TailWatch {
    tail: tidelog::Tail,
    /// Where it was (last) opened.
    start: u64,
    next: u64,
    history: History,
    /// LSN → writer and sequence number of each record returned and still in its view.
    view: BTreeMap<u64, (u32, u64)>,
    /// A tail looks for rollbacks when it is called, so one it reports may have run any time
    /// since the call before: rollbacks that had not ended before that call.
    finished_before_last_call: u64,
    seen: Seen,
    deferred: Vec<Deferred>,
}

impl TailWatch {
    /// A tail at the checkpoint (which may move meanwhile).
    fn open(log: &Log, w: &Worker) -> Option<TailWatch> {
        let finished_before = w.finished();
        loop {
            match log.tail(log.checkpoint_lsn().max(Lsn::FIRST)) {
                Ok(tail) => {
                    return Some(TailWatch {
                        start: tail.position().get(),
                        next: tail.position().get(),
                        tail,
                        history: History::default(),
                        view: BTreeMap::new(),
                        finished_before_last_call: finished_before,
                        seen: Seen::default(),
                        deferred: Vec::new(),
                    });
                }
                Err(Error::BelowCheckpoint { .. }) => {}
                Err(e) => {
                    w.fail(format!("tail(): unexpected {e:?}"));
                    return None;
                }
            }
        }
    }

    /// One call of the tail (`try_recv`, or `recv_timeout` for `wait`), checked. Returns
    /// whether it returned a record, or `None` once the run has failed.
    fn step(&mut self, log: &Log, w: &mut Worker, round: u64, wait: u64) -> Option<bool> {
        let next = self.next;
        let finished_before = w.finished();
        let since = std::mem::replace(&mut self.finished_before_last_call, finished_before);
        w.begin(round, format!("recv with timeout {wait} ms, at LSN {next}"));
        let got = if wait == 0 {
            self.tail.try_recv()
        } else {
            self.tail.recv_timeout(Duration::from_millis(wait))
        };
        self.seen.ops += 1;
        let under_way = w.shared.rolled_back_since(finished_before);
        match got {
            Ok(Some(record)) => {
                self.seen.records += 1;
                let lsn = record.lsn().get();
                if lsn != next
                    && !w.excuse(under_way, format!("yielded LSN {lsn}, expected {next}"))
                {
                    return None;
                }
                self.next = lsn + 1;
                if self.tail.position().get() != self.next {
                    w.fail(format!("position {} after LSN {lsn}", self.tail.position()));
                }
                if let Some(stamp) = check_record(w, &record, &mut self.deferred) {
                    if let Err(e) = self.history.push(lsn, &stamp) {
                        w.fail(e);
                    }
                    self.view.insert(lsn, (stamp.writer, stamp.seq));
                }
                return Some(true);
            }
            Ok(None) => {
                let at = self.tail.position().get();
                if at != next {
                    let what = format!("moved from LSN {next} to {at} without returning a record");
                    if !w.excuse(under_way, what) {
                        return None;
                    }
                    self.next = at;
                }
            }
            Err(Error::RolledBack { lsn, to }) => {
                self.seen.rolled_back += 1;
                let (lsn, to) = (lsn.get(), to.get());
                if lsn + 1 != next || to >= lsn {
                    let what = format!(
                        "RolledBack {{ lsn: {lsn}, to: {to} }} having returned up to {}",
                        next - 1
                    );
                    // The known defect: the tail moved past records the rollback was cutting
                    // (in this call, before it saw the rollback) and reports from there.
                    if to < lsn && lsn + 1 > next {
                        w.excuse(w.shared.rolled_back_since(since), what);
                    } else {
                        w.fail(what);
                    }
                }
                if let Err(e) = w.shared.began_since(since, to) {
                    w.fail(format!("RolledBack {{ lsn: {lsn}, to: {to} }}: {e}"));
                }
                self.next = to + 1;
                self.history.roll_back(to);
                self.view.retain(|&l, _| l <= to);
                if self.tail.position().get() != self.next {
                    w.fail(format!(
                        "position {} after RolledBack",
                        self.tail.position()
                    ));
                }
            }
            Err(Error::BelowCheckpoint { lsn, checkpoint }) => {
                self.seen.below_checkpoint += 1;
                if lsn.get() != next || checkpoint <= lsn {
                    w.fail(format!(
                        "BelowCheckpoint {{ lsn: {lsn}, checkpoint: {checkpoint} }} at {next}"
                    ));
                }
                let reopened = TailWatch::open(log, w)?;
                self.tail = reopened.tail;
                self.start = reopened.start;
                self.next = reopened.next;
                self.history = History::default();
                self.view.clear();
            }
            Err(e @ Error::Corrupt { .. }) => {
                if !w.excuse(under_way, format!("unexpected {e:?}")) {
                    return None;
                }
            }
            Err(e) => {
                w.fail(format!("unexpected {e:?}"));
                return None;
            }
        }
        Some(false)
    }
}

/// Reads the tail until the watchers stop; returns it for the check at the end.
fn tail_watcher(log: &Log, mut w: Worker) -> Option<TailWatch> {
    let mut watch = TailWatch::open(log, &w)?;
    let mut round = 0;
    while !w.stopped() || round == 0 {
        round += 1;
        let wait = w.rng.below(4);
        watch.step(log, &mut w, round, wait)?;
    }
    w.begin(round, "done".into());
    Some(watch)
}

/// Drains an iterator that starts at `from` (or somewhere in `from`, when the checkpoint could
/// move while it was made), checking that it yields a dense run of one history up to its last
/// LSN, or a prefix of it and then `RolledBack`.
fn drain(
    w: &mut Worker,
    iter: tidelog::Iter,
    from: std::ops::RangeInclusive<u64>,
    finished_before: u64,
    seen: &mut Seen,
    deferred: &mut Vec<Deferred>,
) {
    let last = iter.last_lsn().get();
    // At least the rollbacks begun before the iterator was made.
    let begun = w.shared.rollbacks_started.load(SeqCst);
    let mut history = History::default();
    let mut prev: Option<(u64, Stamp, bool)> = None;
    let mut ended = None;
    for item in iter {
        // Now and then hold the segments a while, so checkpoints and rollbacks pass under it.
        if w.rng.one_in(64) {
            thread::sleep(Duration::from_micros(w.rng.below(500)));
        }
        match item {
            Ok(record) => {
                seen.records += 1;
                let lsn = record.lsn().get();
                let expected = match prev {
                    Some((at, ..)) => at + 1..=at + 1,
                    None => from.clone(),
                };
                if !expected.contains(&lsn) || lsn > last {
                    w.excuse(
                        w.shared.rolled_back_since(finished_before),
                        format!("yielded LSN {lsn}, expected {expected:?} (last LSN {last})"),
                    );
                    return;
                }
                let Some(stamp) = check_record(w, &record, deferred) else {
                    return;
                };
                // Its generation tag: the record was appended after that many rollbacks ended.
                // One that ended after the iterator was made took the LSN from a record of
                // its range: the record appended since is not the iterator's to yield.
                if stamp.generation > begun {
                    w.fail(format!(
                        "LSN {lsn} holds {stamp}, appended after rollback {} ended; {begun} had \
                         begun when the iterator was made",
                        stamp.generation
                    ));
                    return;
                }
                if let Err(e) = history.push(lsn, &stamp) {
                    w.fail(e);
                }
                if let Some((_, p, end)) = prev
                    && let Err(e) = follows((p, end), &stamp)
                {
                    w.fail(format!("LSN {lsn}: {e}"));
                }
                prev = Some((lsn, stamp, record.is_batch_end()));
            }
            Err(e) => {
                ended = Some(e);
                break;
            }
        }
    }
    let next = prev.map_or(*from.start(), |(at, ..)| at + 1);
    match ended {
        None => {
            let through = prev.map(|(at, ..)| at);
            let complete = match through {
                Some(at) => at == last,
                None => *from.end() > last,
            };
            if !complete {
                w.excuse(
                    w.shared.rolled_back_since(finished_before),
                    format!("ended after {through:?} without an error; its last LSN is {last}"),
                );
            }
        }
        Some(Error::RolledBack { lsn, to }) => {
            seen.rolled_back += 1;
            if to >= lsn || lsn.get() < next || to.get() >= last {
                w.fail(format!(
                    "RolledBack {{ lsn: {lsn}, to: {to} }} at {next} (last LSN {last})"
                ));
            }
            if let Err(e) = w.shared.began_since(finished_before, to.get()) {
                w.fail(format!("RolledBack {{ lsn: {lsn}, to: {to} }}: {e}"));
            }
        }
        Some(e @ Error::Corrupt { .. }) => {
            w.excuse(
                w.shared.rolled_back_since(finished_before),
                format!("at LSN {next}: unexpected {e:?}"),
            );
        }
        Some(e) => w.fail(format!("at LSN {next}: unexpected {e:?}")),
    }
}

fn iter_watcher(log: &Log, mut w: Worker) -> (Seen, Vec<Deferred>) {
    let mut seen = Seen::default();
    let mut deferred = Vec::new();
    let mut round = 0;
    while !w.stopped() || round == 0 {
        round += 1;
        seen.ops += 1;
        let finished_before = w.finished();
        let checkpoint = log.checkpoint_lsn().get();
        let durable = log.durable_lsn().get();
        let pick = w.rng.below(10);
        if pick < 7 {
            w.begin(round, format!("iter() (checkpoint {checkpoint})"));
            let iter = match log.iter() {
                Ok(iter) => iter,
                Err(e) => {
                    w.fail(format!("unexpected {e:?}"));
                    break;
                }
            };
            let after = log.checkpoint_lsn().get();
            let from = checkpoint.max(1)..=after.max(1);
            drain(
                &mut w,
                iter,
                from,
                finished_before,
                &mut seen,
                &mut deferred,
            );
        } else if pick < 9 {
            let lsn = w
                .rng
                .between(checkpoint.saturating_sub(3).max(1), durable + 2);
            w.begin(round, format!("iter_from({lsn}) (checkpoint {checkpoint})"));
            match log.iter_from(Lsn::new(lsn)) {
                Ok(iter) => {
                    drain(
                        &mut w,
                        iter,
                        lsn..=lsn,
                        finished_before,
                        &mut seen,
                        &mut deferred,
                    );
                }
                Err(Error::BelowCheckpoint {
                    lsn: at,
                    checkpoint,
                }) => {
                    seen.below_checkpoint += 1;
                    if at.get() != lsn || checkpoint.get() <= lsn {
                        w.fail(format!(
                            "BelowCheckpoint {{ lsn: {at}, checkpoint: {checkpoint} }}"
                        ));
                    }
                }
                Err(e) => w.fail(format!("unexpected {e:?}")),
            }
        } else {
            let lsn = w.rng.between(checkpoint.max(1), durable.max(1));
            w.begin(
                round,
                format!("read({lsn}) (checkpoint {checkpoint}, durable {durable})"),
            );
            match log.read(Lsn::new(lsn)) {
                Ok(record) => {
                    seen.records += 1;
                    if record.lsn().get() != lsn {
                        w.fail(format!("read LSN {}", record.lsn()));
                    }
                    check_record(&w, &record, &mut deferred);
                }
                Err(Error::BelowCheckpoint {
                    lsn: at,
                    checkpoint,
                }) => {
                    seen.below_checkpoint += 1;
                    if at.get() != lsn || checkpoint.get() <= lsn {
                        w.fail(format!(
                            "BelowCheckpoint {{ lsn: {at}, checkpoint: {checkpoint} }}"
                        ));
                    }
                }
                Err(Error::NotDurable { .. }) if lsn > durable => {}
                Err(e @ Error::NotDurable { .. })
                    if !w.shared.rolled_back_since(finished_before) =>
                {
                    w.fail(format!("{e:?} with no rollback begun"));
                }
                Err(Error::NotDurable { .. }) => {}
                Err(Error::RolledBack { lsn: at, to }) => {
                    seen.rolled_back += 1;
                    if at.get() != lsn || to.get() >= lsn {
                        w.fail(format!("RolledBack {{ lsn: {at}, to: {to} }}"));
                    }
                    if let Err(e) = w.shared.began_since(finished_before, to.get()) {
                        w.fail(format!("RolledBack {{ lsn: {at}, to: {to} }}: {e}"));
                    }
                }
                Err(e) => w.fail(format!("unexpected {e:?}")),
            }
        }
    }
    w.begin(round, "done".into());
    (seen, deferred)
}

/// How the durability watcher waits for an LSN.
#[derive(Debug, Clone, Copy)]
enum Wait {
    Blocking,
    Timeout(u64),
    Future,
}

fn durability_watcher(log: &Log, mut w: Worker) -> Seen {
    let mut seen = Seen::default();
    let mut round = 0;
    while !w.stopped() || round == 0 {
        round += 1;
        let finished_before = w.finished();
        let checkpoint = log.checkpoint_lsn().get();
        let last = log.last_lsn().get();
        if last == 0 {
            thread::sleep(Duration::from_micros(100));
            continue;
        }
        seen.ops += 1;
        // Mostly LSNs near the end (not durable yet), some below the checkpoint.
        let count = w.rng.between(1, 3);
        let lsns: Vec<u64> = (0..count)
            .map(|_| {
                if w.rng.one_in(4) {
                    w.rng.between(checkpoint.saturating_sub(5).max(1), last)
                } else {
                    last - w.rng.below(last.min(20))
                }
            })
            .collect();
        let how = match w.rng.below(5) {
            0 | 1 => Wait::Blocking,
            2 => Wait::Timeout(w.rng.below(3)),
            _ => Wait::Future,
        };
        w.begin(
            round,
            format!("{how:?} for {lsns:?} (checkpoint {checkpoint}, last {last})"),
        );
        // Futures are all made first, then awaited, so several wait through the same rollback.
        let mut results: Vec<(u64, tidelog::Result<bool>)> = Vec::new();
        match how {
            Wait::Future => {
                let mut futures = Vec::new();
                for &lsn in &lsns {
                    match log.durable(Lsn::new(lsn)) {
                        Ok(future) => futures.push((lsn, future)),
                        Err(e) => results.push((lsn, Err(e))),
                    }
                }
                for (lsn, future) in futures {
                    // Now and then one is dropped unawaited.
                    if !w.rng.one_in(10) {
                        results.push((lsn, block_on(future).map(|()| true)));
                    }
                }
            }
            Wait::Blocking => {
                for &lsn in &lsns {
                    results.push((lsn, log.wait_durable(Lsn::new(lsn)).map(|()| true)));
                }
            }
            Wait::Timeout(ms) => {
                for &lsn in &lsns {
                    let got = log.wait_durable_timeout(Lsn::new(lsn), Duration::from_millis(ms));
                    results.push((lsn, got));
                }
            }
        }
        let durable = log.durable_lsn().get();
        let rolled_back = w.shared.rolled_back_since(finished_before);
        for (lsn, got) in results {
            match got {
                Ok(true) => {
                    if durable < lsn && !rolled_back {
                        w.fail(format!(
                            "LSN {lsn}: Ok, but the log is durable to {durable} after"
                        ));
                    }
                }
                Ok(false) => {}
                Err(Error::RolledBack { lsn: at, to }) => {
                    seen.rolled_back += 1;
                    if at.get() != lsn || to.get() >= lsn {
                        w.fail(format!("LSN {lsn}: RolledBack {{ lsn: {at}, to: {to} }}"));
                    }
                    if let Err(e) = w.shared.began_since(finished_before, to.get()) {
                        w.fail(format!(
                            "LSN {lsn}: RolledBack {{ lsn: {at}, to: {to} }}: {e}"
                        ));
                    }
                }
                Err(Error::InvalidLsn { .. }) if rolled_back => {}
                Err(e) => w.fail(format!("LSN {lsn}: unexpected {e:?}")),
            }
        }
    }
    w.begin(round, "done".into());
    seen
}

// ---------------------------------------------------------------------------------------------
// A run
// ---------------------------------------------------------------------------------------------

/// What a run gathered for the checks at the end.
struct Outcome {
    appended: Vec<Appended>,
    points: Vec<u64>,
    deferred: Vec<Deferred>,
    seen: Vec<(String, Seen)>,
    tail: Option<TailWatch>,
}

/// Prints what every thread is doing and aborts if the run is not done in time.
fn watchdog(shared: &Arc<Shared>) -> mpsc::Sender<()> {
    let (done, wait) = mpsc::channel::<()>();
    let shared = Arc::clone(shared);
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(WATCHDOG) {
            eprintln!(
                "{}: the stress run is stuck after {WATCHDOG:?}; what each thread was doing:\n{}\n\
                 failures so far: {:#?}",
                shared.run,
                shared.board(),
                lock(&shared.failures)
            );
            std::process::abort();
        }
    });
    done
}

fn joined<T>(shared: &Shared, name: &str, handle: thread::JoinHandle<T>) -> Option<T> {
    match handle.join() {
        Ok(value) => Some(value),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            shared.fail(format!("{}: {name} panicked: {message}", shared.run));
            None
        }
    }
}

fn run_threads(log: &Arc<Log>, shared: &Arc<Shared>, seed: u64, rounds: u64) -> Outcome {
    let slot = |name: &str| {
        shared
            .board
            .iter()
            .position(|(n, _)| n == name)
            .expect("a thread on the board")
    };
    let spawn = |name: &str| (Arc::clone(log), Worker::new(shared, slot(name), seed));

    let appenders: Vec<_> = (0..APPENDERS)
        .map(|writer| {
            let (log, w) = spawn(&format!("appender {writer}"));
            let running = Arc::clone(shared);
            thread::spawn(move || {
                /// Counts the appender out even if it panics.
                struct Leaving(Arc<Shared>);
                impl Drop for Leaving {
                    fn drop(&mut self) {
                        self.0.appenders_running.fetch_sub(1, SeqCst);
                    }
                }
                let _leaving = Leaving(running);
                appender(&log, w, writer, rounds)
            })
        })
        .collect();
    let maintenance = {
        let (log, w) = spawn("maintenance");
        let appends = rounds * u64::from(APPENDERS);
        let operations = (rounds / ROUNDS_PER_MAINTENANCE).max(1);
        thread::spawn(move || maintenance(&log, w, operations, appends))
    };
    let tail = {
        let (log, w) = spawn("tail");
        thread::spawn(move || tail_watcher(&log, w))
    };
    let iter = {
        let (log, w) = spawn("iterator");
        thread::spawn(move || iter_watcher(&log, w))
    };
    let durability = {
        let (log, w) = spawn("durability");
        thread::spawn(move || durability_watcher(&log, w))
    };

    let mut appended = Vec::new();
    for (writer, handle) in appenders.into_iter().enumerate() {
        if let Some(done) = joined(shared, &format!("appender {writer}"), handle) {
            appended.extend(done);
        }
    }
    joined(shared, "maintenance", maintenance);
    let points = lock(&shared.points).clone();
    shared.stop.store(true, SeqCst);
    let mut seen = Vec::new();
    let mut deferred = Vec::new();
    let mut tail = joined(shared, "tail", tail).flatten();
    if let Some(watch) = tail.as_mut() {
        deferred.append(&mut watch.deferred);
    }
    if let Some((s, d)) = joined(shared, "iterator", iter) {
        seen.push(("iterator".to_owned(), s));
        deferred.extend(d);
    }
    if let Some(s) = joined(shared, "durability", durability) {
        seen.push(("durability".to_owned(), s));
    }
    Outcome {
        appended,
        points,
        deferred,
        seen,
        tail,
    }
}

/// Reads the tail to the end of the log (every record is durable now, and nothing changes the
/// log any more), then compares what it holds with the records at the end: the records it
/// returned, less those the rollbacks it reported took back, must be exactly those of the log.
fn check_tail(log: &Log, shared: &Arc<Shared>, seed: u64, watch: &mut TailWatch, records: &Final) {
    let slot = shared
        .board
        .iter()
        .position(|(n, _)| n == "tail")
        .expect("the tail on the board");
    let mut w = Worker::new(shared, slot, seed);
    let (checkpoint, last) = (log.checkpoint_lsn().get(), log.last_lsn().get());
    let mut round = 0;
    while watch.next <= last {
        round += 1;
        if round > 2 * (last + 10) {
            w.fail(format!("at the end: stuck at LSN {} of {last}", watch.next));
            return;
        }
        if watch.step(log, &mut w, round, 0).is_none() {
            return;
        }
    }
    w.begin(round, "at the end".into());
    for lsn in watch.start.max(checkpoint)..=last {
        let held = watch.view.get(&lsn);
        let want = records.get(&lsn).map(|(s, ..)| (s.writer, s.seq));
        if held != want.as_ref() {
            w.fail(format!(
                "holds (writer, seq) {held:?} at LSN {lsn}, the log {want:?} (the tail started \
                 at {})",
                watch.start
            ));
            return;
        }
    }
}

/// Whether rollback and reset events may still come after the `Sealed` events of segments
/// sealed after the rollback or reset (the defect
/// `segment_events_report_a_rollback_before_the_seals_that_follow_it` shows). While they may,
/// what an archiver following the events holds at the end is compared with the log, but a
/// difference is printed rather than failed; that every sealed segment was announced is checked
/// either way.
const EVENTS_MAY_TRAIL_SEALS: bool = false;

/// Whether a reader may still see what a rollback does to the files before the rollback starts
/// its generation (the defects
/// `an_iterator_reading_while_a_rollback_cuts_its_segments_reports_the_rollback` and
/// `a_tail_reading_while_a_rollback_cuts_its_segments_skips_no_record` show): while it may, an
/// iterator or a tail that ends early, skips LSNs or reads damage while a rollback is under way
/// is counted and printed rather than failed. Everything else it reads is checked as usual.
const READERS_MAY_SEE_A_ROLLBACK_EARLY: bool = false;

/// What an archiver following `segment_events` learned.
#[derive(Default)]
struct Archive {
    /// The sealed segments it holds, by first LSN: each `Sealed` adds one, a rollback drops
    /// those with records after its point, a reset drops all.
    held: BTreeMap<u64, SegmentInfo>,
    /// Every segment announced as sealed.
    announced: Vec<SegmentInfo>,
    /// Where the events contradict themselves.
    contradictions: Vec<String>,
}

fn follow(shared: &Shared, events: &Receiver<SegmentEvent>) -> Archive {
    let mut archive = Archive::default();
    for (i, event) in events.try_iter().enumerate() {
        match event {
            SegmentEvent::Sealed(info) => {
                if info.last_lsn < info.first_lsn {
                    shared.fail(format!(
                        "{}: event {i}: an empty segment sealed: {info:?}",
                        shared.run
                    ));
                }
                if let Some(old) = archive.held.insert(info.first_lsn.get(), info.clone()) {
                    archive.contradictions.push(format!(
                        "event {i}: {info:?} sealed while the archive holds {old:?}, which no \
                         rollback or reset removed"
                    ));
                }
                archive.announced.push(info);
            }
            SegmentEvent::RolledBack { to } => archive.held.retain(|_, s| s.last_lsn <= to),
            SegmentEvent::Reset { .. } => archive.held.clear(),
            other => shared.fail(format!("{}: event {i}: unknown {other:?}", shared.run)),
        }
    }
    archive
}

/// Compares what the events said with the segments of the log at the end.
fn check_archive(log: &Log, shared: &Shared, mut archive: Archive) {
    let checkpoint = log.checkpoint_lsn();
    let segments = log.segments();
    let mut differences = std::mem::take(&mut archive.contradictions);
    for s in segments.iter().filter(|s| !s.active) {
        if !archive.announced.contains(s) {
            shared.fail(format!(
                "{}: at the end: sealed segment {s:?} was never announced",
                shared.run
            ));
        }
        if archive.held.get(&s.first_lsn.get()) != Some(s) {
            differences.push(format!(
                "sealed segment {s:?}; the archive holds {:?}",
                archive.held.get(&s.first_lsn.get())
            ));
        }
    }
    for s in archive.held.values().filter(|s| s.last_lsn >= checkpoint) {
        if !segments.contains(s) {
            differences.push(format!("the archive holds {s:?}, which the log does not"));
        }
    }
    if EVENTS_MAY_TRAIL_SEALS {
        if !differences.is_empty() {
            eprintln!(
                "{}: {} differences between the segment events and the log, from the known \
                 defect of events, such as:\n  {}",
                shared.run,
                differences.len(),
                differences[..differences.len().min(3)].join("\n  ")
            );
        }
    } else {
        for difference in differences {
            shared.fail(format!("{}: segment events: {difference}", shared.run));
        }
    }
}

/// Each record of the log at the end: LSN → (stamp, payload, batch end).
type Final = BTreeMap<u64, (Stamp, Vec<u8>, bool)>;

fn check_final(log: &Log, shared: &Arc<Shared>, outcome: &Outcome) -> Final {
    let fail = |what: String| shared.fail(format!("{}: at the end: {what}", shared.run));
    if let Err(e) = log.sync() {
        fail(format!("sync: {e:?}"));
    }
    let checkpoint = log.checkpoint_lsn().get();
    let last = log.last_lsn().get();
    if log.durable_lsn().get() != last {
        fail(format!(
            "durable {} after a sync, last {last}",
            log.durable_lsn()
        ));
    }
    let mut records = Final::new();
    let mut history = History::default();
    let mut prev: Option<(Stamp, bool)> = None;
    let iter = match log.iter() {
        Ok(iter) => iter,
        Err(e) => {
            fail(format!("iter: {e:?}"));
            return records;
        }
    };
    for (i, item) in iter.enumerate() {
        let record = match item {
            Ok(record) => record,
            Err(e) => {
                fail(format!("iter: {e:?}"));
                break;
            }
        };
        let lsn = record.lsn().get();
        if lsn != checkpoint.max(1) + i as u64 {
            fail(format!(
                "record {i} from the checkpoint {checkpoint} has LSN {lsn}"
            ));
            break;
        }
        let stamp = match decode(record.data()) {
            Ok(stamp) => stamp,
            Err(e) => {
                fail(format!("LSN {lsn}: {e}"));
                break;
            }
        };
        if let Err(e) = history.push(lsn, &stamp) {
            fail(e);
        }
        if let Some(p) = prev
            && let Err(e) = follows(p, &stamp)
        {
            fail(format!("LSN {lsn}: {e}"));
        }
        if record.is_batch_start() != (stamp.index == 0) {
            fail(format!(
                "LSN {lsn}: {stamp} has batch start {}",
                record.is_batch_start()
            ));
        }
        match shared.ledger.lsn_of(stamp.writer, stamp.seq) {
            Ok(Some(at)) if at == lsn => {}
            got => fail(format!("LSN {lsn} holds {stamp}, appended at {got:?}")),
        }
        prev = Some((stamp, record.is_batch_end()));
        let end = record.is_batch_end();
        records.insert(lsn, (stamp, record.into_data(), end));
    }
    let held = records
        .keys()
        .next_back()
        .copied()
        .unwrap_or(checkpoint.saturating_sub(1));
    if held != last.max(checkpoint.saturating_sub(1)) {
        fail(format!("the records end at {held}, the last LSN is {last}"));
    }
    if prev.is_some_and(|(_, end)| !end) {
        fail(format!("the last record, {last}, is not a batch end"));
    }

    for d in &outcome.deferred {
        match shared.ledger.lsn_of(d.writer, d.seq) {
            Ok(Some(at)) if at == d.lsn => {}
            got => fail(format!(
                "{}: LSN {} held writer {} seq {}, appended at {got:?}",
                d.context, d.lsn, d.writer, d.seq
            )),
        }
    }

    // Where each appended record must be, and must not be. Rollback k (1-based) began after
    // `started_after` of an append iff k > started_after, and ended before the append began iff
    // k <= finished_before. `lowest[k]`: the lowest point of the rollbacks after the first k.
    let points = &outcome.points;
    let mut lowest = vec![u64::MAX; points.len() + 1];
    for k in (0..points.len()).rev() {
        lowest[k] = lowest[k + 1].min(points[k]);
    }
    let lowest_after = |k: u64| lowest[(k as usize).min(points.len())];
    let (mut present, mut absent) = (0u64, 0u64);
    for a in &outcome.appended {
        for i in 0..a.n {
            let (lsn, seq) = (a.first + i, a.seq + i);
            let told_gone = a.rolled_back_to.is_some_and(|to| lsn > to);
            let must_be_gone = told_gone || lowest_after(a.started_after) < lsn;
            let must_stay = lowest_after(a.finished_before) >= lsn;
            let what = format!(
                "writer {} seq {seq} at LSN {lsn} (rollbacks ended before: {}, begun after: {}, \
                 told rolled back to {:?})",
                a.writer, a.finished_before, a.started_after, a.rolled_back_to
            );
            if must_stay && told_gone {
                fail(format!(
                    "{what}: told RolledBack, but no rollback below it ran"
                ));
                continue;
            }
            if lsn < checkpoint {
                continue;
            }
            let here = records
                .get(&lsn)
                .is_some_and(|(s, ..)| s.writer == a.writer && s.seq == seq);
            if must_stay && !here {
                let found = records.get(&lsn).map(|(s, ..)| s.to_string());
                fail(format!("{what}: missing; the log holds {found:?} there"));
            }
            if must_be_gone && here {
                fail(format!("{what}: still there after a rollback below it"));
            }
            present += u64::from(must_stay);
            absent += u64::from(must_be_gone);
        }
    }
    eprintln!(
        "{}: {} records at the end ({checkpoint}..={last}); placed {present} that had to stay \
         and {absent} that had to go",
        shared.run,
        records.len()
    );
    records
}

fn stress(config: Config) {
    let seed = env_u64("TIDELOG_STRESS_SEED").unwrap_or(DEFAULT_SEED);
    for env in Env::both() {
        let rounds = env_u64("TIDELOG_STRESS_ROUNDS").unwrap_or(if env.mem.is_some() {
            DEFAULT_ROUNDS_MEM
        } else {
            DEFAULT_ROUNDS_STD
        });
        let run = format!(
            "seed {seed:#x} (TIDELOG_STRESS_SEED), {}, {}",
            env.name(),
            config.name
        );
        let started = Instant::now();
        let mut names: Vec<String> = (0..APPENDERS).map(|w| format!("appender {w}")).collect();
        names.extend(["maintenance", "tail", "iterator", "durability"].map(String::from));
        let shared = Arc::new(Shared {
            run: run.clone(),
            rollbacks_started: AtomicU64::new(0),
            rollbacks_finished: AtomicU64::new(0),
            points: Mutex::default(),
            appends: AtomicU64::new(0),
            appenders_running: AtomicUsize::new(APPENDERS as usize),
            stop: AtomicBool::new(false),
            failures: Mutex::new(Vec::new()),
            excused: Mutex::default(),
            ledger: Ledger::new(rounds * MAX_BATCH),
            board: names
                .into_iter()
                .map(|n| (n, Mutex::new("not started".into())))
                .collect(),
        });
        let done = watchdog(&shared);

        let log = Arc::new(builder(&env, &config).open().expect("open a new log"));
        let events = log.segment_events();
        let mut outcome = run_threads(&log, &shared, seed, rounds);
        let failed = !lock(&shared.failures).is_empty();
        let archive = follow(&shared, &events);
        let mut records = Final::new();
        if !failed {
            records = check_final(&log, &shared, &outcome);
            check_archive(&log, &shared, archive);
        }
        if let Some(mut watch) = outcome.tail.take() {
            if lock(&shared.failures).is_empty() {
                check_tail(&log, &shared, seed, &mut watch, &records);
            }
            outcome.seen.push(("tail".to_owned(), watch.seen));
            // Every append has returned: the ledger is complete.
            for d in &watch.deferred {
                shared.fail(format!(
                    "{}: {}: writer {} seq {} read at LSN {} was never appended",
                    shared.run, d.context, d.writer, d.seq, d.lsn
                ));
            }
        }
        let (checkpoint, last) = (log.checkpoint_lsn(), log.last_lsn());
        let log = Arc::try_unwrap(log).unwrap_or_else(|_| panic!("{run}: the log is still shared"));
        if let Err(e) = log.close() {
            shared.fail(format!("{run}: close: {e:?}"));
        }

        if lock(&shared.failures).is_empty() {
            match builder(&env, &config).open() {
                Ok(log) => {
                    let report = log.recovery_report();
                    if !report.is_clean() {
                        shared.fail(format!("{run}: reopened: {report:#?}"));
                    }
                    if log.checkpoint_lsn() != checkpoint || log.last_lsn() != last {
                        shared.fail(format!(
                            "{run}: reopened with checkpoint {} and last LSN {}, closed with {checkpoint} and {last}",
                            log.checkpoint_lsn(),
                            log.last_lsn()
                        ));
                    }
                    let read: tidelog::Result<Vec<(u64, Vec<u8>)>> = log.iter().and_then(|i| {
                        i.map(|r| r.map(|r| (r.lsn().get(), r.into_data())))
                            .collect()
                    });
                    let want: Vec<(u64, Vec<u8>)> = records
                        .into_iter()
                        .map(|(l, (_, data, _))| (l, data))
                        .collect();
                    match read {
                        Ok(read) if read == want => {}
                        Ok(read) => shared.fail(format!(
                            "{run}: reopened: the log holds {} records ({:?}..={:?}), not the {} \
                             read before close ({:?}..={:?}), or not the same bytes",
                            read.len(),
                            read.first().map(|r| r.0),
                            read.last().map(|r| r.0),
                            want.len(),
                            want.first().map(|r| r.0),
                            want.last().map(|r| r.0),
                        )),
                        Err(e) => shared.fail(format!("{run}: reopened: iter: {e:?}")),
                    }
                    if let Err(e) = log.close() {
                        shared.fail(format!("{run}: closing the reopened log: {e:?}"));
                    }
                }
                Err(e) => shared.fail(format!("{run}: reopen: {e:?}")),
            }
        }
        let _ = done.send(());

        let failures = lock(&shared.failures).clone();
        assert!(
            failures.is_empty(),
            "{} failure(s):\n{}",
            failures.len(),
            failures.join("\n")
        );
        let rollbacks = outcome.points.len();
        let seen: Vec<String> = outcome
            .seen
            .iter()
            .map(|(name, s)| format!("{name} {s:?}"))
            .collect();
        eprintln!(
            "{run}: {} appends, {rollbacks} rollbacks, in {:?}; {}",
            outcome.appended.len(),
            started.elapsed(),
            seen.join("; ")
        );
        let (excused, examples) = std::mem::take(&mut *lock(&shared.excused));
        if excused > 0 {
            eprintln!(
                "{run}: {excused} reads excused by the known defect of readers during a \
                 rollback, such as:\n  {}",
                examples.join("\n  ")
            );
        }
        for (name, s) in &outcome.seen {
            assert!(s.ops > 0, "{run}: the {name} watcher did nothing");
        }
    }
}

#[test]
fn stress_interval_syncer() {
    stress(INTERVAL);
}

#[test]
fn stress_bytes_syncer_preallocated_recycled_segments() {
    stress(BYTES);
}

// ---------------------------------------------------------------------------------------------
// Defects the stress test found, each reduced to its reproduction
// ---------------------------------------------------------------------------------------------

/// A record of the reproductions below: `first` records are replaced by `second` ones after a
/// rollback.
fn numbered(tag: &str, lsn: u64) -> Vec<u8> {
    let mut p = format!("{tag} {lsn}").into_bytes();
    p.resize(1000, b'.');
    p
}

/// What a reader returned, for assertions and messages: `"LSN 7 first"` or the error.
fn described(got: tidelog::Result<Record>) -> String {
    match got {
        Ok(r) => {
            let data = String::from_utf8_lossy(r.data());
            let tag = data.split(' ').next().unwrap_or_default();
            format!("LSN {} {tag}", r.lsn())
        }
        Err(e) => format!("{e:?}"),
    }
}

/// A new log on `env`'s backend behind `hooked`, in its own directory, holding `numbered("first",
/// lsn)` for LSNs 1..=20, all durable: in one segment, or about four records to a segment.
fn twenty_records(env: &Env, hooked: &HookedStorage, one_segment: bool) -> tidelog::Result<Log> {
    let segment_bytes = if one_segment { 1 << 20 } else { SEGMENT_BYTES };
    let log = Log::builder(env.dir.join(segment_bytes.to_string()))
        .storage(Arc::new(hooked.clone()))
        .segment_bytes(segment_bytes)
        .preallocate(false)
        .open()?;
    for lsn in 1..=20 {
        log.append(&numbered("first", lsn), Durability::Buffered)?;
    }
    log.sync()?;
    Ok(log)
}

/// Starts `truncate_after(5)` on another thread and returns once the rollback has removed the
/// later segment files and cut the one holding LSN 5, and waits in the fsync of the cut: its
/// new rollback generation has not started yet.
fn rollback_held_after_its_cut(
    log: &Arc<Log>,
    hooked: &HookedStorage,
) -> (HeldSyncs, thread::JoinHandle<tidelog::Result<()>>) {
    let held = hooked.hold_syncs(1);
    let rollback = {
        let log = Arc::clone(log);
        thread::spawn(move || log.truncate_after(Lsn::new(5)))
    };
    held.wait_entered();
    (held, rollback)
}

/// Whether `got` is a dense run of `first` records from LSN 1 that is either complete (through
/// `last`) or ends with the one `RolledBack { to: 5, .. }` of a rollback to 5, after the records
/// that rollback kept.
fn whole_or_rolled_back(got: &[String], last: u64) -> bool {
    let records = got.iter().take_while(|g| g.starts_with("LSN ")).count();
    let dense = got[..records]
        .iter()
        .enumerate()
        .all(|(i, g)| *g == format!("LSN {} first", i + 1));
    let end = &got[records..];
    let rolled_back = |g: &String| g.starts_with("RolledBack {") && g.ends_with("to: Lsn(5) }");
    dense
        && match end {
            [] => records as u64 == last,
            [e] => records >= 5 && rolled_back(e),
            _ => false,
        }
}

/// Regression: `truncate_after` cut the segment holding its point and removed the later ones
/// (under the state lock, and then syncs the cut) before it starts its new rollback generation.
/// An iterator made before the rollback reads without the lock, so it can read the files in
/// between: it sees the cut as the end of the segment and, the generation being unchanged,
/// either ends there without an error (one segment: LSNs 1..=5, then `None`) or goes on with
/// the next segment file it holds, which the rollback removed (several segments: LSNs 1..=5,
/// then 9..=20 on `MemStorage`, 7..=20 on the disk). Expected: LSNs 1..=20, or a dense prefix
/// of at least 1..=5 followed by one `RolledBack { to: 5, .. }`.
#[test]
fn an_iterator_reading_while_a_rollback_cuts_its_segments_reports_the_rollback()
-> tidelog::Result<()> {
    let mut failures = Vec::new();
    for env in Env::both() {
        for one_segment in [true, false] {
            let hooked = HookedStorage::new(Arc::clone(&env.storage));
            let log = Arc::new(twenty_records(&env, &hooked, one_segment)?);
            let iter = log.iter()?;
            let (held, rollback) = rollback_held_after_its_cut(&log, &hooked);
            let got: Vec<String> = iter.map(described).collect();
            held.release();
            rollback.join().expect("rollback thread")?;
            if !whole_or_rolled_back(&got, 20) {
                failures.push(format!(
                    "{}, one segment: {one_segment}: {got:?}",
                    env.name()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    Ok(())
}

/// Regression: the same cut seen by a tail, whose iterator was made before the rollback: it skipped
/// LSN 6 (in the segment that was cut) and returns 7..=20 from the file the rollback removed, as
/// if 6 never existed. Expected: every LSN once and in order, then `RolledBack { lsn: last
/// returned, to: 5 }` and the records that take LSNs 6.. after the rollback.
#[test]
fn a_tail_reading_while_a_rollback_cuts_its_segments_skips_no_record() -> tidelog::Result<()> {
    let mut failures = Vec::new();
    for env in Env::both() {
        let hooked = HookedStorage::new(Arc::clone(&env.storage));
        let log = Arc::new(twenty_records(&env, &hooked, false)?);
        let mut tail = log.tail(Lsn::FIRST)?;
        // Its first read makes the tail's iterator over LSNs 1..=20, before the rollback.
        let mut got = vec![described(tail.recv())];
        let (held, rollback) = rollback_held_after_its_cut(&log, &hooked);
        let read = |tail: &mut tidelog::Tail, got: &mut Vec<String>| loop {
            match tail.try_recv() {
                Ok(Some(record)) => got.push(described(Ok(record))),
                Ok(None) => break,
                Err(e) => {
                    got.push(described(Err(e)));
                    break;
                }
            }
        };
        // The tail may wait for the rollback under way (it holds the log's state while it
        // changes the files), so it reads on a thread of its own while the rollback goes on.
        thread::scope(|scope| {
            let reader = scope.spawn(|| read(&mut tail, &mut got));
            held.release();
            reader.join().expect("reader thread");
        });
        rollback.join().expect("rollback thread")?;
        for lsn in 6..=8 {
            log.append(&numbered("second", lsn), Durability::Synced)?;
        }
        read(&mut tail, &mut got);
        read(&mut tail, &mut got);
        // Every LSN up to the last it returned before the rollback, the report, the new records.
        let before = got
            .iter()
            .filter_map(|g| g.strip_suffix(" first")?.strip_prefix("LSN ")?.parse().ok())
            .max()
            .unwrap_or(0u64);
        let mut want: Vec<String> = (1..=before).map(|l| format!("LSN {l} first")).collect();
        if before > 5 {
            want.push(format!("RolledBack {{ lsn: Lsn({before}), to: Lsn(5) }}"));
        }
        want.extend((6..=8).map(|l| format!("LSN {l} second")));
        if got != want {
            failures.push(format!("{}: got {got:?}\nwant {want:?}", env.name()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// Regression: `truncate_after` sent its `RolledBack` event after it let go of the state lock,
/// and `reset` its `Reset` event likewise, so appends right behind the rollback can roll and
/// send the `Sealed` events of segments of the new generation first. An archiver following the
/// events then drops those segments when the late `RolledBack` arrives (or, the other way
/// round, keeps a segment of the old generation). Expected: the events in the order things
/// happened, so what the archiver holds is always the log's sealed segments.
///
/// The window is a few instructions wide, so this repeats a rollback racing an appender that
/// rolls segments, up to a bound (on a two-core machine it shows within a few thousand rounds,
/// a few seconds).
#[test]
fn segment_events_report_a_rollback_before_the_seals_that_follow_it() -> tidelog::Result<()> {
    const ROUNDS: u64 = 20_000;
    let env = Env::mem();
    let log = Arc::new(env.open()?);
    let events = log.segment_events();
    let mut held: BTreeMap<u64, SegmentInfo> = BTreeMap::new();
    for round in 0..ROUNDS {
        let start = Arc::new(std::sync::Barrier::new(2));
        let appender = {
            let (log, start) = (Arc::clone(&log), Arc::clone(&start));
            thread::spawn(move || -> tidelog::Result<()> {
                start.wait();
                // Four records to a segment: ten rolls.
                for _ in 0..40 {
                    log.append(&numbered("record", 0), Durability::Buffered)?;
                }
                Ok(())
            })
        };
        start.wait();
        thread::sleep(Duration::from_micros(round % 200));
        let to = log.last_lsn().get().saturating_sub(3);
        log.truncate_after(Lsn::new(to.max(log.checkpoint_lsn().get())))?;
        appender.join().expect("appender")?;
        for event in events.try_iter() {
            match event {
                SegmentEvent::Sealed(info) => {
                    held.insert(info.first_lsn.get(), info);
                }
                SegmentEvent::RolledBack { to } => held.retain(|_, s| s.last_lsn <= to),
                other => panic!("unexpected {other:?}"),
            }
        }
        let sealed: Vec<SegmentInfo> = log.segments().into_iter().filter(|s| !s.active).collect();
        let archived: Vec<SegmentInfo> = held.values().cloned().collect();
        assert!(
            sealed == archived,
            "round {round}: sealed but not archived: {:#?}\narchived but not sealed: {:#?}",
            sealed
                .iter()
                .filter(|s| !archived.contains(s))
                .collect::<Vec<_>>(),
            archived
                .iter()
                .filter(|s| !sealed.contains(s))
                .collect::<Vec<_>>(),
        );
        // Keep the log small: a checkpoint of every record drops every segment.
        log.checkpoint(log.last_lsn().next())?;
        held.clear();
        let _ = events.try_iter().count();
    }
    Ok(())
}

/// Regression: the group-commit state keeps the last 64 rollback points and, dropping the oldest,
/// folds its point into the next one's, so that a caller older than every point kept is told
/// the lowest. But the folded point then also answers a caller made exactly one generation
/// later, for whom all 64 later rollbacks are still kept: a reader made after rollback 1 (to
/// LSN 1) and read after 64 more rollbacks that each removed only LSN 11 is told its records
/// were rolled back to LSN 1. The iterator stops after LSN 1 with `RolledBack { lsn: 2, to: 1 }`;
/// the tail, having returned 1..=10, reports `RolledBack { lsn: 10, to: 1 }` and returns 2..=10
/// a second time. Expected: the iterator yields 1..=10, the tail has nothing new. With 63
/// rollbacks instead of 64 both are right.
#[test]
fn a_reader_64_rollbacks_old_is_told_only_of_the_rollbacks_since() -> tidelog::Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    for lsn in 1..=5 {
        log.append(&numbered("first", lsn), Durability::Synced)?;
    }
    // Rollback 1: to LSN 1.
    log.truncate_after(Lsn::new(1))?;
    for lsn in 2..=10 {
        log.append(&numbered("second", lsn), Durability::Synced)?;
    }
    // Both made after rollback 1, over LSNs 1..=10.
    let iter = log.iter()?;
    let mut tail = log.tail(Lsn::FIRST)?;
    for _ in 1..=10 {
        tail.recv()?;
    }
    // 64 rollbacks that each remove only LSN 11.
    for _ in 0..64 {
        log.append(&numbered("gone", 11), Durability::Synced)?;
        log.truncate_after(Lsn::new(10))?;
    }
    let got: Vec<String> = iter.map(described).collect();
    let want: Vec<String> = (1..=10)
        .map(|l| format!("LSN {l} {}", if l == 1 { "first" } else { "second" }))
        .collect();
    let mut tail_got = Vec::new();
    for _ in 0..20 {
        match tail.try_recv() {
            Ok(None) => break,
            Ok(Some(record)) => tail_got.push(described(Ok(record))),
            Err(e) => tail_got.push(described(Err(e))),
        }
    }
    assert!(
        got == want && tail_got.is_empty(),
        "iterator: {got:?}\ntail, after returning LSNs 1..=10: {tail_got:?}"
    );
    Ok(())
}
