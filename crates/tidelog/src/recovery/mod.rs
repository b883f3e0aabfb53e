//! Recovery: what `open` does to turn whatever a crash left in a directory into a log that is a
//! prefix of what was appended.
//!
//! 1. List the directory: segments, the checkpoint file, stray temporary files of tidelog's own
//!    (removed), the lock file and the quarantine folder; anything else is reported and left
//!    alone.
//! 2. Read the checkpoint and the retention floor; remove segments wholly below the checkpoint
//!    (an interrupted checkpoint) that the floor does not hold.
//! 3. Check each segment's header and that each segment starts where the previous one ended.
//! 4. Scan every frame, verifying checksums, LSNs and batch framing, in one forward pass over
//!    each segment read in chunks of about the record limit ([`scan`]). Frames count only once
//!    their batch is complete.
//! 5. Decide what each damaged place is and what the [`RecoveryMode`] does about it
//!    ([`rules::judge`], a pure function of facts the scan gathers), and do it; whatever is
//!    discarded goes to `quarantine/`.

mod report;
mod rules;
mod scan;
#[cfg(feature = "serde")]
mod serde;
mod trust;

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::format::{
    CHECKPOINT_FILE, CheckpointFile, MAX_SEGMENT_HEADER_LEN, QUARANTINE_DIR, RETENTION_FILE,
    SegmentHeader, TEMP_SUFFIX, is_free_name, parse_segment_name,
};
use crate::io::{OpenMode, Storage};
use crate::options::{Options, RecoveryMode};
use crate::segment::{Segment, SegmentFile, read_header};
use crate::types::Lsn;
use rules::{DamageFacts, Place, Verdict, judge};
use scan::Stop;

pub use report::{Damage, DamageAction, RecoveryReport};

/// What recovery hands to the log.
pub(crate) struct Recovered {
    pub(crate) log_id: u128,
    pub(crate) checkpoint: Lsn,
    /// The retention floor, if one is set.
    pub(crate) retention: Option<Lsn>,
    pub(crate) next_lsn: Lsn,
    /// Ascending; never empty; the last one takes appends.
    pub(crate) segments: Vec<Segment>,
    /// Free segment files kept for reuse.
    pub(crate) free: Vec<PathBuf>,
    /// The latest batch time in the segments kept (0 if none carries one): new batches are
    /// never given an earlier one.
    pub(crate) last_ms: u64,
    /// The user metadata the checkpoint file holds.
    pub(crate) metadata: Vec<u8>,
    pub(crate) report: RecoveryReport,
}

struct Recovery<'a> {
    storage: &'a dyn Storage,
    dir: &'a Path,
    mode: RecoveryMode,
    report: RecoveryReport,
    dir_dirty: bool,
    /// Change nothing: report what would be done.
    dry_run: bool,
    /// The size of the reads of segment files: about the record limit, whatever their size.
    chunk: usize,
}

/// Whether `name` is a temporary file that tidelog itself writes.
fn is_own_temp(name: &str) -> bool {
    name.strip_suffix(TEMP_SUFFIX).is_some_and(|base| {
        base == CHECKPOINT_FILE
            || base == RETENTION_FILE
            || parse_segment_name(std::ffi::OsStr::new(base)).is_some()
    })
}

/// Writes the checkpoint file crash-safely: temporary file, fsync, rename, directory fsync.
pub(crate) fn write_checkpoint(
    storage: &dyn Storage,
    dir: &Path,
    record: &CheckpointFile,
) -> Result<()> {
    let path = dir.join(CHECKPOINT_FILE);
    let tmp = dir.join(format!("{CHECKPOINT_FILE}{TEMP_SUFFIX}"));
    let file = storage.open(&tmp, OpenMode::Truncate).at("create", &tmp)?;
    file.write_all_at(&record.encode(), 0).at("write", &tmp)?;
    file.sync_data().at("sync", &tmp)?;
    storage.rename(&tmp, &path).at("rename into place", &tmp)?;
    storage.sync_dir(dir).at("sync directory", dir)
}

