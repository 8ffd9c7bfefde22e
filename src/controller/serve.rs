//! The controller's serving loop: one pass takes the client's commands,
//! receives engines' replies and completes their results, dispatches
//! load-balanced tasks and completes sends. The controller thread makes the
//! passes, or a client thread helping it (see `helping`); a clean shutdown
//! drains here first (see the module's "Shutdown").

use std::collections::HashMap;
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::contract::{Command, Filling};
use crate::error::Error;
use crate::fifo::Receiver;
use crate::helping::{self, Caller, LoopShare, Step};
use crate::protocol::{self, Reply, Request, TaskId};
use crate::transport::{self, Mpi};

use super::balance::Balancer;
use super::collective::Collectives;
use super::inflight::Inflight;
use super::wire::{read_reply, receive_data, receive_into, send_all};

/// Everything the serving loop owns. One thread at a time makes a
/// [`pass`](ControllerLoop::pass) over it, under the [`LoopShare`] lock: the
/// controller thread, or (when MPI granted `MPI_THREAD_SERIALIZED`) a
/// client thread that has just submitted or is waiting for a result (see
/// [`help`]).
pub(super) struct ControllerLoop {
    mpi: Mpi,
    commands: Receiver<Command>,
    inflight: Inflight,
    fillings: Fillings,
    balancer: Balancer,
    collectives: Collectives,
    draining: bool,
    drain_deadline: Option<Instant>,
    /// Set by the pass that ended serving: whether the shutdown failed.
    ended: Option<bool>,
}

// SAFETY: `ControllerLoop` holds the rank's MPI handles (communicators, requests in
// flight), which rsmpi does not mark `Send`. It crosses threads only inside
// the mutex of its `helping::LoopShare`, and only when MPI granted
// `MPI_THREAD_SERIALIZED` (helpers are let in only then), which lets any
// thread make MPI calls as long as no two make them at once: the mutex
// guarantees that, and orders every access to the handles (and to the rest
// of the state) between threads. Without that level only the controller
// thread ever locks it.
unsafe impl Send for ControllerLoop {}

/// The serving state, for client threads that may help (see [`helping::help`]).
static CONTROLLER_LOOP: helping::Published<ControllerLoop> = helping::Published::new();

/// The serving loop on the controller thread; returns whether the shutdown
/// is a failed one. Gives `mpi` back when serving is over.
pub(super) fn serve(mpi: Mpi, commands: Receiver<Command>, engines: usize) -> (Mpi, bool) {
    let serialized = mpi.serialized();
    let shared = Arc::new(LoopShare::new(
        ControllerLoop {
            mpi,
            commands,
            inflight: Inflight::new(engines),
            fillings: HashMap::new(),
            balancer: Balancer::new(engines),
            collectives: Collectives::new(),
            draining: false,
            drain_deadline: None,
            ended: None,
        },
        "rank 0's controller".to_string(),
    ));
    CONTROLLER_LOOP.open(&shared, serialized);
    shared.run(Duration::from_millis(10));
    match shared.take() {
        Some(serving) => {
            let failed = serving.ended.unwrap_or(true);
            (serving.mpi, failed)
        }
        None => unreachable_serving(),
    }
}

/// The serving state vanished while the controller thread owned it: a bug
/// that leaves no MPI handle to stop the engines with.
fn unreachable_serving() -> ! {
    eprintln!("rankview: internal error: the controller lost its MPI state; aborting the job");
    transport::abort_job(1)
}

impl helping::Loop for ControllerLoop {
    fn pass(&mut self, caller: Caller) -> Step {
        self.pass_inner(caller)
    }

    fn ended(&self) -> bool {
        self.ended.is_some()
    }
}

impl ControllerLoop {
    /// Ends serving; `failed` says how the shutdown went.
    fn end(&mut self, failed: bool) -> Step {
        self.ended = Some(failed);
        Step::Ended
    }

