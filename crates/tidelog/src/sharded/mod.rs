//! [`ShardedLog`]: N shard logs under one root, each with its own write path, group commit and
//! segments, a global epoch, epoch barriers, merged replay in (epoch, shard, LSN) order, and
//! checkpoints by epoch.
//!
//! Layout (docs/format.md, section 7): `SHARDS` (the manifest: the shard count and each shard's
//! log id, written once, crash-safely, when the root is created), `shard-0000` … (one ordinary
//! log each), and `epochs` (the epoch journal: an ordinary log whose records each say where an
//! epoch starts in every shard).
//!
//! Invariants:
//! - An append takes only its own shard's locks: appends to different shards share nothing.
//! - A record belongs to the epoch whose start, in its shard, is the last at or below its LSN.
//!   An epoch's start is written to the journal, synced, before any record of that epoch is
//!   appended (an advance holds every shard's append gate across the journal's fsync), so a
//!   record never changes epoch across a crash.
//! - A barrier is one journal record: it reaches every shard or none. Starts that a crash (or a
//!   rollback) left past a shard's end are clamped to it at open, reported, and followed by a
//!   new epoch, so later records never fall into an epoch that was already closed.

mod manifest;
mod replay;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};
use crate::io::{StdStorage, Storage};
use crate::log::Log;
use crate::metrics::Metrics;
use crate::options::{Durability, Options};
use crate::recovery::RecoveryReport;
use crate::types::Lsn;

pub use manifest::MANIFEST_FILE;
pub use replay::{Replay, ShardedRecord};

/// The name of the epoch journal's directory in the root.
pub const EPOCHS_DIR: &str = "epochs";

/// The name of shard `i`'s directory in the root (`shard-0000`, …).
pub fn shard_dir(i: usize) -> String {
    format!("shard-{i:04}")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shard that `key` is routed to among `shards`: the CRC-32C (Castagnoli) of the key's
/// bytes modulo the shard count. Fixed forever, since it decides where data lives.
pub fn shard_of_key(key: &[u8], shards: usize) -> usize {
    (crc32c::crc32c(key) as usize) % shards.max(1)
}

/// One shard: its log, and the epoch its appends go to, behind the gate an advance closes.
#[derive(Debug)]
struct Shard {
    log: Log,
    epoch: Mutex<u64>,
}

/// Where one epoch starts in every shard, and the journal record that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EpochStart {
    epoch: u64,
    starts: Vec<Lsn>,
    at: Lsn,
}

fn encode_entry(epoch: u64, starts: &[Lsn]) -> Vec<u8> {
    let mut b = Vec::with_capacity(12 + 8 * starts.len());
    b.extend_from_slice(&epoch.to_le_bytes());
    b.extend_from_slice(&(starts.len() as u32).to_le_bytes());
    for s in starts {
        b.extend_from_slice(&s.get().to_le_bytes());
    }
    b
}

fn decode_entry(b: &[u8], shards: usize) -> Option<(u64, Vec<Lsn>)> {
    let epoch = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let n = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?) as usize;
    if n != shards || b.len() != 12 + 8 * n {
        return None;
    }
    let starts = (0..n)
        .map(|i| {
            let at = 12 + 8 * i;
            b.get(at..at + 8)
                .and_then(|x| x.try_into().ok())
                .map(|x| Lsn::new(u64::from_le_bytes(x)))
        })
        .collect::<Option<Vec<Lsn>>>()?;
    Some((epoch, starts))
}

/// What opening a sharded log found and did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShardedRecoveryReport {
    /// Each shard's recovery, in shard order.
    pub shards: Vec<RecoveryReport>,
    /// The epoch journal's recovery.
    pub epochs: RecoveryReport,
    /// Whether the root was created by this open.
    pub created: bool,
    /// The epoch appends go to after the open.
    pub epoch: u64,
    /// Epochs whose start in some shard lay past that shard's end (records a crash took away
    /// before they were durable, or a rollback removed), with the shards concerned; their
    /// starts were clamped to the shard's end and a new epoch begun.
    pub clamped: Vec<(u64, Vec<usize>)>,
}

/// Counters of every shard, and their sums.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShardedMetrics {
    /// Each shard's metrics, in shard order.
    pub shards: Vec<Metrics>,
    /// Append calls, over all shards.
    pub appends: u64,
    /// Records appended, over all shards.
    pub records: u64,
    /// Payload bytes appended, over all shards.
    pub bytes: u64,
    /// fsyncs, over all shards.
    pub fsyncs: u64,
    /// Durable commits, over all shards.
    pub commits: u64,
    /// Bytes the shards' segments use.
    pub used_bytes: u64,
}

