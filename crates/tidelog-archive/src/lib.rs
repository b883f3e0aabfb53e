//! Archive a [tidelog] log to object storage and restore it: S3 and compatible stores,
//! Google Cloud Storage and Azure (through the `gcp` and `azure` features), a local directory,
//! or memory, all through the [`object_store`] crate.
//!
//! - [`Store`]: where an archive lives, from a URL (`s3://bucket/prefix`, `file:///path`, …).
//! - [`Archiver`]: uploads each sealed segment as soon as it is sealed, and the durable part of
//!   the segment taking appends every [`ArchiveOptions::interval`] (the recovery-point
//!   objective: the archive lags the durable log by at most that plus one upload); keeps the
//!   [`Archiver::archived_lsn`] watermark, which the caller can wait on; and holds back local
//!   checkpoints from removing what is not archived yet.
//! - [`restore`]: rebuilds the log in a new directory, to the latest record, an LSN or a time,
//!   checking every checksum and refusing gaps.
//! - [`Follower`]: reads an archive live, record by record, as another process's archiver
//!   extends it (a blocking iterator, or an async stream); [`Standby`] keeps a local log up to
//!   date with it, and [`fast_forward`] brings a log that is behind its archive up to its end.
//! - Fencing: one writer per archive. Each archiver claims a new generation with a conditional
//!   put; an older writer gets [`Error::Fenced`] at its next manifest write and stops, and a
//!   log whose records differ from the archive's gets [`Error::Diverged`], never a merge.
//! - [`prune`]: retention, below an LSN or older than an age, never under a reader in
//!   progress.
//!
//! The calls above block (each runs the store's requests on a runtime of its own). Called on a
//! thread that runs an async runtime, they return [`Error::InsideAsyncRuntime`] instead: call
//! them from `spawn_blocking` there, or use the async forms ([`Archiver::archived`],
//! [`Follower::into_stream`]).
//!
//! The layout of an archive in its store is described in [`manifest`].

mod archiver;
mod divergence;
mod error;
mod fence;
mod follow;
mod io;
pub mod manifest;
mod restore;
mod retention;
mod standby;
mod store;
mod worker;

pub use crate::archiver::{ArchiveOptions, ArchiveStatus, Archiver};
pub use crate::error::{Error, Result};
pub use crate::follow::{ArchivedRecord, FollowOptions, Follower, Lag};
pub use crate::io::Backoff;
pub use crate::manifest::{Description, describe};
pub use crate::restore::{
    Progress, RestoreReport, Target, restore, restore_with, restore_with_progress,
};
pub use crate::retention::{PruneOptions, PruneReport, PruneTarget, ReaderLease, prune};
pub use crate::standby::{FastForward, Standby, StandbyStatus, fast_forward};
pub use crate::store::Store;