    /// One pass of the serving loop: takes every command, receives every
    /// message (one when a helper makes the pass), dispatches load-balanced
    /// tasks, completes sends.
    fn pass_inner(&mut self, caller: Caller) -> Step {
        let mpi = &mut self.mpi;
        let mut busy = false;
        loop {
            match self.commands.try_recv() {
                Ok(Command::Submit {
                    task,
                    engines,
                    request,
                    state,
                    what,
                    mut into,
                }) => {
                    busy = true;
                    for (index, &engine) in engines.iter().enumerate() {
                        match mpi.send_framed(engine + 1, &request.head, &request.blobs) {
                            Ok(()) => {
                                self.inflight
                                    .insert((engine, task), (state.clone(), index, what));
                                if let Some(filling) = into.take() {
                                    self.fillings.insert((engine, task), filling);
                                }
                            }
                            Err(e) => state.fail(index, e),
                        }
                    }
                }
                Ok(Command::Collective(c)) => {
                    busy = true;
                    self.collectives.run(c, mpi, &mut self.inflight);
                }
                Ok(Command::Balance { task, state }) => {
                    busy = true;
                    self.balancer.submit(task, state);
                }
                Ok(Command::Abort { tasks }) => {
                    busy = true;
                    self.balancer.abort(tasks, mpi);
                }
                Ok(Command::AbortDirect { task, engines }) => {
                    busy = true;
                    abort_direct(task, &engines, &self.inflight, mpi);
                }
                Ok(Command::Failed { task }) => self.balancer.failed(task),
                Ok(Command::Forget { tasks }) => self.balancer.forget(tasks.as_slice()),
                Ok(Command::QueueStatus(reply)) => {
                    sync_direct(&mut self.balancer, &self.inflight, &self.collectives);
                    let _ = reply.send(self.balancer.status());
                }
                Ok(Command::Shutdown { failed: true }) => return self.end(true),
                Ok(Command::Shutdown { failed: false }) => {
                    self.draining = true;
                    // A grace past the clock's range is no limit.
                    self.drain_deadline = Instant::now().checked_add(shutdown_grace());
                }
                Err(TryRecvError::Empty) => break,
                // Every client handle is gone without asking for a shutdown:
                // the client thread died.
                Err(TryRecvError::Disconnected) if !self.draining => return self.end(true),
                Err(TryRecvError::Disconnected) => break,
            }
        }
        let mut thorough = caller.slept();
        while let Some((rank, bytes)) = self.mpi.try_recv_thorough(thorough) {
            thorough = false;
            busy = true;
            self.receive(rank, &bytes);
            if caller == Caller::Helper {
                break;
            }
        }
        self.balancer.tick();
        sync_direct(&mut self.balancer, &self.inflight, &self.collectives);
        busy |= self.balancer.flush(&mut self.mpi);
        busy |= self.mpi.progress();
        let idle =
            self.inflight.is_empty() && self.collectives.is_idle() && self.balancer.is_idle();
        // The client has returned: the job ends once its work has replied
        // and no `on_done` callback is left to run (one may submit more).
        if self.draining && idle && crate::result::callbacks_pending() == 0 {
            return self.end(false);
        }
        if self.drain_deadline.is_some_and(|d| Instant::now() > d) {
            report_stuck(&self.inflight, &self.collectives, &self.balancer);
            return self.end(true);
        }
        if busy {
            return Step::Busy;
        }
        // With replies outstanding, poll MPI at least every millisecond;
        // never sleep past a dependency's timeout.
        let mut ceiling = if idle {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(1)
        };
        if let Some(deadline) = self.balancer.next_deadline() {
            ceiling = ceiling.min(deadline.saturating_duration_since(Instant::now()));
        }
        // Only load-balanced tasks are out and nothing is being sent: the
        // engines' queues hold work for a round trip through ranks that
        // sleep between polls (`scheduler::Config`), and a client that
        // waits for a result makes this loop's passes itself (`helping`,
        // under `MPI_THREAD_SERIALIZED`). Spinning or yielding here would
        // take a core from the engines (bench `metg`).
        if !idle
            && self.mpi.serialized()
            && self.inflight.is_empty()
            && self.collectives.is_idle()
            && !self.mpi.sending_bulk()
        {
            return Step::Doze(ceiling);
        }
        Step::Idle(ceiling)
    }
}

/// How long a clean shutdown waits for requests still running (and
/// callbacks) when the client has returned: `RANKVIEW_SHUTDOWN_GRACE`
/// seconds, 10 by default; a value too large for a `Duration` (or `inf`)
/// means no limit.
fn shutdown_grace() -> Duration {
    crate::settings::seconds("RANKVIEW_SHUTDOWN_GRACE", Duration::from_secs(10))
}

/// Asks the engines of a direct-view request that have not answered it to
/// drop it if it has not started (each answers `Aborted` if it did, and the
/// request's part then fails with [`Error::TaskAborted`]). A failed send
/// only means the abort cannot happen: the request still answers.
fn abort_direct(task: TaskId, engines: &[usize], inflight: &Inflight, mpi: &mut Mpi) {
    let waiting: Vec<usize> = engines
        .iter()
        .copied()
        .filter(|&engine| inflight.contains_key(&(engine, task)))
        .collect();
    let request = Request::Abort { tasks: vec![task] };
    if let Err(e) = send_all(mpi, &waiting, &request) {
        eprintln!("rankview: cannot send the abort of task {task}: {e}");
    }
}

