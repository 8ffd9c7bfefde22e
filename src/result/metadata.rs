//! `Metadata`: the timing and output of one part of a task (one engine's
//! share of a submission, or one load-balanced task).
//!
//! Filled by the result's shared state (`state.rs`) as replies settle, read
//! through [`AsyncResult::metadata`](crate::AsyncResult::metadata), and
//! turned into timeline records by `timeline`. Plain data: below both the
//! results and the timelines.

use std::time::SystemTime;

use crate::protocol::TaskId;

/// Timing and output of one task on one engine (ipyparallel's `metadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Engine id the task ran on. For a load-balanced task, the engine that
    /// ran it ([`usize::MAX`] until then, or if it never ran); for a
    /// [`LocalPool`](crate::LocalPool) task, the pool thread's index.
    pub engine: usize,
    /// A load-balanced task ran on another engine than the one it was sent
    /// to: an idle engine stole it. Always false for direct views.
    pub stolen: bool,
    /// Task id (shared by every engine of one submission).
    pub task: TaskId,
    /// What the task ran: the remote function's path (`my_crate::norm`),
    /// or the request's kind for the others (`"push"`, `"pull"`, `"keys"`,
    /// `"clear"`, `"scatter"`, `"gather"`, `"broadcast push"`, `"reduce"`,
    /// `"MPI section"`). Timelines colour their bars by it.
    pub function: &'static str,
    /// When the client submitted the task.
    pub submitted: SystemTime,
    /// When the engine started it (engine clock).
    pub started: Option<SystemTime>,
    /// When the engine finished it (engine clock).
    pub completed: Option<SystemTime>,
    /// When the controller received the reply.
    pub received: Option<SystemTime>,
    /// What the task wrote to stdout: its last 1 MiB by default, after a
    /// line `[rankview: N earlier bytes cut]` when longer (the README's
    /// "Output capture" says exactly what counts as the task's).
    pub stdout: String,
    /// What the task wrote to stderr, kept as `stdout` is.
    pub stderr: String,
}
