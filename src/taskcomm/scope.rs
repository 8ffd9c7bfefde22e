//! Where a task's communicator comes from: which team the running task
//! belongs to (a thread-local scope set around the task, [`scoped`]), and
//! the port through which the execution thread hands the team's MPI
//! operations ([`TeamCall`]) to its engine's MPI thread ([`install`]).
//!
//! Plain data and a channel: no MPI here. The MPI thread starts each
//! operation without blocking and completes it in its loop
//! (`transport::team`); the engine decides when a task runs in a scope
//! (`engine/exec.rs`).

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;

use crate::bulk::{BufMut, BufRef, ElemKind, ReduceOp};
use crate::error::{Error, Result};
use crate::loan::Loan;
use crate::protocol::TeamSpec;

/// One MPI operation of a task on its team's communicator, as the
/// execution thread hands it to the MPI thread. The buffers are the task's
/// own, lent ([`Loan`]) until the operation has completed: the task waits
/// until they come back.
pub(crate) enum TeamOp {
    /// `MPI_Ibarrier`.
    Barrier,
    /// `MPI_Iallreduce` of `send` into `recv` (same type and length).
    AllReduce {
        send: Loan,
        recv: Loan,
        op: ReduceOp,
    },
    /// `MPI_Ibcast` of `buf` from team rank `root`.
    Broadcast { buf: Loan, root: usize },
    /// `MPI_Iallgather`: `recv` holds `size` blocks of `send`'s length.
    AllGather { send: Loan, recv: Loan },
    /// `MPI_Isend` of `buf` to team rank `to`.
    Send { buf: Loan, to: usize },
    /// `MPI_Irecv` into `buf` from team rank `from`; the answer is the
    /// number of elements received.
    Receive {
        buf: Loan,
        from: usize,
        kind: ElemKind,
    },
}

impl TeamOp {
    /// The MPI call that runs it.
    pub(crate) fn mpi_name(&self) -> &'static str {
        match self {
            TeamOp::Barrier => "MPI_Ibarrier",
            TeamOp::AllReduce { .. } => "MPI_Iallreduce",
            TeamOp::Broadcast { .. } => "MPI_Ibcast",
            TeamOp::AllGather { .. } => "MPI_Iallgather",
            TeamOp::Send { .. } => "MPI_Isend",
            TeamOp::Receive { .. } => "MPI_Irecv",
        }
    }
}

/// A [`TeamOp`] on the communicator of `team`, and where its outcome goes
/// (for a receive, the elements received; otherwise 0). Dropping the call
/// without answering fails the operation (the engine is ending).
pub(crate) struct TeamCall {
    pub team: Arc<TeamSpec>,
    pub op: TeamOp,
    pub done: SyncSender<Result<usize>>,
}

/// The engine's side of the port: where calls go, who takes them.
struct Port {
    /// Runs a call on the task's own thread when MPI allows (see
    /// [`install`]), or gives it back.
    direct: Direct,
    /// Runs a small allreduce on the task's own thread, start to end,
    /// when MPI allows (see [`install`]).
    here: Here,
    calls: Mutex<Sender<TeamCall>>,
    mpi_thread: Thread,
    engine: usize,
}

static PORT: OnceLock<Port> = OnceLock::new();

/// Runs a [`TeamCall`] on the calling thread, or gives it back when that is
/// not possible now.
pub(crate) type Direct = fn(TeamCall) -> std::result::Result<(), TeamCall>;

/// Runs a small allreduce of `send` into `recv` on the calling thread from
/// start to end, or returns `None` when that is not possible now.
pub(crate) type Here = fn(&Arc<TeamSpec>, BufRef<'_>, BufMut<'_>, ReduceOp) -> Option<Result<()>>;

/// Opens this process's port for team operations (once, by an engine's MPI
/// thread, which becomes the thread woken for them) and returns the
/// receiving end, which that thread polls; `None` if a port was opened
/// before. `direct` is tried first for each call: under
/// `MPI_THREAD_SERIALIZED` the engine runs the operation on the task's
/// thread (which then needs no hand-off), and otherwise gives it back;
/// `here` likewise for a small allreduce, which then needs no loans either.
pub(crate) fn install(engine: usize, direct: Direct, here: Here) -> Option<Receiver<TeamCall>> {
    let (tx, rx) = mpsc::channel();
    let port = Port {
        direct,
        here,
        calls: Mutex::new(tx),
        mpi_thread: std::thread::current(),
        engine,
    };
    PORT.set(port).ok().map(|()| rx)
}

/// Starts `call` on this thread if the engine allows it, or else hands it
/// to the MPI thread; the call comes back as the error when the MPI thread
/// is gone.
pub(super) fn post(call: TeamCall) -> std::result::Result<(), TeamCall> {
    let Some(port) = PORT.get() else {
        return Err(call);
    };
    let Err(call) = (port.direct)(call) else {
        return Ok(());
    };
    let sent = port
        .calls
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(call);
    match sent {
        Ok(()) => Ok(()),
        Err(mpsc::SendError(call)) => Err(call),
    }
}

/// Runs a small allreduce on the calling thread from start to end, if the
/// engine allows it now; `None` otherwise (hand it over with [`post`]).
pub(super) fn all_reduce_here(
    team: &Arc<TeamSpec>,
    send: BufRef<'_>,
    recv: BufMut<'_>,
    op: ReduceOp,
) -> Option<Result<()>> {
    (PORT.get()?.here)(team, send, recv, op)
}

