//! The I/O layer: every byte tidelog reads or writes goes through [`Storage`].
//!
//! A log never touches `std::fs` directly. It holds an `Arc<dyn Storage>` and asks it to open
//! files, list and rename directory entries, and make those changes durable. That one seam lets
//! the same engine run on:
//!
//! - [`StdStorage`], the real file system (the default);
//! - [`MemStorage`], an in-memory file system that keeps durable and unsynced bytes apart and can
//!   [`crash`](MemStorage::crash), which is how the crash guarantees are tested;
//! - [`FaultyStorage`], a wrapper that injects failed writes, failed fsyncs, short writes and a
//!   full disk into any other storage.
//!
//! Paths given to a storage are the paths the log was opened with, joined with file names; a
//! storage interprets them as it likes (the in-memory one keeps them as keys).

mod faulty;
mod mem;
mod modes;
mod std_fs;

pub(crate) use modes::WithModes;
pub(crate) use std_fs::LOCK_FILE;

use std::ffi::OsString;
use std::fmt::Debug;
use std::io;
use std::path::Path;

pub use faulty::{FaultPlan, FaultyStorage, Op};
pub use mem::{CrashMode, MemStorage};
pub use std_fs::StdStorage;

/// How [`Storage::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// An existing file, for reading only.
    ReadOnly,
    /// An existing file, for reading and writing.
    ReadWrite,
    /// A new file; fails with [`io::ErrorKind::AlreadyExists`] if the path exists.
    CreateNew,
    /// A file for reading and writing, created if missing and emptied if present.
    Truncate,
}

/// A file system as tidelog needs it: files plus the directory operations that segment
/// creation, roll, checkpoint and recovery depend on.
///
/// Implementations must be safe to share between threads. Changes to a directory (create,
/// rename, remove) are only guaranteed to survive a crash after [`Storage::sync_dir`] on that
/// directory; changes to a file's bytes only after [`StorageFile::sync_data`].
pub trait Storage: Send + Sync + Debug + 'static {
    /// Opens the file at `path` in the given mode.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] for a missing file in the `ReadOnly`/`ReadWrite` modes,
    /// [`io::ErrorKind::AlreadyExists`] for an existing one in `CreateNew`, or any I/O error.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>>;

    /// Like [`Storage::open`] in a creating mode ([`OpenMode::CreateNew`] or
    /// [`OpenMode::Truncate`]), giving a file it creates the permission bits `mode` (on Unix,
    /// less the process's umask). A file that exists keeps its bits. Every file tidelog creates
    /// is created through this, so a storage can enforce or check the modes; the default
    /// ignores `mode`, and a storage that wraps another should forward it.
    ///
    /// # Errors
    /// As [`Storage::open`].
    fn create(&self, path: &Path, how: OpenMode, mode: u32) -> io::Result<Box<dyn StorageFile>> {
        let _ = mode;
        self.open(path, how)
    }

    /// Like [`Storage::create_dir_all`], giving each directory it creates the permission bits
    /// `mode` (on Unix, less the process's umask); existing ones keep theirs. The default ignores
    /// `mode`; a storage that wraps another should forward it.
    ///
    /// # Errors
    /// Any I/O error.
    fn create_dir_all_with_mode(&self, dir: &Path, mode: u32) -> io::Result<()> {
        let _ = mode;
        self.create_dir_all(dir)
    }

    /// The permission bits of the file or directory at `path`, or `None` where the storage has
    /// no such notion. The default says `None`.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] if nothing is there, or any I/O error.
    fn mode(&self, path: &Path) -> io::Result<Option<u32>> {
        let _ = path;
        Ok(None)
    }

    /// Lists the names of the entries of directory `dir` (files and subdirectories), in no
    /// particular order.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] if `dir` does not exist, or any I/O error.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;

    /// Renames `from` to `to`, replacing `to` if it exists.
    ///
    /// # Errors
    /// Any I/O error; [`io::ErrorKind::NotFound`] if `from` does not exist.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file at `path`.
    ///
    /// # Errors
    /// Any I/O error; [`io::ErrorKind::NotFound`] if it does not exist.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Creates `dir` and any missing parents.
    ///
    /// A created directory is an entry of its parent: like any other directory change, it is
    /// only guaranteed to survive a crash after [`Storage::sync_dir`] on the parent, and
    /// everything inside a directory that did not survive is lost with it. Making a new chain of
    /// directories durable takes a `sync_dir` of each new directory's parent.
    ///
    /// # Errors
    /// Any I/O error.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Makes every create, rename and remove done in `dir` so far durable.
    ///
    /// # Errors
    /// Any I/O error.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Takes an exclusive lock on the directory `dir`, held until the returned guard is dropped,
    /// so that two processes (or two `Log`s) never write one log.
    ///
    /// Dropping the guard must release the lock at once, even where copies of what holds it
    /// live on elsewhere (a child process holds a copy of every descriptor of its parent from
    /// `fork` until its `exec`), so that a log closed and opened again right away, in the same
    /// process or another one, finds the directory free.
    ///
    /// # Errors
    /// [`io::ErrorKind::WouldBlock`] if another holder has the lock, or any I/O error.
    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock>;
}

