//! What every rank of a job runs: a PROGRAM from the command line, or a
//! Cargo example or binary.
//!
//! Owns resolving the `PROGRAM`/`--example` flags shared by `run` and
//! `batch` into something runnable: a program checked to be executable (a
//! bare name in the current directory becomes `./NAME`, as with `mpirun`),
//! or a located example (building it is `example`'s job, when the caller
//! decides to).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::ProgramArgs;
use crate::error::Error;
use crate::example::{Example, Kind};
use crate::executable::{self, Lookup};

/// What every rank runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A program given on the command line, checked to be executable, as
    /// the MPI launcher should be given it.
    Program(OsString),
    /// A Cargo example or binary, located (built when the caller asks).
    Example(Example),
}

impl Target {
    /// Resolves PROGRAM or `--example` (clap guarantees one is given).
    pub fn resolve(args: &ProgramArgs) -> Result<Target, Error> {
        let cargo = match (&args.example, &args.bin) {
            (Some(name), _) => Some((name, Kind::Example)),
            (None, Some(name)) => Some((name, Kind::Bin)),
            (None, None) => None,
        };
        let Some((name, kind)) = cargo else {
            if args.release || args.package.is_some() {
                return Err(Error::Usage(
                    "--release and --package apply to --example or --bin (a PROGRAM is run as it is)"
                        .to_string(),
                ));
            }
            return Self::resolve_program(args);
        };
        Example::locate(name, kind, args.package.as_deref(), args.release).map(Target::Example)
    }

    /// Resolves PROGRAM.
    fn resolve_program(args: &ProgramArgs) -> Result<Target, Error> {
        let (Some(program), _) = args.program_and_args() else {
            return Err(Error::Usage(
                "give a PROGRAM to run, --example NAME or --bin NAME".to_string(),
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

    /// Builds the example (a program needs nothing), with cargo's messages
    /// above any spinner of `progress`.
    pub fn build(&self, progress: &mut crate::progress::Progress) -> Result<(), Error> {
        match self {
            Target::Program(_) => Ok(()),
            Target::Example(example) => example.build(progress),
        }
    }

    /// The program as the MPI launcher is given it.
    pub fn program(&self) -> OsString {
        match self {
            Target::Program(program) => program.clone(),
            Target::Example(example) => example.binary.clone().into_os_string(),
        }
    }

    /// The program as an absolute path, for a job script that runs later,
    /// from another directory and on other nodes: the file a lookup found
    /// (`hostname` becomes `/usr/bin/hostname`), made absolute.
    pub fn absolute_program(&self) -> PathBuf {
        let program = self.program();
        let found = match executable::lookup(&program) {
            Lookup::Found(path) => path,
            _ => PathBuf::from(program),
        };
        executable::absolute(&found)
    }

    /// A short name for the job: the example's name or the program's file
    /// name.
    pub fn name(&self) -> String {
        match self {
            Target::Example(example) => example.name.clone(),
            Target::Program(program) => PathBuf::from(program).file_name().map_or_else(
                || "rankview".to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        }
    }
}
