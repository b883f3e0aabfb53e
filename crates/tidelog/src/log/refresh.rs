//! Following another process's log: [`Log::refresh`] brings a read-only log up to date with what
//! the writer appended since the open, reading only the new bytes.
//!
//! Invariants: a refresh reads forward from where the log's view of the active segment ends and
//! takes whole batches only; it stops, without calling anything damage, at the first bytes that
//! are not (yet) a complete intact batch, since the writer may be writing them. It moves to a
//! later segment only if the directory listed one before the active segment was read to its
//! end: a roll syncs a segment before it creates the next, so the listing proves the active one
//! complete. What it cannot follow (the writer rolled back or reset the log, or replaced the
//! active file) is [`Error::LogChanged`]: open the log again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Inner, Log, State};
use crate::error::{Error, IoContext, Result};
use crate::format::{CHECKPOINT_FILE, FrameHeader, Layout, parse_segment_name};
use crate::io::{OpenMode, StorageFile};
use crate::segment::{Segment, SegmentFile, read_header};
use crate::types::Lsn;

/// Bytes read at a time.
const CHUNK: usize = 64 << 10;

impl Log {
    /// For a log opened [read-only](crate::LogBuilder::read_only) while another process writes
    /// it: picks up the records that process appended since the open or the last refresh, and
    /// returns the new last LSN. It reads only what was appended (whole batches, as far as the
    /// writer has written them), never the log from the start, so a reader polling it costs
    /// what the writer writes. A log opened for writing sees its own appends: for it this only
    /// returns [`Log::last_lsn`].
    ///
    /// Records a refresh picks up are readable at once (the writer may not have synced them
    /// yet: a crash of the writer can still take them away).
    ///
    /// # Errors
    /// [`Error::LogChanged`] if the writer rolled back or reset the log, or replaced its
    /// active segment, in a way only a new open can follow; [`Error::Io`] for a failing
    /// storage; [`Error::Closed`].
    pub fn refresh(&self) -> Result<Lsn> {
        let inner = &*self.inner;
        if !inner.options.read_only {
            return Ok(self.last_lsn());
        }
        let mut st = inner.state()?;
        let before = st.last_lsn();
        // Listed first: a later segment in this listing proves the active one complete.
        let active_first = st.active().first_lsn();
        let mut later: Vec<(Lsn, PathBuf)> = inner
            .storage
            .list(&inner.dir)
            .at("list", &inner.dir)?
            .into_iter()
            .filter_map(|name| parse_segment_name(&name).map(|lsn| (lsn, inner.dir.join(name))))
            .filter(|(lsn, _)| *lsn > active_first)
            .collect();
        later.sort();
        inner.check_active_file(&st)?;
        let complete = inner.read_on(&mut st)?;
        for (first, path) in later {
            if !complete || first != st.next_lsn {
                return Err(Error::LogChanged {
                    path,
                    reason: "a segment does not start where the log's records end",
                });
            }
            inner.open_next(&mut st, &path)?;
            if !inner.read_on(&mut st)? {
                break;
            }
        }
        if let Some(checkpoint) = inner.read_checkpoint()? {
            st.checkpoint = st.checkpoint.max(checkpoint.lsn);
            *super::lock_any(&inner.metadata) = checkpoint.metadata;
        }
        let last = st.last_lsn();
        if last > before {
            let generation = inner.commit.generation();
            inner.commit.complete(before.next(), last)?;
            inner.commit.advance_durable(last, generation)?;
        }
        Ok(last)
    }
}

