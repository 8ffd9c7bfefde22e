//! rankview: the IPython Parallel programming model for MPI jobs.
//!
//! One binary runs on every rank of an MPI job. Rank 0 is the controller and
//! runs your client code; every other rank is an engine that runs what the
//! client sends. Engine id `i` is MPI rank `i + 1`.
//!
//! | concept | where | ipyparallel |
//! |---|---|---|
//! | start a job on every rank | [`launch`], [`Launch`] | `Client()` |
//! | the client, engine ids, views | [`Client`] | `rc.ids`, `rc[0]`, `rc[1:3]`, `rc[:]` |
//! | a set of engines | [`DirectView`] ([`One`], [`Many`]) | `DirectView` |
//! | run a function on engines | [`DirectView::apply`], [`remote`] | `view.apply(f, *args)` |
//! | move named values | [`DirectView::push`], [`DirectView::pull`], [`Values`] | `push`, `pull`, `dv['a']` |
//! | engine globals | [`globals`] | `global a` |
//! | MPI among a view's engines inside a task | [`comm`], [`TaskComm`] | "Parallel computing with MPI" (mpi4py in engines) |
//! | refer to an engine value | [`Ref`] | `parallel.Reference('a')` |
//! | results | [`AsyncResult`], [`Metadata`] | `AsyncResult` |
//! | one interface for threads and engines | [`Executor`]: [`LocalPool`], [`ViewExecutor`] ([`Client::executor`]) | `view.executor`, `rc.executor()` |
//! | shell commands on engines | [`DirectView::shell`], [`ShellOutput`] | `%px !cmd` |
//! | where and when tasks ran, as a picture | [`Client::timeline`], [`AsyncResult::timeline`], [`Timeline`] | (beyond ipyparallel) |
//! | errors | [`Error`] | `RemoteError`, `CompositeError` |
//! | tests that run as MPI jobs under `cargo test` | [`#[rankview::test(ranks = N)]`](test) | ipyparallel's cluster fixtures, pytest-mpi |
//!
//! There are no code strings: what `%px` does with Python code, rankview
//! does with functions marked [`#[rankview::remote]`](remote), which every
//! rank has because every rank runs the same binary.
//!
//! # Examples
//!
//! ```no_run
//! #[rankview::remote]
//! fn hostname_and_pid() -> (String, u32) {
//!     (std::env::var("HOSTNAME").unwrap_or_default(), std::process::id())
//! }
//!
//! fn main() {
//!     rankview::launch(|rc| -> rankview::Result<()> {
//!         for (i, (host, pid)) in rc.all().apply_sync(hostname_and_pid, ())?.iter().enumerate() {
//!             println!("engine {i}: pid {pid} on {host}");
//!         }
//!         Ok(())
//!     });
//! }
//! ```
//!
//! Run it with the launcher: `rankview run -n 3 ./target/debug/app` (or
//! `mpirun -n 3 ./target/debug/app`).
//!
//! ```compile_fail,E0277
//! // Arguments must be serializable: this does not compile.
//! #[rankview::remote]
//! fn takes(_: u8) {}
//! struct NotSerde;
//! fn demo(rc: &rankview::Client) {
//!     let _ = rc.all().apply(takes, (NotSerde,));
//! }
//! ```

// `#[rankview::remote]` functions of the crate itself (the shell command)
// name the crate `::rankview`, as user code does.
extern crate self as rankview;

mod backoff;
mod build_id;
mod bulk;
mod capture;
mod client;
mod codec;
mod contract;
mod controller;
mod engine;
mod error;
mod executor;
mod fifo;
mod helping;
mod hugepages;
mod launch;
mod loan;
mod namespace;
mod progress;
mod protocol;
mod raw_item;
mod registry;
mod remote;
mod result;
mod scheduler;
mod settings;
mod sync;
mod taskcomm;
mod testing;
mod timeline;
mod transport;
pub mod view;

pub use bulk::{Distribution, Element, ReduceOp};
pub use client::{Client, Targets};
pub use error::{Error, Result};
pub use executor::{Executor, LocalPool, ViewExecutor};
pub use launch::{launch, Launch};
pub use namespace::{globals, Exclusive, Globals, Shared, Value};
pub use rankview_macros::remote;
/// Makes a function of `&Client` a test that runs as its own MPI job under
/// plain `cargo test` (see the README's "Testing your program").
///
/// `#[rankview::test(ranks = N)]`, optionally `timeout = SECONDS` (default
/// 120, `RANKVIEW_TEST_TIMEOUT` overrides). The test binary is started under
/// `mpirun -n N` (or `$MPIEXEC`), rank 0 runs the function as the client,
/// and the job's outcome is the test's: a panic or an `Err` fails it with
/// its message, a job past its time limit is killed and fails it. Jobs run
/// one at a time (`RANKVIEW_TEST_JOBS` allows more);
/// `RANKVIEW_TEST_MPI_ARGS` adds launcher flags.
///
/// # Examples
///
/// ```no_run
/// #[rankview::remote]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// #[rankview::test(ranks = 3)]
/// fn squares_on_every_engine(rc: &rankview::Client) -> rankview::Result<()> {
///     assert_eq!(rc.all().apply_sync(square, (7u64,))?, vec![49, 49]);
///     Ok(())
/// }
/// ```
pub use rankview_macros::test;
pub use remote::{Args, IntoArg, Ref, RemoteFn, TaskError, TaskResult};
pub use result::{AsyncResult, Metadata};
pub use scheduler::{EngineStatus, QueueStatus};
pub use taskcomm::{comm, TaskComm};
pub use timeline::{Timeline, TimelineRecord, TIMELINE_LIMIT};
pub use transport::World;
pub use view::direct::Values;
pub use view::{
    AsyncMap, Dependencies, DirectView, IMap, LoadBalancedView, Many, One, Shape, ShellOutput,
    ShellStatus,
};

/// The MPI bindings rankview uses (rsmpi), for raw MPI beside rankview in
/// [`Launch::with_mpi`].
pub use mpi;

/// The `ndarray` rankview's arrays are (0.16): scatter, gather, push and
/// reduce take `rankview::ndarray::Array`s, so a program that depends on
/// this re-export (or on `ndarray = "0.16"`) never mismatches versions.
pub use ndarray;

/// Items used by code that `#[rankview::remote]` generates, the protocol
/// fuzz test's entry point, and what the test programs observe of the
/// threading mode (`helped_passes`) and of idle polling (`idle_yields`).
/// Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::backoff::idle_yields;
    pub use crate::bulk::ElemKind;
    pub use crate::helping::helped_passes;
    pub use crate::protocol::fuzz_decode;
    pub use crate::registry::RemoteEntry;
    pub use crate::remote::{
        no_map_raw, no_raw_kinds, reply, type_id_of, ArgReader, Held, NotRawMap, Probe, RawMap,
    };
    pub use inventory;

    /// What `#[rankview::test]` expands to, and the job plumbing the
    /// repository's own MPI test harness shares with it.
    pub mod testing {
        pub use crate::testing::{
            descendants, kill_job, run, Drain, JobSlot, TestJob, TestOutcome, CHILD_VAR,
        };
    }
}
