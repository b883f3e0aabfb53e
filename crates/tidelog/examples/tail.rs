//! Printing new records as they come (a *tail* of the log), two ways:
//!
//! - in the process that writes the log, [`Log::tail`]: a reader that waits for new durable
//!   records, woken when the log's durable LSN moves (no polling);
//! - in another process, a log opened read-only, polled with [`Log::refresh`], which reads
//!   only what the writer appended since the last call. A read-only open takes no lock, so the
//!   writer keeps running.
//!
//! ```sh
//! cargo run --example tail                # both, beside a writer thread, in a temporary directory
//! cargo run --example tail -- ./wal       # follow a log another process writes (Ctrl-C stops)
//! seq 1 100 | cargo run -p tidelog-cli -- append ./wal   # ... such as this one, in another terminal
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use tidelog::{Durability, Error, Log, Lsn};

const RECORDS: u64 = 12;

fn main() -> tidelog::Result<()> {
    match std::env::args().nth(1) {
        Some(dir) => follow(&PathBuf::from(dir)),
        None => {
            let tmp = tempfile::tempdir().expect("a temporary directory");
            demo(&tmp.path().join("log"))
        }
    }
}

/// A writer thread, a tail in this process, and a read-only reader as another process has it.
fn demo(dir: &Path) -> tidelog::Result<()> {
    let log = Log::open(dir)?;
    let mut tail = log.tail(Lsn::FIRST)?;
    let tail_thread = std::thread::spawn(move || -> tidelog::Result<()> {
        for _ in 0..RECORDS {
            let record = tail.recv()?; // blocks until the next record is durable
            println!(
                "[tail]      {}: {}",
                record.lsn(),
                String::from_utf8_lossy(record.data())
            );
        }
        Ok(())
    });

    // The reader another process would run: read-only, no lock, polling.
    let reader = Log::builder(dir).read_only(true).open()?;

    let writer = std::thread::spawn(move || -> tidelog::Result<()> {
        for i in 1..=RECORDS {
            log.append(format!("event {i}").as_bytes(), Durability::Synced)?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    });

    let mut next = Lsn::FIRST;
    while next.get() <= RECORDS {
        let last = reader.refresh()?;
        for record in reader.range(next..=last)? {
            let record = record?;
            println!(
                "[read-only] {}: {}",
                record.lsn(),
                String::from_utf8_lossy(record.data())
            );
            next = record.lsn().next();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    writer.join().expect("the writer panicked")?;
    tail_thread.join().expect("the tail panicked")?;
    Ok(())
}

/// Follows the log in `dir`, written by another process, printing each new record.
fn follow(dir: &Path) -> tidelog::Result<()> {
    let open = || {
        Log::builder(dir)
            .read_only(true)
            .create_if_missing(false)
            .open()
    };
    let mut reader = open()?;
    let mut next = reader.last_lsn().next();
    println!("following {} from LSN {next}", dir.display());
    loop {
        let last = match reader.refresh() {
            Ok(last) => last,
            // The writer rolled the log back or reset it: open it again and go on from where
            // it ends now, if that is before where this reader was.
            Err(e @ Error::LogChanged { .. }) => {
                eprintln!("{e}");
                reader = open()?;
                next = next
                    .min(reader.last_lsn().next())
                    .max(reader.checkpoint_lsn());
                continue;
            }
            Err(e) => return Err(e),
        };
        if next <= last {
            for record in reader.range(next..=last)? {
                let record = record?;
                println!(
                    "{}: {}",
                    record.lsn(),
                    String::from_utf8_lossy(record.data())
                );
                next = record.lsn().next();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
