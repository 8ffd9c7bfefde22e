//! The controller's side of load balancing: the task table at work.
//!
//! Owns the [`TaskTable`] and the result of every load-balanced task not
//! yet final. It feeds the table what the client submits and what engines
//! report (progress, steal notices, aborts), and carries out what the table
//! returns: batches of tasks and abort orders to send, results to deliver.
//! The policy (placement, dependencies, retries, steal accounting) is the
//! scheduler's; the messages are in `src/scheduler/README.md`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::error::Result;
use crate::protocol::{self, Done, Request, TaskId, Work};
use crate::result::ResultState;
use crate::scheduler::{
    shrink, AbortOrder, Completion, Config, Fence, QueueStatus, Report, Task, TaskMap, TaskTable,
};
use crate::transport::Mpi;

use super::wire::internal;

/// Load-balanced tasks from submission to their final result.
pub(super) struct Balancer {
    table: TaskTable<Work>,
    /// The result of each task not final yet.
    results: TaskMap<Arc<ResultState>>,
    engines: usize,
    /// Something happened since the last [`flush`](Balancer::flush).
    dirty: bool,
    /// Tasks forgotten since the heap was last trimmed (see
    /// [`forget`](Balancer::forget)).
    forgotten: usize,
    /// Tasks final since the heap was last trimmed (see
    /// [`progress`](Balancer::progress)).
    settled: usize,
    /// The most rows held at once since the table was last empty at a trim.
    peak: usize,
}

/// Forgotten tasks below which the heap is never trimmed.
const TRIM_AFTER: usize = 1 << 16;

impl Balancer {
    pub(super) fn new(engines: usize) -> Balancer {
        Balancer {
            table: TaskTable::new(engines, Config::default()),
            results: TaskMap::default(),
            engines,
            dirty: false,
            forgotten: 0,
            settled: 0,
            peak: 0,
        }
    }

    /// No task is waiting, queued or running.
    pub(super) fn is_idle(&self) -> bool {
        self.table.is_idle()
    }

    /// Tasks not final yet, for shutdown messages.
    pub(super) fn outstanding(&self) -> Vec<TaskId> {
        let mut tasks: Vec<TaskId> = self.results.keys().copied().collect();
        tasks.sort_unstable();
        tasks
    }

