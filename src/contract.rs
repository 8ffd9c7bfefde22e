//! The contract between the client side and the controller: what client
//! handles, views and results hand the controller ([`Command`]), the
//! collectives a view asks for ([`Collective`], [`CollectiveKind`]) with the
//! data they move ([`Buffer`], [`Filling`]), and how a collective's replies
//! are put together ([`stacked_shape`], [`finish_units`]).
//!
//! Everything here is plain data and pure functions, below both sides: the
//! client, the views and the results build these values, and the controller
//! consumes them; neither side reaches into the other's module.

use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use crate::bulk::{BufRef, BulkVec, ElemKind, ReduceOp};
use crate::error::{Error, Result};
use crate::loan::Loan;
use crate::protocol::{self, TaskId, ValueSpec, Work};
use crate::result::state::{Payload, ResultState};
use crate::result::Forgotten;
use crate::scheduler::{QueueStatus, Task};

/// What client handles ask of the controller.
pub(crate) enum Command {
    /// Send `request` to each engine in `engines` and fill `state` with the replies.
    Submit {
        task: TaskId,
        engines: Arc<[usize]>,
        /// The encoded request, sent to each engine as it is.
        request: protocol::Framed,
        state: Arc<ResultState>,
        /// What the request does, for messages (`"apply of crate::f"`, ...).
        what: &'static str,
        /// For a pull into the caller's memory (one engine): that memory.
        into: Option<Filling>,
    },
    /// Run a collective on a view's sub-communicator.
    Collective(Collective),
    /// Submit a load-balanced task; its one part is filled by whichever
    /// engine runs it.
    Balance {
        task: Task<Work>,
        state: Arc<ResultState>,
    },
    /// Abort these load-balanced tasks (every one not final: `None`).
    Abort { tasks: Option<Vec<TaskId>> },
    /// Abort the direct-view request `task` on those of `engines` that have
    /// not answered it, where it has not started.
    AbortDirect { task: TaskId, engines: Arc<[usize]> },
    /// A load-balanced submission that failed before it was sent: known to
    /// the scheduler as a task that never ran (a failed dependency).
    Failed { task: TaskId },
    /// The last handles on these load-balanced results are gone.
    Forget { tasks: Forgotten },
    /// Report the load-balanced queues' status.
    QueueStatus(SyncSender<QueueStatus>),
    /// Stop serving; `failed` when the client failed.
    Shutdown { failed: bool },
}

/// A collective asked for by a view.
pub(crate) struct Collective {
    pub task: TaskId,
    /// The view's engines, in target order.
    pub engines: Arc<[usize]>,
    /// One part per engine, in target order.
    pub state: Arc<ResultState>,
    pub kind: CollectiveKind,
}

/// Which collective, with its data.
pub(crate) enum CollectiveKind {
    Scatter {
        name: String,
        value: ValueSpec,
        data: Buffer,
        /// Elements per target, in target order (the data's block order).
        counts: Vec<usize>,
        shapes: Vec<Vec<usize>>,
    },
    Broadcast {
        name: String,
        value: ValueSpec,
        data: Buffer,
        shape: Vec<usize>,
    },
    Gather {
        name: String,
        value: ValueSpec,
        into: Option<Filling>,
    },
    Reduce {
        name: String,
        value: ValueSpec,
        op: ReduceOp,
        into: Option<Filling>,
    },
    /// A raw MPI section on every rank.
    Section { name: String },
}

impl CollectiveKind {
    /// What the collective does, for messages and timelines.
    pub(crate) fn name(&self) -> &'static &'static str {
        match self {
            CollectiveKind::Scatter { .. } => &"scatter",
            CollectiveKind::Broadcast { .. } => &"broadcast push",
            CollectiveKind::Gather { .. } => &"gather",
            CollectiveKind::Reduce { .. } => &"reduce",
            CollectiveKind::Section { .. } => &"MPI section",
        }
    }
}

/// Data the root sends: lent by the client (read in place) or owned.
pub(crate) enum Buffer {
    Lent(Loan),
    Owned(BulkVec),
}

impl Buffer {
    pub(crate) fn buf(&self) -> BufRef<'_> {
        match self {
            Buffer::Lent(loan) => loan.buf(),
            Buffer::Owned(owned) => owned.as_ref(),
        }
    }
}

/// The caller's memory a gather or reduce writes into (`gather_into`,
/// `reduce_into`), lent until the collective is over, and the shape it
/// expects (`None` for a flat buffer, where only the length must match).
pub(crate) struct Filling {
    pub loan: Loan,
    pub shape: Option<Vec<usize>>,
    /// For a pull: the name and the type the caller asked for (a gather's
    /// engines check the type themselves).
    pub pull: Option<(String, ValueSpec)>,
}

impl Filling {
    /// Checks, before any data moves, that the caller's buffer takes `len`
    /// elements of `kind` and, for an array, the shape `shape` computes;
    /// `held` says whose elements they are, for the messages.
    pub(crate) fn check(
        &mut self,
        what: &str,
        kind: ElemKind,
        len: usize,
        held: &str,
        shape: impl FnOnce() -> Result<Vec<usize>>,
    ) -> Result<()> {
        let Some(buf) = self.loan.buf_mut() else {
            return Err(Error::Protocol(format!(
                "{what}: the buffer was lent read only"
            )));
        };
        if buf.kind() != kind {
            return Err(Error::Usage(format!(
                "{what}: the buffer holds {:?} elements, {held} {kind:?}",
                buf.kind()
            )));
        }
        if buf.len() != len {
            return Err(Error::Usage(format!(
                "{what}: the buffer has room for {} elements, {held} {len}; the buffer was not written",
                buf.len()
            )));
        }
        let Some(expected) = &self.shape else {
            return Ok(());
        };
        let shape = shape()?;
        if &shape != expected {
            return Err(Error::Usage(format!(
                "{what}: the array has shape {expected:?}, {held} {shape:?}; the buffer was not written"
            )));
        }
        Ok(())
    }
}

/// The shape of the engines' arrays (elements and shape each) stacked
/// along axis 0; an error if they differ after axis 0 or have no axes.
pub(crate) fn stacked_shape(parts: &[(usize, Vec<usize>)]) -> Result<Vec<usize>> {
    let mut rows = 0;
    let mut rest: Option<&[usize]> = None;
    for (_, shape) in parts {
        let Some((&r, tail)) = shape.split_first() else {
            return Err(Error::Usage("cannot gather 0-dimensional arrays".into()));
        };
        match rest {
            Some(expected) if expected != tail => {
                return Err(Error::Usage(format!(
                "engines hold arrays of different shapes ({expected:?} vs {tail:?} after axis 0)"
            )))
            }
            _ => rest = Some(tail),
        }
        rows += r;
    }
    Ok(std::iter::once(rows)
        .chain(rest.unwrap_or_default().iter().copied())
        .collect())
}

/// Puts the per-engine `()`s of a collective together.
pub(crate) fn finish_units(outcomes: &mut [(usize, Result<Payload>)]) -> Result<()> {
    let errors: Vec<Error> = outcomes
        .iter()
        .filter_map(|(_, o)| o.as_ref().err().cloned())
        .collect();
    crate::error::combine(errors).map_or(Ok(()), Err)
}
