//! [`Store`]: an object store of the `object_store` crate and the prefix an archive lives under,
//! made from a URL (`file:///path`, `memory://`, `s3://bucket/prefix`, and with the crate's
//! features `gs://` and `az://`), with credentials, region and endpoint from the environment
//! and options.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;

use crate::error::{Error, Result};

/// Where an archive lives: a store and a prefix in it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
}

impl Store {
    /// A store from its URL, configured from the environment as its kind of store reads it (for
    /// S3: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`,
    /// `AWS_ALLOW_HTTP`, …).
    ///
    /// Nothing is contacted or created until the store is used:
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tidelog_archive::{Error, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let local = Store::from_url(&format!("file://{}", dir.path().join("archive").display()))?;
    /// assert!(!dir.path().join("archive").exists());
    ///
    /// // Gone with the process; every clone shares it.
    /// let memory = Store::from_url("memory://")?;
    ///
    /// // The bucket `backups`, the archive under `logs/orders` in it.
    /// let s3 = Store::from_url("s3://backups/logs/orders")?;
    /// assert_eq!(s3.prefix().as_ref(), "logs/orders");
    ///
    /// assert!(matches!(
    ///     Store::from_url("ftp://example.com/logs"),
    ///     Err(Error::InvalidUrl { .. })
    /// ));
    /// # let _ = (local, memory);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a URL that does not parse or names a store this build does not
    /// have (enable the crate's `gcp` or `azure` feature).
    pub fn from_url(url: &str) -> Result<Store> {
        Store::from_url_with(url, std::iter::empty::<(&str, &str)>())
    }

    /// As [`Store::from_url`], with options that override the environment, by the names the
    /// `object_store` crate's builders know (for S3, among others: `endpoint`, `allow_http`,
    /// `virtual_hosted_style_request`, `region`, `access_key_id`, `secret_access_key`).
    ///
    /// An S3-compatible server of one's own (MinIO, Ceph, …) over plain HTTP, with path-style
    /// requests (`http://host:port/bucket/key`), the credentials still from the environment:
    ///
    /// ```no_run
    /// # fn main() -> Result<(), tidelog_archive::Error> {
    /// use tidelog_archive::{Store, describe};
    ///
    /// let store = Store::from_url_with(
    ///     "s3://backups/logs/orders",
    ///     [
    ///         ("endpoint", "http://127.0.0.1:9000"),
    ///         ("allow_http", "true"),
    ///         ("virtual_hosted_style_request", "false"),
    ///         ("region", "us-east-1"),
    ///     ],
    /// )?;
    /// // The first request: what the archive under logs/orders holds.
    /// let found = describe(&store)?;
    /// if let Some(manifest) = found.manifest {
    ///     println!("archived up to LSN {}", manifest.last_lsn());
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Store::from_url`], and [`Error::InvalidUrl`] for an option the store does not know.
    pub fn from_url_with<I, K, V>(url: &str, options: I) -> Result<Store>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let parsed = url::Url::parse(url).map_err(|e| invalid(url, e.to_string()))?;
        let location = redact(&parsed);
        let (scheme, prefix) = object_store::ObjectStoreScheme::parse(&parsed)
            .map_err(|e| invalid(url, e.to_string()))?;
        let options: Vec<(String, String)> = options
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.into()))
            .collect();
        // What a builder's error may echo: any option's value may be a credential.
        let values: Vec<String> = options.iter().map(|(_, v)| v.clone()).collect();
        let built = |e: object_store::Error| invalid(url, scrub(e.to_string(), &values));
        let inner: Arc<dyn ObjectStore> = match scheme {
            #[cfg(feature = "aws")]
            object_store::ObjectStoreScheme::AmazonS3 => {
                let mut builder =
                    object_store::aws::AmazonS3Builder::from_env().with_url(parsed.as_str());
                for (key, value) in options {
                    let key = key
                        .parse()
                        .map_err(|_| invalid(url, format!("unknown S3 option {key}")))?;
                    builder = builder.with_config(key, value);
                }
                Arc::new(builder.build().map_err(built)?)
            }
            #[cfg(feature = "gcp")]
            object_store::ObjectStoreScheme::GoogleCloudStorage => {
                let mut builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(parsed.as_str());
                for (key, value) in options {
                    let key = key
                        .parse()
                        .map_err(|_| invalid(url, format!("unknown GCS option {key}")))?;
                    builder = builder.with_config(key, value);
                }
                Arc::new(builder.build().map_err(built)?)
            }
            #[cfg(feature = "azure")]
            object_store::ObjectStoreScheme::MicrosoftAzure => {
                let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(parsed.as_str());
                for (key, value) in options {
                    let key = key
                        .parse()
                        .map_err(|_| invalid(url, format!("unknown Azure option {key}")))?;
                    builder = builder.with_config(key, value);
                }
                Arc::new(builder.build().map_err(built)?)
            }
            object_store::ObjectStoreScheme::Local => {
                // The archive lives under the path in a store of the whole file system, so
                // nothing is created until something is written (a restore or a description
                // of a mistyped path leaves nothing behind).
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| invalid(url, "not a local path".to_owned()))?;
                let prefix =
                    Path::from_absolute_path(&dir).map_err(|e| invalid(url, e.to_string()))?;
                // With fsync: an object counts as archived (and the log may then drop its
                // segment) only once it would survive a power loss.
                let local = object_store::local::LocalFileSystem::new().with_fsync(true);
                return Ok(Store {
                    inner: Arc::new(local),
                    prefix,
                    location,
                });
            }
            object_store::ObjectStoreScheme::Memory => {
                Arc::new(object_store::memory::InMemory::new())
            }
            other => {
                return Err(invalid(
                    url,
                    format!("{other:?} stores need a feature of tidelog-archive this build lacks"),
                ));
            }
        };
        Ok(Store {
            inner,
            prefix,
            location,
        })
    }

    /// A store built by the caller (for example one wrapped to inject faults, or an `InMemory`
    /// shared between a writer and a restore), with the archive under `prefix` in it.
    pub fn new(inner: Arc<dyn ObjectStore>, prefix: &str) -> Store {
        let prefix = Path::from(prefix);
        Store {
            location: format!("{inner}/{prefix}"),
            inner,
            prefix,
        }
    }

    /// The object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The prefix the archive's objects are under.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The store and prefix, for messages (no credentials).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The path of `name` (which may hold `/`) under the prefix.
    pub(crate) fn path(&self, name: &str) -> Path {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_owned()).collect();
        parts.extend(name.split('/').filter(|p| !p.is_empty()).map(str::to_owned));
        Path::from_iter(parts)
    }

    /// The name of `path` under the prefix, or `None` if it is not under it.
    pub(crate) fn name_of<'a>(&self, path: &'a Path) -> Option<String> {
        let rest: Vec<_> = path.prefix_match(&self.prefix)?.collect();
        let _: &'a Path = path;
        Some(
            rest.iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join("/"),
        )
    }
}

/// An invalid URL, shown without what may carry secrets, and `reason` without them either (an
/// error of the `object_store` crate may quote the whole URL).
fn invalid(url: &str, reason: String) -> Error {
    let Ok(parsed) = url::Url::parse(url) else {
        return Error::InvalidUrl {
            url: "(unparsable)".to_owned(),
            reason: scrub(reason, &[url.to_owned()]),
        };
    };
    let mut secrets = vec![url.to_owned(), parsed.as_str().to_owned()];
    secrets.extend(
        [
            Some(parsed.username()),
            parsed.password(),
            parsed.query(),
            parsed.fragment(),
        ]
        .into_iter()
        .flatten()
        .map(str::to_owned),
    );
    Error::InvalidUrl {
        url: redact(&parsed),
        reason: scrub(reason, &secrets),
    }
}

/// `text` with every one of `secrets` (of 4 bytes or more: shorter ones would blot out
/// ordinary words) replaced by `[redacted]`, longest first.
fn scrub(mut text: String, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| s.len() >= 4).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        text = text.replace(secret.as_str(), "[redacted]");
    }
    text
}

/// The URL without user information, query or fragment, which may carry secrets.
fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}
