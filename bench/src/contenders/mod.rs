//! The write-ahead logs under test, each behind [`Wal`] and used through its own recommended
//! API.

mod commitlog;
mod okaywal;
mod raft_engine;
mod tidelog;
mod wal_db;
mod walrus;
mod writeahead;

use std::path::Path;

use crate::Result;
use crate::payload::{self, Verifier};
use crate::stats::Metrics;

/// One open log. Object-safe and shareable between threads; a peer that needs `&mut self` is
/// wrapped in a `Mutex` by its adapter.
pub trait Wal: Send + Sync {
    /// Appends one record; durable only after [`Wal::sync`].
    fn append(&self, record: &[u8]) -> Result<()>;

    /// Makes every record appended so far durable, as far as the peer can.
    fn sync(&self) -> Result<()>;

    /// Appends one record and returns once it is durable (the peer's commit call).
    fn append_durable(&self, record: &[u8]) -> Result<()>;

    /// Writes records `0..count` of `len` bytes the way this log batches bulk work, then makes
    /// them durable once. The default appends one by one and syncs at the end.
    fn bulk(&self, count: u64, len: usize) -> Result<()> {
        let mut buf = vec![0u8; len];
        for i in 0..count {
            payload::fill(i, &mut buf);
            self.append(&buf)?;
        }
        self.sync()
    }

    /// Reads every record in order, checking each with `verify`.
    fn read_all(&self, verify: &mut Verifier) -> Result<Reading>;

    /// How many times the library itself called `sync_data`, where it can be counted.
    fn lib_syncs(&self) -> Option<u64> {
        None
    }

    /// What the log can tell of itself once opened, as named figures (tidelog: its segments,
    /// the bytes they hold, and how many of them the open took on trust). None by default.
    fn open_figures(&self) -> Metrics {
        Metrics::new()
    }

    /// tidelog's log itself, shared, for an archiver beside it (the archive workload); `None`
    /// for the peers.
    fn tidelog(&self) -> Option<std::sync::Arc<::tidelog::Log>> {
        None
    }

    /// Closes the log cleanly.
    fn close(self: Box<Self>) -> Result<()>;
}

/// How a log was read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// By [`Wal::read_all`] itself.
    Read,
    /// Already during open (the peer reads only through recovery); `read_all` only reports.
    DuringOpen,
}

/// What a log is opened for; some peers fix their fsync behaviour at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Bulk writes, made durable once at the end.
    Bulk,
    /// Durable commits, counted.
    Durable,
    /// Reopening an existing log to read it back; records are `len` bytes. With `trust_seals`,
    /// a log that can takes its sealed segments as their seals describe them (tidelog's
    /// `trust_seals`; the others have no such open and ignore it).
    Reopen { len: usize, trust_seals: bool },
}

/// The contenders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Tidelog,
    Okaywal,
    WalDb,
    RaftEngine,
    Walrus,
    Commitlog,
    Writeahead,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Tidelog,
        Kind::Okaywal,
        Kind::WalDb,
        Kind::RaftEngine,
        Kind::Walrus,
        Kind::Commitlog,
        Kind::Writeahead,
    ];

    /// Name on the command line and in tables (the crate's name).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tidelog => "tidelog",
            Kind::Okaywal => "okaywal",
            Kind::WalDb => "wal-db",
            Kind::RaftEngine => "raft-engine",
            Kind::Walrus => "walrus-rust",
            Kind::Commitlog => "commitlog",
            Kind::Writeahead => "writeahead",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Some(match s.as_str() {
            "tidelog" => Kind::Tidelog,
            "okaywal" => Kind::Okaywal,
            "wal-db" | "waldb" => Kind::WalDb,
            "raft-engine" | "raftengine" => Kind::RaftEngine,
            "walrus" | "walrus-rust" => Kind::Walrus,
            "commitlog" => Kind::Commitlog,
            "writeahead" => Kind::Writeahead,
            _ => return None,
        })
    }

    /// Whether this contender's bulk writes (W1, W3) end with an fsync.
    pub fn bulk_is_durable(self) -> bool {
        !matches!(self, Kind::Walrus | Kind::Commitlog)
    }

    /// Whether this contender's commit call (W2) returns only after an fsync.
    pub fn commit_is_durable(self) -> bool {
        !matches!(self, Kind::Commitlog)
    }

    /// Whether this contender has an open that trusts the seals of sealed segments.
    pub fn can_trust_seals(self) -> bool {
        self == Kind::Tidelog
    }
}

/// Opens (creating if needed) the log of `kind` in `dir`.
pub fn open(kind: Kind, dir: &Path, purpose: Purpose) -> Result<Box<dyn Wal>> {
    match kind {
        Kind::Tidelog => tidelog::open(dir, purpose),
        Kind::Okaywal => okaywal::open(dir, purpose),
        Kind::WalDb => wal_db::open(dir, purpose),
        Kind::RaftEngine => raft_engine::open(dir, purpose),
        Kind::Walrus => walrus::open(dir, purpose),
        Kind::Commitlog => commitlog::open(dir, purpose),
        Kind::Writeahead => writeahead::open(dir, purpose),
    }
}

/// The record index a payload carries (its first 8 bytes).
pub(crate) fn index_of(record: &[u8]) -> u64 {
    u64::from_le_bytes(
        record[..8]
            .try_into()
            .expect("records are at least 8 bytes"),
    )
}
