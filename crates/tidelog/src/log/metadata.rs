//! The user metadata slot: a few bytes the application keeps in the checkpoint file (a Raft
//! store's vote and term, a database's manifest pointer), replaced crash-safely with it.
//!
//! Invariants: the slot in memory is what the checkpoint file on disk holds (it changes only
//! after the file was written, renamed into place and the directory synced); every checkpoint
//! and reset writes the file with the slot as it is, under the maintenance lock that
//! `set_metadata` holds too.

use super::{Inner, Log, lock, lock_any};
use crate::error::{Error, Result};
use crate::format::{CheckpointFile, MAX_METADATA_BYTES};
use crate::recovery;
use crate::types::Lsn;

impl Log {
    /// The user metadata the log keeps in its checkpoint file: empty until
    /// [`Log::set_metadata`] sets it (and in a log of format version 1). A read-only log shows
    /// what the file held when it was opened or last [refreshed](Log::refresh).
    pub fn metadata(&self) -> Vec<u8> {
        lock_any(&self.inner.metadata).clone()
    }

    /// Replaces the user metadata, at most [`MAX_METADATA_BYTES`] bytes, durably: the
    /// checkpoint file is written anew with it (temporary file, fsync, rename, directory
    /// fsync), so after a crash the file holds the old bytes or the new ones, never a mix. It
    /// survives checkpoints, resets and reopens.
    ///
    /// # Errors
    /// [`Error::MetadataTooLarge`] for more than [`MAX_METADATA_BYTES`] bytes,
    /// [`Error::ReadOnly`], and [`Error::Io`] if the file cannot be written (the log keeps the
    /// old metadata, and stays usable).
    ///
    /// # Blocking
    /// Writes and fsyncs the checkpoint file; waits for a checkpoint, rollback or reset in
    /// progress.
    pub fn set_metadata(&self, metadata: &[u8]) -> Result<()> {
        let inner = &*self.inner;
        inner.writable()?;
        if metadata.len() > MAX_METADATA_BYTES {
            return Err(Error::MetadataTooLarge {
                len: metadata.len(),
                max: MAX_METADATA_BYTES,
            });
        }
        let _maintenance = lock(&inner.maintenance)?;
        let checkpoint = inner.state()?.checkpoint;
        inner.write_checkpoint_file(checkpoint, metadata.to_vec())
    }
}

impl Inner {
    /// Writes the checkpoint file at `lsn` with `metadata`, then makes `metadata` the slot's.
    /// The caller holds the maintenance lock.
    pub(crate) fn write_checkpoint_file(&self, lsn: Lsn, metadata: Vec<u8>) -> Result<()> {
        let record = CheckpointFile {
            durable: self.commit.durable(),
            metadata,
            ..CheckpointFile::at(self.log_id, lsn)
        };
        recovery::write_checkpoint(&*self.storage, &self.dir, &record)?;
        *lock_any(&self.metadata) = record.metadata;
        Ok(())
    }
}
