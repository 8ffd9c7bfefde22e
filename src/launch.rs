//! Starting and ending a rankview job on one rank.
//!
//! [`launch`] (and [`Launch::run`]) is called by every rank. It starts the
//! rank's MPI thread, then either runs the client closure (rank 0) or serves
//! as an engine (other ranks) on the calling thread, and ends every rank the
//! same way: cleanly when the client succeeds, at once and non-zero when it
//! fails. It also writes the per-rank status files the `rankview` launcher
//! reads (`$RANKVIEW_STATUS_DIR/rank-N`). What the threads do in between is
//! left to `controller` and `engine`.

use std::collections::HashMap;
use std::fmt::Display;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::mpsc;

use crate::capture;
use crate::client::Client;
use crate::contract::Command;
use crate::controller::{self, Ready};
use crate::engine::{self, Ending};
use crate::error::{Error, Result};
use crate::fifo;
use crate::transport::{Mpi, Section, World};

/// Code run on every rank's MPI thread right after `MPI_Init`, with
/// `MPI_COMM_WORLD`, before rankview starts serving.
type Prelude = Box<dyn FnOnce(&World) + Send>;

/// Options for starting a job; [`launch`] uses the defaults.
///
/// # Examples
///
/// ```no_run
/// use rankview::mpi::topology::Communicator;
/// use rankview::mpi::collective::CommunicatorCollectives;
///
/// rankview::Launch::new()
///     .with_mpi(|world| println!("rank {} of {}", world.rank(), world.size()))
///     .mpi_section("sync", |world| world.barrier())
///     .run(|rc| -> rankview::Result<()> {
///         rc.mpi_section("sync").get()?;
///         Ok(())
///     });
/// ```
#[derive(Default)]
pub struct Launch {
    prelude: Option<Prelude>,
    sections: HashMap<String, Section>,
}

/// Runs a rankview job: call it from `main` on every rank.
///
/// On rank 0, runs `client` with the job's [`Client`] and returns its value
/// once every engine has stopped. Every other rank serves as an engine until
/// the client is done and then ends its process inside `launch` (status 0):
/// only rank 0 ever returns, so `let x = launch(..)` is the client's value
/// on the one rank that goes on. (Raw MPI beside rankview goes in
/// [`Launch::with_mpi`] and [`Launch::mpi_section`], which run on every
/// rank.) If `client` returns `Err` or panics, every rank ends at once: the
/// message is printed and the process exits with status 1. A job of fewer
/// than two ranks, or one whose ranks run different binaries, also exits
/// with status 1 and a message.
///
/// # Examples
///
/// ```no_run
/// #[rankview::remote]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() {
///     rankview::launch(|rc| -> rankview::Result<()> {
///         let squares = rc.all().apply_sync(square, (7,))?;
///         assert!(squares.iter().all(|&s| s == 49));
///         Ok(())
///     });
/// }
/// ```
pub fn launch<F, T, E>(client: F) -> T
where
    F: FnOnce(&Client) -> std::result::Result<T, E>,
    E: Display,
{
    Launch::new().run(client)
}

/// How a rank was told to start.
enum Role {
    Controller(Ready),
    Engine {
        id: usize,
        comm: std::thread::Thread,
        inbox: std::sync::Arc<engine::Inbox>,
    },
}

impl Launch {
    /// Default options.
    pub fn new() -> Self {
        Launch::default()
    }

    /// Runs `prelude` on every rank's MPI thread right after MPI starts, with
    /// `MPI_COMM_WORLD` (for raw MPI beside rankview, e.g. benchmarks).
    /// Every rank must make matching MPI calls in it.
    pub fn with_mpi(mut self, prelude: impl FnOnce(&World) + Send + 'static) -> Self {
        self.prelude = Some(Box::new(prelude));
        self
    }

