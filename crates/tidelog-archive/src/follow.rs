//! [`Follower`]: reads an archive as its writer extends it, record by record, as a blocking
//! iterator or an async stream.
//!
//! Invariants: records come out in LSN order, each once: the follower's position only moves
//! forward, past the records it yielded, and an object read again (a tail the writer replaced
//! by a longer one) yields only the records past the position. Every object is checked against
//! the size and checksum the manifest gives, then frame by frame. While it reads, the follower
//! keeps a lease under `readers/` at the first LSN of the object it reads, which retention
//! respects.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tidelog::{Importer, Log, Lsn};

use crate::error::{Error, Result};
use crate::io::{self, Backoff};
use crate::manifest::{Manifest, ObjectEntry};
use crate::retention::Lease;
use crate::store::Store;

/// A record read from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedRecord {
    lsn: Lsn,
    data: Vec<u8>,
    timestamp_ms: Option<u64>,
    batch_start: bool,
    batch_end: bool,
}

impl ArchivedRecord {
    /// Its LSN.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// Its bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Its bytes, owned.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// When its batch was appended, in milliseconds since the Unix epoch (`None` for a record
    /// of format version 1).
    pub fn timestamp_ms(&self) -> Option<u64> {
        self.timestamp_ms
    }

    /// Whether it is the first record of its batch.
    pub fn is_batch_start(&self) -> bool {
        self.batch_start
    }

    /// Whether it is the last record of its batch.
    pub fn is_batch_end(&self) -> bool {
        self.batch_end
    }
}

/// Checks the bytes of `object` (size, checksum, then frame by frame) and returns its records.
pub(crate) fn decode(
    store: &Store,
    object: &ObjectEntry,
    bytes: &[u8],
) -> Result<Vec<ArchivedRecord>> {
    let key = store.path(&object.name).to_string();
    let corrupt = |reason: String| Error::CorruptObject {
        key: key.clone(),
        reason,
    };
    let crc = crc32c::crc32c(bytes);
    if bytes.len() as u64 != object.bytes || crc != object.crc32c {
        return Err(corrupt(format!(
            "{} bytes with checksum {crc:08x}, the manifest says {} bytes with {:08x}",
            bytes.len(),
            object.bytes,
            object.crc32c
        )));
    }
    // The core checks a copy as it imports it; a log in memory reads it back.
    let storage: Arc<dyn tidelog::io::Storage> = Arc::new(tidelog::io::MemStorage::new());
    let dir = std::path::Path::new("/object");
    let mut importer = Importer::create_with(Arc::clone(&storage), dir)?;
    let last = importer.add(bytes).map_err(|e| corrupt(e.to_string()))?;
    if last.get() != object.last_lsn {
        return Err(corrupt(format!(
            "holds records up to LSN {last}, the manifest says {}",
            object.last_lsn
        )));
    }
    importer.finish()?;
    let log = Log::builder(dir)
        .storage(storage)
        .create_if_missing(false)
        .read_only(true)
        .open()
        .map_err(|e| corrupt(e.to_string()))?;
    let mut records = Vec::new();
    for record in log.iter().map_err(|e| corrupt(e.to_string()))? {
        let record = record.map_err(|e| corrupt(e.to_string()))?;
        records.push(ArchivedRecord {
            lsn: record.lsn(),
            timestamp_ms: record.timestamp_ms(),
            batch_start: record.is_batch_start(),
            batch_end: record.is_batch_end(),
            data: record.into_data(),
        });
    }
    Ok(records)
}

/// How a [`Follower`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FollowOptions {
    /// The first LSN to yield (default: the archive's first record).
    pub from: Option<Lsn>,
    /// How long the follower waits before it looks for a newer manifest, once it has yielded
    /// every archived record. Default 200 ms.
    pub poll: Duration,
    /// How failed store operations are retried.
    pub backoff: Backoff,
    /// Attempts at a store operation before the error is returned (the follower stays where
    /// it was and can be asked again). Default 10.
    pub attempts: u32,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            from: None,
            poll: Duration::from_millis(200),
            backoff: Backoff::default(),
            attempts: 10,
        }
    }
}

impl FollowOptions {
    /// Sets [`FollowOptions::from`].
    pub fn from(mut self, lsn: Lsn) -> Self {
        self.from = Some(lsn);
        self
    }

    /// Sets [`FollowOptions::poll`].
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Sets [`FollowOptions::backoff`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets [`FollowOptions::attempts`].
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.poll.is_zero() || self.poll > Duration::from_secs(3600) {
            return Err(Error::InvalidOptions {
                name: "poll",
                reason: "must be more than zero and at most an hour",
            });
        }
        if self.attempts == 0 {
            return Err(Error::InvalidOptions {
                name: "attempts",
                reason: "must be at least 1",
            });
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return Err(Error::InvalidOptions {
                name: "backoff",
                reason: "the first wait must be more than zero and at most the longest",
            });
        }
        if self.from == Some(Lsn::ZERO) {
            return Err(Error::InvalidOptions {
                name: "from",
                reason: "LSNs start at 1",
            });
        }
        Ok(())
    }
}

