//! Repairs that recovery cannot make on its own: rebuilding a damaged or lost checkpoint file
//! from what the segments say.
//!
//! The `CHECKPOINT` file holds the log's id and its checkpoint LSN (`docs/format.md` section
//! 3). A `CHECKPOINT` that does not decode stops recovery in every mode, since without it
//! recovery knows neither which segments belong to the log nor which records were dropped; a
//! lost one makes recovery take LSN 1 as the checkpoint, so a log whose first segment starts
//! later looks as if its first records were missing. Neither is damage to a record, and the
//! segments still say what the file said:
//!
//! - the **log id** is the one most segment headers carry (a segment dropped in from another
//!   log is outvoted; a tie is refused rather than guessed);
//! - the **checkpoint LSN** is the first LSN of the first segment (by name). Every record still
//!   in a segment becomes readable again: records a lost checkpoint had dropped, but whose
//!   segment was not removed yet, come back, and a new checkpoint drops them again.
//!
//! [`CheckpointRebuild::plan`] reads the directory and changes nothing (a dry run);
//! [`CheckpointRebuild::apply`] writes the file crash-safely, the way a checkpoint is always
//! written (temporary file, fsync, rename, directory fsync), after copying the file it replaces,
//! if any, to the `quarantine/` folder. Apply takes the directory's lock, so it refuses a log
//! that a process has open for writing.
//!
//! ```
//! use tidelog::repair::CheckpointRebuild;
//! use tidelog::{Durability, Log, RecoveryMode};
//! # fn main() -> tidelog::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let log = Log::open(dir.path())?;
//! # log.append(b"kept", Durability::Synced)?;
//! # drop(log);
//! # std::fs::write(dir.path().join("CHECKPOINT"), b"damaged").unwrap();
//! // CHECKPOINT is damaged: the log no longer opens in any mode.
//! assert!(Log::builder(dir.path()).recovery_mode(RecoveryMode::SkipCorrupt).open().is_err());
//! let plan = CheckpointRebuild::plan(dir.path())?;
//! assert!(plan.is_needed());
//! plan.apply()?;
//! assert_eq!(Log::open(dir.path())?.read(plan.lsn())?.data(), b"kept");
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::format::{
    CHECKPOINT_FILE, CheckpointFile, QUARANTINE_DIR, RETENTION_FILE, RETENTION_MAGIC,
    SEGMENT_HEADER_LEN, SegmentHeader, parse_segment_name,
};
use crate::io::{OpenMode, StdStorage, Storage, WithModes};
use crate::types::Lsn;

/// What the `CHECKPOINT` file of a log directory holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointState {
    /// There is no `CHECKPOINT` file.
    Missing,
    /// The file does not decode.
    Damaged(CorruptionKind),
    /// The file decodes.
    Intact {
        /// The log id it holds.
        log_id: u128,
        /// The checkpoint LSN it holds.
        lsn: Lsn,
    },
}

/// A rebuild of a log's `CHECKPOINT` file from its segments: what the file holds now, what the
/// segments say, and what would be written.
#[derive(Debug, Clone)]
pub struct CheckpointRebuild {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    current: CheckpointState,
    /// Each log id the segment headers carry, with how many carry it, most first.
    ids: Vec<(u128, usize)>,
    segments: usize,
    unreadable: Vec<(PathBuf, CorruptionKind)>,
    first_lsn: Option<Lsn>,
    retention_log_id: Option<u128>,
}

impl CheckpointRebuild {
    /// Reads the checkpoint file and the segment headers of the log in `dir` on the real file
    /// system, and plans the rebuild. Changes nothing.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory or a file in it cannot be read.
    pub fn plan(dir: impl AsRef<Path>) -> Result<CheckpointRebuild> {
        CheckpointRebuild::plan_with(Arc::new(StdStorage::new()), dir)
    }

