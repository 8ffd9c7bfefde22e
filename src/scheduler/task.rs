//! What goes into the controller's task table and what comes out: a task as
//! the view submits it ([`Task`]), where a task is in its life ([`State`],
//! [`Outcome`]), what an engine's reply says ([`Report`]), and what the
//! controller must do ([`Batch`], [`AbortOrder`], [`Completion`]).
//!
//! Plain values; the table that moves tasks through these states is
//! `table.rs`.

use std::time::Duration;

use super::deps::{DepSet, Ended};
use super::ids::{EngineId, EngineSet, TaskId};
use super::local::Queued;

/// A task as the load-balanced view submits it.
#[derive(Debug, Clone)]
pub(crate) struct Task<T> {
    pub id: TaskId,
    /// The request to run (opaque here: function and arguments).
    pub payload: T,
    /// The engines it may run on.
    pub view: EngineSet,
    /// Start only once these are done.
    pub after: Option<DepSet>,
    /// Start once these are done, on the engine where they ran.
    pub follow: Option<DepSet>,
    /// How long the dependencies may take to be met, from submission.
    pub timeout: Option<Duration>,
    /// How many more times to try after a failure.
    pub retries: u32,
}

impl<T> Task<T> {
    /// A task with no dependencies, no timeout, no retries.
    pub(crate) fn new(id: TaskId, payload: T, view: EngineSet) -> Task<T> {
        Task {
            id,
            payload,
            view,
            after: None,
            follow: None,
            timeout: None,
            retries: 0,
        }
    }

    pub(crate) fn after(self, deps: DepSet) -> Task<T> {
        Task {
            after: Some(deps),
            ..self
        }
    }

    pub(crate) fn follow(self, deps: DepSet) -> Task<T> {
        Task {
            follow: Some(deps),
            ..self
        }
    }

    pub(crate) fn timeout(self, timeout: Duration) -> Task<T> {
        Task {
            timeout: Some(timeout),
            ..self
        }
    }

    pub(crate) fn retries(self, retries: u32) -> Task<T> {
        Task { retries, ..self }
    }
}

/// How a finished task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its last try succeeded on this engine.
    Succeeded(EngineId),
    /// Its last try failed on this engine.
    Failed(EngineId),
    /// It never ran: impossible dependency or dependency timeout.
    NotRun,
}

/// Where a task is in its life.
///
/// ```text
/// Waiting ──deps met──▶ Ready ──dispatch──▶ Queued{E} ──start──▶ Running{E} ──▶ Done(ok / failed)
///    │                    │                   │  ▲ stolen: Queued{F}               │ failed, tries left
///    │                    │                   │  └─────────                        ▼
///    │                    │                   │                  Retrying ──dispatch──▶ Queued{F ≠ E}
///    ├── impossible / timeout ──▶ Done(NotRun)
///    └──────── abort ─────┴───────── abort ───┴──▶ Aborted
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Its dependencies are not met yet.
    Waiting,
    /// Its dependencies are met; not sent (every suitable queue is full).
    Ready,
    /// Sent to (or stolen by) `engine`, not started.
    Queued { engine: EngineId, stolen: bool },
    /// Started on `engine`.
    Running { engine: EngineId, stolen: bool },
    /// A try failed on `failed_on`; try number `attempt` is not sent yet.
    Retrying { attempt: u32, failed_on: EngineId },
    /// Finished (final).
    Done(Outcome),
    /// Aborted before it started (final).
    Aborted,
}

impl State {
    pub(super) fn is_final(self) -> bool {
        matches!(self, State::Done(_) | State::Aborted)
    }

    /// A final state as its compact row (`None` for a live one).
    pub(super) fn to_final(self) -> Option<Final> {
        let engine = |e: EngineId| u32::try_from(e).unwrap_or(u32::MAX);
        match self {
            State::Done(Outcome::Succeeded(e)) => Some(Final::Succeeded(engine(e))),
            State::Done(Outcome::Failed(e)) => Some(Final::Failed(engine(e))),
            State::Done(Outcome::NotRun) => Some(Final::NotRun),
            State::Aborted => Some(Final::Aborted),
            _ => None,
        }
    }

    /// How a dependency in this state ended, if it has.
    pub(super) fn ended(self) -> Option<Ended> {
        match self {
            State::Done(Outcome::Succeeded(e)) => Some(Ended::Succeeded(e)),
            State::Done(Outcome::Failed(e)) => Some(Ended::Failed(Some(e))),
            State::Done(Outcome::NotRun) | State::Aborted => Some(Ended::Failed(None)),
            _ => None,
        }
    }
}

/// What the table keeps of a final task until it is forgotten: what its
/// dependents read (8 bytes, where a live row takes hundreds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Final {
    Succeeded(u32),
    Failed(u32),
    NotRun,
    Aborted,
}

impl Final {
    pub(super) fn state(self) -> State {
        let engine = |e: u32| e as EngineId;
        match self {
            Final::Succeeded(e) => State::Done(Outcome::Succeeded(engine(e))),
            Final::Failed(e) => State::Done(Outcome::Failed(engine(e))),
            Final::NotRun => State::Done(Outcome::NotRun),
            Final::Aborted => State::Aborted,
        }
    }
}

/// Tasks to send to one engine in one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch<T> {
    pub engine: EngineId,
    pub tasks: Vec<Queued<T>>,
}

/// Abort requests to send to one engine (tasks it holds, not started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AbortOrder {
    pub engine: EngineId,
    pub tasks: Vec<TaskId>,
}

/// What an engine's reply says about one try of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    pub ok: bool,
    /// The task's steal count when it ran (0: it ran where it was sent).
    pub hops: u32,
    /// How long it ran, if known (tunes the engine's prefetch depth).
    pub duration: Option<Duration>,
}

/// What the controller does with a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// The task's final result: deliver it. `stolen` when it ran on another
    /// engine than the one it was sent to.
    Final { stolen: bool },
    /// The try failed and the task will be tried again (try number
    /// `attempt`): hold the error, deliver nothing.
    Retry { attempt: u32 },
    /// Not a task this table is running (a repeat or a late message): ignore.
    Unknown,
}
