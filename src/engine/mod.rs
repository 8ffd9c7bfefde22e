//! The engine: what every rank except rank 0 runs.
//!
//! Two threads. The MPI thread ([`serve`]) receives requests from the
//! controller, hands them to the execution thread through the [`Inbox`] in
//! order, runs this engine's side of collectives, answers and makes steals
//! of load-balanced tasks (engine to engine), and sends replies back; it
//! stays responsive while a long task runs, and backs off to sleep when
//! idle. The execution thread ([`execute`]) owns the namespace, runs remote
//! functions (catching panics), captures their output, and encodes replies.
//! Placement decisions are never made here: which tasks go where, and whom
//! to steal from, is the scheduler's (`src/scheduler/`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Once};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime};

use crate::bulk::{self, BufRef, BulkVec, ElemKind, Lent, ReduceOp};
use crate::capture::{self, Capture};
use crate::error::{Error, Result};
use crate::helping::{self, Caller, LoopShare, Step};
use crate::namespace::{self, Stored};
use crate::protocol::{
    self, Blobs, CollectiveOp, Done, Each, Failure, Framed, GroupSpec, Outcome, Packed, Peer,
    Reply, Request, TaskId, Typed, ValueSpec, WireArg, WireTask, Work,
};
use crate::registry::{registry, RemoteEntry};
use crate::remote::ArgReader;
use crate::scheduler::{EngineId, Fence, Queued, Thief};
use crate::transport::{Mpi, Receive, SendBuf};

mod inbox;

pub(crate) use inbox::{Inbox, Next};

/// The longest an idle engine's MPI thread sleeps between polls while its
/// last work is recent (sporadic use: a request after 100 ms of quiet waits
/// about half of it, bench `w1idle`).
const IDLE_POLL: Duration = Duration::from_millis(1);
/// How long "recent" is.
const RECENT: Duration = Duration::from_millis(250);
/// The longest sleep once the engine has been idle longer than [`RECENT`].
/// A wake-up costs some 20–30 µs of CPU on the development VM (timers and
/// context switches, MPI's progress step): at this pace an engine with
/// nothing to do stays under 1% of a core (bench `w5`).
const LONG_IDLE_POLL: Duration = Duration::from_millis(5);

/// How an engine's MPI thread ended.
pub(crate) enum Ending {
    /// Clean shutdown: the execution thread has finished.
    Clean,
    /// The client failed: the process must exit non-zero now.
    ClientFailed,
    /// The engine could not serve.
    Broken(Error),
}

/// Work for the execution thread, in arrival order.
pub(crate) enum Job {
    /// A request from the controller.
    Request(Request),
    /// Store a value that arrived by a collective.
    Store {
        task: TaskId,
        name: String,
        value: Incoming,
    },
    /// Give the buffer of `name` back for a scatter or broadcast about to
    /// replace it with a value of the same type and shape (see
    /// [`Comm::recycled`]); `None` if it cannot be reused.
    Recycle {
        name: String,
        fingerprint: u64,
        shape: Vec<usize>,
        reply: Sender<Option<BulkVec>>,
    },
    /// Lend a value to the MPI thread for a gather or reduce.
    Lend {
        task: TaskId,
        name: String,
        value: ValueSpec,
    },
}

impl Job {
    /// The task of a direct-view request that may still be aborted (one
    /// that only this engine runs); `None` for collectives' jobs.
    pub(crate) fn abortable(&self) -> Option<TaskId> {
        match self {
            Job::Request(
                Request::Apply { task, .. }
                | Request::Map { task, .. }
                | Request::Push { task, .. }
                | Request::Pull { task, .. }
                | Request::Keys { task }
                | Request::Clear { task },
            ) => Some(*task),
            _ => None,
        }
    }
}

/// A value that arrived by a collective.
pub(crate) enum Incoming {
    Decoded(Arc<dyn Stored>),
    Encoded(Typed),
    /// Still to arrive: the MPI thread sends it (or why it cannot be
    /// stored) once its two-phase scatter or broadcast has run, and drops
    /// the sender if it never runs. Queued at the trigger, so that the
    /// requests after it in the stream see the new value.
    Later(Receiver<Result<Incoming>>),
}

/// What the execution thread hands back to the MPI thread.
pub(crate) enum ExecOut {
    /// An encoded reply for the controller, with its attachments.
    Reply(Framed),
    /// A load-balanced task started.
    Started(TaskId),
    /// A load-balanced task finished (sent with others in one `Progress`).
    Finished(Done),
    /// An encoded reply announcing raw data, and the lent value whose
    /// elements are that data. The execution thread waits until `resume` is
    /// dropped (the data has been sent).
    Data {
        reply: Vec<u8>,
        data: Lent,
        resume: Sender<()>,
    },
    /// A lent value (or why it cannot be lent). The execution thread waits
    /// until `resume` is dropped.
    Lent {
        task: TaskId,
        lent: Result<Lending>,
        resume: Sender<()>,
    },
}

