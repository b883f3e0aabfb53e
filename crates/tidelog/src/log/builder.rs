//! [`LogBuilder`]: choosing options and storage, and opening a [`Log`]: the directory created
//! durably (each new directory synced into its parent), the lock taken, recovery run, the
//! syncer thread started.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use super::{AppendCounts, BufferPool, Inner, Log, State};
use crate::commit::{Background, GroupCommit};
use crate::error::{Error, IoContext, Result};
use crate::format::SEGMENT_HEADER_LEN;
use crate::io::{StdStorage, Storage, WithModes};
use crate::metrics::Stats;
use crate::options::{Options, RecoveryMode, SyncPolicy, WhenFull};
use crate::recovery;

/// Builds and opens a [`Log`]; see [`Log::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct LogBuilder {
    dir: PathBuf,
    options: Options,
    storage: Arc<dyn Storage>,
}

impl LogBuilder {
    /// Replaces all options at once.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Target segment size in bytes ([`Options::segment_bytes`]).
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.options.segment_bytes = bytes;
        self
    }

    /// Largest record accepted ([`Options::max_record_bytes`]).
    pub fn max_record_bytes(mut self, bytes: u32) -> Self {
        self.options.max_record_bytes = bytes;
        self
    }

    /// What recovery does with damage ([`Options::recovery_mode`]).
    pub fn recovery_mode(mut self, mode: RecoveryMode) -> Self {
        self.options.recovery_mode = mode;
        self
    }

    /// When the log syncs on its own ([`Options::sync_policy`]).
    pub fn sync_policy(mut self, policy: SyncPolicy) -> Self {
        self.options.sync_policy = policy;
        self
    }

    /// Size of the write buffer ([`Options::write_buffer_bytes`]).
    pub fn write_buffer_bytes(mut self, bytes: usize) -> Self {
        self.options.write_buffer_bytes = bytes;
        self
    }

    /// Whether to create the log if the directory holds none ([`Options::create_if_missing`]).
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.options.create_if_missing = create;
        self
    }

    /// Whether new segment files are preallocated ([`Options::preallocate`]).
    pub fn preallocate(mut self, preallocate: bool) -> Self {
        self.options.preallocate = preallocate;
        self
    }

    /// Whether an open trusts the seals of sealed segments instead of reading their frames
    /// ([`Options::trust_seals`]).
    pub fn trust_seals(mut self, trust: bool) -> Self {
        self.options.trust_seals = trust;
        self
    }

    /// Whether segment files a checkpoint frees are reused ([`Options::recycle_segments`]).
    pub fn recycle_segments(mut self, recycle: bool) -> Self {
        self.options.recycle_segments = recycle;
        self
    }

    /// Bound the log to `bytes` ([`Options::capacity_bytes`]).
    pub fn capacity_bytes(mut self, bytes: u64) -> Self {
        self.options.capacity_bytes = Some(bytes);
        self
    }

    /// What an append into a full bounded log does ([`Options::when_full`]).
    pub fn when_full(mut self, when: WhenFull) -> Self {
        self.options.when_full = when;
        self
    }

    /// Permission bits of the directories and files the log creates ([`Options::dir_mode`],
    /// [`Options::file_mode`]; `0o700` and `0o600` by default), say `0o750` and `0o640` for a
    /// group that must read the log.
    pub fn modes(mut self, dir_mode: u32, file_mode: u32) -> Self {
        self.options.dir_mode = dir_mode;
        self.options.file_mode = file_mode;
        self
    }

    /// Open read-only, for inspection ([`Options::read_only`]).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.options.read_only = read_only;
        self
    }

    /// The storage the log lives on; the real file system by default.
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// Opens the log, creating it if allowed, and runs recovery.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] for an option out of range, [`Error::Locked`] if another open
    /// log holds the directory, [`Error::NotFound`] if there is no log and creating is off,
    /// [`Error::Corrupt`] or [`Error::MissingRecords`] for damage the recovery mode does not
    /// tolerate, [`Error::Io`] for a failing storage.
    pub fn open(self) -> Result<Log> {
        Log::open_with(self)
    }
}

impl Log {
    /// Starts building a log in `dir` with the default options on the real file system.
    pub fn builder(dir: impl AsRef<Path>) -> LogBuilder {
        LogBuilder {
            dir: dir.as_ref().to_path_buf(),
            options: Options::default(),
            storage: Arc::new(StdStorage::new()),
        }
    }

