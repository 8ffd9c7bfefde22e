//! Polling loops that other threads may run a pass of: the owner thread of
//! a rank's MPI state, and the threads that help it.
//!
//! Rank 0's controller and each engine's MPI thread own their rank's MPI
//! state and poll it in a loop, one pass at a time. When MPI granted
//! `MPI_THREAD_SERIALIZED`, a thread that is about to wait for that loop (a
//! client thread waiting for a reply, an engine's execution thread waiting
//! for work) makes the passes itself instead, under the same lock: a
//! request and its reply then cross no thread hand-off, which on an
//! oversubscribed node is a context switch each (bench `w1`). While a
//! thread helps, the owner naps; a helper that gives up wakes it. An owner
//! that dozes ([`Step::Doze`]) and wakes to find that another thread has
//! made a pass meanwhile dozes on without one (see [`LoopShare::run`]). Under
//! the same lock a thread may also run a step of its own on the loop's
//! state ([`Published::try_with`]: a task starting its MPI operation on
//! its team's communicator, `taskcomm`). This module owns that
//! arrangement, and counts the passes helpers make ([`helped_passes`],
//! which the test programs read); what a pass does is the loops' own.
//!
//! A rank has one such loop (rank 0 the controller's, an engine its MPI
//! thread's). The threads that wait for it call this module's [`help`],
//! [`helping`] and [`hand_back`], which act on the loop the rank published
//! ([`Published::open`]), whatever its type: the client side never names
//! the controller, nor an engine's execution thread its MPI thread.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, TryLockError};
use std::time::Duration;

use crate::backoff::Backoff;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::thread::{self, Thread};
use crate::sync::Mutex;

/// What one pass of a loop found.
pub(crate) enum Step {
    /// It did something: poll again at once.
    Busy,
    /// Nothing to do: sleep at most this long.
    Idle(Duration),
    /// Nothing to do, and other threads make the passes that are urgent
    /// (an engine's execution thread running tasks when it has replies or
    /// runs out of work, a client waiting for a result): sleep a share of
    /// the idle time at once, at most this long, without the spinning and
    /// yielding that come first after [`Step::Idle`].
    Doze(Duration),
    /// Nothing to do, and a thread of this process needs the core (a task
    /// in a collective with its peers): sleep this long at once, without
    /// the spinning and yielding that come first after [`Step::Idle`].
    Nap(Duration),
    /// The loop is over.
    Ended,
}

/// Which thread makes a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The owner, which polls for everything; `slept` when it has just
    /// slept (its first probe should be thorough).
    Owner { slept: bool },
    /// A thread waiting for what a message brings: the pass returns once
    /// it has received one, so that the thread looks for it at once. A last
    /// probe that finds nothing would come first otherwise, and Open MPI
    /// yields the core in it when oversubscribed (bench `w1`).
    Helper,
}

impl Caller {
    /// The first probe of the pass should be thorough.
    pub(crate) fn slept(self) -> bool {
        self == Caller::Owner { slept: true }
    }
}

/// A loop's state, one pass at a time.
pub(crate) trait Loop: Send {
    /// One pass, made by `caller`.
    fn pass(&mut self, caller: Caller) -> Step;
    /// A pass has ended the loop.
    fn ended(&self) -> bool;
    /// What the owner does when another thread holds the state (a helper's
    /// pass, or a task's operation under the lock): back off as when idle,
    /// unless the loop says otherwise.
    fn contended() -> Step
    where
        Self: Sized,
    {
        Step::Idle(Duration::from_millis(1))
    }
}

/// How long the owner naps while a helper polls (it is woken early when a
/// helper gives up).
const NAP: Duration = Duration::from_micros(500);

/// Passes made by helpers in this process, of any loop.
static HELPED: AtomicU64 = AtomicU64::new(0);

/// How many passes threads other than their loop's owner have made in this
/// process so far: always 0 when only the MPI thread may call MPI
/// (`MPI_THREAD_FUNNELED`, or `RANKVIEW_FUNNELED`). For the test programs,
/// which check that the threading mode is the one asked for.
pub fn helped_passes() -> u64 {
    HELPED.load(Ordering::Relaxed)
}

/// A loop's state shared by its owner thread and its helpers.
pub(crate) struct LoopShare<L> {
    state: Mutex<Option<L>>,
    gate: Gate,
}

