//! `LoadBalancedView`: tasks run on whichever engine is free.
//!
//! Owns the view's flags (dependencies with `follow`/`after`,
//! `all`/`any`, `success_only`, `timeout`, `retries`; `chunksize`,
//! `ordered`, `max_outstanding` for maps), its calls (`apply`, `map`,
//! `imap`), and its `TaskQueue` side: each task goes to the controller
//! with the view's flags. Turning calls into tasks and replies into
//! results (an [`AsyncResult`] per task, an [`AsyncMap`] per `map`) is
//! `queue.rs`'s and `async_map.rs`'s, shared with the local pool; the
//! [`IMap`] iterator of `imap` is here. Where tasks run, and when, is the
//! scheduler's (`src/scheduler/`); sending them is the controller's. The
//! views are made here ([`Client::load_balanced_view`],
//! [`DirectView::load_balanced`]).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::contract::Command;
use crate::error::{Error, Result};
use crate::protocol::{Packed, TaskId, Work};
use crate::registry::registry;
use crate::remote::{Args, IntoArg, RemoteFn};
use crate::result::{AsDependency, AsyncResult, Behind, Control, Keep, ResultState};
use crate::scheduler::map::{default_chunksize, Assembly, Window};
use crate::scheduler::{DepSet, EngineSet, Mode, Task};
pub use crate::view::async_map::AsyncMap;

use crate::view::arity::OneArg;
use crate::view::async_map::spread;
use crate::view::direct::DirectView;
use crate::view::queue::{apply_on, encode_item, map_on, submit_chunk, Finish, TaskQueue};
use crate::view::shape::Shape;

/// Engines fed from one work-stealing queue (ipyparallel's
/// `LoadBalancedView`): each task runs once, on whichever engine of the
/// view is free.
///
/// Made by [`Client::load_balanced_view`] (every engine) or
/// [`DirectView::load_balanced`](crate::DirectView::load_balanced) (that
/// view's engines). Flags are set by builders that return a configured copy
/// (ipyparallel's `temp_flags`), so a view can be specialised per call:
/// `lv.follow(&ar).apply(f, args)`. Cheap to clone.
///
/// Tasks of one view have no order among themselves. A task sent to an
/// engine runs after every direct-view request the client sent that engine
/// before it; one stolen by another engine runs there only after every
/// request the client sent the thief before it.
///
/// # Examples
///
/// ```no_run
/// #[rankview::remote]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// rankview::launch(|rc| -> rankview::Result<()> {
///     let lv = rc.load_balanced_view();
///     let ar = lv.apply(square, (7u64,));
///     assert_eq!(ar.get()?, 49);
///     println!("ran on engine {}", ar.metadata()[0].engine);
///     let squares = lv.map_sync(square, 0..100u64)?;
///     assert_eq!(squares[9], 81);
///     Ok(())
/// });
/// ```
#[derive(Clone)]
pub struct LoadBalancedView {
    client: Client,
    /// The engines, shared by every task of the view.
    targets: EngineSet,
    flags: Flags,
    /// A view over groups of engines (`groups.rs`): the targets are the
    /// groups' leaders, and each task runs on the whole group of this size.
    group: Option<u32>,
}

/// The view's flags (see the builders).
#[derive(Clone)]
struct Flags {
    after: Vec<TaskId>,
    follow: Vec<TaskId>,
    mode: Mode,
    success_only: bool,
    timeout: Option<Duration>,
    retries: u32,
    chunksize: Option<usize>,
    ordered: bool,
    max_outstanding: usize,
    /// An `after` (`follow`) dependency is met already (an empty map): with
    /// `any`, the set is met.
    after_met: bool,
    follow_met: bool,
    /// Keeps the dependencies (and so their rows on the controller) while
    /// the view lives.
    keep: Vec<Keep>,
    /// A dependency that cannot be used (not load-balanced): every call fails.
    invalid: Option<Error>,
}