    /// When [`tick`](Balancer::tick) should next run, if ever.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.table.next_deadline()
    }

    pub(super) fn status(&self) -> QueueStatus {
        self.table.status()
    }

    /// The direct work each engine has not answered (`work(engine)`), for
    /// placement, refreshed loads and the queue status.
    pub(super) fn set_direct(&mut self, work: impl Fn(usize) -> usize) {
        for engine in 0..self.engines {
            self.dirty |= self.table.set_direct(engine, work(engine));
        }
    }

    pub(super) fn submit(&mut self, task: Task<Work>, state: Arc<ResultState>) {
        self.results.insert(task.id, state);
        self.table.submit(task, Instant::now);
        self.peak = self.peak.max(self.table.rows());
        self.dirty = true;
    }

    /// Aborts `tasks` (every task not final when `None`).
    pub(super) fn abort(&mut self, tasks: Option<Vec<TaskId>>, mpi: &mut Mpi) {
        let tasks = tasks.unwrap_or_else(|| self.outstanding());
        let orders = self.table.abort(&tasks);
        self.send_aborts(orders, mpi);
        self.dirty = true;
    }

    /// A load-balanced submission that failed before it was sent (its
    /// result has failed already): the table knows it as a task that never
    /// ran, for the tasks that depend on it.
    pub(super) fn failed(&mut self, task: TaskId) {
        self.table.never_ran(task);
        self.dirty = true;
    }

    /// The results of `tasks` are gone: their rows may go once final.
    ///
    /// Once many results have gone (at least [`TRIM_AFTER`], and at least
    /// as many as the rows still held, so that a burst of a million drops
    /// trims a few times, each time on half the rows), or once the last
    /// row has gone after a sixteenth of that, the process's heap is
    /// trimmed: the results and rows were small blocks, which glibc's
    /// malloc keeps in its free lists, resident, after they are freed.
    /// Only after a burst of at least [`TRIM_AFTER`] rows held at once: a
    /// smaller burst's memory serves the next one, which would otherwise
    /// fault every page in again (bench `w2`, 20,000 tasks a repetition,
    /// spent a quarter of the client thread's time in page faults).
    pub(super) fn forget(&mut self, tasks: &[TaskId]) {
        for &task in tasks {
            self.table.forget(task);
        }
        self.forgotten += tasks.len();
        let rows = self.table.rows();
        let many = self.forgotten >= TRIM_AFTER.max(rows);
        let last = rows == 0 && self.forgotten >= TRIM_AFTER / 16;
        if self.peak >= TRIM_AFTER && (many || last) {
            self.forgotten = 0;
            if rows == 0 {
                self.peak = 0;
            }
            trim_heap();
        }
    }

    /// Fails tasks whose dependencies timed out.
    pub(super) fn tick(&mut self) {
        if self
            .table
            .next_deadline()
            .is_some_and(|d| d <= Instant::now())
        {
            self.table.tick(Instant::now());
            self.dirty = true;
        }
    }

    /// `engine` started and finished tasks.
    pub(super) fn progress(&mut self, engine: usize, started: Vec<TaskId>, done: Vec<Done>) {
        for task in started {
            self.table.started(engine, task);
        }
        let received = SystemTime::now();
        for done in done {
            let ok = done.outcome.succeeded();
            let duration = done.completed_us.checked_sub(done.started_us);
            let report = Report {
                ok,
                hops: done.hops,
                duration: duration.map(Duration::from_micros),
            };
            match self.table.completed(engine, done.task, report) {
                Completion::Final { stolen } => {
                    if let Some(state) = self.results.remove(&done.task) {
                        state.complete_task(done, engine, stolen, received);
                    }
                    shrink(&mut self.results);
                    self.settled += 1;
                }
                // A later try answers; an unknown task was settled already.
                Completion::Retry { .. } | Completion::Unknown => {}
            }
        }
        // The end of a burst of tasks: what they needed while pending
        // (rows, queues, messages) is free, and the results are held,
        // so the heap's free pages go back, as after forgetting (and, as
        // there, only after a burst of at least `TRIM_AFTER` rows at once).
        if self.results.is_empty() && self.settled >= TRIM_AFTER && self.peak >= TRIM_AFTER {
            self.settled = 0;
            trim_heap();
        }
        self.dirty = true;
    }

    /// `thief` stole `tasks` from `victim`.
    pub(super) fn stolen(
        &mut self,
        victim: usize,
        thief: usize,
        tasks: &[(TaskId, u32)],
        mpi: &mut Mpi,
    ) {
        let orders = self.table.stolen(victim, thief, tasks);
        self.send_aborts(orders, mpi);
        self.dirty = true;
    }

    /// An engine removed `tasks` from its queue on an abort.
    pub(super) fn aborted(&mut self, tasks: &[TaskId]) {
        for &task in tasks {
            self.table.aborted(task);
        }
        self.dirty = true;
    }

    /// Delivers the failures the table decided and sends what became
    /// ready, once per pass of the controller's loop (after every command
    /// and message of the pass), so that tasks submitted or freed together
    /// leave together, in one message per engine. A send that fails is an
    /// internal failure: the job ends. True if anything happened.
    pub(super) fn flush(&mut self, mpi: &mut Mpi) -> bool {
        if !std::mem::take(&mut self.dirty) {
            return false;
        }
        for (task, error) in self.table.take_failed() {
            if let Some(state) = self.results.remove(&task) {
                state.fail(0, error);
            }
        }
        shrink(&mut self.results);
        let fence = Fence::new(mpi.sent_counts(self.engines));
        let batches = self.table.dispatch(&fence);
        let refreshes = self.table.refreshes();
        if batches.is_empty() && refreshes.is_empty() {
            return true;
        }
        let loads = self.table.loads();
        let counts = fence.counts();
        for batch in batches {
            let request = Request::Tasks {
                loads: loads.clone(),
                fence: counts.clone(),
                tasks: batch
                    .tasks
                    .into_iter()
                    .map(protocol::WireTask::from_queued)
                    .collect(),
            };
            if let Err(e) = send(mpi, batch.engine, request) {
                internal(
                    mpi,
                    &format!("cannot send tasks to engine {}: {e}", batch.engine),
                );
            }
        }
        // Idle engines get the figures alone, with the counts after the
        // batches above: a steal they make waits until its victim has
        // received what the figures count.
        if !refreshes.is_empty() {
            let after = mpi.sent_counts(self.engines);
            for engine in refreshes {
                let request = Request::Tasks {
                    loads: loads.clone(),
                    fence: after.clone(),
                    tasks: Vec::new(),
                };
                if let Err(e) = send(mpi, engine, request) {
                    internal(mpi, &format!("cannot send loads to engine {engine}: {e}"));
                }
            }
        }
        true
    }

    fn send_aborts(&mut self, orders: Vec<AbortOrder>, mpi: &mut Mpi) {
        for order in orders {
            let request = Request::Abort { tasks: order.tasks };
            if let Err(e) = send(mpi, order.engine, request) {
                internal(
                    mpi,
                    &format!("cannot send an abort to engine {}: {e}", order.engine),
                );
            }
        }
    }
}

