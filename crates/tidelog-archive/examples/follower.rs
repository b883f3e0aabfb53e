//! A writer archives its log to a local directory store while a follower reads the archive live
//! and a standby keeps a copy of the log up to date; then the standby is promoted: it claims
//! the archive, and the old writer, which carries on appending, is fenced off.
//!
//! ```sh
//! cargo run -p tidelog-archive --example follower            # in a temporary directory
//! cargo run -p tidelog-archive --example follower -- ./demo  # or in one you name
//! ```

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tidelog::{Durability, Log, Lsn};
use tidelog_archive::{
    ArchiveOptions, Archiver, FollowOptions, Follower, Standby, Store, Target, restore,
};

fn main() -> Result<(), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let root = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&root)?;
    let url = format!(
        "file://{}",
        std::fs::canonicalize(&root)?.join("archive").display()
    );
    let store = Store::from_url(&url)?;
    let every = ArchiveOptions::default().interval(Duration::from_millis(50));
    let poll = FollowOptions::default().poll(Duration::from_millis(20));

    // The writer: a log and its archiver.
    let writer_log = Arc::new(Log::open(root.join("writer"))?);
    let writer = Archiver::start(Arc::clone(&writer_log), store.clone(), every.clone())?;
    let first = writer_log.append(b"order 1", Durability::Synced)?;
    writer.wait_archived(first, Duration::from_secs(10))?;
    println!(
        "writer: generation {} holds {url}",
        writer.status().generation
    );

    // A standby: a copy of the archive, kept up to date on a thread of its own.
    let copy = restore(&store, root.join("standby"), Target::Latest)?;
    let standby_log = Arc::new(Log::open(&copy.dir)?);
    let standby = Standby::start(Arc::clone(&standby_log), store.clone(), poll.clone())?;

    // A follower reads every record as the writer archives it.
    let follower_store = store.clone();
    let follower = std::thread::spawn(move || -> Result<Vec<String>, tidelog_archive::Error> {
        let mut seen = Vec::new();
        for record in Follower::new(follower_store, poll)? {
            let record = record?;
            seen.push(String::from_utf8_lossy(record.data()).into_owned());
            if record.lsn() == Lsn::new(20) {
                break;
            }
        }
        Ok(seen)
    });
    let mut last = first;
    for n in 2..=20 {
        last = writer_log.append(format!("order {n}").as_bytes(), Durability::Synced)?;
    }
    writer.wait_archived(last, Duration::from_secs(10))?;
    let seen = follower.join().map_err(|_| "the follower panicked")??;
    println!(
        "follower: read {} records in order, {} .. {}",
        seen.len(),
        seen[0],
        seen[seen.len() - 1]
    );
    standby.wait_applied(last, Duration::from_secs(10))?;
    let status = standby.stop()?;
    println!(
        "standby: holds LSN 1..={} ({} records pulled)",
        status.applied_lsn, status.records
    );

    // Promotion: the standby's log claims the archive.
    let promoted = Archiver::start(Arc::clone(&standby_log), store.clone(), every)?;
    println!(
        "standby promoted: generation {} holds the archive",
        promoted.status().generation
    );
    let next = standby_log.append(b"order 21, from the new writer", Durability::Synced)?;
    promoted.wait_archived(next, Duration::from_secs(10))?;

    // The old writer carries on: its next upload finds the archive taken.
    writer_log.append(b"order 21, from the old writer", Durability::Synced)?;
    match writer.stop() {
        Err(e @ tidelog_archive::Error::Fenced { .. }) => println!("old writer: {e}"),
        other => return Err(format!("the old writer was not fenced: {other:?}").into()),
    }
    println!(
        "old writer's log is still usable: it ends at LSN {}",
        writer_log.last_lsn()
    );
    promoted.stop()?;

    let report = restore(&store, root.join("restored"), Target::Latest)?;
    let restored = Log::open(&report.dir)?;
    println!(
        "restored: LSN {} is {:?}",
        report.last_lsn,
        String::from_utf8_lossy(restored.read(report.last_lsn)?.data())
    );
    Ok(())
}