/// Chooses a sharded log's shard count, options and storage, and opens it.
#[derive(Debug, Clone)]
pub struct ShardedLogBuilder {
    root: PathBuf,
    shards: Option<usize>,
    options: Options,
    storage: Arc<dyn Storage>,
}

impl ShardedLogBuilder {
    /// The number of shards: needed to create a sharded log (it is fixed then); an open of an
    /// existing one with another number is refused, and one without a number takes the
    /// number it was created with.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The options every shard log (and the epoch journal) opens with.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// The storage to use (default: the real file system).
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// Opens the sharded log, creating it if it is missing and the options allow. With
    /// read-only options ([`Options::read_only`]) it opens every shard and the journal
    /// read-only and changes nothing (epochs a crash cut short are reported, not closed).
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] for 0 shards or more than 4096, or read-only options;
    /// [`Error::NotFound`] if there is none and `create_if_missing` is off;
    /// [`Error::ShardCount`], [`Error::MissingShard`], [`Error::ForeignShard`],
    /// [`Error::Corrupt`] for a damaged `SHARDS` file or epoch journal record; and what opening
    /// any shard log returns.
    pub fn open(self) -> Result<ShardedLog> {
        ShardedLog::open_with(self)
    }
}

/// N shard logs under one root with a global epoch (see the module docs).
///
/// ```
/// # fn main() -> tidelog::Result<()> {
/// use tidelog::Durability;
/// use tidelog::sharded::ShardedLog;
///
/// # let dir = tempfile::tempdir().unwrap();
/// let log = ShardedLog::builder(dir.path()).shards(2).open()?;
/// // One writer per core, each on its own shard: no lock is shared between them.
/// std::thread::scope(|s| {
///     for shard in 0..2 {
///         let log = &log;
///         s.spawn(move || log.append(shard, b"event", Durability::Buffered));
///     }
/// });
/// let closed = log.epoch();
/// log.barrier(closed)?; // every record of the epoch is durable on every shard
/// log.append(0, b"next epoch", Durability::Buffered)?;
/// for record in log.replay_to(closed)? {
///     let record = record?;
///     assert_eq!((record.epoch, record.record.data()), (closed, &b"event"[..]));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ShardedLog {
    root: PathBuf,
    shards: Vec<Shard>,
    journal: Log,
    /// Every epoch's starts, oldest first; taken by advances, barriers and maintenance, never
    /// by appends.
    epochs: Mutex<Vec<EpochStart>>,
    report: ShardedRecoveryReport,
    /// Opened read-only: what settling finds is kept in memory, never written.
    read_only: bool,
    /// A journal append failed: its record may have reached the disk all the same (an append
    /// whose fsync succeeded and whose sync marker then failed, say), so the epoch a record
    /// appended from now on would replay in is unknown until a reopen reads the journal.
    /// Appends are refused once it is set (under their shard's gate, which an advance holds
    /// while it writes the journal).
    epoch_unknown: AtomicBool,
}

impl ShardedLog {
    /// A builder for the sharded log at `root`.
    pub fn builder(root: impl AsRef<Path>) -> ShardedLogBuilder {
        ShardedLogBuilder {
            root: root.as_ref().to_path_buf(),
            shards: None,
            options: Options::default(),
            storage: Arc::new(StdStorage::new()),
        }
    }

