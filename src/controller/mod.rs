//! The controller: rank 0's MPI thread.
//!
//! Takes [`Command`]s from client handles over a channel, sends requests to
//! engines, receives their replies and completes the matching results. It
//! never runs user code and never decides what to compute. Start-up (checking
//! that every engine runs the same binary) and shutdown live here too.
//!
//! ## Message ordering
//!
//! Commands are handled in the order the client submitted them, and each one
//! sends its messages to its engines at once: point-to-point requests, and
//! the trigger of every collective (its `Collective` request, or the `Go` of
//! a gather). Each engine thus receives one ordered stream (MPI's
//! non-overtaking rule) and executes it in that order, so an `apply` after a
//! `push` or `scatter` sees the new value, whichever engines are busy. The
//! only thing serialized is the MPI collective call itself: rank 0 makes it
//! right after sending its trigger, and an engine's MPI thread makes it when
//! the trigger arrives, so every rank enters the collectives of every
//! sub-communicator in the same order and none waits for another view's
//! work. A gather or reduce first asks its engines to lend their values (in
//! their streams); it waits for them without holding anything else up, and
//! several may wait at once.
//!
//! ## Two phases
//!
//! A scatter or broadcast of a megabyte or more of numeric data
//! ([`TWO_PHASES_FROM`]) is received on each engine into the memory of the
//! value it replaces when it can be (see the engine's `recycled`), which
//! only the engine's execution thread can hand over. Its engines therefore
//! first get that buffer ready and reply `Ready`; rank 0 enters the
//! collective only once every one has, after sending each a `Go`, so no
//! rank spins inside the MPI call while an engine's execution thread waits
//! for a core to hand its buffer over (on an oversubscribed machine that
//! wait dominated, bench `w8loop`). Like a gather, the collective occupies
//! its sub-communicator from trigger to `Go`; smaller ones go at once.
//!
//! ## Failures
//!
//! A panic on this thread is an internal failure: it is reported on rank 0's
//! stderr and the job is aborted (`MPI_Abort`), since pending results could
//! otherwise never complete.
//!
//! ## Shutdown
//!
//! A clean shutdown first waits until every submitted request has replied
//! and every `on_done` callback queued or running has finished (a callback
//! may submit more work, which is waited for in turn), all within the
//! shutdown grace, then tells every engine to stop and waits for each one's
//! `Goodbye`. A
//! failed shutdown (the client panicked or returned `Err`) tells the engines
//! to exit non-zero at once and waits at most [`FAILED_GRACE`] for them before
//! aborting the job, so a failure never hangs.

mod balance;
mod collective;
mod inflight;
mod lifecycle;
mod serve;
mod wire;

pub(crate) use lifecycle::{run, Ready};
