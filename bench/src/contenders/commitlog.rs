//! commitlog: `CommitLog` needs `&mut self`, so it sits behind a `Mutex`. Appends are
//! `append_msg`; its `flush()` hands the segment to the OS but does not fsync it (it msyncs
//! only index pages), so nothing it writes is made durable by the benchmark's calls. The
//! message size limit is raised to 2 MiB for the 1 MiB records of W3.

use std::path::Path;
use std::sync::Mutex;

use commitlog::message::MessageSet;
use commitlog::{CommitLog, LogOptions, ReadLimit};

use super::{Purpose, Reading, Wal};
use crate::Result;
use crate::payload::Verifier;

const READ_BATCH_BYTES: usize = 4 << 20;

pub fn open(dir: &Path, _purpose: Purpose) -> Result<Box<dyn Wal>> {
    let mut options = LogOptions::new(dir);
    options.message_max_bytes(2 << 20);
    Ok(Box::new(Adapter {
        log: Mutex::new(CommitLog::new(options)?),
    }))
}

struct Adapter {
    log: Mutex<CommitLog>,
}

impl Wal for Adapter {
    fn append(&self, record: &[u8]) -> Result<()> {
        self.log
            .lock()
            .map_err(|_| "poisoned")?
            .append_msg(record)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(self.log.lock().map_err(|_| "poisoned")?.flush()?)
    }

    fn append_durable(&self, record: &[u8]) -> Result<()> {
        let mut log = self.log.lock().map_err(|_| "poisoned")?;
        log.append_msg(record)?;
        Ok(log.flush()?)
    }

    fn read_all(&self, verify: &mut Verifier) -> Result<Reading> {
        let log = self.log.lock().map_err(|_| "poisoned")?;
        let mut offset = 0;
        loop {
            let messages = log.read(offset, ReadLimit::max_bytes(READ_BATCH_BYTES))?;
            if messages.is_empty() {
                return Ok(Reading::Read);
            }
            for message in messages.iter() {
                verify.check(message.payload())?;
                offset = message.offset() + 1;
            }
        }
    }

    fn close(self: Box<Self>) -> Result<()> {
        let mut log = self.log.into_inner().map_err(|_| "poisoned")?;
        Ok(log.flush()?)
    }
}
