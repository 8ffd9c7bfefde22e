//! The rules of work stealing and the thief's side of it: who may take a
//! queued task ([`Stealable`]), when a stolen task may start ([`Fence`]),
//! and when an engine asks a peer for work, and which peer.
//!
//! A [`Thief`] lives in an engine's MPI thread. It keeps an estimate of how
//! many tasks each peer could give (from the controller's load figures, sent
//! with each batch and to idle engines when they change, and from each
//! steal's answer), and picks the busiest peer when the engine's local queue
//! runs dry. What a victim gives is the victim's
//! [`LocalQueue::steal`](super::LocalQueue::steal); sending the request and
//! the tasks is the engine's.

use std::sync::Arc;

use super::ids::{EngineId, EngineSet};

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

/// A steal to send: ask `victim` for at most `max` tasks, to be answered
/// once the victim has received `seen` messages from the controller (see
/// "Fenced steals").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StealRequest {
    pub victim: EngineId,
    pub max: usize,
    pub seen: u64,
}

/// One engine's view of its peers' queues, and its steal in flight.
///
/// ## Victim choice
///
/// The victim is the peer with the most stealable tasks by the estimates,
/// never this engine, never a peer estimated at 0. Ties go to the first
/// peer after this engine in cyclic order (engine `me + 1`, `me + 2`, …),
/// so that thieves with the same estimates spread over different victims
/// and the choice is deterministic. The request asks for at most the
/// estimate; the victim gives at most half of what it holds (its
/// [`share`](super::LocalQueue::share)).
///
/// ## No storms
///
/// At most one steal is in flight. Its answer replaces the victim's
/// estimate by the victim's share for this thief after the steal (what
/// asking again would give), so a failed steal (nothing given: the estimate
/// was stale, or the victim is about to run its last task itself) sets it
/// to 0, and the thief never asks an unchanged victim again: the next
/// attempt goes to another peer, and once every estimate is 0 the engine
/// waits for new figures from the controller.
///
/// ## Fenced steals
///
/// The controller's figures count tasks it has sent a peer, which may still
/// be on their way to it. So each estimate keeps the stream fence it came
/// with (how many messages the controller had sent that peer), the steal
/// carries it, and the victim answers only once it has received that many
/// ([`LocalQueue::may_answer`](super::LocalQueue::may_answer)): a `left 0`
/// never comes from a victim that has not yet seen the batch the thief was
/// told about. And an answer to a steal asked before newer figures came
/// (a fence further on) does not overwrite them: it describes the victim
/// before it had seen what they count.
#[derive(Debug, Clone)]
pub(crate) struct Thief {
    me: EngineId,
    estimates: Vec<u32>,
    /// Per peer, the stream fence of the figures its estimate rests on.
    basis: Vec<u64>,
    /// The victim of the steal in flight and the fence it was asked with.
    in_flight: Option<(EngineId, u64)>,
}

impl Thief {
    /// The thief of engine `me` in a job of `engines` engines; every estimate 0.
    pub(crate) fn new(me: EngineId, engines: usize) -> Thief {
        Thief {
            me,
            estimates: vec![0; engines],
            basis: vec![0; engines],
            in_flight: None,
        }
    }

    /// New figures from the controller (queued stealable tasks per engine),
    /// counted when it had sent each engine `fence` messages; this engine's
    /// own entry is ignored, extra entries too.
    pub(crate) fn update(&mut self, loads: &[u32], fence: &Fence) {
        for (engine, (estimate, &load)) in self.estimates.iter_mut().zip(loads).enumerate() {
            if engine != self.me {
                *estimate = load;
                let basis = &mut self.basis[engine];
                *basis = (*basis).max(fence.for_engine(engine));
            }
        }
    }

    /// Sets one peer's estimate (e.g. from a message that carried it).
    pub(crate) fn observe(&mut self, peer: EngineId, load: u32) {
        if peer != self.me {
            if let Some(estimate) = self.estimates.get_mut(peer) {
                *estimate = load;
            }
        }
    }

    /// The busiest peer by the estimates (see "Victim choice"), if any has work.
    pub(crate) fn victim(&self) -> Option<EngineId> {
        let n = self.estimates.len();
        (1..n)
            .map(|step| (self.me + step) % n)
            .filter(|&peer| self.estimates[peer] > 0)
            // max_by_key keeps the last maximum: reverse so the first one in
            // cyclic order wins.
            .rev()
            .max_by_key(|&peer| self.estimates[peer])
    }

    /// The steal to send now, if any: only when the local queue is `idle`
    /// (nothing queued, nothing running), no steal is in flight, and a peer
    /// has work. The request is then in flight until [`answered`](Thief::answered).
    pub(crate) fn want(&mut self, idle: bool) -> Option<StealRequest> {
        if !idle || self.in_flight.is_some() {
            return None;
        }
        let victim = self.victim()?;
        let estimate = self.estimates[victim] as usize;
        let seen = self.basis[victim];
        self.in_flight = Some((victim, seen));
        Some(StealRequest {
            victim,
            max: estimate.max(1),
            seen,
        })
    }

    /// `victim` answered (whatever it gave, maybe nothing): a steal by this
    /// engine would now take `left` tasks.
    /// Figures about `victim` newer than the steal (see "Fenced steals")
    /// keep the estimate.
    pub(crate) fn answered(&mut self, victim: EngineId, left: u32) {
        let asked = match self.in_flight {
            Some((v, seen)) if v == victim => {
                self.in_flight = None;
                Some(seen)
            }
            _ => None,
        };
        let newer = asked.is_some_and(|seen| self.basis.get(victim).is_some_and(|&b| b > seen));
        if !newer {
            self.observe(victim, left);
        }
    }

    /// The victim of the steal in flight, if any (shutdown waits for its
    /// answer).
    pub(crate) fn in_flight(&self) -> Option<EngineId> {
        self.in_flight.map(|(victim, _)| victim)
    }

    #[cfg(test)]
    /// The current estimate of `peer`.
    pub(crate) fn estimate(&self, peer: EngineId) -> u32 {
        self.estimates.get(peer).copied().unwrap_or(0)
    }
}
