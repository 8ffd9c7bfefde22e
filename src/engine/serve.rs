//! The engine's MPI thread: its serving loop ([`serve`]), one pass of which
//! takes the controller's requests and peers' messages, hands jobs to the
//! execution thread, sends what that thread hands back, makes the team
//! communicator a task needs and completes the task's operations on it
//! (see `taskcomm`), steals when idle, and backs off to sleep; and the
//! two-phase clean shutdown.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::bulk::{BufMut, BufRef, ReduceOp};
use crate::capture::{self};
use crate::error::{Error, Result};
use crate::helping::{self, Caller, LoopShare, Step};
use crate::protocol::{self, Peer, Reply, Request, TeamSpec};
use crate::scheduler::Thief;
use crate::transport::{HereStarted, Mpi, SendBuf, Teams};

use super::comm::Comm;
use super::inbox::{Inbox, Occupied};
use super::job::{Ending, ExecOut, Job};
use super::panics::install_panic_hook;

/// The longest an idle engine's MPI thread sleeps between polls while its
/// last work is recent (sporadic use: a request after 100 ms of quiet waits
/// about half of it, bench `w1idle`).
pub(super) const IDLE_POLL: Duration = Duration::from_millis(1);

/// How long "recent" is.
pub(super) const RECENT: Duration = Duration::from_millis(250);

/// The longest sleep once the engine has been idle longer than [`RECENT`].
/// A wake-up costs some 20–30 µs of CPU on the development VM (timers and
/// context switches, MPI's progress step): at this pace an engine with
/// nothing to do stays under 1% of a core (bench `w5`).
pub(super) const LONG_IDLE_POLL: Duration = Duration::from_millis(5);

/// The longest sleep while a task's operation on its team's communicator is
/// in flight (MPI completes it only when polled).
pub(super) const TEAM_POLL: Duration = Duration::from_micros(100);

/// Everything an engine's serving loop owns. One thread at a time makes a
/// pass over it: the MPI thread, or (when MPI granted
/// `MPI_THREAD_SERIALIZED`) the execution thread while it waits for work or
/// has a reply to send (see [`helping::help`]).
pub(crate) struct EngineLoop {
    comm: Comm,
    from_exec: Receiver<ExecOut>,
    /// The execution thread has not finished.
    executing: bool,
    /// This engine has told the controller it is quiet (clean shutdown).
    quiet: bool,
    /// MPI granted `MPI_THREAD_SERIALIZED`: the execution thread makes
    /// passes of this loop (see [`helping`]).
    serialized: bool,
    last_work: Instant,
    ending: Option<Ending>,
}

// SAFETY: `EngineLoop` holds the rank's MPI handles (communicators, requests in
// flight), which rsmpi does not mark `Send`. It crosses threads only inside
// the mutex of its `helping::LoopShare`, and only when MPI granted
// `MPI_THREAD_SERIALIZED` (the execution thread is let in only then), which
// lets any thread make MPI calls as long as no two make them at once: the
// mutex guarantees that, and orders every access to the handles (and to the
// rest of the state) between the two threads. Without that level only the
// MPI thread ever locks it.
unsafe impl Send for EngineLoop {}

/// This engine's serving state, for its execution thread (see [`helping::help`]).
static ENGINE_LOOP: helping::Published<EngineLoop> = helping::Published::new();

