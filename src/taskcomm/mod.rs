//! MPI inside tasks: the communicator of the engines a task was sent to
//! ([`TaskComm`], from [`comm`]), ipyparallel's "Parallel computing with
//! MPI".
//!
//! A task that a direct view sent to several engines runs, on each of
//! them, inside the scope of its team (the view's engines in target order,
//! [`TeamSpec`](crate::protocol::TeamSpec)); `comm()` there gives the
//! team's communicator. This module owns that scope ([`scoped`]) and the
//! public type; the communicators themselves and the MPI calls are the
//! transport's (`transport/team.rs`), and creating them when a team's first
//! message arrives is the engine's MPI thread's (`engine/serve.rs`).
//!
//! ## Who calls MPI
//!
//! Never the task's thread while it blocks. Each operation of a
//! [`TaskComm`] lends the task's buffers ([`crate::loan`]) to the engine's
//! MPI thread through a port ([`install`]); that thread starts the
//! non-blocking MPI call (`MPI_Iallreduce`, `MPI_Ibarrier`, ...) and tests
//! it on every pass of its loop, between serving the controller's
//! requests; the task waits until the buffers come back. When MPI granted
//! `MPI_THREAD_SERIALIZED`, the waiting task makes those passes itself for a
//! short while (`helping`), so a short operation costs no thread hand-off;
//! under `MPI_THREAD_FUNNELED` only the MPI thread ever calls MPI.
//!
//! ## A collective that never completes
//!
//! A task waiting for a member that never enters the collective waits for
//! ever: that is the user's hang, as in MPI. The engine's MPI thread keeps
//! serving meanwhile, so the job still ends by Ctrl-C, the launcher's
//! `--timeout`, or the shutdown grace (`RANKVIEW_SHUTDOWN_GRACE`), which
//! names the engines still busy; the operation is then abandoned with its
//! buffers (the process is ending).

mod comm;
mod scope;

pub use comm::{comm, TaskComm};
pub(crate) use scope::{balanced, install, mapped, scoped, single, TeamCall, TeamOp};
