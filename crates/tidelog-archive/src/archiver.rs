//! [`Archiver`]: a background thread that uploads a log's segments to a [`Store`] as they are
//! sealed, and the durable part of the segment taking appends every `interval`, and keeps the
//! `archived_lsn` watermark.
//!
//! Invariants: `archived_lsn` only moves once the manifest naming the object that holds it was
//! written, so a failed upload or manifest write never counts; while the archiver runs, the
//! log's retention floor sits at `archived_lsn + 1`, so no local checkpoint removes a segment
//! that is not archived; objects already in the store with the same range and checksum (left by
//! an earlier run that stopped before its manifest write) are taken as they are, never
//! uploaded twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidelog::{Log, Lsn, SegmentCopy, SegmentEvent};
use tokio::runtime::Runtime;

use crate::error::{Error, Result};
use crate::io::{self, Backoff};
use crate::manifest::{Manifest, ObjectEntry, ObjectKind, SEGMENTS, manifest_name, parse_name};
use crate::store::Store;

/// How an [`Archiver`] works.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveOptions {
    /// How often the durable part of the segment taking appends is uploaded: the archive lags
    /// the durable log by at most this plus one upload (the recovery-point objective). Sealed
    /// segments are uploaded as soon as they are sealed. Default 1 s.
    pub interval: Duration,
    /// Objects larger than this are uploaded in parts of this size (S3 wants at least 5 MiB).
    /// Default 8 MiB.
    pub part_bytes: usize,
    /// How failed store operations are retried (forever while the archiver runs; a few times
    /// when it is stopping).
    pub backoff: Backoff,
    /// Whether the archiver keeps other writers out of the archive (on by default; see
    /// [`Error::Fenced`]). Fencing needs a store that can put an object only if its name is free;
    /// a store that cannot is refused ([`Error::Unfenceable`]) unless this is off, in which case
    /// nothing stops a second writer from corrupting the archive: run one writer at a time.
    pub fencing: bool,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            interval: Duration::from_secs(1),
            part_bytes: 8 << 20,
            backoff: Backoff::default(),
            fencing: true,
        }
    }
}

impl ArchiveOptions {
    /// Sets [`ArchiveOptions::interval`].
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets [`ArchiveOptions::part_bytes`].
    pub fn part_bytes(mut self, bytes: usize) -> Self {
        self.part_bytes = bytes;
        self
    }

    /// Sets [`ArchiveOptions::backoff`].
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets [`ArchiveOptions::fencing`].
    pub fn fencing(mut self, fencing: bool) -> Self {
        self.fencing = fencing;
        self
    }

    fn validate(&self) -> Result<()> {
        if self.interval.is_zero() || self.interval > Duration::from_secs(86_400) {
            return Err(Error::InvalidOptions {
                name: "interval",
                reason: "must be more than zero and at most a day",
            });
        }
        if self.part_bytes < 1024 {
            return Err(Error::InvalidOptions {
                name: "part_bytes",
                reason: "must be at least 1 KiB",
            });
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return Err(Error::InvalidOptions {
                name: "backoff",
                reason: "the first wait must be more than zero and at most the longest",
            });
        }
        Ok(())
    }
}

/// What an archiver has done, from [`Archiver::status`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveStatus {
    /// Every record at or below it is in the store, named by the manifest.
    pub archived_lsn: Lsn,
    /// The log's durable LSN when the status was taken.
    pub durable_lsn: Lsn,
    /// The writer generation this archiver writes under.
    pub generation: u64,
    /// Who this archiver claimed its generation as (host, process, a unique token).
    pub holder: String,
    /// Set once another writer took the archive ([`Error::Fenced`]): the archiver stopped and
    /// archives nothing more; the local log is unchanged and usable.
    pub fenced: Option<String>,
    /// Objects uploaded (or found already there) and named by the manifest.
    pub uploads: u64,
    /// Bytes of those objects.
    pub bytes: u64,
    /// Store operations that failed and were retried.
    pub retries: u64,
    /// The last failure, if the last operation failed (cleared by the next success).
    pub last_error: Option<String>,
    /// Why the archiver stopped, if it stopped on an error.
    pub stopped: Option<String>,
}

