//! A [`Storage`] wrapper that counts fsyncs, so the demo and the benchmark can show how many
//! commits group commit packs into one.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tidelog::io::{DirLock, OpenMode, StdStorage, Storage, StorageFile};

/// What a [`CountingStorage`] counted.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// `sync_data` calls on files (fdatasync).
    file_syncs: AtomicU64,
    /// `sync_dir` calls (directory fsyncs).
    dir_syncs: AtomicU64,
}

impl Counts {
    pub(crate) fn file_syncs(&self) -> u64 {
        self.file_syncs.load(Ordering::Relaxed)
    }

    pub(crate) fn dir_syncs(&self) -> u64 {
        self.dir_syncs.load(Ordering::Relaxed)
    }
}

/// The real file system, counting fsyncs.
#[derive(Debug, Clone)]
pub(crate) struct CountingStorage {
    inner: Arc<dyn Storage>,
    counts: Arc<Counts>,
}

impl CountingStorage {
    /// Counts the fsyncs of the real file system.
    pub(crate) fn std() -> Self {
        Self {
            inner: Arc::new(StdStorage::new()),
            counts: Arc::new(Counts::default()),
        }
    }

    pub(crate) fn counts(&self) -> Arc<Counts> {
        Arc::clone(&self.counts)
    }
}

impl Storage for CountingStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let file = self.inner.open(path, mode)?;
        Ok(Box::new(CountingFile {
            inner: file,
            counts: Arc::clone(&self.counts),
        }))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.inner.list(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.counts.dir_syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync_dir(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        self.inner.lock_dir(dir)
    }
}

#[derive(Debug)]
struct CountingFile {
    inner: Box<dyn StorageFile>,
    counts: Arc<Counts>,
}

impl StorageFile for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.inner.write_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.counts.file_syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync_data()
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_full_at(buf, offset)
    }
}
