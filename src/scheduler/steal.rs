//! The thief's side of work stealing: when an engine asks a peer for work,
//! and which peer.
//!
//! A [`Thief`] lives in an engine's MPI thread. It keeps an estimate of how
//! many tasks each peer could give (from the controller's load figures, sent
//! with each batch, and from each steal's answer), and picks the busiest
//! peer when the engine's local queue runs dry. What a victim gives is the
//! victim's [`LocalQueue::steal`](super::LocalQueue::steal); sending the
//! request and the tasks is the engine's.

use super::EngineId;

/// A steal to send: ask `victim` for at most `max` tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StealRequest {
    pub victim: EngineId,
    pub max: usize,
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
#[derive(Debug, Clone)]
pub(crate) struct Thief {
    me: EngineId,
    estimates: Vec<u32>,
    in_flight: Option<EngineId>,
}

impl Thief {
    /// The thief of engine `me` in a job of `engines` engines; every estimate 0.
    pub(crate) fn new(me: EngineId, engines: usize) -> Thief {
        Thief {
            me,
            estimates: vec![0; engines],
            in_flight: None,
        }
    }

    /// New figures from the controller (queued stealable tasks per engine);
    /// this engine's own entry is ignored, extra entries too.
    pub(crate) fn update(&mut self, loads: &[u32]) {
        for (engine, (estimate, &load)) in self.estimates.iter_mut().zip(loads).enumerate() {
            if engine != self.me {
                *estimate = load;
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
        self.in_flight = Some(victim);
        Some(StealRequest {
            victim,
            max: estimate.max(1),
        })
    }

    /// `victim` answered (whatever it gave, maybe nothing): a steal by this
    /// engine would now take `left` tasks.
    pub(crate) fn answered(&mut self, victim: EngineId, left: u32) {
        if self.in_flight == Some(victim) {
            self.in_flight = None;
        }
        self.observe(victim, left);
    }

    /// The steal in flight, if any (shutdown waits for its answer).
    pub(crate) fn in_flight(&self) -> Option<EngineId> {
        self.in_flight
    }

    #[cfg(test)]
    /// The current estimate of `peer`.
    pub(crate) fn estimate(&self, peer: EngineId) -> u32 {
        self.estimates.get(peer).copied().unwrap_or(0)
    }
}
