//! The state a submission's handles share with the controller: one
//! [`Part`] per engine (its outcome, a [`Payload`] or an error, and its
//! [`Metadata`]), filled by the controller thread as replies arrive.
//!
//! [`ResultState`] is what the contract's commands carry to the controller
//! (`contract.rs`); the user's handle on it, and decoding payloads into the
//! user's types, is [`AsyncResult`](crate::AsyncResult)'s (`result.rs`).
//! Internal completion hooks (those that make a joined result out of its
//! parts) run inline, on the thread that settles the last part: they are
//! short and never block; user callbacks go to the callback pool
//! (`callbacks.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant, SystemTime};

use super::callbacks::{run_callback, Callback};
use super::metadata::Metadata;
use crate::bulk::BulkVec;
use crate::error::{Error, Result};
use crate::protocol::{Done, Each, Outcome, TaskId, Typed, ValueSpec};
use crate::timeline::JobLog;

/// An internal completion hook, given the state that finished.
pub(super) type Hook = Box<dyn FnOnce(&ResultState) + Send>;

/// What one engine returned for one task, before decoding.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    Value(Vec<u8>),
    Values(Vec<Typed>),
    Keys(Vec<String>),
    Many(Vec<Vec<u8>>),
    /// The outcomes of a load-balanced `map` task, item by item.
    Each(Each),
    /// The assembled data of a gather or reduce (on the first part only).
    /// Read by borrowing: each `get` assembles the user's container anew.
    Gathered(Gathered),
    /// A gathered payload handed to the only handle's
    /// [`AsyncResult::into_value`], which may move the data out (leaving
    /// [`Payload::Taken`]) instead of copying it.
    Movable(Gathered),
    /// A gathered payload moved out by `into_value`; no handle is left to
    /// see it.
    Taken,
    Unit,
}

impl Payload {
    /// The first failed item of a `map` chunk, as an error (with the item's
    /// index within the chunk).
    pub(crate) fn item_failure(&self, engine: usize, task: TaskId) -> Option<Error> {
        let Payload::Each(each) = self else {
            return None;
        };
        each.failed.first().map(|(index, f)| Error::MapItem {
            index: usize::try_from(*index).unwrap_or(usize::MAX),
            error: Box::new(f.clone().into_error(engine, task)),
        })
    }
}

/// Data a gather or reduce brought to rank 0, in target order.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Gathered {
    /// Every engine's contribution, back to back.
    pub(crate) data: BulkVec,
    /// The type of a pulled value (`None` for a gather or reduce, whose
    /// type the controller checked already).
    pub(crate) value: Option<ValueSpec>,
    /// Per engine, in target order: elements (or bytes) and shape.
    pub(crate) parts: Vec<(usize, Vec<usize>)>,
}

/// One engine's share of a submission.
#[derive(Debug)]
pub(crate) struct Part {
    pub(super) outcome: Option<Result<Payload>>,
    pub(super) meta: Metadata,
}

/// What the lock of a [`ResultState`] guards.
pub(super) struct Inner {
    pub(super) parts: Vec<Part>,
    /// A group task's members, after its leader (the one part): their
    /// timing and output (empty for everything else).
    pub(super) members: Box<[Metadata]>,
    pub(super) wakers: Vec<Waker>,
    /// Internal, run inline when the last part settles.
    hooks: Vec<Hook>,
    /// The user's, run on the callback pool.
    pub(super) callbacks: Vec<Callback>,
}