impl Inner {
    /// Fails if the active segment's file was replaced (a rollback rewrote it) or cut.
    fn check_active_file(&self, st: &State) -> Result<()> {
        let active = st.active();
        let path = &active.file.path;
        let changed = |reason| Error::LogChanged {
            path: path.clone(),
            reason,
        };
        let fresh = match self.storage.open(path, OpenMode::ReadOnly) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(changed("the active segment was removed"));
            }
            Err(e) => return Err(e).at("open", path),
        };
        if read_header(&*fresh, path)?.ok() != Some(active.file.header) {
            return Err(changed("the active segment was replaced"));
        }
        if fresh.len().at("stat", path)? < active.end {
            return Err(changed("the active segment was cut"));
        }
        // A rollback that cut the file and appends that then grew it past where this view ends
        // leave other frames where the last one read was.
        if let Some((offset, crc)) = active.last_frame {
            let mut stored = [0u8; 4];
            let n = fresh.read_full_at(&mut stored, offset).at("read", path)?;
            if n < 4 || u32::from_le_bytes(stored) != crc {
                return Err(changed("the active segment was rolled back and rewritten"));
            }
        }
        Ok(())
    }

    /// Opens the segment at `path` (which must start at the next LSN) as the new active one.
    fn open_next(&self, st: &mut State, path: &std::path::Path) -> Result<()> {
        let file = self
            .storage
            .open(path, OpenMode::ReadOnly)
            .at("open", path)?;
        let header = read_header(&*file, path)?.map_err(|kind| Error::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            kind,
        })?;
        if header.log_id != self.log_id || header.first_lsn != st.next_lsn {
            return Err(Error::LogChanged {
                path: path.to_path_buf(),
                reason: "a segment of another log, or not where the log's records end",
            });
        }
        let segment = Segment::new(SegmentFile::opened(path.to_path_buf(), header, file));
        st.buf_offset = segment.end;
        st.segments.push(segment);
        st.buf_first = st.next_lsn;
        Ok(())
    }

    /// Reads the active segment on from where the log's view of it ends, taking every whole
    /// intact batch. Returns whether it read to the end of the file (nothing incomplete left).
    fn read_on(&self, st: &mut State) -> Result<bool> {
        let file = Arc::clone(&st.active().file);
        let io = file.io()?;
        let len = io.len().at("stat", &file.path)?;
        let start = st.active().end;
        let mut reader = Reader {
            io,
            path: &file.path,
            buf: Vec::new(),
            buf_at: start,
            len,
        };
        // Whole batches taken: where each starts (LSN, offset) and where the last one ends.
        let mut batches: Vec<(Lsn, u64)> = Vec::new();
        let (mut end, mut next) = (start, st.next_lsn);
        // The batch being read: its first LSN and offset, and where its frames reach.
        let mut open: Option<(Lsn, u64)> = None;
        // The last whole frame taken (a batch's last, or a marker): its offset and checksum.
        let mut last_frame = None;
        let (mut at, mut lsn) = (start, next);
        let complete = loop {
            if at >= len {
                break open.is_none();
            }
            let Some(frame) = reader.frame_at(at, file.layout(), file.seed)? else {
                // Zeros, a frame still being written, or bytes that are not a frame.
                break false;
            };
            if !frame.is_record() {
                // A marker, between batches, carrying the next record's LSN.
                if frame.lsn != lsn || open.is_some() {
                    break false;
                }
                last_frame = Some((at, frame.crc));
                at += frame.frame_len();
                end = at;
                continue;
            }
            if frame.lsn != lsn || frame.batch_start() != open.is_none() {
                break false;
            }
            let (first, first_at) = *open.get_or_insert((lsn, at));
            at += frame.frame_len();
            lsn = lsn.next();
            if frame.batch_end() {
                batches.push((first, first_at));
                (end, next) = (at, lsn);
                open = None;
                last_frame = Some((at - frame.frame_len(), frame.crc));
            }
        };
        let seg = st.active_mut();
        for &(lsn, offset) in &batches {
            seg.note_batch(lsn, offset);
        }
        // Markers alone move the end too.
        seg.end = end;
        if last_frame.is_some() {
            seg.last_frame = last_frame;
        }
        st.buf_offset = end;
        if let Some(&(first, _)) = batches.first() {
            st.active_mut().last_lsn = next.prev();
            debug_assert_eq!(first, st.next_lsn);
            st.next_lsn = next;
            st.buf_first = next;
        }
        Ok(complete && at == end)
    }

    /// The checkpoint file the writer last persisted, if it is there and decodes.
    fn read_checkpoint(&self) -> Result<Option<crate::format::CheckpointFile>> {
        let path = self.dir.join(CHECKPOINT_FILE);
        match crate::recovery::read_checkpoint(&*self.storage, &path) {
            Ok(c) => Ok(Some(c)),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Reads frames of one segment file forward, through a buffer.
struct Reader<'a> {
    io: &'a dyn StorageFile,
    path: &'a Path,
    /// The file's bytes from `buf_at`.
    buf: Vec<u8>,
    buf_at: u64,
    len: u64,
}

impl Reader<'_> {
    /// Makes sure the buffer holds `want` bytes from `at`; `false` if the file has fewer.
    fn fill(&mut self, at: u64, want: u64) -> Result<bool> {
        let held = (self.buf_at + self.buf.len() as u64).saturating_sub(at);
        if at >= self.buf_at && held >= want {
            return Ok(true);
        }
        let left = self.len.saturating_sub(at);
        if left < want {
            return Ok(false);
        }
        let n = usize::try_from(want.max(CHUNK as u64).min(left)).unwrap_or(CHUNK);
        self.buf.resize(n, 0);
        let got = self
            .io
            .read_full_at(&mut self.buf, at)
            .at("read", self.path)?;
        self.buf.truncate(got);
        self.buf_at = at;
        Ok(got as u64 >= want)
    }

    /// The intact frame at `at`, or `None` if there is none there (yet).
    fn frame_at(&mut self, at: u64, layout: Layout, seed: u32) -> Result<Option<FrameHeader>> {
        if !self.fill(at, layout.frame_header_len() as u64)? {
            return Ok(None);
        }
        let start = usize::try_from(at - self.buf_at).unwrap_or(usize::MAX);
        let header = self
            .buf
            .get(start..)
            .and_then(|b| FrameHeader::parse(b, layout));
        let Some(header) = header else {
            return Ok(None);
        };
        if !self.fill(at, header.frame_len())? {
            return Ok(None);
        }
        let start = usize::try_from(at - self.buf_at).unwrap_or(usize::MAX);
        let end =
            usize::try_from(header.frame_len()).map_or(usize::MAX, |n| start.saturating_add(n));
        Ok(match self.buf.get(start..end) {
            Some(frame) if FrameHeader::checksum(seed, frame) == header.crc => Some(header),
            _ => None,
        })
    }
}
