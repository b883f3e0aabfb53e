//! tidelog: `append(Durability::Synced)` per durable commit; bulk is `append(Buffered)` for each
//! record and one `sync()`. Its fsyncs are counted by the log itself (`Log::metrics`).

use std::path::Path;

use tidelog::{Durability, Log};

use super::{Purpose, Reading, Wal};
use crate::Result;
use crate::payload::Verifier;

pub fn open(dir: &Path, _purpose: Purpose) -> Result<Box<dyn Wal>> {
    // TIDELOG_BENCH_PREALLOCATE=0 turns segment preallocation off, to measure its effect.
    let preallocate = std::env::var_os("TIDELOG_BENCH_PREALLOCATE").is_none_or(|v| v != "0");
    // TIDELOG_BENCH_TRUST_SEALS=1 opens trusting sealed segments' seals (W4's reopen).
    let trust_seals = std::env::var_os("TIDELOG_BENCH_TRUST_SEALS").is_some_and(|v| v == "1");
    Ok(Box::new(Tidelog {
        log: Log::builder(dir)
            .preallocate(preallocate)
            .trust_seals(trust_seals)
            .open()?,
    }))
}

struct Tidelog {
    log: Log,
}

impl Wal for Tidelog {
    fn append(&self, record: &[u8]) -> Result<()> {
        self.log.append(record, Durability::Buffered)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(self.log.sync()?)
    }

    fn append_durable(&self, record: &[u8]) -> Result<()> {
        self.log.append(record, Durability::Synced)?;
        Ok(())
    }

    fn read_all(&self, verify: &mut Verifier) -> Result<Reading> {
        for record in self.log.iter()? {
            verify.check(record?.data())?;
        }
        Ok(Reading::Read)
    }

    fn lib_syncs(&self) -> Option<u64> {
        Some(self.log.metrics().fsyncs)
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.log.close()?)
    }
}
