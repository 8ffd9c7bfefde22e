//! The policy of a load-balanced `map`: how items are cut into tasks
//! ([`default_chunksize`], [`Chunks`]), in which order results are handed
//! back ([`Assembly`]), and how many tasks `imap` keeps in flight
//! ([`Window`]). Encoding items, submitting chunks and decoding results are
//! the view's.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

/// The most items the default rule puts in one chunk.
pub(crate) const MAX_DEFAULT_CHUNK: usize = 1024;

/// The most items the default rule puts in one chunk of a map sent raw
/// (plain numbers, 1 to 8 bytes each: at most 64 KiB).
pub(crate) const MAX_DEFAULT_RAW_CHUNK: usize = 8192;

/// Chunks per engine the default rule aims for, at least.
pub(crate) const CHUNKS_PER_ENGINE: usize = 8;

/// The chunk size `map` uses when the user gives none, for `items` items
/// over `engines` engines.
///
/// ## Rule
///
/// `ceil(items / (8 × engines))`, clamped to `1..=1024`:
/// - at least 8 chunks per engine when there are enough items, so that
///   stealing can even out uneven items (a chunk is the unit that moves,
///   and one engine's share is cut in 8 or more);
/// - at most 1024 items per chunk, so that one message and one reply stay
///   small, results start streaming back early, and a slow chunk holds up
///   little; with the prefetch of several chunks per engine, the per-chunk
///   cost is spread over 1024 items;
/// - at least 1 (also for 0 items or 0 engines).
///
/// 1000 items over 4 engines: chunks of 32 (32 chunks); 10^6 items over 2
/// engines: 1024 (977 chunks); 10 items over 4 engines: 1.
///
/// A map sent raw (`raw`: its items and results are plain numbers moved as
/// one buffer per chunk) is capped at [`MAX_DEFAULT_RAW_CHUNK`] instead:
/// such a chunk of 8192 items is at most 64 KiB, and an item costs the
/// engine nanoseconds where a task costs microseconds, so chunks of 1024
/// would spend most of their time being tasks. 10^6 such items over 2
/// engines: 8192 (123 chunks, still 8 or more per engine).
pub(crate) fn default_chunksize(items: usize, engines: usize, raw: bool) -> usize {
    let chunks = CHUNKS_PER_ENGINE.saturating_mul(engines.max(1));
    let max = if raw {
        MAX_DEFAULT_RAW_CHUNK
    } else {
        MAX_DEFAULT_CHUNK
    };
    items.div_ceil(chunks).clamp(1, max)
}

/// Items `0..len` cut into consecutive chunks of `size` (the last may be
/// shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunks {
    len: usize,
    size: usize,
}

impl Chunks {
    /// `len` items in chunks of `size` (0 is taken as 1).
    pub(crate) fn new(len: usize, size: usize) -> Chunks {
        Chunks {
            len,
            size: size.max(1),
        }
    }

    /// How many chunks (0 for no items).
    pub(crate) fn count(&self) -> usize {
        self.len.div_ceil(self.size)
    }

    /// The item range of chunk `index` (empty past the end).
    pub(crate) fn range(&self, index: usize) -> Range<usize> {
        let start = index.saturating_mul(self.size).min(self.len);
        start..start.saturating_add(self.size).min(self.len)
    }

    /// Every chunk's range, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..self.count()).map(|i| self.range(i))
    }

    #[cfg(test)]
    /// The chunk holding item `item`.
    pub(crate) fn chunk_of(&self, item: usize) -> usize {
        item / self.size
    }
}

/// Puts results back in input order (`ordered`) or hands them out as they
/// complete.
///
/// Results are numbered from 0 in input order (chunk or item index). In
/// order, a result waits here until every earlier one has arrived; out of
/// order, it is ready at once.
#[derive(Debug)]
pub(crate) struct Assembly<R> {
    ordered: bool,
    /// Next index to hand out in order.
    next: u64,
    /// Arrived early (in order only).
    early: BTreeMap<u64, R>,
    ready: VecDeque<(u64, R)>,
}

impl<R> Assembly<R> {
    pub(crate) fn new(ordered: bool) -> Assembly<R> {
        Assembly {
            ordered,
            next: 0,
            early: BTreeMap::new(),
            ready: VecDeque::new(),
        }
    }

    /// Result `index` arrived. In order, a repeated index is refused (false,
    /// the value dropped); out of order nothing is remembered per index (an
    /// endless `imap` must not grow), so the caller gives each index once,
    /// as the task table reports each task's final result once.
    pub(crate) fn insert(&mut self, index: u64, value: R) -> bool {
        if !self.ordered {
            self.ready.push_back((index, value));
            return true;
        }
        if index < self.next || self.early.contains_key(&index) {
            return false;
        }
        self.early.insert(index, value);
        while let Some(value) = self.early.remove(&self.next) {
            self.ready.push_back((self.next, value));
            self.next += 1;
        }
        true
    }

    /// The next result to hand out, with its index.
    pub(crate) fn pop(&mut self) -> Option<(u64, R)> {
        self.ready.pop_front()
    }

    #[cfg(test)]
    /// Results held: arrived and not handed out.
    pub(crate) fn held(&self) -> usize {
        self.early.len() + self.ready.len()
    }
}

/// `imap`'s window: at most `max_outstanding` tasks submitted and not yet
/// handed to the consumer.
///
/// A result that arrived but waits for an earlier one (ordered) still
/// counts: the window bounds what the client holds, not only what engines
/// hold. The view submits while [`submit`](Window::submit) gives an index,
/// and calls [`consumed`](Window::consumed) each time the consumer takes a
/// result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    max: usize,
    submitted: u64,
    consumed: u64,
}

impl Window {
    /// A window of `max_outstanding` (0 is taken as 1).
    pub(crate) fn new(max_outstanding: usize) -> Window {
        Window {
            max: max_outstanding.max(1),
            submitted: 0,
            consumed: 0,
        }
    }

    /// The index of the next task to submit, if the window has room.
    pub(crate) fn submit(&mut self) -> Option<u64> {
        if self.outstanding() >= self.max {
            return None;
        }
        let index = self.submitted;
        self.submitted += 1;
        Some(index)
    }

    /// The consumer took one result.
    pub(crate) fn consumed(&mut self) {
        if self.consumed < self.submitted {
            self.consumed += 1;
        }
    }

    /// Submitted and not consumed.
    pub(crate) fn outstanding(&self) -> usize {
        usize::try_from(self.submitted - self.consumed).unwrap_or(usize::MAX)
    }

    /// Tasks submitted so far.
    pub(crate) fn submitted(&self) -> u64 {
        self.submitted
    }
}