/// The state shared by a submission's handles and the controller.
pub(crate) struct ResultState {
    inner: Mutex<Inner>,
    done: Condvar,
    pub(super) remaining: AtomicUsize,
    pub(super) sleepers: AtomicUsize,
    /// The job's record of finished parts (`Client::timeline`); `None` for
    /// results made of other results, whose parts are recorded already.
    log: Option<Arc<JobLog>>,
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

pub(super) fn micros_to_time(us: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(us)
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

/// The metadata of a group task's member `engine`, from its end (its
/// function and submission time are the leader's part's).
fn member_metadata(task: TaskId, engine: usize, done: Done) -> Metadata {
    Metadata {
        engine,
        stolen: done.hops > 0,
        task,
        function: "",
        submitted: micros_to_time(done.started_us),
        started: Some(micros_to_time(done.started_us)),
        completed: Some(micros_to_time(done.completed_us)),
        received: Some(SystemTime::now()),
        stdout: done.stdout,
        stderr: done.stderr,
    }
}

impl ResultState {
    /// A state waiting for one reply per engine in `engines` for a task
    /// running `function`; each part is added to `log` when it settles.
    pub(crate) fn new(
        task: TaskId,
        engines: &[usize],
        function: &'static str,
        log: Option<&Arc<JobLog>>,
    ) -> Arc<ResultState> {
        let submitted = SystemTime::now();
        let parts = engines
            .iter()
            .map(|&engine| Part {
                outcome: None,
                meta: Metadata {
                    engine,
                    stolen: false,
                    task,
                    function,
                    submitted,
                    started: None,
                    completed: None,
                    received: None,
                    stdout: String::new(),
                    stderr: String::new(),
                },
            })
            .collect();
        Arc::new(ResultState {
            inner: Mutex::new(Inner {
                parts,
                members: Box::default(),
                wakers: Vec::new(),
                hooks: Vec::new(),
                callbacks: Vec::new(),
            }),
            done: Condvar::new(),
            remaining: AtomicUsize::new(engines.len()),
            sleepers: AtomicUsize::new(0),
            log: log.cloned(),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a callback panicked elsewhere; the data
        // is still consistent (every write is a single assignment).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records engine `index`'s reply.
    pub(crate) fn complete(&self, index: usize, done: Done, engine: usize) {
        self.record(index, done, engine, None, None);
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
        self.record(index, done, engine, None, Some(data));
    }

    /// Records the final reply of a load-balanced task (one part), with
    /// where it ran.
    pub(crate) fn complete_task(&self, done: Done, engine: usize, stolen: bool) {
        self.record(0, done, engine, Some(stolen), None);
    }

    fn record(
        &self,
        index: usize,
        done: Done,
        engine: usize,
        stolen: Option<bool>,
        data: Option<Gathered>,
    ) {
        let task = done.task;
        let (outcome, members) = match done.outcome {
            Outcome::Group(group) => {
                let members = group
                    .members
                    .into_iter()
                    .map(|(member, done)| member_metadata(task, member as usize, done))
                    .collect();
                (group.outcome, members)
            }
            outcome => (outcome, Box::default()),
        };
        let outcome = payload(outcome, engine, task, data);
        let mut inner = self.lock();
        if !members.is_empty() {
            let (function, submitted) = inner.parts.first().map_or(("", SystemTime::now()), |p| {
                (p.meta.function, p.meta.submitted)
            });
            let mut members: Box<[Metadata]> = members;
            for m in members.iter_mut() {
                m.function = function;
                m.submitted = submitted;
            }
            inner.members = members;
        }
        if let Some(part) = inner.parts.get_mut(index) {
            if let Some(stolen) = stolen {
                part.meta.engine = engine;
                part.meta.stolen = stolen;
            }
            part.meta.started = Some(micros_to_time(done.started_us));
            part.meta.completed = Some(micros_to_time(done.completed_us));
            part.meta.stdout = done.stdout;
            part.meta.stderr = done.stderr;
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
        let Some(part) = inner.parts.get_mut(index) else {
            return;
        };
        if part.outcome.is_some() {
            return;
        }
        // A part adopted from another result keeps the time it was received.
        part.meta.received.get_or_insert_with(SystemTime::now);
        part.outcome = Some(outcome);
        if let Some(log) = &self.log {
            log.record(&part.meta);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let wakers = std::mem::take(&mut inner.wakers);
        let hooks = std::mem::take(&mut inner.hooks);
        let callbacks = std::mem::take(&mut inner.callbacks);
        drop(inner);
        if self.sleepers.load(Ordering::Acquire) > 0 {
            // Take the lock so a waiter between its check and its wait
            // cannot miss the notification.
            drop(self.lock());
            self.done.notify_all();
        }
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
            inner.hooks.push(f);
        }
    }

    /// Settles parts `offset..` with the finished `from`'s parts: their
    /// metadata, and their errors (values stay with `from`); a group
    /// task's members' metadata joins this result's members.
    pub(super) fn adopt(&self, offset: usize, from: &ResultState) {
        let (parts, members) = {
            let from = from.lock();
            let parts: Vec<(Metadata, Result<Payload>)> = from
                .parts
                .iter()
                .map(|p| {
                    let outcome = match &p.outcome {
                        Some(Err(e)) => Err(e.clone()),
                        Some(Ok(payload)) => match payload.item_failure(p.meta.engine, p.meta.task)
                        {
                            Some(e) => Err(e),
                            None => Ok(Payload::Unit),
                        },
                        None => Ok(Payload::Unit),
                    };
                    (p.meta.clone(), outcome)
                })
                .collect();
            (parts, from.members.clone())
        };
        if !members.is_empty() {
            let mut inner = self.lock();
            let mut all = std::mem::take(&mut inner.members).into_vec();
            all.extend(members.into_vec());
            inner.members = all.into_boxed_slice();
        }
        for (k, (meta, outcome)) in parts.into_iter().enumerate() {
            let mut inner = self.lock();
            if let Some(part) = inner.parts.get_mut(offset + k) {
                part.meta = meta;
            }
            self.settle(inner, offset + k, outcome);
        }
    }

    pub(super) fn is_done(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }

    /// Waits until done or until `deadline`; true when done.
    pub(super) fn wait_until(&self, deadline: Option<Instant>) -> bool {
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
