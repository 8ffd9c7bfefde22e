//! The `Client`: rank 0's handle on the job's engines.
//!
//! Knows the job's engines, allocates task ids, and turns view calls into
//! [`Command`]s for the controller thread. It owns no MPI state; the
//! controller does. The views and executors it hands out (`engine`,
//! `view`, `all`, `load_balanced_view`, `executor`) are made in their own
//! files (`view/direct.rs`, `view/load_balanced.rs`, `executor/`), which
//! build on the client, not the other way round.

use std::collections::HashSet;
use std::fmt;
use std::ops::{Range, RangeFrom, RangeFull, RangeInclusive, RangeTo};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

use crate::contract::{finish_units, Collective, CollectiveKind, Command, Filling};
use crate::error::{Error, Result};
use crate::fifo::Sender;
use crate::protocol::{self, Request, TaskId, TeamSpec};
use crate::result::{AsyncResult, Behind, Control, Forgotten, Link, Name, Payload, ResultState};
use crate::scheduler::QueueStatus;
use crate::timeline::{job_log, Timeline};
use crate::view::shape::Shape;

struct Inner {
    commands: Sender<Command>,
    controller: Thread,
    engines: usize,
    next_task: AtomicU64,
    /// The teams given a communicator so far (see [`Client::team`]).
    teams: Mutex<HashSet<Vec<u32>>>,
    max_teams: usize,
    /// Tasks whose results are gone, not yet sent (see [`FORGET_BATCH`]).
    forgotten: Mutex<Vec<TaskId>>,
}

/// How many forgotten tasks one `Forget` command carries: a program that
/// drops its results one by one (every `get` of a load-balanced `apply` in
/// a loop) sends one command per this many, not one each. Fewer wait for
/// the rest of their batch, or for [`Client::queue_status`], which sends
/// them first: until then their final rows stay on the controller, and the
/// heap is not trimmed for the last row of a burst (bench `w13` reads the
/// memory after a `queue_status`).
const FORGET_BATCH: usize = 256;

impl Inner {
    fn send(&self, command: Command) -> Result<()> {
        self.commands.send(command).map_err(|_| Error::Shutdown)?;
        self.controller.unpark();
        Ok(())
    }

    /// Sends the forgotten tasks waiting for a batch.
    fn send_forgotten(&self) -> Result<()> {
        let batch = std::mem::take(&mut *self.forgotten.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return Ok(());
        }
        self.send(Command::Forget {
            tasks: Forgotten::Many(batch),
        })
    }
}

/// What results ask of the controller.
impl Link for Inner {
    fn forget(&self, tasks: Forgotten) -> Result<()> {
        let batch = {
            let mut pending = self.forgotten.lock().unwrap_or_else(|p| p.into_inner());
            pending.extend_from_slice(tasks.as_slice());
            if pending.len() < FORGET_BATCH {
                return Ok(());
            }
            std::mem::replace(&mut *pending, Vec::with_capacity(FORGET_BATCH))
        };
        self.send(Command::Forget {
            tasks: Forgotten::Many(batch),
        })
    }

    fn abort(&self, tasks: Vec<TaskId>) -> Result<()> {
        self.send(Command::Abort { tasks: Some(tasks) })
    }

    fn abort_direct(&self, task: TaskId, engines: Arc<[usize]>) -> Result<()> {
        self.send(Command::AbortDirect { task, engines })
    }
}

/// The client of a rankview job, given to the closure passed to
/// [`launch`](crate::launch) on rank 0 (ipyparallel's `Client`).
///
/// Cheap to clone; every clone talks to the same controller.
///
/// # Examples
///
/// ```no_run
/// rankview::launch(|rc| -> rankview::Result<()> {
///     println!("engines: {:?}", rc.ids());
///     let last = rc.engine(-1)?;          // rc[-1]
///     let some = rc.view(1..3)?;          // rc[1:3]
///     let all = rc.all();                 // rc[:]
///     assert_eq!(some.len(), 2);
///     # let _ = (last, all);
///     Ok(())
/// });
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Client {{ engines: {} }}", self.inner.engines)
    }
}

