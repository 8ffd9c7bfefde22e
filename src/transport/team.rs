//! Task communicators on the MPI side ([`Teams`]): one communicator per
//! team of engines, created when the team's first message reaches the
//! engine's MPI thread and kept for the job, and the tasks' operations on
//! them, started without blocking and completed by the MPI thread's
//! passes (or, under `MPI_THREAD_SERIALIZED`, started and first tested on
//! the task's own thread, [`Teams::run`]; a small allreduce there runs on
//! the task's thread from start to end, [`Teams::start_here`]); a small
//! allreduce's point-to-point steps are `doubling.rs`'s. What a team is
//! and how a task hands its operations over is `taskcomm`'s.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpi::collective::{CommunicatorCollectives, Root};
use mpi::datatype::Equivalence;
use mpi::point_to_point::{Destination, Source, Status};
use mpi::request::{Request, StaticScope};
use mpi::topology::{Communicator, Group as _, SimpleCommunicator};

use crate::bulk::{BufMut, BufRef, ElemKind, ReduceOp};
use crate::error::{Error, Result};
use crate::loan::Loan;
use crate::protocol::TeamSpec;
use crate::taskcomm::shm::{self, SHM_ALLREDUCE};
use crate::taskcomm::{note_long_wait, wait_note, TeamCall, TeamOp};

use super::doubling::{Doubling, Steps, SMALL_BYTES};
use super::lent::{erase, forever, forever_mut};
use super::mpi::{reduce_op, with_buf, with_mut, Mpi};

/// Tag of `MPI_Comm_create_group` for team communicators (each rank creates
/// them one at a time, in the order its stream brings them).
const CREATE_TAG: i32 = 31_000;

/// How long the pass that starts an operation keeps testing it (see
/// [`Teams::poll`]).
const FIRST_TESTS: Duration = Duration::from_micros(20);

/// Tag of the tasks' point-to-point messages on a team communicator.
const MESSAGE_TAG: i32 = 1;

/// An operation in flight, with the buffers it reads or fills.
struct Running {
    /// The MPI call, for the note on a long wait.
    what: &'static str,
    team: Arc<TeamSpec>,
    since: Instant,
    noted: bool,
    /// The communicator's index in [`Teams::comms`].
    comm: usize,
    /// Taken when it completes; never dropped incomplete (see [`Teams`]'s drop).
    work: Option<Work>,
    /// Kept until the request completes; dropping them resumes the task.
    loans: Vec<Loan>,
    /// For a receive: the element type, to count what arrived.
    receive: Option<ElemKind>,
    call: std::sync::mpsc::SyncSender<Result<usize>>,
}

