//! `AsyncResult`: the handle every submission returns.
//!
//! The controller thread fills a shared [`ResultState`] as replies arrive; the
//! [`AsyncResult`] owned by the user reads it: blocking (`get`, `wait`, with or
//! without timeout), polling (`ready`), as a `std::future::Future`, or through
//! `on_done` callbacks. Results are owned by their handles: once the handle
//! and the controller's reference are gone, so is the data. Decoding a reply
//! into the user's type happens in the handle, on the user's thread; it never
//! consumes the stored reply, so a result can be inspected and read any
//! number of times.
//!
//! ## Callbacks
//!
//! Internal completion hooks (those that make a joined result out of its
//! parts) run inline, on the thread that settles the last part: they are
//! short and never block. User callbacks (`on_done`) run on a pool of
//! threads: a callback may block (on another result's `get`, on a channel)
//! and may submit more work, and while it blocks the pool starts another
//! thread for the next callback, so callbacks never wait for each other.
//! Idle pool threads exit after a few seconds. When the client returns, the
//! job ends only once every callback queued or running has finished, and
//! the work those callbacks submitted has replied (within the same shutdown
//! grace as the client's own work).
//!
//! ## Dropping
//!
//! Dropping an unfinished `AsyncResult` does not cancel the task: it runs to
//! completion on its engines, and its reply is discarded when it arrives.
//! (Dropping an [`IMap`](crate::IMap) is the exception: it aborts what it
//! submitted and has not started, since nothing can read those results.)
//! A load-balanced view made with `after`/`follow` keeps its dependencies
//! (and, for a map, every task of it) known to the controller for as long
//! as the view lives, whatever happens to their handles.

mod callbacks;
mod control;
pub(crate) mod metadata;
mod part;
pub(crate) mod state;

pub(crate) use callbacks::callbacks_pending;
pub(crate) use control::{Behind, Control, Forgotten, Link};
pub use metadata::Metadata;
pub(crate) use state::{Gathered, Name, Payload, ResultState};

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};
use crate::protocol::TaskId;
use crate::timeline::Timeline;
use callbacks::Callback;

/// Turns the parts of a finished submission into the user's value, put in
/// the `Option<Result<T>>` given as `&mut dyn Any` (so that the type names
/// no `T`, and a closure capturing nothing can be kept as a `'static`
/// reference). It reads the payloads without consuming them, except a
/// [`Payload::Movable`], which it may move out (leaving [`Payload::Taken`]).
type Finish = dyn Fn(&mut [(usize, Result<Payload>)], &mut dyn Any) + Send + Sync;

/// A result's [`Finish`]: a closure that captures nothing (what most
/// submissions have) costs no allocation.
#[derive(Clone)]
enum FinishRef {
    Static(&'static Finish),
    Shared(Arc<Finish>),
}

impl FinishRef {
    fn new<T: 'static>(
        f: impl Fn(&mut [(usize, Result<Payload>)]) -> Result<T> + Send + Sync + 'static,
    ) -> FinishRef {
        let erased = move |outcomes: &mut [(usize, Result<Payload>)], out: &mut dyn Any| {
            if let Some(out) = out.downcast_mut::<Option<Result<T>>>() {
                *out = Some(f(outcomes));
            }
        };
        if std::mem::size_of_val(&erased) == 0 {
            // A zero-sized value: the box allocates nothing, so leaking it
            // leaks nothing.
            FinishRef::Static(Box::leak(Box::new(erased)))
        } else {
            FinishRef::Shared(Arc::new(erased))
        }
    }

    fn run<T: 'static>(&self, outcomes: &mut [(usize, Result<Payload>)]) -> Result<T> {
        let mut out: Option<Result<T>> = None;
        match self {
            FinishRef::Static(f) => f(outcomes, &mut out),
            FinishRef::Shared(f) => f(outcomes, &mut out),
        }
        out.unwrap_or_else(|| Err(Error::Protocol("a result decoded as another type".into())))
    }
}

