//! The controller: rank 0's MPI thread.
//!
//! Takes [`Command`]s from client handles over a channel, sends requests to
//! engines, receives their replies and completes the matching results. It
//! never runs user code and never decides what to compute. Start-up (checking
//! that every engine runs the same binary) and shutdown live here too.
//!
//! ## Message ordering
//!
//! Commands are handled in the order the client submitted them, and each one
//! sends its messages to its engines at once: point-to-point requests, and
//! the trigger of every collective (its `Collective` request, or the `Go` of
//! a gather). Each engine thus receives one ordered stream (MPI's
//! non-overtaking rule) and executes it in that order, so an `apply` after a
//! `push` or `scatter` sees the new value, whichever engines are busy. The
//! only thing serialized is the MPI collective call itself: rank 0 makes it
//! right after sending its trigger, and an engine's MPI thread makes it when
//! the trigger arrives, so every rank enters the collectives of every
//! sub-communicator in the same order and none waits for another view's
//! work. A gather or reduce first asks its engines to lend their values (in
//! their streams); it waits for them without holding anything else up, and
//! several may wait at once.
//!
//! ## Two phases
//!
//! A scatter or broadcast of a megabyte or more of numeric data
//! ([`TWO_PHASES_FROM`]) is received on each engine into the memory of the
//! value it replaces when it can be (see the engine's `recycled`), which
//! only the engine's execution thread can hand over. Its engines therefore
//! first get that buffer ready and reply `Ready`; rank 0 enters the
//! collective only once every one has, after sending each a `Go`, so no
//! rank spins inside the MPI call while an engine's execution thread waits
//! for a core to hand its buffer over (on an oversubscribed machine that
//! wait dominated, bench `w8loop`). Like a gather, the collective occupies
//! its sub-communicator from trigger to `Go`; smaller ones go at once.
//!
//! ## Failures
//!
//! A panic on this thread is an internal failure: it is reported on rank 0's
//! stderr and the job is aborted (`MPI_Abort`), since pending results could
//! otherwise never complete.
//!
//! ## Shutdown
//!
//! A clean shutdown first waits until every submitted request has replied
//! and every `on_done` callback queued or running has finished (a callback
//! may submit more work, which is waited for in turn), all within the
//! shutdown grace, then tells every engine to stop and waits for each one's
//! `Goodbye`. A
//! failed shutdown (the client panicked or returned `Err`) tells the engines
//! to exit non-zero at once and waits at most [`FAILED_GRACE`] for them before
//! aborting the job, so a failure never hangs.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::bulk::{BulkVec, ElemKind, ReduceOp};
use crate::contract::{Collective, CollectiveKind, Command, Filling};
use crate::error::{Error, Result};
use crate::helping::{self, Caller, LoopShare, Step};
use crate::protocol::{self, CollectiveOp, GroupSpec, Reply, Request, TaskId, ValueSpec};
use crate::result::{Gathered, Payload, ResultState};
use crate::transport::{self, Mpi, SendBuf};

mod balance;
mod inflight;

use balance::Balancer;
use inflight::Inflight;

/// How long engines get to leave after a failed client.
const FAILED_GRACE: Duration = Duration::from_secs(10);

/// What one engine lends to a gather or reduce: elements and shape.
type Contribution = (usize, Vec<usize>);

/// A gather or reduce waiting for its engines to lend their values.
struct Pending {
    task: TaskId,
    engines: Arc<[usize]>,
    group: GroupSpec,
    state: Arc<ResultState>,
    value: ValueSpec,
    op: Option<ReduceOp>,
    /// Per target: what it lent once it has, or the engine's error.
    lent: Vec<Option<Result<Contribution>>>,
    /// Where the data goes, when the caller gave its own memory.
    into: Option<Filling>,
}

/// How many sub-communicators the controller keeps before freeing the least
/// recently used one (MPICH allows about 2,000 per process).
const DEFAULT_GROUP_CACHE: usize = 64;

/// The sub-communicators of views, by rank set: a bounded cache.
///
/// Ids are never reused, so an engine never mistakes a new group for a
/// freed one. Evicting a group sends `Free` to its engines in their streams
/// (after every collective already triggered on it) and frees rank 0's side.
struct Groups {
    by_ranks: HashMap<Vec<usize>, (u32, u64)>,
    /// Groups whose ranks have been sent to their engines.
    announced: std::collections::HashSet<u32>,
    next_id: u32,
    clock: u64,
    capacity: usize,
}

