//! `rankview batch slurm|pbs`: a job script for a batch system, printed,
//! written to a file, or submitted.
//!
//! Owns the order of the steps: check the size, resolve the program (or
//! locate and build the example, with `run`'s code, so the script never
//! needs cargo on the compute nodes), find the MPI launcher (PBS only:
//! Slurm's is `srun`, whose flags `mpiexec::srun` chooses from the MPI the
//! program links and the plugins an `srun` here offers), describe the
//! [`script::Job`], then print it, write
//! it (`-o FILE`, made executable) and/or submit it (`--submit`). The
//! templates are `script`'s, the batch systems and their job names
//! `scheduler`'s, the time limit `walltime`'s, submitting `submit`'s.

pub mod scheduler;
pub mod script;
mod submit;
pub mod walltime;

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::BatchArgs;
use crate::error::Error;
use crate::executable;
use crate::mpiexec::{self, srun, Choices};
use crate::output;
use crate::progress::Progress;
use crate::target::Target;
use scheduler::{job_name, Scheduler};
use script::{Job, Launcher, Size};

/// Runs `rankview batch`.
pub fn batch(args: BatchArgs) -> Result<ExitCode, Error> {
    let size = Size::new(args.ranks, args.nodes, args.tasks_per_node).map_err(Error::Usage)?;
    let target = Target::resolve(&args.program)?;
    let mpi_words = args.program.mpi_words();
    // The program's file says which MPI it links (srun's PMI plugin): build
    // it first.
    let mut progress = Progress::for_stderr();
    target.build(&mut progress)?;
    let launcher = match args.scheduler {
        Scheduler::Slurm => {
            let choices = Choices::detect(&mpi_words, Path::new("srun"));
            let here = executable::first_on_path(&["srun"]).map(|(_, path)| path);
            let pmi = mpiexec::srun_pmi(here.as_deref(), target.linked_mpi());
            let mut reasons = Vec::new();
            let flags = srun::script_args(&choices, &pmi, &mut reasons);
            Launcher::Srun { flags, reasons }
        }
        Scheduler::Pbs => {
            // The script runs inside PBS, never under srun.
            let mpi = mpiexec::discover(None)?;
            let words: Vec<String> = mpi_words
                .iter()
                .map(|w| w.to_string_lossy().into_owned())
                .collect();
            Launcher::Mpi {
                path: mpi.path.into_os_string(),
                flavour: mpi.flavour,
                user_binding: Choices::from_sources(&words, &[], &[]).binding,
            }
        }
    };

    let (_, program_args) = args.program.program_and_args();
    let mut command: Vec<OsString> = vec![target.absolute_program().into_os_string()];
    command.extend(program_args.iter().cloned());
    let job = Job {
        scheduler: args.scheduler,
        name: args
            .job_name
            .clone()
            .unwrap_or_else(|| job_name(&target.name())),
        size,
        cpus_per_rank: args.cpus_per_rank,
        time: args.time,
        partition: args.partition.clone(),
        account: args.account.clone(),
        log: args.log.clone(),
        error_log: args.error_log.clone(),
        directives: args.directives.clone(),
        launcher,
        mpi_words,
        command,
    };
    let text = job.script();

    if let Some(file) = &args.script {
        write_script(file, &text)?;
    } else if !args.submit {
        output::out(text.trim_end());
    }
    if args.submit {
        let id = submit::submit(args.scheduler, &text, args.script.as_deref())?;
        output::out(id);
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the script to `file`, executable by its owner.
fn write_script(file: &Path, text: &str) -> Result<(), Error> {
    let context = || format!("cannot write the job script to {}", file.display());
    std::fs::write(file, text).map_err(|err| Error::io(context(), err))?;
    let mut permissions = std::fs::metadata(file)
        .map_err(|err| Error::io(context(), err))?
        .permissions();
    permissions.set_mode(permissions.mode() | 0o700);
    std::fs::set_permissions(file, permissions).map_err(|err| Error::io(context(), err))
}
