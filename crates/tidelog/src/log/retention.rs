//! The retention floor: a persisted hold that keeps checkpoints (and resets) from removing any
//! segment holding a record at or above it. It is what an archiver sets to the first LSN it has
//! not uploaded yet, so a local checkpoint never drops what exists nowhere else.
//!
//! The floor lives in the `RETENTION` file (the checkpoint file's layout under its own magic,
//! `docs/format.md` section 3), written crash-safely like the checkpoint; recovery honours it
//! too. Held segments below the checkpoint stay in the log (counted by
//! [`Log::used_bytes`]) but are not readable through it: reads below the checkpoint are refused.

use std::path::Path;

use super::{Inner, Log, lock, lock_any};
use crate::error::{Error, IoContext, Result};
use crate::format::{CheckpointFile, RETENTION_FILE, RETENTION_MAGIC, TEMP_SUFFIX};
use crate::io::{OpenMode, Storage};
use crate::segment::Segment;
use crate::types::Lsn;

impl Log {
    /// Sets (or with `None` lifts) the retention floor: from now on no checkpoint or reset
    /// removes a segment that holds a record at or above `floor`. The floor is persisted
    /// crash-safely before the call returns; raising or lifting it lets go at once of the
    /// segments only it held.
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::Io`] if the floor file cannot be written (the log stays
    /// usable and keeps the floor it had), [`Error::Poisoned`], [`Error::Closed`].
    ///
    /// # Blocking
    /// Writes and fsyncs a small file, syncs the directory, may remove files.
    pub fn set_retention_floor(&self, floor: Option<Lsn>) -> Result<()> {
        let inner = &*self.inner;
        inner.writable()?;
        let _maintenance = lock(&inner.maintenance)?;
        write(&*inner.storage, &inner.dir, inner.log_id, floor)?;
        let released = {
            let mut st = inner.state()?;
            st.retention = floor;
            let (checkpoint, n) = (st.checkpoint, st.segments.len());
            let k = st.segments[..n - 1]
                .iter()
                .take_while(|s| releasable(s, checkpoint, floor))
                .count();
            st.segments.drain(..k).collect::<Vec<Segment>>()
        };
        if !released.is_empty() {
            inner.room_freed();
        }
        inner.retire(released)
    }

    /// The retention floor, if one is set ([`Log::set_retention_floor`]).
    pub fn retention_floor(&self) -> Option<Lsn> {
        lock_any(&self.inner.state).retention
    }
}

/// Whether a checkpoint at `checkpoint` may drop `segment` under the retention floor `floor`.
pub(crate) fn releasable(segment: &Segment, checkpoint: Lsn, floor: Option<Lsn>) -> bool {
    segment.last_lsn < checkpoint && floor.is_none_or(|f| segment.last_lsn < f)
}

/// Reads the persisted retention floor of the log in `dir`, if one is set.
pub(crate) fn read(storage: &dyn Storage, dir: &Path, log_id: u128) -> Result<Option<Lsn>> {
    let path = dir.join(RETENTION_FILE);
    let file = match storage.open(&path, OpenMode::ReadOnly) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at("open", &path),
    };
    let len = file.len().at("stat", &path)?;
    let mut bytes = vec![0; usize::try_from(len.min(4096)).unwrap_or(4096)];
    let n = file.read_full_at(&mut bytes, 0).at("read", &path)?;
    let corrupt = |kind| Error::Corrupt {
        path: path.clone(),
        offset: 0,
        kind,
    };
    let decoded = CheckpointFile::decode_as(&bytes[..n], RETENTION_MAGIC).map_err(corrupt)?;
    if decoded.log_id != log_id {
        return Err(corrupt(crate::CorruptionKind::ForeignLog {
            found: decoded.log_id,
            expected: log_id,
        }));
    }
    Ok((decoded.lsn > Lsn::ZERO).then_some(decoded.lsn))
}

/// Persists the retention floor crash-safely: temporary file, fsync, rename, directory fsync.
fn write(storage: &dyn Storage, dir: &Path, log_id: u128, floor: Option<Lsn>) -> Result<()> {
    let path = dir.join(RETENTION_FILE);
    let tmp = dir.join(format!("{RETENTION_FILE}{TEMP_SUFFIX}"));
    let record = CheckpointFile::at(log_id, floor.unwrap_or(Lsn::ZERO));
    let file = storage.open(&tmp, OpenMode::Truncate).at("create", &tmp)?;
    file.write_all_at(&record.encode_as(RETENTION_MAGIC), 0)
        .at("write", &tmp)?;
    file.sync_data().at("sync", &tmp)?;
    storage.rename(&tmp, &path).at("rename into place", &tmp)?;
    storage.sync_dir(dir).at("sync directory", dir)
}

impl Inner {
    /// Whether the retention floor holds any record of the active segment.
    pub(crate) fn holds_active(&self, st: &super::State) -> bool {
        st.retention.is_some_and(|f| f <= st.active().last_lsn)
    }
}
