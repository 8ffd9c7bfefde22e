//! The engine: what every rank except rank 0 runs.
//!
//! Two threads. The MPI thread ([`serve`]) receives requests from the
//! controller, hands them to the execution thread through the [`Inbox`] in
//! order, runs this engine's side of collectives, answers and makes steals
//! of load-balanced tasks (engine to engine), and sends replies back; it
//! stays responsive while a long task runs, and backs off to sleep when
//! idle. The execution thread ([`execute`]) owns the namespace, runs remote
//! functions (catching panics), captures their output, and encodes replies.
//! Placement decisions are never made here: which tasks go where, and whom
//! to steal from, is the scheduler's (`src/scheduler/`).

mod collective;
mod comm;
mod exec;
mod group;
mod inbox;
mod job;
mod panics;
mod serve;
mod steal;

pub(crate) use exec::{execute, run_work};
pub(crate) use inbox::Inbox;
pub(crate) use job::{Ending, ExecOut};
pub(crate) use panics::install_panic_hook;
pub(crate) use serve::{hostname, serve};
