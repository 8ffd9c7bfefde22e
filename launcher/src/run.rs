//! `rankview run`: the steps from a command line to an exit code.
//!
//! Owns the order of the steps and nothing else: check the program (or
//! locate the example), find the MPI launcher, build the plan, then either
//! print it (`--dry-run`) or build the example, create the status
//! directory, supervise the job, clean up stray ranks, and print the
//! summary. Each step is done by the module named in it.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::RunArgs;
use crate::error::Error;
use crate::example::Example;
use crate::executable::{self, Lookup};
use crate::host::Host;
use crate::mpiexec::{self, Choices, JobShape};
use crate::orphans;
use crate::output;
use crate::plan::{self, LaunchPlan, EXPORTED_ENV};
use crate::progress::{Progress, StartWatch};
use crate::relay::Relay;
use crate::status::StatusDir;
use crate::summary;
use crate::supervisor::{self, End, Stop};
use crate::verdict;

/// How long the job's output may take to end after the MPI launcher did
/// (ranks that outlive it hold it open until they are killed).
const RELAY_GRACE: Duration = Duration::from_secs(2);

/// What every rank runs.
enum Target {
    /// A program given on the command line, checked to be executable.
    Program(OsString),
    /// A Cargo example, built before the launch (unless dry-running).
    Example(Example),
}

/// Runs `rankview run` and returns the job's exit code.
pub fn run(args: RunArgs) -> Result<ExitCode, Error> {
    if args.release && args.example.is_none() {
        return Err(Error::Usage(
            "--release only applies to --example (a PROGRAM is run as it is)".to_string(),
        ));
    }
    let host = Host::detect();
    let ranks = args.ranks.unwrap_or_else(|| host.default_ranks());
    let target = target(&args)?;
    if let Some(hostfile) = &args.hostfile {
        if !hostfile.is_file() {
            return Err(Error::HostfileNotFound(hostfile.clone()));
        }
    }
    let mpi = mpiexec::discover()?;
    let mpi_words = args.mpi_words();
    let choices = Choices::detect(&mpi_words, &mpi.path);
    let job = JobShape {
        ranks,
        host,
        hostfile: args.hostfile.as_deref(),
        hostfile_slots: args
            .hostfile
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| mpiexec::hostfile_slots(&text)),
        choices: &choices,
        exported_env: &EXPORTED_ENV,
    };
    let program = match &target {
        Target::Program(program) => program.clone(),
        Target::Example(example) => example.binary.clone().into_os_string(),
    };
    let (_, program_args) = args.program_and_args();
    let plan = LaunchPlan::new(&mpi, &job, &mpi_words, &program, program_args)?;
    for warning in mpiexec::size_warnings(mpi.flavour, &job)
        .into_iter()
        .chain(one_word_warnings(&args.mpi_arg))
    {
        output::err(format_args!("rankview: warning: {warning}"));
    }

    if args.dry_run {
        output::out(plan.shell());
        return Ok(ExitCode::SUCCESS);
    }

    let mut progress = Progress::for_stderr();
    if let Target::Example(example) = &target {
        example.build(&mut progress)?;
    }
    let status_dir = StatusDir::create()?;
    let plan = plan.with_status_dir(status_dir.path());

    let mut watch = StartWatch::new(ranks);
    let timeout = args.timeout.as_ref().map(|t| t.duration);
    let relay = Relay::new(progress.slot());
    let outcome = supervisor::supervise(&plan, timeout, Some(&relay), || {
        watch.tick(&status_dir, relay.printed(), &mut progress);
    })?;
    progress.clear();
    // What the MPI launcher printed last (its verdict) comes before ours.
    relay.drain(RELAY_GRACE);

    // When the job was stopped (Ctrl-C, SIGTERM, --timeout) or its launcher
    // died by a signal, ranks may outlive it: the job is over, so they go.
    let stopped = outcome.stop != Stop::None || matches!(outcome.end, End::Signalled(_));
    let swept = if stopped {
        orphans::sweep(&status_dir)
    } else {
        Vec::new()
    };
    if !swept.is_empty() {
        relay.drain(RELAY_GRACE);
    }
    let report = status_dir.report(ranks);
    let launcher_name = mpi.name();
    let summary_job = summary::Job {
        ranks,
        launcher: &launcher_name,
        timeout_text: args.timeout.as_ref().map(|t| t.text.as_str()),
    };
    let ending = summary::Ending {
        outcome: &outcome,
        report: &report,
        swept: &swept,
        culprit: verdict::culprit(&relay.kept_lines()),
    };
    for line in summary::lines(&summary_job, &ending) {
        output::err(format_args!("rankview: {line}"));
    }
    Ok(ExitCode::from(summary::exit_code(&outcome, &report)))
}

/// Resolves PROGRAM or `--example` (clap guarantees exactly one is given).
fn target(args: &RunArgs) -> Result<Target, Error> {
    if let Some(name) = &args.example {
        return Example::locate(name, args.release).map(Target::Example);
    }
    let (Some(program), _) = args.program_and_args() else {
        return Err(Error::Usage(
            "give a PROGRAM to run or --example NAME".to_string(),
        ));
    };
    match executable::lookup(program) {
        Lookup::Found(_) => Ok(Target::Program(program.clone())),
        Lookup::NotExecutable(path) => Err(Error::ProgramNotExecutable(path)),
        // As mpirun does: a bare name not on PATH may be in the current
        // directory. It is passed on as `./NAME`, which every MPI launcher
        // (and srun) runs.
        Lookup::NotFound => match executable::in_current_dir(program) {
            Some(Lookup::Found(path)) => Ok(Target::Program(path.into_os_string())),
            Some(Lookup::NotExecutable(path)) => Err(Error::ProgramNotExecutable(path)),
            _ => Err(Error::ProgramNotFound(program.clone())),
        },
    }
}

/// A warning for each `--mpi-arg` that looks like several words (`--mca btl
/// tcp,self` as one value reaches mpirun as one word, and fails there).
fn one_word_warnings(mpi_arg: &[OsString]) -> Vec<String> {
    mpi_arg
        .iter()
        .map(|a| a.to_string_lossy())
        .filter(|a| a.starts_with('-') && a.contains(char::is_whitespace))
        .map(|a| {
            format!(
                "--mpi-arg {} is passed as ONE word; to pass several, use --mpi-args {}",
                plan::quote(a.as_ref().as_ref()),
                plan::quote(a.as_ref().as_ref())
            )
        })
        .collect()
}
