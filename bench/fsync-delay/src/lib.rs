//! An `LD_PRELOAD` shim that makes every `fsync` and `fdatasync` of a process slower by the same
//! delay, so the benchmark can measure every contender as on a disk whose flush is slower than
//! the one it runs on (a cloud volume's, say), alike for all of them.
//!
//! - `FSYNC_DELAY_US`: microseconds to sleep after each call returns (the real call runs first,
//!   so the data is as durable as without the shim). Unset or unparsable: no delay.
//! - `FSYNC_DELAY_REPORT`: a file to which the process appends, at exit, one line
//!   `fsync-delay pid=P calls=N delay_us=D`, so the benchmark can check that the shim took
//!   effect (a contender that flushed through another call would show `calls=0`).
//!
//! `unsafe` is the point of this crate and is confined to it: the benchmark's only way to
//! interpose on the C library is to export its symbols and find the real ones with
//! `dlsym(RTLD_NEXT, ..)`. The core crates stay `unsafe`-free.

use std::ffi::{CStr, c_int};
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

type SyncFn = unsafe extern "C" fn(c_int) -> c_int;

static CALLS: AtomicU64 = AtomicU64::new(0);
static DELAY: OnceLock<Duration> = OnceLock::new();
static REAL_FSYNC: OnceLock<SyncFn> = OnceLock::new();
static REAL_FDATASYNC: OnceLock<SyncFn> = OnceLock::new();
static REPORT: OnceLock<()> = OnceLock::new();

/// The next definition of `name` after this library's: the C library's.
fn next(name: &CStr) -> SyncFn {
    // SAFETY: `dlsym` with `RTLD_NEXT` and a NUL-terminated name is always safe to call; the
    // result is null or the address of the function of that name, whose C signature is
    // `int (int)` for both names looked up here.
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    assert!(!f.is_null(), "fsync-delay: no next definition of {name:?}");
    // SAFETY: a non-null `dlsym` result for these names is a function `int (int)`.
    unsafe { std::mem::transmute::<*mut libc::c_void, SyncFn>(f) }
}

fn delay() -> Duration {
    *DELAY.get_or_init(|| {
        std::env::var("FSYNC_DELAY_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::ZERO, Duration::from_micros)
    })
}

/// Writes the report line; registered with `atexit` on the first call.
extern "C" fn report() {
    let Ok(path) = std::env::var("FSYNC_DELAY_REPORT") else {
        return;
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(
            f,
            "fsync-delay pid={} calls={} delay_us={}",
            std::process::id(),
            CALLS.load(Ordering::Relaxed),
            delay().as_micros()
        );
    }
}

fn after_call() {
    CALLS.fetch_add(1, Ordering::Relaxed);
    REPORT.get_or_init(|| {
        // SAFETY: `report` is an `extern "C" fn()` that lives as long as the process.
        unsafe { libc::atexit(report) };
    });
    let d = delay();
    if !d.is_zero() {
        std::thread::sleep(d);
    }
}

/// `fsync(2)`, then the delay.
///
/// # Safety
/// As the C library's `fsync`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fsync(fd: c_int) -> c_int {
    let real = REAL_FSYNC.get_or_init(|| next(c"fsync"));
    // SAFETY: the C library's `fsync`, called as the caller called this one.
    let r = unsafe { real(fd) };
    after_call();
    r
}

/// `fdatasync(2)`, then the delay.
///
/// # Safety
/// As the C library's `fdatasync`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fdatasync(fd: c_int) -> c_int {
    let real = REAL_FDATASYNC.get_or_init(|| next(c"fdatasync"));
    // SAFETY: the C library's `fdatasync`, called as the caller called this one.
    let r = unsafe { real(fd) };
    after_call();
    r
}
