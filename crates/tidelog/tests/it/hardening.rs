//! Regression tests for defects found by hardening work, each modelled on its reproduction:
//!
//! - syncs racing rollbacks and segment rolls must leave a healthy log;
//! - a rollback ([`Log::truncate_after`]) must be visible to what runs beside it: the interval
//!   syncer, tails, iterators, and callers waiting for durability of a record it removed
//!   ([`Error::RolledBack`]);
//! - a bounded log must take appends again once a checkpoint drops every record, and an append
//!   waiting for room must be woken by that checkpoint, or by the log being poisoned;
//! - legal but extreme input (`Duration::MAX` timeouts and periods) must not panic, and a panic
//!   inside a user [`Storage`] must poison the log instead of leaving other callers waiting;
//! - a [`tidelog::DurableFuture`] must not keep the directory of a dropped log locked.
//!
//! Most use [`HookedStorage`], which can hold fsyncs at a gate, count them, and panic on demand.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Waker};
use std::thread;
use std::time::Duration;

use tidelog::io::{FaultPlan, FaultyStorage, MemStorage, Op};
use tidelog::{Durability, Error, Log, LogBuilder, Lsn, Result, SyncPolicy, WhenFull};

use crate::common::{Env, SEGMENT_BYTES, assert_holds, payload, read_all};
use crate::hooked::HookedStorage;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The LSN of the last record appended.
pub(crate) fn last(log: &Log) -> Lsn {
    log.last_lsn()
}

/// The log's checkpoint LSN.
fn checkpoint_lsn(log: &Log) -> Lsn {
    log.checkpoint_lsn()
}

/// Room left in a bounded log.
fn free_bytes(log: &Log) -> u64 {
    log.free_bytes().expect("the log is bounded")
}

/// Runs a future to completion on a single-threaded runtime of its own.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(future)
}

/// A payload that names its LSN and the `tag` of the append that wrote it, so a record appended
/// after a rollback is told apart from the one it replaced.
fn tagged(tag: &str, lsn: u64) -> Vec<u8> {
    format!("{tag} record {lsn}").into_bytes()
}

/// A `tagged` payload padded to `len` bytes.
fn tagged_len(tag: &str, lsn: u64, len: usize) -> Vec<u8> {
    let mut p = tagged(tag, lsn);
    p.resize(len.max(p.len()), b'a' + (lsn % 26) as u8);
    p
}

/// Bytes a frame adds to its payload.
const FRAME_HEADER_BYTES: u64 = 24;

/// A log on `storage` in `/log`, with small segments.
fn builder_on(storage: &HookedStorage) -> LogBuilder {
    Log::builder("/log")
        .storage(Arc::new(storage.clone()))
        .segment_bytes(SEGMENT_BYTES)
}

/// Whether `got` is `Error::RolledBack { lsn, to }` with these LSNs.
fn is_rolled_back<T>(got: &Result<T>, lsn: u64, to: u64) -> bool {
    matches!(got, Err(Error::RolledBack { lsn: l, to: t }) if *l == Lsn::new(lsn) && *t == Lsn::new(to))
}

/// A read record's LSN and payload, or the error in its place.
type Read = Result<(u64, Vec<u8>)>;

/// The LSN and payload of a read result, for messages and comparisons.
fn lsn_and_data(got: Result<tidelog::Record>) -> Read {
    got.map(|r| (r.lsn().get(), r.into_data()))
}

