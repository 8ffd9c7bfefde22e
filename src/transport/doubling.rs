//! A task's small allreduce as point-to-point steps ([`Doubling`]):
//! recursive doubling over `MPI_Isend`/`MPI_Irecv`, each step completed by
//! the MPI thread's tests like any other operation of a task (see
//! `team.rs`). Open MPI's `MPI_Iallreduce` of one value costs about twice
//! its blocking `MPI_Allreduce` (a schedule to build and walk); the same
//! exchange made of point-to-point messages costs what the blocking call
//! does (bench `w12`).
//!
//! Every rank combines the same operands in the same order (the lower
//! ranks' partial result first), so the result is bit-identical on every
//! rank, as MPI's allreduce is, floating point included. The combining is
//! `Element::combine`'s, in Rust: `MPI_Reduce_local` checks its arguments and
//! dispatches on the operation and type at every call, a few per cent of
//! a small allreduce's time.

use mpi::datatype::Equivalence;
use mpi::ffi::MPI_Request;
use mpi::point_to_point::{Destination, Source};
use mpi::request::{Request, StaticScope};
use mpi::topology::{Communicator, SimpleCommunicator};

use super::lent::{forever, forever_mut};
use crate::bulk::{combine_into, Element, ReduceOp};

/// Allreduces of at most this many bytes go as point-to-point steps; larger
/// ones as `MPI_Iallreduce` (whose algorithms move less data per rank).
/// Every rank of a team passes the same length, so all choose alike.
pub(super) const SMALL_BYTES: usize = 8 * 1024;

/// Tag of the steps' messages on a team communicator (the tasks' own
/// messages use another): between two ranks they arrive in the order sent,
/// and a task runs one operation at a time, so the n-th message of a pair
/// always meets the n-th receive.
const STEP_TAG: i32 = 2;

/// An allreduce in progress, whatever its element type.
pub(super) trait Steps {
    /// Completes what it can of the current step and starts the next;
    /// true once the result is in the receive buffer.
    fn advance(&mut self, comm: &SimpleCommunicator) -> bool;
}

/// Where a rank is in the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Sizes that are not a power of two: the first `2 * extra` ranks pair
    /// up, each even one handing its values to the odd one above it, which
    /// takes part in the doubling for both.
    Fold,
    /// Exchanging partial results with the partner at distance `mask` (in
    /// the folded numbering).
    Exchange {
        mask: i32,
    },
    /// An odd rank of a pair sends the result back to its even rank.
    Unfold,
    Done,
}

/// The schedule of one rank for one allreduce of `T`.
pub(super) struct Doubling<T: 'static> {
    send: &'static [T],
    /// The task's receive buffer: this rank's partial result, then the
    /// result.
    acc: &'static mut [T],
    incoming: Vec<T>,
    op: ReduceOp,
    me: i32,
    /// Ranks beyond the largest power of two that fits (see [`Phase::Fold`]).
    extra: i32,
    /// That power of two.
    span: i32,
    phase: Phase,
    /// The current step's messages: the first `posted` are live requests.
    pending: [MPI_Request; 2],
    posted: usize,
}

impl<T: Element + Equivalence> Doubling<T> {
    /// Starts this rank's schedule, as rank `me` of a communicator of
    /// `size`: `send` and `acc` are lent for as long as the operation runs
    /// (see `team.rs`'s `forever`).
    pub(super) fn start(
        comm: &SimpleCommunicator,
        (me, size): (i32, i32),
        send: &'static [T],
        acc: &'static mut [T],
        op: ReduceOp,
    ) -> Doubling<T> {
        let mut span = 1;
        while span * 2 <= size {
            span *= 2;
        }
        acc.copy_from_slice(send);
        // Not `vec![T::default(); n]`: for zeroes that is `calloc`, which
        // glibc serves past its per-thread cache (bench `w12`).
        let mut incoming = Vec::with_capacity(send.len());
        incoming.resize(send.len(), T::default());
        let mut steps = Doubling {
            send,
            acc,
            incoming,
            op,
            me,
            extra: size - span,
            span,
            phase: Phase::Fold,
            // SAFETY: `MPI_Request` is a plain handle (a pointer or an
            // integer), for which zeroes are a valid value; none is used
            // before a request is stored in it (see `posted`).
            pending: unsafe { std::mem::zeroed() },
            posted: 0,
        };
        steps.begin(comm);
        steps
    }

    /// Keeps `request` among the current step's messages.
    fn post<D: ?Sized>(&mut self, request: Request<'static, D>) {
        // SAFETY: `into_raw` hands over the live request without completing
        // or freeing it; this schedule owns it from now on and completes it
        // with `MPI_Testall` (or leaks it, see the drop). The buffer stays
        // alive as `forever` says.
        let (raw, _, _) = unsafe { request.into_raw() };
        if let Some(slot) = self.pending.get_mut(self.posted) {
            *slot = raw;
            self.posted += 1;
        }
    }

