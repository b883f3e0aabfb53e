//! Retention: [`prune`] removes archived objects below an LSN or older than an age, and the
//! leases by which readers in progress (followers, restores) keep what they read.
//!
//! The rule that keeps a reader whole: an object is deleted only once
//! 1. no manifest from the newest on names it (prune writes the trimmed manifest first, as the
//!    next of the chain), and
//! 2. no reader's lease, renewed within [`PruneOptions::reader_ttl`], stands at or below its
//!    last LSN.
//!
//! A reader writes its lease *before* it reads a manifest, and prune reads the leases *after*
//! it wrote the manifest that drops an object: a reader that started before the prune is seen
//! by it, and one that started after reads the trimmed manifest, which does not name the
//! object. A follower's lease stands at the first LSN of the object it reads, and a standby's
//! (or a fast-forward's) at the first LSN of the object its next pass starts in, renewed at
//! least every minute while they run; a restore holds one at LSN 1 from before it reads the
//! manifest until it is done. A reader stalled for longer than `reader_ttl` loses the
//! protection, and so does one whose lease cannot be written (credentials that may only read:
//! the reader logs a warning and reads on). Prune also never removes the object holding the newest archived record, so an
//! archive always says where it ends.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tidelog::Lsn;

use crate::error::{Error, Result};
use crate::fence::Attempt;
use crate::follow::now_ms;
use crate::io::{self, Backoff};
use crate::manifest::{Manifest, READERS, SEGMENTS, parse_name};
use crate::store::Store;

/// How often a reader renews its lease while the LSN it holds stays the same.
const RENEW: Duration = Duration::from_secs(60);
/// The shortest `reader_ttl`: a few renewals.
const MIN_TTL: Duration = Duration::from_secs(180);
/// How many times a prune writes its manifest again on top of a newer one.
const REBASES: u32 = 64;

/// A reader's lease, as the store keeps it under `readers/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReaderLease {
    /// Its name under the archive's prefix.
    #[serde(skip)]
    pub name: String,
    /// The reader may still read every record from this LSN on.
    pub lsn: u64,
    /// When it was last renewed, in milliseconds since the Unix epoch.
    pub updated_ms: u64,
    /// Who holds it.
    pub holder: String,
}

/// A lease this process holds (best effort: a lease that cannot be written is logged, and the
/// reader reads on unprotected).
#[derive(Debug)]
pub(crate) struct Lease {
    store: Store,
    name: String,
    holder: String,
    held: Option<(Lsn, Instant)>,
    /// When writing the lease last failed (credentials that may only read): it is tried
    /// again a renewal later, not at every read.
    failed: Option<Instant>,
}

impl Lease {
    pub(crate) fn new(store: &Store) -> Lease {
        let holder = crate::fence::holder_name();
        let token = holder.rsplit('#').next().unwrap_or("reader").to_owned();
        Lease {
            store: store.clone(),
            name: format!("{READERS}/{token}.json"),
            holder,
            held: None,
            failed: None,
        }
    }

    /// Holds every record from `lsn` on (renewing the lease if it is due).
    pub(crate) async fn hold(&mut self, lsn: Lsn) {
        if self
            .held
            .is_some_and(|(held, at)| held == lsn && at.elapsed() < RENEW)
            || self.failed_lately()
        {
            return;
        }
        let lease = ReaderLease {
            name: String::new(),
            lsn: lsn.get(),
            updated_ms: now_ms(),
            holder: self.holder.clone(),
        };
        let bytes = serde_json::to_vec(&lease).unwrap_or_default();
        match io::put(&self.store, &self.name, bytes.into(), usize::MAX).await {
            Ok(()) => {
                self.held = Some((lsn, Instant::now()));
                self.failed = None;
            }
            Err(e) => {
                self.failed = Some(Instant::now());
                tracing::warn!(error = %e, "tidelog archive: a reader's lease was not written");
            }
        }
    }

    /// Whether the lease is in the store.
    pub(crate) fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// Whether writing it failed less than a renewal ago.
    pub(crate) fn failed_lately(&self) -> bool {
        self.failed.is_some_and(|at| at.elapsed() < RENEW)
    }

    /// Renews the lease if it is due.
    pub(crate) async fn renew(&mut self) {
        if let Some((lsn, at)) = self.held
            && at.elapsed() >= RENEW
        {
            self.hold(lsn).await;
        }
    }

