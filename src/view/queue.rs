//! Load-balanced work, whatever runs it: the [`TaskQueue`] a
//! [`LoadBalancedView`](crate::LoadBalancedView) (engines, through the
//! controller's scheduler) and a [`LocalPool`](crate::LocalPool) (threads
//! of rank 0) both implement, and the calls built on it ([`apply_on`],
//! [`map_on`]): encoding the call or the items into tasks, and decoding
//! each task's reply, so that both give the same results and errors.
//!
//! Where a task runs is the implementor's; the map's result is
//! [`AsyncMap`] (`async_map.rs`).

use std::ops::Range;

use serde::de::DeserializeOwned;

use crate::bulk::ElemKind;
use crate::client::collect;
use crate::codec;
use crate::error::{Error, Result};
use crate::protocol::{Each, Packed, TaskId, WireArg, Work};
use crate::raw_item;
use crate::registry::encode_call;
use crate::registry::registry;
use crate::remote::{Args, IntoArg, RemoteFn};
use crate::result::{AsyncResult, Control, Payload};
use crate::scheduler::map::Chunks;
use crate::view::arity::OneArg;
use crate::view::async_map::AsyncMap;
use crate::view::shape::One;

/// How one load-balanced task's replies become the caller's value.
pub(crate) trait Finish<R>:
    Fn(&mut [(usize, Result<Payload>)]) -> Result<R> + Send + Sync + 'static
{
}

impl<R, F> Finish<R> for F where
    F: Fn(&mut [(usize, Result<Payload>)]) -> Result<R> + Send + Sync + 'static
{
}

/// A queue load-balanced tasks are submitted to, each to run once on
/// whichever of its workers is free: the engines of a
/// [`LoadBalancedView`](crate::LoadBalancedView) (through the controller,
/// whose placement state is `controller::balance::Balancer`), or the
/// threads of a [`LocalPool`](crate::LocalPool) on rank 0. Building tasks
/// from calls and results from replies is shared ([`apply_on`],
/// [`map_on`]), so both give the same results and errors.
pub(crate) trait TaskQueue {
    /// A new task id.
    fn next_task(&self) -> TaskId;

    /// Starts `work` (numbered `task`); its one reply goes through `finish`.
    fn run<R: 'static>(&self, task: TaskId, work: Work, finish: impl Finish<R>) -> AsyncResult<R>;

    /// Items per `map` task for `count` items (sent raw when `raw`).
    fn chunksize(&self, count: usize, raw: bool) -> usize;

    /// Whether a map's iterator yields in input order.
    fn ordered(&self) -> bool;

    /// The link that lets a whole map be aborted or depended on, for
    /// controller tasks.
    fn control(&self, tasks: Vec<TaskId>) -> Option<Control>;

    /// A submission that failed before it was sent: its result fails with
    /// `error`, and it counts as a failed dependency.
    fn failed<R: 'static>(&self, error: Error) -> AsyncResult<R>;
}

/// Runs `f(args)` as one task of `on` (a load-balanced `apply`).
pub(crate) fn apply_on<Q, F, M, A>(on: &Q, f: F, args: A) -> AsyncResult<F::Output>
where
    Q: TaskQueue,
    F: RemoteFn<M>,
    A: Args<M>,
{
    let _ = f;
    let (function, args) = match encode_call::<F, M, A>(args) {
        Ok(b) => b,
        Err(e) => return on.failed(e),
    };
    let task = on.next_task();
    on.run(
        task,
        Work::Apply {
            task,
            function,
            args,
        },
        |outcomes: &mut [(usize, Result<Payload>)]| collect::<One, _>(outcomes, &decode_value),
    )
}

