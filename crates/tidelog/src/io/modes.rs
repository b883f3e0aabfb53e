//! [`WithModes`]: the storage a log works through, which gives every file and directory the log
//! creates the log's permission bits ([`Options::dir_mode`](crate::Options::dir_mode),
//! [`Options::file_mode`](crate::Options::file_mode)).
//!
//! The log's code creates files with [`Storage::open`] in a creating mode and directories with
//! [`Storage::create_dir_all`]; this wrapper turns each into the storage's mode-taking call, so
//! no creation can forget the modes. Files and directories that exist keep theirs.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::{DirLock, OpenMode, Storage, StorageFile};

/// A storage that creates with the log's modes; see the module docs.
#[derive(Debug)]
pub(crate) struct WithModes {
    inner: Arc<dyn Storage>,
    dir_mode: u32,
    file_mode: u32,
}

impl WithModes {
    pub(crate) fn new(inner: Arc<dyn Storage>, dir_mode: u32, file_mode: u32) -> Self {
        Self {
            inner,
            dir_mode,
            file_mode,
        }
    }
}

impl Storage for WithModes {
    fn open(&self, path: &Path, how: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        match how {
            OpenMode::CreateNew | OpenMode::Truncate => {
                self.inner.create(path, how, self.file_mode)
            }
            OpenMode::ReadOnly | OpenMode::ReadWrite => self.inner.open(path, how),
        }
    }

    fn create(&self, path: &Path, how: OpenMode, mode: u32) -> io::Result<Box<dyn StorageFile>> {
        self.inner.create(path, how, mode)
    }

    fn create_dir_all_with_mode(&self, dir: &Path, mode: u32) -> io::Result<()> {
        self.inner.create_dir_all_with_mode(dir, mode)
    }

    fn mode(&self, path: &Path) -> io::Result<Option<u32>> {
        self.inner.mode(path)
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
        self.inner.create_dir_all_with_mode(dir, self.dir_mode)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        self.inner.lock_dir(dir)
    }
}