    /// The lease, moved out (this one holds nothing after).
    pub(crate) fn take(&mut self) -> Lease {
        Lease {
            store: self.store.clone(),
            name: self.name.clone(),
            holder: self.holder.clone(),
            held: self.held.take(),
            failed: self.failed,
        }
    }

    /// Lets go of the lease.
    pub(crate) async fn release(&mut self) {
        if self.held.take().is_some() {
            let _ = io::delete(&self.store, &self.name).await;
        }
    }
}

/// The readers' leases in the store (those that do not decode are left out).
pub(crate) async fn leases(store: &Store) -> Result<Vec<ReaderLease>> {
    let mut found = Vec::new();
    for (name, size) in io::list(store, READERS).await? {
        if size > 64 << 10 {
            tracing::warn!(
                name,
                size,
                "tidelog archive: not a reader's lease (too large)"
            );
            continue;
        }
        let bytes = match io::get(store, &name).await {
            Ok(bytes) => bytes,
            Err(Error::MissingObject { .. }) => continue, // released since the listing
            // Any other failure is the caller's to retry: a lease missed is a reader unseen.
            Err(e) => return Err(e),
        };
        match serde_json::from_slice::<ReaderLease>(&bytes) {
            Ok(mut lease) => {
                lease.name = name;
                found.push(lease);
            }
            Err(e) => tracing::warn!(name, error = %e, "tidelog archive: not a reader's lease"),
        }
    }
    Ok(found)
}

/// What [`prune`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneTarget {
    /// Every object whose records are all below this LSN.
    Below(Lsn),
    /// Every object whose newest batch is older than this.
    OlderThan(Duration),
}

/// How [`prune`] works.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneOptions {
    /// What to remove.
    pub target: PruneTarget,
    /// A reader's lease not renewed for this long no longer holds anything back. Default 10
    /// minutes; at least 3 (readers renew every minute).
    pub reader_ttl: Duration,
    /// Whether the manifest is written with a conditional put, as a fenced writer's are (on by
    /// default). Off, for a store without conditional puts, prune must not run while an
    /// archiver writes the archive: nothing would stop the two manifests from overwriting each
    /// other.
    pub fencing: bool,
}

impl PruneOptions {
    /// Options that remove what `target` says.
    pub fn new(target: PruneTarget) -> PruneOptions {
        PruneOptions {
            target,
            reader_ttl: Duration::from_secs(600),
            fencing: true,
        }
    }

    /// Sets [`PruneOptions::reader_ttl`].
    pub fn reader_ttl(mut self, ttl: Duration) -> Self {
        self.reader_ttl = ttl;
        self
    }

    /// Sets [`PruneOptions::fencing`].
    pub fn fencing(mut self, fencing: bool) -> Self {
        self.fencing = fencing;
        self
    }
}

/// What a [`prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Objects deleted (named ones the manifest dropped, and earlier leftovers below it).
    pub removed: usize,
    /// Their bytes.
    pub removed_bytes: u64,
    /// Objects the manifest dropped that a reader's lease still keeps (a later prune deletes
    /// them).
    pub kept_for_readers: usize,
    /// The archive's first LSN after the prune.
    pub first_lsn: Lsn,
    /// The lowest LSN a reader's lease held, if one did.
    pub reader_lsn: Option<Lsn>,
}