/// Who is polling a loop: the part of [`LoopShare`] that does not depend
/// on the loop's type, which a [`Helping`] guard holds.
struct Gate {
    /// Threads now helping (see [`LoopShare::helping`]).
    helping: AtomicUsize,
    /// A helper gave up: the owner polls eagerly again.
    handed_back: AtomicBool,
    /// Passes helpers have made of this loop (see [`LoopShare::run`]).
    passes: AtomicUsize,
    owner: OnceLock<Thread>,
    /// Helpers are allowed (MPI granted `MPI_THREAD_SERIALIZED`).
    open: AtomicBool,
    /// Says whose loop panicked, for the abort message.
    who: String,
}

/// Where a loop's [`LoopShare`] is published for the threads that may
/// help it: a `static`, one per kind of loop (the controller's, an
/// engine's).
pub(crate) struct Published<L>(OnceLock<Arc<LoopShare<L>>>);

/// A published loop, whatever its type: what [`help`], [`helping`] and
/// [`hand_back`] reach.
trait RankLoop: Sync {
    fn help(&self) -> bool;
    fn helping(&'static self) -> Option<Helping<'static>>;
    fn hand_back(&self);
}

/// The rank's published loop (at most one per process).
static RANK_LOOP: OnceLock<&'static dyn RankLoop> = OnceLock::new();

impl<L: Loop> Published<L> {
    pub(crate) const fn new() -> Published<L> {
        Published(OnceLock::new())
    }

    /// Publishes `shared` as the rank's loop and lets helpers in, when MPI
    /// lets other threads call it (`serialized`) and nothing was published
    /// before.
    pub(crate) fn open(&'static self, shared: &Arc<LoopShare<L>>, serialized: bool) {
        if serialized && self.0.set(shared.clone()).is_ok() && RANK_LOOP.set(self).is_ok() {
            shared.open();
        }
    }

    /// Runs `f` on the published loop's state on the calling thread, when
    /// MPI lets any thread call it and no other thread is making a pass
    /// (as [`help`] does, with `f` instead of a pass); `None` otherwise. A
    /// panic in `f` is an internal failure: the job is aborted.
    pub(crate) fn try_with<R>(&self, f: impl FnOnce(&mut L) -> R) -> Option<R> {
        self.0.get()?.guarded(f)
    }
}

impl<L: Loop> RankLoop for Published<L> {
    fn help(&self) -> bool {
        self.0.get().is_some_and(|shared| shared.help())
    }

    fn helping(&'static self) -> Option<Helping<'static>> {
        self.0.get()?.helping()
    }

    fn hand_back(&self) {
        if let Some(shared) = self.0.get() {
            shared.gate.hand_back();
        }
    }
}

/// [`LoopShare::help`] on the rank's published loop: makes one pass of it on
/// the calling thread when MPI lets any thread call it and no other thread
/// is making one (a client thread that has just submitted, an engine's
/// execution thread waiting for work). A request then leaves, and its reply
/// is taken, with no thread hand-off (bench `w1`). True if the pass did
/// something; false when there is no published loop.
pub(crate) fn help() -> bool {
    RANK_LOOP.get().is_some_and(|l| l.help())
}

/// [`LoopShare::helping`] on the rank's published loop: marks the calling
/// thread as polling while it waits (the owner naps meanwhile).
pub(crate) fn helping() -> Option<Helping<'static>> {
    RANK_LOOP.get()?.helping()
}

/// Wakes the owner of the rank's published loop to poll eagerly: the caller
/// is about to wait for something only the owner's passes bring.
pub(crate) fn hand_back() {
    if let Some(l) = RANK_LOOP.get() {
        l.hand_back();
    }
}

impl<L: Loop> LoopShare<L> {
    /// The shared state of a loop; helpers may join once [`open`](LoopShare::open).
    pub(crate) fn new(state: L, who: String) -> LoopShare<L> {
        LoopShare {
            state: Mutex::new(Some(state)),
            gate: Gate {
                helping: AtomicUsize::new(0),
                handed_back: AtomicBool::new(false),
                passes: AtomicUsize::new(0),
                owner: OnceLock::new(),
                open: AtomicBool::new(false),
                who,
            },
        }
    }

    /// Lets other threads help, and names the calling thread the owner.
    pub(crate) fn open(&self) {
        let _ = self.gate.owner.set(thread::current());
        self.gate.open.store(true, Ordering::Release);
    }

