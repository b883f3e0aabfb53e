//! Process kills on the real disk: a writer process is killed with SIGKILL again and again in
//! the middle of its work, and every time the log it leaves is reopened and checked against
//! what the writer had been told.
//!
//! The crash suites (`crash.rs`, `faults.rs`) cut a scripted workload at every storage call of
//! the in-memory storage. This module is the complement on a real kernel and file system: real
//! `pwrite`s finishing out of order, preallocated files, renames and truncations interrupted
//! wherever the kill lands, and the recovery of whatever that leaves.
//!
//! # The child
//!
//! The child is this test binary itself, started again (`std::env::current_exe()`) to run the
//! one test [`child`] (`kills::child --exact --ignored`), which does its work only when
//! `TIDELOG_KILL_CHILD_DIR` is set and returns at once otherwise. It opens the log in that
//! directory (small segments, preallocation on; the write buffer, segment recycling and the
//! sync policy drawn from its seed) and never stops: three writer threads append single
//! records and batches (now and then a record large enough to be written on its own), `Synced`
//! and `Buffered`, and call `wait_durable` and `sync`; a fourth thread checkpoints and rolls
//! back now and then. Every record names its batch (its place and the batch's size), the child,
//! thread and append that wrote it, and ends with a checksum, so a record read back can be
//! checked without anything else.
//!
//! Most records also name their LSN, which an append can only know before the call if it runs
//! alone: such a *named* append takes the child's append lock for writing, takes the next LSN
//! from `last_lsn()`, announces it and makes the call. The other appends take the lock for
//! reading, run side by side (their regions written concurrently, finishing in any order, as
//! a real writer's are), name no LSN (`lsn -`) and report the LSNs they got as soon as the call
//! returns, still holding the lock. Rollbacks take the lock for writing. Waiting for durability
//! (`wait_durable`, `sync`) holds no lock: waiters lead each other's fsyncs and meet the
//! rollbacks.
//!
//! # The protocol
//!
//! The child reports on its standard output, one line at a time, each written whole and
//! flushed, all starting with `tidelog-kill ` (lines of the test harness are ignored):
//!
//! | line | meaning |
//! |---|---|
//! | `open LAST CHECKPOINT DAMAGE` | the log opened with this last LSN and checkpoint; recovery found `DAMAGE` places |
//! | `append FIRST LAST RUN THREAD SEQ LARGE` | a named append, reported *before* the call: the batch `FIRST..=LAST` |
//! | `placed FIRST LAST RUN THREAD SEQ LARGE` | a concurrent append, reported after the call: it got `FIRST..=LAST` |
//! | `ack LSN RUN THREAD SEQ` | every record up to `LSN` is durable, and `LSN` was the last record of append `RUN THREAD SEQ` |
//! | `checkpoint-begin C`, `checkpoint C` | a checkpoint at `C` is about to start, and has returned |
//! | `rollback-begin T`, `rollback T` | a `truncate_after(T)` is about to start, and has returned |
//!
//! An append reports while it holds the append lock, and a rollback needs the lock alone, so
//! the parent learns of every append before any rollback that follows it, and of every append
//! before a named one. Only the concurrent appends in flight at the kill (at most one per
//! thread) can be in the log unreported; the parent accepts such a record only from this
//! round's child, newer than every append its thread reported, at or above the last named
//! append or rollback, one append per thread, in its place in its batch. An `ack` after a
//! `Synced` append follows its `append`/`placed` line under the lock; after a `wait_durable` or a
//! `sync` it is written without the lock and may reach the parent after a rollback that removed
//! its record: it names the append it acknowledges, and the parent takes it only if that append
//! still holds the LSN in its model (appends are unique), so a late acknowledgement never
//! covers records a rollback replaced. A checkpoint makes every record below it durable, a
//! rollback every record it kept.
//!
//! # The parent
//!
//! [`killed_writers_lose_nothing_acknowledged`] runs rounds for about 25 seconds on a
//! directory under the build's temporary folder (`CARGO_TARGET_TMPDIR`, on the disk of the
//! build): it starts a child on the log the previous rounds left, lets it run for a short random
//! while (seeded; `TIDELOG_KILL_SEED` fixes the seed, which every failure names), kills it, reads
//! everything it reported, reopens the log in the default recovery mode (and in about one round
//! in four read-only, as a dry run, so that the next child runs the recovery itself and may be
//! killed in the middle of it), and checks:
//!
//! - recovery only cut the end of the last segment (no error, nothing lost or skipped);
//! - the checkpoint is the last one reported done, or one reported begun;
//! - every acknowledged record at or above the checkpoint is there (a rollback that had begun
//!   lowers what must be there to its LSN);
//! - the log is gap-free from the checkpoint to its last record;
//! - every record is exactly the one the model expects at its LSN (payload, checksum, batch
//!   flags), or an unreported one as above, so nothing is invented and nothing moved;
//! - the last batch is whole (unless a rollback that had begun ended the log in it);
//! - the next child finds the log exactly as the parent verified it (its `open` line) and, after
//!   a real recovery, with no damage.
//!
//! Assertions never depend on timing: time decides only how many rounds run and where each kill
//! lands. The seed fixes every choice (the children's seeds and configurations, how long each
//! runs), not where the kills land, so a failure may take a few runs with its seed to recur; the
//! failed run leaves its log directory in place, for `tidelog verify` and `tidelog dump`. The
//! test prints its rounds, the records it checked and the kills (visible with `--nocapture`).
//!
//! # Soak
//!
//! [`soak`] runs the same rounds for as long as asked, printing what it checked every minute and
//! at the end (outside `cargo nextest`, whose slow-test limit would stop it):
//!
//! ```sh
//! TIDELOG_SOAK_SECS=3600 cargo test --release -p tidelog --test it kills::soak -- --ignored --nocapture
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, mpsc};
use std::time::{Duration, Instant};

