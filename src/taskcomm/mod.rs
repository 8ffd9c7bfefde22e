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
//! [`TaskComm`] lends the task's buffers ([`crate::loan`]) through a port
//! ([`install`]) to the engine, which starts the non-blocking MPI call
//! (`MPI_Iallreduce`, `MPI_Ibarrier`, ...; a small allreduce as
//! point-to-point steps) and tests it until it completes; the task waits
//! until the buffers come back. When MPI granted `MPI_THREAD_SERIALIZED`,
//! the task's thread starts the operation itself under the engine's loop
//! lock and tests it for a few microseconds (a short operation costs no
//! thread hand-off), and while it waits it makes the MPI thread's passes
//! for a short while (`helping`); otherwise, and for what is left after
//! that, the MPI thread tests it on every pass of its loop, between serving
//! the controller's requests. Under `MPI_THREAD_FUNNELED` only the MPI
//! thread ever calls MPI. While a task of a team runs, the MPI thread
//! sleeps when idle instead of spinning: the task and its peers need the
//! cores.
//!
//! A small allreduce (up to [`shm::SHM_BYTES`] per engine) of a team whose
//! engines share a node calls no MPI at all: it goes through the team's
//! shared segments ([`shm`]), which the engine's MPI thread made with the
//! communicator (`transport/window.rs`), on the task's own thread, under
//! either threading mode.
//!
//! ## A collective that never completes
//!
//! A task waiting for a member that never enters the collective waits for
//! ever: that is the user's hang, as in MPI. The engine's MPI thread keeps
//! serving meanwhile, so the job still ends by Ctrl-C, the launcher's
//! `--timeout`, or the shutdown grace (`RANKVIEW_SHUTDOWN_GRACE`), which
//! names the engines still busy; the operation is then abandoned with its
//! buffers (the process is ending).

use std::time::{Duration, Instant};

mod comm;
mod scope;
pub(crate) mod shm;

pub use comm::{comm, TaskComm};
pub(crate) use scope::{
    balanced, in_team_task, install, mapped, over_limit, scoped, single, TeamCall, TeamOp,
};

/// How long an operation may wait before the engine says so on its stderr
/// (`RANKVIEW_COMM_WAIT_NOTE` seconds, 30 by default): a member that never
/// enters a collective hangs the job until Ctrl-C, the launcher's
/// `--timeout` or the shutdown grace ends it, and the note names the engine
/// and the team.
pub(crate) fn wait_note() -> Duration {
    crate::settings::seconds("RANKVIEW_COMM_WAIT_NOTE", Duration::from_secs(30))
}

/// The note on stderr about an operation that has waited long.
pub(crate) fn note_long_wait(engine: usize, since: Instant, what: &str, engines: &[u32]) {
    crate::capture::report(&format!(
        "rankview: engine {engine}: a task has waited {:.0} s in {what} on the communicator of \
         engines {engines:?}; a member that never takes part hangs the job (Ctrl-C, --timeout \
         or the shutdown grace end it)",
        since.elapsed().as_secs_f64(),
    ));
}
