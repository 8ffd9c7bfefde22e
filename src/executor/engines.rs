//! [`ViewExecutor`]: the [`Executor`] over engines, through a
//! load-balanced view or a direct view whose engines take tasks in turn,
//! and the `executor()` methods that make one ([`Client::executor`],
//! [`LoadBalancedView::executor`], [`DirectView::executor`]).
//!
//! Tasks are the views' own calls (`apply`, `map`); nothing here sends
//! anything itself.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::executor::Executor;
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
                    .apply_wire::<F::Output>(function, smallvec::smallvec![WireArg::Value(bytes)])
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