/// The result of a submission: a value to come from one or several engines.
///
/// Like ipyparallel's `AsyncResult` (and a Rust `Future`): block with
/// [`get`](AsyncResult::get) or [`get_timeout`](AsyncResult::get_timeout),
/// poll with [`ready`](AsyncResult::ready), `.await` it from an async runtime
/// (the wait does not block the runtime's threads), or register
/// [`on_done`](AsyncResult::on_done) callbacks. `get` may be called any number
/// of times; each call decodes the stored reply again (a gathered container
/// is assembled again: one copy of the data per call), and inspecting a
/// result (`ready`, `successful`, `metadata`) never consumes it.
/// [`into_value`](AsyncResult::into_value) reads it once, without that copy.
/// See the module docs for what dropping an unfinished result does.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
///
/// #[rankview::remote]
/// fn wait(seconds: f64) -> f64 {
///     std::thread::sleep(Duration::from_secs_f64(seconds));
///     seconds
/// }
///
/// rankview::launch(|rc| -> rankview::Result<()> {
///     let ar = rc.engine(0)?.apply(wait, (2.0,));
///     assert!(matches!(ar.get_timeout(Duration::from_secs(1)), Err(rankview::Error::Timeout(_))));
///     assert_eq!(ar.get()?, 2.0);
///     Ok(())
/// });
/// ```
pub struct AsyncResult<T> {
    /// Counts this handle (`ResultState::handles`).
    state: Arc<ResultState>,
    finish: FinishRef,
    value: PhantomData<fn() -> T>,
}

impl<T> AsyncResult<T> {
    /// A new handle on `state`.
    fn attach(state: Arc<ResultState>, finish: FinishRef) -> Self {
        state.handles.fetch_add(1, Ordering::Relaxed);
        AsyncResult {
            state,
            finish,
            value: PhantomData,
        }
    }
}

impl<T> Drop for AsyncResult<T> {
    /// The last handle lets the controller forget the load-balanced tasks
    /// behind the result.
    fn drop(&mut self) {
        if self.state.handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let Some((link, tasks)) = self.state.lock().take_forgotten() else {
            return;
        };
        if !tasks.as_slice().is_empty() {
            // The controller may be gone already (the job is ending).
            let _ = link.forget(tasks);
        }
    }
}

/// Keeps a result (and, for a result made of others, its parts) alive.
pub(crate) type Keep = Arc<dyn std::any::Any + Send + Sync>;

/// What a result is as a dependency of load-balanced tasks.
pub(crate) enum AsDependency {
    /// These load-balanced tasks (none: an empty map, met at once).
    Tasks(Vec<TaskId>),
    /// Not load-balanced work: a direct view's request, a collective, a
    /// local pool's task.
    Other,
}

impl<T> Clone for AsyncResult<T> {
    fn clone(&self) -> Self {
        AsyncResult::attach(self.state.clone(), self.finish.clone())
    }
}

impl<T> AsyncResult<T> {
    /// True once every engine has replied.
    pub fn ready(&self) -> bool {
        self.state.is_done()
    }

    /// The load-balanced tasks behind this result (none for others).
    pub(crate) fn balanced_tasks(&self) -> Vec<TaskId> {
        self.state.lock().balanced().unwrap_or_default()
    }
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.state.lock();
        let engines: Vec<usize> = inner.parts.as_slice().iter().map(|p| p.engine()).collect();
        write!(
            f,
            "AsyncResult {{ engines: {engines:?}, ready: {} }}",
            self.state.is_done()
        )
    }
}