/// An open file of a [`Storage`]. Reads and writes are positional, so one handle can be shared
/// between threads without a cursor.
pub trait StorageFile: Send + Sync + Debug {
    /// Reads into `buf` from `offset`; returns how many bytes were read, which may be fewer than
    /// asked (0 at the end of the file).
    ///
    /// # Errors
    /// Any I/O error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes `buf` at `offset`; returns how many bytes were written, which may be fewer.
    ///
    /// # Errors
    /// Any I/O error.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;

    /// The current length of the file in bytes.
    ///
    /// # Errors
    /// Any I/O error.
    fn len(&self) -> io::Result<u64>;

    /// Whether the file is empty.
    ///
    /// # Errors
    /// Any I/O error.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Truncates or extends (with zeros) the file to `len` bytes.
    ///
    /// # Errors
    /// Any I/O error.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Allocates space so the file holds `len` bytes without growing later: the file is
    /// extended with zeros to `len` if shorter, and where the file system can, the blocks are
    /// reserved now, so later writes and their fsyncs need no allocation. The default does
    /// nothing (preallocation is an optimization, never required); a storage that wraps
    /// another should forward it, or the wrapped storage never preallocates.
    ///
    /// # Errors
    /// Any I/O error.
    fn allocate(&self, len: u64) -> io::Result<()> {
        let _ = len;
        Ok(())
    }

    /// Makes the file's bytes durable (`fdatasync`; `F_FULLFSYNC` on Apple platforms).
    ///
    /// # Errors
    /// Any I/O error. After a failed sync the state of the unsynced bytes is unknown: tidelog
    /// never retries a sync, it poisons the log.
    fn sync_data(&self) -> io::Result<()>;

    /// Reads exactly `buf.len()` bytes from `offset`, looping over short reads.
    ///
    /// # Errors
    /// [`io::ErrorKind::UnexpectedEof`] if the file ends first, or any I/O error.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("file ends before offset {}", offset + buf.len() as u64),
                    ));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads up to `buf.len()` bytes from `offset`, looping over short reads; returns fewer only
    /// at the end of the file.
    ///
    /// # Errors
    /// Any I/O error.
    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Writes all of `buf` at `offset`, looping over short writes.
    ///
    /// # Errors
    /// [`io::ErrorKind::WriteZero`] if the storage accepts no bytes, or any I/O error.
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("storage accepted no bytes at offset {offset}"),
                    ));
                }
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// An exclusive lock on a log directory, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _guard: Box<dyn Debug + Send + Sync>,
}

impl DirLock {
    /// Wraps whatever keeps the lock held; dropping it must release the lock.
    pub fn new(guard: Box<dyn Debug + Send + Sync>) -> Self {
        Self { _guard: guard }
    }
}