/// Wakes the MPI thread to poll (a task waits for one of its operations).
pub(super) fn wake_mpi_thread() {
    if let Some(port) = PORT.get() {
        port.mpi_thread.unpark();
    }
}

/// Where the calling thread is, for [`current`].
#[derive(Clone)]
pub(super) enum Where {
    /// Not inside a task.
    Outside,
    /// Inside a load-balanced task (or a [`LocalPool`](crate::LocalPool) task).
    Balanced,
    /// Inside a task a direct view sent to one engine.
    Single,
    /// Inside a task of several engines that got no communicator: the job
    /// had made as many as the client allows.
    OverLimit,
    /// Inside an item of a direct view's `map` (each engine runs its own
    /// items, not one task together).
    Mapped,
    /// Inside a task of a team: its communicator's key, this engine's rank
    /// in it, and the scope's serial number (a [`TaskComm`](super::TaskComm)
    /// works only while its scope lasts).
    Team {
        team: Arc<TeamSpec>,
        rank: usize,
        serial: u64,
        /// The team's shared segments, when its engines share a node.
        shm: Option<Arc<super::shm::ShmTeam>>,
    },
}

thread_local! {
    static WHERE: RefCell<Where> = const { RefCell::new(Where::Outside) };
    static SERIAL: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Where the calling thread is now.
pub(super) fn current() -> Where {
    WHERE.with(|w| w.borrow().clone())
}

/// Runs `f` with `place` as where the thread is, restoring the previous
/// place afterwards (also when `f` panics).
fn within<R>(place: Where, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Where>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(previous) = self.0.take() {
                WHERE.with(|w| *w.borrow_mut() = previous);
            }
        }
    }
    let previous = WHERE.with(|w| std::mem::replace(&mut *w.borrow_mut(), place));
    let _restore = Restore(Some(previous));
    f()
}

/// Runs `f` as a task of `team`: inside it, [`comm`](crate::comm) gives the
/// team's communicator. The engine's MPI thread must have created that
/// communicator already (it does when the message carrying `team` reaches
/// it, see [`TeamSpec`]). An engine that is not a member, or a process
/// that is not an engine, runs `f` with no communicator (`comm()` then says
/// why).
pub(crate) fn scoped<R>(team: &TeamSpec, f: impl FnOnce() -> R) -> R {
    /// Counts the task out of [`TEAM_TASKS`] when it ends, panics included.
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            TEAM_TASKS.fetch_sub(1, Ordering::AcqRel);
        }
    }
    TEAM_TASKS.fetch_add(1, Ordering::AcqRel);
    let _running = Running;
    let place = match PORT.get() {
        Some(port) => match team.rank_of(port.engine) {
            Some(rank) => Where::Team {
                team: Arc::new(team.clone()),
                rank,
                serial: SERIAL.with(|s| {
                    s.set(s.get() + 1);
                    s.get()
                }),
                shm: super::shm::find(&team.engines),
            },
            None => Where::Outside,
        },
        None => Where::Outside,
    };
    within(place, f)
}

/// Tasks of a team running in this process now (see [`in_team_task`]).
static TEAM_TASKS: AtomicUsize = AtomicUsize::new(0);

/// True while a task of a team runs in this process: the engine's MPI
/// thread then sleeps when idle instead of spinning, since the task and its
/// peers need the cores (see `engine/serve.rs`).
pub(crate) fn in_team_task() -> bool {
    TEAM_TASKS.load(Ordering::Acquire) > 0
}

/// Runs `f` as a task of a direct view of one engine: `comm()` inside says
/// so.
pub(crate) fn single<R>(f: impl FnOnce() -> R) -> R {
    within(Where::Single, f)
}

/// Runs `f` as a task of several engines that got no communicator (the
/// job had made as many as allowed): `comm()` inside says so.
pub(crate) fn over_limit<R>(f: impl FnOnce() -> R) -> R {
    within(Where::OverLimit, f)
}

/// Runs `f` as an item of a direct view's `map`: `comm()` inside says so.
pub(crate) fn mapped<R>(f: impl FnOnce() -> R) -> R {
    within(Where::Mapped, f)
}

/// Runs `f` as a load-balanced task: `comm()` inside says so.
pub(crate) fn balanced<R>(f: impl FnOnce() -> R) -> R {
    within(Where::Balanced, f)
}

/// True while the calling thread runs inside the scope `serial`.
pub(super) fn still_in(serial: u64) -> bool {
    WHERE.with(|w| matches!(&*w.borrow(), Where::Team { serial: s, .. } if *s == serial))
}

/// The error of `comm()` where there is no team.
pub(super) fn no_comm(place: &Where) -> Error {
    let why = match place {
        Where::Outside => {
            "called outside a task; only a task that a direct view sent to several \
             engines has a communicator"
        }
        Where::Balanced => {
            "a load-balanced task has no communicator (it runs on one engine); \
             use a direct view of several engines, or a view over groups of \
             engines (Client::groups)"
        }
        Where::Mapped => {
            "an item of a direct view's map runs on one engine alone and has no \
             communicator; use apply on a direct view of several engines"
        }
        Where::Single => {
            "this task was sent to one engine only; a communicator needs a direct \
             view of several engines"
        }
        Where::OverLimit => {
            "this view's engines got no communicator: the job has made as many task \
             communicators as RANKVIEW_MAX_TEAMS allows (1000 by default), one per \
             distinct ordered set of engines a direct view ran a task on; reuse a view \
             made before (same engines, same order), or raise the limit"
        }
        Where::Team { .. } => "internal error: a task of a team",
    };
    Error::NoComm(why.into())
}
