//! walrus-rust: one topic. Its data directory comes from the process-global `WALRUS_DATA_DIR`
//! environment variable and its fsync schedule is fixed per process, so every walrus case runs
//! in a process of its own with the variable set. Durable commits use
//! `FsyncSchedule::SyncEach`; bulk work uses `FsyncSchedule::NoFsync`, since walrus has no call
//! that syncs what was appended. Read-back is `batch_read_for_topic` (advancing the cursor;
//! the cursor is persisted rarely so that reading measures reading).

use std::path::Path;

use walrus_rust::{FsyncSchedule, ReadConsistency, Walrus};

use super::{Purpose, Reading, Wal};
use crate::Result;
use crate::payload::Verifier;

const TOPIC: &str = "bench";
const READ_BATCH_BYTES: usize = 4 << 20;

pub fn open(dir: &Path, purpose: Purpose) -> Result<Box<dyn Wal>> {
    match std::env::var_os("WALRUS_DATA_DIR") {
        Some(d) if Path::new(&d) == dir => {}
        other => {
            return Err(format!(
                "WALRUS_DATA_DIR is {other:?}, expected {}: walrus must run in a child process \
                 started with it set",
                dir.display()
            )
            .into());
        }
    }
    let schedule = match purpose {
        Purpose::Durable => FsyncSchedule::SyncEach,
        Purpose::Bulk | Purpose::Reopen { .. } => FsyncSchedule::NoFsync,
    };
    let consistency = ReadConsistency::AtLeastOnce {
        persist_every: u32::MAX,
    };
    Ok(Box::new(Adapter {
        wal: Walrus::with_consistency_and_schedule(consistency, schedule)?,
    }))
}

struct Adapter {
    wal: Walrus,
}

impl Wal for Adapter {
    fn append(&self, record: &[u8]) -> Result<()> {
        Ok(self.wal.append_for_topic(TOPIC, record)?)
    }

    fn sync(&self) -> Result<()> {
        // walrus has no sync call; see the module documentation.
        Ok(())
    }

    fn append_durable(&self, record: &[u8]) -> Result<()> {
        // Opened with FsyncSchedule::SyncEach: the append returns after the fsync.
        Ok(self.wal.append_for_topic(TOPIC, record)?)
    }

    fn read_all(&self, verify: &mut Verifier) -> Result<Reading> {
        loop {
            let entries = self
                .wal
                .batch_read_for_topic(TOPIC, READ_BATCH_BYTES, true)?;
            if entries.is_empty() {
                return Ok(Reading::Read);
            }
            for entry in &entries {
                verify.check(&entry.data)?;
            }
        }
    }

    fn close(self: Box<Self>) -> Result<()> {
        drop(self);
        Ok(())
    }
}
