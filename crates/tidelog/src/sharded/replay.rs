//! [`Replay`]: every shard's durable records merged in (epoch, shard, LSN) order, streamed: one
//! shard iterator open at a time, so memory is bounded by the number of shards and epochs, not
//! by the log's size.

use super::ShardedLog;
use crate::error::Result;
use crate::read::{Iter, Record};
use crate::types::Lsn;

/// A record of a sharded log with its epoch and shard, from [`Replay`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ShardedRecord {
    /// The epoch it belongs to.
    pub epoch: u64,
    /// The shard it is in.
    pub shard: usize,
    /// The record (its LSN is its shard's).
    pub record: Record,
}

/// The durable records of a sharded log in (epoch, shard, LSN) order, from
/// [`ShardedLog::replay`] and [`ShardedLog::replay_to`]. Yields `Err` once, for damage or an
/// I/O failure in a shard, and then ends.
#[derive(Debug)]
pub struct Replay<'a> {
    log: &'a ShardedLog,
    /// Each epoch to replay and where it starts in every shard, with where the next one starts
    /// (`None` for the current epoch, which reads to each shard's durable end).
    plan: Vec<(u64, Vec<Lsn>, Option<Vec<Lsn>>)>,
    epoch: usize,
    shard: usize,
    current: Option<Iter>,
    done: bool,
}

impl ShardedLog {
    /// Replays every durable record of every shard, in (epoch, shard, LSN) order.
    ///
    /// # Errors
    /// As [`Log::range`](crate::Log::range).
    pub fn replay(&self) -> Result<Replay<'_>> {
        self.replay_to(u64::MAX)
    }

    /// Replays the durable records of every epoch up to and including `epoch`, in (epoch,
    /// shard, LSN) order, stopping exactly at its end.
    ///
    /// # Errors
    /// As [`Log::range`](crate::Log::range).
    pub fn replay_to(&self, epoch: u64) -> Result<Replay<'_>> {
        span!("tidelog.sharded.replay", root = %self.root.display(), to = epoch);
        let starts = self.plan();
        let mut plan = Vec::new();
        for (i, (e, s)) in starts.iter().enumerate() {
            if *e > epoch {
                break;
            }
            plan.push((*e, s.clone(), starts.get(i + 1).map(|(_, n)| n.clone())));
        }
        Ok(Replay {
            log: self,
            plan,
            epoch: 0,
            shard: 0,
            current: None,
            done: false,
        })
    }
}

impl Replay<'_> {
    /// The iterator over shard `self.shard`'s records of epoch `self.epoch`, or `None` if the
    /// range is empty.
    fn open(&self) -> Result<Option<Iter>> {
        let (_, starts, next) = &self.plan[self.epoch];
        let log = &self.log.shards[self.shard].log;
        let from = starts[self.shard]
            .max(log.checkpoint_lsn())
            .max(Lsn::new(1));
        let to = match next {
            Some(next) => next[self.shard].prev(),
            None => log.durable_lsn(),
        }
        .min(log.durable_lsn());
        if to < from {
            return Ok(None);
        }
        log.range(from..=to).map(Some)
    }

    fn advance(&mut self) -> Result<Option<ShardedRecord>> {
        loop {
            if self.epoch >= self.plan.len() {
                return Ok(None);
            }
            if self.current.is_none() {
                self.current = self.open()?;
                if self.current.is_none() {
                    self.step();
                    continue;
                }
            }
            match self.current.as_mut().and_then(Iterator::next) {
                Some(record) => {
                    return Ok(Some(ShardedRecord {
                        epoch: self.plan[self.epoch].0,
                        shard: self.shard,
                        record: record?,
                    }));
                }
                None => self.step(),
            }
        }
    }

    /// Moves to the next shard, or the first shard of the next epoch.
    fn step(&mut self) {
        self.current = None;
        self.shard += 1;
        if self.shard == self.log.shards.len() {
            self.shard = 0;
            self.epoch += 1;
        }
    }
}

impl Iterator for Replay<'_> {
    type Item = Result<ShardedRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.advance().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}