impl ArchiveStatus {
    /// Durable records not archived yet.
    pub fn lag_records(&self) -> u64 {
        self.durable_lsn
            .get()
            .saturating_sub(self.archived_lsn.get())
    }
}

struct Shared {
    status: Mutex<ArchiveStatus>,
    changed: Condvar,
    watch: tokio::sync::watch::Sender<(Lsn, bool)>,
    stop: AtomicBool,
}

impl Shared {
    fn status(&self) -> MutexGuard<'_, ArchiveStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn archived(&self, lsn: Lsn) {
        self.status().archived_lsn = lsn;
        self.watch.send_modify(|w| w.0 = lsn);
        self.changed.notify_all();
    }

    fn stopped(&self, error: Option<&Error>) {
        let reason = error.map_or_else(|| "stopped".to_owned(), ToString::to_string);
        {
            let mut status = self.status();
            if matches!(error, Some(Error::Fenced { .. })) {
                status.fenced = Some(reason.clone());
                metrics::gauge!("tidelog_archive_fenced").set(1.0);
            }
            status.stopped = Some(reason);
        }
        self.watch.send_modify(|w| w.1 = true);
        self.changed.notify_all();
    }
}

/// Uploads a log's segments to a store in the background (see the module docs).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tidelog::{Durability, Log};
/// use tidelog_archive::{ArchiveOptions, Archiver, Store};
///
/// let dir = tempfile::tempdir()?;
/// let log = Arc::new(Log::open(dir.path().join("log"))?);
/// let store = Store::from_url(&format!("file://{}", dir.path().join("archive").display()))?;
/// let archiver = Archiver::start(Arc::clone(&log), store, ArchiveOptions::default())?;
/// let lsn = log.append(b"hello", Durability::Synced)?;
/// archiver.wait_archived(lsn, Duration::from_secs(10))?; // in the store now
/// archiver.stop()?;
/// # Ok(()) }
/// ```
pub struct Archiver {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<()>>>,
    log: Arc<Log>,
}

impl std::fmt::Debug for Archiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archiver")
            .field("status", &*self.shared.status())
            .finish()
    }
}

impl Archiver {
    /// Starts archiving `log` to `store`: reads the store's newest manifest (or starts a new
    /// archive), checks that the archive's records are the log's, claims the next writer
    /// generation (which fences off the writer that held it), holds the log's segments from
    /// the first LSN not archived on (the retention floor), and starts the background thread.
    ///
    /// # Errors
    /// [`Error::Fenced`] if another writer claimed the archive at the same moment,
    /// [`Error::Unfenceable`] for a store without conditional puts (unless
    /// [`ArchiveOptions::fencing`] is off), [`Error::Diverged`] if the archive holds other
    /// records than the log at the same LSNs, [`Error::ForeignArchive`] if the store holds
    /// another log's archive, [`Error::ArchiveAhead`] if it holds records past the log's last
    /// (bring the log up to date with [`fast_forward`](crate::fast_forward)),
    /// [`Error::BadManifest`], [`Error::Store`] (after the backoff's retries: a store that
    /// cannot be reached at the start is reported, not waited for), [`Error::InvalidOptions`],
    /// [`Error::Log`].
    pub fn start(log: Arc<Log>, store: Store, options: ArchiveOptions) -> Result<Archiver> {
        crate::io::not_in_runtime("Archiver::start")?;
        options.validate()?;
        let runtime =
            crate::io::runtime("start the archiver's runtime for", log.dir().to_path_buf())?;
        let (watch, _) = tokio::sync::watch::channel((Lsn::ZERO, false));
        let shared = Arc::new(Shared {
            status: Mutex::new(ArchiveStatus::default()),
            changed: Condvar::new(),
            watch,
            stop: AtomicBool::new(false),
        });
        // Subscribe before listing, so no seal falls between the two.
        let events = log.segment_events();
        let mut worker = Worker {
            log: Arc::clone(&log),
            store,
            options,
            shared: Arc::clone(&shared),
            runtime,
            manifest: Manifest::new(log.log_id()),
            holder: crate::fence::holder_name(),
            existing: HashMap::new(),
            events,
        };
        worker.resume()?;
        let thread = std::thread::Builder::new()
            .name("tidelog-archiver".to_owned())
            .spawn(move || {
                let result = worker.run();
                if let Err(e) = &result {
                    tracing::error!(error = %e, "tidelog archiver stopped");
                }
                worker.shared.stopped(result.as_ref().err());
                result
            })
            .map_err(|source| Error::Io {
                op: "start the archiver thread for",
                path: log.dir().to_path_buf(),
                source,
            })?;
        Ok(Archiver {
            shared,
            thread: Some(thread),
            log,
        })
    }

