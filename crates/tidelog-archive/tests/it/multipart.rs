//! Multipart uploads: a sealed segment larger than `part_bytes` goes up in parts; a part put or
//! a completion that fails is retried, the failed upload is aborted (nothing is left of it), and
//! nothing counts as archived until a whole object and the manifest naming it are in the store.
//!
//! S3 takes parts of at least 5 MiB (but the last), so there a segment is 6 MiB and goes up in
//! two parts; elsewhere segments are 64 KiB and go up in parts of 16 KiB.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tidelog::{Durability, Log, Lsn};
use tidelog_archive::manifest::ObjectKind;
use tidelog_archive::{ArchiveOptions, Archiver, Error, Store, Target, describe, restore};

use crate::common::{Place, WAIT, places, quick};
use crate::faulty::{Hold, Rule};

/// The record at `lsn`: 2 KiB that say which LSN they are.
pub(crate) fn record(lsn: u64) -> Vec<u8> {
    let mut bytes = vec![(lsn % 251) as u8; 2048];
    bytes[..8].copy_from_slice(&lsn.to_le_bytes());
    bytes
}

/// Segment and part sizes on the store `kind` ("memory", "local", "s3").
fn sizes(kind: &str) -> (u64, usize) {
    if kind == "s3" {
        (6 << 20, 5 << 20)
    } else {
        (64 << 10, 16 << 10)
    }
}

/// A log whose segments go up in parts on `place`, and options that upload sealed segments
/// only (the tail once, when the archiver stops), with that part size.
fn setup(place: &Place, dir: &Path) -> (Arc<Log>, ArchiveOptions, usize) {
    let (segment, part) = sizes(place.name);
    let log = Log::builder(dir)
        .segment_bytes(segment)
        .open()
        .expect("open log");
    let options = quick().interval(Duration::from_secs(3600)).part_bytes(part);
    (Arc::new(log), options, part)
}

/// Appends synced batches of [`record`]s until the first segment is sealed, then a few more;
/// returns the last LSN of the sealed segment.
pub(crate) fn fill_one_segment(log: &Log) -> Lsn {
    let sealed = loop {
        let last = log.last_lsn().get();
        let batch: Vec<Vec<u8>> = (last + 1..=last + 16).map(record).collect();
        log.append_batch(&batch, Durability::Synced)
            .expect("append");
        if let Some(first) = log.segments().first().filter(|s| !s.active) {
            break first.last_lsn;
        }
    };
    let last = log.last_lsn().get();
    let batch: Vec<Vec<u8>> = (last + 1..=last + 3).map(record).collect();
    log.append_batch(&batch, Durability::Synced)
        .expect("append");
    sealed
}

/// Checks that a restore of `store` gives exactly [`record`]s `1..=last`.
pub(crate) fn assert_restores(store: &Store, out: &Path, last: Lsn) {
    let report = restore(store, out, Target::Latest).expect("restore");
    assert_eq!(report.last_lsn, last, "the restore ends at {last}");
    let log = Log::builder(out)
        .create_if_missing(false)
        .open()
        .expect("open the restored log");
    let mut next = 1;
    for r in log.iter().expect("iter") {
        let r = r.expect("record");
        assert_eq!(r.lsn().get(), next, "records in order, none missing");
        assert_eq!(r.data(), record(next), "the record at {next}");
        next += 1;
    }
    assert_eq!(next - 1, last.get(), "every record up to {last}");
}

/// Checks that a restore of `store` finds nothing archived (the writer's claim at most).
fn assert_nothing_restores(store: &Store, out: &Path) {
    match restore(store, out, Target::Latest) {
        Err(Error::NoArchive { .. } | Error::TargetNotArchived { .. }) => {}
        other => panic!("nothing is archived yet, but the restore gave {other:?}"),
    }
}

/// The keys (whole paths in the store) of the multipart uploads started under `store`'s
/// prefix and neither completed nor aborted, on the store `kind`: the staging files of a local
/// directory, the pending uploads S3 lists. `None` for memory, whose unfinished uploads live
/// in the writer's process only.
pub(crate) fn pending_uploads(kind: &str, store: &Store) -> Option<Vec<String>> {
    match kind {
        "local" => {
            let mut found = Vec::new();
            let mut dirs = vec![std::path::PathBuf::from(format!("/{}", store.prefix()))];
            while let Some(dir) = dirs.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.expect("entry").path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else if let Some((key, _)) = path.to_string_lossy().split_once('#') {
                        found.push(key.trim_start_matches('/').to_owned());
                    }
                }
            }
            Some(found)
        }
        "s3" => Some(s3_pending_uploads(store.prefix().as_ref())),
        _ => None,
    }
}