/// Runs an engine's MPI thread until shutdown, and gives `mpi` back: on a
/// clean ending the caller finalizes MPI, on a broken one it aborts the job
/// (see `launch`).
///
/// A clean shutdown has two phases, so that no steal is left unanswered: on
/// `Shutdown` the engine stops stealing, closes its inbox, and once the
/// execution thread has finished and its own steal (if any) is answered it
/// tells the controller it is `Quiet`; it keeps answering peers' steals
/// until the controller, having heard every engine, sends `Exit`.
pub(crate) fn serve(mpi: Mpi, inbox: Arc<Inbox>, from_exec: Receiver<ExecOut>) -> (Mpi, Ending) {
    install_panic_hook();
    let me = mpi.rank().saturating_sub(1);
    let engines = mpi.size().saturating_sub(1);
    let serialized = mpi.serialized();
    let mut comm = Comm {
        mpi,
        inbox,
        closing: false,
        prepared: None,
        receiving: HashMap::new(),
        reduces: HashMap::new(),
        received: 0,
        thief: Thief::new(me, engines),
        groups: Default::default(),
        teams: Teams::new(
            me,
            crate::taskcomm::install(me, run_team_call, all_reduce_here),
        ),
    };
    let (binary, registry) = crate::build_id::job_identity();
    let hello = Reply::Hello {
        binary,
        registry,
        pid: std::process::id(),
        host: hostname(),
    };
    if let Err(e) = comm.send(hello) {
        return (comm.mpi, Ending::Broken(e));
    }
    let shared = Arc::new(LoopShare::new(
        EngineLoop {
            comm,
            from_exec,
            executing: true,
            quiet: false,
            serialized,
            last_work: Instant::now(),
            ending: None,
        },
        format!("engine {me}: the MPI loop"),
    ));
    ENGINE_LOOP.open(&shared, serialized);
    shared.run(IDLE_POLL);
    match shared.take() {
        Some(serving) => {
            let ending = serving
                .ending
                .unwrap_or_else(|| Ending::Broken(Error::Protocol("the engine loop ended".into())));
            (serving.comm.mpi, ending)
        }
        None => {
            capture::report(
                "rankview: internal error: an engine lost its MPI state; aborting the job",
            );
            crate::transport::abort_job(1)
        }
    }
}

/// Runs a task's operation on its own thread, under this engine's loop lock
/// (`MPI_THREAD_SERIALIZED` only, see [`Teams::run`]); the call comes back
/// when that is not possible now, for the port's channel.
fn run_team_call(
    call: crate::taskcomm::TeamCall,
) -> std::result::Result<(), crate::taskcomm::TeamCall> {
    let mut call = Some(call);
    ENGINE_LOOP.try_with(|serving| {
        if let Some(call) = call.take() {
            serving.comm.teams.run(call);
        }
    });
    call.map_or(Ok(()), Err)
}

/// Runs a task's small allreduce on its own thread from start to end
/// (`MPI_THREAD_SERIALIZED` only, see [`Teams::start_here`]): started and
/// first tested under this engine's loop lock, then tested under the lock
/// again between naps until it completes, the MPI thread serving between
/// the tests. `None` when it is not one for the task's thread or cannot
/// start now (the loop busy or ended): the caller hands it over.
fn all_reduce_here(
    team: &Arc<TeamSpec>,
    send: BufRef<'_>,
    recv: BufMut<'_>,
    op: ReduceOp,
) -> Option<Result<()>> {
    // SAFETY: `send` and `recv` borrow the task's buffers for this whole
    // call, which returns only once the allreduce has completed: the loop
    // below leaves only when `test_here` says so, and cannot unwind (a
    // panic inside `try_with` aborts the job; the backoff does not panic).
    // If the engine's loop ends first, the task's thread naps here until
    // the process ends, its buffers still borrowed.
    let started = ENGINE_LOOP
        .try_with(|serving| unsafe { serving.comm.teams.start_here(team, send, recv, op) })?;
    let mut here = match started {
        Ok(HereStarted::Done) => return Some(Ok(())),
        Ok(HereStarted::NotHere) => return None,
        Ok(HereStarted::InFlight(here)) => here,
        Err(e) => return Some(Err(e)),
    };
    let mut backoff = Backoff::new(HERE_NAP);
    loop {
        backoff.snooze();
        if ENGINE_LOOP.try_with(|serving| serving.comm.teams.test_here(&mut here)) == Some(true) {
            return Some(Ok(()));
        }
    }
}

/// The longest nap of a task's thread between the tests of its small
/// allreduce in flight.
const HERE_NAP: Duration = Duration::from_millis(1);

