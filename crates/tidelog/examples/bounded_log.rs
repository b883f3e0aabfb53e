//! A bounded log with back-pressure: the log may hold at most `capacity_bytes`, a producer
//! appends faster than a consumer processes, and when the log is full the producer's appends
//! wait (`WhenFull::Wait`) until the consumer has processed records and checkpointed past
//! them, which frees whole segments. With `WhenFull::Fail` (the default) a full log fails the
//! append with `Error::LogFull` at once instead, for a producer that would rather shed load.
//!
//! ```sh
//! cargo run --example bounded_log
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use tidelog::{Durability, Error, Log, Lsn, WhenFull};

const SEGMENT_BYTES: u64 = 16 << 10;
/// Room for four segments: the producer gets at most that far ahead of the consumer.
const CAPACITY_BYTES: u64 = 4 * SEGMENT_BYTES;
const RECORDS: u64 = 3000;

fn main() -> tidelog::Result<()> {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let log = Arc::new(
        Log::builder(tmp.path().join("log"))
            .segment_bytes(SEGMENT_BYTES)
            .capacity_bytes(CAPACITY_BYTES)
            .when_full(WhenFull::Wait(Duration::from_secs(10)))
            .open()?,
    );

    // The consumer: reads each record as it becomes durable, "processes" it slowly, and
    // checkpoints every 100 records, which lets the log drop what it has processed.
    let consumer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || -> tidelog::Result<()> {
            let mut tail = log.tail(Lsn::FIRST)?;
            for _ in 0..RECORDS {
                let record = tail.recv()?;
                std::thread::sleep(Duration::from_micros(200)); // the work
                if record.lsn().get() % 100 == 0 {
                    log.checkpoint(record.lsn().next())?;
                }
            }
            Ok(())
        })
    };

    // The producer: as fast as it can; an append waits while the log is full.
    let mut slowest = Duration::ZERO;
    let mut most_used = 0;
    for i in 1..=RECORDS {
        let started = Instant::now();
        log.append(
            format!("job {i:05} {}", "x".repeat(80)).as_bytes(),
            Durability::Buffered,
        )?;
        log.sync()?; // so the consumer's tail sees it
        slowest = slowest.max(started.elapsed());
        most_used = most_used.max(log.used_bytes());
    }
    consumer.join().expect("the consumer panicked")?;
    println!(
        "{RECORDS} records through a log of at most {} KiB: at most {} KiB used, the slowest \
         append waited {:.1} ms for room",
        CAPACITY_BYTES >> 10,
        most_used >> 10,
        slowest.as_secs_f64() * 1e3
    );
    assert!(most_used <= CAPACITY_BYTES);

    // Without a consumer, WhenFull::Fail: the append that does not fit fails at once.
    let full = Log::builder(tmp.path().join("shed"))
        .segment_bytes(SEGMENT_BYTES)
        .capacity_bytes(CAPACITY_BYTES)
        .open()?;
    let mut accepted = 0;
    loop {
        match full.append(&[0u8; 1000], Durability::Buffered) {
            Ok(_) => accepted += 1,
            Err(Error::LogFull { capacity, used }) => {
                println!(
                    "no consumer: {accepted} records accepted, then LogFull ({used} of {capacity} \
                     bytes used)"
                );
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
