//! The launcher's own errors and the exit code each one gives.
//!
//! An `Error` is something that stopped the launcher before or around the job
//! (bad input, no MPI, a failed build). How the *job* ended is not an error:
//! that is `summary`'s business. Messages are one line, written for the user
//! to act on; causes are attached as `#[source]` and printed by `main` after
//! the message.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

/// Why `rankview` could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong (clap's message, or one of ours).
    #[error("{0}")]
    Usage(String),

    /// No `$MPIEXEC`, `mpirun` or `mpiexec` (and no Slurm `srun`) to use.
    #[error(
        "no MPI launcher found (looked for $MPIEXEC, mpirun, mpiexec): install OpenMPI \
         (apt-get install openmpi-bin libopenmpi-dev) or MPICH, or set MPIEXEC"
    )]
    NoMpi,

    /// `$MPIEXEC` names something that is not an executable.
    #[error("MPIEXEC is set to {value:?}, which is not an executable file or a program on PATH")]
    BadMpiexecVariable {
        /// The variable's value.
        value: OsString,
    },

    /// The program to run does not exist.
    #[error("program not found: {} (not a file, and not a program on PATH)", .0.to_string_lossy())]
    ProgramNotFound(OsString),

    /// The program to run exists but cannot be executed.
    #[error("program is not executable: {} (a directory, or no execute permission)", .0.display())]
    ProgramNotExecutable(PathBuf),

    /// `--hostfile` names a file that does not exist.
    #[error("hostfile not found: {}", .0.display())]
    HostfileNotFound(PathBuf),

    /// `--hostfile` was given to a launcher that takes no hostfile.
    #[error("{launcher} does not take a hostfile: {hint}")]
    HostfileUnsupported {
        /// The launcher's name, e.g. `srun`.
        launcher: String,
        /// What to do instead.
        hint: &'static str,
    },

    /// `--example` or `--bin` outside a Cargo workspace, or cargo could not
    /// describe it.
    #[error("--example and --bin need a Cargo workspace: {0}")]
    Workspace(String),

    /// `cargo build --example NAME` (or `--bin NAME`) failed (cargo has
    /// already said why).
    #[error("cargo build {what} failed ({status}); see cargo's messages above")]
    BuildFailed {
        /// `--example NAME` or `--bin NAME`.
        what: String,
        /// Cargo's exit status, as text.
        status: String,
    },

    /// Cargo reported success but the binary is not where expected.
    #[error("cargo build {what} succeeded but the binary is missing: {}", .path.display())]
    ExampleMissing {
        /// `--example NAME` or `--bin NAME`.
        what: String,
        /// Where the binary should be.
        path: PathBuf,
    },

    /// `--submit` without the scheduler's submit command on PATH.
    #[error("{command} not found on PATH: --submit needs {scheduler}'s {command} (or write the script with -o FILE and submit it where {scheduler} is installed)")]
    SchedulerMissing {
        /// `sbatch` or `qsub`.
        command: &'static str,
        /// `Slurm` or `PBS`.
        scheduler: &'static str,
    },

    /// The scheduler refused the job script.
    #[error("{command} refused the job ({status}): {message}")]
    SubmitFailed {
        /// `sbatch` or `qsub`.
        command: &'static str,
        /// Its exit status, as text.
        status: String,
        /// The first line it printed.
        message: String,
    },

    /// An operating-system call failed.
    #[error("{context}")]
    Io {
        /// What the launcher was doing.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The exit code for usage errors (clap's and ours).
    pub const USAGE_EXIT_CODE: u8 = 2;

    /// Builds an [`Error::Io`] with what the launcher was doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The process exit code for this error: 2 for bad input on the command
    /// line, 127/126 for a program that is missing/not executable (as a shell
    /// or `timeout(1)` would say), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::HostfileNotFound(_) | Error::HostfileUnsupported { .. } => {
                Self::USAGE_EXIT_CODE
            }
            Error::ProgramNotFound(_) => 127,
            Error::ProgramNotExecutable(_) => 126,
            Error::NoMpi
            | Error::BadMpiexecVariable { .. }
            | Error::Workspace(_)
            | Error::BuildFailed { .. }
            | Error::ExampleMissing { .. }
            | Error::SchedulerMissing { .. }
            | Error::SubmitFailed { .. }
            | Error::Io { .. } => 1,
        }
    }
}