/// What an operation in flight waits on.
enum Work {
    /// One MPI request.
    Request(Request<'static, ()>),
    /// A small allreduce's point-to-point steps.
    Steps(Box<dyn Steps>),
}

impl Work {
    /// Tests for completion: `Ok` with the status of a completed request
    /// (`None` for steps), or the work still in flight.
    fn test(self, comm: &SimpleCommunicator) -> std::result::Result<Option<Status>, Work> {
        match self {
            Work::Request(request) => request.test().map(Some).map_err(Work::Request),
            Work::Steps(mut steps) => {
                if steps.advance(comm) {
                    Ok(None)
                } else {
                    Err(Work::Steps(steps))
                }
            }
        }
    }
}

/// Runs `$body` with `$s` and `$r` bound, for as long as MPI needs them
/// (see [`forever`]), to the typed slices of a read buffer and a written
/// buffer of one element type; buffers of two types return the error of
/// `$what`.
macro_rules! with_pair {
    ($from:expr, $into:expr, $what:expr, |$s:ident, $r:ident| $body:expr) => {
        with_pair!(@arms $from, $into, $what, $s, $r, $body;
            F32, F64, I8, I16, I32, I64, U8, U16, U32, U64)
    };
    (@arms $from:expr, $into:expr, $what:expr, $s:ident, $r:ident, $body:expr; $($v:ident),*) => {
        match ($from, $into) {
            $((BufRef::$v($s), BufMut::$v($r)) => {
                let ($s, $r) = (forever($s), forever_mut($r));
                $body
            })*
            _ => return Err(mismatch($what)),
        }
    };
}

/// A task's small allreduce that its own thread runs from start to end
/// (`MPI_THREAD_SERIALIZED`, see [`Teams::start_here`]): its steps on its
/// communicator. Its team and start are [`Teams`]'s (`here`), which the
/// MPI thread reads for the notes on long waits too.
pub(crate) struct Here {
    steps: Box<dyn Steps>,
    comm: usize,
    noted: bool,
}

/// How a small allreduce begun on a task's thread stands.
pub(crate) enum HereStarted {
    /// It completed within the first tests.
    Done,
    /// It is in flight: the task's thread tests it until it completes
    /// ([`Teams::test_here`]), and never lets its buffers go before.
    InFlight(Here),
    /// Not one for the task's thread (too large): hand it over as usual.
    NotHere,
}

/// An engine's team communicators and its tasks' operations on them.
pub(crate) struct Teams {
    /// This engine's id, for the note on a long wait.
    engine: usize,
    note_after: Duration,
    calls: Option<Receiver<TeamCall>>,
    /// Each team's index in `comms`.
    index: HashMap<Vec<u32>, usize>,
    /// The team of the last operation and its index: a task's operations
    /// all carry the same `Arc`, found again without hashing.
    last: Option<(Arc<TeamSpec>, usize)>,
    /// The communicators, never freed before the engine ends.
    comms: Vec<SimpleCommunicator>,
    /// This engine's rank in each communicator and its size, asked of MPI
    /// once (a small allreduce on the task's thread needs both).
    shapes: Vec<(i32, i32)>,
    running: Vec<Running>,
    /// The team and start of a small allreduce in flight on the task's
    /// thread (a [`Here`]), for [`waiting_on`](Teams::waiting_on) and the
    /// note on a long wait.
    here: Option<(Arc<TeamSpec>, Instant)>,
}

impl Teams {
    /// No teams yet; `calls` is where the execution thread's operations
    /// arrive (`None` when this process has no port for them).
    pub(crate) fn new(engine: usize, calls: Option<Receiver<TeamCall>>) -> Teams {
        Teams {
            engine,
            note_after: wait_note(),
            calls,
            index: HashMap::new(),
            last: None,
            comms: Vec::new(),
            shapes: Vec::new(),
            running: Vec::new(),
            here: None,
        }
    }

