//! An engine's local queue of load-balanced tasks: the tasks it was sent or
//! stole and has not started.
//!
//! The engine's MPI thread puts tasks in (batches from the controller,
//! tasks stolen from a peer) and takes them out for thieves and aborts; the
//! execution thread takes the next task to run. Both do so on this one
//! value under one lock (the engine wraps it in a `Mutex`); the queue itself
//! holds no lock and starts no thread. Running the tasks, and the messages
//! of a steal, are the engine's.

use std::collections::{HashSet, VecDeque};

use super::ids::{EngineId, TaskId};
use super::steal::{Fence, Stealable};

/// One task waiting in a local queue, as the controller sent it or a peer
/// gave it away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queued<T> {
    pub task: TaskId,
    /// The request to run (opaque here).
    pub payload: T,
    /// Who may steal it.
    pub stealable: Stealable,
    /// How many times it has been stolen; steal notices carry it so that the
    /// controller can order notices from different engines.
    pub hops: u32,
    /// The engine it was last stolen from, for the result's metadata.
    pub stolen_from: Option<EngineId>,
    /// The controller's message counts when it was sent.
    pub fence: Fence,
}

/// The not-started tasks of one engine.
///
/// ## Exactly once
///
/// A task leaves the queue in exactly one of three ways, each of which
/// removes it: [`start_next`](LocalQueue::start_next) (the execution thread
/// runs it here), [`steal`](LocalQueue::steal) (it is handed to a thief,
/// which runs it instead) or [`abort`](LocalQueue::abort) (it never runs).
/// Since all three take `&mut self` on the one queue of the engine, a task is
/// either given away or started, never both, and never twice: a steal racing
/// a start is decided by who takes the queue's lock first. Nothing else
/// removes entries. Stealing never takes a pinned task
/// ([`Stealable::Never`]) or one the thief may not run, and cannot take a
/// started one because a started task is no longer in the queue.
///
/// ## Stream fence
///
/// A stolen task whose [`Fence`] says this engine had been sent more
/// controller messages than it has received is held back (not started, not
/// stolen again) until [`received`](LocalQueue::received) reports them, so
/// that it runs after every request the client sent this engine before
/// submitting it, as it would have on the engine it was sent to. Likewise a
/// steal whose thief counted on controller messages this engine has not
/// received yet waits for them ([`park`](LocalQueue::park)).
#[derive(Debug)]
pub(crate) struct LocalQueue<T> {
    me: EngineId,
    entries: VecDeque<Queued<T>>,
    /// Stolen tasks waiting for their fence, in arrival order.
    held: VecDeque<Queued<T>>,
    /// Messages received from the controller so far.
    seen: u64,
    /// Steals waiting for their fence: (thief, max, fence), in arrival order.
    parked: Vec<(EngineId, usize, u64)>,
    /// Tasks started and not finished (0 or 1 with one execution thread).
    running: usize,
}

impl<T> LocalQueue<T> {
    /// The empty queue of engine `me`.
    pub(crate) fn new(me: EngineId) -> LocalQueue<T> {
        LocalQueue {
            me,
            entries: VecDeque::new(),
            held: VecDeque::new(),
            seen: 0,
            parked: Vec::new(),
            running: 0,
        }
    }

    /// Adds tasks at the back, in order (a batch from the controller, or
    /// what a steal brought); a task behind its fence is held back.
    pub(crate) fn extend(&mut self, tasks: impl IntoIterator<Item = Queued<T>>) {
        for task in tasks {
            if task.fence.for_engine(self.me) > self.seen {
                self.held.push_back(task);
            } else {
                self.entries.push_back(task);
            }
        }
    }

    /// The engine has now received `count` messages from the controller in
    /// all: held tasks whose fence is passed join the queue.
    pub(crate) fn received(&mut self, count: u64) {
        self.seen = self.seen.max(count);
        if self.held.is_empty() {
            return;
        }
        let (me, seen) = (self.me, self.seen);
        let held = std::mem::take(&mut self.held);
        for task in held {
            if task.fence.for_engine(me) > seen {
                self.held.push_back(task);
            } else {
                self.entries.push_back(task);
            }
        }
    }

    /// Whether a steal asked with fence `seen` (the count of controller
    /// messages to this engine behind the thief's estimate, see the thief's
    /// "Fenced steals") may be answered now; if not, [`park`](LocalQueue::park) it.
    pub(crate) fn may_answer(&self, seen: u64) -> bool {
        seen <= self.seen
    }

    /// Keeps a steal of at most `max` tasks by `thief` until this engine
    /// has received `seen` messages from the controller.
    pub(crate) fn park(&mut self, thief: EngineId, max: usize, seen: u64) {
        self.parked.push((thief, max, seen));
    }