impl Client {
    pub(crate) fn new(commands: Sender<Command>, controller: Thread, engines: usize) -> Client {
        Client {
            inner: Arc::new(Inner {
                commands,
                controller,
                engines,
                next_task: AtomicU64::new(1),
                teams: Mutex::new(HashSet::new()),
                max_teams: max_teams(),
                forgotten: Mutex::new(Vec::with_capacity(FORGET_BATCH)),
            }),
        }
    }

    /// The team of a direct view's task on `targets` (several engines):
    /// with its communicator if it has one already or the job has made
    /// fewer than `RANKVIEW_MAX_TEAMS`, without one otherwise (`comm()` in
    /// the task then says why). Every member's message carries the same
    /// answer, so they agree on whether to create it.
    pub(crate) fn team(&self, targets: &[usize]) -> TeamSpec {
        let mut team = TeamSpec::new(targets);
        let mut made = self.inner.teams.lock().unwrap_or_else(|p| p.into_inner());
        if !made.contains(&team.engines) {
            if made.len() < self.inner.max_teams {
                made.insert(team.engines.clone());
            } else {
                team.communicator = false;
            }
        }
        team
    }

    pub(crate) fn commands(&self) -> &Sender<Command> {
        &self.inner.commands
    }

    /// Ids of every engine: `0..engines` (engine `i` is MPI rank `i + 1`).
    pub fn ids(&self) -> Vec<usize> {
        (0..self.inner.engines).collect()
    }

    /// Number of engines.
    pub fn len(&self) -> usize {
        self.inner.engines
    }

    /// Always false: a job has at least one engine.
    pub fn is_empty(&self) -> bool {
        self.inner.engines == 0
    }

    /// Runs the raw MPI section `name` (registered with
    /// [`Launch::mpi_section`](crate::Launch::mpi_section)) on every rank at
    /// once, in order with the views' collectives; done when every rank has
    /// finished it.
    pub fn mpi_section(&self, name: &str) -> AsyncResult<()> {
        let engines: Arc<[usize]> = self.ids().into();
        self.collective(
            &engines,
            CollectiveKind::Section {
                name: name.to_string(),
            },
            finish_units,
        )
    }

    /// Aborts every load-balanced task that has not started (see
    /// [`AsyncResult::abort`]).
    pub fn abort_all(&self) -> Result<()> {
        self.send(Command::Abort { tasks: None })
    }

