//! [`DurableFuture`]: awaiting durability without blocking an executor. The syncer thread runs
//! the sync; the group-commit state wakes the future.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use super::GroupCommit;
use crate::error::Result;
use crate::log::Inner;
use crate::types::Lsn;

/// A future that resolves once a record is durable; from [`Log::durable`](crate::Log::durable).
///
/// It holds no lock on the log's directory: a log dropped while the future lives can be opened
/// again at once, and the future then resolves to [`Error::Closed`](crate::Error::Closed)
/// (unless its record was durable by then).
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct DurableFuture {
    commit: Arc<GroupCommit>,
    /// For asking the syncer thread to sync; gone once the log is dropped.
    log: Weak<Inner>,
    target: Lsn,
    /// The rollback generation in which `target` was appended.
    generation: u64,
    /// Ask the syncer to sync (a tail only waits for others' syncs).
    request: bool,
    requested: bool,
}

impl DurableFuture {
    pub(crate) fn new(inner: &Arc<Inner>, target: Lsn, generation: u64, request: bool) -> Self {
        Self {
            commit: Arc::clone(&inner.commit),
            log: Arc::downgrade(inner),
            target,
            generation,
            request,
            requested: false,
        }
    }
}

impl Future for DurableFuture {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let poll = self
            .commit
            .poll_durable(self.target, self.generation, cx.waker());
        if poll.is_pending() && self.request && !self.requested {
            self.requested = true;
            if let Some(inner) = self.log.upgrade() {
                inner.background.request(self.target);
            }
        }
        poll
    }
}
