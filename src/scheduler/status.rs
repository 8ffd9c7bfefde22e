//! Queue status: per engine, how many load-balanced tasks are queued,
//! running and completed, how many were stolen in and out, and how much
//! direct work it has not answered; plus the tasks the controller holds back
//! (waiting on dependencies, or ready and not sent). The task table fills
//! it; this file owns the figures and their table layout.

use std::fmt;

use super::ids::EngineId;

/// One engine's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStatus {
    /// Engine id.
    pub engine: EngineId,
    /// Sent (or stolen) and not started.
    pub queued: usize,
    /// Started and not finished.
    pub running: usize,
    /// Runs finished here (each try of a retried task counts).
    pub completed: usize,
    /// Tasks this engine stole.
    pub stolen_in: usize,
    /// Tasks stolen from this engine.
    pub stolen_out: usize,
    /// Direct work sent to this engine and not answered yet: direct-view
    /// requests and collectives it takes part in (a gather waiting for its
    /// engines counts on each of them). It runs before any queued task, so
    /// an engine busy with a long direct request shows `running 0` and
    /// `direct 1`.
    pub direct: usize,
}

/// Every engine's figures, in engine order, and the controller's own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueStatus {
    /// Per engine, in engine order.
    pub engines: Vec<EngineStatus>,
    /// Waiting on dependencies.
    pub waiting: usize,
    /// Dependencies met (or none), not sent yet: every engine's queue is full.
    pub unassigned: usize,
}

impl fmt::Display for QueueStatus {
    /// A small table, one line per engine, then the controller's line:
    ///
    /// ```text
    /// engine  queued  running  completed  stolen in  stolen out  direct
    ///      0       2        1         40          3           0       0
    ///      1       0        0         38          0           3       1
    /// controller: 5 waiting on dependencies, 12 not sent yet
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "engine  queued  running  completed  stolen in  stolen out  direct"
        )?;
        for e in &self.engines {
            writeln!(
                f,
                "{:>6}  {:>6}  {:>7}  {:>9}  {:>9}  {:>10}  {:>6}",
                e.engine, e.queued, e.running, e.completed, e.stolen_in, e.stolen_out, e.direct
            )?;
        }
        writeln!(
            f,
            "controller: {} waiting on dependencies, {} not sent yet",
            self.waiting, self.unassigned
        )
    }
}
