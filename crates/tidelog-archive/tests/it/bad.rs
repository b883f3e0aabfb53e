//! Archives that are not what an archiver wrote: a missing manifest or object, damaged bytes,
//! hostile names, gaps, foreign objects. Each is a typed error; nothing is written outside the
//! target; nothing panics.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStoreExt;
use tidelog_archive::manifest::{GapCause, Manifest};
use tidelog_archive::{Error, Store, Target, describe, restore};

use crate::common::{archive_records, assert_holds, open_log, places};

/// An archive of 200 records in `store`.
fn archived(store: &Store, dir: &Path) -> u64 {
    let log = Arc::new(open_log(&dir.join("log")));
    archive_records(&log, store, 200).get()
}

fn put(store: &Store, name: &str, bytes: Vec<u8>) {
    crate::common::put_object(store, name, bytes);
}

fn manifest(store: &Store) -> Manifest {
    describe(store)
        .expect("describe")
        .manifest
        .expect("manifest")
}

/// The name the next manifest of the chain takes.
fn next_manifest_name(store: &Store) -> (u64, String) {
    let prefix = crate::common::object_path(store, "manifests");
    let names: Vec<object_store::ObjectMeta> = crate::common::block_on(
        futures::TryStreamExt::try_collect(store.object_store().list(Some(&prefix))),
    )
    .expect("list");
    let seq = names
        .iter()
        .filter_map(|m| {
            m.location
                .filename()?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0)
        + 1;
    (seq, tidelog_archive::manifest::manifest_name(seq))
}

/// Writes `manifest` as the newest of the chain.
fn write_manifest(store: &Store, manifest: &Manifest) {
    let (seq, name) = next_manifest_name(store);
    let mut manifest = manifest.clone();
    manifest.seq = seq;
    put(store, &name, serde_json::to_vec(&manifest).expect("encode"));
}

/// Restores into `dir/out`, expecting failure; checks nothing was left in `dir` but `keep`.
fn refused(store: &Store, dir: &Path, keep: &[&str]) -> Error {
    let error = restore(store, dir.join("out"), Target::Latest).expect_err("refused");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names, keep,
        "nothing written beside the target after {error}"
    );
    error
}

#[test]
fn a_location_without_a_manifest_is_no_archive() {
    for place in places("empty") {
        let tmp = tempfile::tempdir().expect("tmp");
        assert!(matches!(
            refused(&place.store, tmp.path(), &[]),
            Error::NoArchive { .. }
        ));
    }
}

#[test]
fn a_manifest_that_does_not_decode_or_names_hostile_keys_is_refused() {
    for place in places("hostile") {
        let tmp = tempfile::tempdir().expect("tmp");
        archived(&place.store, tmp.path());
        let good = manifest(&place.store);
        put(
            &place.store,
            &next_manifest_name(&place.store).1,
            b"{ not json".to_vec(),
        );
        assert!(matches!(
            refused(&place.store, tmp.path(), &["log"]),
            Error::BadManifest { .. }
        ));
        for name in [
            "segments/../../../etc/passwd",
            "/etc/passwd",
            "segments/00000000000000000000000000000001-x.seg",
            "../outside.seg",
        ] {
            let mut bad = good.clone();
            bad.objects[0].name = name.to_owned();
            write_manifest(&place.store, &bad);
            assert!(
                matches!(
                    refused(&place.store, tmp.path(), &["log"]),
                    Error::BadManifest { .. }
                ),
                "{}: {name}",
                place.name
            );
        }
        // A manifest of an unknown format.
        let mut later = good.clone();
        later.format = 99;
        write_manifest(&place.store, &later);
        assert!(matches!(
            refused(&place.store, tmp.path(), &["log"]),
            Error::BadManifest { .. }
        ));
    }
}

