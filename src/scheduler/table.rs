//! The controller's task table: every load-balanced task from submission to
//! its final result, and the placement of tasks on engines.
//!
//! It owns task states, dependencies (with their timeouts), retries,
//! aborts, prefetch depths, batching, and the controller's account of where
//! each task is (including steals it learns of), and which idle engines
//! need fresh load figures. It never sends anything: each call says what
//! happened and returns what the controller must do (batches to send,
//! aborts to send, results to deliver or hold, errors to deliver via
//! [`TaskTable::take_failed`], engines to send the loads to). Time is
//! passed in (as a clock where it may not be needed).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use super::deps::{Ended, Kind, Tracker, Verdict};
use super::finals::Finals;
use super::ids::{EngineId, EngineSet, TaskId, TaskMap};
use super::local::Queued;
use super::placement::{preferred, Config, Load};
use super::room::{shrink, shrink_queue};
use super::status::{EngineStatus, QueueStatus};
use super::steal::{Fence, Stealable};
use super::task::{AbortOrder, Batch, Completion, Final, Outcome, Report, State, Task};
use crate::error::Error;

/// One task's row.
#[derive(Debug)]
struct Record<T> {
    /// Kept until the last try is sent.
    payload: Option<T>,
    view: EngineSet,
    after: Option<Tracker>,
    follow: Option<Tracker>,
    timeout: Option<Duration>,
    retries_left: u32,
    /// Tries sent so far.
    attempt: u32,
    /// Engines where a try failed.
    avoid: Vec<EngineId>,
    /// The engine a `follow` task must run on.
    pin: Option<EngineId>,
    state: State,
    /// Steal count the controller knows of (see `stolen`).
    hops: u32,
    /// `hops` when the current try was sent.
    sent_hops: u32,
    abort_requested: bool,
    /// Its result handle is gone: drop the row once final.
    forgotten: bool,
}

impl<T> Record<T> {
    /// What both dependency sets say together.
    fn verdict(&self) -> Verdict {
        let met = Verdict::Met(None);
        let after = self.after.as_ref().map_or(&met, Tracker::verdict);
        let follow = self.follow.as_ref().map_or(&met, Tracker::verdict);
        match (after, follow) {
            (v @ Verdict::Impossible { .. }, _) | (_, v @ Verdict::Impossible { .. }) => v.clone(),
            (Verdict::Met(_), Verdict::Met(pin)) => Verdict::Met(*pin),
            _ => Verdict::Pending,
        }
    }
}

/// The controller's load-balancing state (see the module docs).
#[derive(Debug)]
pub(crate) struct TaskTable<T> {
    config: Config,
    /// Rows of the tasks not final, each in a box of its own: the map
    /// moves only 16-byte entries when it grows, shrinks or removes one.
    tasks: TaskMap<Box<Record<T>>>,
    /// Final tasks not forgotten yet, for the tasks that depend on them.
    finals: Finals,
    /// Waiting tasks to tell when a task ends: dependency → (dependent, set).
    dependents: TaskMap<Vec<(TaskId, Kind)>>,
    /// Unpinned tasks to place, oldest first (may hold stale ids).
    ready: VecDeque<TaskId>,
    /// Pinned tasks to place, per engine.
    ready_pinned: Vec<VecDeque<TaskId>>,
    loads: Vec<Load>,
    /// Per engine, direct work the controller sent and has no answer for
    /// yet (see [`set_direct`](TaskTable::set_direct)).
    direct: Vec<usize>,
    /// Counts the events that may let an engine give more to a thief (see
    /// [`refreshes`](TaskTable::refreshes)).
    version: u64,
    /// Per engine, `version` at its last such event.
    grew_at: Vec<u64>,
    /// Per engine, the `version` its thief's figures are known to cover.
    told_at: Vec<u64>,
    deadlines: BinaryHeap<Reverse<(Instant, TaskId)>>,
    failed: Vec<(TaskId, Error)>,
    waiting: usize,
    unassigned: usize,
    /// Tasks not final.
    live: usize,
}

