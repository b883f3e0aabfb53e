//! [`HookedStorage`]: the storage wrapper the tests use to hold fsyncs at a gate, count fsyncs
//! and reads, and make a write or an fsync panic.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::Duration;

use tidelog::io::{DirLock, OpenMode, Storage, StorageFile};

/// A [`Storage`] that forwards to another one and lets a test hold fsyncs at a gate, count them,
/// count what its files read, and make a write or an fsync panic. Cloning gives another handle
/// on the same hooks.
#[derive(Debug, Clone)]
pub(crate) struct HookedStorage {
    inner: Arc<dyn Storage>,
    hooks: Arc<Hooks>,
}

#[derive(Debug, Default)]
struct Hooks {
    gate: Mutex<Gate>,
    opened: Condvar,
    /// `sync_data` calls so far.
    syncs: AtomicU64,
    /// The next `write_at` panics.
    panic_on_write: AtomicBool,
    /// The next `sync_data` on the log's background syncer thread panics.
    panic_on_syncer_sync: AtomicBool,
    /// What the files read.
    reads: ReadStats,
    /// The thread id of the log's syncer thread (Linux), once it synced.
    syncer_tid: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct Gate {
    /// How many of the next fsyncs are held.
    armed: u32,
    /// Bumped by each release; a held fsync waits for the generation it arrived in to end.
    generation: u64,
    /// Where a held fsync reports that it arrived.
    entered: Option<mpsc::Sender<()>>,
}

impl HookedStorage {
    pub(crate) fn new(inner: Arc<dyn Storage>) -> Self {
        Self {
            inner,
            hooks: Arc::default(),
        }
    }

    /// Holds the next `n` fsyncs (on any file) until the returned guard is released or dropped.
    pub(crate) fn hold_syncs(&self, n: u32) -> HeldSyncs {
        let (tx, rx) = mpsc::channel();
        let mut gate = self.hooks.gate();
        gate.armed = n;
        gate.entered = Some(tx);
        HeldSyncs {
            hooks: Arc::clone(&self.hooks),
            entered: rx,
            released: false,
        }
    }

    /// The thread id of the syncer thread of the log on this storage, once it made an fsync
    /// (on Linux; `None` elsewhere).
    pub(crate) fn syncer_tid(&self) -> Option<String> {
        self.hooks
            .syncer_tid
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// What the files read so far.
    pub(crate) fn reads(&self) -> &ReadStats {
        &self.hooks.reads
    }

    /// How many fsyncs were asked for so far (held ones included).
    pub(crate) fn syncs(&self) -> u64 {
        self.hooks.syncs.load(Ordering::SeqCst)
    }

    /// The next write panics, like a buggy storage would.
    pub(crate) fn panic_on_next_write(&self) {
        self.hooks.panic_on_write.store(true, Ordering::SeqCst);
    }

    /// The next fsync the log's background syncer thread makes panics.
    pub(crate) fn panic_on_next_syncer_sync(&self) {
        self.hooks
            .panic_on_syncer_sync
            .store(true, Ordering::SeqCst);
    }
}

impl Hooks {
    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn before_sync(&self) {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        if thread::current().name() == Some("tidelog-syncer")
            && let Ok(link) = std::fs::read_link("/proc/thread-self")
            && let Some(tid) = link.file_name().and_then(|t| t.to_str())
            && let Ok(mut slot) = self.syncer_tid.lock()
        {
            *slot = Some(tid.to_owned());
        }
        if thread::current().name() == Some("tidelog-syncer")
            && self.panic_on_syncer_sync.swap(false, Ordering::SeqCst)
        {
            panic!("injected panic in sync_data on the syncer thread");
        }
        let mut gate = self.gate();
        if gate.armed == 0 {
            return;
        }
        gate.armed -= 1;
        let generation = gate.generation;
        if let Some(entered) = &gate.entered {
            let _ = entered.send(());
        }
        while gate.generation == generation {
            gate = self
                .opened
                .wait(gate)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn release(&self) {
        let mut gate = self.gate();
        gate.armed = 0;
        gate.generation += 1;
        gate.entered = None;
        self.opened.notify_all();
    }
}

/// Fsyncs held by [`HookedStorage::hold_syncs`]; dropping it releases them, so a failing test
/// does not leave a thread stuck at the gate.
#[derive(Debug)]
pub(crate) struct HeldSyncs {
    hooks: Arc<Hooks>,
    entered: mpsc::Receiver<()>,
    released: bool,
}

impl HeldSyncs {
    /// Waits until a held fsync has arrived at the gate (bounded generously, so a scenario that
    /// never reaches it fails instead of hanging).
    pub(crate) fn wait_entered(&self) {
        self.entered
            .recv_timeout(Duration::from_secs(60))
            .expect("an fsync arrived at the gate");
    }

    /// Lets every held fsync go on.
    pub(crate) fn release(mut self) {
        self.released = true;
        self.hooks.release();
    }
}

impl Drop for HeldSyncs {
    fn drop(&mut self) {
        if !self.released {
            self.hooks.release();
        }
    }
}

impl Storage for HookedStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let inner = self.inner.open(path, mode)?;
        Ok(Box::new(HookedFile {
            inner,
            hooks: Arc::clone(&self.hooks),
        }))
    }

    fn create(&self, path: &Path, how: OpenMode, mode: u32) -> io::Result<Box<dyn StorageFile>> {
        let inner = self.inner.create(path, how, mode)?;
        Ok(Box::new(HookedFile {
            inner,
            hooks: Arc::clone(&self.hooks),
        }))
    }

    fn create_dir_all_with_mode(&self, dir: &Path, mode: u32) -> io::Result<()> {
        self.inner.create_dir_all_with_mode(dir, mode)
    }

    fn mode(&self, path: &Path) -> io::Result<Option<u32>> {
        self.inner.mode(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
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
struct HookedFile {
    inner: Box<dyn StorageFile>,
    hooks: Arc<Hooks>,
}

impl StorageFile for HookedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let reads = &self.hooks.reads;
        reads.largest.fetch_max(buf.len(), Ordering::SeqCst);
        let n = self.inner.read_at(buf, offset)?;
        reads.total.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        if self.hooks.panic_on_write.swap(false, Ordering::SeqCst) {
            panic!("injected panic in write_at");
        }
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
        self.hooks.before_sync();
        self.inner.sync_data()
    }
}

/// What the files of a [`HookedStorage`] were asked to read.
#[derive(Debug, Default)]
pub(crate) struct ReadStats {
    /// The largest buffer handed to a single `read_at`.
    largest: AtomicUsize,
    /// Bytes returned by every `read_at`.
    total: AtomicU64,
}

impl ReadStats {
    pub(crate) fn reset(&self) {
        self.largest.store(0, Ordering::SeqCst);
        self.total.store(0, Ordering::SeqCst);
    }

    pub(crate) fn largest(&self) -> u64 {
        self.largest.load(Ordering::SeqCst) as u64
    }

    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }
}
