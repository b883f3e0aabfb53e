//! A service that commits requests from many threads, each waiting until its request is on
//! disk before it answers, while the log shares fsyncs between them: one thread leads each
//! fsync and every request written before it started is covered by it (group commit). The
//! more threads commit at once, the more requests each fsync makes durable.
//!
//! ```sh
//! cargo run --release --example group_commit            # 1, 4 and 16 threads
//! cargo run --release --example group_commit -- ./dir   # on the disk you care about
//! ```
//!
//! Without a directory it runs in a temporary one, which may live in memory (tmpfs), where an
//! fsync costs next to nothing: name a directory on a disk to see what group commit saves.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidelog::{Durability, Log};

/// How long each round of commits runs.
const ROUND: Duration = Duration::from_millis(500);

fn round(dir: &Path, threads: usize) -> tidelog::Result<()> {
    let log = Arc::new(Log::open(dir)?);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || -> tidelog::Result<u64> {
                let mut committed = 0;
                while started.elapsed() < ROUND {
                    let request = format!("thread {t} request {committed}: debit 10, credit 10");
                    // Returns once this request and every one before it are durable.
                    log.append(request.as_bytes(), Durability::Synced)?;
                    committed += 1;
                }
                Ok(committed)
            })
        })
        .collect();
    let mut committed = 0;
    for worker in workers {
        committed += worker.join().expect("a worker thread panicked")?;
    }
    let secs = started.elapsed().as_secs_f64();
    let m = log.metrics();
    println!(
        "{threads:>3} threads: {committed:>7} commits, {:>9.0} commits/s, {:>6} fsyncs, \
         {:>5.1} commits per fsync, p99 commit latency {:.2} ms",
        committed as f64 / secs,
        m.fsyncs,
        m.group_size.mean,
        m.commit_latency.p99 as f64 / 1e6,
    );
    Ok(())
}

fn main() -> tidelog::Result<()> {
    let tmp;
    let dir = match std::env::args().nth(1) {
        Some(dir) => Path::new(&dir).to_path_buf(),
        None => {
            tmp = tempfile::tempdir().expect("a temporary directory");
            tmp.path().to_path_buf()
        }
    };
    for threads in [1, 4, 16] {
        // A fresh log per round, so the figures are the round's own.
        round(&dir.join(format!("log-{threads}")), threads)?;
    }
    Ok(())
}
