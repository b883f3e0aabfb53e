//! [`FrameCursor`]: reading a segment's frames one after another through a buffer, checking
//! each (header fields, length, salted checksum), and saying what it found at each position
//! ([`Step`]): a frame, the end of the data, zeros, or damage. Recovery's scan, readers,
//! copies and imports all read frames through it.

use std::sync::Arc;

use super::{FrameHeader, Layout, MAX_FRAME_HEADER_LEN, MAX_RECORD_BYTES_LIMIT};
use crate::error::CorruptionKind;
use crate::io::StorageFile;

/// What a [`FrameCursor`] found at its position.
#[derive(Debug)]
pub(crate) enum Step {
    /// An intact frame at `offset`; its payload is `cursor.payload()`.
    Frame { offset: u64, header: FrameHeader },
    /// Nothing more: the end of the file, or zeros up to the end of it (`zeros_at` is where the
    /// zeros begin, if any).
    End,
    /// Zeros where a frame header should be, with non-zero bytes after them.
    Zeros { offset: u64 },
    /// Bytes that are not a valid frame.
    Damage { offset: u64, kind: CorruptionKind },
}

const READ_CHUNK: usize = 256 << 10;

/// Reads frames one after another from a segment file, through a buffer.
pub(crate) struct FrameCursor {
    layout: Layout,
    seed: u32,
    file_len: u64,
    /// Shared with the records read from it, so they need no copy; replaced, not overwritten,
    /// while a record still holds it.
    buf: Arc<Vec<u8>>,
    buf_start: u64,
    pos: u64,
    payload: (usize, usize),
    chunk: usize,
    /// Frames whose payload is longer read as damage (none are read whole).
    max_len: u32,
}

impl std::fmt::Debug for FrameCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameCursor")
            .field("pos", &self.pos)
            .field("len", &self.file_len)
            .finish()
    }
}

impl FrameCursor {
    /// A cursor over a file of `file_len` bytes (frames of `layout` checksummed with `seed`),
    /// at `pos`. Every call that reads takes the file.
    pub(crate) fn new(layout: Layout, seed: u32, file_len: u64, pos: u64) -> Self {
        Self {
            layout,
            seed,
            file_len,
            buf: Arc::new(Vec::new()),
            buf_start: pos,
            pos,
            payload: (0, 0),
            chunk: READ_CHUNK,
            max_len: MAX_RECORD_BYTES_LIMIT,
        }
    }

    /// Takes a frame with a payload longer than `max_len` for damage, without reading it (so
    /// no read is longer than `max_len`, a frame header and the chunk).
    pub(crate) fn with_max_len(mut self, max_len: u32) -> Self {
        self.max_len = max_len;
        self
    }

    /// Uses reads of `chunk` bytes (random reads want less than scans).
    pub(crate) fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(MAX_FRAME_HEADER_LEN);
        self
    }

    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    pub(crate) fn seek(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// The payload of the frame the last `step` returned.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.buf[self.payload.0..self.payload.1]
    }

    /// The whole frame (header and payload) the last `step` returned, as its bytes.
    pub(crate) fn frame(&self) -> &[u8] {
        let header_len = self.layout.frame_header_len();
        &self.buf[self.payload.0.saturating_sub(header_len)..self.payload.1]
    }

    /// The same payload, sharing the read buffer instead of copying it.
    pub(crate) fn shared_payload(&self) -> (Arc<Vec<u8>>, std::ops::Range<usize>) {
        (Arc::clone(&self.buf), self.payload.0..self.payload.1)
    }

    /// Makes `buf` hold `[pos, pos + n)`, or as much of it as the file has; returns the bytes
    /// from `pos` to the end of the buffer (at least `n` of them, unless the file ends first).
    fn fill(&mut self, file: &dyn StorageFile, n: usize) -> std::io::Result<&[u8]> {
        let have_from = self
            .pos
            .checked_sub(self.buf_start)
            .and_then(|d| usize::try_from(d).ok());
        if let Some(from) = have_from
            && from <= self.buf.len()
            && self.buf.len() - from >= n
        {
            return Ok(&self.buf[from..]);
        }
        let left = usize::try_from(self.file_len.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let want = n.max(self.chunk).min(left);
        if Arc::get_mut(&mut self.buf).is_none() {
            // Records still share the old buffer: leave it to them.
            self.buf = Arc::new(Vec::with_capacity(want));
        }
        let buf = Arc::make_mut(&mut self.buf);
        buf.resize(want, 0);
        let got = file.read_full_at(buf, self.pos)?;
        buf.truncate(got);
        self.buf_start = self.pos;
        Ok(&self.buf[..])
    }

    /// Reads the next frame and moves past it (on `Frame` only).
    pub(crate) fn step(&mut self, file: &dyn StorageFile) -> std::io::Result<Step> {
        let offset = self.pos;
        let left = self.file_len.saturating_sub(offset);
        if left == 0 {
            return Ok(Step::End);
        }
        let (layout, seed, max_len) = (self.layout, self.seed, self.max_len);
        let header_len = layout.frame_header_len();
        let (parsed, held, zeros, short) = {
            let held = self.fill(file, header_len)?;
            let head = &held[..header_len.min(held.len())];
            let parsed = FrameHeader::parse(head, layout).filter(|h| h.len <= max_len);
            // A header of zeros never parses (LSN 0): zeros are looked for only then.
            let zeros = parsed.is_none() && head.iter().all(|&b| b == 0);
            (parsed, held.len(), zeros, head.len() < header_len)
        };
        let Some(header) = parsed else {
            if zeros {
                return if self.rest_is_zero(file, offset)? {
                    Ok(Step::End)
                } else {
                    Ok(Step::Zeros { offset })
                };
            }
            let kind = if short {
                CorruptionKind::TruncatedFrame {
                    needed: header_len as u64,
                    available: left,
                }
            } else {
                CorruptionKind::BadFrameHeader
            };
            return Ok(Step::Damage { offset, kind });
        };
        if header.frame_len() > left {
            return Ok(Step::Damage {
                offset,
                kind: CorruptionKind::TruncatedFrame {
                    needed: header.frame_len(),
                    available: left,
                },
            });
        }
        let frame_len = usize::try_from(header.frame_len()).unwrap_or(usize::MAX);
        // The buffer holds the whole frame already (the usual case), or is filled once more.
        let computed = if held >= frame_len {
            let from = usize::try_from(offset - self.buf_start).unwrap_or(0);
            FrameHeader::checksum(seed, &self.buf[from..from + frame_len])
        } else {
            let more = self.fill(file, frame_len)?;
            FrameHeader::checksum(seed, &more[..frame_len.min(more.len())])
        };
        if computed != header.crc {
            return Ok(Step::Damage {
                offset,
                kind: CorruptionKind::FrameChecksum {
                    stored: header.crc,
                    computed,
                },
            });
        }
        let start = usize::try_from(offset - self.buf_start).unwrap_or(0) + header_len;
        self.payload = (start, start + header.len as usize);
        self.pos = offset + header.frame_len();
        Ok(Step::Frame { offset, header })
    }

    /// Whether every byte from `from` to the end of the file is zero.
    fn rest_is_zero(&self, file: &dyn StorageFile, from: u64) -> std::io::Result<bool> {
        let mut at = from;
        let mut chunk = vec![0u8; self.chunk];
        while at < self.file_len {
            let n = usize::try_from(self.file_len - at)
                .unwrap_or(usize::MAX)
                .min(self.chunk);
            let got = file.read_full_at(&mut chunk[..n], at)?;
            if got == 0 {
                break;
            }
            if chunk[..got].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += got as u64;
        }
        Ok(true)
    }
}
