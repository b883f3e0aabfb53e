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
}

impl Record {
    pub(crate) fn new(lsn: Lsn, data: Vec<u8>) -> Self {
        Self { lsn, data }
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
                    return Ok(Some(Record::new(header.lsn, cursor.payload().to_vec())));
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
