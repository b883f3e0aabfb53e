//! Reading: [`Record`] and the range iterator [`Iter`].

use std::ops::Range;
use std::sync::{Arc, Weak};

use crate::error::Result;
use crate::format::FrameCursor;
use crate::segment::SegmentView;
use crate::types::Lsn;

/// A record read back from a log.
///
/// A record read by an iterator shares the buffer it was read with (no copy per record);
/// [`Record::into_data`] copies it out. Keeping a record keeps that buffer (up to 1 MiB) alive.
#[derive(Clone)]
pub struct Record {
    lsn: Lsn,
    data: Data,
    flags: u8,
}

#[derive(Clone)]
enum Data {
    Owned(Vec<u8>),
    Shared(Arc<Vec<u8>>, Range<usize>),
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("lsn", &self.lsn)
            .field("len", &self.data().len())
            .field("flags", &self.flags)
            .finish()
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.lsn == other.lsn && self.flags == other.flags && self.data() == other.data()
    }
}

impl Eq for Record {}

impl Record {
    pub(crate) fn new(lsn: Lsn, data: Vec<u8>, flags: u8) -> Self {
        Self {
            lsn,
            data: Data::Owned(data),
            flags,
        }
    }

    pub(crate) fn shared(lsn: Lsn, buf: Arc<Vec<u8>>, range: Range<usize>, flags: u8) -> Self {
        Self {
            lsn,
            data: Data::Shared(buf, range),
            flags,
        }
    }

    /// Whether the record is the first of the batch it was appended in (a single append is a
    /// batch of one).
    pub fn is_batch_start(&self) -> bool {
        self.flags & crate::format::FLAG_BATCH_START != 0
    }

    /// Whether the record is the last of the batch it was appended in.
    pub fn is_batch_end(&self) -> bool {
        self.flags & crate::format::FLAG_BATCH_END != 0
    }

    /// The record's LSN.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The record's bytes.
    pub fn data(&self) -> &[u8] {
        match &self.data {
            Data::Owned(v) => v,
            Data::Shared(buf, range) => buf.get(range.clone()).unwrap_or_default(),
        }
    }

    /// The record's bytes, owned (a copy for a record that shares its read buffer).
    pub fn into_data(self) -> Vec<u8> {
        match self.data {
            Data::Owned(v) => v,
            Data::Shared(buf, range) => buf.get(range).unwrap_or_default().to_vec(),
        }
    }
}

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
        }
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
                        let cursor = view.cursor(SCAN_CHUNK);
                        self.current = Some((view, cursor));
                    }
                    None => return Ok(None),
                }
            }
            let Some((view, cursor)) = self.current.as_mut() else {
                continue;
            };
            match view.step(cursor)? {
                None => self.current = None,
                Some((header, _)) if header.lsn < self.next => {}
                Some((header, _)) if header.lsn > self.last => return Ok(None),
                Some((header, _)) => {
                    self.next = header.lsn.next();
                    let (buf, range) = cursor.shared_payload();
                    return Ok(Some(Record::shared(header.lsn, buf, range, header.flags)));
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
