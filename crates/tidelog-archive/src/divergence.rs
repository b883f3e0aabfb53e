//! Divergence: whether a local log and an archive hold the same records at the LSNs both
//! hold. A writer checks it before it claims an archive, and a fast-forward before it pulls
//! records, so records of two histories are never merged.
//!
//! The check walks the archive's objects that overlap the local log from the newest back and
//! stops at the first that agrees whole: two logs that part keep differing after, so the first
//! differing LSN lies in the objects after the newest agreeing one. An object agrees at once if
//! the local segment starting at its first LSN copies to the same bytes (the log's own segments,
//! as it archived them); otherwise it is read and compared record by record.

use tidelog::{Log, Lsn};
use tokio::runtime::Runtime;

use crate::error::Result;
use crate::follow::decode;
use crate::io::{self, Backoff};
use crate::manifest::{Manifest, ObjectEntry};
use crate::store::Store;

/// The first LSN at which `log` (its records up to `upto`, durable) and the archive of
/// `manifest` hold different records, among those both hold; `None` if they agree.
pub(crate) fn first_difference(
    runtime: &Runtime,
    store: &Store,
    backoff: Backoff,
    (log, upto): (&Log, Lsn),
    manifest: &Manifest,
) -> Result<Option<Lsn>> {
    let (local_first, durable) = held(log);
    let local_last = upto.min(durable);
    let mut first = None;
    for object in manifest.objects.iter().rev() {
        if object.first_lsn > local_last.get() {
            continue;
        }
        if object.last_lsn < local_first.get() {
            break;
        }
        match differs(
            runtime,
            store,
            backoff,
            log,
            object,
            (local_first, local_last),
        )? {
            Some(lsn) => first = Some(lsn),
            None => break,
        }
    }
    Ok(first)
}

/// The first and last LSN of the durable records `log` holds (last < first if none).
pub(crate) fn held(log: &Log) -> (Lsn, Lsn) {
    let first = log
        .segments()
        .first()
        .map_or(Lsn::FIRST, |s| s.first_lsn)
        .max(log.checkpoint_lsn());
    (first, log.durable_lsn())
}

/// The first LSN in `object` (within `local`) whose record differs from the log's.
fn differs(
    runtime: &Runtime,
    store: &Store,
    backoff: Backoff,
    log: &Log,
    object: &ObjectEntry,
    (local_first, local_last): (Lsn, Lsn),
) -> Result<Option<Lsn>> {
    let same_copy = log
        .copy_segment(Lsn::new(object.first_lsn))
        .is_ok_and(|copy| {
            copy.last_lsn().get() == object.last_lsn
                && copy.bytes().len() as u64 == object.bytes
                && crc32c::crc32c(copy.bytes()) == object.crc32c
        });
    if same_copy {
        return Ok(None);
    }
    let bytes = io::retrying(runtime, backoff, io::ATTEMPTS, || {
        io::get(store, &object.name)
    })?;
    let records = decode(store, object, &bytes)?;
    for record in records {
        let lsn = record.lsn();
        if lsn < local_first || lsn > local_last {
            continue;
        }
        let same = match log.read(lsn) {
            Ok(local) => local.data() == record.data(),
            Err(tidelog::Error::RecordLost { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if !same {
            return Ok(Some(lsn));
        }
    }
    Ok(None)
}