impl<T: 'static> AsyncResult<T> {
    pub(crate) fn new(
        state: Arc<ResultState>,
        finish: impl Fn(&mut [(usize, Result<Payload>)]) -> Result<T> + Send + Sync + 'static,
    ) -> Self {
        AsyncResult::attach(state, FinishRef::new(finish))
    }

    /// The same result, tied to the controller's work (see [`Control`]).
    pub(crate) fn with_control(self, control: Control) -> Self {
        self.state.lock().control = Some(control);
        self
    }

    /// What this result is as a dependency, and a token that keeps it (its
    /// parts included, and so the controller's rows of their tasks) while
    /// it lives.
    pub(crate) fn dependency(&self) -> (AsDependency, Keep) {
        let what = match self.state.lock().balanced() {
            Some(tasks) => AsDependency::Tasks(tasks),
            None => AsDependency::Other,
        };
        (what, Arc::new(self.clone()))
    }

    /// Aborts the work behind this result that has not started
    /// (ipyparallel's `AsyncResult.abort`): a load-balanced task not yet
    /// started, or a direct-view request still waiting in its engine's
    /// stream, ends with [`Error::TaskAborted`] and never runs; work that
    /// has started runs to its end and keeps its result (a load-balanced
    /// task is then not tried again). For a direct view's request the
    /// others in its engines' streams keep their order. An `apply` on a
    /// direct view of several engines is not aborted once sent (its task
    /// gets the view's communicator, [`comm`](crate::comm), and a member
    /// left out would keep the others waiting in a collective): it runs
    /// and keeps its result. Returns once the
    /// controller has the request, not once the work is aborted (wait on
    /// the result for that); aborting a finished result does nothing.
    ///
    /// Errors: [`Error::Usage`] for a collective (scatter, gather,
    /// broadcast push, reduce, MPI section), which is part of every rank's
    /// collective order once sent, and for a task of a
    /// [`LocalPool`](crate::LocalPool); [`Error::Shutdown`].
    pub fn abort(&self) -> Result<()> {
        let inner = self.state.lock();
        let link = inner.control.as_ref().map(|c| c.link.clone());
        let work = inner.control.as_ref().map(|c| &c.work);
        let parts = inner.parts.as_slice();
        match (link, work) {
            (Some(link), Some(Behind::Task | Behind::Balanced(_))) => {
                let tasks = inner.balanced().unwrap_or_default();
                drop(inner);
                link.abort(tasks)
            }
            (Some(link), Some(Behind::Direct)) => {
                let task = parts.first().map_or(0, |p| p.task());
                let engines: Arc<[usize]> = parts.iter().map(|p| p.engine()).collect();
                drop(inner);
                link.abort_direct(task, engines)
            }
            _ if self.ready() => Ok(()),
            (_, Some(Behind::Collective)) => Err(Error::Usage(
                "a collective cannot be aborted: once sent it is part of every rank's \
                 collective order"
                    .into(),
            )),
            _ => Err(Error::Usage(
                "only the work of a view (load-balanced tasks, direct-view requests) can be \
                 aborted"
                    .into(),
            )),
        }
    }

    /// Sends `index` on `to` once the result is done (at once if it is).
    pub(crate) fn notify(&self, to: std::sync::mpsc::Sender<u64>, index: u64) {
        self.state.when_done(Box::new(move |_| {
            let _ = to.send(index);
        }));
    }

    /// Tasks finished (parts settled) and in all, for progress displays.
    pub(crate) fn progress(&self) -> (usize, usize) {
        let total = self.state.lock().parts.as_slice().len();
        let left = self.state.remaining();
        (total.saturating_sub(left), total)
    }

    /// Waits for the result while showing its progress on stderr: a bar
    /// (tasks done / total, rate, elapsed) when stderr is a terminal (or,
    /// under the `rankview` launcher, the launcher's is), plain lines every
    /// few seconds otherwise or with `TERM=dumb` (ipyparallel's
    /// `wait_interactive`). Returns when done.
    pub fn wait_interactive(&self) {
        crate::progress::watch(
            "tasks",
            || self.progress(),
            |timeout| self.wait_timeout(timeout),
        );
    }

    /// A result that failed before anything was sent.
    pub(crate) fn failed(error: Error) -> Self {
        AsyncResult::new(
            ResultState::new(0, &[], &"", false),
            move |_: &mut [_]| Err(error.clone()),
        )
    }

    /// The same submission, with `f` applied to its value.
    pub(crate) fn map<U: 'static>(
        self,
        f: impl Fn(T) -> U + Send + Sync + 'static,
    ) -> AsyncResult<U> {
        self.then(move |result| result.map(&f))
    }

    /// The same submission, with the fallible `f` applied to its value.
    pub(crate) fn and_then<U: 'static>(
        self,
        f: impl Fn(T) -> Result<U> + Send + Sync + 'static,
    ) -> AsyncResult<U> {
        self.then(move |result| result.and_then(&f))
    }

    /// The same submission, with `f` applied to its outcome, value or error.
    pub(crate) fn then<U: 'static>(
        self,
        f: impl Fn(Result<T>) -> Result<U> + Send + Sync + 'static,
    ) -> AsyncResult<U> {
        let finish = self.finish.clone();
        AsyncResult::attach(
            self.state.clone(),
            FinishRef::new(move |outcomes: &mut [_]| f(finish.run::<T>(outcomes))),
        )
    }

    /// One result made of several submissions' results, in order: ready when
    /// all are, failing with the first failure. Its parts are every part of
    /// every submission, in order, each with its metadata (engine, task,
    /// times, output) and its error if it failed.
    pub(crate) fn join(results: Vec<AsyncResult<T>>) -> AsyncResult<Vec<T>> {
        let sizes: Vec<usize> = results
            .iter()
            .map(|r| r.state.lock().parts.as_slice().len())
            .collect();
        let sources: Vec<&ResultState> = results.iter().map(|r| &*r.state).collect();
        let joined = ResultState::like(&sources);
        let mut offset = 0;
        for (result, size) in results.iter().zip(sizes) {
            let joined = joined.clone();
            let at = offset;
            result
                .state
                .when_done(Box::new(move |done| joined.adopt(at, done)));
            offset += size;
        }
        AsyncResult::new(joined, move |_: &mut [_]| {
            results.iter().map(AsyncResult::get).collect()
        })
    }

    /// Blocks until every engine has replied.
    pub fn wait(&self) {
        self.state.wait_until(None);
    }

    /// Blocks until every engine has replied or `timeout` passes; true if done.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        // A timeout past the clock's range is no limit.
        self.state.wait_until(Instant::now().checked_add(timeout))
    }

    /// Blocks for the value. Errors: the task's own ([`Error::Remote`],
    /// [`Error::NameError`], ...), or [`Error::Composite`] when several
    /// engines of a multi-engine view failed. Can be called again: each call
    /// decodes the stored reply anew.
    pub fn get(&self) -> Result<T> {
        self.wait();
        self.decode(false)
    }

    /// Blocks for the value like [`get`](AsyncResult::get), consuming the
    /// handle. When it is the only handle on the result (no clone, no
    /// pending callback), a gathered or reduced container is moved out as
    /// it arrived instead of copied, which matters for large numeric data;
    /// otherwise it is exactly `get`.
    pub fn into_value(self) -> Result<T> {
        self.wait();
        self.decode(self.state.handles.load(Ordering::Acquire) == 1)
    }

    /// Like [`get`](AsyncResult::get), but gives up after `timeout` with
    /// [`Error::Timeout`]; the task goes on and a later `get` can still succeed.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        if self.wait_timeout(timeout) {
            self.decode(false)
        } else {
            Err(Error::Timeout(timeout))
        }
    }

    /// Decodes the stored reply; with `movable`, a gathered payload may be
    /// moved out (only for the last handle, which will not decode again).
    fn decode(&self, movable: bool) -> Result<T> {
        let mut inner = self.state.lock();
        let take = |p: &mut part::Part| {
            let outcome = p
                .outcome
                .take()
                .unwrap_or_else(|| Err(Error::Protocol("reply missing".into())));
            let outcome = match outcome {
                Ok(Payload::Gathered(g)) if movable => Ok(Payload::Movable(g)),
                other => other,
            };
            (p.engine(), outcome)
        };
        let put_back = |p: &mut part::Part, outcome: Result<Payload>| {
            p.outcome = part::Slot::hold(match outcome {
                Ok(Payload::Movable(g)) => Ok(Payload::Gathered(g)),
                other => other,
            });
        };
        // One part (every load-balanced task's): its outcome lent on the
        // stack, no vector.
        if let [only] = inner.parts.as_mut_slice() {
            let mut outcomes = [take(only)];
            let value = self.finish.run::<T>(&mut outcomes);
            let [(_, outcome)] = outcomes;
            put_back(only, outcome);
            return value;
        }
        let mut outcomes: Vec<(usize, Result<Payload>)> =
            inner.parts.as_mut_slice().iter_mut().map(take).collect();
        let value = self.finish.run::<T>(&mut outcomes);
        for (part, (_, outcome)) in inner.parts.as_mut_slice().iter_mut().zip(outcomes) {
            put_back(part, outcome);
        }
        value
    }

    /// True once done without any error (false while pending).
    ///
    /// Looks at what each engine reported without decoding the value, and
    /// consumes nothing. A value that the client then fails to decode as
    /// `T` (another type asked of `pull`) is an error of `get` only.
    pub fn successful(&self) -> bool {
        self.ready()
            && self
                .state
                .lock()
                .parts
                .as_slice()
                .iter()
                .all(|p| p.outcome.succeeded())
    }

    /// Per-engine timing and output, in target order. For a task of a
    /// view over groups ([`Client::groups`](crate::Client::groups)), the group leader's (where its value
    /// came from) and then each member's, in rank order.
    pub fn metadata(&self) -> Vec<Metadata> {
        let inner = self.state.lock();
        inner
            .parts
            .as_slice()
            .iter()
            .flat_map(|p| std::iter::once(p.metadata()).chain(p.members().iter().cloned()))
            .collect()
    }

    /// Where and when each part ran so far, as a [`Timeline`] to draw
    /// (parts still running have no bar yet).
    pub fn timeline(&self) -> Timeline {
        self.state
            .lock()
            .parts
            .as_slice()
            .iter()
            .map(|p| crate::timeline::TimelineRecord::from(&p.timing()))
            .collect()
    }

    /// Time since submission: until the last reply once done, until now before.
    pub fn elapsed(&self) -> Duration {
        let meta = self.metadata();
        let Some(submitted) = meta.iter().map(|m| m.submitted).min() else {
            return Duration::ZERO;
        };
        let end = if self.ready() {
            meta.iter()
                .filter_map(|m| m.received)
                .max()
                .unwrap_or(submitted)
        } else {
            SystemTime::now()
        };
        end.duration_since(submitted).unwrap_or_default()
    }

    /// From submission to the last reply; `None` until done.
    pub fn wall_time(&self) -> Option<Duration> {
        self.ready().then(|| self.elapsed())
    }

    /// Sum over engines of the time each spent running the task; `None` until done.
    pub fn serial_time(&self) -> Option<Duration> {
        if !self.ready() {
            return None;
        }
        Some(
            self.metadata()
                .iter()
                .filter_map(|m| m.completed?.duration_since(m.started?).ok())
                .sum(),
        )
    }

    /// Prints each engine's captured output as `[stdout:N]` / `[stderr:N]`
    /// blocks, in engine order (ipyparallel's `display_outputs`).
    pub fn display_outputs(&self) {
        print!("{}", self.outputs());
    }

    /// The text [`display_outputs`](AsyncResult::display_outputs) prints.
    pub fn outputs(&self) -> String {
        let mut meta = self.metadata();
        meta.sort_by_key(|m| m.engine);
        let mut text = String::new();
        for (label, pick) in [("stdout", 0), ("stderr", 1)] {
            for m in &meta {
                let body = if pick == 0 { &m.stdout } else { &m.stderr };
                if body.is_empty() {
                    continue;
                }
                text.push_str(&format!("[{label}:{}] ", m.engine));
                text.push_str(body);
                if !body.ends_with('\n') {
                    text.push('\n');
                }
            }
        }
        text
    }
}

impl<T: Send + 'static> AsyncResult<T> {
    /// Calls `callback` once the result is done: at once (on this thread) if
    /// it already is, otherwise on one of rankview's callback threads.
    /// Callbacks may block (even on another result's `get`) and may submit
    /// more work: a blocked callback does not hold up the others, which run
    /// on further threads (see the module docs).
    pub fn on_done(&self, callback: impl FnOnce(&AsyncResult<T>) + Send + 'static) {
        let handle = self.clone();
        let run: Callback = Box::new(move || callback(&handle));
        let mut inner = self.state.lock();
        if self.state.is_done() {
            drop(inner);
            run();
        } else {
            inner.waiting().callbacks.push(run);
        }
    }
}

impl<T: 'static> Future for AsyncResult<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        if self.state.is_done() {
            return Poll::Ready(self.decode(false));
        }
        let mut inner = self.state.lock();
        if self.state.is_done() {
            drop(inner);
            return Poll::Ready(self.decode(false));
        }
        // Every task awaiting a clone of this result is woken.
        let wakers = &mut inner.waiting().wakers;
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests;
