//! [`FaultyStorage`]: wraps any storage and injects the faults a [`FaultPlan`] describes.
//!
//! Faults belong to one instance (no global fail points), so tests that use them run in
//! parallel.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{DirLock, OpenMode, Storage, StorageFile};

/// A kind of storage operation, as counted and failed by [`FaultyStorage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Storage::open`].
    Open,
    /// [`StorageFile::read_at`].
    Read,
    /// [`StorageFile::write_at`].
    Write,
    /// [`StorageFile::set_len`] and [`StorageFile::allocate`].
    SetLen,
    /// [`StorageFile::sync_data`].
    SyncData,
    /// [`Storage::list`].
    List,
    /// [`Storage::rename`].
    Rename,
    /// [`Storage::remove_file`].
    Remove,
    /// [`Storage::create_dir_all`].
    CreateDir,
    /// [`Storage::sync_dir`].
    SyncDir,
}

impl Op {
    /// Whether the operation changes the storage (and so counts for
    /// [`FaultPlan::fail_after`]).
    pub fn is_mutating(self) -> bool {
        !matches!(self, Op::Read | Op::List)
    }
}

/// Which faults a [`FaultyStorage`] injects. Build it with the chained methods; the default
/// plan injects nothing.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    fail_nth: Vec<(Op, u64)>,
    fail_after: Option<u64>,
    short_writes: Option<usize>,
    short_reads: Option<usize>,
    disk_full_after: Option<u64>,
}

impl FaultPlan {
    /// A plan that injects nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `n`th call (counting from 1) of `op` fails.
    #[must_use]
    pub fn fail_nth(mut self, op: Op, n: u64) -> Self {
        self.fail_nth.push((op, n));
        self
    }

    /// Every mutating operation after the first `n` fails, like a machine that dies after `n`
    /// steps (reads keep working, so the dying process can be observed).
    #[must_use]
    pub fn fail_after(mut self, n: u64) -> Self {
        self.fail_after = Some(n);
        self
    }

    /// Every write stores at most `max` bytes and reports the short count.
    #[must_use]
    pub fn short_writes(mut self, max: usize) -> Self {
        self.short_writes = Some(max.max(1));
        self
    }

    /// Every read returns at most `max` bytes.
    #[must_use]
    pub fn short_reads(mut self, max: usize) -> Self {
        self.short_reads = Some(max.max(1));
        self
    }

    /// Once `bytes` bytes in all have been written, writes fail with
    /// [`io::ErrorKind::StorageFull`] (the write that crosses the limit is cut short first).
    #[must_use]
    pub fn disk_full_after(mut self, bytes: u64) -> Self {
        self.disk_full_after = Some(bytes);
        self
    }
}

#[derive(Debug, Default)]
struct FaultState {
    plan: FaultPlan,
    counts: HashMap<Op, u64>,
    mutating: u64,
    written: u64,
    injected: u64,
}

impl FaultState {
    fn check(&mut self, op: Op) -> io::Result<()> {
        let n = {
            let count = self.counts.entry(op).or_insert(0);
            *count += 1;
            *count
        };
        let mut fail = self.plan.fail_nth.iter().any(|&(o, k)| o == op && k == n);
        if op.is_mutating() {
            self.mutating += 1;
            fail |= self
                .plan
                .fail_after
                .is_some_and(|limit| self.mutating > limit);
        }
        if fail {
            self.injected += 1;
            return Err(io::Error::other(format!(
                "injected fault: {op:?} call #{n}"
            )));
        }
        Ok(())
    }
}

/// A [`Storage`] that forwards to another one and injects the faults of a [`FaultPlan`].
/// Cloning gives another handle on the same plan and counters.
#[derive(Debug, Clone)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    state: Arc<Mutex<FaultState>>,
}

impl FaultyStorage {
    /// Wraps `inner` with the faults of `plan`.
    pub fn new(inner: Arc<dyn Storage>, plan: FaultPlan) -> Self {
        let state = FaultState {
            plan,
            ..FaultState::default()
        };
        Self {
            inner,
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn state(&self) -> MutexGuard<'_, FaultState> {
        lock(&self.state)
    }

    /// Replaces the plan and resets every counter.
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.state() = FaultState {
            plan,
            ..FaultState::default()
        };
    }

    /// How many calls of `op` were made so far (failed ones included).
    pub fn count(&self, op: Op) -> u64 {
        self.state().counts.get(&op).copied().unwrap_or(0)
    }

    /// How many mutating operations were made so far (failed ones included).
    pub fn mutating_ops(&self) -> u64 {
        self.state().mutating
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.state().injected
    }

    /// How many bytes writes have stored so far (what [`FaultPlan::disk_full_after`] counts).
    pub fn bytes_written(&self) -> u64 {
        self.state().written
    }
}

fn lock(state: &Mutex<FaultState>) -> MutexGuard<'_, FaultState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Storage for FaultyStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        if mode == OpenMode::ReadOnly {
            // Opening for reading changes nothing; it is neither counted nor failed.
        } else {
            self.state().check(Op::Open)?;
        }
        let inner = self.inner.open(path, mode)?;
        Ok(Box::new(FaultyFile {
            inner,
            state: Arc::clone(&self.state),
        }))
    }

    fn create(&self, path: &Path, how: OpenMode, mode: u32) -> io::Result<Box<dyn StorageFile>> {
        self.state().check(Op::Open)?;
        let inner = self.inner.create(path, how, mode)?;
        Ok(Box::new(FaultyFile {
            inner,
            state: Arc::clone(&self.state),
        }))
    }

    fn create_dir_all_with_mode(&self, dir: &Path, mode: u32) -> io::Result<()> {
        self.state().check(Op::CreateDir)?;
        self.inner.create_dir_all_with_mode(dir, mode)
    }

    fn mode(&self, path: &Path) -> io::Result<Option<u32>> {
        self.inner.mode(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.state().check(Op::List)?;
        self.inner.list(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.state().check(Op::Rename)?;
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.state().check(Op::Remove)?;
        self.inner.remove_file(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.state().check(Op::CreateDir)?;
        self.inner.create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.state().check(Op::SyncDir)?;
        self.inner.sync_dir(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        self.inner.lock_dir(dir)
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn StorageFile>,
    state: Arc<Mutex<FaultState>>,
}

impl StorageFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let max = {
            let mut state = lock(&self.state);
            state.check(Op::Read)?;
            state.plan.short_reads.unwrap_or(usize::MAX)
        };
        let n = buf.len().min(max);
        self.inner.read_at(&mut buf[..n], offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let n = {
            let mut state = lock(&self.state);
            state.check(Op::Write)?;
            let mut n = buf.len().min(state.plan.short_writes.unwrap_or(usize::MAX));
            if let Some(limit) = state.plan.disk_full_after {
                let room = usize::try_from(limit.saturating_sub(state.written)).unwrap_or(n);
                if room == 0 && n > 0 {
                    state.injected += 1;
                    return Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "injected fault: no space left on device",
                    ));
                }
                n = n.min(room);
            }
            state.written += n as u64;
            n
        };
        self.inner.write_at(&buf[..n], offset)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        lock(&self.state).check(Op::SetLen)?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        lock(&self.state).check(Op::SyncData)?;
        self.inner.sync_data()
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        lock(&self.state).check(Op::SetLen)?;
        self.inner.allocate(len)
    }
}
