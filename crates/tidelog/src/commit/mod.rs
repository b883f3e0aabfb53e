//! Commit: making appended records durable.
//!
//! - [`group`]: the group-commit state machine (watermarks, leader and waiters, poison, the
//!   rollback generation), with no I/O, so loom can model it;
//! - [`leader`]: the log's calls that wait for durability and the leader's step (write out the
//!   buffer, fsync);
//! - [`syncer`]: the background thread of [`SyncPolicy`](crate::SyncPolicy) and of futures;
//! - [`future`]: the [`DurableFuture`];
//! - [`deadline`]: the one helper every timed wait uses.

mod deadline;
mod future;
mod group;
mod leader;
mod syncer;

pub(crate) use deadline::Deadline;
pub use future::DurableFuture;
pub(crate) use group::{Cause, GroupCommit, Synced};
pub(crate) use syncer::Background;
