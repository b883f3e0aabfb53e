//! tidelog-raft's integration tests: one binary, one module per area.

mod crash;
mod refusals;
mod suite;
