//! [`MemStorage`]: an in-memory file system that can crash.
//!
//! Every file keeps two images: the *live* bytes (what reads see) and the *durable* bytes (what
//! survives a crash), plus the list of writes made since the last `sync_data`. Directories keep a
//! live and a durable namespace plus the list of creates (of files and of directories), renames
//! and removes made since the last `sync_dir` of the directory they change.
//! [`MemStorage::crash`] throws away what a power loss could throw away and bumps a generation,
//! so every handle opened before the crash fails from then on, as if its process had died.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{DirLock, OpenMode, Storage, StorageFile};

/// What a [`MemStorage::crash`] keeps of the changes that were not made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write and every unsynced directory change is lost.
    DropUnsynced,
    /// A random prefix (chosen by `seed`) of the unsynced directory changes survives, and for
    /// each file a random prefix of its unsynced writes, the last one possibly cut short and
    /// possibly followed by garbage bytes: a torn write.
    Torn {
        /// Seed of the random choices, so a failing case can be replayed.
        seed: u64,
    },
    /// Each unsynced write survives or not on its own (chosen by `seed`), whole or cut short:
    /// later writes can reach the disk while earlier ones do not, as with a page cache that
    /// writes pages back in any order. Unsynced directory changes survive as a random prefix.
    Reordered {
        /// Seed of the random choices, so a failing case can be replayed.
        seed: u64,
    },
}

/// An in-memory [`Storage`] that keeps durable and unsynced bytes apart and can
/// [`crash`](Self::crash). Cloning gives another handle on the same file system.
///
/// # What survives a crash
///
/// - A file's bytes: those written before its last [`StorageFile::sync_data`] (plus what the
///   [`CrashMode`] keeps of later writes).
/// - A directory entry (a file created, renamed or removed, or a directory created): the change
///   survives once [`Storage::sync_dir`] ran on the directory that holds the entry after the
///   change was made (plus what the [`CrashMode`] keeps of later changes, in the order they
///   were made).
/// - Directories are entries of their parent like files: a directory made by
///   [`Storage::create_dir_all`] survives only once its parent was synced after the creation,
///   and `create_dir_all` creating several directories makes one such change in each missing
///   parent, outermost first. A directory that does not survive takes everything in it along,
///   even files that were synced and entries whose own directory was synced: they were
///   reachable only through it. Syncing a new directory and its parent works in either order;
///   what counts is that both happened before the crash.
/// - The root of a path (`/`) and the current directory of relative paths (`.`, or the empty
///   path) always exist: creating the root is durable at once, and `sync_dir` on the current
///   directory makes the changes of top-level relative entries durable.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    shared: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    next_inode: u64,
    inodes: HashMap<u64, MemFile>,
    live: BTreeMap<PathBuf, Node>,
    durable: BTreeMap<PathBuf, Node>,
    pending: Vec<DirOp>,
    locks: HashSet<PathBuf>,
    /// Permission bits given at creation: of files by inode, of directories by path. What is
    /// not here has the bits of a umask of 022 (`0o644`, `0o755`).
    file_modes: HashMap<u64, u32>,
    dir_modes: HashMap<PathBuf, u32>,
}

/// The bits a file created without a mode gets (a umask of 022).
const PLAIN_FILE_MODE: u32 = 0o644;
/// The bits a directory created without a mode gets (a umask of 022).
const PLAIN_DIR_MODE: u32 = 0o755;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    File(u64),
}

#[derive(Debug, Default)]
struct MemFile {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<FileOp>,
}

#[derive(Debug)]
enum FileOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug)]
enum DirOp {
    Create {
        path: PathBuf,
        inode: u64,
    },
    CreateDir {
        path: PathBuf,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        inode: u64,
    },
    Remove {
        path: PathBuf,
    },
}

impl DirOp {
    fn touches(&self, dir: &Path) -> bool {
        let dir = dir_key(dir);
        let in_dir = |p: &Path| p.parent().map(dir_key) == Some(dir);
        match self {
            DirOp::Create { path, .. } | DirOp::CreateDir { path } | DirOp::Remove { path } => {
                in_dir(path)
            }
            DirOp::Rename { from, to, .. } => in_dir(from) || in_dir(to),
        }
    }

