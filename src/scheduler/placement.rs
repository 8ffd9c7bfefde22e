//! What placement weighs: how deep each engine's queue may be filled and how
//! many tasks go in one message ([`Config`]), the controller's account of
//! each engine ([`Load`]), and the engines a task prefers.
//!
//! Figures and rules only; the table ([`TaskTable`](super::TaskTable))
//! keeps one [`Load`] per engine and decides with them.

use std::time::Duration;

use super::ids::{EngineId, EngineSet};

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
///
/// `round_trip` is 5 ms, not the wire's tens of microseconds: an idle
/// controller and an engine's MPI thread whose task is running each sleep
/// up to 1 ms between polls, a refill crosses both, and on a node whose
/// cores the tasks hold, a poller that wakes waits for one: in `metg`
/// (3 ranks on 2 cores) the controller waited 250–340 µs on the run queue
/// per wake-up, and a reply reached it 170–400 µs after its task ended
/// (median of the waits that ran an engine dry; 1.3–2.2 ms at the 90th
/// percentile). With 200 µs the engines of `metg` (tasks of 30 µs to 1 ms)
/// ran dry every few tasks and waited 1–3 ms each time (efficiency
/// 0.5–0.85 at 300 µs), and METG(50 %) of the load-balanced `apply` went
/// from 11 µs to 6 µs at 2 ms; from 2 ms to 5 ms, an engine's idle time
/// between tasks of 300 µs to 1 ms fell from about 10 % to 3–5 %
/// (efficiency 0.85–0.88 to 0.93–0.96).
///
/// `min_depth` is 3: two tasks wait behind a long one. The refill takes a
/// round trip through ranks that sleep between polls when idle (up to a
/// millisecond on each side), and tasks of varied length often put a
/// short one next: with one task waiting, `w4`'s engines (tasks of 20 ms
/// on average, exponentially distributed) sat idle 2–12 ms per 0.6 s run
/// waiting for the next task; with two, 0.2–3 ms.
///
/// `max_depth` is 2,048, so that the depth covers the round trip down to
/// tasks of about 2.5 µs. At 512, tasks of 1 and 3 µs (`metg`) ran an
/// engine dry 160–220 times in 100,000 tasks for 0.1 ms or more; at 2,048,
/// 70–80 times at 1 µs, and efficiency went from 0.27–0.28 to 0.30–0.32 at
/// 1 µs and from 0.48–0.51 to 0.52–0.56 at 3 µs. What a deep queue costs
/// is memory (a queued task is its row and its encoded call; `w6`'s
/// million-task `imap` grew 7.7–8.8 MiB against 6.1–7.0) and tasks to
/// steal back at the end of a burst.
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
            min_depth: 3,
            max_depth: 2_048,
            round_trip: Duration::from_millis(5),
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

/// One engine's account.
#[derive(Debug, Clone, Default)]
pub(super) struct Load {
    pub(super) queued: usize,
    /// Of `queued`, pinned (not stealable).
    pub(super) pinned: usize,
    pub(super) running: usize,
    pub(super) completed: usize,
    pub(super) stolen_in: usize,
    pub(super) stolen_out: usize,
    /// Moving average of task durations, nanoseconds.
    pub(super) mean_ns: Option<u64>,
}

impl Load {
    pub(super) fn outstanding(&self) -> usize {
        self.queued + self.running
    }

    pub(super) fn unqueue(&mut self, pinned: bool) {
        self.queued = self.queued.saturating_sub(1);
        if pinned {
            self.pinned = self.pinned.saturating_sub(1);
        }
    }
}

/// The engines a task should go to: its view without the engines where it
/// failed, unless that leaves none.
pub(super) fn preferred(view: &EngineSet, avoid: &[EngineId]) -> EngineSet {
    if avoid.is_empty() || view.iter().all(|e| avoid.contains(&e)) {
        return view.clone();
    }
    EngineSet::new(view.iter().filter(|e| !avoid.contains(e)))
}
