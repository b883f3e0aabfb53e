//! [`restore`]: a log directory rebuilt from an archive, to its latest record, to an LSN, or to
//! a time.
//!
//! Invariants: every object is checked against the checksum in its name and then frame by
//! frame by the core's [`Importer`]; the archive's objects must follow each other with no gap;
//! the log is built in a temporary directory beside the target and renamed into place only
//! once it is whole and cut at the target, so an interrupted restore leaves no half log under
//! the target's name. Object names never decide a local path: the importer names the files.
//!
//! A restore holds an exclusive lock (`flock`) on a lock file beside its temporary directory,
//! `.NAME.restoring-PID-NANOS.lock` beside `.NAME.restoring-PID-NANOS`, from before it creates
//! the directory until after the directory is renamed into place or removed. The lock goes
//! with the process, so a leftover whose lock file can be locked belonged to a restore that
//! died, and the next restore of the same target removes it; one whose lock is held is left
//! alone. (The lock the log's importer holds on the directory itself would not do: it is
//! released between the import and the cut, and before the rename.)

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tidelog::{Importer, Log, Lsn, Options};

use crate::error::{Error, Result};
use crate::io::{self, Backoff};
use crate::manifest::{Manifest, ObjectEntry, ObjectKind};
use crate::retention::Lease;
use crate::store::Store;

/// How far a restore goes.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use tidelog::{Durability, Log, Lsn};
/// use tidelog_archive::{ArchiveOptions, Archiver, Error, Store, Target, restore};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::from_url("memory://")?;
/// let log = Arc::new(Log::open(dir.path().join("log"))?);
/// let archiver = Archiver::start(Arc::clone(&log), store.clone(), ArchiveOptions::default())?;
/// for data in [&b"one"[..], b"two", b"three"] {
///     log.append(data, Durability::Synced)?;
/// }
/// archiver.stop()?; // uploads what is durable
///
/// // To an LSN: every record up to and including it. The restored log goes on after it.
/// let report = restore(&store, dir.path().join("at-2"), Target::Lsn(Lsn::new(2)))?;
/// assert_eq!(report.last_lsn, Lsn::new(2));
/// let restored = Log::open(&report.dir)?;
/// assert_eq!(restored.append(b"two and a half", Durability::Synced)?, Lsn::new(3));
///
/// // To a time: every batch stamped at or before it, such as the moment before a bad write
/// // (here, now: every record).
/// let report = restore(&store, dir.path().join("now"), Target::Time(SystemTime::now()))?;
/// assert_eq!(report.last_lsn, Lsn::new(3));
///
/// // A time before the first archived batch, like an LSN past the last, is not archived.
/// let early = UNIX_EPOCH + Duration::from_secs(1);
/// assert!(matches!(
///     restore(&store, dir.path().join("early"), Target::Time(early)),
///     Err(Error::TargetNotArchived { .. })
/// ));
/// assert!(!dir.path().join("early").exists());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every archived record.
    Latest,
    /// Every record up to and including this LSN (a batch it cuts keeps its records up to it).
    Lsn(Lsn),
    /// Every batch stamped at or before this time, and none after (record-exact: records of a
    /// batch share its time).
    Time(SystemTime),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Latest => f.write_str("latest"),
            Target::Lsn(lsn) => write!(f, "LSN {lsn}"),
            Target::Time(t) => write!(f, "time {} ms", millis(*t)),
        }
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The restored log's directory.
    pub dir: PathBuf,
    /// Its log id.
    pub log_id: u128,
    /// Its first record.
    pub first_lsn: Lsn,
    /// Its last record: the next append gets the LSN after it.
    pub last_lsn: Lsn,
    /// Objects read.
    pub objects: usize,
    /// Bytes read from the store.
    pub bytes: u64,
}

/// A restore's progress, told to the callback of [`restore_with_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Objects read so far.
    pub objects: usize,
    /// Objects to read.
    pub objects_total: usize,
    /// Bytes read so far.
    pub bytes: u64,
    /// Bytes to read.
    pub bytes_total: u64,
}

