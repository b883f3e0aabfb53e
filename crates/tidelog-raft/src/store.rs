//! [`LogStore`]: openraft's log storage on a tidelog log.
//!
//! Invariants: the entry at index `i` is the record at LSN `i + 1`; the entries the store shows
//! start after the purged log id (and at the log's checkpoint), with no hole up to the last;
//! the metadata slot holds the vote and the purged log id as last written, and a purge is
//! recorded there before the log drops anything.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, LogId, OptionalSend, RaftLogId, RaftTypeConfig, StorageError};
use openraft::{StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tidelog::{Durability, Log, Lsn};

use crate::error::{Error, Result};

/// The version byte ahead of the metadata slot's bytes.
const META_VERSION: u8 = 1;

/// What the store keeps in the log's metadata slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "")]
struct Meta<NID: openraft::NodeId> {
    vote: Option<Vote<NID>>,
    purged: Option<LogId<NID>>,
    committed: Option<LogId<NID>>,
}

impl<NID: openraft::NodeId> Default for Meta<NID> {
    fn default() -> Self {
        Meta {
            vote: None,
            purged: None,
            committed: None,
        }
    }
}

/// The LSN of the entry at `index`.
fn lsn_of(index: u64) -> Lsn {
    Lsn::new(index + 1)
}

/// openraft's log storage (`RaftLogStorage`, and `RaftLogReader` for itself and its readers)
/// on a tidelog [`Log`]. Cheap to clone: clones share the log.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tidelog_raft::LogStore;
/// use tidelog_raft::kv::TypeConfig;
///
/// let dir = tempfile::tempdir()?;
/// let store = LogStore::<TypeConfig>::open(dir.path().join("raft-log"))?;
/// assert_eq!(store.log().last_lsn().get(), 0);
/// # Ok(()) }
/// ```
pub struct LogStore<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

struct Shared<C: RaftTypeConfig> {
    log: Log,
    meta: Mutex<Meta<C::NodeId>>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C: RaftTypeConfig> Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.shared.log.dir())
            .field("last_lsn", &self.shared.log.last_lsn())
            .finish_non_exhaustive()
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    /// Opens (creating) the log in `dir` with every append written through (write buffer 0)
    /// and the other options at their defaults.
    ///
    /// # Errors
    /// As [`LogStore::from_log`], and the log's errors of opening.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        LogStore::from_log(Log::builder(dir).write_buffer_bytes(0).open()?)
    }

    /// A store on `log`, which must write every append through
    /// ([`Options::write_buffer_bytes`](tidelog::Options::write_buffer_bytes) 0). Completes a
    /// purge a crash interrupted (recorded in the metadata slot, not yet applied to the log).
    ///
    /// # Errors
    /// [`Error::WriteBuffer`], [`Error::BadMetadata`] for a metadata slot this store did not
    /// write, and the log's errors of completing a purge.
    pub fn from_log(log: Log) -> Result<Self> {
        let bytes = log.options().write_buffer_bytes;
        if bytes != 0 {
            return Err(Error::WriteBuffer { bytes });
        }
        let meta = decode_meta::<C::NodeId>(&log.metadata())?;
        let store = LogStore {
            shared: Arc::new(Shared {
                log,
                meta: Mutex::new(meta.clone()),
            }),
        };
        if let Some(purged) = meta.purged {
            store.drop_through(purged.index)?;
        }
        Ok(store)
    }

    /// The log under the store.
    pub fn log(&self) -> &Log {
        &self.shared.log
    }

    fn meta(&self) -> MutexGuard<'_, Meta<C::NodeId>> {
        self.shared
            .meta
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `meta` to the metadata slot (durably), then makes it the store's.
    fn save_meta(&self, meta: Meta<C::NodeId>) -> Result<()> {
        let mut bytes = vec![META_VERSION];
        bytes.extend(postcard::to_stdvec(&meta).map_err(|e| Error::BadMetadata {
            reason: e.to_string(),
        })?);
        self.shared.log.set_metadata(&bytes)?;
        *self.meta() = meta;
        Ok(())
    }

    /// Makes the log drop every entry up to `index`: a checkpoint after it, or a reset past
    /// the last entry.
    fn drop_through(&self, index: u64) -> Result<()> {
        let log = &self.shared.log;
        let next = lsn_of(index).next();
        if log.checkpoint_lsn() >= next {
            return Ok(());
        }
        if next > log.last_lsn().next() {
            log.reset_to(next)?;
        } else {
            log.checkpoint(next)?;
        }
        Ok(())
    }

    /// The LSN of the first entry the store shows.
    fn first_lsn(&self) -> Lsn {
        let purged = self.meta().purged.as_ref().map(|p| lsn_of(p.index).next());
        self.shared
            .log
            .checkpoint_lsn()
            .max(purged.unwrap_or(Lsn::FIRST))
    }

    /// The entries at LSNs `from..=to`, written or durable, each checked against its LSN.
    fn entries(&self, from: Lsn, to: Lsn) -> Result<Vec<C::Entry>> {
        if from > to {
            return Ok(Vec::new());
        }
        let mut entries = Vec::with_capacity((to.get() - from.get() + 1) as usize);
        for record in self.shared.log.range_written(from..=to)? {
            let record = record?;
            entries.push(decode_entry::<C>(record.lsn(), record.data())?);
        }
        Ok(entries)
    }

    /// The last entry's log id, or the purged one if the store shows none.
    fn last_log_id(&self) -> Result<Option<LogId<C::NodeId>>> {
        let last = self.shared.log.last_lsn();
        if last >= self.first_lsn() {
            let entry = self.entries(last, last)?;
            if let Some(entry) = entry.last() {
                return Ok(Some(entry.get_log_id().clone()));
            }
        }
        Ok(self.meta().purged.clone())
    }
}

