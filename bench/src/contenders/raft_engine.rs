//! raft-engine: records are key-values of region 1 (`LogBatch::put`, key = record index as 8
//! bytes big-endian, value = the record), no compression. A durable commit is
//! `write(batch, sync = true)` (writers are grouped, one fdatasync per group); bulk work is
//! `write(batch of one, sync = false)` per record and one `sync()`. Recovery loads every value
//! into the engine's memtable; read-back is `scan_raw_messages` over it.

use std::path::Path;
use std::sync::Mutex;

use raft_engine::{Config, Engine, LogBatch, ReadableSize};

use super::{Purpose, Reading, Wal, index_of};
use crate::Result;
use crate::payload::Verifier;

const REGION: u64 = 1;

pub fn open(dir: &Path, _purpose: Purpose) -> Result<Box<dyn Wal>> {
    let cfg = Config {
        dir: dir.to_str().ok_or("directory is not UTF-8")?.to_owned(),
        batch_compression_threshold: ReadableSize(0),
        target_file_size: ReadableSize::mb(128),
        purge_threshold: ReadableSize::gb(64),
        ..Config::default()
    };
    Ok(Box::new(Adapter {
        engine: Engine::open(cfg)?,
        batch: Mutex::new(LogBatch::default()),
    }))
}

struct Adapter {
    engine: Engine,
    /// Reused by the single-threaded bulk path.
    batch: Mutex<LogBatch>,
}

fn key(index: u64) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

impl Wal for Adapter {
    fn append(&self, record: &[u8]) -> Result<()> {
        let mut batch = self.batch.lock().map_err(|_| "poisoned")?;
        batch.put(REGION, key(index_of(record)), record.to_vec())?;
        self.engine.write(&mut batch, false)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(self.engine.sync()?)
    }

    fn append_durable(&self, record: &[u8]) -> Result<()> {
        let mut batch = LogBatch::with_capacity(1);
        batch.put(REGION, key(index_of(record)), record.to_vec())?;
        self.engine.write(&mut batch, true)?;
        Ok(())
    }

    fn read_all(&self, verify: &mut Verifier) -> Result<Reading> {
        let mut failure = None;
        self.engine
            .scan_raw_messages(REGION, None, None, false, |k, v| {
                let expected = verify.next.to_be_bytes();
                let checked = if k != expected {
                    Err(format!("record {}: key {k:?}", verify.next).into())
                } else {
                    verify.check(v)
                };
                match checked {
                    Ok(()) => true,
                    Err(e) => {
                        failure = Some(e);
                        false
                    }
                }
            })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(Reading::Read),
        }
    }

    fn close(self: Box<Self>) -> Result<()> {
        drop(self);
        Ok(())
    }
}