impl<T> TaskTable<T> {
    /// The table of a job with `engines` engines.
    pub(crate) fn new(engines: usize, config: Config) -> TaskTable<T> {
        TaskTable {
            config,
            tasks: TaskMap::default(),
            finals: Finals::default(),
            dependents: TaskMap::default(),
            ready: VecDeque::new(),
            ready_pinned: (0..engines).map(|_| VecDeque::new()).collect(),
            loads: vec![Load::default(); engines],
            direct: vec![0; engines],
            version: 0,
            grew_at: vec![0; engines],
            told_at: vec![0; engines],
            deadlines: BinaryHeap::new(),
            failed: Vec::new(),
            waiting: 0,
            unassigned: 0,
            live: 0,
        }
    }

    fn engines(&self) -> usize {
        self.loads.len()
    }

    /// Adds a task at the time `now` gives, which is read only for a
    /// dependency timeout. A task whose dependencies are already met
    /// becomes ready; one that can never run fails at once (see
    /// [`take_failed`](TaskTable::take_failed)); otherwise it waits.
    pub(crate) fn submit(&mut self, task: Task<T>, now: impl FnOnce() -> Instant) {
        let id = task.id;
        if self.tasks.contains_key(&id) || self.finals.contains(id) {
            self.failed.push((
                id,
                Error::Usage(format!("task id {id} is already in the scheduler")),
            ));
            return;
        }
        if task.view.is_empty() {
            self.failed.push((
                id,
                Error::Usage("the load-balanced view has no engines".into()),
            ));
            return;
        }
        if let Some(bad) = task.view.iter().find(|&e| e >= self.engines()) {
            self.failed.push((
                id,
                Error::InvalidTarget {
                    index: i64::try_from(bad).unwrap_or(i64::MAX),
                    engines: self.engines(),
                },
            ));
            return;
        }
        let mut record = Record {
            payload: Some(task.payload),
            view: task.view,
            after: None,
            follow: None,
            timeout: task.timeout,
            retries_left: task.retries,
            attempt: 0,
            avoid: Vec::new(),
            pin: None,
            state: State::Waiting,
            hops: 0,
            sent_hops: 0,
            abort_requested: false,
            forgotten: false,
        };
        let mut pending = Vec::new();
        for (kind, set) in [(Kind::After, task.after), (Kind::Follow, task.follow)] {
            let Some(mut set) = set else { continue };
            let mut seen = std::collections::HashSet::new();
            set.tasks.retain(|t| seen.insert(*t));
            let mut tracker = Tracker::new(kind, &set);
            for &dep in &set.tasks {
                let ended = match (self.tasks.get(&dep), self.finals.get(dep)) {
                    (Some(r), _) => r.state.ended(),
                    (None, Some(f)) => f.state().ended(),
                    (None, None) => Some(Ended::Unknown),
                };
                match ended {
                    Some(ended) => {
                        if let Verdict::Impossible { .. } =
                            tracker.observe(dep, ended, &record.view)
                        {
                            break;
                        }
                    }
                    None => pending.push((dep, kind)),
                }
            }
            match kind {
                Kind::After => record.after = Some(tracker),
                Kind::Follow => record.follow = Some(tracker),
            }
        }
        let verdict = record.verdict();
        let timeout = record.timeout;
        self.tasks.insert(id, Box::new(record));
        self.live += 1;
        self.waiting += 1;
        match verdict {
            Verdict::Impossible { dependency, reason } => {
                self.impossible(id, dependency, reason);
            }
            Verdict::Met(pin) => self.make_ready(id, pin),
            Verdict::Pending => {
                for (dep, kind) in pending {
                    self.dependents.entry(dep).or_default().push((id, kind));
                }
                // A deadline past the clock's range is no deadline.
                if let Some(deadline) = timeout.and_then(|t| now().checked_add(t)) {
                    self.deadlines.push(Reverse((deadline, id)));
                }
            }
        }
    }

    /// Records `id` as a task that never ran (its submission failed before
    /// it was sent): a final row, failed without an engine, that tasks can
    /// depend on until it is forgotten.
    pub(crate) fn never_ran(&mut self, id: TaskId) {
        if !self.tasks.contains_key(&id) {
            self.finals.insert(id, Final::NotRun, false);
        }
    }