    /// True once every message of the current step has completed
    /// (`MPI_Testall`: one progress step for all of them).
    fn step_complete(&mut self) -> bool {
        if self.posted == 0 {
            return true;
        }
        let mut flag = 0;
        // SAFETY: the first `posted` handles are live requests this schedule
        // owns (see `post`); `MPI_Testall` completes and frees them all, or
        // none, and sets `flag` accordingly; statuses are not asked for.
        unsafe {
            mpi::ffi::MPI_Testall(
                self.posted as i32,
                self.pending.as_mut_ptr(),
                &mut flag,
                mpi::ffi::RSMPI_STATUSES_IGNORE,
            );
        }
        if flag != 0 {
            self.posted = 0;
        }
        flag != 0
    }

    /// This rank's number in the doubling, `None` for an even rank of a
    /// folded pair (which sits it out).
    fn folded(&self) -> Option<i32> {
        if self.me < 2 * self.extra {
            (self.me % 2 == 1).then_some(self.me / 2)
        } else {
            Some(self.me - self.extra)
        }
    }

    /// The rank whose folded number is `folded`.
    fn unfolded(&self, folded: i32) -> i32 {
        if folded < self.extra {
            folded * 2 + 1
        } else {
            folded + self.extra
        }
    }

    /// Posts the current phase's messages (none for a phase with nothing to
    /// exchange, which moves on at once).
    fn begin(&mut self, comm: &SimpleCommunicator) {
        loop {
            match self.phase {
                Phase::Fold if self.me < 2 * self.extra => {
                    if self.me % 2 == 0 {
                        // Hand the values over, and wait for the result.
                        let up = comm.process_at_rank(self.me + 1);
                        let acc = forever_mut(&mut *self.acc);
                        self.post(up.immediate_receive_into_with_tag(StaticScope, acc, STEP_TAG));
                        self.post(up.immediate_send_with_tag(StaticScope, self.send, STEP_TAG));
                    } else {
                        let down = comm.process_at_rank(self.me - 1);
                        let incoming = forever_mut(&mut self.incoming);
                        self.post(down.immediate_receive_into_with_tag(
                            StaticScope,
                            incoming,
                            STEP_TAG,
                        ));
                    }
                    return;
                }
                Phase::Fold => self.phase = Phase::Exchange { mask: 1 },
                Phase::Exchange { mask } => match self.folded() {
                    Some(folded) if mask < self.span => {
                        let partner = comm.process_at_rank(self.unfolded(folded ^ mask));
                        let incoming = forever_mut(&mut self.incoming);
                        self.post(partner.immediate_receive_into_with_tag(
                            StaticScope,
                            incoming,
                            STEP_TAG,
                        ));
                        let acc = forever(&*self.acc);
                        self.post(partner.immediate_send_with_tag(StaticScope, acc, STEP_TAG));
                        return;
                    }
                    _ => self.phase = Phase::Unfold,
                },
                Phase::Unfold if self.me < 2 * self.extra && self.me % 2 == 1 => {
                    let down = comm.process_at_rank(self.me - 1);
                    let acc = forever(&*self.acc);
                    self.post(down.immediate_send_with_tag(StaticScope, acc, STEP_TAG));
                    return;
                }
                Phase::Unfold | Phase::Done => {
                    self.phase = Phase::Done;
                    return;
                }
            }
        }
    }

    /// The current step's messages have all completed: combines what
    /// arrived and moves to the next phase.
    fn step_done(&mut self, comm: &SimpleCommunicator) {
        match self.phase {
            Phase::Fold => {
                if self.me % 2 == 0 {
                    // The result has arrived from the odd rank.
                    self.phase = Phase::Done;
                    return;
                }
                // The even rank below is the lower operand.
                combine_into(self.op, &self.incoming, self.acc, true);
                self.phase = Phase::Exchange { mask: 1 };
            }
            Phase::Exchange { mask } => {
                let partner = self.folded().map_or(self.me, |f| self.unfolded(f ^ mask));
                combine_into(self.op, &self.incoming, self.acc, partner < self.me);
                self.phase = Phase::Exchange { mask: mask * 2 };
            }
            Phase::Unfold | Phase::Done => self.phase = Phase::Done,
        }
        self.begin(comm);
    }
}

impl<T: Element + Equivalence> Steps for Doubling<T> {
    fn advance(&mut self, comm: &SimpleCommunicator) -> bool {
        while self.phase != Phase::Done {
            if !self.step_complete() {
                return false;
            }
            self.step_done(comm);
        }
        true
    }
}

impl<T: 'static> Drop for Doubling<T> {
    /// Messages still in flight (the engine is ending with the operation
    /// incomplete) are left to MPI with the buffer they fill, which is
    /// leaked: never freed while MPI may use it.
    fn drop(&mut self) {
        if self.posted > 0 {
            std::mem::forget(std::mem::take(&mut self.incoming));
        }
    }
}
