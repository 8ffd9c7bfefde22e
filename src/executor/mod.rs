//! Executors: one interface over every place a task can run (the "Futures in IPython Parallel" notebook's
//! `concurrent.futures.Executor`).
//!
//! [`Executor`] is the interface: `submit` one call, `map` a function over
//! items. [`ViewExecutor`] implements it over engines, a load-balanced view
//! (`rc.executor()`, [`LoadBalancedView::executor`]) or a direct view whose
//! engines take tasks in turn ([`DirectView::executor`]);
//! [`LocalPool`] implements it over threads of rank 0 (`local.rs`). All
//! return the same [`AsyncResult`] and [`AsyncMap`] types, so code written
//! against `impl Executor` runs unchanged on each. Building tasks and
//! decoding replies is the views' (`view::load_balanced` shares its code
//! with the local pool); running them is the controller's and the engines'.

mod local;

pub use local::LocalPool;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::protocol::WireArg;
use crate::registry::registry;
use crate::remote::{Args, IntoArg, RemoteFn};
use crate::result::AsyncResult;
use crate::scheduler::map::Chunks;
use crate::view::arity::OneArg;
use crate::view::async_map::AsyncMap;
use crate::view::direct::DirectView;
use crate::view::load_balanced::LoadBalancedView;
use crate::view::queue::encode_item;
use crate::view::shape::{Many, One, Shape};

use crate::client::Client;

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
    /// view set [`ordered(false)`](LoadBalancedView::ordered));
    /// [`get`](AsyncResult::get) waits for all of them, in input order (or
    /// the first failed item's [`Error::MapItem`]). Items are values: a
    /// [`Ref`](crate::Ref) is refused with [`Error::Usage`].
    fn map<F, M, P, I>(&self, f: F, items: impl IntoIterator<Item = I>) -> AsyncMap<F::Output>
    where
        F: RemoteFn<M>,
        M: OneArg<P>,
        I: IntoArg<P>;
}

/// An [`Executor`] over engines (ipyparallel's `ViewExecutor`).
///
/// Made by [`Client::executor`] (every engine, load-balanced),
/// [`LoadBalancedView::executor`] (that view's engines and flags, e.g.
/// its `chunksize`) or [`DirectView::executor`]: there each `submit` goes
/// to the next engine of the view in turn, and `map` sends one task per
/// item, the items dealt to the engines in turn from where the last call
/// stopped. Cheap to clone; clones share the turn.
///
/// # Examples
///
/// ```no_run
/// use rankview::Executor;
///
/// #[rankview::remote]
/// fn show(x: u32) -> String {
///     x.to_string()
/// }
///
/// rankview::launch(|rc| -> rankview::Result<()> {
///     for ex in [rc.executor(), rc.all().executor()] {
///         let strings: Vec<String> = ex.map(show, 0..5u32).get()?;
///         println!("{}: {strings:?}", ex.name());
///     }
///     Ok(())
/// });
/// ```
#[derive(Clone)]
pub struct ViewExecutor {
    how: How,
}

#[derive(Clone)]
enum How {
    /// Engines of a direct view in turn; `next` counts the tasks dealt.
    Direct {
        view: DirectView<Many>,
        next: Arc<AtomicUsize>,
    },
    Balanced(Box<LoadBalancedView>),
}

impl fmt::Debug for ViewExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<ViewExecutor {}>", self.name())
    }
}

impl ViewExecutor {
    pub(crate) fn direct(view: DirectView<Many>) -> ViewExecutor {
        ViewExecutor {
            how: How::Direct {
                view,
                next: Arc::new(AtomicUsize::new(0)),
            },
        }
    }

    pub(crate) fn balanced(view: LoadBalancedView) -> ViewExecutor {
        ViewExecutor {
            how: How::Balanced(Box::new(view)),
        }
    }

    /// The engines tasks may run on, in increasing (or the view's) order.
    pub fn targets(&self) -> &[usize] {
        match &self.how {
            How::Direct { view, .. } => view.targets(),
            How::Balanced(view) => view.targets(),
        }
    }

    /// For a direct view: the view of the engine whose turn it is.
    fn next_engine(view: &DirectView<Many>, next: &AtomicUsize) -> DirectView<One> {
        let targets = view.targets();
        let turn = next.fetch_add(1, Ordering::Relaxed) % targets.len().max(1);
        let engine = targets.get(turn).copied().unwrap_or(0);
        DirectView::new(view.client.clone(), vec![engine])
    }
}

/// The executor of every engine.
impl Client {
    /// An [`Executor`] running tasks load-balanced over
    /// every engine (ipyparallel's `rc.executor()`); see
    /// [`ViewExecutor`] for other engines.
    pub fn executor(&self) -> ViewExecutor {
        self.load_balanced_view().executor()
    }
}

/// The executor of a direct view.
impl<S: Shape> DirectView<S> {
    /// An [`Executor`] whose tasks go to the view's
    /// engines in turn (ipyparallel's `view.executor`).
    pub fn executor(&self) -> ViewExecutor {
        ViewExecutor::direct(DirectView::new(
            self.client.clone(),
            self.targets().to_vec(),
        ))
    }
}

/// The executor of a load-balanced view.
impl LoadBalancedView {
    /// An [`Executor`] running tasks on this view, with
    /// its flags (ipyparallel's `lview.executor`).
    pub fn executor(&self) -> ViewExecutor {
        ViewExecutor::balanced(self.clone())
    }
}

impl Executor for ViewExecutor {
    fn name(&self) -> String {
        match &self.how {
            How::Direct { view, .. } => format!("direct view {:?}", view.targets()),
            How::Balanced(view) => format!("load-balanced view {:?}", view.targets()),
        }
    }

    fn submit<F, M, A>(&self, f: F, args: A) -> AsyncResult<F::Output>
    where
        F: RemoteFn<M>,
        A: Args<M>,
    {
        match &self.how {
            How::Direct { view, next } => ViewExecutor::next_engine(view, next).apply(f, args),
            How::Balanced(view) => view.apply(f, args),
        }
    }

    fn map<F, M, P, I>(&self, f: F, items: impl IntoIterator<Item = I>) -> AsyncMap<F::Output>
    where
        F: RemoteFn<M>,
        M: OneArg<P>,
        I: IntoArg<P>,
    {
        let (view, next) = match &self.how {
            How::Direct { view, next } => (view, next),
            How::Balanced(view) => return view.map(f, items),
        };
        let _ = f;
        // Every item is encoded before anything is sent, as for the
        // load-balanced map.
        let encoded = registry().id_of::<F>().and_then(|function| {
            let items = items
                .into_iter()
                .map(encode_item::<P, I>)
                .collect::<Result<Vec<_>>>()?;
            Ok((function, items))
        });
        let (function, items) = match encoded {
            Ok(e) => e,
            Err(e) => return AsyncMap::failed(AsyncResult::failed(e), true),
        };
        let layout = Chunks::new(items.len(), 1);
        let chunks = items
            .into_iter()
            .enumerate()
            .map(|(index, bytes)| {
                ViewExecutor::next_engine(view, next)
                    .apply_wire::<F::Output>(function, vec![WireArg::Value(bytes)])
                    .then(move |value| {
                        Ok(vec![value.map_err(|error| Error::MapItem {
                            index,
                            error: Box::new(error),
                        })])
                    })
            })
            .collect();
        AsyncMap::new(chunks, layout, true, |_| None)
    }
}
