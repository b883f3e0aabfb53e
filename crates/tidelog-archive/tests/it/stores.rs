//! Stores by URL: Google Cloud Storage and Azure in a build with the `gcp` and `azure` features,
//! and a clear refusal in one without. (S3, local directories and memory are in every other
//! test.) Building a store sends nothing: credentials are looked up at its first request.

use tidelog_archive::{Error, Store};

#[cfg(feature = "gcp")]
#[test]
fn a_gs_url_gives_a_google_cloud_store_under_its_prefix() {
    let store = Store::from_url("gs://tidelog-bucket/logs/orders").expect("gs store");
    assert_eq!(store.prefix().as_ref(), "logs/orders");
    assert_eq!(store.location(), "gs://tidelog-bucket/logs/orders");
    let inner = store.object_store().to_string();
    assert!(inner.contains("GoogleCloudStorage"), "{inner}");
    assert!(inner.contains("tidelog-bucket"), "{inner}");
}

#[cfg(feature = "azure")]
#[test]
fn an_az_url_gives_an_azure_store_under_its_prefix() {
    let options = [
        ("account_name", "tidelogtest"),
        ("access_key", "dGlkZWxvZw=="),
    ];
    let store =
        Store::from_url_with("az://tidelog-container/logs/orders", options).expect("az store");
    assert_eq!(store.prefix().as_ref(), "logs/orders");
    assert_eq!(store.location(), "az://tidelog-container/logs/orders");
    let inner = store.object_store().to_string();
    assert!(inner.contains("MicrosoftAzure"), "{inner}");
    assert!(inner.contains("tidelog-container"), "{inner}");
    // An option the store does not know is refused, by its name.
    let wrong = Store::from_url_with("az://tidelog-container/logs", [("no_such_option", "1")]);
    assert!(
        matches!(&wrong, Err(Error::InvalidUrl { reason, .. }) if reason.contains("no_such_option")),
        "{wrong:?}"
    );
}

#[cfg(not(feature = "gcp"))]
#[test]
fn a_gs_url_without_the_gcp_feature_is_refused_naming_the_feature() {
    let err = Store::from_url("gs://tidelog-bucket/logs").expect_err("no gcp");
    assert!(
        matches!(&err, Error::InvalidUrl { reason, .. } if reason.contains("feature")),
        "{err:?}"
    );
}

#[cfg(not(feature = "azure"))]
#[test]
fn an_az_url_without_the_azure_feature_is_refused_naming_the_feature() {
    let err = Store::from_url("az://tidelog-container/logs").expect_err("no azure");
    assert!(
        matches!(&err, Error::InvalidUrl { reason, .. } if reason.contains("feature")),
        "{err:?}"
    );
}

/// Says in the run's output whether the archive's scenarios also ran on an S3 server (the
/// project's nextest configuration shows this test's output even when it passes; with
/// `cargo test`, pass `--nocapture`), and when one is named, that it keeps what it is given.
#[test]
fn the_run_says_whether_the_s3_scenarios_ran() {
    let Some(url) = crate::common::s3_url("probe") else {
        println!(
            "SKIPPED: the archive's scenarios on S3 (TIDELOG_TEST_S3_ENDPOINT is not set; \
             `bash .ci/with-s3 cargo nextest run --workspace` starts a server and sets it)"
        );
        return;
    };
    let store = crate::common::s3_store(&url);
    crate::common::put_object(&store, "probe", b"tidelog".to_vec());
    let got = crate::common::get_object(&store, "probe");
    assert_eq!(&got[..], b"tidelog");
    println!("S3: the archive's scenarios also ran on the server at {url}");
}
