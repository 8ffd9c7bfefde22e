//! The engine's inbox: the work its execution thread takes, in order.
//!
//! Two queues under one lock, filled by the MPI thread: direct jobs
//! (requests of direct views and the stores and loans of collectives, run in
//! arrival order) and the load-balanced tasks of the [`LocalQueue`] (which
//! peers may steal from). The execution thread always takes a direct job
//! before a task: everything the controller sent this engine before a task
//! has arrived before it (one ordered stream), and a stolen task is held
//! back until its stream fence is reached, so a task runs after every
//! request the client sent its engine before it. A task leaves the queue
//! exactly once, by starting, being stolen or being aborted, each under the
//! lock. A peer's steal is answered under the lock too, saying whether the
//! execution thread is occupied by direct work; one that counted on
//! controller messages this engine has not received yet waits for them.
//! Which tasks may be stolen, and how many, is the scheduler's.
//!
//! What became of the tasks goes back the same way: the execution thread
//! leaves each finished task's reply here and runs the next one at once,
//! and the MPI thread takes them all in one report (see [`Progress`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::protocol::{Done, TaskId, Work};
use crate::scheduler::{EngineId, LocalQueue, Queued};
use crate::sync::{Condvar, Mutex, MutexGuard};

use super::job::Job;

/// What the execution thread runs next.
pub(crate) enum Next {
    Job(Job),
    Task(Queued<Work>),
}

struct State {
    direct: VecDeque<Job>,
    tasks: LocalQueue<Work>,
    /// No more direct jobs will come; the thread ends once both queues are empty.
    closed: bool,
    /// The execution thread waits on the condition variable.
    sleeping: bool,
    /// The execution thread runs a direct job.
    busy: bool,
    progress: Progress,
}

/// The tasks' progress the MPI thread has not reported yet.
///
/// ## Reporting
///
/// A load-balanced task that ends costs no hand-off: its reply waits here
/// while the execution thread runs the next task, and the MPI thread
/// takes every waiting reply on its next pass, in one `Progress` message
/// (bench `w2`). The execution thread asks for that pass at once
/// ([`Inbox::task_done`] says when) once the oldest waiting reply's task
/// started [`REPORT_AFTER`] ago or more: a long task's reply goes at once,
/// a run of short ones in one message per [`REPORT_AFTER`] or so, which
/// keeps the controller's view of the engine that fresh while its queue
/// is full; and once it has nothing left to run, so the last replies never
/// wait.
#[derive(Default)]
struct Progress {
    /// The task running now, while the controller has not been told it started.
    started: Option<TaskId>,
    /// Finished tasks' replies, in the order they ended.
    done: Vec<Done>,
    /// When the first task of `done` started (its `started_us`).
    since_us: Option<u64>,
    /// The execution thread has asked for a pass since `done` was taken last.
    asked: bool,
}

/// How long a reply may wait for others to share its report (see
/// [`Progress`]): a fraction of the controller's round trip estimate, so
/// that the engine's queue is refilled before it runs dry.
pub(crate) const REPORT_AFTER: Duration = Duration::from_micros(50);

impl State {
    /// A steal's tasks and the thief's share after it (see [`Inbox::steal`]).
    fn give(&mut self, max: usize, thief: EngineId) -> (Vec<Queued<Work>>, usize) {
        let occupied = self.busy || !self.direct.is_empty();
        let given = self.tasks.steal(max, thief, occupied);
        let left = self.tasks.share(thief, occupied);
        (given, left)
    }
}

/// What the execution thread has to do (see [`Inbox::occupied`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Occupied {
    Idle,
    Tasks,
    Other,
}

/// A steal's answer to send: the thief, the tasks given, and its share left.
pub(crate) type Answer = (EngineId, Vec<Queued<Work>>, usize);

/// The queues shared by an engine's MPI thread and execution thread.
pub(crate) struct Inbox {
    state: Mutex<State>,
    wake: Condvar,
}

/// How long the execution thread polls before sleeping: replies to a
/// client's next request often come within microseconds. In a loom model
/// (where time does not pass) it sleeps at once.
const SPIN: Duration = if cfg!(loom) {
    Duration::ZERO
} else {
    Duration::from_micros(100)
};

