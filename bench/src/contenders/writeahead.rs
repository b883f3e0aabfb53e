//! writeahead: its defaults (1 GiB files, 256 KiB zero-filled allocation windows, a queue of 64
//! commands, batches of at most 4 MiB). Every write it offers is durable: a commit is
//! `WriteHandle::write` (one dedicated writer thread takes every queued command, writes them
//! and a commit marker, runs one fdatasync and replies); bulk work is `write_batch` of as many
//! records as fit in one 4 MiB batch, so one fsync per batch. Its API is async: each call is
//! driven to completion on the calling thread (`futures::executor::block_on`), which parks the
//! thread until the writer replies, as a synchronous caller would. Read-back is its stream
//! (`create_stream`), which verifies each record's hash.

use std::path::Path;

use futures::StreamExt;
use futures::executor::block_on;
use writeahead::{SimpleFile, WriteAhead, WriteAheadOptions, WriteHandle};

use super::{Purpose, Reading, Wal};
use crate::Result;
use crate::payload::{self, Verifier};

/// Its default limit of encoded bytes per batch, and what each record adds to its payload.
const MAX_BATCH_BYTES: usize = 4 << 20;
const RECORD_OVERHEAD: usize = 20;

pub fn open(dir: &Path, _purpose: Purpose) -> Result<Box<dyn Wal>> {
    let mut wal = WriteAhead::<SimpleFile>::with_options(WriteAheadOptions {
        log_dir: dir.to_path_buf(),
        ..WriteAheadOptions::default()
    });
    wal.start()?;
    let writer = wal.writer()?;
    Ok(Box::new(Adapter { wal, writer }))
}

struct Adapter {
    wal: WriteAhead<SimpleFile>,
    writer: WriteHandle,
}

impl Wal for Adapter {
    /// Its only write is durable.
    fn append(&self, record: &[u8]) -> Result<()> {
        block_on(self.writer.write(record.to_vec()))?;
        Ok(())
    }

    /// Every write was durable when it returned.
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn append_durable(&self, record: &[u8]) -> Result<()> {
        block_on(self.writer.write(record.to_vec()))?;
        Ok(())
    }

    fn bulk(&self, count: u64, len: usize) -> Result<()> {
        let per_batch = (MAX_BATCH_BYTES / (len + RECORD_OVERHEAD)).max(1) as u64;
        let mut i = 0;
        while i < count {
            let n = per_batch.min(count - i);
            let batch: Vec<Vec<u8>> = (i..i + n)
                .map(|k| {
                    let mut buf = vec![0u8; len];
                    payload::fill(k, &mut buf);
                    buf
                })
                .collect();
            block_on(self.writer.write_batch(batch))?;
            i += n;
        }
        Ok(())
    }

    fn read_all(&self, verify: &mut Verifier) -> Result<Reading> {
        let mut stream = self.wal.create_stream()?;
        block_on(async {
            while let Some(entry) = stream.next().await {
                let (_, record) = entry?;
                verify.check(&record)?;
            }
            Ok::<_, crate::Error>(())
        })?;
        Ok(Reading::Read)
    }

    fn close(self: Box<Self>) -> Result<()> {
        drop(self);
        Ok(())
    }
}
