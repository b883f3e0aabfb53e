//! [`Iter`]: the records of an LSN range, read outside every lock from the segment files the
//! iterator holds; and [`Log::read`], one record by LSN.

use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Weak};

use super::Record;
use crate::commit::GroupCommit;
use crate::error::{Error, Result};
use crate::format::FrameCursor;
use crate::log::{Inner, Log, State};
use crate::segment::SegmentView;
use crate::types::Lsn;

const SCAN_CHUNK: usize = 1 << 20;

/// An iterator over a range of durable records, from [`Log::range`](crate::Log::range) and
/// friends. Yields `Err` once, for damage or an I/O failure, and then ends.
pub struct Iter {
    views: std::vec::IntoIter<SegmentView>,
    current: Option<(SegmentView, FrameCursor)>,
    next: Lsn,
    last: Lsn,
    done: bool,
    /// Told when the iterator lets go of its segments, so files a checkpoint dropped meanwhile
    /// can be removed.
    reaper: Option<Weak<dyn Reaper>>,
    /// How it learns of a rollback after it was made (none for an iterator outside a log).
    watch: Option<Watch>,
}

/// The rollback generation an iterator was made in, and what it has seen of later ones.
struct Watch {
    commit: Arc<GroupCommit>,
    generation: u64,
    /// The generation last looked at, and the lowest rollback point since `generation`.
    seen: u64,
    floor: Option<Lsn>,
}

impl Watch {
    /// The lowest LSN the log was rolled back to since the iterator was made, if any.
    fn floor(&mut self) -> Option<Lsn> {
        let now = self.commit.generation();
        if now != self.seen {
            self.seen = now;
            self.floor = self.commit.rolled_back_since(self.generation);
        }
        self.floor
    }
}

impl std::fmt::Debug for Iter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("next", &self.next)
            .field("last", &self.last)
            .finish()
    }
}

/// Removes segment files that a checkpoint dropped once no reader holds them any more.
pub(crate) trait Reaper: Send + Sync {
    fn reap(&self);
}

impl Iter {
    pub(crate) fn new(
        views: Vec<SegmentView>,
        from: Lsn,
        last: Lsn,
        reaper: Option<Weak<dyn Reaper>>,
    ) -> Self {
        Self {
            views: views.into_iter(),
            current: None,
            next: from,
            last,
            done: from > last,
            reaper,
            watch: None,
        }
    }

    /// Reports a rollback after `generation` (of `commit`) that removed records of the range.
    pub(crate) fn watching(mut self, commit: &Arc<GroupCommit>, generation: u64) -> Self {
        self.watch = Some(Watch {
            commit: Arc::clone(commit),
            generation,
            seen: generation,
            floor: None,
        });
        self
    }

    /// The rollback error for the iterator at `lsn`, if a rollback since it was made removed
    /// `lsn` (or, with `lsn` past the range, any record of the range not read yet).
    fn rolled_back(&mut self, lsn: Lsn) -> Option<Error> {
        let to = self.watch.as_mut()?.floor()?;
        (to < lsn.min(self.last)).then(|| Error::RolledBack {
            lsn: to.next().max(self.next),
            to,
        })
    }

    /// The rollback generation the iterator was made in.
    pub(crate) fn generation(&self) -> Option<u64> {
        self.watch.as_ref().map(|w| w.generation)
    }

    /// The last LSN this iterator can yield (the durable LSN when it was made, or the range's
    /// end).
    pub fn last_lsn(&self) -> Lsn {
        self.last
    }

    fn advance(&mut self) -> Result<Option<Record>> {
        loop {
            // Done once the last LSN is out: never parse past it, where the active segment may
            // hold bytes still being written.
            if self.next > self.last {
                return Ok(None);
            }
            if self.current.is_none() {
                match self.views.next() {
                    Some(view) => {
                        let cursor = view.cursor(SCAN_CHUNK)?;
                        self.current = Some((view, cursor));
                    }
                    // The range ends early only if a rollback cut it short.
                    None => return self.rolled_back(self.last).map_or(Ok(None), Err),
                }
            }
            let Some((view, cursor)) = self.current.as_mut() else {
                continue;
            };
            let step = view.step(cursor);
            let step = match step {
                // Damage or a short file where a rollback cut or rewrote the segment.
                Err(e) => return Err(self.rolled_back(self.last).unwrap_or(e)),
                Ok(step) => step,
            };
            match step {
                None => self.current = None,
                Some((header, _)) if header.lsn < self.next => {}
                Some((header, _)) if header.lsn > self.last => {
                    return self.rolled_back(self.last).map_or(Ok(None), Err);
                }
                Some((header, _)) => {
                    // Checked after the frame was read: bytes a rollback's successors wrote
                    // are only ever read after the generation changed.
                    if let Some(e) = self.rolled_back(header.lsn) {
                        return Err(e);
                    }
                    let Some((_, cursor)) = self.current.as_mut() else {
                        continue;
                    };
                    self.next = header.lsn.next();
                    let (buf, range) = cursor.shared_payload();
                    return Ok(Some(Record::shared(&header, buf, range)));
                }
            }
        }
    }
}

