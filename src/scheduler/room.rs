//! Giving a burst's room back: a map or queue that held a million tasks
//! keeps its capacity after they are gone unless it is shrunk. Used by the
//! task table and by the controller's map of results (bench `w13`).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Shrinks `map` once it is mostly empty: a quarter full or less (and past
/// 1024 slots), it shrinks to twice what it holds, so shrinking costs O(1)
/// per removal overall.
pub(crate) fn shrink<K: Hash + Eq, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > 1024 && map.len() <= map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

/// [`shrink`] for a queue.
pub(crate) fn shrink_queue<V>(queue: &mut VecDeque<V>) {
    if queue.capacity() > 1024 && queue.len() <= queue.capacity() / 4 {
        queue.shrink_to(queue.len() * 2);
    }
}