#[test]
fn a_missing_or_damaged_object_is_named() {
    for place in places("damaged") {
        let tmp = tempfile::tempdir().expect("tmp");
        archived(&place.store, tmp.path());
        let m = manifest(&place.store);
        let victim = m.objects[1].name.clone();
        let path = crate::common::object_path(&place.store, &victim);
        let os = place.store.object_store();
        let bytes = crate::common::block_on(async {
            os.get(&path)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("bytes")
        });
        // Damaged: one byte flipped.
        let mut flipped = bytes.to_vec();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x40;
        put(&place.store, &victim, flipped);
        match refused(&place.store, tmp.path(), &["log"]) {
            Error::CorruptObject { key, .. } => assert!(key.ends_with(&victim), "{key}"),
            other => panic!("{}: expected CorruptObject, got {other}", place.name),
        }
        // Damaged with the checksum in its name made to match: the frames still do not check.
        let mut forged = m.clone();
        let mut flipped = bytes.to_vec();
        flipped[at] ^= 0x40;
        let crc = crc32c::crc32c(&flipped);
        forged.objects[1].crc32c = crc;
        let forged_name = format!("{}{crc:08x}.seg", &victim[..victim.len() - 12]);
        forged.objects[1].name = forged_name.clone();
        put(&place.store, &forged_name, flipped);
        write_manifest(&place.store, &forged);
        match refused(&place.store, tmp.path(), &["log"]) {
            Error::CorruptObject { key, reason } => {
                assert!(key.ends_with(&forged_name), "{key}");
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("{}: expected CorruptObject, got {other}", place.name),
        }
        // Missing.
        write_manifest(&place.store, &m);
        crate::common::block_on(os.delete(&path)).expect("delete");
        match refused(&place.store, tmp.path(), &["log"]) {
            Error::MissingObject { key } => assert!(key.ends_with(&victim), "{key}"),
            other => panic!("{}: expected MissingObject, got {other}", place.name),
        }
    }
}

#[test]
fn a_gap_in_the_archive_is_refused_with_the_missing_range() {
    for place in places("gap") {
        let tmp = tempfile::tempdir().expect("tmp");
        archived(&place.store, tmp.path());
        let mut m = manifest(&place.store);
        let gone = m.objects.remove(2);
        write_manifest(&place.store, &m);
        match refused(&place.store, tmp.path(), &["log"]) {
            Error::Gap { first, last } => {
                assert_eq!(first.get(), gone.first_lsn);
                assert_eq!(last.get(), gone.last_lsn);
            }
            other => panic!("{}: expected Gap, got {other}", place.name),
        }
    }
}

#[test]
fn describe_lists_a_gap_that_restore_refuses_and_a_prune_leaves_none() {
    for place in places("describe-gap") {
        let tmp = tempfile::tempdir().expect("tmp");
        archived(&place.store, tmp.path());
        let whole = manifest(&place.store);
        assert!(whole.objects.len() >= 4, "{}: {whole:?}", place.name);
        assert_eq!(describe(&place.store).expect("describe").gaps, []);

        // A prune removes the objects below an LSN: the archive starts later, with no gap.
        let below = tidelog::Lsn::new(whole.objects[1].first_lsn);
        tidelog_archive::prune(
            &place.store,
            &tidelog_archive::PruneOptions::new(tidelog_archive::PruneTarget::Below(below)),
        )
        .expect("prune");
        let pruned = describe(&place.store).expect("describe");
        let m = pruned.manifest.expect("manifest");
        assert_eq!(m.first_lsn(), below, "{}", place.name);
        assert_eq!(pruned.gaps, [], "{}", place.name);

        // A manifest whose objects leave a hole: described with the hole, refused by a restore.
        let mut holed = m.clone();
        let gone = holed.objects.remove(1);
        write_manifest(&place.store, &holed);
        let described = describe(&place.store).expect("describe a gapped archive");
        assert_eq!(
            described.manifest.as_ref().map(|m| m.objects.len()),
            Some(holed.objects.len())
        );
        assert_eq!(
            described.gaps.len(),
            1,
            "{}: {:?}",
            place.name,
            described.gaps
        );
        let gap = &described.gaps[0];
        assert_eq!(
            (gap.first.get(), gap.last.get(), &gap.cause),
            (gone.first_lsn, gone.last_lsn, &GapCause::Hole),
            "{}",
            place.name
        );
        // The object left out is still in the store, named by no manifest.
        assert!(
            described.unreferenced.iter().any(|(n, _)| *n == gone.name),
            "{}: {:?}",
            place.name,
            described.unreferenced
        );
        match refused(&place.store, tmp.path(), &["log"]) {
            Error::Gap { first, last } => {
                assert_eq!((first.get(), last.get()), (gone.first_lsn, gone.last_lsn));
            }
            other => panic!("{}: expected Gap, got {other}", place.name),
        }

        // An object the manifest names that the store lost: a gap too, named.
        let lost = holed.objects.last().expect("the tail").clone();
        let path = crate::common::object_path(&place.store, &lost.name);
        crate::common::block_on(place.store.object_store().delete(&path)).expect("delete");
        let described = describe(&place.store).expect("describe");
        let gaps: Vec<(u64, u64, GapCause)> = described
            .gaps
            .iter()
            .map(|g| (g.first.get(), g.last.get(), g.cause.clone()))
            .collect();
        assert_eq!(
            gaps,
            [
                (gone.first_lsn, gone.last_lsn, GapCause::Hole),
                (
                    lost.first_lsn,
                    lost.last_lsn,
                    GapCause::MissingObject(lost.name.clone())
                ),
            ],
            "{}",
            place.name
        );
        assert!(matches!(
            refused(&place.store, tmp.path(), &["log"]),
            Error::Gap { .. }
        ));
    }
}

#[test]
fn foreign_objects_under_the_prefix_are_listed_and_never_read() {
    for place in places("foreign-objects") {
        let tmp = tempfile::tempdir().expect("tmp");
        let last = archived(&place.store, tmp.path());
        put(&place.store, "notes.txt", b"hello".to_vec());
        put(&place.store, "segments/garbage.seg", b"junk".to_vec());
        let described = describe(&place.store).expect("describe");
        let mut foreign: Vec<&str> = described.foreign.iter().map(|(n, _)| n.as_str()).collect();
        foreign.sort_unstable();
        assert_eq!(
            foreign,
            ["notes.txt", "segments/garbage.seg"],
            "{}",
            place.name
        );
        let report =
            restore(&place.store, tmp.path().join("out"), Target::Latest).expect("restore");
        assert_holds(&report.dir, 1, last);
    }
}

#[test]
fn a_restore_or_a_follower_of_a_mistyped_location_creates_nothing_there() {
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("no-such-archive");
    let store = Store::from_url(&format!("file://{}", missing.display())).expect("store");
    assert!(matches!(
        restore(&store, tmp.path().join("out"), Target::Latest),
        Err(Error::NoArchive { .. })
    ));
    let mut follower =
        tidelog_archive::Follower::new(store, tidelog_archive::FollowOptions::default())
            .expect("follower");
    assert_eq!(follower.try_next().expect("nothing yet"), None);
    drop(follower);
    assert!(!missing.exists(), "the location was created");
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn object_names_at_the_end_of_the_lsn_space_are_foreign_and_nothing_panics() {
    for place in places("hostile-names") {
        let tmp = tempfile::tempdir().expect("tmp");
        let last = archived(&place.store, tmp.path());
        let id = format!("{:032x}", manifest(&place.store).log_id());
        for name in [
            format!(
                "segments/{id}-00000000000000000001-18446744073709551615-0000000001-00000000.seg"
            ),
            format!(
                "segments/{id}-18446744073709551615-18446744073709551615-0000000001-00000000.tail"
            ),
            format!(
                "segments/{id}-99999999999999999999-99999999999999999999-9999999999-ffffffff.seg"
            ),
            "manifests/99999999999999999999.json".to_owned(),
        ] {
            put(&place.store, &name, b"junk".to_vec());
        }
        put(&place.store, "readers/junk.json", b"{ not a lease".to_vec());
        let described = describe(&place.store);
        assert!(described.is_ok() || matches!(described, Err(Error::BadManifest { .. })));
        let _ = tidelog_archive::prune(
            &place.store,
            &tidelog_archive::PruneOptions::new(tidelog_archive::PruneTarget::Below(
                tidelog::Lsn::new(last),
            )),
        );
        let log = std::sync::Arc::new(crate::common::open_log(&tmp.path().join("log")));
        let _ = tidelog_archive::Archiver::start(log, place.store.clone(), crate::common::quick());
    }
}
