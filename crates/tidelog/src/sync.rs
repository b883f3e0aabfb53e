//! The synchronization primitives of the group-commit state machine: the standard library's,
//! or loom's when the crate is built with `--cfg loom` for model checking.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::thread::{Thread, current as current_thread, park, yield_now};
#[cfg(not(loom))]
pub(crate) use std::thread::{Thread, current as current_thread, park, yield_now};