impl Default for Flags {
    fn default() -> Flags {
        Flags {
            after: Vec::new(),
            follow: Vec::new(),
            mode: Mode::All,
            success_only: true,
            timeout: None,
            retries: 0,
            chunksize: None,
            ordered: true,
            max_outstanding: DEFAULT_MAX_OUTSTANDING,
            after_met: false,
            follow_met: false,
            keep: Vec::new(),
            invalid: None,
        }
    }
}

/// `imap`'s default bound on tasks in flight.
const DEFAULT_MAX_OUTSTANDING: usize = 10_000;

impl fmt::Debug for LoadBalancedView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.group {
            Some(size) => write!(
                f,
                "<LoadBalancedView groups of {size} led by {:?}>",
                self.targets()
            ),
            None => write!(f, "<LoadBalancedView {:?}>", self.targets()),
        }
    }
}

/// What load-balanced tasks can depend on: a result of a load-balanced
/// view ([`AsyncResult`] or [`AsyncMap`]), or several (a slice, a `Vec`, an
/// array, references to them).
pub trait Dependencies {
    /// Adds the tasks behind `self` to `into`.
    #[doc(hidden)]
    fn add_to(&self, into: &mut DependencyList);
}

/// The tasks a dependency names, and the tokens that keep them known.
#[doc(hidden)]
#[derive(Default)]
pub struct DependencyList {
    tasks: Vec<TaskId>,
    keep: Vec<Keep>,
    /// Some result is not load-balanced work.
    direct: bool,
    /// Some result is met already (an empty map).
    met: bool,
    /// Each result's abort.
    aborts: Vec<Abort>,
}

/// Aborts one result's work.
type Abort = Box<dyn Fn() -> Result<()> + Send + Sync>;

impl<T: 'static> Dependencies for AsyncResult<T> {
    fn add_to(&self, into: &mut DependencyList) {
        let (what, keep) = self.dependency();
        match what {
            AsDependency::Tasks(tasks) => {
                into.met |= tasks.is_empty();
                into.tasks.extend(tasks);
            }
            AsDependency::Other => into.direct = true,
        }
        into.keep.push(keep);
        let result = self.clone();
        into.aborts.push(Box::new(move || result.abort()));
    }
}

impl<R: 'static> Dependencies for AsyncMap<R> {
    fn add_to(&self, into: &mut DependencyList) {
        // The whole map, as its result (what `AsyncMap` derefs to).
        (**self).add_to(into);
    }
}

impl<D: Dependencies + ?Sized> Dependencies for &D {
    fn add_to(&self, into: &mut DependencyList) {
        (**self).add_to(into);
    }
}

impl<D: Dependencies> Dependencies for [D] {
    fn add_to(&self, into: &mut DependencyList) {
        for d in self {
            d.add_to(into);
        }
    }
}

impl<D: Dependencies> Dependencies for Vec<D> {
    fn add_to(&self, into: &mut DependencyList) {
        self.as_slice().add_to(into);
    }
}

impl<D: Dependencies, const N: usize> Dependencies for [D; N] {
    fn add_to(&self, into: &mut DependencyList) {
        self.as_slice().add_to(into);
    }
}

fn dependency_list(deps: &(impl Dependencies + ?Sized)) -> DependencyList {
    let mut list = DependencyList::default();
    deps.add_to(&mut list);
    list
}

/// The load-balanced view of every engine.
impl Client {
    /// A load-balanced view of every engine (ipyparallel's
    /// `rc.load_balanced_view()`); [`DirectView::load_balanced`] makes one
    /// over a view's engines.
    pub fn load_balanced_view(&self) -> LoadBalancedView {
        LoadBalancedView::new(self.clone(), self.ids())
    }
}

/// A load-balanced view over a direct view's engines.
impl<S: Shape> DirectView<S> {
    /// A load-balanced view over this view's engines: tasks run on
    /// whichever of them is free (ipyparallel's `rc.load_balanced_view(targets)`).
    pub fn load_balanced(&self) -> LoadBalancedView {
        LoadBalancedView::new(self.client.clone(), self.targets.to_vec())
    }
}

