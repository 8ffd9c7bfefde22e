//! Adaptive waiting for threads that poll: spin, then yield, then sleep
//! for a growing share of the time already spent idle.
//!
//! Every polling loop in rankview (the controller, the engines' MPI threads,
//! waiters on results) waits through [`Backoff`], so that a busy rank answers
//! within microseconds while an idle rank sleeps and leaves its core to others:
//! MPI jobs are often oversubscribed, and an idle engine must stay under 1% of
//! a core. Deciding *when* to wait is left to the loops themselves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Busy-spin iterations before yielding.
const SPINS: u32 = 64;
/// How long to keep yielding before starting to sleep.
const YIELD_FOR: Duration = Duration::from_micros(200);
/// Shortest sleep.
const MIN_SLEEP: Duration = Duration::from_micros(20);
/// A sleep lasts this fraction of the time already spent idle, so waking up
/// late adds at most about 1/8 to any wait.
const SLEEP_DIVISOR: u32 = 8;

/// Yields made by every backoff of this process (see [`idle_yields`]).
static YIELDS: AtomicU64 = AtomicU64::new(0);

/// How many times the idle polling loops of this process have yielded the
/// core so far (the step between spinning and sleeping). For the test
/// programs, which check that an engine's MPI thread leaves the core to a
/// running task.
pub fn idle_yields() -> u64 {
    YIELDS.load(Ordering::Relaxed)
}

/// Progressive backoff for one polling loop.
///
/// Call [`Backoff::snooze`] after an iteration that found nothing to do and
/// [`Backoff::reset`] after one that did. Sleeping uses `thread::park_timeout`,
/// so another thread can cut a sleep short with `Thread::unpark`.
#[derive(Debug)]
pub(crate) struct Backoff {
    spins: u32,
    idle_since: Option<Instant>,
    ceiling: Duration,
    slept: bool,
}

impl Backoff {
    /// A backoff whose sleeps never exceed `ceiling`.
    pub(crate) fn new(ceiling: Duration) -> Self {
        Backoff {
            spins: 0,
            idle_since: None,
            ceiling,
            slept: false,
        }
    }

    /// A backoff that yields from the first snooze, without spinning:
    /// for a thread that waits for another process on oversubscribed cores
    /// (a spin of `SPINS` pauses lasts microseconds, which the process it
    /// waits for may need).
    pub(crate) fn yielding(ceiling: Duration) -> Self {
        Backoff {
            spins: SPINS,
            ..Backoff::new(ceiling)
        }
    }

    /// Changes the longest sleep (e.g. shorter while work is in flight).
    pub(crate) fn set_ceiling(&mut self, ceiling: Duration) {
        self.ceiling = ceiling;
    }

    /// The loop did some work: the next wait starts with spinning again.
    pub(crate) fn reset(&mut self) {
        self.spins = 0;
        self.idle_since = None;
        self.slept = false;
    }

    /// True when the last [`snooze`](Backoff::snooze) slept (rather than
    /// spun or yielded): the loop has been away long enough that its first
    /// poll should be thorough.
    pub(crate) fn slept(&self) -> bool {
        self.slept
    }

    /// The loop found nothing to do: wait a little, longer each time.
    pub(crate) fn snooze(&mut self) {
        self.slept = false;
        // In a loom model time does not pass: a wait is a yield.
        if cfg!(loom) {
            crate::sync::thread::yield_now();
            return;
        }
        if self.spins < SPINS {
            self.spins += 1;
            std::hint::spin_loop();
            return;
        }
        let idle = self.idle_since.get_or_insert_with(Instant::now).elapsed();
        if idle < YIELD_FOR {
            YIELDS.fetch_add(1, Ordering::Relaxed);
            thread::yield_now();
            return;
        }
        self.sleep(idle);
    }

    /// The loop found nothing to do and another thread polls for what is
    /// urgent meanwhile: sleep as [`snooze`](Backoff::snooze) would at
    /// this point of the idle spell, without spinning or yielding first
    /// (each yield on an oversubscribed core hands it back and forth with
    /// the thread at work).
    pub(crate) fn doze(&mut self) {
        self.slept = false;
        if cfg!(loom) {
            crate::sync::thread::yield_now();
            return;
        }
        let idle = self.idle_since.get_or_insert_with(Instant::now).elapsed();
        self.sleep(idle);
    }

    /// Sleeps a share of `idle`, within the bounds.
    fn sleep(&mut self, idle: Duration) {
        thread::park_timeout((idle / SLEEP_DIVISOR).clamp(MIN_SLEEP, self.ceiling.max(MIN_SLEEP)));
        self.slept = true;
    }

    /// The loop found nothing to do and must not take the core meanwhile:
    /// sleep `nap` at once (cut short by `Thread::unpark`).
    pub(crate) fn nap(&mut self, nap: Duration) {
        if cfg!(loom) {
            crate::sync::thread::yield_now();
            return;
        }
        self.idle_since.get_or_insert_with(Instant::now);
        thread::park_timeout(nap);
        self.slept = true;
    }

    /// True once the loop has been idle long enough to sleep.
    #[cfg(test)]
    pub(crate) fn is_sleeping(&self) -> bool {
        self.idle_since
            .is_some_and(|since| since.elapsed() >= YIELD_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_loop_ends_up_sleeping_and_reset_wakes_it() {
        let mut backoff = Backoff::new(Duration::from_millis(1));
        let start = Instant::now();
        while !backoff.is_sleeping() {
            backoff.snooze();
            assert!(start.elapsed() < Duration::from_secs(5));
        }
        // A sleeping backoff waits about its ceiling per snooze, not forever.
        for _ in 0..20 {
            backoff.snooze();
        }
        backoff.reset();
        assert!(!backoff.is_sleeping());
    }

    #[test]
    fn a_doze_sleeps_at_once() {
        let mut backoff = Backoff::new(Duration::from_millis(1));
        let start = Instant::now();
        for _ in 0..4 {
            backoff.doze();
            assert!(backoff.slept());
        }
        // Spinning or yielding would return within microseconds; a sleep
        // may end early only now and then (`park_timeout`).
        assert!(start.elapsed() >= MIN_SLEEP, "{:?}", start.elapsed());
    }
}