    /// Registers a raw MPI section: code that [`Client::mpi_section`] runs
    /// on every rank's MPI thread at once, with `MPI_COMM_WORLD`, between
    /// rankview's own work (for interop with MPI code, and for benchmarks
    /// that interleave raw MPI with rankview). Register the same sections on
    /// every rank; every rank must make matching MPI calls in them.
    pub fn mpi_section(
        mut self,
        name: impl Into<String>,
        section: impl FnMut(&World) + Send + 'static,
    ) -> Self {
        self.sections.insert(name.into(), Box::new(section));
        self
    }

    /// Runs the job; see [`launch`].
    pub fn run<F, T, E>(self, client: F) -> T
    where
        F: FnOnce(&Client) -> std::result::Result<T, E>,
        E: Display,
    {
        let (role_tx, role_rx) = mpsc::sync_channel::<Result<(usize, Role)>>(1);
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<Ready>>(1);
        let (command_tx, command_rx) = fifo::channel::<Command>();
        let (out_tx, out_rx) = mpsc::channel::<engine::ExecOut>();
        let prelude = self.prelude;
        let sections = self.sections;

        let spawned = std::thread::Builder::new()
            .name("rankview-mpi".into())
            .spawn(move || -> Ending {
                let mut mpi = match Mpi::init() {
                    Ok(mpi) => mpi,
                    Err(e) => {
                        let _ = role_tx.send(Err(e));
                        return Ending::Broken(Error::Shutdown);
                    }
                };
                let rank = mpi.rank();
                if mpi.size() < 2 {
                    let _ = role_tx.send(Err(Error::Mpi(too_small_world(mpi.size()))));
                    return Ending::Broken(Error::Shutdown);
                }
                if let Some(prelude) = prelude {
                    prelude(mpi.world());
                }
                mpi.set_sections(sections);
                if rank == 0 {
                    // Rank 0 reports through `ready_tx` once the engines are checked.
                    drop(role_tx);
                    if controller::run(mpi, command_rx, ready_tx) {
                        Ending::Clean
                    } else {
                        Ending::Broken(Error::Shutdown)
                    }
                } else {
                    let inbox = std::sync::Arc::new(engine::Inbox::new(rank - 1));
                    let role = Role::Engine {
                        id: rank - 1,
                        comm: std::thread::current(),
                        inbox: inbox.clone(),
                    };
                    if role_tx.send(Ok((rank, role))).is_err() {
                        return Ending::Broken(Error::Shutdown);
                    }
                    // `mpi` moves into the loop: a panic there cannot finalize
                    // MPI on unwinding (which would wait for rank 0); the job
                    // is aborted without a handle instead.
                    let served =
                        panic::catch_unwind(AssertUnwindSafe(|| engine::serve(mpi, inbox, out_rx)));
                    let id = rank - 1;
                    match served {
                        Ok((mpi, Ending::Clean)) => {
                            drop(mpi);
                            Ending::Clean
                        }
                        // MPI is finalized (rank 0 finalizes too); the
                        // execution thread may be deep in a long task, so the
                        // process ends from here, now.
                        // Not a failure of this engine's: the summary does
                        // not blame it (the client failed, or rank 0 ended
                        // a job whose work outlived the shutdown grace).
                        Ok((mpi, Ending::ClientFailed)) => {
                            drop(mpi);
                            status(rank, "failed: stopped by rank 0");
                            std::process::exit(1)
                        }
                        // Finalizing would wait for rank 0, which waits for
                        // this engine: end the job instead.
                        Ok((mpi, Ending::Broken(e))) => {
                            internal_failure(rank, &format!("engine {id}: {e}"));
                            mpi.abort(1)
                        }
                        Err(payload) => {
                            internal_failure(
                                rank,
                                &format!(
                                    "engine {id}: the MPI thread panicked: {}",
                                    crate::error::panic_message(payload.as_ref())
                                ),
                            );
                            crate::transport::abort_job(1)
                        }
                    }
                }
            });
        let mpi_thread = match spawned {
            Ok(handle) => handle,
            Err(e) => fail_start(None, &format!("cannot start the MPI thread: {e}")),
        };

        // Rank 0 learns its role from the controller's start-up report.
        let role = match role_rx.recv() {
            Ok(Ok(role)) => Ok(role),
            Ok(Err(e)) => Err(e),
            Err(_) => match ready_rx.recv() {
                Ok(Ok(ready)) => Ok((0, Role::Controller(ready))),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(Error::Mpi("the MPI thread stopped during start-up".into())),
            },
        };
        let (rank, role) = match role {
            Ok(r) => r,
            Err(e) => {
                // Say why before the engines are told to stop: once they
                // exit, the MPI launcher may kill this rank at any moment.
                report_start_failure(rank_from_env(), &e.to_string());
                drop(command_tx);
                let _ = mpi_thread.join();
                std::process::exit(1)
            }
        };
        status(
            rank,
            &format!(
                "started pid={} host={}",
                std::process::id(),
                engine::hostname()
            ),
        );

        match role {
            Role::Controller(ready) => {
                let rc = Client::new(command_tx, ready.controller.clone(), ready.engines);
                let outcome = client_panics::catch(|| client(&rc));
                let failure = match &outcome {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(panicked) => Some(panicked.to_string()),
                };
                // Say why before the engines are told to stop: once they
                // exit, the MPI launcher may kill this rank at any moment.
                // Said once: under the `rankview` launcher its summary says
                // it from the status file.
                if let Some(message) = &failure {
                    let _ = std::io::stdout().flush();
                    if !status(0, &format!("failed: {message}")) {
                        eprintln!("rankview: client failed: {message}");
                    }
                    if let Err(panicked) = &outcome {
                        if let Some(trace) = &panicked.backtrace {
                            eprintln!("rankview: the client's panic, backtrace:\n{trace}");
                        }
                    }
                }
                let _ = rc.commands().send(Command::Shutdown {
                    failed: failure.is_some(),
                });
                ready.controller.unpark();
                drop(rc);
                let ended = mpi_thread.join();
                match (outcome, failure, ended) {
                    (Ok(Ok(value)), None, Ok(Ending::Clean)) => {
                        status(0, "ok");
                        value
                    }
                    // The client succeeded, but requests were still running
                    // when the shutdown grace ran out (said on stderr).
                    (Ok(Ok(_)), None, _) => {
                        status(0, "failed: engines still busy after the client returned");
                        std::process::exit(1)
                    }
                    _ => std::process::exit(1),
                }
            }
            Role::Engine { id, comm, inbox } => {
                let executed = panic::catch_unwind(AssertUnwindSafe(|| {
                    engine::execute(id, &inbox, out_tx, comm)
                }));
                if let Err(payload) = executed {
                    internal_failure(
                        rank,
                        &format!(
                            "engine {id}: the execution thread panicked outside a task: {}",
                            crate::error::panic_message(payload.as_ref())
                        ),
                    );
                    crate::transport::abort_job(1);
                }
                match mpi_thread.join() {
                    // MPI is finalized: the engine's work is over, and only
                    // rank 0 goes on with the client's value.
                    Ok(Ending::Clean) => {
                        status(rank, "ok");
                        let _ = std::io::stdout().flush();
                        std::process::exit(0)
                    }
                    // The MPI thread ends the process itself in the other cases.
                    _ => crate::transport::abort_job(1),
                }
            }
        }
    }
}