impl Inbox {
    /// The inbox of engine `me`.
    pub(crate) fn new(me: EngineId) -> Inbox {
        Inbox {
            state: Mutex::new(State {
                direct: VecDeque::new(),
                tasks: LocalQueue::new(me),
                closed: false,
                sleeping: false,
                busy: false,
                progress: Progress::default(),
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is complete before anything can
        // panic, so a poisoned lock still holds consistent queues.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self, state: MutexGuard<'_, State>) {
        let sleeping = state.sleeping;
        drop(state);
        if sleeping {
            self.wake.notify_one();
        }
    }

    /// Queues a direct job.
    pub(crate) fn push(&self, job: Job) {
        let mut state = self.lock();
        state.direct.push_back(job);
        self.wake(state);
    }

    /// Queues a direct job ahead of the others: a member's part of a
    /// group task, which its leader and the other members wait for.
    pub(crate) fn push_front(&self, job: Job) {
        let mut state = self.lock();
        state.direct.push_front(job);
        self.wake(state);
    }

    /// Adds load-balanced tasks (sent by the controller or stolen).
    pub(crate) fn add(&self, tasks: Vec<Queued<Work>>) {
        let mut state = self.lock();
        state.tasks.extend(tasks);
        self.wake(state);
    }

    /// This engine has received `count` messages from the controller:
    /// stolen tasks fenced at or below it may start, and steals parked
    /// until then are answered now: (thief, tasks given, left) each.
    pub(crate) fn received(&self, count: u64) -> Vec<Answer> {
        let mut state = self.lock();
        let held = state.tasks.len();
        state.tasks.received(count);
        let answers = state
            .tasks
            .due_steals()
            .into_iter()
            .map(|(thief, max)| {
                let (given, left) = state.give(max, thief);
                (thief, given, left)
            })
            .collect();
        if state.tasks.len() != held || state.sleeping {
            self.wake(state);
        }
        answers
    }

    /// Gives `thief` at most `max` tasks that have not started, and says
    /// how many a steal by it would take now (its share: see
    /// [`LocalQueue::share`]). The execution thread counts as occupied while
    /// it runs a direct job or one waits, since those run before any task.
    ///
    /// A steal whose thief counted on `seen` controller messages to this
    /// engine that have not all arrived is parked instead (`None`), and
    /// answered by [`received`](Inbox::received) once they have.
    pub(crate) fn steal(
        &self,
        max: usize,
        thief: EngineId,
        seen: u64,
    ) -> Option<(Vec<Queued<Work>>, usize)> {
        let mut state = self.lock();
        if !state.tasks.may_answer(seen) {
            state.tasks.park(thief, max, seen);
            return None;
        }
        Some(state.give(max, thief))
    }

    /// Removes these load-balanced tasks and direct-view requests if they
    /// have not started; returns those removed. The direct jobs left keep
    /// their order; collectives' jobs are never removed (every rank of a
    /// collective must take part).
    pub(crate) fn abort(&self, tasks: &[TaskId]) -> Vec<TaskId> {
        let mut state = self.lock();
        let mut removed = state.tasks.abort(tasks);
        if !state.direct.is_empty() {
            let wanted: std::collections::HashSet<TaskId> = tasks.iter().copied().collect();
            state.direct.retain(|job| match job.abortable() {
                Some(task) if wanted.contains(&task) => {
                    removed.push(task);
                    false
                }
                _ => true,
            });
        }
        removed
    }

    /// No more direct jobs: the execution thread ends once it has run
    /// everything queued.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.wake(state);
    }

    /// Nothing queued, held or running: the engine may steal.
    pub(crate) fn idle(&self) -> bool {
        self.occupied() == Occupied::Idle
    }

    /// What the execution thread has: nothing ([`Occupied::Idle`]: the
    /// engine may steal), load-balanced tasks only, running or ready
    /// ([`Occupied::Tasks`]), or anything else (direct work, or only
    /// tasks held back by their fence).
    pub(crate) fn occupied(&self) -> Occupied {
        let state = self.lock();
        if !state.direct.is_empty() || state.busy {
            Occupied::Other
        } else if state.tasks.is_idle() {
            Occupied::Idle
        } else if state.tasks.running() > 0 || state.tasks.has_ready() {
            Occupied::Tasks
        } else {
            Occupied::Other
        }
    }

    /// The execution thread finished the direct job [`next`](Inbox::next)
    /// gave it last.
    pub(crate) fn finished(&self) {
        self.lock().busy = false;
    }

    /// The execution thread finished the task [`next`](Inbox::next) gave it
    /// last; its reply waits for the MPI thread's next report. True when
    /// that report is due now: the caller then makes the MPI thread's pass
    /// or wakes it (see [`Progress`]).
    pub(crate) fn task_done(&self, done: Done) -> bool {
        let mut state = self.lock();
        state.tasks.finish();
        let progress = &mut state.progress;
        if progress.started == Some(done.task) {
            progress.started = None;
        }
        let since = *progress.since_us.get_or_insert(done.started_us);
        let waited = Duration::from_micros(done.completed_us.saturating_sub(since));
        progress.done.push(done);
        let idle_next = state.direct.is_empty() && !state.tasks.has_ready();
        let progress = &mut state.progress;
        let due = !progress.asked && (idle_next || waited >= REPORT_AFTER);
        progress.asked |= due;
        due
    }

    /// What the MPI thread is to report: the task running now if the
    /// controller has not been told it started (0 or 1), and the replies of
    /// the tasks finished since the last call; `None` when there is nothing.
    pub(crate) fn take_progress(&self) -> Option<(Vec<TaskId>, Vec<Done>)> {
        let mut state = self.lock();
        let progress = &mut state.progress;
        if progress.started.is_none() && progress.done.is_empty() {
            return None;
        }
        progress.since_us = None;
        progress.asked = false;
        let started = progress.started.take().into_iter().collect();
        Some((started, std::mem::take(&mut progress.done)))
    }

    /// The next thing to run (a direct job first), waiting for one; `None`
    /// once the inbox is closed and empty.
    ///
    /// While it polls (before sleeping), the execution thread makes the
    /// engine loop's passes itself when MPI allows (`super::help`): a request
    /// then goes from the wire to this thread with no hand-off.
    pub(crate) fn next(&self) -> Option<Next> {
        // Read the clock only once there is nothing to run: a queue of
        // short tasks takes the next one without it.
        let mut spin_until = None;
        let mut helping = None;
        let mut state = self.lock();
        loop {
            let next = if let Some(job) = state.direct.pop_front() {
                state.busy = true;
                Some(Some(Next::Job(job)))
            } else if let Some(task) = state.tasks.start_next() {
                state.progress.started = Some(task.task);
                Some(Some(Next::Task(task)))
            } else if state.closed && state.tasks.is_empty() {
                Some(None)
            } else {
                None
            };
            if let Some(next) = next {
                if let Some(helping) = helping {
                    crate::helping::Helping::finish(helping);
                }
                return next;
            }
            let now = Instant::now();
            if now < *spin_until.get_or_insert(now + SPIN) {
                drop(state);
                if helping.is_none() {
                    helping = crate::helping::helping();
                }
                if !crate::helping::help() {
                    std::thread::yield_now();
                }
                state = self.lock();
                continue;
            }
            // Going to sleep: the MPI thread polls again from now on.
            drop(helping.take());
            state.sleeping = true;
            state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            state.sleeping = false;
        }
    }
}

/// Loom models of the inbox (`ci/test-loom.sh`): the MPI thread, the
/// execution thread and a thief on their real paths through one `Inbox`. A
/// lost wake-up leaves the execution thread asleep and the model
/// deadlocked.
#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::Arc;

    use super::*;
    use crate::protocol::{Outcome, Request};
    use crate::scheduler::{Fence, Stealable};

    fn job(task: TaskId) -> Job {
        Job::Request(Request::Keys { task })
    }

    fn task(task: TaskId) -> Queued<Work> {
        Queued {
            task,
            payload: Work::Apply {
                task,
                function: 0,
                args: Default::default(),
            },
            stealable: Stealable::Anyone,
            hops: 0,
            stolen_from: None,
            fence: Fence::default(),
        }
    }

    /// The execution thread's loop: what it ran, (direct jobs, tasks).
    fn execution(inbox: &Arc<Inbox>) -> loom::thread::JoinHandle<(usize, usize)> {
        let inbox = inbox.clone();
        loom::thread::spawn(move || {
            let (mut jobs, mut tasks) = (0, 0);
            while let Some(next) = inbox.next() {
                match next {
                    Next::Job(_) => {
                        jobs += 1;
                        inbox.finished();
                    }
                    Next::Task(queued) => {
                        tasks += 1;
                        let done = crate::engine::job::quiet_done(queued.task, 0, 0, Outcome::Unit);
                        inbox.task_done(done);
                    }
                }
            }
            (jobs, tasks)
        })
    }

    #[test]
    fn loom_a_pushed_job_is_always_received() {
        loom::model(|| {
            let inbox = Arc::new(Inbox::new(0));
            let execution = execution(&inbox);
            inbox.push(job(1));
            inbox.push(job(2));
            inbox.close();
            let ran = execution.join().expect("the execution thread panicked");
            assert_eq!(ran, (2, 0), "a pushed job was lost, or ran twice");
        });
    }

    #[test]
    fn loom_a_task_leaves_the_queue_exactly_once() {
        loom::model(|| {
            let inbox = Arc::new(Inbox::new(0));
            // A direct job first: the execution thread is occupied, so a
            // thief may take the task.
            inbox.push(job(1));
            inbox.add(vec![task(2)]);
            let execution = execution(&inbox);
            let thief = {
                let inbox = inbox.clone();
                loom::thread::spawn(move || {
                    inbox.steal(1, 1, 0).map_or(0, |(given, _)| given.len())
                })
            };
            let stolen = thief.join().expect("the thief panicked");
            inbox.close();
            let (jobs, ran) = execution.join().expect("the execution thread panicked");
            assert_eq!(jobs, 1);
            assert_eq!(ran + stolen, 1, "ran {ran} times and stolen {stolen} times");
        });
    }
}
