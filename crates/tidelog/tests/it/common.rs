//! Helpers shared by the integration tests: a test environment on either backend, payloads that
//! can be checked against their LSN, and raw file access for damaging logs by hand.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tidelog::io::{MemStorage, OpenMode, StdStorage, Storage};
use tidelog::{Log, LogBuilder, Lsn, Result};

/// Small segments so tests roll often.
pub(crate) const SEGMENT_BYTES: u64 = 4096;

/// A place to open logs: the in-memory storage or a temporary directory on the real disk.
pub(crate) struct Env {
    pub storage: Arc<dyn Storage>,
    /// Set for the in-memory backend, for crashes.
    pub mem: Option<MemStorage>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Env {
    pub(crate) fn mem() -> Env {
        let mem = MemStorage::new();
        Env {
            storage: Arc::new(mem.clone()),
            mem: Some(mem),
            dir: "/log".into(),
            _tmp: None,
        }
    }

    pub(crate) fn std() -> Env {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let dir = tmp.path().join("log");
        Env {
            storage: Arc::new(StdStorage::new()),
            mem: None,
            dir,
            _tmp: Some(tmp),
        }
    }

    /// Both backends, for scenarios that must hold on each.
    pub(crate) fn both() -> [Env; 2] {
        [Env::mem(), Env::std()]
    }

    pub(crate) fn name(&self) -> &'static str {
        if self.mem.is_some() { "mem" } else { "std" }
    }

    /// A builder on this environment's storage, with small segments and no preallocation:
    /// tests that damage files by hand need segment files that end where their data ends (the
    /// crash and fault suites, and `prealloc.rs`, run with preallocation).
    pub(crate) fn builder(&self) -> LogBuilder {
        Log::builder(&self.dir)
            .storage(Arc::clone(&self.storage))
            .segment_bytes(SEGMENT_BYTES)
            .preallocate(false)
    }

    pub(crate) fn open(&self) -> Result<Log> {
        self.builder().open()
    }

    /// The segment files in the log directory, in LSN order.
    pub(crate) fn segment_paths(&self) -> Vec<PathBuf> {
        let mut names: Vec<_> = self
            .storage
            .list(&self.dir)
            .expect("list log dir")
            .into_iter()
            .filter_map(|n| n.into_string().ok())
            .filter(|n| n.ends_with(".seg"))
            .collect();
        names.sort();
        names.into_iter().map(|n| self.dir.join(n)).collect()
    }

    /// Names of the entries of a directory under the log (or of the log dir itself).
    pub(crate) fn list(&self, dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = match self.storage.list(dir) {
            Ok(names) => names
                .into_iter()
                .filter_map(|n| n.into_string().ok())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Every file under the log directory (one level of folders down) with its bytes, to show
    /// that something changed nothing.
    pub(crate) fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        for name in self.list(&self.dir) {
            let path = self.dir.join(&name);
            if self.storage.list(&path).is_ok() {
                for inner in self.list(&path) {
                    files.push((
                        format!("{name}/{inner}"),
                        self.read_file(&path.join(&inner)),
                    ));
                }
            } else {
                files.push((name, self.read_file(&path)));
            }
        }
        files
    }

    pub(crate) fn read_file(&self, path: &Path) -> Vec<u8> {
        let file = self
            .storage
            .open(path, OpenMode::ReadOnly)
            .expect("open for reading");
        let mut buf = vec![0; file.len().expect("len") as usize];
        file.read_exact_at(&mut buf, 0).expect("read");
        buf
    }

    /// Replaces a file's content, durably.
    pub(crate) fn write_file(&self, path: &Path, bytes: &[u8]) {
        let file = self
            .storage
            .open(path, OpenMode::Truncate)
            .expect("open for writing");
        file.write_all_at(bytes, 0).expect("write");
        file.sync_data().expect("sync");
        self.storage.sync_dir(&self.dir).expect("sync dir");
    }

    /// Flips the bits of `mask` in the byte at `offset` of the file at `path`.
    pub(crate) fn flip_byte(&self, path: &Path, offset: usize, mask: u8) {
        let mut bytes = self.read_file(path);
        bytes[offset] ^= mask;
        self.write_file(path, &bytes);
    }

    pub(crate) fn remove_file(&self, path: &Path) {
        self.storage.remove_file(path).expect("remove");
        self.storage.sync_dir(&self.dir).expect("sync dir");
    }
}

/// The payload the tests append at `lsn`: its length varies, and it names its LSN.
pub(crate) fn payload(lsn: u64) -> Vec<u8> {
    let mut p = format!("record {lsn:06} ").into_bytes();
    p.extend(std::iter::repeat_n(
        b'a' + (lsn % 26) as u8,
        (lsn * 7 % 50) as usize,
    ));
    p
}

/// Every durable record of the log, as (LSN, payload).
pub(crate) fn read_all(log: &Log) -> Result<Vec<(u64, Vec<u8>)>> {
    log.iter()?
        .map(|r| r.map(|r| (r.lsn().get(), r.into_data())))
        .collect()
}

/// Asserts the log holds exactly `payload(lsn)` for every LSN in `first..=last`.
pub(crate) fn assert_holds(log: &Log, first: u64, last: u64) -> Result<()> {
    let all = read_all(log)?;
    let lsns: Vec<u64> = all.iter().map(|(l, _)| *l).collect();
    assert_eq!(
        lsns,
        (first..=last).collect::<Vec<_>>(),
        "LSNs held by the log"
    );
    for (lsn, data) in all {
        assert_eq!(data, payload(lsn), "payload of LSN {lsn}");
    }
    assert_eq!(log.last_lsn(), Lsn::new(last));
    Ok(())
}

/// Appends `payload(lsn)` for the next `n` LSNs, one record at a time.
pub(crate) fn append_n(log: &Log, n: u64) -> Result<Lsn> {
    let mut last = log.last_lsn();
    for _ in 0..n {
        let next = last.next();
        last = log.append(&payload(next.get()), tidelog::Durability::Buffered)?;
        assert_eq!(last, next);
    }
    Ok(last)
}
