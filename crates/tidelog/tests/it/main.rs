//! tidelog's integration tests: one binary, one module per area.

mod append;
mod checkpoint;
mod common;
mod copy;
mod crash;
mod faults;
mod fixtures;
mod fuzz_bodies;
mod group_commit;
mod hardening;
mod hooked;
mod inspect;
#[cfg(unix)]
mod kills;
mod metrics;
mod model;
mod modes;
mod prealloc;
mod reader;
mod recovery;
mod recycle;
mod repair;
mod seal;
mod seams;
mod sharded;
mod stress;
