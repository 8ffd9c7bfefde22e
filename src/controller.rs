//! The controller: rank 0's MPI thread.
//!
//! Takes [`Command`]s from client handles over a channel, sends requests to
//! engines, receives their replies and completes the matching results. It
//! never runs user code and never decides what to compute. Start-up (checking
//! that every engine runs the same binary) and shutdown live here too.
//!
//! ## Shutdown
//!
//! A clean shutdown first waits until every submitted request has replied,
//! then tells every engine to stop and waits for each one's `Goodbye`. A
//! failed shutdown (the client panicked or returned `Err`) tells the engines
//! to exit non-zero at once and waits at most [`FAILED_GRACE`] for them before
//! aborting the job, so a failure never hangs.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::protocol::{self, Reply, Request, TaskId};
use crate::result::ResultState;
use crate::transport::{Mpi, SendBuf};

/// How long engines get to leave after a failed client.
const FAILED_GRACE: Duration = Duration::from_secs(10);

/// What client handles ask of the controller.
pub(crate) enum Command {
    /// Send `request` to each engine in `engines` and fill `state` with the replies.
    Submit {
        task: TaskId,
        engines: Arc<[usize]>,
        request: Arc<[u8]>,
        state: Arc<ResultState>,
    },
    /// Stop serving; `failed` when the client failed.
    Shutdown { failed: bool },
}

/// What the controller tells the client thread once start-up is over.
pub(crate) struct Ready {
    pub engines: usize,
    pub controller: Thread,
}

/// Identity of the binary: hash of the executable and of the registry.
pub(crate) fn identity() -> (u64, u64) {
    let binary = std::env::current_exe()
        .and_then(std::fs::read)
        .map(|bytes| {
            use std::hash::Hasher;
            let mut h = crate::codec::StableHasher::default();
            // Hash 8 bytes at a time: fast enough for large debug binaries.
            for chunk in bytes.chunks(8) {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                h.write_u64(u64::from_le_bytes(word));
            }
            h.finish()
        })
        .unwrap_or(0);
    (binary, crate::registry::registry().hash())
}

/// Runs rank 0's MPI thread until shutdown. Start-up errors go to `ready`.
pub(crate) fn run(mut mpi: Mpi, commands: Receiver<Command>, ready: SyncSender<Result<Ready>>) {
    let engines = mpi.size() - 1;
    if let Err(e) = check_engines(&mut mpi, engines) {
        let _ = ready.send(Err(e));
        stop_engines(&mut mpi, engines, true);
        return;
    }
    if ready
        .send(Ok(Ready {
            engines,
            controller: std::thread::current(),
        }))
        .is_err()
    {
        stop_engines(&mut mpi, engines, true);
        return;
    }
    let failed = serve(&mut mpi, &commands);
    stop_engines(&mut mpi, engines, failed);
}

/// Waits for every engine's `Hello` and compares binaries.
fn check_engines(mpi: &mut Mpi, engines: usize) -> Result<()> {
    let (binary, registry) = identity();
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
        match protocol::decode::<Reply>(&bytes)? {
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
    if differing.is_empty() {
        Ok(())
    } else {
        Err(Error::BinaryMismatch {
            ranks: differing,
            detail: "executable or remote-function registry differs".into(),
        })
    }
}

/// The serving loop; returns whether the shutdown is a failed one.
fn serve(mpi: &mut Mpi, commands: &Receiver<Command>) -> bool {
    let mut inflight: HashMap<(usize, TaskId), (Arc<ResultState>, usize)> = HashMap::new();
    let mut backoff = Backoff::new(Duration::from_millis(10));
    let mut draining = false;
    loop {
        let mut busy = false;
        loop {
            match commands.try_recv() {
                Ok(Command::Submit {
                    task,
                    engines,
                    request,
                    state,
                }) => {
                    busy = true;
                    for (index, &engine) in engines.iter().enumerate() {
                        match mpi.send(engine + 1, SendBuf::Shared(request.clone())) {
                            Ok(()) => {
                                inflight.insert((engine, task), (state.clone(), index));
                            }
                            Err(e) => state.fail(index, e),
                        }
                    }
                }
                Ok(Command::Shutdown { failed: true }) => return true,
                Ok(Command::Shutdown { failed: false }) => draining = true,
                Err(TryRecvError::Empty) => break,
                // Every client handle is gone without asking for a shutdown:
                // the client thread died.
                Err(TryRecvError::Disconnected) if !draining => return true,
                Err(TryRecvError::Disconnected) => break,
            }
        }
        while let Some((rank, bytes)) = mpi.try_recv() {
            busy = true;
            receive(rank, &bytes, &mut inflight);
        }
        busy |= mpi.progress();
        if draining && inflight.is_empty() {
            return false;
        }
        if busy {
            backoff.reset();
        } else {
            // With replies outstanding, poll MPI at least every millisecond.
            backoff.set_ceiling(if inflight.is_empty() {
                Duration::from_millis(10)
            } else {
                Duration::from_millis(1)
            });
            backoff.snooze();
        }
    }
}

/// Handles one message from an engine.
fn receive(
    rank: usize,
    bytes: &[u8],
    inflight: &mut HashMap<(usize, TaskId), (Arc<ResultState>, usize)>,
) {
    let engine = rank.wrapping_sub(1);
    match protocol::decode::<Reply>(bytes) {
        Ok(Reply::Done(done)) => match inflight.remove(&(engine, done.task)) {
            Some((state, index)) => state.complete(index, done, engine),
            None => eprintln!(
                "rankview: engine {engine} replied to unknown task {}",
                done.task
            ),
        },
        Ok(other) => eprintln!("rankview: unexpected message from engine {engine}: {other:?}"),
        Err(e) => eprintln!("rankview: engine {engine}: {e}"),
    }
}

/// Tells every engine to stop and waits for their goodbyes.
fn stop_engines(mpi: &mut Mpi, engines: usize, failed: bool) {
    let request = match protocol::encode(&Request::Shutdown { failed }) {
        Ok(bytes) => Arc::<[u8]>::from(bytes),
        Err(_) => mpi.abort(1),
    };
    for engine in 0..engines {
        if mpi
            .send(engine + 1, SendBuf::Shared(request.clone()))
            .is_err()
        {
            mpi.abort(1);
        }
    }
    let deadline = Instant::now() + FAILED_GRACE;
    let mut gone = vec![false; engines + 1];
    let mut remaining = engines;
    let mut backoff = Backoff::new(Duration::from_millis(5));
    while remaining > 0 {
        match mpi.try_recv() {
            Some((rank, bytes)) => {
                backoff.reset();
                if let Ok(Reply::Goodbye) = protocol::decode::<Reply>(&bytes) {
                    if rank < gone.len() && !gone[rank] {
                        gone[rank] = true;
                        remaining -= 1;
                    }
                }
            }
            None => {
                mpi.progress();
                if failed && Instant::now() > deadline {
                    eprintln!("rankview: engines did not stop in time; aborting the job");
                    mpi.abort(1);
                }
                backoff.snooze();
            }
        }
    }
    mpi.flush();
}