fn decode_meta<NID: openraft::NodeId>(bytes: &[u8]) -> Result<Meta<NID>> {
    match bytes.split_first() {
        None => Ok(Meta::default()),
        Some((&META_VERSION, rest)) => postcard::from_bytes(rest).map_err(|e| Error::BadMetadata {
            reason: e.to_string(),
        }),
        Some((version, _)) => Err(Error::BadMetadata {
            reason: format!("version {version}, this store knows {META_VERSION}"),
        }),
    }
}

fn decode_entry<C>(lsn: Lsn, bytes: &[u8]) -> Result<C::Entry>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let index = lsn.get() - 1;
    let bad = |reason: String| Error::BadEntry { lsn, index, reason };
    let entry: C::Entry = postcard::from_bytes(bytes).map_err(|e| bad(e.to_string()))?;
    let found = entry.get_log_id().index;
    if found != index {
        return Err(bad(format!("it holds the entry at index {found}")));
    }
    Ok(entry)
}

fn read_err<NID: openraft::NodeId>(e: &Error) -> StorageError<NID> {
    StorageIOError::read_logs(AnyError::new(e)).into()
}

fn write_err<NID: openraft::NodeId>(e: &Error) -> StorageError<NID> {
    StorageIOError::write_logs(AnyError::new(e)).into()
}

/// The range `[start, end)` of indexes `range` names.
fn bounds(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => Some(i.saturating_add(1)),
        Bound::Excluded(&i) => Some(i),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let (start, end) = bounds(&range);
        let from = lsn_of(start).max(self.first_lsn());
        let last = self.shared.log.last_lsn();
        let to = match end {
            Some(0) => return Ok(Vec::new()),
            Some(end) => lsn_of(end - 1).min(last),
            None => last,
        };
        self.entries(from, to).map_err(|e| read_err(&e))
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let last_log_id = self.last_log_id().map_err(|e| read_err(&e))?;
        Ok(LogState {
            last_purged_log_id: self.meta().purged.clone(),
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let mut meta = self.meta().clone();
        meta.vote = Some(vote.clone());
        self.save_meta(meta)
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.meta().vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        // Written with the next vote or purge: a stale committed log id is allowed.
        self.meta().committed = committed;
        Ok(())
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.meta().committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let log = &self.shared.log;
        // The index the next entry must have: the last LSN's (index = LSN - 1, plus one).
        let mut next = log.last_lsn().get();
        let empty = log.last_lsn() < self.first_lsn();
        let purged = self.meta().purged.as_ref().map(|p| p.index);
        let mut records = Vec::new();
        for entry in entries {
            let index = entry.get_log_id().index;
            if records.is_empty() && purged.is_some_and(|p| index <= p) {
                // Covered by the purged log id, so by the state machine: nothing to keep.
                continue;
            }
            if records.is_empty() && empty && index > next {
                // A store that shows no entry may begin at any index: the log goes on there.
                log.reset_to(lsn_of(index))
                    .map_err(|e| write_err(&e.into()))?;
                next = index;
            }
            if records.is_empty() && index < next && lsn_of(index) >= self.first_lsn() {
                // Entries from `index` on are replaced, as a truncate would (what openraft's
                // suite does without one).
                log.truncate_after(Lsn::new(index))
                    .map_err(|e| write_err(&e.into()))?;
                next = index;
            }
            if index != next {
                return Err(write_err(&Error::NotNext { index, next }));
            }
            next += 1;
            let bytes = postcard::to_stdvec(&entry).map_err(|e| {
                write_err(&Error::BadEntry {
                    lsn: lsn_of(index),
                    index,
                    reason: e.to_string(),
                })
            })?;
            records.push(bytes);
        }
        if records.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        let (_, last) = log
            .append_batch(&records, Durability::Buffered)
            .map_err(|e| write_err(&e.into()))?;
        // openraft 0.9 awaits this callback before its core goes on, so the flush is waited
        // for here, in the log's group commit (which callers on other threads join), rather
        // than handed to the log's syncer thread and a task: two thread hand-offs fewer per
        // append (about 1.4x the commits per second of a single-node cluster).
        let durable = log.wait_durable(last).map_err(io::Error::other);
        callback.log_io_completed(durable);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let log = &self.shared.log;
        // The entry at `log_id.index` (LSN index + 1) and every later one go: the log keeps
        // LSNs up to `log_id.index`, durably.
        log.truncate_after(Lsn::new(log_id.index))
            .map_err(|e| write_err(&e.into()))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let mut meta = self.meta().clone();
        if meta
            .purged
            .as_ref()
            .is_some_and(|p| p.index >= log_id.index)
        {
            return Ok(());
        }
        let index = log_id.index;
        meta.purged = Some(log_id);
        // Recorded first: a crash before the log drops the entries leaves them hidden, and the
        // next open drops them.
        self.save_meta(meta)
            .and_then(|()| self.drop_through(index))
            .map_err(|e| write_err(&e))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    use crate::kv::{Request, TypeConfig};

    /// What the crate's documentation says of the encoding's size.
    #[test]
    fn entries_encode_compactly() {
        let blank = Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(3, 1), 1_000),
            payload: EntryPayload::Blank,
        };
        let bytes = postcard::to_stdvec(&blank).expect("encode");
        assert_eq!(bytes.len(), 5, "{bytes:?}");
        let set = Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(3, 1), 1_000),
            payload: EntryPayload::Normal(Request::Set {
                key: "k".into(),
                value: "v".repeat(100),
            }),
        };
        let bytes = postcard::to_stdvec(&set).expect("encode");
        assert_eq!(bytes.len(), 5 + 1 + 2 + 1 + 100, "{bytes:?}");
    }
}