/// Reads and decodes the checkpoint file, if there is one.
pub(crate) fn read_checkpoint(storage: &dyn Storage, path: &Path) -> Result<CheckpointFile> {
    let file = storage.open(path, OpenMode::ReadOnly).at("open", path)?;
    let len = file.len().at("stat", path)?;
    let mut bytes = vec![0; usize::try_from(len.min(4096)).unwrap_or(4096)];
    let n = file.read_full_at(&mut bytes, 0).at("read", path)?;
    CheckpointFile::decode(&bytes[..n]).map_err(|kind| Error::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        kind,
    })
}

/// Runs recovery on `dir`; the caller holds the directory lock.
pub(crate) fn recover(storage: &dyn Storage, dir: &Path, options: &Options) -> Result<Recovered> {
    let started = Instant::now();
    let mut rec = Recovery {
        storage,
        dir,
        mode: options.recovery_mode,
        report: RecoveryReport {
            mode: options.recovery_mode,
            ..RecoveryReport::default()
        },
        dir_dirty: false,
        dry_run: options.read_only,
        chunk: scan::chunk_for(options.max_record_bytes),
    };
    rec.report.dry_run = options.read_only;
    let mut names = storage.list(dir).at("list", dir)?;
    names.sort();
    let mut segments: Vec<(Lsn, PathBuf)> = Vec::new();
    let mut checkpoint_path = None;
    let mut free = Vec::new();
    for name in names {
        let path = dir.join(&name);
        if let Some(lsn) = parse_segment_name(&name) {
            segments.push((lsn, path));
        } else if name == CHECKPOINT_FILE {
            checkpoint_path = Some(path);
        } else if name.to_str().is_some_and(is_own_temp) {
            rec.remove(&path, "remove temporary file")?;
            rec.report.removed_temp_files.push(path);
        } else if is_free_name(&name) {
            // Only a file holding one clean life is recycled (a writable open reads it whole,
            // once); another is removed.
            if rec.dry_run || crate::segment::clean_life(storage, &path, rec.chunk)? {
                free.push(path);
            } else {
                rec.remove(&path, "remove unusable free file")?;
                rec.report.removed_temp_files.push(path);
            }
        } else if name == crate::io::LOCK_FILE || name == QUARANTINE_DIR || name == RETENTION_FILE {
        } else {
            rec.report.unknown_files.push(path);
        }
    }
    let checkpoint = checkpoint_path
        .map(|p| read_checkpoint(storage, &p))
        .transpose()?;
    let created = checkpoint.is_none() && segments.is_empty();
    if created && (!options.create_if_missing || options.read_only) {
        return Err(Error::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let cp = checkpoint.as_ref().map_or(Lsn::FIRST, |c| c.lsn);
    let metadata = checkpoint
        .as_ref()
        .map(|c| c.metadata.clone())
        .unwrap_or_default();
    let log_id = match checkpoint {
        Some(c) => c.log_id,
        None => match rec.common_log_id(&segments)? {
            Some(id) => id,
            None => {
                // A new log: its identity is written first, in the checkpoint file, so a
                // foreign segment dropped in later can never pass for one of its own.
                let id = crate::random_u128();
                // A dry run changes nothing: it reports with the identity it would write.
                if !rec.dry_run {
                    write_checkpoint(storage, dir, &CheckpointFile::at(id, Lsn::FIRST))?;
                }
                id
            }
        },
    };

    // Segments whose successor starts at or below the checkpoint hold only dropped records;
    // those holding a record at or above the retention floor stay.
    let floor = crate::log::read_retention(storage, dir, log_id)?;
    let below = segments
        .windows(2)
        .take_while(|w| w[1].0 <= cp && floor.is_none_or(|f| w[1].0 <= f))
        .count();
    for (_, path) in segments.drain(..below) {
        rec.remove(&path, "remove checkpointed segment")?;
        rec.report.removed_below_checkpoint.push(path);
    }

    let mut kept: Vec<Segment> = Vec::new();
    let mut runs: Vec<(Lsn, Lsn)> = Vec::new();
    let mut expected: Option<Lsn> = None;
    // Whether the last segment kept holds damage that recovery skipped.
    let mut last_skipped = false;
    let mut i = 0;
    while i < segments.len() {
        let is_last = i + 1 == segments.len();
        let (name_lsn, path) = &segments[i];
        rec.report.segments_scanned += 1;
        let open_mode = if rec.dry_run {
            OpenMode::ReadOnly
        } else {
            OpenMode::ReadWrite
        };
        let file = storage.open(path, open_mode).at("open", path)?;
        let len = file.len().at("stat", path)?;
        let mut head = vec![0; MAX_SEGMENT_HEADER_LEN.min(usize::try_from(len).unwrap_or(0))];
        file.read_exact_at(&mut head, 0).at("read", path)?;
        let header = SegmentHeader::decode(&head).and_then(|h| {
            if h.first_lsn != *name_lsn {
                Err(CorruptionKind::NameMismatch {
                    name: *name_lsn,
                    header: h.first_lsn,
                })
            } else if h.log_id != log_id {
                Err(CorruptionKind::ForeignLog {
                    expected: log_id,
                    found: h.log_id,
                })
            } else {
                Ok(h)
            }
        });
        let header = match header {
            Ok(h) => h,
            Err(kind) => {
                if !rec.bad_header(&segments[i..], kind)? {
                    break;
                }
                i += 1;
                continue;
            }
        };
        // Where this segment must start: right after the previous one, or at or below the
        // checkpoint for the first. LSNs below the checkpoint are dropped, not missing: a
        // segment the retention floor kept may end anywhere below it.
        let first = header.first_lsn;
        let wanted = match expected {
            None if first > cp => Some(cp),
            Some(e) if first < e => Some(e),
            Some(e) if first > e.max(cp) => Some(e.max(cp)),
            _ => None,
        };
        if let Some(e) = wanted {
            if first < e {
                // Starts below where the previous segment ended: overlapping LSNs.
                let kind = CorruptionKind::LsnMismatch {
                    expected: e,
                    found: first,
                };
                if !rec.bad_header(&segments[i..], kind)? {
                    break;
                }
                i += 1;
                continue;
            }
            let kind = CorruptionKind::MissingRecords {
                first: e,
                last: first.prev(),
            };
            match judge(DamageFacts::segment(Place::Gap), rec.mode) {
                Verdict::EndLog => {
                    rec.damage(path, 0, kind, DamageAction::Quarantined);
                    rec.quarantine_all(&segments[i..])?;
                    break;
                }
                Verdict::Skip => rec.damage(path, 0, kind, DamageAction::Accepted),
                Verdict::Refuse | Verdict::Cut | Verdict::EndOfData => {
                    return Err(Error::MissingRecords {
                        first: e,
                        last: first.prev(),
                        path: path.clone(),
                    });
                }
            }
        }
        let seg_file = SegmentFile::opened(path.clone(), header, file);
        // A sealed segment before the last may be taken as its seal describes it.
        let seg_file = if options.trust_seals && !is_last {
            match trust::by_seal(seg_file, len)? {
                Ok(segment) => {
                    let (first, last, records) = trust::records(&segment);
                    rec.report.segments_trusted += 1;
                    rec.report.records_recovered += records;
                    runs.push((first, last));
                    last_skipped = false;
                    expected = Some(last.next());
                    kept.push(segment);
                    i += 1;
                    continue;
                }
                Err(file) => file,
            }
        } else {
            seg_file
        };
        let scan = scan::scan(seg_file, len, is_last, rec.mode, rec.chunk)?;
        rec.report.records_recovered += scan.records;
        runs.extend(scan.runs);
        last_skipped = !scan.skipped.is_empty();
        rec.report.damage.extend(scan.skipped);
        let mut segment = scan.segment;
        if let Some(stop) = scan.stop {
            match stop.verdict {
                Verdict::Cut => rec.cut(&mut segment, len, stop)?,
                Verdict::EndLog => {
                    rec.cut(&mut segment, len, stop)?;
                    rec.quarantine_all(&segments[i + 1..])?;
                    kept.push(segment);
                    break;
                }
                // Nothing intact follows in this segment: readers skip the rest of it.
                Verdict::Skip => {
                    last_skipped = true;
                    rec.damage(
                        path,
                        stop.offset,
                        stop.kind,
                        DamageAction::Skipped { to: len },
                    );
                }
                // A scan never stops at the end of the data.
                Verdict::Refuse | Verdict::EndOfData => return Err(corrupt(path, &stop)),
            }
        }
        if last_skipped || !segment.skips.is_empty() {
            segment.file.mark_damaged();
        }
        expected = Some(segment.last_lsn.next());
        kept.push(segment);
        i += 1;
    }

    // A last segment whose records all lie below the checkpoint (an interrupted reset) goes,
    // unless the retention floor holds it; appends then need a segment of their own.
    let mut needs_segment = kept.is_empty();
    if let Some(seg) = kept.last().filter(|s| s.last_lsn.next() < cp) {
        if floor.is_some_and(|f| f <= seg.last_lsn) {
            needs_segment = true;
        } else if let Some(seg) = kept.pop() {
            rec.remove(&seg.file.path, "remove checkpointed segment")?;
            rec.report
                .removed_below_checkpoint
                .push(seg.file.path.clone());
            needs_segment = kept.is_empty();
        }
    }
    let next_lsn = kept.last().map_or(cp, |s| s.last_lsn.next().max(cp));
    // A last segment that ends with a seal was sealed by a roll whose next segment a crash kept
    // from being created: appends go to a new segment, never after a seal. What follows the
    // seal is no data of this life (zeros, or a recycled file's earlier life): it goes, as the
    // roll would have trimmed it, since a segment that is not the last must end at its seal.
    // A dry run, which appends nothing, plans none.
    if let Some(seg) = kept.last().filter(|s| s.sealed && !rec.dry_run) {
        let path = &seg.file.path;
        let io = seg.file.io()?;
        if io.len().at("stat", path)? > seg.end {
            io.set_len(seg.end).at("trim", path)?;
        }
        needs_segment = true;
    }
    // Damage skipped in the last segment stays where it is, and what proved it (a later
    // segment, an intact frame after it) may be gone once this recovery is done: appends after
    // it would make the next recovery take it for the unsynced tail and cut them. Appends go to
    // a segment of their own, behind which the damaged one is never the last again. A damaged
    // segment that holds no record would share that segment's name: it goes to quarantine. A
    // dry run, which appends nothing, keeps reading from it and only reports the move.
    if last_skipped && !needs_segment {
        if let Some(seg) = kept.last().filter(|s| s.is_empty()) {
            let moved = [(seg.first_lsn(), seg.file.path.clone())];
            if !rec.dry_run {
                kept.pop();
            }
            rec.quarantine_all(&moved)?;
        }
        needs_segment = !rec.dry_run;
    }
    // Always on a writable open, not only when recovery changed the directory: the entries it
    // found may be those of an operation whose directory fsync failed (the log was poisoned
    // then), and appends are about to trust them.
    if !rec.dry_run {
        storage.sync_dir(dir).at("sync directory", dir)?;
        // The log is about to call every record it recovered durable, but the last segment's
        // may never have been synced (the writer's fsync failed, or it was killed before its
        // sync: the page cache still holds them): they are made durable first. Earlier segments
        // were synced before their successor was created.
        if let Some(last) = kept.last() {
            let path = &last.file.path;
            last.file.io()?.sync_data().at("sync", path)?;
        }
    }
    if needs_segment {
        // The log needs a segment to take appends; a read-only one only a placeholder.
        let file = SegmentFile::planned(dir, log_id, next_lsn);
        if !rec.dry_run {
            let allocate = if options.preallocate {
                options.segment_bytes
            } else {
                0
            };
            file.create(storage, dir, allocate, None)?;
        }
        kept.push(Segment::new(file));
    }

    rec.report.lost = lost_ranges(&runs, cp, next_lsn);
    rec.report.created = created;
    rec.report.checkpoint_lsn = cp;
    rec.report.last_lsn = next_lsn.prev();
    rec.report.duration = started.elapsed();
    Ok(Recovered {
        log_id,
        checkpoint: cp,
        next_lsn,
        last_ms: kept.iter().map(|s| s.max_ms).max().unwrap_or(0),
        metadata,
        segments: kept,
        free,
        retention: floor,
        report: rec.report,
    })
}

fn corrupt(path: &Path, stop: &Stop) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        offset: stop.offset,
        kind: stop.kind.clone(),
    }
}

