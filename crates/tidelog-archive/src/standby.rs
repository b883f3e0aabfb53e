//! Pulling archived records into a local log: [`fast_forward`] brings a log that is behind its
//! archive (a restored or older copy) up to the archive's end before it appends, and a
//! [`Standby`] does so over and over, keeping a hot copy of a live writer's log.
//!
//! Invariants: nothing is pulled into a log that holds other records than the archive at the
//! same LSNs (checked first, [`Error::Diverged`]); records are appended batch by batch as the
//! archive holds them, and the log is rolled where an archived segment ends, so its segments
//! are cut where the archive's objects are and the log can later archive to the same place.
//! The records pulled get the local clock's times (their bytes are the archive's).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tidelog::{Durability, Log, Lsn};
use tokio::runtime::Runtime;

use crate::error::{Error, Result};
use crate::follow::{FollowOptions, decode};
use crate::io::{self, Backoff};
use crate::manifest::ObjectKind;
use crate::retention::Lease;
use crate::store::Store;

/// How many passes a [`fast_forward`] makes while the tails it reads are replaced under it.
const PASSES: u32 = 16;

/// What a [`fast_forward`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FastForward {
    /// Records appended from the archive.
    pub records: u64,
    /// Objects read.
    pub objects: usize,
    /// The log's last LSN after it.
    pub last_lsn: Lsn,
}