impl helping::Loop for EngineLoop {
    fn pass(&mut self, caller: Caller) -> Step {
        match self.pass_inner(caller) {
            Ok(step) => step,
            Err(ending) => {
                self.ending = Some(ending);
                Step::Ended
            }
        }
    }

    fn ended(&self) -> bool {
        self.ending.is_some()
    }

    /// While a task of a team runs, the lock is busy because the task tests
    /// its operation under it (`all_reduce_here`): the MPI thread naps as
    /// its own pass would have it, rather than spinning and yielding on the
    /// core the task needs (Open MPI yields inside its calls on
    /// oversubscribed cores, so the two threads would take turns every few
    /// microseconds; bench `w12`).
    fn contended() -> Step {
        if crate::taskcomm::in_team_task() {
            Step::Nap(IDLE_POLL)
        } else {
            Step::Idle(Duration::from_millis(1))
        }
    }
}

impl EngineLoop {
    /// One pass: forwards the execution thread's replies, receives every
    /// message (requests, peers' steals; one when a helper makes the pass),
    /// reports progress, steals when idle, completes sends. `Err` ends the
    /// loop.
    fn pass_inner(&mut self, caller: Caller) -> std::result::Result<Step, Ending> {
        let comm = &mut self.comm;
        // A task's operation first: the task waits for it (and may be making
        // this pass), and its peers wait until it starts.
        let mut busy = comm.teams.poll();
        // Replies first: the execution thread that has just queued one makes
        // this pass to send it, and a probe before it would only delay it.
        while self.executing {
            match self.from_exec.try_recv() {
                Ok(ExecOut::Reply(reply)) => {
                    busy = true;
                    comm.mpi
                        .send_framed(0, &reply.head, &reply.blobs)
                        .map_err(Ending::Broken)?;
                }
                Ok(ExecOut::Data {
                    reply,
                    data,
                    resume,
                }) => {
                    busy = true;
                    let sent = comm.mpi.send(0, SendBuf::Owned(reply));
                    sent.and_then(|()| {
                        comm.mpi.send_data(
                            0,
                            SendBuf::Lent {
                                data,
                                _resume: resume,
                            },
                        )
                    })
                    .map_err(Ending::Broken)?;
                }
                Ok(ExecOut::Lent { task, lent, resume }) => {
                    busy = true;
                    comm.lent(task, lent, resume).map_err(Ending::Broken)?;
                }
                Ok(ExecOut::Group(out)) => {
                    busy = true;
                    comm.group_out(out).map_err(Ending::Broken)?;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !comm.closing {
                        return Err(Ending::Broken(Error::Usage(
                            "the execution thread stopped".into(),
                        )));
                    }
                    self.executing = false;
                }
            }
        }
        // A thorough first poll after a sleep while the last work is recent
        // (latency); a single probe after a long idle spell (each empty
        // probe is a progress step, in which Open MPI yields the core when
        // oversubscribed: CPU).
        let mut thorough = caller.slept() && self.last_work.elapsed() < RECENT;
        while let Some((source, bytes)) = comm.mpi.try_recv_thorough(thorough) {
            thorough = false;
            busy = true;
            if source != 0 {
                comm.peer(source, &bytes).map_err(Ending::Broken)?;
                if caller == Caller::Helper {
                    break;
                }
                continue;
            }
            comm.received += 1;
            // The attachments follow the head from rank 0; failing to
            // receive them leaves this engine out of step: end the job.
            let request =
                protocol::read_framed::<Request>(&bytes, |lens| comm.mpi.receive_blobs(0, lens))
                    .map_err(Ending::Broken)?;
            match request {
                Ok(Request::Shutdown { failed: true }) => {
                    say_goodbye(&mut comm.mpi);
                    return Err(Ending::ClientFailed);
                }
                // Close the inbox; keep forwarding the execution thread's
                // replies until it has finished.
                Ok(Request::Shutdown { failed: false }) => {
                    comm.closing = true;
                    comm.inbox.close();
                }
                Ok(Request::Exit) => {
                    say_goodbye(&mut comm.mpi);
                    return Err(Ending::Clean);
                }
                // Rank 0 may already be inside the collective's MPI call:
                // failing here would leave it waiting forever, so an
                // engine that cannot take part ends the job instead.
                Ok(Request::Collective { task, group, op }) => {
                    if let Err(e) = comm.collective(task, group, op) {
                        return Err(Ending::Broken(Error::Protocol(format!(
                            "cannot take part in collective task {task}: {e}"
                        ))));
                    }
                }
                Ok(Request::Tasks {
                    loads,
                    fence,
                    tasks,
                }) => comm.tasks(&loads, fence, tasks),
                Ok(Request::Abort { tasks }) => {
                    let removed = comm.inbox.abort(&tasks);
                    if !removed.is_empty() {
                        comm.send(Reply::Aborted { tasks: removed })
                            .map_err(Ending::Broken)?;
                    }
                }
                // The team's communicator is made as its first task arrives,
                // at the same point of every member's stream: the members
                // that wait here for the others are never long.
                Ok(request) => {
                    if let Request::Apply {
                        team: Some(team), ..
                    } = &request
                    {
                        if team.communicator {
                            comm.teams.ensure(&comm.mpi, team).map_err(Ending::Broken)?;
                        }
                    }
                    comm.inbox.push(Job::Request(request))
                }
                Err(e) => capture::report(&format!("rankview: {e}")),
            }
            // Stolen tasks fenced at this message may start now, and steals
            // parked until it are answered.
            for (thief, given, left) in comm.inbox.received(comm.received) {
                comm.give(thief, given, left).map_err(Ending::Broken)?;
            }
            if caller == Caller::Helper {
                break;
            }
        }
        busy |= comm.report_progress().map_err(Ending::Broken)?;
        let occupied = comm.inbox.occupied();
        if !comm.closing {
            if let Some(steal) = comm.thief.want(occupied == Occupied::Idle) {
                busy = true;
                let max = u32::try_from(steal.max).unwrap_or(u32::MAX);
                let seen = steal.seen;
                comm.send_to(steal.victim + 1, Peer::Steal { max, seen })
                    .map_err(Ending::Broken)?;
            }
        } else if !self.executing && !self.quiet && comm.thief.in_flight().is_none() {
            self.quiet = true;
            comm.send(Reply::Quiet).map_err(Ending::Broken)?;
        }
        busy |= comm.mpi.progress();
        busy |= comm.teams.poll();
        comm.check_group_wait();
        if busy {
            self.last_work = Instant::now();
            return Ok(Step::Busy);
        }
        // A task in a collective needs this core, and so do its peers on
        // theirs: spinning or yielding here would stall the whole team
        // (bench `w12`). The task wakes this thread when it hands over an
        // operation.
        if crate::taskcomm::in_team_task() {
            return Ok(Step::Nap(if comm.teams.active() {
                TEAM_POLL
            } else {
                IDLE_POLL
            }));
        }
        // The execution thread runs load-balanced tasks and, under
        // `MPI_THREAD_SERIALIZED`, makes this loop's passes itself when it
        // has replies to report or runs out of tasks (`Inbox::task_done`,
        // `Inbox::next`): with nothing else in flight, nothing here is
        // urgent, and spinning or yielding would trade the core with the
        // task (bench `metg`). A peer's steal waits at most an eighth of
        // the time this loop has been idle, as it did once the yielding
        // was over.
        if occupied == Occupied::Tasks && self.serialized && comm.calm() {
            return Ok(Step::Doze(IDLE_POLL));
        }
        Ok(Step::Idle(if comm.teams.active() {
            TEAM_POLL
        } else if self.last_work.elapsed() < RECENT {
            IDLE_POLL
        } else {
            LONG_IDLE_POLL
        }))
    }
}

pub(super) fn say_goodbye(mpi: &mut Mpi) {
    if let Ok(bytes) = protocol::encode(&Reply::Goodbye) {
        let _ = mpi.send(0, SendBuf::Owned(bytes));
    }
    mpi.flush();
}

/// The host name, for the hello message and status reports.
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}