    /// Makes one pass on the calling thread if helping is allowed and no
    /// other thread is making one; true if it did something. A panic in the
    /// pass is an internal failure: the job is aborted.
    pub(crate) fn help(&self) -> bool {
        self.guarded(|state| {
            self.gate.passes.fetch_add(1, Ordering::Relaxed);
            matches!(state.pass(Caller::Helper), Step::Busy)
        })
        .unwrap_or(false)
    }

    /// Runs `f` on the state on the calling thread if helping is allowed,
    /// no other thread is making a pass and the loop has not ended.
    fn guarded<R>(&self, f: impl FnOnce(&mut L) -> R) -> Option<R> {
        if !self.gate.open.load(Ordering::Acquire) {
            return None;
        }
        let Ok(mut guard) = self.state.try_lock() else {
            return None;
        };
        let state = guard.as_mut()?;
        if state.ended() {
            return None;
        }
        HELPED.fetch_add(1, Ordering::Relaxed);
        match panic::catch_unwind(AssertUnwindSafe(|| f(state))) {
            Ok(r) => Some(r),
            Err(payload) => {
                let _ = std::io::Write::flush(&mut std::io::stdout());
                // On the rank's real stderr: an engine's descriptors may be
                // capturing a task's output.
                crate::capture::report(&format!(
                    "rankview: internal error: {} panicked on a helping thread ({}); aborting the job",
                    self.gate.who,
                    crate::error::panic_message(payload.as_ref())
                ));
                crate::transport::abort_job(1)
            }
        }
    }

    /// Marks the calling thread as helping (the owner naps) until the guard
    /// is finished or dropped; `None` when helping is not allowed.
    pub(crate) fn helping(&self) -> Option<Helping<'_>> {
        if !self.gate.open.load(Ordering::Acquire) {
            return None;
        }
        self.gate.helping.fetch_add(1, Ordering::AcqRel);
        Some(Helping(&self.gate))
    }

    /// The owner's loop: passes until one ends it, napping while helpers
    /// poll and backing off when idle.
    pub(crate) fn run(&self, ceiling: Duration) {
        let mut backoff = Backoff::new(ceiling);
        // Helpers' passes counted when the owner last dozed.
        let mut dozed_at = None;
        loop {
            // The backoff goes on where it was: a helper that got what it
            // waited for leaves nothing urgent behind (one that gives up
            // hands back, which resets it), and an owner that came back to
            // spinning and yielding after every nap would take the core
            // from the very thread that helps (bench `w12`).
            if self.gate.helping.load(Ordering::Acquire) > 0 {
                thread::park_timeout(NAP);
                continue;
            }
            if self.gate.handed_back.swap(false, Ordering::AcqRel) {
                backoff.reset();
                dozed_at = None;
            }
            // A helper has made a pass since the owner dozed off: the thread
            // that makes the urgent passes is at it, so the owner dozes on
            // without a pass of its own, for a growing share of the spell
            // (at most the doze's ceiling). Its own pass would take the
            // messages the helper takes anyway, at the price of a wake-up
            // on a core a task needs (bench `metg`: through 100 µs tasks an
            // engine's MPI thread used 2.5 µs of CPU a task, about 1 µs
            // without those passes). Once the helper stops (a long task, a
            // client busy elsewhere), the owner's next wake finds no new
            // pass and polls; a helper that gives up hands back at once.
            let passes = self.gate.passes.load(Ordering::Relaxed);
            if dozed_at.is_some_and(|seen| seen != passes) {
                dozed_at = Some(passes);
                backoff.doze();
                continue;
            }
            dozed_at = None;
            let step = match self.state.try_lock() {
                Ok(mut guard) => match guard.as_mut() {
                    Some(state) if !state.ended() => state.pass(Caller::Owner {
                        slept: backoff.slept(),
                    }),
                    _ => Step::Ended,
                },
                // A helper is making a pass (or panicked in one and is
                // aborting the job): stay out of its way.
                Err(TryLockError::WouldBlock) | Err(TryLockError::Poisoned(_)) => L::contended(),
            };
            match step {
                Step::Busy => backoff.reset(),
                Step::Idle(ceiling) => {
                    backoff.set_ceiling(ceiling);
                    backoff.snooze();
                }
                Step::Doze(ceiling) => {
                    backoff.set_ceiling(ceiling);
                    dozed_at = Some(passes);
                    backoff.doze();
                }
                Step::Nap(nap) => backoff.nap(nap),
                Step::Ended => return,
            }
        }
    }