use tidelog::{DamageAction, Durability, Error, Log, LogBuilder, Lsn, SyncPolicy};

/// The directory of the log a child writes; the child does nothing without it.
const CHILD_DIR: &str = "TIDELOG_KILL_CHILD_DIR";
/// The round the child runs in (part of every record it writes).
const CHILD_RUN: &str = "TIDELOG_KILL_CHILD_RUN";
/// The seed of the child's choices.
const CHILD_SEED: &str = "TIDELOG_KILL_CHILD_SEED";
/// The parent's seed (drawn from the clock when unset).
const SEED: &str = "TIDELOG_KILL_SEED";
/// How long [`soak`] runs, in seconds.
const SOAK_SECS: &str = "TIDELOG_SOAK_SECS";

/// What every line of the child's report starts with.
const MARK: &str = "tidelog-kill ";
/// Small segments, so the child rolls often.
const SEGMENT_BYTES: u64 = 16 << 10;
/// The child's writer threads.
const WRITERS: u64 = 3;
/// How long the CI test runs rounds (a little less than the 30 s at which nextest calls a test
/// slow).
const BUDGET: Duration = Duration::from_secs(25);
/// Rounds run however slow the machine is.
const MIN_ROUNDS: u64 = 3;

#[test]
fn killed_writers_lose_nothing_acknowledged() {
    let stats = rounds(BUDGET, false);
    println!("{stats}");
}

#[test]
#[ignore = "a long run outside CI: set TIDELOG_SOAK_SECS (see the module docs)"]
fn soak() {
    let Some(secs) = std::env::var(SOAK_SECS).ok() else {
        println!("kills::soak: set {SOAK_SECS} to the number of seconds to run");
        return;
    };
    let secs: u64 = secs
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{SOAK_SECS}={secs:?} is not a number of seconds"));
    let stats = rounds(Duration::from_secs(secs), true);
    println!("{stats}");
}

/// The child process of the kill tests: writes the log named by `TIDELOG_KILL_CHILD_DIR` until
/// it is killed. Without that variable it returns at once.
#[test]
#[ignore = "the child process of the kill tests; it runs only when they start it"]
fn child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let number = |name: &str| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| die(&format!("{name} is missing or not a number")))
    };
    run_child(Path::new(&dir), number(CHILD_RUN), number(CHILD_SEED));
}

// ---------------------------------------------------------------------------------------------
// Records

/// A small, fast, seeded generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 for `n == 0`).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// 64-bit FNV-1a: the checksum that ends every record.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One record the child appends. `run`, `thread` and `seq` name the append that wrote it, which
/// no other append of any child of a test shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec {
    /// Its LSN, named by an append that knew it in advance (see the module docs); `None` for a
    /// concurrent append, which learns it when the call returns.
    lsn: Option<u64>,
    /// Its place in its batch (from 0), and the batch's size.
    index: u64,
    count: u64,
    run: u64,
    thread: u64,
    seq: u64,
    /// A record of about 66 KB, which the log writes on its own instead of through its buffer.
    large: bool,
}

impl Rec {
    fn same_append(&self, run: u64, thread: u64, seq: u64) -> bool {
        (self.run, self.thread, self.seq) == (run, thread, seq)
    }
}

/// The bytes of a record: a header naming it, padding drawn from its identity, a checksum.
fn payload(r: &Rec) -> Vec<u8> {
    let lsn = r.lsn.map_or_else(|| "-".to_owned(), |l| l.to_string());
    let mut p = format!(
        "tidelog-kill lsn {lsn} batch {}/{} run {} thread {} seq {} large {} pad ",
        r.index,
        r.count,
        r.run,
        r.thread,
        r.seq,
        u8::from(r.large)
    )
    .into_bytes();
    let mut rng = Rng(checksum(&p));
    let pad = if r.large {
        66_000 + rng.below(2_000)
    } else {
        rng.below(200)
    };
    p.extend((0..pad).map(|_| b'a' + (rng.next() % 26) as u8));
    let sum = checksum(&p);
    p.extend(format!(" sum {sum:016x}").as_bytes());
    p
}

/// Reads a record back from its bytes alone: the checksum must hold and the bytes must be
/// exactly what [`payload`] makes of what they name.
fn parse(data: &[u8]) -> Result<Rec, String> {
    const TRAILER: usize = " sum ".len() + 16;
    let shown = || String::from_utf8_lossy(&data[..data.len().min(120)]).into_owned();
    if data.len() < TRAILER {
        return Err(format!("{} bytes, too short: {:?}", data.len(), shown()));
    }
    let (body, trailer) = data.split_at(data.len() - TRAILER);
    let sum = std::str::from_utf8(trailer)
        .ok()
        .and_then(|t| t.strip_prefix(" sum "))
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or_else(|| format!("no checksum at the end: {:?}", shown()))?;
    if checksum(body) != sum {
        return Err(format!("checksum mismatch: {:?}", shown()));
    }
    let header_end = body
        .windows(5)
        .position(|w| w == b" pad ")
        .ok_or_else(|| format!("no header: {:?}", shown()))?;
    let header = std::str::from_utf8(&body[..header_end])
        .map_err(|_| format!("header not UTF-8: {:?}", shown()))?;
    let fields: Vec<&str> = header.split(' ').collect();
    let bad = || format!("malformed header {header:?}");
    let [
        "tidelog-kill",
        "lsn",
        lsn,
        "batch",
        batch,
        "run",
        run,
        "thread",
        thread,
        "seq",
        seq,
        "large",
        large,
    ] = fields[..]
    else {
        return Err(bad());
    };
    let (index, count) = batch.split_once('/').ok_or_else(bad)?;
    let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
    let rec = Rec {
        lsn: if lsn == "-" { None } else { Some(num(lsn)?) },
        index: num(index)?,
        count: num(count)?,
        run: num(run)?,
        thread: num(thread)?,
        seq: num(seq)?,
        large: match large {
            "0" => false,
            "1" => true,
            _ => return Err(bad()),
        },
    };
    if rec.index >= rec.count {
        return Err(bad());
    }
    if payload(&rec) != data {
        return Err(format!("checksum holds but the bytes differ from {rec:?}"));
    }
    Ok(rec)
}