/// Appends to `log` the archived records past its last one, so that it ends where its archive
/// ends; a log already there (or past it) is left as it is. Call it before the log takes
/// appends: an append beside it is refused by the check of the LSNs it gets. Blocking.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tidelog::{Durability, Log, Lsn};
/// use tidelog_archive::{ArchiveOptions, Archiver, Store, Target, fast_forward, restore};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::from_url(&format!("file://{}", dir.path().join("archive").display()))?;
/// let log = Arc::new(Log::open(dir.path().join("log"))?);
/// let archiver = Archiver::start(Arc::clone(&log), store.clone(), ArchiveOptions::default())?;
/// log.append(b"one", Durability::Synced)?;
/// archiver.stop()?;
/// let old = restore(&store, dir.path().join("copy"), Target::Latest)?; // an older copy
///
/// let archiver = Archiver::start(Arc::clone(&log), store.clone(), ArchiveOptions::default())?;
/// log.append(b"two", Durability::Synced)?;
/// archiver.stop()?;
///
/// let copy = Log::open(&old.dir)?;
/// let pulled = fast_forward(&copy, &store)?;
/// assert_eq!(pulled.records, 1);
/// assert_eq!(copy.read(Lsn::new(2))?.data(), b"two");
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Diverged`] if the log holds other records than the archive at the same LSNs,
/// [`Error::ForeignArchive`], [`Error::Gap`] if the archive starts past the log's next LSN
/// (retention removed what the log misses), [`Error::SegmentsMisaligned`] if the log's
/// segment taking appends does not start where the archived object it continues does,
/// [`Error::NoArchive`], [`Error::CorruptObject`], [`Error::Store`], [`Error::Log`].
pub fn fast_forward(log: &Log, store: &Store) -> Result<FastForward> {
    crate::io::not_in_runtime("fast_forward")?;
    let runtime = runtime_for(store)?;
    let start = log.last_lsn();
    let mut lease = Lease::new(store);
    let mut pass = 0;
    let result = loop {
        pass += 1;
        match pull(
            (&runtime, &mut lease),
            log,
            store,
            Backoff::default(),
            &mut 0,
        ) {
            Ok(done) => {
                break Ok(FastForward {
                    records: done.last_lsn.get().saturating_sub(start.get()),
                    ..done
                });
            }
            // A tail its writer replaced while this pass read it: the next pass reads the
            // newer manifest (and keeps what this one appended). A busy writer may replace it
            // again; a store that lost an object fails every pass.
            Err(Error::MissingObject { .. }) if pass < PASSES => {}
            Err(e) => break Err(e),
        }
    };
    runtime.block_on(lease.release());
    result
}

fn runtime_for(store: &Store) -> Result<Runtime> {
    crate::io::runtime(
        "start a runtime for",
        std::path::PathBuf::from(store.location()),
    )
}

/// One fast-forward, on `runtime`; nothing if the newest manifest is manifest `pulled`, which
/// an earlier pass pulled whole (it becomes the one this pass pulled).
fn pull(
    (runtime, lease): (&Runtime, &mut Lease),
    log: &Log,
    store: &Store,
    backoff: Backoff,
    pulled: &mut u64,
) -> Result<FastForward> {
    // Retention's rule: a reader's lease goes up before it reads a manifest (and only at a
    // location that holds an archive).
    if lease.is_held() {
        runtime.block_on(lease.renew());
    } else if !lease.failed_lately() {
        let seqs = io::retrying(runtime, backoff, io::ATTEMPTS, || io::manifest_seqs(store))?;
        if seqs.is_empty() {
            return Err(Error::NoArchive {
                location: store.location().to_owned(),
            });
        }
        runtime.block_on(lease.hold(log.last_lsn().next()));
    }
    let manifest = io::retrying(runtime, backoff, io::ATTEMPTS, || {
        io::latest_manifest(store)
    })?
    .ok_or_else(|| Error::NoArchive {
        location: store.location().to_owned(),
    })?;
    if manifest.seq == *pulled {
        return Ok(FastForward {
            last_lsn: log.last_lsn(),
            ..FastForward::default()
        });
    }
    if manifest.log_id() != log.log_id() {
        return Err(Error::ForeignArchive {
            expected: log.log_id(),
            found: manifest.log_id(),
        });
    }
    log.sync()?;
    let mut done = FastForward {
        last_lsn: log.last_lsn(),
        ..FastForward::default()
    };
    if let Some(lsn) = crate::divergence::first_difference(
        runtime,
        store,
        backoff,
        (log, log.durable_lsn()),
        &manifest,
    )? {
        return Err(Error::Diverged {
            lsn,
            local: log.last_lsn(),
            remote: manifest.last_lsn(),
        });
    }
    if manifest.last_lsn() <= log.last_lsn() {
        *pulled = manifest.seq;
        return Ok(done);
    }
    let next = log.last_lsn().next();
    if manifest.first_lsn() > next {
        return Err(Error::Gap {
            first: next,
            last: manifest.first_lsn().prev(),
        });
    }
    for object in manifest.objects.iter().filter(|o| o.last_lsn >= next.get()) {
        let position = log.last_lsn().next();
        let active = log.segments().last().map_or(position, |s| s.first_lsn);
        if object.first_lsn == position.get() {
            // The object starts a segment: so must the log.
            log.roll()?;
        } else if active.get() != object.first_lsn {
            return Err(Error::SegmentsMisaligned {
                first: active,
                archived: Lsn::new(object.first_lsn - 1).max(position.prev()),
            });
        }
        let bytes = io::retrying(runtime, backoff, io::ATTEMPTS, || {
            io::get(store, &object.name)
        })?;
        let records = decode(store, object, &bytes)?;
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut expected = position;
        for record in records.into_iter().filter(|r| r.lsn() >= position) {
            let end = record.is_batch_end();
            batch.push(record.into_data());
            if end {
                append_exactly(log, &batch, expected)?;
                expected = Lsn::new(expected.get() + batch.len() as u64);
                done.records += batch.len() as u64;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            append_exactly(log, &batch, expected)?;
            done.records += batch.len() as u64;
        }
        done.objects += 1;
        if object.kind == ObjectKind::Seg {
            log.sync()?;
            log.roll()?;
        }
    }
    log.sync()?;
    done.last_lsn = log.last_lsn();
    *pulled = manifest.seq;
    // The lease moves up to the object the next pass starts in: it stays put while that
    // object is a tail growing.
    let next = done.last_lsn.next().get();
    let from = manifest
        .objects
        .iter()
        .rev()
        .find(|o| o.first_lsn <= next)
        .map_or(next, |o| o.first_lsn);
    runtime.block_on(lease.hold(Lsn::new(from)));
    Ok(done)
}

/// Appends `batch`, which must take the LSNs from `first` on.
fn append_exactly(log: &Log, batch: &[Vec<u8>], first: Lsn) -> Result<()> {
    let (got, _) = log.append_batch(batch, Durability::Buffered)?;
    if got != first {
        return Err(Error::Stopped {
            reason: format!(
                "an append beside the fast-forward took LSN {first}: the pulled batch got {got}"
            ),
        });
    }
    Ok(())
}

/// What a [`Standby`] has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StandbyStatus {
    /// The log's last LSN after the latest pass.
    pub applied_lsn: Lsn,
    /// Records pulled in all.
    pub records: u64,
    /// The last failure, if the latest pass failed (store errors are tried again at the next
    /// pass).
    pub last_error: Option<String>,
    /// Why the standby stopped, if it did.
    pub stopped: Option<String>,
}

struct Shared {
    status: Mutex<StandbyStatus>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn status(&self) -> MutexGuard<'_, StandbyStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A hot standby: keeps a local log up to date with an archive a live writer extends, by a
/// [`fast_forward`] every [`FollowOptions::poll`] on a thread of its own. The log opens as an
/// ordinary log; to promote it, stop the standby and start an [`Archiver`](crate::Archiver) on
/// it (which claims the archive and fences the old writer off).
///
/// It holds a reader's lease (see [`prune`](crate::prune)) at the object its next pass starts
/// in, so retention never removes what it has still to pull. Store errors are retried at the
/// next pass; [`Error::Diverged`],
/// [`Error::ForeignArchive`], [`Error::Gap`] and errors of the log stop it.
pub struct Standby {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl std::fmt::Debug for Standby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standby")
            .field("status", &*self.shared.status())
            .finish()
    }
}

impl Standby {
    /// Starts keeping `log` up to date with the archive in `store`. The log must be the
    /// archive's (restore it from there, or a copy of the writer's) and take no appends of its
    /// own while the standby runs.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`], [`Error::Io`] if the thread cannot start.
    pub fn start(log: Arc<Log>, store: Store, options: FollowOptions) -> Result<Standby> {
        crate::io::not_in_runtime("Standby::start")?;
        options.validate()?;
        let runtime = runtime_for(&store)?;
        let shared = Arc::new(Shared {
            status: Mutex::new(StandbyStatus {
                applied_lsn: log.last_lsn(),
                ..StandbyStatus::default()
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("tidelog-standby".to_owned())
            .spawn(move || {
                let result = run(&runtime, &log, &store, &options, &worker);
                let mut status = worker.status();
                status.stopped = Some(match &result {
                    Ok(()) => "stopped".to_owned(),
                    Err(e) => e.to_string(),
                });
                drop(status);
                worker.changed.notify_all();
                result
            })
            .map_err(|source| Error::Io {
                op: "start the standby thread for",
                path: std::path::PathBuf::from("standby"),
                source,
            })?;
        Ok(Standby {
            shared,
            thread: Some(thread),
        })
    }

    /// What the standby has done.
    pub fn status(&self) -> StandbyStatus {
        self.shared.status().clone()
    }

    /// Waits until the log holds `lsn`, at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], or [`Error::Stopped`] if the standby stopped first.
    pub fn wait_applied(&self, lsn: Lsn, timeout: Duration) -> Result<()> {
        crate::worker::wait_for(
            (&self.shared.status, &self.shared.changed),
            lsn,
            timeout,
            |s| s.applied_lsn,
            |s| s.stopped.as_ref(),
        )
    }

    /// Stops the thread (after the pass under way) and returns what the standby did.
    ///
    /// # Errors
    /// The error the standby stopped on.
    pub fn stop(mut self) -> Result<StandbyStatus> {
        self.stop_thread()?;
        Ok(self.status())
    }

    fn stop_thread(&mut self) -> Result<()> {
        crate::worker::stop(&self.shared.stop, &mut self.thread, "standby")
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let _ = self.stop_thread();
    }
}

fn run(
    runtime: &Runtime,
    log: &Log,
    store: &Store,
    options: &FollowOptions,
    shared: &Shared,
) -> Result<()> {
    let mut pulled = 0;
    let mut lease = Lease::new(store);
    let result = passes(
        runtime,
        log,
        store,
        options,
        shared,
        &mut pulled,
        &mut lease,
    );
    runtime.block_on(lease.release());
    result
}

/// The standby's passes, until it is stopped or fails.
fn passes(
    runtime: &Runtime,
    log: &Log,
    store: &Store,
    options: &FollowOptions,
    shared: &Shared,
    pulled: &mut u64,
    lease: &mut Lease,
) -> Result<()> {
    while !shared.stop.load(Ordering::SeqCst) {
        match pull((runtime, lease), log, store, options.backoff, pulled) {
            Ok(done) => {
                let mut status = shared.status();
                status.applied_lsn = done.last_lsn;
                status.records += done.records;
                status.last_error = None;
            }
            Err(
                e @ (Error::Store { .. } | Error::MissingObject { .. } | Error::NoArchive { .. }),
            ) => {
                tracing::warn!(error = %e, "tidelog standby: a pass failed");
                shared.status().last_error = Some(e.to_string());
            }
            Err(e) => return Err(e),
        }
        shared.changed.notify_all();
        // Sleeps in short steps so a stop is seen soon.
        let until = Instant::now() + options.poll;
        while !shared.stop.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(options.poll.min(Duration::from_millis(20)));
        }
    }
    Ok(())
}