    /// A waiting task's dependencies are met: queue it for placement.
    fn make_ready(&mut self, id: TaskId, pin: Option<EngineId>) {
        let Some(r) = self.tasks.get_mut(&id) else {
            return;
        };
        if r.state != State::Waiting {
            return;
        }
        self.waiting -= 1;
        self.unassigned += 1;
        r.state = State::Ready;
        r.pin = pin;
        match pin.and_then(|e| self.ready_pinned.get_mut(e)) {
            Some(queue) => queue.push_back(id),
            None => self.ready.push_back(id),
        }
    }

    /// Fails a waiting task whose dependencies can never be met.
    fn impossible(&mut self, task: TaskId, dependency: TaskId, reason: String) {
        self.failed.push((
            task,
            Error::ImpossibleDependency {
                task,
                dependency,
                reason,
            },
        ));
        self.settle(task, State::Done(Outcome::NotRun));
    }

    /// Makes a task final and tells its dependents, and theirs in turn
    /// (a work list, not recursion: chains may be long).
    fn settle(&mut self, task: TaskId, end: State) {
        // The dependents it ends in turn; most tasks have none, and then
        // nothing is allocated.
        let mut work = Vec::new();
        let mut next = Some((task, end));
        while let Some((id, end)) = next.take().or_else(|| work.pop()) {
            let Some(r) = self.tasks.get_mut(&id) else {
                continue;
            };
            match r.state {
                State::Waiting => self.waiting -= 1,
                State::Ready | State::Retrying { .. } => self.unassigned -= 1,
                s if s.is_final() => continue,
                _ => {}
            }
            // A final task keeps only what dependents and `state` read.
            let forgotten = r.forgotten;
            self.tasks.remove(&id);
            shrink(&mut self.tasks);
            self.live -= 1;
            if let (false, Some(end)) = (forgotten, end.to_final()) {
                self.finals.insert(id, end, true);
            }
            let Some(ended) = end.ended() else { continue };
            for (dependent, kind) in self.dependents.remove(&id).unwrap_or_default() {
                let Some(d) = self.tasks.get_mut(&dependent) else {
                    continue;
                };
                if d.state != State::Waiting {
                    continue;
                }
                let view = d.view.clone();
                let tracker = match kind {
                    Kind::After => d.after.as_mut(),
                    Kind::Follow => d.follow.as_mut(),
                };
                if let Some(tracker) = tracker {
                    tracker.observe(id, ended, &view);
                }
                match d.verdict() {
                    Verdict::Pending => {}
                    Verdict::Met(pin) => self.make_ready(dependent, pin),
                    Verdict::Impossible { dependency, reason } => {
                        self.failed.push((
                            dependent,
                            Error::ImpossibleDependency {
                                task: dependent,
                                dependency,
                                reason,
                            },
                        ));
                        work.push((dependent, State::Done(Outcome::NotRun)));
                    }
                }
            }
        }
    }

    /// The prefetch depth of `engine` now.
    pub(crate) fn depth(&self, engine: EngineId) -> usize {
        let mean = self
            .loads
            .get(engine)
            .and_then(|l| l.mean_ns)
            .map(Duration::from_nanos);
        self.config.depth(mean)
    }

