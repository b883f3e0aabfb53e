//! Tail-following readers and segments pinned by readers.

use std::sync::Arc;
use std::time::Duration;

use tidelog::{Durability, Error, Lsn, Result};

use crate::common::{Env, append_n, payload};

#[test]
fn tails_receive_every_durable_record_in_order() -> Result<()> {
    for env in Env::both() {
        let log = Arc::new(env.open()?);
        let tails: Vec<_> = (0..3)
            .map(|_| {
                let mut tail = log.tail(Lsn::FIRST)?;
                Ok(std::thread::spawn(move || -> Result<Vec<u64>> {
                    let mut seen = Vec::new();
                    while seen.len() < 500 {
                        let record = tail.recv()?;
                        assert_eq!(record.data(), payload(record.lsn().get()));
                        seen.push(record.lsn().get());
                    }
                    Ok(seen)
                }))
            })
            .collect::<Result<_>>()?;
        for lsn in 1..=500u64 {
            let d = if lsn % 50 == 0 {
                Durability::Synced
            } else {
                Durability::Buffered
            };
            log.append(&payload(lsn), d)?;
        }
        for f in tails {
            let seen = f.join().expect("tail")?;
            assert_eq!(seen, (1..=500).collect::<Vec<_>>(), "{}", env.name());
        }
    }
    Ok(())
}

#[test]
fn a_tail_never_sees_a_record_that_is_not_durable() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    let mut tail = log.tail(Lsn::FIRST)?;
    log.append(b"buffered", Durability::Buffered)?;
    assert!(tail.try_recv()?.is_none());
    assert!(tail.recv_timeout(Duration::from_millis(5))?.is_none());
    log.sync()?;
    assert_eq!(
        tail.try_recv()?.map(|r| r.into_data()),
        Some(b"buffered".to_vec())
    );
    assert_eq!(tail.position(), Lsn::new(2));
    Ok(())
}

#[test]
fn a_tail_below_the_checkpoint_gets_an_error_not_a_gap() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    append_n(&log, 300)?;
    log.sync()?;
    let mut lagging = log.tail(Lsn::new(5))?;
    log.checkpoint(Lsn::new(200))?;
    assert!(
        matches!(lagging.try_recv(), Err(Error::BelowCheckpoint { lsn, .. }) if lsn.get() == 5)
    );
    assert!(matches!(
        log.tail(Lsn::new(10)),
        Err(Error::BelowCheckpoint { .. })
    ));
    assert!(matches!(log.tail(Lsn::ZERO), Err(Error::InvalidLsn { .. })));
    let mut ok = log.tail(Lsn::new(200))?;
    assert_eq!(ok.try_recv()?.map(|r| r.lsn()), Some(Lsn::new(200)));
    Ok(())
}

#[test]
fn a_waiting_tail_returns_closed_when_the_log_goes_away() -> Result<()> {
    let env = Env::mem();
    let log = env.open()?;
    let mut tail = log.tail(Lsn::FIRST)?;
    let waiter = std::thread::spawn(move || tail.recv());
    std::thread::sleep(Duration::from_millis(20));
    drop(log);
    assert!(matches!(waiter.join().expect("tail"), Err(Error::Closed)));
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_tail_awaits_new_records() -> Result<()> {
    let env = Env::mem();
    let log = Arc::new(env.open()?);
    let mut tail = log.tail(Lsn::FIRST)?;
    let writer = {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            for i in 0..20u32 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                log.append(&i.to_le_bytes(), Durability::Synced)?;
            }
            Ok::<(), Error>(())
        })
    };
    for i in 0..20u32 {
        let record = tail.recv_async().await?;
        assert_eq!(record.data(), i.to_le_bytes());
    }
    writer.await.expect("writer")?;
    Ok(())
}