/// Runs `f` on every item, in tasks of `on`'s chunk size (a load-balanced
/// `map`).
pub(crate) fn map_on<Q, F, M, P, I>(
    on: &Q,
    f: F,
    items: impl IntoIterator<Item = I>,
) -> AsyncMap<F::Output>
where
    Q: TaskQueue,
    F: RemoteFn<M>,
    M: OneArg<P>,
    I: IntoArg<P>,
{
    let _ = f;
    let function = match registry().id_of::<F>() {
        Ok(id) => id,
        Err(e) => return AsyncMap::failed(on.failed(e), on.ordered()),
    };
    let items: Vec<I> = items.into_iter().collect();
    let count = items.len();
    let raw = registry()
        .entry(function)
        .and_then(|entry| (entry.raw_kinds)());
    if let Some((param, result)) = raw {
        let chunks = Chunks::new(count, on.chunksize(count, true));
        if let Some(packed) = raw_chunks(&items, &chunks, param) {
            let raw: Vec<AsyncResult<RawChunk<F::Output>>> = packed
                .into_iter()
                .zip(chunks.iter())
                .map(|(chunk, range)| submit_raw_chunk(on, function, chunk, range, result))
                .collect();
            let items = raw
                .iter()
                .map(|r| r.clone().then(|c| c.map(RawChunk::into_items)))
                .collect();
            let wholes = raw
                .into_iter()
                .map(|r| r.then(|c| c.and_then(RawChunk::into_values)))
                .collect();
            return AsyncMap::with_wholes(items, wholes, chunks, on.ordered(), |tasks| {
                on.control(tasks)
            });
        }
    }
    let chunks = Chunks::new(count, on.chunksize(count, false));
    // Every item is encoded before anything is sent: an item that
    // cannot be sends nothing.
    let mut items = items.into_iter();
    let mut packed = Vec::with_capacity(chunks.count());
    for range in chunks.iter() {
        let mut chunk = Packed::with_capacity(range.len(), range.len() * 8);
        for item in items.by_ref().take(range.len()) {
            if let Err(e) = chunk.push_with(|out| item.encode_into(out)) {
                return AsyncMap::failed(on.failed(e), on.ordered());
            }
        }
        packed.push((chunk, range.start));
    }
    let results = packed
        .into_iter()
        .map(|(chunk, first)| submit_chunk::<Q, F::Output>(on, function, chunk, first))
        .collect();
    AsyncMap::new(results, chunks, on.ordered(), |tasks| on.control(tasks))
}

/// Sends one `map` task over `items` (encoded), numbered from `first`.
pub(crate) fn submit_chunk<Q: TaskQueue, R: DeserializeOwned + 'static>(
    on: &Q,
    function: u64,
    items: Packed,
    first: usize,
) -> AsyncResult<Vec<Result<R>>> {
    let count = items.len();
    let work = |task| Work::Map {
        task,
        function,
        items,
        raw: false,
    };
    submit_map(on, work, count, move |each, engine, task| {
        if each.values.len() != count {
            return None;
        }
        Some(Ok((0..count)
            .map(|k| decode_item(each, k, first + k, engine, task))
            .collect()))
    })
}

/// Sends the `map` task `work` makes (given its id) for `count` items;
/// `decode` reads its reply (given the engine and the task), `None` for a
/// reply of the wrong shape.
fn submit_map<Q: TaskQueue, T: 'static>(
    on: &Q,
    work: impl FnOnce(TaskId) -> Work,
    count: usize,
    decode: impl Fn(&Each, usize, TaskId) -> Option<Result<T>> + Send + Sync + 'static,
) -> AsyncResult<T> {
    let task = on.next_task();
    on.run(
        task,
        work(task),
        move |outcomes: &mut [(usize, Result<Payload>)]| {
            let (engine, outcome) = outcomes
                .first()
                .ok_or_else(|| Error::Protocol("a map task without a reply".into()))?;
            let decoded = match outcome {
                Ok(Payload::Each(each)) => decode(each, *engine, task),
                Ok(_) => None,
                Err(e) => return Err(e.clone()),
            };
            decoded.unwrap_or_else(|| {
                Err(Error::Protocol(format!(
                    "unexpected reply to a map task of {count} items: {outcome:?}"
                )))
            })
        },
    )
}

/// Each chunk's items as one string of their bytes, when every item is one
/// number of `kind` (the function's parameter type; `None` sends the
/// map the per-item way, which also reports a [`Ref`](crate::Ref)).
fn raw_chunks<P, I: IntoArg<P>>(
    items: &[I],
    chunks: &Chunks,
    kind: ElemKind,
) -> Option<Vec<Packed>> {
    let mut packed = Vec::with_capacity(chunks.count());
    for range in chunks.iter() {
        let mut chunk = Packed::with_capacity(1, range.len() * kind.size());
        let items = items.get(range)?;
        chunk
            .push_with(|out| {
                items
                    .iter()
                    .all(|item| item.encode_raw(kind, out))
                    .then_some(())
                    .ok_or(())
            })
            .ok()?;
        packed.push(chunk);
    }
    Some(packed)
}