    /// Places ready tasks on engines with room and returns the batches to
    /// send (at most `max_batch` tasks each, several per engine if needed).
    ///
    /// Pinned tasks go to their engine. Every other task goes, oldest first,
    /// to the least-loaded engine of its view (fewest tasks sent and not
    /// finished plus direct work not answered, see
    /// [`set_direct`](TaskTable::set_direct); ties to the lowest id) that
    /// has room under its prefetch
    /// depth, avoiding engines where it already failed when its view has
    /// others. A task with no room anywhere it may go stays ready.
    ///
    /// `fence`: how many messages the controller has sent to each engine
    /// before these batches (see [`Fence`]); every task carries it.
    pub(crate) fn dispatch(&mut self, fence: &Fence) -> Vec<Batch<T>>
    where
        T: Clone,
    {
        shrink_queue(&mut self.ready);
        let n = self.engines();
        // What the batches' figures cover for sure: their fence is from
        // before this dispatch (see `refreshes`).
        let before = self.version;
        let mut room: Vec<usize> = (0..n)
            .map(|e| self.depth(e).saturating_sub(self.loads[e].outstanding()))
            .collect();
        let mut open = room.iter().filter(|&&r| r > 0).count();
        let mut out: Vec<Vec<Queued<T>>> = (0..n).map(|_| Vec::new()).collect();
        for e in 0..n {
            while room[e] > 0 {
                let Some(id) = self.ready_pinned[e].pop_front() else {
                    break;
                };
                if let Some(q) = self.assign(id, e, Stealable::Never, fence) {
                    let left = 1 + self.ready_pinned[e].len() + self.ready.len();
                    push_sized(&mut out[e], q, room[e].min(left));
                    room[e] -= 1;
                    if room[e] == 0 {
                        open -= 1;
                    }
                }
            }
        }
        let mut skipped = VecDeque::new();
        while open > 0 {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            let Some(r) = self.tasks.get(&id) else {
                continue;
            };
            if !matches!(r.state, State::Ready | State::Retrying { .. }) {
                continue;
            }
            let preferred = preferred(&r.view, &r.avoid);
            let choice = preferred
                .iter()
                .filter(|&e| room[e] > 0)
                .min_by_key(|&e| (self.loads[e].outstanding() + self.direct[e], e));
            let Some(e) = choice else {
                skipped.push_back(id);
                continue;
            };
            let stealable = if preferred.len() == n {
                Stealable::Anyone
            } else {
                Stealable::Only(preferred)
            };
            if let Some(q) = self.assign(id, e, stealable, fence) {
                push_sized(&mut out[e], q, room[e].min(1 + self.ready.len()));
                room[e] -= 1;
                if room[e] == 0 {
                    open -= 1;
                }
            }
        }
        // The skipped tasks go back in front, oldest first: O(skipped),
        // not O(waiting) (20,000 tasks waiting would make every dispatch
        // copy them all).
        while let Some(id) = skipped.pop_back() {
            self.ready.push_front(id);
        }
        let max = self.config.max_batch.max(1);
        let mut batches = Vec::new();
        for (engine, mut tasks) in out.into_iter().enumerate() {
            if !tasks.is_empty() {
                self.told_at[engine] = self.told_at[engine].max(before);
            }
            while !tasks.is_empty() {
                let rest = tasks.split_off(tasks.len().min(max));
                batches.push(Batch { engine, tasks });
                tasks = rest;
            }
        }
        batches
    }

    /// Marks a ready task as sent to `engine` and makes its entry.
    fn assign(
        &mut self,
        id: TaskId,
        engine: EngineId,
        stealable: Stealable,
        fence: &Fence,
    ) -> Option<Queued<T>>
    where
        T: Clone,
    {
        let r = self.tasks.get_mut(&id)?;
        if !matches!(r.state, State::Ready | State::Retrying { .. }) {
            return None;
        }
        let payload = if r.retries_left == 0 {
            r.payload.take()?
        } else {
            r.payload.clone()?
        };
        r.state = State::Queued {
            engine,
            stolen: false,
        };
        r.attempt += 1;
        r.sent_hops = r.hops;
        self.unassigned -= 1;
        let load = &mut self.loads[engine];
        load.queued += 1;
        if r.pin.is_some() {
            load.pinned += 1;
        }
        let hops = r.hops;
        if stealable != Stealable::Never {
            self.grew(engine);
        }
        Some(Queued {
            task: id,
            payload,
            stealable,
            hops,
            stolen_from: None,
            fence: fence.clone(),
        })
    }

    /// `engine` reports that it started `task`.
    pub(crate) fn started(&mut self, engine: EngineId, task: TaskId) {
        if engine >= self.engines() {
            return;
        }
        let Some(r) = self.tasks.get_mut(&task) else {
            return;
        };
        let State::Queued { engine: at, stolen } = r.state else {
            return;
        };
        self.loads[at].unqueue(r.pin.is_some());
        self.loads[engine].running += 1;
        r.state = State::Running {
            engine,
            stolen: stolen || engine != at,
        };
    }