/// Removes archived objects as `options` say, never one a reader in progress needs, nor the one
/// holding the newest record (see the module docs for the rule). Blocking.
///
/// # Errors
/// [`Error::NoArchive`], [`Error::BadManifest`], [`Error::Unfenceable`] (with fencing on, for
/// a store without conditional puts), [`Error::Store`] once an operation failed five times.
pub fn prune(store: &Store, options: &PruneOptions) -> Result<PruneReport> {
    crate::io::not_in_runtime("prune")?;
    let runtime = crate::io::runtime(
        "start a runtime for pruning",
        std::path::PathBuf::from(store.location()),
    )?;
    if options.reader_ttl < MIN_TTL {
        return Err(Error::InvalidOptions {
            name: "reader_ttl",
            reason: "must be at least 3 minutes (readers renew their leases every minute)",
        });
    }
    let ttl = u64::try_from(options.reader_ttl.as_millis()).unwrap_or(u64::MAX);
    // Renewed within the ttl; a lease stamped further ahead than that is a clock gone wrong,
    // and holds nothing.
    let fresh = |leases: Vec<ReaderLease>| {
        let now = now_ms();
        let (since, until) = (now.saturating_sub(ttl), now.saturating_add(ttl));
        leases
            .into_iter()
            .filter(|l| (since..=until).contains(&l.updated_ms))
            .map(|l| Lsn::new(l.lsn))
            .min()
    };
    // The lowest LSN a fresh lease holds, as the store has them now.
    let readers_now = || -> Result<Option<Lsn>> {
        let all = io::retrying(&runtime, Backoff::default(), io::ATTEMPTS, || leases(store))?;
        Ok(fresh(all))
    };
    let mut base = io::retrying(&runtime, Backoff::default(), io::ATTEMPTS, || {
        io::latest_manifest(store)
    })?
    .ok_or_else(|| Error::NoArchive {
        location: store.location().to_owned(),
    })?;
    let readers = readers_now()?;
    let mut written = None;
    for _ in 0..REBASES {
        let floor = floor_of(&base, options.target).min(readers.unwrap_or(Lsn::new(u64::MAX)));
        let next = trimmed(store, &base, floor)?;
        if next.objects.len() == base.objects.len() {
            written = Some(base);
            break;
        }
        let first = next.first_lsn();
        let attempt = io::retrying(&runtime, Backoff::default(), io::ATTEMPTS, || {
            // A newer manifest keeps the trim if it starts no lower.
            crate::fence::attempt(store, next.clone(), options.fencing, |m| {
                m.first_lsn() >= first
            })
        })?;
        match attempt {
            Attempt::Written(manifest) => {
                written = Some(manifest);
                break;
            }
            Attempt::Lost(newest) => base = newest,
        }
    }
    let Some(written) = written else {
        return Err(Error::Stopped {
            reason: "the manifest kept changing while the prune trimmed it".to_owned(),
        });
    };
    // Read after the manifest is written: a reader not seen here reads that manifest or a
    // later one.
    let readers = readers_now()?;
    let first = written.first_lsn();
    let keep_from = readers.map_or(first, |r| r.min(first));
    let named: std::collections::HashSet<&str> =
        written.objects.iter().map(|o| o.name.as_str()).collect();
    let listed = io::retrying(&runtime, Backoff::default(), io::ATTEMPTS, || {
        io::list(store, SEGMENTS)
    })?;
    let mut report = PruneReport {
        first_lsn: first,
        reader_lsn: readers,
        ..PruneReport::default()
    };
    for (name, size) in listed {
        let Some(parsed) = parse_name(&name) else {
            continue;
        };
        if named.contains(name.as_str())
            || parsed.log_id != written.log_id()
            || parsed.last_lsn >= first.get()
        {
            continue;
        }
        if parsed.last_lsn >= keep_from.get() {
            report.kept_for_readers += 1;
            continue;
        }
        io::retrying(&runtime, Backoff::default(), io::ATTEMPTS, || {
            io::delete(store, &name)
        })?;
        report.removed += 1;
        report.removed_bytes += size;
    }
    tracing::info!(removed = report.removed, first = %first, "tidelog archive pruned");
    Ok(report)
}

/// The LSN below which `target` removes objects of `manifest`.
fn floor_of(manifest: &Manifest, target: PruneTarget) -> Lsn {
    match target {
        PruneTarget::Below(lsn) => lsn,
        PruneTarget::OlderThan(age) => {
            let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            let cutoff = now_ms().saturating_sub(age);
            // Times never go backwards along a log: the objects older than the cutoff are a
            // prefix.
            let kept = manifest
                .objects
                .iter()
                .find(|o| o.last_ms.is_none_or(|ms| ms >= cutoff));
            kept.map_or(manifest.last_lsn().next(), |o| Lsn::new(o.first_lsn))
        }
    }
}

/// `manifest` without its objects whose records are all below `floor`, keeping the last, as the
/// next of the chain.
fn trimmed(store: &Store, manifest: &Manifest, floor: Lsn) -> Result<Manifest> {
    let mut next = manifest.clone();
    let removable = next
        .objects
        .iter()
        .take_while(|o| o.last_lsn < floor.get())
        .count()
        .min(next.objects.len().saturating_sub(1));
    next.objects.drain(..removable);
    next.seq = crate::fence::next_seq(store, manifest)?;
    Ok(next)
}