/// Returns the free pages of every malloc arena to the system.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and only reorganizes glibc's
    // own free lists (under its arena locks); any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn send(mpi: &mut Mpi, engine: usize, mut request: Request) -> Result<()> {
    let framed = protocol::encode_framed(&mut request)?;
    mpi.send_framed(engine + 1, &framed.head, &framed.blobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::allocations::measure;
    use crate::scheduler::{EngineSet, Fence};

    /// Submits `tasks` and runs each to an empty reply, as engines would.
    fn run_all(balancer: &mut Balancer, tasks: std::ops::Range<usize>) {
        let view = EngineSet::new([0, 1]);
        for i in tasks {
            let task = i as TaskId;
            let state = ResultState::new(task, &[usize::MAX], &"noop", false);
            let work = Work::Apply {
                task,
                function: 1,
                args: Default::default(),
            };
            balancer.submit(Task::new(task, work, view.clone()), state);
        }
        loop {
            let batches = balancer.table.dispatch(&Fence::none());
            if batches.is_empty() {
                break;
            }
            for batch in batches {
                for queued in batch.tasks {
                    let done = crate::result::state::empty_reply(queued.task);
                    balancer.progress(batch.engine, vec![queued.task], vec![done]);
                }
            }
        }
    }

    /// What the controller keeps per load-balanced task once it is final,
    /// while its result is held and once the result is forgotten.
    #[test]
    fn a_finished_task_costs_the_controller_little() {
        const N: usize = 10_000;
        let mut balancer = Balancer::new(2);
        let ((), held) = measure(|| run_all(&mut balancer, 0..N));
        let tasks: Vec<TaskId> = (0..2 * N as TaskId).collect();
        let ((), forgotten) = measure(|| {
            run_all(&mut balancer, N..2 * N);
            balancer.forget(&tasks);
        });
        let per = |bytes: usize| bytes as f64 / N as f64;
        println!(
            "controller per finished task: {:.0} bytes held ({:.0} at peak, {:.1} \
             allocations), {:.0} kept once forgotten",
            per(held.live),
            per(held.peak),
            held.allocations as f64 / N as f64,
            per(forgotten.live),
        );
        assert!(balancer.results.is_empty());
        assert!(
            per(held.live) <= 24.0,
            "a held final task's row stays small (a page row, `scheduler/finals.rs`)"
        );
        assert!(
            per(forgotten.live) <= 8.0,
            "a forgotten task leaves nothing"
        );
    }
}