impl LoadBalancedView {
    pub(crate) fn new(client: Client, targets: Vec<usize>) -> LoadBalancedView {
        LoadBalancedView {
            client,
            targets: EngineSet::new(targets),
            flags: Flags::default(),
            group: None,
        }
    }

    /// A view whose tasks each run on a whole group of `size` engines,
    /// `leaders` being the groups' first engines (see `groups.rs`).
    pub(crate) fn over_groups(client: Client, leaders: Vec<usize>, size: u32) -> LoadBalancedView {
        LoadBalancedView {
            group: Some(size),
            ..LoadBalancedView::new(client, leaders)
        }
    }

    /// The size of the groups a view over groups runs each task on.
    pub(crate) fn group(&self) -> Option<u32> {
        self.group
    }

    /// The engines tasks may run on, in increasing order.
    pub fn targets(&self) -> &[usize] {
        self.targets.as_slice()
    }

    /// Number of engines of the view.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Always false: a view has at least one engine.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    fn with(&self, change: impl FnOnce(&mut Flags)) -> LoadBalancedView {
        let mut view = self.clone();
        change(&mut view.flags);
        view
    }

    fn depend(&self, deps: &(impl Dependencies + ?Sized), follow: bool) -> LoadBalancedView {
        let list = dependency_list(deps);
        self.with(|flags| {
            if list.direct && flags.invalid.is_none() {
                flags.invalid = Some(Error::Usage(
                    "load-balanced tasks can depend only on results of load-balanced views".into(),
                ));
            }
            let (set, met) = if follow {
                (&mut flags.follow, &mut flags.follow_met)
            } else {
                (&mut flags.after, &mut flags.after_met)
            };
            set.extend(list.tasks);
            *met |= list.met;
            flags.keep.extend(list.keep);
        })
    }

    /// Tasks run on the engine where `deps` ran, once they are done
    /// (ipyparallel's `follow`): for data left in an engine's namespace.
    /// Such tasks are never stolen. Adds to the follow set of this view.
    ///
    /// With [`all`](LoadBalancedView::all) (the default) every dependency
    /// must have run on one engine; if they ran on different engines, or on
    /// an engine outside this view, the task fails at once with
    /// [`Error::ImpossibleDependency`].
    pub fn follow(&self, deps: &(impl Dependencies + ?Sized)) -> LoadBalancedView {
        self.depend(deps, true)
    }

    /// Tasks start only once `deps` are done (ipyparallel's `after`), on any
    /// engine. Adds to the after set of this view.
    pub fn after(&self, deps: &(impl Dependencies + ?Sized)) -> LoadBalancedView {
        self.depend(deps, false)
    }

    /// Every dependency must be met (the default).
    pub fn all(&self) -> LoadBalancedView {
        self.with(|f| f.mode = Mode::All)
    }

    /// One met dependency is enough (for `follow`: run where it ran).
    pub fn any(&self) -> LoadBalancedView {
        self.with(|f| f.mode = Mode::Any)
    }

    /// `true` (the default): a dependency counts as met only if it
    /// succeeded, and one that failed makes the task fail at once with
    /// [`Error::ImpossibleDependency`]. `false`: a dependency that failed
    /// counts as met too.
    pub fn success_only(&self, yes: bool) -> LoadBalancedView {
        self.with(|f| f.success_only = yes)
    }

    /// A task whose dependencies are not met within `timeout` of its
    /// submission fails with [`Error::DependencyTimeout`] without running.
    pub fn timeout(&self, timeout: Duration) -> LoadBalancedView {
        self.with(|f| f.timeout = Some(timeout))
    }

    /// A task that fails is tried again up to `retries` more times, on
    /// another engine of the view when there is one; its error is returned
    /// only after the last try.
    pub fn retries(&self, retries: u32) -> LoadBalancedView {
        self.with(|f| f.retries = retries)
    }

    /// Items per task for `map` and `imap` (at least 1). Default for `map`:
    /// chosen from the item count and the engines, at least 8 tasks per
    /// engine and at most 1024 items per task (8192 for a map sent raw, see
    /// [`map`](LoadBalancedView::map)); for `imap`: 1.
    pub fn chunksize(&self, items: usize) -> LoadBalancedView {
        self.with(|f| f.chunksize = Some(items.max(1)))
    }

    /// `true` (the default): a map's results come in input order. `false`:
    /// in the order they complete.
    pub fn ordered(&self, yes: bool) -> LoadBalancedView {
        self.with(|f| f.ordered = yes)
    }

    /// The most `imap` tasks submitted and not yet read (default 10,000).
    pub fn max_outstanding(&self, tasks: usize) -> LoadBalancedView {
        self.with(|f| f.max_outstanding = tasks.max(1))
    }

    /// Runs `f(args)` once, on whichever engine of the view is free
    /// (ipyparallel's `lview.apply`). The result's
    /// [`metadata`](AsyncResult::metadata) says which engine ran it and
    /// whether it was stolen.
    pub fn apply<F, M, A>(&self, f: F, args: A) -> AsyncResult<F::Output>
    where
        F: RemoteFn<M>,
        A: Args<M>,
    {
        apply_on(self, f, args)
    }

    /// [`apply`](LoadBalancedView::apply) and wait for the value.
    pub fn apply_sync<F, M, A>(&self, f: F, args: A) -> Result<F::Output>
    where
        F: RemoteFn<M>,
        A: Args<M>,
    {
        self.apply(f, args).get()
    }

    /// Runs `f` on every item, spread over the view's engines in tasks of
    /// [`chunksize`](LoadBalancedView::chunksize) items (ipyparallel's
    /// `lview.map`). The [`AsyncMap`] is both a result (`get` gives every
    /// value in input order, or the first item's error) and an iterator
    /// that yields each item's result as it arrives, in input order or, with
    /// `ordered(false)`, in completion order. A failed item (a panic, say)
    /// does not stop the others: its error, [`Error::MapItem`], names it.
    ///
    /// When `f` takes one plain number and returns one (an
    /// [`Element`](crate::Element): `u64 -> u64`, `f64 -> f64`, ...), each
    /// task's items travel as one buffer of their bytes, the engine runs `f`
    /// over them in a compiled loop and the results come back the same way:
    /// no per-item encoding, the same results and errors.
    pub fn map<F, M, P, I>(&self, f: F, items: impl IntoIterator<Item = I>) -> AsyncMap<F::Output>
    where
        F: RemoteFn<M>,
        M: OneArg<P>,
        I: IntoArg<P>,
    {
        map_on(self, f, items)
    }

    /// [`map`](LoadBalancedView::map) and wait for every value.
    pub fn map_sync<F, M, P, I>(
        &self,
        f: F,
        items: impl IntoIterator<Item = I>,
    ) -> Result<Vec<F::Output>>
    where
        F: RemoteFn<M>,
        M: OneArg<P>,
        I: IntoArg<P>,
    {
        self.map(f, items).get()
    }

    /// Runs `f` on every item of a lazy iterator (possibly endless, or too
    /// large to hold) and yields each item's result as it is read, keeping
    /// at most [`max_outstanding`](LoadBalancedView::max_outstanding) tasks
    /// submitted and not yet read: items are drawn from `items` only as
    /// results are consumed, so memory stays bounded. Results come in input
    /// order (or completion order with `ordered(false)`); tasks are of
    /// [`chunksize`](LoadBalancedView::chunksize) items, 1 by default.
    pub fn imap<'a, F, M, P, I>(
        &self,
        f: F,
        items: impl IntoIterator<Item = I> + 'a,
    ) -> IMap<'a, F::Output>
    where
        F: RemoteFn<M>,
        M: OneArg<P>,
        I: IntoArg<P> + 'a,
        P: 'a,
    {
        let _ = f;
        let (arrived, arrivals) = mpsc::channel();
        IMap {
            view: self.clone(),
            function: registry().id_of::<F>(),
            source: Box::new(items.into_iter().map(encode_item::<P, I>)),
            size: self.flags.chunksize.unwrap_or(1),
            window: Window::new(self.flags.max_outstanding),
            assembly: Assembly::new(self.flags.ordered),
            inflight: HashMap::new(),
            arrived,
            arrivals,
            out: VecDeque::new(),
            next_item: 0,
            exhausted: false,
        }
    }

    /// Aborts the work behind `results` that has not started: exactly what
    /// [`AsyncResult::abort`] does on each (a direct view's requests
    /// included). Every result is asked; the first error is returned.
    pub fn abort(&self, results: &(impl Dependencies + ?Sized)) -> Result<()> {
        let list = dependency_list(results);
        let mut first = Ok(());
        for abort in &list.aborts {
            if let Err(e) = abort() {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

impl TaskQueue for LoadBalancedView {
    fn next_task(&self) -> TaskId {
        self.client.next_task()
    }

    /// Sends the task to the controller with this view's flags.
    fn run<R: 'static>(&self, task: TaskId, work: Work, finish: impl Finish<R>) -> AsyncResult<R> {
        if let Some(e) = &self.flags.invalid {
            return self.failed(e.clone());
        }
        let function = registry().path(work.function());
        let state = ResultState::new(task, &[usize::MAX], function, true);
        let work = match self.group {
            Some(size) => Work::Group {
                size,
                work: Box::new(work),
            },
            None => work,
        };
        let mut spec = Task::new(task, work, self.targets.clone());
        let set = |tasks: &[TaskId]| DepSet {
            tasks: tasks.to_vec(),
            mode: self.flags.mode,
            success_only: self.flags.success_only,
        };
        // A set met already (an empty map) adds nothing with `all`, and
        // leaves nothing to wait for with `any`.
        let any = self.flags.mode == Mode::Any;
        if !(self.flags.after.is_empty() || any && self.flags.after_met) {
            spec = spec.after(set(&self.flags.after));
        }
        if !(self.flags.follow.is_empty() || any && self.flags.follow_met) {
            spec = spec.follow(set(&self.flags.follow));
        }
        if let Some(timeout) = self.flags.timeout {
            spec = spec.timeout(timeout);
        }
        spec = spec.retries(self.flags.retries);
        let command = Command::Balance {
            task: spec,
            state: state.clone(),
        };
        if let Err(e) = self.client.send(command) {
            return AsyncResult::failed(e);
        }
        AsyncResult::new(state, finish).with_control(self.client.control(Behind::Task))
    }

    fn chunksize(&self, count: usize, raw: bool) -> usize {
        self.flags
            .chunksize
            .unwrap_or_else(|| default_chunksize(count, self.len(), raw))
    }

    fn ordered(&self) -> bool {
        self.flags.ordered
    }

    fn control(&self, tasks: Vec<TaskId>) -> Option<Control> {
        Some(self.client.control(Behind::balanced(tasks)))
    }

    /// Registers the failed submission with the controller under a task id
    /// of its own, as a task that never ran, so that tasks depending on it
    /// fail (or, without `success_only`, run) as on any failed task.
    fn failed<R: 'static>(&self, error: Error) -> AsyncResult<R> {
        let task = self.client.next_task();
        match self.client.send(Command::Failed { task }) {
            Ok(()) => {
                let registered = Behind::balanced(vec![task]);
                AsyncResult::failed(error).with_control(self.client.control(registered))
            }
            Err(_) => AsyncResult::failed(error),
        }
    }
}

/// A task of `imap` in flight: its item count and its result.
type Pending<R> = (usize, AsyncResult<Vec<Result<R>>>);

/// The results of [`imap`](LoadBalancedView::imap), read one by one; the
/// items are drawn and submitted as results are read.
pub struct IMap<'a, R> {
    view: LoadBalancedView,
    function: Result<u64>,
    source: Box<dyn Iterator<Item = Result<Vec<u8>>> + 'a>,
    size: usize,
    window: Window,
    assembly: Assembly<Pending<R>>,
    inflight: HashMap<u64, Pending<R>>,
    arrived: mpsc::Sender<u64>,
    arrivals: Receiver<u64>,
    out: VecDeque<Result<R>>,
    /// Index of the next item drawn from the source.
    next_item: usize,
    exhausted: bool,
}