/// How far a [`Follower`] is behind the newest manifest it read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lag {
    /// Archived records not yielded yet.
    pub records: u64,
    /// The time between the newest archived batch and the last record yielded, in
    /// milliseconds (0 when caught up, or when the records carry no times).
    pub ms: u64,
    /// The newest archived LSN.
    pub archived_lsn: Lsn,
}

/// Reads an archive as its writer extends it: yields every archived record from a starting LSN
/// on, in order, each once, and waits for more (see the module docs).
///
/// As an [`Iterator`] it blocks (do not use it inside an async runtime: use
/// [`Follower::into_stream`] there). A store error is retried with backoff
/// ([`FollowOptions::attempts`] times), then returned; the follower stays where it was, and
/// the next call tries again.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tidelog::{Durability, Log};
/// use tidelog_archive::{ArchiveOptions, Archiver, FollowOptions, Follower, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::from_url(&format!("file://{}", dir.path().join("archive").display()))?;
/// let log = Arc::new(Log::open(dir.path().join("log"))?);
/// let archiver = Archiver::start(Arc::clone(&log), store.clone(), ArchiveOptions::default())?;
/// log.append(b"hello", Durability::Synced)?;
/// archiver.stop()?;
///
/// let mut follower = Follower::new(store, FollowOptions::default())?;
/// let record = follower.next().expect("a follower never ends")?;
/// assert_eq!(record.data(), b"hello");
/// # Ok(()) }
/// ```
pub struct Follower {
    store: Store,
    options: FollowOptions,
    runtime: Option<tokio::runtime::Runtime>,
    manifest: Option<Manifest>,
    /// The next LSN to yield (`None` until the archive's start is known).
    next: Option<Lsn>,
    buffered: VecDeque<ArchivedRecord>,
    last_ms: Option<u64>,
    lease: Lease,
    retries: u64,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("store", &self.store.location())
            .field("next", &self.next)
            .field("lag", &self.lag())
            .finish()
    }
}

impl Follower {
    /// A follower of the archive in `store`. Touches nothing yet: the first read does.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`].
    pub fn new(store: Store, options: FollowOptions) -> Result<Follower> {
        options.validate()?;
        Ok(Follower {
            lease: Lease::new(&store),
            store,
            next: options.from,
            options,
            runtime: None,
            manifest: None,
            buffered: VecDeque::new(),
            last_ms: None,
            retries: 0,
        })
    }

    /// The LSN of the next record to yield (`None` before the first read of an archive without
    /// [`FollowOptions::from`]).
    pub fn position(&self) -> Option<Lsn> {
        self.next
    }

    /// How far behind the newest manifest read the follower is.
    pub fn lag(&self) -> Lag {
        let Some(manifest) = &self.manifest else {
            return Lag::default();
        };
        let archived = manifest.last_lsn();
        let yielded = self.next.map_or(Lsn::ZERO, Lsn::prev);
        let ms = match (manifest.last_ms(), self.last_ms) {
            (Some(newest), Some(seen)) if archived > yielded => newest.saturating_sub(seen),
            (Some(newest), None) if archived > yielded => now_ms().saturating_sub(newest),
            _ => 0,
        };
        Lag {
            records: archived.get().saturating_sub(yielded.get()),
            ms,
            archived_lsn: archived,
        }
    }

    /// Store operations that failed and were retried.
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// The next record if one is archived, after at most one look at the store for a newer
    /// manifest; `None` if none is. Blocking.
    ///
    /// # Errors
    /// [`Error::Gap`] if the records from the position on were removed by retention,
    /// [`Error::ForeignArchive`] if the archive was replaced by another log's,
    /// [`Error::CorruptObject`], [`Error::BadManifest`], [`Error::Store`] once the attempts
    /// ran out.
    pub fn try_next(&mut self) -> Result<Option<ArchivedRecord>> {
        crate::io::not_in_runtime("Follower::try_next")?;
        let runtime = match self.runtime.take() {
            Some(runtime) => runtime,
            None => crate::io::runtime(
                "start a runtime for following",
                std::path::PathBuf::from(self.store.location()),
            )?,
        };
        let next = runtime.block_on(self.try_next_async());
        self.runtime = Some(runtime);
        next
    }

    /// The async form of [`Follower::try_next`].
    ///
    /// # Errors
    /// As [`Follower::try_next`].
    pub async fn try_next_async(&mut self) -> Result<Option<ArchivedRecord>> {
        if self.buffered.is_empty() {
            self.fill().await?;
        }
        self.lease.renew().await;
        let Some(record) = self.buffered.pop_front() else {
            return Ok(None);
        };
        self.next = Some(record.lsn.next());
        self.last_ms = record.timestamp_ms.or(self.last_ms);
        Ok(Some(record))
    }

