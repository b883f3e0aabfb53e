//! [tidelog] as the log store of an [openraft] node: [`LogStore`] implements openraft's
//! `RaftLogStorage` and `RaftLogReader` (storage API v2) on a tidelog [`Log`](tidelog::Log),
//! and passes openraft's own storage test suite (`openraft::testing::Suite`).
//!
//! - **Index and LSN.** The entry at Raft index `i` is the record at LSN `i + 1` (Raft indexes
//!   start at 0, LSNs at 1); an entry's log id is checked against its LSN on every read.
//! - **Entries** are encoded with [postcard]: a documented wire format, stable since its 1.0,
//!   of variable-length integers and no field names, so an entry costs its payload and a few
//!   bytes (a blank entry of term 3 at index 1,000 takes 5; a key-value write adds one length
//!   byte or two per field). The index is kept in the entry, which lets every read check it
//!   against the LSN.
//! - **Appends** go to the log as one batch per call, written (so they can be read at once, as
//!   openraft requires) and made durable in the log's group commit, which callers on other
//!   threads share (several Raft groups on one log, say), before openraft's callback is told:
//!   never one fsync per entry. `append` returns once the batch is durable: openraft 0.9 awaits
//!   the callback before its core goes on anyway, and waiting in `append` saves two thread
//!   hand-offs per call.
//! - **The vote, the last purged log id and the committed log id** live in the log's metadata
//!   slot, replaced crash-safely (temporary file, fsync, rename). The vote is durable when
//!   `save_vote` returns; the committed log id is kept in memory and written with the next vote
//!   or purge (openraft allows it to be stale: it is a hint for what to apply on restart).
//! - **Truncate** rolls the log back durably ([`Log::truncate_after`](tidelog::Log)); **purge**
//!   records the purged log id first and then checkpoints the log after it, or, for a purge past
//!   the last entry (a snapshot installed from the leader), resets the log to go on after it
//!   ([`Log::reset_to`](tidelog::Log::reset_to)). A crash between the two is completed when the
//!   store opens.
//!
//! [`kv`] holds a state machine in memory, with its type configuration, for the test suite and
//! the example; it is not the product.

mod error;
pub mod kv;
mod store;

pub use crate::error::{Error, Result};
pub use crate::store::LogStore;
