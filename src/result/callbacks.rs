//! The pool of threads that runs users' `on_done` callbacks.
//!
//! A callback may block (on another result's `get`, on a channel) and may
//! submit more work: while it blocks, the pool starts another thread for
//! the next callback, so callbacks never wait for each other. Idle pool
//! threads exit after a few seconds. The controller asks
//! [`callbacks_pending`] before it lets the job end. When a callback runs
//! (once its result is done) is the result state's (`state.rs`).

use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// A user callback waiting to run.
pub(super) type Callback = Box<dyn FnOnce() + Send>;

/// How long an idle callback thread waits for work before it exits.
const CALLBACK_IDLE: Duration = Duration::from_secs(5);

/// The callback pool: queued callbacks, and how many threads wait for one.
struct Pool {
    queue: Mutex<PoolQueue>,
    ready: Condvar,
}

struct PoolQueue {
    jobs: std::collections::VecDeque<Callback>,
    /// Threads waiting on `ready`; each queued job beyond them gets a new
    /// thread, so a job never waits behind a callback that blocks.
    waiting: usize,
    threads: usize,
    /// Callbacks taken from `jobs` and not finished.
    running: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        queue: Mutex::new(PoolQueue {
            jobs: std::collections::VecDeque::new(),
            waiting: 0,
            threads: 0,
            running: 0,
        }),
        ready: Condvar::new(),
    })
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolQueue> {
        // Jobs run outside the lock (and panics in them are caught), so a
        // poisoned lock still holds a consistent queue.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One pool thread: runs jobs until none comes for [`CALLBACK_IDLE`].
    fn work(&'static self) {
        let mut queue = self.lock();
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                queue.running += 1;
                drop(queue);
                run_guarded(job);
                queue = self.lock();
                queue.running -= 1;
                continue;
            }
            queue.waiting += 1;
            let (guard, timeout) = self
                .ready
                .wait_timeout(queue, CALLBACK_IDLE)
                .unwrap_or_else(|p| p.into_inner());
            queue = guard;
            queue.waiting -= 1;
            if timeout.timed_out() && queue.jobs.is_empty() {
                queue.threads -= 1;
                return;
            }
        }
    }
}

/// Runs one user callback; a panic in it is reported, not propagated.
fn run_guarded(job: Callback) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
        eprintln!("rankview: an on_done callback panicked");
    }
}

/// Callbacks queued or running on the pool: the job does not end while
/// there are (see the controller's "Shutdown").
pub(crate) fn callbacks_pending() -> usize {
    let queue = pool().lock();
    queue.jobs.len() + queue.running
}

/// Queues a user callback on the pool, starting a thread when every thread
/// is busy (a blocked callback never delays another).
pub(super) fn run_callback(callback: Callback) {
    let pool = pool();
    let mut queue = pool.lock();
    queue.jobs.push_back(callback);
    if queue.jobs.len() <= queue.waiting {
        drop(queue);
        pool.ready.notify_one();
        return;
    }
    queue.threads += 1;
    drop(queue);
    let spawned = std::thread::Builder::new()
        .name("rankview-callbacks".into())
        .spawn(|| pool.work());
    if let Err(e) = spawned {
        let mut queue = pool.lock();
        queue.threads -= 1;
        eprintln!("rankview: cannot start a callback thread: {e}");
        if queue.threads == 0 {
            // No thread will ever take it: run it here rather than never.
            if let Some(job) = queue.jobs.pop_back() {
                queue.running += 1;
                drop(queue);
                run_guarded(job);
                pool.lock().running -= 1;
            }
        }
    }
}