    fn apply(&self, namespace: &mut BTreeMap<PathBuf, Node>) {
        match self {
            DirOp::Create { path, inode } => {
                namespace.insert(path.clone(), Node::File(*inode));
            }
            DirOp::CreateDir { path } => {
                namespace.insert(path.clone(), Node::Dir);
            }
            DirOp::Rename { from, to, inode } => {
                namespace.remove(from);
                namespace.insert(to.clone(), Node::File(*inode));
            }
            DirOp::Remove { path } => {
                namespace.remove(path);
            }
        }
    }
}

/// The current directory of relative paths, named `.` or by the empty path.
fn is_current_dir(dir: &Path) -> bool {
    dir.as_os_str().is_empty() || dir == Path::new(".")
}

/// `dir`, with the current directory always named `.`.
fn dir_key(dir: &Path) -> &Path {
    if is_current_dir(dir) {
        Path::new(".")
    } else {
        dir
    }
}

/// Whether every directory above `path` is in `namespace`, so that `path` can be reached.
fn reachable(namespace: &BTreeMap<PathBuf, Node>, path: &Path) -> bool {
    path.ancestors()
        .skip(1)
        .filter(|a| !is_current_dir(a))
        .all(|a| namespace.get(a) == Some(&Node::Dir))
}

fn apply_file_op(bytes: &mut Vec<u8>, op: &FileOp) {
    match op {
        FileOp::Write { offset, data } => write_into(bytes, *offset, data),
        FileOp::SetLen(len) => bytes.resize(to_usize(*len), 0),
    }
}

fn write_into(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = to_usize(offset);
    let end = start + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[start..end].copy_from_slice(data);
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// splitmix64: a small, well-mixed generator, enough to pick crash outcomes from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        crate::splitmix64(&mut self.0)
    }

    /// A number in `0..=max`.
    fn upto(&mut self, max: usize) -> usize {
        to_usize(self.next() % (max as u64 + 1))
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

impl MemStorage {
    /// An empty in-memory file system.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock can only come from a test assertion elsewhere; the
        // state itself is never left half-updated, so keep going.
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Simulates a power loss: keeps what `mode` says survives of the unsynced changes, drops
    /// the rest, releases every directory lock, and makes every handle opened before the crash
    /// fail with an error from now on.
    pub fn crash(&self, mode: CrashMode) {
        let mut state = self.state();
        let state = &mut *state;
        state.generation += 1;
        state.locks.clear();
        let mut rng = match mode {
            CrashMode::DropUnsynced => None,
            CrashMode::Torn { seed } | CrashMode::Reordered { seed } => Some(Rng(seed)),
        };
        let reorder = matches!(mode, CrashMode::Reordered { .. });
        let keep_dir_ops = rng.as_mut().map_or(0, |r| r.upto(state.pending.len()));
        for op in state.pending.drain(..).take(keep_dir_ops) {
            op.apply(&mut state.durable);
        }
        // Entries under a directory that did not survive are lost with it.
        let unreachable: Vec<PathBuf> = state
            .durable
            .keys()
            .filter(|p| !reachable(&state.durable, p))
            .cloned()
            .collect();
        for path in unreachable {
            state.durable.remove(&path);
        }
        state.live = state.durable.clone();
        let referenced: HashSet<u64> = state
            .durable
            .values()
            .filter_map(|n| match n {
                Node::File(inode) => Some(*inode),
                Node::Dir => None,
            })
            .collect();
        state.inodes.retain(|inode, _| referenced.contains(inode));
        let mut inodes: Vec<_> = state.inodes.iter_mut().collect();
        inodes.sort_by_key(|(inode, _)| **inode);
        for (_, file) in inodes {
            if let (Some(rng), true) = (rng.as_mut(), reorder) {
                for op in file.pending.drain(..) {
                    match op {
                        FileOp::Write { offset, data } => match rng.upto(3) {
                            0 => {}
                            1 => {
                                let cut = rng.upto(data.len());
                                write_into(&mut file.durable, offset, &data[..cut]);
                            }
                            _ => write_into(&mut file.durable, offset, &data),
                        },
                        // Size changes are metadata: journaled in order, kept.
                        set_len @ FileOp::SetLen(_) => apply_file_op(&mut file.durable, &set_len),
                    }
                }
            } else if let Some(rng) = rng.as_mut() {
                let keep = rng.upto(file.pending.len());
                let mut ops = file.pending.drain(..);
                for op in ops.by_ref().take(keep) {
                    apply_file_op(&mut file.durable, &op);
                }
                if let Some(FileOp::Write { offset, data }) = ops.next() {
                    let cut = rng.upto(data.len());
                    write_into(&mut file.durable, offset, &data[..cut]);
                    let room = data.len() - cut;
                    if room > 0 && rng.upto(1) == 1 {
                        let garbage: Vec<u8> = (0..rng.upto(room.min(64) - 1) + 1)
                            .map(|_| rng.next() as u8)
                            .collect();
                        write_into(&mut file.durable, offset + cut as u64, &garbage);
                    }
                }
            }
            file.pending.clear();
            file.live = file.durable.clone();
        }
    }

    /// The live bytes of the file at `path`, or `None` if there is no such file.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state();
        match state.live.get(path) {
            Some(Node::File(inode)) => state.inodes.get(inode).map(|f| f.live.clone()),
            _ => None,
        }
    }

    /// The bytes of the file at `path` that would survive a crash, or `None` if the file itself
    /// would not.
    pub fn durable_file(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state();
        if !reachable(&state.durable, path) {
            return None;
        }
        match state.durable.get(path) {
            Some(Node::File(inode)) => state.inodes.get(inode).map(|f| f.durable.clone()),
            _ => None,
        }
    }

    fn handle(&self, inode: u64, generation: u64, writable: bool) -> Box<dyn StorageFile> {
        Box::new(MemHandle {
            storage: self.clone(),
            inode,
            generation,
            writable,
        })
    }
}

