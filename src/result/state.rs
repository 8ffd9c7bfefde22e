//! The state a submission's handles share with the controller: one
//! [`Part`] per engine (its outcome, a [`Payload`] or an error, and its
//! metadata, `part.rs`), filled by the controller thread as replies
//! arrive, the handle count and the link to the controller (`control.rs`).
//!
//! [`ResultState`] is what the contract's commands carry to the controller
//! (`contract.rs`); the user's handle on it, and decoding payloads into the
//! user's types, is [`AsyncResult`](crate::AsyncResult)'s (`result.rs`).
//! Internal completion hooks (those that make a joined result out of its
//! parts) run inline, on the thread that settles the last part: they are
//! short and never block; user callbacks go to the callback pool
//! (`callbacks.rs`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant, SystemTime};

use super::callbacks::{run_callback, Callback};
use super::control::{Behind, Control, Forgotten, Link};
pub(crate) use super::part::{Gathered, Name, Payload};
use super::part::{Part, Parts, Slot, Stamp};
use crate::error::{Error, Result};
use crate::protocol::{Done, Outcome, TaskId};
use crate::timeline::job_log;

/// An internal completion hook, given the state that finished.
pub(super) type Hook = Box<dyn FnOnce(&ResultState) + Send>;

/// What waits for a result to finish: async tasks, internal hooks and the
/// user's callbacks (allocated only once something waits).
#[derive(Default)]
pub(super) struct Waiting {
    pub(super) wakers: Vec<Waker>,
    /// Internal, run inline when the last part settles.
    hooks: Vec<Hook>,
    /// The user's, run on the callback pool.
    pub(super) callbacks: Vec<Callback>,
}

/// What the lock of a [`ResultState`] guards.
pub(super) struct Inner {
    pub(super) parts: Parts,
    waiting: Option<Box<Waiting>>,
    /// The way to the controller, set once the result is tied to its work.
    pub(super) control: Option<Control>,
}

impl Inner {
    /// The load-balanced tasks behind the result (`None` for other work).
    pub(super) fn balanced(&self) -> Option<Vec<TaskId>> {
        match self.control.as_ref().map(|c| &c.work)? {
            Behind::Task => Some(self.parts.as_slice().iter().map(Part::task).collect()),
            Behind::Balanced(tasks) => Some(tasks.to_vec()),
            Behind::Direct | Behind::Collective => None,
        }
    }

    /// Takes the link to the controller, with the load-balanced tasks
    /// behind the result for it to forget (`None` for other work, or when
    /// the link was taken already).
    pub(super) fn take_forgotten(&mut self) -> Option<(Arc<dyn Link>, Forgotten)> {
        let Control { link, work } = self.control.take()?;
        let tasks = match work {
            Behind::Task => match self.parts.as_slice() {
                [part] => Forgotten::One(part.task()),
                parts => Forgotten::Many(parts.iter().map(Part::task).collect()),
            },
            Behind::Balanced(tasks) => Forgotten::Many(*tasks),
            Behind::Direct | Behind::Collective => return None,
        };
        Some((link, tasks))
    }

    /// What waits for the result, made when first needed.
    pub(super) fn waiting(&mut self) -> &mut Waiting {
        self.waiting.get_or_insert_with(Box::default)
    }
}

/// The state shared by a submission's handles and the controller.
///
/// ## Size
///
/// A program may hold a million finished results, so this is one
/// allocation for a load-balanced task: its one part inline, its metadata
/// compact (`part.rs`), its handle count and its link to the controller
/// inside, and nothing allocated for an empty reply.
pub(crate) struct ResultState {
    inner: Mutex<Inner>,
    done: Condvar,
    remaining: AtomicU32,
    pub(super) sleepers: AtomicU32,
    /// The user's handles on this state ([`AsyncResult`](crate::AsyncResult)
    /// and its clones, and results made from it by `map`/`and_then`), the
    /// controller's reference not included: when the last goes, the
    /// controller forgets the work behind it.
    pub(super) handles: AtomicU32,
}

/// An engine's reply to `task` that ran at once, wrote nothing and
/// returned `()`: what memory tests hold by the thousand.
#[cfg(test)]
pub(crate) fn empty_reply(task: TaskId) -> Done {
    Done {
        task,
        started_us: 1,
        completed_us: 2,
        stdout: String::new(),
        stderr: String::new(),
        hops: 0,
        outcome: Outcome::Value(Vec::new()),
    }
}

