//! Options of a log, validated when it is opened.

use crate::error::{Error, Result};
use crate::format::{MAX_RECORD_BYTES_LIMIT, SEGMENT_HEADER_LEN};

/// Default target size of a segment file: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Default maximum size of one record: 16 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 16 << 20;
/// Default size of the write buffer: 256 KiB.
pub const DEFAULT_WRITE_BUFFER_BYTES: usize = 256 << 10;
/// Smallest allowed segment size: 4 KiB.
pub const MIN_SEGMENT_BYTES: u64 = 4 << 10;

/// How long an append waits before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Return once the record is handed to the log; it becomes durable with the next sync.
    #[default]
    Buffered,
    /// Return only once the record (and every record before it) is on stable storage.
    Synced,
}

/// When the log syncs on its own, beyond explicit [`Log::sync`](crate::Log::sync) calls and
/// [`Durability::Synced`] appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Only when asked: `sync()`, `wait_durable()`, or a `Synced` append.
    #[default]
    Manual,
    /// Every append is treated as [`Durability::Synced`].
    EveryCommit,
    /// A background thread syncs this often (when there is anything to sync).
    Interval(std::time::Duration),
    /// A background thread syncs once this many bytes were appended since the last sync.
    Bytes(u64),
}

/// What an append does when a bounded log ([`Options::capacity_bytes`]) is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Fail at once with [`Error::LogFull`].
    #[default]
    Fail,
    /// Wait up to this long for a checkpoint (or rollback, or reset) to free space, then fail
    /// with [`Error::LogFull`].
    Wait(std::time::Duration),
}

/// What recovery does with damage it finds when a log is opened (the set RocksDB proved).
///
/// Whatever a mode discards is moved into the `quarantine/` folder of the log directory, never
/// deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Any damage, even an incomplete last write, is an error.
    Strict,
    /// Cut an incomplete tail of the last segment (the normal result of a crash); any other
    /// damage — intact records after damage, a missing middle segment, an LSN jump — is an error.
    #[default]
    TolerateTornTail,
    /// Stop at the first damage anywhere: the log ends at the last intact record before it, and
    /// everything after is quarantined.
    PointInTime,
    /// Keep every intact record and skip the damaged ones (reads of their LSNs fail with
    /// [`Error::RecordLost`]); the damage is reported.
    SkipCorrupt,
}

impl RecoveryMode {
    /// Every mode, from the strictest to the most tolerant.
    pub const ALL: [RecoveryMode; 4] = [
        RecoveryMode::Strict,
        RecoveryMode::TolerateTornTail,
        RecoveryMode::PointInTime,
        RecoveryMode::SkipCorrupt,
    ];

    /// The mode's name as [`Display`](std::fmt::Display) prints it and
    /// [`FromStr`](std::str::FromStr) reads it (`"tolerate-torn-tail"`).
    pub fn name(self) -> &'static str {
        match self {
            RecoveryMode::Strict => "strict",
            RecoveryMode::TolerateTornTail => "tolerate-torn-tail",
            RecoveryMode::PointInTime => "point-in-time",
            RecoveryMode::SkipCorrupt => "skip-corrupt",
        }
    }
}