/// The keys under `prefix` of the S3 test server's pending multipart uploads
/// (ListMultipartUploads, which the `object_store` crate does not offer).
fn s3_pending_uploads(prefix: &str) -> Vec<String> {
    let endpoint = std::env::var("TIDELOG_TEST_S3_ENDPOINT").expect("TIDELOG_TEST_S3_ENDPOINT");
    let bucket = std::env::var("TIDELOG_TEST_S3_BUCKET").unwrap_or_else(|_| "tidelog-test".into());
    let host = endpoint
        .strip_prefix("http://")
        .expect("an http:// endpoint")
        .trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host).expect("connect to the S3 server");
    write!(
        stream,
        "GET /{bucket}?uploads&prefix={prefix}/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "listing the pending uploads: {response}"
    );
    response
        .split("<Upload>")
        .skip(1)
        .filter_map(|upload| {
            let key = upload.split_once("<Key>")?.1.split_once("</Key>")?.0;
            Some(key.to_owned())
        })
        .filter(|key| key.starts_with(prefix))
        .collect()
}

/// The name under the archive's prefix of `key`, a whole path of the store.
fn name_of(store: &Store, key: &str) -> String {
    let prefix = store.prefix().to_string();
    key.strip_prefix(&prefix)
        .unwrap_or(key)
        .trim_start_matches('/')
        .to_owned()
}

#[test]
fn a_sealed_segment_larger_than_a_part_goes_up_in_parts() {
    for place in places("multipart-sealed") {
        let tmp = tempfile::tempdir().expect("tmp");
        let (log, options, part) = setup(&place, &tmp.path().join("log"));
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), options).expect("start");
        let sealed = fill_one_segment(&log);
        archiver.wait_archived(sealed, WAIT).expect("archived");
        let last = log.last_lsn();
        archiver.stop().expect("stop");
        let manifest = describe(&place.store)
            .expect("describe")
            .manifest
            .expect("manifest");
        let segment = manifest
            .objects
            .iter()
            .find(|o| o.kind == ObjectKind::Seg && o.last_lsn == sealed.get())
            .expect("the sealed segment is named as a segment");
        assert!(
            segment.bytes > part as u64,
            "{}: larger than a part",
            place.name
        );
        let f = &place.faults;
        let parts = segment.bytes.div_ceil(part as u64) as usize;
        assert!(parts >= 2, "{}", place.name);
        assert_eq!(f.puts_of(&segment.name), 1, "{}: one upload", place.name);
        assert_eq!(f.parts_landed(&segment.name), parts, "{}", place.name);
        assert_eq!(f.completed(&segment.name), 1, "{}", place.name);
        assert_eq!(f.aborted(&segment.name), 0, "{}", place.name);
        assert_restores(&place.store, &tmp.path().join("restored"), last);
    }
}