    /// As [`CheckpointRebuild::plan`], through `storage`; [`apply`](Self::apply) uses the same.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory or a file in it cannot be read.
    pub fn plan_with(
        storage: Arc<dyn Storage>,
        dir: impl AsRef<Path>,
    ) -> Result<CheckpointRebuild> {
        let dir = dir.as_ref().to_path_buf();
        let mut names = storage.list(&dir).at("list", &dir)?;
        names.sort();
        let checkpoint = dir.join(CHECKPOINT_FILE);
        let current = match read_small(&*storage, &checkpoint)? {
            None => CheckpointState::Missing,
            Some(bytes) => match CheckpointFile::decode(&bytes) {
                Ok(c) => CheckpointState::Intact {
                    log_id: c.log_id,
                    lsn: c.lsn,
                },
                Err(kind) => CheckpointState::Damaged(kind),
            },
        };
        let retention_log_id = read_small(&*storage, &dir.join(RETENTION_FILE))?
            .and_then(|b| CheckpointFile::decode_as(&b, RETENTION_MAGIC).ok())
            .map(|r| r.log_id);
        let mut counts: BTreeMap<u128, (usize, usize)> = BTreeMap::new();
        let mut unreadable = Vec::new();
        let mut segments = 0;
        let mut first_lsn = None;
        for name in &names {
            let Some(lsn) = parse_segment_name(name) else {
                continue;
            };
            segments += 1;
            first_lsn.get_or_insert(lsn);
            let path = dir.join(name);
            let file = storage.open(&path, OpenMode::ReadOnly).at("open", &path)?;
            let mut head = [0u8; SEGMENT_HEADER_LEN];
            let n = file.read_full_at(&mut head, 0).at("read", &path)?;
            match SegmentHeader::decode(&head[..n]) {
                Ok(h) => {
                    let entry = counts.entry(h.log_id).or_insert((0, segments));
                    entry.0 += 1;
                }
                Err(kind) => unreadable.push((path, kind)),
            }
        }
        // Most segments first; among equals, the id met first.
        let mut ids: Vec<(u128, usize, usize)> = counts
            .into_iter()
            .map(|(id, (n, at))| (id, n, at))
            .collect();
        ids.sort_by_key(|&(_, n, at)| (std::cmp::Reverse(n), at));
        Ok(CheckpointRebuild {
            storage,
            dir,
            current,
            ids: ids.into_iter().map(|(id, n, _)| (id, n)).collect(),
            segments,
            unreadable,
            first_lsn,
            retention_log_id,
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the `CHECKPOINT` file holds now.
    pub fn current(&self) -> &CheckpointState {
        &self.current
    }

    /// The log id to write: the one most segment headers carry. `None` if no segment header
    /// decodes, or if two ids are carried by as many segments each (see
    /// [`log_ids`](Self::log_ids)).
    pub fn log_id(&self) -> Option<u128> {
        match self.ids.as_slice() {
            [(id, _)] => Some(*id),
            [(id, n), (_, m), ..] if n > m => Some(*id),
            _ => None,
        }
    }

    /// The checkpoint LSN to write: the first LSN of the first segment, by its name (LSN 1 if
    /// there is no segment).
    pub fn lsn(&self) -> Lsn {
        self.first_lsn.unwrap_or(Lsn::FIRST)
    }

    /// Every log id found in a segment header, with how many segments carry it, most first.
    pub fn log_ids(&self) -> &[(u128, usize)] {
        &self.ids
    }

    /// How many segment files the directory holds.
    pub fn segments(&self) -> usize {
        self.segments
    }

    /// Segment files whose header does not decode, and why.
    pub fn unreadable(&self) -> &[(PathBuf, CorruptionKind)] {
        &self.unreadable
    }

    /// The log id of the retention floor file (`RETENTION`), if there is one that decodes. If it
    /// differs from [`log_id`](Self::log_id), recovery refuses that file as another log's.
    pub fn retention_log_id(&self) -> Option<u128> {
        self.retention_log_id
    }

    /// Whether the rebuild would change the file: it is missing or damaged, or it holds another
    /// log id than the segments, or a checkpoint below the first segment (which recovery reads
    /// as records missing before it). An intact file that agrees with the segments is kept.
    pub fn is_needed(&self) -> bool {
        match self.current {
            CheckpointState::Missing | CheckpointState::Damaged(_) => true,
            CheckpointState::Intact { log_id, lsn } => {
                self.log_id().is_some_and(|id| id != log_id) || lsn < self.lsn()
            }
        }
    }

    /// Why the rebuild cannot be done, if it cannot: there is no segment, no segment header
    /// decodes, or the segments disagree on the log id with no majority.
    pub fn refusal(&self) -> Option<String> {
        if self.segments == 0 {
            return Some("the directory holds no segment to rebuild the checkpoint from".into());
        }
        if self.ids.is_empty() {
            return Some("no segment header decodes, so the log id is unknown".into());
        }
        if self.log_id().is_none() {
            let ids: Vec<String> = self
                .ids
                .iter()
                .map(|(id, n)| format!("{n} carry {id:032x}"))
                .collect();
            return Some(format!(
                "the segments disagree on the log id with no majority ({}); move the segments \
                 of the other log out of the directory first",
                ids.join(", ")
            ));
        }
        None
    }

    /// Writes the rebuilt `CHECKPOINT` (the log id and LSN of this plan), if [`is_needed`];
    /// first copies the file it replaces, if any, to the `quarantine/` folder. Returns the path
    /// of that copy. Takes the directory's lock for the time it takes, and checks that the
    /// directory still says what it said when the plan was made.
    ///
    /// Crash-safe: the new file is written to `CHECKPOINT.tmp`, synced and renamed over
    /// `CHECKPOINT`, and the directory is synced; a crash leaves either file whole.
    ///
    /// [`is_needed`]: Self::is_needed
    ///
    /// # Errors
    /// [`Error::Locked`] if a process has the log open for writing; [`Error::LogChanged`] if the
    /// directory changed since the plan; [`Error::Io`] if the rebuild is refused (see
    /// [`refusal`](Self::refusal)) or the storage fails.
    pub fn apply(&self) -> Result<Option<PathBuf>> {
        if !self.is_needed() {
            return Ok(None);
        }
        if let Some(reason) = self.refusal() {
            return Err(Error::Io {
                op: "rebuild the checkpoint of",
                path: self.dir.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, reason),
            });
        }
        let storage = &self.creating();
        let _lock = storage.lock_dir(&self.dir).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                Error::Locked {
                    path: self.dir.clone(),
                }
            } else {
                Error::Io {
                    op: "lock",
                    path: self.dir.clone(),
                    source: e,
                }
            }
        })?;
        let now = CheckpointRebuild::plan_with(Arc::clone(&self.storage), &self.dir)?;
        if now.current != self.current || now.log_id() != self.log_id() || now.lsn() != self.lsn() {
            return Err(Error::LogChanged {
                path: self.dir.clone(),
                reason: "the checkpoint or the segments changed since the rebuild was planned",
            });
        }
        let (Some(log_id), lsn) = (self.log_id(), self.lsn()) else {
            return Ok(None);
        };
        let copy = match self.current {
            CheckpointState::Missing => None,
            _ => Some(self.quarantine_copy(&self.dir.join(CHECKPOINT_FILE))?),
        };
        let record = crate::format::CheckpointFile::at(log_id, lsn);
        crate::recovery::write_checkpoint(storage, &self.dir, &record)?;
        Ok(copy)
    }

    /// The storage the rebuild writes through: what it creates (the checkpoint file, the
    /// quarantine folder and copy) is the owner's only, as a log's own files are by default.
    fn creating(&self) -> WithModes {
        WithModes::new(
            Arc::clone(&self.storage),
            crate::DEFAULT_DIR_MODE,
            crate::DEFAULT_FILE_MODE,
        )
    }

    /// Copies `path` into the quarantine folder (created durably if missing) under its own
    /// name, or with `.1`, `.2`, … if that is taken; syncs the copy and the folder.
    fn quarantine_copy(&self, path: &Path) -> Result<PathBuf> {
        let storage = &self.creating();
        let qdir = self.dir.join(QUARANTINE_DIR);
        let taken = match storage.list(&qdir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                storage.create_dir_all(&qdir).at("create", &qdir)?;
                storage
                    .sync_dir(&self.dir)
                    .at("sync directory", &self.dir)?;
                Vec::new()
            }
            Err(e) => return Err(e).at("list", &qdir),
        };
        let name = CHECKPOINT_FILE;
        let mut candidate = name.to_owned();
        let mut n = 0;
        while taken.iter().any(|t| t.to_str() == Some(candidate.as_str())) {
            n += 1;
            candidate = format!("{name}.{n}");
        }
        let target = qdir.join(candidate);
        let from = storage.open(path, OpenMode::ReadOnly).at("open", path)?;
        let to = storage
            .open(&target, OpenMode::CreateNew)
            .at("create", &target)?;
        let len = from.len().at("stat", path)?;
        let mut buf = vec![0u8; usize::try_from(len.min(64 << 10)).unwrap_or(64 << 10)];
        let mut at = 0;
        while at < len {
            let got = from.read_full_at(&mut buf, at).at("read", path)?;
            if got == 0 {
                break;
            }
            to.write_all_at(&buf[..got], at).at("write", &target)?;
            at += got as u64;
        }
        to.sync_data().at("sync", &target)?;
        storage.sync_dir(&qdir).at("sync directory", &qdir)?;
        Ok(target)
    }
}

/// The first 4 KiB of the file at `path`, or `None` if there is no such file.
fn read_small(storage: &dyn Storage, path: &Path) -> Result<Option<Vec<u8>>> {
    let file = match storage.open(path, OpenMode::ReadOnly) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at("open", path),
    };
    let len = file.len().at("stat", path)?;
    let mut bytes = vec![0; usize::try_from(len.min(4096)).unwrap_or(4096)];
    let n = file.read_full_at(&mut bytes, 0).at("read", path)?;
    bytes.truncate(n);
    Ok(Some(bytes))
}