/// Reports an internal failure of this rank on its real stderr (task output
/// capture cannot swallow it) and in its status file; the caller then ends
/// the job.
fn internal_failure(rank: usize, message: &str) {
    capture::report(&format!(
        "rankview: internal error: {message}; aborting the job"
    ));
    status(rank, &format!("failed: {message}"));
}

/// Start-up failed before roles were known: report and exit.
fn fail_start(rank: Option<usize>, message: &str) -> ! {
    report_start_failure(rank, message);
    std::process::exit(1)
}

/// Prints a start-up failure and records it in the status file.
fn report_start_failure(rank: Option<usize>, message: &str) {
    eprintln!("rankview: error: {message}");
    if let Some(rank) = rank {
        status(rank, &format!("failed: {message}"));
    }
}

/// Why a world of `size` (< 2) ranks cannot run. When the MPI launcher
/// announced a bigger job, every process it started sees a world of its own:
/// the program was built against another MPI than the launcher's, and
/// saying "run it with -n 3" would send the user round in circles.
fn too_small_world(size: usize) -> String {
    let announced = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok());
    match announced {
        Some(started) if started > size => format!(
            "the MPI launcher started {started} processes, but MPI gives each a world of \
             {size}: the program is built against a different MPI than the launcher that \
             started it (e.g. built with Open MPI, started with MPICH's mpiexec); start it \
             with the mpirun of the MPI it was built with (`rankview info` shows the one \
             `rankview run` uses; MPIEXEC chooses another)"
        ),
        _ => format!(
            "a rankview job needs at least 2 ranks (rank 0 is the controller, the others \
             are engines); this one has {size}: run it with `rankview run -n 3 <program>` \
             or `mpirun -n 3 <program>`"
        ),
    }
}