    /// Opens (or creates) the log in `dir` with the default options.
    ///
    /// # Errors
    /// As [`LogBuilder::open`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Log> {
        Self::builder(dir).open()
    }

    pub(crate) fn open_with(builder: LogBuilder) -> Result<Log> {
        let LogBuilder {
            dir,
            options,
            storage,
        } = builder;
        options.validate()?;
        // Every file and directory the log creates gets the log's modes.
        let storage: Arc<dyn Storage> =
            Arc::new(WithModes::new(storage, options.dir_mode, options.file_mode));
        if options.create_if_missing && !options.read_only {
            create_log_dir(&*storage, &dir)?;
        } else {
            let names = storage.list(&dir).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::NotFound { path: dir.clone() },
                _ => Error::Io {
                    op: "list",
                    path: dir.clone(),
                    source: e,
                },
            })?;
            // Refused before the lock is taken, so a directory without a log stays untouched.
            if !names.iter().any(|n| crate::format::is_log_file_name(n)) {
                return Err(Error::NotFound { path: dir });
            }
        }
        // A read-only log changes nothing, so it takes no lock: a writer may hold it.
        let dir_lock = if options.read_only {
            None
        } else {
            Some(storage.lock_dir(&dir).map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock => Error::Locked { path: dir.clone() },
                _ => Error::Io {
                    op: "lock",
                    path: dir.clone(),
                    source: e,
                },
            })?)
        };
        let recovered = {
            span!("tidelog.recover", dir = %dir.display(), mode = ?options.recovery_mode);
            recovery::recover(&*storage, &dir, &options)?
        };
        let buf_offset = recovered
            .segments
            .last()
            .map_or(SEGMENT_HEADER_LEN as u64, |s| s.end);
        let durable = recovered.next_lsn.prev();
        let free_files = recovered.free.clone();
        let state = State {
            next_lsn: recovered.next_lsn,
            checkpoint: recovered.checkpoint,
            segments: recovered.segments,
            buf: Vec::with_capacity(options.write_buffer_bytes),
            buf_offset,
            buf_first: recovered.next_lsn,
            closed: false,
            retention: recovered.retention,
            counts: AppendCounts::default(),
            last_ms: recovered.last_ms,
        };
        let policy = options.sync_policy;
        let buffer_capacity = options.write_buffer_bytes;
        let label = dir.display().to_string();
        let inner = Arc::new(Inner {
            dir,
            storage,
            options,
            log_id: recovered.log_id,
            report: recovered.report,
            maintenance: Mutex::new(()),
            metadata: Mutex::new(recovered.metadata.clone()),
            state: Mutex::new(state),
            commit: Arc::new(GroupCommit::new(durable)),
            background: Background::default(),
            unsynced_bytes: AtomicU64::new(0),
            marker_pending: std::sync::atomic::AtomicBool::new(false),
            buffers: BufferPool::new(buffer_capacity),
            retired: Mutex::new(Vec::new()),
            stats: Stats::new(&label),
            free: Mutex::new(free_files),
            tails: Mutex::new(Vec::new()),
            room: AtomicU64::new(0),
            subscribers: Mutex::new(Vec::new()),
        });
        if inner.options.read_only {
            return Ok(Log {
                inner,
                syncer: None,
                _lock: dir_lock,
            });
        }
        let worker = Arc::clone(&inner);
        let syncer = std::thread::Builder::new()
            .name("tidelog-syncer".into())
            .spawn(move || worker.run_syncer(policy))
            .at("start the background syncer thread", &inner.dir)?;
        Ok(Log {
            inner,
            syncer: Some(syncer),
            _lock: dir_lock,
        })
    }
}

/// Creates the log directory (and missing parents) durably: each directory created is synced
/// into its parent, so a power loss cannot lose a new log whose records were acknowledged. An
/// existing log directory is synced into its parent too, and the ancestors above it (where
/// they may be opened), in case the open that created them failed before it could: a few
/// fsyncs of unchanged directories per writable open.
pub(crate) fn create_log_dir(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let exists = |p: &Path| match storage.list(p) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).at("list", p),
    };
    // The directories to create, deepest first.
    let mut missing = Vec::new();
    let mut at = Some(dir);
    // A root (no parent) or an empty path (the current directory) always exists.
    while let Some(p) = at.filter(|p| !p.as_os_str().is_empty() && p.parent().is_some()) {
        if exists(p)? {
            break;
        }
        missing.push(p);
        at = p.parent();
    }
    if missing.is_empty() {
        // It exists, but the open that created it (or a parent) may have failed before making
        // it durable, and this open is about to acknowledge records in it: sync its parent,
        // and the ancestors above as far as we may open them.
        sync_parent(storage, dir)?;
        let mut at = dir.parent();
        while let Some(p) = at.filter(|p| !p.as_os_str().is_empty() && p.parent().is_some()) {
            match sync_parent(storage, p) {
                Err(Error::Io { source, .. })
                    if source.kind() == io::ErrorKind::PermissionDenied => {}
                other => other?,
            }
            at = p.parent();
        }
        return Ok(());
    }
    storage.create_dir_all(dir).at("create directory", dir)?;
    for created in missing.iter().rev() {
        sync_parent(storage, created)?;
    }
    Ok(())
}

/// Makes `dir`'s entry in its parent durable.
fn sync_parent(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        Some(_) => Path::new("."),
        // A root has no entry to make durable.
        None => return Ok(()),
    };
    storage.sync_dir(parent).at("sync directory", parent)
}
