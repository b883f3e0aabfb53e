//! An async (tokio) writer that awaits durability instead of blocking a thread on it: each task
//! appends its record (which returns at once) and awaits `log.durable(lsn)`, a future that the
//! log's background thread completes after the fsync that covers the record. Tasks waiting at
//! the same time share that fsync. The log itself depends on no runtime; the future works
//! under any executor.
//!
//! ```sh
//! cargo run --example async_writer
//! cargo run --example async_writer -- ./dir
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tidelog::{Durability, Log};

const TASKS: usize = 64;
const RECORDS_PER_TASK: usize = 50;

#[tokio::main]
async fn main() -> tidelog::Result<()> {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| tmp.path().join("log"), PathBuf::from);
    let log = Arc::new(Log::open(&dir)?);
    let started = Instant::now();

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                for i in 0..RECORDS_PER_TASK {
                    let event = format!("task {task} event {i}");
                    // Hands the record to the log: no I/O wait, no blocked thread.
                    let lsn = log.append(event.as_bytes(), Durability::Buffered)?;
                    // Resolves once the record is on stable storage.
                    log.durable(lsn)?.await?;
                }
                Ok::<_, tidelog::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a task panicked")?;
    }

    let records = TASKS * RECORDS_PER_TASK;
    let m = log.metrics();
    println!(
        "{records} records from {TASKS} tasks made durable in {:.0} ms with {} fsyncs \
         ({:.1} records per fsync)",
        started.elapsed().as_secs_f64() * 1e3,
        m.fsyncs,
        m.group_size.mean,
    );
    assert_eq!(log.durable_lsn().get(), records as u64);
    Ok(())
}
