//! How bytes move between ranks.
//!
//! The only part of rankview that talks to MPI is [`mpi`](self::mpi): the
//! controller and the engines see a [`Mpi`] handle that sends and receives
//! whole messages without blocking, and runs the collectives; `team` keeps
//! the communicators of tasks' teams ([`Teams`]) and runs their operations
//! without blocking, and `window` gives a team whose engines share a node a
//! shared window for its small allreduces. What the bytes
//! mean is left to `protocol`; when to poll is left to the loops that own the
//! handle.

mod doubling;
mod lent;
pub(crate) mod mpi;
mod team;
mod window;

pub use self::mpi::World;
pub(crate) use self::mpi::{abort_job, needs_pieces, Mpi, Receive, Section, SendBuf};
pub(crate) use self::team::{HereStarted, Teams};
