//! Who and what the scheduling policy talks about: task ids, engine ids and
//! sets of engines, and the maps keyed by task ids.
//!
//! The words every other file of the policy, the protocol and the runtime
//! share. Defined here, at the bottom of the scheduler, so that the policy
//! owns them without importing anything (the protocol carries them, it does
//! not define them).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Identifies one submission; with the engine id it identifies one reply.
pub(crate) type TaskId = u64;

/// A map keyed by task ids: the controller's rows and results, one lookup
/// or more per task on every hot path (bench `w2`).
pub(crate) type TaskMap<V> = HashMap<TaskId, V, BuildHasherDefault<IdHasher>>;

/// Hashes a task id with one multiplication. Ids are the client's own
/// counter, never chosen by anyone else, so the map needs no keyed hash
/// against collisions made on purpose; an odd multiplier spreads
/// consecutive ids over both the low bits (the bucket) and the high bits
/// (the tag) of the hash.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

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
