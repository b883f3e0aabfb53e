//! The fuzz targets of tidelog. Their bodies live with the integration tests
//! (`crates/tidelog/tests/it/fuzz_bodies.rs`), which also run them on the stable toolchain over
//! the committed corpora; this crate compiles that file, and the model and storage wrapper it
//! uses, as they are, and adds one check the tests cannot make: no single allocation larger
//! than [`ALLOCATION_CAP`] while a body runs.

#![deny(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

#[path = "../../crates/tidelog/tests/it/hooked.rs"]
#[expect(dead_code, reason = "the fuzz bodies use only its read statistics")]
mod hooked;

#[path = "../../crates/tidelog/tests/it/model.rs"]
mod model;

#[path = "../../crates/tidelog/tests/it/fuzz_bodies.rs"]
mod fuzz_bodies;

/// Any bytes as a quarantined cut file, read by `inspect`.
pub fn frame_decode(data: &[u8]) {
    fuzz_bodies::frame_decode(data);
}

/// Any bytes after a valid segment header: `inspect`, and opens in every recovery mode.
pub fn segment_scan(data: &[u8]) {
    fuzz_bodies::segment_scan(data);
}

/// Any bytes as a whole segment file, header included.
pub fn segment_header(data: &[u8]) {
    fuzz_bodies::segment_header(data);
}

/// Any bytes as `CHECKPOINT` or `RETENTION` beside healthy segments.
pub fn checkpoint(data: &[u8]) {
    fuzz_bodies::checkpoint(data);
}

/// A log directory generated from the bytes, opened every way.
pub fn log_dir(data: &[u8]) {
    fuzz_bodies::log_dir(data);
}

/// Operations, faults, crashes and reopens against the model.
pub fn log_ops(data: &[u8]) {
    fuzz_bodies::log_ops(data);
}

/// The largest single allocation a body may make. Inputs are small (libFuzzer's `-max_len`
/// defaults to 4 KiB, the corpora hold files of a few KiB, and the segment bodies add at most
/// 300 KiB of zeros), and the log's own buffers are fixed (a 256 KiB write buffer, a reader's
/// window of at most 1 MiB); a length field that reached an allocation unchecked would ask for
/// up to 1 GiB. The reads recovery makes are held to the record limit by the bodies themselves.
pub const ALLOCATION_CAP: usize = 8 << 20;

/// The largest allocation since the last [`run`] began.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, noting the size of every allocation.
struct Noting;

#[expect(unsafe_code, reason = "a global allocator is an unsafe trait")]
// SAFETY: every method forwards to `System` with the arguments it was given, which meet the
// contract of the same method of `System` because they meet this one's.
unsafe impl GlobalAlloc for Noting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as for the impl.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as for the impl.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as for the impl.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for the impl.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Noting = Noting;

/// Runs `body` on `data`, then fails if it made an allocation larger than [`ALLOCATION_CAP`].
pub fn run(body: fn(&[u8]), data: &[u8]) {
    LARGEST.store(0, Ordering::Relaxed);
    body(data);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= ALLOCATION_CAP,
        "an allocation of {largest} bytes, more than {ALLOCATION_CAP}"
    );
}