    /// Takes the state back once the loop has ended (no helper can reach it
    /// after this).
    pub(crate) fn take(&self) -> Option<L> {
        self.gate.open.store(false, Ordering::Release);
        self.state.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Gate {
    /// Wakes the owner to poll eagerly (a helper gave up, or left work that
    /// needs polling behind).
    fn hand_back(&self) {
        self.handed_back.store(true, Ordering::Release);
        if let Some(owner) = self.owner.get() {
            owner.unpark();
        }
    }
}

/// A thread helping a loop (see [`LoopShare::helping`]).
pub(crate) struct Helping<'s>(&'s Gate);

impl Helping<'_> {
    /// The helper got what it waited for: it stops without waking the owner
    /// (which naps briefly and comes back by itself), so a quick exchange
    /// involves no other thread.
    pub(crate) fn finish(self) {
        self.0.helping.fetch_sub(1, Ordering::AcqRel);
        std::mem::forget(self);
    }
}

impl Drop for Helping<'_> {
    /// A helper giving up hands polling back to the owner at once.
    fn drop(&mut self) {
        self.0.helping.fetch_sub(1, Ordering::AcqRel);
        self.0.hand_back();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread::ThreadId;
    use std::time::Instant;

    use super::*;

    /// Records which thread made each pass, and as what; ends after
    /// `limit` passes.
    struct Counting {
        passes: Vec<(ThreadId, Caller)>,
        limit: usize,
    }

    impl Loop for Counting {
        fn pass(&mut self, caller: Caller) -> Step {
            self.passes.push((std::thread::current().id(), caller));
            if self.passes.len() >= self.limit {
                Step::Ended
            } else {
                Step::Idle(Duration::from_micros(100))
            }
        }
        fn ended(&self) -> bool {
            self.passes.len() >= self.limit
        }
    }

    fn counting(limit: usize) -> Arc<LoopShare<Counting>> {
        Arc::new(LoopShare::new(
            Counting {
                passes: Vec::new(),
                limit,
            },
            "test loop".into(),
        ))
    }

    #[test]
    fn nobody_helps_a_closed_loop() {
        let shared = counting(10);
        assert!(!shared.help());
        assert!(shared.helping().is_none());
        assert_eq!(shared.take().map(|c| c.passes.len()), Some(0));
    }

    #[test]
    fn the_owner_naps_while_a_thread_helps_and_ends_the_loop_after() {
        let shared = counting(2000);
        let owner = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                shared.open();
                shared.run(Duration::from_millis(1));
                std::thread::current().id()
            })
        };
        while !shared.gate.open.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let me = std::thread::current().id();
        // Helping: the owner stays out (after at most one pass it had begun).
        let helping = shared.helping();
        std::thread::sleep(Duration::from_millis(5));
        let before = shared.state.lock().unwrap().as_ref().unwrap().passes.len();
        for _ in 0..50 {
            shared.help();
        }
        std::thread::sleep(Duration::from_millis(20));
        let during = shared.state.lock().unwrap().as_ref().unwrap().passes[before..].to_vec();
        assert_eq!(during.len(), 50);
        assert!(
            during.iter().all(|&pass| pass == (me, Caller::Helper)),
            "the owner polled while a thread helped, or a helper's pass was not marked so"
        );
        // Giving up hands polling back: the owner runs the loop to its end.
        drop(helping);
        let owner_id = owner.join().unwrap();
        let passes = shared.take().unwrap().passes;
        assert_eq!(passes.len(), 2000);
        assert!(passes[before + 50..]
            .iter()
            .all(|&(id, caller)| id == owner_id && matches!(caller, Caller::Owner { .. })));
        assert!(!shared.help(), "a taken loop cannot be helped");
    }

    /// Each helper's pass leaves a message behind, which the owner's pass
    /// takes; with none, the owner's pass dozes.
    struct Dozing {
        owner: usize,
        unclaimed: usize,
        end: bool,
    }

    impl Loop for Dozing {
        fn pass(&mut self, caller: Caller) -> Step {
            if self.end {
                return Step::Ended;
            }
            if caller == Caller::Helper {
                self.unclaimed += 1;
                return Step::Busy;
            }
            self.owner += 1;
            if std::mem::take(&mut self.unclaimed) > 0 {
                Step::Busy
            } else {
                Step::Doze(Duration::from_millis(5))
            }
        }
        fn ended(&self) -> bool {
            self.end
        }
    }

    #[test]
    fn a_dozing_owner_makes_no_pass_while_a_thread_passes_and_polls_once_it_stops() {
        let shared = Arc::new(LoopShare::new(
            Dozing {
                owner: 0,
                unclaimed: 0,
                end: false,
            },
            "test loop".into(),
        ));
        let owner = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                shared.open();
                shared.run(Duration::from_millis(5));
            })
        };
        let owner_passes = || shared.state.lock().unwrap().as_ref().unwrap().owner;
        while owner_passes() == 0 {
            std::thread::yield_now();
        }
        // A thread passes without marking itself as helping (an execution
        // thread reporting between tasks): the owner leaves the passes to
        // it rather than wake every few microseconds to take its messages.
        let before = owner_passes();
        let start = Instant::now();
        let mut helped = 0;
        while start.elapsed() < Duration::from_millis(100) {
            if shared.help() {
                helped += 1;
            }
            std::thread::yield_now();
        }
        let during = owner_passes() - before;
        assert!(helped > 100, "only {helped} passes helped");
        assert!(
            during <= 10,
            "the owner made {during} passes while a thread made {helped}"
        );
        // The passes stop: the owner's next wake polls and takes what is left.
        let stopped = Instant::now();
        while shared.state.lock().unwrap().as_ref().unwrap().unclaimed > 0 {
            assert!(
                stopped.elapsed() < Duration::from_secs(5),
                "the owner never polled after the passes stopped"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        shared.state.lock().unwrap().as_mut().unwrap().end = true;
        owner.join().unwrap();
    }
}