/// What a reply's outcome gives the user (`data`: the raw data an
/// [`Outcome::Bulk`] announced).
fn payload(
    outcome: Outcome,
    engine: usize,
    task: TaskId,
    data: Option<Gathered>,
) -> Result<Payload> {
    match outcome {
        Outcome::Value(v) => Ok(Payload::Value(v)),
        Outcome::Values(v) => Ok(Payload::Values(v)),
        Outcome::Keys(k) => Ok(Payload::Keys(k)),
        Outcome::Many(m) => Ok(Payload::Many(m)),
        Outcome::Each(items) => Ok(Payload::Each(items)),
        Outcome::Unit => Ok(Payload::Unit),
        Outcome::Failed(f) => Err(f.into_error(engine, task)),
        Outcome::Group(group) => payload(group.outcome, engine, task, data),
        Outcome::Bulk { .. } => data
            .map(Payload::Gathered)
            .ok_or_else(|| Error::Protocol(format!("the raw data of task {task} did not arrive"))),
    }
}

impl ResultState {
    /// A state waiting for one reply per engine in `engines` for a task
    /// running `function`; each part is added to the job's log when it
    /// settles if `logged`.
    pub(crate) fn new(
        task: TaskId,
        engines: &[usize],
        function: Name,
        logged: bool,
    ) -> Arc<ResultState> {
        let submitted = Stamp::nanos(SystemTime::now());
        let part = |&engine: &usize| Part::new(task, engine, function, submitted, logged);
        let parts = match engines {
            [one] => Parts::One(part(one)),
            _ => Parts::Many(engines.iter().map(part).collect()),
        };
        ResultState::of_parts(parts)
    }

    fn of_parts(parts: Parts) -> Arc<ResultState> {
        let count = parts.as_slice().len();
        Arc::new(ResultState {
            inner: Mutex::new(Inner {
                parts,
                waiting: None,
                control: None,
            }),
            done: Condvar::new(),
            remaining: AtomicU32::new(u32::try_from(count).unwrap_or(u32::MAX)),
            sleepers: AtomicU32::new(0),
            handles: AtomicU32::new(0),
        })
    }