// ---------------------------------------------------------------------------------------------
// The child

/// What a child varies from run to run, drawn from its seed.
#[derive(Debug, Clone, Copy)]
struct ChildConfig {
    recycle: bool,
    write_buffer_bytes: usize,
    background_sync: bool,
}

impl ChildConfig {
    fn from_seed(seed: u64) -> ChildConfig {
        let mut rng = Rng(seed ^ 0x5eed_c0f1_9000_0001);
        ChildConfig {
            recycle: rng.percent(50),
            write_buffer_bytes: [tidelog::DEFAULT_WRITE_BUFFER_BYTES, 4096, 0]
                [rng.below(3) as usize],
            background_sync: rng.percent(20),
        }
    }

    fn builder(self, dir: &Path) -> LogBuilder {
        Log::builder(dir)
            .segment_bytes(SEGMENT_BYTES)
            .preallocate(true)
            .recycle_segments(self.recycle)
            .write_buffer_bytes(self.write_buffer_bytes)
            .sync_policy(if self.background_sync {
                SyncPolicy::Interval(Duration::from_millis(2))
            } else {
                SyncPolicy::Manual
            })
    }
}

/// Ends the child with a message on its standard error (written directly: the test harness
/// would keep printed output until a test ends, and this one never does).
fn die(message: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "kills child: {message}");
    std::process::exit(101)
}

/// What the child's threads share.
struct Shared {
    log: Log,
    run: u64,
    /// Held for writing by an append that names its LSN and by a rollback, for reading by a
    /// concurrent append (until it has reported its LSNs). Holds the number of rollbacks begun.
    appends: RwLock<u64>,
    out: Mutex<std::io::Stdout>,
}

/// An append a writer may wait for later.
#[derive(Clone, Copy)]
struct Appended {
    lsn: u64,
    seq: u64,
    /// Rollbacks begun when it was appended.
    rollbacks: u64,
}

fn run_child(dir: &Path, run: u64, seed: u64) -> ! {
    std::panic::set_hook(Box::new(|info| die(&format!("panic: {info}"))));
    // The parent holds the other end of standard input until it has killed this process; if it
    // goes away first (it failed), so does this process.
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        loop {
            match std::io::stdin().read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });
    let config = ChildConfig::from_seed(seed);
    let log = config
        .builder(dir)
        .open()
        .unwrap_or_else(|e| die(&format!("open failed: {e}")));
    let report = log.recovery_report().clone();
    if !report.is_clean() {
        let _ = writeln!(
            std::io::stderr(),
            "kills child: recovery on open:\n{report}"
        );
    }
    let checkpoint = log.checkpoint_lsn().get();
    let shared = Arc::new(Shared {
        log,
        run,
        appends: RwLock::new(0),
        out: Mutex::new(std::io::stdout()),
    });
    shared.say(&format!(
        "open {} {checkpoint} {}",
        report.last_lsn,
        report.damage.len()
    ));
    let mut rng = Rng(seed);
    for thread in 0..WRITERS {
        let shared = Arc::clone(&shared);
        let seed = rng.next();
        std::thread::spawn(move || shared.writer(thread, seed));
    }
    shared.maintain(rng.next(), checkpoint)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|_| die("a lock was poisoned"))
}

impl Shared {
    /// Reports one line to the parent. A parent that went away ends the child.
    fn say(&self, line: &str) {
        let mut out = lock(&self.out);
        if out
            .write_all(format!("{MARK}{line}\n").as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            std::process::exit(0);
        }
    }