    /// Per engine, the load-balanced tasks queued, running and completed,
    /// how many were stolen in and out, and the direct work sent to it and
    /// not answered yet (direct-view requests and collectives: an engine
    /// busy with a long direct request shows `running 0`, `direct 1`); with
    /// the tasks the controller holds back. Its `Display` is a small table.
    pub fn queue_status(&self) -> Result<QueueStatus> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.inner.send_forgotten()?;
        self.send(Command::QueueStatus(tx))?;
        rx.recv().map_err(|_| Error::Shutdown)
    }

    /// Where and when the job's tasks ran: one record per finished part
    /// (per engine of a direct submission, per load-balanced task, per
    /// engine of a collective), in the order they finished. Only the last
    /// [`TIMELINE_LIMIT`](crate::TIMELINE_LIMIT) (100,000) are kept, a few
    /// words each and never their output; the timeline says how many
    /// earlier ones were left out.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// #[rankview::remote]
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// rankview::launch(|rc| -> rankview::Result<()> {
    ///     rc.load_balanced_view().map(square, 0..100u64).get()?;
    ///     rc.timeline().write_html("timeline.html")?;
    ///     Ok(())
    /// });
    /// ```
    pub fn timeline(&self) -> Timeline {
        job_log().timeline()
    }

    /// A new task id.
    pub(crate) fn next_task(&self) -> TaskId {
        self.inner.next_task.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands `command` to the controller.
    pub(crate) fn send(&self, command: Command) -> Result<()> {
        self.inner.send(command)
    }

    /// The link from a result to the controller, for the work `work`.
    pub(crate) fn control(&self, work: Behind) -> Control {
        Control {
            link: self.inner.clone(),
            work,
        }
    }

    /// Sends one request to `engines` and returns the result handle.
    ///
    /// `decode` turns one engine's payload into an `R`; the view's shape `S`
    /// puts the per-engine values together.
    pub(crate) fn submit<S: Shape, R: 'static>(
        &self,
        engines: &Arc<[usize]>,
        build: impl FnOnce(TaskId) -> Result<Request>,
        decode: impl Fn(usize, &mut Payload) -> Result<R> + Send + Sync + 'static,
    ) -> AsyncResult<S::Out<R>> {
        self.submit_into::<S, R>(engines, build, decode, None)
    }

    /// [`submit`](Client::submit) of a pull whose numeric data goes
    /// straight into the caller's memory `into` (one engine).
    pub(crate) fn submit_into<S: Shape, R: 'static>(
        &self,
        engines: &Arc<[usize]>,
        build: impl FnOnce(TaskId) -> Result<Request>,
        decode: impl Fn(usize, &mut Payload) -> Result<R> + Send + Sync + 'static,
        into: Option<Filling>,
    ) -> AsyncResult<S::Out<R>> {
        let task = self.inner.next_task.fetch_add(1, Ordering::Relaxed);
        let built =
            build(task).and_then(|mut r| Ok((describe(&r), protocol::encode_framed(&mut r)?)));
        let (what, request) = match built {
            Ok(built) => built,
            Err(e) => return AsyncResult::failed(e),
        };
        let state = ResultState::new(task, engines, what, true);
        let command = Command::Submit {
            task,
            engines: engines.clone(),
            request,
            state: state.clone(),
            what,
            into,
        };
        if self.inner.commands.send(command).is_err() {
            return AsyncResult::failed(Error::Shutdown);
        }
        // Send it from this thread when MPI allows; else wake the controller.
        if !crate::helping::help() {
            self.inner.controller.unpark();
        }
        let control = self.control(Behind::Direct);
        AsyncResult::new(state, move |outcomes: &mut [_]| {
            collect::<S, R>(outcomes, &decode)
        })
        .with_control(control)
    }
}

impl Client {
    /// Queues a collective on `engines` and returns the result handle;
    /// `finish` turns the parts into the user's value.
    pub(crate) fn collective<T: 'static>(
        &self,
        engines: &Arc<[usize]>,
        kind: CollectiveKind,
        finish: impl Fn(&mut [(usize, Result<Payload>)]) -> Result<T> + Send + Sync + 'static,
    ) -> AsyncResult<T> {
        let task = self.inner.next_task.fetch_add(1, Ordering::Relaxed);
        let state = ResultState::new(task, engines, kind.name(), true);
        let command = Command::Collective(Collective {
            task,
            engines: engines.clone(),
            state: state.clone(),
            kind,
        });
        if self.inner.commands.send(command).is_err() {
            return AsyncResult::failed(Error::Shutdown);
        }
        self.inner.controller.unpark();
        AsyncResult::new(state, finish).with_control(self.control(Behind::Collective))
    }
}

/// What a request does, for the controller's messages: the remote
/// function's path for `apply` and `map`, else the request's kind.
fn describe(request: &Request) -> Name {
    match request {
        Request::Apply { function: id, .. } | Request::Map { function: id, .. } => {
            crate::registry::registry().path(*id)
        }
        Request::Push { .. } => &"push",
        Request::Pull { .. } => &"pull",
        Request::Keys { .. } => &"keys",
        Request::Clear { .. } => &"clear",
        Request::Collective { .. } => &"a collective",
        Request::Tasks { .. } => &"load-balanced tasks",
        Request::Abort { .. } => &"abort",
        Request::Shutdown { .. } | Request::Exit => &"shutdown",
    }
}

