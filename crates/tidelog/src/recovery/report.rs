//! What recovery reports: every damaged place it found and what it did about it.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::CorruptionKind;
use crate::options::RecoveryMode;
use crate::types::Lsn;

/// What recovery found and did when a log was opened. Every open produces one; see
/// [`Log::recovery_report`](crate::Log::recovery_report).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The mode recovery ran in.
    pub mode: RecoveryMode,
    /// Whether the directory held no log and a new one was created.
    pub created: bool,
    /// Segment files read.
    pub segments_scanned: usize,
    /// Of them, the sealed segments taken as their seal describes them, their frames unread
    /// ([`Options::trust_seals`](crate::Options::trust_seals)).
    pub segments_trusted: usize,
    /// Complete records found in the segments kept (checkpointed ones included).
    pub records_recovered: u64,
    /// Records below this LSN were dropped by a checkpoint.
    pub checkpoint_lsn: Lsn,
    /// The last LSN of the recovered log (`checkpoint_lsn - 1` when it holds no record).
    pub last_lsn: Lsn,
    /// Bytes cut from the ends of segments (torn tails, and what `PointInTime` cut), up to the
    /// last non-zero byte: a preallocated file's trailing zeros are not counted.
    pub torn_bytes_cut: u64,
    /// Intact frames that lay after the damage in the bytes cut: records that were written
    /// whole but could not be kept, since the log must stay a prefix (their bytes are in the
    /// quarantine folder). After a crash these are unsynced writes that reached the disk out of
    /// order; many of them in a log that was synced suggest damage to durable data instead.
    pub intact_frames_cut: u64,
    /// Every damaged place found, with what was done about it.
    pub damage: Vec<Damage>,
    /// LSN ranges lost to damage and skipped (only in [`RecoveryMode::SkipCorrupt`]).
    pub lost: Vec<RangeInclusive<Lsn>>,
    /// Files written to or moved into the `quarantine/` folder.
    pub quarantined: Vec<PathBuf>,
    /// Temporary files of interrupted operations, and free files kept for recycling that hold
    /// no clean earlier life (a damaged or foreign file), removed.
    pub removed_temp_files: Vec<PathBuf>,
    /// Segments wholly below the checkpoint, removed (an interrupted checkpoint).
    pub removed_below_checkpoint: Vec<PathBuf>,
    /// Files that are not tidelog's, left alone.
    pub unknown_files: Vec<PathBuf>,
    /// How long recovery took.
    pub duration: Duration,
    /// Whether this was a dry run (a read-only open): the actions and paths reported are what a
    /// real recovery would do, and nothing was changed.
    pub dry_run: bool,
}

impl RecoveryReport {
    /// Whether recovery found no damage at all.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }
}

/// One damaged place found by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// The damaged file.
    pub path: PathBuf,
    /// Where the damage starts in it.
    pub offset: u64,
    /// What is wrong.
    pub kind: CorruptionKind,
    /// What recovery did about it.
    pub action: DamageAction,
}

/// What recovery did about a [`Damage`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DamageAction {
    /// The file was cut at `at`, removing `bytes` bytes of data (counted up to the last
    /// non-zero byte; a copy of them is in the quarantine folder).
    Cut {
        /// The new length of the file.
        at: u64,
        /// Bytes removed.
        bytes: u64,
    },
    /// The bytes up to `to` were left in place and are skipped by readers.
    Skipped {
        /// End of the skipped range.
        to: u64,
    },
    /// The whole file was moved to the quarantine folder.
    Quarantined,
    /// Nothing was changed (a gap in LSNs that `SkipCorrupt` accepts).
    Accepted,
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.created {
            "new log created"
        } else if self.is_clean() {
            "clean"
        } else {
            "damage found and handled"
        };
        let dry = if self.dry_run {
            ", dry run: nothing changed"
        } else {
            ""
        };
        writeln!(
            f,
            "recovery ({:?}{dry}): {verdict} in {:.1?}",
            self.mode, self.duration
        )?;
        writeln!(
            f,
            "  {} segments scanned, {} records recovered, last LSN {}, checkpoint LSN {}",
            self.segments_scanned, self.records_recovered, self.last_lsn, self.checkpoint_lsn
        )?;
        if self.segments_trusted > 0 {
            writeln!(
                f,
                "  {} sealed segments trusted by their seal, their frames unread",
                self.segments_trusted
            )?;
        }
        if self.torn_bytes_cut > 0 {
            writeln!(f, "  torn tail: {} bytes cut", self.torn_bytes_cut)?;
        }
        if self.intact_frames_cut > 0 {
            writeln!(
                f,
                "  intact frames after the damage, cut with it: {}",
                self.intact_frames_cut
            )?;
        }
        for d in &self.damage {
            let action = match &d.action {
                DamageAction::Cut { at, bytes } => format!("cut {bytes} bytes at offset {at}"),
                DamageAction::Skipped { to } => format!("skipped up to offset {to}"),
                DamageAction::Quarantined => "moved to quarantine".to_owned(),
                DamageAction::Accepted => "accepted".to_owned(),
            };
            writeln!(
                f,
                "  damage: {} at offset {}: {} ({action})",
                d.path.display(),
                d.offset,
                d.kind
            )?;
        }
        for range in &self.lost {
            writeln!(f, "  lost: LSN {}..={}", range.start(), range.end())?;
        }
        for (what, paths) in [
            ("quarantined", &self.quarantined),
            ("removed temporary file", &self.removed_temp_files),
            ("removed below checkpoint", &self.removed_below_checkpoint),
            ("ignored unknown file", &self.unknown_files),
        ] {
            for p in paths {
                writeln!(f, "  {what}: {}", p.display())?;
            }
        }
        Ok(())
    }
}