#[test]
fn a_failed_part_put_is_retried_and_nothing_counts_until_the_object_and_its_manifest_land() {
    for place in places("multipart-part-fails") {
        let tmp = tempfile::tempdir().expect("tmp");
        let (log, options, _) = setup(&place, &tmp.path().join("log"));
        let (f, name) = (&place.faults, place.name);
        // The first upload of the sealed segment cannot start; the second loses its 2nd part,
        // and its 1st part lands but reports an error; the third is whole, and its completion
        // waits.
        f.fail(Rule {
            op: "multipart",
            path_contains: ".seg",
            times: 1,
            after: false,
        });
        f.fail(Rule {
            op: "part",
            path_contains: ".seg#part2#",
            times: 1,
            after: false,
        });
        f.fail(Rule {
            op: "part",
            path_contains: ".seg#part1#",
            times: 1,
            after: true,
        });
        let completion = f.hold(Hold {
            op: "complete",
            path_contains: ".seg#complete",
            once_landed: None,
        });
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), options).expect("start");
        let sealed = fill_one_segment(&log);
        let held = f.wait_held(WAIT).expect("the third upload completes");
        let key = held.at.strip_suffix("#complete").expect("a completion");
        assert_eq!(f.failed.load(Ordering::SeqCst), 3, "{name}: the plan ran");
        assert_eq!(f.puts_of(key), 3, "{name}: three uploads started");
        assert_eq!(
            f.aborted(key),
            1,
            "{name}: the one that lost a part was aborted"
        );
        assert!(archiver.status().retries >= 2, "{name}");
        // Whole but not completed: nothing counts, nothing is in the store.
        assert_eq!(archiver.archived_lsn(), Lsn::ZERO, "{name}");
        let found = describe(&place.store).expect("describe");
        let manifest = found.manifest.expect("the claim");
        assert!(manifest.objects.is_empty(), "{name}");
        assert!(
            found.unreferenced.is_empty(),
            "{name}: {:?}",
            found.unreferenced
        );
        if let Some(pending) = pending_uploads(name, &place.store) {
            assert_eq!(
                pending,
                [key],
                "{name}: only the upload under way is pending"
            );
        }
        assert_nothing_restores(&place.store, &tmp.path().join("early"));
        // Completed, its manifest write held: the object is there, and still nothing counts.
        let manifest_write = f.hold(Hold {
            op: "put",
            path_contains: "manifests/",
            once_landed: Some(".seg"),
        });
        f.release(completion);
        let held = f.wait_held(WAIT).expect("the manifest write");
        assert_eq!(held.after.as_deref(), Some(key), "{name}");
        let object = name_of(&place.store, key);
        let found = describe(&place.store).expect("describe");
        assert!(
            found.unreferenced.iter().any(|(n, _)| *n == object),
            "{name}: {object} is in the store"
        );
        assert_eq!(archiver.archived_lsn(), Lsn::ZERO, "{name}");
        assert_nothing_restores(&place.store, &tmp.path().join("before-manifest"));
        f.release(manifest_write);
        archiver.wait_archived(sealed, WAIT).expect("archived");
        let last = log.last_lsn();
        archiver.stop().expect("stop");
        let manifest = describe(&place.store)
            .expect("describe")
            .manifest
            .expect("manifest");
        assert!(
            manifest
                .objects
                .iter()
                .any(|o| o.name == object && o.kind == ObjectKind::Seg),
            "{name}: the manifest names {object}"
        );
        assert_eq!(f.completed(key), 1, "{name}");
        if let Some(pending) = pending_uploads(name, &place.store) {
            assert!(pending.is_empty(), "{name}: left behind: {pending:?}");
        }
        assert_restores(&place.store, &tmp.path().join("restored"), last);
    }
}

#[test]
fn a_failed_completion_is_retried_and_one_that_landed_is_not_uploaded_again() {
    for place in places("multipart-complete-fails") {
        let tmp = tempfile::tempdir().expect("tmp");
        let (log, options, _) = setup(&place, &tmp.path().join("log"));
        let (f, name) = (&place.faults, place.name);
        // The first upload's completion fails; the second's lands but reports an error.
        for after in [false, true] {
            f.fail(Rule {
                op: "complete",
                path_contains: ".seg#complete",
                times: 1,
                after,
            });
        }
        let manifest_write = f.hold(Hold {
            op: "put",
            path_contains: "manifests/",
            once_landed: Some(".seg"),
        });
        let archiver =
            Archiver::start(Arc::clone(&log), place.store.clone(), options).expect("start");
        let sealed = fill_one_segment(&log);
        let held = f.wait_held(WAIT).expect("the manifest write");
        let key = held.after.expect("after the object landed");
        assert_eq!(f.failed.load(Ordering::SeqCst), 2, "{name}: the plan ran");
        assert!(archiver.status().retries >= 2, "{name}");
        // Two uploads, each aborted when its completion failed; the object the second left
        // is taken as it is.
        assert_eq!(f.puts_of(&key), 2, "{name}: uploads started");
        assert_eq!(f.completed(&key), 1, "{name}");
        assert_eq!(f.aborted(&key), 2, "{name}");
        if let Some(pending) = pending_uploads(name, &place.store) {
            assert!(pending.is_empty(), "{name}: left behind: {pending:?}");
        }
        let object = name_of(&place.store, &key);
        assert!(
            describe(&place.store)
                .expect("describe")
                .unreferenced
                .iter()
                .any(|(n, _)| *n == object),
            "{name}: {object} is in the store"
        );
        assert_eq!(archiver.archived_lsn(), Lsn::ZERO, "{name}");
        assert_nothing_restores(&place.store, &tmp.path().join("before-manifest"));
        f.release(manifest_write);
        archiver.wait_archived(sealed, WAIT).expect("archived");
        let last = log.last_lsn();
        archiver.stop().expect("stop");
        assert_eq!(f.puts_of(&key), 2, "{name}: not uploaded again");
        let manifest = describe(&place.store)
            .expect("describe")
            .manifest
            .expect("manifest");
        assert!(
            manifest.objects.iter().any(|o| o.name == object),
            "{name}: the manifest names {object}"
        );
        assert_restores(&place.store, &tmp.path().join("restored"), last);
    }
}