/// Puts per-engine outcomes together: values in order, or the error(s).
/// One outcome (every load-balanced task's) allocates nothing here.
pub(crate) fn collect<S: Shape, R>(
    outcomes: &mut [(usize, Result<Payload>)],
    decode: &dyn Fn(usize, &mut Payload) -> Result<R>,
) -> Result<S::Out<R>> {
    if let [(engine, outcome)] = outcomes {
        let decoded = match outcome {
            Ok(payload) => decode(*engine, payload),
            Err(e) => Err(e.clone()),
        };
        return match decoded {
            Ok(value) => S::wrap_one(value),
            Err(e) if S::SINGLE => Err(e),
            Err(e) => Err(Error::Composite(vec![e])),
        };
    }
    let mut values = Vec::with_capacity(outcomes.len());
    let mut errors = Vec::new();
    for (engine, outcome) in outcomes.iter_mut() {
        let decoded = match outcome {
            Ok(payload) => decode(*engine, payload),
            Err(e) => Err(e.clone()),
        };
        match decoded {
            Ok(v) => values.push(v),
            Err(e) => errors.push(e),
        }
    }
    errors.dedup();
    if errors.is_empty() {
        S::wrap(values)
    } else if S::SINGLE && errors.len() == 1 {
        Err(errors.remove(0))
    } else {
        Err(Error::Composite(errors))
    }
}

/// What [`Client::view`] accepts: ranges of engine ids and lists of them.
pub trait Targets {
    /// The engine ids, given the number of engines.
    fn resolve(self, engines: usize) -> Result<Vec<usize>>;
}

impl Targets for Range<usize> {
    fn resolve(self, _: usize) -> Result<Vec<usize>> {
        Ok(self.collect())
    }
}

impl Targets for RangeInclusive<usize> {
    fn resolve(self, _: usize) -> Result<Vec<usize>> {
        Ok(self.collect())
    }
}

impl Targets for RangeFrom<usize> {
    fn resolve(self, engines: usize) -> Result<Vec<usize>> {
        Ok((self.start..engines.max(self.start)).collect())
    }
}

impl Targets for RangeTo<usize> {
    fn resolve(self, _: usize) -> Result<Vec<usize>> {
        Ok((0..self.end).collect())
    }
}

impl Targets for RangeFull {
    fn resolve(self, engines: usize) -> Result<Vec<usize>> {
        Ok((0..engines).collect())
    }
}

impl Targets for Vec<usize> {
    fn resolve(self, _: usize) -> Result<Vec<usize>> {
        Ok(self)
    }
}

impl Targets for &[usize] {
    fn resolve(self, _: usize) -> Result<Vec<usize>> {
        Ok(self.to_vec())
    }
}

impl<const N: usize> Targets for [usize; N] {
    fn resolve(self, _: usize) -> Result<Vec<usize>> {
        Ok(self.to_vec())
    }
}

/// How many task communicators the client lets the job make
/// (`RANKVIEW_MAX_TEAMS`, 1000 by default): one per distinct ordered set of
/// engines that a direct view ran a task on, each kept for the job, and MPI
/// implementations limit how many a process may have (MPICH about 2,000,
/// views' collectives included).
fn max_teams() -> usize {
    std::env::var("RANKVIEW_MAX_TEAMS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forgotten tasks reach the controller in batches, none lost or
    /// repeated, and a result of many tasks goes whole.
    #[test]
    fn forgotten_tasks_go_in_batches() {
        let (commands, mut controller) = crate::fifo::channel();
        let client = Client::new(commands, std::thread::current(), 2);
        let link = client.inner.clone();
        let mut sent = Vec::new();
        let mut drain = |sent: &mut Vec<Vec<TaskId>>| {
            while let Ok(command) = controller.try_recv() {
                match command {
                    Command::Forget { tasks } => sent.push(tasks.as_slice().to_vec()),
                    _ => panic!("only forgets were sent"),
                }
            }
        };
        for task in 1..FORGET_BATCH as TaskId {
            link.forget(Forgotten::One(task)).unwrap();
        }
        drain(&mut sent);
        assert!(sent.is_empty(), "a batch went before it was full");
        link.forget(Forgotten::One(FORGET_BATCH as TaskId)).unwrap();
        link.forget(Forgotten::Many((1000..1600).collect()))
            .unwrap();
        drain(&mut sent);
        let expected: Vec<TaskId> = (1..=FORGET_BATCH as TaskId).chain(1000..1600).collect();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent.concat(), expected);
        // A partial batch goes with the next `queue_status`.
        link.forget(Forgotten::One(7)).unwrap();
        link.send_forgotten().unwrap();
        link.send_forgotten().unwrap();
        drain(&mut sent);
        assert_eq!(sent.last(), Some(&vec![7]));
        assert_eq!(sent.len(), 3);
    }
}