impl Groups {
    fn new() -> Groups {
        let capacity = std::env::var("RANKVIEW_GROUP_CACHE")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n >= 1)
            .unwrap_or(DEFAULT_GROUP_CACHE);
        Groups {
            by_ranks: HashMap::new(),
            announced: std::collections::HashSet::new(),
            next_id: 1,
            clock: 0,
            capacity,
        }
    }

    /// The group of rank 0 and `engines`, made (and another one evicted) if
    /// needed; groups in `busy` are never evicted.
    fn get(&mut self, engines: &[usize], busy: &[u32], mpi: &mut Mpi) -> Result<GroupSpec> {
        let mut ranks: Vec<usize> = std::iter::once(0)
            .chain(engines.iter().map(|e| e + 1))
            .collect();
        ranks.sort_unstable();
        self.clock += 1;
        let clock = self.clock;
        if let Some((id, used)) = self.by_ranks.get_mut(&ranks) {
            *used = clock;
            return Ok(spec(*id, &ranks));
        }
        if self.by_ranks.len() >= self.capacity {
            let victim = self
                .by_ranks
                .iter()
                .filter(|(_, (id, _))| !busy.contains(id))
                .min_by_key(|(_, (_, used))| *used)
                .map(|(ranks, (id, _))| (ranks.clone(), *id));
            if let Some((old, id)) = victim {
                self.by_ranks.remove(&old);
                let engines: Vec<usize> = old.iter().skip(1).map(|r| r - 1).collect();
                let free = Request::Collective {
                    task: 0,
                    group: spec(id, &[]),
                    op: CollectiveOp::Free,
                };
                send_all(mpi, &engines, &free)?;
                mpi.free_group(id);
                self.announced.remove(&id);
            }
        }
        let id = self.next_id;
        self.next_id = self
            .next_id
            .checked_add(1)
            .ok_or_else(|| Error::Usage("this job has created 2^32 sub-communicators".into()))?;
        self.by_ranks.insert(ranks.clone(), (id, clock));
        Ok(spec(id, &ranks))
    }
}

impl Groups {
    /// `group` as the next collective's messages must name it: with its
    /// ranks the first time, by id alone afterwards. The first time also
    /// creates rank 0's side of the sub-communicator, right after
    /// `announce` has sent those messages: each engine creates its side when
    /// it receives one, so every rank creates it at the same point of its
    /// collective order.
    fn wire(
        &mut self,
        group: &GroupSpec,
        mpi: &mut Mpi,
        announce: impl FnOnce(&mut Mpi, GroupSpec) -> Result<()>,
    ) -> Result<()> {
        if self.announced.insert(group.id) {
            announce(mpi, group.clone())?;
            mpi.ensure_group(group.id, &group.world_ranks())
        } else {
            announce(mpi, group.known())
        }
    }
}

fn spec(id: u32, ranks: &[usize]) -> GroupSpec {
    GroupSpec {
        id,
        ranks: ranks.iter().map(|&r| r as u32).collect(),
    }
}

/// The controller's view of collectives: sub-communicators and the gathers
/// and reduces waiting for their engines. See the module's "Message
/// ordering".
struct Collectives {
    groups: Groups,
    pending: HashMap<TaskId, Pending>,
    /// Scatters and broadcasts waiting for their engines' buffers.
    receiving: HashMap<TaskId, Receiving>,
}

/// Numeric scatters and broadcasts of this many bytes or more go in two
/// phases (see "Two phases").
const TWO_PHASES_FROM: usize = 1 << 20;

/// A scatter or broadcast whose engines are getting their buffers ready.
struct Receiving {
    c: Collective,
    group: GroupSpec,
    ranks: Vec<usize>,
    /// Sub-rank of each engine.
    subs: Vec<usize>,
    /// Which engines replied `Ready`, in `c.engines` order.
    ready: Vec<bool>,
}

/// What the controller tells the client thread once start-up is over.
pub(crate) struct Ready {
    pub engines: usize,
    pub controller: Thread,
}

/// Runs rank 0's MPI thread until shutdown. Start-up errors go to `ready`.
/// A panic here aborts the job (see the module's "Failures").
///
/// Returns false when the job did not end cleanly (start-up failed, the
/// client failed, or requests were still running after the shutdown grace):
/// rank 0 then exits non-zero too.
pub(crate) fn run(mpi: Mpi, commands: Receiver<Command>, ready: SyncSender<Result<Ready>>) -> bool {
    // Unwinding must not drop `mpi`, since finalizing would wait for engines
    // that wait for this thread: a panic aborts the job from here.
    let ran = panic::catch_unwind(AssertUnwindSafe(|| run_inner(mpi, commands, ready)));
    match ran {
        // Dropping `mpi` here finalizes MPI (after a clean stop).
        Ok((mpi, clean)) => {
            drop(mpi);
            clean
        }
        Err(payload) => controller_panicked(payload.as_ref(), "the controller thread"),
    }
}

