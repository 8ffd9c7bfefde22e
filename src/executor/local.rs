//! `LocalPool`: an [`Executor`] over threads of this process (a rayon pool).
//!
//! Runs the same `#[rankview::remote]` functions as engines do, through the
//! same path: arguments are encoded, the registry entry decodes them and
//! calls the function on a pool thread (`engine::run_work`, which turns a
//! panic into [`Error::Remote`]), and the reply completes the same
//! [`AsyncResult`] the load-balanced view builds (`view/queue.rs`'s
//! `TaskQueue`), so results, errors and metadata look the same. Scheduling
//! is rayon's; nothing here touches MPI.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use crate::engine;
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::protocol::{TaskId, Work};
use crate::registry::registry;
use crate::remote::{Args, IntoArg, RemoteFn};
use crate::result::{AsyncResult, Control, ResultState};
use crate::scheduler::map::default_chunksize;
use crate::view::arity::OneArg;
use crate::view::async_map::AsyncMap;
use crate::view::queue::{apply_on, map_on, Finish, TaskQueue};

/// Threads of this process running remote functions: the local
/// [`Executor`], to develop and compare a program on rank 0 before moving it
/// to engines by changing the executor (the "Futures in IPython Parallel" notebook's `ThreadPoolExecutor`).
///
/// Backed by a [`rayon::ThreadPool`] of its own. Each call goes through the
/// same encoding, registry and panic handling as on an engine, so results
/// and errors are those engines give: a panic is [`Error::Remote`] (kind
/// `"panic"`) and the pool keeps working. What differs:
///
/// - [`Metadata::engine`](crate::Metadata::engine) (and the `engine` of
///   errors) is the index of the pool thread that ran the task; `started`,
///   `completed` and `received` are filled, `stdout` and `stderr` stay
///   empty (threads of one process share its output, which is not
///   captured).
/// - There is no engine namespace: [`globals()`](crate::globals) and
///   [`Ref`](crate::Ref) arguments fail with [`Error::Usage`].
/// - Results cannot be aborted, nor be dependencies of load-balanced tasks.
/// - Its tasks are not in [`Client::timeline`](crate::Client::timeline)
///   (the pool has no client); a result's own
///   [`timeline`](AsyncResult::timeline) has them.
///
/// Making a pool installs, in this process, the panic hook engines use:
/// it records where a task panicked for [`Error::Remote`]'s message (and
/// prints the panic to stderr as the default hook does).
///
/// It needs no MPI job: it works in a plain program or test too (the
/// functions must still be `#[rankview::remote]`). Cheap to clone; clones
/// share the threads, which end once the last clone is dropped and the
/// tasks already submitted are done.
///
/// # Examples
///
/// ```
/// use rankview::{Executor, LocalPool};
///
/// #[rankview::remote]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = LocalPool::new(2)?;
/// assert_eq!(pool.submit(square, (7u64,)).get()?, 49);
/// assert_eq!(pool.map(square, 0..4u64).get()?, vec![0, 1, 4, 9]);
/// # Ok::<(), rankview::Error>(())
/// ```
#[derive(Clone)]
pub struct LocalPool {
    pool: Arc<rayon::ThreadPool>,
    next_task: Arc<AtomicU64>,
    chunksize: Option<usize>,
}

impl fmt::Debug for LocalPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<LocalPool {} threads>", self.threads())
    }
}

impl LocalPool {
    /// A pool of `threads` threads; 0 means one per CPU (rayon's default).
    ///
    /// Errors: [`Error::Usage`] when the threads cannot be started.
    pub fn new(threads: usize) -> Result<LocalPool> {
        engine::install_panic_hook();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("rankview-local-{i}"))
            .build()
            .map_err(|e| Error::Usage(format!("cannot start the local pool: {e}")))?;
        Ok(LocalPool {
            pool: Arc::new(pool),
            next_task: Arc::new(AtomicU64::new(1)),
            chunksize: None,
        })
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// A copy of the pool (same threads) whose `map` puts `items` items in
    /// each task (at least 1). Default: chosen from the item count and the
    /// threads as the load-balanced view does for engines.
    ///
    /// # Examples
    ///
    /// ```
    /// use rankview::{Executor, LocalPool};
    ///
    /// #[rankview::remote]
    /// fn double(x: u64) -> u64 {
    ///     2 * x
    /// }
    ///
    /// let pool = LocalPool::new(2)?;
    /// let map = pool.chunksize(4).map(double, 0..10u64);
    /// assert_eq!(map.tasks(), 3);
    /// assert_eq!(map.metadata().len(), 3);
    /// assert_eq!(map.get()?, (0..10).map(|x| 2 * x).collect::<Vec<_>>());
    /// // 0 items a task means 1.
    /// assert_eq!(pool.chunksize(0).map(double, 0..5u64).tasks(), 5);
    /// # Ok::<(), rankview::Error>(())
    /// ```
    pub fn chunksize(&self, items: usize) -> LocalPool {
        LocalPool {
            chunksize: Some(items.max(1)),
            ..self.clone()
        }
    }
}

impl TaskQueue for LocalPool {
    fn next_task(&self) -> TaskId {
        self.next_task.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs the task on a pool thread, which completes the result.
    fn run<R: 'static>(&self, task: TaskId, work: Work, finish: impl Finish<R>) -> AsyncResult<R> {
        let function = registry().path(work.function());
        let state = ResultState::new(task, &[usize::MAX], function, false);
        let settle = state.clone();
        self.pool.spawn(move || {
            let thread = rayon::current_thread_index().unwrap_or(0);
            // `run_work` catches the function's panics; this catches
            // rankview's own, so that the result settles either way.
            match panic::catch_unwind(AssertUnwindSafe(|| engine::run_work(work, 0, &mut None))) {
                Ok(done) => settle.complete_task(done, thread, false, SystemTime::now()),
                Err(payload) => settle.fail(
                    0,
                    Error::Protocol(format!(
                        "the local pool failed to run task {task}: {}",
                        crate::error::panic_message(payload.as_ref())
                    )),
                ),
            }
        });
        AsyncResult::new(state, finish)
    }

    fn chunksize(&self, count: usize, raw: bool) -> usize {
        self.chunksize
            .unwrap_or_else(|| default_chunksize(count, self.threads(), raw))
    }

    fn ordered(&self) -> bool {
        true
    }

    fn control(&self, _: Vec<TaskId>) -> Option<Control> {
        None
    }

    fn failed<R: 'static>(&self, error: Error) -> AsyncResult<R> {
        AsyncResult::failed(error)
    }
}

impl Executor for LocalPool {
    fn name(&self) -> String {
        format!("local pool ({} threads)", self.threads())
    }

    fn submit<F, M, A>(&self, f: F, args: A) -> AsyncResult<F::Output>
    where
        F: RemoteFn<M>,
        A: Args<M>,
    {
        apply_on(self, f, args)
    }

    fn map<F, M, P, I>(&self, f: F, items: impl IntoIterator<Item = I>) -> AsyncMap<F::Output>
    where
        F: RemoteFn<M>,
        M: OneArg<P>,
        I: IntoArg<P>,
    {
        map_on(self, f, items)
    }
}
