//! tidelog-archive's integration tests: one binary, one module per area. Each scenario runs on
//! an in-memory store, a local directory, and the S3 server named by `TIDELOG_TEST_S3_ENDPOINT`
//! and `TIDELOG_TEST_S3_BUCKET` (which `.ci/run` starts); without them the S3 runs say they
//! skipped.

mod archive;
mod bad;
mod common;
mod divergence;
mod faulty;
mod fencing;
mod follow;
#[cfg(unix)]
mod kills;
mod multipart;
mod restore;
mod retention;
mod secrets;
mod stores;
