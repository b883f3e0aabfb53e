//! tidelog: `append(Durability::Synced)` per durable commit; bulk is `append(Buffered)` for each
//! record and one `sync()`. Its fsyncs are counted by the log itself (`Log::metrics`).

use std::path::Path;
use std::sync::Arc;

use tidelog::{Durability, Log};

use super::{Purpose, Reading, Wal};
use crate::Result;
use crate::payload::Verifier;
use crate::stats::Metrics;

pub fn open(dir: &Path, purpose: Purpose) -> Result<Box<dyn Wal>> {
    // TIDELOG_BENCH_PREALLOCATE=0 turns segment preallocation off, to measure its effect.
    let preallocate = std::env::var_os("TIDELOG_BENCH_PREALLOCATE").is_none_or(|v| v != "0");
    // A reopen asked to trust the seals (the sizes workload), or TIDELOG_BENCH_TRUST_SEALS=1
    // for every open (W4's reopen).
    let trust_seals = matches!(
        purpose,
        Purpose::Reopen {
            trust_seals: true,
            ..
        }
    ) || std::env::var_os("TIDELOG_BENCH_TRUST_SEALS").is_some_and(|v| v == "1");
    Ok(Box::new(Tidelog {
        log: Arc::new(
            Log::builder(dir)
                .preallocate(preallocate)
                .trust_seals(trust_seals)
                .open()?,
        ),
    }))
}

struct Tidelog {
    /// Shared only with an archiver (the archive workload), which is stopped before the close.
    log: Arc<Log>,
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

    fn open_figures(&self) -> Metrics {
        let report = self.log.recovery_report();
        let segments = self.log.segments();
        let mut m = Metrics::new();
        m.insert("segments".into(), segments.len() as f64);
        // Headers and frames, without the preallocated room past the last frame.
        let used: u64 = segments.iter().map(|s| s.bytes).sum();
        m.insert("used_bytes".into(), used as f64);
        m.insert("segments_trusted".into(), report.segments_trusted as f64);
        m
    }

    fn tidelog(&self) -> Option<Arc<Log>> {
        Some(Arc::clone(&self.log))
    }

    fn close(self: Box<Self>) -> Result<()> {
        let log = Arc::try_unwrap(self.log).map_err(|_| "the log is still shared")?;
        Ok(log.close()?)
    }
}
