//! The store operations the archiver and the restore use, each mapped to the archive's error
//! with the object's name, and retried with backoff where the caller asks.

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

use crate::error::{Error, Result};
use crate::manifest::{MANIFESTS, Manifest, manifest_name, parse_manifest_name};
use crate::store::Store;

/// How failed store operations are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure; doubled after each next one.
    pub initial: Duration,
    /// The longest wait between two attempts.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The wait before attempt `n` (counting from 1 for the first retry).
    pub(crate) fn wait(&self, n: u32) -> Duration {
        let factor = 1u32
            .checked_shl(n.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// A runtime of the current thread, for the store's calls of a blocking operation (`op`, on
/// `path`, names it in the error if none can be started).
///
/// # Errors
/// [`Error::InsideAsyncRuntime`] on a thread that runs an async runtime already, where
/// blocking on another would panic; [`Error::Io`] if none can be started.
pub(crate) fn runtime(
    op: &'static str,
    path: impl Into<std::path::PathBuf>,
) -> Result<tokio::runtime::Runtime> {
    not_in_runtime("a blocking call of tidelog-archive")?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            op,
            path: path.into(),
            source,
        })
}

/// [`Error::InsideAsyncRuntime`] if this thread runs an async runtime (a blocking call there
/// would stall it, and blocking on a runtime of its own would panic).
pub(crate) fn not_in_runtime(call: &'static str) -> Result<()> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Err(Error::InsideAsyncRuntime { call }),
        Err(_) => Ok(()),
    }
}

/// How many times a restore or a description tries each store operation.
pub(crate) const ATTEMPTS: u32 = 5;

/// Runs `op` on `runtime` until it succeeds, fails with an error that is not the store's, or
/// has failed `attempts` times, waiting as `backoff` says between attempts.
pub(crate) fn retrying<T, F, Fut>(
    runtime: &tokio::runtime::Runtime,
    backoff: Backoff,
    attempts: u32,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match runtime.block_on(op()) {
            Err(e @ Error::Store { .. }) if attempt + 1 < attempts => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "tidelog archive: retrying");
                std::thread::sleep(backoff.wait(attempt));
            }
            other => return other,
        }
    }
}

fn store_error(op: &'static str, key: &str, source: object_store::Error) -> Error {
    match source {
        object_store::Error::NotFound { .. } if op == "get" => Error::MissingObject {
            key: key.to_owned(),
        },
        source => Error::Store {
            op,
            key: key.to_owned(),
            source,
        },
    }
}

