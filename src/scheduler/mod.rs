//! The load-balancing policy: where tasks run, when they may run, and how
//! idle engines steal work. Pure: no MPI, no threads, no I/O, no clock.
//!
//! The controller (rank 0) keeps a [`TaskTable`]: task states, dependencies
//! (`after`, `follow`, `all`/`any`, success only or also on failure,
//! timeouts), retries, aborts, placement with bounded prefetch, batching, and
//! the per-engine counts of [`QueueStatus`]. Each engine keeps a
//! [`LocalQueue`] (the tasks it was sent or stole, shared by its MPI thread
//! and its execution thread) and a [`Thief`] (which peer to steal from).
//! [`map`] holds the chunking rule of `map`, the assembly of results in input
//! or completion order, and the `imap` window. Sending, receiving, threads
//! and time are left to the controller and the engines: every function here
//! takes what happened (a reply, a steal notice, `now`) and returns what to
//! do. The protocol the runtime follows with it is in `README.md` beside
//! this file.
//!
//! This file only assembles. The files, from the bottom: `ids` (task ids,
//! engine ids, engine sets), `steal` (who may steal a task, when a stolen
//! task may start, and the thief), `local` (an engine's queue), `deps`,
//! `status`, `placement` (prefetch depth, per-engine accounts), `task`
//! (what goes into the table and comes out), `finals` (the rows of final
//! tasks), `table` (the controller's task table), and `map` (the view's side of `map`).

mod deps;
mod finals;
mod ids;
mod local;
pub(crate) mod map;
mod placement;
mod room;
mod status;
mod steal;
mod table;
mod task;

pub(crate) use deps::{DepSet, Mode};
pub(crate) use ids::{EngineId, EngineSet, TaskId, TaskMap};
pub(crate) use local::{LocalQueue, Queued};
pub(crate) use placement::Config;
pub(crate) use room::shrink;
pub use status::{EngineStatus, QueueStatus};
#[cfg(test)]
use steal::StealRequest;
pub(crate) use steal::{Fence, Stealable, Thief};
pub(crate) use table::TaskTable;
pub(crate) use task::{AbortOrder, Completion, Report, Task};
#[cfg(test)]
use task::{Batch, Outcome, State};

#[cfg(test)]
mod tests;