/// A read result for a failure message: the LSN, the start of the payload and its size.
fn describe(read: &Read) -> String {
    match read {
        Ok((lsn, data)) => {
            let head = String::from_utf8_lossy(data.get(..20).unwrap_or(data));
            format!("LSN {lsn}: {head:?}.. ({} bytes)", data.len())
        }
        Err(e) => format!("error: {e:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Syncs racing rollbacks and rolls
// ---------------------------------------------------------------------------------------------

/// The payload appended at `lsn` in round `round` of the race below.
fn round_payload(lsn: u64, round: u64) -> Vec<u8> {
    tagged_len(&format!("round {round}"), lsn, 200)
}

/// Races a thread that syncs without pause against `rounds` rounds of: append 10 records of
/// about 200 bytes, roll the last 5 back (segments of 4 KiB roll every few rounds). Returns the
/// first error of either side, and how many syncs the racing thread made.
fn race_syncs_with_rollbacks(log: &Arc<Log>, rounds: u64) -> Result<u64> {
    let stop = Arc::new(AtomicBool::new(false));
    let syncer = {
        let (log, stop) = (Arc::clone(log), Arc::clone(&stop));
        thread::spawn(move || -> Result<u64> {
            let mut syncs = 0;
            while !stop.load(Ordering::SeqCst) {
                log.sync()?;
                syncs += 1;
            }
            Ok(syncs)
        })
    };
    let rolled = (|| -> Result<()> {
        for round in 0..rounds {
            // The log starts empty and each round keeps 5 records.
            let from = 5 * round;
            for lsn in from + 1..=from + 10 {
                log.append(&round_payload(lsn, round), Durability::Buffered)?;
            }
            log.truncate_after(Lsn::new(from + 5))?;
        }
        Ok(())
    })();
    stop.store(true, Ordering::SeqCst);
    // The syncing side's error first: it is the cause when both failed.
    let syncs = syncer.join().expect("sync thread")?;
    rolled.map(|()| syncs)
}

#[test]
fn syncs_racing_rollbacks_and_rolls_leave_the_log_healthy() -> Result<()> {
    const ROUNDS: u64 = 2000;
    for env in Env::both() {
        let name = env.name();
        let log = Arc::new(env.open()?);
        let syncs = race_syncs_with_rollbacks(&log, ROUNDS)
            .unwrap_or_else(|e| panic!("{name}: the race failed: {e}"));
        assert!(syncs > 0, "{name}: the sync thread ran");
        log.sync()?;
        drop(log);

        let log = env.open()?;
        assert_eq!(last(&log), Lsn::new(5 * ROUNDS), "{name}: last LSN");
        let all = read_all(&log)?;
        assert_eq!(all.len() as u64, 5 * ROUNDS, "{name}: records held");
        for (lsn, data) in all {
            // LSN l was last written, and kept, by round (l - 1) / 5.
            assert!(
                data == round_payload(lsn, (lsn - 1) / 5),
                "{name}: payload of LSN {lsn}"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The interval syncer after a rollback below an LSN it was asked for
// ---------------------------------------------------------------------------------------------

/// CPU time (user + system) thread `tid` of this process used so far, in clock ticks.
#[cfg(target_os = "linux")]
fn cpu_ticks(tid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .expect("the syncer thread's stat");
    // The fields after the command name (which is in parentheses and may hold spaces): state is
    // the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a stat line")
        .1
        .split_whitespace()
        .collect();
    let field = |i: usize| -> u64 {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .expect("a numeric stat field")
    };
    field(11) + field(12)
}

/// The syncer thread of the log on `storage`: a record is made durable through it first (a
/// `durable` future asks the syncer), which shows its thread id.
#[cfg(target_os = "linux")]
fn syncer_of(log: &Log, storage: &HookedStorage) -> Result<String> {
    let lsn = log.append(b"find the syncer", Durability::Buffered)?;
    block_on(log.durable(lsn)?)?;
    Ok(storage.syncer_tid().expect("the syncer thread synced"))
}

/// Asserts that the syncer thread `tid` stays idle for a while.
///
/// This is the one check of this suite that measures time: a spinning syncer shows only in the
/// CPU time it burns. The bound is loose (a third of the wall time; an idle syncer uses next to
/// nothing, a spinning one close to all of it), so a loaded machine cannot fail it (at worst, by
/// starving a spinning syncer, it hides the defect).
#[cfg(target_os = "linux")]
fn assert_idle(tid: &str) {
    let ticks_before = cpu_ticks(tid);
    let started = std::time::Instant::now();
    thread::sleep(Duration::from_millis(300));
    let ticks = cpu_ticks(tid) - ticks_before;
    let wall = started.elapsed();
    // Linux reports thread CPU time in USER_HZ ticks, 100 per second.
    let cpu = Duration::from_millis(ticks * 10);
    assert!(
        cpu * 3 < wall,
        "the idle syncer used {cpu:?} of CPU in {wall:?}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn the_interval_syncer_idles_after_a_rollback_below_an_lsn_it_was_asked_for() -> Result<()> {
    let storage = HookedStorage::new(Arc::new(MemStorage::new()));
    let log = builder_on(&storage)
        .sync_policy(SyncPolicy::Interval(Duration::from_millis(20)))
        .open()?;
    let tid = syncer_of(&log, &storage)?;

    for lsn in 2..=10 {
        log.append(&tagged("first", lsn), Durability::Buffered)?;
    }
    // An async waiter asks the syncer for LSN 10, which is then rolled back.
    block_on(log.durable(Lsn::new(10))?)?;
    log.truncate_after(Lsn::new(5))?;

    // Nothing is appended now, so the syncer has nothing to do but wait for its next period.
    assert_idle(&tid);

    // And it still syncs what comes next.
    let lsn = log.append(&tagged("second", 6), Durability::Buffered)?;
    block_on(log.durable(lsn)?)?;
    Ok(())
}

/// The byte-count syncer woken for bytes that a rollback then takes away: with nothing left to
/// sync, it must not keep finding the count due.
#[cfg(target_os = "linux")]
#[test]
fn the_bytes_syncer_idles_after_a_rollback_takes_the_bytes_it_was_woken_for() -> Result<()> {
    let storage = HookedStorage::new(Arc::new(MemStorage::new()));
    let log = builder_on(&storage)
        .sync_policy(SyncPolicy::Bytes(1000))
        .open()?;
    let tid = syncer_of(&log, &storage)?;
    let log = Arc::new(log);
    // A committer's fsync is held: its sync, and the syncer's behind it, cannot finish.
    let held = storage.hold_syncs(1);
    let committer = {
        let log = Arc::clone(&log);
        thread::spawn(move || log.append(&tagged("held", 2), Durability::Synced))
    };
    held.wait_entered();
    // Enough bytes to wake the syncer, which then waits behind the held sync.
    for lsn in 3..=20 {
        log.append(&[b'x'; 100], Durability::Buffered)?;
        assert_eq!(last(&log), Lsn::new(lsn));
    }
    // The rollback takes every record but the first, the ones the syncer was woken for too.
    log.truncate_after(Lsn::FIRST)?;
    held.release();
    let committed = committer.join().expect("committer");
    assert!(is_rolled_back(&committed, 2, 1), "{committed:?}");
    assert_idle(&tid);
    // And it still syncs what comes next.
    let lsn = log.append(&vec![b'y'; 2000], Durability::Buffered)?;
    block_on(log.durable(lsn)?)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tails across a rollback
// ---------------------------------------------------------------------------------------------

/// Appends `tagged(tag, lsn)` for `lsns`, each durable when it returns.
fn append_synced(log: &Log, tag: &str, lsns: std::ops::RangeInclusive<u64>) -> Result<()> {
    for lsn in lsns {
        let got = log.append(&tagged(tag, lsn), Durability::Synced)?;
        assert_eq!(got, Lsn::new(lsn), "LSN of the {tag} append");
    }
    Ok(())
}

#[test]
fn a_tail_that_read_past_a_rollback_reports_it_once_then_reads_the_new_records() -> Result<()> {
    for env in Env::both() {
        let name = env.name();
        let log = env.open()?;
        let mut tail = log.tail(Lsn::new(1))?;
        append_synced(&log, "first", 1..=10)?;
        for lsn in 1..=10 {
            assert_eq!(lsn_and_data(tail.recv())?, (lsn, tagged("first", lsn)));
        }
        log.truncate_after(Lsn::new(5))?;
        append_synced(&log, "second", 6..=11)?;

        let got = tail.recv();
        assert!(
            is_rolled_back(&got, 10, 5),
            "{name}: after the rollback: {:?}",
            describe(&lsn_and_data(got))
        );
        for lsn in 6..=11 {
            let got = lsn_and_data(tail.recv());
            assert!(
                matches!(&got, Ok(r) if *r == (lsn, tagged("second", lsn))),
                "{name}: expected the new LSN {lsn}, got {}",
                describe(&got)
            );
        }
        assert!(tail.try_recv()?.is_none(), "{name}: nothing more");
    }
    Ok(())
}

#[test]
fn a_tail_waiting_past_a_rollback_wakes_with_rolled_back() -> Result<()> {
    let env = Env::mem();
    let log = Arc::new(env.open()?);
    let mut tail = log.tail(Lsn::new(1))?;
    append_synced(&log, "first", 1..=10)?;
    for lsn in 1..=10 {
        assert_eq!(tail.recv()?.lsn(), Lsn::new(lsn));
    }
    // The tail waits for LSN 11 while 6..=10 are rolled back and replaced.
    let waiter = thread::spawn(move || {
        let got = tail.recv();
        (tail, got)
    });
    thread::sleep(Duration::from_millis(20));
    log.truncate_after(Lsn::new(5))?;
    append_synced(&log, "second", 6..=11)?;
    let (mut tail, got) = waiter.join().expect("tail thread");
    assert!(
        is_rolled_back(&got, 10, 5),
        "after the rollback: {:?}",
        describe(&lsn_and_data(got))
    );
    assert_eq!(lsn_and_data(tail.recv())?, (6, tagged("second", 6)));
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_tail_that_read_past_a_rollback_reports_it_then_reads_the_new_records()
-> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    let mut tail = log.tail(Lsn::new(1))?;
    append_synced(&log, "first", 1..=10)?;
    for lsn in 1..=10 {
        assert_eq!(tail.recv_async().await?.lsn(), Lsn::new(lsn));
    }
    log.truncate_after(Lsn::new(5))?;
    append_synced(&log, "second", 6..=11)?;
    let got = tail.recv_async().await;
    assert!(
        is_rolled_back(&got, 10, 5),
        "after the rollback: {:?}",
        describe(&lsn_and_data(got))
    );
    assert_eq!(
        lsn_and_data(tail.recv_async().await)?,
        (6, tagged("second", 6))
    );
    Ok(())
}

#[test]
fn a_tail_that_had_not_read_past_a_rollback_point_reads_the_new_records() -> Result<()> {
    // Its reads up to LSN 3 come from a snapshot of LSNs 1..=10; the rollback to 5 removes what
    // it had not returned yet, so there is nothing to report: it goes on with the new records.
    for env in Env::both() {
        let name = env.name();
        let log = env.open()?;
        let mut tail = log.tail(Lsn::new(1))?;
        append_synced(&log, "first", 1..=10)?;
        for lsn in 1..=3 {
            assert_eq!(lsn_and_data(tail.recv())?, (lsn, tagged("first", lsn)));
        }
        log.truncate_after(Lsn::new(5))?;
        append_synced(&log, "second", 6..=11)?;
        for lsn in 4..=11 {
            let tag = if lsn <= 5 { "first" } else { "second" };
            let got = lsn_and_data(tail.recv());
            assert!(
                matches!(&got, Ok(r) if *r == (lsn, tagged(tag, lsn))),
                "{name}: expected the {tag} LSN {lsn}, got {}",
                describe(&got)
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Iterators across a rollback
// ---------------------------------------------------------------------------------------------

/// Records of 120..=300 KiB for the first appends, of other sizes for the second: a segment
/// holding ten of them is larger than a reader's 1 MiB read chunk.
fn large(tag: &str, lsn: u64) -> Vec<u8> {
    let kib = if tag == "first" {
        100 + 20 * lsn
    } else {
        90 + 23 * lsn
    };
    tagged_len(tag, lsn, (kib << 10) as usize)
}

/// Drains an iterator opened before `truncate_after(5)`, having read `read_before` records first.
fn drain_across_rollback(env: &Env, read_before: u64) -> Result<Vec<Read>> {
    let log = env.builder().segment_bytes(8 << 20).open()?;
    for lsn in 1..=10 {
        log.append(&large("first", lsn), Durability::Synced)?;
    }
    let mut iter = log.iter()?;
    let mut got = Vec::new();
    for _ in 0..read_before {
        got.push(lsn_and_data(
            iter.next().expect("a record before the rollback"),
        ));
    }
    log.truncate_after(Lsn::new(5))?;
    for lsn in 6..=10 {
        log.append(&large("second", lsn), Durability::Synced)?;
    }
    got.extend(iter.by_ref().take(20).map(lsn_and_data));
    Ok(got)
}

#[test]
fn an_iterator_opened_before_a_rollback_yields_the_kept_records_then_rolled_back() -> Result<()> {
    for env in Env::both() {
        for read_before in [0, 3] {
            let context = format!("{}, {read_before} read before", env.name());
            let got = drain_across_rollback(&env, read_before)?;
            let summary: Vec<String> = got.iter().map(describe).collect();
            assert_eq!(got.len(), 6, "{context}: {summary:?}");
            for (i, lsn) in (1..=5).enumerate() {
                assert!(
                    matches!(&got[i], Ok(r) if *r == (lsn, large("first", lsn))),
                    "{context}: record {lsn}: {summary:?}"
                );
            }
            assert!(is_rolled_back(&got[5], 6, 5), "{context}: {summary:?}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Waiting for durability across a rollback
// ---------------------------------------------------------------------------------------------

/// Rolls the log back to 5 and appends new records 6..=10, buffered.
fn roll_back_and_replace(log: &Log) -> Result<()> {
    log.truncate_after(Lsn::new(5))?;
    for lsn in 6..=10 {
        let got = log.append(&tagged("second", lsn), Durability::Buffered)?;
        assert_eq!(got, Lsn::new(lsn));
    }
    Ok(())
}

/// Checks that the log holds the first 5 records and the 5 that replaced the rest.
fn assert_replaced(log: &Log) -> Result<()> {
    log.sync()?;
    let want: Vec<(u64, Vec<u8>)> = (1..=10)
        .map(|lsn| (lsn, tagged(if lsn <= 5 { "first" } else { "second" }, lsn)))
        .collect();
    assert!(read_all(log)? == want, "the log holds the new records");
    Ok(())
}

#[test]
fn a_wait_durable_whose_sync_spans_a_rollback_gets_rolled_back() -> Result<()> {
    let storage = HookedStorage::new(Arc::new(MemStorage::new()));
    let log = Arc::new(builder_on(&storage).open()?);
    for lsn in 1..=10 {
        log.append(&tagged("first", lsn), Durability::Buffered)?;
    }
    // The waiter leads the sync for LSN 10 and is held in its fsync.
    let held = storage.hold_syncs(1);
    let waiter = {
        let log = Arc::clone(&log);
        thread::spawn(move || log.wait_durable(Lsn::new(10)))
    };
    held.wait_entered();
    // Meanwhile LSNs 6..=10 are rolled back and taken by other records.
    roll_back_and_replace(&log)?;
    held.release();
    let got = waiter.join().expect("waiter");
    assert!(is_rolled_back(&got, 10, 5), "the waiter got {got:?}");
    assert_replaced(&log)
}

#[test]
fn a_synced_append_whose_sync_spans_a_rollback_gets_rolled_back() -> Result<()> {
    let storage = HookedStorage::new(Arc::new(MemStorage::new()));
    let log = Arc::new(builder_on(&storage).open()?);
    for lsn in 1..=9 {
        log.append(&tagged("first", lsn), Durability::Buffered)?;
    }
    let held = storage.hold_syncs(1);
    let appender = {
        let log = Arc::clone(&log);
        thread::spawn(move || log.append(&tagged("first", 10), Durability::Synced))
    };
    held.wait_entered();
    roll_back_and_replace(&log)?;
    held.release();
    let got = appender.join().expect("appender");
    assert!(is_rolled_back(&got, 10, 5), "the synced append got {got:?}");
    assert_replaced(&log)
}

#[test]
fn a_durable_future_made_before_a_rollback_resolves_to_rolled_back() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    for lsn in 1..=10 {
        log.append(&tagged("first", lsn), Durability::Buffered)?;
    }
    let future = log.durable(Lsn::new(10))?;
    roll_back_and_replace(&log)?;
    log.sync()?;
    let got = block_on(future);
    assert!(
        is_rolled_back(&got, 10, 5),
        "the future resolved to {got:?}"
    );
    assert_replaced(&log)
}

#[test]
fn a_durable_future_waiting_on_a_sync_that_spans_a_rollback_resolves_to_rolled_back() -> Result<()>
{
    let storage = HookedStorage::new(Arc::new(MemStorage::new()));
    let log = Arc::new(builder_on(&storage).open()?);
    for lsn in 1..=10 {
        log.append(&tagged("first", lsn), Durability::Buffered)?;
    }
    // The future asks the background syncer for LSN 10; the syncer is held in its fsync.
    let held = storage.hold_syncs(1);
    let future = log.durable(Lsn::new(10))?;
    let waiter = thread::spawn(move || block_on(future));
    held.wait_entered();
    roll_back_and_replace(&log)?;
    held.release();
    let got = waiter.join().expect("waiter");
    assert!(
        is_rolled_back(&got, 10, 5),
        "the future resolved to {got:?}"
    );
    assert_replaced(&log)
}

// ---------------------------------------------------------------------------------------------
// Bounded logs
// ---------------------------------------------------------------------------------------------

/// Appends `payload(lsn)` until the log is full; returns the last LSN appended.
fn fill_until_full(log: &Log) -> Result<Lsn> {
    for _ in 0..10_000 {
        let next = last(log).next();
        match log.append(&payload(next.get()), Durability::Buffered) {
            Ok(lsn) => assert_eq!(lsn, next),
            Err(Error::LogFull { .. }) => return Ok(last(log)),
            Err(e) => return Err(e),
        }
    }
    panic!("the bounded log never filled up");
}

/// Appends `payload(lsn)` to a one-segment log for as long as the next one fits in its segment;
/// returns the last LSN appended. For logs that wait when full: the next append must roll, so it
/// waits.
fn fill_to_the_brim(log: &Log) -> Result<Lsn> {
    loop {
        let next = last(log).next();
        let record = payload(next.get());
        if free_bytes(log) < FRAME_HEADER_BYTES + record.len() as u64 {
            return Ok(last(log));
        }
        log.append(&record, Durability::Buffered)?;
    }
}

#[test]
fn a_one_segment_log_takes_appends_again_after_a_checkpoint_of_every_record() -> Result<()> {
    for env in Env::both() {
        let name = env.name();
        let log = env.builder().capacity_bytes(SEGMENT_BYTES).open()?;
        let mut previous = Lsn::ZERO;
        for cycle in 0..3 {
            let full = fill_until_full(&log)?;
            assert!(full > previous, "{name}, cycle {cycle}: appends went on");
            log.checkpoint(full.next())?;
            let got = log.append(&payload(full.next().get()), Durability::Buffered);
            assert!(
                matches!(got, Ok(lsn) if lsn == full.next()),
                "{name}, cycle {cycle}: the append after a checkpoint of every record got {got:?}"
            );
            previous = full.next();
        }
        log.sync()?;
        let first = checkpoint_lsn(&log);
        let end = last(&log);
        drop(log);
        let log = env.builder().capacity_bytes(SEGMENT_BYTES).open()?;
        assert_eq!(checkpoint_lsn(&log), first, "{name}");
        assert_holds(&log, first.get(), end.get())?;
    }
    Ok(())
}

#[test]
fn an_append_waiting_on_a_full_one_segment_log_gets_room_from_a_checkpoint_of_every_record()
-> Result<()> {
    let env = Env::mem();
    let log = Arc::new(
        env.builder()
            .capacity_bytes(SEGMENT_BYTES)
            .when_full(WhenFull::Wait(Duration::from_secs(3600)))
            .open()?,
    );
    let full = fill_to_the_brim(&log)?;
    let waiter = {
        let log = Arc::clone(&log);
        thread::spawn(move || log.append(&payload(full.next().get()), Durability::Buffered))
    };
    // Give the append time to start waiting (it must succeed either way).
    thread::sleep(Duration::from_millis(50));
    log.checkpoint(full.next())?;
    let got = waiter.join().expect("waiting append");
    assert!(
        matches!(got, Ok(lsn) if lsn == full.next()),
        "the waiting append got {got:?}"
    );
    Ok(())
}

#[test]
fn an_append_waiting_on_a_full_log_returns_an_error_when_the_log_is_poisoned() -> Result<()> {
    let faulty = FaultyStorage::new(Arc::new(MemStorage::new()), FaultPlan::new());
    let log = Arc::new(
        Log::builder("/log")
            .storage(Arc::new(faulty.clone()))
            .segment_bytes(SEGMENT_BYTES)
            .capacity_bytes(SEGMENT_BYTES)
            .when_full(WhenFull::Wait(Duration::from_secs(3600)))
            .open()?,
    );
    let full = fill_to_the_brim(&log)?;
    let waiter = {
        let log = Arc::clone(&log);
        thread::spawn(move || log.append(&payload(full.next().get()), Durability::Buffered))
    };
    thread::sleep(Duration::from_millis(50));
    // The buffered records' fsync fails and poisons the log.
    faulty.set_plan(FaultPlan::new().fail_nth(Op::SyncData, 1));
    let sync = log.sync();
    assert!(
        matches!(sync, Err(Error::Io { .. })),
        "the sync got {sync:?}"
    );
    let got = waiter.join().expect("waiting append");
    assert!(
        matches!(got, Err(Error::Poisoned | Error::Io { .. })),
        "the waiting append got {got:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Extreme durations and panicking storage
// ---------------------------------------------------------------------------------------------

#[test]
fn wait_durable_timeout_of_duration_max_waits_without_panicking() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    let lsn = log.append(b"x", Durability::Buffered)?;
    assert!(
        log.wait_durable_timeout(lsn, Duration::MAX)?,
        "made durable"
    );
    assert!(
        log.wait_durable_timeout(lsn, Duration::MAX)?,
        "already durable"
    );
    Ok(())
}

#[test]
fn tail_recv_timeout_of_duration_max_waits_without_panicking() -> Result<()> {
    let env = Env::mem();
    let log = Arc::new(env.open()?);
    let mut tail = log.tail(Lsn::FIRST)?;
    log.append(b"ready", Durability::Synced)?;
    let got = tail.recv_timeout(Duration::MAX)?.map(|r| r.lsn());
    assert_eq!(got, Some(Lsn::new(1)), "a record already durable");
    let writer = {
        let log = Arc::clone(&log);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            log.append(b"later", Durability::Synced)
        })
    };
    let got = tail.recv_timeout(Duration::MAX)?.map(|r| r.lsn());
    assert_eq!(
        got,
        Some(Lsn::new(2)),
        "a record made durable while waiting"
    );
    writer.join().expect("writer")?;
    Ok(())
}

#[test]
fn an_append_waiting_for_room_with_duration_max_gets_it() -> Result<()> {
    let env = Env::mem();
    let log = Arc::new(
        env.builder()
            .capacity_bytes(3 * SEGMENT_BYTES)
            .when_full(WhenFull::Wait(Duration::MAX))
            .open()?,
    );
    let mut full = Lsn::ZERO;
    while free_bytes(&log) > 500 {
        full = log.append(&payload(full.get() + 1), Durability::Buffered)?;
    }
    // The writer fills the last of the room and waits; the checkpoint frees sealed segments.
    let writer = {
        let log = Arc::clone(&log);
        thread::spawn(move || -> Result<Lsn> {
            let mut lsn = Lsn::ZERO;
            for i in 1..=20 {
                lsn = log.append(&payload(full.get() + i), Durability::Buffered)?;
            }
            Ok(lsn)
        })
    };
    while free_bytes(&log) > 200 && !writer.is_finished() {
        thread::yield_now();
    }
    log.checkpoint(last(&log).next())?;
    let done = writer.join().expect("writer")?;
    assert_eq!(done, Lsn::new(full.get() + 20));
    Ok(())
}

#[test]
fn an_interval_of_duration_max_keeps_the_syncer_serving_durable_futures() -> Result<()> {
    let env = Env::mem();
    let log = env
        .builder()
        .sync_policy(SyncPolicy::Interval(Duration::MAX))
        .open()?;
    let lsn = log.append(b"x", Durability::Buffered)?;
    // Resolved by the background syncer, which must be alive.
    block_on(log.durable(lsn)?)?;
    assert_eq!(log.durable_lsn(), lsn);
    log.close()
}

#[test]
fn a_panic_in_a_storage_write_poisons_the_log_for_the_other_callers() -> Result<()> {
    let storage = HookedStorage::new(Arc::new(MemStorage::new()));
    // No write buffer: every append writes its record itself.
    let log = Arc::new(builder_on(&storage).write_buffer_bytes(0).open()?);
    log.append(b"before", Durability::Synced)?;
    storage.panic_on_next_write();
    // The panic unwinds out of the append (an error in its place would do as well).
    let caught = catch_unwind(AssertUnwindSafe(|| {
        log.append(b"boom", Durability::Buffered)
    }));
    assert!(
        !matches!(caught, Ok(Ok(_))),
        "the append whose write panicked succeeded"
    );

    let syncer = {
        let log = Arc::clone(&log);
        thread::spawn(move || log.sync())
    };
    let got = syncer.join().expect("sync thread");
    assert!(got.is_err(), "a sync after the panic got {got:?}");
    let appender = {
        let log = Arc::clone(&log);
        thread::spawn(move || log.append(b"after", Durability::Synced))
    };
    let got = appender.join().expect("append thread");
    assert!(got.is_err(), "a synced append after the panic got {got:?}");
    Ok(())
}

#[test]
fn a_panic_in_a_storage_fsync_on_the_syncer_thread_fails_durable_waits() -> Result<()> {
    let storage = HookedStorage::new(Arc::new(MemStorage::new()));
    let log = builder_on(&storage).open()?;
    let lsn = log.append(b"x", Durability::Buffered)?;
    storage.panic_on_next_syncer_sync();
    // The future asks the background syncer, whose fsync panics.
    let got = block_on(log.durable(lsn)?);
    assert!(got.is_err(), "the durable future resolved to {got:?}");
    let got = log.wait_durable(lsn);
    assert!(got.is_err(), "wait_durable after the panic got {got:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Durable futures and the directory lock
// ---------------------------------------------------------------------------------------------

#[test]
fn a_durable_future_outliving_its_log_does_not_keep_the_directory_locked() -> Result<()> {
    for polled in [false, true] {
        for env in [Env::std(), Env::mem()] {
            let context = format!("{}, polled once: {polled}", env.name());
            let log = env.open()?;
            let lsn = log.append(b"kept", Durability::Buffered)?;
            let mut future = log.durable(lsn)?;
            if polled {
                // Registered with the log (or ready at once if the syncer was quick).
                let mut cx = Context::from_waker(Waker::noop());
                let _ = Pin::new(&mut future).poll(&mut cx);
            }
            drop(log);
            let reopened = env.open();
            assert!(
                reopened.is_ok(),
                "{context}: reopen got {:?}",
                reopened.err()
            );
            drop(reopened);
            // The log's drop synced the record, so the old future resolves to Ok.
            let got = block_on(future);
            assert!(got.is_ok(), "{context}: the old future resolved to {got:?}");
            let log = env.open()?;
            assert_eq!(read_all(&log)?, vec![(1, b"kept".to_vec())], "{context}");
        }
    }
    Ok(())
}

#[test]
fn a_resolved_durable_future_kept_after_its_log_does_not_keep_the_directory_locked() -> Result<()> {
    for env in [Env::std(), Env::mem()] {
        let name = env.name();
        let log = env.open()?;
        let lsn = log.append(b"kept", Durability::Buffered)?;
        let mut future = log.durable(lsn)?;
        block_on(&mut future)?;
        drop(log);
        let reopened = env.open();
        assert!(reopened.is_ok(), "{name}: reopen got {:?}", reopened.err());
        drop(future);
    }
    Ok(())
}
