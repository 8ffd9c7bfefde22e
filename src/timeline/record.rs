//! [`TimelineRecord`]: one part of a task as a timeline shows it, made
//! from a result's [`Metadata`] or from the job log's entry.
//!
//! Plain data below both the timeline (`timeline.rs`, which collects
//! records) and its picture (`draw.rs`, which lays them out).

use std::time::SystemTime;

use crate::protocol::TaskId;
use crate::result::metadata::Metadata;

/// One part of a task: which engine ran what, and when.
///
/// A part is one engine's share of a direct submission or a collective, or
/// one load-balanced task (for a `map`, one task of `chunksize` items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRecord {
    /// The engine it ran on; `None` for a load-balanced task that never ran
    /// (aborted, or its dependencies failed).
    pub engine: Option<usize>,
    /// What it ran, as in [`Metadata::function`].
    pub function: &'static str,
    /// The task id, as in [`Metadata::task`].
    pub task: TaskId,
    /// When the client submitted it (client clock).
    pub submitted: SystemTime,
    /// When the engine started it (engine clock); `None` for parts that
    /// rank 0 completes itself (those of a gather or a reduce, whose data
    /// it assembles) and for parts that never ran.
    pub started: Option<SystemTime>,
    /// When the engine finished it (engine clock), as `started`.
    pub completed: Option<SystemTime>,
    /// When the client had its reply (client clock); `None` while it runs.
    pub received: Option<SystemTime>,
    /// A load-balanced task that an idle engine stole from another's queue.
    pub stolen: bool,
}

impl From<&Metadata> for TimelineRecord {
    fn from(meta: &Metadata) -> Self {
        TimelineRecord {
            engine: (meta.engine != usize::MAX).then_some(meta.engine),
            function: meta.function,
            task: meta.task,
            submitted: meta.submitted,
            started: meta.started,
            completed: meta.completed,
            received: meta.received,
            stolen: meta.stolen,
        }
    }
}