impl Iterator for Iter {
    type Item = Result<Record>;

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

impl std::iter::FusedIterator for Iter {}

impl Drop for Iter {
    fn drop(&mut self) {
        // Let go of the segments first, then let the log remove any it no longer needs.
        self.views = Vec::new().into_iter();
        self.current = None;
        if let Some(reaper) = self.reaper.take().and_then(|r| r.upgrade()) {
            reaper.reap();
        }
    }
}

impl Log {
    /// Reads the record at `lsn`.
    ///
    /// # Errors
    /// [`Error::BelowCheckpoint`], [`Error::NotDurable`] (readers see durable records only),
    /// [`Error::RecordLost`] for a record a `SkipCorrupt` recovery skipped, [`Error::Corrupt`] if
    /// the bytes on disk no longer check out, [`Error::Io`], [`Error::Poisoned`],
    /// [`Error::Closed`].
    pub fn read(&self, lsn: Lsn) -> Result<Record> {
        let (view, generation) = {
            let st = self.inner.state()?;
            self.check_readable(&st, lsn)?;
            let i = st.segment_of(lsn);
            if lsn > st.segments[i].last_lsn {
                return Err(Error::RecordLost { lsn });
            }
            (st.segments[i].view(lsn), self.inner.commit.generation())
        };
        let found = view.find(lsn);
        // A rollback while the frame was read may have cut or rewritten it.
        if let Some(to) = self.inner.commit.rolled_back_since(generation)
            && to < lsn
        {
            return Err(Error::RolledBack { lsn, to });
        }
        match found? {
            Some(frame) => Ok(Record::new(&frame.header, frame.payload)),
            None => Err(Error::RecordLost { lsn }),
        }
    }

    fn check_readable(&self, st: &State, lsn: Lsn) -> Result<()> {
        if lsn == Lsn::ZERO {
            return Err(Error::InvalidLsn {
                lsn,
                reason: "LSNs start at 1",
            });
        }
        if lsn < st.checkpoint {
            return Err(Error::BelowCheckpoint {
                lsn,
                checkpoint: st.checkpoint,
            });
        }
        let durable = self.durable_lsn();
        if lsn > durable {
            return Err(Error::NotDurable { lsn, durable });
        }
        Ok(())
    }

    /// Iterates over every durable record from the checkpoint on.
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Closed`].
    pub fn iter(&self) -> Result<Iter> {
        self.range(..)
    }

    /// Iterates over the durable records from `lsn` on.
    ///
    /// # Errors
    /// As [`Log::range`].
    pub fn iter_from(&self, lsn: Lsn) -> Result<Iter> {
        self.range(lsn..)
    }

    /// Iterates over the durable records in `range`, as the log is when the call is made
    /// (records that become durable later are not included). The iterator keeps the segment
    /// files it needs open, so a checkpoint cannot take them away under it. Records a
    /// `SkipCorrupt` recovery skipped are left out.
    ///
    /// A rollback ([`Log::truncate_after`]) after the call that removes records of the range
    /// ends the iteration with one [`Error::RolledBack`] after the records it kept.
    ///
    /// # Errors
    /// [`Error::BelowCheckpoint`] if the range starts below the checkpoint, [`Error::Poisoned`],
    /// [`Error::Closed`]. Items are `Err` for damage found while reading.
    pub fn range(&self, range: impl RangeBounds<Lsn>) -> Result<Iter> {
        range_of(&self.inner, range)
    }

    /// As [`Log::range`], over every record of `range` that was *written* (handed to the
    /// storage), durable or not: what a Raft leader sends its followers while its own fsync
    /// runs, or what a store must read back as soon as its append returned. With
    /// [`Options::write_buffer_bytes`](crate::Options::write_buffer_bytes) 0 every append is
    /// written before it returns; otherwise appends wait in the buffer until it fills or a
    /// sync writes it out ([`Log::written_lsn`] says how far the records go).
    ///
    /// Records past the [durable LSN](Log::durable_lsn) may be lost in a crash, and a rollback
    /// may remove them: the iterator then ends with one [`Error::RolledBack`], as for
    /// [`Log::range`].
    ///
    /// # Errors
    /// As [`Log::range`].
    pub fn range_written(&self, range: impl RangeBounds<Lsn>) -> Result<Iter> {
        range_up_to(&self.inner, range, inner_written)
    }
}

fn inner_written(inner: &Inner) -> Lsn {
    inner.commit.written()
}

fn inner_durable(inner: &Inner) -> Lsn {
    inner.commit.durable()
}

/// An iterator over the durable records of `range` (see [`Log::range`]).
pub(crate) fn range_of(inner: &Arc<Inner>, range: impl RangeBounds<Lsn>) -> Result<Iter> {
    range_up_to(inner, range, inner_durable)
}

/// An iterator over the records of `range` up to the watermark `bound` gives.
fn range_up_to(
    inner: &Arc<Inner>,
    range: impl RangeBounds<Lsn>,
    bound: fn(&Inner) -> Lsn,
) -> Result<Iter> {
    let st = inner.state()?;
    let from = match range.start_bound() {
        Bound::Included(&l) => l,
        Bound::Excluded(&l) => l.next(),
        Bound::Unbounded => st.checkpoint,
    };
    if from < st.checkpoint {
        return Err(Error::BelowCheckpoint {
            lsn: from,
            checkpoint: st.checkpoint,
        });
    }
    let from = from.max(Lsn::FIRST);
    let upto = bound(inner);
    let to = match range.end_bound() {
        Bound::Included(&l) => l.min(upto),
        Bound::Excluded(&l) => l.prev().min(upto),
        Bound::Unbounded => upto,
    };
    let mut views = Vec::new();
    if from <= to {
        let first = st.segment_of(from);
        let last = st.segment_of(to);
        for i in first..=last {
            views.push(st.segments[i].view(if i == first { from } else { Lsn::ZERO }));
        }
    }
    let reaper: Weak<dyn Reaper> = Arc::downgrade(inner) as Weak<dyn Reaper>;
    let generation = inner.commit.generation();
    Ok(Iter::new(views, from, to, Some(reaper)).watching(&inner.commit, generation))
}