    /// Every record at or below this LSN is archived.
    pub fn archived_lsn(&self) -> Lsn {
        self.shared.status().archived_lsn
    }

    /// What the archiver has done, with the lag behind the durable log.
    pub fn status(&self) -> ArchiveStatus {
        let mut status = self.shared.status().clone();
        status.durable_lsn = self.log.durable_lsn();
        status
    }

    /// Waits until `lsn` is archived, at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], or [`Error::Stopped`] if the archiver stopped first.
    pub fn wait_archived(&self, lsn: Lsn, timeout: Duration) -> Result<()> {
        crate::worker::wait_for(
            (&self.shared.status, &self.shared.changed),
            lsn,
            timeout,
            |s| s.archived_lsn,
            |s| s.stopped.as_ref(),
        )
    }

    /// Resolves once `lsn` is archived: the async form of [`Archiver::wait_archived`], for
    /// any runtime. [`Archiver::start`] and [`Archiver::stop`] block (`start` runs the
    /// store's calls on a runtime of its own, which cannot run inside another): call them
    /// outside async code, or in the runtime's blocking pool (`tokio::task::spawn_blocking`).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use tidelog::{Durability, Log};
    /// use tidelog_archive::{ArchiveOptions, Archiver, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Arc::new(Log::open(dir.path().join("log"))?);
    /// let options = ArchiveOptions::default().interval(Duration::from_millis(100));
    /// let archiver = Archiver::start(Arc::clone(&log), Store::from_url("memory://")?, options)?;
    /// let lsn = log.append(b"hello", Durability::Synced)?;
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// runtime.block_on(async {
    ///     // The runtime's thread is free meanwhile. No time limit: for one, wrap the wait in
    ///     // the runtime's timeout (`tokio::time::timeout`).
    ///     archiver.archived(lsn).await
    /// })?;
    /// assert!(archiver.archived_lsn() >= lsn);
    /// archiver.stop()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Stopped`] if the archiver stopped first.
    pub async fn archived(&self, lsn: Lsn) -> Result<()> {
        let mut rx = self.shared.watch.subscribe();
        let seen = rx
            .wait_for(|&(archived, stopped)| archived >= lsn || stopped)
            .await
            .map(|w| w.0);
        match seen {
            Ok(archived) if archived >= lsn => Ok(()),
            _ => Err(Error::Stopped {
                reason: self
                    .shared
                    .status()
                    .stopped
                    .clone()
                    .unwrap_or_else(|| "stopped".to_owned()),
            }),
        }
    }

    /// Uploads what is durable now (sealed segments and the tail), then stops the thread, and
    /// returns what the archiver did in all. The log's retention floor stays where the archive
    /// ends, so a later archiver resumes there.
    ///
    /// # Errors
    /// The error the archiver stopped on, or of the last upload, which is retried a few times.
    pub fn stop(mut self) -> Result<ArchiveStatus> {
        self.stop_thread()?;
        Ok(self.status())
    }

