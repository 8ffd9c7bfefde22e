//! A counting global allocator: what the current thread allocates while
//! [`measure`] runs (the largest single allocation, the peak of live
//! bytes, the bytes left live and the number of allocations), to check
//! that decoding hostile input allocates nothing near what it claims, and
//! what a held result costs.
//!
//! Shared by the protocol fuzz test (`tests/protocol_fuzz.rs`) and the
//! crate's unit tests (included by `src/codec.rs`, also used by the
//! result's and the controller's memory tests), each of which includes
//! this file by path: a crate that includes it allocates through it. Counting is per
//! thread, so tests running beside each other do not disturb it; what the
//! limits are is each test's business.

// Each includer uses a different part.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// What the current thread allocated while tracking.
#[derive(Clone, Copy, Default)]
pub struct Usage {
    /// Bytes allocated and not freed.
    pub live: usize,
    /// The most bytes live at once.
    pub peak: usize,
    /// The largest single allocation.
    pub largest: usize,
    /// Allocations made (a reallocation is not one).
    pub allocations: usize,
}

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static USAGE: Cell<Usage> = const {
        Cell::new(Usage { live: 0, peak: 0, largest: 0, allocations: 0 })
    };
}

/// The system allocator, counting the current thread's allocations while
/// [`measure`] runs.
struct Counting;

impl Counting {
    fn grew(size: usize) {
        if TRACKING.with(Cell::get) {
            USAGE.with(|u| {
                let mut usage = u.get();
                usage.live += size;
                usage.peak = usage.peak.max(usage.live);
                usage.largest = usage.largest.max(size);
                u.set(usage);
            });
        }
    }

    fn allocated(size: usize) {
        Counting::grew(size);
        if TRACKING.with(Cell::get) {
            USAGE.with(|u| {
                let mut usage = u.get();
                usage.allocations += 1;
                u.set(usage);
            });
        }
    }

    fn shrank(size: usize) {
        if TRACKING.with(Cell::get) {
            USAGE.with(|u| {
                let mut usage = u.get();
                usage.live = usage.live.saturating_sub(size);
                u.set(usage);
            });
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counting only touches
// const-initialised thread-locals of `Copy` values (no allocation, no
// destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Counting::allocated(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Counting::shrank(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Counting::allocated(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Counting::shrank(layout.size());
        Counting::grew(new_size);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, returning its result and what it allocated on this thread.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Usage) {
    USAGE.with(|u| u.set(Usage::default()));
    TRACKING.with(|t| t.set(true));
    let value = f();
    TRACKING.with(|t| t.set(false));
    (value, USAGE.with(Cell::get))
}