    fn open_with(b: ShardedLogBuilder) -> Result<ShardedLog> {
        span!("tidelog.sharded.open", root = %b.root.display());
        if b.shards.is_some_and(|n| n == 0 || n > manifest::MAX_SHARDS) {
            return Err(Error::InvalidOptions {
                name: "shards",
                reason: "must be between 1 and 4096".to_owned(),
            });
        }
        let storage = &*b.storage;
        let root = &b.root;
        let found = manifest::read(storage, root)?;
        let created = found.is_none();
        let manifest = match found {
            Some(m) => {
                if let Some(expected) = b.shards.filter(|&n| n != m.shards.len()) {
                    return Err(Error::ShardCount {
                        path: root.clone(),
                        expected,
                        found: m.shards.len(),
                    });
                }
                m
            }
            None if b.options.read_only || !b.options.create_if_missing => {
                return Err(Error::NotFound { path: root.clone() });
            }
            None => Self::create(&b)?,
        };
        let count = manifest.shards.len();
        let open = |dir: PathBuf, expected: u128| -> Result<Log> {
            let exists = storage.list(&dir).is_ok();
            if !exists {
                return Err(Error::MissingShard { path: dir });
            }
            let log = Log::builder(&dir)
                .options(b.options.clone())
                .create_if_missing(false)
                .storage(Arc::clone(&b.storage))
                .open()
                .map_err(|e| match e {
                    Error::NotFound { path } => Error::MissingShard { path },
                    e => e,
                })?;
            if log.log_id() != expected {
                return Err(Error::ForeignShard {
                    path: dir,
                    expected,
                    found: log.log_id(),
                });
            }
            Ok(log)
        };
        let mut shards = Vec::with_capacity(count);
        for (i, &id) in manifest.shards.iter().enumerate() {
            shards.push(Shard {
                log: open(root.join(shard_dir(i)), id)?,
                epoch: Mutex::new(0),
            });
        }
        let journal = open(root.join(EPOCHS_DIR), manifest.epochs)?;
        let mut epochs = Vec::new();
        for record in journal.iter()? {
            let record = record?;
            let (epoch, starts) =
                decode_entry(record.data(), count).ok_or_else(|| Error::Corrupt {
                    path: root.join(EPOCHS_DIR),
                    offset: 0,
                    kind: crate::CorruptionKind::LsnMismatch {
                        expected: record.lsn(),
                        found: record.lsn(),
                    },
                })?;
            epochs.push(EpochStart {
                epoch,
                starts,
                at: record.lsn(),
            });
        }
        let report = ShardedRecoveryReport {
            shards: shards
                .iter()
                .map(|s| s.log.recovery_report().clone())
                .collect(),
            epochs: journal.recovery_report().clone(),
            created,
            epoch: 0,
            clamped: Vec::new(),
        };
        let mut log = ShardedLog {
            root: root.clone(),
            shards,
            journal,
            epochs: Mutex::new(epochs),
            report,
            read_only: b.options.read_only,
            epoch_unknown: AtomicBool::new(false),
        };
        let clamped = log.settle()?;
        log.report.clamped = clamped;
        log.report.epoch = log.epoch();
        Ok(log)
    }

