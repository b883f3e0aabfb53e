//! Group commit, sync policies, waiting with a timeout, and the async durability future.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tidelog::io::{FaultPlan, FaultyStorage, MemStorage, Op};
use tidelog::{Durability, Error, Log, Lsn, Result, SyncPolicy};

use crate::common::{Env, SEGMENT_BYTES};
use crate::hardening::last;
use crate::hooked::HookedStorage;

/// Waits (up to a generous bound, so a slow machine cannot fail it) until `done` holds.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

#[test]
fn interval_policy_syncs_in_the_background() -> Result<()> {
    for env in Env::both() {
        let log = env
            .builder()
            .sync_policy(SyncPolicy::Interval(Duration::from_millis(5)))
            .open()?;
        let lsn = log.append(b"buffered", Durability::Buffered)?;
        assert!(
            eventually(|| log.durable_lsn() >= lsn),
            "{}: the syncer made it durable",
            env.name()
        );
        let lsn = log.append(b"again", Durability::Buffered)?;
        assert!(eventually(|| log.durable_lsn() >= lsn), "{}", env.name());
        log.close()?;
    }
    Ok(())
}

#[test]
fn bytes_policy_syncs_once_enough_is_appended() -> Result<()> {
    let env = Env::mem();
    let log = env.builder().sync_policy(SyncPolicy::Bytes(1000)).open()?;
    let first = log.append(&[1; 100], Durability::Buffered)?;
    // Far below the threshold: nothing makes it durable (no timer in this policy).
    std::thread::sleep(Duration::from_millis(20));
    assert!(log.durable_lsn() < first);
    // Frames of 32 + 100 bytes: the eighth takes the count to 1056, past the threshold. The
    // sync covers at least that record (records after it may be in it too, or not).
    let mut crossing = first;
    for _ in 0..7 {
        crossing = log.append(&[2; 100], Durability::Buffered)?;
    }
    assert_eq!(crossing.get(), 8);
    assert!(
        eventually(|| log.durable_lsn() >= crossing),
        "the byte count triggered a sync"
    );
    Ok(())
}

#[test]
fn every_commit_policy_makes_each_append_durable() -> Result<()> {
    let env = Env::mem();
    let log = env.builder().sync_policy(SyncPolicy::EveryCommit).open()?;
    for _ in 0..5 {
        let lsn = log.append(b"x", Durability::Buffered)?;
        assert_eq!(log.durable_lsn(), lsn);
    }
    Ok(())
}

#[test]
fn zero_periods_are_refused() {
    let env = Env::mem();
    for policy in [SyncPolicy::Interval(Duration::ZERO), SyncPolicy::Bytes(0)] {
        let err = env.builder().sync_policy(policy).open().unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidOptions {
                    name: "sync_policy",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn wait_durable_timeout_leads_a_sync_or_reports_it_is_done() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    let lsn = log.append(b"x", Durability::Buffered)?;
    assert!(log.wait_durable_timeout(lsn, Duration::from_secs(10))?);
    assert_eq!(log.durable_lsn(), lsn);
    assert!(
        log.wait_durable_timeout(lsn, Duration::ZERO)?,
        "already durable"
    );
    assert!(matches!(
        log.wait_durable_timeout(Lsn::new(5), Duration::ZERO),
        Err(Error::InvalidLsn { .. })
    ));
    Ok(())
}

#[test]
fn a_failing_background_sync_poisons_the_log() -> Result<()> {
    let mem = MemStorage::new();
    let faulty = FaultyStorage::new(Arc::new(mem.clone()), FaultPlan::new());
    let log = Log::builder("/log")
        .storage(Arc::new(faulty.clone()))
        .segment_bytes(SEGMENT_BYTES)
        .sync_policy(SyncPolicy::Interval(Duration::from_millis(2)))
        .open()?;
    // A tail waiting for the first record when the log is poisoned.
    let mut tail = log.tail(Lsn::FIRST)?;
    let waiter = std::thread::spawn(move || {
        let got = tail.recv();
        (tail, got)
    });
    faulty.set_plan(FaultPlan::new().fail_nth(Op::SyncData, 1));
    log.append(b"x", Durability::Buffered)?;
    assert!(eventually(|| matches!(
        log.append(b"y", Durability::Buffered),
        Err(Error::Poisoned)
    )));
    assert!(matches!(log.sync(), Err(Error::Poisoned)));
    // The waiting tail gets the failure itself; a poll after it, `Poisoned`.
    let (mut tail, got) = waiter.join().expect("tail thread");
    assert!(matches!(got, Err(Error::Io { .. })), "{got:?}");
    assert!(matches!(tail.try_recv(), Err(Error::Poisoned)));
    assert!(matches!(log.tail(Lsn::FIRST), Err(Error::Poisoned)));
    assert!(matches!(log.iter(), Err(Error::Poisoned)));
    Ok(())
}

#[test]
fn synced_appends_waiting_on_one_fsync_share_the_next() -> Result<()> {
    // The first commit's fsync is held until every writer has its LSN and waits for
    // durability; then one more fsync must cover them all. Without group commit each writer
    // would fsync for itself.
    const WRITERS: u64 = 8;
    let storage = HookedStorage::new(Arc::new(MemStorage::new()));
    let log = Arc::new(
        Log::builder("/log")
            .storage(Arc::new(storage.clone()))
            .segment_bytes(1 << 20)
            .open()?,
    );
    let before = storage.syncs();
    let held = storage.hold_syncs(1);
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                log.append(format!("writer {t}").as_bytes(), Durability::Synced)
            })
        })
        .collect();
    held.wait_entered();
    // Every writer has its LSN once the last one is assigned; then give them a moment to start
    // waiting for durability (a writer that is late to wait is still covered).
    assert!(
        eventually(|| last(&log) >= Lsn::new(WRITERS)),
        "every writer appended"
    );
    std::thread::sleep(Duration::from_millis(20));
    held.release();
    let mut lsns = Vec::new();
    for w in writers {
        lsns.push(w.join().expect("writer")?.get());
    }
    lsns.sort_unstable();
    assert_eq!(lsns, (1..=WRITERS).collect::<Vec<_>>());
    assert_eq!(log.durable_lsn(), Lsn::new(WRITERS));
    let fsyncs = storage.syncs() - before;
    assert!(
        fsyncs <= 3,
        "{fsyncs} fsyncs for {WRITERS} synced appends: the commits waiting on one fsync did not \
         share the next"
    );
    Ok(())
}

