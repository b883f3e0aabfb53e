//! tidelog: a durable, recoverable, concurrent write-ahead log.
//!
//! A [`Log`] is one ordered sequence of records in one directory. Each record gets a dense
//! [`Lsn`] (1, 2, 3, …). Records are framed with a salted CRC32C and kept in segment files
//! named by their first LSN; recovery on open turns whatever a crash left into a prefix of what
//! was appended.
//!
//! ```
//! use tidelog::{Durability, Log, Lsn};
//! # fn main() -> tidelog::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let log = Log::open(dir.path())?;
//! let first = log.append(b"hello", Durability::Buffered)?;
//! let (_, last) = log.append_batch(&["all", "or", "nothing"], Durability::Synced)?;
//! assert_eq!(log.durable_lsn(), last);
//! assert_eq!(log.read(first)?.data(), b"hello");
//! let all: Vec<_> = log.iter()?.map(|r| r.map(|r| r.into_data())).collect::<Result<_, _>>()?;
//! assert_eq!(all.len(), 4);
//! log.checkpoint(last)?; // records below `last` may be dropped
//! drop(log);
//!
//! let log = Log::open(dir.path())?; // runs recovery
//! assert!(log.recovery_report().is_clean());
//! assert_eq!(log.last_lsn(), Lsn::new(4));
//! # Ok(()) }
//! ```
//!
//! # Durability contract
//!
//! 1. `append` and `append_batch` return the LSNs once the bytes are handed to the log; they are
//!    not durable yet. [`Log::sync`], [`Log::wait_durable`] and [`Durability::Synced`] appends
//!    return only once every record up to that LSN is on stable storage (`fdatasync`, or
//!    `F_FULLFSYNC` on Apple platforms, plus a directory fsync for every segment file created,
//!    renamed or removed).
//! 2. After a crash, the recovered log is a prefix of what was appended: no holes, no
//!    reordering, nothing invented, and every record whose durability was acknowledged.
//! 3. A batch survives whole or not at all.
//! 4. A failed write or fsync poisons the log: that call (and every caller waiting on the same
//!    sync) gets the real error, every later call gets [`Error::Poisoned`], and no fsync is
//!    retried. Reopening runs recovery.
//! 5. Recovery never deletes data silently: a torn tail is cut and reported; other damage is an
//!    error unless a more tolerant [`RecoveryMode`] was chosen, and what such a mode discards is
//!    moved to the `quarantine/` folder.
//!
//! # Testing with crashes and faults
//!
//! Every byte goes through the [`io::Storage`] trait. [`io::MemStorage`] keeps durable and
//! unsynced bytes apart and can [`crash`](io::MemStorage::crash); [`io::FaultyStorage`] fails
//! writes, fsyncs and renames on demand, cuts writes short, or fills the disk. Systems built on
//! tidelog can use both in their own tests.

/// Enters a `tracing` span for the rest of the enclosing block (with the `tracing` feature).
macro_rules! span {
    ($name:literal $(, $($field:tt)*)?) => {
        #[cfg(feature = "tracing")]
        let _span = tracing::info_span!($name $(, $($field)*)?).entered();
    };
}

mod commit;
mod copy;
mod error;
mod format;
pub mod inspect;
pub mod io;
mod log;
mod metrics;
mod options;
mod read;
mod recovery;
pub mod repair;
mod segment;
pub mod sharded;
mod sync;
mod types;

pub use crate::commit::DurableFuture;
pub use crate::copy::{Importer, SegmentCopy};
pub use crate::error::{CorruptionKind, Error, Result};
pub use crate::format::{FORMAT_VERSION, MAX_METADATA_BYTES, MAX_RECORD_BYTES_LIMIT};
pub use crate::log::{Appended, Log, LogBuilder, SegmentEvent, SegmentInfo};
pub use crate::metrics::{Metrics, Summary};
pub use crate::options::{
    DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, DEFAULT_MAX_RECORD_BYTES, DEFAULT_SEGMENT_BYTES,
    DEFAULT_WRITE_BUFFER_BYTES, Durability, MIN_SEGMENT_BYTES, Options, ParseRecoveryModeError,
    RecoveryMode, SyncPolicy, WhenFull,
};
pub use crate::read::{Iter, Record, Tail};
pub use crate::recovery::{Damage, DamageAction, RecoveryReport};
pub use crate::types::Lsn;

