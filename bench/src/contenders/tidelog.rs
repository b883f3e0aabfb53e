//! tidelog: `append(Durability::Synced)` per durable commit; bulk is `append(Buffered)` for each
//! record and one `sync()`.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tidelog::io::{DirLock, OpenMode, StdStorage, Storage, StorageFile};
use tidelog::{Durability, Log};

use super::{Purpose, Reading, Wal};
use crate::Result;
use crate::payload::Verifier;

pub fn open(dir: &Path, purpose: Purpose) -> Result<Box<dyn Wal>> {
    // TIDELOG_BENCH_PREALLOCATE=0 turns segment preallocation off, to measure its effect.
    let preallocate = std::env::var_os("TIDELOG_BENCH_PREALLOCATE").is_none_or(|v| v != "0");
    let mut builder = Log::builder(dir).preallocate(preallocate);
    let mut syncs = None;
    if let Purpose::Durable { count_syncs: true } = purpose {
        let counter = Arc::new(AtomicU64::new(0));
        builder = builder.storage(Arc::new(CountingStorage {
            inner: StdStorage::new(),
            syncs: Arc::clone(&counter),
        }));
        syncs = Some(counter);
    }
    Ok(Box::new(Tidelog {
        log: builder.open()?,
        syncs,
    }))
}

struct Tidelog {
    log: Log,
    syncs: Option<Arc<AtomicU64>>,
}

impl Wal for Tidelog {
    fn append(&self, record: &[u8]) -> Result<()> {
        self.log.append(record, Durability::Buffered)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(self.log.sync()?)
    }

    fn append_durable(&self, record: &[u8]) -> Result<()> {
        self.log.append(record, Durability::Synced)?;
        Ok(())
    }

    fn read_all(&self, verify: &mut Verifier) -> Result<Reading> {
        for record in self.log.iter()? {
            verify.check(record?.data())?;
        }
        Ok(Reading::Read)
    }

    fn lib_syncs(&self) -> Option<u64> {
        self.syncs.as_ref().map(|c| c.load(Ordering::Relaxed))
    }

    fn close(self: Box<Self>) -> Result<()> {
        Ok(self.log.close()?)
    }
}

/// The real file system, counting `sync_data` calls.
#[derive(Debug)]
struct CountingStorage {
    inner: StdStorage,
    syncs: Arc<AtomicU64>,
}

impl Storage for CountingStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(CountingFile {
            inner: self.inner.open(path, mode)?,
            syncs: Arc::clone(&self.syncs),
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
        self.inner.sync_dir(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        self.inner.lock_dir(dir)
    }
}

#[derive(Debug)]
struct CountingFile {
    inner: Box<dyn StorageFile>,
    syncs: Arc<AtomicU64>,
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

    fn is_empty(&self) -> io::Result<bool> {
        self.inner.is_empty()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.inner.allocate(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync_data()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_full_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
}