    fn exclusive(&self) -> RwLockWriteGuard<'_, u64> {
        self.appends
            .write()
            .unwrap_or_else(|_| die("a lock was poisoned"))
    }

    fn shared(&self) -> RwLockReadGuard<'_, u64> {
        self.appends
            .read()
            .unwrap_or_else(|_| die("a lock was poisoned"))
    }

    fn writer(&self, thread: u64, seed: u64) -> ! {
        let mut rng = Rng(seed);
        let mut mine: Option<Appended> = None;
        for seq in 0.. {
            let op = rng.below(100);
            if op < 70 {
                let n = if rng.percent(30) { 2 + rng.below(5) } else { 1 };
                let large = n == 1 && rng.percent(1);
                let durability = if rng.percent(40) {
                    Durability::Synced
                } else {
                    Durability::Buffered
                };
                let named = rng.percent(30);
                mine = Some(self.append(thread, seq, n, large, durability, named));
            } else if op < 85 {
                if let Some(appended) = mine {
                    self.wait(thread, appended);
                }
            } else {
                self.sync(thread, mine);
            }
        }
        die("a writer ran out of sequence numbers")
    }

    /// Appends a record or a batch of `n`. A `named` append announces its LSNs and writes them
    /// into its records, alone; the others run side by side and report their LSNs after.
    fn append(
        &self,
        thread: u64,
        seq: u64,
        n: u64,
        large: bool,
        durability: Durability,
        named: bool,
    ) -> Appended {
        let rec = |lsn, index| Rec {
            lsn,
            index,
            count: n,
            run: self.run,
            thread,
            seq,
            large,
        };
        let call = |recs: &[Vec<u8>]| {
            let got = if n == 1 {
                self.log.append(&recs[0], durability).map(|l| (l, l))
            } else {
                self.log.append_batch(recs, durability)
            };
            match got {
                Ok((f, l)) if l.get() + 1 - f.get() == n => (f.get(), l.get()),
                Ok((f, l)) => die(&format!("a batch of {n} got {f}..={l}")),
                Err(e) => die(&format!("append failed: {e}")),
            }
        };
        let (run, large) = (self.run, u8::from(large));
        let (guard, last) = if named {
            let guard = self.exclusive();
            let first = self.log.last_lsn().get() + 1;
            let recs: Vec<Vec<u8>> = (0..n).map(|i| payload(&rec(Some(first + i), i))).collect();
            let last = first + n - 1;
            self.say(&format!(
                "append {first} {last} {run} {thread} {seq} {large}"
            ));
            let got = call(&recs);
            if got != (first, last) {
                die(&format!("append got {got:?}, expected {first}..={last}"));
            }
            (Either::Exclusive(guard), last)
        } else {
            let recs: Vec<Vec<u8>> = (0..n).map(|i| payload(&rec(None, i))).collect();
            let guard = self.shared();
            let (first, last) = call(&recs);
            self.say(&format!(
                "placed {first} {last} {run} {thread} {seq} {large}"
            ));
            (Either::Shared(guard), last)
        };
        if durability == Durability::Synced {
            self.say(&format!("ack {last} {run} {thread} {seq}"));
        }
        Appended {
            lsn: last,
            seq,
            rollbacks: guard.rollbacks(),
        }
    }

    /// Waits for an earlier append of this thread to be durable.
    fn wait(&self, thread: u64, a: Appended) {
        match self.log.wait_durable(Lsn::new(a.lsn)) {
            Ok(()) => self.say(&format!("ack {} {} {thread} {}", a.lsn, self.run, a.seq)),
            // A rollback since the append removed the record (and maybe others took its LSN).
            Err(e @ (Error::RolledBack { .. } | Error::InvalidLsn { .. })) => {
                if *self.shared() == a.rollbacks {
                    die(&format!(
                        "wait_durable({}) failed without a rollback: {e}",
                        a.lsn
                    ));
                }
            }
            Err(e) => die(&format!("wait_durable({}) failed: {e}", a.lsn)),
        }
    }

    /// Syncs; acknowledges this thread's last append, which came before the call.
    fn sync(&self, thread: u64, last: Option<Appended>) {
        if let Err(e) = self.log.sync() {
            die(&format!("sync failed: {e}"));
        }
        if let Some(a) = last {
            self.say(&format!("ack {} {} {thread} {}", a.lsn, self.run, a.seq));
        }
    }

    /// Checkpoints and rolls back now and then.
    fn maintain(&self, seed: u64, mut checkpoint: u64) -> ! {
        let mut rng = Rng(seed);
        loop {
            std::thread::sleep(Duration::from_micros(500 + rng.below(8_000)));
            let op = rng.below(10);
            if op < 6 {
                // Only this thread rolls back: the next LSN does not fall before the call.
                let next = self.log.last_lsn().get() + 1;
                if next <= checkpoint {
                    continue;
                }
                // Often close behind the newest record, sometimes covering every record.
                let c = if rng.percent(15) {
                    next
                } else {
                    next.saturating_sub(rng.below(300)).max(checkpoint + 1)
                };
                self.say(&format!("checkpoint-begin {c}"));
                if let Err(e) = self.log.checkpoint(Lsn::new(c)) {
                    die(&format!("checkpoint({c}) failed: {e}"));
                }
                self.say(&format!("checkpoint {c}"));
                checkpoint = c;
            } else if op < 9 {
                let mut rollbacks = self.exclusive();
                let last = self.log.last_lsn().get();
                // Within the last records, never below what the checkpoint dropped.
                let lowest = last.saturating_sub(40).max(checkpoint.saturating_sub(1));
                if lowest >= last {
                    continue;
                }
                let to = lowest + rng.below(last - lowest);
                *rollbacks += 1;
                self.say(&format!("rollback-begin {to}"));
                if let Err(e) = self.log.truncate_after(Lsn::new(to)) {
                    die(&format!("truncate_after({to}) failed: {e}"));
                }
                self.say(&format!("rollback {to}"));
            }
        }
    }
}

