//! Fencing: one writer per archive, on every store that can create an object only if its name
//! is free (`PutMode::Create`: S3 and its kin, GCS, Azure, a local directory, memory).
//!
//! The manifests form a chain (`manifests/{sequence}.json`, see [`manifest`](crate::manifest)),
//! and each is written with a conditional create: of two writers that read manifest `n` and
//! write `n + 1`, exactly one succeeds. A writer *claims* the archive by writing the next
//! manifest with the next generation; from then on every manifest it writes carries that
//! generation. When its next manifest's name is taken, it reads the newest manifest: a higher
//! generation there means it lost the archive ([`Error::Fenced`]); its own generation means a
//! prune trimmed the manifest, and it writes its change again on top of that. A put that comes
//! back "taken" although it was this writer's own (an earlier attempt that reached the store
//! but reported an error) is recognised by its bytes, which carry the writer's unique holder
//! name.
//!
//! Why a chain of creates and not one object replaced with `PutMode::Update` and its ETag: a
//! local-directory store can create conditionally but not update, and a chain gives followers
//! a key to probe for. The guarantee is the same: a manifest is only ever written on top of
//! the one its writer read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::io::{self, Written};
use crate::manifest::{MANIFESTS_KEPT, Manifest};
use crate::store::Store;

/// How many times a manifest write is tried again on top of a newer manifest (prunes running
/// beside the writer) before the writer gives up.
const REBASES: u32 = 64;

/// A name for a claim: the host, the process, and a token no other claim has.
pub(crate) fn holder_name() -> String {
    static CLAIMS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let random = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(CLAIMS.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        h.finish()
    };
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.len() <= 255)
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host} pid {} #{random:016x}", std::process::id())
}

/// Whether `bytes`, found under the name `mine` was written to, are `mine`.
fn is_mine(bytes: &[u8], mine: &Manifest) -> bool {
    bytes == mine.encode().as_slice()
}

/// The outcome of one attempt at writing the manifest after `base`.
pub(crate) enum Attempt {
    /// Written (or found written by an earlier attempt of the same writer).
    Written(Manifest),
    /// Another manifest took the place; this is the newest one now.
    Lost(Manifest),
}

/// Writes `next` (whose `seq` is the one after its base's) once.
pub(crate) async fn attempt(store: &Store, next: Manifest, fenced: bool) -> Result<Attempt> {
    match io::write_manifest(store, &next, fenced).await? {
        Written::Done => Ok(Attempt::Written(next)),
        Written::Taken(bytes) if is_mine(&bytes, &next) => Ok(Attempt::Written(next)),
        Written::Taken(_) => {
            let newest = io::latest_manifest(store).await?;
            let newest = newest.ok_or_else(|| Error::BadManifest {
                key: store.path(crate::manifest::MANIFESTS).to_string(),
                reason: "a manifest was there a moment ago and none is now".to_owned(),
            })?;
            Ok(Attempt::Lost(newest))
        }
    }
}

/// Writes the manifest `change` makes of `base` as the next of the chain, for the writer of
/// `base.generation`: if another manifest takes the place, it must be of the same generation
/// (a prune), and `change` is applied again on top of it; a newer generation is
/// [`Error::Fenced`]. Removes old manifests now and then. Returns the manifest written.
pub(crate) async fn commit(
    store: &Store,
    base: &Manifest,
    fenced: bool,
    change: impl Fn(&Manifest) -> Result<Manifest>,
) -> Result<Manifest> {
    let generation = base.generation;
    let mut base = base.clone();
    for _ in 0..REBASES {
        let mut next = change(&base)?;
        next.seq = base.seq + 1;
        match attempt(store, next, fenced).await? {
            Attempt::Written(written) => {
                if written.seq % MANIFESTS_KEPT == 0 {
                    remove_old(store, written.seq).await;
                }
                return Ok(written);
            }
            Attempt::Lost(newest) if newest.generation != generation => {
                return Err(fenced_by(generation, &newest));
            }
            Attempt::Lost(newest) => base = newest,
        }
    }
    Err(Error::Stopped {
        reason: format!("the manifest kept changing under generation {generation}'s writes"),
    })
}

/// The error of a writer of `generation` that found `newest`.
pub(crate) fn fenced_by(generation: u64, newest: &Manifest) -> Error {
    Error::Fenced {
        generation,
        by: newest.generation,
        holder: newest.holder.clone(),
    }
}

/// Removes the manifests older than the last [`MANIFESTS_KEPT`] before `seq` (best effort: one
/// left is only an old manifest, never read while a newer one is there).
async fn remove_old(store: &Store, seq: u64) {
    let Ok(seqs) = io::manifest_seqs(store).await else {
        return;
    };
    let keep_from = seq.saturating_sub(MANIFESTS_KEPT);
    for old in seqs.into_iter().filter(|&s| s < keep_from) {
        let _ = io::delete(store, &crate::manifest::manifest_name(old)).await;
    }
}
