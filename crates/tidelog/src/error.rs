//! The one error type of the crate, with the context (path, LSN, offset) in its fields.

use std::io;
use std::path::{Path, PathBuf};

use crate::Lsn;

/// The result type of every fallible tidelog call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in tidelog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage failed an operation on `path`.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What tidelog was doing, as a verb phrase ("write", "sync", "rename").
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The error the storage returned.
        #[source]
        source: io::Error,
    },

    /// A file of the log holds bytes that are not what tidelog wrote there.
    #[error("corrupt log file {}: {kind} at offset {offset}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage in the file.
        offset: u64,
        /// What is wrong.
        kind: CorruptionKind,
    },

    /// Records between two intact parts of the log are missing (for example a deleted middle
    /// segment).
    #[error("records {first}..={last} are missing before {}", path.display())]
    MissingRecords {
        /// The first missing LSN.
        first: Lsn,
        /// The last missing LSN.
        last: Lsn,
        /// The segment file that follows the gap.
        path: PathBuf,
    },

    /// An earlier write or sync failed, so the log accepts nothing more until it is reopened
    /// (which runs recovery). Nothing that was acknowledged as durable is lost by this.
    #[error("the log is poisoned by an earlier failed write or sync; reopen it to recover")]
    Poisoned,

    /// A record is larger than [`Options::max_record_bytes`](crate::Options::max_record_bytes).
    #[error("record of {len} bytes exceeds the maximum record size of {max} bytes")]
    RecordTooLarge {
        /// The record's size.
        len: u64,
        /// The configured maximum.
        max: u64,
    },

    /// [`Log::set_metadata`](crate::Log::set_metadata) was given more than the checkpoint
    /// file holds.
    #[error("metadata of {len} bytes is larger than the {max} a checkpoint file holds")]
    MetadataTooLarge {
        /// The metadata's length.
        len: usize,
        /// The largest there can be.
        max: usize,
    },

    /// `append_batch` was given no records.
    #[error("a batch needs at least one record")]
    EmptyBatch,

    /// An option is out of range.
    #[error("invalid option {name}: {reason}")]
    InvalidOptions {
        /// The option's name.
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },

    /// The LSN is below the checkpoint: its record was dropped.
    #[error("LSN {lsn} is below the checkpoint at {checkpoint}: its record was dropped")]
    BelowCheckpoint {
        /// The LSN asked for.
        lsn: Lsn,
        /// The current checkpoint LSN.
        checkpoint: Lsn,
    },

    /// The LSN is not durable yet (or was never appended); readers see durable records only.
    #[error("LSN {lsn} is not durable (the log is durable up to LSN {durable})")]
    NotDurable {
        /// The LSN asked for.
        lsn: Lsn,
        /// The durable LSN at the time of the call.
        durable: Lsn,
    },

    /// The record was damaged and skipped by a [`RecoveryMode::SkipCorrupt`] recovery.
    ///
    /// [`RecoveryMode::SkipCorrupt`]: crate::RecoveryMode::SkipCorrupt
    #[error("the record at LSN {lsn} was lost to corruption and skipped by recovery")]
    RecordLost {
        /// The LSN asked for.
        lsn: Lsn,
    },

    /// A rollback ([`Log::truncate_after`](crate::Log::truncate_after)) removed the record this
    /// call waited for or was about to read: LSN `lsn` and everything after `to` were discarded
    /// after the call began (a later record may since have taken the same LSN). Waiters, futures,
    /// iterators and tails report it once; a [`Tail`](crate::Tail) then goes on from `to + 1`.
    #[error("LSN {lsn} was rolled back: the log was truncated after LSN {to}")]
    RolledBack {
        /// The LSN waited for, or the first one read past the rollback point.
        lsn: Lsn,
        /// The LSN the log was truncated after.
        to: Lsn,
    },

    /// A log opened read-only changed in a way [`Log::refresh`](crate::Log::refresh) cannot
    /// follow (the writer rolled it back, reset it, or replaced a segment): open it again.
    #[error("the log changed under the reader at {}: {reason}; open it again", path.display())]
    LogChanged {
        /// The file that showed the change.
        path: PathBuf,
        /// What changed.
        reason: &'static str,
    },

    /// The LSN cannot be used for this call.
    #[error("invalid LSN {lsn}: {reason}")]
    InvalidLsn {
        /// The LSN given.
        lsn: Lsn,
        /// Why it was refused.
        reason: &'static str,
    },

    /// Another open log holds the directory.
    #[error("{} is locked by another open log", path.display())]
    Locked {
        /// The log directory.
        path: PathBuf,
    },

    /// The directory holds no log and `create_if_missing` is off.
    #[error("{} holds no tidelog log", path.display())]
    NotFound {
        /// The directory.
        path: PathBuf,
    },

    /// The log was closed.
    #[error("the log is closed")]
    Closed,

    /// A bounded log has no room for the append (and, with [`WhenFull::Wait`], none was freed
    /// in time).
    ///
    /// [`WhenFull::Wait`]: crate::WhenFull::Wait
    #[error("the log is full: {used} of {capacity} bytes used")]
    LogFull {
        /// The configured capacity.
        capacity: u64,
        /// Bytes in use.
        used: u64,
    },

    /// The log was opened read-only and the call would write.
    #[error("the log was opened read-only")]
    ReadOnly,

    /// A sharded log was opened with another number of shards than it was created with.
    #[error("{} holds a sharded log of {found} shards, not {expected}", path.display())]
    ShardCount {
        /// The sharded log's root directory.
        path: PathBuf,
        /// The number asked for.
        expected: usize,
        /// The number it was created with.
        found: usize,
    },

    /// A shard directory that the sharded log's manifest names is missing.
    #[error("shard directory {} is missing", path.display())]
    MissingShard {
        /// The missing directory.
        path: PathBuf,
    },

    /// A shard directory holds a log that is not the one the sharded log's manifest names
    /// (another sharded log's shard, or a log put there by hand).
    #[error("{} holds log {found:032x}, not the shard {expected:032x} the manifest names", path.display())]
    ForeignShard {
        /// The shard directory.
        path: PathBuf,
        /// The log id the manifest names.
        expected: u128,
        /// The log id found.
        found: u128,
    },

    /// An epoch that cannot be used for this call.
    #[error("invalid epoch {epoch}: {reason}")]
    InvalidEpoch {
        /// The epoch given.
        epoch: u64,
        /// Why it was refused.
        reason: &'static str,
    },
}