/// The guard an append holds until it has reported.
enum Either<'a> {
    Exclusive(RwLockWriteGuard<'a, u64>),
    Shared(RwLockReadGuard<'a, u64>),
}

impl Either<'_> {
    fn rollbacks(&self) -> u64 {
        match self {
            Either::Exclusive(g) => **g,
            Either::Shared(g) => **g,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent

/// A record the model expects at an LSN, with where its batch starts and ends in the log (its
/// last LSN, or the LSN a rollback cut it at).
#[derive(Debug, Clone, Copy)]
struct Expected {
    rec: Rec,
    first: u64,
    end: u64,
}

/// What the parent knows of the log: the record expected at each LSN from the checkpoint to the
/// last LSN reported, and what was acknowledged.
#[derive(Debug)]
struct Model {
    recs: BTreeMap<u64, Expected>,
    /// One past the highest LSN reported.
    next: u64,
    /// Every LSN from here on was appended after the last named append or rollback.
    floor: u64,
    /// The last checkpoint known to be done.
    checkpoint: u64,
    /// Every record up to here (at or above the checkpoint) must survive.
    acked: u64,
    /// A checkpoint or rollback begun and not reported done: the kill may have come before,
    /// during or after it.
    pending_checkpoint: Option<u64>,
    pending_rollback: Option<u64>,
    /// The highest `seq` each writer thread of this round's child reported.
    seqs: BTreeMap<u64, u64>,
    /// Whether the log was last opened as a dry run: the next child runs recovery itself.
    dry_run: bool,
}

/// What the rounds checked.
#[derive(Debug, Default)]
struct Stats {
    seed: u64,
    rounds: u64,
    /// Kills before the child had reported opening the log (during its start or its recovery).
    early_kills: u64,
    dry_runs: u64,
    lines: u64,
    appends: u64,
    acks: u64,
    checkpoints: u64,
    rollbacks: u64,
    /// Kills in the middle of a checkpoint or a rollback (begun, not reported done).
    kills_in_maintenance: u64,
    /// Records read back and checked, over every reopen.
    records_checked: u64,
    /// Acknowledged records that had to be there, over every reopen.
    acked_checked: u64,
    /// Appends found in the log that the child was killed before reporting.
    unreported: u64,
    tails_cut: u64,
    bytes_cut: u64,
    intact_frames_cut: u64,
    elapsed: Duration,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kills (seed {}): {} rounds in {:.1} s, each ending in a SIGKILL ({} before the child \
             had opened the log, {} in a checkpoint or rollback; {} reopened read-only); \
             {} records read back and checked, {} of them acknowledged; the children reported \
             {} lines: {} appends, {} acknowledgements, {} checkpoints, {} rollbacks; {} appends \
             found unreported; recovery cut a torn tail in {} rounds ({} bytes, {} intact frames \
             after a hole)",
            self.seed,
            self.rounds,
            self.elapsed.as_secs_f64(),
            self.early_kills,
            self.kills_in_maintenance,
            self.dry_runs,
            self.records_checked,
            self.acked_checked,
            self.lines,
            self.appends,
            self.acks,
            self.checkpoints,
            self.rollbacks,
            self.unreported,
            self.tails_cut,
            self.bytes_cut,
            self.intact_frames_cut,
        )
    }
}

/// Runs kill rounds on one log for `budget` (and at least [`MIN_ROUNDS`]).
fn rounds(budget: Duration, progress: bool) -> Stats {
    let seed = match std::env::var(SEED) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED}={s:?} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    // Kept on failure, for `tidelog verify` and `tidelog dump`; removed after success.
    let base = tempfile::Builder::new()
        .prefix("kills-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temporary directory")
        .keep();
    let dir = base.join("log");
    let mut rng = Rng(seed);
    let mut model = Model {
        recs: BTreeMap::new(),
        next: 1,
        floor: 1,
        checkpoint: 1,
        acked: 0,
        pending_checkpoint: None,
        pending_rollback: None,
        seqs: BTreeMap::new(),
        dry_run: false,
    };
    let mut stats = Stats {
        seed,
        ..Stats::default()
    };
    let started = Instant::now();
    let mut shown = Instant::now();
    while stats.rounds < MIN_ROUNDS || started.elapsed() < budget {
        round(&dir, &mut model, &mut rng, &mut stats);
        stats.rounds += 1;
        stats.elapsed = started.elapsed();
        if progress && shown.elapsed() >= Duration::from_secs(60) {
            println!("{stats}");
            shown = Instant::now();
        }
    }
    std::fs::remove_dir_all(&base).expect("remove the test directory");
    stats
}