fn parent_is_dir(state: &State, path: &Path) -> io::Result<()> {
    match path.parent() {
        None => Ok(()),
        Some(p) if is_current_dir(p) => Ok(()),
        Some(p) => match state.live.get(p) {
            Some(Node::Dir) => Ok(()),
            _ => Err(not_found(p)),
        },
    }
}

impl Storage for MemStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.state();
        parent_is_dir(&state, path)?;
        let generation = state.generation;
        let existing = state.live.get(path).copied();
        let inode = match (existing, mode) {
            (Some(Node::Dir), _) => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{} is a directory", path.display()),
                ));
            }
            (Some(Node::File(_)), OpenMode::CreateNew) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} already exists", path.display()),
                ));
            }
            (Some(Node::File(inode)), OpenMode::Truncate) => {
                if let Some(file) = state.inodes.get_mut(&inode) {
                    file.live.clear();
                    file.pending.push(FileOp::SetLen(0));
                }
                inode
            }
            (Some(Node::File(inode)), _) => inode,
            (None, OpenMode::ReadOnly | OpenMode::ReadWrite) => return Err(not_found(path)),
            (None, OpenMode::CreateNew | OpenMode::Truncate) => {
                let inode = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(inode, MemFile::default());
                state.live.insert(path.to_path_buf(), Node::File(inode));
                state.pending.push(DirOp::Create {
                    path: path.to_path_buf(),
                    inode,
                });
                inode
            }
        };
        drop(state);
        Ok(self.handle(inode, generation, mode != OpenMode::ReadOnly))
    }

    fn create(&self, path: &Path, how: OpenMode, mode: u32) -> io::Result<Box<dyn StorageFile>> {
        let existed = self.state().live.contains_key(path);
        let file = self.open(path, how)?;
        let mut state = self.state();
        if !existed && let Some(Node::File(inode)) = state.live.get(path).copied() {
            state.file_modes.insert(inode, mode);
        }
        Ok(file)
    }

    fn create_dir_all_with_mode(&self, dir: &Path, mode: u32) -> io::Result<()> {
        let missing: Vec<PathBuf> = {
            let state = self.state();
            dir.ancestors()
                .filter(|p| !is_current_dir(p) && p.parent().is_some())
                .filter(|p| !state.live.contains_key(*p))
                .map(Path::to_path_buf)
                .collect()
        };
        self.create_dir_all(dir)?;
        let mut state = self.state();
        for created in missing {
            state.dir_modes.insert(created, mode);
        }
        Ok(())
    }

    fn mode(&self, path: &Path) -> io::Result<Option<u32>> {
        let state = self.state();
        match state.live.get(path) {
            Some(Node::File(inode)) => Ok(Some(
                state
                    .file_modes
                    .get(inode)
                    .copied()
                    .unwrap_or(PLAIN_FILE_MODE),
            )),
            Some(Node::Dir) => Ok(Some(
                state.dir_modes.get(path).copied().unwrap_or(PLAIN_DIR_MODE),
            )),
            None if is_current_dir(path) || path.parent().is_none() => Ok(Some(PLAIN_DIR_MODE)),
            None => Err(not_found(path)),
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let state = self.state();
        if state.live.get(dir) != Some(&Node::Dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(OsString::from))
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        parent_is_dir(&state, to)?;
        let inode = match state.live.get(from) {
            Some(Node::File(inode)) => *inode,
            Some(Node::Dir) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "renaming directories is not supported by MemStorage",
                ));
            }
            None => return Err(not_found(from)),
        };
        if state.live.get(to) == Some(&Node::Dir) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", to.display()),
            ));
        }
        state.live.remove(from);
        state.live.insert(to.to_path_buf(), Node::File(inode));
        state.pending.push(DirOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            inode,
        });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        match state.live.get(path) {
            Some(Node::File(_)) => {
                state.live.remove(path);
                state.pending.push(DirOp::Remove {
                    path: path.to_path_buf(),
                });
                Ok(())
            }
            Some(Node::Dir) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        let mut missing = Vec::new();
        for ancestor in dir.ancestors().filter(|p| !is_current_dir(p)) {
            match state.live.get(ancestor) {
                Some(Node::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{} is a file", ancestor.display()),
                    ));
                }
                Some(Node::Dir) => {}
                None => missing.push(ancestor),
            }
        }
        // Outermost first, so a crash that keeps a prefix of the changes keeps parents first.
        for created in missing.into_iter().rev() {
            state.live.insert(created.to_path_buf(), Node::Dir);
            if created.parent().is_none() {
                // The root always exists.
                state.durable.insert(created.to_path_buf(), Node::Dir);
            } else {
                state.pending.push(DirOp::CreateDir {
                    path: created.to_path_buf(),
                });
            }
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        let state = &mut *state;
        if !is_current_dir(dir) && state.live.get(dir) != Some(&Node::Dir) {
            return Err(not_found(dir));
        }
        let mut rest = Vec::with_capacity(state.pending.len());
        for op in state.pending.drain(..) {
            if op.touches(dir) {
                op.apply(&mut state.durable);
            } else {
                rest.push(op);
            }
        }
        state.pending = rest;
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        let mut state = self.state();
        if state.live.get(dir) != Some(&Node::Dir) {
            return Err(not_found(dir));
        }
        if !state.locks.insert(dir.to_path_buf()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the directory is locked by another open log",
            ));
        }
        let guard = MemLock {
            storage: self.clone(),
            dir: dir.to_path_buf(),
            generation: state.generation,
        };
        Ok(DirLock::new(Box::new(guard)))
    }
}