    /// The next record, waiting for it as long as it takes (looking every
    /// [`FollowOptions::poll`]). Needs a Tokio runtime with time enabled.
    ///
    /// # Errors
    /// As [`Follower::try_next`].
    pub async fn next_async(&mut self) -> Result<ArchivedRecord> {
        loop {
            if let Some(record) = self.try_next_async().await? {
                return Ok(record);
            }
            tokio::time::sleep(self.options.poll).await;
        }
    }

    /// The follower as a stream of records, which never ends by itself. Needs a Tokio runtime
    /// with time enabled.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<ArchivedRecord>> {
        futures::stream::unfold(self, |mut follower| async move {
            let next = follower.next_async().await;
            Some((next, follower))
        })
    }

    /// Runs `op`, retrying store errors as the options say.
    async fn retrying<T, F, Fut>(&mut self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e @ Error::Store { .. }) if attempt + 1 < self.options.attempts => {
                    attempt += 1;
                    self.retries += 1;
                    tracing::warn!(error = %e, attempt, "tidelog follower: retrying");
                    tokio::time::sleep(self.options.backoff.wait(attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Reads the records of the object holding the position into the buffer, after reading a
    /// newer manifest if the one it has ends before the position.
    async fn fill(&mut self) -> Result<()> {
        if !self.lease.is_held() && !self.lease.failed_lately() {
            // Retention's rule: the lease goes up before the first manifest is read (and only
            // at a location that holds an archive: a mistyped one is left alone).
            let store = self.store.clone();
            if self
                .retrying(|| io::manifest_seqs(&store))
                .await?
                .is_empty()
            {
                return Ok(());
            }
            self.lease.hold(self.next.unwrap_or(Lsn::FIRST)).await;
        }
        // An object can vanish under a reader when its writer replaced it (a tail by a longer
        // one): the newer manifest names what replaced it.
        for _ in 0..3 {
            let behind = match (&self.manifest, self.next) {
                (Some(m), Some(next)) => m.last_lsn() < next,
                _ => true,
            };
            if behind {
                self.refresh().await?;
            }
            let Some(manifest) = &self.manifest else {
                return Ok(());
            };
            let next = *self.next.get_or_insert(manifest.first_lsn());
            if next < manifest.first_lsn() {
                return Err(Error::Gap {
                    first: next,
                    last: manifest.first_lsn().prev(),
                });
            }
            let Some(object) = manifest.object_holding(next).cloned() else {
                // Caught up: the lease (at or below the position) stays, renewed when due.
                self.lease.renew().await;
                return Ok(());
            };
            let store = self.store.clone();
            self.lease.hold(Lsn::new(object.first_lsn)).await;
            let got = self.retrying(|| io::get(&store, &object.name)).await;
            let bytes = match got {
                Ok(bytes) => bytes,
                Err(e @ Error::MissingObject { .. }) => {
                    self.refresh().await?;
                    let still_named = self.manifest.as_ref().is_some_and(|m| {
                        m.object_holding(next)
                            .is_some_and(|o| o.name == object.name)
                    });
                    if still_named {
                        // Named by the newest manifest, yet gone: no wait fixes that.
                        return Err(e);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let records = decode(&self.store, &object, &bytes)?;
            self.buffered
                .extend(records.into_iter().filter(|r| r.lsn >= next));
            return Ok(());
        }
        Ok(())
    }

    /// Reads the newest manifest, if it is newer than the one the follower has (a listing,
    /// and a read only when there is one).
    async fn refresh(&mut self) -> Result<()> {
        let store = self.store.clone();
        let seqs = self.retrying(|| io::manifest_seqs(&store)).await?;
        let Some(&seq) = seqs.last() else {
            return Ok(());
        };
        if self.manifest.as_ref().is_some_and(|m| m.seq >= seq) {
            return Ok(());
        }
        let read = self.retrying(|| io::read_manifest(&store, seq)).await?;
        // Gone since the listing: removed as an old one, and the next look finds the newer.
        let Some(newest) = read else {
            return Ok(());
        };
        if let Some(old) = &self.manifest
            && newest.log_id() != old.log_id()
        {
            return Err(Error::ForeignArchive {
                expected: old.log_id(),
                found: newest.log_id(),
            });
        }
        self.manifest = Some(newest);
        Ok(())
    }
}

impl Iterator for Follower {
    type Item = Result<ArchivedRecord>;

    /// The next record, waiting for it as long as it takes; never `None`.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.try_next() {
                Ok(Some(record)) => return Some(Ok(record)),
                Ok(None) => std::thread::sleep(self.options.poll),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        // The lease goes with the follower when it can be removed here; otherwise it runs out.
        if let Some(runtime) = self.runtime.take() {
            runtime.block_on(self.lease.release());
        } else if self.lease.is_held() {
            // Used as a stream, perhaps inside a runtime, where it cannot block: a thread of
            // its own removes the lease.
            let mut lease = self.lease.take();
            let _ = std::thread::Builder::new()
                .name("tidelog-follower-lease".to_owned())
                .spawn(move || {
                    if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        runtime.block_on(lease.release());
                    }
                });
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
