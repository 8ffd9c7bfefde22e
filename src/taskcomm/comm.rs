//! [`TaskComm`], the communicator a task gets from [`comm`]: its rank and
//! size, and its MPI operations, each lent to the engine's MPI thread (see
//! the module's "Who calls MPI") while the task waits for it.

use std::marker::PhantomData;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bulk::{kind_of, Element, ReduceOp};
use crate::error::{Error, Result};
use crate::loan::{lend, lend_mut};
use crate::protocol::TeamSpec;

use super::scope::{self, TeamCall, TeamOp, Where};
use super::shm::{ShmTeam, SHM_BYTES};

/// How long a task waiting for one of its operations polls (making the MPI
/// thread's passes itself when MPI allows) before it sleeps until the MPI
/// thread wakes it.
const SPIN: Duration = Duration::from_micros(200);

/// The communicator of the engines a task was sent to: the engines of the
/// direct view whose `apply` runs the task, ranked in the view's target
/// order (rank 0 of the job is never in it). Get it with [`comm`] inside
/// the task.
///
/// Its operations are MPI's (`MPI_Iallreduce`, `MPI_Ibarrier`, ... on a
/// communicator of exactly those engines; a small allreduce as
/// point-to-point messages), made on the task's own buffers while the task
/// waits: the engine keeps answering the controller during a long
/// collective, and no two threads of the engine call MPI at once (see the
/// module's "Who calls MPI").
///
/// It belongs to the task that got it: it cannot leave the task's thread,
/// and once the task has returned, its operations are an [`Error::NoComm`].
/// Buffers of mismatched lengths, a rank outside the communicator, or more
/// elements than MPI counts in one operation (`i32::MAX`) are an
/// [`Error::Usage`], before anything is sent.
///
/// # Examples
///
/// ipyparallel's `psum`: the array is scattered over the view's engines,
/// every engine sums its part, and the parts' sums are added up across the
/// engines.
///
/// ```no_run
/// use rankview::{ReduceOp, Ref};
///
/// #[rankview::remote]
/// fn psum(part: &Vec<f64>) -> rankview::TaskResult<f64> {
///     let comm = rankview::comm()?;
///     Ok(comm.all_reduce(part.iter().sum::<f64>(), ReduceOp::Sum)?)
/// }
///
/// fn main() {
///     rankview::launch(|rc| -> rankview::Result<()> {
///         let view = rc.all();
///         let a: Vec<f64> = (0..16).map(f64::from).collect();
///         view.scatter("a", &a).get()?;
///         let sums = view.apply_sync(psum, (Ref::<Vec<f64>>::new("a"),))?;
///         assert!(sums.iter().all(|&s| s == 120.0));
///         Ok(())
///     });
/// }
/// ```
///
/// The `mpi_psum` example is this, checked against a local sum.
pub struct TaskComm {
    team: Arc<TeamSpec>,
    rank: usize,
    serial: u64,
    shm: Option<Arc<ShmTeam>>,
    /// Stays on the task's thread.
    _task: PhantomData<*const ()>,
}

impl std::fmt::Debug for TaskComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskComm")
            .field("engines", &self.team.engines)
            .field("rank", &self.rank)
            .finish()
    }
}

/// The communicator of the engines the running task was sent to (see
/// [`TaskComm`]); created once per ordered set of engines, when the first
/// task for that set reaches them, and kept for the job.
///
/// An [`Error::NoComm`] outside a task, in a load-balanced task, in a task
/// that a direct view sent to one engine only, or in a task of a set of
/// engines that got no communicator because the job had made as many as
/// `RANKVIEW_MAX_TEAMS` allows (1000 by default; the error says which).
///
/// # Examples
///
/// ```no_run
/// #[rankview::remote]
/// fn who() -> rankview::TaskResult<(usize, usize)> {
///     let comm = rankview::comm()?;
///     comm.barrier()?;
///     Ok((comm.rank(), comm.size()))
/// }
/// ```
pub fn comm() -> Result<TaskComm> {
    match scope::current() {
        Where::Team {
            team,
            rank,
            serial,
            shm,
        } => Ok(TaskComm {
            team,
            rank,
            serial,
            shm,
            _task: PhantomData,
        }),
        other => Err(scope::no_comm(&other)),
    }
}

impl TaskComm {
    /// This engine's rank in the communicator: its index in the view's
    /// targets.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of engines in the communicator (the view's length).
    pub fn size(&self) -> usize {
        self.team.engines.len()
    }

    /// The engine id of each rank, in rank order (the view's targets).
    pub fn engines(&self) -> Vec<usize> {
        self.team.engines.iter().map(|&e| e as usize).collect()
    }

    /// Waits until every engine of the communicator has entered the
    /// barrier (`MPI_Ibarrier`).
    pub fn barrier(&self) -> Result<()> {
        self.call(TeamOp::Barrier).map(drop)
    }

    /// Reduces `send` element-wise over every engine with `op` into `recv`
    /// on every engine; both of the same length, on every engine. Up to
    /// 1 KiB per engine, when the engines share a node, it goes through
    /// shared memory (no MPI call; about a third of a blocking
    /// `MPI_Allreduce`); up to 8 KiB as point-to-point messages
    /// (recursive doubling over `MPI_Isend`/`MPI_Irecv`, as fast as a
    /// blocking `MPI_Allreduce`); above as `MPI_Iallreduce`. Every engine
    /// gets the same bits either way. Through shared memory, engines that
    /// pass buffers of different lengths or element types all get an
    /// [`Error::Usage`].
    pub fn all_reduce_into<E: Element>(
        &self,
        send: &[E],
        recv: &mut [E],
        op: ReduceOp,
    ) -> Result<()> {
        if send.len() != recv.len() {
            return Err(Error::Usage(format!(
                "all_reduce_into: {} elements sent into a buffer of {}",
                send.len(),
                recv.len()
            )));
        }
        counted("all_reduce_into", send.len())?;
        self.still_in()?;
        if let Some(shm) = &self.shm {
            if std::mem::size_of_val(send) <= SHM_BYTES {
                return shm.all_reduce(send, recv, op);
            }
        }
        if let Some(done) =
            scope::all_reduce_here(&self.team, E::slice(send), E::slice_mut(recv), op)
        {
            return done;
        }
        lend(E::slice(send), |send| {
            lend_mut(E::slice_mut(recv), |recv| {
                self.call(TeamOp::AllReduce { send, recv, op })
            })
        })
        .map(drop)
    }