    /// Creates the communicator of `team` if this engine does not have it
    /// yet (`MPI_Comm_create_group` over the team's ranks, in team order):
    /// collective over the team, whose members all call this at the same
    /// point of their streams.
    pub(crate) fn ensure(&mut self, mpi: &Mpi, team: &TeamSpec) -> Result<()> {
        if self.index.contains_key(&team.engines) {
            return Ok(());
        }
        let me = mpi.rank();
        let ranks: Vec<i32> = team
            .engines
            .iter()
            .map(|&e| i32::try_from(e + 1).map_err(|_| Error::Mpi(format!("no engine {e}"))))
            .collect::<Result<_>>()?;
        let control = mpi.control();
        let group = control.group().include(&ranks);
        let comm = control
            .split_by_subgroup_with_tag(&group, CREATE_TAG)
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "rank {me} was sent a task of engines {:?}, which it is not one of",
                    team.engines
                ))
            })?;
        // A window, when the team's engines share a node, goes where the
        // team's tasks find it (`taskcomm::shm`'s registry).
        let room = shm::published() < super::window::MAX_WINDOWS;
        if let Some(window) = super::window::shared(&comm, self.engine, &team.engines, room) {
            shm::publish(window);
        }
        self.index.insert(team.engines.clone(), self.comms.len());
        self.shapes.push((comm.rank(), comm.size()));
        self.comms.push(comm);
        Ok(())
    }

    /// The operation on the communicator of `engines` that has waited
    /// longest, a task's allreduce in the team's shared memory included:
    /// what it waits in and how long it has waited (for group tasks,
    /// `engine/group.rs`).
    pub(crate) fn waiting_on(&self, engines: &[u32]) -> Option<(&'static str, Duration)> {
        let here = (self.here.iter())
            .filter(|(team, _)| team.engines == engines)
            .map(|(_, since)| (SMALL_ALLREDUCE, since.elapsed()));
        let shm = (shm::find(engines).and_then(|team| team.waiting()))
            .map(|since| (SHM_ALLREDUCE, since.elapsed()));
        (self.running.iter())
            .filter(|r| r.team.engines == engines)
            .map(|r| (r.what, r.since.elapsed()))
            .chain(here)
            .chain(shm)
            .max_by_key(|(_, waited)| *waited)
    }

    /// True while an operation is in flight (the loop should poll often).
    pub(crate) fn active(&self) -> bool {
        !self.running.is_empty()
    }

    /// Starts the operations handed over since the last pass and completes
    /// those that have finished; true if anything happened. An operation
    /// just started is tested in a tight loop for [`FIRST_TESTS`]: when its
    /// members entered it together it completes there, and its task resumes
    /// without waiting for another pass.
    pub(crate) fn poll(&mut self) -> bool {
        let mut started = false;
        while let Some(calls) = &self.calls {
            match calls.try_recv() {
                Ok(call) => {
                    started = true;
                    self.start(call);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.calls = None,
            }
        }
        let before = self.running.len();
        self.complete();
        if started {
            self.first_tests();
        }
        started || self.running.len() != before
    }

    /// Starts `call` on the calling thread (a task's, which holds the loop's
    /// lock) and tests it as [`poll`](Teams::poll) does an operation just
    /// started: a short operation completes here, with no hand-off to the
    /// MPI thread and no pass of its loop.
    pub(crate) fn run(&mut self, call: TeamCall) {
        self.start(call);
        self.first_tests();
    }

    /// Starts an allreduce of `send` into `recv` on `team`'s communicator
    /// on the calling thread (a task's, which holds the loop's lock), if it
    /// is small, and tests it for [`FIRST_TESTS`]. The task's thread then
    /// runs it to its end itself, taking the lock for each test
    /// ([`test_here`](Teams::test_here)): no loans, no hand-off, no answer
    /// channel, and the MPI thread serves between the tests.
    ///
    /// # Safety
    ///
    /// With [`HereStarted::InFlight`], MPI uses `send` and `recv` until
    /// `test_here` has returned true: the caller keeps both borrowed (and
    /// touches neither) until then, or for ever.
    pub(crate) unsafe fn start_here(
        &mut self,
        team: &Arc<TeamSpec>,
        send: BufRef<'_>,
        recv: BufMut<'_>,
        op: ReduceOp,
    ) -> Result<HereStarted> {
        if send.as_bytes().len() > SMALL_BYTES {
            return Ok(HereStarted::NotHere);
        }
        let index = self.find(team)?;
        let (Some(comm), Some(&shape)) = (self.comms.get(index), self.shapes.get(index)) else {
            return Err(no_comm(team));
        };
        // On this thread's stack while it completes at once, boxed only
        // if it stays in flight (moving it moves no buffer MPI uses).
        let (steps, since): (Box<dyn Steps>, Instant) =
            with_pair!(send, recv, "all_reduce_into", |s, r| {
                let mut steps = Doubling::start(comm, shape, s, r, op);
                match first_tests(|| steps.advance(comm)) {
                    None => return Ok(HereStarted::Done),
                    Some(since) => (Box::new(steps), since),
                }
            });
        self.here = Some((team.clone(), since));
        Ok(HereStarted::InFlight(Here {
            steps,
            comm: index,
            noted: false,
        }))
    }

    /// Tests a small allreduce in flight on the task's thread (see
    /// [`start_here`](Teams::start_here)); true once it has completed.
    /// Says so on stderr when it has waited long, as for other operations.
    pub(crate) fn test_here(&mut self, here: &mut Here) -> bool {
        let Some(comm) = self.comms.get(here.comm) else {
            return false;
        };
        if here.steps.advance(comm) {
            self.here = None;
            return true;
        }
        if let Some((team, since)) = &self.here {
            if !here.noted && since.elapsed() >= self.note_after {
                here.noted = true;
                note_long_wait(self.engine, *since, SMALL_ALLREDUCE, &team.engines);
            }
        }
        false
    }

    /// The index of `team`'s communicator.
    fn find(&mut self, team: &Arc<TeamSpec>) -> Result<usize> {
        if let Some((last, i)) = &self.last {
            if Arc::ptr_eq(last, team) {
                return Ok(*i);
            }
        }
        let index = (self.index.get(&team.engines).copied()).ok_or_else(|| no_comm(team))?;
        self.last = Some((team.clone(), index));
        Ok(index)
    }

    /// Tests the operations in flight in a tight loop until they have all
    /// completed or [`FIRST_TESTS`] has passed.
    fn first_tests(&mut self) {
        first_tests(|| {
            self.complete();
            self.running.is_empty()
        });
    }

    /// Tests each operation in flight once; answers those that completed,
    /// and notes those that have waited long.
    fn complete(&mut self) {
        let (engine, note_after, comms) = (self.engine, self.note_after, &self.comms);
        self.running.retain_mut(|running| {
            let Some(work) = running.work.take() else {
                return false;
            };
            // Never happens (communicators are kept for the job); if it
            // did, the operation would stay, never dropped while MPI may use
            // the task's buffers.
            let Some(comm) = comms.get(running.comm) else {
                running.work = Some(work);
                return true;
            };
            match work.test(comm) {
                Ok(status) => {
                    let count = match (running.receive, status) {
                        (Some(kind), Some(status)) => count(&status, kind),
                        _ => 0,
                    };
                    // Buffers first: the task resumes once they are back.
                    running.loans.clear();
                    let _ = running.call.send(Ok(count));
                    false
                }
                Err(work) => {
                    running.work = Some(work);
                    if !running.noted && running.since.elapsed() >= note_after {
                        running.noted = true;
                        let engines = &running.team.engines;
                        note_long_wait(engine, running.since, running.what, engines);
                    }
                    true
                }
            }
        });
    }

    /// Starts one operation, or answers why it cannot start.
    fn start(&mut self, call: TeamCall) {
        let TeamCall { team, op, done } = call;
        let found = self.find(&team);
        let Some((index, comm, &shape)) = found
            .ok()
            .and_then(|i| Some((i, self.comms.get(i)?, self.shapes.get(i)?)))
        else {
            let _ = done.send(Err(no_comm(&team)));
            return;
        };
        let what = op.mpi_name();
        match start(comm, shape, op) {
            Ok((work, loans, receive)) => self.running.push(Running {
                what: match work {
                    Work::Steps(_) => SMALL_ALLREDUCE,
                    Work::Request(_) => what,
                },
                team,
                comm: index,
                since: Instant::now(),
                noted: false,
                work: Some(work),
                loans,
                receive,
                call: done,
            }),
            Err(e) => {
                let _ = done.send(Err(e));
            }
        }
    }
}