/// Rebuilds the archived log in `dir` (which must not exist, or be empty) up to `target`.
/// Blocking: runs the store's calls on a runtime of its own.
///
/// The log is built in a temporary directory beside `dir`, `.NAME.restoring-PID-NANOS` (for a
/// `dir` named `NAME`), and renamed to `dir` once it is whole, so a restore that is
/// interrupted, even by a killed process, leaves nothing under `dir`. While it runs, the
/// restore holds a lock on `.NAME.restoring-PID-NANOS.lock` beside it. A killed restore leaves
/// both behind; the next restore to `dir` removes them before it builds its own (what it
/// cannot remove stays for the one after), and never those of a restore still running, in
/// this process or another: their lock file is locked. To remove them by hand, make sure no
/// restore to `dir` runs, then delete both. A temporary directory without its lock file is
/// never removed by a restore.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tidelog::{Durability, Log};
/// use tidelog_archive::{ArchiveOptions, Archiver, Store, Target, restore};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::from_url(&format!("file://{}", dir.path().join("archive").display()))?;
/// let log = Arc::new(Log::open(dir.path().join("log"))?);
/// let archiver = Archiver::start(Arc::clone(&log), store.clone(), ArchiveOptions::default())?;
/// log.append(b"kept", Durability::Synced)?;
/// archiver.stop()?; // uploads what is durable
///
/// let report = restore(&store, dir.path().join("restored"), Target::Latest)?;
/// let restored = Log::open(&report.dir)?;
/// assert_eq!(restored.read(report.last_lsn)?.data(), b"kept");
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::NoArchive`], [`Error::BadManifest`], [`Error::Gap`], [`Error::MissingObject`],
/// [`Error::CorruptObject`] (naming the object), [`Error::TargetNotArchived`],
/// [`Error::TargetExists`], [`Error::Store`] (once a store operation failed five times, with
/// backoff between), [`Error::Log`] (a copy the importer refused, with
/// the file and offset), [`Error::Io`]. Nothing is left under `dir` on an error, nor beside it.
pub fn restore(store: &Store, dir: impl AsRef<Path>, target: Target) -> Result<RestoreReport> {
    restore_with_progress(store, dir, target, |_| {})
}

/// As [`restore`], calling `progress` after each object.
///
/// # Errors
/// As [`restore`].
pub fn restore_with_progress(
    store: &Store,
    dir: impl AsRef<Path>,
    target: Target,
    progress: impl FnMut(Progress),
) -> Result<RestoreReport> {
    restore_with(store, dir, target, &Options::default(), progress)
}

/// As [`restore_with_progress`], building the log with `options`: its directory is created
/// with `options.dir_mode` and its files with `options.file_mode` (by default the owner's
/// only, as the log itself makes them), and the restored log is cut at the target opened
/// with `options`.
///
/// # Errors
/// [`Error::Log`] with [`tidelog::Error::InvalidOptions`] for options the log refuses
/// (nothing is read or created), and as [`restore`].
pub fn restore_with(
    store: &Store,
    dir: impl AsRef<Path>,
    target: Target,
    options: &Options,
    mut progress: impl FnMut(Progress),
) -> Result<RestoreReport> {
    crate::io::not_in_runtime("restore")?;
    options.validate()?;
    let dir = dir.as_ref().to_path_buf();
    let runtime = crate::io::runtime("start a runtime for restoring into", dir.clone())?;
    // Nothing is written to a location that holds no archive (a mistyped URL).
    let seqs = io::retrying(&runtime, Backoff::default(), io::ATTEMPTS, || {
        io::manifest_seqs(store)
    })?;
    if seqs.is_empty() {
        return Err(Error::NoArchive {
            location: store.location().to_owned(),
        });
    }
    check_target_dir(&dir)?;
    // Held from before the manifest is read until the restore is done: no prune removes an
    // object this restore may read (see `retention`).
    let mut lease = Lease::new(store);
    runtime.block_on(lease.hold(Lsn::FIRST));
    let result = restore_on(
        (&runtime, store, &mut lease),
        &dir,
        target,
        options,
        &mut progress,
    );
    runtime.block_on(lease.release());
    result
}

/// The restore, once its runtime runs and its lease is held.
fn restore_on(
    (runtime, store, lease): (&tokio::runtime::Runtime, &Store, &mut Lease),
    dir: &Path,
    target: Target,
    options: &Options,
    mut progress: impl FnMut(Progress),
) -> Result<RestoreReport> {
    let dir = dir.to_path_buf();
    let manifest = io::retrying(runtime, Backoff::default(), io::ATTEMPTS, || {
        io::latest_manifest(store)
    })?
    .ok_or_else(|| Error::NoArchive {
        location: store.location().to_owned(),
    })?;
    let chosen = choose(&manifest, target)?;
    // Removes the temporary directory (if it is still there) and the lock file when dropped,
    // on every way out, then unlocks.
    let claim = Claim::beside(&dir)?;
    let (first, last, bytes) = build(
        (runtime, store, lease),
        &manifest,
        &chosen,
        target,
        (&claim.tmp, options),
        &mut progress,
    )?;
    std::fs::rename(&claim.tmp, &dir).map_err(|source| match source.kind() {
        // Taken meanwhile (by another restore, say) by a directory that holds files.
        std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty => {
            Error::TargetExists { path: dir.clone() }
        }
        _ => Error::Io {
            op: "rename the restored log into place at",
            path: dir.clone(),
            source,
        },
    })?;
    sync_parent(&dir)?;
    drop(claim);
    Ok(RestoreReport {
        dir,
        log_id: manifest.log_id(),
        first_lsn: first,
        last_lsn: last,
        objects: chosen.len(),
        bytes,
    })
}

/// The objects a restore to `target` reads.
fn choose(manifest: &Manifest, target: Target) -> Result<Vec<ObjectEntry>> {
    let objects = &manifest.objects;
    let not_archived = |reason: String| Error::TargetNotArchived {
        target: target.to_string(),
        reason,
    };
    let Some(last) = objects.last() else {
        return Err(not_archived("the archive holds no record".to_owned()));
    };
    let first = objects[0].first_lsn;
    let n = match target {
        Target::Latest => objects.len(),
        Target::Lsn(lsn) => {
            if lsn.get() > last.last_lsn {
                return Err(not_archived(format!(
                    "the archive ends at LSN {}",
                    last.last_lsn
                )));
            }
            if lsn.get() < first {
                return Err(not_archived(format!("the archive starts at LSN {first}")));
            }
            objects.partition_point(|o| o.first_lsn <= lsn.get())
        }
        Target::Time(t) => {
            let ms = millis(t);
            let n = objects.partition_point(|o| o.first_ms.is_some_and(|f| f <= ms));
            if n == 0 {
                return Err(not_archived(
                    "no archived batch is stamped at or before it".to_owned(),
                ));
            }
            n
        }
    };
    Ok(objects[..n].to_vec())
}

fn check_target_dir(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::TargetExists {
                    path: dir.to_path_buf(),
                });
            }
            // An empty directory is replaced by the rename.
            std::fs::remove_dir(dir).map_err(|source| Error::Io {
                op: "replace the empty directory",
                path: dir.to_path_buf(),
                source,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            op: "read",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// A restore's temporary directory beside its target, and the lock that marks it as in use.
///
/// The lock file is created and locked before the directory is; dropping the claim removes
/// the directory (if it was not renamed into place), then the lock file (unless the directory
/// could not be removed), then unlocks it.
#[derive(Debug)]
struct Claim {
    /// The directory the log is built in (not created by the claim: the importer creates it).
    tmp: PathBuf,
    /// The lock file beside it.
    lock_path: PathBuf,
    /// The open lock file, locked.
    lock: File,
}

/// How many fresh names a restore tries for its temporary directory before it gives up.
const CLAIM_ATTEMPTS: usize = 8;

impl Claim {
    /// Removes what restores of `dir` that died left beside it, then claims a fresh temporary
    /// directory there (creating `dir`'s parent if need be).
    fn beside(dir: &Path) -> Result<Claim> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Io {
                op: "restore into",
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no directory name"),
            })?;
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            op: "create",
            path: parent.to_path_buf(),
            source,
        })?;
        remove_stale(parent, &name);
        let mut last_error = None;
        for _ in 0..CLAIM_ATTEMPTS {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_nanos();
            let stem = format!(".{name}.restoring-{}-{nanos}", std::process::id());
            let lock_path = parent.join(format!("{stem}{LOCK_SUFFIX}"));
            let mut options = OpenOptions::new();
            options.read(true).write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let lock = match options.open(&lock_path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    last_error = Some(e);
                    continue;
                }
                Err(source) => {
                    return Err(Error::Io {
                        op: "create the restore's lock file",
                        path: lock_path,
                        source,
                    });
                }
            };
            match lock.try_lock() {
                Ok(()) => {}
                // Another restore took it for a leftover between its creation and this lock,
                // and removes it: try another name.
                Err(std::fs::TryLockError::WouldBlock) => {
                    last_error = Some(std::io::ErrorKind::WouldBlock.into());
                    continue;
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    let _ = std::fs::remove_file(&lock_path);
                    return Err(Error::Io {
                        op: "lock",
                        path: lock_path,
                        source,
                    });
                }
            }
            // The same, done and undone already: the name is gone, try another.
            if !is_at(&lock, &lock_path) {
                let _ = lock.unlock();
                last_error = Some(std::io::ErrorKind::NotFound.into());
                continue;
            }
            return Ok(Claim {
                tmp: parent.join(stem),
                lock_path,
                lock,
            });
        }
        Err(Error::Io {
            op: "claim a temporary directory for restoring",
            path: dir.to_path_buf(),
            source: last_error.unwrap_or_else(|| std::io::ErrorKind::AlreadyExists.into()),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let removed = match std::fs::remove_dir_all(&self.tmp) {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        // A directory that could not be removed keeps its lock file, so that the next restore
        // of the same target removes both.
        if removed {
            let _ = std::fs::remove_file(&self.lock_path);
        }
        // Unlocked explicitly: a child process forked meanwhile shares the lock until its exec.
        let _ = self.lock.unlock();
    }
}

/// What ends the name of a restore's lock file.
const LOCK_SUFFIX: &str = ".lock";

/// Removes, beside a target named `name` in `parent`, the temporary directories and lock files
/// of restores whose process died: those whose lock file can be locked. Best effort: what
/// cannot be removed stays for the next restore to try again.
fn remove_stale(parent: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = format!(".{name}.restoring-");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(stem) = file_name
            .to_str()
            .and_then(|n| n.strip_suffix(LOCK_SUFFIX))
            .filter(|stem| stem.strip_prefix(&prefix).is_some_and(is_stamp))
        else {
            continue;
        };
        let lock_path = entry.path();
        let Ok(lock) = File::open(&lock_path) else {
            continue;
        };
        // Held: its restore runs.
        if lock.try_lock().is_err() {
            continue;
        }
        // Removed between the open and the lock by its restore, which finished, or by another
        // restore that found it stale first.
        if is_at(&lock, &lock_path) {
            let tmp = parent.join(stem);
            let gone = match std::fs::remove_dir_all(&tmp) {
                Ok(()) => true,
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            };
            if gone {
                let _ = std::fs::remove_file(&lock_path);
            }
        }
        let _ = lock.unlock();
    }
}

/// Whether `stamp` is `PID-NANOS`, as a restore names its temporary directory.
fn is_stamp(stamp: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    stamp
        .split_once('-')
        .is_some_and(|(pid, nanos)| digits(pid) && digits(nanos))
}

/// Whether the open `file` is still the file at `path` (not removed, nor replaced).
fn is_at(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(open), Ok(named)) => (open.dev(), open.ino()) == (named.dev(), named.ino()),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        // Names are never reused (the process id and the time make them), so one still
        // there is the same file.
        let _ = file;
        path.exists()
    }
}

fn sync_parent(dir: &Path) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    #[cfg(unix)]
    {
        let synced = std::fs::File::open(parent).and_then(|d| d.sync_all());
        synced.map_err(|source| Error::Io {
            op: "sync directory",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let _ = parent;
    Ok(())
}

/// Reads `chosen` into a new log at `tmp`, made with `options`, and cuts it at `target`.
/// Returns its first and last LSN and the bytes read.
fn build(
    (runtime, store, lease): (&tokio::runtime::Runtime, &Store, &mut Lease),
    manifest: &Manifest,
    chosen: &[ObjectEntry],
    target: Target,
    (tmp, options): (&Path, &Options),
    progress: &mut impl FnMut(Progress),
) -> Result<(Lsn, Lsn, u64)> {
    let storage = Arc::new(tidelog::io::StdStorage::new());
    let mut importer = Importer::create_with_options(storage, tmp, options)?;
    let bytes_total = chosen
        .iter()
        .fold(0u64, |sum, o| sum.saturating_add(o.bytes));
    let mut bytes = 0;
    for (i, object) in chosen.iter().enumerate() {
        runtime.block_on(lease.renew());
        let get = |name: &str| {
            io::retrying(runtime, Backoff::default(), io::ATTEMPTS, || {
                io::get(store, name)
            })
        };
        // A tail its writer replaced since the manifest was read (by a longer one, or by the
        // whole segment): the newest manifest names what replaced it, which a busy writer may
        // replace again; the same manifest naming a missing object is a lost object.
        let mut object = object.clone();
        let mut seen = None;
        let got = loop {
            match get(&object.name) {
                Err(e @ Error::MissingObject { .. }) if object.kind == ObjectKind::Tail => {
                    let (seq, newer) = replacement(runtime, store, &object)?;
                    if seen == Some(seq) {
                        return Err(e);
                    }
                    (seen, object) = (Some(seq), newer);
                }
                other => break other?,
            }
        };
        let key = store.path(&object.name).to_string();
        let crc = crc32c::crc32c(&got);
        if got.len() as u64 != object.bytes || crc != object.crc32c {
            return Err(Error::CorruptObject {
                key,
                reason: format!(
                    "{} bytes with checksum {crc:08x}, the manifest says {} bytes with {:08x}",
                    got.len(),
                    object.bytes,
                    object.crc32c
                ),
            });
        }
        let last = importer.add(&got).map_err(|e| match e {
            tidelog::Error::MissingRecords { first, last, .. } => Error::Gap { first, last },
            e => Error::CorruptObject {
                key: key.clone(),
                reason: e.to_string(),
            },
        })?;
        if last.get() != object.last_lsn {
            return Err(Error::CorruptObject {
                key,
                reason: format!(
                    "holds records up to LSN {last}, the manifest says {}",
                    object.last_lsn
                ),
            });
        }
        bytes += object.bytes;
        progress(Progress {
            objects: i + 1,
            objects_total: chosen.len(),
            bytes,
            bytes_total,
        });
    }
    let first = Lsn::new(chosen.first().map_or(1, |o| o.first_lsn));
    let dir = importer.finish()?;
    let log = Log::builder(&dir)
        .options(options.clone())
        .create_if_missing(false)
        .open()?;
    if log.log_id() != manifest.log_id() {
        return Err(Error::ForeignArchive {
            expected: manifest.log_id(),
            found: log.log_id(),
        });
    }
    let cut = match target {
        Target::Latest => None,
        Target::Lsn(lsn) => Some(lsn),
        Target::Time(t) => Some(last_at_or_before(&log, millis(t))?),
    };
    if let Some(lsn) = cut {
        log.truncate_after(lsn)?;
    }
    let last = log.last_lsn();
    log.close()?;
    Ok((first, last, bytes))
}

/// The object that replaced the tail `old`: the newest manifest's (its sequence number is
/// returned too) object starting at the same LSN and reaching at least as far.
fn replacement(
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    old: &ObjectEntry,
) -> Result<(u64, ObjectEntry)> {
    let newest = io::retrying(runtime, Backoff::default(), io::ATTEMPTS, || {
        io::latest_manifest(store)
    })?;
    newest
        .and_then(|m| {
            let seq = m.seq;
            m.objects
                .into_iter()
                .find(|o| o.first_lsn == old.first_lsn && o.last_lsn >= old.last_lsn)
                .map(|o| (seq, o))
        })
        .ok_or_else(|| Error::MissingObject {
            key: store.path(&old.name).to_string(),
        })
}

/// The last record stamped at or before `ms` (the LSN before the log's first if none is).
fn last_at_or_before(log: &Log, ms: u64) -> Result<Lsn> {
    let mut last = log.checkpoint_lsn().prev();
    for record in log.iter()? {
        let record = record?;
        match record.timestamp_ms() {
            Some(t) if t > ms => break,
            _ => last = record.lsn(),
        }
    }
    Ok(last)
}
