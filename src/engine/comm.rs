//! The MPI thread's state ([`Comm`]): the rank's MPI handle, the inbox,
//! the collectives and steals in progress, and the basic ways it talks to
//! the controller (replies, progress reports, failures), and the tasks'
//! team communicators ([`Teams`]). Steals and collectives add their
//! methods in their own files.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use crate::bulk::{BulkVec, ReduceOp};
use crate::error::{Error, Result};
use crate::protocol::{self, Blobs, Failure, GroupSpec, Outcome, Reply, TaskId, ValueSpec};
use crate::scheduler::Thief;
use crate::transport::{Mpi, Receive, Teams};

use super::inbox::Inbox;
use super::job::{now_us, quiet_done, Groups, Incoming, Lending};

/// A gather or reduce this engine has prepared and waits to run.
pub(super) struct Prepared {
    pub(super) task: TaskId,
    pub(super) group: GroupSpec,
    pub(super) lending: Lending,
    pub(super) reduce: Option<ReduceOp>,
    pub(super) _resume: Sender<()>,
}

/// A scatter or broadcast this engine has its buffer ready for, waiting
/// for the controller's `Go` (see the controller's "Two phases").
pub(super) struct AwaitingGo {
    pub(super) task: TaskId,
    pub(super) group: GroupSpec,
    pub(super) how: Receive,
    pub(super) name: String,
    pub(super) value: ValueSpec,
    pub(super) shape: Vec<u64>,
    pub(super) buf: BulkVec,
    /// Where the value goes once received, when its store is already queued.
    pub(super) later: Option<Sender<Result<Incoming>>>,
}

/// The MPI thread's state.
pub(crate) struct Comm {
    pub(super) mpi: Mpi,
    pub(super) inbox: Arc<Inbox>,
    /// A clean shutdown has closed the inbox.
    pub(super) closing: bool,
    pub(super) prepared: Option<Prepared>,
    /// Two-phase scatters and broadcasts waiting for their `Go` (several
    /// views may have one each).
    pub(super) receiving: HashMap<TaskId, AwaitingGo>,
    /// Reduce ops of `Prepare` requests forwarded to the execution thread.
    pub(super) reduces: HashMap<TaskId, (GroupSpec, Option<ReduceOp>)>,
    /// Messages received from the controller (the stream fence's count).
    pub(super) received: u64,
    /// Whom to steal from.
    pub(super) thief: Thief,
    /// The group tasks this engine leads or takes part in.
    pub(super) groups: Groups,
    /// The communicators of tasks' teams, and their operations in flight.
    pub(super) teams: Teams,
}

impl Comm {
    pub(super) fn send(&mut self, reply: Reply) -> Result<()> {
        self.send_to(0, reply)
    }

    pub(super) fn send_to<M: serde::Serialize + Blobs>(
        &mut self,
        rank: usize,
        mut message: M,
    ) -> Result<()> {
        let framed = protocol::encode_framed(&mut message)?;
        self.mpi.send_framed(rank, &framed.head, &framed.blobs)
    }

    /// Sends what the execution thread started and finished since the last
    /// call, in one message; true if there was something to send.
    pub(super) fn report_progress(&mut self) -> Result<bool> {
        let Some((started, done)) = self.inbox.take_progress() else {
            return Ok(false);
        };
        self.send(Reply::Progress { started, done })?;
        Ok(true)
    }

    /// Nothing this thread carries needs it soon: no bulk send in flight
    /// (`Mpi::sending_bulk`), and no collective, group task or team
    /// operation under way (see `serve`'s dozing).
    pub(super) fn calm(&self) -> bool {
        !self.mpi.sending_bulk()
            && self.prepared.is_none()
            && self.receiving.is_empty()
            && self.reduces.is_empty()
            && self.groups.is_empty()
            && !self.teams.active()
    }

    /// Reports a failed request to the controller.
    pub(super) fn fail(&mut self, task: TaskId, error: Error) -> Result<()> {
        let now = now_us();
        let outcome = Outcome::Failed(Failure::from_error(error));
        self.send(Reply::Done(quiet_done(task, now, now, outcome)))
    }
}