/// The sequence numbers of the manifests in the store, in order.
pub(crate) async fn manifest_seqs(store: &Store) -> Result<Vec<u64>> {
    let mut seqs: Vec<u64> = list(store, MANIFESTS)
        .await?
        .into_iter()
        .filter_map(|(name, _)| parse_manifest_name(&name))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Reads and checks the manifest with sequence number `seq`; `None` if there is none.
pub(crate) async fn read_manifest(store: &Store, seq: u64) -> Result<Option<Manifest>> {
    Ok(read_manifest_as(store, seq, plain).await?.map(|(m, ())| m))
}

/// Decodes and checks a manifest's bytes (read from the key given), saying what else it found.
type Decode<T> = fn(&[u8], &str) -> Result<(Manifest, T)>;

/// As [`read_manifest`], decoding with `decode` (which also says what else it found).
async fn read_manifest_as<T>(
    store: &Store,
    seq: u64,
    decode: Decode<T>,
) -> Result<Option<(Manifest, T)>> {
    let name = manifest_name(seq);
    let path = store.path(&name);
    match get(store, &name).await {
        Ok(bytes) => {
            let (manifest, found) = decode(&bytes, path.as_ref())?;
            if manifest.seq != seq {
                return Err(Error::BadManifest {
                    key: path.to_string(),
                    reason: format!("it says it is manifest {}", manifest.seq),
                });
            }
            Ok(Some((manifest, found)))
        }
        Err(Error::MissingObject { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// [`Manifest::decode`], with nothing else to say.
fn plain(bytes: &[u8], key: &str) -> Result<(Manifest, ())> {
    Manifest::decode(bytes, key).map(|m| (m, ()))
}

/// Reads the newest manifest, or `None` if there is none.
pub(crate) async fn latest_manifest(store: &Store) -> Result<Option<Manifest>> {
    Ok(latest_manifest_as(store, plain).await?.map(|(m, ())| m))
}

/// As [`latest_manifest`], decoding with `decode` (for describing an archive, one that lists
/// the gaps instead of refusing them).
pub(crate) async fn latest_manifest_as<T>(
    store: &Store,
    decode: Decode<T>,
) -> Result<Option<(Manifest, T)>> {
    // A manifest listed can be gone by the time it is read only if a writer removed it as an
    // old one: a newer one is there then, and the next listing finds it.
    for _ in 0..3 {
        let Some(&seq) = manifest_seqs(store).await?.last() else {
            return Ok(None);
        };
        if let Some(found) = read_manifest_as(store, seq, decode).await? {
            return Ok(Some(found));
        }
    }
    Err(Error::Store {
        op: "read the newest manifest of",
        key: store.path(MANIFESTS).to_string(),
        source: object_store::Error::Generic {
            store: "tidelog-archive",
            source: "the newest manifest kept disappearing while it was read".into(),
        },
    })
}

/// How writing a manifest went.
#[derive(Debug)]
pub(crate) enum Written {
    /// It is in the store.
    Done,
    /// Its name was taken already; these are the bytes there.
    Taken(Bytes),
}

/// Writes `manifest` under its sequence number. With `fenced`, only if that name is free (a
/// conditional put); without, over whatever is there.
pub(crate) async fn write_manifest(
    store: &Store,
    manifest: &Manifest,
    fenced: bool,
) -> Result<Written> {
    let name = manifest_name(manifest.seq);
    let path = store.path(&name);
    let mode = if fenced {
        PutMode::Create
    } else {
        PutMode::Overwrite
    };
    let put = store
        .object_store()
        .put_opts(
            &path,
            PutPayload::from(manifest.encode()),
            PutOptions::from(mode),
        )
        .await;
    match put {
        Ok(_) => Ok(Written::Done),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => match get(store, &name).await {
            Ok(bytes) => Ok(Written::Taken(bytes)),
            // Taken, yet not there: a conditional put still in flight (S3 answers 409) or a
            // name removed as old since; either way, worth another attempt.
            Err(Error::MissingObject { key }) => Err(Error::Store {
                op: "put",
                key,
                source: object_store::Error::Generic {
                    store: "tidelog-archive",
                    source: "the name was taken, and then held no object".into(),
                },
            }),
            Err(e) => Err(e),
        },
        Err(object_store::Error::NotImplemented { .. }) if fenced => Err(Error::Unfenceable {
            store: store.location().to_owned(),
        }),
        Err(e) => Err(store_error("put", path.as_ref(), e)),
    }
}

/// Reads the object `name` whole.
pub(crate) async fn get(store: &Store, name: &str) -> Result<Bytes> {
    let path = store.path(name);
    let got = store
        .object_store()
        .get(&path)
        .await
        .map_err(|e| store_error("get", path.as_ref(), e))?;
    got.bytes()
        .await
        .map_err(|e| store_error("get", path.as_ref(), e))
}

/// The size of the object `name`, or `None` if there is none.
pub(crate) async fn size_of(store: &Store, name: &str) -> Result<Option<u64>> {
    let path = store.path(name);
    match store.object_store().head(&path).await {
        Ok(meta) => Ok(Some(meta.size)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_error("head", path.as_ref(), e)),
    }
}

/// Writes `bytes` as the object `name` unless an earlier attempt (`again`) got them there
/// although it reported an error: an object of that name and length holds these very bytes,
/// since every object's name carries its checksum and a put is all or nothing.
pub(crate) async fn put_once(
    store: &Store,
    name: &str,
    bytes: Bytes,
    part: usize,
    again: bool,
) -> Result<()> {
    if again && size_of(store, name).await? == Some(bytes.len() as u64) {
        return Ok(());
    }
    put(store, name, bytes, part).await
}

/// Writes `bytes` as the object `name`: in one put, or in parts of `part` bytes past that size.
pub(crate) async fn put(store: &Store, name: &str, bytes: Bytes, part: usize) -> Result<()> {
    let path = store.path(name);
    let os = store.object_store();
    if bytes.len() <= part {
        os.put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| store_error("put", path.as_ref(), e))?;
        return Ok(());
    }
    let upload = os
        .put_multipart(&path)
        .await
        .map_err(|e| store_error("start multipart upload of", path.as_ref(), e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
    writer.put(bytes);
    if let Err(e) = writer.finish().await {
        return Err(store_error("finish multipart upload of", path.as_ref(), e));
    }
    Ok(())
}

/// Removes the object `name`; one already gone is no error.
pub(crate) async fn delete(store: &Store, name: &str) -> Result<()> {
    let path = store.path(name);
    match store.object_store().delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(store_error("delete", path.as_ref(), e)),
    }
}

/// The names (under the prefix) and sizes of every object under `folder`.
pub(crate) async fn list(store: &Store, folder: &str) -> Result<Vec<(String, u64)>> {
    let path = store.path(folder);
    let metas: Vec<_> = store
        .object_store()
        .list(Some(&path))
        .try_collect()
        .await
        .map_err(|e| store_error("list", path.as_ref(), e))?;
    Ok(metas
        .into_iter()
        .filter_map(|m| store.name_of(&m.location).map(|n| (n, m.size)))
        .collect())
}