/// A value lent for a gather or reduce.
pub(crate) enum Lending {
    Bulk(Lent),
    Bytes(Arc<Vec<u8>>),
}

impl Lending {
    fn buf(&self) -> Option<BufRef<'_>> {
        match self {
            Lending::Bulk(lent) => lent.buf(),
            Lending::Bytes(bytes) => Some(BufRef::U8(bytes)),
        }
    }

    fn shape(&self) -> Vec<u64> {
        match self {
            Lending::Bulk(lent) => lent.shape.iter().map(|&d| d as u64).collect(),
            Lending::Bytes(_) => Vec::new(),
        }
    }
}

/// A gather or reduce this engine has prepared and waits to run.
struct Prepared {
    task: TaskId,
    group: GroupSpec,
    lending: Lending,
    reduce: Option<ReduceOp>,
    _resume: Sender<()>,
}

/// A scatter or broadcast this engine has its buffer ready for, waiting
/// for the controller's `Go` (see the controller's "Two phases").
struct Receiving {
    task: TaskId,
    group: GroupSpec,
    how: Receive,
    name: String,
    value: ValueSpec,
    shape: Vec<u64>,
    buf: BulkVec,
    /// Where the value goes once received, when its store is already queued.
    later: Option<Sender<Result<Incoming>>>,
}

/// The MPI thread's state.
pub(crate) struct Comm {
    mpi: Mpi,
    inbox: Arc<Inbox>,
    /// A clean shutdown has closed the inbox.
    closing: bool,
    prepared: Option<Prepared>,
    /// Two-phase scatters and broadcasts waiting for their `Go` (several
    /// views may have one each).
    receiving: HashMap<TaskId, Receiving>,
    /// Reduce ops of `Prepare` requests forwarded to the execution thread.
    reduces: HashMap<TaskId, (GroupSpec, Option<ReduceOp>)>,
    /// Messages received from the controller (the stream fence's count).
    received: u64,
    /// Whom to steal from.
    thief: Thief,
    /// Load-balanced tasks started and finished since the last `Progress`.
    started: Vec<TaskId>,
    finished: Vec<Done>,
}

/// Everything an engine's serving loop owns. One thread at a time makes a
/// pass over it: the MPI thread, or (when MPI granted
/// `MPI_THREAD_SERIALIZED`) the execution thread while it waits for work or
/// has a reply to send (see [`helping::help`]).
pub(crate) struct Serving {
    comm: Comm,
    from_exec: Receiver<ExecOut>,
    /// The execution thread has not finished.
    executing: bool,
    /// This engine has told the controller it is quiet (clean shutdown).
    quiet: bool,
    last_work: Instant,
    ending: Option<Ending>,
}

// SAFETY: `Serving` holds the rank's MPI handles (communicators, requests in
// flight), which rsmpi does not mark `Send`. It crosses threads only inside
// the mutex of its `helping::LoopShare`, and only when MPI granted
// `MPI_THREAD_SERIALIZED` (the execution thread is let in only then), which
// lets any thread make MPI calls as long as no two make them at once: the
// mutex guarantees that, and orders every access to the handles (and to the
// rest of the state) between the two threads. Without that level only the
// MPI thread ever locks it.
unsafe impl Send for Serving {}

/// This engine's serving state, for its execution thread (see [`helping::help`]).
static SERVING: helping::Published<Serving> = helping::Published::new();

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
        started: Vec::new(),
        finished: Vec::new(),
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
        Serving {
            comm,
            from_exec,
            executing: true,
            quiet: false,
            last_work: Instant::now(),
            ending: None,
        },
        format!("engine {me}: the MPI loop"),
    ));
    SERVING.open(&shared, serialized);
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

impl helping::Loop for Serving {
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
}