/// LSN ranges from the checkpoint up to `next_lsn` (exclusive) that no run of intact records
/// covers (only `SkipCorrupt` leaves any), a trailing one included.
fn lost_ranges(runs: &[(Lsn, Lsn)], checkpoint: Lsn, next_lsn: Lsn) -> Vec<RangeInclusive<Lsn>> {
    let mut lost = Vec::new();
    let mut covered_to = checkpoint.prev();
    let ends = runs.iter().copied().chain([(next_lsn, next_lsn)]);
    for (first, last) in ends {
        if first > covered_to.next() {
            lost.push(covered_to.next()..=first.prev());
        }
        covered_to = covered_to.max(last);
    }
    lost
}

impl Recovery<'_> {
    fn damage(&mut self, path: &Path, offset: u64, kind: CorruptionKind, action: DamageAction) {
        self.report.damage.push(Damage {
            path: path.to_path_buf(),
            offset,
            kind,
            action,
        });
    }

    /// The log id most segment headers carry (the last segment's on a tie), for a log whose
    /// checkpoint file is gone; `None` if no header decodes.
    fn common_log_id(&self, segments: &[(Lsn, PathBuf)]) -> Result<Option<u128>> {
        let mut counts: Vec<(u128, usize)> = Vec::new();
        for (_, path) in segments {
            let file = self
                .storage
                .open(path, OpenMode::ReadOnly)
                .at("open", path)?;
            if let Ok(h) = read_header(&*file, path)? {
                match counts.iter_mut().find(|(id, _)| *id == h.log_id) {
                    Some(entry) => entry.1 += 1,
                    None => counts.push((h.log_id, 1)),
                }
            }
        }
        // `max_by_key` keeps the last of equal maxima: the id seen last wins a tie.
        Ok(counts
            .iter()
            .rev()
            .max_by_key(|(_, n)| *n)
            .map(|(id, _)| *id))
    }

    /// Handles a segment whose header is unusable; `rest[0]` is that segment. Returns whether
    /// recovery goes on with the next segment.
    fn bad_header(&mut self, rest: &[(Lsn, PathBuf)], kind: CorruptionKind) -> Result<bool> {
        let path = &rest[0].1;
        let place = match kind {
            CorruptionKind::UnsupportedVersion { .. } => Place::OtherVersion,
            _ => Place::Header,
        };
        match judge(DamageFacts::segment(place), self.mode) {
            Verdict::EndLog => {
                self.damage(path, 0, kind, DamageAction::Quarantined);
                self.quarantine_all(rest)?;
                Ok(false)
            }
            Verdict::Skip => {
                self.damage(path, 0, kind, DamageAction::Quarantined);
                self.quarantine_all(&rest[..1])?;
                Ok(true)
            }
            Verdict::Refuse | Verdict::Cut | Verdict::EndOfData => Err(Error::Corrupt {
                path: path.clone(),
                offset: 0,
                kind,
            }),
        }
    }

    /// Removes a file (or, in a dry run, only notes that it would).
    fn remove(&mut self, path: &Path, op: &'static str) -> Result<()> {
        if !self.dry_run {
            self.storage.remove_file(path).at(op, path)?;
            self.dir_dirty = true;
        }
        Ok(())
    }

    /// Cuts a segment at the stop's cut point, keeping a copy of the cut bytes in quarantine.
    fn cut(&mut self, segment: &mut Segment, len: u64, stop: Stop) -> Result<()> {
        let file = Arc::clone(&segment.file);
        let path = &file.path;
        let io = file.io()?;
        // Zeros after the last byte written (a preallocated file's) are not data: they are
        // neither counted as cut nor copied to the quarantine.
        let data_end = scan::data_end(io, stop.cut, len, self.chunk)
            .at("read", path)?
            .max(stop.intact_end.min(len));
        let cut_bytes = data_end.saturating_sub(stop.cut);
        let name = format!("{}.{}.cut", file_name(path), stop.cut);
        if self.dry_run {
            // Nothing is written: the report says what a real recovery would cut, and where
            // the cut bytes would go.
            if cut_bytes > 0 {
                let would = self.dir.join(QUARANTINE_DIR).join(&name);
                self.report.quarantined.push(would);
            }
        } else if cut_bytes > 0 {
            let qdir = self.quarantine_dir()?;
            let target = self.unique_in(&qdir, &name)?;
            let out = self
                .storage
                .open(&target, OpenMode::CreateNew)
                .at("create", &target)?;
            // Copied a chunk at a time.
            let mut buf = vec![
                0u8;
                usize::try_from(cut_bytes)
                    .unwrap_or(usize::MAX)
                    .min(self.chunk)
            ];
            let mut at = stop.cut;
            while at < data_end {
                let n = usize::try_from(data_end - at)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                let got = io.read_full_at(&mut buf[..n], at).at("read", path)?;
                if got == 0 {
                    break;
                }
                out.write_all_at(&buf[..got], at - stop.cut)
                    .at("write", &target)?;
                at += got as u64;
            }
            out.sync_data().at("sync", &target)?;
            self.storage.sync_dir(&qdir).at("sync directory", &qdir)?;
            self.report.quarantined.push(target);
        }
        if !self.dry_run {
            io.set_len(stop.cut).at("truncate", path)?;
            io.sync_data().at("sync", path)?;
        }
        segment.end = stop.cut;
        segment.forget_from(stop.cut);
        self.report.torn_bytes_cut += cut_bytes;
        self.report.intact_frames_cut += stop.intact_after;
        let action = DamageAction::Cut {
            at: stop.cut,
            bytes: cut_bytes,
        };
        self.damage(path, stop.offset, stop.kind, action);
        Ok(())
    }

    /// The quarantine folder, created (durably) if missing.
    fn quarantine_dir(&self) -> Result<PathBuf> {
        let qdir = self.dir.join(QUARANTINE_DIR);
        let exists = self.storage.list(&qdir).is_ok();
        if !exists {
            self.storage.create_dir_all(&qdir).at("create", &qdir)?;
            self.storage
                .sync_dir(self.dir)
                .at("sync directory", self.dir)?;
        }
        Ok(qdir)
    }

    /// A path in `qdir` named `name`, or `name.1`, `name.2`, … if taken.
    fn unique_in(&self, qdir: &Path, name: &str) -> Result<PathBuf> {
        let taken = self.storage.list(qdir).at("list", qdir)?;
        let mut candidate = name.to_owned();
        let mut n = 0;
        while taken.iter().any(|t| t.to_str() == Some(candidate.as_str())) {
            n += 1;
            candidate = format!("{name}.{n}");
        }
        Ok(qdir.join(candidate))
    }

    /// Moves whole segment files into the quarantine folder.
    fn quarantine_all(&mut self, segments: &[(Lsn, PathBuf)]) -> Result<()> {
        if segments.is_empty() {
            return Ok(());
        }
        if self.dry_run {
            let qdir = self.dir.join(QUARANTINE_DIR);
            for (_, path) in segments {
                self.report.quarantined.push(qdir.join(file_name(path)));
            }
            return Ok(());
        }
        let qdir = self.quarantine_dir()?;
        for (_, path) in segments {
            let target = self.unique_in(&qdir, &file_name(path))?;
            self.storage
                .rename(path, &target)
                .at("move to quarantine", path)?;
            self.report.quarantined.push(target);
        }
        self.storage.sync_dir(&qdir).at("sync directory", &qdir)?;
        self.storage
            .sync_dir(self.dir)
            .at("sync directory", self.dir)?;
        Ok(())
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