impl Drop for Teams {
    /// Operations still in flight when the engine ends (a task waits in a
    /// collective that another member never entered) are abandoned: their
    /// requests and buffers are leaked, never freed while MPI may still use
    /// them, and their tasks never resume (the process is ending).
    fn drop(&mut self) {
        for running in self.running.drain(..) {
            std::mem::forget(running);
        }
    }
}

/// What [`start`] began: the work, the buffers it uses, and for a receive
/// the element type.
type Started = (Work, Vec<Loan>, Option<ElemKind>);

/// Starts `op` on `comm`, where this engine has rank and size `shape`.
fn start(comm: &SimpleCommunicator, shape: (i32, i32), op: TeamOp) -> Result<Started> {
    match op {
        TeamOp::Barrier => Ok((
            Work::Request(erase(comm.immediate_barrier())),
            Vec::new(),
            None,
        )),
        TeamOp::AllReduce { send, mut recv, op } => {
            let small = send.buf().as_bytes().len() <= SMALL_BYTES;
            let work = with_pair!(
                send.buf(),
                writable(&mut recv)?,
                "all_reduce_into",
                |s, r| if small {
                    Work::Steps(Box::new(Doubling::start(comm, shape, s, r, op)))
                } else {
                    Work::Request(erase(comm.immediate_all_reduce_into(
                        StaticScope,
                        s,
                        r,
                        reduce_op(op),
                    )))
                }
            );
            Ok((work, vec![send, recv], None))
        }
        TeamOp::AllGather { send, mut recv } => {
            let request = with_pair!(
                send.buf(),
                writable(&mut recv)?,
                "all_gather_into",
                |s, r| erase(comm.immediate_all_gather_into(StaticScope, s, r))
            );
            Ok((Work::Request(request), vec![send, recv], None))
        }
        TeamOp::Broadcast { mut buf, root } => {
            let root = comm.process_at_rank(rank(root)?);
            let request = with_mut!(writable(&mut buf)?, r => {
                erase(root.immediate_broadcast_into(StaticScope, forever_mut(r)))
            });
            Ok((Work::Request(request), vec![buf], None))
        }
        TeamOp::Send { buf, to } => {
            let to = comm.process_at_rank(rank(to)?);
            let request = with_buf!(buf.buf(), s => {
                erase(to.immediate_send_with_tag(StaticScope, forever(s), MESSAGE_TAG))
            });
            Ok((Work::Request(request), vec![buf], None))
        }
        TeamOp::Receive {
            mut buf,
            from,
            kind,
        } => {
            let from = comm.process_at_rank(rank(from)?);
            let request = with_mut!(writable(&mut buf)?, r => {
                erase(from.immediate_receive_into_with_tag(StaticScope, forever_mut(r), MESSAGE_TAG))
            });
            Ok((Work::Request(request), vec![buf], Some(kind)))
        }
    }
}

