//! Stores to run each scenario on, and logs that roll often.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tidelog::{Durability, Log, Lsn};
use tidelog_archive::{ArchiveOptions, Backoff, Store};

use crate::faulty::FaultyStore;

/// Small segments, so a few hundred records make several.
pub(crate) const SEGMENT_BYTES: u64 = 4096;

/// A store to run a scenario on, seen through a fault-injecting wrapper.
pub(crate) struct Place {
    pub name: &'static str,
    pub store: Store,
    pub faults: Arc<FaultyStore>,
    _tmp: Option<tempfile::TempDir>,
}

impl Place {
    fn new(name: &'static str, store: Store, tmp: Option<tempfile::TempDir>) -> Place {
        let faults = FaultyStore::new(Arc::clone(store.object_store()));
        let store = Store::new(faults.clone(), store.prefix().as_ref());
        Place {
            name,
            store,
            faults,
            _tmp: tmp,
        }
    }
}

/// An in-memory store, a local directory, and the S3 test server if one is named.
pub(crate) fn places(test: &str) -> Vec<Place> {
    let mut out = vec![
        Place::new(
            "memory",
            Store::new(Arc::new(object_store::memory::InMemory::new()), "archive"),
            None,
        ),
        local(),
    ];
    match s3(test) {
        Some(place) => {
            eprintln!("{test}: also on S3 at {}", place.store.location());
            out.push(place);
        }
        None => eprintln!(
            "SKIPPED {test} on S3: TIDELOG_TEST_S3_ENDPOINT is not set (bash .ci/with-s3 sets it)"
        ),
    }
    out
}

pub(crate) fn local() -> Place {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let url = format!("file://{}", tmp.path().join("archive").display());
    Place::new(
        "local",
        Store::from_url(&url).expect("local store"),
        Some(tmp),
    )
}

/// The S3 test server's store, under a prefix of its own for `test`.
pub(crate) fn s3(test: &str) -> Option<Place> {
    let url = s3_url(test)?;
    Some(Place::new("s3", s3_store(&url), None))
}

/// A URL under the S3 test server's bucket with a prefix of its own for `test`, if a server is
/// named.
pub(crate) fn s3_url(test: &str) -> Option<String> {
    std::env::var("TIDELOG_TEST_S3_ENDPOINT").ok()?;
    let bucket = std::env::var("TIDELOG_TEST_S3_BUCKET").unwrap_or_else(|_| "tidelog-test".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Some(format!(
        "s3://{bucket}/{test}-{}-{nanos}",
        std::process::id()
    ))
}

/// The store at `url` on the S3 test server (path-style requests over HTTP, test credentials).
pub(crate) fn s3_store(url: &str) -> Store {
    s3_store_as(url, "tidelog-test", "tidelog-test-secret")
}

/// As [`s3_store`], with the credentials given (the server takes any).
pub(crate) fn s3_store_as(url: &str, key_id: &str, secret: &str) -> Store {
    let endpoint = std::env::var("TIDELOG_TEST_S3_ENDPOINT").expect("TIDELOG_TEST_S3_ENDPOINT");
    Store::from_url_with(
        url,
        [
            ("endpoint", endpoint.as_str()),
            ("allow_http", "true"),
            ("virtual_hosted_style_request", "false"),
            ("region", "us-east-1"),
            ("access_key_id", key_id),
            ("secret_access_key", secret),
        ],
    )
    .expect("S3 store")
}

/// A log in `dir` with small segments.
pub(crate) fn open_log(dir: &Path) -> Log {
    Log::builder(dir)
        .segment_bytes(SEGMENT_BYTES)
        .open()
        .expect("open log")
}

/// Options that upload the tail often and retry quickly.
pub(crate) fn quick() -> ArchiveOptions {
    ArchiveOptions::default()
        .interval(Duration::from_millis(20))
        .backoff(Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(20),
        })
}

/// The payload of record `lsn`.
pub(crate) fn payload(lsn: u64) -> Vec<u8> {
    format!("record {lsn:06} {}", "x".repeat((lsn % 40) as usize)).into_bytes()
}

/// Appends `n` records in batches of up to 5, synced; returns the last LSN.
pub(crate) fn append(log: &Log, n: u64) -> Lsn {
    let mut last = log.last_lsn();
    let mut left = n;
    while left > 0 {
        let k = left.min(1 + last.get() % 5);
        let batch: Vec<Vec<u8>> = (1..=k).map(|i| payload(last.get() + i)).collect();
        last = log
            .append_batch(&batch, Durability::Synced)
            .expect("append")
            .1;
        left -= k;
    }
    last
}

/// Checks the log in `dir` holds exactly `payload(lsn)` for `first..=last`.
pub(crate) fn assert_holds(dir: &Path, first: u64, last: u64) {
    let log = Log::builder(dir)
        .create_if_missing(false)
        .open()
        .expect("open restored log");
    let lsns: Vec<u64> = log
        .iter()
        .expect("iter")
        .map(|r| {
            let r = r.expect("record");
            assert_eq!(r.data(), payload(r.lsn().get()), "payload of {}", r.lsn());
            r.lsn().get()
        })
        .collect();
    assert_eq!(lsns, (first..=last).collect::<Vec<_>>());
    assert_eq!(log.last_lsn(), Lsn::new(last));
}

pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// Runs `future` on a runtime of its own (the S3 client needs tokio's).
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Appends `n` records to `log` while an archiver uploads them to `store`, waits until all are
/// archived and stops the archiver; returns the last LSN.
pub(crate) fn archive_records(log: &Arc<Log>, store: &Store, n: u64) -> Lsn {
    let archiver =
        tidelog_archive::Archiver::start(Arc::clone(log), store.clone(), quick()).expect("start");
    let last = append(log, n);
    archiver.wait_archived(last, WAIT).expect("archived");
    archiver.stop().expect("stop");
    last
}

/// The path in `store`'s object store of `name` (which may hold `/`) under its prefix.
pub(crate) fn object_path(store: &Store, name: &str) -> object_store::path::Path {
    object_store::path::Path::from(format!("{}/{name}", store.prefix()).trim_start_matches('/'))
}

/// The bytes of the object `name` under `store`'s prefix.
pub(crate) fn get_object(store: &Store, name: &str) -> Vec<u8> {
    let path = object_path(store, name);
    let os = store.object_store();
    block_on(async {
        object_store::ObjectStoreExt::get(&**os, &path)
            .await?
            .bytes()
            .await
    })
    .expect("get")
    .to_vec()
}

/// Writes `bytes` as the object `name` under `store`'s prefix, past the archiver.
pub(crate) fn put_object(store: &Store, name: &str, bytes: Vec<u8>) {
    let path = object_path(store, name);
    block_on(object_store::ObjectStoreExt::put(
        &**store.object_store(),
        &path,
        bytes.into(),
    ))
    .expect("put");
}