/// What is wrong with a damaged part of a log file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The file is shorter than its fixed header.
    #[error("file too short for its header ({len} bytes)")]
    TruncatedHeader {
        /// The file's length.
        len: u64,
    },
    /// The header does not start with tidelog's magic bytes.
    #[error("bad magic bytes in header")]
    BadMagic,
    /// The header was written by a format version this build does not read.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The header's checksum does not match its bytes.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// The segment's header names another first LSN than its file name.
    #[error("header says first LSN {header} but the file name says {name}")]
    NameMismatch {
        /// The first LSN in the file name.
        name: Lsn,
        /// The first LSN in the header.
        header: Lsn,
    },
    /// The file belongs to another log.
    #[error("file of another log (log id {found:032x}, this log is {expected:032x})")]
    ForeignLog {
        /// This log's id.
        expected: u128,
        /// The id in the file.
        found: u128,
    },
    /// A frame header is neither a valid frame nor zeros.
    #[error("invalid frame header")]
    BadFrameHeader,
    /// A frame's checksum does not match its bytes (a torn write, bit rot, or a frame of another
    /// log or an older segment).
    #[error("frame checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    FrameChecksum {
        /// The checksum stored in the frame.
        stored: u32,
        /// The checksum of the bytes found.
        computed: u32,
    },
    /// A frame runs past the end of the file.
    #[error("frame of {needed} bytes but only {available} bytes left in the file")]
    TruncatedFrame {
        /// Bytes the frame needs.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// An intact frame carries an unexpected LSN.
    #[error("frame has LSN {found}, expected {expected}")]
    LsnMismatch {
        /// The LSN that should come next.
        expected: Lsn,
        /// The LSN in the frame.
        found: Lsn,
    },
    /// A batch's records are there but its last record is not, so the batch is incomplete.
    #[error("incomplete batch starting at LSN {first}")]
    IncompleteBatch {
        /// The LSN of the batch's first record.
        first: Lsn,
    },
    /// Zeros where a frame should be, with intact frames after them.
    #[error("zeroed region followed by intact records")]
    ZeroedRegion,
    /// A segment starts past the LSN the log expected next: records are missing.
    #[error("records {first}..={last} are missing")]
    MissingRecords {
        /// The first missing LSN.
        first: Lsn,
        /// The last missing LSN.
        last: Lsn,
    },
    /// A frame's batch flags do not fit the frames around it.
    #[error("frame does not fit its batch")]
    BatchFraming,
}

impl CorruptionKind {
    /// The kind's name, stable for machine-readable output (`"FrameChecksum"`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::TruncatedHeader { .. } => "TruncatedHeader",
            Self::BadMagic => "BadMagic",
            Self::UnsupportedVersion { .. } => "UnsupportedVersion",
            Self::HeaderChecksum => "HeaderChecksum",
            Self::NameMismatch { .. } => "NameMismatch",
            Self::ForeignLog { .. } => "ForeignLog",
            Self::BadFrameHeader => "BadFrameHeader",
            Self::FrameChecksum { .. } => "FrameChecksum",
            Self::TruncatedFrame { .. } => "TruncatedFrame",
            Self::LsnMismatch { .. } => "LsnMismatch",
            Self::IncompleteBatch { .. } => "IncompleteBatch",
            Self::ZeroedRegion => "ZeroedRegion",
            Self::MissingRecords { .. } => "MissingRecords",
            Self::BatchFraming => "BatchFraming",
        }
    }
}

/// Attaches a path and a verb to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, op: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        })
    }
}
