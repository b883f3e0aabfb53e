//! The archive's one error type, with the key, LSN or path in its fields. No variant carries a
//! credential: store errors are kept with the key they concern, and URLs are shown without
//! their user information or query.

use std::path::PathBuf;

use tidelog::Lsn;

/// The result type of every fallible call of the archive.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while archiving or restoring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed an operation on `key`.
    #[error("cannot {op} {key}: {source}")]
    Store {
        /// What the archive was doing ("put", "get", "list", "delete").
        op: &'static str,
        /// The object (or prefix) involved.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },

    /// The local log failed.
    #[error(transparent)]
    Log(#[from] tidelog::Error),

    /// A local file or directory could not be used.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What the archive was doing.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// A store URL or option that cannot be used.
    #[error("invalid store URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, without user information or query.
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// Options that cannot work together or are out of range.
    #[error("invalid archive option {name}: {reason}")]
    InvalidOptions {
        /// The option.
        name: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },

    /// No archive is at the location (no manifest).
    #[error("no archive at {location}")]
    NoArchive {
        /// The store and prefix.
        location: String,
    },

    /// The manifest does not decode or describes an impossible archive.
    #[error("bad manifest {key}: {reason}")]
    BadManifest {
        /// The manifest's key.
        key: String,
        /// What is wrong.
        reason: String,
    },

    /// An object the manifest names is not in the store.
    #[error("object {key} named by the manifest is missing")]
    MissingObject {
        /// The missing object.
        key: String,
    },

    /// An object's bytes are not what the archive wrote.
    #[error("corrupt archive object {key}: {reason}")]
    CorruptObject {
        /// The object.
        key: String,
        /// What is wrong.
        reason: String,
    },

    /// The archive does not hold a contiguous run of records.
    #[error("the archive is missing records {first}..={last}")]
    Gap {
        /// The first missing LSN.
        first: Lsn,
        /// The last missing LSN.
        last: Lsn,
    },

    /// The archive belongs to another log.
    #[error("the archive holds log {found:032x}, not log {expected:032x}")]
    ForeignArchive {
        /// The local log's id.
        expected: u128,
        /// The archive's log id.
        found: u128,
    },

    /// The archive holds records the local log does not have: it is not this log's archive any
    /// more, or the log was restored from an older copy.
    #[error("the archive reaches LSN {archived}, past the log's last record {last}")]
    ArchiveAhead {
        /// The last archived LSN.
        archived: Lsn,
        /// The local log's last LSN.
        last: Lsn,
    },

    /// The local log was rolled back (or reset) below what was archived already: the archive
    /// holds records the log no longer has. The archiver stops.
    #[error("the log was rolled back to LSN {to}, below the archived LSN {archived}")]
    RolledBackBelowArchive {
        /// Where the log was rolled back to.
        to: Lsn,
        /// The archived LSN at the time.
        archived: Lsn,
    },

    /// A restore target past the end of the archive, or before its start.
    #[error("restore target {target} is not in the archive ({reason})")]
    TargetNotArchived {
        /// The target, as given.
        target: String,
        /// Why.
        reason: String,
    },

    /// The restore's directory exists and is not empty.
    #[error("{} exists and is not empty", path.display())]
    TargetExists {
        /// The directory.
        path: PathBuf,
    },

    /// Another writer holds the archive: it claimed a newer generation (on this writer's start,
    /// or since). This writer archives nothing more, and nothing it uploads from now on is named
    /// by a manifest; its local log stays usable.
    #[error(
        "fenced: the archive is held by generation {by} ({holder}); this writer's claim \
         (generation {generation}, or 0 if it lost the race to claim) is gone, so archiving \
         stopped; the local log is unchanged"
    )]
    Fenced {
        /// This writer's generation (0 if it never held the archive).
        generation: u64,
        /// The generation that holds the archive now.
        by: u64,
        /// Who claimed it.
        holder: String,
    },

    /// The store cannot do conditional puts, without which a second writer could not be kept
    /// out of the archive. Write to it only with fencing turned off
    /// ([`ArchiveOptions::fencing`](crate::ArchiveOptions::fencing)), and one writer at a time.
    #[error(
        "{store} does not support conditional puts, so it cannot keep a second writer out; \
         turn fencing off to archive to it anyway"
    )]
    Unfenceable {
        /// The store and prefix.
        store: String,
    },

    /// The local log and the archive hold different records at the same LSN: another writer
    /// archived records this log does not have (two writers from one restored base, or a log
    /// rolled back below what it archived). Nothing is merged: restore over the log, or archive
    /// it under a new prefix.
    #[error(
        "the log and the archive diverged at LSN {lsn} (the log ends at LSN {local}, the \
         archive at {remote}): restore the archive over the log, or archive the log to a new \
         location"
    )]
    Diverged {
        /// The first LSN at which they differ.
        lsn: Lsn,
        /// The local log's last LSN.
        local: Lsn,
        /// The archive's last LSN.
        remote: Lsn,
    },

    /// The log's segments start at other LSNs than the archive's objects (a log built apart from
    /// the archive, or written with a smaller `segment_bytes` than its writer), so the segment
    /// holding the next record to archive starts below it.
    #[error(
        "the log's segment starting at LSN {first} holds records the archive has up to LSN \
         {archived}: the log and the archive are cut into segments differently"
    )]
    SegmentsMisaligned {
        /// The first LSN of the local segment.
        first: Lsn,
        /// The last archived LSN.
        archived: Lsn,
    },

    /// A wait for the archived LSN ran out of time.
    #[error("LSN {lsn} not archived in time (archived up to {archived})")]
    Timeout {
        /// The LSN waited for.
        lsn: Lsn,
        /// The archived LSN when the wait ended.
        archived: Lsn,
    },

    /// The archiver stopped (after the error it reports, or because it was asked to) before
    /// the LSN waited for was archived.
    #[error("the archiver stopped: {reason}")]
    Stopped {
        /// Why.
        reason: String,
    },

    /// A blocking call was made on a thread that runs an async runtime, where it would block
    /// the runtime (and tokio forbids it). Call it from `tokio::task::spawn_blocking` or a
    /// thread of your own, or use its async form where it has one.
    #[error(
        "{call} blocks, and was called on a thread that runs an async runtime: call it from spawn_blocking or a thread of its own"
    )]
    InsideAsyncRuntime {
        /// The blocking call.
        call: &'static str,
    },
}
