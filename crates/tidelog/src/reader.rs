//! Reading: [`Record`] and the range iterator [`Iter`].

use crate::error::Result;
use crate::format::FrameCursor;
use crate::segment::SegmentView;
use crate::types::Lsn;

/// A record read back from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    lsn: Lsn,
    data: Vec<u8>,
    flags: u8,
}

impl Record {
    pub(crate) fn new(lsn: Lsn, data: Vec<u8>, flags: u8) -> Self {
        Self { lsn, data, flags }
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
        &self.data
    }

    /// The record's bytes, owned.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}

const SCAN_CHUNK: usize = 1 << 20;

/// An iterator over a range of durable records, from [`Log::range`](crate::Log::range) and
/// friends. Yields `Err` once, for damage or an I/O failure, and then ends.
#[derive(Debug)]
pub struct Iter {
    views: std::vec::IntoIter<SegmentView>,
    current: Option<(SegmentView, FrameCursor)>,
    next: Lsn,
    last: Lsn,
    done: bool,
}

impl Iter {
    pub(crate) fn new(views: Vec<SegmentView>, from: Lsn, last: Lsn) -> Self {
        Self {
            views: views.into_iter(),
            current: None,
            next: from,
            last,
            done: from > last,
        }
    }

    fn advance(&mut self) -> Result<Option<Record>> {
        loop {
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
                    let data = cursor.payload().to_vec();
                    return Ok(Some(Record::new(header.lsn, data, header.flags)));
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