    /// The parked steals whose fence is now reached, as (thief, max), in
    /// arrival order: they are to be answered now.
    pub(crate) fn due_steals(&mut self) -> Vec<(EngineId, usize)> {
        if self.parked.is_empty() {
            return Vec::new();
        }
        let seen = self.seen;
        let mut due = Vec::new();
        self.parked.retain(|&(thief, max, fence)| {
            let go = fence <= seen;
            if go {
                due.push((thief, max));
            }
            !go
        });
        due
    }

    /// The execution thread takes the front task to run it; it counts as
    /// running until [`finish`](LocalQueue::finish).
    pub(crate) fn start_next(&mut self) -> Option<Queued<T>> {
        let next = self.entries.pop_front()?;
        self.running += 1;
        Some(next)
    }

    /// The execution thread has finished a task it started.
    pub(crate) fn finish(&mut self) {
        self.running = self.running.saturating_sub(1);
    }

    /// Hands tasks to `thief`: at most `max`, and at most its
    /// [`share`](LocalQueue::share). They come from the back of the queue,
    /// keep their order, and are marked as stolen from this engine. Returns
    /// nothing when nothing may go.
    ///
    /// `occupied`: the engine's execution thread has other work than the
    /// load-balanced tasks this queue counts as running (a direct job running
    /// or waiting, which runs before any task here).
    pub(crate) fn steal(&mut self, max: usize, thief: EngineId, occupied: bool) -> Vec<Queued<T>> {
        let take = self.share(thief, occupied).min(max);
        if take == 0 {
            return Vec::new();
        }
        // Split the queue once: what stays keeps its order, and so does what goes.
        let mut taken = Vec::with_capacity(take);
        let mut kept = VecDeque::with_capacity(self.entries.len() - take);
        while let Some(entry) = self.entries.pop_back() {
            if taken.len() < take && entry.stealable.by(thief) {
                taken.push(entry);
            } else {
                kept.push_front(entry);
            }
        }
        self.entries = kept;
        taken.reverse();
        for entry in &mut taken {
            entry.hops = entry.hops.saturating_add(1);
            entry.stolen_from = Some(self.me);
        }
        taken
    }

    /// Removes the listed tasks that are still here (aborted before they
    /// started, held ones included) and returns their ids, in queue order.
    pub(crate) fn abort(&mut self, tasks: &[TaskId]) -> Vec<TaskId> {
        let wanted: HashSet<TaskId> = tasks.iter().copied().collect();
        let mut removed = Vec::new();
        for queue in [&mut self.entries, &mut self.held] {
            queue.retain(|entry| {
                let go = wanted.contains(&entry.task);
                if go {
                    removed.push(entry.task);
                }
                !go
            });
        }
        removed
    }

    /// How many tasks a steal by `thief` would take now (with no `max`):
    /// half of the tasks it may take, rounded up while the engine is
    /// occupied (a task running, or `occupied`: see
    /// [`steal`](LocalQueue::steal)), so that even its last queued task can
    /// go to an idle thief; rounded down when the engine is free, since it
    /// starts its front task itself at once. This is the `left` a victim
    /// answers, so a thief that got nothing does not ask again until the
    /// victim's work changes.
    pub(crate) fn share(&self, thief: EngineId, occupied: bool) -> usize {
        let eligible = self.stealable_by(thief);
        if occupied || self.running > 0 {
            eligible.div_ceil(2)
        } else {
            eligible / 2
        }
    }

    /// How many queued tasks `thief` may steal.
    pub(crate) fn stealable_by(&self, thief: EngineId) -> usize {
        if thief == self.me {
            return 0;
        }
        self.entries
            .iter()
            .filter(|e| e.stealable.by(thief))
            .count()
    }

    /// Tasks waiting (not started), held ones included.
    pub(crate) fn len(&self) -> usize {
        self.entries.len() + self.held.len()
    }

    /// A task may start now (one is queued and not held back).
    pub(crate) fn has_ready(&self) -> bool {
        !self.entries.is_empty()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.held.is_empty()
    }

    /// Tasks started and not finished.
    pub(crate) fn running(&self) -> usize {
        self.running
    }

    /// Nothing queued, held or running: the moment to steal.
    pub(crate) fn is_idle(&self) -> bool {
        self.is_empty() && self.running == 0
    }

    #[cfg(test)]
    /// The ids of the tasks ready to start, front first (not the held ones).
    pub(crate) fn tasks(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.entries.iter().map(|e| e.task)
    }
}