#[derive(Debug)]
struct MemLock {
    storage: MemStorage,
    dir: PathBuf,
    generation: u64,
}

impl Drop for MemLock {
    fn drop(&mut self) {
        let mut state = self.storage.state();
        if state.generation == self.generation {
            state.locks.remove(&self.dir);
        }
    }
}

#[derive(Debug)]
struct MemHandle {
    storage: MemStorage,
    inode: u64,
    generation: u64,
    writable: bool,
}

impl MemHandle {
    fn with_file<T>(&self, write: bool, f: impl FnOnce(&mut MemFile) -> T) -> io::Result<T> {
        if write && !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "file was opened read-only",
            ));
        }
        let mut state = self.storage.state();
        if state.generation != self.generation {
            return Err(io::Error::other("the storage crashed; this handle is dead"));
        }
        let file = state
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::other("file vanished from MemStorage"))?;
        Ok(f(file))
    }
}

impl StorageFile for MemHandle {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with_file(false, |file| {
            let start = to_usize(offset).min(file.live.len());
            let n = buf.len().min(file.live.len() - start);
            buf[..n].copy_from_slice(&file.live[start..start + n]);
            n
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.with_file(true, |file| {
            write_into(&mut file.live, offset, buf);
            file.pending.push(FileOp::Write {
                offset,
                data: buf.to_vec(),
            });
            buf.len()
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.with_file(false, |file| file.live.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with_file(true, |file| {
            file.live.resize(to_usize(len), 0);
            file.pending.push(FileOp::SetLen(len));
        })
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.with_file(true, |file| {
            if (file.live.len() as u64) < len {
                file.live.resize(to_usize(len), 0);
                file.pending.push(FileOp::SetLen(len));
            }
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with_file(false, |file| {
            for op in file.pending.drain(..) {
                apply_file_op(&mut file.durable, &op);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Creates `dir` (under the root) durably.
    fn new_dir(storage: &MemStorage, dir: &str) {
        storage.create_dir_all(Path::new(dir)).unwrap();
        storage.sync_dir(Path::new("/")).unwrap();
    }

    fn write(storage: &MemStorage, path: &str, data: &[u8]) -> Box<dyn StorageFile> {
        let file = storage.open(Path::new(path), OpenMode::Truncate).unwrap();
        file.write_all_at(data, 0).unwrap();
        file
    }

    #[test]
    fn unsynced_bytes_and_entries_are_lost_on_crash() {
        let storage = MemStorage::new();
        new_dir(&storage, "/d");
        let a = write(&storage, "/d/a", b"hello");
        a.sync_data().unwrap();
        storage.sync_dir(Path::new("/d")).unwrap();
        a.write_all_at(b" world", 5).unwrap();
        let _b = write(&storage, "/d/b", b"unsynced entry");
        storage.crash(CrashMode::DropUnsynced);
        assert_eq!(storage.read_file(Path::new("/d/a")).unwrap(), b"hello");
        assert!(storage.read_file(Path::new("/d/b")).is_none());
        assert!(
            a.read_at(&mut [0; 1], 0).is_err(),
            "pre-crash handles are dead"
        );
    }

    #[test]
    fn synced_file_without_dir_sync_vanishes() {
        let storage = MemStorage::new();
        new_dir(&storage, "/d");
        let a = write(&storage, "/d/a", b"data");
        a.sync_data().unwrap();
        storage.crash(CrashMode::DropUnsynced);
        assert!(storage.read_file(Path::new("/d/a")).is_none());
    }

    #[test]
    fn rename_is_durable_only_after_dir_sync() {
        let storage = MemStorage::new();
        new_dir(&storage, "/d");
        let a = write(&storage, "/d/a.tmp", b"x");
        a.sync_data().unwrap();
        storage.sync_dir(Path::new("/d")).unwrap();
        storage
            .rename(Path::new("/d/a.tmp"), Path::new("/d/a"))
            .unwrap();
        storage.crash(CrashMode::DropUnsynced);
        assert!(storage.read_file(Path::new("/d/a")).is_none());
        assert_eq!(storage.read_file(Path::new("/d/a.tmp")).unwrap(), b"x");
    }

    /// A file `/d/a` holding "0123" durably, then "4567" and "89ab" written but not synced.
    fn synced_then_two_writes() -> MemStorage {
        let storage = MemStorage::new();
        new_dir(&storage, "/d");
        let a = write(&storage, "/d/a", b"0123");
        a.sync_data().unwrap();
        storage.sync_dir(Path::new("/d")).unwrap();
        a.write_all_at(b"4567", 4).unwrap();
        a.write_all_at(b"89ab", 8).unwrap();
        storage
    }

    #[test]
    fn torn_crash_keeps_a_prefix_of_unsynced_writes() {
        for seed in 0..200 {
            let storage = synced_then_two_writes();
            storage.crash(CrashMode::Torn { seed });
            let got = storage.read_file(Path::new("/d/a")).unwrap();
            assert!(
                got.starts_with(b"0123"),
                "seed {seed}: synced bytes survive"
            );
            assert!(got.len() <= 12, "seed {seed}: nothing past the last write");
            let intact = got
                .iter()
                .zip(b"0123456789ab")
                .take_while(|(a, b)| a == b)
                .count();
            // Anything after the intact prefix is garbage from the one torn write: at most 64 bytes.
            assert!(got.len() - intact <= 64, "seed {seed}");
        }
    }

    #[test]
    fn reordered_crash_can_keep_a_later_write_without_an_earlier_one() {
        let mut seen_hole = false;
        for seed in 0..100 {
            let storage = synced_then_two_writes();
            storage.crash(CrashMode::Reordered { seed });
            let got = storage.read_file(Path::new("/d/a")).unwrap();
            assert!(
                got.starts_with(b"0123"),
                "seed {seed}: synced bytes survive"
            );
            seen_hole |= got.len() == 12 && got[4..8] != *b"4567";
        }
        assert!(
            seen_hole,
            "some seed keeps the second write but not the first"
        );
    }

    #[test]
    fn lock_is_exclusive_and_released_on_drop_and_crash() {
        let storage = MemStorage::new();
        new_dir(&storage, "/d");
        let lock = storage.lock_dir(Path::new("/d")).unwrap();
        assert_eq!(
            storage.lock_dir(Path::new("/d")).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(lock);
        let lock = storage.lock_dir(Path::new("/d")).unwrap();
        storage.crash(CrashMode::DropUnsynced);
        let _again = storage.lock_dir(Path::new("/d")).unwrap();
        drop(lock); // a stale guard must not release the new holder's lock
        assert!(storage.lock_dir(Path::new("/d")).is_err());
    }

    #[test]
    fn created_dir_without_parent_sync_vanishes_with_its_synced_contents() {
        let storage = MemStorage::new();
        storage.create_dir_all(Path::new("/d")).unwrap();
        let a = write(&storage, "/d/a", b"data");
        a.sync_data().unwrap();
        storage.sync_dir(Path::new("/d")).unwrap();
        assert!(
            storage.durable_file(Path::new("/d/a")).is_none(),
            "reachable only through a directory that is not durable"
        );
        storage.crash(CrashMode::DropUnsynced);
        assert!(storage.read_file(Path::new("/d/a")).is_none());
        assert!(
            storage.list(Path::new("/d")).is_err(),
            "the directory is gone"
        );
        assert!(storage.list(Path::new("/")).unwrap().is_empty());
        // Created again, it holds nothing of its earlier life.
        new_dir(&storage, "/d");
        storage.sync_dir(Path::new("/d")).unwrap();
        storage.crash(CrashMode::DropUnsynced);
        assert!(storage.list(Path::new("/d")).unwrap().is_empty());
    }

    #[test]
    fn nested_dirs_need_each_parent_synced() {
        let storage = MemStorage::new();
        storage.create_dir_all(Path::new("/a/b/c")).unwrap();
        storage.sync_dir(Path::new("/")).unwrap();
        storage.sync_dir(Path::new("/a/b")).unwrap(); // makes c an entry of b, but not b of a
        storage.crash(CrashMode::DropUnsynced);
        assert!(storage.list(Path::new("/a")).unwrap().is_empty());

        // Every link synced, deepest first: the whole chain and the file survive.
        storage.create_dir_all(Path::new("/a/b/c")).unwrap();
        let f = write(&storage, "/a/b/c/f", b"x");
        f.sync_data().unwrap();
        for dir in ["/a/b/c", "/a/b", "/a", "/"] {
            storage.sync_dir(Path::new(dir)).unwrap();
        }
        assert_eq!(storage.durable_file(Path::new("/a/b/c/f")).unwrap(), b"x");
        storage.crash(CrashMode::DropUnsynced);
        assert_eq!(storage.read_file(Path::new("/a/b/c/f")).unwrap(), b"x");
    }

    #[test]
    fn torn_crash_keeps_parents_before_children() {
        let mut seen_partial = false;
        for seed in 0..50 {
            let storage = MemStorage::new();
            storage.create_dir_all(Path::new("/a/b/c")).unwrap();
            storage.crash(CrashMode::Torn { seed });
            let a = storage.list(Path::new("/a")).is_ok();
            let b = storage.list(Path::new("/a/b")).is_ok();
            let c = storage.list(Path::new("/a/b/c")).is_ok();
            assert!(a || !b, "seed {seed}");
            assert!(b || !c, "seed {seed}");
            seen_partial |= a && !c;
            assert!(
                storage.list(Path::new("/")).is_ok(),
                "the root always exists"
            );
        }
        assert!(seen_partial, "some seed keeps a parent but not its child");
    }

    #[test]
    fn relative_dirs_are_entries_of_the_current_dir() {
        let storage = MemStorage::new();
        storage.create_dir_all(Path::new("rel/log")).unwrap();
        storage.sync_dir(Path::new("rel")).unwrap();
        storage.crash(CrashMode::DropUnsynced);
        assert!(storage.list(Path::new("rel")).is_err());

        storage.create_dir_all(Path::new("rel/log")).unwrap();
        storage.sync_dir(Path::new(".")).unwrap();
        storage.sync_dir(Path::new("rel")).unwrap();
        storage.crash(CrashMode::DropUnsynced);
        assert!(storage.list(Path::new("rel/log")).is_ok());
    }
}