impl Serving {
    /// One pass: forwards the execution thread's replies, receives every
    /// message (requests, peers' steals; one when a helper makes the pass),
    /// reports progress, steals when idle, completes sends. `Err` ends the
    /// loop.
    fn pass_inner(&mut self, caller: Caller) -> std::result::Result<Step, Ending> {
        let comm = &mut self.comm;
        let mut busy = false;
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
                Ok(ExecOut::Started(task)) => {
                    busy = true;
                    comm.started.push(task);
                }
                Ok(ExecOut::Finished(done)) => {
                    busy = true;
                    comm.finished.push(done);
                }
                Ok(ExecOut::Lent { task, lent, resume }) => {
                    busy = true;
                    comm.lent(task, lent, resume).map_err(Ending::Broken)?;
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
                Ok(request) => comm.inbox.push(Job::Request(request)),
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
        comm.report_progress().map_err(Ending::Broken)?;
        if !comm.closing {
            if let Some(steal) = comm.thief.want(comm.inbox.idle()) {
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
        if busy {
            self.last_work = Instant::now();
            return Ok(Step::Busy);
        }
        Ok(Step::Idle(if self.last_work.elapsed() < RECENT {
            IDLE_POLL
        } else {
            LONG_IDLE_POLL
        }))
    }
}

impl Comm {
    fn send(&mut self, reply: Reply) -> Result<()> {
        self.send_to(0, reply)
    }

    fn send_to<M: serde::Serialize + Blobs>(&mut self, rank: usize, mut message: M) -> Result<()> {
        let framed = protocol::encode_framed(&mut message)?;
        self.mpi.send_framed(rank, &framed.head, &framed.blobs)
    }

    /// Queues load-balanced tasks from the controller, and takes its load
    /// figures (alone, without tasks, when they changed while this engine
    /// was idle).
    fn tasks(&mut self, loads: &[u32], fence: Vec<u64>, tasks: Vec<WireTask>) {
        let fence = Fence::new(fence);
        self.thief.update(loads, &fence);
        if tasks.is_empty() {
            return;
        }
        let queued = tasks
            .into_iter()
            .map(|t| t.into_queued(fence.clone(), None))
            .collect();
        self.inbox.add(queued);
    }

    /// A message from another engine: a steal request or its answer.
    fn peer(&mut self, source: usize, bytes: &[u8]) -> Result<()> {
        let peer = source - 1;
        let message =
            protocol::read_framed::<Peer>(bytes, |lens| self.mpi.receive_blobs(source, lens))?;
        match message {
            // Answered now, or once this engine has received what the
            // thief's estimate counted on (`Inbox::received` then gives it).
            Ok(Peer::Steal { max, seen }) => match self.inbox.steal(max as usize, peer, seen) {
                Some((given, left)) => self.give(peer, given, left),
                None => Ok(()),
            },
            Ok(Peer::Give { tasks, left }) => {
                self.thief.answered(peer, left);
                if tasks.is_empty() {
                    return Ok(());
                }
                // The controller hears of the steal before anything else
                // this engine says about these tasks.
                let notice = Reply::Stolen {
                    victim: u32::try_from(peer).unwrap_or(u32::MAX),
                    tasks: tasks.iter().map(|(t, _)| (t.work.task(), t.hops)).collect(),
                };
                self.send(notice)?;
                let queued = tasks
                    .into_iter()
                    .map(|(t, fence)| t.into_queued(Fence::new(fence), Some(peer)))
                    .collect();
                self.inbox.add(queued);
                Ok(())
            }
            Err(e) => {
                capture::report(&format!("rankview: from rank {source}: {e}"));
                Ok(())
            }
        }
    }

    /// Answers a steal by `thief`: the tasks given (maybe none) and its
    /// share left.
    fn give(&mut self, thief: EngineId, given: Vec<Queued<Work>>, left: usize) -> Result<()> {
        let tasks = given
            .into_iter()
            .map(|q| {
                let fence = q.fence.counts();
                (WireTask::from_queued(q), fence)
            })
            .collect();
        let left = u32::try_from(left).unwrap_or(u32::MAX);
        self.send_to(thief + 1, Peer::Give { tasks, left })
    }

    /// Sends what the execution thread started and finished since the last
    /// call, in one message.
    fn report_progress(&mut self) -> Result<()> {
        if self.started.is_empty() && self.finished.is_empty() {
            return Ok(());
        }
        let done = std::mem::take(&mut self.finished);
        // The execution thread runs one task at a time: of those started,
        // only the last one can still be running.
        let running = self.started.pop();
        self.started.clear();
        let started = running
            .filter(|t| done.last().map_or(true, |d| d.task != *t))
            .into_iter()
            .collect();
        self.send(Reply::Progress { started, done })
    }

    /// Reports a failed request to the controller.
    fn fail(&mut self, task: TaskId, error: Error) -> Result<()> {
        let now = now_us();
        let outcome = Outcome::Failed(Failure::from_error(error));
        self.send(Reply::Done(quiet_done(task, now, now, outcome)))
    }

    /// Takes part in a collective. The first message about a group carries
    /// its ranks and creates its sub-communicator, as rank 0 does when it
    /// sends it (see the controller's "Message ordering").
    fn collective(&mut self, task: TaskId, group: GroupSpec, op: CollectiveOp) -> Result<()> {
        let size = |n: u64| {
            usize::try_from(n).map_err(|_| Error::Protocol(format!("{n} elements do not fit here")))
        };
        let ranks = group.world_ranks();
        if !ranks.is_empty() {
            self.mpi.ensure_group(group.id, &ranks)?;
        }
        match op {
            CollectiveOp::Scatter {
                name,
                value,
                count,
                shape,
                total,
                ready,
            } => {
                let how = Receive::Scatter {
                    total: size(total)?,
                };
                let r = self.receiving(task, group, how, name, value, size(count)?, shape);
                self.receive(r, ready)
            }
            CollectiveOp::Broadcast {
                name,
                value,
                len,
                shape,
                ready,
            } => {
                let r = self.receiving(
                    task,
                    group,
                    Receive::Broadcast,
                    name,
                    value,
                    size(len)?,
                    shape,
                );
                self.receive(r, ready)
            }
            CollectiveOp::Prepare {
                name,
                value,
                reduce,
            } => {
                self.mpi.ensure_group(group.id, &ranks)?;
                self.reduces.insert(task, (group, reduce));
                self.inbox.push(Job::Lend { task, name, value });
                Ok(())
            }
            CollectiveOp::Section { name } => {
                let started_us = now_us();
                self.mpi.run_section(&name)?;
                let completed_us = now_us();
                self.send(Reply::Done(quiet_done(
                    task,
                    started_us,
                    completed_us,
                    Outcome::Unit,
                )))
            }
            CollectiveOp::Free => {
                self.mpi.free_group(group.id);
                Ok(())
            }
            CollectiveOp::Go { proceed, pieces } => {
                if let Some(receiving) = self.receiving.remove(&task) {
                    return match proceed {
                        true => self.receive(receiving, false),
                        false => Ok(()),
                    };
                }
                let Some(prepared) = self.prepared.take() else {
                    return Ok(());
                };
                if prepared.task != task {
                    return Err(Error::Protocol(format!(
                        "go for task {task} while task {} is prepared",
                        prepared.task
                    )));
                }
                if proceed {
                    let ranks = prepared.group.world_ranks();
                    let buf = prepared
                        .lending
                        .buf()
                        .ok_or_else(|| Error::Protocol("lent value lost its buffer".into()))?;
                    match prepared.reduce {
                        Some(op) => self.mpi.reduce_send(prepared.group.id, &ranks, buf, op)?,
                        None => self
                            .mpi
                            .gather_send(prepared.group.id, &ranks, buf, pieces)?,
                    }
                }
                // Dropping `prepared` resumes the execution thread.
                Ok(())
            }
        }
    }

    /// Receives a scatter's or broadcast's elements into `r.buf` and has
    /// them stored; or, when `ready`, queues their store (so that what
    /// follows in the stream sees them), keeps the buffer and tells the
    /// controller it is ready: the receive then runs on its `Go`.
    fn receive(&mut self, mut r: Receiving, ready: bool) -> Result<()> {
        if ready {
            let (later, value) = std::sync::mpsc::channel();
            self.inbox.push(Job::Store {
                task: r.task,
                name: r.name.clone(),
                value: Incoming::Later(value),
            });
            r.later = Some(later);
            let (task, len) = (r.task, r.buf.len() as u64);
            let shape = r.shape.clone();
            self.receiving.insert(task, r);
            return self.send(Reply::Ready { task, len, shape });
        }
        self.mpi
            .receive(r.group.id, &r.group.world_ranks(), r.how, &mut r.buf)?;
        // The collective is over: a value that cannot be stored fails the
        // task, not the engine.
        let incoming = incoming(r.value, r.buf, r.shape);
        match (r.later, incoming) {
            (Some(later), incoming) => {
                let _ = later.send(incoming);
                Ok(())
            }
            (None, Ok(value)) => {
                self.inbox.push(Job::Store {
                    task: r.task,
                    name: r.name,
                    value,
                });
                Ok(())
            }
            (None, Err(e)) => self.fail(r.task, e),
        }
    }

    /// A scatter or broadcast about to receive `count` elements of `name`,
    /// into the old value's memory if it can be reused
    /// ([`recycled`](Comm::recycled)), else into fresh memory.
    #[allow(clippy::too_many_arguments)]
    fn receiving(
        &mut self,
        task: TaskId,
        group: GroupSpec,
        how: Receive,
        name: String,
        value: ValueSpec,
        count: usize,
        shape: Vec<u64>,
    ) -> Receiving {
        let kind = value.bulk.unwrap_or(ElemKind::U8);
        let buf = self
            .recycled(&name, &value, count, &shape)
            .unwrap_or_else(|| BulkVec::for_receive(kind, count));
        Receiving {
            task,
            group,
            how,
            name,
            value,
            shape,
            buf,
            later: None,
        }
    }

    /// The memory of the value `name` that a scatter or broadcast is about
    /// to replace, when it can receive the new one: a numeric value of the
    /// same type and shape that nothing holds, with the execution thread
    /// idle (nothing queued or running that could still read the old value,
    /// which is replaced in stream order anyway). Otherwise `None`: the new
    /// value gets fresh memory and the old one stays until it is replaced.
    fn recycled(
        &mut self,
        name: &str,
        value: &ValueSpec,
        count: usize,
        shape: &[u64],
    ) -> Option<BulkVec> {
        let kind = value.bulk?;
        if !self.inbox.idle() {
            return None;
        }
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let buf = if ON_EXECUTION_THREAD.with(|on| on.get()) {
            // This pass runs on the (idle) execution thread itself.
            recycle(name, value.fingerprint, &shape)?
        } else {
            let (reply, recycled) = std::sync::mpsc::channel();
            self.inbox.push(Job::Recycle {
                name: name.to_string(),
                fingerprint: value.fingerprint,
                shape,
                reply,
            });
            recycled.recv().ok().flatten()?
        };
        (buf.len() == count && buf.as_ref().kind() == kind).then_some(buf)
    }

    /// The execution thread lent a value: tell the controller.
    fn lent(&mut self, task: TaskId, lent: Result<Lending>, resume: Sender<()>) -> Result<()> {
        let Some((group, reduce)) = self.reduces.remove(&task) else {
            return Err(Error::Protocol(format!(
                "lent value for unknown task {task}"
            )));
        };
        match lent {
            Ok(lending) => {
                let len = lending.buf().map(|b| b.len()).unwrap_or(0) as u64;
                let shape = lending.shape();
                self.prepared = Some(Prepared {
                    task,
                    group,
                    lending,
                    reduce,
                    _resume: resume,
                });
                self.send(Reply::Ready { task, len, shape })
            }
            Err(e) => {
                drop(resume);
                self.fail(task, e)
            }
        }
    }
}

/// The end of a request that ran no user code (a failure before it ran, a
/// store, an MPI section): no output, never stolen.
fn quiet_done(task: TaskId, started_us: u64, completed_us: u64, outcome: Outcome) -> Done {
    Done {
        task,
        started_us,
        completed_us,
        stdout: String::new(),
        stderr: String::new(),
        hops: 0,
        outcome,
    }
}

fn say_goodbye(mpi: &mut Mpi) {
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

thread_local! {
    /// True on an engine's execution thread (which owns the namespace).
    static ON_EXECUTION_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs the execution thread (the engine's main thread) until the MPI thread
/// closes the inbox.
pub(crate) fn execute(engine: usize, inbox: &Inbox, out: Sender<ExecOut>, comm: Thread) {
    ON_EXECUTION_THREAD.with(|on| on.set(true));
    namespace::install(engine);
    install_panic_hook();
    let mut capture = if std::env::var_os("RANKVIEW_NO_CAPTURE").is_some() {
        None
    } else {
        match Capture::start() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("rankview: engine {engine}: {e}; output will not be captured");
                None
            }
        }
    };
    while let Some(next) = inbox.next() {
        let job = match next {
            Next::Job(job) => job,
            Next::Task(queued) => {
                let went = run_task(queued, &mut capture, &out);
                inbox.finished(true);
                if !went {
                    break;
                }
                comm.unpark();
                continue;
            }
        };
        let went = run_job(job, &mut capture, &out, &comm);
        inbox.finished(false);
        if !went {
            break;
        }
    }
    if let Some(capture) = capture {
        capture.stop();
    }
}

/// Runs one load-balanced task and hands its outcome to the MPI thread;
/// false when that thread is gone.
fn run_task(queued: Queued<Work>, capture: &mut Option<Capture>, out: &Sender<ExecOut>) -> bool {
    if out.send(ExecOut::Started(queued.task)).is_err() {
        return false;
    }
    let done = run_work(queued.payload, queued.hops, capture);
    out.send(ExecOut::Finished(done)).is_ok()
}

/// Runs one load-balanced task on this thread: on an engine's execution
/// thread, or on a [`LocalPool`](crate::LocalPool) thread of rank 0 (no
/// `capture` there).
pub(crate) fn run_work(work: Work, hops: u32, capture: &mut Option<Capture>) -> Done {
    let started_us = now_us();
    let (task, outcome) = match work {
        Work::Apply {
            task,
            function,
            args,
        } => (
            task,
            call(function, args)
                .map_or_else(|e| Outcome::Failed(Failure::from_error(e)), Outcome::Value),
        ),
        Work::Map {
            task,
            function,
            items,
        } => (task, Outcome::Each(map_items(function, &items))),
    };
    ended(task, started_us, hops, outcome, capture)
}

/// Calls `function` on each item of a `map` task; one item's failure (a
/// panic, say) does not stop the others.
fn map_items(function: u64, items: &Packed) -> Each {
    let mut each = Each {
        values: Packed::with_capacity(items.len(), items.len() * 8),
        failed: Vec::new(),
    };
    let entry = lookup(function);
    for index in 0..items.len() {
        let called = entry.as_ref().map_err(Clone::clone).and_then(|entry| {
            items
                .get(index)
                .and_then(|item| invoke(entry, vec![WireArg::Value(item.to_vec())]))
        });
        match called {
            Ok(value) => each.values.push(&value),
            Err(e) => {
                each.values.push(&[]);
                each.failed.push((index as u64, Failure::from_error(e)));
            }
        }
    }
    each
}

/// The end of a task that ran from `started_us` until now, with the output
/// it wrote.
fn ended(
    task: TaskId,
    started_us: u64,
    hops: u32,
    outcome: Outcome,
    capture: &mut Option<Capture>,
) -> Done {
    let completed_us = now_us();
    let (stdout, stderr) = capture.as_mut().map(Capture::take).unwrap_or_default();
    Done {
        task,
        started_us,
        completed_us,
        stdout,
        stderr,
        hops,
        outcome,
    }
}

/// A received scatter block or broadcast as the value to store.
fn incoming(value: ValueSpec, buf: BulkVec, shape: Vec<u64>) -> Result<Incoming> {
    match value.bulk {
        Some(_) => {
            let entry = bulk::table().get(&value.fingerprint).ok_or_else(|| {
                Error::Protocol(format!("{} is not a bulk type here", value.type_name))
            })?;
            let shape = shape.iter().map(|&d| d as usize).collect();
            Ok(Incoming::Decoded((entry.build)(buf, shape)?))
        }
        None => match buf {
            BulkVec::U8(bytes) => Ok(Incoming::Encoded(Typed {
                fingerprint: value.fingerprint,
                type_name: value.type_name,
                bytes: Arc::new(bytes),
            })),
            _ => Err(Error::Protocol("encoded data must be bytes".into())),
        },
    }
}

/// Runs one direct job; false when the MPI thread is gone.
fn run_job(job: Job, capture: &mut Option<Capture>, out: &Sender<ExecOut>, comm: &Thread) -> bool {
    match job {
        Job::Lend { task, name, value } => {
            let (resume, resumed) = std::sync::mpsc::channel::<()>();
            let lent = lend(&name, &value);
            if out.send(ExecOut::Lent { task, lent, resume }).is_err() {
                return false;
            }
            // Only the MPI thread's passes bring the collective's end.
            helping::hand_back();
            comm.unpark();
            // Keep the namespace still until the collective is over.
            let _ = resumed.recv();
            true
        }
        Job::Recycle {
            name,
            fingerprint,
            shape,
            reply,
        } => {
            let _ = reply.send(recycle(&name, fingerprint, &shape));
            true
        }
        Job::Store { task, name, value } => {
            let value = match value {
                Incoming::Later(value) => {
                    // Only the MPI thread's passes bring the collective.
                    helping::hand_back();
                    comm.unpark();
                    value.recv().unwrap_or_else(|_| {
                        Err(Error::Protocol(format!(
                            "the collective that was to store {name:?} did not run"
                        )))
                    })
                }
                value => Ok(value),
            };
            let now = now_us();
            let mut displaced = None;
            let outcome = value
                .and_then(|value| {
                    namespace::with(|ns| {
                        displaced = Some(match value {
                            Incoming::Decoded(stored) => ns.insert_stored(name, stored),
                            Incoming::Encoded(typed) => ns.insert_typed(name, typed),
                            Incoming::Later(_) => {
                                return Err(Error::Protocol("a value stored twice later".into()))
                            }
                        });
                        Ok(Outcome::Unit)
                    })
                })
                .unwrap_or_else(|e| Outcome::Failed(Failure::from_error(e)));
            if !reply(out, quiet_done(task, now, now, outcome)) {
                return false;
            }
            comm.unpark();
            // Free a replaced value only once the client has its answer.
            drop(displaced);
            true
        }
        Job::Request(request) => {
            if let Request::Pull { task, names } = &request {
                if let Some((value, data)) = raw_pull(names) {
                    return send_raw(*task, value, data, out, comm);
                }
            }
            let started_us = now_us();
            let Some((task, outcome)) = handle(request) else {
                return true;
            };
            if !reply(out, ended(task, started_us, 0, outcome, capture)) {
                return false;
            }
            // Send it from this thread when MPI allows; else wake the MPI thread.
            if !helping::help() {
                comm.unpark();
            }
            true
        }
    }
}

/// Sends a pull's reply announcing raw data, then the data itself straight
/// from the stored value; returns (true) once it has been sent, false when
/// the MPI thread is gone.
fn send_raw(
    task: TaskId,
    value: ValueSpec,
    data: Lent,
    out: &Sender<ExecOut>,
    comm: &Thread,
) -> bool {
    let (resume, resumed) = std::sync::mpsc::channel::<()>();
    let now = now_us();
    let len = data.buf().map_or(0, |b| b.len()) as u64;
    let shape = data.shape.iter().map(|&d| d as u64).collect();
    let done = quiet_done(task, now, now, Outcome::Bulk { value, len, shape });
    let reply = match protocol::encode(&Reply::Done(done)) {
        Ok(reply) => reply,
        Err(e) => {
            let failed = Outcome::Failed(Failure::from_error(e));
            return self::reply(out, quiet_done(task, now, now, failed));
        }
    };
    if out
        .send(ExecOut::Data {
            reply,
            data,
            resume,
        })
        .is_err()
    {
        return false;
    }
    // Only the MPI thread's passes complete the send.
    helping::hand_back();
    comm.unpark();
    // Keep the value unchanged (and not borrowed) until it has been sent.
    let _ = resumed.recv();
    true
}

/// Encodes and sends one reply; false when the MPI thread is gone. A reply
/// that cannot be encoded is replaced by the encoding error.
fn reply(out: &Sender<ExecOut>, done: Done) -> bool {
    let mut reply = Reply::Done(done);
    let framed = match protocol::encode_framed(&mut reply) {
        Ok(framed) => framed,
        Err(e) => {
            let Reply::Done(mut done) = reply else {
                return true;
            };
            done.outcome = Outcome::Failed(Failure::from_error(e));
            match protocol::encode_framed(&mut Reply::Done(done)) {
                Ok(framed) => framed,
                Err(_) => return true,
            }
        }
    };
    out.send(ExecOut::Reply(framed)).is_ok()
}

/// Takes the value `name` apart for its memory if it has the type with
/// `fingerprint` and exactly `shape` and nothing else holds it; a value of
/// another shape stays where it is.
fn recycle(name: &str, fingerprint: u64, shape: &[usize]) -> Option<BulkVec> {
    // A scalar has no buffer worth keeping.
    if shape.is_empty() {
        return None;
    }
    let entry = bulk::table().get(&fingerprint)?;
    namespace::with(|ns| {
        let Some(stored) = ns.take_unshared(name, fingerprint) else {
            return Ok(None);
        };
        let fits =
            (entry.view)(stored.clone().into_any().as_ref()).is_some_and(|(_, held)| held == shape);
        if !fits {
            drop(ns.insert_stored(name.to_string(), stored));
            return Ok(None);
        }
        Ok((entry.recycle)(stored))
    })
    .ok()
    .flatten()
}

/// The one pulled name, lent as raw elements, when it holds a numeric value
/// (a `Vec` or array of an [`Element`](crate::Element) type, decoded here
/// first if it arrived encoded): such a pull travels as a raw buffer.
fn raw_pull(names: &[String]) -> Option<(ValueSpec, Lent)> {
    let [name] = names else {
        return None;
    };
    let (entry, stored) = namespace::with(|ns| {
        let Some(fingerprint) = ns.fingerprint(name) else {
            return Ok(None);
        };
        let Some(entry) = bulk::table().get(&fingerprint) else {
            return Ok(None);
        };
        let stored = ns.stored(name, fingerprint, entry.type_name, entry.decode)?;
        Ok(Some((entry, stored)))
    })
    .ok()
    .flatten()?;
    let fingerprint = stored.fingerprint();
    let lent = (entry.lend)(stored)?;
    lent.buf()?;
    let value = ValueSpec {
        fingerprint,
        type_name: entry.type_name.to_string(),
        bulk: Some(entry.elem),
    };
    Some((value, lent))
}

/// Finds `name` for a gather or reduce, checking its type.
fn lend(name: &str, value: &ValueSpec) -> Result<Lending> {
    namespace::with(|ns| match value.bulk {
        Some(_) => {
            let entry = bulk::table().get(&value.fingerprint).ok_or_else(|| {
                Error::Protocol(format!("{} is not a bulk type here", value.type_name))
            })?;
            let stored = ns.stored(name, value.fingerprint, entry.type_name, entry.decode)?;
            (entry.lend)(stored).map(Lending::Bulk).ok_or_else(|| {
                Error::Protocol(format!("cannot lend {name} as {}", entry.type_name))
            })
        }
        None => {
            let typed = ns.pull(name)?;
            if typed.fingerprint != value.fingerprint {
                return Err(Error::TypeMismatch {
                    engine: 0,
                    name: name.to_string(),
                    expected: value.type_name.clone(),
                    found: typed.type_name,
                });
            }
            Ok(Lending::Bytes(typed.bytes))
        }
    })
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Serves one request on the execution thread: its task id and outcome.
fn handle(request: Request) -> Option<(TaskId, Outcome)> {
    let (task, result) = match request {
        Request::Apply {
            task,
            function,
            args,
        } => (task, call(function, args).map(Outcome::Value)),
        Request::Map {
            task,
            function,
            items,
        } => (
            task,
            items
                .into_iter()
                .map(|item| call(function, vec![WireArg::Value(item)]))
                .collect::<Result<Vec<_>>>()
                .map(Outcome::Many),
        ),
        Request::Push { task, items } => (
            task,
            namespace::with(|ns| {
                for (name, value) in items {
                    drop(ns.insert_typed(name, value));
                }
                Ok(Outcome::Unit)
            }),
        ),
        Request::Pull { task, names } => (
            task,
            namespace::with(|ns| {
                names
                    .iter()
                    .map(|n| ns.pull(n))
                    .collect::<Result<Vec<_>>>()
                    .map(Outcome::Values)
            }),
        ),
        Request::Keys { task } => (task, namespace::with(|ns| Ok(Outcome::Keys(ns.keys())))),
        Request::Clear { task } => (
            task,
            namespace::with(|ns| {
                ns.clear();
                Ok(Outcome::Unit)
            }),
        ),
        Request::Collective { .. }
        | Request::Shutdown { .. }
        | Request::Exit
        | Request::Tasks { .. }
        | Request::Abort { .. } => return None,
    };
    Some((
        task,
        result.unwrap_or_else(|e| Outcome::Failed(Failure::from_error(e))),
    ))
}

/// Calls a registered function, turning a panic into a remote error.
fn call(function: u64, args: Vec<WireArg>) -> Result<Vec<u8>> {
    invoke(lookup(function)?, args)
}

/// The registered function with id `function`.
fn lookup(function: u64) -> Result<&'static RemoteEntry> {
    registry().entry(function).ok_or_else(|| {
        Error::Protocol(format!(
            "no remote function with id {function:#x} on this engine"
        ))
    })
}

/// Calls `entry` with `args`, turning a panic into a remote error.
fn invoke(entry: &RemoteEntry, args: Vec<WireArg>) -> Result<Vec<u8>> {
    let mut reader = ArgReader::new(args);
    IN_TASK.with(|t| *t.borrow_mut() = Some(None));
    let ran = panic::catch_unwind(AssertUnwindSafe(|| (entry.invoke)(&mut reader)));
    let panicked = IN_TASK.with(|t| t.borrow_mut().take()).flatten();
    match ran {
        Ok(result) => result,
        Err(payload) => {
            let message = crate::error::panic_message(payload.as_ref());
            let (location, backtrace) = panicked.unwrap_or_default();
            Err(Error::Remote {
                engine: 0,
                task: 0,
                kind: "panic".into(),
                message: if location.is_empty() {
                    format!("{} panicked: {message}", entry.path)
                } else {
                    format!("{} panicked at {location}: {message}", entry.path)
                },
                backtrace,
            })
        }
    }
}

use crate::error::PanicSlot;

thread_local! {
    /// `Some` while a task runs on this thread; holds the panic record if it panicked.
    static IN_TASK: PanicSlot = const { RefCell::new(None) };
}

/// Records panics of tasks (location, backtrace) and lets the default hook
/// print them to the task's captured stderr; any other panic on an engine
/// (an internal failure) is printed on the process's real stderr.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if crate::error::record_panic(&IN_TASK, info) {
                // A task's panic: its message goes to the task's stderr.
                previous(info);
            } else {
                // rankview's own threads: the captured stderr would lose it.
                let thread = std::thread::current();
                capture::report(&format!(
                    "thread '{}' {info}",
                    thread.name().unwrap_or("<unnamed>")
                ));
            }
        }));
    });
}