/// Loom models of the owner/helper hand-off (`ci/test-loom.sh`). Under loom
/// the owner's nap lasts until it is unparked (`sync::thread::park_timeout`),
/// so a helper that gives up without waking it deadlocks the model.
#[cfg(all(test, loom))]
mod loom_tests {
    use std::sync::Arc;

    use loom::cell::UnsafeCell;

    use super::*;

    /// A loop of `limit` passes; each pass touches `shadow`, which loom
    /// watches: two passes not ordered by the hand-off fail the model.
    struct Passes {
        shadow: UnsafeCell<()>,
        owner: usize,
        helper: usize,
        limit: usize,
    }

    impl Loop for Passes {
        fn pass(&mut self, caller: Caller) -> Step {
            self.shadow.with_mut(|_| ());
            match caller {
                Caller::Owner { .. } => self.owner += 1,
                Caller::Helper => self.helper += 1,
            }
            if self.ended() {
                Step::Ended
            } else {
                Step::Idle(Duration::from_millis(1))
            }
        }
        fn ended(&self) -> bool {
            self.owner + self.helper >= self.limit
        }
    }

    fn passes(limit: usize) -> Arc<LoopShare<Passes>> {
        Arc::new(LoopShare::new(
            Passes {
                shadow: UnsafeCell::new(()),
                owner: 0,
                helper: 0,
                limit,
            },
            "loom loop".into(),
        ))
    }

    fn owner(shared: &Arc<LoopShare<Passes>>) -> loom::thread::JoinHandle<()> {
        let shared = shared.clone();
        loom::thread::spawn(move || {
            shared.open();
            shared.run(Duration::from_millis(1));
        })
    }

    #[test]
    fn loom_a_helper_and_the_owner_never_pass_at_once_and_the_loop_ends() {
        loom::model(|| {
            let shared = passes(3);
            let owner = owner(&shared);
            let helper = {
                let shared = shared.clone();
                loom::thread::spawn(move || {
                    let helping = shared.helping();
                    let helped = shared.help();
                    drop(helping);
                    helped
                })
            };
            helper.join().expect("the helper panicked");
            owner.join().expect("the owner panicked");
            let loop_ = shared.take().expect("the loop's state is gone");
            assert_eq!(loop_.owner + loop_.helper, 3, "passes made past the end");
            assert!(!shared.help(), "a taken loop was helped");
        });
    }

    #[test]
    fn loom_a_helper_that_gives_up_wakes_the_napping_owner() {
        loom::model(|| {
            let shared = passes(2);
            let owner = owner(&shared);
            // Registers as soon as the owner opens the loop, so that the
            // owner naps; then makes one pass and gives up.
            let helping = loop {
                match shared.helping() {
                    Some(helping) => break helping,
                    None => loom::thread::yield_now(),
                }
            };
            shared.help();
            drop(helping);
            // The owner must wake to make what is left: a lost wake-up
            // leaves it parked and the model deadlocked.
            owner.join().expect("the owner panicked");
            let loop_ = shared.take().expect("the loop's state is gone");
            assert_eq!(loop_.owner + loop_.helper, 2);
        });
    }
}