    /// `thief` reports that it stole `tasks` (id and steal count) from
    /// `victim`. The controller's account moves them to `thief` (a notice
    /// older than what the table knows, by steal count, moves nothing).
    /// Returns aborts to send to `thief` for tasks being aborted.
    pub(crate) fn stolen(
        &mut self,
        victim: EngineId,
        thief: EngineId,
        tasks: &[(TaskId, u32)],
    ) -> Vec<AbortOrder> {
        let n = self.engines();
        if victim >= n || thief >= n || victim == thief {
            return Vec::new();
        }
        let mut aborts = Vec::new();
        for &(id, hops) in tasks {
            self.loads[victim].stolen_out += 1;
            self.loads[thief].stolen_in += 1;
            let Some(r) = self.tasks.get_mut(&id) else {
                continue;
            };
            if hops <= r.hops {
                continue;
            }
            r.hops = hops;
            if let State::Queued { engine: at, .. } = r.state {
                self.loads[at].unqueue(r.pin.is_some());
                self.loads[thief].queued += 1;
                if r.pin.is_some() {
                    self.loads[thief].pinned += 1;
                }
                // The thief may hold more than it runs now.
                self.version += 1;
                self.grew_at[thief] = self.version;
                r.state = State::Queued {
                    engine: thief,
                    stolen: true,
                };
                if r.abort_requested {
                    aborts.push(id);
                }
            }
        }
        if aborts.is_empty() {
            Vec::new()
        } else {
            vec![AbortOrder {
                engine: thief,
                tasks: aborts,
            }]
        }
    }

    /// `engine` finished a try of `task`. A failed try with retries left is
    /// queued again (on another engine when its view has one) and the error
    /// must be held; otherwise the result is final.
    pub(crate) fn completed(
        &mut self,
        engine: EngineId,
        task: TaskId,
        report: Report,
    ) -> Completion {
        if engine >= self.engines() {
            return Completion::Unknown;
        }
        let Some(r) = self.tasks.get_mut(&task) else {
            return Completion::Unknown;
        };
        match r.state {
            State::Queued { engine: at, .. } => self.loads[at].unqueue(r.pin.is_some()),
            State::Running { engine: at, .. } => {
                self.loads[at].running = self.loads[at].running.saturating_sub(1);
            }
            _ => return Completion::Unknown,
        }
        r.hops = r.hops.max(report.hops);
        let stolen = report.hops > r.sent_hops;
        let load = &mut self.loads[engine];
        load.completed += 1;
        if let Some(d) = report.duration {
            let sample = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            load.mean_ns = Some(match load.mean_ns {
                None => sample,
                Some(mean) => mean - mean / 8 + sample / 8,
            });
        }
        if report.ok {
            self.settle(task, State::Done(Outcome::Succeeded(engine)));
            return Completion::Final { stolen };
        }
        if r.retries_left == 0 || r.abort_requested {
            self.settle(task, State::Done(Outcome::Failed(engine)));
            return Completion::Final { stolen };
        }
        r.retries_left -= 1;
        if !r.avoid.contains(&engine) {
            r.avoid.push(engine);
        }
        r.state = State::Retrying {
            attempt: r.attempt + 1,
            failed_on: engine,
        };
        let attempt = r.attempt + 1;
        self.unassigned += 1;
        match r.pin.and_then(|e| self.ready_pinned.get_mut(e)) {
            Some(queue) => queue.push_back(task),
            None => self.ready.push_back(task),
        }
        Completion::Retry { attempt }
    }

