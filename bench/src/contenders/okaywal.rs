//! okaywal: opened through `Configuration::open` with our own `LogManager` (checkpointing off,
//! so the data stays for read-back). A durable commit is `begin_entry` + `write_chunk` +
//! `commit` (commit waits for the fsync, shared between writers); bulk work is one entry with a
//! chunk per record and one commit. okaywal reads a log back only through recovery: the
//! manager's `recover` callback verifies every record while the log opens.

use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use okaywal::{
    Configuration, Entry, EntryId, LogManager, ReadChunkResult, SegmentReader, WriteAheadLog,
};

use super::{Purpose, Reading, Wal};
use crate::Result;
use crate::payload::{self, Verifier};

pub fn open(dir: &Path, purpose: Purpose) -> Result<Box<dyn Wal>> {
    let len = match purpose {
        Purpose::Reopen { len, .. } => len,
        _ => payload::SMALL,
    };
    let state = Arc::new(Mutex::new(Recovered {
        verifier: Verifier::new(len),
        buf: Vec::new(),
    }));
    let manager = Manager {
        state: Arc::clone(&state),
    };
    let wal = Configuration::default_for(dir)
        // Never checkpoint: the benchmark reads everything back.
        .checkpoint_after_bytes(u64::MAX)
        .open(manager)?;
    Ok(Box::new(Adapter { wal, state }))
}

#[derive(Debug)]
struct Recovered {
    verifier: Verifier,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Manager {
    state: Arc<Mutex<Recovered>>,
}

impl LogManager for Manager {
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        let Recovered { verifier, buf } = &mut *state;
        loop {
            match entry.read_chunk()? {
                ReadChunkResult::Chunk(mut chunk) => {
                    buf.resize(chunk.bytes_remaining() as usize, 0);
                    chunk.read_exact(buf)?;
                    if !chunk.check_crc()? {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "chunk CRC mismatch",
                        ));
                    }
                    verifier.check(buf).map_err(io::Error::other)?;
                }
                ReadChunkResult::EndOfEntry => return Ok(()),
                // An entry a crash cut short: okaywal's contract is to ignore it.
                ReadChunkResult::AbortedEntry => return Ok(()),
            }
        }
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: EntryId,
        _checkpointed_entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

struct Adapter {
    wal: WriteAheadLog,
    state: Arc<Mutex<Recovered>>,
}

impl Wal for Adapter {
    fn append(&self, _record: &[u8]) -> Result<()> {
        Err(
            "okaywal has no append that is not a commit; bulk work uses one multi-chunk entry"
                .into(),
        )
    }

    fn sync(&self) -> Result<()> {
        // Every commit is synced before it returns.
        Ok(())
    }

    fn append_durable(&self, record: &[u8]) -> Result<()> {
        let mut entry = self.wal.begin_entry()?;
        entry.write_chunk(record)?;
        entry.commit()?;
        Ok(())
    }

    fn bulk(&self, count: u64, len: usize) -> Result<()> {
        let mut buf = vec![0u8; len];
        let mut entry = self.wal.begin_entry()?;
        for i in 0..count {
            payload::fill(i, &mut buf);
            entry.write_chunk(&buf)?;
        }
        entry.commit()?;
        Ok(())
    }

    fn read_all(&self, verify: &mut Verifier) -> Result<Reading> {
        let state = self.state.lock().map_err(|_| "poisoned")?;
        *verify = state.verifier.clone();
        Ok(Reading::DuringOpen)
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.wal.shutdown()?)
    }
}
