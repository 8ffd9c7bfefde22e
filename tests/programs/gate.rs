//! A gate that tasks wait at until the client opens it: the test programs'
//! way to keep engines busy exactly as long as a check needs them busy, and
//! to know they are, instead of sleeping and hoping the timing holds on a
//! loaded machine.
//!
//! A task calls [`pass`] (or is [`hold`]) with the generation [`closed`]
//! gave the client: it blocks until the gate has been opened that many
//! times. The client opens it with [`open`], and learns how many tasks are
//! blocked at it with [`await_waiting`]. Both are raw MPI sections, which
//! every rank runs on its MPI thread, beside a task its execution thread is
//! running; a program that uses the gate registers them with [`sections`].
//! Tasks of rank 0's local pool wait at rank 0's gate, which the same
//! sections open. A task left at a gate that is never opened gives up after
//! [`LONGEST`], so that a broken check fails instead of hanging its job.
//! What a check does while the gate is closed is the check's business.

// Each program uses a different part of the gate.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rankview::mpi::collective::{CommunicatorCollectives, SystemOperation};
use rankview::{Client, Launch, TaskError, TaskResult};

use crate::checklist::{wait_until, Outcome};

/// How many times the gate was opened, on this rank.
static OPENED: AtomicU64 = AtomicU64::new(0);
/// Tasks blocked at the gate on this rank now.
static WAITING: AtomicU64 = AtomicU64::new(0);
/// Rank 0: tasks blocked at the gate on every rank, when last counted.
static COUNTED: AtomicU64 = AtomicU64::new(0);

/// The longest a task waits at a closed gate.
pub const LONGEST: Duration = Duration::from_secs(60);

/// Registers the gate's sections: `gate_open` and `gate_count`.
pub fn sections(launch: Launch) -> Launch {
    launch
        .mpi_section("gate_open", |_| {
            OPENED.fetch_add(1, Ordering::SeqCst);
        })
        .mpi_section("gate_count", |world| {
            let mine = WAITING.load(Ordering::SeqCst);
            let mut all = 0u64;
            world.all_reduce_into(&mine, &mut all, SystemOperation::sum());
            COUNTED.store(all, Ordering::SeqCst);
        })
}

/// The generation a task passes the client's next [`open`] with.
pub fn closed() -> u64 {
    OPENED.load(Ordering::SeqCst) + 1
}

/// Opens the gate once, on every rank: tasks waiting for this generation
/// (or an earlier one) go on.
pub fn open(rc: &Client) -> rankview::Result<()> {
    rc.mpi_section("gate_open").get()
}

/// Waits until at least `tasks` tasks are blocked at the gate, across the
/// job (at most 30 s).
pub fn await_waiting(rc: &Client, tasks: u64) -> Outcome {
    wait_until(&format!("{tasks} task(s) waiting at the gate"), || {
        rc.mpi_section("gate_count").get()?;
        Ok(COUNTED.load(Ordering::SeqCst) >= tasks)
    })
}

/// Blocks the calling task until the gate has been opened `generation`
/// times; an error after [`LONGEST`].
pub fn pass(generation: u64) -> Result<(), TaskError> {
    WAITING.fetch_add(1, Ordering::SeqCst);
    let start = Instant::now();
    while OPENED.load(Ordering::SeqCst) < generation && start.elapsed() < LONGEST {
        std::thread::sleep(Duration::from_millis(1));
    }
    WAITING.fetch_sub(1, Ordering::SeqCst);
    if OPENED.load(Ordering::SeqCst) < generation {
        return Err(TaskError::msg(format!(
            "the gate was not opened (generation {generation}) within {LONGEST:?}"
        )));
    }
    Ok(())
}

/// A task that waits at the gate (see [`pass`]); returns its engine.
#[rankview::remote]
pub fn hold(generation: u64) -> TaskResult<usize> {
    pass(generation)?;
    Ok(rankview::globals().engine()?)
}