/// The next value of the splitmix64 generator whose state is `state`: small and well mixed,
/// for choices that must follow from a seed (crash outcomes, fixtures), never for salts.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Milliseconds since the Unix epoch by the system's coarse real-time clock, for batch times:
/// on Linux a read costs a few nanoseconds against tens for the precise clock (which on a
/// stream of small appends is several percent of the work), and lags it by less than one
/// kernel tick (1 to 4 ms). Elsewhere, the precise clock.
pub(crate) fn coarse_now_ms() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        if let Some(ms) = __fixtures::fixed_now_ms() {
            return ms;
        }
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        // Both fields are never negative after 1970, and the sum fits for 500 million years.
        (t.tv_sec.max(0) as u64) * 1000 + (t.tv_nsec.max(0) as u64) / 1_000_000
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    now_ms()
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    if let Some(ms) = __fixtures::fixed_now_ms() {
        return ms;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// 64 random bits from the operating system, or from the standard library's randomly keyed
/// hasher if the system source fails.
pub(crate) fn random_u64() -> u64 {
    if let Some(x) = __fixtures::seeded_u64() {
        return x;
    }
    getrandom::u64().unwrap_or_else(|_| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(now_ms());
        h.write_u32(std::process::id());
        h.finish()
    })
}

pub(crate) fn random_u128() -> u128 {
    (u128::from(random_u64()) << 64) | u128::from(random_u64())
}

/// Not part of the API: no stability promise, and it may change or go away in any release.
///
/// It exists for the golden fixtures of the on-disk format (`tests/fixtures/` in the crate's
/// repository), which must be regenerated byte for byte: inside [`__fixtures::deterministic`],
/// the log id, segment salts and timestamps that a log writes on the calling thread come from
/// a seeded generator and a fixed clock instead of the system's. Other threads are not
/// affected.
#[doc(hidden)]
pub mod __fixtures {
    use std::cell::Cell;

    /// The time every timestamp written inside [`deterministic`] shows, in milliseconds since
    /// the Unix epoch (2023-11-14T22:13:20Z).
    pub const FIXED_NOW_MS: u64 = 1_700_000_000_000;

    thread_local! {
        /// The state of the calling thread's generator, while [`deterministic`] runs.
        static SEEDED: Cell<Option<u64>> = const { Cell::new(None) };
    }

    /// Runs `f` with the calling thread's randomness seeded with `seed` and its clock fixed at
    /// [`FIXED_NOW_MS`]; what was in force before is restored afterwards, even if `f` panics.
    /// A log written inside it from this thread alone (with [`SyncPolicy::Manual`] and no
    /// futures, so no other thread writes anything) holds the same bytes every time.
    ///
    /// [`SyncPolicy::Manual`]: crate::SyncPolicy::Manual
    pub fn deterministic<R>(seed: u64, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<u64>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let _ = SEEDED.try_with(|s| s.set(self.0));
            }
        }
        let _restore = Restore(SEEDED.with(|s| s.replace(Some(seed))));
        f()
    }

    /// The next value of the calling thread's seeded generator (splitmix64), if one is set.
    pub(crate) fn seeded_u64() -> Option<u64> {
        SEEDED
            .try_with(|s| {
                let mut state = s.get()?;
                let value = crate::splitmix64(&mut state);
                s.set(Some(state));
                Some(value)
            })
            .ok()
            .flatten()
    }

    /// The fixed clock, if the calling thread runs inside [`deterministic`].
    pub(crate) fn fixed_now_ms() -> Option<u64> {
        SEEDED
            .try_with(|s| s.get().map(|_| FIXED_NOW_MS))
            .ok()
            .flatten()
    }
}

#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct CrateReadmeDoctests;
