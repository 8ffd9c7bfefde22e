//! A result's link to the controller: what it needs to abort the work
//! behind it and, for load-balanced tasks, to let the controller forget
//! their rows once the last handle is dropped.
//!
//! The link is the client's ([`Link`], implemented in `client.rs`), so a
//! result holds a pointer to it, not its own channel; what the work is
//! ([`Behind`]) names no more than the parts do not already say. The
//! result's state keeps the [`Control`] (`state.rs`); when it is used is
//! [`AsyncResult`](crate::AsyncResult)'s (`mod.rs`).

use std::sync::Arc;

use crate::error::Result;
use crate::protocol::TaskId;

/// The client's way to the controller, as results use it.
pub(crate) trait Link: Send + Sync {
    /// The controller may forget these load-balanced tasks' rows.
    fn forget(&self, tasks: Forgotten) -> Result<()>;
    /// Aborts these load-balanced tasks where they have not started.
    fn abort(&self, tasks: Vec<TaskId>) -> Result<()>;
    /// Aborts a direct-view request where it still waits on `engines`.
    fn abort_direct(&self, task: TaskId, engines: Arc<[usize]>) -> Result<()>;
}

/// The load-balanced tasks whose rows the controller may forget once a
/// result's last handle goes: a task's own result names one, kept inline
/// (every dropped result sends one, and allocates nothing for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Forgotten {
    One(TaskId),
    Many(Vec<TaskId>),
}

impl Forgotten {
    pub(crate) fn as_slice(&self) -> &[TaskId] {
        match self {
            Forgotten::One(task) => std::slice::from_ref(task),
            Forgotten::Many(tasks) => tasks,
        }
    }
}

impl Behind {
    /// The load-balanced `tasks`.
    pub(crate) fn balanced(tasks: Vec<TaskId>) -> Behind {
        Behind::Balanced(Box::new(tasks))
    }
}

/// A result's link to the controller.
pub(crate) struct Control {
    pub link: Arc<dyn Link>,
    /// What the result stands for.
    pub work: Behind,
}

/// The work behind a result, as its link to the controller names it.
pub(crate) enum Behind {
    /// One load-balanced task, the result's one part's (its id is the
    /// part's): abortable until it starts, and forgotten by the controller
    /// when the last handle goes.
    Task,
    /// Load-balanced tasks (none for an empty map; for a submission that
    /// failed before it was sent, the id it was registered under), as
    /// `Task`. Boxed, so that every result's state is a word smaller: few
    /// results have it.
    #[allow(clippy::box_collection)]
    Balanced(Box<Vec<TaskId>>),
    /// A direct-view request (the task and engines of the result's
    /// parts): abortable while it waits in an engine's stream.
    Direct,
    /// A collective: part of every rank's collective order once sent, so it
    /// cannot be taken back.
    Collective,
}
