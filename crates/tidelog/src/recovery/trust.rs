//! Sealed segments taken as their seal describes them ([`Options::trust_seals`]): an open that
//! reads the seal at the end of a segment instead of its frames.
//!
//! A seal is trusted only if it is the segment's last frame, intact (its checksum holds under
//! the segment's seed), names the segment's first LSN, and carries as its own LSN the one
//! after the last record it names; anything else and the segment is scanned as usual. The
//! segment's frames are then read only when a reader reads them, each checked as it is read.
//!
//! [`Options::trust_seals`]: crate::Options::trust_seals

use std::sync::Arc;

use crate::error::{IoContext, Result};
use crate::format::{FrameHeader, Layout, SEAL_FRAME_LEN, SEAL_LEN, decode_seal};
use crate::segment::{Segment, SegmentFile};
use crate::types::Lsn;

/// The segment as its seal describes it, or the file back if its seal cannot be trusted.
pub(super) fn by_seal(
    file: SegmentFile,
    len: u64,
) -> Result<std::result::Result<Segment, SegmentFile>> {
    let Some(seal_at) = len
        .checked_sub(SEAL_FRAME_LEN as u64)
        .filter(|&at| file.layout() == Layout::V2 && at >= file.data_start())
    else {
        return Ok(Err(file));
    };
    let mut frame = [0u8; SEAL_FRAME_LEN];
    let io = file.io()?;
    io.read_exact_at(&mut frame, seal_at)
        .at("read", &file.path)?;
    let Some(header) = FrameHeader::parse(&frame, Layout::V2)
        .filter(|h| h.is_seal() && FrameHeader::checksum(file.seed, &frame) == h.crc)
    else {
        return Ok(Err(file));
    };
    let Some((first, last, first_ms, last_ms)) = decode_seal(&frame[SEAL_FRAME_LEN - SEAL_LEN..])
    else {
        return Ok(Err(file));
    };
    if first != file.first_lsn() || last < first || header.lsn != last.next() {
        return Ok(Err(file));
    }
    let crc = header.crc;
    let mut segment = Segment::new(file);
    segment.last_lsn = last;
    segment.end = len;
    segment.min_ms = first_ms;
    segment.max_ms = last_ms;
    segment.sealed = true;
    segment.last_frame = Some((seal_at, crc));
    segment.unindexed = Some(Arc::default());
    Ok(Ok(segment))
}

/// The records a trusted segment holds, as recovery counts them.
pub(super) fn records(segment: &Segment) -> (Lsn, Lsn, u64) {
    let (first, last) = (segment.first_lsn(), segment.last_lsn);
    (first, last, last.get() - first.get() + 1)
}