/// The rank as the MPI launcher announces it, for reports before MPI answers.
fn rank_from_env() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_RANK",
        "PMI_RANK",
        "PMIX_RANK",
        "SLURM_PROCID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// Appends a line to this rank's status file, when the launcher asked for
/// one; true if it was written.
fn status(rank: usize, line: &str) -> bool {
    let Some(dir) = std::env::var_os("RANKVIEW_STATUS_DIR") else {
        return false;
    };
    let path = PathBuf::from(dir).join(format!("rank-{rank}"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| writeln!(file, "{line}"))
        .is_ok()
}

/// The client's panics on rank 0: caught, with where they happened, and
/// said once (in the failure line) instead of by the default panic hook too.
mod client_panics {
    use std::cell::RefCell;
    use std::fmt;
    use std::panic::{self, AssertUnwindSafe};
    use std::sync::Once;

    use crate::error::PanicSlot;

    /// A caught panic of the client.
    pub(super) struct Panicked {
        message: String,
        location: Option<String>,
        /// When `RUST_BACKTRACE` asks for one.
        pub backtrace: Option<String>,
    }

    impl fmt::Display for Panicked {
        /// `panic: MESSAGE, at FILE:LINE:COL` (the location at the end of
        /// the message's first line).
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let (first, rest) = match self.message.split_once('\n') {
                Some((first, rest)) => (first, Some(rest)),
                None => (self.message.as_str(), None),
            };
            write!(f, "panic: {first}")?;
            if let Some(location) = &self.location {
                write!(f, ", at {location}")?;
            }
            if let Some(rest) = rest {
                write!(f, "\n{rest}")?;
            }
            Ok(())
        }
    }

    thread_local! {
        /// `Some` while the client runs on this thread: where it panicked.
        static CLIENT: PanicSlot = const { RefCell::new(None) };
    }

    /// Runs the client, catching its panic.
    pub(super) fn catch<T>(client: impl FnOnce() -> T) -> Result<T, Panicked> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                if !crate::error::record_panic(&CLIENT, info) {
                    previous(info);
                }
            }));
        });
        CLIENT.with(|c| *c.borrow_mut() = Some(None));
        let ran = panic::catch_unwind(AssertUnwindSafe(client));
        let recorded = CLIENT.with(|c| c.borrow_mut().take()).flatten();
        ran.map_err(|payload| {
            let (location, backtrace) = recorded.unzip();
            Panicked {
                message: crate::error::panic_message(payload.as_ref()),
                location: location.filter(|l| !l.is_empty()),
                backtrace: backtrace.flatten(),
            }
        })
    }
}
