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
    /// Another manifest took the place, or the write landed behind the chain's head; this is
    /// the newest one now.
    Lost(Manifest),
}

/// Writes `next` (whose `seq` is the one after its base's) once, then checks it is the chain's
/// head, or that the head `descends` from it.
///
/// The check is what keeps a late write out: a name becomes free again once a writer removed
/// it as an old manifest, which it does only with [`MANIFESTS_KEPT`] newer ones in the store,
/// so a write that lands on such a name (a writer paused since it read its base) finds newer
/// manifests in the listing that follows, none of which builds on it.
pub(crate) async fn attempt(
    store: &Store,
    next: Manifest,
    fenced: bool,
    descends: impl Fn(&Manifest) -> bool,
) -> Result<Attempt> {
    let written = match io::write_manifest(store, &next, fenced).await? {
        Written::Done => true,
        Written::Taken(bytes) => is_mine(&bytes, &next),
    };
    let head = io::manifest_seqs(store).await?.last().copied().unwrap_or(0);
    if written && head < next.seq {
        // A listing that misses a manifest just written cannot vouch for it: look again.
        return Err(Error::Store {
            op: "list",
            key: store.path(crate::manifest::MANIFESTS).to_string(),
            source: object_store::Error::Generic {
                store: "tidelog-archive",
                source: "the listing does not show the manifest just written".into(),
            },
        });
    }
    if written && head == next.seq {
        return Ok(Attempt::Written(next));
    }
    let newest = match io::read_manifest(store, head).await? {
        Some(newest) => newest,
        // Removed since the listing: a newer head is there, which the caller reads again.
        None => io::latest_manifest(store)
            .await?
            .ok_or_else(|| Error::BadManifest {
                key: store.path(crate::manifest::MANIFESTS).to_string(),
                reason: "a manifest was there a moment ago and none is now".to_owned(),
            })?,
    };
    if written && descends(&newest) {
        return Ok(Attempt::Written(next));
    }
    Ok(Attempt::Lost(newest))
}

/// Writes the manifest `change` makes of `base` as the next of the chain, for the writer that
/// holds `base` (its generation and holder): if another manifest takes the place, it must be
/// the same holder's (a prune keeps both), and `change` is applied again on top of it; another
/// holder is [`Error::Fenced`]. `applied` says whether a manifest already holds the change (an
/// earlier attempt that reached the store although it reported an error). Removes old
/// manifests now and then. Returns the manifest written.
pub(crate) async fn commit(
    store: &Store,
    base: &Manifest,
    fenced: bool,
    change: impl Fn(&Manifest) -> Result<Manifest>,
    applied: impl Fn(&Manifest) -> bool,
) -> Result<Manifest> {
    let (generation, holder) = (base.generation, base.holder.clone());
    let ours = |m: &Manifest| m.generation == generation && m.holder == holder;
    let mut base = base.clone();
    for _ in 0..REBASES {
        if applied(&base) {
            return Ok(base);
        }
        let mut next = change(&base)?;
        next.seq = next_seq(store, &base)?;
        match attempt(store, next, fenced, |m| ours(m) && applied(m)).await? {
            Attempt::Written(written) => {
                if written.seq % MANIFESTS_KEPT == 0 {
                    remove_old(store, written.seq).await;
                }
                return Ok(written);
            }
            Attempt::Lost(newest) if !ours(&newest) => {
                return Err(fenced_by(generation, &newest));
            }
            Attempt::Lost(newest) => base = newest,
        }
    }
    Err(Error::Stopped {
        reason: format!("the manifest kept changing under generation {generation}'s writes"),
    })
}

/// The sequence number after `base`'s.
pub(crate) fn next_seq(store: &Store, base: &Manifest) -> Result<u64> {
    base.seq.checked_add(1).ok_or_else(|| Error::BadManifest {
        key: store
            .path(&crate::manifest::manifest_name(base.seq))
            .to_string(),
        reason: "its sequence number is the last there is".to_owned(),
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