/// A panic in the controller's loop, on `thread`: an internal failure that
/// ends the job (pending results could otherwise never complete).
fn controller_panicked(payload: &(dyn std::any::Any + Send), thread: &str) -> ! {
    let _ = std::io::Write::flush(&mut std::io::stdout());
    eprintln!(
        "rankview: internal error: rank 0's controller panicked on {thread} ({}); aborting the job",
        crate::error::panic_message(payload)
    );
    transport::abort_job(1)
}

fn run_inner(
    mut mpi: Mpi,
    commands: Receiver<Command>,
    ready: SyncSender<Result<Ready>>,
) -> (Mpi, bool) {
    let engines = mpi.size() - 1;
    if let Err(e) = check_engines(&mut mpi, engines) {
        let _ = ready.send(Err(e));
        // Let the client thread print why before the engines exit (it drops
        // its command sender when it has).
        while commands.recv().is_ok() {}
        stop_engines(&mut mpi, engines, true);
        return (mpi, false);
    }
    if ready
        .send(Ok(Ready {
            engines,
            controller: std::thread::current(),
        }))
        .is_err()
    {
        stop_engines(&mut mpi, engines, true);
        return (mpi, false);
    }
    let (mut mpi, failed) = serve(mpi, commands, engines);
    stop_engines(&mut mpi, engines, failed);
    (mpi, !failed)
}

/// Waits for every engine's `Hello` and compares binaries.
fn check_engines(mpi: &mut Mpi, engines: usize) -> Result<()> {
    let (binary, registry) = crate::build_id::job_identity();
    let mut seen = vec![false; engines + 1];
    let mut differing = Vec::new();
    let mut count = 0;
    let mut backoff = Backoff::new(Duration::from_millis(5));
    while count < engines {
        let Some((rank, bytes)) = mpi.try_recv() else {
            backoff.snooze();
            continue;
        };
        backoff.reset();
        match read_reply(mpi, rank, &bytes)? {
            Reply::Hello {
                binary: b,
                registry: r,
                ..
            } if rank >= 1 && rank <= engines && !seen[rank] => {
                seen[rank] = true;
                count += 1;
                if b != binary || r != registry {
                    differing.push(rank);
                }
            }
            other => {
                return Err(Error::Protocol(format!(
                    "rank {rank} sent {other:?} before saying hello"
                )))
            }
        }
    }
    if let Some(problem) = crate::registry::registry().problems().first() {
        return Err(Error::BinaryMismatch {
            ranks: vec![0],
            detail: format!("the remote-function registry is unsound: {problem}"),
        });
    }
    differing.sort_unstable();
    if differing.is_empty() {
        Ok(())
    } else {
        Err(Error::BinaryMismatch {
            ranks: differing,
            detail: "executable or remote-function registry differs".into(),
        })
    }
}

