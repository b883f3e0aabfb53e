//! [`StdStorage`]: the real file system, through `std::fs`. The only module allowed to touch it.
#![expect(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "this module is the one place that wraps std::fs"
)]

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use super::{DirLock, OpenMode, Storage, StorageFile};

/// The real file system.
///
/// `sync_data` is `fdatasync` on Linux and `F_FULLFSYNC` on Apple platforms (the standard
/// library's `File::sync_data`); `sync_dir` opens the directory and fsyncs it. Directory locks
/// are advisory `flock`-style locks on a `LOCK` file inside the directory. Dropping the guard
/// unlocks the file before it closes it: the lock belongs to the open file description, which
/// child processes started meanwhile share until they `exec`, so closing alone could leave the
/// directory locked for a moment after the log is gone.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdStorage;

impl StdStorage {
    /// The real file system.
    pub fn new() -> Self {
        Self
    }
}

/// The name of the lock file [`StdStorage::lock_dir`] creates in a log directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

#[derive(Debug)]
struct StdFile(File);

/// The open lock file of a locked directory; dropping it unlocks the file, then closes it.
///
/// The explicit unlock matters: the lock belongs to the open file description, which a child
/// process started from another thread shares from `fork` until its `exec` closes its copy of
/// the descriptor. Closing ours alone would leave the directory locked until then.
#[derive(Debug)]
struct LockFile(File);

impl Drop for LockFile {
    fn drop(&mut self) {
        // Nothing to do about a failure: the lock goes with the last copy of the descriptor.
        let _ = self.0.unlock();
    }
}

impl Storage for StdStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        match mode {
            OpenMode::ReadOnly => options.read(true),
            OpenMode::ReadWrite => options.read(true).write(true),
            OpenMode::CreateNew => options.read(true).write(true).create_new(true),
            OpenMode::Truncate => options.read(true).write(true).create(true).truncate(true),
        };
        Ok(Box::new(StdFile(options.open(path)?)))
    }

    fn create(&self, path: &Path, how: OpenMode, mode: u32) -> io::Result<Box<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        match how {
            OpenMode::CreateNew => options.create_new(true),
            OpenMode::Truncate => options.create(true).truncate(true),
            OpenMode::ReadOnly | OpenMode::ReadWrite => return self.open(path, how),
        };
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        Ok(Box::new(StdFile(options.open(path)?)))
    }

    fn create_dir_all_with_mode(&self, dir: &Path, mode: u32) -> io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
        #[cfg(not(unix))]
        let _ = mode;
        builder.create(dir)
    }

    fn mode(&self, path: &Path) -> io::Result<Option<u32>> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        {
            Ok(Some(
                std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
            ))
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            Ok(None)
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(dir)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            // Directory handles cannot be fsynced here; metadata is journaled by the OS.
            let _ = dir;
            Ok(())
        }
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        // Nobody else needs the lock file; it holds nothing.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(dir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock::new(Box::new(LockFile(file)))),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the directory is locked by another open log",
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

impl StorageFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_at(&self.0, buf, offset)
        }
        #[cfg(windows)]
        {
            std::os::windows::fs::FileExt::seek_read(&self.0, buf, offset)
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::write_at(&self.0, buf, offset)
        }
        #[cfg(windows)]
        {
            std::os::windows::fs::FileExt::seek_write(&self.0, buf, offset)
        }
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        if self.len()? >= len {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        {
            // Mode 0: allocate and extend the size, so writes inside never change it.
            let flags = rustix::fs::FallocateFlags::empty();
            match rustix::fs::fallocate(&self.0, flags, 0, len) {
                Ok(()) => return Ok(()),
                // Not every file system can (tmpfs before 2.6.x, some network file systems).
                Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.0.set_len(len)
    }
}
