//! `rankview run`: the steps from a command line to an exit code.
//!
//! Owns the order of the steps and nothing else: check the program (or
//! locate the example), take the defaults of a batch allocation the
//! launcher runs in (its size for `-n`, PBS's hosts), find the MPI
//! launcher, build the example (unless `--dry-run`: srun's PMI plugin
//! depends on the MPI the program links), create the status directory
//! (without one, the job runs and its ranks' statuses are unknown), build
//! the plan, then either print it (`--dry-run`) or supervise the job, clean
//! up stray ranks, and print the summary. Each step is done by the module
//! named in it.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use crate::allocation::Allocation;
use crate::cli::RunArgs;
use crate::error::Error;
use crate::host::Host;
use crate::mpiexec::{self, Choices, Flavour, FoundBy, JobShape};
use crate::orphans;
use crate::output;
use crate::plan::{self, LaunchPlan, EXPORTED_ENV};
use crate::progress::{Progress, StartWatch};
use crate::relay::Relay;
use crate::status::{StatusDir, LAUNCHER_VAR};
use crate::summary;
use crate::supervisor::{self, End, Stop};
use crate::target::Target;
use crate::verdict;

/// How long the job's output may take to end after the MPI launcher did
/// (ranks that outlive it hold it open until they are killed).
const RELAY_GRACE: Duration = Duration::from_secs(2);

/// Runs `rankview run` and returns the job's exit code.
pub fn run(args: RunArgs) -> Result<ExitCode, Error> {
    let host = Host::detect();
    let target = Target::resolve(&args.program)?;
    let allocation = Allocation::detect();
    let (ranks, ranks_note) = match (args.ranks, allocation.as_ref().and_then(Allocation::ranks)) {
        (Some(ranks), _) => (ranks, None),
        (None, Some((ranks, source))) => (ranks, Some(format!("-n {ranks}: {source}"))),
        (None, None) => (host.default_ranks(), None),
    };
    let hostfile = match (
        &args.hostfile,
        allocation.as_ref().and_then(Allocation::hostfile),
    ) {
        (Some(hostfile), _) => Some(hostfile.clone()),
        (None, Some(nodefile)) => Some(nodefile.to_path_buf()),
        (None, None) => None,
    };
    if let Some(hostfile) = &hostfile {
        if !hostfile.is_file() {
            return Err(Error::HostfileNotFound(hostfile.clone()));
        }
    }
    let mpi = mpiexec::discover(allocation.as_ref())?;
    let (mpi_words, flag_notes) = args.program.launcher_words(mpi.flavour)?;
    let choices = Choices::detect(&mpi_words, &mpi.path);

    let mut progress = Progress::for_stderr();
    if !args.dry_run {
        target.build(&mut progress)?;
    }
    let pmi = match mpi.flavour {
        Flavour::Slurm => mpiexec::srun_pmi(Some(&mpi.path), target.linked_mpi()),
        Flavour::OpenMpi | Flavour::Mpich | Flavour::Unknown => Default::default(),
    };
    let status_dir = if args.dry_run {
        None
    } else {
        match StatusDir::create() {
            Ok(dir) => Some(dir),
            Err(err) => {
                output::err(format_args!(
                    "rankview: warning: {}; the job runs, and how each rank ended will be \
                     unknown",
                    crate::chain(&err)
                ));
                None
            }
        }
    };
    // Without a status directory there is no RANKVIEW_STATUS_DIR to export.
    let exported: &[&str] = if args.dry_run || status_dir.is_some() {
        &EXPORTED_ENV
    } else {
        &[LAUNCHER_VAR]
    };
    let job = JobShape {
        ranks,
        host,
        hostfile: hostfile.as_deref(),
        hostfile_slots: hostfile
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| mpiexec::hostfile_slots(&text)),
        choices: &choices,
        exported_env: exported,
        pmi: &pmi,
    };
    let (_, program_args) = args.program.program_and_args();
    let mut plan = LaunchPlan::new(&mpi, &job, &mpi_words, &target.program(), program_args)?;
    let launcher_note = match (mpi.found_by, allocation.as_ref()) {
        (FoundBy::SlurmAllocation, Some(allocation)) => Some(format!(
            "{}: inside the Slurm allocation SLURM_JOB_ID={} (MPIEXEC=mpirun would run \
             mpirun instead)",
            mpi.name(),
            allocation.slurm_job_id().unwrap_or("?")
        )),
        _ => None,
    };
    let hostfile_note = match (&args.hostfile, &hostfile) {
        (None, Some(nodefile)) => Some(format!(
            "hosts from the PBS allocation (PBS_NODEFILE={})",
            nodefile.display()
        )),
        _ => None,
    };
    plan.notes.splice(
        0..0,
        launcher_note
            .into_iter()
            .chain(ranks_note)
            .chain(hostfile_note)
            .chain(flag_notes),
    );
    for warning in mpiexec::size_warnings(mpi.flavour, &job)
        .into_iter()
        .chain(one_word_warnings(&args.program.mpi_arg))
    {
        output::err(format_args!("rankview: warning: {warning}"));
    }

    if args.dry_run {
        output::out(plan.shell());
        return Ok(ExitCode::SUCCESS);
    }

    let plan = match &status_dir {
        Some(dir) => plan.with_status_dir(dir.path()),
        None => plan,
    };
    let mut watch = StartWatch::new(ranks);
    let timeout = args.timeout.as_ref().map(|t| t.duration);
    let relay = Relay::new(progress.slot());
    let outcome = supervisor::supervise(&plan, timeout, Some(&relay), || {
        if let Some(dir) = &status_dir {
            watch.tick(dir, relay.printed(), &mut progress);
        }
    })?;
    progress.clear();
    // What the MPI launcher printed last (its verdict) comes before ours.
    relay.drain(RELAY_GRACE);

    // When the job was stopped (Ctrl-C, SIGTERM, --timeout) or its launcher
    // died by a signal, ranks may outlive it: the job is over, so they go.
    let stopped = outcome.stop != Stop::None || matches!(outcome.end, End::Signalled(_));
    let swept = match &status_dir {
        Some(dir) if stopped => orphans::sweep(dir),
        _ => Vec::new(),
    };
    if !swept.is_empty() {
        relay.drain(RELAY_GRACE);
    }
    let report = status_dir
        .as_ref()
        .map(|dir| dir.report(ranks))
        .unwrap_or_else(|| crate::status::Report::unknown(ranks));
    let launcher_name = mpi.name();
    let local_host = crate::host::name();
    let summary_job = summary::Job {
        ranks,
        launcher: &launcher_name,
        timeout_text: args.timeout.as_ref().map(|t| t.text.as_str()),
        local_host: local_host.as_deref(),
        no_start_hint: plan.no_start_hint.as_deref(),
    };
    let culprit = verdict::culprit(mpi.flavour, &relay.kept_notes());
    let ending = summary::Ending {
        outcome: &outcome,
        report: &report,
        swept: &swept,
        culprit: culprit.as_ref(),
    };
    for line in summary::lines(&summary_job, &ending) {
        output::err(format_args!("rankview: {line}"));
    }
    Ok(ExitCode::from(summary::exit_code(&outcome, &report)))
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