/// Everything the serving loop owns. One thread at a time makes a
/// [`pass`](Serving::pass) over it, under the [`LoopShare`] lock: the
/// controller thread, or (when MPI granted `MPI_THREAD_SERIALIZED`) a
/// client thread that has just submitted or is waiting for a result (see
/// [`help`]).
pub(crate) struct Serving {
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

// SAFETY: `Serving` holds the rank's MPI handles (communicators, requests in
// flight), which rsmpi does not mark `Send`. It crosses threads only inside
// the mutex of its `helping::LoopShare`, and only when MPI granted
// `MPI_THREAD_SERIALIZED` (helpers are let in only then), which lets any
// thread make MPI calls as long as no two make them at once: the mutex
// guarantees that, and orders every access to the handles (and to the rest
// of the state) between threads. Without that level only the controller
// thread ever locks it.
unsafe impl Send for Serving {}

/// The serving state, for client threads that may help (see [`helping::help`]).
static SERVING: helping::Published<Serving> = helping::Published::new();

/// The serving loop on the controller thread; returns whether the shutdown
/// is a failed one. Gives `mpi` back when serving is over.
fn serve(mpi: Mpi, commands: Receiver<Command>, engines: usize) -> (Mpi, bool) {
    let serialized = mpi.serialized();
    let shared = Arc::new(LoopShare::new(
        Serving {
            mpi,
            commands,
            inflight: Inflight::new(engines),
            fillings: HashMap::new(),
            balancer: Balancer::new(engines),
            collectives: Collectives {
                groups: Groups::new(),
                pending: HashMap::new(),
                receiving: HashMap::new(),
            },
            draining: false,
            drain_deadline: None,
            ended: None,
        },
        "rank 0's controller".to_string(),
    ));
    SERVING.open(&shared, serialized);
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

impl helping::Loop for Serving {
    fn pass(&mut self, caller: Caller) -> Step {
        self.pass_inner(caller)
    }

    fn ended(&self) -> bool {
        self.ended.is_some()
    }
}

impl Serving {
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
                Ok(Command::Forget { tasks }) => self.balancer.forget(&tasks),
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
        while let Some((rank, bytes)) = mpi.try_recv_thorough(thorough) {
            thorough = false;
            busy = true;
            receive(
                rank,
                &bytes,
                &mut self.inflight,
                &mut self.fillings,
                &mut self.collectives,
                &mut self.balancer,
                mpi,
            );
            if caller == Caller::Helper {
                break;
            }
        }
        self.balancer.tick();
        sync_direct(&mut self.balancer, &self.inflight, &self.collectives);
        busy |= self.balancer.flush(mpi);
        busy |= mpi.progress();
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
        Step::Idle(ceiling)
    }
}

/// How long a clean shutdown waits for requests still running (and
/// callbacks) when the client has returned: `RANKVIEW_SHUTDOWN_GRACE`
/// seconds, 10 by default; a value too large for a `Duration` (or `inf`)
/// means no limit.
fn shutdown_grace() -> Duration {
    std::env::var("RANKVIEW_SHUTDOWN_GRACE")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s >= 0.0)
        .map_or(Duration::from_secs(10), |s| {
            Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
        })
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
    for pending in collectives.pending.values() {
        let waiting: Vec<usize> = pending
            .engines
            .iter()
            .zip(&pending.lent)
            .filter(|(_, lent)| lent.is_none())
            .map(|(&engine, _)| engine)
            .collect();
        eprintln!(
            "rankview: task {} (a gather or reduce) still waited for engines {waiting:?} {grace} s \
             after the client returned; stopping the job",
            pending.task
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

/// Handles one message from an engine.
fn receive(
    rank: usize,
    bytes: &[u8],
    inflight: &mut Inflight,
    fillings: &mut Fillings,
    collectives: &mut Collectives,
    balancer: &mut Balancer,
    mpi: &mut Mpi,
) {
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

/// Decodes a reply from `rank` and receives its attachments. Attachments
/// that do not arrive as announced leave that engine's data messages out of
/// step with its replies: the job ends, saying why.
fn read_reply(mpi: &mut Mpi, rank: usize, bytes: &[u8]) -> Result<Reply> {
    match protocol::read_framed::<Reply>(bytes, |lens| mpi.receive_blobs(rank, lens)) {
        Ok(reply) => reply,
        Err(e) => balance::internal(mpi, &format!("a reply from rank {rank}: {e}")),
    }
}

/// Receives the raw elements a reply from `rank` announced. Always called
/// for such a reply, known task or not: the engine has started sending them
/// and waits until they are taken.
fn receive_data(mpi: &mut Mpi, rank: usize, outcome: &protocol::Outcome) -> Result<Gathered> {
    let protocol::Outcome::Bulk { value, len, shape } = outcome else {
        return Err(Error::Protocol("no raw data announced".into()));
    };
    let kind = value.bulk.unwrap_or(ElemKind::U8);
    let len = usize::try_from(*len)
        .map_err(|_| Error::Protocol(format!("{len} elements do not fit here")))?;
    let mut data = BulkVec::for_receive(kind, len);
    crate::bulk::prefaulting(data.as_bytes_mut(), |bytes| mpi.receive_data(rank, bytes))?;
    Ok(Gathered {
        data,
        value: Some(value.clone()),
        parts: vec![(len, shape.iter().map(|&d| d as usize).collect())],
    })
}

/// Receives the raw elements a reply from `rank` announced straight into
/// the caller's memory, after checking that they fit it (type, length,
/// shape); if they do not, they are taken off the wire into scratch memory
/// and the caller's stays untouched.
fn receive_into(
    mpi: &mut Mpi,
    rank: usize,
    engine: usize,
    outcome: &protocol::Outcome,
    mut filling: Filling,
) -> Result<()> {
    let protocol::Outcome::Bulk { value, len, shape } = outcome else {
        return Err(Error::Protocol("no raw data announced".into()));
    };
    let len = usize::try_from(*len)
        .map_err(|_| Error::Protocol(format!("{len} elements do not fit here")))?;
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let kind = value.bulk.unwrap_or(ElemKind::U8);
    let checked = match &filling.pull {
        Some((name, wanted)) if wanted.fingerprint != value.fingerprint => {
            Err(Error::TypeMismatch {
                engine,
                name: name.clone(),
                expected: wanted.type_name.clone(),
                found: value.type_name.clone(),
            })
        }
        _ => filling.check("pull_into", kind, len, "the value has", || Ok(shape)),
    };
    match (checked, filling.loan.buf_mut()) {
        (Ok(()), Some(buf)) => mpi.receive_data(rank, buf.into_bytes()),
        (checked, _) => {
            let mut scratch = BulkVec::zeroed(kind, len);
            mpi.receive_data(rank, scratch.as_bytes_mut())?;
            Err(checked
                .err()
                .unwrap_or_else(|| Error::Protocol("pull_into: no buffer".into())))
        }
    }
}

/// Sends the same request to every engine in `engines`.
fn send_all(mpi: &mut Mpi, engines: &[usize], request: &Request) -> Result<()> {
    let bytes = Arc::new(protocol::encode(request)?);
    for &engine in engines {
        mpi.send(engine + 1, SendBuf::Shared(bytes.clone()))?;
    }
    Ok(())
}

impl Collectives {
    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.receiving.is_empty()
    }

    /// Gathers and reduces waiting for their lenders that `engine` takes
    /// part in (its execution thread is held by each until it runs).
    fn lending(&self, engine: usize) -> usize {
        self.pending
            .values()
            .filter(|p| p.engines.contains(&engine))
            .count()
    }

    /// Starts a collective now; its failure fails its result.
    fn run(&mut self, c: Collective, mpi: &mut Mpi, inflight: &mut Inflight) {
        let (task, engines, state) = (c.task, c.engines.clone(), c.state.clone());
        if let Err(e) = self.start(c, mpi, inflight) {
            for (index, &engine) in engines.iter().enumerate() {
                inflight.remove(&(engine, task));
                state.fail(index, e.clone());
            }
        }
    }

    fn start(&mut self, c: Collective, mpi: &mut Mpi, inflight: &mut Inflight) -> Result<()> {
        let busy: Vec<u32> = (self.pending.values().map(|p| p.group.id))
            .chain(self.receiving.values().map(|r| r.group.id))
            .collect();
        if let CollectiveKind::Section { name } = &c.kind {
            if !mpi.has_section(name) {
                return Err(Error::Usage(format!(
                    "no MPI section called {name:?}: register it with Launch::mpi_section"
                )));
            }
        }
        let group = self.groups.get(&c.engines, &busy, mpi)?;
        let ranks = group.world_ranks();
        // Sub-rank of each target.
        let subs: Vec<usize> = c
            .engines
            .iter()
            .map(|e| ranks.iter().position(|&r| r == e + 1).unwrap_or(0))
            .collect();
        // Every engine's trigger, each with what that engine needs.
        self.groups.wire(&group, mpi, |mpi, wire| {
            for (k, &engine) in c.engines.iter().enumerate() {
                let request = Request::Collective {
                    task: c.task,
                    group: wire.clone(),
                    op: trigger(&c.kind, k),
                };
                send_all(mpi, &[engine], &request)?;
            }
            Ok(())
        })?;
        let what = c.kind.name();
        let parts = || c.engines.iter().enumerate();
        match c.kind {
            CollectiveKind::Scatter { .. } | CollectiveKind::Broadcast { .. } => {
                for (index, &engine) in parts() {
                    inflight.insert((engine, c.task), (c.state.clone(), index, what));
                }
                if in_two_phases(&c.kind) {
                    let ready = vec![false; c.engines.len()];
                    let receiving = Receiving {
                        group,
                        ranks,
                        subs,
                        ready,
                        c,
                    };
                    self.receiving.insert(receiving.c.task, receiving);
                } else {
                    send_from_root(&c.kind, group.id, &ranks, &subs, mpi)?;
                }
            }
            CollectiveKind::Section { name } => {
                for (index, &engine) in parts() {
                    inflight.insert((engine, c.task), (c.state.clone(), index, what));
                }
                mpi.run_section(&name)?;
            }
            CollectiveKind::Gather { value, into, .. } => {
                self.wait_for_lenders(c.task, c.engines, c.state, group, value, None, into);
            }
            CollectiveKind::Reduce {
                value, op, into, ..
            } => {
                self.wait_for_lenders(c.task, c.engines, c.state, group, value, Some(op), into);
            }
        }
        Ok(())
    }

    /// A gather or reduce whose engines were asked to lend their values now
    /// waits for them (see [`Collectives::lent`]).
    #[allow(clippy::too_many_arguments)]
    fn wait_for_lenders(
        &mut self,
        task: TaskId,
        engines: Arc<[usize]>,
        state: Arc<ResultState>,
        group: GroupSpec,
        value: ValueSpec,
        op: Option<ReduceOp>,
        into: Option<Filling>,
    ) {
        self.pending.insert(
            task,
            Pending {
                task,
                lent: vec![None; engines.len()],
                engines,
                group,
                state,
                value,
                op,
                into,
            },
        );
    }

    /// An engine lent its value for the pending gather or reduce, or has its
    /// buffer ready for the pending scatter or broadcast.
    fn lent(
        &mut self,
        engine: usize,
        task: TaskId,
        len: usize,
        shape: Vec<u64>,
        mpi: &mut Mpi,
        inflight: &mut Inflight,
    ) {
        if let Some(r) = self.receiving.get_mut(&task) {
            if let Some(index) = r.c.engines.iter().position(|&e| e == engine) {
                r.ready[index] = true;
            }
            if r.ready.iter().all(|&ready| ready) {
                if let Some(r) = self.receiving.remove(&task) {
                    go_receive(r, mpi, inflight);
                }
            }
            return;
        }
        let shape = shape.iter().map(|&d| d as usize).collect();
        self.record(engine, task, Ok((len, shape)), mpi);
    }

    /// An engine could not lend its value; false if no gather waits for it.
    fn lend_failed(&mut self, engine: usize, done: protocol::Done, mpi: &mut Mpi) -> bool {
        let task = done.task;
        if !self.pending.contains_key(&task) {
            return false;
        }
        let error = match done.outcome {
            protocol::Outcome::Failed(f) => f.into_error(engine, task),
            other => Error::Protocol(format!("unexpected reply {other:?} to a gather")),
        };
        self.record(engine, task, Err(error), mpi);
        true
    }

    fn record(&mut self, engine: usize, task: TaskId, lent: Result<Contribution>, mpi: &mut Mpi) {
        let Some(pending) = self.pending.get_mut(&task) else {
            return;
        };
        if let Some(index) = pending.engines.iter().position(|&e| e == engine) {
            pending.lent[index] = Some(lent);
        }
        if pending.lent.iter().all(Option::is_some) {
            if let Some(pending) = self.pending.remove(&task) {
                finish(pending, mpi);
            }
        }
    }
}

/// Whether a collective goes in two phases (see "Two phases").
fn in_two_phases(kind: &CollectiveKind) -> bool {
    match kind {
        CollectiveKind::Scatter { value, data, .. }
        | CollectiveKind::Broadcast { value, data, .. } => {
            value.bulk.is_some() && data.buf().as_bytes().len() >= TWO_PHASES_FROM
        }
        _ => false,
    }
}

/// Rank 0's part of a scatter or broadcast: the MPI call.
fn send_from_root(
    kind: &CollectiveKind,
    group: u32,
    ranks: &[usize],
    subs: &[usize],
    mpi: &mut Mpi,
) -> Result<()> {
    match kind {
        CollectiveKind::Scatter { data, counts, .. } => {
            let mut sub_counts = vec![0usize; ranks.len()];
            for (k, &sub) in subs.iter().enumerate() {
                sub_counts[sub] = counts[k];
            }
            mpi.scatter_root(group, ranks, data.buf(), &sub_counts, subs)
        }
        CollectiveKind::Broadcast { data, .. } => mpi.broadcast_root(group, ranks, data.buf()),
        _ => Err(Error::Protocol(format!(
            "{} has no data to send",
            kind.name()
        ))),
    }
}

/// Second phase of a scatter or broadcast: every engine has its buffer
/// ready; tell them to go and send the data. A failure here fails the
/// result (as in [`Collectives::run`]).
fn go_receive(r: Receiving, mpi: &mut Mpi, inflight: &mut Inflight) {
    let go = Request::Collective {
        task: r.c.task,
        group: r.group.known(),
        op: CollectiveOp::Go {
            proceed: true,
            pieces: false,
        },
    };
    let sent = send_all(mpi, &r.c.engines, &go)
        .and_then(|()| send_from_root(&r.c.kind, r.group.id, &r.ranks, &r.subs, mpi));
    if let Err(e) = sent {
        for (index, &engine) in r.c.engines.iter().enumerate() {
            inflight.remove(&(engine, r.c.task));
            r.c.state.fail(index, e.clone());
        }
    }
}

/// What the `k`-th engine of a collective is sent to take part in it.
fn trigger(kind: &CollectiveKind, k: usize) -> CollectiveOp {
    match kind {
        CollectiveKind::Scatter {
            name,
            value,
            counts,
            shapes,
            ..
        } => CollectiveOp::Scatter {
            name: name.clone(),
            value: value.clone(),
            count: counts.get(k).copied().unwrap_or(0) as u64,
            shape: shapes
                .get(k)
                .map(|s| s.iter().map(|&d| d as u64).collect())
                .unwrap_or_default(),
            total: counts.iter().sum::<usize>() as u64,
            ready: in_two_phases(kind),
        },
        CollectiveKind::Broadcast {
            name,
            value,
            data,
            shape,
        } => CollectiveOp::Broadcast {
            name: name.clone(),
            value: value.clone(),
            len: data.buf().len() as u64,
            shape: shape.iter().map(|&d| d as u64).collect(),
            ready: in_two_phases(kind),
        },
        CollectiveKind::Section { name } => CollectiveOp::Section { name: name.clone() },
        CollectiveKind::Gather { name, value, .. } => CollectiveOp::Prepare {
            name: name.clone(),
            value: value.clone(),
            reduce: None,
        },
        CollectiveKind::Reduce {
            name, value, op, ..
        } => CollectiveOp::Prepare {
            name: name.clone(),
            value: value.clone(),
            reduce: Some(*op),
        },
    }
}

/// Second phase of a gather or reduce: run it (or cancel it) and fill the result.
fn finish(p: Pending, mpi: &mut Mpi) {
    let ranks = p.group.world_ranks();
    let mut errors = Vec::new();
    let mut contributions = Vec::new();
    for (index, lent) in p.lent.into_iter().enumerate() {
        match lent {
            Some(Ok(c)) => contributions.push(c),
            Some(Err(e)) => errors.push((index, e)),
            None => errors.push((index, Error::Protocol("no answer".into()))),
        }
    }
    let len = contributions.first().map_or(0, |c| c.0);
    if errors.is_empty() && p.op.is_some() && contributions.iter().any(|c| c.0 != len) {
        let lens: Vec<usize> = contributions.iter().map(|c| c.0).collect();
        errors.push((
            0,
            Error::Usage(format!(
                "reduce needs values of one length on every engine; they hold {lens:?}"
            )),
        ));
    }
    let total: usize = contributions.iter().map(|c| c.0).sum();
    let kind = p.value.bulk.unwrap_or(ElemKind::U8);
    let out_len = if p.op.is_some() { len } else { total };
    let mut into = p.into;
    if errors.is_empty() {
        if let Some(filling) = &mut into {
            if let Err(e) = check_filling(filling, kind, out_len, &contributions, p.op.is_some()) {
                errors.push((0, e));
            }
        }
    }
    let pieces = p.op.is_none() && transport::needs_pieces(total);
    let go = |proceed| Request::Collective {
        task: p.task,
        group: p.group.known(),
        op: CollectiveOp::Go { proceed, pieces },
    };
    if !errors.is_empty() {
        let _ = send_all(mpi, &p.engines, &go(false));
        for index in 0..p.engines.len() {
            match errors.iter().position(|(i, _)| *i == index) {
                Some(at) => p.state.fail(index, errors[at].1.clone()),
                None => p.state.resolve(index, Ok(Payload::Unit)),
            }
        }
        return;
    }
    let subs: Vec<usize> = p
        .engines
        .iter()
        .map(|e| ranks.iter().position(|&r| r == e + 1).unwrap_or(0))
        .collect();
    // Everything that can fail at the root is done before any engine is
    // told to go: once it has been, every engine is inside the collective.
    let mut counts = vec![0usize; ranks.len()];
    for (k, &sub) in subs.iter().enumerate() {
        counts[sub] = contributions[k].0;
    }
    let mut owned = BulkVec::for_receive(kind, if into.is_some() { 0 } else { out_len });
    let outcome = send_all(mpi, &p.engines, &go(true)).and_then(|()| {
        // `check_filling` made sure a caller's buffer is writable.
        let recv = match into.as_mut().and_then(|f| f.loan.buf_mut()) {
            Some(buf) => buf,
            None => owned.as_mut(),
        };
        match p.op {
            None => mpi.gather_root(p.group.id, &ranks, recv, &counts, &subs),
            Some(op) => {
                let own = BulkVec::identity(kind, op, len);
                mpi.reduce_root(p.group.id, &ranks, &own, recv, op)
            }
        }
    });
    // The caller's memory goes back (its `gather_into` returns) only now.
    let filled = into.is_some();
    drop(into);
    match outcome {
        Ok(()) => {
            let first = if filled {
                Payload::Unit
            } else {
                let parts = match p.op {
                    None => contributions,
                    Some(_) => contributions.into_iter().take(1).collect(),
                };
                Payload::Gathered(Gathered {
                    data: owned,
                    value: None,
                    parts,
                })
            };
            p.state.resolve(0, Ok(first));
            for index in 1..p.engines.len() {
                p.state.resolve(index, Ok(Payload::Unit));
            }
        }
        Err(e) => {
            for index in 0..p.engines.len() {
                p.state.fail(index, e.clone());
            }
        }
    }
}

/// Checks that the caller's buffer fits what the engines lent, before any
/// engine is told to go: its element type, its length and (for an array)
/// its shape.
fn check_filling(
    filling: &mut Filling,
    kind: ElemKind,
    len: usize,
    contributions: &[Contribution],
    reduce: bool,
) -> Result<()> {
    let what = if reduce { "reduce_into" } else { "gather_into" };
    filling.check(what, kind, len, "the engines hold", || {
        if reduce {
            Ok(contributions
                .first()
                .map(|c| c.1.clone())
                .unwrap_or_default())
        } else {
            crate::contract::stacked_shape(contributions)
        }
    })
}

/// Tells every engine to stop and waits for their goodbyes.
///
/// A clean stop has two phases (see the engine's `serve`): every engine
/// first says it is quiet (its work done, no steal of its own in flight),
/// and only then are they all told to exit, so that no engine leaves while
/// a peer waits for the answer to a steal. A failed stop is one phase, and
/// aborts the job if engines do not leave within [`FAILED_GRACE`].
fn stop_engines(mpi: &mut Mpi, engines: usize, failed: bool) {
    broadcast_or_abort(mpi, engines, &Request::Shutdown { failed });
    if !failed {
        wait_for_all(mpi, engines, "quiet", CLEAN_GRACE, |r| {
            matches!(r, Reply::Quiet)
        });
        broadcast_or_abort(mpi, engines, &Request::Exit);
    }
    let grace = if failed { FAILED_GRACE } else { CLEAN_GRACE };
    wait_for_all(mpi, engines, "stop", grace, |r| matches!(r, Reply::Goodbye));
    mpi.flush();
}

/// How long engines get to finish a clean stop (their work is done by
/// then: only steals in flight and the goodbyes remain).
const CLEAN_GRACE: Duration = Duration::from_secs(60);

/// Sends `request` to every engine, or aborts the job.
fn broadcast_or_abort(mpi: &mut Mpi, engines: usize, request: &Request) {
    let all: Vec<usize> = (0..engines).collect();
    if send_all(mpi, &all, request).is_err() {
        mpi.abort(1);
    }
}

/// Waits until every engine has sent a reply matching `wanted`; aborts the
/// job after `grace`.
fn wait_for_all(
    mpi: &mut Mpi,
    engines: usize,
    what: &str,
    grace: Duration,
    wanted: impl Fn(&Reply) -> bool,
) {
    let deadline = Instant::now() + grace;
    let mut seen = vec![false; engines + 1];
    let mut remaining = engines;
    let mut backoff = Backoff::new(Duration::from_millis(5));
    while remaining > 0 {
        match mpi.try_recv() {
            Some((rank, bytes)) => {
                backoff.reset();
                // A reply's attachments and raw data are taken too: its
                // engine waits until they are before it finalizes.
                let reply = read_reply(mpi, rank, &bytes);
                if let Ok(Reply::Done(done)) = &reply {
                    if matches!(done.outcome, protocol::Outcome::Bulk { .. }) {
                        let _ = receive_data(mpi, rank, &done.outcome);
                    }
                }
                let matched = reply.is_ok_and(|r| wanted(&r));
                if matched && rank < seen.len() && !seen[rank] {
                    seen[rank] = true;
                    remaining -= 1;
                }
            }
            None => {
                mpi.progress();
                if Instant::now() > deadline {
                    let late: Vec<usize> = (1..seen.len())
                        .filter(|&r| !seen[r])
                        .map(|r| r - 1)
                        .collect();
                    eprintln!(
                        "rankview: engines {late:?} did not {what} in time; aborting the job"
                    );
                    mpi.abort(1);
                }
                backoff.snooze();
            }
        }
    }
}
