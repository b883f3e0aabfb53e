//! No credential reaches what tidelog-archive shows: its errors (`Display` and `Debug`), the
//! `Debug` of a store, a store's location and an archive's description. Each check uses a
//! recognisable fake secret and looks for it in every text.

use std::sync::Arc;

use tidelog_archive::{Archiver, Store, Target, restore};

use crate::common::{archive_records, open_log};

/// The fake secret, and a fake key id beside it.
const SECRET: &str = "tidelogFAKEsecret9f2c71";
const KEY_ID: &str = "AKIATIDELOGFAKE0042";

#[track_caller]
fn clean(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET),
        "the secret appears in {what}: {text}"
    );
}

#[track_caller]
fn clean_error(what: &str, e: &tidelog_archive::Error) {
    clean(what, &e.to_string());
    clean(what, &format!("{e:?}"));
}

#[test]
fn a_store_made_with_credentials_never_shows_them() {
    let options = [
        ("access_key_id", KEY_ID),
        ("secret_access_key", SECRET),
        ("token", SECRET),
        ("region", "us-east-1"),
        ("endpoint", "http://127.0.0.1:9"),
    ];
    let store = Store::from_url_with("s3://bucket/prefix", options).expect("store");
    clean("the store's Debug", &format!("{store:?}"));
    clean("the store's location", store.location());

    // Credentials in the URL itself, as user information or a query.
    for url in [
        format!("s3://{KEY_ID}:{SECRET}@bucket/prefix"),
        format!("s3://bucket/prefix?secret_access_key={SECRET}"),
        format!("s3://bucket/prefix#{SECRET}"),
        format!("file:///tmp/archive?{SECRET}"),
        format!("nosuchscheme://{KEY_ID}:{SECRET}@bucket/prefix"),
    ] {
        match Store::from_url(&url) {
            Ok(store) => {
                clean(&format!("the Debug of {url}"), &format!("{store:?}"));
                clean(&format!("the location of {url}"), store.location());
            }
            Err(e) => clean_error(&format!("the error for {url}"), &e),
        }
    }

    // An option the store does not know, holding the secret, and a bad value.
    for bad in [("no_such_option", SECRET), ("allow_http", SECRET)] {
        let options = [("secret_access_key", SECRET), bad];
        match Store::from_url_with("s3://bucket/prefix", options) {
            Ok(store) => clean("the Debug of a store", &format!("{store:?}")),
            Err(e) => clean_error(&format!("the error for {bad:?}"), &e),
        }
    }
}

/// On the S3 test server, with the secret as the credentials: what an archiver, a restore and
/// their failures show.
#[test]
fn archiving_and_restoring_with_credentials_never_shows_them() {
    let Some(url) = crate::common::s3_url("secrets") else {
        eprintln!("SKIPPED secrets on S3: TIDELOG_TEST_S3_ENDPOINT is not set");
        return;
    };
    let with_secret = |url: &str| crate::common::s3_store_as(url, KEY_ID, SECRET);
    let store = with_secret(&url);
    let tmp = tempfile::tempdir().expect("tmp");
    let log = Arc::new(open_log(&tmp.path().join("log")));
    archive_records(&log, &store, 100);
    let archiver =
        Archiver::start(Arc::clone(&log), store.clone(), Default::default()).expect("archiver");
    clean("the archiver's status", &format!("{:?}", archiver.status()));
    clean("the archiver's Debug", &format!("{archiver:?}"));
    let status = archiver.stop().expect("stop");
    clean("the archiver's last status", &format!("{status:?}"));
    let report = restore(&store, tmp.path().join("restored"), Target::Latest).expect("restore");
    clean("the restore's report", &format!("{report:?}"));
    let description = tidelog_archive::describe(&store).expect("describe");
    clean("the archive's description", &format!("{description:?}"));

    // Failures: a bucket that does not exist, no archive under a prefix, a busy target, a
    // target past the archive.
    let missing_bucket = with_secret("s3://tidelog-no-such-bucket/secrets");
    let e = restore(&missing_bucket, tmp.path().join("a"), Target::Latest).expect_err("refused");
    clean_error("the error of a missing bucket", &e);
    let e = Archiver::start(Arc::clone(&log), missing_bucket, Default::default())
        .and_then(Archiver::stop)
        .expect_err("refused");
    clean_error("the archiver's error on a missing bucket", &e);
    let empty = with_secret(&format!("{url}-empty"));
    let e = restore(&empty, tmp.path().join("b"), Target::Latest).expect_err("no archive");
    clean_error("the error of an empty prefix", &e);
    let e = restore(&store, tmp.path().join("restored"), Target::Latest).expect_err("busy");
    clean_error("the error of a busy target", &e);
    let e = restore(
        &store,
        tmp.path().join("c"),
        Target::Lsn(tidelog::Lsn::new(1_000)),
    )
    .expect_err("past");
    clean_error("the error of a target past the archive", &e);
}
