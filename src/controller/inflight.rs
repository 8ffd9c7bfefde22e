//! Requests the controller has sent engines and has no reply for yet, by
//! engine and task, with a count per engine.
//!
//! Each entry says where the reply goes (the result and its part) and what
//! the request does (for the message a shutdown prints when one is still
//! running). The per-engine counts are the direct work that load balancing
//! weighs (`TaskTable::set_direct`) and the queue status shows. Sending the
//! requests and reading the replies is the controller's.

use std::collections::HashMap;
use std::sync::Arc;

use crate::protocol::TaskId;
use crate::result::ResultState;

/// Where a reply goes: the result, its part index, and what the request
/// does (`"apply of crate::f"`, `"gather"`, ...).
pub(super) type Awaited = (Arc<ResultState>, usize, &'static str);

/// Requests waiting for replies: `(engine, task)` → where the reply goes.
pub(super) struct Inflight {
    awaited: HashMap<(usize, TaskId), Awaited>,
    /// Entries per engine.
    per_engine: Vec<usize>,
}

impl Inflight {
    /// None in flight, in a job of `engines` engines.
    pub(super) fn new(engines: usize) -> Inflight {
        Inflight {
            awaited: HashMap::new(),
            per_engine: vec![0; engines],
        }
    }

    /// A request to `engine` for `task` now waits for its reply.
    pub(super) fn insert(&mut self, key: (usize, TaskId), awaited: Awaited) {
        if self.awaited.insert(key, awaited).is_none() {
            if let Some(count) = self.per_engine.get_mut(key.0) {
                *count += 1;
            }
        }
    }

    /// The reply of `engine` for `task` came (or will never come): where it
    /// goes, if it was awaited.
    pub(super) fn remove(&mut self, key: &(usize, TaskId)) -> Option<Awaited> {
        let awaited = self.awaited.remove(key)?;
        if let Some(count) = self.per_engine.get_mut(key.0) {
            *count = count.saturating_sub(1);
        }
        Some(awaited)
    }

    /// Whether the reply of `engine` for `task` is still awaited.
    pub(super) fn contains_key(&self, key: &(usize, TaskId)) -> bool {
        self.awaited.contains_key(key)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.awaited.is_empty()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&(usize, TaskId), &Awaited)> {
        self.awaited.iter()
    }

    /// Requests to `engine` waiting for their replies.
    pub(super) fn on(&self, engine: usize) -> usize {
        self.per_engine.get(engine).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_inserts_and_removes_per_engine() {
        let state = ResultState::new(7, &[0, 1], &"test", false);
        let mut f = Inflight::new(2);
        f.insert((0, 7), (state.clone(), 0, "apply"));
        f.insert((1, 7), (state.clone(), 1, "apply"));
        f.insert((1, 8), (state.clone(), 0, "pull"));
        f.insert((1, 8), (state.clone(), 0, "pull"));
        assert_eq!(
            (f.on(0), f.on(1), f.on(5)),
            (1, 2, 0),
            "a repeat counts once"
        );
        assert!(f.contains_key(&(1, 8)) && !f.contains_key(&(0, 8)));
        assert!(f.remove(&(1, 8)).is_some());
        assert!(f.remove(&(1, 8)).is_none());
        assert!(f.remove(&(0, 9)).is_none());
        assert_eq!((f.on(0), f.on(1)), (1, 1));
        f.remove(&(0, 7));
        f.remove(&(1, 7));
        assert!(f.is_empty());
        assert_eq!((f.on(0), f.on(1)), (0, 0));
    }
}
