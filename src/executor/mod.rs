//! Executors: one interface over every place a task can run (the "Futures in IPython Parallel" notebook's
//! `concurrent.futures.Executor`).
//!
//! [`Executor`] is the interface (this file): `submit` one call, `map` a
//! function over items. [`ViewExecutor`] implements it over engines
//! (`engines.rs`), a load-balanced view (`rc.executor()`,
//! [`LoadBalancedView::executor`](crate::LoadBalancedView::executor)) or a direct view whose engines take
//! tasks in turn ([`DirectView::executor`](crate::DirectView::executor)); [`LocalPool`] implements it
//! over threads of rank 0 (`local.rs`). All
//! return the same [`AsyncResult`] and [`AsyncMap`] types, so code written
//! against `impl Executor` runs unchanged on each. Building tasks and
//! decoding replies is the views' (`view::load_balanced` shares its code
//! with the local pool); running them is the controller's and the engines'.

mod engines;
mod local;

pub use engines::ViewExecutor;
pub use local::LocalPool;

use crate::remote::{Args, IntoArg, RemoteFn};
use crate::result::AsyncResult;
use crate::view::arity::OneArg;
use crate::view::async_map::AsyncMap;

#[cfg(doc)]
use crate::Error;

/// Something that runs remote functions: a [`LocalPool`] of threads on
/// rank 0, or engines through a [`ViewExecutor`] (Python's
/// `concurrent.futures.Executor`, which ipyparallel's views provide as
/// `view.executor`).
///
/// Code generic over `impl Executor` runs unchanged on every
/// implementation: functions are the same `#[rankview::remote]` functions,
/// results the same [`AsyncResult`] (a `Future`, with a blocking
/// [`get`](AsyncResult::get)) and [`AsyncMap`] (an iterator in input order,
/// and [`get`](AsyncResult::get) for the whole `Vec`), errors the same
/// [`Error`]s (a panic is [`Error::Remote`], a failed `map` item
/// [`Error::MapItem`] with its index, and the executor keeps working).
///
/// # Examples
///
/// Moving from threads of rank 0 to engines is a one-line change:
///
/// ```no_run
/// use rankview::{Executor, LocalPool};
///
/// #[rankview::remote]
/// fn norm(n: u64) -> f64 {
///     (n as f64).sqrt()
/// }
///
/// fn norms(ex: &impl Executor) -> rankview::Result<Vec<f64>> {
///     ex.map(norm, [1u64, 4, 9]).get()
/// }
///
/// rankview::launch(|rc| -> rankview::Result<()> {
///     let local = norms(&LocalPool::new(2)?)?;   // threads of rank 0
///     let remote = norms(&rc.executor())?;       // the engines
///     assert_eq!(local, remote);
///     Ok(())
/// });
/// ```
pub trait Executor {
    /// A short description for tables and messages, e.g.
    /// `load-balanced view [0, 1, 2]` or `local pool (4 threads)`.
    fn name(&self) -> String;

    /// Runs `f(args)` once (Python's `Executor.submit`). The result is a
    /// `Future` (await it from tokio or any executor without blocking it)
    /// and has a blocking [`get`](AsyncResult::get).
    fn submit<F, M, A>(&self, f: F, args: A) -> AsyncResult<F::Output>
    where
        F: RemoteFn<M>,
        A: Args<M>;

    /// Runs the one-argument `f` on every item (Python's `Executor.map`).
    /// The [`AsyncMap`] yields each item's result in input order as it
    /// arrives (in completion order for the executor of a load-balanced
    /// view set [`ordered(false)`](crate::LoadBalancedView::ordered));
    /// [`get`](AsyncResult::get) waits for all of them, in input order (or
    /// the first failed item's [`Error::MapItem`]). Items are values: a
    /// [`Ref`](crate::Ref) is refused with [`Error::Usage`].
    fn map<F, M, P, I>(&self, f: F, items: impl IntoIterator<Item = I>) -> AsyncMap<F::Output>
    where
        F: RemoteFn<M>,
        M: OneArg<P>,
        I: IntoArg<P>;
}