#[test]
fn concurrent_appends_across_rolls_and_large_batches_read_back_whole() -> Result<()> {
    for env in Env::both() {
        let log = Arc::new(env.builder().write_buffer_bytes(1024).open()?);
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || -> Result<Vec<(Lsn, Vec<u8>)>> {
                    let mut mine = Vec::new();
                    for i in 0..150u32 {
                        // Mostly small records, sometimes a batch big enough to skip the buffer.
                        let size = if i % 25 == 0 {
                            70_000
                        } else {
                            10 + (i as usize % 90)
                        };
                        let data = vec![t.wrapping_mul(31).wrapping_add(i as u8); size];
                        let d = if i % 7 == 0 {
                            Durability::Synced
                        } else {
                            Durability::Buffered
                        };
                        if i % 10 == 5 {
                            let (first, _) = log.append_batch(&[data.clone(), data.clone()], d)?;
                            mine.push((first, data.clone()));
                            mine.push((first.next(), data));
                        } else {
                            mine.push((log.append(&data, d)?, data));
                        }
                    }
                    Ok(mine)
                })
            })
            .collect();
        let mut expected = Vec::new();
        for t in threads {
            expected.extend(t.join().expect("thread")?);
        }
        log.sync()?;
        expected.sort_by_key(|(lsn, _)| *lsn);
        let got: Vec<(Lsn, Vec<u8>)> = log
            .iter()?
            .map(|r| r.map(|r| (r.lsn(), r.into_data())))
            .collect::<Result<_>>()?;
        assert_eq!(got.len(), expected.len(), "{}", env.name());
        assert!(got == expected, "{}: records differ", env.name());
        assert!(
            log.segments().len() > 10,
            "{}: rolled under concurrency",
            env.name()
        );
        drop(log);
        let log = env.builder().open()?;
        assert!(
            log.recovery_report().is_clean(),
            "{}",
            log.recovery_report()
        );
        assert_eq!(
            log.last_lsn(),
            expected.last().map(|e| e.0).unwrap_or_default()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn durable_future_resolves_without_blocking_the_runtime() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    let lsn = log.append(b"async", Durability::Buffered)?;
    // On a single-threaded runtime a blocking wait would hang; the future is woken by the
    // log's background thread.
    let ticker = tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        7
    });
    log.durable(lsn)?.await?;
    assert_eq!(log.durable_lsn(), lsn);
    assert_eq!(
        ticker.await.expect("the runtime kept running other tasks"),
        7
    );
    log.durable(lsn)?.await?; // already durable: ready at once
    assert!(matches!(
        log.durable(Lsn::new(9)),
        Err(Error::InvalidLsn { .. })
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_durable_futures_resolve_together() -> Result<()> {
    let env = Env::mem();
    let log = Arc::new(env.open()?);
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let lsn = log.append(&i.to_le_bytes(), Durability::Buffered)?;
            log.durable(lsn)?.await?;
            Ok::<Lsn, Error>(lsn)
        }));
    }
    for t in tasks {
        let lsn = t.await.expect("task")?;
        assert!(log.durable_lsn() >= lsn);
    }
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn durable_future_gets_the_error_of_a_failed_sync() -> Result<()> {
    let mem = MemStorage::new();
    let faulty = FaultyStorage::new(Arc::new(mem), FaultPlan::new());
    let log = Log::builder("/log")
        .storage(Arc::new(faulty.clone()))
        .open()?;
    faulty.set_plan(FaultPlan::new().fail_nth(Op::SyncData, 1));
    let lsn = log.append(b"doomed", Durability::Buffered)?;
    let err = log.durable(lsn)?.await.unwrap_err();
    assert!(matches!(err, Error::Io { .. } | Error::Poisoned), "{err}");
    assert!(matches!(
        log.append(b"more", Durability::Buffered),
        Err(Error::Poisoned)
    ));
    Ok(())
}