/// Says which engines kept the job from ending, and with what.
fn report_stuck(inflight: &Inflight, collectives: &Collectives, balancer: &Balancer) {
    let mut busy: Vec<(usize, TaskId, &str)> = inflight
        .iter()
        .map(|(&(engine, task), &(_, _, what))| (engine, task, what))
        .collect();
    busy.sort_unstable();
    let grace = shutdown_grace().as_secs_f64();
    for (engine, task, what) in busy {
        eprintln!(
            "rankview: engine {engine} was still busy with task {task} ({what}) {grace} s after \
             the client returned; stopping the job (RANKVIEW_SHUTDOWN_GRACE sets the wait)"
        );
    }
    for (task, waiting) in collectives.waiting() {
        eprintln!(
            "rankview: task {task} (a gather or reduce) still waited for engines {waiting:?} \
             {grace} s after the client returned; stopping the job"
        );
    }
    let tasks = balancer.outstanding();
    if !tasks.is_empty() {
        eprintln!(
            "rankview: {} load-balanced task(s) were not finished {grace} s after the client \
             returned (tasks {:?}{}); stopping the job",
            tasks.len(),
            &tasks[..tasks.len().min(10)],
            if tasks.len() > 10 { ", ..." } else { "" }
        );
        eprint!("{}", balancer.status());
    }
    let callbacks = crate::result::callbacks_pending();
    if callbacks > 0 {
        eprintln!(
            "rankview: {callbacks} on_done callback(s) were still queued or running {grace} s \
             after the client returned; stopping the job"
        );
    }
}

/// Tells the balancer how much direct work each engine has not answered:
/// requests and collectives waiting for its reply, and gathers or reduces
/// waiting for their lenders (an engine that has lent its value is held
/// until the collective runs, so each of its engines counts).
fn sync_direct(balancer: &mut Balancer, inflight: &Inflight, collectives: &Collectives) {
    balancer.set_direct(|engine| inflight.on(engine) + collectives.lending(engine));
}

/// The caller's memory that pulls in flight fill, by engine and task.
type Fillings = HashMap<(usize, TaskId), Filling>;

impl ControllerLoop {
    /// Handles one message from an engine.
    fn receive(&mut self, rank: usize, bytes: &[u8]) {
        let ControllerLoop {
            mpi,
            inflight,
            fillings,
            collectives,
            balancer,
            ..
        } = self;
        let engine = rank.wrapping_sub(1);
        match read_reply(mpi, rank, bytes) {
            Ok(Reply::Done(mut done)) if matches!(done.outcome, protocol::Outcome::Bulk { .. }) => {
                let data = match fillings.remove(&(engine, done.task)) {
                    Some(filling) => {
                        receive_into(mpi, rank, engine, &done.outcome, filling).map(|()| None)
                    }
                    None => receive_data(mpi, rank, &done.outcome).map(Some),
                };
                match (inflight.remove(&(engine, done.task)), data) {
                    (Some((state, index, _)), Ok(Some(data))) => {
                        state.complete_with_data(index, done, engine, data)
                    }
                    (Some((state, index, _)), Ok(None)) => {
                        done.outcome = protocol::Outcome::Unit;
                        state.complete(index, done, engine)
                    }
                    (Some((state, index, _)), Err(e)) => state.fail(index, e),
                    (None, _) => eprintln!("rankview: engine {engine} replied to an unknown task"),
                }
            }
            Ok(Reply::Done(done)) => {
                // A pull into the caller's memory that failed: give it back.
                fillings.remove(&(engine, done.task));
                match inflight.remove(&(engine, done.task)) {
                    Some((state, index, _)) => state.complete(index, done, engine),
                    None => {
                        if !collectives.lend_failed(engine, done, mpi) {
                            eprintln!("rankview: engine {engine} replied to an unknown task");
                        }
                    }
                }
            }
            Ok(Reply::Ready { task, len, shape }) => {
                collectives.lent(engine, task, len as usize, shape, mpi, inflight);
            }
            Ok(Reply::Progress { started, done }) => balancer.progress(engine, started, done),
            Ok(Reply::Stolen { victim, tasks }) => {
                balancer.stolen(victim as usize, engine, &tasks, mpi);
            }
            Ok(Reply::Aborted { tasks }) => {
                // A direct-view request the engine dropped, or load-balanced
                // tasks it removed from its queue.
                let mut balanced = Vec::new();
                for task in tasks {
                    match inflight.remove(&(engine, task)) {
                        Some((state, index, _)) => {
                            fillings.remove(&(engine, task));
                            state.fail(index, Error::TaskAborted { task });
                        }
                        None => balanced.push(task),
                    }
                }
                balancer.aborted(&balanced);
            }
            Ok(other) => eprintln!("rankview: unexpected message from engine {engine}: {other:?}"),
            Err(e) => eprintln!("rankview: engine {engine}: {e}"),
        }
    }
}