    /// [`all_reduce_into`](TaskComm::all_reduce_into) of one value.
    pub fn all_reduce<E: Element>(&self, value: E, op: ReduceOp) -> Result<E> {
        let mut out = [E::default()];
        self.all_reduce_into(&[value], &mut out, op)?;
        Ok(out[0])
    }

    /// Copies `buf` of rank `root` into `buf` on every other rank
    /// (`MPI_Ibcast`); every rank passes a buffer of the same length.
    pub fn broadcast_into<E: Element>(&self, root: usize, buf: &mut [E]) -> Result<()> {
        self.check_rank("broadcast_into", root)?;
        counted("broadcast_into", buf.len())?;
        lend_mut(E::slice_mut(buf), |buf| {
            self.call(TeamOp::Broadcast { buf, root })
        })
        .map(drop)
    }

    /// Gathers every rank's `send` (all of one length) into `recv` on
    /// every rank, in rank order (`MPI_Iallgather`): `recv` holds
    /// `size() * send.len()` elements.
    pub fn all_gather_into<E: Element>(&self, send: &[E], recv: &mut [E]) -> Result<()> {
        if recv.len() != send.len() * self.size() {
            return Err(Error::Usage(format!(
                "all_gather_into: {} ranks of {} elements into a buffer of {}",
                self.size(),
                send.len(),
                recv.len()
            )));
        }
        counted("all_gather_into", recv.len())?;
        lend(E::slice(send), |send| {
            lend_mut(E::slice_mut(recv), |recv| {
                self.call(TeamOp::AllGather { send, recv })
            })
        })
        .map(drop)
    }

    /// Sends `data` to rank `to` (`MPI_Isend`); returns once it has been
    /// sent. Messages between two ranks arrive in the order they were sent.
    pub fn send<E: Element>(&self, to: usize, data: &[E]) -> Result<()> {
        self.check_rank("send", to)?;
        counted("send", data.len())?;
        lend(E::slice(data), |buf| self.call(TeamOp::Send { buf, to })).map(drop)
    }

    /// Receives the next message from rank `from` into `buf`
    /// (`MPI_Irecv`), which must be large enough for it; returns the
    /// number of elements received.
    pub fn receive_into<E: Element>(&self, from: usize, buf: &mut [E]) -> Result<usize> {
        self.check_rank("receive_into", from)?;
        counted("receive_into", buf.len())?;
        let kind = kind_of::<E>();
        lend_mut(E::slice_mut(buf), |buf| {
            self.call(TeamOp::Receive { buf, from, kind })
        })
    }

    fn check_rank(&self, what: &str, rank: usize) -> Result<()> {
        if rank < self.size() {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "{what}: rank {rank} is not in a communicator of {} engines",
            self.size()
        )))
    }

    /// An error once this communicator's task has returned.
    fn still_in(&self) -> Result<()> {
        if scope::still_in(self.serial) {
            return Ok(());
        }
        Err(Error::NoComm(
            "this communicator's task has returned; call comm() in the task that uses it".into(),
        ))
    }

    /// Hands `op` to the MPI thread and waits for its outcome.
    fn call(&self, op: TeamOp) -> Result<usize> {
        self.still_in()?;
        let (done, answer) = mpsc::sync_channel(1);
        let call = TeamCall {
            team: self.team.clone(),
            op,
            done,
        };
        if scope::post(call).is_err() {
            return Err(gone());
        }
        wait(&answer)
    }
}

/// MPI counts elements in a C `int`: a longer buffer is the caller's error,
/// found before anything is lent or sent.
fn counted(what: &str, len: usize) -> Result<()> {
    if i32::try_from(len).is_ok() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{what}: {len} elements; MPI counts at most {} in one operation",
        i32::MAX
    )))
}

/// The MPI thread has stopped: the engine is ending.
fn gone() -> Error {
    Error::Shutdown
}

/// Waits for an operation's outcome (often there already: under
/// `MPI_THREAD_SERIALIZED` this thread started the operation and tested it
/// first, see `scope::post`): polling for it, making the MPI thread's
/// passes on this thread when MPI allows or else yielding to the MPI
/// thread, which has been woken to make them; then asleep until the MPI
/// thread answers.
fn wait(answer: &Receiver<Result<usize>>) -> Result<usize> {
    let spin_until = Instant::now() + SPIN;
    let mut helping = crate::helping::helping();
    if helping.is_none() {
        scope::wake_mpi_thread();
    }
    while Instant::now() < spin_until {
        match answer.try_recv() {
            Ok(outcome) => {
                if let Some(helping) = helping.take() {
                    helping.finish();
                }
                return outcome;
            }
            Err(TryRecvError::Disconnected) => return Err(gone()),
            Err(TryRecvError::Empty) => {}
        }
        if helping.is_none() || !crate::helping::help() {
            std::thread::yield_now();
        }
    }
    // Going to sleep: the MPI thread polls from now on.
    drop(helping.take());
    scope::wake_mpi_thread();
    answer.recv().unwrap_or_else(|_| Err(gone()))
}
