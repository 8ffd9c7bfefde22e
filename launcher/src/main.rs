//! `rankview`: runs a rankview program as an MPI job and reports how it ended.
//!
//! This file only has ripgrep's shape, `main → run → ExitCode`: parse the
//! command line, hand the subcommand to its module, and print an error once,
//! as one line `rankview: error: <what>: <cause>...`. It never decides what
//! an error means; `error` maps each one to an exit code (2 for usage).
//!
//! The launcher never links MPI: it drives `mpirun`, `mpiexec` or `srun`, so
//! it can start, and say that MPI is missing, on a machine without MPI.
//!
//! ## Map
//!
//! - `cli`: flags and their checks; `run`, `info` and `batch`: the
//!   subcommands (`batch::script`: the Slurm and PBS job scripts;
//!   `batch::scheduler`: which batch system, and its job names); `ranks`:
//!   the fewest ranks a job has.
//! - `target`: the PROGRAM or `--example` a job runs; `allocation`: the
//!   Slurm or PBS allocation `run` is inside, if any.
//! - `mpiexec`: finding the MPI launcher; `mpiexec::flavour`: which MPI
//!   it is; `mpiexec::launch`: its flags;
//!   `mpiexec::srun`: what srun needs that mpirun does not (a dead rank
//!   ends the job, one SIGINT reaches the ranks, the MPI's PMI plugin).
//! - `plan`: the exact command line and environment (`--dry-run` prints it).
//! - `supervisor`: running it, with `signals` (SIGINT, SIGTERM, SIGHUP,
//!   SIGQUIT) and
//!   `--timeout`; `orphans`: ranks left behind by a killed `mpirun`.
//! - `status`: the per-rank status files (the contract with the library);
//!   `relay`: the job's output on its way through, and `verdict`: what the
//!   MPI launcher said in it about the failing ranks; `summary`: the
//!   exit summary and exit code.
//! - `example`: `cargo build --example`; `progress`: spinners; `probe`:
//!   asking helper tools; `executable`: PATH lookup; `host`: cores, root;
//!   `output`: writing lines without panicking on a closed pipe.

mod allocation;
mod batch;
mod cli;
mod error;
mod example;
mod executable;
mod host;
mod info;
mod mpi_flags;
mod mpiexec;
mod orphans;
mod output;
mod plan;
mod probe;
mod progress;
mod ranks;
mod relay;
mod run;
mod signals;
mod status;
mod summary;
mod supervisor;
mod target;
mod verdict;

use std::error::Error as _;
use std::process::ExitCode;

use crate::cli::Command;
use crate::error::Error;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            output::err(format_args!("rankview: error: {}", chain(&err)));
            ExitCode::from(err.exit_code())
        }
    }
}

/// Parses the command line and runs the subcommand; the `Ok` value is the
/// exit code of a command that ran (a job's own status, for `run`).
fn run() -> Result<ExitCode, Error> {
    let cli = match cli::parse(std::env::args_os().collect())? {
        Ok(cli) => cli,
        Err(err) => return cli::help_or_usage_error(err),
    };
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Info => info::info(),
        Command::Batch(args) => batch::batch(args),
    }
}

/// The error followed by each of its causes, separated by `: `.
fn chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
