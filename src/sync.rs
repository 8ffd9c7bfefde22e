//! The synchronization primitives of rankview's hand-written hand-offs:
//! std's, or loom's when the crate is built with `--cfg loom`.
//!
//! The owner/helper hand-off of a rank's loop (`helping`), the engine's
//! `Inbox` and the loans (`loan`) take their locks, condition variables,
//! atomics and thread handles from here, so that their loom models
//! (`ci/test-loom.sh`) check the code that runs. This module holds only
//! what those use, and one thing loom lacks: a nap with a timeout
//! ([`thread::park_timeout`]). Statics stay std's everywhere (loom's
//! primitives cannot be built in a `const`); what they guard is not
//! modelled.

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Atomics (the orderings are std's under loom too).
pub(crate) mod atomic {
    #[cfg(loom)]
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize};
    pub(crate) use std::sync::atomic::Ordering;
    #[cfg(not(loom))]
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize};
}

/// Thread handles, parking and yielding.
pub(crate) mod thread {
    #[cfg(loom)]
    pub(crate) use loom::thread::{current, yield_now, Thread};
    #[cfg(not(loom))]
    pub(crate) use std::thread::{current, park_timeout, yield_now, Thread};

    /// Under loom, a nap lasts until the thread is unparked: the worst
    /// case of a real timeout (one that comes too late to matter), so a
    /// model fails with a deadlock wherever a napping thread would be left
    /// to its timeout alone. Loops that nap must yield in a model otherwise
    /// (see `Backoff::snooze`).
    #[cfg(loom)]
    pub(crate) fn park_timeout(_: std::time::Duration) {
        loom::thread::park();
    }
}