impl<R> fmt::Debug for IMap<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IMap {{ submitted: {}, in flight: {} }}",
            self.window.submitted(),
            self.window.outstanding()
        )
    }
}

impl<R: DeserializeOwned + 'static> IMap<'_, R> {
    /// Submits tasks while the window has room and the source has items.
    fn fill(&mut self) {
        while !self.exhausted && self.window.outstanding() < self.window_max() {
            let first = self.next_item;
            // Sized by what a chunk usually holds, not by the chunk size
            // asked for (which may mean "everything": usize::MAX).
            let room = self.size.min(IMAP_CHUNK_ROOM);
            let mut chunk = Packed::with_capacity(room, room * 8);
            let mut failed = None;
            while chunk.len() < self.size {
                match self.source.next() {
                    Some(Ok(bytes)) => chunk.push(&bytes),
                    Some(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    None => {
                        self.exhausted = true;
                        break;
                    }
                }
            }
            if chunk.len() == 0 && failed.is_none() {
                return;
            }
            let Some(index) = self.window.submit() else {
                return;
            };
            // An item that cannot be encoded fails its whole task.
            let count = chunk.len() + usize::from(failed.is_some());
            self.next_item += count;
            let result = match (&self.function, failed) {
                (Err(e), _) => AsyncResult::failed(e.clone()),
                (_, Some(e)) => AsyncResult::failed(e),
                (Ok(function), None) => submit_chunk::<_, R>(&self.view, *function, chunk, first),
            };
            result.notify(self.arrived.clone(), index);
            self.inflight.insert(index, (count, result));
        }
    }

    fn window_max(&self) -> usize {
        self.view.flags.max_outstanding
    }

    /// Aborts every task this `imap` submitted that has not started, and
    /// draws no more items: iterating goes on with the results of the tasks
    /// that ran and [`Error::TaskAborted`] for the others, then ends. (What
    /// dropping an `IMap` does, said explicitly.)
    pub fn abort(&mut self) -> Result<()> {
        self.exhausted = true;
        self.abort_inflight()
    }
}

/// Items an `imap` chunk is given room for before it is filled.
const IMAP_CHUNK_ROOM: usize = 1024;

impl<R> IMap<'_, R> {
    /// Aborts the tasks submitted and not finished.
    fn abort_inflight(&self) -> Result<()> {
        let tasks: Vec<TaskId> = self
            .inflight
            .values()
            .filter(|(_, result)| !result.ready())
            .flat_map(|(_, result)| result.balanced_tasks())
            .collect();
        if tasks.is_empty() {
            return Ok(());
        }
        self.view.client.send(Command::Abort { tasks: Some(tasks) })
    }
}

/// Nothing can read the results of an `imap` once it is dropped: the tasks
/// it submitted and that have not started are aborted (a `break` out of an
/// endless `imap` leaves no work behind).
impl<R> Drop for IMap<'_, R> {
    fn drop(&mut self) {
        // The controller may be gone already (the job is ending).
        let _ = self.abort_inflight();
    }
}

impl<R: DeserializeOwned + 'static> Iterator for IMap<'_, R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            if let Some((_, (count, result))) = self.assembly.pop() {
                self.window.consumed();
                self.out.extend(spread(result.get(), count));
                // Dropping `result` lets the controller forget the task.
                continue;
            }
            self.fill();
            if self.window.outstanding() == 0 {
                return None;
            }
            let index = self.arrivals.recv().ok()?;
            if let Some(entry) = self.inflight.remove(&index) {
                self.assembly.insert(index, entry);
            }
        }
    }
}
