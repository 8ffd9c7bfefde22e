//! The controller's start-up and shutdown: checking that every engine runs
//! the same binary, handing the client thread its [`Ready`], running the
//! serving loop, and stopping the engines (cleanly in two phases, or at
//! once after a failure), all under a panic guard that ends the job.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::SyncSender;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::contract::Command;
use crate::error::{Error, Result};
use crate::fifo::Receiver;
use crate::protocol::{self, Reply, Request};
use crate::transport::{self, Mpi};

use super::serve::serve;
use super::wire::{read_reply, receive_data, send_all};

/// How long engines get to leave after a failed client.
const FAILED_GRACE: Duration = Duration::from_secs(10);

/// What the controller tells the client thread once start-up is over.
pub(crate) struct Ready {
    pub engines: usize,
    pub controller: Thread,
}

/// Runs rank 0's MPI thread until shutdown. Start-up errors go to `ready`.
/// A panic here aborts the job (see the module's "Failures").
///
/// Returns false when the job did not end cleanly (start-up failed, the
/// client failed, or requests were still running after the shutdown grace):
/// rank 0 then exits non-zero too.
pub(crate) fn run(mpi: Mpi, commands: Receiver<Command>, ready: SyncSender<Result<Ready>>) -> bool {
    // Unwinding must not drop `mpi`, since finalizing would wait for engines
    // that wait for this thread: a panic aborts the job from here.
    let ran = panic::catch_unwind(AssertUnwindSafe(|| run_inner(mpi, commands, ready)));
    match ran {
        // Dropping `mpi` here finalizes MPI (after a clean stop).
        Ok((mpi, clean)) => {
            drop(mpi);
            clean
        }
        Err(payload) => controller_panicked(payload.as_ref(), "the controller thread"),
    }
}

/// A panic in the controller's loop, on `thread`: an internal failure that
/// ends the job (pending results could otherwise never complete).
fn controller_panicked(payload: &(dyn std::any::Any + Send), thread: &str) -> ! {
    let _ = std::io::Write::flush(&mut std::io::stdout());
    eprintln!(
        "rankview: internal error: rank 0's controller panicked on {thread} ({}); aborting the job",
        crate::error::panic_message(payload)
    );
    transport::abort_job(1)
}

fn run_inner(
    mut mpi: Mpi,
    mut commands: Receiver<Command>,
    ready: SyncSender<Result<Ready>>,
) -> (Mpi, bool) {
    let engines = mpi.size() - 1;
    if let Err(e) = check_engines(&mut mpi, engines) {
        let _ = ready.send(Err(e));
        // Let the client thread print why before the engines exit (it drops
        // its command sender when it has).
        while commands.recv().is_ok() {}
        stop_engines(&mut mpi, engines, true);
        return (mpi, false);
    }
    if ready
        .send(Ok(Ready {
            engines,
            controller: std::thread::current(),
        }))
        .is_err()
    {
        stop_engines(&mut mpi, engines, true);
        return (mpi, false);
    }
    let (mut mpi, failed) = serve(mpi, commands, engines);
    stop_engines(&mut mpi, engines, failed);
    (mpi, !failed)
}

/// Waits for every engine's `Hello` and compares binaries.
fn check_engines(mpi: &mut Mpi, engines: usize) -> Result<()> {
    let (binary, registry) = crate::build_id::job_identity();
    let mut seen = vec![false; engines + 1];
    let mut differing = Vec::new();
    let mut count = 0;
    let mut backoff = Backoff::new(Duration::from_millis(5));
    while count < engines {
        let Some((rank, bytes)) = mpi.try_recv() else {
            backoff.snooze();
            continue;
        };
        backoff.reset();
        match read_reply(mpi, rank, &bytes)? {
            Reply::Hello {
                binary: b,
                registry: r,
                ..
            } if rank >= 1 && rank <= engines && !seen[rank] => {
                seen[rank] = true;
                count += 1;
                if b != binary || r != registry {
                    differing.push(rank);
                }
            }
            other => {
                return Err(Error::Protocol(format!(
                    "rank {rank} sent {other:?} before saying hello"
                )))
            }
        }
    }
    if let Some(problem) = crate::registry::registry().problems().first() {
        return Err(Error::BinaryMismatch {
            ranks: vec![0],
            detail: format!("the remote-function registry is unsound: {problem}"),
        });
    }
    differing.sort_unstable();
    if differing.is_empty() {
        Ok(())
    } else {
        Err(Error::BinaryMismatch {
            ranks: differing,
            detail: "executable or remote-function registry differs".into(),
        })
    }
}

/// Tells every engine to stop and waits for their goodbyes.
///
/// A clean stop has two phases (see the engine's `serve`): every engine
/// first says it is quiet (its work done, no steal of its own in flight),
/// and only then are they all told to exit, so that no engine leaves while
/// a peer waits for the answer to a steal. A failed stop is one phase, and
/// aborts the job if engines do not leave within [`FAILED_GRACE`].
fn stop_engines(mpi: &mut Mpi, engines: usize, failed: bool) {
    broadcast_or_abort(mpi, engines, &Request::Shutdown { failed });
    if !failed {
        wait_for_all(mpi, engines, "quiet", CLEAN_GRACE, |r| {
            matches!(r, Reply::Quiet)
        });
        broadcast_or_abort(mpi, engines, &Request::Exit);
    }
    let grace = if failed { FAILED_GRACE } else { CLEAN_GRACE };
    wait_for_all(mpi, engines, "stop", grace, |r| matches!(r, Reply::Goodbye));
    mpi.flush();
}

/// How long engines get to finish a clean stop (their work is done by
/// then: only steals in flight and the goodbyes remain).
const CLEAN_GRACE: Duration = Duration::from_secs(60);

/// Sends `request` to every engine, or aborts the job.
fn broadcast_or_abort(mpi: &mut Mpi, engines: usize, request: &Request) {
    let all: Vec<usize> = (0..engines).collect();
    if send_all(mpi, &all, request).is_err() {
        mpi.abort(1);
    }
}

/// Waits until every engine has sent a reply matching `wanted`; aborts the
/// job after `grace`.
fn wait_for_all(
    mpi: &mut Mpi,
    engines: usize,
    what: &str,
    grace: Duration,
    wanted: impl Fn(&Reply) -> bool,
) {
    let deadline = Instant::now() + grace;
    let mut seen = vec![false; engines + 1];
    let mut remaining = engines;
    let mut backoff = Backoff::new(Duration::from_millis(5));
    while remaining > 0 {
        match mpi.try_recv() {
            Some((rank, bytes)) => {
                backoff.reset();
                // A reply's attachments and raw data are taken too: its
                // engine waits until they are before it finalizes.
                let reply = read_reply(mpi, rank, &bytes);
                if let Ok(Reply::Done(done)) = &reply {
                    if matches!(done.outcome, protocol::Outcome::Bulk { .. }) {
                        let _ = receive_data(mpi, rank, &done.outcome);
                    }
                }
                let matched = reply.is_ok_and(|r| wanted(&r));
                if matched && rank < seen.len() && !seen[rank] {
                    seen[rank] = true;
                    remaining -= 1;
                }
            }
            None => {
                mpi.progress();
                if Instant::now() > deadline {
                    let late: Vec<usize> = (1..seen.len())
                        .filter(|&r| !seen[r])
                        .map(|r| r - 1)
                        .collect();
                    eprintln!(
                        "rankview: engines {late:?} did not {what} in time; aborting the job"
                    );
                    mpi.abort(1);
                }
                backoff.snooze();
            }
        }
    }
}
