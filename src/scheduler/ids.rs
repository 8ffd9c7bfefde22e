//! Who and what the scheduling policy talks about: task ids, engine ids and
//! sets of engines.
//!
//! The words every other file of the policy, the protocol and the runtime
//! share. Defined here, at the bottom of the scheduler, so that the policy
//! owns them without importing anything (the protocol carries them, it does
//! not define them).

use std::sync::Arc;

/// Identifies one submission; with the engine id it identifies one reply.
pub(crate) type TaskId = u64;

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