/// Tests an operation just started in a tight loop until it has completed
/// (then `None`) or [`FIRST_TESTS`] has passed since its first eight tests
/// failed (then `Some` of that instant, which counts as the operation's
/// start for the notes on long waits). An operation that completes in its
/// first eight tests reads no clock (bench `w12`: a call of a few hundred
/// nanoseconds).
fn first_tests(mut test: impl FnMut() -> bool) -> Option<Instant> {
    let mut first_failed: Option<Instant> = None;
    loop {
        for _ in 0..8 {
            if test() {
                return None;
            }
        }
        let now = Instant::now();
        let start = *first_failed.get_or_insert(now);
        if now >= start + FIRST_TESTS {
            return Some(start);
        }
    }
}

/// What a small allreduce waits in, for the notes on long waits.
const SMALL_ALLREDUCE: &str = "an allreduce (MPI_Isend/MPI_Irecv)";

fn no_comm(team: &TeamSpec) -> Error {
    Error::Protocol(format!(
        "no communicator of engines {:?} on this engine",
        team.engines
    ))
}

fn writable(loan: &mut Loan) -> Result<BufMut<'_>> {
    loan.buf_mut()
        .ok_or_else(|| Error::Protocol("a read-only buffer was lent to be written".into()))
}

fn rank(rank: usize) -> Result<i32> {
    i32::try_from(rank).map_err(|_| Error::Usage(format!("no rank {rank}")))
}

fn mismatch(what: &str) -> Error {
    Error::Usage(format!("{what}: buffers of different element types"))
}

/// Elements of type `kind` that a completed receive got.
fn count(status: &Status, kind: ElemKind) -> usize {
    let count = match kind {
        ElemKind::F32 => status.count(f32::equivalent_datatype()),
        ElemKind::F64 => status.count(f64::equivalent_datatype()),
        ElemKind::I8 => status.count(i8::equivalent_datatype()),
        ElemKind::I16 => status.count(i16::equivalent_datatype()),
        ElemKind::I32 => status.count(i32::equivalent_datatype()),
        ElemKind::I64 => status.count(i64::equivalent_datatype()),
        ElemKind::U8 => status.count(u8::equivalent_datatype()),
        ElemKind::U16 => status.count(u16::equivalent_datatype()),
        ElemKind::U32 => status.count(u32::equivalent_datatype()),
        ElemKind::U64 => status.count(u64::equivalent_datatype()),
    };
    usize::try_from(count).unwrap_or(0)
}