/// One round: start a child on the log, kill it, check what it left.
fn round(dir: &Path, model: &mut Model, rng: &mut Rng, stats: &mut Stats) {
    let run = stats.rounds;
    let child_seed = rng.next();
    let context = format!(
        "round {run} (seed {}, child seed {child_seed}, {:?}), log in {}",
        stats.seed,
        ChildConfig::from_seed(child_seed),
        dir.display()
    );
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "kills::child",
            "--exact",
            "--ignored",
            "--nocapture",
            "-q",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_RUN, run.to_string())
        .env(CHILD_SEED, child_seed.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("the child's stdout");
    let mut stderr = child.stderr.take().expect("the child's stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(line) = line.strip_prefix(MARK)
                && tx.send(line.to_owned()).is_err()
            {
                break;
            }
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut lines = Vec::new();
    if rng.percent(10) {
        // Anywhere in the child's start, its recovery, or its first appends.
        std::thread::sleep(Duration::from_millis(rng.below(25)));
    } else {
        for line in rx.iter() {
            let opened = line.starts_with("open ");
            lines.push(line);
            if opened {
                break;
            }
        }
        let ms = if rng.percent(50) { 20 } else { 200 };
        std::thread::sleep(Duration::from_millis(1 + rng.below(ms)));
    }
    // SIGKILL: whatever the child is in the middle of stays as it is.
    let _ = child.kill();
    let status = child.wait().expect("wait for the child");
    drop(stdin);
    reader.join().expect("the report reader");
    lines.extend(rx.iter());
    let errors = errors.join().expect("the stderr reader");
    assert_eq!(
        status.signal(),
        Some(9),
        "{context}: the child ended on its own ({status}):\n{errors}"
    );
    if !lines.iter().any(|l| l.starts_with("open ")) {
        stats.early_kills += 1;
    }
    stats.lines += lines.len() as u64;

    model.seqs.clear();
    for line in &lines {
        if let Err(e) = model.apply(line, stats) {
            panic!("{context}: report line {line:?}: {e}\n{}", tail(&lines));
        }
    }
    if model.pending_checkpoint.is_some() || model.pending_rollback.is_some() {
        stats.kills_in_maintenance += 1;
    }

    let mut dry_run = rng.percent(25);
    let open = |read_only| {
        ChildConfig::from_seed(child_seed)
            .builder(dir)
            .read_only(read_only)
            .open()
    };
    let log = match open(dry_run) {
        // The first child was killed before it had created the log; nothing was reported.
        Err(Error::NotFound { .. }) if dry_run && model.next == 1 => {
            dry_run = false;
            open(false)
        }
        opened => opened,
    }
    .unwrap_or_else(|e| panic!("{context}: reopen failed: {e}\n{}", tail(&lines)));
    if let Err(e) = model.verify(&log, run, rng, stats) {
        panic!(
            "{context}: {e}\n{}model: checkpoint {}, acked {}, next {}, pending checkpoint \
             {:?}, pending rollback {:?}\n{}",
            log.recovery_report(),
            model.checkpoint,
            model.acked,
            model.next,
            model.pending_checkpoint,
            model.pending_rollback,
            tail(&lines)
        );
    }
    model.dry_run = dry_run;
    stats.dry_runs += u64::from(dry_run);
    drop(log);
    if !dry_run {
        // What recovery cut is kept in quarantine/; it was checked, and a long soak would fill
        // the disk with it.
        let _ = std::fs::remove_dir_all(dir.join("quarantine"));
    }
}

/// The last lines of a child's report, for a failure message.
fn tail(lines: &[String]) -> String {
    let from = lines.len().saturating_sub(40);
    let mut text = format!("the child's last {} report lines:", lines.len() - from);
    for line in &lines[from..] {
        text.push_str("\n  ");
        text.push_str(line);
    }
    text
}

impl Model {
    /// Takes one line of the child's report into the model.
    fn apply(&mut self, line: &str, stats: &mut Stats) -> Result<(), String> {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let nums: Vec<u64> = rest
            .split(' ')
            .map(|s| s.parse().map_err(|_| format!("bad number {s:?}")))
            .collect::<Result<_, _>>()?;
        match (kind, &nums[..]) {
            ("open", &[last, checkpoint, damage]) => {
                if (last, checkpoint) != (self.next - 1, self.checkpoint) {
                    return Err(format!(
                        "the child opened the log at last LSN {last}, checkpoint {checkpoint}; \
                         the parent had verified last LSN {}, checkpoint {}",
                        self.next - 1,
                        self.checkpoint
                    ));
                }
                if !self.dry_run && damage != 0 {
                    return Err(format!(
                        "the child's recovery found {damage} damaged places after the parent's \
                         recovery"
                    ));
                }
            }
            (kind @ ("append" | "placed"), &[first, last, run, thread, seq, large]) => {
                let named = kind == "append";
                if last < first || first < self.floor {
                    return Err(format!("LSNs {first}..={last} below {}", self.floor));
                }
                // A named append runs alone: every earlier append has reported.
                let lo = self.floor.max(self.checkpoint);
                if named
                    && (first != self.next
                        || self.recs.range(lo..self.next).count() as u64 != self.next - lo)
                {
                    return Err(format!(
                        "announced {first}..={last}, but LSNs {lo}..{} are not all reported",
                        self.next
                    ));
                }
                for lsn in first..=last {
                    let rec = Rec {
                        lsn: named.then_some(lsn),
                        index: lsn - first,
                        count: last + 1 - first,
                        run,
                        thread,
                        seq,
                        large: large == 1,
                    };
                    let expected = Expected {
                        rec,
                        first,
                        end: last,
                    };
                    if let Some(other) = self.recs.insert(lsn, expected) {
                        return Err(format!("LSN {lsn} was reported for {other:?} too"));
                    }
                }
                self.next = self.next.max(last + 1);
                if named {
                    self.floor = last + 1;
                }
                let top = self.seqs.entry(thread).or_insert(seq);
                *top = (*top).max(seq);
                stats.appends += 1;
            }
            ("ack", &[lsn, run, thread, seq]) => {
                // Only if the append still holds the LSN: a rollback since may have replaced it.
                if self
                    .recs
                    .get(&lsn)
                    .is_some_and(|e| e.rec.same_append(run, thread, seq))
                {
                    self.acked = self.acked.max(lsn);
                }
                stats.acks += 1;
            }
            ("checkpoint-begin", &[c]) => {
                if c <= self.checkpoint {
                    return Err(format!("checkpoint {c} not past {}", self.checkpoint));
                }
                self.pending_checkpoint = Some(c);
            }
            ("checkpoint", &[c]) => {
                if self.pending_checkpoint != Some(c) {
                    return Err("a checkpoint done that had not begun".into());
                }
                self.pending_checkpoint = None;
                self.checkpoint = c;
                self.acked = self.acked.max(c - 1);
                self.recs = self.recs.split_off(&c);
                stats.checkpoints += 1;
            }
            ("rollback-begin", &[to]) => {
                if to + 1 < self.checkpoint || to + 1 >= self.next {
                    return Err(format!(
                        "a rollback to {to}, checkpoint {}, next LSN {}",
                        self.checkpoint, self.next
                    ));
                }
                self.pending_rollback = Some(to);
            }
            ("rollback", &[to]) => {
                if self.pending_rollback != Some(to) {
                    return Err("a rollback done that had not begun".into());
                }
                self.pending_rollback = None;
                drop(self.recs.split_off(&(to + 1)));
                self.cut_batch_at(to);
                self.next = to + 1;
                self.floor = to + 1;
                // What it kept is durable.
                self.acked = to;
                stats.rollbacks += 1;
            }
            _ => return Err("not a report line".into()),
        }
        Ok(())
    }

    /// The batch holding `lsn` ends there now.
    fn cut_batch_at(&mut self, lsn: u64) {
        if let Some(&Expected { first, .. }) = self.recs.get(&lsn) {
            for (_, e) in self.recs.range_mut(first..=lsn) {
                e.end = lsn;
            }
        }
    }

    /// Checks the reopened log against the model, then makes the model what the log now is.
    fn verify(
        &mut self,
        log: &Log,
        run: u64,
        rng: &mut Rng,
        stats: &mut Stats,
    ) -> Result<(), String> {
        let report = log.recovery_report();
        let last_segment = log.segments().last().map(|s| s.path.clone());
        for d in &report.damage {
            let tail_cut = matches!(d.action, DamageAction::Cut { .. })
                && Some(&d.path) == last_segment.as_ref();
            if !tail_cut {
                return Err(format!(
                    "recovery did more than cut the end of the last segment: {d:?}"
                ));
            }
        }
        if !report.lost.is_empty() || !report.unknown_files.is_empty() {
            return Err("recovery lost records or found unknown files".into());
        }
        if !report.damage.is_empty() {
            stats.tails_cut += 1;
            stats.bytes_cut += report.torn_bytes_cut;
            stats.intact_frames_cut += report.intact_frames_cut;
        }

        let cp = log.checkpoint_lsn().get();
        let last = log.last_lsn().get();
        if cp != self.checkpoint && Some(cp) != self.pending_checkpoint {
            return Err(format!(
                "checkpoint {cp}: neither the last one done ({}) nor one begun ({:?})",
                self.checkpoint, self.pending_checkpoint
            ));
        }
        if last + 1 < cp {
            return Err(format!("last LSN {last} below checkpoint {cp}"));
        }
        // A rollback that had begun may have removed acknowledged records past its LSN.
        let required = match self.pending_rollback {
            Some(to) => self.acked.min(to),
            None => self.acked,
        };
        if required >= cp && last < required {
            return Err(format!(
                "acknowledged records lost: the log ends at {last}, LSN {required} was \
                 acknowledged"
            ));
        }
        if log.durable_lsn().get() != last {
            return Err(format!(
                "durable LSN {} after recovery, last LSN {last}",
                log.durable_lsn()
            ));
        }

        // Appends the child was killed before reporting, found in the log, by writer thread.
        let mut unreported: BTreeMap<u64, Expected> = BTreeMap::new();
        let mut found = Vec::new();
        let mut due = cp;
        for record in log.iter().map_err(|e| format!("iter: {e}"))? {
            let record = record.map_err(|e| format!("reading LSN {due}: {e}"))?;
            let lsn = record.lsn().get();
            if lsn != due {
                return Err(format!("LSN {lsn} where {due} was due"));
            }
            due += 1;
            let got = parse(record.data())
                .map_err(|e| format!("LSN {lsn} holds no record the child wrote: {e}"))?;
            if got.lsn.is_some_and(|named| named != lsn) {
                return Err(format!("LSN {lsn} holds the record of {got:?}"));
            }
            let want = match self.recs.get(&lsn) {
                Some(&want) if want.rec == got => want,
                Some(want) => {
                    return Err(format!("LSN {lsn} holds {got:?}, expected {want:?}"));
                }
                None => {
                    let want = self.unreported(lsn, got, run, &unreported)?;
                    if unreported.insert(got.thread, want).is_none() {
                        stats.unreported += 1;
                    }
                    found.push((lsn, want));
                    want
                }
            };
            let rollback_end = lsn == last && self.pending_rollback == Some(lsn);
            if record.is_batch_start() != (lsn == want.first)
                || (record.is_batch_end() != (lsn == want.end) && !rollback_end)
            {
                return Err(format!(
                    "LSN {lsn}: batch flags start {} end {}, for {want:?}",
                    record.is_batch_start(),
                    record.is_batch_end(),
                ));
            }
        }
        if due != last + 1 {
            return Err(format!(
                "the log iterates to {}, its last LSN is {last}",
                due - 1
            ));
        }
        stats.records_checked += last + 1 - cp;
        stats.acked_checked += (required + 1).saturating_sub(cp);
        self.recs.extend(found);
        // A whole batch at the end, unless a rollback that had begun ended the log inside it.
        if let Some(want) = self.recs.get(&last)
            && last >= cp
            && want.end != last
            && self.pending_rollback != Some(last)
        {
            return Err(format!("the log ends at {last}, inside {want:?}"));
        }
        // Reads by LSN agree with the iterator.
        for _ in 0..8 {
            if last < cp {
                break;
            }
            let lsn = cp + rng.below(last + 1 - cp);
            let data = log
                .read(Lsn::new(lsn))
                .map_err(|e| format!("read({lsn}): {e}"))?
                .into_data();
            if data != payload(&self.recs[&lsn].rec) {
                return Err(format!("read({lsn}) differs from the record iterated"));
            }
        }

        // The next child continues from this log.
        if self.pending_rollback == Some(last) {
            self.cut_batch_at(last);
        }
        self.recs = self.recs.split_off(&cp);
        drop(self.recs.split_off(&(last + 1)));
        self.next = last + 1;
        self.floor = last + 1;
        self.checkpoint = cp;
        self.acked = required.max(cp - 1).min(last);
        self.pending_checkpoint = None;
        self.pending_rollback = None;
        Ok(())
    }

    /// A record at `lsn` that no report put there: it must be of an append of this round's
    /// child that was killed before it could report it, the last append of its thread (one per
    /// thread), and in its place in that append's batch.
    fn unreported(
        &self,
        lsn: u64,
        got: Rec,
        run: u64,
        so_far: &BTreeMap<u64, Expected>,
    ) -> Result<Expected, String> {
        let bad = |why: &str| Err(format!("LSN {lsn} holds {got:?}, never reported: {why}"));
        if got.run != run || got.thread >= WRITERS || got.lsn.is_some() {
            return bad("not an unreported append of this round's child");
        }
        // It held the child's lock for concurrent appends when the kill came: no named append
        // or rollback came after it.
        if lsn < self.floor {
            return bad("below the last named append or rollback");
        }
        if self
            .seqs
            .get(&got.thread)
            .is_some_and(|&top| got.seq <= top)
        {
            return bad("its thread reported a later append");
        }
        let first = lsn - got.index;
        let want = Expected {
            rec: got,
            first,
            end: first + got.count - 1,
        };
        match so_far.get(&got.thread) {
            Some(other) if (other.rec.seq, other.first) != (got.seq, first) => {
                bad("a second unreported append of its thread")
            }
            _ => Ok(want),
        }
    }
}

#[test]
fn records_check_themselves() {
    let rec = Rec {
        lsn: Some(12),
        index: 2,
        count: 5,
        run: 3,
        thread: 1,
        seq: 99,
        large: false,
    };
    let bytes = payload(&rec);
    assert_eq!(parse(&bytes), Ok(rec));
    let unnamed = Rec { lsn: None, ..rec };
    assert_eq!(parse(&payload(&unnamed)), Ok(unnamed));
    let large = Rec { large: true, ..rec };
    assert!(payload(&large).len() > 64 << 10);
    assert_eq!(parse(&payload(&large)), Ok(large));
    // Any byte changed, or the record cut short, fails the check.
    for i in [0, 5, bytes.len() / 2, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[i] ^= 0x20;
        assert!(parse(&bad).is_err(), "byte {i} changed");
    }
    assert!(parse(&bytes[..bytes.len() - 1]).is_err());
    assert!(parse(b"").is_err());
}

// ---------------------------------------------------------------------------------------------
// The proof of a sync, after a kill
// ---------------------------------------------------------------------------------------------

/// The directory of the log the child of [`synced_child`] writes.
const SYNCED_CHILD_DIR: &str = "TIDELOG_SYNCED_CHILD_DIR";
/// Records the child of [`synced_child`] appends before its one sync.
const SYNCED_RECORDS: u64 = 40;

/// The child process of [`damage_to_records_synced_before_a_kill_is_reported`]: appends
/// [`SYNCED_RECORDS`] records `Buffered` to the log named by `TIDELOG_SYNCED_CHILD_DIR`, syncs
/// once, says so, and waits to be killed. Without that variable it returns at once.
#[test]
#[ignore = "the child process of a kill test; it runs only when the test starts it"]
fn synced_child() {
    let Some(dir) = std::env::var_os(SYNCED_CHILD_DIR) else {
        return;
    };
    let log = Log::builder(Path::new(&dir))
        .sync_policy(SyncPolicy::Manual)
        .open()
        .unwrap_or_else(|e| die(&format!("open: {e}")));
    for lsn in 1..=SYNCED_RECORDS {
        log.append(format!("record {lsn}").as_bytes(), Durability::Buffered)
            .unwrap_or_else(|e| die(&format!("append: {e}")));
    }
    log.sync().unwrap_or_else(|e| die(&format!("sync: {e}")));
    println!("{MARK}synced {}", log.last_lsn());
    std::io::stdout()
        .flush()
        .unwrap_or_else(|e| die(&format!("stdout: {e}")));
    std::thread::sleep(Duration::from_secs(600));
}

/// Records appended buffered and made durable by one `sync()`, after which the writer is killed
/// (the page cache survives): damage to any of them, the last one included, is reported as
/// damage to durable records, in the default mode an error, not cut as a torn tail. The sync
/// marker the sync wrote before it returned is the proof (docs/format.md, 2.4).
#[test]
fn damage_to_records_synced_before_a_kill_is_reported() {
    let tmp = tempfile::Builder::new()
        .prefix("tidelog-synced-kill")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temporary directory");
    let dir = tmp.path().join("log");
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "kills::synced_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "-q",
            "--test-threads=1",
        ])
        .env(SYNCED_CHILD_DIR, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("the child's output");
    let synced = BufReader::new(stdout)
        .lines()
        .map_while(std::result::Result::ok)
        .find_map(|l| l.strip_prefix(MARK).map(str::to_owned))
        .expect("the child reports its sync");
    assert_eq!(synced, format!("synced {SYNCED_RECORDS}"));
    child.kill().expect("kill the child");
    let status = child.wait().expect("the child ends");
    assert_eq!(status.signal(), Some(9), "killed: {status:?}");

    let storage = tidelog::io::StdStorage::new();
    let segment = dir.join(format!("{:020}.seg", 1));
    let pristine = std::fs::read(&segment).expect("the segment");
    for victim in [1, SYNCED_RECORDS / 2, SYNCED_RECORDS] {
        let frames = tidelog::inspect::Frames::open_with(&storage, &segment, None)
            .expect("inspect the segment");
        let offset = frames
            .filter_map(std::result::Result::ok)
            .find_map(|e| match e {
                tidelog::inspect::Entry::Frame(f) if f.is_record() && f.lsn.get() == victim => {
                    Some(f.offset)
                }
                _ => None,
            })
            .expect("the victim's frame");
        let mut bytes = pristine.clone();
        bytes[usize::try_from(offset).expect("small") + 35] ^= 0x04;
        std::fs::write(&segment, &bytes).expect("damage the record");
        match Log::builder(&dir).open() {
            Err(Error::Corrupt {
                path, offset: at, ..
            }) => {
                assert_eq!((path, at), (segment.clone(), offset), "LSN {victim}");
            }
            other => panic!(
                "LSN {victim}: damage to a synced record was not refused: {:?}",
                other.map(|log| log.recovery_report().clone())
            ),
        }
    }
    std::fs::write(&segment, &pristine).expect("restore");
    let log = Log::builder(&dir)
        .open()
        .expect("the log as the kill left it");
    assert!(
        log.recovery_report().is_clean(),
        "{}",
        log.recovery_report()
    );
    assert_eq!(log.last_lsn(), Lsn::new(SYNCED_RECORDS));
}
