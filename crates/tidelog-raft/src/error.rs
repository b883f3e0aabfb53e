//! The errors of opening a [`LogStore`](crate::LogStore); openraft's calls report theirs as
//! `StorageError`, with these as their source.

use tidelog::Lsn;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The log failed.
    #[error(transparent)]
    Log(#[from] tidelog::Error),

    /// The log gathers appends in a write buffer, so an entry could not be read back as soon as
    /// `append` returns, which openraft requires.
    #[error(
        "the log's write buffer is {bytes} bytes: a Raft log store needs 0 (every append written \
         before it returns)"
    )]
    WriteBuffer {
        /// The log's `write_buffer_bytes`.
        bytes: usize,
    },

    /// The metadata slot holds bytes this store did not write.
    #[error("the log's metadata slot does not decode as the Raft store's: {reason}")]
    BadMetadata {
        /// Why.
        reason: String,
    },

    /// A record does not decode as an entry, or holds the entry of another index.
    #[error("the record at LSN {lsn} is not the Raft entry at index {index}: {reason}")]
    BadEntry {
        /// The record's LSN.
        lsn: Lsn,
        /// The index it should hold (`lsn - 1`).
        index: u64,
        /// Why.
        reason: String,
    },

    /// An append that does not follow the last entry (a hole, or an index already taken).
    #[error("an entry at index {index} cannot follow the last entry: the next index is {next}")]
    NotNext {
        /// The entry's index.
        index: u64,
        /// The index the next entry must have.
        next: u64,
    },
}

/// The result of the store's calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