    /// Creates the shard logs and the epoch journal under `root`, then the manifest.
    fn create(b: &ShardedLogBuilder) -> Result<manifest::Manifest> {
        let storage = &*b.storage;
        // Durably: every directory created is synced into its parent.
        let creating = crate::io::WithModes::new(
            Arc::clone(&b.storage),
            b.options.dir_mode,
            b.options.file_mode,
        );
        crate::log::create_log_dir(&creating, &b.root)?;
        // A creation cut short leaves shard logs without a manifest: they hold no record
        // (nothing appends before the manifest exists) and are taken as they are.
        let create = |dir: PathBuf| -> Result<u128> {
            let log = Log::builder(&dir)
                .options(b.options.clone())
                .create_if_missing(true)
                .storage(Arc::clone(&b.storage))
                .open()?;
            if log.last_lsn() != Lsn::ZERO {
                return Err(Error::Io {
                    op: "create a sharded log in",
                    path: b.root.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!(
                            "{} holds records but the root has no SHARDS file",
                            dir.display()
                        ),
                    ),
                });
            }
            let id = log.log_id();
            log.close()?;
            Ok(id)
        };
        let Some(count) = b.shards else {
            return Err(Error::InvalidOptions {
                name: "shards",
                reason: "a new sharded log needs a shard count".to_owned(),
            });
        };
        let shards = (0..count)
            .map(|i| create(b.root.join(shard_dir(i))))
            .collect::<Result<Vec<u128>>>()?;
        let epochs = create(b.root.join(EPOCHS_DIR))?;
        let manifest = manifest::Manifest {
            id: u128::from(crate::random_u64()) << 64 | u128::from(crate::random_u64()),
            epochs,
            shards,
        };
        manifest::write(storage, &b.root, &manifest, b.options.file_mode)?;
        Ok(manifest)
    }

    /// Makes the epoch starts fit the shards as they are: the first epoch if there is none;
    /// starts past a shard's end clamped to it, and a new epoch begun after them. Sets every
    /// shard's current epoch. Returns the epochs clamped, with their shards.
    fn settle(&self) -> Result<Vec<(u64, Vec<usize>)>> {
        let mut epochs = lock(&self.epochs);
        let ends: Vec<Lsn> = self
            .shards
            .iter()
            .map(|s| s.log.last_lsn().next())
            .collect();
        let mut clamped = Vec::new();
        let first_bad = epochs
            .iter()
            .position(|e| e.starts.iter().zip(&ends).any(|(s, end)| s > end));
        if self.read_only {
            // What a writable open would fix, fixed in memory only.
            for e in epochs.iter_mut() {
                let shards: Vec<usize> =
                    (0..ends.len()).filter(|&i| e.starts[i] > ends[i]).collect();
                for &i in &shards {
                    e.starts[i] = ends[i];
                }
                if !shards.is_empty() {
                    clamped.push((e.epoch, shards));
                }
            }
        } else if let Some(first_bad) = first_bad {
            // Rewrite the journal from the first epoch that overshoots, clamped.
            let keep = first_bad
                .checked_sub(1)
                .map_or(self.journal.checkpoint_lsn().prev(), |i| epochs[i].at);
            self.journal.truncate_after(keep)?;
            let rewrite: Vec<EpochStart> = epochs.drain(first_bad..).collect();
            for mut e in rewrite {
                let shards: Vec<usize> =
                    (0..ends.len()).filter(|&i| e.starts[i] > ends[i]).collect();
                for &i in &shards {
                    e.starts[i] = ends[i];
                }
                e.at = self.journal_append(e.epoch, &e.starts)?;
                if !shards.is_empty() {
                    clamped.push((e.epoch, shards));
                }
                epochs.push(e);
            }
        }
        if !self.read_only && (epochs.is_empty() || !clamped.is_empty()) {
            // The first epoch, or a new one after clamped ones: later appends never join an
            // epoch whose records a crash or rollback already cut short.
            let epoch = epochs.last().map_or(1, |e| e.epoch + 1);
            let at = self.journal_append(epoch, &ends)?;
            epochs.push(EpochStart {
                epoch,
                starts: ends,
                at,
            });
        }
        let current = epochs.last().map_or(1, |e| e.epoch);
        for shard in &self.shards {
            *lock(&shard.epoch) = current;
        }
        Ok(clamped)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Shard `i`'s log, to read it, look at its metrics or segments, or wait on it.
    ///
    /// Appending to it directly bypasses the epoch: use [`ShardedLog::append`].
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] if there is no shard `i`.
    pub fn shard(&self, i: usize) -> Result<&Log> {
        self.get(i).map(|s| &s.log)
    }

    fn get(&self, i: usize) -> Result<&Shard> {
        self.shards.get(i).ok_or_else(|| Error::InvalidOptions {
            name: "shard",
            reason: "no shard has this index".to_owned(),
        })
    }

    /// The shard `key` is routed to ([`shard_of_key`]).
    pub fn shard_of_key(&self, key: &[u8]) -> usize {
        shard_of_key(key, self.shards.len())
    }

    /// What the open found: each shard's recovery and the epochs it clamped.
    pub fn recovery_report(&self) -> &ShardedRecoveryReport {
        &self.report
    }

    /// Appends `record` to shard `shard`; returns the epoch it belongs to and its LSN in the
    /// shard. With [`Durability::Synced`], returns once it is durable (sharing the shard's
    /// fsyncs with its other committers).
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] for a shard that does not exist, [`Error::Poisoned`] once a
    /// write to the epoch journal failed (see [`ShardedLog::advance_epoch`]), and as
    /// [`Log::append`].
    pub fn append(
        &self,
        shard: usize,
        record: &[u8],
        durability: Durability,
    ) -> Result<(u64, Lsn)> {
        self.append_batch(shard, &[record], durability)
            .map(|(epoch, first, _)| (epoch, first))
    }

    /// Appends `records` to shard `shard` as one batch (all or nothing after a crash); returns
    /// the epoch and the first and last LSN.
    ///
    /// # Errors
    /// As [`ShardedLog::append`] and [`Log::append_batch`].
    pub fn append_batch<B: AsRef<[u8]>>(
        &self,
        shard: usize,
        records: &[B],
        durability: Durability,
    ) -> Result<(u64, Lsn, Lsn)> {
        let shard = self.get(shard)?;
        let (epoch, appended) = {
            let epoch = lock(&shard.epoch);
            if self.epoch_unknown.load(Ordering::SeqCst) {
                return Err(Error::Poisoned);
            }
            (*epoch, shard.log.append_batch_deferred(records)?)
        };
        // Outside the gate: an advance never waits for a shard's fsync. A rollback that
        // removes the batch meanwhile is reported as such, even if later records take its LSNs.
        if durability == Durability::Synced {
            shard.log.wait_appended(appended)?;
        }
        Ok((epoch, appended.first, appended.last))
    }

    /// Appends `record` to the shard `key` is routed to; returns the shard, epoch and LSN.
    ///
    /// # Errors
    /// As [`ShardedLog::append`].
    pub fn append_keyed(
        &self,
        key: &[u8],
        record: &[u8],
        durability: Durability,
    ) -> Result<(usize, u64, Lsn)> {
        let shard = self.shard_of_key(key);
        let (epoch, lsn) = self.append(shard, record, durability)?;
        Ok((shard, epoch, lsn))
    }

    /// The epoch appends go to now.
    pub fn epoch(&self) -> u64 {
        lock(&self.epochs).last().map_or(1, |e| e.epoch)
    }

    /// Ends the current epoch and begins the next, which it returns: where the new epoch starts
    /// in every shard is written to the epoch journal and synced, while every shard's appends
    /// wait (one fsync), so each record belongs to exactly one epoch, before and after a crash.
    /// The records of the ended epoch are not made durable: [`ShardedLog::barrier`] does that.
    ///
    /// # Errors
    /// As [`Log::append`] on the journal. After a failure the new epoch may or may not have
    /// begun on disk (the journal's record may be durable all the same), so every append from
    /// then on is refused with [`Error::Poisoned`] until the sharded log is reopened, which
    /// reads the journal: no record ever replays in an epoch its append did not return.
    pub fn advance_epoch(&self) -> Result<u64> {
        let mut epochs = lock(&self.epochs);
        self.advance_locked(&mut epochs)
    }

    /// Appends where `epoch` starts to the journal, durably; a failure makes the epoch of
    /// later appends unknown, so they are refused (see the field `epoch_unknown`).
    fn journal_append(&self, epoch: u64, starts: &[Lsn]) -> Result<Lsn> {
        self.journal
            .append(&encode_entry(epoch, starts), Durability::Synced)
            .inspect_err(|_| self.epoch_unknown.store(true, Ordering::SeqCst))
    }

    fn advance_locked(&self, epochs: &mut Vec<EpochStart>) -> Result<u64> {
        let next = epochs.last().map_or(1, |e| e.epoch) + 1;
        let mut gates: Vec<MutexGuard<'_, u64>> =
            self.shards.iter().map(|s| lock(&s.epoch)).collect();
        let starts: Vec<Lsn> = self
            .shards
            .iter()
            .map(|s| s.log.last_lsn().next())
            .collect();
        let at = self.journal_append(next, &starts)?;
        for gate in &mut gates {
            **gate = next;
        }
        epochs.push(EpochStart {
            epoch: next,
            starts,
            at,
        });
        Ok(next)
    }

    /// Makes epoch `epoch` durable on every shard: ends it first if it is the current one,
    /// then syncs each shard up to its last record of that epoch. After it returns, a crash
    /// loses no record of `epoch` or before, and replay up to `epoch` stops exactly at its end.
    ///
    /// # Errors
    /// [`Error::InvalidEpoch`] for an epoch not begun yet, and as [`Log::wait_durable`].
    pub fn barrier(&self, epoch: u64) -> Result<()> {
        span!("tidelog.sharded.barrier", root = %self.root.display(), epoch = epoch);
        let ends = {
            let mut epochs = lock(&self.epochs);
            let current = epochs.last().map_or(1, |e| e.epoch);
            if epoch > current {
                return Err(Error::InvalidEpoch {
                    epoch,
                    reason: "not begun yet",
                });
            }
            if epoch == current {
                self.advance_locked(&mut epochs)?;
            }
            let next = epochs
                .iter()
                .find(|e| e.epoch > epoch)
                .map(|e| e.starts.clone());
            next.unwrap_or_default()
        };
        for (shard, end) in self.shards.iter().zip(ends) {
            let last = end.prev();
            if last > shard.log.durable_lsn() {
                shard.log.wait_durable(last)?;
            }
        }
        Ok(())
    }

    /// Every shard's durable LSN, in shard order: what a checkpoint of the caller's state
    /// records, to [`truncate_to`](ShardedLog::truncate_to) later.
    pub fn synced_positions(&self) -> Vec<Lsn> {
        self.shards.iter().map(|s| s.log.durable_lsn()).collect()
    }

    /// Drops every record of epochs up to `epoch` from every shard (after a
    /// [`barrier`](ShardedLog::barrier) of it, which this runs first), and their starts from the
    /// journal.
    ///
    /// # Errors
    /// [`Error::InvalidEpoch`] for the current epoch or a later one (end it first), and as
    /// [`Log::checkpoint`].
    pub fn checkpoint_epoch(&self, epoch: u64) -> Result<()> {
        if epoch >= self.epoch() {
            return Err(Error::InvalidEpoch {
                epoch,
                reason: "only an ended epoch can be checkpointed",
            });
        }
        self.barrier(epoch)?;
        let next = {
            let epochs = lock(&self.epochs);
            epochs.iter().find(|e| e.epoch > epoch).cloned()
        };
        let Some(next) = next else {
            return Ok(());
        };
        for (shard, &start) in self.shards.iter().zip(&next.starts) {
            shard.log.checkpoint(start)?;
        }
        self.journal.checkpoint(next.at)?;
        lock(&self.epochs).retain(|e| e.epoch > epoch);
        Ok(())
    }

    /// Rolls every shard back to `positions` (one LSN per shard, as
    /// [`synced_positions`](ShardedLog::synced_positions) gave them): each shard keeps its
    /// records up to its position, durably. Epochs whose records were cut keep what is left;
    /// a new epoch begins for what is appended next.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] if `positions` does not have one LSN per shard, and as
    /// [`Log::truncate_after`].
    pub fn truncate_to(&self, positions: &[Lsn]) -> Result<()> {
        if positions.len() != self.shards.len() {
            return Err(Error::InvalidOptions {
                name: "positions",
                reason: "must hold one LSN per shard".to_owned(),
            });
        }
        {
            let _epochs = lock(&self.epochs);
            let _gates: Vec<MutexGuard<'_, u64>> =
                self.shards.iter().map(|s| lock(&s.epoch)).collect();
            for (shard, &lsn) in self.shards.iter().zip(positions) {
                shard.log.truncate_after(lsn)?;
            }
        }
        let clamped = self.settle()?;
        if clamped.is_empty() {
            self.advance_epoch()?;
        }
        Ok(())
    }

    /// Discards every record of every shard (LSNs go on where they were) and begins a new
    /// epoch.
    ///
    /// # Errors
    /// As [`Log::reset`].
    pub fn reset(&self) -> Result<()> {
        let mut epochs = lock(&self.epochs);
        {
            let _gates: Vec<MutexGuard<'_, u64>> =
                self.shards.iter().map(|s| lock(&s.epoch)).collect();
            for shard in &self.shards {
                shard.log.reset()?;
            }
        }
        self.advance_locked(&mut epochs)?;
        if let Some(last) = epochs.last().cloned() {
            self.journal.checkpoint(last.at)?;
            epochs.retain(|e| e.epoch == last.epoch);
        }
        Ok(())
    }

    /// Each shard's metrics, and their sums.
    pub fn metrics(&self) -> ShardedMetrics {
        let shards: Vec<Metrics> = self.shards.iter().map(|s| s.log.metrics()).collect();
        let sum = |f: fn(&Metrics) -> u64| shards.iter().map(f).sum();
        ShardedMetrics {
            appends: sum(|m| m.appends),
            records: sum(|m| m.records),
            bytes: sum(|m| m.bytes),
            fsyncs: sum(|m| m.fsyncs),
            commits: sum(|m| m.commits),
            used_bytes: sum(|m| m.used_bytes),
            shards,
        }
    }

    /// Syncs and closes every shard and the journal.
    ///
    /// # Errors
    /// The first error of a shard's [`Log::close`].
    pub fn close(self) -> Result<()> {
        let mut first = None;
        for shard in self.shards {
            if let Err(e) = shard.log.close() {
                first.get_or_insert(e);
            }
        }
        if let Err(e) = self.journal.close() {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }

    /// Every epoch the journal holds, oldest first, with where it starts in each shard
    /// (records of shard `i` at or above the `i`-th LSN belong to it or a later epoch).
    pub fn epoch_starts(&self) -> Vec<(u64, Vec<Lsn>)> {
        self.plan()
    }

    /// Each epoch's starts, oldest first (for replay).
    fn plan(&self) -> Vec<(u64, Vec<Lsn>)> {
        lock(&self.epochs)
            .iter()
            .map(|e| (e.epoch, e.starts.clone()))
            .collect()
    }
}