    fn stop_thread(&mut self) -> Result<()> {
        crate::worker::stop(&self.shared.stop, &mut self.thread, "archiver")
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        let _ = self.stop_thread();
    }
}

/// `manifest` with `entry` added: in place of the tail it ends with, if any, and right after the
/// last record it names.
fn with_object(manifest: &Manifest, entry: &ObjectEntry) -> Result<Manifest> {
    let mut next = manifest.clone();
    if next
        .objects
        .last()
        .is_some_and(|o| o.kind == ObjectKind::Tail)
    {
        next.objects.pop();
    }
    let archived = next.last_lsn();
    if !next.objects.is_empty() && entry.first_lsn != archived.get() + 1 {
        return Err(Error::SegmentsMisaligned {
            first: Lsn::new(entry.first_lsn),
            archived,
        });
    }
    next.objects.push(entry.clone());
    Ok(next)
}

/// The archiver thread's state.
struct Worker {
    log: Arc<Log>,
    store: Store,
    options: ArchiveOptions,
    shared: Arc<Shared>,
    runtime: Runtime,
    manifest: Manifest,
    /// This archiver's claim.
    holder: String,
    /// Objects in the store by (first, last, crc, kind): name and size.
    existing: HashMap<(u64, u64, u32, ObjectKind), (String, u64)>,
    events: Receiver<SegmentEvent>,
}

/// How long the thread waits for an event before it looks at the stop flag again.
const POLL: Duration = Duration::from_millis(20);
/// Attempts at each store operation once the archiver is stopping.
const STOPPING_ATTEMPTS: u32 = 4;
/// How many times a start reads the manifest again because its holder wrote a newer one while
/// the claim was being made.
const CLAIMS: u32 = 32;
/// The highest generation: object names give it 10 digits.
const MAX_GENERATION: u64 = 9_999_999_999;

