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

mod deps;
mod local;
pub(crate) mod map;
mod status;
mod steal;
mod table;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use deps::{DepSet, Mode};
pub(crate) use local::{LocalQueue, Queued};
pub use status::{EngineStatus, QueueStatus};
#[cfg(test)]
use steal::StealRequest;
pub(crate) use steal::Thief;
pub(crate) use table::{AbortOrder, Completion, Report, Task, TaskTable};
#[cfg(test)]
use table::{Batch, Outcome, State};

/// A task id, as in the protocol.
pub(crate) type TaskId = crate::protocol::TaskId;

/// An engine id (0-based; MPI rank minus one).
pub(crate) type EngineId = usize;

/// A set of engines (a view's targets), sorted and without repeats; cheap to
/// clone, so that every task of a view shares one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EngineSet(Arc<[EngineId]>);

impl EngineSet {
    /// The set of `engines`, in any order, repeats allowed.
    pub(crate) fn new(engines: impl IntoIterator<Item = EngineId>) -> EngineSet {
        let mut v: Vec<EngineId> = engines.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        EngineSet(v.into())
    }

    #[cfg(test)]
    /// Engines `0..n`.
    pub(crate) fn all(n: usize) -> EngineSet {
        EngineSet((0..n).collect())
    }

    pub(crate) fn contains(&self, engine: EngineId) -> bool {
        self.0.binary_search(&engine).is_ok()
    }

    /// The engines, in increasing order.
    pub(crate) fn as_slice(&self) -> &[EngineId] {
        &self.0
    }

    /// The engines, in increasing order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = EngineId> + '_ {
        self.0.iter().copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How many messages the controller had sent to each engine when a batch
/// of tasks left: a stolen task may start on its thief only once the thief
/// has received that many messages from the controller (see "Stream fence"
/// in `README.md`). Shared by every task of one dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Fence(Option<Arc<[u64]>>);

impl Fence {
    /// Messages sent so far, per engine.
    pub(crate) fn new(sent: impl Into<Arc<[u64]>>) -> Fence {
        Fence(Some(sent.into()))
    }

    #[cfg(test)]
    /// No constraint.
    pub(crate) fn none() -> Fence {
        Fence(None)
    }

    /// The counts, per engine (empty: no constraint), as they travel.
    pub(crate) fn counts(&self) -> Vec<u64> {
        self.0.as_ref().map(|c| c.to_vec()).unwrap_or_default()
    }

    /// How many controller messages `engine` must have received before it
    /// may start the task (0: none).
    pub(crate) fn for_engine(&self, engine: EngineId) -> u64 {
        self.0
            .as_ref()
            .and_then(|sent| sent.get(engine).copied())
            .unwrap_or(0)
    }
}

/// Who may take a queued task away from the engine holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stealable {
    /// Nobody: the task is pinned (`follow`, or a retry of a pinned task).
    Never,
    /// Any engine of the job.
    Anyone,
    /// Only these engines (the task's view, minus engines it failed on).
    Only(EngineSet),
}

impl Stealable {
    /// Whether `thief` may take the task.
    pub(crate) fn by(&self, thief: EngineId) -> bool {
        match self {
            Stealable::Never => false,
            Stealable::Anyone => true,
            Stealable::Only(set) => set.contains(thief),
        }
    }
}

/// How deep the controller fills each engine's local queue, and how many
/// tasks go in one message.
///
/// ## Prefetch depth
///
/// An engine holds at most `depth` tasks that it was sent and has not
/// finished (queued plus running). The depth adapts to the tasks: with `d`
/// the engine's mean task duration (a moving average of the durations its
/// replies report), `depth = 1 + ceil(round_trip / d)`, clamped to
/// `min_depth..=max_depth`: one task running plus enough queued behind it to
/// cover the time a reply takes to bring the next batch. Before any reply,
/// `min_depth`. Long tasks thus get a shallow queue (a long task strands at
/// most `min_depth - 1` tasks behind it, and those can be stolen), and tiny
/// tasks a deep one (the wire latency is hidden).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Depth before any duration is known, and the least depth (at least 1).
    pub min_depth: usize,
    /// The greatest depth.
    pub max_depth: usize,
    /// Estimated time from sending a batch to receiving a reply that frees room.
    pub round_trip: Duration,
    /// The most tasks in one batch (one message).
    pub max_batch: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            min_depth: 2,
            max_depth: 512,
            round_trip: Duration::from_micros(200),
            max_batch: 512,
        }
    }
}

impl Config {
    /// The prefetch depth for an engine whose tasks last `mean` on average
    /// (`None`: not known yet). See "Prefetch depth".
    pub(crate) fn depth(&self, mean: Option<Duration>) -> usize {
        let min = self.min_depth.max(1);
        let max = self.max_depth.max(min);
        let Some(mean) = mean else {
            return min;
        };
        if mean.is_zero() {
            return max;
        }
        let ahead = self.round_trip.as_nanos().div_ceil(mean.as_nanos());
        let depth = usize::try_from(ahead.saturating_add(1)).unwrap_or(usize::MAX);
        depth.clamp(min, max)
    }
}

#[cfg(test)]
mod test;