    /// A state whose parts have the metadata of `from`'s parts, in order,
    /// and wait for their outcomes (see [`adopt`](ResultState::adopt)).
    pub(super) fn like(from: &[&ResultState]) -> Arc<ResultState> {
        let parts: Vec<Part> = from
            .iter()
            .flat_map(|r| {
                r.lock()
                    .parts
                    .as_slice()
                    .iter()
                    .map(Part::copy_meta)
                    .collect::<Vec<_>>()
            })
            .collect();
        ResultState::of_parts(Parts::new(parts))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a callback panicked elsewhere; the data
        // is still consistent (every write is a single assignment).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parts not settled yet.
    pub(super) fn remaining(&self) -> usize {
        self.remaining.load(Ordering::Acquire) as usize
    }

    /// Records engine `index`'s reply.
    pub(crate) fn complete(&self, index: usize, done: Done, engine: usize) {
        self.record(index, done, engine, None, None, SystemTime::now());
    }

    /// Records the reply of engine `index` whose raw data (announced by
    /// [`Outcome::Bulk`]) has been received as `data`.
    pub(crate) fn complete_with_data(
        &self,
        index: usize,
        done: Done,
        engine: usize,
        data: Gathered,
    ) {
        self.record(index, done, engine, None, Some(data), SystemTime::now());
    }

    /// Records the final reply of a load-balanced task (one part), with
    /// where it ran, `received` then (the replies of one message share
    /// the instant they arrived: one clock reading for them all).
    pub(crate) fn complete_task(
        &self,
        done: Done,
        engine: usize,
        stolen: bool,
        received: SystemTime,
    ) {
        self.record(0, done, engine, Some(stolen), None, received);
    }

    fn record(
        &self,
        index: usize,
        mut done: Done,
        engine: usize,
        stolen: Option<bool>,
        data: Option<Gathered>,
        received: SystemTime,
    ) {
        let task = done.task;
        let (outcome, members) = match std::mem::replace(&mut done.outcome, Outcome::Unit) {
            Outcome::Group(group) => (group.outcome, group.members),
            outcome => (outcome, Vec::new()),
        };
        let outcome = payload(outcome, engine, task, data);
        let mut inner = self.lock();
        if let Some(part) = inner.parts.as_mut_slice().get_mut(index) {
            part.record(&mut done, stolen.map(|s| (engine, s)));
            part.add_members(members);
            part.mark_received(|| received);
        }
        self.settle(inner, index, outcome);
    }

    /// Records a failure for engine `index` that never reached it.
    pub(crate) fn fail(&self, index: usize, error: Error) {
        self.resolve(index, Err(error));
    }

    /// Records an outcome produced on rank 0 (a collective's result).
    pub(crate) fn resolve(&self, index: usize, outcome: Result<Payload>) {
        let inner = self.lock();
        self.settle(inner, index, outcome);
    }

    fn settle(&self, mut inner: MutexGuard<'_, Inner>, index: usize, outcome: Result<Payload>) {
        let Some(part) = inner.parts.as_mut_slice().get_mut(index) else {
            return;
        };
        if !part.outcome.is_pending() {
            return;
        }
        // A part adopted from another result keeps the time it was received.
        part.mark_received(SystemTime::now);
        part.outcome = Slot::hold(outcome);
        if part.logged() {
            job_log().record(part.log_entry());
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let waiting = inner.waiting.take();
        drop(inner);
        if self.sleepers.load(Ordering::Acquire) > 0 {
            // Take the lock so a waiter between its check and its wait
            // cannot miss the notification.
            drop(self.lock());
            self.done.notify_all();
        }
        let Some(waiting) = waiting else {
            return;
        };
        let Waiting {
            wakers,
            hooks,
            callbacks,
        } = *waiting;
        for waker in wakers {
            waker.wake();
        }
        for hook in hooks {
            hook(self);
        }
        for callback in callbacks {
            run_callback(callback);
        }
    }

    /// Runs the internal hook `f` once every part is in: now if that is
    /// already so, else inline on the thread that settles the last part (so
    /// `f` must be short and must not block).
    pub(super) fn when_done(&self, f: Hook) {
        let mut inner = self.lock();
        if self.is_done() {
            drop(inner);
            f(self);
        } else {
            inner.waiting().hooks.push(f);
        }
    }

    /// Settles parts `offset..` with the finished `from`'s parts: their
    /// metadata, and their errors (values stay with `from`).
    pub(super) fn adopt(&self, offset: usize, from: &ResultState) {
        let parts: Vec<(Part, Result<Payload>)> = from
            .lock()
            .parts
            .as_slice()
            .iter()
            .map(|p| {
                let outcome = match (p.outcome.error(), p.outcome.rare_payload()) {
                    (Some(e), _) => Err(e.clone()),
                    (None, Some(payload)) => match payload.item_failure(p.engine(), p.task()) {
                        Some(e) => Err(e),
                        None => Ok(Payload::Unit),
                    },
                    (None, None) => Ok(Payload::Unit),
                };
                (p.copy_meta(), outcome)
            })
            .collect();
        for (k, (meta, outcome)) in parts.into_iter().enumerate() {
            let mut inner = self.lock();
            if let Some(part) = inner.parts.as_mut_slice().get_mut(offset + k) {
                *part = meta;
            }
            self.settle(inner, offset + k, outcome);
        }
    }

    pub(super) fn is_done(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }

    /// Waits until done or until `deadline`; true when done.
    pub(super) fn wait_until(&self, deadline: Option<Instant>) -> bool {
        // A result read after it arrived (the oldest of many in flight)
        // costs no clock reading.
        if self.is_done() {
            return true;
        }
        // Spin briefly: replies to short tasks arrive within microseconds.
        // Meanwhile take them off the wire from this thread, when MPI allows
        // (no hand-off through the controller thread).
        let spin_until = Instant::now() + Duration::from_micros(100);
        let helping = crate::helping::helping();
        while !self.is_done() {
            let now = Instant::now();
            if now >= spin_until || deadline.is_some_and(|d| now >= d) {
                break;
            }
            if !crate::helping::help() {
                std::thread::yield_now();
            }
        }
        if self.is_done() {
            if let Some(helping) = helping {
                helping.finish();
            }
            return true;
        }
        drop(helping);
        let mut inner = self.lock();
        self.sleepers.fetch_add(1, Ordering::AcqRel);
        while !self.is_done() {
            match deadline {
                None => {
                    inner = self.done.wait(inner).unwrap_or_else(|p| p.into_inner());
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    inner = self
                        .done
                        .wait_timeout(inner, deadline - now)
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            }
        }
        self.sleepers.fetch_sub(1, Ordering::AcqRel);
        drop(inner);
        self.is_done()
    }
}