impl Worker {
    /// Runs `op` against the store, retrying with backoff; gives up on the first failure that
    /// is not the store's, or after a few attempts once stopping.
    fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.retry_bounded(what, false, op)
    }

    /// As [`Worker::retry`]; `bounded`: gives up after a few attempts even when not stopping
    /// (at the start, whose caller waits for it: a store that keeps failing, such as a bucket
    /// that does not exist, is an error of [`Archiver::start`], not a start that never ends).
    fn retry_bounded<T, F, Fut>(&self, what: &str, bounded: bool, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut attempt = 0u32;
        loop {
            match self.runtime.block_on(op()) {
                Ok(v) => {
                    if attempt > 0 {
                        self.shared.status().last_error = None;
                    }
                    return Ok(v);
                }
                Err(e @ Error::Store { .. }) => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "tidelog archiver: {what} failed");
                    metrics::counter!("tidelog_archive_retries_total").increment(1);
                    {
                        let mut status = self.shared.status();
                        status.retries += 1;
                        status.last_error = Some(e.to_string());
                    }
                    let giving_up = bounded || self.shared.stop.load(Ordering::SeqCst);
                    if giving_up && attempt >= STOPPING_ATTEMPTS {
                        return Err(e);
                    }
                    std::thread::sleep(self.options.backoff.wait(attempt));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads what the store holds: the newest manifest (checked against the log) and the
    /// objects already uploaded; claims the next generation and sets the retention floor.
    fn resume(&mut self) -> Result<()> {
        let store = self.store.clone();
        let log_id = self.log.log_id();
        // Records the log holds but has not made durable would escape the check below.
        self.log.sync()?;
        let mut claimed = None;
        for _ in 0..CLAIMS {
            let found =
                self.retry_bounded("read the manifest", true, || io::latest_manifest(&store))?;
            if let Some(manifest) = &found {
                match self.check_against_log(manifest) {
                    // An object of the manifest replaced since it was read (a tail): a newer
                    // manifest is there. If none is, the store lost it.
                    Err(e @ Error::MissingObject { .. }) => {
                        let seqs =
                            self.retry_bounded("list", true, || io::manifest_seqs(&store))?;
                        if seqs.last().is_some_and(|&s| s > manifest.seq) {
                            continue;
                        }
                        return Err(e);
                    }
                    other => other?,
                }
            }
            let base = found.unwrap_or_else(|| Manifest::new(log_id));
            let mut claim = base.clone();
            claim.seq = crate::fence::next_seq(&store, &base)?;
            claim.generation = base
                .generation
                .checked_add(1)
                .filter(|&g| g <= MAX_GENERATION)
                .ok_or_else(|| Error::BadManifest {
                    key: store.path(&manifest_name(base.seq)).to_string(),
                    reason: format!("generation {} leaves no next one", base.generation),
                })?;
            claim.holder = self.holder.clone();
            let fencing = self.options.fencing;
            let (generation, holder) = (claim.generation, claim.holder.clone());
            let attempt = self.retry_bounded("claim the archive", true, || {
                crate::fence::attempt(&store, claim.clone(), fencing, |m| {
                    m.generation == generation && m.holder == holder
                })
            })?;
            match attempt {
                crate::fence::Attempt::Written(written) => {
                    if fencing {
                        self.check_conditional(&written)?;
                    }
                    claimed = Some(written);
                    break;
                }
                // Another claim won: this writer is fenced off before it wrote anything.
                crate::fence::Attempt::Lost(newest) if newest.generation > base.generation => {
                    return Err(crate::fence::fenced_by(0, &newest));
                }
                // The holder wrote a manifest (or a prune did) since it was read: read again.
                crate::fence::Attempt::Lost(_) => {}
            }
        }
        let Some(manifest) = claimed else {
            return Err(Error::Stopped {
                reason: "the archive's manifest kept changing while this writer claimed it"
                    .to_owned(),
            });
        };
        tracing::info!(generation = manifest.generation, holder = %self.holder, "tidelog archiver claimed the archive");
        self.manifest = manifest;
        let listed = self.retry_bounded("list", true, || io::list(&store, SEGMENTS))?;
        for (name, size) in listed {
            if let Some(p) = parse_name(&name).filter(|p| p.log_id == log_id) {
                self.existing
                    .insert((p.first_lsn, p.last_lsn, p.crc32c, p.kind), (name, size));
            }
        }
        let archived = self.manifest.last_lsn();
        self.log.set_retention_floor(Some(archived.next()))?;
        {
            let mut status = self.shared.status();
            status.generation = self.manifest.generation;
            status.holder = self.holder.clone();
        }
        metrics::gauge!("tidelog_archive_fenced").set(0.0);
        self.shared.archived(archived);
        Ok(())
    }

    /// Whether the object `name` an earlier archiver left holds `len` bytes whose checksum is
    /// `crc` (its name says so, but its bytes may have been damaged since). One that does not
    /// is left alone and never adopted.
    fn intact(&mut self, name: &str, len: u64, crc: u32) -> Result<bool> {
        let store = self.store.clone();
        let intact = match self.retry("read a leftover object", || io::get(&store, name)) {
            Ok(bytes) => bytes.len() as u64 == len && crc32c::crc32c(&bytes) == crc,
            Err(Error::MissingObject { .. }) => false,
            Err(e) => return Err(e),
        };
        if !intact {
            tracing::warn!(
                object = name,
                "tidelog archiver: a leftover object is damaged, not adopted"
            );
            self.existing.retain(|_, (n, _)| n != name);
        }
        Ok(intact)
    }

    /// Checks that the store refuses to create a name that is taken (some S3-compatible stores
    /// ignore the condition, which would make fencing silently off): writing the claim again
    /// must find it there.
    fn check_conditional(&self, claim: &Manifest) -> Result<()> {
        let store = self.store.clone();
        let again = self.retry_bounded("check conditional puts", true, || {
            io::write_manifest(&store, claim, true)
        })?;
        if let io::Written::Taken(_) = again {
            return Ok(());
        }
        // Created again: the store ignored the condition, unless the name was free again
        // because another holder's chain moved far past this claim meanwhile.
        let newest =
            self.retry_bounded("read the manifest", true, || io::latest_manifest(&store))?;
        match newest {
            Some(newest) if newest.seq > claim.seq && newest.holder != claim.holder => {
                Err(crate::fence::fenced_by(0, &newest))
            }
            _ => Err(Error::Unfenceable {
                store: store.location().to_owned(),
            }),
        }
    }

    /// Checks that `manifest` archives this log: the same log id, the same records at the LSNs
    /// both hold, and none past the log's last.
    fn check_against_log(&self, manifest: &Manifest) -> Result<()> {
        let log_id = self.log.log_id();
        if manifest.log_id() != log_id {
            return Err(Error::ForeignArchive {
                expected: log_id,
                found: manifest.log_id(),
            });
        }
        let store = self.store.clone();
        let backoff = self.options.backoff;
        // One view of the log for both checks: records appended from here on get LSNs past
        // it, so an archive reaching past it is ahead, whatever is appended meanwhile.
        let durable = self.log.durable_lsn();
        if let Some(lsn) = crate::divergence::first_difference(
            &self.runtime,
            &store,
            backoff,
            (&self.log, durable),
            manifest,
        )? {
            return Err(Error::Diverged {
                lsn,
                local: durable,
                remote: manifest.last_lsn(),
            });
        }
        if manifest.last_lsn() > durable {
            return Err(Error::ArchiveAhead {
                archived: manifest.last_lsn(),
                last: durable,
            });
        }
        Ok(())
    }

    fn archived(&self) -> Lsn {
        self.manifest.last_lsn()
    }

    fn run(&mut self) -> Result<()> {
        let mut next_tail = Instant::now() + self.options.interval;
        loop {
            let stopping = self.shared.stop.load(Ordering::SeqCst);
            self.catch_up()?;
            if stopping {
                return self.upload_tail();
            }
            let now = Instant::now();
            if now >= next_tail {
                // Ticks are counted from their start, not from the end of their upload, so a
                // record durable at time t is in the store by the end of the first tick that
                // starts after t: at most one interval plus one upload later.
                self.upload_tail()?;
                next_tail = now + self.options.interval;
            }
            let wait = next_tail
                .saturating_duration_since(Instant::now())
                .min(POLL);
            match self.events.recv_timeout(wait) {
                Ok(SegmentEvent::RolledBack { to }) if to < self.archived() => {
                    return Err(Error::RolledBackBelowArchive {
                        to,
                        archived: self.archived(),
                    });
                }
                Ok(_) | Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
            self.report_lag();
        }
    }

    fn report_lag(&self) {
        let lag = self
            .log
            .durable_lsn()
            .get()
            .saturating_sub(self.archived().get());
        metrics::gauge!("tidelog_archive_lag_records").set(lag as f64);
    }

    /// Uploads every complete segment not archived whole yet, in order.
    fn catch_up(&mut self) -> Result<()> {
        for info in self.log.segments() {
            let archived = self.archived();
            let tail_of_it =
                self.manifest.objects.last().is_some_and(|o| {
                    o.kind == ObjectKind::Tail && o.first_lsn == info.first_lsn.get()
                });
            let behind = info.last_lsn > archived || tail_of_it;
            if info.active || !behind || info.last_lsn < info.first_lsn {
                continue;
            }
            let copy = match self.log.copy_segment(info.first_lsn) {
                Ok(copy) => copy,
                // The event that follows says what happened.
                Err(tidelog::Error::RolledBack { .. }) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            if !copy.is_complete() {
                // Being sealed right now: its event comes.
                return Ok(());
            }
            self.upload(copy, ObjectKind::Seg)?;
        }
        Ok(())
    }

    /// Uploads the durable part of the segment taking appends, if it holds records not
    /// archived yet and everything before it is archived.
    fn upload_tail(&mut self) -> Result<()> {
        let segments = self.log.segments();
        let Some(active) = segments.last() else {
            return Ok(());
        };
        let archived = self.archived();
        if archived.next() < active.first_lsn || self.log.durable_lsn() <= archived {
            return Ok(());
        }
        let copy = match self.log.copy_segment(active.first_lsn) {
            Ok(copy) => copy,
            Err(tidelog::Error::RolledBack { .. } | tidelog::Error::InvalidLsn { .. }) => {
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if copy.last_lsn() <= archived {
            return Ok(());
        }
        let kind = if copy.is_complete() {
            ObjectKind::Seg
        } else {
            ObjectKind::Tail
        };
        self.upload(copy, kind)
    }

    /// Puts `copy` in the store (unless an identical object is there), names it in the
    /// manifest in place of the tail it replaces, and moves the watermark and the floor.
    fn upload(&mut self, copy: SegmentCopy, kind: ObjectKind) -> Result<()> {
        let (first, last) = (copy.first_lsn(), copy.last_lsn());
        let (first_ms, last_ms) = (copy.first_ms(), copy.last_ms());
        let bytes = Bytes::from(copy.into_bytes());
        let len = bytes.len() as u64;
        let crc = crc32c::crc32c(&bytes);
        let _span =
            tracing::info_span!("tidelog_archive.upload", first = %first, last = %last).entered();
        let key = (first.get(), last.get(), crc, kind);
        // An object an earlier archiver left (its manifest write never happened) keeps its
        // name, and with it that archiver's generation.
        let leftover = match self.existing.get(&key) {
            Some((name, size)) if *size == len => Some(name.clone()),
            _ => None,
        };
        let leftover = match leftover {
            Some(name) => self.intact(&name, len, crc)?.then_some(name),
            None => None,
        };
        let (name, generation) = match leftover {
            Some(name) => {
                let generation = parse_name(&name).map_or(0, |p| p.generation);
                (name, generation)
            }
            None => {
                let name = ObjectEntry::name_for(
                    self.manifest.log_id(),
                    first,
                    last,
                    self.manifest.generation,
                    crc,
                    kind,
                );
                let (store, part) = (self.store.clone(), self.options.part_bytes);
                let mut tried = false;
                self.retry("upload", || {
                    let again = std::mem::replace(&mut tried, true);
                    io::put_once(&store, &name, bytes.clone(), part, again)
                })?;
                (name, self.manifest.generation)
            }
        };
        let entry = ObjectEntry {
            name,
            first_lsn: first.get(),
            last_lsn: last.get(),
            bytes: len,
            crc32c: crc,
            first_ms,
            last_ms,
            kind,
            generation,
        };
        // The tail it replaces, if the manifest ends with one (and not this very object).
        let replaced = self
            .manifest
            .objects
            .last()
            .filter(|o| o.kind == ObjectKind::Tail && o.name != entry.name)
            .cloned();
        let store = self.store.clone();
        let fencing = self.options.fencing;
        let base = self.manifest.clone();
        let next = self.retry("manifest write", || {
            crate::fence::commit(
                &store,
                &base,
                fencing,
                |m| with_object(m, &entry),
                |m| m.objects.iter().any(|o| o.name == entry.name),
            )
        })?;
        self.manifest = next;
        if let Some(old) = replaced {
            // Best effort: a leftover is named by no manifest and never read.
            let _ = self.runtime.block_on(io::delete(&store, &old.name));
        }
        {
            let mut status = self.shared.status();
            status.uploads += 1;
            status.bytes += len;
        }
        metrics::counter!("tidelog_archive_uploads_total").increment(1);
        metrics::counter!("tidelog_archive_upload_bytes_total").increment(len);
        self.log.set_retention_floor(Some(last.next()))?;
        self.shared.archived(last);
        self.report_lag();
        Ok(())
    }
}