impl std::fmt::Display for RecoveryMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no [`RecoveryMode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown recovery mode {given:?} (expected strict, tolerate-torn-tail, point-in-time or skip-corrupt)"
)]
pub struct ParseRecoveryModeError {
    given: String,
}

impl std::str::FromStr for RecoveryMode {
    type Err = ParseRecoveryModeError;

    /// Reads a mode by its [`name`](RecoveryMode::name); case and `_` for `-` do not matter.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        RecoveryMode::ALL
            .into_iter()
            .find(|m| m.name() == wanted)
            .ok_or_else(|| ParseRecoveryModeError {
                given: s.to_owned(),
            })
    }
}

/// The options of a log. Build with [`Log::builder`](crate::Log::builder); every value is
/// validated at open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Target size of a segment file in bytes; the active segment is rolled before an append that
    /// would take it past this size. A batch never spans segments, so a segment holding one batch
    /// larger than this is larger; and what follows the last batch, a sync marker and the seal
    /// that ends the segment (96 bytes in all, format.md 2.4 and 2.5), may go past it too.
    /// Default [`DEFAULT_SEGMENT_BYTES`]; at least
    /// [`MIN_SEGMENT_BYTES`].
    pub segment_bytes: u64,
    /// Largest record accepted, checked before anything is allocated or written. Default
    /// [`DEFAULT_MAX_RECORD_BYTES`]; at most 1 GiB.
    pub max_record_bytes: u32,
    /// What recovery does with damage. Default [`RecoveryMode::TolerateTornTail`].
    pub recovery_mode: RecoveryMode,
    /// When the log syncs on its own. Default [`SyncPolicy::Manual`].
    pub sync_policy: SyncPolicy,
    /// Appends are gathered in a buffer of this size before they are written to the file (a
    /// sync writes it out at once). 0 writes every append through. Default
    /// [`DEFAULT_WRITE_BUFFER_BYTES`].
    pub write_buffer_bytes: usize,
    /// Create the log if the directory holds none. Default `true`.
    pub create_if_missing: bool,
    /// Allocate each new segment file to [`Options::segment_bytes`] when it is created
    /// (`fallocate` where the file system has it), so appends never grow the file and their
    /// fsyncs have less metadata to write; a sealed segment is trimmed to its data. Default
    /// `true`.
    pub preallocate: bool,
    /// Keep up to two segment files that a checkpoint frees and reuse them for new segments
    /// instead of creating files anew (their blocks are already allocated and written, so
    /// writes into them need no allocation). A reused file's old frames stay behind the new
    /// data; they are salted with the old file's identity, so they can never be read back as
    /// records. Default `false`.
    pub recycle_segments: bool,
    /// Bound the log to this many bytes (segment headers and frames, counted over the segments
    /// the log holds; files kept only for a reader still reading them are not counted). An
    /// append that does not fit waits or fails as [`Options::when_full`] says, never panics.
    /// At least one segment ([`Options::segment_bytes`]). Default: unbounded.
    pub capacity_bytes: Option<u64>,
    /// What an append into a full bounded log does. Default [`WhenFull::Fail`].
    pub when_full: WhenFull,
    /// Open without changing anything, for inspection: recovery runs as a dry run (its report
    /// says what it would do), no lock is taken (another process may be writing the log), no
    /// background thread starts, and every call that would write fails with
    /// [`Error::ReadOnly`]. Default `false`.
    pub read_only: bool,
    /// Trust a segment's seal at open: a segment of format version 2 that is not the last one
    /// and ends with an intact seal (format.md, 2.5) is taken as the seal describes it, without
    /// reading its frames, so an open reads two small pieces of each sealed segment and scans
    /// only the last one; its cost no longer grows with the log. What such an open does not
    /// see is damage inside a sealed segment: it is found when the segment is read (every
    /// frame's checksum is checked as it is read; a read by LSN in the middle of such a segment
    /// first reads the whole segment, checking it, to index it) and reported then as
    /// [`Error::Corrupt`](crate::Error::Corrupt), never skipped or cut, whatever the recovery
    /// mode; `tidelog verify` checks every frame. A segment whose seal is missing or damaged
    /// is read in full, as without this option. Default `false`: an open checks every frame.
    pub trust_seals: bool,
    /// Permission bits of the directories the log creates (the log directory and missing
    /// parents, `quarantine/`), on Unix, less the process's umask. Must give the owner `rwx` and
    /// nobody else write. Default [`DEFAULT_DIR_MODE`] (`0o700`): a log holds its writer's data.
    pub dir_mode: u32,
    /// Permission bits of the files the log creates (segments, temporary files, `CHECKPOINT`,
    /// `RETENTION`, quarantine files), on Unix, less the process's umask. Must give the owner
    /// `rw` and nobody else write. Default [`DEFAULT_FILE_MODE`] (`0o600`). Opening an existing
    /// log never changes the modes its files have.
    pub file_mode: u32,
}

/// Default [`Options::dir_mode`]: the owner only.
pub const DEFAULT_DIR_MODE: u32 = 0o700;

/// Default [`Options::file_mode`]: the owner only.
pub const DEFAULT_FILE_MODE: u32 = 0o600;

impl Default for Options {
    fn default() -> Self {
        Self {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            recovery_mode: RecoveryMode::default(),
            sync_policy: SyncPolicy::default(),
            write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
            create_if_missing: true,
            preallocate: true,
            recycle_segments: false,
            trust_seals: false,
            capacity_bytes: None,
            when_full: WhenFull::Fail,
            read_only: false,
            dir_mode: DEFAULT_DIR_MODE,
            file_mode: DEFAULT_FILE_MODE,
        }
    }
}

impl Options {
    /// Checks every value; called by `open`.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] naming the first value out of range.
    pub fn validate(&self) -> Result<()> {
        let invalid = |name, reason: String| Err(Error::InvalidOptions { name, reason });
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return invalid(
                "segment_bytes",
                format!(
                    "{} is below the minimum of {MIN_SEGMENT_BYTES}",
                    self.segment_bytes
                ),
            );
        }
        if self.segment_bytes > 1 << 40 {
            return invalid(
                "segment_bytes",
                format!("{} is above the maximum of 1 TiB", self.segment_bytes),
            );
        }
        if self.max_record_bytes == 0 || self.max_record_bytes > MAX_RECORD_BYTES_LIMIT {
            return invalid(
                "max_record_bytes",
                format!(
                    "{} is outside 1..={MAX_RECORD_BYTES_LIMIT}",
                    self.max_record_bytes
                ),
            );
        }
        if self.write_buffer_bytes > 1 << 30 {
            return invalid(
                "write_buffer_bytes",
                format!("{} is above the maximum of 1 GiB", self.write_buffer_bytes),
            );
        }
        if let Some(capacity) = self.capacity_bytes
            && capacity < self.segment_bytes
        {
            return invalid(
                "capacity_bytes",
                format!(
                    "{capacity} is smaller than one segment ({} bytes)",
                    self.segment_bytes
                ),
            );
        }
        match self.sync_policy {
            SyncPolicy::Interval(every) if every.is_zero() => {
                return invalid("sync_policy", "Interval needs a non-zero period".to_owned());
            }
            SyncPolicy::Bytes(0) => {
                return invalid(
                    "sync_policy",
                    "Bytes needs a non-zero byte count".to_owned(),
                );
            }
            _ => {}
        }
        for (name, mode, owner) in [
            ("dir_mode", self.dir_mode, 0o700),
            ("file_mode", self.file_mode, 0o600),
        ] {
            if mode & !0o777 != 0 {
                return invalid(
                    name,
                    format!("{mode:#o} has bits beyond the permissions (0o777)"),
                );
            }
            if mode & owner != owner {
                return invalid(
                    name,
                    format!("{mode:#o} does not give the owner {owner:#o}, which the log needs"),
                );
            }
            if mode & 0o022 != 0 {
                return invalid(
                    name,
                    format!("{mode:#o} lets others than the owner write the log"),
                );
            }
        }
        debug_assert!(MIN_SEGMENT_BYTES > SEGMENT_HEADER_LEN as u64);
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn modes_must_give_the_owner_access_and_nobody_else_write() {
        let with = |dir_mode, file_mode| Options {
            dir_mode,
            file_mode,
            ..Options::default()
        };
        assert!(with(0o700, 0o600).validate().is_ok());
        assert!(with(0o750, 0o640).validate().is_ok());
        for (dir, file, name) in [
            (0o1700, 0o600, "dir_mode"),
            (0o500, 0o600, "dir_mode"),
            (0o770, 0o600, "dir_mode"),
            (0o700, 0o400, "file_mode"),
            (0o700, 0o4600, "file_mode"),
            (0o700, 0o602, "file_mode"),
        ] {
            assert!(
                matches!(with(dir, file).validate(), Err(Error::InvalidOptions { name: n, .. }) if n == name),
                "{dir:#o} {file:#o}"
            );
        }
    }

    #[test]
    fn recovery_modes_read_back_what_they_print() {
        for mode in RecoveryMode::ALL {
            assert_eq!(mode.to_string().parse::<RecoveryMode>(), Ok(mode));
        }
        assert_eq!("Point_In_Time".parse(), Ok(RecoveryMode::PointInTime));
        let err = "lenient".parse::<RecoveryMode>();
        assert!(err.is_err_and(|e| e.to_string().contains("\"lenient\"")));
    }
}
