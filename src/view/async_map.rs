//! [`AsyncMap`]: the result of a load-balanced `map` (or an executor's),
//! one result of every value and an iterator over each item's result as
//! it arrives.
//!
//! Made of one [`AsyncResult`] per task (a chunk of items); which tasks
//! are cut and sent is `queue.rs`'s.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Deref;
use std::sync::mpsc::{self, Receiver};

use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::protocol::TaskId;
use crate::result::{AsyncResult, Control};
use crate::scheduler::map::Chunks;

/// The values of one task of `count` items, or its error once per item.
pub(crate) fn spread<R>(chunk: Result<Vec<Result<R>>>, count: usize) -> Vec<Result<R>> {
    match chunk {
        Ok(items) => items,
        Err(e) => (0..count).map(|_| Err(e.clone())).collect(),
    }
}

/// The parts one after the other, moved into one vector of their length.
fn concat<R>(parts: Vec<Vec<R>>) -> Vec<R> {
    let mut all = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for part in parts {
        all.extend(part);
    }
    all
}

/// The result of a load-balanced [`map`](crate::LoadBalancedView::map): an
/// [`AsyncResult`] of every value (it derefs to one: `get`, `wait`,
/// `ready`, `metadata` with one entry per task, `abort`,
/// `wait_interactive`, `.await` through [`AsyncMap::result`]) and an
/// iterator over each item's result as it arrives.
pub struct AsyncMap<R> {
    result: AsyncResult<Vec<R>>,
    chunks: Vec<AsyncResult<Vec<Result<R>>>>,
    layout: Chunks,
    ordered: bool,
    arrivals: Receiver<u64>,
    /// Tasks handed out by the iterator so far.
    handed: usize,
    out: VecDeque<Result<R>>,
}

impl<R: DeserializeOwned + 'static> AsyncMap<R> {
    /// A map made of `chunks`, the tasks of `layout`; `control` ties the
    /// whole to the controller's tasks (given their ids), when there are.
    pub(crate) fn new(
        chunks: Vec<AsyncResult<Vec<Result<R>>>>,
        layout: Chunks,
        ordered: bool,
        control: impl FnOnce(Vec<TaskId>) -> Option<Control>,
    ) -> AsyncMap<R> {
        AsyncMap::assemble(chunks, None, layout, ordered, control)
    }

    /// A map like [`new`](AsyncMap::new) whose whole value is made of
    /// `wholes` (each task's values, or its first failed item's error, of
    /// the same submissions as `chunks`) instead of from a `Result` per
    /// item: a raw map's, where those would cost more than the values.
    pub(crate) fn with_wholes(
        chunks: Vec<AsyncResult<Vec<Result<R>>>>,
        wholes: Vec<AsyncResult<Vec<R>>>,
        layout: Chunks,
        ordered: bool,
        control: impl FnOnce(Vec<TaskId>) -> Option<Control>,
    ) -> AsyncMap<R> {
        AsyncMap::assemble(chunks, Some(wholes), layout, ordered, control)
    }

    fn assemble(
        chunks: Vec<AsyncResult<Vec<Result<R>>>>,
        wholes: Option<Vec<AsyncResult<Vec<R>>>>,
        layout: Chunks,
        ordered: bool,
        control: impl FnOnce(Vec<TaskId>) -> Option<Control>,
    ) -> AsyncMap<R> {
        let (arrived, arrivals) = mpsc::channel();
        let mut tasks = Vec::new();
        for (index, chunk) in chunks.iter().enumerate() {
            chunk.notify(arrived.clone(), index as u64);
            tasks.extend(chunk.balanced_tasks());
        }
        let mut result = match wholes {
            Some(wholes) => AsyncResult::join(wholes).and_then(|parts| Ok(concat(parts))),
            None => AsyncResult::join(chunks.clone())
                .and_then(|parts| parts.into_iter().flatten().collect()),
        };
        if let Some(control) = control(tasks) {
            result = result.with_control(control);
        }
        AsyncMap {
            result,
            chunks,
            layout,
            ordered,
            arrivals,
            handed: 0,
            out: VecDeque::new(),
        }
    }

    /// A map that could not be submitted: `result` holds why, and
    /// iterating yields that error once.
    pub(crate) fn failed(result: AsyncResult<Vec<R>>, ordered: bool) -> AsyncMap<R> {
        let (_, arrivals) = mpsc::channel();
        let out = result.get().err().map(Err).into_iter().collect();
        AsyncMap {
            result,
            chunks: Vec::new(),
            layout: Chunks::new(0, 1),
            ordered,
            arrivals,
            handed: 0,
            out,
        }
    }

    /// The whole map as one result, e.g. to `.await` it.
    pub fn result(&self) -> AsyncResult<Vec<R>> {
        self.result.clone()
    }

    /// Number of tasks the items were cut into.
    pub fn tasks(&self) -> usize {
        self.chunks.len()
    }

    /// Items done and in all (for progress).
    fn items_done(&self) -> (usize, usize) {
        let done = self
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.ready())
            .map(|(i, _)| self.layout.range(i).len())
            .sum();
        (done, self.layout.iter().map(|r| r.len()).sum())
    }

    /// Waits for every item while showing progress on stderr, counting
    /// items (see [`AsyncResult::wait_interactive`]).
    pub fn wait_interactive(&self) {
        crate::progress::watch(
            "items",
            || self.items_done(),
            |t| self.result.wait_timeout(t),
        );
    }
}

impl<R> Deref for AsyncMap<R> {
    type Target = AsyncResult<Vec<R>>;

    fn deref(&self) -> &AsyncResult<Vec<R>> {
        &self.result
    }
}

impl<R: 'static> fmt::Debug for AsyncMap<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AsyncMap {{ tasks: {}, ready: {} }}",
            self.chunks.len(),
            self.result.ready()
        )
    }
}

impl<R: DeserializeOwned + 'static> Iterator for AsyncMap<R> {
    type Item = Result<R>;

    /// The next item's result, waiting for it: in input order, or with
    /// `ordered(false)` in the order tasks complete.
    fn next(&mut self) -> Option<Result<R>> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            if self.handed >= self.chunks.len() {
                return None;
            }
            let index = if self.ordered {
                self.handed
            } else {
                match self.arrivals.recv() {
                    Ok(i) => usize::try_from(i).unwrap_or(usize::MAX),
                    Err(_) => self.handed,
                }
            };
            self.handed += 1;
            let chunk = self.chunks.get(index)?;
            let count = self.layout.range(index).len();
            self.out.extend(spread(chunk.get(), count));
        }
    }
}