#[test]
fn a_reader_pins_segments_a_checkpoint_drops_until_it_lets_go() -> Result<()> {
    for env in Env::both() {
        let log = Arc::new(env.open()?);
        append_n(&log, 400)?;
        log.sync()?;
        let before = env.segment_paths();
        assert!(before.len() > 3);
        let mut iter = log.iter()?;
        for _ in 0..30 {
            iter.next().transpose()?; // mid-way through the first segment
        }
        // Another thread checkpoints past everything the reader still has to read.
        let checkpointer = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || log.checkpoint(Lsn::new(400)))
        };
        checkpointer.join().expect("checkpointer")?;
        assert_eq!(
            log.segments().len(),
            1,
            "{}: the log dropped them",
            env.name()
        );
        assert_eq!(
            env.segment_paths(),
            before,
            "{}: the files wait for the reader",
            env.name()
        );
        let rest: Vec<u64> = iter
            .by_ref()
            .map(|r| r.map(|r| r.lsn().get()))
            .collect::<Result<_>>()?;
        assert_eq!(rest, (31..=400).collect::<Vec<_>>(), "{}", env.name());
        drop(iter);
        assert_eq!(
            env.segment_paths().len(),
            1,
            "{}: removed once the reader let go",
            env.name()
        );
    }
    Ok(())
}

/// A read-only log follows another open log of the same directory by `refresh`, reading only
/// what was appended: each refresh costs the new records, not the log.
#[test]
fn refresh_follows_a_writer_reading_only_the_new_bytes() -> Result<()> {
    let env = Env::mem();
    let counting = crate::hooked::HookedStorage::new(Arc::new(env.mem.clone().expect("in-memory")));
    let writer = env.builder().preallocate(true).open()?;
    append_n(&writer, 2000)?;
    writer.sync()?;
    let reader = env
        .builder()
        .storage(Arc::new(counting.clone()))
        .read_only(true)
        .open()?;
    assert_eq!(reader.last_lsn(), Lsn::new(2000));
    let log_bytes: u64 = writer.segments().iter().map(|s| s.bytes).sum();
    for round in 0..20u64 {
        append_n(&writer, 7)?;
        writer.sync()?;
        counting.reads().reset();
        let last = reader.refresh()?;
        assert_eq!(last, Lsn::new(2007 + round * 7));
        let read = counting.reads().total();
        assert!(
            read < log_bytes / 8,
            "a refresh read {read} bytes of a {log_bytes}-byte log"
        );
        let lsns: Vec<u64> = reader
            .range(Lsn::new(last.get() - 6)..)?
            .map(|r| r.map(|r| r.lsn().get()))
            .collect::<Result<_>>()?;
        assert_eq!(lsns, (last.get() - 6..=last.get()).collect::<Vec<_>>());
    }
    // It follows rolls to new segments, and a batch still being written is left for later.
    append_n(&writer, 500)?;
    writer.sync()?;
    assert_eq!(reader.refresh()?, writer.last_lsn());
    crate::common::assert_holds(&reader, 1, writer.last_lsn().get())?;
    // A rollback by the writer is something only a new open can follow.
    writer.truncate_after(Lsn::new(100))?;
    append_n(&writer, 3)?;
    writer.sync()?;
    assert!(matches!(
        reader.refresh(),
        Err(tidelog::Error::LogChanged { .. })
    ));
    Ok(())
}

/// A rollback in the active segment, then appends that grow the file past where the reader's
/// view of it ends: the reader's view no longer matches the bytes where it ends, and a refresh
/// says so rather than reading on from the middle of other frames (where it would find no
/// frame, and no record, ever again).
#[test]
fn refresh_sees_a_rollback_that_later_appends_grew_past_its_view() -> Result<()> {
    for env in Env::both() {
        let ctx = env.name();
        let writer = env.builder().open()?;
        for lsn in 1..=4u64 {
            writer.append(format!("record {lsn}").as_bytes(), Durability::Synced)?;
        }
        let reader = env.builder().read_only(true).open()?;
        assert_eq!(reader.refresh()?, Lsn::new(4), "{ctx}");
        writer.truncate_after(Lsn::new(2))?;
        for lsn in 3..=6u64 {
            let longer = format!("a longer record {lsn} that ends elsewhere");
            writer.append(longer.as_bytes(), Durability::Synced)?;
        }
        assert!(
            matches!(reader.refresh(), Err(tidelog::Error::LogChanged { .. })),
            "{ctx}"
        );
    }
    Ok(())
}