/// Sends one raw `map` task (see [`Work::Map`]) over the items `range` of
/// the map, given as one string of their bytes; its results come back as
/// numbers of `kind`.
fn submit_raw_chunk<Q: TaskQueue, R: DeserializeOwned + 'static>(
    on: &Q,
    function: u64,
    items: Packed,
    range: Range<usize>,
    kind: ElemKind,
) -> AsyncResult<RawChunk<R>> {
    let work = |task| Work::Map {
        task,
        function,
        items,
        raw: true,
    };
    let count = range.len();
    submit_map(on, work, count, move |each, engine, task| {
        Some(raw_results(each, kind, range.clone(), engine, task))
    })
}

/// What a raw `map` task gave: a value for every item (a placeholder for
/// a failed one) and the failed items (index within the task, error).
/// The whole map's value is made of `values` alone; a `Result` per item is
/// made only for the map's iterator.
pub(crate) struct RawChunk<R> {
    values: Vec<R>,
    failed: Vec<(usize, Error)>,
}

impl<R> RawChunk<R> {
    /// Each item's result, in order.
    fn into_items(self) -> Vec<Result<R>> {
        let mut failed = self.failed.into_iter().peekable();
        self.values
            .into_iter()
            .enumerate()
            .map(|(k, value)| match failed.next_if(|(i, _)| *i == k) {
                Some((_, e)) => Err(e),
                None => Ok(value),
            })
            .collect()
    }

    /// Every value, or the first failed item's error.
    fn into_values(self) -> Result<Vec<R>> {
        match self.failed.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(self.values),
        }
    }
}

/// The results of a raw `map` task over the items `range`: numbers of
/// `kind` read from the reply's one string, and its failed items; a reply
/// with no string failed as a whole.
fn raw_results<R: DeserializeOwned>(
    each: &Each,
    kind: ElemKind,
    range: Range<usize>,
    engine: usize,
    task: TaskId,
) -> Result<RawChunk<R>> {
    let count = range.len();
    if each.values.len() == 0 {
        if let Some((_, failure)) = each.failed.first() {
            return Err(failure.clone().into_error(engine, task));
        }
    }
    let bytes = match each.values.len() {
        1 => each.values.get(0)?,
        _ => &[][..],
    };
    if bytes.len() != count * kind.size() {
        return Err(Error::Protocol(format!(
            "a raw map reply of {} bytes for {count} items of {} bytes",
            bytes.len(),
            kind.size()
        )));
    }
    let failed = each
        .failed
        .iter()
        .map(|(k, failure)| {
            let k = usize::try_from(*k).unwrap_or(usize::MAX);
            let error = Error::MapItem {
                index: range.start.saturating_add(k),
                error: Box::new(failure.clone().into_error(engine, task)),
            };
            (k, error)
        })
        .collect();
    Ok(RawChunk {
        values: raw_item::decode_elements(kind, bytes)?,
        failed,
    })
}

/// Encodes one `map` item; a [`Ref`](crate::Ref) is refused.
pub(crate) fn encode_item<P, I: IntoArg<P>>(item: I) -> Result<Vec<u8>> {
    match item.into_wire()? {
        WireArg::Value(bytes) => Ok(bytes),
        WireArg::Ref(name) => Err(Error::Usage(format!(
            "map takes values, not references (Ref {name:?})"
        ))),
    }
}

fn decode_value<R: DeserializeOwned>(_: usize, payload: &mut Payload) -> Result<R> {
    match payload {
        Payload::Value(bytes) => codec::decode(bytes),
        other => Err(Error::Protocol(format!("unexpected reply {other:?}"))),
    }
}

/// Item `k` of a task's results; `index` is its place in the map's input.
fn decode_item<R: DeserializeOwned>(
    each: &Each,
    k: usize,
    index: usize,
    engine: usize,
    task: TaskId,
) -> Result<R> {
    match each.item(k) {
        Ok(bytes) => codec::decode(bytes?),
        Err(f) => Err(Error::MapItem {
            index,
            error: Box::new(f.clone().into_error(engine, task)),
        }),
    }
}