    /// Aborts tasks: those not sent yet fail at once with
    /// [`Error::TaskAborted`]; for those queued on an engine, returns the
    /// aborts to send (the engine answers with what it removed, see
    /// [`aborted`](TaskTable::aborted)); running and finished tasks keep
    /// their results, and a running one is not tried again: its result is
    /// the running try's.
    pub(crate) fn abort(&mut self, tasks: &[TaskId]) -> Vec<AbortOrder> {
        let mut orders: BTreeMap<EngineId, Vec<TaskId>> = BTreeMap::new();
        for &id in tasks {
            let Some(r) = self.tasks.get_mut(&id) else {
                continue;
            };
            match r.state {
                State::Waiting | State::Ready | State::Retrying { .. } => {
                    self.failed.push((id, Error::TaskAborted { task: id }));
                    self.settle(id, State::Aborted);
                }
                State::Queued { engine, .. } => {
                    r.abort_requested = true;
                    orders.entry(engine).or_default().push(id);
                }
                State::Running { .. } => r.abort_requested = true,
                State::Done(_) | State::Aborted => {}
            }
        }
        orders
            .into_iter()
            .map(|(engine, tasks)| AbortOrder { engine, tasks })
            .collect()
    }

    /// An engine removed `task` from its queue on an abort: the task fails
    /// with [`Error::TaskAborted`]. False if the table had it elsewhere than
    /// queued (then nothing changes).
    pub(crate) fn aborted(&mut self, task: TaskId) -> bool {
        let Some(r) = self.tasks.get_mut(&task) else {
            return false;
        };
        let State::Queued { engine: at, .. } = r.state else {
            return false;
        };
        self.loads[at].unqueue(r.pin.is_some());
        self.failed.push((task, Error::TaskAborted { task }));
        self.settle(task, State::Aborted);
        true
    }

    /// Fails the waiting tasks whose dependency timeout has passed at `now`
    /// with [`Error::DependencyTimeout`].
    pub(crate) fn tick(&mut self, now: Instant) {
        while let Some(&Reverse((deadline, id))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            let Some(r) = self.tasks.get(&id) else {
                continue;
            };
            if r.state != State::Waiting {
                continue;
            }
            let timeout = r.timeout.unwrap_or_default();
            self.failed
                .push((id, Error::DependencyTimeout { task: id, timeout }));
            self.settle(id, State::Done(Outcome::NotRun));
        }
    }