/// Every record read back carries the time of its batch's append: the same for every record of
/// a batch, never decreasing along the log, across a reopen too, and the wall clock's (to the
/// coarse clock's tick, which lags the precise one by a few milliseconds at most).
#[test]
fn records_carry_the_time_of_their_append() -> Result<()> {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64
    };
    for env in Env::both() {
        let ctx = env.name();
        let before = now();
        let log = env.open()?;
        append_n(&log, 20)?;
        log.append_batch(&[payload(21), payload(22), payload(23)], Durability::Synced)?;
        drop(log);
        let log = env.open()?;
        append_n(&log, 10)?;
        log.sync()?;
        let after = now();
        let records: Vec<tidelog::Record> = log.iter()?.collect::<Result<_>>()?;
        assert_eq!(records.len(), 33, "{ctx}");
        let times: Vec<u64> = records
            .iter()
            .map(|r| r.timestamp_ms().expect("format 2 keeps times"))
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{ctx}: {times:?}");
        assert!(
            times[0] + 20 >= before && times[32] <= after,
            "{ctx}: {times:?}"
        );
        assert!(
            times[20] == times[21] && times[21] == times[22],
            "{ctx}: one batch, one time"
        );
        assert_eq!(
            records[0].timestamp(),
            Some(std::time::UNIX_EPOCH + Duration::from_millis(times[0])),
            "{ctx}"
        );
    }
    Ok(())
}

/// `range_written` reads what was written and not synced yet, which `range` does not; a
/// rollback of those records ends an iterator made before it with `RolledBack`; with a write
/// buffer, records still in it are not written yet, and a sync writes them out.
#[test]
fn range_written_reads_records_written_but_not_durable() -> Result<()> {
    for env in Env::both() {
        let log = env.builder().write_buffer_bytes(0).open()?;
        append_n(&log, 10)?;
        log.sync()?;
        append_n(&log, 20)?;
        assert_eq!(log.durable_lsn(), Lsn::new(10), "{}", env.name());
        assert_eq!(log.written_lsn(), Lsn::new(30));
        let lsns = |iter: tidelog::Iter| -> Result<Vec<u64>> {
            iter.map(|r| r.map(|r| r.lsn().get())).collect()
        };
        assert_eq!(lsns(log.range(..)?)?, (1..=10).collect::<Vec<_>>());
        assert_eq!(lsns(log.range_written(..)?)?, (1..=30).collect::<Vec<_>>());
        assert_eq!(
            lsns(log.range_written(Lsn::new(25)..=Lsn::new(40))?)?,
            (25..=30).collect::<Vec<_>>()
        );
        for record in log.range_written(Lsn::new(11)..)? {
            let record = record?;
            assert_eq!(record.data(), payload(record.lsn().get()), "{}", env.name());
        }
        // A rollback of unsynced records under an iterator made before it.
        let iter = log.range_written(Lsn::new(20)..)?;
        log.truncate_after(Lsn::new(22))?;
        let got: Vec<Result<u64>> = iter.map(|r| r.map(|r| r.lsn().get())).collect();
        assert!(
            matches!(got.last(), Some(Err(Error::RolledBack { .. }))),
            "{}: {got:?}",
            env.name()
        );
        assert!(got.len() <= 4, "{}: {got:?}", env.name());
    }
    // With a write buffer, appends wait in it until it fills or a sync writes it out.
    let env = Env::mem();
    let log = env.builder().write_buffer_bytes(1 << 20).open()?;
    append_n(&log, 5)?;
    assert_eq!(log.written_lsn(), Lsn::new(0));
    assert_eq!(log.range_written(..)?.count(), 0);
    log.sync()?;
    assert_eq!(log.range_written(..)?.count(), 5);
    Ok(())
}
