//! Reading: [`Record`], random reads by LSN and range iterators ([`iter`]), and tails that wait
//! for new records ([`tail`]).
//!
//! Readers see durable records only, hold the segment files they read (a checkpoint never
//! removes a file under them), and check the rollback generation, so a rollback after they
//! started is reported as [`Error::RolledBack`](crate::Error::RolledBack), never read as
//! damage or as the records that later take the same LSNs.

mod iter;
mod tail;

use std::ops::Range;
use std::sync::Arc;

pub use self::iter::Iter;
pub(crate) use self::iter::{Reaper, range_of};
pub use self::tail::Tail;
use crate::format::FrameHeader;
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
    timestamp_ms: Option<u64>,
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
            .field("timestamp_ms", &self.timestamp_ms)
            .finish()
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.lsn == other.lsn
            && self.flags == other.flags
            && self.timestamp_ms == other.timestamp_ms
            && self.data() == other.data()
    }
}

impl Eq for Record {}

impl Record {
    pub(crate) fn new(header: &FrameHeader, data: Vec<u8>) -> Self {
        Self {
            lsn: header.lsn,
            data: Data::Owned(data),
            flags: header.flags,
            timestamp_ms: header.timestamp_ms,
        }
    }

    pub(crate) fn shared(header: &FrameHeader, buf: Arc<Vec<u8>>, range: Range<usize>) -> Self {
        Self {
            lsn: header.lsn,
            data: Data::Shared(buf, range),
            flags: header.flags,
            timestamp_ms: header.timestamp_ms,
        }
    }

    /// When the record's batch was appended: the wall clock of the appending process, in
    /// milliseconds since the Unix epoch (UTC). Every record of a batch has the same time, and
    /// times never go backwards along the log (a batch appended while the clock was behind an
    /// earlier one gets the earlier one's time). `None` for a record written in format
    /// version 1, which kept no time.
    pub fn timestamp_ms(&self) -> Option<u64> {
        self.timestamp_ms
    }

    /// [`Record::timestamp_ms`] as a [`SystemTime`](std::time::SystemTime).
    pub fn timestamp(&self) -> Option<std::time::SystemTime> {
        self.timestamp_ms
            .and_then(|ms| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(ms)))
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