    /// The earliest dependency deadline still pending (maybe of a task that
    /// no longer waits): when the controller should call [`tick`](TaskTable::tick).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((d, _))| *d)
    }

    /// Tasks that failed without a reply (impossible dependency, timeout,
    /// abort), with the error to deliver, oldest first.
    pub(crate) fn take_failed(&mut self) -> Vec<(TaskId, Error)> {
        std::mem::take(&mut self.failed)
    }

    /// The task's result handle is gone: drop its row once it is final (now
    /// if it is). Nothing can depend on it later, since a dependency is
    /// named through its handle.
    pub(crate) fn forget(&mut self, task: TaskId) {
        if let Some(r) = self.tasks.get_mut(&task) {
            r.forgotten = true;
        } else {
            self.finals.remove(task);
        }
    }

    #[cfg(test)]
    /// The state of `task`, if the table has it.
    pub(crate) fn state(&self, task: TaskId) -> Option<State> {
        (self.tasks.get(&task).map(|r| r.state))
            .or_else(|| self.finals.get(task).map(|f| f.state()))
    }

    /// Rows held (live tasks and final ones not forgotten).
    pub(crate) fn rows(&self) -> usize {
        self.tasks.len() + self.finals.len()
    }

    /// `engine` has `count` pieces of direct work that the controller sent
    /// and has no answer for: direct requests, collectives it takes part in
    /// (a gather waiting for its lenders holds each of them). Its execution
    /// thread runs them before any load-balanced task, so placement counts
    /// them as load, and the queue status shows them. True when the count
    /// changed while tasks are live (placement may then change).
    pub(crate) fn set_direct(&mut self, engine: EngineId, count: usize) -> bool {
        let Some(direct) = self.direct.get_mut(engine) else {
            return false;
        };
        if *direct == count {
            return false;
        }
        let more = count > *direct;
        *direct = count;
        if more {
            // Occupied now, it may give its last queued task.
            self.grew(engine);
        }
        self.live > 0
    }

    /// `engine` may now give a thief more than before.
    fn grew(&mut self, engine: EngineId) {
        self.version += 1;
        self.grew_at[engine] = self.version;
    }

    /// What a steal from `engine` would take by the controller's account:
    /// half of its queued stealable tasks, rounded up when it is occupied
    /// (a task known to run, or direct work), down otherwise (as
    /// [`LocalQueue::share`](super::LocalQueue::share) does).
    fn share(&self, engine: EngineId) -> usize {
        let l = &self.loads[engine];
        let stealable = l.queued - l.pinned.min(l.queued);
        if l.running > 0 || self.direct[engine] > 0 {
            stealable.div_ceil(2)
        } else {
            stealable / 2
        }
    }

    /// The idle engines to send the current [`loads`](TaskTable::loads)
    /// to, alone (a batch of no tasks), after the batches of
    /// [`dispatch`](TaskTable::dispatch) have gone. Call it after each
    /// dispatch.
    ///
    /// An idle engine (no task outstanding, no direct work) learns new
    /// figures only with a batch addressed to it, and its thief's estimates
    /// drop to 0 as steals fail; so once a peer may give more than before
    /// (it was sent stealable tasks, it stole some, or direct work occupies
    /// it so that its last queued task may go) while it has something to
    /// give by the controller's account, each idle engine whose figures
    /// predate that gets the loads once. Nothing is sent again until
    /// another such change: engines are never polled (bench `w5`).
    ///
    /// A batch's figures count only for what happened before its dispatch:
    /// its fence (on which a steal waits, see the thief's "Fenced steals")
    /// is from before, and the peers' batches of the same dispatch may
    /// still be on their way; the loads sent here come with the counts
    /// after the batches.
    pub(crate) fn refreshes(&mut self) -> Vec<EngineId> {
        // The two engines with something to give that changed last.
        let (mut first, mut second): (Option<(u64, EngineId)>, Option<u64>) = (None, None);
        for engine in 0..self.engines() {
            if self.share(engine) == 0 {
                continue;
            }
            let at = self.grew_at[engine];
            match first {
                Some((top, _)) if at <= top => second = Some(second.map_or(at, |s| s.max(at))),
                _ => {
                    second = first.map(|(top, _)| top);
                    first = Some((at, engine));
                }
            }
        }
        let Some((top, top_engine)) = first else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for engine in 0..self.engines() {
            if self.loads[engine].outstanding() > 0 || self.direct[engine] > 0 {
                continue;
            }
            let latest = if engine == top_engine {
                second
            } else {
                Some(top)
            };
            if latest.is_some_and(|at| at > self.told_at[engine]) {
                self.told_at[engine] = self.version;
                out.push(engine);
            }
        }
        out
    }

    /// No task is waiting, ready, queued or running.
    pub(crate) fn is_idle(&self) -> bool {
        self.live == 0
    }

    /// Per engine, the queued tasks another engine could steal, as the
    /// controller knows them: the figures engines' thieves start from.
    pub(crate) fn loads(&self) -> Vec<u32> {
        self.loads
            .iter()
            .map(|l| u32::try_from(l.queued - l.pinned.min(l.queued)).unwrap_or(u32::MAX))
            .collect()
    }

    /// Per-engine counts and the controller's own.
    pub(crate) fn status(&self) -> QueueStatus {
        QueueStatus {
            engines: self
                .loads
                .iter()
                .enumerate()
                .map(|(engine, l)| EngineStatus {
                    engine,
                    queued: l.queued,
                    running: l.running,
                    completed: l.completed,
                    stolen_in: l.stolen_in,
                    stolen_out: l.stolen_out,
                    direct: self.direct[engine],
                })
                .collect(),
            waiting: self.waiting,
            unassigned: self.unassigned,
        }
    }
}

/// Adds `q` to an engine's batch in `dispatch`, sizing the batch at its
/// first task for the `most` it can still get: a burst of tiny tasks fills
/// an engine up to the greatest depth (2,048 by default), which growing by
/// doubling copies eleven times, and an engine that gets nothing allocates
/// nothing.
fn push_sized<T>(batch: &mut Vec<T>, q: T, most: usize) {
    if batch.capacity() == 0 {
        batch.reserve_exact(most.max(1));
    }
    batch.push(q);
}
