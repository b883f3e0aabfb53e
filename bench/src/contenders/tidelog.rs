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
                .sync_policy(
                    match std::env::var("TIDELOG_BENCH_SYNC_BYTES")
                        .ok()
                        .and_then(|v| v.parse().ok())
                    {
                        Some(n) => tidelog::SyncPolicy::Bytes(n),
                        None => tidelog::SyncPolicy::Manual,
                    },
                )
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

    fn bulk(&self, count: u64, len: usize) -> Result<()> {
        // TIDELOG_BENCH_BULK_BATCH=N: bulk work in batches of N records (`append_batch`, one
        // lock and one write buffer hand-off per batch); records one by one otherwise.
        let per_batch: u64 = std::env::var("TIDELOG_BENCH_BULK_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        if per_batch <= 1 {
            let mut buf = vec![0u8; len];
            for i in 0..count {
                crate::payload::fill(i, &mut buf);
                self.append(&buf)?;
            }
            return self.sync();
        }
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(per_batch as usize);
        let mut i = 0;
        while i < count {
            let n = per_batch.min(count - i);
            batch.resize_with(n as usize, || vec![0u8; len]);
            for (k, buf) in batch.iter_mut().enumerate() {
                crate::payload::fill(i + k as u64, buf);
            }
            self.log.append_batch(&batch, Durability::Buffered)?;
            i += n;
        }
        self.sync()
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
